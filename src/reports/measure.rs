//! The reports' figures as FHIR: a `Measure` for each indicator (a column of a report), and
//! `MeasureReport`s of type `summary` for a period, with one stratifier per dimension
//! (month, practice, organisation, need category) whose strata are that report's groups.
//!
//! Disclosure control is the tables' own: a suppressed count is absent, its `_count` carrying
//! the data-absent-reason `masked`; a suppressed score is a `measureScore` with that extension
//! and no value. Each stratification is protected as its own table.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::table::Figure;
use super::wellbeing::measures as wellbeing_measures;
use super::{
    referrals_report, wellbeing_report, Dimension, Period, ReportError, ReportRequest, Scope,
    Table, DECLINED_BY, DECLINED_NOT_CODED, TOTAL_GROUP,
};
use crate::config::Config;
use crate::store::Store;
use crate::translate::decline_reason::DeclineReason;
use crate::translate::instruments::Instrument;

/// Where our Measures live: `{MEASURE_BASE}/{id}` is each one's canonical URL.
pub const MEASURE_BASE: &str = "https://fhir.sp-gateway.uk/Measure";
/// The code system of the stratifiers (the report dimensions).
pub const DIMENSION_SYSTEM: &str = "https://fhir.sp-gateway.uk/CodeSystem/report-dimension";
const SCORING: &str = "http://terminology.hl7.org/CodeSystem/measure-scoring";
const POPULATION: &str = "http://terminology.hl7.org/CodeSystem/measure-population";
const DATA_ABSENT: &str = "http://hl7.org/fhir/StructureDefinition/data-absent-reason";
const UCUM: &str = "http://unitsofmeasure.org";

/// Which report an indicator comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    Referrals,
    Wellbeing(Instrument),
}

/// How an indicator is scored, with the report columns it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scoring {
    /// A count (`initial-population`).
    Cohort,
    /// A median or a mean (the `measureScore`) over the people counted in `basis`.
    ContinuousVariable { basis: String, unit: &'static str },
    /// A share: `numerator` of `denominator`.
    Proportion {
        numerator: String,
        denominator: String,
    },
}

/// One indicator: a column of a report, published as one Measure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Indicator {
    /// The Measure's id (`referrals-received`, `wemwbs-total-mean-change`).
    pub id: String,
    pub title: String,
    pub source: Source,
    /// The report column it reads.
    pub column: String,
    pub scoring: Scoring,
}

impl Indicator {
    pub fn url(&self) -> String {
        format!("{MEASURE_BASE}/{}", self.id)
    }
}

/// Every indicator we publish, in order.
pub fn indicators() -> Vec<Indicator> {
    let mut out = Vec::new();
    let mut counts: Vec<(String, String)> = [
        ("received", "Referrals received"),
        ("accepted", "Referrals accepted"),
        ("declined", "Referrals declined"),
    ]
    .iter()
    .map(|(c, t)| (c.to_string(), t.to_string()))
    .collect();
    for reason in DeclineReason::ALL {
        counts.push((
            format!("{DECLINED_BY}{}", reason.as_str()),
            format!("Referrals declined: {}", reason.display().to_lowercase()),
        ));
    }
    counts.push((
        DECLINED_NOT_CODED.to_string(),
        "Referrals declined with no coded reason".to_string(),
    ));
    counts.extend(
        [
            ("contacted", "Referrals where the person was contacted"),
            ("attended", "Referrals where the person attended"),
            (
                "did_not_attend",
                "Referrals where the person did not attend",
            ),
            ("completed", "Referrals completed"),
            ("cancelled", "Referrals cancelled"),
        ]
        .iter()
        .map(|(c, t)| (c.to_string(), t.to_string())),
    );
    for (column, title) in counts {
        out.push(Indicator {
            id: format!("referrals-{}", column.replace(['_', '.'], "-")),
            title,
            source: Source::Referrals,
            column: column.to_string(),
            scoring: Scoring::Cohort,
        });
    }
    for (column, basis, title) in [
        (
            "median_days_to_first_contact",
            "contacted",
            "Median days from referral to first contact",
        ),
        (
            "median_days_to_completion",
            "completed",
            "Median days from referral to completion",
        ),
    ] {
        out.push(Indicator {
            id: format!("referrals-{}", column.replace('_', "-")),
            title: title.to_string(),
            source: Source::Referrals,
            column: column.to_string(),
            scoring: Scoring::ContinuousVariable {
                basis: basis.to_string(),
                unit: "d",
            },
        });
    }
    for instrument in Instrument::ALL {
        for (measure, label) in wellbeing_measures(instrument) {
            let people = format!("{measure}.people");
            let source = Source::Wellbeing(instrument);
            out.push(Indicator {
                id: format!("{measure}-people"),
                title: format!("{label}: people with a baseline and a follow-up"),
                source,
                column: people.clone(),
                scoring: Scoring::Cohort,
            });
            for (suffix, what) in [
                ("mean_baseline", "mean baseline score"),
                ("mean_follow_up", "mean follow-up score"),
                ("mean_change", "mean change"),
            ] {
                out.push(Indicator {
                    id: format!("{measure}-{}", suffix.replace('_', "-")),
                    title: format!("{label}: {what}"),
                    source,
                    column: format!("{measure}.{suffix}"),
                    scoring: Scoring::ContinuousVariable {
                        basis: people.clone(),
                        unit: "{score}",
                    },
                });
            }
            out.push(Indicator {
                id: format!("{measure}-share-reached"),
                title: format!(
                    "{label}: share whose change reached the meaningful-change threshold"
                ),
                source,
                column: format!("{measure}.share_reached"),
                scoring: Scoring::Proportion {
                    numerator: format!("{measure}.reached_threshold"),
                    denominator: people,
                },
            });
        }
    }
    out
}

