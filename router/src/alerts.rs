//! Alerts: operators are told when deliveries start dying, a destination is paused, a
//! circuit breaker opens, work waits too long, a route's plugins keep failing or a polled
//! source keeps failing; and told again when it clears.
//!
//! Stages report what they see as [`Signal`]s through an [`Alerter`] (cheap to clone, never
//! blocks). [`run`] keeps which conditions are open on this node and turns each change into
//! an alert: an ordinary event on the internal route [`ROUTE`], journaled, then run through
//! `alerts.steps` and delivered to `alerts.to` with their usual retries. Its dedup key names
//! the condition, its subject and the state and is remembered for `alerts.debounce`, so all
//! nodes together send one alert per condition, subject and state in that time; what happens
//! meanwhile is counted into the next (a reminder, if the condition is still open after the
//! debounce). Alerts about alerts are never raised.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{Notify, mpsc};

use crate::config::{AlertsConfig, Condition};
use crate::live::Live;
use crate::shutdown::Shutdown;
use crate::store::{Appended, Millis, NewEvent, Store, new_id, now_ms};

/// The internal route alerts are events of.
pub const ROUTE: &str = crate::config::ALERTS_ROUTE;

/// The content type of an alert as destinations receive it without `alerts.steps`.
pub const CONTENT_TYPE: &str = "application/vnd.hookyard.alert+json";

/// The id prefix of alert events; their deliveries raise no alerts.
pub const ID_PREFIX: &str = "alt";

/// Whether `event_id` is an alert's (its deliveries raise no alerts).
pub fn is_alert(event_id: &str) -> bool {
    event_id
        .strip_prefix(ID_PREFIX)
        .is_some_and(|rest| rest.starts_with('_'))
}

/// How often work waiting is checked for `backlog_age`.
const BACKLOG_CHECK: Duration = Duration::from_secs(5);

/// The fewest events in the window before `plugin_failing` can fire.
const MIN_EVENTS: usize = 5;

/// What a stage saw.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    /// An attempt to `destination` ended: delivered, dead (why), or neither; and whether its
    /// circuit breaker is open now.
    Attempt {
        /// The destination.
        destination: String,
        /// Delivered.
        delivered: bool,
        /// Became a dead letter, and why.
        dead: Option<String>,
        /// The destination's breaker is open after it.
        breaker_open: bool,
    },
    /// A destination was paused (why) or resumed (`None`).
    Paused {
        /// The destination.
        destination: String,
        /// Why, or `None` when it was resumed.
        reason: Option<String>,
    },
    /// An event ran through its route's plugins; `failed` says why it failed.
    Ran {
        /// The route.
        route: String,
        /// Why it failed, if it did.
        failed: Option<String>,
    },
    /// A poll of a route's source ended; `failed` says why, `in_a_row` counts failures.
    Polled {
        /// The route.
        route: String,
        /// Why it failed, if it did.
        failed: Option<String>,
        /// Failures in a row, this one included.
        in_a_row: u32,
    },
}

/// Where stages report [`Signal`]s.
#[derive(Clone)]
pub struct Alerter(mpsc::UnboundedSender<Signal>);

impl Alerter {
    /// An alerter and the receiving end [`run`] reads.
    pub fn new() -> (Alerter, mpsc::UnboundedReceiver<Signal>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Alerter(tx), rx)
    }

    /// Reports `signal`; never blocks, and does nothing once [`run`] has stopped.
    pub fn raise(&self, signal: Signal) {
        let _ = self.0.send(signal);
    }
}

/// One alert, as destinations receive it (`application/vnd.hookyard.alert+json`).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Alert {
    /// The condition: `dead_letter`, `destination_paused`, ...
    pub alert: String,
    /// `firing` or `resolved`.
    pub state: String,
    /// What it is about: `{"destination": "crm"}` or `{"route": "shop"}`.
    pub subject: HashMap<String, String>,
    /// One line for people.
    pub summary: String,
    /// How many times it happened since it opened.
    pub count: u64,
    /// When it opened (ms since the epoch).
    pub since: Millis,
    /// When this alert was raised.
    pub at: Millis,
    /// The latest detail (a dead letter's reason, a failure).
    pub detail: Option<String>,
}

