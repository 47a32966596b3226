//! The directory's polled feeds in PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::PostgresStore;
use crate::store::feeds::{
    feed_poll, service_referral, FeedPoll, ServiceReferral, FEED_POLL_COLUMNS, FEED_POLL_UPDATE,
};
use crate::store::traits::DirectoryFeeds;
use crate::store::StoreError;

/// A count in an `INTEGER` column (a feed holds far fewer than 2^31 services).
fn column(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[async_trait]
impl DirectoryFeeds for PostgresStore {
    async fn feed_polls(&self) -> Result<Vec<FeedPoll>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {FEED_POLL_COLUMNS} FROM directory_feeds ORDER BY feed"
        )))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(feed_poll)
        .collect()
    }

    async fn record_feed_poll(&self, poll: &FeedPoll) -> Result<(), StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO directory_feeds ({FEED_POLL_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) {FEED_POLL_UPDATE}"
        )))
        .bind(&poll.feed)
        .bind(poll.polled_at)
        .bind(poll.outcome.as_str())
        .bind(poll.http_status.map(i32::from))
        .bind(column(poll.imported))
        .bind(column(poll.skipped))
        .bind(column(poll.withdrawn))
        .bind(poll.faults_json())
        .bind(&poll.etag)
        .bind(&poll.last_modified)
        .bind(poll.next_poll_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn service_referrals(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<ServiceReferral>, StoreError> {
        sqlx::query(
            "SELECT r.record::jsonb -> 'service' ->> 'id', r.created_at,
                 (SELECT MIN(t.last_updated) FROM resources t
                  WHERE t.resource_type = 'Task' AND t.referral_id = r.id
                    AND t.content::jsonb ->> 'status' IN ('accepted', 'rejected')),
                 (EXISTS (SELECT 1 FROM resources t
                  WHERE t.resource_type = 'Task' AND t.referral_id = r.id
                    AND t.content::jsonb ->> 'status' = 'accepted'))::int::bigint
             FROM referrals r
             WHERE r.created_at >= $1 AND r.record::jsonb -> 'service' ->> 'id' IS NOT NULL",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(service_referral)
        .collect()
    }
}
