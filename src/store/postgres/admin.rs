//! What operators do with deliveries and endpoints, in PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::engine::{notify_work, Tx};
use super::PostgresStore;
use crate::domain::VcsId;
use crate::store::dashboard::{self, HEALTH_COLUMNS};
use crate::store::rows::{self, count, limit, ATTEMPT_COLUMNS, DELIVERY_COLUMNS};
use crate::store::traits::DeliveryAdmin;
use crate::store::types::*;
use crate::store::{DeliveryCount, EndpointHealth, StoreError};

/// Switches an endpoint on or off; messages waiting for it are announced when it comes back.
pub(super) async fn set_endpoint(
    conn: &mut Tx,
    vcs: &str,
    enabled: bool,
    reason: Option<&str>,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO vcs_endpoints (vcs_id, disabled, disabled_reason, updated_at)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (vcs_id) DO UPDATE SET disabled = excluded.disabled,
            disabled_reason = excluded.disabled_reason, updated_at = excluded.updated_at",
    )
    .bind(vcs)
    .bind(!enabled)
    .bind(reason)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    if enabled {
        notify_work(conn).await?;
    }
    Ok(())
}

async fn recovery(conn: &mut Tx, job_id: &str) -> Result<Option<RecoveryProgress>, StoreError> {
    let job = sqlx::query("SELECT vcs_id, since FROM recovery_jobs WHERE id = $1")
        .bind(job_id)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(job) = job else {
        return Ok(None);
    };
    let mut progress = rows::recovery_job(job_id, &job)?;
    let counts = sqlx::query(
        "SELECT o.state, COUNT(*) FROM recovery_job_messages m JOIN outbox o ON o.id = m.message_id
         WHERE m.job_id = $1 GROUP BY o.state",
    )
    .bind(job_id)
    .fetch_all(conn)
    .await?;
    for row in &counts {
        let (state, n) = rows::state_count(job_id, row)?;
        progress.add(state, n);
    }
    Ok(Some(progress))
}

