//! The admin API on `admin_listen`: inspect events, deliveries and attempts; retry, replay
//! and resume. Every request needs `Authorization: Bearer <admin_token>` (unless the config
//! serves it without a token on loopback). Secrets never appear in its answers.
//!
//! | method and path | what it does |
//! | --- | --- |
//! | `GET /admin/events?route=&status=&since=&until=&limit=&before=` | lists events, newest first |
//! | `GET /admin/events/{id}` | one event with its body, deliveries and attempts |
//! | `POST /admin/events/{id}/replay` | runs the event through its plugins again |
//! | `GET /admin/deliveries?status=&route=&destination=&since=&until=&limit=&before=` | lists deliveries, newest first |
//! | `GET /admin/deliveries/{id}` | one delivery with its attempts |
//! | `POST /admin/deliveries/{id}/retry` | attempts it again now, with a fresh retry budget |
//! | `POST /admin/replay` | bulk: re-queues matching deliveries, or re-runs matching events' plugins |
//! | `GET /admin/destinations` | destinations, and which are paused |
//! | `POST /admin/destinations/{name}/resume` | resumes a paused destination |
//! | `GET /admin/metrics` | counters and gauges in the Prometheus text format |
//!
//! The same listener serves the UI for people at `/ui` ([`ui`]).

mod console;
mod page;
pub mod ui;
mod views;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tokio::sync::Notify;

use crate::config::Secret;
use crate::store::{
    DeliveryFilter, DeliveryStatus, EventFilter, EventStatus, LEARNED_SECRETS, Millis, Store,
    StoreError, now_ms,
};
pub use views::{AttemptView, DeliveryView, EventDetail, EventView, Page};

/// What the admin handlers share.
pub struct Admin {
    /// The journal.
    pub store: Arc<dyn Store>,
    /// The admin listener's address (for the `Host` check on loopback; see
    /// [`guard_host_and_origin`]).
    pub listen: Option<SocketAddr>,
    /// The running version: destination names, and the admin token (see [`Admin::token`]).
    pub live: Arc<crate::live::Live>,
    /// Wakes the delivery worker after a retry or resume.
    pub delivery_wake: Arc<Notify>,
    /// The router's counters.
    pub metrics: Arc<crate::telemetry::Metrics>,
    /// How this node's polls of polled routes went.
    pub polls: crate::poll::PollBoard,
    /// Where a resume is reported for alerts.
    pub alerter: crate::alerts::Alerter,
    /// The alert conditions open on this node.
    pub alerts: crate::alerts::Board,
    /// This node's per-minute activity, for the charts.
    pub activity: crate::activity::Activity,
}

impl Admin {
    /// The token every request must carry, from the running version: a reload that changes
    /// `admin_token` takes effect at the next request (and ends UI sessions, derived from it).
    pub fn token(&self) -> Option<Secret> {
        self.live.get().admin_token.clone()
    }
}

/// Largest page a listing returns.
const MAX_LIMIT: usize = 1000;

/// The admin HTTP app: the JSON API under `/admin` (bearer token) and the UI under `/ui`
/// (session cookie; see [`ui`]).
pub fn router(admin: Arc<Admin>) -> Router {
    api(admin.clone())
        .merge(ui::router(admin.clone()))
        .layer(middleware::from_fn_with_state(admin, guard_host_and_origin))
}

