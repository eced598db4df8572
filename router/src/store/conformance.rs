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
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
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
        ordering_key: None,
        method: Some("PATCH".into()),
        path: Some("/contacts/ada%40example.com?upsert=1".into()),
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-01".into()),
    }
}

fn attempt(id: &str, n: u32, code: Option<u16>, err: Option<&str>) -> Attempt {
    Attempt {
        delivery_id: id.into(),
        number: n,
        started_at: now_ms(),
        status_code: code,
        latency_ms: 3,
        error: err.map(str::to_string),
        response_body: code.map(|c| format!("status {c}").into_bytes()),
        lease: 0,
    }
}

/// [`attempt`] made under the lease that holds delivery `id` now, as the worker holding it
/// would make it.
async fn attempt_on<S: Store>(
    s: &S,
    id: &str,
    n: u32,
    code: Option<u16>,
    err: Option<&str>,
) -> Attempt {
    let lease = s.delivery(id).await.unwrap().map_or(0, |d| d.lease);
    Attempt {
        lease,
        ..attempt(id, n, code, err)
    }
}

/// Takes `events` new events (ids `<prefix>_<n>`) along the path the router takes under
/// load: appended, finished in one batch with one delivery each, created claimed, and those
/// deliveries' attempts recorded in one batch. For checks of what that path costs a backend.
pub async fn deliver_batch<S: Store>(s: &S, prefix: &str, events: usize) {
    let ids: Vec<String> = (0..events).map(|n| format!("{prefix}_{n}")).collect();
    for id in &ids {
        s.append_event(sample_event(id, None), LONG, WINDOW)
            .await
            .unwrap();
    }
    let finished = ids
        .iter()
        .map(|id| FinishedEvent {
            id: id.clone(),
            outcome: EventOutcome::Processed(vec![delivery(&format!("dlv_{id}"), id)]),
            run: RunRecord::default(),
        })
        .collect();
    let claim = ClaimNew {
        lease: LONG,
        limit: events,
        skip: Vec::new(),
    };
    let claimed = s.finish_events(finished, Some(claim)).await.unwrap();
    assert_eq!(claimed.len(), events, "every new delivery claimed");
    let mut attempts = Vec::with_capacity(events);
    for d in &claimed {
        let attempt = Attempt {
            lease: d.lease,
            ..attempt(&d.new.id, 1, Some(202), None)
        };
        attempts.push((attempt, AttemptOutcome::Delivered));
    }
    s.record_attempts(attempts).await.unwrap();
    for d in &claimed {
        let now = s.delivery(&d.new.id).await.unwrap().unwrap();
        assert_eq!(now.status, DeliveryStatus::Delivered, "{}", d.new.id);
    }
}

const LONG: Duration = Duration::from_secs(600);
const NONE: Duration = Duration::from_millis(0);
const WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

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
    ordered_deliveries_wait_for_their_head(&s).await;
    let (s, _g) = open().await;
    skipped_and_paused_destinations_are_not_claimed(&s).await;
    let (s, _g) = open().await;
    requeued_dead_letters_get_a_fresh_budget(&s).await;
    let (s, _g) = open().await;
    replayed_events_run_again_and_listings_filter(&s).await;
    let (s, _g) = open().await;
    kv_values_are_per_plugin_and_expire(&s).await;
    let (s, _g) = open().await;
    kv_increment_and_set_if_absent_respect_expiry_and_types(&s).await;
    let (s, _g) = open().await;
    concurrent_kv_increments_and_claims_never_collide(s).await;
    let (s, _g) = open().await;
    pruning_removes_only_old_finished_events_with_their_deliveries(&s).await;
    let (s, _g) = open().await;
    run_costs_and_drop_reasons_are_kept(&s).await;
    let (s, _g) = open().await;
    concurrent_appends_all_land(s).await;
    let (s, _g) = open().await;
    a_batch_of_outcomes_lands_whole_and_skips_events_already_finished(&s).await;
    let (s, _g) = open().await;
    a_batch_of_attempts_moves_each_delivery_on(&s).await;
    let (s, _g) = open().await;
    unleased_events_are_claimable_at_once_and_in_batches(&s).await;
    let (s, _g) = open().await;
    backlog_counts_waiting_work_by_route_and_destination(&s).await;
    let (s, _g) = open().await;
    an_event_to_retry_later_waits_then_is_claimed_again(&s).await;
    let (s, _g) = open().await;
    only_the_claim_that_holds_a_delivery_records_its_attempt(&s).await;
    let (s, _g) = open().await;
    new_deliveries_can_be_created_claimed_by_the_finisher(&s).await;
}

