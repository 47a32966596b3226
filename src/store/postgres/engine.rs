//! Connections, errors and notifications: what every PostgreSQL aggregate shares.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnection, PgListener, PgPool, PgRow};
use sqlx::Row;
use tokio::sync::Notify;

use super::WORK_CHANNEL;
use crate::store::rows::Cells;
use crate::store::StoreError;

/// A connection, or the transaction open on one.
pub(super) type Tx = PgConnection;

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if is_transient(&e) {
            StoreError::Unavailable(e.to_string())
        } else {
            StoreError::Database(Box::new(e))
        }
    }
}

/// Errors that mean "the database cannot be reached or asked us to come back later": the
/// request may be retried and nothing was committed by it (or, for a lost commit, a retry with
/// `If-None-Exist` finds what was).
pub(super) fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 08: connection exception; 57P0x: shutting down / starting up; 57014: cancelled
            // by statement_timeout; 53300: too many connections; 40001/40P01: serialization
            // failure, deadlock (retry the request).
            code.starts_with("08")
                || code.starts_with("57P")
                || matches!(code.as_ref(), "57014" | "53300" | "40001" | "40P01")
        }),
        _ => false,
    }
}

/// A unique key refused a row: another replica committed the same key first.
pub(super) fn is_unique_violation(e: &StoreError) -> bool {
    matches!(e, StoreError::Database(cause)
        if matches!(cause.downcast_ref::<sqlx::Error>(), Some(sqlx::Error::Database(db)) if db.is_unique_violation()))
}

impl Cells for PgRow {
    fn text(&self, i: usize) -> Result<String, StoreError> {
        Ok(self.try_get(i)?)
    }

    fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(i)?)
    }

    /// `BIGINT`, or `INTEGER` (HTTP status codes).
    fn int(&self, i: usize) -> Result<i64, StoreError> {
        match self.try_get::<i64, _>(i) {
            Ok(n) => Ok(n),
            Err(_) => Ok(i64::from(self.try_get::<i32, _>(i)?)),
        }
    }

    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        match self.try_get::<Option<i64>, _>(i) {
            Ok(n) => Ok(n),
            Err(_) => Ok(self.try_get::<Option<i32>, _>(i)?.map(i64::from)),
        }
    }

    fn time(&self, i: usize) -> Result<DateTime<Utc>, StoreError> {
        Ok(self.try_get(i)?)
    }

    fn opt_time(&self, i: usize) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self.try_get(i)?)
    }
}

/// Tells every replica's worker that messages are waiting (delivered when the transaction
/// commits; nothing is sent if it rolls back).
pub(super) async fn notify_work(conn: &mut Tx) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1 || current_schema(), '')")
        .bind(WORK_CHANNEL)
        .execute(conn)
        .await?;
    Ok(())
}

/// Tells every replica's worker, after a commit, that messages are waiting: one `NOTIFY` for
/// all the commits announced while the previous one was being sent.
///
/// Not `NOTIFY` inside each referral's transaction: PostgreSQL holds one lock for every
/// notifying transaction of the cluster from its commit until its WAL is flushed, so notifying
/// intake committed one referral per disk flush, and its connections, waiting in that queue,
/// starved the delivery workers of the pool. A notice lost with a crash between the commit
/// and the `NOTIFY` only delays its messages to the workers' next look (30 s at most).
pub(super) struct WorkSignal(tokio::sync::mpsc::Sender<()>);

impl WorkSignal {
    /// Starts the task that sends the notices on `pool`; it ends when the store is dropped.
    pub(super) fn start(pool: PgPool) -> WorkSignal {
        // Room for one notice: while one is being sent, any number of announcements wait as one.
        let (requests, mut waiting) = tokio::sync::mpsc::channel(1);
        tokio::spawn(async move {
            while waiting.recv().await.is_some() {
                let sent = sqlx::query("SELECT pg_notify($1 || current_schema(), '')")
                    .bind(WORK_CHANNEL)
                    .execute(&pool)
                    .await;
                if let Err(e) = sent {
                    // The listeners look for work themselves when they reconnect.
                    tracing::warn!(error = %e, "cannot announce outbox work");
                }
            }
        });
        WorkSignal(requests)
    }

    /// Announces work committed just now (a notice already waiting covers it).
    pub(super) fn announce(&self) {
        let _ = self.0.try_send(());
    }
}

/// Listens for committed outbox work from any replica and wakes the local worker. A lost
/// connection is re-established by the listener; notifications sent meanwhile are lost, so
/// the worker is woken after every reconnect to look for itself.
pub(super) async fn listen_for_work(pool: PgPool, wake: Arc<Notify>) {
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for outbox work yet; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let channel: Result<String, _> = sqlx::query_scalar("SELECT $1 || current_schema()")
            .bind(WORK_CHANNEL)
            .fetch_one(&pool)
            .await;
        let listening = match channel {
            Ok(channel) => listener.listen(&channel).await,
            Err(e) => Err(e),
        };
        if let Err(e) = listening {
            tracing::warn!(error = %e, "cannot listen for outbox work yet; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        wake.notify_one();
        loop {
            match listener.try_recv().await {
                Ok(Some(_)) => wake.notify_one(),
                // The connection was lost; the next call reconnects.
                Ok(None) => wake.notify_one(),
                Err(e) => {
                    tracing::warn!(error = %e, "lost the outbox listener; reconnecting");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    break;
                }
            }
        }
    }
}
