//! The web inbox's pages, rendered on the server (`maud`: templates checked at compile time,
//! every value escaped): the layout, the sign-in form, the list of an organisation's referrals
//! and one referral with its actions. No HTTP here (`api::inbox` serves these), no JavaScript:
//! every page is plain forms, styled by our own small stylesheet after the NHS.UK design system.

pub mod dashboard;
mod onward;
mod referral;

pub use dashboard::{
    audit_page, dead_letters_page, overview_page, refusals_page, AuditFilter, AuditView,
    DeadLetters, Notice, Overview, RefusalsView, OPERATOR,
};
pub use onward::{onward_page, FoundService, OnwardView};

pub use referral::{
    needs, person_name, practice, referral_page, Action, ReferralView, StatusEntry, ACTIONS,
};

use chrono::{DateTime, Utc};
use maud::{html, Markup, DOCTYPE};

use crate::translate::vcs_status::VcsStatus;

/// The stylesheet, served at [`STYLESHEET_PATH`].
pub const STYLESHEET: &str = include_str!("inbox.css");
pub const STYLESHEET_PATH: &str = "/inbox/static/inbox.css";

/// A field's error: the field's id (the summary links to it) and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Who is signed in, for the header.
pub struct SignedIn<'a> {
    pub email: &'a str,
    pub organisation: &'a str,
    pub csrf: &'a str,
}

/// Which service a page belongs to: its name and home in the header, and its sections.
pub struct Service {
    pub name: &'static str,
    pub home: &'static str,
    /// Each section's link and label (none: no navigation bar).
    pub sections: &'static [(&'static str, &'static str)],
}

/// The referral inbox of an organisation's staff.
pub const INBOX: Service = Service {
    name: "Referral inbox",
    home: "/inbox",
    sections: &[],
};

/// Every page: skip link, header (with sign-out when signed in), main content.
pub fn layout(title: &str, signed_in: Option<&SignedIn<'_>>, content: Markup) -> Markup {
    layout_in(&INBOX, "", title, signed_in, content)
}

/// A page of `service`, in its section `current` (a link of `service.sections`).
pub fn layout_in(
    service: &Service,
    current: &str,
    title: &str,
    signed_in: Option<&SignedIn<'_>>,
    content: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en-GB" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " – " (service.name) }
                link rel="stylesheet" href=(STYLESHEET_PATH);
            }
            body {
                a.skip-link href="#main-content" { "Skip to main content" }
                header.header {
                    div.width-container.header-inner {
                        a.header-service href=(service.home) { (service.name) }
                        @if let Some(who) = signed_in {
                            div.header-account {
                                span { (who.organisation) " · " (who.email) }
                                form method="post" action="/inbox/logout" {
                                    input type="hidden" name="csrf" value=(who.csrf);
                                    button.link-button type="submit" { "Sign out" }
                                }
                            }
                        }
                    }
                }
                @if !service.sections.is_empty() {
                    nav.navigation aria-label="Sections" {
                        ul.width-container.navigation-list {
                            @for (href, label) in service.sections {
                                li {
                                    a.navigation-link href=(href)
                                        aria-current=[(*href == current).then_some("page")] { (label) }
                                }
                            }
                        }
                    }
                }
                div.width-container {
                    main #main-content .main-wrapper { (content) }
                }
            }
        }
    }
}

/// The error summary at the top of a form: each error links to its field.
pub fn error_summary(errors: &[FieldError]) -> Markup {
    html! {
        @if !errors.is_empty() {
            div.error-summary role="alert" aria-labelledby="error-summary-title" tabindex="-1" {
                h2 #error-summary-title .error-summary-title { "There is a problem" }
                ul.error-summary-list {
                    @for e in errors {
                        li { a href={ "#" (e.field) } { (e.message) } }
                    }
                }
            }
        }
    }
}

/// The error message under a field's label, if the field has one.
pub fn field_error<'a>(errors: &'a [FieldError], field: &str) -> Option<&'a FieldError> {
    errors.iter().find(|e| e.field == field)
}

fn error_message(errors: &[FieldError], field: &str) -> Markup {
    html! {
        @if let Some(e) = field_error(errors, field) {
            span.error-message id={ (field) "-error" } {
                span.visually-hidden { "Error: " } (e.message)
            }
        }
    }
}

/// A labelled text input with its error.
pub fn text_input(
    errors: &[FieldError],
    id: &str,
    label: &str,
    kind: &str,
    value: &str,
    autocomplete: &str,
) -> Markup {
    let error = field_error(errors, id).is_some();
    html! {
        div.form-group.form-group--error[error] {
            label.label for=(id) { (label) }
            (error_message(errors, id))
            input.input.input--error[error] id=(id) name=(id) type=(kind) value=(value)
                autocomplete=(autocomplete) spellcheck="false"
                aria-describedby=[error.then(|| format!("{id}-error"))];
        }
    }
}

