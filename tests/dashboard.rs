//! The operator pages over real HTTP: operators sign in through the inbox's sign-in and land on
//! `/admin`, members of an organisation are refused there (and operators in the inbox); the
//! overview, the dead letters with **Retry** and **Recover**, an endpoint's **Enable**, intake
//! refusals over time and the audit trail, each action checked through the JSON API too.

mod common;

use std::time::{Duration, Instant};

use common::receiver::{Receiver, Reply};
use common::web::*;
use common::*;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);
const OPS: &str = "ops@gateway.example";

fn operator(gateway: &Gateway) -> Browser<'_> {
    add_user(gateway, &["--role", "operator", "--email", OPS]);
    let ops = Browser::new(gateway);
    assert_eq!(ops.sign_in(OPS, PASSWORD, ""), (303, "/admin".to_string()));
    ops
}

fn state_of(gateway: &Gateway, message: &str) -> String {
    let (_, body) = gateway.admin_get("/admin/v1/deliveries?limit=500");
    body["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|d| d["id"] == message)
        .map(|d| d["state"].as_str().expect("state").to_string())
        .expect("the message")
}

#[test]
fn operators_get_the_operator_pages_and_members_the_inbox() {
    let gateway = Gateway::start();
    // Not signed in: to the shared sign-in page.
    let anonymous = Browser::new(&gateway);
    assert_eq!(anonymous.get("/admin"), (303, "/inbox/login".to_string()));
    assert_eq!(
        anonymous.get("/admin/dead-letters"),
        (303, "/inbox/login".to_string())
    );

    let ops = operator(&gateway);
    let (status, page) = ops.get("/admin");
    assert_eq!(status, 200, "{page}");
    for part in [
        "Overview",
        "Deliveries by organisation",
        "Carers Count",
        "Endpoints",
        "Directory feeds",
        "messages waiting to be sent",
        "aria-current=\"page\"",
    ] {
        assert!(page.contains(part), "{part}: {page}");
    }
    // Signed in already: the sign-in page sends an operator home.
    assert_eq!(ops.get("/inbox/login"), (303, "/admin".to_string()));
    // An operator belongs to no organisation: the inbox refuses them.
    let (status, page) = ops.get("/inbox");
    assert_eq!(status, 403);
    assert!(page.contains("/admin"), "{page}");

    add_user(
        &gateway,
        &["--org", "carers-count", "--email", "ann@carers.example"],
    );
    let ann = Browser::new(&gateway);
    assert_eq!(
        ann.sign_in("ann@carers.example", PASSWORD, ""),
        (303, "/inbox".to_string())
    );
    let (_, list) = ann.get("/inbox");
    let ann_csrf = csrf_of(&list);
    for path in [
        "/admin",
        "/admin/dead-letters",
        "/admin/refusals",
        "/admin/audit",
    ] {
        assert_eq!(ann.get(path).0, 403, "{path}");
    }
    let (status, _) = ann.post(
        "/admin/endpoints/carers-count/enable",
        &[("csrf", &ann_csrf)],
    );
    assert_eq!(status, 403);

    // The operator signs out through the same form.
    let (_, page) = ops.get("/admin");
    let csrf = csrf_of(&page);
    assert_eq!(ops.post("/inbox/logout", &[("csrf", "forged")]).0, 403);
    assert_eq!(
        ops.post("/inbox/logout", &[("csrf", &csrf)]),
        (303, "/inbox/login".to_string())
    );
    assert_eq!(ops.get("/admin"), (303, "/inbox/login".to_string()));
}

#[test]
fn dead_letters_are_retried_and_recovered_and_an_endpoint_enabled_from_the_pages() {
    let receiver = Receiver::start();
    receiver.answer(|_| Reply::status(500));
    let base = receiver.base.clone();
    let gateway = Gateway::start_with(move |c| deliver_to(c, &base, &["1s"]), &[]);
    gateway.refer("REF-DEAD-1");
    gateway.refer("REF-DEAD-2");
    let dead = dead_letters(&gateway, 2);
    receiver.answer(|_| Reply::status(204));

    let ops = operator(&gateway);
    // The overview: both dead, the webhook's failures since its last success.
    let (_, page) = ops.get("/admin");
    assert!(page.contains("Dead: </span>2"), "{page}");
    assert!(page.contains("Failures since: </span>4 (last"), "{page}");
    let (status, page) = ops.get("/admin/dead-letters");
    assert_eq!(status, 200);
    for id in &dead {
        assert!(page.contains(id.as_str()), "{id}: {page}");
    }
    assert!(page.contains("HTTP 500") || page.contains("500"), "{page}");
    let csrf = csrf_of(&page);

    // Retry: without the token refused; with it, PRG to a confirmation and the message goes.
    let retry = format!("/admin/dead-letters/{}/retry", dead[0]);
    assert_eq!(ops.post(&retry, &[]).0, 403);
    assert_eq!(state_of(&gateway, &dead[0]), "dead");
    let (status, to) = ops.post(&retry, &[("csrf", &csrf)]);
    assert_eq!(status, 303);
    assert_eq!(to, format!("/admin/dead-letters?retried={}", dead[0]));
    let (_, page) = ops.get(&to);
    assert!(page.contains("is back in the queue"), "{page}");
    let deadline = Instant::now() + WAIT;
    while state_of(&gateway, &dead[0]) != "delivered" {
        assert!(
            Instant::now() < deadline,
            "the retried message was not delivered"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        ops.post("/admin/dead-letters/msg-unknown/retry", &[("csrf", &csrf)])
            .0,
        409
    );

    // Recover: the organisation's remaining dead letter goes back in the queue.
    let recover = |fields: &[(&str, &str)]| ops.post("/admin/recover", fields);
    assert_eq!(
        recover(&[("csrf", &csrf), ("vcs", "carers-count"), ("days", "3")]).0,
        400
    );
    assert_eq!(
        recover(&[("csrf", &csrf), ("vcs", "nobody"), ("days", "1")]).0,
        404
    );
    let (status, to) = recover(&[("csrf", &csrf), ("vcs", "carers-count"), ("days", "1")]);
    assert_eq!(status, 303);
    assert_eq!(to, "/admin/dead-letters?recovered=carers-count&messages=1");
    let (_, page) = ops.get(&to);
    assert!(
        page.contains("1 dead message of carers-count went back"),
        "{page}"
    );
    let deadline = Instant::now() + WAIT;
    while state_of(&gateway, &dead[1]) != "delivered" {
        assert!(
            Instant::now() < deadline,
            "the recovered message was not delivered"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, page) = ops.get("/admin");
    assert!(page.contains("Failures since: </span>0"), "{page}");

    // Enable: an endpoint switched off through the API is switched on from the overview.
    assert_eq!(
        gateway.admin_post("/admin/v1/vcs/carers-count/disable").0,
        200
    );
    let (_, page) = ops.get("/admin");
    assert!(page.contains("Switched off"), "{page}");
    assert!(page.contains("action=\"/admin/endpoints/carers-count/enable\""));
    let enable = "/admin/endpoints/carers-count/enable";
    assert_eq!(ops.post(enable, &[("csrf", "forged")]).0, 403);
    assert_eq!(
        ops.post("/admin/endpoints/nobody/enable", &[("csrf", &csrf)])
            .0,
        404
    );
    let (status, to) = ops.post(enable, &[("csrf", &csrf)]);
    assert_eq!((status, to.as_str()), (303, "/admin?enabled=carers-count"));
    let (_, page) = ops.get(&to);
    assert!(page.contains("is switched on"), "{page}");
    assert!(!page.contains("Switched off"), "{page}");
    let (_, vcs) = gateway.admin_get("/admin/v1/vcs");
    let carers = vcs["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|v| v["vcs_id"] == "carers-count")
        .cloned()
        .expect("carers-count");
    assert_eq!(carers["enabled"], true, "{carers}");

    // Each action is in the audit trail, by the operator's account; the audit page shows it
    // without any patient's record, and viewing it is recorded too.
    let (status, page) = ops.get("/admin/audit?action=retry");
    assert_eq!(status, 200);
    assert!(page.contains("person:"), "{page}");
    assert!(
        page.contains(&format!("OutboxMessage {}", dead[0])),
        "{page}"
    );
    assert!(
        page.contains("refused"),
        "the unknown message's retry: {page}"
    );
    let (_, page) = ops.get("/admin/audit?action=enable");
    assert!(page.contains("Organization carers-count"), "{page}");
    let (_, page) = ops.get("/admin/audit?action=search");
    assert!(page.contains("AuditEvent"), "{page}");
    assert!(page.contains("(a patient&#39;s record)") || page.contains("(a patient's record)"));
    assert_eq!(ops.get("/admin/audit?patient=x").0, 400);
}

#[test]
fn intake_refusals_are_counted_by_day_client_and_rule() {
    let gateway = Gateway::start();
    let ops = operator(&gateway);
    let (_, page) = ops.get("/admin/refusals");
    assert!(page.contains("No refusals in this period."), "{page}");
    let mut broken = contained_referral("REF-REFUSED");
    broken["status"] = json!("no-such-status");
    for _ in 0..2 {
        let (status, _) = send(gateway.post_json("/fhir/ServiceRequest", &broken));
        assert!((400..500).contains(&status), "{status}");
    }
    let (status, page) = ops.get("/admin/refusals");
    assert_eq!(status, 200);
    assert!(page.contains("GP client: </span>emis-demo"), "{page}");
    assert!(page.contains("Refusals: </span>2"), "{page}");
    let (status, page) = ops.get("/admin/refusals?days=30&by=week");
    assert_eq!(status, 200);
    assert!(page.contains("Week of"), "{page}");
    assert!(page.contains("Refusals: </span>2"), "{page}");
    assert_eq!(ops.get("/admin/refusals?days=5").0, 400);
    assert_eq!(ops.get("/admin/refusals?by=year").0, 400);
}
