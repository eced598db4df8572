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
    /// The directory of the config file; relative paths in it resolve from here.
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// The file it was loaded from, when it came from a file (hot reload watches it).
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// `[server]`.
#[derive(Debug, Deserialize)]
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://path/to/file.db` (relative to the config file).
    pub url: Secret,
}

/// `[runtime]`: the plugin engine.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Where compiled plugins are cached; default `$XDG_CACHE_HOME/hookyard` or `~/.cache/hookyard`.
    pub cache_dir: Option<PathBuf>,
    /// How many events run through plugins at once; default: the number of CPUs.
    pub concurrency: Option<usize>,
}

/// `[plugins.<name>]`: one wasm component, the capabilities it is granted, and its budget.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// The `.wasm` component, relative to the config file.
    pub path: PathBuf,
    /// Handed to the plugin as JSON through the `config` import.
    #[serde(default = "empty_object")]
    pub config: serde_json::Value,
    /// Secrets the plugin may read by name (values may use `${VAR}`).
    #[serde(default)]
    pub secrets: BTreeMap<String, Secret>,
    /// Hosts (`api.example.com` or `host:port`) the plugin may fetch from; none by default.
    #[serde(default)]
    pub allow_http: Vec<String>,
    /// Longest one fetch may take.
    #[serde(default = "default_http_timeout")]
    pub http_timeout: Dur,
    /// Largest response body a fetch may return.
    #[serde(default = "default_http_max_response")]
    pub http_max_response: ByteSize,
    /// Most linear memory the plugin may grow to per event.
    #[serde(default = "default_plugin_memory")]
    pub memory: ByteSize,
    /// Longest the plugin may run per event, fetches included.
    #[serde(default = "default_plugin_timeout")]
    pub timeout: Dur,
    /// Most fuel (roughly, wasm instructions) the plugin may burn per event; unlimited if unset.
    pub fuel: Option<u64>,
    /// Most outputs per event.
    #[serde(default = "default_max_outputs")]
    pub max_outputs: usize,
    /// Most output bytes (bodies added up) per event.
    #[serde(default = "default_max_output_bytes")]
    pub max_output_bytes: ByteSize,
}

impl PluginConfig {
    /// A config with every default, for running a plugin outside `router.toml`.
    pub fn with_defaults(path: PathBuf) -> PluginConfig {
        PluginConfig {
            path,
            config: empty_object(),
            secrets: BTreeMap::new(),
            allow_http: Vec::new(),
            http_timeout: default_http_timeout(),
            http_max_response: default_http_max_response(),
            memory: default_plugin_memory(),
            timeout: default_plugin_timeout(),
            fuel: None,
            max_outputs: default_max_outputs(),
            max_output_bytes: default_max_output_bytes(),
        }
    }
}

fn default_http_timeout() -> Dur {
    Dur(Duration::from_secs(5))
}
fn default_http_max_response() -> ByteSize {
    ByteSize(1 << 20)
}
fn default_max_outputs() -> usize {
    100
}
fn default_max_output_bytes() -> ByteSize {
    ByteSize(1 << 20)
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}
fn default_plugin_memory() -> ByteSize {
    ByteSize(32 * 1024 * 1024)
}
fn default_plugin_timeout() -> Dur {
    Dur(Duration::from_millis(250))
}

/// `[destinations.<name>]`: an HTTP endpoint (`url`) or an SMTP server (`smtp`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationConfig {
    /// Where to send, `http://` or `https://`.
    pub url: Option<Secret>,
    /// An SMTP server, `smtp://host:port` or `smtps://host:port` (implicit TLS).
    pub smtp: Option<Secret>,
    /// For `smtp://`: `"starttls"` (required; the default, except on a loopback host) or `"none"`.
    pub tls: Option<SmtpTls>,
    /// SMTP user name.
    pub username: Option<String>,
    /// SMTP password.
    pub password: Option<Secret>,
    /// The sender address of every message, e.g. `"Acme <hooks@acme.example>"`.
    pub from: Option<String>,
    /// A default `Reply-To`.
    pub reply_to: Option<String>,
    /// The name sent in EHLO (relays often reject container host names).
    pub helo_name: Option<String>,
    /// Largest message sent.
    #[serde(default = "default_max_message")]
    pub max_message_size: ByteSize,
    /// HTTP method, default POST.
    #[serde(default = "default_method")]
    pub method: String,
    /// Extra request headers (values may use `${VAR}`).
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// Per-attempt timeout.
    #[serde(default = "default_destination_timeout")]
    pub timeout: Dur,
    /// Retry policy.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Most attempts in flight to this destination at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Most attempts started per period, e.g. `"50/s"`, `"600/m"`.
    pub rate: Option<Rate>,
    /// Stop attempting for a while after this many consecutive failures.
    #[serde(default)]
    pub breaker: BreakerConfig,
    /// Deliver outputs with the same key one after another.
    pub ordering: Option<OrderingConfig>,
    /// What a `410 Gone` answer does: `"pause"` the destination (default) or `"retry"`.
    #[serde(default)]
    pub gone: GonePolicy,
    /// Sign every request so the receiver can verify it came from this router.
    pub sign: Option<SignConfig>,
    /// How requests authenticate to the destination's API.
    pub auth: Option<AuthConfig>,
    /// Send `Idempotency-Key: <delivery id>` (the same on every retry); default true.
    #[serde(default = "default_true")]
    pub idempotency_key: bool,
}

