//! `[[routes]]`: endpoints, their verification and dedup.

use super::*;

/// `[[routes]]`: one provider endpoint, its verification, steps and destinations.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// The `<route>` in `POST /hooks/<route>`.
    pub name: Spanned<String>,
    /// How requests are authenticated. Required unless the route is polled (`poll`).
    pub verify: Option<VerifyConfig>,
    /// The route's events come from polling an API instead of being posted.
    pub poll: Option<PollConfig>,
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

/// `[routes.poll]`: an API without webhooks, polled; each new item becomes an event.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct PollConfig {
    /// The URL to GET (may hold `${VAR}`); checked against the egress rules.
    pub url: Secret,
    /// How often to poll.
    pub every: Dur,
    /// JSON pointer to the array of items in the response; empty: the body is the array.
    #[serde(default)]
    pub items: String,
    /// JSON pointer to each item's id (an id seen within `dedup.window` is skipped).
    pub id: String,
    /// How requests authenticate, as for HTTP destinations.
    pub auth: Option<AuthConfig>,
    /// JSON pointer to the next page's URL in a response (same host only).
    pub next: Option<String>,
    /// Most pages one poll follows.
    #[serde(default = "default_max_pages")]
    pub max_pages: u32,
    /// Query parameters; `{{ cursor }}` in a value is the remembered cursor (a parameter
    /// using it is left out until there is one).
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// JSON pointer, inside each item, to the value whose largest is remembered as the cursor.
    pub cursor: Option<String>,
    /// JSON pointer, inside each item, to its event type.
    pub event_type: Option<String>,
    /// The longest one request may take.
    #[serde(default = "default_poll_timeout")]
    pub timeout: Dur,
    /// The largest response read.
    #[serde(default = "default_poll_max_response")]
    pub max_response: ByteSize,
}

impl PollConfig {
    /// What is wrong with the table, if anything: `key: reason`.
    pub fn check(&self) -> Result<(), String> {
        let pointer = |key: &str, p: &str| {
            if p.is_empty() || p.starts_with('/') {
                Ok(())
            } else {
                Err(format!(
                    "{key}: {p:?} must be a JSON pointer such as \"/{p}\""
                ))
            }
        };
        match url::Url::parse(self.url.expose()) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => return Err("url: must be an http:// or https:// URL".into()),
        }
        if self.every.0 < Duration::from_millis(100) {
            return Err("every: must be at least 100ms".into());
        }
        pointer("items", &self.items)?;
        if self.id.is_empty() {
            return Err("id: name the pointer to each item's id, e.g. \"/id\"".into());
        }
        pointer("id", &self.id)?;
        for (key, p) in [
            ("next", &self.next),
            ("cursor", &self.cursor),
            ("event_type", &self.event_type),
        ] {
            if let Some(p) = p {
                pointer(key, p)?;
            }
        }
        if self.max_pages == 0 {
            return Err("max_pages: must be at least 1".into());
        }
        if self
            .query
            .values()
            .any(|v| v.contains("{{") && !is_cursor_template(v))
            && self.cursor.is_some()
        {
            return Err("query: the only placeholder is {{ cursor }}".into());
        }
        if self.cursor.is_none() && self.query.values().any(|v| v.contains("{{")) {
            return Err("query: {{ cursor }} needs poll.cursor, the pointer to remember".into());
        }
        Ok(())
    }
}

/// Whether `v`'s only placeholders are `{{ cursor }}`.
fn is_cursor_template(v: &str) -> bool {
    v.replace("{{ cursor }}", "")
        .replace("{{cursor}}", "")
        .find("{{")
        .is_none()
}

fn default_max_pages() -> u32 {
    10
}

fn default_poll_timeout() -> Dur {
    Dur(Duration::from_secs(30))
}

fn default_poll_max_response() -> ByteSize {
    ByteSize(4 * 1024 * 1024)
}

/// `verify = { scheme = "...", ... }` on a route. Which keys apply depends on the scheme;
/// a key that does not apply is an error (see [`crate::verify::Verifier::from_config`]).
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct VerifyConfig {
    /// Which provider's scheme.
    pub scheme: Scheme,
    /// The signing secret (or token, or password); a list while one rotates.
    pub secret: Option<SecretList>,
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
    /// `meta`: the Verify Token typed into the app dashboard, which Meta's subscription
    /// handshake (`GET ?hub.mode=subscribe&hub.verify_token=...`) must present.
    pub verify_token: Option<Secret>,
}

