//! `sp-gateway validate`: exit codes, `--config` (the server's create rules offline) and a
//! reader that goes away early.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_sp-gateway");

fn fixture(rel: &str) -> String {
    format!("{}/fixtures/{rel}", env!("CARGO_MANIFEST_DIR"))
}

fn validate(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .arg("validate")
        .args(args)
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn exit_codes_say_valid_invalid_and_not_fhir() {
    let valid = fixture("referrals/valid/loneliness-knit-natter.json");
    let invalid = fixture("referrals/invalid/missing-intent.json");
    assert_eq!(validate(&[&valid]).0, 0);
    let (code, out, _) = validate(&[&valid, &invalid]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("INVALID"), "{out}");

    let dir = tempfile::tempdir().expect("tempdir");
    let garbage = dir.path().join("notes.json");
    std::fs::write(&garbage, "this is not JSON").expect("write");
    let array = dir.path().join("array.json");
    std::fs::write(&array, "[1, 2, 3]").expect("write");
    for not_fhir in [&garbage, &array] {
        let (code, _, err) = validate(&[&valid, not_fhir.to_str().expect("path")]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("not FHIR"), "{err}");
    }
    // A coded need outside the value set is a warning, not an invalid file.
    let (code, out, _) = validate(&[&fixture("needs/code-outside-value-set.json")]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("warning"), "{out}");
}

#[test]
fn config_adds_the_server_rules_a_post_would_apply() {
    let message = fixture("bundles/message-unknown-performer.json");
    let (code, out, _) = validate(&[&message]);
    assert_eq!(code, 0, "the profiles alone accept it: {out}");
    let config = format!("{}/src/demo.toml", env!("CARGO_MANIFEST_DIR"));
    let (code, out, err) = validate(&["--config", &config, &message]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("[business-rule] Bundle.entry[1].resource.performer[0]"),
        "{out}"
    );
}

#[test]
fn a_reader_that_goes_away_ends_it_quietly() {
    let file = fixture("referrals/invalid/missing-intent.json");
    let files: Vec<&str> = std::iter::repeat_n(file.as_str(), 3000).collect();
    let mut child = Command::new(BIN)
        .arg("validate")
        .args(&files)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    let stdout = child.stdout.take().expect("stdout");
    let mut first = String::new();
    BufReader::new(stdout)
        .read_line(&mut first)
        .expect("a line");
    // `| head -1`: the reader closes its end here.
    let out = child.wait_with_output().expect("ends");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(first.contains("INVALID"), "{first}");
    assert!(
        !err.contains("panicked") && !err.contains("Broken pipe"),
        "{err}"
    );
    assert_eq!(out.status.code(), Some(1), "{err}");
}

#[test]
fn json_format_is_one_outcome_per_file_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let garbage = dir.path().join("notes.json");
    std::fs::write(&garbage, "this is not JSON").expect("write");
    let valid = fixture("referrals/valid/loneliness-knit-natter.json");
    let invalid = fixture("referrals/invalid/missing-intent.json");
    let (code, out, _) = validate(&[
        "--format",
        "json",
        &valid,
        garbage.to_str().expect("path"),
        &invalid,
    ]);
    assert_eq!(code, 2);
    let outcomes: Vec<serde_json::Value> = serde_json::from_str(&out).expect("a JSON array");
    assert_eq!(outcomes.len(), 3);
    let errors = |o: &serde_json::Value| {
        o["issue"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|i| i["severity"] == "error")
            .count()
    };
    assert!(outcomes
        .iter()
        .all(|o| o["resourceType"] == "OperationOutcome"));
    assert_eq!(errors(&outcomes[0]), 0);
    assert_eq!(outcomes[1]["issue"][0]["code"], "structure");
    assert!(errors(&outcomes[2]) > 0);
}

