//! The one place failures become HTTP answers, one dialect per kind of caller: GP systems get a
//! FHIR OperationOutcome (`operation_outcome`), the JSON APIs for VCS organisations and the
//! operator get RFC 9457 problem details (`problem`), and the token endpoint answers as RFC 6749
//! says (`oauth`). Handlers return domain errors with `?`; the mapping from each domain error
//! (`LifecycleError`, `StoreError`, `FieldError`, …) to each dialect is written here once.

pub mod oauth;
pub mod operation_outcome;
pub mod page;
pub mod problem;

use actix_web::error::InternalError;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};

pub use operation_outcome::{respond, ApiError, Reply, AGGREGATES_ONLY, COMMISSIONERS_ONLY};
pub use problem::Problem;

use crate::api::body::BodyRefusal;
use crate::api::rate_limit::Throttled;
use crate::fhir::outcome::{operation_outcome, Issue};
use crate::store::StoreError;

/// Why an extractor did not let a request reach its handler.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// No usable bearer token, or one that names nobody.
    #[error("authentication required")]
    Unauthorized,
    /// Who the caller is could not be looked up (issued tokens live in the store).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A commissioner's token on an endpoint that discloses records (`403`).
    #[error("a commissioner reads aggregate reports only")]
    AggregatesOnly,
    /// A known caller of another kind on the reports (`403`).
    #[error("only commissioners read the reports")]
    NotCommissioner,
    /// Past the caller's rate limit.
    #[error("too many requests")]
    Throttled(Throttled),
    /// The application state is missing: a wiring defect.
    #[error("the application state is not configured")]
    Unconfigured,
}

/// `429` with `Retry-After` in the dialect of the API called: an OperationOutcome under `/fhir`,
/// an RFC 6749 error at the token endpoint, problem details everywhere else.
pub fn throttle(request: &HttpRequest, throttled: Throttled) -> HttpResponse {
    let seconds = throttled.retry_after_secs;
    let detail = format!("Too many requests from this caller; retry after {seconds} s.");
    let path = request.path();
    let mut builder = HttpResponse::TooManyRequests();
    builder.insert_header(("Retry-After", seconds.to_string()));
    if !path.starts_with("/fhir") && !path.starts_with("/oauth2") {
        return Problem::Throttled(seconds).into_response();
    }
    if path.starts_with("/fhir") {
        let outcome =
            operation_outcome(&[Issue::error("throttled", detail).with_message_id("rate-limited")]);
        builder
            .content_type(crate::fhir::read::Format::Json.content_type())
            .body(outcome.to_string())
    } else {
        builder
            .insert_header(("cache-control", "no-store"))
            .json(serde_json::json!({"error": "invalid_request", "error_description": detail}))
    }
}

/// Renders a body that could not be received (`api::body`) in the dialect of the API called:
/// an OperationOutcome under `/fhir`, an RFC 6749 error at the token endpoint, problem details
/// everywhere else.
pub fn refuse_body(request: &HttpRequest, refusal: BodyRefusal) -> HttpResponse {
    let path = request.path();
    if path.starts_with("/fhir") {
        return outcome(request, ApiError::from(refusal));
    }
    let (status, detail) = match refusal {
        BodyRefusal::TooLarge { limit } => (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("The body is larger than the {limit} bytes this server accepts."),
        ),
        BodyRefusal::TooSlow => (
            StatusCode::REQUEST_TIMEOUT,
            "The request body did not arrive in time; send it again.".to_string(),
        ),
        BodyRefusal::Broken => (
            StatusCode::BAD_REQUEST,
            "The body could not be read.".to_string(),
        ),
    };
    if path.starts_with("/oauth2") {
        return HttpResponse::build(status)
            .insert_header(("cache-control", "no-store"))
            .json(serde_json::json!({"error": "invalid_request", "error_description": detail}));
    }
    Problem::Refused(status, detail).into_response()
}

impl From<BodyRefusal> for ApiError {
    fn from(refusal: BodyRefusal) -> Self {
        match refusal {
            BodyRefusal::TooLarge { limit } => ApiError::PayloadTooLarge { limit },
            BodyRefusal::TooSlow => ApiError::RequestTimeout,
            BodyRefusal::Broken => ApiError::BadRequest("The body could not be read.".into()),
        }
    }
}

/// Renders a refusal in the dialect of the API the request was for: an OperationOutcome (in the
/// negotiated format) under `/fhir`, problem details everywhere else.
pub fn refuse(request: &HttpRequest, refusal: Refusal) -> actix_web::Error {
    let fhir = request.path().starts_with("/fhir");
    let response = match refusal {
        Refusal::Throttled(throttled) => throttle(request, throttled),
        Refusal::Unauthorized if fhir => outcome(request, ApiError::Unauthorized),
        Refusal::Unauthorized => Problem::Unauthorized.into_response(),
        Refusal::Store(e) if fhir => outcome(request, ApiError::Store(e)),
        Refusal::Store(e) => Problem::Store(e).into_response(),
        Refusal::AggregatesOnly if fhir => outcome(request, ApiError::AggregatesOnly),
        Refusal::AggregatesOnly => Problem::Forbidden(AGGREGATES_ONLY.into()).into_response(),
        Refusal::NotCommissioner if fhir => outcome(request, ApiError::CommissionersOnly),
        Refusal::NotCommissioner => Problem::Forbidden(COMMISSIONERS_ONLY.into()).into_response(),
        Refusal::Unconfigured if fhir => outcome(request, ApiError::Store(unconfigured())),
        Refusal::Unconfigured => Problem::Store(unconfigured()).into_response(),
    };
    InternalError::from_response("request refused", response).into()
}

fn unconfigured() -> StoreError {
    StoreError::Database("no application state".into())
}

/// An OperationOutcome in the format the request negotiated (JSON when it asked for neither).
fn outcome(request: &HttpRequest, error: ApiError) -> HttpResponse {
    match crate::api::fhir::common::response_format(request) {
        Ok(format) => error.into_response(format),
        Err(not_acceptable) => not_acceptable.into_response(crate::fhir::read::Format::Json),
    }
}
