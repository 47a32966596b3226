//! A QuestionnaireResponse against the Questionnaire it names (when that Questionnaire is
//! loaded): items by `linkId`, answer types, required and repeating items, answer options,
//! and the SDC/core extensions that limit answers (lengths, ranges, decimal places, units,
//! MIME types, sizes, reference targets). Messages and severities follow the HL7 Java
//! validator's QuestionnaireResponse checks.

use serde_json::{Map, Value};

use super::{attachment_data_len, quote, Walker};
use crate::issue::{IssueCode, Severity};
use crate::terminology::Membership;

const EXT: &str = "http://hl7.org/fhir/StructureDefinition/";
const SDC_MIN_QUANTITY: &str =
    "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-minQuantity";
const SDC_MAX_QUANTITY: &str =
    "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-maxQuantity";

/// The answer types a Questionnaire item type takes (`value[x]` suffixes).
fn answer_types(item_type: &str) -> Option<&'static [&'static str]> {
    Some(match item_type {
        "boolean" => &["Boolean"],
        "decimal" => &["Decimal"],
        "integer" => &["Integer"],
        "date" => &["Date"],
        "dateTime" => &["DateTime"],
        "time" => &["Time"],
        "string" | "text" => &["String"],
        "url" => &["Uri"],
        "choice" => &["Coding", "String"],
        "open-choice" => &["Coding", "String"],
        "attachment" => &["Attachment"],
        "reference" => &["Reference"],
        "quantity" => &["Quantity"],
        _ => return None,
    })
}

/// The FHIR type name of a `value[x]` suffix, as the Java validator names it.
fn type_name(suffix: &str) -> String {
    match suffix {
        "Boolean" | "Decimal" | "Integer" | "Date" | "DateTime" | "Time" | "String" | "Uri" => {
            let mut c = suffix.chars();
            c.next()
                .map(|f| f.to_ascii_lowercase().to_string() + c.as_str())
                .unwrap_or_default()
        }
        _ => suffix.to_string(),
    }
}

/// The `value[x]` of an answer or option: (type suffix, value).
fn value_x(obj: &Map<String, Value>) -> Option<(&str, &Value)> {
    obj.iter()
        .find_map(|(k, v)| k.strip_prefix("value").map(|t| (t, v)))
        .filter(|(t, _)| t.starts_with(|c: char| c.is_ascii_uppercase()))
}

fn items(v: &Value) -> &[Value] {
    v.get("item")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn link_id(v: &Value) -> Option<&str> {
    v.get("linkId").and_then(Value::as_str)
}

/// The values of the item's extensions with this URL (a full URL, or the name of a core
/// extension: `http://hl7.org/fhir/StructureDefinition/<name>`).
fn extension_values<'a>(item: &'a Value, name: &str) -> Vec<&'a Value> {
    let Some(exts) = item.get("extension").and_then(Value::as_array) else {
        return Vec::new();
    };
    exts.iter()
        .filter(|e| {
            let url = e.get("url").and_then(Value::as_str).unwrap_or("");
            url == name || url.strip_prefix(EXT) == Some(name)
        })
        .filter_map(|e| e.as_object().and_then(value_x).map(|(_, v)| v))
        .collect()
}

fn extension_value<'a>(item: &'a Value, name: &str) -> Option<&'a Value> {
    extension_values(item, name).into_iter().next()
}

fn is_true(v: Option<&Value>) -> bool {
    v.and_then(Value::as_bool) == Some(true)
}

/// A scalar answer value as text (for comparisons and messages).
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Compares two values of one type: numbers numerically, date/time strings by their text
/// (ISO 8601 orders lexically; a shorter, less precise value sorts first).
fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.as_str().cmp(y.as_str())),
        _ => None,
    }
}

