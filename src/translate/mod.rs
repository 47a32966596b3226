//! Translation between FHIR and the plain records VCS organisations use.

pub mod referral_record;
