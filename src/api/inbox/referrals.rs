//! The organisation's referrals and one referral's actions. Status reports and questionnaires
//! are turned into the very request bodies `/vcs/v1` takes, read by the same parsers and applied
//! by the same `Lifecycle` calls: one code path, whichever door an organisation uses.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{SecondsFormat, Utc};
use serde_json::{json, Value};

use super::{audit, check_csrf, field, form_fields, member, Member};
use crate::api::access;
use crate::api::errors::page::{html, see_other, PageError};
use crate::api::{correlation_id, AppState};
use crate::inbox::{
    list_page, referral_page, Action, FieldError, ListedReferral, ReferralView, StatusEntry,
};
use crate::lifecycle::{Lifecycle, LifecycleError};
use crate::store::{ReferralState, VcsReferralQuery};
use crate::translate::decline_reason::DeclineReason;
use crate::translate::instruments::Instrument;
use crate::translate::vcs_request::{parse_outcome_report, parse_status_update};
use crate::translate::vcs_status::VcsStatus;

/// The most referrals the list shows (the oldest changes first beyond it are left out).
const LIST_LIMIT: usize = 500;

pub(super) fn lifecycle(state: &AppState) -> Lifecycle<'_> {
    Lifecycle {
        store: state.store.as_ref(),
        config: &state.config,
        validation: &state.validation,
    }
}

fn parse_time(record: &Value) -> Option<chrono::DateTime<Utc>> {
    let text = record["created_at"].as_str()?;
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

pub async fn list(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let member = member(&state, &request).await?;
    let query = VcsReferralQuery {
        status: None,
        since: None,
        count: LIST_LIMIT,
        offset: 0,
    };
    let (_, items) = state.store.list_vcs_referrals(&member.vcs, &query).await?;
    let actor = member.actor();
    audit(
        &state,
        &request,
        actor.clone(),
        "search",
        ("ServiceRequest", None),
        "success",
    )
    .await?;
    let returned = items
        .iter()
        .map(|item| ("ServiceRequest", item.referral_id.as_str()));
    access::record_each(&state, &request, &actor, "search", returned).await?;
    let mut rows = items
        .iter()
        .map(|item| {
            let record = item.record_json()?;
            Ok(ListedReferral {
                referral_id: item.referral_id.to_string(),
                name: crate::inbox::person_name(&record),
                needs: crate::inbox::needs(&record),
                practice: crate::inbox::practice(&record),
                created_at: parse_time(&record),
                status: item.status,
            })
        })
        .collect::<Result<Vec<_>, crate::store::StoreError>>()?;
    // New first; within a group, the most recent first.
    rows.sort_by(|a, b| {
        crate::inbox::group_of(a.status)
            .cmp(&crate::inbox::group_of(b.status))
            .then(b.created_at.cmp(&a.created_at))
    });
    let page = list_page(&member.signed_in(), &rows, Utc::now());
    Ok(html(StatusCode::OK, page.into_string()))
}

/// The referral, if it is this member's organisation's (another's does not exist for it).
pub(super) async fn load(
    state: &AppState,
    member: &Member,
    id: &str,
) -> Result<ReferralState, PageError> {
    state
        .store
        .load_referral(id)
        .await?
        .filter(|r| r.vcs_id == member.vcs)
        .ok_or(PageError::NotFound)
}

/// The Task's versions, oldest first, as status history.
async fn history(
    state: &AppState,
    referral: &ReferralState,
) -> Result<Vec<StatusEntry>, PageError> {
    let Some(task) = &referral.task else {
        return Ok(vec![]);
    };
    let versions = state
        .store
        .history(&referral.client_id, "Task", &task.id)
        .await?;
    let mut entries = versions
        .iter()
        .map(|version| {
            let task = version.json()?;
            Ok(StatusEntry {
                at: version
                    .last_updated
                    .to_rfc3339_opts(SecondsFormat::Secs, true),
                status: task["businessStatus"]["text"]
                    .as_str()
                    .or_else(|| task["status"].as_str())
                    .unwrap_or("unknown")
                    .to_string(),
                reason: task["statusReason"]["text"].as_str().map(str::to_string),
            })
        })
        .collect::<Result<Vec<_>, crate::store::StoreError>>()?;
    entries.reverse();
    Ok(entries)
}

/// What a form sent back with errors keeps.
#[derive(Default, Clone, Copy)]
struct Typed<'a> {
    reason: &'a str,
    reason_code: &'a str,
    note: &'a str,
    done: Option<&'a str>,
}

