//! Dispatch: a journaled event goes through its route's plugin chain, and each output
//! becomes one durable delivery job per destination.
//!
//! Events arrive from ingress in memory (the fast path, see [`Handoff`]) and, for anything
//! that path missed (a full queue, a restart, another node's lapsed lease), from the store:
//! claimed in batches as soon as ingress says there is such work, and every second as a
//! backstop. Outcomes are written in batches too (one store call for many events).
//!
//! Chains run on their own runtime (see [`PluginRuntime`]): a plugin that imports nothing
//! that waits is called synchronously and may hold its thread for up to its `timeout`, and
//! that must never be a thread that accepts webhooks or makes deliveries.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tracing::Instrument as _;

use crate::alerts::{Alerter, Signal};
use crate::delivery::DeliveryHandoff;
use crate::live::{Live, Routes};
use crate::pipeline::{self, bindings::Event};
use crate::shutdown::Shutdown;
use crate::store::{EventOutcome, FinishedEvent, NewDelivery, NewEvent, RunRecord, Store, new_id};
use crate::telemetry::Metrics;

const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// How long an event whose run met store trouble waits before it runs again.
const STORE_TROUBLE_RETRY: Duration = Duration::from_secs(5);

/// The runtime plugin chains run on: one worker per event processed at once, so a plugin
/// running to its timeout never delays ingress, the admin API or deliveries.
pub struct PluginRuntime(Option<tokio::runtime::Runtime>);

impl PluginRuntime {
    /// Starts `concurrency` worker threads named `hookyard-plugins`.
    pub fn start(concurrency: usize) -> std::io::Result<PluginRuntime> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(concurrency.max(1))
            .thread_name("hookyard-plugins")
            .enable_all()
            .build()?;
        Ok(PluginRuntime(Some(runtime)))
    }

    /// Where to spawn chains.
    pub fn handle(&self) -> tokio::runtime::Handle {
        match &self.0 {
            Some(rt) => rt.handle().clone(),
            None => unreachable!("the runtime is only taken on drop"),
        }
    }
}

impl Drop for PluginRuntime {
    fn drop(&mut self) {
        // Dropped from async code (the router's future ends or is cancelled): a plain drop
        // would block on the workers, which Tokio forbids there. Chains still running are
        // abandoned; their events' leases lapse and they run again.
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// Most events claimed from the store in one go.
const CLAIM_BATCH: usize = 256;
/// Most chain outcomes recorded in one store call.
const FINISH_BATCH: usize = 512;
/// Most events run but not yet recorded: when the store falls behind, chains wait rather
/// than outcomes pile up in memory.
const UNRECORDED_LIMIT: usize = 4 * FINISH_BATCH;

/// How ingress hands a journaled event to the dispatcher.
///
/// Ingress reserves a slot in the in-memory queue *before* it journals the event. With a
/// slot, the event is journaled leased to this node and sent through the slot: the
/// dispatcher gets it without a store round trip. Without one (the queue is full), it is
/// journaled unleased, and the dispatcher is woken to claim it from the store as soon as a
/// worker is free. Either way a durable event is processed promptly; leases only recover
/// the work of a node that died.
#[derive(Clone)]
pub struct Handoff {
    queue: mpsc::Sender<NewEvent>,
    wake: Arc<Notify>,
}

impl Handoff {
    /// A hand-off with room for `capacity` events in memory, and the dispatcher's end of it.
    pub fn new(capacity: usize) -> (Handoff, Inbox) {
        let (queue, incoming) = mpsc::channel(capacity.max(1));
        let wake = Arc::new(Notify::new());
        (
            Handoff {
                queue,
                wake: wake.clone(),
            },
            Inbox { incoming, wake },
        )
    }

    /// A slot in the in-memory queue, if one is free.
    pub fn reserve(&self) -> Option<mpsc::OwnedPermit<NewEvent>> {
        self.queue.clone().try_reserve_owned().ok()
    }

    /// A slot in the in-memory queue, waiting up to `wait` for one to free up.
    pub async fn reserve_within(&self, wait: Duration) -> Option<mpsc::OwnedPermit<NewEvent>> {
        if let Some(slot) = self.reserve() {
            return Some(slot);
        }
        if wait.is_zero() {
            return None;
        }
        tokio::time::timeout(wait, self.queue.clone().reserve_owned())
            .await
            .ok()?
            .ok()
    }

    /// Tells the dispatcher that the store holds an event nobody has claimed.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// What [`Handoff::wake`] notifies, for others who learn of such events (another node).
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }
}

/// The dispatcher's end of a [`Handoff`].
pub struct Inbox {
    incoming: mpsc::Receiver<NewEvent>,
    wake: Arc<Notify>,
}

/// Runs events through plugins and records their deliveries.
pub struct Dispatcher {
    store: Arc<dyn Store>,
    live: Arc<Live>,
    delivery_wake: Arc<Notify>,
    deliveries: DeliveryHandoff,
    alerter: Alerter,
    activity: crate::activity::Activity,
    concurrency: usize,
    metrics: Arc<Metrics>,
    plugins: tokio::runtime::Handle,
    event_lease: Duration,
}

/// What a chain task hands to the recorder.
struct Done {
    finished: FinishedEvent,
    /// One of [`UNRECORDED_LIMIT`], given back once the outcome is written.
    unrecorded: OwnedSemaphorePermit,
}

impl Dispatcher {
    /// A dispatcher running up to `concurrency` events at once on `plugins` (see
    /// [`PluginRuntime`]), claiming events it finds in the store for `event_lease`. It
    /// creates as many new deliveries as the worker has room for claimed and hands them over
    /// through `deliveries`, and notifies `delivery_wake` when it stores others.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn Store>,
        live: Arc<Live>,
        delivery_wake: Arc<Notify>,
        deliveries: DeliveryHandoff,
        alerter: Alerter,
        activity: crate::activity::Activity,
        concurrency: usize,
        metrics: Arc<Metrics>,
        plugins: tokio::runtime::Handle,
        event_lease: Duration,
    ) -> Self {
        Dispatcher {
            store,
            live,
            delivery_wake,
            deliveries,
            alerter,
            activity,
            concurrency: concurrency.max(1),
            metrics,
            plugins,
            event_lease,
        }
    }

