//! Items of FHIRPath collections: borrowed JSON nodes and system values.

use std::cmp::Ordering;
use std::fmt;

use serde_json::Value;

use crate::decimal::Decimal;
use crate::temporal::{CalendarUnit, Temporal, TemporalKind};

/// A node of the input tree.
///
/// FHIR JSON splits a primitive into `name` (value) and `_name` (id and
/// extensions), so a node carries both halves; either may be absent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Node<'a> {
    pub value: Option<&'a Value>,
    /// The `_name` companion object of a primitive, if any.
    pub extension: Option<&'a Value>,
    /// FHIR type name when known (from `resourceType`, a choice-type suffix
    /// or the [`ModelInfo`](crate::ModelInfo)); backbone elements may use a
    /// path such as `Patient.contact` if the model says so.
    pub type_name: Option<&'a str>,
}

/// A System.Quantity. Calendar duration keywords (`day`, `year`, ...) are
/// stored as the singular keyword; UCUM units as written (without quotes).
#[derive(Clone, Debug, PartialEq)]
pub struct Quantity {
    pub value: Decimal,
    pub unit: String,
}

/// One element of a FHIRPath collection.
#[derive(Clone, Debug, PartialEq)]
pub enum Item<'a> {
    Node(Node<'a>),
    Boolean(bool),
    Integer(i64),
    Decimal(Decimal),
    String(String),
    Date(Temporal),
    DateTime(Temporal),
    Time(Temporal),
    Quantity(Quantity),
    /// Result of `type()`: a namespace (`System`/`FHIR`) and a name.
    TypeInfo {
        namespace: String,
        name: String,
    },
}

/// FHIR primitive types whose JSON form is a string.
pub(crate) const STRING_PRIMITIVES: [&str; 15] = [
    "string",
    "code",
    "id",
    "markdown",
    "uri",
    "url",
    "canonical",
    "oid",
    "uuid",
    "base64Binary",
    "xhtml",
    "date",
    "dateTime",
    "instant",
    "time",
];

/// Maps a choice-element suffix (`valueDateTime` → `DateTime`) to the FHIR
/// type name, lower-casing primitive names.
pub(crate) fn choice_type(suffix: &str) -> Option<&str> {
    const PRIMS: [&str; 20] = [
        "boolean",
        "integer",
        "decimal",
        "string",
        "uri",
        "url",
        "canonical",
        "base64Binary",
        "instant",
        "date",
        "dateTime",
        "time",
        "code",
        "oid",
        "id",
        "markdown",
        "unsignedInt",
        "positiveInt",
        "uuid",
        "integer64",
    ];
    let mut chars = suffix.chars();
    let first = chars.next()?;
    if !first.is_ascii_uppercase() {
        return None;
    }
    for p in PRIMS {
        let mut pc = p.chars();
        if pc.next().map(|c| c.to_ascii_uppercase()) == Some(first) && pc.as_str() == chars.as_str()
        {
            return Some(p);
        }
    }
    // Only real type names: `durationMax` is not a choice of `duration`.
    CHOICE_COMPLEX_TYPES.iter().copied().find(|t| *t == suffix)
}

/// Complex types allowed in choice elements (R4 open types, plus the few
/// R5 additions so R5-style content does not surprise).
const CHOICE_COMPLEX_TYPES: [&str; 33] = [
    "Address",
    "Age",
    "Annotation",
    "Attachment",
    "CodeableConcept",
    "CodeableReference",
    "Coding",
    "ContactPoint",
    "Count",
    "Distance",
    "Duration",
    "HumanName",
    "Identifier",
    "Money",
    "Period",
    "Quantity",
    "Range",
    "Ratio",
    "RatioRange",
    "Reference",
    "SampledData",
    "Signature",
    "Timing",
    "ContactDetail",
    "Contributor",
    "DataRequirement",
    "Expression",
    "ParameterDefinition",
    "RelatedArtifact",
    "TriggerDefinition",
    "UsageContext",
    "Dosage",
    "Meta",
];

pub(crate) fn is_quantity_type(t: &str) -> bool {
    matches!(
        t,
        "Quantity" | "Age" | "Count" | "Distance" | "Duration" | "SimpleQuantity" | "MoneyQuantity"
    )
}

impl<'a> Node<'a> {
    pub fn new(value: &'a Value) -> Self {
        let type_name = value.get("resourceType").and_then(Value::as_str);
        Node {
            value: Some(value),
            extension: None,
            type_name,
        }
    }

