//! Validation issues: what the gateway turns into OperationOutcome entries.

/// How bad an issue is, mirroring FHIR `OperationOutcome.issue.severity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Fatal,
    Error,
    Warning,
    Information,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Fatal => "fatal",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Information => "information",
        }
    }

    /// `true` for severities that make the resource invalid.
    pub fn is_error(self) -> bool {
        matches!(self, Severity::Fatal | Severity::Error)
    }
}

/// The FHIR issue-type codes the validator uses; see docs/CONTRACTS.md for
/// which one applies to what (the HTTP edge classifies on these).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IssueCode {
    /// Not FHIR R4 JSON at all (HTTP 400).
    Structure,
    /// Minimum cardinality not met.
    Required,
    /// Maximum cardinality exceeded, wrong reference target.
    Invalid,
    /// Primitive format, empty strings, fixed/pattern mismatch.
    Value,
    /// Code not in a bound value set.
    CodeInvalid,
    /// A constraint (FHIRPath or native) failed.
    Invariant,
    /// Gateway rules.
    BusinessRule,
    /// A reference that must resolve inside the Bundle/contained does not.
    NotFound,
    /// Something we could not check (unknown code system, unknown profile).
    NotSupported,
    /// Informational notes.
    Informational,
    /// Too much input to check completely.
    TooCostly,
}

impl IssueCode {
    pub fn as_str(self) -> &'static str {
        match self {
            IssueCode::Structure => "structure",
            IssueCode::Required => "required",
            IssueCode::Invalid => "invalid",
            IssueCode::Value => "value",
            IssueCode::CodeInvalid => "code-invalid",
            IssueCode::Invariant => "invariant",
            IssueCode::BusinessRule => "business-rule",
            IssueCode::NotFound => "not-found",
            IssueCode::NotSupported => "not-supported",
            IssueCode::Informational => "informational",
            IssueCode::TooCostly => "too-costly",
        }
    }
}

/// One finding about the validated resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub severity: Severity,
    pub code: IssueCode,
    /// Plain English: what is wrong and what is expected.
    pub diagnostics: String,
    /// FHIRPath-style location, see docs/CONTRACTS.md.
    pub expression: String,
    /// Stable identifier of the rule, e.g. `cardinality-min`, or a constraint key.
    pub message_id: &'static str,
    /// The profile whose rule failed (None for base R4 structure rules).
    pub profile: Option<String>,
}

impl Issue {
    pub fn is_error(&self) -> bool {
        self.severity.is_error()
    }
}