/// The indicator a `measure` search value names: its canonical URL (with or without a
/// `|version`), `Measure/{id}`, or its id.
pub fn find(measure: &str) -> Option<Indicator> {
    let plain = measure.split('|').next().unwrap_or(measure);
    let id = plain
        .strip_prefix(MEASURE_BASE)
        .and_then(|rest| rest.strip_prefix('/'))
        .or_else(|| plain.strip_prefix("Measure/"))
        .unwrap_or(plain);
    indicators().into_iter().find(|i| i.id == id)
}

fn concept(system: &str, code: &str) -> Value {
    json!({"coding": [{"system": system, "code": code}]})
}

fn population_codes(scoring: &Scoring) -> Vec<&'static str> {
    match scoring {
        Scoring::Cohort => vec!["initial-population"],
        Scoring::ContinuousVariable { .. } => {
            vec![
                "initial-population",
                "measure-population",
                "measure-observation",
            ]
        }
        Scoring::Proportion { .. } => vec!["initial-population", "denominator", "numerator"],
    }
}

fn scoring_code(scoring: &Scoring) -> &'static str {
    match scoring {
        Scoring::Cohort => "cohort",
        Scoring::ContinuousVariable { .. } => "continuous-variable",
        Scoring::Proportion { .. } => "proportion",
    }
}

