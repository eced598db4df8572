//! `cargo bench -p hookyard --bench ingest`: how fast the router answers providers.
//!
//! Signed GitHub-style webhooks (1 KB JSON, `X-Hub-Signature-256`) are posted over 32
//! keep-alive connections on 127.0.0.1 for a few seconds, first to a bare hyper server that
//! reads the body and answers 202, then to the router (HMAC check, dedup, the event durable
//! in the SQLite journal before the 202, then run and delivered to a local receiver in the
//! background), alternating twice. The load generator runs in the same process, so both
//! sides share the machine alike; compare the ratio.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use hookyard::app::{Listeners, run};
use hookyard::config::Config;
use sha2::Sha256;

const CONNECTIONS: usize = 32;
const RUN_FOR: Duration = Duration::from_secs(3);
const SECRET: &str = "bench-secret";

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let body = payload();
    let signature = format!("sha256={}", hex::encode(sign(&body)));
    let (bare, router, _dir, trigger) = rt.block_on(async {
        let bare = bare_hyper().await;
        let sink = bare_hyper().await;
        let (router, dir, trigger) = start_router(sink).await;
        (bare, router, dir, trigger)
    });
    println!("| measurement | result | baseline (same run) | ratio |");
    println!("| --- | --- | --- | --- |");
    for _ in 0..2 {
        let base = rt.block_on(load(bare, "/", &body, &signature));
        let ours = rt.block_on(load(router, "/hooks/github", &body, &signature));
        println!(
            "| ingest: signed 1 KB GitHub webhook, durable before the 202, {CONNECTIONS} connections | {ours:.0} req/s | bare hyper answering 202 {base:.0} req/s | {:.2}x |",
            ours / base
        );
    }
    trigger.fire();
    // Let the router finish its shutdown (requests and chains in flight) before exiting.
    rt.block_on(async { tokio::time::sleep(Duration::from_millis(500)).await });
}

fn payload() -> Vec<u8> {
    let filler = "x".repeat(900);
    format!(r#"{{"ref":"refs/heads/main","pusher":{{"name":"bench"}},"note":"{filler}"}}"#)
        .into_bytes()
}

fn sign(body: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// A bare hyper server: reads the body, answers 202.
async fn bare_hyper() -> SocketAddr {
    use http_body_util::BodyExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    |req: hyper::Request<hyper::body::Incoming>| async move {
                        let _ = req.into_body().collect().await;
                        Ok::<_, std::convert::Infallible>(
                            hyper::Response::builder()
                                .status(202)
                                .body(http_body_util::Full::new(hyper::body::Bytes::from_static(
                                    b"{}",
                                )))
                                .expect("response"),
                        )
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// The router on port 0 with one GitHub route delivering to `sink`.
async fn start_router(
    sink: SocketAddr,
) -> (SocketAddr, tempfile::TempDir, hookyard::shutdown::Trigger) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("router.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[server]
listen = "127.0.0.1:0"

[store]
url = "sqlite://data/hookyard.db"

[egress]
allow_private = ["127.0.0.0/8"]

[destinations.sink]
url = "http://{sink}/"

[[routes]]
name = "github"
verify = {{ scheme = "github", secret = "{SECRET}" }}
to = ["sink"]
"#
        ),
    )
    .expect("config");
    let config = Config::load(&path).expect("config loads");
    let listeners = Listeners::bind(&config).await.expect("bind");
    let addr = listeners.hooks.local_addr().expect("addr");
    let (trigger, shutdown) = hookyard::shutdown::channel();
    tokio::spawn(async move {
        if let Err(e) = run(config, listeners, shutdown).await {
            eprintln!("router stopped: {e}");
        }
    });
    (addr, dir, trigger)
}

/// Requests per second answered 202 by `addr` over [`CONNECTIONS`] connections.
async fn load(addr: SocketAddr, path: &str, body: &[u8], signature: &str) -> f64 {
    let ok = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let (ok, body, signature) = (ok.clone(), body.to_vec(), signature.to_string());
        let url = format!("http://{addr}{path}");
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .expect("client");
            let mut n = 0u64;
            while started.elapsed() < RUN_FOR {
                n += 1;
                let resp = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("x-github-event", "push")
                    .header("x-github-delivery", format!("bench-{}", uuid_like(n)))
                    .header("x-hub-signature-256", &signature)
                    .body(body.clone())
                    .send()
                    .await;
                if resp.is_ok_and(|r| r.status() == 202) {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("load task");
    }
    ok.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// A delivery id unique across tasks and runs.
fn uuid_like(n: u64) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{n}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}
