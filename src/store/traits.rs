//! The store, one narrow trait per aggregate, and [`Store`], all of them together.
//!
//! Callers hold an `Arc<dyn Store>` and call any method on it; bring the aggregate's trait into
//! scope (`use crate::store::prelude::*` brings them all).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use super::accounts::{Account, Email, NewSession, Session};
use super::feeds::{FeedPoll, ServiceReferral};
use super::reports::{ReportedReferral, ReportedScore};
use super::types::*;
use super::StoreError;
use crate::domain::{ClientId, Identifier, VcsId};

/// Referrals: intake, the closed loop's changes, and what a VCS organisation lists.
#[async_trait]
pub trait Referrals: Send + Sync {
    /// Stores an accepted referral atomically. With `condition` (conditional create), an
    /// existing referral of this client carrying that identifier is returned instead.
    async fn create_referral(
        &self,
        referral: NewReferral,
        condition: Option<Identifier>,
    ) -> Result<CreateOutcome, StoreError>;

    /// `client`'s ServiceRequests matching `query`, oldest first.
    async fn search_referrals(
        &self,
        client: &ClientId,
        query: &ReferralQuery,
    ) -> Result<SearchPage, StoreError>;

    /// A referral's state, whoever it belongs to (callers check tenancy).
    async fn load_referral(&self, referral_id: &str) -> Result<Option<ReferralState>, StoreError>;

    /// Applies a change atomically if the referral is still at `expected_revision` and its
    /// Idempotency-Key (if any) has no answer stored on this referral yet; otherwise nothing is
    /// written and the answer is `Conflict` (the caller reloads, and finds the stored answer).
    async fn apply_change(&self, change: ReferralChange) -> Result<ChangeOutcome, StoreError>;

    /// The stored answer to an earlier request of `owner` on `referral_id` with this
    /// Idempotency-Key (a key names one request on one referral).
    async fn idempotent_response(
        &self,
        owner: &str,
        referral_id: &str,
        key: &str,
    ) -> Result<Option<StoredResponse>, StoreError>;

    /// Why this store refuses every write from now on (the SQLite writer after a commit or WAL
    /// fsync failed: it can no longer promise what it answers), or `None`. Readiness and
    /// `/metrics` report it.
    fn write_refusal(&self) -> Option<String> {
        None
    }

    /// How many bytes the database takes (SQLite: its file, its WAL and its shared-memory file;
    /// PostgreSQL: the database), for the storage budget.
    async fn used_bytes(&self) -> Result<u64, StoreError>;

    /// The bytes free to this process on the filesystem that holds the database (SQLite), for
    /// `[storage] min_free_bytes`; `None` where the gateway cannot see that disk (PostgreSQL:
    /// it is the database server's).
    async fn free_bytes(&self) -> Result<Option<u64>, StoreError>;

    /// The referrals routed to `vcs`, changed since `query.since`, oldest change first.
    async fn list_vcs_referrals(
        &self,
        vcs: &VcsId,
        query: &VcsReferralQuery,
    ) -> Result<(usize, Vec<VcsReferral>), StoreError>;
}

/// The versioned FHIR resources of referrals, as their GP systems read them.
#[async_trait]
pub trait Resources: Send + Sync {
    /// The `which` versions of a resource of `client`'s referrals, newest first.
    async fn versions(
        &self,
        client: &ClientId,
        resource_type: &str,
        id: &str,
        which: Versions,
    ) -> Result<Vec<StoredResource>, StoreError>;

    /// Current Tasks or Observations of `client`'s referrals matching `query`.
    async fn search_resources(
        &self,
        client: &ClientId,
        resource_type: &str,
        query: &ResourceQuery,
    ) -> Result<SearchPage, StoreError>;

    /// The current version of a resource, if it belongs to one of `client`'s referrals.
    async fn read_resource(
        &self,
        client: &ClientId,
        resource_type: &str,
        id: &str,
    ) -> Result<Option<StoredResource>, StoreError> {
        let which = Versions::Current;
        Ok(self
            .versions(client, resource_type, id, which)
            .await?
            .into_iter()
            .next())
    }

    /// Every version of a resource of `client`'s referrals, newest first.
    async fn history(
        &self,
        client: &ClientId,
        resource_type: &str,
        id: &str,
    ) -> Result<Vec<StoredResource>, StoreError> {
        self.versions(client, resource_type, id, Versions::All)
            .await
    }

