//! The validator on any JSON resource the reader accepts: issues, never a panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sp_gateway::fhir::read::{parse_body, Format};
use sp_gateway::validation::Validation;

fn validation() -> &'static Validation {
    static V: OnceLock<Validation> = OnceLock::new();
    V.get_or_init(|| Validation::bundled().expect("bundled definitions load"))
}

fuzz_target!(|data: &[u8]| {
    if let Ok(tree) = parse_body(data, Format::Json, 64) {
        let _ = validation().validate(&tree);
        let _ = validation().validate_base_with(&tree, &[]);
    }
});
