//! A signature header holding an HMAC of the raw body: GitHub's `X-Hub-Signature-256` and
//! the configurable generic `hmac` scheme (algorithm, header, hex or base64, prefix).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderName};
use sha1::Sha1;
use sha2::{Sha256, Sha512};

use super::{BadSecret, Verified, VerifyError};
use crate::config::{HmacAlgorithm, Secret, SignatureEncoding};

/// Verifies `<prefix><signature>` in one header against an HMAC of the body.
pub struct HmacVerifier {
    header: HeaderName,
    key: Vec<u8>,
    algorithm: HmacAlgorithm,
    encoding: SignatureEncoding,
    prefix: String,
    /// Header carrying the provider's delivery id, for dedup.
    delivery_id_header: Option<HeaderName>,
}

impl std::fmt::Debug for HmacVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HmacVerifier")
            .field("header", &self.header)
            .field("key", &"<redacted>")
            .field("algorithm", &self.algorithm)
            .finish()
    }
}

impl HmacVerifier {
    /// GitHub: `X-Hub-Signature-256: sha256=<hex>`; dedup on `X-GitHub-Delivery`.
    pub fn github(secret: &Secret) -> HmacVerifier {
        HmacVerifier {
            header: HeaderName::from_static("x-hub-signature-256"),
            key: secret.expose().as_bytes().to_vec(),
            algorithm: HmacAlgorithm::Sha256,
            encoding: SignatureEncoding::Hex,
            prefix: "sha256=".to_string(),
            delivery_id_header: Some(HeaderName::from_static("x-github-delivery")),
        }
    }

    /// The generic scheme from a route's config.
    pub fn new(
        header: &str,
        secret: &Secret,
        algorithm: HmacAlgorithm,
        encoding: SignatureEncoding,
        prefix: &str,
    ) -> Result<HmacVerifier, BadSecret> {
        let name = HeaderName::from_bytes(header.as_bytes())
            .map_err(|_| BadSecret(format!("{header:?} is not a valid header name")))?;
        if secret.expose().is_empty() {
            return Err(BadSecret("hmac secret is empty".into()));
        }
        Ok(HmacVerifier {
            header: name,
            key: secret.expose().as_bytes().to_vec(),
            algorithm,
            encoding,
            prefix: prefix.to_string(),
            delivery_id_header: None,
        })
    }

    /// The header value a sender would put on this body.
    pub fn sign(&self, body: &[u8]) -> String {
        let tag = match self.algorithm {
            HmacAlgorithm::Sha1 => mac_bytes::<Hmac<Sha1>>(&self.key, body),
            HmacAlgorithm::Sha256 => mac_bytes::<Hmac<Sha256>>(&self.key, body),
            HmacAlgorithm::Sha512 => mac_bytes::<Hmac<Sha512>>(&self.key, body),
        };
        let encoded = match self.encoding {
            SignatureEncoding::Hex => hex::encode(tag),
            SignatureEncoding::Base64 => B64.encode(tag),
        };
        format!("{}{}", self.prefix, encoded)
    }

    /// The header this scheme reads.
    pub fn header(&self) -> &HeaderName {
        &self.header
    }

    /// Checks the signature header against the body.
    pub fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Verified, VerifyError> {
        let malformed = || VerifyError::MalformedHeader(self.header.clone());
        let mut values = headers.get_all(&self.header).iter();
        let value = values
            .next()
            .ok_or_else(|| VerifyError::MissingHeader(self.header.clone()))?;
        if values.next().is_some() {
            return Err(malformed());
        }
        let value = value.to_str().map_err(|_| malformed())?;
        if value.len() > 1024 {
            return Err(malformed());
        }
        let encoded = value
            .strip_prefix(self.prefix.as_str())
            .ok_or_else(malformed)?;
        let sig = match self.encoding {
            SignatureEncoding::Hex => hex::decode(encoded.trim()),
            SignatureEncoding::Base64 => B64
                .decode(encoded.trim())
                .map_err(|_| hex::FromHexError::OddLength),
        }
        .map_err(|_| malformed())?;
        let ok = match self.algorithm {
            HmacAlgorithm::Sha1 => mac_matches::<Hmac<Sha1>>(&self.key, body, &sig),
            HmacAlgorithm::Sha256 => mac_matches::<Hmac<Sha256>>(&self.key, body, &sig),
            HmacAlgorithm::Sha512 => mac_matches::<Hmac<Sha512>>(&self.key, body, &sig),
        };
        if !ok {
            return Err(VerifyError::BadSignature);
        }
        let delivery_id = self
            .delivery_id_header
            .as_ref()
            .and_then(|h| headers.get(h))
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 256)
            .map(str::to_string);
        Ok(Verified { delivery_id })
    }
}

fn mac_bytes<M: Mac + hmac::digest::KeyInit>(key: &[u8], body: &[u8]) -> Vec<u8> {
    let mut mac = <M as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// Constant-time comparison through `verify_slice`.
fn mac_matches<M: Mac + hmac::digest::KeyInit>(key: &[u8], body: &[u8], sig: &[u8]) -> bool {
    let mut mac = <M as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(body);
    mac.verify_slice(sig).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(header: &str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            HeaderName::from_bytes(header.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
        h
    }

    #[test]
    fn github_published_vector_verifies() {
        // From GitHub's "Validating webhook deliveries" documentation.
        let v = HmacVerifier::github(&Secret::new("It's a Secret to Everybody"));
        let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(v.sign(b"Hello, World!"), sig);
        let mut h = with("x-hub-signature-256", sig);
        h.insert(
            "x-github-delivery",
            "72d3162e-cc78-11e3-81ab-4c9367dc0958".parse().unwrap(),
        );
        let ok = v.verify(&h, b"Hello, World!").unwrap();
        assert_eq!(
            ok.delivery_id.as_deref(),
            Some("72d3162e-cc78-11e3-81ab-4c9367dc0958")
        );
        assert_eq!(
            v.verify(&h, b"Hello, World?").unwrap_err(),
            VerifyError::BadSignature
        );
    }

    #[test]
    fn generic_base64_sha512_with_prefix_round_trips() {
        let v = HmacVerifier::new(
            "X-Signature",
            &Secret::new("k"),
            HmacAlgorithm::Sha512,
            SignatureEncoding::Base64,
            "sig=",
        )
        .unwrap();
        let sig = v.sign(b"body");
        assert!(sig.starts_with("sig="));
        assert!(v.verify(&with("x-signature", &sig), b"body").is_ok());
        assert_eq!(
            v.verify(&with("x-signature", "sha256=00"), b"body")
                .unwrap_err(),
            VerifyError::MalformedHeader(HeaderName::from_static("x-signature"))
        );
        assert_eq!(
            v.verify(&HeaderMap::new(), b"body").unwrap_err(),
            VerifyError::MissingHeader(HeaderName::from_static("x-signature"))
        );
    }

    #[test]
    fn truncated_hex_is_malformed_not_a_panic() {
        let v = HmacVerifier::github(&Secret::new("s"));
        assert_eq!(
            v.verify(&with("x-hub-signature-256", "sha256=abc"), b"")
                .unwrap_err(),
            VerifyError::MalformedHeader(HeaderName::from_static("x-hub-signature-256"))
        );
    }
}