/// A condition open on this node.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Open {
    /// The condition.
    pub alert: String,
    /// What it is about.
    pub subject: HashMap<String, String>,
    /// When it opened.
    pub since: Millis,
    /// How many times it happened since.
    pub count: u64,
    /// The latest detail.
    pub detail: Option<String>,
}

/// The conditions open on this node, for the admin API and UI.
#[derive(Clone, Default)]
pub struct Board(Arc<Mutex<Vec<Open>>>);

impl Board {
    /// Open conditions, oldest first.
    pub fn open(&self) -> Vec<Open> {
        self.0.lock().map(|o| o.clone()).unwrap_or_default()
    }
}

/// What a condition is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Subject {
    Destination(String),
    Route(String),
}

impl Subject {
    fn kind(&self) -> &'static str {
        match self {
            Subject::Destination(_) => "destination",
            Subject::Route(_) => "route",
        }
    }

    fn name(&self) -> &str {
        match self {
            Subject::Destination(n) | Subject::Route(n) => n,
        }
    }
}

/// One open condition's state.
#[derive(Debug, Clone)]
struct State {
    since: Millis,
    count: u64,
    detail: Option<String>,
    /// When an alert for it last went out (from this node).
    sent: Instant,
}

/// A change the engine decided on: an alert to journal.
#[derive(Debug, Clone, PartialEq)]
struct Raise {
    condition: Condition,
    subject: Subject,
    firing: bool,
    count: u64,
    since: Millis,
    detail: Option<String>,
}

/// The conditions, what opened them, and the windows they are judged over.
#[derive(Default)]
struct Engine {
    open: HashMap<(Condition, Subject), State>,
    /// Per route: when each recent event ran and whether it failed.
    runs: HashMap<String, VecDeque<(Instant, bool)>>,
}

impl Engine {
    /// What `signal` changes under `config`, at `now`.
    fn observe(&mut self, config: &AlertsConfig, signal: Signal, now: Instant) -> Vec<Raise> {
        let mut out = Vec::new();
        match signal {
            Signal::Attempt {
                destination,
                delivered,
                dead,
                breaker_open,
            } => {
                let subject = Subject::Destination(destination);
                if let Some(reason) = dead {
                    self.fire(
                        config,
                        Condition::DeadLetter,
                        &subject,
                        Some(reason),
                        now,
                        &mut out,
                    );
                } else if delivered {
                    self.clear(config, Condition::DeadLetter, &subject, &mut out);
                }
                if breaker_open {
                    if !self
                        .open
                        .contains_key(&(Condition::BreakerOpen, subject.clone()))
                    {
                        let detail =
                            Some("the circuit breaker opened after failures in a row".into());
                        self.fire(
                            config,
                            Condition::BreakerOpen,
                            &subject,
                            detail,
                            now,
                            &mut out,
                        );
                    }
                } else {
                    self.clear(config, Condition::BreakerOpen, &subject, &mut out);
                }
            }
            Signal::Paused {
                destination,
                reason,
            } => {
                let subject = Subject::Destination(destination);
                match reason {
                    Some(reason) => self.fire(
                        config,
                        Condition::DestinationPaused,
                        &subject,
                        Some(reason),
                        now,
                        &mut out,
                    ),
                    None => self.clear(config, Condition::DestinationPaused, &subject, &mut out),
                }
            }
            Signal::Ran { route, failed } => {
                if route == ROUTE {
                    return out;
                }
                let window = config.window.0;
                if !self.runs.contains_key(&route) {
                    self.runs.insert(route.clone(), VecDeque::new());
                }
                let Some(runs) = self.runs.get_mut(&route) else {
                    return out;
                };
                runs.push_back((now, failed.is_some()));
                while runs
                    .front()
                    .is_some_and(|(at, _)| now.duration_since(*at) > window)
                {
                    runs.pop_front();
                }
                let total = runs.len();
                let failures = runs.iter().filter(|(_, f)| *f).count();
                let rate = failures as f64 / total.max(1) as f64;
                let subject = Subject::Route(route);
                let key = (Condition::PluginFailing, subject.clone());
                if total >= MIN_EVENTS && rate >= config.plugin_failure_rate {
                    if failed.is_some() || !self.open.contains_key(&key) {
                        let detail = failed.map(|f| {
                            format!("{failures} of the last {total} events failed; latest: {f}")
                        });
                        self.fire(
                            config,
                            Condition::PluginFailing,
                            &subject,
                            detail,
                            now,
                            &mut out,
                        );
                    }
                } else if rate < config.plugin_failure_rate {
                    self.clear(config, Condition::PluginFailing, &subject, &mut out);
                }
            }
            Signal::Polled {
                route,
                failed,
                in_a_row,
            } => {
                let subject = Subject::Route(route);
                match failed {
                    Some(reason) if in_a_row >= config.poll_failures => {
                        let detail = format!("{in_a_row} polls in a row failed; latest: {reason}");
                        self.fire(
                            config,
                            Condition::PollFailing,
                            &subject,
                            Some(detail),
                            now,
                            &mut out,
                        )
                    }
                    Some(_) => {}
                    None => self.clear(config, Condition::PollFailing, &subject, &mut out),
                }
            }
        }
        out
    }

