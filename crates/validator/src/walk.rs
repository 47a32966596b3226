//! The validation walk: one pass over the JSON tree, following the base R4
//! definition of each element and, alongside, any profiles in play
//! ("overlays": the profile's differential elements at the same position).

use std::collections::HashSet;
use std::fmt::Write as _;

use serde_json::{Map, Value};

use crate::issue::{Issue, IssueCode, Severity};
use crate::model::{strip_version, Kind, Node, NodeId, Sd, Targets, TypeRef};
use crate::primitives::{Prim, PrimError};
use crate::{Options, Validator, MAX_ISSUES};

mod bundle;
mod conformance;
mod implied;
mod measure;
mod native;
mod structure_def;
pub(crate) use native::is_native;
mod overlay;
mod questionnaire;
mod refs;
mod terms;
mod text;
mod xhtml;

/// Deeper than any real resource; stops hostile nesting long before the stack would.
const MAX_DEPTH: usize = 96;
/// Profiles stacked on one element (a profile, its parents, type profiles, extensions).
const MAX_OVERLAYS: usize = 24;
const CORE_SD_PREFIX: &str = "http://hl7.org/fhir/StructureDefinition/";

pub(crate) fn validate(v: &Validator, resource: &Value, opts: &Options) -> Vec<Issue> {
    let mut w = Walker {
        val: v,
        opts,
        issues: Vec::new(),
        path: String::with_capacity(128),
        depth: 0,
        truncated: false,
        bundle: refs::root_entries(resource),
        bundle_root: (resource.get("resourceType").and_then(Value::as_str) == Some("Bundle"))
            .then_some(resource),
        resources: Vec::new(),
        root: resource,
        def_path: String::new(),
        type_ctx: ("", 0),
    };
    w.resource(resource, true, &[]);
    w.finish()
}

/// A position in a compiled definition.
#[derive(Clone, Copy)]
pub(crate) struct Ov<'d> {
    pub sd: &'d Sd,
    pub node: NodeId,
}

impl<'d> Ov<'d> {
    pub fn node(&self) -> &'d Node {
        &self.sd.nodes[self.node]
    }
    fn at(&self, node: NodeId) -> Ov<'d> {
        Ov { sd: self.sd, node }
    }
}

pub(crate) struct Walker<'v, 'r> {
    val: &'v Validator,
    opts: &'v Options<'v>,
    issues: Vec<Issue>,
    /// Expression of the element being checked; pushed and truncated as we go.
    path: String,
    depth: usize,
    truncated: bool,
    /// Entries of the root Bundle (or resources of the root Parameters), for resolving
    /// references.
    bundle: Vec<refs::Entry<'r>>,
    /// The root, when it is a Bundle.
    bundle_root: Option<&'r Value>,
    /// The resources being walked, innermost last (for `#id` references).
    resources: Vec<&'r Value>,
    /// `%rootResource` for FHIRPath: the innermost resource being walked that is not a
    /// contained resource (a Bundle entry's or a Parameters resource is its own root).
    root: &'r Value,
    /// Definition path of the current element (`Patient.name`), for
    /// extension contexts.
    def_path: String,
    /// The same position named from the data type the value is an instance of
    /// (`HumanName.family` for `Patient.contact.name.family`): the type's name
    /// followed by `def_path[offset..]` (`("", 0)` inside a resource: the
    /// resource's own path). See [`Walker::type_path_is`].
    type_ctx: (&'v str, usize),
}

pub(crate) fn json_kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Shortens user values quoted in diagnostics.
pub(crate) fn quote(s: &str) -> String {
    let mut end = s.len().min(80);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    if end < s.len() {
        format!("\"{}...\"", &s[..end])
    } else {
        format!("\"{s}\"")
    }
}

impl<'v, 'r> Walker<'v, 'r> {
    fn finish(mut self) -> Vec<Issue> {
        // Profiles restate base rules; report each finding once. Slice
        // findings share the sliced element's path, so their text (which
        // names the slice) is part of what makes them distinct; so do a
        // MeasureReport group's missing populations and stratifiers.
        let mut seen = HashSet::new();
        self.issues.retain(|i| {
            let detail = if i.message_id.starts_with("slice-") || i.message_id == "measure-report" {
                i.diagnostics.clone()
            } else {
                String::new()
            };
            seen.insert((
                i.severity,
                i.code,
                i.expression.clone(),
                i.message_id,
                detail,
            ))
        });
        if self.truncated {
            self.issues.push(Issue {
                severity: Severity::Warning,
                code: IssueCode::TooCostly,
                diagnostics: format!("Too many issues; only the first {MAX_ISSUES} are reported"),
                expression: String::new(),
                message_id: "too-many-issues",
                profile: None,
            });
        }
        self.issues.sort_by_key(|i| i.severity);
        self.issues
    }

    pub(crate) fn report(
        &mut self,
        severity: Severity,
        code: IssueCode,
        message_id: &'static str,
        diagnostics: String,
        profile: Option<&str>,
    ) {
        if self.issues.len() >= MAX_ISSUES {
            self.truncated = true;
            return;
        }
        self.issues.push(Issue {
            severity,
            code,
            diagnostics,
            expression: self.path.clone(),
            message_id,
            profile: profile.map(str::to_string),
        });
    }

    pub(crate) fn push(&mut self, seg: &str) -> usize {
        let len = self.path.len();
        if !self.path.is_empty() {
            self.path.push('.');
        }
        self.path.push_str(seg);
        len
    }

