//! Issued access tokens and used client assertions in SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::params;

use super::SqliteStore;
use crate::domain::ClientId;
use crate::store::rows::{self, TOKEN_COLUMNS};
use crate::store::traits::Tokens;
use crate::store::types::*;
use crate::store::{timestamp, StoreError};

#[async_trait]
impl Tokens for SqliteStore {
    async fn save_access_token(&self, token: IssuedToken) -> Result<(), StoreError> {
        let expires_at = timestamp(token.expires_at);
        let now = timestamp(Utc::now());
        self.write(move |conn| {
            conn.prepare_cached("DELETE FROM access_tokens WHERE expires_at < ?1")?
                .execute(params![now])?;
            conn.prepare_cached(
                "INSERT INTO access_tokens (digest, client_id, scopes, expires_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![token.digest, token.client_id.as_str(), token.scopes.join(" "), expires_at])?;
            Ok(())
        })
        .await
    }

    async fn access_token(
        &self,
        digest: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<IssuedToken>, StoreError> {
        let (digest, now) = (digest.to_string(), timestamp(now));
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {TOKEN_COLUMNS} FROM access_tokens WHERE digest = ?1 AND expires_at > ?2"
            ))?
            .query_and_then(params![digest, now], |row| rows::issued_token(&digest, row))?
            .next()
            .transpose()
        })
        .await
    }

    async fn use_assertion(
        &self,
        client: &ClientId,
        jti: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (client, jti) = (client.to_string(), jti.to_string());
        let (expires_at, now) = (timestamp(expires_at), timestamp(now));
        self.write(move |conn| {
            conn.prepare_cached("DELETE FROM used_assertions WHERE expires_at < ?1")?
                .execute(params![now])?;
            let inserted = conn
                .prepare_cached(
                    "INSERT INTO used_assertions (client_id, jti, expires_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (client_id, jti) DO NOTHING",
                )?
                .execute(params![client, jti, expires_at])?;
            Ok(inserted == 1)
        })
        .await
    }
}
