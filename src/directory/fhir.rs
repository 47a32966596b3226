//! An Open Referral UK service as FHIR R4: a `HealthcareService` (SP-HealthcareService), its
//! organisation as an `Organization` (SP-DirectoryOrganization) and its places as `Location`s
//! (SP-DirectoryLocation). Pure: the caller says which organisation identifiers are connected
//! to the gateway (the configured `[[vcs]]`), the rest comes from the service.
//!
//! Ids are the feed's own (UUIDs, which the UK profile's schema requires), so importing the same
//! feed again gives the same resources.

use serde_json::{json, Map, Value};

use super::coverage::{read_extent, Coverage, Place};
use super::oruk::{self, Frequency, LocationType, Service};
use super::postcode::Postcode;
use super::taxonomy::{self, TaxonomyMap};
use crate::domain::{systems, Identifier, NeedCategory};

pub const SP_HEALTHCARE_SERVICE: &str =
    "https://fhir.sp-gateway.uk/StructureDefinition/SP-HealthcareService";
pub const SP_DIRECTORY_ORGANIZATION: &str =
    "https://fhir.sp-gateway.uk/StructureDefinition/SP-DirectoryOrganization";
pub const SP_DIRECTORY_LOCATION: &str =
    "https://fhir.sp-gateway.uk/StructureDefinition/SP-DirectoryLocation";
/// Extension: whether the service takes referrals electronically through the gateway.
pub const REFERRALS_THROUGH_GATEWAY: &str =
    "https://fhir.sp-gateway.uk/StructureDefinition/referrals-through-gateway";

/// The Charity Commission for England and Wales (org-id `GB-CHC`), as the gateway configures it.
pub const CHARITY_COMMISSION: &str = "https://www.gov.uk/charity-commission";
/// Companies House (org-id `GB-COH`). UK Core publishes no identifier system for company numbers
/// (see `profiles/README.md`); this is the register's own service address.
pub const COMPANIES_HOUSE: &str = "https://find-and-update.company-information.service.gov.uk";
/// Identifiers that are URIs (`urn:uuid:…`), per FHIR R4 (identifier-registry).
const URI_SYSTEM: &str = "urn:ietf:rfc:3986";
const REFERRAL_METHOD: &str = "http://terminology.hl7.org/CodeSystem/service-referral-method";
const PHYSICAL_TYPE: &str = "http://terminology.hl7.org/CodeSystem/location-physical-type";

/// The FHIR form of one service.
#[derive(Debug, Clone)]
pub struct DirectoryResources {
    pub healthcare_service: Value,
    /// Absent when the feed names no organisation.
    pub organization: Option<Value>,
    /// Its physical and virtual locations, then the areas it covers.
    pub locations: Vec<Value>,
}

/// The display of each need category, as in CodeSystem `need-category`.
pub fn category_display(c: NeedCategory) -> &'static str {
    match c {
        NeedCategory::SocialConnection => "Social connection",
        NeedCategory::MentalWellbeing => "Mental wellbeing",
        NeedCategory::PhysicalActivity => "Physical activity and healthy living",
        NeedCategory::MoneyAndDebt => "Money and debt",
        NeedCategory::Housing => "Housing",
        NeedCategory::WorkAndLearning => "Work and learning",
        NeedCategory::Carers => "Carers",
        NeedCategory::Food => "Food",
        NeedCategory::Safety => "Safety",
        NeedCategory::PracticalSupport => "Practical support",
    }
}

/// The identifiers of an organisation the gateway can route on: charity numbers, company numbers
/// and ODS codes (`GB-NHS`, or an identifier whose type says ODS).
pub fn organization_identifiers(org: &oruk::Organization) -> Vec<Identifier> {
    org.organization_identifiers
        .iter()
        .filter_map(known_identifier)
        .collect()
}

