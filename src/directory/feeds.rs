//! Polling Open Referral UK APIs (`[[directory.feeds]]`): each feed's `/services?page=N` list
//! pages are read, a short list entry (one-to-one fields only, as the UK OpenAPI allows) is
//! completed from `/services/{id}`, every service is judged against the UK profile's schema as
//! the command-line import does, and the valid ones are stored as a full import of the feed
//! (services it no longer lists are withdrawn). The first page is asked for with the validators
//! of the last good poll (`If-None-Match`, `If-Modified-Since`): a `304` changes nothing.
//!
//! Every request goes through the webhooks' SSRF policy (`delivery::ssrf`: https only, names
//! resolved past the guard, no redirects, no ambient proxy) unless the feed opens it for a lab,
//! with a timeout per request and a bound on each body. Each poll's result is stored
//! (`DirectoryFeeds`) for the admin API and the next poll.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use reqwest::header::{ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use reqwest::StatusCode;
use serde_json::Value;

use super::catalog::{connected_identifiers, store_import, Catalog};
use super::import::{services_of, ImportReport, Origin, ServiceSchema};
use crate::config::{Config, FeedConfig, FeedId};
use crate::store::{FeedOutcome, FeedPoll, Store, StoreError};

/// The most faults kept in a poll's result (the first ones; the count says how many services).
const MAX_FAULTS: usize = 100;

/// Why polling cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum FeedSetupError {
    #[error("feed HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error(transparent)]
    Schema(#[from] super::import::ImportError),
}

/// What one poll read.
enum Fetched {
    NotModified,
    Changed {
        items: Vec<(Value, Origin)>,
        etag: Option<String>,
        last_modified: Option<String>,
    },
}

/// Why one poll read nothing usable; the feed is left as it was.
struct Failure {
    status: Option<u16>,
    reason: String,
}

impl Failure {
    fn new(status: Option<u16>, reason: impl Into<String>) -> Failure {
        Failure {
            status,
            reason: reason.into(),
        }
    }
}

/// One body read under the size bound.
struct Page {
    status: u16,
    body: Value,
    etag: Option<String>,
    last_modified: Option<String>,
}

/// The configured feeds, their HTTP clients and what a poll needs to import.
pub struct Feeds {
    store: Arc<dyn Store>,
    catalog: Arc<Catalog>,
    config: Arc<Config>,
    schema: ServiceSchema,
    guarded: reqwest::Client,
    open: reqwest::Client,
    /// One poll of a feed at a time (the poller's and an operator's).
    running: HashMap<FeedId, tokio::sync::Mutex<()>>,
}

impl Feeds {
    pub fn new(
        store: Arc<dyn Store>,
        catalog: Arc<Catalog>,
        config: Arc<Config>,
    ) -> Result<Feeds, FeedSetupError> {
        let running = config
            .directory
            .feeds
            .iter()
            .map(|f| (f.id.clone(), tokio::sync::Mutex::new(())))
            .collect();
        Ok(Feeds {
            schema: ServiceSchema::bundled()?,
            guarded: http_client(&config, true)?,
            open: http_client(&config, false)?,
            store,
            catalog,
            config,
            running,
        })
    }

    /// The configured feed with this id.
    pub fn feed(&self, id: &str) -> Option<&FeedConfig> {
        self.config
            .directory
            .feeds
            .iter()
            .find(|f| f.id.as_str() == id)
    }

    /// Each configured feed with its last poll (none before the first).
    pub async fn status(&self) -> Result<Vec<(FeedConfig, Option<FeedPoll>)>, StoreError> {
        let mut polls = self.store.feed_polls().await?;
        Ok(self
            .config
            .directory
            .feeds
            .iter()
            .map(|f| {
                let last = polls
                    .iter()
                    .position(|p| p.feed == f.id.as_str())
                    .map(|i| polls.swap_remove(i));
                (f.clone(), last)
            })
            .collect())
    }

