//! `sp-gateway replay` and `sp-gateway demo`: fixture bundles replayed through a live gateway,
//! with every step of the loop checked (status, OperationOutcome issues, routing, the signed
//! webhook, the golden referral record, VCS reports back and what the GP then reads).
//!
//! Without a target the gateway runs in this process on a temporary database and delivers to a
//! built-in receiver that verifies signatures, so a tester needs nothing else. The expectation
//! format is described in `fixtures/README.md`.

pub mod check;
pub mod demo;
pub mod fixture;
pub mod golden;
pub mod local;
pub mod report;
pub mod runner;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{Gateway, Parties};
use runner::{FixtureResult, Target};

/// Why a replay could not run at all (as opposed to fixtures failing).
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{0}: no such file or folder")]
    NotFound(PathBuf),
    #[error("{0}: no expectation file beside it (name.expect.json)")]
    NoExpectation(PathBuf),
    #[error("no fixtures found")]
    NoFixtures,
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Setup(String),
    #[error("cannot write the report: {0}")]
    Report(String),
}

impl ReplayError {
    pub fn io(path: &Path, source: std::io::Error) -> ReplayError {
        ReplayError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// What `sp-gateway replay` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub paths: Vec<PathBuf>,
    /// A running gateway; `None` starts one in this process.
    pub target: Option<String>,
    /// A GP bearer token used for every GP request.
    pub token: Option<String>,
    /// The gateway's configuration (default: the demo's): for its client and VCS tokens with a
    /// target, and to run the in-process gateway with otherwise (webhooks still go to the receiver).
    pub config: Option<PathBuf>,
    pub junit: Option<PathBuf>,
    pub json: Option<PathBuf>,
    pub update_golden: bool,
}

/// Every fixture's result, and how long the run took.
pub struct Outcome {
    pub results: Vec<FixtureResult>,
    pub elapsed: Duration,
}

impl Outcome {
    pub fn all_passed(&self) -> bool {
        self.results.iter().all(FixtureResult::passed)
    }
}

/// The tokens of a configuration, as the runner needs them.
fn target_for(
    base: String,
    parties: &Parties,
    options: &Options,
    inbox: Option<Arc<local::Inbox>>,
) -> Target {
    Target {
        base: base.trim_end_matches('/').to_string(),
        gp_tokens: parties.clients.iter().cloned().collect(),
        gp_token_override: options.token.clone(),
        vcs: parties
            .organisations
            .iter()
            .map(|o| (o.id.clone(), (o.token.clone(), o.name.clone())))
            .collect::<HashMap<_, _>>(),
        inbox,
        update_golden: options.update_golden,
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, ReplayError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ReplayError::Setup(format!("async runtime: {e}")))
}

fn http_client() -> Result<reqwest::Client, ReplayError> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| ReplayError::Setup(format!("HTTP client: {e}")))
}

/// Replays `fixtures` against `target`, reporting each as it finishes.
pub fn replay_fixtures(
    target: &Target,
    fixtures: &[fixture::Fixture],
    mut each: impl FnMut(&FixtureResult),
    mut before: impl FnMut(&fixture::Fixture),
) -> Result<Outcome, ReplayError> {
    let started = Instant::now();
    let http = http_client()?;
    let results = runtime()?.block_on(async {
        let mut results = Vec::new();
        for fixture in fixtures {
            before(fixture);
            let result = runner::run_fixture(target, &http, fixture).await;
            each(&result);
            results.push(result);
        }
        results
    });
    Ok(Outcome {
        results,
        elapsed: started.elapsed(),
    })
}

/// `sp-gateway replay`: runs, prints, writes the reports. `Ok(true)` when every fixture passed.
pub fn run(gateway: &'static dyn Gateway, options: &Options) -> Result<bool, ReplayError> {
    let fixtures = fixture::discover(&options.paths)?;
    if fixtures.is_empty() {
        return Err(ReplayError::NoFixtures);
    }
    // Keep the in-process gateway alive for the whole run.
    let (target, _local) = match &options.target {
        Some(url) => {
            let parties = gateway
                .parties(options.config.as_deref())
                .map_err(|e| ReplayError::Setup(format!("configuration: {e}")))?;
            (target_for(url.clone(), &parties, options, None), None)
        }
        None => {
            let local = local::LocalGateway::start(
                gateway,
                "127.0.0.1:0",
                options.config.as_deref(),
                fixture::directory_feeds(&options.paths),
                0,
            )?;
            let target = target_for(
                local.base.clone(),
                &local.parties,
                options,
                Some(local.inbox.clone()),
            );
            (target, Some(local))
        }
    };
    let console = report::Console::new(fixtures.len());
    let outcome = replay_fixtures(
        &target,
        &fixtures,
        |r| console.finished(r),
        |f| console.starting(&f.name),
    )?;
    console.done();
    println!(
        "replayed {} fixture(s) against {} in {:.1} s",
        fixtures.len(),
        target.base,
        outcome.elapsed.as_secs_f64()
    );
    println!("{}", report::summary(&outcome.results));
    if let Some(path) = &options.junit {
        report::write(path, &report::junit(&outcome.results, outcome.elapsed)?)?;
    }
    if let Some(path) = &options.json {
        let text = check::pretty(&report::json_report(&outcome.results, outcome.elapsed));
        report::write(path, &text)?;
    }
    Ok(outcome.all_passed())
}
