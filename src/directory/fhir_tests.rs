//! Tests of `fhir.rs`: the fixture feeds as FHIR, each resource valid against base R4 and our
//! profiles.

use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::{json, Value};
use sp_validator::{Options, Validator};

use super::*;
use crate::directory::import::parse_paths;

fn validator() -> &'static Validator {
    static V: OnceLock<Validator> = OnceLock::new();
    V.get_or_init(|| Validator::bundled().expect("bundled definitions"))
}

/// The demo configuration's `[[vcs]]` identifiers (`src/demo.toml`).
fn connected() -> Vec<Identifier> {
    vec![
        Identifier::new(systems::ODS_CODE, "X1A2B"),
        Identifier::new(CHARITY_COMMISSION, "1123456"),
        Identifier::new(CHARITY_COMMISSION, "1187654"),
        Identifier::new(systems::ODS_CODE, "X9C3D"),
    ]
}

fn fixture_services() -> Vec<Service> {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/directory"));
    let report = parse_paths(&[dir]).expect("fixture feeds");
    report.services.into_iter().map(|s| s.service).collect()
}

fn by_name(name: &str) -> DirectoryResources {
    let s = fixture_services()
        .into_iter()
        .find(|s| s.name.starts_with(name))
        .expect("fixture service");
    to_fhir(&s, &TaxonomyMap::bundled().expect("table"), &connected())
}

/// Errors of validating `r` with base R4 and our three profiles (by type and as root profile).
fn errors(r: &Value) -> Vec<String> {
    let by_type = [
        ("HealthcareService", SP_HEALTHCARE_SERVICE),
        ("Organization", SP_DIRECTORY_ORGANIZATION),
        ("Location", SP_DIRECTORY_LOCATION),
    ];
    let root: Vec<&str> = by_type
        .iter()
        .filter(|(t, _)| r["resourceType"] == *t)
        .map(|(_, url)| *url)
        .collect();
    let opts = Options {
        profiles_by_type: &by_type,
        root_profiles: &root,
    };
    validator()
        .validate(r, &opts)
        .into_iter()
        .filter(|i| i.is_error())
        .map(|i| format!("{}: {}", i.expression, i.diagnostics))
        .collect()
}

#[test]
fn our_profiles_are_loaded() {
    for url in [
        SP_HEALTHCARE_SERVICE,
        SP_DIRECTORY_ORGANIZATION,
        SP_DIRECTORY_LOCATION,
        REFERRALS_THROUGH_GATEWAY,
        crate::directory::responsiveness::RESPONSIVENESS_EXTENSION,
    ] {
        assert!(validator().knows_profile(url), "{url}");
    }
}

#[test]
fn every_resource_made_from_the_fixture_feeds_is_valid() {
    let table = TaxonomyMap::bundled().expect("table");
    let mut count = 0;
    for s in fixture_services() {
        let r = to_fhir(&s, &table, &connected());
        let all = std::iter::once(&r.healthcare_service)
            .chain(r.organization.iter())
            .chain(r.locations.iter());
        for res in all {
            let errs = errors(res);
            assert!(
                errs.is_empty(),
                "{} {}: {errs:#?}",
                res["resourceType"],
                res["id"]
            );
            count += 1;
        }
    }
    // 6 services, 6 organisations, 7 locations and 3 covered areas.
    assert_eq!(count, 22);
}

#[test]
fn the_published_example_is_valid_once_its_impossible_position_is_dropped() {
    let example: Service = serde_json::from_str(include_str!(
        "../../profiles/oruk/examples/service_full.json"
    ))
    .expect("example");
    let r = to_fhir(&example, &TaxonomyMap::default(), &[]);
    let loc = &r.locations[0];
    assert!(
        loc.get("position").is_none(),
        "latitude 100 is not on Earth: {loc}"
    );
    let org = r.organization.as_ref().expect("organization");
    assert_eq!(
        org["identifier"][1],
        json!({"system": COMPANIES_HOUSE, "value": "1234567"})
    );
    for res in std::iter::once(&r.healthcare_service)
        .chain(r.organization.iter())
        .chain(r.locations.iter())
    {
        let errs = errors(res);
        assert!(errs.is_empty(), "{}: {errs:#?}", res["resourceType"]);
    }
}

