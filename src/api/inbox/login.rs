//! Signing in and out. The sign-in form carries a token that must match a cookie set with it
//! (the form cannot be posted from another site); attempts are throttled per account and per
//! address; every sign-in, failure and sign-out is in the audit trail. A failure says the same
//! whatever was wrong, and takes the time of a password check even for an unknown address.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;

use super::{audit, check_token, cookie, field, form_fields, home, session, SESSION_COOKIE};
use crate::accounts::{self, SessionToken};
use crate::api::errors::page::{html, see_other, PageError};
use crate::api::rate_limit::peer_of;
use crate::api::AppState;
use crate::domain::Actor;
use crate::inbox::{login_page, FieldError};
use crate::store::{Account, Email, NewSession};

const LOGIN_COOKIE: &str = "sp_inbox_login";

/// The form, with a fresh token in a cookie and in the form. Signed in already: the list.
pub async fn form(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, PageError> {
    if let Some(session) = session(&state, &request).await? {
        return Ok(see_other(home(&session.account)));
    }
    Ok(login_response(&state, StatusCode::OK, &[], ""))
}

fn login_response(
    state: &AppState,
    status: StatusCode,
    errors: &[FieldError],
    email: &str,
) -> HttpResponse {
    let token = accounts::random_token();
    let mut response = html(status, login_page(errors, email, &token).into_string());
    // A cookie that cannot be added leaves a form that will be refused: never a silent pass.
    let _ = response.add_cookie(&cookie(state, LOGIN_COOKIE, token));
    response
}

/// The account the form names, if the password (and code, when it has one) is right.
fn verified(account: Option<Account>, password: &str, code: &str) -> Result<Account, Failure> {
    let Some(account) = account else {
        accounts::verify_nothing(password);
        return Err(Failure::Unknown);
    };
    if !accounts::verify_password(&account.password_hash, password) {
        return Err(Failure::Known(Box::new(account), "password"));
    }
    if let Some(secret) = &account.totp_secret {
        if !accounts::totp_matches(secret, code, Utc::now()) {
            return Err(Failure::Known(Box::new(account), "code"));
        }
    }
    if account.disabled {
        return Err(Failure::Known(Box::new(account), "disabled"));
    }
    Ok(account)
}

enum Failure {
    Unknown,
    Known(Box<Account>, &'static str),
}

pub async fn submit(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let fields = form_fields(&body);
    let from_this_site = match (request.cookie(LOGIN_COOKIE), field(&fields, "csrf")) {
        (Some(expected), Some(given)) => accounts::csrf_matches(expected.value(), given),
        _ => false,
    };
    if !from_this_site {
        return Err(PageError::Forbidden(
            "This sign-in form has expired. Go back, reload the page and try again.".into(),
        ));
    }
    let typed = field(&fields, "email").unwrap_or("");
    let password = field(&fields, "password").unwrap_or("");
    let code = field(&fields, "code").unwrap_or("");
    let mut errors = vec![];
    let email = match typed.parse::<Email>() {
        Ok(email) => Some(email),
        Err(_) if typed.is_empty() => {
            errors.push(FieldError::new("email", "Enter your email address"));
            None
        }
        Err(_) => {
            errors.push(FieldError::new(
                "email",
                "Enter an email address in the correct format, like name@example.org",
            ));
            None
        }
    };
    if password.is_empty() {
        errors.push(FieldError::new("password", "Enter your password"));
    }
    let Some(email) = email.filter(|_| errors.is_empty()) else {
        return Ok(login_response(
            &state,
            StatusCode::UNPROCESSABLE_ENTITY,
            &errors,
            typed,
        ));
    };
    if let Err(throttled) = state
        .login_limits
        .charge(&peer_of(&request), email.as_str())
    {
        let actor = Actor::Anonymous(request.peer_addr().map(|a| a.ip()));
        audit(
            &state,
            &request,
            actor,
            "login",
            ("inbox", None),
            "throttled",
        )
        .await?;
        return Err(PageError::Throttled(throttled.retry_after_secs));
    }
    let account = state.store.account_by_email(&email).await?;
    // Argon2 takes tens of milliseconds of CPU on purpose: off the event loop.
    let (password, code) = (password.to_string(), code.to_string());
    let checked = web::block(move || verified(account, &password, &code))
        .await
        .map_err(|e| PageError::Defect(e.to_string()))?;
    let account = match checked {
        Ok(account) => account,
        Err(failure) => {
            // The trail says what was wrong (the page never does).
            let (actor, target, outcome) = match &failure {
                Failure::Unknown => (
                    Actor::Anonymous(request.peer_addr().map(|a| a.ip())),
                    ("inbox", None),
                    "failure".to_string(),
                ),
                Failure::Known(account, why) => (
                    Actor::Person(account.id.clone()),
                    ("Account", Some(account.id.as_str())),
                    format!("failure-{why}"),
                ),
            };
            audit(&state, &request, actor, "login", target, &outcome).await?;
            let message = match failure {
                Failure::Known(account, _) if account.totp_secret.is_some() => {
                    "Enter a correct email address, password and code from your authenticator app"
                }
                _ => "Enter a correct email address and password",
            };
            let errors = [FieldError::new("email", message)];
            return Ok(login_response(
                &state,
                StatusCode::UNAUTHORIZED,
                &errors,
                email.as_str(),
            ));
        }
    };
    let token = SessionToken::generate();
    state
        .store
        .create_session(NewSession {
            digest: token.digest,
            account_id: account.id.clone(),
            csrf_token: accounts::random_token(),
            at: Utc::now(),
        })
        .await?;
    let actor = Actor::Person(account.id.clone());
    let target = ("Account", Some(account.id.as_str()));
    audit(&state, &request, actor, "login", target, "success").await?;
    let mut response = see_other(home(&account));
    let _ = response.add_cookie(&cookie(&state, SESSION_COOKIE, token.token));
    let _ = response.add_removal_cookie(&cookie(&state, LOGIN_COOKIE, String::new()));
    Ok(response)
}

pub async fn logout(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    // Members and operators alike sign out here.
    let session = session(&state, &request).await?.ok_or(PageError::SignIn)?;
    check_token(&session.csrf_token, &form_fields(&body))?;
    if let Some(token) = request.cookie(SESSION_COOKIE) {
        state
            .store
            .end_session(&accounts::token_digest(token.value()))
            .await?;
    }
    let target = ("Account", Some(session.account.id.as_str()));
    audit(
        &state,
        &request,
        Actor::Person(session.account.id.clone()),
        "logout",
        target,
        "success",
    )
    .await?;
    let mut response = see_other("/inbox/login");
    let _ = response.add_removal_cookie(&cookie(&state, SESSION_COOKIE, String::new()));
    Ok(response)
}
