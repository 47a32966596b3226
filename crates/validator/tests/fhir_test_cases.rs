//! The R4 subset of FHIR/fhir-test-cases: our error count against the HL7
//! Java validator's expected outcome, per case (see CONFORMANCE.md).
//!
//! `cargo test -p sp-validator --test fhir_test_cases -- --nocapture` prints
//! the agreement table.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use common::data;
use serde_json::Value;
use sp_validator::{HtmlInMarkdown, Options, Validator};

/// Cases (and runs: `base` = no explicit profile, `profile` = validated
/// against the case's profile) where our error count equals the Java
/// validator's. This list may only grow.
const AGREEING_EXACT: &[&str] = &[
    "Observation-ex-pain.json/base",
    "ab-list-slicing/base",
    "abstract-question-type-included-qr/base",
    "ad-practitioner-resource/base",
    "additional-bindings-observation-2/base",
    "additional-bindings-observation-2/profile",
    "ai1/base",
    "ai2/base",
    "ai3/base",
    "ai4/base",
    "ai5/base",
    "ai6/base",
    "ai7/base",
    "attachment-content-type-qr/base",
    "attachment-inconsistent-size-qr/base",
    "attachment-invalid-type-qr/base",
    "attachment-max-size-qr/base",
    "attachment-qr/base",
    "attachment-tx/base",
    "attachment-with-invalid-binary/base",
    "attachment-with-wrong-size/base",
    "bad-json-close-2/base",
    "bad-json-close-3/base",
    "bad-json-close/base",
    "bad-markdown-no-html/base",
    "bad-markdown/base",
    "bb-obs-value-is-not-in-valueset/base",
    "bb-obs-value-is-not-in-valueset/profile",
    "bb-obs-value-is-not-quantity-or-string/base",
    "bb-obs-value-is-not-quantity-or-string/profile",
    "bb-obs-value-is-not-quantity/base",
    "bb-obs-value-is-not-quantity/profile",
    "boolean-invalid-type-qr/base",
    "bundle-document-versioned-references-bad/base",
    "bundle-document-versioned-references-good/base",
    "bundle-duplicate-id/base",
    "bundle-id-1/base",
    "bundle-id-2/base",
    "bundle-invariant/base",
    "bundle-profiles/base",
    "bundle-resolve-deep/base",
    "bundle-signed-good/base",
    "capstmt/base",
    "care-plan/base",
    "choice-answer-option-exclusive-qr/base",
    "choice-answer-option-qr/base",
    "choice-async-qr/base",
    "choice-gender-coding-async-qr/base",
    "choice-invalid-type-qr/base",
    "choice-invalid-value-set-async-qr/base",
    "comments-4/base",
    "contained-invariant/base",
    "contained-resource-bad-id-ignore/base",
    "contained-resource-bad-id/base",
    "contained/base",
    "cs-narrative-status/base",
    "date-answer-option-qr/base",
    "date-invalid-type-qr/base",
    "date-min-max-qr/base",
    "date-time-invalid-type-qr/base",
    "date-time-min-max-qr/base",
    "decimal-invalid-type-qr/base",
    "decimal-max-decimal-places-qr/base",
    "decimal-min-max-qr/base",
    "decimal-precision-questionnaire/base",
    "decimal-qr/base",
    "display-answer-included-qr/base",
    "document-manifest/base",
    "dr-example-org-2/base",
    "dr-example-org/base",
    "empty-array/base",
    "encounter-period/base",
    "ext-ctxt-bad-active/base",
    "ext-ctxt-good-base/base",
    "ext-derived-circle#2/base",
    "ext-derived/base",
    "ext-xver-modifier-1/base",
    "extension-version-restriction-range-ctxt-r4/base",
    "extension-version-restriction-range-r4/base",
    "filter-display-error-with-path/base",
    "filter-invalid-display/base",
    "fixed-quantity-binding-observation-2/base",
    "fixed-quantity-binding-observation-2/profile",
    "fixed-quantity-binding-observation/base",
    "fixed-quantity-binding-observation/profile",
    "group-required-qr/base",
    "group-with-string-invalid-nesting-link-id-qr/base",
    "group-with-string-qr/base",
    "hakan-se-2/base",
    "integer-answer-option-qr/base",
    "integer-invalid-type-qr/base",
    "integer-min-max-qr/base",
    "integer-qr/base",
    "inv-checks/base",
    "inv-checks/profile",
    "invalid-link-id-qr/base",
    "ips-htmlrefs-backwards/base",
    "json-comma-bad-1/base",
    "json-comments-1-no/base",
    "json-comments-1-yes/base",
    "json-comments-2-yes/base",
    "json-good/base",
    "json-no-quotes-1/base",
    "line-pattern-card-test/base",
    "maiden-name-extension/base",
    "matchetype-extension-1/base",
    "matchetype-extension-2/base",
    "matchetype-list-count-no/base",
    "matchetype-list-count-yes/base",
    "matchetype-list-multiple-extra/base",
    "matchetype-list-multiple-missing-1/base",
    "matchetype-list-multiple-missing-2/base",
    "matchetype-list-multiple-present/base",
    "matchetype-list-single-extra/base",
    "matchetype-list-single-missing/base",
    "matchetype-list-single-present/base",
    "matchetype-list-sort-no/base",
    "matchetype-list-sort-yes/base",
    "matchetype-optional-end-no/base",
    "matchetype-optional-end-other/base",
    "matchetype-optional-end-yes/base",
    "matchetype-optional-middle-no/base",
    "matchetype-optional-middle-other/base",
    "matchetype-optional-middle-yes/base",
    "matchetype-optional-start-no#2/base",
    "matchetype-optional-start-no#3/base",
    "matchetype-optional-start-no/base",
    "matchetype-optional-start-other#2/base",
    "matchetype-optional-start-other#3/base",
    "matchetype-optional-start-other/base",
    "matchetype-optional-start-yes#2/base",
    "matchetype-optional-start-yes#3/base",
    "matchetype-optional-start-yes/base",
    "matchetype-pattern-list/base",
    "matchetype-pattern-singleton/base",
    "matchetype-sc-good/base",
    "matchetype-sc-invalid/base",
    "matchetype-sc-missing/base",
    "matchetype-sc-opt-no/base",
    "matchetype-sc-opt-wrong/base",
    "matchetype-sc-opt-yes/base",
    "matchetype-sc-wrong/base",
    "matchetype-ss-good/base",
    "matchetype-ss-invalid/base",
    "matchetype-ss-missing/base",
    "matchetype-ss-opt-no/base",
    "matchetype-ss-opt-wrong/base",
    "matchetype-ss-opt-yes/base",
    "matchetype-ss-wrong/base",
    "measure-report-ihe/base",
    "media-mime-type-notx/base",
    "media-mime-type-notx/profile",
    "media-mime-type-tx/base",
    "media-mime-type-tx/profile",
    "medstmt-ips/base",
    "medstmt-ips/profile",
    "mr-covid-bnd1/base",
    "mr-covid-m3/base",
    "mr-covid-m4/base",
    "mr-covid-mr1/base",
    "mycommunication.invalid/base",
    "mycommunication.invalid/profile",
    "mycommunication.valid.example/base",
    "mycommunication.valid.example/profile",
    "nested-questionnaire-nested-valueset/base",
    "obs-fio2/base",
    "obs-max-decimal/base",
    "obs-max-decimal/profile",
    "obs-mz/base",
    "obs-percent/base",
    "obs-percent/profile",
    "obs-temp-bad/base",
    "obs-temp/base",
    "obs-value-max-g/base",
    "obs-value-max-g/profile",
    "obs-value-min-g/base",
    "obs-value-min-g/profile",
    "obs-value-min/base",
    "obs-value-min/profile",
    "obs-vital-signs-mdc/base",
    "open-choice-gender-coding-async-qr/base",
    "open-choice-string-async-qr/base",
    "param-mintime/base",
    "param-mintime/profile",
    "parameters-profiled-resource-invalid/base",
    "parameters-profiled-resource-invalid/profile",
    "parameters-profiled-resource-multiple/base",
    "parameters-profiled-resource-multiple/profile",
    "parameters-profiled-resource-valid/base",
    "parameters-reference-bad/base",
    "parameters-reference/base",
    "params-empty-r4/base",
    "params-recursion/base",
    "pat-dob-ext/base",
    "pat-example-extensions/base",
    "pat-fixed-date/base",
    "pat-fixed-date/profile",
    "pat-minvalue-date/base",
    "pat-minvalue-date/profile",
    "pat-security-bad-string/base",
    "pat-security-good1/base",
    "pat-security-good2/base",
    "pat-security-good3/base",
    "patient-example-ra4/base",
    "patient-extension-bad/base",
    "patient-extension-complex-bad2/base",
    "patient-extension-complex/base",
    "patient-id-bad-1 / R4/base",
    "patient-id-bad-2 / R4/base",
    "patient-id-bad-3 / R4/base",
    "patient-id-extensions/base",
    "patient-id-only/base",
    "patient-ig-bad/base",
    "patient-ig-good/base",
    "patient-lang-inv-bad/base",
    "patient-lang-inv-bad/profile",
    "patient-lang-inv/base",
    "patient-lang-inv/profile",
    "patient-min-fixed/base",
    "patient-min-fixed/profile",
    "patient-min-fixed1/base",
    "patient-min-fixed1/profile",
    "patient-min-length/base",
    "patient-min-length/profile",
    "patient-min-none/base",
    "patient-min-none/profile",
    "patient-min-none1/base",
    "patient-min-none1/profile",
    "patient-min-pattern/base",
    "patient-min-pattern/profile",
    "patient-min-pattern1/base",
    "patient-min-pattern1/profile",
    "profile-slicing-missing-instance/base",
    "profile-slicing-multiple/base",
    "profile-slicing-multiple/profile",
    "profile-slicing-multipleb/base",
    "profile-slicing-multipleb/profile",
    "q-enablewhen-me-wrong/base",
    "q_val_fail/base",
    "qr-bad-ref1/base",
    "qr-bad-ref3/base",
    "qr-enablewhen-me/base",
    "qr-validation-issue/base",
    "qr-vr/base",
    "quantity-invalid-type-qr/base",
    "quantity-min-max-compat-units-qr/base",
    "quantity-min-max-incompat-units-qr/base",
    "quantity-min-max-qr/base",
    "quantity-qr/base",
    "quantity-units-in-value-set-qr/base",
    "quantity-units-invalid-qr/base",
    "quantity-units-not-in-value-set-qr/base",
    "quantity-units-qr/base",
    "questionnaire-draft-qr/base",
    "questionnaire-enableWhen-dw/base",
    "questionnaire-inactive-end-qr/base",
    "questionnaire-inactive-start-qr/base",
    "questionnaire-not-resolved-qr/base",
    "questionnaire-retired-qr/base",
    "ref-policy-default-apply-r5/base",
    "ref-policy-default-r4/base",
    "reference-absolute-qr/base",
    "reference-invalid-resource-type-qr/base",
    "reference-invalid-type-qr/base",
    "reference-relative-qr/base",
    "reference-unconstrained-resource-type-qr/base",
    "res-inv-example-bad/base",
    "res-inv-example-bad/profile",
    "res-inv-example-good/base",
    "resource-invalid-eid-0/base",
    "resource-invalid-eid-1/base",
    "resource-invalid-eid-2/base",
    "resource-invalid-id-0/base",
    "resource-invalid-id-1/base",
    "resource-invalid-id-2/base",
    "resource-invalid-id-3/base",
    "risk-assessment-probability-range/base",
    "sd-device/base",
    "shc-bundle/base",
    "shc/base",
    "signatures-example-1/base",
    "signatures-parameters-example/base",
    "slicing-kn-example/base",
    "slicing-kn-example/profile",
    "sp-composite/base",
    "sp-diff-base/base",
    "sp-diff-expression/base",
    "sp-diff-type/base",
    "standards-status-r4/base",
    "standards-status-x-r4/base",
    "string-answer-option-qr/base",
    "string-draft-downgrade-qr/base",
    "string-invalid-type-qr/base",
    "string-max-occurs-qr/base",
    "string-min-max-length-qr/base",
    "string-min-occurs-qr/base",
    "string-qr/base",
    "string-regex-qr/base",
    "string-required-qr/base",
    "string-vs-text-qr/base",
    "structureDefinition-11179-objectClass-R4/base",
    "text-invalid-type-qr/base",
    "time-invalid-type-qr/base",
    "time-qr/base",
    "toplevel-maxvalueduration-fail/base",
    "toplevel-maxvalueduration-fail/profile",
    "toplevel-maxvalueduration-pass/base",
    "toplevel-maxvalueduration-pass/profile",
    "toplevel-minvalueduration-fail/base",
    "toplevel-minvalueduration-fail/profile",
    "toplevel-minvalueduration-pass/base",
    "toplevel-minvalueduration-pass/profile",
    "type-ref-checked/base",
    "type-ref-checked/profile",
    "type-ref-unchecked/base",
    "type-ref-unchecked/profile",
    "type-slicing-multiple/base",
    "type-slicing-multiple/profile",
    "type-slicing-multipleb/base",
    "type-slicing-multipleb/profile",
    "type-subtype-slicing1/base",
    "type-subtype-slicing1/profile",
    "type-subtype-slicing2/base",
    "type-subtype-slicing2/profile",
    "type-subtype-slicing3/base",
    "type-subtype-slicing3/profile",
    "url-invalid-type-qr/base",
    "url-value-qr/base",
    "valueset-import-legacy-test/base",
    "valueset-import-legacy-test/profile",
    "xml-bad-entities-json/base",
    "xver-extensions-vs/base",
    "xver-valueset-4_5/base",
];

