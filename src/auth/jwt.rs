//! OAuth 2.0 client credentials with `private_key_jwt` (RFC 7523, SMART Backend Services): a
//! client proves who it is with a short-lived JWT signed by a key it registered (`[[clients]]
//! jwks`), and gets a short-lived opaque access token carrying `system/…` scopes.

use std::collections::{HashMap, HashSet};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use chrono::{DateTime, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::scopes;
use super::tls::ClientCertificate;
use super::tokens::ACCESS_TOKEN_LIFETIME;
use super::Auth;
use crate::config::Config;
use crate::domain::ClientId;
use crate::store::{Store, StoreError};

/// The only assertion type RFC 7523 defines for client authentication.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// How far ahead an assertion's `exp` may be (SMART Backend Services: at most five minutes).
const MAX_ASSERTION_LIFETIME_SECS: u64 = 300;
/// Clock difference tolerated between the client and us.
const CLOCK_SKEW_SECS: u64 = 30;

/// A client's registered keys could not be used; the message says why.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("not a JWK Set: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("the JWK Set has no keys")]
    Empty,
    #[error("key {index}: only RSA (RS384) and EC P-384 (ES384) keys are accepted")]
    UnsupportedKey { index: usize },
    #[error("key {index}: {source}")]
    BadKey {
        index: usize,
        source: jsonwebtoken::errors::Error,
    },
}

/// One registered public key and the algorithm it verifies.
#[derive(Clone)]
pub struct ClientKey {
    algorithm: Algorithm,
    key: DecodingKey,
    kid: Option<String>,
}

/// Reads a JWK Set from inline JSON (starting with `{`) or from a file path.
pub fn load_keys(source: &str) -> Result<Vec<ClientKey>, JwksError> {
    let text = if source.trim_start().starts_with('{') {
        source.to_string()
    } else {
        std::fs::read_to_string(source).map_err(|e| JwksError::Read {
            path: source.to_string(),
            source: e,
        })?
    };
    let set: JwkSet = serde_json::from_str(&text)?;
    if set.keys.is_empty() {
        return Err(JwksError::Empty);
    }
    set.keys
        .iter()
        .enumerate()
        .map(|(index, jwk)| {
            let algorithm = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => Algorithm::RS384,
                AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P384 => {
                    Algorithm::ES384
                }
                _ => return Err(JwksError::UnsupportedKey { index }),
            };
            let key =
                DecodingKey::from_jwk(jwk).map_err(|source| JwksError::BadKey { index, source })?;
            Ok(ClientKey {
                algorithm,
                key,
                kid: jwk.common.key_id.clone(),
            })
        })
        .collect()
}

/// An RFC 6749 token error.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    UnsupportedGrantType(String),
    #[error("{0}")]
    InvalidClient(String),
    #[error("{0}")]
    InvalidScope(String),
    /// The store that keeps tokens and used assertions cannot be reached: try again shortly.
    #[error("{0}")]
    Unavailable(String),
}

impl OAuthError {
    /// The `error` code RFC 6749 (section 5.2) gives this refusal.
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_) => "invalid_request",
            OAuthError::UnsupportedGrantType(_) => "unsupported_grant_type",
            OAuthError::InvalidClient(_) => "invalid_client",
            OAuthError::InvalidScope(_) => "invalid_scope",
            OAuthError::Unavailable(_) => "temporarily_unavailable",
        }
    }
}

struct RegisteredClient {
    keys: Vec<ClientKey>,
    /// Concrete scopes this client may be granted.
    allowed: Vec<String>,
}

/// What the token endpoint knows: clients' keys and scopes, and our audience. The `jti`s already
/// used are in the store, so a replay is refused by every replica.
pub struct TokenEndpoint {
    audience: String,
    clients: HashMap<ClientId, RegisteredClient>,
}

/// A verified client assertion: who it authenticates, and the id that must not be used again.
struct VerifiedAssertion<'a> {
    client: &'a ClientId,
    jti: String,
    /// Until when a replay must be refused (after that, the `exp` check refuses it anyway).
    replay_window_ends: DateTime<Utc>,
}

#[derive(Debug, Deserialize)]
struct AssertionClaims {
    iss: String,
    exp: u64,
    /// Issued at: an assertion from the future is refused (beyond the clock skew).
    #[serde(default)]
    iat: Option<u64>,
    #[serde(default)]
    jti: Option<String>,
}

