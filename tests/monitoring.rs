//! Monitoring: every `sp_` series the alerting rules (`deploy/prometheus/alerts.yml`) and the
//! Grafana dashboard (`deploy/grafana/sp-gateway.json`) use is one a running gateway exports, so a
//! renamed metric breaks this test instead of silently blinding an alert. (The rules' own logic
//! is tested by `promtool test rules deploy/prometheus/alerts.test.yml`, run by `.ci/run`.)

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::receiver::Receiver;
use common::*;
use serde_json::{json, Value};

const ALERTS: &str = include_str!("../deploy/prometheus/alerts.yml");
const DASHBOARD: &str = include_str!("../deploy/grafana/sp-gateway.json");

/// The `sp_` names in a text: metric names as PromQL writes them.
fn series_used(text: &str) -> BTreeSet<String> {
    let pattern = regex::Regex::new(r"\bsp_[a-z_]+[a-z]\b").unwrap();
    pattern
        .find_iter(text)
        .map(|m| m.as_str().to_string())
        .collect()
}

/// The sample names in a Prometheus text exposition.
fn series_exported(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

fn scrape(gateway: &Gateway) -> String {
    let response = gateway
        .http
        .get(gateway.url("/metrics"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    response.text().unwrap()
}

/// The dashboard's queries, from its panels' targets.
fn dashboard_queries() -> Vec<String> {
    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(!panels.is_empty());
    panels
        .iter()
        .flat_map(|panel| panel["targets"].as_array().cloned().unwrap_or_default())
        .map(|target| target["expr"].as_str().expect("a PromQL expr").to_string())
        .collect()
}

#[test]
fn every_series_the_alerts_and_the_dashboard_use_is_exported() {
    let receiver = Receiver::start();
    let base = receiver.base.clone();
    let gateway = Gateway::start_with(move |c| deliver_to(c, &base, &["1s"]), &[]);
    // A referral delivered (attempt and latency series) and one refused (refusal series: a
    // labelled counter has no sample until it is first counted).
    gateway.refer("REF-METRICS");
    receiver.wait_for(Duration::from_secs(30), "the webhook", |r| !r.is_empty());
    let (status, _) = send(gateway.post_json(
        "/fhir/ServiceRequest",
        &json!({"resourceType": "ServiceRequest", "status": "active"}),
    ));
    assert!((400..500).contains(&status), "{status}");

    let exposition = scrape(&gateway);
    let exported = series_exported(&exposition);
    let alerts = series_used(ALERTS);
    let dashboard = series_used(&dashboard_queries().join("\n"));
    assert!(alerts.len() >= 6, "{alerts:?}");
    assert!(dashboard.len() >= 10, "{dashboard:?}");
    let missing: Vec<&String> = alerts
        .iter()
        .chain(&dashboard)
        .filter(|name| !exported.contains(*name))
        .collect();
    assert!(
        missing.is_empty(),
        "used but not exported: {missing:?}\n{exposition}"
    );
}

#[test]
fn a_refusal_is_counted_by_client_and_rule_and_the_store_is_reported_up() {
    let gateway = Gateway::start();
    let before = scrape(&gateway);
    assert!(before.contains("sp_store_up 1"), "{before}");
    assert!(before.contains("sp_endpoints_disabled 0"), "{before}");
    assert!(!before.contains("sp_intake_refusals_total{"), "{before}");

    let (status, _) = send(gateway.post_bytes(
        "/fhir/ServiceRequest",
        "application/fhir+json",
        b"{\"resourceType\": \"ServiceRequest\",".to_vec(),
    ));
    assert_eq!(status, 400);
    let (status, outcome) = send(gateway.post_json(
        "/fhir/ServiceRequest",
        &json!({"resourceType": "ServiceRequest", "status": "active"}),
    ));
    assert_eq!(status, 422, "{outcome}");

    let after = scrape(&gateway);
    let refusals = after
        .lines()
        .find(|line| line.starts_with("sp_intake_refusals_total{"))
        .unwrap_or_else(|| panic!("no refusal counter: {after}"));
    assert!(refusals.ends_with(" 2"), "{refusals}");
    assert!(refusals.contains("client=\""), "{refusals}");
    assert!(
        after.contains("message_id=\"unreadable-body\""),
        "the unreadable body is counted under its rule: {after}"
    );
    // Each rule the 422 names is a series of its own.
    let rules = after
        .lines()
        .filter(|line| line.starts_with("sp_intake_refused_total{"))
        .count();
    assert!(rules >= 2, "{after}");
    // No patient data and no free text in labels: client ids and message ids only.
    assert!(!after.contains("Llywelyn"));
}
