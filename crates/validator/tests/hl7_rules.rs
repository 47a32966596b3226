//! Rules the HL7 Java validator checks beyond the R4 invariants, on small instances:
//! references inside a Bundle or Parameters, displays, MeasureReport against its Measure,
//! SearchParameter and CapabilityStatement rules, a StructureDefinition's differential
//! against its base (CONFORMANCE.md lists them).

mod common;

use common::{show, validate};
use serde_json::{json, Value};
use sp_validator::{Issue, Options, Validator};

/// The message ids of the errors.
fn error_ids(issues: &[Issue]) -> Vec<&'static str> {
    issues
        .iter()
        .filter(|i| i.is_error())
        .map(|i| i.message_id)
        .collect()
}

fn observation(id: &str, version: &str) -> Value {
    json!({"fullUrl": format!("http://x.org/Observation/{id}"),
        "resource": {"resourceType": "Observation", "id": id, "meta": {"versionId": version},
            "status": "final", "code": {"text": "t"}}})
}

fn document(entries: &[&str]) -> Value {
    let refs: Vec<Value> = entries.iter().map(|r| json!({"reference": r})).collect();
    json!({"resourceType": "Bundle", "type": "document",
    "identifier": {"system": "urn:ietf:rfc:3986", "value": "urn:uuid:395f6185-1a1d-4c3f-83ba-05e7148cd46d"},
    "timestamp": "2024-12-01T10:00:00Z",
    "entry": [
        {"fullUrl": "http://x.org/Composition/c", "resource": {"resourceType": "Composition",
            "id": "c", "status": "final", "type": {"text": "note"}, "date": "2024-12-01",
            "author": [{"display": "A"}], "title": "T", "section": [{"entry": refs}]}},
        observation("o", "1"),
        observation("o", "2")
    ]})
}

#[test]
fn versioned_references_in_a_document_resolve_to_their_version() {
    let good = validate(&document(&[
        "Observation/o/_history/1",
        "Observation/o/_history/2",
    ]));
    assert!(error_ids(&good).is_empty(), "{}", show(&good));
    let bad = validate(&document(&["Observation/o/_history/3", "Observation/o"]));
    let ids = error_ids(&bad);
    // Not found (version 3), and the unversioned one matches both versions: ambiguous
    // as a reference, and not one entry as a section entry.
    assert_eq!(
        ids.iter()
            .filter(|i| **i == "bundle-document-reference")
            .count(),
        2,
        "{}",
        show(&bad)
    );
    assert!(ids.contains(&"reference-ambiguous"), "{}", show(&bad));
}

#[test]
fn references_between_parameters_must_resolve_when_asked() {
    let params = json!({"resourceType": "Parameters", "parameter": [
        {"name": "p", "resource": {"resourceType": "Patient", "id": "1"}},
        {"name": "c", "resource": {"resourceType": "Coverage", "id": "c", "status": "active",
            "beneficiary": {"reference": "Patient/2"}, "payor": [{"reference": "Patient/1"}]}}
    ]});
    let lenient = Validator::bundled().expect("bundled definitions load");
    assert!(error_ids(&lenient.validate(&params, &Options::default())).is_empty());
    let strict = Validator::bundled()
        .expect("bundled definitions load")
        .check_references_exist(true);
    let issues = strict.validate(&params, &Options::default());
    let found: Vec<&Issue> = issues
        .iter()
        .filter(|i| i.message_id == "reference-not-found")
        .collect();
    assert_eq!(found.len(), 1, "{}", show(&issues));
    assert_eq!(
        found[0].expression,
        "Parameters.parameter[1].resource.beneficiary"
    );
}

#[test]
fn displays_of_embedded_code_systems_are_checked() {
    let obs = |system: &str, code: &str, display: &str| {
        json!({"resourceType": "Observation", "status": "final", "code": {"text": "t"},
            "valueCodeableConcept": {"coding": [{"system": system, "code": code, "display": display}]}})
    };
    let gender = "http://hl7.org/fhir/administrative-gender";
    assert!(error_ids(&validate(&obs(gender, "male", "Male"))).is_empty());
    // Case and runs of white space do not matter.
    assert!(error_ids(&validate(&obs(gender, "male", " male "))).is_empty());
    let issues = validate(&obs(gender, "male", "Female"));
    assert_eq!(error_ids(&issues), ["coding-display"], "{}", show(&issues));
    let iso = "urn:iso:std:iso:3166";
    assert!(error_ids(&validate(&obs(iso, "BD", "Bangladesh"))).is_empty());
    assert!(error_ids(&validate(&obs(iso, "GBR", "United Kingdom"))).is_empty());
    let issues = validate(&obs(iso, "BD", "Australia"));
    assert_eq!(error_ids(&issues), ["coding-display"], "{}", show(&issues));
    // A code system we do not hold: displays are not checked.
    assert!(error_ids(&validate(&obs("http://loinc.org", "1-8", "Anything"))).is_empty());
}

