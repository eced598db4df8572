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

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::Linker;
use wasmtime::{Store, Trap};

use crate::config::{ByteSize, PluginConfig};
use bindings::{Event, Output, PluginPre};
use engine::{EPOCH_TICK, EngineError, WasmEngine};
use host::HostState;

/// Most outputs one event may fan out to across all steps.
pub const MAX_OUTPUTS: usize = 1000;

/// Why a plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Reading or compiling failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
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
    /// The plugin trapped (panic, unreachable, out-of-bounds...).
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
    /// The chain produced more than [`MAX_OUTPUTS`] outputs.
    #[error("plugin {plugin:?} produced more than {MAX_OUTPUTS} outputs")]
    TooManyOutputs {
        /// Plugin name.
        plugin: String,
    },
}

/// A loaded plugin: type-checked, pre-linked, ready to instantiate per event.
pub struct Plugin {
    name: Arc<str>,
    pre: PluginPre<HostState>,
    engine: wasmtime::Engine,
    memory: ByteSize,
    timeout: Duration,
    config: Arc<str>,
}

impl Plugin {
    /// Loads `config.path` (resolved by the caller) and checks it against the contract.
    pub fn load(
        engine: &WasmEngine,
        name: &str,
        path: &Path,
        config: &PluginConfig,
    ) -> Result<Plugin, LoadError> {
        let component = engine.load(path)?;
        let contract = |source| LoadError::Contract {
            name: name.to_string(),
            path: path.display().to_string(),
            source,
        };
        let mut linker = Linker::<HostState>::new(engine.engine());
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(contract)?;
        bindings::Plugin::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)
            .map_err(contract)?;
        let instance_pre = linker.instantiate_pre(&component).map_err(contract)?;
        let pre = PluginPre::new(instance_pre).map_err(contract)?;
        Ok(Plugin {
            name: name.into(),
            pre,
            engine: engine.engine().clone(),
            memory: config.memory,
            timeout: config.timeout.0,
            config: config.config.to_string().into(),
        })
    }

    /// The plugin's name in `router.toml`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs the plugin on one event in a fresh instance. Blocking: call off the async workers.
    pub fn handle(&self, event: &Event) -> Result<Vec<Output>, StepError> {
        let state = HostState::new(
            self.name.clone(),
            event.id.as_str().into(),
            self.config.clone(),
            self.memory.0,
        );
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        let ticks = self.timeout.as_nanos().div_ceil(EPOCH_TICK.as_nanos()) as u64;
        store.set_epoch_deadline(ticks.max(1));
        store.epoch_deadline_trap();
        let result = self
            .pre
            .instantiate(&mut store)
            .and_then(|plugin| plugin.call_handle(&mut store, event));
        match result {
            Ok(Ok(outputs)) => Ok(outputs),
            Ok(Err(e)) => Err(StepError::Rejected {
                plugin: self.name.to_string(),
                message: e.message,
            }),
            Err(err) => Err(self.classify(&store, err)),
        }
    }

    fn classify(&self, store: &Store<HostState>, err: wasmtime::Error) -> StepError {
        let plugin = self.name.to_string();
        if err.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            return StepError::Timeout {
                plugin,
                timeout: self.timeout,
            };
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
        StepError::Trap { plugin, message }
    }
}

/// An output on its way through the chain, with the destination it was routed to so far.
#[derive(Debug, Clone)]
pub struct Routed {
    /// What the last step produced.
    pub output: Output,
    /// A destination named by this or an earlier step.
    pub destination: Option<String>,
}

/// Runs `event` through `steps` in order; every output of one step is an input of the next.
/// With no steps, the event itself is the one output.
pub fn run_chain(steps: &[Arc<Plugin>], event: &Event) -> Result<Vec<Routed>, StepError> {
    let content_type = header(&event.headers, "content-type").map(str::to_string);
    let mut current = vec![Routed {
        output: Output {
            body: event.body.clone(),
            headers: Vec::new(),
            content_type,
            destination: None,
        },
        destination: None,
    }];
    for (i, step) in steps.iter().enumerate() {
        let mut next = Vec::new();
        for item in current {
            let input = if i == 0 {
                event.clone()
            } else {
                next_input(event, &item.output)
            };
            for output in step.handle(&input)? {
                let destination = output
                    .destination
                    .clone()
                    .or_else(|| item.destination.clone());
                next.push(Routed {
                    output,
                    destination,
                });
                if next.len() > MAX_OUTPUTS {
                    return Err(StepError::TooManyOutputs {
                        plugin: step.name().to_string(),
                    });
                }
            }
        }
        current = next;
    }
    Ok(current)
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
