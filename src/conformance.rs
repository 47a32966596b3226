//! The conformance resources the gateway publishes (our profiles with snapshots, value sets,
//! code systems, concept maps, search parameters), `ValueSet/$expand`, and the need vocabulary
//! the referral record is written with. All of it comes from `profiles/sp`, embedded.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use serde_json::{json, Value};

use crate::domain::{systems, NeedCategory};

/// The ConceptMap that puts each need code in its category.
pub const NEED_TO_CATEGORY: &str = "https://fhir.sp-gateway.uk/ConceptMap/need-to-category";
/// The need value set (`ServiceRequest.reasonCode`, extensible).
pub const NEED_VALUE_SET: &str = "https://fhir.sp-gateway.uk/ValueSet/sp-referral-need";

/// The resource types published at `/fhir/{type}` (a type is declared once we hold one).
pub const PUBLISHED_TYPES: [&str; 5] = [
    "StructureDefinition",
    "ValueSet",
    "CodeSystem",
    "ConceptMap",
    "SearchParameter",
];

/// Why the bundled definitions cannot be used, or a request about them cannot be answered.
#[derive(Debug, thiserror::Error)]
pub enum ConformanceError {
    #[error(transparent)]
    Load(#[from] sp_validator::LoadError),
    #[error("ConceptMap need-to-category: {0}")]
    NeedMap(String),
    #[error("snapshot: {0}")]
    Snapshot(String),
    #[error("{0}")]
    CannotExpand(String),
}

/// What a need code means to the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownNeed {
    pub display: String,
    pub category: NeedCategory,
}

/// Need codes (SNOMED CT) and their categories, from ConceptMap need-to-category.
#[derive(Debug, Default)]
pub struct NeedVocabulary {
    by_code: HashMap<(String, String), KnownNeed>,
}

impl NeedVocabulary {
    fn from_concept_map(map: &Value) -> Result<NeedVocabulary, ConformanceError> {
        let bad = |m: String| ConformanceError::NeedMap(m);
        let mut by_code = HashMap::new();
        for group in map["group"].as_array().into_iter().flatten() {
            let source = group["source"]
                .as_str()
                .ok_or_else(|| bad("a group without source".into()))?;
            if group["target"].as_str() != Some(systems::NEED_CATEGORY) {
                return Err(bad(format!(
                    "group target is not {}",
                    systems::NEED_CATEGORY
                )));
            }
            for element in group["element"].as_array().into_iter().flatten() {
                let code = element["code"]
                    .as_str()
                    .ok_or_else(|| bad("an element without code".into()))?;
                let display = element["display"].as_str().unwrap_or(code).to_string();
                let targets = element["target"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                let [target] = targets else {
                    return Err(bad(format!("{code} must map to exactly one category")));
                };
                let category: NeedCategory = target["code"]
                    .as_str()
                    .unwrap_or_default()
                    .parse()
                    .map_err(|e| bad(format!("{code}: {e}")))?;
                let known = KnownNeed { display, category };
                if by_code
                    .insert((source.to_string(), code.to_string()), known)
                    .is_some()
                {
                    return Err(bad(format!("{code} is mapped twice")));
                }
            }
        }
        Ok(NeedVocabulary { by_code })
    }

    /// The need this coding names, when we know it.
    pub fn lookup(&self, system: &str, code: &str) -> Option<&KnownNeed> {
        self.by_code.get(&(system.to_string(), code.to_string()))
    }

    pub fn len(&self) -> usize {
        self.by_code.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_code.is_empty()
    }
}

/// One code of an expansion.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Contains {
    system: String,
    code: String,
    display: Option<String>,
}

/// Paging and text filter of `$expand`.
#[derive(Debug, Clone, Default)]
pub struct ExpandRequest {
    pub filter: Option<String>,
    pub offset: usize,
    pub count: Option<usize>,
}

/// Our published conformance resources.
pub struct Conformance {
    /// By type, then id; StructureDefinitions without their snapshots (made on first read).
    resources: BTreeMap<&'static str, BTreeMap<String, Value>>,
    needs: NeedVocabulary,
    with_snapshots: OnceLock<Result<BTreeMap<String, Value>, String>>,
}

impl Conformance {
    pub fn bundled() -> Result<Conformance, ConformanceError> {
        Conformance::from_resources(sp_validator::bundled_conformance_resources()?)
    }

