//! The delivery worker: takes the deliveries the dispatcher hands over (see
//! [`super::handoff`]) and claims the other due ones in batches, holds each until its
//! destination's gate lets it go, attempts it, and hands the attempt to a recorder that
//! writes many attempts per store call.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;
use tracing::Instrument as _;

use super::gate;
use super::handoff::{DeliveryInbox, Held};
use crate::alerts::{Alerter, Signal};
use crate::config::GonePolicy;
use crate::destinations::{self as destination, retry};
use crate::live::{Live, Snapshot};
use crate::shutdown::Shutdown;
use crate::store::{Attempt, AttemptOutcome, Delivery, Millis, Store, now_ms};
use crate::telemetry::Metrics;
use gate::{Admission, Gate};

/// How the pause reason of a destination that a reload removed begins (see
/// [`Job::attempt`]); a later version that configures it again resumes it.
const NOT_CONFIGURED: &str = "not in the config";

/// Most attempts recorded in one store call.
const RECORD_BATCH: usize = 512;

/// How long a claimed delivery stays ours before another worker may take it.
pub const LEASE: Duration = Duration::from_secs(300);
/// The longest one attempt may take, OAuth token fetches and the retry after a 401
/// included: well inside [`LEASE`], so an attempt never outlives the claim it runs under.
pub const ATTEMPT_DEADLINE: Duration = Duration::from_secs(280);
/// Longest wait between looks at the store when nothing wakes the worker.
const IDLE_POLL: Duration = Duration::from_secs(1);
/// While attempts are in flight, the least time between two claims that found less than a
/// full batch: deliveries gather meanwhile, so one claim (one store transaction) takes many.
/// 10 ms rather than 2 cut PostgreSQL's commits per event by a fifth in the e2e bench.
const CLAIM_SPACING: Duration = Duration::from_millis(10);
/// Most deliveries claimed in one go.
const CLAIM_BATCH: usize = 128;
/// Beyond this many deliveries waiting here for one destination, its new deliveries are
/// left in the store rather than handed over.
const HANDOFF_QUEUE: usize = 256;

/// The delivery worker of one router process.
pub struct DeliveryWorker {
    store: Arc<dyn Store>,
    live: Arc<Live>,
    alerter: Alerter,
    activity: crate::activity::Activity,
    wake: Arc<Notify>,
    gates: Arc<Mutex<Gates>>,
    metrics: Arc<Metrics>,
}

/// Each destination's gate, for one version of the config.
struct Gates {
    generation: u64,
    by_name: HashMap<String, Gate>,
}

impl Gates {
    fn for_snapshot(snapshot: &Snapshot) -> Gates {
        Gates {
            generation: snapshot.generation,
            by_name: snapshot
                .destinations
                .iter()
                .map(|(name, d)| {
                    (
                        name.clone(),
                        Gate::new(d.policy.concurrency, d.policy.rate, d.policy.breaker),
                    )
                })
                .collect(),
        }
    }
}

impl DeliveryWorker {
    /// A worker for the destinations in `live`; `wake` is notified whenever new deliveries
    /// are stored unclaimed. How many it holds at once is the number of slots of the
    /// [`DeliveryInbox`] it runs with.
    pub fn new(
        store: Arc<dyn Store>,
        live: Arc<Live>,
        wake: Arc<Notify>,
        metrics: Arc<Metrics>,
        alerter: Alerter,
        activity: crate::activity::Activity,
    ) -> DeliveryWorker {
        let gates = Gates::for_snapshot(&live.get());
        DeliveryWorker {
            store,
            live,
            alerter,
            activity,
            wake,
            gates: Arc::new(Mutex::new(gates)),
            metrics,
        }
    }

    /// After a reload, gates start afresh for the new destinations. Whether this is a new
    /// version.
    fn refresh_gates(&self, snapshot: &Snapshot) -> bool {
        if let Ok(mut gates) = self.gates.lock()
            && gates.generation != snapshot.generation
        {
            *gates = Gates::for_snapshot(snapshot);
            return true;
        }
        false
    }

