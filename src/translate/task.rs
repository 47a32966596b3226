//! The SP-ReferralTask: created `requested` with the referral, then one version per status a VCS
//! organisation reports, and outputs pointing at the outcome Observations.

use chrono::{DateTime, FixedOffset, Utc};
use serde_json::{json, Map, Value};

use super::decline_reason::DECLINE_REASON_SYSTEM;
use super::vcs_request::StatusUpdate;
use super::vcs_status::VcsStatus;
use super::{fixed_text, organisation_reference, reference, utc_text};
use crate::config::VcsConfig;

const BUSINESS_STATUS: &str = "https://fhir.sp-gateway.uk/CodeSystem/referral-business-status";
const TASK_CODE: &str = "http://hl7.org/fhir/CodeSystem/task-code";

/// The Task created when the gateway accepts a referral: `requested`, waiting for the VCS
/// organisation's answer.
pub fn new_task(
    task_id: &str,
    referral_id: &str,
    patient_id: &str,
    vcs: &VcsConfig,
    now: DateTime<Utc>,
) -> Value {
    let now = utc_text(now);
    json!({
        "resourceType": "Task",
        "id": task_id,
        "meta": {"profile": [sp_validator::SP_REFERRAL_TASK]},
        "status": VcsStatus::Received.task_status(),
        "intent": "order",
        "code": {"coding": [{
            "system": TASK_CODE,
            "code": "fulfill",
            "display": "Fulfill the focal request"
        }]},
        "focus": reference("ServiceRequest", referral_id),
        "for": reference("Patient", patient_id),
        "authoredOn": now,
        "lastModified": now,
        "owner": organisation_reference(vcs),
    })
}

/// The next version of the Task after a status update. Keeps everything else (id, output);
/// `note` is this update's note alone (earlier notes stay in the versions they came with, read
/// by `_history`, so a version's size does not grow with every report); `now` is when the gateway records it (`lastModified`), `occurred_at` when it
/// happened (execution period, note time).
pub fn apply_status(task: &Value, update: &StatusUpdate, now: DateTime<Utc>) -> Value {
    let mut next = task.clone();
    let Some(obj) = next.as_object_mut() else {
        // Not a resource at all: nothing sensible to change, and the profile check that follows
        // in the caller reports it.
        return next;
    };
    obj.insert("status".into(), json!(update.status.task_status()));
    set_or_remove(
        obj,
        "businessStatus",
        business_status_concept(update.status),
    );
    // A reason belongs to this status only: a stale "no answer on three calls" must not stay on
    // the Task once the person has been reached.
    set_or_remove(obj, "statusReason", status_reason(update));
    let note = update
        .note
        .as_ref()
        .map(|text| json!([annotation(obj, text, update.occurred_at)]));
    set_or_remove(obj, "note", note);
    obj.insert("lastModified".into(), json!(utc_text(now)));
    update_execution_period(obj, update);
    next
}

/// The organisation's words (`text`, what the GP practice reads) and, for a coded decline, the
/// code from our `decline-reason` CodeSystem (what the commissioners' reports count).
fn status_reason(update: &StatusUpdate) -> Option<Value> {
    let mut reason = json!({ "text": update.reason.as_ref()? });
    if let Some(code) = update.reason_code {
        reason["coding"] = json!([{
            "system": DECLINE_REASON_SYSTEM,
            "code": code.as_str(),
            "display": code.display(),
        }]);
    }
    Some(reason)
}

fn business_status_concept(status: VcsStatus) -> Option<Value> {
    status.business_status().map(|(code, display)| {
        json!({"coding": [{"system": BUSINESS_STATUS, "code": code, "display": display}]})
    })
}

/// A note as the GP practice reads it: the organisation's words, with the time they are about.
/// Each Task version carries the note of the report that made it; the story is the Task's
/// `_history`.
fn annotation(obj: &Map<String, Value>, text: &str, at: DateTime<FixedOffset>) -> Value {
    let mut annotation = json!({"time": fixed_text(at), "text": text});
    if let Some(owner) = obj.get("owner") {
        annotation["authorReference"] = owner.clone();
    }
    annotation
}

