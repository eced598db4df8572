//! What a plugin instance sees of the host: its config, its secrets, a log, `http.fetch` to
//! its allowed hosts, its own kv namespace, and an empty WASI context. Also the per-event
//! memory limiter, which remembers whether the plugin hit its limit.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument as _;

use async_trait::async_trait;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{self, FetchError, Level, Request, Response};
use super::wasi::Console;
use crate::egress::EgressPolicy;
use crate::store::{Millis, kv_sum, now_ms};

/// A plugin's durable key-value namespace.
#[async_trait]
pub trait PluginKv: Send + Sync {
    /// The value, unless absent or expired.
    async fn get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, String>;
    /// Stores a value, expiring at `expires_at` if set.
    async fn set(
        &self,
        plugin: &str,
        key: &str,
        value: Vec<u8>,
        expires_at: Option<Millis>,
    ) -> Result<(), String>;
    /// Removes a key.
    async fn delete(&self, plugin: &str, key: &str) -> Result<(), String>;
    /// Adds `delta` to the decimal integer under `key`, atomically; an absent or expired key
    /// counts as 0 and gets `expires_at`. `Ok(None)` if the value is not an integer or the
    /// sum overflows.
    async fn increment(
        &self,
        plugin: &str,
        key: &str,
        delta: i64,
        expires_at: Option<Millis>,
    ) -> Result<Option<i64>, String>;
    /// Stores a value only if the key is absent or expired, atomically; whether it did.
    async fn set_if_absent(
        &self,
        plugin: &str,
        key: &str,
        value: Vec<u8>,
        expires_at: Option<Millis>,
    ) -> Result<bool, String>;
    /// How many live keys the plugin holds (for its `kv_max_keys` quota).
    async fn count(&self, plugin: &str) -> Result<u64, String>;
}

/// A kv entry: its value and when it expires.
type KvEntry = (Vec<u8>, Option<Millis>);

/// A scratch layer over another kv, for a shadow candidate, which must change nothing: reads
/// see the layer's own writes first, then the live kv; writes and deletes stay in the layer.
pub struct OverlayKv {
    base: Arc<dyn PluginKv>,
    scratch: MemoryKv,
    deleted: std::sync::Mutex<std::collections::HashSet<(String, String)>>,
}

impl OverlayKv {
    /// A layer over `base`.
    pub fn new(base: Arc<dyn PluginKv>) -> OverlayKv {
        OverlayKv {
            base,
            scratch: MemoryKv::default(),
            deleted: Default::default(),
        }
    }

    fn deleted(&self, plugin: &str, key: &str) -> bool {
        self.deleted
            .lock()
            .map(|d| d.contains(&(plugin.to_string(), key.to_string())))
            .unwrap_or(false)
    }

    fn undelete(&self, plugin: &str, key: &str) {
        if let Ok(mut d) = self.deleted.lock() {
            d.remove(&(plugin.to_string(), key.to_string()));
        }
    }
}

#[async_trait]
impl PluginKv for OverlayKv {
    async fn get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, String> {
        if self.deleted(plugin, key) {
            return Ok(None);
        }
        match self.scratch.get(plugin, key).await? {
            Some(v) => Ok(Some(v)),
            None => self.base.get(plugin, key).await,
        }
    }
    async fn set(
        &self,
        plugin: &str,
        key: &str,
        value: Vec<u8>,
        expires_at: Option<Millis>,
    ) -> Result<(), String> {
        self.undelete(plugin, key);
        self.scratch.set(plugin, key, value, expires_at).await
    }
    async fn delete(&self, plugin: &str, key: &str) -> Result<(), String> {
        self.scratch.delete(plugin, key).await?;
        if let Ok(mut d) = self.deleted.lock() {
            d.insert((plugin.to_string(), key.to_string()));
        }
        Ok(())
    }
    async fn increment(
        &self,
        plugin: &str,
        key: &str,
        delta: i64,
        expires_at: Option<Millis>,
    ) -> Result<Option<i64>, String> {
        if self.scratch.get(plugin, key).await?.is_none()
            && let Some(current) = self.get(plugin, key).await?
        {
            self.scratch.set(plugin, key, current, expires_at).await?;
        }
        self.undelete(plugin, key);
        self.scratch.increment(plugin, key, delta, expires_at).await
    }
    async fn set_if_absent(
        &self,
        plugin: &str,
        key: &str,
        value: Vec<u8>,
        expires_at: Option<Millis>,
    ) -> Result<bool, String> {
        if self.get(plugin, key).await?.is_some() {
            return Ok(false);
        }
        self.undelete(plugin, key);
        self.scratch
            .set_if_absent(plugin, key, value, expires_at)
            .await
    }
    async fn count(&self, plugin: &str) -> Result<u64, String> {
        self.base.count(plugin).await
    }
}

