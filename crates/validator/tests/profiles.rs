//! Profiles as overlays: cardinality, fixed/pattern, bindings, slicing,
//! extensions, meta.profile and the native constraints.

mod common;

use std::sync::OnceLock;

use common::{errors, load, show};
use serde_json::{json, Value};
use sp_validator::{Issue, Options, Validator};

const SR: &str = "https://example.org/StructureDefinition/Test-ServiceRequest";
const PAT: &str = "https://example.org/StructureDefinition/Test-Patient";
const BY_TYPE: &[(&str, &str)] = &[("ServiceRequest", SR), ("Patient", PAT)];

fn validator() -> &'static Validator {
    static V: OnceLock<Validator> = OnceLock::new();
    V.get_or_init(|| {
        let defs = [
            "test-servicerequest.json",
            "test-patient.json",
            "test-urgency.json",
            "test-valuesets.json",
        ]
        .iter()
        .map(|f| load(&format!("profiles/{f}")))
        .collect();
        Validator::with_extra(defs).expect("test profiles load")
    })
}

fn check(v: &Value) -> Vec<Issue> {
    validator().validate(
        v,
        &Options {
            profiles_by_type: BY_TYPE,
            root_profiles: &[],
        },
    )
}

fn has(issues: &[Issue], expr: &str, code: &str, id: &str) -> bool {
    issues.iter().any(|i| {
        i.expression == expr && i.code.as_str() == code && i.message_id == id && i.is_error()
    })
}

fn bundle() -> Value {
    load("bundles/referral-transaction.json")
}

#[test]
fn knows_profiles() {
    assert!(validator().knows_profile(SR));
    assert!(validator().knows_profile(&format!("{SR}|1.0.0")));
    assert!(!validator().knows_profile("https://example.org/nope"));
}

#[test]
fn valid_bundle_passes() {
    let issues = check(&bundle());
    assert!(errors(&issues).is_empty(), "{}", show(&issues));
}

#[test]
fn profile_cardinality_fixed_pattern() {
    let mut b = bundle();
    let sr = &mut b["entry"][0]["resource"];
    sr.as_object_mut().unwrap().remove("priority");
    sr["intent"] = json!("plan");
    sr["category"] = json!([{"coding": [{"system": "http://snomed.info/sct", "code": "1"}]}]);
    sr["orderDetail"] = json!([{"text": "x"}]);
    let issues = check(&b);
    let p = "Bundle.entry[0].resource";
    assert!(
        has(
            &issues,
            &format!("{p}.priority"),
            "required",
            "cardinality-min"
        ),
        "{}",
        show(&issues)
    );
    assert!(
        has(&issues, &format!("{p}.intent"), "value", "fixed-value"),
        "{}",
        show(&issues)
    );
    assert!(
        has(
            &issues,
            &format!("{p}.category[0]"),
            "value",
            "pattern-value"
        ),
        "{}",
        show(&issues)
    );
    assert!(
        has(
            &issues,
            &format!("{p}.orderDetail"),
            "invalid",
            "cardinality-max"
        ),
        "{}",
        show(&issues)
    );
    assert!(
        issues
            .iter()
            .all(|i| !i.is_error() || i.profile.as_deref() == Some(SR)),
        "{}",
        show(&issues)
    );
}

#[test]
fn slices() {
    let mut b = bundle();
    b["entry"][0]["resource"]["identifier"] =
        json!([{"system": "https://example.org/other", "value": "1"}]);
    b["entry"][1]["resource"]["identifier"] = json!([{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9000000001"}, {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9000000009"}]);
    let issues = check(&b);
    assert!(
        has(
            &issues,
            "Bundle.entry[0].resource.identifier",
            "required",
            "slice-cardinality-min"
        ),
        "{}",
        show(&issues)
    );
    assert!(
        has(
            &issues,
            "Bundle.entry[1].resource.identifier",
            "invalid",
            "slice-cardinality-max"
        ),
        "{}",
        show(&issues)
    );
    assert!(
        has(
            &issues,
            "Bundle.entry[1].resource.identifier[0]",
            "invariant",
            "sp-nhs-1"
        ),
        "{}",
        show(&issues)
    );
}

