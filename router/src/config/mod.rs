//! `router.toml`: the one config tree, parsed with serde and checked across fields.
//!
//! Every table rejects unknown keys. `${VAR}` in a secret or URL reads the environment;
//! a missing variable is an error naming it and the line. Cross-field checks (a route
//! naming an undefined plugin or destination) also name the line.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use toml::Spanned;

mod alerts;
mod destination;
mod plugin;
mod presets;
mod route;
mod server;
mod values;

pub use alerts::*;
pub use destination::*;
pub use plugin::*;
pub use presets::*;
pub use route::*;
pub use server::*;
pub use values::*;

/// Why a config could not be loaded. The message names the file and, where known, the line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML is malformed, a key is unknown, a value has the wrong type or an env var is missing.
    #[error("{path}: {message}")]
    Parse {
        /// The config file.
        path: PathBuf,
        /// toml's message, which includes line, column and the offending key.
        message: String,
    },
    /// The file parses but contradicts itself (e.g. a route names an undefined plugin).
    #[error("{path}:{line}: {message}")]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// 1-based line of the offending value.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// The whole `router.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listeners and request limits.
    pub server: ServerConfig,
    /// Where events and deliveries are journaled.
    pub store: StoreConfig,
    /// Plugin engine settings.
    #[serde(default)]
    pub runtime: RuntimeConfig,
    /// Named wasm plugins that routes chain as steps.
    #[serde(default)]
    pub plugins: BTreeMap<String, PluginConfig>,
    /// Named places outputs are delivered to.
    #[serde(default)]
    pub destinations: BTreeMap<String, DestinationConfig>,
    /// `POST /hooks/<name>` endpoints.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Rules for every outbound connection.
    #[serde(default)]
    pub egress: EgressConfig,
    /// OpenTelemetry traces.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// Who is told when deliveries start dying, and of what.
    pub alerts: Option<AlertsConfig>,
    /// The directory of the config file; relative paths in it resolve from here.
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// The file it was loaded from, when it came from a file (hot reload watches it).
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// Where the journal lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// The embedded store: one SQLite file (resolved against the config file's directory).
    Sqlite(PathBuf),
    /// A PostgreSQL database shared by several router nodes (the whole URL, a secret).
    Postgres(String),
}

/// The longest `timeout` a destination may have (see the delivery worker's lease).
pub const MAX_DESTINATION_TIMEOUT: Duration = Duration::from_secs(120);

