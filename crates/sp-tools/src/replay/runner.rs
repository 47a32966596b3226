//! Replays one fixture against a gateway, step by step: the request, the routing, the webhook,
//! the golden record, then any follow-up steps. A fixture stops at its first failed step, as
//! the later steps build on the earlier ones.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::check::{abbreviated, check_issues, check_paths, diff, substitute};
use super::fixture::{self, Action, Expectation, Fixture, Step};
use super::golden;
use super::local::Inbox;

const FHIR_JSON: &str = "application/fhir+json";
const FHIR_XML: &str = "application/fhir+xml";
/// How long a webhook may take to arrive at the built-in receiver.
const WEBHOOK_WAIT: Duration = Duration::from_secs(30);

/// Where and as whom fixtures are replayed.
pub struct Target {
    pub base: String,
    /// GP client id → bearer token.
    pub gp_tokens: HashMap<String, String>,
    /// `--token`: used for every GP request instead of the client's own token.
    pub gp_token_override: Option<String>,
    /// VCS organisation id → (bearer token, name).
    pub vcs: HashMap<String, (String, String)>,
    /// The built-in receiver, when the gateway runs in this process.
    pub inbox: Option<Arc<Inbox>>,
    pub update_golden: bool,
}

impl Target {
    fn gp_token(&self, client: &str) -> Result<&str, String> {
        if let Some(token) = &self.gp_token_override {
            return Ok(token);
        }
        self.gp_tokens
            .get(client)
            .map(String::as_str)
            .ok_or_else(|| {
                format!("no token for GP client {client:?} (give one with --token or --config)")
            })
    }

    fn vcs_token(&self, vcs: &str) -> Result<&str, String> {
        self.vcs
            .get(vcs)
            .map(|(token, _)| token.as_str())
            .ok_or_else(|| {
                format!("no token for VCS organisation {vcs:?} (give the gateway's --config)")
            })
    }

    fn vcs_name<'a>(&'a self, vcs: &'a str) -> &'a str {
        self.vcs
            .get(vcs)
            .map(|(_, name)| name.as_str())
            .unwrap_or(vcs)
    }
}

/// How one step went.
#[derive(Debug, Clone)]
pub struct StepResult {
    pub name: String,
    pub passed: bool,
    pub duration: Duration,
    /// What went wrong (a diff where there is something to compare), or a note.
    pub detail: Option<String>,
    /// What happened, in plain words (for `sp-gateway demo`).
    pub story: String,
}

/// How one fixture went.
#[derive(Debug, Clone)]
pub struct FixtureResult {
    pub fixture: Fixture,
    pub steps: Vec<StepResult>,
    pub duration: Duration,
}

impl FixtureResult {
    pub fn passed(&self) -> bool {
        !self.steps.is_empty() && self.steps.iter().all(|s| s.passed)
    }

    /// The first failed step, for one-line summaries.
    pub fn failure(&self) -> Option<&StepResult> {
        self.steps.iter().find(|s| !s.passed)
    }
}

/// A step's verdict before it is timed: `Ok(story)` or `Err(detail)`.
type Verdict = Result<String, String>;

/// Collects step results and stops at the first failure.
struct Steps {
    done: Vec<StepResult>,
}

impl Steps {
    /// Records a step; `false` when it failed and the fixture should stop.
    fn record(&mut self, name: String, started: Instant, verdict: Verdict) -> bool {
        let passed = verdict.is_ok();
        let (detail, story) = match verdict {
            Ok(story) => (None, story),
            Err(detail) => (Some(detail), format!("{name}: FAILED")),
        };
        self.done.push(StepResult {
            name,
            passed,
            duration: started.elapsed(),
            detail,
            story,
        });
        passed
    }
}

/// An HTTP answer: status, Location, and the body as JSON (Null when it is not JSON).
struct Answer {
    status: u16,
    location: Option<String>,
    body: Value,
    text: String,
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = response.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        location,
        body,
        text,
    }
}

async fn send(request: reqwest::RequestBuilder) -> Result<Answer, String> {
    match request.send().await {
        Ok(response) => Ok(answer(response).await),
        Err(e) => Err(format!("request failed: {e}")),
    }
}

