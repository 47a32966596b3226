//! Refer onward from the inbox: a link worker searches the directory (the same index and
//! ranking as `GET /fhir/HealthcareService?need=&postcode=`), chooses a service and confirms;
//! the child referral is made by `onward::refer_onward`, the very function behind
//! `POST /vcs/v1/referrals/{id}/onward`. Members of other organisations find no such page.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::referrals::{lifecycle, load};
use super::{audit, check_csrf, field, form_fields, member, Member};
use crate::api::errors::page::{html, see_other, PageError};
use crate::api::{correlation_id, query_pairs, AppState};
use crate::config::VcsKind;
use crate::directory::fhir::category_display;
use crate::directory::index::need_category;
use crate::directory::{district_of, Coverage, IndexedService, Query, ServiceContact};
use crate::domain::{FhirId, NeedCategory};
use crate::inbox::{onward_page, person_name, FieldError, FoundService, OnwardView};
use crate::intake::routing::route_to_listed;
use crate::lifecycle::LifecycleError;
use crate::onward::{may_refer_onward, refer_onward, OnwardError, OnwardRequest};
use crate::store::{DirectoryResourceType, ReferralState};
use crate::translate::vcs_status::VcsStatus;

/// The most services one search shows (best first).
const MOST_FOUND: usize = 25;
/// The schema's bound on a note (`onward-referral.v1`).
const NOTE_MAX_CHARS: usize = 4000;

fn is_link_worker(state: &AppState, member: &Member) -> bool {
    state
        .config
        .vcs(&member.vcs)
        .is_some_and(|v| v.kind == VcsKind::LinkWorker)
}

/// Whether the referral page offers "Refer onward" (the rule of `refer_onward`).
pub(super) fn offered(state: &AppState, member: &Member, status: VcsStatus) -> bool {
    is_link_worker(state, member) && may_refer_onward(status)
}

/// The confirmation after an onward referral: the child named in the query, if it is this
/// referral's child (so a crafted link cannot put words in the banner).
pub(super) async fn done_banner(
    state: &AppState,
    request: &HttpRequest,
    parent: &str,
) -> Result<Option<String>, PageError> {
    let child = query_pairs(request)
        .into_iter()
        .find(|(k, _)| k == "child")
        .and_then(|(_, v)| v.parse::<FhirId>().ok());
    let Some(child) = child else {
        return Ok(None);
    };
    let Some(referral) = state.store.load_referral(child.as_str()).await? else {
        return Ok(None);
    };
    let based_on = referral.service_request.json()?;
    let parent_ref = format!("ServiceRequest/{parent}");
    if based_on["basedOn"][0]["reference"].as_str() != Some(parent_ref.as_str()) {
        return Ok(None);
    }
    let record = referral.record_json()?;
    let service = record["service"]["name"].as_str().unwrap_or("the service");
    Ok(Some(format!(
        "Referred onward to {service}. The new referral is {child}: the service has been sent it, and the GP practice can follow it."
    )))
}

/// The link worker's referral, if onward is for this member at all (anyone else: no such page).
async fn onward_referral(
    state: &AppState,
    request: &HttpRequest,
    id: &str,
) -> Result<(Member, ReferralState), PageError> {
    let member = member(state, request).await?;
    if !is_link_worker(state, &member) {
        return Err(PageError::NotFound);
    }
    let referral = load(state, &member, id).await?;
    Ok((member, referral))
}

