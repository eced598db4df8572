//! Destinations: where outputs go, and how each kind is reached. A configured
//! [`Destination`] is HTTP or SMTP plus the policy around its attempts (retries, 410
//! handling, concurrency, rate, circuit breaker).
//!
//! - [`http`]: the HTTP destination (one request per attempt), signing and auth headers.
//! - [`auth`]: credentials for HTTP destinations (bearer, basic, OAuth client credentials).
//! - [`email`]: the SMTP destination.
//! - [`retry`]: the retry schedule: backoff with jitter, `Retry-After`.
//! - [`transport`]: an HTTP failure described in words.

pub mod auth;
pub mod email;
pub mod http;
pub mod retry;
pub mod transport;

use std::sync::Arc;

use crate::config::{BreakerConfig, DestinationConfig, GonePolicy, Rate};
use crate::egress::EgressPolicy;
use crate::store::Delivery;
use email::EmailDestination;
use http::{AttemptResult, DestinationError, HttpDestination};
use retry::RetryPolicy;

/// The policy around a destination's attempts.
#[derive(Debug)]
pub struct Policy {
    /// When to try again.
    pub retry: RetryPolicy,
    /// What a 410 does.
    pub gone: GonePolicy,
    /// Most attempts in flight at once.
    pub concurrency: usize,
    /// Most attempts started per period.
    pub rate: Option<Rate>,
    /// When to stop attempting for a while.
    pub breaker: BreakerConfig,
}

/// How a destination is reached.
#[derive(Debug)]
pub enum Kind {
    /// An HTTP API.
    Http(Box<HttpDestination>),
    /// An SMTP server.
    Email(Box<EmailDestination>),
}

/// One `[destinations.<name>]`.
#[derive(Debug)]
pub struct Destination {
    /// Its name.
    pub name: String,
    /// Retries and limits.
    pub policy: Policy,
    /// HTTP or SMTP.
    pub kind: Kind,
    egress: Arc<EgressPolicy>,
}

impl Destination {
    /// From a validated destination table.
    pub fn new(
        name: &str,
        c: &DestinationConfig,
        egress: Arc<EgressPolicy>,
    ) -> Result<Destination, DestinationError> {
        let kind = if c.smtp.is_some() {
            Kind::Email(Box::new(EmailDestination::new(name, c, &egress)?))
        } else {
            Kind::Http(Box::new(HttpDestination::new(name, c, &egress)?))
        };
        Ok(Destination {
            name: name.to_string(),
            policy: Policy {
                retry: RetryPolicy::new(&c.retry),
                gone: c.gone,
                concurrency: c.concurrency,
                rate: c.rate,
                breaker: c.breaker,
            },
            kind,
            egress,
        })
    }

    /// Makes one attempt.
    pub async fn attempt(&self, client: &reqwest::Client, delivery: &Delivery) -> AttemptResult {
        match &self.kind {
            Kind::Http(h) => h.attempt(client, delivery).await,
            Kind::Email(e) => e.attempt(&self.egress, delivery).await,
        }
    }
}
