//! Onward referral: a social prescribing link worker, having met the person, refers them on to a
//! service of the directory. The child is a referral of its own, routed and delivered like any
//! (webhook, email notice), that the GP who referred first can follow as FHIR: its
//! `ServiceRequest` is `basedOn` the link worker's, `requester` the link-worker organisation,
//! `performer` the chosen `HealthcareService`, with the same patient and consent; its Task is
//! `partOf` the link worker's Task.
//!
//! One function serves every way in (the VCS API, the inbox pages): the rules live here. The
//! child is created in the transaction that records the onward referral on the link worker's
//! referral (its revision, audit entry and Idempotency-Key), so either both are stored or
//! neither is, and a referral closed meanwhile is never referred on.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::config::{VcsConfig, VcsKind};
use crate::domain::{Actor, FhirId, ReferralId, VcsId};
use crate::fhir::outcome::Issue;
use crate::intake::notice::new_referral_notice;
use crate::intake::routing::{route_to_listed, ServiceDirectory};
use crate::lifecycle::{
    now_text, Applied, ChangeBuilder, IdempotencyKey, Lifecycle, LifecycleError,
};
use crate::store::{
    NewOutboxMessage, NewReferral, NewResource, Payload, ReferralState, ReferralStatus,
    StoredResource, SubscriptionRow, TargetKind,
};
use crate::subscriptions;
use crate::translate::organisation_reference;
use crate::translate::task::new_task;
use crate::translate::vcs_status::VcsStatus;
use crate::translate::webhook::{new_message_id, Envelope, VcsEvent};

/// What the link worker asks for.
#[derive(Debug, Clone)]
pub struct OnwardRequest {
    /// The directory's `HealthcareService` id.
    pub service_id: String,
    /// For the service: why, what was agreed with the person.
    pub note: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum OnwardError {
    /// The caller is an organisation, but not a link-worker service.
    #[error("organisation {0} is not a link-worker service; only link workers refer onward")]
    NotLinkWorker(VcsId),
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
}

/// The link worker's statuses from which a person may be referred on: taken on (accepted) and
/// not closed. Before acceptance the link worker has not met the person; a declined, completed
/// or cancelled referral is over.
pub fn may_refer_onward(status: VcsStatus) -> bool {
    use VcsStatus::*;
    matches!(
        status,
        Accepted | Contacted | UnableToContact | Attended | DidNotAttend
    )
}

/// Refers the person of `referral_id` (routed to `link_worker`) onward to the directory service
/// `request.service_id`; answers `201` with the child's `referral_id`.
///
/// Refused: the caller is not a link worker ([`OnwardError::NotLinkWorker`]); the referral is not
/// the link worker's (`NotFound`); the service is unknown, inactive, the link worker's own, or
/// its organisation is not connected (`Refused`, naming `service_id`, with the service's contact
/// details when it is not connected); the referral is not taken on or already closed
/// (`Transition`).
#[allow(clippy::too_many_arguments)]
pub async fn refer_onward(
    lifecycle: &Lifecycle<'_>,
    directory: &dyn ServiceDirectory,
    link_worker: &VcsId,
    referral_id: &str,
    request: &OnwardRequest,
    received_body: &[u8],
    idempotency: Option<IdempotencyKey>,
    correlation_id: Option<String>,
) -> Result<Applied, OnwardError> {
    let config = lifecycle.config;
    let worker = config
        .vcs
        .iter()
        .find(|v| v.id == *link_worker)
        .ok_or(LifecycleError::NotFound)?;
    if worker.kind != VcsKind::LinkWorker {
        return Err(OnwardError::NotLinkWorker(link_worker.clone()));
    }
    let parent = lifecycle.load_for_vcs(link_worker, referral_id).await?;
    let mut listed = None;
    let routed = route_to_listed(
        &request.service_id,
        "service_id",
        &config.vcs,
        directory,
        &mut listed,
    )
    .map_err(|issue| LifecycleError::Refused(vec![issue]))?;
    let (group, Some((service_id, service_name))) = (routed.vcs, routed.service) else {
        return Err(LifecycleError::NotFound.into());
    };
    if group.id == worker.id {
        return Err(LifecycleError::Refused(vec![Issue::error(
            "business-rule",
            "The service is this organisation's own: an onward referral goes to another organisation.",
        )
        .at("service_id")
        .with_message_id("onward-to-self")])
        .into());
    }
    let subscriptions = subscriptions::of_client(lifecycle.store, &parent.client_id, &["Task"])
        .await
        .map_err(LifecycleError::from)?;
    let target = Target {
        worker,
        group,
        service_id,
        service_name,
    };
    let applied = lifecycle
        .apply(
            referral_id,
            idempotency.as_ref(),
            || lifecycle.load_for_vcs(link_worker, referral_id),
            |state| {
                if !may_refer_onward(state.vcs_status) {
                    return Err(LifecycleError::Transition {
                        from: state.vcs_status.as_str().into(),
                        to: "referred onward".into(),
                    });
                }
                let now = Utc::now();
                let child = child_referral(
                    lifecycle,
                    state,
                    &target,
                    request,
                    received_body,
                    &subscriptions,
                    now,
                    correlation_id.clone(),
                )?;
                let child_id = child.referral_id.to_string();
                let mut builder = ChangeBuilder::new(state, now, correlation_id.clone());
                let actor = Actor::vcs(link_worker);
                builder.audit(actor, "onward", "ServiceRequest", state.referral_id.as_str());
                let body = json!({"referral_id": child_id, "based_on": state.referral_id.as_str(),
                                  "service_id": target.service_id, "vcs_id": target.group.id.as_str()});
                let (mut change, applied) =
                    builder.finish(lifecycle.validation, idempotency.clone(), 201, body)?;
                change.onward = Some(Box::new(child));
                Ok((change, applied))
            },
        )
        .await?;
    Ok(applied)
}

/// Where the person is referred on to.
struct Target<'c> {
    worker: &'c VcsConfig,
    group: &'c VcsConfig,
    service_id: &'c str,
    service_name: &'c str,
}

