//! The plugin chain: a journaled event goes through its route's steps, each a wasm plugin
//! in a fresh instance with its own memory and time budget.
//!
//! - [`bindings`]: the host side of the WIT contract.
//! - [`engine`]: the shared engine, epoch ticker and compiled-component cache.
//! - [`host`]: what a plugin instance may call, and the memory limiter.
//!
//! A plugin's ordinary rejection comes back as data (`Err(error)` in the WIT result); a
//! trap, timeout or memory overrun ends that event's run with a [`StepError`] naming the
//! plugin and the limit. The router itself never goes down with a plugin.

pub mod bindings;
pub mod engine;
pub mod host;
pub mod wasi;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::Instrument as _;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Store, Trap};

use crate::config::{ByteSize, PluginConfig};
use bindings::{Event, Level, Output, PluginError, PluginPre};
use engine::{EPOCH_TICK, EngineError, WasmEngine};
use host::{Capabilities, HostState};

/// Most outputs one event may fan out to across all steps.
pub const MAX_OUTPUTS: usize = 1000;

/// Why a plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Reading or compiling failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The plugin refused its own config (its `validate` export).
    #[error("plugin {name:?} refuses its config: {message}")]
    Invalid {
        /// The plugin's name in `router.toml`.
        name: String,
        /// Why.
        message: String,
    },
    /// The component does not match the plugin contract (wrong exports or imports).
    #[error("plugin {name:?} ({path}) does not fit the hookyard:plugin contract: {source:#}")]
    Contract {
        /// The plugin's name in `router.toml`.
        name: String,
        /// The file.
        path: String,
        /// wasmtime's type-check error.
        source: wasmtime::Error,
    },
}

/// Why an event's run through the chain failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum StepError {
    /// The store behind a host call failed, or kept the plugin waiting past its timeout:
    /// the event is run again later (see [`StepError::is_transient`]).
    #[error("plugin {plugin:?} could not use the store: {message}")]
    StoreTrouble {
        /// Plugin name.
        plugin: String,
        /// What went wrong.
        message: String,
    },
    /// The plugin ran past its `timeout`.
    #[error("plugin {plugin:?} exceeded its timeout of {timeout:?}")]
    Timeout {
        /// Plugin name.
        plugin: String,
        /// Its limit.
        timeout: Duration,
    },
    /// The plugin tried to grow its memory past `memory`.
    #[error("plugin {plugin:?} exceeded its memory limit of {limit}")]
    Memory {
        /// Plugin name.
        plugin: String,
        /// Its limit.
        limit: ByteSize,
    },
    /// The plugin burned all its `fuel`.
    #[error("plugin {plugin:?} exceeded its fuel limit of {limit}")]
    Fuel {
        /// Plugin name.
        plugin: String,
        /// Its limit.
        limit: u64,
    },
    /// The plugin trapped (panic, unreachable, out-of-bounds...), or a host call failed.
    #[error("plugin {plugin:?} trapped: {message}")]
    Trap {
        /// Plugin name.
        plugin: String,
        /// wasmtime's description.
        message: String,
    },
    /// The plugin returned an error for this event.
    #[error("plugin {plugin:?} rejected the event: {message}")]
    Rejected {
        /// Plugin name.
        plugin: String,
        /// The plugin's message.
        message: String,
    },
    /// The plugin returned more outputs than `max_outputs` (or the chain more than [`MAX_OUTPUTS`]).
    #[error("plugin {plugin:?} exceeded its output limit of {limit} outputs")]
    TooManyOutputs {
        /// Plugin name.
        plugin: String,
        /// The limit.
        limit: usize,
    },
    /// An output sets a header that only the router may set (framing, routing, credentials,
    /// or the router's own and signature headers).
    #[error("plugin {plugin:?} set the header {header:?}, which plugins may not set")]
    ForbiddenHeader {
        /// Plugin name.
        plugin: String,
        /// The header, as the plugin wrote it.
        header: String,
    },
    /// The plugin's outputs added up to more than `max_output_bytes`.
    #[error("plugin {plugin:?} exceeded its output size limit of {limit}")]
    OutputTooLarge {
        /// Plugin name.
        plugin: String,
        /// The limit.
        limit: ByteSize,
    },
}

impl StepError {
    /// Whether the failure is the store's, not the plugin's or the event's: the event is then
    /// run again later instead of being marked failed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StepError::StoreTrouble { .. })
    }
}

