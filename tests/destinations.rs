//! HTTP destinations for SaaS APIs: authentication (bearer, basic, API key in a header or
//! the query, OAuth 2 client credentials), `Idempotency-Key`, and a plugin choosing the
//! method and path.

use std::time::Duration;

use crate::support::*;

fn with_destination(sink_url: &str, extra: &str) -> String {
    format!(
        r#"{SERVER}
[destinations.api]
url = "{sink_url}"
retry = {{ schedule = ["100ms", "100ms", "100ms"] }}
{extra}

[[routes]]
name = "in"
verify = {{ scheme = "none" }}
to = ["api"]
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn each_auth_form_reaches_the_api_and_idempotency_keys_are_stable() {
    let cases = [
        (
            "auth = { bearer = \"tok_123\" }",
            "authorization",
            "Bearer tok_123",
        ),
        (
            "auth = { basic = { username = \"api\", password = \"pw\" } }",
            "authorization",
            "Basic YXBpOnB3",
        ),
        (
            "auth = { header = \"X-Api-Key\", value = \"key_9\" }",
            "x-api-key",
            "key_9",
        ),
    ];
    for (auth, header, expected) in cases {
        let sink = Receiver::start().await;
        sink.answer(&[500]);
        let router = Router::start(&with_destination(&sink.url("/v1/contacts"), auth))
            .expect("router starts");
        assert_eq!(post(&router, "in", &[], b"{}").await.0, 202);
        let got = sink.wait_for(2, Duration::from_secs(20)).await;
        for r in &got {
            assert_eq!(r.header(header), Some(expected), "{auth}");
            assert_eq!(
                r.header("idempotency-key"),
                r.header("hookyard-delivery-id")
            );
        }
        assert_eq!(
            got[0].header("idempotency-key"),
            got[1].header("idempotency-key"),
            "stable across retries"
        );
        assert!(
            !router.log().contains("tok_123") && !router.log().contains("key_9"),
            "secrets stay out of the log"
        );
    }
    let sink = Receiver::start().await;
    let router = Router::start(&with_destination(
        &sink.url("/hook"),
        "auth = { query = \"api_token\", value = \"q_secret\" }\nidempotency_key = false",
    ))
    .expect("router starts");
    assert_eq!(post(&router, "in", &[], b"{}").await.0, 202);
    let got = sink.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(got[0].query.as_deref(), Some("api_token=q_secret"));
    assert_eq!(got[0].header("idempotency-key"), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn oauth2_tokens_are_fetched_cached_and_refreshed_once_on_a_401() {
    let token_endpoint = Receiver::start().await;
    for token in ["tok-1", "tok-2"] {
        token_endpoint.reply(Reply {
            status: 200,
            body: Some(format!(
                r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":3600}}"#
            )),
            ..Default::default()
        });
    }
    let api = Receiver::start().await;
    api.answer(&[401]);
    let auth = format!(
        "auth = {{ oauth2 = {{ token_url = \"{}\", client_id = \"hookyard\", client_secret = \"cs_123\", scope = \"api\" }} }}",
        token_endpoint.url("/oauth2/token")
    );
    let router =
        Router::start(&with_destination(&api.url("/services/data"), &auth)).expect("router starts");
    assert_eq!(post(&router, "in", &[], br#"{"n":1}"#).await.0, 202);
    api.wait_for(2, Duration::from_secs(20)).await;
    assert_eq!(post(&router, "in", &[], br#"{"n":2}"#).await.0, 202);
    let calls = api.wait_for(3, Duration::from_secs(20)).await;
    let bearer: Vec<_> = calls
        .iter()
        .map(|r| r.header("authorization").unwrap().to_string())
        .collect();
    assert_eq!(
        bearer,
        ["Bearer tok-1", "Bearer tok-2", "Bearer tok-2"],
        "refreshed once, then cached"
    );
    let token_calls = token_endpoint.received();
    assert_eq!(token_calls.len(), 2);
    let form = String::from_utf8(token_calls[0].body.to_vec()).unwrap();
    assert!(
        form.contains("grant_type=client_credentials")
            && form.contains("client_id=hookyard")
            && form.contains("scope=api"),
        "{form}"
    );
    eventually("both delivered", Duration::from_secs(10), || {
        router.count("SELECT COUNT(*) FROM deliveries WHERE status = 'delivered'") == 2
    })
    .await;
    assert_eq!(
        router.count("SELECT COUNT(*) FROM attempts"),
        2,
        "the 401 and its retry were one attempt"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_chooses_method_and_path_but_not_the_host() {
    let sink = Receiver::start().await;
    let config = format!(
        r#"{SERVER}
[plugins.route]
path = "{}"

[destinations.salesforce]
url = "{}"

[[routes]]
name = "in"
verify = {{ scheme = "none" }}
steps = ["route"]
to = ["salesforce"]
"#,
        plugin("misbehave").display(),
        sink.url("/services/data/v60.0/")
    );
    let router = Router::start(&config).expect("router starts");
    let upsert = br#"{"mode":"route","method":"PATCH","path":"/sobjects/Lead/Email__c/ada%40example.com","payload":{"LastName":"Lovelace"}}"#;
    assert_eq!(post(&router, "in", &[], upsert).await.0, 202);
    let got = sink.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(got[0].method, "PATCH");
    assert_eq!(
        got[0].path,
        "/services/data/v60.0/sobjects/Lead/Email__c/ada%40example.com"
    );
    assert_eq!(got[0].json()["LastName"], "Lovelace");

    let escape = br#"{"mode":"route","path":"@evil.example/steal","payload":{}}"#;
    assert_eq!(post(&router, "in", &[], escape).await.0, 202);
    let reason = dead_letter_reason(&router).await;
    assert_eq!(
        reason,
        "the plugin's path \"@evil.example/steal\" must start with '/' or '?'"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn template_path_cannot_leave_the_destination_base() {
    let crm = Receiver::start().await;
    let config = format!(
        r#"{SERVER}
[plugins.contacts]
path = "{}"
[[plugins.contacts.config.outputs]]
when = "{{{{ body.op == 'urlencode' }}}}"
method = "DELETE"
path = "/contacts/{{{{ body.id | urlencode }}}}"
body = {{}}
[[plugins.contacts.config.outputs]]
when = "{{{{ body.op == 'path_segment' }}}}"
method = "DELETE"
path = "/contacts/{{{{ body.id | path_segment }}}}"
body = {{}}

[destinations.crm]
url = "{}"
auth = {{ bearer = "crm-token-123" }}
retry = {{ schedule = ["100ms"] }}

[[routes]]
name = "in"
verify = {{ scheme = "none" }}
steps = ["contacts"]
to = ["crm"]
"#,
        plugin("template").display(),
        crm.url("/api/v1")
    );
    let router = Router::start(&config).expect("router starts");

    // `urlencode` keeps `/` and `.`: the path would climb to /admin/users/1 with the token.
    let climb = br#"{"op":"urlencode","id":"../../../admin/users/1"}"#;
    assert_eq!(post(&router, "in", &[], climb).await.0, 202);
    let reason = dead_letter_reason(&router).await;
    assert!(
        reason.contains("has a '.' or '..' segment"),
        "the refusal names the reason: {reason}"
    );
    assert!(!reason.contains("crm-token-123"), "{reason}");

    // `path_segment` keeps the same id inside one segment under the base path.
    let encoded = br#"{"op":"path_segment","id":"../../../admin/users/1"}"#;
    assert_eq!(post(&router, "in", &[], encoded).await.0, 202);
    let got = crm.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(got[0].method, "DELETE");
    assert_eq!(
        got[0].path,
        "/api/v1/contacts/%2E%2E%2F%2E%2E%2F%2E%2E%2Fadmin%2Fusers%2F1"
    );
    assert_eq!(crm.received().len(), 1, "nothing reached /admin");
}

#[tokio::test(flavor = "multi_thread")]
async fn oauth2_token_url_obeys_the_egress_rules() {
    let dir = tempfile::tempdir().unwrap();
    let config = |token_url: &str| {
        with_destination(
            "http://127.0.0.1:9/api",
            &format!(
                "auth = {{ oauth2 = {{ token_url = \"{token_url}\", client_id = \"hookyard\", client_secret = \"cs_123\" }} }}"
            ),
        )
        .replace(
            "allow_private = [\"127.0.0.0/8\"]",
            "allow_private = [\"127.0.0.1/32\"]",
        )
        .replace("{PORT}", "8080")
        .replace("{ADMIN_PORT}", "8081")
    };
    let (ok, err) = check_config(dir.path(), &config("http://127.0.0.1:9/token"));
    assert!(ok, "an allowed token_url passes: {err}");
    for blocked in [
        "http://127.0.0.2:9/token",
        "http://169.254.169.254/latest/meta-data/iam",
        "http://[::1]:9/token",
        "file:///etc/passwd",
    ] {
        let (ok, err) = check_config(dir.path(), &config(blocked));
        assert!(!ok, "{blocked} was accepted");
        assert!(
            err.contains("destination \"api\": oauth2.token_url"),
            "{blocked}: {err}"
        );
        assert!(!err.contains("cs_123"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_huge_expires_in_is_capped_and_an_oversized_token_response_is_refused() {
    let token_endpoint = Receiver::start().await;
    token_endpoint.reply(Reply {
        status: 200,
        body: Some(format!(
            r#"{{"access_token":"tok-1","token_type":"Bearer","expires_in":{}}}"#,
            u64::MAX
        )),
        ..Default::default()
    });
    let api = Receiver::start().await;
    let auth = format!(
        "auth = {{ oauth2 = {{ token_url = \"{}\", client_id = \"hookyard\", client_secret = \"cs_123\" }} }}",
        token_endpoint.url("/oauth2/token")
    );
    let router = Router::start(&with_destination(&api.url("/v1"), &auth)).expect("router starts");
    assert_eq!(post(&router, "in", &[], br#"{"n":1}"#).await.0, 202);
    let calls = api.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(calls[0].header("authorization"), Some("Bearer tok-1"));

    let big = Receiver::start().await;
    big.body_all(&format!(
        r#"{{"access_token":"tok-2","pad":"{}"}}"#,
        "x".repeat(100 * 1024)
    ));
    let auth = format!(
        "auth = {{ oauth2 = {{ token_url = \"{}\", client_id = \"hookyard\", client_secret = \"cs_123\" }} }}",
        big.url("/oauth2/token")
    );
    let api = Receiver::start().await;
    let router = Router::start(&with_destination(&api.url("/v1"), &auth)).expect("router starts");
    assert_eq!(post(&router, "in", &[], br#"{"n":2}"#).await.0, 202);
    let reason = dead_letter_reason(&router).await;
    assert_eq!(
        reason,
        "gave up after 4 attempts; last: oauth2: token response is larger than 64 KiB"
    );
    assert!(api.received().is_empty());
}
