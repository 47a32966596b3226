//! `GET /reports/v1/referrals`: per group, referrals received, accepted, declined (by coded
//! reason, and those declined in words only),
//! contacted, attended, did not attend, completed, cancelled, and the median days from
//! referral to first contact and to completion.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::table::{rounded, Column, Draft, DraftCell, Kind, Table, TOTAL_GROUP};
use super::{group_of, groups, ReportError, ReportRequest, Scope};
use crate::config::Config;
use crate::store::{ReportedReferral, Store};
use crate::translate::decline_reason::DeclineReason;
use crate::translate::vcs_status::VcsStatus;

/// The key prefix of the decline-reason columns (`declined.no-capacity`, …), each a part of
/// `declined`.
pub const DECLINED_BY: &str = "declined.";
/// The column of declines given in words only.
pub const DECLINED_NOT_CODED: &str = "declined.not-coded";

/// The steps counted, with the statuses that count a referral in them: a referral counts in a
/// column when it ever reached one of these statuses. Contact is made when the organisation
/// reports it reached the person (`contacted`) or that the person attended.
const STEPS: [(&str, &str, &[VcsStatus]); 7] = [
    ("accepted", "Accepted", &[VcsStatus::Accepted]),
    ("declined", "Declined", &[VcsStatus::Declined]),
    (
        "contacted",
        "Contacted",
        &[VcsStatus::Contacted, VcsStatus::Attended],
    ),
    ("attended", "Attended", &[VcsStatus::Attended]),
    (
        "did_not_attend",
        "Did not attend",
        &[VcsStatus::DidNotAttend],
    ),
    ("completed", "Completed", &[VcsStatus::Completed]),
    ("cancelled", "Cancelled", &[VcsStatus::Cancelled]),
];
const DECLINED_STEP: usize = 1;
const CONTACTED_STEP: usize = 2;
const COMPLETED_STEP: usize = 5;

/// What a column holds.
#[derive(Clone, Copy)]
enum Counted {
    Received,
    Step(usize),
    /// Declines with this code; `None` declines in words only.
    DeclinedFor(Option<DeclineReason>),
    MedianDaysToContact,
    MedianDaysToCompletion,
}

/// The referrals table's columns, in order: received, accepted, declined and then each decline
/// reason (every code of `decline-reason`, then `declined.not-coded`), contacted, attended, did
/// not attend, completed, cancelled, then the two medians.
fn layout() -> Vec<(String, String, Counted)> {
    let mut out = vec![(
        "received".to_string(),
        "Referrals received".to_string(),
        Counted::Received,
    )];
    for (i, (key, label, _)) in STEPS.iter().enumerate() {
        out.push((key.to_string(), label.to_string(), Counted::Step(i)));
        if i == DECLINED_STEP {
            for reason in DeclineReason::ALL {
                out.push((
                    format!("{DECLINED_BY}{}", reason.as_str()),
                    format!("Declined: {}", reason.display().to_lowercase()),
                    Counted::DeclinedFor(Some(reason)),
                ));
            }
            out.push((
                DECLINED_NOT_CODED.to_string(),
                "Declined: reason not coded".to_string(),
                Counted::DeclinedFor(None),
            ));
        }
    }
    out.push((
        "median_days_to_first_contact".to_string(),
        "Median days to first contact".to_string(),
        Counted::MedianDaysToContact,
    ));
    out.push((
        "median_days_to_completion".to_string(),
        "Median days to completion".to_string(),
        Counted::MedianDaysToCompletion,
    ));
    out
}

/// The referrals table's columns: (key, label).
pub fn referral_columns() -> Vec<(String, String)> {
    layout().into_iter().map(|(k, l, _)| (k, l)).collect()
}

