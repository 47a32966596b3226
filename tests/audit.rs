//! "Who saw this person's record?" answered from AuditEvent for every path that returns patient
//! data: searches that do not name the patient, the VCS list, the operator's reads; and the
//! trail of Subscriptions and failed logins.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const VCS_TOKEN: &str = "demo-vcs-carers-count";

/// The AuditEvents the operator finds for `query` (`patient=…`, `entity=…`).
fn audit_events(gateway: &Gateway, query: &[(&str, &str)]) -> Vec<Value> {
    let mut pairs = form_urlencoded::Serializer::new(String::new());
    for (name, value) in query {
        pairs.append_pair(name, value);
    }
    pairs.append_pair("_count", "500");
    let (code, bundle) = gateway.admin_get(&format!("/fhir/AuditEvent?{}", pairs.finish()));
    assert_eq!(code, 200, "{bundle}");
    bundle["entry"]
        .as_array()
        .map(|entries| entries.iter().map(|e| e["resource"].clone()).collect())
        .unwrap_or_default()
}

fn actor(event: &Value) -> &str {
    event["agent"][0]["who"]["identifier"]["value"]
        .as_str()
        .unwrap_or("")
}

fn names(event: &Value, reference: &str) -> bool {
    event["entity"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|e| e["what"]["reference"] == reference)
}

/// The patient a stored referral is about (its Task is `for` them).
fn patient_of(gateway: &Gateway, referral: &str) -> String {
    let (_, tasks) = send(gateway.get(&format!("/fhir/Task?focus=ServiceRequest/{referral}")));
    tasks["entry"][0]["resource"]["for"]["reference"]
        .as_str()
        .and_then(|r| r.strip_prefix("Patient/"))
        .unwrap_or_else(|| panic!("a Task for a Patient: {tasks}"))
        .to_string()
}

/// A search that names no patient still names, in the trail, every patient it returned; and
/// so does the VCS organisation's list, once per referral.
#[test]
fn every_search_result_and_listed_referral_is_audited_by_patient() {
    let gateway = Gateway::start();
    let referrals = [gateway.refer("REF-AUDIT-1"), gateway.refer("REF-AUDIT-2")];
    let (code, found) = send(gateway.get("/fhir/ServiceRequest?_revinclude=Task:focus"));
    assert_eq!((code, found["total"].as_u64()), (200, Some(2)), "{found}");
    let (code, tasks) = send(gateway.get("/fhir/Task"));
    assert_eq!(code, 200, "{tasks}");
    let (code, listed) = send(
        gateway
            .http
            .get(gateway.url("/vcs/v1/referrals"))
            .bearer_auth(VCS_TOKEN),
    );
    assert_eq!(code, 200, "{listed}");
    for referral in &referrals {
        let patient = patient_of(&gateway, referral);
        let events = audit_events(&gateway, &[("patient", &patient)]);
        let searched = |who: &str, reference: &str| {
            events.iter().any(|e| {
                actor(e) == who
                    && e["subtype"][0]["code"] == "search-type"
                    && names(e, &format!("Patient/{patient}"))
                    && names(e, reference)
            })
        };
        let sr = format!("ServiceRequest/{referral}");
        assert!(
            searched("emis-demo", &sr),
            "the GP's search of {sr}: {events:?}"
        );
        let task = tasks["entry"]
            .as_array()
            .expect("Tasks")
            .iter()
            .map(|e| &e["resource"])
            .find(|t| t["focus"]["reference"] == sr.as_str())
            .expect("its Task");
        let task = format!("Task/{}", task["id"].as_str().expect("id"));
        assert!(
            searched("emis-demo", &task),
            "the GP's Task search: {events:?}"
        );
        assert!(
            searched("vcs:carers-count", &sr),
            "the organisation's list: {events:?}"
        );
    }
}

