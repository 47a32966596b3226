//! The service directory as FHIR: `HealthcareService` (read, and search by need, postcode,
//! category, words, organisation and active flag, best matches first), and the directory's
//! `Organization`s and `Location`s (read). GP systems (with the type's read scope) and VCS
//! organisations read it. The directory holds no patient data, so its reads are not audited.
//!
//! Searches run on the in-memory index (`directory::Index`); the page's resources are then read
//! from the store.

use std::collections::BTreeSet;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;

use super::common::{handle, resource};
use super::search::{extend_matches, reference_id, searchset, token, Parameters};
use crate::api::errors::{ApiError, Reply};
use crate::api::extract::DirectoryReader;
use crate::api::AppState;
use crate::directory::index::{need_category, OrganizationFilter};
use crate::directory::near::{distance_extension, DistanceUnit};
use crate::directory::responsiveness::annotate;
use crate::directory::{district_of, Index, Query};
use crate::domain::{systems, NeedCategory};
use crate::intake::routing::{ListedService, ServiceDirectory};
use crate::store::{DirectoryResourceType, SearchPage, StoredResource};

const SEARCH: Parameters = Parameters {
    resource_type: "HealthcareService",
    names: &[
        "need",
        "postcode",
        "service-category",
        "name",
        "_text",
        "organization",
        "active",
        "_include",
        "_count",
        "_offset",
    ],
    paged: true,
    lenient: true,
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/HealthcareService").route(web::get().to(search)))
        .service(resource("/HealthcareService/{id}").route(web::get().to(read_service)))
        .service(resource("/Organization/{id}").route(web::get().to(read_organization)))
        .service(resource("/Location").route(web::get().to(super::location::search)))
        .service(resource("/Location/{id}").route(web::get().to(read_location)));
}

pub(super) fn not_found(resource_type: &str, id: &str) -> ApiError {
    ApiError::NotFound(format!(
        "There is no {resource_type} with id {id:?} in the service directory."
    ))
}

async fn read_service(
    reader: DirectoryReader,
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    handle(&request, |_| async {
        reader.require("HealthcareService")?;
        let service = state
            .store
            .directory_service(&path)
            .await?
            .ok_or_else(|| not_found("HealthcareService", &path))?;
        let mut json = service.json()?;
        annotate(&mut json, state.catalog.figures(&service.id).as_ref());
        Ok(Reply::ok(json))
    })
    .await
}

async fn read_directory_resource(
    reader: DirectoryReader,
    state: web::Data<AppState>,
    request: HttpRequest,
    kind: DirectoryResourceType,
    id: &str,
) -> HttpResponse {
    handle(&request, |_| async {
        reader.require(kind.as_str())?;
        let content = state
            .store
            .directory_resource(kind, id)
            .await?
            .ok_or_else(|| not_found(kind.as_str(), id))?;
        let value: Value = crate::store::stored_json("directory resource", id, &content)?;
        Ok(Reply::ok(value))
    })
    .await
}

async fn read_organization(
    reader: DirectoryReader,
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    let kind = DirectoryResourceType::Organization;
    read_directory_resource(reader, state, request, kind, &path).await
}

async fn read_location(
    reader: DirectoryReader,
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    let kind = DirectoryResourceType::Location;
    read_directory_resource(reader, state, request, kind, &path).await
}

/// What `_include` may add.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Include {
    Organization,
    Location,
}

fn include(value: &str) -> Result<Include, ApiError> {
    match value {
        "HealthcareService:organization" => Ok(Include::Organization),
        "HealthcareService:location" => Ok(Include::Location),
        other => Err(ApiError::BadRequest(format!(
            "_include={other:?} is not supported; HealthcareService:organization and \
             HealthcareService:location are."
        ))),
    }
}

fn service_category(value: &str) -> Result<NeedCategory, ApiError> {
    let (system, code) = token(value);
    let ours = system
        .as_deref()
        .is_none_or(|s| s == systems::NEED_CATEGORY);
    code.parse().ok().filter(|_| ours).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "service-category {value:?} is not a need category of {}.",
            systems::NEED_CATEGORY
        ))
    })
}

fn active(value: &str) -> Result<bool, ApiError> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(ApiError::BadRequest(format!(
            "active must be true or false; got {other:?}."
        ))),
    }
}

