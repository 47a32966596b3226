//! An in-memory search index over the directory's services: by need category, postcode,
//! words of name and description, organisation and active flag. Results come ranked: services
//! covering the postcode's district, then its area, then everywhere; within each, nearest first
//! (from the postcode district's centroid to the service's nearest place), then by name. The
//! index also answers which of the directory's positioned locations are near a point.
//!
//! Everything a query needs is precomputed: services are kept sorted by name (so every list
//! of positions is already in result order), with lists per need category, per district, per
//! area and for "everywhere", a sorted vocabulary of words with their postings, a bitset of
//! categories and a sorted list of word ids per service. A query walks the shortest list that
//! must hold every answer and checks the other conditions with integer comparisons; no text is
//! scanned.

use std::collections::{BTreeSet, HashMap};

use super::centroids::{centroid, Position};
use super::coverage::{Coverage, MatchRank};
use super::fhir::organization_identifiers;
use super::oruk::{LocationType, Service};
use super::postcode::{Postcode, PostcodeArea, PostcodeDistrict};
use super::taxonomy::TaxonomyMap;
use crate::conformance::NeedVocabulary;
use crate::domain::{systems, Identifier, NeedCategory};

/// What the index knows of one service.
#[derive(Debug, Clone)]
pub struct IndexedService {
    /// The Open Referral UK id (also the FHIR id of its HealthcareService).
    pub id: String,
    pub name: String,
    pub description: String,
    /// The organisation's id (the FHIR id of its Organization).
    pub organization_id: Option<String>,
    pub organization_identifiers: Vec<Identifier>,
    pub active: bool,
    pub categories: BTreeSet<NeedCategory>,
    pub coverage: Coverage,
    /// How to reach the service by hand (for a GP whose referral the gateway cannot deliver).
    pub contact: ServiceContact,
    /// Where it meets: each physical location's own position, or else the centroid of the
    /// location's postcode district.
    pub places: Vec<Position>,
    /// Its locations that have a position of their own (as their FHIR `Location.position`).
    pub locations: Vec<PositionedLocation>,
}

/// A location of the directory with its own latitude and longitude.
#[derive(Debug, Clone, PartialEq)]
pub struct PositionedLocation {
    /// The Open Referral UK id (also the FHIR id of its Location).
    pub id: String,
    pub position: Position,
}

/// The places of a service's physical locations, and its locations that have a position.
fn places_of(service: &Service) -> (Vec<Position>, Vec<PositionedLocation>) {
    let mut places = Vec::new();
    let mut positioned = Vec::new();
    for loc in service.locations() {
        let own = match (loc.latitude, loc.longitude) {
            (Some(lat), Some(lon)) => Position::new(lat, lon).ok(),
            _ => None,
        };
        if let Some(position) = own.filter(|_| loc.location_type != LocationType::Postal) {
            positioned.push(PositionedLocation {
                id: loc.id.clone(),
                position,
            });
        }
        if loc.location_type != LocationType::Physical {
            continue;
        }
        let district = || {
            let code = loc.postal_code()?.parse::<Postcode>().ok()?;
            centroid(code.district())
        };
        if let Some(place) = own.or_else(district) {
            places.push(place);
        }
    }
    (places, positioned)
}

/// A service's own contact details, as its feed gives them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceContact {
    pub email: Option<String>,
    pub website: Option<String>,
    pub telephones: Vec<String>,
}

impl IndexedService {
    pub fn from_oruk(service: &Service, taxonomy: &TaxonomyMap) -> IndexedService {
        let org = service.organization.as_ref();
        let (places, locations) = places_of(service);
        IndexedService {
            id: service.id.clone(),
            name: service.name.trim().to_string(),
            description: service.description.clone().unwrap_or_default(),
            organization_id: org
                .map(|o| o.id.clone())
                .or_else(|| service.organization_id.clone()),
            organization_identifiers: org.map(organization_identifiers).unwrap_or_default(),
            active: service.is_active(),
            categories: taxonomy.categories(service),
            coverage: Coverage::of(service).0,
            contact: ServiceContact {
                email: filled(&service.email),
                website: filled(&service.url),
                telephones: service
                    .phone_numbers()
                    .into_iter()
                    .map(str::to_string)
                    .collect(),
            },
            places,
            locations,
        }
    }

    /// The distance from `origin` to the service's nearest place, in kilometres.
    pub fn distance_km(&self, origin: &Position) -> Option<f64> {
        self.places
            .iter()
            .map(|p| p.distance_km(origin))
            .min_by(f64::total_cmp)
    }
}

