//! The R4 subset of FHIR/fhir-test-cases: our error count against the HL7
//! Java validator's expected outcome, per case (see CONFORMANCE.md).
//!
//! `cargo test -p sp-validator --test fhir_test_cases -- --nocapture` prints
//! the agreement table.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use common::data;
use serde_json::Value;
use sp_validator::{Options, Validator};

/// Cases (and runs: `base` = no explicit profile, `profile` = validated
/// against the case's profile) where our error count equals the Java
/// validator's. This list may only grow.
const AGREEING_EXACT: &[&str] = &[
    "additional-bindings-observation-2/base",
    "additional-bindings-observation-2/profile",
    "ai3/base",
    "ai4/base",
    "ai5/base",
    "ai6/base",
    "bb-obs-value-is-not-in-valueset/base",
    "bb-obs-value-is-not-in-valueset/profile",
    "bb-obs-value-is-not-quantity-or-string/base",
    "bb-obs-value-is-not-quantity-or-string/profile",
    "bb-obs-value-is-not-quantity/base",
    "bb-obs-value-is-not-quantity/profile",
    "bundle-invariant/base",
    "encounter-period/base",
    "ext-ctxt-bad-active/base",
    "ext-ctxt-good-base/base",
    "fixed-quantity-binding-observation-2/base",
    "fixed-quantity-binding-observation-2/profile",
    "fixed-quantity-binding-observation/base",
    "fixed-quantity-binding-observation/profile",
    "inv-checks/base",
    "inv-checks/profile",
    "obs-temp-bad/base",
    "obs-temp/base",
    "obs-value-max-g/base",
    "obs-value-max-g/profile",
    "obs-value-min-g/base",
    "obs-value-min-g/profile",
    "obs-value-min/base",
    "obs-value-min/profile",
    "pat-fixed-date/base",
    "pat-fixed-date/profile",
    "pat-minvalue-date/base",
    "pat-minvalue-date/profile",
    "patient-extension-bad/base",
    "patient-extension-complex-bad2/base",
    "patient-extension-complex/base",
    "patient-id-bad-1 / R4/base",
    "patient-id-only/base",
    "patient-ig-bad/base",
    "patient-ig-good/base",
    "patient-lang-inv-bad/base",
    "patient-lang-inv-bad/profile",
    "patient-lang-inv/base",
    "patient-lang-inv/profile",
    "patient-min-fixed/base",
    "patient-min-fixed/profile",
    "patient-min-fixed1/base",
    "patient-min-fixed1/profile",
    "patient-min-length/base",
    "patient-min-length/profile",
    "patient-min-none/base",
    "patient-min-none/profile",
    "patient-min-none1/base",
    "patient-min-none1/profile",
    "patient-min-pattern/base",
    "patient-min-pattern/profile",
    "patient-min-pattern1/base",
    "patient-min-pattern1/profile",
    "profile-slicing-missing-instance/base",
    "slicing-kn-example/base",
    "slicing-kn-example/profile",
    "type-ref-checked/base",
    "type-ref-checked/profile",
    "type-ref-unchecked/base",
    "type-ref-unchecked/profile",
    "type-subtype-slicing1/base",
    "type-subtype-slicing1/profile",
    "type-subtype-slicing2/base",
    "type-subtype-slicing2/profile",
    "type-subtype-slicing3/base",
    "type-subtype-slicing3/profile",
];

/// Cases where we agree with the Java validator on the verdict (valid /
/// invalid) but not on the number of errors.
const AGREEING_VERDICT: &[&str] = &[
    "obs-quantity-us/base",
    "patient-bad-gender/base",
    "patient-bad-gender/profile",
    "patient-extension-bad3/base",
    "patient-extension-complex-bad1/base",
];

/// Cases we do not claim to support, with the reason.
const UNSUPPORTED: &[(&str, &str)] = &[
    (
        "sdoh-type-slice/base",
        "the Java error is a wrong LOINC display name; we have no LOINC to check displays against",
    ),
    (
        "sdoh-type-slice/profile",
        "the Java error is a wrong LOINC display name; we have no LOINC to check displays against",
    ),
];

/// Reads a file of the subset; XML files are read from their JSON
/// conversion in `json/` (see SOURCES.md there).
fn read(rel: &str) -> Option<Value> {
    let rel = match rel.strip_suffix(".xml") {
        Some(stem) => format!("../json/{stem}.json"),
        None => rel.to_string(),
    };
    let p = data(&format!("fhir-test-cases/validator/{rel}"));
    let text = std::fs::read_to_string(p).ok()?;
    serde_json::from_str(&text).ok()
}