async fn new_deliveries_can_be_created_claimed_by_the_finisher<S: Store>(s: &S) {
    for id in ["evt_1", "evt_2", "evt_gone"] {
        s.append_event(sample_event(id, None), LONG, WINDOW)
            .await
            .unwrap();
    }
    s.set_destination_paused("paused", Some("by hand".into()))
        .await
        .unwrap();
    // evt_gone was finished elsewhere: its deliveries are neither created nor claimed.
    s.finish_event(
        "evt_gone",
        EventOutcome::Failed("first".into()),
        RunRecord::default(),
    )
    .await
    .unwrap();
    let to = |id: &str, event: &str, dest: &str, key: Option<&str>| NewDelivery {
        destination: dest.into(),
        ordering_key: key.map(str::to_string),
        ..delivery(id, event)
    };
    let processed = |id: &str, deliveries: Vec<NewDelivery>| FinishedEvent {
        id: id.into(),
        outcome: EventOutcome::Processed(deliveries),
        run: RunRecord::default(),
    };
    let before = now_ms();
    let claimed = s
        .finish_events(
            vec![
                processed(
                    "evt_1",
                    vec![
                        to("d1", "evt_1", "crm", None),
                        to("d2", "evt_1", "crm", Some("cus_1")),
                        to("d3", "evt_1", "paused", None),
                    ],
                ),
                processed("evt_gone", vec![to("g1", "evt_gone", "crm", None)]),
                processed(
                    "evt_2",
                    vec![
                        to("s1", "evt_2", "skipped", None),
                        to("d4", "evt_2", "chat", None),
                        to("d5", "evt_2", "chat", None),
                        to("d6", "evt_2", "chat", None),
                    ],
                ),
            ],
            Some(ClaimNew {
                lease: LONG,
                limit: 3,
                skip: vec!["skipped".into()],
            }),
        )
        .await
        .unwrap();
    let ids: Vec<&str> = claimed.iter().map(|d| d.new.id.as_str()).collect();
    // Not the ordered one, not the paused or skipped destination's, no more than the limit.
    assert_eq!(ids, ["d1", "d4", "d5"]);
    for d in &claimed {
        let stored = s.delivery(&d.new.id).await.unwrap().unwrap();
        assert_eq!(d, &stored, "what was handed back is what is stored");
        assert!(
            d.lease >= before + LONG.as_millis() as Millis,
            "held under the lease"
        );
        assert_eq!(d.status, DeliveryStatus::Pending);
    }
    assert!(s.delivery("g1").await.unwrap().is_none());
    // Claimed ones are not claimed again; the rest are claimable as usual.
    let rest = s.claim_deliveries(LONG, 10, &[]).await.unwrap();
    let rest: Vec<&str> = rest.iter().map(|d| d.new.id.as_str()).collect();
    assert_eq!(
        rest,
        ["d2", "s1", "d6"],
        "d3 waits: its destination is paused"
    );
    // An attempt under the creation lease records like any claimed one.
    let held = &claimed[0];
    s.record_attempt(
        Attempt {
            lease: held.lease,
            ..attempt("d1", 1, Some(200), None)
        },
        AttemptOutcome::Delivered,
    )
    .await
    .unwrap();
    let d1 = s.delivery("d1").await.unwrap().unwrap();
    assert_eq!(d1.status, DeliveryStatus::Delivered);
    assert_eq!(d1.lease, 0);
}

async fn only_the_claim_that_holds_a_delivery_records_its_attempt<S: Store>(s: &S) {
    processed_with(s, "evt_f", vec![delivery("dlv_f", "evt_f")]).await;
    // A first claim whose lease lapses (an attempt that hung), then a second claim.
    let first = s.claim_deliveries(NONE, 1, &[]).await.unwrap().remove(0);
    tokio::time::sleep(Duration::from_millis(5)).await;
    let second = s.claim_deliveries(LONG, 1, &[]).await.unwrap().remove(0);
    assert_ne!(first.lease, second.lease, "each claim has its own lease");
    // "Retry now" leaves a delivery with an attempt in flight alone.
    let by_id = DeliveryFilter {
        id: Some("dlv_f".into()),
        ..Default::default()
    };
    assert_eq!(s.requeue_deliveries(by_id).await.unwrap(), 0);
    // The second claim's attempt succeeds...
    let ok = Attempt {
        lease: second.lease,
        ..attempt("dlv_f", 1, Some(200), None)
    };
    s.record_attempt(ok, AttemptOutcome::Delivered)
        .await
        .unwrap();
    // ...and the first claim's late failure changes nothing.
    let late = Attempt {
        lease: first.lease,
        ..attempt("dlv_f", 1, Some(500), Some("HTTP 500"))
    };
    s.record_attempt(late, AttemptOutcome::RetryAt(now_ms()))
        .await
        .unwrap();
    let d = s.delivery("dlv_f").await.unwrap().unwrap();
    assert_eq!(d.status, DeliveryStatus::Delivered);
    assert_eq!(d.attempts, 1);
    assert_eq!(d.lease, 0, "released");
    let recorded = s.attempts("dlv_f").await.unwrap();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].status_code, Some(200));
}

async fn an_event_to_retry_later_waits_then_is_claimed_again<S: Store>(s: &S) {
    for id in ["evt_soon", "evt_later"] {
        s.append_event(sample_event(id, None), NONE, WINDOW)
            .await
            .unwrap();
    }
    assert_eq!(s.claim_events(LONG, 10).await.unwrap().len(), 2);
    let retry = |id: &str, at: Millis| FinishedEvent {
        id: id.into(),
        outcome: EventOutcome::RetryLater {
            reason: "plugin \"p\" could not use the store".into(),
            at,
        },
        run: RunRecord::default(),
    };
    s.finish_events(
        vec![
            retry("evt_soon", now_ms() - 1),
            retry("evt_later", now_ms() + 3_600_000),
        ],
        None,
    )
    .await
    .unwrap();
    let later = s.event("evt_later").await.unwrap().unwrap();
    assert_eq!(later.status, EventStatus::Received, "not failed");
    assert_eq!(
        later.error.as_deref(),
        Some("plugin \"p\" could not use the store")
    );
    let claimed = s.claim_events(LONG, 10).await.unwrap();
    let ids: Vec<_> = claimed.iter().map(|e| e.event.id.as_str()).collect();
    assert_eq!(ids, ["evt_soon"], "only the one whose time has come");
    // Its next run finishes it for good, and the error goes.
    s.finish_event(
        "evt_soon",
        EventOutcome::Processed(Vec::new()),
        RunRecord::default(),
    )
    .await
    .unwrap();
    let soon = s.event("evt_soon").await.unwrap().unwrap();
    assert_eq!(soon.status, EventStatus::Processed);
    assert_eq!(soon.error, None);
}