fn default_true() -> bool {
    true
}

fn default_max_message() -> ByteSize {
    ByteSize(10 << 20)
}

/// TLS for `smtp://` destinations.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Upgrade with STARTTLS, and refuse to send if the server cannot.
    Starttls,
    /// Plain text (only for a relay on the same host or network).
    None,
}

/// `auth = { ... }` on a destination: exactly one of the forms below.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// `Authorization: Bearer <token>`.
    pub bearer: Option<Secret>,
    /// `Authorization: Basic ...`.
    pub basic: Option<BasicAuth>,
    /// A header carrying `value`, e.g. `X-Api-Key`.
    pub header: Option<String>,
    /// A query parameter carrying `value`, e.g. `api_token`.
    pub query: Option<String>,
    /// The value for `header` or `query`.
    pub value: Option<Secret>,
    /// OAuth 2 client credentials: a token fetched, cached until it expires, refreshed once
    /// when the API answers 401.
    pub oauth2: Option<OAuth2Config>,
}

/// `basic = { username = "...", password = "..." }`.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// The user name.
    pub username: String,
    /// The password.
    pub password: Secret,
}

/// `oauth2 = { token_url, client_id, client_secret, scope }`.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct OAuth2Config {
    /// The token endpoint.
    pub token_url: String,
    /// The client id.
    pub client_id: String,
    /// The client secret.
    pub client_secret: Secret,
    /// Requested scope, space-separated.
    pub scope: Option<String>,
}

impl AuthConfig {
    /// Checks that exactly one form is used, completely.
    pub fn validate(&self) -> Result<(), String> {
        let forms = [
            self.bearer.is_some(),
            self.basic.is_some(),
            self.header.is_some(),
            self.query.is_some(),
            self.oauth2.is_some(),
        ];
        if forms.iter().filter(|f| **f).count() != 1 {
            return Err("auth takes exactly one of bearer, basic, header, query, oauth2".into());
        }
        if (self.header.is_some() || self.query.is_some()) != self.value.is_some() {
            return Err("auth.value goes with auth.header or auth.query".into());
        }
        Ok(())
    }
}

/// `sign = { scheme = "standard-webhooks", secret = "whsec_..." }` on a destination.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct SignConfig {
    /// The signature scheme; `standard-webhooks` is the one supported.
    pub scheme: OutboundScheme,
    /// The `whsec_<base64>` signing secret the receiver also holds.
    pub secret: Secret,
}

/// Schemes Hookyard signs outbound requests with.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum OutboundScheme {
    /// `webhook-id`, `webhook-timestamp`, `webhook-signature`.
    StandardWebhooks,
}

fn default_method() -> String {
    "POST".to_string()
}
fn default_destination_timeout() -> Dur {
    Dur(Duration::from_secs(10))
}
fn default_concurrency() -> usize {
    16
}

/// `ordering = { key = "/data/object/customer" }`.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct OrderingConfig {
    /// A JSON pointer into the output body; outputs without it are not ordered.
    pub key: String,
}

/// `breaker = { failures = 5, cooldown = "30s" }`: a circuit breaker per destination.
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct BreakerConfig {
    /// Consecutive failed attempts that open the circuit; 0 disables the breaker.
    #[serde(default = "default_breaker_failures")]
    pub failures: u32,
    /// How long the circuit stays open before one probe attempt is let through.
    #[serde(default = "default_breaker_cooldown")]
    pub cooldown: Dur,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failures: default_breaker_failures(),
            cooldown: default_breaker_cooldown(),
        }
    }
}

fn default_breaker_failures() -> u32 {
    5
}
fn default_breaker_cooldown() -> Dur {
    Dur(Duration::from_secs(30))
}

/// What a `410 Gone` answer does.
#[derive(Debug, Deserialize, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum GonePolicy {
    /// Pause the destination until it is resumed through the admin API; nothing is lost.
    #[default]
    Pause,
    /// Treat it like any other failure.
    Retry,
}

