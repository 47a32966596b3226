//! Structural rules and hostile input.

mod common;

use common::{errors, load, show, validate};
use serde_json::{json, Value};

fn has(issues: &[sp_validator::Issue], expr: &str, code: &str) -> bool {
    issues
        .iter()
        .any(|i| i.expression == expr && i.code.as_str() == code && i.is_error())
}

#[test]
fn not_a_resource() {
    for v in [
        json!([1, 2]),
        json!("x"),
        json!(null),
        json!({}),
        json!({"resourceType": 5}),
    ] {
        let issues = validate(&v);
        assert!(
            issues.iter().any(|i| i.code.as_str() == "structure"),
            "{v}: {}",
            show(&issues)
        );
    }
    let issues = validate(&json!({"resourceType": "Banana"}));
    assert!(
        has(&issues, "Resource.resourceType", "structure"),
        "{}",
        show(&issues)
    );
}

#[test]
fn known_type_without_definition_is_a_warning() {
    let issues = validate(&json!({"resourceType": "Medication", "id": "m"}));
    assert!(errors(&issues).is_empty(), "{}", show(&issues));
    assert!(!issues.is_empty());
}

#[test]
fn contained_and_bundle_paths() {
    let mut sr = load("peers/valid-servicerequest.json");
    sr["contained"] = json!([{"resourceType": "Patient", "id": "p1", "name": [{"family": 1}]}]);
    sr["subject"] = json!({"reference": "#p1"});
    let issues = validate(&sr);
    assert!(
        has(
            &issues,
            "ServiceRequest.contained[0].name[0].family",
            "structure"
        ),
        "{}",
        show(&issues)
    );

    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:c757873d-ec9a-4326-a141-556f43239520", "resource": {"resourceType": "Patient", "gender": "cat"},
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "ServiceRequest", "status": "active", "intent": "order"},
         "request": {"method": "POST", "url": "ServiceRequest"}}
    ]});
    let issues = validate(&bundle);
    assert!(
        has(&issues, "Bundle.entry[0].resource.gender", "code-invalid"),
        "{}",
        show(&issues)
    );
    assert!(
        has(&issues, "Bundle.entry[1].resource.subject", "required"),
        "{}",
        show(&issues)
    );
}

#[test]
fn choice_types_and_primitive_extensions() {
    let mut obs = load("peers/valid-observation.json");
    obs["valueInteger"] = json!("7");
    let issues = validate(&obs);
    assert!(
        has(&issues, "Observation.valueInteger", "structure"),
        "{}",
        show(&issues)
    );
    obs["valueInteger"] = json!(7);
    obs["valueFoo"] = json!(7);
    let issues = validate(&obs);
    assert!(
        has(&issues, "Observation.valueFoo", "structure"),
        "{}",
        show(&issues)
    );

    let mut sr = load("peers/valid-servicerequest.json");
    sr["_status"] = json!({"extension": [{"url": "http://example.org/x", "valueString": "y"}]});
    sr["_foo"] = json!({});
    let issues = validate(&sr);
    assert!(
        has(&issues, "ServiceRequest._foo", "structure"),
        "{}",
        show(&issues)
    );
    assert_eq!(errors(&issues).len(), 1, "{}", show(&issues));
}

#[test]
fn reference_target_type() {
    let mut sr = load("peers/valid-servicerequest.json");
    sr["subject"] = json!({"reference": "Organization/x"});
    let issues = validate(&sr);
    assert!(
        has(&issues, "ServiceRequest.subject.reference", "invalid"),
        "{}",
        show(&issues)
    );
    for good in [
        "#",
        "urn:uuid:c757873d-ec9a-4326-a141-556f43239520",
        "https://x.org/fhir/Patient/1",
        "Patient?identifier=a|b",
    ] {
        sr["subject"] = json!({ "reference": good });
        let issues = validate(&sr);
        assert!(errors(&issues).is_empty(), "{good}: {}", show(&issues));
    }
}

/// Without `assume_valid_rest_references`, only references that resolve have their target
/// type checked (the HL7 validator's default).
#[test]
fn reference_target_type_when_not_assuming_rest_references() {
    let v = sp_validator::Validator::bundled()
        .expect("bundled definitions")
        .assume_valid_rest_references(false);
    let opts = sp_validator::Options::default();
    let mut sr = load("peers/valid-servicerequest.json");
    sr["subject"] = json!({"reference": "Organization/x"});
    let issues = v.validate(&sr, &opts);
    assert!(errors(&issues).is_empty(), "{}", show(&issues));
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": "https://x.org/fhir/ServiceRequest/sr", "resource": sr},
            {"fullUrl": "https://x.org/fhir/Organization/x",
             "resource": {"resourceType": "Organization", "id": "x", "name": "X"}}
        ]
    });
    let issues = v.validate(&bundle, &opts);
    assert!(
        has(
            &issues,
            "Bundle.entry[0].resource.subject.reference",
            "invalid"
        ),
        "{}",
        show(&issues)
    );
}

