//! FHIR plumbing that knows nothing of referrals: reading bodies (JSON, XML through fhirbolt),
//! building OperationOutcomes, and resolving references inside Bundles and `contained`.

pub mod bundle;
pub mod outcome;
pub mod read;

/// The FHIR version we speak, as CapabilityStatement and `fhirVersion` parameters name it.
pub const FHIR_VERSION: &str = "4.0.1";
