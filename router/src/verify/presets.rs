//! The verifier for a named provider from the [`PRESETS`](crate::config::PRESETS) table:
//! one generic HMAC engine that reads the row (headers, digest, encoding, how signatures sit
//! in the header, what is signed, the timestamp and its format), plus the row kinds that
//! reuse another verifier (a token, Basic, Svix) and the asymmetric ones (Ed25519, ECDSA
//! P-256) whose secret is the provider's public key.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use http::HeaderName;

use super::{
    Answer, BadSecret, Request, Signed, Verified, VerifyError, credentials, delivery_id, mac,
    single_header, standard_webhooks, unix_secs,
};
use crate::config::{
    Check, Handshake, HmacRule, KeyForm, Locate, Piece, Preset, SigFormat, SignatureEncoding,
    Stamp, TimeFormat, VerifyConfig,
};

/// A route's verifier for a preset.
pub struct PresetVerifier {
    /// The row it was built from.
    pub preset: &'static Preset,
    check: Checker,
}

impl std::fmt::Debug for PresetVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresetVerifier")
            .field("preset", &self.preset.name)
            .finish_non_exhaustive()
    }
}

enum Checker {
    Hmac(HmacCheck),
    Token(credentials::Token),
    Basic(credentials::Basic),
    Svix(standard_webhooks::StandardWebhooks),
    Ed25519 {
        keys: Vec<Vec<u8>>,
        signature: HeaderName,
        timestamp: HeaderName,
        tolerance: Duration,
    },
    Learned {
        signature: HeaderName,
        prefix: &'static str,
        /// Secrets from the config, which win over a learned one.
        configured: Vec<Vec<u8>>,
        learning: Learning,
    },
    Ecdsa {
        /// Uncompressed P-256 points (65 bytes each).
        keys: Vec<Vec<u8>>,
        signature: HeaderName,
        timestamp: HeaderName,
        tolerance: Duration,
    },
}

/// The keys a preset accepts beyond `scheme` and the secret.
pub fn allowed_keys(preset: &Preset) -> &'static [&'static str] {
    match &preset.check {
        Check::Hmac(rule) => match (rule.timestamp.is_some(), rule.signs_url()) {
            (true, true) => &["tolerance", "public_url"],
            (true, false) => &["tolerance"],
            (false, true) => &["public_url"],
            (false, false) => &[],
        },
        Check::Basic => &["username"],
        Check::Svix | Check::Ed25519 { .. } | Check::Ecdsa { .. } => &["tolerance"],
        Check::Token { .. } | Check::Learned { .. } => &[],
    }
}

/// How long a learned secret read from the store is trusted before it is read again, so an
/// operator's `hookyard secret forget` on one node reaches the others.
const LEARNED_FRESH: Duration = Duration::from_secs(30);

/// A secret the provider hands over in its first request (Asana's `X-Hook-Secret`, Notion's
/// `verification_token`). The store keeps it (see `store::LEARNED_SECRETS`); this is the
/// route's copy, re-read every [`LEARNED_FRESH`].
pub struct Learning {
    handshake: Handshake,
    held: std::sync::RwLock<Option<(Option<Vec<u8>>, std::time::Instant)>>,
}

/// The longest secret taken from a handshake.
const MAX_LEARNED: usize = 512;

impl Learning {
    fn new(handshake: Handshake) -> Learning {
        Learning {
            handshake,
            held: std::sync::RwLock::new(None),
        }
    }

    /// The secret this request hands over, if it is the provider's handshake: Asana's
    /// `X-Hook-Secret` header; Notion's unsigned body `{"verification_token": T}`.
    pub fn offered(&self, headers: &http::HeaderMap, body: &[u8]) -> Option<String> {
        let usable = |s: &str| {
            !s.is_empty() && s.len() <= MAX_LEARNED && s.bytes().all(|b| b.is_ascii_graphic())
        };
        match self.handshake {
            Handshake::AsanaSecret => {
                let secret = headers.get("x-hook-secret")?.to_str().ok()?;
                usable(secret).then(|| secret.to_string())
            }
            Handshake::NotionToken => {
                if headers.contains_key("x-notion-signature") {
                    return None;
                }
                #[derive(serde::Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Verification {
                    verification_token: String,
                }
                let v: Verification = serde_json::from_slice(body).ok()?;
                usable(&v.verification_token).then_some(v.verification_token)
            }
            _ => None,
        }
    }

    /// The answer to a handshake whose secret is (now) the one kept: Asana wants its secret
    /// echoed in `X-Hook-Secret`; Notion, any `2xx`.
    pub fn answer(&self, secret: &str) -> Answer {
        match self.handshake {
            Handshake::AsanaSecret => Answer::Header("x-hook-secret", secret.to_string()),
            _ => Answer::NoContent,
        }
    }

    /// Whether the kept secret should be (re)read from the store.
    pub fn is_stale(&self) -> bool {
        match &*self
            .held
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        {
            Some((_, at)) => at.elapsed() > LEARNED_FRESH,
            None => true,
        }
    }

    /// The secret as the store holds it now (`None`: none yet, or forgotten).
    pub fn remember(&self, secret: Option<Vec<u8>>) {
        *self
            .held
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((secret, std::time::Instant::now()));
    }

    fn key(&self) -> Option<Vec<u8>> {
        self.held
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .and_then(|(k, _)| k.clone())
    }
}

/// The DER prefix of a P-256 public key (SubjectPublicKeyInfo with an uncompressed point):
/// what SendGrid's "Verification Key" is, base64-encoded, before the point itself.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

