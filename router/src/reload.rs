//! Hot reload: on SIGHUP, or when `router.toml` or a plugin file changes, the new config is
//! loaded and its plugins compiled and checked off the request path, then swapped in at
//! once. Requests and events already running finish on the version they started with. An
//! invalid config or plugin is rejected with a log line and the running version keeps serving.
//!
//! Reloadable: routes, verification, plugins and their grants, destinations, egress rules.
//! Listener addresses, the store and `[runtime]` need a restart (a change is logged).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::config::Config;
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

async fn reload(
    live: &Live,
    old: &Config,
    path: &Path,
    store: &Arc<dyn Store>,
) -> Result<Config, BuildError> {
    let new = Config::load(path)?;
    for (what, changed) in [
        ("server.listen", new.server.listen != old.server.listen),
        (
            "server.admin_listen",
            new.server.admin_listen != old.server.admin_listen,
        ),
        ("store.url", new.store.url != old.store.url),
    ] {
        if changed {
            tracing::warn!(
                setting = what,
                "changed in the config; takes effect after a restart"
            );
        }
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
