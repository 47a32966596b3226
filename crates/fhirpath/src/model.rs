//! A [`ModelInfo`] built from FHIR StructureDefinitions.
//!
//! The validator already loads the R4 StructureDefinitions, so it can hand
//! them here once and get typed navigation (`Patient.birthDate` is a `date`,
//! `Patient.gender` is a `code`) for every evaluation.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use crate::ModelInfo;

/// Element types and type hierarchy read from StructureDefinition snapshots.
#[derive(Debug, Default, Clone)]
pub struct StructureDefinitionModel {
    /// parent type (or backbone path) → element name → type.
    elements: HashMap<String, HashMap<String, String>>,
    /// type → base type (`code` → `string`, `Patient` → `DomainResource`).
    bases: HashMap<String, String>,
    types: HashSet<String>,
    /// Whether `types` lists every type, so unknown names are errors.
    complete: bool,
}

const FHIRPATH_SYSTEM_PREFIX: &str = "http://hl7.org/fhirpath/System.";

impl StructureDefinitionModel {
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares that every FHIR type has been added, so `is`/`as`/`ofType`
    /// with an unknown type name become errors. Leave it off when loading
    /// only some resources' definitions.
    pub fn assume_complete(mut self) -> Self {
        self.complete = true;
        self
    }

    /// Builds a model from StructureDefinition resources (other resources,
    /// e.g. a whole `profiles-*.json` Bundle's ValueSets, are ignored).
    pub fn from_definitions<'v>(definitions: impl IntoIterator<Item = &'v Value>) -> Self {
        let mut model = Self::new();
        for sd in definitions {
            model.add(sd);
        }
        model
    }

    /// Adds every StructureDefinition found in a Bundle's entries.
    pub fn add_bundle(&mut self, bundle: &Value) {
        let entries = bundle.get("entry").and_then(Value::as_array);
        for entry in entries.into_iter().flatten() {
            if let Some(resource) = entry.get("resource") {
                self.add(resource);
            }
        }
    }

    /// Adds one StructureDefinition. Constraint profiles only contribute
    /// their name as a subtype of the constrained type (`Age` → `Quantity`);
    /// their elements are the base type's.
    pub fn add(&mut self, sd: &Value) {
        if sd.get("resourceType").and_then(Value::as_str) != Some("StructureDefinition") {
            return;
        }
        let Some(name) = sd.get("id").and_then(Value::as_str) else {
            return;
        };
        let ty = sd.get("type").and_then(Value::as_str).unwrap_or(name);
        let constraint = sd.get("derivation").and_then(Value::as_str) == Some("constraint");
        self.types.insert(name.to_string());
        if constraint {
            if name != ty {
                self.bases.insert(name.to_string(), ty.to_string());
            }
            return;
        }
        if let Some(base) = sd
            .get("baseDefinition")
            .and_then(Value::as_str)
            .and_then(|b| b.rsplit('/').next())
        {
            self.bases.insert(ty.to_string(), base.to_string());
        }
        let elements = sd
            .pointer("/snapshot/element")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        self.add_elements(elements);
    }

    fn add_elements(&mut self, elements: &[Value]) {
        let paths: HashSet<&str> = elements
            .iter()
            .filter_map(|e| e.get("path").and_then(Value::as_str))
            .collect();
        let has_children = |path: &str| {
            let prefix = format!("{path}.");
            paths.iter().any(|p| p.starts_with(&prefix))
        };
        for element in elements {
            let Some(path) = element.get("path").and_then(Value::as_str) else {
                continue;
            };
            let Some((parent, name)) = path.rsplit_once('.') else {
                continue;
            };
            if name.ends_with("[x]") {
                continue; // choice types are typed by their JSON suffix
            }
            let Some(ty) = element_type(element, path, has_children(path)) else {
                continue;
            };
            self.elements
                .entry(parent.to_string())
                .or_default()
                .insert(name.to_string(), ty);
        }
    }
}