fn expected_errors(outcome: &str) -> Option<usize> {
    let v = read(&format!("outcomes/{outcome}"))?;
    // An outcome without issues means the Java validator found nothing.
    let issues = v
        .get("issue")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    Some(
        issues
            .iter()
            .filter(|i| {
                matches!(
                    i.get("severity").and_then(Value::as_str),
                    Some("error" | "fatal")
                )
            })
            .count(),
    )
}

/// The Java outcome of a run: the file the manifest names or, when upstream
/// has no file of that name, the one the Java test suite writes for the run
/// (`R4.<case>-<base|profile>.json`; see SOURCES.md).
fn java_outcome(named: &str, case: &str, run: &str) -> Option<usize> {
    expected_errors(named).or_else(|| {
        let stem = case.replace('/', "-");
        expected_errors(&format!("java/R4.{stem}-{run}.json"))
    })
}

/// One run of one case.
#[derive(Debug)]
struct Run {
    id: String,
    expected: Option<usize>,
    ours: Result<usize, String>,
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The definition files of a run, as the Java test suite loads them: the
/// case's `profiles` and `supporting` for both runs; the profile run adds its
/// profile's `source` and `supporting`.
fn run_definitions(case: &Value, profile_run: bool) -> Vec<String> {
    let mut files = strings(case.get("profiles"));
    files.extend(strings(case.get("supporting")));
    if profile_run {
        let profile = case.get("profile");
        files.extend(strings(profile.and_then(|p| p.get("supporting"))));
        files.extend(
            profile
                .and_then(|p| p.get("source"))
                .and_then(Value::as_str)
                .map(str::to_string),
        );
    }
    files
}

/// Whether the run assumes that unresolved REST references point at the type
/// they name (`assumeValidRestReferences`, off unless the manifest says so; a
/// profile run may set it for itself).
fn assumes_valid_rest_references(case: &Value, profile_run: bool) -> bool {
    let flag = |v: Option<&Value>| {
        v.and_then(|v| v.get("assumeValidRestReferences"))
            .and_then(Value::as_bool)
    };
    let own = if profile_run {
        flag(case.get("profile"))
    } else {
        None
    };
    own.or(flag(Some(case))).unwrap_or(false)
}

/// A validator with the bundled definitions plus the run's definitions, set
/// up as the Java suite sets up the run.
fn validator_for(case: &Value, profile_run: bool) -> Result<Validator, String> {
    let mut defs = Vec::new();
    for f in run_definitions(case, profile_run) {
        defs.push(read(&f).ok_or_else(|| format!("cannot read definition {f}"))?);
    }
    Ok(Validator::with_extra(defs)
        .map_err(|e| e.to_string())?
        .assume_valid_rest_references(assumes_valid_rest_references(case, profile_run)))
}

/// Validators already built, by (definition files, assumeValidRestReferences):
/// most runs share the same set up.
type Validators = HashMap<(Vec<String>, bool), Rc<Result<Validator, String>>>;

fn shared_validator(
    cache: &mut Validators,
    case: &Value,
    profile_run: bool,
) -> Rc<Result<Validator, String>> {
    let key = (
        run_definitions(case, profile_run),
        assumes_valid_rest_references(case, profile_run),
    );
    cache
        .entry(key)
        .or_insert_with(|| Rc::new(validator_for(case, profile_run)))
        .clone()
}

/// Our error count for one run.
fn our_errors(
    validator: &Result<Validator, String>,
    instance: &Result<Value, String>,
    profiles: &[&str],
) -> Result<usize, String> {
    let v = validator.as_ref().map_err(Clone::clone)?;
    let inst = instance.as_ref().map_err(Clone::clone)?;
    let opts = Options {
        profiles_by_type: &[],
        root_profiles: profiles,
    };
    Ok(v.validate(inst, &opts)
        .iter()
        .filter(|i| i.is_error())
        .count())
}

fn run_case(case: &Value, cache: &mut Validators) -> Vec<Run> {
    let name = case
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_string();
    let file = case.get("file").and_then(Value::as_str).unwrap_or("");
    let profile = case.get("profile");
    let mut runs = Vec::new();
    let profile_url = profile
        .and_then(|p| p.get("source"))
        .and_then(Value::as_str)
        .and_then(read)
        .and_then(|sd| sd.get("url").and_then(Value::as_str).map(str::to_string));
    let instance = read(file).ok_or_else(|| format!("cannot read or convert {file}"));
    if let Some(java) = case.get("java").and_then(Value::as_str) {
        let validator = shared_validator(cache, case, false);
        runs.push(Run {
            id: format!("{name}/base"),
            expected: java_outcome(java, &name, "base"),
            ours: our_errors(&validator, &instance, &[]),
        });
    }
    if let (Some(java), Some(url)) = (
        profile.and_then(|p| p.get("java")).and_then(Value::as_str),
        &profile_url,
    ) {
        let validator = shared_validator(cache, case, true);
        runs.push(Run {
            id: format!("{name}/profile"),
            expected: java_outcome(java, &name, "profile"),
            ours: our_errors(&validator, &instance, &[url.as_str()]),
        });
    }
    runs
}

fn all_runs() -> Vec<Run> {
    let manifest = read("../validator-manifest-r4-subset.json").unwrap_or(Value::Null);
    let cases = manifest
        .get("test-cases")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut cache = Validators::new();
    cases
        .iter()
        .flat_map(|case| run_case(case, &mut cache))
        .collect()
}

#[test]
fn agreement_does_not_shrink() {
    let runs = all_runs();
    assert!(
        runs.len() >= 60,
        "expected the manifest's runs, found {}",
        runs.len()
    );
    let mut table = BTreeMap::new();
    let (mut exact, mut verdict) = (Vec::new(), Vec::new());
    for r in &runs {
        let status = match (&r.ours, r.expected) {
            (Ok(n), Some(e)) if *n == e => {
                exact.push(r.id.clone());
                "exact"
            }
            (Ok(n), Some(e)) if (*n == 0) == (e == 0) => {
                verdict.push(r.id.clone());
                "verdict"
            }
            (Ok(_), Some(_)) => "differs",
            (Err(_), _) => "error",
            (_, None) => "no-expectation",
        };
        let ours = match &r.ours {
            Ok(n) => n.to_string(),
            Err(e) => format!("({e})"),
        };
        let expected = r
            .expected
            .map(|e| e.to_string())
            .unwrap_or_else(|| "?".into());
        table.insert(
            r.id.clone(),
            format!("| {} | {expected} | {ours} | {status} |", r.id),
        );
    }
    println!("| run | java errors | our errors | agreement |\n|---|---|---|---|");
    for line in table.values() {
        println!("{line}");
    }
    println!(
        "exact: {} verdict-only: {} of {} runs",
        exact.len(),
        verdict.len(),
        runs.len()
    );
    for id in AGREEING_EXACT {
        assert!(
            exact.iter().any(|e| e == id),
            "{id} no longer agrees exactly: {}",
            table[*id]
        );
    }
    for id in AGREEING_VERDICT {
        assert!(
            exact.iter().chain(verdict.iter()).any(|e| e == id),
            "{id} no longer agrees on the verdict: {}",
            table[*id]
        );
    }
    // An unsupported run that agrees now belongs in an agreeing list.
    for (id, _) in UNSUPPORTED {
        assert!(
            !exact.iter().chain(verdict.iter()).any(|e| e == id),
            "{id} agrees now: move it from UNSUPPORTED to AGREEING_EXACT or AGREEING_VERDICT: {}",
            table[*id]
        );
    }
    // Every run is either agreeing or explained.
    for r in &runs {
        let explained = exact.contains(&r.id)
            || verdict.contains(&r.id)
            || UNSUPPORTED.iter().any(|(id, _)| *id == r.id);
        assert!(
            explained,
            "{} is neither agreeing nor listed as unsupported: {}",
            r.id, table[&r.id]
        );
    }
}

/// `FTC_CASE=name cargo test -p sp-validator --test fhir_test_cases show_case -- --ignored --nocapture`
#[test]
#[ignore = "prints our issues for one case, for investigation"]
fn show_case() {
    let want = std::env::var("FTC_CASE").unwrap_or_default();
    let manifest = read("../validator-manifest-r4-subset.json").unwrap_or(Value::Null);
    let cases = manifest
        .get("test-cases")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for case in cases
        .iter()
        .filter(|c| c.get("name").and_then(Value::as_str) == Some(want.as_str()))
    {
        let url = case
            .get("profile")
            .and_then(|p| p.get("source"))
            .and_then(Value::as_str)
            .and_then(read)
            .and_then(|sd| sd.get("url").and_then(Value::as_str).map(str::to_string));
        let inst = read(case.get("file").and_then(Value::as_str).unwrap_or("")).expect("instance");
        for profile_run in [false, true] {
            let profiles: Vec<&str> = if profile_run {
                match &url {
                    Some(u) => vec![u.as_str()],
                    None => continue,
                }
            } else {
                vec![]
            };
            let v = validator_for(case, profile_run).expect("loads");
            let issues = v.validate(
                &inst,
                &Options {
                    profiles_by_type: &[],
                    root_profiles: &profiles,
                },
            );
            println!("--- profiles {profiles:?}\n{}", common::show(&issues));
        }
    }
}
