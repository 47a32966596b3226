//! `sp-gateway mock-vcs`: a webhook receiver for testers and integrators. It verifies Standard
//! Webhooks signatures with the reference library, de-duplicates by `webhook-id`, prints each
//! record, and can be told to fail so a team can rehearse an outage.

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::Mutex;

use actix_web::{web, HttpRequest, HttpResponse};
use rand::Rng;
use serde_json::Value;

pub struct MockVcs {
    verifier: standardwebhooks::Webhook,
    fail_rate: f64,
    fail_status: u16,
    seen: Mutex<HashSet<String>>,
}

impl MockVcs {
    pub fn new(secret: &str, fail_rate: f64, fail_status: u16) -> Result<Self, String> {
        let verifier =
            standardwebhooks::Webhook::new(secret).map_err(|e| format!("bad secret: {e}"))?;
        if !(0.0..=1.0).contains(&fail_rate) {
            return Err("--fail-rate is between 0 and 1".into());
        }
        Ok(MockVcs {
            verifier,
            fail_rate,
            fail_status,
            seen: Mutex::new(HashSet::new()),
        })
    }
}

/// actix's request headers as the `http` 1.x map the Standard Webhooks library reads.
pub fn to_http_headers(request: &HttpRequest) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    for (name, value) in request.headers() {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_str().as_bytes()),
            http::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.append(name, value);
        }
    }
    headers
}

async fn receive(
    state: web::Data<MockVcs>,
    request: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    if let Err(e) = state.verifier.verify(&body, &to_http_headers(&request)) {
        println!("REJECTED  signature check failed: {e}");
        return HttpResponse::Unauthorized().body(format!("signature check failed: {e}"));
    }
    if state.fail_rate > 0.0 && rand::thread_rng().gen_bool(state.fail_rate) {
        println!("FAILED    (rehearsal) answering {}", state.fail_status);
        return HttpResponse::build(
            actix_web::http::StatusCode::from_u16(state.fail_status)
                .unwrap_or(actix_web::http::StatusCode::SERVICE_UNAVAILABLE),
        )
        .finish();
    }
    let id = request
        .headers()
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let first_time = state
        .seen
        .lock()
        .map(|mut seen| seen.insert(id.clone()))
        .unwrap_or(true);
    if !first_time {
        println!("DUPLICATE {id} (already processed; acknowledged again)");
        return HttpResponse::NoContent().finish();
    }
    let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    println!(
        "RECEIVED  {} {} for {} (webhook-id {id})",
        event["type"].as_str().unwrap_or("?"),
        event["data"]["referral_id"].as_str().unwrap_or("?"),
        event["data"]["recipient"]["name"].as_str().unwrap_or("?"),
    );
    println!(
        "{}",
        serde_json::to_string_pretty(&event["data"]).unwrap_or_default()
    );
    HttpResponse::NoContent().finish()
}

/// Serves on `listener` until stopped. Every path accepts webhooks.
pub async fn serve(state: MockVcs, listener: TcpListener) -> std::io::Result<()> {
    let state = web::Data::new(state);
    actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(state.clone())
            .app_data(web::PayloadConfig::new(4 * 1024 * 1024))
            .default_service(web::post().to(receive))
    })
    .workers(1)
    .listen(listener)?
    .run()
    .await
}