/// The verification schemes: the built-in ones, and every named provider in [`PRESETS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// No verification: anyone who can reach the port may post. Only for trusted networks.
    None,
    /// Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`).
    StandardWebhooks,
    /// Svix: Standard Webhooks with `svix-*` headers.
    Svix,
    /// GitHub: `X-Hub-Signature-256: sha256=<hex>`.
    Github,
    /// Meta (WhatsApp, Instagram, Messenger, Facebook): `X-Hub-Signature-256` over the body,
    /// and the `hub.challenge` subscription handshake.
    Meta,
    /// Stripe: `Stripe-Signature: t=...,v1=...`.
    Stripe,
    /// Shopify: `X-Shopify-Hmac-Sha256`, base64.
    Shopify,
    /// Slack: `X-Slack-Signature: v0=...` with `X-Slack-Request-Timestamp`.
    Slack,
    /// Zoom: `x-zm-signature: v0=...` with `x-zm-request-timestamp`, and the
    /// `endpoint.url_validation` handshake.
    Zoom,
    /// Dropbox: `X-Dropbox-Signature: <hex>` over the body with the app secret, and the
    /// `GET ?challenge=` endpoint check.
    Dropbox,
    /// Microsoft Graph change notifications: `secret` is the subscription's `clientState`;
    /// `?validationToken=` requests are answered.
    MicrosoftGraph,
    /// Twilio: `X-Twilio-Signature`, HMAC-SHA1 over the URL and sorted form parameters.
    Twilio,
    /// Generic HMAC of the body (optionally with a timestamp) in one header.
    Hmac,
    /// A shared secret in a header or query parameter.
    Token,
    /// HTTP Basic authentication.
    Basic,
    /// A named provider described by a row of [`PRESETS`].
    Preset(&'static Preset),
}

/// The built-in schemes by name; presets follow in [`Scheme::names`].
const BUILT_IN: &[(&str, Scheme)] = &[
    ("none", Scheme::None),
    ("standard-webhooks", Scheme::StandardWebhooks),
    ("svix", Scheme::Svix),
    ("github", Scheme::Github),
    ("meta", Scheme::Meta),
    ("stripe", Scheme::Stripe),
    ("shopify", Scheme::Shopify),
    ("slack", Scheme::Slack),
    ("zoom", Scheme::Zoom),
    ("dropbox", Scheme::Dropbox),
    ("microsoft-graph", Scheme::MicrosoftGraph),
    ("twilio", Scheme::Twilio),
    ("hmac", Scheme::Hmac),
    ("token", Scheme::Token),
    ("basic", Scheme::Basic),
];

impl Scheme {
    /// The scheme called `name` in `router.toml`.
    pub fn from_name(name: &str) -> Option<Scheme> {
        BUILT_IN
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| *s)
            .or_else(|| preset(name).map(Scheme::Preset))
    }

    /// Its name in `router.toml`.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Preset(p) => p.name,
            other => BUILT_IN
                .iter()
                .find(|(_, s)| *s == other)
                .map_or("?", |(n, _)| n),
        }
    }

    /// Every scheme name: the built-in ones, then the presets.
    pub fn names() -> impl Iterator<Item = &'static str> {
        BUILT_IN
            .iter()
            .map(|(n, _)| *n)
            .chain(PRESETS.iter().map(|p| p.name))
    }

    /// Whether requests carry a delivery id the router can drop duplicates by, without a
    /// `dedup` table on the route.
    pub fn dedups(self) -> bool {
        match self {
            Scheme::Github
            | Scheme::Shopify
            | Scheme::Stripe
            | Scheme::Slack
            | Scheme::Twilio
            | Scheme::StandardWebhooks
            | Scheme::Svix => true,
            Scheme::Preset(p) => p.delivery_id != Locate::Nowhere,
            _ => false,
        }
    }

    /// Whether the scheme signs a timestamp that is checked against a tolerance (with
    /// `timestamp_header` set, for `hmac`).
    pub fn timestamped(self, config: &VerifyConfig) -> bool {
        match self {
            Scheme::Stripe
            | Scheme::StandardWebhooks
            | Scheme::Svix
            | Scheme::Slack
            | Scheme::Zoom => true,
            Scheme::Hmac => config.timestamp_header.is_some(),
            Scheme::Preset(p) => match &p.check {
                Check::Hmac(rule) => rule.timestamp.is_some(),
                Check::Svix | Check::Ed25519 { .. } | Check::Ecdsa { .. } => true,
                Check::Token { .. } | Check::Basic | Check::Learned { .. } => false,
            },
            _ => false,
        }
    }
}

impl<'de> Deserialize<'de> for Scheme {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Scheme::from_name(&name).ok_or_else(|| {
            let hint = closest(&name, Scheme::names())
                .map(|n| format!(" (did you mean \"{n}\"?)"))
                .unwrap_or_default();
            serde::de::Error::custom(format!(
                "unknown scheme \"{name}\"{hint}; `hookyard providers` lists every scheme"
            ))
        })
    }
}

/// The candidate nearest to `word` by edit distance, if it is near enough to be a typo.
fn closest(word: &str, candidates: impl Iterator<Item = &'static str>) -> Option<&'static str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut cur = vec![i + 1];
            for (j, cb) in b.iter().enumerate() {
                let cost = usize::from(ca != *cb);
                cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
            }
            prev = cur;
        }
        prev[b.len()]
    }
    let word = word.to_ascii_lowercase();
    candidates
        .map(|c| (distance(&word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

impl VerifyConfig {
    /// Every configured secret: `secret` first, then `secrets`.
    pub fn all_secrets(&self) -> Vec<&Secret> {
        self.secret
            .iter()
            .flat_map(|l| l.0.iter())
            .chain(self.secrets.iter())
            .collect()
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

impl DedupConfig {
    /// The default window: a week, longer than any provider's retry schedule.
    pub const DEFAULT_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

    /// How long delivery ids are remembered: `window`, or [`Self::DEFAULT_WINDOW`].
    pub fn window(&self) -> Duration {
        self.window.map_or(Self::DEFAULT_WINDOW, |w| w.0)
    }
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
