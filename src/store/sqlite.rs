//! SQLite store: WAL, one writer thread that group-commits, fsync and checkpoints beside it.
//!
//! SQLite allows one writer at a time, and a durable commit costs an fsync. The writer thread
//! takes every write waiting in its queue, applies each inside its own SAVEPOINT (so one
//! failure undoes only its own rows), and commits them together: one fsync for many referrals.
//! The fsync itself runs on a syncer thread while the writer goes on with the next batch, and
//! nobody is answered before the fsync covering their commit has returned, so a `201` still
//! means "on disk". A third thread copies committed pages into the database file (checkpoints).
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
/// Statements the writer keeps prepared.
const WRITER_STATEMENTS: usize = 64;
/// Writes queued beyond this wait (back-pressure on request handlers rather than memory growth).
const QUEUE_CAPACITY: usize = 8192;
/// The checkpointer's rest between passes: under load, each pass then copies about this much of
/// the writer's work, and a page changed by many commits meanwhile is copied once.
const CHECKPOINT_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);
/// WAL pages (256 MiB) after which the writer finishes a checkpoint itself, right after a commit.
/// Under steady load the checkpointer never catches up with the last commit, and the WAL starts
/// over (instead of growing) only when a checkpoint has copied everything: the checkpointer has
/// copied nearly all of it by then, so the writer copies a short tail. That checkpoint, and the
/// WAL's restart after it, each fsync while intake waits, so they should be rare: at 16 MiB they
/// came ten times a second at full load, and the writer spent a fifth of its time blocked on the
/// disk (BENCHMARKS.md, 2026-12-03). Only the part of the WAL not yet copied is ever searched
/// for a page, so a longer WAL costs readers nothing while the checkpointer keeps up.
const WRITER_CHECKPOINT_PAGES: u32 = 65536;

/// A write waiting for the writer thread.
type Job = Box<dyn WriteJob>;
type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;

/// What the writer can do with a queued write: run it inside the batch's transaction, or, when
/// no transaction could be opened, tell its requester without running it (run outside a
/// transaction, its rows would be committed on their own while the requester heard "failed").
trait WriteJob: Send {
    /// Runs inside a savepoint; says whether it succeeded, and hands back what to do once the
    /// batch's commit (and the fsync covering it) is known.
    fn run(self: Box<Self>, conn: &Connection) -> (bool, Completion);
    fn abandon(self: Box<Self>, reason: String);
}

/// A store operation and the requester waiting for its result.
struct PendingWrite<T, F> {
    op: F,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> WriteJob for PendingWrite<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
{
    fn run(self: Box<Self>, conn: &Connection) -> (bool, Completion) {
        let PendingWrite { op, reply } = *self;
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
    }

    fn abandon(self: Box<Self>, reason: String) {
        let _ = self.reply.send(Err(StoreError::Unavailable(reason)));
    }
}

pub struct SqliteStore {
    reads: Pool,
    writes: mpsc::Sender<Job>,
}

/// The schema, in order: (name, SQL). The file records how far it got in `user_version`.
const MIGRATIONS: [(&str, &str); 7] = [
    ("init", include_str!("migrations/sqlite/001_init.sql")),
    (
        "delivery",
        include_str!("migrations/sqlite/002_delivery.sql"),
    ),
    (
        "closed_loop",
        include_str!("migrations/sqlite/003_closed_loop.sql"),
    ),
    ("tokens", include_str!("migrations/sqlite/004_tokens.sql")),
    (
        "lean_intake",
        include_str!("migrations/sqlite/005_lean_intake.sql"),
    ),
    (
        "type_search",
        include_str!("migrations/sqlite/006_type_search.sql"),
    ),
    (
        "patient_search",
        include_str!("migrations/sqlite/007_patient_search.sql"),
    ),
];

fn migrations() -> Migrations<'static> {
    Migrations::new(MIGRATIONS.iter().map(|(_, sql)| M::up(sql)).collect())
}

fn open_error(path: &str, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Open {
        url: format!("sqlite://{path}"),
        reason: reason.to_string(),
    }
}

fn create_parent_dir(path: &str) -> Result<(), StoreError> {
    match Path::new(path).parent() {
        Some(parent) if !parent.as_os_str().is_empty() => {
            std::fs::create_dir_all(parent).map_err(|e| open_error(path, e))
        }
        _ => Ok(()),
    }
}

/// How many migrations the file has had.
fn schema_version(conn: &Connection) -> Result<usize, StoreError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    Ok(usize::try_from(version).unwrap_or(0))
}

fn apply_migrations(conn: &mut Connection, path: &str) -> Result<(), StoreError> {
    migrations()
        .to_latest(conn)
        .map_err(|e| open_error(path, format!("migration failed: {e}")))
}

/// Applies pending migrations to the file (`sp-gateway migrate`); returns those applied now.
pub fn migrate(path: &str) -> Result<Vec<String>, StoreError> {
    create_parent_dir(path)?;
    let mut conn = open_connection(path)?;
    let before = schema_version(&conn)?;
    apply_migrations(&mut conn, path)?;
    Ok(MIGRATIONS
        .iter()
        .enumerate()
        .skip(before)
        .map(|(i, (name, _))| format!("{} {name}", i + 1))
        .collect())
}

