//! End-to-end tests: the real `hookyard` binary, real sockets on 127.0.0.1, real SQLite
//! files, real HTTP receivers and the real wasm plugins built from `plugins/`.

mod support;

mod admin;
mod alerts;
mod backlog;
mod capabilities;
mod cli;
mod console;
mod delivery;
mod destinations;
mod email;
mod flow;
mod ingress;
mod plugin_limits;
mod poll;
mod postgres;
mod presets;
mod providers;
mod recipes;
mod reliability;
mod reload;
mod shadow;
mod telemetry;
mod verification;
