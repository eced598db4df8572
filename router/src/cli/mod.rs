//! The `hookyard` command line: `serve`, `check`, `send`, `providers`, `plugin test`, and the admin
//! commands in [`admin`].

mod admin;
mod plugin;
mod shadow;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use crate::config::Config;

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
    /// Sign a payload as the route's provider would and POST it to the router, or with
    /// --handshake make the provider's endpoint check (Slack, Zoom, Meta, Twitch, X, ...).
    Send {
        /// The route name (`POST /hooks/<route>`).
        route: String,
        /// A file holding the request body.
        #[arg(required_unless_present = "handshake")]
        payload: Option<PathBuf>,
        /// Make the provider's endpoint check instead, and say what a correct answer is.
        #[arg(long, conflicts_with = "payload")]
        handshake: bool,
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
    /// Poll a polled route's API once and print the items it would turn into events
    /// (one JSON object a line), without journaling anything.
    Poll {
        /// The route name.
        route: String,
        /// Required: the running router polls by itself; this only shows what it would find.
        #[arg(long)]
        dry_run: bool,
        /// Poll once (the only mode).
        #[arg(long)]
        once: bool,
        /// The cursor to poll from; default: the running router's (through its admin API).
        #[arg(long)]
        cursor: Option<String>,
        /// The config file.
        #[arg(short, long, default_value = "router.toml")]
        config: PathBuf,
    },
    /// Run a route's stored events through its chain with one step replaced, and show what
    /// would change (nothing is delivered).
    Shadow(shadow::ShadowArgs),
    /// A local stand-in destination (a chat webhook, a CRM): prints every request it gets
    /// and answers 200. For trying routes before the real destination exists.
    Receive {
        /// The port to listen on, on 127.0.0.1.
        #[arg(long, default_value_t = 9000)]
        port: u16,
    },
    /// List every verification scheme: the named providers and the generic ones.
    Providers {
        /// Print the full table (what is signed, replay protection, delivery id,
        /// handshake) as Markdown.
        #[arg(long)]
        markdown: bool,
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
    /// Alert conditions open now, and the latest alerts raised (admin API).
    Alerts {
        #[command(flatten)]
        connection: admin::Connection,
    },
    /// Show or forget the secret a route learned from its provider's handshake (Asana, Notion).
    Secret {
        #[command(flatten)]
        connection: admin::Connection,
        #[command(subcommand)]
        command: admin::SecretCmd,
    },
    /// Work with plugins: run one offline, or start a new one.
    Plugin {
        #[command(subcommand)]
        command: plugin::PluginCommand,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve { .. }) {
        // `serve` starts logging once it has read its config (which may ask for traces).
        let _ = init_tracing(None);
    }
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each once (see [`crate::describe_error`]).
fn describe(e: &anyhow::Error) -> String {
    crate::describe_error(e.as_ref())
}

/// Logs to stderr (`HOOKYARD_LOG`, default `info`). With `traces` (`[telemetry]` with an
/// `otlp_endpoint`, and the runtime exports run on), trace spans also go to the collector;
/// the exporter returned must live until the process ends.
fn init_tracing(
    traces: Option<(&crate::config::TelemetryConfig, tokio::runtime::Handle)>,
) -> Result<Option<crate::trace::Exporter>> {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::{EnvFilter, Layer as _};
    // Trace spans are for the collector, not the log.
    let filter = EnvFilter::try_from_env("HOOKYARD_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info"))
        .add_directive(format!("{}=off", crate::trace::TARGET).parse()?);
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(filter);
    let logging = tracing_subscriber::registry().with(logs);
    let Some((telemetry, runtime)) = traces else {
        let _ = logging.try_init();
        return Ok(None);
    };
    let Some(endpoint) = &telemetry.otlp_endpoint else {
        let _ = logging.try_init();
        return Ok(None);
    };
    let (layer, exporter) = crate::trace::layer(telemetry, endpoint, runtime)
        .context("cannot set up the OTLP trace exporter")?;
    let _ = logging.with(layer).try_init();
    // The URL may carry credentials: log where, not how.
    let collector = url::Url::parse(endpoint)
        .ok()
        .and_then(|u| Some(format!("{}://{}", u.scheme(), u.host_str()?)))
        .unwrap_or_default();
    tracing::info!(%collector, "exporting traces");
    Ok(Some(exporter))
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
        Command::Alerts { connection } => admin::alerts(&connection).map(|()| ExitCode::SUCCESS),
        Command::Send {
            route,
            payload,
            handshake: _,
            config,
            url,
            event_type,
        } => send(
            &config,
            &route,
            payload.as_deref(),
            url,
            event_type.as_deref(),
        ),
        Command::Secret {
            connection,
            command,
        } => admin::secret(&connection, command).map(|()| ExitCode::SUCCESS),
        Command::Poll {
            route,
            dry_run,
            once: _,
            cursor,
            config,
        } => poll(&config, &route, dry_run, cursor.as_deref()),
        Command::Shadow(args) => shadow::run(args),
        Command::Receive { port } => receive(port),
        Command::Providers { markdown } => {
            print!("{}", providers(markdown));
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin { command } => plugin::run(command),
    }
}

/// `hookyard poll <route> --dry-run`: one poll, printed, nothing journaled.
fn poll(config_path: &Path, route: &str, dry_run: bool, cursor: Option<&str>) -> Result<ExitCode> {
    if !dry_run {
        anyhow::bail!(
            "the running router polls {route:?} by itself; add --dry-run to see what the next poll would find"
        );
    }
    let config = Config::load(config_path)?;
    let rc = config
        .route(route)
        .with_context(|| format!("no route named {route:?} in {}", config_path.display()))?;
    let poll = rc
        .poll
        .clone()
        .with_context(|| format!("route {route:?} is posted to, not polled"))?;
    let source = crate::poll::Source::new(Arc::new(poll))
        .map_err(|e| anyhow::anyhow!("route {route:?}: {e}"))?;
    let egress = Arc::new(crate::egress::EgressPolicy::new(&config.egress));
    let client = crate::destinations::http::client(egress.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // The router's own cursor, when its admin API answers: the next poll starts there.
    let kept = match cursor {
        Some(_) => None,
        None => admin::Client::for_shadow(config_path, None, None)
            .and_then(|c| c.get("/admin/polls", &[]))
            .ok()
            .and_then(|polls| {
                polls["polls"]
                    .as_array()?
                    .iter()
                    .find(|p| p["route"] == route)
                    .and_then(|p| p["cursor"].as_str().map(str::to_string))
            }),
    };
    if cursor.is_none() {
        match &kept {
            Some(c) => eprintln!("from the router's cursor: {c}"),
            None => {
                eprintln!("no cursor from the router (not running, or none yet): from the start")
            }
        }
    }
    let cursor = cursor.map(str::to_string).or(kept);
    let found = runtime
        .block_on(source.fetch(&client, &egress, cursor.as_deref(), "cli-dry-run"))
        .map_err(|e| anyhow::anyhow!("route {route:?}: {e}"))?;
    for item in &found.items {
        println!("{}", serde_json::to_string(item)?);
    }
    eprintln!(
        "{} items on {} page(s); cursor after this poll: {}",
        found.items.len(),
        found.pages,
        found.cursor.as_deref().unwrap_or("(none)")
    );
    Ok(ExitCode::SUCCESS)
}

/// `hookyard receive`: prints each request (pretty JSON when it is JSON) and answers 200.
fn receive(port: u16) -> Result<ExitCode> {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, Method, Uri};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .with_context(|| format!("cannot listen on 127.0.0.1:{port}"))?;
        println!("receiver listening on 127.0.0.1:{port}");
        let app = axum::Router::new().fallback(
            |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| async move {
                let delivery = headers
                    .get("hookyard-delivery-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                let shown = serde_json::from_slice::<serde_json::Value>(&body)
                    .and_then(|v| serde_json::to_string_pretty(&v))
                    .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
                println!("--> {method} {uri}  delivery {delivery}\n{shown}");
                "ok"
            },
        );
        axum::serve(listener, app)
            .await
            .context("the receiver stopped")
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `hookyard providers`: every scheme with the keys its route needs, or the full Markdown table.
fn providers(markdown: bool) -> String {
    use crate::verify::catalog;
    if markdown {
        return catalog::markdown();
    }
    let entries = catalog::entries();
    let width =
        |f: fn(&catalog::Entry) -> &str| entries.iter().map(|e| f(e).len()).max().unwrap_or(0);
    let (w1, w2) = (width(|e| &e.scheme), width(|e| &e.provider));
    let mut out = format!("{:w1$}  {:w2$}  {}\n", "SCHEME", "PROVIDER", "KEYS");
    for e in &entries {
        out.push_str(&format!(
            "{:w1$}  {:w2$}  {}\n",
            e.scheme,
            e.provider,
            e.keys.replace('`', "")
        ));
    }
    out.push_str("\nverify = { scheme = \"<scheme>\", secret = \"${SECRET}\" } on a route; `hookyard providers --markdown` says what each checks.\n");
    out
}

fn serve(path: &Path) -> Result<ExitCode> {
    let config = Config::load(path)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // Dropped after the router stops, while the runtime still runs: the last spans go out.
    let _traces = init_tracing(Some((&config.telemetry, runtime.handle().clone())))?;
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
    let egress = Arc::new(crate::egress::EgressPolicy::new(&config.egress));
    let fetcher = crate::pipeline::host::Fetcher::Http {
        client: crate::destinations::http::client(egress.clone()),
        egress,
    };
    let kv = Arc::new(crate::pipeline::host::MemoryKv::default());
    let plugins = crate::live::load_plugins(&config, kv, fetcher)?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(crate::live::validate_plugins(&plugins))?;
    crate::live::build_routes(&config, &plugins)?;
    crate::live::build_destinations(
        &config,
        Arc::new(crate::egress::EgressPolicy::new(&config.egress)),
    )?;
    println!(
        "ok: {} route(s), {} plugin(s), {} destination(s)",
        config.routes.len(),
        plugins.plugins.len(),
        config.destinations.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// Signs `payload` as the route's provider would, or with none makes the provider's
/// endpoint check, sends it to the router, and prints the answer.
fn send(
    config_path: &Path,
    route: &str,
    payload: Option<&Path>,
    url: Option<String>,
    event_type: Option<&str>,
) -> Result<ExitCode> {
    let config = Config::load(config_path)?;
    let rc = config
        .route(route)
        .with_context(|| format!("no route named {route:?} in {}", config_path.display()))?;
    let verify = rc.verify.as_ref().with_context(|| {
        format!("route {route:?} is polled, not posted to (try: hookyard poll {route} --dry-run)")
    })?;
    let verifier = crate::verify::Verifier::from_config(verify)
        .map_err(|e| anyhow::anyhow!("route {route:?}: {e}"))?;
    let path = format!("/hooks/{route}");
    let now = std::time::SystemTime::now();
    let (method, signed, body, expect) = match payload {
        Some(payload) => {
            let body = std::fs::read(payload)
                .with_context(|| format!("cannot read {}", payload.display()))?;
            let signed = verifier
                .sign(&body, event_type, &path, now)
                .map_err(|e| anyhow::anyhow!("route {route:?}: {e}"))?;
            (reqwest::Method::POST, signed, body, None)
        }
        None => {
            let trial = verifier
                .trial_handshake(&path, now)
                .map_err(|e| anyhow::anyhow!("route {route:?}: {e}"))?;
            (trial.method, trial.signed, trial.body, Some(trial.expect))
        }
    };
    let base = url.unwrap_or_else(|| {
        let mut addr = config.server.listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        format!("http://{addr}")
    });
    let url = format!("{}{}", base.trim_end_matches('/'), signed.path_and_query);
    // A token route carries its secret in the query: errors name the URL without it.
    let shown = match url.split_once('?') {
        Some((path, _)) => format!("{path}?<query hidden>"),
        None => url.clone(),
    };
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
        let mut req = reqwest::Client::new().request(method.clone(), &url);
        if !body.is_empty() {
            req = req.header("content-type", content_type).body(body);
        }
        for (name, value) in &headers {
            req = req.header(name, value);
        }
        let resp = req
            .send()
            .await
            .map_err(reqwest::Error::without_url)
            .with_context(|| format!("cannot {method} to {shown}"))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        anyhow::Ok((status, text))
    })?;
    println!("{} {}", status.as_u16(), text.trim_end());
    if let Some(expect) = expect {
        println!("expected: {expect}");
    }
    Ok(if status.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod describe_tests {
    use super::describe;

    #[test]
    fn a_cause_already_quoted_is_not_repeated() {
        let inner = std::io::Error::other("connection refused");
        let quoted = anyhow::Error::new(inner).context("store: connection refused");
        assert_eq!(describe(&quoted), "store: connection refused");
        let plain = anyhow::Error::new(std::io::Error::other("connection refused"))
            .context("cannot open the store");
        assert_eq!(
            describe(&plain),
            "cannot open the store: connection refused"
        );
    }
}
