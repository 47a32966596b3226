//! How a directory service answers referrals made through the gateway, on its HealthcareService:
//! five referrals to the knitting group, four accepted and one declined by its organisation,
//! give the `service-responsiveness` extension (in a search and on a read); four referrals to
//! the Welsh advice service give none. The figures are the gateway's own records, computed
//! beside the search index (here on the operator's refresh), never per search.

mod common;

use common::*;
use serde_json::{json, Value};

const FEEDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/directory");
const KNIT: &str = "f80b822c-7172-5b8d-9f63-72b7f1989394";
const KNIT_TOKEN: &str = "demo-vcs-knit-natter";
const ADVICE: &str = "c7522fc5-e59b-5e8c-a07a-8de70c3eee55";
const ADVICE_TOKEN: &str = "demo-vcs-cyngor";
const RESPONSIVENESS: &str =
    "https://fhir.sp-gateway.uk/StructureDefinition/service-responsiveness";

/// Refers to the service and answers the referral as its organisation (`None`: no answer).
fn refer_and_answer(gateway: &Gateway, n: usize, service: &str, token: &str, answer: Option<&str>) {
    let mut referral = contained_referral(&format!("RESP-{service}-{n}"));
    referral["performer"] = json!([{"reference": format!("HealthcareService/{service}")}]);
    let (status, created) = send(gateway.post_json("/fhir/ServiceRequest", &referral));
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id");
    if let Some(answer) = answer {
        let (status, body) = send(
            gateway
                .http
                .post(gateway.url(&format!("/vcs/v1/referrals/{id}/status")))
                .bearer_auth(token)
                .json(
                    &json!({"status": answer, "occurred_at": "2026-12-01T10:00:00Z",
                              "reason": "the test says so"}),
                ),
        );
        assert_eq!(status, 200, "{body}");
    }
}

fn figures(service: &Value) -> Option<Value> {
    service["extension"]
        .as_array()?
        .iter()
        .find(|e| e["url"] == RESPONSIVENESS)
        .cloned()
}

fn part(figures: &Value, url: &str) -> Value {
    figures["extension"]
        .as_array()
        .and_then(|parts| parts.iter().find(|p| p["url"] == url))
        .cloned()
        .unwrap_or(Value::Null)
}

#[test]
fn five_referrals_show_how_a_service_answers_and_four_do_not() {
    let gateway = Gateway::start();
    gateway.import_directory(&[FEEDS]);
    for (n, answer) in ["accepted", "accepted", "declined", "accepted", "accepted"]
        .into_iter()
        .enumerate()
    {
        refer_and_answer(&gateway, n, KNIT, KNIT_TOKEN, Some(answer));
    }
    for n in 0..4 {
        refer_and_answer(&gateway, n, ADVICE, ADVICE_TOKEN, Some("accepted"));
    }
    let (status, refreshed) = gateway.admin_post("/admin/v1/directory/refresh");
    assert_eq!(status, 200, "{refreshed}");
    assert_eq!(refreshed["services_with_responsiveness"], 1, "{refreshed}");

    // In a search: the knitting group carries its figures.
    let (status, bundle) = send(gateway.get("/fhir/HealthcareService?name=knit"));
    assert_eq!(status, 200, "{bundle}");
    let knit = &bundle["entry"][0]["resource"];
    assert_eq!(knit["id"], KNIT);
    let shown = figures(knit).unwrap_or_else(|| panic!("figures on {knit}"));
    assert_eq!(part(&shown, "referrals")["valueUnsignedInt"], 5, "{shown}");
    assert_eq!(
        part(&shown, "shareAccepted")["valueDecimal"],
        0.8,
        "{shown}"
    );
    // Every referral was answered within the test's seconds: a median of 0.0 days.
    assert_eq!(
        part(&shown, "medianDaysToFirstResponse")["valueDecimal"],
        0.0,
        "{shown}"
    );
    assert!(
        part(&shown, "period")["valuePeriod"]["start"].is_string(),
        "{shown}"
    );
    // And on a read.
    let (_, read) = send(gateway.get(&format!("/fhir/HealthcareService/{KNIT}")));
    assert_eq!(figures(&read), Some(shown));

    // Four referrals stand behind the advice service: no figures.
    let (_, advice) = send(gateway.get(&format!("/fhir/HealthcareService/{ADVICE}")));
    assert_eq!(advice["id"], ADVICE);
    assert_eq!(figures(&advice), None, "{advice}");
    let (_, bundle) = send(gateway.get("/fhir/HealthcareService?service-category=money-and-debt"));
    let listed = bundle["entry"][0]["resource"].clone();
    assert_eq!(listed["id"], ADVICE, "{bundle}");
    assert_eq!(figures(&listed), None);

    // A fifth referral to it, not answered yet: figures with no median, nothing accepted of it.
    refer_and_answer(&gateway, 4, ADVICE, ADVICE_TOKEN, None);
    gateway.admin_post("/admin/v1/directory/refresh");
    let (_, advice) = send(gateway.get(&format!("/fhir/HealthcareService/{ADVICE}")));
    let shown = figures(&advice).unwrap_or_else(|| panic!("figures on {advice}"));
    assert_eq!(part(&shown, "referrals")["valueUnsignedInt"], 5);
    assert_eq!(part(&shown, "shareAccepted")["valueDecimal"], 0.8);
    assert_eq!(
        part(&shown, "medianDaysToFirstResponse")["valueDecimal"],
        0.0
    );
}
