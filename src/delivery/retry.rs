//! When to try again: the configured schedule with jitter, never earlier than a receiver's
//! `Retry-After`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;

use crate::config::Delay;

/// The longest `Retry-After` we honour: a receiver cannot park a message for more than a day.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The time of the next attempt after `attempts_made` failed ones, or `None` when the schedule is
/// exhausted (dead-letter). Jitter of ±10% keeps a recovering receiver from a synchronised burst.
pub fn next_attempt_at(
    attempts_made: i64,
    schedule: &[Delay],
    now: DateTime<Utc>,
    retry_after: Option<Duration>,
) -> Option<DateTime<Utc>> {
    let index = usize::try_from(attempts_made.checked_sub(1)?).ok()?;
    let Delay(base) = *schedule.get(index)?;
    let jitter = rand::thread_rng().gen_range(0.9..=1.1);
    let scheduled = base.mul_f64(jitter);
    let delay = match retry_after {
        Some(asked) => scheduled.max(asked.min(MAX_RETRY_AFTER)),
        None => scheduled,
    };
    Some(now + chrono::Duration::from_std(delay).ok()?)
}

/// Reads `Retry-After`: delay-seconds or an HTTP-date.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    (when - now).to_std().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule() -> Vec<Delay> {
        vec![
            Delay(Duration::from_secs(10)),
            Delay(Duration::from_secs(100)),
        ]
    }

    #[test]
    fn follows_the_schedule_then_gives_up() {
        let now = Utc::now();
        let first = next_attempt_at(1, &schedule(), now, None).unwrap();
        let delay = (first - now).num_milliseconds();
        assert!((9_000..=11_000).contains(&delay), "{delay}");
        let second = next_attempt_at(2, &schedule(), now, None).unwrap();
        assert!((second - now).num_seconds() >= 89);
        assert_eq!(next_attempt_at(3, &schedule(), now, None), None);
        assert_eq!(next_attempt_at(0, &schedule(), now, None), None);
    }

    #[test]
    fn retry_after_is_a_floor() {
        let now = Utc::now();
        let later = next_attempt_at(1, &schedule(), now, Some(Duration::from_secs(60))).unwrap();
        assert!((later - now).num_seconds() >= 59);
        let capped = next_attempt_at(
            1,
            &schedule(),
            now,
            Some(Duration::from_secs(10 * 24 * 3600)),
        )
        .unwrap();
        assert!((capped - now).num_hours() <= 24);
    }

    #[test]
    fn retry_after_forms() {
        let now = DateTime::parse_from_rfc3339("2026-11-23T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Mon, 23 Nov 2026 12:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
