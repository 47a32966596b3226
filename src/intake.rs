//! Referral intake: from a parsed submission to everything one transaction stores.
//!
//! Order matters and is the same for every entry point (single ServiceRequest, transaction,
//! BaRS message): the shape the endpoint expects, then the validator (base R4 + our profiles),
//! then the rules only a create has, then resolution, routing, ids, and the referral record.
//! Nothing here does I/O; the HTTP layer stores what this returns.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use fhir_model::r4::{self, types};
use fhir_model::FromJson;
use serde_json::{json, Value};

use crate::config::{Config, VcsConfig};
use crate::domain::{systems, ClientId, FhirId, Identifier};
use crate::fhir::bundle::{rewrite_references, Located, Submission};
use crate::fhir::outcome::Issue;
use crate::fhir::value_at;
use crate::store::{NewOutboxMessage, NewReferral, NewResource, TargetKind};
use crate::translate::outcomes;
use crate::translate::referral_record::{referral_record, ReferralParts};
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
    if let Some(issue) = shape_issue(endpoint, tree) {
        return vec![issue];
    }
    let mut issues = validation.validate(tree);
    if !has_errors(&issues) {
        issues.extend(envelope_issues(endpoint, tree));
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
    let located = locate_referral(&submission).map_err(|issue| Rejected(vec![issue]))?;
    let mut rules = create_rules(&located);
    let vcs = match route(&located, &submission, config) {
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
    let plan = plan_ids(&request, &located);
    let now = request.now.to_rfc3339_opts(SecondsFormat::Millis, true);
    let tree = std::mem::take(&mut request.tree);
    let assigned = assign_ids(request.endpoint, tree, plan, &now)?;
    let needs = validation.conformance().needs();
    let mut prepared = build(vcs, needs, request, assigned, message_id, issues)?;
    prepared.if_none_exist = if_none_exist;
    Ok(prepared)
}

/// The one check before validation: is this the kind of resource the endpoint takes?
/// A wrong kind is not FHIR for this endpoint at all, so it is a `structure` issue (400).
fn shape_issue(endpoint: Endpoint, tree: &Value) -> Option<Issue> {
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
fn envelope_issues(endpoint: Endpoint, tree: &Value) -> Vec<Issue> {
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

/// The resources of one referral, found in the submission.
struct LocatedReferral<'a> {
    service_request: Located<'a>,
    patient: Located<'a>,
    requester: Option<Located<'a>>,
    practitioner: Option<Located<'a>>,
    practice: Option<Located<'a>>,
    consent: Option<Located<'a>>,
}

fn reference_of<'a>(resource: &'a Value, element: &str) -> Option<&'a str> {
    value_at(resource, &[element, "reference"]).and_then(Value::as_str)
}

fn locate_referral<'a>(submission: &Submission<'a>) -> Result<LocatedReferral<'a>, Issue> {
    let service_request = submission
        .of_type("ServiceRequest")
        .into_iter()
        .next()
        .ok_or_else(|| {
            Issue::error("required", "The submission carries no ServiceRequest.").at("Bundle.entry")
        })?;
    let sr = service_request.resource;
    let resolve = |from: &Located<'a>, element: &str| {
        reference_of(from.resource, element).and_then(|r| submission.resolve(from, r))
    };
    let patient = resolve(&service_request, "subject")
        .filter(|p| p.resource_type() == "Patient")
        .ok_or_else(|| {
            Issue::error(
                "not-found",
                "ServiceRequest.subject must reference a Patient carried in the submission (a Bundle entry or a contained resource).",
            )
            .at(format!("{}.subject", service_request.path))
            .with_message_id("subject-unresolved")
        })?;
    let requester = resolve(&service_request, "requester");
    let (practitioner, practice) = match requester.as_ref().map(|r| (r.resource_type(), r)) {
        Some(("PractitionerRole", role)) => {
            (resolve(role, "practitioner"), resolve(role, "organization"))
        }
        Some(("Organization", org)) => (None, Some(org.clone())),
        Some(("Practitioner", person)) => (Some(person.clone()), None),
        _ => (None, None),
    };
    let consent = sr
        .get("supportingInfo")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|info| info.get("reference").and_then(Value::as_str))
        .filter_map(|r| submission.resolve(&service_request, r))
        .find(|l| l.resource_type() == "Consent");
    Ok(LocatedReferral {
        service_request,
        patient,
        requester,
        practitioner,
        practice,
        consent,
    })
}

