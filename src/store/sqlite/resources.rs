//! Resource versions in SQLite.

use async_trait::async_trait;
use rusqlite::{params, Connection};

use super::SqliteStore;
use crate::domain::ClientId;
use crate::store::rows::{self, count, limit, RESOURCE_COLUMNS};
use crate::store::traits::Resources;
use crate::store::types::*;
use crate::store::StoreError;

/// The first row `sql` finds, as a resource version.
fn one_resource(
    conn: &Connection,
    sql: &str,
    values: impl rusqlite::Params,
) -> Result<Option<StoredResource>, StoreError> {
    conn.prepare_cached(sql)?
        .query_and_then(values, |row| rows::stored_resource(row))?
        .next()
        .transpose()
}

pub(super) fn current_resource(
    conn: &Connection,
    client: &str,
    resource_type: &str,
    id: &str,
) -> Result<Option<StoredResource>, StoreError> {
    one_resource(
        conn,
        &format!(
            "SELECT {RESOURCE_COLUMNS} FROM resources
             WHERE resource_type = ?1 AND id = ?2 AND client_id = ?3
             ORDER BY version_id DESC LIMIT 1"
        ),
        params![resource_type, id, client],
    )
}

/// Adds a version of a resource, making it the current one.
pub(super) fn insert_resource(
    conn: &Connection,
    resource: &NewResource,
    client: &str,
    referral_id: &str,
    at: &str,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE resources SET is_current = 0 WHERE resource_type = ?1 AND id = ?2 AND is_current = 1",
    )?
    .execute(params![resource.resource_type, resource.id.as_str()])?;
    insert_first_version(conn, resource, client, referral_id, at)
}

/// Adds a resource that has no earlier version (a new referral's resources all have fresh ids),
/// so there is no current version to retire first.
pub(super) fn insert_first_version(
    conn: &Connection,
    resource: &NewResource,
    client: &str,
    referral_id: &str,
    at: &str,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO resources (resource_type, id, version_id, client_id, referral_id, last_updated, content,
                                patient_id, code, is_current)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 1)",
    )?
    .execute(params![
        resource.resource_type,
        resource.id.as_str(),
        resource.version_id,
        client,
        referral_id,
        at,
        resource.content,
        resource.patient_id,
        resource.code
    ])?;
    Ok(())
}

/// The FROM and WHERE clauses of a resource search; parameters ?1 client, ?2 type, ?3 referral,
/// ?4 patient, ?5 code as `system|value`, ?6 code as a LIKE pattern, ?7 the referral the
/// resources' referrals are based on.
fn resource_search_clauses(resource_type: &str, query: &ResourceQuery) -> String {
    // The referral and patient filters are written out only when given, so that SQLite can use
    // the index that starts with them (`?n IS NULL OR …` hides it).
    let referral = if query.referral_id.is_some() {
        "referral_id = ?3"
    } else {
        "?3 IS NULL"
    };
    let patient = if query.patient_id.is_some() {
        "patient_id = ?4"
    } else {
        "?4 IS NULL"
    };
    // The partial indexes `resources_by_type` (a search by type alone) and `resources_by_patient`
    // (a search by patient) hold only Tasks and Observations. The query says so, or SQLite could
    // not use them (it cannot see that the bound type is one of these). By patient, it is also
    // told which index to use: the type index would serve the page order without a sort, and
    // SQLite prefers it, but it reads all of the client's Tasks to find one patient's. With a
    // referral, neither: the referral index finds a referral's few rows, for any type.
    let based_on = if query.based_on.is_some() {
        "referral_id IN (SELECT id FROM referrals WHERE based_on = ?7)"
    } else {
        "?7 IS NULL"
    };
    let covered = matches!(resource_type, "Task" | "Observation") && query.referral_id.is_none();
    let typed = if covered {
        "AND resource_type IN ('Task', 'Observation')"
    } else {
        ""
    };
    let table = if covered && query.patient_id.is_some() {
        "resources INDEXED BY resources_by_patient"
    } else {
        "resources"
    };
    format!(
        "FROM {table} WHERE client_id = ?1 AND resource_type = ?2 AND is_current = 1
         AND {referral} AND {patient} {typed}
         AND (?5 IS NULL OR code = ?5) AND (?6 IS NULL OR code LIKE ?6)
         AND {based_on}"
    )
}

#[async_trait]
impl Resources for SqliteStore {
    async fn versions(
        &self,
        client: &ClientId,
        resource_type: &str,
        id: &str,
        which: Versions,
    ) -> Result<Vec<StoredResource>, StoreError> {
        let (client, resource_type, id) = (
            client.to_string(),
            resource_type.to_string(),
            id.to_string(),
        );
        self.read(move |conn| match which {
            Versions::Current => {
                Ok(current_resource(conn, &client, &resource_type, &id)?.into_iter().collect())
            }
            Versions::One(version_id) => Ok(one_resource(
                conn,
                &format!(
                    "SELECT {RESOURCE_COLUMNS} FROM resources
                     WHERE resource_type = ?1 AND id = ?2 AND client_id = ?3 AND version_id = ?4"
                ),
                params![resource_type, id, client, version_id],
            )?
            .into_iter()
            .collect()),
            Versions::All => conn
                .prepare_cached(&format!(
                    "SELECT {RESOURCE_COLUMNS} FROM resources
                     WHERE resource_type = ?1 AND id = ?2 AND client_id = ?3 ORDER BY version_id DESC"
                ))?
                .query_and_then(params![resource_type, id, client], |row| {
                    rows::stored_resource(row)
                })?
                .collect(),
        })
        .await
    }

