//! PostgreSQL store: several gateway replicas share one database.
//!
//! Every rule that must hold across replicas lives in the database, not in a process:
//! - a create runs in one transaction; the unique keys on GP identifiers and BaRS message ids
//!   settle a race between replicas (the loser sees a unique violation, looks again, and answers
//!   with what the winner committed);
//! - a change to a referral applies only if its revision is still the one it was computed from;
//! - a delivery worker claims messages with `FOR UPDATE SKIP LOCKED` and a lease, so two
//!   replicas never hold the same message, and a replica that dies releases its messages when
//!   the lease expires;
//! - `NOTIFY` at commit wakes idle workers on every replica (`LISTEN` in [`watch_for_work`]).
//!
//! A database that cannot be reached is `StoreError::Unavailable` (a `503` for the caller); the
//! pool replaces broken connections by itself, so the gateway recovers without a restart.
//!
//! [`watch_for_work`]: crate::store::Outbox::watch_for_work

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

use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::SqlSafeStr;

use self::engine::is_transient;
use super::StoreError;
use crate::config::{redact_password, StorageConfig};

/// The channel `NOTIFY` uses when outbox messages are committed, followed by the schema's name:
/// gateways on other schemas of the same database are not woken for nothing.
const WORK_CHANNEL: &str = "sp_gateway_outbox:";
/// How often a create is tried when concurrent creates keep colliding on a unique key.
const CREATE_ATTEMPTS: usize = 3;

pub struct PostgresStore {
    pool: PgPool,
    work: engine::WorkSignal,
    health: dashboard::HealthBuffer,
}

/// The schema, in order. Applied under an advisory lock, so replicas starting together take
/// turns, and recorded in `_sqlx_migrations`.
fn migrator() -> Migrator {
    let migration = |version, name: &'static str, sql: &'static str| {
        Migration::new(
            version,
            name.into(),
            MigrationType::Simple,
            sql.into_sql_str(),
            false,
        )
    };
    Migrator::with_migrations(vec![
        migration(
            1,
            "init",
            include_str!("../migrations/postgres/0001_init.sql"),
        ),
        migration(
            2,
            "tokens",
            include_str!("../migrations/postgres/0002_tokens.sql"),
        ),
        migration(
            3,
            "outbox_claim_index",
            include_str!("../migrations/postgres/0003_outbox_claim_index.sql"),
        ),
        migration(
            4,
            "idempotency_scope",
            include_str!("../migrations/postgres/0004_idempotency_scope.sql"),
        ),
        migration(
            5,
            "shared_notifications",
            include_str!("../migrations/postgres/0005_shared_notifications.sql"),
        ),
        migration(
            6,
            "directory",
            include_str!("../migrations/postgres/0006_directory.sql"),
        ),
        migration(
            7,
            "accounts",
            include_str!("../migrations/postgres/0007_accounts.sql"),
        ),
        migration(
            8,
            "onward",
            include_str!("../migrations/postgres/0008_onward.sql"),
        ),
        migration(
            9,
            "directory_feeds",
            include_str!("../migrations/postgres/0009_directory_feeds.sql"),
        ),
        migration(
            10,
            "reports",
            include_str!("../migrations/postgres/0010_reports.sql"),
        ),
        migration(
            11,
            "commissioner_accounts",
            include_str!("../migrations/postgres/0011_commissioner_accounts.sql"),
        ),
        migration(
            13,
            "outbox_leased_index",
            include_str!("../migrations/postgres/0013_outbox_leased_index.sql"),
        ),
        migration(
            14,
            "dashboard",
            include_str!("../migrations/postgres/0014_dashboard.sql"),
        ),
    ])
}

fn open_error(url: &str, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Open {
        url: redact_password(url),
        reason: reason.to_string(),
    }
}

/// Connects to the database, waiting up to `start_timeout` for it to come up. Requests run
/// under `statement_timeout`; migrations (`None`) may take as long as they need.
async fn connect(
    url: &str,
    settings: &StorageConfig,
    statement_timeout: Option<Duration>,
) -> Result<PgPool, StoreError> {
    let mut options = PgConnectOptions::from_str(url).map_err(|e| open_error(url, e))?;
    if let Some(timeout) = statement_timeout {
        options = options.options([("statement_timeout", timeout.as_millis().to_string())]);
    }
    let pool = PgPoolOptions::new()
        .max_connections(settings.pool_size)
        .acquire_timeout(settings.acquire_timeout)
        .connect_lazy_with(options);
    let deadline = Instant::now() + settings.start_timeout;
    loop {
        match pool.acquire().await {
            Ok(_) => return Ok(pool),
            Err(e) if Instant::now() < deadline && is_transient(&e) => {
                tracing::warn!(error = %e, "PostgreSQL is not reachable yet; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(open_error(url, e)),
        }
    }
}

/// Applies pending migrations; returns the descriptions of those applied now.
pub async fn migrate(url: &str, settings: &StorageConfig) -> Result<Vec<String>, StoreError> {
    let pool = connect(url, settings, None).await?;
    let before = applied_versions(&pool).await?;
    migrator()
        .run(&pool)
        .await
        .map_err(|e| open_error(url, format!("migration failed: {e}")))?;
    let applied = migrator()
        .iter()
        .filter(|m| !before.contains(&m.version))
        .map(|m| format!("{} {}", m.version, m.description))
        .collect();
    pool.close().await;
    Ok(applied)
}

/// Versions recorded as applied (none when the database was never migrated).
async fn applied_versions(pool: &PgPool) -> Result<Vec<i64>, StoreError> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    if !exists {
        return Ok(Vec::new());
    }
    Ok(
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(pool)
            .await?,
    )
}

#[async_trait::async_trait]
impl super::traits::Health for PostgresStore {
    async fn migrations_missing(&self) -> Result<usize, StoreError> {
        let applied = applied_versions(&self.pool).await?;
        Ok(migrator()
            .iter()
            .filter(|m| !applied.contains(&m.version))
            .count())
    }
}

impl PostgresStore {
    /// Connects (waiting for the database at start), then migrates or checks the schema.
    pub async fn open(url: &str, settings: &StorageConfig) -> Result<Self, StoreError> {
        if settings.migrate_on_start {
            for migration in migrate(url, settings).await? {
                tracing::info!(migration = %migration, "applied a database migration");
            }
        }
        let pool = connect(url, settings, Some(settings.statement_timeout)).await?;
        if !settings.migrate_on_start {
            let applied = applied_versions(&pool).await?;
            let missing: Vec<i64> = migrator()
                .iter()
                .map(|m| m.version)
                .filter(|v| !applied.contains(v))
                .collect();
            if !missing.is_empty() {
                return Err(open_error(
                    url,
                    format!(
                        "migrations {missing:?} are not applied and storage.migrate_on_start is \
                         off: run `sp-gateway migrate` first"
                    ),
                ));
            }
        }
        let work = engine::WorkSignal::start(pool.clone());
        Ok(PostgresStore {
            pool,
            work,
            health: dashboard::HealthBuffer::default(),
        })
    }
}
