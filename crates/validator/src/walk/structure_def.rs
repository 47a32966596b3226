//! Rules the HL7 validator checks on a StructureDefinition resource's differential against
//! the base definition it names, when that base is loaded: a `constraint` on a core
//! definition names only element paths the base has (a choice element by `name[x]` or by
//! `name` + one of its types), and no differential element fixes a value other than the
//! one its base element already fixes.

use serde_json::Value;

use super::{array, Walker};
use crate::issue::{IssueCode, Severity};
use crate::model::{capitalise, NodeId, Sd};

/// Where an element path leads in a compiled definition.
enum Place {
    Found(NodeId),
    /// Inside an element whose children the compiled tree does not unfold (a datatype,
    /// a content reference): not checked here.
    Unknown,
    /// The path names a segment the definition does not have.
    Missing,
}

/// Follows `path` (`Observation.value[x]`, `Observation.valueQuantity.value`) from the root of
/// `sd`, taking the element itself (not its slices) at each step.
fn locate(sd: &Sd, path: &str) -> Place {
    let mut cur: NodeId = 0;
    for seg in path.split('.').skip(1) {
        let Some(node) = sd.nodes.get(cur) else {
            return Place::Unknown;
        };
        if node.children.is_empty() || node.content_ref.is_some() {
            return Place::Unknown;
        }
        let next = node.children.iter().copied().find(|&c| {
            sd.nodes.get(c).is_some_and(|n| {
                n.slice_name.is_none()
                    && if n.choice {
                        seg.strip_prefix(n.name.as_str()).is_some_and(|rest| {
                            rest == "[x]" || n.types.iter().any(|t| capitalise(&t.code) == rest)
                        })
                    } else {
                        n.name == seg
                    }
            })
        });
        match next {
            Some(c) => cur = c,
            None => return Place::Missing,
        }
    }
    Place::Found(cur)
}

/// The `fixed[x]` value an element definition states, if any.
fn fixed_of(e: &Value) -> Option<&Value> {
    e.as_object()?
        .iter()
        .find(|(k, _)| k.starts_with("fixed"))
        .map(|(_, v)| v)
}

fn text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

impl Walker<'_, '_> {
    /// A StructureDefinition resource: its differential against its loaded base.
    pub(super) fn structure_definition(&mut self, sd: &Value) {
        let Some(base_url) = sd.get("baseDefinition").and_then(Value::as_str) else {
            return;
        };
        if sd.get("derivation").and_then(Value::as_str) != Some("constraint") {
            return;
        }
        let Some(base) = self.val.defs.sd(base_url) else {
            return;
        };
        let elements = sd
            .get("differential")
            .map_or(&[][..], |d| array(d, "element"));
        for (i, e) in elements.iter().enumerate() {
            let Some(path) = e.get("path").and_then(Value::as_str) else {
                continue;
            };
            // A slice's elements are placed by the slice, not the base element's path.
            let plain = e
                .get("id")
                .and_then(Value::as_str)
                .is_none_or(|id| !id.contains(':'))
                && e.get("sliceName").is_none();
            if !plain {
                continue;
            }
            match locate(base, path) {
                // A profile's compiled tree holds only what its differential states.
                Place::Missing if !base.is_profile => {
                    let mark = self.push(&format!("differential.element[{i}]"));
                    self.report(
                        Severity::Error,
                        IssueCode::Invalid,
                        "sd-differential-path",
                        format!(
                            "Error generating Snapshot: the differential element path '{path}' is not an element of the base definition '{base_url}' (a choice element is named '[x]' or by one of its types)"
                        ),
                        None,
                    );
                    self.pop(mark);
                }
                Place::Found(n) => {
                    let base_fixed = base.nodes.get(n).and_then(|n| n.fixed.as_ref());
                    if let (Some(want), Some(got)) = (base_fixed, fixed_of(e)) {
                        if want != got {
                            let mark = self.push(&format!("differential.element[{i}]"));
                            self.report(
                                Severity::Error,
                                IssueCode::Value,
                                "sd-differential-fixed",
                                format!(
                                    "Value is '{}' but is fixed to '{}' in the profile, because the value must match the fixed value defined in '{base_url}'",
                                    text(got),
                                    text(want)
                                ),
                                None,
                            );
                            self.pop(mark);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}
