//! The operator pages' figures in PostgreSQL: intake refusals per day, client and rule, and each
//! webhook's health as its delivery attempts leave it.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};

use super::engine::Tx;
use super::PostgresStore;
use crate::domain::ClientId;
use crate::store::dashboard::{refusal_count, HealthChange, RefusalCount};
use crate::store::traits::IntakeRefusals;
use crate::store::StoreError;

/// Keeps the health of the webhook `message_id` went to (nothing for other targets), inside the
/// attempt's transaction.
pub(super) async fn record_health(
    conn: &mut Tx,
    message_id: &str,
    at: DateTime<Utc>,
    change: &HealthChange,
) -> Result<(), StoreError> {
    let (succeeded, error) = change.columns();
    sqlx::query(
        "INSERT INTO endpoint_health (vcs_id, last_success_at, last_failure_at, last_error, failure_streak)
         SELECT vcs_id, CASE WHEN $2 THEN $3::timestamptz END,
                CASE WHEN $2 THEN NULL ELSE $3::timestamptz END, $4::text,
                CASE WHEN $2 THEN 0 ELSE 1 END
         FROM outbox WHERE id = $1 AND target_kind = 'vcs'
         ON CONFLICT (vcs_id) DO UPDATE SET
            last_success_at = COALESCE(excluded.last_success_at, endpoint_health.last_success_at),
            last_failure_at = COALESCE(excluded.last_failure_at, endpoint_health.last_failure_at),
            last_error = COALESCE(excluded.last_error, endpoint_health.last_error),
            failure_streak = CASE WHEN $2 THEN 0 ELSE endpoint_health.failure_streak + 1 END",
    )
    .bind(message_id)
    .bind(succeeded)
    .bind(at)
    .bind(error)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[async_trait]
impl IntakeRefusals for PostgresStore {
    async fn record_refusal(
        &self,
        day: NaiveDate,
        client: &ClientId,
        message_ids: &[String],
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO intake_refusals (day, client_id, message_id, refusals)
             SELECT $1, $2, m, 1 FROM (SELECT DISTINCT UNNEST($3::text[]) AS m) AS rules
             ON CONFLICT (day, client_id, message_id)
             DO UPDATE SET refusals = intake_refusals.refusals + 1",
        )
        .bind(day)
        .bind(client.as_str())
        .bind(message_ids)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn refusal_counts(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<RefusalCount>, StoreError> {
        let rows = sqlx::query(
            "SELECT day::text, client_id, message_id, refusals FROM intake_refusals
             WHERE day >= $1 AND day <= $2
             ORDER BY refusals DESC, day, client_id, message_id",
        )
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(refusal_count).collect()
    }
}