/// Cases where we agree with the Java validator on the verdict (valid /
/// invalid) but not on the number of errors.
const AGREEING_VERDICT: &[&str] = &[
    "PulseOxBundle_25Oct2022/base",
    "ad-practitioner-resource/profile",
    "ai8/base",
    "bundle-duplicate-ids-not/base",
    "bundle-ea-testcase/base",
    "bundle-enrl/base",
    "bundle-id-3/base",
    "bundle-id-4/base",
    "bundle-sig-2/base",
    "bundle-signed-nob64/base",
    "bundle-with-contained/base",
    "ext-ccuk/base",
    "ext-xver-modifier-2/base",
    "group-with-string-invalid-nesting-qr/base",
    "hakan-se-nofetch/base",
    "hakan-se/base",
    "json-comma-bad-2/base",
    "json-comments-2-no/base",
    "json-no-quotes-2/base",
    "mni-patientOverview-bundle-example1/base",
    "mni-patientOverview-bundle-example1b/base",
    "mr-covid-m/base",
    "mr-covid-m5/base",
    "obs-quantity-us/base",
    "obs-unit-profile/base",
    "opdef-params/base",
    "open-choice-invalid-type-qr/base",
    "pat-security-bad-xhtml/base",
    "patient-bad-gender/base",
    "patient-bad-gender/profile",
    "patient-extension-bad3/base",
    "patient-extension-complex-bad1/base",
    "patient-hs-1/base",
    "reference-invalid-url-qr/base",
    "shc-bad-1/base",
    "sig-bundle.json/base",
    "synthea/base",
    "target-ref-profile-empty/base",
    "uk-msg/base",
    "uuid-extension/base",
    "versioned-extension/base",
];

