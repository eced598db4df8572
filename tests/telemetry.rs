//! OpenTelemetry traces, end to end: the real binary exports OTLP/HTTP to a receiver that
//! decodes the protobuf with OpenTelemetry's own definitions (`tests/sdk/otlp-receiver.py`,
//! PyPI's opentelemetry-proto), and the receivers of fetches and deliveries see the trace
//! carried on in `traceparent`.

use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

/// A collector that writes every span it receives to a file, one JSON object per line.
struct Collector {
    port: u16,
    spans: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Collector {
    fn start() -> Collector {
        let dir = tempfile::tempdir().unwrap();
        let spans = dir.path().join("spans.jsonl");
        let mut child = Command::new("python3")
            .arg(workspace().join("tests/sdk/otlp-receiver.py"))
            .arg(&spans)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the OTLP receiver (pip install -r tests/sdk/requirements.txt)");
        let mut port = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut port)
            .unwrap();
        let port = port
            .trim()
            .parse()
            .expect("the OTLP receiver prints its port");
        Collector {
            port,
            spans,
            child,
            _dir: dir,
        }
    }

    fn spans(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.spans)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(collector: Option<&Collector>, api: &Receiver, sink: &Receiver) -> String {
    let telemetry = collector.map_or(String::new(), |c| {
        format!(
            "[telemetry]\notlp_endpoint = \"http://127.0.0.1:{}\"\nservice_name = \"hookyard-test\"\n",
            c.port
        )
    });
    format!(
        r#"{SERVER}
{telemetry}
[plugins.orders]
path = "{}"
# A fuel limit makes the plugin count its fuel, which its span then reports.
fuel = 1000000000
allow_http = ["127.0.0.1:{}"]
config = {{ url = "{}/orders/{{/data/id}}" }}

[destinations.sink]
url = "{}"

[[routes]]
name = "shop"
verify = {{ scheme = "none" }}
steps = ["orders"]
to = ["sink"]
"#,
        plugin("enrich").display(),
        api.addr.port(),
        api.url(""),
        sink.url("/")
    )
}

const SENDER_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const SENDER_SPAN: &str = "b7ad6b7169203331";

/// Posts order `or_1` as part of the sender's trace; the event's id.
async fn post_in_senders_trace(router: &Router) -> String {
    let traceparent = format!("00-{SENDER_TRACE}-{SENDER_SPAN}-01");
    let (status, answer) = post(
        router,
        "shop",
        &[("traceparent".into(), traceparent)],
        br#"{"data":{"id":"or_1"}}"#,
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    answer["id"].as_str().unwrap().to_string()
}

/// The trace id in a `traceparent` header.
fn trace_of(traceparent: Option<&str>) -> Option<String> {
    traceparent
        .and_then(|t| t.split('-').nth(1))
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread")]
async fn each_event_is_one_trace_from_the_senders_traceparent_to_the_receivers() {
    let collector = Collector::start();
    let api = Receiver::start().await;
    api.body_all(r#"{"total":4200}"#);
    let sink = Receiver::start().await;
    let router = Router::start_with_env(
        &config(Some(&collector), &api, &sink),
        // Export every 100 ms instead of every 5 s.
        &[("OTEL_BSP_SCHEDULE_DELAY", "100")],
    )
    .expect("router starts");

    let first_id = post_in_senders_trace(&router).await;
    assert_eq!(
        post(&router, "shop", &[], br#"{"data":{"id":"or_2"}}"#)
            .await
            .0,
        202
    );
    let delivered = sink.wait_for(2, Duration::from_secs(20)).await;

    // The receivers' traces join: the fetch and the delivery carry the event's trace.
    let fetches = api.received();
    let delivery_traces: HashSet<Option<String>> = delivered
        .iter()
        .map(|r| trace_of(r.header("traceparent")))
        .collect();
    let fetch_traces: HashSet<Option<String>> = fetches
        .iter()
        .map(|r| trace_of(r.header("traceparent")))
        .collect();
    assert!(delivery_traces.contains(&Some(SENDER_TRACE.to_string())));
    assert_eq!(delivery_traces.len(), 2, "two events, two traces");
    assert!(
        !delivery_traces.contains(&None),
        "every delivery carries one"
    );
    assert_eq!(
        fetch_traces, delivery_traces,
        "fetches carry their event's trace"
    );

    // One trace per event, with every stage's span in it.
    let expected = [
        "ingress",
        "verify",
        "journal",
        "process",
        "plugin orders",
        "fetch 127.0.0.1",
        "delivery sink",
    ];
    eventually(
        "both events' spans reach the collector",
        Duration::from_secs(20),
        || {
            let spans = collector.spans();
            expected
                .iter()
                .all(|name| spans.iter().filter(|s| s["name"] == *name).count() >= 2)
        },
    )
    .await;
    let spans = collector.spans();
    let mut by_trace: HashMap<String, Vec<&Value>> = HashMap::new();
    for span in &spans {
        by_trace
            .entry(span["trace_id"].as_str().unwrap().to_string())
            .or_default()
            .push(span);
    }
    assert_eq!(by_trace.len(), 2, "one trace per event: {spans:#?}");
    for (trace, spans) in &by_trace {
        let named = |name: &str| -> &Value {
            let found: Vec<&&Value> = spans.iter().filter(|s| s["name"] == name).collect();
            assert_eq!(
                found.len(),
                1,
                "one {name} span in trace {trace}: {spans:#?}"
            );
            found[0]
        };
        let ingress = named("ingress");
        let process = named("process");
        let plugin = named("plugin orders");
        let delivery = named("delivery sink");
        let child_of = |child: &Value, parent: &Value| {
            assert_eq!(
                child["parent_span_id"], parent["span_id"],
                "{} inside {}",
                child["name"], parent["name"]
            );
        };
        child_of(named("verify"), ingress);
        child_of(named("journal"), ingress);
        child_of(process, ingress);
        child_of(plugin, process);
        child_of(named("fetch 127.0.0.1"), plugin);
        child_of(delivery, process);
        assert_eq!(ingress["service"], "hookyard-test");
        assert_eq!(ingress["attributes"]["hookyard.route"], "shop");
        assert_eq!(ingress["attributes"]["http.response.status_code"], 202);
        assert!(
            plugin["attributes"]["hookyard.fuel"].as_i64().unwrap_or(0) > 0,
            "{plugin}"
        );
        assert_eq!(plugin["attributes"]["hookyard.outputs"], 1);
        assert_eq!(delivery["attributes"]["http.response.status_code"], 200);
        assert_eq!(delivery["attributes"]["hookyard.outcome"], "delivered");
        assert_eq!(delivery["attributes"]["hookyard.attempt"], 1);
        if trace == SENDER_TRACE {
            assert_eq!(
                ingress["parent_span_id"], SENDER_SPAN,
                "the sender's trace is continued"
            );
            assert_eq!(
                ingress["attributes"]["hookyard.event_id"],
                first_id.as_str()
            );
        } else {
            assert_eq!(ingress["parent_span_id"], "", "a trace of its own");
        }
    }

    // The admin API names the trace next to the event, its delivery and its attempt.
    let (status, event) = admin(&router, "GET", &format!("/admin/events/{first_id}"), None).await;
    assert_eq!(status, 200, "{event}");
    assert_eq!(event["trace_id"], SENDER_TRACE);
    assert_eq!(event["deliveries"][0]["trace_id"], SENDER_TRACE);
    assert_eq!(
        event["deliveries"][0]["attempt_log"][0]["trace_id"],
        SENDER_TRACE
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_telemetry_off_no_trace_is_kept_or_sent() {
    let api = Receiver::start().await;
    api.body_all(r#"{"total":1}"#);
    let sink = Receiver::start().await;
    let router = Router::start(&config(None, &api, &sink)).expect("router starts");
    let id = post_in_senders_trace(&router).await;
    let delivered = sink.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(delivered[0].header("traceparent"), None);
    assert_eq!(api.received()[0].header("traceparent"), None);
    let (_, event) = admin(&router, "GET", &format!("/admin/events/{id}"), None).await;
    assert_eq!(event["trace_id"], Value::Null);
}

#[test]
fn telemetry_settings_are_checked_with_the_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let base = SERVER.replace("{PORT}", "0").replace("{ADMIN_PORT}", "0");
    let (ok, out) = check_config(
        dir.path(),
        &format!("{base}\n[telemetry]\notlp_endpoint = \"collector:4318\"\n"),
    );
    assert!(!ok);
    assert!(out.contains("telemetry.otlp_endpoint"), "{out}");
    let (ok, out) = check_config(
        dir.path(),
        &format!(
            "{base}\n[telemetry]\notlp_endpoint = \"http://collector:4318\"\nsample_ratio = 2.0\n"
        ),
    );
    assert!(!ok);
    assert!(out.contains("telemetry.sample_ratio"), "{out}");
    let line = out
        .split("router.toml:")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.parse::<u32>().ok());
    assert!(line.is_some(), "the line is named: {out}");
}
