//! The only `bindgen!` in the router: host-side bindings of `plugin-sdk/wit/plugin.wit`.
//! Generated items live in a private module; only what the router uses is re-exported.

mod generated {
    #![allow(missing_docs)]
    wasmtime::component::bindgen!({
        path: "../plugin-sdk/wit",
        world: "plugin",
    });
}

pub use generated::hookyard::plugin::host::{Host, Level};
pub use generated::hookyard::plugin::types::{Error as PluginError, Host as TypesHost};
pub use generated::{Event, Output, Plugin, PluginPre};
