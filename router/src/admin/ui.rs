//! The admin UI: HTML pages on `admin_listen` for people, beside the JSON API for scripts.
//! Events with their headers, body, deliveries and attempts; dead letters and everything
//! else by status; destinations; and the actions an operator takes from there (replay an
//! event through its plugins, retry a delivery now, resume a paused destination).
//!
//! Sign-in takes the admin token once and sets a session cookie derived from it
//! (HMAC-SHA256 of a fixed label under the token: changing the token ends every session);
//! the cookie is `HttpOnly` and `SameSite=Strict`, and actions are `POST` forms that are
//! refused when the browser says they come from another origin. Everything shown is
//! escaped: event bodies and headers are whatever a provider sent. No scripts, no assets.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::page::{enc, esc, failure, page, page_response, time};
use super::{Admin, ListQuery, views};
use crate::store::{DeliveryFilter, DeliveryStatus, EventFilter, Millis, StoreError};

const COOKIE: &str = "hookyard_session";

/// The UI's routes, under `/ui`.
pub fn router(admin: Arc<Admin>) -> Router {
    Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/events") }))
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/find", get(find))
        .route("/ui/events", get(events_page))
        .route("/ui/events/{id}", get(event_page))
        .route("/ui/events/{id}/replay", post(replay_event))
        .route("/ui/deliveries", get(deliveries_page))
        .route("/ui/deliveries/{id}/retry", post(retry_delivery))
        .route("/ui/destinations", get(destinations_page))
        .route("/ui/shadow", get(shadow_page))
        .route("/ui/alerts", get(alerts_page))
        .route(
            "/ui/replay",
            get(super::console::replay_confirm).post(super::console::replay),
        )
        .route(
            "/ui/retry",
            get(super::console::retry_confirm).post(super::console::retry),
        )
        .route("/ui/charts", get(super::console::charts))
        .route("/ui/tail", get(super::console::tail_page))
        .route("/ui/tail.js", get(super::console::tail_js))
        .route("/ui/tail.json", get(super::console::tail_json))
        .route("/ui/destinations/{name}/resume", post(resume_destination))
        .layer(middleware::from_fn_with_state(
            admin.clone(),
            require_session,
        ))
        .with_state(admin)
}

/// The session cookie's value for `token`.
fn session_value(token: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(token.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(b"hookyard admin ui session v1");
    hex::encode(mac.finalize().into_bytes())
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Headers on every page: nothing cached (pages show webhook bodies), no framing, no
/// scripts or outside resources, forms only to this origin, no referrer leaving it. A page
/// that sets its own policy keeps it (the live tail runs its own script).
const PAGE_HEADERS: [(header::HeaderName, &str); 4] = [
    (header::CACHE_CONTROL, "no-store"),
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
    ),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    // Not `no-referrer`: under it browsers send `Origin: null` with the console's own forms.
    (header::REFERRER_POLICY, "same-origin"),
];

async fn require_session(
    State(admin): State<Arc<Admin>>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = check_session(&admin, request, next).await;
    for (name, value) in PAGE_HEADERS {
        response
            .headers_mut()
            .entry(name)
            .or_insert(header::HeaderValue::from_static(value));
    }
    response
}

async fn check_session(admin: &Admin, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if path == "/ui/login" {
        return next.run(request).await;
    }
    if let Some(token) = &admin.token() {
        let presented = cookie(request.headers(), COOKIE).unwrap_or_default();
        let expected = session_value(token.expose());
        if !bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
            return Redirect::to("/ui/login").into_response();
        }
    }
    next.run(request).await
}

async fn login_page() -> Html<String> {
    login_form("")
}

fn login_form(message: &str) -> Html<String> {
    page(
        "Sign in",
        &format!(
            "{message}<form method=\"post\" action=\"/ui/login\"><p><label>Admin token \
             <input type=\"password\" name=\"token\" autofocus size=\"40\"></label> \
             <button>Sign in</button></p></form>"
        ),
    )
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(State(admin): State<Arc<Admin>>, Form(form): Form<LoginForm>) -> Response {
    let Some(token) = &admin.token() else {
        return Redirect::to("/ui/events").into_response();
    };
    if !bool::from(form.token.as_bytes().ct_eq(token.expose().as_bytes())) {
        let mut resp = login_form("<p class=\"failed\">Wrong token.</p>").into_response();
        *resp.status_mut() = StatusCode::UNAUTHORIZED;
        return resp;
    }
    let cookie = format!(
        "{COOKIE}={}; Path=/ui; HttpOnly; SameSite=Strict",
        session_value(token.expose())
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to("/ui/events")).into_response()
}

async fn logout() -> Response {
    let cookie = format!("{COOKIE}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/ui/login")).into_response()
}