/// Refuses what a hostile web page in the operator's browser could send, token or not:
///
/// - on a loopback listener, a `Host` that is not this listener's own address: a DNS
///   rebinding page reaches `127.0.0.1` under its own name, and could otherwise read the
///   journal of a router served without a token;
/// - a state-changing request (`POST` and other unsafe methods) whose `Origin` is another
///   site: a form or `fetch` from any page could otherwise replay, retry or resume.
async fn guard_host_and_origin(
    State(admin): State<Arc<Admin>>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    let ui = request.uri().path().starts_with("/ui");
    let refuse = |reason: &str| match ui {
        true => page::page_response(
            StatusCode::FORBIDDEN,
            "Refused",
            &format!("<p>{reason}</p>"),
        ),
        false => error(StatusCode::FORBIDDEN, reason),
    };
    if let Some(listen) = admin.listen
        && listen.ip().is_loopback()
        && !names_loopback_listener(headers, listen)
    {
        return refuse("The Host header does not name this admin listener.");
    }
    if !request.method().is_safe() && cross_origin(headers) {
        return refuse("This action came from another site and was refused.");
    }
    next.run(request).await
}

/// Whether `Host` is one of the names of loopback listener `listen`.
fn names_loopback_listener(headers: &header::HeaderMap, listen: SocketAddr) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let host = host.to_ascii_lowercase();
    let port = listen.port();
    let mut names = vec![
        listen.to_string(),
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
    ];
    if port == 80 {
        names.extend(["localhost".into(), "127.0.0.1".into(), "[::1]".into()]);
    }
    names.contains(&host)
}

/// Whether the browser says this request comes from a page of another origin. Browsers
/// that send `Sec-Fetch-Site` say so there; an `Origin` of `null` (sent for privacy, e.g.
/// under some referrer policies) is trusted only with `Sec-Fetch-Site: same-origin`.
fn cross_origin(headers: &header::HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        // `none`: the operator typed the address or used a bookmark.
        return !matches!(site, "same-origin" | "none");
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    origin != format!("http://{host}") && origin != format!("https://{host}")
}

fn api(admin: Arc<Admin>) -> Router {
    Router::new()
        .route("/admin/events", get(list_events))
        .route("/admin/events/{id}", get(show_event))
        .route("/admin/events/{id}/replay", post(replay_event))
        .route("/admin/deliveries", get(list_deliveries))
        .route("/admin/deliveries/{id}", get(show_delivery))
        .route("/admin/deliveries/{id}/retry", post(retry_delivery))
        .route("/admin/replay", post(bulk_replay))
        .route("/admin/destinations", get(list_destinations))
        .route(
            "/admin/destinations/{name}/resume",
            post(resume_destination),
        )
        .route(
            "/admin/routes/{route}/secret",
            get(show_learned_secret).delete(forget_learned_secret),
        )
        .route("/admin/polls", get(list_polls))
        .route("/admin/alerts", get(list_alerts))
        .route("/admin/shadow", get(list_shadow))
        .route("/admin/metrics", get(metrics))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not found") })
        .layer(middleware::from_fn_with_state(admin.clone(), require_token))
        .with_state(admin)
}

/// A JSON error answer.
fn error(status: StatusCode, reason: &str) -> Response {
    json(status, &serde_json::json!({ "error": reason }))
}

fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_string(value) {
        Ok(text) => (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            text + "\n",
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Internal failures are logged once and answered without detail.
fn internal(e: StoreError) -> Response {
    tracing::error!(error = %e, "admin request failed");
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error; see the router log",
    )
}

async fn require_token(State(admin): State<Arc<Admin>>, request: Request, next: Next) -> Response {
    if let Some(token) = &admin.token() {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !bool::from(presented.as_bytes().ct_eq(token.expose().as_bytes())) {
            let mut resp = error(StatusCode::UNAUTHORIZED, "missing or wrong admin token");
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            return resp;
        }
    }
    next.run(request).await
}

/// Query parameters shared by the listings and the bulk replay.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<String>,
    route: Option<String>,
    destination: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<usize>,
    before: Option<i64>,
    /// Events only: of this provider event type.
    #[serde(rename = "type")]
    event_type: Option<String>,
    /// Events only: whose headers or body contain this text.
    q: Option<String>,
    /// Bulk replay only: re-run the events' plugins instead of re-queuing deliveries.
    #[serde(default)]
    rerun_plugins: bool,
}

