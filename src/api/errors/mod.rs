//! The one place failures become HTTP answers, one dialect per kind of caller: GP systems get a
//! FHIR OperationOutcome (`operation_outcome`), the JSON APIs for VCS organisations and the
//! operator get RFC 9457 problem details (`problem`), and the token endpoint answers as RFC 6749
//! says (`oauth`). Handlers return domain errors with `?`; the mapping from each domain error
//! (`LifecycleError`, `StoreError`, `FieldError`, …) to each dialect is written here once.

pub mod oauth;
pub mod operation_outcome;
pub mod problem;

use actix_web::error::InternalError;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};

pub use operation_outcome::{respond, ApiError, Reply};
pub use problem::Problem;

use crate::api::body::BodyRefusal;
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
    /// The application state is missing: a wiring defect.
    #[error("the application state is not configured")]
    Unconfigured,
}

/// Renders a body that could not be received (`api::body`) in the dialect of the API called:
/// an OperationOutcome under `/fhir`, an RFC 6749 error at the token endpoint, problem details
/// everywhere else.
pub fn refuse_body(request: &HttpRequest, refusal: BodyRefusal) -> HttpResponse {
    let path = request.path();
    if path.starts_with("/fhir") {
        let error = ApiError::from(refusal);
        let format = crate::api::fhir::common::response_format(request)
            .unwrap_or(crate::fhir::read::Format::Json);
        return error.into_response(format);
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
    let response = if request.path().starts_with("/fhir") {
        let error = match refusal {
            Refusal::Unauthorized => ApiError::Unauthorized,
            Refusal::Store(e) => ApiError::Store(e),
            Refusal::Unconfigured => {
                ApiError::Store(StoreError::Database("no application state".into()))
            }
        };
        match crate::api::fhir::common::response_format(request) {
            Ok(format) => error.into_response(format),
            Err(not_acceptable) => not_acceptable.into_response(crate::fhir::read::Format::Json),
        }
    } else {
        let problem = match refusal {
            Refusal::Unauthorized => Problem::Unauthorized,
            Refusal::Store(e) => Problem::Store(e),
            Refusal::Unconfigured => {
                Problem::Store(StoreError::Database("no application state".into()))
            }
        };
        problem.into_response()
    };
    InternalError::from_response("request refused", response).into()
}
