//! The outbox worker: claims due messages with a lease, sends them, records each attempt and
//! schedules the next. A crashed send comes back when its lease expires (or at once, when the
//! SQLite gateway restarts). New work wakes it; otherwise it sleeps until the next due time.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, Semaphore};

use super::email::{Mailer, SendError};
use super::outcome::{self, classify, Verdict};
use super::retry::parse_retry_after;
use super::signing::signature_header;
use super::ssrf::check_url;
use crate::config::Config;
use crate::domain::ChannelHeader;
use crate::metrics::Metrics;
use crate::store::{
    Attempt, NextStep, OutboxMessage, Store, StoreError, SubscriptionStatus, TargetKind,
};

/// Wakes the worker when new messages are committed.
pub type Wake = Arc<Notify>;

/// How much of a receiver's answer we keep for operators.
const RESPONSE_PREFIX_BYTES: usize = 512;
/// The longest sleep without looking: also how soon a lease left by another replica is seen.
const MAX_IDLE: Duration = Duration::from_secs(30);
/// How often expired leases are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// How often delivered payloads are pruned, and how many at a time.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
const PRUNE_BATCH: usize = 500;

/// When the claim loop last went round (for `/readyz`): it goes round at least every
/// `MAX_IDLE`, or after a batch's sends, each bounded by the delivery timeout.
#[derive(Debug, Clone, Default)]
pub struct Heartbeat(Arc<AtomicI64>);

impl Heartbeat {
    fn beat(&self) {
        self.beat_at(Utc::now());
    }

    /// Records a round of the loop at `at`.
    pub fn beat_at(&self, at: DateTime<Utc>) {
        self.0.store(at.timestamp_millis(), Ordering::Relaxed);
    }

    /// Whether the loop went round recently enough, given the delivery `timeout` a send may take.
    pub fn alive(&self, timeout: Duration, now: DateTime<Utc>) -> bool {
        let last = self.0.load(Ordering::Relaxed);
        let stale_after = (MAX_IDLE * 2 + timeout).as_millis() as i64;
        last > 0 && now.timestamp_millis() - last <= stale_after
    }
}

#[derive(Clone)]
pub struct DeliveryWorker {
    store: Arc<dyn Store>,
    config: Arc<Config>,
    metrics: Arc<Metrics>,
    /// Sends to public https targets only: names resolved through the SSRF guard.
    guarded: reqwest::Client,
    /// Sends for organisations and clients whose `allow_private_targets` is on (labs).
    open: reqwest::Client,
    wake: Wake,
    heartbeat: Heartbeat,
    /// Sends email notices (`[email]`); none without it.
    mailer: Option<Arc<Mailer>>,
}

impl DeliveryWorker {
    pub fn new(
        store: Arc<dyn Store>,
        config: Arc<Config>,
        metrics: Arc<Metrics>,
        wake: Wake,
    ) -> Result<Self, reqwest::Error> {
        let mailer = match &config.email {
            Some(email) => match Mailer::new(email, config.delivery.timeout) {
                Ok(mailer) => Some(Arc::new(mailer)),
                Err(e) => {
                    tracing::error!(error = %e, "email notices cannot be sent");
                    None
                }
            },
            None => None,
        };
        Ok(DeliveryWorker {
            mailer,
            guarded: http_client(&config, true)?,
            open: http_client(&config, false)?,
            store,
            config,
            metrics,
            wake,
            heartbeat: Heartbeat::default(),
        })
    }

    /// The claim loop's heartbeat, beating once `run` has started.
    pub fn heartbeat(&self) -> Heartbeat {
        self.heartbeat.clone()
    }

    /// Makes every configured secret a signing secret (a changed one starts a rotation).
    pub async fn adopt_configured_secrets(&self) -> Result<(), StoreError> {
        let now = Utc::now();
        let grace = now
            + chrono::Duration::from_std(self.config.delivery.rotation_grace).unwrap_or_default();
        for vcs in &self.config.vcs {
            if let Some(webhook) = vcs.webhook() {
                self.store
                    .adopt_secret(&vcs.id, webhook.secret, now, grace)
                    .await?;
            }
        }
        Ok(())
    }

