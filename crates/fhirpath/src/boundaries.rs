//! `precision()`, `lowBoundary()` and `highBoundary()`.
//!
//! The results follow the official test suite: for a positive decimal the
//! low boundary is `value - ½ulp` truncated to the requested digits and the
//! high boundary is `value + ½ulp` rounded; negative values mirror them.

use crate::decimal::Decimal;
use crate::temporal::{Precision, Temporal, TemporalKind};
use crate::value::{Item, Quantity};

/// Default number of decimal digits for decimal boundaries.
const DEFAULT_DECIMAL_DIGITS: i64 = 8;
const MAX_DECIMAL_DIGITS: i64 = 28;

pub(crate) fn precision(item: &Item<'_>) -> Option<i64> {
    match item {
        Item::Decimal(d) => Some(i64::from(d.scale())),
        Item::Integer(_) => Some(0),
        Item::Date(t) | Item::DateTime(t) | Item::Time(t) => Some(temporal_digits(t)),
        _ => None,
    }
}

fn temporal_digits(t: &Temporal) -> i64 {
    let time = match t.precision {
        Precision::Hour => 2,
        Precision::Minute => 4,
        Precision::Second => 6,
        Precision::Millisecond => 9,
        _ => 0,
    };
    if t.kind == TemporalKind::Time {
        return time;
    }
    match t.precision {
        Precision::Year => 4,
        Precision::Month => 6,
        Precision::Day => 8,
        // Date part (8) + time; milliseconds count three digits.
        _ => 8 + time,
    }
}

/// Boundary of `item`; `high` selects the upper one. `None` = empty.
pub(crate) fn boundary<'a>(item: &Item<'a>, digits: Option<i64>, high: bool) -> Option<Item<'a>> {
    match item {
        Item::Integer(i) => {
            decimal_boundary(Decimal::from_i64(*i), digits, high).map(Item::Decimal)
        }
        Item::Decimal(d) => decimal_boundary(*d, digits, high).map(Item::Decimal),
        Item::Quantity(q) => decimal_boundary(q.value, digits, high).map(|value| {
            Item::Quantity(Quantity {
                value,
                unit: q.unit.clone(),
            })
        }),
        Item::Date(t) => temporal_boundary(*t, digits, high).map(Item::Date),
        Item::DateTime(t) => temporal_boundary(*t, digits, high).map(|t| match t.kind {
            TemporalKind::Date => Item::Date(t),
            _ => Item::DateTime(t),
        }),
        Item::Time(t) => temporal_boundary(*t, digits, high).map(Item::Time),
        _ => None,
    }
}

fn decimal_boundary(d: Decimal, digits: Option<i64>, high: bool) -> Option<Decimal> {
    let digits = digits.unwrap_or(DEFAULT_DECIMAL_DIGITS);
    if !(0..=MAX_DECIMAL_DIGITS).contains(&digits) {
        return None;
    }
    let digits = u32::try_from(digits).ok()?;
    if d.is_negative() {
        return positive_boundary(-d, digits, !high).map(|v| -v);
    }
    positive_boundary(d, digits, high)
}

fn positive_boundary(d: Decimal, digits: u32, high: bool) -> Option<Decimal> {
    // Half a unit in the last written place.
    let half = Decimal::new(5, d.scale() + 1);
    let shifted = if high {
        d.checked_add(half)?
    } else {
        d.checked_sub(half)?
    };
    let fitted = if high {
        shifted.round(digits)?
    } else {
        truncate_to(shifted, digits)?
    };
    pad_to(fitted, digits)
}

fn truncate_to(d: Decimal, digits: u32) -> Option<Decimal> {
    if d.scale() <= digits {
        return Some(d);
    }
    let p = 10i128.checked_pow(d.scale() - digits)?;
    Some(Decimal::new(d.mantissa() / p, digits))
}

fn pad_to(d: Decimal, digits: u32) -> Option<Decimal> {
    if d.scale() >= digits {
        return Some(d);
    }
    let p = 10i128.checked_pow(digits - d.scale())?;
    Some(Decimal::new(d.mantissa().checked_mul(p)?, digits))
}

