//! # hookyard-sdk: write Hookyard plugins in Rust
//!
//! A plugin is one function from an [`Event`] to zero or more [`Output`]s, compiled to a
//! WebAssembly component (`cargo build --target wasm32-wasip2`) and run by the router in a
//! sandbox with nothing granted but the capabilities below.
//!
//! ```ignore
//! use hookyard_sdk::prelude::*;
//!
//! #[plugin]
//! fn handle(event: Event) -> Result<Vec<Output>> {
//!     let push: Value = event.json()?;
//!     if push["ref"] != "refs/heads/main" {
//!         return drop_event("not the main branch");
//!     }
//!     Ok(vec![Output::json(&json!({ "text": format!("{} pushed", push["pusher"]["name"]) }))?])
//! }
//! ```
//!
//! Capabilities, each granted per plugin in `router.toml`: [`config`], [`secret`], [`log`],
//! [`http`] (only to `allow_http` hosts), [`kv`] (a small durable store of the plugin's own),
//! and the clock (`std::time::SystemTime`). Natively (`cargo test`), the same calls go to a
//! fake host that a test programs through [`testing`].
//!
//! The contract lives in `wit/plugin.wit`; this crate binds it and adds small helpers.

extern crate self as hookyard_sdk;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Generated bindings for `wit/plugin.wit`. Plugin authors rarely need these directly.
#[doc(hidden)]
#[allow(clippy::too_many_arguments)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "__export_plugin",
        default_bindings_module: "::hookyard_sdk::bindings",
        runtime_path: "::hookyard_sdk::__wit_bindgen::rt",
    });
}

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

pub use bindings::hookyard::plugin::types::{Error, Event, Output};
pub use hookyard_sdk_macros::plugin;

#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

#[cfg(target_arch = "wasm32")]
pub mod alloc;

pub mod json;

/// The result type of a plugin's handler.
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// Everything a plugin usually needs, in one `use`.
pub mod prelude {
    pub use crate::{
        Email, Error, Event, Output, Result, config, drop_event, http, kv, log, path_segment,
        plugin, secret,
    };
    pub use serde_json::{Value, json};
}

/// The host calls, on wasm through the imports, natively through [`testing`]'s fake host.
mod host {
    #[cfg(target_arch = "wasm32")]
    pub use crate::bindings::hookyard::plugin::host::{Level, config, drop_reason, log, secret};
    #[cfg(target_arch = "wasm32")]
    pub use crate::bindings::hookyard::plugin::http::fetch;
    #[cfg(target_arch = "wasm32")]
    pub use crate::bindings::hookyard::plugin::kv::{
        delete as kv_delete, get as kv_get, increment as kv_increment, set as kv_set,
        set_if_absent as kv_set_if_absent,
    };

    #[cfg(not(target_arch = "wasm32"))]
    pub use crate::bindings::hookyard::plugin::host::Level;
    #[cfg(not(target_arch = "wasm32"))]
    pub use crate::testing::fake::{
        config, drop_reason, fetch, kv_delete, kv_get, kv_increment, kv_set, kv_set_if_absent, log,
        secret,
    };
}

impl Error {
    /// An error with this message; the router records it on the event.
    pub fn new(message: impl Into<String>) -> Self {
        Error {
            message: message.into(),
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(err: serde_json::Error) -> Self {
        Error::new(format!("invalid JSON: {err}"))
    }
}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Error::new(message)
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Self {
        Error::new(message)
    }
}

impl Event {
    /// An event for tests: this body, these headers, this provider event type.
    pub fn new(
        body: impl Into<Vec<u8>>,
        headers: &[(&str, &str)],
        event_type: Option<&str>,
    ) -> Event {
        Event {
            id: "evt_test".into(),
            route: "test".into(),
            received_at: 0,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
                .collect(),
            body: body.into(),
            event_type: event_type.map(str::to_string),
        }
    }

    /// Parses the body as JSON into any deserialisable type (`serde_json::Value` included).
    /// A struct with only the fields a plugin reads parses much faster than a `Value`: serde
    /// skips the rest without building it.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        Ok(serde_json::from_slice(&self.body)?)
    }

