//! Ingress: `POST /hooks/<route>`. Limits the body, verifies it, journals it, and answers
//! 2xx only once the event is durable. Also `GET /healthz` and `GET /readyz`.
//!
//! Answers: 202 stored (`{"id": ...}`), 200 duplicate, 401 bad signature, 404 unknown route,
//! 405 wrong method, 408 body too slow, 413 body too large, 503 store unavailable or
//! backlog at `server.max_backlog` (with `Retry-After`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ipnet::IpNet;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderName, Request, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::{BodyExt, Limited};
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::backlog::{Backpressure, RETRY_AFTER_SECS};
use crate::dispatch::Handoff;
use crate::live::Live;
use crate::shutdown::Shutdown;
use crate::store::{Appended, LEARNED_SECRETS, NewEvent, Store, new_id, now_ms};
use crate::telemetry::Metrics;
use crate::trace;
use crate::verify::{Answer, GetHandshake, Request as VerifyRequest};

/// What the ingress handlers share.
pub struct Ingress {
    /// The routes in use (hot reload swaps them).
    pub live: Arc<Live>,
    /// The journal.
    pub store: Arc<dyn Store>,
    /// Hands stored events to the dispatcher, in memory when it has room.
    pub dispatch: Handoff,
    /// Largest body accepted.
    pub max_body: usize,
    /// Longest a body may take to arrive.
    pub body_timeout: Duration,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Fired when the router is stopping; `/readyz` then answers 503.
    pub shutdown: Shutdown,
    /// Request counters.
    pub metrics: Arc<Metrics>,
    /// How long a new event stays claimed by this node (`runtime.event_lease`).
    pub event_lease: Duration,
    /// How long a request waits for room in the memory queue (`runtime.memory_queue_wait`).
    pub memory_queue_wait: Duration,
    /// `server.max_backlog`: refuse new events while this much work waits.
    pub backpressure: Arc<Backpressure>,
    /// Whether the store answers; `/readyz` says 503 while it does not.
    pub store_health: Arc<StoreHealth>,
    /// Per-minute activity for the console's charts.
    pub activity: crate::activity::Activity,
}

/// The longest a request waits for its event to be journaled before it is answered 503: a
/// store that hangs (a network partition) must not hold providers' requests for minutes.
pub const APPEND_DEADLINE: Duration = Duration::from_secs(10);
/// What a provider is told to wait when the store cannot journal its event: longer than a
/// full backlog's wait, since a store outage is rarely over in seconds.
const STORE_RETRY_AFTER_SECS: u64 = 30;
/// The longest the health probe waits for the store.
const PROBE_DEADLINE: Duration = Duration::from_secs(2);

/// Whether the store answers, from the appends themselves and a probe every second, so a
/// load balancer stops sending to a node whose store is gone (`/readyz`).
#[derive(Debug, Default)]
pub struct StoreHealth {
    failing: std::sync::atomic::AtomicBool,
}

impl StoreHealth {
    /// Records the outcome of a store call; a change either way is logged once.
    pub fn record(&self, outcome: Result<(), String>) {
        use std::sync::atomic::Ordering;
        match outcome {
            // Every journal write lands here: a plain load unless the state changes.
            Ok(()) if !self.failing.load(Ordering::Acquire) => {}
            Ok(()) => {
                if self.failing.swap(false, Ordering::AcqRel) {
                    tracing::info!("the event store answers again");
                }
            }
            Err(e) => {
                if !self.failing.swap(true, Ordering::AcqRel) {
                    tracing::error!(error = %e, "the event store is failing");
                }
            }
        }
    }

    /// Whether the store is failing now.
    pub fn is_failing(&self) -> bool {
        self.failing.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Probes the store every second until `shutdown`.
    pub async fn watch(self: Arc<Self>, store: Arc<dyn Store>, mut shutdown: Shutdown) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.wait() => return,
            }
            let outcome = match tokio::time::timeout(PROBE_DEADLINE, store.ping()).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no answer within {}s", PROBE_DEADLINE.as_secs())),
            };
            self.record(outcome);
        }
    }
}

