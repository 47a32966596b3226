//! `GET /fhir/{StructureDefinition|ValueSet|CodeSystem|ConceptMap|SearchParameter}[/{id}]` and
//! `ValueSet/$expand`: our definitions, readable without a token (like `/fhir/metadata`), so a
//! GP system's developers can load them into their own validator or build a pick list.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::errors::{ApiError, Reply};
use super::fhir_common::{handle, query_pairs, resource};
use super::AppState;
use crate::conformance::{ExpandRequest, PUBLISHED_TYPES};
use crate::fhir::outcome::{operation_outcome, Issue, Severity};

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

/// The search parameters of a conformance search.
const SEARCH_PARAMETERS: [&str; 3] = ["url", "name", "version"];

async fn search(state: &AppState, request: &HttpRequest, kind: &str) -> HttpResponse {
    handle(request, |_| async {
        let mut wanted: [Option<String>; 3] = Default::default();
        let mut ignored = Vec::new();
        for (name, value) in query_pairs(request) {
            match SEARCH_PARAMETERS.iter().position(|p| *p == name) {
                Some(i) => wanted[i] = Some(value),
                None if name == "_format" => {}
                None => ignored.push(name),
            }
        }
        let [url, name, version] = &wanted;
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
        if !ignored.is_empty() {
            let issues: Vec<Issue> = ignored
                .iter()
                .map(|name| {
                    let mut issue = Issue::error(
                        "not-supported",
                        format!(
                            "Search parameter {name:?} is not supported and was ignored; {kind} supports {}.",
                            SEARCH_PARAMETERS.join(", ")
                        ),
                    )
                    .with_message_id("search-parameter-ignored");
                    issue.severity = Severity::Warning;
                    issue
                })
                .collect();
            entries.push(json!({"resource": operation_outcome(&issues), "search": {"mode": "outcome"}}));
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
    let number = |name: &str, value: &str| {
        value.parse::<usize>().map_err(|_| {
            ApiError::BadRequest(format!("{name} must be a whole number; got {value:?}."))
        })
    };
    for (name, value) in query_pairs(request) {
        match name.as_str() {
            "filter" => expand.filter = Some(value),
            "offset" => expand.offset = number("offset", &value)?,
            "count" => expand.count = Some(number("count", &value)?),
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
