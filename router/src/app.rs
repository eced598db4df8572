//! Wiring: builds routes, plugins, destinations and the store from a [`Config`], then
//! serves until shutdown. Nothing here binds sockets or reads signals: callers pass a bound
//! listener and a [`Shutdown`], so tests can run the whole router on port 0.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};

use crate::admin::Admin;
use crate::config::StoreLocation;
use crate::config::{Config, ConfigError};
use crate::delivery::DeliveryWorker;
use crate::delivery::destination::Destination;
use crate::delivery::http::DestinationError;
use crate::dispatch::Dispatcher;
use crate::egress::EgressPolicy;
use crate::ingress::{self, Ingress};
use crate::pipeline::engine::{EngineError, PoolLimits, WasmEngine};
use crate::pipeline::host::{Capabilities, Fetcher, PluginKv};
use crate::pipeline::{LoadError, Plugin};
use crate::reload::{Live, Snapshot};
use crate::shutdown::Shutdown;
use crate::store::postgres::PostgresStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{Store, StoreError};
use crate::verify::{BadSecret, Verifier};

/// Why the router could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// `router.toml` is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store could not be opened.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The wasm engine could not start.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A plugin could not be loaded.
    #[error(transparent)]
    Plugin(#[from] LoadError),
    /// A route's verification secret is unusable.
    #[error("route {route:?}: {source}")]
    Verify {
        /// The route.
        route: String,
        /// What is wrong with the secret.
        source: BadSecret,
    },
    /// A destination is unusable.
    #[error(transparent)]
    Destination(#[from] DestinationError),
    /// The listener failed.
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
}

/// A route ready to serve.
pub struct Route {
    /// `POST /hooks/<name>`.
    pub name: String,
    /// How requests are authenticated.
    pub verifier: Verifier,
    /// Plugins in order.
    pub steps: Vec<Arc<Plugin>>,
    /// Default destinations.
    pub to: Vec<String>,
    /// Every configured destination and its ordering key pointer, to check outputs that
    /// name their own destination and to key ordered deliveries.
    pub destinations: Arc<HashMap<String, Option<String>>>,
    /// Where the provider's delivery id is, and how long it is remembered.
    pub dedup: Dedup,
    /// Client networks allowed to post, if restricted.
    pub allow_ips: Option<Vec<ipnet::IpNet>>,
}

/// How a route finds the provider's delivery id beyond what its scheme knows.
#[derive(Debug, Clone)]
pub struct Dedup {
    /// A header holding it.
    pub header: Option<http::HeaderName>,
    /// A JSON pointer into the body holding it.
    pub pointer: Option<String>,
    /// How long a delivery id is remembered.
    pub window: Duration,
}

impl Dedup {
    /// The default window: a week, longer than any provider's retry schedule.
    pub const DEFAULT_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

    /// The configured delivery id of a request, if the route configures one and it is there.
    pub fn delivery_id(&self, headers: &http::HeaderMap, body: &[u8]) -> Option<String> {
        let from_header = self
            .header
            .as_ref()
            .and_then(|h| headers.get(h))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let from_body = || {
            let pointer = self.pointer.as_ref()?;
            let doc: serde_json::Value = serde_json::from_slice(body).ok()?;
            match doc.pointer(pointer)? {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            }
        };
        from_header
            .or_else(from_body)
            .filter(|id| !id.is_empty() && id.len() <= 256)
    }
}

/// Routes by name.
pub type Routes = HashMap<String, Arc<Route>>;

/// Plugins by name, and the engine that runs them (kept alive with them).
pub struct LoadedPlugins {
    /// The engine; dropping it stops the epoch ticker.
    pub engine: Arc<WasmEngine>,
    /// Each `[plugins.<name>]`.
    pub plugins: HashMap<String, Arc<Plugin>>,
}

/// Compiles (or loads from cache) and type-checks every plugin in the config.
pub fn load_plugins(
    config: &Config,
    kv: Arc<dyn PluginKv>,
    fetcher: Fetcher,
) -> Result<LoadedPlugins, StartError> {
    let concurrency = concurrency(config);
    let max_memory = config
        .plugins
        .values()
        .map(|p| p.memory.0)
        .max()
        .unwrap_or(0);
    let limits = PoolLimits {
        instances: (concurrency * 4 + 8) as u32,
        max_memory,
    };
    let engine = Arc::new(WasmEngine::new(limits, config.cache_dir())?);
    let mut plugins = HashMap::new();
    for (name, pc) in &config.plugins {
        let caps = Arc::new(Capabilities {
            plugin: name.as_str().into(),
            config: pc.config.to_string().into(),
            secrets: pc
                .secrets
                .iter()
                .map(|(k, v)| (k.clone(), v.expose().to_string()))
                .collect(),
            allow_http: pc.allow_http.clone(),
            http_timeout: pc.http_timeout.0,
            http_max_response: pc.http_max_response.0 as usize,
            fetcher: fetcher.clone(),
            kv: kv.clone(),
            capture_logs: false,
        });
        let plugin = Plugin::load(&engine, &config.resolve(&pc.path), pc, caps)?;
        plugins.insert(name.clone(), Arc::new(plugin));
    }
    Ok(LoadedPlugins { engine, plugins })
}

/// Runs every plugin's `validate` export: a plugin that refuses its config stops start-up,
/// `hookyard check` and reloads.
pub async fn validate_plugins(plugins: &LoadedPlugins) -> Result<(), StartError> {
    let mut names: Vec<&String> = plugins.plugins.keys().collect();
    names.sort();
    for name in names {
        plugins.plugins[name].validate().await?;
    }
    Ok(())
}

/// Plugins' kv namespaces, kept in the router's store.
pub struct StoreKv(pub Arc<dyn Store>);

#[async_trait::async_trait]
impl PluginKv for StoreKv {
    async fn get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.0.kv_get(plugin, key).await.map_err(|e| e.to_string())
    }
    async fn set(
        &self,
        plugin: &str,
        key: &str,
        value: Vec<u8>,
        expires_at: Option<crate::store::Millis>,
    ) -> Result<(), String> {
        self.0
            .kv_set(plugin, key, value, expires_at)
            .await
            .map_err(|e| e.to_string())
    }
    async fn delete(&self, plugin: &str, key: &str) -> Result<(), String> {
        self.0
            .kv_delete(plugin, key)
            .await
            .map_err(|e| e.to_string())
    }
    async fn increment(
        &self,
        plugin: &str,
        key: &str,
        delta: i64,
        expires_at: Option<crate::store::Millis>,
    ) -> Result<Option<i64>, String> {
        self.0
            .kv_increment(plugin, key, delta, expires_at)
            .await
            .map_err(|e| e.to_string())
    }
    async fn set_if_absent(
        &self,
        plugin: &str,
        key: &str,
        value: Vec<u8>,
        expires_at: Option<crate::store::Millis>,
    ) -> Result<bool, String> {
        self.0
            .kv_set_if_absent(plugin, key, value, expires_at)
            .await
            .map_err(|e| e.to_string())
    }
}

