//! Runs the official FHIRPath R4 test suite (`tests/data/tests-fhir-r4.xml`).
//!
//! Every case is run; cases that need features outside this evaluator's
//! scope are counted as skipped with a reason (see CONFORMANCE.md). The test
//! fails when the number of passing cases drops below [`PASS_FLOOR`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use fhirpath::{compile, Context, Item, ModelInfo, ParseError, StructureDefinitionModel, Temporal};
use serde_json::Value;

/// Number of cases passing (with the R4 model) when this floor was last raised.
const PASS_FLOOR: usize = 926;
/// Same, evaluated without type information.
const PASS_FLOOR_WITHOUT_MODEL: usize = 914;

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

struct Case {
    name: String,
    group: String,
    input_file: Option<String>,
    mode: Option<String>,
    predicate: bool,
    ordered: bool,
    expression: String,
    invalid: bool,
    outputs: Vec<(String, String)>,
}

fn load_cases() -> Vec<Case> {
    let text = std::fs::read_to_string(data_dir().join("tests-fhir-r4.xml")).expect("suite file");
    let doc = roxmltree::Document::parse(&text).expect("suite XML");
    let mut cases = Vec::new();
    for group in doc
        .root_element()
        .children()
        .filter(|n| n.has_tag_name("group"))
    {
        let group_name = group.attribute("name").unwrap_or("").to_string();
        for test in group.children().filter(|n| n.is_element()) {
            if !(test.has_tag_name("test") || test.has_tag_name("modeTest")) {
                continue;
            }
            let Some(expr) = test.children().find(|n| n.has_tag_name("expression")) else {
                continue;
            };
            let outputs = test
                .children()
                .filter(|n| n.has_tag_name("output"))
                .map(|o| {
                    (
                        o.attribute("type").unwrap_or("").to_string(),
                        o.text().unwrap_or("").to_string(),
                    )
                })
                .collect();
            cases.push(Case {
                name: test.attribute("name").unwrap_or("").to_string(),
                group: group_name.clone(),
                input_file: test.attribute("inputfile").map(str::to_string),
                mode: test
                    .attribute("mode")
                    .or_else(|| expr.attribute("mode"))
                    .map(str::to_string),
                predicate: test.attribute("predicate") == Some("true"),
                ordered: test.attribute("ordered") != Some("false"),
                expression: expr.text().unwrap_or("").to_string(),
                invalid: expr.attribute("invalid").is_some(),
                outputs,
            });
        }
    }
    cases
}

fn load_input(file: &str) -> Value {
    let json_name = file.replace(".xml", ".json");
    let text = std::fs::read_to_string(data_dir().join(&json_name)).expect("input file");
    serde_json::from_str(&text).expect("input JSON")
}

/// Compares one result item with an expected `<output>`.
fn matches_output(item: &Item<'_>, ty: &str, expected: &str) -> bool {
    let sys = item.to_system();
    match ty {
        "boolean" => item.as_bool() == Some(expected == "true"),
        "integer" => matches!(sys, Some(Item::Integer(i)) if i.to_string() == expected),
        "decimal" => match (sys, fhirpath::Decimal::parse(expected)) {
            (Some(Item::Decimal(d)), Some(e)) => d == e,
            (Some(Item::Integer(i)), Some(e)) => fhirpath::Decimal::from_i64(i) == e,
            _ => false,
        },
        "date" | "dateTime" | "time" => {
            let want = expected.trim_start_matches('@').trim_start_matches('T');
            let got = match &sys {
                Some(Item::Date(t) | Item::DateTime(t) | Item::Time(t)) => t.to_string(),
                Some(Item::String(s)) => s.clone(),
                _ => return false,
            };
            got == want
        }
        "Quantity" => match sys {
            Some(Item::Quantity(_)) => item.to_string() == expected,
            _ => false,
        },
        // Untyped outputs (boundary tests) compare as rendered literals.
        "" => {
            let rendered = match &sys {
                Some(Item::Date(t) | Item::DateTime(t)) => format!("@{t}"),
                Some(Item::Time(t)) => format!("@T{t}"),
                _ => item.to_string(),
            };
            rendered == expected
        }
        // string, code, id, uri...: FHIR string-like primitives.
        _ => matches!(sys, Some(Item::String(s)) if s == expected),
    }
}

