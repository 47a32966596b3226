//! Compiled StructureDefinitions: element trees indexed for the walk, so a
//! validation request does no parsing of definitions and few allocations.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use serde_json::Value;

use crate::intern::intern;
use crate::primitives::Prim;

pub(crate) type NodeId = usize;

/// A hash map keyed by short strings with a cheap non-cryptographic hash:
/// the keys come from definitions, and lookups dominate the walk. Element
/// names from hostile input only ever look keys up, never insert them.
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;
pub(crate) type FastSet<K> = std::collections::HashSet<K, BuildHasherDefault<FxHasher>>;

/// The multiply-rotate hash used by rustc (FxHash).
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher {
    hash: u64,
}

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(FX_SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Primitive,
    Complex,
    Resource,
    Logical,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strength {
    Required,
    Extensible,
    Preferred,
    Example,
}

#[derive(Debug, Clone)]
pub(crate) struct Binding {
    /// For an additional binding, the strength its purpose implies.
    pub strength: Strength,
    /// An additional binding (R5 `binding.additional`, in R4 through the
    /// cross-version extension), checked beside the element's own binding.
    pub additional: bool,
    /// Canonical URL without version.
    pub value_set: String,
    /// The pre-expanded value set (set after loading; `None` if unknown).
    pub expansion: Option<std::sync::Arc<crate::terminology::Expansion>>,
}

// Read by the invariant checks; kept whole so issues can quote the rule.
#[allow(dead_code)]
#[derive(Debug, Clone)]
pub(crate) struct Constraint {
    pub key: &'static str,
    pub severity_error: bool,
    pub human: String,
    pub expression: Option<String>,
    /// The compiled FHIRPath (set after loading; `None` for native, skipped
    /// or uncompilable constraints).
    pub compiled: Option<std::sync::Arc<fhirpath::Expression>>,
}

#[derive(Debug, Clone)]
pub(crate) struct TypeRef {
    /// FHIR type code (`System.String` ids resolved through the fhir-type extension).
    pub code: String,
    /// `Some` for primitive types.
    pub prim: Option<Prim>,
    pub profiles: Vec<String>,
    pub target_profiles: Vec<String>,
    /// Resource types the target profiles allow, precomputed for core URLs.
    pub targets: Targets,
    /// Index of the core definition of `code` in `Defs` (set after loading).
    pub sd_index: Option<usize>,
    /// `aggregation` of a Reference type: where the target may be (none listed: anywhere).
    pub aggregation: Aggregation,
}

/// `ElementDefinition.type.aggregation`: the places a referenced resource may be, as flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Aggregation(u8);

impl Aggregation {
    pub const CONTAINED: u8 = 1;
    pub const BUNDLED: u8 = 2;
    pub const REFERENCED: u8 = 4;

    fn parse(modes: &[String]) -> Aggregation {
        Aggregation(modes.iter().fold(0, |acc, m| {
            acc | match m.as_str() {
                "contained" => Self::CONTAINED,
                "bundled" => Self::BUNDLED,
                "referenced" => Self::REFERENCED,
                _ => 0,
            }
        }))
    }

    /// Whether any mode is listed.
    pub fn restricts(self) -> bool {
        self.0 != 0
    }

    pub fn allows(self, mode: u8) -> bool {
        self.0 & mode != 0
    }
}

/// Allowed reference targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Targets {
    Any,
    Listed(Vec<String>),
    /// Some target is a profile: resolve its type through the definitions.
    Lookup,
}

const CORE_PREFIX: &str = "http://hl7.org/fhir/StructureDefinition/";