/// What one group's referrals add up to.
#[derive(Default)]
struct Tally {
    received: u64,
    steps: [u64; STEPS.len()],
    /// Declines per reason, in `DeclineReason::ALL` order.
    declined_for: [u64; DeclineReason::ALL.len()],
    declined_not_coded: u64,
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
        self.received += 1;
        for (i, (_, _, statuses)) in STEPS.iter().enumerate() {
            if first(statuses).is_some() {
                self.steps[i] += 1;
            }
        }
        if first(STEPS[DECLINED_STEP].2).is_some() {
            match referral.decline_reason {
                Some(reason) => self.declined_for[reason_index(reason)] += 1,
                None => self.declined_not_coded += 1,
            }
        }
        let days =
            |at: DateTime<Utc>| (at - referral.keys.received_at).num_seconds() as f64 / 86_400.0;
        if let Some(at) = first(STEPS[CONTACTED_STEP].2) {
            self.days_to_contact.push(days(at));
        }
        if let Some(at) = first(STEPS[COMPLETED_STEP].2) {
            self.days_to_completion.push(days(at));
        }
    }

    fn merge(&mut self, other: &Tally) {
        self.received += other.received;
        for (a, b) in self.steps.iter_mut().zip(other.steps) {
            *a += b;
        }
        for (a, b) in self.declined_for.iter_mut().zip(other.declined_for) {
            *a += b;
        }
        self.declined_not_coded += other.declined_not_coded;
        self.days_to_contact.extend(&other.days_to_contact);
        self.days_to_completion.extend(&other.days_to_completion);
    }

    fn cell(&self, counted: Counted) -> DraftCell {
        match counted {
            Counted::Received => DraftCell::Count(self.received),
            Counted::Step(i) => DraftCell::Count(self.steps[i]),
            Counted::DeclinedFor(Some(reason)) => {
                DraftCell::Count(self.declined_for[reason_index(reason)])
            }
            Counted::DeclinedFor(None) => DraftCell::Count(self.declined_not_coded),
            Counted::MedianDaysToContact => {
                DraftCell::Number(median(&self.days_to_contact).map(rounded))
            }
            Counted::MedianDaysToCompletion => {
                DraftCell::Number(median(&self.days_to_completion).map(rounded))
            }
        }
    }

    fn cells(&self, layout: &[(String, String, Counted)]) -> Vec<DraftCell> {
        layout.iter().map(|(_, _, c)| self.cell(*c)).collect()
    }
}

