//! Typed configuration: TOML file (or the embedded demo), then environment overrides.
//!
//! Key names are a contract with integrators' deployment scripts: change none of them.
//! Environment overrides use the prefix `SP_GATEWAY_` and a double underscore between levels,
//! e.g. `SP_GATEWAY_SERVER__LISTEN=0.0.0.0:8080`, `SP_GATEWAY_STORAGE__URL=sqlite://x.db`.
//! Arrays of tables take an inline value: `SP_GATEWAY_CLIENTS='[{id="a", token="b"}]'`.
//!
//! This module only reads and checks what can be checked from the text itself; it calls into no
//! other part of the gateway, so everything may depend on it. The checks that need a part's own
//! knowledge (the storage backend a URL names, the TLS files, client keys and scopes) are run by
//! `app::load_config`, which is what binaries call.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::Deserialize;

use crate::domain::{ClientId, Identifier, VcsId};

mod feeds;
pub use feeds::{BadFeedId, FeedConfig, FeedId, FeedLimits};
mod email;
pub use email::{EmailConfig, VcsKind};
mod commissioners;
pub use commissioners::CommissionerConfig;

/// The demo configuration used when no `--config` is given: its tokens are in the README.
pub const DEMO_CONFIG: &str = include_str!("demo.toml");

/// Every token the demo configuration holds (clients, organisations, operator).
fn demo_tokens() -> &'static HashSet<String> {
    static TOKENS: std::sync::OnceLock<HashSet<String>> = std::sync::OnceLock::new();
    TOKENS.get_or_init(|| {
        // The demo's own text, without environment overrides and without `check` (which asks
        // for these tokens); a demo that does not parse is caught by the unit tests.
        let demo: Result<Config, _> = Figment::new().merge(Toml::string(DEMO_CONFIG)).extract();
        let Ok(demo) = demo else {
            return HashSet::new();
        };
        demo.clients
            .into_iter()
            .map(|c| c.token)
            .chain(demo.vcs.into_iter().map(|v| v.token))
            .chain(demo.commissioners.into_iter().map(|c| c.token))
            .chain(demo.admin.token)
            .filter(|t| !t.is_empty())
            .collect()
    })
}

/// The environment prefix for overrides.
pub const ENV_PREFIX: &str = "SP_GATEWAY_";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub delivery: DeliveryConfig,
    #[serde(default)]
    pub clients: Vec<ClientConfig>,
    #[serde(default)]
    pub vcs: Vec<VcsConfig>,
    /// `[[commissioners]]`: readers of the aggregate reports.
    #[serde(default)]
    pub commissioners: Vec<CommissionerConfig>,
    #[serde(default)]
    pub directory: DirectoryConfig,
    /// `[email]`: how notices of new referrals are sent (none without it).
    #[serde(default)]
    pub email: Option<EmailConfig>,
}

/// `[directory]`: the service directory (Open Referral UK feeds).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DirectoryConfig {
    /// A table of taxonomy terms and the need category each means, in the format of
    /// `profiles/directory/taxonomy-map.json`, added to the bundled one.
    pub taxonomy_map: Option<PathBuf>,
    /// `[[directory.feeds]]`: Open Referral UK APIs polled for services.
    pub feeds: Vec<FeedConfig>,
    /// `[directory.feed_limits]`: timeout and size bounds of every poll.
    pub feed_limits: FeedLimits,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Requests with a larger body get `413`.
    pub max_body_bytes: usize,
    /// JSON nested deeper than this gets `400`: FHIR resources are shallow, and a cap keeps
    /// recursive walks cheap and safe.
    pub max_json_depth: usize,
    /// The absolute base URL clients see (for `Bundle.link` and `fullUrl`); defaults to
    /// `http://{listen}`.
    pub base_url: Option<String>,
    /// `[server.tls]`: serve HTTPS (HTTP/1.1 and HTTP/2), optionally with client certificates.
    pub tls: Option<TlsConfig>,
    /// Requests per second allowed per authenticated caller, and per peer address for requests
    /// that authenticate nobody (0 switches rate limiting off).
    pub rate_limit_per_second: u64,
    /// How many requests a client may send at once above the steady rate.
    pub rate_limit_burst: u32,
    /// Status reports and outcomes each VCS organisation may write per minute (0: no limit).
    pub vcs_writes_per_minute: u32,
    /// How many writes an organisation may send at once above that rate.
    pub vcs_write_burst: u32,
    /// Time allowed to receive a request's head; a slower client is cut off (`408`).
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// Time allowed to receive a request's body, on every route (`408` past it).
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
    /// HTTP worker threads (each an event loop); unset, one per CPU.
    pub workers: Option<usize>,
}