async fn a_batch_of_outcomes_lands_whole_and_skips_events_already_finished<S: Store>(s: &S) {
    for id in ["evt_a", "evt_b", "evt_c"] {
        s.append_event(sample_event(id, None), LONG, WINDOW)
            .await
            .unwrap();
    }
    // evt_c was finished elsewhere first: its outcome here is ignored, deliveries and all.
    s.finish_event(
        "evt_c",
        EventOutcome::Failed("first".into()),
        RunRecord::default(),
    )
    .await
    .unwrap();
    let finished = vec![
        FinishedEvent {
            id: "evt_a".into(),
            outcome: EventOutcome::Processed(vec![
                delivery("dlv_a1", "evt_a"),
                delivery("dlv_a2", "evt_a"),
            ]),
            run: RunRecord {
                elapsed_us: 7,
                fuel: 9,
                dropped: None,
            },
        },
        FinishedEvent {
            id: "evt_b".into(),
            outcome: EventOutcome::Failed("plugin \"x\" trapped".into()),
            run: RunRecord::default(),
        },
        FinishedEvent {
            id: "evt_c".into(),
            outcome: EventOutcome::Processed(vec![delivery("dlv_c1", "evt_c")]),
            run: RunRecord::default(),
        },
    ];
    assert!(s.finish_events(finished, None).await.unwrap().is_empty());
    s.finish_events(Vec::new(), None).await.unwrap();
    let a = s.event("evt_a").await.unwrap().unwrap();
    assert_eq!(a.status, EventStatus::Processed);
    assert_eq!(a.run.elapsed_us, 7);
    let b = s.event("evt_b").await.unwrap().unwrap();
    assert_eq!(b.status, EventStatus::Failed);
    assert_eq!(b.error.as_deref(), Some("plugin \"x\" trapped"));
    let c = s.event("evt_c").await.unwrap().unwrap();
    assert_eq!(
        c.error.as_deref(),
        Some("first"),
        "the first outcome stands"
    );
    let all = s.deliveries(DeliveryFilter::default()).await.unwrap();
    let ids: Vec<&str> = all.iter().map(|d| d.new.id.as_str()).collect();
    assert_eq!(ids, ["dlv_a1", "dlv_a2"]);
    assert_eq!(all[0].new, delivery("dlv_a1", "evt_a"), "every column kept");
    assert!(all.iter().all(|d| d.status == DeliveryStatus::Pending));
}

async fn a_batch_of_attempts_moves_each_delivery_on<S: Store>(s: &S) {
    processed_with(
        s,
        "evt_1",
        vec![
            delivery("ok", "evt_1"),
            delivery("later", "evt_1"),
            delivery("dead", "evt_1"),
        ],
    )
    .await;
    assert_eq!(s.claim_deliveries(LONG, 10, &[]).await.unwrap().len(), 3);
    let retry_at = now_ms() + 60_000;
    s.record_attempts(vec![
        (
            attempt_on(s, "ok", 1, Some(200), None).await,
            AttemptOutcome::Delivered,
        ),
        (
            attempt_on(s, "later", 1, Some(503), Some("503")).await,
            AttemptOutcome::RetryAt(retry_at),
        ),
        (
            attempt_on(s, "dead", 1, Some(400), Some("400")).await,
            AttemptOutcome::Dead("rejected".into()),
        ),
    ])
    .await
    .unwrap();
    s.record_attempts(Vec::new()).await.unwrap();
    let ok = s.delivery("ok").await.unwrap().unwrap();
    assert_eq!((ok.status, ok.attempts), (DeliveryStatus::Delivered, 1));
    let later = s.delivery("later").await.unwrap().unwrap();
    assert_eq!(later.status, DeliveryStatus::Retrying);
    assert_eq!(later.next_attempt_at, retry_at);
    assert_eq!(later.last_error.as_deref(), Some("503"));
    let dead = s.delivery("dead").await.unwrap().unwrap();
    assert_eq!(dead.status, DeliveryStatus::Dead);
    assert_eq!(dead.last_error.as_deref(), Some("rejected"));
    let attempts = s.attempts("later").await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].status_code, Some(503));
    assert_eq!(
        attempts[0].response_body.as_deref(),
        Some(&b"status 503"[..])
    );
    // Leases were released: the retrying one is claimable once due, not before.
    assert!(s.claim_deliveries(LONG, 10, &[]).await.unwrap().is_empty());
}

async fn unleased_events_are_claimable_at_once_and_in_batches<S: Store>(s: &S) {
    for i in 0..5 {
        s.append_event(sample_event(&format!("evt_{i}"), None), NONE, WINDOW)
            .await
            .unwrap();
    }
    s.append_event(sample_event("evt_leased", None), LONG, WINDOW)
        .await
        .unwrap();
    let first = s.claim_events(LONG, 3).await.unwrap();
    let ids: Vec<&str> = first.iter().map(|e| e.event.id.as_str()).collect();
    assert_eq!(ids, ["evt_0", "evt_1", "evt_2"], "oldest first");
    let second = s.claim_events(LONG, 3).await.unwrap();
    let ids: Vec<&str> = second.iter().map(|e| e.event.id.as_str()).collect();
    assert_eq!(
        ids,
        ["evt_3", "evt_4"],
        "claimed ones and leased ones are skipped"
    );
    assert!(s.claim_events(LONG, 3).await.unwrap().is_empty());
}

