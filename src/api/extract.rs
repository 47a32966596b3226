//! Who is calling, as actix extractors: one per kind of caller, so a handler states whom it
//! serves in its signature and never reads a header itself.
//!
//! - `GpClient`: a GP system's bearer token (static, or issued by `/oauth2/token`) and, under
//!   mutual TLS, its certificate; the handler then asks for the scope it needs.
//! - `VcsCaller`: a VCS organisation's token for the VCS API.
//! - `Operator`: the operator's token for the admin API, `/metrics` and AuditEvent.
//! - `DirectoryReader`: a GP system or a VCS organisation, reading the service directory.
//! - `Commissioner`: a commissioner's token for the aggregate reports. A commissioner's token
//!   anywhere else, and another caller's token on the reports, get 403.
//!
//! One rule reads the token for all three: `Authorization: Bearer <token>`, the scheme in any
//! case (RFC 7235). Without one, or with one that names nobody, the answer is 401 with
//! `WWW-Authenticate: Bearer`, in the dialect of the API called (`errors::refuse`). Configured
//! tokens are compared by digest in constant time (`auth::tokens::TokenTable`). A token that
//! names nobody is audited as a failed login (the caller's address, never the token).

use std::any::Any;
use std::future::{ready, Future, Ready};
use std::pin::Pin;

use actix_tls::accept::rustls_0_23::TlsStream;
use actix_web::dev::{Extensions, Payload};
use actix_web::rt::net::TcpStream;
use actix_web::{web, FromRequest, HttpRequest};

use super::access;
use super::errors::{refuse, ApiError, Refusal};
use super::rate_limit::{self, Caller};
use super::AppState;
use crate::auth::tls::ClientCertificate;
use crate::auth::{AuthError, Principal};
use crate::config::CommissionerConfig;
use crate::domain::{ClientId, VcsId};

/// actix-web's per-connection hook: keeps the TLS peer certificate for the connection's requests
/// (`HttpRequest::conn_data::<ClientCertificate>()`), where `GpClient` finds it.
pub fn on_connect(connection: &dyn Any, extensions: &mut Extensions) {
    let Some(stream) = connection.downcast_ref::<TlsStream<TcpStream>>() else {
        return;
    };
    let (_, session) = stream.get_ref();
    if let Some(cert) = session.peer_certificates().and_then(|c| c.first()) {
        extensions.insert(ClientCertificate::from_der(cert.as_ref()));
    }
}

/// The token of an `Authorization: Bearer <token>` header; `None` for any other header or none.
pub fn bearer(request: &HttpRequest) -> Option<&str> {
    let value = request.headers().get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn state(request: &HttpRequest) -> Result<&web::Data<AppState>, Refusal> {
    request
        .app_data::<web::Data<AppState>>()
        .ok_or(Refusal::Unconfigured)
}

/// An authenticated GP client and the scopes its token carries.
#[derive(Debug, Clone)]
pub struct GpClient(Principal);

impl GpClient {
    /// The client, when its token carries `scope` (e.g. `system/Task.read`); 403 otherwise.
    pub fn require(&self, scope: &str) -> Result<ClientId, ApiError> {
        if self.0.allows(scope) {
            Ok(self.0.client.clone())
        } else {
            Err(ApiError::Forbidden(scope.to_string()))
        }
    }
}

/// Counts an authenticated request in its caller's bucket (`rate_limit`).
fn counted<T>(
    request: &HttpRequest,
    state: &AppState,
    caller: Caller,
    found: T,
) -> Result<T, Refusal> {
    rate_limit::count(request, &state.limits, &caller).map_err(Refusal::Throttled)?;
    Ok(found)
}

/// A request that authenticated nobody: counted in its peer address's bucket, so made-up tokens
/// share one bucket per sender; past it `429`, otherwise `401`.
fn refused(request: &HttpRequest, state: &AppState) -> Refusal {
    match rate_limit::count(request, &state.limits, &rate_limit::peer_of(request)) {
        Ok(()) => Refusal::Unauthorized,
        Err(throttled) => Refusal::Throttled(throttled),
    }
}

/// A presented credential that authenticates nobody: refused like any anonymous request and,
/// unless its address is already over its limit (which bounds the audit log too), recorded as a
/// failed login.
fn refused_login(request: &HttpRequest, state: &AppState) -> Refusal {
    let refusal = refused(request, state);
    if matches!(refusal, Refusal::Unauthorized) {
        access::record_failed_login(state, request);
    }
    refusal
}

/// A caller named by a static token (a VCS organisation, the operator): a known one is counted in
/// its own bucket, a token that names nobody is a failed login, no token an anonymous request.
fn by_token<T>(
    request: &HttpRequest,
    identify: impl FnOnce(&AppState, &str) -> Option<(Caller, T)>,
) -> Result<T, Refusal> {
    let state = state(request)?;
    let Some(token) = bearer(request) else {
        return Err(refused(request, state));
    };
    match identify(state, token) {
        Some((caller, found)) => counted(request, state, caller, found),
        None => Err(not_for_commissioners(request, state, token)
            .unwrap_or_else(|| refused_login(request, state))),
    }
}

/// A commissioner's token where records are disclosed: `403`, counted in its own bucket.
fn not_for_commissioners(request: &HttpRequest, state: &AppState, token: &str) -> Option<Refusal> {
    let commissioner = state.auth.commissioner(token)?;
    let caller = Caller::Commissioner(commissioner.clone());
    Some(
        counted(request, state, caller, ())
            .err()
            .unwrap_or(Refusal::AggregatesOnly),
    )
}

async fn gp_client(request: &HttpRequest) -> Result<GpClient, Refusal> {
    let state = state(request)?;
    let Some(token) = bearer(request) else {
        return Err(refused(request, state));
    };
    if let Some(refusal) = not_for_commissioners(request, state, token) {
        return Err(refusal);
    }
    let certificate = request.conn_data::<ClientCertificate>();
    match state
        .auth
        .authenticate(state.store.as_ref(), token, certificate)
        .await
    {
        Ok(principal) => {
            let caller = Caller::Client(principal.client.clone());
            counted(request, state, caller, GpClient(principal))
        }
        Err(AuthError::Store(e)) => Err(Refusal::Store(e)),
        Err(e) => {
            tracing::info!(reason = %e, "authentication refused");
            Err(refused_login(request, state))
        }
    }
}

impl FromRequest for GpClient {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let request = request.clone();
        Box::pin(async move {
            gp_client(&request)
                .await
                .map_err(|refusal| refuse(&request, refusal))
        })
    }
}