/// A rate such as `"50/s"`: at most `count` attempts started per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Attempts per period.
    pub count: u32,
    /// The period.
    pub per: Duration,
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let bad = || {
            serde::de::Error::custom(format!(
                "invalid rate {s:?}; write e.g. \"50/s\", \"600/m\", \"1000/h\""
            ))
        };
        let (count, unit) = s.split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let per = match unit.trim() {
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return Err(bad()),
        };
        if count == 0 {
            return Err(bad());
        }
        Ok(Rate { count, per })
    }
}

/// `retry = { ... }`: either a `schedule` of delays, or exponential backoff.
///
/// The default is the schedule Standard Webhooks recommends: attempt at once, then after
/// 5s, 5m, 30m, 2h, 5h, 10h and 10h (8 attempts over about 28 hours). Every delay gets
/// +-20% jitter.
#[derive(Debug, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Delays before each retry, e.g. `["5s", "5m", "30m"]` (4 attempts in all).
    pub schedule: Option<Vec<Dur>>,
    /// Exponential: attempts in all, the first included.
    pub attempts: Option<u32>,
    /// Exponential: delay before the second attempt; doubles each time.
    pub backoff: Option<Dur>,
    /// Exponential: the delay never grows past this (default 1h).
    pub max_backoff: Option<Dur>,
    /// Give up once a delivery is this old, whatever attempts remain.
    pub max_age: Option<Dur>,
    /// Longest `Retry-After` honoured on a 429 or 503 (default 1h).
    pub max_retry_after: Option<Dur>,
}

/// The Standard Webhooks retry schedule.
pub const DEFAULT_SCHEDULE: [u64; 7] = [5, 300, 1800, 7200, 18000, 36000, 36000];

impl RetryConfig {
    /// Checks that the table describes exactly one policy.
    pub fn validate(&self) -> Result<(), String> {
        let exponential =
            self.attempts.is_some() || self.backoff.is_some() || self.max_backoff.is_some();
        if self.schedule.is_some() && exponential {
            return Err(
                "retry: use either schedule or attempts/backoff/max_backoff, not both".into(),
            );
        }
        if self.attempts == Some(0) {
            return Err("retry.attempts must be at least 1".into());
        }
        if exponential && self.backoff.is_none() {
            return Err("retry: exponential backoff needs backoff (e.g. \"2s\")".into());
        }
        Ok(())
    }
}

/// `[[routes]]`: one provider endpoint, its verification, steps and destinations.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// The `<route>` in `POST /hooks/<route>`.
    pub name: Spanned<String>,
    /// How requests are authenticated.
    pub verify: VerifyConfig,
    /// Plugin names, run in order.
    #[serde(default)]
    pub steps: Vec<Spanned<String>>,
    /// Destination names that outputs go to unless an output names its own.
    #[serde(default)]
    pub to: Vec<Spanned<String>>,
    /// Where the provider's delivery id is, beyond what the scheme knows, and the window.
    #[serde(default)]
    pub dedup: DedupConfig,
    /// Only these client networks may post (checked before the signature).
    pub allow_ips: Option<Vec<Cidr>>,
}

/// `verify = { scheme = "...", ... }` on a route. Which keys apply depends on the scheme;
/// a key that does not apply is an error (see [`crate::verify::Verifier::from_config`]).
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct VerifyConfig {
    /// Which provider's scheme.
    pub scheme: Scheme,
    /// The signing secret (or token, or password).
    pub secret: Option<Secret>,
    /// Several secrets, any of which may sign: for rotation without downtime.
    #[serde(default)]
    pub secrets: Vec<Secret>,
    /// Largest accepted clock difference for timestamped schemes (default 5 minutes), both ways.
    pub tolerance: Option<Dur>,
    /// `hmac`: the signature header; `token`: the header carrying the token.
    pub header: Option<String>,
    /// `hmac`: `sha256` (default), `sha1` or `sha512`.
    pub algorithm: Option<HmacAlgorithm>,
    /// `hmac`: `hex` (default) or `base64`.
    pub encoding: Option<SignatureEncoding>,
    /// `hmac`: text before the signature, e.g. `sha256=`; `token`: before the token, e.g. `Bearer `.
    pub prefix: Option<String>,
    /// `hmac`: a header with a Unix timestamp that is part of the signed content.
    pub timestamp_header: Option<String>,
    /// `hmac`: what is signed, with `{timestamp}` and `{body}`, e.g. `"{timestamp}.{body}"`.
    pub signed_content: Option<String>,
    /// `token`: the query parameter carrying the token instead of a header.
    pub query: Option<String>,
    /// `basic`: the user name.
    pub username: Option<String>,
    /// `twilio`: the public base URL Twilio calls, e.g. `https://hooks.example.com` (the
    /// router often sits behind a proxy, so it cannot know it).
    pub public_url: Option<String>,
}