    /// Resumes the destinations that were paused because a reload had removed them and that
    /// this version configures again: their parked deliveries go out.
    async fn resume_restored(&self, snapshot: &Snapshot) {
        let paused = match self.store.paused_destinations().await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "cannot list paused destinations");
                return;
            }
        };
        for (name, reason) in paused {
            if reason.starts_with(NOT_CONFIGURED) && snapshot.destinations.contains_key(&name) {
                match self.store.set_destination_paused(&name, None).await {
                    Ok(()) => {
                        tracing::info!(destination = %name, "configured again; resumed");
                        self.alerter.raise(Signal::Paused {
                            destination: name.clone(),
                            reason: None,
                        });
                    }
                    Err(e) => {
                        tracing::error!(destination = %name, error = %e, "cannot resume destination")
                    }
                }
            }
        }
    }

    /// Runs until `shutdown`, then waits up to `grace` for attempts in flight. Attempts
    /// still running after that are abandoned; their leases lapse and they run again.
    ///
    /// Every delivery held (in flight or parked) holds one of `inbox`'s slots, whether
    /// claimed here or handed over.
    pub async fn run(self, inbox: DeliveryInbox, mut shutdown: Shutdown, grace: Duration) {
        let DeliveryInbox {
            slots,
            mut incoming,
            busy,
        } = inbox;
        let (record_tx, record_rx) = mpsc::unbounded_channel();
        let recording = tokio::spawn(record_attempts(
            self.store.clone(),
            record_rx,
            self.wake.clone(),
        ));
        let mut in_flight = JoinSet::new();
        // Claimed deliveries waiting for their destination's gate (we hold their leases).
        let mut parked: HashMap<String, VecDeque<Held>> = HashMap::new();
        // When the last claim ran, and whether it came back full.
        let mut last_claim: Option<(Instant, bool)> = None;
        // Handed over while the loop waited.
        let mut handed: Vec<Held> = Vec::new();
        // Whether the store may hold deliveries to claim now: it was said to (a wake-up),
        // a due time came, or the last claim was full. Handed-over deliveries need no claim,
        // so a busy worker does not ask the store for work it already has.
        let mut look = true;
        // Whether the last claim left out deliveries (destinations that could not take
        // more, or a full batch): an attempt ending may make room for them.
        let mut starved = false;
        // When to look anyway: the next delivery falls due, or the backstop.
        let mut next_look = Instant::now();
        loop {
            while in_flight.try_join_next().is_some() {}
            let snapshot = self.live.get();
            if self.refresh_gates(&snapshot) {
                self.resume_restored(&snapshot).await;
            }
            while let Ok(batch) = incoming.try_recv() {
                handed.extend(batch);
            }
            for held in handed.drain(..) {
                self.start_or_park(&mut in_flight, &snapshot, &record_tx, &mut parked, held);
            }
            let now = Instant::now();
            if now >= next_look {
                look = true;
            }
            let mut wake_at = now + IDLE_POLL;
            // Start what the gates let through, oldest first.
            for (dest, queue) in parked.iter_mut() {
                while !queue.is_empty() {
                    match self.admit(dest, now) {
                        Admission::Go => {}
                        Admission::Wait(at) => {
                            if let Some(at) = at {
                                wake_at = wake_at.min(at);
                            }
                            break;
                        }
                    }
                    if let Some(held) = queue.pop_front() {
                        self.spawn_attempt(&mut in_flight, &snapshot, &record_tx, held);
                    }
                }
            }
            parked.retain(|_, q| !q.is_empty());
            // Destinations that cannot take more now are not claimed for. New deliveries are
            // still handed over for those that are only at their concurrency (they wait here
            // for a slot, as claimed ones would), but not for those that are rate limited,
            // have an open circuit or already have a long queue here.
            let mut skip: Vec<String> = parked.keys().cloned().collect();
            let mut not_now: Vec<String> = parked
                .iter()
                .filter(|(_, q)| q.len() >= HANDOFF_QUEUE)
                .map(|(name, _)| name.clone())
                .collect();
            if let Ok(gates) = self.gates.lock() {
                for (name, gate) in gates.by_name.iter() {
                    let mut probe = gate_view(gate);
                    if let Admission::Wait(at) = probe.check(now) {
                        if let Some(at) = at {
                            wake_at = wake_at.min(at);
                            if !not_now.contains(name) {
                                not_now.push(name.clone());
                            }
                        }
                        if !skip.contains(name) {
                            skip.push(name.clone());
                        }
                    }
                }
            }
            if let Ok(mut busy) = busy.lock() {
                *busy = not_now;
            }
            // Claimed deliveries wait in `parked` holding their leases and slots, so claim
            // no more than there are free slots.
            let limit = CLAIM_BATCH.min(slots.available_permits());
            // When no configured destination can take more, a claim could only find deliveries
            // it must skip, and looking costs the store a scan of everything waiting.
            // (With none configured, claims still run: leftovers for removed destinations are
            // parked, their destination paused.)
            let all_busy = limit == 0
                || (!snapshot.destinations.is_empty()
                    && snapshot.destinations.keys().all(|name| skip.contains(name)));
            let spaced = match last_claim {
                Some((at, full)) if !full && !in_flight.is_empty() => {
                    let next = at + CLAIM_SPACING;
                    if look {
                        wake_at = wake_at.min(next);
                    }
                    now >= next
                }
                _ => true,
            };
            // What a claim would have found for a destination that could not take it is still
            // in the store: look again once an attempt ends.
            if look && all_busy {
                starved = true;
            }
            // The slots for what the claim may find; those it does not use go back.
            let reserved = if look && spaced && !all_busy {
                u32::try_from(limit)
                    .ok()
                    .and_then(|n| slots.clone().try_acquire_many_owned(n).ok())
            } else {
                None
            };
            let claiming = reserved.is_some();
            let mut claimed = 0;
            if let Some(mut reserved) = reserved {
                match self.store.claim_deliveries(LEASE, limit, &skip).await {
                    Ok(batch) => {
                        claimed = batch.len();
                        for delivery in batch {
                            let Some(slot) = reserved.split(1) else {
                                // The store returns no more than `limit`.
                                tracing::error!(delivery = %delivery.new.id, "claimed more than asked");
                                continue;
                            };
                            let held = Held { delivery, slot };
                            self.start_or_park(
                                &mut in_flight,
                                &snapshot,
                                &record_tx,
                                &mut parked,
                                held,
                            );
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "cannot claim deliveries"),
                }
                last_claim = Some((Instant::now(), claimed == limit));
                look = claimed == limit;
                starved = claimed == limit || !skip.is_empty();
            }
            if claimed > 0 && claimed == limit && slots.available_permits() > 0 {
                continue; // more may be due right now
            }
            // Only when a claim found nothing is it worth asking when the next one falls due;
            // otherwise the attempts just started wake the loop soon enough.
            if claiming {
                let until_due = if claimed == 0 {
                    self.until_next_due(&skip).await
                } else {
                    IDLE_POLL
                };
                next_look = Instant::now() + until_due;
            }
            let wait = wake_at
                .min(next_look)
                .saturating_duration_since(Instant::now());
            tokio::select! {
                _ = self.wake.notified() => look = true,
                _ = tokio::time::sleep(wait) => {}
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => look |= starved,
                Some(batch) = incoming.recv() => handed.extend(batch),
                _ = shutdown.wait() => break,
            }
        }
        // No more hand-overs; what was handed over before this still goes out (the
        // dispatcher records its last outcomes while attempts finish).
        slots.close();
        let snapshot = self.live.get();
        let _ = tokio::time::timeout(grace, async {
            loop {
                while let Ok(batch) = incoming.try_recv() {
                    handed.extend(batch);
                }
                for held in handed.drain(..) {
                    self.spawn_attempt(&mut in_flight, &snapshot, &record_tx, held);
                }
                if in_flight.join_next().await.is_none() {
                    break;
                }
            }
        })
        .await;
        // Attempts abandoned above still hold a sender; the recorder writes what finished.
        in_flight.abort_all();
        while in_flight.join_next().await.is_some() {}
        drop(record_tx);
        let _ = recording.await;
    }

    /// Asks `dest`'s gate whether an attempt may start, and takes the slot if so.
    /// Deliveries to destinations no longer configured always go (and fail clearly).
    fn admit(&self, dest: &str, now: Instant) -> Admission {
        let Ok(mut gates) = self.gates.lock() else {
            return Admission::Go;
        };
        match gates.by_name.get_mut(dest) {
            None => Admission::Go,
            Some(gate) => {
                let admission = gate.check(now);
                if admission == Admission::Go {
                    gate.start(now);
                }
                admission
            }
        }
    }

    /// Starts `held` now if its destination's gate lets it go and nothing for that
    /// destination waits before it; parks it otherwise.
    fn start_or_park(
        &self,
        in_flight: &mut JoinSet<()>,
        snapshot: &Arc<Snapshot>,
        recorder: &mpsc::UnboundedSender<Recorded>,
        parked: &mut HashMap<String, VecDeque<Held>>,
        held: Held,
    ) {
        let dest = &held.delivery.new.destination;
        if parked.contains_key(dest) || self.admit(dest, Instant::now()) != Admission::Go {
            parked.entry(dest.clone()).or_default().push_back(held);
        } else {
            self.spawn_attempt(in_flight, snapshot, recorder, held);
        }
    }

    fn spawn_attempt(
        &self,
        in_flight: &mut JoinSet<()>,
        snapshot: &Arc<Snapshot>,
        recorder: &mpsc::UnboundedSender<Recorded>,
        held: Held,
    ) {
        let Held { delivery, slot } = held;
        let job = Job {
            store: self.store.clone(),
            recorder: recorder.clone(),
            snapshot: snapshot.clone(),
            gates: self.gates.clone(),
            metrics: self.metrics.clone(),
            alerter: self.alerter.clone(),
            activity: self.activity.clone(),
            ordered: delivery.new.ordering_key.is_some(),
            from_alert: crate::alerts::is_alert(&delivery.new.event_id),
        };
        let span = tracing::info_span!(
            target: crate::trace::TARGET,
            "delivery",
            otel.name = %format!("delivery {}", delivery.new.destination),
            otel.kind = "client",
            hookyard.destination = %delivery.new.destination,
            hookyard.delivery_id = %delivery.new.id,
            hookyard.attempt = i64::from(delivery.attempts) + 1,
            http.response.status_code = tracing::field::Empty,
            hookyard.latency_ms = tracing::field::Empty,
            hookyard.outcome = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
            otel.status_description = tracing::field::Empty,
        );
        crate::trace::join(&span, delivery.new.traceparent.as_deref());
        in_flight.spawn(
            async move {
                job.attempt(delivery).await;
                drop(slot);
            }
            .instrument(span),
        );
    }

    async fn until_next_due(&self, skip: &[String]) -> Duration {
        match self.store.next_delivery_due(skip).await {
            Ok(Some(at)) => {
                let ms = (at - now_ms()).clamp(0, IDLE_POLL.as_millis() as Millis);
                Duration::from_millis(ms as u64)
            }
            _ => IDLE_POLL,
        }
    }
}

