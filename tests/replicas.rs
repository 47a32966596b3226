//! Several gateway processes on one PostgreSQL database, as an integrated care board runs them
//! behind a load balancer: the work is shared, nothing is delivered twice by us, conditional
//! creates racing on two replicas make one referral, and a replica killed mid-delivery leaves its
//! messages to the other once their lease runs out.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::postgres::TestSchema;
use common::receiver::{Receiver, Reply};
use common::*;

const REFERRAL_SYSTEM: &str = "https://fhir.emis-demo.example/Id/referral";

/// A replica on `schema` delivering to `receiver`, with extra environment settings.
fn replica(schema: &TestSchema, receiver: &Receiver, env: &[(&str, &str)]) -> Gateway {
    let base = receiver.base.clone();
    let mut env: Vec<(&str, &str)> = env.to_vec();
    env.push(("SP_GATEWAY_STORAGE__URL", &schema.url));
    // One client sends thousands of referrals a second here; production keeps its limit.
    env.push(("SP_GATEWAY_SERVER__RATE_LIMIT_PER_SECOND", "0"));
    Gateway::start_with(move |c| deliver_to(c, &base, &["1s", "1s", "1s"]), &env)
}

/// Two replicas started at the same moment on an empty schema: both migrate at start, and the
/// migrator's advisory lock makes them take turns (neither fails on the other's half-made tables).
fn start_together(schema: &TestSchema, receiver: &Receiver) -> [Gateway; 2] {
    std::thread::scope(|scope| {
        let first = scope.spawn(|| replica(schema, receiver, &[]));
        let second = scope.spawn(|| replica(schema, receiver, &[]));
        [
            first.join().expect("first replica"),
            second.join().expect("second replica"),
        ]
    })
}

