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
    // Slack's answer when it fails on its side, once; then its usual "ok".
    slack.reply(Reply {
        status: 500,
        body: Some("rollup_error".into()),
        ..Default::default()
    });
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
        )
        .replace(
            "url = \"${SLACK_WEBHOOK_URL}\"",
            "url = \"${SLACK_WEBHOOK_URL}\"\nretry = { schedule = [\"100ms\"] }",
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
    let hostile =
        "name=%3Ca+href%3Dhttps%3A%2F%2Fevil.example%3EReset%3C%2Fa%3E&email=eve%40example.com";
    assert_eq!(post_lead(&router, "form-tok", form).await, 202);

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
    // Sales in Slack: the first try met Slack's `invalid_payload`, recorded; the retry went through.
    let posted = slack.wait_for(2, Duration::from_secs(20)).await;
    assert_eq!(posted[0].path, "/services/T0/B0/X");
    let recorded: String = router
        .db()
        .query_row(
            "SELECT CAST(response AS TEXT) FROM attempts WHERE status_code = 500",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(recorded, "rollup_error");
    assert_eq!(
        posted[1].json()["text"],
        "New lead: Ada Lovelace <ada@example.com> from Analytical \"Engines\"\nLtd"
    );

    // A name that is markup arrives in the HTML part as text, not as a live link.
    assert_eq!(post_lead(&router, "form-tok", hostile).await, 202);
    let mail = smtp.wait_for(2).await;
    let html = mail[1]["html"].as_str().expect("an html part");
    assert!(
        html.contains(
            "<p>Hi &lt;a href=https:&#x2f;&#x2f;evil.example&gt;Reset&lt;&#x2f;a&gt;,</p>"
        ),
        "{html}"
    );
    assert!(!html.contains("<a "), "{html}");
    assert!(
        mail[1]["text"]
            .as_str()
            .unwrap_or_default()
            .starts_with("Hi <a href=https://evil.example>Reset</a>,"),
        "the text part is plain text: {}",
        mail[1]["text"]
    );

    // A wrong form token is refused; a lead without email only reaches Slack.
    assert_eq!(post_lead(&router, "nope", "name=Eve").await, 401);
    assert_eq!(post_lead(&router, "form-tok", "name=Grace").await, 202);
    eventually("Grace reaches Slack", Duration::from_secs(20), || {
        slack
            .received()
            .iter()
            .any(|p| p.json()["text"] == "New lead: Grace <no email>")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(smtp.messages().len(), 2, "no mail without an email");
}

/// Posts a form to the lead-capture route with this token; the response status.
async fn post_lead(router: &Router, token: &str, form: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{}/hooks/lead-form?token={token}", router.base()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_string())
        .send()
        .await
        .expect("post the form")
        .status()
        .as_u16()
}

/// Stripe's documented Checkout Session, with `line_items` expanded.
const SESSION: &str = r#"{
  "id": "cs_test_a1YS1URlnyQCN5fUUduORoQ7Pw41PJqDWkIVQCpJPqkfIhd6tVY8XB1OLY",
  "object": "checkout.session",
  "amount_subtotal": 2198,
  "amount_total": 2198,
  "client_reference_id": "ord_1001",
  "currency": "usd",
  "customer_details": {"email": "jenny.rosen@example.com", "name": "Jenny Rosen"},
  "line_items": {"object": "list", "data": [
    {"id": "li_1", "object": "item", "amount_total": 2198, "currency": "usd", "description": "T-shirt",
     "price": {"id": "price_1", "object": "price", "product": "prod_NWjs8kKbJWmuuc", "unit_amount": 1099}, "quantity": 2}
  ], "has_more": false, "url": "/v1/checkout/sessions/cs_test_a1YS/line_items"},
  "metadata": {},
  "mode": "payment",
  "payment_intent": "pi_3NG8Du2eZvKYlo2C1a5zyS6z",
  "payment_status": "paid",
  "shipping_details": {"name": "Jenny Rosen", "address": {"city": "San Francisco", "country": "US", "line1": "510 Townsend St", "postal_code": "94103", "state": "CA"}},
  "status": "complete"
}"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_paid_stripe_order_updates_the_shop_emails_the_customer_and_tells_the_warehouse() {
    let stripe_api = Receiver::start().await;
    stripe_api.body_all(SESSION);
    let shop = Receiver::start().await;
    let warehouse = Receiver::start().await;
    let smtp = SmtpServer::start("");
    let example =
        std::fs::read_to_string(workspace().join("examples/paid-order/router.toml")).unwrap();
    let config = example
        .replace("[server]\nlisten = \"127.0.0.1:8080\"", "")
        .replace("[store]\nurl = \"sqlite://data/paid-order.db\"", "")
        .replace("../../plugins/dist/paid-order.wasm", &plugin("paid-order").display().to_string())
        .replace("allow_http = [\"api.stripe.com\"]", &format!("allow_http = [\"127.0.0.1:{}\"]", stripe_api.addr.port()))
        .replace(
            "config = { shop = \"shop\", mail = \"mail\", warehouse = \"warehouse\" }",
            &format!("config = {{ shop = \"shop\", mail = \"mail\", warehouse = \"warehouse\", stripe_api = \"{}\" }}", stripe_api.url("")),
        )
        .replace("https://shop.example.com/api", &shop.url("/api"))
        .replace("https://warehouse.example.com/pick-lists", &warehouse.url("/pick-lists"))
        .replace("smtps://smtp.example.com:465", &format!("smtp://127.0.0.1:{}", smtp.port));
    let secret = "whsec_test_paid_order";
    let router = Router::start_with_env(
        &format!("{SERVER}\n{config}"),
        &[
            ("STRIPE_WEBHOOK_SECRET", secret),
            ("STRIPE_SECRET_KEY", "sk_test_4eC39HqLyjWDarjtT1zdp7dc"),
            ("SHOP_API_TOKEN", "shop-tok"),
        ],
    )
    .expect("router starts");

    // The webhook, signed by Stripe's own SDK.
    let event = fixture("stripe/checkout.session.completed.json");
    let (headers, _) = crate::providers::sdk_sign("stripe", secret, &event, None, "json");
    let (status, text) = post(&router, "stripe", &headers, &event).await;
    assert_eq!(status, 202, "{text}");

    let fetched = stripe_api.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(fetched[0].method, "GET");
    assert_eq!(
        fetched[0].path,
        "/v1/checkout/sessions/cs_test_a1YS1URlnyQCN5fUUduORoQ7Pw41PJqDWkIVQCpJPqkfIhd6tVY8XB1OLY"
    );
    assert_eq!(fetched[0].query.as_deref(), Some("expand[]=line_items"));
    assert_eq!(
        fetched[0].header("authorization"),
        Some("Bearer sk_test_4eC39HqLyjWDarjtT1zdp7dc")
    );

    let update = shop.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(update[0].method, "PATCH");
    assert_eq!(update[0].path, "/api/orders/ord_1001");
    assert_eq!(update[0].header("authorization"), Some("Bearer shop-tok"));
    let body = update[0].json();
    assert_eq!(
        (body["status"].as_str(), body["amount_total"].as_i64()),
        (Some("paid"), Some(2198))
    );
    let pick = warehouse.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(
        pick[0].json()["items"],
        serde_json::json!([{"sku": "prod_NWjs8kKbJWmuuc", "quantity": 2}])
    );
    let mail = smtp.wait_for(1).await;
    assert_eq!(
        mail[0]["rcpt_tos"],
        serde_json::json!(["jenny.rosen@example.com"])
    );
    assert_eq!(mail[0]["subject"], "Order ord_1001 confirmed");
    assert!(mail[0]["text"].as_str().unwrap().contains("21.98 USD"));

    // Stripe does not know a session: the event fails with Stripe's message, nothing is sent.
    stripe_api.reply(Reply {
        status: 404,
        body: Some(r#"{"error":{"code":"resource_missing","message":"No such checkout.session: 'cs_test_a1YS1URlnyQCN5fUUduORoQ7Pw41PJqDWkIVQCpJPqkfIhd6tVY8XB1OLY'","type":"invalid_request_error"}}"#.into()),
        ..Default::default()
    });
    let replayed = event.clone();
    let mut changed: serde_json::Value = serde_json::from_slice(&replayed).unwrap();
    changed["id"] = serde_json::json!("evt_second");
    let body = serde_json::to_vec(&changed).unwrap();
    let (headers, _) = crate::providers::sdk_sign("stripe", secret, &body, None, "json");
    assert_eq!(post(&router, "stripe", &headers, &body).await.0, 202);
    let error = failed_events(&router, 1).await.remove(0);
    assert!(error.ends_with("Stripe answered 404: No such checkout.session: 'cs_test_a1YS1URlnyQCN5fUUduORoQ7Pw41PJqDWkIVQCpJPqkfIhd6tVY8XB1OLY'"), "{error}");
    assert_eq!(shop.received().len(), 1);
}