fn open_connection(path: &str) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|e| open_error(path, e))?;
    // FULL: with WAL, every commit is fsynced before it returns, which is what a 201 promises
    // (the writer alone commits with NORMAL and leaves the fsync to the syncer thread).
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;",
    )?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) the database file, runs migrations (or, with `migrate` off,
    /// checks that they ran), starts the writer.
    pub async fn open(path: &str, migrate: bool) -> Result<Self, StoreError> {
        create_parent_dir(path)?;
        let mut writer = open_connection(path)?;
        // Foreign keys go on after migrating: a migration that rebuilds a table must be able
        // to drop the old one while other tables still name it.
        if migrate {
            apply_migrations(&mut writer, path)?;
        } else if schema_version(&writer)? < MIGRATIONS.len() {
            return Err(open_error(
                path,
                "migrations are pending and storage.migrate_on_start is off: \
                 run `sp-gateway migrate` first",
            ));
        }
        writer.execute_batch("PRAGMA foreign_keys = ON;")?;
        // Every statement the writer runs stays prepared (rusqlite keeps 16 by default; intake,
        // delivery and the closed loop together use more, and evicting one means parsing it again).
        writer.set_prepared_statement_cache_capacity(WRITER_STATEMENTS);
        // Each job's SAVEPOINT journals the pages it changes; past 64 KiB SQLite spills that
        // statement journal to a temporary file (created, written page by page, deleted, every
        // batch), which cost the writer more system time than all its other work. In memory it
        // holds at most the pages of one batch, and it is never needed after a crash.
        writer.execute_batch("PRAGMA temp_store = MEMORY;")?;
        // One gateway owns an SQLite file, so leases left by a process that died are stale now:
        // releasing them lets its in-flight deliveries go again at once instead of after the lease.
        writer.execute(
            "UPDATE outbox SET lease_until = NULL WHERE lease_until IS NOT NULL",
            [],
        )?;
        // Checkpoints (copying committed pages from the WAL into the database file, and syncing
        // it) took a fifth to a third of the writer's time, inside the commits that crossed
        // SQLite's default threshold, while every request waiting for that commit waited too. A thread of their
        // own runs them beside the writer instead (SQLite's "application-initiated checkpoints").
        // The WAL file keeps its largest size (SQLite's default): cutting it back when the log
        // starts over stalled the writer for 60 ms at a time, and reuse overwrites blocks the
        // file already has.
        writer.execute_batch(&format!(
            "PRAGMA wal_autocheckpoint = {WRITER_CHECKPOINT_PAGES};"
        ))?;
        let checkpointer = open_connection(path)?;
        let database_file = std::fs::File::open(path).map_err(|e| open_error(path, e))?;
        let (committed, commits) = std::sync::mpsc::sync_channel(1);
        spawn_thread(path, "sqlite-checkpoint", move || {
            run_checkpointer(checkpointer, database_file, commits)
        })?;
        // Commits write the WAL; the syncer thread fsyncs it before anyone is answered.
        writer.execute_batch("PRAGMA synchronous = NORMAL;")?;
        let (to_syncer, batches) = std::sync::mpsc::channel();
        let wal_path = std::path::PathBuf::from(format!("{path}-wal"));
        spawn_thread(path, "sqlite-syncer", move || run_syncer(wal_path, batches))?;
        let (writes, queue) = mpsc::channel(QUEUE_CAPACITY);
        spawn_thread(path, "sqlite-writer", move || {
            run_writer(writer, queue, to_syncer, committed)
        })?;
        let reads = PoolConfig::new(path)
            .create_pool(Runtime::Tokio1)
            .map_err(|e| open_error(path, e))?;
        Ok(SqliteStore { reads, writes })
    }

    /// Runs `op` in the writer thread, inside the next batch; returns once it is committed.
    async fn write<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(PendingWrite { op, reply });
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

fn spawn_thread(
    path: &str,
    name: &str,
    body: impl FnOnce() + Send + 'static,
) -> Result<(), StoreError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(body)
        .map(|_| ())
        .map_err(|e| open_error(path, e))
}

/// Commits batches until the store is dropped, handing each to the syncer and telling the
/// checkpointer (a full mailbox means it already knows there is work).
fn run_writer(
    conn: Connection,
    mut queue: mpsc::Receiver<Job>,
    syncer: std::sync::mpsc::Sender<Outcomes>,
    committed: std::sync::mpsc::SyncSender<()>,
) {
    while let Some(first) = queue.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let outcomes = commit_batch(&conn, batch);
        if let Err(unsent) = syncer.send(outcomes) {
            // The syncer has gone (only while the process ends): nothing can be promised.
            for (completion, _) in unsent.0 {
                completion(Err("the WAL syncer has stopped".into()));
            }
        }
        let _ = committed.try_send(());
    }
}

/// Copies committed WAL pages into the database file while the writer goes on; stops with the
/// writer. PASSIVE checkpoints never wait for, or block, the writer or readers (one that finds
/// the writer finishing a checkpoint just returns).
///
/// After each pass it also flushes the pages it copied to disk. SQLite syncs the database file
/// only when a checkpoint has copied the whole WAL, which under load is the writer's own
/// checkpoint (`WRITER_CHECKPOINT_PAGES`): without this flush, that one fsync had to write
/// everything every pass had copied since the last one, while all intake waited for it. The
/// flush is only for speed: what a `201` promises rests on the syncer's WAL fsync, and SQLite's
/// own checkpoint syncs stay as they are.
fn run_checkpointer(
    conn: Connection,
    database_file: std::fs::File,
    commits: std::sync::mpsc::Receiver<()>,
) {
    while commits.recv().is_ok() {
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "SQLite checkpoint failed; the writer's own checkpoints go on");
        }
        if let Err(e) = database_file.sync_data() {
            tracing::warn!(error = %e, "flushing checkpointed pages failed; the writer's checkpoint will sync them");
        }
        std::thread::sleep(CHECKPOINT_PAUSE);
    }
}

/// Each job's completion with how its part of the batch went (before the WAL is synced).
type Outcomes = Vec<(Completion, Result<(), String>)>;

fn commit_batch(conn: &Connection, batch: Vec<Job>) -> Outcomes {
    if !conn.is_autocommit() {
        // A transaction left open by a batch whose COMMIT and ROLLBACK both failed: its jobs
        // were told they failed, so it must not be committed along with this batch.
        let _ = conn.execute_batch("ROLLBACK");
    }
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        // Nothing runs: every job hears why, and nothing it would have written is kept.
        let reason = e.to_string();
        for job in batch {
            job.abandon(reason.clone());
        }
        return Vec::new();
    }
    let mut completions = Vec::with_capacity(batch.len());
    for job in batch {
        let savepoint = run_cached(conn, "SAVEPOINT job");
        let (ok, completion) = job.run(conn);
        let closed = if ok {
            run_cached(conn, "RELEASE job")
        } else {
            run_cached(conn, "ROLLBACK TO job").and_then(|()| run_cached(conn, "RELEASE job"))
        };
        let outcome = savepoint.and(closed).map_err(|e| e.to_string());
        completions.push((completion, outcome));
    }
    let commit = conn.execute_batch("COMMIT").map_err(|e| e.to_string());
    if commit.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    completions
        .into_iter()
        .map(|(completion, savepoint)| (completion, savepoint.and(commit.clone())))
        .collect()
}

