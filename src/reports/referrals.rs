//! `GET /reports/v1/referrals`: per group, referrals received, accepted, declined (by reason),
//! contacted, attended, did not attend, completed, cancelled, and the median days from
//! referral to first contact and to completion.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::table::{rounded, Column, Draft, DraftCell, Kind, Table, TOTAL_GROUP};
use super::{group_of, groups, ReportError, ReportRequest, Scope};
use crate::config::Config;
use crate::store::{ReportedReferral, Store};
use crate::translate::vcs_status::VcsStatus;

/// The referrals table's columns: (key, label). Counts first, then the two medians.
pub const REFERRAL_COLUMNS: [(&str, &str); 11] = [
    ("received", "Referrals received"),
    ("accepted", "Accepted"),
    ("declined", "Declined"),
    ("declined.not-coded", "Declined: reason not coded"),
    ("contacted", "Contacted"),
    ("attended", "Attended"),
    ("did_not_attend", "Did not attend"),
    ("completed", "Completed"),
    ("cancelled", "Cancelled"),
    (
        "median_days_to_first_contact",
        "Median days to first contact",
    ),
    ("median_days_to_completion", "Median days to completion"),
];

const DECLINED: usize = 2;
const CONTACTED: usize = 4;
const COMPLETED: usize = 7;

/// The steps counted, in column order from `accepted`: a referral counts in a column when it
/// ever reached one of these statuses. Contact is made when the organisation reports it
/// reached the person (`contacted`) or that the person attended.
const STEPS: [(usize, &[VcsStatus]); 7] = [
    (1, &[VcsStatus::Accepted]),
    (2, &[VcsStatus::Declined]),
    (4, &[VcsStatus::Contacted, VcsStatus::Attended]),
    (5, &[VcsStatus::Attended]),
    (6, &[VcsStatus::DidNotAttend]),
    (7, &[VcsStatus::Completed]),
    (8, &[VcsStatus::Cancelled]),
];

/// What one group's referrals add up to.
#[derive(Default)]
struct Tally {
    counts: [u64; 9],
    days_to_contact: Vec<f64>,
    days_to_completion: Vec<f64>,
}

impl Tally {
    fn add(&mut self, referral: &ReportedReferral) {
        let first = |statuses: &[VcsStatus]| -> Option<DateTime<Utc>> {
            referral
                .first_recorded
                .iter()
                .filter(|(s, _)| statuses.contains(s))
                .map(|&(_, at)| at)
                .min()
        };
        self.counts[0] += 1;
        for (column, statuses) in STEPS {
            if first(statuses).is_some() {
                self.counts[column] += 1;
            }
        }
        // Decline reasons are free text today: every decline is "not coded".
        if first(&[VcsStatus::Declined]).is_some() {
            self.counts[3] += 1;
        }
        let days =
            |at: DateTime<Utc>| (at - referral.keys.received_at).num_seconds() as f64 / 86_400.0;
        if let Some(at) = first(STEPS[2].1) {
            self.days_to_contact.push(days(at));
        }
        if let Some(at) = first(&[VcsStatus::Completed]) {
            self.days_to_completion.push(days(at));
        }
    }

    fn merge(&mut self, other: &Tally) {
        for (a, b) in self.counts.iter_mut().zip(other.counts) {
            *a += b;
        }
        self.days_to_contact.extend(&other.days_to_contact);
        self.days_to_completion.extend(&other.days_to_completion);
    }

    fn cells(&self) -> Vec<DraftCell> {
        let mut cells: Vec<DraftCell> = self.counts.iter().map(|&n| DraftCell::Count(n)).collect();
        cells.push(DraftCell::Number(
            median(&self.days_to_contact).map(rounded),
        ));
        cells.push(DraftCell::Number(
            median(&self.days_to_completion).map(rounded),
        ));
        cells
    }
}

fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len() % 2 == 0 {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    })
}

fn kinds() -> Vec<Kind> {
    (0..REFERRAL_COLUMNS.len())
        .map(|c| match c {
            3 => Kind::Count {
                part_of: Some(DECLINED),
            },
            9 => Kind::Derived {
                basis: vec![CONTACTED],
            },
            10 => Kind::Derived {
                basis: vec![COMPLETED],
            },
            _ => Kind::Count { part_of: None },
        })
        .collect()
}

/// The referrals report for `scope`, protected for publication.
pub async fn referrals_report(
    store: &dyn Store,
    config: &Config,
    scope: &Scope,
    request: &ReportRequest,
) -> Result<Table, ReportError> {
    let (from, to) = request.period.bounds();
    let referrals: Vec<ReportedReferral> = store
        .reported_referrals(from, to)
        .await?
        .into_iter()
        .filter(|r| scope.admits(&r.keys))
        .collect();
    let keys: Vec<_> = referrals.iter().map(|r| &r.keys).collect();
    let groups = groups(config, scope, request, &keys);
    let mut tallies: HashMap<String, Tally> = HashMap::new();
    for referral in &referrals {
        tallies
            .entry(group_of(request.by, &referral.keys))
            .or_default()
            .add(referral);
    }
    let mut total = Tally::default();
    let mut rows = Vec::with_capacity(groups.len() + 1);
    for (group, label) in groups {
        let tally = tallies.remove(&group).unwrap_or_default();
        total.merge(&tally);
        rows.push((group, label, tally.cells()));
    }
    // Every referral in scope falls in a listed group (months of the period, practices seen or
    // listed, organisations in scope, every need category), so `total` counts them all.
    rows.push((TOTAL_GROUP.to_string(), "All".to_string(), total.cells()));
    let columns = REFERRAL_COLUMNS
        .iter()
        .map(|(key, label)| Column {
            key: key.to_string(),
            label: label.to_string(),
        })
        .zip(kinds())
        .collect();
    Ok(Draft { columns, rows }.protect("referrals", request.period, request.by, None))
}