/// Builds every route: its verifier and its chain of loaded plugins.
pub fn build_routes(config: &Config, plugins: &LoadedPlugins) -> Result<Routes, StartError> {
    let known: Arc<HashMap<String, Option<String>>> = Arc::new(
        config
            .destinations
            .iter()
            .map(|(name, d)| (name.clone(), d.ordering.as_ref().map(|o| o.key.clone())))
            .collect(),
    );
    let mut routes = Routes::new();
    for rc in &config.routes {
        let name = rc.name.get_ref().clone();
        let verifier = Verifier::from_config(&rc.verify).map_err(|source| StartError::Verify {
            route: name.clone(),
            source,
        })?;
        // Config::check has already proven every step names a plugin.
        let steps = rc
            .steps
            .iter()
            .filter_map(|s| plugins.plugins.get(s.get_ref()).cloned())
            .collect();
        let bad = |reason: String| StartError::Verify {
            route: name.clone(),
            source: BadSecret(reason),
        };
        let dedup = Dedup {
            header: rc
                .dedup
                .header
                .as_deref()
                .map(|h| {
                    http::HeaderName::from_bytes(h.as_bytes())
                        .map_err(|_| bad(format!("dedup.header {h:?} is not a header name")))
                })
                .transpose()?,
            pointer: rc.dedup.pointer.clone(),
            window: rc.dedup.window.map_or(Dedup::DEFAULT_WINDOW, |w| w.0),
        };
        let route = Route {
            name: name.clone(),
            verifier,
            steps,
            to: rc.to.iter().map(|t| t.get_ref().clone()).collect(),
            destinations: known.clone(),
            dedup,
            allow_ips: rc
                .allow_ips
                .as_ref()
                .map(|l| l.iter().map(|c| c.0).collect()),
        };
        routes.insert(name, Arc::new(route));
    }
    Ok(routes)
}

