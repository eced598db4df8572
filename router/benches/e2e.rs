//! `cargo bench -p hookyard --bench e2e` (or `scripts/bench-e2e.sh`, which installs what it
//! needs first): the whole path a user sees, acknowledged and then delivered.
//!
//! The real `hookyard` binary runs the demo's route (`main-or-pr` then `github-to-chat`, the
//! wasm plugins from `plugins/dist/`) and delivers to a counting HTTP receiver in this
//! process. `wrk`, in its own process, posts the 7.8 KB `examples/github-push.json` signed
//! with `X-Hub-Signature-256` and a unique `X-GitHub-Delivery` per request, over 32
//! connections. In the same run, bare hyper answering 202 takes the same load: the ratios
//! are what to compare, since this machine is noisy.
//!
//! Rows: bare hyper; SQLite for `HOOKYARD_BENCH_SECS` (default 30) at full load, for 10 s at
//! light load (4 connections), and a burst of 100,000 events posted as fast as they are
//! taken (then the time until the last is delivered, against the issue's bar: 100,000 / the
//! full-load row's delivered rate + 5 s), unless `HOOKYARD_BENCH_SQLITE=0`; PostgreSQL (a server
//! this bench starts) for as long, with one node and with two nodes on one database, unless
//! `HOOKYARD_BENCH_PG=0` or PostgreSQL is not installed. Delivered/s counts from the first
//! request to the last delivery; "missing" is
//! acknowledged events not delivered within 60 s of the load's end. "Router CPU/event" is the
//! CPU time the router processes used during the load and drain (from `/proc`), divided by the
//! events delivered: unlike rates it hardly moves with the machine's noise. A second table
//! splits it by thread: the store writer, the plugin workers, and the async workers that
//! serve requests and make deliveries. A third sets it beside the rest of the machine's CPU
//! per delivered event: the PostgreSQL server (postmaster and backends), wrk (the children
//! this bench waited for) and the receiver (this process); two cores at 10,000 events/s
//! allow 200 us for all of it.
//!
//! `HOOKYARD_BENCH_BINARY=/path/to/hookyard` measures that router binary instead of this
//! build's: to compare two builds, run the bench with each in turn, several times.
//! `HOOKYARD_BENCH_PG_STATEMENTS=1` also prints, for each PostgreSQL row, each statement's
//! calls, execution and planning time and pages read per delivered event and its share of
//! the server's execution time (`pg_stat_statements`).

#[path = "../../tests/support/postgres.rs"]
#[allow(dead_code)]
mod postgres;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

