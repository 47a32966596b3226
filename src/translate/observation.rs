//! The SP-OutcomeObservations of an outcome report: one per score of the questionnaire, with the
//! timepoint, the item answers and the SWEMWBS metric score as components.

use serde_json::{json, Value};

use super::instruments::{scores, Instrument, Score, Timepoint};
use super::vcs_request::OutcomeReport;
use super::{fixed_text, organisation_reference, reference, WELLBEING_MEASURE};
use crate::config::VcsConfig;

const ASSESSMENT_TIMEPOINT: &str = "https://fhir.sp-gateway.uk/CodeSystem/assessment-timepoint";
const OBSERVATION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
const UCUM: &str = "http://unitsofmeasure.org";

/// How many Observations `outcome_observations` makes for the instrument (so the caller can
/// assign ids first): one per ONS4 question, one for a WEMWBS or SWEMWBS questionnaire.
pub fn observation_count(instrument: Instrument) -> usize {
    instrument.score_count()
}

/// The SP Outcome Observations for a report, in order, one per id (`ids` should hold
/// `observation_count(report.instrument)` ids; Observations without an id are not made, extra
/// ids are ignored). ONS4 gives its four questions in the order life satisfaction, worthwhile,
/// happiness, anxiety.
pub fn outcome_observations(
    report: &OutcomeReport,
    ids: &[String],
    referral_id: &str,
    patient_id: &str,
    vcs: &VcsConfig,
) -> Vec<Value> {
    scores(report.instrument, &report.answers)
        .into_iter()
        .zip(ids)
        .map(|(score, id)| observation(id, &score, report, referral_id, patient_id, vcs))
        .collect()
}

fn observation(
    id: &str,
    score: &Score<'_>,
    report: &OutcomeReport,
    referral_id: &str,
    patient_id: &str,
    vcs: &VcsConfig,
) -> Value {
    let mut components = vec![timepoint_component(report.timepoint)];
    components.extend(item_components(report.instrument, score.items));
    components.extend(score.metric.map(metric_component));
    json!({
        "resourceType": "Observation",
        "id": id,
        "meta": {"profile": [sp_validator::SP_OUTCOME_OBSERVATION]},
        "basedOn": [reference("ServiceRequest", referral_id)],
        "status": "final",
        "category": [{"coding": [{
            "system": OBSERVATION_CATEGORY,
            "code": "survey",
            "display": "Survey"
        }]}],
        "code": {"coding": [{
            "system": WELLBEING_MEASURE,
            "code": score.code,
            "display": score.display
        }]},
        "subject": reference("Patient", patient_id),
        "effectiveDateTime": fixed_text(report.occurred_at),
        "performer": [organisation_reference(vcs)],
        "valueInteger": score.value,
        "component": components,
    })
}

/// Components `wemwbs-item-1`… carrying each answer, numbered as in the questionnaire.
fn item_components(instrument: Instrument, answers: &[u8]) -> impl Iterator<Item = Value> + '_ {
    let (prefix, label) = (instrument.as_str(), instrument.label());
    answers.iter().enumerate().map(move |(i, &answer)| {
        let n = i + 1;
        json!({
            "code": {"coding": [{
                "system": WELLBEING_MEASURE,
                "code": format!("{prefix}-item-{n}"),
                "display": format!("{label} item {n} score")
            }]},
            "valueInteger": answer
        })
    })
}

fn metric_component(metric: f64) -> Value {
    json!({
        "code": {"coding": [{
            "system": WELLBEING_MEASURE,
            "code": "swemwbs-metric",
            "display": "SWEMWBS metric score"
        }]},
        // component.value[x] has no decimal in R4; a dimensionless UCUM quantity carries it.
        "valueQuantity": {"value": metric, "unit": "score", "system": UCUM, "code": "{score}"}
    })
}

