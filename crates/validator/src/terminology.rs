//! ValueSet expansion from the vendored CodeSystems, and code membership.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use crate::model::{strip_version, FastMap, FastSet};

/// A CodeSystem reduced to its codes and their hierarchy.
#[derive(Debug, Default)]
pub(crate) struct CodeSystem {
    /// code -> parent codes.
    pub parents: HashMap<String, Vec<String>>,
    /// code -> the displays it may be shown with: its `display`, then its designations.
    displays: HashMap<String, Vec<String>>,
}

impl CodeSystem {
    pub fn from_json(v: &Value) -> CodeSystem {
        let mut cs = CodeSystem::default();
        if let Some(a) = v.get("concept").and_then(Value::as_array) {
            cs.add_concepts(a, None, 0);
        }
        cs
    }

    fn add_concepts(&mut self, concepts: &[Value], parent: Option<&str>, depth: usize) {
        // Hierarchies in real code systems are shallow; the bound protects
        // against hostile extra definitions.
        if depth > 64 {
            return;
        }
        for c in concepts {
            let Some(code) = c.get("code").and_then(Value::as_str) else {
                continue;
            };
            let entry = self.parents.entry(code.to_string()).or_default();
            if let Some(p) = parent {
                entry.push(p.to_string());
            }
            let designations = c
                .get("designation")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or(&[])
                .iter()
                .filter_map(|d| d.get("value").and_then(Value::as_str));
            let shown: Vec<String> = c
                .get("display")
                .and_then(Value::as_str)
                .into_iter()
                .chain(designations)
                .map(str::to_string)
                .collect();
            if !shown.is_empty() {
                self.displays.insert(code.to_string(), shown);
            }
            if let Some(sub) = c.get("concept").and_then(Value::as_array) {
                self.add_concepts(sub, Some(code), depth + 1);
            }
        }
    }

    /// When `display` is not a display of `code` (compared ignoring case and runs of
    /// white space, as the HL7 validator compares): the displays it may have. `None`
    /// when it is one, or when the code or its displays are unknown.
    pub fn wrong_display(&self, code: &str, display: &str) -> Option<&[String]> {
        let shown = self.displays.get(code)?;
        let wanted = normalise(display);
        (!shown.iter().any(|d| normalise(d) == wanted)).then_some(shown.as_slice())
    }

    fn is_a(&self, code: &str, ancestor: &str, depth: usize) -> bool {
        if code == ancestor {
            return true;
        }
        if depth > 64 {
            return false;
        }
        self.parents
            .get(code)
            .is_some_and(|ps| ps.iter().any(|p| self.is_a(p, ancestor, depth + 1)))
    }
}

fn normalise(s: &str) -> String {
    s.split_whitespace()
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The codes of a ValueSet, per system, as far as we can enumerate them.
#[derive(Debug, Default, Clone)]
pub(crate) struct Expansion {
    pub codes: FastMap<String, FastSet<String>>,
    /// Systems the value set draws on that we cannot enumerate (code system
    /// not vendored, or a filter we do not implement).
    pub unknown_systems: HashSet<String>,
    /// Some import could not be resolved: membership can only be confirmed.
    pub incomplete: bool,
}

/// Result of a membership test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Membership {
    In,
    NotIn,
    /// We cannot tell (system we do not have).
    Unknown,
}

impl Expansion {
    pub fn check_code(&self, code: &str) -> Membership {
        if self.codes.values().any(|s| s.contains(code)) {
            Membership::In
        } else if self.incomplete || !self.unknown_systems.is_empty() {
            Membership::Unknown
        } else {
            Membership::NotIn
        }
    }

    pub fn check_coding(&self, system: Option<&str>, code: &str) -> Membership {
        let Some(system) = system else {
            return self.check_code(code);
        };
        if self.codes.get(system).is_some_and(|s| s.contains(code)) {
            Membership::In
        } else if self.unknown_systems.contains(system) || self.incomplete {
            Membership::Unknown
        } else {
            Membership::NotIn
        }
    }

    /// Whether the value set draws on `system` at all (for a coding without a code).
    pub fn check_system(&self, system: &str) -> Membership {
        if self.codes.contains_key(system) {
            Membership::In
        } else if self.unknown_systems.contains(system) || self.incomplete {
            Membership::Unknown
        } else {
            Membership::NotIn
        }
    }

    fn union(&mut self, other: &Expansion) {
        for (s, codes) in &other.codes {
            self.codes
                .entry(s.clone())
                .or_default()
                .extend(codes.iter().cloned());
        }
        self.unknown_systems
            .extend(other.unknown_systems.iter().cloned());
        self.incomplete |= other.incomplete;
    }
}