    /// The value at a JSON pointer (`/pull_request/base/ref`) in the body, found without
    /// parsing the rest of it (see [`json::pointer`]); `None` if it does not resolve.
    pub fn json_pointer(&self, pointer: &str) -> Result<Option<Value>> {
        json::pointer(&self.body, pointer)
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> Result<&str> {
        core::str::from_utf8(&self.body).map_err(|e| Error::new(format!("body is not UTF-8: {e}")))
    }

    /// The body as `application/x-www-form-urlencoded` pairs (Slack commands, Twilio, HTML forms).
    pub fn form(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(&self.body).into_owned().collect()
    }

    /// The first value of a form field.
    pub fn form_value(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(&self.body)
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Output {
    /// An output whose body is `value` serialised as JSON, with content type `application/json`.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Output> {
        Ok(Output {
            body: serde_json::to_vec(value)?,
            headers: Vec::new(),
            content_type: Some("application/json".to_string()),
            destination: None,
            method: None,
            path: None,
        })
    }

    /// An output with a raw body and content type.
    pub fn bytes(body: impl Into<Vec<u8>>, content_type: &str) -> Output {
        Output {
            body: body.into(),
            headers: Vec::new(),
            content_type: Some(content_type.to_string()),
            destination: None,
            method: None,
            path: None,
        }
    }

    /// An email for an SMTP destination (content type `application/vnd.hookyard.email+json`).
    pub fn email(email: &Email) -> Result<Output> {
        Ok(Output::bytes(
            serde_json::to_vec(email)?,
            EMAIL_CONTENT_TYPE,
        ))
    }

    /// Sends this output to `destination` instead of the route's `to` list.
    pub fn to(mut self, destination: impl Into<String>) -> Output {
        self.destination = Some(destination.into());
        self
    }

    /// Uses this HTTP method for the delivered request (e.g. `PATCH`).
    pub fn method(mut self, method: impl Into<String>) -> Output {
        self.method = Some(method.into());
        self
    }

    /// Appends this to the destination's URL (a path and/or a `?query`).
    pub fn path(mut self, path: impl Into<String>) -> Output {
        self.path = Some(path.into());
        self
    }

    /// Adds a header to the delivered request.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Output {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The body parsed as JSON (handy in tests).
    pub fn body_json(&self) -> Result<serde_json::Value> {
        Ok(serde_json::from_slice(&self.body)?)
    }
}

/// The content type of outputs that SMTP destinations send as email.
pub const EMAIL_CONTENT_TYPE: &str = "application/vnd.hookyard.email+json";

/// An email for an SMTP destination; see [`Output::email`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct Email {
    /// Recipients.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<String>,
    /// Copies.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cc: Vec<String>,
    /// Blind copies.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bcc: Vec<String>,
    /// `Reply-To`, instead of the destination's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// The subject; any UTF-8.
    pub subject: String,
    /// The plain-text part.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The HTML part (with `text`, the message is multipart/alternative).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    /// Extra headers (not From, To, Subject and the like).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub headers: std::collections::BTreeMap<String, String>,
}

impl Email {
    /// An email with this subject.
    pub fn new(subject: impl Into<String>) -> Email {
        Email {
            subject: subject.into(),
            ..Default::default()
        }
    }
    /// Adds a recipient.
    pub fn to(mut self, address: impl Into<String>) -> Email {
        self.to.push(address.into());
        self
    }
    /// Sets the plain-text part.
    pub fn text(mut self, text: impl Into<String>) -> Email {
        self.text = Some(text.into());
        self
    }
    /// Sets the HTML part.
    pub fn html(mut self, html: impl Into<String>) -> Email {
        self.html = Some(html.into());
        self
    }
}

/// Reads this plugin's `config` table from `router.toml` into a typed value.
pub fn config<T: DeserializeOwned>() -> Result<T> {
    let raw = host::config();
    serde_json::from_str(&raw).map_err(|e| Error::new(format!("invalid plugin config: {e}")))
}

/// A secret granted to this plugin (`secrets = { name = "${VAR}" }` in `router.toml`).
pub fn secret(name: &str) -> Result<String> {
    host::secret(name)
        .ok_or_else(|| Error::new(format!("secret {name:?} is not granted to this plugin")))
}

/// `value` encoded as one URL path segment, for building an output's `path` or an
/// [`http`] URL from event data: everything but ASCII letters, digits, `-`, `_` and `~` is
/// percent-encoded, `/` and `.` included, so `"../admin"` stays one segment
/// (`%2E%2E%2Fadmin`). A value that is empty, `.` or `..` is an error: no encoding keeps such
/// a segment from meaning "this" or "the parent" directory, and the router refuses a path
/// that would leave its destination's base path anyway.
///
/// ```ignore
/// Output::json(&body)?.method("DELETE").path(format!("/contacts/{}", path_segment(id)?))
/// ```
pub fn path_segment(value: &str) -> Result<String> {
    if value.is_empty() || value == "." || value == ".." {
        return Err(Error::new(format!(
            "{value:?} cannot be a path segment (empty, '.' or '..')"
        )));
    }
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'~' => out.push(b as char),
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(HEX[usize::from(b >> 4)] as char);
                out.push(HEX[usize::from(b & 15)] as char);
            }
        }
    }
    Ok(out)
}

