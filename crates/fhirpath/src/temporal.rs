//! FHIRPath Date, DateTime and Time values with partial precision.
//!
//! FHIR dates may be partial (`2014`, `2014-03`) and comparisons between
//! values of different precision can be *unknown* (empty), so values keep
//! their precision instead of being widened to a full timestamp.

use std::cmp::Ordering;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Precision {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    Millisecond,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TemporalKind {
    Date,
    DateTime,
    Time,
}

/// A date, dateTime or time; fields below `precision` are zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Temporal {
    pub kind: TemporalKind,
    pub year: i32,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub millisecond: u16,
    pub precision: Precision,
    /// Offset from UTC in minutes, when the value carries a time zone.
    pub tz_offset: Option<i32>,
}

/// Calendar units usable in date arithmetic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CalendarUnit {
    Year,
    Month,
    Week,
    Day,
    Hour,
    Minute,
    Second,
    Millisecond,
}

fn digits(s: &str, n: usize) -> Option<u32> {
    if s.len() != n || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant).
fn days_from_civil(year: i32, month: u8, day: u8) -> i64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i32, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
    (year, month, day)
}

const MS_PER_DAY: i64 = 86_400_000;

impl Temporal {
    fn empty(kind: TemporalKind, precision: Precision) -> Self {
        Temporal {
            kind,
            year: 0,
            month: 0,
            day: 0,
            hour: 0,
            minute: 0,
            second: 0,
            millisecond: 0,
            precision,
            tz_offset: None,
        }
    }

    /// Parses `YYYY`, `YYYY-MM` or `YYYY-MM-DD`.
    pub fn parse_date(s: &str) -> Option<Self> {
        let mut t = Temporal::empty(TemporalKind::Date, Precision::Year);
        t.set_date(s)?;
        Some(t)
    }

    fn set_date(&mut self, s: &str) -> Option<()> {
        let mut parts = s.split('-');
        self.year = digits(parts.next()?, 4)? as i32;
        self.precision = Precision::Year;
        if let Some(m) = parts.next() {
            let month = digits(m, 2)? as u8;
            if !(1..=12).contains(&month) {
                return None;
            }
            self.month = month;
            self.precision = Precision::Month;
        }
        if let Some(d) = parts.next() {
            let day = digits(d, 2)? as u8;
            if day < 1 || day > days_in_month(self.year, self.month) {
                return None;
            }
            self.day = day;
            self.precision = Precision::Day;
        }
        if parts.next().is_some() {
            return None;
        }
        Some(())
    }

    /// Parses `hh`, `hh:mm`, `hh:mm:ss` or `hh:mm:ss.fff` (no zone).
    pub fn parse_time(s: &str) -> Option<Self> {
        let mut t = Temporal::empty(TemporalKind::Time, Precision::Hour);
        t.set_time(s)?;
        Some(t)
    }

    fn set_time(&mut self, s: &str) -> Option<()> {
        let (hms, frac) = match s.split_once('.') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let mut parts = hms.split(':');
        self.hour = digits(parts.next()?, 2)? as u8;
        self.precision = Precision::Hour;
        if let Some(m) = parts.next() {
            self.minute = digits(m, 2)? as u8;
            self.precision = Precision::Minute;
        }
        if let Some(sec) = parts.next() {
            self.second = digits(sec, 2)? as u8;
            self.precision = Precision::Second;
        }
        if parts.next().is_some() || self.hour > 23 || self.minute > 59 || self.second > 59 {
            return None;
        }
        if let Some(frac) = frac {
            if self.precision != Precision::Second
                || frac.is_empty()
                || !frac.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            // Only milliseconds are kept; further digits are truncated.
            let ms: String = frac.chars().chain("00".chars()).take(3).collect();
            self.millisecond = ms.parse().ok()?;
            self.precision = Precision::Millisecond;
        }
        Some(())
    }

