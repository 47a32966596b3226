//! The FHIR R4 REST endpoints GP systems call.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{SecondsFormat, Utc};
use serde_json::{json, Value};

use super::errors::{ApiError, Reply};
use super::fhir_common::{
    correlation_id, handle, location, query_pairs, read_body, read_route, resource, searchset,
    version_headers, vread_route, DEFAULT_COUNT, MAX_COUNT,
};
use super::{capability, AppState};
use crate::domain::{ClientId, Identifier};
use crate::fhir::outcome::{operation_outcome, Issue};
use crate::fhir::read::parse_body;
use crate::intake::{self, Endpoint, Prepared, Rejected, Request};
use crate::store::{CreateOutcome, ReferralQuery, StoredResource};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/fhir")
            .service(resource("").route(web::post().to(transaction)))
            .service(resource("/metadata").route(web::get().to(metadata)))
            .service(resource("/$process-message").route(web::post().to(process_message)))
            .service(
                resource("/ServiceRequest/$validate")
                    .route(web::post().to(validate_service_request)),
            )
            .service(resource("/Bundle/$validate").route(web::post().to(validate_bundle)))
            .service(
                resource("/ServiceRequest")
                    .route(web::post().to(create_service_request))
                    .route(web::get().to(search_service_requests)),
            )
            .service(
                resource("/ServiceRequest/{id}/_history")
                    .route(web::get().to(super::fhir_loop::service_request_history)),
            )
            .service(
                resource("/ServiceRequest/{id}")
                    .route(read_route("ServiceRequest"))
                    .route(web::put().to(super::fhir_loop::put_service_request))
                    .route(web::patch().to(super::fhir_loop::patch_service_request)),
            )
            .service(
                resource("/ServiceRequest/{id}/_history/{version}")
                    .route(vread_route("ServiceRequest")),
            )
            .service(resource("/Patient/{id}").route(read_route("Patient")))
            .configure(super::conformance::routes)
            .configure(super::fhir_loop::routes)
            .configure(super::audit::routes),
    );
}

async fn metadata(state: web::Data<AppState>, request: HttpRequest) -> HttpResponse {
    handle(&request, |_| async move {
        Ok(Reply::ok(capability::capability_statement(
            &state.config,
            state.validation.conformance(),
        )))
    })
    .await
}

/// How the client wants a successful write answered (`Prefer: return=…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReturnPreference {
    Minimal,
    Representation,
    OperationOutcome,
}

fn return_preference(request: &HttpRequest) -> ReturnPreference {
    let prefer = request
        .headers()
        .get_all("prefer")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([',', ';']))
        .map(str::trim);
    for token in prefer {
        match token {
            "return=minimal" => return ReturnPreference::Minimal,
            "return=OperationOutcome" => return ReturnPreference::OperationOutcome,
            "return=representation" => return ReturnPreference::Representation,
            _ => {}
        }
    }
    ReturnPreference::Representation
}

/// `If-None-Exist: identifier=system|value` — the only condition we support, stated plainly when another is sent.
fn if_none_exist(request: &HttpRequest) -> Result<Option<Identifier>, ApiError> {
    let Some(raw) = request.headers().get("if-none-exist") else {
        return Ok(None);
    };
    let raw = raw
        .to_str()
        .map_err(|_| ApiError::BadRequest("If-None-Exist is not readable text.".into()))?;
    parse_condition(raw).map(Some)
}

fn parse_condition(raw: &str) -> Result<Identifier, ApiError> {
    let query = raw.split_once('?').map_or(raw, |(_, q)| q);
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    match pairs.as_slice() {
        [(name, value)] if name == "identifier" => value.parse().map_err(|_| {
            ApiError::BadRequest(format!(
                "If-None-Exist needs identifier=system|value with both parts; got {raw:?}."
            ))
        }),
        _ => Err(ApiError::BadRequest(format!(
            "If-None-Exist supports one condition, identifier=system|value; got {raw:?}."
        ))),
    }
}

/// Parses and runs intake for a write, answering validation failures with all issues at once.
async fn prepare_write(
    state: &AppState,
    request: &HttpRequest,
    payload: web::Payload,
    endpoint: Endpoint,
    client: &ClientId,
) -> Result<Prepared, ApiError> {
    let (format, content_type, body) =
        read_body(request, payload, state.config.server.max_body_bytes).await?;
    let tree = parse_body(&body, format, state.config.server.max_json_depth)?;
    let intake_request = Request {
        endpoint,
        tree,
        received_body: &body,
        received_content_type: &content_type,
        client,
        correlation_id: correlation_id(request),
        now: Utc::now(),
    };
    intake::prepare(&state.config, &state.validation, intake_request)
        .map_err(|Rejected(issues)| ApiError::Invalid(issues))
}

fn conflict(code: &'static str, message_id: &str, text: String) -> ApiError {
    ApiError::Conflict(vec![Issue::error(code, text).with_message_id(message_id)])
}