    async fn search_resources(
        &self,
        client: &ClientId,
        resource_type: &str,
        query: &ResourceQuery,
    ) -> Result<SearchPage, StoreError> {
        let (client, resource_type, query) =
            (client.to_string(), resource_type.to_string(), query.clone());
        self.read(move |conn| {
            let (code_system, code_value) = query.code_filters();
            let clauses = resource_search_clauses(&resource_type, &query);
            let filters = params![
                client,
                resource_type,
                query.referral_id,
                query.patient_id,
                code_system,
                code_value,
                query.based_on
            ];
            let total: i64 =
                conn.query_row(&format!("SELECT COUNT(*) {clauses}"), filters, |row| {
                    row.get(0)
                })?;
            let resources = conn
                .prepare_cached(&format!(
                    "SELECT {RESOURCE_COLUMNS} {clauses}
                     ORDER BY last_updated, id LIMIT ?8 OFFSET ?9"
                ))?
                .query_and_then(
                    params![
                        client,
                        resource_type,
                        query.referral_id,
                        query.patient_id,
                        code_system,
                        code_value,
                        query.based_on,
                        limit(query.count),
                        limit(query.offset)
                    ],
                    |row| rows::stored_resource(row),
                )?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(SearchPage {
                total: count(total),
                resources,
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::super::{apply_migrations, migrations};
    use super::*;

    /// A file written before `lean_intake` keeps its resources, readable by the new keys.
    #[test]
    fn lean_intake_migration_keeps_resources_and_bodies() {
        let mut conn = Connection::open_in_memory().expect("memory database");
        migrations()
            .to_version(&mut conn, 4)
            .expect("schema of version 4");
        conn.execute_batch(
            "INSERT INTO referrals (id, client_id, vcs_id, patient_id, status, record,
                 received_content_type, received_body, created_at, updated_at, task_id)
             VALUES ('r1', 'c1', 'v1', 'p1', 'active', '{}', 'application/fhir+json',
                 X'7B7D', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', 't1');
             INSERT INTO resources (resource_type, id, version_id, client_id, referral_id,
                 last_updated, content, patient_id, code, is_current)
             VALUES ('Task', 't1', 1, 'c1', 'r1', '2026-01-01T00:00:00Z', '{\"v\":1}', 'p1', NULL, 0),
                    ('Task', 't1', 2, 'c1', 'r1', '2026-01-02T00:00:00Z', '{\"v\":2}', 'p1', NULL, 1);",
        )
        .expect("rows of version 4");
        apply_migrations(&mut conn, ":memory:").expect("migrated");
        let current = current_resource(&conn, "c1", "Task", "t1")
            .expect("read")
            .expect("found");
        assert_eq!(
            (current.version_id, current.content.as_str()),
            (2, r#"{"v":2}"#)
        );
        let (body, encoding): (Vec<u8>, String) = conn
            .query_row(
                "SELECT received_body, received_body_encoding FROM referrals WHERE id = 'r1'",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .expect("referral");
        assert_eq!(
            (body.as_slice(), encoding.as_str()),
            (b"{}".as_slice(), "identity")
        );
    }

    /// Task and Observation searches by type alone read the partial type index in page order,
    /// by patient the partial patient index; with a referral they use the referral index.
    #[test]
    fn task_and_observation_searches_use_the_partial_indexes() {
        let mut conn = Connection::open_in_memory().expect("memory database");
        apply_migrations(&mut conn, ":memory:").expect("migrated");
        let plan_of = |select: &str, resource_type: &str, query: &ResourceQuery| -> String {
            let sql = format!(
                "EXPLAIN QUERY PLAN {select} {}
                 ORDER BY last_updated, id LIMIT 10",
                resource_search_clauses(resource_type, query)
            );
            let mut statement = conn.prepare(&sql).expect("a plan");
            let rows = statement
                .query_map(
                    params![
                        "c1",
                        resource_type,
                        query.referral_id,
                        None::<String>,
                        None::<String>,
                        None::<String>,
                        None::<String>
                    ],
                    |row| row.get::<_, String>(3),
                )
                .expect("rows");
            rows.map(|row| row.expect("a step"))
                .collect::<Vec<_>>()
                .join("; ")
        };
        let plan = |resource_type: &str, query: &ResourceQuery| {
            plan_of("SELECT content", resource_type, query)
        };
        let everything = ResourceQuery::default();
        for resource_type in ["Task", "Observation"] {
            let steps = plan(resource_type, &everything);
            assert!(steps.contains("resources_by_type"), "{steps}");
            assert!(!steps.contains("TEMP B-TREE"), "{steps}");
            // The search's total is counted from the index alone.
            let steps = plan_of("SELECT COUNT(*)", resource_type, &everything);
            assert!(
                steps.contains("COVERING INDEX resources_by_type"),
                "{steps}"
            );
        }
        let by_referral = ResourceQuery {
            referral_id: Some("r1".into()),
            ..ResourceQuery::default()
        };
        let steps = plan("Task", &by_referral);
        assert!(steps.contains("resources_by_referral"), "{steps}");
        let by_patient = ResourceQuery {
            patient_id: Some("p1".into()),
            ..ResourceQuery::default()
        };
        for resource_type in ["Task", "Observation"] {
            let steps = plan(resource_type, &by_patient);
            assert!(steps.contains("resources_by_patient"), "{steps}");
        }
        // Other types are not in the patient index: a search for them by patient must still
        // find them (by reading the table), not come back empty through the partial index.
        let steps = plan("Consent", &by_patient);
        assert!(!steps.contains("resources_by_patient"), "{steps}");
    }
}
