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

/// GET `path` on the admin listener with this bearer token and cookie; the status.
async fn admin_status(router: &Router, path: &str, token: &str, cookie: Option<&str>) -> u16 {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let mut req = client
        .get(format!("{}{path}", router.admin_base()))
        .bearer_auth(token);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    req.send().await.expect("admin request").status().as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_admin_token_applies_on_reload_and_ends_ui_sessions() {
    let receiver = Receiver::start().await;
    let old = config(&receiver, "red");
    let router = Router::start(&old).expect("router starts");
    let login = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .post(format!("{}/ui/login", router.admin_base()))
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .expect("sign in");
    let session = login
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_string();
    assert_eq!(
        admin_status(&router, "/ui/events", "", Some(&session)).await,
        200
    );

    let rotated = "rotated-admin-token-9876543210";
    router.rewrite_config(&old.replace(ADMIN_TOKEN, rotated));
    router.hup();
    wait_for_log(&router, "reloaded", 1).await;
    assert_eq!(
        admin_status(&router, "/admin/events", ADMIN_TOKEN, None).await,
        401
    );
    assert_eq!(
        admin_status(&router, "/admin/events", rotated, None).await,
        200
    );
    assert_eq!(
        admin_status(&router, "/ui/events", "", Some(&session)).await,
        303,
        "the old token's UI session ended"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_that_changes_restart_only_settings_is_refused_naming_each() {
    let receiver = Receiver::start().await;
    let red = config(&receiver, "red");
    let router = Router::start(&red).expect("router starts");
    let changed = config(&receiver, "blue")
        .replace("max_body = \"64KiB\"", "max_body = \"1MiB\"")
        .replace("header_timeout = \"1s\"", "header_timeout = \"2s\"")
        .replace(
            "allow_private = [\"127.0.0.0/8\"]",
            "allow_private = [\"127.0.0.0/8\"]\n\n[runtime]\nmemory_queue = 7",
        )
        .replace(
            "[server]\n",
            "[server]\ntrusted_proxies = [\"10.0.0.0/8\"]\n",
        );
    router.rewrite_config(&changed);
    router.hup();
    wait_for_log(&router, "reload rejected", 1).await;
    let log = router.log();
    assert!(
        log.contains(
            "server.max_body, server.header_timeout, server.trusted_proxies, runtime.memory_queue \
             changed, which takes effect only at start-up"
        ),
        "{log}"
    );
    // Nothing of the new version applies: the running one keeps its routes.
    assert_eq!(
        post(&router, "in", &[], br#"{"color":"blue"}"#).await.0,
        202
    );
    assert_eq!(post(&router, "in", &[], br#"{"color":"red"}"#).await.0, 202);
    receiver.wait_for(1, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(colors(&receiver), ["red"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_destination_removed_by_a_reload_parks_its_backlog_until_it_returns() {
    let receiver = Receiver::start().await;
    receiver.always(500);
    let with = |dests: &str, to: &str| {
        format!(
            "{SERVER}\n{dests}\n[[routes]]\nname = \"in\"\nverify = {{ scheme = \"none\" }}\nto = [\"{to}\"]\n"
        )
    };
    let old = format!(
        "[destinations.old]\nurl = \"{}\"\nretry = {{ schedule = [\"300ms\", \"300ms\", \"300ms\", \"300ms\"] }}\nbreaker = {{ failures = 0 }}\n",
        receiver.url("/old")
    );
    let other = format!(
        "[destinations.other]\nurl = \"{}\"\n",
        receiver.url("/other")
    );
    let router = Router::start(&with(&old, "old")).expect("router starts");
    assert_eq!(post(&router, "in", &[], br#"{"n":1}"#).await.0, 202);
    receiver.wait_for(1, Duration::from_secs(20)).await;

    // The destination goes away while its delivery waits for a retry.
    router.rewrite_config(&with(&other, "other"));
    router.hup();
    wait_for_log(&router, "reloaded", 1).await;
    eventually("old is paused", Duration::from_secs(20), || {
        router.count("SELECT COUNT(*) FROM paused_destinations WHERE name = 'old'") == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        router.count("SELECT COUNT(*) FROM deliveries WHERE status = 'dead'"),
        0,
        "not dead-lettered"
    );
    let (_, destinations) = admin(&router, "GET", "/admin/destinations", None).await;
    assert!(
        destinations.to_string().contains("not in the config"),
        "{destinations}"
    );

    // It comes back: resumed by itself, and the parked delivery goes out.
    receiver.always(200);
    router.rewrite_config(&with(&old, "old"));
    router.hup();
    wait_for_log(&router, "reloaded", 2).await;
    eventually("delivered", Duration::from_secs(20), || {
        router.count("SELECT COUNT(*) FROM deliveries WHERE status = 'delivered'") == 1
    })
    .await;
    assert_eq!(router.count("SELECT COUNT(*) FROM paused_destinations"), 0);
}