    /// The system value of a primitive node (`None` for complex nodes and
    /// for primitives that only carry extensions).
    pub fn primitive(&self) -> Option<Item<'a>> {
        match self.value? {
            Value::Bool(b) => Some(Item::Boolean(*b)),
            Value::Number(n) => {
                let decimal = self.type_name == Some("decimal");
                match n.as_i64() {
                    Some(i) if !decimal => Some(Item::Integer(i)),
                    _ => {
                        let d = n
                            .as_i64()
                            .map(Decimal::from_i64)
                            .or_else(|| n.as_f64().and_then(Decimal::from_f64))?;
                        Some(Item::Decimal(d))
                    }
                }
            }
            Value::String(s) => Some(typed_string(s, self.type_name)),
            Value::Object(_) => self.quantity().map(Item::Quantity),
            _ => None,
        }
    }

    /// A FHIR Quantity node as a System.Quantity (UCUM code preferred).
    fn quantity(&self) -> Option<Quantity> {
        if !self.type_name.is_some_and(is_quantity_type) {
            return None;
        }
        let v = self.value?;
        let n = v.get("value")?;
        let value = n
            .as_i64()
            .map(Decimal::from_i64)
            .or_else(|| n.as_f64().and_then(Decimal::from_f64))?;
        let unit = v
            .get("code")
            .or_else(|| v.get("unit"))
            .and_then(Value::as_str)
            .unwrap_or("1");
        Some(Quantity {
            value,
            unit: unit.to_string(),
        })
    }
}

fn typed_string<'a>(s: &str, type_name: Option<&str>) -> Item<'a> {
    let parsed = match type_name {
        Some("date") => Temporal::parse_date(s).map(Item::Date),
        Some("dateTime") | Some("instant") => Temporal::parse_datetime(s).map(|t| {
            if t.kind == TemporalKind::Date {
                Item::Date(t)
            } else {
                Item::DateTime(t)
            }
        }),
        Some("time") => Temporal::parse_time(s).map(Item::Time),
        _ => None,
    };
    parsed.unwrap_or_else(|| Item::String(s.to_string()))
}

impl<'a> Item<'a> {
    /// Converts nodes to their system value; other items are returned as is.
    pub fn to_system(&self) -> Option<Item<'a>> {
        match self {
            Item::Node(n) => n.primitive(),
            other => Some(other.clone()),
        }
    }

    /// The string value, for strings and string-valued nodes.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Item::String(s) => Some(s),
            Item::Node(n) => n.value.and_then(Value::as_str),
            _ => None,
        }
    }

    /// The boolean value, for booleans and boolean nodes.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Item::Boolean(b) => Some(*b),
            Item::Node(n) => n.value.and_then(Value::as_bool),
            _ => None,
        }
    }

    /// The JSON node, when the item is one.
    pub fn as_node(&self) -> Option<&Node<'a>> {
        match self {
            Item::Node(n) => Some(n),
            _ => None,
        }
    }

    /// The type name as FHIRPath's `type().name` would report it.
    pub fn type_name(&self) -> String {
        match self {
            Item::Node(n) => n.type_name.map_or_else(
                || match n.value {
                    Some(Value::Bool(_)) => "boolean".into(),
                    Some(Value::Number(_)) => "decimal".into(),
                    Some(Value::String(_)) => "string".into(),
                    _ => "Element".into(),
                },
                str::to_string,
            ),
            Item::Boolean(_) => "Boolean".into(),
            Item::Integer(_) => "Integer".into(),
            Item::Decimal(_) => "Decimal".into(),
            Item::String(_) => "String".into(),
            Item::Date(_) => "Date".into(),
            Item::DateTime(_) => "DateTime".into(),
            Item::Time(_) => "Time".into(),
            Item::Quantity(_) => "Quantity".into(),
            Item::TypeInfo { .. } => "TypeInfo".into(),
        }
    }
}

/// Renders an item as FHIRPath `toString()` does (`None` for complex nodes).
pub(crate) fn item_to_string(item: &Item<'_>) -> Option<String> {
    match item.to_system()? {
        Item::Boolean(b) => Some(b.to_string()),
        Item::Integer(i) => Some(i.to_string()),
        Item::Decimal(d) => Some(d.to_string()),
        Item::String(s) => Some(s),
        Item::Date(t) | Item::DateTime(t) | Item::Time(t) => Some(t.to_string()),
        Item::Quantity(q) => Some(quantity_to_string(&q)),
        _ => None,
    }
}

pub(crate) fn quantity_to_string(q: &Quantity) -> String {
    if calendar_keyword(&q.unit) == Some(q.unit.as_str()) {
        format!("{} {}", q.value, q.unit)
    } else {
        format!("{} '{}'", q.value, q.unit)
    }
}

impl fmt::Display for Item<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (item_to_string(self), self) {
            (Some(s), _) => f.write_str(&s),
            (None, Item::Node(n)) => match n.value {
                Some(v) => write!(f, "{v}"),
                None => f.write_str("{}"),
            },
            (None, Item::TypeInfo { namespace, name }) => write!(f, "{namespace}.{name}"),
            (None, _) => f.write_str("?"),
        }
    }
}

