//! Delivery: retries with backoff, attempts recorded, dead letters, and crash safety.

use std::time::Duration;

use crate::support::*;

fn config(url: &str, attempts: u32) -> String {
    format!(
        r#"{SERVER}
[destinations.sink]
url = "{url}"
retry = {{ attempts = {attempts}, backoff = "100ms", max_backoff = "400ms" }}
timeout = "2s"

[[routes]]
name = "in"
verify = {{ scheme = "none" }}
to = ["sink"]
"#
    )
}

fn attempts(router: &Router) -> Vec<(i64, Option<i64>, Option<String>)> {
    let db = router.db();
    let mut stmt = db
        .prepare("SELECT number, status_code, error FROM attempts ORDER BY seq")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn receiver_failing_twice_gets_it_on_the_third_attempt() {
    let receiver = Receiver::start().await;
    receiver.answer(&[500, 500]);
    let router = Router::start(&config(&receiver.url("/hook"), 5)).expect("router starts");
    assert_eq!(post(&router, "in", &[], b"{\"n\":1}").await.0, 202);
    let got = receiver.wait_for(3, Duration::from_secs(20)).await;
    let ids: Vec<_> = got
        .iter()
        .map(|r| r.header("hookyard-delivery-id").unwrap().to_string())
        .collect();
    assert!(
        ids.iter().all(|id| id == &ids[0]),
        "the delivery id is stable across retries: {ids:?}"
    );
    eventually(
        "the delivery is marked delivered",
        Duration::from_secs(10),
        || {
            router.count(
                "SELECT COUNT(*) FROM deliveries WHERE status = 'delivered' AND attempts = 3",
            ) == 1
        },
    )
    .await;
    assert_eq!(
        attempts(&router),
        vec![
            (
                1,
                Some(500),
                Some("HTTP 500 Internal Server Error".to_string())
            ),
            (
                2,
                Some(500),
                Some("HTTP 500 Internal Server Error".to_string())
            ),
            (3, Some(200), None),
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn exhausted_retries_leave_a_dead_letter_with_the_reason() {
    let receiver = Receiver::start().await;
    receiver.always(503);
    let router = Router::start(&config(&receiver.url("/hook"), 3)).expect("router starts");
    assert_eq!(post(&router, "in", &[], b"{}").await.0, 202);
    let reason = dead_letter_reason(&router).await;
    assert_eq!(
        reason,
        "gave up after 3 attempts; last: HTTP 503 Service Unavailable"
    );
    assert_eq!(receiver.received().len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_connections_are_retried_and_recorded() {
    let port = free_port(); // nothing listens here
    let router =
        Router::start(&config(&format!("http://127.0.0.1:{port}/x"), 2)).expect("router starts");
    assert_eq!(post(&router, "in", &[], b"{}").await.0, 202);
    dead_letter_reason(&router).await;
    let recorded = attempts(&router);
    assert_eq!(recorded.len(), 2);
    assert!(recorded[0].1.is_none());
    assert!(
        recorded[0]
            .2
            .as_deref()
            .unwrap()
            .starts_with("connection failed"),
        "{recorded:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_events_survive_sigkill_and_are_delivered_after_restart() {
    // The destination is down while events are acknowledged; the router dies hard.
    let port = free_port();
    let mut router = Router::start(&config(&format!("http://127.0.0.1:{port}/hook"), 50))
        .expect("router starts");
    const N: usize = 25;
    let mut acked = Vec::new();
    for i in 0..N {
        let (status, body) = post(&router, "in", &[], format!("{{\"n\":{i}}}").as_bytes()).await;
        assert_eq!(status, 202, "{body}");
        acked.push(i);
    }
    router.kill();
    // The destination comes up, then the router restarts on the same store.
    let receiver = Receiver::start_on(port).await;
    router.restart().expect("router restarts");
    let got = receiver.wait_for(N, Duration::from_secs(30)).await;
    let mut seen: Vec<usize> = got
        .iter()
        .map(|r| r.json()["n"].as_u64().unwrap() as usize)
        .collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen, acked, "every acknowledged event arrived");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_the_router_cleanly() {
    let receiver = Receiver::start().await;
    let mut router = Router::start(&config(&receiver.url("/hook"), 3)).expect("router starts");
    assert_eq!(post(&router, "in", &[], b"{}").await.0, 202);
    receiver.wait_for(1, Duration::from_secs(20)).await;
    let status = router.terminate().expect("terminates");
    assert!(status.success(), "exit status {status}");
    assert!(
        router.log().contains("hookyard stopped"),
        "{}",
        router.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn finished_events_past_the_retention_are_pruned_and_events_still_due_are_kept() {
    let sink = Receiver::start().await;
    let stuck = Receiver::start().await;
    stuck.always(500);
    let config = format!(
        r#"{}
[destinations.sink]
url = "{}"

[destinations.stuck]
url = "{}"
retry = {{ schedule = ["1h"] }}

[[routes]]
name = "ok"
verify = {{ scheme = "none" }}
to = ["sink"]

[[routes]]
name = "slow"
verify = {{ scheme = "none" }}
to = ["stuck"]
"#,
        SERVER.replace(
            "url = \"sqlite://data/hookyard.db\"",
            "url = \"sqlite://data/hookyard.db\"\nretention = \"2s\""
        ),
        sink.url("/"),
        stuck.url("/")
    );
    let router = Router::start(&config).expect("router starts");
    for route in ["ok", "ok", "slow"] {
        assert_eq!(post(&router, route, &[], b"{}").await.0, 202);
    }
    sink.wait_for(2, Duration::from_secs(20)).await;
    stuck.wait_for(1, Duration::from_secs(20)).await;
    eventually(
        "the delivered events are pruned",
        Duration::from_secs(20),
        || router.count("SELECT COUNT(*) FROM events") == 1,
    )
    .await;
    assert_eq!(
        router.count("SELECT COUNT(*) FROM events WHERE route = 'slow'"),
        1,
        "an event with a delivery still due is kept"
    );
    assert_eq!(router.count("SELECT COUNT(*) FROM deliveries"), 1);
    assert_eq!(
        router.count("SELECT COUNT(*) FROM attempts"),
        1,
        "only the stuck one's attempt"
    );
    assert!(router.log().contains("pruned old events"));
}

#[tokio::test(flavor = "multi_thread")]
async fn permanent_client_errors_dead_letter_at_once_without_opening_the_breaker() {
    let receiver = Receiver::start().await;
    receiver.answer(&[422, 400, 404]);
    let config = config(&receiver.url("/hook"), 5).replace(
        "timeout = \"2s\"",
        "timeout = \"2s\"\nbreaker = { failures = 2, cooldown = \"1h\" }",
    );
    let router = Router::start(&config).expect("router starts");
    for n in 1..=3 {
        let body = format!("{{\"n\":{n}}}");
        assert_eq!(post(&router, "in", &[], body.as_bytes()).await.0, 202);
        eventually("the delivery is dead", Duration::from_secs(20), || {
            router.count("SELECT COUNT(*) FROM deliveries WHERE status = 'dead'") == n
        })
        .await;
    }
    let recorded = attempts(&router);
    assert_eq!(
        recorded.len(),
        3,
        "one attempt each, no retries: {recorded:?}"
    );
    assert_eq!(
        recorded[0].2.as_deref(),
        Some("HTTP 422 Unprocessable Entity (in permanent_statuses: not retried)")
    );
    // Three failures in a row, but the destination answered: the breaker stays closed.
    assert_eq!(post(&router, "in", &[], b"{\"n\":4}").await.0, 202);
    let got = receiver.wait_for(4, Duration::from_secs(20)).await;
    assert_eq!(got[3].json()["n"], 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_permanent_statuses_retries_client_errors() {
    let receiver = Receiver::start().await;
    receiver.answer(&[400]);
    let config = config(&receiver.url("/hook"), 5).replace(
        "timeout = \"2s\"",
        "timeout = \"2s\"\npermanent_statuses = []",
    );
    let router = Router::start(&config).expect("router starts");
    assert_eq!(post(&router, "in", &[], b"{\"n\":1}").await.0, 202);
    receiver.wait_for(2, Duration::from_secs(20)).await;
    eventually("delivered on the retry", Duration::from_secs(20), || {
        router.count("SELECT COUNT(*) FROM deliveries WHERE status = 'delivered'") == 1
    })
    .await;
}