#[test]
fn base_drops_our_profiles_and_definitions_bring_a_vendors() {
    let nhs = fixture("referrals/invalid/invalid-nhs-number.json");
    assert_eq!(validate(&[&nhs]).0, 1, "SP-Patient checks the NHS number");
    let (code, out, _) = validate(&["--base", &nhs]);
    assert_eq!(code, 0, "base R4 has no NHS number rule: {out}");

    let dir = tempfile::tempdir().expect("tempdir");
    let patient = dir.path().join("patient.json");
    std::fs::write(
        &patient,
        r#"{"resourceType": "Patient", "name": [{"family": "Jones"}], "birthDate": "1950-01-01"}"#,
    )
    .expect("write");
    let patient = patient.to_str().expect("path");
    let definitions = format!(
        "{}/crates/validator/tests/data/profiles",
        env!("CARGO_MANIFEST_DIR")
    );
    let profile = "https://example.org/StructureDefinition/Test-Patient";
    assert_eq!(validate(&["--base", patient]).0, 0);
    let (code, out, _) = validate(&[
        "--base",
        "--definitions",
        &definitions,
        "--profile",
        profile,
        patient,
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("Patient.identifier"), "{out}");
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, "{").expect("write");
    let (code, _, err) = validate(&["--definitions", broken.to_str().expect("path"), patient]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn definitions_bring_a_questionnaire_its_responses_are_checked_against() {
    let dir = tempfile::tempdir().expect("tempdir");
    let questionnaire = dir.path().join("questionnaire.json");
    std::fs::write(
        &questionnaire,
        r#"{"resourceType": "Questionnaire", "url": "https://example.org/Questionnaire/wellbeing",
            "status": "active", "item": [
              {"linkId": "score", "type": "integer", "required": true,
               "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/maxValue", "valueInteger": 10}]}]}"#,
    )
    .expect("write");
    let response = |name: &str, answer: i64| {
        let path = dir.path().join(name);
        let body = format!(
            r#"{{"resourceType": "QuestionnaireResponse", "status": "completed",
                "questionnaire": "https://example.org/Questionnaire/wellbeing",
                "item": [{{"linkId": "score", "answer": [{{"valueInteger": {answer}}}]}}]}}"#
        );
        std::fs::write(&path, body).expect("write");
        path.to_str().expect("path").to_string()
    };
    let (good, bad) = (response("good.json", 7), response("bad.json", 12));
    let defs = questionnaire.to_str().expect("path");
    let (code, out, _) = validate(&["--base", "--definitions", defs, &good]);
    assert_eq!(code, 0, "{out}");
    let (code, out, _) = validate(&["--base", "--definitions", defs, &bad]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("greater than the allowed maximum of 10"),
        "{out}"
    );
    // Without the Questionnaire there is nothing to check the answers against.
    assert_eq!(validate(&["--base", &bad]).0, 0);
}

#[test]
fn base_lets_a_reference_be_any_string_the_gateway_does_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flag = dir.path().join("flag.json");
    std::fs::write(
        &flag,
        r#"{"resourceType": "Flag", "status": "active", "code": {"text": "Hard of hearing"},
            "subject": {"reference": "resource:0"}}"#,
    )
    .expect("write");
    let flag = flag.to_str().expect("path");
    // Base R4: a reference is a string without white space; the form is only a warning.
    let (code, out, _) = validate(&["--base", flag]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("warning [value] Flag.subject.reference"),
        "{out}"
    );
    // The gateway's exchange needs references that resolve: 'Type/id', '#id', URLs, urn:uuid.
    let (code, out, _) = validate(&[flag]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("error [value] Flag.subject.reference"),
        "{out}"
    );
}

#[test]
fn hl7_validator_options_turn_on_their_checks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("communication.json");
    std::fs::write(
        &file,
        r#"// exported by a test harness
        {"resourceType": "Communication", "status": "completed",
         "note": [{"text": "Call <b>before</b> visiting"}],
         "payload": [{"contentString": "Peter <i>James</i>"},
                     {"contentAttachment": {"url": "http://example.org/leaflet.pdf"}}]}"#,
    )
    .expect("write");
    let file = file.to_str().expect("path");
    // JSON has no comments: not FHIR unless comments are allowed.
    assert_eq!(validate(&["--base", file]).0, 2);
    let (code, out, _) = validate(&["--base", "--allow-comments", file]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("warning [value] Communication.note[0].text"),
        "{out}"
    );
    for (option, expression) in [
        ("--no-html-in-markdown", "Communication.note[0].text"),
        (
            "--security-checks",
            "Communication.payload[0].contentString",
        ),
        (
            "--no-example-urls",
            "Communication.payload[1].contentAttachment.url",
        ),
    ] {
        let (code, out, _) = validate(&["--base", "--allow-comments", option, file]);
        assert_eq!(code, 1, "{option}: {out}");
        assert!(
            out.contains(&format!("error [value] {expression}")),
            "{option}: {out}"
        );
    }
}
