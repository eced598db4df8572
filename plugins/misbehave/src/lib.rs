//! `misbehave`: a test plugin that breaks its limits on request, to prove the host contains it.
//!
//! The event body picks the behaviour: `{"mode": "loop"}` spins forever, `"grow"` allocates
//! until memory runs out, `"trap"` panics, `"many"` returns 500 outputs, `"big"` one output of
//! 2 MiB, `"fetch"` fetches the body's `url` (with the body's `headers` object as request headers), `"route"` outputs `payload` with the body's
//! `method` and `path`, `"email"` outputs the body's `email` object as an email, `"print"`
//! writes to stdout and stderr and echoes, `"alloc"` runs the SDK allocator through every
//! pattern it handles and reports what it checked, `"slow"` keeps busy for the body's `ms`
//! milliseconds and echoes, `"log"` logs the body's `message` `times` times and echoes;
//! anything else is echoed back unchanged.
//!
//! `"once"` passes the event on only the first time its `key` is seen (`kv.set-if-absent`)
//! and drops it after. The `fetch` and `once` modes (feature `io`, on by default) make the
//! plugin import `http` and `kv`, so the router runs it on fibers; `plugins/misbehave-sync`
//! builds this same file without them, so it imports nothing that waits and runs on the
//! router's sync path.

use hookyard_sdk::prelude::*;

#[plugin]
fn handle(event: Event) -> Result<Vec<Output>> {
    let doc: Value = event.json()?;
    match doc["mode"].as_str() {
        Some("loop") => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        Some("grow") => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        Some("trap") => panic!("misbehave was asked to trap"),
        Some("many") => Ok((0..500)
            .map(|_| Output::bytes(b"{}".to_vec(), "application/json"))
            .collect()),
        Some("big") => Ok(vec![Output::bytes(vec![b' '; 2 << 20], "text/plain")]),
        Some("email") => Ok(vec![Output::bytes(
            serde_json::to_vec(&doc["email"])?,
            hookyard_sdk::EMAIL_CONTENT_TYPE,
        )]),
        Some("route") => {
            let mut out = Output::json(&doc["payload"])?;
            if let Some(m) = doc["method"].as_str() {
                out = out.method(m);
            }
            if let Some(p) = doc["path"].as_str() {
                out = out.path(p);
            }
            Ok(vec![out])
        }
        #[cfg(feature = "io")]
        Some("once") => {
            let key = doc["key"].as_str().unwrap_or_default();
            if !kv::set_if_absent(key, b"1", None)? {
                return drop_event(&format!("{key} was already handled"));
            }
            Ok(vec![Output::bytes(event.body, "application/json")])
        }
        #[cfg(feature = "io")]
        Some("fetch") => {
            let url = doc["url"].as_str().unwrap_or_default();
            let mut request = http::Request::get(url);
            if let Some(headers) = doc["headers"].as_object() {
                for (name, value) in headers {
                    request = request.header(name, value.as_str().unwrap_or_default());
                }
            }
            let response = request.send()?;
            Ok(vec![Output::bytes(response.body, "application/json")])
        }
        Some("alloc") => Ok(vec![Output::json(&allocations())?]),
        Some("log") => {
            let message = doc["message"].as_str().unwrap_or_default();
            for _ in 0..doc["times"].as_u64().unwrap_or(1) {
                log::info(message);
            }
            Ok(vec![Output::bytes(event.body, "application/json")])
        }
        Some("slow") => {
            let ms = doc["ms"].as_u64().unwrap_or(0);
            let until = std::time::Instant::now() + std::time::Duration::from_millis(ms);
            while std::time::Instant::now() < until {
                std::hint::spin_loop();
            }
            Ok(vec![Output::bytes(event.body, "application/json")])
        }
        Some("print") => {
            println!("misbehave prints to stdout");
            eprintln!("misbehave prints to stderr");
            Ok(vec![Output::bytes(event.body, "application/json")])
        }
        _ => Ok(vec![Output::bytes(event.body, "application/json")]),
    }
}

/// Allocates in every way the SDK's allocator distinguishes (growing the last block in
/// place, growing an older one, shrinking, blocks past the large-block threshold, over-aligned
/// blocks, frees in and out of order) and checks that no value was overwritten.
fn allocations() -> Value {
    // One vector grows in place, then past 32 KiB, to the C allocator.
    let mut grown: Vec<u64> = Vec::new();
    for i in 0..20_000u64 {
        grown.push(i * 3);
    }
    // Two strings grow in turn, so each growth of the older one must move it.
    let (mut a, mut b) = (String::new(), String::new());
    for i in 0..3000 {
        a.push_str(&i.to_string());
        b.push_str(&(i * 7).to_string());
    }
    // Shrink, then grow again.
    let mut shrunk: Vec<u8> = (0..=255).cycle().take(40_000).collect();
    shrunk.truncate(100);
    shrunk.shrink_to_fit();
    shrunk.extend(100..=255);
    // Over-aligned blocks, small and large.
    #[repr(align(64))]
    struct Line([u8; 64]);
    #[repr(align(4096))]
    struct Page([u8; 40_960]);
    let lines: Vec<Box<Line>> = (0..100).map(|i| Box::new(Line([i as u8; 64]))).collect();
    let page = Box::new(Page([9; 40_960]));
    // Many small values freed out of order, then reallocated.
    let mut boxes: Vec<Box<[u8; 24]>> =
        (0..5000).map(|i| Box::new([(i % 251) as u8; 24])).collect();
    boxes.retain(|b| b[0] % 2 == 0);
    let refilled: Vec<String> = (0..5000).map(|i| format!("value-{i}")).collect();
    let map: std::collections::HashMap<String, usize> =
        (0..2000).map(|i| (format!("key-{i}"), i)).collect();

    assert!(grown.iter().enumerate().all(|(i, v)| *v == i as u64 * 3));
    assert_eq!(a, (0..3000).map(|i| i.to_string()).collect::<String>());
    assert_eq!(
        b,
        (0..3000).map(|i| (i * 7).to_string()).collect::<String>()
    );
    assert!(shrunk.iter().enumerate().all(|(i, v)| *v == i as u8));
    assert!(lines.iter().enumerate().all(|(i, l)| {
        (&**l as *const Line as usize).is_multiple_of(64) && l.0.iter().all(|b| *b == i as u8)
    }));
    assert!(
        (&*page as *const Page as usize).is_multiple_of(4096) && page.0.iter().all(|b| *b == 9)
    );
    assert!(
        boxes
            .iter()
            .all(|b| b[0] % 2 == 0 && b.iter().all(|v| *v == b[0]))
    );
    assert!(
        refilled
            .iter()
            .enumerate()
            .all(|(i, s)| *s == format!("value-{i}"))
    );
    assert!((0..2000).all(|i| map[&format!("key-{i}")] == i));
    serde_json::json!({
        "grown": grown.len(),
        "strings": a.len() + b.len(),
        "shrunk": shrunk.len(),
        "aligned": lines.len() + 1,
        "boxes": boxes.len(),
        "refilled": refilled.len(),
        "map": map.len(),
    })
}
