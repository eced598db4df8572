//! The admin API and the `hookyard events|deliveries|replay|destinations` commands.

use std::time::Duration;

use crate::support::*;

fn config(receiver: &Receiver, attempts: u32) -> String {
    format!(
        r#"{SERVER}
[plugins.chat]
path = "{}"

[destinations.chat]
url = "{}"
retry = {{ attempts = {attempts}, backoff = "50ms" }}
# Every attempt fails in some tests here: keep the circuit closed so retries run at once.
breaker = {{ failures = 0 }}

[[routes]]
name = "github"
verify = {{ scheme = "none" }}
steps = ["chat"]
to = ["chat"]
"#,
        plugin("github-to-chat").display(),
        receiver.url("/chat")
    )
}

async fn post_push(router: &Router) -> String {
    let headers = vec![("x-github-event".to_string(), "push".to_string())];
    let (status, body) = post(router, "github", &headers, &fixture("github/push.json")).await;
    assert_eq!(status, 202, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_api_refuses_missing_or_wrong_tokens() {
    let receiver = Receiver::start().await;
    let router = Router::start(&config(&receiver, 3)).expect("router starts");
    let client = reqwest::Client::new();
    let url = format!("{}/admin/events", router.admin_base());
    let none = client.get(&url).send().await.unwrap();
    assert_eq!(none.status(), 401);
    assert_eq!(none.headers()["www-authenticate"], "Bearer");
    let wrong = client
        .get(&url)
        .bearer_auth("test-admin-token-0123456788")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let (status, body) = admin(&router, "GET", "/admin/events", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["items"], serde_json::json!([]));
    let (status, body) = admin(&router, "GET", "/admin/deliveries?status=lost", None).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("pending, retrying, delivered or dead")
    );
    // The hooks listener does not serve the admin API.
    let r = client
        .get(format!("{}/admin/events", router.base()))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn event_detail_shows_deliveries_attempts_and_response_bodies() {
    let receiver = Receiver::start().await;
    receiver.answer(&[500]);
    let router = Router::start(&config(&receiver, 3)).expect("router starts");
    let id = post_push(&router).await;
    receiver.wait_for(2, Duration::from_secs(20)).await;
    eventually("delivered", Duration::from_secs(10), || {
        router.count("SELECT COUNT(*) FROM deliveries WHERE status = 'delivered'") == 1
    })
    .await;
    let (status, event) = admin(&router, "GET", &format!("/admin/events/{id}"), None).await;
    assert_eq!(status, 200, "{event}");
    assert_eq!(event["status"], "processed");
    assert_eq!(event["event_type"], "push");
    assert!(event["body"].as_str().unwrap().contains("Codertocat"));
    let delivery = &event["deliveries"][0];
    assert_eq!(delivery["destination"], "chat");
    assert_eq!(delivery["status"], "delivered");
    let log = delivery["attempt_log"].as_array().unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0]["status_code"], 500);
    assert_eq!(log[0]["response_body"], "reply 500");
    assert_eq!(log[1]["status_code"], 200);

    // The same through the command line, as tables.
    let table = hookyard_admin(&router, &["events"]);
    assert!(table.starts_with("ID"), "{table}");
    assert!(
        table.contains(&id) && table.contains("processed") && table.contains("push"),
        "{table}"
    );
    let shown = hookyard_admin(
        &router,
        &["deliveries", "show", delivery["id"].as_str().unwrap()],
    );
    assert!(
        shown.contains("reply 500") && shown.contains("HTTP 500"),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_letters_are_listed_and_bulk_replay_delivers_them_once_the_receiver_is_back() {
    let receiver = Receiver::start().await;
    receiver.always(503);
    let router = Router::start(&config(&receiver, 2)).expect("router starts");
    for _ in 0..3 {
        post_push(&router).await;
    }
    eventually("three dead letters", Duration::from_secs(20), || {
        router.count("SELECT COUNT(*) FROM deliveries WHERE status = 'dead'") == 3
    })
    .await;
    let dead = hookyard_admin(&router, &["deliveries", "--status", "dead"]);
    assert_eq!(dead.lines().count(), 4, "header + 3 rows:\n{dead}");
    assert!(
        dead.contains("gave up after 2 attempts; last: HTTP 503 Service Unavailable"),
        "{dead}"
    );
    let before: Vec<String> = receiver
        .received()
        .iter()
        .map(|r| r.header("hookyard-delivery-id").unwrap().to_string())
        .collect();

    // The receiver comes back; the operator replays the dead letters.
    receiver.always(200);
    let out = hookyard_admin(
        &router,
        &["replay", "--status", "dead", "--destination", "chat"],
    );
    assert_eq!(out.trim(), "3 deliver(ies) re-queued");
    eventually("all delivered", Duration::from_secs(20), || {
        router.count("SELECT COUNT(*) FROM deliveries WHERE status = 'delivered'") == 3
    })
    .await;
    let after: Vec<_> = receiver
        .received()
        .iter()
        .skip(before.len())
        .map(|r| r.header("hookyard-delivery-id").unwrap().to_string())
        .collect();
    assert_eq!(after.len(), 3);
    assert!(
        after.iter().all(|id| before.contains(id)),
        "replayed deliveries keep their ids"
    );
    let (_, dead) = admin(&router, "GET", "/admin/deliveries?status=dead", None).await;
    assert_eq!(dead["items"], serde_json::json!([]));
    // Replaying everything at once must be asked for with a filter.
    let (status, body) = admin(
        &router,
        "POST",
        "/admin/replay",
        Some(serde_json::json!({})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("narrow the replay"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn replaying_an_event_reruns_its_plugins_into_new_deliveries() {
    let receiver = Receiver::start().await;
    let router = Router::start(&config(&receiver, 3)).expect("router starts");
    let id = post_push(&router).await;
    receiver.wait_for(1, Duration::from_secs(20)).await;
    let out = hookyard_admin(&router, &["events", "replay", &id]);
    assert!(out.contains("replaying"), "{out}");
    let got = receiver.wait_for(2, Duration::from_secs(20)).await;
    assert_eq!(
        got[0].body, got[1].body,
        "same event, same plugin, same output"
    );
    assert_ne!(
        got[0].header("hookyard-delivery-id"),
        got[1].header("hookyard-delivery-id"),
        "a replay makes a new delivery"
    );
    assert_eq!(got[1].header("hookyard-event-id"), Some(id.as_str()));
    let (status, _) = admin(&router, "POST", "/admin/events/evt_nope/replay", None).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_requests_events_and_attempts() {
    let receiver = Receiver::start().await;
    receiver.answer(&[500]);
    let router = Router::start(&config(&receiver, 3)).expect("router starts");
    post_push(&router).await;
    let (status, _) = post(&router, "github", &[], b"not json").await;
    assert_eq!(status, 202);
    receiver.wait_for(2, Duration::from_secs(20)).await;
    eventually("delivered", Duration::from_secs(10), || {
        router.count("SELECT COUNT(*) FROM deliveries WHERE status = 'delivered'") == 1
    })
    .await;
    let client = reqwest::Client::new();
    let url = format!("{}/admin/metrics", router.admin_base());
    assert_eq!(
        client.get(&url).send().await.unwrap().status(),
        401,
        "metrics need the token too"
    );
    let text = client
        .get(&url)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "hookyard_requests_total{route=\"github\",outcome=\"accepted\"} 2",
        "hookyard_events_total{route=\"github\",result=\"processed\"} 1",
        "hookyard_events_total{route=\"github\",result=\"failed\"} 1",
        "hookyard_delivery_attempts_total{destination=\"chat\",result=\"retry\"} 1",
        "hookyard_delivery_attempts_total{destination=\"chat\",result=\"delivered\"} 1",
        "hookyard_deliveries{status=\"delivered\"} 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in:\n{text}"
        );
    }
    assert!(
        text.contains("# TYPE hookyard_plugin_fuel_total counter"),
        "{text}"
    );
}

/// A browser for the admin UI: no redirects followed, the session cookie kept by hand.
struct Browser {
    client: reqwest::Client,
    base: String,
    session: Option<String>,
}

impl Browser {
    fn new(router: &Router) -> Browser {
        Browser {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: router.admin_base(),
            session: None,
        }
    }

    async fn get(&self, path: &str) -> (u16, String, Option<String>) {
        let mut req = self.client.get(format!("{}{path}", self.base));
        if let Some(s) = &self.session {
            req = req.header("cookie", s);
        }
        let resp = req.send().await.unwrap();
        let location = resp
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string());
        (resp.status().as_u16(), resp.text().await.unwrap(), location)
    }

    async fn post(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        origin: Option<&str>,
    ) -> (u16, Option<String>) {
        let mut req = self.client.post(format!("{}{path}", self.base)).form(form);
        if let Some(s) = &self.session {
            req = req.header("cookie", s);
        }
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        let resp = req.send().await.unwrap();
        if let Some(set) = resp.headers().get("set-cookie") {
            let pair = set.to_str().unwrap().split(';').next().unwrap().to_string();
            self.session = Some(pair);
        }
        let location = resp
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string());
        (resp.status().as_u16(), location)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_ui_signs_in_with_the_token_and_shows_an_event_with_its_deliveries() {
    let receiver = Receiver::start().await;
    let router = Router::start(&config(&receiver, 3)).expect("router starts");
    let id = post_push(&router).await;
    receiver.wait_for(1, Duration::from_secs(20)).await;
    eventually("the delivery is recorded", Duration::from_secs(10), || {
        router.count("SELECT COUNT(*) FROM deliveries WHERE status = 'delivered'") == 1
    })
    .await;

    let mut browser = Browser::new(&router);
    let (status, _, location) = browser.get("/ui/events").await;
    assert_eq!(
        (status, location.as_deref()),
        (303, Some("/ui/login")),
        "signed out"
    );
    assert_eq!(
        browser
            .post("/ui/login", &[("token", "not-the-token-0000")], None)
            .await
            .0,
        401
    );
    assert!(browser.session.is_none());
    let (status, location) = browser
        .post(
            "/ui/login",
            &[("token", "test-admin-token-0123456789")],
            None,
        )
        .await;
    assert_eq!((status, location.as_deref()), (303, Some("/ui/events")));
    let cookie = browser.session.clone().expect("a session cookie");
    assert!(
        !cookie.contains("test-admin-token"),
        "the cookie is not the token"
    );

    let (status, html, _) = browser.get("/ui/events").await;
    assert_eq!(status, 200);
    assert!(html.contains(&id) && html.contains("processed"), "{html}");
    let page = reqwest::Client::new()
        .get(format!("{}/ui/events", router.admin_base()))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        page.headers()["cache-control"],
        "no-store",
        "pages show webhook bodies"
    );
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    let (status, _, location) = browser.get(&format!("/ui/find?id={id}")).await;
    assert_eq!((status, location), (303, Some(format!("/ui/events/{id}"))));
    let delivery: String = router
        .db()
        .query_row("SELECT id FROM deliveries", [], |r| r.get(0))
        .unwrap();
    let (status, _, location) = browser.get(&format!("/ui/find?id={delivery}")).await;
    assert_eq!(
        (status, location),
        (303, Some(format!("/ui/events/{id}"))),
        "by a delivery id"
    );
    let (status, html, _) = browser.get(&format!("/ui/events/{id}")).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("x-github-event") && html.contains("&quot;ref&quot;"),
        "headers and the body"
    );
    assert!(
        html.contains("chat") && html.contains("delivered"),
        "its delivery: {html}"
    );
    let (status, html, _) = browser.get("/ui/destinations").await;
    assert_eq!(status, 200);
    assert!(html.contains("chat") && html.contains("active"));
    assert!(
        html.contains("<th>due now</th>") && html.contains("Events waiting for their plugins"),
        "the backlog per destination and route: {html}"
    );

    // Replaying from the page runs the plugins again: a second delivery arrives.
    let (status, location) = browser
        .post(
            &format!("/ui/events/{id}/replay"),
            &[],
            Some(&router.admin_base()),
        )
        .await;
    assert_eq!((status, location), (303, Some(format!("/ui/events/{id}"))));
    receiver.wait_for(2, Duration::from_secs(20)).await;

    // Signing out ends the session.
    browser.post("/ui/logout", &[], None).await;
    let (status, _, _) = browser.get("/ui/events").await;
    assert_eq!(status, 303);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_ui_escapes_what_providers_send_and_refuses_cross_site_actions() {
    let receiver = Receiver::start().await;
    receiver.always(500);
    let router = Router::start(&config(&receiver, 1)).expect("router starts");
    let headers = vec![
        ("x-github-event".to_string(), "push".to_string()),
        (
            "x-note".to_string(),
            "<img src=x onerror=alert(1)>".to_string(),
        ),
    ];
    let body = br#"{"ref":"refs/heads/main","pusher":{"name":"<script>alert(1)</script>"},"commits":[],"repository":{"full_name":"o/r","html_url":"https://github.com/o/r"},"compare":"https://github.com/o/r/compare"}"#;
    let (status, text) = post(&router, "github", &headers, body).await;
    assert_eq!(status, 202, "{text}");
    let id = serde_json::from_str::<serde_json::Value>(&text).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    eventually("the delivery is dead", Duration::from_secs(20), || {
        router.count("SELECT COUNT(*) FROM deliveries WHERE status = 'dead'") == 1
    })
    .await;

    let mut browser = Browser::new(&router);
    browser
        .post(
            "/ui/login",
            &[("token", "test-admin-token-0123456789")],
            None,
        )
        .await;
    let (_, html, _) = browser.get(&format!("/ui/events/{id}")).await;
    assert!(
        !html.contains("<script>alert") && !html.contains("<img src=x"),
        "{html}"
    );
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
    let (_, dead, _) = browser.get("/ui/deliveries?status=dead").await;
    assert!(
        dead.contains("Dead letters") && dead.contains(&id),
        "{dead}"
    );

    let delivery: String = router
        .db()
        .query_row("SELECT id FROM deliveries", [], |r| r.get(0))
        .unwrap();
    let retry = format!("/ui/deliveries/{delivery}/retry");
    // Another site's page cannot make the signed-in browser act.
    let (status, _) = browser
        .post(&retry, &[], Some("https://evil.example"))
        .await;
    assert_eq!(status, 403);
    // Nor can a request without the session.
    let (status, location) = Browser::new(&router).post(&retry, &[], None).await;
    assert_eq!((status, location.as_deref()), (303, Some("/ui/login")));
    assert_eq!(receiver.received().len(), 1, "no retry happened");

    receiver.always(200);
    let (status, _) = browser.post(&retry, &[], Some(&router.admin_base())).await;
    assert_eq!(status, 303);
    receiver.wait_for(2, Duration::from_secs(20)).await;
    eventually(
        "the retried delivery is delivered",
        Duration::from_secs(10),
        || router.count("SELECT COUNT(*) FROM deliveries WHERE status = 'delivered'") == 1,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rebound_hosts_and_cross_site_posts_are_refused_with_or_without_a_token() {
    let receiver = Receiver::start().await;
    let tokenless = config(&receiver, 1).replace(
        &format!("admin_token = \"{ADMIN_TOKEN}\""),
        "admin_without_token = true",
    );
    let router = Router::start(&tokenless).expect("router starts");
    let client = reqwest::Client::new();
    let base = router.admin_base();
    let port = base.rsplit(':').next().unwrap().to_string();
    let get = |host: String| {
        client
            .get(format!("{base}/admin/events"))
            .header("host", host)
            .send()
    };
    assert_eq!(
        get(format!("127.0.0.1:{port}")).await.unwrap().status(),
        200
    );
    assert_eq!(
        get(format!("localhost:{port}")).await.unwrap().status(),
        200
    );
    let rebound = get(format!("evil.example:{port}")).await.unwrap();
    assert_eq!(
        rebound.status(),
        403,
        "a DNS-rebinding page cannot read the journal"
    );
    assert!(rebound.text().await.unwrap().contains("Host header"));

    let resume = format!("{base}/admin/destinations/chat/resume");
    let cross = client
        .post(&resume)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403, "another site's page cannot act");
    let same = client
        .post(&resume)
        .header("origin", &base)
        .send()
        .await
        .unwrap();
    assert_eq!(same.status(), 200, "{}", same.text().await.unwrap());

    // With a token, the token does not make a cross-site POST acceptable either.
    let router = Router::start(&config(&receiver, 1)).expect("router starts");
    let cross = client
        .post(format!(
            "{}/admin/destinations/chat/resume",
            router.admin_base()
        ))
        .bearer_auth(ADMIN_TOKEN)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_now_on_a_delivery_in_flight_is_refused_and_it_is_sent_once() {
    let receiver = Receiver::start().await;
    receiver.delay_all(Duration::from_millis(1500));
    let router = Router::start(&config(&receiver, 3)).expect("router starts");
    post_push(&router).await;
    receiver.wait_for(1, Duration::from_secs(20)).await;
    let delivery: String = router
        .db()
        .query_row("SELECT id FROM deliveries", [], |r| r.get(0))
        .unwrap();
    let (status, body) = admin(
        &router,
        "POST",
        &format!("/admin/deliveries/{delivery}/retry"),
        None,
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(body.to_string().contains("in flight"), "{body}");
    eventually("delivered", Duration::from_secs(20), || {
        router.count("SELECT COUNT(*) FROM deliveries WHERE status = 'delivered'") == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received().len(), 1, "sent once");
}
