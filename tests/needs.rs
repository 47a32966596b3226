//! Real GP referrals: a need coded with any well-formed SNOMED CT concept is accepted, with a
//! warning when the code is outside `sp-referral-need` (an extensible binding), and the
//! organisation receives every need as sent, with its category where we know it.

mod common;

use common::*;
use serde_json::Value;

const CYNGOR_TOKEN: &str = "demo-vcs-cyngor";
const CARERS_TOKEN: &str = "demo-vcs-carers-count";

fn fixture(name: &str) -> Value {
    let path = format!("{}/fixtures/needs/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("JSON")
}

fn create(gateway: &Gateway, body: &Value) -> (u16, Value, String) {
    let response = gateway
        .http
        .post(gateway.url("/fhir/ServiceRequest"))
        .bearer_auth(OTHER_GP_TOKEN)
        .header("content-type", FHIR_JSON)
        .body(body.to_string())
        .header("prefer", "return=OperationOutcome")
        .send()
        .expect("create");
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = response.json().unwrap_or(Value::Null);
    (status, body, location)
}

fn record(gateway: &Gateway, token: &str, location: &str) -> Value {
    let id = location
        .trim_start_matches("/fhir/ServiceRequest/")
        .split('/')
        .next()
        .unwrap_or_default();
    let (status, body) = send(
        gateway
            .http
            .get(gateway.url(&format!("/vcs/v1/referrals/{id}")))
            .bearer_auth(token),
    );
    assert_eq!(status, 200, "{body}");
    body["record"].clone()
}

#[test]
fn a_snomed_need_outside_the_value_set_is_accepted_with_a_warning_and_reaches_the_organisation() {
    let gateway = Gateway::start();
    let (status, outcome, location) = create(&gateway, &fixture("code-outside-value-set"));
    assert_eq!(status, 201, "{outcome}");
    let warning = outcome["issue"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["details"]["coding"][0]["code"] == "binding-extensible")
        .unwrap_or_else(|| panic!("no binding warning: {outcome}"));
    assert_eq!(warning["severity"], "warning");
    // The narrative advice (dom-6) is not a warning on every referral: nobody reads it here.
    let narrative = outcome["issue"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["details"]["coding"][0]["code"] == "dom-6")
        .unwrap_or_else(|| panic!("dom-6 is still reported: {outcome}"));
    assert_eq!(narrative["severity"], "information");
    assert_eq!(warning["expression"][0], "ServiceRequest.reasonCode[0]");
    assert!(
        warning["diagnostics"]
            .as_str()
            .is_some_and(|d| d.contains("https://fhir.sp-gateway.uk/ValueSet/sp-referral-need")),
        "{warning}"
    );
    let need = &record(&gateway, CARERS_TOKEN, &location)["needs"][0];
    assert_eq!(need["system"], "http://snomed.info/sct");
    assert_eq!(need["code"], "224299000");
    assert_eq!(need["codings"][0]["display"], "Received higher education");
    assert_eq!(
        need["display"],
        "Would like to volunteer using her teaching experience"
    );
    assert_eq!(need["category"], Value::Null);
}

#[test]
fn a_need_in_the_vocabulary_carries_its_category_and_a_local_code_is_kept() {
    let gateway = Gateway::start();
    let (status, outcome, location) = create(&gateway, &fixture("social-isolation-coded"));
    assert_eq!(status, 201, "{outcome}");
    assert!(
        !outcome.to_string().contains("binding-extensible"),
        "a code in the value set needs no warning: {outcome}"
    );
    let need = &record(&gateway, "demo-vcs-knit-natter", &location)["needs"][0];
    assert_eq!(need["code"], "422650009");
    assert_eq!(need["display"], "Social isolation");
    assert_eq!(need["category"], "social-connection");

    let (status, outcome, location) = create(&gateway, &fixture("local-code-beside-snomed"));
    assert_eq!(status, 201, "{outcome}");
    let need = &record(&gateway, CYNGOR_TOKEN, &location)["needs"][0];
    assert_eq!(need["code"], "11403006", "SNOMED CT is the main code");
    assert_eq!(need["category"], "money-and-debt");
    assert_eq!(need["codings"][0]["code"], "EMISNQ-DEBT");
    assert_eq!(need["codings"].as_array().map(Vec::len), Some(2));
}

#[test]
fn a_coding_without_a_system_is_still_refused() {
    let gateway = Gateway::start();
    let mut body = fixture("social-isolation-coded");
    body["reasonCode"][0]["coding"][0]
        .as_object_mut()
        .expect("coding")
        .remove("system");
    let (status, outcome, _) = create(&gateway, &body);
    assert_eq!(status, 422, "{outcome}");
    let expressions: Vec<String> = issue_expressions(&outcome)
        .into_iter()
        .map(|(_, _, e)| e)
        .collect();
    assert!(
        expressions
            .iter()
            .any(|e| e == "ServiceRequest.reasonCode[0].coding[0].system"),
        "{outcome}"
    );
}