fn known_identifier(i: &oruk::OrganizationIdentifier) -> Option<Identifier> {
    let value = i.identifier.trim();
    if value.is_empty() {
        return None;
    }
    let scheme = i
        .identifier_scheme
        .as_deref()
        .map(str::trim)
        .unwrap_or_default();
    let ods_type = i
        .identifier_type
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|w| w.eq_ignore_ascii_case("ods"));
    match scheme.to_ascii_uppercase().as_str() {
        "GB-CHC" => Some(Identifier::new(CHARITY_COMMISSION, value)),
        "GB-COH" => Some(Identifier::new(COMPANIES_HOUSE, value.to_ascii_uppercase())),
        "GB-NHS" => Some(Identifier::new(
            systems::ODS_CODE,
            value.to_ascii_uppercase(),
        )),
        _ if ods_type => Some(Identifier::new(
            systems::ODS_CODE,
            value.to_ascii_uppercase(),
        )),
        _ => None,
    }
}

fn uuid_identifier(id: &str) -> Value {
    json!({"system": URI_SYSTEM, "value": format!("urn:uuid:{id}")})
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Puts `value` at `key` unless it is an empty array.
fn put(o: &mut Map<String, Value>, key: &str, value: Value) {
    if !matches!(&value, Value::Array(a) if a.is_empty()) {
        o.insert(key.to_string(), value);
    }
}

/// The organisation as an `Organization`.
pub fn organization(org: &oruk::Organization) -> Value {
    let mut identifiers = vec![uuid_identifier(&org.id)];
    for i in &org.organization_identifiers {
        match known_identifier(i) {
            Some(k) => identifiers.push(json!({"system": k.system, "value": k.value})),
            None if !i.identifier.trim().is_empty() => {
                let scheme = i.identifier_scheme.as_deref().unwrap_or(&i.identifier_type);
                identifiers.push(json!({"type": {"text": scheme}, "value": i.identifier.trim()}));
            }
            None => {}
        }
    }
    let mut telecom = Vec::new();
    if let Some(e) = non_empty(&org.email) {
        telecom.push(json!({"system": "email", "value": e, "use": "work"}));
    }
    if let Some(w) = non_empty(&org.website) {
        telecom.push(json!({"system": "url", "value": w, "use": "work"}));
    }
    let mut o = Map::new();
    o.insert("resourceType".into(), json!("Organization"));
    o.insert("id".into(), json!(org.id));
    o.insert(
        "meta".into(),
        json!({"profile": [SP_DIRECTORY_ORGANIZATION]}),
    );
    o.insert("identifier".into(), Value::Array(identifiers));
    o.insert("active".into(), json!(true));
    o.insert("name".into(), json!(org.name.trim()));
    put(&mut o, "telecom", Value::Array(telecom));
    Value::Object(o)
}

/// A physical or virtual location as a `Location`.
pub fn location(loc: &oruk::Location, org: Option<&oruk::Organization>) -> Value {
    let mut o = Map::new();
    o.insert("resourceType".into(), json!("Location"));
    o.insert("id".into(), json!(loc.id));
    o.insert("meta".into(), json!({"profile": [SP_DIRECTORY_LOCATION]}));
    o.insert("status".into(), json!("active"));
    o.insert("mode".into(), json!("instance"));
    if let Some(n) = non_empty(&loc.name) {
        o.insert("name".into(), json!(n));
    }
    let description = match (loc.location_type, non_empty(&loc.description)) {
        (LocationType::Virtual, Some(d)) => Some(format!("Virtual (no place to go to). {d}")),
        (LocationType::Virtual, None) => Some("Virtual (no place to go to).".to_string()),
        (_, d) => d.map(str::to_string),
    };
    if let Some(d) = description {
        o.insert("description".into(), json!(d));
    }
    let address = loc
        .addresses
        .iter()
        .find(|a| a.address_type != Some(LocationType::Postal))
        .or_else(|| loc.addresses.first());
    if let Some(a) = address.filter(|_| loc.location_type != LocationType::Virtual) {
        o.insert("address".into(), address_json(a));
    }
    if let (Some(lat), Some(lon)) = (loc.latitude, loc.longitude) {
        if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon) {
            o.insert(
                "position".into(),
                json!({"longitude": lon, "latitude": lat}),
            );
        }
    }
    if let Some(org) = org {
        o.insert(
            "managingOrganization".into(),
            json!({"reference": format!("Organization/{}", org.id), "display": org.name.trim()}),
        );
    }
    Value::Object(o)
}

