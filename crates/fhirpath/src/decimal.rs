//! A small fixed-point decimal.
//!
//! FHIRPath decimals are exact (`1.8 - 1.2 = 0.6` must hold) and keep their
//! scale (`1.58700.precision()` is 5), which binary floats cannot do. An
//! `i128` mantissa with a base-10 scale covers FHIR's needs (the spec asks
//! for at least 28 significant digits) without pulling in a bignum crate.

use std::cmp::Ordering;
use std::fmt;

/// Scale used for quotients that do not terminate (`1 / 3`).
const DIVISION_SCALE: u32 = 16;
/// Beyond this many fractional digits results are rounded back.
const MAX_SCALE: u32 = 28;

#[derive(Clone, Copy, Debug)]
pub struct Decimal {
    mantissa: i128,
    scale: u32,
}

fn pow10(exp: u32) -> Option<i128> {
    10i128.checked_pow(exp)
}

impl Decimal {
    pub fn from_i64(v: i64) -> Self {
        Decimal {
            mantissa: i128::from(v),
            scale: 0,
        }
    }

    pub fn new(mantissa: i128, scale: u32) -> Self {
        Decimal { mantissa, scale }
    }

    /// Parses `-12.340` style text (no exponent, as in FHIRPath literals).
    pub fn parse(text: &str) -> Option<Self> {
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let (int_part, frac_part) = match digits.split_once('.') {
            Some((i, f)) => (i, f),
            None => (digits, ""),
        };
        let valid = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if int_part.is_empty() || !valid(int_part) || !valid(frac_part) {
            return None;
        }
        if digits.contains('.') && frac_part.is_empty() {
            return None;
        }
        let mut mantissa: i128 = 0;
        for b in int_part.bytes().chain(frac_part.bytes()) {
            mantissa = mantissa
                .checked_mul(10)?
                .checked_add(i128::from(b - b'0'))?;
        }
        let scale = u32::try_from(frac_part.len()).ok()?;
        Some(Decimal {
            mantissa: if negative { -mantissa } else { mantissa },
            scale,
        })
        .filter(|d| d.scale <= 2 * MAX_SCALE)
    }

    /// Converts a JSON/float number through its shortest decimal rendering,
    /// so `0.1` stays `0.1` rather than its binary approximation.
    pub fn from_f64(v: f64) -> Option<Self> {
        if !v.is_finite() {
            return None;
        }
        let text = format!("{v}");
        let d = Decimal::parse(&text)?;
        Some(d.round_to_max_scale())
    }

    pub fn to_f64(self) -> f64 {
        // Precision loss is acceptable here: only used for transcendental
        // functions (sqrt, ln, exp, power) which are inexact anyway.
        self.mantissa as f64 / 10f64.powi(self.scale as i32)
    }

    pub fn mantissa(self) -> i128 {
        self.mantissa
    }

    pub fn scale(self) -> u32 {
        self.scale
    }

    pub fn is_zero(self) -> bool {
        self.mantissa == 0
    }

    pub fn is_negative(self) -> bool {
        self.mantissa < 0
    }

    /// Integer value when the decimal has no fractional part.
    pub fn to_i64_exact(self) -> Option<i64> {
        let p = pow10(self.scale)?;
        if self.mantissa % p != 0 {
            return None;
        }
        i64::try_from(self.mantissa / p).ok()
    }

    fn rescale(self, scale: u32) -> Option<i128> {
        if scale < self.scale {
            return None;
        }
        self.mantissa.checked_mul(pow10(scale - self.scale)?)
    }

    fn aligned(self, other: Decimal) -> Option<(i128, i128, u32)> {
        let scale = self.scale.max(other.scale);
        Some((self.rescale(scale)?, other.rescale(scale)?, scale))
    }

    pub fn checked_add(self, other: Decimal) -> Option<Decimal> {
        let (a, b, scale) = self.aligned(other)?;
        Some(Decimal::new(a.checked_add(b)?, scale))
    }

    pub fn checked_sub(self, other: Decimal) -> Option<Decimal> {
        let (a, b, scale) = self.aligned(other)?;
        Some(Decimal::new(a.checked_sub(b)?, scale))
    }

    pub fn checked_mul(self, other: Decimal) -> Option<Decimal> {
        let m = self.mantissa.checked_mul(other.mantissa)?;
        Some(Decimal::new(m, self.scale + other.scale).round_to_max_scale())
    }

    /// Division; `None` on division by zero or overflow.
    pub fn checked_div(self, other: Decimal) -> Option<Decimal> {
        if other.mantissa == 0 {
            return None;
        }
        // a/10^sa / (b/10^sb) = a*10^(sb + S - sa) / b / 10^S
        let shift = (other.scale + DIVISION_SCALE).checked_sub(self.scale);
        let numerator = match shift {
            Some(s) => self.mantissa.checked_mul(pow10(s)?)?,
            None => self.mantissa / pow10(self.scale - other.scale - DIVISION_SCALE)?,
        };
        Some(Decimal::new(numerator / other.mantissa, DIVISION_SCALE).normalized())
    }

