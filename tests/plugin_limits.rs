//! Plugins that loop, hog memory or trap fail their own event, with a message naming the
//! plugin and the limit; other events keep flowing.

use std::time::Duration;

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn runaway_plugins_fail_their_event_and_others_keep_flowing() {
    let receiver = Receiver::start().await;
    let config = format!(
        r#"{SERVER}
[plugins.misbehave]
path = "{}"
memory = "16MiB"
timeout = "200ms"

[destinations.sink]
url = "{}"

[[routes]]
name = "in"
verify = {{ scheme = "none" }}
steps = ["misbehave"]
to = ["sink"]
"#,
        plugin("misbehave").display(),
        receiver.url("/")
    );
    let router = Router::start(&config).expect("router starts");
    for body in [
        r#"{"mode":"ok","n":1}"#,
        r#"{"mode":"loop"}"#,
        r#"{"mode":"ok","n":2}"#,
        r#"{"mode":"grow"}"#,
        r#"{"mode":"trap"}"#,
        r#"{"mode":"ok","n":3}"#,
    ] {
        assert_eq!(post(&router, "in", &[], body.as_bytes()).await.0, 202);
    }
    let got = receiver.wait_for(3, Duration::from_secs(30)).await;
    let mut ns: Vec<u64> = got
        .iter()
        .map(|r| r.json()["n"].as_u64().unwrap())
        .collect();
    ns.sort_unstable();
    assert_eq!(ns, [1, 2, 3]);
    let errors = failed_events(&router, 3).await;
    assert_eq!(
        errors,
        [
            "plugin \"misbehave\" exceeded its timeout of 200ms",
            "plugin \"misbehave\" exceeded its memory limit of 16MiB",
            "plugin \"misbehave\" trapped: wasm trap: wasm `unreachable` instruction executed",
        ]
    );
    // The router is still healthy.
    assert_eq!(
        post(&router, "in", &[], br#"{"mode":"ok","n":4}"#).await.0,
        202
    );
    receiver.wait_for(4, Duration::from_secs(20)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn plugin_error_result_marks_the_event_failed_with_its_message() {
    let receiver = Receiver::start().await;
    let config = format!(
        r#"{SERVER}
[plugins.chat]
path = "{}"

[destinations.sink]
url = "{}"

[[routes]]
name = "in"
verify = {{ scheme = "none" }}
steps = ["chat"]
to = ["sink"]
"#,
        plugin("github-to-chat").display(),
        receiver.url("/")
    );
    let router = Router::start(&config).expect("router starts");
    assert_eq!(post(&router, "in", &[], b"{}").await.0, 202);
    assert_eq!(
        failed_events(&router, 1).await,
        ["plugin \"chat\" rejected the event: not a GitHub event: no X-GitHub-Event header"]
    );
}