/// Cases we do not claim to support, with the reason.
const UNSUPPORTED: &[(&str, &str)] = &[
    (
        "PulseOxBundle_25Oct2022/profile",
        "needs the IG package hl7.fhir.us.core#4.0.0 (not loaded: no IG packages)",
    ),
    (
        "StructureDefinition-Slice23/base",
        "not checked: a StructureDefinition's own slicing definitions (snapshot generation rules)",
    ),
    (
        "bundle-conformsto/base",
        "not checked: the Composition matches its `profile`-discriminated slice only if the Patient its subject resolves to in the Bundle conforms to the subject's targetProfile; we do not validate reference targets against targetProfile",
    ),
    (
        "bundle-id-5/base",
        "needs a terminology server: Java's errors are display names or value-set membership of external code systems (“Wrong Display Name 'SARS-COV-2 (COVID-19) vaccine, mRNA, spike protein, LNP, preservative free, 100 mcg/0.5mL dose' for ”)",
    ),
    (
        "ext-derived-circle/base",
        "not checked: HL7 publication rules for StructureDefinitions (work-group extension) and circular derivation",
    ),
    (
        "ips-nz-pj/base",
        "needs a terminology server: Java's errors are display names or value-set membership of external code systems (“Wrong Display Name 'History of Immunization Narrative' for http://loinc.org#11369-6. Valid display is one of 3 choices: ”)",
    ),
    (
        "mr-covid-m2/base",
        "needs a terminology server: Java's errors are display names or value-set membership of external code systems (“Wrong Display Name 'COVID-19' for http://snomed.info/sct#840535000. Valid display is one of 11 choices: 'Antibody to Wuh”)",
    ),
    (
        "params-resource/base",
        "no Java outcome upstream for this run (the manifest names a file that does not exist)",
    ),
    (
        "qr-bad-ref2/base",
        "needs the R4 example ValueSet example-extensional, which we do not embed: Java finds that the canonical QuestionnaireResponse.questionnaire resolves to a ValueSet, not a Questionnaire",
    ),
    (
        "res-inv-example-good/profile",
        "needs the SMART App Launch IG's profile (user-access-endpoint), which is not loaded",
    ),
    (
        "sdoh-type-slice/base",
        "needs a terminology server: Java's errors are display names or value-set membership of external code systems (“Wrong Display Name 'Within the past 12 months the food we bought just didn't last and we didn't have money to get more [”)",
    ),
    (
        "sdoh-type-slice/profile",
        "needs a terminology server: Java's errors are display names or value-set membership of external code systems (“Wrong Display Name 'Within the past 12 months the food we bought just didn't last and we didn't have money to get more [”)",
    ),
    (
        "shc-bad-1/profile",
        "needs the IG package hl7.fhir.uv.shc-vaccination#0.6.2 (not loaded: no IG packages)",
    ),
    (
        "shc-bundle/profile",
        "needs the IG package hl7.fhir.uv.shc-vaccination#0.6.2 (not loaded: no IG packages)",
    ),
    (
        "shc-cvx/base",
        "needs a terminology server: Java's errors are display names or value-set membership of external code systems (“Unknown code '209' in the CodeSystem 'http://hl7.org/fhir/sid/cvx' version '20250715'”)",
    ),
    (
        "shc-cvx/profile",
        "needs the IG package hl7.fhir.uv.shc-vaccination#0.6.2 (not loaded: no IG packages)",
    ),
    (
        "shc/profile",
        "needs the IG package hl7.fhir.uv.shc-vaccination#0.6.2 (not loaded: no IG packages)",
    ),
    (
        "signatures-example-2/base",
        "digital signatures are not verified",
    ),
    (
        "string-with-coding-async-qr/base",
        "needs a terminology server: the jurisdiction value set also draws on ISO 3166-2 and UN M49 regions, which we do not carry (ISO 3166-1 is embedded), so we cannot show that 'Australia' is none of its codes (“The value 'Australia' is not in the list of allowed values”)",
    ),
];

