//! Polling: the front door for APIs that cannot push. A route with `[routes.poll]` is not
//! posted to; the router GETs its URL every `every`, takes the array of items at `items`,
//! and journals each item whose `id` it has not seen within the route's dedup window as an
//! event, which then runs through the route's plugins and destinations like any webhook.
//!
//! State lives in the store, in the kv space (names with `/`, which plugins cannot use): the
//! largest `cursor` value seen, offered to the next poll as `{{ cursor }}`
//! ([`POLL_CURSORS`]), and a lease naming the node that polls a source ([`POLL_LEASES`]), so
//! with several nodes on one PostgreSQL exactly one polls it at a time and another takes over
//! when that node stops renewing. Seen ids are the events' dedup keys. A poll that fails
//! keeps its cursor and backs off; `429` and `503` with `Retry-After` are honoured.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use tokio::task::JoinSet;

use crate::config::PollConfig;
use crate::destinations::auth::Auth;
use crate::egress::EgressPolicy;
use crate::live::Live;
use crate::shutdown::Shutdown;
use crate::store::{NewEvent, Store, new_id, now_ms};
use crate::telemetry::Metrics;

/// The kv space holding each polled route's cursor, keyed by route name.
pub const POLL_CURSORS: &str = "hookyard/poll-cursors";
/// The kv space holding each polled route's lease: the id of the node that polls it.
pub const POLL_LEASES: &str = "hookyard/poll-leases";

/// The longest a failing or rate-limited source waits between polls.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// The shortest lease: a node must miss several polls before another takes the source.
const MIN_LEASE: Duration = Duration::from_secs(10);
/// How often the poller looks for due sources.
const TICK: Duration = Duration::from_millis(50);

/// One item a poll found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    /// The item's id (at `id`), which dedup remembers.
    pub id: String,
    /// Its event type (at `event_type`), if configured and present.
    pub event_type: Option<String>,
    /// The item itself: the event's body.
    pub body: serde_json::Value,
}

/// What one poll found, over every page it followed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Found {
    /// The items, in the order the API listed them.
    pub items: Vec<Item>,
    /// The largest `cursor` value among them and the previous cursor.
    pub cursor: Option<String>,
    /// Pages fetched.
    pub pages: u32,
}

/// Why a poll found nothing.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PollError {
    /// `429` or `503`: the API asks to wait (`Retry-After`, if it said).
    #[error("the API answered {status}; retry after {after:?}")]
    Busy {
        /// The status.
        status: u16,
        /// Its `Retry-After`.
        after: Option<Duration>,
    },
    /// Anything else: an error answer, a transport failure, an unusable body.
    #[error("{0}")]
    Failed(String),
}

/// Replaces `{{ cursor }}`; `None` when the value uses it and there is no cursor yet.
fn fill(template: &str, cursor: Option<&str>) -> Option<String> {
    let uses = template.contains("{{ cursor }}") || template.contains("{{cursor}}");
    match (uses, cursor) {
        (false, _) => Some(template.to_string()),
        (true, None) => None,
        (true, Some(c)) => Some(template.replace("{{ cursor }}", c).replace("{{cursor}}", c)),
    }
}

/// The value at `pointer` in `doc` as text: strings as they are, numbers as written.
fn text_at(doc: &serde_json::Value, pointer: &str) -> Option<String> {
    match doc.pointer(pointer)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Whether cursor value `a` is later than `b`: as numbers when both are, else as text
/// (RFC 3339 timestamps and zero-padded ids order as text).
fn later(a: &str, b: &str) -> bool {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x > y,
        _ => a > b,
    }
}

/// A source, ready to poll: its config, URL and authentication.
pub struct Source {
    config: Arc<PollConfig>,
    url: reqwest::Url,
    auth: Option<Auth>,
}

impl Source {
    /// From a route's `poll` table (already checked by the config).
    pub fn new(config: Arc<PollConfig>) -> Result<Source, String> {
        let url = reqwest::Url::parse(config.url.expose()).map_err(|e| format!("poll.url: {e}"))?;
        let auth = config
            .auth
            .as_ref()
            .map(Auth::new)
            .transpose()
            .map_err(|e| format!("poll.auth: {e}"))?;
        Ok(Source { config, url, auth })
    }