    pub fn from_resources(all: Vec<Value>) -> Result<Conformance, ConformanceError> {
        let mut resources: BTreeMap<&'static str, BTreeMap<String, Value>> = BTreeMap::new();
        for r in all {
            let Some(kind) = PUBLISHED_TYPES
                .into_iter()
                .find(|t| r["resourceType"].as_str() == Some(t))
            else {
                continue;
            };
            if let Some(id) = r["id"].as_str() {
                resources.entry(kind).or_default().insert(id.to_string(), r);
            }
        }
        let needs = resources
            .get("ConceptMap")
            .and_then(|maps| {
                maps.values()
                    .find(|m| m["url"].as_str() == Some(NEED_TO_CATEGORY))
            })
            .map(NeedVocabulary::from_concept_map)
            .transpose()?
            .unwrap_or_default();
        Ok(Conformance {
            resources,
            needs,
            with_snapshots: OnceLock::new(),
        })
    }

    /// The published types we hold at least one resource of (what the CapabilityStatement
    /// declares).
    pub fn published_types(&self) -> impl Iterator<Item = &'static str> + '_ {
        PUBLISHED_TYPES
            .into_iter()
            .filter(|t| self.resources.get(t).is_some_and(|m| !m.is_empty()))
    }

    pub fn needs(&self) -> &NeedVocabulary {
        &self.needs
    }

    /// StructureDefinitions with snapshots, made once (parsing the base definitions takes a
    /// fraction of a second, so not at start-up).
    fn structure_definitions(&self) -> Result<&BTreeMap<String, Value>, ConformanceError> {
        let made = self.with_snapshots.get_or_init(|| {
            let base = sp_validator::BaseDefinitions::bundled().map_err(|e| e.to_string())?;
            let own: Vec<Value> = self
                .resources
                .get("StructureDefinition")
                .map(|m| m.values().cloned().collect())
                .unwrap_or_default();
            own.iter()
                .map(|sd| {
                    let id = sd["id"].as_str().unwrap_or_default().to_string();
                    base.with_snapshot(sd, &own)
                        .map(|with| (id, with))
                        .map_err(|e| e.to_string())
                })
                .collect()
        });
        made.as_ref()
            .map_err(|e| ConformanceError::Snapshot(e.clone()))
    }

    fn of_type(&self, kind: &str) -> Result<Option<&BTreeMap<String, Value>>, ConformanceError> {
        if kind == "StructureDefinition" {
            return self.structure_definitions().map(Some);
        }
        Ok(self.resources.get(kind))
    }

    /// `GET /fhir/{type}/{id}`.
    pub fn read(&self, kind: &str, id: &str) -> Result<Option<&Value>, ConformanceError> {
        Ok(self.of_type(kind)?.and_then(|m| m.get(id)))
    }

    /// `GET /fhir/{type}?url=&name=&version=`: every resource of the type matching all given.
    pub fn search(
        &self,
        kind: &str,
        url: Option<&str>,
        name: Option<&str>,
        version: Option<&str>,
    ) -> Result<Vec<&Value>, ConformanceError> {
        // `url=https://…|1.0.0` names a version too (canonical references).
        let (url, version) = match url.and_then(|u| u.split_once('|')) {
            Some((u, v)) => (Some(u), version.or(Some(v))),
            None => (url, version),
        };
        let matches = |r: &Value| {
            url.is_none_or(|u| r["url"].as_str() == Some(u))
                && version.is_none_or(|v| r["version"].as_str() == Some(v))
                && name.is_none_or(|n| {
                    r["name"]
                        .as_str()
                        .is_some_and(|have| have.to_lowercase().starts_with(&n.to_lowercase()))
                })
        };
        Ok(self
            .of_type(kind)?
            .map(|m| m.values().filter(|r| matches(r)).collect())
            .unwrap_or_default())
    }

    fn value_set_by_url(&self, url: &str) -> Option<&Value> {
        let url = url.split('|').next().unwrap_or(url);
        self.resources
            .get("ValueSet")?
            .values()
            .find(|v| v["url"].as_str() == Some(url))
    }

    fn code_system(&self, url: &str) -> Option<&Value> {
        self.resources
            .get("CodeSystem")?
            .values()
            .find(|v| v["url"].as_str() == Some(url))
    }