    /// The backlog reading: which subjects have work older than `config.backlog_age`.
    fn backlog(
        &mut self,
        config: &AlertsConfig,
        old: Vec<(Subject, String)>,
        now: Instant,
    ) -> Vec<Raise> {
        let mut out = Vec::new();
        let open: Vec<Subject> = self
            .open
            .keys()
            .filter(|(c, _)| *c == Condition::BacklogAge)
            .map(|(_, s)| s.clone())
            .collect();
        for subject in open {
            if !old.iter().any(|(s, _)| *s == subject) {
                self.clear(config, Condition::BacklogAge, &subject, &mut out);
            }
        }
        for (subject, detail) in old {
            let key = (Condition::BacklogAge, subject.clone());
            // A reading is not an occurrence: count it once, remind after the debounce.
            if self.open.contains_key(&key) && self.open[&key].sent.elapsed() < config.debounce.0 {
                continue;
            }
            self.fire(
                config,
                Condition::BacklogAge,
                &subject,
                Some(detail),
                now,
                &mut out,
            );
        }
        out
    }

    fn fire(
        &mut self,
        config: &AlertsConfig,
        condition: Condition,
        subject: &Subject,
        detail: Option<String>,
        now: Instant,
        out: &mut Vec<Raise>,
    ) {
        let key = (condition, subject.clone());
        match self.open.get_mut(&key) {
            None => {
                let state = State {
                    since: now_ms(),
                    count: 1,
                    detail,
                    sent: now,
                };
                if config.on.contains(&condition) {
                    out.push(raise(condition, subject, true, &state));
                }
                self.open.insert(key, state);
            }
            Some(state) => {
                state.count += 1;
                if detail.is_some() {
                    state.detail = detail;
                }
                // Still open after the debounce: a reminder with what happened meanwhile.
                if now.duration_since(state.sent) >= config.debounce.0 {
                    state.sent = now;
                    if config.on.contains(&condition) {
                        out.push(raise(condition, subject, true, state));
                    }
                }
            }
        }
    }

    fn clear(
        &mut self,
        config: &AlertsConfig,
        condition: Condition,
        subject: &Subject,
        out: &mut Vec<Raise>,
    ) {
        // Most signals find nothing open: no key to build.
        if self.open.is_empty() {
            return;
        }
        if let Some(state) = self.open.remove(&(condition, subject.clone()))
            && config.on.contains(&condition)
        {
            out.push(raise(condition, subject, false, &state));
        }
    }

    fn board(&self) -> Vec<Open> {
        let mut open: Vec<Open> = self
            .open
            .iter()
            .map(|((condition, subject), state)| Open {
                alert: condition.as_str().to_string(),
                subject: HashMap::from([(subject.kind().to_string(), subject.name().to_string())]),
                since: state.since,
                count: state.count,
                detail: state.detail.clone(),
            })
            .collect();
        open.sort_by_key(|o| o.since);
        open
    }
}

fn raise(condition: Condition, subject: &Subject, firing: bool, state: &State) -> Raise {
    Raise {
        condition,
        subject: subject.clone(),
        firing,
        count: state.count,
        since: state.since,
        detail: state.detail.clone(),
    }
}

