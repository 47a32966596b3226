//! The commissioners' page (a commissioner's account signs in at `/inbox/login`) and its tables
//! as CSV (the API's CSV): `/reports`, `/reports/referrals.csv`, `/reports/wellbeing.csv`.

use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use chrono::{Datelike, Months, NaiveDate, Utc};

use super::errors::page::{html, PageError};
use super::extract::{bearer, Commissioner};
use super::inbox::session;
use super::{query_pairs, AppState};
use crate::config::CommissionerConfig;
use crate::inbox::SignedIn;
use crate::reports::{
    measures, referrals_report, wellbeing_report, Dimension, Figure, ReportError, ReportRequest,
    Scope, Table, TOTAL_GROUP,
};
use crate::reports_page::chart::Interval;
use crate::reports_page::{reports_page, Asked, ReportsView, Tables, PAGE_PATH};
use crate::store::{Membership, Session};
use crate::translate::instruments::Instrument;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(PAGE_PATH, web::get().to(page))
        .route("/reports/referrals.csv", web::get().to(referrals_csv))
        .route("/reports/wellbeing.csv", web::get().to(wellbeing_csv));
}

/// The commissioner reading the page, and the session when it is a signed-in account: a
/// commissioner's account, or a request with the commissioner's bearer token (the same token as
/// `/reports/v1`, for a script or a browser set to send it). Neither: sign in.
async fn commissioner(
    state: &AppState,
    request: &HttpRequest,
) -> Result<(Option<Session>, CommissionerConfig), PageError> {
    if bearer(request).is_some() {
        let Commissioner(config) = Commissioner::extract(request).await.map_err(|_| {
            PageError::Forbidden("That token is not a commissioner's token.".into())
        })?;
        return Ok((None, config));
    }
    let session = session(state, request).await?.ok_or(PageError::SignIn)?;
    let Membership::Commissioner(id) = &session.account.membership else {
        return Err(PageError::Forbidden(
            "The reports page is for commissioners' accounts.".into(),
        ));
    };
    let config = state
        .config
        .commissioners
        .iter()
        .find(|c| c.id == *id)
        .cloned()
        .ok_or_else(|| PageError::Forbidden("Your commissioner is no longer configured.".into()))?;
    Ok((Some(session), config))
}

/// The asked values, with defaults for those not given: the six whole months before this one
/// and this month so far, by month, WEMWBS.
fn asked(pairs: &[(String, String)]) -> Asked {
    let today = Utc::now().date_naive();
    let first = NaiveDate::from_ymd_opt(today.year(), today.month(), 1)
        .and_then(|d| d.checked_sub_months(Months::new(6)))
        .unwrap_or(today);
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    Asked {
        from: get("from").unwrap_or_else(|| first.to_string()),
        to: get("to").unwrap_or_else(|| today.to_string()),
        by: get("by")
            .and_then(|b| Dimension::parse(&b))
            .unwrap_or(Dimension::Month),
        instrument: get("instrument")
            .and_then(|i| Instrument::parse(&i))
            .unwrap_or(Instrument::Wemwbs),
    }
}

/// The request the asked values make: the query as given (a wrong value is refused by name),
/// with the defaults of those left out.
fn request_of(
    pairs: &[(String, String)],
    asked: &Asked,
) -> Result<(ReportRequest, Instrument), ReportError> {
    let mut full: Vec<(String, String)> = pairs.to_vec();
    for (name, value) in [
        ("from", asked.from.clone()),
        ("to", asked.to.clone()),
        ("by", asked.by.as_str().to_string()),
        ("instrument", asked.instrument.as_str().to_string()),
    ] {
        if !full.iter().any(|(k, _)| k == name) {
            full.push((name.to_string(), value));
        }
    }
    let (request, instrument) = ReportRequest::from_query(&full, true)?;
    Ok((request, instrument.unwrap_or(asked.instrument)))
}

