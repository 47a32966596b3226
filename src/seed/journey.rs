//! What happens to one synthetic referral after it arrives: the organisation's answer, contact,
//! sessions, the end of support, and wellbeing measured at the start and the end. Pure: the
//! steps and their times, drawn from a seeded random generator; `seed` plays them through the
//! lifecycle.

use chrono::{DateTime, Duration, Utc};
use rand::Rng;

use crate::translate::decline_reason::DeclineReason;
use crate::translate::instruments::{Instrument, Timepoint, ONS4_ITEMS};
use crate::translate::vcs_status::VcsStatus;

/// One step of a journey.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Step {
    /// The organisation reports a status (with the reason the status needs, if any).
    Status(VcsStatus, Option<&'static str>),
    /// The organisation declines the referral, in words and (usually) with a code.
    Declined(&'static str, Option<DeclineReason>),
    /// The organisation reports a questionnaire's answers.
    Outcome(Timepoint, Vec<u8>),
    /// The GP practice cancels the referral.
    CancelledByGp,
}

/// Declines as organisations send them: most with a code, one the way a CRM that predates
/// codes would (words only), so the reports show both. A closed waiting list is listed twice:
/// it is the commonest answer.
const DECLINE_REASONS: [(&str, Option<DeclineReason>); 5] = [
    (
        "Outside the area we cover",
        Some(DeclineReason::OutsideArea),
    ),
    (
        "Our waiting list is closed this month",
        Some(DeclineReason::NoCapacity),
    ),
    (
        "The needs described are beyond what we offer",
        Some(DeclineReason::NeedsBeyondService),
    ),
    (
        "Our waiting list is closed this month",
        Some(DeclineReason::NoCapacity),
    ),
    ("We have already been working with this person", None),
];

/// A number from roughly N(0, 1) (the sum of four uniforms, scaled), enough for synthetic data.
fn normal(rng: &mut impl Rng) -> f64 {
    let sum: f64 = (0..4).map(|_| rng.gen::<f64>()).sum();
    (sum - 2.0) * 3f64.sqrt()
}

/// Answers to `instrument` for a person whose wellbeing is `level` (0 lowest, 1 highest).
pub(super) fn answers(instrument: Instrument, level: f64, rng: &mut impl Rng) -> Vec<u8> {
    let (low, high) = instrument.answer_range();
    let span = f64::from(high - low);
    (0..instrument.item_count())
        .map(|item| {
            // ONS4's last question is anxiety: higher means worse.
            let anxiety = instrument == Instrument::Ons4 && item == ONS4_ITEMS.len() - 1;
            let level = if anxiety { 1.0 - level } else { level };
            let answer = f64::from(low) + level * span + normal(rng) * span / 8.0;
            answer.round().clamp(f64::from(low), f64::from(high)) as u8
        })
        .collect()
}

/// Moves `at` on by `min_hours` to `max_hours` and returns it.
fn after(
    at: &mut DateTime<Utc>,
    rng: &mut impl Rng,
    min_hours: i64,
    max_hours: i64,
) -> DateTime<Utc> {
    *at += Duration::minutes(rng.gen_range(min_hours * 60..=max_hours * 60));
    *at
}

/// The steps of a referral received at `received`, with their times, up to `now` (later steps
/// have not happened yet: a recent referral is still open).
pub(super) fn plan(
    received: DateTime<Utc>,
    now: DateTime<Utc>,
    instrument: Instrument,
    rng: &mut impl Rng,
) -> Vec<(DateTime<Utc>, Step)> {
    let mut steps = Vec::new();
    let mut at = received;
    let answer: f64 = rng.gen();
    if answer < 0.04 {
        steps.push((after(&mut at, rng, 12, 120), Step::CancelledByGp));
        return until(steps, now);
    }
    if answer < 0.13 {
        let (reason, code) = DECLINE_REASONS[rng.gen_range(0..DECLINE_REASONS.len())];
        steps.push((after(&mut at, rng, 4, 96), Step::Declined(reason, code)));
        return until(steps, now);
    }
    steps.push((
        after(&mut at, rng, 2, 96),
        Step::Status(VcsStatus::Accepted, None),
    ));
    if rng.gen_bool(0.12) {
        steps.push((
            after(&mut at, rng, 48, 120),
            Step::Status(
                VcsStatus::UnableToContact,
                Some("No answer to three calls and a letter"),
            ),
        ));
        if rng.gen_bool(0.5) {
            steps.push((
                after(&mut at, rng, 240, 360),
                Step::Status(VcsStatus::Cancelled, Some("We could not reach the person")),
            ));
            return until(steps, now);
        }
    }
    steps.push((
        after(&mut at, rng, 24, 144),
        Step::Status(VcsStatus::Contacted, None),
    ));
    let baseline = (0.42 + normal(rng) * 0.12).clamp(0.05, 0.95);
    let measured = rng.gen_bool(0.9);
    if measured {
        let answers = answers(instrument, baseline, rng);
        steps.push((
            after(&mut at, rng, 1, 2),
            Step::Outcome(Timepoint::Baseline, answers),
        ));
    }
    for _ in 0..rng.gen_range(2..=6) {
        let status = if rng.gen_bool(0.82) {
            VcsStatus::Attended
        } else {
            VcsStatus::DidNotAttend
        };
        steps.push((after(&mut at, rng, 120, 216), Step::Status(status, None)));
    }
    if rng.gen_bool(0.1) {
        steps.push((
            after(&mut at, rng, 48, 240),
            Step::Status(VcsStatus::Cancelled, Some("The person chose to stop")),
        ));
        return until(steps, now);
    }
    let end = after(&mut at, rng, 72, 336);
    if measured && rng.gen_bool(0.85) {
        let change = 0.07 + normal(rng) * 0.09;
        let follow_up = (baseline + change).clamp(0.02, 0.98);
        let answers = answers(instrument, follow_up, rng);
        steps.push((end, Step::Outcome(Timepoint::FollowUp, answers)));
    }
    steps.push((
        end + Duration::minutes(30),
        Step::Status(VcsStatus::Completed, None),
    ));
    until(steps, now)
}

fn until(steps: Vec<(DateTime<Utc>, Step)>, now: DateTime<Utc>) -> Vec<(DateTime<Utc>, Step)> {
    steps.into_iter().take_while(|(at, _)| *at <= now).collect()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn journeys_follow_the_transition_rules_in_time_order() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let received = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap();
        let now = received + Duration::days(120);
        let mut ends = std::collections::HashMap::new();
        for i in 0..400 {
            let instrument = Instrument::ALL[i % 3];
            let steps = plan(received, now, instrument, &mut rng);
            let mut status = VcsStatus::Received;
            let mut last = received;
            for (at, step) in &steps {
                assert!(*at >= last, "steps out of order: {steps:?}");
                last = *at;
                match step {
                    Step::Status(next, reason) => {
                        assert!(status.can_become(*next), "{status:?} -> {next:?}");
                        assert_eq!(reason.is_some(), next.needs_reason(), "{next:?}");
                        status = *next;
                    }
                    Step::Declined(..) => {
                        assert!(status.can_become(VcsStatus::Declined), "{status:?}");
                        status = VcsStatus::Declined;
                    }
                    Step::CancelledByGp => status = VcsStatus::Cancelled,
                    Step::Outcome(_, answers) => {
                        assert_eq!(answers.len(), instrument.item_count());
                        let (low, high) = instrument.answer_range();
                        assert!(answers.iter().all(|a| (low..=high).contains(a)));
                    }
                }
            }
            *ends.entry(status).or_insert(0) += 1;
        }
        // Every ending a report counts shows up in 400 journeys.
        for status in [
            VcsStatus::Completed,
            VcsStatus::Declined,
            VcsStatus::Cancelled,
        ] {
            assert!(ends.get(&status).copied().unwrap_or(0) > 5, "{ends:?}");
        }
    }

    #[test]
    fn nothing_after_now_and_the_same_seed_gives_the_same_journey() {
        let received = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap();
        let now = received + Duration::days(3);
        let draw = |seed| {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            (0..50)
                .map(|_| plan(received, now, Instrument::Wemwbs, &mut rng))
                .collect::<Vec<_>>()
        };
        let journeys = draw(9);
        assert_eq!(journeys, draw(9));
        assert!(journeys.iter().flatten().all(|(at, _)| *at <= now));
    }

    #[test]
    fn answers_follow_the_level() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let total = |level, rng: &mut rand::rngs::StdRng| -> u32 {
            (0..50)
                .map(|_| {
                    answers(Instrument::Wemwbs, level, rng)
                        .iter()
                        .map(|&a| u32::from(a))
                        .sum::<u32>()
                })
                .sum()
        };
        assert!(total(0.3, &mut rng) < total(0.6, &mut rng));
    }
}