impl PresetVerifier {
    /// Builds the verifier for `preset` with these secrets (already checked non-empty).
    pub fn new(
        preset: &'static Preset,
        config: &VerifyConfig,
        secrets: &[&str],
        tolerance: Option<Duration>,
    ) -> Result<PresetVerifier, BadSecret> {
        let word = preset.secret_word;
        let raw = || secrets.iter().map(|s| s.as_bytes().to_vec()).collect();
        let tolerance_or =
            |default_secs: u64| tolerance.unwrap_or(Duration::from_secs(default_secs.max(1)));
        let check = match &preset.check {
            Check::Learned { signature, prefix } => Checker::Learned {
                signature: HeaderName::from_static(signature),
                prefix,
                configured: raw(),
                learning: Learning::new(preset.handshake),
            },
            Check::Hmac(rule) => {
                let keys = match rule.key {
                    KeyForm::Raw => raw(),
                    KeyForm::Base64 => secrets
                        .iter()
                        .map(|s| B64.decode(s.trim()))
                        .collect::<Result<_, _>>()
                        .map_err(|_| {
                            BadSecret(format!(
                                "the {word} must be base64, as {} shows it",
                                preset.title
                            ))
                        })?,
                };
                let public_url = if rule.signs_url() {
                    Some(public_url(preset, config.public_url.as_deref())?)
                } else {
                    None
                };
                Checker::Hmac(HmacCheck {
                    rule,
                    keys,
                    tolerance: tolerance_or(rule.timestamp.map_or(0, |s| s.tolerance_secs)),
                    public_url,
                    names: rule
                        .headers
                        .iter()
                        .map(|h| HeaderName::from_static(h))
                        .collect(),
                    stamp_name: match rule.timestamp.map(|s| s.at) {
                        Some(Locate::Header(h)) => Some(HeaderName::from_static(h)),
                        _ => None,
                    },
                    piece_names: rule
                        .signed
                        .iter()
                        .map(|p| match p {
                            Piece::Header(h) => Some(HeaderName::from_static(h)),
                            _ => None,
                        })
                        .collect(),
                })
            }
            Check::Token { header, prefix } => Checker::Token(credentials::Token::in_header(
                HeaderName::from_static(header),
                prefix,
                raw(),
            )),
            Check::Basic => Checker::Basic(
                credentials::Basic::new(config, raw())
                    .map_err(|e| BadSecret(format!("{} (the {word})", e.0)))?,
            ),
            Check::Svix => Checker::Svix(standard_webhooks::StandardWebhooks::new(
                secrets,
                tolerance_or(300),
                standard_webhooks::Flavor::Svix,
            )?),
            Check::Ed25519 {
                signature,
                timestamp,
            } => Checker::Ed25519 {
                keys: secrets
                    .iter()
                    .map(|s| hex::decode(s.trim()).ok().filter(|k| k.len() == 32))
                    .collect::<Option<_>>()
                    .ok_or_else(|| {
                        BadSecret(format!(
                            "the {word} must be the 64 hex digits {} shows",
                            preset.title
                        ))
                    })?,
                signature: HeaderName::from_static(signature),
                timestamp: HeaderName::from_static(timestamp),
                tolerance: tolerance_or(300),
            },
            Check::Ecdsa {
                signature,
                timestamp,
            } => Checker::Ecdsa {
                keys: secrets
                    .iter()
                    .map(|s| {
                        let der = B64.decode(s.trim()).ok()?;
                        let point = der.strip_prefix(&P256_SPKI_PREFIX[..])?;
                        (point.len() == 65 && point[0] == 4).then(|| point.to_vec())
                    })
                    .collect::<Option<_>>()
                    .ok_or_else(|| {
                        BadSecret(format!(
                            "the {word} must be the base64 P-256 public key {} shows",
                            preset.title
                        ))
                    })?,
                signature: HeaderName::from_static(signature),
                timestamp: HeaderName::from_static(timestamp),
                tolerance: tolerance_or(300),
            },
        };
        Ok(PresetVerifier { preset, check })
    }

    /// The route's learned secret, when the provider hands it over rather than the config
    /// holding it.
    pub fn learning(&self) -> Option<&Learning> {
        match &self.check {
            Checker::Learned {
                configured,
                learning,
                ..
            } if configured.is_empty() => Some(learning),
            _ => None,
        }
    }

    /// The header carrying this route's own credential, never to be journaled.
    pub fn credential_header(&self) -> Option<&HeaderName> {
        match &self.check {
            Checker::Token(t) => t.header(),
            _ => None,
        }
    }

    /// Checks one request.
    ///
    /// The delivery id and event type are read where the row says, from headers or from
    /// the body, which is parsed at most once for the check and both.
    pub fn verify(&self, req: &Request<'_>) -> Result<Verified, VerifyError> {
        let mut doc = Doc::new(req.body);
        let mut verified = match &self.check {
            Checker::Hmac(h) => h.verify(req, &mut doc)?,
            Checker::Token(t) => t.verify(req)?,
            Checker::Basic(b) => b.verify(req)?,
            Checker::Svix(s) => s.verify(req)?,
            Checker::Learned {
                signature,
                prefix,
                configured,
                learning,
            } => {
                let learned;
                let keys: &[Vec<u8>] = if configured.is_empty() {
                    learned = [learning.key().ok_or(VerifyError::NotLearned)?];
                    &learned
                } else {
                    configured
                };
                let value = single_header(req.headers, signature)?;
                let tag = value
                    .strip_prefix(*prefix)
                    .and_then(|t| hex::decode(t.trim()).ok())
                    .ok_or_else(|| VerifyError::MalformedHeader(signature.clone()))?;
                let tags = mac::tags(crate::config::HmacAlgorithm::Sha256, keys, &[req.body]);
                if !mac::is_any_of(&tags, &tag) {
                    return Err(VerifyError::BadSignature);
                }
                Verified::default()
            }
            Checker::Ed25519 {
                keys,
                signature,
                timestamp,
                tolerance,
            } => {
                let sig = hex::decode(single_header(req.headers, signature)?)
                    .map_err(|_| VerifyError::MalformedHeader(signature.clone()))?;
                let ts = single_header(req.headers, timestamp)?;
                super::check_timestamp(ts, timestamp, req.now, *tolerance)?;
                let message = [ts.as_bytes(), req.body].concat();
                asymmetric(&ring::signature::ED25519, keys, &message, &sig)?;
                Verified::default()
            }
            Checker::Ecdsa {
                keys,
                signature,
                timestamp,
                tolerance,
            } => {
                let sig = B64
                    .decode(single_header(req.headers, signature)?.trim())
                    .map_err(|_| VerifyError::MalformedHeader(signature.clone()))?;
                let ts = single_header(req.headers, timestamp)?;
                super::check_timestamp(ts, timestamp, req.now, *tolerance)?;
                let message = [ts.as_bytes(), req.body].concat();
                asymmetric(
                    &ring::signature::ECDSA_P256_SHA256_ASN1,
                    keys,
                    &message,
                    &sig,
                )?;
                Verified::default()
            }
        };
        let usable = |v: String| (!v.is_empty() && v.len() <= 256).then_some(v);
        if verified.delivery_id.is_none() {
            verified.delivery_id = match self.preset.delivery_id {
                Locate::Nowhere => None,
                Locate::Header(h) => delivery_id(req.headers, h),
                Locate::Body(p) => doc.field(p).and_then(usable),
            };
        }
        verified.event_type = match self.preset.event_type {
            Locate::Nowhere => None,
            Locate::Header(h) => req
                .headers
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            Locate::Body(p) => doc.field(p),
        }
        .and_then(usable);
        Ok(verified)
    }

    /// `base64(HMAC(first secret, data))` under the row's digest: X's CRC answer.
    pub fn base64_tag(&self, data: &[u8]) -> Option<String> {
        match &self.check {
            Checker::Hmac(h) => {
                Some(B64.encode(mac::sign(h.rule.algorithm, h.keys.first()?, &[data])))
            }
            _ => None,
        }
    }

