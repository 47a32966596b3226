//! `Subscription`: a GP system asks to be told when its referrals' Tasks or Observations change
//! (R4 rest-hook), reads its Subscriptions, and deletes them. What may be subscribed to, and
//! what a notification carries, is `subscriptions`'; this file parses and renders.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;

use super::common::{handle, location, read_body, resource};
use crate::api::access::{self, Accessed};
use crate::api::errors::{ApiError, Reply};
use crate::api::extract::GpClient;
use crate::api::AppState;
use crate::delivery::ssrf::check_target;
use crate::domain::{Actor, ClientId};
use crate::fhir::read::parse_body;
use crate::store::StoreError;
use crate::subscriptions;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/Subscription").route(web::post().to(create)))
        .service(
            resource("/Subscription/{id}")
                .route(web::get().to(read))
                .route(web::delete().to(delete)),
        );
}

async fn create(
    client: GpClient,
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    handle(&request, |_| async {
        let client = client.require("system/Subscription.write")?;
        state.budget.check(state.store.as_ref()).await?;
        let (format, _, body) =
            read_body(&request, payload, state.config.server.max_body_bytes).await?;
        let resource = parse_body(&body, format, state.config.server.max_json_depth)?;
        let now = Utc::now();
        let endpoint_refused = match subscriptions::endpoint(&resource) {
            Some(url) => check_target(
                &url,
                subscriptions::allows_private_targets(&state.config, &client),
            )
            .await
            .err()
            .map(|e| e.to_string()),
            None => None,
        };
        let accepted = subscriptions::accept(
            &state.config,
            &state.validation,
            &client,
            resource,
            now,
            endpoint_refused,
        )
        .map_err(ApiError::Invalid)?;
        let id = accepted.row.id.clone();
        let limit = subscriptions::limit(&state.config, &client);
        if !state
            .store
            .create_subscription(accepted.row, now, limit)
            .await?
        {
            return Err(ApiError::Invalid(vec![subscriptions::over_limit(limit)]));
        }
        audit(&state, &request, &client, "create", &id).await?;
        Ok(Reply::new(StatusCode::CREATED, Some(accepted.resource))
            .header("Location", location("Subscription", &id, 1))
            .header("ETag", "W/\"1\""))
    })
    .await
}

async fn read(
    client: GpClient,
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    handle(&request, |_| async {
        let client = client.require("system/Subscription.read")?;
        let row = subscriptions::own(state.store.as_ref(), &client, &path)
            .await?
            .ok_or_else(|| {
                ApiError::NotFound(format!(
                    "There is no Subscription with id {} for this client.",
                    path.as_str()
                ))
            })?;
        Ok(Reply::ok(subscriptions::as_read(&row)?))
    })
    .await
}

async fn delete(
    client: GpClient,
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    handle(&request, |_| async {
        let client = client.require("system/Subscription.write")?;
        if !state.store.delete_subscription(&client, &path).await? {
            return Err(ApiError::NotFound(format!(
                "There is no active Subscription with id {} for this client.",
                path.as_str()
            )));
        }
        audit(&state, &request, &client, "delete", &path).await?;
        Ok(Reply::new(StatusCode::NO_CONTENT, None))
    })
    .await
}

/// A Subscription created or deleted: who, which (it says where notifications about patients go).
async fn audit(
    state: &AppState,
    request: &HttpRequest,
    client: &ClientId,
    action: &str,
    id: &str,
) -> Result<(), StoreError> {
    let accessed = Accessed {
        actor: Actor::client(client),
        action,
        resource_type: "Subscription",
        resource_id: Some(id),
        patient_id: None,
        found: true,
    };
    access::record(state, request, accessed).await
}
