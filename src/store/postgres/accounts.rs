//! Inbox accounts and sessions in PostgreSQL, shared by every replica.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::PostgresStore;
use crate::store::accounts::{self, ACCOUNT_COLUMNS, SESSION_COLUMNS};
use crate::store::traits::Accounts;
use crate::store::{Account, Email, NewSession, Session, StoreError};

#[async_trait]
impl Accounts for PostgresStore {
    async fn create_account(&self, account: Account) -> Result<bool, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO accounts (id, email, role, vcs_id, password_hash, totp_secret, disabled,
                                   created_at, commissioner_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (email) DO NOTHING",
        )
        .bind(&account.id)
        .bind(account.email.as_str())
        .bind(account.membership.role())
        .bind(account.membership.vcs().map(|v| v.as_str()))
        .bind(&account.password_hash)
        .bind(&account.totp_secret)
        .bind(account.disabled)
        .bind(account.created_at)
        .bind(account.membership.commissioner().map(|c| c.as_str()))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(inserted == 1)
    }

    async fn account_by_email(&self, email: &Email) -> Result<Option<Account>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts a WHERE a.email = $1"
        )))
        .bind(email.as_str())
        .fetch_optional(&self.pool)
        .await?
        .map(|row| accounts::account(&row))
        .transpose()
    }

    async fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts a ORDER BY a.email"
        )))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(accounts::account)
        .collect()
    }

    async fn set_account_disabled(
        &self,
        email: &Email,
        disabled: bool,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let id: Option<String> =
            sqlx::query_scalar("UPDATE accounts SET disabled = $2 WHERE email = $1 RETURNING id")
                .bind(email.as_str())
                .bind(disabled)
                .fetch_optional(&mut *tx)
                .await?;
        end_sessions(tx, id, disabled).await
    }

    async fn set_password(&self, email: &Email, password_hash: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let id: Option<String> = sqlx::query_scalar(
            "UPDATE accounts SET password_hash = $2 WHERE email = $1 RETURNING id",
        )
        .bind(email.as_str())
        .bind(password_hash)
        .fetch_optional(&mut *tx)
        .await?;
        end_sessions(tx, id, true).await
    }

    async fn create_session(&self, session: NewSession) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (digest, account_id, csrf_token, created_at, last_seen_at)
             VALUES ($1, $2, $3, $4, $4)",
        )
        .bind(&session.digest)
        .bind(&session.account_id)
        .bind(&session.csrf_token)
        .bind(session.at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn session(
        &self,
        digest: &str,
        idle_since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError> {
        sqlx::query("DELETE FROM sessions WHERE last_seen_at < $1")
            .bind(idle_since)
            .execute(&self.pool)
            .await?;
        // Marking it used and reading it back in one statement: a session that idled out
        // meanwhile on another replica is not revived.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "WITH used AS (
                 UPDATE sessions SET last_seen_at = $3
                 WHERE digest = $1 AND last_seen_at >= $2
                 RETURNING digest, account_id, csrf_token, created_at)
             SELECT {ACCOUNT_COLUMNS}, {SESSION_COLUMNS}
             FROM used s JOIN accounts a ON a.id = s.account_id
             WHERE NOT a.disabled"
        )))
        .bind(digest)
        .bind(idle_since)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?
        .map(|row| accounts::session(&row))
        .transpose()
    }

    async fn end_session(&self, digest: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE digest = $1")
            .bind(digest)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// After an account changed in `tx`: ends its sessions when `end` says so, commits, and answers
/// whether the account exists.
async fn end_sessions(
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    account_id: Option<String>,
    end: bool,
) -> Result<bool, StoreError> {
    if let (Some(id), true) = (&account_id, end) {
        sqlx::query("DELETE FROM sessions WHERE account_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(account_id.is_some())
}
