//! The service directory over HTTP against the real server: the fixture feeds imported with
//! `sp-gateway directory import`, then searched by need and postcode as a GP system and a VCS
//! organisation, read, and included.

mod common;

use std::time::Duration;

use common::receiver::Receiver;
use common::*;
use serde_json::Value;

const FEEDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/directory");
const KNIT: &str = "f80b822c-7172-5b8d-9f63-72b7f1989394";
const VCS_TOKEN: &str = "demo-vcs-carers-count";
const DISTANCE: &str = "http://hl7.org/fhir/StructureDefinition/location-distance";

fn names(bundle: &Value) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["search"]["mode"] == "match")
        .map(|e| {
            e["resource"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

fn search(gateway: &Gateway, query: &str) -> (u16, Value) {
    send(gateway.get(&format!("/fhir/HealthcareService?{query}")))
}

#[test]
fn a_need_and_a_postcode_find_the_services_covering_it_best_first() {
    let gateway = Gateway::start();
    let out = gateway.import_directory(&[FEEDS]);
    assert!(
        out.contains("imported 6 services (6 organisations, 7 locations), 2 skipped"),
        "{out}"
    );
    // Loneliness (SNOMED CT) is in the social-connection category; HR2 0LT is in district HR2.
    let (status, bundle) = search(
        &gateway,
        "need=http://snomed.info/sct|422650009&postcode=HR2%200LT",
    );
    assert_eq!(status, 200, "{bundle}");
    // The knitting group names HR2 (district); the lunch club's hall is in HR2 too, farther from
    // the district's centroid (12 km against 10); the telephone befriending service covers
    // everywhere, with no distance; the Men's Shed is temporarily closed.
    let found = names(&bundle);
    assert_eq!(
        found,
        [
            "Knit and Natter, Ewyas Harold",
            "Golden Valley Lunch Club",
            "Telephone Friends"
        ],
        "{bundle}"
    );
    assert_eq!(bundle["total"], 3);
    let km: Vec<Option<f64>> = bundle["entry"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            let ext = &e["search"]["extension"][0];
            assert!(
                ext.is_null()
                    || (ext["url"] == DISTANCE
                        && ext["valueDistance"]["code"] == "km"
                        && ext["valueDistance"]["system"] == "http://unitsofmeasure.org"),
                "{e}"
            );
            ext["valueDistance"]["value"].as_f64()
        })
        .collect();
    assert!(
        matches!(km[0], Some(d) if (9.0..11.0).contains(&d)),
        "{km:?}"
    );
    assert!(
        matches!(km[1], Some(d) if (11.0..13.0).contains(&d)),
        "{km:?}"
    );
    assert_eq!(km[2], None, "{bundle}");

    // Elsewhere in the UK only the service that covers everywhere is left.
    let (_, far) = search(&gateway, "need=422650009&postcode=CF10%201EP");
    assert_eq!(names(&far), ["Telephone Friends"], "{far}");
    // Money and debt in Cardiff: the Welsh advice service (its area lists CF10).
    let (_, debt) = search(&gateway, "service-category=money-and-debt&postcode=CF10");
    assert_eq!(
        names(&debt),
        ["Cyngor ar Ddyledion a Budd-daliadau / Debt and Benefits Advice"],
        "{debt}"
    );
    // Closed services are found only when asked for.
    let (_, closed) = search(&gateway, "name=shed&active=false");
    assert_eq!(names(&closed), ["Golden Valley Men's Shed"], "{closed}");
    let (_, open) = search(&gateway, "_text=shed");
    assert_eq!(open["total"], 0, "{open}");
}

#[test]
fn reads_includes_paging_and_bad_input() {
    let gateway = Gateway::start();
    gateway.import_directory(&[FEEDS]);
    let (status, knit) = send(gateway.get(&format!("/fhir/HealthcareService/{KNIT}")));
    assert_eq!(status, 200, "{knit}");
    assert_eq!(knit["resourceType"], "HealthcareService");
    assert_eq!(knit["active"], true);
    let org = knit["providedBy"]["reference"]
        .as_str()
        .expect("providedBy");
    let (status, organisation) = send(gateway.get(&format!("/fhir/{org}")));
    assert_eq!(status, 200, "{organisation}");
    assert!(
        organisation["identifier"]
            .as_array()
            .expect("identifiers")
            .iter()
            .any(|i| i["system"] == "https://www.gov.uk/charity-commission"
                && i["value"] == "1187654"),
        "{organisation}"
    );
    // Knit and Natter's organisation is a configured [[vcs]]: it takes referrals through us.
    assert_eq!(knit["extension"][0]["valueBoolean"], true, "{knit}");

    let (status, both) = search(
        &gateway,
        &format!(
            "organization={org}&_include=HealthcareService:organization&_include=HealthcareService:location"
        ),
    );
    assert_eq!(status, 200, "{both}");
    let kinds: Vec<(&str, &str)> = both["entry"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["search"]["mode"].as_str().unwrap_or_default(),
                e["resource"]["resourceType"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert!(kinds.contains(&("match", "HealthcareService")), "{both}");
    assert!(kinds.contains(&("include", "Organization")), "{both}");
    assert!(kinds.contains(&("include", "Location")), "{both}");

    let (_, page) = search(&gateway, "_count=2");
    assert_eq!(names(&page).len(), 2);
    assert_eq!(page["total"], 5, "five active services: {page}");
    assert!(page["link"]
        .as_array()
        .expect("links")
        .iter()
        .any(|l| l["relation"] == "next"));

    // A VCS organisation reads the directory too (onward referral).
    let (status, by_vcs) = send(
        gateway
            .http
            .get(gateway.url("/fhir/HealthcareService?name=knit"))
            .bearer_auth(VCS_TOKEN),
    );
    assert_eq!(status, 200, "{by_vcs}");
    assert_eq!(by_vcs["total"], 1);

    // Not a UK postcode, an unknown need, an unknown include: 400 naming the value.
    let (status, outcome) = search(&gateway, "postcode=90210");
    assert_eq!(status, 400, "{outcome}");
    assert!(outcome.to_string().contains("90210"), "{outcome}");
    let (status, outcome) = search(&gateway, "need=http://snomed.info/sct|999999");
    assert_eq!(status, 400, "{outcome}");
    let (status, _) = search(&gateway, "_include=HealthcareService:endpoint");
    assert_eq!(status, 400);
    let (status, _) = send(gateway.get("/fhir/HealthcareService/no-such-service"));
    assert_eq!(status, 404);
    let (status, _) = send(gateway.http.get(gateway.url("/fhir/HealthcareService")));
    assert_eq!(status, 401);
}

#[test]
fn locations_near_a_point_come_nearest_first_with_their_distance() {
    let gateway = Gateway::start();
    gateway.import_directory(&[FEEDS]);
    let near = |value: &str| send(gateway.get(&format!("/fhir/Location?near={value}")));
    // From the Carers' Café in Hereford, within 20 km: the café, then the lunch club's and the
    // knitting group's halls in the Golden Valley; the closed Men's Shed is not offered.
    let (status, bundle) = near("52.0575|-2.7165|20|km");
    assert_eq!(status, 200, "{bundle}");
    assert_eq!(bundle["total"], 3, "{bundle}");
    let found: Vec<(String, f64)> = bundle["entry"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            assert_eq!(e["resource"]["resourceType"], "Location", "{e}");
            let ext = &e["search"]["extension"][0];
            assert_eq!(ext["url"], DISTANCE, "{e}");
            (
                e["resource"]["name"].as_str().unwrap_or_default().into(),
                ext["valueDistance"]["value"].as_f64().expect("distance"),
            )
        })
        .collect();
    let distances: Vec<f64> = found.iter().map(|f| f.1).collect();
    assert!(distances.windows(2).all(|w| w[0] <= w[1]), "{found:?}");
    assert_eq!(distances[0], 0.0, "{found:?}");
    assert!((15.0..18.0).contains(&distances[2]), "{found:?}");
    // Miles, as UCUM writes them; 5 miles reach the café only.
    let (status, miles) = near("52.0575|-2.7165|5|[mi_i]");
    assert_eq!(status, 200, "{miles}");
    assert_eq!(miles["total"], 1, "{miles}");
    let value = &miles["entry"][0]["search"]["extension"][0]["valueDistance"];
    assert_eq!(value["code"], "[mi_i]", "{miles}");
    // With no distance, the server's 25 km; Cardiff is 80 km away.
    let (_, default) = near("52.0575|-2.7165");
    assert_eq!(default["total"], 3, "{default}");
    let (_, cardiff) = near("51.4786|-3.1753|1");
    assert_eq!(cardiff["total"], 1, "{cardiff}");

    // What is not near: 400 naming the parameter and the value.
    for bad in ["52.05", "north|-2.7", "95|-2.7|5", "52|-2|-5", "52|-2|5|mi"] {
        let (status, outcome) = near(bad);
        assert_eq!(status, 400, "{bad}: {outcome}");
        assert!(outcome.to_string().contains("near: "), "{bad}: {outcome}");
    }
    let (status, outcome) = send(gateway.get("/fhir/Location"));
    assert_eq!(status, 400, "{outcome}");
    assert!(outcome.to_string().contains("near="), "{outcome}");
    let (status, _) = send(gateway.http.get(gateway.url("/fhir/Location?near=52|-2")));
    assert_eq!(status, 401);
}

/// The standard test referral, addressed to `performer` instead of an organisation.
fn referral_to(gp_reference: &str, performer: Value) -> Value {
    let mut referral = contained_referral(gp_reference);
    referral["performer"] = serde_json::json!([performer]);
    referral
}

#[test]
fn a_referral_to_a_found_service_reaches_its_organisation_with_the_service_named() {
    let receiver = Receiver::start();
    let base = receiver.base.clone();
    let gateway = Gateway::start_with(move |c| deliver_to(c, &base, &["1s"]), &[]);
    gateway.import_directory(&[FEEDS]);

    // The GP finds the knitting group by need and postcode, and refers to what it found.
    let (_, found) = search(
        &gateway,
        "need=http://snomed.info/sct|422650009&postcode=HR2%200LT&name=knit",
    );
    let service = &found["entry"][0]["resource"];
    let id = service["id"].as_str().expect("a service");
    assert_eq!(id, KNIT);
    let (status, created) = send(gateway.post_json(
        "/fhir/ServiceRequest",
        &referral_to(
            "DIR-1",
            serde_json::json!({"reference": format!("HealthcareService/{id}"), "display": "Knit and Natter"}),
        ),
    ));
    assert_eq!(status, 201, "{created}");
    let referral_id = created["id"].as_str().expect("id").to_string();
    let hooks = receiver.wait_for(Duration::from_secs(30), "the referral webhook", |r| {
        !r.is_empty()
    });
    // Knit and Natter's charity (GB-CHC 1187654) is the configured valley-knit-natter.
    assert_eq!(hooks[0].path, "/hooks/knit");
    let event = hooks[0].json();
    assert_eq!(event["data"]["referral_id"], referral_id.as_str());
    assert_eq!(event["data"]["recipient"]["vcs_id"], "valley-knit-natter");
    assert_eq!(event["data"]["service"]["id"], KNIT);
    assert_eq!(
        event["data"]["service"]["name"],
        "Knit and Natter, Ewyas Harold"
    );
    let schema: Value =
        serde_json::from_str(include_str!("../profiles/referral-record.v1.schema.json"))
            .expect("schema");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    assert!(
        validator.is_valid(&event["data"]),
        "{:?}",
        validator
            .iter_errors(&event["data"])
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
    );

    // By the service's identifier (urn:uuid) too.
    let (status, created) = send(gateway.post_json(
        "/fhir/ServiceRequest",
        &referral_to(
            "DIR-2",
            serde_json::json!({"type": "HealthcareService",
                "identifier": {"system": "urn:ietf:rfc:3986", "value": format!("urn:uuid:{KNIT}")}}),
        ),
    ));
    assert_eq!(status, 201, "{created}");

    // The lunch club's organisation is in the directory but not connected: 422 with its contact
    // details so that the GP can refer by hand; nothing is delivered.
    let (status, outcome) = send(gateway.post_json(
        "/fhir/ServiceRequest",
        &referral_to(
            "DIR-3",
            serde_json::json!({"reference": "HealthcareService/9fd71e5e-079c-59ce-9346-a98199715973"}),
        ),
    ));
    assert_eq!(status, 422, "{outcome}");
    let text = outcome.to_string();
    for detail in [
        "lunches@example.org",
        "https://example.org/golden-valley-lunch-club",
        "01632 960123",
    ] {
        assert!(text.contains(detail), "{detail} missing: {outcome}");
    }
    assert!(text.contains("service-not-connected"), "{outcome}");
    // A service that is not in the directory.
    let (status, outcome) = send(gateway.post_json(
        "/fhir/ServiceRequest",
        &referral_to(
            "DIR-4",
            serde_json::json!({"reference": "HealthcareService/00000000-0000-4000-8000-000000000000"}),
        ),
    ));
    assert_eq!(status, 422, "{outcome}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        receiver.received().len(),
        2,
        "only the two connected referrals"
    );
}
