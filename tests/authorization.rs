//! The authorisation matrix, table-driven: every endpoint against every kind of caller. A GP
//! system reaches only its own referrals, a VCS organisation only those routed to it, the admin
//! token only the operator surface, and nobody else anything; a wrong tenant gets 404, not 403.

mod common;

use common::*;
use serde_json::json;

/// Callers, in the order of the expectation columns.
const CALLERS: [(&str, Option<&str>); 6] = [
    ("nobody", None),
    ("GP that referred", Some(GP_TOKEN)),
    ("another GP", Some(OTHER_GP_TOKEN)),
    ("VCS it was routed to", Some("demo-vcs-carers-count")),
    ("another VCS", Some("demo-vcs-knit-natter")),
    ("admin", Some(ADMIN_TOKEN)),
];

#[test]
fn every_endpoint_against_every_caller() {
    let gateway = Gateway::start();
    let referral = gateway.refer("REF-MATRIX");
    let (_, tasks) = send(gateway.get(&format!("/fhir/Task?focus=ServiceRequest/{referral}")));
    let task = tasks["entry"][0]["resource"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let patient = tasks["entry"][0]["resource"]["for"]["reference"]
        .as_str()
        .unwrap()
        .to_string();

    //  method, path, [nobody, GP, other GP, VCS, other VCS, admin]
    let table: Vec<(&str, String, [u16; 6])> = vec![
        (
            "GET",
            "/fhir/metadata".into(),
            [200, 200, 200, 200, 200, 200],
        ),
        (
            "GET",
            format!("/fhir/ServiceRequest/{referral}"),
            [401, 200, 404, 401, 401, 401],
        ),
        (
            "GET",
            format!("/fhir/ServiceRequest/{referral}/_history"),
            [401, 200, 404, 401, 401, 401],
        ),
        (
            "GET",
            format!("/fhir/ServiceRequest/{referral}/_history/1"),
            [401, 200, 404, 401, 401, 401],
        ),
        (
            "GET",
            "/fhir/ServiceRequest?identifier=REF-MATRIX".into(),
            [401, 200, 200, 401, 401, 401],
        ),
        (
            "GET",
            format!("/fhir/{patient}"),
            [401, 200, 404, 401, 401, 401],
        ),
        (
            "GET",
            format!("/fhir/Task/{task}"),
            [401, 200, 404, 401, 401, 401],
        ),
        (
            "GET",
            format!("/fhir/Task?focus=ServiceRequest/{referral}"),
            [401, 200, 200, 401, 401, 401],
        ),
        (
            "GET",
            format!("/fhir/Observation?based-on=ServiceRequest/{referral}"),
            [401, 200, 200, 401, 401, 401],
        ),
        (
            "GET",
            format!("/fhir/ServiceRequest?based-on=ServiceRequest/{referral}"),
            [401, 200, 200, 401, 401, 401],
        ),
        (
            "GET",
            format!("/fhir/Task?part-of=Task/{task}"),
            [401, 200, 200, 401, 401, 401],
        ),
        (
            "POST",
            "/fhir/ServiceRequest/$validate".into(),
            [401, 200, 200, 401, 401, 401],
        ),
        (
            "PATCH",
            format!("/fhir/ServiceRequest/{referral}"),
            [401, 415, 415, 401, 401, 401],
        ),
        (
            "GET",
            "/fhir/AuditEvent".into(),
            [401, 401, 401, 401, 401, 200],
        ),
        (
            "GET",
            "/vcs/v1/referrals".into(),
            [401, 401, 401, 200, 200, 401],
        ),
        (
            "GET",
            format!("/vcs/v1/referrals/{referral}"),
            [401, 401, 401, 200, 404, 401],
        ),
        (
            "POST",
            format!("/vcs/v1/referrals/{referral}/outcomes"),
            [401, 401, 401, 201, 404, 401],
        ),
        // Only a link-worker service refers onward: the demo's groups may not (403).
        (
            "POST",
            format!("/vcs/v1/referrals/{referral}/onward"),
            [401, 401, 401, 403, 403, 401],
        ),
        (
            "GET",
            "/admin/v1/deliveries".into(),
            [401, 401, 401, 401, 401, 200],
        ),
        (
            "GET",
            "/admin/v1/vcs".into(),
            [401, 401, 401, 401, 401, 200],
        ),
        (
            "GET",
            format!("/admin/v1/referrals/{referral}/deliveries"),
            [401, 401, 401, 401, 401, 200],
        ),
        (
            "GET",
            "/admin/v1/directory/feeds".into(),
            [401, 401, 401, 401, 401, 200],
        ),
        ("GET", "/metrics".into(), [401, 401, 401, 401, 401, 200]),
    ];
    let ons4 = json!({"instrument": "ons4", "timepoint": "baseline", "answers": [6, 7, 5, 3],
                      "occurred_at": "2026-06-01T10:00:00Z"});
    let mut wrong = Vec::new();
    for (method, path, expected) in &table {
        for ((who, token), want) in CALLERS.iter().zip(expected) {
            let mut request = match *method {
                "GET" => gateway.http.get(gateway.url(path)),
                "PATCH" => gateway
                    .http
                    .patch(gateway.url(path))
                    .header("content-type", "text/plain")
                    .body("x"),
                _ => gateway
                    .http
                    .post(gateway.url(path))
                    .header("content-type", FHIR_JSON)
                    .body(if path.ends_with("/onward") {
                        json!({"service_id": "f80b822c-7172-5b8d-9f63-72b7f1989394"}).to_string()
                    } else if path.contains("/vcs/") {
                        ons4.to_string()
                    } else {
                        contained_referral("REF-MATRIX-V").to_string()
                    }),
            };
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let status = request.send().unwrap().status().as_u16();
            if status != *want {
                wrong.push(format!(
                    "{method} {path} as {who}: {status}, expected {want}"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// One rule reads every caller's token: `Authorization: Bearer <token>`, the scheme in any case.
/// Anything else is a 401 with `WWW-Authenticate: Bearer`, told in the API's own dialect: an
/// OperationOutcome on the FHIR API, problem details on the VCS and operator APIs.
#[test]
fn one_bearer_rule_for_every_caller() {
    let gateway = Gateway::start();
    let callers = [
        ("/fhir/Task", GP_TOKEN, "application/fhir+json"),
        (
            "/vcs/v1/referrals",
            "demo-vcs-carers-count",
            "application/problem+json",
        ),
        ("/admin/v1/vcs", ADMIN_TOKEN, "application/problem+json"),
        ("/fhir/AuditEvent", ADMIN_TOKEN, "application/fhir+json"),
    ];
    for (path, token, refusal_type) in callers {
        for accepted in [format!("Bearer {token}"), format!("bearer  {token} ")] {
            let response = gateway
                .http
                .get(gateway.url(path))
                .header("authorization", &accepted)
                .send()
                .unwrap();
            assert_eq!(response.status().as_u16(), 200, "{path} with {accepted:?}");
        }
        for refused in [
            format!("Basic {token}"),
            "Bearer".to_string(),
            format!("Bearer {token}x"),
            token.to_string(),
        ] {
            let response = gateway
                .http
                .get(gateway.url(path))
                .header("authorization", &refused)
                .send()
                .unwrap();
            assert_eq!(response.status().as_u16(), 401, "{path} with {refused:?}");
            let challenge = response.headers().get("www-authenticate").cloned();
            assert_eq!(
                challenge.as_ref().map(|v| v.to_str().unwrap()),
                Some("Bearer")
            );
            let content_type = response.headers()["content-type"]
                .to_str()
                .unwrap()
                .to_string();
            assert!(
                content_type.starts_with(refusal_type),
                "{path}: {content_type}"
            );
        }
    }
}