/// Tabs linking `path` with each status (and "all").
fn tabs(path: &str, statuses: &[&str], current: Option<&str>) -> String {
    let mut out = String::from("<p class=\"tabs\">");
    let all = if current.is_none() {
        "<b>all</b>"
    } else {
        "all"
    };
    let _ = write!(out, "<a href=\"{path}\">{all}</a>");
    for s in statuses {
        let label = if current == Some(s) {
            format!("<b>{s}</b>")
        } else {
            s.to_string()
        };
        let _ = write!(out, "<a href=\"{path}?status={s}\">{label}</a>");
    }
    out.push_str("</p>");
    out
}

/// The link to the next (older) page of a listing, when there is one.
fn older(path: &str, before: Option<i64>, status: Option<&str>) -> String {
    let Some(before) = before else {
        return String::new();
    };
    let status = status
        .map(|s| format!("&status={}", enc(s)))
        .unwrap_or_default();
    format!("<p><a href=\"{path}?before={before}{status}\">Older →</a></p>")
}

#[derive(Deserialize)]
struct FindQuery {
    id: String,
}

/// Goes to an event by its id, or by the id of one of its deliveries (as a log line or a
/// receiver's `hookyard-delivery-id` header shows it).
async fn find(State(admin): State<Arc<Admin>>, Query(q): Query<FindQuery>) -> Response {
    let id = q.id.trim();
    if id.starts_with("dlv_") {
        return event_page_of(admin.store.delivery(id).await);
    }
    Redirect::to(&format!("/ui/events/{}", enc(id))).into_response()
}

async fn events_page(State(admin): State<Arc<Admin>>, Query(q): Query<ListQuery>) -> Response {
    let filter = match q.event_filter() {
        Ok(f) => EventFilter {
            limit: q.limit.unwrap_or(50).clamp(1, 500),
            ..f
        },
        Err(e) => {
            return page_response(
                StatusCode::BAD_REQUEST,
                "Events",
                &format!("<p>{}</p>", esc(&e)),
            );
        }
    };
    let limit = filter.limit;
    let events = match admin.store.events(filter).await {
        Ok(e) => e,
        Err(e) => return failure(e),
    };
    let mut body = String::from(
        "<form method=\"get\" action=\"/ui/find\"><p><input name=\"id\" size=\"40\" \
         placeholder=\"evt_... or dlv_...\"> <button>Find</button></p></form>",
    );
    body.push_str(&super::console::filter_form(&admin.live.get(), &q));
    body.push_str(
        "<table id=\"events\"><tr><th>received</th><th>event</th><th>route</th><th>type</th><th>status</th>\
         <th>note</th><th>plugins</th></tr>",
    );
    let page_of = views::Page::new(
        events.into_iter().map(views::EventView::from).collect(),
        limit,
        |e| e.seq,
    );
    for e in &page_of.items {
        let note = e
            .error
            .as_deref()
            .or(e.dropped.as_deref().map(|d| d.trim()))
            .unwrap_or("");
        let _ = write!(
            body,
            "<tr><td>{}</td><td><a href=\"/ui/events/{}\"><code>{}</code></a></td><td>{}</td>\
             <td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{} us</td></tr>",
            time(e.received_at),
            enc(&e.id),
            esc(&e.id),
            esc(&e.route),
            esc(e.event_type.as_deref().unwrap_or("")),
            esc(&e.status),
            esc(&e.status),
            esc(note),
            e.run_us
        );
    }
    body.push_str("</table>");
    if page_of.items.is_empty() {
        body.push_str("<p>No events.</p>");
    }
    body.push_str(&super::console::older(
        "/ui/events",
        page_of.next_before,
        &q,
    ));
    page("Events", &body).into_response()
}

