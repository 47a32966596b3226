//! Snapshots for the profiles a server publishes.
//!
//! Our profiles are written as differentials; the validator lays them over the base
//! definitions itself and never needs a snapshot. Another validator (the HL7 Java validator,
//! Firely) loading a profile from `GET /fhir/StructureDefinition/{id}` does need one, so this
//! module writes it the way the FHIR R4 rules for snapshot generation describe
//! (profiling.html#snapshot): start from the base definition's snapshot and apply each
//! differential element in order, unfolding a complex type's elements when the differential
//! constrains inside it, and creating a slice (with its own copy of the sliced element) when
//! the differential names one.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use crate::defs::{base_definition_texts, LoadError};

/// Why a snapshot could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("StructureDefinition {0} has no baseDefinition")]
    NoBase(String),
    #[error("base definition {0} is not known")]
    UnknownBase(String),
    #[error("StructureDefinition {profile}: differential element {id} has no place in the base ({reason})")]
    Unplaced {
        profile: String,
        id: String,
        reason: String,
    },
    #[error("StructureDefinition {0} has no differential")]
    NoDifferential(String),
}

/// The base R4 StructureDefinitions (datatypes and resources), by canonical URL.
pub struct BaseDefinitions {
    by_url: HashMap<String, Value>,
}

impl BaseDefinitions {
    /// Parses the embedded R4 definitions (a few MB: do it once).
    pub fn bundled() -> Result<BaseDefinitions, LoadError> {
        let mut by_url = HashMap::new();
        for (file, text) in base_definition_texts() {
            let bundle: Value = serde_json::from_str(text).map_err(|source| LoadError::Json {
                file: file.to_string(),
                source,
            })?;
            let entries = bundle
                .get("entry")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for mut e in entries {
                let r = e["resource"].take();
                if r.get("resourceType").and_then(Value::as_str) == Some("StructureDefinition") {
                    if let Some(url) = r.get("url").and_then(Value::as_str) {
                        by_url.insert(url.to_string(), r);
                    }
                }
            }
        }
        Ok(BaseDefinitions { by_url })
    }

    fn get(&self, url: &str) -> Option<&Value> {
        self.by_url.get(crate::model::strip_version(url))
    }

    /// The snapshot elements of a base definition, or of one of `profiles` (generated).
    fn snapshot_of(&self, url: &str, profiles: &[Value]) -> Result<Vec<Value>, SnapshotError> {
        if let Some(sd) = self.get(url) {
            return Ok(elements(sd, "snapshot"));
        }
        let own = profiles
            .iter()
            .find(|p| {
                p.get("url").and_then(Value::as_str) == Some(crate::model::strip_version(url))
            })
            .ok_or_else(|| SnapshotError::UnknownBase(url.to_string()))?;
        let with = self.with_snapshot(own, profiles)?;
        Ok(elements(&with, "snapshot"))
    }

