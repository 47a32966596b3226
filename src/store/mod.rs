//! Storage behind one trait, so SQLite (default) and PostgreSQL share every rule above it.
//!
//! What to write is decided above the trait (ids, normalised resources, the record, the outbox
//! message); a store only writes it atomically and answers the uniqueness questions that must
//! be settled inside the transaction (conditional create, BaRS message ids).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use tokio::sync::Notify;

use crate::config::StorageConfig;
use crate::domain::{ClientId, FhirId, Identifier, ReferralId, VcsId};

pub mod postgres;
pub mod sqlite;

/// A store failure. Client mistakes never arrive here; these are our own troubles.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage is unavailable: {0}")]
    Unavailable(String),
    #[error("storage error: {0}")]
    Database(String),
    #[error("cannot open storage at {url}: {reason}")]
    Open { url: String, reason: String },
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Database(e.to_string())
    }
}

/// A resource version as stored.
#[derive(Debug, Clone)]
pub struct StoredResource {
    pub resource_type: String,
    pub id: String,
    pub version_id: i64,
    pub last_updated: DateTime<Utc>,
    pub content: String,
}

/// A resource version to store (version 1 at create; the next one in a change).
#[derive(Debug, Clone)]
pub struct NewResource {
    pub resource_type: String,
    pub id: FhirId,
    pub version_id: i64,
    pub content: String,
    /// Search columns: the Patient a resource is about, and its code (`system|code`).
    pub patient_id: Option<String>,
    pub code: Option<String>,
}

/// Who an outward message goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// A VCS organisation's webhook; the target is its `VcsId`.
    Vcs,
    /// A GP system's rest-hook Subscription; the target is the Subscription id.
    Subscription,
}

impl TargetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Vcs => "vcs",
            TargetKind::Subscription => "subscription",
        }
    }

    pub fn parse(raw: &str) -> Self {
        if raw == "subscription" {
            TargetKind::Subscription
        } else {
            TargetKind::Vcs
        }
    }
}

/// A message for the delivery worker.
#[derive(Debug, Clone)]
pub struct NewOutboxMessage {
    pub id: String,
    pub target_kind: TargetKind,
    pub target: String,
    pub event_type: String,
    /// Counts per referral and target, from 1: receivers see a referral's events in order.
    pub sequence: i64,
    pub payload: String,
}

/// The stored state of one referral, read before a change is computed.
#[derive(Debug, Clone)]
pub struct ReferralState {
    pub referral_id: String,
    pub client_id: String,
    pub vcs_id: String,
    pub patient_id: String,
    pub status: String,
    pub vcs_status: String,
    pub revision: i64,
    pub record: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub service_request: StoredResource,
    pub task: Option<StoredResource>,
    /// The last sequence number used per (target kind, target).
    pub sequences: Vec<(TargetKind, String, i64)>,
}

impl ReferralState {
    /// The sequence number the next message to this target gets.
    pub fn next_sequence(&self, kind: TargetKind, target: &str) -> i64 {
        self.sequences
            .iter()
            .find(|(k, t, _)| *k == kind && t == target)
            .map_or(1, |(_, _, last)| last + 1)
    }
}

/// One audit entry (our ids only).
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub actor: String,
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
}

/// A read or search to audit. `patient_id` is found from the resource when not given.
#[derive(Debug, Clone)]
pub struct Access {
    pub at: DateTime<Utc>,
    pub actor: String,
    /// `read`, `vread`, `search`, `history`.
    pub action: String,
    pub resource_type: String,
    pub resource_id: Option<String>,
    pub patient_id: Option<String>,
    /// `success`, or why not (`not-found`).
    pub outcome: String,
    pub correlation_id: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub patient_id: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub count: usize,
    pub offset: usize,
}

/// One stored audit record.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub id: i64,
    pub recorded_at: String,
    pub actor: String,
    pub action: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub patient_id: Option<String>,
    pub outcome: String,
    pub correlation_id: Option<String>,
}

/// A stored answer to a request with an Idempotency-Key.
#[derive(Debug, Clone)]
pub struct StoredResponse {
    pub request_hash: String,
    pub status: u16,
    pub body: String,
}

