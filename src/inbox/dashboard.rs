//! The operator pages (`/admin`): the overview (deliveries by state per organisation, the
//! queue, each webhook's health with **Enable**, the directory feeds), the dead letters with
//! **Retry** and **Recover**, intake refusals over time, and recent audit records. Same layout,
//! stylesheet and patterns as the inbox; every action is a form with the session's CSRF token.

use chrono::{DateTime, NaiveDate, Utc};
use maud::{html, Markup};

use super::{age, layout_in, Service, SignedIn};
use crate::config::FeedConfig;
use crate::store::{AuditRecord, Delivery, EndpointHealth, FeedOutcome, FeedPoll, OutboxStats};

/// The operator's service: its sections.
pub const OPERATOR: Service = Service {
    name: "Gateway operations",
    home: "/admin",
    sections: &[
        ("/admin", "Overview"),
        ("/admin/dead-letters", "Dead letters"),
        ("/admin/refusals", "Intake refusals"),
        ("/admin/audit", "Audit"),
    ],
};

/// What an action did, shown once after its redirect (each kind says its own words; only the
/// ids it names come from the address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    Retried(String),
    Recovered { vcs: String, messages: usize },
    Enabled(String),
}

fn notice(notice: Option<&Notice>) -> Markup {
    html! {
        @if let Some(n) = notice {
            div.notification role="status" {
                h2.heading-s { "Done" }
                p.body { @match n {
                    Notice::Retried(id) => { "Message " (id) " is back in the queue and will be sent now." }
                    Notice::Recovered { vcs, messages } => {
                        (messages) " dead " (if *messages == 1 { "message" } else { "messages" })
                        " of " (vcs) " went back in the queue."
                    }
                    Notice::Enabled(vcs) => { "The endpoint of " (vcs) " is switched on: its waiting messages go out now." }
                } }
            }
        }
    }
}

fn time(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(
        || "Never".to_string(),
        |at| at.format("%-d %b %Y %H:%M UTC").to_string(),
    )
}

fn hidden_csrf(who: &SignedIn<'_>) -> Markup {
    html! { input type="hidden" name="csrf" value=(who.csrf); }
}

/// Messages of one organisation (its webhook and emails), or of GP systems' Subscriptions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryRow {
    pub name: String,
    pub pending: u64,
    pub delivered: u64,
    pub dead: u64,
}

/// One organisation's endpoint on the overview.
pub struct EndpointRow {
    pub vcs_id: String,
    pub name: String,
    /// Whether it has a webhook (without one it reads referrals in the inbox).
    pub webhook: bool,
    pub health: Option<EndpointHealth>,
    /// Switched off, with the reason.
    pub disabled: Option<Option<String>>,
}

pub struct Overview {
    pub deliveries: Vec<DeliveryRow>,
    pub queue: OutboxStats,
    pub endpoints: Vec<EndpointRow>,
    pub feeds: Vec<(FeedConfig, Option<FeedPoll>)>,
    pub notice: Option<Notice>,
}

fn duration(seconds: f64) -> String {
    let now = Utc::now();
    age(Some(now - chrono::Duration::seconds(seconds as i64)), now)
}

