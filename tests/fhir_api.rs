//! The FHIR front door over real HTTP: every endpoint, every error class, conditional create,
//! authentication, tenancy and durability across a restart.

mod common;

use common::*;
use serde_json::{json, Value};

fn location_path(response: &reqwest::blocking::Response) -> String {
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("Location header")
        .to_string()
}

#[test]
fn capability_statement_is_truthful_in_json_and_xml() {
    let gateway = Gateway::start();
    let (status, body) = send(gateway.http.get(gateway.url("/fhir/metadata")));
    assert_eq!(status, 200);
    assert_eq!(body["resourceType"], "CapabilityStatement");
    assert_eq!(body["fhirVersion"], "4.0.1");
    let resources: Vec<&str> = body["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    assert!(resources.contains(&"ServiceRequest") && resources.contains(&"Patient"));
    assert_eq!(body["rest"][0]["resource"][0]["conditionalCreate"], true);
    let errors: Vec<String> = sp_validator::Validator::bundled()
        .unwrap()
        .validate(&body, &sp_validator::Options::default())
        .into_iter()
        .filter(|i| i.is_error())
        .map(|i| format!("{}: {}", i.expression, i.diagnostics))
        .collect();
    assert!(
        errors.is_empty(),
        "our CapabilityStatement is valid R4: {errors:?}"
    );
    // The token endpoint is declared (R4's oauth-uris extension would also need an authorize
    // endpoint, which a Backend Services server has not).
    assert!(body["rest"][0]["security"]["description"]
        .as_str()
        .unwrap()
        .contains("/oauth2/token"));

    let xml = gateway
        .http
        .get(gateway.url("/fhir/metadata?_format=xml"))
        .send()
        .unwrap();
    assert!(xml.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with(FHIR_XML));
    let text = xml.text().unwrap();
    assert!(
        text.contains("<CapabilityStatement xmlns=\"http://hl7.org/fhir\""),
        "{text}"
    );
    let by_accept = gateway
        .http
        .get(gateway.url("/fhir/metadata"))
        .header("accept", FHIR_XML)
        .send()
        .unwrap();
    assert!(by_accept
        .text()
        .unwrap()
        .contains("<CapabilityStatement xmlns"));
}

#[test]
fn create_read_and_prefer() {
    let gateway = Gateway::start();
    let response = gateway
        .post_json("/fhir/ServiceRequest", &contained_referral("REF-1"))
        .send()
        .unwrap();
    assert_eq!(response.status(), 201);
    let location = location_path(&response);
    assert!(
        location.starts_with("/fhir/ServiceRequest/") && location.ends_with("/_history/1"),
        "{location}"
    );
    assert_eq!(response.headers()["etag"], "W/\"1\"");
    let created: Value = response.json().unwrap();
    assert_eq!(created["resourceType"], "ServiceRequest");
    assert_eq!(created["meta"]["versionId"], "1");
    let id = created["id"].as_str().unwrap().to_string();
    assert!(location.contains(&id));

    let (status, read) = send(gateway.get(&format!("/fhir/ServiceRequest/{id}")));
    assert_eq!(status, 200);
    assert_eq!(read, created);
    let (status, vread) = send(gateway.get(&location));
    assert_eq!((status, vread["id"].as_str()), (200, Some(id.as_str())));
    let (status, _) = send(gateway.get(&format!("/fhir/ServiceRequest/{id}/_history/7")));
    assert_eq!(status, 404);

    let minimal = gateway
        .post_json("/fhir/ServiceRequest", &contained_referral("REF-2"))
        .header("prefer", "return=minimal")
        .send()
        .unwrap();
    assert_eq!(minimal.status(), 201);
    assert!(minimal.headers().contains_key("location"));
    assert!(minimal.text().unwrap().is_empty());

    let (status, outcome) = send(
        gateway
            .post_json("/fhir/ServiceRequest", &contained_referral("REF-3"))
            .header("prefer", "return=OperationOutcome"),
    );
    assert_eq!(status, 201);
    assert_outcome(&outcome);
    assert_eq!(
        outcome["issue"].as_array().unwrap().last().unwrap()["severity"],
        "information"
    );
}

#[test]
fn contained_patient_is_readable_and_searchable() {
    let gateway = Gateway::start();
    let (_, created) =
        send(gateway.post_json("/fhir/ServiceRequest", &contained_referral("REF-P")));
    let id = created["id"].as_str().unwrap();
    let (_, found) =
        send(gateway.get(
            "/fhir/ServiceRequest?identifier=https://fhir.emis-demo.example/Id/referral|REF-P",
        ));
    assert_eq!(found["total"], 1);
    assert_eq!(found["entry"][0]["resource"]["id"], id);
    // The record names the patient's id; search by it.
    let db = rusqlite::Connection::open(gateway.db_path()).unwrap();
    let patient_id: String = db
        .query_row(
            "SELECT patient_id FROM referrals WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .unwrap();
    let (status, patient) = send(gateway.get(&format!("/fhir/Patient/{patient_id}")));
    assert_eq!(status, 200);
    assert_eq!(patient["name"][0]["family"], "Llywelyn");
    let (_, by_patient) = send(gateway.get(&format!(
        "/fhir/ServiceRequest?patient=Patient/{patient_id}"
    )));
    assert_eq!(by_patient["total"], 1);
}

#[test]
fn conditional_create_never_makes_two() {
    let gateway = Gateway::start();
    let referral = contained_referral("REF-IDEM");
    let condition = "identifier=https://fhir.emis-demo.example/Id/referral|REF-IDEM";
    let first = gateway
        .post_json("/fhir/ServiceRequest", &referral)
        .header("if-none-exist", condition)
        .send()
        .unwrap();
    assert_eq!(first.status(), 201);
    let first_location = location_path(&first);
    let again = gateway
        .post_json("/fhir/ServiceRequest", &referral)
        .header("if-none-exist", condition)
        .send()
        .unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(location_path(&again), first_location);

    // Without the condition the duplicate identifier is refused, not stored twice.
    let (status, outcome) = send(gateway.post_json("/fhir/ServiceRequest", &referral));
    assert_eq!(status, 409);
    assert_eq!(outcome["issue"][0]["code"], "duplicate");
    let (_, found) = send(gateway.get("/fhir/ServiceRequest?identifier=REF-IDEM"));
    assert_eq!(found["total"], 1);

    // A condition we do not support is a clear 400.
    let (status, outcome) = send(
        gateway
            .post_json("/fhir/ServiceRequest", &contained_referral("REF-IDEM-2"))
            .header("if-none-exist", "status=active"),
    );
    assert_eq!(status, 400);
    assert_outcome(&outcome);
}

#[test]
fn concurrent_conditional_creates_make_one_referral() {
    let gateway = Gateway::start();
    let referral = contained_referral("REF-RACE");
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    gateway
                        .post_json("/fhir/ServiceRequest", &referral)
                        .header(
                            "if-none-exist",
                            "identifier=https://fhir.emis-demo.example/Id/referral|REF-RACE",
                        )
                        .send()
                        .unwrap()
                        .status()
                        .as_u16()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 200),
        "{statuses:?}"
    );
    let (_, found) = send(gateway.get("/fhir/ServiceRequest?identifier=REF-RACE"));
    assert_eq!(found["total"], 1);
}

