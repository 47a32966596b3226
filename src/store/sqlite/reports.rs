//! What the commissioners' reports read, in SQLite: JSON fields of the stored record, Tasks and
//! Observations picked out in SQL, so no record leaves the database.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::params;

use super::SqliteStore;
use crate::store::reports::{
    fold_referrals, reported_score, status_row, ReportedReferral, ReportedScore,
};
use crate::store::traits::Reporting;
use crate::store::{timestamp, StoreError};
use crate::translate::decline_reason::DECLINE_REASON_SYSTEM;

/// The grouping keys of `referrals r` (see `reports::report_keys`).
const KEYS: &str = "r.id, r.created_at, r.vcs_id,
    json_extract(r.record, '$.referrer.practice_ods'),
    (SELECT json_extract(n.value, '$.category') FROM json_each(r.record, '$.needs') n
     WHERE json_extract(n.value, '$.category') IS NOT NULL ORDER BY n.key LIMIT 1)";

#[async_trait]
impl Reporting for SqliteStore {
    async fn reported_referrals(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<ReportedReferral>, StoreError> {
        let (from, to) = (timestamp(from), timestamp(to));
        let rows = self
            .read(move |conn| {
                conn.prepare_cached(&format!(
                    "SELECT {KEYS},
                         COALESCE(json_extract(t.content, '$.businessStatus.coding[0].code'),
                                  json_extract(t.content, '$.status')) AS step,
                         MIN(t.last_updated),
                         MIN(CASE WHEN json_extract(t.content, '$.statusReason.coding[0].system')
                                       = '{DECLINE_REASON_SYSTEM}'
                             THEN json_extract(t.content, '$.statusReason.coding[0].code') END)
                     FROM referrals r
                     LEFT JOIN resources t ON t.referral_id = r.id AND t.resource_type = 'Task'
                     WHERE r.created_at >= ?1 AND r.created_at < ?2
                     GROUP BY r.id, step
                     ORDER BY r.id"
                ))?
                .query_and_then(params![from, to], |row| status_row(row))?
                .collect::<Result<Vec<_>, StoreError>>()
            })
            .await?;
        Ok(fold_referrals(rows))
    }

    async fn reported_scores(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<ReportedScore>, StoreError> {
        let (from, to) = (timestamp(from), timestamp(to));
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {KEYS}, o.code,
                     (SELECT json_extract(c.value, '$.valueCodeableConcept.coding[0].code')
                      FROM json_each(o.content, '$.component') c
                      WHERE json_extract(c.value, '$.code.coding[0].code') = 'assessment-timepoint'),
                     json_extract(o.content, '$.effectiveDateTime'),
                     json_extract(o.content, '$.valueInteger')
                 FROM referrals r
                 JOIN resources o ON o.referral_id = r.id AND o.resource_type = 'Observation'
                     AND o.is_current = 1
                 WHERE r.created_at >= ?1 AND r.created_at < ?2
                 ORDER BY r.id, o.id"
            ))?
            .query_and_then(params![from, to], |row| reported_score(row))?
            .collect()
        })
        .await
    }
}
