//! A thin, non-generic wrapper around fhirbolt's FHIR R4 model.
//!
//! fhirbolt is generated code with a generic serde layer; every generic call site is
//! monomorphised where it is *called*. Keeping all calls in this small crate means the
//! gateway crate never instantiates fhirbolt's generics itself, so editing the gateway
//! does not recompile them (a noticeable saving on a 2-core machine).
//!
//! The gateway validates the JSON tree first (fhirbolt only reports line and column);
//! fhirbolt then serves as the typed model and as the XML reader and writer.

use fhirbolt::serde::{DeserializationConfig, DeserializationMode};
use serde_json::Value;

/// The typed FHIR R4 model (resources and data types), re-exported so users need no
/// direct dependency on fhirbolt.
pub use fhirbolt::model::r4;

/// Why fhirbolt could not read or write a resource.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// FHIR XML that fhirbolt could not read (not well-formed, unknown element, wrong order…).
    #[error("not valid FHIR R4 XML: {0}")]
    Xml(String),
    /// A JSON tree that does not fit the typed R4 model.
    #[error("does not fit the FHIR R4 model: {0}")]
    Json(String),
    /// XML nested deeper than the limit (found by the pre-scan, before any tree is built).
    #[error("the XML is nested more than {limit} elements deep")]
    XmlTooDeep { limit: usize },
    /// XML with more elements than the limit (found by the pre-scan).
    #[error("the XML has more than {limit} elements")]
    XmlTooManyElements { limit: usize },
}

/// What an XML document may hold before fhirbolt builds a tree of it. fhirbolt reads XML
/// recursively: a small document nested a few thousand elements deep overflows the stack and
/// aborts the process, so the limits are checked by a streaming scan first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XmlLimits {
    pub max_depth: usize,
    pub max_elements: usize,
}

impl Default for XmlLimits {
    /// The gateway's own JSON limit (64 levels), and more elements than a 1 MiB body of the
    /// shortest elements (`<a/>`) could hold.
    fn default() -> Self {
        XmlLimits {
            max_depth: 64,
            max_elements: 300_000,
        }
    }
}

/// Checks `xml`'s nesting depth and element count without building anything.
fn prescan(xml: &str, limits: XmlLimits) -> Result<(), ModelError> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let (mut depth, mut elements) = (0usize, 0usize);
    loop {
        let event = reader
            .read_event()
            .map_err(|e| ModelError::Xml(format!("{e} at byte {}", reader.buffer_position())))?;
        let opens = match event {
            Event::Start(_) => true,
            Event::Empty(_) => false,
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                continue;
            }
            Event::Eof => return Ok(()),
            _ => continue,
        };
        elements += 1;
        if elements > limits.max_elements {
            return Err(ModelError::XmlTooManyElements {
                limit: limits.max_elements,
            });
        }
        if depth + 1 > limits.max_depth {
            return Err(ModelError::XmlTooDeep {
                limit: limits.max_depth,
            });
        }
        if opens {
            depth += 1;
        }
    }
}

fn strict() -> Option<DeserializationConfig> {
    Some(DeserializationConfig {
        mode: DeserializationMode::Strict,
    })
}

/// fhirbolt's generic element model for R4: it knows the R4 element types (so XML becomes the
/// right JSON arrays and primitives) without building typed structs.
type R4Element = fhirbolt::element::Element<{ fhirbolt::FhirReleases::R4 }>;

/// Reads a FHIR R4 XML document into the same JSON tree a JSON client would have sent.
///
/// Compatibility mode keeps elements unknown to R4 in the tree instead of failing on them:
/// fhirbolt can only say "line 3, column 9", while the validator names the element
/// (`ServiceRequest.foo`), which is what a GP system developer needs.
pub fn xml_to_json(xml: &str) -> Result<Value, ModelError> {
    xml_to_json_within(xml, XmlLimits::default())
}

