//! A stored resource's identity: its id and `meta.versionId`/`lastUpdated`, set by the gateway
//! on every version it stores (intake for the first, lifecycle for the later ones).

use serde_json::{json, Value};

use crate::domain::FhirId;

/// Sets a resource's id and `meta.versionId`/`lastUpdated` for its first version.
pub fn with_version(resource: Value, id: &FhirId, now: &str) -> Value {
    stamp(resource, id.as_str(), 1, now)
}

/// Sets a resource's id and version metadata. Anything else in `meta` (profiles, tags) stays.
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

/// Compact JSON text of a tree, as stored. Serialising a `Value` or a plain struct cannot fail
/// (keys are strings and the writer is a `Vec`), so the empty fallback is never taken.
pub fn json_text(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_id_and_version() {
        let now = "2026-05-10T09:00:00.000Z";
        // (resource, id, version, expected)
        let table = [
            (
                json!({"resourceType": "Task"}),
                "t-1",
                1,
                json!({"resourceType": "Task", "id": "t-1",
                       "meta": {"versionId": "1", "lastUpdated": now}}),
            ),
            (
                json!({"resourceType": "Task", "id": "old", "meta": {"profile": ["p"], "versionId": "1"}}),
                "t-1",
                2,
                json!({"resourceType": "Task", "id": "t-1",
                       "meta": {"profile": ["p"], "versionId": "2", "lastUpdated": now}}),
            ),
            (json!("not a resource"), "t-1", 1, json!("not a resource")),
        ];
        for (resource, id, version, expected) in table {
            assert_eq!(stamp(resource, id, version, now), expected);
        }
        assert_eq!(
            json_text(&json!({"b": 1, "a": [true, null]})),
            r#"{"b":1,"a":[true,null]}"#
        );
    }
}
