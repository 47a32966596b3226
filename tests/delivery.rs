//! Webhook delivery over real HTTP to a real receiver: signatures checked with the Standard
//! Webhooks reference library, retries, outages, crashes, and the operator API.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::receiver::{Receiver, Reply};
use common::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

fn gateway_for(receiver: &Receiver, schedule: &[&str]) -> Gateway {
    let base = receiver.base.clone();
    let schedule: Vec<String> = schedule.iter().map(|s| s.to_string()).collect();
    Gateway::start_with(
        move |c| {
            let refs: Vec<&str> = schedule.iter().map(String::as_str).collect();
            deliver_to(c, &base, &refs)
        },
        &[],
    )
}

fn referral_id_of(received: &common::receiver::Received) -> String {
    received.json()["data"]["referral_id"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[test]
fn a_referral_arrives_signed_and_verifiable() {
    let receiver = Receiver::start();
    let gateway = gateway_for(&receiver, &["1s"]);
    let id = gateway.refer("REF-HOOK");
    let received = receiver.wait_for(WAIT, "the webhook", |r| !r.is_empty());
    let hook = &received[0];
    assert_eq!(hook.path, "/hooks", "carers-count's configured path");
    assert_eq!(hook.header("content-type"), "application/json");
    let verifier = standardwebhooks::Webhook::new(&demo_secret("carers-count")).unwrap();
    verifier
        .verify(&hook.body, &hook.http_headers())
        .expect("signature verifies with the reference library");
    assert!(hook.header("webhook-id").starts_with("msg_"));
    let event = hook.json();
    assert_eq!(event["type"], "referral.created");
    assert_eq!(event["sequence"], 1);
    assert!(chrono::DateTime::parse_from_rfc3339(event["timestamp"].as_str().unwrap()).is_ok());
    assert_eq!(event["data"]["referral_id"], id.as_str());
    assert_eq!(event["data"]["patient"]["family_name"], "Llywelyn");
    let schema: Value =
        serde_json::from_str(include_str!("../profiles/referral-record.v1.schema.json")).unwrap();
    assert!(jsonschema::is_valid(&schema, &event["data"]));

    // The operator sees the attempt; the message is delivered.
    let deliveries = wait_for_state(&gateway, &id, "delivered");
    let attempts = deliveries["messages"][0]["attempts_detail"]
        .as_array()
        .unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0]["status_code"], 204);
}