/// Replays one fixture.
pub async fn run_fixture(
    target: &Target,
    http: &reqwest::Client,
    fixture: &Fixture,
) -> FixtureResult {
    let started = Instant::now();
    let mut steps = Steps { done: Vec::new() };
    let step_started = Instant::now();
    match fixture::read_expectation(fixture) {
        Ok(expectation) => run_expectation(target, http, fixture, &expectation, &mut steps).await,
        Err(e) => {
            steps.record("read expectation".into(), step_started, Err(e));
        }
    }
    FixtureResult {
        fixture: fixture.clone(),
        steps: steps.done,
        duration: started.elapsed(),
    }
}

async fn run_expectation(
    target: &Target,
    http: &reqwest::Client,
    fixture: &Fixture,
    expectation: &Expectation,
    steps: &mut Steps,
) {
    let started = Instant::now();
    let body = match std::fs::read(&fixture.request) {
        Ok(body) => body,
        Err(e) => {
            steps.record(
                "read request".into(),
                started,
                Err(format!("{}: {e}", fixture.request.display())),
            );
            return;
        }
    };
    let endpoint = fixture::endpoint(expectation, &body, fixture.is_xml());
    let name = format!("POST {endpoint} → {}", expectation.status);
    let sent = post_request(target, http, fixture, expectation, &endpoint, body).await;
    let referral = match sent {
        Ok((story, referral)) => {
            steps.record(name, started, Ok(story));
            referral
        }
        Err(detail) => {
            steps.record(name, started, Err(detail));
            return;
        }
    };
    let (Some(vcs), Some(referral)) = (expectation.vcs.as_deref(), referral) else {
        return;
    };
    follow_referral(target, http, fixture, expectation, vcs, &referral, steps).await;
}

/// Sends the fixture and checks status and issues; returns the story and the referral id made.
async fn post_request(
    target: &Target,
    http: &reqwest::Client,
    fixture: &Fixture,
    expectation: &Expectation,
    endpoint: &str,
    body: Vec<u8>,
) -> Result<(String, Option<String>), String> {
    let token = target.gp_token(expectation.client())?;
    let content_type = if fixture.is_xml() {
        FHIR_XML
    } else {
        FHIR_JSON
    };
    let got = send(
        http.post(format!("{}{endpoint}", target.base))
            .bearer_auth(token)
            .header("content-type", content_type)
            .header("accept", FHIR_JSON)
            .body(body),
    )
    .await?;
    if got.status != expectation.status {
        return Err(format!(
            "{}answer:\n{}",
            diff(
                &format!("status {}\n", expectation.status),
                &format!("status {}\n", got.status)
            ),
            abbreviated_text(&got)
        ));
    }
    check_issues(&expectation.issues, &got.body)?;
    if expectation.vcs.is_none() {
        let story = if got.status < 300 {
            format!("The gateway answered {} as expected", got.status)
        } else {
            let count = got.body["issue"].as_array().map(Vec::len).unwrap_or(0);
            format!(
                "The gateway refused the request with {} and {count} issue(s), as expected",
                got.status
            )
        };
        return Ok((story, None));
    }
    let referral = created_referral_id(got.status, got.location.as_deref(), &got.body)
        .ok_or_else(|| format!("no referral id in the answer:\n{}", abbreviated_text(&got)))?;
    Ok((
        format!(
            "Referral accepted by the gateway ({}): ServiceRequest/{referral}",
            got.status
        ),
        Some(referral),
    ))
}

fn abbreviated_text(got: &Answer) -> String {
    if got.body.is_null() {
        got.text.chars().take(2000).collect::<String>() + "\n"
    } else {
        abbreviated(&got.body)
    }
}

/// The id of the referral a successful answer created: from `Location` for a single create,
/// from the ServiceRequest entry's `response.location` for a transaction or message.
fn created_referral_id(status: u16, location: Option<&str>, body: &Value) -> Option<String> {
    let from_location = location.and_then(|l| l.split('/').nth(3).map(str::to_string));
    if status == 201 {
        return from_location;
    }
    let from_bundle = body["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|e| {
            e["response"]["location"]
                .as_str()
                .filter(|l| l.starts_with("ServiceRequest/"))
                .and_then(|l| l.split('/').nth(1))
                .map(str::to_string)
        });
    from_bundle.or(from_location)
}

