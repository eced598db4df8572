//! HTTP destinations: one request per attempt; 2xx is success; redirects are not followed.
//! Every connection goes through the egress rules (see [`crate::egress`]).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::{HeaderName, HeaderValue, Method, StatusCode};

use super::auth::Auth;
use super::transport::describe;
use crate::config::DestinationConfig;
use crate::egress::{EgressError, EgressPolicy, GuardedResolver};
use crate::store::Delivery;
use crate::verify::standard_webhooks::{Flavor, StandardWebhooks};

/// How much of a response body an attempt records.
pub const RESPONSE_BODY_LIMIT: usize = 16 * 1024;

/// A configured HTTP destination.
#[derive(Debug)]
pub struct HttpDestination {
    /// Name in `router.toml`.
    pub name: String,
    url: reqwest::Url,
    method: Method,
    headers: Vec<(HeaderName, HeaderValue)>,
    timeout: Duration,
    /// Signs each request (Standard Webhooks), when configured.
    signer: Option<StandardWebhooks>,
    /// How requests authenticate.
    auth: Option<Auth>,
    /// Whether requests carry `Idempotency-Key`.
    idempotency_key: bool,
    /// Answers that make the delivery a dead letter at once (`permanent_statuses`).
    permanent_statuses: Vec<u16>,
}

/// Why a destination's config is unusable.
#[derive(Debug, thiserror::Error)]
#[error("destination {name:?}: {reason}")]
pub struct DestinationError {
    name: String,
    reason: String,
}

impl DestinationError {
    /// A problem with destination `name`.
    pub fn new(name: &str, reason: String) -> DestinationError {
        DestinationError {
            name: name.to_string(),
            reason,
        }
    }
}

/// The result of one attempt.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AttemptResult {
    /// The response status, if one came.
    pub status: Option<u16>,
    /// How long the attempt took.
    pub latency: Duration,
    /// `None` on success; otherwise why it failed.
    pub error: Option<String>,
    /// The first [`RESPONSE_BODY_LIMIT`] bytes of the response body.
    pub response_body: Option<Vec<u8>>,
    /// `Retry-After` of a 429 or 503 answer.
    pub retry_after: Option<Duration>,
    /// The failure will not go away by retrying (e.g. an address egress rules block).
    pub permanent: bool,
}