/// `check` needs `&mut` (the token bucket refills); looking must not change the real gate.
fn gate_view(gate: &Gate) -> Gate {
    gate.clone()
}

/// The destination slot an admitted attempt holds. It is given back when dropped, so an
/// attempt that panics or is cancelled still frees it (counted as a failure) instead of
/// leaving the destination one slot short until a reload.
struct Slot {
    gates: Arc<Mutex<Gates>>,
    destination: String,
    /// Whether the destination answered as a healthy one does, for the breaker: a success,
    /// or a permanent error that is the delivery's fault (a 422, a malformed address), which
    /// must not stop every other delivery to it.
    ok: bool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        // A lock poisoned by a panic elsewhere still holds valid counts.
        let mut gates = self.gates.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(gate) = gates.by_name.get_mut(&self.destination) {
            gate.finish(self.ok, Instant::now());
        }
    }
}

/// A finished attempt on its way to the store.
struct Recorded {
    attempt: Attempt,
    outcome: AttemptOutcome,
    /// Whether writing it may let other deliveries go or changes when the next one is due
    /// (an ordered delivery, or one that is not delivered): the worker then looks at the
    /// store again.
    unblocks: bool,
}

/// What one attempt needs.
struct Job {
    store: Arc<dyn Store>,
    /// Where finished attempts go to be written (see [`record_attempts`]).
    recorder: mpsc::UnboundedSender<Recorded>,
    /// The config version the attempt runs on, whatever reloads meanwhile.
    snapshot: Arc<Snapshot>,
    gates: Arc<Mutex<Gates>>,
    metrics: Arc<Metrics>,
    /// Whether the delivery has an ordering key (later ones with its key wait for it).
    ordered: bool,
    /// Where what happened is reported for alerts.
    alerter: Alerter,
    /// Per-minute activity for the console's charts.
    activity: crate::activity::Activity,
    /// Whether it delivers an alert (which raises no alerts of its own).
    from_alert: bool,
}