/// What one event's run through its plugins cost, and why it was dropped if it was.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Wall time in the plugins, microseconds.
    pub elapsed_us: u64,
    /// Fuel burned in the plugins that count it (those with a `fuel` limit); 0 when none does.
    pub fuel: u64,
    /// The first drop reason a plugin gave.
    pub dropped: Option<String>,
    /// Log lines captured (only when the capabilities ask for it).
    pub logs: Vec<(String, String)>,
}

/// How a plugin is called, decided by what it imports.
enum Pre {
    /// It imports nothing that can wait (no `http`, no `kv`, no files or sockets):
    /// instantiated and called on the caller's thread, stopped by an epoch trap.
    Sync(bindings::sync::PluginPre<HostState>),
    /// It imports `http` or `kv`: runs on fibers that park while the host waits and yield
    /// at every epoch tick.
    Async(PluginPre<HostState>),
}

/// A loaded plugin: type-checked, pre-linked, ready to instantiate per event.
pub struct Plugin {
    name: Arc<str>,
    pre: Pre,
    engine: wasmtime::Engine,
    /// Whether the plugin counts the fuel it burns (only then can `fuel` limit it).
    metered: bool,
    memory: ByteSize,
    timeout: Duration,
    fuel: Option<u64>,
    max_outputs: usize,
    max_output_bytes: ByteSize,
    caps: Arc<Capabilities>,
}

/// One plugin's answer for one event, with what it cost.
pub struct StepRun {
    /// The outputs.
    pub outputs: Vec<Output>,
    /// Wall time.
    pub elapsed: Duration,
    /// Fuel burned; 0 when the plugin does not count it (it has no `fuel` limit).
    pub fuel: u64,
    /// Its drop reason.
    pub dropped: Option<String>,
    /// Captured log lines.
    pub logs: Vec<(Level, String)>,
}

impl Plugin {
    /// Loads `path` and checks it against the contract; `caps` is what it is granted.
    pub fn load(
        engine: &WasmEngine,
        path: &Path,
        config: &PluginConfig,
        caps: Arc<Capabilities>,
    ) -> Result<Plugin, LoadError> {
        let name = caps.plugin.clone();
        let metered = engine.meters(config.fuel);
        let component = engine.load(path, metered)?;
        let wasm = engine.engine(metered)?;
        let contract = |source| LoadError::Contract {
            name: name.to_string(),
            path: path.display().to_string(),
            source,
        };
        let pre = match sync_pre(wasm, &component) {
            Ok(pre) => Pre::Sync(pre),
            Err(_) => Pre::Async(async_pre(wasm, &component).map_err(contract)?),
        };
        Ok(Plugin {
            name,
            pre,
            engine: wasm.clone(),
            metered,
            memory: config.memory,
            timeout: config.timeout.0,
            fuel: config.fuel,
            max_outputs: config.max_outputs,
            max_output_bytes: config.max_output_bytes,
            caps,
        })
    }

    /// The plugin's name in `router.toml`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the plugin runs without fibers (it imports nothing that can wait).
    pub fn is_sync(&self) -> bool {
        matches!(self.pre, Pre::Sync(_))
    }

    /// Whether runs of this plugin report the fuel they burn.
    pub fn is_metered(&self) -> bool {
        self.metered
    }

    /// A store for one run: fresh state, the memory limiter, the fuel budget if metered.
    fn store(&self, run: Arc<str>, fuel: u64) -> Result<Store<HostState>, wasmtime::Error> {
        let state = HostState::new(self.caps.clone(), run, self.memory.0);
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        if self.metered {
            store.set_fuel(fuel)?;
        }
        Ok(store)
    }

    /// This plugin's limits for one event, whole: a chain that fans out calls the plugin
    /// once per input, and all those calls share them.
    pub fn allowance(&self) -> Allowance {
        Allowance {
            time: self.timeout,
            fuel: self.fuel.unwrap_or(u64::MAX),
            outputs: self.max_outputs,
            bytes: self.max_output_bytes.0,
        }
    }

    /// Runs the plugin on one event in a fresh instance, with its whole per-event limits.
    pub async fn handle(&self, event: &Event) -> Result<StepRun, StepError> {
        self.handle_within(event, &mut self.allowance()).await
    }

