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
        return Some("narrative XHTML: elements and entities checked natively (walk/xhtml.rs)");
    }
    None
}

/// The expression to evaluate for a constraint: R4 published a few expressions that do not
/// say what their text means, and that fail valid resources once an empty result counts as a
/// failure (see `walk::native::invariant_holds`). The HL7 validator evaluates corrected forms
/// of them (its `FHIRPathExpressionFixer`); these are the ones that occur in the R4 core
/// definitions, matched on the exact published expression so that an IG's own rule of the
/// same key is left alone.
pub(crate) fn corrected_expression(key: &str, expr: &str) -> Option<String> {
    const REF_1_R4: &str = "reference.startsWith('#').not() or (reference.substring(1).trace('url') in %rootResource.contained.id.trace('ids'))";
    const CON_3_R4: &str = "clinicalStatus.exists() or verificationStatus.coding.where(system='http://terminology.hl7.org/CodeSystem/condition-ver-status' and code = 'entered-in-error').exists() or category.select($this='problem-list-item').empty()";
    match (key, expr) {
        // A reference without `reference`, or `#` (the container itself), has nothing to
        // look up among the contained resources.
        ("ref-1", REF_1_R4) => Some(format!(
            "reference.exists() implies (reference = '#' or ({REF_1_R4}))"
        )),
        // "enableBehavior SHALL be present if there are multiple enableWhen": two is multiple.
        (_, "enableWhen.count() > 2 implies enableBehavior.exists()") => {
            Some("enableWhen.count() >= 2 implies enableBehavior.exists()".to_string())
        }
        // `category` is a CodeableConcept: compare its codings, not the concept, with the code.
        (_, CON_3_R4) => Some(
            "(verificationStatus.coding.where(system='http://terminology.hl7.org/CodeSystem/condition-ver-status' and code = 'entered-in-error').exists() and category.coding.exists(system='http://terminology.hl7.org/CodeSystem/condition-category' and code ='problem-list-item').empty()) implies (clinicalStatus.exists())".to_string(),
        ),
        // The canonical resources' name rule (a warning) applies when there is a name, to all of it.
        (_, "name.matches('[A-Z]([A-Za-z0-9_]){0,254}')") => Some(
            "name.exists() implies name.matches('^[A-Z]([A-Za-z0-9_]){0,254}$')".to_string(),
        ),
        // FHIRPath type names are case-sensitive: the primitive is `boolean`.
        ("que-7", "operator = 'exists' implies (answer is Boolean)") => {
            Some("operator = 'exists' implies (answer is boolean)".to_string())
        }
        _ => None,
    }
}