    /// The router's answer if this verified request is the provider's handshake.
    pub fn handshake(&self, headers: &http::HeaderMap, body: &[u8]) -> Option<Answer> {
        #[derive(serde::Deserialize)]
        struct Typed {
            #[serde(rename = "type")]
            kind: Option<i64>,
        }
        #[derive(serde::Deserialize)]
        struct Challenge {
            challenge: String,
        }
        match self.preset.handshake {
            Handshake::Twitch => {
                let kind = headers.get("twitch-eventsub-message-type")?.to_str().ok()?;
                if kind != "webhook_callback_verification" {
                    return None;
                }
                let c: Challenge = serde_json::from_slice(body).ok()?;
                Some(Answer::Text(c.challenge))
            }
            Handshake::DiscordPing => {
                let t: Typed = serde_json::from_slice(body).ok()?;
                (t.kind == Some(1)).then(|| Answer::Json(serde_json::json!({ "type": 1 })))
            }
            Handshake::DiscordEventsPing => {
                let t: Typed = serde_json::from_slice(body).ok()?;
                (t.kind == Some(0)).then_some(Answer::NoContent)
            }
            _ => None,
        }
    }

    /// What the provider would send with `body`: headers and the path to request. `None`
    /// when only the provider can sign (its secret is a public key).
    pub fn sign(
        &self,
        body: &[u8],
        path_and_query: &str,
        now: SystemTime,
        delivery: &str,
        event_type: Option<&str>,
    ) -> Option<Signed> {
        let mut signed = Signed {
            headers: Vec::new(),
            path_and_query: path_and_query.to_string(),
        };
        match &self.check {
            Checker::Hmac(h) => signed.headers = h.sign(body, path_and_query, now, delivery)?,
            Checker::Token(t) => signed = t.sign(path_and_query),
            Checker::Basic(b) => signed.headers = b.sign_headers(),
            Checker::Svix(s) => {
                signed.headers = s.sign_headers(&format!("msg_{delivery}"), unix_secs(now), body)
            }
            Checker::Learned {
                signature,
                prefix,
                configured,
                learning,
            } => {
                let key = configured.first().cloned().or_else(|| learning.key())?;
                let tag = mac::sign(crate::config::HmacAlgorithm::Sha256, &key, &[body]);
                signed.headers = vec![(
                    signature.to_string(),
                    format!("{prefix}{}", hex::encode(tag)),
                )];
            }
            Checker::Ed25519 { .. } | Checker::Ecdsa { .. } => return None,
        }
        let mut add = |at: Locate, value: &str| {
            if let Locate::Header(h) = at
                && !signed.headers.iter().any(|(n, _)| n == h)
            {
                signed.headers.push((h.to_string(), value.to_string()));
            }
        };
        add(self.preset.delivery_id, delivery);
        if let Some(t) = event_type {
            add(self.preset.event_type, t);
        }
        Some(signed)
    }
}

/// Whether any of `keys` signed `message` with `sig` (every key is tried).
fn asymmetric(
    algorithm: &'static dyn ring::signature::VerificationAlgorithm,
    keys: &[Vec<u8>],
    message: &[u8],
    sig: &[u8],
) -> Result<(), VerifyError> {
    let ok = keys.iter().fold(false, |found, key| {
        ring::signature::UnparsedPublicKey::new(algorithm, key)
            .verify(message, sig)
            .is_ok()
            | found
    });
    ok.then_some(()).ok_or(VerifyError::BadSignature)
}

fn public_url(preset: &Preset, configured: Option<&str>) -> Result<String, BadSecret> {
    let url = configured.ok_or_else(|| {
        BadSecret(format!(
            "scheme \"{}\" needs public_url, the base URL {} calls (it signs the URL)",
            preset.name, preset.title
        ))
    })?;
    let url = url.trim_end_matches('/');
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.path() == "/" => Ok(url.to_string()),
        _ => Err(BadSecret(format!(
            "public_url {url:?} must be like https://hooks.example.com (no path)"
        ))),
    }
}

/// The generic HMAC engine over one [`HmacRule`].
struct HmacCheck {
    rule: &'static HmacRule,
    keys: Vec<Vec<u8>>,
    tolerance: Duration,
    public_url: Option<String>,
    /// The row's header names, made once rather than per request: the signature headers,
    /// the timestamp header, and each signed piece's header (in `rule.signed` order).
    names: Vec<HeaderName>,
    stamp_name: Option<HeaderName>,
    piece_names: Vec<Option<HeaderName>>,
}

/// Fields of the body as JSON, each read by skimming the body for its pointer (nothing but
/// the field itself is kept), and only if a rule needs one.
struct Doc<'a> {
    body: &'a [u8],
}

impl<'a> Doc<'a> {
    fn new(body: &'a [u8]) -> Self {
        Doc { body }
    }

    /// The field at `pointer` as text: strings as they are, numbers as written.
    fn field(&mut self, pointer: &str) -> Option<String> {
        use serde::de::DeserializeSeed;
        let path: Vec<String> = pointer
            .split('/')
            .skip(1)
            .map(|t| t.replace("~1", "/").replace("~0", "~"))
            .collect();
        let mut de = serde_json::Deserializer::from_slice(self.body);
        let found = Seek(&path).deserialize(&mut de).ok()?;
        de.end().ok()?;
        found
    }
}

/// Follows a JSON pointer's tokens through a document, skimming every other value.
struct Seek<'p>(&'p [String]);