async fn event_page(State(admin): State<Arc<Admin>>, Path(id): Path<String>) -> Response {
    let event = match admin.store.event(&id).await {
        Ok(Some(e)) => e,
        Ok(None) => return page_response(StatusCode::NOT_FOUND, "Event", "<p>No such event.</p>"),
        Err(e) => return failure(e),
    };
    let deliveries = match admin
        .store
        .deliveries(DeliveryFilter {
            event_id: Some(id.clone()),
            ..Default::default()
        })
        .await
    {
        Ok(d) => d,
        Err(e) => return failure(e),
    };
    let mut with_attempts = Vec::with_capacity(deliveries.len());
    for d in deliveries {
        match admin.store.attempts(&d.new.id).await {
            Ok(a) => with_attempts.push(views::DeliveryView::with_attempts(d, a)),
            Err(e) => return failure(e),
        }
    }
    let detail = views::EventDetail::new(event.seq, event, with_attempts);
    let s = &detail.summary;
    let mut body = format!(
        "<table><tr><th>id</th><td><code>{}</code></td></tr><tr><th>route</th><td>{}</td></tr>\
         <tr><th>received</th><td>{}</td></tr><tr><th>type</th><td>{}</td></tr>\
         <tr><th>status</th><td class=\"{}\">{}</td></tr>",
        esc(&s.id),
        esc(&s.route),
        time(s.received_at),
        esc(s.event_type.as_deref().unwrap_or("")),
        esc(&s.status),
        esc(&s.status),
    );
    for (label, value) in [
        ("error", &s.error),
        ("dropped", &s.dropped),
        ("trace", &detail.trace_id),
    ] {
        if let Some(v) = value {
            let _ = write!(body, "<tr><th>{label}</th><td>{}</td></tr>", esc(v));
        }
    }
    // Fuel is counted only by plugins with a `fuel` limit.
    let fuel = match s.fuel {
        0 => String::new(),
        n => format!(", {n} fuel"),
    };
    let _ = write!(
        body,
        "<tr><th>plugins</th><td>{} us{fuel}</td></tr><tr><th>duplicates</th><td>{}</td></tr></table>\
         <form method=\"post\" action=\"/ui/events/{}/replay\"><p><button>Replay through the plugins</button> \
         (the plugins loaded now run on the stored event; new outputs become new deliveries)</p></form>",
        s.run_us,
        s.duplicates,
        enc(&s.id)
    );
    body.push_str("<h2>Headers</h2><table>");
    for (name, value) in &detail.headers {
        let _ = write!(
            body,
            "<tr><th>{}</th><td>{}</td></tr>",
            esc(name),
            esc(value)
        );
    }
    body.push_str("</table><h2>Body</h2>");
    body.push_str(&body_block(
        detail.body.as_deref(),
        detail.body_base64.as_deref(),
        s.body_size,
    ));
    body.push_str("<h2>Deliveries</h2>");
    if detail.deliveries.is_empty() {
        body.push_str("<p>None.</p>");
    }
    for d in &detail.deliveries {
        body.push_str(&delivery_block(d));
    }
    // A live shadow that found this event's outputs different: both, side by side.
    let shadowed = admin
        .live
        .get()
        .routes
        .get(&s.route)
        .and_then(|r| r.shadow.as_ref())
        .and_then(|sh| {
            sh.board
                .report()
                .recent
                .into_iter()
                .find(|d| d.event == s.id)
        });
    if let Some(d) = shadowed {
        let _ = write!(
            body,
            "<h2>Shadow: {}</h2><table><tr><th>live</th><th>candidate</th></tr>\
             <tr><td><pre>{}</pre></td><td><pre>{}</pre></td></tr></table>",
            d.verdict.as_str().replace('_', " "),
            shown_outputs(&d.live),
            shown_outputs(&d.candidate)
        );
    }
    page("Event", &body).into_response()
}

/// A chain's outputs (or error) as a shadow comparison shows them, escaped.
fn shown_outputs(side: &Result<Vec<serde_json::Value>, String>) -> String {
    match side {
        Ok(outputs) => esc(&serde_json::to_string_pretty(outputs).unwrap_or_default()),
        Err(e) => format!("error: {}", esc(e)),
    }
}

/// Most body text a page shows.
const SHOWN: usize = 64 * 1024;

fn body_block(text: Option<&str>, base64: Option<&str>, size: u64) -> String {
    match (text, base64) {
        (Some(text), _) => {
            let pretty = serde_json::from_str::<serde_json::Value>(text)
                .ok()
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
                .unwrap_or_else(|| text.to_string());
            let mut end = pretty.len().min(SHOWN);
            while !pretty.is_char_boundary(end) {
                end -= 1;
            }
            let more = if end < pretty.len() {
                format!("<p>(first {SHOWN} bytes of {size})</p>")
            } else {
                String::new()
            };
            format!("<pre>{}</pre>{more}", esc(&pretty[..end]))
        }
        (None, Some(_)) => {
            format!("<p>{size} bytes of binary data (the JSON API has it in base64).</p>")
        }
        (None, None) => "<p>Empty.</p>".to_string(),
    }
}