/// Parses a time given as RFC 3339 (`2026-11-23T10:00:00Z`), milliseconds since the epoch,
/// or a duration ago (`90s`, `2h`, `3d`).
pub fn parse_time(s: &str, now: Millis) -> Result<Millis, String> {
    if let Ok(ms) = s.parse::<Millis>() {
        return Ok(ms);
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return t
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis() as Millis)
            .map_err(|_| format!("time {s:?} is before 1970"));
    }
    humantime::parse_duration(s)
        .map(|ago| now - ago.as_millis() as Millis)
        .map_err(|_| format!("invalid time {s:?}; use RFC 3339, epoch milliseconds, or a duration ago like \"2h\""))
}

/// A form field left empty means no filter.
fn nonempty(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

impl ListQuery {
    fn times(&self) -> Result<(Option<Millis>, Option<Millis>), String> {
        let now = now_ms();
        let since = nonempty(&self.since)
            .map(|s| parse_time(&s, now))
            .transpose()?;
        let until = nonempty(&self.until)
            .map(|s| parse_time(&s, now))
            .transpose()?;
        Ok((since, until))
    }

    fn limit(&self) -> usize {
        self.limit.unwrap_or(100).clamp(1, MAX_LIMIT)
    }

    fn event_filter(&self) -> Result<EventFilter, String> {
        let status = nonempty(&self.status)
            .as_deref()
            .map(|s| {
                EventStatus::parse(s)
                    .map_err(|_| format!("status must be received, processed or failed, not {s:?}"))
            })
            .transpose()?;
        let (since, until) = self.times()?;
        Ok(EventFilter {
            status,
            route: nonempty(&self.route),
            since,
            until,
            before: self.before,
            limit: self.limit(),
            event_type: nonempty(&self.event_type),
            destination: nonempty(&self.destination),
            search: nonempty(&self.q),
        })
    }

    fn delivery_filter(&self) -> Result<DeliveryFilter, String> {
        let status = nonempty(&self.status)
            .as_deref()
            .map(|s| {
                DeliveryStatus::parse(s).map_err(|_| {
                    format!("status must be pending, retrying, delivered or dead, not {s:?}")
                })
            })
            .transpose()?;
        let (since, until) = self.times()?;
        Ok(DeliveryFilter {
            status,
            route: nonempty(&self.route),
            destination: nonempty(&self.destination),
            since,
            until,
            before: self.before,
            limit: Some(self.limit()),
            event_id: None,
            id: None,
        })
    }
}

fn bad_query(e: String) -> Response {
    error(StatusCode::BAD_REQUEST, &e)
}

async fn list_events(State(admin): State<Arc<Admin>>, Query(q): Query<ListQuery>) -> Response {
    let filter = match q.event_filter() {
        Ok(f) => f,
        Err(e) => return bad_query(e),
    };
    let limit = filter.limit;
    match admin.store.events(filter).await {
        Ok(events) => json(
            StatusCode::OK,
            &Page::new(
                events.into_iter().map(EventView::from).collect(),
                limit,
                |e| e.seq,
            ),
        ),
        Err(e) => internal(e),
    }
}

async fn show_event(State(admin): State<Arc<Admin>>, Path(id): Path<String>) -> Response {
    let event = match admin.store.event(&id).await {
        Ok(Some(e)) => e,
        Ok(None) => return error(StatusCode::NOT_FOUND, "no such event"),
        Err(e) => return internal(e),
    };
    let filter = DeliveryFilter {
        event_id: Some(id.clone()),
        ..Default::default()
    };
    let deliveries = match admin.store.deliveries(filter).await {
        Ok(d) => d,
        Err(e) => return internal(e),
    };
    let mut views = Vec::with_capacity(deliveries.len());
    for d in deliveries {
        let attempts = match admin.store.attempts(&d.new.id).await {
            Ok(a) => a,
            Err(e) => return internal(e),
        };
        views.push(DeliveryView::with_attempts(d, attempts));
    }
    json(StatusCode::OK, &EventDetail::new(event.seq, event, views))
}

async fn replay_event(State(admin): State<Arc<Admin>>, Path(id): Path<String>) -> Response {
    match admin
        .store
        .replay_events(EventFilter::default(), Some(vec![id]))
        .await
    {
        Ok(0) => error(StatusCode::NOT_FOUND, "no such event"),
        Ok(n) => json(StatusCode::ACCEPTED, &serde_json::json!({ "replayed": n })),
        Err(e) => internal(e),
    }
}

async fn list_deliveries(State(admin): State<Arc<Admin>>, Query(q): Query<ListQuery>) -> Response {
    let filter = match q.delivery_filter() {
        Ok(f) => f,
        Err(e) => return bad_query(e),
    };
    let limit = filter.limit.unwrap_or(MAX_LIMIT);
    match admin.store.deliveries(filter).await {
        Ok(ds) => json(
            StatusCode::OK,
            &Page::new(
                ds.into_iter().map(DeliveryView::from).collect(),
                limit,
                |d| d.seq,
            ),
        ),
        Err(e) => internal(e),
    }
}

async fn show_delivery(State(admin): State<Arc<Admin>>, Path(id): Path<String>) -> Response {
    let delivery = match admin.store.delivery(&id).await {
        Ok(Some(d)) => d,
        Ok(None) => return error(StatusCode::NOT_FOUND, "no such delivery"),
        Err(e) => return internal(e),
    };
    match admin.store.attempts(&id).await {
        Ok(attempts) => json(
            StatusCode::OK,
            &DeliveryView::with_attempts(delivery, attempts),
        ),
        Err(e) => internal(e),
    }
}

/// Re-queues a delivery that is not delivered yet (due now, fresh retry budget) and wakes the
/// worker; returns the delivery as it was, or `None` if there is no such delivery.
async fn retry(admin: &Admin, id: &str) -> Result<Option<crate::store::Delivery>, StoreError> {
    let Some(delivery) = admin.store.delivery(id).await? else {
        return Ok(None);
    };
    if delivery.status != DeliveryStatus::Delivered {
        let filter = DeliveryFilter {
            id: Some(id.to_string()),
            ..Default::default()
        };
        admin.store.requeue_deliveries(filter).await?;
        admin.delivery_wake.notify_one();
    }
    Ok(Some(delivery))
}

/// Resumes a destination of the running config; `false` if there is no such destination.
async fn resume(admin: &Admin, name: &str) -> Result<bool, StoreError> {
    if !admin.live.get().destinations.contains_key(name) {
        return Ok(false);
    }
    admin.store.set_destination_paused(name, None).await?;
    admin.delivery_wake.notify_one();
    admin.alerter.raise(crate::alerts::Signal::Paused {
        destination: name.to_string(),
        reason: None,
    });
    Ok(true)
}

async fn retry_delivery(State(admin): State<Arc<Admin>>, Path(id): Path<String>) -> Response {
    match retry(&admin, &id).await {
        Ok(None) => error(StatusCode::NOT_FOUND, "no such delivery"),
        Ok(Some(d)) if d.status == DeliveryStatus::Delivered => {
            error(StatusCode::CONFLICT, "already delivered")
        }
        Ok(Some(d)) if d.lease > now_ms() => error(
            StatusCode::CONFLICT,
            "an attempt is in flight; its result decides what happens next",
        ),
        Ok(Some(_)) => json(StatusCode::ACCEPTED, &serde_json::json!({ "requeued": 1 })),
        Err(e) => internal(e),
    }
}

async fn bulk_replay(
    State(admin): State<Arc<Admin>>,
    axum::Json(q): axum::Json<ListQuery>,
) -> Response {
    // A bulk replay of everything is almost never meant; make it explicit.
    if q.status.is_none()
        && q.route.is_none()
        && q.destination.is_none()
        && q.since.is_none()
        && q.until.is_none()
    {
        return bad_query(
            "narrow the replay with at least one of status, route, destination, since, until"
                .into(),
        );
    }
    if q.rerun_plugins {
        let mut filter = match q.event_filter() {
            Ok(f) => f,
            Err(e) => return bad_query(e),
        };
        filter.limit = q.limit.unwrap_or(0);
        return match admin.store.replay_events(filter, None).await {
            Ok(n) => json(StatusCode::ACCEPTED, &serde_json::json!({ "replayed": n })),
            Err(e) => internal(e),
        };
    }
    let mut filter = match q.delivery_filter() {
        Ok(f) => f,
        Err(e) => return bad_query(e),
    };
    filter.limit = q.limit;
    match admin.store.requeue_deliveries(filter).await {
        Ok(n) => {
            admin.delivery_wake.notify_one();
            json(StatusCode::ACCEPTED, &serde_json::json!({ "requeued": n }))
        }
        Err(e) => internal(e),
    }
}

async fn metrics(State(admin): State<Arc<Admin>>) -> Response {
    let (counts, backlog, commits) = match tokio::try_join!(
        admin.store.delivery_counts(),
        admin.store.backlog(),
        admin.store.commits()
    ) {
        Ok(read) => read,
        Err(e) => return internal(e),
    };
    let mut gauges: Vec<_> = counts
        .iter()
        .map(|(status, n)| ("hookyard_deliveries", vec![("status", status.as_str())], *n))
        .collect();
    gauges.extend(crate::backlog::gauges(&backlog));
    if let Some(commits) = commits {
        gauges.push(("hookyard_store_commits_total", vec![], commits));
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        admin.metrics.render(&gauges),
    )
        .into_response()
}

/// The destinations to show, sorted: the configured ones, and paused ones a reload removed
/// (their deliveries wait for them).
fn destination_names<'a>(
    snapshot: &'a crate::live::Snapshot,
    paused: &'a [(String, String)],
) -> Vec<&'a String> {
    let mut names: Vec<&String> = snapshot
        .destinations
        .keys()
        .chain(paused.iter().map(|(name, _)| name))
        .collect();
    names.sort();
    names.dedup();
    names
}

