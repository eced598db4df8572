//! Hot reload: on SIGHUP, or when `router.toml` or a plugin file changes, the new config is
//! loaded and its plugins compiled and checked off the request path, then swapped in at
//! once. Requests and events already running finish on the version they started with. An
//! invalid config or plugin is rejected with a log line and the running version keeps serving.
//!
//! Reloadable: routes, verification, plugins and their grants, destinations, egress rules,
//! and `server.admin_token` (which also ends UI sessions). A new config that changes a setting
//! read only at start-up (listeners, body and header limits, `trusted_proxies`,
//! `max_backlog`, `[store]`, `[runtime]`) is refused as a whole, naming each such setting:
//! applying the rest would leave the running router differ silently from its file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::config::{Config, RuntimeConfig, ServerConfig, StoreConfig};
use crate::live::{BuildError, Live, Snapshot};
use crate::shutdown::Shutdown;
use crate::store::Store;

/// Size and modification time of each watched file.
type Fingerprint = Vec<(PathBuf, Option<(u64, SystemTime)>)>;

fn fingerprint(config: &Config, path: &Path) -> Fingerprint {
    let mut files = vec![path.to_path_buf()];
    files.extend(config.plugins.values().map(|p| config.resolve(&p.path)));
    files
        .into_iter()
        .map(|f| {
            let meta = std::fs::metadata(&f)
                .ok()
                .and_then(|m| Some((m.len(), m.modified().ok()?)));
            (f, meta)
        })
        .collect()
}

/// How often files are checked for changes.
const POLL: Duration = Duration::from_secs(1);

/// Watches for SIGHUP and file changes until `shutdown`, reloading into `live`.
pub async fn watch(
    live: Arc<Live>,
    mut config: Config,
    store: Arc<dyn Store>,
    mut shutdown: Shutdown,
) {
    let Some(path) = config.source.clone() else {
        return;
    };
    let mut seen = fingerprint(&config, &path);
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        #[cfg(unix)]
        let hangup = async {
            match hup.as_mut() {
                Some(h) => {
                    h.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let hangup = std::future::pending::<()>();
        let why = tokio::select! {
            _ = hangup => "SIGHUP",
            _ = tokio::time::sleep(POLL) => {
                let now = fingerprint(&config, &path);
                if now == seen {
                    continue;
                }
                "a file changed"
            }
            _ = shutdown.wait() => return,
        };
        match reload(&live, &config, &path, &store).await {
            Ok(new_config) => config = new_config,
            Err(e) => {
                tracing::error!(trigger = why, error = %e, "reload rejected; the running version keeps serving")
            }
        }
        // Remember the files as they are now, so a rejected version is not retried until
        // it changes again.
        seen = fingerprint(&config, &path);
        if let Ok(candidate) = Config::load(&path) {
            seen = fingerprint(&candidate, &path);
        }
    }
}

/// The settings that differ between `old` and `new` but are read only at start-up. The
/// structs are taken apart field by field, so a new setting cannot be forgotten here: it
/// must be named either as restart-only or as applied by a reload.
fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let ServerConfig {
        listen,
        max_body,
        header_timeout,
        body_timeout,
        admin_listen,
        admin_token: _,
        admin_without_token: _,
        trusted_proxies,
        max_backlog,
    } = &new.server;
    let StoreConfig {
        url,
        max_connections,
        listen: store_listen,
        statement_cache,
        retention,
    } = &new.store;
    let RuntimeConfig {
        cache_dir,
        concurrency,
        event_lease,
        memory_queue,
        memory_queue_wait,
        max_deliveries_in_flight,
    } = &new.runtime;
    let (s, st, r) = (&old.server, &old.store, &old.runtime);
    [
        ("server.listen", s.listen != *listen),
        ("server.admin_listen", s.admin_listen != *admin_listen),
        ("server.max_body", s.max_body != *max_body),
        ("server.header_timeout", s.header_timeout != *header_timeout),
        ("server.body_timeout", s.body_timeout != *body_timeout),
        (
            "server.trusted_proxies",
            s.trusted_proxies != *trusted_proxies,
        ),
        ("server.max_backlog", s.max_backlog != *max_backlog),
        ("store.url", st.url != *url),
        (
            "store.max_connections",
            st.max_connections != *max_connections,
        ),
        ("store.listen", st.listen != *store_listen),
        (
            "store.statement_cache",
            st.statement_cache != *statement_cache,
        ),
        ("store.retention", st.retention != *retention),
        ("runtime.cache_dir", r.cache_dir != *cache_dir),
        ("runtime.concurrency", r.concurrency != *concurrency),
        ("runtime.event_lease", r.event_lease != *event_lease),
        ("runtime.memory_queue", r.memory_queue != *memory_queue),
        (
            "runtime.memory_queue_wait",
            r.memory_queue_wait != *memory_queue_wait,
        ),
        (
            "runtime.max_deliveries_in_flight",
            r.max_deliveries_in_flight != *max_deliveries_in_flight,
        ),
        ("[telemetry]", old.telemetry != new.telemetry),
    ]
    .into_iter()
    .filter_map(|(name, changed)| changed.then_some(name))
    .collect()
}

async fn reload(
    live: &Live,
    old: &Config,
    path: &Path,
    store: &Arc<dyn Store>,
) -> Result<Config, BuildError> {
    let new = Config::load(path)?;
    let frozen = restart_only_changes(old, &new);
    if !frozen.is_empty() {
        return Err(BuildError::NeedsRestart(frozen.join(", ")));
    }
    let generation = live.get().generation + 1;
    let (store, config) = (store.clone(), new);
    let runtime = tokio::runtime::Handle::current();
    // Compiling plugins and running their `validate` export are CPU work (a sync plugin's
    // validate runs on the calling thread), so both stay off the runtime's workers.
    let (snapshot, config) = tokio::task::spawn_blocking(move || {
        let snapshot = Snapshot::build(&config, &store, generation).and_then(|snapshot| {
            runtime.block_on(crate::live::validate_plugins(&snapshot.plugins))?;
            Ok(snapshot)
        });
        (snapshot, config)
    })
    .await
    .map_err(|e| BuildError::Interrupted(e.to_string()))?;
    live.swap(snapshot?);
    tracing::info!(
        generation,
        routes = config.routes.len(),
        plugins = config.plugins.len(),
        "reloaded"
    );
    Ok(config)
}