    /// Parses a FHIR dateTime or FHIRPath DateTime literal body:
    /// `2015`, `2015T`, `2015-02-04T14`, `2015-02-04T14:34:28.123+10:00`.
    pub fn parse_datetime(s: &str) -> Option<Self> {
        let mut t = Temporal::empty(TemporalKind::DateTime, Precision::Year);
        let (date, rest) = match s.split_once('T') {
            Some((d, r)) => (d, Some(r)),
            None => (s, None),
        };
        t.set_date(date)?;
        let Some(rest) = rest else {
            return Some(t);
        };
        if rest.is_empty() {
            return Some(t);
        }
        if t.precision != Precision::Day {
            return None;
        }
        let (time, tz) = split_zone(rest);
        t.set_time(time)?;
        if let Some(tz) = tz {
            t.tz_offset = Some(parse_zone(tz)?);
        }
        Some(t)
    }

    /// Parses a FHIR `instant`/`dateTime`, `date` or `time` string by shape.
    pub fn parse_any(s: &str) -> Option<Self> {
        if s.contains('T') {
            Temporal::parse_datetime(s)
        } else if s.contains(':') {
            Temporal::parse_time(s)
        } else {
            Temporal::parse_date(s)
        }
    }

    /// Current UTC time from the system clock.
    pub fn now_utc() -> Self {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let mut t = Temporal::empty(TemporalKind::DateTime, Precision::Millisecond);
        t.set_from_epoch_ms(ms);
        t.tz_offset = Some(0);
        t
    }

    pub fn to_date(self) -> Self {
        let mut t = self;
        t.kind = TemporalKind::Date;
        t.precision = t.precision.min(Precision::Day);
        t.hour = 0;
        t.minute = 0;
        t.second = 0;
        t.millisecond = 0;
        t.tz_offset = None;
        t
    }

    pub fn to_datetime(self) -> Self {
        let mut t = self;
        if t.kind == TemporalKind::Date {
            t.kind = TemporalKind::DateTime;
        }
        t
    }

    /// Milliseconds since the epoch, for the fields present (local time).
    fn epoch_ms(&self) -> i64 {
        let month = if self.month == 0 { 1 } else { self.month };
        let day = if self.day == 0 { 1 } else { self.day };
        days_from_civil(self.year, month, day) * MS_PER_DAY
            + i64::from(self.hour) * 3_600_000
            + i64::from(self.minute) * 60_000
            + i64::from(self.second) * 1000
            + i64::from(self.millisecond)
    }

    fn set_from_epoch_ms(&mut self, ms: i64) {
        let days = ms.div_euclid(MS_PER_DAY);
        let rem = ms.rem_euclid(MS_PER_DAY);
        let (y, m, d) = civil_from_days(days);
        self.year = y;
        self.month = m;
        self.day = d;
        self.hour = (rem / 3_600_000) as u8;
        self.minute = (rem / 60_000 % 60) as u8;
        self.second = (rem / 1000 % 60) as u8;
        self.millisecond = (rem % 1000) as u16;
    }

    /// Shifts a zoned value with at least hour precision to UTC.
    fn to_utc(self) -> Self {
        match self.tz_offset {
            Some(off) if off != 0 && self.precision >= Precision::Hour => {
                let mut t = self;
                let ms = self.epoch_ms() - i64::from(off) * 60_000;
                t.set_from_epoch_ms(ms);
                t.tz_offset = Some(0);
                t
            }
            _ => self,
        }
    }

