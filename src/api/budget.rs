//! The storage budget (`[storage] max_bytes`): a write that would grow the database is refused
//! with `507` once it has reached the budget, before the disk is full, while reads and
//! deliveries go on.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::store::{Store, StoreError};

/// How long a measured size is trusted: measuring PostgreSQL's costs a scan of its files, and a
/// second's writes cannot outgrow the headroom the budget leaves.
const MEASURE_EVERY: Duration = Duration::from_secs(1);

pub struct StorageBudget {
    max_bytes: Option<u64>,
    measured: Mutex<Option<(Instant, u64)>>,
}

impl StorageBudget {
    pub fn new(max_bytes: Option<u64>) -> Self {
        StorageBudget {
            max_bytes,
            measured: Mutex::new(None),
        }
    }

    /// `OverBudget` once the database has reached the budget.
    pub async fn check(&self, store: &dyn Store) -> Result<(), StoreError> {
        let Some(max) = self.max_bytes else {
            return Ok(());
        };
        let recent = self
            .measured
            .lock()
            .ok()
            .and_then(|m| *m)
            .filter(|(at, _)| at.elapsed() < MEASURE_EVERY)
            .map(|(_, used)| used);
        let used = match recent {
            Some(used) => used,
            None => {
                let used = store.used_bytes().await?;
                if let Ok(mut measured) = self.measured.lock() {
                    *measured = Some((Instant::now(), used));
                }
                used
            }
        };
        if used >= max {
            return Err(StoreError::OverBudget { used, max });
        }
        Ok(())
    }
}
