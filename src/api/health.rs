//! The probes an orchestrator calls, without a token: `/healthz` (the process answers) and
//! `/readyz` (it can do its work: the database answers, its schema is this build's, it still
//! accepts writes, the delivery worker goes round). They name what failed and nothing else: no versions, hosts or errors.

use actix_web::{web, HttpResponse};
use chrono::Utc;
use serde_json::{json, Map, Value};

use super::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let mut checks = Map::new();
    let (database, migrations) = match state.store.migrations_missing().await {
        Ok(0) => ("ok", "ok"),
        Ok(_) => ("ok", "pending"),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: the database cannot be reached");
            ("unreachable", "unknown")
        }
    };
    checks.insert("database".into(), json!(database));
    checks.insert("migrations".into(), json!(migrations));
    // A writer that refuses every write (a failed commit or fsync) cannot answer `201` again.
    let writes = if state.store.write_refusal().is_some() {
        "refused"
    } else {
        "ok"
    };
    checks.insert("writes".into(), json!(writes));
    let worker = match &state.worker {
        None => "off",
        Some(heartbeat) if heartbeat.alive(state.config.delivery.timeout, Utc::now()) => "ok",
        Some(_) => "stalled",
    };
    checks.insert("worker".into(), json!(worker));
    let failed: Vec<Value> = checks
        .iter()
        .filter(|(_, v)| !matches!(v.as_str(), Some("ok" | "off")))
        .map(|(k, _)| json!(k))
        .collect();
    let body = json!({
        "status": if failed.is_empty() { "ready" } else { "not ready" },
        "checks": checks,
        "failed": failed,
    });
    if failed.is_empty() {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
