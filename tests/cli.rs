//! The command line: `check` names config errors; `plugin test` runs a plugin offline;
//! `send` signs like the provider.

use std::process::Command;
use std::time::Duration;

use crate::support::*;

/// The common tables, on port 0, for commands that do not serve.
fn server() -> String {
    SERVER.replace("{PORT}", "0").replace("{ADMIN_PORT}", "0")
}

fn hookyard() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hookyard"))
}

#[test]
fn check_names_file_line_and_key_of_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}\n[destinations.chat]\nurl = \"http://x\"\nretires = 3\n",
        server()
    );
    let line = text.lines().position(|l| l.starts_with("retires")).unwrap() + 1;
    let (ok, err) = check_config(dir.path(), &text);
    assert!(!ok);
    assert!(err.contains("router.toml"), "{err}");
    assert!(err.contains(&format!("line {line}")), "{err}");
    assert!(err.contains("unknown field `retires`"), "{err}");
}

#[test]
fn check_loads_every_plugin_and_rejects_a_non_component() {
    let dir = tempfile::tempdir().unwrap();
    let good = format!(
        "{}\n[plugins.chat]\npath = \"{}\"\n[plugins.filter]\npath = \"{}\"\n",
        server(),
        plugin("github-to-chat").display(),
        plugin("filter").display()
    );
    let (ok, err) = check_config(dir.path(), &good);
    assert!(ok, "{err}");

    std::fs::write(dir.path().join("bogus.wasm"), b"\0asm not really").unwrap();
    let bad = format!("{}\n[plugins.bogus]\npath = \"bogus.wasm\"\n", server());
    let (ok, err) = check_config(dir.path(), &bad);
    assert!(!ok);
    assert!(
        err.contains("cannot compile plugin") && err.contains("bogus.wasm"),
        "{err}"
    );
}

