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

/// The FHIR R4 primitive types, resolved once at load so the walk does not
/// compare type names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prim {
    Boolean,
    Integer,
    Decimal,
    PositiveInt,
    UnsignedInt,
    Integer64,
    String,
    Code,
    Id,
    Markdown,
    Uri,
    Url,
    Canonical,
    Oid,
    Uuid,
    Date,
    DateTime,
    Instant,
    Time,
    Base64Binary,
    Xhtml,
}

impl Prim {
    pub fn from_code(code: &str) -> Option<Prim> {
        Some(match code {
            "boolean" => Prim::Boolean,
            "integer" => Prim::Integer,
            "decimal" => Prim::Decimal,
            "positiveInt" => Prim::PositiveInt,
            "unsignedInt" => Prim::UnsignedInt,
            "integer64" => Prim::Integer64,
            "string" => Prim::String,
            "code" => Prim::Code,
            "id" => Prim::Id,
            "markdown" => Prim::Markdown,
            "uri" => Prim::Uri,
            "url" => Prim::Url,
            "canonical" => Prim::Canonical,
            "oid" => Prim::Oid,
            "uuid" => Prim::Uuid,
            "date" => Prim::Date,
            "dateTime" => Prim::DateTime,
            "instant" => Prim::Instant,
            "time" => Prim::Time,
            "base64Binary" => Prim::Base64Binary,
            "xhtml" => Prim::Xhtml,
            _ => return None,
        })
    }

    pub fn code(self) -> &'static str {
        match self {
            Prim::Boolean => "boolean",
            Prim::Integer => "integer",
            Prim::Decimal => "decimal",
            Prim::PositiveInt => "positiveInt",
            Prim::UnsignedInt => "unsignedInt",
            Prim::Integer64 => "integer64",
            Prim::String => "string",
            Prim::Code => "code",
            Prim::Id => "id",
            Prim::Markdown => "markdown",
            Prim::Uri => "uri",
            Prim::Url => "url",
            Prim::Canonical => "canonical",
            Prim::Oid => "oid",
            Prim::Uuid => "uuid",
            Prim::Date => "date",
            Prim::DateTime => "dateTime",
            Prim::Instant => "instant",
            Prim::Time => "time",
            Prim::Base64Binary => "base64Binary",
            Prim::Xhtml => "xhtml",
        }
    }

    fn json_kind(self) -> JsonKind {
        match self {
            Prim::Boolean => JsonKind::Bool,
            Prim::Integer
            | Prim::Decimal
            | Prim::PositiveInt
            | Prim::UnsignedInt
            | Prim::Integer64 => JsonKind::Number,
            _ => JsonKind::String,
        }
    }
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
        })
    }

    /// Checks one primitive JSON value.
    pub fn check(&self, p: Prim, v: &Value) -> Result<(), PrimError> {
        match (p.json_kind(), v) {
            (JsonKind::Bool, Value::Bool(_)) => Ok(()),
            (JsonKind::Number, Value::Number(n)) => check_number(p, n),
            (JsonKind::String, Value::String(s)) => self.check_string(p, s),
            (JsonKind::Bool, _) => Err(PrimError::JsonType("a JSON boolean (true or false)")),
            (JsonKind::Number, _) => Err(PrimError::JsonType("a JSON number")),
            (JsonKind::String, _) => Err(PrimError::JsonType("a JSON string")),
        }
    }

    /// As `check`, by type name (unknown names pass).
    #[cfg(test)]
    pub fn check_code(&self, code: &str, v: &Value) -> Result<(), PrimError> {
        match Prim::from_code(code) {
            Some(p) => self.check(p, v),
            None => Ok(()),
        }
    }

    pub fn is_uuid(&self, s: &str) -> bool {
        self.uuid.is_match(s)
    }

    pub fn is_oid(&self, s: &str) -> bool {
        self.oid.is_match(s)
    }

    fn check_string(&self, p: Prim, s: &str) -> Result<(), PrimError> {
        if s.is_empty() {
            return Err(PrimError::Empty);
        }
        // R4: "strings SHALL NOT exceed 1MB in size" (base64Binary has no such limit).
        if s.len() > MAX_STRING_BYTES && p != Prim::Base64Binary {
            return Err(PrimError::Format(
                "a value of at most 1 MB (1,048,576 bytes): it is longer",
            ));
        }
        let ok = match p {
            Prim::String | Prim::Markdown => return check_text(s),
            Prim::Code => is_code(s),
            Prim::Id => is_id(s),
            // A URN that says it is a UUID or an OID must be one (as the HL7 validator checks).
            Prim::Uri | Prim::Url | Prim::Canonical if s.starts_with("urn:uuid:") => {
                return if self.uuid.is_match(s) {
                    Ok(())
                } else {
                    Err(PrimError::Format(format_hint("uuid")))
                };
            }
            Prim::Uri | Prim::Url | Prim::Canonical if s.starts_with("urn:oid:") => {
                return if self.oid.is_match(s) {
                    Ok(())
                } else {
                    Err(PrimError::Format(format_hint("oid")))
                };
            }
            Prim::Uri | Prim::Url | Prim::Canonical if s.is_ascii() => {
                !s.as_bytes().iter().any(is_space)
            }
            Prim::Uri | Prim::Url | Prim::Canonical => !s.chars().any(char::is_whitespace),
            Prim::Oid => self.oid.is_match(s),
            Prim::Uuid => self.uuid.is_match(s),
            Prim::Base64Binary => self.base64.is_match(s),
            Prim::Time => self.time.is_match(s),
            Prim::Date => self.date.is_match(s) && valid_day(s),
            Prim::DateTime => self.date_time.is_match(s) && valid_day(s),
            Prim::Instant => self.instant.is_match(s) && valid_day(s),
            _ => true,
        };
        if ok {
            Ok(())
        } else {
            Err(PrimError::Format(format_hint(p.code())))
        }
    }
}

