//! Verification: a request becomes a [`Verified`] event only by passing its route's scheme.
//!
//! One file per family of schemes; all compare in constant time (`Mac::verify_slice`,
//! `subtle`), try every configured secret (rotation), and enforce timestamp tolerance in both
//! directions where the scheme signs a timestamp. Where a request may offer several
//! signatures, each key's tag is computed once and compared with every candidate, and more
//! than `mac::MAX_SIGNATURES` candidates are refused unread. A failure is a [`VerifyError`] whose
//! message is short, safe to send to the caller as a 401 body, and never contains a secret.
//!
//! - [`standard_webhooks`]: Standard Webhooks and Svix.
//! - [`signature_header`]: GitHub, Shopify and the generic `hmac` scheme.
//! - [`stripe`], [`slack`], [`twilio`]: those providers' own formats.
//! - [`credentials`]: a shared `token`, and HTTP `basic` authentication.
//! - [`presets`]: every named provider of the `PRESETS` table in `config`.

pub mod catalog;
pub mod credentials;
pub mod graph;
mod mac;
pub mod presets;
pub mod signature_header;
pub mod slack;
pub mod standard_webhooks;
pub mod stripe;
pub mod twilio;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, Uri};
use subtle::ConstantTimeEq;

use crate::config::{Handshake, Scheme, VerifyConfig};

/// Default timestamp tolerance, both ways.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// What a scheme looks at.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// The raw body.
    pub body: &'a [u8],
    /// The request target (path and query) as received.
    pub uri: &'a Uri,
    /// The time to check timestamps against.
    pub now: SystemTime,
}

/// Why a request was not accepted as authentic.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    /// A header the scheme needs is absent.
    #[error("missing {0} header")]
    MissingHeader(HeaderName),
    /// A header is present but not in the scheme's format.
    #[error("malformed {0} header")]
    MalformedHeader(HeaderName),
    /// The header offers more signatures than any provider sends (the limit is the second field).
    #[error("{0} header offers more than {1} signatures")]
    TooManySignatures(HeaderName, usize),
    /// The signed timestamp is outside the tolerance.
    #[error("timestamp outside the allowed tolerance")]
    StaleTimestamp,
    /// No signature in the request matches the body.
    #[error("signature does not match")]
    BadSignature,
    /// Twilio's `bodySHA256` does not match the body.
    #[error("body hash does not match")]
    BadBodyHash,
    /// The shared token is absent.
    #[error("missing credentials")]
    MissingCredentials,
    /// The token or user name and password are wrong.
    #[error("wrong credentials")]
    BadCredentials,
    /// The scheme signs text and the body is not UTF-8 or not a valid form.
    #[error("body is not valid for this scheme")]
    BadBody,
    /// The route is polled; nothing may post to it.
    #[error("this route is polled, not posted to")]
    Polled,
    /// The scheme's secret comes from the provider's handshake, which has not happened (or
    /// the secret was forgotten).
    #[error("no secret for this route yet: the provider's handshake must come first")]
    NotLearned,
    /// The check could not finish (its thread stopped); the sender may retry.
    #[error("verification did not finish: {0}")]
    Interrupted(String),
}

/// What verification learned about an authentic request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verified {
    /// The provider's delivery id, used to drop duplicates (e.g. `webhook-id`).
    pub delivery_id: Option<String>,
    /// The provider's event type, where the scheme knows where it is (a named preset).
    pub event_type: Option<String>,
}

/// A `verify` table that cannot work (bad secret, missing or inapplicable key).
#[derive(Debug, thiserror::Error)]
#[error("verify: {0}")]
pub struct BadSecret(pub String);

/// A route's verification scheme, built once from config.
#[derive(Debug)]
pub enum Verifier {
    /// Accepts every request.
    None,
    /// Standard Webhooks or Svix.
    StandardWebhooks(standard_webhooks::StandardWebhooks),
    /// GitHub, Shopify or generic HMAC in one header.
    Header(signature_header::SignatureHeader),
    /// Stripe.
    Stripe(stripe::Stripe),
    /// Slack.
    Slack(slack::Slack),
    /// Zoom: a signature header, and the `endpoint.url_validation` handshake.
    Zoom(signature_header::SignatureHeader),
    /// Microsoft Graph: the `clientState` in every notification.
    Graph(graph::Graph),
    /// Dropbox: a signature header, and the `GET ?challenge=` endpoint check.
    Dropbox(signature_header::SignatureHeader),
    /// Meta: a signature header, and the `GET ?hub.verify_token=` subscription handshake
    /// with this token.
    Meta(signature_header::SignatureHeader, crate::config::Secret),
    /// Twilio.
    Twilio(twilio::Twilio),
    /// A shared token.
    Token(credentials::Token),
    /// HTTP Basic.
    Basic(credentials::Basic),
    /// A named provider from the presets table.
    Preset(presets::PresetVerifier),
    /// A polled route: nothing is posted to it.
    Polled,
}

