//! The `hookyard` command line: `serve`, `check`, `send`, `plugin test`, and the admin
//! commands in [`admin`].

mod admin;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use crate::config::{ByteSize, Config, Dur, PluginConfig};
use crate::pipeline::bindings::Event;
use crate::pipeline::engine::{PoolLimits, WasmEngine};
use crate::pipeline::{Plugin, run_chain};

/// Hookyard: verify, journal, transform and deliver webhooks.
#[derive(Debug, Parser)]
#[command(name = "hookyard", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the router.
    Serve {
        /// The config file.
        #[arg(short, long, default_value = "router.toml")]
        config: PathBuf,
    },
    /// Validate the config and load every plugin, without serving.
    Check {
        /// The config file.
        #[arg(short, long, default_value = "router.toml")]
        config: PathBuf,
    },
    /// Sign a payload as the route's provider would and POST it to the router.
    Send {
        /// The route name (`POST /hooks/<route>`).
        route: String,
        /// A file holding the request body.
        payload: PathBuf,
        /// The config file (for the route's secret and the listen address).
        #[arg(short, long, default_value = "router.toml")]
        config: PathBuf,
        /// The router's base URL; default `http://<server.listen>`.
        #[arg(long)]
        url: Option<String>,
        /// The provider event type (e.g. `push` for GitHub).
        #[arg(long)]
        event_type: Option<String>,
    },
    /// List events, or show or replay one (admin API).
    #[command(args_conflicts_with_subcommands = true)]
    Events {
        #[command(flatten)]
        connection: admin::Connection,
        #[command(flatten)]
        filters: admin::Filters,
        #[command(subcommand)]
        command: Option<admin::EventsCmd>,
    },
    /// List deliveries (dead letters with --status dead), or show or retry one (admin API).
    #[command(args_conflicts_with_subcommands = true)]
    Deliveries {
        #[command(flatten)]
        connection: admin::Connection,
        #[command(flatten)]
        filters: admin::Filters,
        #[command(subcommand)]
        command: Option<admin::DeliveriesCmd>,
    },
    /// Re-queue matching deliveries (e.g. --status dead), or re-run matching events' plugins.
    Replay {
        #[command(flatten)]
        connection: admin::Connection,
        #[command(flatten)]
        filters: admin::Filters,
        /// Run the matching events through their plugins again instead.
        #[arg(long)]
        rerun_plugins: bool,
    },
    /// List destinations and whether they are paused, or resume one (admin API).
    Destinations {
        #[command(flatten)]
        connection: admin::Connection,
        #[command(subcommand)]
        command: Option<admin::DestinationsCmd>,
    },
    /// Work with plugins.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Run one plugin on one event offline and print its outputs as JSON.
    Test {
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
        /// Memory limit.
        #[arg(long, default_value = "32MiB")]
        memory: String,
        /// Time limit.
        #[arg(long, default_value = "1s")]
        timeout: String,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HOOKYARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

fn dispatch(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Serve { config } => serve(&config),
        Command::Check { config } => check(&config),
        Command::Events {
            connection,
            filters,
            command,
        } => admin::events(&connection, &filters, command).map(|()| ExitCode::SUCCESS),
        Command::Deliveries {
            connection,
            filters,
            command,
        } => admin::deliveries(&connection, &filters, command).map(|()| ExitCode::SUCCESS),
        Command::Replay {
            connection,
            filters,
            rerun_plugins,
        } => admin::replay(&connection, &filters, rerun_plugins).map(|()| ExitCode::SUCCESS),
        Command::Destinations {
            connection,
            command,
        } => admin::destinations(&connection, command).map(|()| ExitCode::SUCCESS),
        Command::Send {
            route,
            payload,
            config,
            url,
            event_type,
        } => send(&config, &route, &payload, url, event_type.as_deref()),
        Command::Plugin {
            command:
                PluginCommand::Test {
                    plugin,
                    event,
                    config,
                    event_type,
                    headers,
                    memory,
                    timeout,
                },
        } => plugin_test(
            &plugin,
            &event,
            config.as_deref(),
            event_type,
            &headers,
            &memory,
            &timeout,
        ),
    }
}