fn element_type(element: &Value, path: &str, has_children: bool) -> Option<String> {
    if let Some(reference) = element.get("contentReference").and_then(Value::as_str) {
        // R4 writes `#Questionnaire.item`; later versions prefix a URL.
        return reference.rsplit('#').next().map(str::to_string);
    }
    let types = element.get("type").and_then(Value::as_array)?;
    let [single] = types.as_slice() else {
        return None;
    };
    let code = single.get("code").and_then(Value::as_str)?;
    if matches!(code, "BackboneElement" | "Element") && has_children {
        return Some(path.to_string());
    }
    if let Some(system) = code.strip_prefix(FHIRPATH_SYSTEM_PREFIX) {
        // `Element.id`, `Extension.url`: FHIR strings/uris in JSON.
        return Some(
            match system {
                "String" => "string",
                "Boolean" => "boolean",
                "Integer" => "integer",
                "Decimal" => "decimal",
                "Date" => "date",
                "DateTime" => "dateTime",
                "Time" => "time",
                other => other,
            }
            .to_string(),
        );
    }
    Some(code.to_string())
}

impl ModelInfo for StructureDefinitionModel {
    fn element_type(&self, parent_type: &str, element: &str) -> Option<&str> {
        self.elements
            .get(parent_type)?
            .get(element)
            .map(String::as_str)
    }

    fn is_subtype(&self, type_name: &str, base: &str) -> Option<bool> {
        let mut current = type_name;
        // The chain is short (≤ 5 in R4); the bound guards against cycles.
        for _ in 0..16 {
            if current == base {
                return Some(true);
            }
            current = self.bases.get(current)?;
        }
        None
    }

    fn is_known_type(&self, name: &str) -> Option<bool> {
        if !self.complete {
            return None;
        }
        Some(self.types.contains(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn patient_sd() -> Value {
        json!({
            "resourceType": "StructureDefinition", "id": "Patient", "type": "Patient",
            "derivation": "specialization",
            "baseDefinition": "http://hl7.org/fhir/StructureDefinition/DomainResource",
            "snapshot": {"element": [
                {"path": "Patient"},
                {"path": "Patient.id", "type": [{"code": "http://hl7.org/fhirpath/System.String"}]},
                {"path": "Patient.gender", "type": [{"code": "code"}]},
                {"path": "Patient.deceased[x]", "type": [{"code": "boolean"}, {"code": "dateTime"}]},
                {"path": "Patient.contact", "type": [{"code": "BackboneElement"}]},
                {"path": "Patient.contact.name", "type": [{"code": "HumanName"}]},
                {"path": "Patient.link", "contentReference": "#Patient.contact"}
            ]}
        })
    }

    #[test]
    fn reads_element_types() {
        let sd = patient_sd();
        let m = StructureDefinitionModel::from_definitions([&sd]).assume_complete();
        assert_eq!(m.element_type("Patient", "gender"), Some("code"));
        assert_eq!(m.element_type("Patient", "id"), Some("string"));
        assert_eq!(
            m.element_type("Patient", "contact"),
            Some("Patient.contact")
        );
        assert_eq!(m.element_type("Patient.contact", "name"), Some("HumanName"));
        assert_eq!(m.element_type("Patient", "link"), Some("Patient.contact"));
        assert_eq!(m.element_type("Patient", "deceased"), None);
        assert_eq!(m.element_type("Patient", "nope"), None);
        assert_eq!(m.is_subtype("Patient", "DomainResource"), Some(true));
        assert_eq!(m.is_subtype("Patient", "Basic"), None);
        assert_eq!(m.is_known_type("Patient"), Some(true));
        assert_eq!(m.is_known_type("Patient1"), Some(false));
    }

    #[test]
    fn ignores_other_resources() {
        let m = StructureDefinitionModel::from_definitions([&json!({"resourceType": "ValueSet"})]);
        assert_eq!(m.element_type("ValueSet", "url"), None);
        assert_eq!(m.is_known_type("ValueSet"), None);
    }
}
