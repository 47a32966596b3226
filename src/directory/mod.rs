//! The service directory: Open Referral UK feeds read into services, their coverage by
//! postcode, their need categories, their FHIR form (HealthcareService, Organization,
//! Location) and an in-memory search index.
//!
//! Nothing here touches the store or HTTP: `import` reads files and judges them against the UK
//! profile's schema, the rest is pure. The `directory import` command, storage, feed polling
//! and the FHIR search endpoints build on these parts (issue 21).

pub mod coverage;
pub mod fhir;
pub mod import;
pub mod index;
pub mod oruk;
pub mod postcode;
pub mod taxonomy;

pub use coverage::{Coverage, MatchRank};
pub use import::{parse_paths, ImportError, ImportReport};
pub use index::{Index, IndexedService, Match, Query};
pub use postcode::{district_of, Postcode, PostcodeArea, PostcodeDistrict, PostcodeError};
pub use taxonomy::TaxonomyMap;