impl HttpDestination {
    /// Builds from config; rejects unparsable URLs and header values.
    pub fn new(
        name: &str,
        config: &DestinationConfig,
        egress: &EgressPolicy,
    ) -> Result<HttpDestination, DestinationError> {
        let err = |reason: String| DestinationError::new(name, reason);
        let raw = config
            .url
            .as_ref()
            .ok_or_else(|| err("url is missing".into()))?;
        // The URL may carry a token: never echo it in errors.
        let url =
            reqwest::Url::parse(raw.expose()).map_err(|e| err(format!("invalid url ({e})")))?;
        egress.check_url(&url).map_err(|e| err(e.to_string()))?;
        let method = Method::from_bytes(config.method.as_bytes())
            .map_err(|_| err(format!("invalid method {:?}", config.method)))?;
        let mut headers = Vec::new();
        for (k, v) in &config.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| err(format!("invalid header name {k:?}")))?;
            let mut value = HeaderValue::from_str(v.expose())
                .map_err(|_| err(format!("invalid value for header {k:?}")))?;
            value.set_sensitive(true);
            headers.push((name, value));
        }
        let auth = config
            .auth
            .as_ref()
            .map(Auth::new)
            .transpose()
            .map_err(err)?;
        if let Some(Auth::OAuth2(o)) = &auth {
            egress
                .check_url(o.token_url())
                .map_err(|e| err(format!("oauth2.token_url: {e}")))?;
        }
        Ok(HttpDestination {
            name: name.to_string(),
            url,
            method,
            headers,
            timeout: config.timeout.0,
            signer: match &config.sign {
                Some(sign) => Some(
                    StandardWebhooks::new(
                        &[sign.secret.expose()],
                        Duration::ZERO,
                        Flavor::StandardWebhooks,
                    )
                    .map_err(|e| err(format!("sign: {}", e.0)))?,
                ),
                None => None,
            },
            auth,
            idempotency_key: config.idempotency_key,
            permanent_statuses: config.permanent_statuses.clone(),
        })
    }

    /// Makes one attempt to deliver.
    pub async fn attempt(&self, client: &reqwest::Client, delivery: &Delivery) -> AttemptResult {
        let started = Instant::now();
        let permanent = |error: String| AttemptResult {
            error: Some(error),
            permanent: true,
            ..Default::default()
        };
        let d = &delivery.new;
        let method = match &d.method {
            None => self.method.clone(),
            Some(m) => match Method::from_bytes(m.to_ascii_uppercase().as_bytes()) {
                Ok(m)
                    if [
                        Method::POST,
                        Method::PUT,
                        Method::PATCH,
                        Method::DELETE,
                        Method::GET,
                    ]
                    .contains(&m) =>
                {
                    m
                }
                _ => {
                    return permanent(format!(
                        "the plugin asked for method {m:?}; use POST, PUT, PATCH, DELETE or GET"
                    ));
                }
            },
        };
        let url = match self.target(d.path.as_deref()) {
            Ok(u) => u,
            Err(e) => return permanent(e),
        };
        let oauth = match &self.auth {
            Some(Auth::OAuth2(o)) => Some(o),
            _ => None,
        };
        let token = match oauth {
            Some(o) => match o.token(client, false).await {
                Ok(t) => Some(t),
                Err(e) => {
                    return AttemptResult {
                        error: Some(format!("oauth2: {e}")),
                        latency: started.elapsed(),
                        ..Default::default()
                    };
                }
            },
            None => None,
        };
        let mut result = self
            .send(
                client,
                delivery,
                method.clone(),
                url.clone(),
                token.as_deref(),
            )
            .await;
        if let (Some(o), Some(401)) = (oauth, result.status) {
            // The cached token may have been revoked: one fresh token, one more try.
            match o.token(client, true).await {
                Ok(t) => result = self.send(client, delivery, method, url, Some(&t)).await,
                Err(e) => result.error = Some(format!("HTTP 401; oauth2 refresh: {e}")),
            }
        }
        result.latency = started.elapsed();
        result
    }

    /// The destination URL with a plugin's `path` appended (see [`join_plugin_path`]).
    fn target(&self, path: Option<&str>) -> Result<reqwest::Url, String> {
        match path {
            None => Ok(self.url.clone()),
            Some(path) => join_plugin_path(&self.url, path),
        }
    }

    async fn send(
        &self,
        client: &reqwest::Client,
        delivery: &Delivery,
        method: Method,
        mut url: reqwest::Url,
        token: Option<&str>,
    ) -> AttemptResult {
        let d = &delivery.new;
        if let Some(Auth::Query(name, value)) = &self.auth {
            url.query_pairs_mut().append_pair(name, value.expose());
        }
        let mut req = client
            .request(method, url)
            .timeout(self.timeout)
            .header("hookyard-delivery-id", &d.id)
            .header("hookyard-event-id", &d.event_id);
        if self.idempotency_key {
            req = req.header("idempotency-key", &d.id);
        }
        if let Some(ct) = &d.content_type {
            req = req.header(http::header::CONTENT_TYPE, ct);
        }
        for (name, value) in &d.headers {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                req = req.header(n, v);
            }
        }
        for (name, value) in &self.headers {
            req = req.header(name, value);
        }
        match (&self.auth, token) {
            (Some(Auth::Authorization(v)), _) => {
                req = req.header(http::header::AUTHORIZATION, v.clone())
            }
            (Some(Auth::Header(n, v)), _) => req = req.header(n.clone(), v.clone()),
            (_, Some(t)) => {
                if let Ok(mut v) = HeaderValue::from_str(&format!("Bearer {t}")) {
                    v.set_sensitive(true);
                    req = req.header(http::header::AUTHORIZATION, v);
                }
            }
            _ => {}
        }
        // The receiver's trace joins the event's (replacing any `traceparent` a plugin set).
        req = req.headers(crate::trace::outbound_headers(&tracing::Span::current()));
        if let Some(signer) = &self.signer {
            // The delivery id is the message id: the same on every retry, so receivers dedup.
            let ts = crate::verify::unix_secs(SystemTime::now());
            for (name, value) in signer.sign_headers(&d.id, ts, &d.body) {
                req = req.header(name, value);
            }
        }
        let started = Instant::now();
        let result = req.body(d.body.clone()).send().await;
        match result {
            Ok(mut resp) => {
                let status = resp.status();
                let retry_after = if status == StatusCode::TOO_MANY_REQUESTS
                    || status == StatusCode::SERVICE_UNAVAILABLE
                {
                    resp.headers()
                        .get(http::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| parse_retry_after(v, SystemTime::now()))
                } else {
                    None
                };
                let mut body = Vec::new();
                // A slow or endless body must not hold the attempt past its timeout.
                let _ = tokio::time::timeout(self.timeout, async {
                    while body.len() < RESPONSE_BODY_LIMIT {
                        match resp.chunk().await {
                            Ok(Some(chunk)) => {
                                let room = RESPONSE_BODY_LIMIT - body.len();
                                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                            }
                            _ => break,
                        }
                    }
                })
                .await;
                let permanent = self.permanent_statuses.contains(&status.as_u16());
                AttemptResult {
                    status: Some(status.as_u16()),
                    latency: started.elapsed(),
                    error: (!status.is_success()).then(|| match permanent {
                        true => format!("HTTP {status} (in permanent_statuses: not retried)"),
                        false => format!("HTTP {status}"),
                    }),
                    response_body: Some(body),
                    retry_after,
                    permanent,
                }
            }
            Err(e) => {
                let blocked = egress_refusal(&e);
                AttemptResult {
                    latency: started.elapsed(),
                    permanent: blocked.is_some(),
                    error: Some(
                        blocked.map_or_else(
                            || describe(&e),
                            |b| format!("blocked by egress rules: {b}"),
                        ),
                    ),
                    ..Default::default()
                }
            }
        }
    }
}