async fn render(
    state: &AppState,
    member: &Member,
    referral: &ReferralState,
    status: StatusCode,
    errors: Vec<FieldError>,
    typed: Typed<'_>,
) -> Result<HttpResponse, PageError> {
    let record = referral.record_json()?;
    let view = ReferralView {
        referral_id: referral.referral_id.as_str(),
        record: &record,
        status: referral.vcs_status,
        history: history(state, referral).await?,
        errors,
        reason: typed.reason,
        reason_code: typed.reason_code,
        note: typed.note,
        done: typed.done,
        onward: super::onward::offered(state, member, referral.vcs_status),
    };
    Ok(html(
        status,
        referral_page(&view, &member.signed_in()).into_string(),
    ))
}

pub async fn read(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let member = member(&state, &request).await?;
    let referral = load(&state, &member, &path).await?;
    let target = ("ServiceRequest", Some(referral.referral_id.as_str()));
    audit(&state, &request, member.actor(), "read", target, "success").await?;
    let done = crate::api::query_pairs(&request)
        .into_iter()
        .find(|(k, _)| k == "done")
        .map(|(_, v)| v);
    let onward = super::onward::done_banner(&state, &request, &path).await?;
    let done = match done.as_deref() {
        Some("status") => Some("Saved. The GP practice can see it now."),
        Some("outcome") => Some("Questionnaire saved. The GP practice can see the scores now."),
        Some("onward") => onward.as_deref(),
        _ => None,
    };
    let typed = Typed {
        done,
        ..Typed::default()
    };
    render(&state, &member, &referral, StatusCode::OK, vec![], typed).await
}

/// The checks every action shares: the session's form token, the organisation's write limit and
/// the storage budget, then the referral.
async fn prepare(
    state: &AppState,
    request: &HttpRequest,
    body: &[u8],
    id: &str,
) -> Result<(Member, Vec<(String, String)>, ReferralState), PageError> {
    let member = member(state, request).await?;
    let fields = form_fields(body);
    check_csrf(&member, &fields)?;
    state
        .limits
        .charge_vcs_write(&member.vcs)
        .map_err(|t| PageError::Throttled(t.retry_after_secs))?;
    state.budget.check(state.store.as_ref()).await?;
    let referral = load(state, &member, id).await?;
    Ok((member, fields, referral))
}

pub async fn post_status(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let (member, fields, referral) = prepare(&state, &request, &body, &path).await?;
    let typed = Typed {
        reason: field(&fields, "reason").unwrap_or(""),
        reason_code: field(&fields, "reason_code").unwrap_or(""),
        note: field(&fields, "note").unwrap_or(""),
        done: None,
    };
    let refuse = |referral: ReferralState, status: StatusCode, errors: Vec<FieldError>| {
        let (state, member) = (&state, &member);
        async move { render(state, member, &referral, status, errors, typed).await }
    };
    let chosen = field(&fields, "status").and_then(VcsStatus::parse);
    let Some(action) = crate::inbox::ACTIONS
        .into_iter()
        .find(|a| Some(a.status) == chosen)
    else {
        let errors = vec![FieldError::new("reason", "Choose one of the actions")];
        return refuse(referral, StatusCode::UNPROCESSABLE_ENTITY, errors).await;
    };
    if !Action::allowed(referral.vcs_status).contains(&action) {
        let errors = vec![impossible(referral.vcs_status, action)];
        return refuse(referral, StatusCode::CONFLICT, errors).await;
    }
    let text = |s: &str| (!s.is_empty()).then(|| s.to_string());
    // The decline reasons are radios, which cannot be cleared without a script: one chosen
    // and then another action pressed is not an error, the choice is simply not used.
    let reason_code = if action.status == VcsStatus::Declined {
        if DeclineReason::parse(typed.reason_code).is_none() {
            let errors = vec![FieldError::new(
                "reason_code",
                "Choose why you are declining the referral",
            )];
            return refuse(referral, StatusCode::UNPROCESSABLE_ENTITY, errors).await;
        }
        text(typed.reason_code)
    } else {
        None
    };
    let body = json!({
        "status": action.status.as_str(),
        "reason": text(typed.reason),
        "reason_code": reason_code,
        "note": text(typed.note),
        "occurred_at": Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
    });
    let update = match parse_status_update(&without_nulls(body)) {
        Ok(update) => update,
        Err(e) => {
            let message = match e.field.as_str() {
                "reason" if typed.reason.is_empty() => {
                    format!("Enter a reason to {}", action.label.to_lowercase())
                }
                _ => e.message,
            };
            let errors = vec![FieldError::new(e.field, message)];
            return refuse(referral, StatusCode::UNPROCESSABLE_ENTITY, errors).await;
        }
    };
    let applied = lifecycle(&state)
        .report_status(&member.vcs, &path, &update, None, correlation_id(&request))
        .await;
    match applied {
        Ok(_) => {}
        Err(LifecycleError::Transition { .. }) => {
            // Changed meanwhile (by the GP, or another member): show it as it is now.
            let referral = load(&state, &member, &path).await?;
            let errors = vec![impossible(referral.vcs_status, action)];
            return refuse(referral, StatusCode::CONFLICT, errors).await;
        }
        Err(e) => return Err(e.into()),
    }
    let action_name = format!("status-update:{}", action.status.as_str());
    saved(&state, &request, &member, &path, &action_name, "status").await
}