/// The one line people read.
fn summary(r: &Raise) -> String {
    let name = r.subject.name();
    let n = r.count;
    match (r.condition, r.firing) {
        (Condition::DeadLetter, true) => {
            format!("Deliveries to {name} are dying: {n} dead letter(s) so far")
        }
        (Condition::DeadLetter, false) => {
            format!(
                "{name} delivers again ({n} dead letter(s) while it failed; replay them from the dead letters)"
            )
        }
        (Condition::DestinationPaused, true) => format!("{name} is paused: nothing is sent to it"),
        (Condition::DestinationPaused, false) => format!("{name} was resumed"),
        (Condition::BreakerOpen, true) => {
            format!("{name}'s circuit breaker is open: attempts to it are held back")
        }
        (Condition::BreakerOpen, false) => format!("{name}'s circuit breaker closed"),
        (Condition::BacklogAge, true) => format!("Work for {name} has been waiting too long"),
        (Condition::BacklogAge, false) => format!("Work for {name} no longer waits too long"),
        (Condition::PluginFailing, true) => format!("Plugins of route {name} keep failing"),
        (Condition::PluginFailing, false) => format!("Plugins of route {name} succeed again"),
        (Condition::PollFailing, true) => format!("Polling route {name}'s source keeps failing"),
        (Condition::PollFailing, false) => format!("Polling route {name}'s source works again"),
    }
}

impl Raise {
    fn alert(&self) -> Alert {
        Alert {
            alert: self.condition.as_str().to_string(),
            state: if self.firing { "firing" } else { "resolved" }.to_string(),
            subject: HashMap::from([(
                self.subject.kind().to_string(),
                self.subject.name().to_string(),
            )]),
            summary: summary(self),
            count: self.count,
            since: self.since,
            at: now_ms(),
            detail: self.detail.clone(),
        }
    }

    /// The alert as an event of [`ROUTE`], deduplicated across nodes by condition, subject
    /// and state.
    fn event(&self) -> NewEvent {
        let alert = self.alert();
        NewEvent {
            id: new_id(ID_PREFIX),
            route: ROUTE.to_string(),
            received_at: alert.at,
            headers: vec![("content-type".into(), CONTENT_TYPE.into())],
            event_type: Some(format!("{}.{}", alert.alert, alert.state)),
            dedup_key: Some(format!(
                "{ROUTE}:{}:{}={}:{}",
                alert.alert,
                self.subject.kind(),
                self.subject.name(),
                alert.state
            )),
            body: serde_json::to_vec(&alert).unwrap_or_default(),
            traceparent: None,
        }
    }
}

/// Turns signals into alerts until `shutdown`: journals each one for the dispatcher
/// (woken through `events`) and keeps `board` current.
pub async fn run(
    mut signals: mpsc::UnboundedReceiver<Signal>,
    store: Arc<dyn Store>,
    live: Arc<Live>,
    events: Arc<Notify>,
    board: Board,
    mut shutdown: Shutdown,
) {
    let mut engine = Engine::default();
    let mut backlog = tokio::time::interval(BACKLOG_CHECK);
    loop {
        let config = live.get().alerts.clone();
        let raised = tokio::select! {
            _ = shutdown.wait() => return,
            signal = signals.recv() => match (signal, &config) {
                (None, _) => return,
                (Some(_), None) => Vec::new(),
                (Some(signal), Some(config)) => engine.observe(config, signal, Instant::now()),
            },
            _ = backlog.tick() => match &config {
                Some(config) if config.on.contains(&Condition::BacklogAge) => {
                    match old_work(&store, config.backlog_age.0).await {
                        Ok(old) => engine.backlog(config, old, Instant::now()),
                        Err(e) => {
                            tracing::warn!(error = %e, "alerts: cannot read the backlog");
                            Vec::new()
                        }
                    }
                }
                _ => Vec::new(),
            },
        };
        if let Ok(mut b) = board.0.lock() {
            *b = engine.board();
        }
        let Some(config) = config else { continue };
        for r in raised {
            journal(&store, &events, &config, &r).await;
        }
    }
}