fn temporal_boundary(t: Temporal, digits: Option<i64>, high: bool) -> Option<Temporal> {
    let target = match (t.kind, digits) {
        (TemporalKind::Time, None | Some(9)) => Precision::Millisecond,
        (TemporalKind::Time, Some(2)) => Precision::Hour,
        (TemporalKind::Time, Some(4)) => Precision::Minute,
        (TemporalKind::Time, Some(6)) => Precision::Second,
        (TemporalKind::Time, _) => return None,
        (TemporalKind::Date, None) => Precision::Day,
        (_, None | Some(17)) => Precision::Millisecond,
        (_, Some(4)) => Precision::Year,
        (_, Some(6)) => Precision::Month,
        (_, Some(8)) => Precision::Day,
        (TemporalKind::DateTime, Some(10)) => Precision::Hour,
        (TemporalKind::DateTime, Some(12)) => Precision::Minute,
        (TemporalKind::DateTime, Some(14)) => Precision::Second,
        _ => return None,
    };
    let mut out = t;
    // An hour alone is not a valid FHIR time: it is read as hh:00 first.
    let known = if t.precision == Precision::Hour {
        Precision::Minute
    } else {
        t.precision
    };
    fill(&mut out, known, high);
    out.precision = target;
    if target <= Precision::Day && t.kind != TemporalKind::Time {
        out.kind = TemporalKind::Date;
        out.tz_offset = None;
    } else if t.kind == TemporalKind::DateTime && out.tz_offset.is_none() {
        // Unknown zone: the widest possible offsets.
        out.tz_offset = Some(if high { -12 * 60 } else { 14 * 60 });
    }
    Some(out)
}

/// Sets the fields below `known` to their lowest or highest values.
fn fill(t: &mut Temporal, known: Precision, high: bool) {
    let dated = t.kind != TemporalKind::Time;
    if known < Precision::Month && dated {
        t.month = if high { 12 } else { 1 };
    }
    if known < Precision::Day && dated {
        t.day = if high { days_in(t.year, t.month) } else { 1 };
    }
    if known < Precision::Hour {
        t.hour = if high { 23 } else { 0 };
    }
    if known < Precision::Minute {
        t.minute = if high { 59 } else { 0 };
    }
    if known < Precision::Second {
        t.second = if high { 59 } else { 0 };
    }
    if known < Precision::Millisecond {
        t.millisecond = if high { 999 } else { 0 };
    }
}

fn days_in(year: i32, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str, digits: Option<i64>, high: bool) -> String {
        decimal_boundary(Decimal::parse(s).unwrap(), digits, high)
            .map(|d| d.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn decimal_boundaries() {
        assert_eq!(dec("1.587", None, false), "1.58650000");
        assert_eq!(dec("1.587", Some(2), false), "1.58");
        assert_eq!(dec("1.587", Some(2), true), "1.59");
        assert_eq!(dec("-1.587", Some(2), false), "-1.59");
        assert_eq!(dec("-1.587", Some(2), true), "-1.58");
        assert_eq!(dec("120", Some(2), false), "119.50");
        assert_eq!(dec("1", Some(0), true), "2");
        assert_eq!(dec("1.587", Some(-1), true), "");
        assert_eq!(dec("1.587", Some(39), true), "");
    }

    #[test]
    fn temporal_boundaries() {
        let d = Temporal::parse_date("2014").unwrap();
        assert_eq!(
            temporal_boundary(d, Some(6), true).unwrap().to_string(),
            "2014-12"
        );
        let t = Temporal::parse_time("10:30").unwrap();
        assert_eq!(
            temporal_boundary(t, Some(9), true).unwrap().to_string(),
            "10:30:59.999"
        );
        let dt = Temporal::parse_datetime("2014-01-01T08").unwrap();
        assert_eq!(
            temporal_boundary(dt, Some(17), false).unwrap().to_string(),
            "2014-01-01T08:00:00.000+14:00"
        );
        assert_eq!(precision(&Item::DateTime(dt)), Some(10));
    }
}
