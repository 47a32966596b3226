//! What the store keeps and hands back: the same for every backend.

use chrono::{DateTime, Utc};

use crate::domain::{Actor, ClientId, FhirId, Identifier, ReferralId, VcsId};
use crate::translate::vcs_status::VcsStatus;

/// A resource version as stored.
#[derive(Debug, Clone)]
pub struct StoredResource {
    pub resource_type: String,
    pub id: String,
    pub version_id: i64,
    pub last_updated: DateTime<Utc>,
    pub content: String,
}

impl StoredResource {
    /// The stored JSON; content that does not parse is an error naming the resource.
    pub fn json(&self) -> Result<serde_json::Value, super::StoreError> {
        serde_json::from_str(&self.content).map_err(|e| super::StoreError::Unreadable {
            what: "resource",
            id: format!(
                "{}/{}/_history/{}",
                self.resource_type, self.id, self.version_id
            ),
            reason: e.to_string(),
        })
    }
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
    /// An email notice to an organisation's `notify_emails`; the target is its `VcsId`.
    Email,
}

impl TargetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Vcs => "vcs",
            TargetKind::Subscription => "subscription",
            TargetKind::Email => "email",
        }
    }
}

impl std::str::FromStr for TargetKind {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw {
            "vcs" => Ok(TargetKind::Vcs),
            "subscription" => Ok(TargetKind::Subscription),
            "email" => Ok(TargetKind::Email),
            other => Err(format!("unknown target kind {other:?}")),
        }
    }
}

/// A state kept as text in one column: the enum, every value (`ALL`), its one text form
/// (`as_str`, also its JSON), and the one way back (`FromStr`, naming what it is on failure).
macro_rules! stored_state {
    ($(#[$doc:meta])* $name:ident, $what:literal, { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored text (and the APIs').
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;

            fn from_str(raw: &str) -> Result<Self, Self::Err> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|s| s.as_str() == raw)
                    .ok_or_else(|| format!(concat!("unknown ", $what, " {:?}"), raw))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

stored_state!(
    /// Where an outbox message stands.
    DeliveryState, "delivery state", {
        /// Waiting for its next attempt (or for its endpoint to be switched back on).
        Pending = "pending",
        Delivered = "delivered",
        /// No more attempts: an operator may retry or recover it.
        Dead = "dead",
    }
);

stored_state!(
    /// A referral's ServiceRequest status (FHIR `request-status`), as `referrals.status` keeps it.
    ReferralStatus, "ServiceRequest status", {
        Draft = "draft",
        Active = "active",
        OnHold = "on-hold",
        Revoked = "revoked",
        Completed = "completed",
        EnteredInError = "entered-in-error",
        Unknown = "unknown",
    }
);

stored_state!(
    /// Whether a Subscription is sent notifications (`off` once its GP system deleted it).
    SubscriptionStatus, "Subscription status", {
        Active = "active",
        Off = "off",
    }
);

/// A message for the delivery worker.
#[derive(Debug, Clone)]
pub struct NewOutboxMessage {
    pub id: String,
    pub target_kind: TargetKind,
    pub target: String,
    pub event_type: String,
    /// Counts per referral and target, from 1: receivers see a referral's events in order.
    pub sequence: i64,
    pub payload: Payload,
}

/// What a queued message carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// This text (a webhook envelope; empty for a notification without a payload).
    Text(String),
    /// A resource version stored with the same change, read when the message is sent: one copy
    /// serves every notification about it, however many Subscriptions match.
    Stored {
        resource_type: String,
        id: String,
        version_id: i64,
    },
}

impl Payload {
    /// (text kept in the row, and the stored version it names: type, id, version).
    pub fn columns(&self) -> (&str, Option<(&str, &str, i64)>) {
        match self {
            Payload::Text(text) => (text, None),
            Payload::Stored {
                resource_type,
                id,
                version_id,
            } => ("", Some((resource_type, id, *version_id))),
        }
    }
}

/// The stored state of one referral, read before a change is computed.
#[derive(Debug, Clone)]
pub struct ReferralState {
    pub referral_id: ReferralId,
    pub client_id: ClientId,
    pub vcs_id: VcsId,
    pub patient_id: FhirId,
    pub status: ReferralStatus,
    pub vcs_status: VcsStatus,
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
    /// The referral record as JSON.
    pub fn record_json(&self) -> Result<serde_json::Value, super::StoreError> {
        super::stored_json("referral record", self.referral_id.as_str(), &self.record)
    }

    /// The sequence number the next message to this target gets.
    pub fn next_sequence(&self, kind: TargetKind, target: &str) -> i64 {
        self.sequences
            .iter()
            .find(|(k, t, _)| *k == kind && t == target)
            .map_or(1, |(_, _, last)| last + 1)
    }
}

/// An audit entry as written inside a referral's transaction: about its patient, with the
/// request's correlation id.
#[derive(Debug, Clone)]
pub struct AuditRow<'a> {
    pub entry: &'a AuditEntry,
    pub patient_id: &'a str,
    pub correlation_id: Option<&'a str>,
}