async fn backlog_counts_waiting_work_by_route_and_destination<S: Store>(s: &S) {
    assert_eq!(s.backlog().await.unwrap(), Backlog::default());
    let mut old = sample_event("evt_old", None);
    old.received_at -= 5_000;
    let oldest = old.received_at;
    s.append_event(old, LONG, WINDOW).await.unwrap();
    s.append_event(sample_event("evt_new", None), LONG, WINDOW)
        .await
        .unwrap();
    let mut other = sample_event("evt_other", None);
    other.route = "stripe".into();
    s.append_event(other, LONG, WINDOW).await.unwrap();
    let backlog = s.backlog().await.unwrap();
    assert_eq!(backlog.events.len(), 2);
    assert_eq!(backlog.events[0].name, "github");
    assert_eq!((backlog.events[0].count, backlog.events[0].ready), (2, 2));
    assert_eq!(backlog.events[0].oldest, Some(oldest));
    assert_eq!(backlog.events[1].name, "stripe");
    assert!(backlog.deliveries.is_empty());
    assert_eq!(backlog.ready(), 3);

    let mut mail = delivery("dlv_mail", "evt_done");
    mail.destination = "mail".into();
    processed_with(
        s,
        "evt_done",
        vec![
            delivery("dlv_1", "evt_done"),
            delivery("dlv_2", "evt_done"),
            mail,
        ],
    )
    .await;
    // One chat delivery waits out a retry delay; mail is paused: neither is ready.
    assert_eq!(s.claim_deliveries(LONG, 1, &[]).await.unwrap().len(), 1);
    s.record_attempt(
        attempt_on(s, "dlv_1", 1, Some(503), Some("503")).await,
        AttemptOutcome::RetryAt(now_ms() + 60_000),
    )
    .await
    .unwrap();
    s.set_destination_paused("mail", Some("by hand".into()))
        .await
        .unwrap();
    let backlog = s.backlog().await.unwrap();
    assert_eq!(backlog.events.len(), 2, "evt_done is not waiting");
    assert_eq!((backlog.events[0].count, backlog.events[0].ready), (2, 2));
    let names: Vec<&str> = backlog.deliveries.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, ["chat", "mail"]);
    assert_eq!(
        (backlog.deliveries[0].count, backlog.deliveries[0].ready),
        (2, 1)
    );
    assert_eq!(
        (backlog.deliveries[1].count, backlog.deliveries[1].ready),
        (1, 0)
    );
    assert!(backlog.deliveries[0].oldest.is_some());
    assert_eq!(backlog.ready(), 4);
}

async fn appended_event_reads_back_whole<S: Store>(s: &S) {
    s.ping().await.unwrap();
    let ev = sample_event("evt_1", Some("github:abc"));
    assert_eq!(
        s.append_event(ev.clone(), LONG, WINDOW).await.unwrap(),
        Appended::Stored
    );
    let got = s.event("evt_1").await.unwrap().expect("stored");
    assert_eq!(got.event, ev);
    assert_eq!(got.status, EventStatus::Received);
    assert!(s.event("evt_nope").await.unwrap().is_none());
}

async fn duplicate_dedup_key_is_reported_not_stored<S: Store>(s: &S) {
    // Outside the window, the same key is a new event.
    let mut old = sample_event("evt_old", Some("k"));
    old.received_at -= 8 * 24 * 3600 * 1000;
    assert_eq!(
        s.append_event(old, LONG, WINDOW).await.unwrap(),
        Appended::Stored
    );
    s.append_event(sample_event("evt_1", Some("k")), LONG, WINDOW)
        .await
        .unwrap();
    let dup = s
        .append_event(sample_event("evt_2", Some("k")), LONG, WINDOW)
        .await
        .unwrap();
    assert_eq!(
        dup,
        Appended::Duplicate {
            original: "evt_1".into()
        }
    );
    assert!(s.event("evt_2").await.unwrap().is_none());
    assert_eq!(
        s.event("evt_1").await.unwrap().unwrap().duplicates,
        1,
        "the original counts its duplicates"
    );
    // No key: never a duplicate.
    assert_eq!(
        s.append_event(sample_event("evt_3", None), LONG, WINDOW)
            .await
            .unwrap(),
        Appended::Stored
    );
    assert_eq!(
        s.append_event(sample_event("evt_4", None), LONG, WINDOW)
            .await
            .unwrap(),
        Appended::Stored
    );
}

async fn leased_events_are_not_claimed_until_the_lease_ends<S: Store>(s: &S) {
    s.append_event(sample_event("evt_held", None), LONG, WINDOW)
        .await
        .unwrap();
    s.append_event(sample_event("evt_free", None), NONE, WINDOW)
        .await
        .unwrap();
    let claimed = s.claim_events(LONG, 10).await.unwrap();
    let ids: Vec<_> = claimed.iter().map(|e| e.event.id.as_str()).collect();
    assert_eq!(ids, ["evt_free"]);
    // Claimed now, so a second claim gets nothing.
    assert!(s.claim_events(LONG, 10).await.unwrap().is_empty());
}

