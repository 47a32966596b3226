//! Constraints run as native code (docs/CONTRACTS.md "Native constraints"),
//! and reference resolution inside the Bundle and `contained`.

use std::collections::HashSet;

use serde_json::Value;

use super::{Ov, Walker};
use crate::issue::{IssueCode, Severity};
use crate::model::Constraint;

const NHS_NUMBER: &str = "https://fhir.nhs.uk/Id/nhs-number";
const ODS_CODE: &str = "https://fhir.nhs.uk/Id/ods-organization-code";
/// Clock skew tolerated by `sp-sr-1`, in seconds.
const CLOCK_SKEW: i64 = 300;

/// Whether a native implementation exists for `key`.
pub(crate) fn is_native(key: &str) -> bool {
    matches!(
        key,
        "sp-nhs-1" | "sp-sr-1" | "sp-sr-2" | "sp-sr-3" | "sp-sr-4"
    )
}

impl<'v, 'r> Walker<'v, 'r> {
    /// Runs the constraints of the base elements (`base`) and of the
    /// profile overlays on one value: natively for the keys in
    /// docs/CONTRACTS.md, else as compiled FHIRPath.
    pub(super) fn constraints(
        &mut self,
        value: &'r Value,
        ext: Option<&'r Value>,
        type_name: &str,
        base: &[Ov<'v>],
        ovs: &[Ov<'v>],
    ) {
        let all = base
            .iter()
            .map(|b| (b, None))
            .chain(ovs.iter().map(|o| (o, Some(o.sd.url.as_str()))));
        for (ov, profile) in all {
            for c in &ov.node().constraints {
                if let Some(expr) = &c.compiled {
                    self.invariant(c, expr, value, ext, type_name, profile);
                } else if is_native(c.key) {
                    self.native(c, value, profile.unwrap_or(&ov.sd.url));
                }
            }
        }
    }

    /// Evaluates one FHIRPath invariant. An expression that cannot be
    /// evaluated (an engine limitation) is not reported as a failure.
    fn invariant(
        &mut self,
        c: &Constraint,
        expr: &fhirpath::Expression,
        value: &'r Value,
        ext: Option<&'r Value>,
        type_name: &str,
        profile: Option<&str>,
    ) {
        if trivially_holds(c.key, value) || (c.key == "dom-3" && !self.val.validate_contained) {
            return;
        }
        let verdict = if plainly_fails(c.key, value) {
            Ok(false)
        } else {
            self.evaluate(expr, value, ext, type_name)
        };
        match verdict {
            Ok(true) => {}
            Ok(false) => {
                let severity = if c.severity_error {
                    Severity::Error
                } else if c.key == "dom-6" && self.resources.len() > 1 {
                    // "Should have a narrative" is advice for resources a person reads on
                    // their own; a contained resource or a Bundle entry is shown (if ever)
                    // through the resource that holds it, so there it is information.
                    Severity::Information
                } else {
                    Severity::Warning
                };
                let msg = format!(
                    "{} does not meet constraint {}: {}",
                    self.path, c.key, c.human
                );
                self.report(severity, IssueCode::Invariant, c.key, msg, profile);
            }
            Err(e) => {
                // Not a failure of the resource: say the rule was not checked.
                let msg = format!(
                    "{}: constraint {} could not be evaluated ({e}); it was not checked",
                    self.path, c.key
                );
                self.report(
                    Severity::Information,
                    IssueCode::NotSupported,
                    "invariant-not-evaluated",
                    msg,
                    profile,
                );
            }
        }
    }

    /// Runs the compiled FHIRPath of an invariant on `value`.
    fn evaluate(
        &self,
        expr: &fhirpath::Expression,
        value: &'r Value,
        ext: Option<&'r Value>,
        type_name: &str,
    ) -> Result<bool, fhirpath::EvalError> {
        let node = fhirpath::Node {
            value: Some(value),
            extension: ext,
            type_name: Some(type_name),
        };
        let ctx = fhirpath::Context {
            resource: self.resources.last().copied(),
            root_resource: Some(self.root),
            resolver: None,
            model: Some(&self.val.defs.model),
            terminology: None,
            now: None,
        };
        expr.evaluate_node(node, &ctx)
            .map(|items| invariant_holds(&items))
    }

    fn native(&mut self, c: &Constraint, value: &'r Value, profile: &str) {
        match c.key {
            "sp-nhs-1" => self.nhs_number(c, value, profile),
            "sp-sr-1" => self.authored_not_future(c, value, profile),
            "sp-sr-2" => self.active_consent(c, value, profile),
            "sp-sr-3" => self.ods_requester(c, value, profile),
            "sp-sr-4" => self.subject_patient(c, value, profile),
            _ => {}
        }
    }

    fn fail(
        &mut self,
        c: &Constraint,
        code: IssueCode,
        at: Option<&str>,
        detail: String,
        profile: &str,
    ) {
        let mark = match at {
            Some(seg) => self.push(seg),
            None => self.path.len(),
        };
        let severity = if c.severity_error {
            Severity::Error
        } else {
            Severity::Warning
        };
        let msg = format!("{detail} ({}: {})", c.key, c.human);
        self.report(severity, code, c.key, msg, Some(profile));
        self.pop(mark);
    }

    fn nhs_number(&mut self, c: &Constraint, ident: &Value, profile: &str) {
        if ident.get("system").and_then(Value::as_str) != Some(NHS_NUMBER) {
            return;
        }
        let Some(v) = ident.get("value").and_then(Value::as_str) else {
            return;
        };
        if !nhs_number_valid(v) {
            let detail = format!(
                "{} NHS number {} is not valid: it must be 10 digits with a correct Modulus 11 check digit",
                self.path,
                super::quote(v)
            );
            self.fail(c, IssueCode::Invariant, None, detail, profile);
        }
    }

    fn authored_not_future(&mut self, c: &Constraint, sr: &Value, profile: &str) {
        let Some(s) = sr.get("authoredOn").and_then(Value::as_str) else {
            return;
        };
        // A value that is not a dateTime at all (2026-02-30) already has its error; saying it
        // is also in the future would be a second, misleading one.
        let well_formed = self
            .val
            .regexes
            .check(crate::primitives::Prim::DateTime, &sr["authoredOn"])
            .is_ok();
        let Some(t) = earliest_epoch_seconds(s).filter(|_| well_formed) else {
            return;
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        if t > now + CLOCK_SKEW {
            let detail = format!(
                "{}.authoredOn {} is in the future",
                self.path,
                super::quote(s)
            );
            self.fail(c, IssueCode::Invariant, Some("authoredOn"), detail, profile);
        }
    }

    fn active_consent(&mut self, c: &Constraint, sr: &Value, profile: &str) {
        let refs = sr
            .get("supportingInfo")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let mut unresolved_consent = None;
        for r in refs {
            let Some(s) = r.get("reference").and_then(Value::as_str) else {
                continue;
            };
            match self.resolve(s) {
                Some(res)
                    if is_type(res, "Consent")
                        && res.get("status").and_then(Value::as_str) == Some("active") =>
                {
                    return;
                }
                Some(_) => {}
                None if s.starts_with("Consent/")
                    || r.get("type").and_then(Value::as_str) == Some("Consent") =>
                {
                    unresolved_consent.get_or_insert(s);
                }
                None => {}
            }
        }
        if let Some(s) = unresolved_consent {
            let detail = format!(
                "{}.supportingInfo reference {} does not resolve to a Consent in the Bundle or in contained",
                self.path,
                super::quote(s)
            );
            self.fail(
                c,
                IssueCode::NotFound,
                Some("supportingInfo"),
                detail,
                profile,
            );
        } else {
            let detail = format!(
                "{}.supportingInfo must reference an active Consent included in the Bundle or contained",
                self.path
            );
            self.fail(
                c,
                IssueCode::Invariant,
                Some("supportingInfo"),
                detail,
                profile,
            );
        }
    }

    fn ods_requester(&mut self, c: &Constraint, sr: &Value, profile: &str) {
        let Some(req) = sr.get("requester") else {
            return;
        };
        if has_ods(req.get("identifier")) {
            return;
        }
        let Some(s) = req.get("reference").and_then(Value::as_str) else {
            let detail = format!(
                "{}.requester must identify the requesting GP practice by ODS code (a reference to an Organization or PractitionerRole, or an identifier with system {ODS_CODE})",
                self.path
            );
            self.fail(c, IssueCode::Invariant, Some("requester"), detail, profile);
            return;
        };
        let Some(target) = self.resolve(s) else {
            let detail = format!(
                "{}.requester reference {} does not resolve inside the Bundle or contained, and carries no ODS identifier",
                self.path,
                super::quote(s)
            );
            self.fail(c, IssueCode::NotFound, Some("requester"), detail, profile);
            return;
        };
        let ok = if is_type(target, "Organization") {
            has_ods_list(target.get("identifier"))
        } else if is_type(target, "PractitionerRole") {
            target.get("organization").is_some_and(|org| {
                has_ods(org.get("identifier"))
                    || org
                        .get("reference")
                        .and_then(Value::as_str)
                        .and_then(|r| self.resolve(r))
                        .is_some_and(|o| {
                            is_type(o, "Organization") && has_ods_list(o.get("identifier"))
                        })
            })
        } else {
            false
        };
        if !ok {
            let detail = format!(
                "{}.requester must be an Organization with an ODS code, or a PractitionerRole whose organization has one",
                self.path
            );
            self.fail(c, IssueCode::Invariant, Some("requester"), detail, profile);
        }
    }

    fn subject_patient(&mut self, c: &Constraint, sr: &Value, profile: &str) {
        let Some(s) = sr
            .get("subject")
            .and_then(|x| x.get("reference"))
            .and_then(Value::as_str)
        else {
            let detail = format!(
                "{}.subject must reference a Patient included in the Bundle or contained",
                self.path
            );
            self.fail(c, IssueCode::NotFound, Some("subject"), detail, profile);
            return;
        };
        match self.resolve(s) {
            Some(p) if is_type(p, "Patient") => {}
            Some(other) => {
                let t = other
                    .get("resourceType")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown");
                let detail = format!("{}.subject resolves to a {t}, not a Patient", self.path);
                self.fail(c, IssueCode::Invariant, Some("subject"), detail, profile);
            }
            None => {
                let detail = format!(
                    "{}.subject reference {} does not resolve to a Patient in the Bundle or contained",
                    self.path,
                    super::quote(s)
                );
                self.fail(c, IssueCode::NotFound, Some("subject"), detail, profile);
            }
        }
    }

    /// Resolves a reference inside the current resource's `contained` (and
    /// its container's) or the root Bundle.
    pub(super) fn resolve(&self, reference: &str) -> Option<&'r Value> {
        if let Some(id) = reference.strip_prefix('#') {
            for res in self.resources.iter().rev() {
                let contained = res.get("contained").and_then(Value::as_array);
                if let Some(hit) = contained.and_then(|a| {
                    a.iter()
                        .find(|c| c.get("id").and_then(Value::as_str) == Some(id))
                }) {
                    return Some(hit);
                }
            }
            return None;
        }
        super::refs::matches(&self.bundle, reference)
            .first()
            .map(|e| e.resource)
    }
}

/// Whether an invariant's result means the constraint holds, as the HL7 validator reads it
/// (FHIRPathEngine.convertToBoolean): a single boolean is the answer, any other non-empty
/// result holds, and an **empty result fails** — an expression that cannot say yes (`start
/// <= end` on a date and a dateTime that agree up to the date, which FHIRPath leaves empty)
/// has not shown the rule is met.
fn invariant_holds(items: &[fhirpath::Item<'_>]) -> bool {
    match items {
        [] => false,
        [one] => one.as_bool().unwrap_or(true),
        _ => true,
    }
}

/// Common base constraints that provably hold for this value, checked
/// without running the FHIRPath (same result, a fraction of the time; the
/// expressions are quoted from the R4 definitions).
fn trivially_holds(key: &str, v: &Value) -> bool {
    match key {
        // contained.contained.empty(), contained.where(..).empty(),
        // contained.meta.versionId.empty() and .., contained.meta.security.empty()
        "dom-2" | "dom-4" | "dom-5" => v.get("contained").is_none(),
        // contained.where((('#'+id in (%resource.descendants().reference | ..)) or ..).not()).empty()
        // When every contained resource's `#id` is the `reference` of something in the
        // resource, the first test holds for each. Walking all descendants four times in
        // FHIRPath was most of the cost of validating a referral with contained resources.
        "dom-3" => v.get("contained").is_none() || contained_all_referenced(v),
        // text.`div`.exists()
        "dom-6" => v.get("text").and_then(|t| t.get("div")).is_some(),
        // reference.startsWith('#').not() or (..)
        "ref-1" => !v
            .get("reference")
            .and_then(Value::as_str)
            .is_some_and(|r| r.starts_with('#')),
        // start.hasValue().not() or end.hasValue().not() or (start <= end)
        "per-1" => v.get("start").is_none() || v.get("end").is_none(),
        // orderDetail.empty() or code.exists()
        "prr-1" => v.get("orderDetail").is_none(),
        // ContactPoint: value.empty() or system.exists()
        "cpt-2" => {
            !(v.get("value").is_some() || v.get("_value").is_some())
                || v.get("system").is_some_and(Value::is_string)
        }
        // Organization: (identifier.count() + name.count()) > 0
        "org-1" => {
            v.get("name").is_some_and(Value::is_string)
                || v.get("identifier")
                    .is_some_and(is_non_empty_array_of_objects)
        }
        // Organization.address and .telecom: where(use = 'home').empty()
        "org-2" | "org-3" => v.get("use").is_some_and(|u| u.is_string() && u != "home"),
        // Consent: policy.exists() or policyRule.exists()
        "ppc-1" => {
            v.get("policy").is_some_and(is_non_empty_array_of_objects)
                || is_filled(v.get("policyRule"))
        }
        // Consent: patient.exists() or scope.coding.where(system='something' and code='..').exists().not()
        "ppc-2" | "ppc-3" | "ppc-4" | "ppc-5" => is_filled(v.get("patient")),
        // The Bundle rules below run on every transaction; each walks all entries in FHIRPath.
        // On a Bundle (the root of these constraints, so `%resource` is `v`):
        // entry.all(request.exists() = (%resource.type = 'batch' or .. 'transaction' or .. 'history'))
        "bdl-3" => entries_all_have(v, "request", &["batch", "transaction", "history"]),
        // entry.all(response.exists() = (%resource.type = 'batch-response' or .. or .. 'history'))
        "bdl-4" => entries_all_have(
            v,
            "response",
            &["batch-response", "transaction-response", "history"],
        ),
        // (type = 'history') or entry.where(fullUrl.exists()).select(fullUrl&resource.meta.versionId).isDistinct()
        "bdl-7" => full_urls_distinct(v),
        // total.empty() or (type = 'searchset') or (type = 'history')
        "bdl-1" => v.get("total").is_none() && v.get("_total").is_none(),
        // entry.search.empty() or (type = 'searchset')
        "bdl-2" => match v.get("entry") {
            None => true,
            Some(Value::Array(entries)) => entries
                .iter()
                .all(|e| e.as_object().is_some_and(|e| !e.contains_key("search"))),
            Some(_) => false,
        },
        // type = 'document' implies (..), three rules that only documents can break
        "bdl-9" | "bdl-10" | "bdl-11" => bundle_type_is_not(v, "document"),
        // type = 'message' implies entry.first().resource.is(MessageHeader)
        "bdl-12" => bundle_type_is_not(v, "message"),
        // On an entry: resource.exists() or request.exists() or response.exists()
        "bdl-5" => is_filled(v.get("resource")),
        // On an entry: fullUrl.exists() implies fullUrl.contains('/_history/').not()
        "bdl-8" => match (v.get("fullUrl"), v.get("_fullUrl")) {
            (Some(Value::String(url)), _) => !url.contains("/_history/"),
            (None, None) => true,
            _ => false,
        },
        _ => false,
    }
}

/// Common base constraints that certainly fail for this value, without running the FHIRPath.
/// Only for rules that most valid resources break (a warning each), where the FHIRPath would
/// run every time only to say so.
fn plainly_fails(key: &str, v: &Value) -> bool {
    match key {
        // DomainResource: text.`div`.exists() (a warning: "should have a narrative")
        "dom-6" => v.get("text").is_none(),
        _ => false,
    }
}

fn is_non_empty_array_of_objects(v: &Value) -> bool {
    v.as_array()
        .is_some_and(|items| !items.is_empty() && items.iter().all(|i| is_filled(Some(i))))
}

/// Whether Bundle `v` has a plain `type` that is not `kind` (so `type = kind implies ..` holds).
fn bundle_type_is_not(v: &Value, kind: &str) -> bool {
    v.get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| t != kind)
}

/// Descendants [`contained_all_referenced`] looks through before leaving the answer to the
/// FHIRPath (far below the engine's own collection limits, so it never errs where we answer).
const LOCAL_REFERENCE_NODES: usize = 5_000;

/// Whether every contained resource of `v` has a plain `id` that some `reference` inside `v`
/// names as `#id`. `false` (evaluate the FHIRPath) when the tree is large or unusual.
fn contained_all_referenced(v: &Value) -> bool {
    let Some(contained) = v.get("contained").and_then(Value::as_array) else {
        return false;
    };
    let mut local = HashSet::new();
    if !local_references(v, &mut local) {
        return false;
    }
    contained.iter().all(|resource| {
        resource.get("_id").is_none()
            && resource
                .get("id")
                .and_then(Value::as_str)
                .is_some_and(|id| local.contains(id))
    })
}

/// Collects the targets of `#id` references among the descendants of `resource` (not the
/// resource itself), where FHIRPath's `descendants().reference` certainly finds them: element
/// keys only (no `_` extension keys). `false` for anything the engine might read differently
/// (a `reference` that is not a string, nested arrays) or a tree over the node limit.
fn local_references<'v>(resource: &'v Value, local: &mut HashSet<&'v str>) -> bool {
    let elements = |map: &'v serde_json::Map<String, Value>| {
        map.iter()
            .filter(|(key, _)| !key.starts_with('_'))
            .map(|(_, value)| value)
    };
    let Some(root) = resource.as_object() else {
        return false;
    };
    let mut pending: Vec<&Value> = elements(root).collect();
    let mut budget = LOCAL_REFERENCE_NODES;
    while let Some(value) = pending.pop() {
        let Some(left) = budget.checked_sub(1) else {
            return false;
        };
        budget = left;
        match value {
            Value::Object(map) => {
                match map.get("reference") {
                    Some(Value::String(reference)) => {
                        if let Some(id) = reference.strip_prefix('#') {
                            local.insert(id);
                        }
                    }
                    Some(_) => return false,
                    None => {}
                }
                pending.extend(elements(map));
            }
            Value::Array(items) => {
                if items.iter().any(Value::is_array) {
                    return false;
                }
                pending.extend(items);
            }
            _ => {}
        }
    }
    true
}