/// The child referral, as one create stores it: its ServiceRequest and Task (validated), its
/// record, its webhook, email notice and the GP's Subscription notifications of its Task.
#[allow(clippy::too_many_arguments)]
fn child_referral(
    lifecycle: &Lifecycle<'_>,
    parent: &ReferralState,
    target: &Target<'_>,
    request: &OnwardRequest,
    received_body: &[u8],
    subscriptions: &[SubscriptionRow],
    now: DateTime<Utc>,
    correlation_id: Option<String>,
) -> Result<NewReferral, LifecycleError> {
    let child_id: ReferralId = FhirId::generate();
    let task_id = FhirId::generate();
    let stamp = now_text(now);
    let parent_sr = parent.service_request.json()?;
    let sr = crate::fhir::stamp(
        child_service_request(&parent_sr, parent, target, request, &stamp),
        child_id.as_str(),
        1,
        &stamp,
    );
    let parent_task = parent.task.as_ref().ok_or(LifecycleError::NotFound)?;
    let mut task = new_task(
        task_id.as_str(),
        child_id.as_str(),
        parent.patient_id.as_str(),
        target.group,
        now,
    );
    task["partOf"] = json!([{"reference": format!("Task/{}", parent_task.id)}]);
    let task = crate::fhir::stamp(task, task_id.as_str(), 1, &stamp);
    let validation = lifecycle.validation;
    // The ServiceRequest's references point at resources stored with the first referral, which
    // a lone validation cannot resolve: base R4, as for every later ServiceRequest version.
    let issues: Vec<Issue> = validation
        .validate_base(&sr)
        .into_iter()
        .chain(validation.validate(&task))
        .filter(|issue| issue.severity.is_error())
        .collect();
    if !issues.is_empty() {
        return Err(LifecycleError::Invalid(issues));
    }
    let record = child_record(
        parent.record_json()?,
        child_id.as_str(),
        target,
        request,
        now,
    );
    let envelope = Envelope::new(VcsEvent::ReferralCreated, now, 1, &record).to_json();
    let mut outbox = vec![NewOutboxMessage {
        id: new_message_id(),
        target_kind: TargetKind::Vcs,
        target: target.group.id.to_string(),
        event_type: VcsEvent::ReferralCreated.as_str().into(),
        sequence: 1,
        payload: Payload::Text(envelope),
    }];
    outbox.extend(new_referral_notice(
        lifecycle.config,
        target.group,
        &child_id,
    ));
    let resource = |resource_type: &str, id: &FhirId, content: &Value| NewResource {
        resource_type: resource_type.into(),
        id: id.clone(),
        version_id: 1,
        content: content.to_string(),
        patient_id: Some(parent.patient_id.to_string()),
        code: None,
    };
    let child_state = ReferralState {
        referral_id: child_id.clone(),
        client_id: parent.client_id.clone(),
        vcs_id: target.group.id.clone(),
        patient_id: parent.patient_id.clone(),
        status: ReferralStatus::Active,
        vcs_status: VcsStatus::Received,
        revision: 1,
        record: record.to_string(),
        created_at: now,
        updated_at: now,
        service_request: stored(&sr, "ServiceRequest", &child_id, now),
        task: Some(stored(&task, "Task", &task_id, now)),
        sequences: vec![],
    };
    // The GP did not make this Task: its Subscriptions hear of it as of any change.
    let stored_task = Payload::Stored {
        resource_type: "Task".into(),
        id: task_id.to_string(),
        version_id: 1,
    };
    for subscription in subscriptions
        .iter()
        .filter(|s| subscriptions::matches_criteria(&s.criteria, &task, &child_state))
    {
        outbox.push(NewOutboxMessage {
            id: new_message_id(),
            target_kind: TargetKind::Subscription,
            target: subscription.id.clone(),
            event_type: "Task.changed".into(),
            sequence: 1,
            payload: subscriptions::notification_payload(subscription, &stored_task)?,
        });
    }
    Ok(NewReferral {
        referral_id: child_id.clone(),
        client_id: parent.client_id.clone(),
        vcs_id: target.group.id.clone(),
        identifiers: vec![],
        message_id: None,
        patient_id: parent.patient_id.clone(),
        status: ReferralStatus::Active,
        received_content_type: "application/json".into(),
        received_body: received_body.to_vec(),
        resources: vec![
            resource("ServiceRequest", &child_id, &sr),
            resource("Task", &task_id, &task),
        ],
        task_id,
        record: record.to_string(),
        outbox,
        correlation_id,
        created_at: now,
        onward: Some((parent.referral_id.clone(), target.worker.id.clone())),
    })
}

