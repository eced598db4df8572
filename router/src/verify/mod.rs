//! Verification: a request becomes a [`Verified`] event only by passing its route's scheme.
//!
//! One file per scheme; all compare signatures in constant time (`Mac::verify_slice`).
//! A failure is a [`VerifyError`] whose message is short, safe to send to the caller as a
//! 401 body, and never contains a secret.

mod hmac_scheme;
mod standard_webhooks;

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName};

use crate::config::VerifyConfig;
pub use hmac_scheme::HmacVerifier;
pub use standard_webhooks::StandardWebhooks;

/// Why a request was not accepted as authentic.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    /// A header the scheme needs is absent.
    #[error("missing {0} header")]
    MissingHeader(HeaderName),
    /// A header is present but not in the scheme's format.
    #[error("malformed {0} header")]
    MalformedHeader(HeaderName),
    /// The signed timestamp is outside the tolerance.
    #[error("timestamp outside the allowed tolerance")]
    StaleTimestamp,
    /// No signature in the request matches the body.
    #[error("signature does not match")]
    BadSignature,
}

/// What verification learned about an authentic request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verified {
    /// The provider's delivery id, used to drop duplicates (e.g. `webhook-id`).
    pub delivery_id: Option<String>,
}

/// A route's verification scheme, built once from config.
#[derive(Debug)]
pub enum Verifier {
    /// Accepts every request.
    None,
    /// Standard Webhooks.
    StandardWebhooks(StandardWebhooks),
    /// A signature header over the raw body (GitHub, generic HMAC).
    Hmac(HmacVerifier),
}

/// A secret that cannot be used (e.g. bad base64 in a `whsec_` key).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadSecret(pub String);

impl Verifier {
    /// Builds the verifier for a route's `verify` table.
    pub fn from_config(config: &VerifyConfig) -> Result<Verifier, BadSecret> {
        Ok(match config {
            VerifyConfig::None => Verifier::None,
            VerifyConfig::StandardWebhooks { secret, tolerance } => {
                Verifier::StandardWebhooks(StandardWebhooks::new(secret.expose(), tolerance.0)?)
            }
            VerifyConfig::Github { secret } => Verifier::Hmac(HmacVerifier::github(secret)),
            VerifyConfig::Hmac {
                header,
                secret,
                algorithm,
                encoding,
                prefix,
            } => Verifier::Hmac(HmacVerifier::new(
                header, secret, *algorithm, *encoding, prefix,
            )?),
        })
    }

    /// Checks one request against this scheme at time `now`.
    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Verified, VerifyError> {
        match self {
            Verifier::None => Ok(Verified::default()),
            Verifier::StandardWebhooks(v) => v.verify(headers, body, now),
            Verifier::Hmac(v) => v.verify(headers, body),
        }
    }
}

impl Verifier {
    /// The headers a provider using this scheme would send with `body` at `now`: what
    /// `hookyard send` uses to sign test requests. `event_type` fills the provider's
    /// event-type header where the scheme has one.
    pub fn sign(
        &self,
        body: &[u8],
        event_type: Option<&str>,
        now: SystemTime,
    ) -> Vec<(String, String)> {
        let delivery = uuid::Uuid::new_v4().to_string();
        match self {
            Verifier::None => Vec::new(),
            Verifier::StandardWebhooks(v) => {
                let ts = now
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs();
                let id = format!("msg_{}", delivery.replace('-', ""));
                let signature = v.sign(&id, ts, body);
                vec![
                    ("webhook-id".into(), id),
                    ("webhook-timestamp".into(), ts.to_string()),
                    ("webhook-signature".into(), signature),
                ]
            }
            Verifier::Hmac(v) => {
                let mut headers = vec![(v.header().as_str().to_string(), v.sign(body))];
                if v.header() == "x-hub-signature-256" {
                    headers.push(("x-github-delivery".into(), delivery));
                    headers.push((
                        "x-github-event".into(),
                        event_type.unwrap_or("ping").to_string(),
                    ));
                } else if let Some(t) = event_type {
                    headers.push(("x-event-type".into(), t.to_string()));
                }
                headers
            }
        }
    }
}

/// The value of a header that must appear once and be visible ASCII.
fn single_header<'h>(headers: &'h HeaderMap, name: &'static str) -> Result<&'h str, VerifyError> {
    let malformed = || VerifyError::MalformedHeader(HeaderName::from_static(name));
    let mut values = headers.get_all(name).iter();
    let value = values
        .next()
        .ok_or_else(|| VerifyError::MissingHeader(HeaderName::from_static(name)))?;
    if values.next().is_some() {
        return Err(malformed());
    }
    value.to_str().map_err(|_| malformed())
}

/// Checks a Unix timestamp (seconds) against `now` within `tolerance`, in both directions.
fn check_timestamp(
    ts: &str,
    header: &'static str,
    now: SystemTime,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    let malformed = || VerifyError::MalformedHeader(HeaderName::from_static(header));
    if ts.is_empty() || ts.len() > 12 || !ts.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed());
    }
    let ts: u64 = ts.parse().map_err(|_| malformed())?;
    let now = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    if now.abs_diff(ts) > tolerance.as_secs() {
        return Err(VerifyError::StaleTimestamp);
    }
    Ok(())
}