/// Subscriptions say where notifications about patients go: creating and deleting one is in the
/// trail, found by the Subscription.
#[test]
fn subscriptions_created_and_deleted_are_audited() {
    let gateway = Gateway::start();
    let subscription = serde_json::json!({
        "resourceType": "Subscription", "status": "requested", "reason": "Follow referrals",
        "criteria": "Task", "channel": {"type": "rest-hook", "endpoint": "https://gp.example/hook"}
    });
    let (code, created) = send(gateway.post_json("/fhir/Subscription", &subscription));
    assert_eq!(code, 201, "{created}");
    let id = created["id"].as_str().expect("id").to_string();
    let deleted = gateway
        .http
        .delete(gateway.url(&format!("/fhir/Subscription/{id}")))
        .bearer_auth(GP_TOKEN)
        .send()
        .expect("delete");
    assert_eq!(deleted.status().as_u16(), 204);
    let events = audit_events(&gateway, &[("entity", &format!("Subscription/{id}"))]);
    let actions: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (actor(e), e["action"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        actions,
        [("emis-demo", "C"), ("emis-demo", "D")],
        "{events:?}"
    );
}

/// The operator's reads of a referral's deliveries and of the audit trail are in the trail too.
#[test]
fn the_operators_reads_are_audited() {
    let gateway = Gateway::start();
    let referral = gateway.refer("REF-AUDIT-ADMIN");
    let patient = patient_of(&gateway, &referral);
    let (code, deliveries) =
        gateway.admin_get(&format!("/admin/v1/referrals/{referral}/deliveries"));
    assert_eq!(code, 200, "{deliveries}");
    let (code, listed) = gateway.admin_get("/admin/v1/deliveries");
    assert_eq!(code, 200, "{listed}");
    audit_events(&gateway, &[("patient", &patient)]);
    let events = audit_events(&gateway, &[("patient", &patient)]);
    let by_operator: Vec<&str> = events
        .iter()
        .filter(|e| actor(e) == "operator:admin")
        .filter_map(|e| e["subtype"][0]["code"].as_str())
        .collect();
    assert!(
        by_operator.contains(&"read") && by_operator.contains(&"search-type"),
        "{by_operator:?}"
    );
    let searched_trail = events.iter().any(|e| {
        actor(e) == "operator:admin"
            && e["subtype"][0]["code"] == "search-type"
            && !names(e, &format!("ServiceRequest/{referral}"))
    });
    assert!(searched_trail, "the audit search itself: {events:?}");
    let listed_referral = events.iter().any(|e| {
        actor(e) == "operator:admin"
            && e["subtype"][0]["code"] == "search-type"
            && names(e, &format!("ServiceRequest/{referral}"))
    });
    assert!(listed_referral, "the deliveries list: {events:?}");
}

/// A token that names nobody, on any API, is a failed login in the trail: the caller's address,
/// never the token.
#[test]
fn failed_authentications_are_audited_without_the_token() {
    let gateway = Gateway::start();
    let bogus = "not-a-token-0123456789";
    for (path, code) in [
        ("/fhir/ServiceRequest", 401),
        ("/vcs/v1/referrals", 401),
        ("/admin/v1/deliveries", 401),
    ] {
        let response = gateway
            .http
            .get(gateway.url(path))
            .bearer_auth(bogus)
            .send()
            .expect("request");
        assert_eq!(response.status().as_u16(), code, "{path}");
    }
    let (code, _) = send(gateway.http.post(gateway.url("/oauth2/token")).form(&[
        ("grant_type", "client_credentials"),
        ("client_assertion", bogus),
    ]));
    assert!((400..500).contains(&code), "{code}");
    // Failed logins are written beside the refusal: give them a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    let logins = loop {
        let logins: Vec<Value> = audit_events(&gateway, &[])
            .into_iter()
            .filter(|e| e["subtype"][0]["code"] == "110122")
            .collect();
        if logins.len() >= 4 || Instant::now() > deadline {
            break logins;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(logins.len(), 4, "{logins:?}");
    for login in &logins {
        assert_eq!(actor(login), "anonymous:127.0.0.1", "{login}");
        assert_eq!(login["outcome"], "4", "a failure: {login}");
        assert!(!login.to_string().contains(bogus), "the token is not kept");
    }
}
