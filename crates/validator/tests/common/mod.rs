#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::Value;
use sp_validator::{Issue, Options, Validator};

pub fn validator() -> &'static Validator {
    static V: OnceLock<Validator> = OnceLock::new();
    V.get_or_init(|| Validator::bundled().expect("bundled definitions load"))
}

pub fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

pub fn load(rel: &str) -> Value {
    let text = std::fs::read_to_string(data(rel)).expect("test file readable");
    serde_json::from_str(&text).expect("test file is JSON")
}

pub fn errors(issues: &[Issue]) -> Vec<&Issue> {
    issues.iter().filter(|i| i.is_error()).collect()
}

pub fn validate(v: &Value) -> Vec<Issue> {
    validator().validate(v, &Options::default())
}

pub fn show(issues: &[Issue]) -> String {
    issues
        .iter()
        .map(|i| {
            format!(
                "  {} {} {} [{}] {}",
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
