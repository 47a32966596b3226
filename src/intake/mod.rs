//! Referral intake: from a parsed submission to everything one transaction stores.
//!
//! Order matters and is the same for every entry point (single ServiceRequest, transaction,
//! BaRS message): the shape the endpoint expects (`shape`), then the validator (base R4 + our
//! profiles), then the rules only a create has, then resolution (`locate`), routing (`routing`),
//! ids (`ids`), and the referral record with its webhook (`build`). Nothing here does I/O; the
//! HTTP layer stores what this returns.

mod build;
mod ids;
mod locate;
pub mod notice;
pub mod routing;
mod shape;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use crate::config::Config;
use crate::domain::{ClientId, FhirId};
use crate::fhir::bundle::Submission;
use crate::fhir::outcome::Issue;
use crate::fhir::value_at;
use crate::store::NewReferral;
use crate::validation::Validation;

/// Where the submission arrived, which fixes the shape it must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /fhir/ServiceRequest`
    ServiceRequest,
    /// `POST /fhir` with a transaction Bundle
    Transaction,
    /// `POST /fhir/$process-message`
    Message,
}

/// The BaRS event a referral message carries.
pub const REFERRAL_EVENT: &str = "servicerequest-request";

/// A submission that can be stored.
#[derive(Debug)]
pub struct Prepared {
    pub referral: NewReferral,
    /// A single ServiceRequest's create: the normalised ServiceRequest, as stored (version 1),
    /// for `Prefer: return=representation`. Bundles answer with their entries' locations instead.
    pub service_request: Option<Value>,
    /// For transaction responses: each request entry's new `Type/id`, in request order.
    pub entry_locations: Vec<Option<String>>,
    /// Warnings and information from validation, returned with the result.
    pub warnings: Vec<Issue>,
    /// The ServiceRequest entry's `request.ifNoneExist` (transactions), as written.
    pub if_none_exist: Option<String>,
}

/// Why a submission was refused: the issues, all at once.
#[derive(Debug)]
pub struct Rejected(pub Vec<Issue>);

/// One submission to intake, with what it arrived with.
pub struct Request<'a> {
    pub endpoint: Endpoint,
    pub tree: Value,
    pub received_body: &'a [u8],
    pub received_content_type: &'a str,
    pub client: &'a ClientId,
    pub correlation_id: Option<String>,
    pub now: DateTime<Utc>,
}

/// Checks a submission without storing anything (`$validate`, and the first half of a create).
pub fn check(validation: &Validation, endpoint: Endpoint, tree: &Value) -> Vec<Issue> {
    if let Some(issue) = shape::shape_issue(endpoint, tree) {
        return vec![issue];
    }
    let mut issues = validation.validate(tree);
    if !has_errors(&issues) {
        issues.extend(shape::envelope_issues(endpoint, tree));
    }
    issues
}

pub fn has_errors(issues: &[Issue]) -> bool {
    issues.iter().any(|i| i.severity.is_error())
}

/// Turns a submission into what a create stores, or says why not (without the service
/// directory: a performer naming a directory service is refused).
pub fn prepare(
    config: &Config,
    validation: &Validation,
    request: Request<'_>,
) -> Result<Prepared, Rejected> {
    prepare_with_directory(config, validation, &routing::NoDirectory, request)
}

/// [`prepare`], routing a performer that names a service of `directory` to its organisation.
pub fn prepare_with_directory(
    config: &Config,
    validation: &Validation,
    directory: &dyn routing::ServiceDirectory,
    mut request: Request<'_>,
) -> Result<Prepared, Rejected> {
    let mut issues = check(validation, request.endpoint, &request.tree);
    if has_errors(&issues) {
        return Err(Rejected(issues));
    }
    let submission = Submission::of(&request.tree);
    let located = locate::locate_referral(&submission).map_err(|issue| Rejected(vec![issue]))?;
    let mut rules = shape::create_rules(&located);
    let mut listed = None;
    let routed = routing::route_to_service(
        &located.service_request,
        &submission,
        &config.vcs,
        directory,
        &mut listed,
    );
    let vcs = match routed {
        Ok(routed) => Some(routed),
        Err(issue) => {
            rules.push(issue);
            None
        }
    };
    if has_errors(&rules) {
        issues.extend(rules);
        return Err(Rejected(issues));
    }
    let Some(vcs) = vcs else {
        return Err(Rejected(issues));
    };
    let message_id = match request.endpoint {
        Endpoint::Message => request
            .tree
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_string),
        _ => None,
    };
    let if_none_exist = entry_if_none_exist(&request.tree);
    let plan = ids::plan_ids(&request, &located);
    let now = request.now.to_rfc3339_opts(SecondsFormat::Millis, true);
    let tree = std::mem::take(&mut request.tree);
    let assigned = ids::assign_ids(request.endpoint, tree, plan, &now)?;
    let needs = validation.conformance().needs();
    let organisation = vcs.vcs;
    let mut prepared = build::build(vcs, needs, request, assigned, message_id, issues)?;
    prepared.if_none_exist = if_none_exist;
    let referral = &mut prepared.referral;
    if let Some(notice) = notice::new_referral_notice(config, organisation, &referral.referral_id) {
        referral.outbox.push(notice);
    }
    Ok(prepared)
}

/// Sets a resource's id and `meta.versionId`/`lastUpdated` (version 1).
pub fn with_version(resource: Value, id: &FhirId, now: &str) -> Value {
    crate::fhir::stamp(resource, id.as_str(), 1, now)
}