/// One audit entry (our ids only).
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub actor: Actor,
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
}

/// A read or search to audit. `patient_id` is found from the resource when not given.
#[derive(Debug, Clone)]
pub struct Access {
    pub at: DateTime<Utc>,
    pub actor: Actor,
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
    /// Records about this resource: (type, id), e.g. `("Subscription", "…")`.
    pub entity: Option<(String, String)>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Records of this actor (its text form, `person:…`, `vcs:…`).
    pub actor: Option<String>,
    /// Records of this action (`read`, `login`, `retry`).
    pub action: Option<String>,
    /// Newest first (the operator pages) rather than oldest first (`/fhir/AuditEvent`).
    pub newest_first: bool,
    pub count: usize,
    pub offset: usize,
}

/// One stored audit record.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub id: i64,
    pub recorded_at: String,
    pub actor: Actor,
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
    pub referral_id: ReferralId,
    /// The revision the change was computed from; a different stored revision means a conflict.
    pub expected_revision: i64,
    pub status: Option<ReferralStatus>,
    pub vcs_status: Option<VcsStatus>,
    pub resources: Vec<NewResource>,
    pub outbox: Vec<NewOutboxMessage>,
    pub audit: Vec<AuditEntry>,
    /// Stored with the change, so a repeated request gets the same answer.
    pub idempotency: Option<(String, String, StoredResponse)>,
    pub correlation_id: Option<String>,
    pub at: DateTime<Utc>,
    /// A referral created with the change, in its transaction (an onward referral).
    pub onward: Option<Box<NewReferral>>,
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
    /// Resources of the referrals based on this referral (`Task?part-of=`).
    pub based_on: Option<String>,
    pub patient_id: Option<String>,
    pub code: Option<(Option<String>, String)>,
    pub count: usize,
    pub offset: usize,
}

impl ResourceQuery {
    /// The code filter as bound: an exact `system|value`, or a LIKE pattern for any system.
    pub fn code_filters(&self) -> (Option<String>, Option<String>) {
        match &self.code {
            Some((Some(system), value)) => (Some(format!("{system}|{value}")), None),
            Some((None, value)) => (None, Some(format!("%|{value}"))),
            None => (None, None),
        }
    }
}

/// Filters of a VCS organisation's referral list.
#[derive(Debug, Clone, Default)]
pub struct VcsReferralQuery {
    pub status: Option<VcsStatus>,
    /// Changed at or after this.
    pub since: Option<DateTime<Utc>>,
    pub count: usize,
    pub offset: usize,
}

/// Which versions of a resource to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versions {
    Current,
    One(i64),
    /// Every version, newest first.
    All,
}

/// A referral as a VCS organisation lists it.
#[derive(Debug, Clone)]
pub struct VcsReferral {
    pub referral_id: ReferralId,
    pub status: VcsStatus,
    pub updated_at: DateTime<Utc>,
    pub record: String,
}

impl VcsReferral {
    /// The referral record as JSON.
    pub fn record_json(&self) -> Result<serde_json::Value, super::StoreError> {
        super::stored_json("referral record", self.referral_id.as_str(), &self.record)
    }
}

/// A GP system's rest-hook Subscription.
#[derive(Debug, Clone)]
pub struct SubscriptionRow {
    pub id: String,
    pub client_id: ClientId,
    pub resource_type: String,
    pub criteria: String,
    pub endpoint: String,
    pub status: SubscriptionStatus,
    pub content: String,
}

