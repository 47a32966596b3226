//! What operators do with deliveries and endpoints, in SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection};

use super::SqliteStore;
use crate::domain::VcsId;
use crate::store::dashboard::{self, HEALTH_COLUMNS};
use crate::store::rows::{self, count, limit, ATTEMPT_COLUMNS, DELIVERY_COLUMNS};
use crate::store::traits::DeliveryAdmin;
use crate::store::types::*;
use crate::store::{timestamp, DeliveryCount, EndpointHealth, StoreError};

/// Switches an endpoint on or off.
pub(super) fn set_endpoint(
    conn: &Connection,
    vcs: &str,
    enabled: bool,
    reason: Option<&str>,
    at: &str,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO vcs_endpoints (vcs_id, disabled, disabled_reason, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (vcs_id) DO UPDATE SET disabled = excluded.disabled,
            disabled_reason = excluded.disabled_reason, updated_at = excluded.updated_at",
    )?
    .execute(params![vcs, !enabled, reason, at])?;
    Ok(())
}

fn recovery(conn: &Connection, job_id: &str) -> Result<Option<RecoveryProgress>, StoreError> {
    let job = conn
        .prepare_cached("SELECT vcs_id, since FROM recovery_jobs WHERE id = ?1")?
        .query_and_then(params![job_id], |row| rows::recovery_job(job_id, row))?
        .next()
        .transpose()?;
    let Some(mut progress) = job else {
        return Ok(None);
    };
    let counts = conn
        .prepare_cached(
            "SELECT o.state, COUNT(*) FROM recovery_job_messages m JOIN outbox o ON o.id = m.message_id
             WHERE m.job_id = ?1 GROUP BY o.state",
        )?
        .query_and_then(params![job_id], |row| rows::state_count(job_id, row))?
        .collect::<Result<Vec<_>, StoreError>>()?;
    for (state, n) in counts {
        progress.add(state, n);
    }
    Ok(Some(progress))
}

#[async_trait]
impl DeliveryAdmin for SqliteStore {
    async fn adopt_secret(
        &self,
        vcs: &VcsId,
        secret: &str,
        now: DateTime<Utc>,
        grace_until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (vcs, secret) = (vcs.to_string(), secret.to_string());
        let (now, grace) = (timestamp(now), timestamp(grace_until));
        self.write(move |conn| {
            let known: bool = conn
                .prepare_cached("SELECT 1 FROM vcs_secrets WHERE vcs_id = ?1 AND secret = ?2")?
                .exists(params![vcs, secret])?;
            if known {
                return Ok(());
            }
            conn.prepare_cached(
                "UPDATE vcs_secrets SET expires_at = ?2 WHERE vcs_id = ?1 AND (expires_at IS NULL OR expires_at > ?2)",
            )?
            .execute(params![vcs, grace])?;
            conn.prepare_cached("INSERT INTO vcs_secrets (vcs_id, secret, created_at) VALUES (?1, ?2, ?3)")?
                .execute(params![vcs, secret, now])?;
            Ok(())
        })
        .await
    }

    async fn set_endpoint_enabled(
        &self,
        vcs: &VcsId,
        enabled: bool,
        reason: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (vcs, now) = (vcs.to_string(), timestamp(now));
        self.write(move |conn| set_endpoint(conn, &vcs, enabled, reason.as_deref(), &now))
            .await
    }

