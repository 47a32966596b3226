//! Routing: which configured VCS organisation (`[[vcs]]`) a referral goes to, found from the
//! identifiers its performer carries or resolves to, or, when the performer is a service of the
//! directory (`HealthcareService/{id}`, or its identifier), from its organisation's identifiers.

use serde_json::Value;

use crate::config::VcsConfig;
use crate::domain::Identifier;
use crate::fhir::bundle::{Located, Submission};
use crate::fhir::outcome::Issue;

/// The HealthcareService identifier system of directory services (`urn:uuid:{id}`).
const URI_SYSTEM: &str = "urn:ietf:rfc:3986";

/// A service of the directory, as routing needs it.
#[derive(Debug, Clone, Default)]
pub struct ListedService {
    pub id: String,
    pub name: String,
    pub active: bool,
    pub organization_identifiers: Vec<Identifier>,
    pub email: Option<String>,
    pub website: Option<String>,
    pub telephones: Vec<String>,
}

/// The service directory, looked up by service id (what intake knows of it).
pub trait ServiceDirectory {
    fn service(&self, id: &str) -> Option<ListedService>;
}

/// No directory (offline checks): a performer naming a service is unknown.
pub struct NoDirectory;

impl ServiceDirectory for NoDirectory {
    fn service(&self, _: &str) -> Option<ListedService> {
        None
    }
}

/// Where a referral goes: the organisation, and the directory service it named (if it did).
#[derive(Debug, Clone, Copy)]
pub struct Routed<'c> {
    pub vcs: &'c VcsConfig,
    pub service: Option<(&'c str, &'c str)>,
}

/// The directory service id a performer names: a literal `HealthcareService/{id}` reference
/// (relative or absolute), or the service's identifier (`urn:ietf:rfc:3986|urn:uuid:{id}`).
fn named_service(performer: &Value) -> Option<String> {
    let literal = performer
        .get("reference")
        .and_then(Value::as_str)
        .and_then(|r| {
            let (kind, id) = r.trim_end_matches('/').rsplit_once('/')?;
            (kind == "HealthcareService" || kind.ends_with("/HealthcareService"))
                .then(|| id.to_string())
        });
    let identified = || {
        let i = performer.get("identifier")?;
        (i.get("system")?.as_str()? == URI_SYSTEM)
            .then(|| i.get("value")?.as_str()?.strip_prefix("urn:uuid:"))
            .flatten()
            .map(str::to_string)
    };
    literal.or_else(identified)
}

/// Routes a referral whose performer may be a directory service: to the service's organisation
/// when it is a configured `[[vcs]]` (matched by any identifier), refused with the service's own
/// contact details when it is not connected; any other performer is routed by [`route`].
pub fn route_to_service<'c>(
    service_request: &Located<'_>,
    submission: &Submission<'_>,
    organisations: &'c [VcsConfig],
    directory: &dyn ServiceDirectory,
    listed: &'c mut Option<ListedService>,
) -> Result<Routed<'c>, Issue> {
    let sr = service_request;
    let performer = sr
        .resource
        .get("performer")
        .and_then(Value::as_array)
        .and_then(|p| p.first());
    let Some(id) = performer.and_then(named_service) else {
        return route(sr, submission, organisations).map(|vcs| Routed { vcs, service: None });
    };
    let at = format!("{}.performer[0]", sr.path);
    route_to_listed(&id, &at, organisations, directory, listed)
}

/// Routes to the directory service `id` (named at `at`): to its organisation when that is a
/// configured `[[vcs]]`; refused when the service is unknown or inactive (`performer-unknown`,
/// `service-inactive`), or with its contact details when its organisation is not connected
/// (`service-not-connected`). Intake and onward referrals route alike.
pub fn route_to_listed<'c>(
    id: &str,
    at: &str,
    organisations: &'c [VcsConfig],
    directory: &dyn ServiceDirectory,
    listed: &'c mut Option<ListedService>,
) -> Result<Routed<'c>, Issue> {
    let Some(service) = directory.service(id) else {
        return Err(Issue::error(
            "business-rule",
            format!("The performer names HealthcareService {id}, which is not in this gateway's service directory."),
        )
        .at(at)
        .with_message_id("performer-unknown"));
    };
    if !service.active {
        return Err(Issue::error(
            "business-rule",
            format!("The service {:?} (HealthcareService {id}) is no longer listed as active in the service directory.", service.name),
        )
        .at(at)
        .with_message_id("service-inactive"));
    }
    let vcs = organisations.iter().find(|vcs| {
        vcs.identifiers
            .iter()
            .any(|i| service.organization_identifiers.contains(i))
    });
    let Some(vcs) = vcs else {
        let mut how = Vec::new();
        if let Some(e) = &service.email {
            how.push(format!("email {e}"));
        }
        if let Some(w) = &service.website {
            how.push(format!("website {w}"));
        }
        for t in &service.telephones {
            how.push(format!("telephone {t}"));
        }
        let contact = if how.is_empty() {
            "the directory gives no contact details".to_string()
        } else {
            format!("contact it directly: {}", how.join(", "))
        };
        return Err(Issue::error(
            "business-rule",
            format!(
                "The service {:?} (HealthcareService {id}) is in the service directory, but its organisation does not take referrals through this gateway; {contact}.",
                service.name
            ),
        )
        .at(at)
        .with_message_id("service-not-connected"));
    };
    let listed = listed.insert(service);
    Ok(Routed {
        vcs,
        service: Some((listed.id.as_str(), listed.name.as_str())),
    })
}