/// Expands `url` using the given definitions. Cycles and unknown imports make
/// the result incomplete rather than failing.
pub(crate) fn expand(
    url: &str,
    value_sets: &HashMap<String, Value>,
    code_systems: &HashMap<String, CodeSystem>,
    stack: &mut Vec<String>,
) -> Expansion {
    let mut out = Expansion::default();
    let Some(vs) = value_sets.get(url) else {
        out.incomplete = true;
        return out;
    };
    if stack.iter().any(|s| s == url) || stack.len() > 16 {
        out.incomplete = true;
        return out;
    }
    stack.push(url.to_string());
    if let Some(contains) = vs
        .get("expansion")
        .and_then(|e| e.get("contains"))
        .and_then(Value::as_array)
    {
        add_contains(&mut out, contains, 0);
    } else if let Some(compose) = vs.get("compose") {
        for inc in compose
            .get("include")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[])
        {
            let part = expand_include(inc, value_sets, code_systems, stack);
            out.union(&part);
        }
        for exc in compose
            .get("exclude")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[])
        {
            let part = expand_include(exc, value_sets, code_systems, stack);
            for (s, codes) in &part.codes {
                if let Some(mine) = out.codes.get_mut(s) {
                    mine.retain(|c| !codes.contains(c));
                }
            }
        }
    }
    stack.pop();
    out
}

fn add_contains(out: &mut Expansion, contains: &[Value], depth: usize) {
    if depth > 64 {
        return;
    }
    for c in contains {
        if let (Some(s), Some(code)) = (
            c.get("system").and_then(Value::as_str),
            c.get("code").and_then(Value::as_str),
        ) {
            out.codes
                .entry(s.to_string())
                .or_default()
                .insert(code.to_string());
        }
        if let Some(sub) = c.get("contains").and_then(Value::as_array) {
            add_contains(out, sub, depth + 1);
        }
    }
}

fn expand_include(
    inc: &Value,
    value_sets: &HashMap<String, Value>,
    code_systems: &HashMap<String, CodeSystem>,
    stack: &mut Vec<String>,
) -> Expansion {
    let mut out = Expansion::default();
    let mut imported: Option<Expansion> = None;
    for imp in inc
        .get("valueSet")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        let Some(u) = imp.as_str() else { continue };
        let e = expand(strip_version(u), value_sets, code_systems, stack);
        // Several imports in one include intersect; we approximate by union,
        // which only matters for exotic value sets.
        match imported.as_mut() {
            Some(acc) => acc.union(&e),
            None => imported = Some(e),
        }
    }
    let Some(system) = inc.get("system").and_then(Value::as_str) else {
        return imported.unwrap_or_default();
    };
    let listed: Option<Vec<&str>> = inc.get("concept").and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(|c| c.get("code").and_then(Value::as_str))
            .collect()
    });
    let filters = inc.get("filter").and_then(Value::as_array);
    let cs = code_systems.get(system);
    let set = out.codes.entry(system.to_string()).or_default();
    if let Some(codes) = listed {
        set.extend(codes.iter().map(|c| c.to_string()));
    } else if let Some(cs) = cs {
        let mut all: Vec<&String> = cs.parents.keys().collect();
        if let Some(filters) = filters {
            for f in filters {
                match filter_codes(cs, f) {
                    Some(pred) => all.retain(|c| pred(c)),
                    None => {
                        out.unknown_systems.insert(system.to_string());
                    }
                }
            }
        }
        set.extend(all.into_iter().cloned());
    } else {
        out.unknown_systems.insert(system.to_string());
    }
    if let Some(imp) = imported {
        // system + valueSet: the codes must be in both.
        if let Some(mine) = out.codes.get_mut(system) {
            if let Some(theirs) = imp.codes.get(system) {
                mine.retain(|c| theirs.contains(c));
            }
        }
    }
    out
}

type CodePredicate<'a> = Box<dyn Fn(&str) -> bool + 'a>;

/// A predicate for the filters we support on a vendored code system.
fn filter_codes<'a>(cs: &'a CodeSystem, f: &'a Value) -> Option<CodePredicate<'a>> {
    let prop = f.get("property")?.as_str()?;
    let op = f.get("op")?.as_str()?;
    let value = f.get("value")?.as_str()?;
    if prop != "concept" && prop != "code" {
        return None;
    }
    match op {
        "is-a" => Some(Box::new(move |c| cs.is_a(c, value, 0))),
        "descendent-of" => Some(Box::new(move |c| c != value && cs.is_a(c, value, 0))),
        "is-not-a" => Some(Box::new(move |c| !cs.is_a(c, value, 0))),
        "=" => Some(Box::new(move |c| c == value)),
        "in" => {
            let list: HashSet<&str> = value.split(',').map(str::trim).collect();
            Some(Box::new(move |c| list.contains(c)))
        }
        _ => None,
    }
}
