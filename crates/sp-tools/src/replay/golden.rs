//! Golden referral records: what a VCS organisation must receive for a fixture, with the parts
//! that differ on every run (our ids, the times we stamp) replaced by placeholders.

use std::path::Path;

use serde_json::{Map, Value};

use super::check::{diff, pretty};

pub const REFERRAL_ID: &str = "<referral_id>";
pub const TIMESTAMP: &str = "<timestamp>";

/// Keys whose values the gateway stamps itself; everything else comes from the fixture.
fn is_stamped_time(key: &str) -> bool {
    matches!(
        key,
        "created_at" | "updated_at" | "received_at" | "delivered_at" | "timestamp"
    )
}

/// The record with the referral id (wherever it appears) and our timestamps as placeholders.
pub fn normalise(record: &Value, referral_id: &str) -> Value {
    match record {
        Value::String(s) if !referral_id.is_empty() && s.contains(referral_id) => {
            Value::String(s.replace(referral_id, REFERRAL_ID))
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| normalise(v, referral_id)).collect())
        }
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, value) in map {
                let normalised = if is_stamped_time(key) && value.is_string() {
                    Value::String(TIMESTAMP.into())
                } else {
                    normalise(value, referral_id)
                };
                out.insert(key.clone(), normalised);
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// Compares a normalised record with the golden file, or writes the file when updating.
/// Returns a short note on success, or a readable diff.
pub fn compare_or_update(path: &Path, normalised: &Value, update: bool) -> Result<String, String> {
    let actual = pretty(normalised);
    if update {
        std::fs::write(path, &actual)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        return Ok(format!("golden record written to {}", path.display()));
    }
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read golden record {}: {e} (run with --update-golden to create it)\nreceived:\n{actual}",
            path.display()
        )
    })?;
    let golden: Value = serde_json::from_str(&text)
        .map_err(|e| format!("golden record {} is not JSON: {e}", path.display()))?;
    if &golden == normalised {
        Ok(format!("matches {}", path.display()))
    } else {
        Err(format!(
            "the record differs from {}\n{}",
            path.display(),
            diff(&pretty(&golden), &actual)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_and_stamped_times_become_placeholders() {
        let record = json!({
            "referral_id": "abc-123", "created_at": "2026-11-23T12:00:00Z",
            "authored_on": "2026-05-01T09:30:00+01:00", "links": ["ServiceRequest/abc-123"]
        });
        let normalised = normalise(&record, "abc-123");
        assert_eq!(normalised["referral_id"], REFERRAL_ID);
        assert_eq!(normalised["created_at"], TIMESTAMP);
        assert_eq!(normalised["authored_on"], "2026-05-01T09:30:00+01:00");
        assert_eq!(normalised["links"][0], "ServiceRequest/<referral_id>");
    }

    #[test]
    fn a_difference_is_a_diff_and_update_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.record.json");
        let record = json!({"patient": {"given_name": "Siân"}});
        assert!(compare_or_update(&path, &record, false).is_err());
        compare_or_update(&path, &record, true).unwrap();
        compare_or_update(&path, &record, false).unwrap();
        let err = compare_or_update(&path, &json!({"patient": {"given_name": "Sian"}}), false)
            .unwrap_err();
        assert!(err.contains("-    \"given_name\": \"Siân\""), "{err}");
    }
}
