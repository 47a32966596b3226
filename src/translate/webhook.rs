//! The webhooks a VCS organisation receives: one envelope (`type`, `timestamp`, `sequence`,
//! `data`) around the referral record, for every event, written in one place so that intake and
//! later changes cannot drift apart. The signature and the `webhook-*` headers are added at
//! delivery (`delivery::signing`).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

/// What happened to a referral, as a VCS organisation's webhook names it (`type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum VcsEvent {
    /// A GP practice referred someone to the organisation.
    #[serde(rename = "referral.created")]
    ReferralCreated,
    /// The GP practice revoked the referral.
    #[serde(rename = "referral.cancelled")]
    ReferralCancelled,
}

impl VcsEvent {
    /// The name in the envelope's `type` and the outbox's `event_type`.
    pub fn as_str(self) -> &'static str {
        match self {
            VcsEvent::ReferralCreated => "referral.created",
            VcsEvent::ReferralCancelled => "referral.cancelled",
        }
    }
}

/// The body of a webhook to a VCS organisation. `sequence` counts the messages to that
/// organisation about that referral, so a receiver can put late arrivals in order.
#[derive(Debug, Serialize)]
pub struct Envelope<'a, T: Serialize> {
    #[serde(rename = "type")]
    pub event: VcsEvent,
    /// When the gateway decided to send it, to the second, in UTC.
    pub timestamp: String,
    pub sequence: i64,
    pub data: &'a T,
}

impl<'a, T: Serialize> Envelope<'a, T> {
    pub fn new(event: VcsEvent, at: DateTime<Utc>, sequence: i64, data: &'a T) -> Self {
        Envelope {
            event,
            timestamp: at.to_rfc3339_opts(SecondsFormat::Secs, true),
            sequence,
            data,
        }
    }

    /// The compact JSON the outbox stores and delivery signs. The records serialised here are
    /// plain structs and JSON values (string keys only), which cannot fail to serialise, so the
    /// empty fallback is never taken.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Outbox message ids double as Standard Webhooks `webhook-id`s. Time-ordered, like resource
/// ids (see `FhirId::generate`): the outbox's primary key grows at its end.
pub fn new_message_id() -> String {
    format!("msg_{}", uuid::Uuid::now_v7().simple())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::{json, Value};

    use super::*;

    #[test]
    fn envelopes_as_sent() {
        let at = |h, s| {
            Utc.with_ymd_and_hms(2026, 5, 10, h, 0, s)
                .single()
                .expect("time")
        };
        let record = json!({"schema": "referral-record/v1", "referral_id": "r-1"});
        // (event, time, sequence, data, the exact bytes stored)
        let table = [
            (
                VcsEvent::ReferralCreated,
                at(9, 0),
                1,
                record.clone(),
                r#"{"type":"referral.created","timestamp":"2026-05-10T09:00:00Z","sequence":1,"data":{"schema":"referral-record/v1","referral_id":"r-1"}}"#,
            ),
            (
                VcsEvent::ReferralCancelled,
                at(14, 59),
                3,
                record,
                r#"{"type":"referral.cancelled","timestamp":"2026-05-10T14:00:59Z","sequence":3,"data":{"schema":"referral-record/v1","referral_id":"r-1"}}"#,
            ),
            (
                VcsEvent::ReferralCancelled,
                at(23, 1),
                2,
                Value::Null,
                r#"{"type":"referral.cancelled","timestamp":"2026-05-10T23:00:01Z","sequence":2,"data":null}"#,
            ),
        ];
        for (event, time, sequence, data, expected) in table {
            assert_eq!(
                Envelope::new(event, time, sequence, &data).to_json(),
                expected
            );
            let parsed: Value = serde_json::from_str(expected).expect("JSON");
            assert_eq!(parsed["type"], event.as_str());
        }
    }

    #[test]
    fn message_ids_are_distinct() {
        let ids: Vec<String> = (0..50).map(|_| new_message_id()).collect();
        for id in &ids {
            assert!(id.starts_with("msg_") && id.len() == 36, "{id}");
        }
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len());
    }
}
