//! The writer thread and its helpers: one writer that group-commits, a syncer that fsyncs the WAL
//! before anyone is answered, a checkpointer beside them; and how SQLite cells become values.

use std::path::Path;

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::open_error;
use crate::store::rows::Cells;
use crate::store::{parse_timestamp, StoreError};

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Database(Box::new(e))
    }
}

impl Cells for rusqlite::Row<'_> {
    fn text(&self, i: usize) -> Result<String, StoreError> {
        Ok(self.get(i)?)
    }

    fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        Ok(self.get(i)?)
    }

    fn int(&self, i: usize) -> Result<i64, StoreError> {
        Ok(self.get(i)?)
    }

    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        Ok(self.get(i)?)
    }

    fn time(&self, i: usize) -> Result<DateTime<Utc>, StoreError> {
        parse_timestamp(&self.get::<_, String>(i)?)
    }

    fn opt_time(&self, i: usize) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.get::<_, Option<String>>(i)?
            .as_deref()
            .map(parse_timestamp)
            .transpose()
    }
}

/// Set for good once a commit failed with an I/O error or the WAL's fsync failed. After a
/// failed fsync the kernel may have dropped the dirty pages it could not write and report the
/// next fsync as a success, so nothing committed since can be promised to be on disk: the writer
/// refuses every write from then on (503), instead of answering `201` for data it may lose, and
/// the store reports why until the process is restarted (SQLite's recovery then starts from what
/// the disk really holds).
#[derive(Clone, Default)]
pub(super) struct Poison(std::sync::Arc<std::sync::OnceLock<String>>);

impl Poison {
    pub(super) fn set(&self, reason: &str) {
        if self.0.set(reason.to_string()).is_ok() {
            tracing::error!(
                reason,
                "SQLite writes are refused from now on: restart the gateway once the disk is sound"
            );
        }
    }

    /// Why writes are refused, if they are.
    pub(super) fn reason(&self) -> Option<String> {
        self.0
            .get()
            .map(|reason| format!("writes are refused after a storage failure ({reason})"))
    }
}

/// Whether a failed COMMIT means the disk failed (rather than, say, a constraint).
fn is_io_error(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::SystemIoFailure)
}

/// The most writes one commit carries; bounds the time a batch holds the write lock.
const MAX_BATCH: usize = 512;
/// The checkpointer's rest between passes: under load, each pass then copies about this much of
/// the writer's work, and a page changed by many commits meanwhile is copied once.
const CHECKPOINT_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);
/// A write waiting for the writer thread.
pub(super) type Job = Box<dyn WriteJob>;
pub(super) type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;

/// What the writer can do with a queued write: run it inside the batch's transaction, or, when
/// no transaction could be opened, tell its requester without running it (run outside a
/// transaction, its rows would be committed on their own while the requester heard "failed").
pub(super) trait WriteJob: Send {
    /// Runs inside a savepoint; says whether it succeeded, and hands back what to do once the
    /// batch's commit (and the fsync covering it) is known.
    fn run(self: Box<Self>, conn: &Connection) -> (bool, Completion);
    fn abandon(self: Box<Self>, reason: String);
}

