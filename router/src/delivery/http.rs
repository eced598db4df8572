//! HTTP destinations: one request per attempt; 2xx is success; redirects are not followed.

use std::time::{Duration, Instant};

use http::{HeaderName, HeaderValue, Method};

use crate::config::{DestinationConfig, RetryConfig};
use crate::store::Delivery;

/// A configured HTTP destination.
#[derive(Debug)]
pub struct HttpDestination {
    /// Name in `router.toml`.
    pub name: String,
    url: reqwest::Url,
    method: Method,
    headers: Vec<(HeaderName, HeaderValue)>,
    timeout: Duration,
    /// Its retry policy.
    pub retry: RetryConfig,
}

/// Why a destination's config is unusable.
#[derive(Debug, thiserror::Error)]
#[error("destination {name:?}: {reason}")]
pub struct DestinationError {
    name: String,
    reason: String,
}

/// The result of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptResult {
    /// The response status, if one came.
    pub status: Option<u16>,
    /// How long the attempt took.
    pub latency: Duration,
    /// `None` on success; otherwise why it failed.
    pub error: Option<String>,
}

impl HttpDestination {
    /// Builds from config; rejects unparsable URLs and header values.
    pub fn new(
        name: &str,
        config: &DestinationConfig,
    ) -> Result<HttpDestination, DestinationError> {
        let err = |reason: String| DestinationError {
            name: name.to_string(),
            reason,
        };
        // The URL may carry a token: never echo it in errors.
        let url = reqwest::Url::parse(config.url.expose())
            .map_err(|e| err(format!("invalid url ({e})")))?;
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
            retry: config.retry,
        })
    }

    /// Makes one attempt to deliver.
    pub async fn attempt(&self, client: &reqwest::Client, delivery: &Delivery) -> AttemptResult {
        let d = &delivery.new;
        let mut req = client
            .request(self.method.clone(), self.url.clone())
            .timeout(self.timeout)
            .header("hookyard-delivery-id", &d.id)
            .header("hookyard-event-id", &d.event_id);
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
        let started = Instant::now();
        let result = req.body(d.body.clone()).send().await;
        let latency = started.elapsed();
        match result {
            Ok(resp) if resp.status().is_success() => AttemptResult {
                status: Some(resp.status().as_u16()),
                latency,
                error: None,
            },
            Ok(resp) => {
                let status = resp.status();
                AttemptResult {
                    status: Some(status.as_u16()),
                    latency,
                    error: Some(format!("HTTP {status}")),
                }
            }
            Err(e) => AttemptResult {
                status: None,
                latency,
                error: Some(describe(&e)),
            },
        }
    }
}

/// A short reason for a transport error, without the URL (it may carry credentials).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_request() {
        "request failed"
    } else {
        "transport error"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = None;
    while let Some(s) = source {
        detail = Some(s.to_string());
        source = s.source();
    }
    match detail {
        Some(d) => format!("{kind}: {d}"),
        None => kind.to_string(),
    }
}

/// The client every HTTP destination shares: no redirects, no proxy from the environment.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(concat!("hookyard/", env!("CARGO_PKG_VERSION")))
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}