/// Maps what the store said about a create to the errors every write endpoint shares.
fn created_or_conflict(outcome: CreateOutcome) -> Result<Option<StoredResource>, ApiError> {
    match outcome {
        CreateOutcome::Created => Ok(None),
        CreateOutcome::Existing(existing) => Ok(Some(existing)),
        CreateOutcome::IdentifierTaken { identifier, existing } => Err(conflict(
            "duplicate",
            "duplicate-identifier",
            format!(
                "A referral with identifier {identifier} already exists (ServiceRequest/{existing}). \
                 To retry safely, send If-None-Exist: identifier={identifier}."
            ),
        )),
        CreateOutcome::DuplicateMessage { existing } => Err(conflict(
            "duplicate",
            "duplicate-message",
            format!("This message has already been processed (it created ServiceRequest/{existing})."),
        )),
    }
}

async fn create_service_request(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    handle(&request, |_| async {
        let client = state
            .authorize(&request, "system/ServiceRequest.write")
            .await?;
        let condition = if_none_exist(&request)?;
        let prepared =
            prepare_write(&state, &request, payload, Endpoint::ServiceRequest, &client).await?;
        let referral_id = prepared.referral.referral_id.clone();
        let outcome = state
            .store
            .create_referral(prepared.referral, condition)
            .await?;
        if let Some(existing) = created_or_conflict(outcome)? {
            let body = existing.json()?;
            return Ok(version_headers(Reply::ok(body), &existing).header(
                "Location",
                location("ServiceRequest", &existing.id, existing.version_id),
            ));
        }
        state.accepted();
        tracing::info!(referral_id = %referral_id, client = %client, "referral accepted");
        let body = match return_preference(&request) {
            ReturnPreference::Minimal => None,
            ReturnPreference::Representation => prepared.service_request,
            ReturnPreference::OperationOutcome => {
                Some(created_outcome(&prepared.warnings, referral_id.as_str()))
            }
        };
        Ok(Reply::new(StatusCode::CREATED, body)
            .header(
                "Location",
                location("ServiceRequest", referral_id.as_str(), 1),
            )
            .header("ETag", "W/\"1\"")
            .header(
                "Last-Modified",
                Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
            ))
    })
    .await
}

fn created_outcome(warnings: &[Issue], referral_id: &str) -> Value {
    let mut issues = warnings.to_vec();
    issues.push(
        Issue::information(
            "informational",
            format!("Referral accepted as ServiceRequest/{referral_id}."),
        )
        .with_message_id("created"),
    );
    operation_outcome(&issues)
}

