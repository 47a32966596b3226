//! The CapabilityStatement is walked, not read: every interaction, search parameter, reverse
//! include and operation it declares is called over HTTP, so a declaration without a working
//! route (or a route that ignores a declared parameter) fails the build. A new kind of
//! declaration needs a recipe here: an unknown one fails the test.

mod common;

use common::*;
use serde_json::{json, Value};

/// The demo's link workers: the seeded referral goes to them, so that they can refer it onward.
const VCS_TOKEN: &str = "demo-vcs-link-workers";
const OUR_SEARCH_PARAMETERS: &str = "https://fhir.sp-gateway.uk/SearchParameter/";
const NEED_CODE_SYSTEM_URL: &str = "https://fhir.sp-gateway.uk/CodeSystem/need-category";

/// Ids of one resource of each type, made through the API.
struct Seeds {
    referral: String,
    task: String,
    patient: String,
    ids: std::collections::HashMap<String, String>,
}

/// The Knit and Natter group of the directory fixtures, its organisation and its place.
const KNIT_SERVICE: &str = "f80b822c-7172-5b8d-9f63-72b7f1989394";
const KNIT_ORGANIZATION: &str = "36d3c8c7-9d44-5398-98ce-444af5f09305";
const KNIT_PLACE: &str = "69f2e302-2947-5477-9b1d-93f0ab588e26";