/// Reads a file of the subset; XML files are read from their JSON
/// conversion in `json/` (see SOURCES.md there).
fn read(rel: &str) -> Option<Value> {
    let rel = match rel.strip_suffix(".xml") {
        Some(stem) => format!("../json/{stem}.json"),
        None => rel.to_string(),
    };
    let p = data(&format!("fhir-test-cases/validator/{rel}"));
    let text = std::fs::read_to_string(p).ok()?;
    // A byte order mark is allowed before JSON text (RFC 8259 §8.1 lets a parser ignore it).
    serde_json::from_str(text.strip_prefix('\u{feff}').unwrap_or(&text)).ok()
}

/// The text of a case's instance (XML instances: their JSON conversion, see `read`).
fn read_instance(rel: &str) -> Result<String, String> {
    let path = match rel.strip_suffix(".xml") {
        Some(stem) => format!("json/{stem}.json"),
        None => format!("validator/{rel}"),
    };
    std::fs::read_to_string(data(&format!("fhir-test-cases/{path}")))
        .map_err(|e| format!("cannot read {rel}: {e}"))
}

fn expected_errors(outcome: &str) -> Option<usize> {
    read(&format!("outcomes/{outcome}")).map(|v| outcome_errors(&v))
}

/// The errors (severity error or fatal) of an OperationOutcome.
fn outcome_errors(v: &Value) -> usize {
    // An outcome without issues means the Java validator found nothing.
    let issues = v
        .get("issue")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    issues
        .iter()
        .filter(|i| {
            matches!(
                i.get("severity").and_then(Value::as_str),
                Some("error" | "fatal")
            )
        })
        .count()
}

