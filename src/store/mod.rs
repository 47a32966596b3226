//! Storage behind one trait, so SQLite (default) and later PostgreSQL share every rule above it.
//!
//! What to write is decided above the trait (ids, normalised resources, the record, the outbox
//! message); a store only writes it atomically and answers the uniqueness questions that must
//! be settled inside the transaction (conditional create, BaRS message ids).

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};

use crate::domain::{ClientId, FhirId, Identifier, ReferralId, VcsId};

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

/// A resource to store as version 1.
#[derive(Debug, Clone)]
pub struct NewResource {
    pub resource_type: String,
    pub id: FhirId,
    pub content: String,
}

/// A message for the delivery worker.
#[derive(Debug, Clone)]
pub struct NewOutboxMessage {
    pub id: String,
    pub event_type: String,
    pub sequence: i64,
    pub payload: String,
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
    /// Every normalised resource, the ServiceRequest included.
    pub resources: Vec<NewResource>,
    pub record: String,
    pub outbox: NewOutboxMessage,
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

    /// Messages waiting in the outbox (the delivery worker's queue depth).
    async fn pending_outbox_count(&self) -> Result<usize, StoreError>;
}

/// Opens the store named by a `[storage] url`.
pub async fn open(url: &str) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    match url.strip_prefix("sqlite://") {
        Some(path) => Ok(std::sync::Arc::new(sqlite::SqliteStore::open(path).await?)),
        None => Err(StoreError::Open {
            url: url.to_string(),
            reason: "only sqlite:// URLs are supported".into(),
        }),
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