    /// Polls one feed now (after any poll of it under way), stores the result and, when
    /// services were imported, rebuilds the search index.
    pub async fn refresh(&self, feed: &FeedConfig) -> Result<FeedPoll, StoreError> {
        let _one_at_a_time = match self.running.get(&feed.id) {
            Some(lock) => Some(lock.lock().await),
            None => None,
        };
        let previous = self
            .store
            .feed_polls()
            .await?
            .into_iter()
            .find(|p| p.feed == feed.id.as_str());
        // To the microsecond, as both databases keep it: the answer is what is stored.
        let now = Utc::now().trunc_subsecs(6);
        let next_poll_at = now + chrono::Duration::from_std(feed.interval).unwrap_or_default();
        let (etag, last_modified) = previous
            .as_ref()
            .map(|p| (p.etag.clone(), p.last_modified.clone()))
            .unwrap_or_default();
        let mut poll = FeedPoll {
            feed: feed.id.to_string(),
            polled_at: now,
            outcome: FeedOutcome::NotModified,
            http_status: None,
            imported: 0,
            skipped: 0,
            withdrawn: 0,
            faults: Vec::new(),
            etag,
            last_modified,
            next_poll_at,
        };
        match self.fetch(feed, &poll).await {
            Ok((status, Fetched::NotModified)) => poll.http_status = Some(status),
            Ok((status, changed)) => {
                poll.http_status = Some(status);
                if let Fetched::Changed {
                    items,
                    etag,
                    last_modified,
                } = changed
                {
                    self.import(feed, items, &mut poll).await?;
                    (poll.etag, poll.last_modified) = (etag, last_modified);
                }
            }
            Err(failure) => {
                tracing::warn!(feed = %feed.id, reason = %failure.reason, "feed poll failed");
                poll.outcome = FeedOutcome::Failed;
                poll.http_status = failure.status;
                poll.faults = vec![failure.reason];
            }
        }
        self.store.record_feed_poll(&poll).await?;
        Ok(poll)
    }

    /// Judges the items, stores the valid ones as a full import of the feed, and rebuilds the
    /// index.
    async fn import(
        &self,
        feed: &FeedConfig,
        items: Vec<(Value, Origin)>,
        poll: &mut FeedPoll,
    ) -> Result<(), StoreError> {
        let mut report = ImportReport::default();
        for (item, origin) in items {
            report.add(self.schema.check(item, origin));
        }
        let taxonomy = self.catalog.taxonomy();
        let connected = connected_identifiers(&self.config);
        let outcome = store_import(
            self.store.as_ref(),
            &report,
            feed.id.as_str(),
            true,
            taxonomy,
            &connected,
            poll.polled_at,
        )
        .await?;
        self.catalog.refresh(self.store.as_ref()).await?;
        poll.outcome = FeedOutcome::Imported;
        poll.imported = count(report.services.len());
        poll.skipped = count(report.invalid.len());
        poll.withdrawn = count(outcome.withdrawn);
        poll.faults = report
            .invalid
            .iter()
            .take(MAX_FAULTS)
            .map(|bad| bad.to_string())
            .collect();
        tracing::info!(feed = %feed.id, imported = poll.imported, skipped = poll.skipped,
                       withdrawn = poll.withdrawn, "feed imported");
        Ok(())
    }

    /// Reads every list page (the first one conditionally) and completes short entries.
    async fn fetch(&self, feed: &FeedConfig, last: &FeedPoll) -> Result<(u16, Fetched), Failure> {
        let client = if feed.allows_private_targets(&self.config.delivery) {
            &self.open
        } else {
            crate::delivery::ssrf::check_url(&feed.url, false)
                .map_err(|e| Failure::new(None, e.to_string()))?;
            &self.guarded
        };
        let limits = &self.config.directory.feed_limits;
        let first = match self.get(client, &list_url(feed, 1)?, Some(last)).await? {
            None => return Ok((StatusCode::NOT_MODIFIED.as_u16(), Fetched::NotModified)),
            Some(page) => page,
        };
        let (status, etag, last_modified) = (first.status, first.etag, first.last_modified);
        let pages = total_pages(&first.body);
        if pages > u64::from(limits.max_pages) {
            return Err(Failure::new(
                Some(status),
                format!(
                    "the feed has {pages} pages, more than directory.feed_limits.max_pages ({})",
                    limits.max_pages
                ),
            ));
        }
        let mut items = self.items(client, feed, first.body, 1).await?;
        for n in 2..=pages {
            let Some(page) = self.get(client, &list_url(feed, n)?, None).await? else {
                return Err(Failure::new(
                    Some(304),
                    format!("page {n}: 304 to a plain GET"),
                ));
            };
            let more = self.items(client, feed, page.body, n).await?;
            if more.is_empty() {
                break;
            }
            items.extend(more);
        }
        Ok((
            status,
            Fetched::Changed {
                items,
                etag,
                last_modified,
            },
        ))
    }

