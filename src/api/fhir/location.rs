//! `GET /fhir/Location?near=latitude|longitude|distance|units`: the directory's places near a
//! point, nearest first, each with its distance (the `location-distance` extension of its
//! `entry.search`, in the units asked for). Only the locations of listed services that have a
//! position of their own are found; their resources are read from the store.

use actix_web::{web, HttpRequest, HttpResponse};

use super::common::handle;
use super::search::{extend_matches, searchset, Parameters};
use crate::api::errors::{ApiError, Reply};
use crate::api::extract::DirectoryReader;
use crate::api::AppState;
use crate::directory::near::{distance_extension, Near};
use crate::store::{DirectoryResourceType, SearchPage, StoredResource};

const SEARCH: Parameters = Parameters {
    resource_type: "Location",
    names: &["near", "_count", "_offset"],
    paged: true,
    lenient: true,
};

pub async fn search(
    reader: DirectoryReader,
    state: web::Data<AppState>,
    request: HttpRequest,
) -> HttpResponse {
    handle(&request, |_| async {
        reader.require("Location")?;
        let mut near: Option<Near> = None;
        let search = SEARCH.parse(&request, |name, value| match name {
            "near" => {
                let parsed = value
                    .parse()
                    .map_err(|e| ApiError::BadRequest(format!("near: {e}.")))?;
                near = Some(parsed);
                Ok(true)
            }
            _ => Ok(false),
        })?;
        let Some(near) = near else {
            return Err(ApiError::BadRequest(
                "Location search needs near=latitude|longitude|distance|units (the directory's \
                 places are found by where they are)."
                    .into(),
            ));
        };
        let index = state.catalog.index();
        let found = index.near(&near.origin, near.within_km);
        let kind = DirectoryResourceType::Location;
        let mut resources = Vec::new();
        let mut distances = Vec::new();
        for hit in found.iter().skip(search.offset).take(search.count) {
            let id = &hit.location.id;
            let Some(content) = state.store.directory_resource(kind, id).await? else {
                continue;
            };
            distances.push(Some(distance_extension(hit.distance_km, near.unit)));
            resources.push(StoredResource {
                resource_type: kind.as_str().to_string(),
                id: id.clone(),
                version_id: 1,
                last_updated: chrono::Utc::now(),
                content,
            });
        }
        let page = SearchPage {
            total: found.len(),
            resources,
        };
        let base = state.config.base_url();
        let mut bundle = searchset(
            &base,
            kind.as_str(),
            &page,
            &search.kept,
            (search.count, search.offset),
            &[],
            &search.ignored,
        )?;
        extend_matches(&mut bundle, &distances);
        Ok(Reply::ok(bundle))
    })
    .await
}
