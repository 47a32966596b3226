//! Profiles applied as overlays: a profile's elements sit beside the base
//! element at the same position of the walk and add their own rules
//! (cardinality, types, fixed/pattern, bindings, slices).

use serde_json::{Map, Value};

use super::terms::pattern_matches;
use super::{count_values, Ov, Walker, MAX_OVERLAYS};
use crate::issue::{Issue, IssueCode, Severity};
use crate::model::{
    capitalise, strip_version, Discriminator, DiscriminatorKind, Node, NodeId, Sd, TypeRef,
};

const EXTENSION_TYPE: &str = "Extension";

impl<'v, 'r> Walker<'v, 'r> {
    /// The overlay elements for child `node` (JSON name `json_name`, type
    /// index `ti`) of each parent overlay; reports profile type restrictions.
    pub(super) fn child_overlays(
        &mut self,
        parents: &[Ov<'v>],
        node: &Node,
        ti: usize,
        json_name: &str,
    ) -> Vec<Ov<'v>> {
        let mut out = Vec::new();
        for p in parents {
            for &c in &p.node().children {
                let oc = &p.sd.nodes[c];
                if oc.name != node.name && oc.name != json_name {
                    continue;
                }
                if node.choice && oc.name == node.name && !oc.types.is_empty() {
                    let actual = node.types.get(ti).map(|t| t.code.as_str()).unwrap_or("");
                    if !oc.types.iter().any(|t| t.code == actual) {
                        let allowed: Vec<String> = oc
                            .types
                            .iter()
                            .map(|t| format!("{}{}", node.name, capitalise(&t.code)))
                            .collect();
                        let msg = format!(
                            "{} is not allowed by profile {}: use {}",
                            self.path,
                            p.sd.url,
                            allowed.join(" or ")
                        );
                        self.report(
                            Severity::Error,
                            IssueCode::Invalid,
                            "type-not-allowed",
                            msg,
                            Some(&p.sd.url),
                        );
                        continue;
                    }
                }
                if out.len() < MAX_OVERLAYS {
                    out.push(p.at(c));
                }
            }
        }
        out
    }

