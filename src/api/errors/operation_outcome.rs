//! How the FHIR API says no: every failure a GP system meets is an OperationOutcome, in the
//! format it asked for, with the status FHIR's RESTful API gives it. Each domain error is mapped
//! here once, so two endpoints never answer the same failure differently.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde_json::Value;

use crate::conformance::ConformanceError;
use crate::fhir::outcome::{operation_outcome, Issue, Severity};
use crate::fhir::read::{render, Format, ReadError};
use crate::lifecycle::LifecycleError;
use crate::store::StoreError;

/// What a commissioner is told on an endpoint that discloses records.
pub const AGGREGATES_ONLY: &str = "A commissioner's token reads aggregate figures only: \
/reports/v1/referrals, /reports/v1/wellbeing, /fhir/Measure and /fhir/MeasureReport.";

/// What another caller is told on the reports.
pub const COMMISSIONERS_ONLY: &str = "Only a commissioner's token reads the reports.";

/// Everything a FHIR request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("authentication required")]
    Unauthorized,
    /// The token is valid but lacks the scope named.
    #[error("the token lacks the scope {0}")]
    Forbidden(String),
    /// A commissioner's token on an endpoint that discloses records.
    #[error("a commissioner reads aggregate reports only")]
    AggregatesOnly,
    /// Another caller's token on the reports.
    #[error("only commissioners read the reports")]
    CommissionersOnly,
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("unsupported media type {0:?}")]
    UnsupportedMediaType(String),
    #[error("cannot produce {0:?}")]
    NotAcceptable(String),
    #[error("the body exceeds {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    BadRequest(String),
    /// Validation or business-rule failures; `structure` issues make it a 400, others a 422.
    #[error("invalid submission")]
    Invalid(Vec<Issue>),
    #[error("conflict")]
    Conflict(Vec<Issue>),
    #[error("the request body was not received in time")]
    RequestTimeout,
    #[error("precondition failed")]
    PreconditionFailed(Vec<Issue>),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Conformance(#[from] ConformanceError),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::AggregatesOnly | ApiError::CommissionersOnly => {
                StatusCode::FORBIDDEN
            }
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BadRequest(_) | ApiError::Read(_) => StatusCode::BAD_REQUEST,
            ApiError::Invalid(issues) => {
                let structural = issues
                    .iter()
                    .any(|i| i.severity.is_error() && i.code == "structure");
                if structural {
                    StatusCode::BAD_REQUEST
                } else {
                    StatusCode::UNPROCESSABLE_ENTITY
                }
            }
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::Store(StoreError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Store(StoreError::OverBudget { .. } | StoreError::DiskLow { .. }) => {
                StatusCode::INSUFFICIENT_STORAGE
            }
            ApiError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Conformance(ConformanceError::CannotExpand(_)) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::Conformance(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The message ids of the errors this answer reports (the rule broken, `unreadable-body`,
    /// `payload-too-large`…), each once: what the intake refusal counter is labelled by.
    pub fn error_message_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .issues()
            .into_iter()
            .filter(|issue| matches!(issue.severity, Severity::Error | Severity::Fatal))
            .map(|issue| issue.message_id.unwrap_or_else(|| issue.code.to_string()))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    fn issues(&self) -> Vec<Issue> {
        let single = |code: &'static str, text: String, id: &str| {
            vec![Issue::error(code, text).with_message_id(id)]
        };
        match self {
            ApiError::Invalid(issues) | ApiError::Conflict(issues) | ApiError::PreconditionFailed(issues) => {
                issues.clone()
            }
            ApiError::Unauthorized => single(
                "login",
                "Send the client's token as Authorization: Bearer <token>.".into(),
                "unauthorized",
            ),
            ApiError::Forbidden(scope) => single(
                "forbidden",
                format!("This token does not carry the scope {scope}; ask /oauth2/token for it."),
                "forbidden",
            ),
            ApiError::AggregatesOnly => single(
                "forbidden",
                AGGREGATES_ONLY.into(),
                "aggregates-only",
            ),
            ApiError::CommissionersOnly => single(
                "forbidden",
                COMMISSIONERS_ONLY.into(),
                "commissioners-only",
            ),
            ApiError::NotFound(what) => single("not-found", what.clone(), "not-found"),
            ApiError::MethodNotAllowed => single(
                "not-supported",
                "This method is not supported on this URL; see /fhir/metadata.".into(),
                "method-not-allowed",
            ),
            ApiError::UnsupportedMediaType(given) => single(
                "not-supported",
                format!("Content-Type {given:?} is not supported: send application/fhir+json or application/fhir+xml."),
                "unsupported-media-type",
            ),
            ApiError::NotAcceptable(asked) => single(
                "not-supported",
                format!("Cannot answer in {asked:?}: ask for application/fhir+json or application/fhir+xml."),
                "not-acceptable",
            ),
            ApiError::PayloadTooLarge { limit } => single(
                "too-costly",
                format!("The body is larger than the {limit} bytes this server accepts."),
                "payload-too-large",
            ),
            ApiError::RequestTimeout => single(
                "timeout",
                "The request body did not arrive in time; send it again.".into(),
                "request-timeout",
            ),
            ApiError::BadRequest(text) => single("invalid", text.clone(), "bad-request"),
            ApiError::Read(error) => single("structure", read_error_text(error), "unreadable-body"),
            ApiError::Store(StoreError::Unavailable(_)) => single(
                "transient",
                "Storage is briefly unavailable; nothing was stored. Retry with If-None-Exist.".into(),
                "storage-unavailable",
            ),
            ApiError::Store(StoreError::OverBudget { .. } | StoreError::DiskLow { .. }) => single(
                "too-costly",
                "The gateway's storage is full to its budget, or its disk nearly full; nothing was \
                 stored. Ask its operator; reads still work."
                    .into(),
                "storage-full",
            ),
            ApiError::Store(_) => single(
                "exception",
                "The server failed to store or read this; nothing was stored.".into(),
                "storage-error",
            ),
            ApiError::Conformance(ConformanceError::CannotExpand(why)) => single(
                "not-supported",
                format!("This value set cannot be expanded here: {why}."),
                "cannot-expand",
            ),
            ApiError::Conformance(_) => single(
                "exception",
                "The server could not prepare this definition.".into(),
                "definition-error",
            ),
        }
    }

    /// Renders the error as an OperationOutcome in `format`.
    pub fn into_response(self, format: Format) -> HttpResponse {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let mut response = Reply::new(status, Some(operation_outcome(&self.issues())));
        if matches!(self, ApiError::Unauthorized) {
            response = response.header("WWW-Authenticate", "Bearer");
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // A database restart or failover takes seconds: say when to come back.
            response = response.header("Retry-After", "2");
        }
        response.render(format)
    }
}

impl From<LifecycleError> for ApiError {
    fn from(error: LifecycleError) -> Self {
        let single = |code: &'static str, id: &str, text: String| {
            vec![Issue::error(code, text).with_message_id(id)]
        };
        match error {
            LifecycleError::NotFound => {
                ApiError::NotFound("There is no such ServiceRequest for this client.".into())
            }
            LifecycleError::PreconditionFailed { current, expected } => {
                ApiError::PreconditionFailed(single(
                    "conflict",
                    "version-conflict",
                    format!(
                        "If-Match names version {expected}, but the ServiceRequest is at version \
                         {current}: read it again."
                    ),
                ))
            }
            LifecycleError::Transition { from, .. } => ApiError::Conflict(single(
                "business-rule",
                "referral-closed",
                format!("The referral can no longer be cancelled: it is {from}."),
            )),
            LifecycleError::Busy => {
                ApiError::Store(StoreError::Unavailable("the referral is busy".into()))
            }
            LifecycleError::KeyReused => ApiError::Invalid(single(
                "business-rule",
                "idempotency-key-reused",
                error.to_string(),
            )),
            LifecycleError::Unsupported(text) => {
                ApiError::Invalid(single("not-supported", "unsupported-change", text))
            }
            LifecycleError::Refused(issues) => ApiError::Invalid(issues),
            LifecycleError::Invalid(issues) => {
                tracing::error!(issues = issues.len(), "generated FHIR failed our profiles");
                ApiError::Store(StoreError::Database(
                    "generated FHIR failed validation".into(),
                ))
            }
            LifecycleError::Store(e) => ApiError::Store(e),
        }
    }
}