/// `[server.tls]`: PEM files for our certificate chain and key; `client_ca` turns on mutual TLS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CA certificates (PEM) client certificates must chain to.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// Whether a client certificate is required (the default with `client_ca`) or optional.
    #[serde(default)]
    pub client_auth: Option<ClientAuth>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    Optional,
    Required,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 1024 * 1024,
            max_json_depth: 64,
            base_url: None,
            rate_limit_per_second: 2000,
            rate_limit_burst: 4000,
            vcs_writes_per_minute: 600,
            vcs_write_burst: 60,
            header_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(30),
            tls: None,
            workers: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `sqlite://path/to/file.db` (relative paths are relative to the working directory), or
    /// `postgres://user@host:5432/database` for several replicas sharing one database.
    pub url: String,
    /// PostgreSQL: the most connections this replica opens.
    pub pool_size: u32,
    /// PostgreSQL: how long a request waits for a free connection before it gets `503`.
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
    /// PostgreSQL: how long start-up keeps retrying an unreachable database before giving up.
    #[serde(with = "humantime_serde")]
    pub start_timeout: Duration,
    /// Apply pending migrations at start (off: run `sp-gateway migrate` first, or start fails).
    pub migrate_on_start: bool,
    /// PostgreSQL: a statement running longer is cancelled (the request gets `503`), so a stuck
    /// database cannot hold requests and connections for ever.
    #[serde(with = "humantime_serde")]
    pub statement_timeout: Duration,
    /// The most bytes the database may take: past it, writes that grow it (referrals, status and
    /// outcome reports, Subscriptions, cancellations) are refused with `507` while reads and
    /// deliveries go on. SQLite counts its WAL and shared-memory files too. Absent: no budget.
    pub max_bytes: Option<u64>,
    /// SQLite: writes that grow the database are refused the same way (`507`) while the
    /// filesystem holding the database file has less free space than this, whatever
    /// `max_bytes` says, so other files filling the disk cannot take the gateway's last bytes
    /// (a WAL checkpoint needs room). 0 turns the check off. PostgreSQL's disk is its server's,
    /// which the gateway cannot see: watch it there.
    pub min_free_bytes: u64,
}

/// `[storage] min_free_bytes` by default: 1 GiB.
pub const DEFAULT_MIN_FREE_BYTES: u64 = 1 << 30;

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            url: "sqlite://data/gateway.db".to_string(),
            pool_size: 16,
            acquire_timeout: Duration::from_secs(5),
            start_timeout: Duration::from_secs(60),
            migrate_on_start: true,
            statement_timeout: Duration::from_secs(30),
            max_bytes: None,
            min_free_bytes: DEFAULT_MIN_FREE_BYTES,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Bearer token for `/admin`; no token, no admin API.
    pub token: Option<String>,
}

/// A duration written the human way: "5s", "30m", "2h".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Delay(#[serde(with = "humantime_serde")] pub Duration);

