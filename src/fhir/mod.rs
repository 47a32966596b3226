//! FHIR plumbing that knows nothing of referrals: reading bodies (JSON, XML through fhirbolt),
//! building OperationOutcomes, and resolving references inside Bundles and `contained`.

pub mod bundle;
pub mod meta;
pub mod outcome;
pub mod read;

use serde_json::Value;

/// The value at a path of object keys (`["request", "method"]`): what `Value::pointer` finds for
/// `/request/method`, without parsing and unescaping the pointer into new strings on every call,
/// which made a handful of such lookups a few per cent of a referral's intake.
pub fn value_at<'v>(value: &'v Value, keys: &[&str]) -> Option<&'v Value> {
    keys.iter().try_fold(value, |v, key| v.get(key))
}

/// The FHIR version we speak, as CapabilityStatement and `fhirVersion` parameters name it.
pub const FHIR_VERSION: &str = "4.0.1";
