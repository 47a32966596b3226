//! Test harness: starts the real `sp-gateway` binary on an ephemeral port with its own database,
//! and talks HTTP to it. Nothing here mocks the gateway's own code.
#![allow(dead_code)]

pub mod postgres;
pub mod receiver;
pub mod smtp;
pub mod web;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, RequestBuilder, Response};
use serde_json::Value;

pub const DEMO_CONFIG: &str = include_str!("../../src/demo.toml");
pub const GP_TOKEN: &str = "demo-gp-token";
pub const OTHER_GP_TOKEN: &str = "demo-gp-token-2";
pub const FHIR_JSON: &str = "application/fhir+json";
pub const FHIR_XML: &str = "application/fhir+xml";

/// A running gateway process with its own temporary directory (database, config).
pub struct Gateway {
    child: Child,
    pub base: String,
    pub dir: tempfile::TempDir,
    config_path: PathBuf,
    env: Vec<(String, String)>,
    /// Where the gateway's log lines go when captured (otherwise they reach the test's stderr).
    log_path: Option<PathBuf>,
    pub http: Client,
}

/// The demo configuration with a free port and a database inside `dir`.
pub fn demo_config_in(dir: &Path) -> String {
    let db = dir.join("gateway.db");
    DEMO_CONFIG
        .replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:0\"")
        .replace(
            "url = \"sqlite://data/gateway.db\"",
            &format!("url = \"sqlite://{}\"", db.display()),
        )
}

impl Gateway {
    /// The demo configuration on a fresh database.
    pub fn start() -> Gateway {
        Self::start_with(|config| config, &[])
    }

    /// The demo configuration, edited by `edit`, with extra environment variables.
    pub fn start_with(edit: impl FnOnce(String) -> String, env: &[(&str, &str)]) -> Gateway {
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = dir.path().join("gateway.toml");
        std::fs::write(&config_path, edit(demo_config_in(dir.path()))).expect("write config");
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self::launch(dir, config_path, env, None)
    }

    /// The demo configuration edited by `edit`, logging at `level` into a file `logs()` reads.
    pub fn start_capturing_logs(edit: impl FnOnce(String) -> String, level: &str) -> Gateway {
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = dir.path().join("gateway.toml");
        std::fs::write(&config_path, edit(demo_config_in(dir.path()))).expect("write config");
        let log_path = dir.path().join("gateway.log");
        let env = vec![("RUST_LOG".to_string(), level.to_string())];
        Self::launch(dir, config_path, env, Some(log_path))
    }

    /// Everything the gateway logged so far (when started with `start_capturing_logs`).
    pub fn logs(&self) -> String {
        self.log_path
            .as_ref()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .unwrap_or_default()
    }

