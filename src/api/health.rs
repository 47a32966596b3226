//! The probes an orchestrator calls, without a token: `/healthz` (the process answers) and
//! `/readyz` (it can do its work: the database answers, its schema is this build's, it still
//! accepts writes, the delivery worker goes round). They name what failed and nothing else: no versions, hosts or errors.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::AppState;
use crate::delivery::Heartbeat;

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
    let worker = worker_check(
        state.worker.as_ref(),
        state.config.delivery.timeout,
        Utc::now(),
    );
    checks.insert("worker".into(), json!(worker));
    let (ready, body) = verdict(checks);
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// The delivery worker's check: `off` when this replica runs none, `stalled` when its claim loop
/// has not gone round for longer than it ever should (it was stopped, or hangs).
fn worker_check(worker: Option<&Heartbeat>, timeout: Duration, now: DateTime<Utc>) -> &'static str {
    match worker {
        None => "off",
        Some(heartbeat) if heartbeat.alive(timeout, now) => "ok",
        Some(_) => "stalled",
    }
}

/// Ready when every check is `ok` (or `off`); the answer names each check and those that failed.
fn verdict(checks: Map<String, Value>) -> (bool, Value) {
    let failed: Vec<Value> = checks
        .iter()
        .filter(|(_, v)| !matches!(v.as_str(), Some("ok" | "off")))
        .map(|(k, _)| json!(k))
        .collect();
    let ready = failed.is_empty();
    let body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "checks": checks,
        "failed": failed,
    });
    (ready, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(10);

    /// A worker that was never started, or whose loop stopped going round, fails readiness
    /// (`503` naming `worker`); one that goes round, or none at all on this replica, does not.
    #[test]
    fn a_stopped_or_stalled_worker_is_not_ready() {
        let now = Utc::now();
        let never_started = Heartbeat::default();
        assert_eq!(worker_check(Some(&never_started), TIMEOUT, now), "stalled");
        assert_eq!(worker_check(None, TIMEOUT, now), "off");
        let running = Heartbeat::default();
        running.beat_at(now);
        assert_eq!(worker_check(Some(&running), TIMEOUT, now), "ok");
        // The same heartbeat seen long after its last beat: the loop has stopped.
        let later = now + chrono::Duration::minutes(2);
        assert_eq!(worker_check(Some(&running), TIMEOUT, later), "stalled");

        let mut checks = Map::new();
        for (name, value) in [("database", "ok"), ("migrations", "ok"), ("writes", "ok")] {
            checks.insert(name.into(), json!(value));
        }
        checks.insert("worker".into(), json!("stalled"));
        let (ready, body) = verdict(checks.clone());
        assert!(!ready);
        assert_eq!(body["failed"], json!(["worker"]), "{body}");
        assert_eq!(body["status"], "not ready");
        checks.insert("worker".into(), json!("off"));
        let (ready, body) = verdict(checks);
        assert!(ready, "{body}");
    }
}