impl SubscriptionRow {
    /// The Subscription resource as stored.
    pub fn json(&self) -> Result<serde_json::Value, super::StoreError> {
        super::stored_json("subscription", &self.id, &self.content)
    }
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
    pub status: ReferralStatus,
    pub received_content_type: String,
    pub received_body: Vec<u8>,
    /// Every normalised resource, the ServiceRequest and the Task included.
    pub resources: Vec<NewResource>,
    pub task_id: FhirId,
    pub record: String,
    pub outbox: Vec<NewOutboxMessage>,
    pub correlation_id: Option<String>,
    pub created_at: DateTime<Utc>,
    /// An onward referral: the referral it is based on, and the link worker that made it.
    pub onward: Option<(ReferralId, VcsId)>,
}

impl NewReferral {
    /// The audit entry of the create, written with it.
    pub fn creation_audit(&self) -> AuditEntry {
        let (actor, action) = match &self.onward {
            Some((_, by)) => (Actor::Vcs(by.clone()), "onward"),
            None => (Actor::Client(self.client_id.clone()), "create"),
        };
        AuditEntry {
            actor,
            action: action.into(),
            resource_type: "ServiceRequest".into(),
            resource_id: self.referral_id.to_string(),
        }
    }

    /// `entry` (the creation's) as written with the referral.
    pub fn audit_row<'a>(&'a self, entry: &'a AuditEntry) -> AuditRow<'a> {
        AuditRow {
            entry,
            patient_id: self.patient_id.as_str(),
            correlation_id: self.correlation_id.as_deref(),
        }
    }
}

impl ReferralChange {
    /// The change's audit entries, about `patient_id`.
    pub fn audit_rows<'a>(&'a self, patient_id: &'a str) -> impl Iterator<Item = AuditRow<'a>> {
        self.audit.iter().map(move |entry| AuditRow {
            entry,
            patient_id,
            correlation_id: self.correlation_id.as_deref(),
        })
    }
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
    /// Referrals based on this one (onward referrals).
    pub based_on: Option<String>,
    pub count: usize,
    pub offset: usize,
}

/// One page of search results and the total number of matches.
#[derive(Debug)]
pub struct SearchPage {
    pub total: usize,
    pub resources: Vec<StoredResource>,
}

/// An access token the token endpoint issued, known by its SHA-256 digest (hex).
#[derive(Debug, Clone, PartialEq)]
pub struct IssuedToken {
    pub digest: String,
    pub client_id: ClientId,
    pub scopes: Vec<String>,
    pub expires_at: DateTime<Utc>,
}

/// A message claimed for sending.
#[derive(Debug, Clone)]
pub struct OutboxMessage {
    pub id: String,
    pub referral_id: ReferralId,
    pub target_kind: TargetKind,
    /// The VCS id, or the Subscription id.
    pub vcs_id: String,
    pub event_type: String,
    pub sequence: i64,
    pub payload: String,
    /// Attempts made before this one.
    pub attempts: i64,
    /// Who reading the payload discloses the patient's details to.
    pub recipient: Actor,
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
    /// The endpoint answered 410 Gone: it is switched off (`SwitchOff`).
    EndpointGone,
}

/// What a 410 Gone switches off, decided above the store (`delivery::outcome`).
#[derive(Debug, Clone, PartialEq)]
pub enum SwitchOff {
    /// A VCS organisation's endpoint (its `VcsId`): its messages wait until an operator switches
    /// it back on.
    VcsEndpoint { vcs: String, reason: String },
    /// A GP Subscription (its id): it becomes `off`, and none of its messages is sent again.
    Subscription { id: String },
}

/// Everything one attempt writes, decided above the store (`delivery::outcome`): the attempt,
/// the message's new state, the disclosure to audit and the endpoint to switch off.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub attempt: Attempt,
    pub state: DeliveryState,
    pub next_attempt_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    /// Audited in the same transaction, about the patient of the entry's referral; the message
    /// id is its correlation id.
    pub disclosure: Option<AuditEntry>,
    /// The endpoint or Subscription to switch off.
    pub switch_off: Option<SwitchOff>,
}

