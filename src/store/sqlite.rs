//! SQLite store: WAL, `synchronous = FULL`, one writer thread that group-commits.
//!
//! SQLite allows one writer at a time, and a durable commit costs an fsync. The writer thread
//! takes every write waiting in its queue, applies each inside its own SAVEPOINT (so one
//! failure undoes only its own rows), and commits them together: one fsync for many referrals.
//! Nobody is answered before the commit returns, so a `201` still means "on disk".
//! Reads go through a small pool of connections and never wait for the writer.

use std::path::Path;

use async_trait::async_trait;
use deadpool_sqlite::{Config as PoolConfig, Pool, Runtime};
use rusqlite::{params, Connection, OptionalExtension};
use rusqlite_migration::{Migrations, M};
use tokio::sync::{mpsc, oneshot};

use super::*;

/// The most writes one commit carries; bounds the time a batch holds the write lock.
const MAX_BATCH: usize = 512;
/// Writes queued beyond this wait (back-pressure on request handlers rather than memory growth).
const QUEUE_CAPACITY: usize = 8192;

/// A write: runs inside a savepoint, says whether it succeeded, and hands back what to do once
/// the batch's commit is known.
type Job = Box<dyn FnOnce(&Connection) -> (bool, Completion) + Send>;
type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;

pub struct SqliteStore {
    reads: Pool,
    writes: mpsc::Sender<Job>,
}

fn migrations() -> Migrations<'static> {
    Migrations::new(vec![M::up(include_str!("migrations/sqlite/001_init.sql"))])
}

fn open_connection(path: &str) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|e| StoreError::Open {
        url: format!("sqlite://{path}"),
        reason: e.to_string(),
    })?;
    // FULL: with WAL, every commit is fsynced before it returns, which is what a 201 promises.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;
         PRAGMA busy_timeout = 5000;",
    )?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) the database file, runs migrations, starts the writer.
    pub async fn open(path: &str) -> Result<Self, StoreError> {
        if let Some(parent) = Path::new(path).parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).map_err(|e| StoreError::Open {
                    url: format!("sqlite://{path}"),
                    reason: e.to_string(),
                })?;
            }
        }
        let mut writer = open_connection(path)?;
        migrations()
            .to_latest(&mut writer)
            .map_err(|e| StoreError::Open {
                url: format!("sqlite://{path}"),
                reason: format!("migration failed: {e}"),
            })?;
        let (writes, queue) = mpsc::channel(QUEUE_CAPACITY);
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run_writer(writer, queue))
            .map_err(|e| StoreError::Open {
                url: format!("sqlite://{path}"),
                reason: e.to_string(),
            })?;
        let reads = PoolConfig::new(path)
            .create_pool(Runtime::Tokio1)
            .map_err(|e| StoreError::Open {
                url: format!("sqlite://{path}"),
                reason: e.to_string(),
            })?;
        Ok(SqliteStore { reads, writes })
    }

    /// Runs `op` in the writer thread, inside the next batch; returns once it is committed.
    async fn write<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = op(conn);
            let ok = result.is_ok();
            let completion: Completion = Box::new(move |commit| {
                let outcome = match commit {
                    Ok(()) => result,
                    Err(reason) => Err(StoreError::Unavailable(reason)),
                };
                // The requester may have gone away (client hung up); nothing to tell then.
                let _ = reply.send(outcome);
            });
            (ok, completion)
        });
        self.writes
            .send(job)
            .await
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?
    }

    /// Runs a read on a pooled connection off the async threads.
    async fn read<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = self
            .reads
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        conn.interact(move |conn| op(conn))
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?
    }
}

fn run_writer(conn: Connection, mut queue: mpsc::Receiver<Job>) {
    while let Some(first) = queue.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit_batch(&conn, batch);
    }
}

fn commit_batch(conn: &Connection, batch: Vec<Job>) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        // Nothing ran: every job hears why.
        let reason = e.to_string();
        for job in batch {
            let (_, completion) = job(conn);
            completion(Err(reason.clone()));
        }
        return;
    }
    let mut completions = Vec::with_capacity(batch.len());
    for job in batch {
        let savepoint = conn.execute_batch("SAVEPOINT job");
        let (ok, completion) = job(conn);
        let closed = if ok {
            conn.execute_batch("RELEASE job")
        } else {
            conn.execute_batch("ROLLBACK TO job; RELEASE job")
        };
        let outcome = savepoint.and(closed).map_err(|e| e.to_string());
        completions.push((completion, outcome));
    }
    let commit = conn.execute_batch("COMMIT").map_err(|e| e.to_string());
    if commit.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    for (completion, savepoint) in completions {
        completion(savepoint.and(commit.clone()));
    }
}

