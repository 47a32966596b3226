//! The SP profile examples (profiles/examples) against their recorded
//! expectations (profiles/examples/expectations/expected-results.json).

mod common;

use std::path::PathBuf;

use common::{errors, show, validator};
use serde_json::Value;
use sp_validator::{
    Options, SP_OUTCOME_OBSERVATION, SP_PATIENT, SP_REFERRAL_TASK, SP_SERVICE_REQUEST,
};

const BY_TYPE: &[(&str, &str)] = &[
    ("ServiceRequest", SP_SERVICE_REQUEST),
    ("Patient", SP_PATIENT),
    ("Observation", SP_OUTCOME_OBSERVATION),
    ("Task", SP_REFERRAL_TASK),
];

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../profiles/examples")
}

fn load(name: &str) -> Option<Value> {
    let text = std::fs::read_to_string(examples().join(name)).ok()?;
    serde_json::from_str(&text).ok()
}

#[test]
fn sp_examples_meet_their_expectations() {
    let Some(exp) = load("expectations/expected-results.json") else {
        // The examples are maintained with the profiles; nothing to check yet.
        return;
    };
    let opts = Options {
        profiles_by_type: BY_TYPE,
        root_profiles: &[],
    };
    let mut failures = Vec::new();
    for name in exp
        .get("valid")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        let Some(name) = name.as_str() else { continue };
        let Some(v) = load(name) else {
            failures.push(format!("{name}: cannot read"));
            continue;
        };
        let issues = validator().validate(&v, &opts);
        if !errors(&issues).is_empty() {
            failures.push(format!("{name} should be valid:\n{}", show(&issues)));
        }
    }
    let invalid = exp
        .get("invalid")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for (name, want) in &invalid {
        let Some(v) = load(name) else {
            failures.push(format!("{name}: cannot read"));
            continue;
        };
        let issues = validator().validate(&v, &opts);
        for w in want
            .get("issues")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[])
        {
            let field = |k: &str| w.get(k).and_then(Value::as_str);
            let found = issues.iter().any(|i| {
                field("severity").is_none_or(|s| s == i.severity.as_str())
                    && field("code").is_none_or(|c| c == i.code.as_str())
                    && field("expression").is_none_or(|e| e == i.expression)
                    && field("key").is_none_or(|k| k == i.message_id)
            });
            if !found {
                failures.push(format!(
                    "{name}: expected {w} ({}), got:\n{}",
                    want.get("defect").unwrap_or(&Value::Null),
                    show(&issues)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Fixture expectations that are gateway rules using a validator code.
const GATEWAY_RULES: &[(&str, &str)] = &[(
    "message-focus-unresolved.json",
    "MessageHeader.focus must resolve: a messaging rule of the gateway, not of R4",
)];

/// Issue codes the validator (not the gateway) produces.
const VALIDATOR_CODES: &[&str] = &[
    "structure",
    "required",
    "invalid",
    "value",
    "code-invalid",
    "invariant",
    "not-found",
];

/// The gateway's request fixtures: every expected issue with a validator
/// code must be among ours (the gateway may add its own). Fixtures the
/// validator alone cannot judge (non-JSON, gateway rules) are skipped.
#[test]
fn gateway_fixtures_validator_issues() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
    let opts = Options {
        profiles_by_type: BY_TYPE,
        root_profiles: &[],
    };
    let mut failures = Vec::new();
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in rd.flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let name = p
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("")
                .to_string();
            if !name.ends_with(".json")
                || name.ends_with(".expect.json")
                || name.ends_with(".record.json")
                || GATEWAY_RULES.iter().any(|(f, _)| *f == name)
            {
                continue;
            }
            let expect_path = p.with_file_name(name.replace(".json", ".expect.json"));
            let (Ok(text), Ok(exp_text)) = (
                std::fs::read_to_string(&p),
                std::fs::read_to_string(&expect_path),
            ) else {
                continue;
            };
            let (Ok(v), Ok(exp)) = (
                serde_json::from_str::<Value>(&text),
                serde_json::from_str::<Value>(&exp_text),
            ) else {
                continue;
            };
            let issues = validator().validate(&v, &opts);
            for w in exp
                .get("issues")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or(&[])
            {
                let field = |k: &str| w.get(k).and_then(Value::as_str);
                if !field("code").is_some_and(|c| VALIDATOR_CODES.contains(&c)) {
                    continue;
                }
                let found = issues.iter().any(|i| {
                    field("severity").is_none_or(|s| s == i.severity.as_str())
                        && field("code").is_none_or(|c| c == i.code.as_str())
                        && field("expression").is_none_or(|e| e == i.expression)
                });
                if !found {
                    failures.push(format!(
                        "{}: expected {w}, got:\n{}",
                        p.display(),
                        show(&issues)
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
