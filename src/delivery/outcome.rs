//! What an attempt leads to, for every store alike: a 2xx delivers (and discloses the patient's
//! details to the recipient, which is audited), a 410 Gone switches a VCS organisation's endpoint
//! off and the message waits for it, or switches a GP Subscription off for good (the message is
//! dead and nothing more is sent to it), an abort or an exhausted retry schedule makes the message dead, anything
//! else is tried again on the schedule. The store only writes what is decided here.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::retry::next_attempt_at;
use crate::config::Delay;
use crate::store::{
    Attempt, AttemptRecord, AuditEntry, DeliveryState, NextStep, OutboxMessage, SwitchOff,
    TargetKind,
};

/// Why an endpoint is switched off after a 410 Gone.
pub const GONE_REASON: &str = "the endpoint answered 410 Gone";

/// How a receiver's answer is treated.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    Delivered,
    Retry { retry_after: Option<Duration> },
    Gone,
    Abort,
}

/// The rules of a receiver's answer (Standard Webhooks and common platform practice).
pub fn classify(status: u16, abort: bool, retry_after: Option<Duration>) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered,
        410 => Verdict::Gone,
        _ if abort => Verdict::Abort,
        429 | 502 | 503 | 504 => Verdict::Retry { retry_after },
        _ => Verdict::Retry { retry_after: None },
    }
}

/// What follows an attempt at `message` (which had `message.attempts` attempts before).
pub fn next_step(
    message: &OutboxMessage,
    verdict: &Verdict,
    schedule: &[Delay],
    now: DateTime<Utc>,
) -> NextStep {
    match verdict {
        Verdict::Delivered => NextStep::Delivered,
        Verdict::Gone => NextStep::EndpointGone,
        Verdict::Abort => NextStep::Dead,
        Verdict::Retry { retry_after } => {
            match next_attempt_at(message.attempts + 1, schedule, now, *retry_after) {
                Some(at) => NextStep::RetryAt(at),
                None => NextStep::Dead,
            }
        }
    }
}

/// Everything the store writes for `attempt` at `message` followed by `next`.
pub fn record(message: &OutboxMessage, attempt: Attempt, next: &NextStep) -> AttemptRecord {
    let at = attempt.at;
    let gone = *next == NextStep::EndpointGone;
    let switch_off = gone.then(|| switch_off(message)).flatten();
    let (state, next_attempt_at) = match (next, &switch_off) {
        (NextStep::Delivered, _) => (DeliveryState::Delivered, at),
        (NextStep::RetryAt(when), _) => (DeliveryState::Pending, *when),
        (NextStep::Dead, _) | (_, Some(SwitchOff::Subscription { .. })) => {
            (DeliveryState::Dead, at)
        }
        (NextStep::EndpointGone, _) => (DeliveryState::Pending, at),
    };
    let delivered = *next == NextStep::Delivered;
    AttemptRecord {
        attempt,
        state,
        next_attempt_at,
        delivered_at: delivered.then_some(at),
        // A delivered message disclosed the patient's details to its recipient: audited in the
        // same transaction that records the delivery. An email notice carries none: it is
        // audited as the notice it is.
        disclosure: delivered.then(|| AuditEntry {
            actor: message.recipient.clone(),
            action: match message.target_kind {
                TargetKind::Email => "notify",
                TargetKind::Vcs | TargetKind::Subscription => "disclose",
            }
            .into(),
            resource_type: "ServiceRequest".into(),
            resource_id: message.referral_id.to_string(),
        }),
        switch_off,
    }
}

