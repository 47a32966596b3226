//! Polled directory feeds against the real server: a small Open Referral UK API (two list
//! pages, a short list entry completed from `/services/{id}`, two invalid services) is read by
//! the feed's poller at start, answers `304` to the next poll's `If-None-Match`, and later drops
//! a service, which the next (full) poll withdraws. The admin API shows each poll's result.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const PAGE_1: &str = include_str!("../fixtures/directory/herefordshire-page-1.oruk.json");
const PAGE_2: &str = include_str!("../fixtures/directory/herefordshire-page-2.oruk.json");
const CARERS: &str = "bd00442a-ac4f-56ca-a391-d464e61acacb";
const TELEPHONE: &str = "3920cc5e-105e-53c0-937d-3cb4fba9e101";

/// What the feed publishes now.
struct Published {
    etag: String,
    pages: Vec<Value>,
    services: HashMap<String, Value>,
}

/// A request the feed received: its path and query, and its `If-None-Match`.
#[derive(Debug, Clone)]
struct Seen {
    url: String,
    if_none_match: Option<String>,
}

/// An Open Referral UK API on a loopback port: `/api/services?page=N` and `/api/services/{id}`,
/// with an ETag, answering `304` when `If-None-Match` names the current one.
struct FeedServer {
    base: String,
    published: Arc<Mutex<Published>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
}