#[test]
fn plugin_test_prints_the_outputs_of_a_real_payload() {
    let dir = tempfile::tempdir().unwrap();
    let event = dir.path().join("push.json");
    std::fs::write(&event, fixture("github/push.json")).unwrap();
    let out = hookyard()
        .args(["plugin", "test"])
        .arg(plugin("github-to-chat"))
        .arg("--event")
        .arg(&event)
        .args(["--event-type", "push"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let outputs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = outputs[0]["body"]["text"].as_str().unwrap();
    assert!(
        text.starts_with("Codertocat pushed 1 commit to `master`"),
        "{text}"
    );
    assert_eq!(outputs[0]["content_type"], "application/json");
}

#[tokio::test(flavor = "multi_thread")]
async fn send_signs_like_github_and_the_router_accepts_it() {
    let receiver = Receiver::start().await;
    let config = format!(
        r#"{SERVER}
[plugins.chat]
path = "{}"
[destinations.chat]
url = "{}"
[[routes]]
name = "github"
verify = {{ scheme = "github", secret = "${{HOOKYARD_TEST_GH_SECRET}}" }}
steps = ["chat"]
to = ["chat"]
"#,
        plugin("github-to-chat").display(),
        receiver.url("/chat")
    );
    // The router reads the secret from its environment, as in production.
    let router = Router::start_with_env(&config, &[("HOOKYARD_TEST_GH_SECRET", "from-env")])
        .expect("router starts");
    let payload = router.dir.path().join("push.json");
    std::fs::write(&payload, fixture("github/push.json")).unwrap();
    let out = hookyard()
        .env("HOOKYARD_TEST_GH_SECRET", "from-env")
        .args(["send", "github"])
        .arg(&payload)
        .arg("-c")
        .arg(router.dir.path().join("router.toml"))
        .args(["--event-type", "push"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("202 {\"id\":\"evt_"));
    let got = receiver.wait_for(1, Duration::from_secs(20)).await;
    assert!(
        got[0].json()["text"]
            .as_str()
            .unwrap()
            .contains("pushed 1 commit")
    );
}

#[test]
fn check_asks_each_plugin_to_validate_its_config() {
    let dir = tempfile::tempdir().unwrap();
    let with_body = |body: &str| {
        format!(
            "{}\n[plugins.lead]\npath = \"{}\"\n[[plugins.lead.config.outputs]]\nbody = {{ text = \"{body}\" }}\n",
            server(),
            plugin("template").display()
        )
    };
    let (ok, err) = check_config(dir.path(), &with_body("{{ body.name }}"));
    assert!(ok, "{err}");
    let (ok, err) = check_config(dir.path(), &with_body("{% if %}"));
    assert!(!ok);
    assert!(
        err.contains("plugin \"lead\" refuses its config: output 1.body.text: syntax error"),
        "{err}"
    );
}

#[test]
fn check_refuses_permanent_statuses_that_retrying_or_gone_decide() {
    let dir = tempfile::tempdir().unwrap();
    for (list, reason) in [
        ("[429]", "a rate limit is always waited out"),
        ("[410]", "`gone` decides what it does"),
        ("[302]", "302 is not an error status"),
    ] {
        let text = format!(
            "{}\n[destinations.chat]\nurl = \"http://127.0.0.1:9\"\npermanent_statuses = {list}\n",
            server()
        );
        let (ok, err) = check_config(dir.path(), &text);
        assert!(!ok, "{list} accepted");
        assert!(
            err.contains("destination \"chat\"") && err.contains(reason),
            "{list}: {err}"
        );
    }
}

#[test]
fn check_refuses_config_that_silently_disables_a_protection() {
    let dir = tempfile::tempdir().unwrap();
    let route = |verify: &str, dedup: &str| {
        format!(
            "{}\n[destinations.chat]\nurl = \"http://127.0.0.1:9\"\n\n[[routes]]\nname = \"in\"\nverify = {verify}\n{dedup}\nto = [\"chat\"]\n",
            server()
        )
    };
    let cases = [
        (
            route(r#"{ scheme = "none" }"#, r#"dedup = { pointer = "id" }"#),
            "dedup.pointer \"id\" must start with '/'",
        ),
        (
            route(
                r#"{ scheme = "hmac", secret = "s3cret-s3cret", header = "X-Sig", timestamp_header = "X-Ts", signed_content = "{body}" }"#,
                "",
            ),
            "the timestamp would not be signed",
        ),
        (
            route(
                r#"{ scheme = "standard-webhooks", secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", tolerance = "2h" }"#,
                r#"dedup = { window = "1h" }"#,
            ),
            "verify.tolerance (2h) is longer than dedup.window (1h)",
        ),
        (
            route(r#"{ scheme = "github", secret = "s3cret-s3cret" }"#, "")
                .replace("[store]\n", "[store]\nretention = \"1d\"\n"),
            "store.retention (1day) is shorter than dedup.window (7days)",
        ),
        (
            route(
                r#"{ scheme = "none" }"#,
                r#"dedup = { header = "X-Id", window = "900000000y" }"#,
            ),
            "is too long (at most 100 years)",
        ),
    ];
    for (text, reason) in cases {
        let (ok, err) = check_config(dir.path(), &text);
        assert!(!ok, "accepted:\n{text}");
        assert!(err.contains(reason), "want {reason:?}, got: {err}");
    }
    // Without dedup there is nothing for a short retention to forget.
    let (ok, err) = check_config(
        dir.path(),
        &route(r#"{ scheme = "none" }"#, "").replace("[store]\n", "[store]\nretention = \"1d\"\n"),
    );
    assert!(ok, "{err}");
}

#[test]
fn send_never_prints_a_query_token() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{}\n[destinations.chat]\nurl = \"http://127.0.0.1:9\"\n\n[[routes]]\nname = \"form\"\nverify = {{ scheme = \"token\", query = \"token\", secret = \"form-secret-4242\" }}\nto = [\"chat\"]\n",
        SERVER
            .replace("{PORT}", &free_port().to_string())
            .replace("{ADMIN_PORT}", "0")
    );
    let path = dir.path().join("router.toml");
    std::fs::write(&path, config).unwrap();
    let payload = dir.path().join("lead.txt");
    std::fs::write(&payload, "name=Ada").unwrap();
    // Nothing listens: the error names the URL, without the token.
    let out = hookyard()
        .args(["send", "form"])
        .arg(&payload)
        .arg("-c")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("cannot POST to http://127.0.0.1:"), "{text}");
    assert!(text.contains("/hooks/form?<query hidden>"), "{text}");
    assert!(!text.contains("form-secret-4242"), "{text}");
}

#[test]
fn check_refuses_a_destination_timeout_that_cannot_fit_in_the_delivery_lease() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}\n[destinations.slow]\nurl = \"http://127.0.0.1:9\"\ntimeout = \"5m\"\n",
        server()
    );
    let (ok, err) = check_config(dir.path(), &text);
    assert!(!ok);
    assert!(
        err.contains("destination \"slow\": timeout 5m is too long: at most 120s"),
        "{err}"
    );
}

