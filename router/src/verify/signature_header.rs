//! One header holding an HMAC of the raw body: GitHub (`X-Hub-Signature-256: sha256=<hex>`),
//! Shopify (`X-Shopify-Hmac-Sha256: <base64>`), and the configurable generic `hmac` scheme
//! (algorithm, header, hex or base64, prefix, and optionally a signed timestamp).

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use http::HeaderName;

use super::{
    BadSecret, Request, Verified, VerifyError, check_timestamp, delivery_id, mac, single_header,
};
use crate::config::{HmacAlgorithm, SignatureEncoding, VerifyConfig};

/// What is signed: the body alone, or a template over a timestamp header and the body.
#[derive(Debug, Clone)]
enum Content {
    Body,
    Template {
        timestamp_header: HeaderName,
        /// The template split around `{timestamp}` and `{body}`: literal and placeholder parts.
        parts: Vec<Part>,
        tolerance: Duration,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Timestamp,
    Body,
}

/// Verifies `<prefix><signature>` in one header.
pub struct SignatureHeader {
    header: HeaderName,
    keys: Vec<Vec<u8>>,
    algorithm: HmacAlgorithm,
    encoding: SignatureEncoding,
    prefix: String,
    content: Content,
    /// Header carrying the provider's delivery id, for dedup.
    delivery_id_header: Option<&'static str>,
    /// Header carrying the provider's event type, for `hookyard send`.
    event_type_header: Option<&'static str>,
}

impl std::fmt::Debug for SignatureHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignatureHeader")
            .field("header", &self.header)
            .field("keys", &"<redacted>")
            .field("algorithm", &self.algorithm)
            .finish()
    }
}

fn parse_template(t: &str) -> Result<Vec<Part>, BadSecret> {
    let mut parts = Vec::new();
    let mut rest = t;
    while !rest.is_empty() {
        let next = [("{timestamp}", Part::Timestamp), ("{body}", Part::Body)]
            .into_iter()
            .filter_map(|(p, part)| rest.find(p).map(|i| (i, p.len(), part)))
            .min_by_key(|(i, _, _)| *i);
        match next {
            Some((i, len, part)) => {
                if i > 0 {
                    parts.push(Part::Literal(rest[..i].to_string()));
                }
                parts.push(part);
                rest = &rest[i + len..];
            }
            None => {
                parts.push(Part::Literal(rest.to_string()));
                rest = "";
            }
        }
    }
    if parts.iter().filter(|p| **p == Part::Body).count() != 1 {
        return Err(BadSecret(
            "signed_content must contain {body} exactly once".into(),
        ));
    }
    Ok(parts)
}

impl SignatureHeader {
    /// GitHub: `X-Hub-Signature-256: sha256=<hex>`; dedup on `X-GitHub-Delivery`.
    pub fn github(keys: Vec<Vec<u8>>) -> SignatureHeader {
        SignatureHeader {
            header: HeaderName::from_static("x-hub-signature-256"),
            keys,
            algorithm: HmacAlgorithm::Sha256,
            encoding: SignatureEncoding::Hex,
            prefix: "sha256=".into(),
            content: Content::Body,
            delivery_id_header: Some("x-github-delivery"),
            event_type_header: Some("x-github-event"),
        }
    }

    /// Meta: `X-Hub-Signature-256: sha256=<hex>` over the body, with the app secret; Meta
    /// sends no delivery id.
    pub fn meta(keys: Vec<Vec<u8>>) -> SignatureHeader {
        SignatureHeader {
            delivery_id_header: None,
            event_type_header: None,
            ..SignatureHeader::github(keys)
        }
    }

    /// Dropbox: `X-Dropbox-Signature: <hex>` over the body, with the app secret.
    pub fn dropbox(keys: Vec<Vec<u8>>) -> SignatureHeader {
        SignatureHeader {
            header: HeaderName::from_static("x-dropbox-signature"),
            prefix: String::new(),
            delivery_id_header: None,
            event_type_header: None,
            ..SignatureHeader::github(keys)
        }
    }

