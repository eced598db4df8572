//! `cargo bench -p hookyard --bench verify`: what checking one request costs for each kind of
//! preset row, against the generic `hmac` scheme (HMAC-SHA256 hex of the body in one header)
//! on the same body in the same run. Bodies: the 7.8 KB GitHub push fixture, and 1 KB.
//!
//! Each row is the median of 15 rounds of 2,000 verifications of one valid request.

use std::collections::HashMap;
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

/// Median time of one verification.
fn time(v: &Verifier, headers: &HeaderMap, body: &[u8], uri: &Uri, now: SystemTime) -> Duration {
    let req = Request {
        headers,
        body,
        uri,
        now,
    };
    v.verify(&req).expect("the request verifies");
    let mut rounds: Vec<Duration> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..PER_ROUND {
                std::hint::black_box(v.verify(std::hint::black_box(&req)).is_ok());
            }
            start.elapsed() / PER_ROUND as u32
        })
        .collect();
    rounds.sort();
    rounds[ROUNDS / 2]
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
    println!("| scheme | body | per request | generic hmac, same body | ratio |");
    println!("| --- | --- | --- | --- | --- |");
    for body in [push.clone(), push[..1024].to_vec()] {
        let size = if body.len() > 2000 { "7.8 KB" } else { "1 KB" };
        let generic = verifier(&format!(
            "scheme = \"hmac\"\nsecret = \"{secret}\"\nheader = \"x-signature\""
        ));
        let signed = generic.sign(&body, None, "/hooks/r", now).unwrap();
        let baseline = time(&generic, &headers(&signed.headers), &body, &uri, now);
        println!(
            "| hmac (baseline) | {size} | {:.2} us | - | 1.00x |",
            baseline.as_secs_f64() * 1e6
        );
        let report = |label: &str, t: Duration| {
            println!(
                "| {label} | {size} | {:.2} us | {:.2} us | {:.2}x |",
                t.as_secs_f64() * 1e6,
                baseline.as_secs_f64() * 1e6,
                t.as_secs_f64() / baseline.as_secs_f64()
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
            report(
                row.label,
                time(&v, &headers(&signed.headers), &body, &uri, now),
            );
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
        let h = HashMap::from([
            (
                "x-signature-ed25519".to_string(),
                hex::encode(ed.sign(&message).as_ref()),
            ),
            ("x-signature-timestamp".to_string(), ts.clone()),
        ]);
        report(
            "discord (Ed25519)",
            time(
                &v,
                &headers(&h.into_iter().collect::<Vec<_>>()),
                &body,
                &uri,
                now,
            ),
        );
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
        report(
            "sendgrid (ECDSA P-256)",
            time(&v, &headers(&h), &body, &uri, now),
        );
    }
}
