//! What an attacker on the network (with or without a token) tries, over real HTTP and raw TCP:
//! bodies trickled in to hold connections, floods of made-up tokens, writes past an
//! organisation's rate, webhook targets and headers that would turn the gateway on others.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

const VCS_TOKEN: &str = "demo-vcs-carers-count";

fn with_body_timeout(config: String) -> String {
    config.replace(
        "max_json_depth = 64",
        "max_json_depth = 64\nbody_timeout = \"2s\"",
    )
}

/// Sends the head of a POST declaring a 100-byte body, then one byte every 300 ms; returns what
/// the gateway answered (empty when it just closed) and how long that took.
fn trickle(gateway: &Gateway, path: &str, token: Option<&str>) -> (String, Duration) {
    let address = gateway.base.trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(&address).expect("connect");
    let authorization = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         {authorization}Content-Length: 100\r\n\r\n{{"
    );
    stream.write_all(head.as_bytes()).expect("head");
    let mut writer = stream.try_clone().expect("clone");
    std::thread::spawn(move || {
        for _ in 0..99 {
            std::thread::sleep(Duration::from_millis(300));
            if writer.write_all(b" ").is_err() {
                return;
            }
        }
    });
    let started = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_secs(40)))
        .expect("read timeout");
    let mut answer = [0u8; 512];
    let n = stream.read(&mut answer).unwrap_or(0);
    (
        String::from_utf8_lossy(&answer[..n]).into_owned(),
        started.elapsed(),
    )
}

/// `body_timeout` covered only the FHIR handlers: a body trickled to `/oauth2/token` (no token
/// needed), `/vcs/v1` or `/admin` held its connection for minutes. One reader now bounds them all.
#[test]
fn a_trickled_body_is_cut_off_on_every_route() {
    let gateway = Gateway::start_with(with_body_timeout, &[]);
    let referral = gateway.refer("REF-TRICKLE");
    let vcs_status = format!("/vcs/v1/referrals/{referral}/status");
    for (path, token) in [
        ("/fhir/ServiceRequest", Some(GP_TOKEN)),
        ("/oauth2/token", None),
        (vcs_status.as_str(), Some(VCS_TOKEN)),
        ("/admin/v1/deliveries/msg_x/retry", Some(ADMIN_TOKEN)),
    ] {
        let (answer, took) = trickle(&gateway, path, token);
        assert!(
            took < Duration::from_secs(5),
            "{path}: held for {took:?} (body_timeout is 2 s)"
        );
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "{path}: {answer}"
        );
    }
    let (status, _) = send(gateway.get(&format!("/fhir/ServiceRequest/{referral}")));
    assert_eq!(status, 200, "the gateway still serves");
}

fn with_limits(config: String, limits: &str) -> String {
    config.replace(
        "max_json_depth = 64",
        &format!("max_json_depth = 64\n{limits}"),
    )
}

/// The limiter was keyed by the raw `Authorization` header before authentication: each made-up
/// token got a fresh bucket (and memory). Now a token that authenticates nobody is counted in
/// its sender's address bucket, so a flood of them is throttled while real clients are served.
#[test]
fn made_up_tokens_share_one_bucket_and_real_clients_are_served() {
    let gateway = Gateway::start_with(
        |c| with_limits(c, "rate_limit_per_second = 5\nrate_limit_burst = 20"),
        &[],
    );
    let mut statuses = std::collections::BTreeMap::new();
    let started = std::time::Instant::now();
    for i in 0..300 {
        let status = gateway
            .http
            .get(gateway.url("/fhir/ServiceRequest"))
            .bearer_auth(format!("made-up-{i}"))
            .send()
            .expect("request")
            .status()
            .as_u16();
        *statuses.entry(status).or_insert(0) += 1;
    }
    // One bucket lets through its burst (20) and what refills (5/s) while the flood lasts, on
    // however slow a machine; 300 buckets would have let every request through.
    let refilled = (started.elapsed().as_secs_f64() * 5.0).ceil() as usize;
    let allowed = 20 + refilled + 1;
    let unauthorized = statuses.get(&401).copied().unwrap_or(0);
    assert!(
        (1..=allowed).contains(&unauthorized),
        "{statuses:?}, at most {allowed}"
    );
    assert_eq!(
        statuses.get(&429).copied().unwrap_or(0),
        300 - unauthorized,
        "{statuses:?}"
    );
    assert!(
        unauthorized < 150,
        "{statuses:?}: the flood was not throttled"
    );
    let (status, body) = send(gateway.get("/fhir/ServiceRequest"));
    assert_eq!(status, 200, "the real client has its own bucket: {body}");
    let (status, _) = send(
        gateway
            .http
            .get(gateway.url("/vcs/v1/referrals"))
            .bearer_auth(VCS_TOKEN),
    );
    assert_eq!(status, 200);
}

