//! Resource versions in PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::engine::Tx;
use super::PostgresStore;
use crate::domain::ClientId;
use crate::store::rows::{self, count, limit, RESOURCE_COLUMNS};
use crate::store::traits::Resources;
use crate::store::types::*;
use crate::store::StoreError;

pub(super) async fn current_resource(
    conn: &mut Tx,
    client: &str,
    resource_type: &str,
    id: &str,
) -> Result<Option<StoredResource>, StoreError> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {RESOURCE_COLUMNS} FROM resources
         WHERE resource_type = $1 AND id = $2 AND client_id = $3 AND is_current"
    )))
    .bind(resource_type)
    .bind(id)
    .bind(client)
    .fetch_optional(conn)
    .await?
    .map(|row| rows::stored_resource(&row))
    .transpose()
}

/// Inserts resource versions in one statement (one round trip however many resources a
/// referral brings); with `replaces_older`, their previous versions stop being current.
pub(super) async fn insert_resources(
    conn: &mut Tx,
    resources: &[NewResource],
    client: &str,
    referral_id: &str,
    at: DateTime<Utc>,
    replaces_older: bool,
) -> Result<(), StoreError> {
    if resources.is_empty() {
        return Ok(());
    }
    let types: Vec<&str> = resources.iter().map(|r| r.resource_type.as_str()).collect();
    let ids: Vec<&str> = resources.iter().map(|r| r.id.as_str()).collect();
    if replaces_older {
        sqlx::query(
            "UPDATE resources SET is_current = FALSE
             WHERE is_current AND (resource_type, id) IN (SELECT * FROM UNNEST($1::text[], $2::text[]))",
        )
        .bind(&types)
        .bind(&ids)
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query(
        "INSERT INTO resources (resource_type, id, version_id, client_id, referral_id,
                                last_updated, content, patient_id, code, is_current)
         SELECT t.resource_type, t.id, t.version_id, $4, $5, $6, t.content, t.patient_id, t.code, TRUE
         FROM UNNEST($1::text[], $2::text[], $3::bigint[], $7::text[], $8::text[], $9::text[])
              AS t (resource_type, id, version_id, content, patient_id, code)",
    )
    .bind(&types)
    .bind(&ids)
    .bind(resources.iter().map(|r| r.version_id).collect::<Vec<i64>>())
    .bind(client)
    .bind(referral_id)
    .bind(at)
    .bind(resources.iter().map(|r| r.content.as_str()).collect::<Vec<&str>>())
    .bind(resources.iter().map(|r| r.patient_id.as_deref()).collect::<Vec<Option<&str>>>())
    .bind(resources.iter().map(|r| r.code.as_deref()).collect::<Vec<Option<&str>>>())
    .execute(conn)
    .await?;
    Ok(())
}

#[async_trait]
impl Resources for PostgresStore {
    async fn versions(
        &self,
        client: &ClientId,
        resource_type: &str,
        id: &str,
        which: Versions,
    ) -> Result<Vec<StoredResource>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let version = match which {
            Versions::Current => {
                let current = current_resource(&mut conn, client.as_str(), resource_type, id);
                return Ok(current.await?.into_iter().collect());
            }
            Versions::One(version_id) => Some(version_id),
            Versions::All => None,
        };
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RESOURCE_COLUMNS} FROM resources
             WHERE resource_type = $1 AND id = $2 AND client_id = $3
               AND ($4::bigint IS NULL OR version_id = $4)
             ORDER BY version_id DESC"
        )))
        .bind(resource_type)
        .bind(id)
        .bind(client.as_str())
        .bind(version)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(rows::stored_resource)
        .collect()
    }

    async fn search_resources(
        &self,
        client: &ClientId,
        resource_type: &str,
        query: &ResourceQuery,
    ) -> Result<SearchPage, StoreError> {
        let (code_exact, code_any_system) = query.code_filters();
        const CONDITION: &str = "client_id = $1 AND resource_type = $2 AND is_current
             AND ($3::text IS NULL OR referral_id = $3) AND ($4::text IS NULL OR patient_id = $4)
             AND ($5::text IS NULL OR code = $5) AND ($6::text IS NULL OR code LIKE $6)
             AND ($7::text IS NULL OR referral_id IN (SELECT id FROM referrals WHERE based_on = $7))";
        let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM resources WHERE {CONDITION}"
        )))
        .bind(client.as_str())
        .bind(resource_type)
        .bind(&query.referral_id)
        .bind(&query.patient_id)
        .bind(&code_exact)
        .bind(&code_any_system)
        .bind(&query.based_on)
        .fetch_one(&self.pool)
        .await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RESOURCE_COLUMNS} FROM resources WHERE {CONDITION}
             ORDER BY last_updated, id LIMIT $8 OFFSET $9"
        )))
        .bind(client.as_str())
        .bind(resource_type)
        .bind(&query.referral_id)
        .bind(&query.patient_id)
        .bind(&code_exact)
        .bind(&code_any_system)
        .bind(&query.based_on)
        .bind(limit(query.count))
        .bind(limit(query.offset))
        .fetch_all(&self.pool)
        .await?;
        Ok(SearchPage {
            total: count(total),
            resources: rows
                .iter()
                .map(rows::stored_resource)
                .collect::<Result<_, _>>()?,
        })
    }
}
