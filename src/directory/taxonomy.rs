//! Need categories of a service from its taxonomy terms (`attributes[].taxonomy_term`).
//!
//! A term whose `taxonomy` is our CodeSystem `need-category`
//! (`https://fhir.sp-gateway.uk/CodeSystem/need-category`) puts the service in the category its
//! `term` names. Terms of other taxonomies go through a [`TaxonomyMap`]: the table shipped in
//! `profiles/directory/taxonomy-map.json` (LGA ESD service types with a verified source), which
//! an operator can extend with a table of the same shape.

use std::collections::{BTreeSet, HashMap};

use serde::Deserialize;

use super::oruk::{Service, TaxonomyTerm};
use crate::domain::{systems, NeedCategory};

/// The table shipped with the gateway.
const BUNDLED_TABLE: &str = include_str!("../../profiles/directory/taxonomy-map.json");

/// A taxonomy of ours whose terms say how a service is reached (not a need): `term`
/// `appointment-required` or `drop-in` set `HealthcareService.appointmentRequired`.
pub const ACCESS_TAXONOMY: &str = "https://fhir.sp-gateway.uk/directory/access";

/// Why a mapping table cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TaxonomyMapError {
    #[error("taxonomy map: {0}")]
    Json(#[from] serde_json::Error),
    #[error("taxonomy map: taxonomy {taxonomy:?} has no name to match feeds by")]
    Unnamed { taxonomy: String },
    #[error("taxonomy map: term {term:?} of {taxonomy:?} is listed twice")]
    Duplicate { taxonomy: String, term: String },
}

/// The file format (`profiles/directory/taxonomy-map.json`).
#[derive(Debug, Deserialize)]
struct TableFile {
    taxonomies: Vec<TaxonomyEntry>,
}

#[derive(Debug, Deserialize)]
struct TaxonomyEntry {
    id: String,
    /// What feeds write in `taxonomy_term.taxonomy` for this taxonomy (compared ignoring case).
    #[serde(default)]
    names: Vec<String>,
    /// `term_uri` = this prefix + `term`, so terms are found by URI whatever `taxonomy` says.
    #[serde(default)]
    term_uri_prefix: Option<String>,
    terms: Vec<TermEntry>,
}

#[derive(Debug, Deserialize)]
struct TermEntry {
    term: String,
    category: NeedCategory,
}

/// Terms of other taxonomies and the need category each puts a service in.
#[derive(Debug, Clone, Default)]
pub struct TaxonomyMap {
    /// (taxonomy name in lower case, term) → category.
    by_name: HashMap<(String, String), NeedCategory>,
    /// term URI → category.
    by_uri: HashMap<String, NeedCategory>,
    /// taxonomy name in lower case → its term URI prefix, to read a `term` written as a URI.
    prefixes: HashMap<String, String>,
}

impl TaxonomyMap {
    /// The table shipped in `profiles/directory/taxonomy-map.json` (embedded).
    pub fn bundled() -> Result<TaxonomyMap, TaxonomyMapError> {
        TaxonomyMap::from_json(BUNDLED_TABLE)
    }

    /// A table in the format of `profiles/directory/taxonomy-map.json`.
    pub fn from_json(text: &str) -> Result<TaxonomyMap, TaxonomyMapError> {
        let file: TableFile = serde_json::from_str(text)?;
        let mut map = TaxonomyMap::default();
        for t in file.taxonomies {
            if t.names.is_empty() && t.term_uri_prefix.is_none() {
                return Err(TaxonomyMapError::Unnamed { taxonomy: t.id });
            }
            let names: Vec<String> = t.names.iter().map(|n| n.trim().to_lowercase()).collect();
            for name in &names {
                if let Some(prefix) = &t.term_uri_prefix {
                    map.prefixes.insert(name.clone(), prefix.clone());
                }
            }
            let mut seen = BTreeSet::new();
            for term in t.terms {
                let code = term.term.trim().to_string();
                if !seen.insert(code.clone()) {
                    return Err(TaxonomyMapError::Duplicate {
                        taxonomy: t.id,
                        term: code,
                    });
                }
                for name in &names {
                    map.by_name
                        .insert((name.clone(), code.clone()), term.category);
                }
                if let Some(prefix) = &t.term_uri_prefix {
                    for uri in uri_forms(&format!("{prefix}{code}")) {
                        map.by_uri.insert(uri, term.category);
                    }
                }
            }
        }
        Ok(map)
    }