#[test]
fn transaction_assigns_ids_and_rewrites_references() {
    let gateway = Gateway::start();
    let (status, response) = send(gateway.post_json("/fhir", &transaction_referral("REF-TX")));
    assert_eq!(status, 200, "{response}");
    assert_eq!(response["type"], "transaction-response");
    let entries = response["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 6);
    assert!(entries
        .iter()
        .all(|e| e["response"]["status"] == "201 Created"));
    let sr_location = entries[5]["response"]["location"].as_str().unwrap();
    assert!(sr_location.starts_with("ServiceRequest/"), "{sr_location}");
    let (status, sr) = send(gateway.get(&format!(
        "/fhir/{}",
        sr_location.trim_end_matches("/_history/1")
    )));
    assert_eq!(status, 200);
    let subject = sr["subject"]["reference"].as_str().unwrap();
    assert!(
        subject.starts_with("Patient/") && !subject.contains("urn:uuid"),
        "{subject}"
    );
    let (status, patient) = send(gateway.get(&format!("/fhir/{subject}")));
    assert_eq!(status, 200);
    assert_eq!(patient["birthDate"], "1948-03-02");

    // ifNoneExist on the ServiceRequest entry: a retried transaction returns the same referral.
    let mut retry = transaction_referral("REF-TX");
    retry["entry"][5]["request"]["ifNoneExist"] =
        json!("identifier=https://fhir.emis-demo.example/Id/referral|REF-TX");
    let (status, again) = send(gateway.post_json("/fhir", &retry));
    assert_eq!(status, 200);
    assert_eq!(again["entry"][5]["response"]["status"], "200 OK");
    assert_eq!(again["entry"][5]["response"]["location"], sr_location);
}

#[test]
fn xml_transactions_keep_their_if_none_exist() {
    let gateway = Gateway::start();
    let mut bundle = transaction_referral("REF-TX-XML");
    bundle["entry"][5]["request"]["ifNoneExist"] =
        json!("identifier=https://fhir.emis-demo.example/Id/referral|REF-TX-XML");
    let xml = fhir_model::json_to_xml(&bundle).expect("xml");
    let post = || {
        gateway
            .post_bytes("/fhir", FHIR_XML, xml.clone())
            .header("accept", FHIR_JSON)
    };
    let (status, first) = send(post());
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["entry"][5]["response"]["status"], "201 Created");
    let (status, again) = send(post());
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["entry"][5]["response"]["status"], "200 OK", "{again}");
    assert_eq!(
        again["entry"][5]["response"]["location"],
        first["entry"][5]["response"]["location"]
    );
}

