//! What the commissioners' reports read: per referral, the keys it is grouped by and when each
//! VCS status was first recorded; per outcome score, its value and timepoint. Never a name, an
//! NHS number or a record: the reports add these up and show only the totals.

use chrono::{DateTime, Utc};

use super::rows::Cells;
use super::StoreError;
use crate::domain::{NeedCategory, OdsCode, VcsId};
use crate::translate::decline_reason::DeclineReason;
use crate::translate::instruments::Timepoint;
use crate::translate::vcs_status::VcsStatus;

/// What a referral is grouped by in a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportKeys {
    /// Our id of the referral: to tell referrals apart, never shown.
    pub referral_id: String,
    /// When the gateway accepted the referral.
    pub received_at: DateTime<Utc>,
    /// The referring GP practice (its ODS code, as the record carries it).
    pub practice: Option<OdsCode>,
    /// The VCS organisation the referral went to.
    pub organisation: VcsId,
    /// The category of the referral's first need that has one.
    pub need: Option<NeedCategory>,
}

/// A referral received in a report's period, with the first time each VCS status was recorded
/// for it (the Task version that first carried it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedReferral {
    pub keys: ReportKeys,
    pub first_recorded: Vec<(VcsStatus, DateTime<Utc>)>,
    /// The coded reason of a decline (`Task.statusReason.coding` from our `decline-reason`),
    /// `None` when the referral was not declined or was declined in words only.
    pub decline_reason: Option<DeclineReason>,
}

/// One current wellbeing score of a referral received in a report's period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedScore {
    pub keys: ReportKeys,
    /// The score's code in CodeSystem wellbeing-measure (`wemwbs-total`, `ons4-anxiety`, …).
    pub measure: String,
    pub timepoint: Timepoint,
    /// When the questionnaire was answered.
    pub effective: DateTime<Utc>,
    pub value: i64,
}

/// The columns `report_keys` reads, in order, from `referrals r`; each backend writes its own
/// JSON expressions for the practice (3) and the need category (4).
pub(crate) fn report_keys<R: Cells + ?Sized>(row: &R) -> Result<ReportKeys, StoreError> {
    let referral_id = row.text(0)?;
    let unreadable = |reason: String| StoreError::unreadable("referral", &referral_id, reason);
    let practice = match row.opt_text(3)? {
        Some(ods) => Some(
            ods.parse::<OdsCode>()
                .map_err(|e| unreadable(e.to_string()))?,
        ),
        None => None,
    };
    let need = match row.opt_text(4)? {
        Some(category) => Some(
            category
                .parse::<NeedCategory>()
                .map_err(|e| unreadable(e.to_string()))?,
        ),
        None => None,
    };
    let organisation = row
        .text(2)?
        .parse::<VcsId>()
        .map_err(|e| unreadable(e.to_string()))?;
    Ok(ReportKeys {
        received_at: row.time(1)?,
        practice,
        organisation,
        need,
        referral_id,
    })
}

/// The VCS status a Task version stands for, from its `businessStatus` code, else its status.
pub(crate) fn task_status(referral_id: &str, code: &str) -> Result<VcsStatus, StoreError> {
    match code {
        "requested" => Ok(VcsStatus::Received),
        "rejected" => Ok(VcsStatus::Declined),
        "failed" => Ok(VcsStatus::UnableToContact),
        "in-progress" => Err(StoreError::unreadable(
            "Task",
            referral_id,
            "in-progress without a businessStatus",
        )),
        other => VcsStatus::parse(other).ok_or_else(|| {
            StoreError::unreadable("Task", referral_id, format!("unknown status {other:?}"))
        }),
    }
}

/// A row of (keys, status code, first time, decline reason): columns 5 and 6 are the status
/// code and when it was first recorded, both null for a referral without a Task; column 7 the
/// `decline-reason` code of those Task versions, if any carries one.
pub(crate) type StatusRow = (
    ReportKeys,
    Option<(VcsStatus, DateTime<Utc>)>,
    Option<DeclineReason>,
);

pub(crate) fn status_row<R: Cells + ?Sized>(row: &R) -> Result<StatusRow, StoreError> {
    let keys = report_keys(row)?;
    let status = match (row.opt_text(5)?, row.opt_time(6)?) {
        (Some(code), Some(at)) => Some((task_status(&keys.referral_id, &code)?, at)),
        _ => None,
    };
    let reason = match row.opt_text(7)? {
        Some(code) => Some(DeclineReason::parse(&code).ok_or_else(|| {
            StoreError::unreadable(
                "Task",
                &keys.referral_id,
                format!("unknown decline reason {code:?}"),
            )
        })?),
        None => None,
    };
    Ok((keys, status, reason))
}

/// Folds status rows, ordered by referral, into one `ReportedReferral` per referral.
pub(crate) fn fold_referrals(rows: Vec<StatusRow>) -> Vec<ReportedReferral> {
    let mut out: Vec<ReportedReferral> = Vec::new();
    for (keys, status, reason) in rows {
        match out.last_mut() {
            Some(last) if last.keys.referral_id == keys.referral_id => {
                last.first_recorded.extend(status);
                last.decline_reason = last.decline_reason.or(reason);
            }
            _ => out.push(ReportedReferral {
                keys,
                first_recorded: status.into_iter().collect(),
                decline_reason: reason,
            }),
        }
    }
    out
}

/// A score row: the keys, then the measure code (5, `system|code`), the timepoint code (6),
/// the effective time (7, RFC 3339 text) and the value (8).
pub(crate) fn reported_score<R: Cells + ?Sized>(row: &R) -> Result<ReportedScore, StoreError> {
    let keys = report_keys(row)?;
    let unreadable =
        |reason: String| StoreError::unreadable("Observation", &keys.referral_id, reason);
    let code = row.text(5)?;
    let measure = code
        .rsplit_once('|')
        .map(|(_, code)| code.to_string())
        .ok_or_else(|| unreadable(format!("code {code:?} has no system")))?;
    let timepoint_code = row
        .opt_text(6)?
        .ok_or_else(|| unreadable("no timepoint".into()))?;
    let timepoint = Timepoint::parse(&timepoint_code)
        .ok_or_else(|| unreadable(format!("unknown timepoint {timepoint_code:?}")))?;
    let effective_text = row.text(7)?;
    let effective = DateTime::parse_from_rfc3339(&effective_text)
        .map_err(|e| unreadable(format!("effectiveDateTime: {e}")))?
        .with_timezone(&Utc);
    Ok(ReportedScore {
        measure,
        timepoint,
        effective,
        value: row.int(8)?,
        keys,
    })
}
