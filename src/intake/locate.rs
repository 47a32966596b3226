//! Finding the resources of one referral in a submission (Bundle entries or contained resources),
//! and where each will be read from once the submission is taken apart for storing.

use fhir_model::r4::{self, types};
use fhir_model::FromJson;
use serde_json::Value;

use super::Rejected;
use super::{json_text, with_version};
use crate::domain::{systems, FhirId};
use crate::fhir::bundle::{Located, Submission};
use crate::fhir::outcome::Issue;
use crate::fhir::value_at;
use crate::translate::referral_record::ReferralParts;

/// The resources of one referral, found in the submission.
pub(super) struct LocatedReferral<'a> {
    pub(super) service_request: Located<'a>,
    patient: Located<'a>,
    requester: Option<Located<'a>>,
    practitioner: Option<Located<'a>>,
    practice: Option<Located<'a>>,
    consent: Option<Located<'a>>,
}

fn reference_of<'a>(resource: &'a Value, element: &str) -> Option<&'a str> {
    value_at(resource, &[element, "reference"]).and_then(Value::as_str)
}

pub(super) fn locate_referral<'a>(
    submission: &Submission<'a>,
) -> Result<LocatedReferral<'a>, Issue> {
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

/// Where each resource the referral record is read from will come from once the submission
/// has been taken apart for storing: a Bundle entry's own resource, moved out after it is
/// stored (no copy), or a copy taken now (a contained resource, or a single ServiceRequest,
/// whose tree is also the response).
pub(super) struct PartSources {
    service_request: PartSource,
    pub(super) patient: PartSource,
    practice: Option<PartSource>,
    practitioner: Option<PartSource>,
    practitioner_role: Option<PartSource>,
    consent: Option<PartSource>,
}