/// After a change was applied: wake the delivery worker, audit the person's action, and show
/// the referral again with a confirmation.
async fn saved(
    state: &AppState,
    request: &HttpRequest,
    member: &Member,
    referral_id: &str,
    action: &str,
    done: &str,
) -> Result<HttpResponse, PageError> {
    state.wake.notify_one();
    let target = ("ServiceRequest", Some(referral_id));
    audit(state, request, member.actor(), action, target, "success").await?;
    Ok(see_other(&format!(
        "/inbox/referrals/{referral_id}?done={done}"
    )))
}

fn impossible(current: VcsStatus, action: Action) -> FieldError {
    FieldError::new(
        "reason",
        format!(
            "This referral is {}: {} is not possible now",
            crate::inbox::status_label(current).to_lowercase(),
            action.label
        ),
    )
}

/// A JSON object without its `null` members (absent, as an API caller would leave them).
fn without_nulls(mut body: Value) -> Value {
    if let Value::Object(object) = &mut body {
        object.retain(|_, v| !v.is_null());
    }
    body
}

pub async fn post_outcome(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let (member, fields, referral) = prepare(&state, &request, &body, &path).await?;
    let refuse = |errors: Vec<FieldError>| {
        let (state, member, referral) = (&state, &member, &referral);
        let status = StatusCode::UNPROCESSABLE_ENTITY;
        async move { render(state, member, referral, status, errors, Typed::default()).await }
    };
    let instrument = field(&fields, "instrument").and_then(Instrument::parse);
    let Some(instrument) = instrument else {
        return refuse(vec![FieldError::new("reason", "Choose a questionnaire")]).await;
    };
    let name = instrument.as_str();
    let mut errors = vec![];
    let mut answers = vec![];
    for i in 1..=instrument.item_count() {
        match field(&fields, &format!("answer{i}")).map(str::parse::<u8>) {
            Some(Ok(value)) => answers.push(value),
            _ => errors.push(FieldError::new(
                format!("{name}-answer-{i}"),
                format!("Choose an answer to question {i} of {}", instrument.label()),
            )),
        }
    }
    if !errors.is_empty() {
        return refuse(errors).await;
    }
    let body = json!({
        "instrument": name,
        "timepoint": field(&fields, "timepoint").unwrap_or("baseline"),
        "answers": answers,
        "occurred_at": Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
    });
    let report = match parse_outcome_report(&body) {
        Ok(report) => report,
        Err(e) => {
            return refuse(vec![FieldError::new(format!("{name}-answer-1"), e.message)]).await;
        }
    };
    lifecycle(&state)
        .report_outcome(&member.vcs, &path, &report, None, correlation_id(&request))
        .await?;
    let action_name = format!("outcome:{name}");
    saved(&state, &request, &member, &path, &action_name, "outcome").await
}
