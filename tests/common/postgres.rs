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

/// Runs one statement on the test server from sync or async code (on a thread of its own).
fn run(statement: String) -> std::thread::Result<()> {
    std::thread::spawn(move || block_on(execute(statement))).join()
}

impl TestSchema {
    /// Creates a fresh, empty schema (from sync or async code: it runs on a thread of its own).
    pub fn create() -> TestSchema {
        let name = format!("sp_test_{}", uuid::Uuid::new_v4().simple());
        run(format!("CREATE SCHEMA {name}")).expect("create schema");
        let server = server_url();
        let separator = if server.contains('?') { '&' } else { '?' };
        let url = format!("{server}{separator}options=-c%20search_path%3D{name}");
        TestSchema { name, url }
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        // Best effort: a test that failed may have left connections that block the drop briefly.
        let _ = run(format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
    }
}

/// A database of its own on the test server (for a test that drops it under a running gateway);
/// dropped, if still there, when this goes out of scope.
pub struct TestDatabase {
    pub name: String,
    /// What `[storage] url` takes.
    pub url: String,
}

impl TestDatabase {
    pub fn create() -> TestDatabase {
        let name = format!("sp_test_{}", uuid::Uuid::new_v4().simple());
        run(format!("CREATE DATABASE {name}")).expect("create database");
        let mut url = url::Url::parse(&server_url()).expect("SP_TEST_POSTGRES is a URL");
        url.set_path(&name);
        TestDatabase {
            name,
            url: url.to_string(),
        }
    }

    /// Drops the database now, closing every connection to it (`WITH (FORCE)`).
    pub fn drop_now(&self) {
        run(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .expect("drop database");
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let _ = run(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}