fn serve(path: &Path) -> Result<ExitCode> {
    let config = Config::load(path)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listeners = crate::app::Listeners::bind(&config)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} (or the admin address {:?})",
                    config.server.listen, config.server.admin_listen
                )
            })?;
        let (trigger, shutdown) = crate::shutdown::channel();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down: finishing requests and deliveries in flight");
            trigger.fire();
        });
        crate::app::run(config, listeners, shutdown).await?;
        Ok(ExitCode::SUCCESS)
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn check(path: &Path) -> Result<ExitCode> {
    let config = Config::load(path)?;
    let plugins = crate::app::load_plugins(&config)?;
    crate::app::build_routes(&config, &plugins)?;
    crate::app::build_destinations(&config, &crate::egress::EgressPolicy::new(&config.egress))?;
    println!(
        "ok: {} route(s), {} plugin(s), {} destination(s)",
        config.routes.len(),
        plugins.plugins.len(),
        config.destinations.len()
    );
    Ok(ExitCode::SUCCESS)
}

fn send(
    config_path: &Path,
    route: &str,
    payload: &Path,
    url: Option<String>,
    event_type: Option<&str>,
) -> Result<ExitCode> {
    let config = Config::load(config_path)?;
    let rc = config
        .route(route)
        .with_context(|| format!("no route named {route:?} in {}", config_path.display()))?;
    let body =
        std::fs::read(payload).with_context(|| format!("cannot read {}", payload.display()))?;
    let verifier = crate::verify::Verifier::from_config(&rc.verify)
        .map_err(|e| anyhow::anyhow!("route {route:?}: {e}"))?;
    let signed = verifier.sign(
        &body,
        event_type,
        &format!("/hooks/{route}"),
        std::time::SystemTime::now(),
    );
    let base = url.unwrap_or_else(|| {
        let mut addr = config.server.listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        format!("http://{addr}")
    });
    let url = format!("{}{}", base.trim_end_matches('/'), signed.path_and_query);
    let headers = signed.headers;
    let content_type = if body.first().is_some_and(|b| *b == b'{' || *b == b'[') {
        "application/json"
    } else {
        "application/x-www-form-urlencoded"
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (status, text) = runtime.block_on(async {
        let mut req = reqwest::Client::new()
            .post(&url)
            .header("content-type", content_type)
            .body(body);
        for (name, value) in &headers {
            req = req.header(name, value);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot POST to {url}"))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        anyhow::Ok((status, text))
    })?;
    println!("{} {}", status.as_u16(), text.trim_end());
    Ok(if status.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[allow(clippy::too_many_arguments)]
fn plugin_test(
    plugin_path: &Path,
    event_path: &Path,
    config: Option<&str>,
    event_type: Option<String>,
    headers: &[String],
    memory: &str,
    timeout: &str,
) -> Result<ExitCode> {
    let body = std::fs::read(event_path)
        .with_context(|| format!("cannot read {}", event_path.display()))?;
    let plugin_config: serde_json::Value = match config {
        Some(text) => serde_json::from_str(text).context("--config must be a JSON object")?,
        None => serde_json::json!({}),
    };
    let memory = ByteSize::parse(memory).with_context(|| format!("invalid --memory {memory:?}"))?;
    let timeout = Dur(humantime::parse_duration(timeout)
        .with_context(|| format!("invalid --timeout {timeout:?}"))?);
    let mut header_list = Vec::new();
    for h in headers {
        let Some((name, value)) = h.split_once(':') else {
            bail!("--header {h:?} must look like 'name: value'");
        };
        header_list.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    if !header_list.iter().any(|(n, _)| n == "content-type") {
        header_list.push(("content-type".into(), "application/json".into()));
    }
    let event_type = event_type.or_else(|| {
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
    let engine = WasmEngine::new(
        PoolLimits {
            instances: 8,
            max_memory: memory.0,
        },
        crate::config::default_cache_dir(),
    )?;
    let pc = PluginConfig {
        path: plugin_path.to_path_buf(),
        config: plugin_config,
        memory,
        timeout,
    };
    let name = plugin_path
        .file_stem()
        .map_or("plugin".to_string(), |s| s.to_string_lossy().into_owned());
    let plugin = Plugin::load(&engine, &name, plugin_path, &pc)?;
    let event = Event {
        id: crate::store::new_id("evt"),
        route: "test".into(),
        received_at: crate::store::now_ms().max(0) as u64,
        headers: header_list,
        body,
        event_type,
    };
    let started = Instant::now();
    let outputs = run_chain(&[std::sync::Arc::new(plugin)], &event)?;
    let elapsed = started.elapsed();
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
    eprintln!("{} output(s) in {:.2?}", outputs.len(), elapsed);
    Ok(ExitCode::SUCCESS)
}