fn stored(content: &Value, resource_type: &str, id: &FhirId, now: DateTime<Utc>) -> StoredResource {
    StoredResource {
        resource_type: resource_type.into(),
        id: id.to_string(),
        version_id: 1,
        last_updated: now,
        content: content.to_string(),
    }
}

/// The child's ServiceRequest: what was asked for (category, code, needs, priority), the patient
/// and the consent of the first referral; `basedOn` it, asked by the link worker of the chosen
/// service, with the link worker's note. Of the first referral's contained resources it keeps
/// those it still refers to (a contained Patient or Consent), not the GP's own requester.
fn child_service_request(
    parent: &Value,
    state: &ReferralState,
    target: &Target<'_>,
    request: &OnwardRequest,
    authored_on: &str,
) -> Value {
    let mut sr = json!({
        "resourceType": "ServiceRequest",
        "basedOn": [{"reference": format!("ServiceRequest/{}", state.referral_id)}],
        "status": "active",
        "intent": "order",
        "subject": parent.get("subject").cloned().unwrap_or_else(
            || json!({"reference": format!("Patient/{}", state.patient_id)})),
        "authoredOn": authored_on,
        "requester": organisation_reference(target.worker),
        "performer": [{"reference": format!("HealthcareService/{}", target.service_id),
                       "display": target.service_name}],
    });
    for key in [
        "category",
        "code",
        "reasonCode",
        "priority",
        "supportingInfo",
    ] {
        if let Some(value) = parent.get(key) {
            sr[key] = value.clone();
        }
    }
    if let Some(note) = request.note.as_deref().filter(|n| !n.trim().is_empty()) {
        sr["note"] = json!([{"text": note, "time": authored_on,
                             "authorReference": organisation_reference(target.worker)}]);
    }
    let contained = kept_contained(parent, &sr);
    if !contained.is_empty() {
        sr["contained"] = Value::Array(contained);
    }
    sr
}

