//! The web inbox's dialect: failures as HTML pages a person can act on (sign in again, go back
//! to the list, wait), never a stack of JSON. Field errors are not here: a form comes back with
//! its error summary from the handler that knows the form.

use actix_web::http::{header, StatusCode};
use actix_web::HttpResponse;

use crate::inbox::message_page;
use crate::lifecycle::LifecycleError;
use crate::store::StoreError;

/// Why an inbox request did not get its page.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// Not signed in, or the session idled out or was ended: to the sign-in page.
    #[error("sign in first")]
    SignIn,
    /// No such referral for this organisation (another's does not exist for it).
    #[error("not found")]
    NotFound,
    /// A form without this session's token, or an account the inbox is not for.
    #[error("{0}")]
    Forbidden(String),
    /// A query the page cannot answer (a report's wrong date or grouping): what is wrong.
    #[error("{0}")]
    BadRequest(String),
    /// Past a limit: seconds to wait.
    #[error("too many requests")]
    Throttled(u64),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Something we built failed our own rules: a defect.
    #[error("{0}")]
    Defect(String),
}

impl From<LifecycleError> for PageError {
    fn from(error: LifecycleError) -> Self {
        match error {
            LifecycleError::NotFound => PageError::NotFound,
            LifecycleError::Store(e) => PageError::Store(e),
            LifecycleError::Busy => {
                PageError::Store(StoreError::Unavailable("the referral kept changing".into()))
            }
            other => PageError::Defect(other.to_string()),
        }
    }
}

/// Headers every inbox answer carries: nothing cached, no framing, no scripts, forms only to us.
pub fn secure_headers(response: &mut actix_web::HttpResponseBuilder) {
    response
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ));
}

/// An HTML page with the inbox's headers.
pub fn html(status: StatusCode, body: String) -> HttpResponse {
    let mut response = HttpResponse::build(status);
    secure_headers(&mut response);
    response.content_type("text/html; charset=utf-8").body(body)
}

/// `303 See Other` to `location` (after a form, or to sign in).
pub fn see_other(location: &str) -> HttpResponse {
    let mut response = HttpResponse::SeeOther();
    secure_headers(&mut response);
    response
        .insert_header((header::LOCATION, location.to_string()))
        .finish()
}

impl actix_web::ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            PageError::SignIn => StatusCode::SEE_OTHER,
            PageError::NotFound => StatusCode::NOT_FOUND,
            PageError::Forbidden(_) => StatusCode::FORBIDDEN,
            PageError::BadRequest(_) => StatusCode::BAD_REQUEST,
            PageError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            PageError::Store(StoreError::OverBudget { .. }) => StatusCode::INSUFFICIENT_STORAGE,
            PageError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            PageError::Defect(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let (title, text) = match self {
            PageError::SignIn => return see_other("/inbox/login"),
            PageError::NotFound => (
                "Page not found",
                "There is no such referral for your organisation.".to_string(),
            ),
            PageError::Forbidden(why) => ("You cannot do that", why.clone()),
            PageError::BadRequest(why) => ("There is a problem with the request", why.clone()),
            PageError::Throttled(secs) => (
                "Too many attempts",
                format!("Wait {secs} seconds, then try again."),
            ),
            PageError::Store(e) => {
                tracing::error!(error = %e, "inbox: storage failed");
                (
                    "Sorry, there is a problem with the service",
                    "Nothing was saved. Try again later.".to_string(),
                )
            }
            PageError::Defect(e) => {
                tracing::error!(error = %e, "inbox: defect");
                (
                    "Sorry, there is a problem with the service",
                    "Nothing was saved. Try again later.".to_string(),
                )
            }
        };
        let mut response = html(status, message_page(title, &text, None).into_string());
        if let PageError::Throttled(secs) = self {
            if let Ok(value) = header::HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}
