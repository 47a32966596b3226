//! The wellbeing questionnaires a VCS organisation may report (ONS4, WEMWBS, SWEMWBS): how many
//! answers each takes, in what range, and the scores they add up to. Pure arithmetic and codes;
//! `observation` turns the scores into FHIR.

/// The wellbeing questionnaires a VCS organisation may report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Instrument {
    /// ONS personal well-being: 4 questions, 0-10 each, no total.
    Ons4,
    /// Warwick-Edinburgh Mental Wellbeing Scale: 14 items, 1-5 each, total 14-70.
    Wemwbs,
    /// Short WEMWBS: 7 items, 1-5 each, raw total 7-35 (and a metric score from a table).
    Swemwbs,
}

impl Instrument {
    pub const ALL: [Instrument; 3] = [Instrument::Ons4, Instrument::Wemwbs, Instrument::Swemwbs];

    pub fn as_str(self) -> &'static str {
        match self {
            Instrument::Ons4 => "ons4",
            Instrument::Wemwbs => "wemwbs",
            Instrument::Swemwbs => "swemwbs",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Instrument::ALL.into_iter().find(|i| i.as_str() == s)
    }

    /// The name people know it by, for messages and displays.
    pub fn label(self) -> &'static str {
        match self {
            Instrument::Ons4 => "ONS4",
            Instrument::Wemwbs => "WEMWBS",
            Instrument::Swemwbs => "SWEMWBS",
        }
    }

    /// How many answers the questionnaire has.
    pub fn item_count(self) -> usize {
        match self {
            Instrument::Ons4 => ONS4_ITEMS.len(),
            Instrument::Wemwbs => 14,
            Instrument::Swemwbs => 7,
        }
    }

    /// The lowest and highest answer to one item.
    pub fn answer_range(self) -> (u8, u8) {
        match self {
            Instrument::Ons4 => (0, 10),
            Instrument::Wemwbs | Instrument::Swemwbs => (1, 5),
        }
    }

    /// How many scores (so Observations) one questionnaire gives: one per ONS4 question (ONS4
    /// has no total), one total for WEMWBS or SWEMWBS.
    pub fn score_count(self) -> usize {
        match self {
            Instrument::Ons4 => ONS4_ITEMS.len(),
            Instrument::Wemwbs | Instrument::Swemwbs => 1,
        }
    }
}

/// Whether the measure was taken at the start of support or later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Timepoint {
    Baseline,
    FollowUp,
}

impl Timepoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Timepoint::Baseline => "baseline",
            Timepoint::FollowUp => "follow-up",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Timepoint::Baseline, Timepoint::FollowUp]
            .into_iter()
            .find(|t| t.as_str() == s)
    }

    /// The display of its code in CodeSystem assessment-timepoint.
    pub fn display(self) -> &'static str {
        match self {
            Timepoint::Baseline => "Baseline",
            Timepoint::FollowUp => "Follow-up",
        }
    }
}

/// The ONS4 questions in the order the ONS asks them, which is the order of `answers`; each
/// becomes one score (code and display in CodeSystem wellbeing-measure).
pub const ONS4_ITEMS: [(&str, &str); 4] = [
    ("ons4-life-satisfaction", "ONS4 life satisfaction score"),
    ("ons4-worthwhile", "ONS4 worthwhile score"),
    ("ons4-happiness", "ONS4 happiness score"),
    ("ons4-anxiety", "ONS4 anxiety score"),
];

/// One score of a questionnaire, to be stored as one Observation.
#[derive(Debug, Clone, PartialEq)]
pub struct Score<'a> {
    /// Code and display in CodeSystem wellbeing-measure.
    pub code: &'static str,
    pub display: &'static str,
    pub value: u32,
    /// The item answers a total is made of, in questionnaire order (none for an ONS4 question).
    pub items: &'a [u8],
    /// The SWEMWBS metric score.
    pub metric: Option<f64>,
}

/// The scores of a questionnaire's answers (already checked for count and range), in order.
pub fn scores(instrument: Instrument, answers: &[u8]) -> Vec<Score<'_>> {
    match instrument {
        Instrument::Ons4 => ONS4_ITEMS
            .iter()
            .zip(answers)
            .map(|(&(code, display), &answer)| Score {
                code,
                display,
                value: u32::from(answer),
                items: &[],
                metric: None,
            })
            .collect(),
        Instrument::Wemwbs => vec![Score {
            code: "wemwbs-total",
            display: "WEMWBS total score",
            value: total(answers),
            items: answers,
            metric: None,
        }],
        Instrument::Swemwbs => {
            let raw = total(answers);
            vec![Score {
                code: "swemwbs-total",
                display: "SWEMWBS raw total score",
                value: raw,
                items: answers,
                // The metric score is what SWEMWBS results are compared on; the raw total stays
                // the value so that every measure keeps one integer shape (profiles/README.md).
                metric: u8::try_from(raw).ok().and_then(swemwbs_metric_score),
            }]
        }
    }
}

fn total(answers: &[u8]) -> u32 {
    answers.iter().map(|&a| u32::from(a)).sum()
}

