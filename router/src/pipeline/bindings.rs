//! The only `bindgen!`s in the router: host-side bindings of `plugin-sdk/wit/plugin.wit`.
//! Generated items live in private modules; only what the router uses is re-exported.
//!
//! Two flavours of the same world:
//! - async imports and exports, for plugins that import `http` or `kv`: a slow `http.fetch`
//!   or store access parks the plugin's fiber, not a thread;
//! - sync imports and exports, for plugins that import neither: no fiber to set up, which
//!   is most of the fixed cost of a small step (see docs/benchmarks.md).
//!
//! Both share the `types` interface, so an [`Event`] or [`Output`] is the same Rust type
//! whichever way a plugin is called. Imports may trap (a store failure behind `kv` ends the
//! event's run).

mod generated {
    #![allow(missing_docs)]
    wasmtime::component::bindgen!({
        path: "../plugin-sdk/wit",
        world: "plugin",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

mod generated_sync {
    #![allow(missing_docs)]
    wasmtime::component::bindgen!({
        path: "../plugin-sdk/wit",
        world: "plugin",
        imports: { default: trappable },
        with: { "hookyard:plugin/types": super::generated::hookyard::plugin::types },
    });
}

pub use generated::hookyard::plugin::host::{Host, Level};
pub use generated::hookyard::plugin::http::{FetchError, Host as HttpHost, Request, Response};
pub use generated::hookyard::plugin::kv::Host as KvHost;
pub use generated::hookyard::plugin::types::{Error as PluginError, Host as TypesHost};
pub use generated::{Event, Output, Plugin, PluginPre};

/// The sync flavour: the `host` interface and the world's pre-instance.
pub mod sync {
    pub use super::generated_sync::hookyard::plugin::host::{
        Host, Level, add_to_linker as add_host_to_linker,
    };
    pub use super::generated_sync::{Plugin, PluginPre};
}

/// Adds the (function-less) `types` interface to a linker of either flavour.
pub use generated::hookyard::plugin::types::add_to_linker as add_types_to_linker;
