//! What the tests of `task` and `observation` share: the validator with our profiles, and the
//! demo configuration's organisation.

use std::sync::OnceLock;

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use serde_json::Value;
use sp_validator::{Issue, Options, Validator, SP_OUTCOME_OBSERVATION, SP_REFERRAL_TASK};

use crate::config::{Config, VcsConfig, DEMO_CONFIG};

const OPTIONS: Options<'static> = Options {
    profiles_by_type: &[
        ("Task", SP_REFERRAL_TASK),
        ("Observation", SP_OUTCOME_OBSERVATION),
    ],
    root_profiles: &[],
};

pub fn validator() -> &'static Validator {
    static VALIDATOR: OnceLock<Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| Validator::bundled().expect("bundled definitions load"))
}

pub fn errors(resource: &Value) -> Vec<Issue> {
    validator()
        .validate(resource, &OPTIONS)
        .into_iter()
        .filter(Issue::is_error)
        .collect()
}

pub fn show(issues: &[Issue]) -> String {
    issues
        .iter()
        .map(|i| {
            format!(
                "{} {} at {} [{}]: {}",
                i.severity.as_str(),
                i.code.as_str(),
                i.expression,
                i.message_id,
                i.diagnostics
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[track_caller]
pub fn assert_valid(resource: &Value) {
    let errs = errors(resource);
    assert!(
        errs.is_empty(),
        "{}\n--- resource ---\n{}",
        show(&errs),
        serde_json::to_string_pretty(resource).unwrap_or_default()
    );
}

/// The keys of the error issues, for negative checks of our invariants.
pub fn error_keys(resource: &Value) -> Vec<&'static str> {
    errors(resource).iter().map(|i| i.message_id).collect()
}

pub fn vcs() -> VcsConfig {
    let config = Config::from_toml_with_env(DEMO_CONFIG).expect("demo config");
    config
        .vcs
        .into_iter()
        .find(|v| v.id.as_str() == "carers-count")
        .expect("carers-count in the demo config")
}

pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0)
        .single()
        .expect("valid time")
}

pub fn at(text: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(text).expect("RFC 3339")
}