fn address_json(a: &oruk::Address) -> Value {
    let mut o = Map::new();
    o.insert("use".into(), json!("work"));
    let kind = if a.address_type == Some(LocationType::Postal) {
        "postal"
    } else {
        "physical"
    };
    o.insert("type".into(), json!(kind));
    if let Some(l) = non_empty(&a.address_1) {
        o.insert("line".into(), json!([l]));
    }
    for (key, v) in [
        ("city", &a.city),
        ("district", &a.state_province),
        ("state", &a.region),
        ("country", &a.country),
    ] {
        if let Some(v) = non_empty(v) {
            o.insert(key.into(), json!(v));
        }
    }
    if let Some(p) = non_empty(&a.postal_code) {
        let shown = p
            .parse::<Postcode>()
            .map_or(p.to_string(), |p| p.to_string());
        o.insert("postalCode".into(), json!(shown));
    }
    Value::Object(o)
}

/// The areas of a service's readable text service areas, each as a `Location` (physicalType
/// area) whose description lists them; (id, name) of each for `coverageArea`.
fn area_locations(service: &Service) -> Vec<Value> {
    let mut out = Vec::new();
    for sa in &service.service_areas {
        let text = sa.extent_type.as_deref().map(str::trim);
        if !text.is_some_and(|t| t.eq_ignore_ascii_case("text")) {
            continue;
        }
        let (places, _) = read_extent(sa.extent.as_deref().unwrap_or_default());
        if places.is_empty() {
            continue;
        }
        let listed: Vec<String> = places
            .iter()
            .map(|p| match p {
                Place::District(d) => d.to_string(),
                Place::Area(a) => a.to_string(),
            })
            .collect();
        let listed = listed.join(", ");
        let name = non_empty(&sa.name)
            .map(str::to_string)
            .unwrap_or_else(|| format!("Postcodes {listed}"));
        out.push(json!({
            "resourceType": "Location",
            "id": sa.id,
            "meta": {"profile": [SP_DIRECTORY_LOCATION]},
            "status": "active",
            "mode": "instance",
            "name": name,
            "description": format!("Postcode areas and districts covered: {listed}"),
            "physicalType": {"coding": [{"system": PHYSICAL_TYPE, "code": "area", "display": "Area"}]}
        }));
    }
    out
}

fn reference(kind: &str, id: &str, display: Option<&str>) -> Value {
    let mut r = json!({"reference": format!("{kind}/{id}")});
    if let Some(d) = display {
        r["display"] = json!(d);
    }
    r
}

/// `HH:MM[:SS]` with an optional zone (`Z`, `+01:00`) as FHIR `time` (`HH:MM:SS`).
fn fhir_time(raw: &str) -> Option<String> {
    let t = raw.trim();
    let end = t.find(['Z', 'z', '+', '-']).unwrap_or(t.len());
    let parts: Vec<&str> = t[..end].split(':').collect();
    let num = |s: &str, max: u32| -> Option<u32> {
        (s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
            .filter(|n| *n <= max)
    };
    let (h, m, s) = match parts.as_slice() {
        [h, m] => (num(h, 23)?, num(m, 59)?, 0),
        [h, m, s] => (num(h, 23)?, num(m, 59)?, num(s, 59)?),
        _ => return None,
    };
    Some(format!("{h:02}:{m:02}:{s:02}"))
}

/// `MO`..`SU` as FHIR `days-of-week`; `None` for anything else (ordinals like `2MO` included).
fn fhir_day(token: &str) -> Option<&'static str> {
    Some(match token.trim().to_ascii_uppercase().as_str() {
        "MO" => "mon",
        "TU" => "tue",
        "WE" => "wed",
        "TH" => "thu",
        "FR" => "fri",
        "SA" => "sat",
        "SU" => "sun",
        _ => return None,
    })
}

