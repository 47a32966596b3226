//! A referral after intake: status reports and outcomes from the VCS organisation, cancellation
//! by the GP, and the notifications each change owes to GP Subscriptions and to the VCS.
//!
//! Every change follows one pattern: load the referral's state, compute the new resource versions
//! and outbox messages (validated against our profiles), and apply them in one transaction only if
//! nobody changed the referral meanwhile; on such a conflict, reload and compute again.
//!
//! The rules of who may change what live here, not in the HTTP handlers, so the FHIR API and
//! the VCS API cannot drift apart and a rule can be tested without a server. Which Subscriptions
//! a change notifies is `subscriptions`' to say.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::config::{Config, VcsConfig};
use crate::domain::{Actor, ClientId, FhirId, VcsId};
use crate::fhir::outcome::Issue;
use crate::fhir::stamp;
use crate::store::{
    AuditEntry, ChangeOutcome, NewOutboxMessage, NewResource, Payload, ReferralChange,
    ReferralState, ReferralStatus, Store, StoreError, StoredResource, StoredResponse,
    SubscriptionRow, TargetKind,
};
use crate::subscriptions;
use crate::translate::observation::{observation_count, outcome_observations};
use crate::translate::task::{apply_status, with_outputs};
use crate::translate::vcs_request::{OutcomeReport, StatusUpdate};
use crate::translate::vcs_status::VcsStatus;
use crate::translate::webhook::{new_message_id, Envelope, VcsEvent};
use crate::validation::Validation;

/// How often a change is recomputed after losing a race before giving up.
const ATTEMPTS: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("no such referral")]
    NotFound,
    #[error("a referral that is {from} cannot become {to}")]
    Transition { from: String, to: String },
    #[error("the ServiceRequest is at version {current}, not {expected}")]
    PreconditionFailed { current: i64, expected: i64 },
    #[error("{0}")]
    Unsupported(String),
    /// The change asked for is not one this caller may make; the issues say why and where.
    #[error("this change is not allowed")]
    Refused(Vec<Issue>),
    /// Something we built failed our own profiles: a defect, reported with the issues.
    #[error("the resources built for this change do not meet our profiles")]
    Invalid(Vec<Issue>),
    #[error("the referral kept changing under this request; retry")]
    Busy,
    /// The Idempotency-Key was used before on this referral for a different request body.
    #[error("this Idempotency-Key was used for a different request on this referral")]
    KeyReused,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A request's Idempotency-Key, with a hash of its body to catch a key reused for another request.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub owner: String,
    pub key: String,
    pub request_hash: String,
}

pub struct Lifecycle<'a> {
    pub store: &'a dyn Store,
    pub config: &'a Config,
    pub validation: &'a Validation,
}

/// What a GP's change to its ServiceRequest came to.
#[derive(Debug, Clone)]
pub enum GpChange {
    /// The ServiceRequest already says what the GP sent: nothing was changed.
    Unchanged(StoredResource),
    /// The referral was cancelled.
    Cancelled(Applied),
}

/// What a change produced, for the caller's response.
#[derive(Debug, Clone)]
pub struct Applied {
    pub state_after: Value,
    pub status: u16,
}

