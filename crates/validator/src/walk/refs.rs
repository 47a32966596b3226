//! References resolved among the resources of the root Bundle or Parameters, as the HL7
//! validator resolves them: by `fullUrl` or by type and id, and a versioned reference
//! (`Type/id/_history/v`) only to the entry whose `meta.versionId` is `v`.

use serde_json::{Map, Value};

use super::{array, Walker};
use crate::issue::{IssueCode, Severity};
use crate::model::Aggregation;

/// Parameters nest `part`s; real ones are shallow.
const MAX_PARAMETER_DEPTH: usize = 8;
/// Sections nest; the walk's own depth cap bounds them anyway.
const MAX_SECTION_DEPTH: usize = 32;

/// A resource of the root Bundle (or Parameters) and the names it can be referenced by.
pub(crate) struct Entry<'r> {
    pub full_url: Option<&'r str>,
    pub type_name: Option<&'r str>,
    pub id: Option<&'r str>,
    pub version: Option<&'r str>,
    pub resource: &'r Value,
}

impl<'r> Entry<'r> {
    fn of(full_url: Option<&'r str>, resource: &'r Value) -> Option<Entry<'r>> {
        resource.is_object().then(|| Entry {
            full_url,
            type_name: resource.get("resourceType").and_then(Value::as_str),
            id: resource.get("id").and_then(Value::as_str),
            version: resource
                .get("meta")
                .and_then(|m| m.get("versionId"))
                .and_then(Value::as_str),
            resource,
        })
    }
}

/// The resources references may resolve to: a Bundle's entries, or the resources of a
/// Parameters (its parameters' and their parts'). Empty for any other root.
pub(crate) fn root_entries(root: &Value) -> Vec<Entry<'_>> {
    match root.get("resourceType").and_then(Value::as_str) {
        Some("Bundle") => array(root, "entry")
            .iter()
            .filter_map(|e| {
                let resource = e.get("resource")?;
                Entry::of(e.get("fullUrl").and_then(Value::as_str), resource)
            })
            .collect(),
        Some("Parameters") => {
            let mut out = Vec::new();
            parameter_resources(array(root, "parameter"), 0, &mut out);
            out
        }
        _ => Vec::new(),
    }
}

fn parameter_resources<'r>(params: &'r [Value], depth: usize, out: &mut Vec<Entry<'r>>) {
    if depth > MAX_PARAMETER_DEPTH {
        return;
    }
    for p in params {
        if let Some(e) = p.get("resource").and_then(|r| Entry::of(None, r)) {
            out.push(e);
        }
        parameter_resources(array(p, "part"), depth + 1, out);
    }
}

/// `Type/id/_history/v` split into the reference without the version and the version.
fn split_version(reference: &str) -> (&str, Option<&str>) {
    match reference.rsplit_once("/_history/") {
        Some((base, v)) if !v.is_empty() && !v.contains('/') => (base, Some(v)),
        _ => (reference, None),
    }
}

/// The entries a reference (not `#id`) resolves to: those whose `fullUrl` is the
/// reference, else those with the type and id it ends with; a versioned reference only
/// to entries of that version.
pub(crate) fn matches<'e, 'r>(entries: &'e [Entry<'r>], reference: &str) -> Vec<&'e Entry<'r>> {
    let (base, version) = split_version(reference);
    let version_ok = |e: &Entry<'_>| version.is_none() || e.version == version;
    let by_url: Vec<&Entry<'r>> = entries
        .iter()
        .filter(|e| e.full_url == Some(base) && version_ok(e))
        .collect();
    if !by_url.is_empty() {
        return by_url;
    }
    let mut segs = base.rsplit('/');
    let (Some(id), Some(t)) = (segs.next(), segs.next()) else {
        return Vec::new();
    };
    entries
        .iter()
        .filter(|e| e.type_name == Some(t) && e.id == Some(id) && version_ok(e))
        .collect()
}

/// A reference of a document's Composition: element path below the Composition, the
/// reference, and what it is (for the message).
type DocRef<'r> = (String, &'r str, &'static str);

/// The references at `v.key` (one or an array).
fn collect<'r>(out: &mut Vec<DocRef<'r>>, v: &'r Value, key: &str, path: &str, what: &'static str) {
    let reference = |x: &'r Value| x.get("reference").and_then(Value::as_str);
    match v.get(key) {
        Some(Value::Array(a)) => {
            for (i, x) in a.iter().enumerate() {
                if let Some(r) = reference(x) {
                    out.push((format!("{path}.{key}[{i}]"), r, what));
                }
            }
        }
        Some(x) => {
            if let Some(r) = reference(x) {
                out.push((format!("{path}.{key}"), r, what));
            }
        }
        None => {}
    }
}

/// References of a document's Composition that must resolve in the Bundle (the HL7
/// validator's document rules).
fn composition_references(composition: &Value) -> Vec<DocRef<'_>> {
    let mut out = Vec::new();
    collect(&mut out, composition, "subject", "", "Composition Subject");
    collect(&mut out, composition, "author", "", "Composition Author");
    collect(
        &mut out,
        composition,
        "encounter",
        "",
        "Composition Encounter",
    );
    collect(
        &mut out,
        composition,
        "custodian",
        "",
        "Composition Custodian",
    );
    for (i, a) in array(composition, "attester").iter().enumerate() {
        collect(
            &mut out,
            a,
            "party",
            &format!(".attester[{i}]"),
            "Composition Attester",
        );
    }
    for (i, e) in array(composition, "event").iter().enumerate() {
        collect(
            &mut out,
            e,
            "detail",
            &format!(".event[{i}]"),
            "Composition Event",
        );
    }
    sections(composition, "", 0, &mut out);
    out
}

