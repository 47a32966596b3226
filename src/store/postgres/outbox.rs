//! The outbox in PostgreSQL, as the delivery workers of every replica use it.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use super::admin::set_endpoint;
use super::dashboard::record_health;
use super::engine::{listen_for_work, Tx};
use super::PostgresStore;
use crate::domain::VcsId;
use crate::store::rows::{self, limit, OUTBOX_COLUMNS};
use crate::store::traits::Outbox;
use crate::store::types::*;
use crate::store::{HealthChange, StoreError};

pub(super) async fn insert_outbox(
    conn: &mut Tx,
    message: &NewOutboxMessage,
    referral_id: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let (text, stored) = message.payload.columns();
    sqlx::query(
        "INSERT INTO outbox (id, referral_id, target_kind, vcs_id, event_type, sequence, payload,
                             payload_type, payload_id, payload_version, next_attempt_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)",
    )
    .bind(&message.id)
    .bind(referral_id)
    .bind(message.target_kind.as_str())
    .bind(&message.target)
    .bind(&message.event_type)
    .bind(message.sequence)
    .bind(text)
    .bind(stored.map(|s| s.0))
    .bind(stored.map(|s| s.1))
    .bind(stored.map(|s| s.2))
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Writes what `record` says an attempt leads to, inside `conn`'s transaction.
async fn write_attempt(
    conn: &mut Tx,
    message_id: &str,
    record: &AttemptRecord,
) -> Result<(), StoreError> {
    let attempt = &record.attempt;
    sqlx::query(
        "INSERT INTO delivery_attempts (message_id, attempted_at, status_code, latency_ms,
                                        error, response_prefix)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(message_id)
    .bind(attempt.at)
    .bind(attempt.status_code.map(i32::from))
    .bind(i64::try_from(attempt.latency_ms).unwrap_or(i64::MAX))
    .bind(&attempt.error)
    .bind(&attempt.response_prefix)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE outbox SET state = $2, next_attempt_at = $3, delivered_at = $4,
                lease_until = NULL, attempts = attempts + 1, last_error = $5
         WHERE id = $1",
    )
    .bind(message_id)
    .bind(record.state.as_str())
    .bind(record.next_attempt_at)
    .bind(record.delivered_at)
    .bind(&attempt.error)
    .execute(&mut *conn)
    .await?;
    let health = HealthChange::of(
        record.state == DeliveryState::Delivered,
        attempt.error.as_deref(),
        attempt.status_code,
    );
    record_health(conn, message_id, attempt.at, &health).await?;
    if let Some(entry) = &record.disclosure {
        sqlx::query(
            "INSERT INTO audit_log (recorded_at, actor, action, resource_type, resource_id,
                                    patient_id, outcome, correlation_id)
             SELECT $1, $2, $3, $4, $5, r.patient_id, 'success', $6 FROM referrals r WHERE r.id = $5",
        )
        .bind(attempt.at)
        .bind(entry.actor.to_string())
        .bind(&entry.action)
        .bind(&entry.resource_type)
        .bind(&entry.resource_id)
        .bind(message_id)
        .execute(&mut *conn)
        .await?;
    }
    match &record.switch_off {
        Some(SwitchOff::VcsEndpoint { vcs, reason }) => {
            set_endpoint(conn, vcs, false, Some(reason), attempt.at).await?;
        }
        Some(SwitchOff::Subscription { id }) => {
            sqlx::query("UPDATE subscriptions SET status = 'off' WHERE id = $1")
                .bind(id)
                .execute(&mut *conn)
                .await?;
        }
        None => {}
    }
    Ok(())
}

#[async_trait]
impl Outbox for PostgresStore {
    async fn claim_due_messages(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit_wanted: usize,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        // SKIP LOCKED: rows another replica is claiming right now are passed over, not waited
        // for; once its claim commits, their lease keeps them out of every other claim.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE outbox SET lease_until = $1 WHERE id IN (
                 SELECT o.id FROM outbox o
                 WHERE o.state = 'pending' AND o.next_attempt_at <= $2
                   AND (o.lease_until IS NULL OR o.lease_until < $2)
                   AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.referral_id = o.referral_id
                                   AND e.target_kind = o.target_kind AND e.vcs_id = o.vcs_id
                                   AND e.sequence < o.sequence AND e.state = 'pending')
                   AND NOT (o.target_kind = 'vcs'
                            AND o.vcs_id IN (SELECT vcs_id FROM vcs_endpoints WHERE disabled))
                 ORDER BY o.next_attempt_at LIMIT $3
                 FOR UPDATE SKIP LOCKED)
             RETURNING {OUTBOX_COLUMNS}"
        )))
        .bind(lease_until)
        .bind(now)
        .bind(limit(limit_wanted))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(rows::outbox_message)
        .collect()
    }

    async fn next_due_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT MIN(GREATEST(next_attempt_at, COALESCE(lease_until, next_attempt_at)))
             FROM outbox WHERE state = 'pending'
               AND vcs_id NOT IN (SELECT vcs_id FROM vcs_endpoints WHERE disabled)",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    async fn release_expired_leases(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let released = sqlx::query(
            "UPDATE outbox SET lease_until = NULL
             WHERE state = 'pending' AND lease_until IS NOT NULL AND lease_until < $1",
        )
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(usize::try_from(released).unwrap_or(usize::MAX))
    }

    fn watch_for_work(&self, wake: Arc<Notify>) {
        tokio::spawn(listen_for_work(self.pool.clone(), wake));
    }

    async fn record_attempt(
        &self,
        message_id: &str,
        record: AttemptRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        write_attempt(&mut tx, message_id, &record).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn signing_secrets(
        &self,
        vcs: &VcsId,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT secret FROM vcs_secrets
             WHERE vcs_id = $1 AND (expires_at IS NULL OR expires_at > $2)
             ORDER BY created_at DESC",
        )
        .bind(vcs.as_str())
        .bind(now)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn prune_delivered_payloads(
        &self,
        before: DateTime<Utc>,
        batch: usize,
    ) -> Result<usize, StoreError> {
        let pruned = sqlx::query(
            "UPDATE outbox SET payload = '' WHERE id IN (
                 SELECT id FROM outbox
                 WHERE state = 'delivered' AND delivered_at < $1 AND payload <> ''
                 LIMIT $2 FOR UPDATE SKIP LOCKED)",
        )
        .bind(before)
        .bind(limit(batch))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(usize::try_from(pruned).unwrap_or(usize::MAX))
    }
}
