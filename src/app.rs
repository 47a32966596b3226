//! Wiring: loads the configuration with every module's checks, and builds the store, the
//! validator and the HTTP server from it. The one module that knows all the others, so that
//! none of them (`config` least of all) has to reach into another to start.

use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;

use actix_web::{web, HttpServer};

use crate::api::{self, AppState};
use crate::config::{invalid, redact_password, Config, ConfigError};
use crate::delivery::DeliveryWorker;
use crate::metrics::Metrics;
use crate::store;
use crate::validation::Validation;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("cannot load the bundled profiles: {0}")]
    Profiles(String),
    #[error("cannot start: {0}")]
    Setup(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
}

/// Loads the configuration (`Config::load`: the file or the demo, then the environment) and
/// checks what only the modules that use it can: that the storage URL names a backend we have,
/// that the TLS files load, and that each client's certificate fingerprint, keys and scopes are
/// usable. What binaries call before anything starts.
pub fn load_config(path: Option<&Path>) -> Result<Config, ConfigError> {
    let config = Config::load(path)?;
    check_wiring(&config)?;
    Ok(config)
}

fn check_wiring(config: &Config) -> Result<(), ConfigError> {
    if store::Backend::from_url(&config.storage.url).is_none() {
        return Err(invalid(
            "storage.url".into(),
            format!(
                "expected sqlite://PATH or postgres://[user@]host[:port]/database, got {:?}",
                redact_password(&config.storage.url)
            ),
        ));
    }
    if let Some(tls) = &config.server.tls {
        // Building the rustls configuration reads and checks every file now, not at first handshake.
        crate::auth::tls::server_config(tls).map_err(|e| invalid(e.key.into(), e.reason))?;
    }
    // A webhook the delivery policy refuses whatever DNS says (plain http, an address literal in
    // a special-purpose range) could never be delivered: refused now, not at the first referral.
    for (i, vcs) in config.vcs.iter().enumerate() {
        let Some(webhook) = vcs.webhook() else {
            continue;
        };
        let key = format!("vcs[{i}].webhook_url");
        let url = reqwest::Url::parse(webhook.url)
            .map_err(|e| invalid(key.clone(), format!("not a URL: {e}")))?;
        crate::delivery::ssrf::check_url(&url, vcs.allows_private_targets(&config.delivery))
            .map_err(|e| {
                invalid(
                    key,
                    format!(
                        "{e}, so no webhook could ever be delivered to it (a lab may set \
                         allow_private_targets = true on this organisation)"
                    ),
                )
            })?;
    }
    // Likewise a feed the policy refuses whatever DNS says could never be polled.
    for (i, feed) in config.directory.feeds.iter().enumerate() {
        let private = feed.allows_private_targets(&config.delivery);
        crate::delivery::ssrf::check_url(&feed.url, private).map_err(|e| {
            invalid(
                format!("directory.feeds[{i}].url"),
                format!(
                    "{e}, so the feed could never be polled (a lab may set \
                     allow_private_targets = true on this feed)"
                ),
            )
        })?;
    }
    for (i, client) in config.clients.iter().enumerate() {
        if let Some(fingerprint) = &client.cert_sha256 {
            let hex = crate::auth::tls::normalize_fingerprint(fingerprint);
            if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(invalid(
                    format!("clients[{i}].cert_sha256"),
                    "expected 64 hex digits (colons allowed)",
                ));
            }
        }
        if let Some(jwks) = &client.jwks {
            crate::auth::jwt::load_keys(jwks)
                .map_err(|e| invalid(format!("clients[{i}].jwks"), e.to_string()))?;
        }
        for (j, scope) in client.scopes.iter().flatten().enumerate() {
            if crate::auth::scopes::expand(scope).is_empty() {
                return Err(invalid(
                    format!("clients[{i}].scopes[{j}]"),
                    format!("unknown scope {scope:?}: expected system/<Type>.read|write"),
                ));
            }
        }
    }
    Ok(())
}