    /// A list page's services, each short one replaced by its full form.
    async fn items(
        &self,
        client: &reqwest::Client,
        feed: &FeedConfig,
        body: Value,
        n: u64,
    ) -> Result<Vec<(Value, Origin)>, Failure> {
        let source = list_url(feed, n)?.to_string();
        let listed =
            services_of(body, &source).map_err(|e| Failure::new(None, format!("page {n}: {e}")))?;
        let mut items = Vec::with_capacity(listed.len());
        for (item, origin) in listed {
            let full = match short_entry_id(&item) {
                Some(id) => {
                    let url = service_url(feed, &id)?;
                    match self.get(client, &url, None).await? {
                        Some(page) => (
                            page.body,
                            Origin {
                                source: url.to_string(),
                                index: None,
                            },
                        ),
                        None => {
                            return Err(Failure::new(
                                Some(304),
                                format!("{url}: 304 to a plain GET"),
                            ))
                        }
                    }
                }
                None => (item, origin),
            };
            items.push(full);
        }
        Ok(items)
    }

    /// One GET: `None` for `304 Not Modified`, the JSON body of a `2xx`, a failure otherwise.
    async fn get(
        &self,
        client: &reqwest::Client,
        url: &reqwest::Url,
        validators: Option<&FeedPoll>,
    ) -> Result<Option<Page>, Failure> {
        let mut request = client
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(last) = validators {
            if let Some(etag) = &last.etag {
                request = request.header(IF_NONE_MATCH, etag);
            }
            if let Some(modified) = &last.last_modified {
                request = request.header(IF_MODIFIED_SINCE, modified);
            }
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| Failure::new(None, format!("{url}: {}", transport_error(&e))))?;
        let status = response.status();
        let conditional = validators.is_some_and(|l| l.etag.is_some() || l.last_modified.is_some());
        if status == StatusCode::NOT_MODIFIED && conditional {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(Failure::new(
                Some(status.as_u16()),
                format!("{url}: HTTP {status}"),
            ));
        }
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        let (etag, last_modified) = (header(ETAG), header(LAST_MODIFIED));
        let max = self.config.directory.feed_limits.max_page_bytes;
        let fail = |reason: String| Failure::new(Some(status.as_u16()), format!("{url}: {reason}"));
        if response.content_length().is_some_and(|n| n > max as u64) {
            return Err(fail(format!("the body is over {max} bytes")));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| fail(transport_error(&e)))?
        {
            if bytes.len() + chunk.len() > max {
                return Err(fail(format!("the body is over {max} bytes")));
            }
            bytes.extend_from_slice(&chunk);
        }
        let body = serde_json::from_slice(&bytes).map_err(|e| fail(format!("not JSON: {e}")))?;
        Ok(Some(Page {
            status: status.as_u16(),
            body,
            etag,
            last_modified,
        }))
    }

    /// Polls `feed` for as long as the server runs: when its stored next poll is due (at once
    /// when never polled), then every interval.
    pub async fn run(self: Arc<Self>, feed: FeedConfig) {
        loop {
            let due = match self.store.feed_polls().await {
                Ok(polls) => polls
                    .into_iter()
                    .find(|p| p.feed == feed.id.as_str())
                    .map(|p| p.next_poll_at),
                Err(e) => {
                    tracing::warn!(feed = %feed.id, error = %e, "feed state unreadable");
                    Some(Utc::now() + chrono::Duration::from_std(feed.interval).unwrap_or_default())
                }
            };
            tokio::time::sleep(until(due, Utc::now())).await;
            if let Err(e) = self.refresh(&feed).await {
                tracing::warn!(feed = %feed.id, error = %e, "feed poll not stored");
                tokio::time::sleep(feed.interval).await;
            }
        }
    }
}

