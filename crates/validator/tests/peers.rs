//! The project's own peer cases: 2 valid resources, 11 with one defect each.

mod common;

use common::{errors, load, show, validate};

#[test]
fn valid_cases_have_no_errors() {
    for f in ["valid-servicerequest.json", "valid-observation.json"] {
        let issues = validate(&load(&format!("peers/{f}")));
        assert!(errors(&issues).is_empty(), "{f}:\n{}", show(&issues));
    }
}

#[test]
fn each_invalid_case_is_rejected_at_the_right_place() {
    let cases = [
        (
            "invalid-missing-status.json",
            "ServiceRequest.status",
            "required",
        ),
        (
            "invalid-missing-subject.json",
            "ServiceRequest.subject",
            "required",
        ),
        (
            "invalid-unknown-element.json",
            "ServiceRequest.foo",
            "structure",
        ),
        (
            "invalid-priority-number.json",
            "ServiceRequest.priority",
            "structure",
        ),
        (
            "invalid-bad-date.json",
            "ServiceRequest.authoredOn",
            "value",
        ),
        (
            "invalid-missing-intent.json",
            "ServiceRequest.intent",
            "required",
        ),
        (
            "invalid-empty-string.json",
            "ServiceRequest.requester.display",
            "value",
        ),
        (
            "invalid-bad-reference.json",
            "ServiceRequest.subject.reference",
            "value",
        ),
        (
            "invalid-nested-unknown.json",
            "ServiceRequest.code.coding[0].foo",
            "structure",
        ),
        (
            "invalid-status-array.json",
            "ServiceRequest.status",
            "structure",
        ),
        (
            "invalid-bad-status-code.json",
            "ServiceRequest.status",
            "code-invalid",
        ),
    ];
    for (file, expr, code) in cases {
        let issues = validate(&load(&format!("peers/{file}")));
        let errs = errors(&issues);
        assert!(
            errs.iter()
                .any(|i| i.expression == expr && i.code.as_str() == code),
            "{file}: expected {code} at {expr}, got:\n{}",
            show(&issues)
        );
        // One defect each: nothing else is an error.
        assert_eq!(
            errs.len(),
            1,
            "{file}: exactly one error expected:\n{}",
            show(&issues)
        );
    }
}