/// The Java outcome of a run: the file the manifest names or, when upstream
/// has no file of that name, the one the Java test suite writes for the run
/// (`R4.<case>-<base|profile>.json`; see SOURCES.md).
fn java_outcome(java: &Value, case: &str, run: &str) -> Option<usize> {
    // Some cases write the expected outcome inline: `{"errorCount": n, ...}` or
    // `{"outcome": OperationOutcome}`.
    if let Some(n) = java.get("errorCount").and_then(Value::as_u64) {
        return usize::try_from(n).ok();
    }
    if let Some(outcome) = java.get("outcome") {
        return Some(outcome_errors(outcome));
    }
    java.as_str().and_then(expected_errors).or_else(|| {
        let stem = case.replace('/', "-");
        expected_errors(&format!("java/R4.{stem}-{run}.json"))
    })
}

/// One run of one case.
#[derive(Debug)]
struct Run {
    id: String,
    expected: Option<usize>,
    ours: Result<usize, String>,
    /// Our first error, for the explanation of a run that does not agree.
    first: Option<String>,
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The definition files of a run, as the Java test suite loads them: the
/// case's `profiles` and `supporting` for both runs; the profile run adds its
/// profile's `source` and `supporting`.
fn run_definitions(case: &Value, profile_run: bool) -> Vec<String> {
    let mut files = strings(case.get("profiles"));
    files.extend(strings(case.get("supporting")));
    if profile_run {
        let profile = case.get("profile");
        files.extend(strings(profile.and_then(|p| p.get("supporting"))));
        files.extend(
            profile
                .and_then(|p| p.get("source"))
                .and_then(Value::as_str)
                .map(str::to_string),
        );
    }
    files
}

/// How the Java test suite sets up the validator for a run (`ValidationTests.java`), from
/// the manifest: the case's settings, a profile run's own overriding them where it has one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Settings {
    /// `assumeValidRestReferences` (off unless given).
    assume_valid_rest_references: bool,
    /// `noHtmlInMarkdown`: HTML in markdown is an error, not a warning.
    no_html_in_markdown: bool,
    /// `security-checks`.
    security_checks: bool,
    /// `examples` (on unless given).
    allow_examples: bool,
    /// `validateContains` other than `IGNORE`.
    validate_contained: bool,
    /// `allow-comments`.
    allow_comments: bool,
    /// `validateReference` `CHECK_EXISTS` or `CHECK_EXISTS_AND_TYPE`.
    check_references_exist: bool,
}