impl<'de> serde::de::DeserializeSeed<'de> for Seek<'_> {
    type Value = Option<String>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        use serde::Deserialize;
        if self.0.is_empty() {
            return Ok(match serde_json::Value::deserialize(d)? {
                serde_json::Value::String(s) => Some(s),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            });
        }
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Seek<'_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            // The last of repeated keys wins, as in `serde_json::Value`.
            if key == self.0[0] {
                found = map.next_value_seed(Seek(&self.0[1..]))?;
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(found)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let wanted = self.0[0].parse::<usize>().ok();
        let mut found = None;
        let mut i = 0;
        loop {
            if Some(i) == wanted {
                match seq.next_element_seed(Seek(&self.0[1..]))? {
                    Some(v) => found = v,
                    None => break,
                }
            } else if seq.next_element::<serde::de::IgnoredAny>()?.is_none() {
                break;
            }
            i += 1;
        }
        Ok(found)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// The most pieces a row signs (the table's test checks every row).
pub const MAX_PIECES: usize = 8;

/// The most signatures looked at in one request (see [`mac::MAX_SIGNATURES`]).
const MAX_SIGNATURES: usize = mac::MAX_SIGNATURES;

impl HmacCheck {
    fn decode(&self, text: &str) -> Option<Vec<u8>> {
        match self.rule.encoding {
            SignatureEncoding::Hex => hex::decode(text.trim()).ok(),
            SignatureEncoding::Base64 => B64.decode(text.trim()).ok(),
        }
    }

    fn encode(&self, tag: &[u8]) -> String {
        match self.rule.encoding {
            SignatureEncoding::Hex => hex::encode(tag),
            SignatureEncoding::Base64 => B64.encode(tag),
        }
    }

    /// The signatures a request offers, and the timestamp a pairs header carries.
    fn candidates<'r>(
        &self,
        req: &'r Request<'_>,
        doc: &mut Doc<'_>,
    ) -> Result<(Vec<Vec<u8>>, Option<&'r str>), VerifyError> {
        let first = || self.names[0].clone();
        if let SigFormat::BodyField(pointer) = self.rule.format {
            let sig = doc.field(pointer).ok_or(VerifyError::BadBody)?;
            return Ok((vec![self.decode(&sig).ok_or(VerifyError::BadBody)?], None));
        }
        let mut out = Vec::new();
        let mut pair_ts = None;
        let mut present = false;
        for name in &self.names {
            let value = match single_header(req.headers, name) {
                Ok(v) => v,
                Err(VerifyError::MissingHeader(_)) => continue,
                Err(e) => return Err(e),
            };
            present = true;
            let malformed = || VerifyError::MalformedHeader(name.clone());
            let mut offer = |text: &str| -> Result<(), VerifyError> {
                if out.len() == MAX_SIGNATURES {
                    return Err(VerifyError::TooManySignatures(name.clone(), MAX_SIGNATURES));
                }
                out.push(self.decode(text).ok_or_else(malformed)?);
                Ok(())
            };
            match self.rule.format {
                SigFormat::Single { prefix } => {
                    offer(value.strip_prefix(prefix).ok_or_else(malformed)?)?
                }
                SigFormat::List { prefix, separator } => {
                    for item in value.split(separator).map(str::trim) {
                        // Other versions' entries are skipped, as the provider says to.
                        if let Some(tag) = item.strip_prefix(prefix) {
                            offer(tag)?;
                        }
                    }
                }
                SigFormat::Pairs {
                    separator,
                    timestamp,
                    signature,
                } => {
                    for item in value.split(separator).map(str::trim) {
                        let (k, v) = item.split_once('=').ok_or_else(malformed)?;
                        if k == timestamp {
                            if pair_ts.is_some() {
                                return Err(malformed());
                            }
                            pair_ts = Some(v);
                        } else if k == signature {
                            offer(v)?;
                        }
                    }
                }
                SigFormat::BodyField(_) => unreachable!("handled above"),
            }
        }
        if !present {
            return Err(VerifyError::MissingHeader(first()));
        }
        if out.is_empty() {
            return Err(VerifyError::MalformedHeader(first()));
        }
        Ok((out, pair_ts))
    }

    /// The signed pieces, given the timestamp text, the URL and the body fields the row
    /// signs (in order), written into `out`; how many there are. No allocation: a row has at
    /// most [`MAX_PIECES`] pieces.
    fn parts<'p>(
        &self,
        req: &'p Request<'_>,
        timestamp: &'p str,
        url: &'p str,
        fields: &'p [String],
        out: &mut [&'p [u8]; MAX_PIECES],
    ) -> Result<usize, VerifyError> {
        let mut fields = fields.iter();
        for (i, (piece, name)) in self.rule.signed.iter().zip(&self.piece_names).enumerate() {
            out[i] = match piece {
                Piece::Body => req.body,
                Piece::Timestamp => timestamp.as_bytes(),
                Piece::Lit(s) => s.as_bytes(),
                Piece::Header(_) => match name {
                    Some(name) => single_header(req.headers, name)?.as_bytes(),
                    None => b"",
                },
                Piece::BodyField(_) => fields.next().map_or(&b""[..], |f| f.as_bytes()),
                Piece::Url => url.as_bytes(),
                Piece::Method => b"POST",
            };
        }
        Ok(self.rule.signed.len())
    }

    fn url(&self, path_and_query: &str) -> String {
        self.public_url
            .as_deref()
            .map(|base| format!("{base}{path_and_query}"))
            .unwrap_or_default()
    }

    /// The body fields the row signs, in order (read only for rows that sign some).
    fn fields(&self, doc: &mut Doc<'_>) -> Result<Vec<String>, VerifyError> {
        self.rule
            .signed
            .iter()
            .filter_map(|p| match p {
                Piece::BodyField(f) => Some(doc.field(f).ok_or(VerifyError::BadBody)),
                _ => None,
            })
            .collect()
    }

    fn verify(&self, req: &Request<'_>, doc: &mut Doc<'_>) -> Result<Verified, VerifyError> {
        let (candidates, pair_ts) = self.candidates(req, doc)?;
        let timestamp: Cow<'_, str> = match self.rule.timestamp {
            None => Cow::Borrowed(""),
            Some(stamp) => {
                let (text, malformed): (Cow<'_, str>, VerifyError) =
                    match (stamp.at, &self.stamp_name) {
                        (Locate::Header(_), Some(name)) => (
                            Cow::Borrowed(single_header(req.headers, name)?),
                            VerifyError::MalformedHeader(name.clone()),
                        ),
                        (Locate::Header(_) | Locate::Nowhere, _) => {
                            let name = &self.names[0];
                            let ts = pair_ts
                                .ok_or_else(|| VerifyError::MalformedHeader(name.clone()))?;
                            (
                                Cow::Borrowed(ts),
                                VerifyError::MalformedHeader(name.clone()),
                            )
                        }
                        (Locate::Body(p), _) => (
                            Cow::Owned(doc.field(p).ok_or(VerifyError::BadBody)?),
                            VerifyError::BadBody,
                        ),
                    };
                let at = parse_time(&text, stamp.format).ok_or(malformed)?;
                let skew = match req.now.duration_since(at) {
                    Ok(behind) => behind,
                    Err(ahead) => ahead.duration(),
                };
                if skew > self.tolerance {
                    return Err(VerifyError::StaleTimestamp);
                }
                text
            }
        };
        let path_and_query = req.uri.path_and_query().map_or("/", |p| p.as_str());
        let url = self.url(path_and_query);
        let fields = self.fields(doc)?;
        let mut buf: [&[u8]; MAX_PIECES] = [b""; MAX_PIECES];
        let n = self.parts(req, &timestamp, &url, &fields, &mut buf)?;
        let parts = &buf[..n];
        let matched = match candidates.as_slice() {
            // The usual case: one signature, checked against each key without a copy.
            [one] => mac::any_matches(self.rule.algorithm, &self.keys, parts, one),
            many => {
                let tags = mac::tags(self.rule.algorithm, &self.keys, parts);
                many.iter()
                    .fold(false, |found, c| mac::is_any_of(&tags, c) | found)
            }
        };
        if !matched {
            return Err(VerifyError::BadSignature);
        }
        Ok(Verified::default())
    }

    /// The signature headers for `body`; `None` if the signature lives in the body (the
    /// provider writes it there).
    fn sign(
        &self,
        body: &[u8],
        path_and_query: &str,
        now: SystemTime,
        delivery: &str,
    ) -> Option<Vec<(String, String)>> {
        let header = *self.rule.headers.first()?;
        let ts = self.rule.timestamp.map(|s| (s, format_time(now, s.format)));
        let url = self.url(path_and_query);
        let mut extra: Vec<(String, String)> = Vec::new();
        let parts: Vec<Vec<u8>> = self
            .rule
            .signed
            .iter()
            .map(|piece| match piece {
                Piece::Body => body.to_vec(),
                Piece::Timestamp => ts
                    .as_ref()
                    .map(|(_, t)| t.as_bytes().to_vec())
                    .unwrap_or_default(),
                Piece::Lit(s) => s.as_bytes().to_vec(),
                Piece::Header(h) => {
                    // A signed header is the delivery id (Twitch's message id).
                    extra.push((h.to_string(), delivery.to_string()));
                    delivery.as_bytes().to_vec()
                }
                Piece::BodyField(_) => Vec::new(),
                Piece::Url => url.as_bytes().to_vec(),
                Piece::Method => b"POST".to_vec(),
            })
            .collect();
        let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        let tag = self.encode(&mac::sign(self.rule.algorithm, &self.keys[0], &parts));
        let value = match self.rule.format {
            SigFormat::Single { prefix } | SigFormat::List { prefix, .. } => {
                format!("{prefix}{tag}")
            }
            SigFormat::Pairs {
                separator,
                timestamp,
                signature,
            } => {
                let t = ts.as_ref().map(|(_, t)| t.as_str()).unwrap_or_default();
                format!("{timestamp}={t}{separator}{signature}={tag}")
            }
            SigFormat::BodyField(_) => return None,
        };
        let mut headers = vec![(header.to_string(), value)];
        if let Some((
            Stamp {
                at: Locate::Header(h),
                ..
            },
            t,
        )) = ts.as_ref().map(|(s, t)| (*s, t))
        {
            headers.push((h.to_string(), t.clone()));
        }
        headers.extend(extra);
        Some(headers)
    }
}