/// The sign-in page.
pub fn login_page(errors: &[FieldError], email: &str, csrf: &str) -> Markup {
    let title = if errors.is_empty() {
        "Sign in"
    } else {
        "Error: Sign in"
    };
    layout(
        title,
        None,
        html! {
            (error_summary(errors))
            h1.heading-l { "Sign in" }
            form method="post" action="/inbox/login" novalidate {
                input type="hidden" name="csrf" value=(csrf);
                (text_input(errors, "email", "Email address", "email", email, "username"))
                (text_input(errors, "password", "Password", "password", "", "current-password"))
                div.form-group {
                    label.label for="code" { "Code from your authenticator app" }
                    div.hint #code-hint { "Only if your account uses one: 6 digits." }
                    (error_message(errors, "code"))
                    input.input.input--width-10 #code name="code" type="text" inputmode="numeric"
                        autocomplete="one-time-code" aria-describedby="code-hint";
                }
                button.button type="submit" { "Sign in" }
            }
        },
    )
}

/// One row of the list.
pub struct ListedReferral {
    pub referral_id: String,
    pub name: String,
    pub needs: String,
    pub practice: String,
    pub created_at: Option<DateTime<Utc>>,
    pub status: VcsStatus,
}

/// Which group of the list a status belongs to.
pub fn group_of(status: VcsStatus) -> usize {
    match status {
        VcsStatus::Received => 0,
        s if s.is_terminal() => 2,
        _ => 1,
    }
}

/// "3 days", "5 hours", "12 minutes": how long ago.
pub fn age(created_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    let Some(at) = created_at else {
        return "Not known".into();
    };
    let minutes = (now - at).num_minutes().max(0);
    let (n, unit) = match minutes {
        m if m < 60 => (m, "minute"),
        m if m < 60 * 24 => (m / 60, "hour"),
        m => (m / (60 * 24), "day"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// The organisation's referrals: new, in progress, closed.
pub fn list_page(
    signed_in: &SignedIn<'_>,
    referrals: &[ListedReferral],
    now: DateTime<Utc>,
) -> Markup {
    const GROUPS: [(&str, &str); 3] = [
        ("new", "New referrals"),
        ("in-progress", "In progress"),
        ("closed", "Closed"),
    ];
    layout(
        "Referrals",
        Some(signed_in),
        html! {
            h1.heading-l { "Referrals" }
            @for (index, (id, heading)) in GROUPS.iter().enumerate() {
                @let rows: Vec<&ListedReferral> =
                    referrals.iter().filter(|r| group_of(r.status) == index).collect();
                section aria-labelledby={ (id) "-heading" } {
                    h2.heading-m id={ (id) "-heading" } { (heading) " (" (rows.len()) ")" }
                    @if rows.is_empty() {
                        p.body { "None." }
                    } @else {
                        table.table {
                            caption.visually-hidden { (heading) }
                            thead { tr {
                                th scope="col" { "Person" }
                                th scope="col" { "Needs" }
                                th scope="col" { "Referred by" }
                                th scope="col" { "Age" }
                                th scope="col" { "Status" }
                            } }
                            tbody {
                                @for r in rows {
                                    tr {
                                        td { a href={ "/inbox/referrals/" (r.referral_id) } { (r.name) } }
                                        td { (r.needs) }
                                        td { (r.practice) }
                                        td { (age(r.created_at, now)) }
                                        td { span.tag { (status_label(r.status)) } }
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

/// A status as people read it.
pub fn status_label(status: VcsStatus) -> &'static str {
    match status {
        VcsStatus::Received => "New",
        VcsStatus::Accepted => "Accepted",
        VcsStatus::Declined => "Declined",
        VcsStatus::Contacted => "Contacted",
        VcsStatus::UnableToContact => "Unable to contact",
        VcsStatus::Attended => "Attended",
        VcsStatus::DidNotAttend => "Did not attend",
        VcsStatus::Completed => "Completed",
        VcsStatus::Cancelled => "Cancelled by the GP practice",
    }
}

/// A page saying something is not there (or not this organisation's) or went wrong.
pub fn message_page(title: &str, text: &str, signed_in: Option<&SignedIn<'_>>) -> Markup {
    layout(
        title,
        signed_in,
        html! {
            h1.heading-l { (title) }
            p.body { (text) }
            p.body { a href="/inbox" { "Back to referrals" } }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_login_page_links_errors_to_fields_and_escapes_values() {
        let errors = vec![FieldError::new("password", "Enter your password")];
        let page = login_page(&errors, "<ann>@x.example", "tok").into_string();
        assert!(page.contains("href=\"#password\""), "{page}");
        assert!(page.contains("aria-describedby=\"password-error\""));
        assert!(page.contains("&lt;ann&gt;@x.example"));
        assert!(page.contains("name=\"email\"") && page.contains("name=\"code\""));
        assert!(page.len() < 50_000);
    }

    #[test]
    fn ages_read_as_people_say_them() {
        let now = Utc::now();
        assert_eq!(
            age(Some(now - chrono::Duration::minutes(1)), now),
            "1 minute"
        );
        assert_eq!(age(Some(now - chrono::Duration::hours(5)), now), "5 hours");
        assert_eq!(age(Some(now - chrono::Duration::days(3)), now), "3 days");
        assert_eq!(age(None, now), "Not known");
    }
}