pub(crate) fn now_text(now: DateTime<Utc>) -> String {
    now.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A stored resource's JSON; one that does not parse is an error naming it, never `null`.
fn parse_content(resource: &StoredResource) -> Result<Value, LifecycleError> {
    Ok(resource.json()?)
}

impl Lifecycle<'_> {
    /// Loads a referral routed to `vcs` (another organisation's referral does not exist for it).
    pub(crate) async fn load_for_vcs(
        &self,
        vcs: &VcsId,
        referral_id: &str,
    ) -> Result<ReferralState, LifecycleError> {
        self.store
            .load_referral(referral_id)
            .await?
            .filter(|state| state.vcs_id == *vcs)
            .ok_or(LifecycleError::NotFound)
    }

    fn vcs(&self, id: &str) -> Result<&VcsConfig, LifecycleError> {
        self.config
            .vcs
            .iter()
            .find(|v| v.id.as_str() == id)
            .ok_or(LifecycleError::NotFound)
    }

    /// The answer stored for an earlier request with this Idempotency-Key on `referral_id`,
    /// if there was one; the same key with another body is refused.
    pub async fn replayed(
        &self,
        referral_id: &str,
        key: &IdempotencyKey,
    ) -> Result<Option<Applied>, LifecycleError> {
        let Some(stored) = self
            .store
            .idempotent_response(&key.owner, referral_id, &key.key)
            .await?
        else {
            return Ok(None);
        };
        if stored.request_hash != key.request_hash {
            return Err(LifecycleError::KeyReused);
        }
        Ok(Some(Applied {
            state_after: crate::store::stored_json("idempotent response", &key.key, &stored.body)?,
            status: stored.status,
        }))
    }

    /// Runs `compute` against fresh state until its change applies. With an Idempotency-Key,
    /// a request with the same key that got there first (a concurrent duplicate) is answered
    /// with that request's answer instead.
    pub(crate) async fn apply<F>(
        &self,
        referral_id: &str,
        idempotency: Option<&IdempotencyKey>,
        load: impl Fn() -> F,
        compute: impl Fn(&ReferralState) -> Result<(ReferralChange, Applied), LifecycleError>,
    ) -> Result<Applied, LifecycleError>
    where
        F: std::future::Future<Output = Result<ReferralState, LifecycleError>>,
    {
        for _ in 0..ATTEMPTS {
            if let Some(key) = idempotency {
                if let Some(applied) = self.replayed(referral_id, key).await? {
                    return Ok(applied);
                }
            }
            let state = load().await?;
            let (change, applied) = compute(&state)?;
            match self.store.apply_change(change).await? {
                ChangeOutcome::Applied => return Ok(applied),
                ChangeOutcome::Conflict => continue,
            }
        }
        Err(LifecycleError::Busy)
    }

    /// A VCS status report: a new Task version, and the ServiceRequest's when its status follows.
    pub async fn report_status(
        &self,
        vcs: &VcsId,
        referral_id: &str,
        update: &StatusUpdate,
        idempotency: Option<IdempotencyKey>,
        correlation_id: Option<String>,
    ) -> Result<Applied, LifecycleError> {
        let request = (idempotency, correlation_id);
        self.report_status_at(vcs, referral_id, update, request, Utc::now())
            .await
    }

    /// [`Lifecycle::report_status`] as if it happened at `now` (`seed` writes past months with
    /// it; nothing reachable over HTTP chooses the time).
    pub(crate) async fn report_status_at(
        &self,
        vcs: &VcsId,
        referral_id: &str,
        update: &StatusUpdate,
        (idempotency, correlation_id): (Option<IdempotencyKey>, Option<String>),
        now: DateTime<Utc>,
    ) -> Result<Applied, LifecycleError> {
        let subscriptions = self.subscriptions_of_referral(vcs, referral_id).await?;
        self.apply(
            referral_id,
            idempotency.as_ref(),
            || self.load_for_vcs(vcs, referral_id),
            |state| {
                let current = state.vcs_status;
                if !current.can_become(update.status) {
                    return Err(LifecycleError::Transition {
                        from: current.as_str().into(),
                        to: update.status.as_str().into(),
                    });
                }
                let mut builder = ChangeBuilder::new(state, now, correlation_id.clone());
                let task = state.task.as_ref().ok_or(LifecycleError::NotFound)?;
                let next_task = apply_status(&parse_content(task)?, update, now);
                builder.version("Task", &task.id, task.version_id, next_task, None);
                if let Some(status) = update.status.service_request_status() {
                    let mut sr = parse_content(&state.service_request)?;
                    sr["status"] = json!(status);
                    builder.version(
                        "ServiceRequest",
                        referral_id,
                        state.service_request.version_id,
                        sr,
                        None,
                    );
                    builder.change.status = Some(status);
                }
                builder.change.vcs_status = Some(update.status);
                builder.audit(Actor::vcs(vcs), "status-update", "Task", &task.id);
                builder.notify(&subscriptions)?;
                let body = json!({"referral_id": referral_id, "status": update.status.as_str(),
                                  "updated_at": now_text(now)});
                builder.finish(self.validation, idempotency.clone(), 200, body)
            },
        )
        .await
    }

    /// A VCS outcome report: new Observations, referenced from the Task's `output`.
    pub async fn report_outcome(
        &self,
        vcs: &VcsId,
        referral_id: &str,
        report: &OutcomeReport,
        idempotency: Option<IdempotencyKey>,
        correlation_id: Option<String>,
    ) -> Result<Applied, LifecycleError> {
        let request = (idempotency, correlation_id);
        self.report_outcome_at(vcs, referral_id, report, request, Utc::now())
            .await
    }

    /// [`Lifecycle::report_outcome`] as if it happened at `now` (for `seed`).
    pub(crate) async fn report_outcome_at(
        &self,
        vcs: &VcsId,
        referral_id: &str,
        report: &OutcomeReport,
        (idempotency, correlation_id): (Option<IdempotencyKey>, Option<String>),
        now: DateTime<Utc>,
    ) -> Result<Applied, LifecycleError> {
        let subscriptions = self.subscriptions_of_referral(vcs, referral_id).await?;
        let vcs_config = self.vcs(vcs.as_str())?;
        self.apply(
            referral_id,
            idempotency.as_ref(),
            || self.load_for_vcs(vcs, referral_id),
            |state| {
                let ids: Vec<String> = (0..observation_count(report.instrument))
                    .map(|_| FhirId::generate().to_string())
                    .collect();
                let observations = outcome_observations(
                    report,
                    &ids,
                    referral_id,
                    state.patient_id.as_str(),
                    vcs_config,
                );
                let mut builder = ChangeBuilder::new(state, now, correlation_id.clone());
                for (id, observation) in ids.iter().zip(observations) {
                    let code = observation_code(&observation);
                    builder.version("Observation", id, 0, observation, code);
                    builder.audit(Actor::vcs(vcs), "outcome", "Observation", id);
                }
                let task = state.task.as_ref().ok_or(LifecycleError::NotFound)?;
                let next_task = with_outputs(&parse_content(task)?, &ids);
                builder.version("Task", &task.id, task.version_id, next_task, None);
                builder.notify(&subscriptions)?;
                let body = json!({"referral_id": referral_id, "observation_ids": ids});
                builder.finish(self.validation, idempotency.clone(), 201, body)
            },
        )
        .await
    }

    /// A GP's new version of a ServiceRequest it sent (PUT, or PATCH applied to the current
    /// version). The only change a GP may make is cancellation: `status` to `revoked`, all else
    /// as it is; sending the current status back changes nothing.
    pub async fn change_by_gp(
        &self,
        client: &ClientId,
        referral_id: &str,
        proposed: &Value,
        expected_version: Option<i64>,
        correlation_id: Option<String>,
    ) -> Result<GpChange, LifecycleError> {
        let current = self
            .store
            .read_resource(client, "ServiceRequest", referral_id)
            .await?
            .ok_or(LifecycleError::NotFound)?;
        let current_content = parse_content(&current)?;
        if !gp_cancels(referral_id, proposed, &current_content)? {
            return Ok(GpChange::Unchanged(current));
        }
        self.cancel_by_gp(client, referral_id, expected_version, correlation_id)
            .await
            .map(GpChange::Cancelled)
    }

    /// The GP revokes the referral: ServiceRequest revoked, Task cancelled, the VCS told.
    pub async fn cancel_by_gp(
        &self,
        client: &ClientId,
        referral_id: &str,
        expected_version: Option<i64>,
        correlation_id: Option<String>,
    ) -> Result<Applied, LifecycleError> {
        let request = (expected_version, correlation_id);
        self.cancel_by_gp_at(client, referral_id, request, Utc::now())
            .await
    }

    /// [`Lifecycle::cancel_by_gp`] as if it happened at `now` (for `seed`).
    pub(crate) async fn cancel_by_gp_at(
        &self,
        client: &ClientId,
        referral_id: &str,
        (expected_version, correlation_id): (Option<i64>, Option<String>),
        now: DateTime<Utc>,
    ) -> Result<Applied, LifecycleError> {
        let state = self.store.load_referral(referral_id).await?;
        let owner = state
            .filter(|s| s.client_id == *client)
            .ok_or(LifecycleError::NotFound)?;
        let subscriptions = subscriptions::of_client(self.store, client, &["Task"]).await?;
        self.apply(
            referral_id,
            None,
            || async {
                self.store
                    .load_referral(referral_id)
                    .await?
                    .filter(|s| s.client_id == owner.client_id)
                    .ok_or(LifecycleError::NotFound)
            },
            |state| {
                if let Some(expected) = expected_version {
                    if expected != state.service_request.version_id {
                        return Err(LifecycleError::PreconditionFailed {
                            current: state.service_request.version_id,
                            expected,
                        });
                    }
                }
                let current = state.vcs_status;
                if !current.can_become(VcsStatus::Cancelled) {
                    return Err(LifecycleError::Transition {
                        from: current.as_str().into(),
                        to: "cancelled".into(),
                    });
                }
                let mut builder = ChangeBuilder::new(state, now, correlation_id.clone());
                let mut sr = parse_content(&state.service_request)?;
                sr["status"] = json!("revoked");
                let sr_version = builder.version(
                    "ServiceRequest",
                    referral_id,
                    state.service_request.version_id,
                    sr,
                    None,
                );
                if let Some(task) = &state.task {
                    let update = StatusUpdate {
                        status: VcsStatus::Cancelled,
                        reason: Some("Cancelled by the referring GP practice".into()),
                        reason_code: None,
                        note: None,
                        occurred_at: now.fixed_offset(),
                    };
                    let next_task = apply_status(&parse_content(task)?, &update, now);
                    builder.version("Task", &task.id, task.version_id, next_task, None);
                }
                builder.change.status = Some(ReferralStatus::Revoked);
                builder.change.vcs_status = Some(VcsStatus::Cancelled);
                builder.audit(
                    Actor::client(client),
                    "cancel",
                    "ServiceRequest",
                    referral_id,
                );
                builder.tell_vcs(self.config, VcsEvent::ReferralCancelled)?;
                builder.notify(&subscriptions)?;
                builder.finish(self.validation, None, 200, sr_version)
            },
        )
        .await
    }

    /// Subscriptions of the GP client that sent the referral, on Tasks and Observations.
    async fn subscriptions_of_referral(
        &self,
        vcs: &VcsId,
        referral_id: &str,
    ) -> Result<Vec<SubscriptionRow>, LifecycleError> {
        let state = self.load_for_vcs(vcs, referral_id).await?;
        Ok(
            subscriptions::of_client(self.store, &state.client_id, &["Task", "Observation"])
                .await?,
        )
    }
}