#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub state: Option<DeliveryState>,
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
    pub state: DeliveryState,
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
    /// A job with nothing counted yet.
    pub fn new(job_id: &str, vcs_id: String, since: String) -> Self {
        RecoveryProgress {
            job_id: job_id.to_string(),
            vcs_id,
            since,
            total: 0,
            pending: 0,
            delivered: 0,
            dead: 0,
            done: true,
        }
    }

    /// Counts `n` of the job's messages found in `state`.
    pub fn add(&mut self, state: DeliveryState, n: usize) {
        self.total += n;
        match state {
            DeliveryState::Pending => self.pending += n,
            DeliveryState::Delivered => self.delivered += n,
            DeliveryState::Dead => self.dead += n,
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

impl OutboxStats {
    /// The figures from the counts and the oldest pending message's creation.
    pub fn at(
        now: DateTime<Utc>,
        pending: usize,
        dead: usize,
        oldest: Option<DateTime<Utc>>,
    ) -> Self {
        OutboxStats {
            pending,
            dead,
            oldest_pending_age_seconds: oldest.map_or(0.0, |oldest| {
                (now - oldest).num_milliseconds().max(0) as f64 / 1000.0
            }),
        }
    }
}

#[cfg(test)]
mod tests;

stored_state!(
    /// Whether a directory service is listed: as its feed says (`active`, `inactive`), or
    /// `withdrawn` when a full import of its feed no longer carried it (kept, never deleted:
    /// referrals point at it).
    DirectoryState, "directory service state", {
        Active = "active",
        Inactive = "inactive",
        Withdrawn = "withdrawn",
    }
);

impl DirectoryState {
    pub fn is_active(self) -> bool {
        self == DirectoryState::Active
    }
}

/// A directory organisation to store: its `Organization` and the identifiers it is routed on.
#[derive(Debug, Clone)]
pub struct NewDirectoryOrganization {
    pub id: String,
    pub content: String,
    pub identifiers: Vec<Identifier>,
}

/// One service of an import: its Open Referral UK id (also the FHIR id of its
/// HealthcareService), the feed's JSON, and its FHIR resources.
#[derive(Debug, Clone)]
pub struct NewDirectoryService {
    pub id: String,
    pub name: String,
    /// `Active` or `Inactive`, as the feed says.
    pub state: DirectoryState,
    /// The Open Referral UK service, as the feed gave it (the index is rebuilt from it).
    pub source: String,
    /// The `HealthcareService`.
    pub content: String,
    pub organization: Option<NewDirectoryOrganization>,
    /// `(id, Location)` of its places and areas.
    pub locations: Vec<(String, String)>,
}

/// What one import writes, in one transaction.
#[derive(Debug, Clone)]
pub struct DirectoryImport {
    /// Which feed the services come from (`files` for the command line, a feed's id when polled).
    pub feed: String,
    /// The whole feed: its services missing from `services` become `withdrawn`.
    pub full: bool,
    pub services: Vec<NewDirectoryService>,
    pub at: DateTime<Utc>,
}

/// What an import changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirectoryImportOutcome {
    pub created: usize,
    pub updated: usize,
    /// Services of the feed that a full import did not carry, withdrawn now.
    pub withdrawn: usize,
}

/// A stored directory service.
#[derive(Debug, Clone)]
pub struct DirectoryService {
    pub id: String,
    pub feed: String,
    pub name: String,
    pub state: DirectoryState,
    pub organization_id: Option<String>,
    /// The identifiers of its organisation (charity, company, ODS).
    pub organization_identifiers: Vec<Identifier>,
    pub source: String,
    pub content: String,
    pub updated_at: DateTime<Utc>,
}

impl DirectoryService {
    /// The stored `HealthcareService`, its `active` as the stored state says.
    pub fn json(&self) -> Result<serde_json::Value, super::StoreError> {
        let mut v = super::stored_json("directory service", &self.id, &self.content)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("active".into(), self.state.is_active().into());
        }
        Ok(v)
    }

    /// The feed's service as stored.
    pub fn source_json(&self) -> Result<serde_json::Value, super::StoreError> {
        super::stored_json("directory service", &self.id, &self.source)
    }
}

stored_state!(
    /// The resource types the directory keeps beside its services.
    DirectoryResourceType, "directory resource type", {
        Organization = "Organization",
        Location = "Location",
    }
);
