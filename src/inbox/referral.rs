//! One referral: what its record holds for the organisation, the history of its status, the
//! actions its status allows, and the wellbeing questionnaires.

use maud::{html, Markup};
use serde_json::Value;

use super::{error_summary, field_error, layout, status_label, FieldError, SignedIn};
use crate::translate::decline_reason::DeclineReason;
use crate::translate::instruments::Instrument;
use crate::translate::vcs_status::VcsStatus;

/// An action a person may take: the status it reports and its button's label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action {
    pub status: VcsStatus,
    pub label: &'static str,
}

/// Every action the inbox offers, in journey order (`cancelled` is the GP's, never offered).
pub const ACTIONS: [Action; 7] = [
    Action {
        status: VcsStatus::Accepted,
        label: "Accept",
    },
    Action {
        status: VcsStatus::Declined,
        label: "Decline",
    },
    Action {
        status: VcsStatus::Contacted,
        label: "Contacted",
    },
    Action {
        status: VcsStatus::UnableToContact,
        label: "Unable to contact",
    },
    Action {
        status: VcsStatus::Attended,
        label: "Attended",
    },
    Action {
        status: VcsStatus::DidNotAttend,
        label: "Did not attend",
    },
    Action {
        status: VcsStatus::Completed,
        label: "Completed",
    },
];

impl Action {
    /// The actions a referral at `status` allows.
    pub fn allowed(status: VcsStatus) -> Vec<Action> {
        ACTIONS
            .into_iter()
            .filter(|a| status.can_become(a.status))
            .collect()
    }
}

/// One step of the status history (a Task version).
pub struct StatusEntry {
    pub at: String,
    pub status: String,
    pub reason: Option<String>,
}

/// What the referral page shows.
pub struct ReferralView<'a> {
    pub referral_id: &'a str,
    pub record: &'a Value,
    pub status: VcsStatus,
    pub history: Vec<StatusEntry>,
    pub errors: Vec<FieldError>,
    /// What the person typed, kept when the form comes back with errors.
    pub reason: &'a str,
    /// The decline reason chosen (a `decline-reason` code), kept the same way.
    pub reason_code: &'a str,
    pub note: &'a str,
    /// A confirmation to show at the top (after an action succeeded).
    pub done: Option<&'a str>,
    /// Whether to offer "Refer onward" (a link worker, the referral taken on and open).
    pub onward: bool,
}

fn text_at<'v>(record: &'v Value, pointer: &str) -> Option<&'v str> {
    record.pointer(pointer).and_then(Value::as_str)
}

/// The person's name as the record gives it.
pub fn person_name(record: &Value) -> String {
    let name: Vec<&str> = ["/patient/given_name", "/patient/family_name"]
        .iter()
        .filter_map(|p| text_at(record, p))
        .collect();
    if name.is_empty() {
        "Name not given".into()
    } else {
        name.join(" ")
    }
}

/// The needs as the record gives them, joined for a table cell.
pub fn needs(record: &Value) -> String {
    let needs: Vec<&str> = record["needs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| {
            n.get("display")
                .or_else(|| n.get("text"))
                .and_then(Value::as_str)
        })
        .collect();
    if needs.is_empty() {
        "Not given".into()
    } else {
        needs.join("; ")
    }
}

/// The referring practice as the record names it.
pub fn practice(record: &Value) -> String {
    text_at(record, "/referrer/practice_name")
        .or_else(|| text_at(record, "/referrer/practice_ods"))
        .unwrap_or("Not given")
        .to_string()
}

fn row(label: &str, value: Option<String>) -> Markup {
    html! {
        @if let Some(value) = value {
            div.summary-list-row {
                dt.summary-list-key { (label) }
                dd.summary-list-value { (value) }
            }
        }
    }
}

