//! The gateway's use of the validator: which profiles apply to which resources, and the mapping
//! of validator issues to OperationOutcome issues. The engine itself is the `sp-validator` crate.

use serde_json::Value;
use sp_validator::{Options, Validator};

use crate::conformance::{Conformance, ConformanceError};
use crate::fhir::outcome::Issue;

/// Our profiles, applied to every resource of their type anywhere in a submission.
const PROFILES_BY_TYPE: &[(&str, &str)] = &[
    ("ServiceRequest", sp_validator::SP_SERVICE_REQUEST),
    ("Patient", sp_validator::SP_PATIENT),
    ("Task", sp_validator::SP_REFERRAL_TASK),
    ("Observation", sp_validator::SP_OUTCOME_OBSERVATION),
];

/// The compiled validator and the conformance resources it was built from, loaded once at
/// start.
pub struct Validation {
    validator: Validator,
    conformance: Conformance,
}

impl Validation {
    pub fn bundled() -> Result<Self, ConformanceError> {
        Ok(Validation {
            validator: Validator::bundled()?,
            conformance: Conformance::bundled()?,
        })
    }

    /// The bundled definitions plus a vendor's own (`validate --definitions`): StructureDefinitions,
    /// ValueSets and CodeSystems, or Bundles of them; later ones replace earlier ones by URL.
    pub fn with_definitions(extra: Vec<Value>) -> Result<Self, ConformanceError> {
        Self::with_validator(Validator::with_extra(extra)?)
    }

    /// A validator set up by the caller (`sp-gateway validate`'s checks: `--base` reference
    /// forms, example URLs, security checks, ...) with the bundled conformance resources.
    pub fn with_validator(validator: Validator) -> Result<Self, ConformanceError> {
        Ok(Validation {
            validator,
            conformance: Conformance::bundled()?,
        })
    }

    /// Base R4 only (and `root_profiles`, and any profile the resource declares in
    /// `meta.profile`): no social-prescribing profile is applied by type.
    pub fn validate_base_with(&self, tree: &Value, root_profiles: &[&str]) -> Vec<Issue> {
        self.run(tree, &[], root_profiles)
    }

    fn run(
        &self,
        tree: &Value,
        profiles_by_type: &[(&str, &str)],
        root_profiles: &[&str],
    ) -> Vec<Issue> {
        let options = Options {
            profiles_by_type,
            root_profiles,
        };
        self.validator
            .validate(tree, &options)
            .into_iter()
            .map(convert)
            .collect()
    }

    /// Our published definitions, `$expand`, and the need vocabulary.
    pub fn conformance(&self) -> &Conformance {
        &self.conformance
    }

    /// Validates a submission against base R4 and our profiles.
    pub fn validate(&self, tree: &Value) -> Vec<Issue> {
        self.validate_with(tree, &[])
    }

    /// Only the errors (what refuses a resource) of `validate`.
    pub fn errors(&self, tree: &Value) -> Vec<Issue> {
        self.validate(tree)
            .into_iter()
            .filter(|issue| issue.severity.is_error())
            .collect()
    }

    /// Validates with extra profiles for the root resource (`validate --profile`).
    pub fn validate_with(&self, tree: &Value, root_profiles: &[&str]) -> Vec<Issue> {
        self.run(tree, PROFILES_BY_TYPE, root_profiles)
    }

    /// Validates against base R4 only, for a resource whose references point outside the tree
    /// (a stored ServiceRequest whose status changed: its profile rules held at intake).
    pub fn validate_base(&self, tree: &Value) -> Vec<Issue> {
        // Declared profiles would bring their resolution rules back in.
        let mut base_only = tree.clone();
        if let Some(meta) = base_only.get_mut("meta").and_then(Value::as_object_mut) {
            meta.remove("profile");
        }
        self.run(&base_only, &[], &[])
    }

    pub fn knows_profile(&self, url: &str) -> bool {
        self.validator.knows_profile(url)
    }
}

fn convert(issue: sp_validator::Issue) -> Issue {
    // "A resource should have narrative" (dom-6) is advice for resources a person reads. The
    // gateway shows no submitted resource to anyone (organisations get the plain record), so
    // for a referral it is information, not a warning on every single one.
    let severity = match issue.message_id {
        "dom-6" => sp_validator::Severity::Information,
        _ => issue.severity,
    };
    Issue {
        severity,
        code: issue.code.as_str(),
        diagnostics: issue.diagnostics,
        expression: Some(issue.expression).filter(|e| !e.is_empty()),
        message_id: Some(issue.message_id.to_string()),
        profile: issue.profile,
    }
}
