//! Counters an operator can scrape: requests per route and outcome, events processed and
//! failed, plugin time and fuel, delivery attempts per destination and result. Rendered in
//! the Prometheus text format by `GET /admin/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// A metric's name and its label pairs, rendered `name{k="v",...}`.
type Key = (&'static str, String);

/// A value read at scrape time: name, labels, value.
pub type Gauge<'a> = (&'static str, Vec<(&'a str, &'a str)>, u64);

/// The router's counters. Cheap to bump from any task.
#[derive(Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<Key, u64>>,
}

/// What each counter means, for the `# HELP` lines.
const HELP: [(&str, &str); 13] = [
    (
        "hookyard_requests_total",
        "Webhook requests by route and outcome.",
    ),
    (
        "hookyard_events_total",
        "Events run through their plugins, by route and result.",
    ),
    (
        "hookyard_plugin_microseconds_total",
        "Time spent in plugins, by route.",
    ),
    (
        "hookyard_plugin_fuel_total",
        "Fuel burned in plugins, by route.",
    ),
    (
        "hookyard_delivery_attempts_total",
        "Delivery attempts by destination and result.",
    ),
    (
        "hookyard_deliveries",
        "Deliveries in the store by status (read at scrape time).",
    ),
    (
        "hookyard_events_waiting",
        "Events not yet through their plugins, by route.",
    ),
    (
        "hookyard_events_oldest_waiting_seconds",
        "Age of the oldest event not yet through its plugins, by route.",
    ),
    (
        "hookyard_deliveries_waiting",
        "Deliveries pending or retrying, by destination.",
    ),
    (
        "hookyard_deliveries_ready",
        "Deliveries due now to a destination that is not paused, by destination.",
    ),
    (
        "hookyard_deliveries_oldest_waiting_seconds",
        "Age of the oldest delivery pending or retrying, by destination.",
    ),
    (
        "hookyard_events_queued_in_store_total",
        "Events the in-memory queue had no room for, claimed from the store instead, by route.",
    ),
    (
        "hookyard_store_commits_total",
        "Transactions the store has committed (PostgreSQL: the whole database's).",
    ),
];

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect::<Vec<_>>()
        .join(",")
}

impl Metrics {
    /// Adds `by` to the counter `name` with these labels.
    pub fn add(&self, name: &'static str, pairs: &[(&str, &str)], by: u64) {
        if let Ok(mut c) = self.counters.lock() {
            *c.entry((name, labels(pairs))).or_default() += by;
        }
    }

    /// Adds one.
    pub fn inc(&self, name: &'static str, pairs: &[(&str, &str)]) {
        self.add(name, pairs, 1);
    }

    /// The Prometheus text format, with `gauges` (name, labels, value) appended.
    pub fn render(&self, gauges: &[Gauge<'_>]) -> String {
        let mut all: BTreeMap<Key, u64> =
            self.counters.lock().map(|c| c.clone()).unwrap_or_default();
        for (name, pairs, value) in gauges {
            all.insert((name, labels(pairs)), *value);
        }
        let mut out = String::new();
        let mut last = "";
        for ((name, labels), value) in &all {
            if *name != last {
                let help = HELP.iter().find(|(n, _)| n == name).map_or("", |(_, h)| h);
                let kind = if name.ends_with("_total") {
                    "counter"
                } else {
                    "gauge"
                };
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
                last = name;
            }
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text_with_escaped_labels() {
        let m = Metrics::default();
        m.inc(
            "hookyard_requests_total",
            &[("route", "gh"), ("outcome", "accepted")],
        );
        m.add(
            "hookyard_requests_total",
            &[("route", "gh"), ("outcome", "accepted")],
            2,
        );
        m.inc(
            "hookyard_requests_total",
            &[("route", "a\"b"), ("outcome", "rejected")],
        );
        let text = m.render(&[("hookyard_deliveries", vec![("status", "dead")], 4)]);
        assert!(
            text.contains("# TYPE hookyard_requests_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("hookyard_requests_total{route=\"gh\",outcome=\"accepted\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("hookyard_requests_total{route=\"a\\\"b\",outcome=\"rejected\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "# TYPE hookyard_deliveries gauge\nhookyard_deliveries{status=\"dead\"} 4\n"
            ),
            "{text}"
        );
    }
}
