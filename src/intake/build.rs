//! What one create stores: the resources with their first versions, the Task waiting for the
//! organisation's answer, the referral record and its `referral.created` webhook.

use chrono::SecondsFormat;

use super::ids::Assigned;
use super::routing::Routed;
use super::{json_text, with_version};
use super::{Prepared, Rejected, Request};
use crate::conformance::NeedVocabulary;
use crate::domain::FhirId;
use crate::fhir::outcome::Issue;
use crate::store::{
    NewOutboxMessage, NewReferral, NewResource, Payload, ReferralStatus, TargetKind,
};
use crate::translate::referral_record::referral_record;
use crate::translate::task::new_task;
use crate::translate::webhook::{new_message_id, Envelope, VcsEvent};

/// The referral as one transaction stores it, from the ids assigned and the typed parts.
pub(super) fn build(
    routed: Routed<'_>,
    needs: &NeedVocabulary,
    request: Request<'_>,
    assigned: Assigned,
    message_id: Option<String>,
    warnings: Vec<Issue>,
) -> Result<Prepared, Rejected> {
    let gp_reference = assigned.gp_identifiers.first().cloned().ok_or_else(|| {
        Rejected(vec![Issue::error(
            "required",
            "ServiceRequest.identifier (the GP system's own referral id, with system and value) is required.",
        )
        .at("ServiceRequest.identifier")
        .with_message_id("identifier-required")])
    })?;
    let vcs = routed.vcs;
    let mut record = referral_record(
        &assigned.parts,
        assigned.referral_id.as_str(),
        &gp_reference,
        request.now,
        vcs,
        needs,
    );
    if let Some((id, name)) = routed.service {
        record.service.id = Some(id.to_string());
        record.service.name = Some(name.to_string());
    }
    let record_text = json_text(&record);
    let event = VcsEvent::ReferralCreated;
    let envelope = Envelope::new(event, request.now, 1, &record).to_json();
    // The shape step admits only `active` (or no status, which means active) at create.
    let status: ReferralStatus = assigned
        .parts
        .service_request
        .status
        .value
        .as_deref()
        .unwrap_or("active")
        .parse()
        .map_err(|e: String| Rejected(vec![Issue::error("code-invalid", e)]))?;
    let patient_id = assigned.patient_id.as_str().to_string();
    let task_id = FhirId::generate();
    let task = new_task(
        task_id.as_str(),
        assigned.referral_id.as_str(),
        &patient_id,
        vcs,
        request.now,
    );
    let stamp = request.now.to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut resources: Vec<NewResource> = assigned
        .resources
        .into_iter()
        .map(|(resource_type, id, content)| NewResource {
            resource_type,
            id,
            version_id: 1,
            content,
            patient_id: Some(patient_id.clone()),
            code: None,
        })
        .collect();
    resources.push(NewResource {
        resource_type: "Task".into(),
        id: task_id.clone(),
        version_id: 1,
        content: json_text(&with_version(task, &task_id, &stamp)),
        patient_id: Some(patient_id.clone()),
        code: None,
    });
    let referral = NewReferral {
        referral_id: assigned.referral_id.clone(),
        client_id: request.client.clone(),
        vcs_id: vcs.id.clone(),
        identifiers: assigned.gp_identifiers,
        message_id,
        patient_id: assigned.patient_id,
        status,
        received_content_type: request.received_content_type.to_string(),
        received_body: request.received_body.to_vec(),
        resources,
        task_id,
        record: record_text,
        // An organisation without a webhook reads the stored record in the inbox: no message
        // is queued that could never be sent.
        outbox: vcs
            .webhook()
            .map(|_| NewOutboxMessage {
                id: new_message_id(),
                target_kind: TargetKind::Vcs,
                target: vcs.id.to_string(),
                event_type: event.as_str().into(),
                sequence: 1,
                payload: Payload::Text(envelope),
            })
            .into_iter()
            .collect(),
        correlation_id: request.correlation_id,
        created_at: request.now,
        onward: None,
    };
    Ok(Prepared {
        referral,
        service_request: assigned.service_request,
        entry_locations: assigned.entry_locations,
        warnings,
        if_none_exist: None,
    })
}
