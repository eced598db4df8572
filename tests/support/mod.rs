//! Test harness: the real `hookyard` binary on real sockets, real plugins built from
//! `plugins/`, real HTTP receivers, and a look into the real SQLite file.

#![allow(dead_code)]

pub mod postgres;

use std::collections::{HashMap, VecDeque};
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

/// A file under `tests/fixtures`.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = workspace().join("tests/fixtures").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()))
}

/// Builds the wasm plugins once per test process and returns their paths by crate name.
pub fn plugins() -> &'static HashMap<String, PathBuf> {
    static PLUGINS: OnceLock<HashMap<String, PathBuf>> = OnceLock::new();
    PLUGINS.get_or_init(|| build_plugins().expect("building the wasm plugins (is the wasm32-wasip2 target installed? run `rustup target add wasm32-wasip2`)"))
}

/// The path of one built plugin (`filter`, `github-to-chat`, `misbehave`).
pub fn plugin(name: &str) -> PathBuf {
    plugins()
        .get(name)
        .cloned()
        .unwrap_or_else(|| panic!("plugin {name} was not built"))
}

fn build_plugins() -> Result<HashMap<String, PathBuf>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // Cargo locks the target dir and rewrites nothing that is fresh, so concurrent test
    // processes can each run this and read the results after their own build returns.
    let out = Command::new(cargo)
        .current_dir(workspace())
        .args([
            "build",
            "--profile",
            "plugin",
            "--target",
            "wasm32-wasip2",
            "--message-format",
            "json-render-diagnostics",
            "-p",
            "filter",
            "-p",
            "github-to-chat",
            "-p",
            "misbehave",
            "-p",
            "misbehave-sync",
            "-p",
            "enrich",
            "-p",
            "template",
            "-p",
            "paid-order",
        ])
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo")?;
    if !out.status.success() {
        bail!("cargo build of the plugins failed");
    }
    let mut found = HashMap::new();
    for line in out.stdout.split(|b| *b == b'\n') {
        let Ok(msg) = serde_json::from_slice::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let name = msg["target"]["name"]
            .as_str()
            .unwrap_or_default()
            .replace('_', "-");
        for file in msg["filenames"].as_array().into_iter().flatten() {
            if let Some(f) = file.as_str().filter(|f| f.ends_with(".wasm")) {
                found.insert(name.clone(), PathBuf::from(f));
            }
        }
    }
    for want in [
        "filter",
        "github-to-chat",
        "misbehave",
        "misbehave-sync",
        "enrich",
        "template",
    ] {
        if !found.contains_key(want) {
            bail!("cargo reported no .wasm for {want}");
        }
    }
    Ok(found)
}

/// The JavaScript plugin (`plugins/js-lead-alert`), built with componentize-js when its
/// source is newer than the last build. Needs `npm ci --prefix plugins/js-lead-alert`.
pub fn js_plugin() -> &'static Path {
    static JS: OnceLock<PathBuf> = OnceLock::new();
    JS.get_or_init(|| {
        let dir = workspace().join("plugins/js-lead-alert");
        let out = dir.join("dist/js-lead-alert.wasm");
        let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        let sources = [dir.join("plugin.js"), dir.join("build.mjs"), workspace().join("plugin-sdk/wit/plugin.wit")];
        let stale = match modified(&out) {
            None => true,
            Some(built) => sources.iter().any(|s| modified(s).is_some_and(|m| m > built)),
        };
        if stale {
            assert!(
                dir.join("node_modules/@bytecodealliance/componentize-js").exists(),
                "componentize-js is not installed: run `npm ci --prefix plugins/js-lead-alert` (scripts/test.sh does)"
            );
            // Concurrent test processes each build to their own file, then rename over.
            let tmp = dir.join(format!("dist/js-lead-alert.{}.wasm", std::process::id()));
            let status = Command::new("node")
                .arg(dir.join("build.mjs"))
                .arg(&tmp)
                .status()
                .expect("run node");
            assert!(status.success(), "building the JavaScript plugin failed");
            std::fs::rename(&tmp, &out).expect("move the built plugin into place");
        }
        out
    })
}