#[test]
fn knit_and_natter_maps_every_field() {
    let r = by_name("Knit and Natter");
    let hs = &r.healthcare_service;
    assert_eq!(
        hs["extension"][0]["valueBoolean"],
        json!(true),
        "charity 1187654 is connected"
    );
    assert_eq!(hs["active"], json!(true));
    assert_eq!(hs["identifier"][0]["system"], json!("urn:ietf:rfc:3986"));
    assert!(hs["identifier"][0]["value"]
        .as_str()
        .is_some_and(|v| v.starts_with("urn:uuid:")));
    assert_eq!(hs["providedBy"]["display"], json!("Valley Knit and Natter"));
    assert_eq!(
        hs["category"],
        json!([{"coding": [{"system": systems::NEED_CATEGORY, "code": "social-connection", "display": "Social connection"}]}])
    );
    assert_eq!(
        hs["availableTime"],
        json!([{"daysOfWeek": ["thu"], "availableStartTime": "10:00:00", "availableEndTime": "12:00:00"}])
    );
    assert_eq!(hs["appointmentRequired"], json!(false));
    assert_eq!(hs["eligibility"], json!([{"comment": "Aged 18 and over."}]));
    assert_eq!(
        hs["telecom"][0],
        json!({"system": "phone", "value": "07700 900456", "use": "work"})
    );
    assert_eq!(hs["telecom"][1]["system"], json!("email"));
    assert_eq!(hs["telecom"][2]["system"], json!("url"));
    let methods: Vec<&Value> = hs["referralMethod"]
        .as_array()
        .expect("methods")
        .iter()
        .collect();
    assert_eq!(methods[0]["coding"][0]["code"], json!("elec"));
    assert_eq!(methods[1]["coding"][0]["code"], json!("phone"));
    assert_eq!(methods[2], &json!({"text": "Email"}));
    // Coverage is the service area (HR2, HR3), a Location of its own.
    let area = r.locations.last().expect("area");
    assert_eq!(
        hs["coverageArea"][0]["reference"],
        json!(format!(
            "Location/{}",
            area["id"].as_str().unwrap_or_default()
        ))
    );
    assert_eq!(
        area["description"],
        json!("Postcode areas and districts covered: HR2, HR3")
    );
    assert_eq!(area["physicalType"]["coding"][0]["code"], json!("area"));
    // Where it meets.
    let hall = &r.locations[0];
    assert_eq!(
        hs["location"][0]["reference"],
        json!(format!(
            "Location/{}",
            hall["id"].as_str().unwrap_or_default()
        ))
    );
    assert_eq!(hall["address"]["postalCode"], json!("HR2 0EU"));
    assert_eq!(hall["address"]["district"], json!("Herefordshire"));
    assert_eq!(
        hall["position"],
        json!({"longitude": -2.8938, "latitude": 51.9538})
    );
    assert_eq!(
        hall["managingOrganization"]["display"],
        json!("Valley Knit and Natter")
    );
    let org = r.organization.expect("organization");
    assert_eq!(
        org["identifier"][1],
        json!({"system": CHARITY_COMMISSION, "value": "1187654"})
    );
}

#[test]
fn carers_cafe_has_its_charity_and_ods_code_and_a_monthly_session() {
    let r = by_name("Carers");
    let org = r.organization.as_ref().expect("organization");
    let ids: Vec<&Value> = org["identifier"]
        .as_array()
        .expect("ids")
        .iter()
        .skip(1)
        .collect();
    assert_eq!(
        ids,
        [
            &json!({"system": CHARITY_COMMISSION, "value": "1123456"}),
            &json!({"system": systems::ODS_CODE, "value": "X1A2B"})
        ]
    );
    let hs = &r.healthcare_service;
    assert_eq!(
        hs["category"][0]["coding"][0]["code"],
        json!("carers"),
        "through ESD 298"
    );
    assert_eq!(hs["type"], json!([{"text": "Carers support groups"}]));
    assert!(
        hs.get("availableTime").is_none(),
        "a monthly session is not a weekly time"
    );
    assert_eq!(
        hs["availabilityExceptions"],
        json!("First Wednesday of every month, 10:30 to 12:30.")
    );
    assert_eq!(
        hs["eligibility"][0]["comment"],
        json!("Unpaid carers of any age living in Herefordshire; the person you care for is welcome too.")
    );
    assert!(
        hs.get("appointmentRequired").is_none(),
        "the feed does not say"
    );
}

