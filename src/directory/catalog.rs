//! The directory as the gateway keeps it: an import made into what the store writes (the
//! feed's JSON and the FHIR resources of each service), and the search index built from the
//! store at start and rebuilt after each import.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use super::fhir::{organization_identifiers, to_fhir};
use super::import::{ImportReport, ImportedService};
use super::index::{Index, IndexedService};
use super::oruk;
use super::responsiveness::{self, Figures};
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

/// The search index over the stored services, swapped whole when rebuilt, and the services'
/// responsiveness figures beside it.
pub struct Catalog {
    taxonomy: TaxonomyMap,
    index: RwLock<Arc<Index>>,
    responsiveness: RwLock<Arc<HashMap<String, Figures>>>,
    /// A status report may have changed the figures.
    stale: Notify,
}

/// How long after a status report the figures are computed again (reports come in bursts).
const SETTLE: Duration = Duration::from_secs(5);
/// How often they are computed anyway (the window slides).
const RECOMPUTE: Duration = Duration::from_secs(3600);

fn swap<T>(lock: &RwLock<Arc<T>>, value: Arc<T>) {
    match lock.write() {
        Ok(mut guard) => *guard = value,
        Err(poisoned) => *poisoned.into_inner() = value,
    }
}

fn current<T>(lock: &RwLock<Arc<T>>) -> Arc<T> {
    match lock.read() {
        Ok(guard) => guard.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

impl Catalog {
    /// Builds the index from every stored service.
    pub async fn load(store: &dyn Store, taxonomy: TaxonomyMap) -> Result<Catalog, StoreError> {
        let index = build_index(store, &taxonomy).await?;
        Ok(Catalog {
            taxonomy,
            index: RwLock::new(Arc::new(index)),
            responsiveness: RwLock::new(Arc::new(HashMap::new())),
            stale: Notify::new(),
        })
    }

    /// Rebuilds the index from the store (after an import).
    pub async fn refresh(&self, store: &dyn Store) -> Result<usize, StoreError> {
        let index = Arc::new(build_index(store, &self.taxonomy).await?);
        let n = index.len();
        swap(&self.index, index);
        Ok(n)
    }

    /// The index as it stands now.
    pub fn index(&self) -> Arc<Index> {
        current(&self.index)
    }

    /// Computes every service's responsiveness over the last 90 days from the store; answers
    /// how many services have figures.
    pub async fn refresh_responsiveness(&self, store: &dyn Store) -> Result<usize, StoreError> {
        let until = Utc::now();
        let since = until - chrono::Duration::days(responsiveness::WINDOW_DAYS);
        let referrals = store.service_referrals(since).await?;
        let figures = Arc::new(responsiveness::compute(&referrals, since, until));
        let n = figures.len();
        swap(&self.responsiveness, figures);
        Ok(n)
    }

    /// A service's responsiveness figures, when at least five referrals stand behind them.
    pub fn figures(&self, service_id: &str) -> Option<Figures> {
        current(&self.responsiveness).get(service_id).cloned()
    }

    /// A referral's status changed: the figures are computed again shortly.
    pub fn status_changed(&self) {
        self.stale.notify_one();
    }

    /// Keeps the figures current for as long as the server runs: now, a few seconds after
    /// status reports, and every hour.
    pub async fn keep_responsiveness(self: Arc<Self>, store: Arc<dyn Store>) {
        loop {
            if let Err(e) = self.refresh_responsiveness(store.as_ref()).await {
                tracing::warn!(error = %e, "directory responsiveness not computed");
            }
            tokio::select! {
                _ = self.stale.notified() => tokio::time::sleep(SETTLE).await,
                _ = tokio::time::sleep(RECOMPUTE) => {}
            }
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
