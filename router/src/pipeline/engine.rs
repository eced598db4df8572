//! The shared wasmtime [`Engine`]s: pooling allocator, epoch interruption driven by one
//! ticker thread (a sync plugin traps at its deadline, an async one yields at every tick),
//! fuel metering where it is asked for, and an on-disk cache of compiled components.
//!
//! Fuel metering is compiled into a plugin's code (every block counts what it burns), so it
//! is decided per engine: plugins that count fuel and plugins that do not are compiled by two
//! engines, each made the first time a plugin needs it. Counting costs 10-20% of the plugin
//! stage's CPU (docs/benchmarks.md), so the router meters only plugins given a `fuel` limit.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances; plugin timeouts are rounded up to this.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Why the engine or a component could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// wasmtime refused the configuration.
    #[error("cannot create the wasm engine: {0:#}")]
    Engine(wasmtime::Error),
    /// The plugin file could not be read.
    #[error("cannot read plugin {path}: {source}")]
    Read {
        /// The `.wasm` file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a valid component for this engine.
    #[error("cannot compile plugin {path}: {source:#}")]
    Compile {
        /// The `.wasm` file.
        path: PathBuf,
        /// wasmtime's reason.
        source: wasmtime::Error,
    },
}

/// Limits of the instance pool, sized for the largest plugin.
#[derive(Debug, Clone, Copy)]
pub struct PoolLimits {
    /// Instances alive at once (concurrent events x steps in flight).
    pub instances: u32,
    /// The largest `memory` any plugin is granted.
    pub max_memory: u64,
}

/// Which plugins count the fuel they burn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meter {
    /// Only plugins with a `fuel` limit: the others report no fuel and run faster.
    Limited,
    /// Every plugin, so every run reports its fuel (`hookyard plugin test`, for choosing a
    /// limit).
    All,
}

/// The two engines a [`WasmEngine`] may hold: without and with fuel metering.
type Engines = [OnceLock<Engine>; 2];

/// The engines plus their epoch ticker; dropping it stops the ticker.
pub struct WasmEngine {
    engines: Arc<Engines>,
    pool: PoolingAllocationConfig,
    meter: Meter,
    cache_dir: PathBuf,
    ticker: Option<EpochTicker>,
}

struct EpochTicker {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl WasmEngine {
    /// Creates the engine for the router (fuel counted only where a plugin has a limit) and
    /// starts the epoch ticker.
    pub fn new(limits: PoolLimits, cache_dir: PathBuf) -> Result<WasmEngine, EngineError> {
        WasmEngine::metering(limits, cache_dir, Meter::Limited)
    }

    /// Creates the engine with the given fuel metering and starts the epoch ticker.
    pub fn metering(
        limits: PoolLimits,
        cache_dir: PathBuf,
        meter: Meter,
    ) -> Result<WasmEngine, EngineError> {
        let mut pool = PoolingAllocationConfig::default();
        let n = limits.instances.max(4);
        pool.total_component_instances(n)
            .total_core_instances(n * 4)
            .total_memories(n * 2)
            .total_tables(n * 4)
            .max_memory_size(limits.max_memory.max(1 << 20) as usize)
            // The first MiB of each memory slot stays mapped and is reset with memset: a fresh
            // instance then takes no page faults for a typical heap (2.3x native instead of
            // 4.4x for github-to-chat; see docs/benchmarks.md).
            .linear_memory_keep_resident(1024 * 1024)
            .table_keep_resident(16 * 1024)
            // Where the kernel has PAGEMAP_SCAN (Linux 6.7+), only the pages an instance wrote
            // are reset, not the whole first MiB: 3-5% less plugin CPU per event in
            // alternating end-to-end runs (docs/benchmarks.md). Elsewhere it is off.
            .pagemap_scan(wasmtime::Enabled::Auto);
        pool.total_stacks(n);
        let engines: Arc<Engines> = Arc::new([OnceLock::new(), OnceLock::new()]);
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let engines = engines.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("hookyard-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        for engine in engines.iter().filter_map(OnceLock::get) {
                            engine.increment_epoch();
                        }
                    }
                })
                .map_err(|e| EngineError::Engine(e.into()))?
        };
        let engine = WasmEngine {
            engines,
            pool,
            meter,
            cache_dir,
            ticker: Some(EpochTicker {
                stop,
                handle: Some(handle),
            }),
        };
        // Made now so a configuration wasmtime refuses is an error at start, not at a load.
        engine.engine(meter == Meter::All)?;
        Ok(engine)
    }

    /// Whether a plugin with this fuel limit counts its fuel.
    pub fn meters(&self, fuel: Option<u64>) -> bool {
        self.meter == Meter::All || fuel.is_some()
    }

    /// The engine without (`false`) or with (`true`) fuel metering, made on first use.
    pub fn engine(&self, metered: bool) -> Result<&Engine, EngineError> {
        let slot = &self.engines[usize::from(metered)];
        if let Some(engine) = slot.get() {
            return Ok(engine);
        }
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .consume_fuel(metered)
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(self.pool.clone()));
        let engine = Engine::new(&config).map_err(EngineError::Engine)?;
        // Loads happen one at a time (at start or reload); should two race, one engine wins
        // and the other is dropped unused.
        Ok(slot.get_or_init(|| engine))
    }

    /// Loads a component for the engine with or without fuel metering, compiling it only if
    /// no cached compilation matches its bytes.
    pub fn load(&self, path: &Path, metered: bool) -> Result<Component, EngineError> {
        let engine = self.engine(metered)?;
        let bytes = std::fs::read(path).map_err(|source| EngineError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let cached = self
            .cache_dir
            .join(format!("{}.cwasm", cache_key(engine, metered, &bytes)));
        if cached.exists() {
            // SAFETY: the cache holds only files this function wrote with
            // `precompile_component` for an engine with the same compatibility hash (part of
            // the file name); wasmtime re-checks the header and rejects mismatches.
            match unsafe { Component::deserialize_file(engine, &cached) } {
                Ok(c) => return Ok(c),
                Err(e) => {
                    tracing::warn!(file = %cached.display(), error = %e, "ignoring unusable plugin cache entry")
                }
            }
        }
        let compiled =
            engine
                .precompile_component(&bytes)
                .map_err(|source| EngineError::Compile {
                    path: path.to_path_buf(),
                    source,
                })?;
        if let Err(e) = write_atomically(&cached, &compiled) {
            tracing::warn!(dir = %self.cache_dir.display(), error = %e, "cannot cache compiled plugin");
        }
        // SAFETY: `compiled` was produced just above by this engine's `precompile_component`.
        unsafe { Component::deserialize(engine, &compiled) }.map_err(|source| {
            EngineError::Compile {
                path: path.to_path_buf(),
                source,
            }
        })
    }
}

/// The cache file name for `bytes` compiled by `engine`: the component's hash and the
/// engine's compatibility hash and whether it meters fuel.
fn cache_key(engine: &Engine, metered: bool, bytes: &[u8]) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    metered.hash(&mut h);
    format!("{}-{:016x}", hex::encode(Sha256::digest(bytes)), h.finish())
}

impl Drop for WasmEngine {
    fn drop(&mut self) {
        self.ticker.take();
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
