//! The two request bodies a VCS organisation sends: a status update
//! (`profiles/vcs/status-update.v1.schema.json`) and an outcome report
//! (`profiles/vcs/outcome-report.v1.schema.json`).
//!
//! The API checks each body against its JSON Schema first (that check names the field for the
//! 422); the body is then read once, by serde, into the types below. The types hold what the
//! rest of the gateway relies on (a reportable status, a reason where one is needed, answers in
//! count and range, a time with an offset), so they refuse what breaks it even when a caller
//! skipped the schema: a resource built from them would otherwise fail our profiles later, as a
//! 500 rather than a 422.

use chrono::{DateTime, Datelike, FixedOffset};
use serde::Deserialize;
use serde_json::Value;

use super::decline_reason::DeclineReason;
use super::instruments::{Instrument, Timepoint};
use super::vcs_status::VcsStatus;

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

/// A checked status report from a VCS organisation.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusUpdate {
    pub status: VcsStatus,
    /// The organisation's words; for a coded decline without words, the code's display.
    pub reason: Option<String>,
    /// Why a referral was declined, as a code (only with `declined`).
    pub reason_code: Option<DeclineReason>,
    pub note: Option<String>,
    pub occurred_at: DateTime<FixedOffset>,
}

/// A checked outcome report: the answers have the instrument's count and range.
#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeReport {
    pub instrument: Instrument,
    pub timepoint: Timepoint,
    pub answers: Vec<u8>,
    pub occurred_at: DateTime<FixedOffset>,
}

/// The status body as its JSON Schema writes it. Every field is optional here so that a missing
/// one is reported by name (serde would only say which, not where).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusBody {
    #[serde(default)]
    status: Option<VcsStatus>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    reason_code: Option<DeclineReason>,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    occurred_at: Option<String>,
}

/// The outcome body as its JSON Schema writes it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OutcomeBody {
    #[serde(default)]
    instrument: Option<Instrument>,
    #[serde(default)]
    timepoint: Option<Timepoint>,
    #[serde(default)]
    answers: Option<Vec<Answer>>,
    #[serde(default)]
    occurred_at: Option<String>,
}

/// One answer as sent: any JSON number, checked against its instrument afterwards. JSON Schema
/// counts 3.0 as an integer; so do we, to agree with the caller's schema check.
#[derive(Deserialize)]
#[serde(transparent)]
struct Answer(f64);

/// Reads a status request body (already checked against the JSON Schema by the caller).
pub fn parse_status_update(body: &Value) -> Result<StatusUpdate, FieldError> {
    StatusUpdate::try_from(read::<StatusBody>(body)?)
}

/// Reads an outcome request body: answer count and range per instrument, with the offending
/// field named (`answers`, `answers[3]`).
pub fn parse_outcome_report(body: &Value) -> Result<OutcomeReport, FieldError> {
    OutcomeReport::try_from(read::<OutcomeBody>(body)?)
}

/// Deserializes `body`, naming the field where serde stopped (`body` for the whole of it).
fn read<'de, T: Deserialize<'de>>(body: &'de Value) -> Result<T, FieldError> {
    // serde would also read a struct from an array, field by field in order.
    if !body.is_object() {
        return Err(FieldError::new("body", "must be a JSON object"));
    }
    serde_path_to_error::deserialize(body).map_err(|e| {
        let field = match e.path().to_string() {
            root if root == "." => "body".to_string(),
            path => path,
        };
        FieldError::new(field, e.into_inner().to_string())
    })
}

impl TryFrom<StatusBody> for StatusUpdate {
    type Error = FieldError;

    fn try_from(body: StatusBody) -> Result<Self, FieldError> {
        let status = reported_status(body.status)?;
        let reason_code = body.reason_code;
        if reason_code.is_some() && status != VcsStatus::Declined {
            return Err(FieldError::new(
                "reason_code",
                format!(
                    "a reason code goes with declined only; the status is {}",
                    status.as_str()
                ),
            ));
        }
        // A coded decline without words reads as the code's display.
        let reason = optional_text(body.reason, "reason", MAX_REASON_CHARS)?
            .or_else(|| reason_code.map(|code| code.display().to_string()));
        if status.needs_reason() && reason.is_none() {
            let or_code = if status == VcsStatus::Declined {
                " (or give a reason_code)"
            } else {
                ""
            };
            return Err(FieldError::new(
                "reason",
                format!(
                    "a reason is required when the status is {}: say why, in words the GP practice can pass on{or_code}",
                    status.as_str()
                ),
            ));
        }
        Ok(StatusUpdate {
            status,
            reason,
            reason_code,
            note: optional_text(body.note, "note", MAX_NOTE_CHARS)?,
            occurred_at: required_time(body.occurred_at, "occurred_at")?,
        })
    }
}

