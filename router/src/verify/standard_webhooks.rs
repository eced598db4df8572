//! Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64> ...`,
//! HMAC-SHA256 over `{id}.{timestamp}.{body}` with the base64 key after `whsec_`.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderName};
use sha2::Sha256;

use super::{BadSecret, Verified, VerifyError, check_timestamp, single_header};

/// A Standard Webhooks verifier (also signs, for outbound use and `hookyard send`).
pub struct StandardWebhooks {
    key: Vec<u8>,
    tolerance: Duration,
}

impl std::fmt::Debug for StandardWebhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandardWebhooks")
            .field("key", &"<redacted>")
            .field("tolerance", &self.tolerance)
            .finish()
    }
}

/// Longest signature header accepted; real ones hold a few 50-byte entries.
const MAX_SIGNATURE_HEADER: usize = 4096;

impl StandardWebhooks {
    /// Builds from a `whsec_<base64>` secret (the prefix is optional).
    pub fn new(secret: &str, tolerance: Duration) -> Result<StandardWebhooks, BadSecret> {
        let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
        let key = B64.decode(b64).map_err(|_| {
            BadSecret("standard-webhooks secret is not valid base64 after whsec_".into())
        })?;
        if key.is_empty() {
            return Err(BadSecret("standard-webhooks secret is empty".into()));
        }
        Ok(StandardWebhooks { key, tolerance })
    }

    fn mac(&self, id: &str, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// The `webhook-signature` value (`v1,<base64>`) for this message.
    pub fn sign(&self, id: &str, timestamp: u64, body: &[u8]) -> String {
        let tag = self
            .mac(id, &timestamp.to_string(), body)
            .finalize()
            .into_bytes();
        format!("v1,{}", B64.encode(tag))
    }

    /// Checks the three headers against the body at time `now`.
    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Verified, VerifyError> {
        let id = single_header(headers, "webhook-id")?;
        let timestamp = single_header(headers, "webhook-timestamp")?;
        let signatures = single_header(headers, "webhook-signature")?;
        if id.is_empty() || id.len() > 256 {
            return Err(VerifyError::MalformedHeader(HeaderName::from_static(
                "webhook-id",
            )));
        }
        if signatures.len() > MAX_SIGNATURE_HEADER {
            return Err(VerifyError::MalformedHeader(HeaderName::from_static(
                "webhook-signature",
            )));
        }
        check_timestamp(timestamp, "webhook-timestamp", now, self.tolerance)?;
        let mac = self.mac(id, timestamp, body);
        let mut saw_v1 = false;
        for entry in signatures.split(' ').filter(|s| !s.is_empty()) {
            let Some((version, sig)) = entry.split_once(',') else {
                return Err(VerifyError::MalformedHeader(HeaderName::from_static(
                    "webhook-signature",
                )));
            };
            if version != "v1" {
                continue; // other versions (e.g. v1a, asymmetric) are not ours to check
            }
            saw_v1 = true;
            let Ok(sig) = B64.decode(sig) else { continue };
            if mac.clone().verify_slice(&sig).is_ok() {
                return Ok(Verified {
                    delivery_id: Some(id.to_string()),
                });
            }
        }
        if saw_v1 {
            Err(VerifyError::BadSignature)
        } else {
            Err(VerifyError::MalformedHeader(HeaderName::from_static(
                "webhook-signature",
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The Standard Webhooks reference test vector.
    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const TS: u64 = 1649367553;
    const BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const SIG: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    fn at(ts: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(ts)
    }

    fn headers(id: &str, ts: &str, sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("webhook-id", id.parse().unwrap());
        h.insert("webhook-timestamp", ts.parse().unwrap());
        h.insert("webhook-signature", sig.parse().unwrap());
        h
    }

    fn verifier() -> StandardWebhooks {
        StandardWebhooks::new(SECRET, Duration::from_secs(300)).unwrap()
    }

    #[test]
    fn reference_vector_signs_and_verifies() {
        assert_eq!(verifier().sign(ID, TS, BODY), SIG);
        let ok = verifier()
            .verify(&headers(ID, &TS.to_string(), SIG), BODY, at(TS))
            .unwrap();
        assert_eq!(ok.delivery_id.as_deref(), Some(ID));
    }

    #[test]
    fn any_of_several_signatures_may_match() {
        let sigs = format!("v1,Zm9vYmFy v1a,abc {SIG}");
        assert!(
            verifier()
                .verify(&headers(ID, &TS.to_string(), &sigs), BODY, at(TS))
                .is_ok()
        );
    }

    #[test]
    fn tampered_body_is_rejected() {
        let err = verifier()
            .verify(&headers(ID, &TS.to_string(), SIG), b"{}", at(TS))
            .unwrap_err();
        assert_eq!(err, VerifyError::BadSignature);
    }

    #[test]
    fn timestamp_outside_tolerance_either_way_is_rejected() {
        let h = headers(ID, &TS.to_string(), SIG);
        assert_eq!(
            verifier().verify(&h, BODY, at(TS + 301)).unwrap_err(),
            VerifyError::StaleTimestamp
        );
        assert_eq!(
            verifier().verify(&h, BODY, at(TS - 301)).unwrap_err(),
            VerifyError::StaleTimestamp
        );
        assert!(verifier().verify(&h, BODY, at(TS + 299)).is_ok());
    }

    #[test]
    fn malformed_headers_are_named() {
        let v = verifier();
        assert_eq!(
            v.verify(&headers(ID, "12abc", SIG), BODY, at(TS))
                .unwrap_err(),
            VerifyError::MalformedHeader(HeaderName::from_static("webhook-timestamp"))
        );
        assert_eq!(
            v.verify(&headers(ID, &TS.to_string(), "garbage"), BODY, at(TS))
                .unwrap_err(),
            VerifyError::MalformedHeader(HeaderName::from_static("webhook-signature"))
        );
        let mut h = headers(ID, &TS.to_string(), SIG);
        h.remove("webhook-id");
        assert_eq!(
            v.verify(&h, BODY, at(TS)).unwrap_err(),
            VerifyError::MissingHeader(HeaderName::from_static("webhook-id"))
        );
    }

    #[test]
    fn bad_secret_is_refused() {
        assert!(StandardWebhooks::new("whsec_!!!", Duration::from_secs(1)).is_err());
    }
}