/// A UCUM unit this module can convert: (dimension, factor to the dimension's base unit).
fn ucum_unit(code: &str) -> Option<(&'static str, f64)> {
    let simple = |c: &str| -> Option<(&'static str, f64)> {
        Some(match c {
            "m" => ("length", 1.0),
            "[mi_i]" => ("length", 1609.344),
            "[ft_i]" => ("length", 0.3048),
            "[in_i]" => ("length", 0.0254),
            "g" => ("mass", 1.0),
            "[lb_av]" => ("mass", 453.592_37),
            "s" => ("time", 1.0),
            "min" => ("time", 60.0),
            "h" => ("time", 3600.0),
            "d" => ("time", 86400.0),
            "L" | "l" => ("volume", 1.0),
            _ => return None,
        })
    };
    if let Some(u) = simple(code) {
        return Some(u);
    }
    let (prefix, rest) = code.split_at(code.char_indices().nth(1).map_or(code.len(), |(i, _)| i));
    let factor = match prefix {
        "k" => 1e3,
        "c" => 1e-2,
        "m" => 1e-3,
        "u" => 1e-6,
        "d" => 1e-1,
        _ => return None,
    };
    simple(rest)
        .filter(|(dim, _)| *dim != "time")
        .map(|(dim, f)| (dim, f * factor))
}

