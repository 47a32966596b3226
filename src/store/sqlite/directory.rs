//! The service directory in SQLite.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::SqliteStore;
use crate::domain::Identifier;
use crate::store::rows::{self, DIRECTORY_SERVICE_COLUMNS};
use crate::store::traits::Directory;
use crate::store::types::*;
use crate::store::{timestamp, StoreError};

const IDENTIFIERS: &str =
    "SELECT organization_id, system, value FROM directory_organization_identifiers";

fn identifiers(
    conn: &Connection,
    organization_id: Option<&str>,
) -> Result<Vec<(String, Identifier)>, StoreError> {
    let read = |row: &rusqlite::Row<'_>| -> Result<(String, Identifier), StoreError> {
        Ok((
            row.get(0)?,
            Identifier::new(row.get::<_, String>(1)?, row.get::<_, String>(2)?),
        ))
    };
    match organization_id {
        Some(org) => conn
            .prepare_cached(&format!("{IDENTIFIERS} WHERE organization_id = ?1"))?
            .query_and_then(params![org], read)?
            .collect(),
        None => conn
            .prepare_cached(IDENTIFIERS)?
            .query_and_then([], read)?
            .collect(),
    }
}

fn write_service(
    conn: &Connection,
    s: &NewDirectoryService,
    feed: &str,
    import_id: &str,
    at: &str,
) -> Result<bool, StoreError> {
    if let Some(org) = &s.organization {
        conn.prepare_cached(
            "INSERT INTO directory_organizations (id, content, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (id) DO UPDATE SET content = excluded.content, updated_at = excluded.updated_at",
        )?
        .execute(params![org.id, org.content, at])?;
        conn.prepare_cached(
            "DELETE FROM directory_organization_identifiers WHERE organization_id = ?1",
        )?
        .execute(params![org.id])?;
        for i in &org.identifiers {
            conn.prepare_cached(
                "INSERT INTO directory_organization_identifiers (organization_id, system, value)
                 VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
            )?
            .execute(params![org.id, i.system, i.value])?;
        }
    }
    for (id, content) in &s.locations {
        conn.prepare_cached(
            "INSERT INTO directory_locations (id, content, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (id) DO UPDATE SET content = excluded.content, updated_at = excluded.updated_at",
        )?
        .execute(params![id, content, at])?;
    }
    let existed = conn
        .prepare_cached("SELECT 1 FROM directory_services WHERE id = ?1")?
        .query_row(params![s.id], |_| Ok(()))
        .optional()?
        .is_some();
    conn.prepare_cached(
        "INSERT INTO directory_services
             (id, feed, name, state, organization_id, source, content, import_id, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (id) DO UPDATE SET feed = excluded.feed, name = excluded.name,
             state = excluded.state, organization_id = excluded.organization_id,
             source = excluded.source, content = excluded.content,
             import_id = excluded.import_id, updated_at = excluded.updated_at",
    )?
    .execute(params![
        s.id,
        feed,
        s.name,
        s.state.as_str(),
        s.organization.as_ref().map(|o| o.id.as_str()),
        s.source,
        s.content,
        import_id,
        at
    ])?;
    Ok(!existed)
}

#[async_trait]
impl Directory for SqliteStore {
    async fn import_directory(
        &self,
        import: DirectoryImport,
    ) -> Result<DirectoryImportOutcome, StoreError> {
        let at = timestamp(import.at);
        let import_id = uuid::Uuid::now_v7().to_string();
        self.write(move |conn| {
            let mut outcome = DirectoryImportOutcome::default();
            for s in &import.services {
                if write_service(conn, s, &import.feed, &import_id, &at)? {
                    outcome.created += 1;
                } else {
                    outcome.updated += 1;
                }
            }
            if import.full {
                outcome.withdrawn = conn
                    .prepare_cached(
                        "UPDATE directory_services SET state = 'withdrawn', updated_at = ?3
                         WHERE feed = ?1 AND import_id <> ?2 AND state <> 'withdrawn'",
                    )?
                    .execute(params![import.feed, import_id, at])?;
            }
            Ok(outcome)
        })
        .await
    }

    async fn directory_services(&self) -> Result<Vec<DirectoryService>, StoreError> {
        self.read(move |conn| {
            let mut services = conn
                .prepare_cached(&format!(
                    "SELECT {DIRECTORY_SERVICE_COLUMNS} FROM directory_services ORDER BY id"
                ))?
                .query_and_then([], |row| rows::directory_service(row))?
                .collect::<Result<Vec<_>, StoreError>>()?;
            rows::attach_identifiers(&mut services, identifiers(conn, None)?);
            Ok(services)
        })
        .await
    }

    async fn directory_service(&self, id: &str) -> Result<Option<DirectoryService>, StoreError> {
        let id = id.to_string();
        self.read(move |conn| {
            let Some(service) = conn
                .prepare_cached(&format!(
                    "SELECT {DIRECTORY_SERVICE_COLUMNS} FROM directory_services WHERE id = ?1"
                ))?
                .query_and_then(params![id], |row| rows::directory_service(row))?
                .next()
                .transpose()?
            else {
                return Ok(None);
            };
            let mut one = [service];
            let org = one[0].organization_id.clone();
            if org.is_some() {
                rows::attach_identifiers(&mut one, identifiers(conn, org.as_deref())?);
            }
            let [service] = one;
            Ok(Some(service))
        })
        .await
    }

    async fn directory_resource(
        &self,
        resource_type: DirectoryResourceType,
        id: &str,
    ) -> Result<Option<String>, StoreError> {
        let id = id.to_string();
        let table = match resource_type {
            DirectoryResourceType::Organization => "directory_organizations",
            DirectoryResourceType::Location => "directory_locations",
        };
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(&format!("SELECT content FROM {table} WHERE id = ?1"))?
                .query_row(params![id], |row| row.get(0))
                .optional()?)
        })
        .await
    }
}