const SECRET: &str = "bench-secret";
const CONNECTIONS: usize = 32;
const LIGHT_CONNECTIONS: usize = 4;
/// Events in the burst row.
const BURST: u64 = 100_000;
/// How long acknowledged events may take to arrive after the load ends.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = root.canonicalize().expect("workspace root");
    if Command::new("wrk").arg("--version").output().is_err() {
        eprintln!("e2e bench: needs wrk (apt-get install wrk), or run scripts/bench-e2e.sh");
        std::process::exit(2);
    }
    for plugin in ["filter", "github-to-chat"] {
        let path = root.join(format!("plugins/dist/{plugin}.wasm"));
        if !path.exists() {
            eprintln!(
                "e2e bench: {} is missing; run scripts/build-plugins.sh",
                path.display()
            );
            std::process::exit(2);
        }
    }
    let secs: u64 = std::env::var("HOOKYARD_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let with_pg = std::env::var("HOOKYARD_BENCH_PG").map_or(true, |v| v != "0");
    let with_sqlite = std::env::var("HOOKYARD_BENCH_SQLITE").map_or(true, |v| v != "0");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let work = tempfile::tempdir().expect("tempdir");
    let body_path = root.join("examples/github-push.json");
    let body = std::fs::read(&body_path).expect("examples/github-push.json");
    let signature = format!("sha256={}", hex::encode(sign(&body)));

    let bare = rt.block_on(Receiver::start());
    let receiver = rt.block_on(Receiver::start());

    println!(
        "| load | acked/s | delivered/s end to end | missing | p99 ack | commits/event | router CPU/event | acked vs bare hyper | delivered vs bare hyper |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let mut burst_verdict: Option<String> = None;
    let base = wrk(
        &work,
        &[bare.addr],
        "/",
        &body_path,
        &signature,
        Load::For(CONNECTIONS, 10),
        "bare",
    );
    println!(
        "| bare hyper answering 202, {CONNECTIONS} connections, 10 s | {:.0} | - | - | {} | - | - | 1.00x | - |",
        base.per_sec(),
        base.p99
    );
    let mut rows = Rows {
        rt: &rt,
        work: &work,
        receiver: &receiver,
        body: &body_path,
        signature: &signature,
        base_rate: base.per_sec(),
        breakdowns: Vec::new(),
        machine: Vec::new(),
        server: None,
    };

    if with_sqlite {
        let sqlite = Node::start(
            &root,
            &work,
            "sqlite",
            "sqlite://data/hookyard.db",
            receiver.addr,
        );
        let mut sustained = 0.0;
        for (what, connections, secs, prefix) in [
            ("", CONNECTIONS, secs, "sq"),
            (" (light load)", LIGHT_CONNECTIONS, 10, "sql"),
        ] {
            let row = rows.measure(
                format!("SQLite, {connections} connections{what}, {secs} s"),
                &[&sqlite],
                Load::For(connections, secs),
                prefix,
            );
            if connections == CONNECTIONS {
                sustained = row.delivered_rate();
            }
        }
        let row = rows.measure(
            format!("SQLite, a burst of {BURST} events, {CONNECTIONS} connections"),
            &[&sqlite],
            Load::Burst(CONNECTIONS, BURST),
            "sqb",
        );
        // The issue's bar: the burst delivered within BURST / the sustained rate + 5 s, for
        // the rate this run sustained and for the 10,000/s the issue asks.
        let took = row.first_to_last.as_secs_f64();
        let complete = row.delivered >= row.load.acked();
        let verdict = |rate: f64| {
            let bar = BURST as f64 / rate.max(1.0) + 5.0;
            let met = if complete && took <= bar {
                "met"
            } else {
                "not met"
            };
            format!("{bar:.1} s at {rate:.0}/s ({met})")
        };
        burst_verdict = Some(format!(
            "The burst: {} acknowledged in {:.1} s, the last delivered {took:.1} s after the first request, {} missing. Bar ({BURST} / delivered rate + 5 s): {} for this run's full-load rate; {} for the target rate.",
            row.load.acked(),
            row.load.secs,
            row.load.acked().saturating_sub(row.delivered),
            verdict(sustained),
            verdict(10_000.0),
        ));
        drop(sqlite);
    }

    if with_pg {
        let statements = std::env::var("HOOKYARD_BENCH_PG_STATEMENTS").is_ok_and(|v| v == "1");
        let cluster = if statements {
            postgres::PgCluster::start_with_settings(&[
                ("shared_preload_libraries", "pg_stat_statements"),
                ("pg_stat_statements.track_planning", "on"),
            ])
        } else {
            postgres::PgCluster::start()
        };
        match cluster {
            Err(e) => println!("| PostgreSQL: not measured ({e:#}) | | | | | | | | |"),
            Ok(cluster) => {
                // As long as the SQLite row: a cost that grows with the rows a run leaves
                // behind (an index bloated until the next vacuum) shows only in long runs.
                let pg_secs = secs;
                rows.server = cluster.postmaster_pid();
                let url = rt.block_on(cluster.new_database());
                let one = Node::start(&root, &work, "pg1", &url, receiver.addr);
                if statements {
                    rt.block_on(reset_statements(&url));
                }
                let row = rows.measure(
                    format!("PostgreSQL, 1 node, {CONNECTIONS} connections, {pg_secs} s"),
                    &[&one],
                    Load::For(CONNECTIONS, pg_secs),
                    "pg",
                );
                if statements {
                    rt.block_on(print_statements(&url, "1 node", row.delivered));
                }
                drop(one);
                let url = rt.block_on(cluster.new_database());
                let a = Node::start(&root, &work, "pg2a", &url, receiver.addr);
                let b = Node::start(&root, &work, "pg2b", &url, receiver.addr);
                if statements {
                    rt.block_on(reset_statements(&url));
                }
                let row = rows.measure(
                    format!(
                        "PostgreSQL, 2 nodes on one database, {CONNECTIONS} connections in all, {pg_secs} s"
                    ),
                    &[&a, &b],
                    Load::For(CONNECTIONS, pg_secs),
                    "pgb",
                );
                if statements {
                    rt.block_on(print_statements(&url, "2 nodes", row.delivered));
                }
            }
        }
    }
    print_breakdowns(
        "router CPU per delivered event, by thread",
        &[],
        &rows.breakdowns,
    );
    // At 10,000 events/s two cores give 200 us of CPU per event to everything: the router,
    // the database server, wrk and the receiver.
    print_breakdowns(
        "CPU per delivered event, the whole machine (2 cores at 10,000/s allow 200 us)",
        &["router", "database server", "wrk", "receiver", "all"],
        &rows.machine,
    );
    if let Some(verdict) = burst_verdict {
        println!("\n{verdict}");
    }
}

/// Starts counting statements afresh (`HOOKYARD_BENCH_PG_STATEMENTS=1`).
async fn reset_statements(url: &str) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to the bench database");
    tokio::spawn(connection);
    client
        .batch_execute(
            "CREATE EXTENSION IF NOT EXISTS pg_stat_statements; SELECT pg_stat_statements_reset();",
        )
        .await
        .expect("pg_stat_statements");
}

