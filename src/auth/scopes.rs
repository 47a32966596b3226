//! SMART `system/<Type>.<read|write>` scopes: which exist, and which a pattern covers.

/// The resource types our FHIR API serves; each has a `read` and a `write` scope.
pub const RESOURCE_TYPES: [&str; 5] = [
    "ServiceRequest",
    "Patient",
    "Task",
    "Observation",
    "Subscription",
];

/// The service directory's types: GP systems only read them (a `read` scope each).
pub const DIRECTORY_TYPES: [&str; 3] = ["HealthcareService", "Organization", "Location"];

const ACCESS: [&str; 2] = ["read", "write"];

/// Every concrete scope we know, e.g. `system/ServiceRequest.write`.
pub fn all() -> Vec<String> {
    RESOURCE_TYPES
        .iter()
        .flat_map(|t| ACCESS.iter().map(move |a| format!("system/{t}.{a}")))
        .chain(DIRECTORY_TYPES.iter().map(|t| read(t)))
        .collect()
}

/// The scope reading or searching `resource_type` needs.
pub fn read(resource_type: &str) -> String {
    format!("system/{resource_type}.read")
}

/// Whether `pattern` (concrete, or with `*` for the type and/or the access) covers `scope`.
pub fn covers(pattern: &str, scope: &str) -> bool {
    let (Some((p_type, p_access)), Some((s_type, s_access))) = (split(pattern), split(scope))
    else {
        return false;
    };
    (p_type == "*" || p_type == s_type) && (p_access == "*" || p_access == s_access)
}

/// The concrete scopes of ours a pattern covers (empty: the pattern names nothing we serve).
pub fn expand(pattern: &str) -> Vec<String> {
    all().into_iter().filter(|s| covers(pattern, s)).collect()
}

fn split(scope: &str) -> Option<(&str, &str)> {
    scope.strip_prefix("system/")?.split_once('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_cover_concrete_scopes() {
        assert!(covers("system/*.read", "system/Task.read"));
        assert!(covers(
            "system/ServiceRequest.*",
            "system/ServiceRequest.write"
        ));
        assert!(!covers(
            "system/ServiceRequest.read",
            "system/ServiceRequest.write"
        ));
        assert!(!covers("patient/*.read", "system/Task.read"));
        assert_eq!(expand("system/*.*").len(), 13);
        assert_eq!(expand("system/*.read").len(), 8);
        assert!(expand("system/HealthcareService.write").is_empty());
        assert!(expand("system/Condition.read").is_empty());
    }
}
