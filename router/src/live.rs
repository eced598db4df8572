//! What is in force now: the routes, plugins and destinations built from one version of the
//! config ([`Snapshot`]), and the handle every stage reads them through ([`Live`]). Hot
//! reload builds a new snapshot and swaps it in; a request or event keeps the version it
//! started with.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::config::{Config, ConfigError, Secret};
use crate::destinations::Destination;
use crate::destinations::http::DestinationError;
use crate::egress::EgressPolicy;
use crate::pipeline::engine::{EngineError, PoolLimits, WasmEngine};
use crate::pipeline::host::{Capabilities, Fetcher, PluginKv};
use crate::pipeline::{LoadError, Plugin};
use crate::store::Store;
use crate::verify::{BadSecret, Verifier};

/// Why a version of the config could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// `router.toml` is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
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
    /// A reload changes settings that only take effect at start-up (named, comma-separated).
    #[error(
        "{0} changed, which takes effect only at start-up: restart hookyard to apply this config"
    )]
    NeedsRestart(String),
    /// The build was cut short (its thread stopped).
    #[error("building the new version stopped: {0}")]
    Interrupted(String),
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
    /// For a polled route, what to poll.
    pub poll: Option<Arc<crate::config::PollConfig>>,
    /// When a step has a `shadow` candidate: the chain with the candidates in, run beside
    /// the live one, and what comparing them found.
    pub shadow: Option<RouteShadow>,
    /// Made by the router for its own events (alerts): nobody posts to it.
    pub internal: bool,
}

/// A route's live shadow (see [`crate::shadow`]).
pub struct RouteShadow {
    /// The steps, each replaced by its candidate where it has one.
    pub steps: Vec<Arc<Plugin>>,
    /// The comparisons so far.
    pub board: Arc<crate::shadow::Board>,
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
    /// The candidate versions of plugins that set `shadow`, by plugin name.
    pub shadows: HashMap<String, Arc<Plugin>>,
}

/// Compiles (or loads from cache) and type-checks every plugin in the config.
pub fn load_plugins(
    config: &Config,
    kv: Arc<dyn PluginKv>,
    fetcher: Fetcher,
) -> Result<LoadedPlugins, BuildError> {
    let concurrency = config.runtime.workers();
    let max_memory = config
        .plugins
        .values()
        .map(|p| p.memory.0)
        .max()
        .unwrap_or(0);
    let shadowed = config
        .plugins
        .values()
        .filter(|p| p.shadow.is_some())
        .count();
    let limits = PoolLimits {
        instances: ((concurrency * 4 + 8) * if shadowed > 0 { 2 } else { 1 }) as u32,
        max_memory,
    };
    let engine = Arc::new(WasmEngine::new(limits, config.cache_dir())?);
    let mut plugins = HashMap::new();
    let mut shadows = HashMap::new();
    for (name, pc) in &config.plugins {
        let caps = Arc::new(Capabilities::granted(name, pc, fetcher.clone(), kv.clone()));
        let plugin = Plugin::load(&engine, &config.resolve(&pc.path), pc, caps)?;
        plugins.insert(name.clone(), Arc::new(plugin));
        if let Some(path) = &pc.shadow {
            let mut candidate = pc.clone();
            candidate.path = path.clone();
            if let Some(c) = &pc.shadow_config {
                candidate.config = c.clone();
            }
            // A candidate changes nothing: its kv writes stay in a scratch layer over the
            // live kv, and it may fetch only to read.
            let fetcher = match &fetcher {
                Fetcher::Http { client, egress } | Fetcher::ReadOnly { client, egress } => {
                    Fetcher::ReadOnly {
                        client: client.clone(),
                        egress: egress.clone(),
                    }
                }
                other => other.clone(),
            };
            let caps = Arc::new(Capabilities::granted(
                name,
                &candidate,
                fetcher,
                Arc::new(crate::pipeline::host::OverlayKv::new(kv.clone())),
            ));
            let plugin = Plugin::load(&engine, &config.resolve(path), &candidate, caps)?;
            shadows.insert(name.clone(), Arc::new(plugin));
        }
    }
    Ok(LoadedPlugins {
        engine,
        plugins,
        shadows,
    })
}

