//! The operator API (`/admin/v1`, admin bearer token) and `/metrics`: deliveries and their
//! retries, VCS endpoints switched on and off, recoveries, webhook secret rotation. Plain JSON
//! with problem details, like the VCS API; the caller is the `Operator` extractor.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::access::{self, Accessed};
use super::admin_directory;
use super::errors::Problem;
use super::extract::Operator;
use super::json::{json_page, json_result, Page};
use super::{query_pairs, AppState};
use crate::delivery::signing::generate_secret;
use crate::domain::Actor;
use crate::metrics::StoreFigures;
use crate::operator::{self, OperatorError};
use crate::store::{DeliveryFilter, DeliveryState, StoreError};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics)).service(
        web::scope("/admin/v1")
            .route("/deliveries", web::get().to(list_deliveries))
            .route("/deliveries/{id}/retry", web::post().to(retry_delivery))
            .route(
                "/referrals/{id}/deliveries",
                web::get().to(referral_deliveries),
            )
            .route("/vcs", web::get().to(list_vcs))
            .route("/vcs/{vcs_id}/recover", web::post().to(recover))
            .route("/vcs/{vcs_id}/enable", web::post().to(enable))
            .route("/vcs/{vcs_id}/disable", web::post().to(disable))
            .route("/vcs/{vcs_id}/rotate-secret", web::post().to(rotate_secret))
            .route("/recoveries/{job_id}", web::get().to(recovery))
            .route("/directory/refresh", web::post().to(refresh_directory))
            .route(
                "/directory/feeds",
                web::get().to(admin_directory::list_feeds),
            )
            .route(
                "/directory/feeds/{feed_id}/refresh",
                web::post().to(admin_directory::refresh_feed),
            ),
    );
}

impl From<OperatorError> for Problem {
    fn from(error: OperatorError) -> Self {
        match error {
            OperatorError::NotFound(why) => Problem::NotFound(why),
            OperatorError::Conflict(why) => Problem::Conflict(why),
            OperatorError::Store(e) => Problem::Store(e),
        }
    }
}

/// Prometheus scrapes with the admin token (`authorization: credentials` in its scrape config).
/// A store that cannot be reached is reported as `sp_store_up 0`, not as a failed scrape.
async fn metrics(_: Operator, state: web::Data<AppState>) -> HttpResponse {
    let figures = async {
        let outbox = state.store.outbox_stats(Utc::now()).await?;
        let disabled_endpoints = state.store.disabled_endpoints().await?.len();
        Ok::<_, StoreError>(StoreFigures {
            outbox,
            disabled_endpoints,
            writes_refused: state.store.write_refusal().is_some(),
        })
    }
    .await;
    if let Err(error) = &figures {
        tracing::warn!(%error, "metrics: the store did not answer");
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render(figures.ok().as_ref()))
}

/// The operator API's view of our own records (strings and numbers, which always serialise).
fn as_json(value: &impl serde::Serialize) -> Result<Value, Problem> {
    serde_json::to_value(value).map_err(|e| Problem::Store(StoreError::Database(Box::new(e))))
}

async fn list_deliveries(
    _: Operator,
    state: web::Data<AppState>,
    request: HttpRequest,
) -> HttpResponse {
    json_result(
        async {
            let mut filter = DeliveryFilter::default();
            let mut page = Page::new(50, 500);
            for (name, value) in query_pairs(&request) {
                match name.as_str() {
                    "state" if value.parse::<DeliveryState>().is_ok() => {
                        filter.state = value.parse().ok()
                    }
                    "state" => {
                        return Err(Problem::BadRequest(
                            "state is one of pending, delivered, dead.".into(),
                        ))
                    }
                    "vcs" => filter.vcs = Some(value),
                    name if page.take(name, &value)? => {}
                    other => {
                        return Err(Problem::BadRequest(format!(
                            "Unknown parameter {other:?}; use state, vcs, limit, offset."
                        )))
                    }
                }
            }
            (filter.count, filter.offset) = (page.limit, page.offset);
            let (total, items) = state.store.list_deliveries(&filter).await?;
            // Each referral the list names, once: the operator saw that it exists and where it
            // went.
            let referrals: std::collections::BTreeSet<&str> =
                items.iter().map(|d| d.referral_id.as_str()).collect();
            let returned = referrals.into_iter().map(|id| ("ServiceRequest", id));
            access::record_each(&state, &request, &Actor::Operator, "search", returned).await?;
            let items: Vec<Value> = items.iter().map(as_json).collect::<Result<Vec<_>, _>>()?;
            Ok((StatusCode::OK, json_page(total, filter.offset, items)))
        }
        .await,
    )
}

