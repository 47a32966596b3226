//! VCS status updates and wellbeing outcomes → FHIR Task and Observation.
//!
//! A VCS organisation speaks plain JSON (`POST /vcs/v1/referrals/{id}/status` and `…/outcomes`);
//! the GP practice reads FHIR. This module holds the vocabulary of the VCS side (which status may
//! follow which, which answers an instrument takes) and the mapping to our profiles
//! SP-ReferralTask and SP-OutcomeObservation. Everything here is pure: no clock, no store, no
//! I/O. The caller validates every resource built here against the profiles before storing it,
//! and the tests below check that what we build passes that validation.

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use crate::config::VcsConfig;

const WELLBEING_MEASURE: &str = "https://fhir.sp-gateway.uk/CodeSystem/wellbeing-measure";
const ASSESSMENT_TIMEPOINT: &str = "https://fhir.sp-gateway.uk/CodeSystem/assessment-timepoint";
const BUSINESS_STATUS: &str = "https://fhir.sp-gateway.uk/CodeSystem/referral-business-status";
const TASK_CODE: &str = "http://hl7.org/fhir/CodeSystem/task-code";
const OBSERVATION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
const UCUM: &str = "http://unitsofmeasure.org";

/// Longest `reason` and `note` we keep; the JSON Schemas in `profiles/vcs/` say the same.
const MAX_REASON_CHARS: usize = 1000;
const MAX_NOTE_CHARS: usize = 4000;

/// A request body that is well-formed JSON but breaks a rule; `field` names the JSON field
/// (`reason`, `answers[3]`, `body` for the whole body) so the 422 can point at it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Status
// ---------------------------------------------------------------------------------------------

/// The VCS-side status vocabulary, valid by construction.
///
/// Transition table (`can_become`): row = current status, ✓ = may be reported next.
///
/// | from \ to          | acc | dec | con | utc | att | dna | com | can |
/// |--------------------|-----|-----|-----|-----|-----|-----|-----|-----|
/// | received           |  ✓  |  ✓  |     |     |     |     |     |  ✓  |
/// | accepted           |     |     |  ✓  |  ✓  |  ✓  |  ✓  |  ✓  |  ✓  |
/// | contacted          |     |     |  ✓  |  ✓  |  ✓  |  ✓  |  ✓  |  ✓  |
/// | unable-to-contact  |     |     |  ✓  |  ✓  |  ✓  |  ✓  |     |  ✓  |
/// | attended           |     |     |  ✓  |  ✓  |  ✓  |  ✓  |  ✓  |  ✓  |
/// | did-not-attend     |     |     |  ✓  |  ✓  |  ✓  |  ✓  |  ✓  |  ✓  |
/// | completed          |     |     |     |     |     |     |     |     |
/// | declined           |     |     |     |     |     |     |     |     |
/// | cancelled          |     |     |     |     |     |     |     |     |
///
/// Why: `accepted`/`declined` are the organisation's one answer to the referral, so they come
/// from `received` only (declined maps to Task `rejected`, which FHIR allows only before work
/// starts). After acceptance a link worker's steps come in any order and repeat (several
/// sessions attended or missed, another failed phone call, contact made after failed attempts),
/// so we do not police them. `completed` means the agreed support ended as planned, which cannot
/// follow straight on from not reaching the person (report `contacted`/`attended` first, or
/// `cancelled`). `cancelled` is possible from every open state, including `received` (the GP
/// practice revokes the referral before the organisation answers). Nothing follows the three
/// terminal states, and nothing ever goes back to `received`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VcsStatus {
    /// Initial: delivered, not yet answered. Never reported by a VCS organisation.
    Received,
    Accepted,
    Declined,
    Contacted,
    UnableToContact,
    Attended,
    DidNotAttend,
    Completed,
    Cancelled,
}

impl VcsStatus {
    /// Every status, in journey order.
    pub const ALL: [VcsStatus; 9] = [
        VcsStatus::Received,
        VcsStatus::Accepted,
        VcsStatus::Declined,
        VcsStatus::Contacted,
        VcsStatus::UnableToContact,
        VcsStatus::Attended,
        VcsStatus::DidNotAttend,
        VcsStatus::Completed,
        VcsStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            VcsStatus::Received => "received",
            VcsStatus::Accepted => "accepted",
            VcsStatus::Declined => "declined",
            VcsStatus::Contacted => "contacted",
            VcsStatus::UnableToContact => "unable-to-contact",
            VcsStatus::Attended => "attended",
            VcsStatus::DidNotAttend => "did-not-attend",
            VcsStatus::Completed => "completed",
            VcsStatus::Cancelled => "cancelled",
        }
    }

    /// The status named `s` (exact, lower case, as in the API), `received` included.
    pub fn parse(s: &str) -> Option<Self> {
        VcsStatus::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Statuses the GP practice cannot act on without an explanation; they map to the Task
    /// statuses for which SP-ReferralTask requires `statusReason.text` (sp-task-1).
    pub fn needs_reason(self) -> bool {
        matches!(
            self,
            VcsStatus::Declined | VcsStatus::UnableToContact | VcsStatus::Cancelled
        )
    }

    /// No status may follow these.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            VcsStatus::Completed | VcsStatus::Declined | VcsStatus::Cancelled
        )
    }

    /// Whether `next` may follow `self`; see the table on the type.
    pub fn can_become(self, next: VcsStatus) -> bool {
        use VcsStatus::*;
        match self {
            Completed | Declined | Cancelled => false,
            Received => matches!(next, Accepted | Declined | Cancelled),
            UnableToContact => matches!(
                next,
                Contacted | UnableToContact | Attended | DidNotAttend | Cancelled
            ),
            Accepted | Contacted | Attended | DidNotAttend => matches!(
                next,
                Contacted | UnableToContact | Attended | DidNotAttend | Completed | Cancelled
            ),
        }
    }

    /// The FHIR Task status for this VCS status (ValueSet referral-task-status).
    pub fn task_status(self) -> &'static str {
        match self {
            VcsStatus::Received => "requested",
            VcsStatus::Accepted => "accepted",
            VcsStatus::Declined => "rejected",
            VcsStatus::Contacted | VcsStatus::Attended | VcsStatus::DidNotAttend => "in-progress",
            VcsStatus::UnableToContact => "failed",
            VcsStatus::Completed => "completed",
            VcsStatus::Cancelled => "cancelled",
        }
    }

    /// ServiceRequest.status that follows, if it changes: the referral is done when the support
    /// completes and revoked when it is cancelled. A declined referral stays `active` so that the
    /// GP practice can send the person elsewhere.
    pub fn service_request_status(self) -> Option<&'static str> {
        match self {
            VcsStatus::Completed => Some("completed"),
            VcsStatus::Cancelled => Some("revoked"),
            _ => None,
        }
    }

    /// Task.businessStatus code and display from our CodeSystem referral-business-status, for
    /// the steps Task.status alone cannot tell apart. The code system's `declined` means the
    /// *person* declined, not the organisation, so our `Declined` (Task rejected) carries none.
    pub fn business_status(self) -> Option<(&'static str, &'static str)> {
        match self {
            VcsStatus::Contacted => Some(("contacted", "Contacted")),
            VcsStatus::UnableToContact => Some(("unable-to-contact", "Unable to contact")),
            VcsStatus::Attended => Some(("attended", "Attended")),
            VcsStatus::DidNotAttend => Some(("did-not-attend", "Did not attend")),
            VcsStatus::Completed => Some(("completed", "Support completed")),
            _ => None,
        }
    }

    /// Statuses in which the organisation is working with the person (execution has started).
    fn is_under_way(self) -> bool {
        !matches!(self, VcsStatus::Received | VcsStatus::Declined) && !self.is_terminal()
    }
}

