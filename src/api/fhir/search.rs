//! FHIR search, once for every resource: reading the query string (`_count`, `_offset`,
//! `_format`, unknown parameters ignored with a warning or refused under
//! `Prefer: handling=strict`), small parsers for the value kinds our parameters use, and the
//! `searchset` Bundle with its paging links. A resource module says only which parameters it has
//! and what each means.

use actix_web::HttpRequest;
use serde_json::{json, Value};

use super::common::query_pairs;
use crate::api::access::{self, Accessed};
use crate::api::errors::{ApiError, Reply};
use crate::api::extract::GpClient;
use crate::api::AppState;
use crate::fhir::outcome::{operation_outcome, Issue, Severity};
use crate::store::{ResourceQuery, SearchPage, StoreError, StoredResource};

/// The page size when a search names none.
pub const DEFAULT_COUNT: usize = 20;
/// The largest page served; a larger `_count` is capped.
pub const MAX_COUNT: usize = 100;
/// The most parameters one search may name (after identical repeats are dropped): every search
/// we serve needs fewer than ten, and each one can cost a query.
pub const MAX_PARAMETERS: usize = 32;
/// The most resources `_include`/`_revinclude` add to one page; past it the page says so.
pub const MAX_INCLUDED: usize = 1000;

/// What a resource's search accepts.
pub struct Parameters<'a> {
    pub resource_type: &'a str,
    /// Every parameter it supports, paging included, as messages name them.
    pub names: &'a [&'a str],
    /// Whether it pages with `_count` and `_offset`.
    pub paged: bool,
    /// Whether an unknown parameter is ignored (with a warning) unless the client asks for strict
    /// handling, as the FHIR search rules say; `false` refuses it always.
    pub lenient: bool,
}

/// A parsed search: paging, the parameters kept for paging links, and warnings for ignored ones.
#[derive(Debug, Default)]
pub struct Search {
    pub count: usize,
    pub offset: usize,
    pub kept: Vec<(String, String)>,
    pub ignored: Vec<Issue>,
}

impl Parameters<'_> {
    /// Reads the request's query string. `take` reads one of the resource's own parameters and
    /// says whether it was one (`false`: unknown).
    pub fn parse(
        &self,
        request: &HttpRequest,
        mut take: impl FnMut(&str, &str) -> Result<bool, ApiError>,
    ) -> Result<Search, ApiError> {
        let strict = !self.lenient
            || request
                .headers()
                .get_all("prefer")
                .filter_map(|v| v.to_str().ok())
                .any(|v| v.contains("handling=strict"));
        let mut search = Search {
            count: DEFAULT_COUNT,
            ..Search::default()
        };
        // The same parameter with the same value twice means it once (`_revinclude` repeated
        // thousands of times once ran a query per repeat per match).
        let mut seen = std::collections::HashSet::new();
        let pairs: Vec<(String, String)> = query_pairs(request)
            .into_iter()
            .filter(|pair| seen.insert(pair.clone()))
            .collect();
        if pairs.len() > MAX_PARAMETERS {
            return Err(ApiError::BadRequest(format!(
                "A search may name at most {MAX_PARAMETERS} parameters; this one names {}.",
                pairs.len()
            )));
        }
        for (name, value) in pairs {
            match name.as_str() {
                "_count" if self.paged => {
                    search.count = whole_number(&name, &value)?.min(MAX_COUNT)
                }
                "_offset" if self.paged => search.offset = whole_number(&name, &value)?,
                "_format" => {}
                _ if take(&name, &value)? => search.kept.push((name, value)),
                _ if strict => {
                    return Err(ApiError::BadRequest(format!(
                        "Unknown search parameter {name:?}; {} supports {}.",
                        self.resource_type,
                        self.names.join(", ")
                    )))
                }
                _ => {
                    let mut issue = Issue::error(
                        "not-supported",
                        format!(
                            "Search parameter {name:?} is not supported and was ignored; {} \
                             supports {}.",
                            self.resource_type,
                            self.names.join(", ")
                        ),
                    )
                    .with_message_id("search-parameter-ignored");
                    // Ignored parameters are warnings, not errors: the search still ran.
                    issue.severity = Severity::Warning;
                    search.ignored.push(issue);
                }
            }
        }
        Ok(search)
    }
}