async fn list_destinations(State(admin): State<Arc<Admin>>) -> Response {
    let paused = match admin.store.paused_destinations().await {
        Ok(p) => p,
        Err(e) => return internal(e),
    };
    let snapshot = admin.live.get();
    let list: Vec<_> = destination_names(&snapshot, &paused)
        .into_iter()
        .map(|name| {
            let reason = paused
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, r)| r.clone());
            serde_json::json!({
                "name": name,
                "configured": snapshot.destinations.contains_key(name),
                "paused": reason.is_some(),
                "reason": reason,
            })
        })
        .collect();
    json(StatusCode::OK, &serde_json::json!({ "destinations": list }))
}

async fn resume_destination(State(admin): State<Arc<Admin>>, Path(name): Path<String>) -> Response {
    match resume(&admin, &name).await {
        Ok(true) => json(StatusCode::OK, &serde_json::json!({ "resumed": name })),
        Ok(false) => error(StatusCode::NOT_FOUND, "no such destination"),
        Err(e) => internal(e),
    }
}

/// Every polled route: its source, schedule and cursor, and how this node's polls went.
pub async fn poll_views(admin: &Admin) -> Result<Vec<serde_json::Value>, StoreError> {
    let snapshot = admin.live.get();
    let board = admin.polls.lock().map(|b| b.clone()).unwrap_or_default();
    let mut names: Vec<&String> = snapshot
        .routes
        .iter()
        .filter(|(_, r)| r.poll.is_some())
        .map(|(n, _)| n)
        .collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let Some(poll) = snapshot.routes.get(name).and_then(|r| r.poll.clone()) else {
            continue;
        };
        let cursor = admin
            .store
            .kv_get(crate::poll::POLL_CURSORS, name)
            .await?
            .map(|c| String::from_utf8_lossy(&c).into_owned());
        // The URL without its query, which may carry a key.
        let mut url = poll.url.expose().to_string();
        if let Some(i) = url.find('?') {
            url.truncate(i);
        }
        out.push(serde_json::json!({
            "route": name,
            "url": url,
            "every_ms": poll.every.0.as_millis() as u64,
            "cursor": cursor,
            "status": board.get(name),
        }));
    }
    Ok(out)
}

