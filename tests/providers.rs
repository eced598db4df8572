//! Every provider scheme, end to end: signatures made by the providers' own SDKs (PyPI
//! `stripe`, `svix`, `standardwebhooks`, `slack_sdk`, `twilio`; npm `@octokit/webhooks-methods`)
//! are accepted, the same requests tampered are refused, and outbound signatures verify with
//! the `standardwebhooks` library. Install the SDKs with `scripts/test.sh` (or `.ci/run`).

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use crate::support::*;

/// Headers (and the URL path, for Twilio) made by the provider's SDK.
pub fn sdk_sign(
    scheme: &str,
    secret: &str,
    body: &[u8],
    url: Option<&str>,
    content_type: &str,
) -> (Vec<(String, String)>, Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let body_file = dir.path().join("body");
    std::fs::write(&body_file, body).unwrap();
    let sdk = workspace().join("tests/sdk");
    let mut cmd = if scheme == "github" {
        let mut c = Command::new("node");
        c.arg(sdk.join("sign-github.mjs"));
        c
    } else {
        let mut c = Command::new("python3");
        c.arg(sdk.join("sign.py")).arg(scheme);
        c
    };
    cmd.args(["--secret", secret])
        .arg("--body-file")
        .arg(&body_file);
    if let (Some(u), "twilio") = (url, scheme) {
        cmd.args(["--url", u, "--content-type", content_type]);
    }
    let out = cmd
        .output()
        .expect("run the provider SDK signer (python3 / node)");
    assert!(
        out.status.success(),
        "the {scheme} SDK signer failed (install the SDKs: pip install -r tests/sdk/requirements.txt; npm ci --prefix tests/sdk): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let headers = v["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    (headers, v["url"].as_str().map(str::to_string))
}

const STRIPE: &str = "whsec_a1b2c3d4e5f6stripe";
const SW: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SLACK: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const TWILIO: &str = "twilio-auth-token-0123";
const GITHUB: &str = "It's a Secret to Everybody";
const PUBLIC: &str = "https://hooks.example.com";

fn config(receiver: &Receiver) -> String {
    format!(
        r#"{SERVER}
[destinations.sink]
url = "{}"

[[routes]]
name = "stripe"
verify = {{ scheme = "stripe", secrets = ["whsec_old_rotated_out", "{STRIPE}"] }}
to = ["sink"]

[[routes]]
name = "svix"
verify = {{ scheme = "svix", secret = "{SW}" }}
to = ["sink"]

[[routes]]
name = "sw"
verify = {{ scheme = "standard-webhooks", secret = "{SW}" }}
to = ["sink"]

[[routes]]
name = "slack"
verify = {{ scheme = "slack", secret = "{SLACK}" }}
to = ["sink"]

[[routes]]
name = "twilio"
verify = {{ scheme = "twilio", secret = "{TWILIO}", public_url = "{PUBLIC}" }}
to = ["sink"]

[[routes]]
name = "github"
verify = {{ scheme = "github", secret = "{GITHUB}" }}
to = ["sink"]
"#,
        receiver.url("/")
    )
}

fn tamper(body: &[u8]) -> Vec<u8> {
    let mut b = body.to_vec();
    let i = b.len() / 2;
    b[i] = if b[i] == b'a' { b'b' } else { b'a' };
    b
}

#[tokio::test(flavor = "multi_thread")]
async fn signatures_from_provider_sdks_are_accepted_and_tampered_copies_refused() {
    let receiver = Receiver::start().await;
    let router = Router::start(&config(&receiver)).expect("router starts");
    let stripe_body = fixture("stripe/checkout.session.completed.json");
    let slack_body = fixture("slack/event_callback.json");
    let twilio_form = fixture("twilio/sms-received.form");
    let json_body = br#"{"type":"invoice.paid","data":{"id":"in_1"}}"#.to_vec();
    let cases: Vec<(&str, &str, Vec<u8>, &str)> = vec![
        ("stripe", STRIPE, stripe_body, "json"),
        ("svix", SW, json_body.clone(), "json"),
        ("standard-webhooks", SW, json_body.clone(), "json"),
        ("slack", SLACK, slack_body, "json"),
        ("twilio", TWILIO, twilio_form, "form"),
        ("twilio", TWILIO, json_body.clone(), "json"),
        ("github", GITHUB, fixture("github/push.json"), "json"),
    ];
    let mut accepted = 0;
    for (scheme, secret, body, kind) in cases {
        let route = if scheme == "standard-webhooks" {
            "sw"
        } else {
            scheme
        };
        let path = format!("/hooks/{route}?source=test");
        let (mut headers, signed_url) = sdk_sign(
            scheme,
            secret,
            &body,
            Some(&format!("{PUBLIC}{path}")),
            kind,
        );
        let target = signed_url.map_or(path.clone(), |u| {
            u.strip_prefix(PUBLIC).unwrap().to_string()
        });
        let content_type = if kind == "form" {
            "application/x-www-form-urlencoded"
        } else {
            "application/json"
        };
        headers.push(("content-type".into(), content_type.into()));
        let send = |b: Vec<u8>, h: Vec<(String, String)>| {
            let url = format!("{}{target}", router.base());
            async move {
                let mut req = reqwest::Client::new().post(url).body(b);
                for (k, v) in h {
                    req = req.header(k, v);
                }
                let resp = req.send().await.unwrap();
                (resp.status().as_u16(), resp.text().await.unwrap())
            }
        };
        let (status, text) = send(body.clone(), headers.clone()).await;
        assert_eq!(
            status, 202,
            "{scheme} ({kind}) signed by its SDK was refused: {text}"
        );
        accepted += 1;
        let (status, text) = send(tamper(&body), headers.clone()).await;
        assert_eq!(
            status, 401,
            "{scheme} ({kind}) accepted a tampered body: {text}"
        );
        assert!(!text.contains(secret), "a reason leaked the secret");
    }
    receiver.wait_for(accepted, Duration::from_secs(20)).await;
    // Stripe's event id became the dedup key: the same event again is a duplicate.
    let body = fixture("stripe/checkout.session.completed.json");
    let (headers, _) = sdk_sign("stripe", STRIPE, &body, None, "json");
    let (status, text) = post(&router, "stripe", &headers, &body).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"duplicate\":true"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn outbound_signatures_verify_with_the_standard_webhooks_library() {
    let receiver = Receiver::start().await;
    let config = format!(
        r#"{SERVER}
[destinations.signed]
url = "{}"
sign = {{ scheme = "standard-webhooks", secret = "{SW}" }}

[[routes]]
name = "in"
verify = {{ scheme = "none" }}
to = ["signed"]
"#,
        receiver.url("/")
    );
    let router = Router::start(&config).expect("router starts");
    receiver.answer(&[500]);
    assert_eq!(
        post(&router, "in", &[], br#"{"hello":"world"}"#).await.0,
        202
    );
    let got = receiver.wait_for(2, Duration::from_secs(20)).await;
    assert_eq!(
        got[0].header("webhook-id"),
        got[1].header("webhook-id"),
        "webhook-id is stable across retries"
    );
    assert_eq!(
        got[1].header("webhook-id"),
        got[1].header("hookyard-delivery-id")
    );
    let r = &got[1];
    let script = r#"
import json, os, sys
from standardwebhooks.webhooks import Webhook
headers = json.loads(os.environ["HEADERS"])
payload = Webhook(os.environ["SECRET"]).verify(os.environ["BODY"], headers)
print(json.dumps(payload))
"#;
    let headers: HashMap<&str, &str> = ["webhook-id", "webhook-timestamp", "webhook-signature"]
        .into_iter()
        .map(|h| (h, r.header(h).expect("signed header")))
        .collect();
    let out = Command::new("python3")
        .args(["-c", script])
        .env("HEADERS", serde_json::to_string(&headers).unwrap())
        .env("SECRET", SW)
        .env("BODY", std::str::from_utf8(&r.body).unwrap())
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "standardwebhooks refused our signature: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        r#"{"hello": "world"}"#
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn shopify_token_and_basic_routes_check_their_credentials() {
    let receiver = Receiver::start().await;
    let config = with_sink(
        &receiver,
        r#"[[routes]]
name = "shopify"
verify = { scheme = "shopify", secret = "test_secret_key" }
to = ["sink"]

[[routes]]
name = "form"
verify = { scheme = "token", query = "token", secret = "form-token-123" }
to = ["sink"]

[[routes]]
name = "bearer"
verify = { scheme = "token", header = "Authorization", prefix = "Bearer ", secrets = ["new-token", "old-token"] }
to = ["sink"]

[[routes]]
name = "basic"
verify = { scheme = "basic", username = "hooks", secret = "s3cret-pass" }
to = ["sink"]

[[routes]]
name = "form-header"
verify = { scheme = "token", header = "X-Form-Token", secret = "s3cret-form-token" }
to = ["sink"]
"#,
    );
    let router = Router::start(&config).expect("router starts");
    let h = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
    // Shopify's published example (shopify-app-js tests).
    let shopify = h(
        "x-shopify-hmac-sha256",
        "B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g=",
    );
    assert_eq!(
        post(&router, "shopify", &shopify, br#"{"foo": "bar"}"#)
            .await
            .0,
        202
    );
    assert_eq!(
        post(&router, "shopify", &shopify, br#"{"foo": "baz"}"#)
            .await
            .0,
        401
    );

    let client = reqwest::Client::new();
    let form = |q: &str| {
        client
            .post(format!("{}/hooks/form{q}", router.base()))
            .body("name=Ada&email=ada%40example.com")
            .send()
    };
    assert_eq!(form("?token=form-token-123").await.unwrap().status(), 202);
    assert_eq!(form("?token=nope").await.unwrap().status(), 401);
    let missing = form("").await.unwrap();
    assert_eq!(missing.status(), 401);
    assert_eq!(
        missing.text().await.unwrap(),
        "{\"error\":\"missing credentials\"}\n"
    );

    assert_eq!(
        post(
            &router,
            "bearer",
            &h("authorization", "Bearer old-token"),
            b"{}"
        )
        .await
        .0,
        202,
        "rotation"
    );
    assert_eq!(
        post(
            &router,
            "bearer",
            &h("authorization", "Bearer other"),
            b"{}"
        )
        .await
        .0,
        401
    );
    assert_eq!(
        post(&router, "bearer", &h("authorization", "old-token"), b"{}")
            .await
            .0,
        401
    );

    use base64::Engine as _;
    let basic = |creds: &str| {
        h(
            "authorization",
            &format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(creds)
            ),
        )
    };
    assert_eq!(
        post(&router, "basic", &basic("hooks:s3cret-pass"), b"{}")
            .await
            .0,
        202
    );
    assert_eq!(
        post(&router, "basic", &basic("hooks:wrong"), b"{}").await.0,
        401
    );
    assert_eq!(
        post(&router, "basic", &basic("admin:s3cret-pass"), b"{}")
            .await
            .0,
        401
    );
    assert_eq!(
        post(&router, "basic", &h("authorization", "Basic !!!"), b"{}")
            .await
            .0,
        401
    );
    assert_eq!(
        post(
            &router,
            "form-header",
            &h("x-form-token", "s3cret-form-token"),
            b"{}"
        )
        .await
        .0,
        202
    );
    // Credentials are never journaled, whatever header carries them.
    let journaled: i64 = router.count(
        "SELECT COUNT(*) FROM event_payloads WHERE headers LIKE '%s3cret%' OR headers LIKE '%old-token%'",
    );
    assert_eq!(journaled, 0);
    receiver.wait_for(5, Duration::from_secs(20)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn allow_ips_believes_forwarded_for_only_from_trusted_proxies() {
    let receiver = Receiver::start().await;
    let config = format!(
        r#"{}
[destinations.sink]
url = "{}"

[[routes]]
name = "office"
verify = {{ scheme = "none" }}
allow_ips = ["10.20.0.0/16"]
to = ["sink"]

[[routes]]
name = "local"
verify = {{ scheme = "none" }}
allow_ips = ["127.0.0.1"]
to = ["sink"]
"#,
        SERVER.replace(
            "admin_listen",
            "trusted_proxies = [\"127.0.0.1\"]\nadmin_listen"
        ),
        receiver.url("/")
    );
    let router = Router::start(&config).expect("router starts");
    let xff = |v: &str| vec![("x-forwarded-for".to_string(), v.to_string())];
    assert_eq!(post(&router, "office", &[], b"{}").await.0, 403);
    assert_eq!(
        post(&router, "office", &xff("10.20.3.4"), b"{}").await.0,
        202
    );
    assert_eq!(
        post(&router, "office", &xff("10.20.3.4, 192.0.2.1"), b"{}")
            .await
            .0,
        403,
        "the right-most untrusted hop counts"
    );
    assert_eq!(
        post(&router, "office", &xff("10.20.3.4:5555"), b"{}")
            .await
            .0,
        202,
        "an entry with a port is read"
    );
    for forged in [
        "10.20.3.4, 192.0.2.1:4711",
        "10.20.3.4, [2001:db8::1]:4711",
        "10.20.3.4, unknown",
    ] {
        assert_eq!(
            post(&router, "office", &xff(forged), b"{}").await.0,
            403,
            "the sender's own left-hand entry must not decide: {forged}"
        );
    }
    assert_eq!(post(&router, "local", &[], b"{}").await.0, 202);
    assert_eq!(router.count("SELECT COUNT(*) FROM events"), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn ipv4_clients_of_a_dual_stack_listener_match_ipv4_allow_ips() {
    let receiver = Receiver::start().await;
    let config = format!(
        r#"{}
[destinations.sink]
url = "{}"

[[routes]]
name = "local"
verify = {{ scheme = "none" }}
allow_ips = ["127.0.0.0/8"]
to = ["sink"]
"#,
        SERVER.replace("listen = \"127.0.0.1:{PORT}\"", "listen = \"[::]:{PORT}\""),
        receiver.url("/")
    );
    let router = Router::start(&config).expect("router starts");
    assert_eq!(post(&router, "local", &[], b"{}").await.0, 202);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_configured_dedup_pointer_drops_repeats_and_counts_them() {
    let receiver = Receiver::start().await;
    let config = with_sink(
        &receiver,
        r#"[[routes]]
name = "forms"
verify = { scheme = "none" }
dedup = { pointer = "/submission_id", window = "1h" }
to = ["sink"]
"#,
    );
    let router = Router::start(&config).expect("router starts");
    let body = br#"{"submission_id":"sub_42","email":"ada@example.com"}"#;
    let (first, text) = post(&router, "forms", &[], body).await;
    assert_eq!(first, 202, "{text}");
    for _ in 0..2 {
        let (status, text) = post(&router, "forms", &[], body).await;
        assert_eq!(status, 200);
        assert!(text.contains("\"duplicate\":true"), "{text}");
    }
    let (_, events) = admin(&router, "GET", "/admin/events?route=forms", None).await;
    assert_eq!(events["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        events["items"][0]["duplicates"], 2,
        "the admin view shows the repeats were seen"
    );
    receiver.wait_for(1, Duration::from_secs(20)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_slack_url_verification_is_answered_with_its_challenge_and_not_journaled() {
    let receiver = Receiver::start().await;
    let router = Router::start(&config(&receiver)).expect("router starts");
    let body = fixture("slack/url_verification.json");
    let (headers, _) = sdk_sign("slack", SLACK, &body, None, "json");
    let (status, text) = post(&router, "slack", &headers, &body).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&text).unwrap(),
        serde_json::json!({"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"})
    );
    // Unsigned, it is refused like any request.
    let (status, _) = post(&router, "slack", &[], &body).await;
    assert_eq!(status, 401);
    assert_eq!(
        router.count("SELECT COUNT(*) FROM events"),
        0,
        "never journaled"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(receiver.received().is_empty(), "never sent on");
}

#[tokio::test(flavor = "multi_thread")]
async fn meta_subscription_handshake_echoes_the_challenge_only_for_the_verify_token() {
    let receiver = Receiver::start().await;
    let config = with_sink(
        &receiver,
        r#"[[routes]]
name = "whatsapp"
verify = { scheme = "meta", secret = "meta-app-secret", verify_token = "my-verify-token" }
to = ["sink"]

[[routes]]
name = "plain"
verify = { scheme = "none" }
to = ["sink"]
"#,
    );
    let router = Router::start(&config).expect("router starts");
    let get = |route: &str, query: &str| {
        let url = format!("{}/hooks/{route}?{query}", router.base());
        async move {
            let resp = reqwest::get(url).await.expect("GET");
            let status = resp.status().as_u16();
            (status, resp.text().await.unwrap_or_default())
        }
    };
    let (status, text) = get(
        "whatsapp",
        "hub.mode=subscribe&hub.verify_token=my-verify-token&hub.challenge=1158201444",
    )
    .await;
    assert_eq!((status, text.as_str()), (200, "1158201444"));
    let (status, _) = get(
        "whatsapp",
        "hub.mode=subscribe&hub.verify_token=guess&hub.challenge=1158201444",
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = get("whatsapp", "hub.mode=subscribe&hub.challenge=1").await;
    assert_eq!(status, 403);
    let (status, _) = get("plain", "hub.mode=subscribe&hub.challenge=1").await;
    assert_eq!(status, 405, "only meta routes answer a GET");

    // Events carry X-Hub-Signature-256 over the body, with the app secret.
    let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"messages","value":{"messaging_product":"whatsapp"}}]}]}"#;
    let signed = vec![(
        "x-hub-signature-256".to_string(),
        github_signature("meta-app-secret", body),
    )];
    assert_eq!(post(&router, "whatsapp", &signed, body).await.0, 202);
    let forged = vec![(
        "x-hub-signature-256".to_string(),
        github_signature("not-the-secret", body),
    )];
    assert_eq!(post(&router, "whatsapp", &forged, body).await.0, 401);
    receiver.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(
        router.count("SELECT COUNT(*) FROM events"),
        1,
        "handshakes are not events"
    );
}

/// The test server config with a `sink` destination at `receiver`, then `routes`.
/// Zoom's signature, computed here independently of the router's code:
/// `v0=` + hex(HMAC-SHA256(secret, "v0:{ts}:{body}")).
fn zoom_signature(secret: &str, ts: u64, body: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("v0:{ts}:").as_bytes());
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test(flavor = "multi_thread")]
async fn zoom_url_validation_is_answered_and_signed_events_are_accepted() {
    let receiver = Receiver::start().await;
    let secret = "zoom-secret-token";
    let config = with_sink(
        &receiver,
        &format!(
            "[[routes]]\nname = \"zoom\"\nverify = {{ scheme = \"zoom\", secret = \"{secret}\" }}\nto = [\"sink\"]\n"
        ),
    );
    let router = Router::start(&config).expect("router starts");
    let now = unix_now();
    let signed = |ts: u64, body: &[u8], key: &str| {
        vec![
            ("x-zm-request-timestamp".to_string(), ts.to_string()),
            ("x-zm-signature".to_string(), zoom_signature(key, ts, body)),
        ]
    };
    // Zoom's documented validation request.
    let validation = br#"{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1654503849680,"event":"endpoint.url_validation"}"#;
    let (status, text) = post(
        &router,
        "zoom",
        &signed(now, validation, secret),
        validation,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let answer: serde_json::Value = serde_json::from_str(&text).unwrap();
    let expected = {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(b"qgg8vlvZRS6UYooatFL8Aw");
        hex::encode(mac.finalize().into_bytes())
    };
    assert_eq!(
        answer,
        serde_json::json!({"plainToken": "qgg8vlvZRS6UYooatFL8Aw", "encryptedToken": expected})
    );
    // Unsigned or stale, it is refused like any request.
    assert_eq!(post(&router, "zoom", &[], validation).await.0, 401);
    let stale = signed(now - 3600, validation, secret);
    assert_eq!(post(&router, "zoom", &stale, validation).await.0, 401);

    let event = br#"{"event":"meeting.started","event_ts":1626230691572,"payload":{"account_id":"AAAAAABBBB","object":{"id":"1234567890","uuid":"czLF6FFFoQOKgAB99DlDb9g==","topic":"My Meeting"}}}"#;
    assert_eq!(
        post(&router, "zoom", &signed(now, event, secret), event)
            .await
            .0,
        202
    );
    assert_eq!(
        post(&router, "zoom", &signed(now, event, "wrong"), event)
            .await
            .0,
        401
    );
    receiver.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(
        router.count("SELECT COUNT(*) FROM events"),
        1,
        "the handshake is not an event"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn microsoft_graph_validation_is_echoed_and_notifications_need_the_client_state() {
    let receiver = Receiver::start().await;
    let config = with_sink(
        &receiver,
        "[[routes]]\nname = \"graph\"\nverify = { scheme = \"microsoft-graph\", secret = \"secretClientValue\" }\nto = [\"sink\"]\n",
    );
    let router = Router::start(&config).expect("router starts");
    // Creating a subscription: Graph posts ?validationToken= and wants it back as text.
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/hooks/graph?validationToken=Validation%3A+Testing+client+application+reachability+for+subscription+Request-Id%3A+25d8b2f4",
            router.base()
        ))
        .header("content-type", "text/plain; charset=utf-8")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "text/plain; charset=utf-8"
    );
    assert_eq!(
        resp.text().await.unwrap(),
        "Validation: Testing client application reachability for subscription Request-Id: 25d8b2f4"
    );
    // Microsoft's documented notification, with the subscription's clientState.
    let body = fixture("microsoft-graph/message-created.json");
    assert_eq!(post(&router, "graph", &[], &body).await.0, 202);
    let forged = String::from_utf8(body.clone())
        .unwrap()
        .replace("secretClientValue", "guessedValue");
    let (status, text) = post(&router, "graph", &[], forged.as_bytes()).await;
    assert_eq!(status, 401, "{text}");
    let (status, _) = post(
        &router,
        "graph",
        &[],
        br#"{"value":[{"changeType":"created"}]}"#,
    )
    .await;
    assert_eq!(status, 401, "no clientState");
    receiver.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(
        router.count("SELECT COUNT(*) FROM events"),
        1,
        "validation is not an event"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dropbox_challenge_is_echoed_and_signed_notifications_are_accepted() {
    let receiver = Receiver::start().await;
    let config = with_sink(
        &receiver,
        "[[routes]]\nname = \"dropbox\"\nverify = { scheme = \"dropbox\", secret = \"dropbox-app-secret\" }\nto = [\"sink\"]\n",
    );
    let router = Router::start(&config).expect("router starts");
    let resp = reqwest::get(format!(
        "{}/hooks/dropbox?challenge=AbCdEf12345",
        router.base()
    ))
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    assert_eq!(resp.text().await.unwrap(), "AbCdEf12345");
    let odd = reqwest::get(format!(
        "{}/hooks/dropbox?challenge=%3Cscript%3E",
        router.base()
    ))
    .await
    .unwrap();
    assert_eq!(odd.status(), 400, "only printable tokens are echoed");
    // Dropbox's notification shape; the signature is hex HMAC-SHA256 of the body.
    let body = br#"{"list_folder": {"accounts": ["dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc"]}, "delta": {"users": [12345678]}}"#;
    let signature = github_signature("dropbox-app-secret", body)
        .trim_start_matches("sha256=")
        .to_string();
    let signed = vec![("x-dropbox-signature".to_string(), signature)];
    assert_eq!(post(&router, "dropbox", &signed, body).await.0, 202);
    let forged = vec![(
        "x-dropbox-signature".to_string(),
        github_signature("wrong", body)
            .trim_start_matches("sha256=")
            .to_string(),
    )];
    assert_eq!(post(&router, "dropbox", &forged, body).await.0, 401);
    receiver.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(router.count("SELECT COUNT(*) FROM events"), 1);
}
