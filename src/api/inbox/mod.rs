//! The web inbox's routes: sign-in and sessions (`login`), the list and one referral with its
//! actions (`referrals`). Pages come from `crate::inbox`; every action goes through the same
//! `lifecycle` functions as `/vcs/v1`, so the GP sees the same Task versions, Observations and
//! notifications whichever way an organisation answers.
//!
//! Sessions live in the store (both backends); the browser holds only a random token in a cookie
//! (`HttpOnly`, `SameSite=Strict`, `Secure` under TLS, path `/`: the operator pages at `/admin`
//! share the sign-in), and every form carries the session's CSRF token. Sign-in is throttled per
//! account and per address. Members of an organisation get the inbox; operators get `/admin`
//! (`api::dashboard`), and each is refused (403) the other's pages.

mod login;
mod onward;
mod referrals;

use std::time::Duration;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use governor::DefaultKeyedRateLimiter;

use super::errors::page::PageError;
use super::rate_limit::{self, Caller, Throttled};
use super::{correlation_id, AppState};
use crate::accounts;
use crate::domain::{Actor, VcsId};
use crate::inbox::{SignedIn, STYLESHEET, STYLESHEET_PATH};
use crate::store::{Access, Account, Membership, StoreError};

pub const SESSION_COOKIE: &str = "sp_inbox_session";
const COOKIE_PATH: &str = "/";

/// Sign-in limits: per account (by the email typed) and per peer address.
pub struct LoginLimits {
    accounts: DefaultKeyedRateLimiter<String>,
    peers: DefaultKeyedRateLimiter<Caller>,
}

impl Default for LoginLimits {
    /// Five tries an account, then one a minute; twenty an address, then one every six seconds.
    fn default() -> Self {
        LoginLimits {
            accounts: governor::RateLimiter::keyed(rate_limit::quota(Duration::from_secs(60), 5)),
            peers: governor::RateLimiter::keyed(rate_limit::quota(Duration::from_secs(6), 20)),
        }
    }
}

impl LoginLimits {
    /// Counts one sign-in attempt from `peer` for `email`.
    pub fn charge(&self, peer: &Caller, email: &str) -> Result<(), Throttled> {
        rate_limit::check_key(&self.peers, peer)?;
        rate_limit::check_key(&self.accounts, &email.trim().to_lowercase())
    }

    /// Forgets full buckets (run with the other limits' eviction).
    pub fn evict_idle(&self) {
        self.accounts.retain_recent();
        self.peers.retain_recent();
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(STYLESHEET_PATH, web::get().to(stylesheet))
        .route("/inbox/login", web::get().to(login::form))
        .route("/inbox/login", web::post().to(login::submit))
        .route("/inbox/logout", web::post().to(login::logout))
        .route("/inbox", web::get().to(referrals::list))
        .route("/inbox/referrals/{id}", web::get().to(referrals::read))
        .route(
            "/inbox/referrals/{id}/status",
            web::post().to(referrals::post_status),
        )
        .route(
            "/inbox/referrals/{id}/outcomes",
            web::post().to(referrals::post_outcome),
        )
        .route("/inbox/referrals/{id}/onward", web::get().to(onward::form))
        .route(
            "/inbox/referrals/{id}/onward",
            web::post().to(onward::submit),
        );
}

async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header(("cache-control", "public, max-age=3600"))
        .body(STYLESHEET)
}

/// A signed-in member of an organisation.
pub struct Member {
    pub account: Account,
    pub vcs: VcsId,
    pub organisation: String,
    pub csrf: String,
}

impl Member {
    pub fn signed_in(&self) -> SignedIn<'_> {
        SignedIn {
            email: self.account.email.as_str(),
            organisation: &self.organisation,
            csrf: &self.csrf,
        }
    }

    pub fn actor(&self) -> Actor {
        Actor::Person(self.account.id.clone())
    }
}

/// A cookie for the inbox and the operator pages: `HttpOnly`, `SameSite=Strict`, `Secure` under
/// TLS.
pub fn cookie(state: &AppState, name: &'static str, value: String) -> Cookie<'static> {
    Cookie::build(name, value)
        .path(COOKIE_PATH)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.config.server.tls.is_some())
        .finish()
}

/// The session the request's cookie names, if it is live.
pub async fn session(
    state: &AppState,
    request: &HttpRequest,
) -> Result<Option<crate::store::Session>, StoreError> {
    let Some(token) = request.cookie(SESSION_COOKIE) else {
        return Ok(None);
    };
    let now = Utc::now();
    state
        .store
        .session(
            &accounts::token_digest(token.value()),
            now - accounts::IDLE_TIMEOUT,
            now,
        )
        .await
}

/// The signed-in member, or why not: no session (to sign in), or an account the inbox is not for.
pub async fn member(state: &AppState, request: &HttpRequest) -> Result<Member, PageError> {
    let session = session(state, request).await?.ok_or(PageError::SignIn)?;
    let Membership::Member { vcs, .. } = &session.account.membership else {
        return Err(PageError::Forbidden(
            "The inbox is for members of an organisation; operators use the operator pages at /admin, commissioners the reports at /reports."
                .into(),
        ));
    };
    let organisation = state
        .config
        .vcs(vcs)
        .map(|v| v.name.clone())
        .ok_or_else(|| {
            PageError::Forbidden("Your organisation is no longer connected to the gateway.".into())
        })?;
    Ok(Member {
        vcs: vcs.clone(),
        organisation,
        csrf: session.csrf_token.clone(),
        account: session.account,
    })
}

/// A form body's fields, decoded, in order.
pub fn form_fields(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The first value of a form field, trimmed.
pub fn field<'f>(fields: &'f [(String, String)], name: &str) -> Option<&'f str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim())
}

/// Where an account lands after signing in: operators on their pages, commissioners on the
/// reports page, members in the inbox.
pub fn home(account: &Account) -> &'static str {
    match account.membership {
        Membership::Operator => "/admin",
        Membership::Commissioner(_) => crate::reports_page::PAGE_PATH,
        Membership::Member { .. } => "/inbox",
    }
}

/// A form must carry the session's token (CSRF).
pub fn check_csrf(member: &Member, fields: &[(String, String)]) -> Result<(), PageError> {
    check_token(&member.csrf, fields)
}

/// A form must carry `expected`, the session's token (CSRF).
pub fn check_token(expected: &str, fields: &[(String, String)]) -> Result<(), PageError> {
    match field(fields, "csrf") {
        Some(given) if accounts::csrf_matches(expected, given) => Ok(()),
        _ => Err(PageError::Forbidden(
            "This form has expired. Go back, reload the page and try again.".into(),
        )),
    }
}

/// Records an inbox event in the audit trail; failing to audit fails the request.
pub async fn audit(
    state: &AppState,
    request: &HttpRequest,
    actor: Actor,
    action: &str,
    target: (&str, Option<&str>),
    outcome: &str,
) -> Result<(), StoreError> {
    let (resource_type, resource_id) = target;
    state
        .store
        .record_access(Access {
            at: Utc::now(),
            actor,
            action: action.to_string(),
            resource_type: resource_type.to_string(),
            resource_id: resource_id.map(str::to_string),
            patient_id: None,
            outcome: outcome.to_string(),
            correlation_id: correlation_id(request),
        })
        .await
}
