//! References inside one submitted tree: a resource with `contained` ones, or a Bundle whose
//! entries point at each other by `fullUrl` (`urn:uuid:…`) or `Type/id`.

use std::collections::HashMap;

use serde_json::Value;

/// A resource found in the submitted tree, with where it sits (a FHIRPath-style expression).
#[derive(Debug, Clone)]
pub struct Located<'a> {
    pub resource: &'a Value,
    pub path: String,
    /// For a contained resource, its container: `#id` references inside it resolve there.
    pub container: Option<Box<Located<'a>>>,
}

impl Located<'_> {
    pub fn resource_type(&self) -> &str {
        self.resource
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

/// Every top-level resource of a submission: the Bundle's entries, or the single resource.
#[derive(Debug)]
pub struct Submission<'a> {
    entries: Vec<(Option<&'a str>, Located<'a>)>,
}

impl<'a> Submission<'a> {
    /// A Bundle's entries (with their `fullUrl`s) or a single resource.
    pub fn of(root: &'a Value) -> Self {
        let is_bundle = root.get("resourceType").and_then(Value::as_str) == Some("Bundle");
        let entries = if is_bundle {
            root.get("entry")
                .and_then(Value::as_array)
                .map(|entries| {
                    entries
                        .iter()
                        .enumerate()
                        .filter_map(|(i, entry)| {
                            let resource = entry.get("resource")?;
                            let full_url = entry.get("fullUrl").and_then(Value::as_str);
                            let path = format!("Bundle.entry[{i}].resource");
                            Some((
                                full_url,
                                Located {
                                    resource,
                                    path,
                                    container: None,
                                },
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default()
        } else {
            let path = root
                .get("resourceType")
                .and_then(Value::as_str)
                .unwrap_or("Resource")
                .to_string();
            vec![(
                None,
                Located {
                    resource: root,
                    path,
                    container: None,
                },
            )]
        };
        Submission { entries }
    }

    /// The top-level resources of one type.
    pub fn of_type(&self, resource_type: &str) -> Vec<Located<'a>> {
        self.entries
            .iter()
            .filter(|(_, located)| located.resource_type() == resource_type)
            .map(|(_, located)| located.clone())
            .collect()
    }

    /// Resolves `reference` as written inside `from`: `#id` against `from.contained`, otherwise
    /// against the entries by `fullUrl` or `Type/id`. `None` when it points outside the submission.
    pub fn resolve(&self, from: &Located<'a>, reference: &str) -> Option<Located<'a>> {
        if let Some(local) = reference.strip_prefix('#') {
            return resolve_contained(from, local);
        }
        self.entries.iter().find_map(|(full_url, located)| {
            let matches = full_url.is_some_and(|url| names(url, reference))
                || is_type_and_id(located.resource, reference);
            matches.then(|| located.clone())
        })
    }
}

/// Whether a `fullUrl` is `reference` or ends with `/reference` (compared in place: resolution
/// runs for every reference of every referral).
fn names(full_url: &str, reference: &str) -> bool {
    full_url == reference
        || full_url
            .strip_suffix(reference)
            .is_some_and(|rest| rest.ends_with('/'))
}

/// `#id` points into the container's `contained` list, also when written inside a contained resource.
fn resolve_contained<'a>(from: &Located<'a>, local: &str) -> Option<Located<'a>> {
    let container = from.container.as_deref().unwrap_or(from);
    let contained = container.resource.get("contained")?.as_array()?;
    contained.iter().enumerate().find_map(|(i, resource)| {
        (resource.get("id").and_then(Value::as_str) == Some(local)).then(|| Located {
            resource,
            path: format!("{}.contained[{i}]", container.path),
            container: Some(Box::new(container.clone())),
        })
    })
}

/// Whether `reference` is `Type/id` of `resource`.
fn is_type_and_id(resource: &Value, reference: &str) -> bool {
    let field = |name| resource.get(name).and_then(Value::as_str);
    let (Some(resource_type), Some(id)) = (field("resourceType"), field("id")) else {
        return false;
    };
    reference
        .strip_prefix(resource_type)
        .and_then(|rest| rest.strip_prefix('/'))
        == Some(id)
}

/// Rewrites every `reference` in `value` found in `map` (old reference → new `Type/id`), as a
/// FHIR server must when it assigns ids to the entries of a transaction.
pub fn rewrite_references(value: &mut Value, map: &HashMap<String, String>) {
    match value {
        Value::Object(object) => {
            for (key, child) in object.iter_mut() {
                match child {
                    Value::String(text) if key == "reference" => {
                        if let Some(new) = map.get(text.as_str()) {
                            *text = new.clone();
                        }
                    }
                    _ => rewrite_references(child, map),
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| rewrite_references(item, map)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bundle() -> Value {
        json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": "urn:uuid:aaa", "resource": {"resourceType": "Patient", "id": "p"}},
            {"fullUrl": "urn:uuid:bbb", "resource": {"resourceType": "ServiceRequest",
              "subject": {"reference": "urn:uuid:aaa"},
              "contained": [{"resourceType": "Consent", "id": "c1"}]}}
        ]})
    }

    #[test]
    fn resolves_by_full_url_type_id_and_contained() {
        let root = bundle();
        let submission = Submission::of(&root);
        let sr = submission.of_type("ServiceRequest").remove(0);
        assert_eq!(sr.path, "Bundle.entry[1].resource");
        let patient = submission.resolve(&sr, "urn:uuid:aaa").unwrap();
        assert_eq!(patient.path, "Bundle.entry[0].resource");
        assert!(submission.resolve(&sr, "Patient/p").is_some());
        let consent = submission.resolve(&sr, "#c1").unwrap();
        assert_eq!(consent.path, "Bundle.entry[1].resource.contained[0]");
        // A reference written inside a contained resource resolves against the same container.
        let again = submission.resolve(&consent, "#c1").unwrap();
        assert_eq!(again.path, "Bundle.entry[1].resource.contained[0]");
        assert!(submission.resolve(&sr, "Patient/elsewhere").is_none());
        assert!(submission.resolve(&sr, "Patient/pp").is_none());
        assert!(submission.resolve(&sr, "Patientp").is_none());
        assert!(submission.resolve(&sr, "aaa").is_none());
        assert!(names("https://x.example/fhir/Patient/p", "Patient/p"));
        assert!(!names("https://x.example/fhir/XPatient/p", "Patient/p"));
    }

    #[test]
    fn rewrites_references() {
        let mut root = bundle();
        let map = HashMap::from([("urn:uuid:aaa".to_string(), "Patient/new".to_string())]);
        rewrite_references(&mut root, &map);
        assert_eq!(
            root["entry"][1]["resource"]["subject"]["reference"],
            "Patient/new"
        );
    }
}