    /// How long a claimed message is held: the request timeout plus a margin, so a slow but
    /// live send is never claimed twice.
    fn lease(&self) -> Duration {
        self.config.delivery.timeout + self.config.delivery.lease_margin
    }

    /// Runs forever: the claim-and-send loop, the lease sweeper and the retention pruner.
    pub async fn run(self) {
        let pruner = self.clone();
        tokio::spawn(async move { pruner.prune_forever().await });
        let sweeper = self.clone();
        tokio::spawn(async move { sweeper.sweep_forever().await });
        let concurrency = self.config.delivery.concurrency;
        // At most `concurrency` sends at a time; a second round is claimed ahead and waits for
        // its permits, so that a send that ends finds its successor already claimed instead of
        // waiting for the next claim (on PostgreSQL a round trip and a commit).
        let permits = Arc::new(Semaphore::new(concurrency));
        let slots = Arc::new(Semaphore::new(concurrency * 2));
        loop {
            self.heartbeat.beat();
            let Ok(first) = slots.clone().acquire_owned().await else {
                return;
            };
            let lease = self.lease();
            let now = Utc::now();
            let lease_until = now + chrono::Duration::from_std(lease).unwrap_or_default();
            let wanted = 1 + slots.available_permits();
            let batch = match self
                .store
                .claim_due_messages(now, lease_until, wanted)
                .await
            {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot claim outbox messages; retrying shortly");
                    drop(first);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if batch.is_empty() {
                drop(first);
                self.wait_for_work().await;
                continue;
            }
            let mut held = vec![first];
            while held.len() < batch.len() {
                match slots.clone().try_acquire_owned() {
                    Ok(slot) => held.push(slot),
                    Err(_) => break,
                }
            }
            // The claim asked for no more than the free slots, so every message has one.
            let claimed = Instant::now();
            for (message, slot) in batch.into_iter().zip(held) {
                let (worker, permits) = (self.clone(), permits.clone());
                tokio::spawn(async move {
                    let permit = match permits.clone().try_acquire_owned() {
                        Ok(permit) => permit,
                        Err(_) => {
                            let Ok(permit) = permits.acquire_owned().await else {
                                return;
                            };
                            // A send must end within its lease: one that waited too long for
                            // its turn is left to the lease's expiry and claimed again.
                            if claimed.elapsed() + worker.config.delivery.timeout >= lease {
                                tracing::warn!(message_id = %message.id, "a claimed message waited too long to be sent; left to its lease");
                                return;
                            }
                            permit
                        }
                    };
                    worker.deliver(message).await;
                    drop((permit, slot));
                });
            }
        }
    }

    async fn wait_for_work(&self) {
        let idle = match self.store.next_due_at().await {
            Ok(Some(due)) => (due - Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(MAX_IDLE),
            Ok(None) => MAX_IDLE,
            Err(_) => Duration::from_secs(1),
        };
        if idle.is_zero() {
            // Due now but not claimable (an earlier event of the referral is in flight): yield briefly.
            tokio::time::sleep(Duration::from_millis(20)).await;
            return;
        }
        tokio::select! {
            _ = self.wake.notified() => {}
            _ = tokio::time::sleep(idle) => {}
        }
    }

    /// Releases leases whose holder died or hung (another replica killed mid-delivery), so
    /// their messages go out again without waiting for anyone's restart.
    async fn sweep_forever(&self) {
        loop {
            tokio::time::sleep(SWEEP_EVERY).await;
            match self.store.release_expired_leases(Utc::now()).await {
                Ok(0) => {}
                Ok(released) => {
                    self.metrics.leases_reclaimed.inc_by(released as u64);
                    tracing::warn!(released, "released expired delivery leases");
                    self.wake.notify_one();
                }
                Err(e) => tracing::warn!(error = %e, "cannot sweep expired delivery leases"),
            }
        }
    }

    async fn prune_forever(&self) {
        loop {
            let retain = chrono::Duration::from_std(self.config.delivery.retain_delivered)
                .unwrap_or_default();
            let before = Utc::now() - retain;
            loop {
                match self
                    .store
                    .prune_delivered_payloads(before, PRUNE_BATCH)
                    .await
                {
                    Ok(n) if n == PRUNE_BATCH => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "pruning delivered payloads failed");
                        break;
                    }
                }
            }
            tokio::time::sleep(PRUNE_EVERY).await;
        }
    }

