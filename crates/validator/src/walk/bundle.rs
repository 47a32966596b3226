//! Bundle rules the HL7 validator checks beyond the R4 invariants: absolute `fullUrl`s,
//! link relations that occur once, and search sets whose entries match the search.

use serde_json::{Map, Value};

use super::Walker;
use crate::issue::{IssueCode, Severity};

/// Whether `url` starts with a URI scheme (`http:`, `urn:`, ...).
fn is_absolute(url: &str) -> bool {
    let Some((scheme, _)) = url.split_once(':') else {
        return false;
    };
    scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

fn array<'a>(obj: &'a Map<String, Value>, key: &str) -> &'a [Value] {
    obj.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The resource types a search's `self` link asks for: its `_type` parameter, or else the
/// type its path ends with (`base/Patient?name=x`). Empty when the link does not say.
fn searched_types(link: &str, is_type: impl Fn(&str) -> bool) -> Vec<String> {
    let (path, query) = link.split_once('?').unwrap_or((link, ""));
    let from_query: Vec<String> = query
        .split('&')
        .filter_map(|p| p.strip_prefix("_type="))
        .flat_map(|v| v.split(','))
        .filter(|t| is_type(t))
        .map(str::to_string)
        .collect();
    if !from_query.is_empty() {
        return from_query;
    }
    path.rsplit('/')
        .next()
        .filter(|t| is_type(t))
        .map(|t| vec![t.to_string()])
        .unwrap_or_default()
}

impl Walker<'_, '_> {
    fn bundle_error(&mut self, key: &str, i: usize, id: &'static str, msg: String) {
        let mark = self.push(key);
        self.push_index(i);
        self.report(Severity::Error, IssueCode::Invalid, id, msg, None);
        self.pop(mark);
    }

    pub(super) fn bundle_rules(&mut self, bundle: &Map<String, Value>) {
        let is_root = self
            .bundle_root
            .and_then(Value::as_object)
            .is_some_and(|root| std::ptr::eq(root, bundle));
        if is_root && bundle.get("type").and_then(Value::as_str) == Some("document") {
            self.document_references(bundle);
        }
        let links = array(bundle, "link");
        for (i, link) in links.iter().enumerate() {
            let relation = link.get("relation").and_then(Value::as_str);
            let earlier = links[..i]
                .iter()
                .any(|l| l.get("relation").and_then(Value::as_str) == relation);
            if let (Some(r), true) = (relation, earlier) {
                self.bundle_error(
                    "link",
                    i,
                    "bundle-link-once",
                    format!("The link relationship type '{r}' can only occur once"),
                );
            }
        }
        let entries = array(bundle, "entry");
        for (i, e) in entries.iter().enumerate() {
            if let Some(full) = e.get("fullUrl").and_then(Value::as_str) {
                if !is_absolute(full) {
                    self.bundle_error(
                        "entry",
                        i,
                        "bundle-fullurl-absolute",
                        format!("The fullUrl must be an absolute URL (not '{full}')"),
                    );
                } else if let Some(msg) = self.rest_full_url(full, e.get("resource")) {
                    self.bundle_error("entry", i, "bundle-fullurl-rest", msg);
                }
            }
        }
        if bundle.get("type").and_then(Value::as_str) == Some("searchset") {
            self.search_set(links, entries);
        }
    }

    /// A RESTful fullUrl (`http(s)://../<Type>/<id>`, a resource type before the last
    /// segment) must end with the entry resource's type and id.
    fn rest_full_url(&self, full: &str, resource: Option<&Value>) -> Option<String> {
        if !(full.starts_with("http://") || full.starts_with("https://")) {
            return None;
        }
        let path = full.split("/_history/").next().unwrap_or(full);
        let mut segments = path.rsplit('/');
        let (Some(id), Some(rt)) = (segments.next(), segments.next()) else {
            return None;
        };
        if !self.val.defs.is_resource_type(rt) {
            return None;
        }
        let resource = resource?;
        let own_type = resource.get("resourceType").and_then(Value::as_str)?;
        let own_id = resource.get("id").and_then(Value::as_str)?;
        (own_type != rt || own_id != id).then(|| {
            format!(
                "The fullUrl '{full}' looks like a RESTful server URL, so it must end with the correct type and id (/{own_type}/{own_id})"
            )
        })
    }

    fn search_set(&mut self, links: &[Value], entries: &[Value]) {
        let self_link = links
            .iter()
            .find(|l| l.get("relation").and_then(Value::as_str) == Some("self"))
            .and_then(|l| l.get("url"))
            .and_then(Value::as_str);
        let defs = &self.val.defs;
        let wanted = self_link
            .map(|l| searched_types(l, |t| defs.is_resource_type(t)))
            .unwrap_or_default();
        for (i, e) in entries.iter().enumerate() {
            let Some(resource) = e.get("resource") else {
                continue;
            };
            let rt = resource
                .get("resourceType")
                .and_then(Value::as_str)
                .unwrap_or("");
            let mode = e
                .get("search")
                .and_then(|s| s.get("mode"))
                .and_then(Value::as_str);
            let mut errors = Vec::new();
            match mode {
                Some("outcome") if rt != "OperationOutcome" => {
                    errors.push((
                        "bundle-search-outcome",
                        format!("This is not an OperationOutcome ({rt})"),
                    ));
                }
                Some("match") => {
                    if resource.get("id").is_none() {
                        errors.push((
                            "bundle-search-id",
                            "Search results must have ids".to_string(),
                        ));
                    }
                    if !wanted.is_empty() && !wanted.iter().any(|w| w == rt) {
                        errors.push((
                            "bundle-search-type",
                            format!(
                                "This is not a matching resource type for the specified search ({rt} expecting [{}])",
                                wanted.join(", ")
                            ),
                        ));
                    }
                }
                _ => {}
            }
            for (id, msg) in errors {
                let mark = self.push("entry");
                self.push_index(i);
                self.push("resource");
                self.report(Severity::Error, IssueCode::Invalid, id, msg, None);
                self.pop(mark);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_urls() {
        assert!(is_absolute("urn:uuid:1"));
        assert!(is_absolute("http://x/Patient/1"));
        assert!(!is_absolute("Patient/1"));
        assert!(!is_absolute("1:2"));
    }

    #[test]
    fn searched_types_from_the_self_link() {
        let is_type = |t: &str| matches!(t, "Patient" | "Observation" | "DocumentReference");
        assert_eq!(searched_types("base/Patient?name=x", is_type), ["Patient"]);
        assert_eq!(
            searched_types("base?_type=Observation,DocumentReference", is_type),
            ["Observation", "DocumentReference"]
        );
        assert!(searched_types("base/metadata", is_type).is_empty());
    }
}