impl Job {
    async fn attempt(self, delivery: Delivery) {
        let number = delivery.attempts + 1;
        let started_at = now_ms();
        let id = delivery.new.id.clone();
        let dest_name = delivery.new.destination.clone();
        let Some(dest) = self.snapshot.destinations.get(&dest_name) else {
            // A reload removed or renamed it. Its deliveries are parked, not dead-lettered:
            // the destination is paused, so nothing claims them until it is configured again
            // (then it resumes by itself) or an operator resumes or replays them.
            let reason = format!(
                "{NOT_CONFIGURED} (removed or renamed by a reload): its deliveries wait; \
                 configure it again to send them"
            );
            tracing::warn!(destination = %dest_name, %reason, "pausing destination");
            if let Err(e) = self
                .store
                .set_destination_paused(&dest_name, Some(reason.clone()))
                .await
            {
                tracing::error!(destination = %dest_name, error = %e, "cannot pause destination");
            }
            self.alerter.raise(Signal::Paused {
                destination: dest_name.clone(),
                reason: Some(reason.clone()),
            });
            let attempt = Attempt {
                delivery_id: id.clone(),
                number,
                started_at,
                status_code: None,
                latency_ms: 0,
                error: Some(format!("destination {dest_name:?} is {reason}")),
                response_body: None,
                lease: delivery.lease,
            };
            self.record(&id, &dest_name, attempt, AttemptOutcome::RetryAt(now_ms()))
                .await;
            return;
        };
        let mut slot = Slot {
            gates: self.gates.clone(),
            destination: dest_name.clone(),
            ok: false,
        };
        let result = match tokio::time::timeout(
            ATTEMPT_DEADLINE,
            dest.attempt(&self.snapshot.client, &delivery),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => destination::http::AttemptResult {
                error: Some(format!(
                    "the attempt took longer than {}s and was stopped",
                    ATTEMPT_DEADLINE.as_secs()
                )),
                latency: ATTEMPT_DEADLINE,
                ..Default::default()
            },
        };
        slot.ok = result.error.is_none() || result.permanent;
        drop(slot);
        let gone = result.status == Some(410)
            && dest.policy.gone == GonePolicy::Pause
            && matches!(dest.kind, destination::Kind::Http(_));
        let outcome = match &result.error {
            None => AttemptOutcome::Delivered,
            Some(err) if result.permanent => AttemptOutcome::Dead(err.clone()),
            Some(_) if gone => {
                let reason = format!("answered 410 Gone to delivery {id}");
                tracing::warn!(destination = %dest_name, %reason, "pausing destination");
                if let Err(e) = self
                    .store
                    .set_destination_paused(&dest_name, Some(reason.clone()))
                    .await
                {
                    tracing::error!(destination = %dest_name, error = %e, "cannot pause destination");
                }
                self.alerter.raise(Signal::Paused {
                    destination: dest_name.clone(),
                    reason: Some(reason),
                });
                // Due again at once, so it goes first when the destination is resumed.
                AttemptOutcome::RetryAt(now_ms())
            }
            Some(err) => {
                let age = Duration::from_millis((now_ms() - delivery.created_at).max(0) as u64);
                let round = delivery.attempts_in_round + 1;
                match dest.policy.retry.after_failure(
                    round,
                    result.retry_after,
                    age,
                    &mut rand::rng(),
                ) {
                    retry::Next::RetryIn(d) => {
                        AttemptOutcome::RetryAt(now_ms() + d.as_millis() as Millis)
                    }
                    retry::Next::GiveUp(reason) => {
                        AttemptOutcome::Dead(format!("{reason}; last: {err}"))
                    }
                }
            }
        };
        let attempt = Attempt {
            delivery_id: id.clone(),
            number,
            started_at,
            status_code: result.status,
            latency_ms: result.latency.as_millis() as u64,
            error: result.error,
            response_body: result.response_body,
            lease: delivery.lease,
        };
        self.record(&id, &dest_name, attempt, outcome).await;
    }