#[test]
fn a_virtual_only_service_has_no_coverage_area_and_an_unconnected_one_says_so() {
    let r = by_name("Telephone Friends");
    let hs = &r.healthcare_service;
    assert_eq!(hs["extension"][0]["valueBoolean"], json!(false));
    assert!(hs.get("coverageArea").is_none());
    assert_eq!(
        hs["availableTime"][0]["daysOfWeek"]
            .as_array()
            .map(Vec::len),
        Some(7)
    );
    let line = &r.locations[0];
    assert!(line.get("address").is_none());
    assert!(line["description"]
        .as_str()
        .is_some_and(|d| d.starts_with("Virtual")));
    let methods = hs["referralMethod"].as_array().expect("methods");
    assert!(methods
        .iter()
        .all(|m| m["coding"][0]["code"] != json!("elec")));
}

#[test]
fn the_welsh_advice_service_is_connected_by_its_ods_code() {
    let r = by_name("Cyngor");
    let hs = &r.healthcare_service;
    assert_eq!(hs["extension"][0]["valueBoolean"], json!(true));
    assert_eq!(
        hs["category"][0]["coding"][0]["code"],
        json!("money-and-debt")
    );
    assert_eq!(
        hs["type"],
        json!([{"text": "Debt counselling"}, {"text": "Welfare rights advice"}])
    );
    assert_eq!(hs["appointmentRequired"], json!(true));
    assert_eq!(
        hs["location"].as_array().map(Vec::len),
        Some(2),
        "the hub and the advice line"
    );
    assert_eq!(hs["coverageArea"].as_array().map(Vec::len), Some(1));
    let org = r.organization.expect("organization");
    assert_eq!(
        org["identifier"][1],
        json!({"system": systems::ODS_CODE, "value": "X9C3D"})
    );
    assert!(!takes_referrals_through_gateway(
        &fixture_services()
            .into_iter()
            .find(|s| s.name.starts_with("Cyngor"))
            .expect("service"),
        &[]
    ));
}

#[test]
fn a_service_covered_by_its_location_points_its_coverage_at_it() {
    let r = by_name("Golden Valley Lunch Club");
    let hs = &r.healthcare_service;
    assert_eq!(hs["coverageArea"], hs["location"]);
    assert_eq!(hs["extraDetails"], json!("Cost: £4.50 a meal"));
    assert_eq!(
        hs["availabilityExceptions"],
        json!("Lunch is served at half past twelve.")
    );
    assert_eq!(
        hs["availableTime"][0]["availableStartTime"],
        json!("12:00:00")
    );
    let org = r.organization.expect("organization");
    assert_eq!(
        org["identifier"][1],
        json!({"system": COMPANIES_HOUSE, "value": "09999901"})
    );
}

#[test]
fn the_profiles_refuse_what_they_must() {
    let r = by_name("Knit and Natter");
    let mut hs = r.healthcare_service.clone();
    if let Some(o) = hs.as_object_mut() {
        o.remove("extension");
    }
    let errs = errors(&hs);
    assert!(errs.iter().any(|e| e.contains("extension")), "{errs:#?}");
    let mut hs = r.healthcare_service.clone();
    hs["category"] = json!([{"coding": [{"system": systems::NEED_CATEGORY, "code": "lonely"}]}]);
    assert!(!errors(&hs).is_empty());
    let mut hall = r.locations[0].clone();
    hall["position"] = json!({"longitude": 101, "latitude": 100});
    let errs = errors(&hall);
    assert!(errs.iter().any(|e| e.contains("sp-loc-1")), "{errs:#?}");
}

