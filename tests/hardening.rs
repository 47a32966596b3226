//! Inputs found to harm the gateway, each kept as the test that would have caught it.

mod common;

use common::receiver::Receiver;
use common::*;

const READER_TOKEN: &str = "reader-token";

fn with_reader(config: String) -> String {
    format!(
        "{config}\n[[clients]]\nid = \"reader\"\ntoken = \"{READER_TOKEN}\"\nscopes = [\"system/ServiceRequest.read\"]\n"
    )
}

/// 10 KB of XML nested 1,500 elements deep overflowed the XML reader's stack and aborted the
/// whole process, from a read-only token's `$validate`. Now: a 400 naming the limit, and the
/// gateway goes on.
#[test]
fn deeply_nested_xml_is_a_400_and_the_gateway_lives_on() {
    let mut gateway = Gateway::start_with(with_reader, &[]);
    let body = format!(
        "<ServiceRequest xmlns=\"http://hl7.org/fhir\">{}",
        "<a>".repeat(1500)
    );
    for path in [
        "/fhir/ServiceRequest/$validate",
        "/fhir/ServiceRequest",
        "/fhir",
    ] {
        let (status, outcome) = send(
            gateway
                .http
                .post(gateway.url(path))
                .bearer_auth(if path.ends_with("$validate") {
                    READER_TOKEN
                } else {
                    GP_TOKEN
                })
                .header("content-type", FHIR_XML)
                .body(body.clone()),
        );
        assert_eq!(status, 400, "{path}: {outcome}");
        assert_outcome(&outcome);
        assert!(
            outcome
                .to_string()
                .contains("nested more than 64 elements deep"),
            "{outcome}"
        );
    }
    assert!(gateway.is_running());
    let (status, _) = send(gateway.http.get(gateway.url("/fhir/metadata")));
    assert_eq!(status, 200);
}

