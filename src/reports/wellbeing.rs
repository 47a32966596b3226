//! `GET /reports/v1/wellbeing`: per group, the people with a baseline and a follow-up score,
//! mean baseline, mean follow-up, mean change with its 95% confidence interval, and how many
//! (and what share) changed by at least the instrument's meaningful-change threshold.
//!
//! A person here is a referral: the earliest baseline and the latest follow-up of the same
//! measure reported for one referral make one pair. SWEMWBS is compared on its metric score.

use std::collections::HashMap;

use statrs::distribution::{ContinuousCDF, StudentsT};

use super::table::{rounded, Column, Draft, DraftCell, Kind, Table, TOTAL_GROUP};
use super::{group_of, groups, ReportError, ReportRequest, Scope};
use crate::config::Config;
use crate::store::{ReportKeys, ReportedScore, Store};
use crate::translate::instruments::{swemwbs_metric_score, Instrument, Timepoint, ONS4_ITEMS};

/// A meaningful-change threshold: the least change (in the direction of better wellbeing) that
/// counts, and where that figure comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    /// Least improvement that counts, in the measure's points.
    pub points: f64,
    /// `true` when a lower score is better (ONS4 anxiety).
    pub lower_is_better: bool,
    /// The published source, or a statement that the figure is a convention.
    pub source: &'static str,
}

const MAHESWARAN_2012: &str = "Maheswaran H, Weich S, Powell J, Stewart-Brown S. Evaluating \
the responsiveness of the Warwick Edinburgh Mental Well-Being Scale (WEMWBS): group and \
individual level analysis. Health Qual Life Outcomes 2012;10:156 (doi:10.1186/1477-7525-10-156): \
standard error of measurement 2.4 to 3.1 points; 3 points is that range rounded up.";
const SHAH_2018: &str = "Shah N, Cader M, Andrews B, McCabe R, Stewart-Brown SL. Short \
Warwick-Edinburgh Mental Well-being Scale (SWEMWBS): performance in a clinical sample in \
relation to PHQ-9 and GAD-7. Health Qual Life Outcomes 2018;16:239 \
(doi:10.1186/s12955-018-1060-2): a change of 1 to 3 points is statistically important; 1 SEM \
= 1.03 points, the threshold used here.";
const ONS4_CONVENTION: &str = "Convention, not a published threshold: no minimal important \
change has been published for the ONS4 questions; a change of 1 point on the 0 to 10 scale \
(a fall, for anxiety) is used.";

/// The meaningful-change threshold of a measure (`wemwbs-total`, `swemwbs-total`, `ons4-…`).
pub fn threshold(measure: &str) -> Option<Threshold> {
    let (points, lower_is_better, source) = match measure {
        "wemwbs-total" => (3.0, false, MAHESWARAN_2012),
        "swemwbs-total" => (1.03, false, SHAH_2018),
        "ons4-anxiety" => (1.0, true, ONS4_CONVENTION),
        m if ONS4_ITEMS.iter().any(|(code, _)| *code == m) => (1.0, false, ONS4_CONVENTION),
        _ => return None,
    };
    Some(Threshold {
        points,
        lower_is_better,
        source,
    })
}

/// The measures (score codes) an instrument's report has, with their labels.
pub fn measures(instrument: Instrument) -> Vec<(&'static str, &'static str)> {
    match instrument {
        Instrument::Wemwbs => vec![("wemwbs-total", "WEMWBS")],
        Instrument::Swemwbs => vec![("swemwbs-total", "SWEMWBS (metric score)")],
        Instrument::Ons4 => vec![
            ("ons4-life-satisfaction", "Life satisfaction"),
            ("ons4-worthwhile", "Worthwhile"),
            ("ons4-happiness", "Happiness"),
            ("ons4-anxiety", "Anxiety"),
        ],
    }
}

/// The columns of one measure, after its `people` column: (suffix, label, kind).
const PER_MEASURE: [(&str, &str); 8] = [
    ("people", "people with a baseline and a follow-up"),
    ("mean_baseline", "mean baseline"),
    ("mean_follow_up", "mean follow-up"),
    ("mean_change", "mean change"),
    ("change_ci_low", "95% CI of the change, lower"),
    ("change_ci_high", "95% CI of the change, upper"),
    (
        "reached_threshold",
        "people whose change reached the threshold",
    ),
    ("share_reached", "share whose change reached the threshold"),
];

/// One measure's pairs in one group.
#[derive(Default, Clone)]
struct Pairs {
    baseline: Vec<f64>,
    follow_up: Vec<f64>,
    reached: u64,
}

impl Pairs {
    fn cells(&self) -> Vec<DraftCell> {
        let n = self.baseline.len();
        let changes: Vec<f64> = self
            .follow_up
            .iter()
            .zip(&self.baseline)
            .map(|(f, b)| f - b)
            .collect();
        let mean = |xs: &[f64]| (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64);
        let ci = confidence_interval(&changes);
        vec![
            DraftCell::Count(n as u64),
            DraftCell::Number(mean(&self.baseline).map(rounded)),
            DraftCell::Number(mean(&self.follow_up).map(rounded)),
            DraftCell::Number(mean(&changes).map(rounded)),
            DraftCell::Number(ci.map(|(low, _)| rounded(low))),
            DraftCell::Number(ci.map(|(_, high)| rounded(high))),
            DraftCell::Count(self.reached),
            DraftCell::Number((n > 0).then(|| rounded(self.reached as f64 / n as f64))),
        ]
    }

    fn merge(&mut self, other: &Pairs) {
        self.baseline.extend(&other.baseline);
        self.follow_up.extend(&other.follow_up);
        self.reached += other.reached;
    }
}