    /// Adds the slices `item` belongs to.
    pub(super) fn slice_overlays(&self, ovs: &[Ov<'v>], item: &Value) -> Vec<Ov<'v>> {
        let mut out = ovs.to_vec();
        for ov in ovs {
            let n = ov.node();
            if n.slices.is_empty() {
                continue;
            }
            let discs = discriminators(n);
            for &s in &n.slices {
                if out.len() < MAX_OVERLAYS && self.matches_slice(ov.at(s), &discs, item) {
                    out.push(ov.at(s));
                }
            }
        }
        out
    }

    /// Adds definitions a value brings with it: profiles on its type (with the
    /// profiles they derive from), and the definition of an extension named by its
    /// `url`. A type that lists several profiles asks the value to conform to *one*
    /// of them: those groups are returned apart, for [`Self::profile_choice`].
    pub(super) fn type_overlays(
        &self,
        ovs: &[Ov<'v>],
        tref: Option<&TypeRef>,
        tcode: &str,
        obj: &Map<String, Value>,
    ) -> (Vec<Ov<'v>>, Vec<Vec<&'v Sd>>) {
        let mut out = ovs.to_vec();
        let mut choices = Vec::new();
        let defs = &self.val.defs;
        let mut group = |out: &mut Vec<Ov<'v>>, profiles: &[String]| {
            if profiles.is_empty() {
                return;
            }
            let known: Vec<&'v Sd> = profiles
                .iter()
                .filter_map(|p| defs.sd(strip_version(p)))
                .filter(|sd| sd.type_name == tcode)
                .collect();
            match known.as_slice() {
                [] => {}
                [one] => self.add_with_bases(out, one),
                _ => choices.push(known),
            }
        };
        if let Some(t) = tref {
            group(&mut out, &t.profiles);
        }
        for ov in ovs {
            for t in &ov.node().types {
                if t.code == tcode {
                    group(&mut out, &t.profiles);
                }
            }
        }
        if tcode == EXTENSION_TYPE {
            if let Some(url) = obj.get("url").and_then(Value::as_str) {
                if let Some(sd) = defs
                    .sd(strip_version(url))
                    .filter(|sd| sd.type_name == tcode)
                {
                    self.add_with_bases(&mut out, sd);
                }
            }
        }
        (out, choices)
    }

    /// The sub-extensions of a complex extension with a known definition: one whose `url` is
    /// a plain name (not absolute, so no definition of its own) must be one the definition
    /// slices out, as the HL7 validator requires.
    pub(super) fn sub_extension_urls(&mut self, obj: &Map<String, Value>, ovs: &[Ov<'v>]) {
        let Some(Value::Array(items)) = obj.get("extension") else {
            return;
        };
        let Some(url) = obj.get("url").and_then(Value::as_str) else {
            return;
        };
        let Some(def) = ovs.iter().find(|o| {
            o.node == 0 && o.sd.type_name == EXTENSION_TYPE && o.sd.url == strip_version(url)
        }) else {
            return;
        };
        let Some(&sliced) = def
            .node()
            .children
            .iter()
            .find(|&&c| def.sd.nodes[c].name == "extension")
        else {
            return;
        };
        let defined: Vec<Value> = def.sd.nodes[sliced]
            .slices
            .iter()
            .filter_map(|&s| self.expected_at(def.at(s), "url"))
            .collect();
        for (i, item) in items.iter().enumerate() {
            let Some(sub) = item.get("url").and_then(Value::as_str) else {
                continue;
            };
            if sub.contains(':') || defined.iter().any(|d| d.as_str() == Some(sub)) {
                continue;
            }
            let mark = self.push("extension");
            let _ = std::fmt::Write::write_fmt(&mut self.path, format_args!("[{i}]"));
            let msg = format!(
                "{}: sub-extension url {} is not defined by the extension {}",
                self.path,
                super::quote(sub),
                def.sd.url
            );
            self.report(
                Severity::Error,
                IssueCode::Invalid,
                "sub-extension-unknown",
                msg,
                Some(&def.sd.url),
            );
            self.pop(mark);
        }
    }

    /// Adds the root of profile `sd`, and of the profiles it derives from, once each.
    pub(super) fn add_with_bases(&self, out: &mut Vec<Ov<'v>>, sd: &'v Sd) {
        let mut cur = Some(sd);
        let mut hops = 0;
        while let Some(p) = cur {
            if hops > 10 || out.len() >= MAX_OVERLAYS {
                break;
            }
            if !out.iter().any(|o| std::ptr::eq(o.sd, p) && o.node == 0) {
                out.push(Ov { sd: p, node: 0 });
            }
            cur = p
                .base_definition
                .as_deref()
                .and_then(|b| self.val.defs.sd(b))
                .filter(|b| b.is_profile);
            hops += 1;
        }
    }

    /// A value whose type lists several profiles must conform to at least one, as the
    /// HL7 validator judges it: each candidate is validated on its own; when exactly one
    /// has no errors its findings stand; when none does, that is an error and the
    /// candidates' findings are all reported; when several do, a warning says so.
    pub(super) fn profile_choice(
        &mut self,
        obj: &'r Map<String, Value>,
        val: &'r Value,
        target: Ov<'v>,
        type_base: &[Ov<'v>],
        type_name: &str,
        candidates: &[&'v Sd],
    ) {
        let mut good: Vec<(&'v Sd, Vec<Issue>)> = Vec::new();
        let mut bad: Vec<Issue> = Vec::new();
        for &sd in candidates {
            let mark = self.issues.len();
            let mut ovs = Vec::new();
            self.add_with_bases(&mut ovs, sd);
            self.object(obj, target, &ovs, false, None);
            self.constraints(val, None, type_name, type_base, &ovs);
            let found: Vec<Issue> = self.issues.drain(mark..).collect();
            if found.iter().any(Issue::is_error) {
                bad.extend(found);
            } else {
                good.push((sd, found));
            }
        }
        let urls = |sds: &mut dyn Iterator<Item = &'v Sd>| {
            let mut v: Vec<&str> = sds.map(|sd| sd.url.as_str()).collect();
            v.sort_unstable();
            v.join(", ")
        };
        match good.len() {
            0 => {
                let msg = format!(
                    "{} does not conform to any of the profiles its type allows: {}",
                    self.path,
                    urls(&mut candidates.iter().copied())
                );
                self.report(
                    Severity::Error,
                    IssueCode::Structure,
                    "profile-no-match",
                    msg,
                    None,
                );
                self.issues.extend(bad);
            }
            1 => {
                let (_, found) = good.pop().unwrap_or_else(|| unreachable!());
                self.issues.extend(found);
            }
            _ => {
                let msg = format!(
                    "{} conforms to several of the profiles its type allows: {}",
                    self.path,
                    urls(&mut good.iter().map(|(sd, _)| *sd))
                );
                self.report(
                    Severity::Warning,
                    IssueCode::Structure,
                    "profile-several-matches",
                    msg,
                    None,
                );
                for (_, found) in good {
                    self.issues.extend(found);
                }
            }
        }
    }

    /// Cardinality and slicing rules of the overlay's children on `obj`.
    pub(super) fn overlay_children(&mut self, obj: &Map<String, Value>, ov: Ov<'v>) {
        let url = ov.sd.url.as_str();
        for &c in &ov.node().children {
            let oc = &ov.sd.nodes[c];
            let count = count_values(obj, oc);
            let shown = if oc.choice {
                format!("{}[x]", oc.name)
            } else {
                oc.name.clone()
            };
            if let Some(min) = oc.min {
                if (count as u64) < u64::from(min) {
                    let mark = self.push(&shown);
                    let msg = if count == 0 {
                        format!(
                            "{} is required (min {min}) by profile {url} but is missing",
                            self.path
                        )
                    } else {
                        format!(
                            "{} needs at least {min} values (profile {url}) but has {count}",
                            self.path
                        )
                    };
                    self.report(
                        Severity::Error,
                        IssueCode::Required,
                        "cardinality-min",
                        msg,
                        Some(url),
                    );
                    self.pop(mark);
                }
            }
            if let Some(Some(max)) = oc.max {
                if count as u64 > u64::from(max) {
                    let mark = self.push(&shown);
                    let msg = if max == 0 {
                        format!("{} is not allowed by profile {url}", self.path)
                    } else {
                        format!(
                            "{} allows at most {max} values (profile {url}) but has {count}",
                            self.path
                        )
                    };
                    self.report(
                        Severity::Error,
                        IssueCode::Invalid,
                        "cardinality-max",
                        msg,
                        Some(url),
                    );
                    self.pop(mark);
                }
            }
            if !oc.slices.is_empty() || oc.slicing.as_ref().is_some_and(|s| s.closed) {
                self.check_slices(obj, ov.at(c), &shown);
            }
        }
    }

    /// Slice cardinalities and closed slicing for one sliced element.
    fn check_slices(&mut self, obj: &Map<String, Value>, sliced: Ov<'v>, shown: &str) {
        let n = sliced.node();
        let url = sliced.sd.url.as_str();
        let items: Vec<&Value> = match obj.get(&n.name) {
            Some(Value::Array(a)) => a.iter().collect(),
            Some(v) => vec![v],
            None => Vec::new(),
        };
        let discs = discriminators(n);
        if discs.is_empty() {
            // We cannot tell which item belongs to which slice.
            return;
        }
        let mut matched = vec![false; items.len()];
        for &s in &n.slices {
            let slice = sliced.at(s);
            let sn = slice.node();
            let mut count = 0usize;
            for (i, item) in items.iter().enumerate() {
                if self.matches_slice(slice, &discs, item) {
                    count += 1;
                    matched[i] = true;
                }
            }
            let name = sn.slice_name.as_deref().unwrap_or("?");
            let mark = self.push(shown);
            if let Some(min) = sn.min {
                if (count as u64) < u64::from(min) {
                    let msg = format!(
                        "{} must contain at least {min} entries matching slice '{name}' of profile {url}, found {count}",
                        self.path
                    );
                    self.report(
                        Severity::Error,
                        IssueCode::Required,
                        "slice-cardinality-min",
                        msg,
                        Some(url),
                    );
                }
            }
            if let Some(Some(max)) = sn.max {
                if count as u64 > u64::from(max) {
                    let msg = format!(
                        "{} allows at most {max} entries matching slice '{name}' of profile {url}, found {count}",
                        self.path
                    );
                    self.report(
                        Severity::Error,
                        IssueCode::Invalid,
                        "slice-cardinality-max",
                        msg,
                        Some(url),
                    );
                }
            }
            self.pop(mark);
        }
        if n.slicing.as_ref().is_some_and(|s| s.closed) {
            for (i, m) in matched.iter().enumerate() {
                if !m {
                    let mark = self.push(shown);
                    let _ = std::fmt::Write::write_fmt(&mut self.path, format_args!("[{i}]"));
                    let msg =
                        format!("{} does not match any of the slices profile {url} allows here (closed slicing)", self.path);
                    self.report(
                        Severity::Error,
                        IssueCode::Invalid,
                        "slice-closed",
                        msg,
                        Some(url),
                    );
                    self.pop(mark);
                }
            }
        }
    }

    /// Whether `item` belongs to `slice`, judged by the discriminators.
    fn matches_slice(&self, slice: Ov<'v>, discs: &[Discriminator], item: &Value) -> bool {
        if discs.is_empty() {
            return false;
        }
        discs
            .iter()
            .all(|d| self.matches_discriminator(slice, d, item))
    }

    fn matches_discriminator(&self, slice: Ov<'v>, d: &Discriminator, item: &Value) -> bool {
        let path = d.path.trim_start_matches("$this").trim_start_matches('.');
        match d.kind {
            DiscriminatorKind::Value | DiscriminatorKind::Pattern => {
                let Some(expected) = self.expected_at(slice, path) else {
                    // A discriminator element the slice forbids (max 0)
                    // matches items without it; one the slice does not
                    // constrain at all does not restrict the slice.
                    let forbidden = element_at(slice, path).is_some_and(|n| n.max == Some(Some(0)));
                    return !forbidden || values_at(item, path).is_empty();
                };
                let actual = values_at(item, path);
                actual.iter().any(|a| pattern_matches(&expected, a, 0))
            }
            DiscriminatorKind::Type => {
                // A slice may allow several types: an item of any of them belongs to it.
                let Some(types) = element_at(slice, path)
                    .map(|n| &n.types)
                    .filter(|t| !t.is_empty())
                else {
                    return false;
                };
                match values_at(item, path).first() {
                    Some(Value::Object(o)) if o.contains_key("resourceType") => {
                        let rt = o.get("resourceType").and_then(Value::as_str);
                        types.iter().any(|t| Some(t.code.as_str()) == rt)
                    }
                    Some(_) => true,
                    None => false,
                }
            }
            DiscriminatorKind::Exists => {
                let want = element_at(slice, path)
                    .and_then(|n| n.min)
                    .is_some_and(|m| m > 0);
                values_at(item, path).is_empty() != want
            }
            DiscriminatorKind::Profile => {
                // The item belongs to the slice when what is at `path` conforms to a
                // profile the slice names for its type: each is validated on its own.
                let Some(types) = element_at(slice, path).map(|n| &n.types) else {
                    return false;
                };
                values_at(item, path)
                    .iter()
                    .any(|v| self.conforms_to_type_profile(types, v))
            }
        }
    }

    /// Whether a resource conforms to one of the profiles `types` name for its type
    /// (validated on its own, as the root of a validation).
    fn conforms_to_type_profile(&self, types: &[TypeRef], v: &Value) -> bool {
        let Some(rt) = v.get("resourceType").and_then(Value::as_str) else {
            return false;
        };
        types
            .iter()
            .filter(|t| t.code == rt || t.code == "Resource" || t.code == "DomainResource")
            .flat_map(|t| t.profiles.iter())
            .any(|p| {
                let known = self
                    .val
                    .defs
                    .sd(strip_version(p))
                    .is_some_and(|sd| sd.type_name == rt);
                let opts = crate::Options {
                    profiles_by_type: &[],
                    root_profiles: &[p.as_str()],
                };
                known
                    && !super::validate(self.val, v, &opts)
                        .iter()
                        .any(Issue::is_error)
            })
    }

    /// The fixed/pattern value a slice requires at `path`; an extension
    /// slice's `url` comes from its type profile when not fixed.
    fn expected_at(&self, slice: Ov<'v>, path: &str) -> Option<Value> {
        if let Some(n) = element_at(slice, path) {
            if let Some(v) = n.fixed.as_ref().or(n.pattern.as_ref()) {
                return Some(v.clone());
            }
        }
        // Through a sliced element: a required slice fixing the value (the R4 blood-pressure
        // profile tells its components apart by `code.coding.code`, fixed in each
        // component's own required `coding` slice).
        let segs: Vec<&str> = path.split('.').filter(|s| !s.is_empty()).collect();
        if let Some(v) = fixed_through_slices(slice, slice.node, &segs, 0) {
            return Some(v.clone());
        }
        let sn = slice.node();
        if path == "url" {
            let t = sn.types.iter().find(|t| t.code == EXTENSION_TYPE)?;
            return t.profiles.first().map(|p| Value::String(p.clone()));
        }
        // A pattern on the sliced element itself covering the path
        // (e.g. patternCodeableConcept with discriminator coding.system).
        let whole = sn.pattern.as_ref().or(sn.fixed.as_ref())?;
        let mut cur = vec![whole];
        for seg in path.split('.').filter(|s| !s.is_empty()) {
            cur = cur.into_iter().flat_map(|v| step(v, seg)).collect();
        }
        cur.first().map(|v| (*v).clone())
    }
}

/// The fixed or pattern value at `segs` below `node`, looking into the required slices
/// (min 1 or more) of sliced elements on the way when the element itself fixes nothing.
fn fixed_through_slices<'d>(
    ov: Ov<'d>,
    node: NodeId,
    segs: &[&str],
    depth: usize,
) -> Option<&'d Value> {
    let n = &ov.sd.nodes[node];
    let Some((seg, rest)) = segs.split_first() else {
        return n.fixed.as_ref().or(n.pattern.as_ref());
    };
    if depth > 16 {
        return None;
    }
    let seg = seg.split('(').next().unwrap_or(seg);
    let child = n
        .children
        .iter()
        .copied()
        .find(|&c| ov.sd.nodes[c].name == seg)?;
    if let Some(v) = fixed_through_slices(ov, child, rest, depth + 1) {
        return Some(v);
    }
    ov.sd.nodes[child]
        .slices
        .iter()
        .copied()
        .filter(|&s| ov.sd.nodes[s].min.is_some_and(|m| m > 0))
        .find_map(|s| fixed_through_slices(ov, s, rest, depth + 1))
}

/// The slicing discriminators, defaulting extensions to `url` as R4 does.
/// A `profile` discriminator is followed on the resource a `resource` element
/// holds (`Bundle.entry`, `Parameters.parameter`), which is validated on its own;
/// on data types it is not, and such slices are not checked (no false errors).
fn discriminators(n: &Node) -> Vec<Discriminator> {
    let unsupported_profile = n.slicing.as_ref().is_some_and(|s| {
        s.discriminators.iter().any(|d| {
            d.kind == DiscriminatorKind::Profile && d.path.rsplit('.').next() != Some("resource")
        })
    });
    if unsupported_profile {
        return Vec::new();
    }
    match &n.slicing {
        Some(s) if !s.discriminators.is_empty() => s.discriminators.clone(),
        _ if n.name == "extension" || n.name == "modifierExtension" => {
            vec![Discriminator {
                kind: DiscriminatorKind::Value,
                path: "url".to_string(),
            }]
        }
        _ => Vec::new(),
    }
}

/// The descendant element of `ov` at a dotted relative path.
fn element_at<'d>(ov: Ov<'d>, path: &str) -> Option<&'d Node> {
    let mut cur = ov.node();
    for seg in path.split('.').filter(|s| !s.is_empty()) {
        let seg = seg.split('(').next().unwrap_or(seg);
        let next = cur
            .children
            .iter()
            .map(|&c| &ov.sd.nodes[c])
            .find(|c| c.name == seg)?;
        cur = next;
    }
    Some(cur)
}

fn step<'a>(v: &'a Value, seg: &str) -> Vec<&'a Value> {
    match v {
        Value::Array(a) => a.iter().flat_map(|x| step(x, seg)).collect(),
        Value::Object(o) => match o.get(seg) {
            Some(Value::Array(a)) => a.iter().collect(),
            Some(x) => vec![x],
            None => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// The JSON values at a dotted path below `item` (arrays flattened).
fn values_at<'a>(item: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut cur = vec![item];
    for seg in path.split('.').filter(|s| !s.is_empty()) {
        if seg.starts_with("resolve(") || seg.starts_with("ofType(") {
            continue;
        }
        cur = cur.into_iter().flat_map(|v| step(v, seg)).collect();
    }
    cur
}
