//! GP systems' Subscriptions in PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::PostgresStore;
use crate::domain::ClientId;
use crate::store::rows::{self, SUBSCRIPTION_COLUMNS};
use crate::store::traits::Subscriptions;
use crate::store::types::*;
use crate::store::StoreError;

#[async_trait]
impl Subscriptions for PostgresStore {
    async fn create_subscription(
        &self,
        subscription: SubscriptionRow,
        at: DateTime<Utc>,
        limit: usize,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        // One client's creates take turns (on every replica), so the count stays true until
        // the insert commits.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('subscriptions:' || $1))")
            .bind(subscription.client_id.as_str())
            .execute(&mut *tx)
            .await?;
        let active: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM subscriptions WHERE client_id = $1 AND status = 'active'",
        )
        .bind(subscription.client_id.as_str())
        .fetch_one(&mut *tx)
        .await?;
        if rows::count(active) >= limit {
            return Ok(false);
        }
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO subscriptions ({SUBSCRIPTION_COLUMNS}, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        )))
        .bind(&subscription.id)
        .bind(subscription.client_id.as_str())
        .bind(&subscription.resource_type)
        .bind(&subscription.criteria)
        .bind(&subscription.endpoint)
        .bind(subscription.status.as_str())
        .bind(&subscription.content)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn subscriptions_for(
        &self,
        client: &ClientId,
        resource_type: &str,
    ) -> Result<Vec<SubscriptionRow>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions
             WHERE client_id = $1 AND resource_type = $2 AND status = 'active'"
        )))
        .bind(client.as_str())
        .bind(resource_type)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(rows::subscription)
        .collect()
    }

    async fn subscription(&self, id: &str) -> Result<Option<SubscriptionRow>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .map(|row| rows::subscription(&row))
        .transpose()
    }

    async fn delete_subscription(&self, client: &ClientId, id: &str) -> Result<bool, StoreError> {
        let changed = sqlx::query(
            "UPDATE subscriptions SET status = 'off'
             WHERE id = $1 AND client_id = $2 AND status <> 'off'",
        )
        .bind(id)
        .bind(client.as_str())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(changed == 1)
    }
}
