//! How a request authenticates to a destination's API: a bearer token, Basic, an API key in
//! a header or the query, or OAuth 2 client credentials (token fetched, cached until it
//! expires, refreshed once when the API answers 401). Secrets are marked sensitive in
//! headers and never appear in errors.

use std::time::{Duration, Instant};

use base64::Engine as _;
use http::{HeaderName, HeaderValue};
use tokio::sync::Mutex;

use crate::config::{AuthConfig, Secret};

/// A destination's authentication.
pub enum Auth {
    /// `Authorization: <value>` (bearer or basic, prepared once).
    Authorization(HeaderValue),
    /// An API key in a header.
    Header(HeaderName, HeaderValue),
    /// An API key in a query parameter.
    Query(String, Secret),
    /// OAuth 2 client credentials.
    OAuth2(OAuth2),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Auth::Authorization(_) => "Auth::Authorization(<redacted>)",
            Auth::Header(..) => "Auth::Header(<redacted>)",
            Auth::Query(..) => "Auth::Query(<redacted>)",
            Auth::OAuth2(_) => "Auth::OAuth2(<redacted>)",
        })
    }
}

fn sensitive(value: &str) -> Result<HeaderValue, String> {
    let mut v = HeaderValue::from_str(value)
        .map_err(|_| "auth value is not a valid header value".to_string())?;
    v.set_sensitive(true);
    Ok(v)
}

impl Auth {
    /// From a validated `auth` table.
    pub fn new(c: &AuthConfig) -> Result<Auth, String> {
        if let Some(token) = &c.bearer {
            return Ok(Auth::Authorization(sensitive(&format!(
                "Bearer {}",
                token.expose()
            ))?));
        }
        if let Some(b) = &c.basic {
            let creds = base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                b.username,
                b.password.expose()
            ));
            return Ok(Auth::Authorization(sensitive(&format!("Basic {creds}"))?));
        }
        let value = || {
            c.value
                .clone()
                .ok_or_else(|| "auth.value is missing".to_string())
        };
        if let Some(h) = &c.header {
            let name = HeaderName::from_bytes(h.as_bytes())
                .map_err(|_| format!("auth.header {h:?} is not a header name"))?;
            return Ok(Auth::Header(name, sensitive(value()?.expose())?));
        }
        if let Some(q) = &c.query {
            return Ok(Auth::Query(q.clone(), value()?));
        }
        if let Some(o) = &c.oauth2 {
            let token_url =
                reqwest::Url::parse(&o.token_url).map_err(|e| format!("oauth2.token_url: {e}"))?;
            return Ok(Auth::OAuth2(OAuth2 {
                token_url,
                client_id: o.client_id.clone(),
                client_secret: o.client_secret.clone(),
                scope: o.scope.clone(),
                cached: Mutex::new(None),
            }));
        }
        Err("auth takes one of bearer, basic, header, query, oauth2".into())
    }
}

/// OAuth 2 client credentials with a cached token.
pub struct OAuth2 {
    token_url: reqwest::Url,
    client_id: String,
    client_secret: Secret,
    scope: Option<String>,
    cached: Mutex<Option<(String, Instant)>>,
}

/// Tokens are renewed this long before they expire.
const EARLY: Duration = Duration::from_secs(30);
/// The longest a token is kept, whatever its `expires_in` says (a huge value must neither
/// overflow the clock nor pin a token forever).
const LONGEST: Duration = Duration::from_secs(24 * 3600);
/// The most of a token response read: a token endpoint cannot fill memory.
const TOKEN_RESPONSE_LIMIT: usize = 64 * 1024;

impl OAuth2 {
    /// Where tokens are fetched, for the egress check at config time (an IP literal never
    /// meets the resolver that checks host names).
    pub fn token_url(&self) -> &reqwest::Url {
        &self.token_url
    }

    /// A valid access token: the cached one, or a new one when it is missing, expiring, or
    /// `refresh` is set (the API refused the cached one).
    pub async fn token(&self, client: &reqwest::Client, refresh: bool) -> Result<String, String> {
        let mut cached = self.cached.lock().await;
        if !refresh
            && let Some((token, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let mut form = vec![
            ("grant_type", "client_credentials".to_string()),
            ("client_id", self.client_id.clone()),
            ("client_secret", self.client_secret.expose().to_string()),
        ];
        if let Some(scope) = &self.scope {
            form.push(("scope", scope.clone()));
        }
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let resp = client
            .post(self.token_url.clone())
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::ACCEPT, "application/json")
            .body(body)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| format!("token request failed: {}", super::transport::describe(&e)))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("token endpoint answered {status}"));
        }
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            access_token: String,
            expires_in: Option<u64>,
        }
        let mut resp = resp;
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| format!("token response: {}", super::transport::describe(&e)))?
        {
            if body.len() + chunk.len() > TOKEN_RESPONSE_LIMIT {
                return Err(format!(
                    "token response is larger than {} KiB",
                    TOKEN_RESPONSE_LIMIT / 1024
                ));
            }
            body.extend_from_slice(&chunk);
        }
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|_| "token response has no access_token".to_string())?;
        let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(300)).min(LONGEST);
        *cached = Some((
            parsed.access_token.clone(),
            Instant::now() + lifetime.saturating_sub(EARLY),
        ));
        Ok(parsed.access_token)
    }
}