/// The TCP peer of a connection, attached to each of its requests.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// The client's address: the peer, or, when the peer is a trusted proxy, the right-most
/// address in `X-Forwarded-For` that is not itself a trusted proxy. `None` when that cannot
/// be told: an entry the walk reaches that is not an address (`unknown`, garbage) ends it,
/// since everything to its left was written by someone no trusted proxy vouches for.
///
/// Entries may carry a port (`203.0.113.9:4711`, `[2001:db8::1]:4711`), as some proxies
/// write them; IPv4-mapped IPv6 addresses (`::ffff:203.0.113.9`, what a `[::]` listener sees
/// for IPv4 peers) are read as the IPv4 address, so IPv4 CIDRs match them.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let entries: Vec<Option<IpAddr>> = headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|v| match v.to_str() {
            Ok(text) => text.split(',').map(forwarded_addr).collect(),
            Err(_) => vec![None],
        })
        .collect();
    let mut nearest = peer;
    for entry in entries.iter().rev() {
        let ip = (*entry)?;
        if !is_trusted(&ip) {
            return Some(ip);
        }
        nearest = ip;
    }
    // Every hop is a trusted proxy: the request started at the left-most of them.
    Some(nearest)
}

/// One `X-Forwarded-For` entry as an address: `ip`, `ip:port`, `[ipv6]` or `[ipv6]:port`.
fn forwarded_addr(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let ip = if let Ok(ip) = entry.parse::<IpAddr>() {
        ip
    } else if let Ok(sock) = entry.parse::<SocketAddr>() {
        sock.ip()
    } else {
        entry.strip_prefix('[')?.strip_suffix(']')?.parse().ok()?
    };
    Some(ip.to_canonical())
}

/// Headers never journaled: they may carry credentials (the first three), or they describe
/// the connection to the router rather than the webhook (hop-by-hop headers, which an
/// intermediary does not pass on, and the length, which the stored body has).
const UNSTORED_HEADERS: [&str; 11] = [
    "authorization",
    "cookie",
    "proxy-authorization",
    "connection",
    "content-length",
    "expect",
    "keep-alive",
    "proxy-connection",
    "te",
    "transfer-encoding",
    "upgrade",
];

/// The provider-facing HTTP app.
pub fn router(ingress: Arc<Ingress>) -> Router {
    Router::new()
        .route("/hooks/{route}", post(receive).get(subscribe))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .fallback(|| async { reply(StatusCode::NOT_FOUND, "not found") })
        .with_state(ingress)
}

/// Ready while serving; 503 once shutdown has begun, so load balancers stop sending.
async fn ready(State(ingress): State<Arc<Ingress>>) -> Response {
    if ingress.shutdown.is_fired() {
        return reply(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    if ingress.store_health.is_failing() {
        return reply(StatusCode::SERVICE_UNAVAILABLE, "event store unavailable");
    }
    (StatusCode::OK, "ready\n").into_response()
}

/// A handshake's echo: `200`, plain text, never sniffed as anything else.
fn plain_text(text: String) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        text,
    )
        .into_response()
}

fn reply(status: StatusCode, reason: &str) -> Response {
    json(status, serde_json::json!({ "error": reason }))
}

fn json(status: StatusCode, value: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{value}\n"),
    )
        .into_response()
}

/// `200`, empty, carrying `name: value` (Asana's handshake wants its secret echoed so).
fn answer_with_header(name: &'static str, value: String) -> Response {
    match http::HeaderValue::from_str(&value) {
        Ok(v) => {
            let mut response = StatusCode::OK.into_response();
            response.headers_mut().insert(name, v);
            response
        }
        Err(_) => reply(StatusCode::BAD_REQUEST, "unusable handshake value"),
    }
}

/// A provider's handshake that hands over the route's secret (Asana, Notion): kept if the
/// route has none, and answered; refused with `409` if another is kept, since a later
/// unauthenticated request must never replace it (`hookyard secret forget` does). Never
/// journaled.
async fn learn_secret(
    ingress: &Ingress,
    route_name: &str,
    learning: &crate::verify::presets::Learning,
    offered: String,
) -> Response {
    let store = &ingress.store;
    let kept = match store
        .kv_set_if_absent(
            LEARNED_SECRETS,
            route_name,
            offered.clone().into_bytes(),
            None,
        )
        .await
    {
        Ok(true) => true,
        // A repeat of the same handshake (the provider retried) is answered again.
        Ok(false) => match store.kv_get(LEARNED_SECRETS, route_name).await {
            Ok(Some(held)) => bool::from(subtle::ConstantTimeEq::ct_eq(
                held.as_slice(),
                offered.as_bytes(),
            )),
            Ok(None) => false,
            Err(e) => return store_unavailable(route_name, e),
        },
        Err(e) => return store_unavailable(route_name, e),
    };
    if !kept {
        tracing::warn!(route = %route_name, "refused a handshake: the route already keeps another secret");
        return reply(
            StatusCode::CONFLICT,
            "this route already keeps a secret from an earlier handshake; an operator can forget it (hookyard secret forget <route>)",
        );
    }
    learning.remember(Some(offered.clone().into_bytes()));
    tracing::info!(route = %route_name, "kept the secret from the provider's handshake");
    match learning.answer(&offered) {
        Answer::Header(name, value) => answer_with_header(name, value),
        _ => StatusCode::NO_CONTENT.into_response(),
    }
}

