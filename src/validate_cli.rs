//! `sp-gateway validate`: the validator for GP system vendors, on any R4 resource, offline.
//!
//! By default a file meets base R4 and our profiles (applied by resource type); `--base` drops
//! ours (and the gateway's reference forms), `--definitions` adds a vendor's own, `--profile`
//! names one more for the root resource, and `--config` adds the rules a `POST` to a gateway
//! with that configuration applies (routing, create rules). `--no-html-in-markdown`,
//! `--security-checks`, `--no-example-urls` and `--allow-comments` set the HL7 validator's
//! options of those names. Exit 0 valid, 1 invalid, 2 when a file (or a definition) is not FHIR
//! at all.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use serde_json::Value;

use sp_gateway::config::Config;
use sp_gateway::domain::ClientId;
use sp_gateway::fhir::outcome::{operation_outcome, Issue};
use sp_gateway::fhir::read::{parse_body, Format};
use sp_gateway::intake::{self, Endpoint, Rejected, Request};
use sp_gateway::validation::Validation;
use sp_validator::{HtmlInMarkdown, Validator};

#[derive(Clone, Copy, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Args)]
pub struct ValidateArgs {
    /// Base R4 only: no social-prescribing profiles, no server rules.
    #[arg(long, conflicts_with = "config")]
    base: bool,
    /// Extra StructureDefinitions, ValueSets and CodeSystems (JSON files, Bundles of them, or
    /// folders searched for *.json), for a vendor's own profiles.
    #[arg(long = "definitions", value_name = "PATH")]
    definitions: Vec<PathBuf>,
    /// Also validate the root resource against this profile (canonical URL).
    #[arg(long, value_name = "URL", conflicts_with = "config")]
    profile: Vec<String>,
    /// Also apply the server's rules for a create with this configuration (routing to an
    /// organisation, create-only rules): the verdict a POST to that gateway would give.
    #[arg(long)]
    config: Option<PathBuf>,
    /// `text` (a verdict and the issues per file) or `json` (an array of OperationOutcomes, one
    /// per file, in file order).
    #[arg(long, value_enum, default_value = "text")]
    format: OutputFormat,
    /// Markdown that appears to embed HTML tags is an error (by default a warning).
    #[arg(long)]
    no_html_in_markdown: bool,
    /// Security checks: any value (other than narrative XHTML) containing what looks like an
    /// HTML tag is an error.
    #[arg(long)]
    security_checks: bool,
    /// Example URLs (example.org, example.com, acme.com, ...) in uri, url and canonical values
    /// are errors: for production data rather than examples.
    #[arg(long)]
    no_example_urls: bool,
    /// Accept JSON files with comments (`//`, `/* */`), which are otherwise not JSON.
    #[arg(long)]
    allow_comments: bool,
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// Reads a FHIR file, guessing the format from its extension or first character.
pub fn read_fhir_file(path: &Path) -> Result<(Value, Vec<u8>, Format), String> {
    read_fhir_file_with(path, false)
}

/// `read_fhir_file`, accepting JSON with comments when `allow_comments`.
fn read_fhir_file_with(
    path: &Path,
    allow_comments: bool,
) -> Result<(Value, Vec<u8>, Format), String> {
    let mut bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let is_xml = path.extension().is_some_and(|e| e == "xml")
        || bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<');
    let format = if is_xml { Format::Xml } else { Format::Json };
    if allow_comments && !is_xml {
        bytes = sp_validator::strip_json_comments(&bytes)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let tree = parse_body(&bytes, format, 64).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((tree, bytes, format))
}

/// The validator with the definitions and the checks the options ask for.
fn validator(args: &ValidateArgs, definitions: Vec<Value>) -> Result<Validator, String> {
    let markdown = if args.no_html_in_markdown {
        HtmlInMarkdown::Error
    } else {
        HtmlInMarkdown::Warning
    };
    Ok(Validator::with_extra(definitions)
        .map_err(|e| e.to_string())?
        // Base R4 lets a reference be any string without white space; the forms that
        // resolve ('Type/id', '#id', absolute URLs, urn:uuid) are the gateway's rule.
        .strict_reference_format(!args.base)
        .html_in_markdown(markdown)
        .security_checks(args.security_checks)
        .allow_example_urls(!args.no_example_urls))
}

/// One file's verdict and issues, errors first (they decide the verdict).
pub fn write_text(out: &mut impl Write, path: &Path, issues: &[Issue]) -> std::io::Result<()> {
    let mut issues: Vec<&Issue> = issues.iter().collect();
    issues.sort_by_key(|i| i.severity);
    let errors = issues.iter().filter(|i| i.severity.is_error()).count();
    let verdict = if errors == 0 { "valid" } else { "INVALID" };
    writeln!(
        out,
        "{}: {verdict} ({errors} errors, {} other issues)",
        path.display(),
        issues.len() - errors
    )?;
    for issue in issues {
        writeln!(
            out,
            "  {} [{}] {}: {}",
            issue.severity.as_str(),
            issue.code,
            issue.expression.as_deref().unwrap_or("-"),
            issue.diagnostics
        )?;
    }
    Ok(())
}

/// The endpoint a file would be POSTed to, from its shape.
pub fn endpoint_of(tree: &Value) -> Endpoint {
    match (tree["resourceType"].as_str(), tree["type"].as_str()) {
        (Some("Bundle"), Some("message")) => Endpoint::Message,
        (Some("Bundle"), _) => Endpoint::Transaction,
        _ => Endpoint::ServiceRequest,
    }
}

/// What a create at a gateway with `config` would answer, as issues (nothing is stored).
fn create_issues(
    config: &Config,
    validation: &Validation,
    tree: Value,
    bytes: &[u8],
    format: Format,
) -> Vec<Issue> {
    let Ok(client) = "cli".parse::<ClientId>() else {
        return Vec::new();
    };
    let request = Request {
        endpoint: endpoint_of(&tree),
        tree,
        received_body: bytes,
        received_content_type: format.content_type(),
        client: &client,
        correlation_id: None,
        now: chrono::Utc::now(),
    };
    match intake::prepare(config, validation, request) {
        Ok(prepared) => prepared.warnings,
        Err(Rejected(issues)) => issues,
    }
}

/// Every `*.json` under `path` (itself when it is a file), in name order.
fn json_files(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        entries.sort();
        for entry in entries {
            if entry.is_dir() || entry.extension().is_some_and(|e| e == "json") {
                json_files(&entry, out)?;
            }
        }
    } else {
        out.push(path.to_path_buf());
    }
    Ok(())
}

fn load_definitions(paths: &[PathBuf]) -> Result<Vec<Value>, String> {
    let mut files = Vec::new();
    for path in paths {
        json_files(path, &mut files).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", f.display()))
        })
        .collect()
}

