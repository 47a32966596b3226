//! The operator pages' routes (`/admin`): signed in through the inbox's sign-in (same session,
//! same CSRF), for `operator` accounts only (members of an organisation get 403). Reads come
//! from the same store functions as the JSON API `/admin/v1`; **Retry**, **Recover** and
//! **Enable** call the same [`crate::operator`] functions, then redirect (POST, redirect, GET)
//! to a page with a confirmation. Every action and every page that names a referral or reads the
//! audit trail is itself audited, by the operator's account.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};

use super::errors::page::{html, see_other, PageError};
use super::inbox::{audit, check_token, field, form_fields, session};
use super::{access, query_pairs, AppState};
use crate::domain::Actor;
use crate::inbox::dashboard::{
    DeliveryRow, EndpointRow, RefusalRow, RECOVER_PERIODS, REFUSAL_PERIODS,
};
use crate::inbox::{
    audit_page, dead_letters_page, overview_page, refusals_page, AuditFilter, AuditView,
    DeadLetters, Notice, Overview, RefusalsView, SignedIn,
};
use crate::operator::{self, OperatorError};
use crate::store::{
    Account, AuditQuery, DeliveryFilter, DeliveryState, Membership, RefusalCount, TargetKind,
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin", web::get().to(overview))
        .route("/admin/dead-letters", web::get().to(dead_letters))
        .route("/admin/dead-letters/{id}/retry", web::post().to(retry))
        .route("/admin/recover", web::post().to(recover))
        .route("/admin/endpoints/{vcs}/enable", web::post().to(enable))
        .route("/admin/refusals", web::get().to(refusals))
        .route("/admin/audit", web::get().to(audit_trail));
}

impl From<OperatorError> for PageError {
    fn from(error: OperatorError) -> Self {
        match error {
            OperatorError::NotFound(why) => PageError::Missing(why),
            OperatorError::Conflict(why) => PageError::Conflict(why),
            OperatorError::Store(e) => PageError::Store(e),
        }
    }
}

/// A signed-in operator.
pub struct SignedOperator {
    account: Account,
    csrf: String,
}

impl SignedOperator {
    fn signed_in(&self) -> SignedIn<'_> {
        SignedIn {
            email: self.account.email.as_str(),
            organisation: "Operator",
            csrf: &self.csrf,
        }
    }

    fn actor(&self) -> Actor {
        Actor::Person(self.account.id.clone())
    }
}

/// The signed-in operator, or why not: no session (to sign in), or a member of an organisation.
async fn signed_operator(
    state: &AppState,
    request: &HttpRequest,
) -> Result<SignedOperator, PageError> {
    let session = session(state, request).await?.ok_or(PageError::SignIn)?;
    if session.account.membership != Membership::Operator {
        return Err(PageError::Forbidden(
            "The operator pages are for the gateway's operators; your organisation's referrals are in the inbox."
                .into(),
        ));
    }
    Ok(SignedOperator {
        csrf: session.csrf_token,
        account: session.account,
    })
}

/// The operator and the form's fields, once its CSRF token matched.
async fn signed_form(
    state: &AppState,
    request: &HttpRequest,
    body: &[u8],
) -> Result<(SignedOperator, Vec<(String, String)>), PageError> {
    let operator = signed_operator(state, request).await?;
    let fields = form_fields(body);
    check_token(&operator.csrf, &fields)?;
    Ok((operator, fields))
}

fn page(body: maud::Markup) -> HttpResponse {
    html(StatusCode::OK, body.into_string())
}

/// The confirmation a redirect asked for (`?retried=…`, `?recovered=…&messages=…`,
/// `?enabled=…`).
fn notice_of(request: &HttpRequest) -> Option<Notice> {
    let pairs = query_pairs(request);
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    if let Some(id) = get("retried") {
        return Some(Notice::Retried(id));
    }
    if let Some(vcs) = get("recovered") {
        let messages = get("messages").and_then(|n| n.parse().ok())?;
        return Some(Notice::Recovered { vcs, messages });
    }
    get("enabled").map(Notice::Enabled)
}

/// `/admin?enabled=carers-count`: a query value, encoded.
fn with_query(path: &str, pairs: &[(&str, &str)]) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    format!("{path}?{query}")
}

/// Messages per organisation (webhook and emails together) and one row for GP systems'
/// Subscriptions, from the store's counts.
fn delivery_rows(state: &AppState, counts: &[crate::store::DeliveryCount]) -> Vec<DeliveryRow> {
    let mut rows: BTreeMap<(bool, String), DeliveryRow> = BTreeMap::new();
    for vcs in &state.config.vcs {
        let name = vcs.name.clone();
        rows.entry((false, vcs.id.to_string()))
            .or_insert(DeliveryRow {
                name,
                ..DeliveryRow::default()
            });
    }
    for count in counts {
        let key = match count.target_kind {
            TargetKind::Subscription => (true, String::new()),
            TargetKind::Vcs | TargetKind::Email => (false, count.target.clone()),
        };
        let row = rows.entry(key).or_insert_with_key(|(gp, id)| DeliveryRow {
            name: if *gp {
                "GP systems (Subscriptions)".into()
            } else {
                id.clone()
            },
            ..DeliveryRow::default()
        });
        match count.state {
            DeliveryState::Pending => row.pending += count.messages,
            DeliveryState::Delivered => row.delivered += count.messages,
            DeliveryState::Dead => row.dead += count.messages,
        }
    }
    rows.into_values().collect()
}