    /// Where a message goes and how it is signed.
    async fn target(
        &self,
        message: &OutboxMessage,
        now: DateTime<Utc>,
    ) -> Result<Target, TargetProblem> {
        match message.target_kind {
            TargetKind::Vcs => {
                let vcs = self
                    .config
                    .vcs
                    .iter()
                    .find(|v| v.id.as_str() == message.vcs_id)
                    .ok_or_else(|| {
                        TargetProblem::Retry(format!(
                            "organisation {} is no longer configured",
                            message.vcs_id
                        ))
                    })?;
                // Intake queues no webhook for an organisation without one; a message queued
                // before its webhook was removed from the configuration can never be sent.
                let webhook = vcs.webhook().ok_or_else(|| {
                    TargetProblem::Abort(format!(
                        "organisation {} has no webhook_url (it reads referrals in the inbox)",
                        message.vcs_id
                    ))
                })?;
                let secrets = match self.store.signing_secrets(&vcs.id, now).await {
                    Ok(secrets) if !secrets.is_empty() => secrets,
                    _ => vec![webhook.secret.to_string()],
                };
                Ok(Target {
                    url: webhook.url.to_string(),
                    allow_private: vcs.allows_private_targets(&self.config.delivery),
                    secrets,
                    headers: vec![],
                    content_type: "application/json",
                })
            }
            TargetKind::Email => Err(TargetProblem::Email),
            TargetKind::Subscription => {
                let subscription = self
                    .store
                    .subscription(&message.vcs_id)
                    .await
                    .map_err(|e| TargetProblem::Retry(e.to_string()))?
                    .filter(|s| s.status == SubscriptionStatus::Active)
                    .ok_or_else(|| {
                        TargetProblem::Abort(
                            "the subscription is off (deleted, or its endpoint answered 410 Gone)"
                                .into(),
                        )
                    })?;
                let client = self.config.client(subscription.client_id.as_str());
                let allow_private =
                    client.is_some_and(|c| c.allows_private_targets(&self.config.delivery));
                let secret = client
                    .and_then(|c| c.notification_secret.clone())
                    .ok_or_else(|| {
                        TargetProblem::Retry(format!(
                            "client {} has no notification_secret",
                            subscription.client_id
                        ))
                    })?;
                let content = subscription
                    .json()
                    .map_err(|e| TargetProblem::Retry(e.to_string()))?;
                Ok(Target {
                    url: subscription.endpoint,
                    allow_private,
                    secrets: vec![secret],
                    headers: channel_headers(&content),
                    content_type: "application/fhir+json",
                })
            }
        }
    }

    /// One attempt at one message, recorded whatever happens.
    async fn deliver(&self, message: OutboxMessage) {
        let started = Utc::now();
        let clock = Instant::now();
        let target = match message.target_kind {
            TargetKind::Email => Err(TargetProblem::Email),
            _ => self.target(&message, started).await,
        };
        let (verdict, attempt) = match target {
            Ok(target) => self.send(&target, &message, started, clock).await,
            Err(TargetProblem::Email) => self.send_email(&message, started, clock).await,
            Err(TargetProblem::Retry(error)) => (
                Verdict::Retry { retry_after: None },
                failed_attempt(started, clock, error),
            ),
            Err(TargetProblem::Abort(error)) => {
                (Verdict::Abort, failed_attempt(started, clock, error))
            }
        };
        let next = self.next_step(&message, &verdict, started);
        self.observe(&message, &verdict, &next, &attempt);
        self.record(&message, attempt, next, clock).await;
        // The claim loop may be asleep until this message's lease ran out; its next due time (or
        // the next event of the same referral) is known only now.
        self.wake.notify_one();
    }

