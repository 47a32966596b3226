//! What a replay tells people and machines: lines per fixture and step on the console (with a
//! progress bar on a terminal), the `N passed, M failed` summary, JUnit XML and JSON.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use serde_json::{json, Value};

use super::runner::FixtureResult;
use super::ReplayError;

/// Console output while fixtures run: a progress bar on a terminal, plain lines otherwise.
pub struct Console {
    bar: Option<ProgressBar>,
}

impl Console {
    pub fn new(total: usize) -> Console {
        // Only when a person watches: a redirected stdout gets the plain lines instead.
        let watched = std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
        let bar = watched.then(|| {
            let bar = ProgressBar::new(total as u64);
            if let Ok(style) =
                ProgressStyle::with_template("{bar:40} {pos}/{len} {elapsed} {wide_msg}")
            {
                bar.set_style(style);
            }
            bar
        });
        Console { bar }
    }

    pub fn starting(&self, name: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(name.to_string());
        }
    }

    /// Prints a fixture's verdict and its steps with timings; a failed step with its diff.
    pub fn finished(&self, result: &FixtureResult) {
        let text = fixture_text(result);
        match &self.bar {
            Some(bar) => {
                bar.println(text.trim_end());
                bar.inc(1);
            }
            None => {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(text.as_bytes());
                let _ = out.flush();
            }
        }
    }

    pub fn done(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn millis(duration: Duration) -> u128 {
    duration.as_millis()
}

fn indent(text: &str, by: &str) -> String {
    text.lines().map(|l| format!("{by}{l}\n")).collect()
}

/// The console text of one fixture.
pub fn fixture_text(result: &FixtureResult) -> String {
    let verdict = if result.passed() { "PASS" } else { "FAIL" };
    let mut text = format!(
        "{verdict}  {}  ({} ms)\n",
        result.fixture.name,
        millis(result.duration)
    );
    for step in &result.steps {
        let mark = if step.passed { "ok  " } else { "FAIL" };
        text.push_str(&format!(
            "      {mark} {}  ({} ms)\n",
            step.name,
            millis(step.duration)
        ));
        if let Some(detail) = step.detail.as_deref().filter(|_| !step.passed) {
            text.push_str(&indent(detail, "           "));
        }
    }
    text
}

/// `N passed, M failed`.
pub fn summary(results: &[FixtureResult]) -> String {
    let passed = results.iter().filter(|r| r.passed()).count();
    format!("{passed} passed, {} failed", results.len() - passed)
}

/// JUnit XML: a suite per fixture folder, a test case per fixture; the steps and their timings
/// go to `system-out`, the first failed step becomes the failure message with its diff.
pub fn junit(results: &[FixtureResult], total: Duration) -> Result<String, ReplayError> {
    let mut report = Report::new("sp-gateway replay");
    report.set_time(total);
    let mut suites: Vec<TestSuite> = Vec::new();
    for result in results {
        let group = result.fixture.group.as_str();
        let position = match suites.iter().position(|s| s.name.as_str() == group) {
            Some(at) => at,
            None => {
                suites.push(TestSuite::new(group));
                suites.len() - 1
            }
        };
        let suite = &mut suites[position];
        let status = match result.failure() {
            None => TestCaseStatus::success(),
            Some(step) => {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                status.set_message(format!("{} failed", step.name));
                status.set_description(step.detail.clone().unwrap_or_default());
                status
            }
        };
        let mut case = TestCase::new(result.fixture.name.as_str(), status);
        case.set_classname(group);
        case.set_time(result.duration);
        case.set_assertions(result.steps.len());
        let steps: String = result
            .steps
            .iter()
            .map(|s| {
                format!(
                    "{} {} ({} ms)\n",
                    if s.passed { "ok" } else { "FAIL" },
                    s.name,
                    millis(s.duration)
                )
            })
            .collect();
        case.set_system_out(steps);
        suite.add_test_case(case);
        suite.set_time(suite.time.unwrap_or_default() + result.duration);
    }
    report.add_test_suites(suites);
    report
        .to_string()
        .map_err(|e| ReplayError::Report(format!("JUnit XML: {e}")))
}

/// The JSON report: counts, and every fixture with every step, its timing and any detail.
pub fn json_report(results: &[FixtureResult], total: Duration) -> Value {
    let passed = results.iter().filter(|r| r.passed()).count();
    let fixtures: Vec<Value> = results
        .iter()
        .map(|r| {
            json!({
                "name": r.fixture.name,
                "request": r.fixture.request.display().to_string(),
                "passed": r.passed(),
                "duration_ms": millis(r.duration),
                "steps": r.steps.iter().map(|s| json!({
                    "name": s.name,
                    "passed": s.passed,
                    "duration_ms": millis(s.duration),
                    "detail": s.detail,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "passed": passed,
        "failed": results.len() - passed,
        "duration_ms": millis(total),
        "fixtures": fixtures,
    })
}

pub fn write(path: &Path, text: &str) -> Result<(), ReplayError> {
    std::fs::write(path, text).map_err(|e| ReplayError::io(path, e))
}
