//! Rules the HL7 validator checks on particular conformance resources, against the
//! SearchParameters we hold (R4 core and extra definitions): a CapabilityStatement's
//! search parameters have their definition's type, and a SearchParameter `derivedFrom`
//! another keeps its type and bases, and its expression starts from its bases.

use serde_json::Value;

use super::{array, Walker};
use crate::issue::{IssueCode, Severity};

fn string<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// The parts of a FHIRPath union (`A.x | B.y`) at the top level: `|` inside parentheses
/// or string literals does not split.
fn union_parts(expr: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut quoted, mut start) = (0usize, false, 0usize);
    for (i, c) in expr.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth = depth.saturating_sub(1),
            '|' if !quoted && depth == 0 => {
                parts.push(expr[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(expr[start..].trim());
    parts
}

/// The name a path expression starts with (`Patient` in `(Patient.name as HumanName)`).
fn leading_name(part: &str) -> &str {
    let p = part.trim_start_matches(['(', ' ']);
    let end = p
        .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .unwrap_or(p.len());
    &p[..end]
}

impl Walker<'_, '_> {
    fn conformance_error(&mut self, key: Option<&str>, id: &'static str, msg: String) {
        let mark = self.path.len();
        if let Some(k) = key {
            self.push(k);
        }
        self.report(Severity::Error, IssueCode::Invalid, id, msg, None);
        self.pop(mark);
    }

    /// `rest.resource.searchParam`: a parameter with a known `definition` has its type.
    pub(super) fn capability_statement(&mut self, cs: &Value) {
        for (r, rest) in array(cs, "rest").iter().enumerate() {
            for (i, res) in array(rest, "resource").iter().enumerate() {
                for (j, sp) in array(res, "searchParam").iter().enumerate() {
                    let (Some(def), Some(t)) = (string(sp, "definition"), string(sp, "type"))
                    else {
                        continue;
                    };
                    let Some((def_type, _)) = self.val.defs.search_param(def) else {
                        continue;
                    };
                    if def_type != t {
                        let path = format!("rest[{r}].resource[{i}].searchParam[{j}]");
                        self.conformance_error(
                            Some(&path),
                            "capability-search-param-type",
                            format!(
                                "Type mismatch - SearchParameter '{def}' type is {def_type}, but type here is {t}"
                            ),
                        );
                    }
                }
            }
        }
    }

    /// A SearchParameter: against the one it is `derivedFrom` (same type, bases among its
    /// bases), and its expression's paths start from one of its bases.
    pub(super) fn search_parameter(&mut self, sp: &Value) {
        let bases: Vec<&str> = array(sp, "base").iter().filter_map(Value::as_str).collect();
        if let Some(expr) = string(sp, "expression") {
            self.search_expression(expr, &bases);
        }
        let Some(master) = string(sp, "derivedFrom") else {
            return;
        };
        let Some((master_type, master_bases)) = self.val.defs.search_param(master) else {
            return;
        };
        for b in &bases {
            if !master_bases.iter().any(|m| m == b || m == "Resource") {
                self.conformance_error(
                    None,
                    "search-param-base",
                    format!(
                        "The resource type {b} is not listed as a base in the SearchParameter this is derived from ({master})"
                    ),
                );
            }
        }
        if let Some(t) = string(sp, "type").filter(|t| *t != master_type) {
            self.conformance_error(
                None,
                "search-param-type",
                format!(
                    "The type {t} is different to the type {master_type} in the derivedFrom SearchParameter ({master})"
                ),
            );
        }
    }

    /// Each path of a search expression starts from a base of the parameter (or from
    /// `Resource`/`DomainResource`, which every base is); a path starting from another
    /// resource type can never match.
    fn search_expression(&mut self, expr: &str, bases: &[&str]) {
        if bases.is_empty() {
            return;
        }
        for part in union_parts(expr) {
            let name = leading_name(part);
            let foreign = self.val.defs.is_resource_type(name)
                && !matches!(name, "Resource" | "DomainResource")
                && !bases.iter().any(|b| *b == name || *b == "Resource");
            if foreign {
                self.conformance_error(
                    Some("expression"),
                    "search-param-expression",
                    format!(
                        "Error in search expression '{expr}': the name '{name}' is not valid for any of the possible types: [{}]",
                        bases.join(", ")
                    ),
                );
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn union_parts_split_at_the_top_level() {
        assert_eq!(
            union_parts("Organization.name | Organization.alias"),
            ["Organization.name", "Organization.alias"]
        );
        assert_eq!(
            union_parts("Patient.name.where(use = 'a|b') | (Patient.x as Y)"),
            ["Patient.name.where(use = 'a|b')", "(Patient.x as Y)"]
        );
        assert_eq!(leading_name("(Patient.x as Y)"), "Patient");
    }
}