/// `executionPeriod.start` when work starts (acceptance, or the first step after it if the Task
/// has none yet), `end` when it stops (completed or cancelled after it started).
fn update_execution_period(obj: &mut Map<String, Value>, update: &StatusUpdate) {
    let at = update.occurred_at;
    let start = obj
        .get("executionPeriod")
        .and_then(|p| p.get("start"))
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok());
    if update.status.is_under_way() && start.is_none() {
        obj.insert("executionPeriod".into(), json!({"start": fixed_text(at)}));
        return;
    }
    let ends = matches!(update.status, VcsStatus::Completed | VcsStatus::Cancelled);
    if let (true, Some(start)) = (ends, start) {
        // An end reported before the start would break the Period invariant (per-1) and make
        // the Task unstorable; the start stays the true start and the end is clamped to it.
        let end = if at < start { start } else { at };
        if let Some(period) = obj.get_mut("executionPeriod") {
            period["end"] = json!(fixed_text(end));
        }
    }
}

/// Adds Observation references to the Task's `output` (for a new Task version). References
/// already there are not added twice, so replaying a report does not duplicate outputs.
pub fn with_outputs(task: &Value, observation_ids: &[String]) -> Value {
    let mut next = task.clone();
    let Some(obj) = next.as_object_mut() else {
        return next;
    };
    let mut outputs = obj
        .get("output")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for id in observation_ids {
        let target = format!("Observation/{id}");
        let present = outputs.iter().any(|o| {
            o.pointer("/valueReference/reference")
                .and_then(Value::as_str)
                == Some(&target)
        });
        if !present {
            // Task.output.type is required (1..1) with an example binding only: text says enough.
            outputs.push(json!({
                "type": {"text": "Wellbeing outcome score"},
                "valueReference": {"reference": target}
            }));
        }
    }
    if !outputs.is_empty() {
        obj.insert("output".into(), Value::Array(outputs));
    }
    next
}

