//! Offline FHIR R4 validator driven by StructureDefinitions, ValueSets and
//! CodeSystems, working on `serde_json::Value` trees.
//!
//! The base R4 definitions (`profiles/r4`) and our SP profiles
//! (`profiles/sp`) are embedded in the binary; [`Validator::bundled`] compiles
//! them once into per-type element indexes so that [`Validator::validate`]
//! does no file I/O and little allocation.

mod defs;
mod intern;
mod invariants;
mod issue;
mod json;
mod model;
mod primitives;
mod snapshot;
mod terminology;
mod walk;

use serde_json::Value;

pub use defs::LoadError;
pub use issue::{Issue, IssueCode, Severity};
pub use json::strip_json_comments;
pub use snapshot::{BaseDefinitions, SnapshotError};

use defs::Defs;
use primitives::PrimitiveRegexes;

/// Issues one validation reports at most (enough to explain any real mistake; stops huge
/// hostile arrays flooding the reply); past it, one warning says the list was cut.
pub const MAX_ISSUES: usize = 500;

pub const SP_SERVICE_REQUEST: &str =
    "https://fhir.sp-gateway.uk/StructureDefinition/SP-ServiceRequest";
pub const SP_PATIENT: &str = "https://fhir.sp-gateway.uk/StructureDefinition/SP-Patient";
pub const SP_OUTCOME_OBSERVATION: &str =
    "https://fhir.sp-gateway.uk/StructureDefinition/SP-OutcomeObservation";
pub const SP_REFERRAL_TASK: &str = "https://fhir.sp-gateway.uk/StructureDefinition/SP-ReferralTask";

/// Our conformance resources as embedded (`profiles/sp`: StructureDefinitions as
/// differentials, ValueSets, CodeSystems, ConceptMaps), parsed, in file-name order.
pub fn bundled_conformance_resources() -> Result<Vec<Value>, LoadError> {
    defs::sp_texts()
        .iter()
        .map(|(file, text)| {
            serde_json::from_str(text).map_err(|source| LoadError::Json {
                file: (*file).to_string(),
                source,
            })
        })
        .collect()
}

/// Which profiles to apply besides base R4.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options<'a> {
    /// Profiles to apply to every resource of the given type anywhere in the
    /// tree (the root, Bundle.entry.resource, contained), e.g.
    /// `[("ServiceRequest", SP_SERVICE_REQUEST)]`. Base R4 always applies;
    /// `meta.profile` entries we know also apply (unknown ones: a warning).
    pub profiles_by_type: &'a [(&'a str, &'a str)],
    /// Explicit profiles for the root resource.
    pub root_profiles: &'a [&'a str],
}

/// What markdown that looks like it embeds HTML (`<b>`, `</p>`, `<!--`, `<?`) gets: the
/// HL7 validator warns by default (a presentation layer should escape it, but may not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HtmlInMarkdown {
    /// Not checked.
    Ignore,
    /// A warning (the default).
    #[default]
    Warning,
    /// An error (the HL7 validator's `noHtmlInMarkdown`).
    Error,
}

/// A compiled set of definitions. Build once at start and share: it is
/// `Send + Sync` and validation takes `&self`.
pub struct Validator {
    defs: Defs,
    regexes: PrimitiveRegexes,
    /// See [`Validator::assume_valid_rest_references`].
    assume_valid_rest_references: bool,
    /// See [`Validator::allow_unknown_extensions`].
    allow_unknown_extensions: bool,
    /// See [`Validator::check_references_exist`].
    check_references_exist: bool,
    /// See [`Validator::strict_reference_format`].
    strict_reference_format: bool,
    /// See [`Validator::html_in_markdown`].
    html_in_markdown: HtmlInMarkdown,
    /// See [`Validator::security_checks`].
    security_checks: bool,
    /// See [`Validator::allow_example_urls`].
    allow_example_urls: bool,
    /// See [`Validator::validate_contained`].
    validate_contained: bool,
    /// See [`Validator::allow_comments`].
    allow_comments: bool,
}

impl Validator {
    /// Base R4 plus every definition in `profiles/sp`, all embedded.
    pub fn bundled() -> Result<Validator, LoadError> {
        Validator::with_extra(Vec::new())
    }

    /// The bundled definitions plus `defs` (StructureDefinitions, ValueSets,
    /// CodeSystems, or Bundles of them). Later definitions replace earlier
    /// ones with the same URL.
    pub fn with_extra(defs: Vec<Value>) -> Result<Validator, LoadError> {
        let defs = Defs::load(defs)?;
        let regexes = PrimitiveRegexes::new().map_err(|e| LoadError::Regex(e.to_string()))?;
        Ok(Validator {
            defs,
            regexes,
            assume_valid_rest_references: true,
            allow_unknown_extensions: true,
            check_references_exist: false,
            strict_reference_format: true,
            html_in_markdown: HtmlInMarkdown::Warning,
            security_checks: false,
            allow_example_urls: true,
            validate_contained: true,
            allow_comments: false,
        })
    }

