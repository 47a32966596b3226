//! FHIR plumbing that knows nothing of referrals: reading bodies (JSON, XML through fhirbolt),
//! building OperationOutcomes, and resolving references inside Bundles and `contained`.

pub mod bundle;
pub mod outcome;
pub mod read;

use serde_json::{json, Value};

/// The value at a path of object keys (`["request", "method"]`): what `Value::pointer` finds for
/// `/request/method`, without parsing and unescaping the pointer into new strings on every call,
/// which made a handful of such lookups a few per cent of a referral's intake.
pub fn value_at<'v>(value: &'v Value, keys: &[&str]) -> Option<&'v Value> {
    keys.iter().try_fold(value, |v, key| v.get(key))
}

/// The FHIR version we speak, as CapabilityStatement and `fhirVersion` parameters name it.
pub const FHIR_VERSION: &str = "4.0.1";

/// Sets a resource's id and version metadata (`meta.versionId`, `meta.lastUpdated`).
pub fn stamp(mut resource: Value, id: &str, version: i64, now: &str) -> Value {
    if let Value::Object(object) = &mut resource {
        object.insert("id".into(), json!(id));
        let meta = object.entry("meta").or_insert_with(|| json!({}));
        if let Value::Object(meta) = meta {
            meta.insert("versionId".into(), json!(version.to_string()));
            meta.insert("lastUpdated".into(), json!(now));
        }
    }
    resource
}
