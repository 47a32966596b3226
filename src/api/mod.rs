//! HTTP: routes, authentication, correlation ids and request logs. Handlers only parse
//! requests and render responses; the rules live in `intake`, `translate` and `store`.

use std::sync::Arc;
use std::time::Instant;

use actix_web::dev::Service;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{web, HttpMessage, HttpRequest};

use crate::auth::tls::ClientCertificate;
use crate::auth::{Auth, AuthError, Principal};
use crate::config::Config;
use crate::delivery::Wake;
use crate::domain::ClientId;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::validation::Validation;

pub mod admin;
pub mod audit;
pub mod capability;
pub mod conformance;
pub mod errors;
pub mod fhir;
pub mod fhir_common;
pub mod fhir_loop;
pub mod problem;
pub mod rate_limit;
pub mod vcs;

use errors::ApiError;

/// What every handler shares.
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub validation: Arc<Validation>,
    pub metrics: Arc<Metrics>,
    /// Wakes the delivery worker after a commit that added outbox messages.
    pub wake: Wake,
    pub vcs_schemas: vcs::VcsSchemas,
    /// Bearer tokens (static and issued), certificate bindings, the token endpoint.
    pub auth: Auth,
}

impl AppState {
    pub fn new(
        config: Arc<Config>,
        store: Arc<dyn Store>,
        validation: Arc<Validation>,
        metrics: Arc<Metrics>,
        wake: Wake,
        vcs_schemas: vcs::VcsSchemas,
    ) -> Self {
        let auth = Auth::new(&config);
        AppState {
            config,
            store,
            validation,
            metrics,
            wake,
            vcs_schemas,
            auth,
        }
    }

    /// A referral was committed: count it and wake the delivery worker.
    pub fn accepted(&self) {
        self.metrics.referrals_accepted.inc();
        self.wake.notify_one();
    }

    /// The GP client behind a request, which must hold `scope` (e.g. `system/Task.read`):
    /// 401 without a valid token (or with the wrong client certificate), 403 without the scope.
    pub async fn authorize(
        &self,
        request: &HttpRequest,
        scope: &str,
    ) -> Result<ClientId, ApiError> {
        let principal = self.principal(request).await?;
        if principal.allows(scope) {
            Ok(principal.client)
        } else {
            Err(ApiError::Forbidden(scope.to_string()))
        }
    }

    async fn principal(&self, request: &HttpRequest) -> Result<Principal, ApiError> {
        let token = request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .ok_or(ApiError::Unauthorized)?;
        let certificate = request.conn_data::<ClientCertificate>();
        match self
            .auth
            .authenticate(self.store.as_ref(), token, certificate)
            .await
        {
            Ok(principal) => Ok(principal),
            Err(AuthError::Store(e)) => Err(ApiError::Store(e)),
            Err(e) => {
                tracing::info!(reason = %e, "authentication refused");
                Err(ApiError::Unauthorized)
            }
        }
    }
}

/// The correlation id of a request (echoed from `X-Request-ID`/`X-Correlation-ID`, or made up).
#[derive(Debug, Clone)]
pub struct CorrelationId(pub String);

const CORRELATION_HEADERS: [&str; 2] = ["x-request-id", "x-correlation-id"];

fn incoming_correlation_id(request: &actix_web::dev::ServiceRequest) -> String {
    CORRELATION_HEADERS
        .iter()
        .filter_map(|name| request.headers().get(*name))
        .filter_map(|v| v.to_str().ok())
        // Only a sane token is echoed: a header is no place for arbitrary client text in our logs.
        .find(|v| {
            (1..=128).contains(&v.len())
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
        })
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Builds the application: routes plus the correlation-id and logging wrapper.
pub fn configure(state: web::Data<AppState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(state);
        cfg.route("/oauth2/token", web::post().to(crate::auth::jwt::token));
        cfg.route(
            "/fhir/.well-known/smart-configuration",
            web::get().to(crate::auth::jwt::smart_configuration),
        );
        fhir::routes(cfg);
        admin::routes(cfg);
        vcs::routes(cfg);
    }
}

/// Wraps the app: correlation ids in and out, and one log line per request with no patient data
/// (method, path without query string, status, time; our ids appear in paths, never patient details).
pub fn app(
    state: web::Data<AppState>,
    (limited, limits): (bool, rate_limit::Limits),
) -> actix_web::App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<actix_web::body::BoxBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    actix_web::App::new()
        .configure(configure(state))
        .default_service(web::to(fhir_common::unknown_route))
        .wrap(actix_web::middleware::Condition::new(
            limited,
            actix_governor::Governor::new(&limits),
        ))
        .wrap_fn(|request, service| {
            let correlation_id = incoming_correlation_id(&request);
            request
                .extensions_mut()
                .insert(CorrelationId(correlation_id.clone()));
            let method = request.method().to_string();
            let path = request.path().to_string();
            let started = Instant::now();
            let response = service.call(request);
            async move {
                let mut response = response.await?;
                if let Ok(value) = HeaderValue::from_str(&correlation_id) {
                    for name in CORRELATION_HEADERS {
                        response
                            .headers_mut()
                            .insert(HeaderName::from_static(name), value.clone());
                    }
                }
                tracing::info!(
                    correlation_id = %correlation_id,
                    method = %method,
                    path = %path,
                    status = response.status().as_u16(),
                    elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
                    "request"
                );
                Ok(response.map_into_boxed_body())
            }
        })
}