pub fn overview_page(who: &SignedIn<'_>, view: &Overview) -> Markup {
    layout_in(
        &OPERATOR,
        "/admin",
        "Overview",
        Some(who),
        html! {
            (notice(view.notice.as_ref()))
            h1.heading-l { "Overview" }
            div.card-group {
                div.card { span.card-value.numeric { (view.queue.pending) } "messages waiting to be sent" }
                div.card {
                    span.card-value { (if view.queue.pending == 0 { "None".to_string() } else { duration(view.queue.oldest_pending_age_seconds) }) }
                    "age of the oldest waiting message"
                }
                div.card { span.card-value.numeric { (view.queue.dead) } a href="/admin/dead-letters" { "dead letters" } }
            }
            h2.heading-m { "Deliveries by organisation" }
            table.table {
                caption.visually-hidden { "Messages by state for each organisation" }
                thead { tr { th scope="col" { "Organisation" } th scope="col" { "Waiting" } th scope="col" { "Delivered" } th scope="col" { "Dead" } } }
                tbody {
                    @for row in &view.deliveries {
                        tr {
                            td { (row.name) }
                            td.numeric { span.visually-hidden { "Waiting: " } (row.pending) }
                            td.numeric { span.visually-hidden { "Delivered: " } (row.delivered) }
                            td.numeric { span.visually-hidden { "Dead: " } (row.dead) }
                        }
                    }
                }
            }
            h2.heading-m { "Endpoints" }
            table.table {
                caption.visually-hidden { "Each organisation's webhook" }
                thead { tr { th scope="col" { "Organisation" } th scope="col" { "State" } th scope="col" { "Last success" } th scope="col" { "Failures since" } } }
                tbody {
                    @for e in &view.endpoints {
                        tr {
                            td { (e.name) }
                            td {
                                @if !e.webhook {
                                    span.tag { "Inbox only" }
                                } @else if let Some(reason) = &e.disabled {
                                    span.tag.tag--red { "Switched off" }
                                    @if let Some(reason) = reason { p.body { (reason) } }
                                    form.inline-form method="post" action={ "/admin/endpoints/" (e.vcs_id) "/enable" } {
                                        (hidden_csrf(who))
                                        button.button type="submit" { "Enable" span.visually-hidden { " " (e.name) } }
                                    }
                                } @else {
                                    span.tag.tag--green { "On" }
                                }
                            }
                            td { span.visually-hidden { "Last success: " } (time(e.health.as_ref().and_then(|h| h.last_success_at))) }
                            td {
                                span.visually-hidden { "Failures since: " }
                                @match &e.health {
                                    Some(h) if h.failure_streak > 0 => {
                                        (h.failure_streak) " (last " (time(h.last_failure_at)) ")"
                                        @if let Some(error) = &h.last_error { br; (error) }
                                    }
                                    _ => "0",
                                }
                            }
                        }
                    }
                }
            }
            h2.heading-m { "Directory feeds" }
            @if view.feeds.is_empty() {
                p.body { "No feeds are configured." }
            } @else {
                table.table {
                    caption.visually-hidden { "Each directory feed's last refresh" }
                    thead { tr { th scope="col" { "Feed" } th scope="col" { "Last refresh" } th scope="col" { "Result" } th scope="col" { "Errors" } } }
                    tbody {
                        @for (feed, poll) in &view.feeds {
                            tr {
                                td { (feed.id.as_str()) }
                                td { span.visually-hidden { "Last refresh: " } (time(poll.as_ref().map(|p| p.polled_at))) }
                                td {
                                    span.visually-hidden { "Result: " }
                                    @match poll {
                                        None => "Not polled yet",
                                        Some(p) => {
                                            @match p.outcome {
                                                FeedOutcome::Imported => { (p.imported) " imported, " (p.skipped) " skipped, " (p.withdrawn) " withdrawn" }
                                                FeedOutcome::NotModified => "Not modified",
                                                FeedOutcome::Failed => span.tag.tag--red { "Failed" },
                                            }
                                        }
                                    }
                                }
                                td {
                                    span.visually-hidden { "Errors: " }
                                    @match poll.as_ref().map(|p| p.faults.as_slice()) {
                                        Some(faults) if !faults.is_empty() => {
                                            ul.list { @for fault in faults.iter().take(5) { li { (fault) } } }
                                            @if faults.len() > 5 { p.body { "and " (faults.len() - 5) " more" } }
                                        }
                                        _ => "None",
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

pub struct DeadLetters {
    pub total: usize,
    pub letters: Vec<Delivery>,
    /// Organisations with a webhook (their dead letters can be recovered): id and name.
    pub recoverable: Vec<(String, String)>,
    pub notice: Option<Notice>,
}

/// How far back **Recover** reaches.
pub const RECOVER_PERIODS: [(&str, &str); 4] = [
    ("1", "the last day"),
    ("7", "the last 7 days"),
    ("30", "the last 30 days"),
    ("all", "any time"),
];

pub fn dead_letters_page(who: &SignedIn<'_>, view: &DeadLetters) -> Markup {
    layout_in(
        &OPERATOR,
        "/admin/dead-letters",
        "Dead letters",
        Some(who),
        html! {
            (notice(view.notice.as_ref()))
            h1.heading-l { "Dead letters" }
            p.body { "Messages no endpoint took after every retry. " (view.total) " in all"
                @if view.total > view.letters.len() { ", the newest " (view.letters.len()) " shown" } "." }
            @if view.letters.is_empty() {
                p.body { "There are no dead letters." }
            } @else {
                table.table {
                    caption.visually-hidden { "Dead letters, newest first" }
                    thead { tr { th scope="col" { "Message" } th scope="col" { "To" } th scope="col" { "Created" } th scope="col" { "Last error" } th scope="col" { "Action" } } }
                    tbody {
                        @for d in &view.letters {
                            tr {
                                td { (d.id) br; span.hint { (d.event_type) " of referral " (d.referral_id) } }
                                td { span.visually-hidden { "To: " } (d.vcs_id) }
                                td { span.visually-hidden { "Created: " } (d.created_at) }
                                td { span.visually-hidden { "Last error: " } (d.last_error.as_deref().unwrap_or("None recorded")) " (" (d.attempts) " attempts)" }
                                td {
                                    form.inline-form method="post" action={ "/admin/dead-letters/" (d.id) "/retry" } {
                                        (hidden_csrf(who))
                                        button.button type="submit" { "Retry" span.visually-hidden { " message " (d.id) } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h2.heading-m { "Recover an organisation's dead letters" }
            @if view.recoverable.is_empty() {
                p.body { "No organisation has a webhook." }
            } @else {
                form method="post" action="/admin/recover" {
                    (hidden_csrf(who))
                    div.form-group {
                        label.label for="vcs" { "Organisation" }
                        select.select #vcs name="vcs" {
                            @for (id, name) in &view.recoverable { option value=(id) { (name) } }
                        }
                    }
                    div.form-group {
                        label.label for="days" { "Dead letters created in" }
                        select.select #days name="days" {
                            @for (value, label) in RECOVER_PERIODS { option value=(value) { (label) } }
                        }
                    }
                    button.button.button--secondary type="submit" { "Recover" }
                }
            }
        },
    )
}

/// One line of the refusals table: a day or week, a client, a rule, how many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusalRow {
    pub period: NaiveDate,
    pub client: String,
    pub message_id: String,
    pub refusals: u64,
}

pub struct RefusalsView {
    /// The period's days (`7`, `30`, `90`) and whether rows are by week.
    pub days: u32,
    pub weekly: bool,
    pub rows: Vec<RefusalRow>,
}

pub const REFUSAL_PERIODS: [u32; 3] = [7, 30, 90];

pub fn refusals_page(who: &SignedIn<'_>, view: &RefusalsView) -> Markup {
    layout_in(
        &OPERATOR,
        "/admin/refusals",
        "Intake refusals",
        Some(who),
        html! {
            h1.heading-l { "Intake refusals" }
            p.body { "Submissions the gateway refused, by GP client and the rule broken (its message id), most first: what to tell a vendor. A submission breaking two rules counts under each." }
            form.filters method="get" action="/admin/refusals" {
                div.form-group {
                    label.label for="days" { "Period" }
                    select.select #days name="days" {
                        @for d in REFUSAL_PERIODS { option value=(d) selected[d == view.days] { "Last " (d) " days" } }
                    }
                }
                div.form-group {
                    label.label for="by" { "Count by" }
                    select.select #by name="by" {
                        option value="day" selected[!view.weekly] { "Day" }
                        option value="week" selected[view.weekly] { "Week" }
                    }
                }
                button.button.button--secondary type="submit" { "Show" }
            }
            @if view.rows.is_empty() {
                p.body { "No refusals in this period." }
            } @else {
                table.table {
                    caption.visually-hidden { "Refusals by " (if view.weekly { "week" } else { "day" }) ", client and rule" }
                    thead { tr { th scope="col" { (if view.weekly { "Week of" } else { "Day" }) } th scope="col" { "GP client" } th scope="col" { "Rule (message id)" } th scope="col" { "Refusals" } } }
                    tbody {
                        @for r in &view.rows {
                            tr {
                                td { (r.period.format("%-d %b %Y")) }
                                td { span.visually-hidden { "GP client: " } (r.client) }
                                td { span.visually-hidden { "Rule: " } code { (r.message_id) } }
                                td.numeric { span.visually-hidden { "Refusals: " } (r.refusals) }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// The audit page's filters, as typed.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: String,
    pub action: String,
}

pub struct AuditView {
    pub filter: AuditFilter,
    pub total: usize,
    pub records: Vec<AuditRecord>,
}

pub fn audit_page(who: &SignedIn<'_>, view: &AuditView) -> Markup {
    layout_in(
        &OPERATOR,
        "/admin/audit",
        "Audit",
        Some(who),
        html! {
            h1.heading-l { "Audit" }
            p.body { "Recent records of the audit trail, newest first. Records about a patient show what was done, by whom and when, not which patient or record: that is for " code { "GET /fhir/AuditEvent" } " by patient. Viewing this page is itself recorded." }
            form.filters method="get" action="/admin/audit" {
                div.form-group {
                    label.label for="actor" { "Actor" }
                    div.hint #actor-hint { "For example person:…, vcs:carers-count, operator:admin" }
                    input.input #actor name="actor" type="text" value=(view.filter.actor) spellcheck="false" aria-describedby="actor-hint";
                }
                div.form-group {
                    label.label for="action" { "Action" }
                    div.hint #action-hint { "For example login, read, search, retry" }
                    input.input.input--width-10 #action name="action" type="text" value=(view.filter.action) spellcheck="false" aria-describedby="action-hint";
                }
                button.button.button--secondary type="submit" { "Filter" }
            }
            p.body { (view.total) " records match" @if view.total > view.records.len() { ", the newest " (view.records.len()) " shown" } "." }
            @if !view.records.is_empty() {
                table.table {
                    caption.visually-hidden { "Audit records, newest first" }
                    thead { tr { th scope="col" { "When" } th scope="col" { "Actor" } th scope="col" { "Action" } th scope="col" { "About" } th scope="col" { "Outcome" } } }
                    tbody {
                        @for r in &view.records {
                            tr {
                                td { (r.recorded_at) }
                                td { span.visually-hidden { "Actor: " } (r.actor.to_string()) }
                                td { span.visually-hidden { "Action: " } (r.action) }
                                td {
                                    span.visually-hidden { "About: " }
                                    (r.resource_type.as_deref().unwrap_or("–"))
                                    @if r.patient_id.is_some() {
                                        " (a patient's record)"
                                    } @else if let Some(id) = &r.resource_id {
                                        " " (id)
                                    }
                                    @if let Some(c) = &r.correlation_id { br; span.hint { "Request " (c) } }
                                }
                                td { span.visually-hidden { "Outcome: " } (r.outcome) }
                            }
                        }
                    }
                }
            }
        },
    )
}
