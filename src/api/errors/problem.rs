//! RFC 9457 problem details: how the JSON APIs (the VCS API and the operator's) say no. Domain
//! errors become problems here, once.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde_json::json;

use crate::lifecycle::LifecycleError;
use crate::onward::OnwardError;
use crate::store::StoreError;
use crate::translate::vcs_request::FieldError;

#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error("authentication required")]
    Unauthorized,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    /// The caller may not do this at all (not a question of which referral).
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    /// The request body breaks its schema or rules; each entry names a field.
    #[error("the request has invalid fields")]
    Invalid(Vec<(String, String)>),
    #[error("{0}")]
    Busy(String),
    /// Past a rate limit: `429` with `Retry-After` (seconds).
    #[error("Too many requests from this caller; retry after {0} s.")]
    Throttled(u64),
    /// A request refused before its handler, with its own status (a body too large or too slow).
    #[error("{1}")]
    Refused(StatusCode, String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Problem {
    fn status(&self) -> StatusCode {
        match self {
            Problem::Unauthorized => StatusCode::UNAUTHORIZED,
            Problem::NotFound(_) => StatusCode::NOT_FOUND,
            Problem::BadRequest(_) => StatusCode::BAD_REQUEST,
            Problem::Forbidden(_) => StatusCode::FORBIDDEN,
            Problem::Conflict(_) => StatusCode::CONFLICT,
            Problem::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Problem::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            Problem::Refused(status, _) => *status,
            Problem::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            Problem::Store(StoreError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            Problem::Store(StoreError::OverBudget { .. } | StoreError::DiskLow { .. }) => {
                StatusCode::INSUFFICIENT_STORAGE
            }
            Problem::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn into_response(self) -> HttpResponse {
        let status = self.status();
        let detail = match &self {
            Problem::Store(StoreError::Unavailable(_)) => {
                tracing::warn!(error = %self, "storage unavailable");
                "Storage is briefly unavailable; nothing was changed. Try again shortly."
                    .to_string()
            }
            Problem::Store(StoreError::OverBudget { .. } | StoreError::DiskLow { .. }) => {
                tracing::error!(error = %self, "storage budget reached: writes refused");
                "The gateway's storage is full to its budget, or its disk nearly full; nothing \
                 was changed. Try again later."
                    .to_string()
            }
            Problem::Store(_) => {
                tracing::error!(error = %self, "request failed");
                "The server could not complete this; nothing was changed.".to_string()
            }
            other => other.to_string(),
        };
        let mut builder = HttpResponse::build(status);
        if matches!(self, Problem::Unauthorized) {
            builder.insert_header(("WWW-Authenticate", "Bearer"));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            builder.insert_header(("Retry-After", "2"));
        }
        if let Problem::Throttled(seconds) = &self {
            builder.insert_header(("Retry-After", seconds.to_string()));
        }
        let mut body = json!({
            "type": "about:blank",
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "detail": detail,
        });
        if let Problem::Invalid(errors) = &self {
            body["errors"] = errors
                .iter()
                .map(|(field, message)| json!({"field": field, "message": message}))
                .collect();
            body["detail"] = json!(errors
                .iter()
                .map(|(field, message)| format!("{field}: {message}"))
                .collect::<Vec<_>>()
                .join("; "));
        }
        builder
            .content_type("application/problem+json")
            .body(body.to_string())
    }
}

impl From<FieldError> for Problem {
    fn from(error: FieldError) -> Self {
        Problem::Invalid(vec![(error.field, error.message)])
    }
}

impl From<OnwardError> for Problem {
    fn from(error: OnwardError) -> Self {
        match error {
            OnwardError::NotLinkWorker(_) => Problem::Forbidden(error.to_string()),
            OnwardError::Lifecycle(e) => e.into(),
        }
    }
}

impl From<LifecycleError> for Problem {
    fn from(error: LifecycleError) -> Self {
        match error {
            LifecycleError::NotFound => {
                Problem::NotFound("No such referral for this organisation.".into())
            }
            LifecycleError::Transition { .. } | LifecycleError::PreconditionFailed { .. } => {
                Problem::Conflict(error.to_string())
            }
            LifecycleError::Unsupported(text) => Problem::Invalid(vec![("body".into(), text)]),
            LifecycleError::Refused(issues) => Problem::Invalid(
                issues
                    .into_iter()
                    .map(|i| {
                        let field = i.expression.unwrap_or_else(|| "body".into());
                        (field, i.diagnostics)
                    })
                    .collect(),
            ),
            LifecycleError::Busy => Problem::Busy(error.to_string()),
            LifecycleError::KeyReused => {
                Problem::Invalid(vec![("Idempotency-Key".into(), error.to_string())])
            }
            LifecycleError::Invalid(issues) => {
                // Our own translation broke our profiles: a defect to fix, not the caller's fault.
                // The log names where (FHIRPath expressions), never what: diagnostics quote the
                // values, and the values are the patient's.
                let places: Vec<String> = issues
                    .iter()
                    .flat_map(|i| i.expression.iter().cloned())
                    .collect();
                Problem::Store(StoreError::Database(
                    format!("generated FHIR failed validation at {}", places.join(", ")).into(),
                ))
            }
            LifecycleError::Store(e) => Problem::Store(e),
        }
    }
}
