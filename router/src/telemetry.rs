//! Counters an operator can scrape: requests per route and outcome, events processed and
//! failed, plugin time and fuel, delivery attempts per destination and result. Rendered in
//! the Prometheus text format by `GET /admin/metrics`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Each metric's series: its label pairs rendered `k="v",...`, and the value.
type Series = BTreeMap<String, u64>;

/// A value read at scrape time: name, labels, value.
pub type Gauge<'a> = (&'static str, Vec<(&'a str, &'a str)>, u64);

/// The router's counters. Cheap to bump from any task.
#[derive(Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<&'static str, Series>>,
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

/// Writes `k="v",...` with the values escaped as the text format asks.
fn write_labels(out: &mut String, pairs: &[(&str, &str)]) {
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
}

thread_local! {
    /// Where [`Metrics::add`] renders a series' labels to look it up: a counter bumped
    /// several times per event allocates only the first time its series appears.
    static LABELS: RefCell<String> = const { RefCell::new(String::new()) };
}

impl Metrics {
    /// Adds `by` to the counter `name` with these labels.
    pub fn add(&self, name: &'static str, pairs: &[(&str, &str)], by: u64) {
        LABELS.with_borrow_mut(|labels| {
            labels.clear();
            write_labels(labels, pairs);
            if let Ok(mut c) = self.counters.lock() {
                let series = c.entry(name).or_default();
                match series.get_mut(labels.as_str()) {
                    Some(value) => *value += by,
                    None => {
                        series.insert(labels.clone(), by);
                    }
                }
            }
        });
    }

    /// Adds one.
    pub fn inc(&self, name: &'static str, pairs: &[(&str, &str)]) {
        self.add(name, pairs, 1);
    }

    /// The Prometheus text format, with `gauges` (name, labels, value) appended.
    pub fn render(&self, gauges: &[Gauge<'_>]) -> String {
        let mut all: BTreeMap<&'static str, Series> =
            self.counters.lock().map(|c| c.clone()).unwrap_or_default();
        for (name, pairs, value) in gauges {
            let mut labels = String::new();
            write_labels(&mut labels, pairs);
            all.entry(name).or_default().insert(labels, *value);
        }
        let mut out = String::new();
        let mut last = "";
        for (name, labels, value) in all
            .iter()
            .flat_map(|(name, series)| series.iter().map(move |(l, v)| (*name, l, v)))
        {
            if name != last {
                let help = HELP.iter().find(|(n, _)| *n == name).map_or("", |(_, h)| h);
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
