//! OAuth 2.0 client credentials with `private_key_jwt` (RFC 7523, SMART Backend Services): a
//! client proves who it is with a short-lived JWT signed by a key it registered (`[[clients]]
//! jwks`), and gets a short-lived opaque access token carrying `system/…` scopes.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::json;

use super::scopes;
use super::tls::ClientCertificate;
use super::tokens::ACCESS_TOKEN_LIFETIME;
use crate::api::AppState;
use crate::config::Config;
use crate::domain::ClientId;

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
}

impl OAuthError {
    fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_) => "invalid_request",
            OAuthError::UnsupportedGrantType(_) => "unsupported_grant_type",
            OAuthError::InvalidClient(_) => "invalid_client",
            OAuthError::InvalidScope(_) => "invalid_scope",
        }
    }

    fn response(&self) -> HttpResponse {
        let mut builder = match self {
            OAuthError::InvalidClient(_) => HttpResponse::Unauthorized(),
            _ => HttpResponse::BadRequest(),
        };
        builder
            .insert_header(("cache-control", "no-store"))
            .json(json!({"error": self.code(), "error_description": self.to_string()}))
    }
}

struct RegisteredClient {
    keys: Vec<ClientKey>,
    /// Concrete scopes this client may be granted.
    allowed: Vec<String>,
}

/// What the token endpoint knows: clients' keys and scopes, our audience, and the `jti`s seen.
pub struct TokenEndpoint {
    audience: String,
    clients: HashMap<ClientId, RegisteredClient>,
    /// `(client, jti)` → the assertion's `exp`: a replay is refused until then, after which the
    /// `exp` check refuses it anyway. In memory, so per process: with several replicas a shared
    /// store (PostgreSQL) must hold these, or a jti could be replayed against another replica.
    seen: Mutex<HashMap<(ClientId, String), u64>>,
}

#[derive(Debug, Deserialize)]
struct AssertionClaims {
    iss: String,
    exp: u64,
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
    /// Clients without `jwks` cannot use the endpoint; keys were checked by `Config::load`.
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
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Checks a client assertion; returns the client it authenticates.
    fn verify_assertion(&self, assertion: &str) -> Result<&ClientId, OAuthError> {
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
        let mut last_error = invalid("no registered key for this algorithm and kid");
        for key in registered.keys.iter().filter(|k| {
            k.algorithm == header.alg
                && (header.kid.is_none() || k.kid.is_none() || header.kid == k.kid)
        }) {
            match jsonwebtoken::decode::<AssertionClaims>(assertion, &key.key, &validation) {
                Ok(data) => {
                    self.check_lifetime_and_replay(client, &data.claims)?;
                    return Ok(client);
                }
                Err(e) => last_error = describe(e.kind()),
            }
        }
        Err(last_error)
    }

    fn check_lifetime_and_replay(
        &self,
        client: &ClientId,
        claims: &AssertionClaims,
    ) -> Result<(), OAuthError> {
        let now = now_secs();
        if claims.exp > now + MAX_ASSERTION_LIFETIME_SECS + CLOCK_SKEW_SECS {
            return Err(OAuthError::InvalidClient(
                "exp is more than 5 minutes ahead".into(),
            ));
        }
        debug_assert_eq!(claims.iss, client.as_str());
        let jti = claims
            .jti
            .as_deref()
            .filter(|j| !j.is_empty())
            .ok_or_else(|| OAuthError::InvalidClient("jti is missing".into()))?;
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.retain(|_, exp| *exp + CLOCK_SKEW_SECS >= now);
        if seen
            .insert((client.clone(), jti.to_string()), claims.exp)
            .is_some()
        {
            return Err(OAuthError::InvalidClient(
                "this jti has been used already".into(),
            ));
        }
        Ok(())
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

/// `POST /oauth2/token`: `grant_type=client_credentials` with a `private_key_jwt` assertion.
pub async fn token(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let certificate = request.conn_data::<ClientCertificate>();
    match exchange(&state, &form, certificate) {
        Ok(response) => response,
        Err(error) => {
            tracing::info!(error = error.code(), reason = %error, "token request refused");
            error.response()
        }
    }
}

fn exchange(
    state: &AppState,
    form: &HashMap<String, String>,
    certificate: Option<&ClientCertificate>,
) -> Result<HttpResponse, OAuthError> {
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
    let endpoint = &state.auth.token_endpoint;
    let client = endpoint.verify_assertion(assertion)?;
    state
        .auth
        .check_certificate(client, certificate)
        .map_err(|e| OAuthError::InvalidClient(e.to_string()))?;
    let granted = endpoint.grant(client, field("scope"))?;
    let scope = granted.join(" ");
    let access_token = state.auth.issued().issue(client, granted);
    tracing::info!(client = %client.as_str(), scope = %scope, "access token issued");
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(json!({
            "access_token": access_token,
            "token_type": "bearer",
            "expires_in": ACCESS_TOKEN_LIFETIME.as_secs(),
            "scope": scope,
        })))
}

/// `GET /fhir/.well-known/smart-configuration`: SMART discovery, so a backend service finds the
/// token endpoint and what it accepts without reading our documentation.
pub async fn smart_configuration(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "token_endpoint": state.auth.token_endpoint.audience,
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "scopes_supported": scopes::all(),
        "capabilities": ["client-confidential-asymmetric"],
    }))
}
