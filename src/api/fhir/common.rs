//! What every FHIR handler shares: format negotiation, reading bodies, reads by id and
//! version, and the headers of a stored version. The resource modules build on this one (and on
//! `search`), not on each other.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;

use crate::api::access::{self, Accessed};
use crate::api::errors::{respond, ApiError, Reply};
use crate::api::extract::GpClient;
pub use crate::api::query_pairs;
use crate::api::AppState;
use crate::domain::FhirId;
use crate::fhir::read::Format;
use crate::store::{StoreError, StoredResource};

/// The response format a request asks for (`_format`, then `Accept`).
pub fn response_format(request: &HttpRequest) -> Result<Format, ApiError> {
    let format_param = query_pairs(request)
        .into_iter()
        .find(|(k, _)| k == "_format")
        .map(|(_, v)| v);
    let accept = request
        .headers()
        .get("accept")
        .and_then(|v| v.to_str().ok());
    Format::negotiate(format_param.as_deref(), accept).map_err(ApiError::NotAcceptable)
}

/// Runs a handler body with the negotiated format; a format we cannot produce is answered in JSON.
pub async fn handle<F>(request: &HttpRequest, body: impl FnOnce(Format) -> F) -> HttpResponse
where
    F: std::future::Future<Output = Result<Reply, ApiError>>,
{
    match response_format(request) {
        Ok(format) => respond(format, body(format).await),
        Err(error) => error.into_response(Format::Json),
    }
}

/// Reads the body up to the configured limit, refusing early on a declared length above it.
pub async fn read_body(
    request: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<(Format, String, web::BytesMut), ApiError> {
    let content_type = request
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let format = Format::from_media_type(&content_type)
        .ok_or_else(|| ApiError::UnsupportedMediaType(content_type.clone()))?;
    let body = read_limited(request, payload, limit).await?;
    Ok((format, content_type, body))
}

/// Reads a body of any media type up to `limit` bytes. `api::body` has received it already (the
/// declared length checked, within the configured body timeout): this takes it from memory.
pub async fn read_limited(
    _request: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<web::BytesMut, ApiError> {
    crate::api::body::collect(payload.into_inner(), limit)
        .await
        .map_err(ApiError::from)
}

/// A FHIR resource path that answers `405` with an OperationOutcome to methods it has no route for.
pub fn resource(path: &str) -> actix_web::Resource {
    web::resource(path.to_string()).default_service(web::to(method_not_allowed))
}

pub async fn unknown_route(request: HttpRequest) -> HttpResponse {
    let path = request.path().to_string();
    handle(&request, |_| async move {
        Err(ApiError::NotFound(format!(
            "There is nothing at {path}; see /fhir/metadata for what this server offers."
        )))
    })
    .await
}

pub async fn method_not_allowed(request: HttpRequest) -> HttpResponse {
    handle(&request, |_| async { Err(ApiError::MethodNotAllowed) }).await
}

pub fn version_headers(reply: Reply, resource: &StoredResource) -> Reply {
    reply
        .header("ETag", format!("W/\"{}\"", resource.version_id))
        .header(
            "Last-Modified",
            resource
                .last_updated
                .format("%a, %d %b %Y %H:%M:%S GMT")
                .to_string(),
        )
}

pub fn location(resource_type: &str, id: &str, version: i64) -> String {
    format!("/fhir/{resource_type}/{id}/_history/{version}")
}

pub fn parse_id(raw: &str, resource_type: &str) -> Result<FhirId, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::NotFound(format!(
            "There is no {resource_type} with id {raw:?} (not a valid FHIR id)."
        ))
    })
}

/// What a GET on `/{type}/{id}` or `/{type}/{id}/_history` answers.
#[derive(Clone, Copy)]
enum ById {
    Current,
    History,
}

/// A GET route on one resource id of `resource_type`.
fn by_id_route(resource_type: &'static str, which: ById) -> actix_web::Route {
    web::get().to(
        move |client: GpClient,
              state: web::Data<AppState>,
              request: HttpRequest,
              path: web::Path<String>| async move {
            handle(&request, |_| async {
                match which {
                    ById::Current => {
                        read(&state, &request, &client, resource_type, &path, None).await
                    }
                    ById::History => history(&state, &request, &client, resource_type, &path).await,
                }
            })
            .await
        },
    )
}