fn delivery_block(d: &views::DeliveryView) -> String {
    let mut out = format!(
        "<h3>{} <span class=\"{}\">{}</span></h3><p><code>{}</code> · {} attempt(s)",
        esc(&d.destination),
        esc(&d.status),
        esc(&d.status),
        esc(&d.id),
        d.attempts
    );
    if let Some(next) = d.next_attempt_at {
        let _ = write!(out, " · next at {}", time(next));
    }
    if let Some(e) = &d.last_error {
        let _ = write!(out, " · {}", esc(e));
    }
    out.push_str("</p>");
    if d.status != DeliveryStatus::Delivered.as_str() {
        let _ = write!(
            out,
            "<form method=\"post\" action=\"/ui/deliveries/{}/retry\"><button>Retry now</button></form>",
            enc(&d.id)
        );
    }
    if let Some(attempts) = &d.attempt_log
        && !attempts.is_empty()
    {
        out.push_str(
            "<table><tr><th>#</th><th>started</th><th>status</th><th>latency</th><th>error</th>\
             <th>trace</th></tr>",
        );
        for a in attempts {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} ms</td><td>{}</td><td><code>{}</code></td></tr>",
                a.number,
                time(a.started_at),
                a.status_code.map(|c| c.to_string()).unwrap_or_default(),
                a.latency_ms,
                esc(a.error.as_deref().unwrap_or("")),
                esc(a.trace_id.as_deref().unwrap_or(""))
            );
        }
        out.push_str("</table>");
    }
    out
}

async fn deliveries_page(State(admin): State<Arc<Admin>>, Query(q): Query<ListQuery>) -> Response {
    let filter = match q.delivery_filter() {
        Ok(f) => DeliveryFilter {
            limit: Some(q.limit.unwrap_or(50).clamp(1, 500)),
            ..f
        },
        Err(e) => {
            return page_response(
                StatusCode::BAD_REQUEST,
                "Deliveries",
                &format!("<p>{}</p>", esc(&e)),
            );
        }
    };
    let limit = filter.limit.unwrap_or(50);
    let deliveries = match admin.store.deliveries(filter).await {
        Ok(d) => d,
        Err(e) => return failure(e),
    };
    let title = if q.status.as_deref() == Some("dead") {
        "Dead letters"
    } else {
        "Deliveries"
    };
    let mut body = tabs(
        "/ui/deliveries",
        &["pending", "retrying", "delivered", "dead"],
        q.status.as_deref(),
    );
    body.push_str(&super::console::retry_link(&q));
    body.push_str(
        "<table><tr><th>created</th><th>delivery</th><th>event</th><th>destination</th>\
         <th>status</th><th>attempts</th><th>last error</th><th></th></tr>",
    );
    let page_of = views::Page::new(
        deliveries
            .into_iter()
            .map(views::DeliveryView::from)
            .collect(),
        limit,
        |d| d.seq,
    );
    for d in &page_of.items {
        let retry = if d.status == DeliveryStatus::Delivered.as_str() {
            String::new()
        } else {
            format!(
                "<form method=\"post\" action=\"/ui/deliveries/{}/retry\"><button>Retry now</button></form>",
                enc(&d.id)
            )
        };
        let _ = write!(
            body,
            "<tr><td>{}</td><td><code>{}</code></td><td><a href=\"/ui/events/{}\"><code>{}</code></a></td>\
             <td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td><td>{retry}</td></tr>",
            time(d.created_at),
            esc(&d.id),
            enc(&d.event_id),
            esc(&d.event_id),
            esc(&d.destination),
            esc(&d.status),
            esc(&d.status),
            d.attempts,
            esc(d.last_error.as_deref().unwrap_or("")),
        );
    }
    body.push_str("</table>");
    if page_of.items.is_empty() {
        body.push_str("<p>No deliveries.</p>");
    }
    body.push_str(&older(
        "/ui/deliveries",
        page_of.next_before,
        q.status.as_deref(),
    ));
    page(title, &body).into_response()
}