/// The VCS organisation behind a VCS API request.
#[derive(Debug, Clone)]
pub struct VcsCaller(pub VcsId);

impl FromRequest for VcsCaller {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let found = by_token(request, |state, token| {
            let vcs = state.auth.vcs(token)?;
            Some((Caller::Vcs(vcs.clone()), VcsCaller(vcs.clone())))
        });
        ready(found.map_err(|refusal| refuse(request, refusal)))
    }
}

/// Who reads the service directory: a GP system (its token must carry the scope for the type
/// read) or a VCS organisation (for onward referral).
#[derive(Debug, Clone)]
pub enum DirectoryReader {
    Gp(GpClient),
    Vcs(VcsId),
}

impl DirectoryReader {
    /// Whether this caller may read `resource_type`: GP systems need its read scope (403).
    pub fn require(&self, resource_type: &str) -> Result<(), ApiError> {
        match self {
            DirectoryReader::Gp(client) => client
                .require(&crate::auth::scopes::read(resource_type))
                .map(|_| ()),
            DirectoryReader::Vcs(_) => Ok(()),
        }
    }
}

impl FromRequest for DirectoryReader {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let request = request.clone();
        Box::pin(async move {
            let vcs = state(&request).ok().and_then(|state| {
                let vcs = bearer(&request).and_then(|token| state.auth.vcs(token))?;
                Some((state, vcs.clone()))
            });
            match vcs {
                // Counted in the organisation's bucket, as its other requests are.
                Some((state, vcs)) => counted(
                    &request,
                    state,
                    Caller::Vcs(vcs.clone()),
                    DirectoryReader::Vcs(vcs),
                )
                .map_err(|refusal| refuse(&request, refusal)),
                None => GpClient::extract(&request).await.map(DirectoryReader::Gp),
            }
        })
    }
}

/// The gateway's operator.
#[derive(Debug, Clone, Copy)]
pub struct Operator;

impl FromRequest for Operator {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let found = by_token(request, |state, token| {
            state
                .auth
                .is_operator(token)
                .then_some((Caller::Operator, Operator))
        });
        ready(found.map_err(|refusal| refuse(request, refusal)))
    }
}

/// A commissioner reading the aggregate reports, with the scope of its figures.
#[derive(Debug, Clone)]
pub struct Commissioner(pub CommissionerConfig);

async fn commissioner(request: &HttpRequest) -> Result<Commissioner, Refusal> {
    let state = state(request)?;
    let Some(token) = bearer(request) else {
        return Err(refused(request, state));
    };
    if let Some(id) = state.auth.commissioner(token) {
        let found = state.config.commissioners.iter().find(|c| &c.id == id);
        let found = found.ok_or(Refusal::Unconfigured)?;
        let caller = Caller::Commissioner(id.clone());
        return counted(request, state, caller, Commissioner(found.clone()));
    }
    // Another caller's own token: known, but not a commissioner.
    let known = if let Some(vcs) = state.auth.vcs(token) {
        Some(Caller::Vcs(vcs.clone()))
    } else if state.auth.is_operator(token) {
        Some(Caller::Operator)
    } else {
        let certificate = request.conn_data::<ClientCertificate>();
        match state
            .auth
            .authenticate(state.store.as_ref(), token, certificate)
            .await
        {
            Ok(principal) => Some(Caller::Client(principal.client)),
            Err(AuthError::Store(e)) => return Err(Refusal::Store(e)),
            Err(_) => None,
        }
    };
    match known {
        Some(caller) => {
            counted(request, state, caller, ())?;
            Err(Refusal::NotCommissioner)
        }
        None => Err(refused_login(request, state)),
    }
}

impl FromRequest for Commissioner {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let request = request.clone();
        Box::pin(async move {
            commissioner(&request)
                .await
                .map_err(|refusal| refuse(&request, refusal))
        })
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn token_of(header: Option<&str>) -> Option<String> {
        let mut request = TestRequest::default();
        if let Some(value) = header {
            request = request.insert_header(("authorization", value));
        }
        bearer(&request.to_http_request()).map(str::to_string)
    }

    #[test]
    fn one_rule_reads_a_bearer_token() {
        assert_eq!(token_of(Some("Bearer abc")).as_deref(), Some("abc"));
        assert_eq!(token_of(Some("bearer abc")).as_deref(), Some("abc"));
        assert_eq!(token_of(Some("BEARER  abc ")).as_deref(), Some("abc"));
        assert_eq!(token_of(Some("Basic abc")), None);
        assert_eq!(token_of(Some("Bearer")), None);
        assert_eq!(token_of(Some("Bearer ")), None);
        assert_eq!(token_of(Some("abc")), None);
        assert_eq!(token_of(None), None);
    }
}