#[test]
fn process_message_refuses_a_repeated_message_id() {
    let gateway = Gateway::start();
    let message = message_referral("REF-MSG", "6c1d5f1e-0d4b-4d8e-9a51-2f1f3c0b6a11");
    let (status, response) = send(gateway.post_json("/fhir/$process-message", &message));
    assert_eq!(status, 200, "{response}");
    assert_eq!(response["type"], "message");
    assert_eq!(response["entry"][0]["resource"]["response"]["code"], "ok");
    let (status, outcome) = send(gateway.post_json("/fhir/$process-message", &message));
    assert_eq!(status, 409);
    assert_eq!(outcome["issue"][0]["code"], "duplicate");
}

fn message_referral(gp_reference: &str, message_id: &str) -> Value {
    let transaction = transaction_referral(gp_reference);
    let mut entries: Vec<Value> = transaction["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| json!({"fullUrl": e["fullUrl"], "resource": e["resource"]}))
        .collect();
    let header = json!({
        "fullUrl": "urn:uuid:22222222-2222-4222-8222-222222222222",
        "resource": {
            "resourceType": "MessageHeader",
            "eventCoding": {"system": "https://fhir.nhs.uk/CodeSystem/message-events-bars", "code": "servicerequest-request"},
            "source": {"endpoint": "https://gp.example/fhir"},
            "focus": [{"reference": "urn:uuid:11111111-1111-4111-8111-111111111111"}]
        }
    });
    entries.insert(0, header);
    json!({"resourceType": "Bundle", "id": message_id, "type": "message",
           "timestamp": "2026-05-01T09:30:00+01:00", "entry": entries})
}

#[test]
fn authentication_and_tenancy() {
    let gateway = Gateway::start();
    let (status, outcome) = send(gateway.http.get(gateway.url("/fhir/ServiceRequest")));
    assert_eq!(status, 401);
    assert_outcome(&outcome);
    let (status, _) = send(
        gateway
            .http
            .get(gateway.url("/fhir/ServiceRequest"))
            .bearer_auth("not-a-token"),
    );
    assert_eq!(status, 401);

    let (_, created) =
        send(gateway.post_json("/fhir/ServiceRequest", &contained_referral("REF-T")));
    let id = created["id"].as_str().unwrap();
    // Another GP client sees nothing of it: not by id, not by search.
    let other = |path: &str| {
        send(
            gateway
                .http
                .get(gateway.url(path))
                .bearer_auth(OTHER_GP_TOKEN),
        )
    };
    assert_eq!(other(&format!("/fhir/ServiceRequest/{id}")).0, 404);
    assert_eq!(other("/fhir/ServiceRequest?identifier=REF-T").1["total"], 0);
    // A VCS token is not a GP client token.
    let (status, _) = send(
        gateway
            .http
            .get(gateway.url("/fhir/ServiceRequest"))
            .bearer_auth("demo-vcs-carers-count"),
    );
    assert_eq!(status, 401);
}

#[test]
fn error_classes() {
    let gateway = Gateway::start_with(
        |c| c.replace("max_body_bytes = 1048576", "max_body_bytes = 20000"),
        &[],
    );
    let cases: Vec<(reqwest::blocking::RequestBuilder, u16)> = vec![
        (
            gateway.post_bytes("/fhir/ServiceRequest", "text/plain", "hello"),
            415,
        ),
        (
            gateway.post_bytes("/fhir/ServiceRequest", FHIR_JSON, "{\"resourceType\":"),
            400,
        ),
        (
            gateway.post_bytes("/fhir/ServiceRequest", FHIR_JSON, "[]"),
            400,
        ),
        (
            gateway.post_bytes("/fhir/ServiceRequest", FHIR_JSON, ""),
            400,
        ),
        (
            gateway.post_bytes("/fhir/ServiceRequest", FHIR_JSON, vec![b' '; 30000]),
            413,
        ),
        (
            gateway.post_json("/fhir/ServiceRequest", &json!({"resourceType": "Patient"})),
            400,
        ),
        (
            gateway.post_json("/fhir", &json!({"resourceType": "Bundle", "type": "batch"})),
            400,
        ),
        (gateway.get("/fhir/ServiceRequest/does-not-exist"), 404),
        (gateway.get("/fhir/ServiceRequest/not%20an%20id"), 404),
        (gateway.get("/fhir/Nothing"), 404),
        (
            gateway
                .http
                .delete(gateway.url("/fhir/ServiceRequest"))
                .bearer_auth(GP_TOKEN),
            405,
        ),
        (
            gateway
                .get("/fhir/ServiceRequest")
                .header("accept", "text/html"),
            406,
        ),
        (gateway.get("/fhir/ServiceRequest?_count=many"), 400),
    ];
    for (i, (request, expected)) in cases.into_iter().enumerate() {
        let (status, body) = send(request);
        assert_eq!(status, expected, "case {i}: {body}");
        assert_outcome(&body);
    }
}

#[test]
fn json_nested_beyond_the_limit_is_refused() {
    let gateway = Gateway::start();
    let mut deep = contained_referral("REF-DEEP");
    let mut nested = json!("x");
    for _ in 0..100 {
        nested = json!([nested]);
    }
    deep["note"][0]["text"] = nested;
    let (status, body) = send(gateway.post_json("/fhir/ServiceRequest", &deep));
    assert_eq!(status, 400);
    assert_outcome(&body);
    let hostile = "[".repeat(200_000);
    let (status, _) = send(gateway.post_bytes("/fhir/ServiceRequest", FHIR_JSON, hostile));
    assert_eq!(status, 400);
}

#[test]
fn invalid_referrals_name_the_element() {
    let gateway = Gateway::start();
    let mut missing_status = contained_referral("REF-E1");
    missing_status.as_object_mut().unwrap().remove("status");
    let (status, body) = send(gateway.post_json("/fhir/ServiceRequest", &missing_status));
    assert_eq!(status, 422, "{body}");
    assert!(
        issue_expressions(&body).contains(&(
            "error".into(),
            "required".into(),
            "ServiceRequest.status".into()
        )),
        "{body}"
    );

    let mut unknown = contained_referral("REF-E2");
    unknown["foo"] = json!("bar");
    let (status, body) = send(gateway.post_json("/fhir/ServiceRequest", &unknown));
    assert_eq!(status, 400, "{body}");
    assert!(
        issue_expressions(&body)
            .iter()
            .any(|(_, code, expr)| code == "structure" && expr == "ServiceRequest.foo"),
        "{body}"
    );

    let mut draft = contained_referral("REF-E3");
    draft["status"] = json!("draft");
    let (status, body) = send(gateway.post_json("/fhir/ServiceRequest", &draft));
    assert_eq!(status, 422, "{body}");
    assert!(
        issue_expressions(&body)
            .iter()
            .any(|(_, _, expr)| expr == "ServiceRequest.status"),
        "{body}"
    );

    let mut unroutable = contained_referral("REF-E4");
    unroutable["performer"][0]["identifier"]["value"] = json!("Z9Z9Z");
    let (status, body) = send(gateway.post_json("/fhir/ServiceRequest", &unroutable));
    assert_eq!(status, 422, "{body}");
    let diagnostics = body["issue"].to_string();
    assert!(
        diagnostics.contains("Z9Z9Z"),
        "the outcome names the identifier not found: {body}"
    );
    assert!(
        issue_expressions(&body)
            .iter()
            .any(|(_, _, expr)| expr == "ServiceRequest.performer[0]"),
        "{body}"
    );

    let mut no_performer = contained_referral("REF-E5");
    no_performer.as_object_mut().unwrap().remove("performer");
    let (status, body) = send(gateway.post_json("/fhir/ServiceRequest", &no_performer));
    assert_eq!(status, 422, "{body}");
    assert!(
        issue_expressions(&body)
            .iter()
            .any(|(_, _, expr)| expr.starts_with("ServiceRequest.performer")),
        "{body}"
    );
}

#[test]
fn validate_operations_store_nothing() {
    let gateway = Gateway::start();
    let (status, ok) = send(gateway.post_json(
        "/fhir/ServiceRequest/$validate",
        &contained_referral("REF-V"),
    ));
    assert_eq!(status, 200);
    assert!(
        ok["issue"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["severity"] != "error"),
        "{ok}"
    );
    let mut bad = contained_referral("REF-V2");
    bad.as_object_mut().unwrap().remove("intent");
    let (status, report) = send(gateway.post_json("/fhir/ServiceRequest/$validate", &bad));
    assert_eq!(status, 200);
    assert!(
        issue_expressions(&report)
            .iter()
            .any(|(s, _, e)| s == "error" && e == "ServiceRequest.intent"),
        "{report}"
    );
    let wrapped = json!({"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": transaction_referral("REF-V3")}]});
    let (status, report) = send(gateway.post_json("/fhir/Bundle/$validate", &wrapped));
    assert_eq!(status, 200);
    assert!(
        report["issue"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["severity"] != "error"),
        "{report}"
    );
    let (_, found) = send(gateway.get("/fhir/ServiceRequest"));
    assert_eq!(found["total"], 0, "validation stored nothing");
}

