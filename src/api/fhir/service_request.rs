//! `ServiceRequest`: a GP system creates a referral (`POST`, with `If-None-Exist` for safe
//! retries), searches and reads its referrals and their history, and cancels one (`PUT` or
//! `PATCH` of `status` to `revoked`; the rule is `lifecycle::change_by_gp`). `$validate` runs a
//! create's checks without storing. The intake of a write is shared with `bundle`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde_json::Value;

use super::common::{
    content, handle, history_route, location, parse_id, read_body, read_limited, read_route,
    resource, version_headers, vread_route,
};
use super::search::{
    included_limited, reference_id, searchset, token, Parameters, MAX_COUNT, MAX_INCLUDED,
};
use crate::api::access::{self, Accessed};
use crate::api::errors::{ApiError, Reply};
use crate::api::extract::GpClient;
use crate::api::{correlation_id, AppState};
use crate::domain::{ClientId, Identifier};
use crate::fhir::outcome::{operation_outcome, Issue};
use crate::fhir::read::parse_body;
use crate::intake::{self, Endpoint, Prepared, Rejected, Request};
use crate::lifecycle::{GpChange, Lifecycle};
use crate::store::{CreateOutcome, ReferralQuery, ResourceQuery, StoredResource};

pub fn routes(cfg: &mut web::ServiceConfig) {
    // `$validate` first: `/ServiceRequest/{id}` would otherwise take it for an id.
    cfg.service(
        resource("/ServiceRequest/$validate").route(web::post().to(validate_service_request)),
    )
    .service(
        resource("/ServiceRequest")
            .route(web::post().to(create))
            .route(web::get().to(search)),
    )
    .service(resource("/ServiceRequest/{id}/_history").route(history_route("ServiceRequest")))
    .service(
        resource("/ServiceRequest/{id}")
            .route(read_route("ServiceRequest"))
            .route(web::put().to(put))
            .route(web::patch().to(patch)),
    )
    .service(
        resource("/ServiceRequest/{id}/_history/{version}").route(vread_route("ServiceRequest")),
    );
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

pub(super) fn parse_condition(raw: &str) -> Result<Identifier, ApiError> {
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

/// Parses and runs intake for a write, answering validation failures with all issues at once;
/// every refusal is counted by client and rule (`sp_intake_refused_total`).
pub(super) async fn prepare_write(
    state: &AppState,
    request: &HttpRequest,
    payload: web::Payload,
    endpoint: Endpoint,
    client: &ClientId,
) -> Result<Prepared, ApiError> {
    let prepared = run_intake(state, request, payload, endpoint, client).await;
    if let Err(error) = &prepared {
        state.refused(client, error).await;
    }
    prepared
}

async fn run_intake(
    state: &AppState,
    request: &HttpRequest,
    payload: web::Payload,
    endpoint: Endpoint,
    client: &ClientId,
) -> Result<Prepared, ApiError> {
    state.budget.check(state.store.as_ref()).await?;
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
    let directory = state.catalog.index();
    intake::prepare_with_directory(
        &state.config,
        &state.validation,
        directory.as_ref(),
        intake_request,
    )
    .map_err(|Rejected(issues)| ApiError::Invalid(issues))
}

fn conflict(code: &'static str, message_id: &str, text: String) -> ApiError {
    ApiError::Conflict(vec![Issue::error(code, text).with_message_id(message_id)])
}

/// Maps what the store said about a create to the errors every write endpoint shares.
pub(super) fn created_or_conflict(
    outcome: CreateOutcome,
) -> Result<Option<StoredResource>, ApiError> {
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

async fn create(
    client: GpClient,
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    handle(&request, |_| async {
        let client = client.require("system/ServiceRequest.write")?;
        let condition = if_none_exist(&request)?;
        let prepared =
            prepare_write(&state, &request, payload, Endpoint::ServiceRequest, &client).await?;
        let referral_id = prepared.referral.referral_id.clone();
        let outcome = state
            .store
            .create_referral(prepared.referral, condition)
            .await?;
        if let Some(existing) = created_or_conflict(outcome)? {
            return Ok(
                version_headers(Reply::ok(content(&existing)?), &existing).header(
                    "Location",
                    location("ServiceRequest", &existing.id, existing.version_id),
                ),
            );
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

/// `$validate`: the same checks as a create (routing included), nothing stored. A resource may be
/// sent as is or inside a Parameters resource (`resource` parameter), as the operation defines.
pub(super) async fn validate(
    state: &AppState,
    request: &HttpRequest,
    client: &GpClient,
    payload: web::Payload,
    kind: &str,
) -> Result<Reply, ApiError> {
    let client = client.require("system/ServiceRequest.read")?;
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
    let directory = state.catalog.index();
    let prepared = intake::prepare_with_directory(
        &state.config,
        &state.validation,
        directory.as_ref(),
        intake_request,
    );
    let issues = match prepared {
        Ok(prepared) => prepared.warnings,
        Err(Rejected(issues)) => issues,
    };
    Ok(Reply::ok(operation_outcome(&issues)))
}

async fn validate_service_request(
    client: GpClient,
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    handle(&request, |_| async {
        validate(&state, &request, &client, payload, "ServiceRequest").await
    })
    .await
}

/// The parameters of a ServiceRequest search.
const SEARCH: Parameters = Parameters {
    resource_type: "ServiceRequest",
    names: &[
        "identifier",
        "patient",
        "status",
        "based-on",
        "_count",
        "_offset",
        "_revinclude",
    ],
    paged: true,
    lenient: true,
};

/// A ServiceRequest search: the store query, the resource types to include with each match
/// (`_revinclude`), and the parsed parameters.
fn search_query(
    request: &HttpRequest,
) -> Result<(ReferralQuery, Vec<&'static str>, super::search::Search), ApiError> {
    let mut query = ReferralQuery::default();
    let mut revincludes = Vec::new();
    let search = SEARCH.parse(request, |name, value| {
        match name {
            "identifier" => {
                let (system, code) = token(value);
                if value.contains('|') && code.is_empty() {
                    return Err(ApiError::BadRequest(
                        "identifier needs a value: identifier=system|value or identifier=value."
                            .into(),
                    ));
                }
                query.identifier = Some((system, code));
            }
            "patient" => query.patient_id = Some(reference_id(value, "Patient")),
            "based-on" => query.based_on = Some(reference_id(value, "ServiceRequest")),
            "status" => {
                query.statuses = value
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            }
            "_revinclude" => {
                let resource_type = match value {
                    "Task:focus" => "Task",
                    "Observation:based-on" => "Observation",
                    "ServiceRequest:based-on" => "ServiceRequest",
                    other => {
                        return Err(ApiError::BadRequest(format!(
                            "_revinclude supports Task:focus, Observation:based-on and \
                         ServiceRequest:based-on; got {other:?}."
                        )))
                    }
                };
                if !revincludes.contains(&resource_type) {
                    revincludes.push(resource_type);
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    (query.count, query.offset) = (search.count, search.offset);
    Ok((query, revincludes, search))
}

async fn search(
    client: GpClient,
    state: web::Data<AppState>,
    request: HttpRequest,
) -> HttpResponse {
    handle(&request, |_| async {
        let client = client.require("system/ServiceRequest.read")?;
        let (query, revincludes, search) = search_query(&request)?;
        let page = state.store.search_referrals(&client, &query).await?;
        let accessed = Accessed {
            actor: crate::domain::Actor::client(&client),
            action: "search",
            resource_type: "ServiceRequest",
            resource_id: None,
            patient_id: query.patient_id.as_deref(),
            found: page.total > 0,
        };
        access::record(&state, &request, accessed).await?;
        let mut included = Vec::new();
        let mut notes = search.ignored;
        'referrals: for referral in &page.resources {
            for resource_type in &revincludes {
                let found = if *resource_type == "ServiceRequest" {
                    // The referrals based on this one: onward referrals.
                    let children = ReferralQuery {
                        based_on: Some(referral.id.clone()),
                        count: MAX_COUNT,
                        ..Default::default()
                    };
                    state.store.search_referrals(&client, &children).await?
                } else {
                    let related = ResourceQuery {
                        referral_id: Some(referral.id.clone()),
                        count: MAX_COUNT,
                        ..Default::default()
                    };
                    state
                        .store
                        .search_resources(&client, resource_type, &related)
                        .await?
                }
                .resources;
                if included.len() + found.len() > MAX_INCLUDED {
                    notes.push(included_limited());
                    break 'referrals;
                }
                included.extend(found);
            }
        }
        let returned = page
            .resources
            .iter()
            .chain(&included)
            .map(|r| (r.resource_type.as_str(), r.id.as_str()));
        let actor = crate::domain::Actor::client(&client);
        access::record_each(&state, &request, &actor, "search", returned).await?;
        let base = state.config.base_url();
        Ok(Reply::ok(searchset(
            &base,
            "ServiceRequest",
            &page,
            &search.kept,
            (query.count, query.offset),
            &included,
            &notes,
        )?))
    })
    .await
}

/// `If-Match: W/"3"` → 3.
fn if_match(request: &HttpRequest) -> Result<Option<i64>, ApiError> {
    let Some(raw) = request.headers().get("if-match") else {
        return Ok(None);
    };
    let text = raw.to_str().unwrap_or("").trim();
    let bare = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
    bare.parse().map(Some).map_err(|_| {
        ApiError::BadRequest(format!(
            "If-Match must be a version ETag such as W/\"1\"; got {text:?}."
        ))
    })
}

/// Applies a GP's new version of a ServiceRequest (the rule: `lifecycle::change_by_gp`).
async fn change(
    state: &AppState,
    request: &HttpRequest,
    client: &ClientId,
    id: &str,
    proposed: Value,
) -> Result<Reply, ApiError> {
    let expected = if_match(request)?;
    state.budget.check(state.store.as_ref()).await?;
    let lifecycle = Lifecycle {
        store: state.store.as_ref(),
        config: &state.config,
        validation: &state.validation,
    };
    let applied = match lifecycle
        .change_by_gp(client, id, &proposed, expected, correlation_id(request))
        .await?
    {
        GpChange::Unchanged(current) => {
            return Ok(version_headers(Reply::ok(content(&current)?), &current))
        }
        GpChange::Cancelled(applied) => applied,
    };
    state.wake.notify_one();
    tracing::info!(referral_id = %id, client = %client, "referral cancelled by the GP");
    let version = applied.state_after["meta"]["versionId"]
        .as_str()
        .unwrap_or("1")
        .to_string();
    Ok(Reply::ok(applied.state_after)
        .header("ETag", format!("W/\"{version}\""))
        .header(
            "Location",
            location("ServiceRequest", id, version.parse().unwrap_or(1)),
        ))
}

async fn put(
    client: GpClient,
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> HttpResponse {
    handle(&request, |_| async {
        let client = client.require("system/ServiceRequest.write")?;
        let (format, _, body) =
            read_body(&request, payload, state.config.server.max_body_bytes).await?;
        let proposed = parse_body(&body, format, state.config.server.max_json_depth)?;
        let issues = state.validation.errors(&proposed);
        if !issues.is_empty() {
            return Err(ApiError::Invalid(issues));
        }
        change(&state, &request, &client, &path, proposed).await
    })
    .await
}

async fn patch(
    client: GpClient,
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> HttpResponse {
    handle(&request, |_| async {
        let client = client.require("system/ServiceRequest.write")?;
        let content_type = request
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !content_type.starts_with("application/json-patch+json") {
            return Err(ApiError::UnsupportedMediaType(content_type.to_string()));
        }
        let limited = read_limited(&request, payload, state.config.server.max_body_bytes).await?;
        let patch: json_patch::Patch = serde_json::from_slice(&limited).map_err(|e| {
            ApiError::BadRequest(format!("The body is not a JSON Patch document: {e}"))
        })?;
        let id = parse_id(&path, "ServiceRequest")?;
        let current = state
            .store
            .read_resource(&client, "ServiceRequest", id.as_str())
            .await?
            .ok_or_else(|| {
                ApiError::NotFound(format!(
                    "There is no ServiceRequest with id {id} for this client."
                ))
            })?;
        let mut proposed = content(&current)?;
        json_patch::patch(&mut proposed, &patch).map_err(|e| {
            ApiError::Invalid(vec![Issue::error(
                "processing",
                format!("The patch cannot be applied: {e}"),
            )
            .with_message_id("patch-failed")])
        })?;
        change(&state, &request, &client, id.as_str(), proposed).await
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