/// Where the server's time went in one row (`nodes` names it): each statement's calls,
/// execution and planning time and pages read (shared buffers hit or read) per delivered
/// event, and its share of execution time, most calls first.
async fn print_statements(url: &str, nodes: &str, delivered: u64) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to the bench database");
    tokio::spawn(connection);
    let rows = client
        .query(
            "SELECT query, calls, total_exec_time, sum(total_exec_time) OVER (),
                    shared_blks_hit + shared_blks_read, total_plan_time FROM pg_stat_statements
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
             ORDER BY calls DESC LIMIT 12",
            &[],
        )
        .await
        .expect("pg_stat_statements");
    println!();
    println!(
        "| statement (PostgreSQL, {nodes}) | calls per delivered event | execution per delivered event | planning per delivered event | pages read per delivered event | share of execution time |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for row in rows {
        let query: String = row.get(0);
        let calls: i64 = row.get(1);
        let time: f64 = row.get(2);
        let all: f64 = row.get(3);
        let pages: i64 = row.get(4);
        let planning: f64 = row.get(5);
        let per_event = |n: f64| n / delivered.max(1) as f64;
        let text: String = query.split_whitespace().collect::<Vec<_>>().join(" ");
        let short: String = text.chars().take(90).collect();
        println!(
            "| `{}` | {:.3} | {:.0} us | {:.0} us | {:.1} | {:.0}% |",
            short.replace('|', "\\|"),
            per_event(calls as f64),
            per_event(time * 1000.0),
            per_event(planning * 1000.0),
            per_event(pages as f64),
            100.0 * time / all.max(f64::MIN_POSITIVE)
        );
    }
}

/// A table of CPU per delivered event, one column per kind (thread kind, or process): the
/// kinds in `order` first, then any others alphabetically.
fn print_breakdowns(title: &str, order: &[&str], rows: &[(String, BTreeMap<String, f64>)]) {
    if rows.is_empty() {
        return;
    }
    let others = rows
        .iter()
        .flat_map(|(_, split)| split.keys())
        .filter(|k| !order.contains(&k.as_str()))
        .collect::<std::collections::BTreeSet<_>>();
    let kinds: Vec<&str> = order
        .iter()
        .copied()
        .filter(|k| rows.iter().any(|(_, split)| split.contains_key(*k)))
        .chain(others.into_iter().map(String::as_str))
        .collect();
    println!();
    print!("| {title} |");
    for kind in &kinds {
        print!(" {kind} |");
    }
    println!();
    println!("|{}", " --- |".repeat(kinds.len() + 1));
    for (what, split) in rows {
        print!("| {what} |");
        for kind in &kinds {
            match split.get(*kind) {
                Some(us) => print!(" {us:.0} us |"),
                None => print!(" - |"),
            }
        }
        println!();
    }
}

