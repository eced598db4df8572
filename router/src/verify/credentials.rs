//! Shared credentials: a `token` in a header or query parameter, or HTTP `basic`
//! authentication. Compared in constant time against every configured secret.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use http::HeaderName;
use subtle::ConstantTimeEq;

use super::{BadSecret, Request, Signed, Verified, VerifyError};
use crate::config::VerifyConfig;

/// Whether `presented` equals any of `secrets`, in time independent of which and where.
pub(super) fn any_equal(secrets: &[Vec<u8>], presented: &[u8]) -> bool {
    secrets.iter().fold(false, |found, s| {
        bool::from(s.as_slice().ct_eq(presented)) | found
    })
}

/// Where a token travels.
#[derive(Debug, Clone)]
enum Place {
    Header { name: HeaderName, prefix: String },
    Query(String),
}

/// A shared secret token.
pub struct Token {
    place: Place,
    secrets: Vec<Vec<u8>>,
}

impl Token {
    /// The header the token travels in, if it travels in one.
    pub fn header(&self) -> Option<&HeaderName> {
        match &self.place {
            Place::Header { name, .. } => Some(name),
            Place::Query(_) => None,
        }
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("place", &self.place)
            .field("secrets", &"<redacted>")
            .finish()
    }
}

impl Token {
    /// From `{ scheme = "token", header = "X-Token", prefix = "..." }` or `{ query = "token" }`.
    pub fn new(c: &VerifyConfig, secrets: Vec<Vec<u8>>) -> Result<Token, BadSecret> {
        let place = match (&c.header, &c.query) {
            (Some(h), None) => Place::Header {
                name: HeaderName::from_bytes(h.as_bytes())
                    .map_err(|_| BadSecret(format!("{h:?} is not a valid header name")))?,
                prefix: c.prefix.clone().unwrap_or_default(),
            },
            (None, Some(q)) if c.prefix.is_none() => Place::Query(q.clone()),
            (None, Some(_)) => {
                return Err(BadSecret(
                    "prefix applies only to a token in a header".into(),
                ));
            }
            _ => {
                return Err(BadSecret(
                    "scheme \"token\" needs exactly one of header or query".into(),
                ));
            }
        };
        Ok(Token { place, secrets })
    }

    /// A token in `name` after `prefix` (a preset's fixed place).
    pub fn in_header(name: HeaderName, prefix: &str, secrets: Vec<Vec<u8>>) -> Token {
        Token {
            place: Place::Header {
                name,
                prefix: prefix.to_string(),
            },
            secrets,
        }
    }

    /// Adds the first token where it belongs.
    pub fn sign(&self, path_and_query: &str) -> Signed {
        let token = String::from_utf8_lossy(&self.secrets[0]).into_owned();
        match &self.place {
            Place::Header { name, prefix } => Signed {
                headers: vec![(name.to_string(), format!("{prefix}{token}"))],
                path_and_query: path_and_query.to_string(),
            },
            Place::Query(q) => {
                let sep = if path_and_query.contains('?') {
                    '&'
                } else {
                    '?'
                };
                let pair: String = form_urlencoded::Serializer::new(String::new())
                    .append_pair(q, &token)
                    .finish();
                Signed {
                    headers: vec![],
                    path_and_query: format!("{path_and_query}{sep}{pair}"),
                }
            }
        }
    }

    /// Checks the token.
    pub fn verify(&self, req: &Request<'_>) -> Result<Verified, VerifyError> {
        let presented: Vec<u8> = match &self.place {
            Place::Header { name, prefix } => {
                let value = req
                    .headers
                    .get(name)
                    .ok_or(VerifyError::MissingCredentials)?;
                let value = value.as_bytes();
                value
                    .strip_prefix(prefix.as_bytes())
                    .ok_or(VerifyError::BadCredentials)?
                    .to_vec()
            }
            Place::Query(q) => req
                .uri
                .query()
                .and_then(|query| form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == q))
                .map(|(_, v)| v.into_owned().into_bytes())
                .ok_or(VerifyError::MissingCredentials)?,
        };
        if any_equal(&self.secrets, &presented) {
            Ok(Verified::default())
        } else {
            Err(VerifyError::BadCredentials)
        }
    }
}

/// HTTP Basic authentication with one user name and one or more passwords.
pub struct Basic {
    username: Vec<u8>,
    passwords: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Basic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Basic")
            .field("passwords", &"<redacted>")
            .finish()
    }
}

impl Basic {
    /// From `{ scheme = "basic", username = "...", secret = "<password>" }`.
    pub fn new(c: &VerifyConfig, passwords: Vec<Vec<u8>>) -> Result<Basic, BadSecret> {
        let username = c
            .username
            .as_deref()
            .ok_or_else(|| BadSecret("scheme \"basic\" needs username".into()))?;
        if username.contains(':') {
            return Err(BadSecret("a basic username cannot contain ':'".into()));
        }
        Ok(Basic {
            username: username.as_bytes().to_vec(),
            passwords,
        })
    }

    /// The `Authorization` header with the first password.
    pub fn sign_headers(&self) -> Vec<(String, String)> {
        let mut creds = self.username.clone();
        creds.push(b':');
        creds.extend_from_slice(&self.passwords[0]);
        vec![(
            "authorization".into(),
            format!("Basic {}", B64.encode(creds)),
        )]
    }

    /// Checks `Authorization: Basic ...`.
    pub fn verify(&self, req: &Request<'_>) -> Result<Verified, VerifyError> {
        let value = req
            .headers
            .get(http::header::AUTHORIZATION)
            .ok_or(VerifyError::MissingCredentials)?;
        let encoded = value
            .as_bytes()
            .strip_prefix(b"Basic ")
            .ok_or(VerifyError::BadCredentials)?;
        let decoded = B64
            .decode(encoded)
            .map_err(|_| VerifyError::BadCredentials)?;
        let colon = decoded
            .iter()
            .position(|b| *b == b':')
            .ok_or(VerifyError::BadCredentials)?;
        let (user, pass) = (&decoded[..colon], &decoded[colon + 1..]);
        let user_ok = bool::from(self.username.as_slice().ct_eq(user));
        let pass_ok = any_equal(&self.passwords, pass);
        if user_ok & pass_ok {
            Ok(Verified::default())
        } else {
            Err(VerifyError::BadCredentials)
        }
    }
}
