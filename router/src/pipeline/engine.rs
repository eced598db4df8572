//! The shared wasmtime [`Engine`]: pooling allocator, fuel metering, epoch interruption
//! driven by one ticker thread (a sync plugin traps at its deadline, an async one yields at
//! every tick), and an on-disk cache of compiled components.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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

/// The engine plus its epoch ticker; dropping it stops the ticker.
pub struct WasmEngine {
    engine: Engine,
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
    /// Creates the engine and starts the epoch ticker.
    pub fn new(limits: PoolLimits, cache_dir: PathBuf) -> Result<WasmEngine, EngineError> {
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
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .consume_fuel(true)
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(EngineError::Engine)?;
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let engine = engine.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("hookyard-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| EngineError::Engine(e.into()))?
        };
        Ok(WasmEngine {
            engine,
            cache_dir,
            ticker: Some(EpochTicker {
                stop,
                handle: Some(handle),
            }),
        })
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Loads a component, compiling it only if no cached compilation matches its bytes.
    pub fn load(&self, path: &Path) -> Result<Component, EngineError> {
        let bytes = std::fs::read(path).map_err(|source| EngineError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let cached = self
            .cache_dir
            .join(format!("{}.cwasm", self.cache_key(&bytes)));
        if cached.exists() {
            // SAFETY: the cache holds only files this function wrote with
            // `precompile_component` for an engine with the same compatibility hash (part of
            // the file name); wasmtime re-checks the header and rejects mismatches.
            match unsafe { Component::deserialize_file(&self.engine, &cached) } {
                Ok(c) => return Ok(c),
                Err(e) => {
                    tracing::warn!(file = %cached.display(), error = %e, "ignoring unusable plugin cache entry")
                }
            }
        }
        let compiled =
            self.engine
                .precompile_component(&bytes)
                .map_err(|source| EngineError::Compile {
                    path: path.to_path_buf(),
                    source,
                })?;
        if let Err(e) = write_atomically(&cached, &compiled) {
            tracing::warn!(dir = %self.cache_dir.display(), error = %e, "cannot cache compiled plugin");
        }
        // SAFETY: `compiled` was produced just above by this engine's `precompile_component`.
        unsafe { Component::deserialize(&self.engine, &compiled) }.map_err(|source| {
            EngineError::Compile {
                path: path.to_path_buf(),
                source,
            }
        })
    }

    fn cache_key(&self, bytes: &[u8]) -> String {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        format!("{}-{:016x}", hex::encode(Sha256::digest(bytes)), h.finish())
    }
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
