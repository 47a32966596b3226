//! What the store keeps and reads for the operator pages: intake refusals counted per day, GP
//! client and rule (no patient data, nothing of the refused body), each VCS webhook's health,
//! and the outbox's messages counted by target and state. Rows become these values here, for
//! both backends.

use chrono::{DateTime, NaiveDate, Utc};

use super::rows::Cells;
use super::types::{DeliveryState, TargetKind};
use super::StoreError;
use crate::domain::ClientId;

/// How many submissions of one GP client broke one rule on one day (UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusalCount {
    pub day: NaiveDate,
    pub client: ClientId,
    /// The rule's message id, as the OperationOutcome names it (`sp-…`, or the issue code).
    pub message_id: String,
    pub refusals: u64,
}

/// A VCS webhook's health as its delivery attempts left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointHealth {
    pub vcs_id: String,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_failure_at: Option<DateTime<Utc>>,
    /// What the last failed attempt saw.
    pub last_error: Option<String>,
    /// Attempts failed since the last success.
    pub failure_streak: u64,
}

/// How many outbox messages to one target are in one state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryCount {
    pub target_kind: TargetKind,
    /// The VCS id (webhook, email) or the Subscription id.
    pub target: String,
    pub state: DeliveryState,
    pub messages: u64,
}

pub const REFUSAL_COLUMNS: &str = "day, client_id, message_id, refusals";

fn unreadable(what: &'static str, id: &str, reason: impl ToString) -> StoreError {
    StoreError::unreadable(what, id, reason)
}

fn counted(what: &'static str, id: &str, n: i64) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|e| unreadable(what, id, e))
}

/// A row of `REFUSAL_COLUMNS` (the day as `YYYY-MM-DD` text).
pub fn refusal_count<R: Cells + ?Sized>(row: &R) -> Result<RefusalCount, StoreError> {
    let day = row.text(0)?;
    let what = "intake refusal count";
    Ok(RefusalCount {
        day: NaiveDate::parse_from_str(&day, "%Y-%m-%d").map_err(|e| unreadable(what, &day, e))?,
        client: row
            .text(1)?
            .parse()
            .map_err(|e| unreadable(what, &day, e))?,
        message_id: row.text(2)?,
        refusals: counted(what, &day, row.int(3)?)?,
    })
}

pub const HEALTH_COLUMNS: &str =
    "vcs_id, last_success_at, last_failure_at, last_error, failure_streak";

pub fn endpoint_health<R: Cells + ?Sized>(row: &R) -> Result<EndpointHealth, StoreError> {
    let vcs_id = row.text(0)?;
    Ok(EndpointHealth {
        last_success_at: row.opt_time(1)?,
        last_failure_at: row.opt_time(2)?,
        last_error: row.opt_text(3)?,
        failure_streak: counted("endpoint health", &vcs_id, row.int(4)?)?,
        vcs_id,
    })
}

/// `target_kind, vcs_id, state, COUNT(*)` of the outbox, grouped.
pub fn delivery_count<R: Cells + ?Sized>(row: &R) -> Result<DeliveryCount, StoreError> {
    let target = row.text(1)?;
    let what = "delivery count";
    Ok(DeliveryCount {
        target_kind: row
            .text(0)?
            .parse()
            .map_err(|e| unreadable(what, &target, e))?,
        state: row
            .text(2)?
            .parse()
            .map_err(|e| unreadable(what, &target, e))?,
        messages: counted(what, &target, row.int(3)?)?,
        target,
    })
}

/// What one delivery attempt does to its webhook's health: a success ends the streak, a failure
/// adds to it and names what went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthChange {
    Success,
    Failure(String),
}

impl HealthChange {
    /// From the attempt's error and status, and whether it delivered the message.
    pub fn of(delivered: bool, error: Option<&str>, status: Option<u16>) -> Self {
        if delivered {
            return HealthChange::Success;
        }
        HealthChange::Failure(match (error, status) {
            (Some(error), _) => error.to_string(),
            (None, Some(status)) => format!("HTTP {status}"),
            (None, None) => "no answer".to_string(),
        })
    }

    /// `(succeeded, error)` as bound in the upsert.
    pub fn columns(&self) -> (bool, Option<&str>) {
        match self {
            HealthChange::Success => (true, None),
            HealthChange::Failure(error) => (false, Some(error)),
        }
    }
}