    async fn record(&self, id: &str, destination: &str, attempt: Attempt, outcome: AttemptOutcome) {
        let result = match &outcome {
            AttemptOutcome::Delivered => "delivered",
            AttemptOutcome::RetryAt(_) => "retry",
            AttemptOutcome::Dead(_) => "dead",
        };
        self.activity.attempt(
            destination,
            matches!(outcome, AttemptOutcome::Delivered),
            attempt.latency_ms,
        );
        if !self.from_alert {
            let breaker_open = self
                .gates
                .lock()
                .ok()
                .and_then(|g| {
                    g.by_name
                        .get(destination)
                        .map(|g| g.is_open(Instant::now()))
                })
                .unwrap_or(false);
            self.alerter.raise(Signal::Attempt {
                destination: destination.to_string(),
                delivered: matches!(outcome, AttemptOutcome::Delivered),
                dead: match &outcome {
                    AttemptOutcome::Dead(reason) => Some(reason.clone()),
                    _ => None,
                },
                breaker_open,
            });
        }
        let span = tracing::Span::current();
        span.record("hookyard.outcome", result);
        span.record("hookyard.latency_ms", attempt.latency_ms as i64);
        if let Some(status) = attempt.status_code {
            span.record("http.response.status_code", i64::from(status));
        }
        if let Some(error) = &attempt.error {
            span.record("otel.status_code", "ERROR");
            span.record("otel.status_description", error.as_str());
        }
        self.metrics.inc(
            "hookyard_delivery_attempts_total",
            &[("destination", destination), ("result", result)],
        );
        match &outcome {
            AttemptOutcome::Delivered => {
                tracing::debug!(delivery = %id, %destination, number = attempt.number, "delivered")
            }
            AttemptOutcome::RetryAt(_) => tracing::info!(
                delivery = %id, %destination, number = attempt.number,
                error = attempt.error.as_deref().unwrap_or(""), "attempt failed; will retry"
            ),
            AttemptOutcome::Dead(reason) => {
                tracing::warn!(delivery = %id, %destination, %reason, "dead letter")
            }
        }
        let unblocks = self.ordered || !matches!(outcome, AttemptOutcome::Delivered);
        let recorded = Recorded {
            attempt,
            outcome,
            unblocks,
        };
        if self.recorder.send(recorded).is_err() {
            tracing::error!(delivery = %id, "attempt not recorded: the worker is stopping");
        }
    }
}

