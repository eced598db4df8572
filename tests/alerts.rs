//! Alerts, end to end: a destination whose deliveries die raises one `dead_letter` alert (not
//! one per delivery), delivered like any output to the destination `[alerts]` names, and a
//! resolution once it delivers again; `hookyard alerts`, the admin API and the UI list them.

use std::time::Duration;

use serde_json::Value;

use crate::support::*;

fn config(crm: &Receiver, ops: &Receiver) -> String {
    format!(
        r#"{SERVER}
[destinations.crm]
url = "{}"
retry = {{ attempts = 2, backoff = "50ms" }}
breaker = {{ failures = 0 }}

[destinations.ops]
url = "{}"

[alerts]
to = ["ops"]
debounce = "10m"

[[routes]]
name = "shop"
verify = {{ scheme = "none" }}
to = ["crm"]
"#,
        crm.url("/"),
        ops.url("/alerts")
    )
}

fn alerts_in(received: &[Received]) -> Vec<Value> {
    received.iter().map(Received::json).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn dying_deliveries_raise_one_alert_and_a_resolution_when_the_destination_recovers() {
    let crm = Receiver::start().await;
    crm.always(500);
    let ops = Receiver::start().await;
    let router = Router::start(&config(&crm, &ops)).expect("router starts");

    for i in 0..5 {
        let body = format!(r#"{{"order":{i}}}"#);
        assert_eq!(post(&router, "shop", &[], body.as_bytes()).await.0, 202);
    }
    eventually("all five deliveries die", Duration::from_secs(20), || {
        router.count("SELECT COUNT(*) FROM deliveries WHERE status = 'dead'") == 5
    })
    .await;
    let got = ops.wait_for(1, Duration::from_secs(20)).await;
    // Give any further (wrong) alert time to arrive before counting.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let alerts = alerts_in(&ops.received());
    assert_eq!(
        alerts.len(),
        1,
        "one alert, not one per dead letter: {alerts:#?}"
    );
    assert_eq!(
        got[0].header("content-type"),
        Some("application/vnd.hookyard.alert+json")
    );
    assert!(got[0].header("hookyard-delivery-id").is_some());
    let firing = &alerts[0];
    assert_eq!(firing["alert"], "dead_letter");
    assert_eq!(firing["state"], "firing");
    assert_eq!(firing["subject"]["destination"], "crm");
    assert!(
        firing["detail"].as_str().unwrap_or("").contains("500"),
        "{firing}"
    );

    // The admin API and the command line show it open, and the alert sent.
    let (status, view) = admin(&router, "GET", "/admin/alerts", None).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["configured"], true);
    assert_eq!(view["open"][0]["alert"], "dead_letter");
    assert_eq!(
        view["open"][0]["count"], 5,
        "every dead letter counted: {view}"
    );
    assert_eq!(view["recent"][0]["state"], "firing");
    let listed = hookyard_admin(&router, &["alerts"]);
    assert!(
        listed.contains("dead_letter") && listed.contains("crm"),
        "{listed}"
    );
    let page = ui_page(&router, "/ui/alerts").await;
    assert!(
        page.contains("dead_letter") && page.contains("crm"),
        "{page}"
    );

    // The destination recovers: the next delivery goes through and the alert resolves.
    crm.always(200);
    assert_eq!(post(&router, "shop", &[], br#"{"order":6}"#).await.0, 202);
    let got = ops.wait_for(2, Duration::from_secs(20)).await;
    let resolved = got[1].json();
    assert_eq!(resolved["alert"], "dead_letter");
    assert_eq!(resolved["state"], "resolved");
    assert_eq!(resolved["count"], 5);
    assert!(resolved["summary"].as_str().unwrap_or("").contains("crm"));
    let (_, view) = admin(&router, "GET", "/admin/alerts", None).await;
    assert_eq!(view["open"], Value::Array(Vec::new()), "{view}");
    // Alerts are events of their own, never posted to.
    assert_eq!(post(&router, "@alerts", &[], b"{}").await.0, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_destination_is_told_in_words_through_a_template_step_and_so_is_its_resume() {
    let crm = Receiver::start().await;
    crm.always(410);
    let chat = Receiver::start().await;
    let config = format!(
        r#"{SERVER}
[plugins.alert-text]
path = "{}"
[[plugins.alert-text.config.outputs]]
body = {{ text = "{{{{ body.state }}}}: {{{{ body.summary }}}}" }}

[destinations.crm]
url = "{}"

[destinations.ops-chat]
url = "{}"

[alerts]
to = ["ops-chat"]
steps = ["alert-text"]

[[routes]]
name = "shop"
verify = {{ scheme = "none" }}
to = ["crm"]
"#,
        plugin("template").display(),
        crm.url("/"),
        chat.url("/hooks/ops")
    );
    let router = Router::start(&config).expect("router starts");
    assert_eq!(post(&router, "shop", &[], br#"{"order":1}"#).await.0, 202);
    let told = chat.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(
        told[0].json()["text"],
        "firing: crm is paused: nothing is sent to it"
    );
    crm.always(200);
    let (status, _) = admin(&router, "POST", "/admin/destinations/crm/resume", None).await;
    assert_eq!(status, 200);
    let told = chat.wait_for(2, Duration::from_secs(20)).await;
    assert_eq!(told[1].json()["text"], "resolved: crm was resumed");
    // The parked delivery goes out once resumed.
    crm.wait_for(2, Duration::from_secs(20)).await;
}