/// Every route with a live shadow: how its events compared, and the latest differences.
pub fn shadow_reports(admin: &Admin) -> Vec<(String, crate::shadow::Report)> {
    let snapshot = admin.live.get();
    let mut out: Vec<_> = snapshot
        .routes
        .iter()
        .filter_map(|(name, r)| r.shadow.as_ref().map(|s| (name.clone(), s.board.report())))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

async fn list_shadow(State(admin): State<Arc<Admin>>) -> Response {
    let routes: Vec<_> = shadow_reports(&admin)
        .into_iter()
        .map(|(route, report)| serde_json::json!({ "route": route, "report": report }))
        .collect();
    json(StatusCode::OK, &serde_json::json!({ "routes": routes }))
}

async fn list_polls(State(admin): State<Arc<Admin>>) -> Response {
    match poll_views(&admin).await {
        Ok(polls) => json(StatusCode::OK, &serde_json::json!({ "polls": polls })),
        Err(e) => internal(e),
    }
}

/// Alert conditions open on this node, and the latest alerts raised (by any node).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct AlertsView {
    /// Whether `[alerts]` is configured.
    pub configured: bool,
    /// Conditions open on this node, oldest first.
    pub open: Vec<crate::alerts::Open>,
    /// The latest alerts, newest first: the alert, the event that carries it, and where its
    /// deliveries are.
    pub recent: Vec<RecentAlert>,
}