async fn referral_deliveries(
    _: Operator,
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    json_result(
        async {
            let messages = state.store.referral_deliveries(&path).await?;
            let accessed = Accessed {
                actor: Actor::Operator,
                action: "read",
                resource_type: "ServiceRequest",
                resource_id: Some(path.as_str()),
                patient_id: None,
                found: !messages.is_empty(),
            };
            access::record(&state, &request, accessed).await?;
            if messages.is_empty() {
                return Err(Problem::NotFound(format!(
                    "No deliveries for referral {}.",
                    path.as_str()
                )));
            }
            let messages: Vec<Value> = messages
                .into_iter()
                .map(|(delivery, attempts)| {
                    let mut value = as_json(&delivery)?;
                    value["attempts_detail"] = as_json(&attempts)?;
                    Ok(value)
                })
                .collect::<Result<Vec<_>, Problem>>()?;
            Ok((
                StatusCode::OK,
                json!({"referral_id": path.as_str(), "messages": messages}),
            ))
        }
        .await,
    )
}

async fn retry_delivery(
    _: Operator,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> HttpResponse {
    json_result(
        async {
            operator::retry(state.store.as_ref(), &state.wake, &path).await?;
            Ok((
                StatusCode::ACCEPTED,
                json!({"id": path.as_str(), "state": DeliveryState::Pending}),
            ))
        }
        .await,
    )
}

async fn list_vcs(_: Operator, state: web::Data<AppState>) -> HttpResponse {
    json_result(
        async {
            let disabled = state.store.disabled_endpoints().await?;
            let items: Vec<Value> = state
                .config
                .vcs
                .iter()
                .map(|vcs| {
                    let off = disabled.iter().find(|(id, _)| id == vcs.id.as_str());
                    json!({"vcs_id": vcs.id, "name": vcs.name, "webhook_url": vcs.webhook_url.as_deref(),
                           "enabled": off.is_none(), "disabled_reason": off.and_then(|(_, r)| r.clone())})
                })
                .collect();
            Ok((StatusCode::OK, json!({"items": items})))
        }
        .await,
    )
}

async fn recover(
    _: Operator,
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    json_result(
        async {
            // An unknown organisation is a 404 whatever else the request lacks.
            operator::webhook_vcs(&state.config, &path)?;
            let since = query_pairs(&request)
                .into_iter()
                .find(|(k, _)| k == "since")
                .map(|(_, v)| v)
                .ok_or_else(|| Problem::BadRequest("since=RFC3339 is required.".into()))?;
            let since = DateTime::parse_from_rfc3339(&since)
                .map_err(|_| {
                    Problem::BadRequest(format!("since must be an RFC 3339 time; got {since:?}."))
                })?
                .with_timezone(&Utc);
            let (config, store) = (&state.config, state.store.as_ref());
            let progress = operator::recover(config, store, &state.wake, &path, since).await?;
            let body = as_json(&progress)?;
            Ok((StatusCode::ACCEPTED, body))
        }
        .await,
    )
}

async fn recovery(
    _: Operator,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> HttpResponse {
    json_result(
        async {
            let progress =
                state.store.recovery_progress(&path).await?.ok_or_else(|| {
                    Problem::NotFound(format!("No recovery job {}.", path.as_str()))
                })?;
            Ok((StatusCode::OK, as_json(&progress)?))
        }
        .await,
    )
}

async fn set_enabled(
    state: &AppState,
    raw: &str,
    enabled: bool,
) -> Result<(StatusCode, Value), Problem> {
    let (config, store) = (&state.config, state.store.as_ref());
    let vcs = operator::set_enabled(config, store, &state.wake, raw, enabled).await?;
    Ok((StatusCode::OK, json!({"vcs_id": vcs, "enabled": enabled})))
}

async fn enable(_: Operator, state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    json_result(set_enabled(&state, &path, true).await)
}

async fn disable(_: Operator, state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    json_result(set_enabled(&state, &path, false).await)
}

/// A new secret, shown once; the old ones keep signing beside it for the grace period.
async fn rotate_secret(
    _: Operator,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> HttpResponse {
    json_result(
        async {
            let vcs = operator::webhook_vcs(&state.config, &path)?;
            let secret = generate_secret();
            let now = Utc::now();
            let grace_until = now + chrono::Duration::from_std(state.config.delivery.rotation_grace).unwrap_or_default();
            state.store.adopt_secret(&vcs, &secret, now, grace_until).await?;
            tracing::info!(vcs = %vcs, "webhook secret rotated");
            Ok((
                StatusCode::CREATED,
                json!({"vcs_id": vcs, "secret": secret, "previous_secrets_valid_until": grace_until.to_rfc3339()}),
            ))
        }
        .await,
    )
}

/// Rebuilds the service directory's search index from the store (after `sp-gateway directory
/// import` wrote to the database of a running gateway), and computes the services'
/// responsiveness figures now.
async fn refresh_directory(_: Operator, state: web::Data<AppState>) -> HttpResponse {
    json_result(
        async {
            let services = state.catalog.refresh(state.store.as_ref()).await?;
            let store = state.store.as_ref();
            let with_figures = state.catalog.refresh_responsiveness(store).await?;
            Ok((
                StatusCode::OK,
                json!({"services": services, "services_with_responsiveness": with_figures}),
            ))
        }
        .await,
    )
}