/// An in-memory [`PluginKv`], for `hookyard plugin test`.
#[derive(Default)]
pub struct MemoryKv(std::sync::Mutex<HashMap<(String, String), KvEntry>>);

#[async_trait]
impl PluginKv for MemoryKv {
    async fn get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, String> {
        let map = self.0.lock().map_err(|_| "kv poisoned".to_string())?;
        Ok(map
            .get(&(plugin.to_string(), key.to_string()))
            .filter(|(_, exp)| exp.is_none_or(|e| e > now_ms()))
            .map(|(v, _)| v.clone()))
    }
    async fn set(
        &self,
        plugin: &str,
        key: &str,
        value: Vec<u8>,
        expires_at: Option<Millis>,
    ) -> Result<(), String> {
        let mut map = self.0.lock().map_err(|_| "kv poisoned".to_string())?;
        map.insert((plugin.to_string(), key.to_string()), (value, expires_at));
        Ok(())
    }
    async fn delete(&self, plugin: &str, key: &str) -> Result<(), String> {
        let mut map = self.0.lock().map_err(|_| "kv poisoned".to_string())?;
        map.remove(&(plugin.to_string(), key.to_string()));
        Ok(())
    }
    async fn increment(
        &self,
        plugin: &str,
        key: &str,
        delta: i64,
        expires_at: Option<Millis>,
    ) -> Result<Option<i64>, String> {
        let mut map = self.0.lock().map_err(|_| "kv poisoned".to_string())?;
        let entry = (plugin.to_string(), key.to_string());
        let live = map
            .get(&entry)
            .filter(|(_, exp)| exp.is_none_or(|e| e > now_ms()));
        let (sum, expiry) = match live {
            None => (Some(delta), expires_at),
            Some((value, exp)) => (kv_sum(value, delta), *exp),
        };
        if let Some(sum) = sum {
            map.insert(entry, (sum.to_string().into_bytes(), expiry));
        }
        Ok(sum)
    }
    async fn set_if_absent(
        &self,
        plugin: &str,
        key: &str,
        value: Vec<u8>,
        expires_at: Option<Millis>,
    ) -> Result<bool, String> {
        let mut map = self.0.lock().map_err(|_| "kv poisoned".to_string())?;
        let entry = (plugin.to_string(), key.to_string());
        if map
            .get(&entry)
            .is_some_and(|(_, exp)| exp.is_none_or(|e| e > now_ms()))
        {
            return Ok(false);
        }
        map.insert(entry, (value, expires_at));
        Ok(true)
    }
    async fn count(&self, plugin: &str) -> Result<u64, String> {
        let map = self.0.lock().map_err(|_| "kv poisoned".to_string())?;
        Ok(map
            .iter()
            .filter(|((p, _), (_, exp))| p == plugin && exp.is_none_or(|e| e > now_ms()))
            .count() as u64)
    }
}

/// Where `http.fetch` goes.
#[derive(Clone)]
pub enum Fetcher {
    /// The network, through the router's egress rules.
    Http {
        /// A client with the guarded resolver and no redirects.
        client: reqwest::Client,
        /// The egress rules, for URLs with IP literals.
        egress: Arc<EgressPolicy>,
    },
    /// Canned answers by (method, URL), for `hookyard plugin test`.
    Canned(Arc<Vec<(String, String, Response)>>),
    /// The network as [`Fetcher::Http`], for `GET` and `HEAD` only: a shadow run must not
    /// change anything anywhere.
    ReadOnly {
        /// A client with the guarded resolver and no redirects.
        client: reqwest::Client,
        /// The egress rules, for URLs with IP literals.
        egress: Arc<EgressPolicy>,
    },
}