/// Rules of a create that the stored resource need not keep (it may later be completed or revoked).
fn create_rules(located: &LocatedReferral<'_>) -> Vec<Issue> {
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

/// Identifiers of a reference: its own logical identifier, or those of the Organization it resolves to.
fn performer_identifiers(performer: &Value, resolved: Option<&Located<'_>>) -> Vec<Identifier> {
    let from_resource = resolved
        .map(|l| l.resource)
        .and_then(|r| r.get("identifier"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    let logical = performer.get("identifier").into_iter();
    logical
        .chain(from_resource)
        .filter_map(|i| {
            let system = i.get("system")?.as_str()?;
            let value = i.get("value")?.as_str()?;
            Some(Identifier::new(system, value))
        })
        .collect()
}

/// Finds the configured VCS organisation the referral's performer names.
fn route<'c>(
    located: &LocatedReferral<'_>,
    submission: &Submission<'_>,
    config: &'c Config,
) -> Result<&'c VcsConfig, Issue> {
    let sr = &located.service_request;
    let performers = sr
        .resource
        .get("performer")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let Some(performer) = performers.first() else {
        return Err(Issue::error(
            "required",
            "ServiceRequest.performer must name the community organisation to refer to (by an identifier we know).",
        )
        .at(format!("{}.performer", sr.path))
        .with_message_id("performer-required"));
    };
    let resolved = performer
        .get("reference")
        .and_then(Value::as_str)
        .and_then(|r| submission.resolve(sr, r));
    let identifiers = performer_identifiers(performer, resolved.as_ref());
    let found = identifiers
        .iter()
        .find_map(|id| config.vcs.iter().find(|vcs| vcs.identifiers.contains(id)));
    found.ok_or_else(|| {
        let named = if identifiers.is_empty() {
            "no identifier".to_string()
        } else {
            identifiers.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        };
        Issue::error(
            "business-rule",
            format!("The performer ({named}) is not an organisation this gateway delivers to; check the identifier system and value."),
        )
        .at(format!("{}.performer[0]", sr.path))
        .with_message_id("performer-unknown")
    })
}

/// Ids assigned to what is stored, and the normalised resources.
struct Assigned {
    referral_id: FhirId,
    patient_id: FhirId,
    service_request: Option<Value>,
    /// Every stored resource (the ServiceRequest first), normalised and serialised.
    resources: Vec<(String, FhirId, String)>,
    entry_locations: Vec<Option<String>>,
    parts: ReferralParts,
    gp_identifiers: Vec<Identifier>,
}

/// Outbox message ids double as Standard Webhooks `webhook-id`s. Time-ordered, like resource
/// ids (see `FhirId::generate`): the outbox's primary key grows at its end.
pub fn new_message_id() -> String {
    format!("msg_{}", uuid::Uuid::now_v7().simple())
}

/// Sets a resource's id and `meta.versionId`/`lastUpdated` (version 1).
pub fn with_version(resource: Value, id: &FhirId, now: &str) -> Value {
    stamp(resource, id.as_str(), 1, now)
}

/// Sets a resource's id and version metadata.
pub fn stamp(mut resource: Value, id: &str, version: i64, now: &str) -> Value {
    if let Value::Object(object) = &mut resource {
        object.insert("id".into(), json!(id));
        let meta = object.entry("meta").or_insert_with(|| json!({}));
        if let Value::Object(meta) = meta {
            meta.insert("versionId".into(), json!(version.to_string()));
            meta.insert("lastUpdated".into(), json!(now));
        }
    }
    resource
}

/// Compact JSON text of a tree, as stored. Serialising a `Value` cannot fail (its keys are
/// strings and the writer is a `Vec`), so the empty fallback is never taken.
fn json_text(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// What is decided while the submission is still borrowed by the located referral: the typed
/// parts, the GP identifiers, and (for Bundles) each entry's new id. Storing then consumes the
/// tree, so no resource is copied just to be stamped.
struct Plan {
    referral_id: FhirId,
    parts: PartSources,
    gp_identifiers: Vec<Identifier>,
    /// Per Bundle entry, the type and new id of its resource (`None`: nothing stored).
    entries: Vec<Option<(String, FhirId)>>,
    /// Old reference (`fullUrl` or `Type/id`) → new `Type/id`.
    rewrites: HashMap<String, String>,
}

/// Assigns our ids. In Bundles every entry gets a new id and references between entries are
/// rewritten to `Type/id` (the FHIR transaction rule). A contained Patient is also stored as a
/// Patient of its own, so `GET /fhir/Patient/{id}` and `patient=` searches work for every referral.
fn plan_ids(request: &Request<'_>, located: &LocatedReferral<'_>) -> Plan {
    let referral_id = FhirId::generate();
    let submitted = match request.endpoint {
        Endpoint::ServiceRequest => &[][..],
        _ => request
            .tree
            .get("entry")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]),
    };
    let mut rewrites = HashMap::new();
    let entries = submitted
        .iter()
        .map(|entry| plan_entry(entry, &referral_id, &mut rewrites))
        .collect();
    Plan {
        parts: PartSources::of(located, submitted),
        gp_identifiers: gp_identifiers(located.service_request.resource),
        referral_id,
        entries,
        rewrites,
    }
}

