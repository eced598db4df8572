//! `hookyard plugin test` (run one plugin offline on one event, with config, secrets, kv
//! entries and canned HTTP responses) and `hookyard plugin new` (start a plugin crate).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Subcommand;

use crate::config::{ByteSize, Dur, PluginConfig};
use crate::pipeline::bindings::{Event, Response};
use crate::pipeline::engine::{Meter, PoolLimits, WasmEngine};
use crate::pipeline::host::{Capabilities, Fetcher, MemoryKv, PluginKv};
use crate::pipeline::{Plugin, run_chain};

/// `hookyard plugin ...`
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Run one plugin on one event offline; print its outputs as JSON, and its logs, time and
    /// fuel on stderr.
    Test(TestArgs),
    /// Create a plugin crate that builds for wasm32-wasip2 and has a passing test.
    New {
        /// The plugin's name (a crate name: letters, digits, `-`, `_`).
        name: String,
        /// Where to create it (a folder named after the plugin is made there).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Path to the hookyard-sdk crate.
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugin-sdk"))]
        sdk: PathBuf,
    },
}

/// Runs a `plugin` subcommand.
pub fn run(command: PluginCommand) -> Result<ExitCode> {
    match command {
        PluginCommand::Test(args) => test(args),
        PluginCommand::New { name, dir, sdk } => new(&name, &dir, &sdk),
    }
}

/// `hookyard plugin test` arguments.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// The plugin component (`.wasm`).
    plugin: PathBuf,
    /// A file holding the event body.
    #[arg(long)]
    event: PathBuf,
    /// The plugin's config, as JSON (e.g. '{"conditions": [...]}').
    #[arg(long)]
    config: Option<String>,
    /// The provider's event type (e.g. `push`).
    #[arg(long)]
    event_type: Option<String>,
    /// A request header, `name: value`; repeatable.
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
    /// A secret the plugin may read, `name=value`; repeatable.
    #[arg(long = "secret")]
    secrets: Vec<String>,
    /// A kv entry present before the run, `key=value`; repeatable.
    #[arg(long = "kv")]
    kv: Vec<String>,
    /// Canned answers for `http.fetch`: a JSON file
    /// `[{"method": "GET", "url": "...", "status": 200, "body": {...}}]`.
    #[arg(long)]
    responses: Option<PathBuf>,
    /// Memory limit.
    #[arg(long, default_value = "32MiB")]
    memory: String,
    /// Time limit.
    #[arg(long, default_value = "1s")]
    timeout: String,
    /// Fuel limit.
    #[arg(long)]
    fuel: Option<u64>,
}

fn pairs(items: &[String], sep: char, flag: &str) -> Result<Vec<(String, String)>> {
    items
        .iter()
        .map(|item| {
            item.split_once(sep)
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .with_context(|| format!("{flag} {item:?} must look like 'name{sep}value'"))
        })
        .collect()
}

fn canned(path: &Path) -> Result<Vec<(String, String, Response)>> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Canned {
        #[serde(default = "get")]
        method: String,
        url: String,
        #[serde(default = "ok")]
        status: u16,
        #[serde(default)]
        headers: Vec<(String, String)>,
        #[serde(default)]
        body: serde_json::Value,
    }
    fn get() -> String {
        "GET".into()
    }
    fn ok() -> u16 {
        200
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let list: Vec<Canned> = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a list of responses", path.display()))?;
    Ok(list
        .into_iter()
        .map(|c| {
            let body = match c.body {
                serde_json::Value::String(s) => s.into_bytes(),
                serde_json::Value::Null => Vec::new(),
                other => other.to_string().into_bytes(),
            };
            (
                c.method,
                c.url,
                Response {
                    status: c.status,
                    headers: c.headers,
                    body,
                },
            )
        })
        .collect())
}