/// Drops the event, recording why (visible in the admin view).
pub fn drop_event(reason: &str) -> Result<Vec<Output>> {
    host::drop_reason(reason);
    Ok(Vec::new())
}

/// Writes to the router's log, tagged with this plugin's name and the event id.
pub mod log {
    use crate::host::{self, Level};

    /// Logs at debug level.
    pub fn debug(message: &str) {
        host::log(Level::Debug, message);
    }
    /// Logs at info level.
    pub fn info(message: &str) {
        host::log(Level::Info, message);
    }
    /// Logs at warn level.
    pub fn warn(message: &str) {
        host::log(Level::Warn, message);
    }
    /// Logs at error level.
    pub fn error(message: &str) {
        host::log(Level::Error, message);
    }
}

/// Outbound HTTP to the hosts in this plugin's `allow_http`.
pub mod http {
    pub use crate::bindings::hookyard::plugin::http::{FetchError, Request, Response};
    use crate::{Error, Result, host};
    use serde::Serialize;
    use serde::de::DeserializeOwned;

    impl Request {
        /// A request with this method and URL.
        pub fn new(method: &str, url: impl Into<String>) -> Request {
            Request {
                method: method.to_string(),
                url: url.into(),
                headers: Vec::new(),
                body: None,
            }
        }
        /// A GET.
        pub fn get(url: impl Into<String>) -> Request {
            Request::new("GET", url)
        }
        /// A POST.
        pub fn post(url: impl Into<String>) -> Request {
            Request::new("POST", url)
        }
        /// Adds a header.
        pub fn header(mut self, name: &str, value: &str) -> Request {
            self.headers.push((name.to_string(), value.to_string()));
            self
        }
        /// Adds `Authorization: Bearer <token>`.
        pub fn bearer(self, token: &str) -> Request {
            self.header("authorization", &format!("Bearer {token}"))
        }
        /// A JSON body with its content type.
        pub fn json<T: Serialize + ?Sized>(mut self, value: &T) -> Result<Request> {
            self.body = Some(serde_json::to_vec(value)?);
            Ok(self.header("content-type", "application/json"))
        }
        /// Sends it.
        pub fn send(self) -> core::result::Result<Response, FetchError> {
            fetch(self)
        }
    }

