//! RFC 6749 (section 5.2) error answers of the token endpoint: `{"error", "error_description"}`,
//! never cached, 401 for a client that failed to authenticate, 503 with `Retry-After` while the
//! store that keeps used assertions and issued tokens cannot answer.

use actix_web::HttpResponse;
use serde_json::json;

use crate::auth::jwt::OAuthError;

/// The token endpoint's answer to a refused request.
pub fn oauth_response(error: &OAuthError) -> HttpResponse {
    let mut builder = match error {
        OAuthError::InvalidClient(_) => HttpResponse::Unauthorized(),
        OAuthError::Unavailable(_) => {
            let mut builder = HttpResponse::ServiceUnavailable();
            builder.insert_header(("Retry-After", "2"));
            builder
        }
        _ => HttpResponse::BadRequest(),
    };
    builder
        .insert_header(("cache-control", "no-store"))
        .json(json!({"error": error.code(), "error_description": error.to_string()}))
}