/// A store operation and the requester waiting for its result.
pub(super) struct PendingWrite<T, F> {
    pub(super) op: F,
    pub(super) reply: oneshot::Sender<Result<T, StoreError>>,
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

pub(super) fn spawn_thread(
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
pub(super) fn run_writer(
    conn: Connection,
    mut queue: mpsc::Receiver<Job>,
    syncer: std::sync::mpsc::Sender<Outcomes>,
    committed: std::sync::mpsc::SyncSender<()>,
    poison: Poison,
) {
    while let Some(first) = queue.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Some(reason) = poison.reason() {
            for job in batch {
                job.abandon(reason.clone());
            }
            continue;
        }
        let outcomes = commit_batch(&conn, batch, &poison);
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
pub(super) fn run_checkpointer(
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
pub(super) type Outcomes = Vec<(Completion, Result<(), String>)>;

pub(super) fn commit_batch(conn: &Connection, batch: Vec<Job>, poison: &Poison) -> Outcomes {
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
    let commit = conn.execute_batch("COMMIT").map_err(|e| {
        if is_io_error(&e) {
            poison.set(&e.to_string());
        }
        e.to_string()
    });
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
///
/// A failed fsync poisons the store ([`Poison`]): this batch and every later one hear "failed",
/// even should a later fsync succeed.
pub(super) fn run_syncer(
    wal_path: std::path::PathBuf,
    batches: std::sync::mpsc::Receiver<Outcomes>,
    poison: Poison,
) {
    let mut wal = None;
    while let Ok(first) = batches.recv() {
        let mut ready = vec![first];
        ready.extend(batches.try_iter());
        let synced = match poison.reason() {
            Some(reason) => Err(reason),
            None => sync_wal(&mut wal, &wal_path).inspect_err(|e| poison.set(e)),
        };
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
        None => wal.insert(
            std::fs::File::open(path)
                .map_err(|e| format!("opening the WAL for its fsync failed: {e}"))?,
        ),
    };
    file.sync_all()
        .map_err(|e| format!("syncing the WAL failed: {e}"))
}

/// Runs a statement without parameters or rows from the statement cache: savepoints open and
/// close once per job, and parsing them each time costs more than running them.
pub(super) fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

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
            let poison = Poison::default();
            run_syncer(wal, batches, poison.clone());
            assert_eq!(heard.recv().expect("an answer").is_ok(), synced);
            assert_eq!(poison.reason().is_none(), synced, "a failed fsync poisons");
        }
    }

    /// Once an fsync failed, no later batch is run or answered "done", even if the disk
    /// seems fine again: the writer abandons every job, and the syncer fails every batch.
    #[test]
    fn a_poisoned_writer_refuses_every_later_write() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("gateway.db");
        let conn = Connection::open(&path).expect("writer");
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (x INTEGER);")
            .expect("schema");
        let poison = Poison::default();
        poison.set("syncing the WAL failed: Input/output error (os error 5)");
        let (writes, queue) = mpsc::channel(4);
        let (to_syncer, batches) = std::sync::mpsc::channel();
        let (committed, _commits) = std::sync::mpsc::sync_channel(1);
        let (job, answer) = insert_job(1);
        writes.blocking_send(job).expect("queued");
        drop(writes);
        run_writer(conn, queue, to_syncer, committed, poison.clone());
        let heard = answer.blocking_recv().expect("an answer");
        assert!(
            matches!(&heard, Err(StoreError::Unavailable(reason)) if reason.contains("refused")),
            "{heard:?}"
        );
        assert!(batches.try_recv().is_err(), "nothing was committed");
        let rows: i64 = Connection::open(&path)
            .and_then(|c| c.query_row("SELECT count(*) FROM t", [], |row| row.get(0)))
            .expect("count");
        assert_eq!(rows, 0);
        // The syncer, too, answers a batch that reached it after the failure with "failed",
        // though this WAL would sync.
        let wal = dir.path().join("gateway.db-wal");
        std::fs::write(&wal, b"frames").expect("a WAL file");
        let (to_syncer, batches) = std::sync::mpsc::channel();
        let (told, heard) = std::sync::mpsc::channel();
        let completion: Completion = Box::new(move |outcome| {
            let _ = told.send(outcome);
        });
        to_syncer.send(vec![(completion, Ok(()))]).expect("queued");
        drop(to_syncer);
        run_syncer(wal, batches, poison);
        assert!(heard.recv().expect("an answer").is_err());
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
        let outcomes = commit_batch(&writer, vec![job, reader], &Poison::default());
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
        for (completion, outcome) in commit_batch(&writer, vec![job], &Poison::default()) {
            completion(outcome);
        }
        assert!(answer.blocking_recv().expect("an answer").is_ok());
        let rows: Vec<i64> = writer
            .prepare("SELECT x FROM t")
            .and_then(|mut rows| rows.query_map([], |row| row.get(0))?.collect())
            .expect("rows");
        assert_eq!(rows, vec![2]);
    }
}
