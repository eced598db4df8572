//! Plugins that loop, hog memory or trap fail their own event, with a message naming the
//! plugin and the limit; other events keep flowing. Each limit is proven on both ways the
//! router calls a plugin: synchronously (`misbehave-sync` imports nothing that waits) and on
//! fibers (`misbehave` imports `http`).

use std::time::Duration;

use crate::support::*;
use hookyard::pipeline::engine::{Meter, PoolLimits, WasmEngine};

/// A wasm engine for loading plugins directly, its compiled-code cache in `dir`.
fn engine_in(dir: &std::path::Path, meter: Meter) -> WasmEngine {
    let limits = PoolLimits {
        instances: 8,
        max_memory: 32 << 20,
    };
    WasmEngine::metering(limits, dir.to_path_buf(), meter).expect("engine")
}

/// A config whose route `in` runs one plugin, `name` built from `build` with `keys` added to
/// its table, and delivers to `receiver`.
fn route_through(name: &str, build: &str, keys: &str, receiver: &Receiver) -> String {
    let table = format!(
        "[plugins.{name}]\npath = \"{}\"\n{keys}\n",
        plugin(build).display()
    );
    route_with(&table, &[name], receiver)
}

/// A config with these `[plugins]` tables whose route `in` runs `steps` and delivers to
/// `receiver`.
fn route_with(plugins: &str, steps: &[&str], receiver: &Receiver) -> String {
    format!(
        r#"{SERVER}
{plugins}
[destinations.sink]
url = "{}"

[[routes]]
name = "in"
verify = {{ scheme = "none" }}
steps = {steps:?}
to = ["sink"]
"#,
        receiver.url("/")
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn runaway_sync_plugins_fail_their_event_and_others_keep_flowing() {
    runaway_plugins_fail_their_event_and_others_keep_flowing("misbehave-sync").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn runaway_async_plugins_fail_their_event_and_others_keep_flowing() {
    runaway_plugins_fail_their_event_and_others_keep_flowing("misbehave").await;
}

async fn runaway_plugins_fail_their_event_and_others_keep_flowing(build: &str) {
    let receiver = Receiver::start().await;
    let config = route_through(
        "misbehave",
        build,
        "memory = \"16MiB\"\ntimeout = \"200ms\"",
        &receiver,
    );
    let router = Router::start(&config).expect("router starts");
    for body in [
        r#"{"mode":"ok","n":1}"#,
        r#"{"mode":"print","n":5}"#,
        r#"{"mode":"loop"}"#,
        r#"{"mode":"ok","n":2}"#,
        r#"{"mode":"grow"}"#,
        r#"{"mode":"trap"}"#,
        r#"{"mode":"ok","n":3}"#,
    ] {
        assert_eq!(post(&router, "in", &[], body.as_bytes()).await.0, 202);
    }
    let got = receiver.wait_for(4, Duration::from_secs(30)).await;
    let mut ns: Vec<u64> = got
        .iter()
        .map(|r| r.json()["n"].as_u64().unwrap())
        .collect();
    ns.sort_unstable();
    assert_eq!(ns, [1, 2, 3, 5], "plugin build {build}");
    let errors = failed_events(&router, 3).await;
    assert_eq!(
        errors[..2],
        [
            "plugin \"misbehave\" exceeded its timeout of 200ms",
            "plugin \"misbehave\" exceeded its memory limit of 16MiB",
        ]
    );
    // A panic is reported with the message the plugin printed before it aborted.
    let trap = &errors[2];
    assert!(
        trap.starts_with("plugin \"misbehave\" trapped: panicked at ")
            && trap.contains("misbehave/src/lib.rs:")
            && trap.ends_with(
                ": misbehave was asked to trap (wasm trap: wasm `unreachable` instruction executed)"
            ),
        "{trap}"
    );
    // What plugins print lands in the router's log, tagged with the plugin.
    let log = router.log();
    assert!(
        log.contains("misbehave prints to stdout") && log.contains("misbehave prints to stderr")
    );
    // The router is still healthy.
    assert_eq!(
        post(&router, "in", &[], br#"{"mode":"ok","n":4}"#).await.0,
        202
    );
    receiver.wait_for(5, Duration::from_secs(20)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn plugin_error_result_marks_the_event_failed_with_its_message() {
    let receiver = Receiver::start().await;
    let config = route_through("chat", "github-to-chat", "", &receiver);
    let router = Router::start(&config).expect("router starts");
    assert_eq!(post(&router, "in", &[], b"{}").await.0, 202);
    assert_eq!(
        failed_events(&router, 1).await,
        ["plugin \"chat\" rejected the event: not a GitHub event: no X-GitHub-Event header"]
    );
}

#[test]
fn plugins_that_import_nothing_that_waits_are_called_synchronously() {
    use hookyard::config::PluginConfig;
    use hookyard::pipeline::Plugin;
    use hookyard::pipeline::host::Capabilities;
    use std::sync::Arc;

    let cache = tempfile::tempdir().expect("tempdir");
    let engine = engine_in(cache.path(), Meter::Limited);
    for (name, sync) in [
        ("filter", true),
        ("misbehave-sync", true),
        ("template", true),
        ("misbehave", false), // imports http
        ("enrich", false),    // imports http and kv
    ] {
        let caps = Arc::new(Capabilities::none(name, &serde_json::json!({})));
        let config = PluginConfig::with_defaults(plugin(name));
        let loaded = Plugin::load(&engine, &plugin(name), &config, caps).expect("plugin loads");
        assert_eq!(loaded.is_sync(), sync, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn only_plugins_with_a_fuel_limit_count_fuel_unless_every_plugin_is_metered() {
    use hookyard::config::PluginConfig;
    use hookyard::pipeline::Plugin;
    use hookyard::pipeline::bindings::Event;
    use hookyard::pipeline::host::Capabilities;
    use std::sync::Arc;

    let cache = tempfile::tempdir().expect("tempdir");
    let event = Event {
        id: "evt_fuel".into(),
        route: "in".into(),
        received_at: 0,
        headers: vec![("x-github-event".into(), "push".into())],
        body: include_bytes!("../examples/github-push.json").to_vec(),
        event_type: Some("push".into()),
    };
    let router = engine_in(cache.path(), Meter::Limited);
    let authoring = engine_in(cache.path(), Meter::All);
    // (engine, fuel limit, whether it counts)
    for (engine, fuel, metered) in [
        (&router, None, false),
        (&router, Some(u64::MAX / 2), true),
        (&authoring, None, true),
    ] {
        // One plugin for each way of calling: sync, and on fibers (enrich imports http).
        for name in ["github-to-chat", "enrich"] {
            let caps = Arc::new(Capabilities::none(name, &serde_json::json!({})));
            let mut config = PluginConfig::with_defaults(plugin(name));
            config.fuel = fuel;
            let loaded = Plugin::load(engine, &plugin(name), &config, caps).expect("loads");
            assert_eq!(loaded.is_metered(), metered, "{name} with fuel {fuel:?}");
            if loaded.is_sync() {
                let run = loaded.handle(&event).await.expect("runs");
                assert_eq!(run.outputs.len(), 1);
                assert_eq!(run.fuel > 0, metered, "{name}: {} fuel", run.fuel);
            }
        }
    }
    // The two kinds of compiled code are cached apart: a metered load after an unmetered one
    // of the same file still counts.
    let entries = std::fs::read_dir(cache.path()).expect("cache").count();
    assert!(entries >= 4, "{entries} cache entries");
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_are_accepted_while_every_plugin_worker_runs_to_its_timeout() {
    let receiver = Receiver::start().await;
    let config = route_through("misbehave", "misbehave-sync", "timeout = \"5s\"", &receiver)
        + "\n[runtime]\nconcurrency = 2\n";
    let router = Router::start(&config).expect("router starts");
    // Both plugin workers spin for 5 s on the sync path, holding their threads...
    for _ in 0..2 {
        assert_eq!(post(&router, "in", &[], br#"{"mode":"loop"}"#).await.0, 202);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // ...and ingress still answers, well before either of them is stopped.
    for n in 0..5 {
        let body = format!(r#"{{"mode":"ok","n":{n}}}"#);
        assert_eq!(post(&router, "in", &[], body.as_bytes()).await.0, 202);
    }
    assert_eq!(
        router.count("SELECT COUNT(*) FROM events WHERE status = 'failed'"),
        0,
        "the runaway plugins were still running when the webhooks were accepted"
    );
    // Once the timeouts stop them, the waiting events flow.
    receiver.wait_for(5, Duration::from_secs(30)).await;
    assert_eq!(failed_events(&router, 2).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sdk_allocator_keeps_every_value_intact() {
    let receiver = Receiver::start().await;
    let config = route_through("misbehave", "misbehave-sync", "", &receiver);
    let router = Router::start(&config).expect("router starts");
    for _ in 0..3 {
        assert_eq!(
            post(&router, "in", &[], br#"{"mode":"alloc"}"#).await.0,
            202
        );
    }
    let got = receiver.wait_for(3, Duration::from_secs(30)).await;
    for r in got {
        assert_eq!(
            r.json(),
            serde_json::json!({
                "grown": 20000, "strings": 10890 + 13411, "shrunk": 256, "aligned": 101,
                "boxes": 2510, "refilled": 5000, "map": 2000
            })
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn plugin_outputs_cannot_set_host_framing_credentials_or_router_headers() {
    for header in [
        "Host",
        "Content-Length",
        "Transfer-Encoding",
        "Authorization",
        "webhook-signature",
        "Hookyard-Event-Id",
    ] {
        let receiver = Receiver::start().await;
        let keys = format!(
            r#"[[plugins.shape.config.outputs]]
headers = {{ "{header}" = "evil.example" }}
[plugins.shape.config.outputs.body]
id = "{{{{ body.id }}}}""#
        );
        let config = route_through("shape", "template", &keys, &receiver);
        let router = Router::start(&config).expect("router starts");
        assert_eq!(post(&router, "in", &[], br#"{"id":"1"}"#).await.0, 202);
        let errors = failed_events(&router, 1).await;
        assert!(
            errors[0].contains(&format!(
                "plugin \"shape\" set the header \"{header}\", which plugins may not set"
            )),
            "{header}: {errors:?}"
        );
        assert!(
            receiver.received().is_empty(),
            "{header}: something was sent"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn plugin_log_lines_cannot_forge_router_lines_or_flood_the_log() {
    let receiver = Receiver::start().await;
    let config = route_through("chatty", "misbehave", "", &receiver);
    let router = Router::start(&config).expect("router starts");
    let forged = "all good\n2026-12-01T00:00:00.000000Z ERROR hookyard: admin token is hunter2";
    let body = serde_json::json!({"mode": "log", "message": forged, "times": 500}).to_string();
    assert_eq!(post(&router, "in", &[], body.as_bytes()).await.0, 202);
    receiver.wait_for(1, Duration::from_secs(20)).await;
    let log = router.log();
    assert!(
        !log.lines()
            .any(|l| l.starts_with("2026-12-01T00:00:00.000000Z")),
        "a plugin wrote a line of its own"
    );
    let written = log.matches("all good\\n2026-12-01").count();
    assert_eq!(written, 100, "at most 100 lines a second");
    // The next line after the second is over reports what was held back.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let once = serde_json::json!({"mode": "log", "message": "later"}).to_string();
    assert_eq!(post(&router, "in", &[], once.as_bytes()).await.0, 202);
    receiver.wait_for(2, Duration::from_secs(20)).await;
    let log = router.log();
    assert!(
        log.contains("held_back=400") && log.contains("plugin log lines held back"),
        "{log}"
    );
}

/// A route whose first step fans out to 500 outputs and whose second step (with `keys`)
/// runs once per output.
fn fan_out_into(keys: &str, receiver: &Receiver) -> String {
    let misbehave = plugin("misbehave").display().to_string();
    let tables = format!(
        "[plugins.fan]\npath = \"{misbehave}\"\nmax_outputs = 500\n\n[plugins.each]\npath = \"{misbehave}\"\n{keys}\n"
    );
    route_with(&tables, &["fan", "each"], receiver)
}

#[tokio::test(flavor = "multi_thread")]
async fn output_limits_hold_per_event_across_a_fan_out() {
    // Each call of `each` makes one 2-byte output, well under its limits; the 500 calls
    // of one event together are not.
    for (keys, error) in [
        (
            "max_outputs = 1000\nmax_output_bytes = \"100B\"",
            "plugin \"each\" exceeded its output size limit of 100B",
        ),
        (
            "",
            "plugin \"each\" exceeded its output limit of 100 outputs",
        ),
        (
            "max_outputs = 1000\ntimeout = \"5ms\"",
            "plugin \"each\" exceeded its timeout of 5ms",
        ),
    ] {
        let receiver = Receiver::start().await;
        let router = Router::start(&fan_out_into(keys, &receiver)).expect("router starts");
        assert_eq!(post(&router, "in", &[], br#"{"mode":"many"}"#).await.0, 202);
        let errors = failed_events(&router, 1).await;
        assert!(errors[0].contains(error), "{keys}: {errors:?}");
        assert!(receiver.received().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn headers_and_paths_count_toward_max_output_bytes() {
    let receiver = Receiver::start().await;
    let keys = format!(
        "max_output_bytes = \"1KiB\"\n[[plugins.shape.config.outputs]]\npath = \"/{}\"\nheaders = {{ x-note = \"{}\" }}\nbody = {{ ok = true }}",
        "p".repeat(600),
        "n".repeat(600)
    );
    let config = route_through("shape", "template", &keys, &receiver);
    let router = Router::start(&config).expect("router starts");
    assert_eq!(post(&router, "in", &[], br#"{"id":"1"}"#).await.0, 202);
    let errors = failed_events(&router, 1).await;
    assert!(
        errors[0].contains("plugin \"shape\" exceeded its output size limit of 1KiB"),
        "{errors:?}"
    );
}

/// A kv store that fails every call, or (with `stall`) answers only after it.
struct TroubledKv {
    stall: Option<Duration>,
}

#[async_trait::async_trait]
impl hookyard::pipeline::host::PluginKv for TroubledKv {
    async fn get(&self, _: &str, _: &str) -> Result<Option<Vec<u8>>, String> {
        self.trouble().await.map(|()| None)
    }
    async fn set(&self, _: &str, _: &str, _: Vec<u8>, _: Option<i64>) -> Result<(), String> {
        self.trouble().await
    }
    async fn delete(&self, _: &str, _: &str) -> Result<(), String> {
        self.trouble().await
    }
    async fn increment(
        &self,
        _: &str,
        _: &str,
        _: i64,
        _: Option<i64>,
    ) -> Result<Option<i64>, String> {
        self.trouble().await.map(|()| None)
    }
    async fn set_if_absent(
        &self,
        _: &str,
        _: &str,
        _: Vec<u8>,
        _: Option<i64>,
    ) -> Result<bool, String> {
        self.trouble().await.map(|()| true)
    }
    async fn count(&self, _: &str) -> Result<u64, String> {
        self.trouble().await.map(|()| 0)
    }
}

impl TroubledKv {
    async fn trouble(&self) -> Result<(), String> {
        match self.stall {
            Some(d) => {
                tokio::time::sleep(d).await;
                Ok(())
            }
            None => Err("database is locked".into()),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kv_store_trouble_is_transient_not_the_plugins_fault() {
    use hookyard::config::{Dur, PluginConfig};
    use hookyard::pipeline::host::Capabilities;
    use hookyard::pipeline::{Plugin, StepError};
    use std::sync::Arc;

    let cache = tempfile::tempdir().expect("tempdir");
    let engine = engine_in(cache.path(), Meter::Limited);
    let event = hookyard::pipeline::bindings::Event {
        id: "evt_1".into(),
        route: "in".into(),
        received_at: 0,
        event_type: None,
        headers: vec![("content-type".into(), "application/json".into())],
        body: br#"{"mode":"once","key":"k"}"#.to_vec(),
    };
    for (stall, want) in [
        (None, "kv store unavailable: database is locked"),
        (
            Some(Duration::from_secs(2)),
            "still waiting for the kv store when its timeout of 200ms ran out",
        ),
    ] {
        let caps = Arc::new(Capabilities {
            kv: Arc::new(TroubledKv { stall }),
            ..Capabilities::none("misbehave", &serde_json::json!({}))
        });
        let mut config = PluginConfig::with_defaults(plugin("misbehave"));
        config.timeout = Dur(Duration::from_millis(200));
        let loaded = Plugin::load(&engine, &plugin("misbehave"), &config, caps).expect("loads");
        let Err(err) = loaded.handle(&event).await else {
            panic!("the store failed, yet the plugin's run succeeded");
        };
        assert!(err.is_transient(), "{err}");
        assert!(matches!(err, StepError::StoreTrouble { .. }), "{err}");
        assert!(err.to_string().contains(want), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_cannot_add_kv_keys_past_its_quota() {
    let receiver = Receiver::start().await;
    let config = route_through("once", "misbehave", "kv_max_keys = 3", &receiver);
    let router = Router::start(&config).expect("router starts");
    // One after another: events running at once may overshoot the quota by what they
    // write meanwhile (documented), which is not what this test is about.
    for n in 1..=5 {
        let body = format!(r#"{{"mode":"once","key":"k{n}"}}"#);
        assert_eq!(post(&router, "in", &[], body.as_bytes()).await.0, 202);
        eventually("the event has run", Duration::from_secs(20), || {
            router.count("SELECT COUNT(*) FROM events WHERE status != 'received'") == n
        })
        .await;
    }
    receiver.wait_for(3, Duration::from_secs(20)).await;
    let errors = failed_events(&router, 2).await;
    for e in &errors {
        assert!(
            e.contains("kv quota of 3 keys reached (kv_max_keys)"),
            "{errors:?}"
        );
    }
    assert_eq!(router.count("SELECT COUNT(*) FROM kv"), 3);
    // A key it already holds is still its own to use: a repeat is dropped, not refused.
    assert_eq!(
        post(&router, "in", &[], br#"{"mode":"once","key":"k1"}"#)
            .await
            .0,
        202
    );
    eventually("the repeat is dropped", Duration::from_secs(20), || {
        router.count("SELECT COUNT(*) FROM events WHERE status = 'processed' AND dropped LIKE '%already handled%'") == 1
    })
    .await;
}