/// Builds every destination; addresses given as IP literals are checked against the egress rules.
pub fn build_destinations(
    config: &Config,
    egress: Arc<EgressPolicy>,
) -> Result<HashMap<String, Destination>, StartError> {
    config
        .destinations
        .iter()
        .map(|(name, dc)| Ok((name.clone(), Destination::new(name, dc, egress.clone())?)))
        .collect()
}

fn concurrency(config: &Config) -> usize {
    config
        .runtime
        .concurrency
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .max(1)
}

/// How long in-flight requests and attempts get to finish after shutdown is triggered.
pub const GRACE: Duration = Duration::from_secs(10);

/// The bound sockets the router serves on.
pub struct Listeners {
    /// Provider-facing: `/hooks/<route>`, `/healthz`, `/readyz`.
    pub hooks: TcpListener,
    /// The admin API, when configured.
    pub admin: Option<TcpListener>,
}

impl Listeners {
    /// Binds `server.listen` and, if set, `server.admin_listen`.
    pub async fn bind(config: &Config) -> std::io::Result<Listeners> {
        let hooks = TcpListener::bind(config.server.listen).await?;
        let admin = match config.server.admin_listen {
            Some(addr) => Some(TcpListener::bind(addr).await?),
            None => None,
        };
        Ok(Listeners { hooks, admin })
    }
}