/// CPU time (clock ticks) of a router process: in all, and by thread kind.
#[derive(Default, Clone)]
struct Cpu {
    total: u64,
    threads: BTreeMap<String, u64>,
}

impl Cpu {
    /// Reads `/proc/<pid>/stat` and each `/proc/<pid>/task/*/stat`. Threads that already ended
    /// count in the total but in no kind.
    fn of(pid: u32) -> Cpu {
        let mut cpu = Cpu {
            total: std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| stat_ticks(&s))
                .map_or(0, |(_, t)| t),
            ..Cpu::default()
        };
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return cpu;
        };
        for task in tasks.flatten() {
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            if let Some((name, ticks)) = stat_ticks(&stat) {
                *cpu.threads.entry(thread_kind(&name)).or_default() += ticks;
            }
        }
        cpu
    }

    fn add(&mut self, other: &Cpu) {
        self.total += other.total;
        for (k, v) in &other.threads {
            *self.threads.entry(k.clone()).or_default() += v;
        }
    }

    fn since(&self, before: &Cpu) -> Cpu {
        Cpu {
            total: self.total.saturating_sub(before.total),
            threads: self
                .threads
                .iter()
                .map(|(k, v)| {
                    let b = before.threads.get(k).copied().unwrap_or(0);
                    (k.clone(), v.saturating_sub(b))
                })
                .collect(),
        }
    }
}

/// A `/proc/<pid>/stat` (or task `stat`) line: the name, and the fields after it, so that
/// index 0 is the state (field 3 of the line).
struct Stat<'a> {
    name: &'a str,
    fields: Vec<&'a str>,
}

impl<'a> Stat<'a> {
    fn parse(stat: &'a str) -> Option<Stat<'a>> {
        let open = stat.find('(')?;
        let close = stat.rfind(')')?;
        Some(Stat {
            name: stat.get(open + 1..close)?,
            fields: stat.get(close + 2..)?.split(' ').collect(),
        })
    }

    fn number(&self, index: usize) -> Option<u64> {
        self.fields.get(index)?.parse().ok()
    }

    /// The parent's pid (field 4 of the line).
    fn parent(&self) -> Option<u64> {
        self.number(1)
    }

    /// User + system ticks (`utime + stime`, fields 14 and 15).
    fn ticks(&self) -> Option<u64> {
        Some(self.number(11)? + self.number(12)?)
    }

    /// User + system ticks of the children it has waited for (`cutime + cstime`, 16 and 17).
    fn waited_children_ticks(&self) -> Option<u64> {
        Some(self.number(13)? + self.number(14)?)
    }
}

/// A thread's name and user + system ticks from a `stat` line.
fn stat_ticks(stat: &str) -> Option<(String, u64)> {
    let stat = Stat::parse(stat)?;
    Some((stat.name.to_string(), stat.ticks()?))
}

fn thread_kind(name: &str) -> String {
    match name {
        n if n.starts_with("hookyard-store") => "store writer",
        n if n.starts_with("hookyard-plugin") => "plugins",
        n if n.starts_with("tokio-runtime-w") || n.starts_with("tokio-rt") => "async workers",
        _ => "other",
    }
    .to_string()
}

fn cpu_of(nodes: &[&Node]) -> Cpu {
    let mut all = Cpu::default();
    for node in nodes {
        all.add(&Cpu::of(node.child.id()));
    }
    all
}

/// One measured load: what was acknowledged and what arrived.
struct Row {
    load: WrkResult,
    delivered: u64,
    delivered_twice: u64,
    first_to_last: Duration,
    commits: Option<u64>,
    cpu: Cpu,
    outside: Outside,
}

impl Row {
    /// Events delivered per second from the first request to the last delivery.
    fn delivered_rate(&self) -> f64 {
        self.delivered as f64 / self.first_to_last.as_secs_f64().max(1e-3)
    }

