//! The service directory search a GP runs in a ten-minute appointment: need + postcode over
//! 10,000 services (issue 21: p99 <= 10 ms on this machine).
//!
//! Generates 10,000 Open Referral UK services (valid against the UK profile's schema, which each
//! one is checked against as an import would), builds the search index the gateway serves from,
//! then times searches as the FHIR endpoint runs them: the `need` token read through the need
//! vocabulary (SNOMED CT codes of ConceptMap need-to-category), the postcode read to its
//! district, the ranked search (coverage tier, then nearest first from the district's centroid),
//! and the first page (20) taken. Then times `Location?near` as its endpoint runs it: the value
//! read, the positioned locations within 10 km found nearest first. Prints p50, p99 and the
//! slowest of each; exits 1 when a p99 is above the target.
//!
//! `cargo bench --bench directory_search` (SP_BENCH_SERVICES, SP_BENCH_QUERIES to change the
//! sizes).

mod common;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sp_gateway::conformance::Conformance;
use sp_gateway::directory::import::{Origin, ServiceSchema};
use sp_gateway::directory::index::need_category;
use sp_gateway::directory::near::Near;
use sp_gateway::directory::{district_of, Index, IndexedService, Query, TaxonomyMap};

const NEED_MAP: &str = include_str!("../profiles/sp/ConceptMap-need-to-category.json");
const NEED_CATEGORY: &str = "https://fhir.sp-gateway.uk/CodeSystem/need-category";
const CATEGORIES: [&str; 10] = [
    "social-connection",
    "mental-wellbeing",
    "physical-activity",
    "money-and-debt",
    "housing",
    "work-and-learning",
    "carers",
    "food",
    "safety",
    "practical-support",
];
const AREAS: [&str; 12] = [
    "HR", "CF", "LE", "AB", "SW", "M", "B", "LS", "NE", "BS", "EX", "PL",
];
const WORDS: [&str; 24] = [
    "walking",
    "group",
    "knit",
    "natter",
    "lunch",
    "club",
    "advice",
    "debt",
    "carers",
    "café",
    "garden",
    "allotment",
    "choir",
    "men's",
    "shed",
    "befriending",
    "telephone",
    "friends",
    "housing",
    "support",
    "food",
    "bank",
    "swim",
    "yoga",
];
/// The page the FHIR search returns when `_count` is not given.
const PAGE: usize = 20;
const TARGET: Duration = Duration::from_millis(10);

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn uuid(rng: &mut Rng) -> String {
    let mut hex = String::new();
    for _ in 0..32 {
        hex.push(char::from_digit(rng.below(16) as u32, 16).unwrap_or('0'));
    }
    format!(
        "{}-{}-4{}-8{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

fn district(rng: &mut Rng) -> String {
    format!("{}{}", AREAS[rng.below(AREAS.len())], 1 + rng.below(20))
}

/// A place somewhere in Great Britain's middle, 4 decimals (about 10 m).
fn somewhere(rng: &mut Rng) -> (f64, f64) {
    let lat = 50.5 + rng.below(50_000) as f64 / 10_000.0;
    let lon = -4.5 + rng.below(50_000) as f64 / 10_000.0;
    (lat, lon)
}

/// One service: its categories as need-category terms, and its coverage: a text service area
/// of districts or an area (two in three of them with a hall that has a position), a physical
/// place (its position from its postcode district), or virtual only (everywhere).
fn service(rng: &mut Rng, i: usize) -> Value {
    let pick = |k: usize, rng: &mut Rng| -> String {
        (0..k)
            .map(|_| WORDS[rng.below(WORDS.len())])
            .collect::<Vec<_>>()
            .join(" ")
    };
    let name = pick(3, rng);
    let description = pick(25, rng);
    let attributes: Vec<Value> = (0..1 + rng.below(2))
        .map(|_| {
            let code = CATEGORIES[rng.below(CATEGORIES.len())];
            json!({"id": uuid(rng), "taxonomy_term": {"id": uuid(rng), "name": code,
                "description": code, "taxonomy": NEED_CATEGORY, "term": code}})
        })
        .collect();
    let mut s = json!({
        "id": uuid(rng), "name": format!("{name} {i}"), "description": description,
        "status": if rng.below(20) == 0 { "inactive" } else { "active" },
        "organization": {"id": uuid(rng), "name": format!("Organisation {}", i / 3),
            "description": "A community group",
            "organization_identifiers": [{"id": uuid(rng), "identifier_scheme": "GB-CHC",
                "identifier_type": "Charity number", "identifier": format!("{}", 1_100_000 + i / 3)}]},
        "attributes": attributes
    });
    let kind = rng.below(100);
    if kind < 75 && rng.below(3) != 0 {
        let (lat, lon) = somewhere(rng);
        s["service_at_locations"] = json!([{"id": uuid(rng), "location": {"id": uuid(rng),
            "location_type": "physical", "name": "Community centre",
            "latitude": lat, "longitude": lon}}]);
    }
    if kind < 45 {
        let districts: Vec<String> = (0..1 + rng.below(3)).map(|_| district(rng)).collect();
        s["service_areas"] =
            json!([{"id": uuid(rng), "extent": districts.join(", "), "extent_type": "text"}]);
    } else if kind < 75 {
        s["service_areas"] = json!([{"id": uuid(rng), "extent": AREAS[rng.below(AREAS.len())],
            "extent_type": "text"}]);
    } else if kind < 95 {
        let postcode = format!("{} 1AB", district(rng));
        s["service_at_locations"] = json!([{"id": uuid(rng), "location": {"id": uuid(rng),
            "location_type": "physical", "name": "Village hall",
            "addresses": [{"id": uuid(rng), "address_1": "1 High Street", "city": "Town",
                "state_province": "County", "postal_code": postcode, "country": "GB",
                "address_type": "physical"}]}}]);
    } else {
        s["service_at_locations"] = json!([{"id": uuid(rng), "location": {"id": uuid(rng),
            "location_type": "virtual", "name": "Online"}}]);
    }
    s
}

/// The SNOMED CT needs of ConceptMap need-to-category.
fn snomed_needs() -> Vec<String> {
    let map: Value = serde_json::from_str(NEED_MAP).unwrap_or(Value::Null);
    map["group"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["element"].as_array().into_iter().flatten())
        .filter_map(|e| e["code"].as_str())
        .map(|c| format!("http://snomed.info/sct|{c}"))
        .collect()
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn run() -> Result<bool, String> {
    let services = env_number("SP_BENCH_SERVICES", 10_000);
    let queries = env_number("SP_BENCH_QUERIES", 5_000);
    let schema = ServiceSchema::bundled().map_err(|e| e.to_string())?;
    let taxonomy = TaxonomyMap::bundled().map_err(|e| e.to_string())?;
    let conformance = Conformance::bundled().map_err(|e| e.to_string())?;
    let needs = conformance.needs();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);

    let started = Instant::now();
    let mut indexed: Vec<IndexedService> = Vec::with_capacity(services);
    for i in 0..services {
        let origin = Origin {
            source: "generated".into(),
            index: Some(i),
        };
        let checked = schema
            .check(service(&mut rng, i), origin)
            .map_err(|bad| format!("a generated service is invalid: {bad}"))?;
        indexed.push(IndexedService::from_oruk(&checked.service, &taxonomy));
    }
    let generated = started.elapsed();
    let started = Instant::now();
    let index = Index::build(indexed);
    let built = started.elapsed();

    let snomed = snomed_needs();
    if snomed.is_empty() {
        return Err("ConceptMap need-to-category lists no needs".into());
    }
    let requests: Vec<(String, String)> = (0..queries)
        .map(|_| {
            let need = snomed[rng.below(snomed.len())].clone();
            (need, format!("{} 0LT", district(&mut rng)))
        })
        .collect();
    let search = |need: &str, postcode: &str| -> Result<usize, String> {
        let category = need_category(need, needs).map_err(|e| e.to_string())?;
        let district = district_of(postcode).map_err(|e| e.to_string())?;
        let query = Query {
            categories: vec![category],
            postcode: Some(district),
            active: Some(true),
            ..Query::default()
        };
        let found = index.search(&query);
        let page: Vec<&str> = found
            .iter()
            .take(PAGE)
            .map(|m| m.service.id.as_str())
            .collect();
        Ok(found.len() + page.len())
    };
    // Warm up (page in the index), then time every request once.
    for (need, postcode) in requests.iter().take(200) {
        search(need, postcode)?;
    }
    let mut times = Vec::with_capacity(requests.len());
    let mut answers = 0;
    for (need, postcode) in &requests {
        let at = Instant::now();
        answers += search(need, postcode)?;
        times.push(at.elapsed());
    }
    times.sort();
    let p50 = percentile(&times, 0.50);
    let p99 = percentile(&times, 0.99);
    let max = times.last().copied().unwrap_or_default();
    println!(
        "directory search, need + postcode: {services} services ({} indexed, {generated:.2?} to generate and check, {built:.2?} to index), {queries} searches",
        index.len()
    );
    println!(
        "  p50 {:.3} ms, p99 {:.3} ms, slowest {:.3} ms ({} answers in all); target p99 <= {} ms: {}",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3,
        answers,
        TARGET.as_millis(),
        if p99 <= TARGET { "met" } else { "MISSED" }
    );
    // Location?near: a point somewhere, 10 km around it.
    let points: Vec<String> = (0..queries)
        .map(|_| {
            let (lat, lon) = somewhere(&mut rng);
            format!("{lat}|{lon}|10|km")
        })
        .collect();
    let near = |value: &str| -> Result<usize, String> {
        let near: Near = value
            .parse()
            .map_err(|e: sp_gateway::directory::near::NearError| e.to_string())?;
        let found = index.near(&near.origin, near.within_km);
        let page = found.iter().take(PAGE).count();
        Ok(found.len() + page)
    };
    for value in points.iter().take(200) {
        near(value)?;
    }
    let mut near_times = Vec::with_capacity(points.len());
    let mut places = 0;
    for value in &points {
        let at = Instant::now();
        places += near(value)?;
        near_times.push(at.elapsed());
    }
    near_times.sort();
    let near_p99 = percentile(&near_times, 0.99);
    println!(
        "  Location?near (10 km): p50 {:.3} ms, p99 {:.3} ms, slowest {:.3} ms ({} answers in all); target p99 <= {} ms: {}",
        percentile(&near_times, 0.50).as_secs_f64() * 1e3,
        near_p99.as_secs_f64() * 1e3,
        near_times.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        places,
        TARGET.as_millis(),
        if near_p99 <= TARGET { "met" } else { "MISSED" }
    );
    Ok(p99 <= TARGET && near_p99 <= TARGET)
}

fn main() {
    // The shared helpers are for the load benches; this one runs in process.
    let _ = common::GP_TOKEN;
    match run() {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("directory_search: {e}");
            std::process::exit(2);
        }
    }
}
