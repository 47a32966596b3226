//! The directory's polled feeds in SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::params;

use super::SqliteStore;
use crate::store::feeds::{
    feed_poll, service_referral, FeedPoll, ServiceReferral, FEED_POLL_COLUMNS, FEED_POLL_UPDATE,
};
use crate::store::traits::DirectoryFeeds;
use crate::store::{timestamp, StoreError};

#[async_trait]
impl DirectoryFeeds for SqliteStore {
    async fn feed_polls(&self) -> Result<Vec<FeedPoll>, StoreError> {
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {FEED_POLL_COLUMNS} FROM directory_feeds ORDER BY feed"
            ))?
            .query_and_then([], |row| feed_poll(row))?
            .collect()
        })
        .await
    }

    async fn record_feed_poll(&self, poll: &FeedPoll) -> Result<(), StoreError> {
        let poll = poll.clone();
        self.write(move |conn| {
            conn.prepare_cached(&format!(
                "INSERT INTO directory_feeds ({FEED_POLL_COLUMNS})
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) {FEED_POLL_UPDATE}"
            ))?
            .execute(params![
                poll.feed,
                timestamp(poll.polled_at),
                poll.outcome.as_str(),
                poll.http_status,
                poll.imported,
                poll.skipped,
                poll.withdrawn,
                poll.faults_json(),
                poll.etag,
                poll.last_modified,
                timestamp(poll.next_poll_at),
            ])?;
            Ok(())
        })
        .await
    }

    async fn service_referrals(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<ServiceReferral>, StoreError> {
        let since = timestamp(since);
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT json_extract(r.record, '$.service.id'), r.created_at,
                     (SELECT MIN(t.last_updated) FROM resources t
                      WHERE t.resource_type = 'Task' AND t.referral_id = r.id
                        AND json_extract(t.content, '$.status') IN ('accepted', 'rejected')),
                     EXISTS (SELECT 1 FROM resources t
                      WHERE t.resource_type = 'Task' AND t.referral_id = r.id
                        AND json_extract(t.content, '$.status') = 'accepted')
                 FROM referrals r
                 WHERE r.created_at >= ?1 AND json_extract(r.record, '$.service.id') IS NOT NULL",
            )?
            .query_and_then(params![since], |row| service_referral(row))?
            .collect()
        })
        .await
    }
}