    /// Zoom: `x-zm-signature: v0=<hex>` over `v0:{x-zm-request-timestamp}:{body}`, with the
    /// timestamp checked against `tolerance`.
    pub fn zoom(keys: Vec<Vec<u8>>, tolerance: Duration) -> SignatureHeader {
        SignatureHeader {
            header: HeaderName::from_static("x-zm-signature"),
            keys,
            algorithm: HmacAlgorithm::Sha256,
            encoding: SignatureEncoding::Hex,
            prefix: "v0=".into(),
            content: Content::Template {
                timestamp_header: HeaderName::from_static("x-zm-request-timestamp"),
                parts: vec![
                    Part::Literal("v0:".into()),
                    Part::Timestamp,
                    Part::Literal(":".into()),
                    Part::Body,
                ],
                tolerance,
            },
            delivery_id_header: None,
            event_type_header: None,
        }
    }

    /// The hex HMAC of `data` under the first key: what a handshake that proves the secret
    /// answers (Zoom's `encryptedToken`).
    pub fn hex_tag(&self, data: &[u8]) -> Option<String> {
        let key = self.keys.first()?;
        Some(hex::encode(mac::sign(self.algorithm, key, &[data])))
    }

    /// Shopify: `X-Shopify-Hmac-Sha256: <base64>`; dedup on `X-Shopify-Webhook-Id`.
    pub fn shopify(keys: Vec<Vec<u8>>) -> SignatureHeader {
        SignatureHeader {
            header: HeaderName::from_static("x-shopify-hmac-sha256"),
            keys,
            algorithm: HmacAlgorithm::Sha256,
            encoding: SignatureEncoding::Base64,
            prefix: String::new(),
            content: Content::Body,
            delivery_id_header: Some("x-shopify-webhook-id"),
            event_type_header: Some("x-shopify-topic"),
        }
    }

    /// The generic `hmac` scheme from a route's config.
    pub fn generic(
        c: &VerifyConfig,
        keys: Vec<Vec<u8>>,
        tolerance: Duration,
    ) -> Result<SignatureHeader, BadSecret> {
        let header = c
            .header
            .as_deref()
            .ok_or_else(|| BadSecret("scheme \"hmac\" needs header".into()))?;
        let header = HeaderName::from_bytes(header.as_bytes())
            .map_err(|_| BadSecret(format!("{header:?} is not a valid header name")))?;
        let content = match (&c.timestamp_header, &c.signed_content) {
            (None, None) => Content::Body,
            (Some(ts), template) => Content::Template {
                timestamp_header: HeaderName::from_bytes(ts.as_bytes())
                    .map_err(|_| BadSecret(format!("{ts:?} is not a valid header name")))?,
                parts: parse_template(template.as_deref().unwrap_or("{timestamp}.{body}"))?,
                tolerance,
            },
            (None, Some(template)) => {
                let parts = parse_template(template)?;
                if parts.contains(&Part::Timestamp) {
                    return Err(BadSecret(
                        "signed_content uses {timestamp}: set timestamp_header".into(),
                    ));
                }
                Content::Template {
                    timestamp_header: HeaderName::from_static("x-unused"),
                    parts,
                    tolerance,
                }
            }
        };
        Ok(SignatureHeader {
            header,
            keys,
            algorithm: c.algorithm.unwrap_or_default(),
            encoding: c.encoding.unwrap_or_default(),
            prefix: c.prefix.clone().unwrap_or_default(),
            content,
            delivery_id_header: None,
            event_type_header: None,
        })
    }

    fn encode(&self, tag: &[u8]) -> String {
        let encoded = match self.encoding {
            SignatureEncoding::Hex => hex::encode(tag),
            SignatureEncoding::Base64 => B64.encode(tag),
        };
        format!("{}{}", self.prefix, encoded)
    }