async fn overview(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let operator = signed_operator(&state, &request).await?;
    let store = state.store.as_ref();
    let counts = store.delivery_counts().await?;
    let health = store.endpoint_health().await?;
    let disabled = store.disabled_endpoints().await?;
    let endpoints = state
        .config
        .vcs
        .iter()
        .map(|vcs| EndpointRow {
            vcs_id: vcs.id.to_string(),
            name: vcs.name.clone(),
            webhook: vcs.webhook().is_some(),
            health: health.iter().find(|h| h.vcs_id == vcs.id.as_str()).cloned(),
            disabled: disabled
                .iter()
                .find(|(id, _)| id == vcs.id.as_str())
                .map(|(_, reason)| reason.clone()),
        })
        .collect();
    let view = Overview {
        deliveries: delivery_rows(&state, &counts),
        queue: store.outbox_stats(Utc::now()).await?,
        endpoints,
        feeds: state.feeds.status().await?,
        notice: notice_of(&request),
    };
    Ok(page(overview_page(&operator.signed_in(), &view)))
}

const DEAD_LETTERS_SHOWN: usize = 100;

async fn dead_letters(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let operator = signed_operator(&state, &request).await?;
    let filter = DeliveryFilter {
        state: Some(DeliveryState::Dead),
        count: DEAD_LETTERS_SHOWN,
        ..DeliveryFilter::default()
    };
    let (total, letters) = state.store.list_deliveries(&filter).await?;
    // Each referral the list names, once, as the JSON API records it.
    let referrals: std::collections::BTreeSet<&str> =
        letters.iter().map(|d| d.referral_id.as_str()).collect();
    let named = referrals.into_iter().map(|id| ("ServiceRequest", id));
    access::record_each(&state, &request, &operator.actor(), "search", named).await?;
    let recoverable = state
        .config
        .vcs
        .iter()
        .filter(|v| v.webhook().is_some())
        .map(|v| (v.id.to_string(), v.name.clone()))
        .collect();
    let view = DeadLetters {
        total,
        letters,
        recoverable,
        notice: notice_of(&request),
    };
    Ok(page(dead_letters_page(&operator.signed_in(), &view)))
}

async fn retry(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let (operator, _) = signed_form(&state, &request, &body).await?;
    let target = ("OutboxMessage", Some(path.as_str()));
    let done = operator::retry(state.store.as_ref(), &state.wake, &path).await;
    let outcome = if done.is_ok() { "success" } else { "refused" };
    audit(&state, &request, operator.actor(), "retry", target, outcome).await?;
    done?;
    let to = with_query("/admin/dead-letters", &[("retried", path.as_str())]);
    Ok(see_other(&to))
}

/// How far back a recovery reaches, from the form's `days` (`all`: any time).
fn recovery_since(days: Option<&str>, now: DateTime<Utc>) -> Result<DateTime<Utc>, PageError> {
    let bad = || PageError::BadRequest("Choose how far back to recover.".into());
    let days = days
        .filter(|d| RECOVER_PERIODS.iter().any(|(value, _)| value == d))
        .ok_or_else(bad)?;
    match days.parse::<i64>() {
        Ok(n) => Ok(now - Duration::days(n)),
        Err(_) => Ok(DateTime::<Utc>::UNIX_EPOCH),
    }
}

async fn recover(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let (operator, fields) = signed_form(&state, &request, &body).await?;
    let vcs = field(&fields, "vcs").unwrap_or("").to_string();
    let since = recovery_since(field(&fields, "days"), Utc::now())?;
    let (config, store) = (&state.config, state.store.as_ref());
    let done = operator::recover(config, store, &state.wake, &vcs, since).await;
    let target = ("Organization", Some(vcs.as_str()));
    let outcome = if done.is_ok() { "success" } else { "refused" };
    audit(
        &state,
        &request,
        operator.actor(),
        "recover",
        target,
        outcome,
    )
    .await?;
    let messages = done?.total.to_string();
    let to = with_query(
        "/admin/dead-letters",
        &[("recovered", vcs.as_str()), ("messages", messages.as_str())],
    );
    Ok(see_other(&to))
}

async fn enable(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let (operator, _) = signed_form(&state, &request, &body).await?;
    let (config, store) = (&state.config, state.store.as_ref());
    let done = operator::set_enabled(config, store, &state.wake, &path, true).await;
    let target = ("Organization", Some(path.as_str()));
    let outcome = if done.is_ok() { "success" } else { "refused" };
    audit(
        &state,
        &request,
        operator.actor(),
        "enable",
        target,
        outcome,
    )
    .await?;
    let vcs = done?;
    Ok(see_other(&with_query(
        "/admin",
        &[("enabled", vcs.as_str())],
    )))
}

