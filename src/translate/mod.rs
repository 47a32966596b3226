//! Translation between FHIR and the plain records VCS organisations use.

pub mod outcomes;
pub mod referral_record;