    impl Response {
        /// Whether the status is 2xx.
        pub fn ok(&self) -> bool {
            (200..300).contains(&self.status)
        }
        /// The body parsed as JSON.
        pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
            Ok(serde_json::from_slice(&self.body)?)
        }
        /// The body as text.
        pub fn text(&self) -> Result<&str> {
            core::str::from_utf8(&self.body)
                .map_err(|e| Error::new(format!("response is not UTF-8: {e}")))
        }
    }

    impl From<FetchError> for Error {
        fn from(e: FetchError) -> Self {
            Error::new(match e {
                FetchError::Denied(why) => format!("fetch denied: {why}"),
                FetchError::Timeout => "fetch timed out".to_string(),
                FetchError::TooLarge => "fetch response too large".to_string(),
                FetchError::Failed(why) => format!("fetch failed: {why}"),
            })
        }
    }

    /// Makes one request. Redirects are not followed.
    pub fn fetch(request: Request) -> core::result::Result<Response, FetchError> {
        host::fetch(&request)
    }

    /// GETs a URL.
    pub fn get(url: &str) -> core::result::Result<Response, FetchError> {
        fetch(Request::get(url))
    }
}

/// A small durable key-value store of this plugin's own.
pub mod kv {
    use std::time::Duration;

    use crate::{Error, Result, host};
    use serde::Serialize;
    use serde::de::DeserializeOwned;

    /// The bytes under `key`, unless absent or expired.
    pub fn get(key: &str) -> Option<Vec<u8>> {
        host::kv_get(key)
    }

    /// The JSON value under `key`.
    pub fn get_json<T: DeserializeOwned>(key: &str) -> Result<Option<T>> {
        get(key)
            .map(|b| serde_json::from_slice(&b))
            .transpose()
            .map_err(Error::from)
    }

    /// Stores bytes under `key`, optionally for `ttl`.
    pub fn set(key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        host::kv_set(key, value, ttl.map(|d| d.as_millis() as u64)).map_err(Error::new)
    }

    /// Stores a JSON value under `key`, optionally for `ttl`.
    pub fn set_json<T: Serialize + ?Sized>(
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<()> {
        set(key, &serde_json::to_vec(value)?, ttl)
    }

    /// Removes `key`.
    pub fn delete(key: &str) {
        host::kv_delete(key)
    }

    /// Adds `delta` to the integer under `key` and returns the sum, atomically: events
    /// running at the same time never lose an update (a `get` then `set` can). An absent or
    /// expired key counts as 0 and, when this creates it, expires after `ttl`. The value is
    /// stored as decimal text (`get_json::<i64>` reads it).
    ///
    /// ```ignore
    /// let seen_today = kv::increment("orders:2026-11-23", 1, Some(Duration::from_secs(86_400)))?;
    /// ```
    pub fn increment(key: &str, delta: i64, ttl: Option<Duration>) -> Result<i64> {
        host::kv_increment(key, delta, ttl.map(|d| d.as_millis() as u64)).map_err(Error::new)
    }

    /// Stores `value` under `key` only if the key is absent or expired; `true` if it did.
    /// Atomic: of events racing on one key exactly one gets `true`, which makes "handle each
    /// order once" a one-liner.
    ///
    /// ```ignore
    /// if !kv::set_if_absent(&format!("order:{id}"), b"1", Some(Duration::from_secs(7 * 86_400)))? {
    ///     return drop_event("order already handled");
    /// }
    /// ```
    pub fn set_if_absent(key: &str, value: &[u8], ttl: Option<Duration>) -> Result<bool> {
        host::kv_set_if_absent(key, value, ttl.map(|d| d.as_millis() as u64)).map_err(Error::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segment_encodes_slashes_and_dots_and_refuses_dot_segments() {
        assert_eq!(path_segment("ord_1001").unwrap(), "ord_1001");
        assert_eq!(
            path_segment("../../../admin/users/1").unwrap(),
            "%2E%2E%2F%2E%2E%2F%2E%2E%2Fadmin%2Fusers%2F1"
        );
        assert_eq!(
            path_segment("ada@example.com").unwrap(),
            "ada%40example%2Ecom"
        );
        assert_eq!(
            path_segment("a\\b?c#d é").unwrap(),
            "a%5Cb%3Fc%23d%20%C3%A9"
        );
        for bad in ["", ".", ".."] {
            assert!(path_segment(bad).is_err(), "{bad:?}");
        }
    }
}
