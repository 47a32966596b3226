//! `GET /fhir/{StructureDefinition|ValueSet|CodeSystem|ConceptMap|SearchParameter}[/{id}]` and
//! `ValueSet/$expand`: our definitions, readable without a token (like `/fhir/metadata`), so a
//! GP system's developers can load them into their own validator or build a pick list.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::common::{handle, query_pairs, resource};
use super::search::{whole_number, Parameters};
use crate::api::errors::{ApiError, Reply};
use crate::api::AppState;
use crate::conformance::{ExpandRequest, PUBLISHED_TYPES};
use crate::fhir::outcome::operation_outcome;

pub fn routes(cfg: &mut web::ServiceConfig) {
    // `$expand` first: `/ValueSet/{id}` would otherwise take it for an id.
    cfg.service(resource("/ValueSet/$expand").route(web::get().to(expand_by_url)))
        .service(resource("/ValueSet/{id}/$expand").route(web::get().to(expand_by_id)));
    for kind in PUBLISHED_TYPES {
        cfg.service(resource(&format!("/{kind}")).route(web::get().to(
            move |state: web::Data<AppState>, request: HttpRequest| async move {
                search(&state, &request, kind).await
            },
        )))
        .service(
            resource(&format!("/{kind}/{{id}}")).route(
                web::get().to(
                    move |state: web::Data<AppState>,
                          request: HttpRequest,
                          id: web::Path<String>| async move {
                        read(&state, &request, kind, &id).await
                    },
                ),
            ),
        );
    }
}

async fn read(state: &AppState, request: &HttpRequest, kind: &str, id: &str) -> HttpResponse {
    handle(request, |_| async {
        let found = state.validation.conformance().read(kind, id)?;
        let found = found.ok_or_else(|| {
            ApiError::NotFound(format!(
                "There is no {kind} with id {id:?}; GET /fhir/{kind} lists them."
            ))
        })?;
        Ok(Reply::ok(found.clone()))
    })
    .await
}

async fn search(state: &AppState, request: &HttpRequest, kind: &str) -> HttpResponse {
    handle(request, |_| async {
        let parameters = Parameters {
            resource_type: kind,
            names: &["url", "name", "version"],
            paged: false,
            lenient: true,
        };
        let (mut url, mut name, mut version) = (None, None, None);
        let search = parameters.parse(request, |parameter, value| {
            let slot = match parameter {
                "url" => &mut url,
                "name" => &mut name,
                "version" => &mut version,
                _ => return Ok(false),
            };
            *slot = Some(value.to_string());
            Ok(true)
        })?;
        let found = state.validation.conformance().search(
            kind,
            url.as_deref(),
            name.as_deref(),
            version.as_deref(),
        )?;
        let base = state.config.base_url();
        let mut entries: Vec<Value> = found
            .iter()
            .map(|r| {
                json!({
                    "fullUrl": format!("{base}/fhir/{kind}/{}", r["id"].as_str().unwrap_or_default()),
                    "resource": r,
                    "search": {"mode": "match"}
                })
            })
            .collect();
        if !search.ignored.is_empty() {
            entries.push(json!({"resource": operation_outcome(&search.ignored), "search": {"mode": "outcome"}}));
        }
        Ok(Reply::ok(json!({
            "resourceType": "Bundle",
            "type": "searchset",
            "total": found.len(),
            "link": [{"relation": "self", "url": format!("{base}/fhir/{kind}?{}", request.query_string())}],
            "entry": entries
        })))
    })
    .await
}

/// Reads `filter`, `offset` and `count` (FHIR `$expand` parameters).
fn expand_request(request: &HttpRequest) -> Result<(ExpandRequest, Option<String>), ApiError> {
    let mut expand = ExpandRequest::default();
    let mut url = None;
    for (name, value) in query_pairs(request) {
        match name.as_str() {
            "filter" => expand.filter = Some(value),
            "offset" => expand.offset = whole_number("offset", &value)?,
            "count" => expand.count = Some(whole_number("count", &value)?),
            "url" => url = Some(value),
            "_format" => {}
            other => {
                return Err(ApiError::BadRequest(format!(
                    "$expand takes url, filter, offset and count; not {other:?}."
                )))
            }
        }
    }
    Ok((expand, url))
}

async fn expand(state: &AppState, request: &HttpRequest, id: Option<&str>) -> HttpResponse {
    handle(request, |_| async {
        let (expand, url) = expand_request(request)?;
        if id.is_none() && url.is_none() {
            return Err(ApiError::BadRequest(
                "ValueSet/$expand needs url=<the value set's canonical URL>, or use ValueSet/{id}/$expand.".into(),
            ));
        }
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let expanded = state
            .validation
            .conformance()
            .expand(id, url.as_deref(), &expand, &now)?;
        let expanded = expanded.ok_or_else(|| {
            ApiError::NotFound(format!(
                "There is no value set {} on this server; GET /fhir/ValueSet lists them.",
                id.or(url.as_deref()).unwrap_or_default()
            ))
        })?;
        Ok(Reply::ok(expanded))
    })
    .await
}

async fn expand_by_url(state: web::Data<AppState>, request: HttpRequest) -> HttpResponse {
    expand(&state, &request, None).await
}

async fn expand_by_id(
    state: web::Data<AppState>,
    request: HttpRequest,
    id: web::Path<String>,
) -> HttpResponse {
    expand(&state, &request, Some(&id)).await
}