impl Config {
    /// Reads, parses and checks a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base_dir = path
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let mut config = Config::parse(&text, path, base_dir)?;
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    /// Parses and checks config text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path, base_dir: PathBuf) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        config.base_dir = base_dir;
        config.check(text, path)?;
        Ok(config)
    }

    /// Settings of `route` that would silently switch a protection off: a replay or a
    /// duplicate that should be refused would get through. Said at `hookyard check` and
    /// start-up rather than found out in production.
    fn weakened_protection(&self, route: &RouteConfig) -> Option<String> {
        let v = route.verify.as_ref()?;
        if let Some(pointer) = &route.dedup.pointer
            && !pointer.is_empty()
            && !pointer.starts_with('/')
        {
            return Some(format!(
                "dedup.pointer {pointer:?} must start with '/' (a JSON pointer such as \"/{pointer}\"); \
                 as written it never matches and no duplicate is ever dropped"
            ));
        }
        if v.scheme == Scheme::Hmac
            && v.timestamp_header.is_some()
            && v.signed_content
                .as_ref()
                .is_some_and(|c| !c.contains("{timestamp}"))
        {
            return Some(
                "verify.timestamp_header is set but verify.signed_content has no {timestamp}: \
                 the timestamp would not be signed, so old requests could be replayed with a new one"
                    .into(),
            );
        }
        let dedups =
            route.dedup.header.is_some() || route.dedup.pointer.is_some() || v.scheme.dedups();
        if !dedups {
            return None;
        }
        let window = route.dedup.window();
        let timestamped = v.scheme.timestamped(v);
        if let Some(tolerance) = v.tolerance
            && timestamped
            && tolerance.0 > window
        {
            return Some(format!(
                "verify.tolerance ({}) is longer than dedup.window ({}): a signed request could \
                 be replayed once its delivery id is forgotten and still be in time",
                humantime::format_duration(tolerance.0),
                humantime::format_duration(window)
            ));
        }
        if let Some(retention) = self.store.retention
            && retention.0 < window
        {
            return Some(format!(
                "store.retention ({}) is shorter than dedup.window ({}): delivery ids are \
                 forgotten with their events, and duplicates would get through; lengthen the \
                 retention or shorten the window",
                humantime::format_duration(retention.0),
                humantime::format_duration(window)
            ));
        }
        None
    }

    fn check(&self, text: &str, path: &Path) -> Result<(), ConfigError> {
        let invalid = |span: std::ops::Range<usize>, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            line: line_of(text, span.start),
            message,
        };
        for name in self.plugins.keys() {
            // Plugin names key their kv space; the router keeps its own under names with '/'.
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
            {
                let at = text.find(&format!("[plugins.\"{name}\"")).unwrap_or(0);
                return Err(invalid(
                    at..at,
                    format!(
                        "plugin name {name:?} must be non-empty and use only letters, digits, '-', '_' and '.'"
                    ),
                ));
            }
        }
        let mut seen = HashSet::new();
        for route in &self.routes {
            let name = route.name.get_ref();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
            {
                return Err(invalid(
                    route.name.span(),
                    format!(
                        "route name {name:?} must be non-empty and use only letters, digits, '-', '_' and '.'"
                    ),
                ));
            }
            if !seen.insert(name.as_str()) {
                return Err(invalid(
                    route.name.span(),
                    format!("route {name:?} is defined twice"),
                ));
            }
            match (&route.verify, &route.poll) {
                (None, None) => {
                    return Err(invalid(
                        route.name.span(),
                        format!(
                            "route {name:?}: set verify (how posts are authenticated), or [routes.poll] for an API that is polled"
                        ),
                    ));
                }
                (Some(_), Some(_)) => {
                    return Err(invalid(
                        route.name.span(),
                        format!(
                            "route {name:?}: a polled route takes no verify (nothing is posted to it)"
                        ),
                    ));
                }
                (None, Some(poll)) => {
                    if let Err(message) = poll.check() {
                        return Err(invalid(
                            route.name.span(),
                            format!("route {name:?}: poll.{message}"),
                        ));
                    }
                }
                (Some(_), None) => {}
            }
            if let Some(message) = self.weakened_protection(route) {
                return Err(invalid(
                    route.name.span(),
                    format!("route {name:?}: {message}"),
                ));
            }
            for step in &route.steps {
                if !self.plugins.contains_key(step.get_ref()) {
                    return Err(invalid(
                        step.span(),
                        format!(
                            "route {name:?}: step {:?} is not defined under [plugins]",
                            step.get_ref()
                        ),
                    ));
                }
            }
            for dest in &route.to {
                if !self.destinations.contains_key(dest.get_ref()) {
                    return Err(invalid(
                        dest.span(),
                        format!(
                            "route {name:?}: destination {:?} is not defined under [destinations]",
                            dest.get_ref()
                        ),
                    ));
                }
            }
        }
        if let Some(alerts) = &self.alerts {
            if alerts.to.is_empty() {
                return Err(ConfigError::Invalid {
                    path: path.to_path_buf(),
                    line: find_line(text, "[alerts]"),
                    message: "alerts.to must name at least one destination".into(),
                });
            }
            for dest in &alerts.to {
                if !self.destinations.contains_key(dest.get_ref()) {
                    return Err(invalid(
                        dest.span(),
                        format!(
                            "alerts.to: destination {:?} is not defined under [destinations]",
                            dest.get_ref()
                        ),
                    ));
                }
            }
            for step in &alerts.steps {
                if !self.plugins.contains_key(step.get_ref()) {
                    return Err(invalid(
                        step.span(),
                        format!(
                            "alerts.steps: {:?} is not defined under [plugins]",
                            step.get_ref()
                        ),
                    ));
                }
            }
            if !(0.0..=1.0).contains(&alerts.plugin_failure_rate) {
                return Err(ConfigError::Invalid {
                    path: path.to_path_buf(),
                    line: find_line(text, "plugin_failure_rate"),
                    message: "alerts.plugin_failure_rate must be between 0.0 and 1.0".into(),
                });
            }
        }
        for (name, dest) in &self.destinations {
            let line = find_line(text, &format!("[destinations.{name}]"));
            let fail = |message: String| ConfigError::Invalid {
                path: path.to_path_buf(),
                line,
                message: format!("destination {name:?}: {message}"),
            };
            match (&dest.url, &dest.smtp) {
                (Some(url), None) => {
                    let url = url.expose();
                    if !(url.starts_with("http://") || url.starts_with("https://")) {
                        return Err(fail("url must start with http:// or https://".into()));
                    }
                    let smtp_keys = [
                        (dest.tls.is_some(), "tls"),
                        (dest.username.is_some(), "username"),
                        (dest.password.is_some(), "password"),
                        (dest.from.is_some(), "from"),
                        (dest.reply_to.is_some(), "reply_to"),
                        (dest.helo_name.is_some(), "helo_name"),
                    ];
                    if let Some((_, key)) = smtp_keys.iter().find(|(set, _)| *set) {
                        return Err(fail(format!("{key} applies only to smtp destinations")));
                    }
                }
                (None, Some(smtp)) => {
                    let smtp = smtp.expose();
                    if !(smtp.starts_with("smtp://") || smtp.starts_with("smtps://")) {
                        return Err(fail("smtp must start with smtp:// or smtps://".into()));
                    }
                    if dest.from.is_none() {
                        return Err(fail("an smtp destination needs from".into()));
                    }
                    if dest.auth.is_some() || dest.sign.is_some() || !dest.headers.is_empty() {
                        return Err(fail(
                            "auth, sign and headers apply only to http destinations".into(),
                        ));
                    }
                }
                _ => return Err(fail("set exactly one of url or smtp".into())),
            }
            if http::Method::from_bytes(dest.method.as_bytes()).is_err() {
                return Err(fail(format!("{:?} is not an HTTP method", dest.method)));
            }
            dest.retry.validate().map_err(fail)?;
            for status in &dest.permanent_statuses {
                match status {
                    410 => {
                        return Err(fail(
                            "permanent_statuses cannot hold 410: `gone` decides what it does"
                                .into(),
                        ));
                    }
                    429 => {
                        return Err(fail(
                            "permanent_statuses cannot hold 429: a rate limit is always waited out"
                                .into(),
                        ));
                    }
                    400..=599 => {}
                    other => {
                        return Err(fail(format!(
                            "permanent_statuses: {other} is not an error status (400-599)"
                        )));
                    }
                }
            }
            if let Some(auth) = &dest.auth {
                auth.validate().map_err(fail)?;
            }
            if dest.timeout.0 > MAX_DESTINATION_TIMEOUT {
                return Err(fail(format!(
                    "timeout {} is too long: at most {}s, so that an attempt (with an OAuth \
                     token refresh, two requests) ends well inside the delivery lease",
                    humantime::format_duration(dest.timeout.0),
                    MAX_DESTINATION_TIMEOUT.as_secs()
                )));
            }
            if dest.concurrency == 0 {
                return Err(fail("concurrency must be at least 1".into()));
            }
            if let Some(o) = &dest.ordering
                && !o.key.starts_with('/')
            {
                return Err(fail(format!(
                    "ordering.key {:?} must be a JSON pointer starting with '/'",
                    o.key
                )));
            }
        }
        if self.runtime.event_lease.0 < std::time::Duration::from_secs(1) {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                line: find_line(text, "event_lease"),
                message: "runtime.event_lease must be at least 1s".into(),
            });
        }
        if self.runtime.memory_queue_wait.0 > crate::ingress::APPEND_DEADLINE {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                line: find_line(text, "memory_queue_wait"),
                message: format!(
                    "runtime.memory_queue_wait must be at most {}s: a provider waits for its answer meanwhile",
                    crate::ingress::APPEND_DEADLINE.as_secs()
                ),
            });
        }
        for (key, value) in [
            ("memory_queue", self.runtime.memory_queue),
            (
                "max_deliveries_in_flight",
                self.runtime.max_deliveries_in_flight,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid {
                    path: path.to_path_buf(),
                    line: find_line(text, key),
                    message: format!("runtime.{key} must be at least 1"),
                });
            }
        }
        if self.server.max_backlog == Some(0) {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                line: find_line(text, "max_backlog"),
                message: "server.max_backlog must be at least 1 (leave it out for no limit)".into(),
            });
        }
        if let Some(admin) = self.server.admin_listen {
            let line = find_line(text, "admin_listen");
            if self.server.admin_token.is_none() && !self.server.admin_without_token {
                return Err(ConfigError::Invalid {
                    path: path.to_path_buf(),
                    line,
                    message: "server.admin_listen needs server.admin_token (or admin_without_token = true on a loopback address)".into(),
                });
            }
            if self.server.admin_without_token && !admin.ip().is_loopback() {
                return Err(ConfigError::Invalid {
                    path: path.to_path_buf(),
                    line,
                    message: "server.admin_without_token is only allowed when admin_listen is a loopback address".into(),
                });
            }
            if self
                .server
                .admin_token
                .as_ref()
                .is_some_and(|t| t.expose().len() < 16)
            {
                return Err(ConfigError::Invalid {
                    path: path.to_path_buf(),
                    line: find_line(text, "admin_token"),
                    message: "server.admin_token must be at least 16 characters".into(),
                });
            }
        }
        if let Some(path_str) = self.sqlite_path_str()
            && path_str.is_empty()
        {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                line: find_line(text, "[store]"),
                message: "store.url: sqlite:// needs a file path".to_string(),
            });
        }
        let on_postgres = matches!(self.store_location(), Some(StoreLocation::Postgres(_)));
        for (key, line, set) in [
            (
                "max_connections",
                "max_connections",
                self.store.max_connections.is_some(),
            ),
            ("listen", "listen =", self.store.listen.is_some()),
            (
                "statement_cache",
                "statement_cache",
                self.store.statement_cache.is_some(),
            ),
        ] {
            if set && !on_postgres {
                return Err(ConfigError::Invalid {
                    path: path.to_path_buf(),
                    line: find_line(text, line),
                    message: format!("store.{key} applies to a postgres:// store only"),
                });
            }
        }
        let telemetry = &self.telemetry;
        if !(0.0..=1.0).contains(&telemetry.sample_ratio) {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                line: find_line(text, "sample_ratio"),
                message: format!(
                    "telemetry.sample_ratio must be between 0.0 and 1.0, not {}",
                    telemetry.sample_ratio
                ),
            });
        }
        if let Some(endpoint) = &telemetry.otlp_endpoint
            && !url::Url::parse(endpoint)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                line: find_line(text, "otlp_endpoint"),
                message: format!(
                    "telemetry.otlp_endpoint {endpoint:?} must be an http:// or https:// URL, e.g. \"http://collector:4318\""
                ),
            });
        }
        if self.store.max_connections == Some(0) {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                line: find_line(text, "max_connections"),
                message: "store.max_connections must be at least 1".to_string(),
            });
        }
        if self.store_location().is_none() {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                line: find_line(text, "[store]"),
                message: "store.url must start with sqlite:// or postgres://".to_string(),
            });
        }
        Ok(())
    }

    /// Where the journal lives, from `store.url`.
    pub fn store_location(&self) -> Option<StoreLocation> {
        let url = self.store.url.expose();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Some(StoreLocation::Postgres(url.to_string()));
        }
        self.sqlite_path().map(StoreLocation::Sqlite)
    }

    fn sqlite_path_str(&self) -> Option<&str> {
        // An empty path is refused by `check`, with the line.
        self.store.url.expose().strip_prefix("sqlite://")
    }

    /// The SQLite database file, resolved against the config file's directory.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        self.sqlite_path_str().map(|p| self.resolve(Path::new(p)))
    }

    /// Resolves a path from the config against the config file's directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    /// The compiled-plugin cache directory.
    pub fn cache_dir(&self) -> PathBuf {
        if let Some(dir) = &self.runtime.cache_dir {
            return self.resolve(dir);
        }
        default_cache_dir()
    }

    /// The route with this name.
    pub fn route(&self, name: &str) -> Option<&RouteConfig> {
        self.routes.iter().find(|r| r.name.get_ref() == name)
    }
}