    /// Polls once, following `next` up to `max_pages` pages, from `cursor`.
    pub async fn fetch(
        &self,
        client: &reqwest::Client,
        egress: &EgressPolicy,
        cursor: Option<&str>,
        node: &str,
    ) -> Result<Found, PollError> {
        let c = &self.config;
        let mut url = self.url.clone();
        {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in &c.query {
                if let Some(v) = fill(v, cursor) {
                    pairs.append_pair(k, &v);
                }
            }
        }
        let mut found = Found {
            items: Vec::new(),
            cursor: cursor.map(str::to_string),
            pages: 0,
        };
        let mut next = Some(url);
        while let Some(url) = next.take() {
            if found.pages == c.max_pages {
                break;
            }
            let doc = self.get(client, egress, url, node).await?;
            found.pages += 1;
            let list = doc
                .pointer(&c.items)
                .and_then(|v| v.as_array())
                .ok_or_else(|| {
                    PollError::Failed(format!("no array at items {:?} in the response", c.items))
                })?;
            for item in list {
                let Some(id) = text_at(item, &c.id).filter(|id| !id.is_empty() && id.len() <= 200)
                else {
                    tracing::warn!(pointer = %c.id, "a polled item has no usable id; skipped");
                    continue;
                };
                if let Some(value) = c.cursor.as_deref().and_then(|p| text_at(item, p))
                    && found.cursor.as_deref().is_none_or(|cur| later(&value, cur))
                {
                    found.cursor = Some(value);
                }
                found.items.push(Item {
                    id,
                    event_type: c.event_type.as_deref().and_then(|p| text_at(item, p)),
                    body: item.clone(),
                });
            }
            next = match c.next.as_deref().and_then(|p| text_at(&doc, p)) {
                None => None,
                Some(link) => {
                    let link = self
                        .url
                        .join(&link)
                        .map_err(|e| PollError::Failed(format!("next page URL: {e}")))?;
                    if link.origin() != self.url.origin() {
                        return Err(PollError::Failed(format!(
                            "the next page is on another host ({}); only the source's own host is followed",
                            link.host_str().unwrap_or("?")
                        )));
                    }
                    Some(link)
                }
            };
        }
        Ok(found)
    }