/// The verification schemes.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Scheme {
    /// No verification: anyone who can reach the port may post. Only for trusted networks.
    None,
    /// Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`).
    StandardWebhooks,
    /// Svix: Standard Webhooks with `svix-*` headers.
    Svix,
    /// GitHub: `X-Hub-Signature-256: sha256=<hex>`.
    Github,
    /// Stripe: `Stripe-Signature: t=...,v1=...`.
    Stripe,
    /// Shopify: `X-Shopify-Hmac-Sha256`, base64.
    Shopify,
    /// Slack: `X-Slack-Signature: v0=...` with `X-Slack-Request-Timestamp`.
    Slack,
    /// Twilio: `X-Twilio-Signature`, HMAC-SHA1 over the URL and sorted form parameters.
    Twilio,
    /// Generic HMAC of the body (optionally with a timestamp) in one header.
    Hmac,
    /// A shared secret in a header or query parameter.
    Token,
    /// HTTP Basic authentication.
    Basic,
}

impl VerifyConfig {
    /// Every configured secret: `secret` first, then `secrets`.
    pub fn all_secrets(&self) -> Vec<&Secret> {
        self.secret.iter().chain(self.secrets.iter()).collect()
    }
}

/// `dedup = { header = "...", pointer = "...", window = "7d" }` on a route: how to find the
/// provider's delivery id when the scheme does not say, and how long to remember it.
#[derive(Debug, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct DedupConfig {
    /// A request header holding the delivery id.
    pub header: Option<String>,
    /// A JSON pointer into the body holding it (e.g. `/id`).
    pub pointer: Option<String>,
    /// How long a delivery id is remembered (default 7 days).
    pub window: Option<Dur>,
}

/// Digest of the generic HMAC scheme.
#[derive(Debug, Deserialize, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum HmacAlgorithm {
    /// HMAC-SHA1 (legacy senders only).
    Sha1,
    /// HMAC-SHA256.
    #[default]
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

/// How a signature is written in its header.
#[derive(Debug, Deserialize, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SignatureEncoding {
    /// Lower- or upper-case hex.
    #[default]
    Hex,
    /// Standard base64 with padding.
    Base64,
}

/// A duration written like `250ms`, `10s`, `5m`, `1h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map(Dur).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration {s:?} ({e}); write e.g. \"250ms\", \"10s\", \"1h\""
            ))
        })
    }
}

/// A size written like `512KiB`, `32MiB`, `1GiB` or a plain number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parses `32MiB`, `1GiB`, `512KiB`, `100KB`, `4096`.
    pub fn parse(s: &str) -> Option<ByteSize> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: u64 = num.parse().ok()?;
        let mult: u64 = match unit.trim() {
            "" | "B" => 1,
            "KB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            _ => return None,
        };
        n.checked_mul(mult).map(ByteSize)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        if b >= 1 << 20 && b.is_multiple_of(1 << 20) {
            write!(f, "{}MiB", b >> 20)
        } else if b >= 1 << 10 && b.is_multiple_of(1 << 10) {
            write!(f, "{}KiB", b >> 10)
        } else {
            write!(f, "{b}B")
        }
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(ByteSize(n)),
            Raw::S(s) => ByteSize::parse(&s).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "invalid size {s:?}; write e.g. \"1MiB\", \"512KiB\""
                ))
            }),
        }
    }
}

/// A string that may hold `${VAR}` references, expanded at load time, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value that is already expanded.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    /// The expanded value. Callers must not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        expand_env(&raw, |name| std::env::var(name).ok())
            .map(Secret)
            .map_err(serde::de::Error::custom)
    }
}

/// Replaces each `${NAME}` with the variable's value; `$$` is a literal `$`.
pub fn expand_env(raw: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| "unterminated ${ in value".to_string())?;
            let name = &body[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("invalid environment variable name {name:?}"));
            }
            let value =
                lookup(name).ok_or_else(|| format!("environment variable {name} is not set"))?;
            out.push_str(&value);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

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

    fn check(&self, text: &str, path: &Path) -> Result<(), ConfigError> {
        let invalid = |span: std::ops::Range<usize>, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            line: line_of(text, span.start),
            message,
        };
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
            if let Some(auth) = &dest.auth {
                auth.validate().map_err(fail)?;
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
        if self.sqlite_path_str().is_none() {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                line: find_line(text, "[store]"),
                message: "store.url must start with sqlite:// (the only backend in this build)"
                    .to_string(),
            });
        }
        Ok(())
    }

    fn sqlite_path_str(&self) -> Option<&str> {
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

fn find_line(text: &str, needle: &str) -> usize {
    text.find(needle).map_or(1, |i| line_of(text, i))
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