/// A checked status report from a VCS organisation.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusUpdate {
    pub status: VcsStatus,
    pub reason: Option<String>,
    pub note: Option<String>,
    pub occurred_at: DateTime<FixedOffset>,
}

/// Parses and checks a status request body (already checked against the JSON Schema by the
/// caller; the rules are checked again here so that this function is safe on its own).
pub fn parse_status_update(body: &Value) -> Result<StatusUpdate, FieldError> {
    let obj = object(body, &["status", "reason", "note", "occurred_at"])?;
    let status = parse_reported_status(obj)?;
    let reason = optional_text(obj, "reason", MAX_REASON_CHARS)?;
    if status.needs_reason() && reason.is_none() {
        return Err(FieldError::new(
            "reason",
            format!(
                "a reason is required when the status is {}: say why, in words the GP practice can pass on",
                status.as_str()
            ),
        ));
    }
    Ok(StatusUpdate {
        status,
        reason,
        note: optional_text(obj, "note", MAX_NOTE_CHARS)?,
        occurred_at: required_time(obj, "occurred_at")?,
    })
}

/// `status`: one of the statuses a VCS organisation may report (not `received`).
fn parse_reported_status(obj: &Map<String, Value>) -> Result<VcsStatus, FieldError> {
    let reportable = "accepted, declined, contacted, unable-to-contact, attended, did-not-attend, completed or cancelled";
    let raw = required_str(obj, "status")?;
    match VcsStatus::parse(raw) {
        Some(VcsStatus::Received) => Err(FieldError::new(
            "status",
            format!(
                "received is where every referral starts and cannot be reported; use {reportable}"
            ),
        )),
        Some(status) => Ok(status),
        None => Err(FieldError::new(
            "status",
            format!("unknown status {raw:?}; use {reportable}"),
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Task
// ---------------------------------------------------------------------------------------------

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

/// The next version of the Task after a status update. Keeps everything else (id, output,
/// earlier notes); `now` is when the gateway records it (`lastModified`), `occurred_at` when it
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
    set_or_remove(
        obj,
        "statusReason",
        update.reason.as_ref().map(|text| json!({ "text": text })),
    );
    if let Some(text) = &update.note {
        append_note(obj, text, update.occurred_at);
    }
    obj.insert("lastModified".into(), json!(utc_text(now)));
    update_execution_period(obj, update);
    next
}

fn business_status_concept(status: VcsStatus) -> Option<Value> {
    status.business_status().map(|(code, display)| {
        json!({"coding": [{"system": BUSINESS_STATUS, "code": code, "display": display}]})
    })
}

/// Notes accumulate: each is part of the story the GP practice reads, with the time it is about.
fn append_note(obj: &mut Map<String, Value>, text: &str, at: DateTime<FixedOffset>) {
    let mut annotation = json!({"time": fixed_text(at), "text": text});
    if let Some(owner) = obj.get("owner") {
        annotation["authorReference"] = owner.clone();
    }
    match obj.get_mut("note").and_then(Value::as_array_mut) {
        Some(notes) => notes.push(annotation),
        None => {
            obj.insert("note".into(), json!([annotation]));
        }
    }
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

// ---------------------------------------------------------------------------------------------
// Outcomes
// ---------------------------------------------------------------------------------------------

/// The wellbeing questionnaires a VCS organisation may report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Instrument {
    /// ONS personal well-being: 4 questions, 0-10 each, no total.
    Ons4,
    /// Warwick-Edinburgh Mental Wellbeing Scale: 14 items, 1-5 each, total 14-70.
    Wemwbs,
    /// Short WEMWBS: 7 items, 1-5 each, raw total 7-35 (and a metric score from a table).
    Swemwbs,
}

impl Instrument {
    pub const ALL: [Instrument; 3] = [Instrument::Ons4, Instrument::Wemwbs, Instrument::Swemwbs];

    pub fn as_str(self) -> &'static str {
        match self {
            Instrument::Ons4 => "ons4",
            Instrument::Wemwbs => "wemwbs",
            Instrument::Swemwbs => "swemwbs",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Instrument::ALL.into_iter().find(|i| i.as_str() == s)
    }

    /// The name people know it by, for messages.
    pub fn label(self) -> &'static str {
        match self {
            Instrument::Ons4 => "ONS4",
            Instrument::Wemwbs => "WEMWBS",
            Instrument::Swemwbs => "SWEMWBS",
        }
    }

    /// How many answers the questionnaire has.
    pub fn item_count(self) -> usize {
        match self {
            Instrument::Ons4 => ONS4_ITEMS.len(),
            Instrument::Wemwbs => 14,
            Instrument::Swemwbs => 7,
        }
    }

    /// The lowest and highest answer to one item.
    pub fn answer_range(self) -> (u8, u8) {
        match self {
            Instrument::Ons4 => (0, 10),
            Instrument::Wemwbs | Instrument::Swemwbs => (1, 5),
        }
    }
}

/// Whether the measure was taken at the start of support or later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Timepoint {
    Baseline,
    FollowUp,
}

impl Timepoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Timepoint::Baseline => "baseline",
            Timepoint::FollowUp => "follow-up",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Timepoint::Baseline, Timepoint::FollowUp]
            .into_iter()
            .find(|t| t.as_str() == s)
    }

    fn display(self) -> &'static str {
        match self {
            Timepoint::Baseline => "Baseline",
            Timepoint::FollowUp => "Follow-up",
        }
    }
}

/// A checked outcome report: the answers have the instrument's count and range.
#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeReport {
    pub instrument: Instrument,
    pub timepoint: Timepoint,
    pub answers: Vec<u8>,
    pub occurred_at: DateTime<FixedOffset>,
}

/// The ONS4 questions in the order the ONS asks them, which is the order of `answers`; each
/// becomes one Observation (ONS4 has no total).
const ONS4_ITEMS: [(&str, &str); 4] = [
    ("ons4-life-satisfaction", "ONS4 life satisfaction score"),
    ("ons4-worthwhile", "ONS4 worthwhile score"),
    ("ons4-happiness", "ONS4 happiness score"),
    ("ons4-anxiety", "ONS4 anxiety score"),
];