#[test]
fn cardinality_and_arrays() {
    let mut sr = load("peers/valid-servicerequest.json");
    sr["identifier"] = json!({"value": "x"});
    sr["category"] = json!([]);
    let issues = validate(&sr);
    assert!(
        has(&issues, "ServiceRequest.identifier", "structure"),
        "{}",
        show(&issues)
    );
    assert!(
        has(&issues, "ServiceRequest.category", "structure"),
        "{}",
        show(&issues)
    );
    sr = load("peers/valid-servicerequest.json");
    sr["code"] = json!({});
    let issues = validate(&sr);
    assert!(
        has(&issues, "ServiceRequest.code", "invariant"),
        "{}",
        show(&issues)
    );
}

const DEPTH: usize = 2000;

#[test]
fn hostile_deep_nesting_and_huge_arrays() {
    // Built by hand: the JSON parser would refuse this depth.
    let mut ext = json!({"url": "http://x.org/e", "valueString": "v"});
    for _ in 0..DEPTH {
        // Not json!(): it would serialise `ext` recursively.
        let mut m = serde_json::Map::new();
        m.insert("url".into(), Value::String("http://x.org/e".into()));
        m.insert("extension".into(), Value::Array(vec![ext]));
        ext = Value::Object(m);
    }
    let mut m = serde_json::Map::new();
    m.insert("resourceType".into(), Value::String("Patient".into()));
    // contained makes dom-3 walk all descendants with FHIRPath.
    m.insert(
        "contained".into(),
        json!([{"resourceType": "Patient", "id": "c"}]),
    );
    m.insert("extension".into(), Value::Array(vec![ext]));
    let sr = Value::Object(m);
    let issues = validate(&sr);
    assert!(
        issues.iter().any(|i| i.message_id == "too-deep"),
        "{}",
        show(&issues)
    );
    // serde_json drops recursively; 2000 levels is within the test stack.

    let many: Vec<Value> = (0..100_000).map(|_| json!(1)).collect();
    let p = json!({"resourceType": "Patient", "identifier": many});
    let issues = validate(&p);
    assert!(issues.len() <= 501, "{}", issues.len());
    assert!(issues.iter().any(|i| i.message_id == "too-many-issues"));
}

/// The core extension definitions are known: a complex extension's sub-extensions must be
/// the ones it defines (plain names), its required ones present, and a core extension is
/// checked where its context allows it, also when the context names a data type's element.
#[test]
fn core_extension_definitions() {
    let mut patient = json!({
        "resourceType": "Patient",
        "extension": [{
            "url": "http://hl7.org/fhir/StructureDefinition/patient-animal",
            "extension": [{"url": "species", "valueCodeableConcept": {"text": "dog"}}]
        }],
        "name": [{"family": "Rex", "_family": {"extension": [{
            "url": "http://hl7.org/fhir/StructureDefinition/humanname-own-prefix",
            "valueString": "van"
        }]}}]
    });
    let issues = validate(&patient);
    assert!(errors(&issues).is_empty(), "{}", show(&issues));
    patient["extension"][0]["extension"][0]["url"] = json!("species-x");
    let issues = validate(&patient);
    assert!(
        has(&issues, "Patient.extension[0].extension[0]", "invalid"),
        "{}",
        show(&issues)
    );
    assert!(
        has(&issues, "Patient.extension[0].extension", "required"),
        "{}",
        show(&issues)
    );
    // patient-animal is for Patient only.
    let mut sr = load("peers/valid-servicerequest.json");
    sr["extension"] = json!([{
        "url": "http://hl7.org/fhir/StructureDefinition/patient-animal",
        "extension": [{"url": "species", "valueCodeableConcept": {"text": "dog"}}]
    }]);
    let issues = validate(&sr);
    assert!(
        has(&issues, "ServiceRequest.extension[0]", "invalid"),
        "{}",
        show(&issues)
    );
}

/// R4 observation-vitalsigns: an Observation with a vital-sign code must conform to the core
/// profile for it (the codes as the HL7 validator reads them, LOINC first, then SNOMED CT).
#[test]
fn vital_signs_profiles_apply_by_code() {
    let mut obs = json!({
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "vital-signs"
        }]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8310-5"}]},
        "subject": {"reference": "Patient/p"},
        "effectiveDateTime": "2024-05-01T09:50:00Z",
        "valueQuantity": {"value": 36.6, "unit": "C", "system": "http://unitsofmeasure.org", "code": "Cel"}
    });
    let issues = validate(&obs);
    assert!(errors(&issues).is_empty(), "{}", show(&issues));
    assert!(issues.iter().any(|i| i.message_id == "vital-signs-profile"));
    // The body temperature profile binds the unit to ucum-bodytemp.
    obs["valueQuantity"]["code"] = json!("kg");
    let issues = validate(&obs);
    assert!(
        has(&issues, "Observation.valueQuantity.code", "code-invalid"),
        "{}",
        show(&issues)
    );
    // A SNOMED CT body temperature still needs the LOINC code the profile requires.
    obs["valueQuantity"]["code"] = json!("Cel");
    obs["code"] = json!({"coding": [{"system": "http://snomed.info/sct", "code": "276885007"}]});
    let issues = validate(&obs);
    assert!(
        has(&issues, "Observation.code.coding", "required"),
        "{}",
        show(&issues)
    );
}
