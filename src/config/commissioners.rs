//! `[[commissioners]]`: who may read the aggregate reports (`/reports/v1`, FHIR `MeasureReport`),
//! and over which practices and organisations. A commissioner never reads a record.

use std::collections::HashSet;

use serde::Deserialize;

use super::{invalid, ConfigError};
use crate::domain::{CommissionerId, OdsCode, VcsId};

/// A commissioner: its bearer token (kept as a digest once loaded, like the others) and the
/// scope of the figures it may read.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommissionerConfig {
    pub id: CommissionerId,
    pub name: String,
    /// Bearer token for `/reports/v1` and the FHIR Measure and MeasureReport endpoints.
    pub token: String,
    /// Only referrals from these GP practices (ODS codes); absent, every practice.
    #[serde(default)]
    pub practices: Option<Vec<OdsCode>>,
    /// Only referrals to these organisations (`[[vcs]] id`); absent, every organisation.
    #[serde(default)]
    pub organisations: Option<Vec<VcsId>>,
}

/// Unique ids, a name, and organisations that are configured; tokens are checked with the
/// others by the caller.
pub(super) fn check_commissioners(
    commissioners: &[CommissionerConfig],
    vcs: &HashSet<VcsId>,
) -> Result<(), ConfigError> {
    let mut ids = HashSet::new();
    for (i, commissioner) in commissioners.iter().enumerate() {
        if !ids.insert(commissioner.id.clone()) {
            return Err(invalid(
                format!("commissioners[{i}].id"),
                "duplicate commissioner id",
            ));
        }
        if commissioner.name.trim().is_empty() {
            return Err(invalid(
                format!("commissioners[{i}].name"),
                "must not be empty",
            ));
        }
        if commissioner.practices.as_ref().is_some_and(Vec::is_empty) {
            return Err(invalid(
                format!("commissioners[{i}].practices"),
                "an empty list would show nothing: leave it out to see every practice",
            ));
        }
        if let Some(organisations) = &commissioner.organisations {
            if organisations.is_empty() {
                return Err(invalid(
                    format!("commissioners[{i}].organisations"),
                    "an empty list would show nothing: leave it out to see every organisation",
                ));
            }
            if let Some((j, unknown)) = organisations
                .iter()
                .enumerate()
                .find(|(_, o)| !vcs.contains(*o))
            {
                return Err(invalid(
                    format!("commissioners[{i}].organisations[{j}]"),
                    format!("{unknown} is not a configured [[vcs]] id"),
                ));
            }
        }
    }
    Ok(())
}
