//! Intake of a transaction or message Bundle (or a single ServiceRequest), as the endpoints
//! run it: validation, create rules, routing, ids, the referral record. Any input gives a
//! referral to store or the issues that refuse it, never a panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sp_gateway::config::{Config, DEMO_CONFIG};
use sp_gateway::domain::ClientId;
use sp_gateway::fhir::read::{parse_body, Format};
use sp_gateway::intake::{prepare, Endpoint, Request};
use sp_gateway::validation::Validation;

struct Setup {
    config: Config,
    validation: Validation,
    client: ClientId,
}

fn setup() -> &'static Setup {
    static S: OnceLock<Setup> = OnceLock::new();
    S.get_or_init(|| Setup {
        config: Config::from_toml_with_env(DEMO_CONFIG).expect("demo configuration"),
        validation: Validation::bundled().expect("bundled definitions load"),
        client: "emis-demo".parse().expect("a client id"),
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(tree) = parse_body(data, Format::Json, 64) else {
        return;
    };
    let endpoint = match (tree["resourceType"].as_str(), tree["type"].as_str()) {
        (Some("Bundle"), Some("message")) => Endpoint::Message,
        (Some("Bundle"), _) => Endpoint::Transaction,
        _ => Endpoint::ServiceRequest,
    };
    let s = setup();
    let request = Request {
        endpoint,
        tree,
        received_body: data,
        received_content_type: "application/fhir+json",
        client: &s.client,
        correlation_id: None,
        now: chrono::Utc::now(),
    };
    let _ = prepare(&s.config, &s.validation, request);
});
