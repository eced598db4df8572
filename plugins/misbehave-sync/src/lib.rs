//! `misbehave-sync`: the `misbehave` test plugin built without its `fetch` mode. It then
//! imports neither `http` nor `kv`, so the router instantiates and calls it synchronously;
//! the tests run every limit against both builds to prove both paths contain a plugin.

#[path = "../../misbehave/src/lib.rs"]
mod misbehave;