/// How webhooks are sent: retries, timeouts, concurrency, the SSRF guard, retention.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Delays between attempts after the first (immediate) one; after the last, dead-letter.
    pub retry_schedule: Vec<Delay>,
    /// Whole-request timeout of one attempt.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// A claimed message is held for `timeout` plus this; if its worker dies, another worker
    /// (on any replica) takes it once the lease has run out.
    #[serde(with = "humantime_serde")]
    pub lease_margin: Duration,
    /// Sends in flight at once.
    pub concurrency: usize,
    /// Opens the SSRF guard (plain http, loopback and private addresses) for tests and labs:
    /// the default of every organisation's and client's own `allow_private_targets`.
    pub allow_private_targets: bool,
    /// Delivered payload bodies are pruned after this long; delivery metadata stays.
    #[serde(with = "humantime_serde")]
    pub retain_delivered: Duration,
    /// After a secret rotation, the old secret keeps signing (beside the new one) this long.
    #[serde(with = "humantime_serde")]
    pub rotation_grace: Duration,
    /// Whether this process runs the delivery worker (off for an API-only replica).
    pub worker: bool,
    /// An outbound proxy for webhooks and notifications. Without it the gateway ignores
    /// `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY`: a proxy resolves names itself, past the SSRF
    /// guard's check after DNS, so one is used only when configured on purpose (and must then
    /// enforce the egress policy itself).
    pub proxy: Option<url::Url>,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        let minutes = |m: u64| Delay(Duration::from_secs(m * 60));
        DeliveryConfig {
            // Svix's schedule after the immediate first attempt.
            retry_schedule: vec![
                Delay(Duration::from_secs(5)),
                minutes(5),
                minutes(30),
                minutes(120),
                minutes(300),
                minutes(600),
                minutes(600),
            ],
            timeout: Duration::from_secs(15),
            lease_margin: Duration::from_secs(30),
            concurrency: 16,
            allow_private_targets: false,
            retain_delivered: Duration::from_secs(7 * 24 * 3600),
            rotation_grace: Duration::from_secs(24 * 3600),
            worker: true,
            proxy: None,
        }
    }
}

/// A GP system vendor allowed to send referrals.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    pub id: ClientId,
    /// Static bearer token (labs); empty or absent when the client only uses `/oauth2/token`.
    #[serde(default)]
    pub token: String,
    /// Standard Webhooks secret signing this client's Subscription notifications.
    #[serde(default)]
    pub notification_secret: Option<String>,
    /// The TLS client certificate this client must present: subject in RFC 4514 form.
    #[serde(default)]
    pub cert_subject: Option<String>,
    /// The TLS client certificate this client must present: SHA-256 of its DER, hex.
    #[serde(default)]
    pub cert_sha256: Option<String>,
    /// The client's public keys for `private_key_jwt`: a JWK Set file path or inline JSON.
    #[serde(default)]
    pub jwks: Option<String>,
    /// Scopes the token endpoint may grant (`system/ServiceRequest.write`, `system/*.read`);
    /// default all of ours.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// Whether this client's Subscriptions may notify plain http and private addresses (labs);
    /// unset, `[delivery] allow_private_targets`.
    #[serde(default)]
    pub allow_private_targets: Option<bool>,
    /// The most active Subscriptions this client may hold (each change notifies every matching
    /// one, so this bounds what one change queues); one more is refused with `422`.
    #[serde(default = "default_max_subscriptions")]
    pub max_subscriptions: usize,
}

fn default_max_subscriptions() -> usize {
    10
}

impl ClientConfig {
    /// Whether the SSRF guard is open for this client's Subscription endpoints.
    pub fn allows_private_targets(&self, delivery: &DeliveryConfig) -> bool {
        self.allow_private_targets
            .unwrap_or(delivery.allow_private_targets)
    }
}

/// A record field a VCS organisation may receive beyond the minimal default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShareField {
    NhsNumber,
    BirthDate,
    Email,
}

/// A voluntary and community sector organisation we deliver referrals to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VcsConfig {
    pub id: VcsId,
    pub name: String,
    /// `system|value` identifiers a ServiceRequest's performer may carry to be routed here.
    pub identifiers: Vec<Identifier>,
    /// Where referrals are delivered as signed webhooks; absent, the organisation receives them
    /// in the web inbox only. Goes with `webhook_secret`.
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// Standard Webhooks secret: `whsec_` followed by base64. Goes with `webhook_url`.
    #[serde(default)]
    pub webhook_secret: Option<String>,
    /// The organisation's bearer token for the VCS API.
    pub token: String,
    /// Extra record fields this organisation may receive.
    #[serde(default)]
    pub share: Vec<ShareField>,
    /// Whether this organisation's webhook may be plain http or a private address (labs);
    /// unset, `[delivery] allow_private_targets`.
    #[serde(default)]
    pub allow_private_targets: Option<bool>,
    /// A community group (default) or a link-worker service, which may refer onward.
    #[serde(default)]
    pub kind: VcsKind,
    /// Told by email (through `[email]`) of each new referral, without patient details.
    #[serde(default)]
    pub notify_emails: Vec<String>,
}

