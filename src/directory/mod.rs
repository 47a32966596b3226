//! The service directory: Open Referral UK feeds read into services, their coverage by
//! postcode, their need categories, their FHIR form (HealthcareService, Organization,
//! Location) and an in-memory search index.
//!
//! Nothing here knows HTTP: `import` reads files and judges them against the UK profile's
//! schema, `catalog` turns an import into what the store writes and keeps the search index
//! built from the store; the rest is pure. The `directory import` command and the FHIR
//! endpoints (`api::fhir::healthcare_service`) build on these parts.

pub mod catalog;
pub mod centroids;
pub mod coverage;
pub mod feeds;
pub mod fhir;
pub mod import;
pub mod index;
pub mod near;
pub mod oruk;
pub mod postcode;
pub mod responsiveness;
pub mod taxonomy;

pub use catalog::{Catalog, CatalogError};
pub use centroids::{centroid, Position};
pub use coverage::{Coverage, MatchRank};
pub use import::{parse_paths, ImportError, ImportReport};
pub use index::{Index, IndexedService, Match, Query, ServiceContact};
pub use postcode::{district_of, Postcode, PostcodeArea, PostcodeDistrict, PostcodeError};
pub use taxonomy::TaxonomyMap;
