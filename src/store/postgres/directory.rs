//! The service directory in PostgreSQL.

use async_trait::async_trait;
use sqlx::{PgConnection, Row};

use super::PostgresStore;
use crate::domain::Identifier;
use crate::store::rows::{self, DIRECTORY_SERVICE_COLUMNS};
use crate::store::traits::Directory;
use crate::store::types::*;
use crate::store::StoreError;

const IDENTIFIERS: &str =
    "SELECT organization_id, system, value FROM directory_organization_identifiers";

fn identifier_row(row: &sqlx::postgres::PgRow) -> Result<(String, Identifier), StoreError> {
    Ok((
        row.try_get(0)?,
        Identifier::new(row.try_get::<String, _>(1)?, row.try_get::<String, _>(2)?),
    ))
}

impl PostgresStore {
    /// `(organization_id, identifier)` of one organisation, or of all.
    async fn identifiers(
        &self,
        organization_id: Option<&str>,
    ) -> Result<Vec<(String, Identifier)>, StoreError> {
        let rows = match organization_id {
            Some(org) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{IDENTIFIERS} WHERE organization_id = $1"
                )))
                .bind(org)
                .fetch_all(&self.pool)
                .await?
            }
            None => sqlx::query(IDENTIFIERS).fetch_all(&self.pool).await?,
        };
        rows.iter().map(identifier_row).collect()
    }
}

/// Writes one service with its organisation and locations; `true` when it is new.
async fn write_service(
    tx: &mut PgConnection,
    s: &NewDirectoryService,
    import: &DirectoryImport,
    import_id: &str,
) -> Result<bool, StoreError> {
    if let Some(org) = &s.organization {
        sqlx::query(
            "INSERT INTO directory_organizations (id, content, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET content = excluded.content, updated_at = excluded.updated_at",
        )
        .bind(&org.id)
        .bind(&org.content)
        .bind(import.at)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM directory_organization_identifiers WHERE organization_id = $1")
            .bind(&org.id)
            .execute(&mut *tx)
            .await?;
        for i in &org.identifiers {
            sqlx::query(
                "INSERT INTO directory_organization_identifiers (organization_id, system, value)
                 VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(&org.id)
            .bind(&i.system)
            .bind(&i.value)
            .execute(&mut *tx)
            .await?;
        }
    }
    for (id, content) in &s.locations {
        sqlx::query(
            "INSERT INTO directory_locations (id, content, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET content = excluded.content, updated_at = excluded.updated_at",
        )
        .bind(id)
        .bind(content)
        .bind(import.at)
        .execute(&mut *tx)
        .await?;
    }
    // `xmax = 0` only for a row this statement inserted (an update leaves the old version's).
    let inserted: bool = sqlx::query_scalar(
        "INSERT INTO directory_services
             (id, feed, name, state, organization_id, source, content, import_id, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (id) DO UPDATE SET feed = excluded.feed, name = excluded.name,
             state = excluded.state, organization_id = excluded.organization_id,
             source = excluded.source, content = excluded.content,
             import_id = excluded.import_id, updated_at = excluded.updated_at
         RETURNING (xmax = 0)",
    )
    .bind(&s.id)
    .bind(&import.feed)
    .bind(&s.name)
    .bind(s.state.as_str())
    .bind(s.organization.as_ref().map(|o| o.id.as_str()))
    .bind(&s.source)
    .bind(&s.content)
    .bind(import_id)
    .bind(import.at)
    .fetch_one(&mut *tx)
    .await?;
    Ok(inserted)
}

#[async_trait]
impl Directory for PostgresStore {
    async fn import_directory(
        &self,
        import: DirectoryImport,
    ) -> Result<DirectoryImportOutcome, StoreError> {
        let import_id = uuid::Uuid::now_v7().to_string();
        let mut tx = self.pool.begin().await?;
        let mut outcome = DirectoryImportOutcome::default();
        for s in &import.services {
            if write_service(&mut tx, s, &import, &import_id).await? {
                outcome.created += 1;
            } else {
                outcome.updated += 1;
            }
        }
        if import.full {
            let withdrawn = sqlx::query(
                "UPDATE directory_services SET state = 'withdrawn', updated_at = $3
                 WHERE feed = $1 AND import_id <> $2 AND state <> 'withdrawn'",
            )
            .bind(&import.feed)
            .bind(&import_id)
            .bind(import.at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            outcome.withdrawn = rows::count(i64::try_from(withdrawn).unwrap_or(i64::MAX));
        }
        tx.commit().await?;
        Ok(outcome)
    }

    async fn directory_services(&self) -> Result<Vec<DirectoryService>, StoreError> {
        let mut services = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {DIRECTORY_SERVICE_COLUMNS} FROM directory_services ORDER BY id"
        )))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(rows::directory_service)
        .collect::<Result<Vec<_>, StoreError>>()?;
        rows::attach_identifiers(&mut services, self.identifiers(None).await?);
        Ok(services)
    }

    async fn directory_service(&self, id: &str) -> Result<Option<DirectoryService>, StoreError> {
        let Some(service) = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {DIRECTORY_SERVICE_COLUMNS} FROM directory_services WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .map(|row| rows::directory_service(&row))
        .transpose()?
        else {
            return Ok(None);
        };
        let mut one = [service];
        if let Some(org) = one[0].organization_id.clone() {
            rows::attach_identifiers(&mut one, self.identifiers(Some(&org)).await?);
        }
        let [service] = one;
        Ok(Some(service))
    }

    async fn directory_resource(
        &self,
        resource_type: DirectoryResourceType,
        id: &str,
    ) -> Result<Option<String>, StoreError> {
        let table = match resource_type {
            DirectoryResourceType::Organization => "directory_organizations",
            DirectoryResourceType::Location => "directory_locations",
        };
        Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT content FROM {table} WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }
}
