//! Fixtures on disk: finding them, reading their expectations, and working out where each
//! request goes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::ReplayError;

const EXPECT_SUFFIX: &str = ".expect.json";
const RECORD_SUFFIX: &str = ".record.json";
/// Open Referral UK feeds (`fixtures/directory/`): input to `directory import`, not requests.
const FEED_SUFFIX: &str = ".oruk.json";
/// The folder of Open Referral UK feeds among the fixtures.
const DIRECTORY: &str = "directory";

/// One request file with its expectation.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// The request file (`name.json` or `name.xml`).
    pub request: PathBuf,
    /// The expectation file beside it (`name.expect.json`).
    pub expect_path: PathBuf,
    /// How the fixture is named in reports: its path relative to the root it was found under.
    pub name: String,
    /// The folder the fixture lies in, relative to that root (`referrals/valid`): the JUnit suite.
    pub group: String,
}

impl Fixture {
    pub fn is_xml(&self) -> bool {
        self.request.extension().is_some_and(|e| e == "xml")
    }

    /// Where the golden record lives: the expectation's `record`, else `name.record.json`.
    pub fn record_path(&self, expectation: &Expectation) -> PathBuf {
        let dir = self.request.parent().unwrap_or(Path::new("."));
        match &expectation.record {
            Some(name) => dir.join(name),
            None => {
                let stem = strip_suffix(&self.expect_path, EXPECT_SUFFIX);
                PathBuf::from(format!("{stem}{RECORD_SUFFIX}"))
            }
        }
    }
}

/// `name.expect.json`: what the gateway must answer, and what must follow.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    pub status: u16,
    #[serde(default)]
    pub issues: Vec<ExpectedIssue>,
    /// The VCS organisation the referral must be routed to (successes only).
    pub vcs: Option<String>,
    /// The GP client sending the request (default `emis-demo`).
    pub client: Option<String>,
    /// The path to POST to, when the content cannot tell.
    pub endpoint: Option<String>,
    /// The golden referral record, relative to the fixture's folder.
    pub record: Option<String>,
    /// Follow-up steps once the referral is accepted (closed-loop scenarios).
    #[serde(default)]
    pub steps: Vec<Step>,
}

impl Expectation {
    pub fn client(&self) -> &str {
        self.client.as_deref().unwrap_or("emis-demo")
    }
}

/// An issue that must appear in the OperationOutcome; absent keys match anything.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedIssue {
    pub severity: Option<String>,
    pub code: Option<String>,
    pub expression: Option<String>,
}

/// A follow-up step: exactly one action, the HTTP status it must get (`http`, with a default per
/// action) and values the JSON answer must hold (`expect`, paths such as `entry[0].resource.status`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Body for `POST /vcs/v1/referrals/{referral}/status`, sent with the routed VCS's token.
    pub vcs_status: Option<Value>,
    /// Body for `POST /vcs/v1/referrals/{referral}/outcomes`, sent with the routed VCS's token.
    pub vcs_outcome: Option<Value>,
    /// A FHIR read or search sent with the GP client's token (`{referral}` is substituted).
    pub fhir_get: Option<String>,
    /// A VCS API read sent with the routed VCS's token (`{referral}` is substituted).
    pub vcs_get: Option<String>,
    /// Body for `POST /vcs/v1/referrals/{referral}/onward` (a link worker refers the person on
    /// to a directory service), sent with the routed VCS's token.
    pub vcs_onward: Option<Value>,
    pub http: Option<u16>,
    #[serde(default)]
    pub expect: BTreeMap<String, Value>,
}

/// What a step does, once the exactly-one-action rule has been checked.
#[derive(Debug, Clone)]
pub enum Action {
    VcsStatus(Value),
    VcsOutcome(Value),
    FhirGet(String),
    VcsGet(String),
    VcsOnward(Value),
}

impl Step {
    pub fn action(&self) -> Result<Action, String> {
        let mut actions = Vec::new();
        if let Some(body) = &self.vcs_status {
            actions.push(Action::VcsStatus(body.clone()));
        }
        if let Some(body) = &self.vcs_outcome {
            actions.push(Action::VcsOutcome(body.clone()));
        }
        if let Some(path) = &self.fhir_get {
            actions.push(Action::FhirGet(path.clone()));
        }
        if let Some(path) = &self.vcs_get {
            actions.push(Action::VcsGet(path.clone()));
        }
        if let Some(body) = &self.vcs_onward {
            actions.push(Action::VcsOnward(body.clone()));
        }
        match actions.len() {
            1 => Ok(actions.remove(0)),
            n => Err(format!(
                "a step needs exactly one of vcs_status, vcs_outcome, vcs_onward, fhir_get, vcs_get; this one has {n}"
            )),
        }
    }

    /// The status a step must get unless `http` says otherwise.
    pub fn expected_http(&self, action: &Action) -> u16 {
        self.http.unwrap_or(match action {
            Action::VcsOutcome(_) | Action::VcsOnward(_) => 201,
            _ => 200,
        })
    }
}