    fn push_index(&mut self, i: usize) -> usize {
        let len = self.path.len();
        let _ = write!(self.path, "[{i}]");
        len
    }

    fn pop(&mut self, len: usize) {
        self.path.truncate(len);
    }

    /// Validates a resource at the current path (the root, or a contained /
    /// Bundle entry resource).
    fn resource(&mut self, v: &'r Value, is_root: bool, type_profiles: &[&'v str]) {
        let mark = self.path.len();
        let Some(obj) = v.as_object() else {
            if is_root {
                self.push("Resource");
            }
            let msg = format!(
                "A FHIR resource must be a JSON object, found {}",
                json_kind_name(v)
            );
            self.report(
                Severity::Error,
                IssueCode::Structure,
                "not-object",
                msg,
                None,
            );
            self.pop(mark);
            return;
        };
        let rt = match obj.get("resourceType") {
            Some(Value::String(s)) => s.as_str(),
            other => {
                self.push(if is_root {
                    "Resource.resourceType"
                } else {
                    "resourceType"
                });
                let msg = match other {
                    None => "resourceType is missing: every FHIR resource must name its type"
                        .to_string(),
                    Some(o) => {
                        format!("resourceType must be a string, found {}", json_kind_name(o))
                    }
                };
                self.report(
                    Severity::Error,
                    IssueCode::Structure,
                    "missing-resource-type",
                    msg,
                    None,
                );
                self.pop(mark);
                return;
            }
        };
        let Some(sd) = self
            .val
            .defs
            .base(rt)
            .filter(|sd| sd.kind == Kind::Resource && !sd.is_abstract)
        else {
            self.push(if is_root {
                "Resource.resourceType"
            } else {
                "resourceType"
            });
            if self.val.defs.is_resource_type(rt) && rt != "Resource" && rt != "DomainResource" {
                let msg = format!(
                    "{rt} is an R4 resource type this validator has no definition for; its content was not checked"
                );
                self.report(
                    Severity::Warning,
                    IssueCode::NotSupported,
                    "resource-not-validated",
                    msg,
                    None,
                );
            } else {
                let msg = format!("{} is not a FHIR R4 resource type", quote(rt));
                self.report(
                    Severity::Error,
                    IssueCode::Structure,
                    "unknown-resource-type",
                    msg,
                    None,
                );
            }
            self.pop(mark);
            return;
        };
        if is_root {
            self.push(rt);
        }
        let mut overlays = self.resource_profiles(rt, obj, is_root);
        for url in type_profiles {
            self.add_profile(url, rt, &mut overlays);
        }
        self.resources.push(v);
        let saved_root = self.root;
        if !self.def_path.ends_with(".contained") {
            self.root = v;
        }
        let saved_def = std::mem::replace(&mut self.def_path, rt.to_string());
        let saved_type = std::mem::take(&mut self.type_ctx);
        let base = Ov { sd, node: 0 };
        self.object(obj, base, &overlays, true, None);
        self.constraints(v, None, rt, &[base], &overlays);
        match rt {
            "QuestionnaireResponse" => self.questionnaire_response(v),
            "MeasureReport" => self.measure_report(v),
            "CapabilityStatement" => self.capability_statement(v),
            "SearchParameter" => self.search_parameter(v),
            "StructureDefinition" => self.structure_definition(v),
            "Bundle" => self.bundle_rules(obj),
            _ => {}
        }
        if obj.get("_id").is_some_and(|x| x.get("extension").is_some()) {
            let mark = self.push("id");
            self.report(
                Severity::Error,
                IssueCode::Structure,
                "resource-id-extension",
                "Extensions are not allowed on Resource.id".to_string(),
                None,
            );
            self.pop(mark);
        }
        self.def_path = saved_def;
        self.type_ctx = saved_type;
        self.root = saved_root;
        self.resources.pop();
        self.pop(mark);
    }

