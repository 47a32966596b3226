//! Checks of FHIR R4 primitive values against their JSON representation and
//! the R4 regular expressions (http://hl7.org/fhir/R4/datatypes.html).

use regex::Regex;
use serde_json::Value;

/// Which JSON type a primitive must use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JsonKind {
    String,
    Number,
    Bool,
}

/// What is wrong with a primitive value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PrimError {
    /// Wrong JSON type: structure.
    JsonType(&'static str),
    Empty,
    Format(&'static str),
    /// Whitespace at the ends of a string: a warning.
    Whitespace,
}

pub(crate) fn is_primitive(code: &str) -> bool {
    json_kind(code).is_some()
}

pub(crate) fn json_kind(code: &str) -> Option<JsonKind> {
    Some(match code {
        "boolean" => JsonKind::Bool,
        "integer" | "decimal" | "positiveInt" | "unsignedInt" | "integer64" => JsonKind::Number,
        "string" | "code" | "id" | "markdown" | "uri" | "url" | "canonical" | "oid" | "uuid"
        | "date" | "dateTime" | "instant" | "time" | "base64Binary" | "xhtml" => JsonKind::String,
        _ => return None,
    })
}

/// Compiled R4 regexes, built once per validator.
pub(crate) struct PrimitiveRegexes {
    date: Regex,
    date_time: Regex,
    instant: Regex,
    time: Regex,
    oid: Regex,
    uuid: Regex,
    base64: Regex,
    id: Regex,
}

const YEAR: &str = "([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)";
const TZ: &str = r"(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))";
const HMS: &str = r"([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?";

impl PrimitiveRegexes {
    pub fn new() -> Result<PrimitiveRegexes, regex::Error> {
        let anchored = |s: &str| Regex::new(&format!("^(?:{s})$"));
        Ok(PrimitiveRegexes {
            date: anchored(&format!(
                "{YEAR}(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1]))?)?"
            ))?,
            date_time: anchored(&format!(
                "{YEAR}(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T{HMS}{TZ})?)?)?"
            ))?,
            instant: anchored(&format!(
                "{YEAR}-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])T{HMS}{TZ}"
            ))?,
            time: anchored(HMS)?,
            oid: anchored(r"urn:oid:[0-2](\.(0|[1-9][0-9]*))+")?,
            uuid: anchored(
                "urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
            )?,
            base64: anchored(r"(\s*([0-9a-zA-Z\+/=]){4}\s*)+")?,
            id: anchored(r"[A-Za-z0-9\-\.]{1,64}")?,
        })
    }

    /// Checks one primitive JSON value of FHIR type `code`.
    pub fn check(&self, code: &str, v: &Value) -> Result<(), PrimError> {
        let Some(kind) = json_kind(code) else {
            return Ok(());
        };
        match (kind, v) {
            (JsonKind::Bool, Value::Bool(_)) => Ok(()),
            (JsonKind::Number, Value::Number(n)) => check_number(code, n),
            (JsonKind::String, Value::String(s)) => self.check_string(code, s),
            (JsonKind::Bool, _) => Err(PrimError::JsonType("a JSON boolean (true or false)")),
            (JsonKind::Number, _) => Err(PrimError::JsonType("a JSON number")),
            (JsonKind::String, _) => Err(PrimError::JsonType("a JSON string")),
        }
    }

    fn check_string(&self, code: &str, s: &str) -> Result<(), PrimError> {
        if s.is_empty() {
            return Err(PrimError::Empty);
        }
        let ok = match code {
            "string" | "markdown" => return check_text(s),
            "xhtml" => true,
            "code" => is_code(s),
            "id" => self.id.is_match(s),
            "uri" | "url" | "canonical" => !s.chars().any(char::is_whitespace),
            "oid" => self.oid.is_match(s),
            "uuid" => self.uuid.is_match(s),
            "base64Binary" => self.base64.is_match(s),
            "time" => self.time.is_match(s),
            "date" => self.date.is_match(s) && valid_day(s),
            "dateTime" => self.date_time.is_match(s) && valid_day(s),
            "instant" => self.instant.is_match(s) && valid_day(s),
            _ => true,
        };
        if ok {
            Ok(())
        } else {
            Err(PrimError::Format(format_hint(code)))
        }
    }
}

/// What a valid value looks like, for the diagnostics.
fn format_hint(code: &str) -> &'static str {
    match code {
        "code" => "a code: no leading, trailing or double whitespace",
        "id" => "an id: 1-64 characters of A-Z, a-z, 0-9, '-' and '.'",
        "uri" | "url" | "canonical" => "a URI without whitespace",
        "oid" => "an OID like urn:oid:1.2.3",
        "uuid" => "a lower-case UUID like urn:uuid:c757873d-ec9a-4326-a141-556f43239520",
        "base64Binary" => "base64-encoded data",
        "time" => "a time hh:mm:ss",
        "date" => "a valid date YYYY, YYYY-MM or YYYY-MM-DD",
        "dateTime" => "a valid dateTime YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss+zz:zz (time zone required with a time)",
        "instant" => "a valid instant YYYY-MM-DDThh:mm:ss(.sss)+zz:zz (time zone required)",
        "integer" => "a whole number between -2147483648 and 2147483647",
        "positiveInt" => "a whole number of at least 1",
        "unsignedInt" => "a whole number of at least 0",
        "decimal" => "a decimal number",
        _ => "a valid value",
    }
}