/// The keys each scheme accepts beyond `scheme`, `secret`, `secrets`.
fn allowed_keys(scheme: Scheme) -> &'static [&'static str] {
    match scheme {
        Scheme::None => &[],
        Scheme::StandardWebhooks | Scheme::Svix | Scheme::Stripe | Scheme::Slack | Scheme::Zoom => {
            &["tolerance"]
        }
        Scheme::Github | Scheme::Shopify => &[],
        Scheme::Meta => &["verify_token"],
        Scheme::Twilio => &["public_url"],
        Scheme::MicrosoftGraph | Scheme::Dropbox => &[],
        Scheme::Hmac => &[
            "header",
            "algorithm",
            "encoding",
            "prefix",
            "timestamp_header",
            "signed_content",
            "tolerance",
        ],
        Scheme::Token => &["header", "query", "prefix"],
        Scheme::Basic => &["username"],
        Scheme::Preset(p) => presets::allowed_keys(p),
    }
}

fn set_keys(c: &VerifyConfig) -> Vec<&'static str> {
    let mut keys = Vec::new();
    let mut note = |set: bool, name: &'static str| {
        if set {
            keys.push(name)
        }
    };
    note(c.tolerance.is_some(), "tolerance");
    note(c.header.is_some(), "header");
    note(c.algorithm.is_some(), "algorithm");
    note(c.encoding.is_some(), "encoding");
    note(c.prefix.is_some(), "prefix");
    note(c.timestamp_header.is_some(), "timestamp_header");
    note(c.signed_content.is_some(), "signed_content");
    note(c.query.is_some(), "query");
    note(c.username.is_some(), "username");
    note(c.public_url.is_some(), "public_url");
    note(c.verify_token.is_some(), "verify_token");
    keys
}

impl Verifier {
    /// Builds the verifier for a route's `verify` table, rejecting keys the scheme ignores.
    pub fn from_config(config: &VerifyConfig) -> Result<Verifier, BadSecret> {
        let allowed = allowed_keys(config.scheme);
        if let Some(key) = set_keys(config).into_iter().find(|k| !allowed.contains(k)) {
            return Err(BadSecret(format!(
                "{key} does not apply to scheme \"{}\"",
                config.scheme.name()
            )));
        }
        let secrets: Vec<&str> = config
            .all_secrets()
            .into_iter()
            .map(|s| s.expose())
            .collect();
        if config.scheme == Scheme::None {
            if !secrets.is_empty() {
                return Err(BadSecret("scheme \"none\" takes no secret".into()));
            }
            return Ok(Verifier::None);
        }
        let learns = matches!(config.scheme, Scheme::Preset(p) if matches!(p.check, crate::config::Check::Learned { .. }));
        if (secrets.is_empty() && !learns) || secrets.iter().any(|s| s.is_empty()) {
            return Err(BadSecret(match config.scheme {
                Scheme::Preset(p) => format!(
                    "set secret to the {} {} shows (or a list while it rotates)",
                    p.secret_word, p.title
                ),
                _ => "set a non-empty secret (or secret = [\"new\", \"old\"] while it rotates)"
                    .into(),
            }));
        }
        let tolerance = config.tolerance.map_or(DEFAULT_TOLERANCE, |d| d.0);
        let bytes = || {
            secrets
                .iter()
                .map(|s| s.as_bytes().to_vec())
                .collect::<Vec<_>>()
        };
        Ok(match config.scheme {
            Scheme::None => Verifier::None,
            Scheme::StandardWebhooks => {
                Verifier::StandardWebhooks(standard_webhooks::StandardWebhooks::new(
                    &secrets,
                    tolerance,
                    standard_webhooks::Flavor::StandardWebhooks,
                )?)
            }
            Scheme::Svix => Verifier::StandardWebhooks(standard_webhooks::StandardWebhooks::new(
                &secrets,
                tolerance,
                standard_webhooks::Flavor::Svix,
            )?),
            Scheme::Github => Verifier::Header(signature_header::SignatureHeader::github(bytes())),
            Scheme::Meta => match &config.verify_token {
                Some(token) if !token.expose().is_empty() => Verifier::Meta(
                    signature_header::SignatureHeader::meta(bytes()),
                    token.clone(),
                ),
                _ => {
                    return Err(BadSecret(
                        "scheme \"meta\" needs verify_token (the Verify Token of the app's webhook settings)"
                            .into(),
                    ));
                }
            },
            Scheme::Shopify => {
                Verifier::Header(signature_header::SignatureHeader::shopify(bytes()))
            }
            Scheme::Hmac => Verifier::Header(signature_header::SignatureHeader::generic(
                config,
                bytes(),
                tolerance,
            )?),
            Scheme::Stripe => Verifier::Stripe(stripe::Stripe::new(bytes(), tolerance)),
            Scheme::Slack => Verifier::Slack(slack::Slack::new(bytes(), tolerance)),
            Scheme::Zoom => {
                Verifier::Zoom(signature_header::SignatureHeader::zoom(bytes(), tolerance))
            }
            Scheme::MicrosoftGraph => Verifier::Graph(graph::Graph::new(bytes())),
            Scheme::Dropbox => {
                Verifier::Dropbox(signature_header::SignatureHeader::dropbox(bytes()))
            }
            Scheme::Twilio => {
                Verifier::Twilio(twilio::Twilio::new(bytes(), config.public_url.as_deref())?)
            }
            Scheme::Token => Verifier::Token(credentials::Token::new(config, bytes())?),
            Scheme::Basic => Verifier::Basic(credentials::Basic::new(config, bytes())?),
            Scheme::Preset(p) => Verifier::Preset(presets::PresetVerifier::new(
                p,
                config,
                &secrets,
                config.tolerance.map(|d| d.0),
            )?),
        })
    }

