//! `hookyard events|deliveries|replay|destinations`: the admin API from the command line,
//! printed as tables (or raw JSON with `--json`).

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde_json::Value;

use crate::admin::{DeliveryView, EventDetail, EventView, Page};
use crate::config::Config;

/// Where the admin API is and how to authenticate.
#[derive(Debug, Args)]
pub struct Connection {
    /// The config file: its `admin_listen` and `admin_token` are used.
    #[arg(short, long, default_value = "router.toml", global = true)]
    config: PathBuf,
    /// The admin API's base URL, instead of the config's `admin_listen`.
    #[arg(long, global = true)]
    admin_url: Option<String>,
    /// The admin token, instead of the config's `admin_token`.
    #[arg(
        long,
        env = "HOOKYARD_ADMIN_TOKEN",
        hide_env_values = true,
        global = true
    )]
    token: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

/// Filters shared by the listings and the bulk replay.
#[derive(Debug, Args, Default)]
pub struct Filters {
    /// Only this status.
    #[arg(long)]
    status: Option<String>,
    /// Only this route.
    #[arg(long)]
    route: Option<String>,
    /// Only this destination (deliveries).
    #[arg(long)]
    destination: Option<String>,
    /// Only since this time: RFC 3339, epoch ms, or a duration ago like `2h`.
    #[arg(long)]
    since: Option<String>,
    /// Only before this time.
    #[arg(long)]
    until: Option<String>,
    /// At most this many.
    #[arg(long)]
    limit: Option<usize>,
}

impl Filters {
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        let fields = [
            ("status", &self.status),
            ("route", &self.route),
            ("destination", &self.destination),
            ("since", &self.since),
            ("until", &self.until),
        ];
        for (k, v) in fields {
            if let Some(v) = v {
                q.push((k, v.clone()));
            }
        }
        if let Some(l) = self.limit {
            q.push(("limit", l.to_string()));
        }
        q
    }
}

/// `hookyard events ...`
#[derive(Debug, Subcommand)]
pub enum EventsCmd {
    /// Show one event: headers, body, deliveries and attempts.
    Show {
        /// `evt_...`
        id: String,
    },
    /// Run one event through its route's plugins again.
    Replay {
        /// `evt_...`
        id: String,
    },
}

/// `hookyard deliveries ...`
#[derive(Debug, Subcommand)]
pub enum DeliveriesCmd {
    /// Show one delivery with every attempt.
    Show {
        /// `dlv_...`
        id: String,
    },
    /// Attempt one delivery again now, with a fresh retry budget.
    Retry {
        /// `dlv_...`
        id: String,
    },
}

/// `hookyard destinations ...`
#[derive(Debug, Subcommand)]
pub enum DestinationsCmd {
    /// Resume a destination paused after a 410.
    Resume {
        /// Destination name.
        name: String,
    },
}

/// `hookyard secret ...`: the secret a route learned from its provider's handshake.
#[derive(Debug, Subcommand)]
pub enum SecretCmd {
    /// Print it (Notion's verification token must be pasted back into Notion).
    Show {
        /// Route name.
        route: String,
    },
    /// Forget it, so the provider's next handshake sets a new one.
    Forget {
        /// Route name.
        route: String,
    },
}

/// Runs `hookyard secret show|forget <route>`.
pub fn secret(conn: &Connection, cmd: SecretCmd) -> Result<()> {
    let client = Client::new(conn)?;
    match cmd {
        SecretCmd::Show { route } => {
            let value = client.get(&format!("/admin/routes/{route}/secret"), &[])?;
            if !client.printed_json(&value) {
                match value["secret"].as_str() {
                    Some(s) => println!("{s}"),
                    None => bail!(
                        "route {route:?} has no secret yet: the provider's handshake has not come"
                    ),
                }
            }
        }
        SecretCmd::Forget { route } => {
            let value = client.delete(&format!("/admin/routes/{route}/secret"))?;
            if !client.printed_json(&value) {
                println!("{route}: secret forgotten; the provider's next handshake sets a new one");
            }
        }
    }
    Ok(())
}

/// A blocking admin client: the CLI makes one request at a time.
pub(super) struct Client {
    base: String,
    token: Option<String>,
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    json: bool,
}

impl Client {
    /// For `hookyard shadow`, whose own `--config` names a step's config, not the file.
    pub(super) fn for_shadow(
        config: &std::path::Path,
        admin_url: Option<String>,
        token: Option<String>,
    ) -> Result<Client> {
        Client::new(&Connection {
            config: config.to_path_buf(),
            admin_url,
            token,
            json: false,
        })
    }

