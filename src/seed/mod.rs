//! Synthetic activity for a demo or test database (`sp-gateway seed`, and `sp-gateway demo`
//! before it serves): months of made-up referrals from the demo's GP practices to the
//! configured organisations, their status reports and wellbeing questionnaires, and the
//! deliveries of their webhooks (most delivered, some failed and retried, some dead after an
//! outage), so that reports and the operator's pages have something to show.
//!
//! Everything goes through the domain code a live gateway runs: intake prepares each referral,
//! the lifecycle applies each change, the delivery rules decide what each simulated attempt leads
//! to. The only difference is the clock: each step is applied at its own past time. That seam
//! (`Lifecycle::*_at`) is crate-private; nothing reachable over HTTP chooses a time.
//!
//! Deterministic: the same seed, months and `now` give the same people, journeys and answers
//! (resource ids are still fresh).
//!
//! Never for a live database: the people are synthetic, but organisations would be sent their
//! webhooks like any others.

mod journey;
mod people;

use chrono::{DateTime, Datelike, Duration, Months, NaiveTime, Utc, Weekday};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::{Config, VcsConfig};
use crate::delivery::outcome::{self, classify};
use crate::domain::{ClientId, VcsId};
use crate::intake::{self, Endpoint, Rejected, Request};
use crate::lifecycle::{Lifecycle, LifecycleError};
use crate::store::{Attempt, CreateOutcome, DeliveryState, NextStep, Store, StoreError};
use crate::translate::decline_reason::DeclineReason;
use crate::translate::instruments::Instrument;
use crate::translate::vcs_request::{OutcomeReport, StatusUpdate};
use crate::translate::vcs_status::VcsStatus;
use journey::Step;

/// What to seed.
#[derive(Debug, Clone)]
pub struct SeedOptions {
    /// Whole months before the current one (the current month is seeded up to `now` too).
    pub months: u32,
    /// The random generator's seed.
    pub seed: u64,
    /// The end of the seeded activity; nothing is dated later.
    pub now: DateTime<Utc>,
}

/// What was written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seeded {
    pub referrals: usize,
    pub status_reports: usize,
    pub outcome_reports: usize,
    pub cancelled_by_gp: usize,
    pub delivery_attempts: usize,
    pub delivered: usize,
    pub dead: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("nothing to seed: {0}")]
    Nothing(&'static str),
    /// A synthetic referral failed intake: a defect of the seed, reported with the issues.
    #[error("a synthetic referral was refused: {0}")]
    Refused(String),
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An organisation referrals can be addressed to (it has an identifier a performer can name).
struct Organisation<'a> {
    index: usize,
    config: &'a VcsConfig,
    instrument: Instrument,
}

impl Organisation<'_> {
    /// The need categories this organisation mostly gets (three, different per organisation).
    fn favours(&self, rng: &mut impl Rng) -> usize {
        (self.index * 3 + rng.gen_range(0..3)) % people::NEEDS.len()
    }
}

/// Seeds `store` with `options.months` months of synthetic activity for `config`'s clients and
/// organisations.
pub async fn seed(
    store: &dyn Store,
    config: &Config,
    validation: &crate::validation::Validation,
    options: &SeedOptions,
) -> Result<Seeded, SeedError> {
    let organisations: Vec<Organisation<'_>> = config
        .vcs
        .iter()
        .filter(|v| !v.identifiers.is_empty())
        .enumerate()
        .map(|(index, config)| Organisation {
            index,
            config,
            instrument: Instrument::ALL[index % Instrument::ALL.len()],
        })
        .collect();
    if organisations.is_empty() {
        return Err(SeedError::Nothing(
            "no [[vcs]] organisation has identifiers",
        ));
    }
    if config.clients.is_empty() {
        return Err(SeedError::Nothing("no [[clients]] are configured"));
    }
    let mut rng = StdRng::seed_from_u64(options.seed);
    let start = start_of(options);
    let lifecycle = Lifecycle {
        store,
        config,
        validation,
    };
    let mut seeded = Seeded::default();
    let span = (options.now - start).num_seconds().max(1) as f64;
    let mut day = start;
    while day < options.now {
        let weekday = !matches!(day.weekday(), Weekday::Sat | Weekday::Sun);
        // From about 40 referrals a month at the start to about 65 at the end.
        let rate = 1.9 + 1.2 * (day - start).num_seconds() as f64 / span;
        let count = if weekday {
            rate.floor() as usize + usize::from(rng.gen_bool(rate.fract()))
        } else {
            0
        };
        for _ in 0..count {
            let received = day + Duration::minutes(rng.gen_range(8 * 60..17 * 60));
            if received > options.now {
                continue;
            }
            let organisation = &organisations[rng.gen_range(0..organisations.len())];
            let number = seeded.referrals + 1;
            let id = refer(
                config,
                validation,
                store,
                organisation,
                number,
                received,
                &mut rng,
            )
            .await?;
            seeded.referrals += 1;
            let (referral_id, client) = id;
            let steps = journey::plan(received, options.now, organisation.instrument, &mut rng);
            for (at, step) in steps {
                let vcs = &organisation.config.id;
                play(
                    &lifecycle,
                    vcs,
                    &client,
                    &referral_id,
                    organisation,
                    at,
                    step,
                    &mut seeded,
                )
                .await?;
            }
        }
        day += Duration::days(1);
    }
    deliver(store, config, start, options.now, &mut rng, &mut seeded).await?;
    Ok(seeded)
}