/// Routes and destinations with work older than `age`, and a line saying how old.
async fn old_work(
    store: &Arc<dyn Store>,
    age: Duration,
) -> Result<Vec<(Subject, String)>, crate::store::StoreError> {
    let backlog = store.backlog().await?;
    let now = now_ms();
    let limit = age.as_millis() as Millis;
    let mut old = Vec::new();
    for w in &backlog.events {
        if w.name == ROUTE {
            continue;
        }
        if let Some(oldest) = w.oldest
            && now - oldest > limit
        {
            old.push((
                Subject::Route(w.name.clone()),
                format!(
                    "{} event(s) waiting for plugins, the oldest for {}s",
                    w.count,
                    (now - oldest) / 1000
                ),
            ));
        }
    }
    for w in &backlog.deliveries {
        if w.ready == 0 {
            continue;
        }
        if let Some(oldest) = w.oldest
            && now - oldest > limit
        {
            old.push((
                Subject::Destination(w.name.clone()),
                format!(
                    "{} deliveries ready, the oldest waiting {}s",
                    w.ready,
                    (now - oldest) / 1000
                ),
            ));
        }
    }
    Ok(old)
}

async fn journal(store: &Arc<dyn Store>, events: &Notify, config: &AlertsConfig, r: &Raise) {
    let event = r.event();
    let alert = r.alert();
    match store
        .append_event(event, Duration::ZERO, config.debounce.0)
        .await
    {
        Ok(Appended::Stored) => {
            tracing::warn!(alert = %alert.alert, state = %alert.state, summary = %alert.summary, "alert");
            events.notify_one();
        }
        Ok(Appended::Duplicate { .. }) => {
            tracing::debug!(alert = %alert.alert, state = %alert.state, "alert already raised within the debounce");
        }
        Err(e) => tracing::error!(alert = %alert.alert, error = %e, "cannot journal an alert"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Dur;

    fn config() -> AlertsConfig {
        toml::from_str::<AlertsConfig>(r#"to = ["ops"]"#).expect("config")
    }

    fn attempt(dest: &str, delivered: bool, dead: Option<&str>) -> Signal {
        Signal::Attempt {
            destination: dest.into(),
            delivered,
            dead: dead.map(str::to_string),
            breaker_open: false,
        }
    }

    #[test]
    fn dead_letters_fire_once_then_resolve_when_the_destination_delivers_again() {
        let c = config();
        let mut e = Engine::default();
        let t = Instant::now();
        let first = e.observe(&c, attempt("crm", false, Some("HTTP 500")), t);
        assert_eq!(first.len(), 1);
        assert!(first[0].firing);
        assert_eq!(first[0].alert().alert, "dead_letter");
        for i in 1..10 {
            let more = e.observe(
                &c,
                attempt("crm", false, Some("HTTP 500")),
                t + Duration::from_secs(i),
            );
            assert!(more.is_empty(), "debounced");
        }
        assert!(
            e.observe(&c, attempt("crm", false, None), t).is_empty(),
            "a retry is no news"
        );
        assert!(
            e.observe(&c, attempt("mail", true, None), t).is_empty(),
            "other destinations"
        );
        let resolved = e.observe(&c, attempt("crm", true, None), t + Duration::from_secs(20));
        assert_eq!(resolved.len(), 1);
        assert!(!resolved[0].firing);
        assert_eq!(resolved[0].count, 10, "the count covers the whole spell");
        assert!(e.observe(&c, attempt("crm", true, None), t).is_empty());
    }

    #[test]
    fn a_condition_still_open_after_the_debounce_is_reminded() {
        let c = AlertsConfig {
            debounce: Dur(Duration::from_secs(60)),
            ..config()
        };
        let mut e = Engine::default();
        let t = Instant::now();
        assert_eq!(e.observe(&c, attempt("crm", false, Some("x")), t).len(), 1);
        assert!(
            e.observe(
                &c,
                attempt("crm", false, Some("x")),
                t + Duration::from_secs(59)
            )
            .is_empty()
        );
        let reminder = e.observe(
            &c,
            attempt("crm", false, Some("x")),
            t + Duration::from_secs(61),
        );
        assert_eq!(reminder.len(), 1);
        assert!(reminder[0].firing);
        assert_eq!(reminder[0].count, 3);
    }

    #[test]
    fn conditions_not_in_on_are_tracked_but_not_sent() {
        let c = AlertsConfig {
            on: vec![Condition::DestinationPaused],
            ..config()
        };
        let mut e = Engine::default();
        let t = Instant::now();
        assert!(
            e.observe(&c, attempt("crm", false, Some("x")), t)
                .is_empty()
        );
        let paused = e.observe(
            &c,
            Signal::Paused {
                destination: "crm".into(),
                reason: Some("answered 410 Gone".into()),
            },
            t,
        );
        assert_eq!(paused.len(), 1);
        assert_eq!(paused[0].alert().subject["destination"], "crm");
        let resumed = e.observe(
            &c,
            Signal::Paused {
                destination: "crm".into(),
                reason: None,
            },
            t,
        );
        assert_eq!(resumed[0].alert().state, "resolved");
    }

    #[test]
    fn plugin_failures_fire_above_the_rate_over_enough_events_and_clear_below() {
        let c = config();
        let mut e = Engine::default();
        let t = Instant::now();
        let ran = |failed: bool| Signal::Ran {
            route: "shop".into(),
            failed: failed.then(|| "plugin \"x\" trapped".to_string()),
        };
        for _ in 0..4 {
            assert!(
                e.observe(&c, ran(true), t).is_empty(),
                "too few events to judge"
            );
        }
        let fired = e.observe(&c, ran(true), t);
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].alert().alert, "plugin_failing");
        let mut cleared = Vec::new();
        for _ in 0..6 {
            cleared.extend(e.observe(&c, ran(false), t));
        }
        assert_eq!(cleared.len(), 1, "cleared once the rate fell below 0.5");
        assert!(!cleared[0].firing);
        // Alerts' own route is never judged.
        let mut e = Engine::default();
        for _ in 0..10 {
            let alerts = Signal::Ran {
                route: ROUTE.into(),
                failed: Some("x".into()),
            };
            assert!(e.observe(&c, alerts, t).is_empty());
        }
    }

    #[test]
    fn polls_fire_after_failures_in_a_row_and_clear_at_a_success() {
        let c = config();
        let mut e = Engine::default();
        let t = Instant::now();
        let poll = |in_a_row: u32, ok: bool| Signal::Polled {
            route: "tickets".into(),
            failed: (!ok).then(|| "HTTP 503".to_string()),
            in_a_row,
        };
        assert!(e.observe(&c, poll(1, false), t).is_empty());
        assert!(e.observe(&c, poll(2, false), t).is_empty());
        assert_eq!(e.observe(&c, poll(3, false), t).len(), 1);
        assert_eq!(e.observe(&c, poll(0, true), t).len(), 1);
    }

    #[test]
    fn backlog_readings_fire_and_clear_per_subject() {
        let c = config();
        let mut e = Engine::default();
        let t = Instant::now();
        let old = vec![(
            Subject::Route("shop".into()),
            "12 events waiting".to_string(),
        )];
        assert_eq!(e.backlog(&c, old.clone(), t).len(), 1);
        assert!(e.backlog(&c, old, t).is_empty(), "the same reading again");
        let cleared = e.backlog(&c, Vec::new(), t);
        assert_eq!(cleared.len(), 1);
        assert!(!cleared[0].firing);
    }

    #[test]
    fn an_alert_event_is_deduplicated_by_condition_subject_and_state() {
        let c = config();
        let mut e = Engine::default();
        let r = e.observe(&c, attempt("crm", false, Some("HTTP 500")), Instant::now());
        let event = r[0].event();
        assert_eq!(event.route, ROUTE);
        assert!(event.id.starts_with("alt_"));
        assert!(is_alert(&event.id));
        assert!(!is_alert("evt_1") && !is_alert("alternative"));
        assert_eq!(
            event.dedup_key.as_deref(),
            Some("@alerts:dead_letter:destination=crm:firing")
        );
        let alert: Alert = serde_json::from_slice(&event.body).expect("json");
        assert_eq!(alert.detail.as_deref(), Some("HTTP 500"));
        assert!(alert.summary.contains("crm"));
    }
}
