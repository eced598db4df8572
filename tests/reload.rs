//! Hot reload: a changed `router.toml` (or SIGHUP) swaps routes and plugins with no request
//! failing; an invalid new version is rejected and the running one keeps serving.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::*;

fn config(receiver: &Receiver, color: &str) -> String {
    format!(
        r#"{SERVER}
[plugins.only]
path = "{}"
config = {{ conditions = [{{ pointer = "/color", equals = "{color}" }}] }}

[destinations.sink]
url = "{}"

[[routes]]
name = "in"
verify = {{ scheme = "none" }}
steps = ["only"]
to = ["sink"]
"#,
        plugin("filter").display(),
        receiver.url("/")
    )
}

async fn wait_for_log(router: &Router, needle: &str, times: usize) {
    eventually(
        &format!("{times} x {needle:?} in the log"),
        Duration::from_secs(30),
        || router.log().matches(needle).count() >= times,
    )
    .await;
}

fn colors(receiver: &Receiver) -> Vec<String> {
    receiver
        .received()
        .iter()
        .map(|r| r.json()["color"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_config_is_swapped_in_under_load_without_a_failed_request() {
    let receiver = Receiver::start().await;
    let router = Router::start(&config(&receiver, "red")).expect("router starts");
    let stop = Arc::new(AtomicBool::new(false));
    let failures: Arc<Mutex<Vec<String>>> = Default::default();
    let sent = Arc::new(AtomicUsize::new(0));
    let mut senders = Vec::new();
    for _ in 0..4 {
        let (stop, failures, sent, base) =
            (stop.clone(), failures.clone(), sent.clone(), router.base());
        senders.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            while !stop.load(Ordering::Relaxed) {
                let resp = client
                    .post(format!("{base}/hooks/in"))
                    .body(r#"{"color":"green"}"#)
                    .send()
                    .await;
                sent.fetch_add(1, Ordering::Relaxed);
                match resp {
                    Ok(r) if r.status() == 202 => {}
                    Ok(r) => failures
                        .lock()
                        .unwrap()
                        .push(format!("HTTP {}", r.status())),
                    Err(e) => failures.lock().unwrap().push(e.to_string()),
                }
                // Steady load, not overload: ingress outruns the plugins when flooded (it
                // has its own threads), and then new events wait behind the backlog.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    assert_eq!(post(&router, "in", &[], br#"{"color":"red"}"#).await.0, 202);
    receiver.wait_for(1, Duration::from_secs(20)).await;

    // A changed file is noticed and swapped in (generation 2), then SIGHUP swaps again (3).
    router.rewrite_config(&config(&receiver, "blue"));
    wait_for_log(&router, "reloaded", 1).await;
    assert_eq!(post(&router, "in", &[], br#"{"color":"red"}"#).await.0, 202);
    assert_eq!(
        post(&router, "in", &[], br#"{"color":"blue"}"#).await.0,
        202
    );
    receiver.wait_for(2, Duration::from_secs(20)).await;
    router.rewrite_config(&config(&receiver, "green"));
    router.hup();
    wait_for_log(&router, "reloaded", 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        s.await.unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed during reloads: {:?}",
        failures.len(),
        sent.load(Ordering::Relaxed),
        &failures[..failures.len().min(5)]
    );
    assert!(sent.load(Ordering::Relaxed) > 20, "the load was real");
    // Red only before the first reload, blue after it; greens once the last version runs.
    let got = colors(&receiver);
    assert_eq!(&got[..2], ["red", "blue"], "{got:?}");
    assert!(got[2..].iter().all(|c| c == "green"), "{got:?}");
    assert!(
        got.len() > 2,
        "greens are delivered after the SIGHUP reload"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_new_config_is_rejected_and_the_old_one_keeps_serving() {
    let receiver = Receiver::start().await;
    let good = config(&receiver, "red");
    let router = Router::start(&good).expect("router starts");
    router.rewrite_config(&format!(
        "{good}\n[destinations.extra]\nurl = \"http://x\"\nretries = 3\n"
    ));
    wait_for_log(&router, "reload rejected", 1).await;
    assert!(
        router.log().contains("unknown field `retries`"),
        "{}",
        router.log()
    );
    router.rewrite_config(&good.replace(
        &plugin("filter").display().to_string(),
        "/nonexistent/plugin.wasm",
    ));
    router.hup();
    wait_for_log(&router, "reload rejected", 2).await;
    assert!(
        router.log().contains("/nonexistent/plugin.wasm"),
        "the log names the missing plugin"
    );
    // The first version still serves.
    assert_eq!(post(&router, "in", &[], br#"{"color":"red"}"#).await.0, 202);
    assert_eq!(
        post(&router, "in", &[], br#"{"color":"blue"}"#).await.0,
        202
    );
    receiver.wait_for(1, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(colors(&receiver), ["red"]);
}
