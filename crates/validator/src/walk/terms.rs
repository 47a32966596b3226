//! Binding checks: is the coded value in the bound value set?

use serde_json::Value;

use super::{quote, Ov, Walker};
use crate::issue::{IssueCode, Severity};
use crate::model::{Binding, Strength};
use crate::terminology::{Expansion, Membership};

/// The (system, code) pairs a value of type `tcode` carries.
fn codings<'a>(tcode: &str, v: &'a Value) -> Vec<(Option<&'a str>, &'a str)> {
    let pair = |o: &'a Value| -> Option<(Option<&'a str>, &'a str)> {
        Some((
            o.get("system").and_then(Value::as_str),
            o.get("code")?.as_str()?,
        ))
    };
    match tcode {
        "code" | "string" | "uri" => v.as_str().map(|s| vec![(None, s)]).unwrap_or_default(),
        "Coding" | "Quantity" | "Age" | "Distance" | "Duration" | "Count" | "SimpleQuantity"
        | "MoneyQuantity" => pair(v).into_iter().collect(),
        "CodeableConcept" => v
            .get("coding")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(pair).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// A short list of the allowed codes for the diagnostics, when small.
fn allowed_list(exp: &Expansion) -> String {
    let total: usize = exp.codes.values().map(|s| s.len()).sum();
    if total == 0 || total > 20 || !exp.unknown_systems.is_empty() {
        return String::new();
    }
    let mut all: Vec<&str> = exp
        .codes
        .values()
        .flat_map(|s| s.iter().map(String::as_str))
        .collect();
    all.sort_unstable();
    all.dedup();
    format!(" (expected one of: {})", all.join(", "))
}

impl<'v, 'r> Walker<'v, 'r> {
    pub(super) fn binding(&mut self, b: &Binding, tcode: &str, v: &Value, profile: Option<&str>) {
        if b.strength == Strength::Example {
            return;
        }
        let cs = codings(tcode, v);
        if cs.is_empty() {
            return;
        }
        let Some(exp) = b.expansion.as_deref() else {
            if b.strength == Strength::Required {
                let msg = format!(
                    "{} is bound to value set {} which this validator does not have; the code was not checked",
                    self.path,
                    quote(&b.value_set)
                );
                self.report(
                    Severity::Warning,
                    IssueCode::NotSupported,
                    "valueset-unknown",
                    msg,
                    profile,
                );
            }
            return;
        };
        let results: Vec<Membership> = cs.iter().map(|(s, c)| exp.check_coding(*s, c)).collect();
        if results.contains(&Membership::In) {
            return;
        }
        let shown: Vec<String> = cs
            .iter()
            .map(|(s, c)| match s {
                Some(s) => format!("{s}#{c}"),
                None => format!("'{c}'"),
            })
            .collect();
        let shown = shown.join(", ");
        let vs = if b.additional {
            format!("{} (an additional binding)", b.value_set)
        } else {
            b.value_set.clone()
        };
        let unknown = results.contains(&Membership::Unknown);
        // FHIR R4 terminologies.html: a required binding admits only its codes (error); an
        // extensible one asks for a code from the set *if one fits* and allows any other code
        // otherwise, so a code outside it is a warning (as the HL7 validator reports it), even
        // from a system the set draws on; preferred is advice (information). A malformed coding
        // (no system, a system that is not a URI, an empty code) is caught by the type and
        // profile rules, not here.
        match b.strength {
            Strength::Required if unknown => {
                let msg = format!(
                    "{} code {shown} could not be checked against the required value set {}: the code system is not available to this validator",
                    self.path, vs
                );
                self.report(
                    Severity::Warning,
                    IssueCode::NotSupported,
                    "binding-unknown-system",
                    msg,
                    profile,
                );
            }
            Strength::Required => {
                let msg = format!(
                    "{} code {shown} is not in the required value set {}{}",
                    self.path,
                    vs,
                    allowed_list(exp)
                );
                self.report(
                    Severity::Error,
                    IssueCode::CodeInvalid,
                    "binding-required",
                    msg,
                    profile,
                );
            }
            Strength::Extensible => {
                let msg = format!(
                    "{} code {shown} is not in the extensible value set {}; a code from it should be used when one fits{}",
                    self.path,
                    vs,
                    allowed_list(exp)
                );
                self.report(
                    Severity::Warning,
                    IssueCode::CodeInvalid,
                    "binding-extensible",
                    msg,
                    profile,
                );
            }
            Strength::Preferred => {
                let msg = format!(
                    "{} code {shown} is not in the preferred value set {}",
                    self.path, vs
                );
                self.report(
                    Severity::Information,
                    IssueCode::CodeInvalid,
                    "binding-preferred",
                    msg,
                    profile,
                );
            }
            Strength::Example => {}
        }
    }

    /// Binding, fixed and pattern rules of the base element and the overlays.
    pub(super) fn value_rules(&mut self, child: Ov<'v>, tcode: &str, v: &Value, ovs: &[Ov<'v>]) {
        let base = child.node();
        if let Some(b) = &base.binding {
            self.binding(b, tcode, v, None);
        }
        for b in &base.additional_bindings {
            self.binding(b, tcode, v, None);
        }
        for ov in ovs {
            let n = ov.node();
            let url = ov.sd.url.as_str();
            if let Some(b) = &n.binding {
                self.binding(b, tcode, v, Some(url));
            }
            for b in &n.additional_bindings {
                self.binding(b, tcode, v, Some(url));
            }
            if let Some(f) = &n.fixed {
                if f != v {
                    let msg = format!(
                        "{} must be exactly {f} (profile {url}), found {v}",
                        self.path
                    );
                    self.report(
                        Severity::Error,
                        IssueCode::Value,
                        "fixed-value",
                        msg,
                        Some(url),
                    );
                }
            }
            if let (Some(min), Value::String(text)) = (n.min_length, v) {
                if text.chars().count() < min {
                    let msg = format!(
                        "{} is shorter than the minimum length {min} (profile {url})",
                        self.path
                    );
                    self.report(
                        Severity::Error,
                        IssueCode::Value,
                        "min-length",
                        msg,
                        Some(url),
                    );
                }
            }
            if let (Some(max), Value::String(text)) = (n.max_length, v) {
                if text.chars().count() > max {
                    let msg = format!(
                        "{} is longer than the maximum length {max} (profile {url})",
                        self.path
                    );
                    self.report(
                        Severity::Error,
                        IssueCode::Value,
                        "max-length",
                        msg,
                        Some(url),
                    );
                }
            }
            for (bound, is_min) in [(&n.min_value, true), (&n.max_value, false)] {
                let Some(bound) = bound else { continue };
                let ord = match duration_seconds(bound).filter(|_| v.is_string()) {
                    // A Duration bound on a date: relative to now (the HL7 validator reads
                    // `minValueDuration`/`maxValueDuration`, an R5 form, on R4 profiles).
                    Some(d) => compare_with_now(v, if is_min { -d } else { d }),
                    None => compare_values(v, bound),
                };
                if let Some(ord) = ord {
                    let bad = if is_min { ord.is_lt() } else { ord.is_gt() };
                    if bad {
                        let (id, word) = if is_min {
                            ("min-value", "less than the minimum")
                        } else {
                            ("max-value", "greater than the maximum")
                        };
                        let msg = format!(
                            "{} value {v} is {word} {bound} allowed by profile {url}",
                            self.path
                        );
                        self.report(Severity::Error, IssueCode::Value, id, msg, Some(url));
                    }
                }
            }
            if let Some(p) = &n.pattern {
                if !pattern_matches(p, v, 0) {
                    let msg = format!(
                        "{} must match the pattern {p} (profile {url}), found {v}",
                        self.path
                    );
                    self.report(
                        Severity::Error,
                        IssueCode::Value,
                        "pattern-value",
                        msg,
                        Some(url),
                    );
                }
            }
        }
    }
}

