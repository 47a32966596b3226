//! HTTP: routes, who is calling, correlation ids and request logs. Handlers only parse requests
//! and render responses; the rules live in `intake`, `lifecycle`, `subscriptions`, `translate`
//! and `store`, which never import this module (it is the edge, and depends on them).
//!
//! - `fhir/`: the FHIR R4 API GP systems call, one file per resource or endpoint family.
//! - `vcs`: the JSON API VCS organisations' CRMs call; `admin`: the operator's API;
//!   `reports`: the commissioners' aggregate reports.
//! - `oauth`: the token endpoint; `extract`: who is calling (`GpClient`, `VcsCaller`, `Operator`).
//! - `errors/`: how each kind of caller is told no; `access`: the audit of what was read.

use std::sync::Arc;
use std::time::Instant;

use actix_web::dev::Service;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{web, HttpMessage, HttpRequest};

use crate::auth::Auth;
use crate::config::Config;
use crate::delivery::{Heartbeat, Wake};
use crate::directory::feeds::Feeds;
use crate::directory::Catalog;
use crate::domain::ClientId;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::validation::Validation;
use errors::ApiError;

pub mod access;
pub mod admin;
pub mod admin_directory;
pub mod body;
pub mod budget;
pub mod dashboard;
pub mod errors;
pub mod extract;
pub mod fhir;
pub mod health;
pub mod inbox;
pub mod json;
pub mod oauth;
pub mod rate_limit;
pub mod reports;
pub mod reports_page;
pub mod vcs;

/// What every handler shares.
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub validation: Arc<Validation>,
    pub metrics: Arc<Metrics>,
    /// Wakes the delivery worker after a commit that added outbox messages.
    pub wake: Wake,
    pub vcs_schemas: vcs::VcsSchemas,
    /// Who is calling: GP tokens (static and issued) and certificate bindings, VCS and operator
    /// tokens (as digests), the token endpoint.
    pub auth: Auth,
    /// Rate limits by caller (`rate_limit`).
    pub limits: rate_limit::RateLimits,
    /// This process's delivery worker (`None` when `[delivery] worker = false`), for `/readyz`.
    pub worker: Option<Heartbeat>,
    /// `[storage] max_bytes`, checked before every write that grows the database.
    pub budget: budget::StorageBudget,
    /// The service directory's search index (built from the store at start).
    pub catalog: Arc<Catalog>,
    /// The polled directory feeds (`[[directory.feeds]]`), for the admin API.
    pub feeds: Arc<Feeds>,
    /// Sign-in limits of the web inbox, per account and per address.
    pub login_limits: inbox::LoginLimits,
}

/// How the API reaches this process's delivery worker: the signal that wakes it after a commit,
/// and (when it runs here) its heartbeat for `/readyz`.
pub struct WorkerLink {
    pub wake: Wake,
    pub heartbeat: Option<Heartbeat>,
}

/// The service directory as the API reaches it: the search index (with the services'
/// responsiveness) and the polled feeds.
pub struct DirectoryLink {
    pub catalog: Arc<Catalog>,
    pub feeds: Arc<Feeds>,
}

impl AppState {
    pub fn new(
        config: Arc<Config>,
        store: Arc<dyn Store>,
        validation: Arc<Validation>,
        metrics: Arc<Metrics>,
        worker: WorkerLink,
        vcs_schemas: vcs::VcsSchemas,
        directory: DirectoryLink,
    ) -> Self {
        let WorkerLink { wake, heartbeat } = worker;
        let DirectoryLink { catalog, feeds } = directory;
        let auth = Auth::new(&config);
        let limits = rate_limit::RateLimits::new(&config.server);
        let budget = budget::StorageBudget::new(&config.storage);
        AppState {
            budget,
            config,
            store,
            validation,
            metrics,
            wake,
            vcs_schemas,
            auth,
            limits,
            worker: heartbeat,
            catalog,
            feeds,
            login_limits: inbox::LoginLimits::default(),
        }
    }

    /// Intake refused a submission of `client`: count it once, and under each rule it broke,
    /// in the metrics and in the store's daily counts (the operator pages' refusals over time).
    /// A count the store cannot keep is logged, never a reason to answer otherwise.
    pub async fn refused(&self, client: &ClientId, error: &ApiError) {
        if !error.status().is_client_error() {
            return;
        }
        let message_ids = error.error_message_ids();
        let label = client.to_string();
        self.metrics
            .intake_refusals
            .with_label_values(&[label.as_str()])
            .inc();
        for message_id in &message_ids {
            self.metrics
                .intake_refused
                .with_label_values(&[label.as_str(), message_id.as_str()])
                .inc();
        }
        let day = chrono::Utc::now().date_naive();
        if let Err(error) = self.store.record_refusal(day, client, &message_ids).await {
            tracing::warn!(%error, client = %label, "intake: the refusal was not counted in the store");
        }
    }

    /// A referral was committed: count it and wake the delivery worker.
    pub fn accepted(&self) {
        self.metrics.referrals_accepted.inc();
        self.wake.notify_one();
    }
}

/// The correlation id of a request (echoed from `X-Request-ID`/`X-Correlation-ID`, or made up).
#[derive(Debug, Clone)]
pub struct CorrelationId(pub String);

const CORRELATION_HEADERS: [&str; 2] = ["x-request-id", "x-correlation-id"];

/// The query string's parameters, decoded, in order.
pub fn query_pairs(request: &HttpRequest) -> Vec<(String, String)> {
    form_urlencoded::parse(request.query_string().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The correlation id the request was given (see `app`).
pub fn correlation_id(request: &HttpRequest) -> Option<String> {
    request
        .extensions()
        .get::<CorrelationId>()
        .map(|c| c.0.clone())
}

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
        // `web::Bytes` handlers take what `body` received, up to the same limit.
        cfg.app_data(web::PayloadConfig::new(state.config.server.max_body_bytes));
        cfg.app_data(state);
        // Before `/fhir`, whose scope would otherwise take the SMART discovery document.
        oauth::routes(cfg);
        health::routes(cfg);
        fhir::routes(cfg);
        admin::routes(cfg);
        dashboard::routes(cfg);
        vcs::routes(cfg);
        reports::routes(cfg);
        reports_page::routes(cfg);
        inbox::routes(cfg);
    }
}

/// Wraps the app: correlation ids in and out, and one log line per request with no patient data
/// (method, path without query string, status, time; our ids appear in paths, never patient details).
pub fn app(
    state: web::Data<AppState>,
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
        .default_service(web::to(fhir::common::unknown_route))
        .wrap(actix_web::middleware::from_fn(body::read_whole_body))
        .wrap(actix_web::middleware::from_fn(
            rate_limit::count_unauthenticated,
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
