//! `cargo bench -p hookyard --bench pipeline [-- <word>]`: prints a table of
//!
//! 1. the wasm step per event for `filter` (a small JSON filter, on a 190 B event and on the
//!    7.8 KB push with the end-to-end bench's conditions) and `github-to-chat` (the 7.8 KB
//!    push turned into a chat message), each in a fresh, isolated instance per event
//!    with a real GitHub delivery's headers, against the same logic compiled natively into
//!    this binary;
//! 2. `enrich` doing one `http.fetch` to a local server per event, against the same GET made
//!    natively with the same client;
//! 3. journal appends per second through the SQLite store with 1 and 64 concurrent writers,
//!    against raw one-row-per-transaction fsync'd inserts measured in the same run; then the
//!    same through the PostgreSQL store on a server the bench starts (skipped with a note
//!    when PostgreSQL is not installed).
//!
//! A word after `--` runs only the rows whose label contains it (`filter`, `enrich`,
//! `durable`). Run `scripts/build-plugins.sh` first (it builds `plugins/dist/*.wasm`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hookyard::config::{ByteSize, Dur, PluginConfig};
use hookyard::pipeline::Plugin;
use hookyard::pipeline::bindings::Event;
use hookyard::pipeline::engine::{PoolLimits, WasmEngine};
use hookyard::pipeline::host::{Capabilities, Fetcher};
use hookyard::store::postgres::PostgresStore;
use hookyard::store::sqlite::SqliteStore;
use hookyard::store::{NewEvent, Store, new_id, now_ms};

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dist = root.join("plugins/dist");
    for name in ["filter.wasm", "github-to-chat.wasm"] {
        if !dist.join(name).exists() {
            eprintln!(
                "{} is missing: run scripts/build-plugins.sh first",
                dist.join(name).display()
            );
            std::process::exit(2);
        }
    }
    let push = std::fs::read(root.join("tests/fixtures/github/push.json")).expect("push fixture");
    let small = br#"{"action":"opened","number":7,"sender":{"login":"alice"},"repository":{"full_name":"o/r"},"pull_request":{"title":"Add x","html_url":"https://github.com/o/r/pull/7","base":{"ref":"main"}}}"#;

    // `cargo bench --bench pipeline -- <word>` runs only the rows whose label contains it.
    let only: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let wanted = |label: &str| only.as_deref().is_none_or(|w| label.contains(w));
    println!("| measurement | result | baseline (same run) | ratio |");
    println!("| --- | --- | --- | --- |");
    let cases = [
        Case {
            label: "filter, 190 B event",
            wasm: dist.join("filter.wasm"),
            config: serde_json::json!({"conditions": [{"pointer": "/action", "one_of": ["opened", "reopened"]}]}),
            event_type: "pull_request",
            body: small.to_vec(),
            native: native_filter,
        },
        Case {
            // The end-to-end bench's first step, on the body it gets there.
            label: "filter, 7.8 KB push event",
            wasm: dist.join("filter.wasm"),
            config: serde_json::json!({"match": "any", "conditions": [
                {"pointer": "/ref", "one_of": ["refs/heads/main", "refs/heads/master"]},
                {"pointer": "/pull_request", "exists": true},
            ]}),
            event_type: "push",
            body: push.clone(),
            native: native_filter,
        },
        Case {
            label: "github-to-chat, 7.8 KB push event",
            wasm: dist.join("github-to-chat.wasm"),
            config: serde_json::json!({}),
            event_type: "push",
            body: push.clone(),
            native: native_chat,
        },
    ];
    for case in cases.into_iter().filter(|c| wanted(c.label)) {
        plugin_vs_native(case);
    }
    if wanted("enrich") {
        fetch_plugin(&dist.join("enrich.wasm"));
    }
    if wanted("durable") {
        journal(&push);
        journal_postgres(&push);
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

/// One plugin against the same logic compiled natively, on the same event.
struct Case<'a> {
    label: &'a str,
    wasm: std::path::PathBuf,
    config: serde_json::Value,
    event_type: &'a str,
    body: Vec<u8>,
    native: fn(&str, &[u8], &serde_json::Value) -> Vec<u8>,
}

