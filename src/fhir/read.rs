//! Reading request bodies: media types, JSON and XML, and the depth limit.

use serde_json::Value;

/// A FHIR wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Xml,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/fhir+json; charset=utf-8",
            Format::Xml => "application/fhir+xml; charset=utf-8",
        }
    }

    /// Reads a media type or a `_format` value (`json`, `xml`, `application/fhir+json`…).
    /// Parameters such as `charset` and `fhirVersion` are ignored unless they name another version.
    pub fn from_media_type(raw: &str) -> Option<Format> {
        let mut parts = raw.split(';');
        let essence = parts.next()?.trim().to_ascii_lowercase();
        let other_version = parts.any(|param| {
            param
                .trim()
                .strip_prefix("fhirVersion=")
                .is_some_and(|v| !v.starts_with("4.0"))
        });
        if other_version {
            return None;
        }
        match essence.as_str() {
            "application/fhir+json" | "application/json" | "application/json+fhir" | "json" => {
                Some(Format::Json)
            }
            "application/fhir+xml"
            | "application/xml"
            | "application/xml+fhir"
            | "text/xml"
            | "xml" => Some(Format::Xml),
            _ => None,
        }
    }

    /// The response format: `_format` wins over `Accept`; JSON when neither names one we speak.
    /// `Accept` may list several types with q-values; the first one we support is taken.
    pub fn negotiate(format_param: Option<&str>, accept: Option<&str>) -> Result<Format, String> {
        if let Some(raw) = format_param {
            return Format::from_media_type(raw).ok_or_else(|| raw.to_string());
        }
        let Some(accept) = accept else {
            return Ok(Format::Json);
        };
        let mut wildcard = false;
        for item in accept.split(',') {
            let media = item.split(';').next().unwrap_or("").trim();
            if let Some(format) = Format::from_media_type(item.trim()) {
                return Ok(format);
            }
            if matches!(media, "*/*" | "application/*" | "") {
                wildcard = true;
            }
        }
        if wildcard {
            Ok(Format::Json)
        } else {
            Err(accept.to_string())
        }
    }
}

/// Why a body could not be read as FHIR.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the body is empty")]
    Empty,
    #[error("the body is not valid JSON (line {line}, column {column}): {message}")]
    Json {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("the body is not UTF-8 text")]
    NotUtf8,
    #[error("{0}")]
    Xml(String),
    #[error("the JSON is nested {depth} levels deep; the limit is {limit}")]
    TooDeep { depth: usize, limit: usize },
    #[error("a FHIR resource is a JSON object with a resourceType; this body is not")]
    NotAResource,
}

/// Parses a request body into the JSON tree of a resource.
///
/// XML goes through fhirbolt into the same JSON tree, so everything after this point sees one
/// representation. The depth check runs before validation so no later walk can be driven deep.
pub fn parse_body(bytes: &[u8], format: Format, max_depth: usize) -> Result<Value, ReadError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ReadError::Empty);
    }
    let value = match format {
        Format::Json => parse_json(bytes)?,
        Format::Xml => {
            let text = std::str::from_utf8(bytes).map_err(|_| ReadError::NotUtf8)?;
            // The same depth limit as JSON, checked by a streaming scan before fhirbolt (which
            // recurses) builds anything.
            let limits = fhir_model::XmlLimits {
                max_depth,
                ..fhir_model::XmlLimits::default()
            };
            fhir_model::xml_to_json_within(text, limits)
                .map_err(|e| ReadError::Xml(e.to_string()))?
        }
    };
    let depth = json_depth(&value);
    if depth > max_depth {
        return Err(ReadError::TooDeep {
            depth,
            limit: max_depth,
        });
    }
    match value.get("resourceType") {
        Some(Value::String(_)) => Ok(value),
        _ => Err(ReadError::NotAResource),
    }
}

fn parse_json(bytes: &[u8]) -> Result<Value, ReadError> {
    // serde_json stops at 128 levels of nesting on its own, so hostile input cannot overflow the stack.
    // Parsed as text once the whole body is known to be UTF-8: from bytes, serde_json checks every
    // string on its own, which cost more than this one pass. Bytes that are not UTF-8 still go
    // to serde_json, so its error (with line and column) is what the client hears.
    let parsed = match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::from_str::<Unique>(text),
        Err(_) => serde_json::from_slice::<Unique>(bytes),
    };
    parsed.map(|u| u.0).map_err(|e| ReadError::Json {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })
}

/// A JSON tree read with one rule more than serde_json's own: an object may not name a key twice.
/// serde_json keeps the last of two, so `{"status": "active", "status": "revoked"}` would mean
/// one thing to us and maybe another to the GP system's log or a validator downstream; the
/// stored body must mean one thing, so such a body is refused (400).
struct Unique(Value);

impl<'de> serde::Deserialize<'de> for Unique {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueVisitor).map(Unique)
    }
}

struct UniqueVisitor;

/// serde_json's name for a number carried as text (its `number::TOKEN`).
const ARBITRARY_PRECISION_TOKEN: &str = "$serde_json::private::Number";

