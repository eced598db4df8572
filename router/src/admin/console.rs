//! The console's views over many events: the filter form and its pagination, replaying
//! everything a filter matches (after showing how many), the charts, and the live tail,
//! the one page with a script (served from the binary, allowed by that page's policy only).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Form, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::page::{enc, esc, failure, page, page_response};
use super::{Admin, ListQuery, views};
use crate::activity::Point;
use crate::live::Snapshot;
use crate::store::{DeliveryStatus, EventFilter, Millis};

/// Most events the replay page counts (and replays) at once.
const REPLAY_MAX: usize = 1000;

/// The policy of the live tail page: its own script and requests, nothing else.
const TAIL_POLICY: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; \
                           style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'";

/// The filters `q` sets, by query parameter name.
fn set_filters(q: &ListQuery) -> impl Iterator<Item = (&'static str, &str)> {
    [
        ("route", &q.route),
        ("status", &q.status),
        ("destination", &q.destination),
        ("type", &q.event_type),
        ("since", &q.since),
        ("until", &q.until),
        ("q", &q.q),
    ]
    .into_iter()
    .filter_map(|(name, value)| {
        value
            .as_deref()
            .filter(|v| !v.is_empty())
            .map(|v| (name, v))
    })
}

/// The filters of `q` as query parameters (no cursor), starting with `&` when any.
pub fn filter_query(q: &ListQuery) -> String {
    let mut out = String::new();
    for (name, v) in set_filters(q) {
        let _ = write!(out, "&{name}={}", enc(v));
    }
    out
}

/// Whether `q` narrows the events at all.
fn filtered(q: &ListQuery) -> bool {
    !filter_query(q).is_empty()
}

/// The link to the next (older) page, keeping every filter: pages are cut by position in
/// the store, so events that arrive meanwhile do not shift them.
pub fn older(path: &str, before: Option<i64>, q: &ListQuery) -> String {
    match before {
        Some(before) => format!(
            "<p><a href=\"{path}?before={before}{}\">Older →</a></p>",
            esc(&filter_query(q))
        ),
        None => String::new(),
    }
}

fn select(name: &str, label: &str, options: &[(String, String)], current: Option<&str>) -> String {
    let mut out = format!("<label>{label} <select name=\"{name}\">");
    for (value, text) in options {
        let selected = if current.unwrap_or("") == value {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            out,
            "<option value=\"{}\"{selected}>{}</option>",
            esc(value),
            esc(text)
        );
    }
    out.push_str("</select></label> ");
    out
}

fn names<'a>(names: impl Iterator<Item = &'a String>) -> Vec<(String, String)> {
    let mut list: Vec<(String, String)> = vec![(String::new(), "any".into())];
    let mut sorted: Vec<&String> = names.collect();
    sorted.sort();
    list.extend(sorted.into_iter().map(|n| (n.clone(), n.clone())));
    list
}

/// The events filter form: route, status, destination, event type, time range and text.
pub fn filter_form(snapshot: &Snapshot, q: &ListQuery) -> String {
    let routes = names(snapshot.routes.keys());
    let destinations = names(snapshot.destinations.keys());
    let statuses: Vec<(String, String)> = ["", "received", "processed", "failed"]
        .iter()
        .map(|s| {
            (
                s.to_string(),
                if s.is_empty() { "any" } else { s }.to_string(),
            )
        })
        .collect();
    let ranges: Vec<(String, String)> = [
        ("", "any time"),
        ("15m", "last 15 minutes"),
        ("1h", "last hour"),
        ("24h", "last day"),
        ("7d", "last week"),
    ]
    .iter()
    .map(|(v, t)| (v.to_string(), t.to_string()))
    .collect();
    let mut out = String::from("<form method=\"get\" action=\"/ui/events\" class=\"filters\"><p>");
    out.push_str(&select("route", "route", &routes, q.route.as_deref()));
    out.push_str(&select("status", "status", &statuses, q.status.as_deref()));
    out.push_str(&select(
        "destination",
        "destination",
        &destinations,
        q.destination.as_deref(),
    ));
    let _ = write!(
        out,
        "<label>type <input name=\"type\" size=\"14\" value=\"{}\"></label> ",
        esc(q.event_type.as_deref().unwrap_or(""))
    );
    out.push_str(&select("since", "received", &ranges, q.since.as_deref()));
    let _ = write!(
        out,
        "<label>text <input name=\"q\" size=\"24\" placeholder=\"in headers or body\" value=\"{}\"></label> \
         <button>Filter</button> <a href=\"/ui/events\">clear</a></p></form>",
        esc(q.q.as_deref().unwrap_or(""))
    );
    if filtered(q) {
        let _ = write!(
            out,
            "<p><a href=\"/ui/replay?{}\">Replay the events matching this filter…</a></p>",
            esc(filter_query(q).trim_start_matches('&'))
        );
    }
    out
}