fn check_number(code: &str, n: &serde_json::Number) -> Result<(), PrimError> {
    let int = n.as_i64();
    let ok = match code {
        "decimal" => n.as_f64().is_some_and(f64::is_finite),
        "integer" => int.is_some_and(|i| i32::try_from(i).is_ok()),
        "positiveInt" => int.is_some_and(|i| (1..=i64::from(i32::MAX)).contains(&i)),
        "unsignedInt" => int.is_some_and(|i| (0..=i64::from(i32::MAX)).contains(&i)),
        _ => int.is_some(),
    };
    if ok {
        Ok(())
    } else {
        Err(PrimError::Format(format_hint(code)))
    }
}

/// R4 `code`: `[^\s]+(\s[^\s]+)*` — no leading/trailing or doubled whitespace.
fn is_code(s: &str) -> bool {
    let mut prev_ws = true;
    for c in s.chars() {
        let ws = c.is_whitespace();
        if ws && prev_ws {
            return false;
        }
        prev_ws = ws;
    }
    !prev_ws
}

/// R4 `string`: `[ \r\n\t\S]+`; control characters are not allowed, and
/// leading/trailing whitespace is suspicious (a warning, as the reference
/// validator does).
fn check_text(s: &str) -> Result<(), PrimError> {
    if s.chars()
        .any(|c| c.is_whitespace() && !matches!(c, ' ' | '\r' | '\n' | '\t'))
        || s.chars()
            .any(|c| c.is_control() && !matches!(c, '\r' | '\n' | '\t'))
    {
        return Err(PrimError::Format("text without control characters"));
    }
    if s.trim().is_empty() {
        return Err(PrimError::Empty);
    }
    if s.starts_with(char::is_whitespace) || s.ends_with(char::is_whitespace) {
        return Err(PrimError::Whitespace);
    }
    Ok(())
}

/// The regexes allow day 31 in any month; reject impossible dates such as
/// 2023-02-30. Assumes the regex already matched (ASCII digits in place).
fn valid_day(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 10 {
        return true;
    }
    let num = |r: std::ops::Range<usize>| -> u32 {
        b[r].iter()
            .fold(0u32, |acc, d| acc * 10 + u32::from(d.wrapping_sub(b'0')))
    };
    let (year, month, day) = (num(0..4), num(5..7), num(8..10));
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let max = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    day <= max
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dates() {
        let r = PrimitiveRegexes::new().unwrap();
        assert!(r.check("date", &json!("2024-02-29")).is_ok());
        assert!(r.check("date", &json!("2023-02-29")).is_err());
        assert!(r.check("date", &json!("2024-13-45")).is_err());
        assert!(r
            .check("dateTime", &json!("2024-05-01T09:30:00+01:00"))
            .is_ok());
        assert!(r.check("dateTime", &json!("2024-05-01T09:30:00")).is_err());
        assert!(r
            .check("instant", &json!("2024-05-01T09:30:00.123Z"))
            .is_ok());
        assert!(r.check("instant", &json!("2024-05-01")).is_err());
    }

    #[test]
    fn codes_and_text() {
        let r = PrimitiveRegexes::new().unwrap();
        assert!(r.check("code", &json!("a b")).is_ok());
        assert!(r.check("code", &json!("a  b")).is_err());
        assert!(r.check("code", &json!(" a")).is_err());
        assert_eq!(r.check("string", &json!("")), Err(PrimError::Empty));
        assert_eq!(r.check("string", &json!(" x")), Err(PrimError::Whitespace));
        assert!(matches!(
            r.check("string", &json!(1)),
            Err(PrimError::JsonType(_))
        ));
        assert!(r.check("positiveInt", &json!(0)).is_err());
        assert!(r.check("integer", &json!(1.5)).is_err());
        assert!(r.check("decimal", &json!(1.5)).is_ok());
        assert!(r.check("id", &json!("a".repeat(65))).is_err());
    }
}
