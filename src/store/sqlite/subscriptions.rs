//! GP systems' Subscriptions in SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::params;

use super::SqliteStore;
use crate::domain::ClientId;
use crate::store::rows::{self, SUBSCRIPTION_COLUMNS};
use crate::store::traits::Subscriptions;
use crate::store::types::*;
use crate::store::{timestamp, StoreError};

#[async_trait]
impl Subscriptions for SqliteStore {
    async fn create_subscription(
        &self,
        subscription: SubscriptionRow,
        at: DateTime<Utc>,
        limit: usize,
    ) -> Result<bool, StoreError> {
        let at = timestamp(at);
        self.write(move |conn| {
            let active: i64 = conn
                .prepare_cached(
                    "SELECT COUNT(*) FROM subscriptions WHERE client_id = ?1 AND status = 'active'",
                )?
                .query_row(params![subscription.client_id.as_str()], |row| row.get(0))?;
            if rows::count(active) >= limit {
                return Ok(false);
            }
            conn.prepare_cached(&format!(
                "INSERT INTO subscriptions ({SUBSCRIPTION_COLUMNS}, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
            ))?
            .execute(params![
                subscription.id,
                subscription.client_id.as_str(),
                subscription.resource_type,
                subscription.criteria,
                subscription.endpoint,
                subscription.status.as_str(),
                subscription.content,
                at
            ])?;
            Ok(true)
        })
        .await
    }

    async fn subscriptions_for(
        &self,
        client: &ClientId,
        resource_type: &str,
    ) -> Result<Vec<SubscriptionRow>, StoreError> {
        let (client, resource_type) = (client.to_string(), resource_type.to_string());
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions
                 WHERE client_id = ?1 AND resource_type = ?2 AND status = 'active'"
            ))?
            .query_and_then(params![client, resource_type], |row| {
                rows::subscription(row)
            })?
            .collect()
        })
        .await
    }

    async fn subscription(&self, id: &str) -> Result<Option<SubscriptionRow>, StoreError> {
        let id = id.to_string();
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE id = ?1"
            ))?
            .query_and_then(params![id], |row| rows::subscription(row))?
            .next()
            .transpose()
        })
        .await
    }

    async fn delete_subscription(&self, client: &ClientId, id: &str) -> Result<bool, StoreError> {
        let (client, id) = (client.to_string(), id.to_string());
        self.write(move |conn| {
            let changed = conn
                .prepare_cached("UPDATE subscriptions SET status = 'off' WHERE id = ?1 AND client_id = ?2 AND status <> 'off'")?
                .execute(params![id, client])?;
            Ok(changed == 1)
        })
        .await
    }
}