fn store_unavailable(route: &str, e: crate::store::StoreError) -> Response {
    tracing::error!(route, error = %e, "cannot keep the route's learned secret");
    reply(StatusCode::SERVICE_UNAVAILABLE, "event store unavailable")
}

/// `GET /hooks/<route>`: the endpoint checks some providers make before they post (see
/// [`crate::verify::Verifier::get_handshake`]); not an event. Other routes take only `POST`.
/// The route of that name that providers may reach (not the router's internal ones).
fn public_route(ingress: &Ingress, name: &str) -> Option<Arc<crate::live::Route>> {
    ingress
        .live
        .get()
        .routes
        .get(name)
        .filter(|r| !r.internal)
        .cloned()
}

async fn subscribe(
    State(ingress): State<Arc<Ingress>>,
    Path(route_name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let Some(route) = public_route(&ingress, &route_name) else {
        return reply(StatusCode::NOT_FOUND, "unknown route");
    };
    match route.verifier.get_handshake(&query, &headers, &uri) {
        GetHandshake::Echo(challenge) => {
            tracing::info!(route = %route_name, "answered the provider's endpoint check");
            plain_text(challenge)
        }
        GetHandshake::Json(answer) => {
            tracing::info!(route = %route_name, "answered the provider's endpoint check");
            json(StatusCode::OK, answer)
        }
        GetHandshake::BadRequest(reason) => reply(StatusCode::BAD_REQUEST, reason),
        GetHandshake::Refused(reason) => {
            tracing::info!(route = %route_name, "refused an endpoint check");
            reply(StatusCode::FORBIDDEN, reason)
        }
        GetHandshake::NotOffered => {
            reply(StatusCode::METHOD_NOT_ALLOWED, "webhooks are POSTed here")
        }
    }
}

/// `POST /hooks/<route>`, counted by route and outcome.
async fn receive(
    State(ingress): State<Arc<Ingress>>,
    Path(route_name): Path<String>,
    request: Request<Body>,
) -> Response {
    let metrics = ingress.metrics.clone();
    let known = ingress.live.get().routes.contains_key(&route_name);
    let span = tracing::info_span!(
        target: trace::TARGET,
        "ingress",
        otel.kind = "server",
        hookyard.route = %route_name,
        hookyard.event_id = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
    );
    if let Some(sender) = trace::sender_context(request.headers()) {
        let _ = span.set_parent(sender);
    }
    let response = handle_hook(ingress, route_name.clone(), request)
        .instrument(span.clone())
        .await;
    span.record(
        "http.response.status_code",
        i64::from(response.status().as_u16()),
    );
    if known {
        let outcome = match response.status().as_u16() {
            202 => "accepted",
            200 => "duplicate",
            401 => "unauthorized",
            403 => "forbidden",
            408 => "timeout",
            413 => "too_large",
            503 => "unavailable",
            _ => "bad_request",
        };
        metrics.inc(
            "hookyard_requests_total",
            &[("route", &route_name), ("outcome", outcome)],
        );
    }
    response
}

async fn handle_hook(
    ingress: Arc<Ingress>,
    route_name: String,
    request: Request<Body>,
) -> Response {
    let Some(route) = public_route(&ingress, &route_name) else {
        return reply(StatusCode::NOT_FOUND, "unknown route");
    };
    if route.poll.is_some() {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "this route is polled, not posted to",
        );
    }
    let (parts, body) = request.into_parts();
    if let Some(allowed) = &route.allow_ips {
        let client = parts
            .extensions
            .get::<PeerAddr>()
            .and_then(|p| client_ip(p.0.ip(), &parts.headers, &ingress.trusted_proxies));
        if !client.is_some_and(|ip| allowed.iter().any(|net| net.contains(&ip))) {
            tracing::info!(route = %route_name, client = ?client, "rejected request from a network not in allow_ips");
            return reply(StatusCode::FORBIDDEN, "client address not allowed");
        }
    }
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > ingress.max_body as u64) {
        return reply(StatusCode::PAYLOAD_TOO_LARGE, "body too large");
    }
    let body = match tokio::time::timeout(
        ingress.body_timeout,
        Limited::new(body, ingress.max_body).collect(),
    )
    .await
    {
        Err(_) => return reply(StatusCode::REQUEST_TIMEOUT, "body not received in time"),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return reply(StatusCode::PAYLOAD_TOO_LARGE, "body too large");
        }
        Ok(Err(_)) => return reply(StatusCode::BAD_REQUEST, "body could not be read"),
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    if let Some(token) = route
        .verifier
        .unauthenticated_handshake(&parts.uri, &parts.headers, &body)
    {
        tracing::info!(route = %route_name, "answered the provider's validation request");
        return plain_text(token);
    }
    if let Some(learning) = route.verifier.learning() {
        if let Some(offered) = learning.offered(&parts.headers, &body) {
            return learn_secret(&ingress, &route_name, learning, offered).await;
        }
        if learning.is_stale() {
            match ingress.store.kv_get(LEARNED_SECRETS, &route_name).await {
                Ok(secret) => learning.remember(secret),
                Err(e) => {
                    tracing::error!(route = %route_name, error = %e, "cannot read the route's learned secret");
                    return reply(StatusCode::SERVICE_UNAVAILABLE, "event store unavailable");
                }
            }
        }
    }
    let verified = match verify_off_reactor_if_large(&route, &parts, &body)
        .instrument(tracing::info_span!(target: trace::TARGET, "verify"))
        .await
    {
        Ok(v) => v,
        Err(e) => {
            tracing::info!(route = %route_name, reason = %e, "rejected unverified request");
            return reply(StatusCode::UNAUTHORIZED, &e.to_string());
        }
    };
    if let Some(answer) = route.verifier.handshake(&parts.headers, &body) {
        // Answered by the router itself: never journaled, never sent to plugins.
        tracing::info!(route = %route_name, "answered the provider's handshake");
        return match answer {
            Answer::Json(value) => json(StatusCode::OK, value),
            Answer::Text(text) => plain_text(text),
            Answer::NoContent => StatusCode::NO_CONTENT.into_response(),
            Answer::Header(name, value) => answer_with_header(name, value),
        };
    }
    if !ingress.backpressure.admit() {
        tracing::info!(route = %route_name, "backlog at server.max_backlog; asking the sender to retry");
        let mut response = reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "too much work waiting (server.max_backlog); retry later",
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, RETRY_AFTER_SECS.into());
        return response;
    }
    let delivery_id = route
        .dedup
        .delivery_id(&parts.headers, &body)
        .or(verified.delivery_id);
    let event = NewEvent {
        id: new_id("evt"),
        route: route_name.clone(),
        received_at: now_ms(),
        headers: journaled_headers(&parts.headers, route.verifier.credential_header()),
        event_type: verified
            .event_type
            .or_else(|| event_type(&parts.headers, &body)),
        dedup_key: delivery_id.map(|d| format!("{route_name}:{d}")),
        body: body.to_vec(),
        traceparent: trace::traceparent(&tracing::Span::current()),
    };
    tracing::Span::current().record("hookyard.event_id", event.id.as_str());
    // A slot in the in-memory queue, taken before journaling: with one the event is leased to
    // this node and handed over in memory; without one it is journaled unleased for the
    // dispatcher (of any node) to claim from the store at once. When the plugins are behind,
    // waiting a little for a slot paces acknowledgements to them: an event claimed back from
    // the store costs the store a claim and a read of its body, so taking that path under
    // sustained load makes the plugins fall further behind.
    let slot = ingress
        .dispatch
        .reserve_within(ingress.memory_queue_wait)
        .await;
    let (lease, copy) = match &slot {
        Some(_) => (ingress.event_lease, Some(event.clone())),
        None => (Duration::ZERO, None),
    };
    let id = event.id.clone();
    let appended = tokio::time::timeout(
        APPEND_DEADLINE,
        ingress.store.append_event(event, lease, route.dedup.window),
    )
    .instrument(tracing::info_span!(target: trace::TARGET, "journal"))
    .await
    .unwrap_or_else(|_| {
        Err(crate::store::StoreError::Database(format!(
            "no answer within {}s",
            APPEND_DEADLINE.as_secs()
        )))
    });
    ingress.store_health.record(match &appended {
        Err(e) => Err(e.to_string()),
        Ok(_) => Ok(()),
    });
    match appended {
        Ok(Appended::Stored) => {
            ingress.backpressure.accepted();
            ingress.activity.received(&route_name);
            match (slot, copy) {
                (Some(slot), Some(event)) => {
                    slot.send(event);
                }
                _ => {
                    ingress.metrics.inc(
                        "hookyard_events_queued_in_store_total",
                        &[("route", &route_name)],
                    );
                    ingress.dispatch.wake();
                }
            }
            json(StatusCode::ACCEPTED, serde_json::json!({ "id": id }))
        }
        Ok(Appended::Duplicate { original }) => json(
            StatusCode::OK,
            serde_json::json!({ "id": original, "duplicate": true }),
        ),
        Err(e) => {
            tracing::error!(route = %route_name, error = %e, "cannot journal event");
            let mut resp = reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "event store unavailable; retry later",
            );
            resp.headers_mut()
                .insert(header::RETRY_AFTER, STORE_RETRY_AFTER_SECS.into());
            resp
        }
    }
}

