//! Per-minute activity for the console's charts: events received and failed per route,
//! deliveries made and failed and their latency per destination, and the age of the oldest
//! waiting work; the last day, in memory on each node (what Prometheus keeps longer is on
//! `/admin/metrics`).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::shutdown::Shutdown;
use crate::store::{Millis, Store, now_ms};

/// Minutes kept.
const KEPT: usize = 24 * 60;
/// How often the backlog's age is read from the store.
const BACKLOG_SAMPLE: Duration = Duration::from_secs(10);
/// Upper bounds (ms) of the latency histogram's buckets; the last is everything slower.
const LATENCY_BOUNDS: [u64; 15] = [
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 30_000, 60_000,
];

/// What happened in one minute.
#[derive(Default, Clone)]
struct Minute {
    start: Millis,
    /// Per route: events received, events failed in plugins.
    routes: HashMap<String, (u64, u64)>,
    /// Per destination: attempts delivered, attempts failed, latency histogram.
    destinations: HashMap<String, (u64, u64, [u64; LATENCY_BOUNDS.len() + 1])>,
    /// The oldest waiting work's age seen this minute, in seconds.
    backlog_age: u64,
}

/// One point of a chart: a bucket of minutes.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Point {
    /// Bucket start (ms since the epoch).
    pub start: Millis,
    /// Events received.
    pub received: u64,
    /// Delivery attempts that delivered.
    pub delivered: u64,
    /// Failed delivery attempts, and events that failed in plugins.
    pub failed: u64,
    /// Median delivery latency (ms, bucket upper bound), when there were attempts.
    pub p50_ms: Option<u64>,
    /// 99th percentile delivery latency (ms, bucket upper bound).
    pub p99_ms: Option<u64>,
    /// Oldest waiting work's age (s), the most seen in the bucket.
    pub backlog_age_s: u64,
}

/// This node's activity by minute. Cheap to share; recording takes a short lock.
#[derive(Clone, Default)]
pub struct Activity(Arc<Mutex<VecDeque<Minute>>>);

impl Activity {
    fn with_minute(&self, f: impl FnOnce(&mut Minute)) {
        let now = now_ms();
        let start = now - now.rem_euclid(60_000);
        let Ok(mut minutes) = self.0.lock() else {
            return;
        };
        if minutes.back().is_none_or(|m| m.start != start) {
            minutes.push_back(Minute {
                start,
                ..Minute::default()
            });
            while minutes.len() > KEPT {
                minutes.pop_front();
            }
        }
        if let Some(m) = minutes.back_mut() {
            f(m);
        }
    }

    /// An event was journaled on `route`.
    pub fn received(&self, route: &str) {
        self.with_minute(|m| match m.routes.get_mut(route) {
            Some(c) => c.0 += 1,
            None => {
                m.routes.insert(route.to_string(), (1, 0));
            }
        });
    }

    /// An event of `route` failed in its plugins.
    pub fn event_failed(&self, route: &str) {
        self.with_minute(|m| m.routes.entry(route.to_string()).or_default().1 += 1);
    }

    /// An attempt to `destination` ended, delivered or not, after `latency_ms`.
    pub fn attempt(&self, destination: &str, delivered: bool, latency_ms: u64) {
        let bucket = LATENCY_BOUNDS
            .iter()
            .position(|b| latency_ms <= *b)
            .unwrap_or(LATENCY_BOUNDS.len());
        self.with_minute(|m| {
            let entry = match m.destinations.get_mut(destination) {
                Some(e) => e,
                None => m.destinations.entry(destination.to_string()).or_insert((
                    0,
                    0,
                    [0; LATENCY_BOUNDS.len() + 1],
                )),
            };
            if delivered {
                entry.0 += 1;
            } else {
                entry.1 += 1;
            }
            entry.2[bucket] += 1;
        });
    }

    /// The oldest waiting work is `secs` old.
    pub fn backlog_age(&self, secs: u64) {
        self.with_minute(|m| m.backlog_age = m.backlog_age.max(secs));
    }

