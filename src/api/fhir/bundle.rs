//! Referrals that arrive as a Bundle: a `transaction` posted to the base (`POST /fhir`), a
//! `message` to `$process-message`, and `Bundle/$validate`. The intake is the one a
//! ServiceRequest create runs (`service_request`); only the answer is shaped as a Bundle.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{SecondsFormat, Utc};
use serde_json::{json, Value};

use super::common::{handle, location, resource};
use super::service_request::{created_or_conflict, parse_condition, prepare_write, validate};
use crate::api::errors::Reply;
use crate::api::extract::GpClient;
use crate::api::AppState;
use crate::fhir::outcome::{operation_outcome, Issue};
use crate::intake::{self, Endpoint};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("").route(web::post().to(transaction)))
        .service(resource("/$process-message").route(web::post().to(process_message)))
        .service(resource("/Bundle/$validate").route(web::post().to(validate_bundle)));
}

async fn transaction(
    client: GpClient,
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    handle(&request, |_| async {
        let client = client.require("system/ServiceRequest.write")?;
        let prepared = prepare_write(&state, &request, payload, Endpoint::Transaction, &client).await?;
        let condition = prepared.if_none_exist.as_deref().map(parse_condition).transpose()?;
        let locations = prepared.entry_locations.clone();
        let outcome = state.store.create_referral(prepared.referral, condition).await?;
        let now = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        let created = created_or_conflict(outcome)?;
        if created.is_none() {
            state.accepted();
        }
        let response_entries: Vec<Value> = match created {
            None => locations
                .iter()
                .map(|l| match l {
                    Some(location) => json!({"response": {"status": "201 Created", "location": format!("{location}/_history/1"), "etag": "W/\"1\"", "lastModified": now}}),
                    None => json!({"response": {"status": "200 OK"}}),
                })
                .collect(),
            Some(existing) => locations
                .iter()
                .map(|l| match l {
                    Some(location) if location.starts_with("ServiceRequest/") => json!({"response": {
                        "status": "200 OK",
                        "location": format!("ServiceRequest/{}/_history/{}", existing.id, existing.version_id),
                        "etag": format!("W/\"{}\"", existing.version_id)}}),
                    _ => json!({"response": {"status": "200 OK", "outcome": operation_outcome(&[Issue::information(
                        "informational", "Not created: the referral already exists (If-None-Exist matched).")])}}),
                })
                .collect(),
        };
        Ok(Reply::ok(json!({"resourceType": "Bundle", "type": "transaction-response", "entry": response_entries})))
    })
    .await
}

async fn process_message(
    client: GpClient,
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    handle(&request, |_| async {
        let client = client.require("system/ServiceRequest.write")?;
        let prepared = prepare_write(&state, &request, payload, Endpoint::Message, &client).await?;
        let message_id = prepared.referral.message_id.clone().unwrap_or_default();
        let referral_id = prepared.referral.referral_id.clone();
        let outcome = state.store.create_referral(prepared.referral, None).await?;
        created_or_conflict(outcome)?;
        state.accepted();
        tracing::info!(referral_id = %referral_id, client = %client, "referral accepted by message");
        let now = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        let response = json!({
            "resourceType": "Bundle",
            "id": uuid::Uuid::new_v4().to_string(),
            "type": "message",
            "timestamp": now,
            "entry": [{
                "fullUrl": format!("urn:uuid:{}", uuid::Uuid::new_v4()),
                "resource": {
                    "resourceType": "MessageHeader",
                    "eventCoding": {"system": "https://fhir.nhs.uk/CodeSystem/message-events-bars", "code": intake::REFERRAL_EVENT},
                    "source": {"endpoint": format!("{}/fhir", state.config.base_url())},
                    "response": {"identifier": message_id, "code": "ok"},
                    "focus": [{"reference": format!("ServiceRequest/{referral_id}")}]
                }
            }]
        });
        Ok(Reply::ok(response).header("Location", location("ServiceRequest", referral_id.as_str(), 1)))
    })
    .await
}

async fn validate_bundle(
    client: GpClient,
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    handle(&request, |_| async {
        validate(&state, &request, &client, payload, "Bundle").await
    })
    .await
}