async fn destinations_page(State(admin): State<Arc<Admin>>) -> Response {
    let (paused, backlog) =
        match tokio::try_join!(admin.store.paused_destinations(), admin.store.backlog()) {
            Ok(read) => read,
            Err(e) => return failure(e),
        };
    let snapshot = admin.live.get();
    let names = super::destination_names(&snapshot, &paused);
    let now = crate::store::now_ms();
    let age = |oldest: Option<Millis>| {
        oldest.map_or("-".to_string(), |_| {
            format!("{} s", crate::backlog::age_secs(oldest, now))
        })
    };
    let mut body = String::from(
        "<table><tr><th>destination</th><th>state</th><th>waiting</th><th>due now</th>\
         <th>oldest waiting</th><th></th></tr>",
    );
    for name in names {
        let waiting = backlog.deliveries.iter().find(|w| &w.name == name);
        let counts = format!(
            "<td>{}</td><td>{}</td><td>{}</td>",
            waiting.map_or(0, |w| w.count),
            waiting.map_or(0, |w| w.ready),
            age(waiting.and_then(|w| w.oldest))
        );
        match paused.iter().find(|(n, _)| n == name) {
            Some((_, reason)) => {
                let _ = write!(
                    body,
                    "<tr><td>{}</td><td class=\"dead\">paused: {}</td>{counts}<td><form method=\"post\" \
                     action=\"/ui/destinations/{}/resume\"><button>Resume</button></form></td></tr>",
                    esc(name),
                    esc(reason),
                    enc(name)
                );
            }
            None => {
                let _ = write!(
                    body,
                    "<tr><td>{}</td><td class=\"delivered\">active</td>{counts}<td></td></tr>",
                    esc(name)
                );
            }
        }
    }
    body.push_str("</table>");
    match super::poll_views(&admin).await {
        Ok(polls) if !polls.is_empty() => {
            body.push_str(
                "<h2>Polled sources</h2><table><tr><th>route</th><th>source</th><th>every</th>\
                 <th>cursor</th><th>last poll</th><th>failures in a row</th><th>new items</th></tr>",
            );
            for p in &polls {
                let text =
                    |v: &serde_json::Value| v.as_str().map(esc).unwrap_or_else(|| "-".into());
                let status = &p["status"];
                let last = match (status["last_at"].as_i64(), status["last"].as_str()) {
                    (Some(at), Some(what)) => {
                        format!("{} s ago: {}", (now - at).max(0) / 1000, esc(what))
                    }
                    _ => "not yet".into(),
                };
                let failures = status["failures"].as_u64().unwrap_or(0);
                let _ = write!(
                    body,
                    "<tr><td>{}</td><td>{}</td><td>{} ms</td><td>{}</td><td{}>{last}</td><td>{failures}</td><td>{}</td></tr>",
                    text(&p["route"]),
                    text(&p["url"]),
                    p["every_ms"].as_u64().unwrap_or(0),
                    text(&p["cursor"]),
                    if failures > 0 { " class=\"dead\"" } else { "" },
                    status["items"].as_u64().unwrap_or(0),
                );
            }
            body.push_str("</table>");
        }
        Ok(_) => {}
        Err(e) => return failure(e),
    }
    body.push_str("<h2>Events waiting for their plugins</h2>");
    if backlog.events.is_empty() {
        body.push_str("<p>None.</p>");
    } else {
        body.push_str("<table><tr><th>route</th><th>waiting</th><th>oldest waiting</th></tr>");
        for w in &backlog.events {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&w.name),
                w.count,
                age(w.oldest)
            );
        }
        body.push_str("</table>");
    }
    page("Destinations and backlog", &body).into_response()
}

async fn replay_event(State(admin): State<Arc<Admin>>, Path(id): Path<String>) -> Response {
    match admin
        .store
        .replay_events(EventFilter::default(), Some(vec![id.clone()]))
        .await
    {
        Ok(0) => page_response(StatusCode::NOT_FOUND, "Event", "<p>No such event.</p>"),
        Ok(_) => Redirect::to(&format!("/ui/events/{}", enc(&id))).into_response(),
        Err(e) => failure(e),
    }
}

async fn retry_delivery(State(admin): State<Arc<Admin>>, Path(id): Path<String>) -> Response {
    event_page_of(super::retry(&admin, &id).await)
}

/// Off to the page of the event a delivery belongs to (or why not).
fn event_page_of(found: Result<Option<crate::store::Delivery>, StoreError>) -> Response {
    match found {
        Ok(Some(d)) => {
            Redirect::to(&format!("/ui/events/{}", enc(&d.new.event_id))).into_response()
        }
        Ok(None) => page_response(
            StatusCode::NOT_FOUND,
            "Delivery",
            "<p>No such delivery.</p>",
        ),
        Err(e) => failure(e),
    }
}

