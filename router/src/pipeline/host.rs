//! What a plugin instance sees of the host: its config, a log, and an empty WASI context.
//! Also the per-event memory limiter, which remembers whether the plugin hit its limit.

use std::sync::Arc;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{self, Level};

/// Per-event state of one plugin instance.
pub struct HostState {
    /// WASI with nothing granted: no files, env, args or sockets.
    wasi: WasiCtx,
    table: ResourceTable,
    /// Caps linear memory growth and records a refusal.
    pub limiter: MemoryLimiter,
    /// The plugin's name, for log lines.
    plugin: Arc<str>,
    /// The event being handled, for log lines.
    event_id: Arc<str>,
    /// The plugin's config as JSON.
    config: Arc<str>,
}

impl HostState {
    /// State for one run of `plugin` on `event_id`.
    pub fn new(plugin: Arc<str>, event_id: Arc<str>, config: Arc<str>, memory_limit: u64) -> Self {
        HostState {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            limiter: MemoryLimiter {
                limit: memory_limit,
                exceeded: false,
            },
            plugin,
            event_id,
            config,
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl bindings::TypesHost for HostState {}

impl bindings::Host for HostState {
    fn log(&mut self, level: Level, message: String) {
        let (plugin, event) = (&*self.plugin, &*self.event_id);
        // Cap what a plugin can push into the router's log per line.
        let message = truncate(&message, 4096);
        match level {
            Level::Trace => tracing::trace!(plugin, event, "{message}"),
            Level::Debug => tracing::debug!(plugin, event, "{message}"),
            Level::Info => tracing::info!(plugin, event, "{message}"),
            Level::Warn => tracing::warn!(plugin, event, "{message}"),
            Level::Error => tracing::error!(plugin, event, "{message}"),
        }
    }

    fn config(&mut self) -> String {
        self.config.to_string()
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Refuses linear memory growth past `limit` bytes and remembers that it did.
pub struct MemoryLimiter {
    limit: u64,
    /// Set once a growth was refused.
    pub exceeded: bool,
}

/// Most table elements a plugin may have (function references; generous for big guests).
const MAX_TABLE_ELEMENTS: usize = 1_000_000;

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.limit {
            self.exceeded = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