    fn new(conn: &Connection) -> Result<Client> {
        let (base, config_token) = match &conn.admin_url {
            Some(url) => (url.trim_end_matches('/').to_string(), None),
            None => {
                let config = Config::load(&conn.config).with_context(|| {
                    "cannot read the admin address from the config; pass --admin-url and --token instead"
                })?;
                let Some(mut addr) = config.server.admin_listen else {
                    bail!(
                        "{} has no server.admin_listen: the admin API is off",
                        conn.config.display()
                    );
                };
                if addr.ip().is_unspecified() {
                    addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                (
                    format!("http://{addr}"),
                    config.server.admin_token.map(|t| t.expose().to_string()),
                )
            }
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        Ok(Client {
            base,
            token: conn.token.clone().or(config_token),
            rt,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .context("cannot build the HTTP client")?,
            json: conn.json,
        })
    }

    fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Value>,
    ) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, &url).query(query);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let (status, text) = self.rt.block_on(async {
            let resp = req
                .send()
                .await
                .with_context(|| format!("cannot reach the admin API at {}", self.base))?;
            let status = resp.status();
            anyhow::Ok((status, resp.text().await.unwrap_or_default()))
        })?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if !status.is_success() {
            let reason = value["error"]
                .as_str()
                .map_or_else(|| value.to_string(), str::to_string);
            bail!("{} {path}: {reason}", status.as_u16());
        }
        Ok(value)
    }

    pub(super) fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value> {
        self.call(reqwest::Method::GET, path, query, None)
    }

    fn post(&self, path: &str, body: Option<Value>) -> Result<Value> {
        self.call(reqwest::Method::POST, path, &[], body)
    }

    fn delete(&self, path: &str) -> Result<Value> {
        self.call(reqwest::Method::DELETE, path, &[], None)
    }

    /// Prints `value` as JSON when asked; returns whether it did.
    fn printed_json(&self, value: &Value) -> bool {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(value).unwrap_or_default()
            );
        }
        self.json
    }
}

fn when(ms: i64) -> String {
    let t = SystemTime::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

fn cut(s: &str, max: usize) -> String {
    let one_line = s.replace('\n', " ");
    if one_line.chars().count() <= max {
        return one_line;
    }
    one_line
        .chars()
        .take(max.saturating_sub(1))
        .collect::<String>()
        + "…"
}

/// Prints rows as aligned columns.
fn table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row);
    }
}

fn print_deliveries(items: &[DeliveryView]) {
    table(
        &[
            "ID",
            "DESTINATION",
            "STATUS",
            "ATTEMPTS",
            "CREATED",
            "LAST ERROR",
        ],
        items
            .iter()
            .map(|d| {
                vec![
                    d.id.clone(),
                    d.destination.clone(),
                    d.status.clone(),
                    d.attempts.to_string(),
                    when(d.created_at),
                    cut(d.last_error.as_deref().unwrap_or(""), 60),
                ]
            })
            .collect(),
    );
}

/// `hookyard events [filters] | show ID | replay ID`.
pub fn events(conn: &Connection, filters: &Filters, cmd: Option<EventsCmd>) -> Result<()> {
    let client = Client::new(conn)?;
    match cmd {
        None => {
            let value = client.get("/admin/events", &filters.query())?;
            if client.printed_json(&value) {
                return Ok(());
            }
            let page: Page<EventView> = serde_json::from_value(value)?;
            table(
                &["ID", "ROUTE", "TYPE", "STATUS", "RECEIVED", "BYTES", "NOTE"],
                page.items
                    .iter()
                    .map(|e| {
                        vec![
                            e.id.clone(),
                            e.route.clone(),
                            e.event_type.clone().unwrap_or_default(),
                            e.status.clone(),
                            when(e.received_at),
                            e.body_size.to_string(),
                            match (&e.error, &e.dropped) {
                                (Some(err), _) => cut(err, 60),
                                (None, Some(reason)) => cut(&format!("dropped: {reason}"), 60),
                                (None, None) => String::new(),
                            },
                        ]
                    })
                    .collect(),
            );
        }
        Some(EventsCmd::Show { id }) => {
            let value = client.get(&format!("/admin/events/{id}"), &[])?;
            if client.printed_json(&value) {
                return Ok(());
            }
            let e: EventDetail = serde_json::from_value(value)?;
            println!("event     {}", e.summary.id);
            println!("route     {}", e.summary.route);
            println!(
                "type      {}",
                e.summary.event_type.as_deref().unwrap_or("-")
            );
            println!("received  {}", when(e.summary.received_at));
            println!(
                "status    {}{}",
                e.summary.status,
                e.summary
                    .error
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            );
            println!("headers");
            for (k, v) in &e.headers {
                println!("  {k}: {v}");
            }
            println!(
                "body\n  {}",
                cut(e.body.as_deref().unwrap_or("(binary)"), 2000)
            );
            println!("deliveries");
            print_deliveries(&e.deliveries);
        }
        Some(EventsCmd::Replay { id }) => {
            let value = client.post(&format!("/admin/events/{id}/replay"), None)?;
            if !client.printed_json(&value) {
                println!("replaying {id}: it runs through its plugins again within a second");
            }
        }
    }
    Ok(())
}