/// The type and new id of one Bundle entry's resource, recording how references to it change.
fn plan_entry(
    entry: &Value,
    referral_id: &FhirId,
    rewrites: &mut HashMap<String, String>,
) -> Option<(String, FhirId)> {
    let resource = entry.get("resource")?;
    let resource_type = resource
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if resource_type == "MessageHeader" {
        return None;
    }
    let id = if resource_type == "ServiceRequest" {
        referral_id.clone()
    } else {
        FhirId::generate()
    };
    let target = format!("{resource_type}/{}", id.as_str());
    if let Some(full_url) = entry.get("fullUrl").and_then(Value::as_str) {
        rewrites.insert(full_url.to_string(), target.clone());
    }
    if let Some(old_id) = resource.get("id").and_then(Value::as_str) {
        rewrites.insert(format!("{resource_type}/{old_id}"), target);
    }
    Some((resource_type, id))
}

/// Stamps and serialises the resources a plan names, taking them out of the submitted tree.
fn assign_ids(
    endpoint: Endpoint,
    tree: Value,
    plan: Plan,
    now: &str,
) -> Result<Assigned, Rejected> {
    let Plan {
        referral_id,
        mut parts,
        gp_identifiers,
        entries: planned,
        rewrites,
    } = plan;
    let mut resources = Vec::new();
    let mut patient_id = None;
    let patient_entry = parts.patient.entry();
    let mut service_request = None;
    // Entry resources the record is read from, moved here once they are stored.
    let mut kept = Vec::new();
    if endpoint == Endpoint::ServiceRequest {
        let sr = with_version(tree, &referral_id, now);
        resources.push(("ServiceRequest".into(), referral_id.clone(), json_text(&sr)));
        service_request = Some(sr);
    } else {
        for (i, (entry, plan)) in bundle_entries(tree).into_iter().zip(&planned).enumerate() {
            let (Value::Object(mut entry), Some((resource_type, id))) = (entry, plan) else {
                continue;
            };
            let Some(resource) = entry.remove("resource") else {
                continue;
            };
            let mut resource = with_version(resource, id, now);
            rewrite_references(&mut resource, &rewrites);
            if patient_entry == Some(i) {
                patient_id = Some(id.clone());
            }
            resources.push((resource_type.clone(), id.clone(), json_text(&resource)));
            if parts.reads_entry(i) {
                kept.push((i, resource));
            }
        }
        // The ServiceRequest first: it is what responses and searches return.
        resources.sort_by_key(|(t, _, _)| t != "ServiceRequest");
    }
    let patient_id = match patient_id {
        Some(id) => id,
        None => {
            // A contained Patient: stored as its own resource too.
            let id = FhirId::generate();
            if let Some(text) = parts.patient.stamp_copy(&id, now) {
                resources.push(("Patient".into(), id.clone(), text));
            }
            id
        }
    };
    let entry_locations = planned
        .iter()
        .map(|p| p.as_ref().map(|(t, id)| format!("{t}/{}", id.as_str())))
        .collect();
    Ok(Assigned {
        referral_id,
        patient_id,
        service_request,
        resources,
        entry_locations,
        parts: parts.read(kept)?,
        gp_identifiers,
    })
}