/// An alert that was raised.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct RecentAlert {
    /// The alert's event (`alt_...`): its deliveries show who was told.
    pub event_id: String,
    /// The alert as sent.
    #[serde(flatten)]
    pub alert: crate::alerts::Alert,
}

/// [`AlertsView`] from the store and this node's board.
pub async fn alerts_view(admin: &Admin, limit: usize) -> Result<AlertsView, StoreError> {
    let summaries = admin
        .store
        .events(EventFilter {
            route: Some(crate::alerts::ROUTE.to_string()),
            limit,
            ..EventFilter::default()
        })
        .await?;
    let mut recent = Vec::new();
    for summary in summaries {
        if let Some(stored) = admin.store.event(&summary.id).await?
            && let Ok(alert) = serde_json::from_slice(&stored.event.body)
        {
            recent.push(RecentAlert {
                event_id: summary.id,
                alert,
            });
        }
    }
    Ok(AlertsView {
        configured: admin.live.get().alerts.is_some(),
        open: admin.alerts.open(),
        recent,
    })
}

async fn list_alerts(State(admin): State<Arc<Admin>>) -> Response {
    match alerts_view(&admin, 50).await {
        Ok(view) => json(StatusCode::OK, &view),
        Err(e) => internal(e),
    }
}

/// The route, if its scheme learns its secret from the provider's handshake (Asana, Notion).
/// Otherwise, why not (a `404` reason).
fn learning_route(admin: &Admin, route: &str) -> Result<Arc<crate::live::Route>, &'static str> {
    let snapshot = admin.live.get();
    let Some(r) = snapshot.routes.get(route) else {
        return Err("no such route");
    };
    if r.verifier.learning().is_none() {
        return Err("this route's secret is in the config, not learned from a handshake");
    }
    Ok(r.clone())
}

