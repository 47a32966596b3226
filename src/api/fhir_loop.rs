//! The FHIR side of the closed loop: what GP systems read back (Tasks, Observations, history),
//! how they subscribe to changes, and how they cancel a referral.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde_json::{json, Value};

use super::errors::{ApiError, Reply};
use super::fhir_common::{
    correlation_id, handle, location, parse_id, query_pairs, read_body, read_limited, read_route,
    resource, searchset, version_headers, vread_route, DEFAULT_COUNT, MAX_COUNT,
};
use super::AppState;
use crate::domain::ClientId;
use crate::fhir::outcome::{Issue, Severity};
use crate::fhir::read::parse_body;
use crate::lifecycle::{Lifecycle, LifecycleError, CRITERIA_PARAMETERS};
use crate::store::{ResourceQuery, SubscriptionRow, SubscriptionStatus};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/Task").route(web::get().to(search_tasks)))
        .service(resource("/Task/{id}").route(read_route("Task")))
        .service(resource("/Task/{id}/_history/{version}").route(vread_route("Task")))
        .service(resource("/Observation").route(web::get().to(search_observations)))
        .service(resource("/Observation/{id}").route(read_route("Observation")))
        .service(resource("/Observation/{id}/_history/{version}").route(vread_route("Observation")))
        .service(resource("/Subscription").route(web::post().to(create_subscription)))
        .service(
            resource("/Subscription/{id}")
                .route(web::get().to(read_subscription))
                .route(web::delete().to(delete_subscription)),
        );
}

/// `ServiceRequest/{id}` or a bare id.
fn referral_reference(value: &str) -> String {
    value
        .strip_prefix("ServiceRequest/")
        .unwrap_or(value)
        .to_string()
}

/// A parsed Task or Observation search: the query, warnings for ignored parameters, and the
/// parameters kept for paging links.
type ParsedResourceSearch = (ResourceQuery, Vec<Issue>, Vec<(String, String)>);

/// Parses a Task or Observation search; `reference_parameter` is `focus` or `based-on`.
fn resource_query(
    request: &HttpRequest,
    reference_parameter: &str,
    with_code: bool,
) -> Result<ParsedResourceSearch, ApiError> {
    let strict = request
        .headers()
        .get_all("prefer")
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("handling=strict"));
    let mut query = ResourceQuery {
        count: DEFAULT_COUNT,
        ..ResourceQuery::default()
    };
    let (mut ignored, mut kept) = (Vec::new(), Vec::new());
    for (name, value) in query_pairs(request) {
        match name.as_str() {
            n if n == reference_parameter => query.referral_id = Some(referral_reference(&value)),
            "patient" | "subject" => {
                query.patient_id =
                    Some(value.strip_prefix("Patient/").unwrap_or(&value).to_string())
            }
            "code" if with_code => {
                query.code = Some(match value.split_once('|') {
                    Some((system, code)) if !system.is_empty() => {
                        (Some(system.to_string()), code.to_string())
                    }
                    Some((_, code)) => (None, code.to_string()),
                    None => (None, value.clone()),
                })
            }
            "_count" => {
                let count: usize = value.parse().map_err(|_| {
                    ApiError::BadRequest(format!("_count must be a whole number; got {value:?}."))
                })?;
                query.count = count.min(MAX_COUNT);
                continue;
            }
            "_offset" => {
                query.offset = value.parse().map_err(|_| {
                    ApiError::BadRequest(format!("_offset must be a whole number; got {value:?}."))
                })?;
                continue;
            }
            "_format" => continue,
            _ if strict => {
                return Err(ApiError::BadRequest(format!(
                    "Unknown search parameter {name:?}."
                )))
            }
            _ => {
                let mut issue = Issue::error(
                    "not-supported",
                    format!("Search parameter {name:?} is not supported and was ignored."),
                )
                .with_message_id("search-parameter-ignored");
                issue.severity = Severity::Warning;
                ignored.push(issue);
                continue;
            }
        }
        kept.push((name, value));
    }
    Ok((query, ignored, kept))
}