    /// Processes events from `inbox` and from the store until `shutdown`, then lets the
    /// events in flight finish (plugins have their own timeouts) and records them.
    ///
    /// A chain holds one of `concurrency` workers only while it runs; its outcome goes to a
    /// recorder that writes the outcomes of many events in one store call.
    pub async fn run(self, inbox: Inbox, mut shutdown: Shutdown) {
        let Inbox { mut incoming, wake } = inbox;
        let permits = Arc::new(Semaphore::new(self.concurrency));
        let unrecorded = Arc::new(Semaphore::new(UNRECORDED_LIMIT));
        let active: Arc<Mutex<HashSet<String>>> = Default::default();
        let (done_tx, done_rx) = mpsc::unbounded_channel::<Done>();
        let recording = tokio::spawn(record_outcomes(
            self.store.clone(),
            done_rx,
            active.clone(),
            self.delivery_wake.clone(),
            self.deliveries.clone(),
        ));
        let mut tasks = JoinSet::new();
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        // Whether the store may hold events that are ready and unclaimed.
        let mut look = true;
        loop {
            while tasks.try_join_next().is_some() {}
            let mut batch: Vec<NewEvent> = Vec::new();
            if look && !shutdown.is_fired() {
                match self.store.claim_events(self.event_lease, CLAIM_BATCH).await {
                    Ok(events) => {
                        look = events.len() == CLAIM_BATCH;
                        batch.extend(events.into_iter().map(|e| e.event));
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot claim events");
                        look = false;
                    }
                }
                while let Ok(ev) = incoming.try_recv() {
                    batch.push(ev);
                }
            } else {
                tokio::select! {
                    biased;
                    _ = shutdown.wait() => break,
                    ev = incoming.recv() => match ev {
                        Some(ev) => batch.push(ev),
                        None => break,
                    },
                    _ = wake.notified() => look = true,
                    _ = sweep.tick() => look = true,
                }
            }
            for event in batch {
                if !active
                    .lock()
                    .map(|mut a| a.insert(event.id.clone()))
                    .unwrap_or(false)
                {
                    continue; // already being processed here
                }
                let Ok(pending) = unrecorded.clone().acquire_owned().await else {
                    break;
                };
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let live = self.live.clone();
                let metrics = self.metrics.clone();
                let alerter = self.alerter.clone();
                let activity = self.activity.clone();
                let done = done_tx.clone();
                tasks.spawn_on(
                    async move {
                        // The event finishes on the version it started with, whatever reloads.
                        let snapshot = live.get();
                        let route = event.route.clone();
                        let finished = run_event(&snapshot.routes, &metrics, event).await;
                        drop(permit);
                        let failed = match &finished.outcome {
                            EventOutcome::Failed(reason) => Some(reason.clone()),
                            _ => None,
                        };
                        if failed.is_some() {
                            activity.event_failed(&route);
                        }
                        alerter.raise(Signal::Ran { route, failed });
                        let _ = done.send(Done {
                            finished,
                            unrecorded: pending,
                        });
                    },
                    &self.plugins,
                );
            }
        }
        while tasks.join_next().await.is_some() {}
        drop(done_tx);
        let _ = recording.await;
    }
}