/// Weekly schedules as `availableTime`; what they cannot say (monthly, fortnightly, notes) as
/// `availabilityExceptions` text.
fn availability(service: &Service) -> (Vec<Value>, Option<String>) {
    let mut times = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    for s in &service.schedules {
        let weekly = s.freq != Some(Frequency::Monthly) && s.interval.is_none_or(|i| i <= 1.0);
        let byday = s.byday.as_deref().unwrap_or_default();
        let tokens: Vec<&str> = byday
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect();
        let days: Vec<&str> = tokens.iter().filter_map(|t| fhir_day(t)).collect();
        let opens = s.opens_at.as_deref().and_then(fhir_time);
        let closes = s.closes_at.as_deref().and_then(fhir_time);
        if weekly && days.len() == tokens.len() && (!days.is_empty() || opens.is_some()) {
            let mut t = Map::new();
            if !days.is_empty() {
                t.insert("daysOfWeek".into(), json!(days));
            }
            if let Some(o) = &opens {
                t.insert("availableStartTime".into(), json!(o));
            }
            if let Some(c) = &closes {
                t.insert("availableEndTime".into(), json!(c));
            }
            times.push(Value::Object(t));
            if let Some(d) = non_empty(&s.description) {
                notes.push(d.to_string());
            }
            continue;
        }
        if let Some(d) = non_empty(&s.description) {
            notes.push(d.to_string());
            continue;
        }
        let when = match (s.freq, s.interval) {
            (Some(Frequency::Monthly), _) => "Monthly".to_string(),
            (_, Some(i)) if i > 1.0 => format!("Every {i} weeks"),
            _ => "Weekly".to_string(),
        };
        let hours = match (s.opens_at.as_deref(), s.closes_at.as_deref()) {
            (Some(o), Some(c)) => format!(", {} to {}", o.trim(), c.trim()),
            _ => String::new(),
        };
        notes.push(format!("{when} on {byday}{hours}."));
    }
    let notes = (!notes.is_empty()).then(|| notes.join(" "));
    (times, notes)
}

/// Who the service is for: ages and the feed's eligibility text.
fn eligibility(service: &Service) -> Option<String> {
    let age = |a: f64| format!("{}", a.round() as i64);
    let ages = match (service.minimum_age, service.maximum_age) {
        (Some(lo), Some(hi)) => Some(format!("Ages {} to {}.", age(lo), age(hi))),
        (Some(lo), None) => Some(format!("Aged {} and over.", age(lo))),
        (None, Some(hi)) => Some(format!("Aged {} and under.", age(hi))),
        (None, None) => None,
    };
    let text: Vec<String> = ages
        .into_iter()
        .chain(non_empty(&service.eligibility_description).map(str::to_string))
        .collect();
    (!text.is_empty()).then(|| text.join(" "))
}

/// Extra details that have no element of their own: fees and the feed's alert.
fn extra_details(service: &Service) -> Option<String> {
    let mut lines = Vec::new();
    if let Some(f) = non_empty(&service.fees) {
        lines.push(format!("Cost: {f}"));
    }
    if let Some(a) = non_empty(&service.alert) {
        lines.push(format!("Please note: {a}"));
    }
    (!lines.is_empty()).then(|| lines.join("\n\n"))
}

/// Whether the service's organisation is one of the connected ones (by any identifier).
pub fn takes_referrals_through_gateway(service: &Service, connected: &[Identifier]) -> bool {
    service.organization.as_ref().is_some_and(|org| {
        organization_identifiers(org)
            .iter()
            .any(|i| connected.contains(i))
    })
}