    /// The byte parts that are signed, given the timestamp text.
    fn parts<'a>(&'a self, timestamp: &'a str, body: &'a [u8]) -> Vec<&'a [u8]> {
        match &self.content {
            Content::Body => vec![body],
            Content::Template { parts, .. } => parts
                .iter()
                .map(|p| match p {
                    Part::Literal(s) => s.as_bytes(),
                    Part::Timestamp => timestamp.as_bytes(),
                    Part::Body => body,
                })
                .collect(),
        }
    }

    /// The headers a sender would put on this body at `ts`.
    pub fn sign_headers(
        &self,
        body: &[u8],
        ts: u64,
        delivery: &str,
        event_type: Option<&str>,
    ) -> Vec<(String, String)> {
        let ts = ts.to_string();
        let tag = mac::sign(self.algorithm, &self.keys[0], &self.parts(&ts, body));
        let mut headers = vec![(self.header.to_string(), self.encode(&tag))];
        if let Content::Template {
            timestamp_header,
            parts,
            ..
        } = &self.content
            && parts.contains(&Part::Timestamp)
        {
            headers.push((timestamp_header.to_string(), ts));
        }
        if let Some(h) = self.delivery_id_header {
            headers.push((h.to_string(), delivery.to_string()));
        }
        if let (Some(h), Some(t)) = (self.event_type_header, event_type) {
            headers.push((h.to_string(), t.to_string()));
        }
        headers
    }

    /// Checks the signature header (and the timestamp, if signed) against the body.
    pub fn verify(&self, req: &Request<'_>) -> Result<Verified, VerifyError> {
        let malformed = || VerifyError::MalformedHeader(self.header.clone());
        let value = single_header(req.headers, &self.header)?;
        let timestamp = match &self.content {
            Content::Template {
                timestamp_header,
                parts,
                tolerance,
            } if parts.contains(&Part::Timestamp) => {
                let ts = single_header(req.headers, timestamp_header)?;
                check_timestamp(ts, timestamp_header, req.now, *tolerance)?;
                ts
            }
            _ => "",
        };
        let encoded = value
            .strip_prefix(self.prefix.as_str())
            .ok_or_else(malformed)?;
        let sig = match self.encoding {
            SignatureEncoding::Hex => hex::decode(encoded.trim()).ok(),
            SignatureEncoding::Base64 => B64.decode(encoded.trim()).ok(),
        }
        .ok_or_else(malformed)?;
        if !mac::any_matches(
            self.algorithm,
            &self.keys,
            &self.parts(timestamp, req.body),
            &sig,
        ) {
            return Err(VerifyError::BadSignature);
        }
        Ok(Verified {
            delivery_id: self
                .delivery_id_header
                .and_then(|h| delivery_id(req.headers, h)),
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Dur, Scheme};
    use http::{HeaderMap, Uri};
    use std::time::SystemTime;

    fn check(
        v: &SignatureHeader,
        headers: &[(&str, &str)],
        body: &[u8],
        now: u64,
    ) -> Result<Verified, VerifyError> {
        let mut h = HeaderMap::new();
        for (k, val) in headers {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                val.parse().unwrap(),
            );
        }
        let uri = Uri::from_static("/");
        v.verify(&Request {
            headers: &h,
            body,
            uri: &uri,
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(now),
        })
    }

    #[test]
    fn github_published_vector_verifies() {
        // From GitHub's "Validating webhook deliveries" documentation.
        let v = SignatureHeader::github(vec![b"It's a Secret to Everybody".to_vec()]);
        let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(v.sign_headers(b"Hello, World!", 0, "d", None)[0].1, sig);
        let ok = check(
            &v,
            &[
                ("x-hub-signature-256", sig),
                ("x-github-delivery", "72d3162e"),
            ],
            b"Hello, World!",
            0,
        )
        .unwrap();
        assert_eq!(ok.delivery_id.as_deref(), Some("72d3162e"));
        assert_eq!(
            check(&v, &[("x-hub-signature-256", sig)], b"Hello, World?", 0).unwrap_err(),
            VerifyError::BadSignature
        );
    }

    #[test]
    fn shopify_published_vector_verifies() {
        // Shopify/shopify-app-js validate.test.ts: secret test_secret_key, body {"foo": "bar"}.
        let v = SignatureHeader::shopify(vec![b"test_secret_key".to_vec()]);
        let sig = "B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g=";
        let ok = check(
            &v,
            &[
                ("x-shopify-hmac-sha256", sig),
                ("x-shopify-webhook-id", "b54557e4"),
            ],
            br#"{"foo": "bar"}"#,
            0,
        );
        assert_eq!(ok.unwrap().delivery_id.as_deref(), Some("b54557e4"));
        assert_eq!(
            check(
                &v,
                &[("x-shopify-hmac-sha256", sig)],
                br#"{"foo":"bar"}"#,
                0
            )
            .unwrap_err(),
            VerifyError::BadSignature
        );
    }

    fn generic(timestamp_header: Option<&str>, template: Option<&str>) -> SignatureHeader {
        let mut c = crate::verify::tests::config(Scheme::Hmac);
        c.tolerance = Some(Dur(Duration::from_secs(300)));
        c.header = Some("X-Signature".into());
        c.algorithm = Some(HmacAlgorithm::Sha512);
        c.encoding = Some(SignatureEncoding::Base64);
        c.prefix = Some("sig=".into());
        c.timestamp_header = timestamp_header.map(str::to_string);
        c.signed_content = template.map(str::to_string);
        SignatureHeader::generic(&c, vec![b"k".to_vec()], Duration::from_secs(300)).unwrap()
    }

    #[test]
    fn generic_scheme_with_a_signed_timestamp_checks_both() {
        let v = generic(Some("X-Timestamp"), Some("{timestamp}.{body}"));
        let headers = v.sign_headers(b"body", 1000, "d", None);
        let sig = headers[0].1.clone();
        // Independently: base64(HMAC-SHA512("k", "1000.body")).
        let expected = B64.encode(mac::sign(HmacAlgorithm::Sha512, b"k", &[b"1000.body"]));
        assert_eq!(sig, format!("sig={expected}"));
        assert!(
            check(
                &v,
                &[("x-signature", &sig), ("x-timestamp", "1000")],
                b"body",
                1100
            )
            .is_ok()
        );
        assert_eq!(
            check(
                &v,
                &[("x-signature", &sig), ("x-timestamp", "1000")],
                b"body",
                2000
            )
            .unwrap_err(),
            VerifyError::StaleTimestamp
        );
        assert_eq!(
            check(
                &v,
                &[("x-signature", &sig), ("x-timestamp", "1001")],
                b"body",
                1100
            )
            .unwrap_err(),
            VerifyError::BadSignature
        );
        assert!(matches!(
            check(&v, &[("x-signature", &sig)], b"body", 1100).unwrap_err(),
            VerifyError::MissingHeader(_)
        ));
    }

    #[test]
    fn truncated_or_foreign_signatures_are_malformed_not_a_panic() {
        let v = SignatureHeader::github(vec![b"s".to_vec()]);
        for bad in ["sha256=abc", "sha1=00", "sha256=zz", ""] {
            let err = check(&v, &[("x-hub-signature-256", bad)], b"", 0).unwrap_err();
            assert!(
                matches!(
                    err,
                    VerifyError::MalformedHeader(_) | VerifyError::BadSignature
                ),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn templates_need_exactly_one_body() {
        assert!(parse_template("{timestamp}").is_err());
        assert!(parse_template("{body}{body}").is_err());
        assert_eq!(parse_template("v0:{timestamp}:{body}").unwrap().len(), 4);
    }
}
