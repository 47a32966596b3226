//! The validator on any JSON resource the reader accepts: issues, never a panic, and never more
//! than the cap a reply may carry (`MAX_ISSUES` and the one warning that says the list was cut).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sp_gateway::fhir::read::{parse_body, Format};
use sp_gateway::validation::Validation;
use sp_validator::MAX_ISSUES;

fn validation() -> &'static Validation {
    static V: OnceLock<Validation> = OnceLock::new();
    V.get_or_init(|| Validation::bundled().expect("bundled definitions load"))
}

fuzz_target!(|data: &[u8]| {
    if let Ok(tree) = parse_body(data, Format::Json, 64) {
        let ours = validation().validate(&tree);
        assert!(ours.len() <= MAX_ISSUES + 1, "{} issues", ours.len());
        let base = validation().validate_base_with(&tree, &[]);
        assert!(base.len() <= MAX_ISSUES + 1, "{} issues", base.len());
    }
});