fn timepoint_component(timepoint: Timepoint) -> Value {
    json!({
        "code": {"coding": [{
            "system": WELLBEING_MEASURE,
            "code": "assessment-timepoint",
            "display": "Assessment timepoint"
        }]},
        "valueCodeableConcept": {"coding": [{
            "system": ASSESSMENT_TIMEPOINT,
            "code": timepoint.as_str(),
            "display": timepoint.display()
        }]}
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::translate::instruments::{swemwbs_metric_score, ONS4_ITEMS};
    use crate::translate::test_support::{
        assert_valid, at, error_keys, errors, show, validator, vcs,
    };

    fn observations_for(
        instrument: Instrument,
        answers: Vec<u8>,
        timepoint: Timepoint,
    ) -> Vec<Value> {
        let report = OutcomeReport {
            instrument,
            timepoint,
            answers,
            occurred_at: at("2026-10-14T11:00:00+01:00"),
        };
        let ids: Vec<String> = (0..observation_count(instrument))
            .map(|i| format!("obs-{i}"))
            .collect();
        outcome_observations(&report, &ids, "sr-1", "pat-1", &vcs())
    }

    fn component<'a>(obs: &'a Value, code: &str) -> Vec<&'a Value> {
        obs["component"]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .filter(|c| c["code"]["coding"][0]["code"] == code)
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn ons4_gives_four_valid_observations_in_question_order() {
        for answers in [vec![0, 0, 0, 0], vec![10, 10, 10, 10], vec![4, 6, 5, 7]] {
            let obs = observations_for(Instrument::Ons4, answers.clone(), Timepoint::Baseline);
            assert_eq!(obs.len(), 4);
            for (i, o) in obs.iter().enumerate() {
                assert_valid(o);
                assert_eq!(o["id"], format!("obs-{i}"));
                assert_eq!(o["valueInteger"], answers[i]);
                assert_eq!(o["code"]["coding"][0]["code"], ONS4_ITEMS[i].0);
                assert_eq!(o["component"].as_array().map(Vec::len), Some(1));
            }
        }
    }

    #[test]
    fn wemwbs_gives_one_valid_observation_with_items() {
        for answers in [
            vec![1; 14],
            vec![5; 14],
            vec![3, 4, 2, 5, 1, 3, 4, 2, 5, 1, 3, 4, 2, 5],
        ] {
            let obs = observations_for(Instrument::Wemwbs, answers.clone(), Timepoint::FollowUp);
            assert_eq!(obs.len(), 1);
            let o = &obs[0];
            assert_valid(o);
            assert_eq!(
                o["valueInteger"],
                answers.iter().map(|&a| u32::from(a)).sum::<u32>()
            );
            assert_eq!(o["component"].as_array().map(Vec::len), Some(15));
            assert_eq!(
                component(o, "wemwbs-item-14")[0]["valueInteger"],
                answers[13]
            );
            assert_eq!(
                component(o, "assessment-timepoint")[0]["valueCodeableConcept"]["coding"][0]
                    ["code"],
                "follow-up"
            );
            assert_eq!(o["basedOn"][0]["reference"], "ServiceRequest/sr-1");
            assert_eq!(o["subject"]["reference"], "Patient/pat-1");
            assert_eq!(o["performer"][0]["identifier"]["value"], "X1A2B");
            assert_eq!(o["effectiveDateTime"], "2026-10-14T11:00:00+01:00");
        }
    }

    #[test]
    fn swemwbs_gives_one_valid_observation_with_items_and_metric() {
        for answers in [vec![1; 7], vec![5; 7], vec![3, 4, 3, 4, 3, 4, 3]] {
            let raw: u8 = answers.iter().sum();
            let obs = observations_for(Instrument::Swemwbs, answers.clone(), Timepoint::Baseline);
            assert_eq!(obs.len(), 1);
            let o = &obs[0];
            assert_valid(o);
            assert_eq!(o["valueInteger"], raw);
            assert_eq!(o["component"].as_array().map(Vec::len), Some(9));
            let metric = component(o, "swemwbs-metric");
            assert_eq!(metric.len(), 1);
            assert_eq!(
                metric[0]["valueQuantity"]["value"].as_f64(),
                swemwbs_metric_score(raw)
            );
        }
    }

    #[test]
    fn every_possible_swemwbs_total_validates() {
        // Raw totals 7..=35, reached by raising one item at a time.
        let mut answers = vec![1u8; 7];
        for step in 0..=28 {
            if step > 0 {
                let i = (step - 1) % 7;
                answers[i] += 1;
            }
            let obs = observations_for(Instrument::Swemwbs, answers.clone(), Timepoint::FollowUp);
            assert_valid(&obs[0]);
        }
    }

    #[test]
    fn fewer_ids_give_fewer_observations() {
        let report = OutcomeReport {
            instrument: Instrument::Ons4,
            timepoint: Timepoint::Baseline,
            answers: vec![1, 2, 3, 4],
            occurred_at: at("2026-10-14T11:00:00Z"),
        };
        let ids = vec!["a".to_string(), "b".to_string()];
        assert_eq!(
            outcome_observations(&report, &ids, "sr", "p", &vcs()).len(),
            2
        );
        assert_eq!(observation_count(Instrument::Wemwbs), 1);
        assert_eq!(observation_count(Instrument::Swemwbs), 1);
        assert_eq!(observation_count(Instrument::Ons4), 4);
    }

    /// The invariants sp-obs-4..7 are really evaluated: broken variants of what we build fail
    /// with the right key.
    #[test]
    fn outcome_invariants_catch_broken_observations() {
        let skipped: Vec<&str> = validator()
            .skipped_constraints()
            .iter()
            .map(|(k, _)| k.as_str())
            .collect();
        for key in ["sp-obs-4", "sp-obs-5", "sp-obs-6", "sp-obs-7"] {
            assert!(
                !skipped.contains(&key),
                "{key} is not evaluated: {skipped:?}"
            );
        }
        let wemwbs =
            observations_for(Instrument::Wemwbs, vec![3; 14], Timepoint::Baseline).remove(0);
        let swemwbs =
            observations_for(Instrument::Swemwbs, vec![3; 7], Timepoint::Baseline).remove(0);
        let ons4 = observations_for(Instrument::Ons4, vec![3; 4], Timepoint::Baseline).remove(0);

        let mut two_timepoints = ons4.clone();
        let tp = two_timepoints["component"][0].clone();
        two_timepoints["component"]
            .as_array_mut()
            .expect("components")
            .push(tp);
        assert!(error_keys(&two_timepoints).contains(&"sp-obs-4"));

        let mut no_timepoint = wemwbs.clone();
        no_timepoint["component"]
            .as_array_mut()
            .expect("components")
            .remove(0);
        assert!(error_keys(&no_timepoint).contains(&"sp-obs-4"));

        let mut item_out_of_range = wemwbs.clone();
        item_out_of_range["component"][1]["valueInteger"] = json!(6);
        item_out_of_range["valueInteger"] = json!(45);
        assert!(error_keys(&item_out_of_range).contains(&"sp-obs-5"));

        let mut wrong_sum = wemwbs.clone();
        wrong_sum["valueInteger"] = json!(43);
        assert!(error_keys(&wrong_sum).contains(&"sp-obs-5"));

        let mut missing_item = swemwbs.clone();
        missing_item["component"]
            .as_array_mut()
            .expect("components")
            .remove(3);
        assert!(error_keys(&missing_item).contains(&"sp-obs-6"));

        let mut duplicate_item = swemwbs.clone();
        duplicate_item["component"][2]["code"] = duplicate_item["component"][1]["code"].clone();
        assert!(error_keys(&duplicate_item).contains(&"sp-obs-6"));

        let mut items_on_ons4 = ons4.clone();
        let item = swemwbs["component"][1].clone();
        items_on_ons4["component"]
            .as_array_mut()
            .expect("components")
            .push(item);
        assert!(error_keys(&items_on_ons4).contains(&"sp-obs-6"));

        let mut metric_on_wemwbs = wemwbs.clone();
        let metric = component(&swemwbs, "swemwbs-metric")[0].clone();
        metric_on_wemwbs["component"]
            .as_array_mut()
            .expect("components")
            .push(metric);
        assert!(error_keys(&metric_on_wemwbs).contains(&"sp-obs-7"));

        let mut metric_too_high = swemwbs.clone();
        let last = metric_too_high["component"]
            .as_array()
            .map(Vec::len)
            .unwrap_or(1)
            - 1;
        metric_too_high["component"][last]["valueQuantity"]["value"] = json!(35.5);
        assert!(error_keys(&metric_too_high).contains(&"sp-obs-7"));

        let mut unknown_timepoint = ons4.clone();
        unknown_timepoint["component"][0]["valueCodeableConcept"]["coding"][0]["code"] =
            json!("week-6");
        let errs = errors(&unknown_timepoint);
        assert!(
            errs.iter().any(|i| i.code.as_str() == "code-invalid"
                && i.expression == "Observation.component[0].valueCodeableConcept"),
            "{}",
            show(&errs)
        );

        let mut unknown_component = ons4;
        unknown_component["component"][0]["code"]["coding"][0]["code"] = json!("mood");
        let errs = errors(&unknown_component);
        assert!(
            errs.iter().any(|i| i.code.as_str() == "code-invalid"
                && i.expression == "Observation.component[0].code"),
            "{}",
            show(&errs)
        );
    }

    // --- profiles/examples ----------------------------------------------------------------

    fn example(name: &str) -> Value {
        let path = format!("{}/profiles/examples/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// The Observation and Task examples behave as `expected-results.json` says (the profile
    /// README table); the bundles and Patients belong to the referral side.
    #[test]
    fn observation_and_task_examples_meet_their_expectations() {
        let expected = example("expectations/expected-results.json");
        let ours = |name: &str| {
            name.contains("Observation")
                || name.contains("observation")
                || name.contains("Task")
                || name.contains("task")
        };
        let valid = expected["valid"].as_array().expect("valid list");
        let mut checked = 0;
        for name in valid.iter().filter_map(Value::as_str).filter(|n| ours(n)) {
            let errs = errors(&example(name));
            assert!(errs.is_empty(), "{name}:\n{}", show(&errs));
            checked += 1;
        }
        let invalid = expected["invalid"].as_object().expect("invalid map");
        for (name, want) in invalid.iter().filter(|(n, _)| ours(n)) {
            let errs = errors(&example(name));
            for issue in want["issues"].as_array().expect("issues") {
                let found = errs.iter().any(|i| {
                    i.code.as_str() == issue["code"]
                        && i.expression == issue["expression"]
                        && issue.get("key").is_none_or(|k| *k == i.message_id)
                });
                assert!(found, "{name}: expected {issue}, got:\n{}", show(&errs));
            }
            checked += 1;
        }
        assert!(checked >= 20, "only {checked} examples checked");
    }

    /// An Observation's code and value.
    type Coded<'a> = (&'a str, u32);
    /// Instrument, answers, timepoint, expected Observations, components per Observation.
    type Case = (Instrument, Vec<u8>, Timepoint, Vec<Coded<'static>>, usize);

    /// Per instrument and timepoint: how many Observations, their codes and values, and how many
    /// components each carries (timepoint, items, metric).
    #[test]
    fn observations_per_report() {
        // (instrument, answers, timepoint, [(code, value)], components per Observation)
        let table: [Case; 4] = [
            (
                Instrument::Ons4,
                vec![4, 6, 5, 7],
                Timepoint::Baseline,
                vec![
                    ("ons4-life-satisfaction", 4),
                    ("ons4-worthwhile", 6),
                    ("ons4-happiness", 5),
                    ("ons4-anxiety", 7),
                ],
                1,
            ),
            (
                Instrument::Wemwbs,
                vec![2; 14],
                Timepoint::FollowUp,
                vec![("wemwbs-total", 28)],
                15,
            ),
            (
                Instrument::Swemwbs,
                vec![1; 7],
                Timepoint::Baseline,
                vec![("swemwbs-total", 7)],
                9,
            ),
            (
                Instrument::Swemwbs,
                vec![5; 7],
                Timepoint::FollowUp,
                vec![("swemwbs-total", 35)],
                9,
            ),
        ];
        for (instrument, answers, timepoint, expected, components) in table {
            let obs = observations_for(instrument, answers, timepoint);
            let found: Vec<Coded> = obs
                .iter()
                .map(|o| {
                    let code = o["code"]["coding"][0]["code"].as_str().unwrap_or_default();
                    let value = o["valueInteger"]
                        .as_u64()
                        .and_then(|v| u32::try_from(v).ok());
                    (code, value.unwrap_or(u32::MAX))
                })
                .collect();
            assert_eq!(found, expected, "{}", instrument.as_str());
            for o in &obs {
                assert_valid(o);
                assert_eq!(o["component"].as_array().map(Vec::len), Some(components));
                assert_eq!(
                    component(o, "assessment-timepoint")[0]["valueCodeableConcept"]["coding"][0]
                        ["code"],
                    timepoint.as_str()
                );
            }
        }
    }
}