/// SWEMWBS raw total (7–35) → metric score.
///
/// Source: Warwick Medical School, "SWEMWBS conversion table" (raw score → metric score), from
/// the Rasch analysis of SWEMWBS by Stewart-Brown et al. 2009 (Health and Quality of Life
/// Outcomes 7:15). The values must be checked against the table as published by Warwick Medical
/// School by a clinician before go-live.
pub fn swemwbs_metric_score(raw_total: u8) -> Option<f64> {
    const FIRST_RAW: u8 = 7;
    const METRIC: [f64; 29] = [
        7.00, 9.51, 11.25, 12.40, 13.33, 14.08, 14.75, 15.32, 15.84, 16.36, // raw 7-16
        16.88, 17.43, 17.98, 18.59, 19.25, 19.98, 20.73, 21.54, 22.35, 23.21, // raw 17-26
        24.11, 25.03, 26.02, 27.03, 28.13, 29.31, 30.70, 32.55, 35.00, // raw 27-35
    ];
    let index = raw_total.checked_sub(FIRST_RAW)?;
    METRIC.get(usize::from(index)).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_instrument_says_its_shape() {
        // (instrument, name, label, answers, range, scores)
        let table = [
            (Instrument::Ons4, "ons4", "ONS4", 4, (0, 10), 4),
            (Instrument::Wemwbs, "wemwbs", "WEMWBS", 14, (1, 5), 1),
            (Instrument::Swemwbs, "swemwbs", "SWEMWBS", 7, (1, 5), 1),
        ];
        for (instrument, name, label, items, range, scores) in table {
            assert_eq!(instrument.as_str(), name);
            assert_eq!(Instrument::parse(name), Some(instrument));
            assert_eq!(
                serde_json::to_value(instrument).ok(),
                Some(serde_json::json!(name))
            );
            assert_eq!(instrument.label(), label);
            assert_eq!(instrument.item_count(), items, "{name}");
            assert_eq!(instrument.answer_range(), range, "{name}");
            assert_eq!(instrument.score_count(), scores, "{name}");
        }
        assert_eq!(Instrument::parse("ons5"), None);
        assert_eq!(Instrument::parse("ONS4"), None);
    }

    #[test]
    fn timepoints_round_trip() {
        for (timepoint, name, display) in [
            (Timepoint::Baseline, "baseline", "Baseline"),
            (Timepoint::FollowUp, "follow-up", "Follow-up"),
        ] {
            assert_eq!(timepoint.as_str(), name);
            assert_eq!(Timepoint::parse(name), Some(timepoint));
            assert_eq!(
                serde_json::to_value(timepoint).ok(),
                Some(serde_json::json!(name))
            );
            assert_eq!(timepoint.display(), display);
        }
        assert_eq!(Timepoint::parse("week-6"), None);
    }

    /// A score's code, value, number of items and metric.
    type Expected = (&'static str, u32, usize, Option<f64>);

    #[test]
    fn scores_per_instrument() {
        let wemwbs = [3, 4, 2, 5, 1, 3, 4, 2, 5, 1, 3, 4, 2, 5];
        // (instrument, answers, expected (code, value, items, metric) per score)
        let table: [(Instrument, &[u8], Vec<Expected>); 5] = [
            (
                Instrument::Ons4,
                &[4, 6, 5, 7],
                vec![
                    ("ons4-life-satisfaction", 4, 0, None),
                    ("ons4-worthwhile", 6, 0, None),
                    ("ons4-happiness", 5, 0, None),
                    ("ons4-anxiety", 7, 0, None),
                ],
            ),
            (
                Instrument::Wemwbs,
                &wemwbs,
                vec![("wemwbs-total", 44, 14, None)],
            ),
            (
                Instrument::Wemwbs,
                &[1; 14],
                vec![("wemwbs-total", 14, 14, None)],
            ),
            (
                Instrument::Swemwbs,
                &[1; 7],
                vec![("swemwbs-total", 7, 7, Some(7.00))],
            ),
            (
                Instrument::Swemwbs,
                &[3, 4, 3, 4, 3, 4, 3],
                vec![("swemwbs-total", 24, 7, Some(21.54))],
            ),
        ];
        for (instrument, answers, expected) in table {
            let found: Vec<Expected> = scores(instrument, answers)
                .iter()
                .map(|s| (s.code, s.value, s.items.len(), s.metric))
                .collect();
            assert_eq!(found, expected, "{} {answers:?}", instrument.as_str());
            assert_eq!(found.len(), instrument.score_count());
        }
    }

    #[test]
    fn swemwbs_table_endpoints_and_monotonicity() {
        for (raw, metric) in [
            (7, Some(7.00)),
            (8, Some(9.51)),
            (24, Some(21.54)),
            (35, Some(35.00)),
        ] {
            assert_eq!(swemwbs_metric_score(raw), metric, "{raw}");
        }
        for outside in [0, 6, 36, u8::MAX] {
            assert_eq!(swemwbs_metric_score(outside), None, "{outside}");
        }
        let scores: Vec<f64> = (7..=35).filter_map(swemwbs_metric_score).collect();
        assert_eq!(scores.len(), 29);
        assert!(scores.windows(2).all(|w| w[0] < w[1]), "{scores:?}");
        assert!(scores.iter().all(|s| (7.0..=35.0).contains(s)));
    }
}
