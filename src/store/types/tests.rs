//! Unit tests of the stored types.

use super::*;
use crate::store::StoreError;

#[test]
fn unreadable_content_is_an_error_naming_the_version_not_null() {
    let stored = StoredResource {
        resource_type: "Task".into(),
        id: "t1".into(),
        version_id: 2,
        last_updated: Utc::now(),
        content: r#"{"resourceType": "Task", "note": "Mrs Smith"#.into(),
    };
    match stored.json() {
        Err(StoreError::Unreadable { what, id, reason }) => {
            assert_eq!((what, id.as_str()), ("resource", "Task/t1/_history/2"));
            assert!(!reason.contains("Smith"), "{reason}");
        }
        other => panic!("expected Unreadable, got {other:?}"),
    }
}

#[test]
fn delivery_states_round_trip_as_stored() {
    for &state in DeliveryState::ALL {
        assert_eq!(state.as_str().parse::<DeliveryState>(), Ok(state));
        assert_eq!(serde_json::json!(state), serde_json::json!(state.as_str()));
    }
    assert!("sent".parse::<DeliveryState>().is_err());
    for &status in ReferralStatus::ALL {
        assert_eq!(status.as_str().parse::<ReferralStatus>(), Ok(status));
    }
    assert_eq!(serde_json::json!(ReferralStatus::OnHold), "on-hold");
    assert!("webhook".parse::<TargetKind>().is_err());
}