/// The need categories to offer: the record's first, then every other.
fn need_choices(record: &Value) -> Vec<NeedCategory> {
    let mut choices: Vec<NeedCategory> = record["needs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["category"].as_str()?.parse().ok())
        .collect();
    choices.dedup();
    for category in NeedCategory::ALL {
        if !choices.contains(&category) {
            choices.push(category);
        }
    }
    choices
}

/// What was searched for, as typed (kept on the page) and as understood.
struct Search {
    need: Option<NeedCategory>,
    postcode: String,
    errors: Vec<FieldError>,
    /// Whether to search (not when the form is only prefilled).
    run: bool,
}

fn read_search(state: &AppState, need: Option<&str>, postcode: &str) -> Search {
    let mut errors = vec![];
    let need = match need {
        Some(n) => need_category(n, state.validation.conformance().needs())
            .map_err(|_| errors.push(FieldError::new("need", "Choose a need from the list")))
            .ok(),
        None => {
            errors.push(FieldError::new("need", "Choose a need"));
            None
        }
    };
    if postcode.is_empty() {
        errors.push(FieldError::new(
            "postcode",
            "Enter the person's postcode, like HR2 0LT",
        ));
    } else if district_of(postcode).is_err() {
        errors.push(FieldError::new(
            "postcode",
            "Enter a real postcode, like HR2 0LT",
        ));
    }
    Search {
        need,
        postcode: postcode.to_string(),
        errors,
        run: true,
    }
}

fn coverage_text(coverage: &Coverage) -> String {
    match coverage {
        Coverage::Everywhere => "anywhere (by telephone or online)".into(),
        Coverage::Places { districts, areas } => {
            let mut places: Vec<String> = districts.iter().map(|d| d.to_string()).collect();
            places.extend(areas.iter().map(|a| format!("all of {a}")));
            if places.is_empty() {
                "no postcode given".into()
            } else {
                places.join(", ")
            }
        }
    }
}

fn by_hand(contact: &ServiceContact) -> String {
    let mut how: Vec<String> = contact.email.iter().map(|e| format!("email {e}")).collect();
    how.extend(contact.telephones.iter().map(|t| format!("telephone {t}")));
    how.extend(contact.website.iter().map(|w| format!("website {w}")));
    if how.is_empty() {
        "Not through this gateway; the directory gives no contact details".into()
    } else {
        format!(
            "Not through this gateway: contact it directly ({})",
            how.join(", ")
        )
    }
}

async fn organisation_name(
    state: &AppState,
    service: &IndexedService,
) -> Result<Option<String>, PageError> {
    let Some(id) = &service.organization_id else {
        return Ok(None);
    };
    let Some(text) = state
        .store
        .directory_resource(DirectoryResourceType::Organization, id)
        .await?
    else {
        return Ok(None);
    };
    let organisation: Value = serde_json::from_str(&text)
        .map_err(|e| PageError::Defect(format!("a stored directory Organization: {e}")))?;
    Ok(organisation["name"].as_str().map(str::to_string))
}

/// The active services for the need covering the postcode, best first, without the link
/// worker's own; each says whether the gateway delivers to it (the rule of intake's routing).
async fn find(
    state: &AppState,
    member: &Member,
    need: NeedCategory,
    postcode: &str,
) -> Result<Vec<FoundService>, PageError> {
    let index = state.catalog.index();
    let query = Query {
        categories: vec![need],
        postcode: district_of(postcode).ok(),
        active: Some(true),
        ..Query::default()
    };
    let mut found = vec![];
    for m in index.search(&query) {
        if found.len() == MOST_FOUND {
            break;
        }
        let service = m.service;
        let mut listed = None;
        let routed = route_to_listed(
            &service.id,
            "service_id",
            &state.config.vcs,
            index.as_ref(),
            &mut listed,
        );
        let (connected, how) = match routed {
            Ok(r) if r.vcs.id == member.vcs => continue,
            Ok(r) => (
                true,
                format!("Takes referrals through this gateway ({})", r.vcs.name),
            ),
            Err(_) => (false, by_hand(&service.contact)),
        };
        found.push(FoundService {
            id: service.id.clone(),
            name: service.name.clone(),
            organisation: organisation_name(state, service).await?,
            how,
            coverage: coverage_text(&service.coverage),
            connected,
        });
    }
    Ok(found)
}

/// What the confirming form sent back, kept when it comes back with errors.
#[derive(Default, Clone, Copy)]
struct Chosen<'a> {
    service_id: &'a str,
    note: &'a str,
}

async fn render(
    state: &AppState,
    member: &Member,
    referral: &ReferralState,
    status: StatusCode,
    mut search: Search,
    chosen: Chosen<'_>,
    mut errors: Vec<FieldError>,
) -> Result<HttpResponse, PageError> {
    let record = referral.record_json()?;
    let found = match search.need {
        Some(need) if search.run && search.errors.is_empty() => {
            Some(find(state, member, need, &search.postcode).await?)
        }
        _ => None,
    };
    errors.append(&mut search.errors);
    let status = if errors.is_empty() || status != StatusCode::OK {
        status
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let person = person_name(&record);
    let view = OnwardView {
        referral_id: referral.referral_id.as_str(),
        person: &person,
        needs: need_choices(&record)
            .into_iter()
            .map(|c| (c, category_display(c)))
            .collect(),
        need: search.need,
        postcode: &search.postcode,
        found,
        service_id: chosen.service_id,
        note: chosen.note,
        errors,
    };
    Ok(html(
        status,
        onward_page(&view, &member.signed_in()).into_string(),
    ))
}

/// `GET /inbox/referrals/{id}/onward`: the search form, prefilled from the record; with
/// `need` and `postcode`, the services found.
pub async fn form(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let (member, referral) = onward_referral(&state, &request, &path).await?;
    if !may_refer_onward(referral.vcs_status) {
        return Ok(see_other(&format!("/inbox/referrals/{}", path.as_str())));
    }
    let target = ("ServiceRequest", Some(referral.referral_id.as_str()));
    audit(&state, &request, member.actor(), "read", target, "success").await?;
    let pairs = query_pairs(&request);
    let given = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim());
    let search = match (given("need"), given("postcode")) {
        (None, None) => {
            // Not searched yet: prefilled with the record's first need and the person's postcode.
            let record = referral.record_json()?;
            let postcode = record.pointer("/patient/address/postcode");
            Search {
                need: need_choices(&record).first().copied(),
                postcode: postcode.and_then(Value::as_str).unwrap_or("").to_string(),
                errors: vec![],
                run: false,
            }
        }
        (need, postcode) => read_search(&state, need, postcode.unwrap_or("")),
    };
    let chosen = Chosen::default();
    render(
        &state,
        &member,
        &referral,
        StatusCode::OK,
        search,
        chosen,
        vec![],
    )
    .await
}

