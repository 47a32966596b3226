//! Abuse limits over real HTTP: per-client rate limits and slow bodies.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::*;

#[test]
fn a_client_over_its_rate_gets_429_with_retry_after() {
    let gateway = Gateway::start_with(
        |c| {
            c.replace(
                "max_json_depth = 64",
                "max_json_depth = 64\nrate_limit_per_second = 2\nrate_limit_burst = 3",
            )
        },
        &[],
    );
    let answers: Vec<reqwest::blocking::Response> = (0..8)
        .map(|_| gateway.get("/fhir/ServiceRequest").send().unwrap())
        .collect();
    let limited: Vec<&reqwest::blocking::Response> =
        answers.iter().filter(|r| r.status() == 429).collect();
    assert!(
        !limited.is_empty(),
        "8 quick requests at 2/s with a burst of 3 hit the limit"
    );
    let retry_after: u64 = limited[0].headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    assert!(limited[0].headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with(FHIR_JSON));
    // Another client has its own bucket.
    let other = gateway
        .http
        .get(gateway.url("/fhir/ServiceRequest"))
        .bearer_auth(OTHER_GP_TOKEN)
        .send()
        .unwrap();
    assert_eq!(other.status(), 200);
    // After the wait, the client is served again.
    std::thread::sleep(Duration::from_secs(retry_after + 1));
    assert_eq!(
        gateway.get("/fhir/ServiceRequest").send().unwrap().status(),
        200
    );
}

#[test]
fn a_body_that_never_finishes_gets_408() {
    let gateway = Gateway::start_with(
        |c| {
            c.replace(
                "max_json_depth = 64",
                "max_json_depth = 64\nbody_timeout = \"1s\"",
            )
        },
        &[],
    );
    let address = gateway.base.trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let head = format!(
        "POST /fhir/ServiceRequest HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {GP_TOKEN}\r\n\
         Content-Type: application/fhir+json\r\nContent-Length: 1000\r\n\r\n{{\"resourceType\":"
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut answer = String::new();
    let mut buffer = [0u8; 4096];
    let read = stream.read(&mut buffer).unwrap();
    answer.push_str(&String::from_utf8_lossy(&buffer[..read]));
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("OperationOutcome"), "{answer}");
}