/// What one plugin is granted; shared by all its instances.
pub struct Capabilities {
    /// The plugin's name, for logs and its kv namespace.
    pub plugin: Arc<str>,
    /// Its config, as JSON.
    pub config: Arc<str>,
    /// Its secrets by name.
    pub secrets: HashMap<String, String>,
    /// Hosts it may fetch from (`host` or `host:port`).
    pub allow_http: Vec<String>,
    /// Longest one fetch may take.
    pub http_timeout: Duration,
    /// Largest fetched body.
    pub http_max_response: usize,
    /// How fetches are made.
    pub fetcher: Fetcher,
    /// Its kv namespace.
    pub kv: Arc<dyn PluginKv>,
    /// Keep log lines on the state (for `hookyard plugin test`) as well as logging them.
    pub capture_logs: bool,
    /// How many lines the plugin may log, all its events together.
    pub log_limit: LogLimit,
    /// Most live keys in its kv namespace (`kv_max_keys`), and what it is known to hold.
    pub kv_quota: KvQuota,
}

/// A plugin's kv quota: writes that would add a key are refused once it holds `max` live
/// keys, so a runaway plugin cannot fill the store. The count is read from the store at
/// most every [`KvQuota::REFRESH`] and counted up locally in between; at the quota it is
/// read again exactly, and a key that already exists may still be changed. Events running
/// at once on several nodes may overshoot it by what they write in that time.
#[derive(Debug)]
pub struct KvQuota {
    /// The most keys.
    pub max: u64,
    known: std::sync::Mutex<Option<(std::time::Instant, u64)>>,
}

impl KvQuota {
    /// How stale the known count may get.
    pub const REFRESH: Duration = Duration::from_secs(10);
    /// A quota of `max` keys, count unknown.
    pub fn new(max: u64) -> KvQuota {
        KvQuota {
            max,
            known: std::sync::Mutex::new(None),
        }
    }

    fn fresh(&self) -> Option<u64> {
        let known = self.known.lock().ok()?;
        known.and_then(|(at, n)| (at.elapsed() < Self::REFRESH).then_some(n))
    }

    fn set(&self, n: u64) {
        if let Ok(mut known) = self.known.lock() {
            *known = Some((std::time::Instant::now(), n));
        }
    }

    /// One more key may have been added.
    fn added(&self) {
        if let Ok(mut known) = self.known.lock()
            && let Some((_, n)) = known.as_mut()
        {
            *n += 1;
        }
    }
}

impl Default for KvQuota {
    fn default() -> Self {
        KvQuota::new(crate::config::DEFAULT_KV_MAX_KEYS)
    }
}

/// Most log lines one plugin writes per second, all its events together. A plugin that
/// logs in a loop must not flood the operator's log (or its disk); the lines over the limit
/// are counted, and the count is logged once the second is over.
pub const LOG_LINES_PER_SECOND: u32 = 100;

/// A plugin's log budget (see [`LOG_LINES_PER_SECOND`]).
#[derive(Debug, Default)]
pub struct LogLimit(std::sync::Mutex<LogWindow>);

#[derive(Debug, Default)]
struct LogWindow {
    started: Option<std::time::Instant>,
    written: u32,
    suppressed: u64,
}

impl LogLimit {
    /// Whether one more line may be written at `now`, and how many lines were held back in
    /// the second that just ended (to report), if one did.
    fn admit(&self, now: std::time::Instant) -> (bool, u64) {
        let mut w = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut held_back = 0;
        if w.started
            .is_none_or(|s| now.duration_since(s) >= Duration::from_secs(1))
        {
            held_back = std::mem::take(&mut w.suppressed);
            w.started = Some(now);
            w.written = 0;
        }
        if w.written < LOG_LINES_PER_SECOND {
            w.written += 1;
            (true, held_back)
        } else {
            w.suppressed += 1;
            (false, held_back)
        }
    }
}

/// `message` on one line: line breaks and other control characters are written as escapes
/// (`\n`), so a plugin cannot forge log lines that look like the router's own.
fn one_line(message: &str) -> std::borrow::Cow<'_, str> {
    if !message.chars().any(char::is_control) {
        return message.into();
    }
    message
        .chars()
        .map(|c| match c.is_control() {
            true => c.escape_default().to_string(),
            false => c.to_string(),
        })
        .collect::<String>()
        .into()
}