/// Hidden inputs carrying `q`'s filters into a form.
fn hidden(q: &ListQuery) -> String {
    let mut out = String::new();
    for (name, v) in set_filters(q) {
        let _ = write!(
            out,
            "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
            esc(v)
        );
    }
    out
}

/// How many events `q` matches, up to [`REPLAY_MAX`] (`true` when there are more).
async fn count(admin: &Admin, q: &ListQuery) -> Result<(usize, bool), String> {
    let mut filter = q.event_filter()?;
    filter.before = None;
    filter.limit = REPLAY_MAX + 1;
    let found = admin
        .store
        .events(filter)
        .await
        .map_err(|e| e.to_string())?;
    Ok((found.len().min(REPLAY_MAX), found.len() > REPLAY_MAX))
}

/// The words and places of one bulk action: replaying events or retrying deliveries.
struct Bulk {
    title: &'static str,
    /// Element ids: `<id>-count` on the confirmation, `done` on the result.
    id: &'static str,
    done: &'static str,
    /// The listing to go back to.
    list: &'static str,
    noun: &'static str,
    /// What the count is of, after "<n> <noun>".
    counted: &'static str,
    /// What confirming does.
    explain: &'static str,
    /// What was done, after "<n> <noun>".
    did: &'static str,
}

const REPLAY: Bulk = Bulk {
    title: "Replay",
    id: "replay",
    done: "replayed",
    list: "/ui/events",
    noun: "event(s)",
    counted: "match",
    explain: "Replaying runs them through their route's plugins as loaded now; their new \
              outputs become new deliveries.",
    did: "queued to run through their plugins again.",
};

const RETRY: Bulk = Bulk {
    title: "Retry",
    id: "retry",
    done: "retried",
    list: "/ui/deliveries",
    noun: "delivery(ies)",
    counted: "not delivered match",
    explain: "Retrying queues them again, due now, with a fresh retry budget; attempts in \
              flight are left alone.",
    did: "queued again.",
};

impl Bulk {
    fn refuse(&self, message: &str) -> Response {
        page_response(
            StatusCode::BAD_REQUEST,
            self.title,
            &format!("<p>{}</p>", esc(message)),
        )
    }

    fn back(&self, q: &ListQuery) -> String {
        format!(
            "{}?{}",
            self.list,
            esc(filter_query(q).trim_start_matches('&'))
        )
    }

    /// How many `q` matches (`more`: beyond [`REPLAY_MAX`]), and the button that acts on
    /// that many.
    fn confirm(&self, q: &ListQuery, n: usize, more: bool) -> Response {
        let more = if more {
            format!(" (the oldest {REPLAY_MAX} of more)")
        } else {
            String::new()
        };
        let body = format!(
            "<p id=\"{id}-count\"><b>{n}</b> {noun} {counted}{more}. {explain}</p>\
             <form method=\"post\" action=\"/ui/{id}\">{hidden}\
             <input type=\"hidden\" name=\"limit\" value=\"{n}\">\
             <button>{title} {n} {noun}</button> <a href=\"{back}\">cancel</a></form>",
            id = self.id,
            noun = self.noun,
            counted = self.counted,
            explain = self.explain,
            title = self.title,
            hidden = hidden(q),
            back = self.back(q),
        );
        page(self.title, &body).into_response()
    }

    fn result(&self, q: &ListQuery, n: usize) -> Response {
        let body = format!(
            "<p id=\"{}\"><b>{n}</b> {} {}</p><p><a href=\"{}\">Back</a></p>",
            self.done,
            self.noun,
            self.did,
            self.back(q)
        );
        page(self.title, &body).into_response()
    }
}

