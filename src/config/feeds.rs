//! `[[directory.feeds]]`: Open Referral UK APIs the gateway polls for its service directory.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use super::{invalid, ConfigError, DeliveryConfig};

/// A feed's name: what its services are stored under and what the admin API calls it.
/// Letters, digits, `-` and `_`, 1 to 64 of them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FeedId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a feed id is 1 to 64 letters, digits, '-' or '_'; got {0:?}")]
pub struct BadFeedId(String);

impl TryFrom<String> for FeedId {
    type Error = BadFeedId;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        let ok = (1..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(FeedId(s))
        } else {
            Err(BadFeedId(s))
        }
    }
}

impl std::str::FromStr for FeedId {
    type Err = BadFeedId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FeedId::try_from(s.to_string())
    }
}

impl From<FeedId> for String {
    fn from(id: FeedId) -> String {
        id.0
    }
}

impl FeedId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FeedId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One polled feed: the base URL of an Open Referral UK API (`{url}/services?page=N` is read),
/// and how often.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedConfig {
    pub id: FeedId,
    /// The API's base URL, e.g. `https://directory.example.org/api` (not `…/services`).
    pub url: url::Url,
    /// Time between polls (`1h`, `30m`); at least a second.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// The feed may be fetched over plain http and from loopback and private addresses (tests
    /// and labs); unset, `[delivery] allow_private_targets`.
    #[serde(default)]
    pub allow_private_targets: Option<bool>,
}

impl FeedConfig {
    /// Whether the SSRF guard is open for this feed.
    pub fn allows_private_targets(&self, delivery: &DeliveryConfig) -> bool {
        self.allow_private_targets
            .unwrap_or(delivery.allow_private_targets)
    }
}

/// The limits every feed is fetched under.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeedLimits {
    /// Whole-request timeout of one page.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// The largest page body read; a larger one fails the poll.
    pub max_page_bytes: usize,
    /// The most pages one poll reads; a feed with more fails the poll.
    pub max_pages: u32,
}

impl Default for FeedLimits {
    fn default() -> Self {
        FeedLimits {
            timeout: Duration::from_secs(30),
            max_page_bytes: 8 * 1024 * 1024,
            max_pages: 500,
        }
    }
}

/// Unique ids, an interval of at least a second, http(s) URLs, usable limits.
pub(super) fn check_feeds(feeds: &[FeedConfig], limits: &FeedLimits) -> Result<(), ConfigError> {
    let mut ids = HashSet::new();
    for (i, feed) in feeds.iter().enumerate() {
        if !ids.insert(&feed.id) {
            return Err(invalid(
                format!("directory.feeds[{i}].id"),
                "duplicate feed id",
            ));
        }
        if feed.interval < Duration::from_secs(1) {
            return Err(invalid(
                format!("directory.feeds[{i}].interval"),
                "must be at least 1s",
            ));
        }
        if !matches!(feed.url.scheme(), "http" | "https") {
            return Err(invalid(
                format!("directory.feeds[{i}].url"),
                "only http and https feed URLs",
            ));
        }
    }
    if limits.timeout.is_zero() {
        return Err(invalid(
            "directory.feed_limits.timeout".into(),
            "must be above 0",
        ));
    }
    if limits.max_page_bytes == 0 || limits.max_pages == 0 {
        return Err(invalid(
            "directory.feed_limits".into(),
            "max_page_bytes and max_pages must be above 0",
        ));
    }
    Ok(())
}
