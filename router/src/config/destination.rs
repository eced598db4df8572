//! `[destinations.<name>]`: HTTP and SMTP destinations and the policy around their attempts.

use super::*;

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
    /// Answers that retrying will not change (the request itself is wrong): the delivery
    /// becomes a dead letter at once, and the breaker does not count it against the
    /// destination. Default 400, 401, 403, 404, 422; `[]` retries every non-2xx.
    #[serde(default = "default_permanent_statuses")]
    pub permanent_statuses: Vec<u16>,
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

fn default_permanent_statuses() -> Vec<u16> {
    vec![400, 401, 403, 404, 422]
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
