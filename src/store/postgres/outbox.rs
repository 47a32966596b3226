//! The outbox in PostgreSQL, as the delivery workers of every replica use it.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use super::admin::set_endpoint;
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

/// Writes what `record` says an attempt leads to: the attempt, the message's new state and
/// the disclosure it made, in one statement (one round trip; the three commit together).
/// Answers the VCS id when the message went to a webhook (its health changes).
async fn write_attempt<'c, E>(
    conn: E,
    message_id: &str,
    record: &AttemptRecord,
) -> Result<Option<String>, StoreError>
where
    E: sqlx::PgExecutor<'c>,
{
    let attempt = &record.attempt;
    let disclosure = record.disclosure.as_ref();
    let webhook: Option<String> = sqlx::query_scalar(
        "WITH attempt AS (
             INSERT INTO delivery_attempts (message_id, attempted_at, status_code, latency_ms,
                                            error, response_prefix)
             VALUES ($1, $2, $3, $4, $5, $6)),
         message AS (
             UPDATE outbox SET state = $7, next_attempt_at = $8, delivered_at = $9,
                    lease_until = NULL, attempts = attempts + 1, last_error = $5
             WHERE id = $1
             RETURNING vcs_id, target_kind),
         disclosure AS (
             INSERT INTO audit_log (recorded_at, actor, action, resource_type, resource_id,
                                    patient_id, outcome, correlation_id)
             SELECT $2, $10, $11, $12, $13, r.patient_id, 'success', $1
             FROM referrals r WHERE $10::text IS NOT NULL AND r.id = $13)
         SELECT vcs_id FROM message WHERE target_kind = 'vcs'",
    )
    .bind(message_id)
    .bind(attempt.at)
    .bind(attempt.status_code.map(i32::from))
    .bind(i64::try_from(attempt.latency_ms).unwrap_or(i64::MAX))
    .bind(&attempt.error)
    .bind(&attempt.response_prefix)
    .bind(record.state.as_str())
    .bind(record.next_attempt_at)
    .bind(record.delivered_at)
    .bind(disclosure.map(|d| d.actor.to_string()))
    .bind(disclosure.map(|d| d.action.as_str()))
    .bind(disclosure.map(|d| d.resource_type.as_str()))
    .bind(disclosure.map(|d| d.resource_id.as_str()))
    .fetch_optional(conn)
    .await?;
    Ok(webhook)
}

/// Switches off what a `410 Gone` named, inside `conn`'s transaction.
async fn write_switch_off(
    conn: &mut Tx,
    record: &AttemptRecord,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    match &record.switch_off {
        Some(SwitchOff::VcsEndpoint { vcs, reason }) => {
            set_endpoint(conn, vcs, false, Some(reason), at).await?;
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
        // A message is due at the later of its next attempt and its lease. Read as the earliest
        // unleased message (in `outbox_due` order) and the earliest lease (`outbox_leased`), so
        // that a backlog of pending messages is not read whole each time the worker goes idle.
        Ok(sqlx::query_scalar(
            "SELECT LEAST(
                 (SELECT next_attempt_at FROM outbox
                  WHERE state = 'pending'
                    AND (lease_until IS NULL OR lease_until <= next_attempt_at)
                    AND vcs_id NOT IN (SELECT vcs_id FROM vcs_endpoints WHERE disabled)
                  ORDER BY next_attempt_at LIMIT 1),
                 (SELECT lease_until FROM outbox
                  WHERE state = 'pending' AND lease_until IS NOT NULL
                    AND lease_until > next_attempt_at
                    AND vcs_id NOT IN (SELECT vcs_id FROM vcs_endpoints WHERE disabled)
                  ORDER BY lease_until LIMIT 1))",
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
        // The attempt, the message's state, the disclosure and what a `410` switches off
        // commit together (one flush); the endpoint's health is buffered (`HealthBuffer`).
        let mut tx = self.pool.begin().await?;
        let webhook = write_attempt(&mut *tx, message_id, &record).await?;
        write_switch_off(&mut tx, &record, record.attempt.at).await?;
        tx.commit().await?;
        if let Some(vcs_id) = webhook {
            let health = HealthChange::of(
                record.state == DeliveryState::Delivered,
                record.attempt.error.as_deref(),
                record.attempt.status_code,
            );
            self.health
                .note(&self.pool, vcs_id, record.attempt.at, &health)
                .await;
        }
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
