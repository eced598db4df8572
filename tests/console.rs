//! The web console in a real browser: `tests/browser/console.py` drives Debian's Chromium
//! through Playwright against the real binary (sign-in, filters, search, an event's page,
//! retry, bulk replay with its count, the live tail, the charts); this test sets the stage
//! and checks what the clicks did on the receiving end. Screenshots go to a temporary
//! directory, removed when the walk-through passes, or to `HOOKYARD_SCREENSHOTS`
//! (docs/screenshots is made that way).

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_finds_retries_replays_and_watches_events_in_a_real_browser() {
    let chat = Receiver::start().await;
    let crm = Receiver::start().await;
    crm.always(500);
    let config = format!(
        r#"{SERVER}
[destinations.chat]
url = "{}"

[destinations.crm]
url = "{}"
retry = {{ attempts = 1, backoff = "50ms" }}
breaker = {{ failures = 0 }}

[[routes]]
name = "shop"
verify = {{ scheme = "none" }}
to = ["chat"]

[[routes]]
name = "billing"
verify = {{ scheme = "none" }}
to = ["crm"]
"#,
        chat.url("/"),
        crm.url("/")
    );
    let router = Router::start(&config).expect("router starts");
    for order in ["ord_1000", "ord_4711", "ord_2000"] {
        let body = format!(r#"{{"order":"{order}","total":12}}"#);
        assert_eq!(post(&router, "shop", &[], body.as_bytes()).await.0, 202);
    }
    // The order the operator looks for also went to billing, whose CRM is down.
    for order in ["ord_4711", "ord_5000"] {
        let body = format!(r#"{{"order":"{order}","total":12}}"#);
        assert_eq!(post(&router, "billing", &[], body.as_bytes()).await.0, 202);
    }
    chat.wait_for(3, Duration::from_secs(20)).await;
    eventually(
        "both CRM deliveries are dead",
        Duration::from_secs(20),
        || router.count("SELECT COUNT(*) FROM deliveries WHERE status = 'dead'") == 2,
    )
    .await;
    crm.always(200);

    // Screenshots go where HOOKYARD_SCREENSHOTS says and stay there; otherwise to a temporary
    // directory that is removed when the walk-through passes and kept (for a look) when not.
    let (shots, temporary) = match std::env::var("HOOKYARD_SCREENSHOTS") {
        Ok(dir) => (std::path::PathBuf::from(dir), false),
        Err(_) => (
            tempfile::Builder::new()
                .prefix("hookyard-shots-")
                .tempdir()
                .unwrap()
                .keep(),
            true,
        ),
    };
    std::fs::create_dir_all(&shots).unwrap();
    let out = Command::new("python3")
        .arg(workspace().join("tests/browser/console.py"))
        .arg(router.admin_base())
        .arg(ADMIN_TOKEN)
        .arg(router.base())
        .arg(&shots)
        .output()
        .expect("run the browser (pip install playwright; apt-get install chromium)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the console walk-through failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(stdout.trim().lines().last().unwrap_or(""))
        .expect("the walk-through reports JSON");
    assert_eq!(report["events_listed"], 5);
    assert_eq!(report["shop_events"], 3);
    assert_eq!(
        report["search_found"],
        serde_json::json!(["billing", "shop"])
    );
    // The retry clicked on one event's page, and then the bulk retry of the other dead
    // letter (counted first: 1), reached the CRM, which now answers.
    assert_eq!(report["retry_count"], 1);
    crm.wait_for(4, Duration::from_secs(20)).await;
    eventually("nothing is dead any more", Duration::from_secs(20), || {
        router.count("SELECT COUNT(*) FROM deliveries WHERE status = 'dead'") == 0
    })
    .await;
    // The bulk replay ran the three shop events again: three more chat messages (and the
    // event the live tail watched arrive makes one more).
    assert_eq!(report["replay_count"], 3);
    chat.wait_for(7, Duration::from_secs(20)).await;
    // The charts read the node's real activity: 6 received, deliveries and failures.
    assert_eq!(report["chart_received"], 6.0, "{report}");
    assert!(
        report["chart_delivered"].as_f64().unwrap_or(0.0) >= 4.0,
        "{report}"
    );
    assert!(
        report["chart_failed"].as_f64().unwrap_or(0.0) >= 1.0,
        "{report}"
    );
    for page in [
        "sign-in",
        "events",
        "events-filtered",
        "event",
        "replay-confirm",
        "retry-confirm",
        "live-tail",
        "charts",
        "dead-letters",
        "destinations",
        "alerts",
    ] {
        assert!(
            shots.join(format!("{page}.png")).exists(),
            "screenshot of {page} in {}",
            shots.display()
        );
    }
    if temporary {
        std::fs::remove_dir_all(&shots).unwrap();
    }
}
