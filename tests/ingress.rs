//! Ingress limits and answers: 404, 405, 413, 408, slow headers, health endpoints.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::*;

fn config() -> String {
    format!(
        r#"{SERVER}
[destinations.sink]
url = "http://127.0.0.1:9/unused"

[[routes]]
name = "in"
verify = {{ scheme = "none" }}
to = ["sink"]
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_route_wrong_method_and_oversized_body_get_clear_answers() {
    let router = Router::start(&config()).expect("router starts");
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{}/hooks/nope", router.base()))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.text().await.unwrap(), "{\"error\":\"unknown route\"}\n");
    let r = client
        .get(format!("{}/hooks/in", router.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    // A declared length over the limit is refused before any of the body is read. (Raw TCP:
    // a client still writing a large body may see the connection close under it.)
    let mut s = TcpStream::connect(("127.0.0.1", router.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /hooks/in HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        64 * 1024 + 1
    )
    .unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.ends_with("{\"error\":\"body too large\"}\n"),
        "{answer}"
    );
    let r = client
        .get(format!("{}/healthz", router.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client
        .get(format!("{}/readyz", router.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(router.count("SELECT COUNT(*) FROM events"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn chunked_body_over_the_limit_is_413() {
    let router = Router::start(&config()).expect("router starts");
    let mut s = TcpStream::connect(("127.0.0.1", router.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /hooks/in HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .unwrap();
    let chunk = vec![b'y'; 1024];
    for _ in 0..70 {
        // The router may answer and close before all chunks are written.
        if write!(s, "400\r\n")
            .and_then(|_| s.write_all(&chunk))
            .and_then(|_| write!(s, "\r\n"))
            .is_err()
        {
            break;
        }
    }
    let _ = write!(s, "0\r\n\r\n");
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert_eq!(router.count("SELECT COUNT(*) FROM events"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_body_is_408_and_slow_headers_are_cut_off() {
    let router = Router::start(&config()).expect("router starts");
    let addr = format!("127.0.0.1:{}", router.port);
    // Headers promise 100 bytes; only 10 ever come. body_timeout is 1s.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /hooks/in HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789"
    )
    .unwrap();
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");

    // Headers that never finish: the connection is closed after header_timeout (1s).
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "POST /hooks/in HTTP/1.1\r\nHost: x\r\n").unwrap();
    let started = Instant::now();
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink);
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "connection was held open"
    );
    assert_eq!(router.count("SELECT COUNT(*) FROM events"), 0);
}