/// [`xml_to_json`] with the caller's limits on depth and element count.
pub fn xml_to_json_within(xml: &str, limits: XmlLimits) -> Result<Value, ModelError> {
    prescan(xml, limits)?;
    let compatibility = Some(DeserializationConfig {
        mode: DeserializationMode::Compatibility,
    });
    let element: R4Element = fhirbolt::serde::xml::from_str(xml, compatibility)
        .map_err(|e| ModelError::Xml(e.to_string()))?;
    let bytes = fhirbolt::serde::json::to_vec(&element, None)
        .map_err(|e| ModelError::Json(e.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| ModelError::Json(e.to_string()))
}

/// Writes a FHIR JSON tree as FHIR R4 XML.
pub fn json_to_xml(json: &Value) -> Result<String, ModelError> {
    let element: R4Element = fhirbolt::serde::json::from_json_value(json.clone(), strict())
        .map_err(|e| ModelError::Json(e.to_string()))?;
    fhirbolt::serde::xml::to_string(&element, None).map_err(|e| ModelError::Xml(e.to_string()))
}

/// A resource type read straight into its typed struct.
///
/// Reading into fhirbolt's `Resource` enum would make it copy the whole tree into its generic
/// element model first (it cannot know the variant until it has seen `resourceType`, which JSON
/// may put last); that copy was nearly two thirds of the typing time. When the caller already knows
/// the type, the concrete struct reads the tree directly. The impls are concrete, so fhirbolt's
/// generics are still instantiated here and not in the caller.
pub trait FromJson: Sized {
    /// The FHIR `resourceType` this struct holds.
    const RESOURCE_TYPE: &'static str;

    /// Reads a (validated) JSON tree of this resource type; a tree of another type is refused.
    fn from_json(json: Value) -> Result<Self, ModelError>;
}

macro_rules! from_json {
    ($($name:ident),* $(,)?) => {$(
        impl FromJson for r4::resources::$name {
            const RESOURCE_TYPE: &'static str = stringify!($name);

            fn from_json(json: Value) -> Result<Self, ModelError> {
                fhirbolt::serde::json::from_json_value(json, strict())
                    .map_err(|e| ModelError::Json(e.to_string()))
            }
        }
    )*};
}

from_json!(
    ServiceRequest,
    Patient,
    Organization,
    Practitioner,
    PractitionerRole,
    Consent,
);

#[cfg(test)]
mod tests {
    use super::*;

    const PATIENT_XML: &str = r#"<Patient xmlns="http://hl7.org/fhir"><id value="p1"/>
        <name><family value="Llywelyn"/><given value="Siân"/></name><birthDate value="1948-03-02"/></Patient>"#;

    #[test]
    fn xml_becomes_the_same_json_a_client_would_send() {
        let json = xml_to_json(PATIENT_XML).unwrap();
        assert_eq!(json["resourceType"], "Patient");
        assert_eq!(json["name"][0]["given"][0], "Siân");
        assert_eq!(json["birthDate"], "1948-03-02");
    }

    #[test]
    fn json_round_trips_through_xml() {
        let json = xml_to_json(PATIENT_XML).unwrap();
        let xml = json_to_xml(&json).unwrap();
        assert!(xml.contains("<family value=\"Llywelyn\""));
        assert_eq!(xml_to_json(&xml).unwrap(), json);
    }

    #[test]
    fn missing_mandatory_elements_are_left_to_the_validator() {
        let xml = r#"<ServiceRequest xmlns="http://hl7.org/fhir"><intent value="order"/></ServiceRequest>"#;
        let json = xml_to_json(xml).unwrap();
        assert_eq!(json["intent"], "order");
        assert!(json.get("status").is_none());
    }

    #[test]
    fn unknown_xml_elements_reach_the_validator() {
        let bad = r#"<Patient xmlns="http://hl7.org/fhir"><foo value="x"/></Patient>"#;
        assert!(xml_to_json(bad).unwrap().get("foo").is_some());
    }

    #[test]
    fn malformed_xml_is_refused_without_panic() {
        assert!(xml_to_json("<Patient xmlns=\"http://hl7.org/fhir\"><id value=").is_err());
    }

    /// 1,500 nested elements in 10 KB used to overflow fhirbolt's recursion and abort the
    /// process; the pre-scan refuses them before any tree is built.
    #[test]
    fn deep_or_huge_xml_is_refused_before_parsing() {
        let deep = format!(
            "<ServiceRequest xmlns=\"http://hl7.org/fhir\">{}",
            "<a>".repeat(1500)
        );
        assert!(matches!(
            xml_to_json(&deep),
            Err(ModelError::XmlTooDeep { limit: 64 })
        ));
        let closed = format!(
            "<Patient xmlns=\"http://hl7.org/fhir\">{}{}</Patient>",
            "<extension>".repeat(100),
            "</extension>".repeat(100)
        );
        assert!(matches!(
            xml_to_json(&closed),
            Err(ModelError::XmlTooDeep { .. })
        ));
        let wide = format!(
            "<Patient xmlns=\"http://hl7.org/fhir\">{}</Patient>",
            "<x/>".repeat(20)
        );
        let limits = XmlLimits {
            max_depth: 64,
            max_elements: 10,
        };
        assert!(matches!(
            xml_to_json_within(&wide, limits),
            Err(ModelError::XmlTooManyElements { limit: 10 })
        ));
        // At the limit is fine.
        let mut at_limit = String::from("<Patient xmlns=\"http://hl7.org/fhir\">");
        at_limit.push_str(&"<extension url=\"http://e\">".repeat(62));
        at_limit.push_str("<valueString value=\"x\"/>");
        at_limit.push_str(&"</extension>".repeat(62));
        at_limit.push_str("</Patient>");
        assert!(xml_to_json(&at_limit).is_ok());
        assert!(xml_to_json("").is_err());
    }

    #[test]
    fn a_known_type_reads_straight_into_its_struct() {
        let json = serde_json::json!({
            "status": "active", "intent": "order",
            "subject": {"reference": "Patient/p1"},
            "resourceType": "ServiceRequest"
        });
        let sr = r4::resources::ServiceRequest::from_json(json).unwrap();
        assert_eq!(sr.status.value.as_deref(), Some("active"));
        assert_eq!(sr.intent.value.as_deref(), Some("order"));
        let patient = serde_json::json!({"resourceType": "Patient", "gender": "female"});
        assert!(r4::resources::ServiceRequest::from_json(patient).is_err());
    }
}