fn settings(case: &Value, profile_run: bool) -> Settings {
    let profile = if profile_run {
        case.get("profile")
    } else {
        None
    };
    let get = |key: &str| profile.and_then(|p| p.get(key)).or_else(|| case.get(key));
    let flag = |key: &str, default: bool| get(key).and_then(Value::as_bool).unwrap_or(default);
    Settings {
        assume_valid_rest_references: flag("assumeValidRestReferences", false),
        no_html_in_markdown: get("noHtmlInMarkdown").is_some(),
        security_checks: flag("security-checks", false),
        allow_examples: flag("examples", true),
        validate_contained: get("validateContains").and_then(Value::as_str) != Some("IGNORE"),
        allow_comments: flag("allow-comments", false),
        check_references_exist: checks_references_exist(case),
    }
}

/// Whether references must resolve (`validateReference` `CHECK_EXISTS` or
/// `CHECK_EXISTS_AND_TYPE`; the run has nothing else to fetch them from).
fn checks_references_exist(case: &Value) -> bool {
    case.get("validateReference")
        .and_then(Value::as_str)
        .is_some_and(|p| p.starts_with("CHECK_EXISTS"))
}

/// A validator with the bundled definitions plus the run's definitions, set
/// up as the Java suite sets up the run.
fn validator_for(case: &Value, profile_run: bool) -> Result<Validator, String> {
    let mut defs = Vec::new();
    for f in run_definitions(case, profile_run) {
        defs.push(read(&f).ok_or_else(|| format!("cannot read definition {f}"))?);
    }
    let s = settings(case, profile_run);
    let markdown = if s.no_html_in_markdown {
        HtmlInMarkdown::Error
    } else {
        HtmlInMarkdown::Warning
    };
    Ok(Validator::with_extra(defs)
        .map_err(|e| e.to_string())?
        .assume_valid_rest_references(s.assume_valid_rest_references)
        .check_references_exist(s.check_references_exist)
        // The Java suite accepts no extension it has no definition for.
        .allow_unknown_extensions(false)
        // Base R4 (and the cases' own profiles) let a reference be any string without
        // white space; the resolvable forms are the gateway's rule.
        .strict_reference_format(false)
        .html_in_markdown(markdown)
        .security_checks(s.security_checks)
        .allow_example_urls(s.allow_examples)
        .validate_contained(s.validate_contained)
        .allow_comments(s.allow_comments))
}