/// Makes committed batches durable and only then answers their jobs, in commit order.
///
/// The writer commits with `synchronous = NORMAL`, which writes the WAL without syncing it, and
/// hands the batch over here: one fsync of the WAL file covers every batch committed so far,
/// while the writer already runs the next one instead of waiting for the disk. No job hears
/// "done" before the fsync that covers it has returned, so a `201` still means "on disk"; a batch
/// committed but not yet synced when the machine fails is rolled back by SQLite's recovery
/// (its frames fail the WAL checksums), and nobody was told it was stored. Checkpoints sync the
/// WAL before copying from it, so unsynced pages never reach the database file.
fn run_syncer(wal_path: std::path::PathBuf, batches: std::sync::mpsc::Receiver<Outcomes>) {
    let mut wal = None;
    while let Ok(first) = batches.recv() {
        let mut ready = vec![first];
        ready.extend(batches.try_iter());
        let synced = sync_wal(&mut wal, &wal_path);
        for (completion, outcome) in ready.into_iter().flatten() {
            completion(outcome.and(synced.clone()));
        }
    }
}

/// fsync of the WAL file, as SQLite's own `synchronous = FULL` does (SQLite creates the file with
/// the first connection in WAL mode and keeps it while any connection is open; the writer's
/// always is).
fn sync_wal(wal: &mut Option<std::fs::File>, path: &Path) -> Result<(), String> {
    let file = match wal {
        Some(file) => file,
        None => wal.insert(std::fs::File::open(path).map_err(|e| e.to_string())?),
    };
    file.sync_all()
        .map_err(|e| format!("syncing the WAL failed: {e}"))
}

/// Runs a statement without parameters or rows from the statement cache: savepoints open and
/// close once per job, and parsing them each time costs more than running them.
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
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

