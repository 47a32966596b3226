//! The operator pages' figures in PostgreSQL: intake refusals per day, client and rule, and each
//! webhook's health as its delivery attempts leave it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgPool;

use super::PostgresStore;
use crate::domain::ClientId;
use crate::store::dashboard::{refusal_count, HealthChange, RefusalCount};
use crate::store::traits::IntakeRefusals;
use crate::store::StoreError;

/// How often the buffered health of the webhooks is written, at most.
const HEALTH_FLUSH_EVERY: Duration = Duration::from_secs(1);

/// The webhooks' health as attempts change it, kept in memory and written at most once a second
/// (and before every read).
///
/// Why not in the attempt's transaction: every attempt to one organisation would update the
/// same `endpoint_health` row, and a row lock is held until commit, so the attempts to an
/// organisation committed one disk flush at a time (the soak measured delivery at about 140
/// messages/s under load, with attempts waiting on that lock). A SIGKILL loses at most the last
/// second of health changes: the page's figures lag until the next attempt, the attempts
/// themselves are committed.
#[derive(Default)]
pub(super) struct HealthBuffer {
    state: Mutex<Buffered>,
}

struct Buffered {
    pending: HashMap<String, Pending>,
    last_flush: Instant,
}

impl Default for Buffered {
    fn default() -> Self {
        Buffered {
            pending: HashMap::new(),
            last_flush: Instant::now(),
        }
    }
}

/// One webhook's health changes since the last write.
#[derive(Debug, Clone, Default, PartialEq)]
struct Pending {
    last_success: Option<DateTime<Utc>>,
    last_failure: Option<(DateTime<Utc>, String)>,
    /// Failures since the last success noted here (all of them when none succeeded).
    failures: i64,
    /// Whether a success was noted: the stored streak restarts from `failures`.
    succeeded: bool,
}

impl Pending {
    fn note(&mut self, at: DateTime<Utc>, change: &HealthChange) {
        match change {
            HealthChange::Success => {
                self.last_success = self.last_success.max(Some(at));
                self.succeeded = true;
                self.failures = 0;
            }
            HealthChange::Failure(error) => {
                if self.last_failure.as_ref().is_none_or(|(t, _)| *t <= at) {
                    self.last_failure = Some((at, error.clone()));
                }
                self.failures += 1;
            }
        }
    }

    /// `self` then `later`, as one change.
    fn then(mut self, later: Pending) -> Pending {
        self.last_success = self.last_success.max(later.last_success);
        if let Some((at, error)) = later.last_failure {
            if self.last_failure.as_ref().is_none_or(|(t, _)| *t <= at) {
                self.last_failure = Some((at, error));
            }
        }
        if later.succeeded {
            self.succeeded = true;
            self.failures = later.failures;
        } else {
            self.failures += later.failures;
        }
        self
    }
}

impl HealthBuffer {
    /// Notes what an attempt to `vcs_id`'s webhook did; writes the buffer when a second has
    /// passed since the last write.
    pub(super) async fn note(
        &self,
        pool: &PgPool,
        vcs_id: String,
        at: DateTime<Utc>,
        change: &HealthChange,
    ) {
        let due = {
            let mut state = self.lock();
            state.pending.entry(vcs_id).or_default().note(at, change);
            state.last_flush.elapsed() >= HEALTH_FLUSH_EVERY
        };
        if due {
            if let Err(e) = self.flush(pool).await {
                // Kept for the next write; the attempt itself is committed.
                tracing::warn!(error = %e, "could not write the webhooks' health; will retry");
            }
        }
    }

    /// Writes every buffered change (before a read of the health, and once a second).
    pub(super) async fn flush(&self, pool: &PgPool) -> Result<(), StoreError> {
        let taken = {
            let mut state = self.lock();
            state.last_flush = Instant::now();
            std::mem::take(&mut state.pending)
        };
        if taken.is_empty() {
            return Ok(());
        }
        let written = write_health(pool, &taken).await;
        if written.is_err() {
            // Put back in front of what arrived meanwhile, so nothing is counted twice or lost.
            let mut state = self.lock();
            for (vcs_id, earlier) in taken {
                let later = state.pending.remove(&vcs_id).unwrap_or_default();
                state.pending.insert(vcs_id, earlier.then(later));
            }
        }
        written
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Buffered> {
        // A panic while holding this lock leaves counts only: carry on with them.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

async fn write_health(pool: &PgPool, pending: &HashMap<String, Pending>) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    // In one order, so two replicas writing at once cannot deadlock.
    let mut ids: Vec<&String> = pending.keys().collect();
    ids.sort();
    for vcs_id in ids {
        let p = &pending[vcs_id];
        sqlx::query(
            "INSERT INTO endpoint_health (vcs_id, last_success_at, last_failure_at, last_error, failure_streak)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (vcs_id) DO UPDATE SET
                last_success_at = GREATEST(endpoint_health.last_success_at, excluded.last_success_at),
                last_failure_at = GREATEST(endpoint_health.last_failure_at, excluded.last_failure_at),
                last_error = CASE
                    WHEN excluded.last_failure_at IS NOT NULL
                     AND (endpoint_health.last_failure_at IS NULL
                          OR excluded.last_failure_at >= endpoint_health.last_failure_at)
                    THEN excluded.last_error ELSE endpoint_health.last_error END,
                failure_streak = CASE WHEN $6 THEN excluded.failure_streak
                                      ELSE endpoint_health.failure_streak + excluded.failure_streak END",
        )
        .bind(vcs_id)
        .bind(p.last_success)
        .bind(p.last_failure.as_ref().map(|(at, _)| *at))
        .bind(p.last_failure.as_ref().map(|(_, e)| e.as_str()))
        .bind(p.failures)
        .bind(p.succeeded)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
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

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 4, 18, 0, second).unwrap()
    }

    fn fail(what: &str) -> HealthChange {
        HealthChange::Failure(what.into())
    }

    /// Noting changes one by one, and joining two buffers noted in turn, say the same.
    #[test]
    fn buffered_changes_add_up_as_the_attempts_did() {
        let steps = [
            (1, fail("HTTP 503")),
            (2, fail("HTTP 502")),
            (3, HealthChange::Success),
            (4, fail("timed out")),
            (5, fail("HTTP 500")),
        ];
        let mut all = Pending::default();
        for (second, change) in &steps {
            all.note(at(*second), change);
        }
        assert_eq!(all.last_success, Some(at(3)));
        assert_eq!(all.last_failure, Some((at(5), "HTTP 500".into())));
        assert_eq!(all.failures, 2, "failures since the last success");
        assert!(all.succeeded);
        for split in 0..=steps.len() {
            let (mut first, mut second) = (Pending::default(), Pending::default());
            for (second_at, change) in &steps[..split] {
                first.note(at(*second_at), change);
            }
            for (second_at, change) in &steps[split..] {
                second.note(at(*second_at), change);
            }
            assert_eq!(first.then(second), all, "split at {split}");
        }
    }

    #[test]
    fn failures_alone_add_to_the_stored_streak() {
        let mut p = Pending::default();
        p.note(at(1), &fail("HTTP 503"));
        p.note(at(2), &fail("HTTP 503"));
        assert!(!p.succeeded, "the stored streak is added to, not replaced");
        assert_eq!(p.failures, 2);
        // An attempt that finished earlier but was noted later does not replace the last error.
        p.note(at(0), &fail("older"));
        assert_eq!(p.last_failure, Some((at(2), "HTTP 503".into())));
        assert_eq!(p.failures, 3);
    }
}