fn stored_resource(
    row: &rusqlite::Row<'_>,
) -> rusqlite::Result<(String, String, i64, String, String)> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
    ))
}

fn into_stored(
    (resource_type, id, version_id, last_updated, content): (String, String, i64, String, String),
) -> Result<StoredResource, StoreError> {
    Ok(StoredResource {
        resource_type,
        id,
        version_id,
        last_updated: parse_timestamp(&last_updated)?,
        content,
    })
}

const CURRENT_RESOURCE: &str = "SELECT resource_type, id, version_id, last_updated, content
     FROM resources WHERE resource_type = ?1 AND id = ?2 AND client_id = ?3
     ORDER BY version_id DESC LIMIT 1";

fn current_resource(
    conn: &Connection,
    client: &str,
    resource_type: &str,
    id: &str,
) -> Result<Option<StoredResource>, StoreError> {
    conn.prepare_cached(CURRENT_RESOURCE)?
        .query_row(params![resource_type, id, client], stored_resource)
        .optional()?
        .map(into_stored)
        .transpose()
}

fn referral_with_identifier(
    conn: &Connection,
    client: &str,
    identifier: &Identifier,
) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT referral_id FROM referral_identifiers
             WHERE client_id = ?1 AND system = ?2 AND value = ?3",
        )?
        .query_row(
            params![client, identifier.system, identifier.value],
            |row| row.get(0),
        )
        .optional()?)
}

fn insert_referral(conn: &Connection, r: &NewReferral) -> Result<CreateOutcome, StoreError> {
    let client = r.client_id.as_str();
    if let Some(message_id) = &r.message_id {
        let existing: Option<String> = conn
            .prepare_cached(
                "SELECT referral_id FROM processed_messages WHERE client_id = ?1 AND message_id = ?2",
            )?
            .query_row(params![client, message_id], |row| row.get(0))
            .optional()?;
        if let Some(existing) = existing {
            return Ok(CreateOutcome::DuplicateMessage { existing });
        }
    }
    for identifier in &r.identifiers {
        if let Some(existing) = referral_with_identifier(conn, client, identifier)? {
            return Ok(CreateOutcome::IdentifierTaken {
                identifier: identifier.clone(),
                existing,
            });
        }
    }
    let created_at = timestamp(r.created_at);
    let id = r.referral_id.as_str();
    conn.prepare_cached(
        "INSERT INTO referrals (id, client_id, vcs_id, patient_id, status, record,
             received_content_type, received_body, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        id,
        client,
        r.vcs_id.as_str(),
        r.patient_id.as_str(),
        r.status,
        r.record,
        r.received_content_type,
        r.received_body,
        created_at
    ])?;
    let mut identifiers = conn.prepare_cached(
        "INSERT INTO referral_identifiers (client_id, system, value, referral_id) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for identifier in &r.identifiers {
        identifiers.execute(params![client, identifier.system, identifier.value, id])?;
    }
    if let Some(message_id) = &r.message_id {
        conn.prepare_cached(
            "INSERT INTO processed_messages (client_id, message_id, referral_id, received_at)
             VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![client, message_id, id, created_at])?;
    }
    let mut resources = conn.prepare_cached(
        "INSERT INTO resources (resource_type, id, version_id, client_id, referral_id, last_updated, content)
         VALUES (?1, ?2, 1, ?3, ?4, ?5, ?6)",
    )?;
    for resource in &r.resources {
        resources.execute(params![
            resource.resource_type,
            resource.id.as_str(),
            client,
            id,
            created_at,
            resource.content
        ])?;
    }
    conn.prepare_cached(
        "INSERT INTO outbox (id, referral_id, vcs_id, event_type, sequence, payload, next_attempt_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
    )?
    .execute(params![
        r.outbox.id,
        id,
        r.vcs_id.as_str(),
        r.outbox.event_type,
        r.outbox.sequence,
        r.outbox.payload,
        created_at
    ])?;
    conn.prepare_cached(
        "INSERT INTO audit_log (recorded_at, actor, action, resource_type, resource_id, patient_id, outcome, correlation_id)
         VALUES (?1, ?2, 'create', 'ServiceRequest', ?3, ?4, 'success', ?5)",
    )?
    .execute(params![created_at, client, id, r.patient_id.as_str(), r.correlation_id])?;
    Ok(CreateOutcome::Created)
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_referral(
        &self,
        referral: NewReferral,
        condition: Option<Identifier>,
    ) -> Result<CreateOutcome, StoreError> {
        self.write(move |conn| {
            if let Some(condition) = &condition {
                let client = referral.client_id.as_str();
                if let Some(existing) = referral_with_identifier(conn, client, condition)? {
                    if let Some(found) =
                        current_resource(conn, client, "ServiceRequest", &existing)?
                    {
                        return Ok(CreateOutcome::Existing(found));
                    }
                }
            }
            insert_referral(conn, &referral)
        })
        .await
    }

    async fn read_resource(
        &self,
        client: &ClientId,
        resource_type: &str,
        id: &str,
    ) -> Result<Option<StoredResource>, StoreError> {
        let (client, resource_type, id) = (
            client.to_string(),
            resource_type.to_string(),
            id.to_string(),
        );
        self.read(move |conn| current_resource(conn, &client, &resource_type, &id))
            .await
    }

    async fn search_referrals(
        &self,
        client: &ClientId,
        query: &ReferralQuery,
    ) -> Result<SearchPage, StoreError> {
        let (client, query) = (client.to_string(), query.clone());
        self.read(move |conn| search(conn, &client, &query)).await
    }

    async fn pending_outbox_count(&self) -> Result<usize, StoreError> {
        self.read(|conn| {
            let count: i64 = conn.query_row(
                "SELECT COUNT(*) FROM outbox WHERE state = 'pending'",
                [],
                |row| row.get(0),
            )?;
            Ok(usize::try_from(count).unwrap_or(0))
        })
        .await
    }
}