/// Runs the router on `listeners` until `shutdown` fires.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: Shutdown,
) -> Result<(), StartError> {
    let listener = listeners.hooks;
    let store: Arc<dyn Store> = match config.store_location() {
        Some(StoreLocation::Sqlite(path)) => Arc::new(SqliteStore::open(&path)?),
        Some(StoreLocation::Postgres(url)) => {
            let connections = config
                .store
                .max_connections
                .unwrap_or(crate::store::postgres::DEFAULT_CONNECTIONS);
            Arc::new(PostgresStore::open_with(&url, connections).await?)
        }
        None => {
            return Err(StoreError::Database(
                "store.url must start with sqlite:// or postgres://".to_string(),
            )
            .into());
        }
    };
    let snapshot = Snapshot::build(&config, &store, 1)?;
    validate_plugins(&snapshot.plugins).await?;
    let live = Arc::new(Live::new(snapshot));
    let concurrency = concurrency(&config);

    let (dispatch_tx, dispatch_rx) = mpsc::channel(1024);
    let wake = Arc::new(Notify::new());
    let metrics = Arc::new(crate::telemetry::Metrics::default());
    let plugin_runtime = crate::dispatch::PluginRuntime::start(concurrency)?;
    let dispatcher = Dispatcher::new(
        store.clone(),
        live.clone(),
        wake.clone(),
        concurrency,
        metrics.clone(),
        plugin_runtime.handle(),
        config.runtime.event_lease.0,
    );
    let dispatching = tokio::spawn(dispatcher.run(dispatch_rx, shutdown.clone()));
    let worker = DeliveryWorker::new(store.clone(), live.clone(), wake.clone(), metrics.clone());
    let delivering = tokio::spawn(worker.run(shutdown.clone(), GRACE));

    let admin_serving = listeners.admin.map(|admin_listener| {
        let admin = Arc::new(Admin {
            store: store.clone(),
            token: config.server.admin_token.clone(),
            live: live.clone(),
            delivery_wake: wake.clone(),
            metrics: metrics.clone(),
        });
        if let Ok(addr) = admin_listener.local_addr() {
            tracing::info!(listen = %addr, "admin API serving");
        }
        tokio::spawn(serve_http(
            admin_listener,
            crate::admin::router(admin),
            config.server.header_timeout.0,
            shutdown.clone(),
        ))
    });
    let pruning = config
        .store
        .retention
        .map(|retention| tokio::spawn(prune_forever(store.clone(), retention.0, shutdown.clone())));
    let reload_store = store.clone();
    let ingress = Arc::new(Ingress {
        live: live.clone(),
        store,
        dispatch: dispatch_tx,
        max_body: config.server.max_body.0 as usize,
        body_timeout: config.server.body_timeout.0,
        trusted_proxies: config.server.trusted_proxies.iter().map(|c| c.0).collect(),
        shutdown: shutdown.clone(),
        metrics,
        event_lease: config.runtime.event_lease.0,
    });
    tracing::info!(
        listen = %listener.local_addr()?,
        routes = config.routes.len(),
        plugins = config.plugins.len(),
        destinations = config.destinations.len(),
        "hookyard serving"
    );
    let header_timeout = config.server.header_timeout.0;
    let reloading = tokio::spawn(crate::reload::watch(
        live,
        config,
        reload_store,
        shutdown.clone(),
    ));
    serve_http(listener, ingress::router(ingress), header_timeout, shutdown).await;
    let _ = dispatching.await;
    let _ = delivering.await;
    if let Some(admin) = admin_serving {
        let _ = admin.await;
    }
    let _ = reloading.await;
    if let Some(pruning) = pruning {
        let _ = pruning.await;
    }
    // Every chain has finished (the dispatcher waits for them).
    drop(plugin_runtime);
    tracing::info!("hookyard stopped");
    Ok(())
}

/// Most events one prune deletes; a backlog is worked off in rounds of this size.
const PRUNE_BATCH: usize = 1000;

/// Deletes finished events older than `retention` (`store.retention`): at start-up, then
/// every minute, or twice per retention period when that is shorter.
async fn prune_forever(store: Arc<dyn Store>, retention: Duration, mut shutdown: Shutdown) {
    let every = (retention / 2).clamp(Duration::from_millis(100), Duration::from_secs(60));
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait() => return,
        }
        let before = crate::store::now_ms() - retention.as_millis() as crate::store::Millis;
        let mut pruned = 0;
        loop {
            match store.prune(before, PRUNE_BATCH).await {
                Ok(n) => {
                    pruned += n;
                    if n < PRUNE_BATCH || shutdown.is_fired() {
                        break;
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot prune old events");
                    break;
                }
            }
        }
        if pruned > 0 {
            tracing::info!(events = pruned, retention = ?retention, "pruned old events");
        }
    }
}

/// Accepts HTTP/1.1 connections until shutdown, then drains them for up to [`GRACE`].
async fn serve_http(
    listener: TcpListener,
    app: axum::Router,
    header_timeout: Duration,
    mut shutdown: Shutdown,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.wait() => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app
            .clone()
            .layer(axum::Extension(crate::ingress::PeerAddr(peer)));
        let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the grace period; closing them");
    }
}
