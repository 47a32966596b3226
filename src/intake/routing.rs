//! Routing: which configured VCS organisation (`[[vcs]]`) a referral goes to, found from the
//! identifiers its performer carries or resolves to.

use serde_json::Value;

use crate::config::VcsConfig;
use crate::domain::Identifier;
use crate::fhir::bundle::{Located, Submission};
use crate::fhir::outcome::Issue;

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