impl TryFrom<OutcomeBody> for OutcomeReport {
    type Error = FieldError;

    fn try_from(body: OutcomeBody) -> Result<Self, FieldError> {
        let instrument = body.instrument.ok_or_else(|| required("instrument"))?;
        let timepoint = body.timepoint.ok_or_else(|| required("timepoint"))?;
        let answers = answers(body.answers.ok_or_else(|| required("answers"))?, instrument)?;
        Ok(OutcomeReport {
            instrument,
            timepoint,
            answers,
            occurred_at: required_time(body.occurred_at, "occurred_at")?,
        })
    }
}

fn required(field: &str) -> FieldError {
    FieldError::new(field, "is required")
}

/// `status`: one of the statuses a VCS organisation may report (not `received`).
fn reported_status(status: Option<VcsStatus>) -> Result<VcsStatus, FieldError> {
    match status.ok_or_else(|| required("status"))? {
        VcsStatus::Received => Err(FieldError::new(
            "status",
            "received is where every referral starts and cannot be reported; use accepted, declined, contacted, unable-to-contact, attended, did-not-attend, completed or cancelled",
        )),
        status => Ok(status),
    }
}

fn answers(items: Vec<Answer>, instrument: Instrument) -> Result<Vec<u8>, FieldError> {
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
    let (low, high) = instrument.answer_range();
    items
        .into_iter()
        .enumerate()
        .map(|(i, Answer(value))| {
            let whole =
                (value.fract() == 0.0 && value >= f64::from(low) && value <= f64::from(high))
                    .then_some(value as u8);
            whole.ok_or_else(|| {
                FieldError::new(
                    format!("answers[{i}]"),
                    format!(
                        "must be a whole number from {low} to {high} ({}); got {value}",
                        instrument.label()
                    ),
                )
            })
        })
        .collect()
}