/// The first day of the month `options.months` months before `options.now`'s, at midnight.
fn start_of(options: &SeedOptions) -> DateTime<Utc> {
    let first = options
        .now
        .date_naive()
        .with_day(1)
        .and_then(|d| d.checked_sub_months(Months::new(options.months)))
        .unwrap_or(options.now.date_naive());
    first.and_time(NaiveTime::MIN).and_utc()
}

/// One referral through intake, stored as the GP system's create would store it; returns its
/// id and client.
async fn refer(
    config: &Config,
    validation: &crate::validation::Validation,
    store: &dyn Store,
    organisation: &Organisation<'_>,
    number: usize,
    received: DateTime<Utc>,
    rng: &mut StdRng,
) -> Result<(String, ClientId), SeedError> {
    let practice_index = rng.gen_range(0..people::PRACTICES.len());
    let client = &config.clients[practice_index % config.clients.len()].id;
    let need = if rng.gen_bool(0.7) {
        people::NEEDS[organisation.favours(rng)]
    } else {
        people::NEEDS[rng.gen_range(0..people::NEEDS.len())]
    };
    let referral = people::Referral {
        number,
        client: client.as_str(),
        practice: &people::PRACTICES[practice_index],
        performer: &organisation.config.identifiers[0],
        performer_name: &organisation.config.name,
        need,
        authored: received - Duration::minutes(rng.gen_range(1..30)),
    };
    let tree = people::service_request(&referral, rng);
    let body = tree.to_string().into_bytes();
    let request = Request {
        endpoint: Endpoint::ServiceRequest,
        tree,
        received_body: &body,
        received_content_type: "application/fhir+json",
        client,
        correlation_id: None,
        now: received,
    };
    let prepared = intake::prepare(config, validation, request).map_err(|Rejected(issues)| {
        let errors: Vec<String> = issues
            .iter()
            .filter(|i| i.severity.is_error())
            .map(|i| format!("{i:?}"))
            .collect();
        SeedError::Refused(errors.join("; "))
    })?;
    let referral_id = prepared.referral.referral_id.to_string();
    match store.create_referral(prepared.referral, None).await? {
        CreateOutcome::Created => Ok((referral_id, client.clone())),
        _ => Err(SeedError::Refused(format!(
            "referral {number} was not created (its identifier is taken: seeded before?)"
        ))),
    }
}

/// A status report as an organisation would send it, dated `at`.
fn status_update(
    status: VcsStatus,
    reason: Option<&str>,
    reason_code: Option<DeclineReason>,
    at: DateTime<Utc>,
) -> StatusUpdate {
    StatusUpdate {
        status,
        reason: reason.map(str::to_string),
        reason_code,
        note: None,
        occurred_at: at.fixed_offset(),
    }
}