fn sections<'r>(parent: &'r Value, path: &str, depth: usize, out: &mut Vec<DocRef<'r>>) {
    if depth > MAX_SECTION_DEPTH {
        return;
    }
    for (i, s) in array(parent, "section").iter().enumerate() {
        let here = format!("{path}.section[{i}]");
        collect(out, s, "author", &here, "Section Author");
        collect(out, s, "focus", &here, "Section Focus");
        collect(out, s, "entry", &here, "Section Entry");
        sections(s, &here, depth + 1, out);
    }
}

impl Walker<'_, '_> {
    /// A reference that resolves to several entries of the Bundle or Parameters (two
    /// versions of one resource, and the reference names no version).
    pub(super) fn reference_ambiguity(&mut self, reference: &str) {
        if self.bundle.len() < 2
            || reference.starts_with('#')
            || split_version(reference).1.is_some()
            || self.root_bundle_type() == Some("history")
        {
            return;
        }
        let n = matches(&self.bundle, reference).len();
        if n > 1 {
            let msg = format!("Multiple matches in bundle for reference {reference}");
            self.report(
                Severity::Error,
                IssueCode::Invalid,
                "reference-ambiguous",
                msg,
                None,
            );
        }
    }

    /// With [`crate::Validator::check_references_exist`]: a relative reference (`Type/id`)
    /// must resolve in the Bundle or Parameters.
    pub(super) fn reference_exists(&mut self, reference: &str) {
        if !self.val.check_references_exist
            || reference.starts_with('#')
            || reference.contains(':')
            || reference.contains('?')
            || !matches(&self.bundle, reference).is_empty()
        {
            return;
        }
        let msg = format!("Unable to resolve resource with reference '{reference}'");
        self.report(
            Severity::Error,
            IssueCode::NotFound,
            "reference-not-found",
            msg,
            None,
        );
    }

    /// A Reference whose type lists `aggregation` modes: the target must be where they
    /// allow (`contained`: in `contained`, `bundled`: in the Bundle, `referenced`:
    /// elsewhere).
    pub(super) fn reference_aggregation(&mut self, reference: &str, modes: Aggregation) {
        let (mode, name) = if reference.starts_with('#') {
            (Aggregation::CONTAINED, "contained")
        } else if !matches(&self.bundle, reference).is_empty() {
            (Aggregation::BUNDLED, "bundled")
        } else {
            (Aggregation::REFERENCED, "remote")
        };
        if modes.allows(mode) {
            return;
        }
        let msg = if mode == Aggregation::REFERENCED {
            format!(
                "Bundled or contained reference not found within the bundle/resource {reference}"
            )
        } else {
            format!(
                "Reference is {name}, which the aggregation mode(s) of this reference do not allow"
            )
        };
        self.report(
            Severity::Error,
            IssueCode::Invalid,
            "reference-aggregation",
            msg,
            None,
        );
    }

    fn root_bundle_type(&self) -> Option<&str> {
        self.bundle_root
            .and_then(|b| b.get("type"))
            .and_then(Value::as_str)
    }

    /// A document's Composition (its first entry) names its subject, authors, sections'
    /// entries ... by references that must each resolve to one entry of the Bundle.
    pub(super) fn document_references(&mut self, bundle: &Map<String, Value>) {
        let Some(composition) = bundle
            .get("entry")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(|e| e.get("resource"))
            .filter(|r| r.get("resourceType").and_then(Value::as_str) == Some("Composition"))
        else {
            return;
        };
        for (path, reference, what) in composition_references(composition) {
            if reference.starts_with('#') || reference.is_empty() {
                continue;
            }
            let n = matches(&self.bundle, reference).len();
            let msg = match n {
                1 => continue,
                0 => format!("Can't find '{reference}' in the bundle ({what})"),
                n => format!("Found {n} matches for '{reference}' in the bundle ({what})"),
            };
            let mark = self.push("entry[0].resource");
            self.path.push_str(&path);
            self.report(
                Severity::Error,
                IssueCode::NotFound,
                "bundle-document-reference",
                msg,
                None,
            );
            self.pop(mark);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn versioned_references_match_their_version_only() {
        let b = json!({"resourceType": "Bundle", "entry": [
            {"fullUrl": "http://x/Observation/o", "resource": {"resourceType": "Observation", "id": "o", "meta": {"versionId": "1"}}},
            {"fullUrl": "http://x/Observation/o", "resource": {"resourceType": "Observation", "id": "o", "meta": {"versionId": "2"}}}
        ]});
        let e = root_entries(&b);
        assert_eq!(matches(&e, "Observation/o").len(), 2);
        assert_eq!(matches(&e, "Observation/o/_history/2").len(), 1);
        assert_eq!(matches(&e, "http://x/Observation/o/_history/1").len(), 1);
        assert!(matches(&e, "Observation/o/_history/3").is_empty());
    }

    #[test]
    fn parameters_resources_are_entries() {
        let p = json!({"resourceType": "Parameters", "parameter": [
            {"name": "a", "resource": {"resourceType": "Patient", "id": "1"}},
            {"name": "b", "part": [{"name": "c", "resource": {"resourceType": "Coverage", "id": "2"}}]}
        ]});
        let e = root_entries(&p);
        assert_eq!(matches(&e, "Patient/1").len(), 1);
        assert_eq!(matches(&e, "Coverage/2").len(), 1);
        assert!(matches(&e, "Patient/2").is_empty());
    }
}