/// `base` with a plugin's `path` appended, refused (as a permanent error, with the reason)
/// unless the result stays under `base`: same scheme, host and port, and a path inside the
/// base path. The request carries the destination's credentials, so a plugin-chosen path
/// such as `/contacts/../../admin/users/1` must not reach another endpoint of the same host.
///
/// URL parsers resolve `.` and `..` segments, also percent-encoded (`%2e%2E`), treat `\` as
/// `/` and drop tabs and newlines, so those are refused in the plugin's path before it is
/// parsed; the containment check after parsing stands behind that. Errors never quote the
/// base URL, whose path or query may hold a secret (Slack webhook URLs do).
pub fn join_plugin_path(base: &reqwest::Url, path: &str) -> Result<reqwest::Url, String> {
    if !(path.starts_with('/') || path.starts_with('?')) {
        return Err(format!(
            "the plugin's path {path:?} must start with '/' or '?'"
        ));
    }
    if path.chars().any(|c| c.is_control()) {
        return Err(format!(
            "the plugin's path {path:?} contains a control character"
        ));
    }
    let path_part = path.split(['?', '#']).next().unwrap_or_default();
    if path_part.contains('\\') || path_part.to_ascii_lowercase().contains("%5c") {
        return Err(format!("the plugin's path {path:?} contains a backslash"));
    }
    let dot_segment = path_part.split('/').any(|segment| {
        let decoded = percent_encoding::percent_decode_str(segment).decode_utf8_lossy();
        decoded == "." || decoded == ".."
    });
    if dot_segment {
        return Err(format!(
            "the plugin's path {path:?} has a '.' or '..' segment, which would leave the \
             destination's base path; encode values with path_segment"
        ));
    }
    let raw = base.as_str();
    let joined = if path.starts_with('/') && raw.ends_with('/') {
        format!("{}{path}", &raw[..raw.len() - 1])
    } else {
        format!("{raw}{path}")
    };
    let url = reqwest::Url::parse(&joined)
        .map_err(|e| format!("the plugin's path makes an invalid URL ({e})"))?;
    if url.host() != base.host()
        || url.port_or_known_default() != base.port_or_known_default()
        || url.scheme() != base.scheme()
    {
        return Err("the plugin's path would change the destination's host".into());
    }
    let base_path = base.path().trim_end_matches('/');
    let inside = url.path() == base.path()
        || url
            .path()
            .strip_prefix(base_path)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
    if !inside {
        return Err(format!(
            "the plugin's path {path:?} resolves outside the destination's base path"
        ));
    }
    Ok(url)
}