#[derive(Debug, Deserialize)]
struct UnverifiedIssuer {
    iss: Option<String>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl TokenEndpoint {
    /// Clients without `jwks` cannot use the endpoint; keys were checked by `app::load_config`.
    pub fn new(config: &Config) -> Self {
        let clients = config
            .clients
            .iter()
            .filter_map(|client| {
                let keys = load_keys(client.jwks.as_deref()?).ok()?;
                let allowed = match &client.scopes {
                    Some(patterns) => patterns.iter().flat_map(|p| scopes::expand(p)).collect(),
                    None => scopes::all(),
                };
                Some((client.id.clone(), RegisteredClient { keys, allowed }))
            })
            .collect();
        TokenEndpoint {
            audience: format!("{}/oauth2/token", config.base_url()),
            clients,
        }
    }

    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Checks a client assertion's signature, claims and lifetime.
    fn verify_assertion(&self, assertion: &str) -> Result<VerifiedAssertion<'_>, OAuthError> {
        let invalid = |why: &str| OAuthError::InvalidClient(why.to_string());
        let header = jsonwebtoken::decode_header(assertion)
            .map_err(|_| invalid("client_assertion is not a JWT"))?;
        if !matches!(header.alg, Algorithm::RS384 | Algorithm::ES384) {
            return Err(invalid(
                "client_assertion must be signed with RS384 or ES384",
            ));
        }
        // The issuer picks the keys to verify with, so it is read before the signature is checked;
        // nothing else from the unverified payload is used.
        let issuer = unverified_issuer(assertion).ok_or_else(|| invalid("iss is missing"))?;
        let (client, registered) = issuer
            .parse::<ClientId>()
            .ok()
            .and_then(|id| self.clients.get_key_value(&id))
            .ok_or_else(|| invalid("iss is not a client registered for private_key_jwt"))?;
        let mut validation = Validation::new(header.alg);
        validation.set_audience(&[self.audience.as_str()]);
        validation.set_issuer(&[client.as_str()]);
        validation.sub = Some(client.as_str().to_string());
        validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        validation.leeway = CLOCK_SKEW_SECS;
        // `nbf`, where given, is checked (with the same leeway): not valid yet is not valid.
        validation.validate_nbf = true;
        let mut last_error = invalid("no registered key for this algorithm and kid");
        for key in registered.keys.iter().filter(|k| {
            k.algorithm == header.alg
                && (header.kid.is_none() || k.kid.is_none() || header.kid == k.kid)
        }) {
            match jsonwebtoken::decode::<AssertionClaims>(assertion, &key.key, &validation) {
                Ok(data) => return check_lifetime(client, data.claims),
                Err(e) => last_error = describe(e.kind()),
            }
        }
        Err(last_error)
    }

    /// The scopes to grant: what was asked (patterns allowed), limited to the client's scopes.
    fn grant(&self, client: &ClientId, requested: Option<&str>) -> Result<Vec<String>, OAuthError> {
        let allowed = self
            .clients
            .get(client)
            .map(|c| c.allowed.clone())
            .unwrap_or_default();
        let Some(requested) = requested.filter(|r| !r.trim().is_empty()) else {
            return Ok(allowed);
        };
        let mut wanted = HashSet::new();
        for pattern in requested.split_whitespace() {
            let expanded = scopes::expand(pattern);
            if expanded.is_empty() {
                return Err(OAuthError::InvalidScope(format!(
                    "unknown scope {pattern:?}: we serve system/<Type>.read|write"
                )));
            }
            wanted.extend(expanded);
        }
        let granted: Vec<String> = allowed.into_iter().filter(|s| wanted.contains(s)).collect();
        if granted.is_empty() {
            return Err(OAuthError::InvalidScope(
                "none of the requested scopes is allowed for this client".into(),
            ));
        }
        Ok(granted)
    }
}