    /// Runs the plugin on one input in a fresh instance, within what is `left` of its
    /// per-event limits, and takes what the run used from `left`. A sync plugin runs on the
    /// calling thread for at most the time left; an async one yields to the executor at
    /// every epoch tick and parks while the host waits on its behalf.
    pub async fn handle_within(
        &self,
        event: &Event,
        left: &mut Allowance,
    ) -> Result<StepRun, StepError> {
        if left.time.is_zero() {
            return Err(StepError::Timeout {
                plugin: self.name.to_string(),
                timeout: self.timeout,
            });
        }
        let mut store = self
            .store(event.id.as_str().into(), left.fuel)
            .map_err(|e| self.trap(format!("{e:#}")))?;
        let budget = left.fuel;
        let time = left.time;
        let started = Instant::now();
        let result = match &self.pre {
            Pre::Sync(pre) => {
                trap_after(&mut store, time);
                pre.instantiate(&mut store)
                    .and_then(|plugin| plugin.call_handle(&mut store, event))
            }
            Pre::Async(pre) => {
                store.epoch_deadline_async_yield_and_update(1);
                let run = async {
                    let plugin = pre.instantiate_async(&mut store).await?;
                    plugin.call_handle(&mut store, event).await
                };
                match tokio::time::timeout(time, run).await {
                    Ok(result) => result,
                    Err(_) => Err(wasmtime::Error::new(Trap::Interrupt)),
                }
            }
        };
        let elapsed = started.elapsed();
        let fuel = if self.metered {
            budget - store.get_fuel().unwrap_or(0)
        } else {
            0
        };
        left.time = left.time.saturating_sub(elapsed);
        left.fuel = left.fuel.saturating_sub(fuel);
        store.data_mut().log_console();
        match result {
            Ok(Ok(outputs)) => {
                self.check_outputs(&outputs, left)?;
                let data = store.into_data();
                Ok(StepRun {
                    outputs,
                    elapsed,
                    fuel,
                    dropped: data.dropped,
                    logs: data.logs,
                })
            }
            Ok(Err(e)) => Err(StepError::Rejected {
                plugin: self.name.to_string(),
                message: e.message,
            }),
            Err(err) => Err(self.classify(&store, err)),
        }
    }

    /// Asks the plugin to check its config (its `validate` export), in a fresh instance with
    /// the same limits as an event.
    pub async fn validate(&self) -> Result<(), LoadError> {
        let invalid = |message: String| LoadError::Invalid {
            name: self.name.to_string(),
            message,
        };
        let mut store = self
            .store("validate".into(), self.allowance().fuel)
            .map_err(|e| invalid(format!("{e:#}")))?;
        let result: wasmtime::Result<Result<(), PluginError>> = match &self.pre {
            Pre::Sync(pre) => {
                trap_after(&mut store, self.timeout);
                pre.instantiate(&mut store)
                    .and_then(|plugin| plugin.call_validate(&mut store))
            }
            Pre::Async(pre) => {
                store.epoch_deadline_async_yield_and_update(1);
                let run = async {
                    let plugin = pre.instantiate_async(&mut store).await?;
                    plugin.call_validate(&mut store).await
                };
                match tokio::time::timeout(self.timeout, run).await {
                    Ok(result) => result,
                    Err(_) => Err(wasmtime::Error::new(Trap::Interrupt)),
                }
            }
        };
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(invalid(e.message)),
            Err(trap) => match self.classify(&store, trap) {
                StepError::Timeout { timeout, .. } => Err(invalid(format!(
                    "validate exceeded the timeout of {timeout:?}"
                ))),
                other => Err(invalid(other.to_string())),
            },
        }
    }

    /// Checks `outputs` against what is `left` for this event, and takes them from it.
    fn check_outputs(&self, outputs: &[Output], left: &mut Allowance) -> Result<(), StepError> {
        if outputs.len() > left.outputs {
            return Err(StepError::TooManyOutputs {
                plugin: self.name.to_string(),
                limit: self.max_outputs,
            });
        }
        if let Some((header, _)) = outputs
            .iter()
            .flat_map(|o| &o.headers)
            .find(|(name, _)| !plugin_may_set(name))
        {
            return Err(StepError::ForbiddenHeader {
                plugin: self.name.to_string(),
                header: header.clone(),
            });
        }
        let bytes: u64 = outputs.iter().map(output_size).sum();
        if bytes > left.bytes {
            return Err(StepError::OutputTooLarge {
                plugin: self.name.to_string(),
                limit: self.max_output_bytes,
            });
        }
        left.outputs -= outputs.len();
        left.bytes -= bytes;
        Ok(())
    }

    fn trap(&self, message: String) -> StepError {
        StepError::Trap {
            plugin: self.name.to_string(),
            message,
        }
    }

    fn classify(&self, store: &Store<HostState>, err: wasmtime::Error) -> StepError {
        let plugin = self.name.to_string();
        if let Some(trouble) = err.downcast_ref::<host::StoreTrouble>() {
            return StepError::StoreTrouble {
                plugin,
                message: trouble.to_string(),
            };
        }
        match err.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) if store.data().in_store_call => {
                return StepError::StoreTrouble {
                    plugin,
                    message: format!(
                        "still waiting for the kv store when its timeout of {:?} ran out",
                        self.timeout
                    ),
                };
            }
            Some(Trap::Interrupt) => {
                return StepError::Timeout {
                    plugin,
                    timeout: self.timeout,
                };
            }
            Some(Trap::OutOfFuel) => {
                return StepError::Fuel {
                    plugin,
                    limit: self.fuel.unwrap_or(u64::MAX),
                };
            }
            _ => {}
        }
        if store.data().limiter.exceeded {
            return StepError::Memory {
                plugin,
                limit: self.memory,
            };
        }
        let message = match err.downcast_ref::<Trap>() {
            Some(trap) => trap.to_string(),
            None => format!("{err:#}"),
        };
        // A Rust plugin that panics prints why before it aborts; that beats "unreachable".
        let message = match wasi::Console::panic_message(&store.data().console_lines()) {
            Some(panic) => format!("{panic} ({message})"),
            None => message,
        };
        StepError::Trap { plugin, message }
    }
}

