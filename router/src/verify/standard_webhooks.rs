//! Standard Webhooks and Svix: `{prefix}-id`, `{prefix}-timestamp`,
//! `{prefix}-signature: v1,<base64> ...`, HMAC-SHA256 over `{id}.{timestamp}.{body}` with the
//! base64 key after `whsec_`.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use http::HeaderName;

use super::{BadSecret, Request, Verified, VerifyError, check_timestamp, mac, single_header};
use crate::config::HmacAlgorithm;

/// Which header names are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// `webhook-id`, `webhook-timestamp`, `webhook-signature`.
    StandardWebhooks,
    /// `svix-id`, `svix-timestamp`, `svix-signature`.
    Svix,
}

/// A Standard Webhooks verifier (also signs, for outbound deliveries and `hookyard send`).
pub struct StandardWebhooks {
    keys: Vec<Vec<u8>>,
    tolerance: Duration,
    id: HeaderName,
    timestamp: HeaderName,
    signature: HeaderName,
}

impl std::fmt::Debug for StandardWebhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandardWebhooks")
            .field("keys", &"<redacted>")
            .field("tolerance", &self.tolerance)
            .field("id", &self.id)
            .finish()
    }
}

/// Decodes a `whsec_<base64>` secret (the prefix is optional).
pub fn decode_secret(secret: &str) -> Result<Vec<u8>, BadSecret> {
    let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
    let key = B64
        .decode(b64)
        .map_err(|_| BadSecret("a standard-webhooks secret must be base64 after whsec_".into()))?;
    if key.is_empty() {
        return Err(BadSecret("the standard-webhooks secret is empty".into()));
    }
    Ok(key)
}

impl StandardWebhooks {
    /// Builds from `whsec_<base64>` secrets.
    pub fn new(
        secrets: &[&str],
        tolerance: Duration,
        flavor: Flavor,
    ) -> Result<StandardWebhooks, BadSecret> {
        let keys = secrets
            .iter()
            .map(|s| decode_secret(s))
            .collect::<Result<_, _>>()?;
        let p = match flavor {
            Flavor::StandardWebhooks => "webhook",
            Flavor::Svix => "svix",
        };
        let name = |suffix: &str| {
            HeaderName::from_bytes(format!("{p}-{suffix}").as_bytes()).expect("static header name")
        };
        Ok(StandardWebhooks {
            keys,
            tolerance,
            id: name("id"),
            timestamp: name("timestamp"),
            signature: name("signature"),
        })
    }

    /// The signature value (`v1,<base64>`) for this message, with the first key.
    pub fn sign(&self, id: &str, timestamp: u64, body: &[u8]) -> String {
        let ts = timestamp.to_string();
        let tag = mac::sign(
            HmacAlgorithm::Sha256,
            &self.keys[0],
            &[id.as_bytes(), b".", ts.as_bytes(), b".", body],
        );
        format!("v1,{}", B64.encode(tag))
    }

    /// The three headers for this message.
    pub fn sign_headers(&self, id: &str, timestamp: u64, body: &[u8]) -> Vec<(String, String)> {
        vec![
            (self.id.to_string(), id.to_string()),
            (self.timestamp.to_string(), timestamp.to_string()),
            (self.signature.to_string(), self.sign(id, timestamp, body)),
        ]
    }

    /// Checks the three headers against the body.
    pub fn verify(&self, req: &Request<'_>) -> Result<Verified, VerifyError> {
        let id = single_header(req.headers, &self.id)?;
        let timestamp = single_header(req.headers, &self.timestamp)?;
        let signatures = single_header(req.headers, &self.signature)?;
        if id.is_empty() || id.len() > 256 {
            return Err(VerifyError::MalformedHeader(self.id.clone()));
        }
        check_timestamp(timestamp, &self.timestamp, req.now, self.tolerance)?;
        let entries: Vec<&str> = signatures.split(' ').filter(|s| !s.is_empty()).collect();
        if entries.len() > mac::MAX_SIGNATURES {
            return Err(VerifyError::TooManySignatures(
                self.signature.clone(),
                mac::MAX_SIGNATURES,
            ));
        }
        let mut candidates = Vec::with_capacity(entries.len());
        for entry in entries {
            let Some((version, sig)) = entry.split_once(',') else {
                return Err(VerifyError::MalformedHeader(self.signature.clone()));
            };
            // Other versions (e.g. v1a, asymmetric) are not ours to check.
            if version == "v1" {
                candidates.push(B64.decode(sig).ok());
            }
        }
        if candidates.is_empty() {
            return Err(VerifyError::MalformedHeader(self.signature.clone()));
        }
        let parts: [&[u8]; 5] = [id.as_bytes(), b".", timestamp.as_bytes(), b".", req.body];
        let tags = mac::tags(HmacAlgorithm::Sha256, &self.keys, &parts);
        let matched = candidates
            .iter()
            .flatten()
            .fold(false, |found, sig| mac::is_any_of(&tags, sig) | found);
        if matched {
            Ok(Verified {
                delivery_id: Some(id.to_string()),
                ..Default::default()
            })
        } else {
            Err(VerifyError::BadSignature)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, Uri};
    use std::time::SystemTime;

    // The Standard Webhooks reference test vector.
    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const TS: u64 = 1649367553;
    const BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const SIG: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    fn at(ts: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(ts)
    }

    fn headers(prefix: &str, id: &str, ts: &str, sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            HeaderName::from_bytes(format!("{prefix}-id").as_bytes()).unwrap(),
            id.parse().unwrap(),
        );
        h.insert(
            HeaderName::from_bytes(format!("{prefix}-timestamp").as_bytes()).unwrap(),
            ts.parse().unwrap(),
        );
        h.insert(
            HeaderName::from_bytes(format!("{prefix}-signature").as_bytes()).unwrap(),
            sig.parse().unwrap(),
        );
        h
    }