/// FHIR pattern semantics: every property in the pattern appears in the
/// value with a matching value; arrays: each pattern item matches some item.
pub(crate) fn pattern_matches(p: &Value, v: &Value, depth: usize) -> bool {
    if depth > 32 {
        return false;
    }
    match (p, v) {
        (Value::Object(po), Value::Object(vo)) => po.iter().all(|(k, pv)| {
            vo.get(k)
                .is_some_and(|vv| pattern_matches(pv, vv, depth + 1))
        }),
        (Value::Array(pa), Value::Array(va)) => pa
            .iter()
            .all(|pi| va.iter().any(|vi| pattern_matches(pi, vi, depth + 1))),
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => p == v,
    }
}

/// The length of a Duration bound (a Quantity in UCUM time units), in seconds.
fn duration_seconds(bound: &Value) -> Option<i64> {
    let b = bound.as_object()?;
    if b.get("system").and_then(Value::as_str) != Some("http://unitsofmeasure.org") {
        return None;
    }
    let per_unit = match b.get("code").and_then(Value::as_str)? {
        "a" => 31_557_600.0, // the Julian year, as UCUM defines `a`
        "mo" => 2_629_800.0, // a twelfth of it
        "wk" => 604_800.0,
        "d" => 86_400.0,
        "h" => 3_600.0,
        "min" => 60.0,
        "s" => 1.0,
        _ => return None,
    };
    let seconds = b.get("value")?.as_f64()? * per_unit;
    seconds.is_finite().then_some(seconds as i64)
}