    /// Adds an operator's table; where both map a term, `other` wins.
    pub fn extend(&mut self, other: TaxonomyMap) {
        self.by_name.extend(other.by_name);
        self.by_uri.extend(other.by_uri);
        self.prefixes.extend(other.prefixes);
    }

    /// How many (taxonomy name, term) pairs the table maps.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty() && self.by_uri.is_empty()
    }

    /// The need category a term puts a service in, if any.
    pub fn category_of(&self, t: &TaxonomyTerm) -> Option<NeedCategory> {
        let taxonomy = t.taxonomy.as_deref().map(str::trim).unwrap_or_default();
        let term = t.term.as_deref().map(str::trim).unwrap_or_default();
        if taxonomy == systems::NEED_CATEGORY {
            return term.parse().ok();
        }
        let name = taxonomy.to_lowercase();
        if !term.is_empty() {
            let code = self
                .prefixes
                .get(&name)
                .and_then(|p| uri_forms(p).find_map(|p| term.strip_prefix(p.as_str())))
                .unwrap_or(term);
            if let Some(c) = self.by_name.get(&(name, code.to_string())) {
                return Some(*c);
            }
            if let Some(c) = self.by_uri.get(term) {
                return Some(*c);
            }
        }
        t.term_uri
            .as_deref()
            .and_then(|u| self.by_uri.get(u.trim()))
            .copied()
    }

    /// The need categories of a service, in code order.
    pub fn categories(&self, service: &Service) -> BTreeSet<NeedCategory> {
        service
            .taxonomy_terms()
            .filter_map(|t| self.category_of(t))
            .collect()
    }
}

/// A URI as written, and with the other of `http`/`https`.
fn uri_forms(uri: &str) -> impl Iterator<Item = String> {
    let other = if let Some(rest) = uri.strip_prefix("http://") {
        Some(format!("https://{rest}"))
    } else {
        uri.strip_prefix("https://")
            .map(|rest| format!("http://{rest}"))
    };
    std::iter::once(uri.to_string()).chain(other)
}

/// Whether a term describes the service's kind (for `HealthcareService.type`): not one of our
/// need categories and not our access taxonomy.
pub fn is_service_type(t: &TaxonomyTerm) -> bool {
    let taxonomy = t.taxonomy.as_deref().map(str::trim);
    taxonomy != Some(systems::NEED_CATEGORY) && taxonomy != Some(ACCESS_TAXONOMY)
}

