//! The asynchronous half keeps up: events that miss the in-memory hand-off are claimed
//! from the store at once (not after a lease), requests wait a little for room in memory
//! rather than queue in the store, and `server.max_backlog` turns senders away
//! with 503 + Retry-After while too much waits, then accepts again once it drains.

use std::time::{Duration, Instant};

use crate::support::*;

fn config(receiver: &Receiver, server_extra: &str, runtime: &str) -> String {
    let server = SERVER.replace("[store]", &format!("{server_extra}\n[store]"));
    format!(
        r#"{server}
[runtime]
{runtime}

[destinations.sink]
url = "{}"
timeout = "30s"

[[routes]]
name = "in"
verify = {{ scheme = "none" }}
to = ["sink"]
"#,
        receiver.url("/")
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn events_that_miss_the_memory_queue_are_processed_promptly_not_after_their_lease() {
    let receiver = Receiver::start().await;
    // One slot in memory and one worker: most of a burst cannot be handed over in memory.
    // Before, such events waited out event_lease (here 60 s) before anyone claimed them.
    let router = Router::start(&config(
        &receiver,
        "",
        "concurrency = 1\nmemory_queue = 1\nmemory_queue_wait = \"0s\"\nevent_lease = \"60s\"",
    ))
    .expect("router starts");
    let started = Instant::now();
    burst_of_40(&router, &receiver).await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(30),
        "delivered in {took:?}, which is a lease, not a prompt claim"
    );
    let (queued_in_store, metrics) = queued_in_store(&router).await;
    assert!(
        queued_in_store > 0,
        "the burst did overflow the memory queue:\n{metrics}"
    );
    assert_eq!(
        router.count("SELECT COUNT(*) FROM events WHERE status = 'processed'"),
        40
    );
}

/// Posts 40 events at once, all accepted, and waits until the receiver has them all.
async fn burst_of_40(router: &Router, receiver: &Receiver) {
    let posts = (0..40).map(|n| {
        let body = format!("{{\"n\":{n}}}");
        async move { post(router, "in", &[], body.as_bytes()).await.0 }
    });
    let statuses = futures::future::join_all(posts).await;
    assert!(statuses.iter().all(|s| *s == 202), "{statuses:?}");
    receiver.wait_for(40, Duration::from_secs(20)).await;
}

/// `hookyard_events_queued_in_store_total` for the route, and the whole metrics text.
async fn queued_in_store(router: &Router) -> (u64, String) {
    let (_, metrics) = admin(router, "GET", "/admin/metrics", None).await;
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    let queued = metrics
        .lines()
        .find(|l| l.starts_with("hookyard_events_queued_in_store_total{route=\"in\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0);
    (queued, metrics)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_memory_queue_holds_requests_for_room_rather_than_queuing_in_the_store() {
    let receiver = Receiver::start().await;
    // The same burst into one slot, but requests may wait for room: every event is handed
    // over in memory, none is read back from the store.
    let router = Router::start(&config(
        &receiver,
        "",
        "concurrency = 1\nmemory_queue = 1\nmemory_queue_wait = \"10s\"",
    ))
    .expect("router starts");
    burst_of_40(&router, &receiver).await;
    let (queued_in_store, metrics) = queued_in_store(&router).await;
    assert_eq!(queued_in_store, 0, "{metrics}");
    assert_eq!(
        router.count("SELECT COUNT(*) FROM events WHERE status = 'processed'"),
        40
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn max_backlog_answers_503_with_retry_after_and_accepts_again_once_drained() {
    let receiver = Receiver::start().await;
    // The destination holds each delivery for a while: the work waits, in flight.
    receiver.delay_all(Duration::from_secs(3));
    let router = Router::start(&config(&receiver, "max_backlog = 3", "")).expect("router starts");
    for n in 0..3 {
        let (status, body) = post(&router, "in", &[], format!("{{\"n\":{n}}}").as_bytes()).await;
        assert_eq!(status, 202, "{body}");
    }
    let client = reqwest::Client::new();
    let refused = client
        .post(format!("{}/hooks/in", router.base()))
        .body("{\"n\":3}")
        .send()
        .await
        .expect("post");
    assert_eq!(refused.status().as_u16(), 503);
    assert_eq!(
        refused
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("5")
    );
    let reason = refused.text().await.unwrap_or_default();
    assert!(reason.contains("max_backlog"), "{reason}");
    let metrics = metrics_when(
        &router,
        "hookyard_deliveries_waiting{destination=\"sink\"} 3",
    )
    .await;
    assert!(
        metrics.contains("hookyard_requests_total{route=\"in\",outcome=\"unavailable\"} 1"),
        "{metrics}"
    );
    // Once the destination has answered, the backlog drains and intake resumes.
    receiver.delay_all(Duration::ZERO);
    receiver.wait_for(3, Duration::from_secs(15)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = post(&router, "in", &[], b"{\"n\":4}").await;
        if status == 202 {
            break;
        }
        assert_eq!(status, 503);
        assert!(
            Instant::now() < deadline,
            "still refused after the backlog drained"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    receiver.wait_for(4, Duration::from_secs(10)).await;
    assert_eq!(
        router.count("SELECT COUNT(*) FROM events"),
        4,
        "the refused request was not stored"
    );
}

/// `/admin/metrics` once it contains `line`; fails after a few seconds.
async fn metrics_when(router: &Router, line: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, metrics) = admin(router, "GET", "/admin/metrics", None).await;
        let metrics = metrics.as_str().unwrap_or_default().to_string();
        if metrics.contains(line) {
            return metrics;
        }
        assert!(Instant::now() < deadline, "no {line:?} in:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn max_deliveries_in_flight_holds_attempts_across_all_destinations() {
    let receiver = Receiver::start().await;
    receiver.delay_all(Duration::from_millis(300));
    let config = format!(
        r#"{SERVER}
[runtime]
max_deliveries_in_flight = 1

[destinations.a]
url = "{url}"
timeout = "30s"

[destinations.b]
url = "{url}"
timeout = "30s"

[[routes]]
name = "in"
verify = {{ scheme = "none" }}
to = ["a", "b"]
"#,
        url = receiver.url("/")
    );
    let router = Router::start(&config).expect("router starts");
    for n in 0..2 {
        let body = format!("{{\"n\":{n}}}");
        assert_eq!(post(&router, "in", &[], body.as_bytes()).await.0, 202);
    }
    let got = receiver.wait_for(4, Duration::from_secs(20)).await;
    let mut at: Vec<Instant> = got.iter().map(|r| r.at).collect();
    at.sort();
    for pair in at.windows(2) {
        let gap = pair[1].duration_since(pair[0]);
        assert!(
            gap >= Duration::from_millis(250),
            "two attempts overlapped (started {gap:?} apart), though each destination allows 16"
        );
    }
}