/// A timestamp as written by a provider, as a point in time.
fn parse_time(text: &str, format: TimeFormat) -> Option<SystemTime> {
    let digits = |t: &str| !t.is_empty() && t.len() <= 15 && t.bytes().all(|b| b.is_ascii_digit());
    match format {
        TimeFormat::UnixSeconds if digits(text) => {
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(text.parse().ok()?))
        }
        TimeFormat::UnixMillis if digits(text) => {
            Some(SystemTime::UNIX_EPOCH + Duration::from_millis(text.parse().ok()?))
        }
        TimeFormat::Rfc3339 => parse_rfc3339(text),
        _ => None,
    }
}

/// `now` written as a provider would write it.
fn format_time(now: SystemTime, format: TimeFormat) -> String {
    let since = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    match format {
        TimeFormat::UnixSeconds => since.as_secs().to_string(),
        TimeFormat::UnixMillis => since.as_millis().to_string(),
        TimeFormat::Rfc3339 => humantime::format_rfc3339_seconds(now).to_string(),
    }
}

/// RFC 3339 (`2024-05-01T12:00:00Z`, `2024-05-01T05:00:00.123456789-07:00`).
fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    if b.len() < 20
        || b.len() > 40
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = text.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &text[19..];
    let mut nanos = 0u32;
    if let Some(frac) = rest.strip_prefix('.') {
        let len = frac.bytes().take_while(u8::is_ascii_digit).count();
        if len == 0 || len > 9 {
            return None;
        }
        nanos = frac[..len].parse::<u32>().ok()? * 10u32.pow(9 - len as u32);
        rest = &frac[len..];
    }
    let offset_secs: i64 = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && rest.as_bytes()[3] == b':' => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let h = num(text.len() - 5..text.len() - 3)?;
            let m = num(text.len() - 2..text.len())?;
            sign * (h * 3600 + m * 60)
        }
        _ => return None,
    };
    // Days from the civil date (proleptic Gregorian), after Howard Hinnant's algorithm.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    let secs = u64::try_from(secs).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Dur, PRESETS, Scheme, Secret, SecretList};
    use crate::verify::Verifier;
    use http::{HeaderMap, Uri};

    fn config(name: &str, secrets: &[&str]) -> VerifyConfig {
        let mut c = crate::verify::tests::config(Scheme::from_name(name).expect("a preset"));
        c.secret = Some(SecretList(
            secrets.iter().map(|s| Secret::new(*s)).collect(),
        ));
        c
    }

    fn verifier(name: &str, secrets: &[&str]) -> Verifier {
        let mut c = config(name, secrets);
        if let Scheme::Preset(p) = c.scheme {
            let keys = allowed_keys(p);
            if keys.contains(&"public_url") {
                c.public_url = Some("https://hooks.example.com".into());
            }
            if keys.contains(&"username") {
                c.username = Some("postmark".into());
            }
        }
        Verifier::from_config(&c).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn request(
        v: &Verifier,
        headers: &[(&str, &str)],
        body: &[u8],
        uri: &str,
        now: SystemTime,
    ) -> Result<Verified, VerifyError> {
        let mut h = HeaderMap::new();
        for (k, val) in headers {
            h.append(
                HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()).unwrap(),
                val.parse().unwrap(),
            );
        }
        let uri: Uri = uri.parse().unwrap();
        v.verify(&Request {
            headers: &h,
            body,
            uri: &uri,
            now,
        })
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    /// Keys for the asymmetric rows: a fresh key pair, the secret as the provider shows the
    /// public key, and a signer.
    type Signer = Box<dyn Fn(&[u8]) -> String>;

    fn key_pair(name: &str) -> (String, Signer) {
        use ring::signature::{
            ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
        };
        let rng = ring::rand::SystemRandom::new();
        if name.starts_with("discord") {
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
            let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
            let public = hex::encode(pair.public_key().as_ref());
            (
                public,
                Box::new(move |m| hex::encode(pair.sign(m).as_ref())),
            )
        } else {
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
            let pair =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
                    .unwrap();
            let spki = [&P256_SPKI_PREFIX[..], pair.public_key().as_ref()].concat();
            (
                B64.encode(spki),
                Box::new(move |m| {
                    B64.encode(
                        pair.sign(&ring::rand::SystemRandom::new(), m)
                            .unwrap()
                            .as_ref(),
                    )
                }),
            )
        }
    }

    #[test]
    fn every_preset_accepts_what_its_own_signer_makes_and_refuses_a_tampered_body() {
        let now = SystemTime::now();
        let body = br#"{"id":"evt_1","type":"x","event":{"id":"e1","type":"x"},"signature":{"timestamp":"0","token":"t","signature":"00"}}"#;
        for preset in PRESETS {
            let asymmetric = matches!(preset.check, Check::Ed25519 { .. } | Check::Ecdsa { .. });
            let in_body = matches!(&preset.check, Check::Hmac(r) if matches!(r.format, SigFormat::BodyField(_)));
            if asymmetric || in_body {
                continue; // covered by their own tests below
            }
            let secret = if preset.name == "airtable" {
                "c2VjcmV0LWJ5dGVz"
            } else {
                "s3cr3t-value"
            };
            let secret = if matches!(preset.check, Check::Svix) {
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
            } else {
                secret
            };
            let v = verifier(preset.name, &[secret]);
            // A timestamp in the body is written by the sender, as Linear does.
            let stamped;
            let body: &[u8] = match &preset.check {
                Check::Hmac(HmacRule {
                    timestamp:
                        Some(Stamp {
                            at: Locate::Body(_),
                            format: TimeFormat::UnixMillis,
                            ..
                        }),
                    ..
                }) => {
                    let ms = now
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .unwrap()
                        .as_millis();
                    stamped = format!(r#"{{"webhookTimestamp":{ms},"type":"Issue"}}"#);
                    stamped.as_bytes()
                }
                _ => body,
            };
            let signed = v
                .sign(body, Some("thing.happened"), "/hooks/r?x=1", now)
                .unwrap_or_else(|e| panic!("{}: {e}", preset.name));
            let headers: Vec<(&str, &str)> = signed
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            request(&v, &headers, body, &signed.path_and_query, now)
                .unwrap_or_else(|e| panic!("{}: {e}", preset.name));
            let tampered = request(&v, &headers, b"{}", &signed.path_and_query, now);
            let credential = matches!(preset.check, Check::Token { .. } | Check::Basic);
            assert_eq!(
                tampered.is_err(),
                !credential,
                "{}: {tampered:?}",
                preset.name
            );
            let other = verifier(
                preset.name,
                &[if preset.name == "airtable" {
                    "b3RoZXI="
                } else if matches!(preset.check, Check::Svix) {
                    "whsec_dGhlIG90aGVyIHNlY3JldA=="
                } else {
                    "another"
                }],
            );
            assert!(
                request(&other, &headers, body, &signed.path_and_query, now).is_err(),
                "{}: another secret's request was accepted",
                preset.name
            );
            assert!(
                request(&v, &[], body, &signed.path_and_query, now).is_err(),
                "{}: an unsigned request was accepted",
                preset.name
            );
        }
    }

    #[test]
    fn razorpay_published_vector_verifies() {
        // razorpay/razorpay-node test/utils/razorpay-utils.spec.js
        let v = verifier("razorpay", &["123456"]);
        let sig = "2fe04e22977002e6c7cb553adab8b460cb9e2a4970d5953cb27a8472752e3bbc";
        let body = br#"{"a":1,"b":2,"c":{"d":3}}"#;
        assert!(request(&v, &[("X-Razorpay-Signature", sig)], body, "/", at(0)).is_ok());
        assert_eq!(
            request(
                &v,
                &[("X-Razorpay-Signature", sig)],
                br#"{"a":1,"b":2,"c":{"d":4}}"#,
                "/",
                at(0)
            )
            .unwrap_err(),
            VerifyError::BadSignature
        );
    }

    #[test]
    fn coinbase_commerce_published_vector_verifies() {
        // coinbase/coinbase-commerce-node test/testWebhook.spec.js
        let v = verifier(
            "coinbase-commerce",
            &["30291a20-0bd1-4267-9b0f-e6e7b123c0bf"],
        );
        let body = r#"{"id":1,"scheduled_for":"2017-01-31T20:50:02Z","attempt_number":1,"event":{"id":"24934862-d980-46cb-9402-43c81b0cdba6","type":"charge:created","api_version":"2018-03-22","created_at":"2017-01-31T20:49:02Z","data":{"code":"66BEOV2A","name":"The Sovereign Individual","description":"Mastering the Transition to the Information Age","hosted_url":"https://commerce.coinbase.com/charges/66BEOV2A","created_at":"2017-01-31T20:49:02Z","expires_at":"2017-01-31T21:04:02Z","timeline":[{"time":"2017-01-31T20:49:02Z","status":"NEW"}],"metadata":{},"pricing_type":"no_price","payments":[],"addresses":{"bitcoin":"0000000000000000000000000000000000","ethereum":"0x0000000000000000000000000000000000000000","litecoin":"3000000000000000000000000000000000","bitcoincash":"bitcoincash:000000000000000000000000000000000000000000"}}}}"#;
        let sig = "8be7742c7d372f08a6a3224edadf18a22b65fa9e28f3f2de97376cdaa092590d";
        assert!(
            request(
                &v,
                &[("X-CC-Webhook-Signature", sig)],
                body.as_bytes(),
                "/",
                at(0)
            )
            .is_ok()
        );
    }

    #[test]
    fn box_published_vectors_verify_with_either_key_and_check_the_delivery_time() {
        // box/box-node-sdk tests/lib/managers/webhooks-test.js
        let body = br#"{"type":"webhook_event","webhook":{"id":"1234567890"},"trigger":"FILE.UPLOADED","source":{"id":"1234567890","type":"file","name":"Test.txt"}}"#;
        let ts = "2020-01-01T00:00:00-07:00";
        let when = parse_rfc3339(ts).unwrap() + Duration::from_secs(60);
        let v = verifier("box", &["SamplePrimaryKey", "SampleSecondaryKey"]);
        let primary = (
            "box-signature-primary",
            "6TfeAW3A1PASkgboxxA5yqHNKOwFyMWuEXny/FPD5hI=",
        );
        let secondary = (
            "box-signature-secondary",
            "v+1CD1Jdo3muIcbpv5lxxgPglOqMfsNHPV899xWYydo=",
        );
        let stamp = ("box-delivery-timestamp", ts);
        assert!(request(&v, &[primary, stamp], body, "/", when).is_ok());
        assert!(request(&v, &[secondary, stamp], body, "/", when).is_ok());
        let only_secondary_key = verifier("box", &["SampleSecondaryKey"]);
        assert!(
            request(
                &only_secondary_key,
                &[primary, secondary, stamp],
                body,
                "/",
                when
            )
            .is_ok()
        );
        assert_eq!(
            request(
                &v,
                &[primary, stamp],
                body,
                "/",
                when + Duration::from_secs(3600)
            )
            .unwrap_err(),
            VerifyError::StaleTimestamp
        );
    }

    #[test]
    fn twitch_vector_verifies_and_the_challenge_is_answered_as_text() {
        // twitch-rs/twitch_api's eventsub verification test.
        let body = r#"{"subscription":{"id":"ae2ff348-e102-16be-a3eb-6830c1bf38d2","status":"enabled","type":"channel.follow","version":"1","condition":{"broadcaster_user_id":"44429626"},"transport":{"method":"webhook","callback":"null"},"created_at":"2021-02-19T23:47:00.7621315Z"},"event":{"user_id":"28408015","user_login":"testFromUser","user_name":"testFromUser","broadcaster_user_id":"44429626","broadcaster_user_login":"44429626","broadcaster_user_name":"testBroadcaster"}}"#;
        let v = verifier("twitch", &["secretabcd"]);
        let ts = "2021-02-19T23:47:00.8091512Z";
        let headers = [
            (
                "Twitch-Eventsub-Message-Id",
                "ae2ff348-e102-16be-a3eb-6830c1bf38d2",
            ),
            ("Twitch-Eventsub-Message-Timestamp", ts),
            (
                "Twitch-Eventsub-Message-Signature",
                "sha256=d10f5bd9474b7ac7bd7105eb79c2d52768b4d0cd2a135982c3bf5a1d59a78823",
            ),
        ];
        let now = parse_rfc3339(ts).unwrap();
        let ok = request(&v, &headers, body.as_bytes(), "/", now).unwrap();
        assert_eq!(
            ok.delivery_id.as_deref(),
            Some("ae2ff348-e102-16be-a3eb-6830c1bf38d2")
        );
        assert_eq!(
            request(
                &v,
                &headers,
                body.as_bytes(),
                "/",
                now + Duration::from_secs(11 * 60)
            )
            .unwrap_err(),
            VerifyError::StaleTimestamp
        );
        let mut h = HeaderMap::new();
        h.insert(
            "twitch-eventsub-message-type",
            "webhook_callback_verification".parse().unwrap(),
        );
        assert_eq!(
            v.handshake(
                &h,
                br#"{"challenge":"pogchamp-kappa-360noscope-vohiyo","subscription":{}}"#
            ),
            Some(Answer::Text("pogchamp-kappa-360noscope-vohiyo".into()))
        );
        h.insert(
            "twitch-eventsub-message-type",
            "revocation".parse().unwrap(),
        );
        assert_eq!(
            v.handshake(&h, br#"{"challenge":"c","subscription":{}}"#),
            None,
            "revocations are events"
        );
    }

    #[test]
    fn x_published_vectors_verify_and_the_crc_is_answered() {
        // xdevplatform/autohook test/signature.js
        let v = verifier("x", &["test"]);
        for (body, sig) in [
            (
                &b"test=1&other_test=2"[..],
                "sha256=25Cu3iwbbiqBTwQRzcKJZwisjf736V2Q8UaTlkfLSoc=",
            ),
            (
                br#"{"test_number":1,"test_string":"two"}"#,
                "sha256=YWHphPn/JFq43jkF0y4/w8R/SelmLjvpunhVFY8JhlI=",
            ),
        ] {
            assert!(
                request(
                    &v,
                    &[("x-twitter-webhooks-signature", sig)],
                    body,
                    "/",
                    at(0)
                )
                .is_ok()
            );
        }
        // The CRC answer is base64(HMAC-SHA256(consumer secret, token)), as for events.
        let query = std::collections::HashMap::from([(
            "crc_token".to_string(),
            "test=1&other_test=2".to_string(),
        )]);
        let uri = Uri::from_static("/");
        assert!(
            matches!(
                v.get_handshake(&query, &HeaderMap::new(), &uri),
                crate::verify::GetHandshake::BadRequest(_)
            ),
            "a token shaped like an event body is refused"
        );
        let query = std::collections::HashMap::from([(
            "crc_token".to_string(),
            "9b4507b3-9040-4669-9ca3-6b94edb50553".to_string(),
        )]);
        let crate::verify::GetHandshake::Json(answer) =
            v.get_handshake(&query, &HeaderMap::new(), &uri)
        else {
            panic!("no CRC answer")
        };
        let expected = B64.encode(mac::sign(
            crate::config::HmacAlgorithm::Sha256,
            b"test",
            &[b"9b4507b3-9040-4669-9ca3-6b94edb50553"],
        ));
        assert_eq!(answer["response_token"], format!("sha256={expected}"));
        for json_like in [r#"{"a":1}"#, "[1]", &"a".repeat(200)] {
            let query =
                std::collections::HashMap::from([("crc_token".to_string(), json_like.to_string())]);
            assert!(
                matches!(
                    v.get_handshake(&query, &HeaderMap::new(), &uri),
                    crate::verify::GetHandshake::BadRequest(_)
                ),
                "{json_like}"
            );
        }
    }

    #[test]
    fn svix_published_vector_verifies_for_clerk_and_resend() {
        for name in ["clerk", "resend"] {
            let v = verifier(name, &["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]);
            let headers = [
                ("svix-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
                ("svix-timestamp", "1614265330"),
                (
                    "svix-signature",
                    "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
                ),
            ];
            let ok = request(
                &v,
                &headers,
                br#"{"test": 2432232314}"#,
                "/",
                at(1_614_265_330),
            )
            .unwrap();
            assert_eq!(
                ok.delivery_id.as_deref(),
                Some("msg_p5jXN8AQM9LWM0D4loKWxJek"),
                "{name}"
            );
            assert!(
                request(
                    &v,
                    &headers,
                    br#"{"test": 2432232315}"#,
                    "/",
                    at(1_614_265_330)
                )
                .is_err()
            );
        }
    }

    #[test]
    fn sendgrid_published_vector_verifies() {
        // sendgrid/sendgrid-nodejs packages/eventwebhook/src/eventwebhook.spec.js
        let key = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g==";
        let v = verifier("sendgrid", &[key]);
        let body = "[{\"email\":\"hello@world.com\",\"event\":\"dropped\",\"reason\":\"Bounced Address\",\"sg_event_id\":\"ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA\",\"sg_message_id\":\"LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0\",\"smtp-id\":\"<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>\",\"timestamp\":1600112492}]\r\n";
        let headers = [
            (
                "X-Twilio-Email-Event-Webhook-Signature",
                "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15TluLtEZtM=",
            ),
            ("X-Twilio-Email-Event-Webhook-Timestamp", "1600112502"),
        ];
        assert!(request(&v, &headers, body.as_bytes(), "/", at(1_600_112_502)).is_ok());
        assert_eq!(
            request(
                &v,
                &headers,
                body.trim_end().as_bytes(),
                "/",
                at(1_600_112_502)
            )
            .unwrap_err(),
            VerifyError::BadSignature
        );
        assert!(Verifier::from_config(&config("sendgrid", &["bm90IGEga2V5"])).is_err());
    }

    #[test]
    fn asymmetric_rows_verify_signatures_from_the_providers_key_and_answer_pings() {
        for name in ["discord", "discord-events", "sendgrid"] {
            let (public, sign) = key_pair(name);
            let v = verifier(name, &[public.as_str()]);
            let (sig_header, ts_header) =
                match PRESETS.iter().find(|p| p.name == name).unwrap().check {
                    Check::Ed25519 {
                        signature,
                        timestamp,
                    }
                    | Check::Ecdsa {
                        signature,
                        timestamp,
                    } => (signature, timestamp),
                    _ => unreachable!(),
                };
            let now = 1_700_000_000u64;
            let ping: &[u8] = if name == "discord" {
                br#"{"type":1}"#
            } else {
                br#"{"type":0}"#
            };
            let sig = sign(&[now.to_string().as_bytes(), ping].concat());
            let headers = [(sig_header, sig.as_str()), (ts_header, "1700000000")];
            request(&v, &headers, ping, "/", at(now)).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(
                request(&v, &headers, br#"{"type":2}"#, "/", at(now)).unwrap_err(),
                VerifyError::BadSignature,
                "{name}"
            );
            assert_eq!(
                request(&v, &headers, ping, "/", at(now + 3600)).unwrap_err(),
                VerifyError::StaleTimestamp,
                "{name}"
            );
            let answer = v.handshake(&HeaderMap::new(), ping);
            match name {
                "discord" => assert_eq!(answer, Some(Answer::Json(serde_json::json!({"type": 1})))),
                "discord-events" => assert_eq!(answer, Some(Answer::NoContent)),
                _ => assert_eq!(answer, None),
            }
            assert!(
                v.sign(ping, None, "/", at(now)).is_err(),
                "{name}: only the provider signs"
            );
        }
        // An Interactions route does not swallow an Events PING (type 0), nor the reverse.
        let (public, _) = key_pair("discord");
        assert_eq!(
            verifier("discord", &[public.as_str()]).handshake(&HeaderMap::new(), br#"{"type":0}"#),
            None
        );
        assert_eq!(
            verifier("discord-events", &[public.as_str()])
                .handshake(&HeaderMap::new(), br#"{"type":1}"#),
            None
        );
    }

    #[test]
    fn mailgun_signature_in_the_body_verifies() {
        // Mailgun's documented formula: hex HMAC-SHA256(signing key, timestamp + token).
        let key = "key-mailgun-signing";
        let (ts, token) = (
            "1700000000",
            "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0",
        );
        let tag = hex::encode(mac::sign(
            crate::config::HmacAlgorithm::Sha256,
            key.as_bytes(),
            &[ts.as_bytes(), token.as_bytes()],
        ));
        let body = format!(
            r#"{{"signature":{{"timestamp":"{ts}","token":"{token}","signature":"{tag}"}},"event-data":{{"event":"delivered"}}}}"#
        );
        let v = verifier("mailgun", &[key]);
        let ok = request(&v, &[], body.as_bytes(), "/", at(1_700_000_000)).unwrap();
        assert_eq!(ok.event_type.as_deref(), Some("delivered"));
        assert_eq!(ok.delivery_id.as_deref(), Some(token));
        assert_eq!(
            request(
                &v,
                &[],
                body.replace(token, "b8ce").as_bytes(),
                "/",
                at(1_700_000_000)
            )
            .unwrap_err(),
            VerifyError::BadSignature
        );
        assert_eq!(
            request(&v, &[], body.as_bytes(), "/", at(1_700_009_000)).unwrap_err(),
            VerifyError::StaleTimestamp
        );
    }

    #[test]
    fn the_tolerance_of_a_timestamped_preset_can_be_set_on_the_route() {
        let mut c = config("calendly", &["k"]);
        c.tolerance = Some(Dur(Duration::from_secs(3600)));
        let v = Verifier::from_config(&c).unwrap();
        let signed = v.sign(b"{}", None, "/", at(1_000_000)).unwrap();
        let headers: Vec<(&str, &str)> = signed
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert!(request(&v, &headers, b"{}", "/", at(1_000_000 + 1800)).is_ok());
        let strict = verifier("calendly", &["k"]);
        assert_eq!(
            request(&strict, &headers, b"{}", "/", at(1_000_000 + 1800)).unwrap_err(),
            VerifyError::StaleTimestamp
        );
    }

    #[test]
    fn a_skimmed_field_reads_as_serde_json_value_pointer_would() {
        let docs = [
            r#"{"a":{"b":[1,{"c":"x"},3]},"n":12.50,"big":18446744073709551615,"t":true}"#,
            r#"{"a/b":{"m~n":"esc"},"dup":"first","dup":"last","s":"tab\tand \u00e9"}"#,
            r#"[{"event":"delivered"},{"event":"open"}]"#,
            r#"{"a":1} trailing"#,
            r#"not json"#,
            r#"{"obj":{"deep":null}}"#,
        ];
        let pointers = [
            "",
            "/a",
            "/a/b/0",
            "/a/b/1/c",
            "/a/b/5",
            "/n",
            "/big",
            "/t",
            "/a~1b/m~0n",
            "/dup",
            "/s",
            "/0/event",
            "/1/event",
            "/2/event",
            "/obj/deep",
            "/missing",
            "/a/b/x",
        ];
        for doc in docs {
            let value: Option<serde_json::Value> = serde_json::from_str(doc).ok();
            for pointer in pointers {
                let expected = value.as_ref().and_then(|v| match v.pointer(pointer)? {
                    serde_json::Value::String(s) => Some(s.clone()),
                    serde_json::Value::Number(n) => Some(n.to_string()),
                    _ => None,
                });
                assert_eq!(
                    Doc::new(doc.as_bytes()).field(pointer),
                    expected,
                    "{doc} {pointer}"
                );
            }
        }
    }

    #[test]
    fn rfc3339_timestamps_parse_with_fractions_and_offsets() {
        let t = |s: &str| parse_rfc3339(s).map(unix_secs);
        assert_eq!(t("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(t("2024-05-01T12:00:00Z"), Some(1_714_564_800));
        assert_eq!(
            t("2024-05-01T05:00:00.123456789-07:00"),
            Some(1_714_564_800)
        );
        assert_eq!(t("2024-05-01T14:00:00+02:00"), Some(1_714_564_800));
        assert_eq!(t("2000-02-29T00:00:00Z"), Some(951_782_400));
        for bad in [
            "2024-05-01 12:00:00",
            "2024-13-01T12:00:00Z",
            "2024-05-01T12:00:00",
            "2024-05-01T12:00:00.Z",
            "2024-05-01T12:00:00+0200",
            "yyyy-05-01T12:00:00Z",
        ] {
            assert_eq!(t(bad), None, "{bad}");
        }
    }
}
