//! Twilio: `X-Twilio-Signature`, base64 HMAC-SHA1 over the full public URL followed by the
//! form parameters sorted by name (name + value, values sorted too). A JSON body is covered
//! by a `bodySHA256` query parameter instead. The public URL is configured (`public_url`),
//! since behind a proxy the router cannot know the URL Twilio called; as Twilio's SDKs do,
//! the URL is tried with and without the scheme's default port.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use http::HeaderName;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{BadSecret, Request, Signed, Verified, VerifyError, delivery_id, mac, single_header};
use crate::config::HmacAlgorithm;

const HEADER: HeaderName = HeaderName::from_static("x-twilio-signature");

/// The Twilio verifier.
pub struct Twilio {
    keys: Vec<Vec<u8>>,
    /// `https://host[:port]`, no trailing slash.
    public_url: String,
}

impl std::fmt::Debug for Twilio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Twilio")
            .field("keys", &"<redacted>")
            .field("public_url", &self.public_url)
            .finish()
    }
}

/// The string Twilio signs: the URL, then each parameter name and value, sorted.
pub fn signed_string(url: &str, form: Option<&[u8]>) -> String {
    let mut s = url.to_string();
    if let Some(body) = form {
        let mut params: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
        params.sort();
        params.dedup();
        for (k, v) in params {
            s.push_str(&k);
            s.push_str(&v);
        }
    }
    s
}

/// `url` with its default port added, or removed, to match how it was signed.
fn port_variants(url: &str) -> Vec<String> {
    let mut out = vec![url.to_string()];
    let Ok(parsed) = url::Url::parse(url) else {
        return out;
    };
    let default = match parsed.scheme() {
        "https" => 443,
        "http" => 80,
        _ => return out,
    };
    let host = parsed.host_str().unwrap_or_default();
    let host_end = url.find("://").map(|i| i + 3).unwrap_or(0);
    let rest = &url[host_end..];
    let path_start = rest.find('/').unwrap_or(rest.len());
    let tail = &rest[path_start..];
    let scheme = parsed.scheme();
    let with_port = format!("{scheme}://{host}:{default}{tail}");
    let without_port = format!("{scheme}://{host}{tail}");
    for v in [with_port, without_port] {
        if !out.contains(&v) && parsed.port_or_known_default() == Some(default) {
            out.push(v);
        }
    }
    out
}

impl Twilio {
    /// A verifier for these auth tokens and public base URL.
    pub fn new(keys: Vec<Vec<u8>>, public_url: Option<&str>) -> Result<Twilio, BadSecret> {
        let public_url = public_url
            .ok_or_else(|| {
                BadSecret("scheme \"twilio\" needs public_url, the base URL Twilio calls".into())
            })?
            .trim_end_matches('/')
            .to_string();
        match url::Url::parse(&public_url) {
            Ok(u)
                if matches!(u.scheme(), "http" | "https")
                    && u.path() == "/"
                    && u.query().is_none() => {}
            _ => {
                return Err(BadSecret(format!(
                    "public_url {public_url:?} must be like https://hooks.example.com"
                )));
            }
        }
        Ok(Twilio { keys, public_url })
    }