#[test]
fn search_pages_through_results() {
    let gateway = Gateway::start();
    for i in 0..5 {
        let (status, _) = send(gateway.post_json(
            "/fhir/ServiceRequest",
            &contained_referral(&format!("REF-S{i}")),
        ));
        assert_eq!(status, 201);
    }
    let (status, page) = send(gateway.get("/fhir/ServiceRequest?status=active&_count=2"));
    assert_eq!(status, 200);
    assert_eq!(page["type"], "searchset");
    assert_eq!(page["total"], 5);
    assert_eq!(page["entry"].as_array().unwrap().len(), 2);
    let next = page["link"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["relation"] == "next")
        .expect("next link");
    let next_url = next["url"].as_str().unwrap();
    let (_, second) = send(gateway.http.get(next_url).bearer_auth(GP_TOKEN));
    assert_eq!(second["entry"].as_array().unwrap().len(), 2);
    assert_ne!(
        second["entry"][0]["resource"]["id"],
        page["entry"][0]["resource"]["id"]
    );
    assert!(second["link"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["relation"] == "previous"));
    let (_, none) = send(gateway.get("/fhir/ServiceRequest?status=completed"));
    assert_eq!(none["total"], 0);
    // An unknown parameter is ignored and reported, unless the client asks for strict handling.
    let (status, lenient) = send(gateway.get("/fhir/ServiceRequest?colour=blue"));
    assert_eq!(status, 200);
    assert!(lenient["entry"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["search"]["mode"] == "outcome"));
    let (status, _) = send(
        gateway
            .get("/fhir/ServiceRequest?colour=blue")
            .header("prefer", "handling=strict"),
    );
    assert_eq!(status, 400);
}