/// The first referral's contained resources that `child` refers to (`#id`), and those they
/// refer to in turn.
fn kept_contained(parent: &Value, child: &Value) -> Vec<Value> {
    let all = parent
        .get("contained")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut wanted = Vec::new();
    local_references(child, &mut wanted);
    let mut kept: Vec<Value> = Vec::new();
    let mut i = 0;
    while i < wanted.len() {
        let id = wanted[i].clone();
        if let Some(found) = all
            .iter()
            .find(|r| r.get("id").and_then(Value::as_str) == Some(&id))
        {
            if !kept.iter().any(|k| k.get("id") == found.get("id")) {
                local_references(found, &mut wanted);
                kept.push(found.clone());
            }
        }
        i += 1;
    }
    kept
}

/// Every `#id` a resource's `reference` elements name.
fn local_references(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(object) => {
            for (key, item) in object {
                match (
                    key.as_str(),
                    item.as_str().and_then(|r| r.strip_prefix('#')),
                ) {
                    ("reference", Some(id)) if !found.iter().any(|f| f == id) => {
                        found.push(id.to_string())
                    }
                    _ => local_references(item, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| local_references(item, found)),
        _ => {}
    }
}

/// The child's referral record: the first record's person, needs, referrer and consent, for the
/// service's organisation: the extra details (`nhs_number`, `birth_date`, `email`) only where
/// its own `share` lists them (an onward record never holds more than the link worker received).
fn child_record(
    mut record: Value,
    child_id: &str,
    target: &Target<'_>,
    request: &OnwardRequest,
    now: DateTime<Utc>,
) -> Value {
    use crate::config::ShareField;
    for (field, key) in [
        (ShareField::NhsNumber, "nhs_number"),
        (ShareField::BirthDate, "birth_date"),
        (ShareField::Email, "email"),
    ] {
        if !target.group.shares(field) {
            if let Some(patient) = record.get_mut("patient").and_then(Value::as_object_mut) {
                patient.remove(key);
            }
        }
    }
    let first = record["referral_id"].take();
    record["referral_id"] = json!(child_id);
    record["created_at"] = json!(now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    record["service"]["id"] = json!(target.service_id);
    record["service"]["name"] = json!(target.service_name);
    record["notes"] = json!(request
        .note
        .iter()
        .filter(|n| !n.trim().is_empty())
        .collect::<Vec<_>>());
    record["recipient"] = json!({"vcs_id": target.group.id.as_str(), "name": target.group.name});
    record["onward_from"] = json!({
        "referral_id": first,
        "vcs_id": target.worker.id.as_str(),
        "name": target.worker.name,
    });
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_referral_taken_on_and_open_is_referred_on() {
        let allowed: Vec<&str> = VcsStatus::ALL
            .into_iter()
            .filter(|s| may_refer_onward(*s))
            .map(VcsStatus::as_str)
            .collect();
        assert_eq!(
            allowed,
            [
                "accepted",
                "contacted",
                "unable-to-contact",
                "attended",
                "did-not-attend"
            ]
        );
    }

    #[test]
    fn contained_resources_are_kept_while_referred_to() {
        let parent = json!({"contained": [
            {"resourceType": "Patient", "id": "p"},
            {"resourceType": "Consent", "id": "c", "patient": {"reference": "#p"}},
            {"resourceType": "PractitionerRole", "id": "gp"}
        ]});
        let child = json!({"supportingInfo": [{"reference": "#c"}]});
        let kept: Vec<Value> = kept_contained(&parent, &child)
            .into_iter()
            .map(|r| r["id"].clone())
            .collect();
        assert_eq!(kept, [json!("c"), json!("p")]);
    }
}
