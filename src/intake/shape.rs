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