    fn print(&self, what: &str, base_rate: f64) {
        let acked = self.load.acked();
        let delivered_rate = self.delivered_rate();
        let commits = self.commits.map_or("-".to_string(), |c| {
            format!("{:.3}", c as f64 / acked.max(1) as f64)
        });
        let twice = if self.delivered_twice > 0 {
            format!(" ({} delivered twice)", self.delivered_twice)
        } else {
            String::new()
        };
        println!(
            "| {what} | {:.0} | {:.0} | {}{twice} | {} | {commits} | {:.0} us | {:.2}x | {:.2}x |",
            self.load.per_sec(),
            delivered_rate,
            acked.saturating_sub(self.delivered),
            self.load.p99,
            self.cpu_per_event(self.cpu.total),
            self.load.per_sec() / base_rate,
            delivered_rate / base_rate,
        );
    }

    /// Microseconds of CPU per delivered event for `ticks` clock ticks.
    fn cpu_per_event(&self, ticks: u64) -> f64 {
        // Linux reports `stat` times in USER_HZ, which is 100 on every architecture it runs on.
        ticks as f64 * 10_000.0 / self.delivered.max(1) as f64
    }

    /// CPU per delivered event by process, and in all, in microseconds.
    fn machine_split(&self) -> BTreeMap<String, f64> {
        let mut split = BTreeMap::new();
        let mut all = self.cpu.total + self.outside.wrk + self.outside.receiver;
        split.insert("router".to_string(), self.cpu_per_event(self.cpu.total));
        if let Some(server) = self.outside.server {
            split.insert("database server".to_string(), self.cpu_per_event(server));
            all += server;
        }
        split.insert("wrk".to_string(), self.cpu_per_event(self.outside.wrk));
        split.insert(
            "receiver".to_string(),
            self.cpu_per_event(self.outside.receiver),
        );
        split.insert("all".to_string(), self.cpu_per_event(all));
        split
    }

    /// The router's CPU per delivered event by thread kind, in microseconds.
    fn cpu_split(&self) -> BTreeMap<String, f64> {
        let mut split: BTreeMap<String, f64> = self
            .cpu
            .threads
            .iter()
            .map(|(k, v)| (k.clone(), self.cpu_per_event(*v)))
            .collect();
        let named: u64 = self.cpu.threads.values().sum();
        *split.entry("other".into()).or_default() +=
            self.cpu_per_event(self.cpu.total.saturating_sub(named));
        split
    }
}

/// How a row loads the router: for a time, or until a number of events is acknowledged.
#[derive(Clone, Copy)]
enum Load {
    /// This many connections for this many seconds.
    For(usize, u64),
    /// This many connections until this many requests are answered.
    Burst(usize, u64),
}

/// What every measured row shares, and the CPU split of each row measured so far.
struct Rows<'a> {
    rt: &'a tokio::runtime::Runtime,
    work: &'a tempfile::TempDir,
    receiver: &'a Receiver,
    body: &'a Path,
    signature: &'a str,
    /// Bare hyper's rate in this run: what the ratios divide by.
    base_rate: f64,
    breakdowns: Vec<(String, BTreeMap<String, f64>)>,
    /// Each row's CPU per delivered event by process: router, server, wrk, receiver.
    machine: Vec<(String, BTreeMap<String, f64>)>,
    /// The PostgreSQL server's main process while its rows run.
    server: Option<u32>,
}