#[test]
fn xml_in_and_out() {
    let gateway = Gateway::start();
    let xml = fhir_model_xml(&contained_referral("REF-XML"));
    let response = gateway
        .post_bytes("/fhir/ServiceRequest", FHIR_XML, xml)
        .header("accept", FHIR_XML)
        .send()
        .unwrap();
    assert_eq!(response.status(), 201);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with(FHIR_XML));
    let body = response.text().unwrap();
    assert!(
        body.contains("<ServiceRequest xmlns=\"http://hl7.org/fhir\""),
        "{body}"
    );
    assert!(body.contains("<family value=\"Llywelyn\""), "{body}");
    let bad = "<ServiceRequest xmlns=\"http://hl7.org/fhir\"><foo value=\"x\"/></ServiceRequest>";
    let response = gateway
        .post_bytes("/fhir/ServiceRequest", FHIR_XML, bad)
        .header("accept", FHIR_XML)
        .send()
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.text().unwrap().contains("<OperationOutcome"));
}

fn fhir_model_xml(resource: &Value) -> String {
    fhir_model::json_to_xml(resource).expect("xml")
}

#[test]
fn accepted_referral_is_stored_with_its_outbox_row_and_survives_a_kill() {
    let gateway = Gateway::start();
    let (status, created) =
        send(gateway.post_json("/fhir/ServiceRequest", &contained_referral("REF-DUR")));
    assert_eq!(status, 201);
    let id = created["id"].as_str().unwrap().to_string();
    let gateway = gateway.restart();
    let (status, read) = send(gateway.get(&format!("/fhir/ServiceRequest/{id}")));
    assert_eq!(status, 200);
    assert_eq!(read, created);

    let db = rusqlite::Connection::open(gateway.db_path()).unwrap();
    let (payload, state): (String, String) = db
        .query_row(
            "SELECT payload, state FROM outbox WHERE referral_id = ?1",
            [&id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(state, "pending");
    let envelope: Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(envelope["type"], "referral.created");
    assert_eq!(envelope["data"]["referral_id"], id.as_str());
    let schema: Value =
        serde_json::from_str(include_str!("../profiles/referral-record.v1.schema.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&envelope["data"])
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    let (received, encoding): (Vec<u8>, String) = db
        .query_row(
            "SELECT received_body, received_body_encoding FROM referrals WHERE id = ?1",
            [&id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    // Kept LZ4-compressed (frame format): byte for byte what the client sent once unpacked.
    assert_eq!(encoding, "lz4");
    let mut unpacked = Vec::new();
    std::io::Read::read_to_end(
        &mut lz4_flex::frame::FrameDecoder::new(received.as_slice()),
        &mut unpacked,
    )
    .unwrap();
    assert_eq!(
        unpacked,
        serde_json::to_vec(&contained_referral("REF-DUR")).unwrap()
    );
    let audits: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM audit_log WHERE resource_id = ?1 AND action = 'create'",
            [&id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(audits, 1);
}

#[test]
fn correlation_ids_are_echoed() {
    let gateway = Gateway::start();
    let response = gateway
        .http
        .get(gateway.url("/fhir/metadata"))
        .header("x-request-id", "vendor-req-42")
        .send()
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "vendor-req-42");
    assert_eq!(response.headers()["x-correlation-id"], "vendor-req-42");
}