/// Whether a GP's proposed ServiceRequest cancels the current one (`false`: it is the current
/// one as it stands); any other change is refused.
fn gp_cancels(id: &str, proposed: &Value, current: &Value) -> Result<bool, LifecycleError> {
    let refuse = |issue: Issue| Err(LifecycleError::Refused(vec![issue]));
    if proposed.get("id").and_then(Value::as_str) != Some(id) {
        return refuse(
            Issue::error("invalid", "The resource id must match the id in the URL.")
                .at("ServiceRequest.id")
                .with_message_id("id-mismatch"),
        );
    }
    if without_mutable(proposed) != without_mutable(current) {
        return refuse(
            Issue::error(
                "business-rule",
                "Only cancellation is supported: change status to revoked and nothing else.",
            )
            .with_message_id("unsupported-change"),
        );
    }
    match proposed.get("status").and_then(Value::as_str) {
        Some("revoked") => Ok(true),
        Some(same) if Some(same) == current.get("status").and_then(Value::as_str) => Ok(false),
        other => refuse(
            Issue::error(
                "business-rule",
                format!(
                    "A GP may set status to revoked (cancel); {} is set by the service.",
                    other.unwrap_or("no status")
                ),
            )
            .at("ServiceRequest.status")
            .with_message_id("unsupported-status"),
        ),
    }
}

