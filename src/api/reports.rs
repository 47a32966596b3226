//! `/reports/v1`: the commissioners' aggregate reports, as JSON or (with `Accept: text/csv`)
//! CSV. Only a commissioner's token reads them (`extract::Commissioner`), over its scope.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::errors::Problem;
use super::extract::Commissioner;
use super::{query_pairs, AppState};
use crate::reports::{
    referrals_report, wellbeing_report, ReportError, ReportRequest, Scope, Table,
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/reports/v1")
            .route("/referrals", web::get().to(referrals))
            .route("/wellbeing", web::get().to(wellbeing)),
    );
}

impl From<ReportError> for Problem {
    fn from(error: ReportError) -> Self {
        match error {
            ReportError::BadParameter { .. } => Problem::BadRequest(error.to_string()),
            ReportError::Store(e) => Problem::Store(e),
        }
    }
}

/// How the caller wants the table: CSV when `Accept` names `text/csv`, JSON when it names JSON,
/// anything, or nothing; `406` otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rendering {
    Json,
    Csv,
}

fn rendering(request: &HttpRequest) -> Result<Rendering, Problem> {
    let Some(accept) = request
        .headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(Rendering::Json);
    };
    let types: Vec<String> = accept
        .split(',')
        .map(|t| {
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .collect();
    if types.iter().any(|t| t == "text/csv") {
        Ok(Rendering::Csv)
    } else if types.iter().any(|t| {
        matches!(
            t.as_str(),
            "application/json" | "*/*" | "application/*" | ""
        )
    }) {
        Ok(Rendering::Json)
    } else {
        Err(Problem::Refused(
            StatusCode::NOT_ACCEPTABLE,
            "Reports are served as application/json or text/csv.".into(),
        ))
    }
}

fn respond(table: &Table, rendering: Rendering) -> Result<HttpResponse, Problem> {
    match rendering {
        Rendering::Json => Ok(HttpResponse::Ok()
            .insert_header(("cache-control", "no-store"))
            .json(table.to_json())),
        Rendering::Csv => csv_download(table)
            .map_err(|e| Problem::Store(crate::store::StoreError::Database(Box::new(e)))),
    }
}

/// A table as a CSV download named after the report, never cached (the API's CSV, and the
/// reports page's links).
pub(super) fn csv_download(table: &Table) -> Result<HttpResponse, csv::Error> {
    let csv = table.to_csv()?;
    let name = format!(
        "attachment; filename=\"{}-{}-{}-by-{}.csv\"",
        table.report,
        table.period.from(),
        table.period.to(),
        table.by.as_str()
    );
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .content_type("text/csv; charset=utf-8")
        .insert_header(("content-disposition", name))
        .body(csv))
}

fn answer(result: Result<HttpResponse, Problem>) -> HttpResponse {
    result.unwrap_or_else(Problem::into_response)
}

async fn referrals(
    Commissioner(commissioner): Commissioner,
    state: web::Data<AppState>,
    request: HttpRequest,
) -> HttpResponse {
    answer(
        async {
            let rendering = rendering(&request)?;
            let (query, _) = ReportRequest::from_query(&query_pairs(&request), false)?;
            let scope = Scope::of(&commissioner);
            let table =
                referrals_report(state.store.as_ref(), &state.config, &scope, &query).await?;
            respond(&table, rendering)
        }
        .await,
    )
}

async fn wellbeing(
    Commissioner(commissioner): Commissioner,
    state: web::Data<AppState>,
    request: HttpRequest,
) -> HttpResponse {
    answer(
        async {
            let rendering = rendering(&request)?;
            let (query, instrument) = ReportRequest::from_query(&query_pairs(&request), true)?;
            let instrument = instrument.ok_or_else(|| {
                Problem::BadRequest("instrument: required: wemwbs, swemwbs or ons4".into())
            })?;
            let scope = Scope::of(&commissioner);
            let table = wellbeing_report(
                state.store.as_ref(),
                &state.config,
                &scope,
                &query,
                instrument,
            )
            .await?;
            respond(&table, rendering)
        }
        .await,
    )
}