async fn finishing_creates_deliveries_once<S: Store>(s: &S) {
    s.append_event(sample_event("evt_1", None), NONE, WINDOW)
        .await
        .unwrap();
    let outcome =
        EventOutcome::Processed(vec![delivery("dlv_1", "evt_1"), delivery("dlv_2", "evt_1")]);
    s.finish_event("evt_1", outcome.clone(), RunRecord::default())
        .await
        .unwrap();
    // A second finish (another worker, a replayed claim) changes nothing.
    s.finish_event(
        "evt_1",
        EventOutcome::Processed(vec![delivery("dlv_3", "evt_1")]),
        RunRecord::default(),
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
    s.append_event(sample_event("evt_1", None), NONE, WINDOW)
        .await
        .unwrap();
    s.finish_event(
        "evt_1",
        EventOutcome::Failed("plugin x trapped".into()),
        RunRecord::default(),
    )
    .await
    .unwrap();
    let got = s.event("evt_1").await.unwrap().unwrap();
    assert_eq!(got.status, EventStatus::Failed);
    assert_eq!(got.error.as_deref(), Some("plugin x trapped"));
}

async fn deliveries_move_through_retry_to_delivered_and_dead<S: Store>(s: &S) {
    s.append_event(sample_event("evt_1", None), NONE, WINDOW)
        .await
        .unwrap();
    s.finish_event(
        "evt_1",
        EventOutcome::Processed(vec![
            delivery("dlv_ok", "evt_1"),
            delivery("dlv_bad", "evt_1"),
        ]),
        RunRecord::default(),
    )
    .await
    .unwrap();
    let claimed = s.claim_deliveries(LONG, 10, &[]).await.unwrap();
    assert_eq!(claimed.len(), 2);
    assert!(
        s.claim_deliveries(LONG, 10, &[]).await.unwrap().is_empty(),
        "leased"
    );
    // dlv_ok: fails once, due at once, then delivered.
    s.record_attempt(
        attempt_on(s, "dlv_ok", 1, Some(500), Some("HTTP 500")).await,
        AttemptOutcome::RetryAt(now_ms() - 1),
    )
    .await
    .unwrap();
    // dlv_bad: retry far in the future, so not claimable now.
    let later = now_ms() + 3_600_000;
    s.record_attempt(
        attempt_on(s, "dlv_bad", 1, None, Some("refused")).await,
        AttemptOutcome::RetryAt(later),
    )
    .await
    .unwrap();
    assert!(s.next_delivery_due(&[]).await.unwrap().unwrap() <= now_ms());
    let again = s.claim_deliveries(LONG, 10, &[]).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].new.id, "dlv_ok");
    assert_eq!(again[0].status, DeliveryStatus::Retrying);
    assert_eq!(again[0].attempts, 1);
    assert_eq!(again[0].last_error.as_deref(), Some("HTTP 500"));
    s.record_attempt(
        attempt_on(s, "dlv_ok", 2, Some(200), None).await,
        AttemptOutcome::Delivered,
    )
    .await
    .unwrap();
    assert_eq!(s.next_delivery_due(&[]).await.unwrap(), Some(later));
    s.record_attempt(
        attempt_on(s, "dlv_bad", 2, None, Some("refused")).await,
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
    assert_eq!(
        attempts[0].response_body.as_deref(),
        Some(&b"status 500"[..])
    );
    assert_eq!(s.next_delivery_due(&[]).await.unwrap(), None);
    assert_eq!(
        s.delivery_counts().await.unwrap(),
        [(DeliveryStatus::Dead, 1), (DeliveryStatus::Delivered, 1)]
    );
}

async fn processed_with<S: Store>(s: &S, event_id: &str, deliveries: Vec<NewDelivery>) {
    s.append_event(sample_event(event_id, None), NONE, WINDOW)
        .await
        .unwrap();
    s.finish_event(
        event_id,
        EventOutcome::Processed(deliveries),
        RunRecord::default(),
    )
    .await
    .unwrap();
}

async fn ordered_deliveries_wait_for_their_head<S: Store>(s: &S) {
    let keyed = |id: &str, key: &str| NewDelivery {
        ordering_key: Some(key.into()),
        ..delivery(id, "evt_1")
    };
    processed_with(
        s,
        "evt_1",
        vec![
            keyed("a1", "cus_a"),
            keyed("b1", "cus_b"),
            keyed("a2", "cus_a"),
        ],
    )
    .await;
    let ids = |ds: Vec<Delivery>| ds.into_iter().map(|d| d.new.id).collect::<Vec<_>>();
    // a2 waits behind a1; b1 is independent.
    assert_eq!(
        ids(s.claim_deliveries(LONG, 10, &[]).await.unwrap()),
        ["a1", "b1"]
    );
    // a1 fails and is due again later: a2 still waits (its head is unfinished).
    s.record_attempt(
        attempt_on(s, "a1", 1, Some(500), Some("HTTP 500")).await,
        AttemptOutcome::RetryAt(now_ms() + 3_600_000),
    )
    .await
    .unwrap();
    assert!(s.claim_deliveries(LONG, 10, &[]).await.unwrap().is_empty());
    // a1 becomes a dead letter: a2 is released.
    s.record_attempt(
        attempt_on(s, "a1", 2, Some(500), Some("HTTP 500")).await,
        AttemptOutcome::Dead("gave up".into()),
    )
    .await
    .unwrap();
    assert_eq!(
        ids(s.claim_deliveries(LONG, 10, &[]).await.unwrap()),
        ["a2"]
    );
}

