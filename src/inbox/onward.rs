//! Refer onward: a link worker searches the directory by need and postcode, chooses a service
//! the gateway can deliver to, adds a note and confirms. One page: the search form (GET), then
//! the services found with the confirming form (POST).

use maud::{html, Markup};

use super::referral::textarea;
use super::{error_summary, field_error, layout, text_input, FieldError, SignedIn};
use crate::domain::NeedCategory;

/// A service found, as the page shows it.
pub struct FoundService {
    pub id: String,
    pub name: String,
    pub organisation: Option<String>,
    /// How the service takes referrals (through the gateway, or by hand with its contacts).
    pub how: String,
    /// The postcodes it covers, in words.
    pub coverage: String,
    /// Whether the gateway delivers to it (only those can be chosen here).
    pub connected: bool,
}

/// What the onward page shows.
pub struct OnwardView<'a> {
    pub referral_id: &'a str,
    pub person: &'a str,
    /// The needs to choose from, with their displays: the record's categories first.
    pub needs: Vec<(NeedCategory, &'static str)>,
    pub need: Option<NeedCategory>,
    pub postcode: &'a str,
    /// `None` until a search was made.
    pub found: Option<Vec<FoundService>>,
    pub service_id: &'a str,
    pub note: &'a str,
    pub errors: Vec<FieldError>,
}

fn search_form(view: &OnwardView<'_>) -> Markup {
    let need_error = field_error(&view.errors, "need");
    html! {
        form method="get" action={ "/inbox/referrals/" (view.referral_id) "/onward" } novalidate {
            div.form-group.form-group--error[need_error.is_some()] {
                label.label for="need" { "Need" }
                @if let Some(e) = need_error {
                    span.error-message id="need-error" {
                        span.visually-hidden { "Error: " } (e.message)
                    }
                }
                select.select id="need" name="need"
                    aria-describedby=[need_error.map(|_| "need-error")] {
                    @for (category, label) in &view.needs {
                        option value=(category.code()) selected[view.need == Some(*category)] {
                            (label)
                        }
                    }
                }
            }
            (text_input(&view.errors, "postcode", "Postcode", "text", view.postcode, "off"))
            button.button.button--secondary type="submit" { "Search" }
        }
    }
}

fn results(view: &OnwardView<'_>, found: &[FoundService], csrf: &str) -> Markup {
    let choosable: Vec<&FoundService> = found.iter().filter(|s| s.connected).collect();
    let service_error = field_error(&view.errors, "service_id");
    html! {
        h2.heading-m { "Services found (" (found.len()) ")" }
        @if found.is_empty() {
            p.body { "No active service of the directory matches. Try another need or a nearby postcode." }
        } @else {
            form method="post" action={ "/inbox/referrals/" (view.referral_id) "/onward" } novalidate {
                input type="hidden" name="csrf" value=(csrf);
                @if let Some(need) = view.need {
                    input type="hidden" name="need" value=(need.code());
                }
                input type="hidden" name="postcode" value=(view.postcode);
                div.form-group.form-group--error[service_error.is_some()] {
                    fieldset.fieldset aria-describedby=[service_error.map(|_| "service_id-error")] {
                        legend.fieldset-legend { "Choose a service" }
                        @if let Some(e) = service_error {
                            span.error-message id="service_id-error" {
                                span.visually-hidden { "Error: " } (e.message)
                            }
                        }
                        div.radios {
                            @for (i, service) in choosable.iter().enumerate() {
                                @let id = if i == 0 { "service_id".to_string() } else { format!("service_id-{i}") };
                                div.radios-item {
                                    input.radios-input type="radio" id=(id) name="service_id"
                                        value=(service.id) checked[service.id == view.service_id]
                                        aria-describedby={ (id) "-hint" };
                                    label.label.radios-label for=(id) { (service.name) }
                                    div.hint.radios-hint id={ (id) "-hint" } {
                                        (details(service))
                                    }
                                }
                            }
                        }
                    }
                }
                @let by_hand: Vec<&FoundService> = found.iter().filter(|s| !s.connected).collect();
                @if !by_hand.is_empty() {
                    h3.heading-s { "Found, but not taking referrals through this gateway" }
                    ul.list {
                        @for service in by_hand {
                            li { strong { (service.name) } br; (details(service)) }
                        }
                    }
                }
                @if !choosable.is_empty() {
                    (textarea(&view.errors, "note", "Note for the service (optional)",
                        "Why, and what you agreed with the person. The service reads it.", view.note))
                    button.button type="submit" { "Refer onward" }
                }
            }
        }
    }
}

fn details(service: &FoundService) -> Markup {
    html! {
        @if let Some(organisation) = &service.organisation { (organisation) ". " }
        (service.how) ". Covers " (service.coverage) "."
    }
}

/// The onward page.
pub fn onward_page(view: &OnwardView<'_>, signed_in: &SignedIn<'_>) -> Markup {
    let heading = format!("Refer {} onward", view.person);
    let title = if view.errors.is_empty() {
        heading.clone()
    } else {
        format!("Error: {heading}")
    };
    layout(
        &title,
        Some(signed_in),
        html! {
            a.back-link href={ "/inbox/referrals/" (view.referral_id) } { "Back to the referral" }
            (error_summary(&view.errors))
            h1.heading-l { (heading) }
            p.body { "Search the service directory by need and the person's postcode, choose a service, and the gateway sends it a referral of its own. The GP practice can follow it." }
            (search_form(view))
            @if let Some(found) = &view.found {
                (results(view, found, signed_in.csrf))
            }
        },
    )
}
