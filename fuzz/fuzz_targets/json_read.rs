//! The JSON reader: any bytes give a tree or a ReadError, never a panic; a tree it returns is
//! a resource within the depth limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sp_gateway::fhir::read::{json_depth, parse_body, Format};

fuzz_target!(|data: &[u8]| {
    if let Ok(tree) = parse_body(data, Format::Json, 64) {
        assert!(tree.get("resourceType").is_some_and(|t| t.is_string()));
        assert!(json_depth(&tree) <= 64);
    }
});
