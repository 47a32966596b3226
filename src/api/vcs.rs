//! The VCS API (`/vcs/v1`): plain JSON for charities' CRMs. Each organisation authenticates with
//! its own bearer token and sees only the referrals routed to it (another's id is a 404).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::access::{self, Accessed};
use super::errors::Problem;
use super::extract::VcsCaller;
use super::json::{json_page, json_result, Page};
use super::{correlation_id, AppState};
use crate::domain::VcsId;
use crate::lifecycle::{IdempotencyKey, Lifecycle};
use crate::onward::{refer_onward, OnwardRequest};
use crate::store::{StoreError, VcsReferral, VcsReferralQuery};
use crate::translate::vcs_request::{parse_outcome_report, parse_status_update};
use crate::translate::vcs_status::VcsStatus;

const OPENAPI: &str = include_str!("../../profiles/vcs/openapi.json");
pub const STATUS_SCHEMA: &str = include_str!("../../profiles/vcs/status-update.v1.schema.json");
pub const OUTCOME_SCHEMA: &str = include_str!("../../profiles/vcs/outcome-report.v1.schema.json");
pub const ONWARD_SCHEMA: &str = include_str!("../../profiles/vcs/onward-referral.v1.schema.json");

/// The request-body schemas, compiled once at start.
pub struct VcsSchemas {
    status: jsonschema::Validator,
    outcome: jsonschema::Validator,
    onward: jsonschema::Validator,
}

impl VcsSchemas {
    pub fn compile() -> Result<Self, String> {
        let compile = |text: &str| -> Result<jsonschema::Validator, String> {
            let schema: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
            jsonschema::validator_for(&schema).map_err(|e| e.to_string())
        };
        Ok(VcsSchemas {
            status: compile(STATUS_SCHEMA)?,
            outcome: compile(OUTCOME_SCHEMA)?,
            onward: compile(ONWARD_SCHEMA)?,
        })
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/vcs/v1")
            .route("/openapi.json", web::get().to(openapi))
            .route("/referrals", web::get().to(list_referrals))
            .route("/referrals/{id}", web::get().to(read_referral))
            .route("/referrals/{id}/status", web::post().to(post_status))
            .route("/referrals/{id}/outcomes", web::post().to(post_outcome))
            .route("/referrals/{id}/onward", web::post().to(post_onward)),
    );
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(OPENAPI)
}

/// Audits what an organisation read; an audit failure fails the request.
async fn audit_vcs_access(
    state: &AppState,
    request: &HttpRequest,
    vcs: &VcsId,
    action: &str,
    referral_id: Option<&str>,
) -> Result<(), Problem> {
    let accessed = Accessed {
        actor: crate::domain::Actor::vcs(vcs),
        action,
        resource_type: "ServiceRequest",
        resource_id: referral_id,
        patient_id: None,
        found: true,
    };
    Ok(access::record(state, request, accessed).await?)
}

fn listed(referral: VcsReferral) -> Result<Value, StoreError> {
    Ok(json!({
        "record": referral.record_json()?,
        "referral_id": referral.referral_id,
        "status": referral.status,
        "updated_at": referral.updated_at.to_rfc3339_opts(SecondsFormat::Secs, true),
    }))
}