/// reqwest follows HTTPS_PROXY/HTTP_PROXY by default, and a proxy resolves the receiver's name
/// itself, past the SSRF guard. Without `[delivery] proxy` the variables are ignored.
#[test]
fn proxy_variables_are_ignored_unless_a_proxy_is_configured() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let proxy_url = format!("http://{}", proxy.local_addr().expect("addr"));
    let connections = Arc::new(AtomicUsize::new(0));
    let seen = connections.clone();
    std::thread::spawn(move || {
        for stream in proxy.incoming() {
            seen.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    let receiver = Receiver::start();
    let base = receiver.base.clone();
    let gateway = Gateway::start_with(
        move |c| deliver_to(c, &base, &["1s"]),
        &[
            ("HTTP_PROXY", proxy_url.as_str()),
            ("HTTPS_PROXY", proxy_url.as_str()),
            ("ALL_PROXY", proxy_url.as_str()),
            ("http_proxy", proxy_url.as_str()),
        ],
    );
    gateway.refer("PROXY-1");
    receiver.wait_for(
        std::time::Duration::from_secs(30),
        "the webhook, sent directly",
        |r| !r.is_empty(),
    );
    assert_eq!(connections.load(Ordering::SeqCst), 0, "the proxy was used");
}

/// serde_json keeps the last of two equal keys, so `"status"` twice meant whatever came last:
/// the stored body must mean one thing. A duplicate key is a 400 naming it.
#[test]
fn a_duplicate_json_key_is_a_400() {
    let gateway = Gateway::start();
    let mut body = contained_referral("DUP-1").to_string();
    body = body.replacen(
        "\"status\":\"active\"",
        "\"status\":\"active\",\"status\":\"revoked\"",
        1,
    );
    assert!(body.contains("\"status\":\"revoked\""), "{body}");
    let (status, outcome) = send(gateway.post_bytes("/fhir/ServiceRequest", FHIR_JSON, body));
    assert_eq!(status, 400, "{outcome}");
    assert_outcome(&outcome);
    assert!(outcome.to_string().contains("appears twice"), "{outcome}");
}

/// A VCS note with a control character passed the JSON Schema, broke the generated Task's
/// profile, and came back as a 500 with the note (and the NHS number in it) in an ERROR line.
/// Times that RFC 3339 allows but FHIR cannot write did the same. Now: a 422 naming the field,
/// nothing stored, and nothing of the note in the log.
#[test]
fn vcs_reports_fhir_cannot_hold_are_a_422_and_stay_out_of_the_log() {
    let receiver = Receiver::start();
    let base = receiver.base.clone();
    let gateway = Gateway::start_capturing_logs(move |c| deliver_to(c, &base, &["1s"]), "trace");
    let referral = gateway.refer("REF-HARDEN-VCS");
    let path = format!("/vcs/v1/referrals/{referral}/status");
    let post = |body: serde_json::Value| {
        send(
            gateway
                .http
                .post(gateway.url(&path))
                .bearer_auth("demo-vcs-carers-count")
                .json(&body),
        )
    };
    let note = "NHS 943 476 5919 called\u{1}";
    for (body, field) in [
        (
            serde_json::json!({"status": "accepted", "note": note, "occurred_at": "2026-05-10T14:00:00Z"}),
            "note",
        ),
        (
            serde_json::json!({"status": "accepted", "occurred_at": "0000-01-01T00:00:00Z"}),
            "occurred_at",
        ),
        (
            serde_json::json!({"status": "accepted", "occurred_at": "9999-12-31T23:59:59-23:59"}),
            "occurred_at",
        ),
        (
            serde_json::json!({"instrument": "ons4", "timepoint": "baseline", "answers": [6, 7, 5, 3],
                               "occurred_at": "0000-01-01T00:00:00Z"}),
            "occurred_at",
        ),
    ] {
        let outcome = body.get("instrument").is_some();
        let (code, problem) = if outcome {
            send(
                gateway
                    .http
                    .post(gateway.url(&format!("/vcs/v1/referrals/{referral}/outcomes")))
                    .bearer_auth("demo-vcs-carers-count")
                    .json(&body),
            )
        } else {
            post(body.clone())
        };
        assert_eq!(code, 422, "{body}: {problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{body}: {problem}");
    }
    // Nothing was recorded: the Task is still as the referral left it.
    let (_, tasks) = send(gateway.get(&format!("/fhir/Task?focus=ServiceRequest/{referral}")));
    assert_eq!(
        tasks["entry"][0]["resource"]["status"], "requested",
        "{tasks}"
    );
    // And a tab and line breaks are text, as FHIR has it.
    let (code, answer) = post(serde_json::json!({"status": "accepted",
        "note": "Phoned.\r\n\tFirst visit Tuesday", "occurred_at": "2026-05-10T14:00:00+14:00"}));
    assert_eq!(code, 200, "{answer}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let logs = gateway.logs();
    assert!(!logs.contains("943 476 5919"), "the note reached the log");
    assert!(!logs.contains("ERROR"), "an ERROR was logged:\n{logs}");
}

/// `_revinclude` repeated 2,800 times ran a query per repeat per referral (a 22 MB answer, 290 MB
/// of memory). Now identical repeats count once, and a search naming more than 32 parameters is a
/// 400 before any query runs.
#[test]
fn repeated_search_parameters_cost_nothing_extra() {
    let gateway = Gateway::start_with(|c| c, &[]);
    let referral = gateway.refer("REF-HARDEN-REVINCLUDE");
    let repeated = "&_revinclude=Task:focus".repeat(2800);
    let (status, bundle) = send(gateway.get(&format!(
        "/fhir/ServiceRequest?identifier=REF-HARDEN-REVINCLUDE{repeated}"
    )));
    assert_eq!(status, 200, "{bundle}");
    let entries = bundle["entry"].as_array().expect("entries");
    let tasks = entries
        .iter()
        .filter(|e| e["resource"]["resourceType"] == "Task")
        .count();
    assert_eq!(tasks, 1, "one Task, once");
    assert!(entries
        .iter()
        .any(|e| e["resource"]["id"] == serde_json::json!(referral)));

    let many: String = (0..40).map(|i| format!("&x{i}=1")).collect();
    let (status, outcome) = send(gateway.get(&format!("/fhir/ServiceRequest?status=active{many}")));
    assert_eq!(status, 400, "{outcome}");
    assert!(outcome["issue"][0]["diagnostics"]
        .as_str()
        .is_some_and(|d| d.contains("at most 32")));
}

fn db_bytes(gateway: &Gateway) -> u64 {
    let db = gateway.db_path();
    let wal = db.with_file_name("gateway.db-wal");
    [db, wal]
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum()
}

/// 150 status reports with 9 Subscriptions grew the database from 10 MB to 728 MB: every Task
/// version re-copied every earlier note, and every Subscription's outbox row held its own copy
/// of the Task. Now a version carries its own note alone and notifications name the stored
/// version, so the same reports, each with the longest note allowed, grow it by a few MB.
#[test]
fn status_reports_with_many_subscriptions_grow_the_database_boundedly() {
    let receiver = Receiver::start();
    let base = receiver.base.clone();
    // 150 reports in a second or two: above the organisation's write limit, which is not what
    // this test is about.
    let gateway = Gateway::start_with(
        move |c| deliver_to(c, &base, &["1s"]),
        &[("SP_GATEWAY_SERVER__VCS_WRITE_BURST", "1000")],
    );
    for n in 0..9 {
        let subscription = serde_json::json!({
            "resourceType": "Subscription", "status": "requested", "reason": "Follow referrals",
            "criteria": "Task",
            "channel": {"type": "rest-hook", "endpoint": format!("{}/gp-{n}", receiver.base),
                        "payload": "application/fhir+json"}
        });
        let (status, created) = send(gateway.post_json("/fhir/Subscription", &subscription));
        assert_eq!(status, 201, "{created}");
    }
    let referral = gateway.refer("REF-DISK-FILL");
    let before = db_bytes(&gateway);
    let note = "Phoned; no answer, left a message. ".repeat(110);
    assert!(note.chars().count() <= 4000);
    for n in 0..150 {
        let status = if n == 0 { "accepted" } else { "contacted" };
        let (code, answer) = send(
            gateway
                .http
                .post(gateway.url(&format!("/vcs/v1/referrals/{referral}/status")))
                .bearer_auth("demo-vcs-carers-count")
                .json(&serde_json::json!({"status": status, "note": note,
                                          "occurred_at": "2026-05-10T14:00:00Z"})),
        );
        assert_eq!(code, 200, "report {n}: {answer}");
    }
    let grown = db_bytes(&gateway).saturating_sub(before);
    eprintln!("150 reports x 9 Subscriptions grew the database by {grown} bytes");
    assert!(grown < 20 * 1024 * 1024, "grew by {grown} bytes");
    // The GP still reads every note: the current version has the latest, the history all.
    let (_, tasks) = send(gateway.get(&format!("/fhir/Task?focus=ServiceRequest/{referral}")));
    let task = &tasks["entry"][0]["resource"];
    assert_eq!(task["note"].as_array().map(Vec::len), Some(1), "{task}");
    assert_eq!(task["note"][0]["text"], note.trim());
    let task_id = task["id"].as_str().expect("a Task id");
    let (_, history) = send(gateway.get(&format!("/fhir/Task/{task_id}/_history")));
    let with_note = history["entry"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["resource"]["note"][0]["text"] == note.trim())
        .count();
    assert_eq!(history["total"], 151, "{}", history["total"]);
    assert_eq!(with_note, 150, "one note per report in the history");
    // Notifications carry the Task version they are about, each in full.
    let hooks = receiver.wait_for(
        std::time::Duration::from_secs(60),
        "a notification to each Subscription",
        |r| r.iter().filter(|h| h.path.starts_with("/gp-")).count() >= 9,
    );
    let notification = hooks
        .iter()
        .find(|h| h.path.starts_with("/gp-"))
        .expect("a notification");
    assert_eq!(notification.json()["resourceType"], "Task");
    assert_eq!(notification.json()["id"], task_id);
}

/// Each active Subscription multiplies what a change queues: a client may hold
/// `max_subscriptions` (default 10), and the next is refused with a 422 naming the limit.
#[test]
fn a_client_holds_at_most_its_subscription_limit() {
    let gateway = Gateway::start();
    let subscription = serde_json::json!({
        "resourceType": "Subscription", "status": "requested", "reason": "Follow referrals",
        "criteria": "Task", "channel": {"type": "rest-hook", "endpoint": "https://gp.example/hook"}
    });
    let mut ids = Vec::new();
    for _ in 0..10 {
        let (status, created) = send(gateway.post_json("/fhir/Subscription", &subscription));
        assert_eq!(status, 201, "{created}");
        ids.push(created["id"].as_str().expect("id").to_string());
    }
    let (status, outcome) = send(gateway.post_json("/fhir/Subscription", &subscription));
    assert_eq!(status, 422, "{outcome}");
    assert_outcome(&outcome);
    assert!(
        outcome.to_string().contains("subscription-limit"),
        "{outcome}"
    );
    let deleted = gateway
        .http
        .delete(gateway.url(&format!("/fhir/Subscription/{}", ids[0])))
        .bearer_auth(GP_TOKEN)
        .send()
        .expect("delete");
    assert!(deleted.status().is_success());
    let (status, created) = send(gateway.post_json("/fhir/Subscription", &subscription));
    assert_eq!(
        status, 201,
        "a deleted Subscription frees its place: {created}"
    );
}

/// Past `[storage] max_bytes`, writes are refused before the disk is full: 507 with an
/// OperationOutcome on the FHIR API, 507 problem+json on the VCS API; reads go on.
#[test]
fn writes_over_the_storage_budget_are_507() {
    let gateway = Gateway::start_with(
        |c| c.replacen("url = \"sqlite://", "max_bytes = 1\nurl = \"sqlite://", 1),
        &[],
    );
    writes_are_refused_with_507(&gateway, "REF-OVER-BUDGET");
}

/// A referral (FHIR API) and a status report (VCS API) are refused with 507, each in its API's
/// error form; reads go on.
fn writes_are_refused_with_507(gateway: &Gateway, reference: &str) {
    let (status, outcome) =
        send(gateway.post_json("/fhir/ServiceRequest", &contained_referral(reference)));
    assert_eq!(status, 507, "{outcome}");
    assert_outcome(&outcome);
    assert!(outcome.to_string().contains("storage-full"), "{outcome}");
    let response = gateway
        .http
        .post(gateway.url("/vcs/v1/referrals/any/status"))
        .bearer_auth("demo-vcs-carers-count")
        .json(&serde_json::json!({"status": "accepted", "occurred_at": "2026-05-10T14:00:00Z"}))
        .send()
        .expect("request");
    assert_eq!(response.status().as_u16(), 507);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    let (status, _) = send(gateway.get("/fhir/ServiceRequest"));
    assert_eq!(status, 200, "reads go on");
}

/// The SQLite WAL is disk the database takes (it keeps its largest size): `max_bytes` counts it,
/// so a budget the pages alone would stay under for many referrals refuses writes once the
/// file, its WAL and its shared memory reach it.
#[test]
fn the_storage_budget_counts_the_sqlite_wal() {
    const BUDGET: u64 = 4 << 20;
    let gateway = Gateway::start_with(
        |c| {
            c.replacen(
                "url = \"sqlite://",
                &format!("max_bytes = {BUDGET}\nurl = \"sqlite://"),
                1,
            )
        },
        &[],
    );
    let db = gateway.db_path();
    let on_disk = |suffix: &str| {
        let mut path = db.clone().into_os_string();
        path.push(suffix);
        std::fs::metadata(path).map_or(0, |m| m.len())
    };
    let mut refused = None;
    for n in 0..400 {
        let (status, body) = send(gateway.post_json(
            "/fhir/ServiceRequest",
            &contained_referral(&format!("REF-WAL-{n}")),
        ));
        match status {
            201 => {}
            507 => {
                refused = Some(n);
                break;
            }
            other => panic!("{other}: {body}"),
        }
    }
    let accepted = refused.expect("the budget was reached");
    assert!(accepted > 0, "the first referral fitted");
    let files = on_disk("") + on_disk("-wal") + on_disk("-shm");
    assert!(files >= BUDGET, "{files} bytes on disk at the refusal");
    // What the pages alone take (the measure before the WAL was counted) is under the budget:
    // only the WAL tipped it.
    let conn =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open the database read-only");
    let pages: i64 = conn
        .query_row(
            "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
            [],
            |row| row.get(0),
        )
        .expect("page count");
    assert!((pages as u64) < BUDGET, "{pages} bytes of pages");
    let (status, _) = send(gateway.get("/fhir/ServiceRequest"));
    assert_eq!(status, 200, "reads go on");
}

/// `[storage] min_free_bytes`: while the filesystem holding the database has less free space
/// than the floor, writes are refused with 507 (on both APIs) whatever the budget, reads go on,
/// and the log says why; a floor of 0 turns the check off.
#[test]
fn writes_are_507_when_the_disk_is_nearly_full() {
    // No test disk has an exbibyte free: the floor is always above what is free.
    let floor = |bytes: u64| {
        move |c: String| {
            c.replacen(
                "url = \"sqlite://",
                &format!("min_free_bytes = {bytes}\nurl = \"sqlite://"),
                1,
            )
        }
    };
    let gateway = Gateway::start_capturing_logs(floor(1 << 60), "info");
    writes_are_refused_with_507(&gateway, "REF-DISK-LOW");
    let logs = gateway.logs();
    assert!(
        logs.contains("less than the 1152921504606846976 kept free"),
        "{logs}"
    );

    let gateway = Gateway::start_with(floor(0), &[]);
    let (status, created) =
        send(gateway.post_json("/fhir/ServiceRequest", &contained_referral("REF-NO-FLOOR")));
    assert_eq!(status, 201, "{created}");
}

/// A Subscription may state what its notifications carry with the Subscriptions Backport's
/// payload content: `full-resource` and `empty` are served; `id-only` is refused with a 422
/// rather than silently sent in full.
#[test]
fn subscription_payload_content_is_honoured_or_refused() {
    let gateway = Gateway::start();
    let with_content = |code: &str| {
        serde_json::json!({
            "resourceType": "Subscription", "status": "requested", "reason": "Follow referrals",
            "criteria": "Task",
            "channel": {"type": "rest-hook", "endpoint": "https://gp.example/hook",
                        "payload": "application/fhir+json",
                        "_payload": {"extension": [{
                            "url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content",
                            "valueCode": code}]}}
        })
    };
    for code in ["empty", "full-resource"] {
        let (status, created) = send(gateway.post_json("/fhir/Subscription", &with_content(code)));
        assert_eq!(status, 201, "{code}: {created}");
    }
    let (status, outcome) = send(gateway.post_json("/fhir/Subscription", &with_content("id-only")));
    assert_eq!(status, 422, "{outcome}");
    assert!(outcome.to_string().contains("id-only"), "{outcome}");
}