async fn resume_destination(State(admin): State<Arc<Admin>>, Path(name): Path<String>) -> Response {
    match super::resume(&admin, &name).await {
        Ok(true) => Redirect::to("/ui/destinations").into_response(),
        Ok(false) => page_response(
            StatusCode::NOT_FOUND,
            "Destination",
            "<p>No such destination.</p>",
        ),
        Err(e) => failure(e),
    }
}

/// `/ui/shadow`: each route's live shadow: counts by verdict, and the latest differences with
/// the live and candidate outputs side by side.
async fn shadow_page(State(admin): State<Arc<Admin>>) -> Response {
    let reports = super::shadow_reports(&admin);
    let mut body = String::new();
    if reports.is_empty() {
        body.push_str(
            "<p>No plugin has a <code>shadow</code> candidate. Set <code>shadow = \"new.wasm\"</code> \
             under <code>[plugins.&lt;name&gt;]</code> to run one beside the live version.</p>",
        );
    }
    for (route, report) in &reports {
        let counts: Vec<String> = report
            .verdicts
            .iter()
            .map(|(v, n)| format!("{n} {}", v.replace('_', " ")))
            .collect();
        let _ = write!(
            body,
            "<h2>{}</h2><p>{} events compared: {}</p>",
            esc(route),
            report.verdicts.values().sum::<u64>(),
            esc(&counts.join(", "))
        );
        if report.recent.is_empty() {
            continue;
        }
        body.push_str(
            "<table><tr><th>event</th><th>verdict</th><th>live</th><th>candidate</th></tr>",
        );
        for d in report.recent.iter().rev() {
            let _ = write!(
                body,
                "<tr><td><a href=\"/ui/events/{}\">{}</a></td><td>{}</td><td><pre>{}</pre></td><td><pre>{}</pre></td></tr>",
                enc(&d.event),
                esc(&d.event),
                d.verdict.as_str().replace('_', " "),
                shown_outputs(&d.live),
                shown_outputs(&d.candidate)
            );
        }
        body.push_str("</table>");
    }
    page("Shadow", &body).into_response()
}

async fn alerts_page(State(admin): State<Arc<Admin>>) -> Response {
    let view = match super::alerts_view(&admin, 50).await {
        Ok(v) => v,
        Err(e) => return failure(e),
    };
    let mut body = String::new();
    if !view.configured {
        body.push_str(
            "<p>No <code>[alerts]</code> in the config: nobody is told when deliveries die. \
             See docs/operations.md, \"Alerts\".</p>",
        );
    }
    let subject = |s: &std::collections::HashMap<String, String>| {
        s.iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    body.push_str("<h2>Open on this node</h2>");
    if view.open.is_empty() {
        body.push_str("<p>Nothing open.</p>");
    } else {
        body.push_str(
            "<table><tr><th>condition</th><th>subject</th><th>since</th><th>count</th><th>latest</th></tr>",
        );
        for o in &view.open {
            let _ = write!(
                body,
                "<tr><td class=\"failed\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&o.alert),
                esc(&subject(&o.subject)),
                time(o.since),
                o.count,
                esc(o.detail.as_deref().unwrap_or(""))
            );
        }
        body.push_str("</table>");
    }
    body.push_str("<h2>Latest alerts</h2>");
    if view.recent.is_empty() {
        body.push_str("<p>None raised.</p>");
    } else {
        body.push_str(
            "<table><tr><th>raised</th><th>condition</th><th>state</th><th>subject</th><th>summary</th><th>sent as</th></tr>",
        );
        for r in &view.recent {
            let class = if r.alert.state == "firing" {
                "failed"
            } else {
                "delivered"
            };
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td class=\"{class}\">{}</td><td>{}</td><td>{}</td>\
                 <td><a href=\"/ui/events/{}\">{}</a></td></tr>",
                time(r.alert.at),
                esc(&r.alert.alert),
                esc(&r.alert.state),
                esc(&subject(&r.alert.subject)),
                esc(&r.alert.summary),
                enc(&r.event_id),
                esc(&r.event_id)
            );
        }
        body.push_str("</table>");
    }
    page("Alerts", &body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_shown_is_escaped() {
        assert_eq!(
            esc(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
    }

    #[test]
    fn the_session_follows_the_token() {
        assert_eq!(session_value("a-token"), session_value("a-token"));
        assert_ne!(session_value("a-token"), session_value("another-token"));
        assert_eq!(session_value("a-token").len(), 64);
    }
}
