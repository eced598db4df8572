//! Requests that fail verification get a 401 with a reason, and nothing is stored.

use crate::support::*;

const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

fn config(receiver: &Receiver) -> String {
    format!(
        r#"{SERVER}
[destinations.sink]
url = "{}"

[[routes]]
name = "sw"
verify = {{ scheme = "standard-webhooks", secret = "{SECRET}" }}
to = ["sink"]

[[routes]]
name = "signed"
verify = {{ scheme = "hmac", header = "X-Signature", secret = "s3cr3t", encoding = "base64", prefix = "sha256=" }}
to = ["sink"]
"#,
        receiver.url("/")
    )
}

fn without(headers: &[(String, String)], name: &str) -> Vec<(String, String)> {
    headers.iter().filter(|(n, _)| n != name).cloned().collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_missing_and_stale_signatures_are_401_and_nothing_is_stored() {
    let receiver = Receiver::start().await;
    let router = Router::start(&config(&receiver)).expect("router starts");
    let body = br#"{"email":"test@example.com","username":"test_user"}"#;
    let now = unix_now();
    let good = standard_webhooks_headers(SECRET, "msg_a", now, body);

    let tampered = post(
        &router,
        "sw",
        &good,
        br#"{"email":"evil@example.com","username":"test_user"}"#,
    )
    .await;
    assert_eq!(
        tampered,
        (
            401,
            "{\"error\":\"signature does not match\"}\n".to_string()
        )
    );

    let missing = post(&router, "sw", &without(&good, "webhook-signature"), body).await;
    assert_eq!(missing.0, 401);
    assert!(
        missing.1.contains("missing webhook-signature header"),
        "{}",
        missing.1
    );

    let stale = standard_webhooks_headers(SECRET, "msg_b", now - 600, body);
    let stale = post(&router, "sw", &stale, body).await;
    assert_eq!(stale.0, 401);
    assert!(
        stale.1.contains("timestamp outside the allowed tolerance"),
        "{}",
        stale.1
    );

    let future = standard_webhooks_headers(SECRET, "msg_c", now + 600, body);
    assert_eq!(post(&router, "sw", &future, body).await.0, 401);

    let wrong_key =
        standard_webhooks_headers("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_d", now, body);
    assert_eq!(post(&router, "sw", &wrong_key, body).await.0, 401);

    let garbage = vec![
        ("webhook-id".to_string(), "msg_e".to_string()),
        ("webhook-timestamp".to_string(), "soon".to_string()),
        ("webhook-signature".to_string(), "v1,!!!".to_string()),
    ];
    let garbage = post(&router, "sw", &garbage, body).await;
    assert_eq!(garbage.0, 401);
    assert!(
        garbage.1.contains("malformed webhook-timestamp header"),
        "{}",
        garbage.1
    );

    // 500 candidates used to mean 500 HMACs over the whole body, per request, unauthenticated.
    let big = vec![b' '; 60 * 1024];
    let mut stuffed = standard_webhooks_headers(SECRET, "msg_f", now, &big);
    for (name, value) in stuffed.iter_mut() {
        if name == "webhook-signature" {
            *value = format!("{} {value}", vec!["v1,AA=="; 499].join(" "));
        }
    }
    let stuffed = post(&router, "sw", &stuffed, &big).await;
    assert_eq!(
        stuffed,
        (
            401,
            "{\"error\":\"webhook-signature header offers more than 8 signatures\"}\n".to_string()
        )
    );

    let hmac_bad = vec![("x-signature".to_string(), "sha256=AAAA".to_string())];
    assert_eq!(post(&router, "signed", &hmac_bad, body).await.0, 401);

    assert_eq!(
        router.count("SELECT COUNT(*) FROM events"),
        0,
        "rejected requests are never stored"
    );
    // The secret never appears in the log.
    assert!(
        !router.log().contains("C2FVsBQIhrscChlQIMV"),
        "secret leaked into the log"
    );
    assert!(
        !router.log().contains("s3cr3t"),
        "secret leaked into the log"
    );

    // And the correctly signed request is accepted.
    assert_eq!(post(&router, "sw", &good, body).await.0, 202);
    assert_eq!(router.count("SELECT COUNT(*) FROM events"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn generic_hmac_route_accepts_a_base64_signature() {
    let receiver = Receiver::start().await;
    let router = Router::start(&config(&receiver)).expect("router starts");
    use base64::Engine as _;
    use hmac::Mac as _;
    let body = b"{\"n\":1}";
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"s3cr3t").unwrap();
    mac.update(body);
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let headers = vec![("X-Signature".to_string(), format!("sha256={sig}"))];
    assert_eq!(post(&router, "signed", &headers, body).await.0, 202);
    receiver
        .wait_for(1, std::time::Duration::from_secs(20))
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_signed_body_is_accepted_and_a_forged_one_refused() {
    let receiver = Receiver::start().await;
    let config = format!(
        "{}\n[destinations.sink]\nurl = \"{}\"\n\n[[routes]]\nname = \"gh\"\nverify = {{ scheme = \"github\", secret = \"big-secret\" }}\nto = [\"sink\"]\n",
        SERVER.replace("max_body = \"64KiB\"", "max_body = \"4MiB\""),
        receiver.url("/")
    );
    let router = Router::start(&config).expect("router starts");
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(3 << 20)).into_bytes();
    let (status, text) = post_github(&router, "gh", "big-secret", "push", "d-1", &big).await;
    assert_eq!(status, 202, "{text}");
    let (status, text) = post_github(&router, "gh", "wrong-secret", "push", "d-2", &big).await;
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("signature does not match"), "{text}");
    // (Bodies this large are verified on the blocking pool, not on a reactor thread.)
    let health = format!("{}/healthz", router.base());
    assert_eq!(raw_http::get_status(&health).unwrap(), 200);
}