fn seed(gateway: &Gateway) -> Seeds {
    gateway.import_directory(&[concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/directory")]);
    let mut to_link_workers = contained_referral("CAP-1");
    to_link_workers["performer"] = json!([{"type": "Organization",
        "identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "X7L4W"}}]);
    let (status, created) = send(gateway.post_json("/fhir/ServiceRequest", &to_link_workers));
    assert_eq!(status, 201, "{created}");
    let referral = created["id"].as_str().expect("id").to_string();
    let (_, tasks) = send(gateway.get(&format!("/fhir/Task?focus=ServiceRequest/{referral}")));
    let task = &tasks["entry"][0]["resource"];
    let patient = task["for"]["reference"]
        .as_str()
        .and_then(|r| r.strip_prefix("Patient/"))
        .unwrap_or_else(|| panic!("the Task names the patient: {tasks}"))
        .to_string();
    let task = task["id"].as_str().expect("a Task").to_string();
    let post_vcs = |path: &str, body: Value| {
        send(
            gateway
                .http
                .post(gateway.url(path))
                .bearer_auth(VCS_TOKEN)
                .json(&body),
        )
    };
    let (status, _) = post_vcs(
        &format!("/vcs/v1/referrals/{referral}/status"),
        json!({"status": "accepted", "occurred_at": "2026-05-10T14:00:00+01:00"}),
    );
    assert_eq!(status, 200);
    let (status, outcome) = post_vcs(
        &format!("/vcs/v1/referrals/{referral}/outcomes"),
        json!({"instrument": "swemwbs", "timepoint": "baseline", "answers": [3, 3, 2, 4, 3, 2, 3],
               "occurred_at": "2026-05-11T10:00:00+01:00"}),
    );
    assert_eq!(status, 201, "{outcome}");
    // Referred onward: `based-on`, `part-of` and their `_revinclude`s find the child.
    let (status, onward) = post_vcs(
        &format!("/vcs/v1/referrals/{referral}/onward"),
        json!({"service_id": KNIT_SERVICE}),
    );
    assert_eq!(status, 201, "{onward}");
    let observation = outcome["observation_ids"][0]
        .as_str()
        .expect("an Observation")
        .to_string();
    let (status, subscription) = send(gateway.post_json("/fhir/Subscription", &subscription()));
    assert_eq!(status, 201, "{subscription}");
    let mut ids = std::collections::HashMap::new();
    for (kind, id) in [
        ("ServiceRequest", referral.clone()),
        ("Patient", patient.clone()),
        ("Task", task.clone()),
        ("Observation", observation),
        (
            "Subscription",
            subscription["id"].as_str().unwrap_or_default().to_string(),
        ),
        ("StructureDefinition", "SP-ServiceRequest".to_string()),
        ("ValueSet", "sp-referral-need".to_string()),
        ("CodeSystem", "need-category".to_string()),
        ("ConceptMap", "need-to-category".to_string()),
        ("SearchParameter", "HealthcareService-need".to_string()),
        ("HealthcareService", KNIT_SERVICE.to_string()),
        ("Organization", KNIT_ORGANIZATION.to_string()),
        ("Location", KNIT_PLACE.to_string()),
        ("Measure", "referrals-received".to_string()),
    ] {
        ids.insert(kind.to_string(), id);
    }
    Seeds {
        referral,
        task,
        patient,
        ids,
    }
}

fn subscription() -> Value {
    json!({
        "resourceType": "Subscription", "status": "requested", "reason": "Follow our referrals",
        "criteria": "Task?status=completed",
        "channel": {"type": "rest-hook", "endpoint": "https://gp.example.org/hooks", "payload": "application/fhir+json"}
    })
}

/// A value for a declared search parameter that should find the seeded resources.
fn search_value(seeds: &Seeds, kind: &str, name: &str) -> String {
    match (kind, name) {
        ("HealthcareService", "need") => return "http://snomed.info/sct|422650009".into(),
        ("HealthcareService", "postcode") => return "HR2 0LT".into(),
        ("HealthcareService", "service-category") => {
            return format!("{NEED_CODE_SYSTEM_URL}|social-connection")
        }
        ("HealthcareService", "name" | "_text") => return "knit".into(),
        ("HealthcareService", "organization") => {
            return format!("Organization/{KNIT_ORGANIZATION}")
        }
        ("HealthcareService", "active") => return "true".into(),
        // Around the knitting group's hall.
        ("Location", "near") => return "51.95|-2.89|5|km".into(),
        _ => {}
    }
    match name {
        "identifier" => "CAP-1".into(),
        "patient" | "subject" => format!("Patient/{}", seeds.patient),
        "status" => "active".into(),
        "focus" | "based-on" | "entity" => format!("ServiceRequest/{}", seeds.referral),
        "part-of" => format!("Task/{}", seeds.task),
        "code" => "https://fhir.sp-gateway.uk/CodeSystem/wellbeing-measure|swemwbs-total".into(),
        "date" => "ge2020-01-01".into(),
        "_count" => "5".into(),
        "_offset" => "0".into(),
        "_format" => "json".into(),
        "url" => match kind {
            "StructureDefinition" => sp_validator::SP_SERVICE_REQUEST.into(),
            "ValueSet" => "https://fhir.sp-gateway.uk/ValueSet/sp-referral-need".into(),
            "CodeSystem" => NEED_CODE_SYSTEM_URL.into(),
            "ConceptMap" => "https://fhir.sp-gateway.uk/ConceptMap/need-to-category".into(),
            "SearchParameter" => format!("{OUR_SEARCH_PARAMETERS}HealthcareService-need"),
            "Measure" => "https://fhir.sp-gateway.uk/Measure/referrals-received".into(),
            _ => "https://fhir.sp-gateway.uk/none".into(),
        },
        "name" => match kind {
            "CodeSystem" | "ConceptMap" => "need".into(),
            "SearchParameter" => "HealthcareService".into(),
            _ => "Sp".into(),
        },
        "version" => "1.0.0".into(),
        "measure" => "https://fhir.sp-gateway.uk/Measure/referrals-received".into(),
        "period" => "ge2020-01-01".into(),
        other => panic!("the CapabilityStatement declares {kind}?{other}: give it a value here"),
    }
}

/// A request as the declared caller: operators search AuditEvent, commissioners
/// MeasureReport, GP systems the rest.
fn get(gateway: &Gateway, kind: &str, path: &str) -> (u16, Value) {
    let token = match kind {
        "AuditEvent" => ADMIN_TOKEN,
        "MeasureReport" => "demo-commissioner-token",
        _ => GP_TOKEN,
    };
    send(gateway.http.get(gateway.url(path)).bearer_auth(token))
}

fn assert_nothing_ignored(bundle: &Value, what: &str) {
    let ignored = bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["search"]["mode"] == "outcome")
        .count();
    assert_eq!(ignored, 0, "{what} reported ignored parameters: {bundle}");
}

#[test]
fn every_declared_interaction_parameter_and_operation_works() {
    let gateway = Gateway::start();
    let seeds = seed(&gateway);
    let (status, statement) = send(gateway.http.get(gateway.url("/fhir/metadata")));
    assert_eq!(status, 200);
    let rest = &statement["rest"][0];
    let mut calls = 0;
    for resource in rest["resource"].as_array().expect("resources") {
        let kind = resource["type"].as_str().expect("type");
        let id = seeds.ids.get(kind).cloned();
        for interaction in resource["interaction"].as_array().into_iter().flatten() {
            let code = interaction["code"].as_str().expect("code");
            calls += 1;
            match code {
                "read" => {
                    let id = id.clone().unwrap_or_else(|| panic!("no {kind} to read"));
                    let (status, body) = get(&gateway, kind, &format!("/fhir/{kind}/{id}"));
                    assert_eq!(status, 200, "read {kind}: {body}");
                    assert_eq!(body["resourceType"], kind);
                }
                "vread" => {
                    let id = id.clone().unwrap_or_else(|| panic!("no {kind} to vread"));
                    let (status, body) =
                        get(&gateway, kind, &format!("/fhir/{kind}/{id}/_history/1"));
                    assert_eq!(status, 200, "vread {kind}: {body}");
                    assert_eq!(body["meta"]["versionId"], "1");
                }
                "history-instance" => {
                    let id = id.clone().unwrap_or_else(|| panic!("no {kind} history"));
                    let (status, body) =
                        get(&gateway, kind, &format!("/fhir/{kind}/{id}/_history"));
                    assert_eq!(status, 200, "history {kind}: {body}");
                    assert_eq!(body["type"], "history");
                }
                "search-type" => {
                    for p in resource["searchParam"].as_array().into_iter().flatten() {
                        let name = p["name"].as_str().expect("name");
                        // A parameter of ours is defined by a SearchParameter we serve.
                        let definition = p["definition"].as_str().unwrap_or_default();
                        if kind == "HealthcareService" && !name.starts_with("_") || name == "_text"
                        {
                            assert!(
                                !definition.is_empty(),
                                "HealthcareService?{name} has no definition"
                            );
                        }
                        if let Some(id) = definition.strip_prefix(OUR_SEARCH_PARAMETERS) {
                            let path = format!("/fhir/SearchParameter/{id}");
                            let (status, defined) = get(&gateway, "SearchParameter", &path);
                            assert_eq!(status, 200, "{definition}: {defined}");
                            assert_eq!(defined["url"], definition);
                            assert_eq!(defined["code"], name, "{definition}");
                            assert!(defined["base"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .any(|b| b == kind));
                        }
                        let value = search_value(&seeds, kind, name);
                        let mut query = form_urlencoded::Serializer::new(String::new());
                        // A Location search needs `near`: paging is tried with it.
                        if kind == "Location" && name != "near" {
                            query.append_pair("near", &search_value(&seeds, kind, "near"));
                        }
                        let query = query.append_pair(name, &value).finish();
                        let (status, body) = get(&gateway, kind, &format!("/fhir/{kind}?{query}"));
                        assert_eq!(status, 200, "{kind}?{query}: {body}");
                        assert_eq!(body["type"], "searchset");
                        assert_nothing_ignored(&body, &format!("{kind}?{query}"));
                        if !name.starts_with('_') && kind != "SearchParameter" {
                            assert!(
                                body["total"].as_u64().unwrap_or(0) > 0,
                                "{kind}?{query} found nothing: {body}"
                            );
                        }
                    }
                }
                "create" => {
                    let body = match kind {
                        "ServiceRequest" => contained_referral("CAP-CREATE"),
                        "Subscription" => subscription(),
                        other => panic!("no recipe to create {other}"),
                    };
                    let (status, created) =
                        send(gateway.post_json(&format!("/fhir/{kind}"), &body));
                    assert_eq!(status, 201, "create {kind}: {created}");
                }
                "update" | "patch" => {
                    assert_eq!(kind, "ServiceRequest", "no recipe to {code} {kind}");
                    let target = gateway.refer(&format!("CAP-{code}"));
                    let (status, current) =
                        send(gateway.get(&format!("/fhir/ServiceRequest/{target}")));
                    assert_eq!(status, 200);
                    let url = gateway.url(&format!("/fhir/ServiceRequest/{target}"));
                    let request = if code == "update" {
                        let mut revoked = current.clone();
                        revoked["status"] = json!("revoked");
                        gateway
                            .http
                            .put(url)
                            .header("content-type", FHIR_JSON)
                            .body(revoked.to_string())
                    } else {
                        gateway
                            .http
                            .patch(url)
                            .header("content-type", "application/json-patch+json")
                            .body(
                                json!([{"op": "replace", "path": "/status", "value": "revoked"}])
                                    .to_string(),
                            )
                    };
                    let (status, changed) =
                        send(request.bearer_auth(GP_TOKEN).header("if-match", "W/\"1\""));
                    assert_eq!(status, 200, "{code} {kind}: {changed}");
                    assert_eq!(changed["status"], "revoked");
                }
                "delete" => {
                    let id = id.clone().unwrap_or_else(|| panic!("no {kind} to delete"));
                    let response = gateway
                        .http
                        .delete(gateway.url(&format!("/fhir/{kind}/{id}")))
                        .bearer_auth(GP_TOKEN)
                        .send()
                        .expect("delete");
                    assert!(
                        response.status().is_success(),
                        "delete {kind}: {}",
                        response.status()
                    );
                }
                other => panic!("no recipe for the interaction {other} on {kind}"),
            }
        }
        for include in resource["searchInclude"].as_array().into_iter().flatten() {
            let include = include.as_str().expect("an include");
            let (_, target) = include.split_once(':').expect("Type:parameter");
            let included_type = if target == "organization" {
                "Organization"
            } else {
                "Location"
            };
            let (status, body) = get(
                &gateway,
                kind,
                &format!("/fhir/{kind}?name=knit&_include={include}"),
            );
            assert_eq!(status, 200, "{body}");
            assert_nothing_ignored(&body, include);
            let included = body["entry"].as_array().into_iter().flatten().any(|e| {
                e["search"]["mode"] == "include" && e["resource"]["resourceType"] == included_type
            });
            assert!(included, "_include={include} included nothing: {body}");
            calls += 1;
        }
        for include in resource["searchRevInclude"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let include = include.as_str().expect("a revinclude");
            let included_type = include.split(':').next().unwrap_or_default();
            let (status, body) = get(
                &gateway,
                kind,
                &format!("/fhir/{kind}?identifier=CAP-1&_revinclude={include}"),
            );
            assert_eq!(status, 200, "{body}");
            let included = body["entry"].as_array().into_iter().flatten().any(|e| {
                e["search"]["mode"] == "include" && e["resource"]["resourceType"] == included_type
            });
            assert!(included, "_revinclude={include} included nothing: {body}");
            calls += 1;
        }
        for operation in resource["operation"].as_array().into_iter().flatten() {
            calls += 1;
            match operation["name"].as_str() {
                Some("validate") => {
                    let body = match kind {
                        "ServiceRequest" => contained_referral("CAP-VALIDATE"),
                        "Bundle" => transaction_referral("CAP-VALIDATE"),
                        other => panic!("no recipe to $validate {other}"),
                    };
                    let (status, outcome) =
                        send(gateway.post_json(&format!("/fhir/{kind}/$validate"), &body));
                    assert_eq!(status, 200, "{kind}/$validate: {outcome}");
                    assert_eq!(outcome["resourceType"], "OperationOutcome");
                }
                Some("expand") => {
                    let id = id.clone().unwrap_or_else(|| panic!("no {kind} to expand"));
                    let (status, expanded) =
                        get(&gateway, kind, &format!("/fhir/{kind}/{id}/$expand"));
                    assert_eq!(status, 200, "{expanded}");
                    assert!(expanded["expansion"]["total"].as_u64().unwrap_or(0) > 0);
                }
                other => panic!("no recipe for the operation {other:?} on {kind}"),
            }
        }
    }
    for interaction in rest["interaction"].as_array().into_iter().flatten() {
        calls += 1;
        match interaction["code"].as_str() {
            Some("transaction") => {
                let (status, body) =
                    send(gateway.post_json("/fhir", &transaction_referral("CAP-TX")));
                assert_eq!(status, 200, "{body}");
                assert_eq!(body["type"], "transaction-response");
            }
            other => panic!("no recipe for the system interaction {other:?}"),
        }
    }
    for operation in rest["operation"].as_array().into_iter().flatten() {
        calls += 1;
        match operation["name"].as_str() {
            Some("process-message") => {
                let message: Value = serde_json::from_str(
                    &std::fs::read_to_string(concat!(
                        env!("CARGO_MANIFEST_DIR"),
                        "/fixtures/bundles/message-carer-support-carers-count.json"
                    ))
                    .expect("fixture"),
                )
                .expect("JSON");
                let (status, body) = send(gateway.post_json("/fhir/$process-message", &message));
                assert_eq!(status, 200, "{body}");
                assert_eq!(body["type"], "message");
            }
            other => panic!("no recipe for the system operation {other:?}"),
        }
    }
    // The declared token endpoint is the one SMART discovery names, and it answers (an empty
    // request is an OAuth error, not a 404).
    let (status, smart) = send(
        gateway
            .http
            .get(gateway.url("/fhir/.well-known/smart-configuration")),
    );
    assert_eq!(status, 200);
    let token_url = smart["token_endpoint"].as_str().expect("token endpoint");
    assert!(
        rest["security"]["description"]
            .as_str()
            .is_some_and(|d| d.contains(token_url)),
        "{}",
        rest["security"]
    );
    let response = gateway.http.post(token_url).send().expect("token endpoint");
    assert_eq!(response.status().as_u16(), 400);
    assert!(calls > 30, "only {calls} declarations were walked");
}

#[test]
fn every_declared_profile_is_served_with_a_snapshot() {
    let gateway = Gateway::start();
    let (_, statement) = send(gateway.http.get(gateway.url("/fhir/metadata")));
    let mut seen = 0;
    for resource in statement["rest"][0]["resource"]
        .as_array()
        .expect("resources")
    {
        for profile in resource["supportedProfile"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let url = profile.as_str().expect("url");
            let (status, found) = send(
                gateway
                    .http
                    .get(gateway.url(&format!("/fhir/StructureDefinition?url={url}"))),
            );
            assert_eq!(status, 200);
            assert_eq!(found["total"], 1, "{url}: {found}");
            let sd = &found["entry"][0]["resource"];
            assert_eq!(sd["type"], resource["type"]);
            assert!(sd["snapshot"]["element"]
                .as_array()
                .is_some_and(|e| !e.is_empty()));
            seen += 1;
        }
    }
    assert!(seen >= 4);
}

#[test]
fn need_value_set_expands_with_a_filter_in_json_and_xml_and_unknowns_are_404() {
    let gateway = Gateway::start();
    let (status, vs) = send(gateway.http.get(gateway.url(
        "/fhir/ValueSet/$expand?url=https://fhir.sp-gateway.uk/ValueSet/sp-referral-need&filter=social%20isol",
    )));
    assert_eq!(status, 200, "{vs}");
    let contains = vs["expansion"]["contains"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(contains.iter().any(|c| c["code"] == "422650009"), "{vs}");
    assert!(contains.len() < 10);
    let xml = gateway
        .http
        .get(gateway.url("/fhir/ValueSet/sp-referral-need/$expand?count=3"))
        .header("accept", FHIR_XML)
        .send()
        .expect("xml");
    assert_eq!(xml.status().as_u16(), 200);
    let text = xml.text().expect("body");
    assert!(
        text.contains("<expansion>") && text.contains("<contains>"),
        "{text}"
    );
    let (status, outcome) = send(gateway.http.get(gateway.url("/fhir/ValueSet/nope/$expand")));
    assert_eq!(status, 404);
    assert_outcome(&outcome);
    let (status, outcome) = send(
        gateway
            .http
            .get(gateway.url("/fhir/StructureDefinition/nope")),
    );
    assert_eq!(status, 404);
    assert_outcome(&outcome);
    let (status, outcome) = send(
        gateway
            .http
            .get(gateway.url("/fhir/ValueSet/sp-referral-need/$expand?count=many")),
    );
    assert_eq!(status, 400);
    assert_outcome(&outcome);
}