    /// Records an attempt, retrying while the store is briefly unavailable (a database
    /// restart) for as long as the lease holds: recorded, the message is not sent again.
    async fn record(
        &self,
        message: &OutboxMessage,
        attempt: Attempt,
        next: NextStep,
        claimed: Instant,
    ) {
        let record = outcome::record(message, attempt, &next);
        let mut pause = Duration::from_millis(200);
        loop {
            match self.store.record_attempt(&message.id, record.clone()).await {
                Ok(()) => return,
                Err(StoreError::Unavailable(e)) if claimed.elapsed() + pause < self.lease() => {
                    tracing::warn!(message_id = %message.id, error = %e, "storage unavailable; retrying to record a delivery attempt");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    // The lease will expire and the message will be sent again: at-least-once,
                    // never lost.
                    tracing::error!(message_id = %message.id, error = %e, "could not record a delivery attempt");
                    return;
                }
            }
        }
    }

    fn next_step(
        &self,
        message: &OutboxMessage,
        verdict: &Verdict,
        now: DateTime<Utc>,
    ) -> NextStep {
        outcome::next_step(message, verdict, &self.config.delivery.retry_schedule, now)
    }

    fn observe(
        &self,
        message: &OutboxMessage,
        verdict: &Verdict,
        next: &NextStep,
        attempt: &Attempt,
    ) {
        let outcome = match verdict {
            Verdict::Delivered => "delivered",
            Verdict::Retry { .. } => "failed",
            Verdict::Gone => "gone",
            Verdict::Abort => "aborted",
        };
        self.metrics
            .delivery_attempts
            .with_label_values(&[outcome])
            .inc();
        self.metrics
            .delivery_latency
            .observe(attempt.latency_ms as f64 / 1000.0);
        match next {
            NextStep::Dead => {
                self.metrics.dead_lettered.inc();
                tracing::error!(
                    message_id = %message.id,
                    referral_id = %message.referral_id,
                    vcs = %message.vcs_id,
                    attempts = message.attempts + 1,
                    last_error = attempt.error.as_deref().unwrap_or(""),
                    "webhook dead-lettered: operator action needed"
                );
            }
            NextStep::EndpointGone => {
                tracing::warn!(message_id = %message.id, recipient = %message.recipient, "endpoint answered 410 Gone and is now switched off")
            }
            NextStep::RetryAt(at) => {
                // The receiver's status and our error text only: never the payload.
                tracing::warn!(
                    message_id = %message.id,
                    recipient = %message.recipient,
                    status = attempt.status_code,
                    error = attempt.error.as_deref().unwrap_or(""),
                    next_attempt_at = %at.to_rfc3339(),
                    "delivery attempt failed; will retry"
                )
            }
            NextStep::Delivered => {
                tracing::debug!(message_id = %message.id, outcome, status = attempt.status_code, "delivery attempt")
            }
        }
    }

    /// One attempt at an email notice: an SMTP answer is delivered, or a failure to try again,
    /// or (a recipient or notice refused for good) a dead message for an operator.
    async fn send_email(
        &self,
        message: &OutboxMessage,
        started: DateTime<Utc>,
        clock: Instant,
    ) -> (Verdict, Attempt) {
        let Some(mailer) = &self.mailer else {
            let error = "no [email] is configured to send notices".to_string();
            return (
                Verdict::Retry { retry_after: None },
                failed_attempt(started, clock, error),
            );
        };
        match mailer.send(&message.payload).await {
            Ok(()) => (
                Verdict::Delivered,
                Attempt {
                    at: started,
                    status_code: None,
                    latency_ms: clock.elapsed().as_millis() as u64,
                    error: None,
                    response_prefix: None,
                },
            ),
            Err(SendError::Retry(error)) => (
                Verdict::Retry { retry_after: None },
                failed_attempt(started, clock, error),
            ),
            Err(SendError::Permanent(error)) => {
                (Verdict::Abort, failed_attempt(started, clock, error))
            }
        }
    }

