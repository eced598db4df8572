//! `cargo bench -p hookyard --bench pipeline`: prints a table of
//!
//! 1. the wasm step per event for `github-to-chat` (a fresh, isolated instance per event)
//!    against the same transform compiled natively into this binary;
//! 2. journal appends per second through the SQLite store with 1 and 64 concurrent writers,
//!    against raw one-row-per-transaction fsync'd inserts measured in the same run.
//!
//! Run `scripts/build-plugins.sh` first (it builds `plugins/dist/github-to-chat.wasm`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hookyard::config::{ByteSize, Dur, PluginConfig};
use hookyard::pipeline::Plugin;
use hookyard::pipeline::bindings::Event;
use hookyard::pipeline::engine::{PoolLimits, WasmEngine};
use hookyard::pipeline::host::{Capabilities, Fetcher, MemoryKv};
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

    println!("| measurement | result | baseline (same run) | ratio |");
    println!("| --- | --- | --- | --- |");
    plugin_vs_native(Case {
        label: "filter, 190 B event",
        wasm: dist.join("filter.wasm"),
        config: serde_json::json!({"conditions": [{"pointer": "/action", "one_of": ["opened", "reopened"]}]}),
        event_type: "pull_request",
        body: small.to_vec(),
        native: native_filter,
    });
    plugin_vs_native(Case {
        label: "github-to-chat, 7.8 KB push event",
        wasm: dist.join("github-to-chat.wasm"),
        config: serde_json::json!({}),
        event_type: "push",
        body: push.clone(),
        native: native_chat,
    });
    fetch_plugin(&dist.join("enrich.wasm"));
    journal(&push);
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
    let caps = Arc::new(Capabilities {
        plugin: "bench".into(),
        config: case.config.to_string().into(),
        secrets: Default::default(),
        allow_http: vec![],
        http_timeout: Duration::from_secs(1),
        http_max_response: 1 << 20,
        fetcher: Fetcher::Canned(Arc::new(vec![])),
        kv: Arc::new(MemoryKv::default()),
        capture_logs: false,
    });
    let plugin = Arc::new(Plugin::load(&engine, &case.wasm, &config, caps).expect("load plugin"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let event = Event {
        id: new_id("evt"),
        route: "github".into(),
        received_at: 0,
        headers: vec![("content-type".into(), "application/json".into())],
        body: case.body.clone(),
        event_type: Some(case.event_type.into()),
    };
    const N: usize = 3000;
    let wasm_times = rt.block_on(async {
        for _ in 0..200 {
            assert_eq!(
                plugin.handle(&event).await.expect("warm-up").outputs.len(),
                1
            );
        }
        let mut times = Vec::with_capacity(N);
        for _ in 0..N {
            let t = Instant::now();
            let out = plugin.handle(&event).await.expect("handle");
            times.push(t.elapsed());
            std::hint::black_box(out.outputs);
        }
        times
    });
    let mut native_times = Vec::with_capacity(N);
    for _ in 0..N {
        let t = Instant::now();
        let out = (case.native)(case.event_type, &event.body, &case.config);
        native_times.push(t.elapsed());
        std::hint::black_box(out);
    }
    let (w, n) = (median(wasm_times), median(native_times));
    println!(
        "| {}, fresh wasm instance per event (median of {N}) | {:.1} us | native Rust {:.1} us | {:.1}x (+{:.1} us) |",
        case.label,
        w.as_secs_f64() * 1e6,
        n.as_secs_f64() * 1e6,
        w.as_secs_f64() / n.as_secs_f64(),
        (w.as_secs_f64() - n.as_secs_f64()) * 1e6,
    );
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
    let client = hookyard::delivery::http::client(egress.clone());
    let url = format!("http://{addr}/orders/{{/id}}");
    let mut config = PluginConfig::with_defaults(wasm.to_path_buf());
    config.config = serde_json::json!({ "url": url });
    let caps = Arc::new(Capabilities {
        plugin: "enrich".into(),
        config: config.config.to_string().into(),
        secrets: Default::default(),
        allow_http: vec![addr.to_string()],
        http_timeout: Duration::from_secs(5),
        http_max_response: 1 << 20,
        fetcher: Fetcher::Http {
            client: client.clone(),
            egress,
        },
        kv: Arc::new(MemoryKv::default()),
        capture_logs: false,
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
    const N: usize = 1000;
    let (wasm_times, native_times) = rt.block_on(async {
        for _ in 0..100 {
            plugin.handle(&event).await.expect("warm-up");
        }
        let mut wasm_times = Vec::with_capacity(N);
        for _ in 0..N {
            let t = Instant::now();
            std::hint::black_box(plugin.handle(&event).await.expect("handle").outputs);
            wasm_times.push(t.elapsed());
        }
        let mut native_times = Vec::with_capacity(N);
        let target = format!("http://{addr}/orders/or_1");
        for _ in 0..N {
            let t = Instant::now();
            let body = client
                .get(&target)
                .send()
                .await
                .expect("get")
                .bytes()
                .await
                .expect("body");
            std::hint::black_box(body);
            native_times.push(t.elapsed());
        }
        (wasm_times, native_times)
    });
    let (w, n) = (median(wasm_times), median(native_times));
    println!(
        "| enrich: one http.fetch to a local server per event (median of {N}) | {:.1} us | the same GET natively {:.1} us | {:.1}x (+{:.1} us) |",
        w.as_secs_f64() * 1e6,
        n.as_secs_f64() * 1e6,
        w.as_secs_f64() / n.as_secs_f64(),
        (w.as_secs_f64() - n.as_secs_f64()) * 1e6,
    );
}

/// What the `filter` plugin does, natively: parse config and body, test, pass the body on.
fn native_filter(_: &str, body: &[u8], config: &serde_json::Value) -> Vec<u8> {
    let config: filter::Config = serde_json::from_value(config.clone()).expect("config");
    let doc: serde_json::Value = serde_json::from_slice(body).expect("json");
    assert!(config.keeps(&doc).expect("keeps"));
    body.to_vec()
}

/// What `github-to-chat` does, natively: parse, transform, serialise.
fn native_chat(event_type: &str, body: &[u8], _: &serde_json::Value) -> Vec<u8> {
    let payload: serde_json::Value = serde_json::from_slice(body).expect("json");
    serde_json::to_vec(&github_to_chat::to_chat(event_type, &payload).expect("message"))
        .expect("serialise")
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
        let per_writer = if writers == 1 { 400 } else { 150 };
        let started = Instant::now();
        rt.block_on(async {
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
        });
        let rate = (writers * per_writer) as f64 / started.elapsed().as_secs_f64();
        println!(
            "| durable appends/s, {writers} concurrent writer(s), 7.8 KB event | {rate:.0}/s | one fsync'd transaction per row {raw:.0}/s | {:.1}x |",
            rate / raw
        );
    }
}

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
