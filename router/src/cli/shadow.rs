//! `hookyard shadow <route> --replace <step>=<new.wasm>`: a plugin change tried on real
//! traffic before it goes live. Stored events of the route (read through the admin API, so
//! the running router's store is never opened twice) run through today's chain and through
//! the chain with one step replaced, both in the sandbox here, and their outputs are
//! compared: destination, method, path, headers, content type and body.
//!
//! Nothing is delivered. Each side has its own scratch kv (it starts empty; writes never
//! reach the store), and `http.fetch` is limited to `GET` and `HEAD` unless
//! `--allow-fetch-writes`. Each event that differs is printed with a line diff, then one
//! summary line; `--fail-on-change` exits 1 when anything differs, for a plugin's CI.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use base64::Engine as _;

use crate::config::{Config, PluginConfig};
use crate::pipeline::bindings::Event;
use crate::pipeline::engine::{PoolLimits, WasmEngine};
use crate::pipeline::host::{Capabilities, Fetcher, MemoryKv};
use crate::pipeline::{Plugin, run_chain};
use crate::shadow::{Verdict, outcome, verdict};

/// The arguments of `hookyard shadow`.
#[derive(Debug, clap::Args)]
pub struct ShadowArgs {
    /// The route whose stored events are replayed.
    route: String,
    /// The step to replace and the candidate component: `<step>=<new.wasm>`.
    #[arg(long, value_name = "STEP=WASM")]
    replace: String,
    /// The candidate's config instead of the step's current one: `<step>=<json>`.
    #[arg(long = "config", value_name = "STEP=JSON")]
    step_config: Option<String>,
    /// Only events since this time: a duration ago (`24h`), RFC 3339 or epoch ms.
    #[arg(long, default_value = "24h")]
    since: String,
    /// At most this many events, newest first.
    #[arg(long, default_value_t = 1000)]
    limit: usize,
    /// Print a JSON report instead of diffs.
    #[arg(long)]
    json: bool,
    /// Exit 1 when any event's outputs differ.
    #[arg(long)]
    fail_on_change: bool,
    /// Let plugins' `http.fetch` use methods other than GET and HEAD.
    #[arg(long)]
    allow_fetch_writes: bool,
    /// The router's config file: its plugins, and the admin API's address and token.
    #[arg(short = 'c', long = "router-config", default_value = "router.toml")]
    router_config: PathBuf,
    /// The admin API's base URL, instead of the config's `admin_listen`.
    #[arg(long)]
    admin_url: Option<String>,
    /// The admin token, instead of the config's `admin_token`.
    #[arg(long, env = "HOOKYARD_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

/// A line diff of two texts: `-` lines only in `a`, `+` only in `b`, context otherwise.
fn diff(a: &str, b: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    // Longest common subsequence, enough for the few hundred lines of an event's outputs.
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push_str(&format!("  {}\n", a[i]));
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push_str(&format!("+ {}\n", b[j]));
            j += 1;
        } else {
            out.push_str(&format!("- {}\n", a[i]));
            i += 1;
        }
    }
    out
}

fn shown(outcome: &Result<Vec<serde_json::Value>, String>) -> String {
    match outcome {
        Ok(outputs) => serde_json::to_string_pretty(outputs).unwrap_or_default(),
        Err(e) => format!("error: {e}"),
    }
}

/// Loads `path` as plugin `name` with `pc`, granted what the config grants it, with a
/// scratch kv and the fetch rules of a shadow run.
fn load(
    engine: &WasmEngine,
    name: &str,
    path: &Path,
    pc: &PluginConfig,
    fetcher: &Fetcher,
) -> Result<Arc<Plugin>> {
    let caps = Arc::new(Capabilities::granted(
        name,
        pc,
        fetcher.clone(),
        Arc::new(MemoryKv::default()),
    ));
    Ok(Arc::new(
        Plugin::load(engine, path, pc, caps)
            .with_context(|| format!("cannot load plugin {name:?}"))?,
    ))
}