fn outputs_match(result: &[Item<'_>], case: &Case) -> bool {
    if result.len() != case.outputs.len() {
        return false;
    }
    if case.ordered {
        return result
            .iter()
            .zip(&case.outputs)
            .all(|(item, (ty, v))| matches_output(item, ty, v));
    }
    let mut used = vec![false; result.len()];
    case.outputs.iter().all(|(ty, v)| {
        let hit = (0..result.len()).find(|&i| !used[i] && matches_output(&result[i], ty, v));
        hit.map(|i| used[i] = true).is_some()
    })
}

enum Outcome {
    Pass,
    Fail(String),
    Skip(String),
}

fn skip_reason(case: &Case) -> Option<String> {
    if case.mode.as_deref() == Some("strict") {
        return Some("strict mode: rejecting paths not in the model needs full type info".into());
    }
    if let Some(mode) = case.mode.as_deref() {
        return Some(format!("mode '{mode}' not modelled"));
    }
    None
}

/// The R4 type model built from `r4-model.json` (stripped StructureDefinitions).
fn r4_model() -> StructureDefinitionModel {
    let text = std::fs::read_to_string(data_dir().join("r4-model.json")).expect("model file");
    let bundle: Value = serde_json::from_str(&text).expect("model JSON");
    let mut model = StructureDefinitionModel::new();
    model.add_bundle(&bundle);
    // The suite only uses types present in the file, and checks that
    // unknown type names are errors.
    model.assume_complete()
}

fn run_case(case: &Case, now: Temporal, model: Option<&dyn ModelInfo>) -> Outcome {
    if let Some(reason) = skip_reason(case) {
        return Outcome::Skip(reason);
    }
    let expr = match compile(&case.expression) {
        Ok(e) => e,
        Err(_) if case.invalid => return Outcome::Pass,
        Err(ParseError::UnknownFunction(f)) => {
            return Outcome::Skip(format!("unsupported function {f}()"))
        }
        Err(e) => return Outcome::Fail(format!("compile error: {e}")),
    };
    let input = case
        .input_file
        .as_deref()
        .map(load_input)
        .unwrap_or_else(|| Value::Object(Default::default()));
    let ctx = Context {
        now: Some(now),
        model,
        ..Context::default()
    };
    match expr.evaluate(&input, &ctx) {
        Err(_) if case.invalid => Outcome::Pass,
        Err(fhirpath::EvalError::Unsupported(what)) => {
            Outcome::Skip(format!("unsupported: {what}"))
        }
        Err(e) => Outcome::Fail(format!("evaluation error: {e}")),
        Ok(result) if case.invalid => Outcome::Fail(format!(
            "expected an error, got {:?}",
            result.iter().map(|i| i.to_string()).collect::<Vec<_>>()
        )),
        Ok(result) => {
            let result = if case.predicate {
                vec![Item::Boolean(!result.is_empty())]
            } else {
                result
            };
            if outputs_match(&result, case) {
                Outcome::Pass
            } else {
                Outcome::Fail(format!(
                    "expected {:?}, got {:?}",
                    case.outputs,
                    result
                        .iter()
                        .map(|i| format!("{}:{}", i.type_name(), i))
                        .collect::<Vec<_>>()
                ))
            }
        }
    }
}

struct Summary {
    passed: usize,
    failed: usize,
    skipped: usize,
}

fn run_suite(model: Option<&dyn ModelInfo>, verbose: bool) -> Summary {
    let cases = load_cases();
    let now = Temporal::now_utc();
    let (mut passed, mut failed, mut skipped) = (0usize, 0usize, 0usize);
    let mut skip_groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut failures = Vec::new();
    for case in &cases {
        match run_case(case, now, model) {
            Outcome::Pass => passed += 1,
            Outcome::Fail(why) => {
                failed += 1;
                failures.push(format!(
                    "  [{}] {}: `{}` -> {}",
                    case.group, case.name, case.expression, why
                ));
            }
            Outcome::Skip(reason) => {
                skipped += 1;
                skip_groups
                    .entry(reason)
                    .or_default()
                    .push(case.name.clone());
            }
        }
    }
    if !verbose {
        return Summary {
            passed,
            failed,
            skipped,
        };
    }
    eprintln!("FAILURES ({failed}):");
    for f in &failures {
        eprintln!("{f}");
    }
    eprintln!("SKIPPED ({skipped}) by reason:");
    for (reason, names) in &skip_groups {
        eprintln!("  {} x {}: {}", names.len(), reason, names.join(", "));
    }
    eprintln!("total {}", cases.len());
    Summary {
        passed,
        failed,
        skipped,
    }
}

#[test]
fn official_fhirpath_r4_suite() {
    let model = r4_model();
    let with = run_suite(Some(&model), true);
    let without = run_suite(None, std::env::var_os("FHIRPATH_SUITE_NO_MODEL").is_some());
    println!(
        "official suite without model: {} passed, {} failed, {} skipped",
        without.passed, without.failed, without.skipped
    );
    println!(
        "official suite: {} passed, {} failed, {} skipped",
        with.passed, with.failed, with.skipped
    );
    assert!(
        with.passed >= PASS_FLOOR,
        "official suite regressed: {} passed, floor is {PASS_FLOOR}",
        with.passed
    );
    assert!(
        without.passed >= PASS_FLOOR_WITHOUT_MODEL,
        "official suite without model regressed: {} passed, floor is {PASS_FLOOR_WITHOUT_MODEL}",
        without.passed
    );
}