    fn verifier(secrets: &[&str]) -> StandardWebhooks {
        StandardWebhooks::new(secrets, Duration::from_secs(300), Flavor::StandardWebhooks).unwrap()
    }

    fn check(
        v: &StandardWebhooks,
        h: &HeaderMap,
        body: &[u8],
        now: u64,
    ) -> Result<Verified, VerifyError> {
        let uri = Uri::from_static("/");
        v.verify(&Request {
            headers: h,
            body,
            uri: &uri,
            now: at(now),
        })
    }

    #[test]
    fn reference_vector_signs_and_verifies() {
        assert_eq!(verifier(&[SECRET]).sign(ID, TS, BODY), SIG);
        let ok = check(
            &verifier(&[SECRET]),
            &headers("webhook", ID, &TS.to_string(), SIG),
            BODY,
            TS,
        )
        .unwrap();
        assert_eq!(ok.delivery_id.as_deref(), Some(ID));
    }

    #[test]
    fn svix_published_vector_verifies_with_svix_headers() {
        // svix-webhooks' own test vector (python/tests/test_webhooks.py::test_sign_function).
        let v = StandardWebhooks::new(
            &["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
            Duration::from_secs(300),
            Flavor::Svix,
        )
        .unwrap();
        let sig = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        assert_eq!(
            v.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            sig
        );
        let h = headers("svix", "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", sig);
        assert!(check(&v, &h, br#"{"test": 2432232314}"#, 1614265330).is_ok());
    }

    #[test]
    fn a_rotated_secret_still_verifies() {
        let v = verifier(&["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", SECRET]);
        assert!(check(&v, &headers("webhook", ID, &TS.to_string(), SIG), BODY, TS).is_ok());
    }

    #[test]
    fn any_of_several_signatures_may_match() {
        let sigs = format!("v1,Zm9vYmFy v1a,abc {SIG}");
        assert!(
            check(
                &verifier(&[SECRET]),
                &headers("webhook", ID, &TS.to_string(), &sigs),
                BODY,
                TS
            )
            .is_ok()
        );
    }

    #[test]
    fn a_header_stuffed_with_signatures_is_refused_before_any_hashing() {
        let v = verifier(&[SECRET]);
        let stuffed = |n: usize| {
            let mut sigs = vec!["v1,AA=="; n - 1];
            sigs.push(SIG);
            sigs.join(" ")
        };
        let at_limit = headers(
            "webhook",
            ID,
            &TS.to_string(),
            &stuffed(mac::MAX_SIGNATURES),
        );
        assert!(check(&v, &at_limit, BODY, TS).is_ok());
        let over = headers("webhook", ID, &TS.to_string(), &stuffed(500));
        let err = check(&v, &over, BODY, TS).unwrap_err();
        assert!(
            matches!(err, VerifyError::TooManySignatures(_, mac::MAX_SIGNATURES)),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "webhook-signature header offers more than 8 signatures"
        );
    }

    #[test]
    fn tampered_body_and_skewed_clocks_are_rejected() {
        let v = verifier(&[SECRET]);
        let h = headers("webhook", ID, &TS.to_string(), SIG);
        assert_eq!(
            check(&v, &h, b"{}", TS).unwrap_err(),
            VerifyError::BadSignature
        );
        assert_eq!(
            check(&v, &h, BODY, TS + 301).unwrap_err(),
            VerifyError::StaleTimestamp
        );
        assert_eq!(
            check(&v, &h, BODY, TS - 301).unwrap_err(),
            VerifyError::StaleTimestamp
        );
        assert!(check(&v, &h, BODY, TS + 299).is_ok());
    }

    #[test]
    fn malformed_headers_are_named() {
        let v = verifier(&[SECRET]);
        let named = |s: &'static str| HeaderName::from_static(s);
        assert_eq!(
            check(&v, &headers("webhook", ID, "12abc", SIG), BODY, TS).unwrap_err(),
            VerifyError::MalformedHeader(named("webhook-timestamp"))
        );
        assert_eq!(
            check(
                &v,
                &headers("webhook", ID, &TS.to_string(), "garbage"),
                BODY,
                TS
            )
            .unwrap_err(),
            VerifyError::MalformedHeader(named("webhook-signature"))
        );
        let mut h = headers("webhook", ID, &TS.to_string(), SIG);
        h.remove("webhook-id");
        assert_eq!(
            check(&v, &h, BODY, TS).unwrap_err(),
            VerifyError::MissingHeader(named("webhook-id"))
        );
    }

    #[test]
    fn bad_secret_is_refused() {
        assert!(
            StandardWebhooks::new(&["whsec_!!!"], Duration::from_secs(1), Flavor::Svix).is_err()
        );
    }
}
