//! The audit trail in PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::engine::Tx;
use super::PostgresStore;
use crate::store::rows::{self, count, limit, AUDIT_COLUMNS};
use crate::store::traits::Audit;
use crate::store::types::*;
use crate::store::StoreError;

/// Records a successful action on one of a patient's resources.
pub(super) async fn insert_audit(
    conn: &mut Tx,
    row: &AuditRow<'_>,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let entry = row.entry;
    sqlx::query(
        "INSERT INTO audit_log (recorded_at, actor, action, resource_type, resource_id, patient_id,
                                outcome, correlation_id)
         VALUES ($1, $2, $3, $4, $5, $6, 'success', $7)",
    )
    .bind(at)
    .bind(entry.actor.to_string())
    .bind(&entry.action)
    .bind(&entry.resource_type)
    .bind(&entry.resource_id)
    .bind(row.patient_id)
    .bind(row.correlation_id)
    .execute(conn)
    .await?;
    Ok(())
}

#[async_trait]
impl Audit for PostgresStore {
    async fn record_accesses(&self, accesses: Vec<Access>) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for access in &accesses {
            sqlx::query(
                "INSERT INTO audit_log (recorded_at, actor, action, resource_type, resource_id,
                                        patient_id, outcome, correlation_id)
                 VALUES ($1, $2, $3, $4, $5,
                         COALESCE($6, (SELECT patient_id FROM resources
                                       WHERE resource_type = $4 AND id = $5 LIMIT 1)),
                         $7, $8)",
            )
            .bind(access.at)
            .bind(access.actor.to_string())
            .bind(&access.action)
            .bind(&access.resource_type)
            .bind(&access.resource_id)
            .bind(&access.patient_id)
            .bind(&access.outcome)
            .bind(&access.correlation_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn audit_events(
        &self,
        query: &AuditQuery,
    ) -> Result<(usize, Vec<AuditRecord>), StoreError> {
        let (entity_type, entity_id) = query.entity.clone().unzip();
        const CONDITION: &str = "($1::text IS NULL OR patient_id = $1)
             AND ($2::timestamptz IS NULL OR recorded_at >= $2)
             AND ($3::timestamptz IS NULL OR recorded_at < $3)
             AND ($4::text IS NULL OR (resource_type = $4 AND resource_id = $5))
             AND ($6::text IS NULL OR actor = $6) AND ($7::text IS NULL OR action = $7)";
        let order = if query.newest_first { "id DESC" } else { "id" };
        let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM audit_log WHERE {CONDITION}"
        )))
        .bind(&query.patient_id)
        .bind(query.from)
        .bind(query.to)
        .bind(&entity_type)
        .bind(&entity_id)
        .bind(&query.actor)
        .bind(&query.action)
        .fetch_one(&self.pool)
        .await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE {CONDITION} ORDER BY {order} LIMIT $8 OFFSET $9"
        )))
        .bind(&query.patient_id)
        .bind(query.from)
        .bind(query.to)
        .bind(&entity_type)
        .bind(&entity_id)
        .bind(&query.actor)
        .bind(&query.action)
        .bind(limit(query.count))
        .bind(limit(query.offset))
        .fetch_all(&self.pool)
        .await?;
        let records = rows
            .iter()
            .map(rows::audit_record)
            .collect::<Result<_, _>>()?;
        Ok((count(total), records))
    }
}