fn filled(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Which organisation: its id, or one of its identifiers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrganizationFilter {
    Id(String),
    Identifier(Identifier),
}

/// A search. Every condition given must hold; an empty query answers every service.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// In any of these categories (FHIR `need=a,b` is "or").
    pub categories: Vec<NeedCategory>,
    /// Covering this district; results are then ranked district, area, everywhere, and nearest
    /// first within each when the district's centroid is known.
    pub postcode: Option<PostcodeDistrict>,
    /// Each word begins a word of the name or the description (`knit` finds "knitting"); case
    /// and accents do not matter.
    pub words: Vec<String>,
    pub organization: Option<OrganizationFilter>,
    pub active: Option<bool>,
}

impl Query {
    /// Adds the words of `text` (as typed in `name=` or `_text=`).
    pub fn with_text(mut self, text: &str) -> Query {
        self.words.extend(words(text));
        self
    }
}

/// One answer.
#[derive(Debug, Clone, Copy)]
pub struct Match<'a> {
    pub service: &'a IndexedService,
    /// How it covers the postcode searched for (`None` when no postcode was given).
    pub rank: Option<MatchRank>,
    /// Kilometres from the centroid of the postcode's district to the service's nearest place
    /// (`None` without a postcode, or when either is not known).
    pub distance_km: Option<f64>,
}

/// A location near a point.
#[derive(Debug, Clone, Copy)]
pub struct NearLocation<'a> {
    pub location: &'a PositionedLocation,
    pub distance_km: f64,
}

/// Why a search parameter cannot be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("{0:?} is neither a need we know (SNOMED CT, in ValueSet sp-referral-need) nor a need category")]
    UnknownNeed(String),
}

/// The need category a `need=` value names: `system|code` or a bare code, for a need of
/// ValueSet `sp-referral-need` (SNOMED CT) or a code of CodeSystem `need-category`.
pub fn need_category(token: &str, needs: &NeedVocabulary) -> Result<NeedCategory, QueryError> {
    let unknown = || QueryError::UnknownNeed(token.to_string());
    let (system, code) = match token.trim().split_once('|') {
        Some((s, c)) => (Some(s.trim()), c.trim()),
        None => (None, token.trim()),
    };
    match system {
        Some(s) if s == systems::NEED_CATEGORY => code.parse().map_err(|_| unknown()),
        Some(s) => needs
            .lookup(s, code)
            .map(|n| n.category)
            .ok_or_else(unknown),
        None => code
            .parse()
            .ok()
            .or_else(|| needs.lookup(systems::SNOMED, code).map(|n| n.category))
            .ok_or_else(unknown),
    }
}

/// Lower case, accents of Latin letters (Welsh circumflexes included) removed.
fn fold(c: char) -> char {
    match c {
        'à' | 'á' | 'â' | 'ä' | 'ã' | 'å' => 'a',
        'è' | 'é' | 'ê' | 'ë' => 'e',
        'ì' | 'í' | 'î' | 'ï' => 'i',
        'ò' | 'ó' | 'ô' | 'ö' | 'õ' => 'o',
        'ù' | 'ú' | 'û' | 'ü' => 'u',
        'ŵ' | 'ẁ' | 'ẃ' | 'ẅ' => 'w',
        'ŷ' | 'ỳ' | 'ý' | 'ÿ' => 'y',
        'ç' => 'c',
        'ñ' => 'n',
        c => c,
    }
}

/// The words of a text, as the index compares them.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.chars().flat_map(char::to_lowercase).map(fold).collect())
        .collect()
}

/// The search index.
#[derive(Debug, Default)]
pub struct Index {
    /// Sorted by (name in lower case, id): a position is a rank by name.
    services: Vec<IndexedService>,
    category_bits: Vec<u16>,
    /// Per service, the ids of its words, sorted.
    service_words: Vec<Vec<u32>>,
    /// Every word, sorted: a word id is its position, so the words beginning with a prefix
    /// are a range of ids.
    vocabulary: Vec<String>,
    postings: Vec<Vec<u32>>,
    by_category: Vec<Vec<u32>>,
    by_district: HashMap<PostcodeDistrict, Vec<u32>>,
    by_area: HashMap<PostcodeArea, Vec<u32>>,
    everywhere: Vec<u32>,
    by_organization: HashMap<String, Vec<u32>>,
    by_identifier: HashMap<Identifier, Vec<u32>>,
    by_id: HashMap<String, u32>,
    /// Every positioned location of a listed (active) service, once, sorted by id.
    locations: Vec<PositionedLocation>,
}