/// `POST /inbox/referrals/{id}/onward`: `service_id`, `note` and the form token; the child
/// referral is made by `refer_onward`, then to the referral page with a confirmation.
pub async fn submit(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let (member, _) = onward_referral(&state, &request, &path).await?;
    let fields = form_fields(&body);
    check_csrf(&member, &fields)?;
    state
        .limits
        .charge_vcs_write(&member.vcs)
        .map_err(|t| PageError::Throttled(t.retry_after_secs))?;
    state.budget.check(state.store.as_ref()).await?;
    let referral = load(&state, &member, &path).await?;
    let chosen = Chosen {
        service_id: field(&fields, "service_id").unwrap_or(""),
        note: field(&fields, "note").unwrap_or(""),
    };
    let search = read_search(
        &state,
        field(&fields, "need"),
        field(&fields, "postcode").unwrap_or(""),
    );
    let (state_ref, member_ref) = (&state, &member);
    let refuse = |referral: ReferralState, status: StatusCode, errors: Vec<FieldError>| async move {
        render(
            state_ref, member_ref, &referral, status, search, chosen, errors,
        )
        .await
    };
    if chosen.service_id.is_empty() {
        let errors = vec![FieldError::new("service_id", "Choose a service")];
        return refuse(referral, StatusCode::UNPROCESSABLE_ENTITY, errors).await;
    }
    if chosen.note.chars().count() > NOTE_MAX_CHARS {
        let message = format!("The note must be {NOTE_MAX_CHARS} characters or fewer");
        let errors = vec![FieldError::new("note", message)];
        return refuse(referral, StatusCode::UNPROCESSABLE_ENTITY, errors).await;
    }
    let note = (!chosen.note.is_empty()).then(|| chosen.note.to_string());
    // The body as `/vcs/v1` would have received it (kept with the child as received).
    let received = json!({"service_id": chosen.service_id, "note": note}).to_string();
    let onward = OnwardRequest {
        service_id: chosen.service_id.to_string(),
        note,
    };
    let directory = state.catalog.index();
    let applied = refer_onward(
        &lifecycle(&state),
        directory.as_ref(),
        &member.vcs,
        &path,
        &onward,
        received.as_bytes(),
        None,
        correlation_id(&request),
    )
    .await;
    let applied = match applied {
        Ok(applied) => applied,
        Err(OnwardError::NotLinkWorker(_)) => {
            return Err(PageError::Forbidden(
                "Only link-worker services refer people onward.".into(),
            ))
        }
        Err(OnwardError::Lifecycle(LifecycleError::Refused(issues))) => {
            let errors = issues
                .into_iter()
                .map(|issue| FieldError::new("service_id", issue.diagnostics))
                .collect();
            return refuse(referral, StatusCode::UNPROCESSABLE_ENTITY, errors).await;
        }
        Err(OnwardError::Lifecycle(LifecycleError::Transition { .. })) => {
            // Closed or changed meanwhile: show it as it is now.
            let referral = load(&state, &member, &path).await?;
            let message = format!(
                "This referral is {}: it cannot be referred onward now",
                crate::inbox::status_label(referral.vcs_status).to_lowercase()
            );
            let errors = vec![FieldError::new("service_id", message)];
            return refuse(referral, StatusCode::CONFLICT, errors).await;
        }
        Err(OnwardError::Lifecycle(e)) => return Err(e.into()),
    };
    let child = applied.state_after["referral_id"]
        .as_str()
        .ok_or_else(|| PageError::Defect("an onward referral without its child's id".into()))?
        .to_string();
    // A new referral, its webhook queued: counted and the worker woken.
    state.accepted();
    let target = ("ServiceRequest", Some(path.as_str()));
    audit(
        &state,
        &request,
        member.actor(),
        "onward",
        target,
        "success",
    )
    .await?;
    Ok(see_other(&format!(
        "/inbox/referrals/{}?done=onward&child={child}",
        path.as_str()
    )))
}
