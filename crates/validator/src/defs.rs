//! Loading the embedded and extra definitions into compiled form.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::Value;

use crate::model::{compile_sd, FastMap, FastSet, Sd, Strength};
use crate::terminology::{expand, CodeSystem, Expansion};

include!(concat!(env!("OUT_DIR"), "/sp_profiles.rs"));

static R4_TYPES: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../profiles/r4/profiles-types.json"
));
static R4_RESOURCES: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../profiles/r4/profiles-resources.json"
));
static R4_EXTENSIONS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../profiles/r4/extension-definitions.json"
));
static R4_VITAL_SIGNS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../profiles/r4/profiles-vitalsigns.json"
));
/// The R4 core resource definitions `profiles/r4` does not carry, and what they bind
/// (`definitions/SOURCES.md`).
static R4_MORE_RESOURCES: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/definitions/r4-resources.json"
));
static R4_MORE_VALUESETS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/definitions/r4-valuesets.json"
));
/// The R4 core SearchParameters, reduced to url, code, type and base (`definitions/SOURCES.md`).
static R4_SEARCH_PARAMETERS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/definitions/r4-search-parameters.json"
));
/// ISO 3166-1 country codes as a CodeSystem (`definitions/SOURCES.md`).
static ISO_3166: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/definitions/iso-3166.json"
));
static R4_VALUESETS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../profiles/r4/valuesets.json"
));

/// The embedded base R4 StructureDefinition Bundles (datatypes, resources): (file, JSON).
pub(crate) fn base_definition_texts() -> [(&'static str, &'static str); 3] {
    [
        ("r4/profiles-types.json", R4_TYPES),
        ("r4/profiles-resources.json", R4_RESOURCES),
        ("definitions/r4-resources.json", R4_MORE_RESOURCES),
    ]
}

/// The embedded `profiles/sp` files: (file, JSON).
pub(crate) fn sp_texts() -> &'static [(&'static str, &'static str)] {
    SP_FILES
}

const CORE_SD_PREFIX: &str = "http://hl7.org/fhir/StructureDefinition/";
const RESOURCE_TYPES_CS: &str = "http://hl7.org/fhir/resource-types";

/// Why the definitions could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("definition file {file} is not valid JSON: {source}")]
    Json {
        file: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("StructureDefinition {0} cannot be compiled (missing url, type or kind)")]
    BadStructureDefinition(String),
    #[error("base definition {0} is missing")]
    MissingBase(String),
    #[error("primitive regex failed to compile: {0}")]
    Regex(String),
}

/// All compiled definitions.
pub(crate) struct Defs {
    sds: Vec<Sd>,
    by_url: FastMap<String, usize>,
    /// Type name -> core (non-profile) definition.
    by_type: FastMap<String, usize>,
    expansions: FastMap<String, Arc<Expansion>>,
    /// The loaded CodeSystems by URL (their displays are checked).
    code_systems: HashMap<String, CodeSystem>,
    resource_types: FastSet<String>,
    /// Element types for FHIRPath navigation, from the same definitions.
    pub model: fhirpath::StructureDefinitionModel,
    /// (resource type, profile) pairs an ImplementationGuide applies globally.
    pub global: Vec<(String, String)>,
    /// Constraints not evaluated, with the reason (key, reason).
    pub skipped: Vec<(String, String)>,
    /// Questionnaires given as extra definitions, by canonical URL (QuestionnaireResponses
    /// that name one are checked against it).
    questionnaires: FastMap<String, Arc<Value>>,
    /// SearchParameters (R4 core and extra definitions) by URL: (type, base resource types).
    search_params: FastMap<String, (String, Vec<String>)>,
    /// Measures given as extra definitions, by canonical URL (MeasureReports that name one
    /// are checked against it).
    measures: FastMap<String, Arc<Value>>,
    /// Canonical URLs of the loaded ValueSets.
    value_set_urls: FastSet<String>,
}

