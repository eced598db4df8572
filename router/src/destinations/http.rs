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
            auth: config
                .auth
                .as_ref()
                .map(Auth::new)
                .transpose()
                .map_err(err)?,
            idempotency_key: config.idempotency_key,
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

    /// The destination URL with a plugin's `path` appended; the host must not change.
    fn target(&self, path: Option<&str>) -> Result<reqwest::Url, String> {
        let Some(path) = path else {
            return Ok(self.url.clone());
        };
        if !(path.starts_with('/') || path.starts_with('?')) {
            return Err(format!(
                "the plugin's path {path:?} must start with '/' or '?'"
            ));
        }
        let base = self.url.as_str();
        let joined = if path.starts_with('/') && base.ends_with('/') {
            format!("{}{path}", &base[..base.len() - 1])
        } else {
            format!("{base}{path}")
        };
        let url = reqwest::Url::parse(&joined)
            .map_err(|e| format!("the plugin's path makes an invalid URL ({e})"))?;
        if url.host() != self.url.host()
            || url.port_or_known_default() != self.url.port_or_known_default()
            || url.scheme() != self.url.scheme()
        {
            return Err("the plugin's path would change the destination's host".into());
        }
        Ok(url)
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
                AttemptResult {
                    status: Some(status.as_u16()),
                    latency: started.elapsed(),
                    error: (!status.is_success()).then(|| format!("HTTP {status}")),
                    response_body: Some(body),
                    retry_after,
                    permanent: false,
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