/// Writes chain outcomes as they come, many per store call, until every sender is gone.
/// The new deliveries the worker has room for are created claimed and handed to it.
async fn record_outcomes(
    store: Arc<dyn Store>,
    mut done: mpsc::UnboundedReceiver<Done>,
    active: Arc<Mutex<HashSet<String>>>,
    delivery_wake: Arc<Notify>,
    deliveries: DeliveryHandoff,
) {
    let mut batch = Vec::with_capacity(FINISH_BATCH);
    let mut last_write: Option<std::time::Instant> = None;
    while done.recv_many(&mut batch, FINISH_BATCH).await > 0 {
        crate::store::gather(&mut done, &mut batch, FINISH_BATCH, last_write).await;
        last_write = Some(std::time::Instant::now());
        let created: usize = batch
            .iter()
            .map(|d| d.finished.outcome.parts().3.len())
            .sum();
        let ids: Vec<String> = batch.iter().map(|d| d.finished.id.clone()).collect();
        let (finished, held): (Vec<_>, Vec<_>) =
            batch.drain(..).map(|d| (d.finished, d.unrecorded)).unzip();
        let reserved = deliveries.reserve(created);
        let mut handed = 0;
        match store
            .finish_events(finished, reserved.as_ref().map(|r| r.claim()))
            .await
        {
            Ok(claimed) => {
                handed = claimed.len();
                if let Some(reserved) = reserved {
                    deliveries.hand_over(reserved, claimed);
                }
            }
            // Their leases lapse and they are processed again.
            Err(e) => {
                tracing::error!(events = ids.len(), error = %e, "cannot record event outcomes")
            }
        }
        drop(held);
        if let Ok(mut a) = active.lock() {
            for id in &ids {
                a.remove(id);
            }
        }
        if handed < created {
            delivery_wake.notify_one();
        }
    }
}