    fn launch(
        dir: tempfile::TempDir,
        config_path: PathBuf,
        env: Vec<(String, String)>,
        log_path: Option<PathBuf>,
    ) -> Gateway {
        let stderr = match &log_path {
            Some(path) => Stdio::from(std::fs::File::create(path).expect("log file")),
            None => Stdio::inherit(),
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_sp-gateway"))
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start sp-gateway");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read address line");
        let base = line
            .trim()
            .strip_prefix("sp-gateway listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_string();
        let gateway = Gateway {
            child,
            base,
            dir,
            config_path,
            env,
            log_path,
            http: Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
        };
        gateway.wait_ready();
        gateway
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(response) = self.http.get(self.url("/fhir/metadata")).send() {
                if response.status().is_success() {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("gateway at {} did not become ready", self.base);
    }

    /// Kills the process (SIGKILL: nothing is flushed on the way out) and starts it again on the
    /// same database and configuration.
    pub fn restart(mut self) -> Gateway {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
        let dir = tempfile::TempDir::new_in(std::env::temp_dir()).expect("dir");
        // Keep the original directory alive: swap it out so Drop does not remove it.
        let original = std::mem::replace(&mut self.dir, dir);
        let config_path = self.config_path.clone();
        let env = std::mem::take(&mut self.env);
        let log_path = self.log_path.take();
        Self::launch(original, config_path, env, log_path)
    }

    /// Kills the process with SIGKILL (nothing is flushed on the way out) and waits for it.
    pub fn kill(&mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Imports Open Referral UK files into this gateway's database with `sp-gateway directory
    /// import --skip-invalid` (its own configuration), then has it rebuild its directory index.
    /// Returns the command's output.
    #[allow(dead_code)]
    pub fn import_directory(&self, paths: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_sp-gateway"))
            .args(["directory", "import", "--skip-invalid", "--config"])
            .arg(&self.config_path)
            .args(paths)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .expect("directory import runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            text.contains("imported "),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let refreshed = self
            .http
            .post(self.url("/admin/v1/directory/refresh"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .expect("refresh");
        assert_eq!(refreshed.status().as_u16(), 200);
        text
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("gateway.db")
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.http.get(self.url(path)).bearer_auth(GP_TOKEN)
    }

    pub fn post_json(&self, path: &str, body: &Value) -> RequestBuilder {
        self.http
            .post(self.url(path))
            .bearer_auth(GP_TOKEN)
            .header("content-type", FHIR_JSON)
            .body(body.to_string())
    }

    pub fn post_bytes(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<Vec<u8>>,
    ) -> RequestBuilder {
        self.http
            .post(self.url(path))
            .bearer_auth(GP_TOKEN)
            .header("content-type", content_type)
            .body(body.into())
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub const ADMIN_TOKEN: &str = "demo-admin-token";

/// The demo secret of an organisation (`carers-count`, …), read from the demo configuration.
pub fn demo_secret(vcs_id: &str) -> String {
    let start = DEMO_CONFIG
        .find(&format!("id = \"{vcs_id}\""))
        .expect("vcs in demo config");
    let rest = &DEMO_CONFIG[start..];
    let secret_at = rest.find("whsec_").expect("secret");
    rest[secret_at..]
        .split('"')
        .next()
        .expect("secret")
        .to_string()
}

/// Edits the demo configuration so every organisation's webhooks go to `receiver_base` and
/// retries follow `schedule` (e.g. `["1s", "1s"]`).
pub fn deliver_to(config: String, receiver_base: &str, schedule: &[&str]) -> String {
    let schedule = schedule
        .iter()
        .map(|d| format!("\"{d}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let mut edited = config.replace("http://127.0.0.1:9000", receiver_base);
    let start = edited.find("retry_schedule = [").expect("retry_schedule");
    let end = start + edited[start..].find(']').expect("]") + 1;
    edited.replace_range(start..end, &format!("retry_schedule = [{schedule}]"));
    edited
}

impl Gateway {
    pub fn admin_get(&self, path: &str) -> (u16, Value) {
        send(self.http.get(self.url(path)).bearer_auth(ADMIN_TOKEN))
    }

    pub fn admin_post(&self, path: &str) -> (u16, Value) {
        send(self.http.post(self.url(path)).bearer_auth(ADMIN_TOKEN))
    }

    /// Sends a valid referral and returns its id.
    pub fn refer(&self, gp_reference: &str) -> String {
        let (status, body) =
            send(self.post_json("/fhir/ServiceRequest", &contained_referral(gp_reference)));
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().expect("id").to_string()
    }
}

/// A VCS organisation's JSON `POST` with its token.
pub fn vcs_post(gateway: &Gateway, token: &str, path: &str, body: &Value) -> (u16, Value) {
    send(
        gateway
            .http
            .post(gateway.url(path))
            .bearer_auth(token)
            .json(body),
    )
}

/// Sends a request and returns status and JSON body (Null when empty).
pub fn send(request: RequestBuilder) -> (u16, Value) {
    let response: Response = request.send().expect("request");
    let status = response.status().as_u16();
    let text = response.text().expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    };
    (status, body)
}

/// The expressions of an OperationOutcome's issues with the given code.
pub fn issue_expressions(outcome: &Value) -> Vec<(String, String, String)> {
    outcome["issue"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|issue| {
            (
                issue["severity"].as_str().unwrap_or("").to_string(),
                issue["code"].as_str().unwrap_or("").to_string(),
                issue["expression"][0].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Asserts a response is an OperationOutcome whose every issue has severity, code and diagnostics.
pub fn assert_outcome(body: &Value) {
    assert_eq!(body["resourceType"], "OperationOutcome", "{body}");
    let issues = body["issue"].as_array().expect("issues");
    assert!(!issues.is_empty());
    for issue in issues {
        assert!(issue["severity"].is_string(), "{issue}");
        assert!(issue["code"].is_string(), "{issue}");
        assert!(
            issue["diagnostics"].as_str().is_some_and(|d| !d.is_empty()),
            "{issue}"
        );
    }
}

/// A complete, valid single ServiceRequest with everything contained, routed to Carers Count.
pub fn contained_referral(gp_reference: &str) -> Value {
    serde_json::json!({
      "resourceType": "ServiceRequest",
      "contained": [
        {"resourceType": "Patient", "id": "pat",
         "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9000000009"}],
         "name": [{"use": "official", "family": "Llywelyn", "given": ["Siân"]}],
         "telecom": [{"system": "phone", "value": "07700 900123", "use": "mobile"}],
         "birthDate": "1948-03-02",
         "address": [{"use": "home", "line": ["1 Heol y Frenhines"], "city": "Caerdydd", "postalCode": "CF10 1AA"}]},
        {"resourceType": "Organization", "id": "practice",
         "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "W97001"}],
         "name": "Meddygfa'r Bont"},
        {"resourceType": "Practitioner", "id": "gp", "name": [{"family": "Evans", "given": ["Rhian"], "prefix": ["Dr"]}]},
        {"resourceType": "PractitionerRole", "id": "role", "practitioner": {"reference": "#gp"},
         "organization": {"reference": "#practice"}, "telecom": [{"system": "phone", "value": "029 2018 0456"}]},
        {"resourceType": "Consent", "id": "consent", "status": "active",
         "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
         "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
         "patient": {"reference": "#pat"}, "dateTime": "2026-05-01T09:00:00+01:00",
         "policyRule": {"text": "Agreed to share contact details with the community organisation"}}
      ],
      "identifier": [{"system": "https://fhir.emis-demo.example/Id/referral", "value": gp_reference}],
      "status": "active",
      "intent": "order",
      "code": {"coding": [{"system": "http://snomed.info/sct", "code": "871731000000106",
                           "display": "Referral to social prescribing service"}]},
      "subject": {"reference": "#pat"},
      "authoredOn": "2026-05-01T09:30:00+01:00",
      "requester": {"reference": "#role"},
      "performer": [{"type": "Organization",
                     "identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "X1A2B"},
                     "display": "Carers Count"}],
      "reasonCode": [{"text": "Caring for her husband; isolated"}],
      "supportingInfo": [{"reference": "#consent"}],
      "note": [{"text": "Prefers afternoon calls"}]
    })
}

/// The same referral as a transaction Bundle with `urn:uuid:` references between entries.
pub fn transaction_referral(gp_reference: &str) -> Value {
    let mut sr = contained_referral(gp_reference);
    let contained = sr["contained"].as_array().cloned().unwrap_or_default();
    sr.as_object_mut().expect("object").remove("contained");
    let urn = |id: &str| {
        let n = ["pat", "practice", "gp", "role", "consent"]
            .iter()
            .position(|known| *known == id)
            .unwrap_or(9);
        format!("urn:uuid:00000000-0000-4000-8000-00000000000{n}")
    };
    let rewrite = |mut v: Value| -> Value {
        let mut text = v.to_string();
        for id in ["pat", "practice", "gp", "role", "consent"] {
            text = text.replace(&format!("\"#{id}\""), &format!("\"{}\"", urn(id)));
        }
        v = serde_json::from_str(&text).expect("json");
        v
    };
    let mut entries: Vec<Value> = contained
        .into_iter()
        .map(|mut resource| {
            let id = resource["id"].as_str().unwrap_or("").to_string();
            let kind = resource["resourceType"].as_str().unwrap_or("").to_string();
            resource.as_object_mut().expect("object").remove("id");
            serde_json::json!({"fullUrl": urn(&id), "resource": rewrite(resource),
                               "request": {"method": "POST", "url": kind}})
        })
        .collect();
    entries.push(serde_json::json!({
        "fullUrl": "urn:uuid:11111111-1111-4111-8111-111111111111",
        "resource": rewrite(sr),
        "request": {"method": "POST", "url": "ServiceRequest"}
    }));
    serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}