/// Parses and checks an outcome request body: answer count and range per instrument, with the
/// offending field named (`answers`, `answers[3]`).
pub fn parse_outcome_report(body: &Value) -> Result<OutcomeReport, FieldError> {
    let obj = object(body, &["instrument", "timepoint", "answers", "occurred_at"])?;
    let instrument = required_enum(
        obj,
        "instrument",
        Instrument::parse,
        "ons4, wemwbs or swemwbs",
    )?;
    let timepoint = required_enum(obj, "timepoint", Timepoint::parse, "baseline or follow-up")?;
    let answers = parse_answers(obj, instrument)?;
    Ok(OutcomeReport {
        instrument,
        timepoint,
        answers,
        occurred_at: required_time(obj, "occurred_at")?,
    })
}

fn parse_answers(obj: &Map<String, Value>, instrument: Instrument) -> Result<Vec<u8>, FieldError> {
    let items = obj
        .get("answers")
        .ok_or_else(|| FieldError::new("answers", "is required"))?
        .as_array()
        .ok_or_else(|| FieldError::new("answers", "must be an array of whole numbers"))?;
    let expected = instrument.item_count();
    if items.len() != expected {
        let order = match instrument {
            Instrument::Ons4 => " (life satisfaction, worthwhile, happiness, anxiety)",
            _ => "",
        };
        return Err(FieldError::new(
            "answers",
            format!(
                "{} takes exactly {expected} answers{order}; got {}",
                instrument.label(),
                items.len()
            ),
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, v)| parse_answer(v, i, instrument))
        .collect()
}

fn parse_answer(value: &Value, index: usize, instrument: Instrument) -> Result<u8, FieldError> {
    let (low, high) = instrument.answer_range();
    let field = format!("answers[{index}]");
    let message = || {
        format!(
            "must be a whole number from {low} to {high} ({}); got {value}",
            instrument.label()
        )
    };
    // JSON Schema counts 3.0 as an integer; so do we, to agree with the caller's schema check.
    let whole = value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= f64::from(u8::MAX))
            .map(|f| f as u64)
    });
    match whole.and_then(|n| u8::try_from(n).ok()) {
        Some(n) if (low..=high).contains(&n) => Ok(n),
        _ => Err(FieldError::new(field, message())),
    }
}

/// How many Observations `outcome_observations` makes for the instrument (so the caller can
/// assign ids first): one per ONS4 question, one for a WEMWBS or SWEMWBS questionnaire.
pub fn observation_count(instrument: Instrument) -> usize {
    match instrument {
        Instrument::Ons4 => ONS4_ITEMS.len(),
        Instrument::Wemwbs | Instrument::Swemwbs => 1,
    }
}

/// One score to be stored as one Observation.
struct Score {
    code: &'static str,
    display: &'static str,
    value: u32,
    /// Components beside the timepoint: item answers, the SWEMWBS metric score.
    extra_components: Vec<Value>,
}

/// The SP Outcome Observations for a report, in order, one per id (`ids` should hold
/// `observation_count(report.instrument)` ids; Observations without an id are not made, extra
/// ids are ignored). ONS4 gives its four questions in the order life satisfaction, worthwhile,
/// happiness, anxiety.
pub fn outcome_observations(
    report: &OutcomeReport,
    ids: &[String],
    referral_id: &str,
    patient_id: &str,
    vcs: &VcsConfig,
) -> Vec<Value> {
    scores(report)
        .into_iter()
        .zip(ids)
        .map(|(score, id)| observation(id, score, report, referral_id, patient_id, vcs))
        .collect()
}

fn scores(report: &OutcomeReport) -> Vec<Score> {
    let answers = &report.answers;
    match report.instrument {
        Instrument::Ons4 => ONS4_ITEMS
            .iter()
            .zip(answers)
            .map(|(&(code, display), &answer)| Score {
                code,
                display,
                value: u32::from(answer),
                extra_components: Vec::new(),
            })
            .collect(),
        Instrument::Wemwbs => vec![Score {
            code: "wemwbs-total",
            display: "WEMWBS total score",
            value: total(answers),
            extra_components: item_components("wemwbs", "WEMWBS", answers),
        }],
        Instrument::Swemwbs => {
            let raw = total(answers);
            let mut extra_components = item_components("swemwbs", "SWEMWBS", answers);
            // The metric score is what SWEMWBS results are compared on; the raw total stays the
            // value so that every measure keeps one integer shape (see profiles/README.md).
            if let Some(metric) = u8::try_from(raw).ok().and_then(swemwbs_metric_score) {
                extra_components.push(metric_component(metric));
            }
            vec![Score {
                code: "swemwbs-total",
                display: "SWEMWBS raw total score",
                value: raw,
                extra_components,
            }]
        }
    }
}

fn total(answers: &[u8]) -> u32 {
    answers.iter().map(|&a| u32::from(a)).sum()
}

/// Components `wemwbs-item-1`… carrying each answer, numbered as in the questionnaire.
fn item_components(prefix: &str, label: &str, answers: &[u8]) -> Vec<Value> {
    answers
        .iter()
        .enumerate()
        .map(|(i, &answer)| {
            let n = i + 1;
            json!({
                "code": {"coding": [{
                    "system": WELLBEING_MEASURE,
                    "code": format!("{prefix}-item-{n}"),
                    "display": format!("{label} item {n} score")
                }]},
                "valueInteger": answer
            })
        })
        .collect()
}

fn metric_component(metric: f64) -> Value {
    json!({
        "code": {"coding": [{
            "system": WELLBEING_MEASURE,
            "code": "swemwbs-metric",
            "display": "SWEMWBS metric score"
        }]},
        // component.value[x] has no decimal in R4; a dimensionless UCUM quantity carries it.
        "valueQuantity": {"value": metric, "unit": "score", "system": UCUM, "code": "{score}"}
    })
}

fn timepoint_component(timepoint: Timepoint) -> Value {
    json!({
        "code": {"coding": [{
            "system": WELLBEING_MEASURE,
            "code": "assessment-timepoint",
            "display": "Assessment timepoint"
        }]},
        "valueCodeableConcept": {"coding": [{
            "system": ASSESSMENT_TIMEPOINT,
            "code": timepoint.as_str(),
            "display": timepoint.display()
        }]}
    })
}

fn observation(
    id: &str,
    score: Score,
    report: &OutcomeReport,
    referral_id: &str,
    patient_id: &str,
    vcs: &VcsConfig,
) -> Value {
    let mut components = vec![timepoint_component(report.timepoint)];
    components.extend(score.extra_components);
    json!({
        "resourceType": "Observation",
        "id": id,
        "meta": {"profile": [sp_validator::SP_OUTCOME_OBSERVATION]},
        "basedOn": [reference("ServiceRequest", referral_id)],
        "status": "final",
        "category": [{"coding": [{
            "system": OBSERVATION_CATEGORY,
            "code": "survey",
            "display": "Survey"
        }]}],
        "code": {"coding": [{
            "system": WELLBEING_MEASURE,
            "code": score.code,
            "display": score.display
        }]},
        "subject": reference("Patient", patient_id),
        "effectiveDateTime": fixed_text(report.occurred_at),
        "performer": [organisation_reference(vcs)],
        "valueInteger": score.value,
        "component": components,
    })
}