/// Links `component` with sync host functions only; fails if it imports anything that can
/// wait (`http`, `kv`, files, sockets).
fn sync_pre(
    engine: &wasmtime::Engine,
    component: &wasmtime::component::Component,
) -> wasmtime::Result<bindings::sync::PluginPre<HostState>> {
    let mut linker = Linker::<HostState>::new(engine);
    wasi::add_sync(&mut linker)?;
    bindings::add_types_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
    bindings::sync::add_host_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
    bindings::sync::PluginPre::new(linker.instantiate_pre(component)?)
}

/// Links `component` with every capability, async.
fn async_pre(
    engine: &wasmtime::Engine,
    component: &wasmtime::component::Component,
) -> wasmtime::Result<PluginPre<HostState>> {
    let mut linker = Linker::<HostState>::new(engine);
    wasi::add_async(&mut linker)?;
    bindings::Plugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
    PluginPre::new(linker.instantiate_pre(component)?)
}

/// An output on its way through the chain, with the destination it was routed to so far.
#[derive(Debug, Clone)]
pub struct Routed {
    /// What the last step produced.
    pub output: Output,
    /// A destination named by this or an earlier step.
    pub destination: Option<String>,
}

/// What is left of one plugin's per-event limits (`timeout`, `fuel`, `max_outputs`,
/// `max_output_bytes`) while it runs once per input of a fan-out; see
/// [`Plugin::handle_within`].
#[derive(Debug, Clone, Copy)]
pub struct Allowance {
    time: Duration,
    fuel: u64,
    outputs: usize,
    bytes: u64,
}

/// What an output counts against `max_output_bytes`: its body and everything else it asks
/// the router to send or store (headers, method, path, content type, destination).
fn output_size(o: &Output) -> u64 {
    let text = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    let headers: usize = o.headers.iter().map(|(n, v)| n.len() + v.len()).sum();
    (o.body.len()
        + headers
        + text(&o.content_type)
        + text(&o.destination)
        + text(&o.method)
        + text(&o.path)) as u64
}

/// Makes a sync store trap once `time` has passed: the deadline is counted in epoch ticks,
/// plus one for the tick already under way.
fn trap_after(store: &mut Store<HostState>, time: Duration) {
    let ticks = time.as_nanos().div_ceil(EPOCH_TICK.as_nanos()) as u64 + 1;
    store.epoch_deadline_trap();
    store.set_epoch_deadline(ticks);
}

/// The outcome of one event's run through its chain, and what it cost either way.
pub struct ChainRun {
    /// The outputs, or why the run failed.
    pub result: Result<Vec<Routed>, StepError>,
    /// Time, fuel, drop reason, captured logs.
    pub stats: RunStats,
}

/// Runs `event` through `steps` in order; every output of one step is an input of the next.
/// With no steps, the event itself is the one output.
pub async fn run_chain(steps: &[Arc<Plugin>], event: &Event) -> ChainRun {
    let mut stats = RunStats::default();
    let result = run_steps(steps, event, &mut stats).await;
    ChainRun { result, stats }
}