impl VcsConfig {
    /// Whether the SSRF guard is open for this organisation's webhook.
    pub fn allows_private_targets(&self, delivery: &DeliveryConfig) -> bool {
        self.allow_private_targets
            .unwrap_or(delivery.allow_private_targets)
    }

    pub fn shares(&self, field: ShareField) -> bool {
        self.share.contains(&field)
    }

    /// The organisation's webhook, when it has one (`check` makes sure the URL and the secret
    /// come together); without one it reads its referrals in the web inbox.
    pub fn webhook(&self) -> Option<Webhook<'_>> {
        match (&self.webhook_url, &self.webhook_secret) {
            (Some(url), Some(secret)) => Some(Webhook { url, secret }),
            _ => None,
        }
    }
}

/// A VCS organisation's webhook: where referrals go and the secret that signs them.
#[derive(Debug, Clone, Copy)]
pub struct Webhook<'a> {
    pub url: &'a str,
    pub secret: &'a str,
}

/// A configuration that cannot be used; the message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Parse(String),
    #[error("invalid value for `{key}`: {reason}")]
    Invalid { key: String, reason: String },
}

/// A key with a value that cannot be used, and why.
pub fn invalid(key: String, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

impl Config {
    /// Loads `path`, or the embedded demo configuration when `path` is `None`, then applies
    /// environment overrides, then checks cross-field rules.
    ///
    /// Binaries call `app::load_config`, which adds the checks other modules own.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let text = match path {
            Some(path) => std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?,
            None => DEMO_CONFIG.to_string(),
        };
        Self::from_toml_with_env(&text)
    }

    /// Parses TOML text with environment overrides applied.
    pub fn from_toml_with_env(text: &str) -> Result<Config, ConfigError> {
        let figment = Figment::new()
            .merge(Toml::string(text))
            .merge(Env::prefixed(ENV_PREFIX).split("__"));
        let config: Config = figment
            .extract()
            .map_err(|e| ConfigError::Parse(describe_figment_error(e)))?;
        config.check()?;
        Ok(config)
    }

    /// Rules serde cannot express: unique ids and tokens, usable secrets and URLs.
    fn check(&self) -> Result<(), ConfigError> {
        if self.server.max_body_bytes == 0 {
            return Err(invalid("server.max_body_bytes".into(), "must be above 0"));
        }
        if !(4..=512).contains(&self.server.max_json_depth) {
            return Err(invalid(
                "server.max_json_depth".into(),
                "must be between 4 and 512",
            ));
        }
        if self.server.workers.is_some_and(|w| !(1..=256).contains(&w)) {
            return Err(invalid(
                "server.workers".into(),
                "must be between 1 and 256",
            ));
        }
        check_storage(&self.storage)?;
        feeds::check_feeds(&self.directory.feeds, &self.directory.feed_limits)?;
        if let Some(tls) = &self.server.tls {
            if tls.client_auth.is_some() && tls.client_ca.is_none() {
                return Err(invalid(
                    "server.tls.client_auth".into(),
                    "needs server.tls.client_ca",
                ));
            }
        }
        if !(1..=1024).contains(&self.delivery.concurrency) {
            return Err(invalid(
                "delivery.concurrency".into(),
                "must be between 1 and 1024",
            ));
        }
        if self.delivery.timeout.is_zero() {
            return Err(invalid("delivery.timeout".into(), "must be above 0"));
        }
        let mut tokens = HashSet::new();
        let mut client_ids = HashSet::new();
        for (i, client) in self.clients.iter().enumerate() {
            if !client_ids.insert(client.id.clone()) {
                return Err(invalid(format!("clients[{i}].id"), "duplicate client id"));
            }
            if !client.token.is_empty() || client.jwks.is_none() {
                check_token(&client.token, &format!("clients[{i}].token"), &mut tokens)?;
            }
            self.check_client_security(i, client)?;
            if let Some(secret) = &client.notification_secret {
                check_webhook_secret(secret, &format!("clients[{i}].notification_secret"))?;
            }
        }
        let mut vcs_ids = HashSet::new();
        let mut identifiers = HashSet::new();
        for (i, vcs) in self.vcs.iter().enumerate() {
            if !vcs_ids.insert(vcs.id.clone()) {
                return Err(invalid(format!("vcs[{i}].id"), "duplicate VCS id"));
            }
            if vcs.name.trim().is_empty() {
                return Err(invalid(format!("vcs[{i}].name"), "must not be empty"));
            }
            if vcs.identifiers.is_empty() {
                return Err(invalid(
                    format!("vcs[{i}].identifiers"),
                    "at least one system|value identifier is needed to route referrals",
                ));
            }
            for (j, identifier) in vcs.identifiers.iter().enumerate() {
                if !identifiers.insert(identifier.clone()) {
                    return Err(invalid(
                        format!("vcs[{i}].identifiers[{j}]"),
                        format!("{identifier} is already used by another organisation"),
                    ));
                }
            }
            check_webhook(i, vcs)?;
            check_token(&vcs.token, &format!("vcs[{i}].token"), &mut tokens)?;
        }
        email::check_email(self)?;
        commissioners::check_commissioners(&self.commissioners, &vcs_ids)?;
        for (i, commissioner) in self.commissioners.iter().enumerate() {
            let key = format!("commissioners[{i}].token");
            check_token(&commissioner.token, &key, &mut tokens)?;
        }
        if let Some(token) = &self.admin.token {
            check_token(token, "admin.token", &mut tokens)?;
        }
        if let Some(key) = self.public_demo_tokens().into_iter().next() {
            if !self.server.listen.ip().is_loopback() {
                return Err(invalid(
                    key,
                    format!(
                        "is one of the demo's public tokens (they are in the README), so the gateway \
                         serves it on a loopback address only, and server.listen is {}: give every \
                         client, organisation and the operator a token of your own",
                        self.server.listen
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The keys (`clients[0].token`, `admin.token`, …) whose token is one of the demo
    /// configuration's: anyone who has read the README holds them. `serve` warns while there are
    /// any, and refuses them on an address other hosts can reach.
    pub fn public_demo_tokens(&self) -> Vec<String> {
        let demo = demo_tokens();
        let clients = self
            .clients
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("clients[{i}].token"), Some(&c.token)));
        let vcs = self
            .vcs
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("vcs[{i}].token"), Some(&v.token)));
        let commissioners = self
            .commissioners
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("commissioners[{i}].token"), Some(&c.token)));
        let admin = std::iter::once(("admin.token".to_string(), self.admin.token.as_ref()));
        clients
            .chain(vcs)
            .chain(commissioners)
            .chain(admin)
            .filter(|(_, token)| token.is_some_and(|t| !t.is_empty() && demo.contains(t)))
            .map(|(key, _)| key)
            .collect()
    }

    /// `[[clients]]` keys of issue 6 that need no other module: certificate bindings need mutual
    /// TLS. (`app::load_config` checks fingerprints, JWKS and scopes.)
    fn check_client_security(&self, i: usize, client: &ClientConfig) -> Result<(), ConfigError> {
        let mutual_tls = self
            .server
            .tls
            .as_ref()
            .is_some_and(|t| t.client_ca.is_some());
        if let Some(subject) = &client.cert_subject {
            if !mutual_tls {
                return Err(invalid(
                    format!("clients[{i}].cert_subject"),
                    "needs server.tls.client_ca (mutual TLS)",
                ));
            }
            if !subject.contains('=') {
                return Err(invalid(
                    format!("clients[{i}].cert_subject"),
                    "expected an RFC 4514 name such as CN=emis-demo",
                ));
            }
        }
        if client.cert_sha256.is_some() && !mutual_tls {
            return Err(invalid(
                format!("clients[{i}].cert_sha256"),
                "needs server.tls.client_ca (mutual TLS)",
            ));
        }
        Ok(())
    }

    pub fn client(&self, id: &str) -> Option<&ClientConfig> {
        self.clients.iter().find(|c| c.id.as_str() == id)
    }

    pub fn vcs(&self, id: &VcsId) -> Option<&VcsConfig> {
        self.vcs.iter().find(|v| &v.id == id)
    }

    /// The base URL clients use to reach us.
    pub fn base_url(&self) -> String {
        match &self.server.base_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("{}://{}", self.scheme(), self.server.listen),
        }
    }
}

