//! A MeasureReport against the Measure it names, when that Measure is loaded (given as an
//! extra definition, or contained), as the HL7 validator checks it: its groups,
//! populations and stratifiers are the Measure's (told apart by code), and a `cohort`
//! Measure has no score.

use serde_json::Value;

use super::{array, Walker};
use crate::issue::{IssueCode, Severity};

const MEASURE_SCORING: &str = "http://terminology.hl7.org/CodeSystem/measure-scoring";
const MEASURE_POPULATION: &str = "http://terminology.hl7.org/CodeSystem/measure-population";

/// The CodeableConcept at `key` (the first one when the element repeats).
fn code(v: &Value) -> Option<&Value> {
    match v.get("code")? {
        Value::Array(a) => a.first(),
        c => Some(c),
    }
}

fn codings(cc: &Value) -> impl Iterator<Item = (Option<&str>, &str)> {
    array(cc, "coding").iter().filter_map(|c| {
        Some((
            c.get("system").and_then(Value::as_str),
            c.get("code").and_then(Value::as_str)?,
        ))
    })
}

/// Whether two CodeableConcepts share a coding (system and code).
fn same_code(a: &Value, b: &Value) -> bool {
    codings(a).any(|x| codings(b).any(|y| x == y))
}

fn has_coding(cc: Option<&Value>, system: &str, code: &str) -> bool {
    cc.is_some_and(|cc| codings(cc).any(|c| c == (Some(system), code)))
}

/// How a CodeableConcept reads in a message: its codes, or its text.
fn display(cc: Option<&Value>) -> String {
    let Some(cc) = cc else {
        return String::new();
    };
    let codes: Vec<String> = codings(cc)
        .map(|(s, c)| match s {
            Some(s) => format!("{s}#{c}"),
            None => c.to_string(),
        })
        .collect();
    if codes.is_empty() {
        cc.get("text")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    } else {
        codes.join(", ")
    }
}

/// What a part of a Measure group is called in messages.
#[derive(Clone, Copy)]
enum Part {
    Population,
    Stratifier,
}

impl Part {
    fn key(self) -> &'static str {
        match self {
            Part::Population => "population",
            Part::Stratifier => "stratifier",
        }
    }
}

struct Context<'m> {
    scoring: Option<&'m str>,
    data_collection: bool,
}

impl<'r> Walker<'_, 'r> {
    pub(super) fn measure_report(&mut self, mr: &'r Value) {
        let Some(url) = mr.get("measure").and_then(Value::as_str) else {
            return;
        };
        let measure = match url.strip_prefix('#') {
            Some(id) => array(mr, "contained").iter().find(|c| {
                c.get("resourceType").and_then(Value::as_str) == Some("Measure")
                    && c.get("id").and_then(Value::as_str) == Some(id)
            }),
            None => self.val.defs.measure(url),
        };
        let Some(measure) = measure else {
            return;
        };
        let ctx = Context {
            scoring: measure
                .get("scoring")
                .and_then(|s| codings(s).find(|c| c.0 == Some(MEASURE_SCORING)))
                .map(|c| c.1),
            data_collection: mr.get("type").and_then(Value::as_str) == Some("data-collection"),
        };
        let defined = array(measure, "group");
        if defined.is_empty() {
            return;
        }
        let given = array(mr, "group");
        if let ([g], [d]) = (given, defined) {
            // One group each: it may be anonymous, but codes given on both sides agree.
            let mark = self.push("group[0]");
            if let (Some(gc), Some(dc)) = (code(g), code(d)) {
                if !same_code(gc, dc) {
                    self.measure_error(format!(
                        "The code for this group ({}) does not match the code of the Measure's group ({})",
                        display(Some(gc)),
                        display(Some(dc))
                    ));
                }
            }
            self.measure_group(g, d, &ctx);
            self.pop(mark);
            return;
        }
        let mut used: Vec<usize> = Vec::new();
        for (i, g) in given.iter().enumerate() {
            let mark = self.push(&format!("group[{i}]"));
            match code(g) {
                None => self.measure_error(
                    "The group has no code, so it cannot be matched to a group of the Measure"
                        .to_string(),
                ),
                Some(gc) => match defined
                    .iter()
                    .position(|d| code(d).is_some_and(|dc| same_code(gc, dc)))
                {
                    None => self.measure_error(format!(
                        "The code for this group ({}) matches no group of the Measure",
                        display(Some(gc))
                    )),
                    Some(j) if used.contains(&j) => self.measure_error(format!(
                        "The code for this group ({}) has already been used by another group",
                        display(Some(gc))
                    )),
                    Some(j) => {
                        used.push(j);
                        self.measure_group(g, &defined[j], &ctx);
                    }
                },
            }
            self.pop(mark);
        }
        if !ctx.data_collection {
            for (j, d) in defined.iter().enumerate() {
                if !used.contains(&j) {
                    self.measure_error(format!(
                        "The MeasureReport does not include a group for the group with code '{}'",
                        display(code(d))
                    ));
                }
            }
        }
    }

    fn measure_error(&mut self, msg: String) {
        self.report(
            Severity::Error,
            IssueCode::BusinessRule,
            "measure-report",
            msg,
            None,
        );
    }

    fn measure_group(&mut self, group: &'r Value, defined: &Value, ctx: &Context<'_>) {
        self.measure_parts(group, defined, Part::Population);
        self.measure_parts(group, defined, Part::Stratifier);
        if group.get("measureScore").is_none() {
            return;
        }
        let why = if ctx.data_collection {
            Some("the MeasureReport's type is 'data-collection'".to_string())
        } else if ctx.scoring == Some("cohort") {
            Some("the scoring of the Measure is 'cohort'".to_string())
        } else {
            None
        };
        if let Some(why) = why {
            let mark = self.push("measureScore");
            self.measure_error(format!("No measureScore when {why}"));
            self.pop(mark);
        }
    }

    /// The populations or stratifiers of a report group against those of the Measure group.
    fn measure_parts(&mut self, group: &'r Value, defined: &Value, part: Part) {
        let key = part.key();
        let defined_parts = array(defined, key);
        let mut used: Vec<usize> = Vec::new();
        for (i, p) in array(group, key).iter().enumerate() {
            let found = code(p).and_then(|pc| {
                defined_parts
                    .iter()
                    .position(|d| code(d).is_some_and(|dc| same_code(pc, dc)))
            });
            let msg = match (code(p), found) {
                (None, _) if matches!(part, Part::Population) => {
                    format!("The {key} has no code, so it cannot be matched to one of the Measure")
                }
                (_, None) => format!(
                    "The {key} should have a code that matches a {key} of the Measure's group"
                ),
                (_, Some(j)) if used.contains(&j) => {
                    format!("The code for this {key} has already been used by another {key}")
                }
                (_, Some(j)) => {
                    used.push(j);
                    continue;
                }
            };
            let mark = self.push(&format!("{key}[{i}]"));
            self.measure_error(msg);
            self.pop(mark);
        }
        for (j, d) in defined_parts.iter().enumerate() {
            let observation = matches!(part, Part::Population)
                && has_coding(code(d), MEASURE_POPULATION, "measure-observation");
            if used.contains(&j) || observation {
                continue;
            }
            let id = d.get("id").and_then(Value::as_str).unwrap_or_default();
            self.measure_error(format!(
                "The MeasureReport does not include a {key} for the {key} with code '{}' (id = '{id}')",
                display(code(d))
            ));
        }
    }
}