#[test]
fn a_measure_report_follows_its_measure() {
    let measure = json!({"resourceType": "Measure", "url": "http://x.org/Measure/m", "status": "active",
        "scoring": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/measure-scoring", "code": "cohort"}]},
        "group": [{"population": [{"code": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/measure-population", "code": "initial-population"}]}}],
            "stratifier": [{"id": "s1", "code": {"text": "age"}}]}]});
    let v = Validator::with_extra(vec![measure]).expect("definitions load");
    let report = |group: Value| {
        json!({"resourceType": "MeasureReport", "status": "complete", "type": "summary",
            "measure": "http://x.org/Measure/m", "period": {"start": "2024-01-01"}, "group": [group]})
    };
    let population = json!([{"code": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/measure-population", "code": "initial-population"}]}, "count": 3}]);
    // The stratifier has no code to match the Measure's by (codes are compared by
    // coding): it is unknown, and the Measure's is missing; a cohort has no score.
    let issues = v.validate(
        &report(
            json!({"population": population, "measureScore": {"value": 1},
            "stratifier": [{"code": [{"text": "age"}]}]}),
        ),
        &Options::default(),
    );
    let msgs: Vec<&str> = issues
        .iter()
        .filter(|i| i.message_id == "measure-report")
        .map(|i| i.expression.as_str())
        .collect();
    assert_eq!(
        msgs,
        [
            "MeasureReport.group[0].stratifier[0]",
            "MeasureReport.group[0]",
            "MeasureReport.group[0].measureScore"
        ],
        "{}",
        show(&issues)
    );
}

#[test]
fn search_parameters_against_the_core_ones() {
    let sp = |base: &str, t: &str, expr: &str| {
        json!({"resourceType": "SearchParameter", "url": "http://x.org/SearchParameter/s",
            "name": "s", "status": "active", "description": "d", "code": "name",
            "derivedFrom": "http://hl7.org/fhir/SearchParameter/Organization-name",
            "base": [base], "type": t, "expression": expr})
    };
    let good = validate(&sp(
        "Organization",
        "string",
        "Organization.name | Organization.alias",
    ));
    assert!(error_ids(&good).is_empty(), "{}", show(&good));
    let issues = validate(&sp("Patient", "token", "Organization.name"));
    let mut ids = error_ids(&issues);
    ids.sort_unstable();
    assert_eq!(
        ids,
        [
            "search-param-base",
            "search-param-expression",
            "search-param-type"
        ],
        "{}",
        show(&issues)
    );
    let cs = json!({"resourceType": "CapabilityStatement", "status": "active", "date": "2024-01-01",
        "kind": "instance", "fhirVersion": "4.0.1", "format": ["json"],
        "implementation": {"description": "x"},
        "rest": [{"mode": "server", "resource": [{"type": "AllergyIntolerance", "searchParam": [
            {"name": "clinical-status", "type": "date",
             "definition": "http://hl7.org/fhir/SearchParameter/AllergyIntolerance-clinical-status"}]}]}]});
    let issues = validate(&cs);
    assert_eq!(
        error_ids(&issues),
        ["capability-search-param-type"],
        "{}",
        show(&issues)
    );
}

/// A `constraint` StructureDefinition on Extension with `elements` as its differential.
fn extension_profile(url: &str, base: &str, elements: Value) -> Value {
    json!({"resourceType": "StructureDefinition", "url": url, "name": "Ext",
        "status": "draft", "fhirVersion": "4.0.1", "kind": "complex-type", "abstract": false,
        "context": [{"type": "element", "expression": "Element"}], "type": "Extension",
        "baseDefinition": base, "derivation": "constraint",
        "differential": {"element": elements}})
}

#[test]
fn a_structure_definition_differential_against_its_base() {
    let base_url = "http://x.org/StructureDefinition/ext-base";
    let fixed_url = |url: &str| {
        json!([{"id": "Extension.url", "path": "Extension.url", "fixedUri": url},
            {"id": "Extension.value[x]", "path": "Extension.value[x]", "type": [{"code": "string"}]}])
    };
    let core = "http://hl7.org/fhir/StructureDefinition/Extension";
    let base = extension_profile(base_url, core, fixed_url(base_url));
    let v = Validator::with_extra(vec![base.clone()]).expect("definitions load");
    let run = |sd: &Value| v.validate(sd, &Options::default());
    // The base itself, on core Extension, is fine; so is a profile keeping its url.
    let issues = run(&base);
    assert!(error_ids(&issues).is_empty(), "{}", show(&issues));
    let same = extension_profile(
        "http://x.org/StructureDefinition/same",
        base_url,
        fixed_url(base_url),
    );
    let issues = run(&same);
    assert!(error_ids(&issues).is_empty(), "{}", show(&issues));
    // Fixing another url contradicts the base's fixed value.
    let derived = "http://x.org/StructureDefinition/ext-derived";
    let issues = run(&extension_profile(derived, base_url, fixed_url(derived)));
    assert_eq!(
        error_ids(&issues),
        ["sd-differential-fixed"],
        "{}",
        show(&issues)
    );
    // A choice element named by one of its types is an element of the base; a made-up
    // name is not.
    let obs = |path: &str| {
        json!({"resourceType": "StructureDefinition", "url": "http://x.org/StructureDefinition/o",
            "name": "O", "status": "draft", "fhirVersion": "4.0.1", "kind": "resource",
            "abstract": false, "type": "Observation", "derivation": "constraint",
            "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Observation",
            "differential": {"element": [{"id": path, "path": path, "min": 1}]}})
    };
    for good in [
        "Observation.valueQuantity",
        "Observation.value[x]",
        "Observation.code.text",
    ] {
        let issues = run(&obs(good));
        assert!(error_ids(&issues).is_empty(), "{good}: {}", show(&issues));
    }
    let issues = run(&obs("Observation.valueBla"));
    assert_eq!(
        error_ids(&issues),
        ["sd-differential-path"],
        "{}",
        show(&issues)
    );
}
