//! Inbox accounts and sessions in SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::SqliteStore;
use crate::store::accounts::{self, ACCOUNT_COLUMNS, SESSION_COLUMNS};
use crate::store::traits::Accounts;
use crate::store::{timestamp, Account, Email, NewSession, Session, StoreError};

#[async_trait]
impl Accounts for SqliteStore {
    async fn create_account(&self, account: Account) -> Result<bool, StoreError> {
        self.write(move |conn| {
            let inserted = conn
                .prepare_cached(
                    "INSERT INTO accounts (id, email, role, vcs_id, password_hash, totp_secret,
                                           disabled, created_at, commissioner_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (email) DO NOTHING",
                )?
                .execute(params![
                    account.id,
                    account.email.as_str(),
                    account.membership.role(),
                    account.membership.vcs().map(|v| v.as_str()),
                    account.password_hash,
                    account.totp_secret,
                    account.disabled,
                    timestamp(account.created_at),
                    account.membership.commissioner().map(|c| c.as_str()),
                ])?;
            Ok(inserted == 1)
        })
        .await
    }

    async fn account_by_email(&self, email: &Email) -> Result<Option<Account>, StoreError> {
        let email = email.to_string();
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {ACCOUNT_COLUMNS} FROM accounts a WHERE a.email = ?1"
            ))?
            .query_and_then(params![email], |row| accounts::account(row))?
            .next()
            .transpose()
        })
        .await
    }

    async fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {ACCOUNT_COLUMNS} FROM accounts a ORDER BY a.email"
            ))?
            .query_and_then([], |row| accounts::account(row))?
            .collect()
        })
        .await
    }

    async fn set_account_disabled(
        &self,
        email: &Email,
        disabled: bool,
    ) -> Result<bool, StoreError> {
        let email = email.to_string();
        self.write(move |conn| {
            let id: Option<String> = conn
                .prepare_cached("UPDATE accounts SET disabled = ?2 WHERE email = ?1 RETURNING id")?
                .query_row(params![email, disabled], |row| row.get(0))
                .optional()?;
            end_sessions(conn, id.as_deref(), disabled)
        })
        .await
    }

    async fn set_password(&self, email: &Email, password_hash: &str) -> Result<bool, StoreError> {
        let (email, hash) = (email.to_string(), password_hash.to_string());
        self.write(move |conn| {
            let id: Option<String> = conn
                .prepare_cached(
                    "UPDATE accounts SET password_hash = ?2 WHERE email = ?1 RETURNING id",
                )?
                .query_row(params![email, hash], |row| row.get(0))
                .optional()?;
            end_sessions(conn, id.as_deref(), true)
        })
        .await
    }

    async fn create_session(&self, session: NewSession) -> Result<(), StoreError> {
        self.write(move |conn| {
            let at = timestamp(session.at);
            conn.prepare_cached(
                "INSERT INTO sessions (digest, account_id, csrf_token, created_at, last_seen_at)
                 VALUES (?1, ?2, ?3, ?4, ?4)",
            )?
            .execute(params![
                session.digest,
                session.account_id,
                session.csrf_token,
                at
            ])?;
            Ok(())
        })
        .await
    }

    async fn session(
        &self,
        digest: &str,
        idle_since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError> {
        let digest = digest.to_string();
        let (idle_since, now) = (timestamp(idle_since), timestamp(now));
        self.write(move |conn| {
            conn.prepare_cached("DELETE FROM sessions WHERE last_seen_at < ?1")?
                .execute(params![idle_since])?;
            let session = conn
                .prepare_cached(&format!(
                    "SELECT {ACCOUNT_COLUMNS}, {SESSION_COLUMNS}
                     FROM sessions s JOIN accounts a ON a.id = s.account_id
                     WHERE s.digest = ?1 AND NOT a.disabled"
                ))?
                .query_and_then(params![digest], |row| accounts::session(row))?
                .next()
                .transpose()?;
            if session.is_some() {
                conn.prepare_cached("UPDATE sessions SET last_seen_at = ?2 WHERE digest = ?1")?
                    .execute(params![digest, now])?;
            }
            Ok(session)
        })
        .await
    }

    async fn end_session(&self, digest: &str) -> Result<(), StoreError> {
        let digest = digest.to_string();
        self.write(move |conn| {
            conn.prepare_cached("DELETE FROM sessions WHERE digest = ?1")?
                .execute(params![digest])?;
            Ok(())
        })
        .await
    }
}

/// After an account changed: whether it exists, having ended its sessions when `end` says so.
fn end_sessions(
    conn: &rusqlite::Connection,
    account_id: Option<&str>,
    end: bool,
) -> Result<bool, StoreError> {
    let Some(id) = account_id else {
        return Ok(false);
    };
    if end {
        conn.prepare_cached("DELETE FROM sessions WHERE account_id = ?1")?
            .execute(params![id])?;
    }
    Ok(true)
}