impl<'de> serde::de::Visitor<'de> for UniqueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(Unique(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            // fhirbolt turns on serde_json's arbitrary_precision: a number then arrives as a
            // one-entry map under this token, holding the number's text (as serde_json's own
            // Value visitor reads it), so decimals keep their precision (1.50 stays 1.50).
            if object.is_empty() && key == ARBITRARY_PRECISION_TOKEN {
                let text: String = map.next_value()?;
                let number = text.parse().map_err(serde::de::Error::custom)?;
                return Ok(Value::Number(number));
            }
            let Unique(value) = map.next_value()?;
            match object.entry(key) {
                serde_json::map::Entry::Vacant(slot) => {
                    slot.insert(value);
                }
                serde_json::map::Entry::Occupied(slot) => {
                    return Err(serde::de::Error::custom(format!(
                        "the key {:?} appears twice in one object",
                        slot.key()
                    )));
                }
            }
        }
        Ok(Value::Object(object))
    }
}

/// The nesting depth of a JSON tree, measured without recursion.
pub fn json_depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 1usize)];
    while let Some((node, depth)) = stack.pop() {
        deepest = deepest.max(depth);
        match node {
            Value::Array(items) => stack.extend(items.iter().map(|v| (v, depth + 1))),
            Value::Object(map) => stack.extend(map.values().map(|v| (v, depth + 1))),
            _ => {}
        }
    }
    deepest
}

/// Serialises a JSON tree in the requested format.
pub fn render(value: &Value, format: Format) -> Result<Vec<u8>, fhir_model::ModelError> {
    match format {
        Format::Json => Ok(serde_json::to_vec(value).unwrap_or_default()),
        Format::Xml => fhir_model::json_to_xml(value).map(String::into_bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types() {
        assert_eq!(
            Format::from_media_type("application/fhir+json; charset=utf-8"),
            Some(Format::Json)
        );
        assert_eq!(
            Format::from_media_type("application/fhir+xml"),
            Some(Format::Xml)
        );
        assert_eq!(
            Format::from_media_type("application/fhir+json; fhirVersion=4.0"),
            Some(Format::Json)
        );
        assert_eq!(
            Format::from_media_type("application/fhir+json; fhirVersion=5.0"),
            None
        );
        assert_eq!(Format::from_media_type("text/plain"), None);
    }

    #[test]
    fn negotiation() {
        assert_eq!(Format::negotiate(None, None), Ok(Format::Json));
        assert_eq!(
            Format::negotiate(Some("xml"), Some("application/fhir+json")),
            Ok(Format::Xml)
        );
        assert_eq!(
            Format::negotiate(None, Some("text/html, application/fhir+xml;q=0.9")),
            Ok(Format::Xml)
        );
        assert_eq!(Format::negotiate(None, Some("*/*")), Ok(Format::Json));
        assert!(Format::negotiate(None, Some("text/html")).is_err());
    }

    #[test]
    fn bytes_that_are_not_utf8_are_refused_with_serde_jsons_position() {
        let body = b"{\"resourceType\":\"Patient\",\n \"gender\":\"\xFF\"}";
        match parse_body(body, Format::Json, 64) {
            Err(ReadError::Json { line, column, .. }) => assert_eq!((line, column), (2, 12)),
            other => panic!("expected a JSON error, got {other:?}"),
        }
        let accented = "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Siân\"}]}";
        let tree = parse_body(accented.as_bytes(), Format::Json, 64).unwrap();
        assert_eq!(tree["name"][0]["family"], "Siân");
    }

    #[test]
    fn bodies() {
        assert!(matches!(
            parse_body(b"", Format::Json, 64),
            Err(ReadError::Empty)
        ));
        assert!(matches!(
            parse_body(b"{", Format::Json, 64),
            Err(ReadError::Json { .. })
        ));
        assert!(matches!(
            parse_body(b"[1]", Format::Json, 64),
            Err(ReadError::NotAResource)
        ));
        assert!(parse_body(
            b"\xEF\xBB\xBF{\"resourceType\":\"Patient\"}",
            Format::Json,
            64
        )
        .is_ok());
        let deep = format!(
            "{{\"resourceType\":\"Patient\",\"x\":{}{}}}",
            "[".repeat(80),
            "]".repeat(80)
        );
        assert!(matches!(
            parse_body(deep.as_bytes(), Format::Json, 64),
            Err(ReadError::TooDeep { .. })
        ));
        let twice = br#"{"resourceType":"ServiceRequest","status":"active","status":"revoked"}"#;
        match parse_body(twice, Format::Json, 64) {
            Err(ReadError::Json { message, line, .. }) => {
                assert!(message.contains("\"status\" appears twice"), "{message}");
                assert_eq!(line, 1);
            }
            other => panic!("a duplicate key must be refused, got {other:?}"),
        }
        let nested = br#"{"resourceType":"Patient","name":[{"family":"A","family":"B"}]}"#;
        assert!(parse_body(nested, Format::Json, 64).is_err());
        let numbers = br#"{"resourceType":"Observation","valueQuantity":{"value":1.50},"n":-3,"m":18446744073709551615}"#;
        let tree = parse_body(numbers, Format::Json, 64).unwrap();
        let plain: Value = serde_json::from_slice(numbers).unwrap();
        assert_eq!(tree, plain, "numbers read exactly as serde_json reads them");
        assert_eq!(tree["valueQuantity"]["value"].to_string(), "1.50");
        assert_eq!(tree["n"], serde_json::json!(-3));
        let hostile = "[".repeat(100_000);
        assert!(parse_body(hostile.as_bytes(), Format::Json, 64).is_err());
    }
}
