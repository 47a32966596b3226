//! What no profile states: the kind of resource each endpoint takes, the Bundle-level rules of
//! transactions and BaRS messages, and the rules only a create has.

use serde_json::Value;

use super::locate::LocatedReferral;
use super::{Endpoint, REFERRAL_EVENT};
use crate::fhir::bundle::{Located, Submission};
use crate::fhir::outcome::Issue;
use crate::fhir::value_at;

/// The one check before validation: is this the kind of resource the endpoint takes?
/// A wrong kind is not FHIR for this endpoint at all, so it is a `structure` issue (400).
pub(super) fn shape_issue(endpoint: Endpoint, tree: &Value) -> Option<Issue> {
    let resource_type = tree
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or("");
    let bundle_type = tree.get("type").and_then(Value::as_str);
    let (expected, ok) = match endpoint {
        Endpoint::ServiceRequest => ("a ServiceRequest", resource_type == "ServiceRequest"),
        Endpoint::Transaction => (
            "a Bundle of type transaction",
            resource_type == "Bundle" && bundle_type == Some("transaction"),
        ),
        Endpoint::Message => (
            "a Bundle of type message",
            resource_type == "Bundle" && bundle_type == Some("message"),
        ),
    };
    if ok {
        return None;
    }
    let found = match (resource_type, bundle_type) {
        ("Bundle", Some(kind)) => format!("a Bundle of type {kind}"),
        ("", _) => "no resourceType".to_string(),
        (other, _) => format!("a {other}"),
    };
    let hint = match (endpoint, bundle_type) {
        (Endpoint::Transaction, Some("message")) => {
            " Send message Bundles to POST /fhir/$process-message."
        }
        (Endpoint::Transaction, Some("batch")) => {
            " Batches are not supported: send one transaction per referral."
        }
        (Endpoint::Message, Some("transaction")) => " Send transaction Bundles to POST /fhir.",
        _ => "",
    };
    let expression = if resource_type == "Bundle" {
        "Bundle.type"
    } else {
        "resourceType"
    };
    Some(
        Issue::error(
            "structure",
            format!("This endpoint takes {expected}, but the body is {found}.{hint}"),
        )
        .at(expression)
        .with_message_id("wrong-resource-for-endpoint"),
    )
}

/// Bundle-level rules of transactions and BaRS messages that no profile states.
pub(super) fn envelope_issues(endpoint: Endpoint, tree: &Value) -> Vec<Issue> {
    let entries = tree
        .get("entry")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let mut issues = Vec::new();
    match endpoint {
        Endpoint::ServiceRequest => {}
        Endpoint::Transaction => {
            for (i, entry) in entries.iter().enumerate() {
                let method = value_at(entry, &["request", "method"]).and_then(Value::as_str);
                if method != Some("POST") {
                    issues.push(
                        Issue::error(
                            "not-supported",
                            format!(
                                "Referral transactions create resources: entry {i} uses {}, only POST is accepted.",
                                method.unwrap_or("no request.method")
                            ),
                        )
                        .at(format!("Bundle.entry[{i}].request.method"))
                        .with_message_id("transaction-method"),
                    );
                }
            }
        }
        Endpoint::Message => issues.extend(message_header_issues(tree, entries)),
    }
    let service_requests = entries
        .iter()
        .filter(|e| {
            value_at(e, &["resource", "resourceType"]).and_then(Value::as_str)
                == Some("ServiceRequest")
        })
        .count();
    if endpoint != Endpoint::ServiceRequest && service_requests != 1 {
        issues.push(
            Issue::error(
                "business-rule",
                format!("A referral Bundle carries exactly one ServiceRequest; this one has {service_requests}."),
            )
            .at("Bundle.entry")
            .with_message_id("one-service-request"),
        );
    }
    issues
}