/// The engine every plugin row uses: a small pool, 16 MiB memories, its cache in `dir`.
fn bench_engine(dir: &std::path::Path) -> WasmEngine {
    WasmEngine::new(
        PoolLimits {
            instances: 16,
            max_memory: 16 << 20,
        },
        dir.to_path_buf(),
    )
    .expect("engine")
}

fn plugin_vs_native(case: Case<'_>) {
    let cache = tempfile::tempdir().expect("tempdir");
    let engine = bench_engine(cache.path());
    let mut config = PluginConfig::with_defaults(case.wasm.clone());
    config.config = case.config.clone();
    config.memory = ByteSize(16 << 20);
    config.timeout = Dur(Duration::from_secs(1));
    let caps = Arc::new(Capabilities::none("bench", &case.config));
    let plugin = Arc::new(Plugin::load(&engine, &case.wasm, &config, caps).expect("load plugin"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let event = Event {
        id: new_id("evt"),
        route: "github".into(),
        received_at: 0,
        headers: github_headers(case.event_type),
        body: case.body.clone(),
        event_type: Some(case.event_type.into()),
    };
    // `HOOKYARD_BENCH_EVENTS` lengthens the run, e.g. for a profiler.
    let n: usize = std::env::var("HOOKYARD_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    rt.block_on(async {
        for _ in 0..200 {
            let out = plugin.handle(&event).await.expect("warm-up");
            assert_eq!(out.outputs.len(), 1);
        }
    });
    const BATCH: usize = 200;
    let rounds = (n / BATCH).max(1);
    let (w, native) = alternate(
        rounds,
        BATCH,
        || {
            rt.block_on(async {
                for _ in 0..BATCH {
                    let out = plugin.handle(&event).await.expect("handle");
                    std::hint::black_box(out.outputs);
                }
            })
        },
        || {
            for _ in 0..BATCH {
                let out = (case.native)(case.event_type, &event.body, &case.config);
                std::hint::black_box(out);
            }
        },
    );
    println!(
        "| {}, fresh wasm instance per event ({} path; amortized over {BATCH}-event batches, median of {rounds}) | {:.1} us | native Rust {:.1} us | {:.1}x (+{:.1} us) |",
        case.label,
        if plugin.is_sync() { "sync" } else { "async" },
        w.as_secs_f64() * 1e6,
        native.as_secs_f64() * 1e6,
        w.as_secs_f64() / native.as_secs_f64(),
        (w.as_secs_f64() - native.as_secs_f64()) * 1e6,
    );
}

/// The headers of a real GitHub delivery as plugins see them: names lower-cased, without
/// `content-length` (the router does not journal connection headers).
fn github_headers(event_type: &str) -> Vec<(String, String)> {
    [
        ("host", "hooks.example.com"),
        ("user-agent", "GitHub-Hookshot/a8ba3b7"),
        ("accept", "*/*"),
        ("content-type", "application/json"),
        ("x-github-delivery", "3a2c3c50-c5d7-11ef-8d5c-8c1e8b8f8a4e"),
        ("x-github-event", event_type),
        ("x-github-hook-id", "519948305"),
        ("x-github-hook-installation-target-id", "879164357"),
        ("x-github-hook-installation-target-type", "repository"),
        (
            "x-hub-signature",
            "sha1=7d38cdd689735b008b3c702edd92eea23791c5f6",
        ),
        (
            "x-hub-signature-256",
            "sha256=6dcb09b5b57875f334f61aebed695e2e4193db5e8d1a6a4b4e7a5e4a1a1c7a5e",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The `enrich` plugin doing one `http.fetch` to a local server per event, against the same
/// GET made natively with the same client.
fn fetch_plugin(wasm: &std::path::Path) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new().fallback(|| async { r#"{"id":"or_1","total":4200}"# });
    rt.spawn(async move { axum::serve(listener, app).await });
    let cache = tempfile::tempdir().expect("tempdir");
    let engine = bench_engine(cache.path());
    let egress = Arc::new(hookyard::egress::EgressPolicy::new(
        &hookyard::config::EgressConfig {
            allow_private: vec![hookyard::config::Cidr("127.0.0.0/8".parse().expect("cidr"))],
        },
    ));
    let client = hookyard::destinations::http::client(egress.clone());
    let url = format!("http://{addr}/orders/{{/id}}");
    let mut config = PluginConfig::with_defaults(wasm.to_path_buf());
    config.config = serde_json::json!({ "url": url });
    let caps = Arc::new(Capabilities {
        allow_http: vec![addr.to_string()],
        fetcher: Fetcher::Http {
            client: client.clone(),
            egress,
        },
        ..Capabilities::none("enrich", &config.config)
    });
    let plugin = Plugin::load(&engine, wasm, &config, caps).expect("load enrich");
    let event = Event {
        id: new_id("evt"),
        route: "shop".into(),
        received_at: 0,
        headers: vec![("content-type".into(), "application/json".into())],
        body: br#"{"id":"or_1"}"#.to_vec(),
        event_type: None,
    };
    rt.block_on(async {
        for _ in 0..100 {
            plugin.handle(&event).await.expect("warm-up");
        }
    });
    let target = format!("http://{addr}/orders/or_1");
    const BATCH: usize = 50;
    const ROUNDS: usize = 20;
    let (w, n) = alternate(
        ROUNDS,
        BATCH,
        || {
            rt.block_on(async {
                for _ in 0..BATCH {
                    std::hint::black_box(plugin.handle(&event).await.expect("handle").outputs);
                }
            })
        },
        || {
            rt.block_on(async {
                for _ in 0..BATCH {
                    let response = client.get(&target).send().await.expect("get");
                    std::hint::black_box(response.bytes().await.expect("body"));
                }
            })
        },
    );
    println!(
        "| enrich: one http.fetch to a local server per event (async path; amortized over {BATCH}-event batches, median of {ROUNDS}) | {:.1} us | the same GET natively {:.1} us | {:.1}x (+{:.1} us) |",
        w.as_secs_f64() * 1e6,
        n.as_secs_f64() * 1e6,
        w.as_secs_f64() / n.as_secs_f64(),
        (w.as_secs_f64() - n.as_secs_f64()) * 1e6,
    );
}

/// Runs a batch of `batch` events through `wasm`, then through `native`, `rounds` times,
/// and returns the median batch's time per event for each. Alternating batches means a
/// noisy moment on this shared machine hits both sides alike, and a batch's time over its
/// events is the amortized cost of one event.
fn alternate(
    rounds: usize,
    batch: usize,
    mut wasm: impl FnMut(),
    mut native: impl FnMut(),
) -> (Duration, Duration) {
    let (mut w, mut n) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    for _ in 0..rounds {
        let t = Instant::now();
        wasm();
        w.push(t.elapsed() / batch as u32);
        let t = Instant::now();
        native();
        n.push(t.elapsed() / batch as u32);
    }
    (median(w), median(n))
}

/// What the `filter` plugin does, natively: parse config and body, test, pass the body on.
fn native_filter(_: &str, body: &[u8], config: &serde_json::Value) -> Vec<u8> {
    let config: filter::Config = serde_json::from_value(config.clone()).expect("config");
    assert!(config.keeps(body).expect("keeps"));
    body.to_vec()
}

/// What `github-to-chat` does, natively: parse, transform, serialise.
fn native_chat(event_type: &str, body: &[u8], _: &serde_json::Value) -> Vec<u8> {
    let message = github_to_chat::to_chat(event_type, body).expect("json");
    serde_json::to_vec(&message.expect("message")).expect("serialise")
}

fn event(body: &[u8]) -> NewEvent {
    NewEvent {
        id: new_id("evt"),
        route: "github".into(),
        received_at: now_ms(),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("x-github-event".into(), "push".into()),
        ],
        body: body.to_vec(),
        event_type: Some("push".into()),
        dedup_key: Some(new_id("gh")),
        traceparent: None,
    }
}

fn journal(body: &[u8]) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let raw = raw_fsync_inserts(body, Duration::from_secs(2));
    for writers in [1usize, 64] {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(SqliteStore::open(&dir.path().join("bench.db")).expect("store"));
        let rate = rt.block_on(appends_per_second(store, writers, body));
        println!(
            "| durable appends/s, {writers} concurrent writer(s), 7.8 KB event | {rate:.0}/s | one fsync'd transaction per row {raw:.0}/s | {:.1}x |",
            rate / raw
        );
    }
}

/// Appends from `writers` concurrent tasks (400 events from one, 150 each from many), per
/// second of wall time.
async fn appends_per_second<S: Store>(store: Arc<S>, writers: usize, body: &[u8]) -> f64 {
    let per_writer = if writers == 1 { 400 } else { 150 };
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let store = store.clone();
        let body = body.to_vec();
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_writer {
                store
                    .append_event(
                        event(&body),
                        Duration::from_secs(60),
                        Duration::from_secs(86400),
                    )
                    .await
                    .expect("append");
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
    (writers * per_writer) as f64 / started.elapsed().as_secs_f64()
}

/// The same appends through the PostgreSQL store, on a server started for the bench, against
/// one row per committed transaction on one connection to the same server.
fn journal_postgres(body: &[u8]) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let cluster = match pg::PgCluster::start() {
        Ok(c) => c,
        Err(e) => {
            println!("(PostgreSQL rows skipped: {e:#})");
            return;
        }
    };
    let raw = rt.block_on(async {
        let url = cluster.new_database().await;
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(conn);
        client
            .batch_execute("CREATE TABLE t (id TEXT, body BYTEA)")
            .await
            .expect("table");
        let started = Instant::now();
        let mut n = 0u64;
        while started.elapsed() < Duration::from_secs(2) {
            client
                .execute("INSERT INTO t VALUES ($1, $2)", &[&new_id("evt"), &body])
                .await
                .expect("insert");
            n += 1;
        }
        n as f64 / started.elapsed().as_secs_f64()
    });
    for writers in [1usize, 64] {
        let rate = rt.block_on(async {
            let store = PostgresStore::open(&cluster.new_database().await)
                .await
                .expect("store");
            appends_per_second(Arc::new(store), writers, body).await
        });
        println!(
            "| durable appends/s on PostgreSQL, {writers} concurrent writer(s), 7.8 KB event | {rate:.0}/s | one committed transaction per row, same server {raw:.0}/s | {:.1}x |",
            rate / raw
        );
    }
}

/// A PostgreSQL server for the bench, the same helper the tests use.
#[path = "../../tests/support/postgres.rs"]
#[allow(dead_code)]
mod pg;

/// The floor group commit is measured against: one row per transaction, fsync'd.
fn raw_fsync_inserts(body: &[u8], run_for: Duration) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let conn = rusqlite::Connection::open(dir.path().join("raw.db")).expect("open");
    conn.pragma_update(None, "journal_mode", "WAL")
        .expect("wal");
    conn.pragma_update(None, "synchronous", "FULL")
        .expect("full");
    conn.execute_batch("CREATE TABLE t (id TEXT, body BLOB)")
        .expect("table");
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < run_for {
        conn.execute(
            "INSERT INTO t VALUES (?1, ?2)",
            rusqlite::params![new_id("evt"), body],
        )
        .expect("insert");
        n += 1;
    }
    n as f64 / started.elapsed().as_secs_f64()
}