async fn skipped_and_paused_destinations_are_not_claimed<S: Store>(s: &S) {
    let to = |id: &str, dest: &str| NewDelivery {
        destination: dest.into(),
        ..delivery(id, "evt_1")
    };
    processed_with(
        s,
        "evt_1",
        vec![to("c1", "crm"), to("m1", "mail"), to("h1", "chat")],
    )
    .await;
    s.set_destination_paused("chat", Some("answered 410 Gone".into()))
        .await
        .unwrap();
    assert_eq!(
        s.paused_destinations().await.unwrap(),
        [("chat".to_string(), "answered 410 Gone".to_string())]
    );
    let names = |n: &[&str]| n.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    assert_eq!(
        s.next_delivery_due(&names(&["crm", "mail"])).await.unwrap(),
        None
    );
    assert!(
        s.next_delivery_due(&names(&["cr", "mai", "crm mail"]))
            .await
            .unwrap()
            .is_some(),
        "a skipped name matches whole names only"
    );
    let claimed = s
        .claim_deliveries(LONG, 10, &["crm".to_string()])
        .await
        .unwrap();
    assert_eq!(
        claimed
            .iter()
            .map(|d| d.new.id.as_str())
            .collect::<Vec<_>>(),
        ["m1"]
    );
    s.set_destination_paused("chat", None).await.unwrap();
    assert!(s.paused_destinations().await.unwrap().is_empty());
    let claimed = s.claim_deliveries(LONG, 10, &[]).await.unwrap();
    assert_eq!(
        claimed
            .iter()
            .map(|d| d.new.id.as_str())
            .collect::<Vec<_>>(),
        ["c1", "h1"]
    );
}

async fn requeued_dead_letters_get_a_fresh_budget<S: Store>(s: &S) {
    let to = |id: &str, dest: &str| NewDelivery {
        destination: dest.into(),
        ..delivery(id, "evt_1")
    };
    processed_with(
        s,
        "evt_1",
        vec![to("d1", "crm"), to("d2", "mail"), to("ok", "crm")],
    )
    .await;
    s.claim_deliveries(LONG, 10, &[]).await.unwrap();
    for id in ["d1", "d2"] {
        s.record_attempt(
            attempt_on(s, id, 1, Some(503), Some("HTTP 503")).await,
            AttemptOutcome::Dead("gave up".into()),
        )
        .await
        .unwrap();
    }
    s.record_attempt(
        attempt_on(s, "ok", 1, Some(200), None).await,
        AttemptOutcome::Delivered,
    )
    .await
    .unwrap();
    let filter = DeliveryFilter {
        status: Some(DeliveryStatus::Dead),
        destination: Some("crm".into()),
        ..Default::default()
    };
    assert_eq!(
        s.requeue_deliveries(filter).await.unwrap(),
        1,
        "only crm's dead letter"
    );
    let d1 = s.delivery("d1").await.unwrap().unwrap();
    assert_eq!(d1.status, DeliveryStatus::Pending);
    assert_eq!((d1.attempts, d1.attempts_in_round), (1, 0));
    assert_eq!(
        s.delivery("d2").await.unwrap().unwrap().status,
        DeliveryStatus::Dead
    );
    // A delivered one is never sent again by a requeue.
    let all = DeliveryFilter {
        event_id: Some("evt_1".into()),
        ..Default::default()
    };
    assert_eq!(s.requeue_deliveries(all).await.unwrap(), 2);
    assert_eq!(
        s.delivery("ok").await.unwrap().unwrap().status,
        DeliveryStatus::Delivered
    );
    let claimed = s.claim_deliveries(LONG, 10, &[]).await.unwrap();
    assert_eq!(claimed.len(), 2);
}