/// Writes finished attempts as they come, many per store call, until every sender is gone;
/// after a write that may let other deliveries go or schedules a retry, wakes the worker.
async fn record_attempts(
    store: Arc<dyn Store>,
    mut attempts: mpsc::UnboundedReceiver<Recorded>,
    wake: Arc<Notify>,
) {
    let mut batch = Vec::with_capacity(RECORD_BATCH);
    let mut last_write: Option<Instant> = None;
    while attempts.recv_many(&mut batch, RECORD_BATCH).await > 0 {
        crate::store::gather(&mut attempts, &mut batch, RECORD_BATCH, last_write).await;
        last_write = Some(Instant::now());
        let n = batch.len();
        let unblocks = batch.iter().any(|r| r.unblocks);
        let attempts_and_outcomes = batch.drain(..).map(|r| (r.attempt, r.outcome)).collect();
        if let Err(e) = store.record_attempts(attempts_and_outcomes).await {
            // Their leases will lapse and the deliveries will be attempted again.
            tracing::error!(attempts = n, error = %e, "cannot record attempts");
        }
        if unblocks {
            wake.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BreakerConfig;

    #[tokio::test]
    async fn an_attempt_that_panics_gives_its_destination_slot_back() {
        let gates = Arc::new(Mutex::new(Gates {
            generation: 0,
            by_name: HashMap::from([(
                "crm".to_string(),
                Gate::new(1, None, BreakerConfig::default()),
            )]),
        }));
        let full = |gates: &Arc<Mutex<Gates>>| {
            let mut gates = gates.lock().unwrap_or_else(PoisonError::into_inner);
            let gate = gates.by_name.get_mut("crm").expect("gate");
            gate.check(Instant::now()) != Admission::Go
        };
        gates
            .lock()
            .unwrap()
            .by_name
            .get_mut("crm")
            .unwrap()
            .start(Instant::now());
        assert!(full(&gates), "the only slot is taken");
        let held = gates.clone();
        let attempt = tokio::spawn(async move {
            let _slot = Slot {
                gates: held,
                destination: "crm".into(),
                ok: false,
            };
            panic!("a destination's code panicked mid-attempt");
        });
        assert!(attempt.await.is_err());
        assert!(!full(&gates), "the slot came back");
    }
}