impl Capabilities {
    /// What `[plugins.<name>]` grants plugin `name` (its config, secrets, hosts and budgets),
    /// fetching through `fetcher` and keeping its kv in `kv`.
    pub fn granted(
        name: &str,
        pc: &crate::config::PluginConfig,
        fetcher: Fetcher,
        kv: Arc<dyn PluginKv>,
    ) -> Capabilities {
        Capabilities {
            plugin: name.into(),
            config: pc.config.to_string().into(),
            secrets: pc
                .secrets
                .iter()
                .map(|(k, v)| (k.clone(), v.expose().to_string()))
                .collect(),
            allow_http: pc.allow_http.clone(),
            http_timeout: pc.http_timeout.0,
            http_max_response: pc.http_max_response.0 as usize,
            fetcher,
            kv,
            capture_logs: false,
            log_limit: Default::default(),
            kv_quota: KvQuota::new(pc.kv_max_keys),
        }
    }

    /// Nothing granted beyond `config`: no secrets, no hosts to fetch from (fetches get no
    /// canned answer), an empty in-memory kv. For benchmarks and tests that run a plugin
    /// outside a router.
    pub fn none(plugin: &str, config: &serde_json::Value) -> Capabilities {
        Capabilities {
            plugin: plugin.into(),
            config: config.to_string().into(),
            secrets: HashMap::new(),
            allow_http: Vec::new(),
            http_timeout: Duration::from_secs(1),
            http_max_response: 1 << 20,
            fetcher: Fetcher::Canned(Arc::new(Vec::new())),
            kv: Arc::new(MemoryKv::default()),
            capture_logs: false,
            log_limit: LogLimit::default(),
            kv_quota: KvQuota::default(),
        }
    }
}

/// Per-event state of one plugin instance.
pub struct HostState {
    /// WASI with nothing granted: no files, env, args or sockets. Built on first use: most
    /// plugins never call WASI while handling an event, and building it costs a seeded RNG.
    wasi: Option<WasiCtx>,
    /// Where the plugin's stdout and stderr go (with the WASI context, on first use).
    console: Option<Console>,
    table: ResourceTable,
    /// Caps linear memory growth and records a refusal.
    pub limiter: MemoryLimiter,
    caps: Arc<Capabilities>,
    /// The event being handled, for log lines.
    event_id: Arc<str>,
    /// Why the plugin dropped the event, if it said.
    pub dropped: Option<String>,
    /// Whether a kv call is waiting on the store right now: a timeout then is the store's
    /// trouble, not the plugin's.
    pub in_store_call: bool,
    /// Captured log lines (when the capabilities ask for it).
    pub logs: Vec<(Level, String)>,
}

impl HostState {
    /// State for one run of a plugin on `event_id`.
    pub fn new(caps: Arc<Capabilities>, event_id: Arc<str>, memory_limit: u64) -> Self {
        HostState {
            wasi: None,
            console: None,
            table: ResourceTable::new(),
            limiter: MemoryLimiter {
                limit: memory_limit,
                exceeded: false,
            },
            caps,
            event_id,
            dropped: None,
            in_store_call: false,
            logs: Vec::new(),
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let console = &mut self.console;
        WasiCtxView {
            ctx: self.wasi.get_or_insert_with(|| {
                let console = console.get_or_insert_with(Console::default).clone();
                WasiCtx::builder()
                    .stdout(console.clone())
                    .stderr(console)
                    .build()
            }),
            table: &mut self.table,
        }
    }
}

impl bindings::TypesHost for HostState {}

/// Longest log line, drop reason or kv key a plugin can hand the host.
const MAX_TEXT: usize = 4096;
const MAX_KV_KEY: usize = 256;
const MAX_KV_VALUE: usize = 64 * 1024;

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

impl HostState {
    /// The lines the plugin wrote to stdout or stderr in this run.
    pub fn console_lines(&self) -> Vec<String> {
        self.console
            .as_ref()
            .map(Console::lines)
            .unwrap_or_default()
    }

    /// Logs what the plugin wrote to stdout or stderr, like its `log` calls at info level.
    pub fn log_console(&mut self) {
        for line in self.console_lines() {
            self.log(Level::Info, &line);
        }
    }

