//! The one place failures become HTTP answers, one dialect per kind of caller: GP systems get a
//! FHIR OperationOutcome (`operation_outcome`), the JSON APIs for VCS organisations and the
//! operator get RFC 9457 problem details (`problem`), and the token endpoint answers as RFC 6749
//! says (`oauth`). Handlers return domain errors with `?`; the mapping from each domain error
//! (`LifecycleError`, `StoreError`, `FieldError`, …) to each dialect is written here once.

pub mod oauth;
pub mod operation_outcome;
pub mod problem;

use actix_web::error::InternalError;
use actix_web::HttpRequest;

pub use operation_outcome::{respond, ApiError, Reply};
pub use problem::Problem;

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