/// A ServiceRequest without what a GP's change may touch: `status` (and server-kept `meta`, `text`).
fn without_mutable(resource: &Value) -> Value {
    let mut copy = resource.clone();
    if let Value::Object(object) = &mut copy {
        for key in ["meta", "status", "text"] {
            object.remove(key);
        }
    }
    copy
}

/// `system|code` of an Observation's first coding, for `code=` searches.
fn observation_code(observation: &Value) -> Option<String> {
    let coding = observation.pointer("/code/coding/0")?;
    Some(format!(
        "{}|{}",
        coding.get("system")?.as_str()?,
        coding.get("code")?.as_str()?
    ))
}

/// Collects one change's resource versions, messages and audit entries.
pub(crate) struct ChangeBuilder<'s> {
    state: &'s ReferralState,
    now: DateTime<Utc>,
    pub(crate) change: ReferralChange,
    /// Changed resources, for Subscription matching, each with the stored version naming it.
    changed: Vec<(Value, Payload)>,
    /// Messages added per target, to number them.
    added: Vec<(TargetKind, String)>,
}

impl<'s> ChangeBuilder<'s> {
    pub(crate) fn new(
        state: &'s ReferralState,
        now: DateTime<Utc>,
        correlation_id: Option<String>,
    ) -> Self {
        ChangeBuilder {
            state,
            now,
            change: ReferralChange {
                referral_id: state.referral_id.clone(),
                expected_revision: state.revision,
                status: None,
                vcs_status: None,
                resources: vec![],
                outbox: vec![],
                audit: vec![],
                idempotency: None,
                correlation_id,
                at: now,
                onward: None,
            },
            changed: vec![],
            added: vec![],
        }
    }