/// Everything one change to a referral writes, applied only if nobody changed it meanwhile.
#[derive(Debug, Clone)]
pub struct ReferralChange {
    pub referral_id: String,
    /// The revision the change was computed from; a different stored revision means a conflict.
    pub expected_revision: i64,
    pub status: Option<String>,
    pub vcs_status: Option<String>,
    pub resources: Vec<NewResource>,
    pub outbox: Vec<NewOutboxMessage>,
    pub audit: Vec<AuditEntry>,
    /// Stored with the change, so a repeated request gets the same answer.
    pub idempotency: Option<(String, String, StoredResponse)>,
    pub correlation_id: Option<String>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum ChangeOutcome {
    Applied,
    /// Someone else changed the referral first: reload and recompute.
    Conflict,
}

/// Filters of the GP-side Task and Observation searches.
#[derive(Debug, Clone, Default)]
pub struct ResourceQuery {
    pub referral_id: Option<String>,
    pub patient_id: Option<String>,
    pub code: Option<(Option<String>, String)>,
    pub count: usize,
    pub offset: usize,
}

/// A referral as a VCS organisation lists it.
#[derive(Debug, Clone)]
pub struct VcsReferral {
    pub referral_id: String,
    pub status: String,
    pub updated_at: DateTime<Utc>,
    pub record: String,
}

/// A GP system's rest-hook Subscription.
#[derive(Debug, Clone)]
pub struct SubscriptionRow {
    pub id: String,
    pub client_id: String,
    pub resource_type: String,
    pub criteria: String,
    pub endpoint: String,
    pub status: String,
    pub content: String,
}

/// Everything one accepted referral writes, in one transaction.
#[derive(Debug, Clone)]
pub struct NewReferral {
    pub referral_id: ReferralId,
    pub client_id: ClientId,
    pub vcs_id: VcsId,
    /// The GP system's identifiers of the ServiceRequest: unique per client.
    pub identifiers: Vec<Identifier>,
    /// The BaRS message id, for `$process-message`.
    pub message_id: Option<String>,
    pub patient_id: FhirId,
    pub status: String,
    pub received_content_type: String,
    pub received_body: Vec<u8>,
    /// Every normalised resource, the ServiceRequest and the Task included.
    pub resources: Vec<NewResource>,
    pub task_id: FhirId,
    pub record: String,
    pub outbox: Vec<NewOutboxMessage>,
    pub correlation_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// What became of a create.
#[derive(Debug)]
pub enum CreateOutcome {
    Created,
    /// `If-None-Exist` matched: this is the referral's current ServiceRequest.
    Existing(StoredResource),
    /// One of the new referral's identifiers already names another referral of this client.
    IdentifierTaken {
        identifier: Identifier,
        existing: String,
    },
    /// The BaRS message id was processed before.
    DuplicateMessage {
        existing: String,
    },
}

/// Filters of `GET /fhir/ServiceRequest`.
#[derive(Debug, Clone, Default)]
pub struct ReferralQuery {
    /// `system|value`, or a value alone (any system).
    pub identifier: Option<(Option<String>, String)>,
    pub patient_id: Option<String>,
    pub statuses: Vec<String>,
    pub count: usize,
    pub offset: usize,
}

/// One page of search results and the total number of matches.
#[derive(Debug)]
pub struct SearchPage {
    pub total: usize,
    pub resources: Vec<StoredResource>,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores an accepted referral atomically. With `condition` (conditional create), an
    /// existing referral of this client carrying that identifier is returned instead.
    async fn create_referral(
        &self,
        referral: NewReferral,
        condition: Option<Identifier>,
    ) -> Result<CreateOutcome, StoreError>;

    /// The current version of a resource, if it belongs to one of `client`'s referrals.
    async fn read_resource(
        &self,
        client: &ClientId,
        resource_type: &str,
        id: &str,
    ) -> Result<Option<StoredResource>, StoreError>;

    /// `client`'s ServiceRequests matching `query`, oldest first.
    async fn search_referrals(
        &self,
        client: &ClientId,
        query: &ReferralQuery,
    ) -> Result<SearchPage, StoreError>;

    // --- Closing the loop -----------------------------------------------------------------

    /// A referral's state, whoever it belongs to (callers check tenancy).
    async fn load_referral(&self, referral_id: &str) -> Result<Option<ReferralState>, StoreError>;

    /// Applies a change atomically if the referral is still at `expected_revision`.
    async fn apply_change(&self, change: ReferralChange) -> Result<ChangeOutcome, StoreError>;

    /// The stored answer to an earlier request with this Idempotency-Key.
    async fn idempotent_response(
        &self,
        owner: &str,
        key: &str,
    ) -> Result<Option<StoredResponse>, StoreError>;

    /// The referrals routed to `vcs`, changed since `since`, oldest change first.
    async fn list_vcs_referrals(
        &self,
        vcs: &VcsId,
        status: Option<&str>,
        since: Option<DateTime<Utc>>,
        count: usize,
        offset: usize,
    ) -> Result<(usize, Vec<VcsReferral>), StoreError>;

    /// Current Tasks or Observations of `client`'s referrals matching `query`.
    async fn search_resources(
        &self,
        client: &ClientId,
        resource_type: &str,
        query: &ResourceQuery,
    ) -> Result<SearchPage, StoreError>;