    /// FHIRPath comparison: `None` when the answer is unknown because the
    /// precisions differ over the compared part, or the kinds differ.
    pub fn compare(&self, other: &Temporal) -> Option<Ordering> {
        let (a, b) = match (self.kind, other.kind) {
            (TemporalKind::Time, TemporalKind::Time) => (*self, *other),
            (TemporalKind::Time, _) | (_, TemporalKind::Time) => return None,
            _ => (self.to_datetime(), other.to_datetime()),
        };
        let timed = a.precision >= Precision::Hour && b.precision >= Precision::Hour;
        let (a, b) = match (a.tz_offset.is_some(), b.tz_offset.is_some()) {
            (true, true) => (a.to_utc(), b.to_utc()),
            // One zoned and one local time: the instant is unknown.
            (true, false) | (false, true) if timed && a.kind != TemporalKind::Time => return None,
            _ => (a, b),
        };
        let common = a.precision.min(b.precision);
        for (level, x, y) in a.components(&b) {
            if level > common {
                break;
            }
            if x != y {
                return Some(x.cmp(&y));
            }
        }
        // Seconds and milliseconds count as one precision (seconds with a
        // fractional part), so 10:30:00 and 10:30:00.0 compare as equal.
        let norm = |p: Precision| p.min(Precision::Second);
        if norm(a.precision) == norm(b.precision) {
            Some(Ordering::Equal)
        } else {
            None
        }
    }

    fn components(&self, other: &Temporal) -> Vec<(Precision, i64, i64)> {
        let ms = |t: &Temporal| i64::from(t.second) * 1000 + i64::from(t.millisecond);
        let mut out = Vec::with_capacity(6);
        if self.kind != TemporalKind::Time {
            out.push((Precision::Year, i64::from(self.year), i64::from(other.year)));
            out.push((Precision::Month, self.month.into(), other.month.into()));
            out.push((Precision::Day, self.day.into(), other.day.into()));
        }
        out.push((Precision::Hour, self.hour.into(), other.hour.into()));
        out.push((Precision::Minute, self.minute.into(), other.minute.into()));
        out.push((Precision::Second, ms(self), ms(other)));
        out
    }

    /// Adds `amount` of `unit`; `None` when the result is out of range.
    pub fn add(&self, amount: i64, unit: CalendarUnit) -> Option<Self> {
        let mut t = *self;
        match unit {
            CalendarUnit::Year => {
                t.year = i32::try_from(i64::from(t.year).checked_add(amount)?).ok()?;
                t.clamp_day();
            }
            CalendarUnit::Month => {
                let total = i64::from(t.year) * 12 + i64::from(t.month.max(1)) - 1 + amount;
                t.year = i32::try_from(total.div_euclid(12)).ok()?;
                if t.precision >= Precision::Month {
                    t.month = (total.rem_euclid(12) + 1) as u8;
                }
                t.clamp_day();
            }
            _ => {
                let ms_per = match unit {
                    CalendarUnit::Week => 7 * MS_PER_DAY,
                    CalendarUnit::Day => MS_PER_DAY,
                    CalendarUnit::Hour => 3_600_000,
                    CalendarUnit::Minute => 60_000,
                    CalendarUnit::Second => 1000,
                    _ => 1,
                };
                let delta = amount.checked_mul(ms_per)?;
                let ms = if t.kind == TemporalKind::Time {
                    (t.epoch_ms() + delta).rem_euclid(MS_PER_DAY)
                } else {
                    t.epoch_ms().checked_add(delta)?
                };
                let (keep_y, keep_m, keep_d) = (t.year, t.month, t.day);
                t.set_from_epoch_ms(ms);
                if t.kind == TemporalKind::Time {
                    t.year = keep_y;
                    t.month = keep_m;
                    t.day = keep_d;
                }
                t.truncate_to_precision();
            }
        }
        if !(1..=9999).contains(&t.year) && t.kind != TemporalKind::Time {
            return None;
        }
        Some(t)
    }

    fn clamp_day(&mut self) {
        if self.precision >= Precision::Day {
            self.day = self.day.min(days_in_month(self.year, self.month));
        }
    }

    fn truncate_to_precision(&mut self) {
        let p = self.precision;
        if p < Precision::Month && self.kind != TemporalKind::Time {
            self.month = 0;
        }
        if p < Precision::Day && self.kind != TemporalKind::Time {
            self.day = 0;
        }
        if p < Precision::Hour {
            self.hour = 0;
        }
        if p < Precision::Minute {
            self.minute = 0;
        }
        if p < Precision::Second {
            self.second = 0;
        }
        if p < Precision::Millisecond {
            self.millisecond = 0;
        }
    }