pub fn run(args: &ValidateArgs) -> ExitCode {
    let definitions = match load_definitions(&args.definitions) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("sp-gateway: a definition is not FHIR JSON: {e}");
            return ExitCode::from(2);
        }
    };
    let validation = match validator(args, definitions)
        .and_then(|v| Validation::with_validator(v).map_err(|e| e.to_string()))
    {
        Ok(v) => v,
        Err(e) => {
            eprintln!("sp-gateway: cannot load the definitions: {e}");
            return ExitCode::from(2);
        }
    };
    let config = match args
        .config
        .as_deref()
        .map(|p| sp_gateway::app::load_config(Some(p)))
        .transpose()
    {
        Ok(config) => config,
        Err(e) => {
            eprintln!("sp-gateway: configuration refused: {e}");
            return ExitCode::from(2);
        }
    };
    let profiles: Vec<&str> = args.profile.iter().map(String::as_str).collect();
    let mut out = std::io::stdout().lock();
    let mut worst = 0u8;
    let mut outcomes = Vec::new();
    for path in &args.files {
        let issues = match read_fhir_file_with(path, args.allow_comments) {
            Ok((tree, bytes, format)) => match &config {
                Some(config) => create_issues(config, &validation, tree, &bytes, format),
                None if args.base => validation.validate_base_with(&tree, &profiles),
                None => validation.validate_with(&tree, &profiles),
            },
            Err(message) => {
                eprintln!("sp-gateway: not FHIR: {message}");
                worst = 2;
                let issue = Issue::error("structure", format!("Not FHIR: {message}"))
                    .with_message_id("not-fhir");
                outcomes.push(operation_outcome(&[issue]));
                continue;
            }
        };
        if intake::has_errors(&issues) {
            worst = worst.max(1);
        }
        match args.format {
            OutputFormat::Json => outcomes.push(operation_outcome(&issues)),
            OutputFormat::Text => {
                if write_text(&mut out, path, &issues)
                    .and_then(|()| out.flush())
                    .is_err()
                {
                    // The reader has gone (`| head`): stop quietly with the verdict so far.
                    return ExitCode::from(worst);
                }
            }
        }
    }
    if let OutputFormat::Json = args.format {
        let text = serde_json::to_string_pretty(&outcomes).unwrap_or_default();
        // A reader that went away early is no error of ours.
        let _ = writeln!(out, "{text}").and_then(|()| out.flush());
    }
    ExitCode::from(worst)
}