    fn log(&mut self, level: Level, message: &str) {
        let (plugin, event) = (&*self.caps.plugin, &*self.event_id);
        let message = truncate(message, MAX_TEXT);
        let (admitted, held_back) = self.caps.log_limit.admit(std::time::Instant::now());
        if held_back > 0 {
            tracing::warn!(
                plugin,
                held_back,
                "plugin log lines held back (more than {LOG_LINES_PER_SECOND} a second)"
            );
        }
        let line = one_line(message);
        match (admitted, level) {
            (false, _) => {}
            (true, Level::Trace) => tracing::trace!(plugin, event, "{line}"),
            (true, Level::Debug) => tracing::debug!(plugin, event, "{line}"),
            (true, Level::Info) => tracing::info!(plugin, event, "{line}"),
            (true, Level::Warn) => tracing::warn!(plugin, event, "{line}"),
            (true, Level::Error) => tracing::error!(plugin, event, "{line}"),
        }
        if self.caps.capture_logs && self.logs.len() < 1000 {
            self.logs.push((level, message.to_string()));
        }
    }

    fn config(&self) -> String {
        self.caps.config.to_string()
    }

    fn secret(&self, name: &str) -> Option<String> {
        self.caps.secrets.get(name).cloned()
    }

    fn drop_reason(&mut self, reason: &str) {
        self.dropped = Some(truncate(reason, MAX_TEXT).to_string());
    }
}

impl bindings::Host for HostState {
    async fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        HostState::log(self, level, &message);
        Ok(())
    }

    async fn config(&mut self) -> wasmtime::Result<String> {
        Ok(HostState::config(self))
    }

    async fn secret(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        Ok(HostState::secret(self, &name))
    }

    async fn drop_reason(&mut self, reason: String) -> wasmtime::Result<()> {
        HostState::drop_reason(self, &reason);
        Ok(())
    }
}

impl bindings::sync::Host for HostState {
    fn log(&mut self, level: bindings::sync::Level, message: String) -> wasmtime::Result<()> {
        use bindings::sync::Level as L;
        let level = match level {
            L::Trace => Level::Trace,
            L::Debug => Level::Debug,
            L::Info => Level::Info,
            L::Warn => Level::Warn,
            L::Error => Level::Error,
        };
        HostState::log(self, level, &message);
        Ok(())
    }

    fn config(&mut self) -> wasmtime::Result<String> {
        Ok(HostState::config(self))
    }

    fn secret(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        Ok(HostState::secret(self, &name))
    }

    fn drop_reason(&mut self, reason: String) -> wasmtime::Result<()> {
        HostState::drop_reason(self, &reason);
        Ok(())
    }
}

/// Whether `url`'s host (and port, if the entry names one) is in `allow`.
pub fn host_allowed(url: &reqwest::Url, allow: &[String]) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let port = url.port_or_known_default();
    allow.iter().any(|entry| match entry.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() => {
            h.eq_ignore_ascii_case(host) && p.parse::<u16>().ok() == port
        }
        _ => entry.eq_ignore_ascii_case(host),
    })
}

impl bindings::HttpHost for HostState {
    async fn fetch(&mut self, request: Request) -> wasmtime::Result<Result<Response, FetchError>> {
        let caps = self.caps.clone();
        let Ok(url) = reqwest::Url::parse(&request.url) else {
            return Ok(Err(FetchError::Failed(format!(
                "invalid URL {:?}",
                request.url
            ))));
        };
        if let Some((name, _)) = request.headers.iter().find(|(name, _)| {
            !super::plugin_may_set(name) && !name.eq_ignore_ascii_case("authorization")
        }) {
            return Ok(Err(FetchError::Denied(format!(
                "plugins may not set the header {name:?}"
            ))));
        }
        if !host_allowed(&url, &caps.allow_http) {
            let host = url.host_str().unwrap_or("").to_string();
            return Ok(Err(FetchError::Denied(format!(
                "{host} is not in this plugin's allow_http"
            ))));
        }
        match &caps.fetcher {
            Fetcher::Canned(answers) => Ok(answers
                .iter()
                .find(|(m, u, _)| m.eq_ignore_ascii_case(&request.method) && *u == request.url)
                .map(|(_, _, r)| r.clone())
                .ok_or_else(|| {
                    FetchError::Failed(format!(
                        "no canned response for {} {}",
                        request.method, request.url
                    ))
                })),
            Fetcher::Http { client, egress } => {
                if let Err(e) = egress.check_url(&url) {
                    return Ok(Err(FetchError::Denied(e.to_string())));
                }
                Ok(http_fetch(client, &caps, url, request).await)
            }
            Fetcher::ReadOnly { client, egress } => {
                if !["GET", "HEAD"].contains(&request.method.to_ascii_uppercase().as_str()) {
                    return Ok(Err(FetchError::Denied(format!(
                        "a shadow run fetches with GET and HEAD only, not {} (--allow-fetch-writes)",
                        request.method
                    ))));
                }
                if let Err(e) = egress.check_url(&url) {
                    return Ok(Err(FetchError::Denied(e.to_string())));
                }
                Ok(http_fetch(client, &caps, url, request).await)
            }
        }
    }
}

