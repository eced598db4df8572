//! The everyday recipes end to end. Lead capture with no code: a form post becomes a HubSpot
//! contact upsert (bearer token, HubSpot's batch-upsert shape, a 429 waited out), a welcome
//! email through a real SMTP server, and a Slack message, all made by the `template` plugin.

use std::time::Duration;

use crate::email::SmtpServer;
use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn lead_capture_upserts_the_contact_emails_a_welcome_and_tells_sales() {
    let hubspot = Receiver::start().await;
    hubspot.reply(Reply {
        status: 429,
        headers: vec![("retry-after", "1".into())],
        body: Some(r#"{"status":"error","message":"You have reached your secondly limit.","category":"RATE_LIMITS"}"#.into()),
        ..Default::default()
    });
    hubspot.body_all(r#"{"status":"COMPLETE","results":[{"id":"512","properties":{"email":"ada@example.com"}}]}"#);
    let slack = Receiver::start().await;
    slack.body_all("ok");
    let smtp = SmtpServer::start("");
    // The example config, pointed at the local servers.
    let example =
        std::fs::read_to_string(workspace().join("examples/lead-capture/router.toml")).unwrap();
    let config = example
        .replace("[server]\nlisten = \"127.0.0.1:8080\"", "")
        .replace("[store]\nurl = \"sqlite://data/lead-capture.db\"", "")
        .replace(
            "../../plugins/dist/template.wasm",
            &plugin("template").display().to_string(),
        )
        .replace("https://api.hubapi.com", &hubspot.url(""))
        .replace(
            "smtps://smtp.example.com:465",
            &format!("smtp://127.0.0.1:{}", smtp.port),
        )
        .replace(
            "username = \"hooks@example.com\"\npassword = \"${SMTP_PASSWORD}\"\n",
            "",
        )
        .replace(
            "retry = { schedule = [\"5s\", \"1m\", \"10m\", \"1h\"] }",
            "retry = { schedule = [\"100ms\", \"100ms\"] }",
        );
    let config = format!("{SERVER}\n{config}");
    let router = Router::start_with_env(
        &config,
        &[
            ("HUBSPOT_TOKEN", "pat-na1-test"),
            ("SLACK_WEBHOOK_URL", &slack.url("/services/T0/B0/X")),
            ("FORM_TOKEN", "form-tok"),
        ],
    )
    .expect("router starts");

    let form = "name=Ada+Lovelace&email=ada%40example.com&company=Analytical+%22Engines%22%0ALtd";
    let resp = reqwest::Client::new()
        .post(format!("{}/hooks/lead-form?token=form-tok", router.base()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);

    // HubSpot: rate-limited once, then the upsert in HubSpot's shape, with the token.
    let calls = hubspot.wait_for(2, Duration::from_secs(30)).await;
    assert!(
        calls[1].at - calls[0].at >= Duration::from_millis(900),
        "Retry-After was honoured"
    );
    for c in &calls {
        assert_eq!(c.method, "POST");
        assert_eq!(c.path, "/crm/v3/objects/contacts/batch/upsert");
        assert_eq!(c.header("authorization"), Some("Bearer pat-na1-test"));
        assert_eq!(c.header("content-type"), Some("application/json"));
    }
    assert_eq!(
        calls[1].json(),
        serde_json::json!({"inputs": [{"idProperty": "email", "id": "ada@example.com", "properties": {
            "email": "ada@example.com", "firstname": "Ada Lovelace", "company": "Analytical \"Engines\"\nLtd"
        }}]}),
        "quotes and newlines in a field still make valid JSON"
    );
    // The welcome email.
    let mail = smtp.wait_for(1).await;
    assert_eq!(mail[0]["rcpt_tos"], serde_json::json!(["ada@example.com"]));
    assert_eq!(mail[0]["subject"], "Welcome, Ada Lovelace!");
    assert_eq!(
        mail[0]["parts"],
        serde_json::json!(["multipart/alternative", "text/plain", "text/html"])
    );
    // Sales in Slack.
    let posted = slack.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(posted[0].path, "/services/T0/B0/X");
    assert_eq!(
        posted[0].json()["text"],
        "New lead: Ada Lovelace <ada@example.com> from Analytical \"Engines\"\nLtd"
    );

    // A wrong form token is refused; a lead without email only reaches Slack.
    let bad = reqwest::Client::new()
        .post(format!("{}/hooks/lead-form?token=nope", router.base()))
        .body("name=Eve")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    let no_email = reqwest::Client::new()
        .post(format!("{}/hooks/lead-form?token=form-tok", router.base()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("name=Grace")
        .send()
        .await
        .unwrap();
    assert_eq!(no_email.status(), 202);
    let posted = slack.wait_for(2, Duration::from_secs(20)).await;
    assert_eq!(posted[1].json()["text"], "New lead: Grace <no email>");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hubspot.received().len(), 2);
    assert_eq!(smtp.messages().len(), 1);
}