    /// One version of a resource of `client`'s referrals.
    async fn read_version(
        &self,
        client: &ClientId,
        resource_type: &str,
        id: &str,
        version_id: i64,
    ) -> Result<Option<StoredResource>, StoreError> {
        let which = Versions::One(version_id);
        Ok(self
            .versions(client, resource_type, id, which)
            .await?
            .into_iter()
            .next())
    }
}

/// GP systems' rest-hook Subscriptions.
#[async_trait]
pub trait Subscriptions: Send + Sync {
    /// Stores a Subscription unless its client already has `limit` active ones (`false`: nothing
    /// stored). Counting and storing are one step: concurrent creates cannot pass the limit.
    async fn create_subscription(
        &self,
        subscription: SubscriptionRow,
        at: DateTime<Utc>,
        limit: usize,
    ) -> Result<bool, StoreError>;

    /// Active subscriptions of `client` on `resource_type`.
    async fn subscriptions_for(
        &self,
        client: &ClientId,
        resource_type: &str,
    ) -> Result<Vec<SubscriptionRow>, StoreError>;

    async fn subscription(&self, id: &str) -> Result<Option<SubscriptionRow>, StoreError>;

    /// Switches a subscription off (the GP deleted it); returns whether it existed for `client`.
    async fn delete_subscription(&self, client: &ClientId, id: &str) -> Result<bool, StoreError>;
}

/// The audit trail.
#[async_trait]
pub trait Audit: Send + Sync {
    /// Records a read, a search or a refused access (creates, changes and disclosures are
    /// audited inside their own transactions).
    async fn record_access(&self, access: Access) -> Result<(), StoreError> {
        self.record_accesses(vec![access]).await
    }

    /// Records several accesses at once, all or none: one per resource a search returned, so
    /// each patient whose record it disclosed is named. An access without a patient takes the
    /// patient of the stored resource it names.
    async fn record_accesses(&self, accesses: Vec<Access>) -> Result<(), StoreError>;

    /// Audit records, oldest first, for `GET /fhir/AuditEvent`.
    async fn audit_events(
        &self,
        query: &AuditQuery,
    ) -> Result<(usize, Vec<AuditRecord>), StoreError>;
}

/// Tokens and client assertions (shared by every replica).
#[async_trait]
pub trait Tokens: Send + Sync {
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
        client: &ClientId,
        jti: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
}

/// The outbox, as the delivery worker uses it.
#[async_trait]
pub trait Outbox: Send + Sync {
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

    /// Writes one attempt and what follows from it (decided by `delivery::outcome`), releasing
    /// the lease.
    async fn record_attempt(
        &self,
        message_id: &str,
        record: AttemptRecord,
    ) -> Result<(), StoreError>;

    /// Signing secrets for `vcs` now (newest first).
    async fn signing_secrets(
        &self,
        vcs: &VcsId,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError>;

    /// Drops the payload of messages delivered before `before`, at most `batch` at a time.
    async fn prune_delivered_payloads(
        &self,
        before: DateTime<Utc>,
        batch: usize,
    ) -> Result<usize, StoreError>;
}

/// What operators do with deliveries and endpoints.
#[async_trait]
pub trait DeliveryAdmin: Send + Sync {
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

    /// Makes a message due now: a delivered or dead one goes back in the queue for one more
    /// attempt, a pending one (waiting for its next retry) is tried at once. `false` when the
    /// message is unknown or its payload was pruned.
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

    /// Figures for `/metrics`.
    async fn outbox_stats(&self, now: DateTime<Utc>) -> Result<OutboxStats, StoreError>;
}

/// Whether the database can serve, for the readiness probe.
#[async_trait]
pub trait Health: Send + Sync {
    /// How many of this build's migrations the database lacks (0: current). Reaching the
    /// database to answer is the reachability check: an error means it cannot be used now.
    async fn migrations_missing(&self) -> Result<usize, StoreError>;
}

/// The service directory: services imported from Open Referral UK feeds, with their FHIR
/// resources. Services are keyed by their Open Referral UK id and never deleted (referrals point
/// at them): importing again updates them, a full import withdraws those its feed dropped.
#[async_trait]
pub trait Directory: Send + Sync {
    /// Writes an import atomically: each service, its organisation (with its identifiers,
    /// replacing those stored) and locations, created or updated by id; with `full`, the
    /// feed's other services become `withdrawn`.
    async fn import_directory(
        &self,
        import: DirectoryImport,
    ) -> Result<DirectoryImportOutcome, StoreError>;