fn quantity_text(q: &Value) -> String {
    let value = q.get("value").map(Value::to_string).unwrap_or_default();
    let unit = q
        .get("unit")
        .or_else(|| q.get("code"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let code = q.get("code").and_then(Value::as_str);
    match code {
        Some(c) if q.get("system").and_then(Value::as_str) == Some("http://unitsofmeasure.org") => {
            format!("{value} {unit} (UCUM#{c})")
        }
        _ => format!("{value} {unit}"),
    }
}

impl<'v, 'r> Walker<'v, 'r> {
    /// Checks a QuestionnaireResponse against its Questionnaire, when that is loaded.
    pub(super) fn questionnaire_response(&mut self, qr: &'r Value) {
        let Some(url) = qr.get("questionnaire").and_then(Value::as_str) else {
            return;
        };
        let Some(q) = self.val.defs.questionnaire(url) else {
            return;
        };
        self.qr_items(items(qr), items(q));
    }

    fn qr_error(&mut self, id: &'static str, msg: String) {
        self.report(Severity::Error, IssueCode::Structure, id, msg, None);
    }

    /// The response items at one level against the Questionnaire items of that level.
    fn qr_items(&mut self, given: &'r [Value], defined: &'v [Value]) {
        for (i, item) in given.iter().enumerate() {
            let mark = self.push(&format!("item[{i}]"));
            let id = link_id(item).unwrap_or("");
            match defined.iter().find(|d| link_id(d) == Some(id)) {
                Some(def) => self.qr_item(item, def),
                None => self.qr_error(
                    "qr-linkid-unknown",
                    format!("LinkId '{id}' not found in questionnaire"),
                ),
            }
            self.pop(mark);
        }
        for def in defined {
            let id = link_id(def).unwrap_or("");
            let found: Vec<&Value> = given.iter().filter(|g| link_id(g) == Some(id)).collect();
            if found.len() > 1 && !is_true(def.get("repeats")) {
                self.qr_error(
                    "qr-item-only-one",
                    format!("Only one response item with linkId '{id}' allowed"),
                );
            }
            // Items shown only under a condition are not enforced (enableWhen is not evaluated).
            let conditional = def.get("enableWhen").is_some()
                || extension_value(def, "questionnaire-hidden").is_some();
            if found.is_empty() && is_true(def.get("required")) && !conditional {
                let what = if def.get("type").and_then(Value::as_str) == Some("group") {
                    "group"
                } else {
                    "item"
                };
                self.qr_error(
                    "qr-item-missing",
                    format!("No response found for required {what} '{id}'"),
                );
            }
        }
    }

    fn qr_item(&mut self, item: &'r Value, def: &'v Value) {
        let kind = def.get("type").and_then(Value::as_str).unwrap_or("");
        let answers = item
            .get("answer")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let id = link_id(def).unwrap_or("");
        match kind {
            "display" | "group" | "question" => {
                if !answers.is_empty() {
                    let msg = if kind == "display" {
                        "Items of type 'display' cannot have answers".to_string()
                    } else {
                        format!("Items of type {kind} should not have answers")
                    };
                    self.qr_error("qr-item-no-answers", msg);
                }
                if kind == "group" && is_true(def.get("required")) && items(item).is_empty() {
                    self.qr_error(
                        "qr-group-empty",
                        "No sub-items found for required group".to_string(),
                    );
                }
                self.qr_items(items(item), items(def));
                return;
            }
            _ => {}
        }
        if answers.is_empty() && is_true(def.get("required")) {
            self.qr_error(
                "qr-answer-missing",
                format!("No response answer found for required item '{id}'"),
            );
        }
        if answers.len() > 1 && !is_true(def.get("repeats")) {
            self.qr_error(
                "qr-answer-only-one",
                "Only one response answer item with this linkId allowed".to_string(),
            );
        }
        let count = |name| {
            extension_value(def, name)
                .and_then(Value::as_u64)
                .and_then(|n| usize::try_from(n).ok())
        };
        if let Some(max) = count("questionnaire-maxOccurs") {
            if answers.len() > max {
                self.qr_error(
                    "qr-answer-max-occurs",
                    format!(
                        "The maximum number of answers is {max} but this has {} answers",
                        answers.len()
                    ),
                );
            }
        }
        if let Some(min) = count("questionnaire-minOccurs") {
            if answers.len() < min {
                self.qr_error(
                    "qr-answer-min-occurs",
                    format!(
                        "The minimum number of answers is {min} but this has {} answers",
                        answers.len()
                    ),
                );
            }
        }
        let exclusive_chosen = answers.len() > 1
            && answers
                .iter()
                .filter_map(|a| a.as_object().and_then(value_x))
                .any(|(_, v)| self.option_for(def, v).is_some_and(is_exclusive));
        if exclusive_chosen {
            self.qr_error(
                "qr-option-exclusive",
                "An exclusive option is selected: no other answer may be selected at the same time"
                    .to_string(),
            );
        }
        for (i, answer) in answers.iter().enumerate() {
            let mark = self.push(&format!("answer[{i}]"));
            if let Some(obj) = answer.as_object() {
                self.qr_answer(obj, def, kind);
            }
            self.qr_items(items(answer), items(def));
            self.pop(mark);
        }
        if !items(item).is_empty() {
            self.qr_items(items(item), items(def));
        }
    }

    /// The answer option a value selects, if the item has options and one matches.
    fn option_for(&self, def: &'v Value, value: &Value) -> Option<&'v Value> {
        def.get("answerOption")
            .and_then(Value::as_array)?
            .iter()
            .find(|o| {
                o.as_object()
                    .and_then(value_x)
                    .is_some_and(|(_, ov)| same_option(ov, value))
            })
    }

    fn qr_answer(&mut self, answer: &Map<String, Value>, def: &'v Value, kind: &str) {
        let Some((suffix, value)) = value_x(answer) else {
            return;
        };
        let Some(allowed) = answer_types(kind) else {
            return;
        };
        if !allowed.contains(&suffix) {
            self.qr_error(
                "qr-answer-type",
                format!(
                    "Answer value must be of the type {} not {}",
                    type_name(allowed[0]),
                    type_name(suffix)
                ),
            );
            return;
        }
        let has_options = def
            .get("answerOption")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        if has_options && kind != "open-choice" && self.option_for(def, value).is_none() {
            let shown = match value {
                Value::Object(c) => format!(
                    "{}::{}",
                    c.get("system").and_then(Value::as_str).unwrap_or(""),
                    c.get("code").and_then(Value::as_str).unwrap_or("")
                ),
                other => scalar_text(other).unwrap_or_default(),
            };
            self.qr_error(
                "qr-answer-not-option",
                format!(
                    "The {} {shown} is not in the set of permitted values",
                    type_name(suffix)
                ),
            );
        }
        if suffix == "Coding" && !has_options {
            self.qr_value_set_coding(value, def, kind);
        }
        match suffix {
            "String" => self.qr_string(value, def),
            "Integer" | "Decimal" | "Date" | "DateTime" => self.qr_range(value, def),
            "Quantity" => self.qr_quantity(value, def),
            "Attachment" => self.qr_attachment(value, def),
            "Reference" => self.qr_reference(value, def),
            _ => {}
        }
        // maxDecimalPlaces limits a decimal answer and a quantity's value.
        let number = match suffix {
            "Decimal" => Some(value),
            "Quantity" => value.get("value"),
            _ => None,
        };
        if let Some(number) = number {
            let places = extension_value(def, "maxDecimalPlaces").and_then(Value::as_u64);
            let text = number.to_string();
            let actual = text.split_once('.').map_or(0, |(_, f)| f.len());
            if let Some(max) = places.filter(|m| actual as u64 > *m) {
                self.qr_error(
                    "qr-decimal-places",
                    format!("The value {text} has too many decimal places (limit = {max})"),
                );
            }
        }
    }

    fn qr_string(&mut self, value: &Value, def: &'v Value) {
        let Some(s) = value.as_str() else { return };
        let len = s.chars().count() as u64;
        if let Some(min) = extension_value(def, "minLength").and_then(Value::as_u64) {
            if len < min {
                self.qr_error(
                    "qr-string-min-length",
                    format!(
                        "The answer {} is shorter than the required minimum length of {min}",
                        quote(s)
                    ),
                );
            }
        }
        if let Some(max) = def.get("maxLength").and_then(Value::as_u64) {
            if len > max {
                self.qr_error(
                    "qr-string-max-length",
                    format!(
                        "The answer {} is longer than the allowed maximum length of {max}",
                        quote(s)
                    ),
                );
            }
        }
        if let Some(re) = extension_value(def, "regex").and_then(Value::as_str) {
            // A pattern that does not compile is the Questionnaire's defect, not the answer's.
            let matches = regex::Regex::new(&format!("^(?:{re})$")).map(|r| r.is_match(s));
            if matches == Ok(false) {
                self.qr_error(
                    "qr-string-regex",
                    format!(
                        "The answer {} does not conform to the expected format (regex '{re}')",
                        quote(s)
                    ),
                );
            }
        }
    }

    fn qr_range(&mut self, value: &Value, def: &'v Value) {
        // Distinct ids: an answer can break both bounds (of a contradictory Questionnaire),
        // and each is reported.
        for (name, bad, word, id) in [
            (
                "minValue",
                std::cmp::Ordering::Less,
                "less than the allowed minimum",
                "qr-answer-min",
            ),
            (
                "maxValue",
                std::cmp::Ordering::Greater,
                "greater than the allowed maximum",
                "qr-answer-max",
            ),
        ] {
            let Some(limit) = extension_value(def, name) else {
                continue;
            };
            if compare(value, limit) == Some(bad) {
                self.qr_error(
                    id,
                    format!(
                        "The value {} is {word} of {}",
                        scalar_text(value).unwrap_or_default(),
                        scalar_text(limit).unwrap_or_default()
                    ),
                );
            }
        }
    }

    fn qr_quantity(&mut self, value: &Value, def: &'v Value) {
        for (name, bad, word, id) in [
            (
                SDC_MIN_QUANTITY,
                std::cmp::Ordering::Less,
                "less than the allowed minimum",
                "qr-quantity-min",
            ),
            (
                SDC_MAX_QUANTITY,
                std::cmp::Ordering::Greater,
                "greater than the allowed maximum",
                "qr-quantity-max",
            ),
        ] {
            let Some(limit) = extension_value(def, name).filter(|l| l.is_object()) else {
                continue;
            };
            let msg = match quantity_order(value, limit) {
                QuantityOrder::Ordered(o) if o == bad => format!(
                    "The quantity {} is {word} of {}",
                    quantity_text(value),
                    quantity_text(limit)
                ),
                QuantityOrder::Ordered(_) | QuantityOrder::Unknown => continue,
                QuantityOrder::NoUnits => format!(
                    "The quantity {} cannot be compared to the {} of {} because no formal units are specified",
                    quantity_text(value),
                    &word[word.find("allowed").unwrap_or(0)..],
                    quantity_text(limit)
                ),
                QuantityOrder::Incompatible => format!(
                    "The quantity {} cannot be compared to the {} of {}",
                    quantity_text(value),
                    &word[word.find("allowed").unwrap_or(0)..],
                    quantity_text(limit)
                ),
            };
            self.qr_error(id, msg);
        }
        self.qr_unit_value_set(value, def);
        let options = extension_values(def, "questionnaire-unitOption");
        if !options.is_empty() {
            let same = |o: &&Value| {
                o.get("system") == value.get("system") && o.get("code") == value.get("code")
            };
            if !options.iter().any(same) {
                let allowed: Vec<String> = options
                    .iter()
                    .map(|o| {
                        format!(
                            "{}#{}",
                            o.get("system").and_then(Value::as_str).unwrap_or(""),
                            o.get("code").and_then(Value::as_str).unwrap_or("")
                        )
                    })
                    .collect();
                self.qr_error(
                    "qr-quantity-unit",
                    format!(
                        "The value {} has a unit that is not valid (allowed = {})",
                        quantity_text(value),
                        allowed.join(", ")
                    ),
                );
            }
        }
    }

    /// A Coding answer against the item's `answerValueSet` (when we can expand it): a
    /// display that is not the code's fails the check (the HL7 validator's terminology
    /// error), and for a `choice` item the code must be in the value set.
    fn qr_value_set_coding(&mut self, value: &Value, def: &'v Value, kind: &str) {
        let Some(url) = def.get("answerValueSet").and_then(Value::as_str) else {
            return;
        };
        let (system, Some(code)) = (
            value.get("system").and_then(Value::as_str),
            value.get("code").and_then(Value::as_str),
        ) else {
            return;
        };
        let defs = &self.val.defs;
        let wrong = match (system, value.get("display").and_then(Value::as_str)) {
            (Some(s), Some(d)) => defs
                .wrong_display(s, code, d)
                .map(|valid| super::wrong_display_message(s, code, d, valid)),
            _ => None,
        };
        let not_in = kind == "choice"
            && defs
                .expansion(url)
                .is_some_and(|e| e.check_coding(system, code) == Membership::NotIn);
        if wrong.is_none() && !not_in {
            return;
        }
        let mut msg = format!(
            "The code '{code}' in the system '{}' is not in the options value set ({url}) specified by the questionnaire",
            system.unwrap_or_default()
        );
        if let Some(w) = wrong {
            msg.push_str(". Terminology Error: ");
            msg.push_str(&w);
        }
        self.qr_error("qr-answer-value-set", msg);
    }

    /// A Quantity answer's unit against the item's `questionnaire-unitValueSet`.
    fn qr_unit_value_set(&mut self, value: &Value, def: &'v Value) {
        let Some(url) = extension_value(def, "questionnaire-unitValueSet").and_then(Value::as_str)
        else {
            return;
        };
        let Some(expansion) = self.val.defs.expansion(url) else {
            return;
        };
        let system = value.get("system").and_then(Value::as_str);
        let membership = match (system, value.get("code").and_then(Value::as_str)) {
            (s, Some(code)) => expansion.check_coding(s, code),
            (Some(s), None) => expansion.check_system(s),
            (None, None) => return,
        };
        if membership == Membership::NotIn {
            self.qr_error(
                "qr-quantity-unit-value-set",
                format!(
                    "The value {} has a unit that is not in the unit value set '{url}'",
                    quantity_text(value)
                ),
            );
        }
    }

    fn qr_attachment(&mut self, value: &Value, def: &'v Value) {
        let Some(att) = value.as_object() else { return };
        let types: Vec<&str> = extension_values(def, "mimeType")
            .into_iter()
            .filter_map(Value::as_str)
            .collect();
        if let Some(ct) = att.get("contentType").and_then(Value::as_str) {
            if !types.is_empty() && !types.contains(&ct) {
                self.qr_error(
                    "qr-attachment-type",
                    format!(
                        "The mime type {ct} is not valid for this answer (allowed = {})",
                        types.join(", ")
                    ),
                );
            }
        }
        let max = extension_value(def, "maxSize").and_then(Value::as_f64);
        let size = attachment_data_len(att)
            .map(|n| n as f64)
            .or_else(|| att.get("size").and_then(Value::as_f64));
        if let (Some(max), Some(size)) = (max, size) {
            if size > max {
                self.qr_error(
                    "qr-attachment-size",
                    format!("The attachment is too large (allowed = {max}, found = {size})"),
                );
            }
        }
    }

    fn qr_reference(&mut self, value: &Value, def: &'v Value) {
        let Some(reference) = value.get("reference").and_then(Value::as_str) else {
            return;
        };
        if reference.starts_with('#') {
            return;
        }
        if reference.chars().any(char::is_whitespace) {
            self.qr_error(
                "qr-reference-invalid",
                format!(
                    "The reference {} is not a valid reference",
                    quote(reference)
                ),
            );
        }
        let path = reference.split("/_history/").next().unwrap_or(reference);
        let mut segments = path.rsplit('/');
        let (Some(_id), Some(rt)) = (segments.next(), segments.next()) else {
            return;
        };
        if !self.val.defs.is_resource_type(rt) {
            self.qr_error(
                "qr-reference-type",
                format!("The resource type {rt} in the reference {reference} is not valid"),
            );
            return;
        }
        let allowed: Vec<&str> = extension_values(def, "questionnaire-referenceResource")
            .into_iter()
            .filter_map(Value::as_str)
            .collect();
        if !allowed.is_empty() && !allowed.contains(&rt) {
            self.qr_error(
                "qr-reference-target",
                format!(
                    "The resource type '{rt}' in the reference {reference} is not allowed (allowed = {})",
                    allowed.join(",")
                ),
            );
        }
    }
}

fn is_exclusive(option: &Value) -> bool {
    is_true(extension_value(option, "questionnaire-optionExclusive"))
}

/// Whether an answer value selects an option value: codings by system and code, other
/// values by equality.
fn same_option(option: &Value, value: &Value) -> bool {
    match (option, value) {
        (Value::Object(o), Value::Object(v)) => {
            o.get("code") == v.get("code")
                && (o.get("system").is_none() || o.get("system") == v.get("system"))
        }
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => option == value,
    }
}

enum QuantityOrder {
    Ordered(std::cmp::Ordering),
    /// One side has no coded unit.
    NoUnits,
    /// Units of different dimensions.
    Incompatible,
    /// Units this module cannot convert.
    Unknown,
}

fn quantity_order(value: &Value, limit: &Value) -> QuantityOrder {
    fn coded(q: &Value) -> Option<(&str, &str)> {
        q.get("system")
            .and_then(Value::as_str)
            .zip(q.get("code").and_then(Value::as_str))
    }
    let number = |q: &Value| q.get("value").and_then(Value::as_f64);
    let (Some((vs, vc)), Some((ls, lc))) = (coded(value), coded(limit)) else {
        return QuantityOrder::NoUnits;
    };
    let (Some(v), Some(l)) = (number(value), number(limit)) else {
        return QuantityOrder::Unknown;
    };
    if vs == ls && vc == lc {
        return v
            .partial_cmp(&l)
            .map_or(QuantityOrder::Unknown, QuantityOrder::Ordered);
    }
    if vs != "http://unitsofmeasure.org" || ls != vs {
        return QuantityOrder::Unknown;
    }
    match (ucum_unit(vc), ucum_unit(lc)) {
        (Some((vd, vf)), Some((ld, lf))) if vd == ld => (v * vf)
            .partial_cmp(&(l * lf))
            .map_or(QuantityOrder::Unknown, QuantityOrder::Ordered),
        (Some(_), Some(_)) => QuantityOrder::Incompatible,
        _ => QuantityOrder::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_lengths() {
        use super::super::base64_decoded_len;
        assert_eq!(base64_decoded_len("YQ=="), 1);
        assert_eq!(base64_decoded_len("YWI="), 2);
        assert_eq!(base64_decoded_len("YWJj"), 3);
        assert_eq!(base64_decoded_len("YWJj\nYQ=="), 4);
        assert_eq!(base64_decoded_len(""), 0);
    }

    #[test]
    fn ucum_units_convert() {
        assert_eq!(ucum_unit("km"), Some(("length", 1000.0)));
        assert_eq!(ucum_unit("kg"), Some(("mass", 1000.0)));
        assert_eq!(ucum_unit("[mi_i]"), Some(("length", 1609.344)));
        assert_eq!(ucum_unit("furlong"), None);
    }
}