/// Bodies at least this large are verified on the blocking pool: hashing a body of several
/// MiB takes milliseconds, which must not stall the reactor thread that also serves other
/// requests, the admin API and deliveries.
const VERIFY_OFF_REACTOR: usize = 256 * 1024;

/// Checks the request against the route's verifier; on a blocking thread for large bodies.
async fn verify_off_reactor_if_large(
    route: &Arc<crate::live::Route>,
    parts: &http::request::Parts,
    body: &bytes::Bytes,
) -> Result<crate::verify::Verified, crate::verify::VerifyError> {
    let now = SystemTime::now();
    if body.len() < VERIFY_OFF_REACTOR {
        return route.verifier.verify(&VerifyRequest {
            headers: &parts.headers,
            body,
            uri: &parts.uri,
            now,
        });
    }
    let (route, headers, uri, body) = (
        route.clone(),
        parts.headers.clone(),
        parts.uri.clone(),
        body.clone(),
    );
    tokio::task::spawn_blocking(move || {
        route.verifier.verify(&VerifyRequest {
            headers: &headers,
            body: &body,
            uri: &uri,
            now,
        })
    })
    .await
    .unwrap_or_else(|e| Err(crate::verify::VerifyError::Interrupted(e.to_string())))
}

/// The headers to journal: all but [`UNSTORED_HEADERS`] and the route's own credential.
fn journaled_headers(
    headers: &HeaderMap,
    credential: Option<&HeaderName>,
) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(name, _)| !UNSTORED_HEADERS.contains(&name.as_str()))
        .filter(|(name, _)| Some(*name) != credential)
        .filter_map(|(name, value)| {
            Some((name.as_str().to_string(), value.to_str().ok()?.to_string()))
        })
        .collect()
}