/// A Bundle's entries, moved out of its tree.
fn bundle_entries(tree: Value) -> Vec<Value> {
    match tree {
        Value::Object(mut root) => match root.remove("entry") {
            Some(Value::Array(entries)) => entries,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

fn gp_identifiers(service_request: &Value) -> Vec<Identifier> {
    service_request
        .get("identifier")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|i| {
            Some(Identifier::new(
                i.get("system")?.as_str()?,
                i.get("value")?.as_str()?,
            ))
        })
        .collect()
}

/// The practice when only a logical reference names it (requester or role.organization with an ODS identifier).
fn practice_reference(
    sr: &r4::resources::ServiceRequest,
    role: &Option<r4::resources::PractitionerRole>,
    have_practice: bool,
) -> Option<types::Reference> {
    if have_practice {
        return None;
    }
    let is_ods = |r: &types::Reference| {
        r.identifier
            .as_ref()
            .and_then(|i| i.system.as_ref())
            .and_then(|s| s.value.as_deref())
            == Some(systems::ODS_CODE)
    };
    role.as_ref()
        .and_then(|r| r.organization.as_deref())
        .filter(|r| is_ods(r))
        .or_else(|| sr.requester.as_deref().filter(|r| is_ods(r)))
        .cloned()
}

/// Is this Bundle entry's resource the one located? (The same node of the tree, not an equal one.)
fn is_resource_of(entry: &Value, resource: &Value) -> bool {
    entry
        .get("resource")
        .is_some_and(|r| std::ptr::eq(r, resource))
}

/// Where each resource the referral record is read from will come from once the submission
/// has been taken apart for storing: a Bundle entry's own resource, moved out after it is
/// stored (no copy), or a copy taken now (a contained resource, or a single ServiceRequest,
/// whose tree is also the response).
struct PartSources {
    service_request: PartSource,
    patient: PartSource,
    practice: Option<PartSource>,
    practitioner: Option<PartSource>,
    practitioner_role: Option<PartSource>,
    consent: Option<PartSource>,
}

struct PartSource {
    /// Where the submission has it (`Bundle.entry[2].resource`), for an error.
    path: String,
    resource_type: String,
    from: Source,
}

enum Source {
    Entry(usize),
    Copy(Value),
}

impl PartSources {
    fn of(located: &LocatedReferral<'_>, entries: &[Value]) -> Self {
        // The record needs these only when they are of the type expected: a requester may be a
        // Practitioner rather than a PractitionerRole.
        let expected = |l: &Option<Located<'_>>, resource_type: &str| {
            l.as_ref()
                .filter(|l| l.resource_type() == resource_type)
                .map(|l| PartSource::of(l, entries))
        };
        PartSources {
            service_request: PartSource::of(&located.service_request, entries),
            patient: PartSource::of(&located.patient, entries),
            practice: expected(&located.practice, "Organization"),
            practitioner: expected(&located.practitioner, "Practitioner"),
            practitioner_role: expected(&located.requester, "PractitionerRole"),
            consent: expected(&located.consent, "Consent"),
        }
    }

    fn all(&self) -> impl Iterator<Item = &PartSource> {
        [&self.service_request, &self.patient]
            .into_iter()
            .chain(self.practice.as_ref())
            .chain(self.practitioner.as_ref())
            .chain(self.practitioner_role.as_ref())
            .chain(self.consent.as_ref())
    }

    fn reads_entry(&self, entry: usize) -> bool {
        self.all().any(|p| p.entry() == Some(entry))
    }

    /// The typed parts, from the copies and the entries kept (`(entry index, resource)`).
    fn read(self, mut kept: Vec<(usize, Value)>) -> Result<ReferralParts, Rejected> {
        let service_request: r4::resources::ServiceRequest =
            self.service_request.read(&mut kept)?;
        let patient: r4::resources::Patient = self.patient.read(&mut kept)?;
        // The record can do without these; one that does not fit the model is left out.
        let practice = optional(self.practice, &mut kept);
        let practitioner = optional(self.practitioner, &mut kept);
        let practitioner_role = optional(self.practitioner_role, &mut kept);
        let consent = optional(self.consent, &mut kept);
        let practice_reference =
            practice_reference(&service_request, &practitioner_role, practice.is_some());
        Ok(ReferralParts {
            service_request,
            patient,
            practice,
            practice_reference,
            practitioner,
            practitioner_role,
            consent,
        })
    }
}

fn optional<T: FromJson>(source: Option<PartSource>, kept: &mut Vec<(usize, Value)>) -> Option<T> {
    source.and_then(|p| p.read(kept).ok())
}

impl PartSource {
    /// The Bundle entry that is this resource, if it is one.
    fn entry(&self) -> Option<usize> {
        match self.from {
            Source::Entry(i) => Some(i),
            Source::Copy(_) => None,
        }
    }

    /// Gives the copy (a contained resource) an id and version of its own, as stored, and
    /// returns its text; typing then reads that same copy. `None` for an entry.
    fn stamp_copy(&mut self, id: &FhirId, now: &str) -> Option<String> {
        let Source::Copy(resource) = &mut self.from else {
            return None;
        };
        *resource = with_version(std::mem::take(resource), id, now);
        Some(json_text(resource))
    }

    fn of(located: &Located<'_>, entries: &[Value]) -> Self {
        let from = match entries
            .iter()
            .position(|e| is_resource_of(e, located.resource))
        {
            Some(i) => Source::Entry(i),
            None => Source::Copy(without_contained(located.resource)),
        };
        PartSource {
            path: located.path.clone(),
            resource_type: located.resource_type().to_string(),
            from,
        }
    }

    fn read<T: FromJson>(self, kept: &mut Vec<(usize, Value)>) -> Result<T, Rejected> {
        let resource = match self.from {
            Source::Copy(resource) => Some(resource),
            Source::Entry(i) => kept
                .iter()
                .position(|(entry, _)| *entry == i)
                .map(|at| kept.swap_remove(at).1)
                .map(drop_contained),
        };
        resource
            .filter(|_| self.resource_type == T::RESOURCE_TYPE)
            .and_then(|resource| T::from_json(resource).ok())
            .ok_or_else(|| {
                Rejected(vec![Issue::error(
                    "structure",
                    format!(
                        "{} could not be read into the FHIR R4 model.",
                        self.resource_type
                    ),
                )
                .at(self.path)
                .with_message_id("model-mismatch")])
            })
    }
}

/// Contained resources are typed on their own; their container's `contained` is not needed
/// (and not copied: in a contained referral it is most of the resource).
fn without_contained(resource: &Value) -> Value {
    match resource {
        Value::Object(object) => Value::Object(
            object
                .iter()
                .filter(|(key, _)| key.as_str() != "contained")
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn drop_contained(mut resource: Value) -> Value {
    if let Value::Object(object) = &mut resource {
        object.swap_remove("contained");
    }
    resource
}

/// The `referral.created` outbox payload: the record in its envelope.
#[derive(serde::Serialize)]
struct Envelope<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    timestamp: String,
    sequence: i64,
    data: &'a crate::translate::referral_record::ReferralRecord,
}

fn build(
    vcs: &VcsConfig,
    needs: &crate::conformance::NeedVocabulary,
    request: Request<'_>,
    assigned: Assigned,
    message_id: Option<String>,
    warnings: Vec<Issue>,
) -> Result<Prepared, Rejected> {
    let gp_reference = assigned.gp_identifiers.first().cloned().ok_or_else(|| {
        Rejected(vec![Issue::error(
            "required",
            "ServiceRequest.identifier (the GP system's own referral id, with system and value) is required.",
        )
        .at("ServiceRequest.identifier")
        .with_message_id("identifier-required")])
    })?;
    let record = referral_record(
        &assigned.parts,
        assigned.referral_id.as_str(),
        &gp_reference,
        request.now,
        vcs,
        needs,
    );
    let record_text = json_text(&record);
    let envelope = json_text(&Envelope {
        kind: "referral.created",
        timestamp: request.now.to_rfc3339_opts(SecondsFormat::Secs, true),
        sequence: 1,
        data: &record,
    });
    let status = assigned
        .parts
        .service_request
        .status
        .value
        .clone()
        .unwrap_or_else(|| "active".to_string());
    let patient_id = assigned.patient_id.as_str().to_string();
    let task_id = FhirId::generate();
    let task = outcomes::new_task(
        task_id.as_str(),
        assigned.referral_id.as_str(),
        &patient_id,
        vcs,
        request.now,
    );
    let stamp = request.now.to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut resources: Vec<NewResource> = assigned
        .resources
        .into_iter()
        .map(|(resource_type, id, content)| NewResource {
            resource_type,
            id,
            version_id: 1,
            content,
            patient_id: Some(patient_id.clone()),
            code: None,
        })
        .collect();
    resources.push(NewResource {
        resource_type: "Task".into(),
        id: task_id.clone(),
        version_id: 1,
        content: json_text(&with_version(task, &task_id, &stamp)),
        patient_id: Some(patient_id.clone()),
        code: None,
    });
    let referral = NewReferral {
        referral_id: assigned.referral_id.clone(),
        client_id: request.client.clone(),
        vcs_id: vcs.id.clone(),
        identifiers: assigned.gp_identifiers,
        message_id,
        patient_id: assigned.patient_id,
        status,
        received_content_type: request.received_content_type.to_string(),
        received_body: request.received_body.to_vec(),
        resources,
        task_id,
        record: record_text,
        outbox: vec![NewOutboxMessage {
            id: new_message_id(),
            target_kind: TargetKind::Vcs,
            target: vcs.id.to_string(),
            event_type: "referral.created".into(),
            sequence: 1,
            payload: envelope,
        }],
        correlation_id: request.correlation_id,
        created_at: request.now,
    };
    Ok(Prepared {
        referral,
        service_request: assigned.service_request,
        entry_locations: assigned.entry_locations,
        warnings,
        if_none_exist: None,
    })
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