/// Applies one step of a journey at its time.
#[allow(clippy::too_many_arguments)]
async fn play(
    lifecycle: &Lifecycle<'_>,
    vcs: &VcsId,
    client: &ClientId,
    referral_id: &str,
    organisation: &Organisation<'_>,
    at: DateTime<Utc>,
    step: Step,
    seeded: &mut Seeded,
) -> Result<(), SeedError> {
    match step {
        Step::Status(status, reason) => {
            let update = status_update(status, reason, None, at);
            lifecycle
                .report_status_at(vcs, referral_id, &update, (None, None), at)
                .await?;
            seeded.status_reports += 1;
        }
        Step::Declined(reason, code) => {
            let update = status_update(VcsStatus::Declined, Some(reason), code, at);
            lifecycle
                .report_status_at(vcs, referral_id, &update, (None, None), at)
                .await?;
            seeded.status_reports += 1;
        }
        Step::Outcome(timepoint, answers) => {
            let report = OutcomeReport {
                instrument: organisation.instrument,
                timepoint,
                answers,
                occurred_at: at.fixed_offset(),
            };
            lifecycle
                .report_outcome_at(vcs, referral_id, &report, (None, None), at)
                .await?;
            seeded.outcome_reports += 1;
        }
        Step::CancelledByGp => {
            lifecycle
                .cancel_by_gp_at(client, referral_id, (None, None), at)
                .await?;
            seeded.cancelled_by_gp += 1;
        }
    }
    Ok(())
}

/// How the simulated receivers answer: one organisation's endpoint is down for a week
/// (its messages of that time end dead once the retry schedule runs out) and again for the
/// last 6 hours (messages still being retried); otherwise 3% of attempts fail once.
struct Receivers {
    down: Option<String>,
    outages: [(DateTime<Utc>, DateTime<Utc>); 2],
}

impl Receivers {
    fn answer(&self, target: &str, at: DateTime<Utc>, rng: &mut impl Rng) -> u16 {
        let down = self.down.as_deref() == Some(target)
            && self
                .outages
                .iter()
                .any(|(from, to)| (*from..*to).contains(&at));
        if down {
            503
        } else if rng.gen_bool(0.03) {
            500
        } else {
            200
        }
    }
}

/// Plays the outbox from `start` to `now` with the delivery rules, attempt by attempt.
async fn deliver(
    store: &dyn Store,
    config: &Config,
    start: DateTime<Utc>,
    now: DateTime<Utc>,
    rng: &mut StdRng,
    seeded: &mut Seeded,
) -> Result<(), SeedError> {
    let with_webhook: Vec<&VcsConfig> = config
        .vcs
        .iter()
        .filter(|v| v.webhook().is_some())
        .collect();
    // From 08:00 on the first Monday three fifths of the way through.
    let mut outage = (start + (now - start) * 3 / 5)
        .date_naive()
        .and_time(NaiveTime::MIN)
        .and_utc()
        + Duration::hours(8);
    while outage.weekday() != Weekday::Mon {
        outage += Duration::days(1);
    }
    let receivers = Receivers {
        // The last of several organisations with a webhook has the outages.
        down: (with_webhook.len() > 1)
            .then(|| with_webhook.last().map(|v| v.id.to_string()))
            .flatten(),
        outages: [
            (outage, outage + Duration::days(7)),
            (now - Duration::hours(6), now + Duration::hours(1)),
        ],
    };
    let schedule = &config.delivery.retry_schedule;
    let mut clock = start;
    while let Some(due) = store.next_due_at().await? {
        clock = clock.max(due);
        if clock > now {
            break;
        }
        let claimed = store
            .claim_due_messages(clock, clock + Duration::minutes(5), 100)
            .await?;
        if claimed.is_empty() {
            // Due, but waiting behind an earlier message of its referral still being retried.
            clock += Duration::minutes(15);
            continue;
        }
        for message in claimed {
            let at = clock + Duration::seconds(rng.gen_range(0..60));
            let status = receivers.answer(&message.vcs_id, at, rng);
            let verdict = classify(status, false, None);
            let attempt = Attempt {
                at,
                status_code: Some(status),
                latency_ms: rng.gen_range(40..900),
                error: (status >= 300).then(|| format!("HTTP {status}")),
                response_prefix: None,
            };
            let next = outcome::next_step(&message, &verdict, schedule, at);
            let record = outcome::record(&message, attempt, &next);
            seeded.delivery_attempts += 1;
            match (&next, record.state) {
                (NextStep::Delivered, _) => seeded.delivered += 1,
                (_, DeliveryState::Dead) => seeded.dead += 1,
                _ => {}
            }
            store.record_attempt(&message.id, record).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn seeding_starts_on_the_first_of_a_month() {
        let now = Utc.with_ymd_and_hms(2026, 12, 4, 15, 0, 0).unwrap();
        let options = SeedOptions {
            months: 6,
            seed: 1,
            now,
        };
        assert_eq!(
            start_of(&options),
            Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap()
        );
    }
}