    /// Truncated integer division (FHIRPath `div`).
    pub fn checked_div_trunc(self, other: Decimal) -> Option<Decimal> {
        let (a, b, _) = self.aligned(other)?;
        if b == 0 {
            return None;
        }
        Some(Decimal::new(a / b, 0))
    }

    /// Remainder with the sign of the dividend (FHIRPath `mod`).
    pub fn checked_rem(self, other: Decimal) -> Option<Decimal> {
        let (a, b, scale) = self.aligned(other)?;
        if b == 0 {
            return None;
        }
        Some(Decimal::new(a % b, scale))
    }

    pub fn abs(self) -> Decimal {
        Decimal::new(self.mantissa.abs(), self.scale)
    }

    /// Drops trailing fractional zeros (used after division only; literals
    /// keep their written scale).
    pub fn normalized(self) -> Decimal {
        let mut d = self;
        while d.scale > 0 && d.mantissa % 10 == 0 {
            d.mantissa /= 10;
            d.scale -= 1;
        }
        d
    }

    fn round_to_max_scale(self) -> Decimal {
        if self.scale > MAX_SCALE {
            self.round(MAX_SCALE).unwrap_or(self)
        } else {
            self
        }
    }

    /// Rounds half away from zero to `digits` fractional digits.
    pub fn round(self, digits: u32) -> Option<Decimal> {
        if digits >= self.scale {
            return Some(self);
        }
        let p = pow10(self.scale - digits)?;
        let q = self.mantissa / p;
        let r = self.mantissa % p;
        let adjust = if r.abs() * 2 >= p { r.signum() } else { 0 };
        Some(Decimal::new(q + adjust, digits))
    }

    pub fn floor(self) -> Option<Decimal> {
        let p = pow10(self.scale)?;
        let q = self.mantissa.div_euclid(p);
        Some(Decimal::new(q, 0))
    }

    pub fn ceiling(self) -> Option<Decimal> {
        let p = pow10(self.scale)?;
        let q = self.mantissa.div_euclid(p);
        let extra = i128::from(self.mantissa.rem_euclid(p) != 0);
        Some(Decimal::new(q + extra, 0))
    }

    pub fn truncate(self) -> Option<Decimal> {
        let p = pow10(self.scale)?;
        Some(Decimal::new(self.mantissa / p, 0))
    }

    /// The integral part as i64 if it fits.
    pub fn to_i64_trunc(self) -> Option<i64> {
        let p = pow10(self.scale)?;
        i64::try_from(self.mantissa / p).ok()
    }
}

impl std::ops::Neg for Decimal {
    type Output = Decimal;

    fn neg(self) -> Decimal {
        Decimal::new(-self.mantissa, self.scale)
    }
}

impl PartialEq for Decimal {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Decimal {}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Decimal {
    fn cmp(&self, other: &Self) -> Ordering {
        match self.aligned(*other) {
            Some((a, b, _)) => a.cmp(&b),
            // Overflow while aligning: fall back to float comparison.
            None => self
                .to_f64()
                .partial_cmp(&other.to_f64())
                .unwrap_or(Ordering::Equal),
        }
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.mantissa.unsigned_abs().to_string();
        let sign = if self.mantissa < 0 { "-" } else { "" };
        let scale = self.scale as usize;
        if scale == 0 {
            return write!(f, "{sign}{digits}");
        }
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (int_part, frac_part) = padded.split_at(padded.len() - scale);
        write!(f, "{sign}{int_part}.{frac_part}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::parse(s).unwrap()
    }

    #[test]
    fn parses_and_prints() {
        assert_eq!(d("1.50").to_string(), "1.50");
        assert_eq!(d("-0.05").to_string(), "-0.05");
        assert_eq!(d("12").to_string(), "12");
        assert!(Decimal::parse("1.").is_none());
        assert!(Decimal::parse("a").is_none());
        assert!(Decimal::parse("").is_none());
    }

    #[test]
    fn exact_arithmetic() {
        assert_eq!(d("1.8").checked_sub(d("1.2")).unwrap(), d("0.6"));
        assert_eq!(d("1.2").checked_mul(d("1.8")).unwrap(), d("2.16"));
        assert_eq!(d("1").checked_div(d("2")).unwrap().to_string(), "0.5");
        assert!(d("1").checked_div(d("0")).is_none());
        assert_eq!(d("2.2").checked_div_trunc(d("1.8")).unwrap(), d("1"));
        assert_eq!(d("5.5").checked_rem(d("0.7")).unwrap(), d("0.6"));
    }

    #[test]
    fn rounding() {
        assert_eq!(d("3.14159").round(3).unwrap().to_string(), "3.142");
        assert_eq!(d("-2.1").floor().unwrap(), d("-3"));
        assert_eq!(d("1.1").ceiling().unwrap(), d("2"));
        assert_eq!(d("-1.56").truncate().unwrap(), d("-1"));
        assert_ne!(d("1.10"), d("1.2"));
        assert_eq!(d("1.10"), d("1.1"));
    }

    #[test]
    fn float_round_trip() {
        assert_eq!(Decimal::from_f64(0.1).unwrap().to_string(), "0.1");
        assert!(Decimal::from_f64(f64::NAN).is_none());
    }
}