/// `GET /ui/replay?<filters>`: how many events would run again, and the button that does it.
pub async fn replay_confirm(
    State(admin): State<Arc<Admin>>,
    Query(q): Query<ListQuery>,
) -> Response {
    if !filtered(&q) {
        return REPLAY
            .refuse("Choose a filter first: replaying every event is almost never meant.");
    }
    match count(&admin, &q).await {
        Ok((n, more)) => REPLAY.confirm(&q, n, more),
        Err(e) => REPLAY.refuse(&e),
    }
}

/// `POST /ui/replay`: replays what the confirmed filter matches (no more than was counted).
pub async fn replay(State(admin): State<Arc<Admin>>, Form(q): Form<ListQuery>) -> Response {
    if !filtered(&q) {
        return REPLAY.refuse("Choose a filter first.");
    }
    let mut filter = match q.event_filter() {
        Ok(f) => f,
        Err(e) => return REPLAY.refuse(&e),
    };
    filter.before = None;
    filter.limit = q.limit.unwrap_or(0).min(REPLAY_MAX);
    if filter.limit == 0 {
        return Redirect::to(REPLAY.list).into_response();
    }
    match admin.store.replay_events(filter, None).await {
        Ok(n) => REPLAY.result(&q, n),
        Err(e) => failure(e),
    }
}

/// The link to retrying every delivery a deliveries listing's filter matches, when it has
/// one (and does not ask for delivered ones).
pub fn retry_link(q: &ListQuery) -> String {
    if !filtered(q) || q.status.as_deref() == Some(DeliveryStatus::Delivered.as_str()) {
        return String::new();
    }
    format!(
        "<p><a href=\"/ui/retry?{}\">Retry the deliveries matching this filter…</a></p>",
        esc(filter_query(q).trim_start_matches('&'))
    )
}

/// The deliveries `q` matches that a retry would queue again, up to [`REPLAY_MAX`].
async fn retryable(admin: &Admin, q: &ListQuery) -> Result<(usize, bool), String> {
    let mut filter = q.delivery_filter()?;
    filter.before = None;
    filter.limit = Some(REPLAY_MAX + 1);
    let found = admin
        .store
        .deliveries(filter)
        .await
        .map_err(|e| e.to_string())?;
    let n = found
        .iter()
        .filter(|d| d.status != DeliveryStatus::Delivered)
        .count();
    Ok((n.min(REPLAY_MAX), n > REPLAY_MAX))
}

/// `GET /ui/retry?<filters>`: how many deliveries would be queued again, and the button.
pub async fn retry_confirm(
    State(admin): State<Arc<Admin>>,
    Query(q): Query<ListQuery>,
) -> Response {
    if !filtered(&q) {
        return RETRY.refuse("Choose a filter first (dead letters of one destination, say).");
    }
    match retryable(&admin, &q).await {
        Ok((n, more)) => RETRY.confirm(&q, n, more),
        Err(e) => RETRY.refuse(&e),
    }
}

/// `POST /ui/retry`: queues again what the confirmed filter matches (no more than counted).
pub async fn retry(State(admin): State<Arc<Admin>>, Form(q): Form<ListQuery>) -> Response {
    if !filtered(&q) {
        return RETRY.refuse("Choose a filter first.");
    }
    let mut filter = match q.delivery_filter() {
        Ok(f) => f,
        Err(e) => return RETRY.refuse(&e),
    };
    filter.before = None;
    filter.limit = Some(q.limit.unwrap_or(0).min(REPLAY_MAX));
    if filter.limit == Some(0) {
        return Redirect::to(RETRY.list).into_response();
    }
    match admin.store.requeue_deliveries(filter).await {
        Ok(n) => {
            admin.delivery_wake.notify_one();
            RETRY.result(&q, n)
        }
        Err(e) => failure(e),
    }
}

/// A chart's series: its name, its colour, and its value at a point (none: no data).
type Series<'a> = (&'a str, &'a str, fn(&Point) -> Option<f64>);

