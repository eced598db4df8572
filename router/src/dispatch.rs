//! Dispatch: a journaled event goes through its route's plugin chain, and each output
//! becomes one durable delivery job per destination.
//!
//! Events arrive from ingress over a channel (the fast path) and, for anything that path
//! missed (a full channel, a restart, a lease that lapsed), from the store every second.
//!
//! Chains run on their own runtime (see [`PluginRuntime`]): a plugin that imports nothing
//! that waits is called synchronously and may hold its thread for up to its `timeout`, and
//! that must never be a thread that accepts webhooks or makes deliveries.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::app::Routes;
use crate::pipeline::{self, bindings::Event};
use crate::reload::Live;
use crate::shutdown::Shutdown;
use crate::store::{EventOutcome, NewDelivery, NewEvent, RunRecord, Store, new_id};
use crate::telemetry::Metrics;

const SWEEP_EVERY: Duration = Duration::from_secs(1);

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

/// Runs events through plugins and records their deliveries.
pub struct Dispatcher {
    store: Arc<dyn Store>,
    live: Arc<Live>,
    delivery_wake: Arc<Notify>,
    concurrency: usize,
    metrics: Arc<Metrics>,
    plugins: tokio::runtime::Handle,
    event_lease: Duration,
}

impl Dispatcher {
    /// A dispatcher running up to `concurrency` events at once on `plugins` (see
    /// [`PluginRuntime`]), claiming events it sweeps from the store for `event_lease`; it
    /// notifies `delivery_wake` whenever it stores deliveries.
    pub fn new(
        store: Arc<dyn Store>,
        live: Arc<Live>,
        delivery_wake: Arc<Notify>,
        concurrency: usize,
        metrics: Arc<Metrics>,
        plugins: tokio::runtime::Handle,
        event_lease: Duration,
    ) -> Self {
        Dispatcher {
            store,
            live,
            delivery_wake,
            concurrency: concurrency.max(1),
            metrics,
            plugins,
            event_lease,
        }
    }

    /// Processes events from `incoming` and from the store until `shutdown`, then lets the
    /// events in flight finish (plugins have their own timeouts).
    pub async fn run(self, mut incoming: mpsc::Receiver<NewEvent>, mut shutdown: Shutdown) {
        let permits = Arc::new(Semaphore::new(self.concurrency));
        let active: Arc<Mutex<HashSet<String>>> = Default::default();
        let mut tasks = JoinSet::new();
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        loop {
            let batch: Vec<NewEvent> = tokio::select! {
                ev = incoming.recv() => match ev {
                    Some(ev) => vec![ev],
                    None => break,
                },
                _ = sweep.tick() => match self.store.claim_events(self.event_lease, 256).await {
                    Ok(events) => events.into_iter().map(|e| e.event).collect(),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot claim events");
                        Vec::new()
                    }
                },
                _ = shutdown.wait() => break,
            };
            while tasks.try_join_next().is_some() {}
            for event in batch {
                if !active
                    .lock()
                    .map(|mut a| a.insert(event.id.clone()))
                    .unwrap_or(false)
                {
                    continue; // already being processed here
                }
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let job = (
                    self.store.clone(),
                    self.live.clone(),
                    self.delivery_wake.clone(),
                    active.clone(),
                    self.metrics.clone(),
                );
                tasks.spawn_on(
                    async move {
                        let (store, live, wake, active, metrics) = job;
                        let id = event.id.clone();
                        // The event finishes on the version it started with, whatever reloads.
                        let snapshot = live.get();
                        process(&*store, &snapshot.routes, &metrics, event).await;
                        wake.notify_one();
                        if let Ok(mut a) = active.lock() {
                            a.remove(&id);
                        }
                        drop(permit);
                    },
                    &self.plugins,
                );
            }
        }
        while tasks.join_next().await.is_some() {}
    }
}

/// Runs one event through its chain and stores the outcome.
pub async fn process(store: &dyn Store, routes: &Routes, metrics: &Metrics, event: NewEvent) {
    let id = event.id.clone();
    let route_name = event.route.clone();
    let mut run = RunRecord::default();
    let outcome = match routes.get(&route_name) {
        None => EventOutcome::Failed(format!("route {route_name:?} is no longer configured")),
        Some(route) => {
            let chain = pipeline::run_chain(&route.steps, &into_wit(event)).await;
            run = RunRecord {
                elapsed_us: chain.stats.elapsed_us,
                fuel: chain.stats.fuel,
                dropped: chain.stats.dropped,
            };
            match chain
                .result
                .map_err(|e| e.to_string())
                .and_then(|outputs| deliveries_for(route, &id, outputs))
            {
                Ok(deliveries) => EventOutcome::Processed(deliveries),
                Err(message) => EventOutcome::Failed(message),
            }
        }
    };
    let result = match (&outcome, &run.dropped) {
        (EventOutcome::Failed(_), _) => "failed",
        (EventOutcome::Processed(_), Some(_)) => "dropped",
        (EventOutcome::Processed(_), None) => "processed",
    };
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
    }
    if let Err(e) = store.finish_event(&id, outcome, run).await {
        // The lease lapses and the event is processed again.
        tracing::error!(event = %id, error = %e, "cannot record event outcome");
    }
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
    route: &crate::app::Route,
    event_id: &str,
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
            });
        }
    }
    Ok(deliveries)
}