/// Runs `hookyard shadow`.
pub fn run(args: ShadowArgs) -> Result<ExitCode> {
    let config = Config::load(&args.router_config)?;
    let route = config.route(&args.route).with_context(|| {
        format!(
            "no route named {:?} in {}",
            args.route,
            args.router_config.display()
        )
    })?;
    let (step, wasm) = args
        .replace
        .split_once('=')
        .context("--replace takes <step>=<new.wasm>")?;
    let steps: Vec<String> = route.steps.iter().map(|s| s.get_ref().clone()).collect();
    if !steps.iter().any(|s| s == step) {
        bail!(
            "route {:?} has no step {step:?} (its steps: {})",
            args.route,
            steps.join(", ")
        );
    }
    let mut candidate_config = config
        .plugins
        .get(step)
        .with_context(|| format!("step {step:?} is not defined under [plugins]"))?
        .clone();
    candidate_config.path = PathBuf::from(wasm);
    if let Some(sc) = &args.step_config {
        let (name, json) = sc.split_once('=').context("--config takes <step>=<json>")?;
        if name != step {
            bail!("--config names step {name:?}, but --replace replaces {step:?}");
        }
        candidate_config.config =
            serde_json::from_str(json).context("--config: the step's config is not JSON")?;
    }
    let egress = Arc::new(crate::egress::EgressPolicy::new(&config.egress));
    let client = crate::destinations::http::client(egress.clone());
    let fetcher = if args.allow_fetch_writes {
        Fetcher::Http { client, egress }
    } else {
        Fetcher::ReadOnly { client, egress }
    };
    let max_memory = config
        .plugins
        .values()
        .map(|p| p.memory.0)
        .max()
        .unwrap_or(0)
        .max(candidate_config.memory.0);
    let engine = WasmEngine::new(
        PoolLimits {
            instances: (steps.len() as u32 * 2 + 4).max(8),
            max_memory,
        },
        config.cache_dir(),
    )?;
    let mut live = Vec::new();
    let mut candidate = Vec::new();
    for name in &steps {
        let pc = &config.plugins[name];
        live.push(load(
            &engine,
            name,
            &config.resolve(&pc.path),
            pc,
            &fetcher,
        )?);
        candidate.push(if name == step {
            load(&engine, name, Path::new(wasm), &candidate_config, &fetcher)?
        } else {
            load(&engine, name, &config.resolve(&pc.path), pc, &fetcher)?
        });
    }
    let client = super::admin::Client::for_shadow(
        &args.router_config,
        args.admin_url.clone(),
        args.token.clone(),
    )?;
    let events = fetch_events(&client, &args)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut counts: HashMap<Verdict, usize> = HashMap::new();
    let mut report = Vec::new();
    for event in &events {
        let (today, tomorrow) = runtime.block_on(async {
            (
                run_chain(&live, event).await,
                run_chain(&candidate, event).await,
            )
        });
        let v = verdict(&today, &tomorrow);
        *counts.entry(v).or_default() += 1;
        if v == Verdict::Unchanged {
            continue;
        }
        let (a, b) = (outcome(&today), outcome(&tomorrow));
        if args.json {
            report.push(serde_json::json!({
                "event": event.id, "verdict": v, "live": a, "candidate": b,
            }));
        } else {
            println!(
                "== {} ({:?}): {:?}",
                event.id,
                event.event_type.as_deref().unwrap_or("-"),
                v
            );
            print!("{}", diff(&shown(&a), &shown(&b)));
        }
    }
    let n = |v| counts.get(&v).copied().unwrap_or(0);
    let summary = format!(
        "{} events: {} unchanged, {} changed, {} newly failing, {} fixed, {} newly dropped",
        events.len(),
        n(Verdict::Unchanged),
        n(Verdict::Changed),
        n(Verdict::NewlyFailing),
        n(Verdict::Fixed),
        n(Verdict::NewlyDropped)
    );
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "differences": report, "summary": summary })
            )?
        );
    } else {
        println!("{summary}");
    }
    let differs = events.len() != n(Verdict::Unchanged);
    Ok(if args.fail_on_change && differs {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The route's stored events, newest first, through the admin API.
fn fetch_events(client: &super::admin::Client, args: &ShadowArgs) -> Result<Vec<Event>> {
    let mut events = Vec::new();
    let mut before: Option<i64> = None;
    while events.len() < args.limit {
        let mut query = vec![
            ("route", args.route.clone()),
            ("since", args.since.clone()),
            ("limit", (args.limit - events.len()).min(500).to_string()),
        ];
        if let Some(b) = before {
            query.push(("before", b.to_string()));
        }
        let page = client.get("/admin/events", &query)?;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        for item in &items {
            let id = item["id"].as_str().context("an event without an id")?;
            let detail = client.get(&format!("/admin/events/{id}"), &[])?;
            let body = match (detail["body"].as_str(), detail["body_base64"].as_str()) {
                (Some(text), _) => text.as_bytes().to_vec(),
                (None, Some(b64)) => base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .context("an event body that is not base64")?,
                (None, None) => Vec::new(),
            };
            let headers = serde_json::from_value(detail["headers"].clone()).unwrap_or_default();
            events.push(Event {
                id: id.to_string(),
                route: args.route.clone(),
                received_at: detail["received_at"].as_u64().unwrap_or(0),
                headers,
                body,
                event_type: detail["event_type"].as_str().map(str::to_string),
            });
        }
        match page["next_before"].as_i64() {
            Some(b) if !items.is_empty() => before = Some(b),
            _ => break,
        }
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_diff_marks_removed_and_added_lines() {
        let d = diff("a\nb\nc\n", "a\nx\nc\n");
        assert_eq!(d, "  a\n+ x\n- b\n  c\n");
    }
}