/// The FHIR Measure of an indicator.
pub fn measure(indicator: &Indicator) -> Value {
    let populations: Vec<Value> = population_codes(&indicator.scoring)
        .into_iter()
        .map(|code| {
            json!({
                "code": concept(POPULATION, code),
                "criteria": {"language": "text/plain", "expression": population_text(indicator, code)}
            })
        })
        .collect();
    let stratifiers: Vec<Value> = Dimension::ALL
        .into_iter()
        .map(|d| {
            json!({
                "code": {"coding": [{"system": DIMENSION_SYSTEM, "code": d.as_str(), "display": d.label()}]},
                "criteria": {"language": "text/plain", "expression": d.label()}
            })
        })
        .collect();
    let name: String = indicator
        .id
        .split('-')
        .map(|w| {
            let mut chars = w.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    json!({
        "resourceType": "Measure",
        "id": indicator.id,
        "url": indicator.url(),
        "version": "1",
        "name": name,
        "title": indicator.title,
        "status": "active",
        "experimental": false,
        "publisher": "sp-gateway",
        "description": format!("{}, of the referrals the gateway received in the reporting period (a cohort by date of receipt). Counts from 1 to 4, and figures over fewer than 5 people, are suppressed.", indicator.title),
        "scoring": concept(SCORING, scoring_code(&indicator.scoring)),
        "group": [{"population": populations, "stratifier": stratifiers}]
    })
}

fn population_text(indicator: &Indicator, code: &str) -> String {
    match (code, &indicator.scoring) {
        ("initial-population", Scoring::Cohort) => indicator.title.clone(),
        (
            "initial-population" | "measure-population" | "denominator",
            Scoring::ContinuousVariable { basis, .. },
        )
        | (
            "initial-population" | "denominator",
            Scoring::Proportion {
                denominator: basis, ..
            },
        ) => {
            format!("Referrals counted in the report column {basis}")
        }
        ("numerator", Scoring::Proportion { numerator, .. }) => {
            format!("Referrals counted in the report column {numerator}")
        }
        _ => format!("The value of the report column {}", indicator.column),
    }
}

/// Every published Measure.
pub fn all_measures() -> Vec<Value> {
    indicators().iter().map(measure).collect()
}

/// A `_count` or a `count`: the figure, or the masked marker when suppressed.
fn count_field(table: &Table, group: &str, column: &str) -> (String, Value) {
    match table.value(group, column) {
        Some(Figure::Count(n)) => ("count".into(), json!(n)),
        _ => (
            "_count".into(),
            json!({"extension": [{"url": DATA_ABSENT, "valueCode": "masked"}]}),
        ),
    }
}

fn populations(indicator: &Indicator, table: &Table, group: &str) -> Vec<Value> {
    let column_of = |code: &str| -> Option<&str> {
        match (&indicator.scoring, code) {
            (Scoring::Cohort, _) => Some(&indicator.column),
            (
                Scoring::ContinuousVariable { basis, .. },
                "initial-population" | "measure-population",
            ) => Some(basis),
            (Scoring::Proportion { denominator, .. }, "initial-population" | "denominator") => {
                Some(denominator)
            }
            (Scoring::Proportion { numerator, .. }, "numerator") => Some(numerator),
            _ => None,
        }
    };
    population_codes(&indicator.scoring)
        .into_iter()
        .filter_map(|code| {
            let column = column_of(code)?;
            let (key, value) = count_field(table, group, column);
            let mut population = json!({"code": concept(POPULATION, code)});
            population[key] = value;
            Some(population)
        })
        .collect()
}

/// The `measureScore` of a group or stratum: the figure, masked when suppressed, absent when
/// not applicable (a median over nobody) or for a cohort.
fn measure_score(indicator: &Indicator, table: &Table, group: &str) -> Option<Value> {
    let unit = match &indicator.scoring {
        Scoring::Cohort => return None,
        Scoring::ContinuousVariable { unit, .. } => Some(*unit),
        Scoring::Proportion { .. } => None,
    };
    let suppressed = table
        .suppressed
        .iter()
        .any(|c| c.group == group && c.column == indicator.column);
    if suppressed {
        return Some(json!({"extension": [{"url": DATA_ABSENT, "valueCode": "masked"}]}));
    }
    let Some(Figure::Number(value)) = table.value(group, &indicator.column) else {
        return None;
    };
    Some(match unit {
        Some(unit) => json!({"value": value, "unit": unit, "system": UCUM, "code": unit}),
        None => json!({"value": value}),
    })
}

fn group_of_report(indicator: &Indicator, tables: &[(Dimension, &Table)]) -> Value {
    let Some((_, first)) = tables.first() else {
        return json!({});
    };
    let mut group = json!({"population": populations(indicator, first, TOTAL_GROUP)});
    if let Some(score) = measure_score(indicator, first, TOTAL_GROUP) {
        group["measureScore"] = score;
    }
    let stratifiers: Vec<Value> = tables
        .iter()
        .map(|(dimension, table)| {
            let strata: Vec<Value> = table
                .rows
                .iter()
                .filter(|row| row.group != TOTAL_GROUP)
                .map(|row| {
                    let mut stratum = json!({
                        "value": {"text": row.group},
                        "population": populations(indicator, table, &row.group)
                    });
                    if let Some(score) = measure_score(indicator, table, &row.group) {
                        stratum["measureScore"] = score;
                    }
                    stratum
                })
                .collect();
            json!({
                "code": [{"coding": [{"system": DIMENSION_SYSTEM, "code": dimension.as_str(), "display": dimension.label()}]}],
                "stratum": strata
            })
        })
        .collect();
    group["stratifier"] = json!(stratifiers);
    group
}

/// The `summary` MeasureReports of `indicators` over `period` for `scope`, one per indicator,
/// each stratified by every dimension. Each report table is computed once.
pub async fn measure_reports(
    store: &dyn Store,
    config: &Config,
    scope: &Scope,
    indicators: &[Indicator],
    period: Period,
) -> Result<Vec<Value>, ReportError> {
    let mut tables: HashMap<(Source, Dimension), Table> = HashMap::new();
    for indicator in indicators {
        for by in Dimension::ALL {
            if tables.contains_key(&(indicator.source, by)) {
                continue;
            }
            let request = ReportRequest { period, by };
            let table = match indicator.source {
                Source::Referrals => referrals_report(store, config, scope, &request).await?,
                Source::Wellbeing(instrument) => {
                    wellbeing_report(store, config, scope, &request, instrument).await?
                }
            };
            tables.insert((indicator.source, by), table);
        }
    }
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    Ok(indicators
        .iter()
        .map(|indicator| {
            let mine: Vec<(Dimension, &Table)> = Dimension::ALL
                .into_iter()
                .filter_map(|by| tables.get(&(indicator.source, by)).map(|t| (by, t)))
                .collect();
            json!({
                "resourceType": "MeasureReport",
                "id": uuid::Uuid::new_v4().to_string(),
                "status": "complete",
                "type": "summary",
                "measure": indicator.url(),
                "date": now,
                "period": {"start": period.from().to_string(), "end": period.to().to_string()},
                "group": [group_of_report(indicator, &mine)]
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_indicator_is_found_by_id_and_by_canonical_url() {
        let all = indicators();
        assert!(all.len() > 20);
        for indicator in &all {
            assert_eq!(find(&indicator.id).as_ref(), Some(indicator));
            assert_eq!(find(&indicator.url()).as_ref(), Some(indicator));
            assert_eq!(
                find(&format!("{}|1", indicator.url())).as_ref(),
                Some(indicator)
            );
        }
        assert_eq!(find("no-such-measure"), None);
    }

    /// Every figure of the referrals report, the decline reasons included, is a Measure too.
    #[test]
    fn every_referrals_column_is_a_measure() {
        let all = indicators();
        for (key, _) in super::super::referral_columns() {
            let found: Vec<_> = all
                .iter()
                .filter(|i| i.source == Source::Referrals && i.column == key)
                .collect();
            assert_eq!(found.len(), 1, "{key}");
        }
        assert!(find("referrals-declined-no-capacity").is_some());
        assert!(find("referrals-declined-not-coded").is_some());
    }
}
