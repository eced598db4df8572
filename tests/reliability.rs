//! Delivery that loses nothing: SSRF rules, Retry-After, 410, ordering, slow destinations,
//! and SIGKILL at random moments under load.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::*;

#[test]
fn a_private_destination_address_is_refused_at_startup_without_an_egress_allowance() {
    let dir = tempfile::tempdir().unwrap();
    let config = SERVER
        .replace("{PORT}", "0")
        .replace("{ADMIN_PORT}", "0")
        .replace("allow_private = [\"127.0.0.0/8\"]", "allow_private = []");
    let config =
        format!("{config}\n[destinations.meta]\nurl = \"http://169.254.169.254/latest\"\n");
    let (ok, err) = check_config(dir.path(), &config);
    assert!(!ok);
    assert!(
        err.contains("destination \"meta\": 169.254.169.254 is a link-local address; allow it with [egress] allow_private"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_name_resolving_to_loopback_is_blocked_and_dead_lettered() {
    let receiver = Receiver::start().await;
    let config = format!(
        r#"{}
[destinations.sneaky]
url = "http://localhost:{}/x"

[[routes]]
name = "in"
verify = {{ scheme = "none" }}
to = ["sneaky"]
"#,
        SERVER.replace("allow_private = [\"127.0.0.0/8\"]", "allow_private = []"),
        receiver.addr.port()
    );
    let router = Router::start(&config).expect("router starts");
    assert_eq!(post(&router, "in", &[], b"{}").await.0, 202);
    let reason = dead_letter_reason(&router).await;
    assert!(
        reason.starts_with("blocked by egress rules: localhost resolves only to blocked addresses"),
        "{reason}"
    );
    assert!(
        receiver.received().is_empty(),
        "nothing reached the loopback receiver"
    );
}

fn one_destination(url: &str, extra: &str) -> String {
    format!(
        r#"{SERVER}
[destinations.sink]
url = "{url}"
retry = {{ schedule = ["100ms", "100ms", "100ms", "100ms", "100ms", "100ms", "100ms", "100ms"] }}
{extra}

[[routes]]
name = "in"
verify = {{ scheme = "none" }}
to = ["sink"]
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_after_on_a_429_is_waited_out() {
    let receiver = Receiver::start().await;
    receiver.reply(Reply {
        status: 429,
        headers: vec![("retry-after", "2".into())],
        ..Default::default()
    });
    let router = Router::start(&one_destination(&receiver.url("/"), "")).expect("router starts");
    assert_eq!(post(&router, "in", &[], b"{}").await.0, 202);
    let got = receiver.wait_for(2, Duration::from_secs(20)).await;
    let gap = got[1].at - got[0].at;
    assert!(
        gap >= Duration::from_millis(1900),
        "retried after {gap:?}, before Retry-After's 2s"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_410_pauses_the_destination_until_it_is_resumed() {
    let receiver = Receiver::start().await;
    receiver.answer(&[410]);
    let router = Router::start(&one_destination(&receiver.url("/"), "")).expect("router starts");
    assert_eq!(post(&router, "in", &[], b"{\"n\":1}").await.0, 202);
    receiver.wait_for(1, Duration::from_secs(20)).await;
    eventually("the destination is paused", Duration::from_secs(10), || {
        router.count("SELECT COUNT(*) FROM paused_destinations") == 1
    })
    .await;
    assert_eq!(post(&router, "in", &[], b"{\"n\":2}").await.0, 202);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        receiver.received().len(),
        1,
        "nothing is sent to a paused destination"
    );
    let listed = hookyard_admin(&router, &["destinations"]);
    assert!(
        listed.contains("sink") && listed.contains("paused") && listed.contains("410 Gone"),
        "{listed}"
    );
    hookyard_admin(&router, &["destinations", "resume", "sink"]);
    let got = receiver.wait_for(3, Duration::from_secs(20)).await;
    let ns: HashSet<u64> = got[1..]
        .iter()
        .map(|r| r.json()["n"].as_u64().unwrap())
        .collect();
    assert_eq!(
        ns,
        HashSet::from([1, 2]),
        "both arrive after the resume, nothing lost"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn receiver_down_for_a_while_gets_everything_in_order_per_key() {
    let receiver = Receiver::start().await;
    receiver.answer(&[503; 6]);
    let router = Router::start(&one_destination(
        &receiver.url("/"),
        "ordering = { key = \"/customer\" }\nbreaker = { failures = 0 }",
    ))
    .expect("router starts");
    let mut sent: Vec<(String, u64)> = Vec::new();
    for n in 0..12u64 {
        let customer = if n % 3 == 0 { "cus_b" } else { "cus_a" };
        let body = format!("{{\"customer\":\"{customer}\",\"n\":{n}}}");
        assert_eq!(post(&router, "in", &[], body.as_bytes()).await.0, 202);
        sent.push((customer.to_string(), n));
    }
    eventually("all 12 delivered", Duration::from_secs(30), || {
        router.count("SELECT COUNT(*) FROM deliveries WHERE status = 'delivered'") == 12
    })
    .await;
    // The first success of each delivery, in arrival order, per customer.
    let mut seen = HashSet::new();
    let mut order: HashMap<String, Vec<u64>> = HashMap::new();
    for (r, status_ok) in receiver.received().iter().zip((0..).map(|i| i >= 6)) {
        let v = r.json();
        let n = v["n"].as_u64().unwrap();
        if status_ok && seen.insert(n) {
            order
                .entry(v["customer"].as_str().unwrap().to_string())
                .or_default()
                .push(n);
        }
    }
    for customer in ["cus_a", "cus_b"] {
        let expected: Vec<u64> = sent
            .iter()
            .filter(|(c, _)| c == customer)
            .map(|(_, n)| *n)
            .collect();
        assert_eq!(
            order[customer], expected,
            "{customer} delivered out of order"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_destination_does_not_hold_up_the_others() {
    let slow = Receiver::start().await;
    slow.delay_all(Duration::from_secs(5));
    let fast = Receiver::start().await;
    let config = format!(
        r#"{SERVER}
[destinations.slow]
url = "{}"
timeout = "10s"
concurrency = 2

[destinations.fast]
url = "{}"

[[routes]]
name = "in"
verify = {{ scheme = "none" }}
to = ["slow", "fast"]
"#,
        slow.url("/"),
        fast.url("/")
    );
    let router = Router::start(&config).expect("router starts");
    for n in 0..40 {
        assert_eq!(
            post(&router, "in", &[], format!("{{\"n\":{n}}}").as_bytes())
                .await
                .0,
            202
        );
    }
    // All 40 reach the fast destination well before the slow one could have answered twice.
    fast.wait_for(40, Duration::from_secs(4)).await;
    assert!(
        slow.received().len() <= 2,
        "the slow destination's concurrency limit holds: {}",
        slow.received().len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_at_random_moments_under_load_loses_no_acknowledged_event() {
    let receiver = Receiver::start().await;
    let config = one_destination(&receiver.url("/"), "");
    let mut router = Router::start(&config).expect("router starts");
    let acked: Arc<Mutex<Vec<u64>>> = Default::default();
    let next = Arc::new(AtomicUsize::new(0));
    let mut rng_state = 0x2545_f491_4f6c_dd1d_u64;
    for _round in 0..10 {
        let stop = Arc::new(AtomicBool::new(false));
        let mut senders = Vec::new();
        for _ in 0..4 {
            let (acked, next, stop, base) =
                (acked.clone(), next.clone(), stop.clone(), router.base());
            senders.push(tokio::spawn(async move {
                let client = reqwest::Client::new();
                while !stop.load(Ordering::Relaxed) {
                    let n = next.fetch_add(1, Ordering::Relaxed) as u64;
                    let resp = client
                        .post(format!("{base}/hooks/in"))
                        .body(format!("{{\"n\":{n}}}"))
                        .timeout(Duration::from_secs(2))
                        .send()
                        .await;
                    match resp {
                        Ok(r) if r.status() == 202 => acked.lock().unwrap().push(n),
                        Ok(_) => {}
                        Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                    }
                }
            }));
        }
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        tokio::time::sleep(Duration::from_millis(100 + rng_state % 300)).await;
        router.kill();
        stop.store(true, Ordering::Relaxed);
        for s in senders {
            let _ = s.await;
        }
        router.restart().expect("router restarts");
    }
    let acked: HashSet<u64> = acked.lock().unwrap().iter().copied().collect();
    assert!(
        acked.len() > 50,
        "the load was real: {} acknowledged",
        acked.len()
    );
    eventually(
        "every acknowledged event arrived",
        Duration::from_secs(60),
        || {
            let got: HashSet<u64> = receiver
                .received()
                .iter()
                .map(|r| r.json()["n"].as_u64().unwrap())
                .collect();
            acked.is_subset(&got)
        },
    )
    .await;
    // Duplicates are allowed (at least once), but a duplicate carries the same delivery id.
    let mut ids: HashMap<u64, HashSet<String>> = HashMap::new();
    for r in receiver.received() {
        let n = r.json()["n"].as_u64().unwrap();
        ids.entry(n)
            .or_default()
            .insert(r.header("hookyard-delivery-id").unwrap().to_string());
    }
    for (n, set) in ids {
        assert_eq!(
            set.len(),
            1,
            "event {n} arrived under several delivery ids: {set:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rate_limit_spaces_attempts_out() {
    let receiver = Receiver::start().await;
    let router = Router::start(&one_destination(&receiver.url("/"), "rate = \"5/s\""))
        .expect("router starts");
    for n in 0..10 {
        assert_eq!(
            post(&router, "in", &[], format!("{{\"n\":{n}}}").as_bytes())
                .await
                .0,
            202
        );
    }
    let got = receiver.wait_for(10, Duration::from_secs(20)).await;
    // A burst of 5, then one every 200 ms: the tenth cannot come before ~1 s after the first.
    let spread = got[9].at - got[0].at;
    assert!(
        spread >= Duration::from_millis(900),
        "10 attempts in {spread:?} despite 5/s"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_an_attempt_in_flight_finish() {
    let receiver = Receiver::start().await;
    receiver.delay_all(Duration::from_millis(1500));
    let mut router =
        Router::start(&one_destination(&receiver.url("/"), "")).expect("router starts");
    assert_eq!(post(&router, "in", &[], b"{}").await.0, 202);
    receiver.wait_for(1, Duration::from_secs(20)).await;
    // The receiver is still holding the request when the router is told to stop.
    let status = router.terminate().expect("terminates");
    assert!(status.success(), "exit status {status}");
    assert_eq!(
        router.count("SELECT COUNT(*) FROM deliveries WHERE status = 'delivered'"),
        1,
        "the attempt in flight finished and was recorded before exit"
    );
}