/// Monday of `day`'s week.
fn week_of(day: NaiveDate) -> NaiveDate {
    day - Duration::days(i64::from(day.weekday().num_days_from_monday()))
}

/// The store's daily counts, by day or summed by week, most refusals first.
pub fn refusal_rows(counts: Vec<RefusalCount>, weekly: bool) -> Vec<RefusalRow> {
    let mut sums: BTreeMap<(NaiveDate, String, String), u64> = BTreeMap::new();
    for c in counts {
        let period = if weekly { week_of(c.day) } else { c.day };
        *sums
            .entry((period, c.client.to_string(), c.message_id))
            .or_default() += c.refusals;
    }
    let mut rows: Vec<RefusalRow> = sums
        .into_iter()
        .map(|((period, client, message_id), refusals)| RefusalRow {
            period,
            client,
            message_id,
            refusals,
        })
        .collect();
    rows.sort_by(|a, b| b.refusals.cmp(&a.refusals).then(a.period.cmp(&b.period)));
    rows
}

async fn refusals(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let operator = signed_operator(&state, &request).await?;
    let (mut days, mut weekly) = (REFUSAL_PERIODS[0], false);
    for (name, value) in query_pairs(&request) {
        match (name.as_str(), value.as_str()) {
            ("days", d) => {
                days = d
                    .parse()
                    .ok()
                    .filter(|d| REFUSAL_PERIODS.contains(d))
                    .ok_or_else(|| PageError::BadRequest("Choose a period from the list.".into()))?
            }
            ("by", "day") => weekly = false,
            ("by", "week") => weekly = true,
            _ => {
                return Err(PageError::BadRequest(
                    "Choose a period and to count by day or week.".into(),
                ))
            }
        }
    }
    let to = Utc::now().date_naive();
    let from = to - Duration::days(i64::from(days) - 1);
    let counts = state.store.refusal_counts(from, to).await?;
    let view = RefusalsView {
        days,
        weekly,
        rows: refusal_rows(counts, weekly),
    };
    Ok(page(refusals_page(&operator.signed_in(), &view)))
}

const AUDIT_SHOWN: usize = 100;

async fn audit_trail(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let operator = signed_operator(&state, &request).await?;
    let mut filter = AuditFilter::default();
    for (name, value) in query_pairs(&request) {
        match name.as_str() {
            "actor" => filter.actor = value.trim().to_string(),
            "action" => filter.action = value.trim().to_string(),
            _ => {
                return Err(PageError::BadRequest(
                    "Filter by actor and action only.".into(),
                ))
            }
        }
    }
    let query = AuditQuery {
        actor: Some(filter.actor.clone()).filter(|a| !a.is_empty()),
        action: Some(filter.action.clone()).filter(|a| !a.is_empty()),
        newest_first: true,
        count: AUDIT_SHOWN,
        ..AuditQuery::default()
    };
    // Reading the trail is recorded before it is shown (it names no patient: see the page).
    let target = ("AuditEvent", None);
    audit(
        &state,
        &request,
        operator.actor(),
        "search",
        target,
        "success",
    )
    .await?;
    let (total, records) = state.store.audit_events(&query).await?;
    let view = AuditView {
        filter,
        total,
        records,
    };
    Ok(page(audit_page(&operator.signed_in(), &view)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(day: &str, client: &str, rule: &str, n: u64) -> RefusalCount {
        RefusalCount {
            day: day.parse().expect("day"),
            client: client.parse().expect("client"),
            message_id: rule.into(),
            refusals: n,
        }
    }

    #[test]
    fn refusals_sum_by_week_from_monday_most_first() {
        let counts = vec![
            count("2026-12-01", "emis-demo", "sp-nhs-number", 2),
            count("2026-12-03", "emis-demo", "sp-nhs-number", 3),
            count("2026-12-08", "emis-demo", "sp-nhs-number", 1),
            count("2026-12-02", "tpp-demo", "sp-consent", 4),
        ];
        let weekly = refusal_rows(counts.clone(), true);
        let monday: NaiveDate = "2026-11-30".parse().expect("day");
        assert_eq!(weekly[0].refusals, 5);
        assert_eq!(weekly[0].period, monday);
        assert_eq!(weekly[1].message_id, "sp-consent");
        assert_eq!(weekly.len(), 3);
        let daily = refusal_rows(counts, false);
        assert_eq!(daily.len(), 4);
        assert_eq!(daily[0].refusals, 4);
    }

    #[test]
    fn recovery_reaches_back_only_as_far_as_offered() {
        let now = Utc::now();
        assert_eq!(
            recovery_since(Some("7"), now).ok(),
            Some(now - Duration::days(7))
        );
        assert_eq!(
            recovery_since(Some("all"), now).ok(),
            Some(DateTime::<Utc>::UNIX_EPOCH)
        );
        assert!(recovery_since(Some("3"), now).is_err());
        assert!(recovery_since(None, now).is_err());
    }
}