fn test(args: TestArgs) -> Result<ExitCode> {
    let body = std::fs::read(&args.event)
        .with_context(|| format!("cannot read {}", args.event.display()))?;
    let plugin_config: serde_json::Value = match &args.config {
        Some(text) => serde_json::from_str(text).context("--config must be a JSON object")?,
        None => serde_json::json!({}),
    };
    let mut header_list: Vec<(String, String)> = pairs(&args.headers, ':', "--header")?
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    if !header_list.iter().any(|(n, _)| n == "content-type") {
        header_list.push(("content-type".into(), "application/json".into()));
    }
    let event_type = args.event_type.clone().or_else(|| {
        let map: http::HeaderMap = header_list
            .iter()
            .filter_map(|(n, v)| {
                Some((
                    http::HeaderName::from_bytes(n.as_bytes()).ok()?,
                    v.parse().ok()?,
                ))
            })
            .collect();
        crate::ingress::event_type(&map, &body)
    });
    let mut pc = PluginConfig::with_defaults(args.plugin.clone());
    pc.config = plugin_config;
    pc.memory = ByteSize::parse(&args.memory)
        .with_context(|| format!("invalid --memory {:?}", args.memory))?;
    pc.timeout = Dur(humantime::parse_duration(&args.timeout)
        .with_context(|| format!("invalid --timeout {:?}", args.timeout))?);
    pc.fuel = args.fuel;
    let answers = match &args.responses {
        Some(p) => canned(p)?,
        None => Vec::new(),
    };
    // Canned answers stand for the hosts the plugin would be allowed in router.toml.
    let allow_http = answers
        .iter()
        .filter_map(|(_, url, _)| {
            reqwest::Url::parse(url)
                .ok()?
                .host_str()
                .map(str::to_string)
        })
        .collect();
    let name = args
        .plugin
        .file_stem()
        .map_or("plugin".to_string(), |s| s.to_string_lossy().into_owned());
    let kv = Arc::new(MemoryKv::default());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    for (k, v) in pairs(&args.kv, '=', "--kv")? {
        runtime
            .block_on(kv.set(&name, &k, v.into_bytes(), None))
            .map_err(anyhow::Error::msg)?;
    }
    let caps = Arc::new(Capabilities {
        plugin: name.as_str().into(),
        config: pc.config.to_string().into(),
        secrets: pairs(&args.secrets, '=', "--secret")?.into_iter().collect(),
        allow_http,
        http_timeout: Duration::from_secs(5),
        http_max_response: 1 << 20,
        fetcher: Fetcher::Canned(Arc::new(answers)),
        kv,
        capture_logs: true,
        log_limit: Default::default(),
        kv_quota: crate::pipeline::host::KvQuota::new(pc.kv_max_keys),
    });
    // Every run reports its fuel here, limit or not, so an author can choose a limit.
    let engine = WasmEngine::metering(
        PoolLimits {
            instances: 8,
            max_memory: pc.memory.0,
        },
        crate::config::default_cache_dir(),
        Meter::All,
    )?;
    let plugin = Plugin::load(&engine, &args.plugin, &pc, caps)?;
    let event = Event {
        id: crate::store::new_id("evt"),
        route: "test".into(),
        received_at: crate::store::now_ms().max(0) as u64,
        headers: header_list,
        body,
        event_type,
    };
    let chain = runtime.block_on(run_chain(&[Arc::new(plugin)], &event));
    for (source, line) in &chain.stats.logs {
        eprintln!("log {source}: {line}");
    }
    let outputs = chain.result?;
    let shown: Vec<serde_json::Value> = outputs
        .iter()
        .map(|r| {
            let body =
                serde_json::from_slice::<serde_json::Value>(&r.output.body).unwrap_or_else(|_| {
                    serde_json::Value::String(String::from_utf8_lossy(&r.output.body).into_owned())
                });
            serde_json::json!({
                "destination": r.destination,
                "content_type": r.output.content_type,
                "headers": r.output.headers,
                "body": body,
            })
        })
        .collect();
    println!("{}", serde_json::to_string_pretty(&shown)?);
    if let Some(reason) = &chain.stats.dropped {
        eprintln!("dropped: {reason}");
    }
    eprintln!(
        "{} output(s) in {} us, {} fuel",
        outputs.len(),
        chain.stats.elapsed_us,
        chain.stats.fuel
    );
    Ok(ExitCode::SUCCESS)
}