/// The R4 size limit of a string value.
const MAX_STRING_BYTES: usize = 1_048_576;

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

fn check_number(p: Prim, n: &serde_json::Number) -> Result<(), PrimError> {
    let int = n.as_i64();
    let ok = match p {
        Prim::Decimal => n.as_f64().is_some_and(f64::is_finite),
        Prim::Integer => int.is_some_and(|i| i32::try_from(i).is_ok()),
        Prim::PositiveInt => int.is_some_and(|i| (1..=i64::from(i32::MAX)).contains(&i)),
        Prim::UnsignedInt => int.is_some_and(|i| (0..=i64::from(i32::MAX)).contains(&i)),
        _ => int.is_some(),
    };
    if ok {
        Ok(())
    } else {
        Err(PrimError::Format(format_hint(p.code())))
    }
}

/// R4 `id`: `[A-Za-z0-9\-\.]{1,64}`.
fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// R4 `code`: `[^\s]+(\s[^\s]+)*` — no leading/trailing or doubled whitespace.
fn is_code(s: &str) -> bool {
    if s.is_ascii() {
        // Bytes, not chars: most codes are short ASCII, and decoding each char cost more than
        // the test.
        let bytes = s.as_bytes();
        return !bytes.is_empty()
            && !bytes.first().is_some_and(is_space)
            && !bytes.last().is_some_and(is_space)
            && !bytes.windows(2).any(|w| is_space(&w[0]) && is_space(&w[1]));
    }
    is_code_chars(s)
}

/// What `char::is_whitespace` says of an ASCII byte (`u8::is_ascii_whitespace` leaves out VT).
fn is_space(b: &u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r')
}

