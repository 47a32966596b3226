//! SQLite store: WAL, one writer thread that group-commits, fsync and checkpoints beside it.
//!
//! SQLite allows one writer at a time, and a durable commit costs an fsync. The writer thread
//! takes every write waiting in its queue, applies each inside its own SAVEPOINT (so one
//! failure undoes only its own rows), and commits them together: one fsync for many referrals.
//! The fsync itself runs on a syncer thread while the writer goes on with the next batch, and
//! nobody is answered before the fsync covering their commit has returned, so a `201` still
//! means "on disk". A third thread copies committed pages into the database file (checkpoints).
//! Reads go through a small pool of connections and never wait for the writer.

mod accounts;
mod admin;
mod audit;
mod dashboard;
mod directory;
mod engine;
mod feeds;
mod outbox;
mod referrals;
mod reports;
mod resources;
mod subscriptions;
mod tokens;

use std::path::Path;

use deadpool_sqlite::{Config as PoolConfig, Pool, Runtime};
use rusqlite::Connection;
use rusqlite_migration::{Migrations, M};
use tokio::sync::{mpsc, oneshot};

use self::engine::{
    run_checkpointer, run_syncer, run_writer, spawn_thread, Job, PendingWrite, Poison,
};
use super::StoreError;

/// Statements the writer keeps prepared.
const WRITER_STATEMENTS: usize = 64;
/// Writes queued beyond this wait (back-pressure on request handlers rather than memory growth).
const QUEUE_CAPACITY: usize = 8192;
/// WAL pages (256 MiB) after which the writer finishes a checkpoint itself, right after a commit.
/// Under steady load the checkpointer never catches up with the last commit, and the WAL starts
/// over (instead of growing) only when a checkpoint has copied everything: the checkpointer has
/// copied nearly all of it by then, so the writer copies a short tail. That checkpoint, and the
/// WAL's restart after it, each fsync while intake waits, so they should be rare: at 16 MiB they
/// came ten times a second at full load, and the writer spent a fifth of its time blocked on the
/// disk (BENCHMARKS.md, 2026-12-03). Only the part of the WAL not yet copied is ever searched
/// for a page, so a longer WAL costs readers nothing while the checkpointer keeps up.
const WRITER_CHECKPOINT_PAGES: u32 = 65536;

pub struct SqliteStore {
    reads: Pool,
    writes: mpsc::Sender<Job>,
    /// Set once a commit or fsync failed: every write is refused from then on.
    poison: Poison,
    /// The database file (its WAL and free disk are measured beside it).
    path: std::path::PathBuf,
}

/// The schema, in order: (name, SQL). The file records how far it got in `user_version`.
const MIGRATIONS: [(&str, &str); 16] = [
    ("init", include_str!("../migrations/sqlite/001_init.sql")),
    (
        "delivery",
        include_str!("../migrations/sqlite/002_delivery.sql"),
    ),
    (
        "closed_loop",
        include_str!("../migrations/sqlite/003_closed_loop.sql"),
    ),
    (
        "tokens",
        include_str!("../migrations/sqlite/004_tokens.sql"),
    ),
    (
        "lean_intake",
        include_str!("../migrations/sqlite/005_lean_intake.sql"),
    ),
    (
        "type_search",
        include_str!("../migrations/sqlite/006_type_search.sql"),
    ),
    (
        "patient_search",
        include_str!("../migrations/sqlite/007_patient_search.sql"),
    ),
    (
        "idempotency_scope",
        include_str!("../migrations/sqlite/008_idempotency_scope.sql"),
    ),
    (
        "shared_notifications",
        include_str!("../migrations/sqlite/009_shared_notifications.sql"),
    ),
    (
        "directory",
        include_str!("../migrations/sqlite/010_directory.sql"),
    ),
    (
        "accounts",
        include_str!("../migrations/sqlite/011_accounts.sql"),
    ),
    (
        "onward",
        include_str!("../migrations/sqlite/012_onward.sql"),
    ),
    (
        "directory_feeds",
        include_str!("../migrations/sqlite/013_directory_feeds.sql"),
    ),
    (
        "reports",
        include_str!("../migrations/sqlite/014_reports.sql"),
    ),
    (
        "commissioner_accounts",
        include_str!("../migrations/sqlite/015_commissioner_accounts.sql"),
    ),
    (
        "dashboard",
        include_str!("../migrations/sqlite/018_dashboard.sql"),
    ),
];

pub(super) fn migrations() -> Migrations<'static> {
    Migrations::new(MIGRATIONS.iter().map(|(_, sql)| M::up(sql)).collect())
}

pub(super) fn open_error(path: &str, reason: impl std::fmt::Display) -> StoreError {
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

pub(super) fn apply_migrations(conn: &mut Connection, path: &str) -> Result<(), StoreError> {
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

#[async_trait::async_trait]
impl super::traits::Health for SqliteStore {
    async fn migrations_missing(&self) -> Result<usize, StoreError> {
        let applied = self.read(schema_version).await?;
        Ok(MIGRATIONS.len().saturating_sub(applied))
    }
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
        let poison = Poison::default();
        let syncer_poison = poison.clone();
        spawn_thread(path, "sqlite-syncer", move || {
            run_syncer(wal_path, batches, syncer_poison)
        })?;
        let (writes, queue) = mpsc::channel(QUEUE_CAPACITY);
        let writer_poison = poison.clone();
        spawn_thread(path, "sqlite-writer", move || {
            run_writer(writer, queue, to_syncer, committed, writer_poison)
        })?;
        let reads = PoolConfig::new(path)
            .create_pool(Runtime::Tokio1)
            .map_err(|e| open_error(path, e))?;
        Ok(SqliteStore {
            reads,
            writes,
            poison,
            path: std::path::PathBuf::from(path),
        })
    }

    /// Runs `op` in the writer thread, inside the next batch; returns once it is committed.
    async fn write<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        if let Some(reason) = self.poison.reason() {
            return Err(StoreError::Unavailable(reason));
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::traits::Referrals;

    /// A real failure of the WAL's fsync (here: the WAL file is gone when the syncer first
    /// opens it) refuses that write and every one after it, and the store says why.
    #[tokio::test]
    async fn a_failed_wal_sync_refuses_every_later_write() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("gateway.db");
        let path = path.to_str().expect("a UTF-8 path");
        let store = SqliteStore::open(path, true).await.expect("open");
        assert_eq!(store.write_refusal(), None);
        std::fs::remove_file(format!("{path}-wal")).expect("the WAL file removed");
        let write = || store.write(|conn| Ok(conn.execute("DELETE FROM outbox", [])?));
        for _ in 0..2 {
            let refused = write().await;
            assert!(
                matches!(refused, Err(StoreError::Unavailable(_))),
                "{refused:?}"
            );
        }
        let reason = store.write_refusal().expect("the store says why");
        assert!(reason.contains("the WAL"), "{reason}");
    }
}