    /// The last `range`, in buckets of `bucket`, oldest first. Events are counted by route
    /// and deliveries by destination: with only a route, only its events; with only a
    /// destination, only its deliveries; with both, both.
    pub fn series(
        &self,
        range: Duration,
        bucket: Duration,
        route: Option<&str>,
        destination: Option<&str>,
    ) -> Vec<Point> {
        let bucket_ms = (bucket.as_millis() as Millis).max(60_000);
        let now = now_ms();
        let first = now - range.as_millis() as Millis;
        let first = first - first.rem_euclid(bucket_ms);
        let n = ((now - first) / bucket_ms + 1) as usize;
        let mut points: Vec<Point> = (0..n)
            .map(|i| Point {
                start: first + i as Millis * bucket_ms,
                ..Point::default()
            })
            .collect();
        let mut histograms = vec![[0u64; LATENCY_BOUNDS.len() + 1]; n];
        let Ok(minutes) = self.0.lock() else {
            return points;
        };
        for m in minutes.iter().filter(|m| m.start >= first) {
            let i = ((m.start - first) / bucket_ms) as usize;
            let Some(p) = points.get_mut(i) else { continue };
            if destination.is_none() || route.is_some() {
                for (name, (received, failed)) in &m.routes {
                    if route.is_none_or(|r| r == name) {
                        p.received += received;
                        p.failed += failed;
                    }
                }
            }
            if route.is_none() || destination.is_some() {
                for (name, (delivered, failed, h)) in &m.destinations {
                    if destination.is_none_or(|d| d == name) {
                        p.delivered += delivered;
                        p.failed += failed;
                        for (sum, c) in histograms[i].iter_mut().zip(h) {
                            *sum += c;
                        }
                    }
                }
            }
            p.backlog_age_s = p.backlog_age_s.max(m.backlog_age);
        }
        for (p, h) in points.iter_mut().zip(&histograms) {
            p.p50_ms = percentile(h, 0.50);
            p.p99_ms = percentile(h, 0.99);
        }
        points
    }
}

/// The upper bound of the bucket holding the `q` quantile (the slowest bucket reads as
/// its lower bound: "more than a minute").
fn percentile(histogram: &[u64; LATENCY_BOUNDS.len() + 1], q: f64) -> Option<u64> {
    let total: u64 = histogram.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, c) in histogram.iter().enumerate() {
        seen += c;
        if seen >= rank {
            return Some(
                LATENCY_BOUNDS
                    .get(i)
                    .copied()
                    .unwrap_or(LATENCY_BOUNDS[LATENCY_BOUNDS.len() - 1]),
            );
        }
    }
    None
}

/// Reads the age of the oldest waiting work into `activity` until `shutdown`.
pub async fn sample_backlog(activity: Activity, store: Arc<dyn Store>, mut shutdown: Shutdown) {
    let mut tick = tokio::time::interval(BACKLOG_SAMPLE);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait() => return,
        }
        if let Ok(backlog) = store.backlog().await {
            let now = now_ms();
            let oldest = backlog
                .events
                .iter()
                .map(|w| w.oldest)
                .chain(
                    backlog
                        .deliveries
                        .iter()
                        .filter(|w| w.ready > 0)
                        .map(|w| w.oldest),
                )
                .flatten()
                .min();
            activity.backlog_age(crate::backlog::age_secs(oldest, now));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_land_in_the_current_minute_and_filter_by_route_and_destination() {
        let a = Activity::default();
        a.received("shop");
        a.received("shop");
        a.received("github");
        a.event_failed("github");
        a.attempt("crm", true, 40);
        a.attempt("crm", true, 40);
        a.attempt("crm", false, 900);
        a.attempt("chat", true, 3);
        let last = |p: Vec<Point>| p.last().cloned().expect("a point");
        let all = last(a.series(
            Duration::from_secs(3600),
            Duration::from_secs(60),
            None,
            None,
        ));
        assert_eq!(all.received, 3);
        assert_eq!(all.delivered, 3);
        assert_eq!(all.failed, 2, "one failed attempt, one failed event");
        assert_eq!(all.p50_ms, Some(50));
        assert_eq!(all.p99_ms, Some(1000));
        let shop = last(a.series(
            Duration::from_secs(3600),
            Duration::from_secs(60),
            Some("shop"),
            None,
        ));
        assert_eq!((shop.received, shop.delivered, shop.failed), (2, 0, 0));
        let crm = last(a.series(
            Duration::from_secs(3600),
            Duration::from_secs(60),
            None,
            Some("crm"),
        ));
        assert_eq!((crm.delivered, crm.failed), (2, 1));
        let day = a.series(
            Duration::from_secs(24 * 3600),
            Duration::from_secs(15 * 60),
            None,
            None,
        );
        assert!(day.len() >= 96 && day.len() <= 98, "{}", day.len());
        assert_eq!(day.iter().map(|p| p.received).sum::<u64>(), 3);
    }
}
