//! What operators and subscribers depend on, over real HTTP: a Subscription whose endpoint is
//! gone stops being tried, the health and readiness probes, failed attempts in the log, and an
//! operator's retry of a pending message.

mod common;

use std::time::{Duration, Instant};

use common::receiver::{Receiver, Reply};
use common::*;
use serde_json::{json, Value};

const VCS_TOKEN: &str = "demo-vcs-carers-count";
const WAIT: Duration = Duration::from_secs(30);

fn subscribe(gateway: &Gateway, endpoint: &str) -> String {
    let subscription = json!({
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "Follow our referrals",
        "criteria": "Task",
        "channel": {"type": "rest-hook", "endpoint": endpoint, "payload": "application/fhir+json"}
    });
    let (status, created) = send(gateway.post_json("/fhir/Subscription", &subscription));
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().expect("id").to_string()
}

fn report(gateway: &Gateway, referral: &str, status: &str) {
    let (code, body) = send(
        gateway
            .http
            .post(gateway.url(&format!("/vcs/v1/referrals/{referral}/status")))
            .bearer_auth(VCS_TOKEN)
            .json(&json!({"status": status, "occurred_at": "2026-05-10T14:00:00+01:00"})),
    );
    assert_eq!(code, 200, "{status}: {body}");
}

fn deliveries(gateway: &Gateway, referral: &str) -> Vec<Value> {
    let (status, body) = gateway.admin_get(&format!("/admin/v1/referrals/{referral}/deliveries"));
    assert_eq!(status, 200, "{body}");
    body["messages"].as_array().cloned().unwrap_or_default()
}

/// A GP's listener answering 410 Gone was tried again and again: the claim skipped disabled
/// endpoints only for VCS organisations. Now the Subscription is switched off, its message is
/// dead and nothing more is sent to it.
#[test]
fn a_subscription_whose_endpoint_is_gone_is_switched_off() {
    let vcs_receiver = Receiver::start();
    let gp_listener = Receiver::start();
    gp_listener.answer(|_| Reply::status(410));
    let base = vcs_receiver.base.clone();
    let gateway = Gateway::start_with(move |c| deliver_to(c, &base, &["1s", "1s", "1s"]), &[]);
    let subscription = subscribe(&gateway, &format!("{}/notify", gp_listener.base));
    let referral = gateway.refer("REF-SUB-GONE");
    vcs_receiver.wait_for(WAIT, "the referral webhook", |r| !r.is_empty());

    report(&gateway, &referral, "accepted");
    gp_listener.wait_for(WAIT, "the first notification", |r| !r.is_empty());
    let deadline = Instant::now() + WAIT;
    while send(gateway.get(&format!("/fhir/Subscription/{subscription}"))).1["status"] != "off" {
        assert!(Instant::now() < deadline, "the Subscription stays active");
        std::thread::sleep(Duration::from_millis(100));
    }
    report(&gateway, &referral, "attended");
    // Long enough for the retry schedule (1 s) to have tried three more times.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(gp_listener.arrivals(), 1, "no attempt after the 410");
    let notifications: Vec<Value> = deliveries(&gateway, &referral)
        .into_iter()
        .filter(|m| m["vcs_id"] == subscription.as_str())
        .collect();
    // The second report notifies nobody: the Subscription is off.
    assert_eq!(notifications.len(), 1, "{notifications:?}");
    assert_eq!(notifications[0]["state"], "dead", "{notifications:?}");
    assert_eq!(notifications[0]["attempts"], 1, "{notifications:?}");
}

/// `/healthz` answers while the process runs; `/readyz` checks the database, its migrations
/// and the delivery worker, and names what failed (here: a schema older than this build).
#[test]
fn health_and_readiness_probes_need_no_token_and_name_what_failed() {
    let gateway = Gateway::start();
    let (status, health) = send(gateway.http.get(gateway.url("/healthz")));
    assert_eq!((status, &health["status"]), (200, &json!("ok")), "{health}");
    let deadline = Instant::now() + WAIT;
    let ready = loop {
        let (status, ready) = send(gateway.http.get(gateway.url("/readyz")));
        if status == 200 || Instant::now() > deadline {
            break ready;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(
        ready["checks"],
        json!({"database": "ok", "migrations": "ok", "writes": "ok", "worker": "ok"})
    );

    // Someone ran an older build's schema under this one: not ready, and it says why.
    let db = rusqlite::Connection::open(gateway.db_path()).expect("open the database");
    db.execute_batch("PRAGMA user_version = 1;")
        .expect("set the schema version");
    let (status, ready) = send(gateway.http.get(gateway.url("/readyz")));
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["failed"], json!(["migrations"]), "{ready}");
    assert_eq!(ready["checks"]["database"], "ok", "{ready}");
    let (status, _) = send(gateway.http.get(gateway.url("/healthz")));
    assert_eq!(status, 200, "the process is still up");
}

/// An operator's retry of a message waiting for its next attempt (an hour away) sends it now, as
/// the README says; the failed attempt before it is a WARN line naming the message and the
/// organisation, and nothing of the patient.
#[test]
fn a_failed_attempt_is_a_warning_and_retry_sends_a_pending_message_now() {
    let receiver = Receiver::start();
    receiver.answer(|n| Reply::status(if n == 0 { 500 } else { 204 }));
    let base = receiver.base.clone();
    let gateway = Gateway::start_capturing_logs(move |c| deliver_to(c, &base, &["1h"]), "warn");
    let referral = gateway.refer("REF-RETRY-PENDING");
    receiver.wait_for(WAIT, "the first attempt", |r| !r.is_empty());
    let deadline = Instant::now() + WAIT;
    let message = loop {
        let messages = deliveries(&gateway, &referral);
        if messages
            .first()
            .is_some_and(|m| m["attempts"] == 1 && m["state"] == "pending")
        {
            break messages[0].clone();
        }
        assert!(Instant::now() < deadline, "{messages:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let id = message["id"].as_str().expect("message id");

    let logs = gateway.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("delivery attempt failed"))
        .unwrap_or_else(|| panic!("no warning for the failed attempt:\n{logs}"));
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains(id), "{line}");
    assert!(line.contains("vcs:carers-count"), "{line}");
    for patient_detail in ["Llywelyn", "9000000009", "Heol y Frenhines", "CF10 1AA"] {
        assert!(!logs.contains(patient_detail), "{logs}");
    }

    let (status, body) = gateway.admin_post(&format!("/admin/v1/deliveries/{id}/retry"));
    assert_eq!(status, 202, "{body}");
    receiver.wait_for(Duration::from_secs(10), "the retry, sent now", |r| {
        r.len() >= 2
    });
    let deadline = Instant::now() + WAIT;
    while deliveries(&gateway, &referral)[0]["state"] != "delivered" {
        assert!(
            Instant::now() < deadline,
            "the retried message is delivered"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, body) = gateway.admin_post("/admin/v1/deliveries/msg_unknown/retry");
    assert_eq!(status, 409, "{body}");
}
