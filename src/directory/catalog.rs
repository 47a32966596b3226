//! The directory as the gateway keeps it: an import made into what the store writes (the
//! feed's JSON and the FHIR resources of each service), and the search index built from the
//! store at start and rebuilt after each import.

use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};

use super::fhir::{organization_identifiers, to_fhir};
use super::import::{ImportReport, ImportedService};
use super::index::{Index, IndexedService};
use super::oruk;
use super::taxonomy::{TaxonomyMap, TaxonomyMapError};
use crate::config::Config;
use crate::domain::Identifier;
use crate::store::{
    DirectoryImport, DirectoryImportOutcome, DirectoryState, NewDirectoryOrganization,
    NewDirectoryService, Store, StoreError,
};

/// Why the directory cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Taxonomy(#[from] TaxonomyMapError),
    #[error("directory.taxonomy_map {path}: {source}")]
    TaxonomyFile {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The bundled taxonomy table, extended by `directory.taxonomy_map` when configured.
pub fn taxonomy(config: &Config) -> Result<TaxonomyMap, CatalogError> {
    let mut map = TaxonomyMap::bundled()?;
    if let Some(path) = &config.directory.taxonomy_map {
        let text = std::fs::read_to_string(path).map_err(|source| CatalogError::TaxonomyFile {
            path: path.display().to_string(),
            source,
        })?;
        map.extend(TaxonomyMap::from_json(&text)?);
    }
    Ok(map)
}

/// Every identifier of every configured `[[vcs]]`: the organisations connected to the gateway.
pub fn connected_identifiers(config: &Config) -> Vec<Identifier> {
    config
        .vcs
        .iter()
        .flat_map(|v| v.identifiers.iter().cloned())
        .collect()
}

/// What the store writes of one valid service.
pub fn new_service(
    imported: &ImportedService,
    taxonomy: &TaxonomyMap,
    connected: &[Identifier],
) -> NewDirectoryService {
    let service = &imported.service;
    let resources = to_fhir(service, taxonomy, connected);
    let organization = match (&service.organization, resources.organization) {
        (Some(org), Some(content)) => Some(NewDirectoryOrganization {
            id: org.id.clone(),
            content: content.to_string(),
            identifiers: organization_identifiers(org),
        }),
        _ => None,
    };
    let locations = resources
        .locations
        .iter()
        .filter_map(|l| Some((l["id"].as_str()?.to_string(), l.to_string())))
        .collect();
    NewDirectoryService {
        id: service.id.clone(),
        name: service.name.trim().to_string(),
        state: if service.is_active() {
            DirectoryState::Active
        } else {
            DirectoryState::Inactive
        },
        source: imported.raw.to_string(),
        content: resources.healthcare_service.to_string(),
        organization,
        locations,
    }
}

/// Stores the valid services of `report` as one import of `feed`.
pub async fn store_import(
    store: &dyn Store,
    report: &ImportReport,
    feed: &str,
    full: bool,
    taxonomy: &TaxonomyMap,
    connected: &[Identifier],
    at: DateTime<Utc>,
) -> Result<DirectoryImportOutcome, StoreError> {
    let services = report
        .services
        .iter()
        .map(|s| new_service(s, taxonomy, connected))
        .collect();
    store
        .import_directory(DirectoryImport {
            feed: feed.to_string(),
            full,
            services,
            at,
        })
        .await
}

/// The search index over the stored services, swapped whole when rebuilt.
pub struct Catalog {
    taxonomy: TaxonomyMap,
    index: RwLock<Arc<Index>>,
}

impl Catalog {
    /// Builds the index from every stored service.
    pub async fn load(store: &dyn Store, taxonomy: TaxonomyMap) -> Result<Catalog, StoreError> {
        let index = build_index(store, &taxonomy).await?;
        Ok(Catalog {
            taxonomy,
            index: RwLock::new(Arc::new(index)),
        })
    }

    /// Rebuilds the index from the store (after an import).
    pub async fn refresh(&self, store: &dyn Store) -> Result<usize, StoreError> {
        let index = Arc::new(build_index(store, &self.taxonomy).await?);
        let n = index.len();
        match self.index.write() {
            Ok(mut guard) => *guard = index,
            Err(poisoned) => *poisoned.into_inner() = index,
        }
        Ok(n)
    }

    /// The index as it stands now.
    pub fn index(&self) -> Arc<Index> {
        match self.index.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn taxonomy(&self) -> &TaxonomyMap {
        &self.taxonomy
    }
}

async fn build_index(store: &dyn Store, taxonomy: &TaxonomyMap) -> Result<Index, StoreError> {
    let mut indexed = Vec::new();
    for row in store.directory_services().await? {
        let service: oruk::Service = serde::Deserialize::deserialize(&row.source_json()?)
            .map_err(|e| StoreError::unreadable("directory service", &row.id, e))?;
        let mut s = IndexedService::from_oruk(&service, taxonomy);
        s.active = row.state.is_active();
        indexed.push(s);
    }
    Ok(Index::build(indexed))
}
