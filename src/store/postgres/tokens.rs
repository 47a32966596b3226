//! Issued access tokens and used client assertions in PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::PostgresStore;
use crate::domain::ClientId;
use crate::store::rows::{self, TOKEN_COLUMNS};
use crate::store::traits::Tokens;
use crate::store::types::*;
use crate::store::StoreError;

#[async_trait]
impl Tokens for PostgresStore {
    async fn save_access_token(&self, token: IssuedToken) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM access_tokens WHERE expires_at < now()")
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO access_tokens (digest, client_id, scopes, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&token.digest)
        .bind(token.client_id.as_str())
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
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM access_tokens WHERE digest = $1 AND expires_at > $2"
        )))
        .bind(digest)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?
        .map(|row| rows::issued_token(digest, &row))
        .transpose()
    }

    async fn use_assertion(
        &self,
        client: &ClientId,
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
        .bind(client.as_str())
        .bind(jti)
        .bind(expires_at)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(inserted == 1)
    }
}