    /// `profile` with a `snapshot` generated from its base and its differential. `profiles` are
    /// other profiles it may be based on (a profile of a profile).
    pub fn with_snapshot(
        &self,
        profile: &Value,
        profiles: &[Value],
    ) -> Result<Value, SnapshotError> {
        let url = profile
            .get("url")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let base = profile
            .get("baseDefinition")
            .and_then(Value::as_str)
            .ok_or_else(|| SnapshotError::NoBase(url.clone()))?;
        let mut snapshot = self.snapshot_of(base, profiles)?;
        let diff = profile
            .get("differential")
            .and_then(|d| d.get("element"))
            .and_then(Value::as_array)
            .ok_or_else(|| SnapshotError::NoDifferential(url.clone()))?;
        for d in diff {
            let id = d
                .get("id")
                .or_else(|| d.get("path"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            let at = self
                .place(&mut snapshot, id)
                .map_err(|reason| SnapshotError::Unplaced {
                    profile: url.clone(),
                    id: id.to_string(),
                    reason,
                })?;
            merge(&mut snapshot[at], d, &url);
        }
        let mut out = profile.clone();
        out["snapshot"] = json!({ "element": snapshot });
        Ok(out)
    }

    /// The index of the snapshot element with `id`, creating it (and the elements it needs) when
    /// the differential reaches inside a datatype or names a new slice.
    fn place(&self, snapshot: &mut Vec<Value>, id: &str) -> Result<usize, String> {
        if let Some(i) = find(snapshot, id) {
            return Ok(i);
        }
        let (parent_id, last) = id
            .rsplit_once('.')
            .ok_or_else(|| "not in the base".to_string())?;
        let (name, slice) = match last.split_once(':') {
            Some((n, s)) => (n, Some(s)),
            None => (last, None),
        };
        let parent = self.place(snapshot, parent_id)?;
        let plain_id = format!("{parent_id}.{name}");
        if find(snapshot, &plain_id).is_none() {
            if let Some(i) = choice_slice(snapshot, parent_id, name) {
                // `value[x]` constrained to one type by its type-specific name.
                return Ok(i);
            }
            let has_children = snapshot
                .get(parent + 1)
                .and_then(|e| e.get("id"))
                .and_then(Value::as_str)
                .is_some_and(|c| c.starts_with(&format!("{parent_id}.")));
            if !has_children {
                self.unfold(snapshot, parent)?;
            }
        }
        let Some(plain) = find(snapshot, &plain_id) else {
            if let Some(i) = choice_slice(snapshot, parent_id, name) {
                return Ok(i);
            }
            return Err(format!("no element {name} under {parent_id}"));
        };
        let Some(slice) = slice else {
            return Ok(plain);
        };
        Ok(add_slice(snapshot, plain, &plain_id, slice, None))
    }

    /// Inserts the child elements of `snapshot[at]`'s (single, complex) type after it.
    fn unfold(&self, snapshot: &mut Vec<Value>, at: usize) -> Result<(), String> {
        let el = &snapshot[at];
        let types = el.get("type").and_then(Value::as_array);
        let code = match types.map(Vec::as_slice) {
            Some([t]) => t.get("code").and_then(Value::as_str).unwrap_or_default(),
            Some(_) => return Err("a choice of types cannot be unfolded".into()),
            None => return Err("the element has no type".into()),
        };
        let sd = self
            .get(&format!("http://hl7.org/fhir/StructureDefinition/{code}"))
            .ok_or_else(|| format!("type {code} is not known"))?;
        let (id, path) = (str_of(el, "id"), str_of(el, "path"));
        let children: Vec<Value> = elements(sd, "snapshot")
            .into_iter()
            .skip(1)
            .map(|mut c| {
                let rest = |k: &str| {
                    c.get(k)
                        .and_then(Value::as_str)
                        .and_then(|s| s.split_once('.'))
                        .map(|(_, r)| r.to_string())
                        .unwrap_or_default()
                };
                let (rid, rpath) = (rest("id"), rest("path"));
                c["id"] = json!(format!("{id}.{rid}"));
                c["path"] = json!(format!("{path}.{rpath}"));
                c
            })
            .collect();
        if children.is_empty() {
            return Err(format!("type {code} has no elements to constrain"));
        }
        snapshot.splice(at + 1..at + 1, children);
        Ok(())
    }
}

fn str_of(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn elements(sd: &Value, which: &str) -> Vec<Value> {
    sd.get(which)
        .and_then(|s| s.get("element"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn find(snapshot: &[Value], id: &str) -> Option<usize> {
    snapshot
        .iter()
        .position(|e| e.get("id").and_then(Value::as_str) == Some(id))
}

/// The end of the subtree of the element with `id` (its children and slices).
fn subtree_end(snapshot: &[Value], from: usize, id: &str) -> usize {
    let (child, slice) = (format!("{id}."), format!("{id}:"));
    let mut end = from + 1;
    while end < snapshot.len() {
        let eid = snapshot[end]
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if eid.starts_with(&child) || eid.starts_with(&slice) {
            end += 1;
        } else {
            break;
        }
    }
    end
}

/// Adds slice `name` of the element at `plain` (id `plain_id`) at the end of its subtree, as a
/// copy of the sliced element (children are unfolded later when constrained).
fn add_slice(
    snapshot: &mut Vec<Value>,
    plain: usize,
    plain_id: &str,
    name: &str,
    types: Option<Value>,
) -> usize {
    let end = subtree_end(snapshot, plain, plain_id);
    let mut slice = snapshot[plain].clone();
    if let Some(o) = slice.as_object_mut() {
        o.remove("slicing");
    }
    slice["id"] = json!(format!("{plain_id}:{name}"));
    slice["sliceName"] = json!(name);
    if let Some(t) = types {
        slice["type"] = t;
    }
    snapshot.insert(end, slice);
    end
}

/// `value[x]` constrained by a type-specific name (`valueCodeableConcept`): a type slice of the
/// choice element, which gets type slicing if it has none.
fn choice_slice(snapshot: &mut Vec<Value>, parent_id: &str, name: &str) -> Option<usize> {
    let i = snapshot.iter().position(|e| {
        e.get("id")
            .and_then(Value::as_str)
            .and_then(|id| id.strip_prefix(parent_id))
            .and_then(|r| r.strip_prefix('.'))
            .and_then(|r| r.strip_suffix("[x]"))
            .is_some_and(|stem| {
                name.strip_prefix(stem)
                    .is_some_and(|t| t.starts_with(|c: char| c.is_ascii_uppercase()))
            })
    })?;
    let choice_id = str_of(&snapshot[i], "id");
    let stem = choice_id
        .strip_suffix("[x]")?
        .rsplit('.')
        .next()?
        .to_string();
    let type_name = name.strip_prefix(stem.as_str())?;
    let typ = snapshot[i]
        .get("type")
        .and_then(Value::as_array)?
        .iter()
        .find(|t| {
            t.get("code")
                .and_then(Value::as_str)
                .is_some_and(|c| c.eq_ignore_ascii_case(type_name))
        })?
        .clone();
    let slice_id = format!("{choice_id}:{name}");
    if let Some(existing) = find(snapshot, &slice_id) {
        return Some(existing);
    }
    if snapshot[i].get("slicing").is_none() {
        snapshot[i]["slicing"] = json!({
            "discriminator": [{"type": "type", "path": "$this"}],
            "ordered": false,
            "rules": "open"
        });
    }
    Some(add_slice(snapshot, i, &choice_id, name, Some(json!([typ]))))
}

/// Applies one differential element to its snapshot element: constraints are added to the
/// base's, everything else the differential says replaces the base's.
fn merge(target: &mut Value, diff: &Value, profile: &str) {
    let Some(diff) = diff.as_object() else { return };
    let Some(t) = target.as_object_mut() else {
        return;
    };
    for (k, v) in diff {
        match k.as_str() {
            "id" | "path" => {}
            // Lists the differential adds to: a constraint replaces one with its key, a
            // condition is added once.
            "constraint" | "condition" => {
                let list = t.entry(k.clone()).or_insert_with(|| json!([]));
                let (Some(list), Some(new)) = (list.as_array_mut(), v.as_array()) else {
                    continue;
                };
                for item in new {
                    let mut item = item.clone();
                    if k == "constraint" && item.get("source").is_none() {
                        item["source"] = json!(profile);
                    }
                    let key = item.get("key").cloned();
                    list.retain(|old| {
                        *old != item && (key.is_none() || old.get("key") != key.as_ref())
                    });
                    list.push(item);
                }
            }
            _ => {
                if k.starts_with("fixed") || k.starts_with("pattern") {
                    t.retain(|old, _| !(old.starts_with("fixed") || old.starts_with("pattern")));
                }
                t.insert(k.clone(), v.clone());
            }
        }
    }
    strip_empty(t);
}

fn strip_empty(t: &mut Map<String, Value>) {
    t.retain(|_, v| !matches!(v, Value::Array(a) if a.is_empty()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(diff: Value) -> Value {
        json!({
            "resourceType": "StructureDefinition",
            "url": "https://example.org/StructureDefinition/T",
            "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient",
            "differential": {"element": diff}
        })
    }

    fn ids(sd: &Value) -> Vec<String> {
        elements(sd, "snapshot")
            .iter()
            .map(|e| str_of(e, "id"))
            .collect()
    }

    #[test]
    fn unfolds_types_and_creates_slices_in_place() {
        let base = BaseDefinitions::bundled().expect("base loads");
        let sd = profile(json!([
            {"id": "Patient.identifier", "path": "Patient.identifier",
             "slicing": {"discriminator": [{"type": "value", "path": "system"}], "rules": "open"}},
            {"id": "Patient.identifier:nhs", "path": "Patient.identifier", "sliceName": "nhs", "max": "1"},
            {"id": "Patient.identifier:nhs.system", "path": "Patient.identifier.system", "min": 1,
             "fixedUri": "https://fhir.nhs.uk/Id/nhs-number"},
            {"id": "Patient.name.family", "path": "Patient.name.family", "min": 1},
            {"id": "Patient.birthDate", "path": "Patient.birthDate", "min": 1,
             "constraint": [{"key": "t-1", "severity": "error", "human": "h", "expression": "true"}]}
        ]));
        let out = base.with_snapshot(&sd, &[]).expect("snapshot");
        let ids = ids(&out);
        let pos = |id: &str| ids.iter().position(|i| i == id).unwrap_or(usize::MAX);
        assert!(pos("Patient.identifier") < pos("Patient.identifier:nhs"));
        assert_eq!(
            pos("Patient.identifier:nhs") + 2,
            pos("Patient.identifier:nhs.extension")
        );
        assert!(pos("Patient.identifier:nhs.system") < pos("Patient.active"));
        assert!(pos("Patient.name.family") > pos("Patient.name"));
        let els = elements(&out, "snapshot");
        let sys = &els[pos("Patient.identifier:nhs.system")];
        assert_eq!(sys["path"], "Patient.identifier.system");
        assert_eq!(sys["min"], 1);
        assert_eq!(sys["fixedUri"], "https://fhir.nhs.uk/Id/nhs-number");
        let bd = &els[pos("Patient.birthDate")];
        let keys: Vec<&str> = bd["constraint"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["key"].as_str())
            .collect();
        assert!(keys.contains(&"ele-1") && keys.contains(&"t-1"), "{keys:?}");
        assert_eq!(
            bd["constraint"]
                .as_array()
                .and_then(|a| a.last())
                .map(|c| &c["source"]),
            Some(&json!("https://example.org/StructureDefinition/T"))
        );
        // Every element of the base is still there, once.
        let mut seen = std::collections::HashSet::new();
        assert!(ids.iter().all(|i| seen.insert(i.clone())), "duplicate ids");
    }

    #[test]
    fn a_type_specific_choice_name_becomes_a_type_slice() {
        let base = BaseDefinitions::bundled().expect("base loads");
        let mut sd = profile(json!([
            {"id": "Observation.valueInteger", "path": "Observation.valueInteger", "min": 1}
        ]));
        sd["baseDefinition"] = json!("http://hl7.org/fhir/StructureDefinition/Observation");
        let out = base.with_snapshot(&sd, &[]).expect("snapshot");
        let els = elements(&out, "snapshot");
        let slice = els
            .iter()
            .find(|e| e["id"] == "Observation.value[x]:valueInteger")
            .expect("slice");
        assert_eq!(slice["type"], json!([{"code": "integer"}]));
        assert_eq!(slice["path"], "Observation.value[x]");
        let choice = els
            .iter()
            .find(|e| e["id"] == "Observation.value[x]")
            .expect("choice");
        assert_eq!(choice["slicing"]["discriminator"][0]["type"], "type");
    }

    #[test]
    fn a_path_outside_the_base_is_an_error() {
        let base = BaseDefinitions::bundled().expect("base loads");
        let sd = profile(json!([{"id": "Patient.nope", "path": "Patient.nope"}]));
        assert!(matches!(
            base.with_snapshot(&sd, &[]),
            Err(SnapshotError::Unplaced { .. })
        ));
    }
}