    fn fmt_time(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}", self.hour)?;
        if self.precision >= Precision::Minute {
            write!(f, ":{:02}", self.minute)?;
        }
        if self.precision >= Precision::Second {
            write!(f, ":{:02}", self.second)?;
        }
        if self.precision >= Precision::Millisecond {
            write!(f, ".{:03}", self.millisecond)?;
        }
        Ok(())
    }

    fn fmt_date(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}", self.year)?;
        if self.precision >= Precision::Month {
            write!(f, "-{:02}", self.month)?;
        }
        if self.precision >= Precision::Day {
            write!(f, "-{:02}", self.day)?;
        }
        Ok(())
    }
}

fn split_zone(s: &str) -> (&str, Option<&str>) {
    if let Some(stripped) = s.strip_suffix('Z') {
        return (stripped, Some("Z"));
    }
    match s.find(['+', '-']) {
        Some(i) => (&s[..i], Some(&s[i..])),
        None => (s, None),
    }
}

fn parse_zone(tz: &str) -> Option<i32> {
    if tz == "Z" {
        return Some(0);
    }
    let sign = if tz.starts_with('-') { -1 } else { 1 };
    let (h, m) = tz.get(1..)?.split_once(':')?;
    let h = digits(h, 2)? as i32;
    let m = digits(m, 2)? as i32;
    if h > 14 || m > 59 {
        return None;
    }
    Some(sign * (h * 60 + m))
}

impl fmt::Display for Temporal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            TemporalKind::Date => self.fmt_date(f),
            TemporalKind::Time => self.fmt_time(f),
            TemporalKind::DateTime => {
                self.fmt_date(f)?;
                if self.precision >= Precision::Hour {
                    f.write_str("T")?;
                    self.fmt_time(f)?;
                    match self.tz_offset {
                        Some(0) => f.write_str("Z")?,
                        Some(off) => {
                            let sign = if off < 0 { '-' } else { '+' };
                            let off = off.abs();
                            write!(f, "{sign}{:02}:{:02}", off / 60, off % 60)?;
                        }
                        None => {}
                    }
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_partial_values() {
        assert_eq!(
            Temporal::parse_date("2014-03").unwrap().precision,
            Precision::Month
        );
        assert!(Temporal::parse_date("2014-02-30").is_none());
        assert!(Temporal::parse_date("14").is_none());
        let dt = Temporal::parse_datetime("2015-02-04T14:34:28.123+10:00").unwrap();
        assert_eq!(dt.tz_offset, Some(600));
        assert_eq!(dt.to_string(), "2015-02-04T14:34:28.123+10:00");
        assert!(Temporal::parse_datetime("2015T").is_some());
        assert!(Temporal::parse_time("25:00").is_none());
    }

    #[test]
    fn compares_with_zones_and_precision() {
        let a = Temporal::parse_datetime("2017-11-05T01:30:00.0-04:00").unwrap();
        let b = Temporal::parse_datetime("2017-11-05T00:30:00.0-05:00").unwrap();
        assert_eq!(a.compare(&b), Some(Ordering::Equal));
        let c = Temporal::parse_date("2018-03").unwrap();
        let d = Temporal::parse_date("2018-03-01").unwrap();
        assert_eq!(c.compare(&d), None);
        let e = Temporal::parse_date("2018-02").unwrap();
        assert_eq!(e.compare(&d), Some(Ordering::Less));
    }

    #[test]
    fn adds_calendar_units() {
        let d = Temporal::parse_date("1973-01-31").unwrap();
        assert_eq!(
            d.add(1, CalendarUnit::Month).unwrap().to_string(),
            "1973-02-28"
        );
        assert_eq!(
            d.add(-1, CalendarUnit::Year).unwrap().to_string(),
            "1972-01-31"
        );
        assert_eq!(
            d.add(7, CalendarUnit::Day).unwrap().to_string(),
            "1973-02-07"
        );
        assert!(d.add(i64::MAX, CalendarUnit::Day).is_none());
    }
}
