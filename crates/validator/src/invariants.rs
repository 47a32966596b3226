//! Which constraints run as FHIRPath, and which do not (with why).

/// Why a constraint key is not evaluated as FHIRPath, if it is not.
pub(crate) fn skip_reason(key: &str) -> Option<&'static str> {
    if crate::walk::is_native(key) {
        return Some("checked by native code (docs/CONTRACTS.md)");
    }
    if key == "ele-1" {
        // Evaluating ele-1 on every element would dominate the run time;
        // the walk checks it directly (an element with neither a value nor
        // children: `{}`, `{"id": ..}` or an empty `_x` object).
        return Some("checked by native code in the walk (empty elements)");
    }
    if key.starts_with("txt-") {
        return Some("narrative (XHTML) checks are not implemented");
    }
    None
}