    /// The codes of a value set (ours), sorted by system and code.
    fn codes(&self, vs: &Value, depth: usize) -> Result<Vec<Contains>, ConformanceError> {
        let name = vs["url"].as_str().unwrap_or("?").to_string();
        let cannot = |why: &str| ConformanceError::CannotExpand(format!("{name}: {why}"));
        if depth > 8 {
            return Err(cannot("value sets include each other too deeply"));
        }
        let mut out = Vec::new();
        let compose = &vs["compose"];
        for (part, include) in [("include", true), ("exclude", false)] {
            for inc in compose[part].as_array().into_iter().flatten() {
                if inc.get("filter").is_some() {
                    return Err(cannot("filters in compose are not expanded by this server"));
                }
                let mut codes = Vec::new();
                for nested in inc["valueSet"].as_array().into_iter().flatten() {
                    let other = nested
                        .as_str()
                        .and_then(|u| self.value_set_by_url(u))
                        .ok_or_else(|| {
                            cannot("it includes a value set this server does not have")
                        })?;
                    codes.extend(self.codes(other, depth + 1)?);
                }
                if let Some(system) = inc["system"].as_str() {
                    match inc["concept"].as_array() {
                        Some(concepts) => codes.extend(concepts.iter().filter_map(|c| {
                            Some(Contains {
                                system: system.to_string(),
                                code: c["code"].as_str()?.to_string(),
                                display: c["display"].as_str().map(str::to_string),
                            })
                        })),
                        None => {
                            let cs = self
                                .code_system(system)
                                .ok_or_else(|| cannot(&format!("it includes all of {system}, which this server cannot enumerate")))?;
                            flatten_concepts(system, &cs["concept"], &mut codes);
                        }
                    }
                }
                if include {
                    out.extend(codes);
                } else {
                    out.retain(|c| {
                        !codes
                            .iter()
                            .any(|x| x.system == c.system && x.code == c.code)
                    });
                }
            }
        }
        out.sort();
        out.dedup_by(|a, b| a.system == b.system && a.code == b.code);
        Ok(out)
    }

    /// `ValueSet/$expand` of one of our value sets (by id or canonical URL); `None` when we
    /// have no such value set.
    pub fn expand(
        &self,
        id: Option<&str>,
        url: Option<&str>,
        request: &ExpandRequest,
        now: &str,
    ) -> Result<Option<Value>, ConformanceError> {
        let vs = match (id, url) {
            (Some(id), _) => self.resources.get("ValueSet").and_then(|m| m.get(id)),
            (None, Some(url)) => self.value_set_by_url(url),
            (None, None) => None,
        };
        let Some(vs) = vs else { return Ok(None) };
        let mut codes = self.codes(vs, 0)?;
        if let Some(filter) = request
            .filter
            .as_deref()
            .map(str::trim)
            .filter(|f| !f.is_empty())
        {
            let words: Vec<String> = filter
                .to_lowercase()
                .split_whitespace()
                .map(str::to_string)
                .collect();
            codes.retain(|c| {
                let display = c.display.as_deref().unwrap_or_default().to_lowercase();
                let display_words: Vec<&str> = display
                    .split(|ch: char| !ch.is_alphanumeric())
                    .filter(|w| !w.is_empty())
                    .collect();
                // Every word of the filter starts a word of the display (or is the code).
                words.iter().all(|w| {
                    c.code == *w || display_words.iter().any(|dw| dw.starts_with(w.as_str()))
                })
            });
            codes.sort_by(|a, b| a.display.cmp(&b.display));
        }
        let total = codes.len();
        let page: Vec<Value> = codes
            .into_iter()
            .skip(request.offset)
            .take(request.count.unwrap_or(usize::MAX))
            .map(|c| {
                let mut v = json!({"system": c.system, "code": c.code});
                if let Some(d) = c.display {
                    v["display"] = json!(d);
                }
                v
            })
            .collect();
        let mut parameters = Vec::new();
        if let Some(f) = &request.filter {
            parameters.push(json!({"name": "filter", "valueString": f}));
        }
        if request.offset > 0 {
            parameters.push(json!({"name": "offset", "valueInteger": request.offset}));
        }
        if let Some(c) = request.count {
            parameters.push(json!({"name": "count", "valueInteger": c}));
        }
        let mut out = vs.clone();
        if let Some(o) = out.as_object_mut() {
            o.remove("text");
        }
        let mut expansion = json!({
            "identifier": format!("urn:uuid:{}", uuid::Uuid::new_v4()),
            "timestamp": now,
            "total": total,
            "contains": page,
        });
        if request.offset > 0 {
            expansion["offset"] = json!(request.offset);
        }
        if !parameters.is_empty() {
            expansion["parameter"] = json!(parameters);
        }
        if total == 0 {
            if let Some(o) = expansion.as_object_mut() {
                o.remove("contains");
            }
        }
        out["expansion"] = expansion;
        Ok(Some(out))
    }
}

