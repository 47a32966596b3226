//! Inputs found to harm the gateway, each kept as the test that would have caught it.

mod common;

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
