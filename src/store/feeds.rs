//! What the store keeps of the directory's polled feeds (the last poll of each), and what it
//! reads of the referrals made to directory services (for their responsiveness).

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::rows::Cells;
use super::StoreError;

/// What a feed's poll came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedOutcome {
    /// The feed was read and its valid services imported.
    Imported,
    /// The feed answered `304 Not Modified`: nothing changed.
    NotModified,
    /// The feed could not be read (transport, status, size, shape): nothing changed.
    Failed,
}

impl FeedOutcome {
    pub const ALL: &'static [FeedOutcome] = &[
        FeedOutcome::Imported,
        FeedOutcome::NotModified,
        FeedOutcome::Failed,
    ];

    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            FeedOutcome::Imported => "imported",
            FeedOutcome::NotModified => "not_modified",
            FeedOutcome::Failed => "failed",
        }
    }
}

impl std::str::FromStr for FeedOutcome {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        FeedOutcome::ALL
            .iter()
            .copied()
            .find(|o| o.as_str() == raw)
            .ok_or_else(|| format!("unknown feed outcome {raw:?}"))
    }
}

/// A feed's last poll, as the admin API shows it and the next poll starts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeedPoll {
    pub feed: String,
    pub polled_at: DateTime<Utc>,
    pub outcome: FeedOutcome,
    /// The status of the last HTTP answer read (none when no answer came).
    pub http_status: Option<u16>,
    pub imported: u32,
    /// Services that failed the UK profile's schema, left out.
    pub skipped: u32,
    /// Services the feed no longer lists, withdrawn by this poll.
    pub withdrawn: u32,
    /// Each skipped service's faults, or why the poll failed.
    pub faults: Vec<String>,
    /// The validators the next poll sends (`If-None-Match`, `If-Modified-Since`).
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub next_poll_at: DateTime<Utc>,
}

pub(crate) const FEED_POLL_COLUMNS: &str = "feed, polled_at, outcome, http_status, imported, \
     skipped, withdrawn, faults, etag, last_modified, next_poll_at";

/// What a poll replaces of its feed's row (both backends' upsert).
pub(crate) const FEED_POLL_UPDATE: &str = "ON CONFLICT (feed) DO UPDATE SET \
     polled_at = excluded.polled_at, outcome = excluded.outcome, \
     http_status = excluded.http_status, imported = excluded.imported, \
     skipped = excluded.skipped, withdrawn = excluded.withdrawn, faults = excluded.faults, \
     etag = excluded.etag, last_modified = excluded.last_modified, \
     next_poll_at = excluded.next_poll_at";

fn small<T: TryFrom<i64>>(feed: &str, n: i64) -> Result<T, StoreError> {
    T::try_from(n).map_err(|_| StoreError::unreadable("feed poll", feed, format!("count {n}")))
}

pub(crate) fn feed_poll<R: Cells + ?Sized>(row: &R) -> Result<FeedPoll, StoreError> {
    let feed = row.text(0)?;
    let outcome = row
        .text(2)?
        .parse()
        .map_err(|e: String| StoreError::unreadable("feed poll", &feed, e))?;
    let faults = serde_json::from_str(&row.text(7)?)
        .map_err(|e| StoreError::unreadable("feed poll", &feed, e))?;
    Ok(FeedPoll {
        polled_at: row.time(1)?,
        outcome,
        http_status: row.opt_int(3)?.map(|s| small(&feed, s)).transpose()?,
        imported: small(&feed, row.int(4)?)?,
        skipped: small(&feed, row.int(5)?)?,
        withdrawn: small(&feed, row.int(6)?)?,
        faults,
        etag: row.opt_text(8)?,
        last_modified: row.opt_text(9)?,
        next_poll_at: row.time(10)?,
        feed,
    })
}

impl FeedPoll {
    /// The faults as stored (a JSON array of strings).
    pub(crate) fn faults_json(&self) -> String {
        serde_json::Value::from(self.faults.clone()).to_string()
    }
}

/// A referral addressed to a directory service: when it was made, when its organisation first
/// answered it through the gateway (its Task first `accepted` or `rejected`), and whether it
/// was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceReferral {
    pub service_id: String,
    pub created_at: DateTime<Utc>,
    pub first_response_at: Option<DateTime<Utc>>,
    pub accepted: bool,
}

pub(crate) fn service_referral<R: Cells + ?Sized>(row: &R) -> Result<ServiceReferral, StoreError> {
    Ok(ServiceReferral {
        service_id: row.text(0)?,
        created_at: row.time(1)?,
        first_response_at: row.opt_time(2)?,
        accepted: row.int(3)? != 0,
    })
}