/// `true` when the feed says an appointment is needed, `false` when it says drop in, `None`
/// when it says nothing (Open Referral UK has no field for it; see [`ACCESS_TAXONOMY`]).
pub fn appointment_required(service: &Service) -> Option<bool> {
    service
        .taxonomy_terms()
        .filter(|t| t.taxonomy.as_deref().map(str::trim) == Some(ACCESS_TAXONOMY))
        .find_map(|t| match t.term.as_deref().map(str::trim) {
            Some("appointment-required") => Some(true),
            Some("drop-in") => Some(false),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn term(taxonomy: &str, term: &str, uri: Option<&str>) -> TaxonomyTerm {
        serde_json::from_value(json!({
            "id": "t", "name": "n", "description": "d",
            "taxonomy": taxonomy, "term": term, "term_uri": uri
        }))
        .expect("term")
    }

    #[test]
    fn our_own_taxonomy_needs_no_table() {
        let empty = TaxonomyMap::default();
        let t = term(systems::NEED_CATEGORY, "money-and-debt", None);
        assert_eq!(empty.category_of(&t), Some(NeedCategory::MoneyAndDebt));
        let unknown = term(systems::NEED_CATEGORY, "money", None);
        assert_eq!(empty.category_of(&unknown), None);
    }

    #[test]
    fn the_bundled_table_maps_esd_service_types_by_name_or_uri() {
        let map = TaxonomyMap::bundled().expect("bundled table");
        assert!(map.len() >= 20, "{}", map.len());
        let carers = NeedCategory::Carers;
        assert_eq!(
            map.category_of(&term("esdServiceTypes", "298", None)),
            Some(carers)
        );
        assert_eq!(
            map.category_of(&term("ESDSERVICETYPES", " 298 ", None)),
            Some(carers)
        );
        // The term written as its URI, under the taxonomy's name.
        let as_uri = term("esdServiceTypes", "http://id.esd.org.uk/service/298", None);
        assert_eq!(map.category_of(&as_uri), Some(carers));
        // Any taxonomy name, found by the term's URI (http or https).
        let by_uri = term(
            "LGA service list",
            "x",
            Some("https://id.esd.org.uk/service/651"),
        );
        assert_eq!(map.category_of(&by_uri), Some(NeedCategory::MoneyAndDebt));
        assert_eq!(
            map.category_of(&term("esdServiceTypes", "1512", None)),
            None
        );
        assert_eq!(map.category_of(&term("something else", "298", None)), None);
    }

    #[test]
    fn an_operator_table_extends_and_overrides() {
        let mut map = TaxonomyMap::bundled().expect("bundled table");
        let local = TaxonomyMap::from_json(
            r#"{"taxonomies": [
                {"id": "hfd", "names": ["Herefordshire local"], "terms": [{"term": "KN", "label": "Knitting", "category": "social-connection"}]},
                {"id": "esd", "names": ["esdServiceTypes"], "terms": [{"term": "298", "label": "Carers support groups", "category": "mental-wellbeing"}]}
            ]}"#,
        )
        .expect("operator table");
        map.extend(local);
        let knit = term("herefordshire local", "KN", None);
        assert_eq!(map.category_of(&knit), Some(NeedCategory::SocialConnection));
        let carers = term("esdServiceTypes", "298", None);
        assert_eq!(
            map.category_of(&carers),
            Some(NeedCategory::MentalWellbeing)
        );
    }

    #[test]
    fn a_bad_table_is_refused_with_the_reason() {
        let unknown = TaxonomyMap::from_json(
            r#"{"taxonomies": [{"id": "x", "names": ["x"], "terms": [{"term": "1", "label": "l", "category": "money"}]}]}"#,
        );
        assert!(matches!(unknown, Err(TaxonomyMapError::Json(_))));
        let twice = TaxonomyMap::from_json(
            r#"{"taxonomies": [{"id": "x", "names": ["x"], "terms": [
                {"term": "1", "label": "l", "category": "food"}, {"term": "1", "label": "l", "category": "food"}]}]}"#,
        );
        assert!(matches!(twice, Err(TaxonomyMapError::Duplicate { .. })));
        let unnamed = TaxonomyMap::from_json(r#"{"taxonomies": [{"id": "x", "terms": []}]}"#);
        assert!(matches!(unnamed, Err(TaxonomyMapError::Unnamed { .. })));
    }

    #[test]
    fn the_access_taxonomy_sets_appointment_required() {
        let s = |t: &str| -> Service {
            serde_json::from_value(json!({"id": "s", "name": "n", "status": "active", "attributes": [
                {"id": "a", "taxonomy_term": {"id": "t", "name": "n", "description": "d", "taxonomy": ACCESS_TAXONOMY, "term": t}}
            ]}))
            .expect("service")
        };
        assert_eq!(appointment_required(&s("appointment-required")), Some(true));
        assert_eq!(appointment_required(&s("drop-in")), Some(false));
        assert_eq!(appointment_required(&s("other")), None);
        assert!(!is_service_type(
            &s("drop-in").attributes[0]
                .taxonomy_term
                .clone()
                .expect("term")
        ));
    }
}