/// Each VCS organisation has a write budget of its own: past it, `429` with `Retry-After`, and
/// other organisations are not held up.
#[test]
fn an_organisation_over_its_write_limit_gets_429() {
    let gateway = Gateway::start_with(
        |c| with_limits(c, "vcs_writes_per_minute = 6\nvcs_write_burst = 3"),
        &[],
    );
    let referral = gateway.refer("REF-WRITES");
    let write = |token: &str| {
        gateway
            .http
            .post(gateway.url(&format!("/vcs/v1/referrals/{referral}/status")))
            .bearer_auth(token)
            .json(&serde_json::json!({"status": "contacted", "occurred_at": "2026-05-10T14:00:00+01:00"}))
            .send()
            .expect("request")
    };
    for _ in 0..3 {
        assert_ne!(write(VCS_TOKEN).status(), 429);
    }
    let refused = write(VCS_TOKEN);
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=10).contains(&retry_after), "{retry_after}");
    assert!(refused.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .starts_with("application/problem+json"));
    // Another organisation's writes are its own (this referral is not theirs: 404, not 429).
    assert_eq!(write("demo-vcs-knit-natter").status(), 404);
    // Reads are not writes.
    let (status, _) = send(
        gateway
            .http
            .get(gateway.url(&format!("/vcs/v1/referrals/{referral}")))
            .bearer_auth(VCS_TOKEN),
    );
    assert_eq!(status, 200);
}

/// `channel.header` entries are sent with every notification: one that sets `Host`,
/// `Authorization`, a hop-by-hop header or our signature headers would redirect or forge the
/// request. Refused on create, each named.
#[test]
fn a_subscription_may_not_set_reserved_headers() {
    let gateway = Gateway::start();
    let subscription = |headers: serde_json::Value| {
        serde_json::json!({
            "resourceType": "Subscription", "status": "requested", "reason": "Follow",
            "criteria": "Task",
            "channel": {"type": "rest-hook", "endpoint": "https://gp.example.org/notify",
                        "payload": "application/fhir+json", "header": headers}
        })
    };
    let reserved = [
        "Host: internal.example",
        "authorization: Bearer stolen",
        "Connection: close",
        "Keep-Alive: timeout=5",
        "Proxy-Authorization: Basic eA==",
        "TE: trailers",
        "Trailer: Expires",
        "Transfer-Encoding: chunked",
        "Upgrade: h2c",
        "webhook-signature: v1,forged",
        "X-Broken\r\nHost: x",
    ];
    let mut headers = vec!["X-Listener-Token: fine"];
    headers.extend(reserved);
    let (status, outcome) = send(gateway.post_json(
        "/fhir/Subscription",
        &subscription(serde_json::json!(headers)),
    ));
    assert_eq!(status, 422, "{outcome}");
    assert_outcome(&outcome);
    let named: Vec<String> = issue_expressions(&outcome)
        .into_iter()
        .map(|(_, _, expression)| expression)
        .collect();
    let expected: Vec<String> = (1..=reserved.len())
        .map(|n| format!("Subscription.channel.header[{n}]"))
        .collect();
    assert_eq!(named, expected, "{outcome}");
    let (status, created) = send(gateway.post_json(
        "/fhir/Subscription",
        &subscription(serde_json::json!(["X-Listener-Token: fine"])),
    ));
    assert_eq!(status, 201, "{created}");
}

/// The service directory is read by VCS organisations too: their reads are counted in their own
/// bucket like their other requests, not let through uncounted.
#[test]
fn directory_reads_by_an_organisation_are_counted() {
    let gateway = Gateway::start_with(
        |c| with_limits(c, "rate_limit_per_second = 1\nrate_limit_burst = 5"),
        &[],
    );
    let mut throttled = 0;
    for _ in 0..30 {
        let (status, _) = send(
            gateway
                .http
                .get(gateway.url("/fhir/HealthcareService?active=true"))
                .bearer_auth(VCS_TOKEN),
        );
        assert!(status == 200 || status == 429, "{status}");
        throttled += usize::from(status == 429);
    }
    assert!(throttled >= 15, "{throttled} of 30 throttled");
}