#[test]
fn bindings_and_extensions() {
    let mut b = bundle();
    let sr = &mut b["entry"][0]["resource"];
    sr["code"] =
        json!({"coding": [{"system": "https://example.org/CodeSystem/test-sp", "code": "other"}]});
    sr["extension"] = json!([{"url": "https://example.org/StructureDefinition/Test-Urgency", "valueCode": "soon"}]);
    let issues = check(&b);
    let p = "Bundle.entry[0].resource";
    // Extensible (FHIR R4 terminologies.html): another code is allowed when none in the set
    // fits, so a code outside the set is a warning, even from a system the set draws on.
    assert!(
        issues.iter().any(|i| i.expression == format!("{p}.code")
            && i.message_id == "binding-extensible"
            && i.severity == sp_validator::Severity::Warning),
        "{}",
        show(&issues)
    );
    assert!(
        !errors(&issues)
            .iter()
            .any(|i| i.expression == format!("{p}.code")),
        "{}",
        show(&issues)
    );
    assert!(
        has(
            &issues,
            &format!("{p}.extension[0].valueCode"),
            "code-invalid",
            "binding-required"
        ),
        "{}",
        show(&issues)
    );

    let sr = &mut b["entry"][0]["resource"];
    sr["code"] = json!({"coding": [{"system": "https://example.org/CodeSystem/test-sp", "code": "sp-walk"}]});
    sr["extension"] = json!([{"url": "https://example.org/StructureDefinition/Test-Urgency", "valueString": "urgent"}]);
    let issues = check(&b);
    assert!(
        errors(&issues)
            .iter()
            .all(|i| i.expression.starts_with(&format!("{p}.extension[0]"))),
        "{}",
        show(&issues)
    );
    assert!(
        has(
            &issues,
            &format!("{p}.extension[0].valueString"),
            "invalid",
            "type-not-allowed"
        ),
        "{}",
        show(&issues)
    );
    sr_ext_without_value(&mut b);
}

fn sr_ext_without_value(b: &mut Value) {
    let p = "Bundle.entry[0].resource";
    b["entry"][0]["resource"]["extension"] = json!([{"url": "https://example.org/StructureDefinition/Test-Urgency", "extension": [{"url": "x", "valueCode": "y"}]}]);
    let issues = check(b);
    assert!(
        has(
            &issues,
            &format!("{p}.extension[0].value[x]"),
            "required",
            "cardinality-min"
        ),
        "{}",
        show(&issues)
    );
    assert!(
        has(
            &issues,
            &format!("{p}.extension[0].extension"),
            "invalid",
            "cardinality-max"
        ),
        "{}",
        show(&issues)
    );
}

#[test]
fn native_constraints() {
    let mut b = bundle();
    let sr = &mut b["entry"][0]["resource"];
    sr["authoredOn"] = json!("2999-01-01");
    sr["subject"] = json!({"reference": "Patient/missing"});
    sr["supportingInfo"] = json!([{"reference": "urn:uuid:4f0b7c1e-3d1a-4c8e-9f0a-2b6f3c9d1e04"}]);
    sr["requester"] = json!({"reference": "urn:uuid:4f0b7c1e-3d1a-4c8e-9f0a-2b6f3c9d1e02"});
    let issues = check(&b);
    let p = "Bundle.entry[0].resource";
    assert!(
        has(&issues, &format!("{p}.authoredOn"), "invariant", "sp-sr-1"),
        "{}",
        show(&issues)
    );
    assert!(
        has(
            &issues,
            &format!("{p}.supportingInfo"),
            "invariant",
            "sp-sr-2"
        ),
        "{}",
        show(&issues)
    );
    assert!(
        has(&issues, &format!("{p}.requester"), "invariant", "sp-sr-3"),
        "{}",
        show(&issues)
    );
    assert!(
        has(&issues, &format!("{p}.subject"), "not-found", "sp-sr-4"),
        "{}",
        show(&issues)
    );
}

