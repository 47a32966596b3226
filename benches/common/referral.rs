//! Creating referrals for the end-to-end benches: the contained ServiceRequest from `fixtures/`
//! with a GP reference (identifier and `If-None-Exist`) the caller picks, sent over [`Conn`] and
//! checked for its `201`.
//!
//! Not every bench uses it, hence `dead_code` is allowed here.
#![allow(dead_code)]

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{truncate, Conn, Result, GP_TOKEN};

pub const CONTAINED: &str =
    include_str!("../../fixtures/referrals/valid/carer-support-carers-count.json");
pub const CONTAINED_REFERENCE: &str = "EMIS-REF-2026-003981";
pub const REFERRAL_SYSTEM: &str = "https://fhir.emis-demo.example/Id/referral";

/// `POST /fhir/ServiceRequest` of the contained referral with `reference` as its GP reference.
pub fn referral_request(addr: &str, reference: &str) -> Vec<u8> {
    let body = CONTAINED.replace(CONTAINED_REFERENCE, reference);
    let mut bytes = format!(
        "POST /fhir/ServiceRequest HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {GP_TOKEN}\r\n\
         Accept: application/fhir+json\r\nIf-None-Exist: identifier={REFERRAL_SYSTEM}|{reference}\r\n\
         Content-Type: application/fhir+json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    bytes
}

/// A referral the gateway answered `201`.
pub struct Created {
    pub reference: String,
    pub referral_id: String,
    /// When the request counts as sent: just before it was written (an open loop sets its
    /// scheduled send time instead).
    pub sent: Instant,
    /// When the whole `201` answer had been read.
    pub answered: Instant,
}

impl Created {
    /// From `sent` to the whole answer.
    pub fn latency(&self) -> Duration {
        self.answered.duration_since(self.sent)
    }
}

/// Sends one referral and checks its `201` and the referral id in its `Location`.
pub fn create(conn: &mut Conn, addr: &str, reference: String) -> Result<Created> {
    let request = referral_request(addr, &reference);
    let sent = Instant::now();
    let response = conn.exchange(&request)?;
    let answered = Instant::now();
    if response.status != 201 {
        return Err(format!(
            "{reference} to {addr}: HTTP {} instead of 201: {}",
            response.status,
            truncate(&String::from_utf8_lossy(&response.body))
        ));
    }
    let location = response.location.unwrap_or_default();
    let referral_id = location
        .split('/')
        .skip_while(|segment| *segment != "ServiceRequest")
        .nth(1)
        .unwrap_or("")
        .to_string();
    if referral_id.is_empty() {
        return Err(format!(
            "{reference}: 201 without a ServiceRequest Location ({location:?})"
        ));
    }
    Ok(Created {
        reference,
        referral_id,
        sent,
        answered,
    })
}

/// Every sending thread's referrals, or the first error one of them returned.
pub fn join_all(threads: Vec<JoinHandle<Result<Vec<Created>>>>) -> Result<Vec<Created>> {
    let mut all = Vec::new();
    let mut first_error = None;
    for thread in threads {
        match thread.join().map_err(|_| "a sending thread panicked")? {
            Ok(created) => all.extend(created),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(all), Err)
}
