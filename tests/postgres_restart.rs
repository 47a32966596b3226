//! PostgreSQL restarted while referrals arrive and webhooks go out: no accepted referral is lost,
//! requests during the outage get `503` (never a `500`, never a `201` that was not committed),
//! and the gateway recovers by itself, without a restart of its own.
//!
//! This restarts the machine's PostgreSQL cluster, so it lives in a test binary of its own:
//! `cargo test` runs test binaries one after another, and no other test uses PostgreSQL while
//! this one runs. The restart command is `SP_TEST_POSTGRES_RESTART` (a shell command), by
//! default the machine's `pg_ctlcluster … restart`.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::postgres::TestSchema;
use common::receiver::Receiver;
use common::*;

const REFERRAL_SYSTEM: &str = "https://fhir.emis-demo.example/Id/referral";
const SENDERS: usize = 4;
const PER_SENDER: usize = 60;

fn restart_postgres() {
    let command = std::env::var("SP_TEST_POSTGRES_RESTART").unwrap_or_else(|_| {
        "pg_ctlcluster --skip-systemctl-redirect \"$(ls /etc/postgresql | head -n 1)\" main restart"
            .to_string()
    });
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(&command)
        .status()
        .expect("run the restart command");
    assert!(status.success(), "`{command}` failed: {status}");
}

/// What one attempt at a referral got.
#[derive(Debug)]
struct Answer {
    status: u16,
    id: Option<String>,
}

/// Sends one referral until it is accepted, the way a vendor retries: the same request with
/// `If-None-Exist`, after a pause, whenever the answer is not final.
fn refer_until_accepted(gateway: &Gateway, reference: &str, log: &Mutex<Vec<Answer>>) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let request = gateway
            .post_json("/fhir/ServiceRequest", &contained_referral(reference))
            .header(
                "if-none-exist",
                format!("identifier={REFERRAL_SYSTEM}|{reference}"),
            );
        match request.send() {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let body: serde_json::Value = response.json().unwrap_or_default();
                let id = body["id"].as_str().map(str::to_string);
                if status == 503 {
                    assert_outcome(&body);
                    assert_eq!(body["issue"][0]["code"], "transient", "{body}");
                    assert!(retry_after.is_some(), "a 503 says when to come back");
                }
                log.lock().unwrap().push(Answer {
                    status,
                    id: id.clone(),
                });
                if matches!(status, 200 | 201) {
                    return id.expect("an accepted referral has an id");
                }
                assert_eq!(status, 503, "only 503 while the database is away: {body}");
            }
            // The connection itself failed: a retry is what a vendor does.
            Err(_) => log.lock().unwrap().push(Answer {
                status: 0,
                id: None,
            }),
        }
        assert!(Instant::now() < deadline, "{reference} never accepted");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_postgres_restart_loses_nothing_and_needs_no_gateway_restart() {
    let schema = TestSchema::create();
    let receiver = Receiver::start();
    let base = receiver.base.clone();
    let gateway = Arc::new(Gateway::start_with(
        move |c| deliver_to(c, &base, &["1s", "1s", "1s", "1s", "1s"]),
        &[
            ("SP_GATEWAY_STORAGE__URL", &schema.url),
            ("SP_GATEWAY_SERVER__RATE_LIMIT_PER_SECOND", "0"),
        ],
    ));
    let log = Arc::new(Mutex::new(Vec::new()));
    let accepted = Arc::new(AtomicUsize::new(0));
    let senders: Vec<_> = (0..SENDERS)
        .map(|sender| {
            let (gateway, log, accepted) = (gateway.clone(), log.clone(), accepted.clone());
            std::thread::spawn(move || {
                (0..PER_SENDER)
                    .map(|n| {
                        let reference = format!("REF-PG-RESTART-{sender}-{n}");
                        let id = refer_until_accepted(&gateway, &reference, &log);
                        accepted.fetch_add(1, Ordering::Relaxed);
                        // A steady trickle, so the restart falls in the middle of the run.
                        std::thread::sleep(Duration::from_millis(20));
                        (reference, id)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    while accepted.load(Ordering::Relaxed) < SENDERS * PER_SENDER / 4 {
        std::thread::sleep(Duration::from_millis(20));
    }
    restart_postgres();
    let referrals: Vec<(String, String)> = senders
        .into_iter()
        .flat_map(|s| s.join().expect("sender"))
        .collect();
    let mut gateway = Arc::try_unwrap(gateway).unwrap_or_else(|_| panic!("senders are done"));
    assert!(
        gateway.is_running(),
        "the gateway survived without a restart"
    );

    let log = log.lock().unwrap();
    let failures = log
        .iter()
        .filter(|a| a.status != 200 && a.status != 201)
        .count();
    eprintln!(
        "{} answers, {failures} of them 503 or no connection during the restart",
        log.len()
    );
    // Each GP reference made exactly one referral, whatever its retries met.
    let ids: HashSet<&String> = referrals.iter().map(|(_, id)| id).collect();
    assert_eq!(ids.len(), SENDERS * PER_SENDER);
    for answer in log.iter().filter(|a| a.status == 200 || a.status == 201) {
        assert!(ids.contains(answer.id.as_ref().expect("id")));
    }
    for (reference, id) in &referrals {
        let (status, bundle) = send(gateway.get(&format!(
            "/fhir/ServiceRequest?identifier={REFERRAL_SYSTEM}|{reference}"
        )));
        assert_eq!(status, 200, "{bundle}");
        assert_eq!(bundle["total"], 1, "{reference}: {bundle}");
        assert_eq!(bundle["entry"][0]["resource"]["id"], id.as_str());
    }
    // Every accepted referral reaches its organisation: the outbox survived the restart.
    let wanted: HashSet<String> = referrals.iter().map(|(_, id)| id.clone()).collect();
    receiver.wait_for(Duration::from_secs(120), "every referral delivered", |r| {
        let delivered: HashSet<String> = r
            .iter()
            .map(|r| {
                r.json()["data"]["referral_id"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .collect();
        wanted.is_subset(&delivered)
    });
    // And the gateway takes new work as before.
    let (status, body) =
        send(gateway.post_json("/fhir/ServiceRequest", &contained_referral("REF-PG-AFTER")));
    assert_eq!(status, 201, "{body}");
    assert!(gateway.is_running());
}