    async fn send(
        &self,
        target: &Target,
        message: &OutboxMessage,
        started: DateTime<Utc>,
        clock: Instant,
    ) -> (Verdict, Attempt) {
        let retry = Verdict::Retry { retry_after: None };
        let url = match reqwest::Url::parse(&target.url) {
            Ok(url) => url,
            Err(e) => {
                return (
                    retry,
                    failed_attempt(started, clock, format!("bad webhook URL: {e}")),
                )
            }
        };
        if let Err(e) = check_url(&url, target.allow_private) {
            return (retry, failed_attempt(started, clock, e.to_string()));
        }
        let client = if target.allow_private {
            &self.open
        } else {
            &self.guarded
        };
        let timestamp = Utc::now().timestamp();
        let signature =
            match signature_header(&target.secrets, &message.id, timestamp, &message.payload) {
                Ok(signature) => signature,
                Err(e) => return (retry, failed_attempt(started, clock, e.to_string())),
            };
        let mut request = client.post(url);
        for (name, value) in &target.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let request = request
            .header("content-type", target.content_type)
            .header("webhook-id", &message.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(message.payload.clone());
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                return (
                    retry,
                    failed_attempt(started, clock, describe_transport_error(&e)),
                )
            }
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, Utc::now()));
        let abort = response
            .headers()
            .get("webhook-delivery")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("abort-message"));
        let prefix = body_prefix(response).await;
        let verdict = classify(status.as_u16(), abort, retry_after);
        let error = (verdict != Verdict::Delivered).then(|| format!("HTTP {}", status.as_u16()));
        let attempt = Attempt {
            at: started,
            status_code: Some(status.as_u16()),
            latency_ms: clock.elapsed().as_millis() as u64,
            error,
            response_prefix: prefix,
        };
        (verdict, attempt)
    }
}

/// The webhook client: the attempt timeout, no redirects, and (`guard`) every name resolved
/// through the SSRF guard.
fn http_client(config: &Config, guard: bool) -> Result<reqwest::Client, reqwest::Error> {
    super::ssrf::http_client(
        config.delivery.timeout,
        guard,
        config.delivery.proxy.as_ref(),
    )
}

/// A resolved destination.
struct Target {
    url: String,
    /// Whether its organisation or client may be sent to on plain http and private addresses.
    allow_private: bool,
    secrets: Vec<String>,
    headers: Vec<(String, String)>,
    content_type: &'static str,
}

enum TargetProblem {
    Retry(String),
    Abort(String),
    /// Not an HTTP target: an email notice, sent by the mailer.
    Email,
}

/// `Subscription.channel.header` entries ("Name: value"): headers the subscriber asked us to send.
/// One it may not set (refused on create; a Subscription stored before that rule) is left out.
fn channel_headers(content: &serde_json::Value) -> Vec<(String, String)> {
    content["channel"]["header"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h.as_str())
        .filter_map(|h| h.parse::<ChannelHeader>().ok())
        .map(|h| (h.name, h.value))
        .collect()
}

fn failed_attempt(at: DateTime<Utc>, clock: Instant, error: String) -> Attempt {
    Attempt {
        at,
        status_code: None,
        latency_ms: clock.elapsed().as_millis() as u64,
        error: Some(error),
        response_prefix: None,
    }
}

fn describe_transport_error(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    // The full chain names the cause (refused, DNS, TLS, SSRF guard) without any payload content.
    let mut text = format!("{kind}: {error}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// The first bytes of a receiver's answer, for operators (a receiver's text, not patient data).
async fn body_prefix(mut response: reqwest::Response) -> Option<String> {
    let mut bytes = Vec::new();
    while bytes.len() < RESPONSE_PREFIX_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    bytes.truncate(RESPONSE_PREFIX_BYTES);
    let text = String::from_utf8_lossy(&bytes).into_owned();
    (!text.is_empty()).then_some(text)
}
