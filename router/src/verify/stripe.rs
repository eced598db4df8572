//! Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>][,v0=...]`, HMAC-SHA256 over
//! `{t}.{body}` keyed with the whole `whsec_...` string as bytes. Only `v1` counts (no
//! downgrade to `v0`); several `v1` are allowed (secret rotation on Stripe's side).

use std::time::Duration;

use http::HeaderName;

use super::{Request, Verified, VerifyError, check_timestamp, mac, single_header};
use crate::config::HmacAlgorithm;

const HEADER: HeaderName = HeaderName::from_static("stripe-signature");

/// The Stripe verifier.
pub struct Stripe {
    keys: Vec<Vec<u8>>,
    tolerance: Duration,
}

impl std::fmt::Debug for Stripe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stripe")
            .field("keys", &"<redacted>")
            .finish()
    }
}

/// The parts of a `Stripe-Signature` header.
#[derive(Debug, PartialEq, Eq)]
pub struct ParsedHeader<'a> {
    /// The signed timestamp, as written.
    pub t: &'a str,
    /// Every `v1` signature, decoded.
    pub v1: Vec<Vec<u8>>,
}

/// Parses a `Stripe-Signature` header: exactly one `t`, at least one well-formed `v1`.
pub fn parse_header(value: &str) -> Result<ParsedHeader<'_>, VerifyError> {
    let malformed = || VerifyError::MalformedHeader(HEADER);
    let mut t = None;
    let mut v1 = Vec::new();
    for item in value.split(',') {
        let (k, v) = item.trim().split_once('=').ok_or_else(malformed)?;
        match k {
            "t" if t.is_none() => t = Some(v),
            "t" => return Err(malformed()),
            "v1" => {
                let sig = hex::decode(v).map_err(|_| malformed())?;
                if sig.len() != 32 {
                    return Err(malformed());
                }
                if v1.len() == mac::MAX_SIGNATURES {
                    return Err(VerifyError::TooManySignatures(HEADER, mac::MAX_SIGNATURES));
                }
                v1.push(sig);
            }
            _ => {} // v0 (test mode's legacy scheme) and future versions are ignored
        }
    }
    match t {
        Some(t) if !v1.is_empty() => Ok(ParsedHeader { t, v1 }),
        _ => Err(malformed()),
    }
}

impl Stripe {
    /// A verifier for these endpoint secrets.
    pub fn new(keys: Vec<Vec<u8>>, tolerance: Duration) -> Stripe {
        Stripe { keys, tolerance }
    }

    /// The header Stripe would send with `body` at `ts`.
    pub fn sign_header(&self, ts: u64, body: &[u8]) -> String {
        let ts = ts.to_string();
        let tag = mac::sign(
            HmacAlgorithm::Sha256,
            &self.keys[0],
            &[ts.as_bytes(), b".", body],
        );
        format!("t={ts},v1={}", hex::encode(tag))
    }