/// `GET /admin/routes/{route}/secret`: the secret the provider handed over (Notion's
/// verification token must be pasted back into Notion), or `null` before the handshake.
async fn show_learned_secret(
    State(admin): State<Arc<Admin>>,
    Path(route): Path<String>,
) -> Response {
    if let Err(reason) = learning_route(&admin, &route) {
        return error(StatusCode::NOT_FOUND, reason);
    }
    match admin.store.kv_get(LEARNED_SECRETS, &route).await {
        Ok(secret) => json(
            StatusCode::OK,
            &serde_json::json!({
                "route": route,
                "secret": secret.map(|s| String::from_utf8_lossy(&s).into_owned()),
            }),
        ),
        Err(e) => internal(e),
    }
}

/// `DELETE /admin/routes/{route}/secret`: forgets the learned secret, so the provider's next
/// handshake is taken (other nodes notice within half a minute).
async fn forget_learned_secret(
    State(admin): State<Arc<Admin>>,
    Path(route): Path<String>,
) -> Response {
    let r = match learning_route(&admin, &route) {
        Ok(r) => r,
        Err(reason) => return error(StatusCode::NOT_FOUND, reason),
    };
    match admin.store.kv_delete(LEARNED_SECRETS, &route).await {
        Ok(()) => {
            if let Some(learning) = r.verifier.learning() {
                learning.remember(None);
            }
            tracing::warn!(%route, "forgot the route's learned secret: the next handshake sets it");
            json(StatusCode::OK, &serde_json::json!({ "forgotten": route }))
        }
        Err(e) => internal(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn only_a_foreign_origin_is_cross_origin() {
        let mut h = header::HeaderMap::new();
        h.insert(header::HOST, "127.0.0.1:8081".parse().unwrap());
        assert!(
            !cross_origin(&h),
            "no Origin header: a form post from an old browser or curl"
        );
        h.insert(header::ORIGIN, "http://127.0.0.1:8081".parse().unwrap());
        assert!(!cross_origin(&h));
        h.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert!(cross_origin(&h));
        h.insert(header::ORIGIN, "null".parse().unwrap());
        assert!(cross_origin(&h), "an opaque origin without Sec-Fetch-Site");
        // What Chromium sends for the console's own forms.
        h.insert("sec-fetch-site", "same-origin".parse().unwrap());
        assert!(!cross_origin(&h));
        for foreign in ["cross-site", "same-site"] {
            h.insert(header::ORIGIN, "http://127.0.0.1:8081".parse().unwrap());
            h.insert("sec-fetch-site", foreign.parse().unwrap());
            assert!(cross_origin(&h), "{foreign}, whatever Origin says");
        }
    }

    #[test]
    fn a_loopback_listener_answers_only_to_its_own_names() {
        let listen: SocketAddr = "127.0.0.1:8081".parse().unwrap();
        let with_host = |host: &str| {
            let mut h = header::HeaderMap::new();
            h.insert(header::HOST, host.parse().unwrap());
            h
        };
        for ok in [
            "127.0.0.1:8081",
            "localhost:8081",
            "LOCALHOST:8081",
            "[::1]:8081",
        ] {
            assert!(names_loopback_listener(&with_host(ok), listen), "{ok}");
        }
        for rebound in [
            "evil.example:8081",
            "127.0.0.1:9999",
            "localhost",
            "127.0.0.1.nip.io:8081",
        ] {
            assert!(
                !names_loopback_listener(&with_host(rebound), listen),
                "{rebound}"
            );
        }
        assert!(!names_loopback_listener(&header::HeaderMap::new(), listen));
    }

    #[test]
    fn times_parse_in_three_forms() {
        let now = 1_800_000_000_000;
        assert_eq!(parse_time("1700000000000", now), Ok(1_700_000_000_000));
        assert_eq!(parse_time("2h", now), Ok(now - 7_200_000));
        assert_eq!(
            parse_time("2026-01-01T00:00:00Z", now),
            Ok(1_767_225_600_000)
        );
        assert!(parse_time("yesterday-ish", now).is_err());
    }
}