/// The Open Referral UK feed folders (`directory/`) inside or beside the fixture paths: the
/// in-process gateway imports them, so that fixtures may name the directory's services.
pub fn directory_feeds(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut feeds: Vec<PathBuf> = Vec::new();
    for path in paths {
        let candidates = [
            Some(path.join(DIRECTORY)),
            path.parent().map(|p| p.join(DIRECTORY)),
        ];
        for folder in candidates.into_iter().flatten() {
            if folder.is_dir() && !feeds.contains(&folder) {
                feeds.push(folder);
            }
        }
        if path.is_dir()
            && path.file_name().is_some_and(|n| n == DIRECTORY)
            && !feeds.contains(path)
        {
            feeds.push(path.clone());
        }
    }
    feeds
}

fn strip_suffix(path: &Path, suffix: &str) -> String {
    let text = path.to_string_lossy();
    text.strip_suffix(suffix).unwrap_or(&text).to_string()
}

/// Whether a file is a request (not an expectation, a golden record, a directory feed or anything
/// else).
fn is_request(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let right_kind = name.ends_with(".json") || name.ends_with(".xml");
    right_kind
        && !name.ends_with(EXPECT_SUFFIX)
        && !name.ends_with(RECORD_SUFFIX)
        && !name.ends_with(FEED_SUFFIX)
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>) -> Result<(), ReplayError> {
    let read = std::fs::read_dir(dir).map_err(|e| ReplayError::io(dir, e))?;
    let mut entries = Vec::new();
    for entry in read {
        entries.push(entry.map_err(|e| ReplayError::io(dir, e))?.path());
    }
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, found)?;
        } else if is_request(&path) {
            found.push(path);
        }
    }
    Ok(())
}

/// Every fixture under the given files and folders, in sorted order. A request file without an
/// expectation is an error: it would otherwise go untested without anyone noticing.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<Fixture>, ReplayError> {
    let mut fixtures = Vec::new();
    for root in paths {
        let mut requests = Vec::new();
        if root.is_dir() {
            walk(root, &mut requests)?;
        } else if root.is_file() {
            requests.push(root.clone());
        } else {
            return Err(ReplayError::NotFound(root.clone()));
        }
        let base = if root.is_dir() {
            root.as_path()
        } else {
            root.parent().unwrap_or(Path::new(""))
        };
        for request in requests {
            fixtures.push(fixture_for(base, request)?);
        }
    }
    fixtures.sort_by(|a, b| a.request.cmp(&b.request));
    fixtures.dedup_by(|a, b| a.request == b.request);
    Ok(fixtures)
}

fn fixture_for(base: &Path, request: PathBuf) -> Result<Fixture, ReplayError> {
    let stem = request.with_extension("");
    let expect_path = PathBuf::from(format!("{}{EXPECT_SUFFIX}", stem.to_string_lossy()));
    if !expect_path.is_file() {
        return Err(ReplayError::NoExpectation(request));
    }
    let relative = request.strip_prefix(base).unwrap_or(&request);
    let mut name = relative.to_string_lossy().replace('\\', "/");
    let mut group = relative
        .parent()
        .map(|p| p.to_string_lossy().replace('\\', "/"))
        .unwrap_or_default();
    // Name fixtures after the folder given, so `fixtures/loop` reports `loop/...`.
    if let Some(root_name) = base.file_name().map(|n| n.to_string_lossy().to_string()) {
        if root_name != "fixtures" && !root_name.is_empty() {
            name = format!("{root_name}/{name}");
            group = if group.is_empty() {
                root_name
            } else {
                format!("{root_name}/{group}")
            };
        }
    }
    if group.is_empty() {
        group = "fixtures".into();
    }
    Ok(Fixture {
        request,
        expect_path,
        name,
        group,
    })
}

pub fn read_expectation(fixture: &Fixture) -> Result<Expectation, String> {
    let text = std::fs::read_to_string(&fixture.expect_path)
        .map_err(|e| format!("{}: {e}", fixture.expect_path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", fixture.expect_path.display()))
}

/// The endpoint a request goes to: the expectation's, else from the content (CONTRACTS.md).
pub fn endpoint(expectation: &Expectation, body: &[u8], is_xml: bool) -> String {
    if let Some(endpoint) = &expectation.endpoint {
        return endpoint.clone();
    }
    let tree = if is_xml {
        fhir_model::xml_to_json(&String::from_utf8_lossy(body)).unwrap_or(Value::Null)
    } else {
        serde_json::from_slice(body).unwrap_or(Value::Null)
    };
    match (tree["resourceType"].as_str(), tree["type"].as_str()) {
        (Some("Bundle"), Some("message")) => "/fhir/$process-message".into(),
        (Some("Bundle"), _) => "/fhir".into(),
        _ => "/fhir/ServiceRequest".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_json_or_xml_but_not_expectations_or_records() {
        assert!(is_request(Path::new("a/b.json")));
        assert!(is_request(Path::new("a/b.xml")));
        assert!(!is_request(Path::new("a/b.expect.json")));
        assert!(!is_request(Path::new("a/b.record.json")));
        assert!(!is_request(Path::new("directory/feed.oruk.json")));
        assert!(!is_request(Path::new("a/README.md")));
    }

    #[test]
    fn a_step_has_exactly_one_action() {
        let step: Step =
            serde_json::from_value(serde_json::json!({"fhir_get": "/fhir/Task"})).unwrap();
        assert!(matches!(step.action(), Ok(Action::FhirGet(_))));
        let step: Step = serde_json::from_value(serde_json::json!({"http": 200})).unwrap();
        assert!(step.action().is_err());
    }
}