impl Config {
    /// `https` when `[server.tls]` is set.
    pub fn scheme(&self) -> &'static str {
        if self.server.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }
}

fn describe_figment_error(error: figment::Error) -> String {
    // figment names the key path ("for key `server.listen`"); keep every error, not just the first.
    error
        .into_iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

fn check_storage(storage: &StorageConfig) -> Result<(), ConfigError> {
    if !(1..=1000).contains(&storage.pool_size) {
        return Err(invalid(
            "storage.pool_size".into(),
            "must be between 1 and 1000",
        ));
    }
    if storage.acquire_timeout.is_zero() {
        return Err(invalid("storage.acquire_timeout".into(), "must be above 0"));
    }
    Ok(())
}

/// A database URL fit for an error message: a password in it is replaced by `***`.
pub fn redact_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // Only fails for URLs that cannot have a password, which this one has.
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

fn check_token(token: &str, key: &str, seen: &mut HashSet<String>) -> Result<(), ConfigError> {
    if token.len() < 8 {
        return Err(invalid(key.into(), "tokens need at least 8 characters"));
    }
    if !seen.insert(token.to_string()) {
        return Err(invalid(key.into(), "this token is already used elsewhere"));
    }
    Ok(())
}

/// `webhook_url` and `webhook_secret` go together: both (webhook, and the inbox if wanted) or
/// neither (the inbox only).
fn check_webhook(i: usize, vcs: &VcsConfig) -> Result<(), ConfigError> {
    let (url_key, secret_key) = (
        format!("vcs[{i}].webhook_url"),
        format!("vcs[{i}].webhook_secret"),
    );
    match (&vcs.webhook_url, &vcs.webhook_secret) {
        (Some(url), Some(secret)) => {
            check_webhook_url(url, &url_key)?;
            check_webhook_secret(secret, &secret_key)
        }
        (None, None) => Ok(()),
        (Some(_), None) => Err(invalid(
            secret_key,
            format!("is needed with {url_key} (they go together; without both, referrals go to the inbox only)"),
        )),
        (None, Some(_)) => Err(invalid(
            url_key,
            format!("is needed with {secret_key} (they go together; without both, referrals go to the inbox only)"),
        )),
    }
}

fn check_webhook_url(url: &str, key: &str) -> Result<(), ConfigError> {
    match reqwest::Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => Ok(()),
        Ok(_) => Err(invalid(key.into(), "only http and https webhook URLs")),
        Err(e) => Err(invalid(key.into(), format!("not a URL: {e}"))),
    }
}