pub(super) struct PartSource {
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
    pub(super) fn of(located: &LocatedReferral<'_>, entries: &[Value]) -> Self {
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

    pub(super) fn reads_entry(&self, entry: usize) -> bool {
        self.all().any(|p| p.entry() == Some(entry))
    }

    /// The typed parts, from the copies and the entries kept (`(entry index, resource)`).
    pub(super) fn read(self, mut kept: Vec<(usize, Value)>) -> Result<ReferralParts, Rejected> {
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
    pub(super) fn entry(&self) -> Option<usize> {
        match self.from {
            Source::Entry(i) => Some(i),
            Source::Copy(_) => None,
        }
    }

    /// Gives the copy (a contained resource) an id and version of its own, as stored, and
    /// returns its text; typing then reads that same copy. `None` for an entry.
    pub(super) fn stamp_copy(&mut self, id: &FhirId, now: &str) -> Option<String> {
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

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn path(l: &Option<Located<'_>>) -> Option<String> {
        l.as_ref().map(|l| l.path.clone())
    }

    fn bundle(entries: Value) -> Value {
        let entries: Vec<Value> = entries
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| json!({"fullUrl": format!("urn:uuid:{}", r["id"].as_str().unwrap_or("")), "resource": r}))
            .collect();
        json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
    }

    /// Paths found for (Patient, requester, practitioner, practice, consent).
    type Found = (
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
    );

    #[test]
    fn finds_the_parts_of_a_referral() {
        let sr = |requester: &str| {
            json!({"resourceType": "ServiceRequest", "id": "sr",
                   "subject": {"reference": "urn:uuid:p"},
                   "requester": {"reference": requester},
                   "supportingInfo": [{"reference": "urn:uuid:c"}]})
        };
        let patient = json!({"resourceType": "Patient", "id": "p"});
        let consent = json!({"resourceType": "Consent", "id": "c"});
        let role = json!({"resourceType": "PractitionerRole", "id": "r",
                          "practitioner": {"reference": "urn:uuid:d"},
                          "organization": {"reference": "urn:uuid:o"}});
        let doctor = json!({"resourceType": "Practitioner", "id": "d"});
        let practice = json!({"resourceType": "Organization", "id": "o"});
        // (submission, what is found)
        let table: Vec<(Value, Found)> = vec![
            (
                bundle(json!([
                    sr("urn:uuid:r"),
                    patient,
                    role,
                    doctor,
                    practice,
                    consent
                ])),
                (
                    "Bundle.entry[1].resource",
                    Some("Bundle.entry[2].resource"),
                    Some("Bundle.entry[3].resource"),
                    Some("Bundle.entry[4].resource"),
                    Some("Bundle.entry[5].resource"),
                ),
            ),
            (
                bundle(json!([sr("urn:uuid:o"), patient, practice])),
                (
                    "Bundle.entry[1].resource",
                    Some("Bundle.entry[2].resource"),
                    None,
                    Some("Bundle.entry[2].resource"),
                    None,
                ),
            ),
            (
                bundle(json!([sr("urn:uuid:d"), patient, doctor])),
                (
                    "Bundle.entry[1].resource",
                    Some("Bundle.entry[2].resource"),
                    Some("Bundle.entry[2].resource"),
                    None,
                    None,
                ),
            ),
            (
                bundle(json!([sr("urn:uuid:nowhere"), patient])),
                ("Bundle.entry[1].resource", None, None, None, None),
            ),
            (
                json!({"resourceType": "ServiceRequest", "subject": {"reference": "#p"},
                       "contained": [{"resourceType": "Patient", "id": "p"}]}),
                ("ServiceRequest.contained[0]", None, None, None, None),
            ),
        ];
        for (tree, (patient, requester, practitioner, practice, consent)) in table {
            let submission = Submission::of(&tree);
            let found = locate_referral(&submission).unwrap_or_else(|e| panic!("{tree}: {e:?}"));
            assert_eq!(found.patient.path, patient, "{tree}");
            assert_eq!(path(&found.requester).as_deref(), requester, "{tree}");
            assert_eq!(path(&found.practitioner).as_deref(), practitioner, "{tree}");
            assert_eq!(path(&found.practice).as_deref(), practice, "{tree}");
            assert_eq!(path(&found.consent).as_deref(), consent, "{tree}");
        }
    }

    #[test]
    fn a_referral_needs_its_patient_in_the_submission() {
        // (submission, message id, expression)
        let table = [
            (
                json!({"resourceType": "ServiceRequest", "subject": {"reference": "Patient/elsewhere"}}),
                Some("subject-unresolved"),
                "ServiceRequest.subject",
            ),
            (
                json!({"resourceType": "ServiceRequest", "subject": {"reference": "#x"},
                       "contained": [{"resourceType": "Group", "id": "x"}]}),
                Some("subject-unresolved"),
                "ServiceRequest.subject",
            ),
            (
                json!({"resourceType": "ServiceRequest"}),
                Some("subject-unresolved"),
                "ServiceRequest.subject",
            ),
            (
                json!({"resourceType": "Bundle", "type": "transaction", "entry": []}),
                None,
                "Bundle.entry",
            ),
        ];
        for (tree, message_id, expression) in table {
            let submission = Submission::of(&tree);
            match locate_referral(&submission) {
                Ok(_) => panic!("{tree} located"),
                Err(issue) => {
                    assert_eq!(issue.message_id.as_deref(), message_id, "{tree}");
                    assert_eq!(issue.expression.as_deref(), Some(expression), "{tree}");
                }
            }
        }
    }

    #[test]
    fn contained_resources_are_read_without_their_container() {
        // (resource, after without_contained)
        let table = [
            (json!({"a": 1, "contained": [{"b": 2}]}), json!({"a": 1})),
            (json!({"a": 1}), json!({"a": 1})),
            (json!([1]), json!([1])),
        ];
        for (resource, expected) in table {
            assert_eq!(without_contained(&resource), expected);
            assert_eq!(drop_contained(resource), expected);
        }
    }
}