/// A GET route reading the current version of `resource_type` by id.
pub fn read_route(resource_type: &'static str) -> actix_web::Route {
    by_id_route(resource_type, ById::Current)
}

/// A GET route reading one version (`/{id}/_history/{vid}`) of `resource_type`.
pub fn vread_route(resource_type: &'static str) -> actix_web::Route {
    web::get().to(
        move |client: GpClient,
              state: web::Data<AppState>,
              request: HttpRequest,
              path: web::Path<(String, String)>| async move {
            handle(&request, |_| async {
                read(
                    &state,
                    &request,
                    &client,
                    resource_type,
                    &path.0,
                    Some(&path.1),
                )
                .await
            })
            .await
        },
    )
}

/// A GET route with every version (`/{id}/_history`) of `resource_type`, newest first: a
/// `history` Bundle, audited.
pub fn history_route(resource_type: &'static str) -> actix_web::Route {
    by_id_route(resource_type, ById::History)
}

async fn history(
    state: &AppState,
    request: &HttpRequest,
    client: &GpClient,
    resource_type: &str,
    id: &str,
) -> Result<Reply, ApiError> {
    let client = client.require(&crate::auth::scopes::read(resource_type))?;
    let id = parse_id(id, resource_type)?;
    let versions = state
        .store
        .history(&client, resource_type, id.as_str())
        .await?;
    let accessed = Accessed {
        actor: crate::domain::Actor::client(&client),
        action: "history",
        resource_type,
        resource_id: Some(id.as_str()),
        patient_id: None,
        found: !versions.is_empty(),
    };
    access::record(state, request, accessed).await?;
    if versions.is_empty() {
        return Err(ApiError::NotFound(format!(
            "There is no {resource_type} with id {id} for this client."
        )));
    }
    let base = state.config.base_url();
    let entries: Vec<Value> = versions
        .iter()
        .map(|v| {
            let (method, status, url) = if v.version_id == 1 {
                ("POST", "201 Created", resource_type.to_string())
            } else {
                ("PUT", "200 OK", format!("{resource_type}/{}", v.id))
            };
            Ok(serde_json::json!({
                "fullUrl": format!("{base}/fhir/{resource_type}/{}", v.id),
                "resource": content(v)?,
                "request": {"method": method, "url": url},
                "response": {"status": status, "etag": format!("W/\"{}\"", v.version_id),
                             "lastModified": v.last_updated.to_rfc3339()}
            }))
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(Reply::ok(serde_json::json!({
        "resourceType": "Bundle", "type": "history", "total": entries.len(), "entry": entries
    })))
}

/// Reads the current version, or `version`, of a resource the client may see, audited.
async fn read(
    state: &AppState,
    request: &HttpRequest,
    client: &GpClient,
    resource_type: &str,
    id: &str,
    version: Option<&str>,
) -> Result<Reply, ApiError> {
    let client = client.require(&crate::auth::scopes::read(resource_type))?;
    let id = parse_id(id, resource_type)?;
    let not_found = || {
        ApiError::NotFound(format!(
            "There is no {resource_type} with id {id} for this client."
        ))
    };
    let found = match version {
        None => {
            state
                .store
                .read_resource(&client, resource_type, id.as_str())
                .await?
        }
        Some(version) => {
            let Ok(version_id) = version.parse::<i64>() else {
                return Err(ApiError::NotFound(format!(
                    "{resource_type}/{id} has no version {version}."
                )));
            };
            state
                .store
                .read_version(&client, resource_type, id.as_str(), version_id)
                .await?
        }
    };
    let accessed = Accessed {
        actor: crate::domain::Actor::client(&client),
        action: if version.is_some() { "vread" } else { "read" },
        resource_type,
        resource_id: Some(id.as_str()),
        patient_id: None,
        found: found.is_some(),
    };
    access::record(state, request, accessed).await?;
    let found = found.ok_or_else(not_found)?;
    Ok(version_headers(Reply::ok(content(&found)?), &found))
}

/// A stored resource's JSON; stored text that does not parse is an error naming the resource.
pub fn content(resource: &StoredResource) -> Result<Value, StoreError> {
    resource.json()
}
