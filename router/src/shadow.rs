//! Shadow runs: a candidate version of a plugin beside the live one. `hookyard shadow` runs
//! stored events through both (see `cli`); `[plugins.<name>] shadow = "new.wasm"` runs the
//! candidate on every live event of every route using that step, after the live chain, and
//! records here how their outputs compare. The candidate's outputs are never delivered; its
//! kv writes stay in a scratch layer over the live kv, and it may fetch only with `GET` and
//! `HEAD`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use serde::Serialize;

use crate::pipeline::ChainRun;

/// How one event fared under the candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The same outputs.
    Unchanged,
    /// Different outputs.
    Changed,
    /// Today's chain succeeds, the candidate's fails.
    NewlyFailing,
    /// Today's chain fails, the candidate's succeeds.
    Fixed,
    /// Today's chain makes outputs, the candidate drops the event.
    NewlyDropped,
}

impl Verdict {
    /// Its name in metrics and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Unchanged => "unchanged",
            Verdict::Changed => "changed",
            Verdict::NewlyFailing => "newly_failing",
            Verdict::Fixed => "fixed",
            Verdict::NewlyDropped => "newly_dropped",
        }
    }
}

/// A chain's result as compared: each output's visible parts (destination, method, path,
/// headers, content type, body), or the error.
pub fn outcome(run: &ChainRun) -> Result<Vec<serde_json::Value>, String> {
    match &run.result {
        Err(e) => Err(e.to_string()),
        Ok(outputs) => Ok(outputs
            .iter()
            .map(|r| {
                let body = serde_json::from_slice::<serde_json::Value>(&r.output.body)
                    .unwrap_or_else(|_| {
                        serde_json::Value::String(
                            String::from_utf8_lossy(&r.output.body).into_owned(),
                        )
                    });
                serde_json::json!({
                    "destination": r.destination,
                    "method": r.output.method,
                    "path": r.output.path,
                    "headers": r.output.headers,
                    "content_type": r.output.content_type,
                    "body": body,
                })
            })
            .collect()),
    }
}

/// Compares today's run with the candidate's.
pub fn verdict(live: &ChainRun, candidate: &ChainRun) -> Verdict {
    match (outcome(live), outcome(candidate)) {
        (Ok(_), Err(_)) => Verdict::NewlyFailing,
        (Err(_), Ok(_)) => Verdict::Fixed,
        (Err(a), Err(b)) if a == b => Verdict::Unchanged,
        (Err(_), Err(_)) => Verdict::Changed,
        (Ok(a), Ok(b)) => {
            if a == b {
                Verdict::Unchanged
            } else if b.is_empty() && candidate.stats.dropped.is_some() && !a.is_empty() {
                Verdict::NewlyDropped
            } else {
                Verdict::Changed
            }
        }
    }
}

/// The most recent differences a route keeps.
const KEPT: usize = 50;

/// One event whose outputs differed.
#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    /// The event.
    pub event: String,
    /// How.
    pub verdict: Verdict,
    /// The live chain's outputs, or its error.
    pub live: Result<Vec<serde_json::Value>, String>,
    /// The candidate chain's.
    pub candidate: Result<Vec<serde_json::Value>, String>,
}

/// What a route's live shadow has seen since this version of the config was loaded.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Events compared, by verdict.
    pub verdicts: BTreeMap<&'static str, u64>,
    /// The latest differences, newest last.
    pub recent: VecDeque<Difference>,
}

/// A route's live-shadow record, shared by the dispatcher and the admin API.
#[derive(Debug, Default)]
pub struct Board(Mutex<Report>);

impl Board {
    /// Records one comparison.
    pub fn record(&self, event: &str, live: &ChainRun, candidate: &ChainRun) -> Verdict {
        let v = verdict(live, candidate);
        let mut report = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *report.verdicts.entry(v.as_str()).or_default() += 1;
        if v != Verdict::Unchanged {
            if report.recent.len() == KEPT {
                report.recent.pop_front();
            }
            report.recent.push_back(Difference {
                event: event.to_string(),
                verdict: v,
                live: outcome(live),
                candidate: outcome(candidate),
            });
        }
        v
    }

    /// A copy of the record.
    pub fn report(&self) -> Report {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}
