//! The behaviour every [`Store`] backend must show, as one suite of checks.
//!
//! A backend's tests call [`run_all`] with a factory that opens a fresh, empty store.

use std::future::Future;
use std::time::Duration;

use super::*;

/// A small event for tests.
pub fn sample_event(id: &str, dedup_key: Option<&str>) -> NewEvent {
    NewEvent {
        id: id.to_string(),
        route: "github".to_string(),
        received_at: now_ms(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: br#"{"ok":true}"#.to_vec(),
        event_type: Some("push".into()),
        dedup_key: dedup_key.map(str::to_string),
    }
}

fn delivery(id: &str, event_id: &str) -> NewDelivery {
    NewDelivery {
        id: id.to_string(),
        event_id: event_id.to_string(),
        destination: "chat".to_string(),
        body: b"{}".to_vec(),
        headers: vec![("x-a".into(), "1".into())],
        content_type: Some("application/json".into()),
    }
}

const LONG: Duration = Duration::from_secs(600);
const NONE: Duration = Duration::from_millis(0);

/// Runs every check, each on a fresh store from `open` (the `G` keeps e.g. a temp dir alive).
pub async fn run_all<S, G, F, Fut>(open: F)
where
    S: Store,
    F: Fn() -> Fut,
    Fut: Future<Output = (S, G)>,
{
    let (s, _g) = open().await;
    appended_event_reads_back_whole(&s).await;
    let (s, _g) = open().await;
    duplicate_dedup_key_is_reported_not_stored(&s).await;
    let (s, _g) = open().await;
    leased_events_are_not_claimed_until_the_lease_ends(&s).await;
    let (s, _g) = open().await;
    finishing_creates_deliveries_once(&s).await;
    let (s, _g) = open().await;
    failed_event_keeps_its_reason(&s).await;
    let (s, _g) = open().await;
    deliveries_move_through_retry_to_delivered_and_dead(&s).await;
    let (s, _g) = open().await;
    concurrent_appends_all_land(s).await;
}

async fn appended_event_reads_back_whole<S: Store>(s: &S) {
    let ev = sample_event("evt_1", Some("github:abc"));
    assert_eq!(
        s.append_event(ev.clone(), LONG).await.unwrap(),
        Appended::Stored
    );
    let got = s.event("evt_1").await.unwrap().expect("stored");
    assert_eq!(got.event, ev);
    assert_eq!(got.status, EventStatus::Received);
    assert!(s.event("evt_nope").await.unwrap().is_none());
}

async fn duplicate_dedup_key_is_reported_not_stored<S: Store>(s: &S) {
    s.append_event(sample_event("evt_1", Some("k")), LONG)
        .await
        .unwrap();
    let dup = s
        .append_event(sample_event("evt_2", Some("k")), LONG)
        .await
        .unwrap();
    assert_eq!(
        dup,
        Appended::Duplicate {
            original: "evt_1".into()
        }
    );
    assert!(s.event("evt_2").await.unwrap().is_none());
    // No key: never a duplicate.
    assert_eq!(
        s.append_event(sample_event("evt_3", None), LONG)
            .await
            .unwrap(),
        Appended::Stored
    );
    assert_eq!(
        s.append_event(sample_event("evt_4", None), LONG)
            .await
            .unwrap(),
        Appended::Stored
    );
}

async fn leased_events_are_not_claimed_until_the_lease_ends<S: Store>(s: &S) {
    s.append_event(sample_event("evt_held", None), LONG)
        .await
        .unwrap();
    s.append_event(sample_event("evt_free", None), NONE)
        .await
        .unwrap();
    let claimed = s.claim_events(LONG, 10).await.unwrap();
    let ids: Vec<_> = claimed.iter().map(|e| e.event.id.as_str()).collect();
    assert_eq!(ids, ["evt_free"]);
    // Claimed now, so a second claim gets nothing.
    assert!(s.claim_events(LONG, 10).await.unwrap().is_empty());
}

async fn finishing_creates_deliveries_once<S: Store>(s: &S) {
    s.append_event(sample_event("evt_1", None), NONE)
        .await
        .unwrap();
    let outcome =
        EventOutcome::Processed(vec![delivery("dlv_1", "evt_1"), delivery("dlv_2", "evt_1")]);
    s.finish_event("evt_1", outcome.clone()).await.unwrap();
    // A second finish (another worker, a replayed claim) changes nothing.
    s.finish_event(
        "evt_1",
        EventOutcome::Processed(vec![delivery("dlv_3", "evt_1")]),
    )
    .await
    .unwrap();
    let got = s.event("evt_1").await.unwrap().unwrap();
    assert_eq!(got.status, EventStatus::Processed);
    let ds = s
        .deliveries(DeliveryFilter {
            event_id: Some("evt_1".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let ids: Vec<_> = ds.iter().map(|d| d.new.id.as_str()).collect();
    assert_eq!(ids, ["dlv_1", "dlv_2"]);
    assert_eq!(ds[0].new, delivery("dlv_1", "evt_1"));
    assert_eq!(ds[0].status, DeliveryStatus::Pending);
    assert!(
        s.claim_events(NONE, 10).await.unwrap().is_empty(),
        "processed events are not claimable"
    );
}

async fn failed_event_keeps_its_reason<S: Store>(s: &S) {
    s.append_event(sample_event("evt_1", None), NONE)
        .await
        .unwrap();
    s.finish_event("evt_1", EventOutcome::Failed("plugin x trapped".into()))
        .await
        .unwrap();
    let got = s.event("evt_1").await.unwrap().unwrap();
    assert_eq!(got.status, EventStatus::Failed);
    assert_eq!(got.error.as_deref(), Some("plugin x trapped"));
}

async fn deliveries_move_through_retry_to_delivered_and_dead<S: Store>(s: &S) {
    s.append_event(sample_event("evt_1", None), NONE)
        .await
        .unwrap();
    s.finish_event(
        "evt_1",
        EventOutcome::Processed(vec![
            delivery("dlv_ok", "evt_1"),
            delivery("dlv_bad", "evt_1"),
        ]),
    )
    .await
    .unwrap();
    let claimed = s.claim_deliveries(LONG, 10).await.unwrap();
    assert_eq!(claimed.len(), 2);
    assert!(
        s.claim_deliveries(LONG, 10).await.unwrap().is_empty(),
        "leased"
    );
    let attempt = |id: &str, n: u32, code: Option<u16>, err: Option<&str>| Attempt {
        delivery_id: id.into(),
        number: n,
        started_at: now_ms(),
        status_code: code,
        latency_ms: 3,
        error: err.map(str::to_string),
    };
    // dlv_ok: fails once, due at once, then delivered.
    s.record_attempt(
        attempt("dlv_ok", 1, Some(500), Some("HTTP 500")),
        AttemptOutcome::RetryAt(now_ms() - 1),
    )
    .await
    .unwrap();
    // dlv_bad: retry far in the future, so not claimable now.
    let later = now_ms() + 3_600_000;
    s.record_attempt(
        attempt("dlv_bad", 1, None, Some("refused")),
        AttemptOutcome::RetryAt(later),
    )
    .await
    .unwrap();
    assert!(s.next_delivery_due().await.unwrap().unwrap() <= now_ms());
    let again = s.claim_deliveries(LONG, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].new.id, "dlv_ok");
    assert_eq!(again[0].status, DeliveryStatus::Retrying);
    assert_eq!(again[0].attempts, 1);
    assert_eq!(again[0].last_error.as_deref(), Some("HTTP 500"));
    s.record_attempt(
        attempt("dlv_ok", 2, Some(200), None),
        AttemptOutcome::Delivered,
    )
    .await
    .unwrap();
    assert_eq!(s.next_delivery_due().await.unwrap(), Some(later));
    s.record_attempt(
        attempt("dlv_bad", 2, None, Some("refused")),
        AttemptOutcome::Dead("gave up after 2 attempts".into()),
    )
    .await
    .unwrap();
    let dead = s
        .deliveries(DeliveryFilter {
            status: Some(DeliveryStatus::Dead),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].last_error.as_deref(),
        Some("gave up after 2 attempts")
    );
    let attempts = s.attempts("dlv_ok").await.unwrap();
    assert_eq!(
        attempts.iter().map(|a| a.status_code).collect::<Vec<_>>(),
        [Some(500), Some(200)]
    );
    assert_eq!(attempts[0].error.as_deref(), Some("HTTP 500"));
    assert_eq!(s.next_delivery_due().await.unwrap(), None);
}

async fn concurrent_appends_all_land<S: Store>(s: S) {
    let s = std::sync::Arc::new(s);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.append_event(
                sample_event(&format!("evt_{i}"), Some(&format!("k{}", i % 150))),
                LONG,
            )
            .await
            .unwrap()
        }));
    }
    let mut stored = 0;
    for t in tasks {
        if t.await.unwrap() == Appended::Stored {
            stored += 1;
        }
    }
    assert_eq!(
        stored, 150,
        "each dedup key stored once, the rest reported duplicate"
    );
}