async fn list_referrals(
    VcsCaller(vcs): VcsCaller,
    state: web::Data<AppState>,
    request: HttpRequest,
) -> HttpResponse {
    json_result(
        async {
            let (mut status, mut since, mut page) = (None, None, Page::new(50, 200));
            for (name, value) in form_urlencoded::parse(request.query_string().as_bytes()) {
                match name.as_ref() {
                    "status" => {
                        status = Some(VcsStatus::parse(&value).ok_or_else(|| {
                            Problem::BadRequest(format!("Unknown status {value:?}."))
                        })?)
                    }
                    "since" => {
                        since = Some(
                            DateTime::parse_from_rfc3339(&value)
                                .map_err(|_| {
                                    Problem::BadRequest(format!(
                                        "since must be an RFC 3339 time; got {value:?}."
                                    ))
                                })?
                                .with_timezone(&Utc),
                        )
                    }
                    name if page.take(name, &value)? => {}
                    other => {
                        return Err(Problem::BadRequest(format!(
                            "Unknown parameter {other:?}; use status, since, limit, offset."
                        )))
                    }
                }
            }
            let (total, items) = state
                .store
                .list_vcs_referrals(
                    &vcs,
                    &VcsReferralQuery {
                        status,
                        since,
                        count: page.limit,
                        offset: page.offset,
                    },
                )
                .await?;
            audit_vcs_access(&state, &request, &vcs, "search", None).await?;
            let returned = items
                .iter()
                .map(|item| ("ServiceRequest", item.referral_id.as_str()));
            let actor = crate::domain::Actor::vcs(&vcs);
            access::record_each(&state, &request, &actor, "search", returned).await?;
            let items = items
                .into_iter()
                .map(listed)
                .collect::<Result<Vec<_>, _>>()?;
            Ok((StatusCode::OK, json_page(total, page.offset, items)))
        }
        .await,
    )
}

async fn read_referral(
    VcsCaller(vcs): VcsCaller,
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    json_result(
        async {
            let referral = state
                .store
                .load_referral(&path)
                .await?
                .filter(|r| r.vcs_id == vcs)
                .ok_or_else(|| {
                    Problem::NotFound(format!(
                        "No referral {} for this organisation.",
                        path.as_str()
                    ))
                })?;
            audit_vcs_access(
                &state,
                &request,
                &vcs,
                "read",
                Some(referral.referral_id.as_str()),
            )
            .await?;
            Ok((
                StatusCode::OK,
                listed(VcsReferral {
                    referral_id: referral.referral_id,
                    status: referral.vcs_status,
                    updated_at: referral.updated_at,
                    record: referral.record,
                })?,
            ))
        }
        .await,
    )
}

fn lifecycle(state: &AppState) -> Lifecycle<'_> {
    Lifecycle {
        store: state.store.as_ref(),
        config: &state.config,
        validation: &state.validation,
    }
}

/// The parts every write shares: the Idempotency-Key replay, the JSON body and its schema
/// check. `Ok(Err(response))` is a replayed answer.
async fn prepare_write(
    state: &AppState,
    request: &HttpRequest,
    vcs: &VcsId,
    referral_id: &str,
    body: &[u8],
    schema: &jsonschema::Validator,
) -> Result<Result<(Value, Option<IdempotencyKey>), (StatusCode, Value)>, Problem> {
    // Every write counts, a replayed one too: each costs a lookup, most a new version.
    state
        .limits
        .charge_vcs_write(vcs)
        .map_err(|t| Problem::Throttled(t.retry_after_secs))?;
    state.budget.check(state.store.as_ref()).await?;
    let idempotency = match request
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
    {
        Some(key) if !key.is_empty() && key.len() <= 255 => Some(IdempotencyKey {
            owner: crate::domain::Actor::vcs(vcs).to_string(),
            key: key.to_string(),
            request_hash: format!("{:x}", Sha256::digest(body)),
        }),
        Some(_) => {
            return Err(Problem::BadRequest(
                "Idempotency-Key must be 1 to 255 characters.".into(),
            ))
        }
        None => None,
    };
    if let Some(key) = &idempotency {
        if let Some(replayed) = lifecycle(state).replayed(referral_id, key).await? {
            let status = StatusCode::from_u16(replayed.status)
                .map_err(|e| StoreError::unreadable("idempotent response", key.key.as_str(), e))?;
            return Ok(Err((status, replayed.state_after)));
        }
    }
    let json: Value = serde_json::from_slice(body)
        .map_err(|e| Problem::BadRequest(format!("The body is not JSON: {e}")))?;
    let errors: Vec<(String, String)> = schema
        .iter_errors(&json)
        .map(|e| (field_name(&e.instance_path().to_string()), e.to_string()))
        .collect();
    if !errors.is_empty() {
        return Err(Problem::Invalid(errors));
    }
    Ok(Ok((json, idempotency)))
}

