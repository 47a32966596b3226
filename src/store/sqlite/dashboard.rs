//! The operator pages' figures in SQLite: intake refusals per day, client and rule, and each
//! webhook's health as its delivery attempts leave it.

use async_trait::async_trait;
use chrono::NaiveDate;
use rusqlite::{params, Connection};

use super::SqliteStore;
use crate::domain::ClientId;
use crate::store::dashboard::{refusal_count, HealthChange, RefusalCount, REFUSAL_COLUMNS};
use crate::store::traits::IntakeRefusals;
use crate::store::StoreError;

fn day_text(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

/// Keeps the health of the webhook `message_id` went to (nothing for other targets), inside the
/// attempt's transaction.
pub(super) fn record_health(
    conn: &Connection,
    message_id: &str,
    at: &str,
    change: &HealthChange,
) -> Result<(), StoreError> {
    let (succeeded, error) = change.columns();
    conn.prepare_cached(
        "INSERT INTO endpoint_health (vcs_id, last_success_at, last_failure_at, last_error, failure_streak)
         SELECT vcs_id, CASE WHEN ?2 THEN ?3 END, CASE WHEN ?2 THEN NULL ELSE ?3 END, ?4,
                CASE WHEN ?2 THEN 0 ELSE 1 END
         FROM outbox WHERE id = ?1 AND target_kind = 'vcs'
         ON CONFLICT (vcs_id) DO UPDATE SET
            last_success_at = COALESCE(excluded.last_success_at, endpoint_health.last_success_at),
            last_failure_at = COALESCE(excluded.last_failure_at, endpoint_health.last_failure_at),
            last_error = COALESCE(excluded.last_error, endpoint_health.last_error),
            failure_streak = CASE WHEN ?2 THEN 0 ELSE endpoint_health.failure_streak + 1 END",
    )?
    .execute(params![message_id, succeeded, at, error])?;
    Ok(())
}

#[async_trait]
impl IntakeRefusals for SqliteStore {
    async fn record_refusal(
        &self,
        day: NaiveDate,
        client: &ClientId,
        message_ids: &[String],
    ) -> Result<(), StoreError> {
        let (day, client) = (day_text(day), client.to_string());
        // Each rule once, however often the refusal names it.
        let message_ids: std::collections::BTreeSet<String> = message_ids.iter().cloned().collect();
        self.write(move |conn| {
            let mut upsert = conn.prepare_cached(
                "INSERT INTO intake_refusals (day, client_id, message_id, refusals) VALUES (?1, ?2, ?3, 1)
                 ON CONFLICT (day, client_id, message_id) DO UPDATE SET refusals = refusals + 1",
            )?;
            for message_id in &message_ids {
                upsert.execute(params![day, client, message_id])?;
            }
            Ok(())
        })
        .await
    }

    async fn refusal_counts(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<RefusalCount>, StoreError> {
        let (from, to) = (day_text(from), day_text(to));
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {REFUSAL_COLUMNS} FROM intake_refusals WHERE day >= ?1 AND day <= ?2
                 ORDER BY refusals DESC, day, client_id, message_id"
            ))?
            .query_and_then(params![from, to], |row| refusal_count(row))?
            .collect()
        })
        .await
    }
}