/// SWEMWBS raw total (7–35) → metric score.
///
/// Source: Warwick Medical School, "SWEMWBS conversion table" (raw score → metric score), from
/// the Rasch analysis of SWEMWBS by Stewart-Brown et al. 2009 (Health and Quality of Life
/// Outcomes 7:15). The values must be checked against the table as published by Warwick Medical
/// School by a clinician before go-live.
pub fn swemwbs_metric_score(raw_total: u8) -> Option<f64> {
    const FIRST_RAW: u8 = 7;
    const METRIC: [f64; 29] = [
        7.00, 9.51, 11.25, 12.40, 13.33, 14.08, 14.75, 15.32, 15.84, 16.36, // raw 7-16
        16.88, 17.43, 17.98, 18.59, 19.25, 19.98, 20.73, 21.54, 22.35, 23.21, // raw 17-26
        24.11, 25.03, 26.02, 27.03, 28.13, 29.31, 30.70, 32.55, 35.00, // raw 27-35
    ];
    let index = raw_total.checked_sub(FIRST_RAW)?;
    METRIC.get(usize::from(index)).copied()
}

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

/// A literal reference to a resource the gateway stores.
fn reference(resource_type: &str, id: &str) -> Value {
    json!({ "reference": format!("{resource_type}/{id}") })
}

/// The VCS organisation as a logical reference: the gateway stores no Organization resource for
/// it, and its ODS code or charity number is what the GP system can recognise.
fn organisation_reference(vcs: &VcsConfig) -> Value {
    let mut reference = json!({"type": "Organization", "display": vcs.name});
    if let Some(identifier) = vcs.identifiers.first() {
        reference["identifier"] = json!({"system": identifier.system, "value": identifier.value});
    }
    reference
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

fn utc_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Keeps the sender's offset: "14:30+01:00" is what the link worker saw on the clock.
fn fixed_text(t: DateTime<FixedOffset>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The body as an object with no fields beyond `allowed`.
fn object<'a>(body: &'a Value, allowed: &[&str]) -> Result<&'a Map<String, Value>, FieldError> {
    let obj = body
        .as_object()
        .ok_or_else(|| FieldError::new("body", "must be a JSON object"))?;
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(unknown) => Err(FieldError::new(
            unknown.as_str(),
            format!("unknown field; allowed are {}", allowed.join(", ")),
        )),
        None => Ok(obj),
    }
}

fn required_str<'a>(obj: &'a Map<String, Value>, field: &str) -> Result<&'a str, FieldError> {
    match obj.get(field) {
        None | Some(Value::Null) => Err(FieldError::new(field, "is required")),
        Some(v) => v
            .as_str()
            .ok_or_else(|| FieldError::new(field, "must be a string")),
    }
}

fn required_enum<T>(
    obj: &Map<String, Value>,
    field: &str,
    parse: fn(&str) -> Option<T>,
    allowed: &str,
) -> Result<T, FieldError> {
    let raw = required_str(obj, field)?;
    parse(raw)
        .ok_or_else(|| FieldError::new(field, format!("unknown value {raw:?}; use {allowed}")))
}