fn message_header_issues(tree: &Value, entries: &[Value]) -> Vec<Issue> {
    let mut issues = Vec::new();
    if tree.get("id").and_then(Value::as_str).is_none() {
        issues.push(
            Issue::error(
                "required",
                "A BaRS message Bundle needs an id: it is the message id used to detect repeats.",
            )
            .at("Bundle.id")
            .with_message_id("message-id-required"),
        );
    }
    let header = entries.first().and_then(|e| e.get("resource"));
    let header_type = header
        .and_then(|h| h.get("resourceType"))
        .and_then(Value::as_str);
    let Some(header) = header.filter(|_| header_type == Some("MessageHeader")) else {
        issues.push(
            Issue::error(
                "invalid",
                "The first entry of a message Bundle must be its MessageHeader.",
            )
            .at("Bundle.entry[0].resource")
            .with_message_id("message-header-first"),
        );
        return issues;
    };
    let event = value_at(header, &["eventCoding", "code"]).and_then(Value::as_str);
    if event != Some(REFERRAL_EVENT) {
        issues.push(
            Issue::error(
                "not-supported",
                format!(
                    "This gateway processes the {REFERRAL_EVENT} event; the message carries {}.",
                    event.unwrap_or("no eventCoding.code")
                ),
            )
            .at("Bundle.entry[0].resource.eventCoding.code")
            .with_message_id("message-event"),
        );
    }
    let root = Located {
        resource: header,
        path: "Bundle.entry[0].resource".into(),
        container: None,
    };
    let submission = Submission::of(tree);
    let focus = header
        .get("focus")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let mut focus_is_referral = false;
    for (i, target) in focus.iter().enumerate() {
        let reference = target.get("reference").and_then(Value::as_str);
        match reference.and_then(|r| submission.resolve(&root, r)) {
            Some(found) => focus_is_referral |= found.resource_type() == "ServiceRequest",
            None => issues.push(
                Issue::error(
                    "not-found",
                    format!(
                        "MessageHeader.focus[{i}] ({}) does not resolve to an entry of this Bundle.",
                        reference.unwrap_or("no reference")
                    ),
                )
                .at(format!("Bundle.entry[0].resource.focus[{i}]"))
                .with_message_id("message-focus-unresolved"),
            ),
        }
    }
    if !focus_is_referral && issues.is_empty() {
        issues.push(
            Issue::error(
                "invalid",
                "MessageHeader.focus must reference the ServiceRequest entry of this Bundle.",
            )
            .at("Bundle.entry[0].resource.focus")
            .with_message_id("message-focus"),
        );
    }
    issues
}