async fn search(
    state: &AppState,
    request: &HttpRequest,
    resource_type: &str,
    reference: &str,
    with_code: bool,
) -> Result<Reply, ApiError> {
    let client = state
        .authorize(request, &crate::auth::scopes::read(resource_type))
        .await?;
    let (query, ignored, params) = resource_query(request, reference, with_code)?;
    let page = state
        .store
        .search_resources(&client, resource_type, &query)
        .await?;
    let accessed = super::audit::Accessed {
        actor: crate::domain::Actor::client(&client),
        action: "search",
        resource_type,
        resource_id: None,
        patient_id: query.patient_id.as_deref(),
        found: page.total > 0,
    };
    super::audit::record(state, request, accessed).await?;
    let base = state.config.base_url();
    Ok(Reply::ok(searchset(
        &base,
        resource_type,
        &page,
        &params,
        (query.count, query.offset),
        &[],
        &ignored,
    )?))
}

async fn search_tasks(state: web::Data<AppState>, request: HttpRequest) -> HttpResponse {
    handle(&request, |_| async {
        search(&state, &request, "Task", "focus", false).await
    })
    .await
}

async fn search_observations(state: web::Data<AppState>, request: HttpRequest) -> HttpResponse {
    handle(&request, |_| async {
        search(&state, &request, "Observation", "based-on", true).await
    })
    .await
}

/// `GET /fhir/ServiceRequest/{id}/_history`: every version, newest first.
pub async fn service_request_history(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    handle(&request, |_| async {
        let client = state.authorize(&request, "system/ServiceRequest.read").await?;
        let id = parse_id(&path, "ServiceRequest")?;
        let versions = state.store.history(&client, "ServiceRequest", id.as_str()).await?;
        let accessed = super::audit::Accessed {
            actor: crate::domain::Actor::client(&client),
            action: "history",
            resource_type: "ServiceRequest",
            resource_id: Some(id.as_str()),
            patient_id: None,
            found: !versions.is_empty(),
        };
        super::audit::record(&state, &request, accessed).await?;
        if versions.is_empty() {
            return Err(ApiError::NotFound(format!("There is no ServiceRequest with id {id} for this client.")));
        }
        let base = state.config.base_url();
        let entries: Vec<Value> = versions
            .iter()
            .map(|v| {
                let (method, status) = if v.version_id == 1 { ("POST", "201 Created") } else { ("PUT", "200 OK") };
                Ok(json!({
                    "fullUrl": format!("{base}/fhir/ServiceRequest/{}", v.id),
                    "resource": v.json()?,
                    "request": {"method": method, "url": if v.version_id == 1 { "ServiceRequest".to_string() } else { format!("ServiceRequest/{}", v.id) }},
                    "response": {"status": status, "etag": format!("W/\"{}\"", v.version_id),
                                 "lastModified": v.last_updated.to_rfc3339()}
                }))
            })
            .collect::<Result<Vec<Value>, crate::store::StoreError>>()?;
        Ok(Reply::ok(json!({"resourceType": "Bundle", "type": "history", "total": entries.len(), "entry": entries})))
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

/// The parts of a ServiceRequest a GP may change here: only `status` (and server-kept `meta`).
fn without_mutable(resource: &Value) -> Value {
    let mut copy = resource.clone();
    if let Value::Object(object) = &mut copy {
        for key in ["meta", "status", "text"] {
            object.remove(key);
        }
    }
    copy
}

fn lifecycle_error(error: LifecycleError) -> ApiError {
    let single = |code: &'static str, id: &str, text: String| {
        vec![Issue::error(code, text).with_message_id(id)]
    };
    match error {
        LifecycleError::NotFound => ApiError::NotFound("There is no such ServiceRequest for this client.".into()),
        LifecycleError::PreconditionFailed { current, expected } => ApiError::PreconditionFailed(single(
            "conflict",
            "version-conflict",
            format!("If-Match names version {expected}, but the ServiceRequest is at version {current}: read it again."),
        )),
        LifecycleError::Transition { from, .. } => ApiError::Conflict(single(
            "business-rule",
            "referral-closed",
            format!("The referral can no longer be cancelled: it is {from}."),
        )),
        LifecycleError::Busy => ApiError::Store(crate::store::StoreError::Unavailable("the referral is busy".into())),
        LifecycleError::Unsupported(text) => ApiError::Invalid(single("not-supported", "unsupported-change", text)),
        LifecycleError::Invalid(issues) => {
            tracing::error!(issues = issues.len(), "generated FHIR failed our profiles");
            ApiError::Store(crate::store::StoreError::Database("generated FHIR failed validation".into()))
        }
        LifecycleError::Store(e) => ApiError::Store(e),
    }
}

/// Applies a GP's change to a ServiceRequest: only cancellation (`status` → `revoked`) is supported.
async fn change_service_request(
    state: &AppState,
    request: &HttpRequest,
    client: &ClientId,
    id: &str,
    proposed: Value,
) -> Result<Reply, ApiError> {
    let expected = if_match(request)?;
    let current = state
        .store
        .read_resource(client, "ServiceRequest", id)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "There is no ServiceRequest with id {id} for this client."
            ))
        })?;
    let current_content: Value = current.json()?;
    if proposed.get("id").and_then(Value::as_str) != Some(id) {
        return Err(ApiError::Invalid(vec![Issue::error(
            "invalid",
            "The resource id must match the id in the URL.",
        )
        .at("ServiceRequest.id")
        .with_message_id("id-mismatch")]));
    }
    if without_mutable(&proposed) != without_mutable(&current_content) {
        return Err(ApiError::Invalid(vec![Issue::error(
            "business-rule",
            "Only cancellation is supported: change status to revoked and nothing else.",
        )
        .with_message_id("unsupported-change")]));
    }
    match proposed.get("status").and_then(Value::as_str) {
        Some("revoked") => {}
        Some(same) if Some(same) == current_content.get("status").and_then(Value::as_str) => {
            return Ok(version_headers(Reply::ok(current_content), &current));
        }
        other => {
            return Err(ApiError::Invalid(vec![Issue::error(
                "business-rule",
                format!(
                    "A GP may set status to revoked (cancel); {} is set by the service.",
                    other.unwrap_or("no status")
                ),
            )
            .at("ServiceRequest.status")
            .with_message_id("unsupported-status")]))
        }
    }
    let lifecycle = Lifecycle {
        store: state.store.as_ref(),
        config: &state.config,
        validation: &state.validation,
    };
    let applied = lifecycle
        .cancel_by_gp(client, id, expected, correlation_id(request))
        .await
        .map_err(lifecycle_error)?;
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