/// The provider's event type: a known header, else a top-level `"type"` string in a JSON body
/// (Stripe and Standard Webhooks put it there).
pub fn event_type(headers: &HeaderMap, body: &[u8]) -> Option<String> {
    for name in ["x-github-event", "x-shopify-topic", "x-event-type"] {
        if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
            return Some(v.to_string());
        }
    }
    #[derive(serde::Deserialize)]
    struct Typed {
        #[serde(rename = "type")]
        kind: Option<String>,
    }
    if body.first().is_some_and(|b| *b == b'{') {
        return serde_json::from_slice::<Typed>(body)
            .ok()
            .and_then(|t| t.kind);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_type_prefers_provider_header_then_body_type() {
        let mut h = HeaderMap::new();
        assert_eq!(
            event_type(&h, br#"{"type":"charge.succeeded","data":{}}"#).as_deref(),
            Some("charge.succeeded")
        );
        assert_eq!(event_type(&h, b"not json"), None);
        h.insert("x-github-event", "push".parse().unwrap());
        assert_eq!(event_type(&h, br#"{"type":"x"}"#).as_deref(), Some("push"));
    }

    #[test]
    fn client_ip_believes_only_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "203.0.113.9, 198.51.100.7, 10.0.0.2".parse().unwrap(),
        );
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(
            client_ip(proxy, &h, &trusted),
            Some("198.51.100.7".parse::<IpAddr>().unwrap())
        );
        let stranger: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(
            client_ip(stranger, &h, &trusted),
            Some(stranger),
            "a forged header from an untrusted peer is ignored"
        );
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &trusted), Some(proxy));
    }

    fn forwarded(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", value.parse().unwrap());
        h
    }

    #[test]
    fn forwarded_entries_with_ports_are_read_and_unknown_ones_end_the_walk() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        // The attacker writes the left-hand entry; the proxy appends the real client with
        // its port. Dropping that entry used to hand the decision to the attacker's entry.
        let h = forwarded("192.168.1.50, 203.0.113.9:4711");
        assert_eq!(client_ip(proxy, &h, &trusted), ip("203.0.113.9"));
        let h = forwarded("192.168.1.50, [2001:db8::7]:4711, 10.0.0.3");
        assert_eq!(client_ip(proxy, &h, &trusted), ip("2001:db8::7"));
        assert_eq!(
            client_ip(proxy, &forwarded("[2001:db8::8]"), &trusted),
            ip("2001:db8::8")
        );
        for unreadable in ["192.168.1.50, unknown", "192.168.1.50, 10.0.0.3, garbage:x"] {
            assert_eq!(
                client_ip(proxy, &forwarded(unreadable), &trusted),
                None,
                "{unreadable}"
            );
        }
        // Entries left of the client do not matter, whatever they are.
        assert_eq!(
            client_ip(proxy, &forwarded("unknown, 203.0.113.9"), &trusted),
            ip("203.0.113.9")
        );
        // All hops trusted: the left-most started it.
        assert_eq!(
            client_ip(proxy, &forwarded("10.0.0.7, 10.0.0.3"), &trusted),
            ip("10.0.0.7")
        );
    }

    #[test]
    fn ipv4_mapped_peers_match_ipv4_networks() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mapped: IpAddr = "::ffff:198.51.100.7".parse().unwrap();
        assert_eq!(
            client_ip(mapped, &HeaderMap::new(), &trusted),
            Some("198.51.100.7".parse().unwrap())
        );
        let mapped_proxy: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(
            client_ip(mapped_proxy, &forwarded("::ffff:203.0.113.9"), &trusted),
            Some("203.0.113.9".parse().unwrap()),
            "a mapped proxy is trusted and a mapped entry is read as IPv4"
        );
    }

    #[test]
    fn credentials_and_connection_headers_are_not_journaled() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer secret".parse().unwrap());
        h.insert("content-length", "2".parse().unwrap());
        h.insert("connection", "keep-alive".parse().unwrap());
        h.insert("x-hub-signature-256", "sha256=00".parse().unwrap());
        h.insert("x-form-token", "form-secret".parse().unwrap());
        let kept = journaled_headers(&h, Some(&HeaderName::from_static("x-form-token")));
        assert_eq!(
            kept,
            vec![("x-hub-signature-256".to_string(), "sha256=00".to_string())]
        );
    }
}