    /// The route's secret that the provider hands over in a handshake (Asana, Notion), when
    /// the config does not hold it: ingress keeps it in the store and refreshes this copy.
    pub fn learning(&self) -> Option<&presets::Learning> {
        match self {
            Verifier::Preset(v) => v.learning(),
            _ => None,
        }
    }

    /// The header that carries this route's own credential, if the scheme puts one in a
    /// header other than `Authorization`: it is a secret and must never be journaled.
    pub fn credential_header(&self) -> Option<&HeaderName> {
        match self {
            Verifier::Token(v) => v.header(),
            Verifier::Preset(v) => v.credential_header(),
            _ => None,
        }
    }

    /// The answer to a `GET` on the route, which some providers send to check an endpoint
    /// before they post to it: Meta's subscription handshake (`hub.mode=subscribe`,
    /// `hub.verify_token` compared in constant time, `hub.challenge` echoed) and Dropbox's
    /// `challenge` (echoed; it carries no proof and echoing it reveals nothing). Only
    /// challenges of letters, digits and `-_.~:` are echoed: providers make them up at random.
    /// X's CRC (`crc_token` answered with its HMAC under the consumer secret; only
    /// tokens shaped like X's, never JSON, since the answer is a signature anyone could then
    /// replay as an event's), Okta's one-time verification (answered only with the route's
    /// authorization header), and Trello's `HEAD` when a webhook is created.
    pub fn get_handshake(
        &self,
        query: &HashMap<String, String>,
        headers: &HeaderMap,
        uri: &Uri,
    ) -> GetHandshake {
        let field = |name: &str| query.get(name).map(String::as_str);
        let echoable = |c: &str| {
            !c.is_empty()
                && c.len() <= 256
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.~:".contains(&b))
        };
        match self {
            Verifier::Dropbox(_) => match field("challenge") {
                Some(challenge) if echoable(challenge) => GetHandshake::Echo(challenge.into()),
                _ => GetHandshake::BadRequest("missing or unusable challenge"),
            },
            Verifier::Meta(_, token) => {
                let presented = field("hub.verify_token").unwrap_or_default();
                let matches = bool::from(presented.as_bytes().ct_eq(token.expose().as_bytes()));
                match (field("hub.mode"), field("hub.challenge")) {
                    (Some("subscribe"), Some(challenge)) if matches && echoable(challenge) => {
                        GetHandshake::Echo(challenge.into())
                    }
                    _ => GetHandshake::Refused("verify token does not match"),
                }
            }
            Verifier::Preset(v) => match v.preset.handshake {
                Handshake::XCrc => match field("crc_token") {
                    Some(token)
                        if token.len() <= MAX_CRC_TOKEN
                            && !token.is_empty()
                            && token
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b"-_=+/".contains(&b)) =>
                    {
                        match v.base64_tag(token.as_bytes()) {
                            Some(tag) => GetHandshake::Json(serde_json::json!({
                                "response_token": format!("sha256={tag}")
                            })),
                            None => GetHandshake::NotOffered,
                        }
                    }
                    _ => GetHandshake::BadRequest("missing or unusable crc_token"),
                },
                Handshake::Okta => {
                    let req = Request {
                        headers,
                        body: b"",
                        uri,
                        now: SystemTime::now(),
                    };
                    if v.verify(&req).is_err() {
                        return GetHandshake::Refused("wrong or missing authorization");
                    }
                    match headers
                        .get("x-okta-verification-challenge")
                        .and_then(|c| c.to_str().ok())
                    {
                        Some(c) if echoable(c) => {
                            GetHandshake::Json(serde_json::json!({ "verification": c }))
                        }
                        _ => GetHandshake::BadRequest(
                            "missing or unusable x-okta-verification-challenge",
                        ),
                    }
                }
                Handshake::Head => GetHandshake::Json(serde_json::json!({})),
                _ => GetHandshake::NotOffered,
            },
            _ => GetHandshake::NotOffered,
        }
    }

    /// The answer to a handshake that comes before any proof, as plain text: Microsoft
    /// Graph's subscription validation (`POST ?validationToken=V`, answered `V`), and
    /// WooCommerce's ping when a webhook is saved (an unsigned form body `webhook_id=<n>`,
    /// answered with an empty `200`). Neither reveals anything or is journaled.
    pub fn unauthenticated_handshake(
        &self,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Option<String> {
        match self {
            Verifier::Graph(_) => graph::Graph::validation_token(uri),
            Verifier::Preset(v) if v.preset.handshake == Handshake::WooPing => {
                let ping = body.strip_prefix(b"webhook_id=").is_some_and(|n| {
                    !n.is_empty() && n.len() <= 20 && n.iter().all(u8::is_ascii_digit)
                });
                (ping && !headers.contains_key("x-wc-webhook-signature")).then(String::new)
            }
            _ => None,
        }
    }

    /// The router's own answer to a provider's handshake, if this verified request is one:
    /// Slack's `url_verification` gets `{"challenge": C}`, Zoom's `endpoint.url_validation`
    /// gets `{"plainToken": P, "encryptedToken": hex(HMAC-SHA256(secret, P))}`. Such a
    /// request is not an event: it is answered, never journaled. Call after [`Self::verify`].
    ///
    /// Twitch's `webhook_callback_verification` gets its `challenge` as plain text; a Discord
    /// Interactions PING (`{"type":1}`) gets `{"type":1}`, a Webhook Events PING
    /// (`{"type":0}`) gets `204` (each only on a route of that kind, since the other's
    /// `type` means something else).
    pub fn handshake(&self, headers: &HeaderMap, body: &[u8]) -> Option<Answer> {
        #[derive(serde::Deserialize)]
        struct Slack {
            #[serde(rename = "type")]
            kind: String,
            challenge: String,
        }
        #[derive(serde::Deserialize)]
        struct Zoom {
            event: String,
            payload: ZoomPayload,
        }
        #[derive(serde::Deserialize)]
        struct ZoomPayload {
            #[serde(rename = "plainToken")]
            plain_token: String,
        }
        match self {
            Verifier::Slack(_) => {
                let s: Slack = serde_json::from_slice(body).ok()?;
                (s.kind == "url_verification")
                    .then(|| Answer::Json(serde_json::json!({ "challenge": s.challenge })))
            }
            Verifier::Zoom(v) => {
                let z: Zoom = serde_json::from_slice(body).ok()?;
                if z.event != "endpoint.url_validation" {
                    return None;
                }
                let encrypted = v.hex_tag(z.payload.plain_token.as_bytes())?;
                Some(Answer::Json(serde_json::json!({
                    "plainToken": z.payload.plain_token,
                    "encryptedToken": encrypted,
                })))
            }
            Verifier::Preset(v) => v.handshake(headers, body),
            _ => None,
        }
    }

    /// Checks one request against this scheme.
    pub fn verify(&self, req: &Request<'_>) -> Result<Verified, VerifyError> {
        match self {
            Verifier::None => Ok(Verified::default()),
            Verifier::StandardWebhooks(v) => v.verify(req),
            Verifier::Header(v)
            | Verifier::Zoom(v)
            | Verifier::Dropbox(v)
            | Verifier::Meta(v, _) => v.verify(req),
            Verifier::Graph(v) => v.verify(req),
            Verifier::Stripe(v) => v.verify(req),
            Verifier::Slack(v) => v.verify(req),
            Verifier::Twilio(v) => v.verify(req),
            Verifier::Token(v) => v.verify(req),
            Verifier::Basic(v) => v.verify(req),
            Verifier::Preset(v) => v.verify(req),
            Verifier::Polled => Err(VerifyError::Polled),
        }
    }

    /// What a provider using this scheme would send with `body` to `path_and_query` at
    /// `now`: extra headers and the path to use. For `hookyard send`; signs with the first
    /// secret. `event_type` fills the provider's event-type header where it has one. An
    /// error says why a scheme cannot be signed here (its secret is a public key).
    pub fn sign(
        &self,
        body: &[u8],
        event_type: Option<&str>,
        path_and_query: &str,
        now: SystemTime,
    ) -> Result<Signed, String> {
        let ts = unix_secs(now);
        let delivery = uuid::Uuid::new_v4().simple().to_string();
        let mut signed = Signed {
            headers: Vec::new(),
            path_and_query: path_and_query.to_string(),
        };
        match self {
            Verifier::None => {}
            Verifier::Polled => return Err("this route is polled, not posted to".into()),
            Verifier::StandardWebhooks(v) => {
                signed.headers = v.sign_headers(&format!("msg_{delivery}"), ts, body)
            }
            Verifier::Header(v)
            | Verifier::Zoom(v)
            | Verifier::Dropbox(v)
            | Verifier::Meta(v, _) => {
                signed.headers = v.sign_headers(body, ts, &delivery, event_type)
            }
            // The proof is the clientState inside the body, which the sender writes.
            Verifier::Graph(_) => {}
            Verifier::Stripe(v) => {
                signed.headers = vec![("stripe-signature".into(), v.sign_header(ts, body))]
            }
            Verifier::Slack(v) => signed.headers = v.sign_headers(ts, body),
            Verifier::Twilio(v) => signed = v.sign(body, path_and_query),
            Verifier::Token(v) => signed = v.sign(path_and_query),
            Verifier::Basic(v) => signed.headers = v.sign_headers(),
            Verifier::Preset(v) => {
                return v
                    .sign(body, path_and_query, now, &delivery, event_type)
                    .ok_or_else(|| {
                        format!(
                            "{} signs with its private key; only {} can sign for scheme \"{}\"",
                            v.preset.title, v.preset.title, v.preset.name
                        )
                    });
            }
        }
        if let (Some(t), false) = (
            event_type,
            signed.headers.iter().any(|(n, _)| n == "x-github-event"),
        ) {
            signed.headers.push(("x-event-type".into(), t.to_string()));
        }
        Ok(signed)
    }

    /// The endpoint check this scheme's provider makes, as it would make it now, for an
    /// operator to try with `hookyard send --handshake`. An error says why there is none to
    /// try (no handshake; only the provider can sign it; trying it would set the secret).
    pub fn trial_handshake(&self, path: &str, now: SystemTime) -> Result<Trial, String> {
        let challenge = uuid::Uuid::new_v4().simple().to_string();
        let get = |query: String, headers: Vec<(String, String)>, expect: String| Trial {
            method: http::Method::GET,
            signed: Signed {
                headers,
                path_and_query: format!("{path}?{query}"),
            },
            body: Vec::new(),
            expect,
        };
        let post = |body: Vec<u8>, signed: Signed, expect: String| Trial {
            method: http::Method::POST,
            signed,
            body,
            expect,
        };
        let signed_post = |body: serde_json::Value, expect: String| -> Result<Trial, String> {
            let body = body.to_string().into_bytes();
            let signed = self.sign(&body, None, path, now)?;
            Ok(post(body, signed, expect))
        };
        match self {
            Verifier::Slack(_) => signed_post(
                serde_json::json!({ "token": "trial", "challenge": challenge, "type": "url_verification" }),
                format!("200 {{\"challenge\":\"{challenge}\"}}"),
            ),
            Verifier::Zoom(v) => {
                let encrypted = v.hex_tag(challenge.as_bytes()).unwrap_or_default();
                signed_post(
                    serde_json::json!({ "event": "endpoint.url_validation", "payload": { "plainToken": challenge } }),
                    format!(
                        "200 {{\"plainToken\":\"{challenge}\",\"encryptedToken\":\"{encrypted}\"}}"
                    ),
                )
            }
            Verifier::Meta(_, token) => {
                let query = form_urlencoded::Serializer::new(String::new())
                    .append_pair("hub.mode", "subscribe")
                    .append_pair("hub.verify_token", token.expose())
                    .append_pair("hub.challenge", &challenge)
                    .finish();
                Ok(get(query, vec![], format!("200 {challenge}")))
            }
            Verifier::Dropbox(_) => Ok(get(
                format!("challenge={challenge}"),
                vec![],
                format!("200 {challenge}"),
            )),
            Verifier::Graph(_) => Ok(post(
                Vec::new(),
                Signed {
                    headers: vec![],
                    path_and_query: format!("{path}?validationToken={challenge}"),
                },
                format!("200 {challenge}"),
            )),
            Verifier::Preset(v) => match v.preset.handshake {
                Handshake::Twitch => {
                    let mut trial = signed_post(
                        serde_json::json!({
                            "challenge": challenge,
                            "subscription": { "id": "trial", "status": "webhook_callback_verification_pending", "type": "channel.follow", "version": "1" }
                        }),
                        format!("200 {challenge}"),
                    )?;
                    trial.signed.headers.push((
                        "twitch-eventsub-message-type".into(),
                        "webhook_callback_verification".into(),
                    ));
                    Ok(trial)
                }
                Handshake::XCrc => {
                    let tag = v.base64_tag(challenge.as_bytes()).unwrap_or_default();
                    Ok(get(
                        format!("crc_token={challenge}"),
                        vec![],
                        format!("200 {{\"response_token\":\"sha256={tag}\"}}"),
                    ))
                }
                Handshake::Okta => {
                    let mut headers = self.sign(b"", None, path, now)?.headers;
                    headers.push(("x-okta-verification-challenge".into(), challenge.clone()));
                    Ok(get(
                        String::new(),
                        headers,
                        format!("200 {{\"verification\":\"{challenge}\"}}"),
                    ))
                }
                Handshake::Head => Ok(Trial {
                    method: http::Method::HEAD,
                    signed: Signed {
                        headers: vec![],
                        path_and_query: path.to_string(),
                    },
                    body: Vec::new(),
                    expect: "200".into(),
                }),
                Handshake::WooPing => Ok(post(
                    b"webhook_id=1".to_vec(),
                    Signed {
                        headers: vec![],
                        path_and_query: path.to_string(),
                    },
                    "200".into(),
                )),
                Handshake::DiscordPing | Handshake::DiscordEventsPing => Err(format!(
                    "{} signs its PING with its private key; use the Developer Portal's endpoint check",
                    v.preset.title
                )),
                Handshake::AsanaSecret | Handshake::NotionToken => Err(format!(
                    "a trial {} handshake would set the route's secret; let {} make the real one",
                    v.preset.title, v.preset.title
                )),
                Handshake::None => Err(format!("{} makes no endpoint check", v.preset.title)),
            },
            _ => Err("this scheme has no endpoint check".into()),
        }
    }
}