async fn http_fetch(
    client: &reqwest::Client,
    caps: &Capabilities,
    url: reqwest::Url,
    request: Request,
) -> Result<Response, FetchError> {
    let method = http::Method::from_bytes(request.method.as_bytes())
        .map_err(|_| FetchError::Failed(format!("invalid method {:?}", request.method)))?;
    let host = url.host_str().unwrap_or("").to_string();
    let span = tracing::info_span!(
        target: crate::trace::TARGET,
        "fetch",
        otel.name = %format!("fetch {host}"),
        otel.kind = "client",
        server.address = %host,
        http.request.method = %method,
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
        otel.status_description = tracing::field::Empty,
    );
    let mut req = client.request(method, url).timeout(caps.http_timeout);
    for (name, value) in &request.headers {
        req = req.header(name, value);
    }
    // The receiver's trace joins this one (replacing any the plugin set).
    req = req.headers(crate::trace::outbound_headers(&span));
    if let Some(body) = request.body {
        req = req.body(body);
    }
    let work = async {
        let mut resp = req.send().await.map_err(|e| classify_fetch_error(&e))?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| classify_fetch_error(&e))? {
            if body.len() + chunk.len() > caps.http_max_response {
                return Err(FetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    };
    let result = tokio::time::timeout(caps.http_timeout, work)
        .instrument(span.clone())
        .await
        .unwrap_or(Err(FetchError::Timeout));
    match &result {
        Ok(response) => {
            span.record("http.response.status_code", i64::from(response.status));
        }
        Err(e) => {
            span.record("otel.status_code", "ERROR");
            span.record("otel.status_description", format!("{e:?}"));
        }
    }
    result
}

fn classify_fetch_error(e: &reqwest::Error) -> FetchError {
    if e.is_timeout() {
        return FetchError::Timeout;
    }
    let mut source = std::error::Error::source(e);
    let mut last = e.to_string();
    while let Some(s) = source {
        if let Some(refusal) = s.downcast_ref::<crate::egress::EgressError>() {
            return FetchError::Denied(refusal.to_string());
        }
        last = s.to_string();
        source = s.source();
    }
    FetchError::Failed(last)
}

impl HostState {
    /// Runs `call` against the plugin's kv store, marking the wait: a timeout that strikes
    /// meanwhile is the store's trouble (see [`HostState::in_store_call`]).
    async fn kv_call<T, F>(&mut self, call: impl FnOnce(Arc<Capabilities>) -> F) -> T
    where
        F: std::future::Future<Output = T>,
    {
        let caps = self.caps.clone();
        self.in_store_call = true;
        let answer = call(caps).await;
        self.in_store_call = false;
        answer
    }

    /// Why a write of `key` must be refused under the plugin's kv quota, if it must (see
    /// [`KvQuota`]). A store failure ends the run like any kv call's.
    async fn kv_quota_refusal(&mut self, key: &str) -> wasmtime::Result<Option<String>> {
        self.kv_call(|caps| async move {
            let quota = &caps.kv_quota;
            let count = match quota.fresh() {
                Some(n) => n,
                None => caps.kv.count(&caps.plugin).await?,
            };
            quota.set(count);
            if count < quota.max {
                return Ok(None);
            }
            let exact = caps.kv.count(&caps.plugin).await?;
            quota.set(exact);
            if exact < quota.max || caps.kv.get(&caps.plugin, key).await?.is_some() {
                return Ok(None);
            }
            Ok(Some(format!(
                "kv quota of {} keys reached (kv_max_keys): delete keys or give them a ttl",
                quota.max
            )))
        })
        .await
        .map_err(kv_unavailable)
    }
}

impl bindings::KvHost for HostState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        self.kv_call(|caps| async move { caps.kv.get(&caps.plugin, &key).await })
            .await
            .map_err(kv_unavailable)
    }

    async fn set(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> wasmtime::Result<Result<(), String>> {
        if let Err(e) = check_kv_key(&key).and_then(|()| check_kv_value(&value)) {
            return Ok(Err(e));
        }
        if let Some(refusal) = self.kv_quota_refusal(&key).await? {
            return Ok(Err(refusal));
        }
        let expires_at = expiry(ttl_ms);
        self.kv_call(|caps| async move {
            let answer = caps.kv.set(&caps.plugin, &key, value, expires_at).await;
            if answer.is_ok() {
                caps.kv_quota.added();
            }
            answer
        })
        .await
        .map(Ok)
        .map_err(kv_unavailable)
    }

    async fn delete(&mut self, key: String) -> wasmtime::Result<()> {
        self.kv_call(|caps| async move { caps.kv.delete(&caps.plugin, &key).await })
            .await
            .map_err(kv_unavailable)
    }

    async fn increment(
        &mut self,
        key: String,
        delta: i64,
        ttl_ms: Option<u64>,
    ) -> wasmtime::Result<Result<i64, String>> {
        if let Err(e) = check_kv_key(&key) {
            return Ok(Err(e));
        }
        if let Some(refusal) = self.kv_quota_refusal(&key).await? {
            return Ok(Err(refusal));
        }
        let name = key.as_str();
        let answer = self
            .kv_call(|caps| async move {
                let answer = caps
                    .kv
                    .increment(&caps.plugin, name, delta, expiry(ttl_ms))
                    .await;
                if answer.is_ok() {
                    caps.kv_quota.added();
                }
                answer
            })
            .await;
        match answer {
            Ok(Some(sum)) => Ok(Ok(sum)),
            Ok(None) => Ok(Err(format!(
                "kv key {key:?} does not hold an integer, or adding {delta} overflows"
            ))),
            Err(e) => Err(kv_unavailable(e)),
        }
    }

    async fn set_if_absent(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> wasmtime::Result<Result<bool, String>> {
        if let Err(e) = check_kv_key(&key).and_then(|()| check_kv_value(&value)) {
            return Ok(Err(e));
        }
        if let Some(refusal) = self.kv_quota_refusal(&key).await? {
            return Ok(Err(refusal));
        }
        self.kv_call(|caps| async move {
            let answer = caps
                .kv
                .set_if_absent(&caps.plugin, &key, value, expiry(ttl_ms))
                .await;
            if answer == Ok(true) {
                caps.kv_quota.added();
            }
            answer
        })
        .await
        .map(Ok)
        .map_err(kv_unavailable)
    }
}

/// A store failure behind a host call. It ends the event's run rather than handing the
/// plugin an answer it would take for the truth, and the event runs again later: the
/// trouble is the store's, not the plugin's or the event's.
#[derive(Debug, thiserror::Error)]
#[error("kv store unavailable: {0}")]
pub struct StoreTrouble(pub String);

fn kv_unavailable(e: String) -> wasmtime::Error {
    wasmtime::Error::new(StoreTrouble(e))
}

fn check_kv_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > MAX_KV_KEY {
        return Err(format!("kv keys are 1 to {MAX_KV_KEY} bytes"));
    }
    Ok(())
}

fn check_kv_value(value: &[u8]) -> Result<(), String> {
    if value.len() > MAX_KV_VALUE {
        return Err(format!("kv values are at most {MAX_KV_VALUE} bytes"));
    }
    Ok(())
}

/// When an entry written now with `ttl_ms` expires.
fn expiry(ttl_ms: Option<u64>) -> Option<Millis> {
    ttl_ms.map(|t| now_ms().saturating_add(t.min(i64::MAX as u64) as Millis))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_stay_on_one_line() {
        assert_eq!(one_line("plain"), "plain");
        assert_eq!(
            one_line("ok\n2026-12-01T00:00:00Z ERROR hookyard: forged\r\u{1b}[31m"),
            "ok\\n2026-12-01T00:00:00Z ERROR hookyard: forged\\r\\u{1b}[31m"
        );
    }

    #[test]
    fn a_plugin_logs_at_most_its_budget_a_second_and_the_rest_is_counted() {
        let limit = LogLimit::default();
        let start = std::time::Instant::now();
        let admitted = (0..250).filter(|_| limit.admit(start).0).count();
        assert_eq!(admitted, LOG_LINES_PER_SECOND as usize);
        let (ok, held_back) = limit.admit(start + Duration::from_millis(1001));
        assert!(ok);
        assert_eq!(held_back, 250 - u64::from(LOG_LINES_PER_SECOND));
        assert_eq!(limit.admit(start + Duration::from_millis(1002)).1, 0);
    }

    #[tokio::test]
    async fn a_read_only_fetcher_refuses_methods_that_change_things() {
        use bindings::HttpHost;
        let policy = crate::config::EgressConfig {
            allow_private: vec![crate::config::Cidr("127.0.0.0/8".parse().unwrap())],
        };
        let egress = Arc::new(EgressPolicy::new(&policy));
        let mut caps = Capabilities::none("shadowed", &serde_json::json!({}));
        caps.allow_http = vec!["127.0.0.1:9".into()];
        caps.fetcher = Fetcher::ReadOnly {
            client: crate::destinations::http::client(egress.clone()),
            egress,
        };
        let mut state = HostState::new(Arc::new(caps), "evt_1".into(), 1 << 20);
        let request = |method: &str| Request {
            method: method.into(),
            url: "http://127.0.0.1:9/things".into(),
            headers: vec![],
            body: None,
        };
        for method in ["POST", "put", "DELETE", "PATCH"] {
            let answer = state.fetch(request(method)).await.unwrap();
            assert!(
                matches!(&answer, Err(FetchError::Denied(why)) if why.contains("GET and HEAD only")),
                "{method}: {answer:?}"
            );
        }
        // A GET is let through (and fails only because nothing listens on port 9).
        let answer = state.fetch(request("GET")).await.unwrap();
        assert!(
            !matches!(&answer, Err(FetchError::Denied(_))),
            "GET: {answer:?}"
        );
    }

    #[tokio::test]
    async fn an_overlay_reads_the_live_kv_and_keeps_its_writes_to_itself() {
        let live: Arc<dyn PluginKv> = Arc::new(MemoryKv::default());
        live.set("p", "seen", b"1".to_vec(), None).await.unwrap();
        live.set("p", "n", b"5".to_vec(), None).await.unwrap();
        let overlay = OverlayKv::new(live.clone());
        assert_eq!(overlay.get("p", "seen").await.unwrap(), Some(b"1".to_vec()));
        assert!(
            !overlay
                .set_if_absent("p", "seen", b"2".to_vec(), None)
                .await
                .unwrap()
        );
        overlay.set("p", "new", b"x".to_vec(), None).await.unwrap();
        overlay.delete("p", "seen").await.unwrap();
        assert_eq!(overlay.increment("p", "n", 2, None).await.unwrap(), Some(7));
        assert_eq!(overlay.get("p", "seen").await.unwrap(), None);
        assert_eq!(overlay.get("p", "new").await.unwrap(), Some(b"x".to_vec()));
        // The live kv is untouched.
        assert_eq!(live.get("p", "seen").await.unwrap(), Some(b"1".to_vec()));
        assert_eq!(live.get("p", "new").await.unwrap(), None);
        assert_eq!(live.get("p", "n").await.unwrap(), Some(b"5".to_vec()));
    }

    #[test]
    fn allow_http_matches_host_and_optional_port() {
        let url = |s: &str| reqwest::Url::parse(s).unwrap();
        let allow = vec!["api.stripe.com".to_string(), "127.0.0.1:9000".to_string()];
        assert!(host_allowed(&url("https://api.stripe.com/v1/x"), &allow));
        assert!(host_allowed(&url("https://API.stripe.com/"), &allow));
        assert!(!host_allowed(
            &url("https://api.stripe.com.evil.example/"),
            &allow
        ));
        assert!(host_allowed(&url("http://127.0.0.1:9000/x"), &allow));
        assert!(!host_allowed(&url("http://127.0.0.1:9001/x"), &allow));
        assert!(!host_allowed(&url("http://127.0.0.1/x"), &allow));
    }
}