#[test]
fn contained_resolution_and_logical_ods() {
    let mut sr = load("peers/valid-servicerequest.json");
    sr["contained"] = json!([
        {"resourceType": "Patient", "id": "p", "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9000000009"}],
         "name": [{"family": "Example"}], "birthDate": "1980-01-01"},
        {"resourceType": "Consent", "id": "c", "status": "active",
         "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
         "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
         "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]}}
    ]);
    sr["subject"] = json!({"reference": "#p"});
    sr["supportingInfo"] = json!([{"reference": "#c"}]);
    sr["requester"] = json!({"identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "A81001"}});
    let issues = check(&sr);
    assert!(errors(&issues).is_empty(), "{}", show(&issues));
}

#[test]
fn meta_profile_and_root_profiles() {
    let mut pat = load("bundles/referral-transaction.json")["entry"][1]["resource"].clone();
    pat.as_object_mut().unwrap().remove("birthDate");
    // Not applied without configuration...
    let plain = validator().validate(&pat, &Options::default());
    assert!(errors(&plain).is_empty(), "{}", show(&plain));
    // ...but applied when declared, and when asked for explicitly.
    pat["meta"] = json!({"profile": [PAT, "https://example.org/unknown-profile"]});
    let issues = validator().validate(&pat, &Options::default());
    assert!(
        has(&issues, "Patient.birthDate", "required", "cardinality-min"),
        "{}",
        show(&issues)
    );
    assert!(issues
        .iter()
        .any(|i| i.message_id == "unknown-profile" && i.expression == "Patient.meta.profile[1]"));
    pat.as_object_mut().unwrap().remove("meta");
    let issues = validator().validate(
        &pat,
        &Options {
            profiles_by_type: &[],
            root_profiles: &[PAT],
        },
    );
    assert!(
        has(&issues, "Patient.birthDate", "required", "cardinality-min"),
        "{}",
        show(&issues)
    );
}

#[test]
fn extension_context() {
    let mut b = bundle();
    b["entry"][1]["resource"]["extension"] = json!([{"url": "https://example.org/StructureDefinition/Test-Urgency", "valueCode": "routine"}]);
    b["entry"][0]["resource"]["extension"] = json!([{"url": "https://example.org/StructureDefinition/Test-Urgency", "valueCode": "routine"}]);
    let issues = check(&b);
    assert!(
        has(
            &issues,
            "Bundle.entry[1].resource.extension[0]",
            "invalid",
            "extension-context"
        ),
        "{}",
        show(&issues)
    );
    assert!(
        !issues
            .iter()
            .any(|i| i.message_id == "extension-context"
                && i.expression.starts_with("Bundle.entry[0]")),
        "{}",
        show(&issues)
    );
}

/// Additional bindings (R5 `binding.additional` through the R4 cross-version extension):
/// `required` is checked as a required binding, `extensible` as an extensible one, and one
/// limited to a `usage` context is not checked.
#[test]
fn additional_bindings() {
    let additional = |purpose: &str, usage: bool| {
        let mut parts = vec![
            json!({"url": "purpose", "valueCode": purpose}),
            json!({"url": "valueSet", "valueCanonical": "https://example.org/ValueSet/colours"}),
        ];
        if usage {
            parts.push(json!({"url": "usage", "valueUsageContext": {"code": {"code": "focus"}, "valueCodeableConcept": {"text": "x"}}}));
        }
        json!({
            "url": "http://hl7.org/fhir/5.0/StructureDefinition/extension-ElementDefinition.binding.additional",
            "extension": parts
        })
    };
    let run = |purpose: &str, usage: bool, code: &str| {
        let profile = json!({
            "resourceType": "StructureDefinition",
            "url": "https://example.org/StructureDefinition/additional",
            "name": "Additional", "status": "active", "kind": "resource", "abstract": false,
            "type": "Observation",
            "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Observation",
            "derivation": "constraint",
            "differential": {"element": [{
                "id": "Observation.code", "path": "Observation.code",
                "binding": {"strength": "example", "valueSet": "https://example.org/ValueSet/any",
                            "extension": [additional(purpose, usage)]}
            }]}
        });
        let vs = json!({
            "resourceType": "ValueSet", "url": "https://example.org/ValueSet/colours",
            "status": "active",
            "compose": {"include": [{"system": "https://example.org/colours", "concept": [{"code": "red"}]}]}
        });
        let v = Validator::with_extra(vec![profile, vs]).expect("loads");
        let obs = json!({
            "resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "https://example.org/colours", "code": code}]}
        });
        v.validate(
            &obs,
            &Options {
                profiles_by_type: &[],
                root_profiles: &["https://example.org/StructureDefinition/additional"],
            },
        )
    };
    let issues = run("required", false, "blue");
    assert!(
        has(
            &issues,
            "Observation.code",
            "code-invalid",
            "binding-required"
        ),
        "{}",
        show(&issues)
    );
    assert!(errors(&run("required", false, "red")).is_empty());
    assert!(errors(&run("maximum", false, "blue")).len() == 1);
    let issues = run("extensible", false, "blue");
    assert!(errors(&issues).is_empty(), "{}", show(&issues));
    assert!(issues.iter().any(|i| i.message_id == "binding-extensible"));
    assert!(errors(&run("required", true, "blue")).is_empty());
    assert!(errors(&run("candidate", false, "blue")).is_empty());
}

/// A type listing several profiles asks the value to conform to one of them.
#[test]
fn a_choice_of_type_profiles() {
    let name_profile = |id: &str, rule: &str| {
        json!({
            "resourceType": "StructureDefinition",
            "url": format!("https://example.org/StructureDefinition/{id}"),
            "name": id, "status": "active", "kind": "complex-type", "abstract": false,
            "type": "HumanName",
            "baseDefinition": "http://hl7.org/fhir/StructureDefinition/HumanName",
            "derivation": "constraint",
            "differential": {"element": [{
                "id": "HumanName", "path": "HumanName",
                "constraint": [{"key": id, "severity": "error", "human": rule, "expression": rule}]
            }]}
        })
    };
    let patient = json!({
        "resourceType": "StructureDefinition",
        "url": "https://example.org/StructureDefinition/named",
        "name": "Named", "status": "active", "kind": "resource", "abstract": false,
        "type": "Patient",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient",
        "derivation": "constraint",
        "differential": {"element": [{
            "id": "Patient.name", "path": "Patient.name",
            "type": [{"code": "HumanName", "profile": [
                "https://example.org/StructureDefinition/by-family",
                "https://example.org/StructureDefinition/by-given"
            ]}]
        }]}
    });
    let v = Validator::with_extra(vec![
        patient,
        name_profile("by-family", "family.exists()"),
        name_profile("by-given", "given.exists()"),
    ])
    .expect("loads");
    let run = |name: Value| {
        v.validate(
            &json!({"resourceType": "Patient", "name": [name]}),
            &Options {
                profiles_by_type: &[],
                root_profiles: &["https://example.org/StructureDefinition/named"],
            },
        )
    };
    let issues = run(json!({"family": "Jones"}));
    assert!(errors(&issues).is_empty(), "{}", show(&issues));
    let issues = run(json!({"text": "Jones"}));
    assert!(
        has(&issues, "Patient.name[0]", "structure", "profile-no-match"),
        "{}",
        show(&issues)
    );
    let issues = run(json!({"family": "Jones", "given": ["Ann"]}));
    assert!(errors(&issues).is_empty(), "{}", show(&issues));
    assert!(issues
        .iter()
        .any(|i| i.message_id == "profile-several-matches"));
}
