//! `[alerts]`: who is told when deliveries start dying, and of what.

use serde::Deserialize;
use toml::Spanned;

use super::Dur;

/// The internal route alerts are events of: not a name a configured route can have
/// (route names are letters, digits, `-`, `_` and `.`).
pub const ALERTS_ROUTE: &str = "@alerts";

/// `[alerts]`: conditions to watch and where alerts go (ordinary destinations).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// Destinations each alert is delivered to, with their usual retries.
    pub to: Vec<Spanned<String>>,
    /// Conditions that raise alerts. Default: all of them.
    #[serde(default = "Condition::all")]
    pub on: Vec<Condition>,
    /// Plugins an alert runs through before delivery (e.g. a `template` step that writes a
    /// chat message); without, destinations get the alert as
    /// `application/vnd.hookyard.alert+json`.
    #[serde(default)]
    pub steps: Vec<Spanned<String>>,
    /// At most one alert per condition and subject (a destination, a route) this often;
    /// what happens meanwhile is counted into the next. Default `10m`.
    #[serde(default = "default_debounce")]
    pub debounce: Dur,
    /// `backlog_age` fires when the oldest waiting event or ready delivery is older than
    /// this. Default `5m`.
    #[serde(default = "default_backlog_age")]
    pub backlog_age: Dur,
    /// `plugin_failing` fires when at least this share of a route's events failed in its
    /// plugins within `window` (and at least 5 ran). Default `0.5`.
    #[serde(default = "default_failure_rate")]
    pub plugin_failure_rate: f64,
    /// The window `plugin_failing` counts over. Default `5m`.
    #[serde(default = "default_window")]
    pub window: Dur,
    /// `poll_failing` fires after this many failed polls of a source in a row. Default 3.
    #[serde(default = "default_poll_failures")]
    pub poll_failures: u32,
}

/// A condition an alert can be raised for.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// A delivery became a dead letter; clears when its destination delivers again.
    DeadLetter,
    /// A destination was paused (a 410, a reload that removed it, or by hand); clears when
    /// it is resumed.
    DestinationPaused,
    /// A destination's circuit breaker opened; clears when it closes.
    BreakerOpen,
    /// Work waits longer than `backlog_age`; clears when it no longer does.
    BacklogAge,
    /// A route's plugins fail at least `plugin_failure_rate` of its events; clears below.
    PluginFailing,
    /// A polled source failed `poll_failures` times in a row; clears at the next success.
    PollFailing,
}

impl Condition {
    /// Every condition.
    pub fn all() -> Vec<Condition> {
        vec![
            Condition::DeadLetter,
            Condition::DestinationPaused,
            Condition::BreakerOpen,
            Condition::BacklogAge,
            Condition::PluginFailing,
            Condition::PollFailing,
        ]
    }

    /// The name used in config, alerts and the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::DeadLetter => "dead_letter",
            Condition::DestinationPaused => "destination_paused",
            Condition::BreakerOpen => "breaker_open",
            Condition::BacklogAge => "backlog_age",
            Condition::PluginFailing => "plugin_failing",
            Condition::PollFailing => "poll_failing",
        }
    }
}

fn default_debounce() -> Dur {
    Dur(std::time::Duration::from_secs(600))
}

fn default_backlog_age() -> Dur {
    Dur(std::time::Duration::from_secs(300))
}

fn default_failure_rate() -> f64 {
    0.5
}

fn default_window() -> Dur {
    Dur(std::time::Duration::from_secs(300))
}

fn default_poll_failures() -> u32 {
    3
}