    /// Every version of a resource of `client`'s referrals, newest first.
    async fn history(
        &self,
        client: &ClientId,
        resource_type: &str,
        id: &str,
    ) -> Result<Vec<StoredResource>, StoreError>;

    /// One version of a resource of `client`'s referrals.
    async fn read_version(
        &self,
        client: &ClientId,
        resource_type: &str,
        id: &str,
        version_id: i64,
    ) -> Result<Option<StoredResource>, StoreError>;

    async fn create_subscription(
        &self,
        subscription: SubscriptionRow,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Active subscriptions of `client` on `resource_type`.
    async fn subscriptions_for(
        &self,
        client: &str,
        resource_type: &str,
    ) -> Result<Vec<SubscriptionRow>, StoreError>;

    async fn subscription(&self, id: &str) -> Result<Option<SubscriptionRow>, StoreError>;

    /// Switches a subscription off (the GP deleted it); returns whether it existed for `client`.
    async fn delete_subscription(&self, client: &ClientId, id: &str) -> Result<bool, StoreError>;

    // --- Audit -----------------------------------------------------------------------------

    /// Records a read, a search or a refused access (creates, changes and disclosures are
    /// audited inside their own transactions).
    async fn record_access(&self, access: Access) -> Result<(), StoreError>;

    /// Audit records, oldest first, for `GET /fhir/AuditEvent`.
    async fn audit_events(
        &self,
        query: &AuditQuery,
    ) -> Result<(usize, Vec<AuditRecord>), StoreError>;

    // --- Tokens (shared by every replica) ---------------------------------------------------

    /// Keeps an access token the token endpoint issued (its digest), and forgets expired ones.
    async fn save_access_token(&self, token: IssuedToken) -> Result<(), StoreError>;

    /// The unexpired access token with this digest.
    async fn access_token(
        &self,
        digest: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<IssuedToken>, StoreError>;

    /// Records a client assertion id until `expires_at`; `false` when it was used before (a
    /// replay, whichever replica saw it first).
    async fn use_assertion(
        &self,
        client: &str,
        jti: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    // --- Delivery (the outbox) -------------------------------------------------------------

    /// Claims up to `limit` due messages for sending until `lease_until`. A message waits while
    /// an earlier message of the same referral is still pending, so a referral's events arrive in
    /// order; messages of disabled endpoints wait too.
    async fn claim_due_messages(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<OutboxMessage>, StoreError>;

    /// When the next pending message falls due (None: nothing pending).
    async fn next_due_at(&self) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Ends leases that ran out (their holder died or hung), so any worker may claim those
    /// messages again; returns how many were released.
    async fn release_expired_leases(&self, now: DateTime<Utc>) -> Result<usize, StoreError>;

    /// Wakes `wake` whenever another process commits outbox messages. A store that only one
    /// process uses has nothing to do here: that process wakes its own worker.
    fn watch_for_work(&self, wake: Arc<Notify>) {
        let _ = wake;
    }

    /// Records one attempt and what follows from it, releasing the lease.
    async fn record_attempt(
        &self,
        message_id: &str,
        attempt: Attempt,
        next: NextStep,
    ) -> Result<(), StoreError>;

    /// Secrets that sign messages to `vcs` now (newest first).
    async fn signing_secrets(
        &self,
        vcs: &VcsId,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError>;

    /// Makes the configured secret a signing secret (at start). A secret new to the store becomes
    /// the current one and the others keep signing until `grace_until`.
    async fn adopt_secret(
        &self,
        vcs: &VcsId,
        secret: &str,
        now: DateTime<Utc>,
        grace_until: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Turns an endpoint off (operator, or a 410 Gone) or back on.
    async fn set_endpoint_enabled(
        &self,
        vcs: &VcsId,
        enabled: bool,
        reason: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Endpoints switched off, with the reason.
    async fn disabled_endpoints(&self) -> Result<Vec<(String, Option<String>)>, StoreError>;

    /// Deliveries for the operator API, newest first.
    async fn list_deliveries(
        &self,
        filter: &DeliveryFilter,
    ) -> Result<(usize, Vec<Delivery>), StoreError>;

    /// Every message of a referral with every attempt.
    async fn referral_deliveries(
        &self,
        referral_id: &str,
    ) -> Result<Vec<(Delivery, Vec<AttemptRow>)>, StoreError>;

    /// Puts a delivered or dead message back in the queue for one more attempt now.
    async fn retry_message(&self, message_id: &str, now: DateTime<Utc>)
        -> Result<bool, StoreError>;

    /// Puts every dead message of `vcs` created since `since` back in the queue; returns the job.
    async fn start_recovery(
        &self,
        vcs: &VcsId,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<RecoveryProgress, StoreError>;

    /// How far a recovery job has come.
    async fn recovery_progress(&self, job_id: &str)
        -> Result<Option<RecoveryProgress>, StoreError>;

    /// Drops the payload of messages delivered before `before`, at most `batch` at a time.
    async fn prune_delivered_payloads(
        &self,
        before: DateTime<Utc>,
        batch: usize,
    ) -> Result<usize, StoreError>;

    /// Figures for `/metrics`.
    async fn outbox_stats(&self, now: DateTime<Utc>) -> Result<OutboxStats, StoreError>;
}

/// An access token the token endpoint issued, known by its SHA-256 digest (hex).
#[derive(Debug, Clone, PartialEq)]
pub struct IssuedToken {
    pub digest: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub expires_at: DateTime<Utc>,
}

/// A message claimed for sending.
#[derive(Debug, Clone)]
pub struct OutboxMessage {
    pub id: String,
    pub referral_id: String,
    pub target_kind: TargetKind,
    /// The VCS id, or the Subscription id.
    pub vcs_id: String,
    pub event_type: String,
    pub sequence: i64,
    pub payload: String,
    /// Attempts made before this one.
    pub attempts: i64,
}

/// What one attempt saw.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub at: DateTime<Utc>,
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    pub error: Option<String>,
    pub response_prefix: Option<String>,
}

/// What happens to a message after an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum NextStep {
    Delivered,
    RetryAt(DateTime<Utc>),
    /// No more attempts (schedule exhausted, or the receiver asked to abort).
    Dead,
    /// The endpoint answered 410 Gone: it is disabled and the message waits for it.
    EndpointGone,
}

#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub state: Option<String>,
    pub vcs: Option<String>,
    pub count: usize,
    pub offset: usize,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Delivery {
    pub id: String,
    pub referral_id: String,
    pub vcs_id: String,
    pub event_type: String,
    pub sequence: i64,
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: Option<String>,
    pub created_at: String,
    pub delivered_at: Option<String>,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct AttemptRow {
    pub attempted_at: String,
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    pub error: Option<String>,
    pub response_prefix: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RecoveryProgress {
    pub job_id: String,
    pub vcs_id: String,
    pub since: String,
    pub total: usize,
    pub pending: usize,
    pub delivered: usize,
    pub dead: usize,
    pub done: bool,
}

impl RecoveryProgress {
    /// Counts `n` of the job's messages found in `state`.
    pub fn add(&mut self, state: &str, n: usize) {
        self.total += n;
        match state {
            "pending" => self.pending += n,
            "delivered" => self.delivered += n,
            _ => self.dead += n,
        }
        self.done = self.pending == 0;
    }
}

#[derive(Debug, Clone, Default)]
pub struct OutboxStats {
    pub pending: usize,
    pub dead: usize,
    pub oldest_pending_age_seconds: f64,
}

/// Which database a `[storage] url` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `sqlite://PATH`: one gateway process owns the file.
    Sqlite,
    /// `postgres://…` (or `postgresql://…`): any number of replicas share the database.
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> Option<Backend> {
        if url
            .strip_prefix("sqlite://")
            .is_some_and(|path| !path.is_empty())
        {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }
}

fn unsupported(url: &str) -> StoreError {
    StoreError::Open {
        url: crate::config::redact_password(url),
        reason: "expected sqlite://PATH or postgres://…".into(),
    }
}

/// Opens the store `[storage]` names (migrating it, unless `migrate_on_start` is off).
pub async fn open(config: &StorageConfig) -> Result<Arc<dyn Store>, StoreError> {
    let url = config.url.as_str();
    match Backend::from_url(url) {
        Some(Backend::Sqlite) => {
            let path = url.trim_start_matches("sqlite://");
            Ok(Arc::new(
                sqlite::SqliteStore::open(path, config.migrate_on_start).await?,
            ))
        }
        Some(Backend::Postgres) => Ok(Arc::new(postgres::PostgresStore::open(url, config).await?)),
        None => Err(unsupported(url)),
    }
}

/// Applies pending migrations (`sp-gateway migrate`); returns what was applied now.
pub async fn migrate(config: &StorageConfig) -> Result<Vec<String>, StoreError> {
    let url = config.url.as_str();
    match Backend::from_url(url) {
        Some(Backend::Sqlite) => sqlite::migrate(url.trim_start_matches("sqlite://")),
        Some(Backend::Postgres) => postgres::migrate(url, config).await,
        None => Err(unsupported(url)),
    }
}

/// Timestamps are stored as fixed-width RFC 3339 UTC text, so text order is time order.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub fn parse_timestamp(text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Database(format!("bad stored timestamp {text:?}: {e}")))
}