/// `/answers/3` → `answers[3]`; the root → `body`.
fn field_name(pointer: &str) -> String {
    let mut name = String::new();
    for part in pointer.split('/').filter(|p| !p.is_empty()) {
        if part.chars().all(|c| c.is_ascii_digit()) {
            name.push_str(&format!("[{part}]"));
        } else {
            if !name.is_empty() {
                name.push('.');
            }
            name.push_str(part);
        }
    }
    if name.is_empty() {
        "body".into()
    } else {
        name
    }
}

async fn post_status(
    VcsCaller(vcs): VcsCaller,
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    json_result(
        async {
            let schema = &state.vcs_schemas.status;
            let (json, idempotency) = match prepare_write(&state, &request, &vcs, &path, &body, schema).await? {
                Ok(ready) => ready,
                Err(replayed) => return Ok(replayed),
            };
            let update = parse_status_update(&json)?;
            let applied = lifecycle(&state)
                .report_status(&vcs, &path, &update, idempotency, correlation_id(&request))
                .await?;
            state.wake.notify_one();
            state.catalog.status_changed();
            tracing::info!(referral_id = %path.as_str(), vcs = %vcs, status = update.status.as_str(), "status reported");
            Ok((StatusCode::from_u16(applied.status).unwrap_or(StatusCode::OK), applied.state_after))
        }
        .await,
    )
}

async fn post_outcome(
    VcsCaller(vcs): VcsCaller,
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    json_result(
        async {
            let schema = &state.vcs_schemas.outcome;
            let (json, idempotency) =
                match prepare_write(&state, &request, &vcs, &path, &body, schema).await? {
                    Ok(ready) => ready,
                    Err(replayed) => return Ok(replayed),
                };
            let report = parse_outcome_report(&json)?;
            let applied = lifecycle(&state)
                .report_outcome(&vcs, &path, &report, idempotency, correlation_id(&request))
                .await?;
            state.wake.notify_one();
            tracing::info!(referral_id = %path.as_str(), vcs = %vcs, "outcome reported");
            Ok((
                StatusCode::from_u16(applied.status).unwrap_or(StatusCode::CREATED),
                applied.state_after,
            ))
        }
        .await,
    )
}

/// The body of an onward referral, once its schema held.
#[derive(serde::Deserialize)]
struct OnwardBody {
    service_id: String,
    note: Option<String>,
}

/// A link worker refers the person onward (the rules: `onward::refer_onward`).
async fn post_onward(
    VcsCaller(vcs): VcsCaller,
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    json_result(
        async {
            let schema = &state.vcs_schemas.onward;
            let (json, idempotency) =
                match prepare_write(&state, &request, &vcs, &path, &body, schema).await? {
                    Ok(ready) => ready,
                    Err(replayed) => return Ok(replayed),
                };
            let parsed: OnwardBody = serde_json::from_value(json)
                .map_err(|e| Problem::Invalid(vec![("body".into(), e.to_string())]))?;
            let onward = OnwardRequest {
                service_id: parsed.service_id,
                note: parsed.note,
            };
            let directory = state.catalog.index();
            let applied = refer_onward(
                &lifecycle(&state),
                directory.as_ref(),
                &vcs,
                &path,
                &onward,
                &body,
                idempotency,
                correlation_id(&request),
            )
            .await?;
            // A new referral, its webhook queued: counted and the worker woken.
            state.accepted();
            tracing::info!(referral_id = %path.as_str(), vcs = %vcs, "referred onward");
            Ok((
                StatusCode::from_u16(applied.status).unwrap_or(StatusCode::CREATED),
                applied.state_after,
            ))
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_pointers_become_field_names() {
        assert_eq!(field_name("/answers/3"), "answers[3]");
        assert_eq!(field_name("/status"), "status");
        assert_eq!(field_name(""), "body");
    }
}