/// One line chart: each series a polyline over the same time axis.
fn chart(title: &str, unit: &str, points: &[Point], series: &[Series<'_>]) -> String {
    const W: f64 = 640.0;
    const H: f64 = 150.0;
    const LEFT: f64 = 48.0;
    const BOTTOM: f64 = 18.0;
    let max = points
        .iter()
        .flat_map(|p| series.iter().filter_map(move |(_, _, f)| f(p)))
        .fold(0.0_f64, f64::max);
    let top = if max <= 0.0 { 1.0 } else { max * 1.1 };
    let n = points.len().max(2) as f64 - 1.0;
    let x = |i: usize| LEFT + (W - LEFT - 4.0) * i as f64 / n;
    let y = |v: f64| 4.0 + (H - BOTTOM - 4.0) * (1.0 - v / top);
    let mut out = format!(
        "<figure class=\"chart\"><figcaption>{} <small>({})</small></figcaption>\
         <svg viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\" aria-label=\"{}\">\
         <line x1=\"{LEFT}\" y1=\"{}\" x2=\"{W}\" y2=\"{}\" stroke=\"#9aa3b2\"/>\
         <line x1=\"{LEFT}\" y1=\"4\" x2=\"{LEFT}\" y2=\"{}\" stroke=\"#9aa3b2\"/>\
         <text x=\"{}\" y=\"12\" text-anchor=\"end\" font-size=\"10\">{}</text>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-size=\"10\">0</text>",
        esc(title),
        esc(unit),
        esc(title),
        H - BOTTOM,
        H - BOTTOM,
        H - BOTTOM,
        LEFT - 4.0,
        fmt_num(max),
        LEFT - 4.0,
        H - BOTTOM
    );
    if let (Some(first), Some(last)) = (points.first(), points.last()) {
        let _ = write!(
            out,
            "<text x=\"{LEFT}\" y=\"{}\" font-size=\"10\">{}</text>\
             <text x=\"{W}\" y=\"{}\" text-anchor=\"end\" font-size=\"10\">{}</text>",
            H - 4.0,
            clock(first.start),
            H - 4.0,
            clock(last.start)
        );
    }
    for (name, color, f) in series {
        let coords: Vec<String> = points
            .iter()
            .enumerate()
            .filter_map(|(i, p)| f(p).map(|v| format!("{:.1},{:.1}", x(i), y(v))))
            .collect();
        let total: f64 = points.iter().filter_map(f).sum();
        let _ = write!(
            out,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\" \
             data-series=\"{}\" data-total=\"{}\"/>",
            coords.join(" "),
            esc(name),
            fmt_num(total)
        );
        // A lone reading (latency in a quiet minute) has no line to show it: mark each one.
        for (i, p) in points.iter().enumerate() {
            if let Some(v) = f(p).filter(|v| *v > 0.0) {
                let _ = write!(
                    out,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2\" fill=\"{color}\"/>",
                    x(i),
                    y(v)
                );
            }
        }
    }
    out.push_str("</svg><p class=\"legend\">");
    for (name, color, _) in series {
        let _ = write!(out, "<span style=\"color:{color}\">■</span> {} ", esc(name));
    }
    out.push_str("</p></figure>");
    out
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// `HH:MM` (UTC) of a time.
fn clock(ms: Millis) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    let s = humantime::format_rfc3339_seconds(t).to_string();
    s.get(11..16).unwrap_or("").to_string()
}

/// `GET /ui/charts?range=1h|24h&route=&destination=`: received, delivered and failed per
/// minute, delivery latency and backlog age, from this node's activity.
pub async fn charts(State(admin): State<Arc<Admin>>, Query(q): Query<ChartQuery>) -> Response {
    let day = q.range.as_deref() == Some("24h");
    let (range, bucket) = if day {
        (Duration::from_secs(24 * 3600), Duration::from_secs(15 * 60))
    } else {
        (Duration::from_secs(3600), Duration::from_secs(60))
    };
    let route = q.route.as_deref().filter(|r| !r.is_empty());
    let destination = q.destination.as_deref().filter(|d| !d.is_empty());
    let points = admin.activity.series(range, bucket, route, destination);
    let snapshot = admin.live.get();
    let mut body = String::from("<form method=\"get\" action=\"/ui/charts\"><p>");
    body.push_str(&select(
        "range",
        "over",
        &[
            ("1h".into(), "the last hour".into()),
            ("24h".into(), "the last day".into()),
        ],
        Some(if day { "24h" } else { "1h" }),
    ));
    body.push_str(&select(
        "route",
        "route",
        &names(snapshot.routes.keys().filter(|r| !r.starts_with('@'))),
        route,
    ));
    body.push_str(&select(
        "destination",
        "destination",
        &names(snapshot.destinations.keys()),
        destination,
    ));
    body.push_str("<button>Show</button></p></form>");
    let per = if day { "per 15 minutes" } else { "per minute" };
    body.push_str(&chart(
        "Events and deliveries",
        per,
        &points,
        &[
            ("received", "#2f6fdb", |p| Some(p.received as f64)),
            ("delivered", "#17713a", |p| Some(p.delivered as f64)),
            ("failed", "#b3261e", |p| Some(p.failed as f64)),
        ],
    ));
    body.push_str(&chart(
        "Delivery latency",
        "ms",
        &points,
        &[
            ("p50", "#2f6fdb", |p| p.p50_ms.map(|v| v as f64)),
            ("p99", "#8a6100", |p| p.p99_ms.map(|v| v as f64)),
        ],
    ));
    body.push_str(&chart(
        "Backlog age",
        "seconds the oldest waiting work has waited",
        &points,
        &[("oldest", "#8a6100", |p| Some(p.backlog_age_s as f64))],
    ));
    body.push_str(
        "<p><small>This node's activity since it started (up to a day). Longer history: scrape \
         <code>/admin/metrics</code>.</small></p>",
    );
    page("Charts", &body).into_response()
}

/// The charts page's choices.
#[derive(serde::Deserialize)]
pub struct ChartQuery {
    range: Option<String>,
    route: Option<String>,
    destination: Option<String>,
}

/// `GET /ui/tail`: events as they arrive, without reloading (the page's script polls
/// `/ui/tail.json`).
pub async fn tail_page() -> Response {
    let body = "<p>New events appear here as they are received (newest first). \
                <span id=\"tail-state\">connecting…</span></p>\
                <table id=\"tail\"><tr><th>received</th><th>event</th><th>route</th><th>type</th>\
                <th>status</th></tr></table><script src=\"/ui/tail.js\"></script>";
    let mut response = page("Live tail", body).into_response();
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(TAIL_POLICY),
    );
    response
}

