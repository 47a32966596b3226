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
pub mod routing;
mod shape;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use crate::config::Config;
use crate::domain::ClientId;
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

/// Turns a submission into what a create stores, or says why not.
pub fn prepare(
    config: &Config,
    validation: &Validation,
    mut request: Request<'_>,
) -> Result<Prepared, Rejected> {
    let mut issues = check(validation, request.endpoint, &request.tree);
    if has_errors(&issues) {
        return Err(Rejected(issues));
    }
    let submission = Submission::of(&request.tree);
    let located = locate::locate_referral(&submission).map_err(|issue| Rejected(vec![issue]))?;
    let mut rules = shape::create_rules(&located);
    let vcs = match routing::route(&located.service_request, &submission, &config.vcs) {
        Ok(vcs) => Some(vcs),
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
    let mut prepared = build::build(vcs, needs, request, assigned, message_id, issues)?;
    prepared.if_none_exist = if_none_exist;
    Ok(prepared)
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