/// An optional free text: absent, null and blank all mean "none"; kept trimmed.
fn optional_text(
    obj: &Map<String, Value>,
    field: &str,
    max_chars: usize,
) -> Result<Option<String>, FieldError> {
    let text = match obj.get(field) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.trim(),
        Some(_) => return Err(FieldError::new(field, "must be a string")),
    };
    if text.chars().count() > max_chars {
        return Err(FieldError::new(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    Ok((!text.is_empty()).then(|| text.to_string()))
}

/// An RFC 3339 date and time with an offset, e.g. `2026-11-23T14:30:00Z`.
fn required_time(
    obj: &Map<String, Value>,
    field: &str,
) -> Result<DateTime<FixedOffset>, FieldError> {
    let raw = required_str(obj, field)?;
    DateTime::parse_from_rfc3339(raw).map_err(|_| {
        FieldError::new(
            field,
            format!("must be an RFC 3339 date and time with a time zone, e.g. 2026-11-23T14:30:00Z; got {raw:?}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use chrono::TimeZone;
    use serde_json::json;
    use sp_validator::{Issue, Options, Validator, SP_OUTCOME_OBSERVATION, SP_REFERRAL_TASK};

    use super::*;
    use crate::config::{Config, DEMO_CONFIG};

    const STATUS_SCHEMA: &str = include_str!("../../profiles/vcs/status-update.v1.schema.json");
    const OUTCOME_SCHEMA: &str = include_str!("../../profiles/vcs/outcome-report.v1.schema.json");
    const RECORD_SCHEMA: &str = include_str!("../../profiles/referral-record.v1.schema.json");
    const OPENAPI: &str = include_str!("../../profiles/vcs/openapi.json");

    const OPTIONS: Options<'static> = Options {
        profiles_by_type: &[
            ("Task", SP_REFERRAL_TASK),
            ("Observation", SP_OUTCOME_OBSERVATION),
        ],
        root_profiles: &[],
    };

    fn validator() -> &'static Validator {
        static VALIDATOR: OnceLock<Validator> = OnceLock::new();
        VALIDATOR.get_or_init(|| Validator::bundled().expect("bundled definitions load"))
    }

    fn issues(resource: &Value) -> Vec<Issue> {
        validator().validate(resource, &OPTIONS)
    }

    fn errors(resource: &Value) -> Vec<Issue> {
        issues(resource)
            .into_iter()
            .filter(Issue::is_error)
            .collect()
    }

    fn show(issues: &[Issue]) -> String {
        issues
            .iter()
            .map(|i| {
                format!(
                    "{} {} at {} [{}]: {}",
                    i.severity.as_str(),
                    i.code.as_str(),
                    i.expression,
                    i.message_id,
                    i.diagnostics
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[track_caller]
    fn assert_valid(resource: &Value) {
        let errs = errors(resource);
        assert!(
            errs.is_empty(),
            "{}\n--- resource ---\n{}",
            show(&errs),
            serde_json::to_string_pretty(resource).unwrap_or_default()
        );
    }

    /// The keys of the error issues, for negative checks of our invariants.
    fn error_keys(resource: &Value) -> Vec<&'static str> {
        errors(resource).iter().map(|i| i.message_id).collect()
    }

    fn vcs() -> VcsConfig {
        let config = Config::from_toml_with_env(DEMO_CONFIG).expect("demo config");
        config
            .vcs
            .into_iter()
            .find(|v| v.id.as_str() == "carers-count")
            .expect("carers-count in the demo config")
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0)
            .single()
            .expect("valid time")
    }

    fn at(text: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(text).expect("RFC 3339")
    }

    fn update(status: VcsStatus, reason: Option<&str>, when: &str) -> StatusUpdate {
        StatusUpdate {
            status,
            reason: reason.map(str::to_string),
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

    // --- status vocabulary --------------------------------------------------------------------

    #[test]
    fn status_names_round_trip_and_match_serde() {
        for s in VcsStatus::ALL {
            assert_eq!(VcsStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).ok(), Some(json!(s.as_str())));
        }
        assert_eq!(VcsStatus::parse("Accepted"), None);
        assert_eq!(VcsStatus::parse("rejected"), None);
    }

    #[test]
    fn terminal_states_refuse_everything() {
        for from in [
            VcsStatus::Completed,
            VcsStatus::Declined,
            VcsStatus::Cancelled,
        ] {
            assert!(from.is_terminal());
            for to in VcsStatus::ALL {
                assert!(!from.can_become(to), "{} -> {}", from.as_str(), to.as_str());
            }
        }
    }

    #[test]
    fn transition_table() {
        use VcsStatus::*;
        let allowed = |from: VcsStatus| -> Vec<VcsStatus> {
            VcsStatus::ALL
                .into_iter()
                .filter(|&to| from.can_become(to))
                .collect()
        };
        assert_eq!(allowed(Received), vec![Accepted, Declined, Cancelled]);
        let working = vec![
            Contacted,
            UnableToContact,
            Attended,
            DidNotAttend,
            Completed,
            Cancelled,
        ];
        for from in [Accepted, Contacted, Attended, DidNotAttend] {
            assert_eq!(allowed(from), working, "from {}", from.as_str());
        }
        assert_eq!(
            allowed(UnableToContact),
            vec![
                Contacted,
                UnableToContact,
                Attended,
                DidNotAttend,
                Cancelled
            ]
        );
        // Nothing goes back to received, and the organisation answers the referral once.
        for from in VcsStatus::ALL {
            assert!(!from.can_become(Received));
            assert_eq!(from.can_become(Accepted), from == Received);
            assert_eq!(from.can_become(Declined), from == Received);
        }
        // The examples from the issue.
        assert!(!Completed.can_become(Accepted));
        assert!(Attended.can_become(Attended));
        assert!(DidNotAttend.can_become(DidNotAttend));
        assert!(UnableToContact.can_become(Contacted));
    }

    #[test]
    fn reasons_are_required_exactly_where_the_task_needs_one() {
        for s in VcsStatus::ALL {
            let expected = matches!(
                s,
                VcsStatus::Declined | VcsStatus::UnableToContact | VcsStatus::Cancelled
            );
            assert_eq!(s.needs_reason(), expected, "{}", s.as_str());
            // sp-task-1 wants statusReason.text on exactly these Task statuses.
            let task_needs = matches!(s.task_status(), "rejected" | "cancelled" | "failed");
            assert_eq!(s.needs_reason(), task_needs, "{}", s.as_str());
        }
    }

    #[test]
    fn mapping_per_status() {
        use VcsStatus::*;
        let table = [
            (Received, "requested", None, None),
            (Accepted, "accepted", None, None),
            (Declined, "rejected", None, None),
            (Contacted, "in-progress", Some("contacted"), None),
            (UnableToContact, "failed", Some("unable-to-contact"), None),
            (Attended, "in-progress", Some("attended"), None),
            (DidNotAttend, "in-progress", Some("did-not-attend"), None),
            (Completed, "completed", Some("completed"), Some("completed")),
            (Cancelled, "cancelled", None, Some("revoked")),
        ];
        for (status, task_status, business, service_request) in table {
            assert_eq!(status.task_status(), task_status, "{}", status.as_str());
            assert_eq!(
                status.business_status().map(|b| b.0),
                business,
                "{}",
                status.as_str()
            );
            assert_eq!(
                status.service_request_status(),
                service_request,
                "{}",
                status.as_str()
            );
        }
    }

    // --- status bodies --------------------------------------------------------------------

    #[test]
    fn parses_a_status_update() {
        let u = parse_status_update(&json!({
            "status": "contacted",
            "note": "  Phoned; first visit on Tuesday ",
            "occurred_at": "2026-10-07T10:15:00+01:00"
        }))
        .expect("valid");
        assert_eq!(u.status, VcsStatus::Contacted);
        assert_eq!(u.reason, None);
        assert_eq!(u.note.as_deref(), Some("Phoned; first visit on Tuesday"));
        assert_eq!(u.occurred_at, at("2026-10-07T10:15:00+01:00"));
        let u = parse_status_update(&json!({
            "status": "declined", "reason": "Group full", "note": null,
            "occurred_at": "2026-10-07T09:15:00Z"
        }))
        .expect("valid");
        assert_eq!(u.reason.as_deref(), Some("Group full"));
        assert_eq!(u.note, None);
    }

    #[track_caller]
    fn status_error(body: Value) -> FieldError {
        match parse_status_update(&body) {
            Ok(u) => panic!("accepted {body}: {u:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn status_updates_without_a_needed_reason_are_refused() {
        for s in VcsStatus::ALL.into_iter().filter(|s| s.needs_reason()) {
            for reason in [None, Some(json!(null)), Some(json!("")), Some(json!("   "))] {
                let mut body = json!({"status": s.as_str(), "occurred_at": "2026-10-07T10:15:00Z"});
                if let Some(r) = reason {
                    body["reason"] = r;
                }
                let e = status_error(body);
                assert_eq!(e.field, "reason", "{}: {}", s.as_str(), e.message);
                assert!(e.message.contains(s.as_str()), "{}", e.message);
            }
        }
    }

    #[test]
    fn bad_status_bodies_name_the_field() {
        let t = "2026-10-07T10:15:00Z";
        let cases = [
            (json!([]), "body"),
            (json!({"occurred_at": t}), "status"),
            (json!({"status": "received", "occurred_at": t}), "status"),
            (json!({"status": "rejected", "occurred_at": t}), "status"),
            (json!({"status": 3, "occurred_at": t}), "status"),
            (json!({"status": "accepted"}), "occurred_at"),
            (
                json!({"status": "accepted", "occurred_at": "2026-10-07"}),
                "occurred_at",
            ),
            (
                json!({"status": "accepted", "occurred_at": "2026-10-07T10:15:00"}),
                "occurred_at",
            ),
            (
                json!({"status": "accepted", "occurred_at": t, "reason": 5}),
                "reason",
            ),
            (
                json!({"status": "accepted", "occurred_at": t, "note": "x".repeat(4001)}),
                "note",
            ),
            (
                json!({"status": "declined", "occurred_at": t, "reason": "x".repeat(1001)}),
                "reason",
            ),
            (
                json!({"status": "accepted", "occurred_at": t, "when": t}),
                "when",
            ),
        ];
        for (body, field) in cases {
            let e = status_error(body.clone());
            assert_eq!(e.field, field, "{body}: {e}");
            assert!(!e.message.is_empty());
        }
    }

    // --- Task -----------------------------------------------------------------------------

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
            current = status;
        }
        assert_eq!(t["id"], "task-1");
        assert_eq!(t["lastModified"], "2026-11-23T12:00:00Z");
        assert_eq!(
            t["executionPeriod"],
            json!({"start": "2026-10-06T14:02:00+01:00", "end": "2026-11-18T16:20:00Z"})
        );
        let notes = t["note"].as_array().expect("notes");
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

    // --- outcome bodies -------------------------------------------------------------------

    fn outcome_body(instrument: &str, answers: Value) -> Value {
        json!({"instrument": instrument, "timepoint": "baseline", "answers": answers,
               "occurred_at": "2026-10-14T11:00:00+01:00"})
    }

    #[test]
    fn answers_within_range_are_accepted() {
        let cases = [
            ("ons4", vec![0, 10, 5, 7]),
            ("wemwbs", vec![1; 14]),
            ("wemwbs", vec![5; 14]),
            ("swemwbs", vec![1; 7]),
            ("swemwbs", vec![5, 4, 3, 2, 1, 2, 3]),
        ];
        for (instrument, answers) in cases {
            let r =
                parse_outcome_report(&outcome_body(instrument, json!(answers))).expect(instrument);
            assert_eq!(r.instrument.as_str(), instrument);
            assert_eq!(r.timepoint, Timepoint::Baseline);
            assert_eq!(r.answers, answers);
        }
        // 4.0 is a whole number for JSON Schema, and so for us.
        let r = parse_outcome_report(&outcome_body("ons4", json!([4.0, 5, 6, 7]))).expect("4.0");
        assert_eq!(r.answers[0], 4);
        let r = parse_outcome_report(&json!({"instrument": "ons4", "timepoint": "follow-up",
            "answers": [1, 2, 3, 4], "occurred_at": "2026-10-14T11:00:00Z"}))
        .expect("follow-up");
        assert_eq!(r.timepoint, Timepoint::FollowUp);
    }

    #[test]
    fn answers_out_of_range_or_miscounted_name_the_field() {
        let cases = [
            ("ons4", json!([4, 5, 6]), "answers"),
            ("ons4", json!([4, 5, 6, 7, 8]), "answers"),
            ("ons4", json!([4, 5, 6, 11]), "answers[3]"),
            ("ons4", json!([-1, 5, 6, 7]), "answers[0]"),
            ("ons4", json!([4, 5.5, 6, 7]), "answers[1]"),
            ("ons4", json!([4, "5", 6, 7]), "answers[1]"),
            ("wemwbs", json!(vec![3; 13]), "answers"),
            (
                "wemwbs",
                json!([3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 0]),
                "answers[13]",
            ),
            (
                "wemwbs",
                json!([3, 3, 6, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3]),
                "answers[2]",
            ),
            ("swemwbs", json!(vec![3; 14]), "answers"),
            ("swemwbs", json!([3, 3, 3, 3, 3, 3, 0]), "answers[6]"),
            ("swemwbs", json!([6, 3, 3, 3, 3, 3, 3]), "answers[0]"),
            ("swemwbs", json!(7), "answers"),
            ("ons5", json!([1, 2, 3, 4]), "instrument"),
        ];
        for (instrument, answers, field) in cases {
            let body = outcome_body(instrument, answers);
            match parse_outcome_report(&body) {
                Ok(r) => panic!("accepted {body}: {r:?}"),
                Err(e) => assert_eq!(e.field, field, "{body}: {e}"),
            }
        }
        let mut body = outcome_body("ons4", json!([1, 2, 3, 4]));
        body["timepoint"] = json!("week-6");
        assert_eq!(
            parse_outcome_report(&body).map_err(|e| e.field),
            Err("timepoint".into())
        );
        body["timepoint"] = json!("baseline");
        body["occurred_at"] = json!("yesterday");
        assert_eq!(
            parse_outcome_report(&body).map_err(|e| e.field),
            Err("occurred_at".into())
        );
        body["occurred_at"] = json!("2026-10-14T11:00:00Z");
        body["total"] = json!(10);
        assert_eq!(
            parse_outcome_report(&body).map_err(|e| e.field),
            Err("total".into())
        );
    }

    // --- SWEMWBS --------------------------------------------------------------------------

    #[test]
    fn swemwbs_table_endpoints_and_monotonicity() {
        assert_eq!(swemwbs_metric_score(7), Some(7.00));
        assert_eq!(swemwbs_metric_score(8), Some(9.51));
        assert_eq!(swemwbs_metric_score(24), Some(21.54));
        assert_eq!(swemwbs_metric_score(35), Some(35.00));
        for outside in [0, 6, 36, u8::MAX] {
            assert_eq!(swemwbs_metric_score(outside), None, "{outside}");
        }
        let scores: Vec<f64> = (7..=35).filter_map(swemwbs_metric_score).collect();
        assert_eq!(scores.len(), 29);
        assert!(scores.windows(2).all(|w| w[0] < w[1]), "{scores:?}");
        assert!(scores.iter().all(|s| (7.0..=35.0).contains(s)));
    }

    // --- Observations ---------------------------------------------------------------------

    fn observations_for(
        instrument: Instrument,
        answers: Vec<u8>,
        timepoint: Timepoint,
    ) -> Vec<Value> {
        let report = OutcomeReport {
            instrument,
            timepoint,
            answers,
            occurred_at: at("2026-10-14T11:00:00+01:00"),
        };
        let ids: Vec<String> = (0..observation_count(instrument))
            .map(|i| format!("obs-{i}"))
            .collect();
        outcome_observations(&report, &ids, "sr-1", "pat-1", &vcs())
    }

    fn component<'a>(obs: &'a Value, code: &str) -> Vec<&'a Value> {
        obs["component"]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .filter(|c| c["code"]["coding"][0]["code"] == code)
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn ons4_gives_four_valid_observations_in_question_order() {
        for answers in [vec![0, 0, 0, 0], vec![10, 10, 10, 10], vec![4, 6, 5, 7]] {
            let obs = observations_for(Instrument::Ons4, answers.clone(), Timepoint::Baseline);
            assert_eq!(obs.len(), 4);
            for (i, o) in obs.iter().enumerate() {
                assert_valid(o);
                assert_eq!(o["id"], format!("obs-{i}"));
                assert_eq!(o["valueInteger"], answers[i]);
                assert_eq!(o["code"]["coding"][0]["code"], ONS4_ITEMS[i].0);
                assert_eq!(o["component"].as_array().map(Vec::len), Some(1));
            }
        }
    }

    #[test]
    fn wemwbs_gives_one_valid_observation_with_items() {
        for answers in [
            vec![1; 14],
            vec![5; 14],
            vec![3, 4, 2, 5, 1, 3, 4, 2, 5, 1, 3, 4, 2, 5],
        ] {
            let obs = observations_for(Instrument::Wemwbs, answers.clone(), Timepoint::FollowUp);
            assert_eq!(obs.len(), 1);
            let o = &obs[0];
            assert_valid(o);
            assert_eq!(
                o["valueInteger"],
                answers.iter().map(|&a| u32::from(a)).sum::<u32>()
            );
            assert_eq!(o["component"].as_array().map(Vec::len), Some(15));
            assert_eq!(
                component(o, "wemwbs-item-14")[0]["valueInteger"],
                answers[13]
            );
            assert_eq!(
                component(o, "assessment-timepoint")[0]["valueCodeableConcept"]["coding"][0]
                    ["code"],
                "follow-up"
            );
            assert_eq!(o["basedOn"][0]["reference"], "ServiceRequest/sr-1");
            assert_eq!(o["subject"]["reference"], "Patient/pat-1");
            assert_eq!(o["performer"][0]["identifier"]["value"], "X1A2B");
            assert_eq!(o["effectiveDateTime"], "2026-10-14T11:00:00+01:00");
        }
    }

    #[test]
    fn swemwbs_gives_one_valid_observation_with_items_and_metric() {
        for answers in [vec![1; 7], vec![5; 7], vec![3, 4, 3, 4, 3, 4, 3]] {
            let raw: u8 = answers.iter().sum();
            let obs = observations_for(Instrument::Swemwbs, answers.clone(), Timepoint::Baseline);
            assert_eq!(obs.len(), 1);
            let o = &obs[0];
            assert_valid(o);
            assert_eq!(o["valueInteger"], raw);
            assert_eq!(o["component"].as_array().map(Vec::len), Some(9));
            let metric = component(o, "swemwbs-metric");
            assert_eq!(metric.len(), 1);
            assert_eq!(
                metric[0]["valueQuantity"]["value"].as_f64(),
                swemwbs_metric_score(raw)
            );
        }
    }

    #[test]
    fn every_possible_swemwbs_total_validates() {
        // Raw totals 7..=35, reached by raising one item at a time.
        let mut answers = vec![1u8; 7];
        for step in 0..=28 {
            if step > 0 {
                let i = (step - 1) % 7;
                answers[i] += 1;
            }
            let obs = observations_for(Instrument::Swemwbs, answers.clone(), Timepoint::FollowUp);
            assert_valid(&obs[0]);
        }
    }

    #[test]
    fn fewer_ids_give_fewer_observations() {
        let report = OutcomeReport {
            instrument: Instrument::Ons4,
            timepoint: Timepoint::Baseline,
            answers: vec![1, 2, 3, 4],
            occurred_at: at("2026-10-14T11:00:00Z"),
        };
        let ids = vec!["a".to_string(), "b".to_string()];
        assert_eq!(
            outcome_observations(&report, &ids, "sr", "p", &vcs()).len(),
            2
        );
        assert_eq!(observation_count(Instrument::Wemwbs), 1);
        assert_eq!(observation_count(Instrument::Swemwbs), 1);
        assert_eq!(observation_count(Instrument::Ons4), 4);
    }

    /// The invariants sp-obs-4..7 are really evaluated: broken variants of what we build fail
    /// with the right key.
    #[test]
    fn outcome_invariants_catch_broken_observations() {
        let skipped: Vec<&str> = validator()
            .skipped_constraints()
            .iter()
            .map(|(k, _)| k.as_str())
            .collect();
        for key in ["sp-obs-4", "sp-obs-5", "sp-obs-6", "sp-obs-7"] {
            assert!(
                !skipped.contains(&key),
                "{key} is not evaluated: {skipped:?}"
            );
        }
        let wemwbs =
            observations_for(Instrument::Wemwbs, vec![3; 14], Timepoint::Baseline).remove(0);
        let swemwbs =
            observations_for(Instrument::Swemwbs, vec![3; 7], Timepoint::Baseline).remove(0);
        let ons4 = observations_for(Instrument::Ons4, vec![3; 4], Timepoint::Baseline).remove(0);

        let mut two_timepoints = ons4.clone();
        let tp = two_timepoints["component"][0].clone();
        two_timepoints["component"]
            .as_array_mut()
            .expect("components")
            .push(tp);
        assert!(error_keys(&two_timepoints).contains(&"sp-obs-4"));

        let mut no_timepoint = wemwbs.clone();
        no_timepoint["component"]
            .as_array_mut()
            .expect("components")
            .remove(0);
        assert!(error_keys(&no_timepoint).contains(&"sp-obs-4"));

        let mut item_out_of_range = wemwbs.clone();
        item_out_of_range["component"][1]["valueInteger"] = json!(6);
        item_out_of_range["valueInteger"] = json!(45);
        assert!(error_keys(&item_out_of_range).contains(&"sp-obs-5"));

        let mut wrong_sum = wemwbs.clone();
        wrong_sum["valueInteger"] = json!(43);
        assert!(error_keys(&wrong_sum).contains(&"sp-obs-5"));

        let mut missing_item = swemwbs.clone();
        missing_item["component"]
            .as_array_mut()
            .expect("components")
            .remove(3);
        assert!(error_keys(&missing_item).contains(&"sp-obs-6"));

        let mut duplicate_item = swemwbs.clone();
        duplicate_item["component"][2]["code"] = duplicate_item["component"][1]["code"].clone();
        assert!(error_keys(&duplicate_item).contains(&"sp-obs-6"));

        let mut items_on_ons4 = ons4.clone();
        let item = swemwbs["component"][1].clone();
        items_on_ons4["component"]
            .as_array_mut()
            .expect("components")
            .push(item);
        assert!(error_keys(&items_on_ons4).contains(&"sp-obs-6"));

        let mut metric_on_wemwbs = wemwbs.clone();
        let metric = component(&swemwbs, "swemwbs-metric")[0].clone();
        metric_on_wemwbs["component"]
            .as_array_mut()
            .expect("components")
            .push(metric);
        assert!(error_keys(&metric_on_wemwbs).contains(&"sp-obs-7"));

        let mut metric_too_high = swemwbs.clone();
        let last = metric_too_high["component"]
            .as_array()
            .map(Vec::len)
            .unwrap_or(1)
            - 1;
        metric_too_high["component"][last]["valueQuantity"]["value"] = json!(35.5);
        assert!(error_keys(&metric_too_high).contains(&"sp-obs-7"));

        let mut unknown_timepoint = ons4.clone();
        unknown_timepoint["component"][0]["valueCodeableConcept"]["coding"][0]["code"] =
            json!("week-6");
        let errs = errors(&unknown_timepoint);
        assert!(
            errs.iter().any(|i| i.code.as_str() == "code-invalid"
                && i.expression == "Observation.component[0].valueCodeableConcept"),
            "{}",
            show(&errs)
        );

        let mut unknown_component = ons4;
        unknown_component["component"][0]["code"]["coding"][0]["code"] = json!("mood");
        let errs = errors(&unknown_component);
        assert!(
            errs.iter().any(|i| i.code.as_str() == "code-invalid"
                && i.expression == "Observation.component[0].code"),
            "{}",
            show(&errs)
        );
    }

    // --- profiles/examples ----------------------------------------------------------------

    fn example(name: &str) -> Value {
        let path = format!("{}/profiles/examples/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// The Observation and Task examples behave as `expected-results.json` says (the profile
    /// README table); the bundles and Patients belong to the referral side.
    #[test]
    fn observation_and_task_examples_meet_their_expectations() {
        let expected = example("expectations/expected-results.json");
        let ours = |name: &str| {
            name.contains("Observation")
                || name.contains("observation")
                || name.contains("Task")
                || name.contains("task")
        };
        let valid = expected["valid"].as_array().expect("valid list");
        let mut checked = 0;
        for name in valid.iter().filter_map(Value::as_str).filter(|n| ours(n)) {
            let errs = errors(&example(name));
            assert!(errs.is_empty(), "{name}:\n{}", show(&errs));
            checked += 1;
        }
        let invalid = expected["invalid"].as_object().expect("invalid map");
        for (name, want) in invalid.iter().filter(|(n, _)| ours(n)) {
            let errs = errors(&example(name));
            for issue in want["issues"].as_array().expect("issues") {
                let found = errs.iter().any(|i| {
                    i.code.as_str() == issue["code"]
                        && i.expression == issue["expression"]
                        && issue.get("key").is_none_or(|k| *k == i.message_id)
                });
                assert!(found, "{name}: expected {issue}, got:\n{}", show(&errs));
            }
            checked += 1;
        }
        assert!(checked >= 20, "only {checked} examples checked");
    }

    // --- JSON Schemas and OpenAPI ---------------------------------------------------------

    fn schema(text: &str) -> jsonschema::Validator {
        let schema: Value = serde_json::from_str(text).expect("schema is JSON");
        jsonschema::validator_for(&schema).expect("schema compiles")
    }

    #[track_caller]
    fn check_schema(text: &str, good: &[Value], bad: &[Value]) {
        let v = schema(text);
        for body in good {
            let errs: Vec<String> = v.iter_errors(body).map(|e| e.to_string()).collect();
            assert!(errs.is_empty(), "{body} refused: {errs:?}");
        }
        for body in bad {
            assert!(!v.is_valid(body), "{body} accepted");
        }
    }

    #[test]
    fn status_schema_accepts_good_and_refuses_bad_bodies() {
        let t = "2026-10-07T10:15:00+01:00";
        let good: Vec<Value> = VcsStatus::ALL
            .into_iter()
            .filter(|s| *s != VcsStatus::Received)
            .map(|s| json!({"status": s.as_str(), "reason": "Because", "occurred_at": t}))
            .chain([
                json!({"status": "accepted", "occurred_at": "2026-10-07T10:15:00Z"}),
                json!({"status": "attended", "note": "Came to the group", "reason": null, "occurred_at": "2026-10-07T10:15:00.250Z"}),
            ])
            .collect();
        let bad = [
            json!({"status": "received", "occurred_at": t}),
            json!({"status": "rejected", "occurred_at": t}),
            json!({"status": "accepted"}),
            json!({"occurred_at": t}),
            json!({"status": "declined", "occurred_at": t}),
            json!({"status": "cancelled", "reason": null, "occurred_at": t}),
            json!({"status": "unable-to-contact", "reason": "", "occurred_at": t}),
            json!({"status": "unable-to-contact", "reason": "   ", "occurred_at": t}),
            json!({"status": "accepted", "occurred_at": "2026-10-07"}),
            json!({"status": "accepted", "occurred_at": "2026-10-07T10:15:00"}),
            json!({"status": "accepted", "occurred_at": t, "extra": 1}),
            json!({"status": "accepted", "occurred_at": t, "note": 3}),
            json!([]),
        ];
        check_schema(STATUS_SCHEMA, &good, &bad);
        // What the schema lets through, the parser takes too.
        for body in &good {
            assert!(parse_status_update(body).is_ok(), "{body}");
        }
    }

    #[test]
    fn outcome_schema_accepts_good_and_refuses_bad_bodies() {
        let body = |instrument: &str, answers: Value| outcome_body(instrument, answers);
        let good = [
            body("ons4", json!([0, 10, 5, 7])),
            body("wemwbs", json!([1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2, 3, 4])),
            body("swemwbs", json!([5, 5, 5, 5, 5, 5, 5])),
            json!({"instrument": "swemwbs", "timepoint": "follow-up", "answers": [1, 1, 1, 1, 1, 1, 1], "occurred_at": "2026-11-18T10:30:00Z"}),
        ];
        let bad = [
            body("ons4", json!([0, 10, 5])),
            body("ons4", json!([0, 11, 5, 7])),
            body("ons4", json!([0, -1, 5, 7])),
            body("ons4", json!([0, 1.5, 5, 7])),
            body("wemwbs", json!(vec![3; 7])),
            body("wemwbs", json!([3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 0])),
            body("wemwbs", json!([3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 6])),
            body("swemwbs", json!(vec![3; 14])),
            body("swemwbs", json!([3, 3, 3, 3, 3, 3, 0])),
            body("ons5", json!([1, 2, 3, 4])),
            json!({"instrument": "ons4", "timepoint": "week-6", "answers": [1, 2, 3, 4], "occurred_at": "2026-11-18T10:30:00Z"}),
            json!({"instrument": "ons4", "timepoint": "baseline", "answers": [1, 2, 3, 4]}),
            json!({"instrument": "ons4", "timepoint": "baseline", "answers": [1, 2, 3, 4], "occurred_at": "2026-11-18T10:30:00Z", "total": 10}),
        ];
        check_schema(OUTCOME_SCHEMA, &good, &bad);
        for b in &good {
            assert!(parse_outcome_report(b).is_ok(), "{b}");
        }
        for b in &bad {
            assert!(parse_outcome_report(b).is_err(), "{b}");
        }
    }

    #[test]
    fn schema_examples_are_valid() {
        for text in [STATUS_SCHEMA, OUTCOME_SCHEMA] {
            let s: Value = serde_json::from_str(text).expect("JSON");
            let examples = s["examples"].as_array().expect("examples").clone();
            check_schema(text, &examples, &[]);
        }
    }

    #[test]
    fn openapi_document_parses_and_embeds_the_schemas() {
        let doc: Value = serde_json::from_str(OPENAPI).expect("openapi.json is JSON");
        assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
        let paths = doc["paths"].as_object().expect("paths");
        for p in [
            "/referrals",
            "/referrals/{referral_id}",
            "/referrals/{referral_id}/status",
            "/referrals/{referral_id}/outcomes",
        ] {
            assert!(paths.contains_key(p), "{p}");
        }
        assert_eq!(
            doc["components"]["securitySchemes"]["bearerAuth"]["scheme"],
            "bearer"
        );
        // The document is served on its own, so it carries copies of the schemas: they must not
        // drift from the files (regenerate the copies when a schema changes).
        let schemas = &doc["components"]["schemas"];
        for (name, text) in [
            ("StatusUpdate", STATUS_SCHEMA),
            ("OutcomeReport", OUTCOME_SCHEMA),
            ("ReferralRecord", RECORD_SCHEMA),
        ] {
            let file: Value = serde_json::from_str(text).expect("JSON");
            assert_eq!(
                schemas[name], file,
                "components.schemas.{name} differs from its file"
            );
        }
        // Every internal $ref points at something.
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        for r in refs.iter().filter(|r| r.starts_with("#/components/")) {
            let pointer = r.trim_start_matches('#');
            assert!(doc.pointer(pointer).is_some(), "dangling {r}");
        }
        for code in ["401", "404", "409", "422"] {
            let response = &paths["/referrals/{referral_id}/status"]["post"]["responses"][code];
            assert!(
                response["content"]["application/problem+json"].is_object(),
                "{code}"
            );
        }
    }

    fn collect_refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|x| collect_refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
            _ => {}
        }
    }
}