fn flatten_concepts(system: &str, concepts: &Value, out: &mut Vec<Contains>) {
    for c in concepts.as_array().into_iter().flatten() {
        if let Some(code) = c["code"].as_str() {
            out.push(Contains {
                system: system.to_string(),
                code: code.to_string(),
                display: c["display"].as_str().map(str::to_string),
            });
        }
        flatten_concepts(system, &c["concept"], out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundled() -> Conformance {
        Conformance::bundled().expect("bundled conformance resources")
    }

    #[test]
    fn every_need_in_the_value_set_has_one_category_and_the_same_display() {
        let c = bundled();
        let vs = c.value_set_by_url(NEED_VALUE_SET).expect("need value set");
        let codes = c.codes(vs, 0).expect("expands");
        assert!(codes.len() >= 60, "{} need codes", codes.len());
        assert_eq!(
            codes.len(),
            c.needs().len(),
            "the map and the value set hold the same codes"
        );
        for code in &codes {
            let known = c
                .needs()
                .lookup(&code.system, &code.code)
                .unwrap_or_else(|| panic!("{} has no category", code.code));
            assert_eq!(Some(&known.display), code.display.as_ref(), "{}", code.code);
        }
        for category in NeedCategory::ALL {
            let n = codes
                .iter()
                .filter(|k| {
                    c.needs().lookup(&k.system, &k.code).map(|n| n.category) == Some(category)
                })
                .count();
            assert!(n >= 3, "{category} has {n} codes");
        }
    }

    /// `profiles/README.md` names the source of every need code, with the same category.
    #[test]
    fn the_profiles_readme_lists_every_need_with_its_category() {
        let readme = include_str!("../profiles/README.md");
        let c = bundled();
        let vs = c.value_set_by_url(NEED_VALUE_SET).expect("need value set");
        for code in c.codes(vs, 0).expect("expands") {
            let category = c
                .needs()
                .lookup(&code.system, &code.code)
                .map(|k| k.category);
            let row = readme
                .lines()
                .find(|l| l.starts_with(&format!("| `{}` |", code.code)))
                .unwrap_or_else(|| panic!("{} is not in profiles/README.md", code.code));
            let category = category.map(|c| format!("| `{c}` |")).unwrap_or_default();
            assert!(row.contains(&category), "{row}");
            assert!(row.contains(" @ `"), "{row} names no commit");
        }
    }

    #[test]
    fn expansion_filters_on_words_and_pages() {
        let c = bundled();
        let all = c
            .expand(
                Some("sp-referral-need"),
                None,
                &ExpandRequest::default(),
                "2026-12-03T00:00:00Z",
            )
            .expect("expands")
            .expect("exists");
        let total = all["expansion"]["total"].as_u64().unwrap_or(0);
        assert!(total >= 60);
        let social = c
            .expand(
                None,
                Some(NEED_VALUE_SET),
                &ExpandRequest {
                    filter: Some("social isol".into()),
                    ..ExpandRequest::default()
                },
                "2026-12-03T00:00:00Z",
            )
            .expect("expands")
            .expect("exists");
        let contains = social["expansion"]["contains"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            contains.iter().any(|c| c["code"] == "422650009"),
            "{social}"
        );
        assert!(contains.len() < total as usize);
        let page = c
            .expand(
                Some("sp-referral-need"),
                None,
                &ExpandRequest {
                    filter: None,
                    offset: 10,
                    count: Some(5),
                },
                "2026-12-03T00:00:00Z",
            )
            .expect("expands")
            .expect("exists");
        assert_eq!(
            page["expansion"]["contains"].as_array().map(Vec::len),
            Some(5)
        );
        assert_eq!(page["expansion"]["total"], all["expansion"]["total"]);
        assert!(c
            .expand(Some("nope"), None, &ExpandRequest::default(), "x")
            .expect("no error")
            .is_none());
    }

    #[test]
    fn categories_expand_from_their_code_system() {
        let c = bundled();
        let vs = c
            .expand(Some("need-category"), None, &ExpandRequest::default(), "x")
            .expect("expands")
            .expect("exists");
        assert_eq!(vs["expansion"]["total"], 10);
    }

    #[test]
    fn profiles_are_read_with_snapshots_and_found_by_url() {
        let c = bundled();
        let sd = c
            .read("StructureDefinition", "SP-ServiceRequest")
            .expect("snapshots")
            .expect("exists");
        assert!(sd["snapshot"]["element"]
            .as_array()
            .is_some_and(|e| e.len() > 40));
        let found = c
            .search(
                "StructureDefinition",
                Some(sp_validator::SP_SERVICE_REQUEST),
                None,
                None,
            )
            .expect("search");
        assert_eq!(found.len(), 1);
        let versioned = format!(
            "{}|{}",
            sp_validator::SP_SERVICE_REQUEST,
            sd["version"].as_str().unwrap_or("")
        );
        assert_eq!(
            c.search("StructureDefinition", Some(&versioned), None, None)
                .expect("search")
                .len(),
            1
        );
        assert!(c
            .read("ConceptMap", "need-to-category")
            .expect("read")
            .is_some());
    }
}