fn new(name: &str, dir: &Path, sdk: &Path) -> Result<ExitCode> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!("plugin name {name:?} must use only letters, digits, '-' and '_'");
    }
    let root = dir.join(name);
    if root.exists() {
        bail!("{} already exists", root.display());
    }
    let sdk = sdk
        .canonicalize()
        .with_context(|| format!("cannot find hookyard-sdk at {} (pass --sdk)", sdk.display()))?;
    std::fs::create_dir_all(root.join("src"))?;
    std::fs::create_dir_all(root.join(".cargo"))?;
    let files = [
        ("Cargo.toml", cargo_toml(name, &sdk)),
        ("src/lib.rs", LIB_RS.to_string()),
        (".cargo/config.toml", CARGO_CONFIG.to_string()),
        (".gitignore", "/target\n".to_string()),
    ];
    for (path, text) in files {
        std::fs::write(root.join(path), text).with_context(|| format!("cannot write {path}"))?;
    }
    println!("created {}", root.display());
    println!("  cargo test                                              # runs its test natively");
    println!("  cargo build --release --target wasm32-wasip2            # builds the component");
    println!(
        "  hookyard plugin test target/wasm32-wasip2/release/{}.wasm --event event.json",
        name.replace('-', "_")
    );
    Ok(ExitCode::SUCCESS)
}

fn cargo_toml(name: &str, sdk: &Path) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
hookyard-sdk = {{ path = "{}" }}
serde = {{ version = "1", features = ["derive"] }}
serde_json = "1"

[profile.release]
opt-level = 3
lto = true
strip = true
codegen-units = 1
panic = "abort"

# A crate of its own, even when created inside another workspace.
[workspace]
"#,
        sdk.display()
    )
}

const CARGO_CONFIG: &str = r#"# A 64 KiB guest stack: a fresh instance per event touches fewer pages.
[target.wasm32-wasip2]
rustflags = ["-C", "link-arg=-zstack-size=65536"]
"#;

const LIB_RS: &str = r##"//! A Hookyard plugin. `handle` runs once per event, in a fresh sandbox.

use hookyard_sdk::prelude::*;
use serde::Deserialize;

/// This plugin's `config` table in router.toml.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct Config {
    /// Events whose "action" is not one of these are dropped (empty: keep all).
    actions: Vec<String>,
}

#[plugin]
fn handle(event: Event) -> Result<Vec<Output>> {
    let config: Config = config()?;
    let payload: Value = event.json()?;
    let action = payload["action"].as_str().unwrap_or_default();
    if !config.actions.is_empty() && !config.actions.iter().any(|a| a == action) {
        return drop_event(&format!("action {action:?} is not wanted"));
    }
    log::info(&format!("forwarding {action}"));
    Ok(vec![Output::json(&json!({ "text": format!("{} event: {action}", event.event_type.as_deref().unwrap_or("an")) }))?])
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookyard_sdk::testing::FakeHost;

    #[test]
    fn keeps_wanted_actions_and_drops_the_rest() {
        let host = FakeHost::new().config(json!({ "actions": ["opened"] })).install();
        let opened = Event::new(r#"{"action":"opened"}"#, &[], Some("pull_request"));
        let outputs = handle(opened).unwrap();
        assert_eq!(outputs[0].body_json().unwrap()["text"], "pull_request event: opened");
        assert_eq!(host.logs(), ["forwarding opened"]);

        let closed = Event::new(r#"{"action":"closed"}"#, &[], Some("pull_request"));
        assert!(handle(closed).unwrap().is_empty());
        assert_eq!(host.dropped().as_deref(), Some("action \"closed\" is not wanted"));
    }
}
"##;
