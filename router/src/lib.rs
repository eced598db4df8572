//! # Hookyard: a webhook integration router
//!
//! Providers POST webhooks; Hookyard verifies each one, journals it durably, answers 2xx,
//! runs it through a chain of sandboxed WebAssembly plugins, and delivers the outputs with
//! retries and dead letters.
//!
//! # Layout
//!
//! The modules follow an event through the router:
//!
//! - [`config`]: `router.toml`, one serde tree; errors name file, line and key.
//! - [`ingress`]: `POST /hooks/<route>`: body and time limits, then verify and journal.
//! - [`poll`]: the other front door: APIs without webhooks, polled, each new item an event.
//! - [`backlog`]: how much accepted work waits, and `server.max_backlog`'s bound on it.
//! - [`verify`]: one file per signature scheme; a request becomes `Verified` only there.
//! - [`store`]: the journal (events, deliveries, attempts) behind the `Store` trait.
//! - [`dispatch`]: a journaled event through its route's plugins into delivery jobs.
//! - [`pipeline`]: the wasm runtime: engine, bindings, limits, the chain of steps.
//! - [`shadow`]: a candidate plugin beside the live one: outputs compared, never delivered.
//! - [`delivery`]: claims due jobs, gates and attempts them, records attempts, dead letters.
//! - [`destinations`]: how each kind of destination (HTTP, SMTP) is reached, and retries.
//! - [`egress`]: the SSRF rules every outbound connection obeys.
//! - [`live`]: what is in force now: routes, plugins, destinations, and their swap.
//! - [`reload`]: watches for SIGHUP and file changes, and swaps a new version into [`live`].
//! - [`admin`]: the admin API and UI: inspect, retry, replay, resume.
//! - [`app`]: opens the store, starts every stage and serves; [`shutdown`]: the stop signal.
//! - [`activity`]: this node's per-minute activity, for the console's charts.
//! - [`telemetry`]: counters scraped from `GET /admin/metrics`; [`trace`]: one
//!   OpenTelemetry trace per event, exported over OTLP; [`alerts`]: operators told when
//!   deliveries die, destinations pause, work waits or plugins fail, and when it clears.
//! - [`cli`]: the `hookyard` command line.

#![deny(missing_docs)]

pub mod activity;
pub mod admin;
pub mod alerts;
pub mod app;
pub mod backlog;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod destinations;
pub mod dispatch;
pub mod egress;
pub mod ingress;
pub mod live;
pub mod pipeline;
pub mod poll;
pub mod reload;
pub mod shadow;
pub mod shutdown;
pub mod store;
pub mod telemetry;
pub mod trace;
pub mod verify;

pub use app::run;

/// An error and its causes as one line, `outer: inner: ...`, leaving out a cause the text so
/// far already quotes (many errors here say what went wrong and also carry it as their
/// source, and some libraries repeat their cause in their own message).
pub fn describe_error(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}
