//! The OAuth 2.0 token endpoint (`POST /oauth2/token`, SMART Backend Services) and its SMART
//! discovery document. The HTTP half only: reading the form and the TLS connection and rendering
//! the answer; verifying assertions and issuing tokens is `auth`'s, which knows no HTTP.

use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::errors::oauth::oauth_response;
use super::AppState;
use crate::auth::scopes;
use crate::auth::tls::ClientCertificate;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/oauth2/token", web::post().to(token));
    cfg.route(
        "/fhir/.well-known/smart-configuration",
        web::get().to(smart_configuration),
    );
}

/// `POST /oauth2/token`: `grant_type=client_credentials` with a `private_key_jwt` assertion.
async fn token(state: web::Data<AppState>, request: HttpRequest, body: web::Bytes) -> HttpResponse {
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let certificate = request.conn_data::<ClientCertificate>();
    match state
        .auth
        .exchange(state.store.as_ref(), &form, certificate)
        .await
    {
        Ok(grant) => HttpResponse::Ok()
            .insert_header(("cache-control", "no-store"))
            .json(json!({
                "access_token": grant.access_token,
                "token_type": "bearer",
                "expires_in": grant.expires_in,
                "scope": grant.scope,
            })),
        Err(error) => {
            tracing::info!(error = error.code(), reason = %error, "token request refused");
            if !matches!(error, crate::auth::jwt::OAuthError::Unavailable(_)) {
                super::access::record_failed_login(&state, &request);
            }
            oauth_response(&error)
        }
    }
}

/// `GET /fhir/.well-known/smart-configuration`: SMART discovery, so a backend service finds the
/// token endpoint and what it accepts without reading our documentation.
async fn smart_configuration(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "token_endpoint": state.auth.token_endpoint_url(),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "scopes_supported": scopes::all(),
        "capabilities": ["client-confidential-asymmetric"],
    }))
}