/// Runs every plugin's `validate` export: a plugin that refuses its config stops start-up,
/// `hookyard check` and reloads.
pub async fn validate_plugins(plugins: &LoadedPlugins) -> Result<(), BuildError> {
    let mut names: Vec<&String> = plugins.plugins.keys().collect();
    names.sort();
    for name in names {
        plugins.plugins[name].validate().await?;
        if let Some(candidate) = plugins.shadows.get(name) {
            candidate.validate().await?;
        }
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
    async fn count(&self, plugin: &str) -> Result<u64, String> {
        self.0.kv_count(plugin).await.map_err(|e| e.to_string())
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
pub fn build_routes(config: &Config, plugins: &LoadedPlugins) -> Result<Routes, BuildError> {
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
        let verifier = match &rc.verify {
            None => Verifier::Polled,
            Some(v) => Verifier::from_config(v).map_err(|source| BuildError::Verify {
                route: name.clone(),
                source,
            })?,
        };
        // Config::check has already proven every step names a plugin.
        let steps = rc
            .steps
            .iter()
            .filter_map(|s| plugins.plugins.get(s.get_ref()).cloned())
            .collect();
        let bad = |reason: String| BuildError::Verify {
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
            window: rc.dedup.window(),
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
            poll: rc.poll.clone().map(Arc::new),
            shadow: rc
                .steps
                .iter()
                .any(|s| plugins.shadows.contains_key(s.get_ref()))
                .then(|| RouteShadow {
                    steps: rc
                        .steps
                        .iter()
                        .filter_map(|s| {
                            plugins
                                .shadows
                                .get(s.get_ref())
                                .or_else(|| plugins.plugins.get(s.get_ref()))
                                .cloned()
                        })
                        .collect(),
                    board: Default::default(),
                }),
            internal: false,
        };
        routes.insert(name, Arc::new(route));
    }
    if let Some(alerts) = &config.alerts {
        // Alerts are events of their own route: its steps, then `alerts.to`.
        let route = Route {
            name: crate::config::ALERTS_ROUTE.to_string(),
            verifier: Verifier::Polled,
            steps: alerts
                .steps
                .iter()
                .filter_map(|s| plugins.plugins.get(s.get_ref()).cloned())
                .collect(),
            to: alerts.to.iter().map(|t| t.get_ref().clone()).collect(),
            destinations: known.clone(),
            dedup: Dedup {
                header: None,
                pointer: None,
                window: alerts.debounce.0,
            },
            allow_ips: None,
            poll: None,
            shadow: None,
            internal: true,
        };
        routes.insert(route.name.clone(), Arc::new(route));
    }
    Ok(routes)
}

/// Builds every destination; addresses given as IP literals are checked against the egress rules.
pub fn build_destinations(
    config: &Config,
    egress: Arc<EgressPolicy>,
) -> Result<HashMap<String, Destination>, BuildError> {
    config
        .destinations
        .iter()
        .map(|(name, dc)| Ok((name.clone(), Destination::new(name, dc, egress.clone())?)))
        .collect()
}

/// One consistent version of everything a reload can change.
pub struct Snapshot {
    /// Increases by one per successful reload.
    pub generation: u64,
    /// Routes by name.
    pub routes: Routes,
    /// Destinations by name.
    pub destinations: HashMap<String, Destination>,
    /// The HTTP client deliveries use (it carries the egress rules).
    pub client: reqwest::Client,
    /// The egress rules, for URLs whose host is an address (the client's resolver checks names).
    pub egress: Arc<EgressPolicy>,
    /// The compiled plugins and their engine, kept alive while this version is in use.
    pub plugins: LoadedPlugins,
    /// The token the admin API and UI require (`server.admin_token`); `None` only where the
    /// config serves them without one. Part of the version so that a reload rotates it.
    pub admin_token: Option<Secret>,
    /// `[alerts]`, when configured.
    pub alerts: Option<Arc<crate::config::AlertsConfig>>,
}

impl Snapshot {
    /// Builds a version from `config`. Compiles plugins: call off the async workers.
    pub fn build(
        config: &Config,
        store: &Arc<dyn Store>,
        generation: u64,
    ) -> Result<Snapshot, BuildError> {
        let egress = Arc::new(EgressPolicy::new(&config.egress));
        let client = crate::destinations::http::client(egress.clone());
        let fetcher = Fetcher::Http {
            client: client.clone(),
            egress: egress.clone(),
        };
        let plugins = load_plugins(config, Arc::new(StoreKv(store.clone())), fetcher)?;
        let routes = build_routes(config, &plugins)?;
        let destinations = build_destinations(config, egress.clone())?;
        Ok(Snapshot {
            generation,
            routes,
            destinations,
            client,
            egress,
            plugins,
            admin_token: config.server.admin_token.clone(),
            alerts: config.alerts.clone().map(Arc::new),
        })
    }
}

/// The version in use; readers take an `Arc` and keep it for the request or event.
pub struct Live(RwLock<Arc<Snapshot>>);

impl Live {
    /// Starts with `snapshot`.
    pub fn new(snapshot: Snapshot) -> Live {
        Live(RwLock::new(Arc::new(snapshot)))
    }

    /// The current version.
    pub fn get(&self) -> Arc<Snapshot> {
        match self.0.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Puts `snapshot` in force; versions already taken stay alive with their holders.
    pub fn swap(&self, snapshot: Snapshot) {
        let mut guard = match self.0.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        *guard = Arc::new(snapshot);
    }
}