    /// Every stored service, withdrawn ones included, by id.
    async fn directory_services(&self) -> Result<Vec<DirectoryService>, StoreError>;

    /// One service by its id.
    async fn directory_service(&self, id: &str) -> Result<Option<DirectoryService>, StoreError>;

    /// A directory Organization or Location by its id (its stored JSON).
    async fn directory_resource(
        &self,
        resource_type: DirectoryResourceType,
        id: &str,
    ) -> Result<Option<String>, StoreError>;
}

/// The directory's polled feeds: the last poll of each (one row per feed, replaced by each
/// poll), which the next poll starts from and the admin API shows.
#[async_trait]
pub trait DirectoryFeeds: Send + Sync {
    /// The last poll of every feed polled so far, by feed.
    async fn feed_polls(&self) -> Result<Vec<FeedPoll>, StoreError>;

    /// Records a feed's poll in place of its last one.
    async fn record_feed_poll(&self, poll: &FeedPoll) -> Result<(), StoreError>;

    /// The referrals made since `since` to a directory service (the record names the service),
    /// with their first answer (the first Task version `accepted` or `rejected`, as recorded)
    /// and whether they were accepted: what the services' responsiveness is computed from.
    async fn service_referrals(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<ServiceReferral>, StoreError>;
}

/// People who sign in to the web inbox, and their sessions.
#[async_trait]
pub trait Accounts: Send + Sync {
    /// Stores a new account; `false` (nothing written) when its email is taken.
    async fn create_account(&self, account: Account) -> Result<bool, StoreError>;

    async fn account_by_email(&self, email: &Email) -> Result<Option<Account>, StoreError>;

    /// Every account, by email.
    async fn accounts(&self) -> Result<Vec<Account>, StoreError>;

    /// Disables an account (ending its sessions) or enables it again; `false`: no such account.
    async fn set_account_disabled(&self, email: &Email, disabled: bool)
        -> Result<bool, StoreError>;

    /// Replaces the password hash and ends every session of the account; `false`: no such
    /// account.
    async fn set_password(&self, email: &Email, password_hash: &str) -> Result<bool, StoreError>;

    async fn create_session(&self, session: NewSession) -> Result<(), StoreError>;

    /// The session with this digest, if it was used at or after `idle_since` and its account is
    /// enabled; it is then marked used at `now`. Sessions idle since before `idle_since` are
    /// removed.
    async fn session(
        &self,
        digest: &str,
        idle_since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError>;

    /// Ends a session (signing out); nothing happens for an unknown digest.
    async fn end_session(&self, digest: &str) -> Result<(), StoreError>;
}

/// What the commissioners' reports read: grouping keys, status times and scores of the referrals
/// received in a period, never a person's details.
#[async_trait]
pub trait Reporting: Send + Sync {
    /// The referrals received from `from` (inclusive) to `to` (exclusive), each with the first
    /// time every VCS status was recorded for it, ordered by referral.
    async fn reported_referrals(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<ReportedReferral>, StoreError>;

    /// The current wellbeing scores of the referrals received from `from` to `to` (exclusive).
    async fn reported_scores(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<ReportedScore>, StoreError>;
}

/// Every aggregate of one backend: what the gateway holds as `Arc<dyn Store>` (each aggregate
/// trait is `Send + Sync` already).
pub trait Store:
    Referrals
    + Resources
    + Subscriptions
    + Audit
    + Tokens
    + Outbox
    + DeliveryAdmin
    + Health
    + Directory
    + DirectoryFeeds
    + Accounts
    + Reporting
{
}

/// Any type with every aggregate is a store.
impl<
        T: Referrals
            + Resources
            + Subscriptions
            + Audit
            + Tokens
            + Outbox
            + DeliveryAdmin
            + Health
            + Directory
            + DirectoryFeeds
            + Accounts
            + Reporting,
    > Store for T
{
}