/// `hookyard deliveries [filters] | show ID | retry ID`.
pub fn deliveries(conn: &Connection, filters: &Filters, cmd: Option<DeliveriesCmd>) -> Result<()> {
    let client = Client::new(conn)?;
    match cmd {
        None => {
            let value = client.get("/admin/deliveries", &filters.query())?;
            if client.printed_json(&value) {
                return Ok(());
            }
            let page: Page<DeliveryView> = serde_json::from_value(value)?;
            print_deliveries(&page.items);
        }
        Some(DeliveriesCmd::Show { id }) => {
            let value = client.get(&format!("/admin/deliveries/{id}"), &[])?;
            if client.printed_json(&value) {
                return Ok(());
            }
            let d: DeliveryView = serde_json::from_value(value)?;
            println!("delivery     {}", d.id);
            println!("event        {}", d.event_id);
            println!("destination  {}", d.destination);
            println!("status       {}", d.status);
            if let Some(e) = &d.last_error {
                println!("last error   {e}");
            }
            println!("attempts");
            table(
                &["#", "STARTED", "STATUS", "MS", "ERROR", "RESPONSE"],
                d.attempt_log
                    .unwrap_or_default()
                    .iter()
                    .map(|a| {
                        vec![
                            a.number.to_string(),
                            when(a.started_at),
                            a.status_code.map_or("-".into(), |c| c.to_string()),
                            a.latency_ms.to_string(),
                            cut(a.error.as_deref().unwrap_or(""), 50),
                            cut(a.response_body.as_deref().unwrap_or(""), 50),
                        ]
                    })
                    .collect(),
            );
        }
        Some(DeliveriesCmd::Retry { id }) => {
            let value = client.post(&format!("/admin/deliveries/{id}/retry"), None)?;
            if !client.printed_json(&value) {
                println!("{id} is queued to be attempted now");
            }
        }
    }
    Ok(())
}

/// `hookyard replay [filters] [--rerun-plugins]`.
pub fn replay(conn: &Connection, filters: &Filters, rerun_plugins: bool) -> Result<()> {
    let client = Client::new(conn)?;
    let mut body = serde_json::Map::new();
    for (k, v) in filters.query() {
        let v = if k == "limit" {
            Value::from(v.parse::<u64>().unwrap_or(0))
        } else {
            Value::String(v)
        };
        body.insert(k.to_string(), v);
    }
    body.insert("rerun_plugins".into(), Value::Bool(rerun_plugins));
    let value = client.post("/admin/replay", Some(Value::Object(body)))?;
    if !client.printed_json(&value) {
        if rerun_plugins {
            println!(
                "{} event(s) will run through their plugins again",
                value["replayed"]
            );
        } else {
            println!("{} deliver(ies) re-queued", value["requeued"]);
        }
    }
    Ok(())
}

/// `hookyard destinations [resume NAME]`.
pub fn destinations(conn: &Connection, cmd: Option<DestinationsCmd>) -> Result<()> {
    let client = Client::new(conn)?;
    match cmd {
        None => {
            let value = client.get("/admin/destinations", &[])?;
            if client.printed_json(&value) {
                return Ok(());
            }
            let rows = value["destinations"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|d| {
                            vec![
                                d["name"].as_str().unwrap_or("").to_string(),
                                if d["paused"] == true {
                                    "paused"
                                } else {
                                    "active"
                                }
                                .to_string(),
                                d["reason"].as_str().unwrap_or("").to_string(),
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default();
            table(&["NAME", "STATE", "REASON"], rows);
        }
        Some(DestinationsCmd::Resume { name }) => {
            let value = client.post(&format!("/admin/destinations/{name}/resume"), None)?;
            if !client.printed_json(&value) {
                println!("{name} resumed");
            }
        }
    }
    Ok(())
}

/// `hookyard alerts`: the conditions open on the node answering, and the latest alerts.
pub fn alerts(conn: &Connection) -> Result<()> {
    let client = Client::new(conn)?;
    let value = client.get("/admin/alerts", &[])?;
    if client.printed_json(&value) {
        return Ok(());
    }
    if value["configured"] != true {
        println!("[alerts] is not configured: no alerts are raised");
    }
    let subject = |v: &serde_json::Value| -> String {
        v.as_object()
            .and_then(|o| o.iter().next())
            .map(|(k, v)| format!("{k} {}", v.as_str().unwrap_or("")))
            .unwrap_or_default()
    };
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
    let open: Vec<Vec<String>> = value["open"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|o| {
                    vec![
                        text(&o["alert"]),
                        subject(&o["subject"]),
                        o["count"].to_string(),
                        text(&o["detail"]),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    println!("Open on this node:");
    table(&["CONDITION", "SUBJECT", "COUNT", "LATEST"], open);
    let recent: Vec<Vec<String>> = value["recent"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    vec![
                        text(&r["alert"]),
                        text(&r["state"]),
                        subject(&r["subject"]),
                        text(&r["summary"]),
                        text(&r["event_id"]),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    println!();
    println!("Latest alerts:");
    table(
        &["CONDITION", "STATE", "SUBJECT", "SUMMARY", "EVENT"],
        recent,
    );
    Ok(())
}