/// Orders a date/dateTime value against now shifted by `offset` seconds.
fn compare_with_now(v: &Value, offset: i64) -> Option<std::cmp::Ordering> {
    let at = super::native::earliest_epoch_seconds(v.as_str()?)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_secs()).ok())?;
    Some(at.cmp(&now.saturating_add(offset)))
}

/// Orders a value against a minValue/maxValue bound: numbers, ISO dates and
/// times (same precision), and Quantities with the same unit or a metric
/// prefix of the same UCUM unit. `None` when they cannot be compared.
fn compare_values(v: &Value, bound: &Value) -> Option<std::cmp::Ordering> {
    match (v, bound) {
        (Value::Number(a), Value::Number(b)) => a.as_f64()?.partial_cmp(&b.as_f64()?),
        (Value::String(a), Value::String(b)) => {
            // Compare at the shorter precision; different precisions that
            // agree on the common prefix are not comparable.
            let n = a.len().min(b.len());
            let ord = a.get(..n)?.cmp(b.get(..n)?);
            if ord.is_eq() && a.len() != b.len() {
                None
            } else {
                Some(ord)
            }
        }
        (Value::Object(a), Value::Object(b)) => {
            let (av, au) = (
                a.get("value")?.as_f64()?,
                a.get("code").and_then(Value::as_str),
            );
            let (bv, bu) = (
                b.get("value")?.as_f64()?,
                b.get("code").and_then(Value::as_str),
            );
            let (av, bv) = match (au, bu) {
                (Some(x), Some(y)) if x != y => {
                    let (fx, ux) = ucum_scale(x)?;
                    let (fy, uy) = ucum_scale(y)?;
                    if ux != uy {
                        return None;
                    }
                    (av * fx, bv * fy)
                }
                _ => (av, bv),
            };
            av.partial_cmp(&bv)
        }
        _ => None,
    }
}

/// A UCUM unit split into a metric prefix factor and its base unit, for the
/// common prefixes only.
fn ucum_scale(unit: &str) -> Option<(f64, &str)> {
    const BASES: [&str; 5] = ["g", "m", "L", "s", "mol"];
    if BASES.contains(&unit) {
        return Some((1.0, unit));
    }
    let prefixes: [(&str, f64); 6] = [
        ("k", 1e3),
        ("d", 1e-1),
        ("c", 1e-2),
        ("m", 1e-3),
        ("u", 1e-6),
        ("n", 1e-9),
    ];
    for (p, f) in prefixes {
        if let Some(base) = unit.strip_prefix(p) {
            if BASES.contains(&base) {
                return Some((f, base));
            }
        }
    }
    None
}