/// A JSON object with at least one member: FHIRPath `exists()` is certainly true for it.
fn is_filled(element: Option<&Value>) -> bool {
    element
        .and_then(Value::as_object)
        .is_some_and(|o| !o.is_empty())
}

/// Whether every entry of Bundle `v` has `element` exactly when its `type` is one of `types`.
/// `false` (evaluate the FHIRPath) whenever the answer is not plain: no `type` string, an
/// entry that is not an object, or an `element` that is present but empty or not an object.
fn entries_all_have(v: &Value, element: &str, types: &[&str]) -> bool {
    let Some(bundle_type) = v.get("type").and_then(Value::as_str) else {
        return false;
    };
    let wanted = types.contains(&bundle_type);
    let entries = match v.get("entry") {
        None => return true,
        Some(Value::Array(entries)) => entries,
        Some(_) => return false,
    };
    entries.iter().all(|entry| {
        let Some(entry) = entry.as_object() else {
            return false;
        };
        match entry.get(element) {
            None => !wanted,
            present => wanted && is_filled(present),
        }
    })
}

/// Whether the `fullUrl & resource.meta.versionId` of the entries with a `fullUrl` are all
/// different (or the Bundle is a history). `false` (evaluate the FHIRPath) for anything not
/// plain: a `fullUrl` or `versionId` that is not a string or has a primitive extension.
fn full_urls_distinct(v: &Value) -> bool {
    if v.get("type").and_then(Value::as_str) == Some("history") {
        return true;
    }
    let entries = match v.get("entry") {
        None => return true,
        Some(Value::Array(entries)) => entries,
        Some(_) => return false,
    };
    let mut seen = HashSet::with_capacity(entries.len());
    for entry in entries {
        let Some(entry) = entry.as_object() else {
            return false;
        };
        if entry.contains_key("_fullUrl") {
            return false;
        }
        let Some(full_url) = entry.get("fullUrl") else {
            continue;
        };
        let Some(full_url) = full_url.as_str() else {
            return false;
        };
        let meta = entry.get("resource").and_then(|r| r.get("meta"));
        if meta.is_some_and(|m| !m.is_object() || m.get("_versionId").is_some()) {
            return false;
        }
        let version = match meta.and_then(|m| m.get("versionId")) {
            None => "",
            Some(Value::String(version)) => version.as_str(),
            Some(_) => return false,
        };
        // FHIRPath compares the concatenation, so ("a", "bc") and ("ab", "c") are the same.
        if !seen.insert(format!("{full_url}{version}")) {
            return false;
        }
    }
    true
}