fn is_code_chars(s: &str) -> bool {
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

/// `check_text` for ASCII: byte tests the compiler can run many at a time. `is_whitespace` and
/// `is_control` agree with these on ASCII (space, tab, LF, VT, FF, CR are whitespace; below 0x20
/// and 0x7F are control).
fn check_ascii_text(bytes: &[u8]) -> Result<(), PrimError> {
    let allowed = |b: u8| matches!(b, b' ' | b'\r' | b'\n' | b'\t') || !b.is_ascii_control();
    if !bytes.iter().all(|&b| allowed(b)) {
        return Err(PrimError::Format("text without control characters"));
    }
    if bytes.iter().all(is_space) {
        return Err(PrimError::Empty);
    }
    if bytes.first().is_some_and(is_space) || bytes.last().is_some_and(is_space) {
        return Err(PrimError::Whitespace);
    }
    Ok(())
}

/// R4 `string`: `[ \r\n\t\S]+`; control characters are not allowed, and
/// leading/trailing whitespace is suspicious (a warning, as the reference
/// validator does).
fn check_text(s: &str) -> Result<(), PrimError> {
    if s.is_ascii() {
        return check_ascii_text(s.as_bytes());
    }
    check_text_chars(s)
}

/// One pass over the chars, for text with other letters (Siân, Llŷr).
fn check_text_chars(s: &str) -> Result<(), PrimError> {
    let mut only_space = true;
    for c in s.chars() {
        let allowed = match c {
            ' ' | '\r' | '\n' | '\t' => true,
            c if c.is_ascii() => !c.is_ascii_control(),
            // `\S` in the R4 regex is Java's: only ASCII counts as whitespace, so a no-break
            // space (U+00A0, common in text pasted from word processors) is allowed.
            c => !c.is_control(),
        };
        if !allowed {
            return Err(PrimError::Format("text without control characters"));
        }
        only_space &= c.is_whitespace();
    }
    if only_space {
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
    /// The byte paths for ASCII say what the char paths say, for every string of up to four
    /// bytes over the characters that decide (spaces, controls, a letter).
    #[test]
    fn ascii_shortcuts_agree_with_the_char_rules() {
        let alphabet = [
            b' ', b'\t', b'\n', b'\r', 0x0B, 0x0C, 0x01, 0x7F, b'a', b'#',
        ];
        let mut strings = vec![String::new()];
        for _ in 0..4 {
            let longer: Vec<String> = strings
                .iter()
                .flat_map(|s| alphabet.iter().map(move |&b| format!("{s}{}", b as char)))
                .collect();
            strings.extend(longer);
        }
        for s in &strings {
            let text = |r: Result<(), PrimError>| format!("{r:?}");
            assert_eq!(
                text(check_ascii_text(s.as_bytes())),
                text(check_text_chars(s)),
                "{s:?}"
            );
            assert_eq!(is_code(s), is_code_chars(s), "{s:?}");
            let uri_ascii = !s.as_bytes().iter().any(is_space);
            assert_eq!(uri_ascii, !s.chars().any(char::is_whitespace), "{s:?}");
        }
    }

    use super::*;
    use serde_json::json;

    #[test]
    fn dates() {
        let r = PrimitiveRegexes::new().unwrap();
        assert!(r.check_code("date", &json!("2024-02-29")).is_ok());
        assert!(r.check_code("date", &json!("2023-02-29")).is_err());
        assert!(r.check_code("date", &json!("2024-13-45")).is_err());
        assert!(r
            .check_code("dateTime", &json!("2024-05-01T09:30:00+01:00"))
            .is_ok());
        assert!(r
            .check_code("dateTime", &json!("2024-05-01T09:30:00"))
            .is_err());
        assert!(r
            .check_code("instant", &json!("2024-05-01T09:30:00.123Z"))
            .is_ok());
        assert!(r.check_code("instant", &json!("2024-05-01")).is_err());
    }

    #[test]
    fn codes_and_text() {
        let r = PrimitiveRegexes::new().unwrap();
        assert!(r.check_code("code", &json!("a b")).is_ok());
        assert!(r.check_code("code", &json!("a  b")).is_err());
        assert!(r.check_code("code", &json!(" a")).is_err());
        assert_eq!(r.check_code("string", &json!("")), Err(PrimError::Empty));
        assert_eq!(
            r.check_code("string", &json!(" x")),
            Err(PrimError::Whitespace)
        );
        assert!(matches!(
            r.check_code("string", &json!(1)),
            Err(PrimError::JsonType(_))
        ));
        assert!(r.check_code("positiveInt", &json!(0)).is_err());
        assert!(r.check_code("integer", &json!(1.5)).is_err());
        assert!(r.check_code("decimal", &json!(1.5)).is_ok());
        assert!(r.check_code("id", &json!("a".repeat(65))).is_err());
        // Control characters are refused (but tab and line breaks); Unicode spaces inside are
        // text, as Java's `\S` in the R4 regex has it.
        assert!(r.check_code("string", &json!("a\u{1}b")).is_err());
        assert!(r.check_code("string", &json!("Siân\u{85}")).is_err());
        assert!(r.check_code("string", &json!("a\tb\r\nc")).is_ok());
        assert!(r.check_code("string", &json!("Llŷr\u{a0}Hall")).is_ok());
        assert!(r.check_code("string", &json!("10\u{202f}000")).is_ok());
    }
}