    fn full_url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.public_url)
    }

    /// Signs as Twilio would: form bodies by parameters; other bodies via `bodySHA256`.
    pub fn sign(&self, body: &[u8], path_and_query: &str) -> Signed {
        let is_json = body.first().is_some_and(|b| *b == b'{' || *b == b'[');
        let path_and_query = if is_json {
            let sep = if path_and_query.contains('?') {
                '&'
            } else {
                '?'
            };
            format!(
                "{path_and_query}{sep}bodySHA256={}",
                hex::encode(Sha256::digest(body))
            )
        } else {
            path_and_query.to_string()
        };
        let s = signed_string(&self.full_url(&path_and_query), (!is_json).then_some(body));
        let tag = mac::sign(HmacAlgorithm::Sha1, &self.keys[0], &[s.as_bytes()]);
        Signed {
            headers: vec![(HEADER.to_string(), B64.encode(tag))],
            path_and_query,
        }
    }

    /// Checks the signature over the public URL of this request and its parameters.
    pub fn verify(&self, req: &Request<'_>) -> Result<Verified, VerifyError> {
        let sig = B64
            .decode(single_header(req.headers, &HEADER)?)
            .map_err(|_| VerifyError::MalformedHeader(HEADER))?;
        let path_and_query = req.uri.path_and_query().map_or("/", |p| p.as_str());
        let body_hash = req.uri.query().and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "bodySHA256")
                .map(|(_, v)| v.into_owned())
        });
        let form = match &body_hash {
            Some(expected) => {
                let actual = hex::encode(Sha256::digest(req.body));
                if !bool::from(
                    actual
                        .as_bytes()
                        .ct_eq(expected.to_ascii_lowercase().as_bytes()),
                ) {
                    return Err(VerifyError::BadBodyHash);
                }
                None
            }
            None => Some(req.body),
        };
        let matched =
            port_variants(&self.full_url(path_and_query))
                .iter()
                .fold(false, |found, url| {
                    let s = signed_string(url, form);
                    mac::any_matches(HmacAlgorithm::Sha1, &self.keys, &[s.as_bytes()], &sig) | found
                });
        if !matched {
            return Err(VerifyError::BadSignature);
        }
        Ok(Verified {
            delivery_id: delivery_id(req.headers, "i-twilio-idempotency-token"),
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, Uri};
    use std::time::SystemTime;

    fn check(public: &str, target: &str, sig: &str, body: &[u8]) -> Result<Verified, VerifyError> {
        let mut h = HeaderMap::new();
        h.insert(HEADER, sig.parse().unwrap());
        let uri: Uri = target.parse().unwrap();
        let v = Twilio::new(vec![b"12345".to_vec()], Some(public)).unwrap();
        v.verify(&Request {
            headers: &h,
            body,
            uri: &uri,
            now: SystemTime::now(),
        })
    }

    const FORM: &[u8] = b"CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1234&From=%2B14158675309&To=%2B18005551212";

    #[test]
    fn twilio_sdk_form_vector_verifies() {
        // twilio-python tests/unit/test_request_validator.py: token 12345.
        let sig = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";
        assert!(check("https://mycompany.com", "/myapp.php?foo=1&bar=2", sig, FORM).is_ok());
        assert_eq!(
            check("https://mycompany.com", "/myapp.php?foo=1&bar=3", sig, FORM).unwrap_err(),
            VerifyError::BadSignature
        );
        assert_eq!(
            check(
                "https://mycompany.com",
                "/myapp.php?foo=1&bar=2",
                sig,
                b"CallSid=CA1"
            )
            .unwrap_err(),
            VerifyError::BadSignature
        );
    }

    #[test]
    fn twilio_sdk_port_variants_verify() {
        assert!(
            check(
                "https://mycompany.com:443",
                "/myapp.php?foo=1&bar=2",
                "kvajT1Ptam85bY51eRf/AJRuM3w=",
                FORM
            )
            .is_ok()
        );
        assert!(
            check(
                "https://mycompany.com",
                "/myapp.php?foo=1&bar=2",
                "kvajT1Ptam85bY51eRf/AJRuM3w=",
                FORM
            )
            .is_ok()
        );
        assert!(
            check(
                "http://mycompany.com:80",
                "/myapp.php?foo=1&bar=2",
                "0ZXoZLH/DfblKGATFgpif+LLRf4=",
                FORM
            )
            .is_ok()
        );
        assert!(
            check(
                "http://mycompany.com:1234",
                "/myapp.php?foo=1&bar=2",
                "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=",
                FORM
            )
            .is_ok()
        );
    }

    #[test]
    fn twilio_sdk_repeated_keys_vector_verifies() {
        let body = b"Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234&Digits=1234";
        assert!(
            check(
                "https://mycompany.com",
                "/myapp.php?foo=1&bar=2",
                "IK+Dwps556ElfBT0I3Rgjkr1wJU=",
                body
            )
            .is_ok()
        );
    }

    #[test]
    fn twilio_sdk_json_vector_checks_the_body_hash() {
        let body = br#"{"property": "value", "boolean": true}"#;
        let target = "/myapp.php?foo=1&bar=2&bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
        assert!(
            check(
                "https://mycompany.com",
                target,
                "a9nBmqA0ju/hNViExpshrM61xv4=",
                body
            )
            .is_ok()
        );
        assert_eq!(
            check(
                "https://mycompany.com",
                target,
                "a9nBmqA0ju/hNViExpshrM61xv4=",
                br#"{"property": "evil", "boolean": true}"#
            )
            .unwrap_err(),
            VerifyError::BadBodyHash
        );
    }

    #[test]
    fn public_url_must_be_a_bare_origin() {
        assert!(Twilio::new(vec![b"k".to_vec()], Some("https://x.example/hooks")).is_err());
        assert!(Twilio::new(vec![b"k".to_vec()], None).is_err());
        assert!(Twilio::new(vec![b"k".to_vec()], Some("https://x.example/")).is_ok());
    }
}