pub async fn put_service_request(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> HttpResponse {
    handle(&request, |_| async {
        let client = state
            .authorize(&request, "system/ServiceRequest.write")
            .await?;
        let (format, _, body) =
            read_body(&request, payload, state.config.server.max_body_bytes).await?;
        let proposed = parse_body(&body, format, state.config.server.max_json_depth)?;
        let issues = state.validation.errors(&proposed);
        if !issues.is_empty() {
            return Err(ApiError::Invalid(issues));
        }
        change_service_request(&state, &request, &client, &path, proposed).await
    })
    .await
}

pub async fn patch_service_request(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> HttpResponse {
    handle(&request, |_| async {
        let client = state
            .authorize(&request, "system/ServiceRequest.write")
            .await?;
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
        let mut proposed: Value = current.json()?;
        json_patch::patch(&mut proposed, &patch).map_err(|e| {
            ApiError::Invalid(vec![Issue::error(
                "processing",
                format!("The patch cannot be applied: {e}"),
            )
            .with_message_id("patch-failed")])
        })?;
        change_service_request(&state, &request, &client, id.as_str(), proposed).await
    })
    .await
}

/// Checks a Subscription a GP system sends and returns (resource type, criteria, endpoint).
fn check_subscription(resource: &Value) -> Result<(String, String, String), Vec<Issue>> {
    let mut issues = Vec::new();
    let criteria = resource["criteria"].as_str().unwrap_or("").to_string();
    let (resource_type, query) = criteria.split_once('?').unwrap_or((criteria.as_str(), ""));
    if !matches!(resource_type, "Task" | "Observation") {
        issues.push(Issue::error("not-supported", "Subscriptions watch Task or Observation: criteria like Task?focus=ServiceRequest/{id}.").at("Subscription.criteria"));
    }
    for (name, _) in form_urlencoded::parse(query.as_bytes()) {
        if !CRITERIA_PARAMETERS.contains(&name.as_ref()) {
            issues.push(
                Issue::error(
                    "not-supported",
                    format!(
                        "Criteria parameter {name:?} is not supported; use {}.",
                        CRITERIA_PARAMETERS.join(", ")
                    ),
                )
                .at("Subscription.criteria"),
            );
        }
    }
    if resource["channel"]["type"].as_str() != Some("rest-hook") {
        issues.push(
            Issue::error("not-supported", "Only rest-hook channels are supported.")
                .at("Subscription.channel.type"),
        );
    }
    let endpoint = resource["channel"]["endpoint"]
        .as_str()
        .unwrap_or("")
        .to_string();
    if !matches!(
        reqwest::Url::parse(&endpoint)
            .map(|u| u.scheme().to_string())
            .as_deref(),
        Ok("http" | "https")
    ) {
        issues.push(
            Issue::error(
                "required",
                "channel.endpoint must be the absolute http(s) URL to notify.",
            )
            .at("Subscription.channel.endpoint"),
        );
    }
    match resource["channel"]["payload"].as_str() {
        None | Some("application/fhir+json") | Some("application/json") => {}
        Some(other) => issues.push(Issue::error("not-supported", format!("Notifications are sent as application/fhir+json (or empty); {other} is not supported.")).at("Subscription.channel.payload")),
    }
    if issues.is_empty() {
        Ok((resource_type.to_string(), criteria.clone(), endpoint))
    } else {
        Err(issues
            .into_iter()
            .map(|i| i.with_message_id("subscription-unsupported"))
            .collect())
    }
}

async fn create_subscription(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    handle(&request, |_| async {
        let client = state.authorize(&request, "system/Subscription.write").await?;
        let (format, _, body) = read_body(&request, payload, state.config.server.max_body_bytes).await?;
        let mut resource = parse_body(&body, format, state.config.server.max_json_depth)?;
        if resource["resourceType"] != "Subscription" {
            return Err(ApiError::Invalid(vec![Issue::error("structure", "This endpoint takes a Subscription.").at("resourceType")]));
        }
        let mut issues = state.validation.errors(&resource);
        let checked = check_subscription(&resource);
        if let Err(more) = &checked {
            issues.extend(more.iter().cloned());
        }
        let has_secret = state.config.client(client.as_str()).is_some_and(|c| c.notification_secret.is_some());
        if !has_secret {
            issues.push(Issue::error("business-rule", "This client has no notification_secret configured, so notifications could not be signed; ask the gateway's operator.").with_message_id("no-notification-secret"));
        }
        let Ok((resource_type, criteria, endpoint)) = checked.map_err(|_| ()).and_then(|c| if issues.is_empty() { Ok(c) } else { Err(()) }) else {
            return Err(ApiError::Invalid(issues));
        };
        let id = crate::domain::FhirId::generate();
        let now = Utc::now();
        resource["status"] = json!("active");
        let resource = crate::intake::with_version(resource, &id, &now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        let row = SubscriptionRow {
            id: id.to_string(),
            client_id: client.clone(),
            resource_type,
            criteria,
            endpoint,
            status: SubscriptionStatus::Active,
            content: resource.to_string(),
        };
        state.store.create_subscription(row, now).await?;
        Ok(Reply::new(StatusCode::CREATED, Some(resource))
            .header("Location", location("Subscription", id.as_str(), 1))
            .header("ETag", "W/\"1\""))
    })
    .await
}

async fn own_subscription(
    state: &AppState,
    client: &ClientId,
    id: &str,
) -> Result<SubscriptionRow, ApiError> {
    state
        .store
        .subscription(id)
        .await?
        .filter(|s| s.client_id == *client)
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "There is no Subscription with id {id} for this client."
            ))
        })
}

async fn read_subscription(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    handle(&request, |_| async {
        let client = state
            .authorize(&request, "system/Subscription.read")
            .await?;
        let row = own_subscription(&state, &client, &path).await?;
        let mut content: Value = row.json()?;
        content["status"] = json!(row.status);
        Ok(Reply::ok(content))
    })
    .await
}

async fn delete_subscription(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    handle(&request, |_| async {
        let client = state
            .authorize(&request, "system/Subscription.write")
            .await?;
        if !state.store.delete_subscription(&client, &path).await? {
            return Err(ApiError::NotFound(format!(
                "There is no active Subscription with id {} for this client.",
                path.as_str()
            )));
        }
        Ok(Reply::new(StatusCode::NO_CONTENT, None))
    })
    .await
}
