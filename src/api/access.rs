//! The audit of reads: every read or search of patient data, on the FHIR API and the VCS API,
//! leaves an audit record (who, what, which patient, outcome, correlation id) before anything is
//! disclosed. Creates, changes and disclosures are audited in their own transactions by the store.

use actix_web::HttpRequest;
use chrono::Utc;

use super::{correlation_id, AppState};
use crate::domain::Actor;
use crate::store::{Access, StoreError};

/// A read or search to audit.
pub struct Accessed<'a> {
    pub actor: Actor,
    /// `read`, `vread`, `search`, `history`.
    pub action: &'a str,
    pub resource_type: &'a str,
    pub resource_id: Option<&'a str>,
    /// When the request names the patient (a search by patient); reads find it themselves.
    pub patient_id: Option<&'a str>,
    pub found: bool,
}

/// Records a read or search. Failing to audit fails the request: nothing is disclosed unaudited.
pub async fn record(
    state: &AppState,
    request: &HttpRequest,
    accessed: Accessed<'_>,
) -> Result<(), StoreError> {
    let access = Access {
        at: Utc::now(),
        actor: accessed.actor,
        action: accessed.action.to_string(),
        resource_type: accessed.resource_type.to_string(),
        resource_id: accessed.resource_id.map(str::to_string),
        patient_id: accessed.patient_id.map(str::to_string),
        outcome: if accessed.found {
            "success"
        } else {
            "not-found"
        }
        .to_string(),
        correlation_id: correlation_id(request),
    };
    state.store.record_access(access).await
}
