//! `sp-gateway replay` over every fixture, in-process and against a separately started gateway;
//! a wrong expectation fails with a readable diff and exit 1; the JUnit XML and JSON reports
//! agree with the summary line.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use serde_json::Value;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");

fn replay(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sp-gateway"))
        .arg("replay")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RUST_LOG", "warn")
        .output()
        .expect("run sp-gateway replay")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `N passed, M failed` from the summary line.
fn summary(output: &Output) -> (usize, usize) {
    let text = stdout(output);
    let line = text
        .lines()
        .find(|l| l.ends_with(" failed") && l.contains(" passed, "))
        .unwrap_or_else(|| panic!("no summary line in:\n{text}"));
    let numbers: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(
        line,
        format!("{} passed, {} failed", numbers[0], numbers[1])
    );
    (numbers[0], numbers[1])
}

fn expectation_count(dir: &Path) -> usize {
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            count += expectation_count(&path);
        } else if path.to_string_lossy().ends_with(".expect.json") {
            count += 1;
        }
    }
    count
}

/// Test counts from a JUnit report: (tests, failures) on the root, and the testcase elements.
fn junit_counts(path: &Path) -> (usize, usize, usize) {
    let text = std::fs::read_to_string(path).expect("JUnit file");
    let doc = roxmltree::Document::parse(&text).expect("JUnit XML parses");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    let attr = |name: &str| root.attribute(name).unwrap().parse::<usize>().unwrap();
    let cases = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .count();
    (attr("tests"), attr("failures"), cases)
}

#[test]
fn every_fixture_passes_in_process_with_matching_reports() {
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("replay.xml");
    let json = dir.path().join("replay.json");
    let output = replay(&[
        "fixtures",
        "--junit",
        junit.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    let fixtures = expectation_count(Path::new(FIXTURES));
    assert!(fixtures >= 40, "only {fixtures} fixtures");
    assert_eq!(summary(&output), (fixtures, 0), "{text}");
    assert_eq!(junit_counts(&junit), (fixtures, 0, fixtures));

    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["passed"], fixtures);
    assert_eq!(report["failed"], 0);
    let entries = report["fixtures"].as_array().unwrap();
    // Every accepted referral was routed, delivered and verified; the loop scenarios also
    // matched their golden records and ran their follow-up steps.
    for entry in entries {
        let steps: Vec<&str> = entry["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert!(
            entry["steps"][0]["duration_ms"].is_u64(),
            "per-step timings: {entry}"
        );
        if steps.iter().any(|s| s.starts_with("routed to ")) {
            assert!(
                steps.iter().any(|s| s.starts_with("webhook to ")),
                "{entry}"
            );
        }
        if entry["name"].as_str().unwrap().starts_with("loop/") {
            assert!(steps.contains(&"golden record"), "{entry}");
            assert!(steps.iter().any(|s| s.starts_with("step ")), "{entry}");
        }
    }
    let loops = entries
        .iter()
        .filter(|e| e["name"].as_str().unwrap().starts_with("loop/"))
        .count();
    assert!(loops >= 3, "{loops} loop scenarios");
}

#[test]
fn every_fixture_passes_against_a_separately_started_gateway() {
    let gateway = Gateway::start();
    // The onward fixtures refer to services of the directory: imported there, as an operator would.
    gateway.import_directory(&[&format!("{FIXTURES}/directory")]);
    let output = replay(&["fixtures", "--target", &gateway.base]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    let fixtures = expectation_count(Path::new(FIXTURES));
    assert_eq!(summary(&output), (fixtures, 0), "{text}");
    // Without the built-in receiver, routing is checked through the VCS API alone.
    assert!(text.contains("routed to carers-count"), "{text}");
    assert!(!text.contains("webhook to "), "{text}");
}

fn copy_fixture(from: &str, to: &Path) -> PathBuf {
    let source = Path::new(FIXTURES).join(from);
    let target = to.join(source.file_name().unwrap());
    std::fs::copy(&source, &target).unwrap();
    target
}

fn write(path: PathBuf, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[test]
fn a_wrong_expectation_fails_with_a_readable_diff() {
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("cases");
    std::fs::create_dir(&cases).unwrap();
    // Right: a valid referral, as its expectation says.
    copy_fixture("referrals/valid/debt-advice-cyngor.json", &cases);
    copy_fixture("referrals/valid/debt-advice-cyngor.expect.json", &cases);
    // Wrong: a referral with a missing status expected to be accepted.
    copy_fixture("referrals/invalid/missing-status.json", &cases);
    write(
        cases.join("missing-status.expect.json"),
        r#"{"status": 201, "vcs": "cyngor-ar-bopeth"}"#,
    );
    // Wrong: a golden record with another name than the referral's.
    copy_fixture("loop/xml-cyngor-completed.xml", &cases);
    copy_fixture("loop/xml-cyngor-completed.expect.json", &cases);
    let golden =
        std::fs::read_to_string(Path::new(FIXTURES).join("loop/xml-cyngor-completed.record.json"))
            .unwrap();
    let given_name = serde_json::from_str::<Value>(&golden).unwrap()["patient"]["given_name"]
        .as_str()
        .unwrap()
        .to_string();
    write(
        cases.join("xml-cyngor-completed.record.json"),
        &golden.replace(&given_name, "Gwenllian"),
    );

    let junit = dir.path().join("replay.xml");
    let output = replay(&[cases.to_str().unwrap(), "--junit", junit.to_str().unwrap()]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert_eq!(summary(&output), (1, 2), "{text}");
    assert!(text.contains("FAIL  cases/missing-status.json"), "{text}");
    assert!(
        text.contains("-status 201") && text.contains("+status 422"),
        "{text}"
    );
    assert!(text.contains("FAIL golden record"), "{text}");
    assert!(
        text.contains("-    \"given_name\": \"Gwenllian\"")
            && text.contains(&format!("+    \"given_name\": \"{given_name}\"")),
        "{text}"
    );
    assert_eq!(junit_counts(&junit), (3, 2, 3));
}

#[test]
fn update_golden_writes_the_normalised_record() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture("loop/cyngor-declined-with-reason.json", dir.path());
    copy_fixture("loop/cyngor-declined-with-reason.expect.json", dir.path());
    let path = dir.path().join("cyngor-declined-with-reason.record.json");
    let dir_arg = dir.path().to_str().unwrap();

    let missing = replay(&[dir_arg]);
    assert_eq!(missing.status.code(), Some(1), "{}", stdout(&missing));
    assert!(stdout(&missing).contains("--update-golden"));

    let updated = replay(&[dir_arg, "--update-golden"]);
    assert_eq!(updated.status.code(), Some(0), "{}", stdout(&updated));
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(written["referral_id"], "<referral_id>");
    assert_eq!(written["created_at"], "<timestamp>");
    assert_eq!(written["recipient"]["vcs_id"], "cyngor-ar-bopeth");

    let again = replay(&[dir_arg]);
    assert_eq!(again.status.code(), Some(0), "{}", stdout(&again));
}

#[test]
fn a_request_without_expectation_cannot_run() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture("referrals/valid/debt-advice-cyngor.json", dir.path());
    let output = replay(&[dir.path().to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no expectation file"));
}
