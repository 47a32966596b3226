//! Per-client rate limits: a token bucket per bearer token (per peer address without one), shared
//! by all HTTP workers. Past the limit a request gets `429` with `Retry-After` and an
//! OperationOutcome, before any handler runs.

use actix_governor::governor::clock::{Clock, DefaultClock, QuantaInstant};
use actix_governor::governor::middleware::NoOpMiddleware;
use actix_governor::governor::NotUntil;
use actix_governor::{
    GovernorConfig, GovernorConfigBuilder, KeyExtractor, SimpleKeyExtractionError,
};
use actix_web::dev::ServiceRequest;
use actix_web::{HttpResponse, HttpResponseBuilder};
use sha2::{Digest, Sha256};

use crate::config::ServerConfig;
use crate::fhir::outcome::{operation_outcome, Issue};
use crate::fhir::read::Format;

/// Keys requests by a digest of their `Authorization` header: one bucket per client token,
/// without keeping tokens themselves in the limiter's memory.
#[derive(Debug, Clone, Copy)]
pub struct ClientKey;

impl KeyExtractor for ClientKey {
    type Key = [u8; 32];
    type KeyExtractionError = SimpleKeyExtractionError<&'static str>;

    fn extract(&self, request: &ServiceRequest) -> Result<Self::Key, Self::KeyExtractionError> {
        let source = match request.headers().get("authorization") {
            Some(value) => value.as_bytes().to_vec(),
            None => request
                .peer_addr()
                .map(|a| a.ip().to_string().into_bytes())
                .unwrap_or_default(),
        };
        Ok(Sha256::digest(source).into())
    }

    fn exceed_rate_limit_response(
        &self,
        negative: &NotUntil<QuantaInstant>,
        mut response: HttpResponseBuilder,
    ) -> HttpResponse {
        let wait = negative.wait_time_from(DefaultClock::default().now());
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let outcome = operation_outcome(&[Issue::error(
            "throttled",
            format!("Too many requests from this client; retry after {seconds} s."),
        )
        .with_message_id("rate-limited")]);
        response
            .insert_header(("Retry-After", seconds.max(1).to_string()))
            .content_type(Format::Json.content_type())
            .body(outcome.to_string())
    }
}

pub type Limits = GovernorConfig<ClientKey, NoOpMiddleware<QuantaInstant>>;

/// The limiter configuration, built once so every worker shares the same buckets, and whether
/// it applies (`rate_limit_per_second = 0` switches rate limiting off).
pub fn limits(server: &ServerConfig) -> Option<(bool, Limits)> {
    let enabled = server.rate_limit_per_second > 0;
    let period_ns = 1_000_000_000 / server.rate_limit_per_second.max(1);
    GovernorConfigBuilder::default()
        .key_extractor(ClientKey)
        .nanoseconds_per_request(period_ns.max(1))
        .burst_size(server.rate_limit_burst.max(1))
        .finish()
        .map(|limits| (enabled, limits))
}