/// Adds a version of a resource, making it the current one.
fn insert_resource(
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
fn insert_first_version(
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

fn insert_outbox(
    conn: &Connection,
    message: &NewOutboxMessage,
    referral_id: &str,
    at: &str,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO outbox (id, referral_id, target_kind, vcs_id, event_type, sequence, payload, next_attempt_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
    )?
    .execute(params![
        message.id,
        referral_id,
        message.target_kind.as_str(),
        message.target,
        message.event_type,
        message.sequence,
        message.payload,
        at
    ])?;
    Ok(())
}

fn insert_audit(
    conn: &Connection,
    entry: &AuditEntry,
    patient_id: &str,
    correlation_id: Option<&str>,
    at: &str,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO audit_log (recorded_at, actor, action, resource_type, resource_id, patient_id, outcome, correlation_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'success', ?7)",
    )?
    .execute(params![at, entry.actor, entry.action, entry.resource_type, entry.resource_id, patient_id, correlation_id])?;
    Ok(())
}

/// The body as received, in the form `referrals.received_body` keeps it.
struct ReceivedBody {
    encoding: &'static str,
    bytes: Vec<u8>,
}

/// LZ4 frame format: fast enough to cost the request a few microseconds, and what the `lz4`
/// command line tool reads, so an operator can still look at what a vendor sent.
fn compress(body: &[u8]) -> ReceivedBody {
    use std::io::Write;
    let mut encoder = lz4_flex::frame::FrameEncoder::new(Vec::with_capacity(body.len() / 2));
    let written = encoder.write_all(body).map_err(|e| e.to_string());
    match written.and_then(|()| encoder.finish().map_err(|e| e.to_string())) {
        Ok(bytes) => ReceivedBody {
            encoding: "lz4",
            bytes,
        },
        // Writing to memory does not fail; should it ever, the body is stored as it came.
        Err(_) => ReceivedBody {
            encoding: "identity",
            bytes: body.to_vec(),
        },
    }
}

fn insert_referral(
    conn: &Connection,
    r: &NewReferral,
    received: &ReceivedBody,
) -> Result<CreateOutcome, StoreError> {
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
             received_content_type, received_body, received_body_encoding, created_at, updated_at,
             task_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11)",
    )?
    .execute(params![
        id,
        client,
        r.vcs_id.as_str(),
        r.patient_id.as_str(),
        r.status,
        r.record,
        r.received_content_type,
        received.bytes,
        received.encoding,
        created_at,
        r.task_id.as_str()
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
    for resource in &r.resources {
        insert_first_version(conn, resource, client, id, &created_at)?;
    }
    for message in &r.outbox {
        insert_outbox(conn, message, id, &created_at)?;
    }
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
        mut referral: NewReferral,
        condition: Option<Identifier>,
    ) -> Result<CreateOutcome, StoreError> {
        // Compressed here, on the request's thread: the writer's time is the scarce one.
        let received = compress(&std::mem::take(&mut referral.received_body));
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
            insert_referral(conn, &referral, &received)
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

    async fn load_referral(&self, referral_id: &str) -> Result<Option<ReferralState>, StoreError> {
        let referral_id = referral_id.to_string();
        self.read(move |conn| load_referral(conn, &referral_id))
            .await
    }

    async fn apply_change(&self, change: ReferralChange) -> Result<ChangeOutcome, StoreError> {
        self.write(move |conn| apply_change(conn, &change)).await
    }

    async fn idempotent_response(
        &self,
        owner: &str,
        key: &str,
    ) -> Result<Option<StoredResponse>, StoreError> {
        let (owner, key) = (owner.to_string(), key.to_string());
        self.read(move |conn| {
            Ok(conn
                .prepare_cached("SELECT request_hash, status, body FROM idempotency_keys WHERE owner = ?1 AND key = ?2")?
                .query_row(params![owner, key], |row| {
                    Ok(StoredResponse {
                        request_hash: row.get(0)?,
                        status: row.get(1)?,
                        body: row.get(2)?,
                    })
                })
                .optional()?)
        })
        .await
    }

    async fn list_vcs_referrals(
        &self,
        vcs: &VcsId,
        status: Option<&str>,
        since: Option<DateTime<Utc>>,
        count: usize,
        offset: usize,
    ) -> Result<(usize, Vec<VcsReferral>), StoreError> {
        let (vcs, status, since) = (
            vcs.to_string(),
            status.map(str::to_string),
            since.map(timestamp),
        );
        self.read(move |conn| {
            let condition = "vcs_id = ?1 AND (?2 IS NULL OR vcs_status = ?2) AND (?3 IS NULL OR updated_at >= ?3)";
            let total: i64 = conn.query_row(
                &format!("SELECT COUNT(*) FROM referrals WHERE {condition}"),
                params![vcs, status, since],
                |row| row.get(0),
            )?;
            let mut query = conn.prepare_cached(&format!(
                "SELECT id, vcs_status, updated_at, record FROM referrals WHERE {condition}
                 ORDER BY updated_at, id LIMIT ?4 OFFSET ?5"
            ))?;
            let rows = query.query_map(
                params![
                    vcs,
                    status,
                    since,
                    i64::try_from(count).unwrap_or(i64::MAX),
                    i64::try_from(offset).unwrap_or(i64::MAX)
                ],
                |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, String>(2)?, row.get::<_, String>(3)?)),
            )?;
            let mut items = Vec::new();
            for row in rows {
                let (referral_id, status, updated_at, record) = row?;
                items.push(VcsReferral { referral_id, status, updated_at: parse_timestamp(&updated_at)?, record });
            }
            Ok((usize::try_from(total).unwrap_or(0), items))
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
            let (code_system, code_value) = match &query.code {
                Some((Some(system), value)) => (Some(format!("{system}|{value}")), None),
                Some((None, value)) => (None, Some(format!("%|{value}"))),
                None => (None, None),
            };
            let clauses = resource_search_clauses(&resource_type, &query);
            let filters = params![
                client,
                resource_type,
                query.referral_id,
                query.patient_id,
                code_system,
                code_value
            ];
            let total: i64 =
                conn.query_row(&format!("SELECT COUNT(*) {clauses}"), filters, |row| {
                    row.get(0)
                })?;
            let mut statement = conn.prepare_cached(&format!(
                "SELECT resource_type, id, version_id, last_updated, content {clauses}
                 ORDER BY last_updated, id LIMIT ?7 OFFSET ?8"
            ))?;
            let rows = statement.query_map(
                params![
                    client,
                    resource_type,
                    query.referral_id,
                    query.patient_id,
                    code_system,
                    code_value,
                    i64::try_from(query.count).unwrap_or(i64::MAX),
                    i64::try_from(query.offset).unwrap_or(i64::MAX)
                ],
                stored_resource,
            )?;
            let mut resources = Vec::new();
            for row in rows {
                resources.push(into_stored(row?)?);
            }
            Ok(SearchPage {
                total: usize::try_from(total).unwrap_or(0),
                resources,
            })
        })
        .await
    }

    async fn history(
        &self,
        client: &ClientId,
        resource_type: &str,
        id: &str,
    ) -> Result<Vec<StoredResource>, StoreError> {
        let (client, resource_type, id) = (
            client.to_string(),
            resource_type.to_string(),
            id.to_string(),
        );
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT resource_type, id, version_id, last_updated, content FROM resources
                 WHERE resource_type = ?1 AND id = ?2 AND client_id = ?3 ORDER BY version_id DESC",
            )?;
            let rows = statement.query_map(params![resource_type, id, client], stored_resource)?;
            rows.map(|row| into_stored(row?)).collect()
        })
        .await
    }

    async fn read_version(
        &self,
        client: &ClientId,
        resource_type: &str,
        id: &str,
        version_id: i64,
    ) -> Result<Option<StoredResource>, StoreError> {
        let (client, resource_type, id) = (
            client.to_string(),
            resource_type.to_string(),
            id.to_string(),
        );
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT resource_type, id, version_id, last_updated, content FROM resources
                 WHERE resource_type = ?1 AND id = ?2 AND client_id = ?3 AND version_id = ?4",
            )?
            .query_row(
                params![resource_type, id, client, version_id],
                stored_resource,
            )
            .optional()?
            .map(into_stored)
            .transpose()
        })
        .await
    }

    async fn create_subscription(
        &self,
        subscription: SubscriptionRow,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let at = timestamp(at);
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO subscriptions (id, client_id, resource_type, criteria, endpoint, status, content, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                subscription.id,
                subscription.client_id,
                subscription.resource_type,
                subscription.criteria,
                subscription.endpoint,
                subscription.status,
                subscription.content,
                at
            ])?;
            Ok(())
        })
        .await
    }

    async fn subscriptions_for(
        &self,
        client: &str,
        resource_type: &str,
    ) -> Result<Vec<SubscriptionRow>, StoreError> {
        let (client, resource_type) = (client.to_string(), resource_type.to_string());
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions
                 WHERE client_id = ?1 AND resource_type = ?2 AND status = 'active'"
            ))?;
            let rows = statement.query_map(params![client, resource_type], subscription_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn subscription(&self, id: &str) -> Result<Option<SubscriptionRow>, StoreError> {
        let id = id.to_string();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE id = ?1"
                ))?
                .query_row(params![id], subscription_row)
                .optional()?)
        })
        .await
    }

    async fn delete_subscription(&self, client: &ClientId, id: &str) -> Result<bool, StoreError> {
        let (client, id) = (client.to_string(), id.to_string());
        self.write(move |conn| {
            let changed = conn
                .prepare_cached("UPDATE subscriptions SET status = 'off' WHERE id = ?1 AND client_id = ?2 AND status <> 'off'")?
                .execute(params![id, client])?;
            Ok(changed == 1)
        })
        .await
    }

    async fn record_access(&self, access: Access) -> Result<(), StoreError> {
        self.write(move |conn| {
            let at = timestamp(access.at);
            conn.prepare_cached(
                "INSERT INTO audit_log (recorded_at, actor, action, resource_type, resource_id, patient_id, outcome, correlation_id)
                 VALUES (?1, ?2, ?3, ?4, ?5,
                         COALESCE(?6, (SELECT patient_id FROM resources WHERE resource_type = ?4 AND id = ?5 LIMIT 1)),
                         ?7, ?8)",
            )?
            .execute(params![
                at,
                access.actor,
                access.action,
                access.resource_type,
                access.resource_id,
                access.patient_id,
                access.outcome,
                access.correlation_id
            ])?;
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
            let condition = "(?1 IS NULL OR patient_id = ?1) AND (?2 IS NULL OR recorded_at >= ?2) AND (?3 IS NULL OR recorded_at < ?3)";
            let total: i64 = conn.query_row(
                &format!("SELECT COUNT(*) FROM audit_log WHERE {condition}"),
                params![query.patient_id, from, to],
                |row| row.get(0),
            )?;
            let mut statement = conn.prepare_cached(&format!(
                "SELECT id, recorded_at, actor, action, resource_type, resource_id, patient_id, outcome, correlation_id
                 FROM audit_log WHERE {condition} ORDER BY id LIMIT ?4 OFFSET ?5"
            ))?;
            let rows = statement.query_map(
                params![
                    query.patient_id,
                    from,
                    to,
                    i64::try_from(query.count).unwrap_or(i64::MAX),
                    i64::try_from(query.offset).unwrap_or(i64::MAX)
                ],
                |row| {
                    Ok(AuditRecord {
                        id: row.get(0)?,
                        recorded_at: row.get(1)?,
                        actor: row.get(2)?,
                        action: row.get(3)?,
                        resource_type: row.get(4)?,
                        resource_id: row.get(5)?,
                        patient_id: row.get(6)?,
                        outcome: row.get(7)?,
                        correlation_id: row.get(8)?,
                    })
                },
            )?;
            let records = rows.collect::<Result<Vec<_>, _>>()?;
            Ok((usize::try_from(total).unwrap_or(0), records))
        })
        .await
    }

    async fn save_access_token(&self, token: IssuedToken) -> Result<(), StoreError> {
        let expires_at = timestamp(token.expires_at);
        let now = timestamp(Utc::now());
        self.write(move |conn| {
            conn.prepare_cached("DELETE FROM access_tokens WHERE expires_at < ?1")?
                .execute(params![now])?;
            conn.prepare_cached(
                "INSERT INTO access_tokens (digest, client_id, scopes, expires_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![token.digest, token.client_id, token.scopes.join(" "), expires_at])?;
            Ok(())
        })
        .await
    }

    async fn access_token(
        &self,
        digest: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<IssuedToken>, StoreError> {
        let (digest, now) = (digest.to_string(), timestamp(now));
        self.read(move |conn| {
            let row: Option<(String, String, String)> = conn
                .prepare_cached(
                    "SELECT client_id, scopes, expires_at FROM access_tokens
                     WHERE digest = ?1 AND expires_at > ?2",
                )?
                .query_row(params![digest, now], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })
                .optional()?;
            row.map(|(client_id, scopes, expires_at)| {
                Ok(IssuedToken {
                    digest: digest.clone(),
                    client_id,
                    scopes: scopes.split_whitespace().map(str::to_string).collect(),
                    expires_at: parse_timestamp(&expires_at)?,
                })
            })
            .transpose()
        })
        .await
    }

    async fn use_assertion(
        &self,
        client: &str,
        jti: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (client, jti) = (client.to_string(), jti.to_string());
        let (expires_at, now) = (timestamp(expires_at), timestamp(now));
        self.write(move |conn| {
            conn.prepare_cached("DELETE FROM used_assertions WHERE expires_at < ?1")?
                .execute(params![now])?;
            let inserted = conn
                .prepare_cached(
                    "INSERT INTO used_assertions (client_id, jti, expires_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (client_id, jti) DO NOTHING",
                )?
                .execute(params![client, jti, expires_at])?;
            Ok(inserted == 1)
        })
        .await
    }

    async fn claim_due_messages(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        let (now, lease) = (timestamp(now), timestamp(lease_until));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.write(move |conn| {
            let mut claim = conn.prepare_cached(
                "UPDATE outbox SET lease_until = ?1 WHERE id IN (
                     SELECT o.id FROM outbox o
                     WHERE o.state = 'pending' AND o.next_attempt_at <= ?2
                       AND (o.lease_until IS NULL OR o.lease_until < ?2)
                       AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.referral_id = o.referral_id
                                       AND e.target_kind = o.target_kind AND e.vcs_id = o.vcs_id
                                       AND e.sequence < o.sequence AND e.state = 'pending')
                       AND NOT (o.target_kind = 'vcs'
                                AND o.vcs_id IN (SELECT vcs_id FROM vcs_endpoints WHERE disabled = 1))
                     ORDER BY o.next_attempt_at LIMIT ?3)
                 RETURNING id, referral_id, vcs_id, event_type, sequence, payload, attempts, target_kind",
            )?;
            let rows = claim.query_map(params![lease, now, limit], |row| {
                Ok(OutboxMessage {
                    id: row.get(0)?,
                    referral_id: row.get(1)?,
                    vcs_id: row.get(2)?,
                    event_type: row.get(3)?,
                    sequence: row.get(4)?,
                    payload: row.get(5)?,
                    attempts: row.get(6)?,
                    target_kind: TargetKind::parse(&row.get::<_, String>(7)?),
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn next_due_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.read(|conn| {
            let next: Option<String> = conn.query_row(
                "SELECT MIN(CASE WHEN lease_until IS NOT NULL AND lease_until > next_attempt_at
                                 THEN lease_until ELSE next_attempt_at END)
                 FROM outbox WHERE state = 'pending'
                   AND vcs_id NOT IN (SELECT vcs_id FROM vcs_endpoints WHERE disabled = 1)",
                [],
                |row| row.get(0),
            )?;
            next.as_deref().map(parse_timestamp).transpose()
        })
        .await
    }

    async fn release_expired_leases(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let now = timestamp(now);
        self.write(move |conn| {
            Ok(conn
                .prepare_cached(
                    "UPDATE outbox SET lease_until = NULL
                     WHERE state = 'pending' AND lease_until IS NOT NULL AND lease_until < ?1",
                )?
                .execute(params![now])?)
        })
        .await
    }

    async fn record_attempt(
        &self,
        message_id: &str,
        attempt: Attempt,
        next: NextStep,
    ) -> Result<(), StoreError> {
        let message_id = message_id.to_string();
        self.write(move |conn| {
            let at = timestamp(attempt.at);
            conn.prepare_cached(
                "INSERT INTO delivery_attempts (message_id, attempted_at, status_code, latency_ms, error, response_prefix)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                message_id,
                at,
                attempt.status_code,
                i64::try_from(attempt.latency_ms).unwrap_or(i64::MAX),
                attempt.error,
                attempt.response_prefix
            ])?;
            let (state, next_at, delivered_at) = match &next {
                NextStep::Delivered => ("delivered", at.clone(), Some(at.clone())),
                NextStep::RetryAt(when) => ("pending", timestamp(*when), None),
                NextStep::Dead => ("dead", at.clone(), None),
                NextStep::EndpointGone => ("pending", at.clone(), None),
            };
            conn.prepare_cached(
                "UPDATE outbox SET state = ?2, next_attempt_at = ?3, delivered_at = ?4, lease_until = NULL,
                        attempts = attempts + 1, last_error = ?5
                 WHERE id = ?1",
            )?
            .execute(params![message_id, state, next_at, delivered_at, attempt.error])?;
            if next == NextStep::Delivered {
                // A delivered message disclosed the patient's details to its recipient: audited
                // in the same transaction that records the delivery.
                conn.prepare_cached(
                    "INSERT INTO audit_log (recorded_at, actor, action, resource_type, resource_id, patient_id, outcome, correlation_id)
                     SELECT ?2, o.target_kind || ':' || o.vcs_id, 'disclose', 'ServiceRequest', o.referral_id, r.patient_id, 'success', o.id
                     FROM outbox o JOIN referrals r ON r.id = o.referral_id WHERE o.id = ?1",
                )?
                .execute(params![message_id, at])?;
            }
            if next == NextStep::EndpointGone {
                conn.prepare_cached(
                    "INSERT INTO vcs_endpoints (vcs_id, disabled, disabled_reason, updated_at)
                     SELECT vcs_id, 1, 'the endpoint answered 410 Gone', ?2 FROM outbox WHERE id = ?1
                     ON CONFLICT (vcs_id) DO UPDATE SET disabled = 1,
                        disabled_reason = excluded.disabled_reason, updated_at = excluded.updated_at",
                )?
                .execute(params![message_id, at])?;
            }
            Ok(())
        })
        .await
    }

    async fn signing_secrets(
        &self,
        vcs: &VcsId,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let (vcs, now) = (vcs.to_string(), timestamp(now));
        self.read(move |conn| {
            let mut query = conn.prepare_cached(
                "SELECT secret FROM vcs_secrets WHERE vcs_id = ?1 AND (expires_at IS NULL OR expires_at > ?2)
                 ORDER BY created_at DESC",
            )?;
            let secrets = query.query_map(params![vcs, now], |row| row.get(0))?;
            Ok(secrets.collect::<Result<Vec<String>, _>>()?)
        })
        .await
    }

    async fn adopt_secret(
        &self,
        vcs: &VcsId,
        secret: &str,
        now: DateTime<Utc>,
        grace_until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (vcs, secret) = (vcs.to_string(), secret.to_string());
        let (now, grace) = (timestamp(now), timestamp(grace_until));
        self.write(move |conn| {
            let known: bool = conn
                .prepare_cached("SELECT 1 FROM vcs_secrets WHERE vcs_id = ?1 AND secret = ?2")?
                .exists(params![vcs, secret])?;
            if known {
                return Ok(());
            }
            conn.prepare_cached(
                "UPDATE vcs_secrets SET expires_at = ?2 WHERE vcs_id = ?1 AND (expires_at IS NULL OR expires_at > ?2)",
            )?
            .execute(params![vcs, grace])?;
            conn.prepare_cached("INSERT INTO vcs_secrets (vcs_id, secret, created_at) VALUES (?1, ?2, ?3)")?
                .execute(params![vcs, secret, now])?;
            Ok(())
        })
        .await
    }

    async fn set_endpoint_enabled(
        &self,
        vcs: &VcsId,
        enabled: bool,
        reason: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (vcs, now) = (vcs.to_string(), timestamp(now));
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO vcs_endpoints (vcs_id, disabled, disabled_reason, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (vcs_id) DO UPDATE SET disabled = excluded.disabled,
                    disabled_reason = excluded.disabled_reason, updated_at = excluded.updated_at",
            )?
            .execute(params![vcs, !enabled, reason, now])?;
            Ok(())
        })
        .await
    }

    async fn disabled_endpoints(&self) -> Result<Vec<(String, Option<String>)>, StoreError> {
        self.read(|conn| {
            let mut query = conn.prepare_cached(
                "SELECT vcs_id, disabled_reason FROM vcs_endpoints WHERE disabled = 1",
            )?;
            let rows = query.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn list_deliveries(
        &self,
        filter: &DeliveryFilter,
    ) -> Result<(usize, Vec<Delivery>), StoreError> {
        let filter = filter.clone();
        self.read(move |conn| {
            let condition = "(?1 IS NULL OR state = ?1) AND (?2 IS NULL OR vcs_id = ?2)";
            let total: i64 = conn.query_row(
                &format!("SELECT COUNT(*) FROM outbox WHERE {condition}"),
                params![filter.state, filter.vcs],
                |row| row.get(0),
            )?;
            let mut query = conn.prepare_cached(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM outbox WHERE {condition}
                 ORDER BY created_at DESC, id LIMIT ?3 OFFSET ?4"
            ))?;
            let rows = query.query_map(
                params![
                    filter.state,
                    filter.vcs,
                    i64::try_from(filter.count).unwrap_or(i64::MAX),
                    i64::try_from(filter.offset).unwrap_or(i64::MAX)
                ],
                delivery_row,
            )?;
            let deliveries = rows.collect::<Result<Vec<_>, _>>()?;
            Ok((usize::try_from(total).unwrap_or(0), deliveries))
        })
        .await
    }

    async fn referral_deliveries(
        &self,
        referral_id: &str,
    ) -> Result<Vec<(Delivery, Vec<AttemptRow>)>, StoreError> {
        let referral_id = referral_id.to_string();
        self.read(move |conn| {
            let mut messages = conn.prepare_cached(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM outbox WHERE referral_id = ?1 ORDER BY sequence"
            ))?;
            let deliveries = messages
                .query_map(params![referral_id], delivery_row)?
                .collect::<Result<Vec<_>, _>>()?;
            let mut attempts = conn.prepare_cached(
                "SELECT attempted_at, status_code, latency_ms, error, response_prefix
                 FROM delivery_attempts WHERE message_id = ?1 ORDER BY id",
            )?;
            let mut result = Vec::new();
            for delivery in deliveries {
                let rows = attempts
                    .query_map(params![delivery.id], |row| {
                        Ok(AttemptRow {
                            attempted_at: row.get(0)?,
                            status_code: row.get(1)?,
                            latency_ms: u64::try_from(row.get::<_, i64>(2)?).unwrap_or(0),
                            error: row.get(3)?,
                            response_prefix: row.get(4)?,
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                result.push((delivery, rows));
            }
            Ok(result)
        })
        .await
    }

    async fn retry_message(
        &self,
        message_id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (message_id, now) = (message_id.to_string(), timestamp(now));
        self.write(move |conn| {
            let changed = conn
                .prepare_cached(
                    "UPDATE outbox SET state = 'pending', next_attempt_at = ?2, lease_until = NULL
                     WHERE id = ?1 AND state IN ('dead', 'delivered') AND payload <> ''",
                )?
                .execute(params![message_id, now])?;
            Ok(changed == 1)
        })
        .await
    }

    async fn start_recovery(
        &self,
        vcs: &VcsId,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<RecoveryProgress, StoreError> {
        let (vcs, since, now) = (vcs.to_string(), timestamp(since), timestamp(now));
        let job_id = format!("rec_{}", uuid::Uuid::new_v4().simple());
        self.write(move |conn| {
            conn.prepare_cached("INSERT INTO recovery_jobs (id, vcs_id, since, created_at) VALUES (?1, ?2, ?3, ?4)")?
                .execute(params![job_id, vcs, since, now])?;
            conn.prepare_cached(
                "INSERT INTO recovery_job_messages (job_id, message_id)
                 SELECT ?1, id FROM outbox WHERE vcs_id = ?2 AND state = 'dead' AND created_at >= ?3",
            )?
            .execute(params![job_id, vcs, since])?;
            conn.prepare_cached(
                "UPDATE outbox SET state = 'pending', next_attempt_at = ?2, lease_until = NULL, attempts = 0
                 WHERE id IN (SELECT message_id FROM recovery_job_messages WHERE job_id = ?1)",
            )?
            .execute(params![job_id, now])?;
            recovery(conn, &job_id)?.ok_or_else(|| StoreError::Database("recovery job vanished".into()))
        })
        .await
    }

    async fn recovery_progress(
        &self,
        job_id: &str,
    ) -> Result<Option<RecoveryProgress>, StoreError> {
        let job_id = job_id.to_string();
        self.read(move |conn| recovery(conn, &job_id)).await
    }

    async fn prune_delivered_payloads(
        &self,
        before: DateTime<Utc>,
        batch: usize,
    ) -> Result<usize, StoreError> {
        let before = timestamp(before);
        let batch = i64::try_from(batch).unwrap_or(i64::MAX);
        self.write(move |conn| {
            Ok(conn
                .prepare_cached(
                    "UPDATE outbox SET payload = '' WHERE id IN (
                         SELECT id FROM outbox WHERE state = 'delivered' AND delivered_at < ?1 AND payload <> ''
                         LIMIT ?2)",
                )?
                .execute(params![before, batch])?)
        })
        .await
    }

    async fn outbox_stats(&self, now: DateTime<Utc>) -> Result<OutboxStats, StoreError> {
        self.read(move |conn| {
            let (pending, oldest, dead): (i64, Option<String>, i64) = conn.query_row(
                "SELECT (SELECT COUNT(*) FROM outbox WHERE state = 'pending'),
                        (SELECT MIN(created_at) FROM outbox WHERE state = 'pending'),
                        (SELECT COUNT(*) FROM outbox WHERE state = 'dead')",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )?;
            let age = match oldest.as_deref().map(parse_timestamp).transpose()? {
                Some(oldest) => (now - oldest).num_milliseconds().max(0) as f64 / 1000.0,
                None => 0.0,
            };
            Ok(OutboxStats {
                pending: usize::try_from(pending).unwrap_or(0),
                dead: usize::try_from(dead).unwrap_or(0),
                oldest_pending_age_seconds: age,
            })
        })
        .await
    }
}

const SUBSCRIPTION_COLUMNS: &str =
    "id, client_id, resource_type, criteria, endpoint, status, content";

/// The FROM and WHERE clauses of a resource search; parameters ?1 client, ?2 type, ?3 referral,
/// ?4 patient, ?5 code as `system|value`, ?6 code as a LIKE pattern.
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
         AND (?5 IS NULL OR code = ?5) AND (?6 IS NULL OR code LIKE ?6)"
    )
}

fn subscription_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<SubscriptionRow> {
    Ok(SubscriptionRow {
        id: row.get(0)?,
        client_id: row.get(1)?,
        resource_type: row.get(2)?,
        criteria: row.get(3)?,
        endpoint: row.get(4)?,
        status: row.get(5)?,
        content: row.get(6)?,
    })
}

fn load_referral(
    conn: &Connection,
    referral_id: &str,
) -> Result<Option<ReferralState>, StoreError> {
    type Row = (
        String,
        String,
        String,
        String,
        String,
        Option<String>,
        i64,
        String,
        String,
        String,
    );
    let row: Option<Row> = conn
        .prepare_cached(
            "SELECT client_id, vcs_id, patient_id, status, vcs_status, task_id, revision, record, created_at, updated_at
             FROM referrals WHERE id = ?1",
        )?
        .query_row(params![referral_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?))
        })
        .optional()?;
    let Some((
        client_id,
        vcs_id,
        patient_id,
        status,
        vcs_status,
        task_id,
        revision,
        record,
        created_at,
        updated_at,
    )) = row
    else {
        return Ok(None);
    };
    let service_request = current_resource(conn, &client_id, "ServiceRequest", referral_id)?
        .ok_or_else(|| {
            StoreError::Database(format!("referral {referral_id} has no ServiceRequest"))
        })?;
    let task = match &task_id {
        Some(task_id) => current_resource(conn, &client_id, "Task", task_id)?,
        None => None,
    };
    let mut statement = conn.prepare_cached(
        "SELECT target_kind, vcs_id, MAX(sequence) FROM outbox WHERE referral_id = ?1 GROUP BY target_kind, vcs_id",
    )?;
    let sequences = statement
        .query_map(params![referral_id], |r| {
            Ok((
                TargetKind::parse(&r.get::<_, String>(0)?),
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(ReferralState {
        referral_id: referral_id.to_string(),
        client_id,
        vcs_id,
        patient_id,
        status,
        vcs_status,
        revision,
        record,
        created_at: parse_timestamp(&created_at)?,
        updated_at: parse_timestamp(updated_at.as_str())?,
        service_request,
        task,
        sequences,
    }))
}

fn apply_change(conn: &Connection, change: &ReferralChange) -> Result<ChangeOutcome, StoreError> {
    let at = timestamp(change.at);
    let (client, patient_id): (String, String) = match conn
        .prepare_cached(
            "SELECT client_id, patient_id FROM referrals WHERE id = ?1 AND revision = ?2",
        )?
        .query_row(params![change.referral_id, change.expected_revision], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?
    {
        Some(found) => found,
        None => return Ok(ChangeOutcome::Conflict),
    };
    conn.prepare_cached(
        "UPDATE referrals SET revision = revision + 1, updated_at = ?2,
                status = COALESCE(?3, status), vcs_status = COALESCE(?4, vcs_status)
         WHERE id = ?1",
    )?
    .execute(params![
        change.referral_id,
        at,
        change.status,
        change.vcs_status
    ])?;
    for resource in &change.resources {
        insert_resource(conn, resource, &client, &change.referral_id, &at)?;
    }
    for message in &change.outbox {
        insert_outbox(conn, message, &change.referral_id, &at)?;
    }
    for entry in &change.audit {
        insert_audit(
            conn,
            entry,
            &patient_id,
            change.correlation_id.as_deref(),
            &at,
        )?;
    }
    if let Some((owner, key, response)) = &change.idempotency {
        conn.prepare_cached(
            "INSERT INTO idempotency_keys (owner, key, request_hash, status, body, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![owner, key, response.request_hash, response.status, response.body, at])?;
    }
    Ok(ChangeOutcome::Applied)
}

const DELIVERY_COLUMNS: &str = "id, referral_id, vcs_id, event_type, sequence, state, attempts,
     CASE WHEN state = 'pending' THEN next_attempt_at END, created_at, delivered_at, last_error";

fn delivery_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Delivery> {
    Ok(Delivery {
        id: row.get(0)?,
        referral_id: row.get(1)?,
        vcs_id: row.get(2)?,
        event_type: row.get(3)?,
        sequence: row.get(4)?,
        state: row.get(5)?,
        attempts: row.get(6)?,
        next_attempt_at: row.get(7)?,
        created_at: row.get(8)?,
        delivered_at: row.get(9)?,
        last_error: row.get(10)?,
    })
}

fn recovery(conn: &Connection, job_id: &str) -> Result<Option<RecoveryProgress>, StoreError> {
    let job: Option<(String, String)> = conn
        .prepare_cached("SELECT vcs_id, since FROM recovery_jobs WHERE id = ?1")?
        .query_row(params![job_id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let Some((vcs_id, since)) = job else {
        return Ok(None);
    };
    let mut counts = conn.prepare_cached(
        "SELECT o.state, COUNT(*) FROM recovery_job_messages m JOIN outbox o ON o.id = m.message_id
         WHERE m.job_id = ?1 GROUP BY o.state",
    )?;
    let mut progress = RecoveryProgress {
        job_id: job_id.to_string(),
        vcs_id,
        since,
        total: 0,
        pending: 0,
        delivered: 0,
        dead: 0,
        done: true,
    };
    let rows = counts.query_map(params![job_id], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
    })?;
    for row in rows {
        let (state, count) = row?;
        progress.add(&state, usize::try_from(count).unwrap_or(0));
    }
    Ok(Some(progress))
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

#[cfg(test)]
mod tests {
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

    /// Jobs hear the outcome of the WAL fsync that covers them, not just of their commit.
    #[test]
    fn batches_are_answered_with_the_outcome_of_their_wal_sync() {
        let dir = tempfile::tempdir().expect("temp dir");
        let present = dir.path().join("gateway.db-wal");
        std::fs::write(&present, b"frames").expect("a WAL file");
        for (wal, synced) in [(present, true), (dir.path().join("gone-wal"), false)] {
            let (to_syncer, batches) = std::sync::mpsc::channel();
            let (told, heard) = std::sync::mpsc::channel();
            let completion: Completion = Box::new(move |outcome| {
                let _ = told.send(outcome);
            });
            to_syncer
                .send(vec![(completion, Ok(()))])
                .expect("syncer queue");
            drop(to_syncer);
            run_syncer(wal, batches);
            assert_eq!(heard.recv().expect("an answer").is_ok(), synced);
        }
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

    /// A batch whose transaction cannot begin (another process holds the write lock) runs none
    /// of its jobs: each requester hears why, and no row it would have written is there.
    #[test]
    fn a_batch_that_cannot_begin_writes_nothing_and_says_so() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("gateway.db");
        let writer = Connection::open(&path).expect("writer");
        writer
            .busy_timeout(std::time::Duration::ZERO)
            .expect("no waiting");
        writer
            .execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (x INTEGER);")
            .expect("schema");
        let other = Connection::open(&path).expect("another connection");
        other.execute_batch("BEGIN IMMEDIATE").expect("lock held");
        let (job, answer) = insert_job(1);
        // A job that would not need the lock: it must not run either.
        let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (reply, _) = oneshot::channel();
        let marker = ran.clone();
        let op = move |_: &Connection| {
            marker.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        };
        let reader: Job = Box::new(PendingWrite { op, reply });
        let outcomes = commit_batch(&writer, vec![job, reader]);
        assert!(outcomes.is_empty(), "nothing to sync");
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst), "a job ran");
        let heard = answer.blocking_recv().expect("an answer");
        assert!(
            matches!(&heard, Err(StoreError::Unavailable(reason)) if reason.contains("locked")),
            "{heard:?}"
        );
        other.execute_batch("ROLLBACK").expect("lock released");
        let rows: i64 = writer
            .query_row("SELECT count(*) FROM t", [], |row| row.get(0))
            .expect("count");
        assert_eq!(rows, 0);
    }

    fn insert_job(x: i64) -> (Job, oneshot::Receiver<Result<(), StoreError>>) {
        let (reply, answer) = oneshot::channel();
        let op = move |conn: &Connection| {
            conn.execute("INSERT INTO t (x) VALUES (?1)", [x])?;
            Ok(())
        };
        (Box::new(PendingWrite { op, reply }), answer)
    }

    /// A transaction some failed batch left open is rolled back, not committed with the next.
    #[test]
    fn a_transaction_left_open_is_rolled_back_before_the_next_batch() {
        let writer = Connection::open_in_memory().expect("writer");
        writer
            .execute_batch("CREATE TABLE t (x INTEGER); BEGIN; INSERT INTO t (x) VALUES (1);")
            .expect("a stale transaction");
        let (job, answer) = insert_job(2);
        for (completion, outcome) in commit_batch(&writer, vec![job]) {
            completion(outcome);
        }
        assert!(answer.blocking_recv().expect("an answer").is_ok());
        let rows: Vec<i64> = writer
            .prepare("SELECT x FROM t")
            .and_then(|mut rows| rows.query_map([], |row| row.get(0))?.collect())
            .expect("rows");
        assert_eq!(rows, vec![2]);
    }

    #[test]
    fn bodies_are_kept_in_lz4_frames_that_unpack_to_the_bytes_received() {
        let body = br#"{"resourceType": "Bundle",   "type": "transaction"}"#.repeat(50);
        let kept = compress(&body);
        assert_eq!(kept.encoding, "lz4");
        assert!(
            kept.bytes.len() < body.len() / 4,
            "{} bytes",
            kept.bytes.len()
        );
        let mut unpacked = Vec::new();
        std::io::Read::read_to_end(
            &mut lz4_flex::frame::FrameDecoder::new(kept.bytes.as_slice()),
            &mut unpacked,
        )
        .expect("an LZ4 frame");
        assert_eq!(unpacked, body);
    }
}