/// A reason's place in `DeclineReason::ALL` (declaration order; a test holds them together).
fn reason_index(reason: DeclineReason) -> usize {
    reason as usize
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

/// How disclosure control reads each column: a decline reason is a part of `declined`; a
/// median is derived from the people counted in contacted or completed.
fn kinds(layout: &[(String, String, Counted)]) -> Vec<Kind> {
    let column_of = |step: usize| {
        layout
            .iter()
            .position(|(_, _, c)| matches!(c, Counted::Step(i) if *i == step))
            .unwrap_or_default()
    };
    layout
        .iter()
        .map(|(_, _, counted)| match counted {
            Counted::DeclinedFor(_) => Kind::Count {
                part_of: Some(column_of(DECLINED_STEP)),
            },
            Counted::MedianDaysToContact => Kind::Derived {
                basis: vec![column_of(CONTACTED_STEP)],
            },
            Counted::MedianDaysToCompletion => Kind::Derived {
                basis: vec![column_of(COMPLETED_STEP)],
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
    let layout = layout();
    let mut total = Tally::default();
    let mut rows = Vec::with_capacity(groups.len() + 1);
    for (group, label) in groups {
        let tally = tallies.remove(&group).unwrap_or_default();
        total.merge(&tally);
        rows.push((group, label, tally.cells(&layout)));
    }
    // Every referral in scope falls in a listed group (months of the period, practices seen or
    // listed, organisations in scope, every need category), so `total` counts them all.
    rows.push((
        TOTAL_GROUP.to_string(),
        "All".to_string(),
        total.cells(&layout),
    ));
    let columns = layout
        .iter()
        .map(|(key, label, _)| Column {
            key: key.clone(),
            label: label.clone(),
        })
        .zip(kinds(&layout))
        .collect();
    Ok(Draft { columns, rows }.protect("referrals", request.period, request.by, None))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::store::ReportKeys;

    fn referral(statuses: &[VcsStatus], decline_reason: Option<DeclineReason>) -> ReportedReferral {
        let received = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap();
        ReportedReferral {
            keys: ReportKeys {
                referral_id: "r".into(),
                received_at: received,
                practice: None,
                organisation: "carers-count".parse().expect("a VCS id"),
                need: None,
            },
            first_recorded: statuses
                .iter()
                .enumerate()
                .map(|(i, s)| (*s, received + chrono::Duration::days(i as i64)))
                .collect(),
            decline_reason,
        }
    }

    fn count(tally: &Tally, layout: &[(String, String, Counted)], key: &str) -> u64 {
        let c = layout.iter().position(|(k, _, _)| k == key).expect(key);
        match tally.cells(layout)[c] {
            DraftCell::Count(n) => n,
            other => panic!("{key}: {other:?}"),
        }
    }

    #[test]
    fn declines_are_counted_by_their_code_and_add_up_to_declined() {
        use VcsStatus::*;
        let layout = layout();
        let mut tally = Tally::default();
        for referral in [
            referral(&[Received, Declined], Some(DeclineReason::NoCapacity)),
            referral(&[Received, Declined], Some(DeclineReason::NoCapacity)),
            referral(&[Received, Declined], Some(DeclineReason::Risk)),
            referral(&[Received, Declined], None),
            referral(&[Received, Accepted, Contacted, Completed], None),
        ] {
            tally.add(&referral);
        }
        assert_eq!(count(&tally, &layout, "received"), 5);
        assert_eq!(count(&tally, &layout, "declined"), 4);
        assert_eq!(count(&tally, &layout, "declined.no-capacity"), 2);
        assert_eq!(count(&tally, &layout, "declined.risk"), 1);
        assert_eq!(count(&tally, &layout, "declined.other"), 0);
        assert_eq!(count(&tally, &layout, DECLINED_NOT_CODED), 1);
        assert_eq!(count(&tally, &layout, "completed"), 1);
        let parts: u64 = layout
            .iter()
            .filter(|(k, _, _)| k.starts_with(DECLINED_BY))
            .map(|(k, _, _)| count(&tally, &layout, k))
            .sum();
        assert_eq!(parts, count(&tally, &layout, "declined"));
    }

    #[test]
    fn every_reason_has_a_column_and_disclosure_control_knows_it_is_part_of_declined() {
        let layout = layout();
        let kinds = kinds(&layout);
        let at = |key: &str| layout.iter().position(|(k, _, _)| k == key).expect(key);
        for (i, reason) in DeclineReason::ALL.into_iter().enumerate() {
            assert_eq!(reason_index(reason), i, "{reason:?}");
            let c = at(&format!("{DECLINED_BY}{}", reason.as_str()));
            assert_eq!(
                kinds[c],
                Kind::Count {
                    part_of: Some(at("declined"))
                }
            );
        }
        assert_eq!(
            kinds[at(DECLINED_NOT_CODED)],
            Kind::Count {
                part_of: Some(at("declined"))
            }
        );
        assert_eq!(
            kinds[at("median_days_to_first_contact")],
            Kind::Derived {
                basis: vec![at("contacted")]
            }
        );
        assert_eq!(
            kinds[at("median_days_to_completion")],
            Kind::Derived {
                basis: vec![at("completed")]
            }
        );
        assert_eq!(kinds[at("received")], Kind::Count { part_of: None });
        // Keys are unique: JSON objects and CSV headings need that.
        let mut keys: Vec<&str> = layout.iter().map(|(k, _, _)| k.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), layout.len());
    }
}
