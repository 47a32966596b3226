//! Our SP profiles (profiles/sp, embedded) on a complete referral.

mod common;

use common::{errors, load, show, validator};
use serde_json::json;
use sp_validator::{
    Options, SP_OUTCOME_OBSERVATION, SP_PATIENT, SP_REFERRAL_TASK, SP_SERVICE_REQUEST,
};

const BY_TYPE: &[(&str, &str)] = &[
    ("ServiceRequest", SP_SERVICE_REQUEST),
    ("Patient", SP_PATIENT),
    ("Observation", SP_OUTCOME_OBSERVATION),
    ("Task", SP_REFERRAL_TASK),
];

fn opts() -> Options<'static> {
    Options {
        profiles_by_type: BY_TYPE,
        root_profiles: &[],
    }
}

#[test]
fn sp_profiles_are_bundled() {
    for p in [
        SP_SERVICE_REQUEST,
        SP_PATIENT,
        SP_OUTCOME_OBSERVATION,
        SP_REFERRAL_TASK,
    ] {
        assert!(validator().knows_profile(p), "{p}");
    }
}

#[test]
fn referral_bundle_is_valid() {
    let issues = validator().validate(&load("bundles/referral-transaction.json"), &opts());
    assert!(errors(&issues).is_empty(), "{}", show(&issues));
}

#[test]
fn referral_bundle_defects() {
    let mut b = load("bundles/referral-transaction.json");
    b["entry"][1]["resource"]["identifier"][0]["value"] = json!("9000000001");
    b["entry"][0]["resource"]["intent"] = json!("proposal");
    let issues = validator().validate(&b, &opts());
    let errs = errors(&issues);
    assert!(
        errs.iter().any(|i| i.message_id == "sp-nhs-1"
            && i.expression == "Bundle.entry[1].resource.identifier[0]"),
        "{}",
        show(&issues)
    );
    assert!(
        errs.iter().any(|i| i.code.as_str() == "code-invalid"
            && i.expression == "Bundle.entry[0].resource.intent"),
        "{}",
        show(&issues)
    );
}

#[test]
#[ignore = "prints every issue of the sample bundle, for inspection"]
fn print_all_issues() {
    let issues = validator().validate(&load("bundles/referral-transaction.json"), &opts());
    println!("{}", show(&issues));
}
