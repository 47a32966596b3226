//! Published examples must validate against base R4: the UK Core and BaRS examples, FHIR XML read
//! through fhirbolt like any XML submission.

use std::path::Path;

use sp_validator::{Options, Validator};

fn errors_of(validator: &Validator, path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let json = if path.extension().is_some_and(|e| e == "xml") {
        fhir_model::xml_to_json(&text).map_err(|e| format!("unreadable: {e}"))?
    } else {
        serde_json::from_str(&text).map_err(|e| format!("unreadable: {e}"))?
    };
    Ok(validator
        .validate(&json, &Options::default())
        .into_iter()
        .filter(|i| i.is_error())
        .map(|i| format!("{} [{}] {}", i.expression, i.message_id, i.diagnostics))
        .collect())
}

fn check_folder(folder: &str, extension: &str) -> (usize, Vec<String>) {
    let validator = Validator::bundled().expect("bundled definitions");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(folder);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("examples folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .collect();
    files.sort();
    let mut failures = Vec::new();
    for path in &files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string();
        match errors_of(&validator, path) {
            Ok(errors) if errors.is_empty() => {}
            Ok(errors) => failures.push(format!("{name}: {}", errors.join("; "))),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    (files.len(), failures)
}

#[test]
fn uk_core_examples_validate_against_base_r4() {
    let (count, failures) = check_folder("tests/data/ukcore", "xml");
    assert!(count >= 15, "only {count} UK Core examples");
    assert!(
        failures.is_empty(),
        "{} of {count} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn bars_examples_validate_against_base_r4() {
    let (count, failures) = check_folder("tests/data/bars/examples", "xml");
    assert!(count >= 8, "only {count} BaRS examples");
    assert!(
        failures.is_empty(),
        "{} of {count} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