/// The 95% confidence interval of a mean (Student's t with n − 1 degrees of freedom); none
/// for fewer than two values.
pub(crate) fn confidence_interval(values: &[f64]) -> Option<(f64, f64)> {
    let n = values.len();
    if n < 2 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let variance = values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let t = StudentsT::new(0.0, 1.0, (n - 1) as f64)
        .ok()?
        .inverse_cdf(0.975);
    let half = t * (variance / n as f64).sqrt();
    Some((mean - half, mean + half))
}

/// The score a measure is compared on: SWEMWBS's metric score, else the value.
fn comparable(measure: &str, value: i64) -> Option<f64> {
    if measure == "swemwbs-total" {
        u8::try_from(value).ok().and_then(swemwbs_metric_score)
    } else {
        Some(value as f64)
    }
}

/// Each referral's (keys, measure) → (earliest baseline, latest follow-up).
type Paired<'a> = HashMap<
    (&'a str, &'a str),
    (
        &'a ReportKeys,
        Option<&'a ReportedScore>,
        Option<&'a ReportedScore>,
    ),
>;

fn pair<'a>(scores: &'a [ReportedScore]) -> Paired<'a> {
    let mut paired: Paired<'a> = HashMap::new();
    for score in scores {
        let entry = paired
            .entry((score.keys.referral_id.as_str(), score.measure.as_str()))
            .or_insert((&score.keys, None, None));
        match score.timepoint {
            Timepoint::Baseline => {
                if entry.1.is_none_or(|b| score.effective < b.effective) {
                    entry.1 = Some(score);
                }
            }
            Timepoint::FollowUp => {
                if entry.2.is_none_or(|f| score.effective > f.effective) {
                    entry.2 = Some(score);
                }
            }
        }
    }
    paired
}

/// The wellbeing report of `instrument` for `scope`, protected for publication.
pub async fn wellbeing_report(
    store: &dyn Store,
    config: &Config,
    scope: &Scope,
    request: &ReportRequest,
    instrument: Instrument,
) -> Result<Table, ReportError> {
    let (from, to) = request.period.bounds();
    let measures = measures(instrument);
    let scores: Vec<ReportedScore> = store
        .reported_scores(from, to)
        .await?
        .into_iter()
        .filter(|s| scope.admits(&s.keys) && measures.iter().any(|(m, _)| *m == s.measure))
        .collect();
    let mut by_group: HashMap<(String, &str), Pairs> = HashMap::new();
    let mut seen: Vec<&ReportKeys> = Vec::new();
    for ((_, measure), (keys, baseline, follow_up)) in pair(&scores) {
        let (Some(baseline), Some(follow_up)) = (baseline, follow_up) else {
            continue;
        };
        let (Some(b), Some(f)) = (
            comparable(measure, baseline.value),
            comparable(measure, follow_up.value),
        ) else {
            continue;
        };
        seen.push(keys);
        let pairs = by_group
            .entry((group_of(request.by, keys), measure))
            .or_default();
        pairs.baseline.push(b);
        pairs.follow_up.push(f);
        if let Some(t) = threshold(measure) {
            let improvement = if t.lower_is_better { b - f } else { f - b };
            // A tolerance for the float subtraction of metric scores.
            if improvement + 1e-9 >= t.points {
                pairs.reached += 1;
            }
        }
    }
    let groups = groups(config, scope, request, &seen);
    let mut totals: Vec<Pairs> = vec![Pairs::default(); measures.len()];
    let mut rows = Vec::with_capacity(groups.len() + 1);
    for (group, label) in groups {
        let mut cells = Vec::new();
        for (i, (measure, _)) in measures.iter().enumerate() {
            let pairs = by_group
                .remove(&(group.clone(), *measure))
                .unwrap_or_default();
            totals[i].merge(&pairs);
            cells.extend(pairs.cells());
        }
        rows.push((group, label, cells));
    }
    let total_cells = totals.iter().flat_map(Pairs::cells).collect();
    rows.push((TOTAL_GROUP.to_string(), "All".to_string(), total_cells));
    let mut columns = Vec::new();
    for (i, (measure, label)) in measures.iter().enumerate() {
        let base = i * PER_MEASURE.len();
        for (j, (suffix, what)) in PER_MEASURE.iter().enumerate() {
            let kind = match j {
                0 | 6 => Kind::Count { part_of: None },
                7 => Kind::Derived {
                    basis: vec![base, base + 6],
                },
                _ => Kind::Derived { basis: vec![base] },
            };
            columns.push((
                Column {
                    key: format!("{measure}.{suffix}"),
                    label: format!("{label}: {what}"),
                },
                kind,
            ));
        }
    }
    Ok(Draft { columns, rows }.protect("wellbeing", request.period, request.by, Some(instrument)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_confidence_interval_of_a_known_sample() {
        // Mean 3, sd 1.5811 (n = 5), t(0.975, 4) = 2.7764: 3 ± 1.9633.
        let (low, high) = confidence_interval(&[1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
        assert!((low - 1.0367).abs() < 1e-3, "{low}");
        assert!((high - 4.9633).abs() < 1e-3, "{high}");
        assert_eq!(confidence_interval(&[2.0]), None);
    }

    #[test]
    fn every_measure_has_a_threshold_with_a_source() {
        for instrument in Instrument::ALL {
            for (measure, _) in measures(instrument) {
                let t = threshold(measure).unwrap();
                assert!(t.points > 0.0 && !t.source.is_empty(), "{measure}");
            }
        }
        assert!(threshold("ons4-anxiety").unwrap().lower_is_better);
    }
}
