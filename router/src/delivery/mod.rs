//! Delivery: claims due jobs from the store, attempts them, records every attempt, and
//! schedules the next one or declares a dead letter.
//!
//! - [`http`]: the HTTP destination (one request per attempt).
//! - [`retry`]: backoff with jitter.
//!
//! Each claim holds a lease; a router that dies mid-attempt leaves the job to be claimed
//! again once the lease runs out, so delivery is at least once. Receivers dedup on the
//! `hookyard-delivery-id` header, which is the same on every attempt.

pub mod http;
pub mod retry;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

use crate::shutdown::Shutdown;
use crate::store::{Attempt, AttemptOutcome, Delivery, Millis, Store, now_ms};
use http::HttpDestination;

/// How long a claimed delivery stays ours before another worker may take it.
pub const LEASE: Duration = Duration::from_secs(120);
/// Longest wait between looks at the store when nothing wakes the worker.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// The delivery worker of one router process.
pub struct DeliveryWorker {
    store: Arc<dyn Store>,
    destinations: Arc<HashMap<String, HttpDestination>>,
    client: reqwest::Client,
    wake: Arc<Notify>,
    concurrency: usize,
}

impl DeliveryWorker {
    /// A worker attempting up to `concurrency` deliveries at once; `wake` is notified
    /// whenever new deliveries are stored.
    pub fn new(
        store: Arc<dyn Store>,
        destinations: Arc<HashMap<String, HttpDestination>>,
        wake: Arc<Notify>,
        concurrency: usize,
    ) -> DeliveryWorker {
        DeliveryWorker {
            store,
            destinations,
            client: http::client(),
            wake,
            concurrency: concurrency.max(1),
        }
    }

    /// Runs until `shutdown`, then waits up to `grace` for attempts in flight. Attempts
    /// still running after that are abandoned; their leases expire and they run again.
    pub async fn run(self, mut shutdown: Shutdown, grace: Duration) {
        let permits = Arc::new(Semaphore::new(self.concurrency));
        let mut in_flight = JoinSet::new();
        loop {
            while in_flight.try_join_next().is_some() {}
            let free = permits.available_permits();
            let mut claimed = 0;
            if free > 0 {
                match self.store.claim_deliveries(LEASE, free.min(64)).await {
                    Ok(batch) => {
                        claimed = batch.len();
                        for delivery in batch {
                            let Ok(permit) = permits.clone().acquire_owned().await else {
                                break;
                            };
                            let job = Job {
                                store: self.store.clone(),
                                destinations: self.destinations.clone(),
                                client: self.client.clone(),
                            };
                            in_flight.spawn(async move {
                                job.attempt(delivery).await;
                                drop(permit);
                            });
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "cannot claim deliveries"),
                }
            }
            if claimed > 0 && claimed == free.min(64) {
                continue; // more may be due right now
            }
            let wait = if free == 0 {
                Duration::from_millis(20)
            } else {
                self.until_next_due().await
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.wait() => break,
            }
        }
        let _ = tokio::time::timeout(grace, async {
            while in_flight.join_next().await.is_some() {}
        })
        .await;
    }

    async fn until_next_due(&self) -> Duration {
        match self.store.next_delivery_due().await {
            Ok(Some(at)) => {
                let ms = (at - now_ms()).clamp(0, IDLE_POLL.as_millis() as Millis);
                Duration::from_millis(ms as u64)
            }
            _ => IDLE_POLL,
        }
    }
}

/// What one attempt needs.
struct Job {
    store: Arc<dyn Store>,
    destinations: Arc<HashMap<String, HttpDestination>>,
    client: reqwest::Client,
}

impl Job {
    async fn attempt(self, delivery: Delivery) {
        let number = delivery.attempts + 1;
        let started_at = now_ms();
        let id = delivery.new.id.clone();
        let (attempt, outcome) = match self.destinations.get(&delivery.new.destination) {
            None => {
                let reason = format!(
                    "destination {:?} is not configured",
                    delivery.new.destination
                );
                (
                    Attempt {
                        delivery_id: id.clone(),
                        number,
                        started_at,
                        status_code: None,
                        latency_ms: 0,
                        error: Some(reason.clone()),
                    },
                    AttemptOutcome::Dead(reason),
                )
            }
            Some(dest) => {
                let result = dest.attempt(&self.client, &delivery).await;
                let outcome = match &result.error {
                    None => AttemptOutcome::Delivered,
                    Some(err) => {
                        match retry::after_failure(&dest.retry, number, &mut rand::rng()) {
                            retry::Next::RetryIn(d) => {
                                AttemptOutcome::RetryAt(now_ms() + d.as_millis() as Millis)
                            }
                            retry::Next::GiveUp => AttemptOutcome::Dead(format!(
                                "gave up after {number} attempts; last: {err}"
                            )),
                        }
                    }
                };
                (
                    Attempt {
                        delivery_id: id.clone(),
                        number,
                        started_at,
                        status_code: result.status,
                        latency_ms: result.latency.as_millis() as u64,
                        error: result.error,
                    },
                    outcome,
                )
            }
        };
        match &outcome {
            AttemptOutcome::Delivered => {
                tracing::debug!(delivery = %id, destination = %delivery.new.destination, number, "delivered")
            }
            AttemptOutcome::RetryAt(_) => tracing::info!(
                delivery = %id, destination = %delivery.new.destination, number,
                error = attempt.error.as_deref().unwrap_or(""), "attempt failed; will retry"
            ),
            AttemptOutcome::Dead(reason) => {
                tracing::warn!(delivery = %id, destination = %delivery.new.destination, %reason, "dead letter")
            }
        }
        if let Err(e) = self.store.record_attempt(attempt, outcome).await {
            // The lease will lapse and the delivery will be attempted again.
            tracing::error!(delivery = %id, error = %e, "cannot record attempt");
        }
    }
}