/// Whatever a sender writes in `X-Forwarded-For` or the body: never a panic, and the client
/// address is the peer or one of the addresses written there.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn entry() -> impl Strategy<Value = String> {
        prop_oneof![
            "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}(:[0-9]{1,6})?",
            "\\[?[0-9a-f:]{2,40}\\]?(:[0-9]{1,6})?",
            "10\\.0\\.0\\.[0-9]{1,3}",
            "(unknown|_hidden|[ -~]{0,20})",
        ]
    }

    proptest! {
        #[test]
        fn any_forwarded_header_gives_the_peer_or_an_address_written_there(
            entries in proptest::collection::vec(entry(), 0..6),
            peer_trusted in any::<bool>(),
        ) {
            let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
            let peer: IpAddr = if peer_trusted { "10.0.0.1" } else { "192.0.2.1" }.parse().unwrap();
            let value = entries.join(",");
            let mut headers = HeaderMap::new();
            if let Ok(v) = value.parse() {
                headers.insert("x-forwarded-for", v);
            }
            match client_ip(peer, &headers, &trusted) {
                None => prop_assert!(peer_trusted),
                Some(ip) if ip == peer => {}
                Some(ip) => {
                    prop_assert!(peer_trusted);
                    prop_assert!(
                        entries.iter().any(|e| forwarded_addr(e) == Some(ip)),
                        "{ip} is not in {value:?}"
                    );
                }
            }
        }

        #[test]
        fn any_body_or_type_header_is_read_without_panicking(
            body in proptest::collection::vec(any::<u8>(), 0..300),
            header in "[ -~]{0,40}",
        ) {
            let mut headers = HeaderMap::new();
            let _ = event_type(&headers, &body);
            if let Ok(v) = header.parse() {
                headers.insert("x-event-type", v);
            }
            let _ = event_type(&headers, &body);
        }
    }
}
