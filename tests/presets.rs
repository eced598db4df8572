//! Every named provider preset against the real binary. Each request is signed as the
//! provider's documentation says by `tests/sdk/presets.py` (written from the docs with
//! Python's hmac, independently of the router's preset table); where the provider ships an
//! SDK that verifies (`tests/sdk/preset-sdk.mjs`: Linear, HubSpot, Paddle, Square, Coinbase
//! Commerce, Razorpay, Webflow, Clerk, Resend, SendGrid, Discord; `mailgun-sdk.py`: Mailgun),
//! that SDK must accept the same request and refuse it tampered. The router must accept it,
//! refuse it tampered or unsigned, and record the provider's event type and delivery id.
//! Handshakes are answered by the router and never journaled.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};

use crate::support::*;

const PUBLIC: &str = "https://hooks.example.com";
const SVIX_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// The DER prefix of a P-256 SubjectPublicKeyInfo: what SendGrid shows, base64, before the point.
const P256_SPKI: &str = "3059301306072a8648ce3d020106082a8648ce3d030107034200";

/// The presets whose requests an HMAC, a token, Basic or Svix authenticates, signed by
/// presets.py, with the event type the router should record for the sample body.
const SIGNED: &[(&str, &str)] = &[
    ("gitlab", "Push Hook"),
    ("bitbucket", "repo:push"),
    ("linear", "Issue"),
    ("intercom", "conversation.user.created"),
    ("hubspot", "contact.creation"),
    ("mailgun", "delivered"),
    ("square", "payment.updated"),
    ("paddle", "transaction.completed"),
    ("typeform", "form_response"),
    ("calendly", "invitee.created"),
    ("pagerduty", "incident.triggered"),
    ("sentry", "issue"),
    ("vercel", "deployment.created"),
    ("zendesk", "zen:event-type:ticket.created"),
    ("woocommerce", "order.created"),
    ("coinbase-commerce", "charge:created"),
    ("razorpay", "payment.captured"),
    ("lemon-squeezy", "order_created"),
    ("airtable", ""),
    ("docusign", "envelope-completed"),
    ("box", "FILE.UPLOADED"),
    ("segment", "track"),
    ("webflow", "form_submission"),
    ("clickup", "taskCreated"),
    ("trello", "createCard"),
    ("postmark", "Delivery"),
    ("clerk", "user.created"),
    ("resend", "email.sent"),
    ("twitch", "channel.follow"),
    ("x", ""),
    ("okta", "user.lifecycle.create"),
];

fn secret_for(name: &str) -> String {
    match name {
        "airtable" => B64.encode(format!("mac-secret-for-{name}")),
        "clerk" | "resend" => SVIX_SECRET.to_string(),
        _ => format!("secret-for-{name}-0123"),
    }
}

/// A body with the fields each provider's preset reads (ids, types, timestamps).
fn sample_body(name: &str, delivery: &str, event_type: &str) -> Vec<u8> {
    let now_ms = unix_now() * 1000;
    let doc = match name {
        "hubspot" => serde_json::json!([{ "eventId": 1, "subscriptionType": event_type }]),
        "sendgrid" => serde_json::json!([{ "event": "delivered", "sg_event_id": delivery }]),
        "calendly" | "razorpay" | "docusign" | "clickup" => {
            serde_json::json!({ "event": event_type, "id": delivery, "webhook_id": delivery })
        }
        "pagerduty" | "coinbase-commerce" => serde_json::json!({
            "event": { "id": delivery, "type": event_type, "event_type": event_type }
        }),
        "okta" => serde_json::json!({
            "eventId": delivery, "eventType": "com.okta.event_hook",
            "data": { "events": [{ "eventType": event_type }] }
        }),
        _ => serde_json::json!({
            "id": delivery, "type": event_type, "event_id": delivery, "event_type": event_type,
            "notification_id": delivery, "topic": event_type,
            "webhookTimestamp": now_ms, "trigger": event_type, "triggerType": event_type,
            "messageId": delivery, "RecordType": event_type, "action": { "id": delivery, "type": event_type },
            "note": "caf\u{e9} <b>",
        }),
    };
    serde_json::to_vec(&doc).unwrap()
}