/// What a 410 Gone from `message`'s target switches off: a VCS organisation's endpoint waits for
/// an operator; a GP Subscription is off, as if its GP system had deleted it (it may subscribe
/// again), so no message of it is ever sent again.
fn switch_off(message: &OutboxMessage) -> Option<SwitchOff> {
    match message.target_kind {
        TargetKind::Vcs => Some(SwitchOff::VcsEndpoint {
            vcs: message.vcs_id.clone(),
            reason: GONE_REASON.to_string(),
        }),
        TargetKind::Subscription => Some(SwitchOff::Subscription {
            id: message.vcs_id.clone(),
        }),
        // SMTP has no 410: an email notice never switches anything off.
        TargetKind::Email => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        assert_eq!(classify(200, false, None), Verdict::Delivered);
        assert_eq!(classify(204, true, None), Verdict::Delivered);
        assert_eq!(classify(410, false, None), Verdict::Gone);
        assert_eq!(classify(400, true, None), Verdict::Abort);
        assert_eq!(
            classify(302, false, None),
            Verdict::Retry { retry_after: None }
        );
        let later = Some(Duration::from_secs(9));
        assert_eq!(
            classify(429, false, later),
            Verdict::Retry { retry_after: later }
        );
        assert_eq!(
            classify(500, false, later),
            Verdict::Retry { retry_after: None }
        );
    }

    fn message(attempts: i64) -> OutboxMessage {
        OutboxMessage {
            id: "m1".into(),
            referral_id: "r1".parse().expect("a referral id"),
            target_kind: TargetKind::Vcs,
            vcs_id: "carers-count".into(),
            event_type: "referral.created".into(),
            sequence: 1,
            payload: "{}".into(),
            attempts,
            recipient: "vcs:carers-count".parse().expect("an actor"),
        }
    }

    fn attempt(at: DateTime<Utc>) -> Attempt {
        Attempt {
            at,
            status_code: Some(200),
            latency_ms: 3,
            error: None,
            response_prefix: None,
        }
    }

    #[test]
    fn a_delivery_is_disclosed_to_its_recipient() {
        let now = Utc::now();
        let written = record(&message(0), attempt(now), &NextStep::Delivered);
        assert_eq!(written.state, DeliveryState::Delivered);
        assert_eq!(written.delivered_at, Some(now));
        let disclosure = written.disclosure.expect("a disclosure");
        assert_eq!(disclosure.actor.to_string(), "vcs:carers-count");
        assert_eq!(
            (disclosure.action.as_str(), disclosure.resource_id.as_str()),
            ("disclose", "r1")
        );
        assert!(written.switch_off.is_none());
    }

    #[test]
    fn gone_disables_the_endpoint_and_the_message_waits() {
        let now = Utc::now();
        let written = record(&message(0), attempt(now), &NextStep::EndpointGone);
        assert_eq!(
            (written.state, written.next_attempt_at),
            (DeliveryState::Pending, now)
        );
        assert_eq!(
            written.switch_off,
            Some(SwitchOff::VcsEndpoint {
                vcs: "carers-count".to_string(),
                reason: GONE_REASON.to_string()
            })
        );
        assert!(written.disclosure.is_none());
    }

    #[test]
    fn gone_switches_a_subscription_off_and_the_message_is_dead() {
        let now = Utc::now();
        let mut notification = message(0);
        notification.target_kind = TargetKind::Subscription;
        notification.vcs_id = "sub-1".into();
        let written = record(&notification, attempt(now), &NextStep::EndpointGone);
        assert_eq!(written.state, DeliveryState::Dead);
        assert_eq!(
            written.switch_off,
            Some(SwitchOff::Subscription { id: "sub-1".into() })
        );
    }

    #[test]
    fn retries_follow_the_schedule_then_the_message_is_dead() {
        let now = Utc::now();
        let schedule = [Delay(Duration::from_secs(60))];
        let retry = Verdict::Retry { retry_after: None };
        assert!(
            matches!(next_step(&message(0), &retry, &schedule, now), NextStep::RetryAt(at) if at > now)
        );
        assert_eq!(
            next_step(&message(1), &retry, &schedule, now),
            NextStep::Dead
        );
        assert_eq!(
            next_step(&message(0), &Verdict::Abort, &schedule, now),
            NextStep::Dead
        );
        let written = record(&message(1), attempt(now), &NextStep::Dead);
        assert_eq!(
            (written.state, written.delivered_at),
            (DeliveryState::Dead, None)
        );
    }
}