async fn run_steps(
    steps: &[Arc<Plugin>],
    event: &Event,
    stats: &mut RunStats,
) -> Result<Vec<Routed>, StepError> {
    if steps.is_empty() {
        let content_type = header(&event.headers, "content-type").map(str::to_string);
        return Ok(vec![Routed {
            output: Output {
                body: event.body.clone(),
                headers: Vec::new(),
                content_type,
                destination: None,
                method: None,
                path: None,
            },
            destination: None,
        }]);
    }
    // The first step sees the event itself (no copy); each later step sees each output of
    // the step before, routed where it was routed so far.
    let mut current: Vec<Routed> = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let inputs: Vec<(std::borrow::Cow<'_, Event>, Option<String>)> = if i == 0 {
            vec![(std::borrow::Cow::Borrowed(event), None)]
        } else {
            current
                .drain(..)
                .map(|item| {
                    let input = next_input(event, &item.output);
                    (std::borrow::Cow::Owned(input), item.destination)
                })
                .collect()
        };
        let mut next = Vec::new();
        // One timeout, fuel budget and output budget per step and event, however many
        // inputs the step before fanned out to.
        let mut left = step.allowance();
        for (input, routed_to) in inputs {
            let span = tracing::info_span!(
                target: crate::trace::TARGET,
                "plugin",
                otel.name = %format!("plugin {}", step.name()),
                hookyard.plugin = %step.name(),
                hookyard.elapsed_us = tracing::field::Empty,
                hookyard.fuel = tracing::field::Empty,
                hookyard.outputs = tracing::field::Empty,
                hookyard.dropped = tracing::field::Empty,
                otel.status_code = tracing::field::Empty,
                otel.status_description = tracing::field::Empty,
            );
            let run = step
                .handle_within(&input, &mut left)
                .instrument(span.clone())
                .await;
            match &run {
                Ok(run) => {
                    span.record("hookyard.elapsed_us", run.elapsed.as_micros() as i64);
                    if step.is_metered() {
                        span.record("hookyard.fuel", i64::try_from(run.fuel).unwrap_or(i64::MAX));
                    }
                    span.record("hookyard.outputs", run.outputs.len() as i64);
                    if let Some(reason) = &run.dropped {
                        span.record("hookyard.dropped", reason.as_str());
                    }
                }
                Err(e) => {
                    span.record("otel.status_code", "ERROR");
                    span.record("otel.status_description", e.to_string());
                }
            }
            let run = run?;
            stats.elapsed_us += run.elapsed.as_micros() as u64;
            stats.fuel = stats.fuel.saturating_add(run.fuel);
            if stats.dropped.is_none() && run.outputs.is_empty() {
                stats.dropped = run.dropped.map(|r| format!("{}: {r}", step.name()));
            }
            stats.logs.extend(
                run.logs
                    .into_iter()
                    .map(|(level, line)| (format!("{} {}", step.name(), level_name(level)), line)),
            );
            for output in run.outputs {
                let destination = output.destination.clone().or_else(|| routed_to.clone());
                next.push(Routed {
                    output,
                    destination,
                });
                if next.len() > MAX_OUTPUTS {
                    return Err(StepError::TooManyOutputs {
                        plugin: step.name().to_string(),
                        limit: MAX_OUTPUTS,
                    });
                }
            }
        }
        current = next;
    }
    Ok(current)
}
fn level_name(level: Level) -> &'static str {
    match level {
        Level::Trace => "trace",
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    }
}

/// Whether a plugin's output may carry a header with this name. Framing and connection
/// headers would let a plugin smuggle a second request or reach another virtual host with the
/// destination's credentials; `authorization` and cookies are the destination's `auth`; the
/// router's own and signature headers (`hookyard-*`, `webhook-*`, `svix-*`) vouch for what the
/// router sent and must not be forgeable.
pub fn plugin_may_set(name: &str) -> bool {
    const FORBIDDEN: &[&str] = &[
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "expect",
        "proxy-authorization",
        "proxy-connection",
        "authorization",
        "cookie",
    ];
    const FORBIDDEN_PREFIXES: &[&str] = &["hookyard-", "webhook-", "svix-", "proxy-"];
    let name = name.trim().to_ascii_lowercase();
    !FORBIDDEN.contains(&name.as_str()) && !FORBIDDEN_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The event the next step sees: the original's identity and headers, the output's body,
/// with the output's headers and content type layered on top.
fn next_input(original: &Event, output: &Output) -> Event {
    let mut headers: Vec<(String, String)> = original
        .headers
        .iter()
        .filter(|(n, _)| {
            n != "content-type"
                && !output
                    .headers
                    .iter()
                    .any(|(o, _)| o.eq_ignore_ascii_case(n))
        })
        .cloned()
        .collect();
    headers.extend(
        output
            .headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.clone())),
    );
    if let Some(ct) = &output.content_type {
        headers.push(("content-type".to_string(), ct.clone()));
    }
    Event {
        id: original.id.clone(),
        route: original.route.clone(),
        received_at: original.received_at,
        headers,
        body: output.body.clone(),
        event_type: original.event_type.clone(),
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}