/// The live tail's script: polls for events newer than the newest shown and adds rows,
/// building them as text nodes (event fields never become markup).
const TAIL_JS: &str = r#""use strict";
(function () {
  const table = document.getElementById("tail");
  const state = document.getElementById("tail-state");
  let after = null;
  function cell(row, text, href, cls) {
    const td = row.insertCell();
    if (cls) td.className = cls;
    if (href) {
      const a = document.createElement("a");
      a.href = href;
      a.textContent = text;
      td.appendChild(a);
    } else {
      td.textContent = text;
    }
  }
  async function poll() {
    try {
      const url = after === null ? "/ui/tail.json" : "/ui/tail.json?after=" + after;
      const answer = await fetch(url, { credentials: "same-origin" });
      if (!answer.ok) throw new Error("HTTP " + answer.status);
      const page = await answer.json();
      const fresh = page.items.filter((e) => after === null || e.seq > after);
      for (const e of fresh.reverse()) {
        const row = table.insertRow(1);
        row.dataset.seq = e.seq;
        cell(row, new Date(e.received_at).toISOString().replace(".000", ""));
        cell(row, e.id, "/ui/events/" + encodeURIComponent(e.id));
        cell(row, e.route);
        cell(row, e.event_type || "");
        cell(row, e.status, null, e.status);
      }
      if (page.items.length) after = Math.max(after || 0, ...page.items.map((e) => e.seq));
      else if (after === null) after = 0;
      state.textContent = "following · " + new Date().toLocaleTimeString();
    } catch (err) {
      state.textContent = "reconnecting (" + err.message + ")";
    }
    setTimeout(poll, 1000);
  }
  poll();
})();
"#;

/// `GET /ui/tail.js`.
pub async fn tail_js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        TAIL_JS,
    )
        .into_response()
}

/// `GET /ui/tail.json?after=<seq>`: the newest events (at most 50), newest first.
pub async fn tail_json(State(admin): State<Arc<Admin>>, Query(q): Query<TailQuery>) -> Response {
    let events = match admin
        .store
        .events(EventFilter {
            limit: 50,
            ..EventFilter::default()
        })
        .await
    {
        Ok(e) => e,
        Err(e) => return failure(e),
    };
    let items: Vec<views::EventView> = events
        .into_iter()
        .filter(|e| q.after.is_none_or(|a| e.seq > a))
        .map(views::EventView::from)
        .collect();
    axum::Json(serde_json::json!({ "items": items })).into_response()
}

/// Where the tail left off.
#[derive(serde::Deserialize)]
pub struct TailQuery {
    after: Option<i64>,
}