fn address(record: &Value) -> Option<String> {
    let address = record.pointer("/patient/address")?;
    let mut parts: Vec<&str> = address["lines"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    parts.extend(
        ["city", "postcode"]
            .iter()
            .filter_map(|k| address[*k].as_str()),
    );
    (!parts.is_empty()).then(|| parts.join(", "))
}

fn record_details(record: &Value) -> Markup {
    let text = |p: &str| text_at(record, p).map(str::to_string);
    let notes: Vec<&str> = record["notes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    html! {
        dl.summary-list {
            (row("Name", Some(person_name(record))))
            (row("Needs", Some(needs(record))))
            (row("Phone", text("/patient/phone")))
            (row("Email", text("/patient/email")))
            (row("Address", address(record)))
            (row("Date of birth", text("/patient/birth_date")))
            (row("NHS number", text("/patient/nhs_number")))
            (row("Referring practice", Some(practice(record))))
            (row("Referring clinician", text("/referrer/clinician_name")))
            (row("Service asked for", text("/service/name").or_else(|| text("/service/display"))))
            (row("Priority", text("/priority")))
            (row("Referred on", text("/created_at")))
            (row("GP practice's note", (!notes.is_empty()).then(|| notes.join(" "))))
        }
    }
}

pub(super) fn textarea(
    errors: &[FieldError],
    id: &str,
    label: &str,
    hint: &str,
    value: &str,
) -> Markup {
    let error = field_error(errors, id);
    html! {
        div.form-group.form-group--error[error.is_some()] {
            label.label for=(id) { (label) }
            div.hint id={ (id) "-hint" } { (hint) }
            @if let Some(e) = error {
                span.error-message id={ (id) "-error" } {
                    span.visually-hidden { "Error: " } (e.message)
                }
            }
            textarea.textarea.textarea--error[error.is_some()] id=(id) name=(id) rows="3"
                aria-describedby={ (id) "-hint" @if error.is_some() { " " (id) "-error" } } { (value) }
        }
    }
}

fn actions_form(view: &ReferralView<'_>, csrf: &str) -> Markup {
    let allowed = Action::allowed(view.status);
    html! {
        @if allowed.is_empty() {
            p.body { "This referral is closed: nothing more can be recorded." }
        } @else {
            form method="post" action={ "/inbox/referrals/" (view.referral_id) "/status" } novalidate {
                input type="hidden" name="csrf" value=(csrf);
                @if allowed.iter().any(|a| a.status == VcsStatus::Declined) {
                    (decline_reasons(&view.errors, view.reason_code))
                }
                (textarea(&view.errors, "reason", "Reason",
                    if allowed.iter().any(|a| a.status == VcsStatus::Declined) {
                        "If you decline, add words for the GP practice if the reason above does not say enough; they see it."
                    } else {
                        "Needed when you could not make contact; the GP practice sees it."
                    },
                    view.reason))
                (textarea(&view.errors, "note", "Note (optional)",
                    "Anything the GP practice should know.", view.note))
                div.button-group {
                    @for action in &allowed {
                        button.button.button--secondary[action.status != allowed[0].status]
                            type="submit" name="status" value=(action.status.as_str()) { (action.label) }
                    }
                }
            }
        }
    }
}

/// The coded reasons to decline (CodeSystem `decline-reason`), as radios: counted in the
/// commissioners' reports, never the words. Only read when the person presses Decline.
fn decline_reasons(errors: &[FieldError], chosen: &str) -> Markup {
    let error = field_error(errors, "reason_code");
    html! {
        div.form-group.form-group--error[error.is_some()] {
            fieldset.fieldset aria-describedby={ "reason_code-hint" @if error.is_some() { " reason_code-error" } } {
                legend.fieldset-legend { "If you decline, why?" }
                div.hint id="reason_code-hint" {
                    "Needed to decline. Commissioners see how many referrals were declined for each reason, never who or your words."
                }
                @if let Some(e) = error {
                    span.error-message id="reason_code-error" {
                        span.visually-hidden { "Error: " } (e.message)
                    }
                }
                div.radios {
                    @for (i, reason) in DeclineReason::ALL.into_iter().enumerate() {
                        @let id = if i == 0 { "reason_code".to_string() } else { format!("reason_code-{}", reason.as_str()) };
                        div.radios-item {
                            input.radios-input type="radio" id=(id) name="reason_code"
                                value=(reason.as_str()) checked[reason.as_str() == chosen];
                            label.label.radios-label for=(id) { (reason.display()) }
                        }
                    }
                }
            }
        }
    }
}

/// The questions of an instrument: ONS4's wording is Crown copyright under the Open Government
/// Licence; WEMWBS and SWEMWBS wording is licensed by the University of Warwick, so only item
/// numbers are shown (the person reads the items from the licensed form).
fn items(instrument: Instrument) -> Vec<String> {
    match instrument {
        Instrument::Ons4 => vec![
            "Overall, how satisfied are you with your life nowadays?".into(),
            "Overall, to what extent do you feel that the things you do in your life are worthwhile?".into(),
            "Overall, how happy did you feel yesterday?".into(),
            "Overall, how anxious did you feel yesterday?".into(),
        ],
        other => (1..=other.item_count()).map(|i| format!("Item {i}")).collect(),
    }
}

fn scale(instrument: Instrument) -> Vec<(u8, String)> {
    match instrument {
        Instrument::Ons4 => (0..=10)
            .map(|n| {
                let label = match n {
                    0 => "0 – not at all".to_string(),
                    10 => "10 – completely".to_string(),
                    n => n.to_string(),
                };
                (n, label)
            })
            .collect(),
        _ => [
            "None of the time",
            "Rarely",
            "Some of the time",
            "Often",
            "All of the time",
        ]
        .iter()
        .zip(1u8..)
        .map(|(label, n)| (n, format!("{n} – {label}")))
        .collect(),
    }
}

fn questionnaire(view: &ReferralView<'_>, csrf: &str, instrument: Instrument) -> Markup {
    let name = instrument.as_str();
    html! {
        details.details {
            summary.details-summary { span { "Record " (instrument.label()) } }
            form.details-text method="post" action={ "/inbox/referrals/" (view.referral_id) "/outcomes" } novalidate {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="instrument" value=(name);
                fieldset.fieldset {
                    legend.fieldset-legend { "When" }
                    div.radios.radios--inline {
                        @for (value, label) in [("baseline", "Baseline (start of support)"), ("follow-up", "Follow-up")] {
                            div.radios-item {
                                input.radios-input type="radio" id={ (name) "-timepoint-" (value) }
                                    name="timepoint" value=(value) checked[value == "baseline"];
                                label.label.radios-label for={ (name) "-timepoint-" (value) } { (label) }
                            }
                        }
                    }
                }
                @for (i, question) in items(instrument).iter().enumerate() {
                    fieldset.fieldset id={ (name) "-answer-" (i + 1) } {
                        legend.fieldset-legend { (i + 1) ". " (question) }
                        div.radios.radios--scale {
                            @for (n, label) in scale(instrument) {
                                div.radios-item {
                                    input.radios-input type="radio" id={ (name) "-a" (i + 1) "-" (n) }
                                        name={ "answer" (i + 1) } value=(n);
                                    label.label.radios-label for={ (name) "-a" (i + 1) "-" (n) } { (label) }
                                }
                            }
                        }
                    }
                }
                button.button type="submit" { "Save " (instrument.label()) }
            }
        }
    }
}

/// The referral page.
pub fn referral_page(view: &ReferralView<'_>, signed_in: &SignedIn<'_>) -> Markup {
    let name = person_name(view.record);
    let title = if view.errors.is_empty() {
        name.clone()
    } else {
        format!("Error: {name}")
    };
    layout(
        &title,
        Some(signed_in),
        html! {
            a.back-link href="/inbox" { "Back to referrals" }
            (error_summary(&view.errors))
            @if let Some(done) = view.done {
                div.notification role="status" { p.body { (done) } }
            }
            h1.heading-l { (name) }
            p.body { "Status: " strong.tag { (status_label(view.status)) } }
            h2.heading-m { "Referral" }
            (record_details(view.record))
            h2.heading-m { "What happens next" }
            (actions_form(view, signed_in.csrf))
            @if view.onward {
                a.button.button--secondary href={ "/inbox/referrals/" (view.referral_id) "/onward" } {
                    "Refer onward"
                }
            }
            @if !view.status.is_terminal() && view.status != VcsStatus::Received {
                h2.heading-m { "Wellbeing" }
                p.body { "Answered with the person, at the start of support and later." }
                @for instrument in Instrument::ALL {
                    (questionnaire(view, signed_in.csrf, instrument))
                }
            }
            h2.heading-m { "History" }
            ol.history {
                @for entry in &view.history {
                    li {
                        strong { (entry.status) } " – " (entry.at)
                        @if let Some(reason) = &entry.reason { br; (reason) }
                    }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_possible_actions_are_offered() {
        let labels = |s| {
            Action::allowed(s)
                .iter()
                .map(|a| a.label)
                .collect::<Vec<_>>()
        };
        assert_eq!(labels(VcsStatus::Received), ["Accept", "Decline"]);
        assert_eq!(
            labels(VcsStatus::Accepted),
            [
                "Contacted",
                "Unable to contact",
                "Attended",
                "Did not attend",
                "Completed"
            ]
        );
        assert!(!labels(VcsStatus::UnableToContact).contains(&"Completed"));
        assert!(labels(VcsStatus::Completed).is_empty());
        assert!(labels(VcsStatus::Cancelled).is_empty());
    }

    #[test]
    fn licensed_wording_is_not_carried() {
        assert!(items(Instrument::Ons4)[0].contains("satisfied"));
        assert_eq!(items(Instrument::Swemwbs).len(), 7);
        assert!(items(Instrument::Wemwbs)
            .iter()
            .all(|i| i.starts_with("Item ")));
        assert_eq!(scale(Instrument::Swemwbs).len(), 5);
        assert_eq!(scale(Instrument::Ons4).len(), 11);
    }
}