/// A free port on 127.0.0.1 (bound, then released for the router to take).
pub fn free_port() -> u16 {
    // The kernel may hand the same ephemeral port out again as soon as it is closed, so a
    // router given two "free" ports could get one port twice: never return a port twice.
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    loop {
        let port = StdListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// A running `hookyard serve` in its own directory with its own store.
pub struct Router {
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// Replaces `{ADMIN_PORT}` in the config.
    pub admin_port: u16,
    child: Option<Child>,
    config_path: PathBuf,
    env: Vec<(String, String)>,
}

impl Router {
    /// Writes `config` (with `{PORT}` replaced by the router's port) and starts the router.
    pub fn start(config: &str) -> Result<Router> {
        Router::start_with_env(config, &[])
    }

    /// Like [`Router::start`], with extra environment variables for the process.
    pub fn start_with_env(config: &str, env: &[(&str, &str)]) -> Result<Router> {
        let dir = tempfile::tempdir()?;
        let port = free_port();
        let admin_port = free_port();
        let config_path = dir.path().join("router.toml");
        let text = config
            .replace("{PORT}", &port.to_string())
            .replace("{ADMIN_PORT}", &admin_port.to_string());
        std::fs::write(&config_path, text)?;
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut router = Router {
            dir,
            port,
            admin_port,
            child: None,
            config_path,
            env,
        };
        router.spawn()?;
        Ok(router)
    }

    fn spawn(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("router.log"))?;
        let child = Command::new(env!("CARGO_BIN_EXE_hookyard"))
            .args(["serve", "-c"])
            .arg(&self.config_path)
            .env("HOOKYARD_LOG", "info,hookyard=debug")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting hookyard")?;
        self.child = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = format!("{}/readyz", self.base());
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!(
                    "hookyard exited with {status} before it was ready; log:\n{}",
                    self.log()
                );
            }
            if let Ok(resp) = raw_http::get_status(&url)
                && resp == 200
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("hookyard not ready after 60s; log:\n{}", self.log())
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The router's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("router.log")).unwrap_or_default()
    }

    /// `http://127.0.0.1:<admin port>`.
    pub fn admin_base(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin_port)
    }

    /// The config file the router runs with.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Kills the process without warning (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the router again on the same port, config and store.
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        self.spawn()
    }

    /// Sends SIGHUP (reload).
    pub fn hup(&self) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .args(["-HUP", &child.id().to_string()])
                .status();
        }
    }

    /// Rewrites the config file (same `{PORT}` and `{ADMIN_PORT}` substitutions).
    pub fn rewrite_config(&self, config: &str) {
        let text = config
            .replace("{PORT}", &self.port.to_string())
            .replace("{ADMIN_PORT}", &self.admin_port.to_string());
        // Write then rename, as editors and deploy tools do, so a reload never reads half a file.
        let tmp = self.config_path.with_extension("tmp");
        std::fs::write(&tmp, text).expect("write config");
        std::fs::rename(&tmp, &self.config_path).expect("replace config");
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> Result<std::process::ExitStatus> {
        let mut child = self.child.take().context("not running")?;
        let pid = child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("hookyard did not exit within 30s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A read-only connection to the router's SQLite store.
    pub fn db(&self) -> rusqlite::Connection {
        let conn = rusqlite::Connection::open_with_flags(
            self.dir.path().join("data/hookyard.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("open store read-only");
        conn.busy_timeout(Duration::from_secs(5))
            .expect("busy timeout");
        conn
    }

    /// Runs a query returning one integer.
    pub fn count(&self, sql: &str) -> i64 {
        self.db().query_row(sql, [], |r| r.get(0)).expect(sql)
    }

    /// Events as (status, error), oldest first.
    pub fn events(&self) -> Vec<(String, Option<String>)> {
        let db = self.db();
        let mut stmt = db
            .prepare("SELECT status, error FROM events ORDER BY seq")
            .expect("query");
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("---- hookyard log ----\n{}", self.log());
        }
    }
}

/// Tiny blocking GET used before the async side is needed.
pub mod raw_http {
    pub fn get_status(url: &str) -> std::io::Result<u16> {
        use std::io::{Read, Write};
        let rest = url.strip_prefix("http://").unwrap_or(url);
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let mut s = std::net::TcpStream::connect(host)?;
        s.set_read_timeout(Some(std::time::Duration::from_secs(2)))?;
        write!(
            s,
            "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )?;
        let mut buf = String::new();
        s.read_to_string(&mut buf)?;
        buf.split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| std::io::Error::other("bad response"))
    }
}

/// One request a [`Receiver`] got.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

/// One scripted answer.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub delay: Duration,
    /// The body; `reply <status>` when unset.
    pub body: Option<String>,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("receiver got JSON")
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A real HTTP server that records what it receives and answers with scripted statuses.
#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    got: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<Reply>>>,
    default_reply: Arc<Mutex<Reply>>,
}

impl Receiver {
    /// Starts on a free port.
    pub async fn start() -> Receiver {
        Receiver::start_on(0).await
    }

    /// Starts on `port` (0 for any).
    pub async fn start_on(port: u16) -> Receiver {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind receiver");
        let receiver = Receiver {
            addr: listener.local_addr().expect("addr"),
            got: Default::default(),
            script: Default::default(),
            default_reply: Arc::new(Mutex::new(Reply {
                status: 200,
                ..Default::default()
            })),
        };
        let state = receiver.clone();
        let app = axum::Router::new().fallback(
            move |method: axum::http::Method,
                  uri: axum::http::Uri,
                  headers: HeaderMap,
                  body: Bytes| {
                let state = state.clone();
                async move {
                    let at = Instant::now();
                    let scripted = state.script.lock().unwrap().pop_front();
                    let reply =
                        scripted.unwrap_or_else(|| state.default_reply.lock().unwrap().clone());
                    state.got.lock().unwrap().push(Received {
                        method: method.to_string(),
                        path: uri.path().to_string(),
                        query: uri.query().map(str::to_string),
                        headers,
                        body,
                        at,
                    });
                    if !reply.delay.is_zero() {
                        tokio::time::sleep(reply.delay).await;
                    }
                    let text = reply
                        .body
                        .clone()
                        .unwrap_or_else(|| format!("reply {}", reply.status));
                    let mut resp = axum::response::Response::new(axum::body::Body::from(text));
                    *resp.status_mut() =
                        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
                    for (k, v) in reply.headers {
                        resp.headers_mut().insert(k, v.parse().unwrap());
                    }
                    resp
                }
            },
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        receiver
    }

    /// The next requests get these statuses, in order; then the default.
    pub fn answer(&self, statuses: &[u16]) {
        self.script
            .lock()
            .unwrap()
            .extend(statuses.iter().map(|s| Reply {
                status: *s,
                ..Default::default()
            }));
    }

    /// The next request gets this reply.
    pub fn reply(&self, reply: Reply) {
        self.script.lock().unwrap().push_back(reply);
    }

    /// Every request after the script gets this status.
    pub fn always(&self, status: u16) {
        self.default_reply.lock().unwrap().status = status;
    }

    /// Every request after the script gets this body.
    pub fn body_all(&self, body: &str) {
        self.default_reply.lock().unwrap().body = Some(body.to_string());
    }

    /// Every request after the script waits this long before answering.
    pub fn delay_all(&self, delay: Duration) {
        self.default_reply.lock().unwrap().delay = delay;
    }

    /// `http://addr/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived, or fails after `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            if Instant::now() > deadline {
                panic!(
                    "receiver got {} requests, expected {n} within {timeout:?}",
                    got.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// Polls `check` until it returns true, or fails after `timeout` naming `what`.
pub async fn eventually(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits until the router holds exactly one dead letter and returns its reason.
pub async fn dead_letter_reason(router: &Router) -> String {
    eventually("the delivery is dead", Duration::from_secs(20), || {
        router.count("SELECT COUNT(*) FROM deliveries WHERE status = 'dead'") == 1
    })
    .await;
    router
        .db()
        .query_row(
            "SELECT last_error FROM deliveries WHERE status = 'dead'",
            [],
            |r| r.get(0),
        )
        .expect("dead letter reason")
}

/// Waits until the router holds exactly `n` failed events and returns their errors, oldest first.
pub async fn failed_events(router: &Router, n: i64) -> Vec<String> {
    eventually(
        &format!("{n} failed event(s)"),
        Duration::from_secs(20),
        || router.count("SELECT COUNT(*) FROM events WHERE status = 'failed'") == n,
    )
    .await;
    let db = router.db();
    let mut stmt = db
        .prepare("SELECT error FROM events WHERE status = 'failed' ORDER BY seq")
        .expect("query");
    stmt.query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

/// Runs `hookyard check` on `config` written to `dir/router.toml`; returns success and stderr.
pub fn check_config(dir: &Path, config: &str) -> (bool, String) {
    let path = dir.join("router.toml");
    std::fs::write(&path, config).expect("write config");
    let out = Command::new(env!("CARGO_BIN_EXE_hookyard"))
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .expect("run hookyard check");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// GitHub's signature, computed here independently of the router's code.
pub fn github_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Standard Webhooks headers for `body`, computed here independently of the router's code.
pub fn standard_webhooks_headers(
    secret: &str,
    id: &str,
    ts: u64,
    body: &[u8],
) -> Vec<(String, String)> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64.decode(secret.trim_start_matches("whsec_")).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    vec![
        ("webhook-id".into(), id.into()),
        ("webhook-timestamp".into(), ts.to_string()),
        (
            "webhook-signature".into(),
            format!("v1,{}", b64.encode(mac.finalize().into_bytes())),
        ),
    ]
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// POSTs `body` with `headers` to the router's route; returns status and body text.
pub async fn post(
    router: &Router,
    route: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> (u16, String) {
    let client = reqwest::Client::new();
    let mut req = client
        .post(format!("{}/hooks/{route}", router.base()))
        .body(body.to_vec());
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let resp = req.send().await.expect("POST to router");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

/// POSTs a GitHub event signed with `secret`.
pub async fn post_github(
    router: &Router,
    route: &str,
    secret: &str,
    event: &str,
    delivery: &str,
    body: &[u8],
) -> (u16, String) {
    let headers = vec![
        ("content-type".to_string(), "application/json".to_string()),
        ("x-github-event".to_string(), event.to_string()),
        ("x-github-delivery".to_string(), delivery.to_string()),
        (
            "x-hub-signature-256".to_string(),
            github_signature(secret, body),
        ),
    ];
    post(router, route, &headers, body).await
}

/// The admin token test configs use.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// Runs a `hookyard` admin command against `router`; returns stdout, failing on a non-zero exit.
pub fn hookyard_admin(router: &Router, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hookyard"))
        .args(args)
        .arg("-c")
        .arg(router.config_path())
        .output()
        .expect("run hookyard");
    assert!(
        out.status.success(),
        "hookyard {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An admin UI page, signed in with the test token.
pub async fn ui_page(router: &Router, path: &str) -> String {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let signed_in = client
        .post(format!("{}/ui/login", router.admin_base()))
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .expect("sign in");
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    client
        .get(format!("{}{path}", router.admin_base()))
        .header("cookie", cookie)
        .send()
        .await
        .expect("UI page")
        .text()
        .await
        .unwrap()
}

/// GET or POST on the admin API with the test token; returns status and JSON.
pub async fn admin(
    router: &Router,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let client = reqwest::Client::new();
    let url = format!("{}{path}", router.admin_base());
    let mut req = match method {
        "POST" => client.post(url),
        _ => client.get(url),
    }
    .bearer_auth(ADMIN_TOKEN);
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let resp = req.send().await.expect("admin request");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

/// [`SERVER`], a `sink` destination posting to `receiver`, and `routes`.
pub fn with_sink(receiver: &Receiver, routes: &str) -> String {
    format!(
        "{SERVER}\n[destinations.sink]\nurl = \"{}\"\n\n{routes}",
        receiver.url("/")
    )
}

/// The `[store]` and `[server]` tables every test config starts with.
pub const SERVER: &str = r#"
[server]
listen = "127.0.0.1:{PORT}"
header_timeout = "1s"
body_timeout = "1s"
max_body = "64KiB"
admin_listen = "127.0.0.1:{ADMIN_PORT}"
admin_token = "test-admin-token-0123456789"

[store]
url = "sqlite://data/hookyard.db"

[egress]
allow_private = ["127.0.0.0/8"]
"#;
