//! Inputs found to harm the gateway, each kept as the test that would have caught it.

mod common;

use common::receiver::Receiver;
use common::*;

const READER_TOKEN: &str = "reader-token";

fn with_reader(config: String) -> String {
    format!(
        "{config}\n[[clients]]\nid = \"reader\"\ntoken = \"{READER_TOKEN}\"\nscopes = [\"system/ServiceRequest.read\"]\n"
    )
}

/// 10 KB of XML nested 1,500 elements deep overflowed the XML reader's stack and aborted the
/// whole process, from a read-only token's `$validate`. Now: a 400 naming the limit, and the
/// gateway goes on.
#[test]
fn deeply_nested_xml_is_a_400_and_the_gateway_lives_on() {
    let mut gateway = Gateway::start_with(with_reader, &[]);
    let body = format!(
        "<ServiceRequest xmlns=\"http://hl7.org/fhir\">{}",
        "<a>".repeat(1500)
    );
    for path in [
        "/fhir/ServiceRequest/$validate",
        "/fhir/ServiceRequest",
        "/fhir",
    ] {
        let (status, outcome) = send(
            gateway
                .http
                .post(gateway.url(path))
                .bearer_auth(if path.ends_with("$validate") {
                    READER_TOKEN
                } else {
                    GP_TOKEN
                })
                .header("content-type", FHIR_XML)
                .body(body.clone()),
        );
        assert_eq!(status, 400, "{path}: {outcome}");
        assert_outcome(&outcome);
        assert!(
            outcome
                .to_string()
                .contains("nested more than 64 elements deep"),
            "{outcome}"
        );
    }
    assert!(gateway.is_running());
    let (status, _) = send(gateway.http.get(gateway.url("/fhir/metadata")));
    assert_eq!(status, 200);
}

/// reqwest follows HTTPS_PROXY/HTTP_PROXY by default, and a proxy resolves the receiver's name
/// itself, past the SSRF guard. Without `[delivery] proxy` the variables are ignored.
#[test]
fn proxy_variables_are_ignored_unless_a_proxy_is_configured() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let proxy_url = format!("http://{}", proxy.local_addr().expect("addr"));
    let connections = Arc::new(AtomicUsize::new(0));
    let seen = connections.clone();
    std::thread::spawn(move || {
        for stream in proxy.incoming() {
            seen.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    let receiver = Receiver::start();
    let base = receiver.base.clone();
    let gateway = Gateway::start_with(
        move |c| deliver_to(c, &base, &["1s"]),
        &[
            ("HTTP_PROXY", proxy_url.as_str()),
            ("HTTPS_PROXY", proxy_url.as_str()),
            ("ALL_PROXY", proxy_url.as_str()),
            ("http_proxy", proxy_url.as_str()),
        ],
    );
    gateway.refer("PROXY-1");
    receiver.wait_for(
        std::time::Duration::from_secs(30),
        "the webhook, sent directly",
        |r| !r.is_empty(),
    );
    assert_eq!(connections.load(Ordering::SeqCst), 0, "the proxy was used");
}

/// serde_json keeps the last of two equal keys, so `"status"` twice meant whatever came last:
/// the stored body must mean one thing. A duplicate key is a 400 naming it.
#[test]
fn a_duplicate_json_key_is_a_400() {
    let gateway = Gateway::start();
    let mut body = contained_referral("DUP-1").to_string();
    body = body.replacen(
        "\"status\":\"active\"",
        "\"status\":\"active\",\"status\":\"revoked\"",
        1,
    );
    assert!(body.contains("\"status\":\"revoked\""), "{body}");
    let (status, outcome) = send(gateway.post_bytes("/fhir/ServiceRequest", FHIR_JSON, body));
    assert_eq!(status, 400, "{outcome}");
    assert_outcome(&outcome);
    assert!(outcome.to_string().contains("appears twice"), "{outcome}");
}