fn bit(c: NeedCategory) -> u16 {
    1 << (c as u16)
}

impl Index {
    /// Builds the index; of two services with one id, the later is kept.
    pub fn build(services: impl IntoIterator<Item = IndexedService>) -> Index {
        let mut by_id: HashMap<String, IndexedService> = HashMap::new();
        for s in services {
            by_id.insert(s.id.clone(), s);
        }
        let mut keyed: Vec<(String, IndexedService)> = by_id
            .into_values()
            .map(|s| (s.name.to_lowercase(), s))
            .collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.id.cmp(&b.1.id)));
        let services: Vec<IndexedService> = keyed.into_iter().map(|(_, s)| s).collect();

        let texts: Vec<BTreeSet<String>> = services
            .iter()
            .map(|s| {
                words(&s.name)
                    .into_iter()
                    .chain(words(&s.description))
                    .collect()
            })
            .collect();
        let vocabulary: Vec<String> = texts
            .iter()
            .flatten()
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let word_id: HashMap<&str, u32> = vocabulary
            .iter()
            .enumerate()
            .map(|(i, w)| (w.as_str(), i as u32))
            .collect();

        let mut index = Index {
            by_category: vec![Vec::new(); NeedCategory::ALL.len()],
            postings: vec![Vec::new(); vocabulary.len()],
            ..Index::default()
        };
        for (i, (s, text)) in services.iter().zip(&texts).enumerate() {
            let i = i as u32;
            index.by_id.insert(s.id.clone(), i);
            let mut ids: Vec<u32> = text
                .iter()
                .filter_map(|w| word_id.get(w.as_str()).copied())
                .collect();
            ids.sort_unstable();
            for &w in &ids {
                index.postings[w as usize].push(i);
            }
            index.service_words.push(ids);
            let mut bits = 0;
            for &c in &s.categories {
                bits |= bit(c);
                index.by_category[c as usize].push(i);
            }
            index.category_bits.push(bits);
            match &s.coverage {
                Coverage::Everywhere => index.everywhere.push(i),
                Coverage::Places { districts, areas } => {
                    for d in districts {
                        index.by_district.entry(d.clone()).or_default().push(i);
                    }
                    for a in areas {
                        index.by_area.entry(a.clone()).or_default().push(i);
                    }
                }
            }
            if s.active {
                index.locations.extend(s.locations.iter().cloned());
            }
            if let Some(o) = &s.organization_id {
                index.by_organization.entry(o.clone()).or_default().push(i);
            }
            for id in &s.organization_identifiers {
                let list = index.by_identifier.entry(id.clone()).or_default();
                if list.last() != Some(&i) {
                    list.push(i);
                }
            }
        }
        index.locations.sort_by(|a, b| a.id.cmp(&b.id));
        index.locations.dedup_by(|a, b| a.id == b.id);
        index.vocabulary = vocabulary;
        index.services = services;
        index
    }

    /// The positioned locations of listed services within `within_km` of `origin`, nearest
    /// first (then by id).
    pub fn near(&self, origin: &Position, within_km: f64) -> Vec<NearLocation<'_>> {
        let mut found: Vec<NearLocation<'_>> = self
            .locations
            .iter()
            .map(|location| NearLocation {
                location,
                distance_km: location.position.distance_km(origin),
            })
            .filter(|n| n.distance_km <= within_km)
            .collect();
        found.sort_by(|a, b| a.distance_km.total_cmp(&b.distance_km));
        found
    }

    pub fn len(&self) -> usize {
        self.services.len()
    }

    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    /// A service by its id.
    pub fn get(&self, id: &str) -> Option<&IndexedService> {
        self.by_id.get(id).map(|&i| &self.services[i as usize])
    }

    /// The ids of the words beginning with `prefix`.
    fn word_range(&self, prefix: &str) -> (u32, u32) {
        let lo = self.vocabulary.partition_point(|w| w.as_str() < prefix);
        let n = self.vocabulary[lo..].partition_point(|w| w.starts_with(prefix));
        (lo as u32, (lo + n) as u32)
    }

    /// The services matching `q`, best first.
    pub fn search(&self, q: &Query) -> Vec<Match<'_>> {
        let mut ranges = Vec::with_capacity(q.words.len());
        for w in q.words.iter().flat_map(|w| words(w)) {
            let (lo, hi) = self.word_range(&w);
            if lo == hi {
                return Vec::new();
            }
            ranges.push((lo, hi));
        }
        let mask: u16 = q.categories.iter().map(|&c| bit(c)).fold(0, |a, b| a | b);
        let org_list = match &q.organization {
            Some(OrganizationFilter::Id(id)) => Some(self.by_organization.get(id)),
            Some(OrganizationFilter::Identifier(i)) => Some(self.by_identifier.get(i)),
            None => None,
        };
        if org_list.is_some_and(|l| l.is_none()) {
            return Vec::new();
        }
        let org_list: Option<&[u32]> = org_list.flatten().map(Vec::as_slice);
        let pass = |i: u32| -> bool {
            let e = i as usize;
            (mask == 0 || self.category_bits[e] & mask != 0)
                && q.active.is_none_or(|a| self.services[e].active == a)
                && org_list.is_none_or(|l| l.binary_search(&i).is_ok())
                && ranges.iter().all(|&(lo, hi)| {
                    let ws = &self.service_words[e];
                    let k = ws.partition_point(|&w| w < lo);
                    k < ws.len() && ws[k] < hi
                })
        };
        let hit = |i: u32, rank| Match {
            service: &self.services[i as usize],
            rank,
            distance_km: None,
        };
        if let Some(d) = &q.postcode {
            let origin = centroid(d);
            // Within a tier (already in name order), nearest first; unknown distances last.
            let nearest_first = |tier: &mut [Match<'_>]| {
                let Some(origin) = &origin else { return };
                for m in tier.iter_mut() {
                    m.distance_km = m.service.distance_km(origin);
                }
                tier.sort_by(|a, b| match (a.distance_km, b.distance_km) {
                    (Some(x), Some(y)) => x.total_cmp(&y),
                    (x, y) => y.is_some().cmp(&x.is_some()),
                });
            };
            let area = d.area();
            let in_district: &[u32] = self.by_district.get(d).map_or(&[], Vec::as_slice);
            let in_area: &[u32] = self.by_area.get(&area).map_or(&[], Vec::as_slice);
            let mut out: Vec<Match<'_>> = in_district
                .iter()
                .filter(|&&i| pass(i))
                .map(|&i| hit(i, Some(MatchRank::District)))
                .collect();
            nearest_first(&mut out);
            let start = out.len();
            out.extend(
                in_area
                    .iter()
                    .filter(|&&i| in_district.binary_search(&i).is_err() && pass(i))
                    .map(|&i| hit(i, Some(MatchRank::Area))),
            );
            nearest_first(&mut out[start..]);
            let start = out.len();
            out.extend(
                self.everywhere
                    .iter()
                    .filter(|&&i| pass(i))
                    .map(|&i| hit(i, Some(MatchRank::Everywhere))),
            );
            nearest_first(&mut out[start..]);
            return out;
        }
        // Walk the smallest of the lists that must hold every answer.
        let mut sources: Vec<Vec<&[u32]>> = Vec::new();
        if let Some(l) = org_list {
            sources.push(vec![l]);
        }
        if !q.categories.is_empty() {
            sources.push(
                q.categories
                    .iter()
                    .map(|&c| self.by_category[c as usize].as_slice())
                    .collect(),
            );
        }
        for &(lo, hi) in &ranges {
            sources.push(
                (lo..hi)
                    .map(|w| self.postings[w as usize].as_slice())
                    .collect(),
            );
        }
        let size = |lists: &Vec<&[u32]>| lists.iter().map(|l| l.len()).sum::<usize>();
        let keep = |i: &u32| pass(*i);
        let found: Vec<u32> = match sources.into_iter().min_by_key(size) {
            None => (0..self.services.len() as u32).filter(keep).collect(),
            Some(lists) => match lists.as_slice() {
                [one] => one.iter().copied().filter(keep).collect(),
                many => self.union(many).into_iter().filter(keep).collect(),
            },
        };
        found.into_iter().map(|i| hit(i, None)).collect()
    }

    /// The sorted union of sorted lists of positions (through a bitmap: no sorting).
    fn union(&self, lists: &[&[u32]]) -> Vec<u32> {
        let mut bits = vec![0u64; self.services.len().div_ceil(64)];
        for l in lists {
            for &i in *l {
                bits[(i / 64) as usize] |= 1 << (i % 64);
            }
        }
        let mut out = Vec::new();
        for (k, &word) in bits.iter().enumerate() {
            let mut x = word;
            while x != 0 {
                out.push(k as u32 * 64 + x.trailing_zeros());
                x &= x - 1;
            }
        }
        out
    }
}

#[cfg(test)]
#[path = "index_tests.rs"]
mod tests;