    /// The profiles that apply to this resource, with their parent profiles.
    fn resource_profiles(
        &mut self,
        rt: &str,
        obj: &Map<String, Value>,
        is_root: bool,
    ) -> Vec<Ov<'v>> {
        let mut urls: Vec<(&str, bool)> = Vec::new();
        let opts = self.opts;
        for (t, u) in opts.profiles_by_type {
            if *t == rt {
                urls.push((u, false));
            }
        }
        if is_root {
            urls.extend(opts.root_profiles.iter().map(|u| (*u, false)));
        }
        let defs = &self.val.defs;
        urls.extend(
            defs.global
                .iter()
                .filter(|(t, _)| t == rt)
                .map(|(_, p)| (p.as_str(), false)),
        );
        let mut out: Vec<Ov<'v>> = Vec::new();
        for (url, _) in urls {
            self.add_profile(url, rt, &mut out);
        }
        if rt == "Observation" {
            if let Some((url, name, system, code)) = implied::vital_signs_profile(obj) {
                if defs.sd(url).is_some() {
                    let msg = format!(
                        "{} is checked against the {name} profile ({url}), which the FHIR specification requires of an Observation with the {system} code {code}",
                        self.path
                    );
                    self.report(
                        Severity::Information,
                        IssueCode::Informational,
                        "vital-signs-profile",
                        msg,
                        Some(url),
                    );
                    self.add_profile(url, rt, &mut out);
                }
            }
        }
        let metas = obj
            .get("meta")
            .and_then(|m| m.get("profile"))
            .and_then(Value::as_array);
        for (i, p) in metas.map(Vec::as_slice).unwrap_or(&[]).iter().enumerate() {
            let Some(url) = p.as_str() else { continue };
            if self.val.defs.sd(strip_version(url)).is_some() {
                self.add_profile(url, rt, &mut out);
            } else {
                let mark = self.push("meta.profile");
                self.push_index(i);
                let msg = format!(
                    "Profile {} is not known to this validator; the resource was checked against base R4 and the configured profiles only",
                    quote(url)
                );
                self.report(
                    Severity::Warning,
                    IssueCode::NotSupported,
                    "unknown-profile",
                    msg,
                    None,
                );
                self.pop(mark);
            }
        }
        out
    }

    fn add_profile(&mut self, url: &str, rt: &str, out: &mut Vec<Ov<'v>>) {
        let defs = &self.val.defs;
        let Some(sd) = defs.sd(strip_version(url)) else {
            let msg = format!(
                "Profile {} is not known to this validator and was not applied",
                quote(url)
            );
            self.report(
                Severity::Warning,
                IssueCode::NotSupported,
                "unknown-profile",
                msg,
                None,
            );
            return;
        };
        if sd.type_name != rt {
            let msg = format!(
                "Profile {} is for {} resources, not {rt}",
                quote(url),
                sd.type_name
            );
            self.report(
                Severity::Error,
                IssueCode::Invalid,
                "profile-type-mismatch",
                msg,
                Some(url),
            );
            return;
        }
        let mut cur = Some(sd);
        let mut hops = 0;
        while let Some(p) = cur {
            if !p.is_profile || hops > 10 || out.iter().any(|o| std::ptr::eq(o.sd, p)) {
                break;
            }
            out.push(Ov { sd: p, node: 0 });
            cur = p.base_definition.as_deref().and_then(|b| defs.sd(b));
            hops += 1;
        }
    }

    /// Checks the properties of one JSON object against `base` (the element
    /// or type definition it is an instance of) and the overlays.
    fn object(
        &mut self,
        obj: &'r Map<String, Value>,
        base: Ov<'v>,
        ovs: &[Ov<'v>],
        is_resource: bool,
        primitive_host: Option<&str>,
    ) {
        if self.depth >= MAX_DEPTH {
            let msg = format!("Nesting deeper than {MAX_DEPTH} levels is not accepted");
            self.report(Severity::Error, IssueCode::Structure, "too-deep", msg, None);
            return;
        }
        self.depth += 1;
        let node = base.node();
        if !is_resource && obj.keys().all(|k| k == "id") {
            let msg =
                "All FHIR elements must have a value or children; this object is empty".to_string();
            self.report(Severity::Error, IssueCode::Invariant, "ele-1", msg, None);
        }
        let has_underscore = obj.keys().any(|k| k.starts_with('_'));
        for (key, val) in obj {
            if is_resource && key == "resourceType" {
                continue;
            }
            let (name, is_ext) = match key.strip_prefix('_') {
                Some(n) => (n, true),
                None => (key.as_str(), false),
            };
            let Some(&(child_id, ti)) = node.index.get(name) else {
                self.unknown_element(key, node);
                continue;
            };
            let child = &base.sd.nodes[child_id];
            let primitive = child.types.get(ti).is_some_and(|t| t.prim.is_some());
            if is_ext {
                if !primitive {
                    self.unknown_element(key, node);
                } else if !obj.contains_key(name) {
                    self.element(base.at(child_id), ti, name, None, Some(val), ovs);
                }
                continue;
            }
            let ext = if has_underscore && primitive {
                obj.get(&format!("_{name}"))
            } else {
                None
            };
            self.element(base.at(child_id), ti, name, Some(val), ext, ovs);
        }
        for &r in &node.required {
            let c = &base.sd.nodes[r];
            if count_values(obj, c) == 0 {
                let shown = if c.choice {
                    format!("{}[x]", c.name)
                } else {
                    c.name.clone()
                };
                let mark = self.push(&shown);
                let msg = format!(
                    "{} is required (min {}) but is missing",
                    self.path,
                    c.min.unwrap_or(1)
                );
                self.report(
                    Severity::Error,
                    IssueCode::Required,
                    "cardinality-min",
                    msg,
                    None,
                );
                self.pop(mark);
            }
        }
        for ov in ovs {
            self.overlay_children(obj, *ov);
        }
        let host_type = match primitive_host {
            Some(p) => p,
            None if is_resource || base.node == 0 => base.sd.type_name.as_str(),
            None => "BackboneElement",
        };
        self.extension_contexts(obj, host_type, is_resource);
        self.depth -= 1;
    }

    fn unknown_element(&mut self, key: &str, parent: &Node) {
        let mark = self.push(key);
        let msg = format!(
            "Unknown element {}: {} has no element of that name in FHIR R4",
            quote(key),
            parent.path
        );
        self.report(
            Severity::Error,
            IssueCode::Structure,
            "unknown-element",
            msg,
            None,
        );
        self.pop(mark);
    }

    /// One property (with its `_name` sibling): array shape, cardinality,
    /// then each value.
    fn element(
        &mut self,
        child: Ov<'v>,
        ti: usize,
        json_name: &str,
        value: Option<&'r Value>,
        ext: Option<&'r Value>,
        parent_ovs: &[Ov<'v>],
    ) {
        let dmark = self.def_path.len();
        self.def_path.push('.');
        self.def_path.push_str(&child.node().name);
        self.element_values(child, ti, json_name, value, ext, parent_ovs);
        self.def_path.truncate(dmark);
    }

    fn element_values(
        &mut self,
        child: Ov<'v>,
        ti: usize,
        json_name: &str,
        value: Option<&'r Value>,
        ext: Option<&'r Value>,
        parent_ovs: &[Ov<'v>],
    ) {
        let node = child.node();
        let mark = self.push(json_name);
        let child_ovs = self.child_overlays(parent_ovs, node, ti, json_name);
        if node.many {
            let (Some(vals), Some(exts)) = (self.as_array(value), self.as_array(ext)) else {
                self.pop(mark);
                return;
            };
            let n = vals.len().max(exts.len());
            if let Some(max) = node.max_allowed() {
                if n > max as usize {
                    let msg = format!("{} allows at most {max} values but has {n}", self.path);
                    self.report(
                        Severity::Error,
                        IssueCode::Invalid,
                        "cardinality-max",
                        msg,
                        None,
                    );
                }
            }
            for i in 0..n {
                let (v, e) = (vals.get(i), exts.get(i));
                let item_ovs = match v {
                    Some(item) => self.slice_overlays(&child_ovs, item),
                    None => child_ovs.clone(),
                };
                let m = self.push_index(i);
                self.item(child, ti, v, e, &item_ovs);
                self.pop(m);
            }
        } else {
            for (v, what) in [(value, "value"), (ext, "extension object")] {
                if let Some(Value::Array(_)) = v {
                    let msg = format!(
                        "{} must be a single {what}, not an array (it does not repeat)",
                        self.path
                    );
                    self.report(
                        Severity::Error,
                        IssueCode::Structure,
                        "array-not-allowed",
                        msg,
                        None,
                    );
                    self.pop(mark);
                    return;
                }
            }
            self.item(child, ti, value, ext, &child_ovs);
        }
        self.pop(mark);
    }

    /// The items of a repeating property; `None` after reporting a shape error.
    fn as_array<'a>(&mut self, v: Option<&'a Value>) -> Option<&'a [Value]> {
        match v {
            None => Some(&[]),
            Some(Value::Array(a)) if a.is_empty() => {
                let msg = format!(
                    "{} is an empty array; omit the property if it has no values",
                    self.path
                );
                self.report(
                    Severity::Error,
                    IssueCode::Structure,
                    "empty-array",
                    msg,
                    None,
                );
                None
            }
            Some(Value::Array(a)) => Some(a.as_slice()),
            Some(other) => {
                let msg = format!(
                    "{} repeats, so it must be a JSON array, found {}",
                    self.path,
                    json_kind_name(other)
                );
                self.report(
                    Severity::Error,
                    IssueCode::Structure,
                    "array-expected",
                    msg,
                    None,
                );
                None
            }
        }
    }

    /// One value of an element.
    fn item(
        &mut self,
        child: Ov<'v>,
        ti: usize,
        v: Option<&'r Value>,
        ext: Option<&'r Value>,
        ovs: &[Ov<'v>],
    ) {
        let node = child.node();
        let tref = node.types.get(ti);
        let tcode = match tref {
            Some(t) => t.code.as_str(),
            None if !node.children.is_empty() || node.content_ref.is_some() => "BackboneElement",
            None => "Element",
        };
        if let Some(prim) = tref.and_then(|t| t.prim) {
            self.primitive_item(child, prim, v, ext, ovs);
            return;
        }
        let Some(val) = v else { return };
        let Value::Object(obj) = val else {
            let msg = format!(
                "{} must be a JSON object ({tcode}), found {}",
                self.path,
                json_kind_name(val)
            );
            self.report(
                Severity::Error,
                IssueCode::Structure,
                "type-mismatch",
                msg,
                None,
            );
            return;
        };
        let type_sd = tref
            .and_then(|t| t.sd_index)
            .and_then(|i| self.val.defs.at(i));
        let resource_typed = tcode == "Resource"
            || tcode == "DomainResource"
            || type_sd.is_some_and(|sd| sd.kind == Kind::Resource);
        if resource_typed {
            let profiles = self.resource_type_profiles(tref, ovs, obj);
            self.nested_resource(tcode, obj, val, &profiles);
            return;
        }
        let target = if !node.children.is_empty() {
            child
        } else if let Some(c) = node.content_ref {
            child.at(c)
        } else if let Some(tsd) = type_sd {
            Ov { sd: tsd, node: 0 }
        } else {
            return;
        };
        if tcode == "Extension" && child.sd.type_name != "Extension" {
            self.extension_url(obj);
        }
        let (item_ovs, choices) = self.type_overlays(ovs, tref, tcode, obj);
        if tcode == "Extension" {
            self.sub_extension_urls(obj, &item_ovs);
        }
        // Inside a data type, positions are also named from the type.
        let saved_type = self.type_ctx;
        if type_sd.is_some_and(|t| std::ptr::eq(t, target.sd)) {
            self.type_ctx = (tcode, self.def_path.len());
        }
        self.object(obj, target, &item_ovs, false, None);
        self.type_ctx = saved_type;
        self.value_rules(child, tcode, val, ovs);
        // Rules of the element itself and, when the value is an instance of
        // a data type, of that type (ref-1, per-1, ext-1, ...).
        let from_type = type_sd.is_some_and(|t| std::ptr::eq(t, target.sd));
        let type_name = if from_type {
            tcode
        } else {
            target.node().path.as_str()
        };
        if from_type {
            self.constraints(val, None, type_name, &[child, target], &item_ovs);
        } else {
            self.constraints(val, None, type_name, &[child], &item_ovs);
        }
        let type_base: &[Ov<'v>] = if from_type { &[target] } else { &[] };
        for candidates in &choices {
            self.profile_choice(obj, val, target, type_base, type_name, candidates);
        }
        if tcode == "Reference" {
            if let Some(t) = tref {
                self.reference(obj, t, ovs);
            }
        }
        match tcode {
            "Attachment" => self.attachment_size(obj),
            "Coding" => self.coding_system(obj),
            _ => {}
        }
    }

    /// A Coding's `system` is an absolute URI naming a code system, not a value set.
    fn coding_system(&mut self, coding: &Map<String, Value>) {
        let Some(system) = coding.get("system").and_then(Value::as_str) else {
            return;
        };
        self.coding_display(system, coding);
        let msg = if !system.contains(':') {
            "Coding.system must be an absolute reference, not a local reference".to_string()
        } else if self.val.defs.is_value_set(system) {
            format!("The Coding references a value set, not a code system ('{system}')")
        } else {
            return;
        };
        let mark = self.push("system");
        self.report(
            Severity::Error,
            IssueCode::Value,
            "coding-system",
            msg,
            None,
        );
        self.pop(mark);
    }

    /// A Coding's `display` must be one of its code's displays, when we hold the code
    /// system (the FHIR code systems, ISO 3166).
    fn coding_display(&mut self, system: &str, coding: &Map<String, Value>) {
        let (Some(code), Some(display)) = (
            coding.get("code").and_then(Value::as_str),
            coding.get("display").and_then(Value::as_str),
        ) else {
            return;
        };
        let Some(valid) = self.val.defs.wrong_display(system, code, display) else {
            return;
        };
        let mark = self.push("display");
        self.report(
            Severity::Error,
            IssueCode::Invalid,
            "coding-display",
            wrong_display_message(system, code, display, valid),
            None,
        );
        self.pop(mark);
    }

    /// An Attachment's stated `size` must be the length of its `data` (as the HL7
    /// validator checks).
    fn attachment_size(&mut self, att: &Map<String, Value>) {
        let (Some(stated), Some(actual)) = (
            att.get("size").and_then(Value::as_u64),
            attachment_data_len(att),
        ) else {
            return;
        };
        if stated != actual as u64 {
            let mark = self.push("size");
            self.report(
                Severity::Error,
                IssueCode::Value,
                "attachment-size",
                format!("Stated Attachment Size {stated} does not match actual attachment size {actual}"),
                None,
            );
            self.pop(mark);
        }
    }

    fn primitive_item(
        &mut self,
        child: Ov<'v>,
        prim: Prim,
        v: Option<&'r Value>,
        ext: Option<&'r Value>,
        ovs: &[Ov<'v>],
    ) {
        let node = child.node();
        let tcode = prim.code();
        let has_ext = matches!(ext, Some(e) if !e.is_null());
        match v {
            Some(Value::Null) | None => {
                if !has_ext {
                    let msg = format!(
                        "{} is null; omit the property or give it a value",
                        self.path
                    );
                    self.report(
                        Severity::Error,
                        IssueCode::Structure,
                        "null-value",
                        msg,
                        None,
                    );
                }
            }
            Some(val) => {
                // Resource.id is declared as a string but is an id.
                let is_resource_id = node.name == "id"
                    && node.path.matches('.').count() == 1
                    && child.sd.kind == Kind::Resource;
                let checked = if is_resource_id { Prim::Id } else { prim };
                if self.primitive_value(checked, val, node) {
                    self.value_rules(child, tcode, val, ovs);
                    self.constraints(val, ext, tcode, &[child], ovs);
                }
            }
        }
        match ext {
            Some(Value::Object(eobj)) => {
                if let Some(el) = self.val.defs.base("Element") {
                    self.object(eobj, Ov { sd: el, node: 0 }, &[], false, Some(tcode));
                }
            }
            Some(Value::Null) | None => {
                if matches!(v, Some(Value::Null)) && !has_ext {
                    // Already reported as a null value.
                }
            }
            Some(other) => {
                let msg = format!(
                    "The id/extension sibling of {} must be a JSON object, found {}",
                    self.path,
                    json_kind_name(other)
                );
                self.report(
                    Severity::Error,
                    IssueCode::Structure,
                    "type-mismatch",
                    msg,
                    None,
                );
            }
        }
    }

    /// The profiles an element's type (in the base or a profile) names for the resource it
    /// holds (`Bundle.entry.resource`, `Parameters.parameter.resource`): those of the
    /// resource's own type, where a type names one (a choice of several is left alone).
    fn resource_type_profiles(
        &self,
        tref: Option<&'v TypeRef>,
        ovs: &[Ov<'v>],
        obj: &Map<String, Value>,
    ) -> Vec<&'v str> {
        let rt = obj
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or("");
        let defs = &self.val.defs;
        let mut out: Vec<&'v str> = Vec::new();
        let types = tref
            .into_iter()
            .chain(ovs.iter().flat_map(|o| o.node().types.iter()));
        for t in types {
            if let [one] = t.profiles.as_slice() {
                let fits = defs
                    .sd(strip_version(one))
                    .is_some_and(|sd| sd.type_name == rt);
                if fits && !out.contains(&one.as_str()) {
                    out.push(one);
                }
            }
        }
        out
    }

    /// A resource inside another (contained, Bundle entry, Parameters):
    /// validated as a resource of its own type, the path continuing through.
    fn nested_resource(
        &mut self,
        tcode: &str,
        obj: &Map<String, Value>,
        val: &'r Value,
        profiles: &[&'v str],
    ) {
        if !self.val.validate_contained && self.def_path.ends_with(".contained") {
            return;
        }
        if tcode != "Resource" && tcode != "DomainResource" {
            if let Some(rt) = obj.get("resourceType").and_then(Value::as_str) {
                if rt != tcode {
                    let msg = format!("{} must be a {tcode} resource, found {rt}", self.path);
                    self.report(
                        Severity::Error,
                        IssueCode::Invalid,
                        "resource-type-mismatch",
                        msg,
                        None,
                    );
                }
            }
        }
        self.resource(val, false, profiles);
    }

    /// Checks JSON type and format; returns whether the value is well-formed.
    fn primitive_value(&mut self, prim: Prim, val: &Value, node: &Node) -> bool {
        if prim == Prim::Xhtml {
            self.narrative_div(val);
        }
        let code = prim.code();
        match self.val.regexes.check(prim, val) {
            Ok(()) => {}
            Err(PrimError::JsonType(expected)) => {
                let msg = format!(
                    "{} must be {expected} ({code}), found {}",
                    self.path,
                    json_kind_name(val)
                );
                self.report(
                    Severity::Error,
                    IssueCode::Structure,
                    "type-mismatch",
                    msg,
                    None,
                );
                return false;
            }
            Err(PrimError::Empty) => {
                let msg = format!(
                    "{} must not be empty; omit the property if there is no value",
                    self.path
                );
                self.report(Severity::Error, IssueCode::Value, "empty-string", msg, None);
                return false;
            }
            Err(PrimError::Format(hint)) => {
                let shown = match val {
                    Value::String(s) => quote(s),
                    other => other.to_string(),
                };
                let id = match prim {
                    Prim::Date => "invalid-date",
                    Prim::DateTime => "invalid-datetime",
                    Prim::Instant => "invalid-instant",
                    _ => "invalid-format",
                };
                let msg = format!("{} value {shown} is not {hint}", self.path);
                self.report(Severity::Error, IssueCode::Value, id, msg, None);
                return false;
            }
            Err(PrimError::Whitespace) => {
                let msg = format!("{} starts or ends with whitespace", self.path);
                self.report(Severity::Warning, IssueCode::Value, "whitespace", msg, None);
            }
        }
        if let Value::String(s) = val {
            if let Some(max) = node.max_length {
                if s.chars().count() > max {
                    let msg = format!("{} is longer than the maximum length {max}", self.path);
                    self.report(Severity::Error, IssueCode::Value, "max-length", msg, None);
                }
            }
            self.text_rules(prim, s, node);
        }
        true
    }

    /// Extensions whose definition we know must be used where their
    /// `context` allows (element paths or types, or inside given extensions).
    fn extension_contexts(&mut self, obj: &Map<String, Value>, host_type: &str, is_resource: bool) {
        for key in ["extension", "modifierExtension"] {
            let Some(Value::Array(items)) = obj.get(key) else {
                continue;
            };
            for (i, e) in items.iter().enumerate() {
                let Some(url) = e.get("url").and_then(Value::as_str) else {
                    continue;
                };
                let Some(sd) = self.val.defs.sd(strip_version(url)) else {
                    // A plain name is a complex extension's own sub-extension.
                    if !self.val.allow_unknown_extensions
                        && url.contains(':')
                        && !unknown_extension_allowed(url, self.val.allow_example_urls)
                    {
                        self.extension_issue(
                            key,
                            i,
                            "extension-unknown",
                            format!(
                                "The extension {url} could not be found so is not allowed here"
                            ),
                        );
                    }
                    continue;
                };
                if sd.type_name != "Extension" {
                    continue;
                }
                match (key, sd.is_modifier) {
                    ("extension", Some(true)) => self.extension_issue(
                        key,
                        i,
                        "extension-modifier",
                        format!("The extension {url} must not be used as an extension (it is a modifierExtension)"),
                    ),
                    ("modifierExtension", Some(false)) => self.extension_issue(
                        key,
                        i,
                        "extension-modifier",
                        format!("The extension {url} must not be used as a modifierExtension (it is a regular extension)"),
                    ),
                    _ => {}
                }
                if sd.contexts.is_empty() {
                    continue;
                }
                let allowed = sd.contexts.iter().any(|(kind, expr)| match kind.as_str() {
                    "element" => {
                        let x = expr.trim_end_matches("[x]");
                        x == self.def_path
                            || self.type_path_is(x)
                            || x == host_type
                            || x == "Element"
                            || x == "Any"
                            || (is_resource && (x == "Resource" || x == "DomainResource"))
                            // R5's abstract CanonicalResource (an extension defined for R5
                            // used on R4) stands for the R4 canonical resource types.
                            || (is_resource
                                && x == "CanonicalResource"
                                && text::is_canonical_resource(host_type))
                    }
                    "extension" => {
                        host_type == "Extension"
                            && obj.get("url").and_then(Value::as_str) == Some(expr)
                    }
                    // A FHIRPath context is judged by its leading path
                    // (`Patient.address.where(..)` -> `Patient.address`);
                    // anything more complex is allowed.
                    "fhirpath" => fhirpath_context_path(expr)
                        .is_none_or(|p| p == self.def_path || self.type_path_is(p)),
                    _ => true,
                });
                if !allowed {
                    let mark = self.push(key);
                    self.push_index(i);
                    let places: Vec<&str> = sd.contexts.iter().map(|(_, e)| e.as_str()).collect();
                    let msg = format!(
                        "{}: extension {} is not allowed on {} ({host_type}); its definition allows it on: {}",
                        self.path,
                        quote(url),
                        self.def_path,
                        places.join(", ")
                    );
                    self.report(
                        Severity::Error,
                        IssueCode::Invalid,
                        "extension-context",
                        msg,
                        Some(&sd.url),
                    );
                    self.pop(mark);
                }
            }
        }
    }

    /// An error about the `i`th item of `extension` or `modifierExtension`.
    fn extension_issue(&mut self, key: &str, i: usize, id: &'static str, msg: String) {
        let mark = self.push(key);
        self.push_index(i);
        self.report(Severity::Error, IssueCode::Structure, id, msg, None);
        self.pop(mark);
    }

    /// Whether `path` names the current position from its data type (see `type_ctx`).
    fn type_path_is(&self, path: &str) -> bool {
        let (type_name, offset) = self.type_ctx;
        path.strip_prefix(type_name)
            .is_some_and(|rest| Some(rest) == self.def_path.get(offset..))
    }

    /// A top-level extension's url must be absolute (only sub-extensions
    /// of a complex extension use plain names).
    fn extension_url(&mut self, obj: &Map<String, Value>) {
        if let Some(Value::String(u)) = obj.get("url") {
            if !u.contains(':') {
                let mark = self.push("url");
                let msg = format!(
                    "{} {} must be an absolute URL identifying the extension",
                    self.path,
                    quote(u)
                );
                self.report(
                    Severity::Error,
                    IssueCode::Value,
                    "extension-url",
                    msg,
                    None,
                );
                self.pop(mark);
            }
        }
    }

    /// Reference format and target type.
    fn reference(&mut self, obj: &Map<String, Value>, tref: &TypeRef, ovs: &[Ov<'v>]) {
        // Profiles may narrow the targets; resolved only when a reference names a type.
        let mut targets: &TypeRef = tref;
        let mut aggregation = tref.aggregation;
        for ov in ovs {
            for t in &ov.node().types {
                if t.code == "Reference" && !t.target_profiles.is_empty() {
                    targets = t;
                }
                if t.code == "Reference" && t.aggregation.restricts() {
                    aggregation = t.aggregation;
                }
            }
        }
        if let Some(Value::String(s)) = obj.get("reference") {
            if !self.bundle.is_empty() || self.val.check_references_exist {
                self.reference_ambiguity(s);
                self.reference_exists(s);
            }
            if aggregation.restricts() {
                self.reference_aggregation(s, aggregation);
            }
            let mark = self.push("reference");
            match self.reference_type(s) {
                Err(()) => {
                    // Base R4 only forbids white space (a reference is a string); the
                    // resolvable forms are the gateway's rule (`strict_reference_format`).
                    let severity = if self.val.strict_reference_format
                        || s.is_empty()
                        || s.chars().any(char::is_whitespace)
                    {
                        Severity::Error
                    } else {
                        Severity::Warning
                    };
                    let msg = format!(
                        "{} {} is not a valid reference: use 'Type/id', '#id' for a contained resource, an absolute URL or 'urn:uuid:<uuid>'",
                        self.path,
                        quote(s)
                    );
                    self.report(severity, IssueCode::Value, "reference-format", msg, None);
                }
                Ok(Some(t)) => {
                    if self.val.assume_valid_rest_references {
                        self.check_target(t, targets);
                    } else if let Some(found) = self.resolve(s) {
                        // The resource it resolves to says what it is.
                        let rt = found.get("resourceType").and_then(Value::as_str);
                        self.check_target(rt.unwrap_or(t), targets);
                    }
                }
                Ok(None) => {}
            }
            self.pop(mark);
        }
        if let Some(Value::String(t)) = obj.get("type") {
            let mark = self.push("type");
            self.check_target(t, targets);
            self.pop(mark);
        }
    }

    fn check_target(&mut self, t: &str, targets: &TypeRef) {
        let looked_up;
        let allowed: &[String] = match &targets.targets {
            Targets::Any => return,
            Targets::Listed(l) => l,
            Targets::Lookup => match self.target_types(&targets.target_profiles) {
                Some(l) => {
                    looked_up = l;
                    &looked_up
                }
                None => return,
            },
        };
        if !allowed.iter().any(|a| a == t) {
            let msg = format!(
                "{} refers to a {t}, but only {} may be referenced here",
                self.path,
                allowed.join(", ")
            );
            self.report(
                Severity::Error,
                IssueCode::Invalid,
                "reference-target-type",
                msg,
                None,
            );
        }
    }

    /// Resource type names allowed by target profiles; `None` = any.
    fn target_types(&self, target_profiles: &[String]) -> Option<Vec<String>> {
        let mut out = Vec::new();
        for p in target_profiles {
            let p = strip_version(p);
            let name = match (self.val.defs.sd(p), p.strip_prefix(CORE_SD_PREFIX)) {
                (Some(sd), _) => sd.type_name.clone(),
                (None, Some(n)) if !n.contains('/') => n.to_string(),
                (None, _) => return None,
            };
            if name == "Resource" || name == "DomainResource" {
                return None;
            }
            out.push(name);
        }
        if out.is_empty() {
            None
        } else {
            Some(out)
        }
    }

    /// The resource type a reference string names, `Ok(None)` when it names
    /// none (contained, urn:uuid), `Err` when the string is malformed.
    fn reference_type<'s>(&self, s: &'s str) -> Result<Option<&'s str>, ()> {
        if s.is_empty() || s.chars().any(char::is_whitespace) {
            return Err(());
        }
        if let Some(id) = s.strip_prefix('#') {
            return if id.is_empty() || is_id(id) {
                Ok(None)
            } else {
                Err(())
            };
        }
        if s.starts_with("urn:uuid:") {
            return if self.val.regexes.is_uuid(s) {
                Ok(None)
            } else {
                Err(())
            };
        }
        if s.starts_with("urn:oid:") {
            return if self.val.regexes.is_oid(s) {
                Ok(None)
            } else {
                Err(())
            };
        }
        if let Some((scheme, rest)) = s.split_once("://") {
            if scheme.is_empty()
                || !scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                || rest.is_empty()
            {
                return Err(());
            }
            // An absolute URL: a known type before the last id is checked,
            // anything else is someone else's server layout.
            let segs: Vec<&str> = rest.split('/').collect();
            let hist = segs.iter().rposition(|x| *x == "_history");
            let end = hist.unwrap_or(segs.len());
            if end >= 2 && self.val.defs.is_resource_type(segs[end - 2]) {
                return Ok(Some(segs[end - 2]));
            }
            return Ok(None);
        }
        // Relative: Type/id[/_history/vid] or a conditional Type?query.
        if let Some((t, q)) = s.split_once('?') {
            return if self.val.defs.is_resource_type(t) && !q.is_empty() {
                Ok(Some(t))
            } else {
                Err(())
            };
        }
        let segs: Vec<&str> = s.split('/').collect();
        let ok = match segs.as_slice() {
            [t, id] => self.val.defs.is_resource_type(t) && is_id(id),
            [t, id, "_history", v] => self.val.defs.is_resource_type(t) && is_id(id) && is_id(v),
            _ => false,
        };
        if ok {
            Ok(segs.first().copied())
        } else {
            Err(())
        }
    }
}

/// The array at `v.key`, empty when absent or not an array.
pub(crate) fn array<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The HL7 validator's words for a display that is not the code's.
pub(crate) fn wrong_display_message(
    system: &str,
    code: &str,
    display: &str,
    valid: &[String],
) -> String {
    match valid {
        [one] => format!(
            "Wrong Display Name '{display}' for {system}#{code}. Valid display is '{one}'"
        ),
        many => format!(
            "Wrong Display Name '{display}' for {system}#{code}. Valid display is one of {} choices: {}",
            many.len(),
            many.iter()
                .map(|d| format!("'{d}'"))
                .collect::<Vec<_>>()
                .join(" or ")
        ),
    }
}

/// The plain element path a FHIRPath extension context starts with, when
/// the expression is a path optionally followed by one function call.
fn fhirpath_context_path(expr: &str) -> Option<&str> {
    let head = match expr.find('(') {
        Some(i) => expr[..i].rsplit_once('.')?.0,
        None => expr,
    };
    let mut segs = head.split('.');
    let first = segs.next()?;
    let ok = first.starts_with(|c: char| c.is_ascii_uppercase())
        && first.chars().all(|c| c.is_ascii_alphanumeric())
        && segs.all(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric()));
    ok.then_some(head)
}

/// Unknown extensions reported only when the HL7 validator would find no definition either:
/// not HL7's own (`http://hl7.org/fhir/..`: it resolves those from the extension packs and
/// cross-version definitions it carries and we do not; an IG's, under `/uv/` or a realm
/// such as `/us/`, it has only with that IG's package) and not in the domains it lets
/// through (nema.org, and the example domains unless example URLs are refused).
fn unknown_extension_allowed(url: &str, allow_examples: bool) -> bool {
    let ig = url
        .strip_prefix("http://hl7.org/fhir/")
        .and_then(|rest| rest.split('/').next())
        .is_some_and(|seg| {
            seg == "uv" || (seg.len() == 2 && seg.bytes().all(|b| b.is_ascii_lowercase()))
        });
    (url.starts_with("http://hl7.org/fhir/") && !ig)
        || url.contains("nema.org")
        || (allow_examples && (url.contains("example.org") || url.contains("acme.com")))
}

/// The decoded length of an Attachment's base-64 `data`.
pub(crate) fn attachment_data_len(att: &Map<String, Value>) -> Option<usize> {
    att.get("data")
        .and_then(Value::as_str)
        .map(base64_decoded_len)
}

/// The number of bytes base-64 text decodes to (white space ignored).
pub(crate) fn base64_decoded_len(data: &str) -> usize {
    let chars = data.bytes().filter(|b| !b.is_ascii_whitespace()).count();
    let pad = data
        .bytes()
        .rev()
        .filter(|b| !b.is_ascii_whitespace())
        .take_while(|&b| b == b'=')
        .count()
        .min(2);
    let tail = match chars % 4 {
        2 => 1,
        3 => 2,
        _ => 0,
    };
    ((chars / 4) * 3 + tail).saturating_sub(pad)
}

pub(crate) fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// How many values `obj` holds for element `c` (any choice name, `_name` too).
pub(crate) fn count_values(obj: &Map<String, Value>, c: &Node) -> usize {
    let mut n = 0;
    for (k, v) in obj {
        let key = k.strip_prefix('_').unwrap_or(k);
        let hit = if c.choice {
            key.strip_prefix(c.name.as_str())
                .is_some_and(|rest| rest.starts_with(|ch: char| ch.is_ascii_uppercase()))
        } else {
            key == c.name
        };
        if hit {
            let len = match v {
                Value::Array(a) => a.len(),
                Value::Null => 0,
                _ => 1,
            };
            n = n.max(len);
        }
    }
    n
}
