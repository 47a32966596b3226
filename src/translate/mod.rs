//! Translation between FHIR and the plain records VCS organisations use.
//!
//! A VCS organisation speaks plain JSON (`POST /vcs/v1/referrals/{id}/status` and `…/outcomes`,
//! and the webhooks it receives); the GP practice reads FHIR. One module per subject:
//!
//! - `vcs_request`: the two request bodies, typed (serde) once the API's JSON Schema check passed;
//! - `vcs_status`: the status vocabulary and which status may follow which;
//! - `decline_reason`: the coded reasons for declining a referral;
//! - `instruments`: the wellbeing questionnaires, their answers and scores;
//! - `task` and `observation`: the SP-ReferralTask and SP-OutcomeObservation we build;
//! - `referral_record`: the record a VCS organisation receives;
//! - `webhook`: the envelope that carries it, and the ids of outbox messages.
//!
//! Everything here is pure: no clock, no store, no I/O. The caller validates every resource built
//! here against the profiles before storing it, and the tests check that what we build passes
//! that validation.

pub mod decline_reason;
pub mod instruments;
pub mod observation;
pub mod referral_record;
pub mod task;
pub mod vcs_request;
pub mod vcs_status;
pub mod webhook;

#[cfg(test)]
mod test_support;

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::config::VcsConfig;

/// Our CodeSystem of wellbeing measures: Observation codes and their components.
const WELLBEING_MEASURE: &str = "https://fhir.sp-gateway.uk/CodeSystem/wellbeing-measure";

/// A literal reference to a resource the gateway stores.
fn reference(resource_type: &str, id: &str) -> Value {
    json!({ "reference": format!("{resource_type}/{id}") })
}

/// The VCS organisation as a logical reference: the gateway stores no Organization resource for
/// it, and its ODS code or charity number is what the GP system can recognise.
pub(crate) fn organisation_reference(vcs: &VcsConfig) -> Value {
    let mut reference = json!({"type": "Organization", "display": vcs.name});
    if let Some(identifier) = vcs.identifiers.first() {
        reference["identifier"] = json!({"system": identifier.system, "value": identifier.value});
    }
    reference
}

fn utc_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Keeps the sender's offset: "14:30+01:00" is what the link worker saw on the clock.
fn fixed_text(t: DateTime<FixedOffset>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}
