//! Slack: `X-Slack-Signature: v0=<hex>` over `v0:{X-Slack-Request-Timestamp}:{body}`.

use std::time::Duration;

use http::HeaderName;

use super::{Request, Verified, VerifyError, check_timestamp, mac, single_header};
use crate::config::HmacAlgorithm;

const SIGNATURE: HeaderName = HeaderName::from_static("x-slack-signature");
const TIMESTAMP: HeaderName = HeaderName::from_static("x-slack-request-timestamp");

/// The Slack verifier.
pub struct Slack {
    keys: Vec<Vec<u8>>,
    tolerance: Duration,
}

impl std::fmt::Debug for Slack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slack")
            .field("keys", &"<redacted>")
            .finish()
    }
}

impl Slack {
    /// A verifier for these signing secrets.
    pub fn new(keys: Vec<Vec<u8>>, tolerance: Duration) -> Slack {
        Slack { keys, tolerance }
    }

    /// The headers Slack would send with `body` at `ts`.
    pub fn sign_headers(&self, ts: u64, body: &[u8]) -> Vec<(String, String)> {
        let ts = ts.to_string();
        let tag = mac::sign(
            HmacAlgorithm::Sha256,
            &self.keys[0],
            &[b"v0:", ts.as_bytes(), b":", body],
        );
        vec![
            (SIGNATURE.to_string(), format!("v0={}", hex::encode(tag))),
            (TIMESTAMP.to_string(), ts),
        ]
    }

    /// Checks the two headers; the Events API's `event_id` is the dedup key.
    pub fn verify(&self, req: &Request<'_>) -> Result<Verified, VerifyError> {
        let ts = single_header(req.headers, &TIMESTAMP)?;
        let sig = single_header(req.headers, &SIGNATURE)?;
        check_timestamp(ts, &TIMESTAMP, req.now, self.tolerance)?;
        let sig = sig
            .strip_prefix("v0=")
            .and_then(|h| hex::decode(h).ok())
            .ok_or(VerifyError::MalformedHeader(SIGNATURE))?;
        if !mac::any_matches(
            HmacAlgorithm::Sha256,
            &self.keys,
            &[b"v0:", ts.as_bytes(), b":", req.body],
            &sig,
        ) {
            return Err(VerifyError::BadSignature);
        }
        #[derive(serde::Deserialize)]
        struct Envelope {
            event_id: Option<String>,
        }
        let delivery_id = serde_json::from_slice::<Envelope>(req.body)
            .ok()
            .and_then(|e| e.event_id)
            .filter(|id| !id.is_empty() && id.len() <= 256);
        Ok(Verified {
            delivery_id,
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, Uri};
    use std::time::SystemTime;

    // Slack's documented example (docs.slack.dev "Verifying requests from Slack"), also in
    // python-slack-sdk's tests.
    const SECRET: &[u8] = b"8f742231b10e8888abcd99yyyzzz85a5";
    const TS: &str = "1531420618";
    const BODY: &[u8] = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SIG: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    fn check(sig: &str, ts: &str, body: &[u8], now: u64) -> Result<Verified, VerifyError> {
        let mut h = HeaderMap::new();
        h.insert(SIGNATURE, sig.parse().unwrap());
        h.insert(TIMESTAMP, ts.parse().unwrap());
        let uri = Uri::from_static("/");
        let v = Slack::new(vec![SECRET.to_vec()], Duration::from_secs(300));
        v.verify(&Request {
            headers: &h,
            body,
            uri: &uri,
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(now),
        })
    }

    #[test]
    fn published_vector_verifies_and_tampering_fails() {
        let now = 1531420618;
        assert!(check(SIG, TS, BODY, now).is_ok());
        assert_eq!(
            check(SIG, TS, b"token=x", now).unwrap_err(),
            VerifyError::BadSignature
        );
        assert_eq!(
            check(SIG, "1531420619", BODY, now).unwrap_err(),
            VerifyError::BadSignature
        );
        assert_eq!(
            check(SIG, TS, BODY, now + 600).unwrap_err(),
            VerifyError::StaleTimestamp
        );
        assert_eq!(
            check(SIG, TS, BODY, now - 600).unwrap_err(),
            VerifyError::StaleTimestamp
        );
        assert_eq!(
            check("v1=00", TS, BODY, now).unwrap_err(),
            VerifyError::MalformedHeader(SIGNATURE)
        );
        let signed = Slack::new(vec![SECRET.to_vec()], Duration::from_secs(300))
            .sign_headers(1531420618, BODY);
        assert_eq!(signed[0].1, SIG);
    }
}