/// Validators already built, by (definition files, settings): most runs share the same
/// set up.
type Validators = HashMap<(Vec<String>, Settings), Rc<Result<Validator, String>>>;

fn shared_validator(
    cache: &mut Validators,
    case: &Value,
    profile_run: bool,
) -> Rc<Result<Validator, String>> {
    let key = (
        run_definitions(case, profile_run),
        settings(case, profile_run),
    );
    cache
        .entry(key)
        .or_insert_with(|| Rc::new(validator_for(case, profile_run)))
        .clone()
}

/// Our error count for one run.
/// (An instance that is not JSON, as the run reads it, counts as one fatal error.)
fn our_errors(
    validator: &Result<Validator, String>,
    instance: &Result<String, String>,
    profiles: &[&str],
) -> (Result<usize, String>, Option<String>) {
    let v = match validator.as_ref() {
        Ok(v) => v,
        Err(e) => return (Err(e.clone()), None),
    };
    let inst = match instance.as_ref().map(|text| v.parse_json(text)) {
        Ok(Ok(inst)) => inst,
        Ok(Err(_)) => return (Ok(1), Some("not JSON".to_string())),
        Err(e) => return (Err(e.clone()), None),
    };
    let opts = Options {
        profiles_by_type: &[],
        root_profiles: profiles,
    };
    let issues = v.validate(&inst, &opts);
    let errors = issues.iter().filter(|i| i.is_error());
    let first = errors
        .clone()
        .next()
        .map(|i| format!("{}: {}", i.expression, i.diagnostics));
    (Ok(errors.count()), first)
}

fn run_case(case: &Value, cache: &mut Validators) -> Vec<Run> {
    let name = case
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_string();
    let file = case.get("file").and_then(Value::as_str).unwrap_or("");
    let profile = case.get("profile");
    let mut runs = Vec::new();
    let profile_url = profile
        .and_then(|p| p.get("source"))
        .and_then(Value::as_str)
        .and_then(read)
        .and_then(|sd| sd.get("url").and_then(Value::as_str).map(str::to_string));
    let instance = read_instance(file);
    if let Some(java) = case.get("java") {
        let validator = shared_validator(cache, case, false);
        let (ours, first) = our_errors(&validator, &instance, &[]);
        runs.push(Run {
            id: format!("{name}/base"),
            expected: java_outcome(java, &name, "base"),
            ours,
            first,
        });
    }
    if let Some(java) = profile.and_then(|p| p.get("java")) {
        let (ours, first) = match &profile_url {
            Some(url) => {
                let validator = shared_validator(cache, case, true);
                our_errors(&validator, &instance, &[url.as_str()])
            }
            None => (Err("profile source not readable".to_string()), None),
        };
        runs.push(Run {
            id: format!("{name}/profile"),
            expected: java_outcome(java, &name, "profile"),
            ours,
            first,
        });
    }
    runs
}

fn all_runs() -> Vec<Run> {
    let manifest = read("../validator-manifest-r4.json").unwrap_or(Value::Null);
    let cases = manifest
        .get("test-cases")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut cache = Validators::new();
    // A few names occur twice in the manifest (different cases): the second is `name#2`.
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut runs = Vec::new();
    for case in &cases {
        let name = case.get("name").and_then(Value::as_str).unwrap_or("?");
        let n = seen.entry(name.to_string()).or_insert(0);
        *n += 1;
        let label = if *n == 1 {
            name.to_string()
        } else {
            format!("{name}#{n}")
        };
        for mut run in run_case(case, &mut cache) {
            run.id = format!("{label}{}", &run.id[name.len()..]);
            runs.push(run);
        }
    }
    runs
}

