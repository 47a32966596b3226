//! The one body reader: every request's body, on every route, is received here before any
//! extractor or handler runs, within `[server] body_timeout` and up to `[server] max_body_bytes`.
//! A body that trickles in is cut off with `408`, a larger one with `413`, in the dialect of the
//! API called (`errors::refuse_body`); handlers then read the whole body from memory.

use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web::{self, BytesMut};
use actix_web::HttpMessage;
use futures_util::StreamExt;

use super::errors::refuse_body;
use super::AppState;

/// Why a body was not received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyRefusal {
    /// Larger than the limit (declared, or as it arrived).
    TooLarge { limit: usize },
    /// Not all there within the time allowed.
    TooSlow,
    /// The connection broke or the framing was wrong.
    Broken,
}

/// Receives the whole body before the request goes on; refuses it when too large or too slow.
pub async fn read_whole_body(
    mut request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let (limit, allowed) = request
        .app_data::<web::Data<AppState>>()
        .map(|state| {
            (
                state.config.server.max_body_bytes,
                state.config.server.body_timeout,
            )
        })
        .unwrap_or((1024 * 1024, Duration::from_secs(30)));
    match receive(&mut request, limit, allowed).await {
        Ok(body) => {
            request.set_payload(actix_web::dev::Payload::from(body.freeze()));
            Ok(next.call(request).await?.map_into_boxed_body())
        }
        Err(refusal) => {
            let response = refuse_body(request.request(), refusal);
            Ok(request.into_response(response))
        }
    }
}

async fn receive(
    request: &mut ServiceRequest,
    limit: usize,
    allowed: Duration,
) -> Result<BytesMut, BodyRefusal> {
    let declared = request
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(BodyRefusal::TooLarge { limit });
    }
    let payload = request.take_payload();
    tokio::time::timeout(allowed, collect(payload, limit))
        .await
        .map_err(|_| BodyRefusal::TooSlow)?
}

/// Collects a payload of at most `limit` bytes.
pub async fn collect(
    mut payload: actix_web::dev::Payload,
    limit: usize,
) -> Result<BytesMut, BodyRefusal> {
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| BodyRefusal::Broken)?;
        if body.len() + chunk.len() > limit {
            return Err(BodyRefusal::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
