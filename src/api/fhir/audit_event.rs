//! The audit trail as FHIR: `GET /fhir/AuditEvent?patient=…&date=…` for the operator, so a
//! subject access request can be answered. Records are shaped after IHE Basic Audit Log Patterns
//! (who, which patient, what action, outcome, correlation id). The records are written by
//! `api::access` (reads) and by the store (changes).

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{json, Value};

use super::common::{handle, resource};
use super::search::{reference_id, Parameters};
use crate::api::access::{self, Accessed};
use crate::api::errors::{ApiError, Reply};
use crate::api::extract::Operator;
use crate::api::AppState;
use crate::domain::Actor;
use crate::store::{AuditQuery, AuditRecord};

/// The parameters of an AuditEvent search; any other is refused, lenient or not.
const SEARCH: Parameters = Parameters {
    resource_type: "AuditEvent",
    names: &["patient", "entity", "date", "_count", "_offset"],
    paged: true,
    lenient: false,
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/AuditEvent").route(web::get().to(search_audit_events)));
}

/// `date=ge2026-01-01`, `le…`, `lt…`, `gt…`, or a plain day; returns [from, to).
fn date_bound(value: &str, query: &mut AuditQuery) -> Result<(), ApiError> {
    let (prefix, rest) = match value.get(..2) {
        Some(p @ ("ge" | "gt" | "le" | "lt" | "eq")) => (p, &value[2..]),
        _ => ("eq", value),
    };
    let day = NaiveDate::parse_from_str(rest, "%Y-%m-%d").map_err(|_| {
        ApiError::BadRequest(format!(
            "date needs a day like ge2026-05-01; got {value:?}."
        ))
    })?;
    let start: DateTime<Utc> = day
        .and_hms_opt(0, 0, 0)
        .map(|d| d.and_utc())
        .unwrap_or_default();
    let next = start + chrono::Duration::days(1);
    match prefix {
        "ge" => query.from = Some(start),
        "gt" => query.from = Some(next),
        "lt" => query.to = Some(start),
        "le" => query.to = Some(next),
        _ => {
            query.from = Some(start);
            query.to = Some(next);
        }
    }
    Ok(())
}

async fn search_audit_events(
    _: Operator,
    state: web::Data<AppState>,
    request: HttpRequest,
) -> HttpResponse {
    handle(&request, |_| async {
        let mut query = AuditQuery::default();
        let search = SEARCH.parse(&request, |name, value| {
            match name {
                "patient" => query.patient_id = Some(reference_id(value, "Patient")),
                "entity" => {
                    let Some((kind, id)) = value.split_once('/') else {
                        return Err(ApiError::BadRequest(format!(
                            "entity is a reference Type/id, such as Subscription/123; got {value:?}."
                        )));
                    };
                    query.entity = Some((kind.to_string(), id.to_string()));
                }
                "date" => date_bound(value, &mut query)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        (query.count, query.offset) = (search.count, search.offset);
        let (total, records) = state.store.audit_events(&query).await?;
        // Recorded after the search, so it is in the next answer, not this one.
        let accessed = Accessed {
            actor: Actor::Operator,
            action: "search",
            resource_type: "AuditEvent",
            resource_id: None,
            patient_id: query.patient_id.as_deref(),
            found: total > 0,
        };
        access::record(&state, &request, accessed).await?;
        let base = state.config.base_url();
        let entries: Vec<Value> = records
            .iter()
            .map(|r| {
                json!({
                    "fullUrl": format!("{base}/fhir/AuditEvent/{}", r.id),
                    "resource": audit_event(r),
                    "search": {"mode": "match"}
                })
            })
            .collect();
        Ok(Reply::ok(json!({
            "resourceType": "Bundle",
            "type": "searchset",
            "total": total,
            "entry": entries
        })))
    })
    .await
}

/// The RESTful interaction and FHIR action code; `None` for a disclosure, which is no REST
/// interaction of ours but a DICOM "Export" event (the BALP pattern for data leaving).
fn interaction(action: &str) -> Option<(&'static str, &'static str)> {
    match action {
        "create" | "outcome" => Some(("create", "C")),
        "read" => Some(("read", "R")),
        "vread" => Some(("vread", "R")),
        "search" => Some(("search-type", "E")),
        "history" => Some(("history-instance", "R")),
        "delete" => Some(("delete", "D")),
        "disclose" | "login" => None,
        _ => Some(("update", "U")),
    }
}

/// One audit record as an R4 AuditEvent.
pub fn audit_event(record: &AuditRecord) -> Value {
    let (event_type, subtype, action) = match interaction(&record.action) {
        Some((code, action)) => (
            json!({"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest", "display": "RESTful Operation"}),
            json!([{"system": "http://hl7.org/fhir/restful-interaction", "code": code}]),
            action,
        ),
        // A refused authentication: DICOM "User Authentication", subtype "Login" (failed, by
        // the outcome).
        None if record.action == "login" => (
            json!({"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110114", "display": "User Authentication"}),
            json!([{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110122", "display": "Login"}]),
            "E",
        ),
        None => (
            json!({"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110106", "display": "Export"}),
            Value::Null,
            "R",
        ),
    };
    let mut entities = Vec::new();
    if let Some(patient) = &record.patient_id {
        entities.push(json!({
            "what": {"reference": format!("Patient/{patient}")},
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1", "display": "Person"},
            "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1", "display": "Patient"}
        }));
    }
    if let (Some(kind), Some(id)) = (&record.resource_type, &record.resource_id) {
        entities.push(json!({
            "what": {"reference": format!("{kind}/{id}")},
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2", "display": "System Object"}
        }));
    }
    if let Some(correlation) = &record.correlation_id {
        entities.push(json!({
            "what": {"identifier": {"system": "https://fhir.sp-gateway.uk/Id/correlation-id", "value": correlation}},
            "description": "correlation id of the request or message"
        }));
    }
    let mut event = json!({
        "resourceType": "AuditEvent",
        "id": record.id.to_string(),
        "type": event_type,
        "action": action,
        "recorded": record.recorded_at,
        "outcome": if record.outcome == "success" { "0" } else { "4" },
        "outcomeDesc": record.outcome,
        "agent": [{
            "who": {"identifier": {"system": "https://fhir.sp-gateway.uk/Id/actor", "value": record.actor}},
            "requestor": true
        }],
        "source": {
            "observer": {"display": "sp-gateway"},
            "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4", "display": "Application Server"}]
        },
        "entity": entities
    });
    if !subtype.is_null() {
        event["subtype"] = subtype;
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_prefixes() {
        let mut query = AuditQuery::default();
        date_bound("ge2026-05-01", &mut query).unwrap();
        date_bound("le2026-05-31", &mut query).unwrap();
        assert_eq!(
            query.from.unwrap().to_rfc3339(),
            "2026-05-01T00:00:00+00:00"
        );
        assert_eq!(query.to.unwrap().to_rfc3339(), "2026-06-01T00:00:00+00:00");
        assert!(date_bound("yesterday", &mut query).is_err());
    }
}