/// Each measure's mean change and interval, from each questionnaire's `all` row.
async fn changes(
    state: &AppState,
    scope: &Scope,
    request: &ReportRequest,
) -> Result<Vec<Interval>, ReportError> {
    let mut changes = vec![];
    for instrument in Instrument::ALL {
        let table = wellbeing_report(
            state.store.as_ref(),
            &state.config,
            scope,
            request,
            instrument,
        )
        .await?;
        for (measure, label) in measures(instrument) {
            let number =
                |suffix: &str| match table.value(TOTAL_GROUP, &format!("{measure}.{suffix}")) {
                    Some(Figure::Number(x)) => Some(x),
                    Some(Figure::Count(n)) => Some(n as f64),
                    None => None,
                };
            if let (Some(mean), Some(low), Some(high)) = (
                number("mean_change"),
                number("change_ci_low"),
                number("change_ci_high"),
            ) {
                let label = match instrument {
                    Instrument::Ons4 => format!("ONS4 {}", label.to_lowercase()),
                    _ => instrument.label().to_string(),
                };
                changes.push(Interval {
                    label,
                    mean,
                    low,
                    high,
                });
            }
        }
    }
    Ok(changes)
}

async fn tables(
    state: &AppState,
    scope: &Scope,
    request: &ReportRequest,
    instrument: Instrument,
) -> Result<Tables, ReportError> {
    let store = state.store.as_ref();
    let referrals = referrals_report(store, &state.config, scope, request).await?;
    let by_month = if request.by == Dimension::Month {
        referrals.clone()
    } else {
        let monthly = ReportRequest {
            period: request.period,
            by: Dimension::Month,
        };
        referrals_report(store, &state.config, scope, &monthly).await?
    };
    let wellbeing = wellbeing_report(store, &state.config, scope, request, instrument).await?;
    Ok(Tables {
        referrals,
        by_month,
        wellbeing,
        changes: changes(state, scope, request).await?,
    })
}

async fn page(state: web::Data<AppState>, request: HttpRequest) -> Result<HttpResponse, PageError> {
    let (session, commissioner) = commissioner(&state, &request).await?;
    let pairs = query_pairs(&request);
    let asked = asked(&pairs);
    let scope = Scope::of(&commissioner);
    let (status, tables, error) = match request_of(&pairs, &asked) {
        Ok((report, instrument)) => match tables(&state, &scope, &report, instrument).await {
            Ok(tables) => (StatusCode::OK, Some(tables), None),
            Err(ReportError::Store(e)) => return Err(e.into()),
            Err(e) => (StatusCode::BAD_REQUEST, None, Some(e.to_string())),
        },
        Err(ReportError::Store(e)) => return Err(e.into()),
        Err(e) => (StatusCode::BAD_REQUEST, None, Some(e.to_string())),
    };
    let view = ReportsView {
        commissioner: &commissioner.name,
        asked: &asked,
        tables,
        error,
    };
    let signed_in = session.as_ref().map(|session| SignedIn {
        email: session.account.email.as_str(),
        organisation: &commissioner.name,
        csrf: &session.csrf_token,
    });
    Ok(html(
        status,
        reports_page(&view, signed_in.as_ref()).into_string(),
    ))
}

fn csv(table: &Table) -> Result<HttpResponse, PageError> {
    super::reports::csv_download(table)
        .map_err(|e| PageError::Store(crate::store::StoreError::Database(Box::new(e))))
}

fn bad_request(e: ReportError) -> PageError {
    match e {
        ReportError::Store(e) => e.into(),
        other => PageError::BadRequest(other.to_string()),
    }
}

async fn referrals_csv(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let (_, commissioner) = commissioner(&state, &request).await?;
    let (report, _) =
        ReportRequest::from_query(&query_pairs(&request), false).map_err(bad_request)?;
    let scope = Scope::of(&commissioner);
    let table = referrals_report(state.store.as_ref(), &state.config, &scope, &report)
        .await
        .map_err(bad_request)?;
    csv(&table)
}

async fn wellbeing_csv(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let (_, commissioner) = commissioner(&state, &request).await?;
    let (report, instrument) =
        ReportRequest::from_query(&query_pairs(&request), true).map_err(bad_request)?;
    let instrument =
        instrument.ok_or_else(|| PageError::BadRequest("instrument: required".into()))?;
    let scope = Scope::of(&commissioner);
    let table = wellbeing_report(
        state.store.as_ref(),
        &state.config,
        &scope,
        &report,
        instrument,
    )
    .await
    .map_err(bad_request)?;
    csv(&table)
}