    /// Adds the next version of a resource (`previous` 0: a new resource); returns it as stored.
    fn version(
        &mut self,
        resource_type: &str,
        id: &str,
        previous: i64,
        content: Value,
        code: Option<String>,
    ) -> Value {
        let stamped = stamp(content, id, previous + 1, &now_text(self.now));
        let resource = NewResource {
            resource_type: resource_type.to_string(),
            id: id.parse().unwrap_or_else(|_| FhirId::generate()),
            version_id: previous + 1,
            content: stamped.to_string(),
            patient_id: Some(self.state.patient_id.to_string()),
            code,
        };
        let stored = Payload::Stored {
            resource_type: resource.resource_type.clone(),
            id: resource.id.to_string(),
            version_id: resource.version_id,
        };
        self.change.resources.push(resource);
        self.changed.push((stamped.clone(), stored));
        stamped
    }

    pub(crate) fn audit(&mut self, actor: Actor, action: &str, resource_type: &str, id: &str) {
        self.change.audit.push(AuditEntry {
            actor,
            action: action.to_string(),
            resource_type: resource_type.to_string(),
            resource_id: id.to_string(),
        });
    }

    fn next_sequence(&mut self, kind: TargetKind, target: &str) -> i64 {
        let earlier = self
            .added
            .iter()
            .filter(|(k, t)| *k == kind && t == target)
            .count() as i64;
        self.added.push((kind, target.to_string()));
        self.state.next_sequence(kind, target) + earlier
    }