/// An optional free text: absent, null and blank all mean "none"; kept trimmed.
fn optional_text(
    text: Option<String>,
    field: &str,
    max_chars: usize,
) -> Result<Option<String>, FieldError> {
    let Some(text) = text else {
        return Ok(None);
    };
    let text = text.trim();
    if text.chars().count() > max_chars {
        return Err(FieldError::new(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    // FHIR strings (datatypes.html#string) may not hold control characters other than tab,
    // carriage return and line feed; the text goes into a Task note or a status reason.
    if let Some(position) = text.chars().position(forbidden_in_fhir_string) {
        return Err(FieldError::new(
            field,
            format!(
                "must not contain control characters (other than tab and line breaks); found one at character {}",
                position + 1
            ),
        ));
    }
    Ok((!text.is_empty()).then(|| text.to_string()))
}

/// What the validator refuses in a FHIR `string`: control characters but tab, CR and LF.
fn forbidden_in_fhir_string(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\r' | '\n')
}

/// The years a FHIR `dateTime` and `instant` can write (`0001` to `9999`).
const FHIR_YEARS: std::ops::RangeInclusive<i32> = 1..=9999;
/// The widest offset a FHIR `dateTime` can write: `-14:00` to `+14:00` (seconds east).
const FHIR_MAX_OFFSET_SECONDS: i32 = 14 * 3600;

/// An RFC 3339 date and time with an offset, e.g. `2026-11-23T14:30:00Z`.
fn required_time(text: Option<String>, field: &str) -> Result<DateTime<FixedOffset>, FieldError> {
    let raw = text.ok_or_else(|| required(field))?;
    let at = DateTime::parse_from_rfc3339(&raw).map_err(|_| {
        FieldError::new(
            field,
            format!("must be an RFC 3339 date and time with a time zone, e.g. 2026-11-23T14:30:00Z; got {raw:?}"),
        )
    })?;
    // RFC 3339 allows what FHIR cannot write: year 0000, offsets beyond ±14:00, and times whose
    // UTC instant falls outside years 1 to 9999 (the gateway records instants in UTC).
    if at.offset().local_minus_utc().abs() > FHIR_MAX_OFFSET_SECONDS {
        return Err(FieldError::new(
            field,
            format!("the time zone offset must be between -14:00 and +14:00; got {raw:?}"),
        ));
    }
    let utc_year = at.naive_utc().year();
    if !FHIR_YEARS.contains(&at.year()) || !FHIR_YEARS.contains(&utc_year) {
        return Err(FieldError::new(
            field,
            format!("must fall in the years 0001 to 9999; got {raw:?}"),
        ));
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const STATUS_SCHEMA: &str = include_str!("../../profiles/vcs/status-update.v1.schema.json");
    const OUTCOME_SCHEMA: &str = include_str!("../../profiles/vcs/outcome-report.v1.schema.json");
    const RECORD_SCHEMA: &str = include_str!("../../profiles/referral-record.v1.schema.json");
    const OPENAPI: &str = include_str!("../../profiles/vcs/openapi.json");

    fn at(text: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(text).expect("RFC 3339")
    }

    // --- status bodies --------------------------------------------------------------------

    #[test]
    fn parses_status_updates() {
        // (body, status, reason, note, occurred_at)
        let table = [
            (
                json!({"status": "contacted", "note": "  Phoned; first visit on Tuesday ",
                       "occurred_at": "2026-10-07T10:15:00+01:00"}),
                VcsStatus::Contacted,
                None,
                Some("Phoned; first visit on Tuesday"),
                "2026-10-07T10:15:00+01:00",
            ),
            (
                json!({"status": "declined", "reason": "Group full", "note": null,
                       "occurred_at": "2026-10-07T09:15:00Z"}),
                VcsStatus::Declined,
                Some("Group full"),
                None,
                "2026-10-07T09:15:00Z",
            ),
            (
                json!({"status": "attended", "note": "   ", "reason": null,
                       "occurred_at": "2026-10-07T10:15:00.250Z"}),
                VcsStatus::Attended,
                None,
                None,
                "2026-10-07T10:15:00.250Z",
            ),
        ];
        for (body, status, reason, note, occurred_at) in table {
            let u = parse_status_update(&body).unwrap_or_else(|e| panic!("{body}: {e}"));
            assert_eq!(u.status, status, "{body}");
            assert_eq!(u.reason.as_deref(), reason, "{body}");
            assert_eq!(u.note.as_deref(), note, "{body}");
            assert_eq!(u.occurred_at, at(occurred_at), "{body}");
        }
    }

    #[test]
    fn declines_may_carry_a_coded_reason() {
        let t = "2026-10-07T09:15:00Z";
        // Words and a code: both kept.
        let u = parse_status_update(&json!({"status": "declined", "reason": "Our group is full",
            "reason_code": "no-capacity", "occurred_at": t}))
        .expect("coded decline");
        assert_eq!(u.reason_code, Some(DeclineReason::NoCapacity));
        assert_eq!(u.reason.as_deref(), Some("Our group is full"));
        // A code alone: the GP practice reads the code's display.
        for code in DeclineReason::ALL {
            for reason in [None, Some(json!(null)), Some(json!("  "))] {
                let mut body =
                    json!({"status": "declined", "reason_code": code.as_str(), "occurred_at": t});
                if let Some(r) = reason {
                    body["reason"] = r;
                }
                let u = parse_status_update(&body).unwrap_or_else(|e| panic!("{body}: {e}"));
                assert_eq!(u.reason_code, Some(code));
                assert_eq!(u.reason.as_deref(), Some(code.display()));
            }
        }
        // Words alone, as before: no code.
        let u = parse_status_update(
            &json!({"status": "declined", "reason": "Full", "reason_code": null, "occurred_at": t}),
        )
        .expect("uncoded decline");
        assert_eq!(u.reason_code, None);
    }

    #[test]
    fn fhir_edges_are_accepted() {
        for (note, occurred_at) in [
            ("Line one\r\n\tLine two", "2026-10-07T10:15:00+14:00"),
            ("Siân’s group, Llŷr\u{a0}Hall", "0001-01-01T00:00:00Z"),
            ("ok", "9999-12-31T23:59:59Z"),
            ("ok", "2026-10-07T10:15:00-14:00"),
        ] {
            let body = json!({"status": "contacted", "note": note, "occurred_at": occurred_at});
            let u = parse_status_update(&body).unwrap_or_else(|e| panic!("{body}: {e}"));
            assert_eq!(u.note.as_deref(), Some(note));
        }
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
            (json!(["accepted", null, null, t]), "body"),
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
            // Matches the schema's pattern, but there is no 30 February.
            (
                json!({"status": "accepted", "occurred_at": "2026-02-30T10:15:00Z"}),
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
            // Valid RFC 3339 that FHIR cannot write: year 0000, an offset past ±14:00, an
            // instant past 9999 in UTC.
            (
                json!({"status": "accepted", "occurred_at": "0000-01-01T00:00:00Z"}),
                "occurred_at",
            ),
            (
                json!({"status": "accepted", "occurred_at": "9999-12-31T23:59:59-23:59"}),
                "occurred_at",
            ),
            (
                json!({"status": "accepted", "occurred_at": "2026-10-07T10:15:00+14:01"}),
                "occurred_at",
            ),
            (
                json!({"status": "accepted", "occurred_at": "9999-12-31T23:00:00-02:00"}),
                "occurred_at",
            ),
            (
                json!({"status": "accepted", "occurred_at": "0001-01-01T00:30:00+01:00"}),
                "occurred_at",
            ),
            // Control characters break a FHIR string (tab and line breaks do not).
            (
                json!({"status": "accepted", "occurred_at": t, "note": "NHS 943 476 5919\u{1}"}),
                "note",
            ),
            (
                json!({"status": "declined", "occurred_at": t, "reason": "full\u{7f}"}),
                "reason",
            ),
            // A coded reason goes with declined only, and only from our CodeSystem.
            (
                json!({"status": "accepted", "occurred_at": t, "reason_code": "no-capacity"}),
                "reason_code",
            ),
            (
                json!({"status": "cancelled", "occurred_at": t, "reason": "Moved away", "reason_code": "other"}),
                "reason_code",
            ),
            (
                json!({"status": "declined", "occurred_at": t, "reason_code": "full"}),
                "reason_code",
            ),
            (
                json!({"status": "declined", "occurred_at": t, "reason_code": 3}),
                "reason_code",
            ),
            (
                json!({"status": "accepted", "occurred_at": t, "note": "a\u{0085}b"}),
                "note",
            ),
        ];
        for (body, field) in cases {
            let e = status_error(body.clone());
            assert_eq!(e.field, field, "{body}: {e}");
            assert!(!e.message.is_empty());
        }
    }

    // --- outcome bodies -------------------------------------------------------------------

    fn outcome_body(instrument: &str, answers: Value) -> Value {
        json!({"instrument": instrument, "timepoint": "baseline", "answers": answers,
               "occurred_at": "2026-10-14T11:00:00+01:00"})
    }

    #[test]
    fn answers_within_range_are_accepted() {
        let cases = [
            ("ons4", json!([0, 10, 5, 7]), vec![0, 10, 5, 7]),
            ("wemwbs", json!(vec![1; 14]), vec![1; 14]),
            ("wemwbs", json!(vec![5; 14]), vec![5; 14]),
            ("swemwbs", json!(vec![1; 7]), vec![1; 7]),
            (
                "swemwbs",
                json!([5, 4, 3, 2, 1, 2, 3]),
                vec![5, 4, 3, 2, 1, 2, 3],
            ),
            // 4.0 is a whole number for JSON Schema, and so for us.
            ("ons4", json!([4.0, 5, 6, 7]), vec![4, 5, 6, 7]),
        ];
        for (instrument, sent, answers) in cases {
            let r = parse_outcome_report(&outcome_body(instrument, sent)).expect(instrument);
            assert_eq!(r.instrument.as_str(), instrument);
            assert_eq!(r.timepoint, Timepoint::Baseline);
            assert_eq!(r.answers, answers);
            assert_eq!(r.occurred_at, at("2026-10-14T11:00:00+01:00"));
        }
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
        let good = outcome_body("ons4", json!([1, 2, 3, 4]));
        let changed = |key: &str, value: Value| {
            let mut body = good.clone();
            body[key] = value;
            body
        };
        let without = |key: &str| {
            let mut body = good.clone();
            body.as_object_mut().map(|o| o.remove(key));
            body
        };
        let cases = [
            (changed("timepoint", json!("week-6")), "timepoint"),
            (changed("occurred_at", json!("yesterday")), "occurred_at"),
            (changed("total", json!(10)), "total"),
            (without("instrument"), "instrument"),
            (without("timepoint"), "timepoint"),
            (without("answers"), "answers"),
            (without("occurred_at"), "occurred_at"),
            (json!("ons4"), "body"),
        ];
        for (body, field) in cases {
            assert_eq!(
                parse_outcome_report(&body).map_err(|e| e.field),
                Err(field.into()),
                "{body}"
            );
        }
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
                json!({"status": "declined", "reason_code": "outside-area", "occurred_at": t}),
                json!({"status": "declined", "reason": "Full", "reason_code": "no-capacity", "occurred_at": t}),
                json!({"status": "declined", "reason": "Full", "reason_code": null, "occurred_at": t}),
                json!({"status": "accepted", "reason_code": null, "occurred_at": t}),
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
            json!({"status": "declined", "reason_code": null, "occurred_at": t}),
            json!({"status": "declined", "reason_code": "full", "occurred_at": t}),
            json!({"status": "accepted", "reason_code": "no-capacity", "occurred_at": t}),
            json!({"status": "cancelled", "reason": "Moved", "reason_code": "other", "occurred_at": t}),
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
        // What the schema lets through, the parser takes too; what it refuses, so does the parser.
        for body in &good {
            assert!(parse_status_update(body).is_ok(), "{body}");
        }
        for body in &bad {
            assert!(parse_status_update(body).is_err(), "{body}");
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
            "/referrals/{referral_id}/onward",
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
            (
                "OnwardReferral",
                include_str!("../../profiles/vcs/onward-referral.v1.schema.json"),
            ),
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