/// `$XDG_CACHE_HOME/hookyard`, else `$HOME/.cache/hookyard`, else `./.cache/hookyard`.
pub fn default_cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"))
        .join("hookyard")
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The line an error about `needle` points at: the line that sets it as a key (`needle =
/// ...`), so that `memory_queue` is not found on a `memory_queue_wait` line or in a comment;
/// else (a section header, a key inside an inline table) where the text first appears.
fn find_line(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|line| {
            line.trim_start()
                .strip_prefix(needle)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map_or_else(
            || text.find(needle).map_or(1, |i| line_of(text, i)),
            |i| i + 1,
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("router.toml"), PathBuf::from("."))
    }

    const MINIMAL: &str = r#"
[server]
listen = "127.0.0.1:0"
[store]
url = "sqlite://data/hookyard.db"
"#;

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.server.max_body, ByteSize(1 << 20));
        assert_eq!(
            c.sqlite_path().unwrap(),
            PathBuf::from("./data/hookyard.db")
        );
    }

    #[test]
    fn store_urls_name_their_backend_and_pool_settings_fit_it() {
        let pg = MINIMAL.replace(
            "sqlite://data/hookyard.db",
            "postgres://hookyard@db.internal:5432/hookyard",
        );
        let c = parse(&format!("{pg}max_connections = 4\n")).unwrap();
        assert_eq!(
            c.store_location(),
            Some(StoreLocation::Postgres(
                "postgres://hookyard@db.internal:5432/hookyard".into()
            ))
        );
        assert_eq!(c.store.max_connections, Some(4));
        let err = parse(&format!("{MINIMAL}max_connections = 4\n"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "router.toml:6: store.max_connections applies to a postgres:// store only"
        );
        let err = parse(&MINIMAL.replace("sqlite://data/hookyard.db", "mysql://x"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("store.url must start with sqlite:// or postgres://"),
            "{err}"
        );
        let err = parse(&format!("{MINIMAL}[runtime]\nevent_lease = \"100ms\"\n"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "router.toml:7: runtime.event_lease must be at least 1s"
        );
        let err = parse(&format!(
            "{MINIMAL}[runtime]\nmemory_queue_wait = \"50ms\"\nmemory_queue = 0\n"
        ))
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "router.toml:8: runtime.memory_queue must be at least 1"
        );
        let err = parse(&format!(
            "{MINIMAL}[runtime]\nmemory_queue_wait = \"11s\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "router.toml:7: runtime.memory_queue_wait must be at most 10s: a provider waits for its answer meanwhile"
        );
        let err = parse(&MINIMAL.replace("[server]\n", "[server]\nmax_backlog = 0\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_backlog must be at least 1"), "{err}");
    }

    #[test]
    fn unknown_key_is_rejected_with_its_line() {
        let text = format!("{MINIMAL}[destinations.chat]\nurl = \"http://x\"\nretries = 3\n");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("line 8"), "{err}");
        assert!(err.contains("unknown field `retries`"), "{err}");
        assert!(err.starts_with("router.toml:"), "{err}");
    }

    #[test]
    fn undefined_step_names_route_and_line() {
        let text = format!(
            "{MINIMAL}[[routes]]\nname = \"gh\"\nverify = {{ scheme = \"none\" }}\nsteps = [\"nope\"]\n"
        );
        let err = parse(&text).unwrap_err().to_string();
        assert_eq!(
            err,
            "router.toml:9: route \"gh\": step \"nope\" is not defined under [plugins]"
        );
    }

    #[test]
    fn alerts_name_configured_destinations_and_plugins_and_known_conditions() {
        let dest = "[destinations.ops]\nurl = \"https://chat.example.com/hook\"\n";
        let with = |alerts: &str| format!("{MINIMAL}{dest}[alerts]\n{alerts}");
        let ok = parse(&with("to = [\"ops\"]\n")).expect("valid");
        let alerts = ok.alerts.expect("configured");
        assert_eq!(alerts.on, Condition::all(), "every condition by default");
        assert_eq!(alerts.debounce.0, std::time::Duration::from_secs(600));
        for (body, expected) in [
            (
                "to = [\"pager\"]\n",
                "router.toml:9: alerts.to: destination \"pager\" is not defined",
            ),
            ("to = []\n", "alerts.to must name at least one destination"),
            (
                "to = [\"ops\"]\nsteps = [\"words\"]\n",
                "alerts.steps: \"words\" is not defined under [plugins]",
            ),
            (
                "to = [\"ops\"]\non = [\"dead_leter\"]\n",
                "unknown variant `dead_leter`",
            ),
            (
                "to = [\"ops\"]\nplugin_failure_rate = 1.5\n",
                "alerts.plugin_failure_rate must be between 0.0 and 1.0",
            ),
        ] {
            let err = parse(&with(body)).unwrap_err().to_string();
            assert!(err.contains(expected), "{body}: {err}");
        }
    }

    #[test]
    fn a_plugin_name_cannot_reach_the_routers_own_kv_space() {
        let text = format!("{MINIMAL}[plugins.\"hookyard/learned-secrets\"]\npath = \"x.wasm\"\n");
        let err = parse(&text).unwrap_err().to_string();
        assert_eq!(
            err,
            "router.toml:6: plugin name \"hookyard/learned-secrets\" must be non-empty and use only letters, digits, '-', '_' and '.'"
        );
    }

    #[test]
    fn a_route_is_either_verified_or_polled_and_its_poll_table_is_checked() {
        let route = |body: &str| format!("{MINIMAL}[[routes]]\nname = \"r\"\n{body}");
        let poll = "[routes.poll]\nurl = \"https://api.example.com/v1/orders\"\nevery = \"30s\"\nitems = \"/data\"\nid = \"/id\"\n";
        assert!(parse(&route(poll)).is_ok());
        for (body, expected) in [
            (
                String::new(),
                "set verify (how posts are authenticated), or [routes.poll]",
            ),
            (
                format!("verify = {{ scheme = \"none\" }}\n{poll}"),
                "a polled route takes no verify",
            ),
            (
                poll.replace("\"/id\"", "\"id\""),
                "poll.id: \"id\" must be a JSON pointer such as \"/id\"",
            ),
            (
                poll.replace("30s", "10ms"),
                "poll.every: must be at least 100ms",
            ),
            (
                poll.replace("https://api", "ftp://api"),
                "poll.url: must be an http:// or https:// URL",
            ),
            (
                format!("{poll}query = {{ since = \"{{{{ cursor }}}}\" }}\n"),
                "poll.query: {{ cursor }} needs poll.cursor",
            ),
        ] {
            let err = parse(&route(&body)).unwrap_err().to_string();
            assert!(err.contains(expected), "{body}: {err}");
            assert!(err.starts_with("router.toml:7: route \"r\""), "{err}");
        }
    }

    #[test]
    fn missing_env_var_is_named() {
        let text = format!(
            "{MINIMAL}[[routes]]\nname = \"gh\"\nverify = {{ scheme = \"github\", secret = \"${{HOOKYARD_TEST_SURELY_UNSET}}\" }}\n"
        );
        let err = parse(&text).unwrap_err().to_string();
        assert!(
            err.contains("HOOKYARD_TEST_SURELY_UNSET is not set"),
            "{err}"
        );
        assert!(err.contains("line 8"), "{err}");
    }

    #[test]
    fn expand_env_handles_escapes_and_errors() {
        let look = |n: &str| (n == "A").then(|| "x".to_string());
        assert_eq!(expand_env("a${A}b$$c$d", look).unwrap(), "axb$c$d");
        assert!(expand_env("${B}", look).is_err());
        assert!(expand_env("${A", look).is_err());
    }

    #[test]
    fn destinations_need_exactly_one_of_url_or_smtp_and_matching_keys() {
        let check = |dest: &str| {
            parse(&format!("{MINIMAL}[destinations.d]\n{dest}\n"))
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        assert!(check("smtp = \"smtp://127.0.0.1:25\"\nfrom = \"a@example.com\"").is_ok());
        assert!(check("url = \"https://x.example\"").is_ok());
        let both = check("url = \"https://x.example\"\nsmtp = \"smtp://h\"").unwrap_err();
        assert!(
            both.ends_with("destination \"d\": set exactly one of url or smtp"),
            "{both}"
        );
        let no_from = check("smtp = \"smtp://h\"").unwrap_err();
        assert!(
            no_from.ends_with("an smtp destination needs from"),
            "{no_from}"
        );
        let misplaced = check("url = \"https://x.example\"\nfrom = \"a@example.com\"").unwrap_err();
        assert!(
            misplaced.ends_with("from applies only to smtp destinations"),
            "{misplaced}"
        );
        let auth =
            check("smtp = \"smtp://h\"\nfrom = \"a@example.com\"\nauth = { bearer = \"t\" }")
                .unwrap_err();
        assert!(
            auth.ends_with("auth, sign and headers apply only to http destinations"),
            "{auth}"
        );
    }

    #[test]
    fn secret_debug_is_redacted() {
        assert_eq!(
            format!("{:?}", Secret::new("hunter2")),
            "Secret(<redacted>)"
        );
    }

    #[test]
    fn sizes_and_durations_parse() {
        assert_eq!(ByteSize::parse("32MiB"), Some(ByteSize(32 << 20)));
        assert_eq!(ByteSize::parse("100KB"), Some(ByteSize(100_000)));
        assert_eq!(ByteSize::parse("12 parsecs"), None);
        let c = parse(&MINIMAL.replace("listen", "header_timeout = \"2s\"\nlisten")).unwrap();
        assert_eq!(c.server.header_timeout, Dur(Duration::from_secs(2)));
    }
}
