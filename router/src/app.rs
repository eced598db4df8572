//! Wiring: opens the store, builds what is in force ([`crate::live`]) from a [`Config`],
//! starts the stages, then serves until shutdown. Nothing here binds sockets or reads
//! signals: callers pass a bound listener and a [`Shutdown`], so tests can run the whole
//! router on port 0.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::admin::Admin;
use crate::config::{Config, StoreLocation};
use crate::delivery::DeliveryWorker;
use crate::dispatch::Dispatcher;
use crate::ingress::{self, Ingress};
use crate::live::{BuildError, Live, Snapshot};
use crate::shutdown::Shutdown;
use crate::store::postgres::PostgresStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{Store, StoreError};

/// Why the router could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The config, a plugin, a route or a destination could not be built.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The store could not be opened.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The listener failed.
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
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
            let options = crate::store::postgres::PgOptions {
                max_connections: connections,
                listen: config.store.listen.unwrap_or(true),
                statement_cache: config.store.statement_cache.unwrap_or(true),
            };
            Arc::new(PostgresStore::open_with_options(&url, options).await?)
        }
        None => {
            return Err(StoreError::Database(
                "store.url must start with sqlite:// or postgres://".to_string(),
            )
            .into());
        }
    };
    let snapshot = Snapshot::build(&config, &store, 1)?;
    crate::live::validate_plugins(&snapshot.plugins).await?;
    let live = Arc::new(Live::new(snapshot));
    let concurrency = config.runtime.workers();

    let (handoff, inbox) = crate::dispatch::Handoff::new(config.runtime.memory_queue);
    let (deliveries, delivery_inbox) =
        crate::delivery::DeliveryHandoff::new(config.runtime.max_deliveries_in_flight);
    let wake = Arc::new(Notify::new());
    let metrics = Arc::new(crate::telemetry::Metrics::default());
    let activity = crate::activity::Activity::default();
    let sampling = tokio::spawn(crate::activity::sample_backlog(
        activity.clone(),
        store.clone(),
        shutdown.clone(),
    ));
    let (alerter, signals) = crate::alerts::Alerter::new();
    let alerts = crate::alerts::Board::default();
    let alerting = tokio::spawn(crate::alerts::run(
        signals,
        store.clone(),
        live.clone(),
        handoff.waker(),
        alerts.clone(),
        shutdown.clone(),
    ));
    let plugin_runtime = crate::dispatch::PluginRuntime::start(concurrency)?;
    let dispatcher = Dispatcher::new(
        store.clone(),
        live.clone(),
        wake.clone(),
        deliveries,
        alerter.clone(),
        activity.clone(),
        concurrency,
        metrics.clone(),
        plugin_runtime.handle(),
        config.runtime.event_lease.0,
    );
    let dispatching = tokio::spawn(dispatcher.run(inbox, shutdown.clone()));
    let relaying = {
        let (store, shutdown) = (store.clone(), shutdown.clone());
        let wakers = crate::store::Wakers {
            events: handoff.waker(),
            deliveries: wake.clone(),
        };
        tokio::spawn(async move { store.relay_wake_ups(wakers, shutdown).await })
    };
    let worker = DeliveryWorker::new(
        store.clone(),
        live.clone(),
        wake.clone(),
        metrics.clone(),
        alerter.clone(),
        activity.clone(),
    );
    let delivering = tokio::spawn(worker.run(delivery_inbox, shutdown.clone(), GRACE));
    let polls = crate::poll::PollBoard::default();
    let polling = tokio::spawn(crate::poll::run(
        store.clone(),
        live.clone(),
        handoff.waker(),
        metrics.clone(),
        polls.clone(),
        alerter.clone(),
        shutdown.clone(),
    ));

    let admin_serving = listeners.admin.map(|admin_listener| {
        let admin = Arc::new(Admin {
            listen: admin_listener.local_addr().ok(),
            store: store.clone(),
            live: live.clone(),
            delivery_wake: wake.clone(),
            metrics: metrics.clone(),
            polls: polls.clone(),
            alerter: alerter.clone(),
            alerts: alerts.clone(),
            activity: activity.clone(),
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
    let backpressure = Arc::new(crate::backlog::Backpressure::new(config.server.max_backlog));
    let watching_backlog =
        tokio::spawn(backpressure.clone().watch(store.clone(), shutdown.clone()));
    let reload_store = store.clone();
    let store_health = Arc::new(crate::ingress::StoreHealth::default());
    let probing = tokio::spawn(store_health.clone().watch(store.clone(), shutdown.clone()));
    let ingress = Arc::new(Ingress {
        live: live.clone(),
        store,
        dispatch: handoff,
        max_body: config.server.max_body.0 as usize,
        body_timeout: config.server.body_timeout.0,
        trusted_proxies: config.server.trusted_proxies.iter().map(|c| c.0).collect(),
        shutdown: shutdown.clone(),
        metrics,
        event_lease: config.runtime.event_lease.0,
        memory_queue_wait: config.runtime.memory_queue_wait.0,
        backpressure,
        store_health: store_health.clone(),
        activity: activity.clone(),
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
    let _ = polling.await;
    let _ = alerting.await;
    let _ = sampling.await;
    if let Some(admin) = admin_serving {
        let _ = admin.await;
    }
    let _ = reloading.await;
    let _ = watching_backlog.await;
    let _ = probing.await;
    let _ = relaying.await;
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