fn precompute_targets(target_profiles: &[String]) -> Targets {
    let mut out = Vec::new();
    for p in target_profiles {
        match strip_version(p).strip_prefix(CORE_PREFIX) {
            Some("Resource" | "DomainResource") => return Targets::Any,
            // A core type's URL ends in its type name (capitalised); core profiles such as
            // `vitalsigns` are looked up for the type they constrain.
            Some(n) if !n.contains('/') && n.starts_with(|c: char| c.is_ascii_uppercase()) => {
                out.push(n.to_string())
            }
            _ => return Targets::Lookup,
        }
    }
    if out.is_empty() {
        Targets::Any
    } else {
        Targets::Listed(out)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DiscriminatorKind {
    Value,
    Pattern,
    Type,
    Profile,
    Exists,
}

#[derive(Debug, Clone)]
pub(crate) struct Discriminator {
    pub kind: DiscriminatorKind,
    pub path: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Slicing {
    pub discriminators: Vec<Discriminator>,
    pub closed: bool,
    /// Not enforced yet (ordered slicing is rare in practice).
    #[allow(dead_code)]
    pub ordered: bool,
}

/// One element definition, with its children resolved to node ids.
#[derive(Debug, Clone, Default)]
pub(crate) struct Node {
    pub path: String,
    /// Last path segment without `[x]`.
    pub name: String,
    pub slice_name: Option<String>,
    pub min: Option<u32>,
    /// `None` = not stated (differentials), `Some(None)` = `*`.
    pub max: Option<Option<u32>>,
    /// Base max is `*` or above 1: the JSON is an array and paths carry an index.
    pub many: bool,
    pub choice: bool,
    pub types: Vec<TypeRef>,
    pub content_ref: Option<NodeId>,
    /// Raw `contentReference` path (without `#`), resolved by `link`.
    pub content_ref_path: Option<String>,
    pub children: Vec<NodeId>,
    /// JSON property name -> (child, index into the child's `types`).
    pub index: FastMap<String, (NodeId, usize)>,
    /// Children with min > 0 (checked when the parent is present).
    pub required: Vec<NodeId>,
    pub binding: Option<Binding>,
    /// Additional bindings of the element (see [`Binding::additional`]).
    pub additional_bindings: Vec<Binding>,
    pub fixed: Option<Value>,
    pub pattern: Option<Value>,
    pub constraints: Vec<Constraint>,
    pub slicing: Option<Slicing>,
    pub slices: Vec<NodeId>,
    pub max_length: Option<usize>,
    /// From the `minLength` element extension.
    pub min_length: Option<usize>,
    pub min_value: Option<Value>,
    pub max_value: Option<Value>,
}

impl Node {
    pub fn max_allowed(&self) -> Option<u32> {
        self.max.flatten()
    }
}

/// A compiled StructureDefinition.
#[derive(Debug, Clone)]
pub(crate) struct Sd {
    pub url: String,
    #[allow(dead_code)] // for diagnostics and debugging
    pub name: String,
    /// The type this definition constrains (`ServiceRequest`, `Extension`, `string`).
    pub type_name: String,
    pub kind: Kind,
    pub is_abstract: bool,
    pub base_definition: Option<String>,
    /// `constraint` derivation: a profile whose elements overlay the base.
    pub is_profile: bool,
    /// Extension definitions: where the extension may be used, as
    /// (context type, expression), e.g. ("element", "Patient.name").
    pub contexts: Vec<(String, String)>,
    /// Extension definitions: whether the extension is a modifier, when the definition says
    /// (`isModifier` on its root element; the embedded core definitions are trimmed of it).
    pub is_modifier: Option<bool>,
    /// Element tree; node 0 is the root.
    pub nodes: Vec<Node>,
}

pub(crate) fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

const MIN_LENGTH_EXT: &str = "http://hl7.org/fhir/StructureDefinition/minLength";
const FHIR_TYPE_EXT: &str = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type";

fn parse_type(t: &Value) -> Option<TypeRef> {
    let mut code = t.get("code")?.as_str()?.to_string();
    if code.starts_with("http://hl7.org/fhirpath/System.") {
        // Element.id, Extension.url and primitive values: the extension says
        // which FHIR primitive applies.
        let ext = t
            .get("extension")
            .and_then(Value::as_array)
            .and_then(|a| {
                a.iter()
                    .find(|e| e.get("url").and_then(Value::as_str) == Some(FHIR_TYPE_EXT))
            })
            .and_then(|e| e.get("valueUrl").or_else(|| e.get("valueUri")))
            .and_then(Value::as_str);
        code = match ext {
            Some(e) => e.to_string(),
            None => "string".to_string(),
        };
    }
    let strings = |k: &str| -> Vec<String> {
        t.get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let target_profiles = strings("targetProfile");
    Some(TypeRef {
        prim: Prim::from_code(&code),
        code,
        profiles: strings("profile"),
        targets: precompute_targets(&target_profiles),
        target_profiles,
        sd_index: None,
        aggregation: Aggregation::parse(&strings("aggregation")),
    })
}

fn parse_max(v: Option<&Value>) -> Option<Option<u32>> {
    let s = v?.as_str()?;
    if s == "*" {
        Some(None)
    } else {
        s.parse::<u32>().ok().map(Some)
    }
}

fn parse_strength(s: &str) -> Option<Strength> {
    Some(match s {
        "required" => Strength::Required,
        "extensible" => Strength::Extensible,
        "preferred" => Strength::Preferred,
        "example" => Strength::Example,
        _ => return None,
    })
}

const ADDITIONAL_BINDING_EXT: &str =
    "http://hl7.org/fhir/5.0/StructureDefinition/extension-ElementDefinition.binding.additional";

/// The testable additional bindings of a `binding`: R5's `additional` as R4 carries it (the
/// cross-version extension, with `purpose`, `valueSet` and `usage` sub-extensions). As the HL7
/// validator does, a `maximum` or `required` purpose is checked as a required binding,
/// `extensible` and `preferred` as bindings of that strength; other purposes (`minimum`,
/// `candidate`, `ui`, ...) are documentation. A binding limited to a `usage` context is not
/// checked: we cannot tell whether the resource is in that context.
fn parse_additional_bindings(b: &Value) -> Vec<Binding> {
    let exts = b
        .get("extension")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    exts.iter()
        .filter(|x| x.get("url").and_then(Value::as_str) == Some(ADDITIONAL_BINDING_EXT))
        .filter_map(|x| {
            let parts = x.get("extension")?.as_array()?;
            let part = |name: &str| {
                parts
                    .iter()
                    .find(|p| p.get("url").and_then(Value::as_str) == Some(name))
            };
            if part("usage").is_some() {
                return None;
            }
            let strength = match part("purpose")?.get("valueCode")?.as_str()? {
                "maximum" | "required" => Strength::Required,
                "extensible" => Strength::Extensible,
                "preferred" => Strength::Preferred,
                _ => return None,
            };
            let vs = part("valueSet")?;
            let url = vs
                .get("valueCanonical")
                .or_else(|| vs.get("valueUri"))?
                .as_str()?;
            Some(Binding {
                strength,
                additional: true,
                value_set: strip_version(url).to_string(),
                expansion: None,
            })
        })
        .collect()
}

/// `isModifier` of the root element (`Extension`), in the snapshot or else the differential.
fn root_is_modifier(sd: &Value, type_name: &str) -> Option<bool> {
    ["snapshot", "differential"].iter().find_map(|part| {
        sd.get(part)?
            .get("element")?
            .as_array()?
            .iter()
            .find(|e| e.get("path").and_then(Value::as_str) == Some(type_name))?
            .get("isModifier")?
            .as_bool()
    })
}

/// R4 says the `structuredefinition-fhir-type` extension goes on `ElementDefinition.type.code`,
/// but its own definitions carry it on `ElementDefinition.type`; later versions correct the
/// context to that, and the HL7 validator accepts it there. Other contexts are as published.
fn corrected_context(sd: &Value, kind: String, expr: String) -> (String, String) {
    const FHIR_TYPE: &str = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type";
    if sd.get("url").and_then(Value::as_str) == Some(FHIR_TYPE)
        && expr == "ElementDefinition.type.code"
    {
        return (kind, "ElementDefinition.type".to_string());
    }
    (kind, expr)
}

pub(crate) fn strip_version(url: &str) -> &str {
    url.split('|').next().unwrap_or(url)
}

fn parse_slicing(v: &Value) -> Slicing {
    let discriminators = v
        .get("discriminator")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|d| {
                    let kind = match d.get("type")?.as_str()? {
                        "value" => DiscriminatorKind::Value,
                        "pattern" => DiscriminatorKind::Pattern,
                        "type" => DiscriminatorKind::Type,
                        "profile" => DiscriminatorKind::Profile,
                        "exists" => DiscriminatorKind::Exists,
                        _ => return None,
                    };
                    Some(Discriminator {
                        kind,
                        path: d.get("path")?.as_str()?.to_string(),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Slicing {
        discriminators,
        closed: v.get("rules").and_then(Value::as_str) == Some("closed"),
        ordered: v.get("ordered").and_then(Value::as_bool).unwrap_or(false),
    }
}

/// Builds a node from an ElementDefinition (children are linked later).
fn parse_element(e: &Value, path: &str) -> Node {
    let last = path.rsplit('.').next().unwrap_or(path);
    let choice = last.ends_with("[x]");
    let name = last.trim_end_matches("[x]").to_string();
    let max = parse_max(e.get("max"));
    let base_max = parse_max(e.get("base").and_then(|b| b.get("max")));
    let many = match base_max.or(max) {
        Some(None) => true,
        Some(Some(n)) => n > 1,
        None => false,
    };
    let mut fixed = None;
    let mut pattern = None;
    let mut min_value = None;
    let mut max_value = None;
    if let Some(obj) = e.as_object() {
        for (k, v) in obj {
            if k.starts_with("fixed") {
                fixed = Some(v.clone());
            } else if k.starts_with("pattern") {
                pattern = Some(v.clone());
            } else if k.starts_with("minValue") {
                min_value = Some(v.clone());
            } else if k.starts_with("maxValue") {
                max_value = Some(v.clone());
            }
        }
    }
    let binding = e.get("binding").and_then(|b| {
        Some(Binding {
            strength: parse_strength(b.get("strength")?.as_str()?)?,
            additional: false,
            value_set: strip_version(b.get("valueSet")?.as_str()?).to_string(),
            expansion: None,
        })
    });
    let additional_bindings = e
        .get("binding")
        .map(parse_additional_bindings)
        .unwrap_or_default();
    let constraints = e
        .get("constraint")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|c| {
                    Some(Constraint {
                        key: intern(c.get("key")?.as_str()?),
                        severity_error: c.get("severity").and_then(Value::as_str)
                            != Some("warning"),
                        human: c
                            .get("human")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        expression: c
                            .get("expression")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                        compiled: None,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Node {
        path: path.to_string(),
        name,
        slice_name: e
            .get("sliceName")
            .and_then(Value::as_str)
            .map(str::to_string),
        min: e
            .get("min")
            .and_then(Value::as_u64)
            .map(|m| m.min(u64::from(u32::MAX)) as u32),
        max,
        many,
        choice,
        types: e
            .get("type")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(parse_type).collect())
            .unwrap_or_default(),
        binding,
        additional_bindings,
        fixed,
        pattern,
        constraints,
        slicing: e.get("slicing").map(parse_slicing),
        content_ref_path: e
            .get("contentReference")
            .and_then(Value::as_str)
            .map(|s| s.trim_start_matches('#').to_string()),
        min_length: e
            .get("extension")
            .and_then(Value::as_array)
            .and_then(|a| {
                a.iter()
                    .find(|x| x.get("url").and_then(Value::as_str) == Some(MIN_LENGTH_EXT))
            })
            .and_then(|x| x.get("valueInteger"))
            .and_then(Value::as_u64)
            .map(|m| m as usize),
        max_length: e
            .get("maxLength")
            .and_then(Value::as_u64)
            .map(|m| m as usize),
        min_value,
        max_value,
        ..Node::default()
    }
}

/// Splits an element id into (parent id, own segment), respecting that slice
/// names follow a `:` and may not themselves hold a `.`.
fn split_id(id: &str) -> (Option<&str>, &str) {
    match id.rfind('.') {
        Some(i) => (Some(&id[..i]), &id[i + 1..]),
        None => (None, id),
    }
}

/// Element ids for definitions that omit them (older differentials): the
/// elements that follow a slice, below its path, belong to that slice.
#[derive(Default)]
struct IdTracker {
    /// (path, id) of the slices in scope, outermost first.
    slices: Vec<(String, String)>,
}

impl IdTracker {
    fn id_for(&mut self, e: &Value) -> Option<String> {
        let path = e.get("path")?.as_str()?;
        // Leaving a slice: an element at or beside the sliced path.
        self.slices.retain(|(p, _)| {
            path.len() > p.len() && path.starts_with(p.as_str()) && path.as_bytes()[p.len()] == b'.'
        });
        let base = self
            .slices
            .iter()
            .rev()
            .find(|(p, _)| path.starts_with(p.as_str()))
            .map(|(p, id)| format!("{id}{}", &path[p.len()..]))
            .unwrap_or_else(|| path.to_string());
        if let Some(given) = e.get("id").and_then(Value::as_str) {
            if e.get("sliceName").is_some() {
                self.slices.push((path.to_string(), given.to_string()));
            }
            return Some(given.to_string());
        }
        Some(match e.get("sliceName").and_then(Value::as_str) {
            Some(s) => {
                let id = format!("{base}:{s}");
                self.slices.push((path.to_string(), id.clone()));
                id
            }
            None => base,
        })
    }
}

/// Reads a StructureDefinition resource into an `Sd`. `elements` is the
/// snapshot for base definitions and the differential for profiles (profiles
/// are applied as overlays on the base, see `walk`).
pub(crate) fn compile_sd(sd: &Value) -> Option<Sd> {
    let url = sd.get("url")?.as_str()?.to_string();
    let type_name = sd.get("type")?.as_str()?.to_string();
    let kind = match sd.get("kind").and_then(Value::as_str)? {
        "primitive-type" => Kind::Primitive,
        "complex-type" => Kind::Complex,
        "resource" => Kind::Resource,
        _ => Kind::Logical,
    };
    // A specialization defines a new type; one whose type is that of the core definition it
    // derives from defines nothing new and can only be a constraint on that type (some
    // published profiles say `specialization` by mistake).
    let core_base = format!("{CORE_PREFIX}{type_name}");
    let constrains_core = sd
        .get("baseDefinition")
        .and_then(Value::as_str)
        .is_some_and(|b| strip_version(b) == core_base)
        && url != core_base;
    let is_profile = match sd.get("derivation").and_then(Value::as_str) {
        Some("constraint") => true,
        Some("specialization") => constrains_core,
        _ => false,
    };
    let elements = if is_profile {
        sd.get("differential")
            .or_else(|| sd.get("snapshot"))
            .and_then(|d| d.get("element"))
            .and_then(Value::as_array)
    } else {
        sd.get("snapshot")
            .and_then(|d| d.get("element"))
            .and_then(Value::as_array)
    };
    let mut out = Sd {
        url,
        name: sd
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        type_name: type_name.clone(),
        kind,
        is_abstract: sd.get("abstract").and_then(Value::as_bool).unwrap_or(false),
        base_definition: sd
            .get("baseDefinition")
            .and_then(Value::as_str)
            .map(|s| strip_version(s).to_string()),
        is_profile,
        contexts: sd
            .get("context")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|c| {
                        Some((
                            c.get("type")?.as_str()?.to_string(),
                            c.get("expression")?.as_str()?.to_string(),
                        ))
                    })
                    .map(|(t, e)| corrected_context(sd, t, e))
                    .collect()
            })
            .unwrap_or_default(),
        is_modifier: root_is_modifier(sd, &type_name),
        nodes: Vec::new(),
    };
    let mut by_id: HashMap<String, NodeId> = HashMap::new();
    let root = Node {
        path: type_name.clone(),
        name: type_name.clone(),
        ..Node::default()
    };
    out.nodes.push(root);
    by_id.insert(type_name.clone(), 0);
    let mut ids = IdTracker::default();
    for e in elements.map(Vec::as_slice).unwrap_or(&[]) {
        let Some(id) = ids.id_for(e) else { continue };
        // Real element ids are a few levels deep; a pathological one would
        // make the ancestor creation below recurse without bound.
        if id.matches('.').count() > 64 {
            continue;
        }
        let Some(path) = e.get("path").and_then(Value::as_str) else {
            continue;
        };
        if id == type_name {
            // The root element: keep its constraints and cardinality.
            let parsed = parse_element(e, path);
            let root = &mut out.nodes[0];
            root.constraints = parsed.constraints;
            continue;
        }
        let node = parse_element(e, path);
        insert_node(&mut out, &mut by_id, &id, node);
    }
    link(&mut out);
    Some(out)
}

/// Inserts `node` under its parent (creating placeholder ancestors that a
/// differential leaves out).
fn insert_node(sd: &mut Sd, by_id: &mut HashMap<String, NodeId>, id: &str, node: Node) -> NodeId {
    if let Some(&existing) = by_id.get(id) {
        // A placeholder created earlier for a descendant: fill it in.
        let keep_children = std::mem::take(&mut sd.nodes[existing].children);
        let keep_slices = std::mem::take(&mut sd.nodes[existing].slices);
        sd.nodes[existing] = Node {
            children: keep_children,
            slices: keep_slices,
            ..node
        };
        return existing;
    }
    let (parent_id, seg) = split_id(id);
    let parent = match parent_id {
        Some(p) => ensure(sd, by_id, p),
        None => 0,
    };
    let new_id = sd.nodes.len();
    sd.nodes.push(node);
    by_id.insert(id.to_string(), new_id);
    if let Some((base_name, _slice)) = seg.split_once(':') {
        // A slice of the element `parent.base_name`.
        let sliced_id = match parent_id {
            Some(p) => format!("{p}.{base_name}"),
            None => base_name.to_string(),
        };
        let sliced = ensure(sd, by_id, &sliced_id);
        sd.nodes[sliced].slices.push(new_id);
    } else {
        sd.nodes[parent].children.push(new_id);
    }
    new_id
}

fn ensure(sd: &mut Sd, by_id: &mut HashMap<String, NodeId>, id: &str) -> NodeId {
    if let Some(&n) = by_id.get(id) {
        return n;
    }
    if !id.contains('.') && !id.contains(':') {
        // The root under a different name (should not happen): use node 0.
        return 0;
    }
    let path: String = id
        .split('.')
        .map(|s| s.split(':').next().unwrap_or(s))
        .collect::<Vec<_>>()
        .join(".");
    let last = path.rsplit('.').next().unwrap_or(&path);
    let node = Node {
        name: last.trim_end_matches("[x]").to_string(),
        choice: last.ends_with("[x]"),
        path: path.clone(),
        ..Node::default()
    };
    insert_node(sd, by_id, id, node)
}

/// Fills the JSON-name index, required list and content references.
fn link(sd: &mut Sd) {
    let by_path: HashMap<String, NodeId> = sd
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.slice_name.is_none())
        .map(|(i, n)| (n.path.clone(), i))
        .collect();
    for i in 0..sd.nodes.len() {
        let mut index = FastMap::default();
        let mut required = Vec::new();
        for &c in &sd.nodes[i].children {
            let child = &sd.nodes[c];
            if child.choice && !child.types.is_empty() {
                for (ti, t) in child.types.iter().enumerate() {
                    index.insert(format!("{}{}", child.name, capitalise(&t.code)), (c, ti));
                }
            } else {
                index.insert(child.name.clone(), (c, 0));
            }
            if child.min.unwrap_or(0) > 0 {
                required.push(c);
            }
        }
        sd.nodes[i].index = index;
        sd.nodes[i].required = required;
    }
    let refs: Vec<(NodeId, String)> = sd
        .nodes
        .iter()
        .enumerate()
        .filter_map(|(i, n)| n.content_ref_path.clone().map(|p| (i, p)))
        .collect();
    for (i, p) in refs {
        sd.nodes[i].content_ref = by_path.get(&p).copied();
    }
}