/// Headers (and, for Mailgun, the body) signed by presets.py as the provider's docs say.
fn docs_sign(
    name: &str,
    secret: &str,
    body: &[u8],
    delivery: &str,
) -> (Vec<(String, String)>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body");
    std::fs::write(&file, body).unwrap();
    let out = Command::new("python3")
        .arg(workspace().join("tests/sdk/presets.py"))
        .args([name, "--secret", secret, "--id", delivery, "--url"])
        .arg(format!("{PUBLIC}/hooks/{name}"))
        .arg("--body-file")
        .arg(&file)
        .output()
        .expect("python3 runs tests/sdk/presets.py");
    assert!(
        out.status.success(),
        "presets.py {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let headers = v["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str().unwrap().to_string()))
        .collect();
    let body = v["body"]
        .as_str()
        .map_or_else(|| body.to_vec(), |b| b.as_bytes().to_vec());
    (headers, body)
}

/// The provider SDK's verdict on a request, or `None` when it ships no SDK that verifies.
fn sdk_verdict(
    name: &str,
    secret: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Option<bool> {
    let sdk = workspace().join("tests/sdk");
    let mut cmd = if name == "mailgun" {
        let mut c = Command::new("python3");
        c.arg(sdk.join("mailgun-sdk.py"));
        c
    } else {
        if !sdk.join(format!("presets/{name}.mjs")).exists() {
            return None;
        }
        let mut c = Command::new("node");
        c.arg(sdk.join("preset-sdk.mjs")).arg(name);
        c
    };
    let request = serde_json::json!({
        "secret": secret,
        "body": String::from_utf8(body.to_vec()).unwrap(),
        "headers": headers.iter().cloned().collect::<HashMap<_, _>>(),
        "url": format!("{PUBLIC}/hooks/{name}"),
    });
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the provider SDK checker (node / python3)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the {name} SDK checker failed (install the SDKs: npm ci --prefix tests/sdk; pip install -r tests/sdk/requirements.txt): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    Some(v["valid"].as_bool().unwrap())
}

/// The request's signed content changed: one more byte of body, or for Mailgun, whose
/// signature covers only its timestamp and token, another token.
fn tamper(name: &str, body: &[u8]) -> Vec<u8> {
    if name == "mailgun" {
        let mut doc: serde_json::Value = serde_json::from_slice(body).unwrap();
        let token =
            doc["signature"]["token"]
                .as_str()
                .unwrap()
                .replacen(char::is_alphanumeric, "Z", 1);
        doc["signature"]["token"] = token.into();
        return serde_json::to_vec(&doc).unwrap();
    }
    [body, b" "].concat()
}

/// Another secret of the same shape, as a forger would have.
fn wrong_secret(name: &str) -> String {
    match name {
        "airtable" => B64.encode("not the MAC secret"),
        "clerk" | "resend" => "whsec_dGhpcyBpcyBub3QgdGhlIHNlY3JldA==".to_string(),
        _ => format!("not-the-secret-for-{name}"),
    }
}

/// Signs a message with a provider's private key.
type Signer = Box<dyn Fn(&[u8]) -> String>;

/// The asymmetric presets: a key pair made here, as the provider would hold it.
struct ProviderKey {
    /// What the provider's dashboard shows: hex (Discord) or base64 SPKI (SendGrid).
    public: String,
    sign: Signer,
}

fn provider_key(name: &str) -> ProviderKey {
    let rng = ring::rand::SystemRandom::new();
    if name.starts_with("discord") {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        ProviderKey {
            public: hex::encode(pair.public_key().as_ref()),
            sign: Box::new(move |m| hex::encode(pair.sign(m).as_ref())),
        }
    } else {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let spki = [
            hex::decode(P256_SPKI).unwrap(),
            pair.public_key().as_ref().to_vec(),
        ]
        .concat();
        ProviderKey {
            public: B64.encode(spki),
            sign: Box::new(move |m| {
                B64.encode(
                    pair.sign(&ring::rand::SystemRandom::new(), m)
                        .unwrap()
                        .as_ref(),
                )
            }),
        }
    }
}

fn route(name: &str, secret: &str) -> String {
    let extra = match name {
        "hubspot" | "square" | "trello" => format!(", public_url = \"{PUBLIC}\""),
        "postmark" => ", username = \"postmark\"".to_string(),
        _ => String::new(),
    };
    format!(
        "[[routes]]\nname = \"{name}\"\nverify = {{ scheme = \"{name}\", secret = \"{secret}\"{extra} }}\nto = [\"sink\"]\n\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn every_preset_accepts_what_the_provider_signs_and_refuses_tampered_copies() {
    let receiver = Receiver::start().await;
    let keys: HashMap<&str, ProviderKey> = ["discord", "discord-events", "sendgrid"]
        .into_iter()
        .map(|n| (n, provider_key(n)))
        .collect();
    let mut routes = String::new();
    for (name, _) in SIGNED {
        routes.push_str(&route(name, &secret_for(name)));
    }
    for (name, key) in &keys {
        routes.push_str(&route(name, &key.public));
    }
    let router = Router::start(&with_sink(&receiver, &routes)).expect("router starts");
    let mut sdk_checked = Vec::new();
    for (name, event_type) in SIGNED {
        let secret = secret_for(name);
        let delivery = uuid::Uuid::new_v4().to_string();
        let (headers, body) = docs_sign(
            name,
            &secret,
            &sample_body(name, &delivery, event_type),
            &delivery,
        );
        // The router first, while the signature is fresh: Paddle's tolerance is 5 s, and
        // the SDK checks below start node or python.
        let (status, text) = post(&router, name, &headers, &body).await;
        assert_eq!(status, 202, "{name}: {text}");
        if let Some(valid) = sdk_verdict(name, &secret, &headers, &body) {
            assert!(
                valid,
                "{name}: the provider's SDK refused what its docs say to send"
            );
            assert_eq!(
                sdk_verdict(name, &secret, &headers, &tamper(name, &body)),
                Some(false),
                "{name}: the provider's SDK accepted a tampered body"
            );
            sdk_checked.push(*name);
        }
        let journaled = || {
            router.count(&format!(
                "SELECT count(*) FROM events WHERE route = '{name}'"
            ))
        };
        assert_eq!(journaled(), 1, "{name}");
        let credential = matches!(*name, "gitlab" | "postmark" | "okta");
        if !credential {
            let (status, _) = post(&router, name, &headers, &tamper(name, &body)).await;
            assert_eq!(status, 401, "{name}: tampered");
            let (forged, forged_body) = docs_sign(name, &wrong_secret(name), &body, &delivery);
            let forged_body = if *name == "mailgun" {
                forged_body
            } else {
                body.clone()
            };
            let (status, _) = post(&router, name, &forged, &forged_body).await;
            assert_eq!(status, 401, "{name}: signed with another secret");
        } else {
            let (wrong, _) = docs_sign(name, &wrong_secret(name), &body, &delivery);
            assert_eq!(
                post(&router, name, &wrong, &body).await.0,
                401,
                "{name}: wrong credential"
            );
        }
        // Mailgun's signature is in the body: unsigned is the body without it.
        let unsigned = if *name == "mailgun" {
            sample_body(name, &delivery, event_type)
        } else {
            body.clone()
        };
        let (status, text) = post(&router, name, &[], &unsigned).await;
        assert_eq!(status, 401, "{name}: unsigned: {text}");
        assert_eq!(journaled(), 1, "{name}: a refused request was journaled");
        let (recorded_type, dedup): (Option<String>, Option<String>) = router
            .db()
            .query_row(
                "SELECT event_type, dedup_key FROM events WHERE route = ?1 ORDER BY seq LIMIT 1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("journaled");
        if !event_type.is_empty() {
            assert_eq!(
                recorded_type.as_deref(),
                Some(*event_type),
                "{name}: event type"
            );
        }
        let scheme = hookyard::config::Scheme::from_name(name).unwrap();
        if scheme.dedups() {
            let id = dedup.unwrap_or_else(|| panic!("{name}: no delivery id recorded"));
            assert!(id.starts_with(&format!("{name}:")), "{name}: {id}");
        }
    }
    for (name, key) in &keys {
        let ts = unix_now().to_string();
        let body: &[u8] = match *name {
            "discord" => br#"{"type":2,"id":"1","data":{"name":"hello"}}"#,
            "discord-events" => {
                br#"{"version":1,"type":1,"event":{"type":"APPLICATION_AUTHORIZED"}}"#
            }
            _ => b"[{\"event\":\"delivered\",\"sg_event_id\":\"e1\"}]\r\n",
        };
        let sig = (key.sign)(&[ts.as_bytes(), body].concat());
        let headers: Vec<(String, String)> = if *name == "sendgrid" {
            vec![
                ("x-twilio-email-event-webhook-signature".into(), sig),
                ("x-twilio-email-event-webhook-timestamp".into(), ts),
            ]
        } else {
            vec![
                ("x-signature-ed25519".into(), sig),
                ("x-signature-timestamp".into(), ts),
            ]
        };
        let sdk_name = if name.starts_with("discord") {
            "discord"
        } else {
            name
        };
        assert_eq!(
            sdk_verdict(sdk_name, &key.public, &headers, body),
            Some(true),
            "{name}: SDK"
        );
        sdk_checked.push(name);
        assert_eq!(post(&router, name, &headers, body).await.0, 202, "{name}");
        let mut changed = body.to_vec();
        changed[2] ^= 1;
        assert_eq!(
            post(&router, name, &headers, &changed).await.0,
            401,
            "{name}: tampered"
        );
    }
    sdk_checked.sort();
    assert_eq!(
        sdk_checked,
        [
            "clerk",
            "coinbase-commerce",
            "discord",
            "discord-events",
            "hubspot",
            "linear",
            "mailgun",
            "paddle",
            "razorpay",
            "resend",
            "sendgrid",
            "square",
            "webflow"
        ],
        "every provider SDK here was asked"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redelivered_preset_event_is_recorded_once() {
    let receiver = Receiver::start().await;
    let routes = ["razorpay", "twitch", "pagerduty", "calendly"]
        .iter()
        .map(|n| route(n, &secret_for(n)))
        .collect::<String>();
    let router = Router::start(&with_sink(&receiver, &routes)).expect("router starts");
    for name in ["razorpay", "twitch", "pagerduty"] {
        let delivery = uuid::Uuid::new_v4().to_string();
        let (headers, body) = docs_sign(
            name,
            &secret_for(name),
            &sample_body(name, &delivery, "t"),
            &delivery,
        );
        assert_eq!(post(&router, name, &headers, &body).await.0, 202, "{name}");
        let (status, text) = post(&router, name, &headers, &body).await;
        assert_eq!(status, 200, "{name}: {text}");
        assert!(text.contains(r#""duplicate":true"#), "{name}: {text}");
        let journaled = router.count(&format!(
            "SELECT count(*) FROM events WHERE route = '{name}'"
        ));
        assert_eq!(journaled, 1, "{name}: a redelivery is a duplicate");
    }
    // Calendly sends no delivery id: both copies are events.
    let (headers, body) = docs_sign(
        "calendly",
        &secret_for("calendly"),
        &sample_body("calendly", "x", "t"),
        "x",
    );
    for _ in 0..2 {
        assert_eq!(post(&router, "calendly", &headers, &body).await.0, 202);
    }
    assert_eq!(
        router.count("SELECT count(*) FROM events WHERE route = 'calendly'"),
        2
    );
}

/// The JSON or text answer, status and content type of a request.
async fn call(req: reqwest::RequestBuilder) -> (u16, String, String) {
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (status, ct, resp.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread")]
async fn provider_handshakes_are_answered_and_never_journaled() {
    let receiver = Receiver::start().await;
    let discord = provider_key("discord");
    let events = provider_key("discord-events");
    let mut routes = String::new();
    for name in ["twitch", "x", "okta", "trello", "intercom", "woocommerce"] {
        routes.push_str(&route(name, &secret_for(name)));
    }
    routes.push_str(&route("discord", &discord.public));
    routes.push_str(&route("discord-events", &events.public));
    let router = Router::start(&with_sink(&receiver, &routes)).expect("router starts");
    let client = reqwest::Client::new();
    let url = |name: &str| format!("{}/hooks/{name}", router.base());

    // Twitch: a signed webhook_callback_verification gets its challenge as plain text.
    let challenge = "pogchamp-kappa-360noscope-vohiyo";
    let body = format!(
        r#"{{"challenge":"{challenge}","subscription":{{"id":"s1","status":"webhook_callback_verification_pending","type":"channel.follow"}}}}"#
    );
    let (mut headers, _) = docs_sign("twitch", &secret_for("twitch"), body.as_bytes(), "m1");
    for (k, v) in headers.iter_mut() {
        if k == "twitch-eventsub-message-type" {
            *v = "webhook_callback_verification".into();
        }
    }
    let mut req = client.post(url("twitch")).body(body.clone());
    for (k, v) in &headers {
        req = req.header(k, v);
    }
    let (status, ct, text) = call(req).await;
    assert_eq!((status, text.as_str()), (200, challenge));
    assert!(ct.starts_with("text/plain"), "{ct}");
    // The same challenge unsigned is refused.
    let (status, _, _) = call(client.post(url("twitch")).body(body)).await;
    assert_eq!(status, 401);

    // Discord Interactions: a signed PING gets {"type":1}; Webhook Events: a signed PING gets 204.
    let ts = unix_now().to_string();
    let ping = br#"{"type":1,"id":"1","application_id":"2"}"#;
    let sig = (discord.sign)(&[ts.as_bytes(), ping].concat());
    let (status, _, text) = call(
        client
            .post(url("discord"))
            .header("x-signature-ed25519", &sig)
            .header("x-signature-timestamp", &ts)
            .body(ping.to_vec()),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&text).unwrap(),
        serde_json::json!({"type": 1})
    );
    let forged = sig.replacen(&sig[..2], if &sig[..2] == "00" { "11" } else { "00" }, 1);
    let (status, _, _) = call(
        client
            .post(url("discord"))
            .header("x-signature-ed25519", forged)
            .header("x-signature-timestamp", &ts)
            .body(ping.to_vec()),
    )
    .await;
    assert_eq!(
        status, 401,
        "Discord checks that invalid signatures are refused"
    );
    let events_ping = br#"{"version":1,"application_id":"2","type":0}"#;
    let sig = (events.sign)(&[ts.as_bytes(), events_ping].concat());
    let (status, _, text) = call(
        client
            .post(url("discord-events"))
            .header("x-signature-ed25519", &sig)
            .header("x-signature-timestamp", &ts)
            .body(events_ping.to_vec()),
    )
    .await;
    assert_eq!((status, text.as_str()), (204, ""));

    // X: the CRC answer is base64(HMAC-SHA256(consumer secret, crc_token)), computed here.
    let token = "9b4507b3-9040-4669-9ca3-6b94edb50553";
    let (status, ct, text) =
        call(client.get(format!("{}?crc_token={token}&nonce=abc", url("x")))).await;
    assert_eq!(status, 200, "{text}");
    assert!(ct.starts_with("application/json"));
    let expected = {
        use hmac::Mac;
        let mut mac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(secret_for("x").as_bytes()).unwrap();
        mac.update(token.as_bytes());
        format!("sha256={}", B64.encode(mac.finalize().into_bytes()))
    };
    let answer: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["response_token"], expected);
    let (status, _, _) =
        call(client.get(format!("{}?crc_token=%7B%22id%22%3A1%7D", url("x")))).await;
    assert_eq!(
        status, 400,
        "a crc_token that could be an event body is refused"
    );

    // Okta: the one-time verification is answered only with the configured authorization.
    let (status, _, text) = call(
        client
            .get(url("okta"))
            .header("authorization", secret_for("okta"))
            .header("x-okta-verification-challenge", "Vk9RZ3x"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&text).unwrap(),
        serde_json::json!({"verification": "Vk9RZ3x"})
    );
    let (status, _, _) = call(
        client
            .get(url("okta"))
            .header("x-okta-verification-challenge", "Vk9RZ3x"),
    )
    .await;
    assert_eq!(status, 403);

    // Trello and Intercom check the URL with HEAD when the webhook is saved.
    for name in ["trello", "intercom"] {
        let (status, _, _) = call(client.head(url(name))).await;
        assert_eq!(status, 200, "{name}");
    }
    let (status, _, _) = call(client.head(url("twitch"))).await;
    assert_eq!(status, 405, "routes without a HEAD check take only POST");

    // WooCommerce: the unsigned ping sent when a webhook is saved gets a plain 200.
    let (status, _, _) = call(
        client
            .post(url("woocommerce"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("webhook_id=42"),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, _) = call(client.post(url("woocommerce")).body(r#"{"id":42}"#)).await;
    assert_eq!(status, 401, "anything else unsigned is refused");

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        router.count("SELECT count(*) FROM events"),
        0,
        "handshakes are not events"
    );
    assert!(receiver.received().is_empty());
}

/// Hex HMAC-SHA256 of `body` under `key`, computed here as Asana and Notion document it.
fn hex_hmac(key: &str, body: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[tokio::test(flavor = "multi_thread")]
async fn asana_keeps_its_handshake_secret_across_restarts_and_no_later_handshake_replaces_it() {
    let receiver = Receiver::start().await;
    let routes = "[[routes]]\nname = \"asana\"\nverify = { scheme = \"asana\" }\nto = [\"sink\"]\n";
    let mut router = Router::start(&with_sink(&receiver, routes)).expect("router starts");
    let client = reqwest::Client::new();
    let url = format!("{}/hooks/asana", router.base());
    let event = |n: u32| {
        format!(
            r#"{{"events":[{{"action":"changed","resource":{{"gid":"{n}","resource_type":"task"}}}}]}}"#
        )
    };
    let post_event = |key: &str, n: u32| {
        let body = event(n);
        let sig = hex_hmac(key, body.as_bytes());
        client
            .post(&url)
            .header("x-hook-signature", sig)
            .body(body)
            .send()
    };
    let handshake = |secret: &str| client.post(&url).header("x-hook-secret", secret).send();

    let early = post_event("anything", 0).await.unwrap();
    assert_eq!(
        early.status().as_u16(),
        401,
        "no secret before the handshake"
    );
    assert!(
        early
            .text()
            .await
            .unwrap()
            .contains("handshake must come first")
    );

    let first = "b537207f20cbfa02357cf448134da559e8bd39d61597dcd5631b8012eae53e81";
    let answer = handshake(first).await.unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    assert_eq!(
        answer.headers()["x-hook-secret"],
        first,
        "Asana wants its secret echoed"
    );
    assert_eq!(post_event(first, 1).await.unwrap().status().as_u16(), 202);
    assert_eq!(
        post_event("a forger's secret", 2)
            .await
            .unwrap()
            .status()
            .as_u16(),
        401
    );

    // A later handshake cannot replace the kept secret; a retry of the same one is answered.
    let second = "c0ffee0000000000000000000000000000000000000000000000000000000001";
    assert_eq!(handshake(second).await.unwrap().status().as_u16(), 409);
    assert_eq!(handshake(first).await.unwrap().status().as_u16(), 200);
    assert_eq!(post_event(second, 3).await.unwrap().status().as_u16(), 401);

    // The secret is in the store, not in memory only.
    router.restart().expect("router restarts");
    let url = format!("{}/hooks/asana", router.base());
    let body = event(4);
    let status = client
        .post(&url)
        .header("x-hook-signature", hex_hmac(first, body.as_bytes()))
        .body(body)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 202, "the kept secret survives a restart");

    // An operator forgets it; the next handshake sets a new one.
    hookyard_admin(&router, &["secret", "forget", "asana"]);
    let answer = client
        .post(&url)
        .header("x-hook-secret", second)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    for (key, n, expected) in [(second, 5, 202), (first, 6, 401)] {
        let body = event(n);
        let status = client
            .post(&url)
            .header("x-hook-signature", hex_hmac(key, body.as_bytes()))
            .body(body)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, expected, "event {n}");
    }
    assert_eq!(
        router.count("SELECT count(*) FROM events"),
        3,
        "only the three signed events were journaled, no handshake"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn notion_keeps_the_verification_token_for_the_operator_and_checks_events_with_it() {
    let receiver = Receiver::start().await;
    let routes =
        "[[routes]]\nname = \"notion\"\nverify = { scheme = \"notion\" }\nto = [\"sink\"]\n";
    let router = Router::start(&with_sink(&receiver, routes)).expect("router starts");
    let client = reqwest::Client::new();
    let url = format!("{}/hooks/notion", router.base());
    let token = "secret_tMrlL1qK5vuQAh1b6cZGhFChZTSYJlce98V0pYn7yBl";
    let verification = client
        .post(&url)
        .header("content-type", "application/json")
        .body(format!(r#"{{"verification_token":"{token}"}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(verification.status().as_u16(), 204);
    assert_eq!(
        hookyard_admin(&router, &["secret", "show", "notion"]).trim(),
        token
    );

    let body = br#"{"id":"367cba44-b6f3-4c92-81e7-6a2e9659efd4","type":"page.created","entity":{"id":"p1","type":"page"}}"#;
    let signed = |key: &str| format!("sha256={}", hex_hmac(key, body));
    let send = |sig: String| {
        client
            .post(&url)
            .header("x-notion-signature", sig)
            .body(body.to_vec())
            .send()
    };
    assert_eq!(send(signed(token)).await.unwrap().status().as_u16(), 202);
    assert_eq!(
        send(signed("secret_other"))
            .await
            .unwrap()
            .status()
            .as_u16(),
        401
    );
    let recorded: String = router
        .db()
        .query_row("SELECT event_type FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(recorded, "page.created");
    // Another verification request (a new subscription) cannot replace the kept token.
    let other = client
        .post(&url)
        .body(r#"{"verification_token":"secret_attacker"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status().as_u16(), 409);
    assert_eq!(router.count("SELECT count(*) FROM events"), 1);
}