/// Parses `Retry-After` as seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The egress refusal behind a transport error, if that is what it was.
fn egress_refusal(e: &reqwest::Error) -> Option<String> {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(refusal) = s.downcast_ref::<EgressError>() {
            return Some(refusal.to_string());
        }
        source = s.source();
    }
    None
}

/// The client every HTTP destination shares: no redirects, no proxy from the environment,
/// and a resolver that enforces the egress rules.
pub fn client(egress: Arc<EgressPolicy>) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver::new(egress)))
        .user_agent(concat!("hookyard/", env!("CARGO_PKG_VERSION")))
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
        .expect("the HTTP client's settings are static and valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(url: &str) -> reqwest::Url {
        reqwest::Url::parse(url).expect("base url")
    }

    #[test]
    fn plugin_paths_stay_under_the_destination_base_path() {
        let crm = base("https://crm.example/api/v1");
        let ok = |p: &str| join_plugin_path(&crm, p).map(|u| u.to_string());
        assert_eq!(
            ok("/contacts/42").unwrap(),
            "https://crm.example/api/v1/contacts/42"
        );
        assert_eq!(
            ok("/contacts/a%2F..%2Fb?x=1").unwrap(),
            "https://crm.example/api/v1/contacts/a%2F..%2Fb?x=1"
        );
        assert_eq!(ok("?page=2").unwrap(), "https://crm.example/api/v1?page=2");
        assert_eq!(
            ok("/v1.2/file.json").unwrap(),
            "https://crm.example/api/v1/v1.2/file.json"
        );
        for escape in [
            "/contacts/../../../admin/users/1",
            "/contacts/%2e%2E/%2E%2e/admin",
            "/contacts/.%2e/admin",
            "/./x",
            "/..",
            "/contacts/..\\..\\admin",
            "/contacts/%5C..%5cadmin",
            "/contacts/.\t./admin",
            "/contacts/.\n./admin",
        ] {
            let err = join_plugin_path(&crm, escape).expect_err(escape);
            assert!(
                err.contains("segment") || err.contains("backslash") || err.contains("control"),
                "{escape}: {err}"
            );
            assert!(!err.contains("crm.example"), "{err}");
        }
        // A query or fragment may mention dots: only the path is resolved.
        assert!(ok("/search?q=../x").is_ok());
    }

    #[test]
    fn a_base_with_a_trailing_slash_keeps_its_paths_inside() {
        let hook = base("https://hooks.example/services/T0/B0/secret/");
        assert_eq!(
            join_plugin_path(&hook, "/thread").unwrap().as_str(),
            "https://hooks.example/services/T0/B0/secret/thread"
        );
        let err = join_plugin_path(&hook, "/../other").unwrap_err();
        assert!(!err.contains("secret"), "{err}");
        let root = base("http://127.0.0.1:9000");
        assert_eq!(
            join_plugin_path(&root, "/any/where").unwrap().as_str(),
            "http://127.0.0.1:9000/any/where"
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480); // Wed, 21 Oct 2015 07:28:00 GMT
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}

/// Whatever path a plugin asks for: never a panic, and a URL that is accepted stays on the
/// destination's host, under its base path, with no dot segment left to resolve.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn an_accepted_plugin_path_stays_under_the_base(
            path in "[/?]([./%25eEcC\\\\a-z0-9?#@:\t]|%2[eEfF]|%5[cC]|\\.\\.){0,24}",
        ) {
            let base = reqwest::Url::parse("https://crm.example/api/v1").unwrap();
            if let Ok(url) = join_plugin_path(&base, &path) {
                prop_assert_eq!(url.host_str(), Some("crm.example"));
                prop_assert_eq!(url.port_or_known_default(), Some(443));
                prop_assert!(
                    url.path() == "/api/v1" || url.path().starts_with("/api/v1/"),
                    "{path:?} reached {url}"
                );
                for segment in url.path().split('/') {
                    let lower = segment.to_ascii_lowercase();
                    prop_assert!(
                        !matches!(lower.as_str(), "." | ".." | "%2e" | "%2e%2e" | ".%2e" | "%2e."),
                        "{path:?} left a dot segment in {url}"
                    );
                }
            }
        }
    }
}
