//! # hookyard-sdk: write Hookyard plugins in Rust
//!
//! A plugin is one function from an [`Event`] to zero or more [`Output`]s, compiled to a
//! WebAssembly component (`cargo build --target wasm32-wasip2`) and run by the router in a
//! sandbox with nothing granted but what the [host interface](host) offers.
//!
//! ```ignore
//! use hookyard_sdk::prelude::*;
//!
//! #[plugin]
//! fn handle(event: Event) -> Result<Vec<Output>> {
//!     let push: Value = event.json()?;
//!     if push["ref"] != "refs/heads/main" {
//!         return Ok(vec![]); // dropped
//!     }
//!     Ok(vec![Output::json(&json!({ "text": format!("{} pushed", push["pusher"]["name"]) }))?])
//! }
//! ```
//!
//! The contract lives in `wit/plugin.wit`; this crate binds it and adds small helpers.

extern crate self as hookyard_sdk;

use serde::Serialize;
use serde::de::DeserializeOwned;

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

/// The result type of a plugin's handler.
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// Everything a plugin usually needs, in one `use`.
pub mod prelude {
    pub use crate::{Error, Event, Output, Result, config, log, plugin};
    pub use serde_json::{Value, json};
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
    /// Parses the body as JSON into any deserialisable type (`serde_json::Value` included).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        Ok(serde_json::from_slice(&self.body)?)
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> Result<&str> {
        core::str::from_utf8(&self.body).map_err(|e| Error::new(format!("body is not UTF-8: {e}")))
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
        })
    }

    /// An output with a raw body and content type.
    pub fn bytes(body: impl Into<Vec<u8>>, content_type: &str) -> Output {
        Output {
            body: body.into(),
            headers: Vec::new(),
            content_type: Some(content_type.to_string()),
            destination: None,
        }
    }

    /// Sends this output to `destination` instead of the route's `to` list.
    pub fn to(mut self, destination: impl Into<String>) -> Output {
        self.destination = Some(destination.into());
        self
    }

    /// Adds a header to the delivered request.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Output {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// Reads this plugin's `config` table from `router.toml` into a typed value.
pub fn config<T: DeserializeOwned>() -> Result<T> {
    let raw = bindings::hookyard::plugin::host::config();
    serde_json::from_str(&raw).map_err(|e| Error::new(format!("invalid plugin config: {e}")))
}

/// Writes to the router's log, tagged with this plugin's name and the event id.
pub mod log {
    use crate::bindings::hookyard::plugin::host::{self, Level};

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