    async fn get(
        &self,
        client: &reqwest::Client,
        egress: &EgressPolicy,
        mut url: reqwest::Url,
        node: &str,
    ) -> Result<serde_json::Value, PollError> {
        egress
            .check_url(&url)
            .map_err(|e| PollError::Failed(e.to_string()))?;
        if let Some(Auth::Query(name, value)) = &self.auth {
            url.query_pairs_mut().append_pair(name, value.expose());
        }
        let mut req = client
            .get(url)
            .timeout(self.config.timeout.0)
            .header("accept", "application/json")
            // Which router node polled, for the API's logs (one node polls a source at a time).
            .header("hookyard-poller", node);
        match &self.auth {
            Some(Auth::Authorization(v)) => req = req.header("authorization", v.clone()),
            Some(Auth::Header(n, v)) => req = req.header(n.clone(), v.clone()),
            Some(Auth::OAuth2(o)) => {
                let token = o
                    .token(client, false)
                    .await
                    .map_err(|e| PollError::Failed(format!("oauth2: {e}")))?;
                req = req.bearer_auth(token);
            }
            Some(Auth::Query(..)) | None => {}
        }
        let mut resp = req
            .send()
            .await
            .map_err(|e| PollError::Failed(crate::destinations::transport::describe(&e)))?;
        let status = resp.status().as_u16();
        if status == 429 || status == 503 {
            let after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| crate::destinations::http::parse_retry_after(v, SystemTime::now()));
            return Err(PollError::Busy { status, after });
        }
        if !resp.status().is_success() {
            return Err(PollError::Failed(format!("the API answered {status}")));
        }
        let limit = self.config.max_response.0 as usize;
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| PollError::Failed(crate::destinations::transport::describe(&e)))?
        {
            if body.len() + chunk.len() > limit {
                return Err(PollError::Failed(format!(
                    "the response is larger than poll.max_response ({limit} bytes)"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body)
            .map_err(|e| PollError::Failed(format!("the response is not JSON: {e}")))
    }
}

/// How polling went lately, per route, on this node: what the admin API and UI show.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PollStatus {
    /// When the last poll ended (ms since the epoch), if one has.
    pub last_at: Option<crate::store::Millis>,
    /// Its outcome: `"N new"`, `"another node polls"`, or why it failed.
    pub last: Option<String>,
    /// Polls in a row that failed or were asked to wait.
    pub failures: u32,
    /// When the next poll is due (ms since the epoch).
    pub next_at: Option<crate::store::Millis>,
    /// Items journaled by this node's polls since it started.
    pub items: u64,
}

/// Every polled route's [`PollStatus`] on this node, shared with the admin API.
pub type PollBoard = Arc<std::sync::Mutex<std::collections::BTreeMap<String, PollStatus>>>;

/// Each polled route's schedule on this node.
struct Schedule {
    /// The config it was built from: a reload that changes it starts afresh.
    config: Arc<PollConfig>,
    source: Arc<Source>,
    next_at: Instant,
    failures: u32,
    running: bool,
}

/// Polls every polled route of the running version until `shutdown`, journaling new items
/// and waking the dispatcher (`wake`) when it did.
pub async fn run(
    store: Arc<dyn Store>,
    live: Arc<Live>,
    wake: Arc<tokio::sync::Notify>,
    metrics: Arc<Metrics>,
    board: PollBoard,
    alerter: crate::alerts::Alerter,
    mut shutdown: Shutdown,
) {
    let node = new_id("node");
    tracing::info!(%node, "polling sources as this node");
    let mut schedules: HashMap<String, Schedule> = HashMap::new();
    let mut polls: JoinSet<(String, Result<Polled, PollError>)> = JoinSet::new();
    loop {
        let snapshot = live.get();
        schedules.retain(|name, s| {
            snapshot
                .routes
                .get(name)
                .and_then(|r| r.poll.as_ref())
                .is_some_and(|c| Arc::ptr_eq(c, &s.config))
        });
        if let Ok(mut b) = board.lock() {
            b.retain(|name, _| snapshot.routes.get(name).is_some_and(|r| r.poll.is_some()));
        }
        for (name, route) in &snapshot.routes {
            let Some(config) = &route.poll else { continue };
            if schedules.contains_key(name) {
                continue;
            }
            match Source::new(config.clone()) {
                Ok(source) => {
                    schedules.insert(
                        name.clone(),
                        Schedule {
                            config: config.clone(),
                            source: Arc::new(source),
                            next_at: Instant::now(),
                            failures: 0,
                            running: false,
                        },
                    );
                }
                Err(e) => tracing::error!(route = %name, error = %e, "cannot poll"),
            }
        }
        let now = Instant::now();
        for (name, s) in schedules.iter_mut() {
            if s.running || s.next_at > now {
                continue;
            }
            s.running = true;
            let job = PollJob {
                route: name.clone(),
                source: s.source.clone(),
                store: store.clone(),
                client: snapshot.client.clone(),
                egress: snapshot.egress.clone(),
                window: snapshot
                    .routes
                    .get(name)
                    .map_or(Duration::ZERO, |r| r.dedup.window),
                node: node.clone(),
                every: s.config.every.0,
            };
            polls.spawn(async move {
                let route = job.route.clone();
                (route, job.poll().await)
            });
        }
        tokio::select! {
            _ = shutdown.wait() => break,
            Some(done) = polls.join_next(), if !polls.is_empty() => {
                let Ok((name, result)) = done else { continue };
                let Some(s) = schedules.get_mut(&name) else { continue };
                s.running = false;
                let every = s.config.every.0;
                let outcome = match &result {
                    Ok(Polled::Skipped) => "skipped",
                    Ok(Polled::Journaled(_)) => "ok",
                    Err(PollError::Busy { .. }) => "busy",
                    Err(PollError::Failed(_)) => "failed",
                };
                metrics.inc("hookyard_polls_total", &[("route", name.as_str()), ("result", outcome)]);
                let said = match &result {
                    Ok(Polled::Skipped) => "another node polls".to_string(),
                    Ok(Polled::Journaled(n)) => format!("{n} new"),
                    Err(e) => e.to_string(),
                };
                let journaled = match &result {
                    Ok(Polled::Journaled(n)) => *n as u64,
                    _ => 0,
                };
                let wait = match result {
                    Ok(polled) => {
                        let new = match polled {
                            Polled::Journaled(n) => n,
                            Polled::Skipped => 0,
                        };
                        s.failures = 0;
                        if new > 0 {
                            metrics.add("hookyard_polled_items_total", &[("route", name.as_str())], new as u64);
                            wake.notify_one();
                        }
                        every
                    }
                    Err(PollError::Busy { status, after }) => {
                        s.failures += 1;
                        let wait = after.unwrap_or_else(|| backoff(every, s.failures)).min(MAX_BACKOFF).max(every);
                        tracing::warn!(route = %name, status, wait = ?wait, "the polled API asks to wait");
                        wait
                    }
                    Err(PollError::Failed(e)) => {
                        s.failures += 1;
                        let wait = backoff(every, s.failures);
                        tracing::warn!(route = %name, error = %e, wait = ?wait, "poll failed; the cursor is kept");
                        wait
                    }
                };
                s.next_at = Instant::now() + wait;
                alerter.raise(crate::alerts::Signal::Polled {
                    route: name.clone(),
                    failed: (s.failures > 0).then(|| said.clone()),
                    in_a_row: s.failures,
                });
                if let Ok(mut b) = board.lock() {
                    let status = b.entry(name.clone()).or_default();
                    status.last_at = Some(now_ms());
                    status.last = Some(said);
                    status.failures = s.failures;
                    status.next_at = Some(now_ms() + wait.as_millis() as i64);
                    status.items += journaled;
                }
            }
            _ = tokio::time::sleep(TICK) => {}
        }
    }
    polls.abort_all();
}

/// `every`, doubled per failure in a row, at most [`MAX_BACKOFF`].
fn backoff(every: Duration, failures: u32) -> Duration {
    every
        .saturating_mul(1u32 << failures.min(16))
        .min(MAX_BACKOFF)
}

/// What a poll did.
enum Polled {
    /// Another node holds the source's lease.
    Skipped,
    /// Polled; this many items were new.
    Journaled(usize),
}

/// One poll of one route.
struct PollJob {
    route: String,
    source: Arc<Source>,
    store: Arc<dyn Store>,
    client: reqwest::Client,
    egress: Arc<EgressPolicy>,
    window: Duration,
    node: String,
    every: Duration,
}

impl PollJob {
    /// Polls if this node holds (or takes) the route's lease; journals the new items and
    /// then moves the cursor. How many items were new.
    async fn poll(self) -> Result<Polled, PollError> {
        let failed = |e: crate::store::StoreError| PollError::Failed(format!("store: {e}"));
        if !self.lease().await.map_err(failed)? {
            return Ok(Polled::Skipped);
        }
        let cursor = self
            .store
            .kv_get(POLL_CURSORS, &self.route)
            .await
            .map_err(failed)?
            .map(|c| String::from_utf8_lossy(&c).into_owned());
        let found = self
            .source
            .fetch(&self.client, &self.egress, cursor.as_deref(), &self.node)
            .await?;
        let mut new = 0;
        for item in found.items {
            // Each polled item starts its own trace, as a webhook's request does.
            let span = tracing::info_span!(
                target: crate::trace::TARGET,
                "poll",
                hookyard.route = %self.route,
            );
            let event = NewEvent {
                traceparent: crate::trace::traceparent(&span),
                id: new_id("evt"),
                route: self.route.clone(),
                received_at: now_ms(),
                headers: vec![("content-type".into(), "application/json".into())],
                event_type: item.event_type,
                dedup_key: Some(format!("{}:{}", self.route, item.id)),
                body: serde_json::to_vec(&item.body).unwrap_or_default(),
            };
            // Unleased: the dispatcher of any node claims it.
            match self
                .store
                .append_event(event, Duration::ZERO, self.window)
                .await
                .map_err(failed)?
            {
                crate::store::Appended::Stored => new += 1,
                crate::store::Appended::Duplicate { .. } => {}
            }
        }
        // Only once every item is journaled: a poll that fails midway keeps the old cursor.
        if found.cursor != cursor
            && let Some(c) = found.cursor
        {
            self.store
                .kv_set(POLL_CURSORS, &self.route, c.into_bytes(), None)
                .await
                .map_err(failed)?;
        }
        tracing::info!(route = %self.route, pages = found.pages, new, "polled");
        Ok(Polled::Journaled(new))
    }

    /// Whether this node polls the route now: it takes the lease when nobody holds it (or it
    /// lapsed) and renews it when it is its own.
    async fn lease(&self) -> Result<bool, crate::store::StoreError> {
        let until = now_ms() + (self.every * 3).max(MIN_LEASE).as_millis() as i64;
        let me = self.node.as_bytes().to_vec();
        if self
            .store
            .kv_set_if_absent(POLL_LEASES, &self.route, me.clone(), Some(until))
            .await?
        {
            return Ok(true);
        }
        match self.store.kv_get(POLL_LEASES, &self.route).await? {
            Some(holder) if holder == me => {
                self.store
                    .kv_set(POLL_LEASES, &self.route, me, Some(until))
                    .await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_parameter_waits_for_a_cursor() {
        assert_eq!(fill("{{ cursor }}", None), None);
        assert_eq!(
            fill("since:{{cursor}}", Some("5")).as_deref(),
            Some("since:5")
        );
        assert_eq!(fill("50", None).as_deref(), Some("50"));
    }

    #[test]
    fn cursors_compare_as_numbers_or_as_text() {
        assert!(later("10", "9"));
        assert!(later("2024-05-02T00:00:00Z", "2024-05-01T23:59:59Z"));
        assert!(!later("2024-05-01T00:00:00Z", "2024-05-01T00:00:00Z"));
    }

    #[test]
    fn backoff_doubles_and_stops_at_an_hour() {
        let s = Duration::from_secs(30);
        assert_eq!(backoff(s, 1), Duration::from_secs(60));
        assert_eq!(backoff(s, 3), Duration::from_secs(240));
        assert_eq!(backoff(s, 30), MAX_BACKOFF);
    }
}