/// Rules of a create that the stored resource need not keep (it may later be completed or revoked).
pub(super) fn create_rules(located: &LocatedReferral<'_>) -> Vec<Issue> {
    let status = located
        .service_request
        .resource
        .get("status")
        .and_then(Value::as_str);
    match status {
        Some("active") | None => vec![],
        Some(other) => vec![Issue::error(
            "business-rule",
            format!("A new referral must have status active; this one is {other}."),
        )
        .at(format!("{}.status", located.service_request.path))
        .with_message_id("create-status-active")],
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::intake::locate::locate_referral;

    fn message_ids(issues: &[Issue]) -> Vec<&str> {
        issues
            .iter()
            .map(|i| i.message_id.as_deref().unwrap_or(""))
            .collect()
    }

    #[test]
    fn each_endpoint_takes_its_kind_of_resource() {
        let bundle = |kind: &str| json!({"resourceType": "Bundle", "type": kind});
        let sr = json!({"resourceType": "ServiceRequest"});
        // (endpoint, body, None or Some((expression, text in the diagnostics)))
        let table = [
            (Endpoint::ServiceRequest, sr.clone(), None),
            (Endpoint::Transaction, bundle("transaction"), None),
            (Endpoint::Message, bundle("message"), None),
            (
                Endpoint::ServiceRequest,
                json!({"resourceType": "Patient"}),
                Some(("resourceType", "the body is a Patient")),
            ),
            (
                Endpoint::ServiceRequest,
                bundle("transaction"),
                Some(("Bundle.type", "a Bundle of type transaction")),
            ),
            (
                Endpoint::Transaction,
                bundle("message"),
                Some((
                    "Bundle.type",
                    "Send message Bundles to POST /fhir/$process-message.",
                )),
            ),
            (
                Endpoint::Transaction,
                bundle("batch"),
                Some(("Bundle.type", "Batches are not supported")),
            ),
            (
                Endpoint::Transaction,
                sr.clone(),
                Some(("resourceType", "takes a Bundle of type transaction")),
            ),
            (
                Endpoint::Message,
                bundle("transaction"),
                Some(("Bundle.type", "Send transaction Bundles to POST /fhir.")),
            ),
            (
                Endpoint::Message,
                json!({}),
                Some(("resourceType", "no resourceType")),
            ),
        ];
        for (endpoint, body, expected) in table {
            let issue = shape_issue(endpoint, &body);
            match (issue, expected) {
                (None, None) => {}
                (Some(issue), Some((expression, text))) => {
                    assert_eq!(issue.expression.as_deref(), Some(expression), "{body}");
                    assert!(issue.diagnostics.contains(text), "{}", issue.diagnostics);
                    assert_eq!(issue.code, "structure");
                    assert_eq!(
                        issue.message_id.as_deref(),
                        Some("wrong-resource-for-endpoint")
                    );
                }
                (issue, expected) => {
                    panic!("{endpoint:?} {body}: {issue:?}, expected {expected:?}")
                }
            }
        }
    }

    fn transaction(entries: Value) -> Value {
        json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
    }

    fn post(resource: Value) -> Value {
        json!({"resource": resource, "request": {"method": "POST"}})
    }

    fn message(id: Option<&str>, header: Value, rest: Value) -> Value {
        let mut entries = vec![json!({"fullUrl": "urn:uuid:h", "resource": header})];
        entries.extend(rest.as_array().cloned().unwrap_or_default());
        let mut bundle = json!({"resourceType": "Bundle", "type": "message", "entry": entries});
        if let Some(id) = id {
            bundle["id"] = json!(id);
        }
        bundle
    }

    fn header(event: &str, focus: &str) -> Value {
        json!({"resourceType": "MessageHeader", "eventCoding": {"code": event},
               "focus": [{"reference": focus}]})
    }

    #[test]
    fn bundle_rules_per_endpoint() {
        let sr = json!({"resourceType": "ServiceRequest"});
        let patient = json!({"resourceType": "Patient"});
        let sr_entry = json!([{"fullUrl": "urn:uuid:sr", "resource": sr},
                              {"fullUrl": "urn:uuid:p", "resource": patient}]);
        // (endpoint, body, message ids of the issues, in order)
        let table: Vec<(Endpoint, Value, Vec<&str>)> = vec![
            (Endpoint::ServiceRequest, sr.clone(), vec![]),
            (
                Endpoint::Transaction,
                transaction(json!([post(sr.clone()), post(patient.clone())])),
                vec![],
            ),
            (
                Endpoint::Transaction,
                transaction(json!([post(sr.clone()),
                    {"resource": patient, "request": {"method": "PUT"}}])),
                vec!["transaction-method"],
            ),
            (
                Endpoint::Transaction,
                transaction(json!([post(sr.clone()), post(sr.clone())])),
                vec!["one-service-request"],
            ),
            (
                Endpoint::Transaction,
                transaction(json!([])),
                vec!["one-service-request"],
            ),
            (
                Endpoint::Message,
                message(
                    Some("m-1"),
                    header(REFERRAL_EVENT, "urn:uuid:sr"),
                    sr_entry.clone(),
                ),
                vec![],
            ),
            (
                Endpoint::Message,
                message(
                    None,
                    header(REFERRAL_EVENT, "urn:uuid:sr"),
                    sr_entry.clone(),
                ),
                vec!["message-id-required"],
            ),
            (
                Endpoint::Message,
                message(
                    Some("m-1"),
                    header("servicerequest-cancel", "urn:uuid:sr"),
                    sr_entry.clone(),
                ),
                vec!["message-event"],
            ),
            (
                Endpoint::Message,
                message(
                    Some("m-1"),
                    header(REFERRAL_EVENT, "urn:uuid:nowhere"),
                    sr_entry.clone(),
                ),
                vec!["message-focus-unresolved"],
            ),
            (
                Endpoint::Message,
                message(
                    Some("m-1"),
                    header(REFERRAL_EVENT, "urn:uuid:p"),
                    sr_entry.clone(),
                ),
                vec!["message-focus"],
            ),
            (
                Endpoint::Message,
                message(Some("m-1"), json!({"resourceType": "Patient"}), sr_entry),
                vec!["message-header-first"],
            ),
        ];
        for (endpoint, body, expected) in table {
            let issues = envelope_issues(endpoint, &body);
            assert_eq!(message_ids(&issues), expected, "{endpoint:?} {body}");
            assert!(issues.iter().all(|i| i.severity.is_error()));
        }
    }

    #[test]
    fn a_create_is_active() {
        // (status, message ids)
        let table = [
            (None, vec![]),
            (Some("active"), vec![]),
            (Some("draft"), vec!["create-status-active"]),
            (Some("revoked"), vec!["create-status-active"]),
        ];
        for (status, expected) in table {
            let mut sr = json!({"resourceType": "ServiceRequest", "subject": {"reference": "#p"},
                                "contained": [{"resourceType": "Patient", "id": "p"}]});
            if let Some(status) = status {
                sr["status"] = json!(status);
            }
            let submission = Submission::of(&sr);
            let located = locate_referral(&submission).expect("located");
            let issues = create_rules(&located);
            assert_eq!(message_ids(&issues), expected, "{status:?}");
            for issue in issues {
                assert_eq!(issue.expression.as_deref(), Some("ServiceRequest.status"));
            }
        }
    }
}
