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
use std::time::{Duration, Instant};

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::Principal;
use crate::config::ClientConfig;
use crate::domain::ClientId;

/// How long an issued access token is valid.
pub const ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(300);

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

struct Grant {
    client: ClientId,
    scopes: Vec<String>,
    expires: Instant,
}

/// Access tokens issued by the token endpoint, in memory: a restart or another replica does not
/// know them, and clients simply ask for a new one (a PostgreSQL-backed store is the replica story).
#[derive(Default)]
pub struct IssuedTokens {
    grants: Mutex<HashMap<TokenHash, Grant>>,
}

impl IssuedTokens {
    /// Issues a new random token for `client` with `scopes`; returns the token text.
    pub fn issue(&self, client: &ClientId, scopes: Vec<String>) -> String {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let now = Instant::now();
        let mut grants = self.grants.lock().unwrap_or_else(|p| p.into_inner());
        grants.retain(|_, g| g.expires > now);
        grants.insert(
            hash(&token),
            Grant {
                client: client.clone(),
                scopes,
                expires: now + ACCESS_TOKEN_LIFETIME,
            },
        );
        token
    }

    /// The caller behind an issued token that has not expired.
    pub fn lookup(&self, token: &str) -> Option<Principal> {
        let grants = self.grants.lock().unwrap_or_else(|p| p.into_inner());
        let grant = grants.get(&hash(token))?;
        (grant.expires > Instant::now()).then(|| Principal {
            client: grant.client.clone(),
            scopes: Some(grant.scopes.clone()),
        })
    }
}