fn is_type(v: &Value, t: &str) -> bool {
    v.get("resourceType").and_then(Value::as_str) == Some(t)
}

fn has_ods(identifier: Option<&Value>) -> bool {
    identifier.is_some_and(|i| {
        i.get("system").and_then(Value::as_str) == Some(ODS_CODE)
            && i.get("value").and_then(Value::as_str).is_some()
    })
}

fn has_ods_list(identifiers: Option<&Value>) -> bool {
    identifiers
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|i| has_ods(Some(i))))
}

/// NHS number: 10 digits, Modulus 11 check digit (weights 10..2; 11 -> 0;
/// 10 -> invalid).
pub(crate) fn nhs_number_valid(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || !b.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sum: u32 = b[..9]
        .iter()
        .enumerate()
        .map(|(i, d)| u32::from(d - b'0') * (10 - i as u32))
        .sum();
    let check = match 11 - (sum % 11) {
        11 => 0,
        10 => return false,
        c => c,
    };
    check == u32::from(b[9] - b'0')
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The earliest UTC instant (epoch seconds) a FHIR date/dateTime can mean.
/// Assumes the primitive format was already checked; `None` if unparsable.
pub(super) fn earliest_epoch_seconds(s: &str) -> Option<i64> {
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let year = num(0..4)?;
    let month = if s.len() >= 7 { num(5..7)? } else { 1 };
    let day = if s.len() >= 10 { num(8..10)? } else { 1 };
    let days = days_from_civil(year, month, day);
    if s.len() <= 10 {
        // No time: the day may have started up to 14 hours before UTC midnight.
        return Some(days * 86_400 - 14 * 3_600);
    }
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let local = days * 86_400 + h * 3_600 + mi * 60 + sec;
    let offset = if s.ends_with('Z') {
        0
    } else {
        let tz = s.get(s.len() - 6..)?;
        let sign = if tz.starts_with('-') { -1 } else { 1 };
        let oh: i64 = tz.get(1..3)?.parse().ok()?;
        let om: i64 = tz.get(4..6)?.parse().ok()?;
        sign * (oh * 3_600 + om * 60)
    };
    Some(local - offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nhs_numbers() {
        assert!(nhs_number_valid("9000000009"));
        assert!(nhs_number_valid("9434765919"));
        assert!(!nhs_number_valid("9434765918"));
        assert!(!nhs_number_valid("943476591"));
        assert!(!nhs_number_valid("94347659１9"));
    }

    /// Each shortcut gives the FHIRPath's own answer on values it answers for, and leaves the
    /// rest (the cases that break the rule, and anything unusual) to the FHIRPath.
    #[test]
    fn shortcuts_agree_with_the_fhirpath() {
        let cases: &[(&str, &str, Value, Value)] = &[
            // (key, R4 expression, a value the shortcut answers, one it must leave alone)
            (
                "cpt-2",
                "value.empty() or system.exists()",
                json!({"system": "phone", "value": "01234 567890"}),
                json!({"value": "01234 567890"}),
            ),
            (
                "cpt-2",
                "value.empty() or system.exists()",
                json!({"use": "home"}),
                json!({"_value": {"extension": []}, "_system": {"id": "s"}}),
            ),
            (
                "org-1",
                "(identifier.count() + name.count()) > 0",
                json!({"resourceType": "Organization", "name": "Carers Count"}),
                json!({"resourceType": "Organization", "identifier": []}),
            ),
            (
                "org-1",
                "(identifier.count() + name.count()) > 0",
                json!({"resourceType": "Organization", "identifier": [{"value": "X1A2B"}]}),
                json!({"resourceType": "Organization", "active": true}),
            ),
            (
                "org-2",
                "where(use = 'home').empty()",
                json!({"use": "work", "city": "Cardiff"}),
                json!({"use": "home"}),
            ),
            (
                "ppc-1",
                "policy.exists() or policyRule.exists()",
                json!({"resourceType": "Consent", "policyRule": {"text": "opt-in"}}),
                json!({"resourceType": "Consent", "policy": []}),
            ),
            (
                "ppc-2",
                "patient.exists() or scope.coding.where(system='something' and code='patient-privacy').exists().not()",
                json!({"resourceType": "Consent", "patient": {"reference": "Patient/p"}}),
                json!({"resourceType": "Consent", "scope": {"coding": [{"system": "something", "code": "patient-privacy"}]}}),
            ),
            (
                "bdl-1",
                "total.empty() or (type = 'searchset') or (type = 'history')",
                json!({"resourceType": "Bundle", "type": "transaction"}),
                json!({"resourceType": "Bundle", "type": "transaction", "total": 1}),
            ),
            (
                "bdl-2",
                "entry.search.empty() or (type = 'searchset')",
                json!({"resourceType": "Bundle", "type": "transaction", "entry": [{"fullUrl": "urn:uuid:1"}]}),
                json!({"resourceType": "Bundle", "type": "transaction", "entry": [{"search": {"mode": "match"}}]}),
            ),
            (
                "bdl-9",
                "type = 'document' implies (identifier.system.exists() and identifier.value.exists())",
                json!({"resourceType": "Bundle", "type": "transaction"}),
                json!({"resourceType": "Bundle", "type": "document"}),
            ),
            (
                "bdl-12",
                "type = 'message' implies entry.first().resource.is(MessageHeader)",
                json!({"resourceType": "Bundle", "type": "transaction"}),
                json!({"resourceType": "Bundle", "type": "message", "entry": [{"resource": {"resourceType": "Patient"}}]}),
            ),
        ];
        for (key, source, answered, left) in cases {
            let expr = fhirpath::compile(source).expect("an R4 expression");
            let fhirpath = |v: &Value| {
                expr.evaluate_bool(v, &fhirpath::Context::default())
                    .expect("evaluates")
            };
            assert!(trivially_holds(key, answered), "{key}: {answered}");
            assert!(fhirpath(answered), "{key}: FHIRPath on {answered}");
            assert!(!trivially_holds(key, left), "{key} must leave {left}");
        }
        let narrative = fhirpath::compile("text.`div`.exists()").expect("dom-6");
        let bare = json!({"resourceType": "Patient", "id": "p"});
        assert!(plainly_fails("dom-6", &bare));
        assert!(!narrative
            .evaluate_bool(&bare, &fhirpath::Context::default())
            .expect("evaluates"));
        let told =
            json!({"resourceType": "Patient", "text": {"status": "generated", "div": "<div/>"}});
        assert!(!plainly_fails("dom-6", &told));
        assert!(!plainly_fails("dom-5", &bare));
    }

    #[test]
    fn epoch() {
        assert_eq!(earliest_epoch_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(earliest_epoch_seconds("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(
            earliest_epoch_seconds("2000-03-01T00:00:00Z"),
            Some(951_868_800)
        );
    }
}