/// Runs one event through its chain: the outcome to record, counted in `metrics`.
pub async fn run_event(routes: &Routes, metrics: &Metrics, event: NewEvent) -> FinishedEvent {
    let id = event.id.clone();
    let route_name = event.route.clone();
    let span = tracing::info_span!(
        target: crate::trace::TARGET,
        "process",
        hookyard.event_id = %id,
        hookyard.route = %route_name,
        hookyard.deliveries = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
        otel.status_description = tracing::field::Empty,
    );
    crate::trace::join(&span, event.traceparent.as_deref());
    // The deliveries' attempts join the trace under this span.
    let traceparent = crate::trace::traceparent(&span);
    let mut run = RunRecord::default();
    let outcome = match routes.get(&route_name) {
        None => EventOutcome::Failed(format!("route {route_name:?} is no longer configured")),
        Some(route) => {
            // A shadowed route runs the candidate chain on the same event, after the live one;
            // its outputs are only compared (see `crate::shadow`).
            let shadow_copy = route.shadow.as_ref().map(|_| into_wit(event.clone()));
            let chain = pipeline::run_chain(&route.steps, &into_wit(event))
                .instrument(span.clone())
                .await;
            if let (Some(shadow), Some(copy)) = (&route.shadow, &shadow_copy) {
                let candidate = pipeline::run_chain(&shadow.steps, copy)
                    .instrument(
                        tracing::info_span!(target: crate::trace::TARGET, parent: &span, "shadow"),
                    )
                    .await;
                let verdict = shadow.board.record(&id, &chain, &candidate);
                metrics.inc(
                    "hookyard_shadow_events_total",
                    &[
                        ("route", route_name.as_str()),
                        ("verdict", verdict.as_str()),
                    ],
                );
            }
            run = RunRecord {
                elapsed_us: chain.stats.elapsed_us,
                fuel: chain.stats.fuel,
                dropped: chain.stats.dropped,
            };
            match chain.result {
                Err(e) if e.is_transient() => EventOutcome::RetryLater {
                    reason: format!("{e}; runs again in {}s", STORE_TROUBLE_RETRY.as_secs()),
                    at: crate::store::now_ms() + STORE_TROUBLE_RETRY.as_millis() as i64,
                },
                Err(e) => EventOutcome::Failed(e.to_string()),
                Ok(outputs) => match deliveries_for(route, &id, traceparent, outputs) {
                    Ok(deliveries) => EventOutcome::Processed(deliveries),
                    Err(message) => EventOutcome::Failed(message),
                },
            }
        }
    };
    let result = match (&outcome, &run.dropped) {
        (EventOutcome::Failed(_), _) => "failed",
        (EventOutcome::RetryLater { .. }, _) => "retry",
        (EventOutcome::Processed(_), Some(_)) => "dropped",
        (EventOutcome::Processed(_), None) => "processed",
    };
    match &outcome {
        EventOutcome::Processed(d) => {
            span.record("hookyard.deliveries", d.len() as i64);
        }
        EventOutcome::Failed(reason) | EventOutcome::RetryLater { reason, .. } => {
            span.record("otel.status_code", "ERROR");
            span.record("otel.status_description", reason.as_str());
        }
    }
    let route_label = [("route", route_name.as_str())];
    metrics.inc(
        "hookyard_events_total",
        &[("route", &route_name), ("result", result)],
    );
    metrics.add(
        "hookyard_plugin_microseconds_total",
        &route_label,
        run.elapsed_us,
    );
    metrics.add("hookyard_plugin_fuel_total", &route_label, run.fuel);
    match &outcome {
        EventOutcome::Processed(d) => {
            tracing::debug!(event = %id, deliveries = d.len(), fuel = run.fuel, us = run.elapsed_us, "processed")
        }
        EventOutcome::Failed(reason) => tracing::warn!(event = %id, %reason, "event failed"),
        EventOutcome::RetryLater { reason, .. } => {
            tracing::warn!(event = %id, %reason, "event not finished; it runs again")
        }
    }
    FinishedEvent { id, outcome, run }
}

/// The value at `pointer` in a JSON body, as text: strings as they are, others as JSON.
fn ordering_key(body: &[u8], pointer: &str) -> Option<String> {
    let doc: serde_json::Value = serde_json::from_slice(body).ok()?;
    match doc.pointer(pointer)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// The event as plugins see it; the body and headers move, not copy.
fn into_wit(event: NewEvent) -> Event {
    Event {
        id: event.id,
        route: event.route,
        received_at: event.received_at.max(0) as u64,
        headers: event.headers,
        body: event.body,
        event_type: event.event_type,
    }
}

fn deliveries_for(
    route: &crate::live::Route,
    event_id: &str,
    traceparent: Option<String>,
    outputs: Vec<pipeline::Routed>,
) -> Result<Vec<NewDelivery>, String> {
    let mut deliveries = Vec::new();
    for routed in outputs {
        let targets: Vec<&str> = match &routed.destination {
            Some(d) => vec![d.as_str()],
            None => route.to.iter().map(String::as_str).collect(),
        };
        for dest in targets {
            let Some(ordering) = route.destinations.get(dest) else {
                return Err(format!(
                    "an output was routed to unknown destination {dest:?}"
                ));
            };
            deliveries.push(NewDelivery {
                ordering_key: ordering
                    .as_deref()
                    .and_then(|p| ordering_key(&routed.output.body, p)),
                id: new_id("dlv"),
                event_id: event_id.to_string(),
                destination: dest.to_string(),
                body: routed.output.body.clone(),
                headers: routed.output.headers.clone(),
                content_type: routed.output.content_type.clone(),
                method: routed.output.method.clone(),
                path: routed.output.path.clone(),
                traceparent: traceparent.clone(),
            });
        }
    }
    Ok(deliveries)
}
