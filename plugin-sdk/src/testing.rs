//! Native test mode: `cargo test` on a plugin crate runs the handler on the host, with a
//! fake host the test programs: config, secrets, kv entries, canned HTTP responses. After
//! the call the test reads what the plugin logged, fetched, stored and why it dropped.
//!
//! ```ignore
//! use hookyard_sdk::testing::FakeHost;
//!
//! let host = FakeHost::new()
//!     .config(json!({"channel": "#sales"}))
//!     .secret("api_key", "sk_test")
//!     .respond("GET", "https://api.example.com/v1/orders/1", 200, r#"{"total": 12}"#)
//!     .install();
//! let outputs = handle(Event::new(r#"{"id": 1}"#, &[], None)).unwrap();
//! assert_eq!(host.requests()[0].url, "https://api.example.com/v1/orders/1");
//! ```
//!
//! The fake host is per thread, as `cargo test` runs each test on its own thread.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use crate::bindings::hookyard::plugin::host::Level;
use crate::http::{FetchError, Request, Response};

#[derive(Default)]
struct State {
    config: String,
    secrets: HashMap<String, String>,
    kv: HashMap<String, Vec<u8>>,
    responses: Vec<(String, String, Result<Response, FetchError>)>,
    requests: Vec<Request>,
    logs: Vec<(Level, String)>,
    dropped: Option<String>,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<RefCell<State>>>> = const { RefCell::new(None) };
}

/// A programmable host for native tests; [`FakeHost::install`] makes it this thread's host.
#[derive(Clone, Default)]
pub struct FakeHost {
    state: Rc<RefCell<State>>,
}

impl FakeHost {
    /// A host with an empty config (`{}`), no secrets, no kv entries, no responses.
    pub fn new() -> FakeHost {
        let host = FakeHost::default();
        host.state.borrow_mut().config = "{}".into();
        host
    }

    /// The plugin's config.
    pub fn config(self, value: serde_json::Value) -> FakeHost {
        self.state.borrow_mut().config = value.to_string();
        self
    }

    /// Grants a secret.
    pub fn secret(self, name: &str, value: &str) -> FakeHost {
        self.state
            .borrow_mut()
            .secrets
            .insert(name.into(), value.into());
        self
    }

    /// Puts a kv entry in place.
    pub fn kv(self, key: &str, value: &[u8]) -> FakeHost {
        self.state
            .borrow_mut()
            .kv
            .insert(key.into(), value.to_vec());
        self
    }

    /// Answers `method url` with this status and body (every time it is fetched).
    pub fn respond(self, method: &str, url: &str, status: u16, body: &str) -> FakeHost {
        let response = Response {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
        };
        self.state
            .borrow_mut()
            .responses
            .push((method.into(), url.into(), Ok(response)));
        self
    }

    /// Answers `method url` with an error.
    pub fn fail(self, method: &str, url: &str, error: FetchError) -> FakeHost {
        self.state
            .borrow_mut()
            .responses
            .push((method.into(), url.into(), Err(error)));
        self
    }

    /// Makes this the current thread's host; keep the returned handle to inspect it.
    pub fn install(self) -> FakeHost {
        CURRENT.with(|c| *c.borrow_mut() = Some(self.state.clone()));
        self
    }

    /// Requests the plugin made, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.state.borrow().requests.clone()
    }

    /// Lines the plugin logged.
    pub fn logs(&self) -> Vec<String> {
        self.state
            .borrow()
            .logs
            .iter()
            .map(|(_, m)| m.clone())
            .collect()
    }

    /// The reason given to `drop_event`, if any.
    pub fn dropped(&self) -> Option<String> {
        self.state.borrow().dropped.clone()
    }

    /// A kv entry as it is now.
    pub fn kv_value(&self, key: &str) -> Option<Vec<u8>> {
        self.state.borrow().kv.get(key).cloned()
    }
}

/// The fake imports the SDK calls natively.
pub(crate) mod fake {
    use super::*;

    fn with<T>(f: impl FnOnce(&mut State) -> T) -> T {
        CURRENT.with(|c| {
            let current = c.borrow();
            let state = current
                .as_ref()
                .expect("no fake host: call hookyard_sdk::testing::FakeHost::new()...install() in the test first");
            let mut state = state.borrow_mut();
            f(&mut state)
        })
    }

    pub fn config() -> String {
        with(|s| s.config.clone())
    }
    pub fn secret(name: &str) -> Option<String> {
        with(|s| s.secrets.get(name).cloned())
    }
    pub fn drop_reason(reason: &str) {
        with(|s| s.dropped = Some(reason.to_string()))
    }
    pub fn log(level: Level, message: &str) {
        with(|s| s.logs.push((level, message.to_string())))
    }
    pub fn fetch(request: &Request) -> Result<Response, FetchError> {
        with(|s| {
            s.requests.push(request.clone());
            s.responses
                .iter()
                .find(|(m, u, _)| m.eq_ignore_ascii_case(&request.method) && *u == request.url)
                .map(|(_, _, r)| r.clone())
                .unwrap_or_else(|| {
                    Err(FetchError::Denied(format!(
                        "no canned response for {} {}",
                        request.method, request.url
                    )))
                })
        })
    }
    pub fn kv_get(key: &str) -> Option<Vec<u8>> {
        with(|s| s.kv.get(key).cloned())
    }
    pub fn kv_set(key: &str, value: &[u8], _ttl_ms: Option<u64>) -> Result<(), String> {
        with(|s| {
            s.kv.insert(key.to_string(), value.to_vec());
            Ok(())
        })
    }
    pub fn kv_delete(key: &str) {
        with(|s| {
            s.kv.remove(key);
        })
    }
    pub fn kv_increment(key: &str, delta: i64, _ttl_ms: Option<u64>) -> Result<i64, String> {
        with(|s| {
            let sum = match s.kv.get(key) {
                None => Some(delta),
                Some(v) => std::str::from_utf8(v)
                    .ok()
                    .and_then(|t| t.trim().parse::<i64>().ok())
                    .and_then(|n| n.checked_add(delta)),
            };
            let sum = sum.ok_or_else(|| {
                format!("kv key {key:?} does not hold an integer, or adding {delta} overflows")
            })?;
            s.kv.insert(key.to_string(), sum.to_string().into_bytes());
            Ok(sum)
        })
    }
    pub fn kv_set_if_absent(key: &str, value: &[u8], _ttl_ms: Option<u64>) -> Result<bool, String> {
        with(|s| {
            if s.kv.contains_key(key) {
                return Ok(false);
            }
            s.kv.insert(key.to_string(), value.to_vec());
            Ok(true)
        })
    }
}