#[test]
fn providers_lists_every_named_provider_with_the_keys_its_route_needs() {
    let out = hookyard().arg("providers").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let named = text
        .lines()
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter(|l| {
            !["hmac ", "token ", "basic "]
                .iter()
                .any(|g| l.starts_with(g))
        })
        .count();
    assert!(named >= 40, "{named} named providers:\n{text}");
    for line in [
        "hubspot            HubSpot (signature v3)                 secret (Client secret), public_url",
        "discord-events",
        "sendgrid           SendGrid Event Webhook                 secret (Verification Key)",
    ] {
        assert!(text.contains(line), "{line:?} missing:\n{text}");
    }
    let markdown = hookyard()
        .args(["providers", "--markdown"])
        .output()
        .unwrap();
    let table = String::from_utf8(markdown.stdout).unwrap();
    assert!(table.starts_with("| scheme | provider |"), "{table}");
    assert!(
        table.contains("| `paddle` | Paddle Billing | HMAC-SHA256 hex `h1=` in `paddle-signature` | `{timestamp}:{body}` | timestamp ±5s (s), dedup | `/notification_id` | - | `secret` (Secret key) |"),
        "{table}"
    );
}

#[test]
fn check_names_a_presets_missing_key_in_the_providers_own_words() {
    let dir = tempfile::tempdir().unwrap();
    let route = |verify: &str| {
        format!(
            "{}\n[[routes]]\nname = \"r\"\nverify = {verify}\n",
            server()
        )
    };
    for (verify, expected) in [
        (
            r#"{ scheme = "linear" }"#,
            "set secret to the Signing secret Linear shows",
        ),
        (
            r#"{ scheme = "hubspot", secret = "s" }"#,
            "needs public_url, the base URL HubSpot (signature v3) calls",
        ),
        (
            r#"{ scheme = "discord", secret = "not-hex" }"#,
            "the Public Key must be the 64 hex digits Discord Interactions shows",
        ),
        (
            r#"{ scheme = "sendgrid", secret = "bm90IGEga2V5" }"#,
            "the Verification Key must be the base64 P-256 public key",
        ),
        (
            r#"{ scheme = "airtable", secret = "%%%" }"#,
            "the macSecretBase64 must be base64",
        ),
        (r#"{ scheme = "postmark", secret = "p" }"#, "needs username"),
        (
            r#"{ scheme = "gitlab", secret = "s", tolerance = "1m" }"#,
            "tolerance does not apply to scheme \"gitlab\"",
        ),
        (
            r#"{ scheme = "gitlb", secret = "s" }"#,
            "unknown scheme \"gitlb\" (did you mean \"gitlab\"?)",
        ),
    ] {
        let (ok, err) = check_config(dir.path(), &route(verify));
        assert!(!ok, "{verify} passed");
        assert!(err.contains(expected), "{verify}: {err}");
    }
    let (ok, err) = check_config(
        dir.path(),
        &route(r#"{ scheme = "box", secret = ["primary-key", "secondary-key"] }"#),
    );
    assert!(ok, "a list of secrets: {err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn send_signs_for_a_preset_with_the_first_of_its_rotating_secrets() {
    let receiver = Receiver::start().await;
    let routes = "[[routes]]\nname = \"paddle\"\nverify = { scheme = \"paddle\", secret = [\"pdl_ntfset_new\", \"pdl_ntfset_old\"] }\nto = [\"sink\"]\n\n\
                  [[routes]]\nname = \"discord\"\nverify = { scheme = \"discord\", secret = \"3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29\" }\nto = [\"sink\"]\n";
    let router = Router::start(&with_sink(&receiver, routes)).expect("router starts");
    let payload = router.config_path().with_file_name("paddle.json");
    std::fs::write(
        &payload,
        br#"{"notification_id":"ntf_01","event_type":"transaction.completed","data":{}}"#,
    )
    .unwrap();
    let send = |route: &str| {
        hookyard()
            .args(["send", route])
            .arg(&payload)
            .arg("-c")
            .arg(router.config_path())
            .output()
            .unwrap()
    };
    let out = send("paddle");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("202"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    receiver.wait_for(1, Duration::from_secs(10)).await;
    let recorded: String = router
        .db()
        .query_row(
            "SELECT event_type FROM events WHERE route = 'paddle'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(recorded, "transaction.completed");
    // Only Discord holds the private key: send says so instead of posting.
    let out = send("discord");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("only Discord Interactions can sign"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn send_handshake_makes_each_providers_endpoint_check_and_the_router_answers_it() {
    let receiver = Receiver::start().await;
    let mut routes = String::new();
    for (name, verify) in [
        (
            "slack",
            r#"{ scheme = "slack", secret = "slack-signing-secret" }"#,
        ),
        (
            "zoom",
            r#"{ scheme = "zoom", secret = "zoom-secret-token" }"#,
        ),
        (
            "meta",
            r#"{ scheme = "meta", secret = "app-secret", verify_token = "my-verify-token" }"#,
        ),
        (
            "dropbox",
            r#"{ scheme = "dropbox", secret = "app-secret" }"#,
        ),
        (
            "graph",
            r#"{ scheme = "microsoft-graph", secret = "client-state" }"#,
        ),
        (
            "twitch",
            r#"{ scheme = "twitch", secret = "twitch-transport-secret" }"#,
        ),
        ("x", r#"{ scheme = "x", secret = "consumer-secret" }"#),
        (
            "okta",
            r#"{ scheme = "okta", secret = "okta-auth-secret" }"#,
        ),
        (
            "trello",
            r#"{ scheme = "trello", secret = "app-secret", public_url = "https://hooks.example.com" }"#,
        ),
        (
            "woo",
            r#"{ scheme = "woocommerce", secret = "woo-secret" }"#,
        ),
        (
            "discord",
            r#"{ scheme = "discord", secret = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29" }"#,
        ),
        ("asana", r#"{ scheme = "asana" }"#),
        ("github", r#"{ scheme = "github", secret = "s" }"#),
    ] {
        routes.push_str(&format!(
            "[[routes]]\nname = \"{name}\"\nverify = {verify}\nto = [\"sink\"]\n\n"
        ));
    }
    let router = Router::start(&with_sink(&receiver, &routes)).expect("router starts");
    let send = |route: &str| {
        hookyard()
            .args(["send", route, "--handshake", "-c"])
            .arg(router.config_path())
            .output()
            .unwrap()
    };
    for route in [
        "slack", "zoom", "meta", "dropbox", "graph", "twitch", "x", "okta", "trello", "woo",
    ] {
        let out = send(route);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{route}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut lines = stdout.lines();
        let got = lines.next().unwrap_or_default();
        let expected = lines
            .next()
            .and_then(|l| l.strip_prefix("expected: "))
            .unwrap_or_else(|| panic!("{route}: no expectation in {stdout}"));
        let (got_status, got_text) = got.split_once(' ').unwrap_or((got, ""));
        let (want_status, want_text) = expected.split_once(' ').unwrap_or((expected, ""));
        assert_eq!(got_status, want_status, "{route}: {stdout}");
        match (
            serde_json::from_str::<serde_json::Value>(got_text),
            serde_json::from_str::<serde_json::Value>(want_text),
        ) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{route}"),
            _ => assert_eq!(got_text, want_text, "{route}"),
        }
    }
    for (route, why) in [
        ("discord", "signs its PING with its private key"),
        ("asana", "would set the route's secret"),
        ("github", "no endpoint check"),
    ] {
        let out = send(route);
        assert!(!out.status.success(), "{route}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(why),
            "{route}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(
        router.count("SELECT count(*) FROM events"),
        0,
        "handshakes are not events"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn receive_prints_what_it_gets_and_answers_200() {
    let port = free_port();
    let mut child = hookyard()
        .args(["receive", "--port", &port.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let mut answer = None;
    for _ in 0..100 {
        if let Ok(r) = client
            .post(format!("http://127.0.0.1:{port}/chat"))
            .header("hookyard-delivery-id", "dlv_1")
            .body(r#"{"text":"hello"}"#)
            .send()
            .await
        {
            answer = Some((r.status().as_u16(), r.text().await.unwrap()));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    assert_eq!(answer, Some((200, "ok".to_string())));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("--> POST /chat  delivery dlv_1")
            && printed.contains("\"text\": \"hello\""),
        "{printed}"
    );
}
