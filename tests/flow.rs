//! The whole path: signed GitHub events through `filter` and `github-to-chat` to a receiver.

use std::collections::HashSet;
use std::time::Duration;

use crate::support::*;

const SECRET: &str = "flow-secret";

fn config(receiver: &Receiver) -> String {
    format!(
        r#"{SERVER}
[plugins.main-or-pr]
path = "{filter}"
config = {{ match = "any", conditions = [
  {{ pointer = "/ref", one_of = ["refs/heads/main", "refs/heads/master"] }},
  {{ pointer = "/pull_request", exists = true }},
] }}

[plugins.github-to-chat]
path = "{chat}"

[destinations.chat]
url = "{url}"
retry = {{ attempts = 3, backoff = "100ms" }}

[[routes]]
name = "github"
verify = {{ scheme = "github", secret = "{SECRET}" }}
steps = ["main-or-pr", "github-to-chat"]
to = ["chat"]
"#,
        filter = plugin("filter").display(),
        chat = plugin("github-to-chat").display(),
        url = receiver.url("/chat"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_github_events_are_filtered_transformed_and_delivered() {
    let receiver = Receiver::start().await;
    let router = Router::start(&config(&receiver)).expect("router starts");
    let push = fixture("github/push.json");
    let pr = fixture("github/pull_request.json");
    const N: usize = 20;
    for i in 0..N {
        let (status, body) = post_github(
            &router,
            "github",
            SECRET,
            "push",
            &format!("push-{i}"),
            &push,
        )
        .await;
        assert_eq!(status, 202, "{body}");
        assert!(body.contains("\"id\":\"evt_"), "{body}");
    }
    // Filtered out (a tag push) and dropped by the transform (a star): acknowledged, not delivered.
    assert_eq!(
        post_github(
            &router,
            "github",
            SECRET,
            "push",
            "tag",
            &fixture("github/push-tag.json")
        )
        .await
        .0,
        202
    );
    assert_eq!(
        post_github(
            &router,
            "github",
            SECRET,
            "star",
            "star",
            &fixture("github/star.json")
        )
        .await
        .0,
        202
    );
    assert_eq!(
        post_github(&router, "github", SECRET, "pull_request", "pr", &pr)
            .await
            .0,
        202
    );

    let got = receiver.wait_for(N + 1, Duration::from_secs(30)).await;
    let pushes: Vec<_> = got
        .iter()
        .filter(|r| r.json()["text"].as_str().unwrap().contains("pushed"))
        .collect();
    assert_eq!(pushes.len(), N);
    let text = pushes[0].json()["text"].as_str().unwrap().to_string();
    assert!(
        text.starts_with("Codertocat pushed 1 commit to `master` in <"),
        "{text}"
    );
    assert!(text.contains("|Codertocat/Hello-World>"), "{text}");
    let pr_text = got
        .iter()
        .map(|r| r.json()["text"].as_str().unwrap().to_string())
        .find(|t| t.contains("pull request"));
    assert_eq!(
        pr_text.as_deref(),
        Some(
            "Codertocat opened pull request <https://github.com/Codertocat/Hello-World/pull/2|#2 Update the README with new information.> in Codertocat/Hello-World"
        )
    );
    for r in &got {
        assert_eq!(r.path, "/chat");
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert!(
            r.header("x-hub-signature-256").is_none(),
            "provider headers must not leak to destinations"
        );
    }
    let ids: HashSet<_> = got
        .iter()
        .map(|r| r.header("hookyard-delivery-id").unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), got.len(), "every delivery has its own id");

    // Nothing else arrives: the tag push and the star were dropped.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received().len(), N + 1);
    assert_eq!(
        router.count("SELECT COUNT(*) FROM events WHERE status = 'processed'"),
        N as i64 + 3
    );
    assert_eq!(
        router.count("SELECT COUNT(*) FROM deliveries WHERE status = 'delivered'"),
        N as i64 + 1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicate_github_delivery_is_acknowledged_but_processed_once() {
    let receiver = Receiver::start().await;
    let router = Router::start(&config(&receiver)).expect("router starts");
    let push = fixture("github/push.json");
    let (s1, b1) = post_github(&router, "github", SECRET, "push", "same-delivery", &push).await;
    let (s2, b2) = post_github(&router, "github", SECRET, "push", "same-delivery", &push).await;
    assert_eq!(s1, 202);
    assert_eq!(s2, 200);
    assert!(b2.contains("\"duplicate\":true"), "{b2}");
    let first: serde_json::Value = serde_json::from_str(&b1).unwrap();
    let second: serde_json::Value = serde_json::from_str(&b2).unwrap();
    assert_eq!(
        first["id"], second["id"],
        "the duplicate names the original event"
    );
    receiver.wait_for(1, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn route_without_steps_delivers_the_raw_event() {
    let receiver = Receiver::start().await;
    let secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    let config = format!(
        r#"{SERVER}
[destinations.sink]
url = "{}"

[[routes]]
name = "orders"
verify = {{ scheme = "standard-webhooks", secret = "{secret}" }}
to = ["sink"]
"#,
        receiver.url("/in")
    );
    let router = Router::start(&config).expect("router starts");
    let body = br#"{"type":"order.paid","data":{"id":"ord_1","total":1299}}"#;
    let mut headers = standard_webhooks_headers(secret, "msg_1", unix_now(), body);
    headers.push(("content-type".into(), "application/json".into()));
    let (status, text) = post(&router, "orders", &headers, body).await;
    assert_eq!(status, 202, "{text}");
    let got = receiver.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(&got[0].body[..], &body[..]);
    assert_eq!(got[0].header("content-type"), Some("application/json"));
    let event_type: String = router
        .db()
        .query_row("SELECT event_type FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(event_type, "order.paid");
}
