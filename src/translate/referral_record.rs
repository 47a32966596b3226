//! FHIR referral (typed, via fhirbolt) → `referral-record/v1`, the plain JSON a charity's CRM
//! can use without knowing FHIR. Its JSON Schema is `profiles/referral-record.v1.schema.json`.

use chrono::{DateTime, SecondsFormat, Utc};
use fhir_model::r4::resources::{
    Consent, Organization, Patient, Practitioner, PractitionerRole, ServiceRequest,
};
use fhir_model::r4::types;
use serde::Serialize;

use crate::config::{ShareField, VcsConfig};
use crate::conformance::NeedVocabulary;
use crate::domain::{systems, Identifier, NeedCategory};

pub const SCHEMA: &str = "referral-record/v1";

/// The typed resources one referral is made of, already resolved from the submission.
#[derive(Debug, Default)]
pub struct ReferralParts {
    pub service_request: ServiceRequest,
    pub patient: Patient,
    /// The GP practice, when the submission carries it as a resource.
    pub practice: Option<Organization>,
    /// The practice named only by a logical reference (ODS identifier and display).
    pub practice_reference: Option<types::Reference>,
    pub practitioner: Option<Practitioner>,
    pub practitioner_role: Option<PractitionerRole>,
    pub consent: Option<Consent>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReferralRecord {
    pub schema: &'static str,
    pub referral_id: String,
    pub gp_reference: GpReference,
    pub created_at: String,
    pub authored_on: Option<String>,
    pub priority: String,
    pub service: RequestedService,
    pub needs: Vec<Need>,
    pub notes: Vec<String>,
    pub patient: PatientDetails,
    pub referrer: Referrer,
    pub consent: ConsentDetails,
    pub recipient: Recipient,
}

/// What was asked for: the ServiceRequest's code, and the directory service it was addressed to
/// (`id`, `name`: only when the performer named one).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestedService {
    pub code: Option<String>,
    pub display: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GpReference {
    pub system: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Coded {
    pub code: Option<String>,
    pub display: Option<String>,
}

/// One need (a `reasonCode`) exactly as the GP system sent it, with a readable label and, when
/// one of its codes is in our need vocabulary, its category.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Need {
    /// The SNOMED CT code where the GP system coded it (else its first code).
    pub code: Option<String>,
    /// Plain-English label: the GP's text, else the coding's display, else our display.
    pub display: Option<String>,
    /// The code system of `code`.
    pub system: Option<String>,
    /// `reasonCode.text` as sent.
    pub text: Option<String>,
    /// The need category, where one of the codes is in `sp-referral-need`.
    pub category: Option<NeedCategory>,
    /// Every coding as sent.
    pub codings: Vec<Coding>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Coding {
    pub system: Option<String>,
    pub code: Option<String>,
    pub display: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PatientDetails {
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    /// Only for organisations whose `share` includes `birth_date`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<String>,
    pub phone: Option<String>,
    /// Only for organisations whose `share` includes `email`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub address: Option<AddressDetails>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nhs_number: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AddressDetails {
    pub lines: Vec<String>,
    pub city: Option<String>,
    pub postcode: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Referrer {
    pub practice_name: Option<String>,
    pub practice_ods: Option<String>,
    pub clinician_name: Option<String>,
    pub phone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConsentDetails {
    pub status: String,
    pub date: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recipient {
    pub vcs_id: String,
    pub name: String,
}

fn string(value: &Option<types::String>) -> Option<String> {
    value.as_ref().and_then(|s| s.value.clone())
}

fn code(value: &Option<types::Code>) -> Option<&str> {
    value.as_ref().and_then(|c| c.value.as_deref())
}

/// Builds the record. `gp_reference` is the identifier used for idempotency (the first one).
pub fn referral_record(
    parts: &ReferralParts,
    referral_id: &str,
    gp_reference: &Identifier,
    created_at: DateTime<Utc>,
    vcs: &VcsConfig,
    vocabulary: &NeedVocabulary,
) -> ReferralRecord {
    let sr = &parts.service_request;
    ReferralRecord {
        schema: SCHEMA,
        referral_id: referral_id.to_string(),
        gp_reference: GpReference {
            system: gp_reference.system.clone(),
            value: gp_reference.value.clone(),
        },
        created_at: created_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        authored_on: sr.authored_on.as_ref().and_then(|d| d.value.clone()),
        priority: plain_priority(sr.priority.as_ref().and_then(|p| p.value.as_deref())),
        service: {
            let coded = sr.code.as_deref().map(coded).unwrap_or(Coded {
                code: None,
                display: None,
            });
            RequestedService {
                code: coded.code,
                display: coded.display,
                id: None,
                name: None,
            }
        },
        needs: sr
            .reason_code
            .iter()
            .map(|concept| need(concept, vocabulary))
            .collect(),
        notes: sr
            .note
            .iter()
            .filter_map(|n| n.text.value.clone())
            .collect(),
        patient: patient_details(&parts.patient, vcs),
        referrer: referrer(parts),
        consent: consent_details(parts.consent.as_ref()),
        recipient: Recipient {
            vcs_id: vcs.id.to_string(),
            name: vcs.name.clone(),
        },
    }
}

/// FHIR request priorities in the words a CRM user reads.
fn plain_priority(priority: Option<&str>) -> String {
    match priority {
        Some("urgent") => "urgent",
        Some("asap") => "as soon as possible",
        Some("stat") => "immediately",
        _ => "routine",
    }
    .to_string()
}

/// A CodeableConcept as one code and a readable label: SNOMED first, `text` as the fallback label.
fn coded(concept: &types::CodeableConcept) -> Coded {
    let coding = concept
        .coding
        .iter()
        .find(|c| c.system.as_ref().and_then(|s| s.value.as_deref()) == Some(systems::SNOMED))
        .or_else(|| concept.coding.first());
    let code = coding.and_then(|c| c.code.as_ref().and_then(|v| v.value.clone()));
    let display = string(&concept.text).or_else(|| coding.and_then(|c| string(&c.display)));
    Coded { code, display }
}

fn need(concept: &types::CodeableConcept, vocabulary: &NeedVocabulary) -> Need {
    let codings: Vec<Coding> = concept
        .coding
        .iter()
        .map(|c| Coding {
            system: c.system.as_ref().and_then(|s| s.value.clone()),
            code: c.code.as_ref().and_then(|v| v.value.clone()),
            display: string(&c.display),
        })
        .collect();
    let known = codings
        .iter()
        .find_map(|c| vocabulary.lookup(c.system.as_deref()?, c.code.as_deref()?));
    let main = codings
        .iter()
        .find(|c| c.system.as_deref() == Some(systems::SNOMED))
        .or_else(|| codings.first());
    let text = string(&concept.text);
    Need {
        code: main.and_then(|c| c.code.clone()),
        display: text
            .clone()
            .or_else(|| main.and_then(|c| c.display.clone()))
            .or_else(|| known.map(|k| k.display.clone())),
        system: main.and_then(|c| c.system.clone()),
        text,
        category: known.map(|k| k.category),
        codings,
    }
}

fn preferred_name(names: &[types::HumanName]) -> Option<&types::HumanName> {
    names
        .iter()
        .find(|n| code(&n.r#use) == Some("official"))
        .or_else(|| names.iter().find(|n| code(&n.r#use) == Some("usual")))
        .or_else(|| names.first())
}

fn given_names(name: &types::HumanName) -> Option<String> {
    let given: Vec<String> = name.given.iter().filter_map(|g| g.value.clone()).collect();
    (!given.is_empty()).then(|| given.join(" "))
}

fn full_name(names: &[types::HumanName]) -> Option<String> {
    let name = preferred_name(names)?;
    if let Some(text) = string(&name.text) {
        return Some(text);
    }
    let parts: Vec<String> = name
        .prefix
        .iter()
        .filter_map(|p| p.value.clone())
        .chain(given_names(name))
        .chain(string(&name.family))
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

fn contact(telecom: &[types::ContactPoint], system: &str) -> Option<String> {
    let of_system = || {
        telecom
            .iter()
            .filter(move |t| code(&t.system) == Some(system))
    };
    of_system()
        .find(|t| code(&t.r#use) == Some("mobile"))
        .or_else(|| of_system().find(|t| code(&t.r#use) != Some("old")))
        .and_then(|t| string(&t.value))
}

/// The patient as the organisation may see them: a minimal default (name, phone, address) and
/// the fields its `share` list adds.
fn patient_details(patient: &Patient, vcs: &VcsConfig) -> PatientDetails {
    let name = preferred_name(&patient.name);
    let address = patient
        .address
        .iter()
        .find(|a| code(&a.r#use) == Some("home"))
        .or_else(|| patient.address.first())
        .map(|a| AddressDetails {
            lines: a.line.iter().filter_map(|l| l.value.clone()).collect(),
            city: string(&a.city),
            postcode: string(&a.postal_code),
        });
    let nhs_number = vcs
        .shares(ShareField::NhsNumber)
        .then(|| identifier_value(&patient.identifier, systems::NHS_NUMBER))
        .flatten();
    PatientDetails {
        given_name: name.and_then(given_names),
        family_name: name.and_then(|n| string(&n.family)),
        birth_date: vcs
            .shares(ShareField::BirthDate)
            .then(|| patient.birth_date.as_ref().and_then(|d| d.value.clone()))
            .flatten(),
        phone: contact(&patient.telecom, "phone"),
        email: vcs
            .shares(ShareField::Email)
            .then(|| contact(&patient.telecom, "email"))
            .flatten(),
        address,
        nhs_number,
    }
}

fn identifier_value(identifiers: &[types::Identifier], system: &str) -> Option<String> {
    identifiers
        .iter()
        .find(|i| i.system.as_ref().and_then(|s| s.value.as_deref()) == Some(system))
        .and_then(|i| string(&i.value))
}

fn referrer(parts: &ReferralParts) -> Referrer {
    let logical = parts.practice_reference.as_ref();
    let practice_name = parts
        .practice
        .as_ref()
        .and_then(|o| string(&o.name))
        .or_else(|| logical.and_then(|r| string(&r.display)));
    let practice_ods = parts
        .practice
        .as_ref()
        .and_then(|o| identifier_value(&o.identifier, systems::ODS_CODE))
        .or_else(|| {
            logical
                .and_then(|r| r.identifier.as_deref())
                .and_then(|i| string(&i.value))
        });
    let clinician_name = parts.practitioner.as_ref().and_then(|p| full_name(&p.name));
    let phone = parts
        .practitioner_role
        .as_ref()
        .and_then(|r| contact(&r.telecom, "phone"))
        .or_else(|| {
            parts
                .practice
                .as_ref()
                .and_then(|o| contact(&o.telecom, "phone"))
        });
    Referrer {
        practice_name,
        practice_ods,
        clinician_name,
        phone,
    }
}

fn consent_details(consent: Option<&Consent>) -> ConsentDetails {
    let status = match consent.and_then(|c| c.status.value.as_deref()) {
        Some("active") => "given",
        Some("rejected") => "refused",
        Some("inactive") => "withdrawn",
        Some(_) => "not confirmed",
        None => "not recorded",
    };
    ConsentDetails {
        status: status.to_string(),
        date: consent
            .and_then(|c| c.date_time.as_ref())
            .and_then(|d| d.value.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use serde_json::json;

    fn typed<T: fhir_model::FromJson>(value: serde_json::Value) -> T {
        T::from_json(value).unwrap()
    }

    fn parts() -> ReferralParts {
        let service_request = typed(
            json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
                "priority": "urgent",
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": "871731000000106",
                    "display": "Referral to social prescribing service"}]},
                "reasonCode": [{"text": "Loneliness"},
                    {"coding": [{"system": "http://snomed.info/sct", "code": "1", "display": "Coded need"}]},
                    {"coding": [{"system": "http://snomed.info/sct", "code": "422650009"}],
                        "text": "Unigrwydd ers colli ei gŵr"}],
                "subject": {"reference": "#pat"}, "authoredOn": "2026-05-01T09:30:00+01:00",
                "note": [{"text": "Prefers afternoon calls"}]}),
        );
        let patient = typed(json!({"resourceType": "Patient",
                "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9000000009"}],
                "name": [{"use": "official", "family": "Llywelyn", "given": ["Siân", "Mair"]}],
                "telecom": [{"system": "phone", "value": "029 2018 0001", "use": "home"},
                    {"system": "phone", "value": "07700 900123", "use": "mobile"},
                    {"system": "email", "value": "sian@example.org"}],
                "birthDate": "1948-03-02",
                "address": [{"use": "home", "line": ["1 Heol y Frenhines"], "city": "Caerdydd", "postalCode": "CF10 1AA"}]}));
        let consent = typed(json!({"resourceType": "Consent", "status": "active",
                "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
                "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
                "dateTime": "2026-05-01"}));
        ReferralParts {
            service_request,
            patient,
            consent: Some(consent),
            practice_reference: typed::<ServiceRequest>(
                json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
                    "subject": {"reference": "x"},
                    "requester": {"identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "W97001"},
                        "display": "Meddygfa'r Bont"}}),
            )
            .requester
            .map(|b| *b),
            ..ReferralParts::default()
        }
    }

    #[test]
    fn translates_a_referral_in_plain_english() {
        let config = Config::from_toml_with_env(crate::config::DEMO_CONFIG).unwrap();
        let vcs = &config.vcs[0];
        let reference = Identifier::new("https://gp.example/ref", "R1");
        let conformance = crate::conformance::Conformance::bundled().unwrap();
        let record = referral_record(
            &parts(),
            "abc",
            &reference,
            Utc::now(),
            vcs,
            conformance.needs(),
        );
        assert_eq!(record.priority, "urgent");
        assert_eq!(record.service.code.as_deref(), Some("871731000000106"));
        assert_eq!(record.needs[0].display.as_deref(), Some("Loneliness"));
        assert_eq!(record.needs[0].text.as_deref(), Some("Loneliness"));
        assert_eq!(record.needs[0].category, None);
        // A code we have never heard of still reaches the organisation, as sent.
        assert_eq!(record.needs[1].code.as_deref(), Some("1"));
        assert_eq!(record.needs[1].display.as_deref(), Some("Coded need"));
        assert_eq!(record.needs[1].system.as_deref(), Some(systems::SNOMED));
        assert_eq!(record.needs[1].category, None);
        // A known code gets its category; the GP's own words (here Welsh) stay the label.
        assert_eq!(record.needs[2].code.as_deref(), Some("422650009"));
        assert_eq!(
            record.needs[2].category,
            Some(NeedCategory::SocialConnection)
        );
        assert_eq!(
            record.needs[2].display.as_deref(),
            Some("Unigrwydd ers colli ei gŵr")
        );
        assert_eq!(record.needs[2].codings[0].display, None);
        assert_eq!(record.patient.given_name.as_deref(), Some("Siân Mair"));
        assert_eq!(record.patient.phone.as_deref(), Some("07700 900123"));
        assert_eq!(record.patient.email.as_deref(), Some("sian@example.org"));
        assert_eq!(
            record.patient.address.as_ref().unwrap().postcode.as_deref(),
            Some("CF10 1AA")
        );
        assert_eq!(record.referrer.practice_ods.as_deref(), Some("W97001"));
        assert_eq!(
            record.referrer.practice_name.as_deref(),
            Some("Meddygfa'r Bont")
        );
        assert_eq!(record.consent.status, "given");
        assert_eq!(record.notes, vec!["Prefers afternoon calls".to_string()]);
        assert_eq!(record.recipient.vcs_id, "carers-count");
    }

    #[test]
    fn nhs_number_only_for_organisations_allowed_it() {
        let config = Config::from_toml_with_env(crate::config::DEMO_CONFIG).unwrap();
        let reference = Identifier::new("https://gp.example/ref", "R1");
        let needs = crate::conformance::NeedVocabulary::default();
        let allowed = referral_record(
            &parts(),
            "a",
            &reference,
            Utc::now(),
            &config.vcs[0],
            &needs,
        );
        assert_eq!(allowed.patient.nhs_number.as_deref(), Some("9000000009"));
        let not_allowed = referral_record(
            &parts(),
            "a",
            &reference,
            Utc::now(),
            &config.vcs[1],
            &needs,
        );
        assert_eq!(not_allowed.patient.nhs_number, None);
        let json = serde_json::to_value(&not_allowed).unwrap();
        for field in ["nhs_number", "birth_date", "email"] {
            assert!(
                json["patient"].get(field).is_none(),
                "{field} is not shared with this organisation"
            );
        }
        assert_eq!(
            json["patient"]["family_name"], "Llywelyn",
            "the minimal default stays"
        );
    }

    #[test]
    fn priorities_read_as_plain_words() {
        assert_eq!(plain_priority(None), "routine");
        assert_eq!(plain_priority(Some("asap")), "as soon as possible");
        assert_eq!(plain_priority(Some("stat")), "immediately");
    }
}
