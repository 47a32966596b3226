//! Comparing what the gateway answered with what a fixture expects, and saying how they differ
//! in a way a tester can read: a unified diff of expected against actual lines.

use std::collections::BTreeMap;

use serde_json::Value;
use similar::TextDiff;

use super::fixture::ExpectedIssue;

/// A unified diff of two texts, labelled `expected` and `actual`.
pub fn diff(expected: &str, actual: &str) -> String {
    TextDiff::from_lines(expected, actual)
        .unified_diff()
        .context_radius(3)
        .header("expected", "actual")
        .to_string()
}

/// Pretty JSON, ending in a newline so diffs of the last line read well.
pub fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    text.push('\n');
    text
}

/// Follows a path such as `entry[0].resource.status` or `total` into a JSON value.
pub fn lookup<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    let mut current = root;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (name, indexes) = match part.find('[') {
            Some(at) => (&part[..at], &part[at..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            current = current.get(name)?;
        }
        for index in indexes.split('[').filter(|i| !i.is_empty()) {
            let n: usize = index.trim_end_matches(']').parse().ok()?;
            current = current.get(n)?;
        }
    }
    Some(current)
}

/// Checks `expect` (path → value) against a JSON answer. On a mismatch, the diff shows every
/// expected path with the value found there.
pub fn check_paths(expect: &BTreeMap<String, Value>, answer: &Value) -> Result<(), String> {
    let mut expected_text = String::new();
    let mut actual_text = String::new();
    let mut all_match = true;
    for (path, wanted) in expect {
        let found = lookup(answer, path).cloned().unwrap_or(Value::Null);
        if lookup(answer, path) != Some(wanted) {
            all_match = false;
        }
        expected_text.push_str(&format!("{path} = {wanted}\n"));
        actual_text.push_str(&format!(
            "{path} = {}\n",
            describe_found(&found, lookup(answer, path).is_some())
        ));
    }
    if all_match {
        Ok(())
    } else {
        Err(format!(
            "{}\nanswer:\n{}",
            diff(&expected_text, &actual_text),
            abbreviated(answer)
        ))
    }
}

fn describe_found(found: &Value, present: bool) -> String {
    if present {
        found.to_string()
    } else {
        "(absent)".into()
    }
}

/// The answer, cut short: enough to see what came back without flooding a terminal.
pub fn abbreviated(answer: &Value) -> String {
    const LIMIT: usize = 2000;
    let text = pretty(answer);
    if text.len() <= LIMIT {
        return text;
    }
    let mut end = LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n… ({} more bytes)\n", &text[..end], text.len() - end)
}

/// One issue as a line: `error required ServiceRequest.status`.
fn issue_line(severity: &str, code: &str, expression: &str) -> String {
    format!("{severity} {code} {expression}")
        .trim_end()
        .to_string()
        + "\n"
}

fn issue_matches(wanted: &ExpectedIssue, issue: &Value) -> bool {
    let same = |wanted: &Option<String>, actual: &Value| {
        wanted.as_deref().is_none_or(|w| actual.as_str() == Some(w))
    };
    same(&wanted.severity, &issue["severity"])
        && same(&wanted.code, &issue["code"])
        && same(&wanted.expression, &issue["expression"][0])
}

/// Every expected issue must appear in the OperationOutcome; others may appear too. On a miss
/// the diff lines up the expected issues against the ones the gateway reported.
pub fn check_issues(wanted: &[ExpectedIssue], outcome: &Value) -> Result<(), String> {
    let issues: Vec<&Value> = outcome["issue"].as_array().into_iter().flatten().collect();
    let missing: Vec<&ExpectedIssue> = wanted
        .iter()
        .filter(|w| !issues.iter().any(|issue| issue_matches(w, issue)))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let expected_text: String = wanted
        .iter()
        .map(|w| {
            issue_line(
                w.severity.as_deref().unwrap_or("*"),
                w.code.as_deref().unwrap_or("*"),
                w.expression.as_deref().unwrap_or(""),
            )
        })
        .collect();
    let actual_text: String = issues
        .iter()
        .map(|i| {
            issue_line(
                i["severity"].as_str().unwrap_or("?"),
                i["code"].as_str().unwrap_or("?"),
                i["expression"][0].as_str().unwrap_or(""),
            )
        })
        .collect();
    let names: Vec<String> = missing
        .iter()
        .map(|w| {
            issue_line(
                w.severity.as_deref().unwrap_or("*"),
                w.code.as_deref().unwrap_or("*"),
                w.expression.as_deref().unwrap_or(""),
            )
            .trim_end()
            .to_string()
        })
        .collect();
    Err(format!(
        "missing issue(s): {}\n{}",
        names.join("; "),
        diff(&expected_text, &actual_text)
    ))
}

/// Replaces `{referral}` in every string of a JSON value.
pub fn substitute(value: &Value, referral: &str) -> Value {
    match value {
        Value::String(s) => Value::String(s.replace("{referral}", referral)),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| substitute(v, referral)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), substitute(v, referral)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_follow_names_and_indexes() {
        let v =
            json!({"total": 1, "entry": [{"resource": {"status": "completed", "output": [1, 2]}}]});
        assert_eq!(lookup(&v, "total"), Some(&json!(1)));
        assert_eq!(
            lookup(&v, "entry[0].resource.status"),
            Some(&json!("completed"))
        );
        assert_eq!(lookup(&v, "entry[0].resource.output[1]"), Some(&json!(2)));
        assert_eq!(lookup(&v, "entry[1].resource"), None);
    }

    #[test]
    fn a_wrong_value_shows_as_a_diff() {
        let expect = BTreeMap::from([("total".to_string(), json!(2))]);
        let err = check_paths(&expect, &json!({"total": 1})).unwrap_err();
        assert!(err.contains("-total = 2"), "{err}");
        assert!(err.contains("+total = 1"), "{err}");
    }

    #[test]
    fn missing_issues_are_named() {
        let wanted = vec![ExpectedIssue {
            severity: Some("error".into()),
            code: Some("required".into()),
            expression: Some("ServiceRequest.status".into()),
        }];
        let outcome = json!({"issue": [{"severity": "error", "code": "value", "expression": ["ServiceRequest.authoredOn"]}]});
        let err = check_issues(&wanted, &outcome).unwrap_err();
        assert!(
            err.contains("error required ServiceRequest.status"),
            "{err}"
        );
        assert!(check_issues(&wanted[..0], &outcome).is_ok());
    }

    #[test]
    fn referral_ids_are_substituted_everywhere() {
        let v = substitute(&json!({"a": ["ServiceRequest/{referral}"]}), "abc");
        assert_eq!(v, json!({"a": ["ServiceRequest/abc"]}));
    }
}