impl Rows<'_> {
    /// Measures one row, prints it and keeps its CPU split for the second table.
    fn measure(&mut self, what: String, nodes: &[&Node], load: Load, prefix: &str) -> Row {
        let row = measure(
            self.rt,
            self.work,
            nodes,
            self.receiver,
            self.body,
            self.signature,
            load,
            prefix,
            self.server,
        );
        row.print(&what, self.base_rate);
        self.machine.push((what.clone(), row.machine_split()));
        self.breakdowns.push((what, row.cpu_split()));
        row
    }
}

#[allow(clippy::too_many_arguments)]
fn measure(
    rt: &tokio::runtime::Runtime,
    work: &tempfile::TempDir,
    nodes: &[&Node],
    receiver: &Receiver,
    body: &Path,
    signature: &str,
    load: Load,
    prefix: &str,
    server: Option<u32>,
) -> Row {
    receiver.reset();
    let commits_before = rt.block_on(nodes[0].commits());
    let cpu_before = cpu_of(nodes);
    let outside_before = Outside::now(server);
    let started = Instant::now();
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.hooks).collect();
    let load = wrk(work, &addrs, "/hooks/github", body, signature, load, prefix);
    let acked = load.acked();
    // Wait for every acknowledged event, or until nothing arrives for a while.
    let deadline = Instant::now() + DRAIN_LIMIT;
    let mut last_count = 0;
    let mut last_change = Instant::now();
    loop {
        let n = receiver.count();
        if n >= acked || Instant::now() > deadline {
            break;
        }
        if n != last_count {
            last_count = n;
            last_change = Instant::now();
        } else if last_change.elapsed() > Duration::from_secs(20) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let commits_after = rt.block_on(nodes[0].commits());
    let cpu = cpu_of(nodes).since(&cpu_before);
    let outside = Outside::now(server).since(&outside_before);
    let last = receiver.last().unwrap_or(started);
    Row {
        load,
        delivered: receiver.distinct(),
        delivered_twice: receiver.count().saturating_sub(receiver.distinct()),
        first_to_last: last.saturating_duration_since(started),
        commits: commits_before
            .zip(commits_after)
            .map(|(b, a)| a.saturating_sub(b)),
        cpu,
        outside,
    }
}

/// CPU time (clock ticks) spent outside the router: this process (the receiver), the wrk
/// processes it ran and waited for, and the PostgreSQL server if there is one.
#[derive(Default, Clone, Copy)]
struct Outside {
    receiver: u64,
    wrk: u64,
    server: Option<u64>,
}

impl Outside {
    fn now(server: Option<u32>) -> Outside {
        let own = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let own = Stat::parse(&own);
        Outside {
            receiver: own.as_ref().and_then(Stat::ticks).unwrap_or(0),
            wrk: own
                .as_ref()
                .and_then(Stat::waited_children_ticks)
                .unwrap_or(0),
            server: server.map(tree_ticks),
        }
    }

    fn since(&self, before: &Outside) -> Outside {
        Outside {
            receiver: self.receiver.saturating_sub(before.receiver),
            wrk: self.wrk.saturating_sub(before.wrk),
            server: self
                .server
                .zip(before.server)
                .map(|(a, b)| a.saturating_sub(b)),
        }
    }
}

/// The ticks of a process, of the children it has waited for, and of its live children (a
/// PostgreSQL server: the postmaster and its backends).
fn tree_ticks(pid: u32) -> u64 {
    let own = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let mut ticks = Stat::parse(&own).map_or(0, |own| {
        own.ticks().unwrap_or(0) + own.waited_children_ticks().unwrap_or(0)
    });
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return ticks;
    };
    for entry in procs.flatten() {
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        if let Some(child) = Stat::parse(&stat).filter(|s| s.parent() == Some(pid.into())) {
            ticks += child.ticks().unwrap_or(0);
        }
    }
    ticks
}

/// What wrk reported.
struct WrkResult {
    requests: u64,
    non_2xx: u64,
    secs: f64,
    p99: String,
}

impl WrkResult {
    fn acked(&self) -> u64 {
        self.requests.saturating_sub(self.non_2xx)
    }
    fn per_sec(&self) -> f64 {
        self.acked() as f64 / self.secs.max(1e-3)
    }
}

