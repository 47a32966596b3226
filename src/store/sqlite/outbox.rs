//! The outbox in SQLite, as the delivery worker uses it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection};

use super::admin::set_endpoint;
use super::dashboard::record_health;
use super::SqliteStore;
use crate::domain::VcsId;
use crate::store::rows::{self, limit, OUTBOX_COLUMNS};
use crate::store::traits::Outbox;
use crate::store::types::*;
use crate::store::{parse_timestamp, timestamp, HealthChange, StoreError};

pub(super) fn insert_outbox(
    conn: &Connection,
    message: &NewOutboxMessage,
    referral_id: &str,
    at: &str,
) -> Result<(), StoreError> {
    let (text, stored) = message.payload.columns();
    conn.prepare_cached(
        "INSERT INTO outbox (id, referral_id, target_kind, vcs_id, event_type, sequence, payload,
             payload_type, payload_id, payload_version, next_attempt_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)",
    )?
    .execute(params![
        message.id,
        referral_id,
        message.target_kind.as_str(),
        message.target,
        message.event_type,
        message.sequence,
        text,
        stored.map(|s| s.0),
        stored.map(|s| s.1),
        stored.map(|s| s.2),
        at
    ])?;
    Ok(())
}

/// Writes what `record` says an attempt leads to, in the writer's transaction.
fn write_attempt(
    conn: &Connection,
    message_id: &str,
    record: &AttemptRecord,
) -> Result<(), StoreError> {
    let attempt = &record.attempt;
    let at = timestamp(attempt.at);
    conn.prepare_cached(
        "INSERT INTO delivery_attempts (message_id, attempted_at, status_code, latency_ms, error, response_prefix)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        message_id,
        at,
        attempt.status_code,
        i64::try_from(attempt.latency_ms).unwrap_or(i64::MAX),
        attempt.error,
        attempt.response_prefix
    ])?;
    conn.prepare_cached(
        "UPDATE outbox SET state = ?2, next_attempt_at = ?3, delivered_at = ?4, lease_until = NULL,
                attempts = attempts + 1, last_error = ?5
         WHERE id = ?1",
    )?
    .execute(params![
        message_id,
        record.state.as_str(),
        timestamp(record.next_attempt_at),
        record.delivered_at.map(timestamp),
        attempt.error
    ])?;
    let health = HealthChange::of(
        record.state == DeliveryState::Delivered,
        attempt.error.as_deref(),
        attempt.status_code,
    );
    record_health(conn, message_id, &at, &health)?;
    if let Some(entry) = &record.disclosure {
        conn.prepare_cached(
            "INSERT INTO audit_log (recorded_at, actor, action, resource_type, resource_id, patient_id, outcome, correlation_id)
             SELECT ?1, ?2, ?3, ?4, ?5, r.patient_id, 'success', ?6 FROM referrals r WHERE r.id = ?5",
        )?
        .execute(params![
            at,
            entry.actor.to_string(),
            entry.action,
            entry.resource_type,
            entry.resource_id,
            message_id
        ])?;
    }
    match &record.switch_off {
        Some(SwitchOff::VcsEndpoint { vcs, reason }) => {
            set_endpoint(conn, vcs, false, Some(reason), &at)?;
        }
        Some(SwitchOff::Subscription { id }) => {
            conn.prepare_cached("UPDATE subscriptions SET status = 'off' WHERE id = ?1")?
                .execute(params![id])?;
        }
        None => {}
    }
    Ok(())
}

#[async_trait]
impl Outbox for SqliteStore {
    async fn claim_due_messages(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit_wanted: usize,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        let (now, lease) = (timestamp(now), timestamp(lease_until));
        let wanted = limit(limit_wanted);
        self.write(move |conn| {
            conn.prepare_cached(&format!(
                "UPDATE outbox SET lease_until = ?1 WHERE id IN (
                     SELECT o.id FROM outbox o
                     WHERE o.state = 'pending' AND o.next_attempt_at <= ?2
                       AND (o.lease_until IS NULL OR o.lease_until < ?2)
                       AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.referral_id = o.referral_id
                                       AND e.target_kind = o.target_kind AND e.vcs_id = o.vcs_id
                                       AND e.sequence < o.sequence AND e.state = 'pending')
                       AND NOT (o.target_kind = 'vcs'
                                AND o.vcs_id IN (SELECT vcs_id FROM vcs_endpoints WHERE disabled = 1))
                     ORDER BY o.next_attempt_at LIMIT ?3)
                 RETURNING {OUTBOX_COLUMNS}"
            ))?
            .query_and_then(params![lease, now, wanted], |row| rows::outbox_message(row))?
            .collect()
        })
        .await
    }

    async fn next_due_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.read(|conn| {
            let next: Option<String> = conn.query_row(
                "SELECT MIN(CASE WHEN lease_until IS NOT NULL AND lease_until > next_attempt_at
                                 THEN lease_until ELSE next_attempt_at END)
                 FROM outbox WHERE state = 'pending'
                   AND vcs_id NOT IN (SELECT vcs_id FROM vcs_endpoints WHERE disabled = 1)",
                [],
                |row| row.get(0),
            )?;
            next.as_deref().map(parse_timestamp).transpose()
        })
        .await
    }

    async fn release_expired_leases(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let now = timestamp(now);
        self.write(move |conn| {
            Ok(conn
                .prepare_cached(
                    "UPDATE outbox SET lease_until = NULL
                     WHERE state = 'pending' AND lease_until IS NOT NULL AND lease_until < ?1",
                )?
                .execute(params![now])?)
        })
        .await
    }

    async fn record_attempt(
        &self,
        message_id: &str,
        record: AttemptRecord,
    ) -> Result<(), StoreError> {
        let message_id = message_id.to_string();
        self.write(move |conn| write_attempt(conn, &message_id, &record))
            .await
    }

    async fn signing_secrets(
        &self,
        vcs: &VcsId,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let (vcs, now) = (vcs.to_string(), timestamp(now));
        self.read(move |conn| {
            let mut query = conn.prepare_cached(
                "SELECT secret FROM vcs_secrets WHERE vcs_id = ?1 AND (expires_at IS NULL OR expires_at > ?2)
                 ORDER BY created_at DESC",
            )?;
            let secrets = query.query_map(params![vcs, now], |row| row.get(0))?;
            Ok(secrets.collect::<Result<Vec<String>, _>>()?)
        })
        .await
    }

    async fn prune_delivered_payloads(
        &self,
        before: DateTime<Utc>,
        batch: usize,
    ) -> Result<usize, StoreError> {
        let (before, batch) = (timestamp(before), limit(batch));
        self.write(move |conn| {
            Ok(conn
                .prepare_cached(
                    "UPDATE outbox SET payload = '' WHERE id IN (
                         SELECT id FROM outbox WHERE state = 'delivered' AND delivered_at < ?1 AND payload <> ''
                         LIMIT ?2)",
                )?
                .execute(params![before, batch])?)
        })
        .await
    }
}