impl FeedServer {
    fn start(published: Published) -> FeedServer {
        let server = tiny_http::Server::http("127.0.0.1:0").expect("feed server");
        let base = format!("http://{}/api", server.server_addr().to_ip().expect("ip"));
        let published = Arc::new(Mutex::new(published));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s, st) = (published.clone(), seen.clone(), stop.clone());
        std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                let Ok(Some(request)) = server.recv_timeout(Duration::from_millis(100)) else {
                    continue;
                };
                let if_none_match = request
                    .headers()
                    .iter()
                    .find(|h| h.field.equiv("If-None-Match"))
                    .map(|h| h.value.as_str().to_string());
                let url = request.url().to_string();
                s.lock().unwrap().push(Seen {
                    url: url.clone(),
                    if_none_match: if_none_match.clone(),
                });
                let published = p.lock().unwrap();
                let etag = tiny_http::Header::from_bytes("ETag", published.etag.as_bytes())
                    .expect("header");
                let response = if if_none_match.as_deref() == Some(published.etag.as_str()) {
                    tiny_http::Response::from_string("").with_status_code(304)
                } else if let Some(n) = url.strip_prefix("/api/services?page=") {
                    match n
                        .parse::<usize>()
                        .ok()
                        .and_then(|n| published.pages.get(n - 1))
                    {
                        Some(page) => tiny_http::Response::from_string(page.to_string()),
                        None => tiny_http::Response::from_string("{}").with_status_code(404),
                    }
                } else if let Some(id) = url.strip_prefix("/api/services/") {
                    match published.services.get(id) {
                        Some(service) => tiny_http::Response::from_string(service.to_string()),
                        None => tiny_http::Response::from_string("{}").with_status_code(404),
                    }
                } else {
                    tiny_http::Response::from_string("{}").with_status_code(404)
                };
                drop(published);
                let _ = request.respond(response.with_header(etag));
            }
        });
        FeedServer {
            base,
            published,
            seen,
            stop,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for FeedServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The Herefordshire fixture pages, with the Carers' Café listed in its short form (one-to-one
/// fields only) and served whole at `/services/{id}`.
fn herefordshire() -> Published {
    let mut page_1: Value = serde_json::from_str(PAGE_1).expect("page 1");
    let page_2: Value = serde_json::from_str(PAGE_2).expect("page 2");
    let contents = page_1["contents"].as_array_mut().expect("contents");
    let at = contents
        .iter()
        .position(|s| s["id"] == CARERS)
        .expect("the café is on page 1");
    let full = contents[at].clone();
    contents[at] = json!({"id": CARERS, "name": full["name"], "status": full["status"],
                          "description": full["description"]});
    Published {
        etag: "\"v1\"".into(),
        pages: vec![page_1, page_2],
        services: HashMap::from([(CARERS.to_string(), full)]),
    }
}

fn last_poll(gateway: &Gateway) -> Value {
    let (status, feeds) = gateway.admin_get("/admin/v1/directory/feeds");
    assert_eq!(status, 200, "{feeds}");
    assert_eq!(feeds["items"].as_array().map(Vec::len), Some(1), "{feeds}");
    feeds["items"][0].clone()
}

fn found(gateway: &Gateway, query: &str) -> Vec<String> {
    let (status, bundle) = send(gateway.get(&format!("/fhir/HealthcareService?{query}")));
    assert_eq!(status, 200, "{bundle}");
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["resource"]["name"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn a_polled_feed_is_imported_then_not_modified_then_withdraws_what_it_dropped() {
    let feed = FeedServer::start(herefordshire());
    let base = feed.base.clone();
    let gateway = Gateway::start_with(
        |config| {
            format!(
                "{config}\n[[directory.feeds]]\nid = \"herefordshire\"\nurl = \"{base}\"\n\
                 interval = \"1h\"\nallow_private_targets = true\n"
            )
        },
        &[],
    );

    // The poller reads the feed once at start.
    let deadline = Instant::now() + Duration::from_secs(60);
    let first = loop {
        let item = last_poll(&gateway);
        if !item["last_poll"].is_null() {
            break item;
        }
        assert!(Instant::now() < deadline, "no poll: {item}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(first["id"], "herefordshire");
    let poll = &first["last_poll"];
    assert_eq!(poll["outcome"], "imported", "{first}");
    assert_eq!(poll["http_status"], 200);
    assert_eq!(poll["imported"], 5, "{first}");
    assert_eq!(poll["skipped"], 2, "{first}");
    let faults = poll["faults"].to_string();
    assert!(
        faults.contains(r#"/name: \"name\" is a required property"#),
        "{faults}"
    );
    assert!(faults.contains("walk-and-talk-1"), "{faults}");
    assert!(poll["next_poll_at"].as_str().is_some(), "{first}");
    assert_eq!(first["next_poll_at"], poll["next_poll_at"]);
    // Both pages were read, and the short entry was completed from /services/{id}.
    let urls: Vec<String> = feed.seen().into_iter().map(|s| s.url).collect();
    assert!(
        urls.contains(&"/api/services?page=2".to_string()),
        "{urls:?}"
    );
    assert!(
        urls.contains(&format!("/api/services/{CARERS}")),
        "{urls:?}"
    );
    // The completed service is searchable with what only its full form carries (its area).
    assert_eq!(
        found(&gateway, "name=carers&postcode=HR2%200LT"),
        ["Carers' Café"]
    );
    assert_eq!(found(&gateway, "name=telephone"), ["Telephone Friends"]);

    // Polled again now: the feed's ETag goes back, the feed answers 304, nothing changes.
    let before = feed.seen().len();
    let (status, second) = gateway.admin_post("/admin/v1/directory/feeds/herefordshire/refresh");
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["last_poll"]["outcome"], "not_modified", "{second}");
    assert_eq!(second["last_poll"]["http_status"], 304);
    let asked = &feed.seen()[before..];
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0].if_none_match.as_deref(), Some("\"v1\""));
    assert_eq!(found(&gateway, "name=telephone"), ["Telephone Friends"]);

    // The feed drops Telephone Friends: the next poll withdraws it (kept, no longer found).
    {
        let mut published = feed.published.lock().unwrap();
        published.etag = "\"v2\"".into();
        let contents = published.pages[1]["contents"]
            .as_array_mut()
            .expect("page 2");
        contents.retain(|s| s["id"] != TELEPHONE);
    }
    let (status, third) = gateway.admin_post("/admin/v1/directory/feeds/herefordshire/refresh");
    assert_eq!(status, 200, "{third}");
    let poll = &third["last_poll"];
    assert_eq!(poll["outcome"], "imported", "{third}");
    assert_eq!(
        (poll["imported"].clone(), poll["withdrawn"].clone()),
        (json!(4), json!(1))
    );
    assert!(found(&gateway, "name=telephone").is_empty());
    let (status, telephone) = send(gateway.get(&format!("/fhir/HealthcareService/{TELEPHONE}")));
    assert_eq!(status, 200, "{telephone}");
    assert_eq!(telephone["active"], false, "{telephone}");
    // The last poll is what the admin list shows.
    assert_eq!(last_poll(&gateway)["last_poll"], third["last_poll"]);

    // An unknown feed is a 404.
    let (status, _) = gateway.admin_post("/admin/v1/directory/feeds/elsewhere/refresh");
    assert_eq!(status, 404);
}

/// A feed the SSRF policy refuses whatever DNS says (an address in a private range, plain
/// http) stops the gateway at start, naming the key; the demo opens the policy for its lab, so
/// the feed closes it for itself.
#[test]
fn a_feed_the_ssrf_policy_refuses_stops_the_start() {
    for url in ["https://10.1.2.3/api", "http://directory.example.org/api"] {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("gateway.toml");
        let config = format!(
            "{}\n[[directory.feeds]]\nid = \"lan\"\nurl = \"{url}\"\ninterval = \"1h\"\n\
             allow_private_targets = false\n",
            demo_config_in(dir.path())
        );
        std::fs::write(&path, config).expect("write");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sp-gateway"))
            .args(["serve", "--config"])
            .arg(&path)
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{url}: {stderr}");
        assert!(stderr.contains("directory.feeds[0].url"), "{url}: {stderr}");
    }
}