/// Compact JSON text of a tree, as stored. Serialising a `Value` or a plain struct cannot fail
/// (its keys are strings and the writer is a `Vec`), so the empty fallback is never taken.
fn json_text(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// The `request.ifNoneExist` of a Bundle's ServiceRequest entry: read from the parsed tree, so
/// JSON and XML transactions both carry their condition.
fn entry_if_none_exist(tree: &Value) -> Option<String> {
    tree.get("entry")?
        .as_array()?
        .iter()
        .find(|e| {
            value_at(e, &["resource", "resourceType"]).and_then(Value::as_str)
                == Some("ServiceRequest")
        })
        .and_then(|e| value_at(e, &["request", "ifNoneExist"]))?
        .as_str()
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use chrono::TimeZone;
    use serde_json::Value;

    use super::*;
    use crate::config::DEMO_CONFIG;

    fn validation() -> &'static Validation {
        static VALIDATION: OnceLock<Validation> = OnceLock::new();
        VALIDATION.get_or_init(|| Validation::bundled().expect("bundled profiles"))
    }

    fn fixture(name: &str) -> (Vec<u8>, Value) {
        let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        let body = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let tree = serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{path}: {e}"));
        (body, tree)
    }

    /// The organisation routed to, or the message ids of the refusal.
    type Outcome = Result<&'static str, Vec<&'static str>>;

    /// Every entry point, end to end: what a create stores, or why it is refused.
    #[test]
    fn prepares_what_one_transaction_stores() {
        let config = Config::from_toml_with_env(DEMO_CONFIG).expect("demo config");
        let client: ClientId = "emis-demo".parse().expect("client id");
        let now = Utc
            .with_ymd_and_hms(2026, 5, 10, 9, 0, 0)
            .single()
            .expect("time");
        let table: [(&str, Endpoint, Outcome); 6] = [
            (
                "referrals/valid/carer-support-carers-count.json",
                Endpoint::ServiceRequest,
                Ok("carers-count"),
            ),
            (
                "bundles/transaction-carer-support-carers-count.json",
                Endpoint::Transaction,
                Ok("carers-count"),
            ),
            (
                "bundles/transaction-logical-performer-cyngor.json",
                Endpoint::Transaction,
                Ok("cyngor-ar-bopeth"),
            ),
            (
                "bundles/message-loneliness-knit-natter.json",
                Endpoint::Message,
                Ok("valley-knit-natter"),
            ),
            (
                "bundles/message-unknown-performer.json",
                Endpoint::Message,
                Err(vec!["performer-unknown"]),
            ),
            (
                "referrals/valid/carer-support-carers-count.json",
                Endpoint::Transaction,
                Err(vec!["wrong-resource-for-endpoint"]),
            ),
        ];
        for (name, endpoint, expected) in table {
            let (body, tree) = fixture(name);
            let bundle_id = tree.get("id").and_then(Value::as_str).map(str::to_string);
            let request = Request {
                endpoint,
                tree,
                received_body: &body,
                received_content_type: "application/fhir+json",
                client: &client,
                correlation_id: None,
                now,
            };
            match (prepare(&config, validation(), request), expected) {
                (Ok(prepared), Ok(vcs)) => {
                    let referral = &prepared.referral;
                    assert_eq!(referral.vcs_id.as_str(), vcs, "{name}");
                    let first = &referral.resources[0];
                    assert_eq!(first.resource_type, "ServiceRequest", "{name}");
                    assert_eq!(first.id, referral.referral_id, "{name}");
                    let task = referral
                        .resources
                        .iter()
                        .find(|r| r.resource_type == "Task");
                    assert_eq!(task.map(|t| &t.id), Some(&referral.task_id), "{name}");
                    assert!(referral.resources.iter().all(|r| r.version_id == 1));
                    let expected_message_id = bundle_id.filter(|_| endpoint == Endpoint::Message);
                    assert_eq!(referral.message_id, expected_message_id, "{name}");
                    // One webhook: the record, in its envelope, first of its sequence.
                    let [message] = referral.outbox.as_slice() else {
                        panic!("{name}: {} messages", referral.outbox.len());
                    };
                    assert_eq!(message.event_type, "referral.created");
                    assert_eq!(message.sequence, 1);
                    assert_eq!(message.target, vcs);
                    let record: Value = serde_json::from_str(&referral.record).expect("record");
                    let crate::store::Payload::Text(text) = &message.payload else {
                        panic!("{name}: the envelope is the payload");
                    };
                    let payload: Value = serde_json::from_str(text).expect("payload");
                    assert_eq!(payload["type"], "referral.created");
                    assert_eq!(payload["timestamp"], "2026-05-10T09:00:00Z");
                    assert_eq!(payload["data"], record, "{name}");
                    assert_eq!(record["referral_id"], referral.referral_id.as_str());
                }
                (Err(Rejected(issues)), Err(message_ids)) => {
                    let found: Vec<&str> = issues
                        .iter()
                        .filter(|i| i.severity.is_error())
                        .filter_map(|i| i.message_id.as_deref())
                        .collect();
                    for id in message_ids {
                        assert!(found.contains(&id), "{name}: {id} not in {found:?}");
                    }
                }
                (Ok(_), Err(ids)) => panic!("{name}: prepared, expected {ids:?}"),
                (Err(Rejected(issues)), Ok(_)) => panic!("{name}: refused: {issues:?}"),
            }
        }
    }
}
