//! `GET /fhir/Measure[/{id}]`: the indicators of the commissioners' reports (definitions, public
//! like our other conformance resources), and `GET /fhir/MeasureReport?measure=&period=`: their
//! figures for a commissioner's scope, as `summary` MeasureReports (every Measure's when no
//! measure is named).

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{Days, NaiveDate};
use serde_json::{json, Value};

use super::common::{handle, query_pairs, resource};
use crate::api::errors::{ApiError, Reply};
use crate::api::extract::Commissioner;
use crate::api::AppState;
use crate::reports::measure::{all_measures, find, indicators, measure, measure_reports};
use crate::reports::{Period, ReportError, Scope};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/Measure").route(web::get().to(search_measures)))
        .service(resource("/Measure/{id}").route(web::get().to(read_measure)))
        .service(resource("/MeasureReport").route(web::get().to(search_reports)));
}

impl From<ReportError> for ApiError {
    fn from(error: ReportError) -> Self {
        match error {
            ReportError::BadParameter { .. } => ApiError::BadRequest(error.to_string()),
            ReportError::Store(e) => ApiError::Store(e),
        }
    }
}

fn searchset(
    state: &AppState,
    request: &HttpRequest,
    kind: &str,
    found: Vec<(String, Value)>,
) -> Value {
    let base = state.config.base_url();
    let entries: Vec<Value> = found
        .into_iter()
        .map(|(id, resource)| {
            json!({
                "fullUrl": format!("{base}/fhir/{kind}/{id}"),
                "resource": resource,
                "search": {"mode": "match"}
            })
        })
        .collect();
    json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": entries.len(),
        "link": [{"relation": "self", "url": format!("{base}/fhir/{kind}?{}", request.query_string())}],
        "entry": entries
    })
}

fn id_of(resource: &Value) -> String {
    resource["id"].as_str().unwrap_or_default().to_string()
}

async fn search_measures(state: web::Data<AppState>, request: HttpRequest) -> HttpResponse {
    handle(&request, |_| async {
        let mut url = None;
        for (name, value) in query_pairs(&request) {
            match name.as_str() {
                "url" => url = Some(value),
                "_format" => {}
                other => {
                    return Err(ApiError::BadRequest(format!(
                        "Measure is searched by url only; not {other:?}."
                    )))
                }
            }
        }
        let found: Vec<(String, Value)> = match url {
            Some(url) => find(&url)
                .filter(|i| url.split('|').next() == Some(i.url().as_str()))
                .map(|i| measure(&i))
                .into_iter()
                .map(|m| (id_of(&m), m))
                .collect(),
            None => all_measures().into_iter().map(|m| (id_of(&m), m)).collect(),
        };
        Ok(Reply::ok(searchset(&state, &request, "Measure", found)))
    })
    .await
}

async fn read_measure(request: HttpRequest, id: web::Path<String>) -> HttpResponse {
    handle(&request, |_| async {
        let indicator = find(&id).filter(|i| i.id == *id).ok_or_else(|| {
            ApiError::NotFound(format!(
                "There is no Measure with id {:?}; GET /fhir/Measure lists them.",
                id.as_str()
            ))
        })?;
        Ok(Reply::ok(measure(&indicator)))
    })
    .await
}

/// `period=geYYYY-MM-DD&period=leYYYY-MM-DD`: the whole days of the report. Without `le`, up to
/// today; without `ge`, the 365 days up to the last.
fn period(values: &[String]) -> Result<Period, ApiError> {
    let (mut from, mut to) = (None, None);
    let usage = "period is given as period=geYYYY-MM-DD&period=leYYYY-MM-DD";
    for value in values {
        let (slot, date) = if let Some(date) = value.strip_prefix("ge") {
            (&mut from, date)
        } else if let Some(date) = value.strip_prefix("le") {
            (&mut to, date)
        } else {
            return Err(ApiError::BadRequest(format!("{usage}; not {value:?}.")));
        };
        let parsed = NaiveDate::parse_from_str(date, "%Y-%m-%d")
            .ok()
            .filter(|_| date.len() == 10)
            .ok_or_else(|| ApiError::BadRequest(format!("{usage}; {date:?} is not a date.")))?;
        *slot = Some(parsed);
    }
    let to = to.unwrap_or_else(|| chrono::Utc::now().date_naive());
    let from = match from {
        Some(from) => from,
        None => to
            .checked_sub_days(Days::new(364))
            .ok_or_else(|| ApiError::BadRequest(format!("{usage}.")))?,
    };
    Ok(Period::new(from, to)?)
}

async fn search_reports(
    Commissioner(commissioner): Commissioner,
    state: web::Data<AppState>,
    request: HttpRequest,
) -> HttpResponse {
    handle(&request, |_| async {
        let mut measures = Vec::new();
        let mut periods = Vec::new();
        for (name, value) in query_pairs(&request) {
            match name.as_str() {
                "measure" => {
                    for one in value.split(',') {
                        measures.push(find(one).ok_or_else(|| {
                            ApiError::BadRequest(format!(
                                "There is no Measure {one:?}; GET /fhir/Measure lists them."
                            ))
                        })?);
                    }
                }
                "period" => periods.push(value),
                "_format" => {}
                other => {
                    return Err(ApiError::BadRequest(format!(
                        "MeasureReport is searched by measure and period only; not {other:?}."
                    )))
                }
            }
        }
        if measures.is_empty() {
            // No measure named: the reports of every Measure.
            measures = indicators();
        }
        let period = period(&periods)?;
        let scope = Scope::of(&commissioner);
        let reports = measure_reports(
            state.store.as_ref(),
            &state.config,
            &scope,
            &measures,
            period,
        )
        .await?;
        let found = reports.into_iter().map(|r| (id_of(&r), r)).collect();
        Ok(Reply::ok(searchset(
            &state,
            &request,
            "MeasureReport",
            found,
        )))
    })
    .await
}