    async fn disabled_endpoints(&self) -> Result<Vec<(String, Option<String>)>, StoreError> {
        self.read(|conn| {
            let mut query = conn.prepare_cached(
                "SELECT vcs_id, disabled_reason FROM vcs_endpoints WHERE disabled = 1",
            )?;
            let rows = query.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn list_deliveries(
        &self,
        filter: &DeliveryFilter,
    ) -> Result<(usize, Vec<Delivery>), StoreError> {
        let state = filter.state.map(DeliveryState::as_str);
        let filter = filter.clone();
        self.read(move |conn| {
            let condition = "(?1 IS NULL OR state = ?1) AND (?2 IS NULL OR vcs_id = ?2)";
            let total: i64 = conn.query_row(
                &format!("SELECT COUNT(*) FROM outbox WHERE {condition}"),
                params![state, filter.vcs],
                |row| row.get(0),
            )?;
            let deliveries = conn
                .prepare_cached(&format!(
                    "SELECT {DELIVERY_COLUMNS} FROM outbox WHERE {condition}
                     ORDER BY created_at DESC, id LIMIT ?3 OFFSET ?4"
                ))?
                .query_and_then(
                    params![state, filter.vcs, limit(filter.count), limit(filter.offset)],
                    |row| rows::delivery(row),
                )?
                .collect::<Result<Vec<_>, _>>()?;
            Ok((count(total), deliveries))
        })
        .await
    }

    async fn referral_deliveries(
        &self,
        referral_id: &str,
    ) -> Result<Vec<(Delivery, Vec<AttemptRow>)>, StoreError> {
        let referral_id = referral_id.to_string();
        self.read(move |conn| {
            let deliveries = conn
                .prepare_cached(&format!(
                    "SELECT {DELIVERY_COLUMNS} FROM outbox WHERE referral_id = ?1 ORDER BY sequence"
                ))?
                .query_and_then(params![referral_id], |row| rows::delivery(row))?
                .collect::<Result<Vec<_>, _>>()?;
            let mut attempts = conn.prepare_cached(&format!(
                "SELECT {ATTEMPT_COLUMNS} FROM delivery_attempts WHERE message_id = ?1 ORDER BY id"
            ))?;
            let mut result = Vec::new();
            for delivery in deliveries {
                let rows = attempts
                    .query_and_then(params![delivery.id], |row| rows::attempt(&delivery.id, row))?
                    .collect::<Result<Vec<_>, _>>()?;
                result.push((delivery, rows));
            }
            Ok(result)
        })
        .await
    }

    async fn retry_message(
        &self,
        message_id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (message_id, now) = (message_id.to_string(), timestamp(now));
        self.write(move |conn| {
            let changed = conn
                .prepare_cached(
                    "UPDATE outbox SET next_attempt_at = ?2,
                            lease_until = CASE WHEN state = 'pending' THEN lease_until END,
                            state = 'pending'
                     WHERE id = ?1 AND state IN ('dead', 'delivered', 'pending') AND payload <> ''",
                )?
                .execute(params![message_id, now])?;
            Ok(changed == 1)
        })
        .await
    }

    async fn start_recovery(
        &self,
        vcs: &VcsId,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<RecoveryProgress, StoreError> {
        let (vcs, since, now) = (vcs.to_string(), timestamp(since), timestamp(now));
        let job_id = format!("rec_{}", uuid::Uuid::new_v4().simple());
        self.write(move |conn| {
            conn.prepare_cached("INSERT INTO recovery_jobs (id, vcs_id, since, created_at) VALUES (?1, ?2, ?3, ?4)")?
                .execute(params![job_id, vcs, since, now])?;
            conn.prepare_cached(
                "INSERT INTO recovery_job_messages (job_id, message_id)
                 SELECT ?1, id FROM outbox WHERE vcs_id = ?2 AND state = 'dead' AND created_at >= ?3",
            )?
            .execute(params![job_id, vcs, since])?;
            conn.prepare_cached(
                "UPDATE outbox SET state = 'pending', next_attempt_at = ?2, lease_until = NULL, attempts = 0
                 WHERE id IN (SELECT message_id FROM recovery_job_messages WHERE job_id = ?1)",
            )?
            .execute(params![job_id, now])?;
            recovery(conn, &job_id)?
                .ok_or_else(|| StoreError::unreadable("recovery job", job_id.as_str(), "it vanished"))
        })
        .await
    }

    async fn recovery_progress(
        &self,
        job_id: &str,
    ) -> Result<Option<RecoveryProgress>, StoreError> {
        let job_id = job_id.to_string();
        self.read(move |conn| recovery(conn, &job_id)).await
    }

    async fn outbox_stats(&self, now: DateTime<Utc>) -> Result<OutboxStats, StoreError> {
        self.read(move |conn| {
            let (pending, oldest, dead): (i64, Option<String>, i64) = conn.query_row(
                "SELECT (SELECT COUNT(*) FROM outbox WHERE state = 'pending'),
                        (SELECT MIN(created_at) FROM outbox WHERE state = 'pending'),
                        (SELECT COUNT(*) FROM outbox WHERE state = 'dead')",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )?;
            let oldest = oldest
                .as_deref()
                .map(crate::store::parse_timestamp)
                .transpose()?;
            Ok(OutboxStats::at(now, count(pending), count(dead), oldest))
        })
        .await
    }

    async fn delivery_counts(&self) -> Result<Vec<DeliveryCount>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT target_kind, vcs_id, state, COUNT(*) FROM outbox
                 GROUP BY target_kind, vcs_id, state ORDER BY target_kind, vcs_id, state",
            )?
            .query_and_then([], |row| dashboard::delivery_count(row))?
            .collect()
        })
        .await
    }

    async fn endpoint_health(&self) -> Result<Vec<EndpointHealth>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {HEALTH_COLUMNS} FROM endpoint_health ORDER BY vcs_id"
            ))?
            .query_and_then([], |row| dashboard::endpoint_health(row))?
            .collect()
        })
        .await
    }
}
