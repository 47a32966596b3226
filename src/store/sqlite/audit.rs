//! The audit trail in SQLite.

use async_trait::async_trait;
use rusqlite::{params, Connection};

use super::SqliteStore;
use crate::store::rows::{self, count, limit, AUDIT_COLUMNS};
use crate::store::traits::Audit;
use crate::store::types::*;
use crate::store::{timestamp, StoreError};

/// Records a successful action on one of a patient's resources.
pub(super) fn insert_audit(conn: &Connection, row: &AuditRow, at: &str) -> Result<(), StoreError> {
    let entry = row.entry;
    conn.prepare_cached(
        "INSERT INTO audit_log (recorded_at, actor, action, resource_type, resource_id, patient_id, outcome, correlation_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'success', ?7)",
    )?
    .execute(params![at, entry.actor.to_string(), entry.action, entry.resource_type, entry.resource_id, row.patient_id, row.correlation_id])?;
    Ok(())
}

#[async_trait]
impl Audit for SqliteStore {
    async fn record_accesses(&self, accesses: Vec<Access>) -> Result<(), StoreError> {
        self.write(move |conn| {
            let mut insert = conn.prepare_cached(
                "INSERT INTO audit_log (recorded_at, actor, action, resource_type, resource_id, patient_id, outcome, correlation_id)
                 VALUES (?1, ?2, ?3, ?4, ?5,
                         COALESCE(?6, (SELECT patient_id FROM resources WHERE resource_type = ?4 AND id = ?5 LIMIT 1)),
                         ?7, ?8)",
            )?;
            for access in &accesses {
                insert.execute(params![
                    timestamp(access.at),
                    access.actor.to_string(),
                    access.action,
                    access.resource_type,
                    access.resource_id,
                    access.patient_id,
                    access.outcome,
                    access.correlation_id
                ])?;
            }
            Ok(())
        })
        .await
    }

    async fn audit_events(
        &self,
        query: &AuditQuery,
    ) -> Result<(usize, Vec<AuditRecord>), StoreError> {
        let query = query.clone();
        self.read(move |conn| {
            let (from, to) = (query.from.map(timestamp), query.to.map(timestamp));
            let (entity_type, entity_id) = query.entity.clone().unzip();
            let condition = "(?1 IS NULL OR patient_id = ?1) AND (?2 IS NULL OR recorded_at >= ?2) AND (?3 IS NULL OR recorded_at < ?3)
                 AND (?4 IS NULL OR (resource_type = ?4 AND resource_id = ?5))
                 AND (?8 IS NULL OR actor = ?8) AND (?9 IS NULL OR action = ?9)";
            let order = if query.newest_first { "id DESC" } else { "id" };
            let total: i64 = conn.query_row(
                &format!("SELECT COUNT(*) FROM audit_log WHERE {condition}"),
                params![query.patient_id, from, to, entity_type, entity_id, None::<i64>, None::<i64>, query.actor, query.action],
                |row| row.get(0),
            )?;
            let records = conn
                .prepare_cached(&format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE {condition} ORDER BY {order} LIMIT ?6 OFFSET ?7"
                ))?
                .query_and_then(
                    params![query.patient_id, from, to, entity_type, entity_id, limit(query.count), limit(query.offset), query.actor, query.action],
                    |row| rows::audit_record(row),
                )?
                .collect::<Result<Vec<_>, _>>()?;
            Ok((count(total), records))
        })
        .await
    }
}