#[test]
fn times_days_and_identifiers_are_read_leniently() {
    assert_eq!(fhir_time("9:30"), None);
    assert_eq!(fhir_time("09:30"), Some("09:30:00".into()));
    assert_eq!(fhir_time("18:00:00Z"), Some("18:00:00".into()));
    assert_eq!(fhir_time("18:00+01:00"), Some("18:00:00".into()));
    assert_eq!(fhir_time("25:00"), None);
    assert_eq!(fhir_day("mo"), Some("mon"));
    assert_eq!(fhir_day("2MO"), None);
    let org: oruk::Organization = serde_json::from_value(json!({
        "id": "o", "name": "n",
        "organization_identifiers": [
            {"identifier_scheme": "gb-coh", "identifier_type": "Company number", "identifier": "sc123456"},
            {"identifier_type": "NHS ODS code", "identifier": "x1a2b"},
            {"identifier_scheme": "GB-SC", "identifier_type": "Scottish charity", "identifier": "SC012345"},
            {"identifier_scheme": "GB-CHC", "identifier_type": "Charity number", "identifier": "  "}
        ]
    }))
    .expect("organization");
    assert_eq!(
        organization_identifiers(&org),
        [
            Identifier::new(COMPANIES_HOUSE, "SC123456"),
            Identifier::new(systems::ODS_CODE, "X1A2B")
        ]
    );
    let fhir = organization(&org);
    assert_eq!(
        fhir["identifier"][3],
        json!({"type": {"text": "GB-SC"}, "value": "SC012345"})
    );
    assert_eq!(fhir["identifier"].as_array().map(Vec::len), Some(4));
    assert!(errors(&fhir).is_empty(), "{:?}", errors(&fhir));
}

#[test]
fn category_displays_match_the_code_system() {
    let all = sp_validator::bundled_conformance_resources().expect("resources");
    let cs = all
        .iter()
        .find(|r| r["url"] == json!(systems::NEED_CATEGORY) && r["resourceType"] == "CodeSystem")
        .expect("need-category");
    for c in NeedCategory::ALL {
        let concept = cs["concept"]
            .as_array()
            .and_then(|cs| cs.iter().find(|x| x["code"] == json!(c.code())))
            .expect("concept");
        assert_eq!(concept["display"], json!(category_display(c)), "{c}");
    }
}

#[test]
fn responsiveness_figures_are_valid_and_malformed_ones_are_not() {
    use crate::directory::responsiveness::{annotate, compute, WINDOW_DAYS};
    use crate::store::ServiceReferral;
    let now = chrono::Utc::now();
    let referrals: Vec<ServiceReferral> = (0..6)
        .map(|i| ServiceReferral {
            service_id: "knit".into(),
            created_at: now - chrono::Duration::days(3),
            first_response_at: (i < 5).then(|| now - chrono::Duration::days(2)),
            accepted: i < 4,
        })
        .collect();
    let figures = compute(&referrals, now - chrono::Duration::days(WINDOW_DAYS), now);
    let mut service = by_name("Knit and Natter").healthcare_service;
    annotate(&mut service, figures.get("knit"));
    assert_eq!(errors(&service), Vec::<String>::new(), "{service}");
    let at = service["extension"]
        .as_array()
        .and_then(|l| {
            l.iter().position(|e| {
                e["url"] == crate::directory::responsiveness::RESPONSIVENESS_EXTENSION
            })
        })
        .expect("the extension");
    assert_eq!(
        service["extension"][at]["extension"][0]["valueUnsignedInt"],
        6
    );
    let mut bad = service.clone();
    bad["extension"][at]["extension"][2]["valueDecimal"] = json!("most");
    assert!(!errors(&bad).is_empty(), "a share that is not a decimal");
    let mut missing = service.clone();
    if let Some(parts) = missing["extension"][at]["extension"].as_array_mut() {
        parts.retain(|p| p["url"] != "referrals");
    }
    assert!(!errors(&missing).is_empty(), "figures without their count");
}