#[async_trait]
impl DeliveryAdmin for PostgresStore {
    async fn adopt_secret(
        &self,
        vcs: &VcsId,
        secret: &str,
        now: DateTime<Utc>,
        grace_until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        // Replicas starting together adopt the same secret: the row lock makes them take turns,
        // and the second finds the secret known.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('vcs_secrets:' || $1))")
            .bind(vcs.as_str())
            .execute(&mut *tx)
            .await?;
        let known: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM vcs_secrets WHERE vcs_id = $1 AND secret = $2)",
        )
        .bind(vcs.as_str())
        .bind(secret)
        .fetch_one(&mut *tx)
        .await?;
        if known {
            return Ok(());
        }
        sqlx::query(
            "UPDATE vcs_secrets SET expires_at = $2
             WHERE vcs_id = $1 AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(vcs.as_str())
        .bind(grace_until)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO vcs_secrets (vcs_id, secret, created_at) VALUES ($1, $2, $3)")
            .bind(vcs.as_str())
            .bind(secret)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_endpoint_enabled(
        &self,
        vcs: &VcsId,
        enabled: bool,
        reason: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        set_endpoint(&mut tx, vcs.as_str(), enabled, reason.as_deref(), now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn disabled_endpoints(&self) -> Result<Vec<(String, Option<String>)>, StoreError> {
        let rows = sqlx::query("SELECT vcs_id, disabled_reason FROM vcs_endpoints WHERE disabled")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?)
    }

    async fn list_deliveries(
        &self,
        filter: &DeliveryFilter,
    ) -> Result<(usize, Vec<Delivery>), StoreError> {
        const CONDITION: &str =
            "($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR vcs_id = $2)";
        let state = filter.state.map(DeliveryState::as_str);
        let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM outbox WHERE {CONDITION}"
        )))
        .bind(state)
        .bind(&filter.vcs)
        .fetch_one(&self.pool)
        .await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLUMNS} FROM outbox WHERE {CONDITION}
             ORDER BY created_at DESC, id LIMIT $3 OFFSET $4"
        )))
        .bind(state)
        .bind(&filter.vcs)
        .bind(limit(filter.count))
        .bind(limit(filter.offset))
        .fetch_all(&self.pool)
        .await?;
        let deliveries = rows.iter().map(rows::delivery).collect::<Result<_, _>>()?;
        Ok((count(total), deliveries))
    }

    async fn referral_deliveries(
        &self,
        referral_id: &str,
    ) -> Result<Vec<(Delivery, Vec<AttemptRow>)>, StoreError> {
        let messages = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLUMNS} FROM outbox WHERE referral_id = $1
             ORDER BY sequence, created_at, id"
        )))
        .bind(referral_id)
        .fetch_all(&self.pool)
        .await?;
        let mut result = Vec::with_capacity(messages.len());
        for message in &messages {
            let delivery = rows::delivery(message)?;
            let attempts = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {ATTEMPT_COLUMNS} FROM delivery_attempts WHERE message_id = $1 ORDER BY id"
            )))
            .bind(&delivery.id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| rows::attempt(&delivery.id, row))
            .collect::<Result<Vec<_>, _>>()?;
            result.push((delivery, attempts));
        }
        Ok(result)
    }

    async fn retry_message(
        &self,
        message_id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(
            "UPDATE outbox SET next_attempt_at = $2,
                    lease_until = CASE WHEN state = 'pending' THEN lease_until END,
                    state = 'pending'
             WHERE id = $1 AND state IN ('dead', 'delivered', 'pending') AND payload <> ''",
        )
        .bind(message_id)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 1 {
            notify_work(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(changed == 1)
    }

    async fn start_recovery(
        &self,
        vcs: &VcsId,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<RecoveryProgress, StoreError> {
        let job_id = format!("rec_{}", uuid::Uuid::new_v4().simple());
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO recovery_jobs (id, vcs_id, since, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&job_id)
        .bind(vcs.as_str())
        .bind(since)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO recovery_job_messages (job_id, message_id)
             SELECT $1, id FROM outbox WHERE vcs_id = $2 AND state = 'dead' AND created_at >= $3",
        )
        .bind(&job_id)
        .bind(vcs.as_str())
        .bind(since)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE outbox SET state = 'pending', next_attempt_at = $2, lease_until = NULL,
                    attempts = 0
             WHERE id IN (SELECT message_id FROM recovery_job_messages WHERE job_id = $1)",
        )
        .bind(&job_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        notify_work(&mut tx).await?;
        let progress = recovery(&mut tx, &job_id).await?.ok_or_else(|| {
            StoreError::unreadable("recovery job", job_id.as_str(), "it vanished")
        })?;
        tx.commit().await?;
        Ok(progress)
    }

    async fn recovery_progress(
        &self,
        job_id: &str,
    ) -> Result<Option<RecoveryProgress>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        recovery(&mut conn, job_id).await
    }

    async fn outbox_stats(&self, now: DateTime<Utc>) -> Result<OutboxStats, StoreError> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM outbox WHERE state = 'pending'),
                    (SELECT MIN(created_at) FROM outbox WHERE state = 'pending'),
                    (SELECT COUNT(*) FROM outbox WHERE state = 'dead')",
        )
        .fetch_one(&self.pool)
        .await?;
        let (pending, dead): (i64, i64) = (row.try_get(0)?, row.try_get(2)?);
        Ok(OutboxStats::at(
            now,
            count(pending),
            count(dead),
            row.try_get(1)?,
        ))
    }

    async fn delivery_counts(&self) -> Result<Vec<DeliveryCount>, StoreError> {
        let rows = sqlx::query(
            "SELECT target_kind, vcs_id, state, COUNT(*) FROM outbox
             GROUP BY target_kind, vcs_id, state ORDER BY target_kind, vcs_id, state",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(dashboard::delivery_count).collect()
    }

    async fn endpoint_health(&self) -> Result<Vec<EndpointHealth>, StoreError> {
        // This replica's buffered changes first; other replicas' arrive within a second.
        self.health.flush(&self.pool).await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {HEALTH_COLUMNS} FROM endpoint_health ORDER BY vcs_id"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(dashboard::endpoint_health).collect()
    }
}
