//! OperationOutcome: the one shape every FHIR-side error and validation report takes.

use serde_json::{json, Map, Value};

/// The system of our stable message ids (`OperationOutcome.issue.details.coding`).
pub const MESSAGE_SYSTEM: &str = "https://fhir.sp-gateway.uk/CodeSystem/validation-message";

/// Where the profile whose rule failed is named on an issue.
const ISSUE_SOURCE_EXTENSION: &str =
    "http://hl7.org/fhir/StructureDefinition/operationoutcome-issue-source";

/// Issue severities: the validator's own type, so issues cross from it without conversion.
pub use sp_validator::Severity;

/// One issue, ready to render.
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    pub severity: Severity,
    /// A code from http://hl7.org/fhir/issue-type (`structure`, `required`, `value`…).
    pub code: &'static str,
    pub diagnostics: String,
    pub expression: Option<String>,
    pub message_id: Option<String>,
    pub profile: Option<String>,
}

impl Issue {
    pub fn error(code: &'static str, diagnostics: impl Into<String>) -> Self {
        Issue {
            severity: Severity::Error,
            code,
            diagnostics: diagnostics.into(),
            expression: None,
            message_id: None,
            profile: None,
        }
    }

    pub fn information(code: &'static str, diagnostics: impl Into<String>) -> Self {
        Issue {
            severity: Severity::Information,
            ..Issue::error(code, diagnostics)
        }
    }

    pub fn at(mut self, expression: impl Into<String>) -> Self {
        self.expression = Some(expression.into());
        self
    }

    pub fn with_message_id(mut self, id: impl Into<String>) -> Self {
        self.message_id = Some(id.into());
        self
    }

    fn to_json(&self) -> Value {
        let mut issue = Map::new();
        issue.insert("severity".into(), json!(self.severity.as_str()));
        issue.insert("code".into(), json!(self.code));
        if let Some(id) = &self.message_id {
            issue.insert(
                "details".into(),
                json!({"coding": [{"system": MESSAGE_SYSTEM, "code": id}]}),
            );
        }
        issue.insert("diagnostics".into(), json!(self.diagnostics));
        if let Some(expression) = &self.expression {
            issue.insert("expression".into(), json!([expression]));
        }
        if let Some(profile) = &self.profile {
            issue.insert(
                "extension".into(),
                json!([{"url": ISSUE_SOURCE_EXTENSION, "valueString": profile}]),
            );
        }
        Value::Object(issue)
    }
}

/// Builds an OperationOutcome; an empty list becomes the single "all OK" information issue
/// FHIR requires (an OperationOutcome has at least one issue).
pub fn operation_outcome(issues: &[Issue]) -> Value {
    let rendered: Vec<Value> = if issues.is_empty() {
        vec![Issue::information("informational", "No issues detected.").to_json()]
    } else {
        issues.iter().map(Issue::to_json).collect()
    };
    json!({"resourceType": "OperationOutcome", "issue": rendered})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_carry_every_part() {
        let mut issue = Issue::error("required", "ServiceRequest.status is required")
            .at("ServiceRequest.status")
            .with_message_id("cardinality-min");
        issue.profile =
            Some("https://fhir.sp-gateway.uk/StructureDefinition/SP-ServiceRequest".into());
        let outcome = operation_outcome(&[issue]);
        let first = &outcome["issue"][0];
        assert_eq!(first["severity"], "error");
        assert_eq!(first["code"], "required");
        assert_eq!(first["expression"][0], "ServiceRequest.status");
        assert_eq!(first["details"]["coding"][0]["code"], "cardinality-min");
        assert_eq!(first["extension"][0]["url"], ISSUE_SOURCE_EXTENSION);
    }

    #[test]
    fn an_empty_outcome_still_has_an_issue() {
        let outcome = operation_outcome(&[]);
        assert_eq!(outcome["issue"][0]["severity"], "information");
    }
}
