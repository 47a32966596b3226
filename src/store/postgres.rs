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
//! [`watch_for_work`]: Store::watch_for_work

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, QueryBuilder, Row, SqlSafeStr};
use tokio::sync::Notify;

use super::*;
use crate::config::{redact_password, StorageConfig};

/// The channel `NOTIFY` uses when outbox messages are committed, followed by the schema's name:
/// gateways on other schemas of the same database are not woken for nothing.
const WORK_CHANNEL: &str = "sp_gateway_outbox:";
/// How often a create is tried when concurrent creates keep colliding on a unique key.
const CREATE_ATTEMPTS: usize = 3;

pub struct PostgresStore {
    pool: PgPool,
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
        migration(1, "init", include_str!("migrations/postgres/0001_init.sql")),
        migration(
            2,
            "tokens",
            include_str!("migrations/postgres/0002_tokens.sql"),
        ),
        migration(
            3,
            "outbox_claim_index",
            include_str!("migrations/postgres/0003_outbox_claim_index.sql"),
        ),
    ])
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if is_transient(&e) {
            StoreError::Unavailable(e.to_string())
        } else {
            StoreError::Database(e.to_string())
        }
    }
}

/// Errors that mean "the database cannot be reached or asked us to come back later": the
/// request may be retried and nothing was committed by it (or, for a lost commit, a retry with
/// `If-None-Exist` finds what was).
fn is_transient(e: &sqlx::Error) -> bool {
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

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
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
        Ok(PostgresStore { pool })
    }
}

type Tx = PgConnection;

fn stored(row: &PgRow) -> Result<StoredResource, sqlx::Error> {
    Ok(StoredResource {
        resource_type: row.try_get(0)?,
        id: row.try_get(1)?,
        version_id: row.try_get(2)?,
        last_updated: row.try_get(3)?,
        content: row.try_get(4)?,
    })
}

const RESOURCE_COLUMNS: &str = "resource_type, id, version_id, last_updated, content";

async fn current_resource(
    conn: &mut Tx,
    client: &str,
    resource_type: &str,
    id: &str,
) -> Result<Option<StoredResource>, sqlx::Error> {
    sqlx::query(
        "SELECT resource_type, id, version_id, last_updated, content FROM resources
         WHERE resource_type = $1 AND id = $2 AND client_id = $3 AND is_current",
    )
    .bind(resource_type)
    .bind(id)
    .bind(client)
    .fetch_optional(conn)
    .await?
    .map(|row| stored(&row))
    .transpose()
}

async fn referral_with_identifier(
    conn: &mut Tx,
    client: &str,
    identifier: &Identifier,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT referral_id FROM referral_identifiers
         WHERE client_id = $1 AND system = $2 AND value = $3",
    )
    .bind(client)
    .bind(&identifier.system)
    .bind(&identifier.value)
    .fetch_optional(conn)
    .await
}

/// Inserts resource versions in one statement (one round trip however many resources a
/// referral brings); with `replaces_older`, their previous versions stop being current.
async fn insert_resources(
    conn: &mut Tx,
    resources: &[NewResource],
    client: &str,
    referral_id: &str,
    at: DateTime<Utc>,
    replaces_older: bool,
) -> Result<(), sqlx::Error> {
    if resources.is_empty() {
        return Ok(());
    }
    let types: Vec<&str> = resources.iter().map(|r| r.resource_type.as_str()).collect();
    let ids: Vec<&str> = resources.iter().map(|r| r.id.as_str()).collect();
    if replaces_older {
        sqlx::query(
            "UPDATE resources SET is_current = FALSE
             WHERE is_current AND (resource_type, id) IN (SELECT * FROM UNNEST($1::text[], $2::text[]))",
        )
        .bind(&types)
        .bind(&ids)
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query(
        "INSERT INTO resources (resource_type, id, version_id, client_id, referral_id,
                                last_updated, content, patient_id, code, is_current)
         SELECT t.resource_type, t.id, t.version_id, $4, $5, $6, t.content, t.patient_id, t.code, TRUE
         FROM UNNEST($1::text[], $2::text[], $3::bigint[], $7::text[], $8::text[], $9::text[])
              AS t (resource_type, id, version_id, content, patient_id, code)",
    )
    .bind(&types)
    .bind(&ids)
    .bind(resources.iter().map(|r| r.version_id).collect::<Vec<i64>>())
    .bind(client)
    .bind(referral_id)
    .bind(at)
    .bind(resources.iter().map(|r| r.content.as_str()).collect::<Vec<&str>>())
    .bind(resources.iter().map(|r| r.patient_id.as_deref()).collect::<Vec<Option<&str>>>())
    .bind(resources.iter().map(|r| r.code.as_deref()).collect::<Vec<Option<&str>>>())
    .execute(conn)
    .await?;
    Ok(())
}

async fn insert_outbox(
    conn: &mut Tx,
    message: &NewOutboxMessage,
    referral_id: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO outbox (id, referral_id, target_kind, vcs_id, event_type, sequence, payload,
                             next_attempt_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
    )
    .bind(&message.id)
    .bind(referral_id)
    .bind(message.target_kind.as_str())
    .bind(&message.target)
    .bind(&message.event_type)
    .bind(message.sequence)
    .bind(&message.payload)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Tells every replica's worker that messages are waiting (delivered when the transaction
/// commits; nothing is sent if it rolls back).
async fn notify_work(conn: &mut Tx) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1 || current_schema(), '')")
        .bind(WORK_CHANNEL)
        .execute(conn)
        .await?;
    Ok(())
}