impl Defs {
    pub fn load(extra: Vec<Value>) -> Result<Defs, LoadError> {
        let mut raw: Vec<Value> = Vec::new();
        for (name, text) in [
            ("r4/profiles-types.json", R4_TYPES),
            ("r4/profiles-resources.json", R4_RESOURCES),
            ("definitions/r4-resources.json", R4_MORE_RESOURCES),
            ("r4/extension-definitions.json", R4_EXTENSIONS),
            ("r4/profiles-vitalsigns.json", R4_VITAL_SIGNS),
            ("r4/valuesets.json", R4_VALUESETS),
            ("definitions/r4-valuesets.json", R4_MORE_VALUESETS),
            ("definitions/iso-3166.json", ISO_3166),
            (
                "definitions/r4-search-parameters.json",
                R4_SEARCH_PARAMETERS,
            ),
        ]
        .into_iter()
        .chain(SP_FILES.iter().copied())
        {
            let v: Value = serde_json::from_str(text).map_err(|source| LoadError::Json {
                file: name.to_string(),
                source,
            })?;
            raw.push(v);
        }
        raw.extend(extra);
        let mut resources = Vec::new();
        for v in raw {
            flatten(v, &mut resources, 0);
        }
        Defs::build(resources)
    }

    fn build(resources: Vec<Value>) -> Result<Defs, LoadError> {
        let mut defs = Defs {
            sds: Vec::new(),
            by_url: FastMap::default(),
            by_type: FastMap::default(),
            expansions: FastMap::default(),
            code_systems: HashMap::new(),
            resource_types: FastSet::default(),
            model: fhirpath::StructureDefinitionModel::new(),
            skipped: Vec::new(),
            global: Vec::new(),
            questionnaires: FastMap::default(),
            measures: FastMap::default(),
            search_params: FastMap::default(),
            value_set_urls: FastSet::default(),
        };
        let mut value_sets: HashMap<String, Value> = HashMap::new();
        let mut code_systems: HashMap<String, CodeSystem> = HashMap::new();
        for r in resources {
            let url = r
                .get("url")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            match r.get("resourceType").and_then(Value::as_str) {
                Some("StructureDefinition") => {
                    let mut sd = compile_sd(&r)
                        .ok_or_else(|| LoadError::BadStructureDefinition(url.clone()))?;
                    relax_r4_vital_signs_units(&r, &mut sd);
                    // A definition read as a constraint although it says otherwise (see
                    // `compile_sd`) must not redefine its type in the FHIRPath model.
                    let says_constraint =
                        r.get("derivation").and_then(Value::as_str) == Some("constraint");
                    if !sd.is_profile || says_constraint {
                        defs.model.add(&r);
                    }
                    defs.add_sd(sd);
                }
                Some("ValueSet") => {
                    value_sets.insert(url, r);
                }
                Some("CodeSystem") => {
                    code_systems.insert(url, CodeSystem::from_json(&r));
                }
                Some("Questionnaire") if !url.is_empty() => {
                    defs.questionnaires.insert(url, Arc::new(r));
                }
                Some("SearchParameter") if !url.is_empty() => {
                    let t = r.get("type").and_then(Value::as_str).unwrap_or_default();
                    let base = r.get("base").and_then(Value::as_array).map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    });
                    defs.search_params
                        .insert(url, (t.to_string(), base.unwrap_or_default()));
                }
                Some("Measure") if !url.is_empty() => {
                    defs.measures.insert(url, Arc::new(r));
                }
                Some("ImplementationGuide") => {
                    let globals = r
                        .get("global")
                        .and_then(Value::as_array)
                        .map(Vec::as_slice)
                        .unwrap_or(&[]);
                    for g in globals {
                        if let (Some(t), Some(p)) = (
                            g.get("type").and_then(Value::as_str),
                            g.get("profile").and_then(Value::as_str),
                        ) {
                            defs.global.push((t.to_string(), p.to_string()));
                        }
                    }
                }
                _ => {}
            }
        }
        for base in ["Element", "Resource", "Extension"] {
            if !defs.by_type.contains_key(base) {
                return Err(LoadError::MissingBase(base.to_string()));
            }
        }
        if let Some(cs) = code_systems.get(RESOURCE_TYPES_CS) {
            defs.resource_types = cs.parents.keys().cloned().collect();
        }
        defs.value_set_urls = value_sets
            .keys()
            .filter(|u| !code_systems.contains_key(*u))
            .cloned()
            .collect();
        defs.drop_children_of_open_choices();
        defs.expand_bindings(&value_sets, &code_systems);
        defs.code_systems = code_systems;
        defs.link();
        defs.compile_constraints();
        Ok(defs)
    }

    fn add_sd(&mut self, sd: Sd) {
        let is_core = !sd.is_profile && sd.url == format!("{CORE_SD_PREFIX}{}", sd.type_name);
        let type_name = sd.type_name.clone();
        let url = sd.url.clone();
        let idx = match self.by_url.get(&url) {
            Some(&i) => {
                self.sds[i] = sd;
                i
            }
            None => {
                self.sds.push(sd);
                self.sds.len() - 1
            }
        };
        self.by_url.insert(url, idx);
        if is_core {
            self.by_type.insert(type_name, idx);
        }
    }

    /// A profile's rules on the children of a choice element (`Observation.value[x].value`)
    /// apply only when the choice is narrowed to one type (by the profile, a parent
    /// profile or the base): FHIR profiling says the children of a choice are constrained
    /// through a single type or a type slice, and the HL7 validator, finding the type of the
    /// value, checks it against that type's definition instead. Such children (other than
    /// extensions) are dropped at load.
    fn drop_children_of_open_choices(&mut self) {
        let mut open: Vec<(usize, usize)> = Vec::new();
        for (si, sd) in self.sds.iter().enumerate() {
            if !sd.is_profile {
                continue;
            }
            for (ni, n) in sd.nodes.iter().enumerate() {
                let constrains_children =
                    n.children.iter().any(|&c| sd.nodes[c].name != "extension");
                if n.choice
                    && n.slice_name.is_none()
                    && constrains_children
                    && self.choice_types(sd, &n.path) != 1
                {
                    open.push((si, ni));
                }
            }
        }
        for (si, ni) in open {
            let n = &mut self.sds[si].nodes[ni];
            n.children.clear();
            n.index = FastMap::default();
            n.required.clear();
        }
    }

    /// How many types the element at `path` allows in `sd`: its own list, else its parent
    /// profiles', else the core definition's.
    fn choice_types(&self, sd: &Sd, path: &str) -> usize {
        let mut cur = Some(sd);
        let mut hops = 0;
        while let Some(p) = cur {
            let types = p
                .nodes
                .iter()
                .find(|n| n.path == path && n.slice_name.is_none() && !n.types.is_empty())
                .map(|n| n.types.len());
            if let Some(t) = types {
                return t;
            }
            hops += 1;
            cur = match p.base_definition.as_deref() {
                Some(b) if p.is_profile && hops < 10 => self.sd(b),
                _ => None,
            };
        }
        self.base(&sd.type_name)
            .and_then(|b| b.nodes.iter().find(|n| n.path == path))
            .map_or(0, |n| n.types.len())
    }

    /// Pre-expands every value set bound by a loaded element, so validation
    /// never expands on the request path.
    fn expand_bindings(
        &mut self,
        value_sets: &HashMap<String, Value>,
        code_systems: &HashMap<String, CodeSystem>,
    ) {
        let mut wanted: HashSet<String> = HashSet::new();
        for sd in &self.sds {
            for n in &sd.nodes {
                for b in n.binding.iter().chain(&n.additional_bindings) {
                    if b.strength != Strength::Example {
                        wanted.insert(b.value_set.clone());
                    }
                }
            }
        }
        // The value sets loaded Questionnaires draw answers and units from.
        for q in self.questionnaires.values() {
            questionnaire_value_sets(q.get("item"), 0, &mut wanted);
        }
        for url in wanted {
            if value_sets.contains_key(&url) {
                let e = expand(&url, value_sets, code_systems, &mut Vec::new());
                self.expansions.insert(url, Arc::new(e));
            }
        }
    }

    /// Resolves type codes and bound value sets once, so the walk does not
    /// look them up by name.
    fn link(&mut self) {
        let by_type = &self.by_type;
        let expansions = &self.expansions;
        for sd in &mut self.sds {
            for n in &mut sd.nodes {
                for t in &mut n.types {
                    t.sd_index = by_type.get(&t.code).copied();
                }
                for b in n.binding.iter_mut().chain(&mut n.additional_bindings) {
                    b.expansion = expansions.get(&b.value_set).cloned();
                }
            }
        }
    }

    /// Compiles every constraint expression once (identical expressions,
    /// repeated on many elements, share one compiled form). Failures are
    /// recorded, never fatal: the rule is then skipped.
    fn compile_constraints(&mut self) {
        let mut cache: HashMap<String, Option<Arc<fhirpath::Expression>>> = HashMap::new();
        let mut skipped: Vec<(String, String)> = Vec::new();
        for sd in &mut self.sds {
            for n in &mut sd.nodes {
                // Drop what never runs as FHIRPath or natively (ele-1 on every
                // element, narrative checks): the walk then skips most nodes.
                n.constraints.retain(|c| {
                    let Some(reason) = crate::invariants::skip_reason(c.key) else {
                        return true;
                    };
                    if !skipped.iter().any(|(k, _)| k == c.key) {
                        skipped.push((c.key.to_string(), reason.to_string()));
                    }
                    crate::walk::is_native(c.key)
                });
                for c in &mut n.constraints {
                    if crate::walk::is_native(c.key) {
                        continue;
                    }
                    let Some(published) = c.expression.as_deref() else {
                        continue;
                    };
                    let corrected = crate::invariants::corrected_expression(c.key, published);
                    let src = corrected.as_deref().unwrap_or(published);
                    let compiled = cache.entry(src.to_string()).or_insert_with(|| {
                        match fhirpath::compile(src) {
                            Ok(e) => Some(Arc::new(e)),
                            Err(e) => {
                                skipped.push((c.key.to_string(), format!("does not compile: {e}")));
                                None
                            }
                        }
                    });
                    c.compiled = compiled.clone();
                }
            }
        }
        self.skipped = skipped;
    }

    /// A definition by its index (see `TypeRef::sd_index`).
    pub fn at(&self, i: usize) -> Option<&Sd> {
        self.sds.get(i)
    }

    pub fn sd(&self, url: &str) -> Option<&Sd> {
        self.by_url.get(url).and_then(|&i| self.sds.get(i))
    }

    /// The core definition of a type or resource.
    pub fn base(&self, type_name: &str) -> Option<&Sd> {
        self.by_type.get(type_name).and_then(|&i| self.sds.get(i))
    }

    /// An R4 resource type name (whether or not we have its definition).
    /// Whether a ValueSet with this canonical URL (version ignored) is loaded.
    pub fn is_value_set(&self, url: &str) -> bool {
        self.value_set_urls
            .contains(crate::model::strip_version(url))
    }

    /// A loaded Questionnaire by canonical URL (a version suffix is ignored).
    pub fn questionnaire(&self, url: &str) -> Option<&Value> {
        self.questionnaires
            .get(crate::model::strip_version(url))
            .map(|q| &**q)
    }

    /// The expansion of a value set bound by a loaded element or named by a loaded
    /// Questionnaire (`answerValueSet`, `questionnaire-unitValueSet`).
    pub fn expansion(&self, url: &str) -> Option<&Expansion> {
        self.expansions
            .get(crate::model::strip_version(url))
            .map(|e| &**e)
    }

    /// When `display` is not a display of `system#code` and we hold the code system: the
    /// displays the code has.
    pub fn wrong_display(&self, system: &str, code: &str, display: &str) -> Option<&[String]> {
        self.code_systems.get(system)?.wrong_display(code, display)
    }

    /// A SearchParameter by canonical URL (a version suffix is ignored): its type and
    /// base resource types.
    pub fn search_param(&self, url: &str) -> Option<(&str, &[String])> {
        self.search_params
            .get(crate::model::strip_version(url))
            .map(|(t, b)| (t.as_str(), b.as_slice()))
    }

    /// A loaded Measure by canonical URL (a version suffix is ignored).
    pub fn measure(&self, url: &str) -> Option<&Value> {
        self.measures
            .get(crate::model::strip_version(url))
            .map(|m| &**m)
    }

    pub fn is_resource_type(&self, name: &str) -> bool {
        self.resource_types.contains(name)
            || self
                .base(name)
                .is_some_and(|sd| sd.kind == crate::model::Kind::Resource)
    }
}