/// Routing, webhook, golden record and follow-up steps of an accepted referral.
async fn follow_referral(
    target: &Target,
    http: &reqwest::Client,
    fixture: &Fixture,
    expectation: &Expectation,
    vcs: &str,
    referral: &str,
    steps: &mut Steps,
) {
    let started = Instant::now();
    let routed = check_routing(target, http, vcs, referral).await;
    let mut record = match routed {
        Ok((story, record)) => {
            steps.record(format!("routed to {vcs}"), started, Ok(story));
            record
        }
        Err(detail) => {
            steps.record(format!("routed to {vcs}"), started, Err(detail));
            return;
        }
    };
    if let Some(inbox) = &target.inbox {
        let started = Instant::now();
        match check_webhook(target, inbox, vcs, referral).await {
            Ok((story, data)) => {
                // What the organisation received is the record that counts.
                record = data;
                steps.record(format!("webhook to {vcs} verified"), started, Ok(story));
            }
            Err(detail) => {
                steps.record(format!("webhook to {vcs} verified"), started, Err(detail));
                return;
            }
        }
    }
    let golden_path = fixture.record_path(expectation);
    if expectation.record.is_some() || golden_path.is_file() || target.update_golden {
        let started = Instant::now();
        let normalised = golden::normalise(&record, referral);
        let verdict = golden::compare_or_update(&golden_path, &normalised, target.update_golden)
            .map(|note| {
                format!(
                    "The referral record {} received {note}",
                    target.vcs_name(vcs)
                )
            });
        if !steps.record("golden record".into(), started, verdict) {
            return;
        }
    }
    for (n, step) in expectation.steps.iter().enumerate() {
        let started = Instant::now();
        let (name, verdict) = run_step(target, http, expectation, vcs, referral, step).await;
        if !steps.record(format!("step {}: {name}", n + 1), started, verdict) {
            return;
        }
    }
}

/// The routed organisation finds the referral through the VCS API; returns its record.
async fn check_routing(
    target: &Target,
    http: &reqwest::Client,
    vcs: &str,
    referral: &str,
) -> Result<(String, Value), String> {
    let token = target.vcs_token(vcs)?;
    let got = send(
        http.get(format!("{}/vcs/v1/referrals/{referral}", target.base))
            .bearer_auth(token),
    )
    .await?;
    if got.status != 200 {
        return Err(format!(
            "{vcs} cannot read referral {referral} through the VCS API: it was routed elsewhere or not stored\n{}answer:\n{}",
            diff("status 200\n", &format!("status {}\n", got.status)),
            abbreviated_text(&got)
        ));
    }
    Ok((
        format!(
            "{} finds the referral through the VCS API (status {})",
            target.vcs_name(vcs),
            got.body["status"]
        ),
        got.body["record"].clone(),
    ))
}

/// The built-in receiver got `referral.created` at the organisation's URL, signed with its secret.
async fn check_webhook(
    target: &Target,
    inbox: &Inbox,
    vcs: &str,
    referral: &str,
) -> Result<(String, Value), String> {
    let delivery = inbox
        .wait_for(referral, "referral.created", WEBHOOK_WAIT)
        .await
        .ok_or_else(|| {
            format!(
                "no referral.created webhook for {referral} within {}s",
                WEBHOOK_WAIT.as_secs()
            )
        })?;
    if delivery.vcs_id != vcs {
        return Err(diff(
            &format!("delivered to {vcs}\n"),
            &format!("delivered to {}\n", delivery.vcs_id),
        ));
    }
    delivery
        .verified
        .map_err(|e| format!("the webhook's signature did not verify with {vcs}'s secret: {e}"))?;
    Ok((
        format!(
            "Webhook referral.created delivered to {} and its Standard Webhooks signature verified",
            target.vcs_name(vcs)
        ),
        delivery.event["data"].clone(),
    ))
}

/// One follow-up step: its name and verdict.
async fn run_step(
    target: &Target,
    http: &reqwest::Client,
    expectation: &Expectation,
    vcs: &str,
    referral: &str,
    step: &Step,
) -> (String, Verdict) {
    let action = match step.action() {
        Ok(action) => action,
        Err(e) => return ("invalid step".into(), Err(e)),
    };
    let name = step_name(&action, referral);
    let verdict = run_action(target, http, expectation, vcs, referral, step, &action).await;
    (name, verdict)
}