/// Polls the operator API until the referral's first message reaches `state`.
fn wait_for_state(gateway: &Gateway, referral_id: &str, state: &str) -> Value {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (status, body) =
            gateway.admin_get(&format!("/admin/v1/referrals/{referral_id}/deliveries"));
        if status == 200 && body["messages"][0]["state"] == state {
            return body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never reached {state}: {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn outage_and_random_failures_lose_nothing() {
    let receiver = Receiver::start();
    let outage_until = std::time::Instant::now() + Duration::from_secs(20);
    receiver.answer(move |_| {
        if std::time::Instant::now() < outage_until || rand::random::<bool>() {
            Reply::status(503)
        } else {
            Reply::status(204)
        }
    });
    let schedule = vec!["1s"; 45];
    let gateway = gateway_for(&receiver, &schedule);
    let sent: Vec<String> = (0..30)
        .map(|i| gateway.refer(&format!("REF-OUT-{i}")))
        .collect();
    let expected: HashSet<String> = sent.iter().cloned().collect();
    let received = receiver.wait_for(Duration::from_secs(90), "every referral", |r| {
        let delivered: HashSet<String> = r
            .iter()
            .filter(|x| x.answered == 204)
            .map(referral_id_of)
            .collect();
        delivered == expected
    });
    // Repeats of a referral always carry the same webhook-id, so a receiver can de-duplicate.
    let mut ids: HashMap<String, HashSet<String>> = HashMap::new();
    for hook in &received {
        ids.entry(referral_id_of(hook))
            .or_default()
            .insert(hook.header("webhook-id").to_string());
    }
    assert!(ids.values().all(|set| set.len() == 1), "{ids:?}");
    assert!(
        received.iter().any(|r| r.answered == 503),
        "the outage was exercised"
    );
}

#[test]
fn a_killed_gateway_delivers_everything_after_restart() {
    let receiver = Receiver::start();
    // Slow answers keep deliveries in flight when the process is killed.
    receiver.answer(|_| Reply::status(204).after(Duration::from_millis(1500)));
    let gateway = gateway_for(&receiver, &["1s", "1s", "1s", "1s", "1s"]);
    let sent: HashSet<String> = (0..20)
        .map(|i| gateway.refer(&format!("REF-KILL-{i}")))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let gateway = gateway.restart();
    receiver.answer(|_| Reply::status(204));
    receiver.wait_for(
        Duration::from_secs(60),
        "every referral after the crash",
        |r| {
            let delivered: HashSet<String> = r.iter().map(referral_id_of).collect();
            sent.is_subset(&delivered)
        },
    );
    let (_, pending) = gateway.admin_get("/admin/v1/deliveries?state=pending");
    let deadline = std::time::Instant::now() + WAIT;
    let mut pending = pending;
    while pending["total"] != 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        pending = gateway.admin_get("/admin/v1/deliveries?state=pending").1;
    }
    assert_eq!(pending["total"], 0, "{pending}");
}

#[test]
fn gone_disables_the_endpoint_until_an_operator_enables_it() {
    let receiver = Receiver::start();
    receiver.answer(|n| {
        if n == 0 {
            Reply::status(410)
        } else {
            Reply::status(204)
        }
    });
    let gateway = gateway_for(&receiver, &["1s"]);
    let id = gateway.refer("REF-GONE");
    receiver.wait_for(WAIT, "the first attempt", |r| !r.is_empty());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(receiver.received().len(), 1, "no attempts while disabled");
    let (_, vcs) = gateway.admin_get("/admin/v1/vcs");
    let carers = vcs["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["vcs_id"] == "carers-count")
        .unwrap()
        .clone();
    assert_eq!(carers["enabled"], false, "{vcs}");
    assert_eq!(
        wait_for_state(&gateway, &id, "pending")["messages"][0]["attempts"],
        1
    );
    let (status, _) = gateway.admin_post("/admin/v1/vcs/carers-count/enable");
    assert_eq!(status, 200);
    wait_for_state(&gateway, &id, "delivered");
}

#[test]
fn too_many_requests_waits_for_retry_after() {
    let receiver = Receiver::start();
    receiver.answer(|n| {
        if n == 0 {
            Reply::status(429).with_header("Retry-After", "3")
        } else {
            Reply::status(204)
        }
    });
    let gateway = gateway_for(&receiver, &["1s"]);
    gateway.refer("REF-429");
    let received = receiver.wait_for(WAIT, "the retry", |r| r.len() >= 2);
    let gap = received[1].at - received[0].at;
    assert!(gap >= Duration::from_millis(2900), "retried after {gap:?}");
}

#[test]
fn abort_header_stops_the_message() {
    let receiver = Receiver::start();
    receiver.answer(|_| Reply::status(400).with_header("webhook-delivery", "abort-message"));
    let gateway = gateway_for(&receiver, &["1s", "1s", "1s"]);
    let id = gateway.refer("REF-ABORT");
    let deliveries = wait_for_state(&gateway, &id, "dead");
    assert_eq!(deliveries["messages"][0]["attempts"], 1);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(receiver.received().len(), 1);
}

#[test]
fn timeouts_and_redirects_are_failed_attempts() {
    let receiver = Receiver::start();
    receiver.answer(|n| match n {
        0 => Reply::status(204).after(Duration::from_secs(3)),
        1 => Reply::status(302).with_header("Location", "/elsewhere"),
        _ => Reply::status(204),
    });
    let base = receiver.base.clone();
    let gateway = Gateway::start_with(
        move |c| {
            deliver_to(c, &base, &["1s", "1s", "1s"])
                .replace("timeout = \"15s\"", "timeout = \"1s\"")
        },
        &[],
    );
    let id = gateway.refer("REF-SLOW");
    let deliveries = wait_for_state(&gateway, &id, "delivered");
    let attempts = deliveries["messages"][0]["attempts_detail"]
        .as_array()
        .unwrap();
    assert_eq!(attempts.len(), 3, "{deliveries}");
    assert!(
        attempts[0]["error"].as_str().unwrap().contains("timed out"),
        "{deliveries}"
    );
    assert_eq!(attempts[1]["status_code"], 302);
    assert!(
        receiver.received().iter().all(|r| r.path != "/elsewhere"),
        "redirects are not followed"
    );
}

#[test]
fn dead_letters_can_be_retried_and_recovered() {
    let receiver = Receiver::start();
    receiver.answer(|_| Reply::status(500));
    let gateway = gateway_for(&receiver, &["1s"]);
    let first = gateway.refer("REF-DEAD-1");
    let second = gateway.refer("REF-DEAD-2");
    wait_for_state(&gateway, &first, "dead");
    wait_for_state(&gateway, &second, "dead");
    let metrics = gateway
        .http
        .get(gateway.url("/metrics"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(metrics.contains("sp_outbox_dead 2"), "{metrics}");
    assert!(
        metrics.contains("sp_delivery_attempts_total{outcome=\"failed\"} 4"),
        "{metrics}"
    );
    let (_, dead) = gateway.admin_get("/admin/v1/deliveries?state=dead&vcs=carers-count");
    assert_eq!(dead["total"], 2);

    receiver.answer(|_| Reply::status(204));
    let message_id = dead["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["referral_id"] == first.as_str())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = gateway.admin_post(&format!("/admin/v1/deliveries/{message_id}/retry"));
    assert_eq!(status, 202);
    wait_for_state(&gateway, &first, "delivered");

    let (status, job) =
        gateway.admin_post("/admin/v1/vcs/carers-count/recover?since=2020-01-01T00:00:00Z");
    assert_eq!(status, 202, "{job}");
    assert_eq!(job["total"], 1, "only the message still dead: {job}");
    wait_for_state(&gateway, &second, "delivered");
    let (_, progress) = gateway.admin_get(&format!(
        "/admin/v1/recoveries/{}",
        job["job_id"].as_str().unwrap()
    ));
    assert_eq!(progress["delivered"], 1, "{progress}");
    assert_eq!(progress["done"], true);
}

#[test]
fn rotation_signs_with_old_and_new_secrets() {
    let receiver = Receiver::start();
    let gateway = gateway_for(&receiver, &["1s"]);
    let (status, rotated) = gateway.admin_post("/admin/v1/vcs/carers-count/rotate-secret");
    assert_eq!(status, 201);
    let new_secret = rotated["secret"].as_str().unwrap().to_string();
    gateway.refer("REF-ROT");
    let received = receiver.wait_for(WAIT, "the webhook", |r| !r.is_empty());
    let hook = &received[0];
    assert_eq!(hook.header("webhook-signature").split(' ').count(), 2);
    for secret in [new_secret, demo_secret("carers-count")] {
        standardwebhooks::Webhook::new(&secret)
            .unwrap()
            .verify(&hook.body, &hook.http_headers())
            .expect("each secret verifies");
    }
}

#[test]
fn admin_api_needs_the_admin_token() {
    let gateway = Gateway::start();
    for path in ["/admin/v1/deliveries", "/admin/v1/vcs"] {
        let (status, body) = send(gateway.http.get(gateway.url(path)));
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["status"], 401);
        let (status, _) = send(gateway.get(path));
        assert_eq!(status, 401, "a GP token is not an admin token");
    }
    let (status, _) = gateway.admin_get("/admin/v1/deliveries?state=lost");
    assert_eq!(status, 400);
    let (status, _) = gateway.admin_post("/admin/v1/vcs/nobody/disable");
    assert_eq!(status, 404);
}

/// The guard is each organisation's and each GP client's (`allow_private_targets`, defaulting
/// to `[delivery]`'s): with it off for one organisation, a name that resolves to loopback is
/// refused after DNS at send time (address literals and plain http are refused at start,
/// `tests/config.rs`), while the others, on, still deliver; a client with it off cannot be
/// notified on a private address either.
#[test]
fn private_targets_are_refused_without_the_lab_switch() {
    let receiver = Receiver::start();
    let port = receiver.base.rsplit(':').next().unwrap().to_string();
    let (base, vcs_port) = (receiver.base.clone(), port.clone());
    let gateway = Gateway::start_with(
        move |c| {
            deliver_to(c, &base, &["1s"])
                .replacen(
                    &format!("{base}/hooks\""),
                    &format!("https://localhost:{vcs_port}/hooks\"\nallow_private_targets = false"),
                    1,
                )
                .replacen(
                    "id = \"tpp-demo\"",
                    "id = \"tpp-demo\"\nallow_private_targets = false",
                    1,
                )
        },
        &[],
    );
    let id = gateway.refer("REF-SSRF");
    let deliveries = wait_for_state(&gateway, &id, "dead");
    let error = deliveries["messages"][0]["last_error"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(error.contains("loopback, private"), "{error}");

    // tpp-demo (guard on) may not subscribe to the receiver on 127.0.0.1, by address or by a
    // name that resolves there: refused when created (`422` naming the endpoint), so nothing is
    // ever queued for it; the guard stays at send time for names that change later.
    let subscription = |endpoint: String| {
        serde_json::json!({
            "resourceType": "Subscription", "status": "requested", "reason": "Follow",
            "criteria": "Task",
            "channel": {"type": "rest-hook", "endpoint": endpoint,
                        "payload": "application/fhir+json"}
        })
    };
    let create = |token: &str, endpoint: String| {
        send(
            gateway
                .http
                .post(gateway.url("/fhir/Subscription"))
                .bearer_auth(token)
                .header("content-type", FHIR_JSON)
                .body(subscription(endpoint).to_string()),
        )
    };
    for (endpoint, reason) in [
        (format!("{}/notify", receiver.base), "only https"),
        (
            format!("https://127.0.0.1:{port}/notify"),
            "loopback, private",
        ),
        (
            format!("https://localhost:{port}/notify"),
            "loopback, private",
        ),
    ] {
        let (status, outcome) = create(OTHER_GP_TOKEN, endpoint.clone());
        assert_eq!(status, 422, "{endpoint}: {outcome}");
        assert_outcome(&outcome);
        let issues = issue_expressions(&outcome);
        assert_eq!(issues.len(), 1, "{outcome}");
        assert_eq!(issues[0].2, "Subscription.channel.endpoint", "{outcome}");
        assert!(outcome.to_string().contains(reason), "{outcome}");
    }
    // The demo client keeps the lab switch of [delivery]: the same endpoint is its to use.
    let (status, created) = create(GP_TOKEN, format!("{}/notify", receiver.base));
    assert_eq!(status, 201, "{created}");
    assert!(
        receiver.received().is_empty(),
        "nothing reached the receiver"
    );
}

#[test]
fn mock_vcs_verifies_and_prints_what_it_receives() {
    use std::io::{BufRead, BufReader};
    let secret = demo_secret("carers-count");
    let mut mock = std::process::Command::new(env!("CARGO_BIN_EXE_sp-gateway"))
        .args(["mock-vcs", "--listen", "127.0.0.1:0", "--secret", &secret])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(mock.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let base = first
        .trim()
        .strip_prefix("mock-vcs listening on ")
        .unwrap()
        .to_string();
    let gateway = Gateway::start_with(move |c| deliver_to(c, &base, &["1s"]), &[]);
    let id = gateway.refer("REF-MOCK");
    let received_line = lines
        .find(|l| l.as_ref().is_ok_and(|l| l.starts_with("RECEIVED")))
        .unwrap()
        .unwrap();
    assert!(
        received_line.contains(&id) && received_line.contains("Carers Count"),
        "{received_line}"
    );
    wait_for_state(&gateway, &id, "delivered");
    let _ = mock.kill();
    let _ = mock.wait();
}

#[test]
fn an_organisation_without_a_webhook_gets_no_delivery_and_reads_the_record() {
    let receiver = Receiver::start();
    let base = receiver.base.clone();
    // Carers Count (where the test referral is routed) has no webhook: the inbox only.
    let gateway = Gateway::start_with(
        move |c| {
            let c = deliver_to(c, &base, &["1s"]);
            c.lines()
                .filter(|l| {
                    !l.starts_with(&format!("webhook_url = \"{base}/hooks\""))
                        && !l.starts_with("webhook_secret = \"whsec_exWe")
                })
                .collect::<Vec<_>>()
                .join("\n")
        },
        &[],
    );
    let id = gateway.refer("REF-INBOX-ONLY");
    // The record is stored as for any organisation, and readable by its owner.
    let (status, record) = send(
        gateway
            .http
            .get(gateway.url(&format!("/vcs/v1/referrals/{id}")))
            .bearer_auth("demo-vcs-carers-count"),
    );
    assert_eq!(status, 200, "{record}");
    assert_eq!(record["referral_id"], id.as_str());
    // The GP cancels: the organisation is told nothing by webhook either.
    let patch = serde_json::json!([{"op": "replace", "path": "/status", "value": "revoked"}]);
    let (status, body) = send(
        gateway
            .http
            .patch(gateway.url(&format!("/fhir/ServiceRequest/{id}")))
            .bearer_auth(GP_TOKEN)
            .header("content-type", "application/json-patch+json")
            .body(patch.to_string()),
    );
    assert_eq!(status, 200, "{body}");
    // Nothing was queued for it, so nothing waits for ever in the outbox.
    let (status, body) = gateway.admin_get(&format!("/admin/v1/referrals/{id}/deliveries"));
    assert_eq!(status, 404, "no messages: {body}");
    let (status, stats) = gateway.admin_get("/admin/v1/deliveries?state=pending");
    assert_eq!(status, 200, "{stats}");
    assert!(!stats.to_string().contains(&id), "{stats}");
    // Recovery and secret rotation are about webhooks: refused for it.
    for path in [
        "/admin/v1/vcs/carers-count/recover?since=2020-01-01T00:00:00Z",
        "/admin/v1/vcs/carers-count/rotate-secret",
    ] {
        let (status, body) = gateway.admin_post(path);
        assert_eq!(status, 409, "{path}: {body}");
    }
    // The other organisations keep their webhooks.
    assert_eq!(receiver.arrivals(), 0);
}
