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

/// Records one access per resource a search (or list) returned, so each patient it disclosed is
/// named in the trail ("who saw this person's record?" must not depend on the query naming
/// them): the patient is that of the stored resource.
pub async fn record_each<'r>(
    state: &AppState,
    request: &HttpRequest,
    actor: &Actor,
    action: &str,
    returned: impl IntoIterator<Item = (&'r str, &'r str)>,
) -> Result<(), StoreError> {
    let at = Utc::now();
    let correlation_id = correlation_id(request);
    let accesses: Vec<Access> = returned
        .into_iter()
        .map(|(resource_type, id)| Access {
            at,
            actor: actor.clone(),
            action: action.to_string(),
            resource_type: resource_type.to_string(),
            resource_id: Some(id.to_string()),
            patient_id: None,
            outcome: "success".to_string(),
            correlation_id: correlation_id.clone(),
        })
        .collect();
    if accesses.is_empty() {
        return Ok(());
    }
    state.store.record_accesses(accesses).await
}

/// Records a request whose credentials named nobody: the caller's address and what it asked
/// for, never the token it sent. Written off the request's path (the answer is a 401 whatever
/// happens), so a failure to audit it is logged, not answered.
pub fn record_failed_login(state: &AppState, request: &HttpRequest) {
    let access = Access {
        at: Utc::now(),
        actor: Actor::Anonymous(request.peer_addr().map(|a| a.ip())),
        action: "login".to_string(),
        resource_type: request
            .path()
            .split('/')
            .find(|part| !part.is_empty())
            .unwrap_or("")
            .to_string(),
        resource_id: None,
        patient_id: None,
        outcome: "failure".to_string(),
        correlation_id: correlation_id(request),
    };
    let store = state.store.clone();
    actix_web::rt::spawn(async move {
        if let Err(e) = store.record_access(access).await {
            tracing::warn!(error = %e, "recording a failed authentication failed");
        }
    });
}
