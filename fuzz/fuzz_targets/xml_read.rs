//! The XML reader (pre-scan, then fhirbolt): any bytes give a tree or a ReadError, never a
//! panic or a stack overflow.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sp_gateway::fhir::read::{json_depth, parse_body, Format};

fuzz_target!(|data: &[u8]| {
    if let Ok(tree) = parse_body(data, Format::Xml, 64) {
        assert!(json_depth(&tree) <= 64);
    }
});