/// Reads the query into an index query and the includes asked for.
fn parse_query(
    state: &AppState,
    request: &HttpRequest,
) -> Result<(Query, Vec<Include>, super::search::Search), ApiError> {
    let needs = state.validation.conformance().needs();
    let mut query = Query::default();
    let mut includes = Vec::new();
    let search = SEARCH.parse(request, |name, value| {
        match name {
            "need" => {
                for one in value.split(',') {
                    let category = need_category(one, needs)
                        .map_err(|e| ApiError::BadRequest(format!("need: {e}.")))?;
                    query.categories.push(category);
                }
            }
            "service-category" => {
                for one in value.split(',') {
                    query.categories.push(service_category(one)?);
                }
            }
            "postcode" => {
                let district = district_of(value)
                    .map_err(|e| ApiError::BadRequest(format!("postcode: {e}.")))?;
                query.postcode = Some(district);
            }
            "name" | "_text" => query = std::mem::take(&mut query).with_text(value),
            "organization" => {
                query.organization =
                    Some(OrganizationFilter::Id(reference_id(value, "Organization")))
            }
            "active" => query.active = Some(active(value)?),
            "_include" => includes.push(include(value)?),
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    // A search answers services that are listed now unless it asks for `active` itself.
    query.active = query.active.or(Some(true));
    Ok((query, includes, search))
}

/// The ids a HealthcareService refers to for an include.
fn referenced(service: &Value, include: Include) -> Vec<String> {
    let refs: Vec<&Value> = match include {
        Include::Organization => service.get("providedBy").into_iter().collect(),
        Include::Location => service["location"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(service["coverageArea"].as_array().into_iter().flatten())
            .collect(),
    };
    let prefix = match include {
        Include::Organization => "Organization/",
        Include::Location => "Location/",
    };
    refs.into_iter()
        .filter_map(|r| r["reference"].as_str()?.strip_prefix(prefix))
        .map(str::to_string)
        .collect()
}

async fn search(
    reader: DirectoryReader,
    state: web::Data<AppState>,
    request: HttpRequest,
) -> HttpResponse {
    handle(&request, |_| async {
        reader.require("HealthcareService")?;
        let (query, includes, search) = parse_query(&state, &request)?;
        let index = state.catalog.index();
        let found = index.search(&query);
        let total = found.len();
        let mut resources = Vec::new();
        let mut included = Vec::new();
        let mut seen = BTreeSet::new();
        let mut distances = Vec::new();
        for m in found.iter().skip(search.offset).take(search.count) {
            let Some(service) = state.store.directory_service(&m.service.id).await? else {
                continue;
            };
            let mut json = service.json()?;
            annotate(&mut json, state.catalog.figures(&service.id).as_ref());
            for &kind in &includes {
                let resource_type = match kind {
                    Include::Organization => DirectoryResourceType::Organization,
                    Include::Location => DirectoryResourceType::Location,
                };
                for id in referenced(&json, kind) {
                    if !seen.insert((resource_type.as_str(), id.clone())) {
                        continue;
                    }
                    if let Some(content) =
                        state.store.directory_resource(resource_type, &id).await?
                    {
                        included.push(StoredResource {
                            resource_type: resource_type.as_str().to_string(),
                            id,
                            version_id: 1,
                            last_updated: service.updated_at,
                            content,
                        });
                    }
                }
            }
            distances.push(
                m.distance_km
                    .map(|km| distance_extension(km, DistanceUnit::Kilometre)),
            );
            resources.push(StoredResource {
                resource_type: "HealthcareService".into(),
                id: service.id.clone(),
                version_id: 1,
                last_updated: service.updated_at,
                content: json.to_string(),
            });
        }
        let page = SearchPage { total, resources };
        let base = state.config.base_url();
        let mut bundle = searchset(
            &base,
            "HealthcareService",
            &page,
            &search.kept,
            (search.count, search.offset),
            &included,
            &search.ignored,
        )?;
        extend_matches(&mut bundle, &distances);
        Ok(Reply::ok(bundle))
    })
    .await
}

/// Intake finds the services a referral names in the search index.
impl ServiceDirectory for Index {
    fn service(&self, id: &str) -> Option<ListedService> {
        let s = self.get(id)?;
        Some(ListedService {
            id: s.id.clone(),
            name: s.name.clone(),
            active: s.active,
            organization_identifiers: s.organization_identifiers.clone(),
            email: s.contact.email.clone(),
            website: s.contact.website.clone(),
            telephones: s.contact.telephones.clone(),
        })
    }
}
