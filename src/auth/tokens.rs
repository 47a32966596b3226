//! Bearer tokens: static ones from the configuration (labs, existing integrations) and the short-lived
//! access tokens the token endpoint issues. Both are kept only as SHA-256 digests, so a memory dump
//! or a debug print never shows a usable token.
//!
//! Lookups go through a hash map keyed by the digest, not a string comparison of secrets, so no
//! constant-time compare is needed: the timing of the lookup depends on the digest of what the
//! caller sent, and learning bits of a SHA-256 digest does not help anyone find a token that
//! produces a wanted one.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::Principal;
use crate::config::ClientConfig;
use crate::domain::ClientId;
use crate::store::{IssuedToken, Store, StoreError};

/// How long an issued access token is valid.
pub const ACCESS_TOKEN_LIFETIME: Duration = Duration::seconds(300);

type TokenHash = [u8; 32];

fn hash(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

/// Static client tokens, by digest.
pub struct StaticTokens {
    by_hash: HashMap<TokenHash, ClientId>,
}

impl StaticTokens {
    pub fn new(clients: &[ClientConfig]) -> Self {
        let by_hash = clients
            .iter()
            // An empty token means the client has none (it uses the token endpoint).
            .filter(|c| !c.token.is_empty())
            .map(|c| (hash(&c.token), c.id.clone()))
            .collect();
        StaticTokens { by_hash }
    }

    pub fn client(&self, token: &str) -> Option<&ClientId> {
        self.by_hash.get(&hash(token))
    }
}

/// Configured secrets of a few callers (VCS organisations, the operator), kept as digests and
/// compared digest to digest in constant time, each of them every time, so neither the timing nor
/// the order of the configuration tells a caller how close its guess came.
pub struct TokenTable<K> {
    entries: Vec<(TokenHash, K)>,
}

impl<K> TokenTable<K> {
    /// Hashes the configured tokens once; an empty token admits nobody.
    pub fn new<'t>(tokens: impl IntoIterator<Item = (&'t str, K)>) -> Self {
        let entries = tokens
            .into_iter()
            .filter(|(token, _)| !token.is_empty())
            .map(|(token, key)| (hash(token), key))
            .collect();
        TokenTable { entries }
    }

    /// Whose token this is, if anyone's.
    pub fn find(&self, token: &str) -> Option<&K> {
        let digest = hash(token);
        let mut found = None;
        for (known, key) in &self.entries {
            if bool::from(known.ct_eq(&digest)) {
                found = Some(key);
            }
        }
        found
    }
}

struct Grant {
    client: ClientId,
    scopes: Vec<String>,
    expires: DateTime<Utc>,
}

/// Access tokens issued by the token endpoint. The store keeps them (as digests), so a restart or
/// another replica knows them; a token seen once is then remembered in memory until it expires,
/// because an issued token cannot be revoked early and every request carries one.
#[derive(Default)]
pub struct IssuedTokens {
    known: Mutex<HashMap<TokenHash, Grant>>,
}

fn hex(digest: &TokenHash) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl IssuedTokens {
    /// Issues a new random token for `client` with `scopes`; returns the token text once stored.
    pub async fn issue(
        &self,
        store: &dyn Store,
        client: &ClientId,
        scopes: Vec<String>,
    ) -> Result<String, StoreError> {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let digest = hash(&token);
        let expires = Utc::now() + ACCESS_TOKEN_LIFETIME;
        store
            .save_access_token(IssuedToken {
                digest: hex(&digest),
                client_id: client.clone(),
                scopes: scopes.clone(),
                expires_at: expires,
            })
            .await?;
        self.remember(
            digest,
            Grant {
                client: client.clone(),
                scopes,
                expires,
            },
        );
        Ok(token)
    }

    /// The caller behind an issued token that has not expired.
    pub async fn lookup(
        &self,
        store: &dyn Store,
        token: &str,
    ) -> Result<Option<Principal>, StoreError> {
        let digest = hash(token);
        let now = Utc::now();
        if let Some(principal) = self.known_principal(&digest, now) {
            return Ok(Some(principal));
        }
        let Some(stored) = store.access_token(&hex(&digest), now).await? else {
            return Ok(None);
        };
        let grant = Grant {
            client: stored.client_id,
            scopes: stored.scopes,
            expires: stored.expires_at,
        };
        let principal = principal(&grant);
        self.remember(digest, grant);
        Ok(Some(principal))
    }

    fn known_principal(&self, digest: &TokenHash, now: DateTime<Utc>) -> Option<Principal> {
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known
            .get(digest)
            .filter(|grant| grant.expires > now)
            .map(principal)
    }

    fn remember(&self, digest: TokenHash, grant: Grant) {
        let now = Utc::now();
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known.retain(|_, g| g.expires > now);
        known.insert(digest, grant);
    }
}

fn principal(grant: &Grant) -> Principal {
    Principal {
        client: grant.client.clone(),
        scopes: Some(grant.scopes.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_table_finds_only_the_exact_token() {
        let table = TokenTable::new([("alpha-token", 1), ("beta-token", 2), ("", 3)]);
        assert_eq!(table.find("beta-token"), Some(&2));
        assert_eq!(table.find("alpha-token"), Some(&1));
        assert_eq!(table.find("alpha-token "), None);
        assert_eq!(table.find("ALPHA-TOKEN"), None);
        // An empty configured token admits nobody, not an empty bearer.
        assert_eq!(table.find(""), None);
        assert_eq!(TokenTable::<()>::new(None).find("anything"), None);
    }
}
