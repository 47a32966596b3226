//! The storage budget (`[storage] max_bytes`, `min_free_bytes`): a write that would grow the
//! database is refused with `507` once the database has reached its budget, or the disk holding
//! it is down to the space kept free, before the disk is full, while reads and deliveries go on.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::StorageConfig;
use crate::store::{Store, StoreError};

/// How long a measurement is trusted: measuring PostgreSQL's size costs a scan of its files, and
/// a second's writes cannot outgrow the headroom the budget leaves.
const MEASURE_EVERY: Duration = Duration::from_secs(1);

/// What was measured: the database's size and the free space beside it (when visible).
#[derive(Debug, Clone, Copy)]
struct Measured {
    used: u64,
    free: Option<u64>,
}

pub struct StorageBudget {
    max_bytes: Option<u64>,
    /// 0: no floor.
    min_free_bytes: u64,
    measured: Mutex<Option<(Instant, Measured)>>,
}

impl StorageBudget {
    pub fn new(config: &StorageConfig) -> Self {
        StorageBudget {
            max_bytes: config.max_bytes,
            min_free_bytes: config.min_free_bytes,
            measured: Mutex::new(None),
        }
    }

    /// `OverBudget` once the database has reached the budget, `DiskLow` once the disk holding
    /// it has less free space than the floor.
    pub async fn check(&self, store: &dyn Store) -> Result<(), StoreError> {
        if self.max_bytes.is_none() && self.min_free_bytes == 0 {
            return Ok(());
        }
        let recent = self
            .measured
            .lock()
            .ok()
            .and_then(|m| *m)
            .filter(|(at, _)| at.elapsed() < MEASURE_EVERY)
            .map(|(_, measured)| measured);
        let measured = match recent {
            Some(measured) => measured,
            None => {
                let measured = Measured {
                    used: match self.max_bytes {
                        Some(_) => store.used_bytes().await?,
                        None => 0,
                    },
                    free: match self.min_free_bytes {
                        0 => None,
                        _ => store.free_bytes().await?,
                    },
                };
                if let Ok(mut slot) = self.measured.lock() {
                    *slot = Some((Instant::now(), measured));
                }
                measured
            }
        };
        if let Some(max) = self.max_bytes {
            if measured.used >= max {
                return Err(StoreError::OverBudget {
                    used: measured.used,
                    max,
                });
            }
        }
        if let Some(free) = measured.free {
            if free < self.min_free_bytes {
                return Err(StoreError::DiskLow {
                    free,
                    min_free: self.min_free_bytes,
                });
            }
        }
        Ok(())
    }
}
