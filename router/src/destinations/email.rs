//! SMTP destinations: an output of type `application/vnd.hookyard.email+json` becomes one
//! email, sent with lettre.
//!
//! The output's body: `{"to": [...], "cc": [...], "bcc": [...], "reply_to": "...",
//! "subject": "...", "text": "...", "html": "...", "headers": {...}}`. Text and HTML together
//! make a multipart/alternative message; UTF-8 subjects are encoded (RFC 2047). A CR or LF in
//! any header, address or subject is refused (never sent). The `Message-ID` derives from the
//! delivery id, so it is the same on every retry. SMTP 4xx replies and connection failures
//! are retried; 5xx replies are permanent (dead letter with the server's reply).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Deserialize;

use super::http::{AttemptResult, DestinationError};
use crate::config::{DestinationConfig, SmtpTls};
use crate::egress::EgressPolicy;
use crate::store::Delivery;

/// The content type of outputs an SMTP destination sends.
pub const EMAIL_CONTENT_TYPE: &str = "application/vnd.hookyard.email+json";

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Security {
    /// `smtps://`: TLS from the first byte.
    Implicit,
    /// `smtp://` with STARTTLS required.
    StartTls,
    /// Plain text.
    None,
}

/// A configured SMTP destination.
pub struct EmailDestination {
    host: String,
    port: u16,
    security: Security,
    credentials: Option<Credentials>,
    from: Mailbox,
    reply_to: Option<Mailbox>,
    helo: Option<String>,
    timeout: Duration,
    max_size: usize,
}

impl std::fmt::Debug for EmailDestination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailDestination")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .finish()
    }
}

/// The JSON body of an email output.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailBody {
    /// Recipients.
    #[serde(default)]
    pub to: Vec<String>,
    /// Copies.
    #[serde(default)]
    pub cc: Vec<String>,
    /// Blind copies.
    #[serde(default)]
    pub bcc: Vec<String>,
    /// Overrides the destination's `reply_to`.
    pub reply_to: Option<String>,
    /// The subject (UTF-8).
    pub subject: String,
    /// The plain-text part.
    pub text: Option<String>,
    /// The HTML part.
    pub html: Option<String>,
    /// Extra headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

fn has_line_break(s: &str) -> bool {
    s.contains('\r') || s.contains('\n')
}

fn mailbox(field: &str, value: &str) -> Result<Mailbox, String> {
    if has_line_break(value) {
        return Err(format!("refused: {field} contains a line break"));
    }
    value
        .parse::<Mailbox>()
        .map_err(|e| format!("refused: {field} {value:?} is not an address ({e})"))
}

impl EmailDestination {
    /// From a validated destination table with `smtp`.
    pub fn new(
        name: &str,
        c: &DestinationConfig,
        egress: &EgressPolicy,
    ) -> Result<EmailDestination, DestinationError> {
        let err = |reason: String| DestinationError::new(name, reason);
        let raw = c
            .smtp
            .as_ref()
            .ok_or_else(|| err("smtp is missing".into()))?;
        let url =
            url::Url::parse(raw.expose()).map_err(|e| err(format!("invalid smtp url ({e})")))?;
        let host = url
            .host_str()
            .ok_or_else(|| err("smtp url has no host".into()))?
            .trim_matches(['[', ']'])
            .to_string();
        let implicit = url.scheme() == "smtps";
        let port = url.port().unwrap_or(if implicit { 465 } else { 587 });
        if let Ok(ip) = host.parse::<IpAddr>() {
            egress.check(ip).map_err(|e| err(e.to_string()))?;
        }
        let loopback =
            host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        let security = match (implicit, c.tls) {
            (true, _) => Security::Implicit,
            (false, Some(SmtpTls::Starttls)) => Security::StartTls,
            (false, Some(SmtpTls::None)) => Security::None,
            (false, None) if loopback => Security::None,
            (false, None) => Security::StartTls,
        };
        let credentials = match (&c.username, &c.password) {
            (Some(u), Some(p)) => Some(Credentials::new(u.clone(), p.expose().to_string())),
            (None, None) => None,
            _ => return Err(err("username and password go together".into())),
        };
        let from = mailbox("from", c.from.as_deref().unwrap_or_default()).map_err(err)?;
        let reply_to = c
            .reply_to
            .as_deref()
            .map(|r| mailbox("reply_to", r))
            .transpose()
            .map_err(err)?;
        Ok(EmailDestination {
            host,
            port,
            security,
            credentials,
            from,
            reply_to,
            helo: c.helo_name.clone(),
            timeout: c.timeout.0,
            max_size: c.max_message_size.0 as usize,
        })
    }

