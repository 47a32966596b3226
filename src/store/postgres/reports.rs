//! What the commissioners' reports read, in PostgreSQL: JSON fields of the stored record, Tasks
//! and Observations picked out in SQL, so no record leaves the database.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::PostgresStore;
use crate::store::reports::{
    fold_referrals, reported_score, status_row, ReportedReferral, ReportedScore,
};
use crate::store::traits::Reporting;
use crate::store::StoreError;
use crate::translate::decline_reason::DECLINE_REASON_SYSTEM;

/// The grouping keys of `referrals r` (see `reports::report_keys`).
const KEYS: &str = "r.id, r.created_at, r.vcs_id,
    r.record::jsonb -> 'referrer' ->> 'practice_ods',
    (SELECT n.value ->> 'category'
     FROM jsonb_array_elements(r.record::jsonb -> 'needs') WITH ORDINALITY AS n(value, i)
     WHERE n.value ->> 'category' IS NOT NULL ORDER BY n.i LIMIT 1)";

#[async_trait]
impl Reporting for PostgresStore {
    async fn reported_referrals(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<ReportedReferral>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {KEYS}, s.step, s.first, s.reason
             FROM referrals r
             LEFT JOIN LATERAL (
                 SELECT COALESCE(t.content::jsonb -> 'businessStatus' -> 'coding' -> 0 ->> 'code',
                                 t.content::jsonb ->> 'status') AS step,
                        MIN(t.last_updated) AS first,
                        MIN(CASE WHEN t.content::jsonb -> 'statusReason' -> 'coding' -> 0 ->> 'system'
                                      = '{DECLINE_REASON_SYSTEM}'
                            THEN t.content::jsonb -> 'statusReason' -> 'coding' -> 0 ->> 'code' END)
                            AS reason
                 FROM resources t
                 WHERE t.referral_id = r.id AND t.resource_type = 'Task'
                 GROUP BY 1
             ) s ON TRUE
             WHERE r.created_at >= $1 AND r.created_at < $2
             ORDER BY r.id"
        )))
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(status_row)
        .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(fold_referrals(rows))
    }

    async fn reported_scores(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<ReportedScore>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {KEYS}, o.code,
                 (SELECT c -> 'valueCodeableConcept' -> 'coding' -> 0 ->> 'code'
                  FROM jsonb_array_elements(o.content::jsonb -> 'component') c
                  WHERE c -> 'code' -> 'coding' -> 0 ->> 'code' = 'assessment-timepoint'
                  LIMIT 1),
                 o.content::jsonb ->> 'effectiveDateTime',
                 (o.content::jsonb ->> 'valueInteger')::bigint
             FROM referrals r
             JOIN resources o ON o.referral_id = r.id AND o.resource_type = 'Observation'
                 AND o.is_current
             WHERE r.created_at >= $1 AND r.created_at < $2
             ORDER BY r.id, o.id"
        )))
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(reported_score)
        .collect()
    }
}
