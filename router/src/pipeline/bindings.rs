//! The only `bindgen!` in the router: host-side bindings of `plugin-sdk/wit/plugin.wit`.
//! Generated items live in a private module; only what the router uses is re-exported.
//!
//! Imports are async (a slow `http.fetch` parks the plugin's fiber, not a thread) and may
//! trap (a store failure behind `kv` ends the event's run).

mod generated {
    #![allow(missing_docs)]
    wasmtime::component::bindgen!({
        path: "../plugin-sdk/wit",
        world: "plugin",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

pub use generated::hookyard::plugin::host::{Host, Level};
pub use generated::hookyard::plugin::http::{FetchError, Host as HttpHost, Request, Response};
pub use generated::hookyard::plugin::kv::Host as KvHost;
pub use generated::hookyard::plugin::types::{Error as PluginError, Host as TypesHost};
pub use generated::{Event, Output, Plugin, PluginPre};
