//! The backlog: how much accepted work is waiting, and the bound `server.max_backlog` puts
//! on it. Ingress asks [`Backpressure::admit`] before it journals an event; a watcher
//! re-reads the store's count a few times a second (the store is the truth, shared by every
//! node on PostgreSQL), and ingress counts what it accepts in between, so a burst cannot
//! run far past the bound before the next reading.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::shutdown::Shutdown;
use crate::store::{Backlog, Millis, Store, now_ms};
use crate::telemetry::Gauge;

/// How often the watcher reads the backlog from the store.
const REFRESH: Duration = Duration::from_millis(250);

/// What a provider is told to wait before retrying a request refused for backlog.
pub const RETRY_AFTER_SECS: u64 = 5;

/// The bound on waiting work, and the latest reading of it.
pub struct Backpressure {
    limit: Option<u64>,
    waiting: AtomicU64,
}

impl Backpressure {
    /// No more than `limit` waiting (none: no bound).
    pub fn new(limit: Option<u64>) -> Backpressure {
        Backpressure {
            limit,
            waiting: AtomicU64::new(0),
        }
    }

    /// Whether ingress may accept one more event now.
    pub fn admit(&self) -> bool {
        self.limit
            .is_none_or(|limit| self.waiting.load(Ordering::Relaxed) < limit)
    }

    /// Counts an event accepted since the last reading.
    pub fn accepted(&self) {
        if self.limit.is_some() {
            self.waiting.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Re-reads the backlog from `store` until `shutdown`; does nothing without a bound.
    pub async fn watch(self: Arc<Self>, store: Arc<dyn Store>, mut shutdown: Shutdown) {
        if self.limit.is_none() {
            return;
        }
        let mut tick = tokio::time::interval(REFRESH);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.wait() => return,
            }
            match store.backlog().await {
                Ok(backlog) => self.waiting.store(backlog.ready(), Ordering::Relaxed),
                Err(e) => tracing::warn!(error = %e, "cannot read the backlog"),
            }
        }
    }
}

/// Seconds since `oldest`, for an age gauge or page (0 when nothing waits).
pub fn age_secs(oldest: Option<Millis>, now: Millis) -> u64 {
    oldest.map_or(0, |t| ((now - t).max(0) / 1000) as u64)
}

/// The backlog as gauges for `/admin/metrics`: count, ready and oldest age per route and
/// per destination.
pub fn gauges(backlog: &Backlog) -> Vec<Gauge<'_>> {
    let now = now_ms();
    let mut out = Vec::new();
    for w in &backlog.events {
        let label = vec![("route", w.name.as_str())];
        out.push(("hookyard_events_waiting", label.clone(), w.count));
        out.push((
            "hookyard_events_oldest_waiting_seconds",
            label,
            age_secs(w.oldest, now),
        ));
    }
    for w in &backlog.deliveries {
        let label = vec![("destination", w.name.as_str())];
        out.push(("hookyard_deliveries_waiting", label.clone(), w.count));
        out.push(("hookyard_deliveries_ready", label.clone(), w.ready));
        out.push((
            "hookyard_deliveries_oldest_waiting_seconds",
            label,
            age_secs(w.oldest, now),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_admits_until_the_reading_plus_new_arrivals_reach_it() {
        let open = Backpressure::new(None);
        open.accepted();
        assert!(open.admit());
        let bounded = Backpressure::new(Some(2));
        assert!(bounded.admit());
        bounded.accepted();
        assert!(bounded.admit());
        bounded.accepted();
        assert!(!bounded.admit(), "two accepted since the reading");
        bounded.waiting.store(1, Ordering::Relaxed); // the store drained one
        assert!(bounded.admit());
    }

    #[test]
    fn ages_are_whole_seconds_and_zero_when_nothing_waits() {
        assert_eq!(age_secs(None, 10_000), 0);
        assert_eq!(age_secs(Some(7_500), 10_000), 2);
        assert_eq!(age_secs(Some(20_000), 10_000), 0);
    }
}
