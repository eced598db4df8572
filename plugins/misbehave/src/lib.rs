//! `misbehave`: a test plugin that breaks its limits on request, to prove the host contains it.
//!
//! The event body picks the behaviour: `{"mode": "loop"}` spins forever, `"grow"` allocates
//! until memory runs out, `"trap"` panics, `"many"` returns 500 outputs, `"big"` one output of
//! 2 MiB, `"fetch"` fetches the body's `url`, `"route"` outputs `payload` with the body's
//! `method` and `path`, `"email"` outputs the body's `email` object as an email; anything
//! else is echoed back unchanged.

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
        Some("fetch") => {
            let url = doc["url"].as_str().unwrap_or_default();
            let response = http::get(url)?;
            Ok(vec![Output::bytes(response.body, "application/json")])
        }
        _ => Ok(vec![Output::bytes(event.body, "application/json")]),
    }
}