    /// A webhook to the referral's VCS organisation carrying the current record, when it has a
    /// webhook (without one, it reads the record in the inbox).
    fn tell_vcs(&mut self, config: &Config, event: VcsEvent) -> Result<(), LifecycleError> {
        // An organisation no longer configured keeps its message (the worker reports it).
        if config
            .vcs(&self.state.vcs_id)
            .is_some_and(|vcs| vcs.webhook().is_none())
        {
            return Ok(());
        }
        let target = self.state.vcs_id.to_string();
        let sequence = self.next_sequence(TargetKind::Vcs, &target);
        let record = self.state.record_json()?;
        let payload = Envelope::new(event, self.now, sequence, &record).to_json();
        self.change.outbox.push(NewOutboxMessage {
            id: new_message_id(),
            target_kind: TargetKind::Vcs,
            target,
            event_type: event.as_str().to_string(),
            sequence,
            payload: Payload::Text(payload),
        });
        Ok(())
    }

    /// A notification to every matching Subscription for every changed Task or Observation.
    fn notify(&mut self, subscriptions: &[SubscriptionRow]) -> Result<(), LifecycleError> {
        let changed = std::mem::take(&mut self.changed);
        for (resource, stored) in &changed {
            for subscription in subscriptions
                .iter()
                .filter(|s| subscriptions::matches_criteria(&s.criteria, resource, self.state))
            {
                let sequence = self.next_sequence(TargetKind::Subscription, &subscription.id);
                let resource_type = resource["resourceType"].as_str().unwrap_or("Resource");
                self.change.outbox.push(NewOutboxMessage {
                    id: new_message_id(),
                    target_kind: TargetKind::Subscription,
                    target: subscription.id.clone(),
                    event_type: format!("{resource_type}.changed"),
                    sequence,
                    payload: subscriptions::notification_payload(subscription, stored)?,
                });
            }
        }
        self.changed = changed;
        Ok(())
    }

    /// Validates what was built against our profiles and completes the change.
    pub(crate) fn finish(
        mut self,
        validation: &Validation,
        idempotency: Option<IdempotencyKey>,
        status: u16,
        body: Value,
    ) -> Result<(ReferralChange, Applied), LifecycleError> {
        let issues: Vec<Issue> = self
            .changed
            .iter()
            .flat_map(|(resource, _)| match resource["resourceType"].as_str() {
                // Its profile held at intake and only `status` changes; its references may
                // point at resources stored beside it, which a lone validation cannot resolve.
                Some("ServiceRequest") => validation.validate_base(resource),
                _ => validation.validate(resource),
            })
            .filter(|issue| issue.severity.is_error())
            .collect();
        if !issues.is_empty() {
            return Err(LifecycleError::Invalid(issues));
        }
        if let Some(key) = idempotency {
            self.change.idempotency = Some((
                key.owner,
                key.key,
                StoredResponse {
                    request_hash: key.request_hash,
                    status,
                    body: body.to_string(),
                },
            ));
        }
        Ok((
            self.change,
            Applied {
                state_after: body,
                status,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn referral(status: &str) -> Value {
        json!({"resourceType": "ServiceRequest", "id": "r1", "status": status,
               "meta": {"versionId": "1"}, "intent": "order"})
    }

    fn refusal(result: Result<bool, LifecycleError>) -> Option<String> {
        match result {
            Err(LifecycleError::Refused(issues)) => issues[0].message_id.clone(),
            _ => None,
        }
    }

    #[test]
    fn a_gp_may_only_cancel() {
        let current = referral("active");
        assert!(gp_cancels("r1", &referral("revoked"), &current).unwrap());
        assert!(!gp_cancels("r1", &referral("active"), &current).unwrap());
        assert_eq!(
            refusal(gp_cancels("r2", &referral("revoked"), &current)).as_deref(),
            Some("id-mismatch")
        );
        let mut other = referral("revoked");
        other["intent"] = json!("plan");
        assert_eq!(
            refusal(gp_cancels("r1", &other, &current)).as_deref(),
            Some("unsupported-change")
        );
        assert_eq!(
            refusal(gp_cancels("r1", &referral("completed"), &current)).as_deref(),
            Some("unsupported-status")
        );
    }
}