    /// Whether a reference that does not resolve (in the Bundle or `contained`) is taken to
    /// point at the type its URL names, `Patient/123` at a Patient, so that the type is
    /// checked against the element's allowed targets. On by default: a referral names its
    /// targets by REST URL. Off, as the HL7 validator's `assumeValidRestReferences` is by
    /// default, only references that resolve have their target type checked.
    #[must_use]
    pub fn assume_valid_rest_references(mut self, assume: bool) -> Validator {
        self.assume_valid_rest_references = assume;
        self
    }

    /// Whether an extension whose definition is not loaded is accepted. On by default (a
    /// vendor's own extensions pass unchecked). Off, as in the HL7 validator's test suite
    /// (`anyExtensionsAllowed` false), such an extension is an error, except HL7's own
    /// (`http://hl7.org/fhir/..`, which that validator resolves from extension packs we do not
    /// carry) and the example domains it also lets through (example.org, acme.com, nema.org).
    #[must_use]
    pub fn allow_unknown_extensions(mut self, allow: bool) -> Validator {
        self.allow_unknown_extensions = allow;
        self
    }

    /// Whether a relative reference (`Patient/123`) must resolve to a resource of the Bundle
    /// or Parameters being validated (the HL7 validator's `validateReference`
    /// `CHECK_EXISTS`, with nothing else to fetch from). Off by default: a referral names
    /// resources held elsewhere.
    #[must_use]
    pub fn check_references_exist(mut self, check: bool) -> Validator {
        self.check_references_exist = check;
        self
    }

    /// Whether `Reference.reference` must take a form FHIR knows how to resolve: `Type/id`
    /// (optionally `/_history/vid`), `Type?query`, `#id`, an absolute URL or a valid
    /// `urn:uuid:`/`urn:oid:`. On by default: it is a rule of the gateway's exchange (a
    /// referral's references must resolve), not of base R4, where `reference` is any string
    /// without white space. Off, as `sp-gateway validate --base` and the HL7 validator run,
    /// another form is a warning, and only white space in a reference is an error.
    #[must_use]
    pub fn strict_reference_format(mut self, strict: bool) -> Validator {
        self.strict_reference_format = strict;
        self
    }

    /// What `markdown` that appears to embed HTML tags gets (see [`HtmlInMarkdown`]; a
    /// warning by default, an error with the HL7 validator's `noHtmlInMarkdown`).
    #[must_use]
    pub fn html_in_markdown(mut self, check: HtmlInMarkdown) -> Validator {
        self.html_in_markdown = check;
        self
    }

    /// Security checks (the HL7 validator's `security-checks`): a primitive value other
    /// than narrative XHTML that contains what looks like an HTML tag is an error. Off by
    /// default.
    #[must_use]
    pub fn security_checks(mut self, on: bool) -> Validator {
        self.security_checks = on;
        self
    }

    /// Whether example URLs (`example.org`, `example.com`, `example.net`, `acme.com`,
    /// `acme.org` and the example OIDs) may appear in `uri`, `url` and `canonical` values and
    /// as unknown extensions. On by default; off (the HL7 validator's `examples: false`,
    /// for production data) such a URL that names no loaded definition is an error.
    #[must_use]
    pub fn allow_example_urls(mut self, allow: bool) -> Validator {
        self.allow_example_urls = allow;
        self
    }

    /// Whether resources in `contained` are validated (and whether each must be referenced,
    /// `dom-3`). On by default; off is the HL7 validator's `validateContains` `IGNORE`.
    #[must_use]
    pub fn validate_contained(mut self, validate: bool) -> Validator {
        self.validate_contained = validate;
        self
    }

    /// Whether [`Validator::parse_json`] accepts JSON with comments (`//`, `/* */`), as the
    /// HL7 validator's `allow-comments` does. Off by default: JSON has no comments, and
    /// text with them is not FHIR JSON.
    #[must_use]
    pub fn allow_comments(mut self, allow: bool) -> Validator {
        self.allow_comments = allow;
        self
    }

    /// Parses JSON text to validate (a leading byte order mark is ignored; comments only
    /// with [`Validator::allow_comments`]).
    pub fn parse_json(&self, text: &str) -> Result<Value, serde_json::Error> {
        json::parse(text, self.allow_comments)
    }

    /// Validates `resource` (any resource type, Bundles included) and returns
    /// every issue found, errors first.
    pub fn validate(&self, resource: &Value, opts: &Options) -> Vec<Issue> {
        walk::validate(self, resource, opts)
    }

    /// Constraints that are not evaluated, as (key, reason): native rules
    /// replace some, narrative checks are skipped, and expressions the
    /// FHIRPath engine cannot compile are listed with the error.
    pub fn skipped_constraints(&self) -> &[(String, String)] {
        &self.defs.skipped
    }

    /// Whether a StructureDefinition with this canonical URL (version ignored) is loaded.
    pub fn knows_profile(&self, url: &str) -> bool {
        self.defs.sd(model::strip_version(url)).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn validator_is_send_sync() {
        assert_send_sync::<Validator>();
    }
}