#[test]
fn agreement_does_not_shrink() {
    let runs = all_runs();
    assert!(
        runs.len() >= 60,
        "expected the manifest's runs, found {}",
        runs.len()
    );
    let mut table = BTreeMap::new();
    let (mut exact, mut verdict) = (Vec::new(), Vec::new());
    for r in &runs {
        let status = match (&r.ours, r.expected) {
            (Ok(n), Some(e)) if *n == e => {
                exact.push(r.id.clone());
                "exact"
            }
            (Ok(n), Some(e)) if (*n == 0) == (e == 0) => {
                verdict.push(r.id.clone());
                "verdict"
            }
            (Ok(_), Some(_)) => "differs",
            (Err(_), _) => "error",
            (_, None) => "no-expectation",
        };
        let ours = match &r.ours {
            Ok(n) => n.to_string(),
            Err(e) => format!("({e})"),
        };
        let expected = r
            .expected
            .map(|e| e.to_string())
            .unwrap_or_else(|| "?".into());
        table.insert(
            r.id.clone(),
            format!("| {} | {expected} | {ours} | {status} |", r.id),
        );
    }
    println!("| run | java errors | our errors | agreement |\n|---|---|---|---|");
    for line in table.values() {
        println!("{line}");
    }
    for r in &runs {
        if !exact.contains(&r.id) && !verdict.contains(&r.id) {
            println!(
                "OURS-FIRST\t{}\t{}",
                r.id,
                r.first.as_deref().unwrap_or("-")
            );
        }
    }
    println!(
        "exact: {} verdict-only: {} of {} runs",
        exact.len(),
        verdict.len(),
        runs.len()
    );
    for id in AGREEING_EXACT {
        assert!(
            exact.iter().any(|e| e == id),
            "{id} no longer agrees exactly: {}",
            table[*id]
        );
    }
    for id in AGREEING_VERDICT {
        assert!(
            exact.iter().chain(verdict.iter()).any(|e| e == id),
            "{id} no longer agrees on the verdict: {}",
            table[*id]
        );
    }
    // An unsupported run that agrees now belongs in an agreeing list.
    for (id, _) in UNSUPPORTED {
        assert!(
            !exact.iter().chain(verdict.iter()).any(|e| e == id),
            "{id} agrees now: move it from UNSUPPORTED to AGREEING_EXACT or AGREEING_VERDICT: {}",
            table[*id]
        );
    }
    // Every run is either agreeing or explained.
    for r in &runs {
        let explained = exact.contains(&r.id)
            || verdict.contains(&r.id)
            || UNSUPPORTED.iter().any(|(id, _)| *id == r.id);
        assert!(
            explained,
            "{} is neither agreeing nor listed as unsupported: {}",
            r.id, table[&r.id]
        );
    }
}

/// `FTC_CASE=name cargo test -p sp-validator --test fhir_test_cases show_case -- --ignored --nocapture`
#[test]
#[ignore = "prints our issues for one case, for investigation"]
fn show_case() {
    let want = std::env::var("FTC_CASE").unwrap_or_default();
    let manifest = read("../validator-manifest-r4.json").unwrap_or(Value::Null);
    let cases = manifest
        .get("test-cases")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for case in cases
        .iter()
        .filter(|c| c.get("name").and_then(Value::as_str) == Some(want.as_str()))
    {
        let url = case
            .get("profile")
            .and_then(|p| p.get("source"))
            .and_then(Value::as_str)
            .and_then(read)
            .and_then(|sd| sd.get("url").and_then(Value::as_str).map(str::to_string));
        let Ok(text) = read_instance(case.get("file").and_then(Value::as_str).unwrap_or("")) else {
            println!("instance missing");
            continue;
        };
        for profile_run in [false, true] {
            let profiles: Vec<&str> = if profile_run {
                match &url {
                    Some(u) => vec![u.as_str()],
                    None => continue,
                }
            } else {
                vec![]
            };
            let v = validator_for(case, profile_run).expect("loads");
            let Ok(inst) = v.parse_json(&text) else {
                println!("instance is not JSON");
                continue;
            };
            let issues = v.validate(
                &inst,
                &Options {
                    profiles_by_type: &[],
                    root_profiles: &profiles,
                },
            );
            println!("--- profiles {profiles:?}\n{}", common::show(&issues));
        }
    }
}