    /// Builds the message for a delivery, or says why it cannot be sent (permanently).
    pub fn message(&self, delivery: &Delivery) -> Result<Message, String> {
        let d = &delivery.new;
        if d.content_type.as_deref() != Some(EMAIL_CONTENT_TYPE) {
            return Err(format!(
                "not an email: content type {:?}; an smtp destination takes outputs of type {EMAIL_CONTENT_TYPE}",
                d.content_type.as_deref().unwrap_or("none")
            ));
        }
        let email: EmailBody =
            serde_json::from_slice(&d.body).map_err(|e| format!("invalid email output: {e}"))?;
        if email.to.is_empty() && email.cc.is_empty() && email.bcc.is_empty() {
            return Err("invalid email output: no recipients".into());
        }
        if has_line_break(&email.subject) {
            return Err("refused: subject contains a line break".into());
        }
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(email.subject.clone())
            .message_id(Some(format!("<{}@hookyard>", d.id)));
        for to in &email.to {
            builder = builder.to(mailbox("to", to)?);
        }
        for cc in &email.cc {
            builder = builder.cc(mailbox("cc", cc)?);
        }
        for bcc in &email.bcc {
            builder = builder.bcc(mailbox("bcc", bcc)?);
        }
        match email
            .reply_to
            .as_deref()
            .map(|r| mailbox("reply_to", r))
            .transpose()?
        {
            Some(r) => builder = builder.reply_to(r),
            None => {
                if let Some(r) = &self.reply_to {
                    builder = builder.reply_to(r.clone());
                }
            }
        }
        for (name, value) in &email.headers {
            if has_line_break(name) || has_line_break(value) {
                return Err(format!("refused: header {name:?} contains a line break"));
            }
            let lower = name.to_ascii_lowercase();
            if [
                "from",
                "to",
                "cc",
                "bcc",
                "subject",
                "message-id",
                "reply-to",
                "content-type",
                "date",
            ]
            .contains(&lower.as_str())
                || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return Err(format!(
                    "refused: header {name:?} cannot be set by an output"
                ));
            }
            let header = HeaderName::new_from_ascii(name.clone())
                .map_err(|_| format!("refused: header name {name:?}"))?;
            builder = builder.raw_header(HeaderValue::new(header, value.clone()));
        }
        let message = match (email.text, email.html) {
            (Some(text), Some(html)) => {
                builder.multipart(MultiPart::alternative_plain_html(text, html))
            }
            (Some(text), None) => builder.singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(text),
            ),
            (None, Some(html)) => builder.singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_HTML)
                    .body(html),
            ),
            (None, None) => return Err("invalid email output: set text and/or html".into()),
        }
        .map_err(|e| format!("invalid email: {e}"))?;
        if message.formatted().len() > self.max_size {
            return Err(format!(
                "refused: the message is larger than max_message_size ({} bytes)",
                self.max_size
            ));
        }
        Ok(message)
    }

    /// Sends one delivery.
    pub async fn attempt(&self, egress: &EgressPolicy, delivery: &Delivery) -> AttemptResult {
        let started = Instant::now();
        let message = match self.message(delivery) {
            Ok(m) => m,
            Err(reason) => {
                return AttemptResult {
                    error: Some(reason),
                    permanent: true,
                    ..Default::default()
                };
            }
        };
        let result = match self.connect(egress).await {
            Ok(transport) => transport
                .send(message)
                .await
                .map(|r| r.code().to_string())
                .map_err(|e| {
                    let permanent = e.is_permanent();
                    (format!("SMTP: {e}"), permanent)
                }),
            Err(e) => Err(e),
        };
        match result {
            Ok(code) => AttemptResult {
                status: code.parse().ok(),
                latency: started.elapsed(),
                ..Default::default()
            },
            Err((error, permanent)) => AttemptResult {
                error: Some(error),
                permanent,
                latency: started.elapsed(),
                ..Default::default()
            },
        }
    }

    /// Resolves the host, checks every address against the egress rules, and builds a
    /// transport to the first allowed address (TLS still verifies the host name).
    async fn connect(
        &self,
        egress: &EgressPolicy,
    ) -> Result<AsyncSmtpTransport<Tokio1Executor>, (String, bool)> {
        let addrs: Vec<_> = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|e| (format!("cannot resolve {}: {e}", self.host), false))?
            .collect();
        let allowed = addrs
            .iter()
            .find(|a| egress.check(a.ip()).is_ok())
            .ok_or_else(|| match addrs.first() {
                Some(a) => (
                    format!(
                        "blocked by egress rules: {}",
                        egress
                            .check(a.ip())
                            .err()
                            .map(|e| e.to_string())
                            .unwrap_or_default()
                    ),
                    true,
                ),
                None => (format!("{} did not resolve", self.host), false),
            })?;
        let tls_params = || {
            TlsParameters::new(self.host.clone())
                .map_err(|e| (format!("TLS setup for {}: {e}", self.host), true))
        };
        let tls = match self.security {
            Security::Implicit => Tls::Wrapper(tls_params()?),
            Security::StartTls => Tls::Required(tls_params()?),
            Security::None => Tls::None,
        };
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(allowed.ip().to_string())
                .port(self.port)
                .tls(tls)
                .timeout(Some(self.timeout));
        if let Some(c) = &self.credentials {
            builder = builder.credentials(c.clone());
        }
        if let Some(h) = &self.helo {
            builder = builder.hello_name(ClientId::Domain(h.clone()));
        }
        Ok(builder.build())
    }
}