/// Finds the configured VCS organisation the referral's performer names: the first of the
/// performer's identifiers (its logical identifier first, then those of the resource it resolves
/// to in the submission) that one of `organisations` carries. Without a performer, or when none
/// of its identifiers is known, the Issue points at the performer and names what was tried.
pub fn route<'c>(
    service_request: &Located<'_>,
    submission: &Submission<'_>,
    organisations: &'c [VcsConfig],
) -> Result<&'c VcsConfig, Issue> {
    let sr = service_request;
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
    let found = identifiers.iter().find_map(|id| {
        organisations
            .iter()
            .find(|vcs| vcs.identifiers.contains(id))
    });
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

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::config::{Config, DEMO_CONFIG};

    const ODS: &str = "https://fhir.nhs.uk/Id/ods-organization-code";
    const CHARITY: &str = "https://www.gov.uk/charity-commission";

    /// A single ServiceRequest with these performers (and these contained resources).
    fn service_request(performer: Value, contained: Value) -> Value {
        json!({"resourceType": "ServiceRequest", "performer": performer, "contained": contained})
    }

    /// A transaction whose ServiceRequest (entry 1) names entry 0 as its performer.
    fn bundle_with_organisation(identifier: Value) -> Value {
        json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": "urn:uuid:0c4f", "resource": {"resourceType": "Organization", "identifier": identifier}},
            {"fullUrl": "urn:uuid:9a1e", "resource": {"resourceType": "ServiceRequest",
                "performer": [{"reference": "urn:uuid:0c4f"}]}}
        ]})
    }

    /// The organisation's id, or the refusal's message id, expression and a text it contains.
    type Routed = Result<&'static str, (&'static str, &'static str, &'static str)>;

    #[test]
    fn routes_by_the_performers_identifiers() {
        let config = Config::from_toml_with_env(DEMO_CONFIG).expect("demo config");
        let logical = |system: &str, value: &str| {
            service_request(
                json!([{"identifier": {"system": system, "value": value}}]),
                json!([]),
            )
        };
        // (case, submission, Ok(organisation) or Err((message id, expression, text in it)))
        let table: Vec<(&str, Value, Routed)> = vec![
            ("ODS code", logical(ODS, "X1A2B"), Ok("carers-count")),
            (
                "charity number",
                logical(CHARITY, "1187654"),
                Ok("valley-knit-natter"),
            ),
            (
                "second identifier of an organisation",
                logical(CHARITY, "1123456"),
                Ok("carers-count"),
            ),
            (
                "another ODS code",
                logical(ODS, "X9C3D"),
                Ok("cyngor-ar-bopeth"),
            ),
            (
                "a known value under another system",
                logical(CHARITY, "X1A2B"),
                Err(("performer-unknown", "ServiceRequest.performer[0]", "X1A2B")),
            ),
            (
                "an unknown organisation",
                logical(ODS, "Z9Z9Z"),
                Err(("performer-unknown", "ServiceRequest.performer[0]", "Z9Z9Z")),
            ),
            (
                "no performer",
                service_request(json!([]), json!([])),
                Err((
                    "performer-required",
                    "ServiceRequest.performer",
                    "performer",
                )),
            ),
            (
                "a performer without identifier that resolves nowhere",
                service_request(json!([{"reference": "Organization/elsewhere"}]), json!([])),
                Err((
                    "performer-unknown",
                    "ServiceRequest.performer[0]",
                    "no identifier",
                )),
            ),
            (
                "a contained Organization",
                service_request(
                    json!([{"reference": "#org"}]),
                    json!([{"resourceType": "Organization", "id": "org",
                            "identifier": [{"system": ODS, "value": "X9C3D"}]}]),
                ),
                Ok("cyngor-ar-bopeth"),
            ),
            (
                "an unknown logical identifier, a known resolved one",
                service_request(
                    json!([{"reference": "#org", "identifier": {"system": ODS, "value": "Z9Z9Z"}}]),
                    json!([{"resourceType": "Organization", "id": "org",
                            "identifier": [{"system": CHARITY, "value": "1187654"}]}]),
                ),
                Ok("valley-knit-natter"),
            ),
            (
                "a Bundle entry",
                bundle_with_organisation(json!([{"system": CHARITY, "value": "1123456"}])),
                Ok("carers-count"),
            ),
            (
                "an unknown Bundle entry",
                bundle_with_organisation(json!([{"system": CHARITY, "value": "1000000"}])),
                Err((
                    "performer-unknown",
                    "Bundle.entry[1].resource.performer[0]",
                    "1000000",
                )),
            ),
        ];
        for (case, tree, expected) in table {
            let submission = Submission::of(&tree);
            let service_request = submission
                .of_type("ServiceRequest")
                .into_iter()
                .next()
                .expect("a ServiceRequest");
            let routed = route(&service_request, &submission, &config.vcs);
            match (routed, expected) {
                (Ok(vcs), Ok(id)) => assert_eq!(vcs.id.as_str(), id, "{case}"),
                (Err(issue), Err((message_id, expression, names))) => {
                    assert_eq!(issue.message_id.as_deref(), Some(message_id), "{case}");
                    assert_eq!(issue.expression.as_deref(), Some(expression), "{case}");
                    assert!(
                        issue.diagnostics.contains(names),
                        "{case}: {}",
                        issue.diagnostics
                    );
                    assert!(issue.severity.is_error(), "{case}");
                }
                (found, expected) => panic!(
                    "{case}: {:?} instead of {expected:?}",
                    found.map(|v| v.id.as_str())
                ),
            }
        }
    }
}