/// How long to wait for `due` (not at all when past or unknown).
fn until(due: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Duration {
    due.and_then(|d| (d - now).to_std().ok())
        .unwrap_or(Duration::ZERO)
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// `{url}/services?page=N`.
fn list_url(feed: &FeedConfig, page: u64) -> Result<reqwest::Url, Failure> {
    let mut url = with_segments(feed, &["services"])?;
    url.query_pairs_mut().append_pair("page", &page.to_string());
    Ok(url)
}

/// `{url}/services/{id}`.
fn service_url(feed: &FeedConfig, id: &str) -> Result<reqwest::Url, Failure> {
    with_segments(feed, &["services", id])
}

fn with_segments(feed: &FeedConfig, segments: &[&str]) -> Result<reqwest::Url, Failure> {
    let mut url = feed.url.clone();
    url.set_query(None);
    url.path_segments_mut()
        .map_err(|()| Failure::new(None, format!("{} cannot be a base URL", feed.url)))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// A list page's `total_pages` (1 when it does not say, as for a plain array).
fn total_pages(body: &Value) -> u64 {
    body.get("total_pages")
        .and_then(Value::as_u64)
        .unwrap_or(1)
        .max(1)
}

/// The id of a list entry that holds one-to-one fields only (no nested object or list: no
/// organisation, locations, areas, schedules or taxonomy terms), which `/services/{id}`
/// completes.
fn short_entry_id(item: &Value) -> Option<String> {
    let object = item.as_object()?;
    if object.values().any(|v| v.is_array() || v.is_object()) {
        return None;
    }
    object.get("id")?.as_str().map(str::to_string)
}

/// The cause chain of a transport error (refused, DNS, TLS, the SSRF guard, timeout).
fn transport_error(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        format!("timed out: {error}")
    } else {
        error.to_string()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// The feed client: the feed timeout, and the webhooks' SSRF policy (`guard`).
fn http_client(config: &Config, guard: bool) -> Result<reqwest::Client, reqwest::Error> {
    let timeout = config.directory.feed_limits.timeout;
    crate::delivery::ssrf::http_client(timeout, guard, config.delivery.proxy.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn feed(url: &str) -> FeedConfig {
        FeedConfig {
            id: "council".parse().expect("id"),
            url: url.parse().expect("url"),
            interval: Duration::from_secs(60),
            allow_private_targets: None,
        }
    }

    #[test]
    fn pages_and_services_are_under_the_base_url() {
        let f = feed("https://dir.example.org/api/");
        let url = list_url(&f, 2).ok().expect("url");
        assert_eq!(url.as_str(), "https://dir.example.org/api/services?page=2");
        let f = feed("https://dir.example.org/api");
        let url = service_url(&f, "a b").ok().expect("url");
        assert_eq!(url.as_str(), "https://dir.example.org/api/services/a%20b");
    }

    #[test]
    fn short_entries_are_those_without_nested_fields() {
        let short = json!({"id": "s1", "name": "Lunch club", "status": "active"});
        assert_eq!(short_entry_id(&short).as_deref(), Some("s1"));
        let full = json!({"id": "s1", "name": "Lunch club", "service_areas": []});
        assert_eq!(short_entry_id(&full), None);
        assert_eq!(short_entry_id(&json!({"name": "no id"})), None);
    }

    #[test]
    fn total_pages_defaults_to_one() {
        assert_eq!(total_pages(&json!({"total_pages": 3, "contents": []})), 3);
        assert_eq!(total_pages(&json!({"total_pages": 0})), 1);
        assert_eq!(total_pages(&json!([])), 1);
    }

    #[test]
    fn a_due_time_in_the_past_is_now() {
        let now = Utc::now();
        assert_eq!(until(None, now), Duration::ZERO);
        assert_eq!(
            until(Some(now - chrono::Duration::seconds(5)), now),
            Duration::ZERO
        );
        assert_eq!(
            until(Some(now + chrono::Duration::seconds(5)), now),
            Duration::from_secs(5)
        );
    }
}