fn read_error_text(error: &ReadError) -> String {
    match error {
        ReadError::NotAResource => {
            "A FHIR resource is a JSON object with a resourceType; this body is not.".into()
        }
        other => {
            let mut text = other.to_string();
            if let Some(first) = text.get(..1) {
                text = first.to_uppercase() + &text[1..];
            }
            text + "."
        }
    }
}

/// A successful FHIR answer: status, headers, and an optional resource body.
#[derive(Debug)]
pub struct Reply {
    status: StatusCode,
    headers: Vec<(&'static str, String)>,
    body: Option<Value>,
}

impl Reply {
    pub fn new(status: StatusCode, body: Option<Value>) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body,
        }
    }

    pub fn ok(body: Value) -> Self {
        Reply::new(StatusCode::OK, Some(body))
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn render(self, format: Format) -> HttpResponse {
        let mut builder = HttpResponse::build(self.status);
        for (name, value) in &self.headers {
            builder.insert_header((*name, value.as_str()));
        }
        let Some(body) = self.body else {
            return builder.finish();
        };
        match render(&body, format) {
            Ok(bytes) => builder.content_type(format.content_type()).body(bytes),
            // Our own resources always fit the model; should one not, JSON still reaches the client.
            Err(_) => builder
                .content_type(Format::Json.content_type())
                .body(body.to_string()),
        }
    }
}

/// Renders a handler's result in the negotiated format.
pub fn respond(format: Format, result: Result<Reply, ApiError>) -> HttpResponse {
    match result {
        Ok(reply) => reply.render(format),
        Err(error) => error.into_response(format),
    }
}
