//! What an operator does to deliveries and endpoints, whichever way they ask: the JSON API
//! (`/admin/v1`, admin token) and the operator pages (`/admin`, signed in) both call these, so a
//! retry, a recovery or an endpoint switched back on is the same act either way. No HTTP here:
//! each edge maps [`OperatorError`] to its own dialect.

use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::delivery::Wake;
use crate::domain::VcsId;
use crate::store::{RecoveryProgress, Store, StoreError};

/// Why an operator's request was not done.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// No such organisation in the configuration.
    #[error("{0}")]
    NotFound(String),
    /// The thing exists but cannot take this action.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A configured organisation, by the id the operator gave.
pub fn configured_vcs(config: &Config, raw: &str) -> Result<VcsId, OperatorError> {
    raw.parse::<VcsId>()
        .ok()
        .filter(|id| config.vcs(id).is_some())
        .ok_or_else(|| {
            OperatorError::NotFound(format!(
                "There is no organisation {raw:?} in the configuration."
            ))
        })
}

/// A configured organisation that has a webhook (recovery and secret rotation are about
/// webhooks; an organisation without one reads its referrals in the inbox).
pub fn webhook_vcs(config: &Config, raw: &str) -> Result<VcsId, OperatorError> {
    let vcs = configured_vcs(config, raw)?;
    match config.vcs(&vcs).and_then(|v| v.webhook()) {
        Some(_) => Ok(vcs),
        None => Err(OperatorError::Conflict(format!(
            "The organisation {raw:?} has no webhook_url: it reads its referrals in the inbox."
        ))),
    }
}

/// Makes a message due now (a dead or delivered one goes back in the queue) and wakes the
/// delivery worker.
pub async fn retry(store: &dyn Store, wake: &Wake, message_id: &str) -> Result<(), OperatorError> {
    if !store.retry_message(message_id, Utc::now()).await? {
        return Err(OperatorError::Conflict(format!(
            "Message {message_id} cannot be retried: it is unknown, or its payload was pruned."
        )));
    }
    wake.notify_one();
    Ok(())
}

/// Puts every dead message of an organisation's webhook created since `since` back in the queue.
pub async fn recover(
    config: &Config,
    store: &dyn Store,
    wake: &Wake,
    raw_vcs: &str,
    since: DateTime<Utc>,
) -> Result<RecoveryProgress, OperatorError> {
    let vcs = webhook_vcs(config, raw_vcs)?;
    let progress = store.start_recovery(&vcs, since, Utc::now()).await?;
    wake.notify_one();
    Ok(progress)
}

/// Switches an organisation's endpoint on (its waiting messages go out) or off.
pub async fn set_enabled(
    config: &Config,
    store: &dyn Store,
    wake: &Wake,
    raw_vcs: &str,
    enabled: bool,
) -> Result<VcsId, OperatorError> {
    let vcs = configured_vcs(config, raw_vcs)?;
    let reason = (!enabled).then(|| "disabled by an operator".to_string());
    store
        .set_endpoint_enabled(&vcs, enabled, reason, Utc::now())
        .await?;
    if enabled {
        wake.notify_one();
    }
    Ok(vcs)
}