fn set_or_remove(obj: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    match value {
        Some(v) => {
            obj.insert(key.into(), v);
        }
        None => {
            obj.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::translate::decline_reason::DeclineReason;
    use crate::translate::test_support::{assert_valid, at, error_keys, errors, now, show, vcs};

    fn update(status: VcsStatus, reason: Option<&str>, when: &str) -> StatusUpdate {
        StatusUpdate {
            status,
            reason: reason.map(str::to_string),
            reason_code: None,
            note: None,
            occurred_at: at(when),
        }
    }

    fn task() -> Value {
        new_task("task-1", "sr-1", "pat-1", &vcs(), now())
    }

    fn reason_for(status: VcsStatus) -> Option<&'static str> {
        status
            .needs_reason()
            .then_some("Tried three times by phone and once by letter")
    }

    /// One status applied to a Task that has none yet (`requested`) and to one under way
    /// (accepted at 09:00): what each part of the next version becomes.
    #[test]
    fn apply_status_per_status() {
        use VcsStatus::*;
        let start = "2026-10-06T09:00:00Z";
        let when = "2026-10-08T09:00:00+01:00";
        let under_way = apply_status(&task(), &update(Accepted, None, start), now());
        // (from, status, Task.status, businessStatus, executionPeriod)
        let table = [
            (&task(), Accepted, "accepted", None, json!({"start": when})),
            (&task(), Declined, "rejected", None, Value::Null),
            (&task(), Cancelled, "cancelled", None, Value::Null),
            (
                &under_way,
                Contacted,
                "in-progress",
                Some("contacted"),
                json!({"start": start}),
            ),
            (
                &under_way,
                UnableToContact,
                "failed",
                Some("unable-to-contact"),
                json!({"start": start}),
            ),
            (
                &under_way,
                Attended,
                "in-progress",
                Some("attended"),
                json!({"start": start}),
            ),
            (
                &under_way,
                DidNotAttend,
                "in-progress",
                Some("did-not-attend"),
                json!({"start": start}),
            ),
            (
                &under_way,
                Completed,
                "completed",
                Some("completed"),
                json!({"start": start, "end": when}),
            ),
            (
                &under_way,
                Cancelled,
                "cancelled",
                None,
                json!({"start": start, "end": when}),
            ),
        ];
        for (from, status, task_status, business, period) in table {
            let name = status.as_str();
            let next = apply_status(from, &update(status, reason_for(status), when), now());
            assert_valid(&next);
            assert_eq!(next["status"], task_status, "{name}");
            assert_eq!(
                next["businessStatus"]["coding"][0]["code"].as_str(),
                business,
                "{name}"
            );
            assert_eq!(
                next["statusReason"]["text"].as_str(),
                reason_for(status),
                "{name}"
            );
            assert_eq!(next["executionPeriod"], period, "{name}");
            assert_eq!(next["lastModified"], "2026-11-23T12:00:00Z", "{name}");
            assert_eq!(next["id"], "task-1", "{name}");
        }
    }

    #[test]
    fn new_task_is_a_valid_requested_task() {
        let t = task();
        assert_valid(&t);
        assert_eq!(t["status"], "requested");
        assert_eq!(t["id"], "task-1");
        assert_eq!(t["focus"]["reference"], "ServiceRequest/sr-1");
        assert_eq!(t["for"]["reference"], "Patient/pat-1");
        assert_eq!(
            t["owner"],
            json!({"type": "Organization", "display": "Carers Count", "identifier": {
                "system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "X1A2B"}})
        );
        assert!(t["meta"].get("versionId").is_none());
        assert!(t["meta"].get("lastUpdated").is_none());
    }

    /// Every status reachable from `received`, applied to the Task it reaches, validates.
    #[test]
    fn every_transition_gives_a_valid_task() {
        // The Task in each state, reached along a legal path.
        let mut in_state: Vec<(VcsStatus, Value)> = vec![(VcsStatus::Received, task())];
        let mut seen = vec![VcsStatus::Received];
        let mut i = 0;
        while i < in_state.len() {
            let (from, t) = in_state[i].clone();
            for to in VcsStatus::ALL.into_iter().filter(|&to| from.can_become(to)) {
                let next = apply_status(
                    &t,
                    &update(to, reason_for(to), "2026-10-08T09:00:00+01:00"),
                    now(),
                );
                assert_valid(&next);
                assert_eq!(next["status"], to.task_status());
                if !seen.contains(&to) {
                    seen.push(to);
                    in_state.push((to, next));
                }
            }
            i += 1;
        }
        assert_eq!(
            seen.len(),
            VcsStatus::ALL.len(),
            "every status is reachable"
        );
    }

    #[test]
    fn a_whole_journey() {
        let steps = [
            (VcsStatus::Accepted, None, None, "2026-10-06T14:02:00+01:00"),
            (
                VcsStatus::UnableToContact,
                Some("No answer on two calls"),
                None,
                "2026-10-07T10:00:00+01:00",
            ),
            (
                VcsStatus::Contacted,
                None,
                Some("Reached her on the third call"),
                "2026-10-08T10:00:00+01:00",
            ),
            (
                VcsStatus::DidNotAttend,
                None,
                None,
                "2026-10-13T10:00:00+01:00",
            ),
            (
                VcsStatus::Attended,
                None,
                Some("Came to the Tuesday group"),
                "2026-10-20T10:00:00+01:00",
            ),
            (VcsStatus::Attended, None, None, "2026-10-27T10:00:00Z"),
            (
                VcsStatus::Completed,
                None,
                Some("Twelve weeks of carer support"),
                "2026-11-18T16:20:00Z",
            ),
        ];
        let mut t = task();
        let mut current = VcsStatus::Received;
        let mut notes = Vec::new();
        for (status, reason, note, when) in steps {
            assert!(
                current.can_become(status),
                "{} -> {}",
                current.as_str(),
                status.as_str()
            );
            let u = StatusUpdate {
                status,
                reason: reason.map(str::to_string),
                reason_code: None,
                note: note.map(str::to_string),
                occurred_at: at(when),
            };
            t = apply_status(&t, &u, now());
            assert_valid(&t);
            assert_eq!(t["status"], status.task_status());
            match status.business_status() {
                Some((code, _)) => assert_eq!(t["businessStatus"]["coding"][0]["code"], code),
                None => assert!(t.get("businessStatus").is_none()),
            }
            match reason {
                Some(r) => assert_eq!(t["statusReason"]["text"], r),
                None => assert!(t.get("statusReason").is_none(), "stale reason kept"),
            }
            match note {
                Some(text) => {
                    assert_eq!(t["note"].as_array().map(Vec::len), Some(1), "{t}");
                    assert_eq!(t["note"][0]["text"], text);
                    notes.push(t["note"][0].clone());
                }
                None => assert!(t.get("note").is_none(), "an earlier note re-copied"),
            }
            current = status;
        }
        assert_eq!(t["id"], "task-1");
        assert_eq!(t["lastModified"], "2026-11-23T12:00:00Z");
        assert_eq!(
            t["executionPeriod"],
            json!({"start": "2026-10-06T14:02:00+01:00", "end": "2026-11-18T16:20:00Z"})
        );
        assert_eq!(notes.len(), 3);
        assert_eq!(notes[0]["text"], "Reached her on the third call");
        assert_eq!(notes[0]["time"], "2026-10-08T10:00:00+01:00");
        assert_eq!(notes[0]["authorReference"]["display"], "Carers Count");
    }

    #[test]
    fn declined_and_cancelled_tasks() {
        let declined = apply_status(
            &task(),
            &update(
                VcsStatus::Declined,
                Some("Our group is full until February"),
                "2026-10-06T09:00:00Z",
            ),
            now(),
        );
        assert_valid(&declined);
        assert_eq!(declined["status"], "rejected");
        assert_eq!(
            declined["statusReason"]["text"],
            "Our group is full until February"
        );
        assert!(
            declined.get("executionPeriod").is_none(),
            "no work was done"
        );
        assert!(declined["statusReason"].get("coding").is_none());

        // A coded decline: the code beside the words, valid against SP-ReferralTask; the next
        // version (none can follow a decline, but a replayed Task could) keeps no stale code.
        let coded = apply_status(
            &task(),
            &StatusUpdate {
                reason_code: Some(DeclineReason::OutsideArea),
                ..update(
                    VcsStatus::Declined,
                    Some("We cover Hereford city only"),
                    "2026-10-06T09:00:00Z",
                )
            },
            now(),
        );
        assert_valid(&coded);
        assert_eq!(
            coded["statusReason"],
            json!({"text": "We cover Hereford city only", "coding": [{
                "system": DECLINE_REASON_SYSTEM, "code": "outside-area", "display": "Outside the area"}]})
        );

        let cancelled = apply_status(
            &task(),
            &update(
                VcsStatus::Cancelled,
                Some("Cancelled by the referring GP practice"),
                "2026-10-06T09:00:00Z",
            ),
            now(),
        );
        assert_valid(&cancelled);
        assert_eq!(cancelled["status"], "cancelled");
        assert!(cancelled.get("executionPeriod").is_none());

        // Without the reason the profile refuses the Task: the caller must not skip parsing.
        let bare = apply_status(
            &task(),
            &update(VcsStatus::Declined, None, "2026-10-06T09:00:00Z"),
            now(),
        );
        assert!(
            error_keys(&bare).contains(&"sp-task-1"),
            "{}",
            show(&errors(&bare))
        );
    }

    #[test]
    fn an_end_before_the_start_is_clamped() {
        let accepted = apply_status(
            &task(),
            &update(VcsStatus::Accepted, None, "2026-10-10T09:00:00Z"),
            now(),
        );
        let done = apply_status(
            &accepted,
            &update(VcsStatus::Completed, None, "2026-10-01T09:00:00Z"),
            now(),
        );
        assert_valid(&done);
        assert_eq!(
            done["executionPeriod"]["start"],
            done["executionPeriod"]["end"]
        );
    }

    #[test]
    fn outputs_are_added_once_and_survive_status_changes() {
        let ids = vec!["obs-1".to_string(), "obs-2".to_string()];
        let t = with_outputs(&task(), &ids);
        assert_valid(&t);
        let t = with_outputs(&t, &["obs-2".to_string(), "obs-3".to_string()]);
        let refs: Vec<&str> = t["output"]
            .as_array()
            .expect("output")
            .iter()
            .filter_map(|o| o["valueReference"]["reference"].as_str())
            .collect();
        assert_eq!(
            refs,
            [
                "Observation/obs-1",
                "Observation/obs-2",
                "Observation/obs-3"
            ]
        );
        let t = apply_status(
            &t,
            &update(VcsStatus::Accepted, None, "2026-10-06T09:00:00Z"),
            now(),
        );
        assert_eq!(t["output"].as_array().map(Vec::len), Some(3));
        assert_valid(&t);
        assert!(with_outputs(&task(), &[]).get("output").is_none());
    }
}