fn check_webhook_secret(secret: &str, key: &str) -> Result<(), ConfigError> {
    use base64::Engine;
    let Some(encoded) = secret.strip_prefix("whsec_") else {
        return Err(invalid(
            key.into(),
            "Standard Webhooks secrets start with whsec_",
        ));
    };
    match base64::engine::general_purpose::STANDARD.decode(encoded) {
        Ok(bytes) if bytes.len() >= 24 => Ok(()),
        Ok(_) => Err(invalid(
            key.into(),
            "the secret needs at least 24 random bytes",
        )),
        Err(_) => Err(invalid(key.into(), "the part after whsec_ must be base64")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_tokens_serve_on_loopback_only() {
        let config = Config::from_toml_with_env(DEMO_CONFIG).unwrap();
        let keys = config.public_demo_tokens();
        assert!(keys.contains(&"clients[0].token".to_string()), "{keys:?}");
        assert!(keys.contains(&"vcs[0].token".to_string()), "{keys:?}");
        assert!(keys.contains(&"admin.token".to_string()), "{keys:?}");
        for public in ["0.0.0.0:8080", "[::]:8080", "192.0.2.10:443"] {
            let text = DEMO_CONFIG.replace(
                "listen = \"127.0.0.1:8080\"",
                &format!("listen = \"{public}\""),
            );
            let e = Config::from_toml_with_env(&text).unwrap_err().to_string();
            assert!(
                e.contains("clients[0].token") && e.contains("loopback"),
                "{public}: {e}"
            );
        }
        let ipv6_loopback =
            DEMO_CONFIG.replace("listen = \"127.0.0.1:8080\"", "listen = \"[::1]:8080\"");
        assert!(Config::from_toml_with_env(&ipv6_loopback).is_ok());
        // Tokens of one's own may serve anywhere.
        let mut own =
            DEMO_CONFIG.replace("listen = \"127.0.0.1:8080\"", "listen = \"0.0.0.0:8080\"");
        for (i, token) in demo_tokens().iter().enumerate() {
            own = own.replace(
                &format!("\"{token}\""),
                &format!("\"private-token-{i:02}\""),
            );
        }
        let config = Config::from_toml_with_env(&own).unwrap();
        assert!(config.public_demo_tokens().is_empty());
    }

    #[test]
    fn the_demo_configuration_loads() {
        let config = Config::from_toml_with_env(DEMO_CONFIG).unwrap();
        assert_eq!(config.server.listen.port(), 8080);
        assert_eq!(config.clients.len(), 2);
        assert_eq!(config.vcs.len(), 4);
        assert_eq!(config.vcs[3].kind, VcsKind::LinkWorker);
    }

    #[test]
    fn a_bad_key_is_named() {
        let text = DEMO_CONFIG.replace("listen = \"127.0.0.1:8080\"", "listen = \"nowhere\"");
        let err = Config::from_toml_with_env(&text).unwrap_err().to_string();
        assert!(err.contains("server.listen"), "{err}");
    }

    #[test]
    fn http_workers_are_one_per_cpu_unless_set_and_a_bad_count_is_named() {
        let config = Config::from_toml_with_env(DEMO_CONFIG).unwrap();
        assert_eq!(config.server.workers, None);
        let listen = "listen = \"127.0.0.1:8080\"";
        let three = DEMO_CONFIG.replace(listen, &format!("{listen}\nworkers = 3"));
        assert_eq!(
            Config::from_toml_with_env(&three).unwrap().server.workers,
            Some(3)
        );
        let none = DEMO_CONFIG.replace(listen, &format!("{listen}\nworkers = 0"));
        let err = Config::from_toml_with_env(&none).unwrap_err().to_string();
        assert!(err.contains("server.workers"), "{err}");
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let text = format!("{DEMO_CONFIG}\n[storage2]\nurl = \"x\"\n");
        let err = Config::from_toml_with_env(&text).unwrap_err().to_string();
        assert!(err.contains("storage2"), "{err}");
    }

    #[test]
    fn a_bad_vcs_identifier_is_named() {
        let text = DEMO_CONFIG.replacen(
            "\"https://www.gov.uk/charity-commission|1123456\"",
            "\"no-bar\"",
            1,
        );
        let err = Config::from_toml_with_env(&text).unwrap_err().to_string();
        assert!(err.contains("vcs") && err.contains("identifiers"), "{err}");
    }

    #[test]
    fn a_bad_secret_is_named() {
        let text =
            DEMO_CONFIG.replacen("webhook_secret = \"whsec_", "webhook_secret = \"secret_", 1);
        let err = Config::from_toml_with_env(&text).unwrap_err().to_string();
        assert!(err.contains("vcs[0].webhook_secret"), "{err}");
    }
}
