//! `[server]`, `[store]`, `[runtime]` and `[egress]`.

use super::*;

/// `[server]`.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Provider-facing address, e.g. `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Largest accepted request body; larger is 413.
    #[serde(default = "default_max_body")]
    pub max_body: ByteSize,
    /// How long a client may take to send the request headers.
    #[serde(default = "default_header_timeout")]
    pub header_timeout: Dur,
    /// How long a client may take to send the body once headers are in.
    #[serde(default = "default_body_timeout")]
    pub body_timeout: Dur,
    /// Address of the admin API (`/admin/...`); off when unset.
    pub admin_listen: Option<SocketAddr>,
    /// Bearer token the admin API requires.
    pub admin_token: Option<Secret>,
    /// Serve the admin API without a token; allowed only on a loopback `admin_listen`.
    #[serde(default)]
    pub admin_without_token: bool,
    /// Proxies whose `X-Forwarded-For` is believed when checking a route's `allow_ips`.
    #[serde(default)]
    pub trusted_proxies: Vec<Cidr>,
    /// Most work waiting (events not yet through their plugins plus deliveries due now)
    /// before ingress answers `503` with `Retry-After` instead of accepting more; providers
    /// retry later. Off by default.
    pub max_backlog: Option<u64>,
}

/// `[egress]`: which addresses outbound calls (destinations, plugin fetches) may reach.
///
/// Private, loopback, link-local and other non-public ranges are blocked unless listed here.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct EgressConfig {
    /// CIDR ranges opened on purpose, e.g. `["127.0.0.0/8", "10.1.0.0/16"]`.
    #[serde(default)]
    pub allow_private: Vec<Cidr>,
}

/// An IP network written `10.0.0.0/8` or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr(pub ipnet::IpNet);

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if let Ok(net) = s.parse::<ipnet::IpNet>() {
            return Ok(Cidr(net.trunc()));
        }
        s.parse::<std::net::IpAddr>()
            .map(|ip| Cidr(ipnet::IpNet::from(ip)))
            .map_err(|_| {
                serde::de::Error::custom(format!(
                    "invalid network {s:?}; write e.g. \"127.0.0.0/8\""
                ))
            })
    }
}

fn default_max_body() -> ByteSize {
    ByteSize(1024 * 1024)
}
fn default_header_timeout() -> Dur {
    Dur(Duration::from_secs(10))
}
fn default_body_timeout() -> Dur {
    Dur(Duration::from_secs(30))
}

/// `[store]`.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://path/to/file.db` (relative to the config file), or
    /// `postgres://user:password@host:port/database` for several nodes sharing the work.
    pub url: Secret,
    /// PostgreSQL only: most connections this node opens (default 16).
    pub max_connections: Option<usize>,
    /// PostgreSQL only: hear at once, by `LISTEN`, when another node leaves work in the
    /// store (default `true`). Set `false` behind PgBouncer in transaction mode, where
    /// `LISTEN` does not work; nodes then find each other's work by polling every second.
    pub listen: Option<bool>,
    /// PostgreSQL only: keep the statements run for every event prepared on each connection,
    /// so the server parses and plans them once (default `true`). Set `false` behind PgBouncer
    /// in transaction mode older than 1.21, which cannot keep prepared statements.
    pub statement_cache: Option<bool>,
    /// Finished events older than this are deleted with their deliveries and attempts
    /// (dead letters included); events with deliveries still due are kept. Default: keep
    /// everything.
    pub retention: Option<Dur>,
}

/// `[runtime]`: the plugin engine.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Where compiled plugins are cached; default `$XDG_CACHE_HOME/hookyard` or `~/.cache/hookyard`.
    pub cache_dir: Option<PathBuf>,
    /// How many events run through plugins at once; default: twice the number of CPUs.
    pub concurrency: Option<usize>,
    /// How long an event being run through its plugins stays claimed by the node that took
    /// it; if that node dies, another takes the event over once this has passed. Keep it
    /// well above the plugins' timeouts added up. Default `60s`, at least `1s`.
    #[serde(default = "default_event_lease")]
    pub event_lease: Dur,
    /// Events ingress hands to the plugins in memory, without a store read; beyond it,
    /// events wait in the store and are claimed from there in batches. Default 1024.
    #[serde(default = "default_memory_queue")]
    pub memory_queue: usize,
    /// How long ingress waits for room in the memory queue before it journals an event for a
    /// claim from the store instead. Default `50ms`; `0s` never waits.
    #[serde(default = "default_memory_queue_wait")]
    pub memory_queue_wait: Dur,
    /// Most delivery attempts in flight at once, to all destinations together (each
    /// destination also has its own `concurrency`). Default 512.
    #[serde(default = "default_max_deliveries_in_flight")]
    pub max_deliveries_in_flight: usize,
}

fn default_max_deliveries_in_flight() -> usize {
    512
}

fn default_memory_queue() -> usize {
    1024
}

fn default_memory_queue_wait() -> Dur {
    Dur(std::time::Duration::from_millis(50))
}

fn default_event_lease() -> Dur {
    Dur(std::time::Duration::from_secs(60))
}

impl RuntimeConfig {
    /// Events run through plugins at once: `concurrency`, else two per CPU. With one per CPU
    /// a worker that finishes a chain waits for the dispatcher (on the busy ingress runtime)
    /// to give it the next, and the plugin stage fell behind ingress with its threads mostly
    /// idle; with two, another chain runs meanwhile (docs/benchmarks.md).
    pub fn workers(&self) -> usize {
        self.concurrency
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()) * 2)
            .max(1)
    }
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            cache_dir: None,
            concurrency: None,
            event_lease: default_event_lease(),
            memory_queue: default_memory_queue(),
            memory_queue_wait: default_memory_queue_wait(),
            max_deliveries_in_flight: default_max_deliveries_in_flight(),
        }
    }
}

/// `[telemetry]`: OpenTelemetry traces, off unless `otlp_endpoint` is set.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// The OTLP/HTTP collector, e.g. `http://collector:4318` (`/v1/traces` is added unless
    /// the URL has a path of its own).
    pub otlp_endpoint: Option<String>,
    /// The `service.name` spans carry. Default `hookyard`.
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// Share of traces kept, `0.0` to `1.0`, decided by trace id (so every stage and node
    /// agrees); a sender's `traceparent` decision is followed. Default `1.0`.
    #[serde(default = "default_sample_ratio")]
    pub sample_ratio: f64,
}

impl Default for TelemetryConfig {
    fn default() -> TelemetryConfig {
        TelemetryConfig {
            otlp_endpoint: None,
            service_name: default_service_name(),
            sample_ratio: default_sample_ratio(),
        }
    }
}

fn default_service_name() -> String {
    "hookyard".to_string()
}

fn default_sample_ratio() -> f64 {
    1.0
}