/// Calendar keyword units (singular or plural) as used in FHIRPath
/// quantity literals: `4 days`, `1 year`.
pub(crate) fn calendar_keyword(word: &str) -> Option<&'static str> {
    let singular = word.strip_suffix('s').unwrap_or(word);
    [
        "year",
        "month",
        "week",
        "day",
        "hour",
        "minute",
        "second",
        "millisecond",
    ]
    .into_iter()
    .find(|k| *k == singular)
}

/// The calendar unit for date arithmetic, from a keyword or the definite
/// UCUM time units (`mo` and `a` are not definite and are rejected).
pub(crate) fn calendar_unit(unit: &str) -> Option<CalendarUnit> {
    Some(match unit {
        "year" => CalendarUnit::Year,
        "month" => CalendarUnit::Month,
        "week" | "wk" => CalendarUnit::Week,
        "day" | "d" => CalendarUnit::Day,
        "hour" | "h" => CalendarUnit::Hour,
        "minute" | "min" => CalendarUnit::Minute,
        "second" | "s" => CalendarUnit::Second,
        "millisecond" | "ms" => CalendarUnit::Millisecond,
        _ => return None,
    })
}

/// Dimension and scale factor of the units this evaluator can convert.
/// Only a practical subset of UCUM is covered; unknown units compare only
/// with the identical unit.
fn unit_factor(unit: &str) -> Option<(&'static str, &'static str)> {
    Some(match unit {
        "g" => ("g", "1"),
        "mg" => ("g", "0.001"),
        "ug" | "mcg" => ("g", "0.000001"),
        "kg" => ("g", "1000"),
        "[lb_av]" => ("g", "453.59237"),
        "m" => ("m", "1"),
        "cm" => ("m", "0.01"),
        "mm" => ("m", "0.001"),
        "km" => ("m", "1000"),
        "[in_i]" => ("m", "0.0254"),
        "s" | "second" => ("s", "1"),
        "ms" | "millisecond" => ("s", "0.001"),
        "min" | "minute" => ("s", "60"),
        "h" | "hour" => ("s", "3600"),
        "d" | "day" => ("s", "86400"),
        "wk" | "week" => ("s", "604800"),
        "mL" | "ml" => ("L", "0.001"),
        "L" | "l" => ("L", "1"),
        "1" => ("1", "1"),
        _ => return None,
    })
}

/// Both quantities expressed in a common unit, if they are comparable.
pub(crate) fn comparable_values(a: &Quantity, b: &Quantity) -> Option<(Decimal, Decimal)> {
    if a.unit == b.unit {
        return Some((a.value, b.value));
    }
    let (da, fa) = unit_factor(&a.unit)?;
    let (db, fb) = unit_factor(&b.unit)?;
    if da != db {
        return None;
    }
    let fa = Decimal::parse(fa)?;
    let fb = Decimal::parse(fb)?;
    Some((a.value.checked_mul(fa)?, b.value.checked_mul(fb)?))
}

/// Base unit and value of a quantity in that base unit (`2 cm` → `0.02 m`).
pub(crate) fn to_base_unit(q: &Quantity) -> Option<(&'static str, Decimal)> {
    let (dim, factor) = unit_factor(&q.unit)?;
    Some((dim, q.value.checked_mul(Decimal::parse(factor)?)?))
}

pub(crate) fn compare_quantities(a: &Quantity, b: &Quantity) -> Option<Ordering> {
    let (x, y) = comparable_values(a, b)?;
    Some(x.cmp(&y))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn choice_suffixes() {
        assert_eq!(choice_type("DateTime"), Some("dateTime"));
        assert_eq!(choice_type("Quantity"), Some("Quantity"));
        assert_eq!(choice_type("quantity"), None);
        assert_eq!(choice_type("Max"), None);
        assert_eq!(choice_type("Unit"), None);
    }

    #[test]
    fn node_primitives() {
        let v = json!({"resourceType": "Patient", "n": 3, "d": "2020-01-02"});
        let root = Node::new(&v);
        assert_eq!(root.type_name, Some("Patient"));
        let n = Node {
            value: v.get("n"),
            extension: None,
            type_name: None,
        };
        assert_eq!(n.primitive(), Some(Item::Integer(3)));
        let d = Node {
            value: v.get("d"),
            extension: None,
            type_name: Some("date"),
        };
        assert!(matches!(d.primitive(), Some(Item::Date(_))));
    }

    #[test]
    fn quantity_units() {
        let q = |v: &str, u: &str| Quantity {
            value: Decimal::parse(v).unwrap(),
            unit: u.into(),
        };
        assert_eq!(
            compare_quantities(&q("4", "g"), &q("4000", "mg")),
            Some(Ordering::Equal)
        );
        assert_eq!(compare_quantities(&q("1", "g"), &q("1", "m")), None);
        assert_eq!(
            compare_quantities(&q("6", "day"), &q("1", "week")),
            Some(Ordering::Less)
        );
    }
}