/// A provider's endpoint check, made up for `hookyard send --handshake`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trial {
    /// `GET`, `HEAD` or `POST`.
    pub method: http::Method,
    /// The request as signed: headers, path and query.
    pub signed: Signed,
    /// The body (empty for `GET` and `HEAD`).
    pub body: Vec<u8>,
    /// What a correct answer holds, in words.
    pub expect: String,
}

/// A request signed as a provider would sign it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// Headers to add.
    pub headers: Vec<(String, String)>,
    /// The path and query to request (a token or body hash may be added to the query).
    pub path_and_query: String,
}

/// What a `GET` on a route gets (see [`Verifier::get_handshake`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GetHandshake {
    /// Answer `200` with this text.
    Echo(String),
    /// Answer `400`: the check is malformed.
    BadRequest(&'static str),
    /// Answer `403`: the check does not prove it comes from the provider.
    Refused(&'static str),
    /// Answer `200` with this JSON.
    Json(serde_json::Value),
    /// The scheme has no such check: webhooks are only `POST`ed here.
    NotOffered,
}

/// The router's own answer to a verified handshake request (see [`Verifier::handshake`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `200` with this JSON.
    Json(serde_json::Value),
    /// `200`, `text/plain`, this text.
    Text(String),
    /// `204`.
    NoContent,
    /// `200`, empty, with this header.
    Header(&'static str, String),
}

/// The longest `crc_token` answered: X's are 48 characters or so.
const MAX_CRC_TOKEN: usize = 128;

/// Seconds since the Unix epoch.
pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// The value of a header that must appear once and be visible ASCII.
fn single_header<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Result<&'h str, VerifyError> {
    let malformed = || VerifyError::MalformedHeader(name.clone());
    let mut values = headers.get_all(name).iter();
    let value = values
        .next()
        .ok_or_else(|| VerifyError::MissingHeader(name.clone()))?;
    if values.next().is_some() {
        return Err(malformed());
    }
    let value = value.to_str().map_err(|_| malformed())?;
    if value.len() > 4096 {
        return Err(malformed());
    }
    Ok(value)
}