/// A search of the resources a referral gathers (Task, Observation): by the referral
/// (`reference` is `focus` or `based-on`), by patient, and (`with_code`) by code. Audited.
pub async fn referral_resources(
    state: &AppState,
    request: &HttpRequest,
    client: &GpClient,
    parameters: &Parameters<'_>,
    reference: &str,
    with_code: bool,
) -> Result<Reply, ApiError> {
    let resource_type = parameters.resource_type;
    let client = client.require(&crate::auth::scopes::read(resource_type))?;
    let mut query = ResourceQuery::default();
    let tasks = resource_type == "Task";
    let (mut part_of, mut with_parts) = (None, false);
    let search = parameters.parse(request, |name, value| {
        match name {
            n if n == reference => query.referral_id = Some(reference_id(value, "ServiceRequest")),
            "patient" | "subject" => query.patient_id = Some(reference_id(value, "Patient")),
            "code" if with_code => query.code = Some(token(value)),
            "part-of" if tasks => part_of = Some(reference_id(value, "Task")),
            "_revinclude" if tasks && value == "Task:part-of" => with_parts = true,
            "_revinclude" if tasks => {
                return Err(ApiError::BadRequest(format!(
                    "_revinclude on Task supports Task:part-of; got {value:?}."
                )))
            }
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    (query.count, query.offset) = (search.count, search.offset);
    let page = match part_of {
        // The Tasks of the referrals based on the parent Task's referral (onward referrals).
        Some(task_id) => match task_referral(state, &client, &task_id).await? {
            Some(referral) => {
                query.based_on = Some(referral);
                state
                    .store
                    .search_resources(&client, resource_type, &query)
                    .await?
            }
            None => SearchPage {
                total: 0,
                resources: vec![],
            },
        },
        None => {
            state
                .store
                .search_resources(&client, resource_type, &query)
                .await?
        }
    };
    let mut included = Vec::new();
    let mut notes = search.ignored.clone();
    if with_parts {
        for task in &page.resources {
            let Some(referral) = focus_of(task)? else {
                continue;
            };
            let children = ResourceQuery {
                based_on: Some(referral),
                count: MAX_COUNT,
                ..Default::default()
            };
            let found = state
                .store
                .search_resources(&client, resource_type, &children)
                .await?
                .resources;
            if included.len() + found.len() > MAX_INCLUDED {
                notes.push(included_limited());
                break;
            }
            included.extend(found);
        }
    }
    let accessed = Accessed {
        actor: crate::domain::Actor::client(&client),
        action: "search",
        resource_type,
        resource_id: None,
        patient_id: query.patient_id.as_deref(),
        found: page.total > 0,
    };
    access::record(state, request, accessed).await?;
    let returned = page
        .resources
        .iter()
        .chain(&included)
        .map(|r| (r.resource_type.as_str(), r.id.as_str()));
    let actor = crate::domain::Actor::client(&client);
    access::record_each(state, request, &actor, "search", returned).await?;
    let base = state.config.base_url();
    Ok(Reply::ok(searchset(
        &base,
        resource_type,
        &page,
        &search.kept,
        (query.count, query.offset),
        &included,
        &notes,
    )?))
}

/// The referral a Task of `client`'s is about (its `focus`), if the Task is one of theirs.
async fn task_referral(
    state: &AppState,
    client: &crate::domain::ClientId,
    task_id: &str,
) -> Result<Option<String>, ApiError> {
    match state.store.read_resource(client, "Task", task_id).await? {
        Some(task) => Ok(focus_of(&task)?),
        None => Ok(None),
    }
}

/// A stored Task's `focus` (`ServiceRequest/{id}`) as the referral id.
fn focus_of(task: &StoredResource) -> Result<Option<String>, StoreError> {
    Ok(task.json()?["focus"]["reference"]
        .as_str()
        .and_then(|r| r.strip_prefix("ServiceRequest/"))
        .map(str::to_string))
}

/// The warning of a page whose `_revinclude` stopped at [`MAX_INCLUDED`].
pub fn included_limited() -> Issue {
    let mut issue = Issue::error(
        "too-costly",
        format!(
            "_revinclude added at most {MAX_INCLUDED} resources to this page and stopped there: \
             ask for a smaller _count."
        ),
    )
    .with_message_id("search-included-limited");
    issue.severity = Severity::Warning;
    issue
}

/// A whole-number parameter (`_count`, `_offset`, `$expand`'s `count`).
pub fn whole_number(name: &str, value: &str) -> Result<usize, ApiError> {
    value
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("{name} must be a whole number; got {value:?}.")))
}

/// The id of a reference parameter: `Patient/123` or a bare `123` (for `resource_type` Patient).
pub fn reference_id(value: &str, resource_type: &str) -> String {
    value
        .strip_prefix(resource_type)
        .and_then(|rest| rest.strip_prefix('/'))
        .unwrap_or(value)
        .to_string()
}

/// A token parameter: `system|code`, `|code` or `code` → (system, code).
pub fn token(value: &str) -> (Option<String>, String) {
    match value.split_once('|') {
        Some((system, code)) if !system.is_empty() => (Some(system.to_string()), code.to_string()),
        Some((_, code)) => (None, code.to_string()),
        None => (None, value.to_string()),
    }
}

fn page_link(
    base: &str,
    resource_type: &str,
    relation: &str,
    params: &[(String, String)],
    count: usize,
    offset: usize,
) -> Value {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in params {
        query.append_pair(name, value);
    }
    query.append_pair("_count", &count.to_string());
    query.append_pair("_offset", &offset.to_string());
    json!({"relation": relation, "url": format!("{base}/fhir/{resource_type}?{}", query.finish())})
}

/// A `searchset` Bundle: matches, then included resources and an outcome for ignored parameters.
pub fn searchset(
    base: &str,
    resource_type: &str,
    page: &SearchPage,
    params: &[(String, String)],
    (count, offset): (usize, usize),
    included: &[StoredResource],
    ignored: &[Issue],
) -> Result<Value, StoreError> {
    let mut links = vec![page_link(
        base,
        resource_type,
        "self",
        params,
        count,
        offset,
    )];
    if count > 0 && offset + count < page.total {
        links.push(page_link(
            base,
            resource_type,
            "next",
            params,
            count,
            offset + count,
        ));
    }
    if offset > 0 {
        links.push(page_link(
            base,
            resource_type,
            "previous",
            params,
            count,
            offset.saturating_sub(count),
        ));
    }
    let entry = |r: &StoredResource, mode: &str| -> Result<Value, StoreError> {
        Ok(json!({
            "fullUrl": format!("{base}/fhir/{}/{}", r.resource_type, r.id),
            "resource": r.json()?,
            "search": {"mode": mode}
        }))
    };
    let mut entries = Vec::with_capacity(page.resources.len() + included.len() + 1);
    for r in &page.resources {
        entries.push(entry(r, "match")?);
    }
    for r in included {
        entries.push(entry(r, "include")?);
    }
    if !ignored.is_empty() {
        entries
            .push(json!({"resource": operation_outcome(ignored), "search": {"mode": "outcome"}}));
    }
    Ok(
        json!({"resourceType": "Bundle", "type": "searchset", "total": page.total, "link": links, "entry": entries}),
    )
}

/// Adds an extension to the `search` of the searchset's matches, in order (`None`: none for
/// that one). The matches come first in a searchset, so the i-th extension is the i-th match's.
pub fn extend_matches(bundle: &mut Value, extensions: &[Option<Value>]) {
    let Some(entries) = bundle["entry"].as_array_mut() else {
        return;
    };
    for (entry, extension) in entries.iter_mut().zip(extensions) {
        if let Some(e) = extension {
            entry["search"]["extension"] = json!([e]);
        }
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    const TASKS: Parameters = Parameters {
        resource_type: "Task",
        names: &["focus", "_count", "_offset"],
        paged: true,
        lenient: true,
    };

    fn parse(parameters: &Parameters, uri: &str, prefer: Option<&str>) -> Result<Search, ApiError> {
        let mut request = TestRequest::with_uri(uri);
        if let Some(prefer) = prefer {
            request = request.insert_header(("prefer", prefer));
        }
        parameters.parse(&request.to_http_request(), |name, _| Ok(name == "focus"))
    }

    #[test]
    fn paging_known_and_unknown_parameters() {
        let search = parse(
            &TASKS,
            "/x?focus=ServiceRequest/1&_count=500&_offset=3&_format=json&colour=red",
            None,
        )
        .unwrap();
        assert_eq!((search.count, search.offset), (MAX_COUNT, 3));
        assert_eq!(
            search.kept,
            vec![("focus".to_string(), "ServiceRequest/1".to_string())]
        );
        assert_eq!(search.ignored.len(), 1);
        assert_eq!(search.ignored[0].severity, Severity::Warning);
        assert_eq!(parse(&TASKS, "/x", None).unwrap().count, DEFAULT_COUNT);
        assert!(parse(&TASKS, "/x?_count=many", None).is_err());
    }

    #[test]
    fn strict_handling_or_a_strict_resource_refuses_unknown_parameters() {
        assert!(parse(&TASKS, "/x?colour=red", Some("handling=strict")).is_err());
        let strict = Parameters {
            lenient: false,
            ..TASKS
        };
        assert!(parse(&strict, "/x?colour=red", None).is_err());
        let unpaged = Parameters {
            paged: false,
            ..TASKS
        };
        assert_eq!(
            parse(&unpaged, "/x?_count=5", None).unwrap().ignored.len(),
            1
        );
    }

    #[test]
    fn value_kinds() {
        assert_eq!(reference_id("Patient/p1", "Patient"), "p1");
        assert_eq!(reference_id("p1", "Patient"), "p1");
        assert_eq!(token("http://s|c"), (Some("http://s".into()), "c".into()));
        assert_eq!(token("|c"), (None, "c".into()));
        assert_eq!(token("c"), (None, "c".into()));
    }
}