fn referral_id_of(received: &common::receiver::Received) -> String {
    received.json()["data"]["referral_id"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// A counter from a replica's `/metrics`, e.g. `sp_delivery_attempts_total{outcome="delivered"}`.
fn metric(gateway: &Gateway, name: &str) -> f64 {
    let text = gateway
        .http
        .get(gateway.url("/metrics"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .expect("metrics")
        .text()
        .expect("metrics text");
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}

fn wait_until_nothing_pending(gateway: &Gateway) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (_, pending) = gateway.admin_get("/admin/v1/deliveries?state=pending");
        if pending["total"] == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "messages still pending: {pending}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn two_replicas_deliver_every_referral_once() {
    const REFERRALS: usize = 2_000;
    const SENDERS: usize = 8;
    let schema = TestSchema::create();
    let receiver = Receiver::start();
    let replicas = Arc::new(start_together(&schema, &receiver));
    let created = Arc::new(Mutex::new(Vec::new()));
    let senders: Vec<_> = (0..SENDERS)
        .map(|sender| {
            let (replicas, created) = (replicas.clone(), created.clone());
            std::thread::spawn(move || {
                for n in (sender..REFERRALS).step_by(SENDERS) {
                    // Alternate replicas, as a round-robin load balancer does.
                    let gateway = &replicas[n % 2];
                    let id = gateway.refer(&format!("REF-REPLICA-{n}"));
                    created.lock().unwrap().push(id);
                }
            })
        })
        .collect();
    for sender in senders {
        sender.join().expect("sender");
    }
    let created: HashSet<String> = created.lock().unwrap().iter().cloned().collect();
    assert_eq!(created.len(), REFERRALS, "every referral created once");

    receiver.wait_for(Duration::from_secs(240), "every referral delivered", |r| {
        let delivered: HashSet<String> = r.iter().map(referral_id_of).collect();
        created.is_subset(&delivered)
    });
    wait_until_nothing_pending(&replicas[0]);
    // Give a double send (if there were one) time to arrive before counting.
    std::thread::sleep(Duration::from_secs(2));
    let all = receiver.received();
    let mut per_message: HashMap<String, usize> = HashMap::new();
    for request in &all {
        *per_message
            .entry(request.header("webhook-id").to_string())
            .or_default() += 1;
    }
    let twice: Vec<_> = per_message.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "messages sent more than once: {twice:?}");
    assert_eq!(per_message.len(), REFERRALS, "one message per referral");
    assert!(all.iter().all(|r| r.answered == 204));

    // Both replicas' workers took part (woken by NOTIFY), and between them sent each message once.
    let delivered_by: Vec<f64> = replicas
        .iter()
        .map(|g| metric(g, "sp_delivery_attempts_total{outcome=\"delivered\"}"))
        .collect();
    assert_eq!(
        delivered_by.iter().sum::<f64>(),
        REFERRALS as f64,
        "{delivered_by:?}"
    );
    assert!(
        delivered_by.iter().all(|n| *n > 0.0),
        "both replicas delivered: {delivered_by:?}"
    );
    // Either replica answers for every referral: reads go to the shared database.
    let sample = created.iter().next().expect("a referral");
    for gateway in replicas.iter() {
        let (status, body) = send(gateway.get(&format!("/fhir/ServiceRequest/{sample}")));
        assert_eq!(status, 200, "{body}");
    }
}

#[test]
fn conditional_creates_racing_on_two_replicas_make_one_referral() {
    let schema = TestSchema::create();
    let receiver = Receiver::start();
    let replicas = Arc::new(start_together(&schema, &receiver));
    let condition = format!("identifier={REFERRAL_SYSTEM}|REF-RACING");
    let racers: Vec<_> = (0..24)
        .map(|n| {
            let (replicas, condition) = (replicas.clone(), condition.clone());
            std::thread::spawn(move || {
                let gateway = &replicas[n % 2];
                send(
                    gateway
                        .post_json("/fhir/ServiceRequest", &contained_referral("REF-RACING"))
                        .header("if-none-exist", condition),
                )
            })
        })
        .collect();
    let answers: Vec<(u16, serde_json::Value)> = racers
        .into_iter()
        .map(|r| r.join().expect("racer"))
        .collect();
    let created = answers.iter().filter(|(s, _)| *s == 201).count();
    assert_eq!(created, 1, "exactly one create: {answers:?}");
    assert!(
        answers.iter().all(|(s, _)| *s == 201 || *s == 200),
        "the others get the existing referral: {answers:?}"
    );
    let ids: HashSet<&str> = answers
        .iter()
        .map(|(_, body)| body["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids.len(), 1, "every answer names the same referral");
    for gateway in replicas.iter() {
        let (_, bundle) = send(gateway.get(&format!(
            "/fhir/ServiceRequest?identifier={REFERRAL_SYSTEM}|REF-RACING"
        )));
        assert_eq!(bundle["total"], 1, "{bundle}");
    }
    // Without If-None-Exist the same GP reference is refused on either replica.
    for gateway in replicas.iter() {
        let (status, body) =
            send(gateway.post_json("/fhir/ServiceRequest", &contained_referral("REF-RACING")));
        assert_eq!(status, 409, "{body}");
    }
}

#[test]
fn a_replica_killed_mid_delivery_leaves_its_messages_to_the_other() {
    const HELD: usize = 6;
    // Lease = timeout + margin = 11 s: how long the survivor must wait for the dead one's claims.
    // A is killed as soon as every message is in flight, long before its own timeout would make
    // it give up (and release them) by itself.
    const LEASE: Duration = Duration::from_secs(11);
    let settings = [
        ("SP_GATEWAY_DELIVERY__TIMEOUT", "10s"),
        ("SP_GATEWAY_DELIVERY__LEASE_MARGIN", "1s"),
    ];
    let schema = TestSchema::create();
    let receiver = Receiver::start();
    // The first messages get no answer for a long while: they are in flight when A dies.
    receiver.answer(|n| {
        if n < HELD {
            Reply::status(204).after(Duration::from_secs(15))
        } else {
            Reply::status(204)
        }
    });
    let mut doomed = replica(&schema, &receiver, &settings);
    // When each referral was sent for: A can only have claimed its message after that.
    let referred_at: HashMap<String, std::time::Instant> = (0..HELD)
        .map(|i| {
            let at = std::time::Instant::now();
            (doomed.refer(&format!("REF-DOOMED-{i}")), at)
        })
        .collect();
    let sent: HashSet<String> = referred_at.keys().cloned().collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while receiver.arrivals() < HELD {
        assert!(std::time::Instant::now() < deadline, "A never sent");
        std::thread::sleep(Duration::from_millis(20));
    }
    // A is killed mid-send, holding every message; then B joins. (B started first, and on a
    // loaded machine its start took as long as A's timeout: A gave up, released the messages
    // and they went again before the lease, which is right but not what this test checks.)
    doomed.kill();
    let survivor = replica(&schema, &receiver, &settings);

    // Each message twice: A's cut-off send, then B's.
    receiver.wait_for(
        Duration::from_secs(60),
        "the survivor to deliver A's messages",
        |r| {
            let mut sends: HashMap<String, usize> = HashMap::new();
            for request in r {
                *sends.entry(referral_id_of(request)).or_default() += 1;
            }
            sent.iter()
                .all(|id| sends.get(id).copied().unwrap_or(0) >= 2)
        },
    );
    wait_until_nothing_pending(&survivor);
    let all = receiver.received();
    let mut arrivals: HashMap<String, (String, Vec<std::time::Instant>)> = HashMap::new();
    for request in &all {
        let (_, times) = arrivals
            .entry(request.header("webhook-id").to_string())
            .or_insert_with(|| (referral_id_of(request), Vec::new()));
        times.push(request.at);
    }
    assert_eq!(arrivals.len(), HELD, "one message per referral");
    for (id, (referral, mut times)) in arrivals {
        times.sort();
        assert_eq!(times.len(), 2, "{id}: A's cut-off send, then B's");
        // A claimed it after the referral was made, so its lease ran until LEASE after that at
        // the earliest; B may take the message only then. (Measured from A's arrival at the
        // receiver instead, a loaded machine's delay between A's claim and its send showed up
        // as B being early.)
        let waited = times[1] - referred_at[&referral];
        assert!(
            waited >= LEASE,
            "{id}: B sent it {waited:?} after the referral was made, before A's lease ran out"
        );
    }
    let (_, dead) = survivor.admin_get("/admin/v1/deliveries?state=dead");
    assert_eq!(dead["total"], 0, "{dead}");
}

/// An API-only replica takes the referral; the other replica's idle worker is woken by the
/// database's NOTIFY at commit, long before it would look again by itself (30 s).
#[test]
fn an_idle_worker_is_woken_by_another_replicas_commit() {
    let schema = TestSchema::create();
    let receiver = Receiver::start();
    let api_only = replica(
        &schema,
        &receiver,
        &[("SP_GATEWAY_DELIVERY__WORKER", "false")],
    );
    let _worker = replica(&schema, &receiver, &[]);
    // Let the worker finish its first look and go to sleep.
    std::thread::sleep(Duration::from_secs(1));
    let sent = std::time::Instant::now();
    let id = api_only.refer("REF-WAKE-UP");
    receiver.wait_for(Duration::from_secs(5), "the woken worker's delivery", |r| {
        r.iter().any(|r| referral_id_of(r) == id)
    });
    assert!(sent.elapsed() < Duration::from_secs(5));
}