/// Checks a Unix timestamp (seconds) against `now` within `tolerance`, in both directions.
fn check_timestamp(
    ts: &str,
    header: &HeaderName,
    now: SystemTime,
    tolerance: Duration,
) -> Result<u64, VerifyError> {
    let malformed = || VerifyError::MalformedHeader(header.clone());
    if ts.is_empty() || ts.len() > 12 || !ts.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed());
    }
    let ts: u64 = ts.parse().map_err(|_| malformed())?;
    if unix_secs(now).abs_diff(ts) > tolerance.as_secs() {
        return Err(VerifyError::StaleTimestamp);
    }
    Ok(ts)
}

/// A header value as a delivery id, if it looks like one.
fn delivery_id(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 256)
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    /// A verify table for `scheme` with one secret and nothing else set.
    pub(crate) fn config(scheme: Scheme) -> VerifyConfig {
        VerifyConfig {
            scheme,
            secret: Some(crate::config::SecretList(vec![Secret::new(
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            )])),
            secrets: vec![],
            tolerance: None,
            header: None,
            algorithm: None,
            encoding: None,
            prefix: None,
            timestamp_header: None,
            signed_content: None,
            query: None,
            username: None,
            public_url: None,
            verify_token: None,
        }
    }

    #[test]
    fn a_key_the_scheme_ignores_is_an_error() {
        let mut c = config(Scheme::Stripe);
        c.header = Some("X-Sig".into());
        let err = Verifier::from_config(&c).unwrap_err().to_string();
        assert_eq!(err, "verify: header does not apply to scheme \"stripe\"");
    }

    #[test]
    fn a_meta_route_needs_its_verify_token() {
        let err = Verifier::from_config(&config(Scheme::Meta)).expect_err("refused");
        assert!(err.0.contains("needs verify_token"), "{}", err.0);
        let mut github = config(Scheme::Github);
        github.verify_token = Some(Secret::new("t"));
        let err = Verifier::from_config(&github).expect_err("refused");
        assert!(err.0.contains("verify_token does not apply"), "{}", err.0);
    }

    #[test]
    fn a_missing_or_empty_secret_is_an_error() {
        let mut c = config(Scheme::Github);
        c.secret = None;
        assert!(Verifier::from_config(&c).is_err());
        c.secrets = vec![Secret::new("")];
        assert!(Verifier::from_config(&c).is_err());
    }

    #[test]
    fn every_scheme_accepts_what_its_own_signer_makes() {
        let uri: Uri = "/hooks/x?a=1".parse().unwrap();
        let now = SystemTime::now();
        let body = br#"{"id":"evt_1","type":"x"}"#;
        for scheme in [
            Scheme::StandardWebhooks,
            Scheme::Svix,
            Scheme::Github,
            Scheme::Meta,
            Scheme::Shopify,
            Scheme::Stripe,
            Scheme::Slack,
            Scheme::Zoom,
            Scheme::Dropbox,
            Scheme::Twilio,
            Scheme::Hmac,
            Scheme::Token,
            Scheme::Basic,
        ] {
            let mut c = config(scheme);
            match scheme {
                Scheme::Twilio => c.public_url = Some("https://hooks.example.com".into()),
                Scheme::Hmac => c.header = Some("x-signature".into()),
                Scheme::Token => c.header = Some("x-token".into()),
                Scheme::Basic => c.username = Some("hooks".into()),
                Scheme::Meta => c.verify_token = Some(Secret::new("meta-verify-token")),
                _ => {}
            }
            let v = Verifier::from_config(&c).unwrap_or_else(|e| panic!("{scheme:?}: {e}"));
            let signed = v.sign(body, None, uri.to_string().as_str(), now).unwrap();
            let mut headers = HeaderMap::new();
            for (k, val) in &signed.headers {
                headers.insert(
                    HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    val.parse().unwrap(),
                );
            }
            let signed_uri: Uri = signed.path_and_query.parse().unwrap();
            let req = Request {
                headers: &headers,
                body,
                uri: &signed_uri,
                now,
            };
            v.verify(&req).unwrap_or_else(|e| panic!("{scheme:?}: {e}"));
            let tampered = Request { body: b"{}", ..req };
            assert!(
                v.verify(&tampered).is_err() || matches!(scheme, Scheme::Token | Scheme::Basic),
                "{scheme:?} accepted a tampered body"
            );
        }
    }
}

