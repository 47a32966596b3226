//! PostgreSQL for tests: every test gets a schema of its own in the run's database, so tests run
//! in parallel without seeing each other's rows, and the schema is dropped afterwards.
//!
//! The database is `SP_TEST_POSTGRES` (`.ci/run` creates a fresh one per run and sets it),
//! or `postgres://postgres@127.0.0.1:5432/test`, the machine's database, when unset.
#![allow(dead_code)]

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::Executor;

pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The database tests use.
pub fn server_url() -> String {
    std::env::var("SP_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_URL.to_string())
}

/// A schema of its own; dropped (with everything in it) when this goes out of scope.
pub struct TestSchema {
    pub name: String,
    /// The database URL with `search_path` set to the schema: what `[storage] url` takes.
    pub url: String,
}

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(future)
}

async fn execute(sql: String) {
    let server = server_url();
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect(&server)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot reach PostgreSQL at {server}: {e}. Start it with \
                 `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, or \
                 point SP_TEST_POSTGRES at a database"
            )
        });
    pool.execute(sqlx::AssertSqlSafe(sql))
        .await
        .expect("schema statement");
    pool.close().await;
}

impl TestSchema {
    /// Creates a fresh, empty schema (from sync or async code: it runs on a thread of its own).
    pub fn create() -> TestSchema {
        let name = format!("sp_test_{}", uuid::Uuid::new_v4().simple());
        let statement = format!("CREATE SCHEMA {name}");
        std::thread::spawn(move || block_on(execute(statement)))
            .join()
            .expect("create schema");
        let server = server_url();
        let separator = if server.contains('?') { '&' } else { '?' };
        let url = format!("{server}{separator}options=-c%20search_path%3D{name}");
        TestSchema { name, url }
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let statement = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name);
        // Best effort: a test that failed may have left connections that block the drop briefly.
        let _ = std::thread::spawn(move || block_on(execute(statement))).join();
    }
}