/// The FHIR resources of one service. `connected` are the identifiers of the organisations the
/// gateway delivers to (every identifier of every configured `[[vcs]]`).
pub fn to_fhir(
    service: &Service,
    taxonomy: &TaxonomyMap,
    connected: &[Identifier],
) -> DirectoryResources {
    let org = service.organization.as_ref();
    let through_gateway = takes_referrals_through_gateway(service, connected);
    let phones = service.phone_numbers();

    let mut locations = Vec::new();
    let mut at = Vec::new();
    let mut physical_refs = Vec::new();
    for loc in service.locations() {
        if loc.location_type == LocationType::Postal {
            continue;
        }
        let r = reference("Location", &loc.id, non_empty(&loc.name));
        if loc.location_type == LocationType::Physical {
            physical_refs.push(r.clone());
        }
        at.push(r);
        locations.push(location(loc, org));
    }
    let (coverage, _) = Coverage::of(service);
    let areas = area_locations(service);
    let coverage_area: Vec<Value> = if !areas.is_empty() {
        areas
            .iter()
            .map(|a| {
                reference(
                    "Location",
                    a["id"].as_str().unwrap_or_default(),
                    a["name"].as_str(),
                )
            })
            .collect()
    } else if matches!(coverage, Coverage::Places { .. }) && !coverage.is_nowhere() {
        physical_refs
    } else {
        Vec::new()
    };
    locations.extend(areas);

    let categories: Vec<Value> = taxonomy
        .categories(service)
        .into_iter()
        .map(|c| {
            json!({"coding": [{"system": systems::NEED_CATEGORY, "code": c.code(), "display": category_display(c)}]})
        })
        .collect();
    let mut types: Vec<Value> = Vec::new();
    for t in service
        .taxonomy_terms()
        .filter(|t| taxonomy::is_service_type(t))
    {
        let text = t.name.trim();
        let v = match (t.taxonomy.as_deref().map(str::trim), non_empty(&t.term)) {
            (Some(sys), Some(code)) if sys.contains("://") || sys.starts_with("urn:") => {
                json!({"coding": [{"system": sys, "code": code, "display": text}], "text": text})
            }
            _ => json!({"text": text}),
        };
        if !types.contains(&v) {
            types.push(v);
        }
    }

    let mut telecom: Vec<Value> = phones
        .iter()
        .map(|p| json!({"system": "phone", "value": p, "use": "work"}))
        .collect();
    if let Some(e) = non_empty(&service.email) {
        telecom.push(json!({"system": "email", "value": e, "use": "work"}));
    }
    if let Some(u) = non_empty(&service.url) {
        telecom.push(json!({"system": "url", "value": u, "use": "work"}));
    }

    let mut methods = Vec::new();
    if through_gateway {
        methods.push(json!({"coding": [{"system": REFERRAL_METHOD, "code": "elec", "display": "Secure Messaging"}],
            "text": "Electronically through the sp-gateway"}));
    }
    if !phones.is_empty() {
        methods.push(
            json!({"coding": [{"system": REFERRAL_METHOD, "code": "phone", "display": "Phone"}]}),
        );
    }
    if non_empty(&service.email).is_some() {
        methods.push(json!({"text": "Email"}));
    }

    let (available, exceptions) = availability(service);
    let mut hs = Map::new();
    hs.insert("resourceType".into(), json!("HealthcareService"));
    hs.insert("id".into(), json!(service.id));
    hs.insert("meta".into(), json!({"profile": [SP_HEALTHCARE_SERVICE]}));
    hs.insert(
        "extension".into(),
        json!([{"url": REFERRALS_THROUGH_GATEWAY, "valueBoolean": through_gateway}]),
    );
    hs.insert("identifier".into(), json!([uuid_identifier(&service.id)]));
    hs.insert("active".into(), json!(service.is_active()));
    if let Some(org) = org {
        hs.insert(
            "providedBy".into(),
            reference("Organization", &org.id, Some(org.name.trim())),
        );
    }
    put(&mut hs, "category", Value::Array(categories));
    put(&mut hs, "type", Value::Array(types));
    put(&mut hs, "location", Value::Array(at));
    hs.insert("name".into(), json!(service.name.trim()));
    if let Some(d) = non_empty(&service.description) {
        hs.insert("comment".into(), json!(d));
    }
    if let Some(x) = extra_details(service) {
        hs.insert("extraDetails".into(), json!(x));
    }
    put(&mut hs, "telecom", Value::Array(telecom));
    put(&mut hs, "coverageArea", Value::Array(coverage_area));
    if let Some(e) = eligibility(service) {
        hs.insert("eligibility".into(), json!([{"comment": e}]));
    }
    put(&mut hs, "referralMethod", Value::Array(methods));
    if let Some(a) = taxonomy::appointment_required(service) {
        hs.insert("appointmentRequired".into(), json!(a));
    }
    put(&mut hs, "availableTime", Value::Array(available));
    if let Some(x) = exceptions {
        hs.insert("availabilityExceptions".into(), json!(x));
    }
    DirectoryResources {
        healthcare_service: Value::Object(hs),
        organization: org.map(organization),
        locations,
    }
}

#[cfg(test)]
#[path = "fhir_tests.rs"]
mod tests;
