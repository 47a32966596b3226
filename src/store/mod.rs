//! Storage behind one narrow trait per aggregate, so SQLite (default) and PostgreSQL share every
//! rule above them.
//!
//! What to write is decided above the traits (ids, normalised resources, the record, the outbox
//! message, what a delivery attempt leads to); a store only writes it atomically and answers the
//! uniqueness questions that must be settled inside the transaction (conditional create, BaRS
//! message ids). Rows become domain values in one place, [`rows`], for both backends.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::config::StorageConfig;

mod accounts;
mod feeds;
pub mod postgres;
mod reports;
pub(crate) mod rows;
pub mod sqlite;
mod traits;
mod types;

pub use accounts::{Account, Email, Membership, NewSession, OrgRole, Session};
pub use feeds::{FeedOutcome, FeedPoll, ServiceReferral};
pub use reports::{ReportKeys, ReportedReferral, ReportedScore};
pub use traits::{
    Accounts, Audit, DeliveryAdmin, Directory, DirectoryFeeds, Health, Outbox, Referrals,
    Reporting, Resources, Store, Subscriptions, Tokens,
};
pub use types::*;

/// Every store trait, for callers of `Arc<dyn Store>`.
pub mod prelude {
    pub use super::traits::{
        Accounts, Audit, DeliveryAdmin, Directory, DirectoryFeeds, Health, Outbox, Referrals,
        Reporting, Resources, Store, Subscriptions, Tokens,
    };
}

/// The cause of a database failure, kept for the logs.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A store failure. Client mistakes never arrive here; these are our own troubles.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage is unavailable: {0}")]
    Unavailable(String),
    /// The database has reached its configured size (`[storage] max_bytes`): writes that would
    /// grow it are refused before the disk is full.
    #[error("the database holds {used} bytes, its budget is {max}")]
    OverBudget { used: u64, max: u64 },
    /// The filesystem holding the database has less free space than `[storage]
    /// min_free_bytes`: writes that would grow the database are refused until room is made.
    #[error(
        "the disk holding the database has {free} bytes free, less than the {min_free} kept free"
    )]
    DiskLow { free: u64, min_free: u64 },
    #[error("storage error: {0}")]
    Database(#[source] Cause),
    #[error("cannot open storage at {url}: {reason}")]
    Open { url: String, reason: String },
    /// Stored content that cannot be read back (corrupt, or written by something else): never
    /// passed on as empty. Names the row, never its content.
    #[error("stored {what} {id} cannot be read: {reason}")]
    Unreadable {
        what: &'static str,
        id: String,
        reason: String,
    },
}

impl StoreError {
    /// A stored value that does not parse as what its column holds.
    pub fn unreadable(what: &'static str, id: impl Into<String>, reason: impl ToString) -> Self {
        StoreError::Unreadable {
            what,
            id: id.into(),
            reason: reason.to_string(),
        }
    }
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

/// Stored JSON that is not a resource version (a referral's record, a stored answer, a
/// Subscription): parsed, or an error naming its row (never `null`).
pub fn stored_json(
    what: &'static str,
    id: &str,
    text: &str,
) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::unreadable(what, id, e))
}

/// Timestamps are stored as fixed-width RFC 3339 UTC text, so text order is time order.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub fn parse_timestamp(text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::unreadable("timestamp", text, e))
}
