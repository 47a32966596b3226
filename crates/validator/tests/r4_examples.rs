//! Every vendored HL7 R4 core example must validate without errors against
//! base R4 (examples known to be wrong themselves would be listed here).

mod common;

use common::{data, errors, show, validate};

/// Examples that are themselves invalid, with the reason (see README.md).
const KNOWN_BAD: &[(&str, &str)] = &[];

#[test]
fn core_examples_are_valid() {
    let mut failures = Vec::new();
    let mut count = 0;
    let dir = data("r4-core-examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("examples folder")
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    for p in files {
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string();
        if KNOWN_BAD.iter().any(|(k, _)| *k == name) {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p).expect("readable")).expect("json");
        let issues = validate(&v);
        count += 1;
        if !errors(&issues).is_empty() {
            failures.push(format!("{name}:\n{}", show(&issues)));
        }
    }
    assert!(count >= 50, "expected the 57 examples, found {count}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