/// Runs one wrk process per address (the connections and a burst split between them) and
/// sums them.
fn wrk(
    work: &tempfile::TempDir,
    addrs: &[SocketAddr],
    path: &str,
    body: &Path,
    signature: &str,
    load: Load,
    prefix: &str,
) -> WrkResult {
    // wrk runs for a time. In a burst its script stops sending after its share of answers
    // and leaves a file saying so; then wrk is interrupted, which ends it with its report.
    let done = |i: usize| work.path().join(format!("{prefix}{i}.done"));
    let (connections, secs, burst) = match load {
        Load::For(connections, secs) => (connections, secs, None),
        Load::Burst(connections, events) => (connections, 600, Some(events / addrs.len() as u64)),
    };
    let children: Vec<Child> = addrs
        .iter()
        .enumerate()
        .map(|(i, addr)| {
            let script = work.path().join(format!("{prefix}{i}.lua"));
            let stop = burst.map_or(String::new(), |share| {
                format!(
                    "local answered = 0\nresponse = function()\n  answered = answered + 1\n  if answered == {share} then\n    io.open(\"{}\", \"w\"):close()\n    wrk.thread:stop()\n  end\nend\n",
                    done(i).display()
                )
            });
            std::fs::write(
                &script,
                format!(
                    r#"local f = assert(io.open("{}", "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-GitHub-Event"] = "push"
wrk.headers["X-Hub-Signature-256"] = "{signature}"
local n = 0
request = function()
  n = n + 1
  wrk.headers["X-GitHub-Delivery"] = "{prefix}{i}-" .. n
  return wrk.format()
end
{stop}"#,
                    body.display()
                ),
            )
            .expect("wrk script");
            Command::new("wrk")
                .args(["-t1", &format!("-c{}", (connections / addrs.len()).max(1))])
                .arg(format!("-d{secs}s"))
                .args(["--latency", "--timeout", "10s", "-s"])
                .arg(&script)
                .arg(format!("http://{addr}{path}"))
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("start wrk")
        })
        .collect();
    let mut total = WrkResult {
        requests: 0,
        non_2xx: 0,
        secs: 0.0,
        p99: String::new(),
    };
    let mut p99s = Vec::new();
    for (i, mut child) in children.into_iter().enumerate() {
        if burst.is_some() {
            // `try_wait` keeps the exit status for `wait_with_output` below.
            while !done(i).exists() && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(5));
            }
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
        }
        let out = child.wait_with_output().expect("wrk ran");
        let text = String::from_utf8_lossy(&out.stdout);
        for line in text.lines().map(str::trim) {
            if let Some((n, rest)) = line.split_once(" requests in ") {
                total.requests += n.trim().parse::<u64>().unwrap_or(0);
                let secs = rest.split(',').next().unwrap_or("");
                total.secs = total.secs.max(parse_duration(secs));
            } else if let Some(n) = line.strip_prefix("Non-2xx or 3xx responses:") {
                total.non_2xx += n.trim().parse::<u64>().unwrap_or(0);
            } else if let Some(p) = line.strip_prefix("99%") {
                p99s.push(p.trim().to_string());
            }
        }
    }
    total.p99 = p99s.join(" / ");
    total
}

/// wrk's `30.00s`, `1.00m` or `500.00ms` as seconds.
fn parse_duration(text: &str) -> f64 {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else {
        (text, 1.0)
    };
    number.parse::<f64>().unwrap_or(0.0) * scale
}