fn step_name(action: &Action, referral: &str) -> String {
    match action {
        Action::VcsStatus(body) => format!(
            "VCS reports status {}",
            body["status"].as_str().unwrap_or("?")
        ),
        Action::VcsOutcome(body) => format!(
            "VCS reports {} {}",
            body["instrument"].as_str().unwrap_or("?"),
            body["timepoint"].as_str().unwrap_or("?")
        ),
        Action::FhirGet(path) => format!("GP GET {}", path.replace("{referral}", referral)),
        Action::VcsGet(path) => format!("VCS GET {}", path.replace("{referral}", referral)),
        Action::VcsOnward(body) => format!(
            "link worker refers onward to {}",
            body["service_id"].as_str().unwrap_or("?")
        ),
    }
}

async fn run_action(
    target: &Target,
    http: &reqwest::Client,
    expectation: &Expectation,
    vcs: &str,
    referral: &str,
    step: &Step,
    action: &Action,
) -> Verdict {
    let request = match action {
        Action::VcsStatus(body) | Action::VcsOutcome(body) | Action::VcsOnward(body) => {
            let kind = match action {
                Action::VcsStatus(_) => "status",
                Action::VcsOnward(_) => "onward",
                _ => "outcomes",
            };
            http.post(format!(
                "{}/vcs/v1/referrals/{referral}/{kind}",
                target.base
            ))
            .bearer_auth(target.vcs_token(vcs)?)
            .json(&substitute(body, referral))
        }
        Action::FhirGet(path) => http
            .get(format!(
                "{}{}",
                target.base,
                path.replace("{referral}", referral)
            ))
            .bearer_auth(target.gp_token(expectation.client())?)
            .header("accept", FHIR_JSON),
        Action::VcsGet(path) => http
            .get(format!(
                "{}{}",
                target.base,
                path.replace("{referral}", referral)
            ))
            .bearer_auth(target.vcs_token(vcs)?),
    };
    let got = send(request).await?;
    let wanted = step.expected_http(action);
    if got.status != wanted {
        return Err(format!(
            "{}answer:\n{}",
            diff(
                &format!("status {wanted}\n"),
                &format!("status {}\n", got.status)
            ),
            abbreviated_text(&got)
        ));
    }
    let expect = step
        .expect
        .iter()
        .map(|(k, v)| (k.clone(), substitute(v, referral)))
        .collect();
    check_paths(&expect, &got.body)?;
    Ok(story(target, vcs, referral, action, &got, step))
}

/// What a step did, in plain words.
fn story(
    target: &Target,
    vcs: &str,
    referral: &str,
    action: &Action,
    got: &Answer,
    step: &Step,
) -> String {
    let who = target.vcs_name(vcs);
    let checked: Vec<String> = step
        .expect
        .iter()
        .map(|(k, v)| format!("{k} = {}", substitute(v, referral)))
        .collect();
    let checked = if checked.is_empty() {
        String::new()
    } else {
        format!(" ({})", checked.join(", "))
    };
    let refused = if got.status >= 400 {
        format!("; the gateway refused it with {}, as expected", got.status)
    } else {
        String::new()
    };
    match action {
        Action::VcsStatus(sent) => {
            let reason = sent["reason"]
                .as_str()
                .map(|r| format!(" (\"{r}\")"))
                .unwrap_or_default();
            format!(
                "{who} reported the referral {}{reason}{refused}",
                sent["status"].as_str().unwrap_or("?")
            )
        }
        Action::VcsOutcome(sent) => {
            let made = got.body["observation_ids"]
                .as_array()
                .map(Vec::len)
                .unwrap_or(0);
            format!(
                "{who} sent the person's {} answers ({}); the gateway made {made} Observation(s) for the GP{refused}",
                sent["instrument"].as_str().unwrap_or("?").to_uppercase(),
                sent["timepoint"].as_str().unwrap_or("?")
            )
        }
        Action::FhirGet(path) => format!(
            "The GP read {}{checked}{refused}",
            path.replace("{referral}", referral)
        ),
        Action::VcsGet(path) => format!(
            "{who} read {}{checked}{refused}",
            path.replace("{referral}", referral)
        ),
        Action::VcsOnward(sent) => format!(
            "{who} referred the person onward to service {}; the gateway made referral {} for {}{refused}",
            sent["service_id"].as_str().unwrap_or("?"),
            got.body["referral_id"].as_str().unwrap_or("?"),
            got.body["vcs_id"].as_str().unwrap_or("?")
        ),
    }
}