/// Builds the search's WHERE clause from the filters present; values are always bound.
fn search(
    conn: &Connection,
    client: &str,
    query: &ReferralQuery,
) -> Result<SearchPage, StoreError> {
    let mut filters = vec!["f.client_id = ?".to_string()];
    let mut values: Vec<rusqlite::types::Value> = vec![client.to_string().into()];
    if let Some((system, value)) = &query.identifier {
        match system {
            Some(system) => {
                filters.push(
                    "f.id IN (SELECT referral_id FROM referral_identifiers
                              WHERE client_id = f.client_id AND system = ? AND value = ?)"
                        .into(),
                );
                values.push(system.clone().into());
            }
            None => filters.push(
                "f.id IN (SELECT referral_id FROM referral_identifiers
                          WHERE client_id = f.client_id AND value = ?)"
                    .into(),
            ),
        }
        values.push(value.clone().into());
    }
    if let Some(patient) = &query.patient_id {
        filters.push("f.patient_id = ?".into());
        values.push(patient.clone().into());
    }
    if !query.statuses.is_empty() {
        let marks = vec!["?"; query.statuses.len()].join(", ");
        filters.push(format!("f.status IN ({marks})"));
        values.extend(query.statuses.iter().map(|s| s.clone().into()));
    }
    let condition = filters.join(" AND ");
    let total: i64 = conn.query_row(
        &format!("SELECT COUNT(*) FROM referrals f WHERE {condition}"),
        rusqlite::params_from_iter(values.iter()),
        |row| row.get(0),
    )?;
    let limit = i64::try_from(query.count).unwrap_or(i64::MAX);
    let offset = i64::try_from(query.offset).unwrap_or(i64::MAX);
    values.push(limit.into());
    values.push(offset.into());
    let sql = format!(
        "SELECT r.resource_type, r.id, r.version_id, r.last_updated, r.content
         FROM referrals f JOIN resources r
           ON r.resource_type = 'ServiceRequest' AND r.id = f.id
          AND r.version_id = (SELECT MAX(version_id) FROM resources
                              WHERE resource_type = 'ServiceRequest' AND id = f.id)
         WHERE {condition}
         ORDER BY f.created_at, f.id LIMIT ? OFFSET ?"
    );
    let mut statement = conn.prepare(&sql)?;
    let rows = statement.query_map(rusqlite::params_from_iter(values.iter()), stored_resource)?;
    let mut resources = Vec::new();
    for row in rows {
        resources.push(into_stored(row?)?);
    }
    Ok(SearchPage {
        total: usize::try_from(total).unwrap_or(0),
        resources,
    })
}