fn sign(body: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// A router process: the real binary with the demo's route, its own directory.
struct Node {
    child: Child,
    hooks: SocketAddr,
    admin: SocketAddr,
}

impl Node {
    fn start(
        root: &Path,
        work: &tempfile::TempDir,
        name: &str,
        store: &str,
        sink: SocketAddr,
    ) -> Node {
        let dir = work.path().join(name);
        std::fs::create_dir_all(&dir).expect("node dir");
        let hooks = free_addr();
        let admin = free_addr();
        let plugins = root.join("plugins/dist");
        let config = format!(
            r#"
[server]
listen = "{hooks}"
admin_listen = "{admin}"
admin_without_token = true

[store]
url = "{store}"

[egress]
allow_private = ["127.0.0.0/8"]

[runtime]
cache_dir = "{cache}"

[plugins.main-or-pr]
path = "{plugins}/filter.wasm"
config = {{ match = "any", conditions = [
  {{ pointer = "/ref", one_of = ["refs/heads/main", "refs/heads/master"] }},
  {{ pointer = "/pull_request", exists = true }},
] }}

[plugins.github-to-chat]
path = "{plugins}/github-to-chat.wasm"
memory = "16MiB"
timeout = "100ms"

[destinations.chat]
url = "http://{sink}/chat"
timeout = "5s"

[[routes]]
name = "github"
verify = {{ scheme = "github", secret = "{SECRET}" }}
steps = ["main-or-pr", "github-to-chat"]
to = ["chat"]
"#,
            cache = work.path().join("cache").display(),
            plugins = plugins.display(),
        );
        let path = dir.join("router.toml");
        std::fs::write(&path, config).expect("config");
        let log = std::fs::File::create(dir.join("router.log")).expect("log");
        let binary = std::env::var_os("HOOKYARD_BENCH_BINARY")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_hookyard").into());
        let child = Command::new(binary)
            .args(["serve", "-c"])
            .arg(&path)
            .env("RUST_LOG", "warn")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start hookyard");
        let node = Node {
            child,
            hooks,
            admin,
        };
        node.wait_ready(&dir);
        node
    }

    fn wait_ready(&self, dir: &Path) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while std::net::TcpStream::connect(self.hooks).is_err() {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(dir.join("router.log")).unwrap_or_default();
                panic!("hookyard did not start:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `hookyard_store_commits_total` from the node's metrics.
    async fn commits(&self) -> Option<u64> {
        let text = reqwest::get(format!("http://{}/admin/metrics", self.admin))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find(|l| l.starts_with("hookyard_store_commits_total"))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

/// A hyper server that answers 202 to everything and counts what it receives (all of it,
/// and distinct `hookyard-delivery-id`s), noting when the last request came.
#[derive(Clone)]
struct Receiver {
    addr: SocketAddr,
    count: Arc<AtomicU64>,
    ids: Arc<Mutex<HashSet<String>>>,
    last: Arc<Mutex<Option<Instant>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        use http_body_util::BodyExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let receiver = Receiver {
            addr: listener.local_addr().expect("addr"),
            count: Default::default(),
            ids: Default::default(),
            last: Default::default(),
        };
        let state = receiver.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let state = state.clone();
                            async move {
                                let id = req
                                    .headers()
                                    .get("hookyard-delivery-id")
                                    .and_then(|v| v.to_str().ok())
                                    .map(str::to_string);
                                let _ = req.into_body().collect().await;
                                if let Some(id) = id
                                    && let Ok(mut ids) = state.ids.lock()
                                {
                                    ids.insert(id);
                                }
                                state.count.fetch_add(1, Ordering::Relaxed);
                                if let Ok(mut last) = state.last.lock() {
                                    *last = Some(Instant::now());
                                }
                                Ok::<_, std::convert::Infallible>(
                                    hyper::Response::builder()
                                        .status(202)
                                        .body(http_body_util::Full::new(
                                            hyper::body::Bytes::from_static(b"{}"),
                                        ))
                                        .expect("response"),
                                )
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        receiver
    }

    fn reset(&self) {
        self.count.store(0, Ordering::Relaxed);
        if let Ok(mut ids) = self.ids.lock() {
            ids.clear();
        }
        if let Ok(mut last) = self.last.lock() {
            *last = None;
        }
    }

    fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn distinct(&self) -> u64 {
        self.ids.lock().map_or(0, |ids| ids.len() as u64)
    }

    fn last(&self) -> Option<Instant> {
        self.last.lock().ok().and_then(|l| *l)
    }
}