/// An assertion may live five minutes at most and must carry a `jti`.
fn check_lifetime(
    client: &ClientId,
    claims: AssertionClaims,
) -> Result<VerifiedAssertion<'_>, OAuthError> {
    if claims.exp > now_secs() + MAX_ASSERTION_LIFETIME_SECS + CLOCK_SKEW_SECS {
        return Err(OAuthError::InvalidClient(
            "exp is more than 5 minutes ahead".into(),
        ));
    }
    if claims
        .iat
        .is_some_and(|iat| iat > now_secs() + CLOCK_SKEW_SECS)
    {
        return Err(OAuthError::InvalidClient("iat is in the future".into()));
    }
    debug_assert_eq!(claims.iss, client.as_str());
    let jti = claims
        .jti
        .filter(|j| !j.is_empty())
        .ok_or_else(|| OAuthError::InvalidClient("jti is missing".into()))?;
    let replay_window_ends = i64::try_from(claims.exp + CLOCK_SKEW_SECS)
        .ok()
        .and_then(|secs| DateTime::from_timestamp(secs, 0))
        .ok_or_else(|| OAuthError::InvalidClient("exp is out of range".into()))?;
    Ok(VerifiedAssertion {
        client,
        jti,
        replay_window_ends,
    })
}

fn unavailable(error: StoreError) -> OAuthError {
    OAuthError::Unavailable(format!("try again shortly ({error})"))
}

fn describe(kind: &ErrorKind) -> OAuthError {
    let why = match kind {
        ErrorKind::ExpiredSignature => "the assertion has expired",
        ErrorKind::InvalidAudience => "aud must be this token endpoint's URL",
        ErrorKind::InvalidIssuer => "iss must be the client id",
        ErrorKind::InvalidSubject => "sub must be the client id",
        ErrorKind::InvalidSignature => "the signature does not match a registered key",
        ErrorKind::ImmatureSignature => "the assertion is not valid yet",
        ErrorKind::MissingRequiredClaim(_) => "iss, sub, aud and exp are required",
        _ => "the assertion cannot be verified",
    };
    OAuthError::InvalidClient(why.into())
}

fn unverified_issuer(jwt: &str) -> Option<String> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice::<UnverifiedIssuer>(&bytes).ok()?.iss
}

/// A granted access token, as the token endpoint answers it.
#[derive(Debug)]
pub struct AccessGrant {
    pub access_token: String,
    /// The granted scopes, space-separated.
    pub scope: String,
    pub expires_in: i64,
}

impl Auth {
    /// `grant_type=client_credentials` with a `private_key_jwt` assertion (the token request's
    /// form fields), from a client on a connection that presented `certificate`.
    pub async fn exchange(
        &self,
        store: &dyn Store,
        form: &HashMap<String, String>,
        certificate: Option<&ClientCertificate>,
    ) -> Result<AccessGrant, OAuthError> {
        let field = |name: &str| form.get(name).map(String::as_str);
        if field("grant_type") != Some("client_credentials") {
            return Err(OAuthError::UnsupportedGrantType(
                "only grant_type=client_credentials".into(),
            ));
        }
        if field("client_assertion_type") != Some(ASSERTION_TYPE) {
            return Err(OAuthError::InvalidRequest(format!(
                "client_assertion_type must be {ASSERTION_TYPE}"
            )));
        }
        let assertion = field("client_assertion")
            .ok_or_else(|| OAuthError::InvalidRequest("client_assertion is missing".into()))?;
        let endpoint = &self.token_endpoint;
        let verified = endpoint.verify_assertion(assertion)?;
        let client = verified.client;
        // Everything that can refuse the request is checked before the jti is spent, so a
        // refusal (wrong certificate, a scope not allowed) leaves the assertion usable for the
        // corrected request within its lifetime, and the jti table is written only for grants.
        self.check_certificate(client, certificate)
            .map_err(|e| OAuthError::InvalidClient(e.to_string()))?;
        let granted = endpoint.grant(client, field("scope"))?;
        let first_use = store
            .use_assertion(
                client,
                &verified.jti,
                verified.replay_window_ends,
                Utc::now(),
            )
            .await
            .map_err(unavailable)?;
        if !first_use {
            return Err(OAuthError::InvalidClient(
                "this jti has been used already".into(),
            ));
        }
        let scope = granted.join(" ");
        let access_token = self
            .issued
            .issue(store, client, granted)
            .await
            .map_err(unavailable)?;
        tracing::info!(client = %client.as_str(), scope = %scope, "access token issued");
        Ok(AccessGrant {
            access_token,
            scope,
            expires_in: ACCESS_TOKEN_LIFETIME.num_seconds(),
        })
    }
}
