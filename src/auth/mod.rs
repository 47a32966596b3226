//! Who is calling: TLS (and mutual TLS), static bearer tokens, and OAuth 2.0 client credentials
//! with `private_key_jwt` (SMART Backend Services, the NHS API platform pattern), plus the
//! `system/…` scopes each endpoint needs.
//!
//! Nothing here knows HTTP: the API's extractors read the `Authorization` header and the TLS
//! connection and ask this module who that is, so the rules for a token can be tested, and used by
//! another front end, without a server.

use std::collections::HashMap;

use crate::config::{ClientConfig, Config};
use crate::domain::{ClientId, CommissionerId, VcsId};
use crate::store::{Store, StoreError};

pub mod jwt;
pub mod scopes;
pub mod tls;
pub mod tokens;

use tls::ClientCertificate;
use tokens::{IssuedTokens, StaticTokens, TokenTable};

/// Why a bearer token was not accepted. Callers answer 401 without saying which: a caller
/// probing tokens learns nothing from the difference.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("unknown or expired token")]
    UnknownToken,
    #[error("the client certificate does not match the one registered for {0}")]
    CertificateMismatch(ClientId),
    /// Issued tokens live in the store: when it cannot answer, the caller is told to retry
    /// (503), not that its token is bad.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An authenticated caller and what it may do.
#[derive(Debug, Clone)]
pub struct Principal {
    pub client: ClientId,
    /// `None`: a static (lab) token, which carries every scope.
    pub scopes: Option<Vec<String>>,
}

impl Principal {
    /// Whether the caller holds `scope` (a concrete scope such as `system/Task.read`).
    pub fn allows(&self, scope: &str) -> bool {
        match &self.scopes {
            None => true,
            Some(granted) => granted.iter().any(|g| scopes::covers(g, scope)),
        }
    }
}

/// The certificate a client must present, when its configuration names one.
#[derive(Debug, Clone, Default)]
struct CertificateBinding {
    subject: Option<String>,
    sha256: Option<String>,
}

impl CertificateBinding {
    fn from_config(client: &ClientConfig) -> Self {
        CertificateBinding {
            subject: client.cert_subject.as_deref().map(tls::normalize_subject),
            sha256: client
                .cert_sha256
                .as_deref()
                .map(tls::normalize_fingerprint),
        }
    }

    fn accepts(&self, presented: Option<&ClientCertificate>) -> bool {
        if self.subject.is_none() && self.sha256.is_none() {
            return true;
        }
        let Some(cert) = presented else {
            return false;
        };
        let subject_ok = self
            .subject
            .as_ref()
            .is_none_or(|s| cert.subject.as_deref() == Some(s.as_str()));
        let hash_ok = self.sha256.as_ref().is_none_or(|h| *h == cert.sha256);
        subject_ok && hash_ok
    }
}

/// Everything authentication needs at request time, built once from the configuration.
pub struct Auth {
    static_tokens: StaticTokens,
    issued: IssuedTokens,
    bindings: HashMap<ClientId, CertificateBinding>,
    token_endpoint: jwt::TokenEndpoint,
    /// Each VCS organisation's token for the VCS API.
    vcs_tokens: TokenTable<VcsId>,
    /// The operator's token for the admin API, `/metrics` and AuditEvent.
    admin_token: TokenTable<()>,
    /// Each commissioner's token for the aggregate reports.
    commissioner_tokens: TokenTable<CommissionerId>,
}

impl Auth {
    /// Builds from a configuration already checked by `app::load_config` (keys parse, scopes known).
    pub fn new(config: &Config) -> Auth {
        Auth {
            static_tokens: StaticTokens::new(&config.clients),
            issued: IssuedTokens::default(),
            bindings: config
                .clients
                .iter()
                .map(|c| (c.id.clone(), CertificateBinding::from_config(c)))
                .collect(),
            token_endpoint: jwt::TokenEndpoint::new(config),
            vcs_tokens: TokenTable::new(
                config.vcs.iter().map(|v| (v.token.as_str(), v.id.clone())),
            ),
            admin_token: TokenTable::new(config.admin.token.as_deref().map(|t| (t, ()))),
            commissioner_tokens: TokenTable::new(
                config
                    .commissioners
                    .iter()
                    .map(|c| (c.token.as_str(), c.id.clone())),
            ),
        }
    }

    /// The commissioner whose token this is.
    pub fn commissioner(&self, bearer: &str) -> Option<&CommissionerId> {
        self.commissioner_tokens.find(bearer)
    }

    /// The VCS organisation whose token this is.
    pub fn vcs(&self, bearer: &str) -> Option<&VcsId> {
        self.vcs_tokens.find(bearer)
    }

    /// Whether this is the operator's token (never, when none is configured).
    pub fn is_operator(&self, bearer: &str) -> bool {
        self.admin_token.find(bearer).is_some()
    }

    /// The token endpoint's URL, which is also the audience client assertions must name.
    pub fn token_endpoint_url(&self) -> &str {
        self.token_endpoint.audience()
    }

    /// The caller behind a bearer token, with the TLS client certificate checked against the
    /// client's registered one.
    pub async fn authenticate(
        &self,
        store: &dyn Store,
        bearer: &str,
        certificate: Option<&ClientCertificate>,
    ) -> Result<Principal, AuthError> {
        let principal = match self.static_tokens.client(bearer) {
            Some(client) => Principal {
                client: client.clone(),
                scopes: None,
            },
            None => self
                .issued
                .lookup(store, bearer)
                .await?
                .ok_or(AuthError::UnknownToken)?,
        };
        self.check_certificate(&principal.client, certificate)?;
        Ok(principal)
    }

    pub(crate) fn check_certificate(
        &self,
        client: &ClientId,
        certificate: Option<&ClientCertificate>,
    ) -> Result<(), AuthError> {
        let accepted = self
            .bindings
            .get(client)
            .is_none_or(|binding| binding.accepts(certificate));
        if accepted {
            Ok(())
        } else {
            Err(AuthError::CertificateMismatch(client.clone()))
        }
    }
}