async fn replayed_events_run_again_and_listings_filter<S: Store>(s: &S) {
    let mut ev = sample_event("evt_gh", None);
    ev.body = br#"{"order":"ord_4711","ok":true}"#.to_vec();
    s.append_event(ev.clone(), NONE, WINDOW).await.unwrap();
    ev.id = "evt_stripe".into();
    ev.route = "stripe".into();
    ev.event_type = Some("invoice.paid".into());
    ev.body = br#"{"ok":true}"#.to_vec();
    ev.headers.push(("x-request-id".into(), "req_ABC".into()));
    s.append_event(ev, NONE, WINDOW).await.unwrap();
    s.finish_event(
        "evt_gh",
        EventOutcome::Processed(vec![delivery("x1", "evt_gh")]),
        RunRecord::default(),
    )
    .await
    .unwrap();
    s.finish_event(
        "evt_stripe",
        EventOutcome::Failed("plugin p trapped".into()),
        RunRecord::default(),
    )
    .await
    .unwrap();

    let all = s
        .events(EventFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["evt_stripe", "evt_gh"],
        "newest first"
    );
    assert_eq!(all[1].body_size, 30);
    let ids = |events: Vec<EventSummary>| events.into_iter().map(|e| e.id).collect::<Vec<_>>();
    let find = |f: EventFilter| async move {
        ids(s.events(EventFilter { limit: 10, ..f }).await.unwrap())
    };
    assert_eq!(
        find(EventFilter {
            event_type: Some("invoice.paid".into()),
            ..Default::default()
        })
        .await,
        ["evt_stripe"]
    );
    assert_eq!(
        find(EventFilter {
            destination: Some("chat".into()),
            ..Default::default()
        })
        .await,
        ["evt_gh"],
        "only events with a delivery to it"
    );
    assert_eq!(
        find(EventFilter {
            search: Some("ord_4711".into()),
            ..Default::default()
        })
        .await,
        ["evt_gh"],
        "found in the body"
    );
    assert_eq!(
        find(EventFilter {
            search: Some("req_ABC".into()),
            ..Default::default()
        })
        .await,
        ["evt_stripe"],
        "found in the headers"
    );
    assert!(
        find(EventFilter {
            search: Some("req_abc".into()),
            ..Default::default()
        })
        .await
        .is_empty(),
        "the search is exact"
    );
    let failed = s
        .events(EventFilter {
            status: Some(EventStatus::Failed),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].error.as_deref(), Some("plugin p trapped"));
    let page2 = s
        .events(EventFilter {
            before: Some(all[0].seq),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        page2.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["evt_gh"]
    );
    let by_route = s
        .deliveries(DeliveryFilter {
            route: Some("github".into()),
            limit: Some(10),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_route.len(), 1);
    assert!(
        s.deliveries(DeliveryFilter {
            route: Some("stripe".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .is_empty()
    );
    let future = now_ms() + 60_000;
    assert!(
        s.deliveries(DeliveryFilter {
            since: Some(future),
            ..Default::default()
        })
        .await
        .unwrap()
        .is_empty()
    );

    // Replay one event by id: it is claimable again, and finishing adds new deliveries.
    let n = s
        .replay_events(EventFilter::default(), Some(vec!["evt_gh".into()]))
        .await
        .unwrap();
    assert_eq!(n, 1);
    let claimed = s.claim_events(LONG, 10).await.unwrap();
    assert_eq!(
        claimed
            .iter()
            .map(|e| e.event.id.as_str())
            .collect::<Vec<_>>(),
        ["evt_gh"]
    );
    s.finish_event(
        "evt_gh",
        EventOutcome::Processed(vec![delivery("x2", "evt_gh")]),
        RunRecord::default(),
    )
    .await
    .unwrap();
    let ds = s
        .deliveries(DeliveryFilter {
            event_id: Some("evt_gh".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        ds.iter().map(|d| d.new.id.as_str()).collect::<Vec<_>>(),
        ["x1", "x2"]
    );
    // Replay by filter: the failed one.
    let n = s
        .replay_events(
            EventFilter {
                status: Some(EventStatus::Failed),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(
        s.event("evt_stripe").await.unwrap().unwrap().status,
        EventStatus::Received
    );
}

async fn kv_values_are_per_plugin_and_expire<S: Store>(s: &S) {
    assert_eq!(s.kv_count("p").await.unwrap(), 0);
    s.kv_set("p", "k1", b"1".to_vec(), None).await.unwrap();
    s.kv_set("p", "k1", b"2".to_vec(), None).await.unwrap();
    s.kv_set("p", "gone", b"x".to_vec(), Some(now_ms() - 1))
        .await
        .unwrap();
    s.kv_set("q", "k1", b"1".to_vec(), None).await.unwrap();
    assert_eq!(
        s.kv_count("p").await.unwrap(),
        1,
        "per plugin, live keys only"
    );
    s.kv_delete("p", "k1").await.unwrap();
    assert_eq!(s.kv_count("p").await.unwrap(), 0);
    s.kv_set("a", "k", b"1".to_vec(), None).await.unwrap();
    s.kv_set("b", "k", b"2".to_vec(), None).await.unwrap();
    assert_eq!(
        s.kv_get("a", "k").await.unwrap().as_deref(),
        Some(&b"1"[..])
    );
    assert_eq!(
        s.kv_get("b", "k").await.unwrap().as_deref(),
        Some(&b"2"[..])
    );
    s.kv_set("a", "k", b"3".to_vec(), None).await.unwrap();
    assert_eq!(
        s.kv_get("a", "k").await.unwrap().as_deref(),
        Some(&b"3"[..]),
        "set overwrites"
    );
    s.kv_set("a", "old", b"x".to_vec(), Some(now_ms() - 1))
        .await
        .unwrap();
    assert_eq!(s.kv_get("a", "old").await.unwrap(), None, "expired");
    s.kv_delete("a", "k").await.unwrap();
    assert_eq!(s.kv_get("a", "k").await.unwrap(), None);
    assert!(s.kv_get("b", "k").await.unwrap().is_some());
}

async fn kv_increment_and_set_if_absent_respect_expiry_and_types<S: Store>(s: &S) {
    assert_eq!(s.kv_increment("a", "n", 5, None).await.unwrap(), Some(5));
    assert_eq!(s.kv_increment("a", "n", -2, None).await.unwrap(), Some(3));
    assert_eq!(
        s.kv_get("a", "n").await.unwrap().as_deref(),
        Some(&b"3"[..]),
        "stored as decimal text"
    );
    assert_eq!(s.kv_increment("b", "n", 1, None).await.unwrap(), Some(1));
    s.kv_set("a", "text", b"hello".to_vec(), None)
        .await
        .unwrap();
    assert_eq!(s.kv_increment("a", "text", 1, None).await.unwrap(), None);
    assert_eq!(
        s.kv_get("a", "text").await.unwrap().as_deref(),
        Some(&b"hello"[..]),
        "a failed increment changes nothing"
    );
    s.kv_set("a", "max", i64::MAX.to_string().into_bytes(), None)
        .await
        .unwrap();
    assert_eq!(s.kv_increment("a", "max", 1, None).await.unwrap(), None);
    s.kv_set("a", "gone", b"41".to_vec(), Some(now_ms() - 1))
        .await
        .unwrap();
    assert_eq!(
        s.kv_increment("a", "gone", 1, None).await.unwrap(),
        Some(1),
        "an expired counter starts again"
    );

    let later = Some(now_ms() + 60_000);
    assert!(
        s.kv_set_if_absent("a", "once", b"1".to_vec(), later)
            .await
            .unwrap()
    );
    assert!(
        !s.kv_set_if_absent("a", "once", b"2".to_vec(), later)
            .await
            .unwrap()
    );
    assert_eq!(
        s.kv_get("a", "once").await.unwrap().as_deref(),
        Some(&b"1"[..])
    );
    assert!(
        s.kv_set_if_absent("b", "once", b"3".to_vec(), None)
            .await
            .unwrap()
    );
    s.kv_set("a", "stale", b"x".to_vec(), Some(now_ms() - 1))
        .await
        .unwrap();
    assert!(
        s.kv_set_if_absent("a", "stale", b"y".to_vec(), None)
            .await
            .unwrap(),
        "an expired key is absent"
    );
    assert_eq!(
        s.kv_get("a", "stale").await.unwrap().as_deref(),
        Some(&b"y"[..])
    );
}

async fn concurrent_kv_increments_and_claims_never_collide<S: Store>(s: S) {
    let s = std::sync::Arc::new(s);
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let n = s.kv_increment("p", "count", 1, None).await.unwrap();
            let won = s
                .kv_set_if_absent("p", "claim", b"x".to_vec(), None)
                .await
                .unwrap();
            (n, won)
        }));
    }
    let mut seen = Vec::new();
    let mut winners = 0;
    for t in tasks {
        let (n, won) = t.await.unwrap();
        seen.push(n.unwrap());
        winners += usize::from(won);
    }
    seen.sort_unstable();
    assert_eq!(
        seen,
        (1..=100).collect::<Vec<i64>>(),
        "every increment counted once"
    );
    assert_eq!(winners, 1, "exactly one claim wins");
}

async fn pruning_removes_only_old_finished_events_with_their_deliveries<S: Store>(s: &S) {
    let day = 86_400_000;
    let old = |id: &str| NewEvent {
        received_at: now_ms() - 10 * day,
        ..sample_event(id, Some(id))
    };
    for ev in [
        old("evt_done"),
        old("evt_dead"),
        old("evt_due"),
        old("evt_waiting"),
        sample_event("evt_new", None),
    ] {
        s.append_event(ev, NONE, WINDOW).await.unwrap();
    }
    let finish = |id: &'static str, deliveries: Vec<NewDelivery>| async move {
        s.finish_event(
            id,
            EventOutcome::Processed(deliveries),
            RunRecord::default(),
        )
        .await
        .unwrap();
    };
    finish("evt_done", vec![delivery("dlv_done", "evt_done")]).await;
    finish("evt_dead", vec![delivery("dlv_dead", "evt_dead")]).await;
    finish("evt_due", vec![delivery("dlv_due", "evt_due")]).await;
    finish("evt_new", vec![]).await;
    s.record_attempt(
        attempt_on(s, "dlv_done", 1, Some(200), None).await,
        AttemptOutcome::Delivered,
    )
    .await
    .unwrap();
    s.record_attempt(
        attempt_on(s, "dlv_dead", 1, Some(400), Some("HTTP 400")).await,
        AttemptOutcome::Dead("HTTP 400".into()),
    )
    .await
    .unwrap();

    let cut = now_ms() - day;
    assert_eq!(s.prune(cut, 1).await.unwrap(), 1, "the limit holds");
    assert_eq!(s.prune(cut, 100).await.unwrap(), 1);
    assert_eq!(
        s.prune(cut, 100).await.unwrap(),
        0,
        "nothing else is prunable"
    );
    for gone in ["evt_done", "evt_dead"] {
        assert!(s.event(gone).await.unwrap().is_none(), "{gone} was pruned");
    }
    for kept in ["evt_due", "evt_waiting", "evt_new"] {
        assert!(s.event(kept).await.unwrap().is_some(), "{kept} is kept");
    }
    assert!(s.delivery("dlv_done").await.unwrap().is_none());
    assert!(s.attempts("dlv_done").await.unwrap().is_empty());
    assert!(
        s.delivery("dlv_due").await.unwrap().is_some(),
        "a due delivery stays"
    );
    // A pruned event's dedup key no longer blocks a new event.
    assert_eq!(
        s.append_event(sample_event("evt_again", Some("evt_done")), NONE, WINDOW)
            .await
            .unwrap(),
        Appended::Stored
    );
}

async fn run_costs_and_drop_reasons_are_kept<S: Store>(s: &S) {
    s.append_event(sample_event("evt_1", None), NONE, WINDOW)
        .await
        .unwrap();
    let run = RunRecord {
        elapsed_us: 42,
        fuel: 123_456,
        dropped: Some("filter: not main".into()),
    };
    s.finish_event("evt_1", EventOutcome::Processed(vec![]), run.clone())
        .await
        .unwrap();
    assert_eq!(s.event("evt_1").await.unwrap().unwrap().run, run);
    let listed = s
        .events(EventFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed[0].run, run);
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
                WINDOW,
            )
            .await
            .unwrap()
        }));
    }
    let mut stored = 0;
    let mut originals = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.unwrap() {
            Appended::Stored => stored += 1,
            Appended::Duplicate { original } => originals.push((i % 150, original)),
        }
    }
    assert_eq!(
        stored, 150,
        "each dedup key stored once, the rest reported duplicate"
    );
    for (key, original) in originals {
        let first = s
            .event(&original)
            .await
            .unwrap()
            .expect("the original is stored");
        assert_eq!(
            first.event.dedup_key.as_deref(),
            Some(format!("k{key}").as_str()),
            "a duplicate names the event stored under its key"
        );
        assert!(first.duplicates >= 1);
    }
}
