//! The operator API's view of the service directory's polled feeds (`/admin/v1/directory/feeds`):
//! each feed's last poll (when, the HTTP status, services imported, skipped and withdrawn, the
//! faults, the next poll), and a poll of one feed now.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::errors::Problem;
use super::extract::Operator;
use super::json::json_result;
use super::AppState;
use crate::config::FeedConfig;
use crate::store::FeedPoll;

fn feed_json(feed: &FeedConfig, last: Option<&FeedPoll>) -> Value {
    json!({
        "id": feed.id,
        "url": feed.url.as_str(),
        "interval_seconds": feed.interval.as_secs(),
        "last_poll": last,
        "next_poll_at": last.map(|p| p.next_poll_at),
    })
}

/// Every configured feed with its last poll (`null` before the first).
pub async fn list_feeds(_: Operator, state: web::Data<AppState>) -> HttpResponse {
    json_result(
        async {
            let items: Vec<Value> = state
                .feeds
                .status()
                .await?
                .iter()
                .map(|(feed, last)| feed_json(feed, last.as_ref()))
                .collect();
            Ok((StatusCode::OK, json!({"items": items})))
        }
        .await,
    )
}

/// Polls one feed now and answers its result (a failed poll is a result too: `200` with
/// `outcome: failed`).
pub async fn refresh_feed(
    _: Operator,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> HttpResponse {
    json_result(
        async {
            let feed = state.feeds.feed(&path).cloned().ok_or_else(|| {
                Problem::NotFound(format!(
                    "There is no feed {:?} in [[directory.feeds]].",
                    path.as_str()
                ))
            })?;
            let poll = state.feeds.refresh(&feed).await?;
            Ok((StatusCode::OK, feed_json(&feed, Some(&poll))))
        }
        .await,
    )
}