    /// Checks `Stripe-Signature` against the body; the event id in the body is the dedup key.
    pub fn verify(&self, req: &Request<'_>) -> Result<Verified, VerifyError> {
        let parsed = parse_header(single_header(req.headers, &HEADER)?)?;
        check_timestamp(parsed.t, &HEADER, req.now, self.tolerance)?;
        let parts: [&[u8]; 3] = [parsed.t.as_bytes(), b".", req.body];
        // Every candidate is checked, so timing does not reveal which matched.
        let tags = mac::tags(HmacAlgorithm::Sha256, &self.keys, &parts);
        let ok = parsed
            .v1
            .iter()
            .fold(false, |found, sig| mac::is_any_of(&tags, sig) | found);
        if !ok {
            return Err(VerifyError::BadSignature);
        }
        #[derive(serde::Deserialize)]
        struct Event {
            id: Option<String>,
        }
        let delivery_id = serde_json::from_slice::<Event>(req.body)
            .ok()
            .and_then(|e| e.id)
            .filter(|id| id.starts_with("evt_") && id.len() <= 256);
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

    fn check(v: &Stripe, header: &str, body: &[u8], now: u64) -> Result<Verified, VerifyError> {
        let mut h = HeaderMap::new();
        h.insert(HEADER, header.parse().unwrap());
        let uri = Uri::from_static("/");
        v.verify(&Request {
            headers: &h,
            body,
            uri: &uri,
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(now),
        })
    }

    fn stripe() -> Stripe {
        Stripe::new(
            vec![b"whsec_test_secret".to_vec()],
            Duration::from_secs(300),
        )
    }

    #[test]
    fn signature_from_stripes_sdk_verifies() {
        // stripe-python 16.1.0 generate_signature_header('{"foo": "bar"}', 'whsec_test_secret', timestamp=1700000000).
        let header =
            "t=1700000000,v1=8ea66aa2c549d70c88a860f9cd26e68e6f876a844a8d86efc020ca3b2bc7f1da";
        assert_eq!(
            stripe().sign_header(1700000000, br#"{"foo": "bar"}"#),
            header
        );
        assert!(check(&stripe(), header, br#"{"foo": "bar"}"#, 1700000000).is_ok());
        assert_eq!(
            check(&stripe(), header, br#"{"foo":"bar"}"#, 1700000000).unwrap_err(),
            VerifyError::BadSignature
        );
    }

    #[test]
    fn key_is_the_whole_whsec_string_not_its_base64() {
        let wrong = Stripe::new(vec![b"test_secret".to_vec()], Duration::from_secs(300));
        let header = stripe().sign_header(1700000000, b"{}");
        assert_eq!(
            check(&wrong, &header, b"{}", 1700000000).unwrap_err(),
            VerifyError::BadSignature
        );
    }

    #[test]
    fn v0_does_not_count_and_several_v1_may() {
        let good = stripe().sign_header(1700000000, b"{}");
        let good_v1 = good.split_once(",v1=").unwrap().1;
        let v0_only = format!("t=1700000000,v0={good_v1}");
        assert!(matches!(
            check(&stripe(), &v0_only, b"{}", 1700000000).unwrap_err(),
            VerifyError::MalformedHeader(_)
        ));
        let rotated = format!("t=1700000000,v1={},v1={good_v1},v0=00", "ab".repeat(32));
        assert!(check(&stripe(), &rotated, b"{}", 1700000000).is_ok());
    }

    #[test]
    fn a_header_stuffed_with_signatures_is_refused() {
        let good = stripe().sign_header(1700000000, b"{}");
        let good_v1 = good.split_once(",v1=").unwrap().1;
        let stuffed = |n: usize| {
            let mut header = "t=1700000000".to_string();
            for _ in 1..n {
                header.push_str(&format!(",v1={}", "00".repeat(32)));
            }
            header.push_str(&format!(",v1={good_v1}"));
            header
        };
        assert!(check(&stripe(), &stuffed(mac::MAX_SIGNATURES), b"{}", 1700000000).is_ok());
        // 59 candidates still fit the 4 KiB header limit; each used to cost a pass over the body.
        for n in [mac::MAX_SIGNATURES + 1, 59] {
            assert!(stuffed(n).len() <= 4096);
            assert!(matches!(
                check(&stripe(), &stuffed(n), b"{}", 1700000000).unwrap_err(),
                VerifyError::TooManySignatures(_, mac::MAX_SIGNATURES)
            ));
        }
    }

    #[test]
    fn event_id_is_the_dedup_key_and_clock_skew_is_refused() {
        let body = br#"{"id":"evt_1NG8Du2eZvKYlo2CUI79vXWy","type":"checkout.session.completed"}"#;
        let header = stripe().sign_header(1700000000, body);
        let ok = check(&stripe(), &header, body, 1700000010).unwrap();
        assert_eq!(
            ok.delivery_id.as_deref(),
            Some("evt_1NG8Du2eZvKYlo2CUI79vXWy")
        );
        assert_eq!(
            check(&stripe(), &header, body, 1700000301).unwrap_err(),
            VerifyError::StaleTimestamp
        );
        assert_eq!(
            check(&stripe(), &header, body, 1699999699).unwrap_err(),
            VerifyError::StaleTimestamp
        );
    }

    #[test]
    fn malformed_headers_are_refused() {
        for bad in [
            "",
            "t=1",
            "v1=00",
            "t=1,t=2,v1=".to_string().as_str(),
            "t=1,v1=zz",
            "t=1,v1=abcd",
            "garbage",
        ] {
            assert!(parse_header(bad).is_err(), "{bad:?}");
        }
    }
}
