//! `hookyard shadow`: stored events of a route run through its chain with one step replaced;
//! an identical plugin changes nothing, a changed one reports exactly the events whose
//! outputs change, and nothing reaches any destination.

use std::process::Command;
use std::time::Duration;

use crate::support::*;

const SECRET: &str = "shadow-secret";

fn config(receiver: &Receiver) -> String {
    with_sink(
        receiver,
        &format!(
            r#"[plugins.main-only]
path = "{}"
config = {{ conditions = [{{ pointer = "/ref", equals = "refs/heads/main" }}] }}

[plugins.chat]
path = "{}"

[[routes]]
name = "gh"
verify = {{ scheme = "github", secret = "{SECRET}" }}
steps = ["main-only", "chat"]
to = ["sink"]
"#,
            plugin("filter").display(),
            plugin("github-to-chat").display()
        ),
    )
}

fn push_to(branch: &str, n: u32) -> Vec<u8> {
    let mut doc: serde_json::Value = serde_json::from_slice(&fixture("github/push.json")).unwrap();
    doc["ref"] = format!("refs/heads/{branch}").into();
    doc["head_commit"]["message"] = format!("change {n}").into();
    serde_json::to_vec(&doc).unwrap()
}

fn shadow(router: &Router, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hookyard"))
        .args(["shadow", "gh", "-c"])
        .arg(router.config_path())
        .args(args)
        .output()
        .expect("run hookyard shadow");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shadow_run_reports_exactly_the_events_a_changed_plugin_would_change_and_delivers_nothing()
 {
    let receiver = Receiver::start().await;
    let router = Router::start(&config(&receiver)).expect("router starts");
    // Three pushes to main (delivered) and two to a feature branch (dropped by the filter).
    for (n, branch) in ["main", "feature", "main", "feature", "main"]
        .iter()
        .enumerate()
    {
        let delivery = format!("d-{n}");
        let (status, text) = post_github(
            &router,
            "gh",
            SECRET,
            "push",
            &delivery,
            &push_to(branch, n as u32),
        )
        .await;
        assert_eq!(status, 202, "{text}");
    }
    receiver.wait_for(3, Duration::from_secs(20)).await;
    eventually(
        "all five events are processed",
        Duration::from_secs(10),
        || router.count("SELECT count(*) FROM events WHERE status = 'processed'") == 5,
    )
    .await;

    // The same plugin as a candidate: nothing changes.
    let same = format!("chat={}", plugin("github-to-chat").display());
    let (code, out, err) = shadow(&router, &["--replace", &same, "--fail-on-change"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.trim_end().ends_with(
            "5 events: 5 unchanged, 0 changed, 0 newly failing, 0 fixed, 0 newly dropped"
        ),
        "{out}{err}"
    );

    // A different chat message: exactly the three pushes to main change.
    let template = format!("chat={}", plugin("template").display());
    let reshaped = r#"chat={"outputs":[{"body":{"text":"pushed to {{ body.ref }}"}}]}"#;
    let (code, out, err) = shadow(
        &router,
        &[
            "--replace",
            &template,
            "--config",
            reshaped,
            "--fail-on-change",
        ],
    );
    assert_eq!(
        code, 1,
        "--fail-on-change fails when something differs: {out}{err}"
    );
    assert!(
        out.trim_end().ends_with(
            "5 events: 2 unchanged, 3 changed, 0 newly failing, 0 fixed, 0 newly dropped"
        ),
        "{out}{err}"
    );
    assert!(
        out.contains("+       \"text\": \"pushed to refs/heads/main\""),
        "a readable diff: {out}"
    );

    // A filter that lets nothing through drops what was delivered.
    let filter = format!("main-only={}", plugin("filter").display());
    let none = r#"main-only={"conditions":[{"pointer":"/ref","equals":"refs/heads/nowhere"}]}"#;
    let (code, out, err) = shadow(&router, &["--replace", &filter, "--config", none, "--json"]);
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("JSON report");
    assert_eq!(
        report["summary"],
        "5 events: 2 unchanged, 0 changed, 0 newly failing, 0 fixed, 3 newly dropped"
    );
    assert_eq!(report["differences"].as_array().map(Vec::len), Some(3));
    assert_eq!(report["differences"][0]["verdict"], "newly_dropped");

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        receiver.received().len(),
        3,
        "a shadow run delivers nothing"
    );
    assert_eq!(router.count("SELECT count(*) FROM deliveries"), 3);

    let (code, _, err) = shadow(&router, &["--replace", "nope=x.wasm"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("route \"gh\" has no step \"nope\" (its steps: main-only, chat)"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_live_shadow_counts_differences_under_load_without_changing_what_is_delivered() {
    let receiver = Receiver::start().await;
    let config = config(&receiver).replace(
        "[plugins.chat]\n",
        &format!(
            "[plugins.chat]\nshadow = \"{}\"\nshadow_config = {{ outputs = [{{ body = {{ text = \"pushed to {{{{ body.ref }}}}\" }} }}] }}\n",
            plugin("template").display()
        ),
    );
    let router = Router::start(&config).expect("router starts");
    let posts = (0..20u32).map(|n| {
        let branch = if n % 5 < 3 { "main" } else { "feature" };
        let body = push_to(branch, n);
        let router = &router;
        async move {
            post_github(router, "gh", SECRET, "push", &format!("d-{n}"), &body)
                .await
                .0
        }
    });
    let statuses = futures::future::join_all(posts).await;
    assert!(statuses.iter().all(|s| *s == 202), "{statuses:?}");
    let got = receiver.wait_for(12, Duration::from_secs(30)).await;
    eventually("every event is compared", Duration::from_secs(10), || {
        router.count("SELECT count(*) FROM events WHERE status = 'processed'") == 20
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        receiver.received().len(),
        12,
        "only the live outputs are delivered"
    );
    for r in &got {
        let text = r.json()["text"].as_str().unwrap().to_string();
        assert!(
            text.contains("pushed 1 commit"),
            "the live plugin's message: {text}"
        );
    }
    let (status, shadow) = admin(&router, "GET", "/admin/shadow", None).await;
    assert_eq!(status, 200);
    let report = &shadow["routes"][0]["report"];
    assert_eq!(shadow["routes"][0]["route"], "gh");
    assert_eq!(
        report["verdicts"],
        serde_json::json!({ "changed": 12, "unchanged": 8 }),
        "{shadow}"
    );
    let recent = report["recent"].as_array().unwrap();
    assert_eq!(recent.len(), 12);
    assert_eq!(
        recent[0]["candidate"]["Ok"][0]["body"]["text"], "pushed to refs/heads/main",
        "{shadow}"
    );
    let html = ui_page(&router, "/ui/shadow").await;
    assert!(
        html.contains("20 events compared: 12 changed, 8 unchanged")
            && html.contains("pushed to refs/heads/main"),
        "the UI shows the counts and both outputs: {html}"
    );
    let changed = recent[0]["event"].as_str().unwrap();
    let html = ui_page(&router, &format!("/ui/events/{changed}")).await;
    assert!(
        html.contains("<h2>Shadow: changed</h2>") && html.contains("pushed to refs/heads/main"),
        "the event page shows both outputs: {html}"
    );
    let (_, metrics) = admin(&router, "GET", "/admin/metrics", None).await;
    let metrics = metrics
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| metrics.to_string());
    assert!(
        metrics.contains(r#"hookyard_shadow_events_total{route="gh",verdict="changed"} 12"#),
        "{metrics}"
    );
}