async fn transaction(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    handle(&request, |_| async {
        let client = state.authorize(&request, "system/ServiceRequest.write").await?;
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
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    handle(&request, |_| async {
        let client = state.authorize(&request, "system/ServiceRequest.write").await?;
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

/// `$validate`: the same checks as a create (routing included), nothing stored. A resource may be
/// sent as is or inside a Parameters resource (`resource` parameter), as the operation defines.
async fn validate(
    state: &AppState,
    request: &HttpRequest,
    payload: web::Payload,
    kind: &str,
) -> Result<Reply, ApiError> {
    let client = state
        .authorize(request, "system/ServiceRequest.read")
        .await?;
    let (format, content_type, body) =
        read_body(request, payload, state.config.server.max_body_bytes).await?;
    let mut tree = parse_body(&body, format, state.config.server.max_json_depth)?;
    if tree.get("resourceType").and_then(Value::as_str) == Some("Parameters") {
        tree = tree
            .get("parameter")
            .and_then(Value::as_array)
            .and_then(|ps| {
                ps.iter()
                    .find(|p| p.get("name").and_then(Value::as_str) == Some("resource"))
            })
            .and_then(|p| p.get("resource"))
            .cloned()
            .ok_or_else(|| {
                ApiError::BadRequest("A Parameters body needs a parameter named resource.".into())
            })?;
    }
    let endpoint = match (kind, tree.get("type").and_then(Value::as_str)) {
        ("Bundle", Some("message")) => Endpoint::Message,
        ("Bundle", _) => Endpoint::Transaction,
        _ => Endpoint::ServiceRequest,
    };
    let intake_request = Request {
        endpoint,
        tree,
        received_body: &body,
        received_content_type: &content_type,
        client: &client,
        correlation_id: correlation_id(request),
        now: Utc::now(),
    };
    let issues = match intake::prepare(&state.config, &state.validation, intake_request) {
        Ok(prepared) => prepared.warnings,
        Err(Rejected(issues)) => issues,
    };
    Ok(Reply::ok(operation_outcome(&issues)))
}

async fn validate_service_request(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    handle(&request, |_| async {
        validate(&state, &request, payload, "ServiceRequest").await
    })
    .await
}

async fn validate_bundle(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    handle(&request, |_| async {
        validate(&state, &request, payload, "Bundle").await
    })
    .await
}

/// A parsed search: the store query, warnings for ignored parameters, and the parameters kept
/// (to rebuild paging links).
type ParsedSearch = (
    ReferralQuery,
    Vec<Issue>,
    Vec<(String, String)>,
    Vec<&'static str>,
);

const SEARCH_PARAMETERS: [&str; 6] = [
    "identifier",
    "patient",
    "status",
    "_count",
    "_offset",
    "_revinclude",
];

/// Parses search parameters. Unknown ones are ignored (reported in the Bundle) unless the client
/// sent `Prefer: handling=strict`, as the FHIR search rules say.
fn search_query(request: &HttpRequest) -> Result<ParsedSearch, ApiError> {
    let strict = request
        .headers()
        .get_all("prefer")
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("handling=strict"));
    let mut query = ReferralQuery {
        count: DEFAULT_COUNT,
        ..ReferralQuery::default()
    };
    let mut ignored = Vec::new();
    let mut kept = Vec::new();
    let mut revincludes = Vec::new();
    for (name, value) in query_pairs(request) {
        match name.as_str() {
            "identifier" => query.identifier = Some(match value.split_once('|') {
                Some(("", v)) | Some((_, v)) if v.is_empty() => {
                    return Err(ApiError::BadRequest(
                        "identifier needs a value: identifier=system|value or identifier=value."
                            .into(),
                    ))
                }
                Some((system, v)) if !system.is_empty() => {
                    (Some(system.to_string()), v.to_string())
                }
                Some((_, v)) => (None, v.to_string()),
                None => (None, value.clone()),
            }),
            "patient" => {
                query.patient_id =
                    Some(value.strip_prefix("Patient/").unwrap_or(&value).to_string())
            }
            "status" => {
                query.statuses = value
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            }
            "_count" => {
                let count: usize = value.parse().map_err(|_| {
                    ApiError::BadRequest(format!("_count must be a whole number; got {value:?}."))
                })?;
                query.count = count.min(MAX_COUNT);
            }
            "_offset" => {
                query.offset = value.parse().map_err(|_| {
                    ApiError::BadRequest(format!("_offset must be a whole number; got {value:?}."))
                })?;
            }
            "_format" => continue,
            "_revinclude" => {
                let target = match value.as_str() {
                    "Task:focus" => "Task",
                    "Observation:based-on" => "Observation",
                    other => {
                        return Err(ApiError::BadRequest(format!(
                        "_revinclude supports Task:focus and Observation:based-on; got {other:?}."
                    )))
                    }
                };
                revincludes.push(target);
                kept.push((name, value));
                continue;
            }
            _ if strict => {
                return Err(ApiError::BadRequest(format!(
                    "Unknown search parameter {name:?}; ServiceRequest supports {}.",
                    SEARCH_PARAMETERS.join(", ")
                )))
            }
            _ => {
                ignored.push(
                    Issue::error(
                        "not-supported",
                        format!("Search parameter {name:?} is not supported and was ignored."),
                    )
                    .with_message_id("search-parameter-ignored"),
                );
                continue;
            }
        }
        if !name.starts_with('_') {
            kept.push((name, value));
        }
    }
    // Ignored parameters are warnings, not errors: the search still ran.
    for issue in &mut ignored {
        issue.severity = crate::fhir::outcome::Severity::Warning;
    }
    Ok((query, ignored, kept, revincludes))
}

async fn search_service_requests(state: web::Data<AppState>, request: HttpRequest) -> HttpResponse {
    handle(&request, |_| async {
        let client = state
            .authorize(&request, "system/ServiceRequest.read")
            .await?;
        let (query, ignored, params, revincludes) = search_query(&request)?;
        let page = state.store.search_referrals(&client, &query).await?;
        let accessed = super::audit::Accessed {
            actor: crate::domain::Actor::client(&client),
            action: "search",
            resource_type: "ServiceRequest",
            resource_id: None,
            patient_id: query.patient_id.as_deref(),
            found: page.total > 0,
        };
        super::audit::record(&state, &request, accessed).await?;
        let mut included = Vec::new();
        for referral in &page.resources {
            for resource_type in &revincludes {
                let related = crate::store::ResourceQuery {
                    referral_id: Some(referral.id.clone()),
                    count: MAX_COUNT,
                    ..Default::default()
                };
                included.extend(
                    state
                        .store
                        .search_resources(&client, resource_type, &related)
                        .await?
                        .resources,
                );
            }
        }
        let base = state.config.base_url();
        Ok(Reply::ok(searchset(
            &base,
            "ServiceRequest",
            &page,
            &params,
            (query.count, query.offset),
            &included,
            &ignored,
        )?))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions() {
        let id = parse_condition("identifier=https://gp.example/ref|R1").unwrap();
        assert_eq!(id, Identifier::new("https://gp.example/ref", "R1"));
        assert!(parse_condition("identifier=https%3A%2F%2Fgp.example%2Fref%7CR1").is_ok());
        assert!(parse_condition("ServiceRequest?identifier=a|b").is_ok());
        assert!(parse_condition("status=active").is_err());
        assert!(parse_condition("identifier=R1").is_err());
    }
}
