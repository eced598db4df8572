//! Polled routes: a local API whose list of items grows between polls; the real binary
//! polls it, turns each new item into an event, and delivers it once, across a restart;
//! `429` with `Retry-After` is honoured; `hookyard poll --dry-run` shows what a poll finds.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;

use crate::support::postgres::PgCluster;
use crate::support::*;

/// A paginated API of orders, two to a page, newest last, filtered by `updated_since`.
#[derive(Default)]
struct Api {
    orders: Vec<serde_json::Value>,
    /// Each request's query, and when it came.
    requests: Vec<(HashMap<String, String>, Instant)>,
    /// The `Authorization` of each request.
    authorizations: Vec<Option<String>>,
    /// The `hookyard-poller` (node) of each request.
    pollers: Vec<String>,
    /// Answers to give first, before the list (status, Retry-After).
    refusals: Vec<(u16, Option<&'static str>)>,
}

type Shared = Arc<Mutex<Api>>;

async fn orders(
    State(api): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    headers: axum::http::HeaderMap,
) -> Response {
    let mut api = api.lock().unwrap();
    api.pollers.push(
        headers
            .get("hookyard-poller")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string(),
    );
    api.authorizations.push(
        headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    );
    api.requests.push((q.clone(), Instant::now()));
    if !api.refusals.is_empty() {
        let (status, after) = api.refusals.remove(0);
        let mut r = (StatusCode::from_u16(status).unwrap(), "slow down").into_response();
        if let Some(a) = after {
            r.headers_mut().insert("retry-after", a.parse().unwrap());
        }
        return r;
    }
    let since = q.get("updated_since").cloned().unwrap_or_default();
    let fresh: Vec<_> = api
        .orders
        .iter()
        .filter(|o| o["updated_at"].as_str().unwrap() > since.as_str())
        .cloned()
        .collect();
    let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    let slice: Vec<_> = fresh.iter().skip((page - 1) * 2).take(2).cloned().collect();
    let next = (fresh.len() > page * 2).then(|| {
        let mut link = format!("/v1/orders?page={}", page + 1);
        if !since.is_empty() {
            link.push_str(&format!("&updated_since={since}"));
        }
        link
    });
    axum::Json(serde_json::json!({ "data": slice, "links": { "next": next } })).into_response()
}

async fn start_api() -> (SocketAddr, Shared) {
    let api: Shared = Default::default();
    let app = axum::Router::new()
        .route("/v1/orders", axum::routing::get(orders))
        .with_state(api.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, api)
}

fn add_orders(api: &Shared, range: std::ops::RangeInclusive<u32>) {
    let mut api = api.lock().unwrap();
    for n in range {
        api.orders.push(serde_json::json!({
            "id": format!("o-{n}"),
            "updated_at": format!("2026-12-01T10:00:{n:02}Z"),
            "kind": "order.created",
            "total": n * 10,
        }));
    }
}

fn polled_route(api: SocketAddr, every: &str) -> String {
    format!(
        r#"[[routes]]
name = "orders"
to = ["sink"]
[routes.poll]
url = "http://{api}/v1/orders"
every = "{every}"
items = "/data"
id = "/id"
next = "/links/next"
cursor = "/updated_at"
event_type = "/kind"
query = {{ updated_since = "{{{{ cursor }}}}" }}
auth = {{ bearer = "api-token-123" }}
"#
    )
}

/// The order ids the sink received, as they came.
fn delivered_ids(receiver: &Receiver) -> Vec<String> {
    receiver
        .received()
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_polled_api_becomes_events_each_delivered_once_across_a_restart() {
    let (addr, api) = start_api().await;
    add_orders(&api, 1..=3);
    let receiver = Receiver::start().await;
    let mut router =
        Router::start(&with_sink(&receiver, &polled_route(addr, "200ms"))).expect("router starts");
    receiver.wait_for(3, Duration::from_secs(20)).await;
    add_orders(&api, 4..=5);
    receiver.wait_for(5, Duration::from_secs(20)).await;

    // Restarted as an operator does it (SIGTERM): deliveries in flight finish and are
    // recorded. (After a crash a delivery may repeat, with the same hookyard-delivery-id;
    // the items themselves are journaled once either way, checked below.)
    router.terminate().expect("router stops");
    router.restart().expect("router restarts");
    add_orders(&api, 6..=6);
    receiver.wait_for(6, Duration::from_secs(20)).await;
    // A few more polls, to catch any redelivery.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut ids = delivered_ids(&receiver);
    ids.sort();
    assert_eq!(
        ids,
        ["o-1", "o-2", "o-3", "o-4", "o-5", "o-6"],
        "each order once"
    );

    let requests = api.lock().unwrap().requests.clone();
    assert!(
        requests
            .iter()
            .any(|(q, _)| q.get("page").map(String::as_str) == Some("2")),
        "the second page was followed"
    );
    assert!(
        requests.iter().any(
            |(q, _)| q.get("updated_since").map(String::as_str) == Some("2026-12-01T10:00:05Z")
        ),
        "the cursor survived the restart and was offered: {:?}",
        requests.iter().map(|(q, _)| q.clone()).collect::<Vec<_>>()
    );
    assert!(
        api.lock()
            .unwrap()
            .authorizations
            .iter()
            .all(|a| a.as_deref() == Some("Bearer api-token-123")),
        "every poll carries the configured auth"
    );
    assert_eq!(
        router.count("SELECT count(*) FROM events"),
        6,
        "each item journaled once"
    );
    let typed: i64 = router.count("SELECT count(*) FROM events WHERE event_type = 'order.created'");
    assert_eq!(typed, 6);
    let (status, text) = post(&router, "orders", &[], b"{}").await;
    assert_eq!(status, 405, "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_busy_api_is_waited_for_as_its_retry_after_says() {
    let (addr, api) = start_api().await;
    add_orders(&api, 1..=2);
    api.lock().unwrap().refusals = vec![(429, Some("2")), (503, None)];
    let receiver = Receiver::start().await;
    let router =
        Router::start(&with_sink(&receiver, &polled_route(addr, "100ms"))).expect("router starts");
    // While it waits, the admin API says why.
    let mut seen_busy = false;
    for _ in 0..40 {
        let (_, polls) = admin(&router, "GET", "/admin/polls", None).await;
        let status = &polls["polls"][0]["status"];
        if status["failures"].as_u64() >= Some(1) {
            assert!(status["last"].as_str().unwrap().contains("429"), "{polls}");
            seen_busy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen_busy, "the 429 shows in /admin/polls");
    receiver.wait_for(2, Duration::from_secs(20)).await;
    let times: Vec<Instant> = api
        .lock()
        .unwrap()
        .requests
        .iter()
        .map(|(_, t)| *t)
        .collect();
    assert!(times.len() >= 3, "{} requests", times.len());
    let waited = times[1] - times[0];
    assert!(
        waited >= Duration::from_millis(1900),
        "Retry-After: 2 was honoured ({waited:?} between the 429 and the next poll)"
    );
    let backed_off = times[2] - times[1];
    assert!(
        backed_off >= Duration::from_millis(190),
        "a 503 without Retry-After backs off ({backed_off:?})"
    );
    let mut ids = delivered_ids(&receiver);
    ids.sort();
    assert_eq!(ids, ["o-1", "o-2"]);
    let (status, polls) = admin(&router, "GET", "/admin/polls", None).await;
    assert_eq!(status, 200);
    let orders = &polls["polls"][0];
    assert_eq!(orders["route"], "orders");
    assert_eq!(orders["url"], format!("http://{addr}/v1/orders"));
    assert_eq!(orders["cursor"], "2026-12-01T10:00:02Z");
    assert_eq!(orders["status"]["items"], 2);
    assert_eq!(orders["status"]["failures"], 0);
    // A dry run starts from the router's cursor: nothing newer yet.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookyard"))
        .args(["poll", "orders", "--dry-run", "-c"])
        .arg(router.config_path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("from the router's cursor: 2026-12-01T10:00:02Z") && said.contains("0 items"),
        "{said}"
    );
    // The UI shows the same on the destinations page.
    let html = ui_page(&router, "/ui/destinations").await;
    assert!(
        html.contains("Polled sources") && html.contains("2026-12-01T10:00:02Z"),
        "{html}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn poll_dry_run_prints_what_the_next_poll_would_find_and_journals_nothing() {
    let (addr, api) = start_api().await;
    add_orders(&api, 1..=3);
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{}\n[destinations.sink]\nurl = \"http://127.0.0.1:9\"\n\n{}",
        SERVER.replace("{PORT}", "0").replace("{ADMIN_PORT}", "0"),
        polled_route(addr, "1m")
    );
    let path = dir.path().join("router.toml");
    std::fs::write(&path, config).unwrap();
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_hookyard"))
            .args(["poll", "orders", "--once", "--dry-run", "-c"])
            .arg(&path)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["id"], "o-1");
    assert_eq!(lines[0]["event_type"], "order.created");
    assert_eq!(lines[2]["body"]["total"], 30);
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(
        summary.contains("3 items on 2 page(s); cursor after this poll: 2026-12-01T10:00:03Z"),
        "{summary}"
    );
    let out = run(&["--cursor", "2026-12-01T10:00:02Z"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(!dir.path().join("data").exists(), "nothing was journaled");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookyard"))
        .args(["poll", "orders", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("polls \"orders\" by itself"));
}

#[tokio::test(flavor = "multi_thread")]
async fn two_nodes_on_one_postgres_poll_a_source_once_and_the_other_takes_over() {
    let cluster = PgCluster::start().expect("PostgreSQL starts");
    let url = cluster.new_database().await;
    let (addr, api) = start_api().await;
    add_orders(&api, 1..=3);
    let receiver = Receiver::start().await;
    let config = with_sink(&receiver, &polled_route(addr, "200ms")).replace(
        "url = \"sqlite://data/hookyard.db\"",
        &format!("url = \"{url}\"\nmax_connections = 4"),
    );
    let a = Router::start(&config).expect("router a starts");
    let b = Router::start(&config).expect("router b starts");
    receiver.wait_for(3, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pollers: std::collections::HashSet<String> =
        api.lock().unwrap().pollers.iter().cloned().collect();
    assert_eq!(pollers.len(), 1, "one node polls the source: {pollers:?}");
    let polls_before = api.lock().unwrap().pollers.len();
    assert!(
        polls_before >= 5,
        "it polls on schedule ({polls_before} polls)"
    );

    // The node that polls stops; the other takes the lease over once it lapses.
    let holder = pollers.iter().next().unwrap().clone();
    let (mut gone, mut other) = (a, b);
    if !gone.log().contains(&holder) {
        std::mem::swap(&mut gone, &mut other);
    }
    assert!(
        gone.log().contains(&holder),
        "the polling node names itself in its log"
    );
    gone.kill();
    add_orders(&api, 4..=4);
    receiver.wait_for(4, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mut ids = delivered_ids(&receiver);
    ids.sort();
    assert_eq!(
        ids,
        ["o-1", "o-2", "o-3", "o-4"],
        "each order once across both nodes"
    );
}