/// Starts the gateway on `listener` and serves until stopped.
pub async fn serve(mut config: Config, listener: TcpListener) -> Result<(), StartError> {
    let started = std::time::Instant::now();
    let validation = Validation::bundled().map_err(|e| StartError::Profiles(e.to_string()))?;
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "validator ready"
    );
    let store = store::open(&config.storage).await?;
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    // Links we hand out must carry the port actually bound (the config may say port 0).
    if config.server.base_url.is_none() {
        config.server.base_url = Some(format!("{}://{addr}", config.scheme()));
    }
    let tls = match &config.server.tls {
        Some(tls) => Some(
            crate::auth::tls::server_config(tls).map_err(|e| StartError::Setup(e.to_string()))?,
        ),
        None => None,
    };
    let config = Arc::new(config);
    let metrics = Arc::new(Metrics::new().map_err(|e| StartError::Setup(e.to_string()))?);
    let wake = Arc::new(tokio::sync::Notify::new());
    let worker = DeliveryWorker::new(store.clone(), config.clone(), metrics.clone(), wake.clone())
        .map_err(|e| StartError::Setup(format!("webhook client: {e}")))?;
    worker.adopt_configured_secrets().await?;
    // Other replicas' commits wake this one's worker too (PostgreSQL; nothing to do for SQLite).
    store.watch_for_work(wake.clone());
    let heartbeat = config.delivery.worker.then(|| worker.heartbeat());
    if config.delivery.worker {
        actix_web::rt::spawn(worker.run());
    }
    let schemas = api::vcs::VcsSchemas::compile()
        .map_err(|e| StartError::Setup(format!("VCS request schemas: {e}")))?;
    let taxonomy = crate::directory::catalog::taxonomy(&config)
        .map_err(|e| StartError::Setup(format!("service directory: {e}")))?;
    let districts = crate::directory::centroids::check()
        .map_err(|e| StartError::Setup(format!("service directory: {e}")))?;
    let catalog = Arc::new(crate::directory::Catalog::load(store.as_ref(), taxonomy).await?);
    tracing::info!(
        services = catalog.index().len(),
        postcode_districts = districts,
        "service directory index built"
    );
    let feeds = Arc::new(
        crate::directory::feeds::Feeds::new(store.clone(), catalog.clone(), config.clone())
            .map_err(|e| StartError::Setup(format!("service directory feeds: {e}")))?,
    );
    actix_web::rt::spawn(catalog.clone().keep_responsiveness(store.clone()));
    // One poller per feed, on the server's runtime: they stop when the server stops.
    for feed in &config.directory.feeds {
        actix_web::rt::spawn(feeds.clone().run(feed.clone()));
    }
    let header_timeout = config.server.header_timeout;
    let workers = config.server.workers;
    let state = web::Data::new(AppState::new(
        config,
        store,
        Arc::new(validation),
        metrics,
        api::WorkerLink { wake, heartbeat },
        schemas,
        api::DirectoryLink { catalog, feeds },
    ));
    // Buckets of callers gone quiet are dropped every minute: the limiter's memory follows the
    // callers of the last minute, not every address or client ever seen.
    let evicting = state.clone();
    actix_web::rt::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(60)).await;
            evicting.limits.evict_idle();
            evicting.login_limits.evict_idle();
        }
    });
    let server = HttpServer::new(move || api::app(state.clone()))
        .client_request_timeout(header_timeout)
        .on_connect(api::extract::on_connect);
    let server = match workers {
        Some(workers) => server.workers(workers),
        None => server,
    };
    let server = match tls {
        Some(tls) => server.listen_rustls_0_23(listener, tls),
        None => server.listen(listener),
    }
    .map_err(|source| StartError::Listen {
        addr: addr.clone(),
        source,
    })?
    .run();
    tracing::info!(addr = %addr, "listening");
    server
        .await
        .map_err(|source| StartError::Listen { addr, source })
}
