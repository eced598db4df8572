//! `cargo bench -p hookyard --bench verify`: what checking one request costs for each kind of
//! preset row, against the generic `hmac` scheme (HMAC-SHA256 hex of the body in one header)
//! on the same body in the same run. Bodies: the 7.8 KB GitHub push fixture, and 1 KB.
//!
//! Each row and the baseline are measured in 15 alternating rounds of 2,000 verifications
//! of one valid request; the ratio is the median of the per-round ratios.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};

use hookyard::config::VerifyConfig;
use hookyard::verify::{Request, Verifier};

const ROUNDS: usize = 15;
const PER_ROUND: usize = 2_000;
const P256_SPKI: &str = "3059301306072a8648ce3d020106082a8648ce3d030107034200";

fn verifier(toml_table: &str) -> Verifier {
    let config: VerifyConfig = toml::from_str(toml_table).expect("verify table");
    Verifier::from_config(&config).expect("valid verify table")
}

fn headers(pairs: &[(String, String)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

/// One valid request to a verifier.
struct Case<'a> {
    verifier: &'a Verifier,
    request: Request<'a>,
}

impl Case<'_> {
    /// The mean time of one verification over a round.
    fn round(&self) -> Duration {
        let start = Instant::now();
        for _ in 0..PER_ROUND {
            std::hint::black_box(
                self.verifier
                    .verify(std::hint::black_box(&self.request))
                    .is_ok(),
            );
        }
        start.elapsed() / PER_ROUND as u32
    }
}

/// The median time of `case` and of `baseline`, measured in alternating rounds so the
/// machine's drift (frequency, neighbours) touches both alike, and the median of the
/// per-round ratios.
fn compare(case: &Case<'_>, baseline: &Case<'_>) -> (Duration, Duration, f64) {
    case.verifier
        .verify(&case.request)
        .expect("the request verifies");
    let mut times = Vec::new();
    let mut bases = Vec::new();
    let mut ratios = Vec::new();
    for _ in 0..ROUNDS {
        let b = baseline.round();
        let t = case.round();
        ratios.push(t.as_secs_f64() / b.as_secs_f64());
        times.push(t);
        bases.push(b);
    }
    times.sort();
    bases.sort();
    ratios.sort_by(f64::total_cmp);
    (times[ROUNDS / 2], bases[ROUNDS / 2], ratios[ROUNDS / 2])
}

struct Row {
    label: &'static str,
    verify: &'static str,
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let push = std::fs::read(root.join("tests/fixtures/github/push.json")).expect("push fixture");
    let now = SystemTime::now();
    let uri: Uri = "/hooks/r".parse().unwrap();
    let secret = "bench-secret-0123456789";
    let rows = [
        Row {
            label: "github (built-in)",
            verify: "scheme = \"github\"",
        },
        Row {
            label: "bitbucket (header, sha256= prefix)",
            verify: "scheme = \"bitbucket\"",
        },
        Row {
            label: "pagerduty (list of v1= signatures)",
            verify: "scheme = \"pagerduty\"",
        },
        Row {
            label: "paddle (ts=;h1= pairs, signed timestamp)",
            verify: "scheme = \"paddle\"\ntolerance = \"5m\"",
        },
        Row {
            label: "twitch (id + RFC 3339 timestamp + body)",
            verify: "scheme = \"twitch\"",
        },
        Row {
            label: "box (two headers, body + timestamp)",
            verify: "scheme = \"box\"",
        },
        Row {
            label: "hubspot (method + URL + body + timestamp)",
            verify: "scheme = \"hubspot\"\npublic_url = \"https://hooks.example.com\"",
        },
        Row {
            label: "woocommerce (base64)",
            verify: "scheme = \"woocommerce\"",
        },
        Row {
            label: "clerk (Svix)",
            verify: "scheme = \"clerk\"",
        },
    ];
    println!(
        "| scheme | body | per request | generic hmac, same body and rounds | ratio (median of rounds) |"
    );
    println!("| --- | --- | --- | --- | --- |");
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    for body in [push.clone(), push[..1024].to_vec()] {
        let size = if body.len() > 2000 { "7.8 KB" } else { "1 KB" };
        let generic = verifier(&format!(
            "scheme = \"hmac\"\nsecret = \"{secret}\"\nheader = \"x-signature\""
        ));
        let signed = generic.sign(&body, None, "/hooks/r", now).unwrap();
        let generic_headers = headers(&signed.headers);
        let baseline = Case {
            verifier: &generic,
            request: Request {
                headers: &generic_headers,
                body: &body,
                uri: &uri,
                now,
            },
        };
        let report = |label: &str, v: &Verifier, h: &HeaderMap, uri: &Uri| {
            let case = Case {
                verifier: v,
                request: Request {
                    headers: h,
                    body: &body,
                    uri,
                    now,
                },
            };
            let (t, b, ratio) = compare(&case, &baseline);
            println!(
                "| {label} | {size} | {:.2} us | {:.2} us | {ratio:.2}x |",
                us(t),
                us(b)
            );
        };
        for row in &rows {
            let secret = if row.label.starts_with("clerk") {
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
            } else {
                secret
            };
            let v = verifier(&format!("{}\nsecret = \"{secret}\"", row.verify));
            let signed = v.sign(&body, Some("push"), "/hooks/r", now).unwrap();
            let uri: Uri = signed.path_and_query.parse().unwrap();
            report(row.label, &v, &headers(&signed.headers), &uri);
        }
        // The asymmetric rows: keys made here, signatures as the provider makes them.
        let rng = ring::rand::SystemRandom::new();
        let ts = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            .to_string();
        let message = [ts.as_bytes(), &body].concat();
        let ed = Ed25519KeyPair::from_pkcs8(Ed25519KeyPair::generate_pkcs8(&rng).unwrap().as_ref())
            .unwrap();
        let v = verifier(&format!(
            "scheme = \"discord\"\nsecret = \"{}\"",
            hex::encode(ed.public_key().as_ref())
        ));
        let h = vec![
            (
                "x-signature-ed25519".to_string(),
                hex::encode(ed.sign(&message).as_ref()),
            ),
            ("x-signature-timestamp".to_string(), ts.clone()),
        ];
        report("discord (Ed25519)", &v, &headers(&h), &uri);
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let ec = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let spki = [
            hex::decode(P256_SPKI).unwrap(),
            ec.public_key().as_ref().to_vec(),
        ]
        .concat();
        let v = verifier(&format!(
            "scheme = \"sendgrid\"\nsecret = \"{}\"",
            B64.encode(spki)
        ));
        let h = vec![
            (
                "x-twilio-email-event-webhook-signature".to_string(),
                B64.encode(ec.sign(&rng, &message).unwrap().as_ref()),
            ),
            ("x-twilio-email-event-webhook-timestamp".to_string(), ts),
        ];
        report("sendgrid (ECDSA P-256)", &v, &headers(&h), &uri);
    }
}