async fn insert_audit(
    conn: &mut Tx,
    at: DateTime<Utc>,
    actor: &str,
    action: &str,
    resource: (&str, &str),
    patient_id: &str,
    correlation_id: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_log (recorded_at, actor, action, resource_type, resource_id, patient_id,
                                outcome, correlation_id)
         VALUES ($1, $2, $3, $4, $5, $6, 'success', $7)",
    )
    .bind(at)
    .bind(actor)
    .bind(action)
    .bind(resource.0)
    .bind(resource.1)
    .bind(patient_id)
    .bind(correlation_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// One attempt at a create, inside `conn`'s transaction. Only `Created` is to be committed.
async fn create_in(
    conn: &mut Tx,
    r: &NewReferral,
    condition: Option<&Identifier>,
) -> Result<CreateOutcome, sqlx::Error> {
    let client = r.client_id.as_str();
    if let Some(found) = matching_condition(conn, client, condition).await? {
        return Ok(CreateOutcome::Existing(found));
    }
    if let Some(refusal) = earlier_claim(conn, r).await? {
        // Each statement sees what was committed when it started: a concurrent create may have
        // committed the condition's identifier after the look above. Then it is the answer.
        if let Some(found) = matching_condition(conn, client, condition).await? {
            return Ok(CreateOutcome::Existing(found));
        }
        return Ok(refusal);
    }
    insert_referral(conn, r).await
}

/// The current ServiceRequest of the referral `condition` (If-None-Exist) names, if any.
async fn matching_condition(
    conn: &mut Tx,
    client: &str,
    condition: Option<&Identifier>,
) -> Result<Option<StoredResource>, sqlx::Error> {
    let Some(condition) = condition else {
        return Ok(None);
    };
    match referral_with_identifier(conn, client, condition).await? {
        Some(existing) => current_resource(conn, client, "ServiceRequest", &existing).await,
        None => Ok(None),
    }
}

/// Why the referral must not be created: its BaRS message id or one of its identifiers is
/// already another referral's.
async fn earlier_claim(
    conn: &mut Tx,
    r: &NewReferral,
) -> Result<Option<CreateOutcome>, sqlx::Error> {
    let client = r.client_id.as_str();
    if let Some(message_id) = &r.message_id {
        let existing: Option<String> = sqlx::query_scalar(
            "SELECT referral_id FROM processed_messages WHERE client_id = $1 AND message_id = $2",
        )
        .bind(client)
        .bind(message_id)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(existing) = existing {
            return Ok(Some(CreateOutcome::DuplicateMessage { existing }));
        }
    }
    for identifier in &r.identifiers {
        if let Some(existing) = referral_with_identifier(conn, client, identifier).await? {
            return Ok(Some(CreateOutcome::IdentifierTaken {
                identifier: identifier.clone(),
                existing,
            }));
        }
    }
    Ok(None)
}

/// Writes an accepted referral and everything that goes with it.
async fn insert_referral(conn: &mut Tx, r: &NewReferral) -> Result<CreateOutcome, sqlx::Error> {
    let client = r.client_id.as_str();
    let id = r.referral_id.as_str();
    sqlx::query(
        "INSERT INTO referrals (id, client_id, vcs_id, patient_id, status, record,
             received_content_type, received_body, created_at, updated_at, task_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10)",
    )
    .bind(id)
    .bind(client)
    .bind(r.vcs_id.as_str())
    .bind(r.patient_id.as_str())
    .bind(&r.status)
    .bind(&r.record)
    .bind(&r.received_content_type)
    .bind(&r.received_body)
    .bind(r.created_at)
    .bind(r.task_id.as_str())
    .execute(&mut *conn)
    .await?;
    for identifier in &r.identifiers {
        sqlx::query(
            "INSERT INTO referral_identifiers (client_id, system, value, referral_id)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(client)
        .bind(&identifier.system)
        .bind(&identifier.value)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    }
    if let Some(message_id) = &r.message_id {
        sqlx::query(
            "INSERT INTO processed_messages (client_id, message_id, referral_id, received_at)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(client)
        .bind(message_id)
        .bind(id)
        .bind(r.created_at)
        .execute(&mut *conn)
        .await?;
    }
    // The ids are ours and new: no older versions to retire.
    insert_resources(conn, &r.resources, client, id, r.created_at, false).await?;
    for message in &r.outbox {
        insert_outbox(conn, message, id, r.created_at).await?;
    }
    if !r.outbox.is_empty() {
        notify_work(conn).await?;
    }
    insert_audit(
        conn,
        r.created_at,
        client,
        "create",
        ("ServiceRequest", id),
        r.patient_id.as_str(),
        r.correlation_id.as_deref(),
    )
    .await?;
    Ok(CreateOutcome::Created)
}

/// A change inside `conn`'s transaction; `Conflict` means nothing may be committed.
async fn apply_change_in(
    conn: &mut Tx,
    change: &ReferralChange,
) -> Result<ChangeOutcome, sqlx::Error> {
    // One statement checks the revision and takes it: a concurrent change (on any replica) waits
    // for this row and then finds the revision moved on.
    let claimed = sqlx::query(
        "UPDATE referrals SET revision = revision + 1, updated_at = $3,
                status = COALESCE($4, status), vcs_status = COALESCE($5, vcs_status)
         WHERE id = $1 AND revision = $2
         RETURNING client_id, patient_id",
    )
    .bind(&change.referral_id)
    .bind(change.expected_revision)
    .bind(change.at)
    .bind(&change.status)
    .bind(&change.vcs_status)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = claimed else {
        return Ok(ChangeOutcome::Conflict);
    };
    let (client, patient_id): (String, String) = (row.try_get(0)?, row.try_get(1)?);
    insert_resources(
        conn,
        &change.resources,
        &client,
        &change.referral_id,
        change.at,
        true,
    )
    .await?;
    for message in &change.outbox {
        insert_outbox(conn, message, &change.referral_id, change.at).await?;
    }
    if !change.outbox.is_empty() {
        notify_work(conn).await?;
    }
    for entry in &change.audit {
        insert_audit(
            conn,
            change.at,
            &entry.actor,
            &entry.action,
            (&entry.resource_type, &entry.resource_id),
            &patient_id,
            change.correlation_id.as_deref(),
        )
        .await?;
    }
    if let Some((owner, key, response)) = &change.idempotency {
        sqlx::query(
            "INSERT INTO idempotency_keys (owner, key, request_hash, status, body, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(owner)
        .bind(key)
        .bind(&response.request_hash)
        .bind(i32::from(response.status))
        .bind(&response.body)
        .bind(change.at)
        .execute(conn)
        .await?;
    }
    Ok(ChangeOutcome::Applied)
}

async fn load_referral_in(
    conn: &mut Tx,
    referral_id: &str,
) -> Result<Option<ReferralState>, StoreError> {
    let row = sqlx::query(
        "SELECT client_id, vcs_id, patient_id, status, vcs_status, task_id, revision, record,
                created_at, updated_at
         FROM referrals WHERE id = $1",
    )
    .bind(referral_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let client_id: String = row.try_get(0)?;
    let task_id: Option<String> = row.try_get(5)?;
    let service_request = current_resource(conn, &client_id, "ServiceRequest", referral_id)
        .await?
        .ok_or_else(|| {
            StoreError::Database(format!("referral {referral_id} has no ServiceRequest"))
        })?;
    let task = match &task_id {
        Some(task_id) => current_resource(conn, &client_id, "Task", task_id).await?,
        None => None,
    };
    let sequences = sqlx::query(
        "SELECT target_kind, vcs_id, MAX(sequence) FROM outbox WHERE referral_id = $1
         GROUP BY target_kind, vcs_id",
    )
    .bind(referral_id)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| {
        Ok((
            TargetKind::parse(&r.try_get::<String, _>(0)?),
            r.try_get(1)?,
            r.try_get(2)?,
        ))
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(Some(ReferralState {
        referral_id: referral_id.to_string(),
        client_id,
        vcs_id: row.try_get(1)?,
        patient_id: row.try_get(2)?,
        status: row.try_get(3)?,
        vcs_status: row.try_get(4)?,
        revision: row.try_get(6)?,
        record: row.try_get(7)?,
        created_at: row.try_get(8)?,
        updated_at: row.try_get(9)?,
        service_request,
        task,
        sequences,
    }))
}

/// `SELECT … FROM referrals f WHERE <filters of query>`, values bound.
fn referral_search<'a>(
    select: &str,
    client: &'a str,
    query: &'a ReferralQuery,
) -> QueryBuilder<Postgres> {
    let mut sql = QueryBuilder::new(select);
    sql.push(" WHERE f.client_id = ")
        .push_bind(client.to_string());
    if let Some((system, value)) = &query.identifier {
        sql.push(
            " AND f.id IN (SELECT referral_id FROM referral_identifiers
                           WHERE client_id = f.client_id AND value = ",
        )
        .push_bind(value.clone());
        if let Some(system) = system {
            sql.push(" AND system = ").push_bind(system.clone());
        }
        sql.push(")");
    }
    if let Some(patient) = &query.patient_id {
        sql.push(" AND f.patient_id = ").push_bind(patient.clone());
    }
    if !query.statuses.is_empty() {
        sql.push(" AND f.status = ANY(")
            .push_bind(query.statuses.clone())
            .push(")");
    }
    sql
}

fn count(total: i64) -> usize {
    usize::try_from(total).unwrap_or(0)
}

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

const DELIVERY_COLUMNS: &str = "id, referral_id, vcs_id, event_type, sequence, state, attempts,
     CASE WHEN state = 'pending' THEN next_attempt_at END, created_at, delivered_at, last_error";

fn delivery(row: &PgRow) -> Result<Delivery, sqlx::Error> {
    let text = |at: Option<DateTime<Utc>>| at.map(timestamp);
    Ok(Delivery {
        id: row.try_get(0)?,
        referral_id: row.try_get(1)?,
        vcs_id: row.try_get(2)?,
        event_type: row.try_get(3)?,
        sequence: row.try_get(4)?,
        state: row.try_get(5)?,
        attempts: row.try_get(6)?,
        next_attempt_at: text(row.try_get(7)?),
        created_at: timestamp(row.try_get(8)?),
        delivered_at: text(row.try_get(9)?),
        last_error: row.try_get(10)?,
    })
}

const SUBSCRIPTION_COLUMNS: &str =
    "id, client_id, resource_type, criteria, endpoint, status, content";

fn subscription(row: &PgRow) -> Result<SubscriptionRow, sqlx::Error> {
    Ok(SubscriptionRow {
        id: row.try_get(0)?,
        client_id: row.try_get(1)?,
        resource_type: row.try_get(2)?,
        criteria: row.try_get(3)?,
        endpoint: row.try_get(4)?,
        status: row.try_get(5)?,
        content: row.try_get(6)?,
    })
}

async fn recovery(conn: &mut Tx, job_id: &str) -> Result<Option<RecoveryProgress>, sqlx::Error> {
    let job = sqlx::query("SELECT vcs_id, since FROM recovery_jobs WHERE id = $1")
        .bind(job_id)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(job) = job else {
        return Ok(None);
    };
    let mut progress = RecoveryProgress {
        job_id: job_id.to_string(),
        vcs_id: job.try_get(0)?,
        since: timestamp(job.try_get(1)?),
        total: 0,
        pending: 0,
        delivered: 0,
        dead: 0,
        done: true,
    };
    let counts = sqlx::query(
        "SELECT o.state, COUNT(*) FROM recovery_job_messages m JOIN outbox o ON o.id = m.message_id
         WHERE m.job_id = $1 GROUP BY o.state",
    )
    .bind(job_id)
    .fetch_all(conn)
    .await?;
    for row in counts {
        progress.add(&row.try_get::<String, _>(0)?, count(row.try_get(1)?));
    }
    Ok(Some(progress))
}

/// Listens for committed outbox work from any replica and wakes the local worker. A lost
/// connection is re-established by the listener; notifications sent meanwhile are lost, so
/// the worker is woken after every reconnect to look for itself.
async fn listen_for_work(pool: PgPool, wake: Arc<Notify>) {
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

#[async_trait]
impl Store for PostgresStore {
    async fn create_referral(
        &self,
        referral: NewReferral,
        condition: Option<Identifier>,
    ) -> Result<CreateOutcome, StoreError> {
        for _ in 0..CREATE_ATTEMPTS {
            let mut tx = self.pool.begin().await?;
            match create_in(&mut tx, &referral, condition.as_ref()).await {
                Ok(CreateOutcome::Created) => {
                    tx.commit().await?;
                    return Ok(CreateOutcome::Created);
                }
                // Nothing was written; dropping the transaction rolls it back.
                Ok(other) => return Ok(other),
                // Another replica committed this identifier or message id between our look
                // and our insert: look again, and the answer is what it committed.
                Err(e) if is_unique_violation(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Unavailable(
            "concurrent creates kept colliding; try again".into(),
        ))
    }

    async fn read_resource(
        &self,
        client: &ClientId,
        resource_type: &str,
        id: &str,
    ) -> Result<Option<StoredResource>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        Ok(current_resource(&mut conn, client.as_str(), resource_type, id).await?)
    }

    async fn search_referrals(
        &self,
        client: &ClientId,
        query: &ReferralQuery,
    ) -> Result<SearchPage, StoreError> {
        let client = client.as_str();
        let total: i64 = referral_search("SELECT COUNT(*) FROM referrals f", client, query)
            .build_query_scalar()
            .fetch_one(&self.pool)
            .await?;
        let mut page = referral_search(
            "SELECT r.resource_type, r.id, r.version_id, r.last_updated, r.content
             FROM referrals f JOIN resources r
               ON r.resource_type = 'ServiceRequest' AND r.id = f.id AND r.is_current",
            client,
            query,
        );
        page.push(" ORDER BY f.created_at, f.id LIMIT ")
            .push_bind(limit(query.count))
            .push(" OFFSET ")
            .push_bind(limit(query.offset));
        let rows = page.build().fetch_all(&self.pool).await?;
        Ok(SearchPage {
            total: count(total),
            resources: rows.iter().map(stored).collect::<Result<_, _>>()?,
        })
    }

    async fn load_referral(&self, referral_id: &str) -> Result<Option<ReferralState>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        load_referral_in(&mut conn, referral_id).await
    }

    async fn apply_change(&self, change: ReferralChange) -> Result<ChangeOutcome, StoreError> {
        let mut tx = self.pool.begin().await?;
        match apply_change_in(&mut tx, &change).await {
            Ok(ChangeOutcome::Applied) => {
                tx.commit().await?;
                Ok(ChangeOutcome::Applied)
            }
            Ok(ChangeOutcome::Conflict) => Ok(ChangeOutcome::Conflict),
            // The same Idempotency-Key committed by a concurrent request: reload and recompute.
            Err(e) if is_unique_violation(&e) => Ok(ChangeOutcome::Conflict),
            Err(e) => Err(e.into()),
        }
    }

    async fn idempotent_response(
        &self,
        owner: &str,
        key: &str,
    ) -> Result<Option<StoredResponse>, StoreError> {
        let row = sqlx::query(
            "SELECT request_hash, status, body FROM idempotency_keys WHERE owner = $1 AND key = $2",
        )
        .bind(owner)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(StoredResponse {
                request_hash: row.try_get(0)?,
                status: u16::try_from(row.try_get::<i32, _>(1)?).unwrap_or(500),
                body: row.try_get(2)?,
            })
        })
        .transpose()
        .map_err(|e: sqlx::Error| e.into())
    }

    async fn list_vcs_referrals(
        &self,
        vcs: &VcsId,
        status: Option<&str>,
        since: Option<DateTime<Utc>>,
        count_wanted: usize,
        offset: usize,
    ) -> Result<(usize, Vec<VcsReferral>), StoreError> {
        const CONDITION: &str = "vcs_id = $1 AND ($2::text IS NULL OR vcs_status = $2)
             AND ($3::timestamptz IS NULL OR updated_at >= $3)";
        let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM referrals WHERE {CONDITION}"
        )))
        .bind(vcs.as_str())
        .bind(status)
        .bind(since)
        .fetch_one(&self.pool)
        .await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT id, vcs_status, updated_at, record FROM referrals WHERE {CONDITION}
             ORDER BY updated_at, id LIMIT $4 OFFSET $5"
        )))
        .bind(vcs.as_str())
        .bind(status)
        .bind(since)
        .bind(limit(count_wanted))
        .bind(limit(offset))
        .fetch_all(&self.pool)
        .await?;
        let items = rows
            .iter()
            .map(|row| {
                Ok(VcsReferral {
                    referral_id: row.try_get(0)?,
                    status: row.try_get(1)?,
                    updated_at: row.try_get(2)?,
                    record: row.try_get(3)?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok((count(total), items))
    }

    async fn search_resources(
        &self,
        client: &ClientId,
        resource_type: &str,
        query: &ResourceQuery,
    ) -> Result<SearchPage, StoreError> {
        let (code_exact, code_any_system) = match &query.code {
            Some((Some(system), value)) => (Some(format!("{system}|{value}")), None),
            Some((None, value)) => (None, Some(format!("%|{value}"))),
            None => (None, None),
        };
        const CONDITION: &str = "client_id = $1 AND resource_type = $2 AND is_current
             AND ($3::text IS NULL OR referral_id = $3) AND ($4::text IS NULL OR patient_id = $4)
             AND ($5::text IS NULL OR code = $5) AND ($6::text IS NULL OR code LIKE $6)";
        let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM resources WHERE {CONDITION}"
        )))
        .bind(client.as_str())
        .bind(resource_type)
        .bind(&query.referral_id)
        .bind(&query.patient_id)
        .bind(&code_exact)
        .bind(&code_any_system)
        .fetch_one(&self.pool)
        .await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RESOURCE_COLUMNS} FROM resources WHERE {CONDITION}
             ORDER BY last_updated, id LIMIT $7 OFFSET $8"
        )))
        .bind(client.as_str())
        .bind(resource_type)
        .bind(&query.referral_id)
        .bind(&query.patient_id)
        .bind(&code_exact)
        .bind(&code_any_system)
        .bind(limit(query.count))
        .bind(limit(query.offset))
        .fetch_all(&self.pool)
        .await?;
        Ok(SearchPage {
            total: count(total),
            resources: rows.iter().map(stored).collect::<Result<_, _>>()?,
        })
    }

    async fn history(
        &self,
        client: &ClientId,
        resource_type: &str,
        id: &str,
    ) -> Result<Vec<StoredResource>, StoreError> {
        let rows = sqlx::query(
            "SELECT resource_type, id, version_id, last_updated, content FROM resources
             WHERE resource_type = $1 AND id = $2 AND client_id = $3 ORDER BY version_id DESC",
        )
        .bind(resource_type)
        .bind(id)
        .bind(client.as_str())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(stored).collect::<Result<_, _>>()?)
    }

    async fn read_version(
        &self,
        client: &ClientId,
        resource_type: &str,
        id: &str,
        version_id: i64,
    ) -> Result<Option<StoredResource>, StoreError> {
        let row = sqlx::query(
            "SELECT resource_type, id, version_id, last_updated, content FROM resources
             WHERE resource_type = $1 AND id = $2 AND client_id = $3 AND version_id = $4",
        )
        .bind(resource_type)
        .bind(id)
        .bind(client.as_str())
        .bind(version_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|row| stored(&row)).transpose()?)
    }

    async fn create_subscription(
        &self,
        subscription: SubscriptionRow,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO subscriptions (id, client_id, resource_type, criteria, endpoint, status,
                                        content, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&subscription.id)
        .bind(&subscription.client_id)
        .bind(&subscription.resource_type)
        .bind(&subscription.criteria)
        .bind(&subscription.endpoint)
        .bind(&subscription.status)
        .bind(&subscription.content)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn subscriptions_for(
        &self,
        client: &str,
        resource_type: &str,
    ) -> Result<Vec<SubscriptionRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions
             WHERE client_id = $1 AND resource_type = $2 AND status = 'active'"
        )))
        .bind(client)
        .bind(resource_type)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(subscription).collect::<Result<_, _>>()?)
    }

    async fn subscription(&self, id: &str) -> Result<Option<SubscriptionRow>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|row| subscription(&row)).transpose()?)
    }

    async fn delete_subscription(&self, client: &ClientId, id: &str) -> Result<bool, StoreError> {
        let changed = sqlx::query(
            "UPDATE subscriptions SET status = 'off'
             WHERE id = $1 AND client_id = $2 AND status <> 'off'",
        )
        .bind(id)
        .bind(client.as_str())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(changed == 1)
    }

    async fn record_access(&self, access: Access) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_log (recorded_at, actor, action, resource_type, resource_id,
                                    patient_id, outcome, correlation_id)
             VALUES ($1, $2, $3, $4, $5,
                     COALESCE($6, (SELECT patient_id FROM resources
                                   WHERE resource_type = $4 AND id = $5 LIMIT 1)),
                     $7, $8)",
        )
        .bind(access.at)
        .bind(&access.actor)
        .bind(&access.action)
        .bind(&access.resource_type)
        .bind(&access.resource_id)
        .bind(&access.patient_id)
        .bind(&access.outcome)
        .bind(&access.correlation_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn audit_events(
        &self,
        query: &AuditQuery,
    ) -> Result<(usize, Vec<AuditRecord>), StoreError> {
        const CONDITION: &str = "($1::text IS NULL OR patient_id = $1)
             AND ($2::timestamptz IS NULL OR recorded_at >= $2)
             AND ($3::timestamptz IS NULL OR recorded_at < $3)";
        let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM audit_log WHERE {CONDITION}"
        )))
        .bind(&query.patient_id)
        .bind(query.from)
        .bind(query.to)
        .fetch_one(&self.pool)
        .await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT id, recorded_at, actor, action, resource_type, resource_id, patient_id,
                    outcome, correlation_id
             FROM audit_log WHERE {CONDITION} ORDER BY id LIMIT $4 OFFSET $5"
        )))
        .bind(&query.patient_id)
        .bind(query.from)
        .bind(query.to)
        .bind(limit(query.count))
        .bind(limit(query.offset))
        .fetch_all(&self.pool)
        .await?;
        let records = rows
            .iter()
            .map(|row| {
                Ok(AuditRecord {
                    id: row.try_get(0)?,
                    recorded_at: timestamp(row.try_get(1)?),
                    actor: row.try_get(2)?,
                    action: row.try_get(3)?,
                    resource_type: row.try_get(4)?,
                    resource_id: row.try_get(5)?,
                    patient_id: row.try_get(6)?,
                    outcome: row.try_get(7)?,
                    correlation_id: row.try_get(8)?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok((count(total), records))
    }

    async fn save_access_token(&self, token: IssuedToken) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM access_tokens WHERE expires_at < now()")
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO access_tokens (digest, client_id, scopes, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&token.digest)
        .bind(&token.client_id)
        .bind(token.scopes.join(" "))
        .bind(token.expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn access_token(
        &self,
        digest: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<IssuedToken>, StoreError> {
        let row = sqlx::query(
            "SELECT client_id, scopes, expires_at FROM access_tokens
             WHERE digest = $1 AND expires_at > $2",
        )
        .bind(digest)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row
            .map(|row| {
                Ok::<_, sqlx::Error>(IssuedToken {
                    digest: digest.to_string(),
                    client_id: row.try_get(0)?,
                    scopes: row
                        .try_get::<String, _>(1)?
                        .split_whitespace()
                        .map(str::to_string)
                        .collect(),
                    expires_at: row.try_get(2)?,
                })
            })
            .transpose()?)
    }

    async fn use_assertion(
        &self,
        client: &str,
        jti: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        sqlx::query("DELETE FROM used_assertions WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        // The primary key decides between replicas that see the same assertion at once.
        let inserted = sqlx::query(
            "INSERT INTO used_assertions (client_id, jti, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (client_id, jti) DO NOTHING",
        )
        .bind(client)
        .bind(jti)
        .bind(expires_at)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(inserted == 1)
    }

    async fn claim_due_messages(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit_wanted: usize,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        // SKIP LOCKED: rows another replica is claiming right now are passed over, not waited
        // for; once its claim commits, their lease keeps them out of every other claim.
        let rows = sqlx::query(
            "UPDATE outbox SET lease_until = $1 WHERE id IN (
                 SELECT o.id FROM outbox o
                 WHERE o.state = 'pending' AND o.next_attempt_at <= $2
                   AND (o.lease_until IS NULL OR o.lease_until < $2)
                   AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.referral_id = o.referral_id
                                   AND e.target_kind = o.target_kind AND e.vcs_id = o.vcs_id
                                   AND e.sequence < o.sequence AND e.state = 'pending')
                   AND NOT (o.target_kind = 'vcs'
                            AND o.vcs_id IN (SELECT vcs_id FROM vcs_endpoints WHERE disabled))
                 ORDER BY o.next_attempt_at LIMIT $3
                 FOR UPDATE SKIP LOCKED)
             RETURNING id, referral_id, vcs_id, event_type, sequence, payload, attempts, target_kind",
        )
        .bind(lease_until)
        .bind(now)
        .bind(limit(limit_wanted))
        .fetch_all(&self.pool)
        .await?;
        let messages = rows
            .iter()
            .map(|row| {
                Ok(OutboxMessage {
                    id: row.try_get(0)?,
                    referral_id: row.try_get(1)?,
                    vcs_id: row.try_get(2)?,
                    event_type: row.try_get(3)?,
                    sequence: row.try_get(4)?,
                    payload: row.try_get(5)?,
                    attempts: row.try_get(6)?,
                    target_kind: TargetKind::parse(&row.try_get::<String, _>(7)?),
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok(messages)
    }

    async fn next_due_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT MIN(GREATEST(next_attempt_at, COALESCE(lease_until, next_attempt_at)))
             FROM outbox WHERE state = 'pending'
               AND vcs_id NOT IN (SELECT vcs_id FROM vcs_endpoints WHERE disabled)",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    async fn release_expired_leases(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let released = sqlx::query(
            "UPDATE outbox SET lease_until = NULL
             WHERE state = 'pending' AND lease_until IS NOT NULL AND lease_until < $1",
        )
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(usize::try_from(released).unwrap_or(usize::MAX))
    }

    async fn record_attempt(
        &self,
        message_id: &str,
        attempt: Attempt,
        next: NextStep,
    ) -> Result<(), StoreError> {
        let at = attempt.at;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO delivery_attempts (message_id, attempted_at, status_code, latency_ms,
                                            error, response_prefix)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(message_id)
        .bind(at)
        .bind(attempt.status_code.map(i32::from))
        .bind(i64::try_from(attempt.latency_ms).unwrap_or(i64::MAX))
        .bind(&attempt.error)
        .bind(&attempt.response_prefix)
        .execute(&mut *tx)
        .await?;
        let (state, next_at, delivered_at) = match &next {
            NextStep::Delivered => ("delivered", at, Some(at)),
            NextStep::RetryAt(when) => ("pending", *when, None),
            NextStep::Dead => ("dead", at, None),
            NextStep::EndpointGone => ("pending", at, None),
        };
        sqlx::query(
            "UPDATE outbox SET state = $2, next_attempt_at = $3, delivered_at = $4,
                    lease_until = NULL, attempts = attempts + 1, last_error = $5
             WHERE id = $1",
        )
        .bind(message_id)
        .bind(state)
        .bind(next_at)
        .bind(delivered_at)
        .bind(&attempt.error)
        .execute(&mut *tx)
        .await?;
        if next == NextStep::Delivered {
            // A delivered message disclosed the patient's details to its recipient: audited
            // in the same transaction that records the delivery.
            sqlx::query(
                "INSERT INTO audit_log (recorded_at, actor, action, resource_type, resource_id,
                                        patient_id, outcome, correlation_id)
                 SELECT $2, o.target_kind || ':' || o.vcs_id, 'disclose', 'ServiceRequest',
                        o.referral_id, r.patient_id, 'success', o.id
                 FROM outbox o JOIN referrals r ON r.id = o.referral_id WHERE o.id = $1",
            )
            .bind(message_id)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        if next == NextStep::EndpointGone {
            sqlx::query(
                "INSERT INTO vcs_endpoints (vcs_id, disabled, disabled_reason, updated_at)
                 SELECT vcs_id, TRUE, 'the endpoint answered 410 Gone', $2 FROM outbox WHERE id = $1
                 ON CONFLICT (vcs_id) DO UPDATE SET disabled = TRUE,
                    disabled_reason = excluded.disabled_reason, updated_at = excluded.updated_at",
            )
            .bind(message_id)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn signing_secrets(
        &self,
        vcs: &VcsId,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT secret FROM vcs_secrets
             WHERE vcs_id = $1 AND (expires_at IS NULL OR expires_at > $2)
             ORDER BY created_at DESC",
        )
        .bind(vcs.as_str())
        .bind(now)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn adopt_secret(
        &self,
        vcs: &VcsId,
        secret: &str,
        now: DateTime<Utc>,
        grace_until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        // Replicas starting together adopt the same secret: the row lock makes them take turns,
        // and the second finds the secret known.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('vcs_secrets:' || $1))")
            .bind(vcs.as_str())
            .execute(&mut *tx)
            .await?;
        let known: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM vcs_secrets WHERE vcs_id = $1 AND secret = $2)",
        )
        .bind(vcs.as_str())
        .bind(secret)
        .fetch_one(&mut *tx)
        .await?;
        if known {
            return Ok(());
        }
        sqlx::query(
            "UPDATE vcs_secrets SET expires_at = $2
             WHERE vcs_id = $1 AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(vcs.as_str())
        .bind(grace_until)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO vcs_secrets (vcs_id, secret, created_at) VALUES ($1, $2, $3)")
            .bind(vcs.as_str())
            .bind(secret)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_endpoint_enabled(
        &self,
        vcs: &VcsId,
        enabled: bool,
        reason: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO vcs_endpoints (vcs_id, disabled, disabled_reason, updated_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (vcs_id) DO UPDATE SET disabled = excluded.disabled,
                disabled_reason = excluded.disabled_reason, updated_at = excluded.updated_at",
        )
        .bind(vcs.as_str())
        .bind(!enabled)
        .bind(&reason)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if enabled {
            notify_work(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn disabled_endpoints(&self) -> Result<Vec<(String, Option<String>)>, StoreError> {
        let rows = sqlx::query("SELECT vcs_id, disabled_reason FROM vcs_endpoints WHERE disabled")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?)
    }

    async fn list_deliveries(
        &self,
        filter: &DeliveryFilter,
    ) -> Result<(usize, Vec<Delivery>), StoreError> {
        const CONDITION: &str =
            "($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR vcs_id = $2)";
        let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM outbox WHERE {CONDITION}"
        )))
        .bind(&filter.state)
        .bind(&filter.vcs)
        .fetch_one(&self.pool)
        .await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLUMNS} FROM outbox WHERE {CONDITION}
             ORDER BY created_at DESC, id LIMIT $3 OFFSET $4"
        )))
        .bind(&filter.state)
        .bind(&filter.vcs)
        .bind(limit(filter.count))
        .bind(limit(filter.offset))
        .fetch_all(&self.pool)
        .await?;
        Ok((
            count(total),
            rows.iter().map(delivery).collect::<Result<_, _>>()?,
        ))
    }

    async fn referral_deliveries(
        &self,
        referral_id: &str,
    ) -> Result<Vec<(Delivery, Vec<AttemptRow>)>, StoreError> {
        let messages = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLUMNS} FROM outbox WHERE referral_id = $1
             ORDER BY sequence, created_at, id"
        )))
        .bind(referral_id)
        .fetch_all(&self.pool)
        .await?;
        let mut result = Vec::with_capacity(messages.len());
        for message in &messages {
            let delivery = delivery(message)?;
            let attempts = sqlx::query(
                "SELECT attempted_at, status_code, latency_ms, error, response_prefix
                 FROM delivery_attempts WHERE message_id = $1 ORDER BY id",
            )
            .bind(&delivery.id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| {
                Ok(AttemptRow {
                    attempted_at: timestamp(row.try_get(0)?),
                    status_code: row
                        .try_get::<Option<i32>, _>(1)?
                        .and_then(|c| u16::try_from(c).ok()),
                    latency_ms: u64::try_from(row.try_get::<i64, _>(2)?).unwrap_or(0),
                    error: row.try_get(3)?,
                    response_prefix: row.try_get(4)?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
            result.push((delivery, attempts));
        }
        Ok(result)
    }

    async fn retry_message(
        &self,
        message_id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(
            "UPDATE outbox SET state = 'pending', next_attempt_at = $2, lease_until = NULL
             WHERE id = $1 AND state IN ('dead', 'delivered') AND payload <> ''",
        )
        .bind(message_id)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 1 {
            notify_work(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(changed == 1)
    }

    async fn start_recovery(
        &self,
        vcs: &VcsId,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<RecoveryProgress, StoreError> {
        let job_id = format!("rec_{}", uuid::Uuid::new_v4().simple());
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO recovery_jobs (id, vcs_id, since, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&job_id)
        .bind(vcs.as_str())
        .bind(since)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO recovery_job_messages (job_id, message_id)
             SELECT $1, id FROM outbox WHERE vcs_id = $2 AND state = 'dead' AND created_at >= $3",
        )
        .bind(&job_id)
        .bind(vcs.as_str())
        .bind(since)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE outbox SET state = 'pending', next_attempt_at = $2, lease_until = NULL,
                    attempts = 0
             WHERE id IN (SELECT message_id FROM recovery_job_messages WHERE job_id = $1)",
        )
        .bind(&job_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        notify_work(&mut tx).await?;
        let progress = recovery(&mut tx, &job_id)
            .await?
            .ok_or_else(|| StoreError::Database("recovery job vanished".into()))?;
        tx.commit().await?;
        Ok(progress)
    }

    async fn recovery_progress(
        &self,
        job_id: &str,
    ) -> Result<Option<RecoveryProgress>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        Ok(recovery(&mut conn, job_id).await?)
    }

    async fn prune_delivered_payloads(
        &self,
        before: DateTime<Utc>,
        batch: usize,
    ) -> Result<usize, StoreError> {
        let pruned = sqlx::query(
            "UPDATE outbox SET payload = '' WHERE id IN (
                 SELECT id FROM outbox
                 WHERE state = 'delivered' AND delivered_at < $1 AND payload <> ''
                 LIMIT $2 FOR UPDATE SKIP LOCKED)",
        )
        .bind(before)
        .bind(limit(batch))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(usize::try_from(pruned).unwrap_or(usize::MAX))
    }

    async fn outbox_stats(&self, now: DateTime<Utc>) -> Result<OutboxStats, StoreError> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM outbox WHERE state = 'pending'),
                    (SELECT MIN(created_at) FROM outbox WHERE state = 'pending'),
                    (SELECT COUNT(*) FROM outbox WHERE state = 'dead')",
        )
        .fetch_one(&self.pool)
        .await?;
        let oldest: Option<DateTime<Utc>> = row.try_get(1)?;
        Ok(OutboxStats {
            pending: count(row.try_get(0)?),
            dead: count(row.try_get(2)?),
            oldest_pending_age_seconds: oldest.map_or(0.0, |oldest| {
                (now - oldest).num_milliseconds().max(0) as f64 / 1000.0
            }),
        })
    }

    fn watch_for_work(&self, wake: Arc<Notify>) {
        tokio::spawn(listen_for_work(self.pool.clone(), wake));
    }
}
