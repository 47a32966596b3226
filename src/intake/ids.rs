//! Our ids for what is stored: a new id per Bundle entry (the ServiceRequest's is the referral
//! id), references between entries rewritten to them, and a contained Patient stored on its own.

use std::collections::HashMap;

use serde_json::Value;

use super::locate::{LocatedReferral, PartSources};
use super::{json_text, with_version};
use super::{Endpoint, Rejected, Request};
use crate::domain::{FhirId, Identifier};
use crate::fhir::bundle::rewrite_references;
use crate::translate::referral_record::ReferralParts;

/// What is decided while the submission is still borrowed by the located referral: the typed
/// parts, the GP identifiers, and (for Bundles) each entry's new id. Storing then consumes the
/// tree, so no resource is copied just to be stamped.
pub(super) struct Plan {
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
pub(super) fn plan_ids(request: &Request<'_>, located: &LocatedReferral<'_>) -> Plan {
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

/// Ids assigned to what is stored, and the normalised resources.
pub(super) struct Assigned {
    pub(super) referral_id: FhirId,
    pub(super) patient_id: FhirId,
    pub(super) service_request: Option<Value>,
    /// Every stored resource (the ServiceRequest first), normalised and serialised.
    pub(super) resources: Vec<(String, FhirId, String)>,
    pub(super) entry_locations: Vec<Option<String>>,
    pub(super) parts: ReferralParts,
    pub(super) gp_identifiers: Vec<Identifier>,
}

/// Stamps and serialises the resources a plan names, taking them out of the submitted tree.
pub(super) fn assign_ids(
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

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    #[test]
    fn each_entry_gets_an_id_and_references_to_it_are_rewritten() {
        let referral_id = FhirId::generate();
        // (entry, type planned, whether its id is the referral id, old references rewritten)
        let table: Vec<(Value, Option<&str>, bool, Vec<&str>)> = vec![
            (
                json!({"fullUrl": "urn:uuid:1", "resource": {"resourceType": "ServiceRequest", "id": "a"}}),
                Some("ServiceRequest"),
                true,
                vec!["ServiceRequest/a", "urn:uuid:1"],
            ),
            (
                json!({"fullUrl": "urn:uuid:2", "resource": {"resourceType": "Patient"}}),
                Some("Patient"),
                false,
                vec!["urn:uuid:2"],
            ),
            (
                json!({"resource": {"resourceType": "Consent", "id": "c"}}),
                Some("Consent"),
                false,
                vec!["Consent/c"],
            ),
            (
                json!({"fullUrl": "urn:uuid:3", "resource": {"resourceType": "MessageHeader"}}),
                None,
                false,
                vec![],
            ),
            (json!({"fullUrl": "urn:uuid:4"}), None, false, vec![]),
        ];
        for (entry, planned, is_referral, rewritten) in table {
            let mut rewrites = HashMap::new();
            let plan = plan_entry(&entry, &referral_id, &mut rewrites);
            assert_eq!(plan.as_ref().map(|(t, _)| t.as_str()), planned, "{entry}");
            if let Some((resource_type, id)) = &plan {
                assert_eq!(*id == referral_id, is_referral, "{entry}");
                let target = format!("{resource_type}/{}", id.as_str());
                assert!(rewrites.values().all(|t| *t == target), "{entry}");
            }
            let mut old: Vec<&str> = rewrites.keys().map(String::as_str).collect();
            old.sort_unstable();
            assert_eq!(old, rewritten, "{entry}");
        }
    }

    #[test]
    fn gp_identifiers_need_system_and_value() {
        // (ServiceRequest.identifier, identifiers kept)
        let table = [
            (json!([{"system": "s", "value": "1"}]), vec![("s", "1")]),
            (
                json!([{"system": "s", "value": "1"}, {"value": "2"}, {"system": "t", "value": "3"}]),
                vec![("s", "1"), ("t", "3")],
            ),
            (json!([{"system": "s"}]), vec![]),
            (json!("not a list"), vec![]),
        ];
        for (identifiers, expected) in table {
            let sr = json!({"resourceType": "ServiceRequest", "identifier": identifiers});
            let expected: Vec<Identifier> = expected
                .into_iter()
                .map(|(s, v)| Identifier::new(s, v))
                .collect();
            assert_eq!(gp_identifiers(&sr), expected, "{sr}");
        }
    }

    #[test]
    fn bundle_entries_are_moved_out() {
        let table = [
            (json!({"entry": [1, 2]}), vec![json!(1), json!(2)]),
            (json!({"entry": "x"}), vec![]),
            (json!({}), vec![]),
            (json!([1]), vec![]),
        ];
        for (tree, expected) in table {
            assert_eq!(bundle_entries(tree.clone()), expected, "{tree}");
        }
    }
}
