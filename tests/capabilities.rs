//! Plugin capabilities and budgets, end to end: secrets, `http.fetch` only to `allow_http`
//! hosts, a durable kv store per plugin, fuel and output limits, drop reasons, and the
//! time and fuel of each event recorded for the admin view.

use std::time::Duration;

use crate::support::*;

fn enrich_config(api: &Receiver, sink: &Receiver, allow: &str) -> String {
    format!(
        r#"{SERVER}
[plugins.orders]
path = "{}"
allow_http = ["{allow}"]
secrets = {{ api_token = "tok_live_123" }}
config = {{ url = "{}/orders/{{/data/id}}", token_secret = "api_token", count_key = "orders-seen" }}

[destinations.sink]
url = "{}"

[[routes]]
name = "shop"
verify = {{ scheme = "none" }}
steps = ["orders"]
to = ["sink"]
"#,
        plugin("enrich").display(),
        api.url(""),
        sink.url("/")
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_fetches_with_its_secret_and_counts_in_a_kv_that_survives_restarts() {
    let api = Receiver::start().await;
    api.body_all(r#"{"id":"or_1","total":4200,"items":[{"sku":"tee"}]}"#);
    let sink = Receiver::start().await;
    let config = enrich_config(&api, &sink, &format!("127.0.0.1:{}", api.addr.port()));
    let mut router = Router::start(&config).expect("router starts");
    assert_eq!(
        post(&router, "shop", &[], br#"{"data":{"id":"or_1"}}"#)
            .await
            .0,
        202
    );
    let got = sink.wait_for(1, Duration::from_secs(20)).await;
    let out = got[0].json();
    assert_eq!(out["fetched"]["total"], 4200);
    assert_eq!(out["event"]["data"]["id"], "or_1");
    assert_eq!(out["count"], 1);
    let call = &api.received()[0];
    assert_eq!(call.path, "/orders/or_1");
    assert_eq!(call.header("authorization"), Some("Bearer tok_live_123"));

    // Killed only once the delivery is recorded: otherwise, being at least once, it may
    // legitimately be sent again after the restart.
    eventually(
        "the first delivery is recorded",
        Duration::from_secs(10),
        || router.count("SELECT COUNT(*) FROM deliveries WHERE status = 'delivered'") == 1,
    )
    .await;
    router.restart().expect("router restarts");
    assert_eq!(
        post(&router, "shop", &[], br#"{"data":{"id":"or_2"}}"#)
            .await
            .0,
        202
    );
    let is_second = |r: &Received| r.json()["event"]["data"]["id"] == "or_2";
    eventually("the second order arrives", Duration::from_secs(20), || {
        sink.received().iter().any(is_second)
    })
    .await;
    let second = sink
        .received()
        .into_iter()
        .find(|r| is_second(r))
        .map(|r| r.json())
        .unwrap();
    assert_eq!(second["count"], 2, "the kv counter is durable");
    // The secret is never journaled or logged.
    assert!(!router.log().contains("tok_live_123"));
}

#[tokio::test(flavor = "multi_thread")]
async fn events_handled_at_the_same_time_never_lose_a_kv_increment() {
    let api = Receiver::start().await;
    api.body_all(r#"{"total":1}"#);
    // A slow API widens the window between reading and writing the counter.
    api.delay_all(Duration::from_millis(20));
    let sink = Receiver::start().await;
    let config = enrich_config(&api, &sink, &format!("127.0.0.1:{}", api.addr.port()))
        + "\n[runtime]\nconcurrency = 8\n";
    let router = Router::start(&config).expect("router starts");
    let posts = (0..40).map(|i| {
        let body = format!(r#"{{"data":{{"id":"or_{i}"}}}}"#);
        let router = &router;
        async move { post(router, "shop", &[], body.as_bytes()).await.0 }
    });
    for status in futures::future::join_all(posts).await {
        assert_eq!(status, 202);
    }
    let got = sink.wait_for(40, Duration::from_secs(30)).await;
    let mut counts: Vec<u64> = got
        .iter()
        .map(|r| r.json()["count"].as_u64().unwrap())
        .collect();
    counts.sort_unstable();
    assert_eq!(
        counts,
        (1..=40).collect::<Vec<u64>>(),
        "each event counted once"
    );
    let stored: Vec<u8> = router
        .db()
        .query_row(
            "SELECT value FROM kv WHERE plugin = 'orders' AND key = 'orders-seen'",
            [],
            |r| r.get(0),
        )
        .expect("counter row");
    assert_eq!(stored, b"40");
}

#[tokio::test(flavor = "multi_thread")]
async fn of_events_racing_on_one_key_exactly_one_passes_set_if_absent() {
    let sink = Receiver::start().await;
    let config = format!(
        r#"{SERVER}
[runtime]
concurrency = 8

[plugins.once]
path = "{}"

[destinations.sink]
url = "{}"

[[routes]]
name = "orders"
verify = {{ scheme = "none" }}
steps = ["once"]
to = ["sink"]
"#,
        plugin("misbehave").display(),
        sink.url("/")
    );
    let router = Router::start(&config).expect("router starts");
    let posts = (0..20).map(|i| {
        let body = format!(r#"{{"mode":"once","key":"order:7","attempt":{i}}}"#);
        let router = &router;
        async move { post(router, "orders", &[], body.as_bytes()).await.0 }
    });
    for status in futures::future::join_all(posts).await {
        assert_eq!(status, 202);
    }
    eventually(
        "all 20 events are processed",
        Duration::from_secs(30),
        || router.count("SELECT COUNT(*) FROM events WHERE status = 'processed'") == 20,
    )
    .await;
    assert_eq!(
        router.count(
            "SELECT COUNT(*) FROM events WHERE dropped = 'once: order:7 was already handled'"
        ),
        19
    );
    sink.wait_for(1, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        sink.received().len(),
        1,
        "only the first event was passed on"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn fetching_a_host_outside_allow_http_fails_the_event_with_the_reason() {
    let api = Receiver::start().await;
    let sink = Receiver::start().await;
    let config = enrich_config(&api, &sink, "api.example.com");
    let router = Router::start(&config).expect("router starts");
    assert_eq!(
        post(&router, "shop", &[], br#"{"data":{"id":"or_1"}}"#)
            .await
            .0,
        202
    );
    let error = failed_events(&router, 1).await.remove(0);
    assert_eq!(
        error,
        "plugin \"orders\" rejected the event: fetch denied: 127.0.0.1 is not in this plugin's allow_http"
    );
    assert!(api.received().is_empty(), "nothing left the sandbox");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_allowed_host_on_a_blocked_address_is_still_refused_by_egress_rules() {
    let api = Receiver::start().await;
    let sink = Receiver::start().await;
    let config = enrich_config(&api, &sink, &format!("127.0.0.1:{}", api.addr.port()))
        .replace("allow_private = [\"127.0.0.0/8\"]", "allow_private = []")
        .replace(&sink.url("/"), "https://sink.example.com/");
    let router = Router::start(&config).expect("router starts");
    assert_eq!(
        post(&router, "shop", &[], br#"{"data":{"id":"or_1"}}"#)
            .await
            .0,
        202
    );
    let error = failed_events(&router, 1).await.remove(0);
    assert!(
        error.contains("fetch denied: 127.0.0.1 is a loopback address"),
        "{error}"
    );
    assert!(api.received().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn fuel_and_output_budgets_end_the_run_with_the_limit_named() {
    let sink = Receiver::start().await;
    let config = format!(
        r#"{SERVER}
[plugins.misbehave]
path = "{}"
fuel = 5000000
max_outputs = 10
max_output_bytes = "1MiB"
timeout = "5s"

[destinations.sink]
url = "{}"

[[routes]]
name = "in"
verify = {{ scheme = "none" }}
steps = ["misbehave"]
to = ["sink"]
"#,
        plugin("misbehave").display(),
        sink.url("/")
    );
    let router = Router::start(&config).expect("router starts");
    for body in [
        r#"{"mode":"loop"}"#,
        r#"{"mode":"many"}"#,
        r#"{"mode":"big"}"#,
        r#"{"mode":"ok"}"#,
    ] {
        assert_eq!(post(&router, "in", &[], body.as_bytes()).await.0, 202);
    }
    sink.wait_for(1, Duration::from_secs(20)).await;
    let errors = failed_events(&router, 3).await;
    assert_eq!(
        errors,
        [
            "plugin \"misbehave\" exceeded its fuel limit of 5000000",
            "plugin \"misbehave\" exceeded its output limit of 10 outputs",
            "plugin \"misbehave\" exceeded its output size limit of 1MiB",
        ]
    );
    // What each run cost is recorded, and visible in the admin view.
    let (_, events) = admin(&router, "GET", "/admin/events", None).await;
    let ok = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["status"] == "processed")
        .unwrap();
    assert!(ok["fuel"].as_u64().unwrap() > 0, "{ok}");
    assert!(ok["run_us"].as_u64().unwrap() > 0, "{ok}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_event_records_the_plugins_reason() {
    let sink = Receiver::start().await;
    let config = format!(
        r#"{SERVER}
[plugins.only-main]
path = "{}"
config = {{ conditions = [{{ pointer = "/ref", equals = "refs/heads/main" }}] }}

[destinations.sink]
url = "{}"

[[routes]]
name = "in"
verify = {{ scheme = "none" }}
steps = ["only-main"]
to = ["sink"]
"#,
        plugin("filter").display(),
        sink.url("/")
    );
    let router = Router::start(&config).expect("router starts");
    let (_, body) = post(&router, "in", &[], br#"{"ref":"refs/heads/dev"}"#).await;
    let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    eventually("processed", Duration::from_secs(20), || {
        router.count("SELECT COUNT(*) FROM events WHERE status = 'processed'") == 1
    })
    .await;
    let (_, event) = admin(&router, "GET", &format!("/admin/events/{id}"), None).await;
    assert_eq!(event["dropped"], "only-main: conditions not met");
    assert_eq!(event["deliveries"], serde_json::json!([]));
}

#[test]
fn plugin_test_takes_secrets_kv_and_canned_responses_and_reports_fuel() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("event.json"), r#"{"data":{"id":"or_9"}}"#).unwrap();
    std::fs::write(
        dir.path().join("responses.json"),
        r#"[{"method": "GET", "url": "https://api.example.com/orders/or_9", "body": {"total": 99}}]"#,
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookyard"))
        .args(["plugin", "test"])
        .arg(plugin("enrich"))
        .arg("--event")
        .arg(dir.path().join("event.json"))
        .args([
            "--config",
            r#"{"url": "https://api.example.com/orders/{/data/id}", "token_secret": "t", "count_key": "n"}"#,
            "--secret",
            "t=tok",
            "--kv",
            "n=7",
            "--responses",
        ])
        .arg(dir.path().join("responses.json"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let outputs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(outputs[0]["body"]["fetched"]["total"], 99);
    assert_eq!(outputs[0]["body"]["count"], 8);
    assert!(
        stderr.contains("1 output(s) in") && stderr.contains(" fuel"),
        "{stderr}"
    );
}

#[test]
fn plugin_new_makes_a_crate_whose_test_passes() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookyard"))
        .args(["plugin", "new", "lead-router", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let crate_dir = dir.path().join("lead-router");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let test = std::process::Command::new(&cargo)
        .arg("test")
        .arg("-q")
        .current_dir(&crate_dir)
        .output()
        .unwrap();
    assert!(
        test.status.success(),
        "{}{}",
        String::from_utf8_lossy(&test.stdout),
        String::from_utf8_lossy(&test.stderr)
    );
    let build = std::process::Command::new(&cargo)
        .args(["build", "-q", "--release", "--target", "wasm32-wasip2"])
        .current_dir(&crate_dir)
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_javascript_plugin_runs_through_the_same_contract_and_capabilities() {
    let sink = Receiver::start().await;
    let config = format!(
        r#"{SERVER}
[plugins.lead-alert]
path = "{}"
memory = "64MiB"
timeout = "2s"
config = {{ prefix = "Hot lead" }}

[destinations.sales]
url = "{}"

[[routes]]
name = "leads"
verify = {{ scheme = "none" }}
steps = ["lead-alert"]
to = ["sales"]
"#,
        js_plugin().display(),
        sink.url("/slack")
    );
    let router = Router::start(&config).expect("router starts");
    let lead =
        br#"{"name":"Ada Lovelace","email":"ada@example.com","company":"Analytical Engines"}"#;
    assert_eq!(post(&router, "leads", &[], lead).await.0, 202);
    // Events run concurrently and kv is last-write-wins: let the first finish before the next.
    sink.wait_for(1, Duration::from_secs(60)).await;
    assert_eq!(
        post(&router, "leads", &[], br#"{"name":"No Email"}"#)
            .await
            .0,
        202
    );
    assert_eq!(
        post(&router, "leads", &[], br#"{"email":"grace@example.com"}"#)
            .await
            .0,
        202
    );
    let got = sink.wait_for(2, Duration::from_secs(60)).await;
    let texts: Vec<String> = got
        .iter()
        .map(|r| r.json()["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        texts,
        [
            "Hot lead: Ada Lovelace <ada@example.com> from Analytical Engines (#1 today)",
            "Hot lead: grace@example.com (#2 today)",
        ]
    );
    let dropped: String = router
        .db()
        .query_row(
            "SELECT dropped FROM events WHERE dropped IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(dropped, "lead-alert: lead has no email");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_fetch_cannot_set_host_or_framing_headers_but_may_send_a_token() {
    let api = Receiver::start().await;
    let sink = Receiver::start().await;
    let config = format!(
        r#"{SERVER}
[plugins.probe]
path = "{}"
allow_http = ["127.0.0.1:{}"]

[destinations.sink]
url = "{}"

[[routes]]
name = "in"
verify = {{ scheme = "none" }}
steps = ["probe"]
to = ["sink"]
"#,
        plugin("misbehave").display(),
        api.addr.port(),
        sink.url("/")
    );
    let router = Router::start(&config).expect("router starts");
    let fetch = |headers: &str| {
        format!(
            r#"{{"mode":"fetch","url":"{}","headers":{headers}}}"#,
            api.url("/x")
        )
    };
    for header in [
        "Host",
        "Transfer-Encoding",
        "Content-Length",
        "Hookyard-Event-Id",
    ] {
        let body = fetch(&format!(r#"{{"{header}":"1"}}"#));
        assert_eq!(post(&router, "in", &[], body.as_bytes()).await.0, 202);
    }
    let errors = failed_events(&router, 4).await;
    for (error, header) in errors.iter().zip([
        "Host",
        "Transfer-Encoding",
        "Content-Length",
        "Hookyard-Event-Id",
    ]) {
        assert!(
            error.contains(&format!(
                "fetch denied: plugins may not set the header \"{header}\""
            )),
            "{error}"
        );
    }
    assert!(api.received().is_empty(), "nothing left the sandbox");
    // A token of the plugin's own is still allowed.
    let body = fetch(r#"{"Authorization":"Bearer tok"}"#);
    assert_eq!(post(&router, "in", &[], body.as_bytes()).await.0, 202);
    let calls = api.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(
        calls[0]
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer tok")
    );
}