/// Unpacks Bundles of definitions (bounded depth against hostile input).
fn flatten(v: Value, out: &mut Vec<Value>, depth: usize) {
    if depth > 4 {
        return;
    }
    if v.get("resourceType").and_then(Value::as_str) == Some("Bundle") {
        if let Value::Object(mut m) = v {
            if let Some(Value::Array(entries)) = m.remove("entry") {
                for mut e in entries {
                    if let Some(r) = e.get_mut("resource").map(Value::take) {
                        flatten(r, out, depth + 1);
                    }
                }
            }
        }
    } else {
        out.push(v);
    }
}

/// The value sets a Questionnaire's items name: `answerValueSet` and the
/// `questionnaire-unitValueSet` extension, at any depth.
fn questionnaire_value_sets(items: Option<&Value>, depth: usize, out: &mut HashSet<String>) {
    const UNIT_VALUE_SET: &str =
        "http://hl7.org/fhir/StructureDefinition/questionnaire-unitValueSet";
    let Some(items) = items.and_then(Value::as_array) else {
        return;
    };
    if depth > 64 {
        return;
    }
    for item in items {
        if let Some(u) = item.get("answerValueSet").and_then(Value::as_str) {
            out.insert(crate::model::strip_version(u).to_string());
        }
        let exts = item.get("extension").and_then(Value::as_array);
        for e in exts.map(Vec::as_slice).unwrap_or(&[]) {
            if e.get("url").and_then(Value::as_str) == Some(UNIT_VALUE_SET) {
                if let Some(u) = e.get("valueCanonical").and_then(Value::as_str) {
                    out.insert(crate::model::strip_version(u).to_string());
                }
            }
        }
        questionnaire_value_sets(item.get("item"), depth + 1, out);
    }
}

/// HL7's R4 (4.0.1) vital-signs profile binds `Observation.component.value[x]`, all its
/// types, to the UCUM vital-signs units as `required`, which cannot hold for a
/// CodeableConcept or a string component; the HL7 validator corrects it to `extensible`
/// when it loads the profile and the profiles derived from it, and so do we.
fn relax_r4_vital_signs_units(raw: &Value, sd: &mut Sd) {
    const VITAL_SIGNS: &str = "http://hl7.org/fhir/StructureDefinition/vitalsigns";
    const UNITS: &str = "http://hl7.org/fhir/ValueSet/ucum-vitals-common";
    let core_vital_signs = sd.type_name == "Observation"
        && sd.url.starts_with(CORE_SD_PREFIX)
        && raw.get("version").and_then(Value::as_str) == Some("4.0.1")
        && (sd.url == VITAL_SIGNS || sd.base_definition.as_deref() == Some(VITAL_SIGNS));
    if !core_vital_signs {
        return;
    }
    for n in &mut sd.nodes {
        if n.path != "Observation.component.value[x]" {
            continue;
        }
        if let Some(b) = n.binding.as_mut().filter(|b| b.value_set == UNITS) {
            b.strength = Strength::Extensible;
        }
    }
}