/// Arbitrary, truncated, duplicated and oversized headers against every scheme: never a
/// panic, never an accepted request without the secret.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn verifiers() -> Vec<(Scheme, Verifier, Vec<&'static str>)> {
        let base = super::tests::config;
        let mut out = Vec::new();
        let mut add = |c: VerifyConfig, headers: Vec<&'static str>| {
            out.push((
                c.scheme,
                Verifier::from_config(&c).expect("valid config"),
                headers,
            ));
        };
        add(
            base(Scheme::StandardWebhooks),
            vec!["webhook-id", "webhook-timestamp", "webhook-signature"],
        );
        add(
            base(Scheme::Svix),
            vec!["svix-id", "svix-timestamp", "svix-signature"],
        );
        add(base(Scheme::Github), vec!["x-hub-signature-256"]);
        let mut meta = base(Scheme::Meta);
        meta.verify_token = Some(crate::config::Secret::new("vt"));
        add(meta, vec!["x-hub-signature-256"]);
        add(base(Scheme::Shopify), vec!["x-shopify-hmac-sha256"]);
        add(base(Scheme::Stripe), vec!["stripe-signature"]);
        add(
            base(Scheme::Slack),
            vec!["x-slack-signature", "x-slack-request-timestamp"],
        );
        add(
            base(Scheme::Zoom),
            vec!["x-zm-signature", "x-zm-request-timestamp"],
        );
        add(base(Scheme::MicrosoftGraph), vec![]);
        add(base(Scheme::Dropbox), vec!["x-dropbox-signature"]);
        let mut twilio = base(Scheme::Twilio);
        twilio.public_url = Some("https://hooks.example.com".into());
        add(twilio, vec!["x-twilio-signature"]);
        let mut hmac = base(Scheme::Hmac);
        hmac.header = Some("x-sig".into());
        hmac.timestamp_header = Some("x-ts".into());
        add(hmac, vec!["x-sig", "x-ts"]);
        let mut token = base(Scheme::Token);
        token.header = Some("x-token".into());
        add(token, vec!["x-token"]);
        let mut basic = base(Scheme::Basic);
        basic.username = Some("u".into());
        add(basic, vec!["authorization"]);
        out
    }

    fn header_value() -> impl Strategy<Value = String> {
        prop_oneof![
            "[ -~]{0,80}",
            "v1,[A-Za-z0-9+/=]{0,60}( v1,[A-Za-z0-9+/=]{0,60}){0,3}",
            "t=[0-9]{0,12}(,v1=[0-9a-f]{0,70}){0,3}(,v0=[0-9a-f]{0,10})?",
            "(sha256=|v0=|Basic |Bearer )[ -~]{0,90}",
            "[0-9]{0,14}",
            "[ -~]{3000,5000}",
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_headers_are_refused_without_panicking(
            values in proptest::collection::vec(header_value(), 3),
            repeat in any::<bool>(),
            body in proptest::collection::vec(any::<u8>(), 0..200),
            query in "[a-zA-Z0-9=&%]{0,40}",
        ) {
            let uri: Uri = format!("/hooks/r?{query}").parse().unwrap_or_else(|_| Uri::from_static("/hooks/r"));
            for (scheme, verifier, names) in verifiers() {
                let mut headers = HeaderMap::new();
                for (name, value) in names.iter().zip(values.iter()) {
                    let name = HeaderName::from_static(name);
                    let Ok(v) = value.parse::<http::HeaderValue>() else { continue };
                    headers.append(name.clone(), v.clone());
                    if repeat {
                        headers.append(name, v);
                    }
                }
                let req = Request { headers: &headers, body: &body, uri: &uri, now: SystemTime::now() };
                prop_assert!(verifier.verify(&req).is_err(), "{scheme:?} accepted {headers:?}");
            }
        }
    }
}
