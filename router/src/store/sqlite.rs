//! The embedded store: one SQLite file in WAL mode with `synchronous=FULL`.
//!
//! One writer thread owns the write connection. Callers send it jobs; it takes one, drains
//! whatever else is queued (up to [`MAX_BATCH`]), runs them all in one transaction, commits
//! once, then answers every caller. Concurrent requests thus share one fsync, and durability
//! does not cap throughput at the disk's fsync rate. When a job fails, the batch is rolled
//! back and each of its jobs runs again in a transaction of its own, so one failing job does
//! not undo the others. (A savepoint per job would say the same, but makes SQLite copy every
//! page a job touches into a statement journal: 10% of the writer's time at load.) Reads use
//! a separate connection.
//!
//! One router process per file: at open, leases left by a previous process are released,
//! since that process is gone.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};
use tokio::sync::oneshot;

use super::*;

/// A plugin's kv value (?1 plugin, ?2 key), unless it expired before ?3.
const KV_LIVE_VALUE: &str = "SELECT value FROM kv WHERE plugin = ?1 AND key = ?2 AND (expires_at IS NULL OR expires_at > ?3)";

/// Most jobs committed in one transaction.
pub const MAX_BATCH: usize = 1024;

/// A unit of work for the writer thread: statements that may run more than once (a batch
/// that fails is rolled back and its jobs rerun one by one), then one answer to the caller.
trait Job: Send {
    /// Runs the job's statements in the open transaction; false if they failed, in which
    /// case the transaction must be rolled back.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answers the caller with the last run's result, once its transaction has ended.
    fn reply(self: Box<Self>, commit: Result<(), StoreError>);
}

/// A [`Job`] from a closure over owned inputs, answering on a oneshot channel.
struct WriteJob<F, T> {
    f: F,
    result: Option<Result<T, StoreError>>,
    tx: oneshot::Sender<Result<T, StoreError>>,
}

impl<F, T> Job for WriteJob<F, T>
where
    F: FnMut(&Connection) -> Result<T, StoreError> + Send,
    T: Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let result = (self.f)(conn);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn reply(self: Box<Self>, commit: Result<(), StoreError>) {
        let answer = match self.result {
            // The job's own error says more than the rollback it caused.
            Some(Err(e)) => Err(e),
            Some(Ok(value)) => commit.map(|()| value),
            None => commit.and(Err(StoreError::Closed)),
        };
        let _ = self.tx.send(answer);
    }
}

/// The SQLite-backed [`Store`].
pub struct SqliteStore {
    jobs: mpsc::SyncSender<Box<dyn Job>>,
    /// Reads for the admin API, the UI and the workers.
    reader: Arc<Mutex<Connection>>,
    /// Plugins' kv reads, on their own connection: a slow admin listing must not hold a
    /// plugin (which has a timeout) waiting.
    kv_reader: Arc<Mutex<Connection>>,
    /// Transactions the writer has committed: each is one fsync.
    commits: Arc<AtomicU64>,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Database(e.to_string())
    }
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    route        TEXT NOT NULL,
    received_at  INTEGER NOT NULL,
    event_type   TEXT,
    dedup_key    TEXT,
    status       TEXT NOT NULL,
    error        TEXT,
    lease_until  INTEGER NOT NULL DEFAULT 0,
    duplicates   INTEGER NOT NULL DEFAULT 0,
    run_us       INTEGER NOT NULL DEFAULT 0,
    run_fuel     INTEGER NOT NULL DEFAULT 0,
    dropped      TEXT,
    traceparent  TEXT
);
CREATE INDEX IF NOT EXISTS events_dedup ON events(dedup_key, received_at) WHERE dedup_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_waiting ON events(lease_until) WHERE status = 'received';
CREATE TABLE IF NOT EXISTS deliveries (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    event_id        TEXT NOT NULL,
    destination     TEXT NOT NULL,
    body            BLOB NOT NULL,
    headers         TEXT NOT NULL,
    content_type    TEXT,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_until     INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    round_start     INTEGER NOT NULL DEFAULT 0,
    ordering_key    TEXT,
    method          TEXT,
    path            TEXT,
    traceparent     TEXT
);
CREATE INDEX IF NOT EXISTS deliveries_ordering ON deliveries(destination, ordering_key, seq)
    WHERE ordering_key IS NOT NULL AND status IN ('pending', 'retrying');
CREATE TABLE IF NOT EXISTS kv (
    plugin      TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       BLOB NOT NULL,
    expires_at  INTEGER,
    PRIMARY KEY (plugin, key)
);
CREATE TABLE IF NOT EXISTS paused_destinations (
    name       TEXT PRIMARY KEY,
    reason     TEXT NOT NULL,
    paused_at  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries(next_attempt_at)
    WHERE status IN ('pending', 'retrying');
CREATE INDEX IF NOT EXISTS deliveries_event ON deliveries(event_id);
CREATE TABLE IF NOT EXISTS attempts (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id  TEXT NOT NULL,
    number       INTEGER NOT NULL,
    started_at   INTEGER NOT NULL,
    status_code  INTEGER,
    latency_ms   INTEGER NOT NULL,
    error        TEXT,
    response     BLOB
);
CREATE INDEX IF NOT EXISTS attempts_delivery ON attempts(delivery_id);
"#;

/// Each event's headers and body, keyed by the event's `seq`: part of [`SCHEMA`] since
/// version 2, and what the step from version 1 creates.
const EVENT_PAYLOADS: &str = r#"
CREATE TABLE IF NOT EXISTS event_payloads (
    seq          INTEGER PRIMARY KEY,
    headers      TEXT NOT NULL,
    body         BLOB NOT NULL
);
"#;

/// The schema version this build writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 3;

/// Version 1 kept an event's headers and body in its `events` row. SQLite rewrites a whole
/// row (overflow pages included) on every update, so each claim and each finish wrote the
/// 8 KB body again; version 2 keeps them in [`EVENT_PAYLOADS`], written once. Runs after it.
const V1_TO_V2: &str = r#"
INSERT INTO event_payloads (seq, headers, body) SELECT seq, headers, body FROM events;
ALTER TABLE events DROP COLUMN headers;
ALTER TABLE events DROP COLUMN body;
"#;

/// Version 3 keeps the trace each event and delivery belongs to. Runs after [`V1_TO_V2`].
const V2_TO_V3: &str = r#"
ALTER TABLE events ADD COLUMN traceparent TEXT;
ALTER TABLE deliveries ADD COLUMN traceparent TEXT;
"#;

/// Creates the schema in a new file, or brings an existing file up to this version, one
/// step per older version, in one transaction.
fn migrate(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let tables: i64 = conn.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        [],
        |r| r.get(0),
    )?;
    match version {
        0 if tables == 0 => {
            conn.execute_batch(&format!(
                "BEGIN; {SCHEMA} {EVENT_PAYLOADS} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            ))?;
            Ok(())
        }
        SCHEMA_VERSION => Ok(()),
        1 | 2 => {
            let steps = if version == 1 {
                tracing::info!(path = %path.display(), "store: moving event bodies out of the events table (schema 1 -> 2)");
                format!("{EVENT_PAYLOADS} {V1_TO_V2} {V2_TO_V3}")
            } else {
                V2_TO_V3.to_string()
            };
            tracing::info!(path = %path.display(), "store: keeping trace contexts (schema 2 -> 3)");
            conn.execute_batch(&format!(
                "BEGIN; {steps} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            ))
            .inspect_err(|_| {
                let _ = conn.execute_batch("ROLLBACK");
            })?;
            Ok(())
        }
        0 => Err(StoreError::Database(format!(
            "{} holds tables but no hookyard schema version: it was not created by this hookyard; move it aside",
            path.display()
        ))),
        v if v > SCHEMA_VERSION => Err(StoreError::Database(format!(
            "{} has schema version {v}, newer than this hookyard's {SCHEMA_VERSION}: upgrade hookyard",
            path.display()
        ))),
        v => Err(StoreError::Database(format!(
            "{} has schema version {v}, which this hookyard cannot migrate",
            path.display()
        ))),
    }
}

fn open_conn(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Savepoint journals and sorts stay in memory; a 64 MiB page cache keeps the hot pages
    // (tail of each table and index) from being re-read from the file at every batch.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.pragma_update(None, "cache_size", -65536)?;
    // Plans are made once per statement, not per bound value: without this, the claims'
    // bound timestamps and limits made SQLite re-prepare them at every run (7% of the writer).
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and starts its writer thread.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Database(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let writer = open_conn(path)?;
        migrate(&writer, path)?;
        // The previous process is gone: its claims are void.
        writer.execute(
            "UPDATE events SET lease_until = 0 WHERE status = 'received'",
            [],
        )?;
        writer.execute(
            "UPDATE deliveries SET lease_until = 0 WHERE status IN ('pending', 'retrying')",
            [],
        )?;
        let reader = open_conn(path)?;
        let kv_reader = open_conn(path)?;
        let (jobs, rx) = mpsc::sync_channel::<Box<dyn Job>>(8 * MAX_BATCH);
        let commits = Arc::new(AtomicU64::new(0));
        let counter = commits.clone();
        std::thread::Builder::new()
            .name("hookyard-store".into())
            .spawn(move || writer_loop(writer, rx, &counter))
            .map_err(|e| StoreError::Database(format!("cannot start writer thread: {e}")))?;
        Ok(SqliteStore {
            jobs,
            reader: Arc::new(Mutex::new(reader)),
            kv_reader: Arc::new(Mutex::new(kv_reader)),
            commits,
        })
    }

    /// Runs `f` in the writer's next batch; resolves once that batch is committed. `f` may
    /// run twice (see the module doc), so it must not consume what it captured.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnMut(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(WriteJob {
            f,
            result: None,
            tx,
        });
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(mpsc::TrySendError::Disconnected(_)) => return Err(StoreError::Closed),
            Err(mpsc::TrySendError::Full(job)) => {
                // A full queue blocks until the writer catches up; keep that off the async workers.
                let sender = self.jobs.clone();
                tokio::task::spawn_blocking(move || sender.send(job))
                    .await
                    .map_err(|_| StoreError::Closed)?
                    .map_err(|_| StoreError::Closed)?;
            }
        }
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs a read on the read connection, off the async workers.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        read_on(self.reader.clone(), f).await
    }
}

/// Runs `f` on `reader`, off the async workers.
async fn read_on<T: Send + 'static>(
    reader: Arc<Mutex<Connection>>,
    f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(move || {
        let conn = reader.lock().map_err(|_| StoreError::Closed)?;
        f(&conn)
    })
    .await
    .map_err(|_| StoreError::Closed)?
}

fn writer_loop(conn: Connection, rx: mpsc::Receiver<Box<dyn Job>>, commits: &AtomicU64) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit_batch(&conn, &mut batch, commits);
    }
}

/// Commits `batch` in one transaction and answers its jobs; if that fails, runs each job
/// again in a transaction of its own, so only the failing ones fail.
fn commit_batch(conn: &Connection, batch: &mut Vec<Box<dyn Job>>, commits: &AtomicU64) {
    let committed = run_batch(conn, batch, commits);
    if committed.is_ok() || batch.len() == 1 {
        for job in batch.drain(..) {
            job.reply(committed.clone().map_err(StoreError::Database));
        }
        return;
    }
    for job in batch.drain(..) {
        let mut single = [job];
        let committed = run_batch(conn, &mut single, commits);
        let [job] = single;
        job.reply(committed.map_err(StoreError::Database));
    }
}

/// Runs `jobs` in one transaction and commits it; rolls it back if any job failed (the error
/// is then that job's own, which its reply carries).
fn run_batch(
    conn: &Connection,
    jobs: &mut [Box<dyn Job>],
    commits: &AtomicU64,
) -> Result<(), String> {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        tracing::error!(error = %e, "store: cannot begin a transaction");
        return Err(e.to_string());
    }
    if !jobs.iter_mut().all(|job| job.run(conn)) {
        let _ = conn.execute_batch("ROLLBACK");
        return Err("rolled back".into());
    }
    match conn.execute_batch("COMMIT") {
        Ok(()) => {
            commits.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e.to_string())
        }
    }
}

fn event_from_row(row: &Row<'_>) -> Result<StoredEvent, StoreError> {
    let headers: String = row.get(3)?;
    let status: String = row.get(7)?;
    Ok(StoredEvent {
        event: NewEvent {
            id: row.get(0)?,
            route: row.get(1)?,
            received_at: row.get(2)?,
            headers: headers_from_json(&headers)?,
            body: row.get(4)?,
            event_type: row.get(5)?,
            dedup_key: row.get(6)?,
            traceparent: row.get(14)?,
        },
        status: EventStatus::parse(&status)?,
        error: row.get(8)?,
        seq: row.get(9)?,
        duplicates: row.get(10)?,
        run: RunRecord {
            elapsed_us: row.get::<_, i64>(11)? as u64,
            fuel: row.get::<_, i64>(12)? as u64,
            dropped: row.get(13)?,
        },
    })
}

fn delivery_from_row(row: &Row<'_>) -> Result<Delivery, StoreError> {
    let headers: String = row.get(4)?;
    let status: String = row.get(6)?;
    Ok(Delivery {
        new: NewDelivery {
            id: row.get(0)?,
            event_id: row.get(1)?,
            destination: row.get(2)?,
            body: row.get(3)?,
            headers: headers_from_json(&headers)?,
            content_type: row.get(5)?,
            ordering_key: row.get(10)?,
            method: row.get(14)?,
            path: row.get(15)?,
            traceparent: row.get(17)?,
        },
        status: DeliveryStatus::parse(&status)?,
        attempts: row.get(7)?,
        attempts_in_round: row.get::<_, u32>(7)?.saturating_sub(row.get(13)?),
        next_attempt_at: row.get(8)?,
        last_error: row.get(9)?,
        seq: row.get(11)?,
        created_at: row.get(12)?,
        lease: row.get(16)?,
    })
}

fn collect<T>(
    stmt: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
    f: fn(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut rows = stmt.query(params)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(f(row)?);
    }
    Ok(out)
}

#[async_trait]
impl Store for SqliteStore {
    async fn append_event(
        &self,
        event: NewEvent,
        lease: Duration,
        dedup_window: Duration,
    ) -> Result<Appended, StoreError> {
        self.write(move |conn| {
            if let Some(key) = &event.dedup_key {
                // The single writer makes this check-then-insert atomic.
                let since = event.received_at - dedup_window.as_millis() as Millis;
                let original: Option<String> = conn
                    .prepare_cached(
                        "SELECT id FROM events WHERE dedup_key = ?1 AND received_at >= ?2
                         ORDER BY seq LIMIT 1",
                    )?
                    .query_row(params![key, since], |r| r.get(0))
                    .optional()?;
                if let Some(original) = original {
                    conn.prepare_cached("UPDATE events SET duplicates = duplicates + 1 WHERE id = ?1")?
                        .execute([&original])?;
                    return Ok(Appended::Duplicate { original });
                }
            }
            conn.prepare_cached(
                "INSERT INTO events (id, route, received_at, event_type, dedup_key, status, lease_until,
                                     traceparent)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'received', ?6, ?7)",
            )?
            .execute(params![
                event.id,
                event.route,
                event.received_at,
                event.event_type,
                event.dedup_key,
                lease_end(lease),
                event.traceparent,
            ])?;
            conn.prepare_cached(
                "INSERT INTO event_payloads (seq, headers, body) VALUES (last_insert_rowid(), ?1, ?2)",
            )?
            .execute(params![headers_to_json(&event.headers), event.body])?;
            Ok(Appended::Stored)
        })
        .await
    }

    async fn claim_events(
        &self,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.write(move |conn| {
            let now = now_ms();
            // Without the index named, the planner walks the whole table in `seq` order (the
            // LIMIT tempts it), reading every finished event's body on the way. In lease
            // order the index is read in order, and unleased events are in arrival order.
            let mut claim = conn.prepare_cached(
                "UPDATE events SET lease_until = ?1 WHERE seq IN (
                    SELECT seq FROM events INDEXED BY events_waiting
                    WHERE status = 'received' AND lease_until <= ?2
                    ORDER BY lease_until, seq LIMIT ?3)
                 RETURNING seq",
            )?;
            let mut seqs: Vec<i64> = collect(
                &mut claim,
                params![lease_end(lease), now, limit as i64],
                |row| Ok(row.get(0)?),
            )?;
            seqs.sort_unstable();
            let mut read = conn.prepare_cached(&format!("{SELECT_EVENT} WHERE e.seq = ?1"))?;
            let mut claimed = Vec::with_capacity(seqs.len());
            for seq in seqs {
                claimed.extend(collect(&mut read, [seq], event_from_row)?);
            }
            Ok(claimed)
        })
        .await
    }

    async fn finish_events(
        &self,
        finished: Vec<FinishedEvent>,
        claim: Option<ClaimNew>,
    ) -> Result<Vec<Delivery>, StoreError> {
        if finished.is_empty() {
            return Ok(Vec::new());
        }
        self.write(move |conn| {
            let mut update = conn.prepare_cached(
                "UPDATE events SET status = ?2, error = ?3, lease_until = ?7,
                        run_us = ?4, run_fuel = ?5, dropped = ?6
                 WHERE id = ?1 AND status = 'received'",
            )?;
            let mut insert = conn.prepare_cached(
                "INSERT INTO deliveries (id, event_id, destination, body, headers, content_type, status,
                                         next_attempt_at, created_at, ordering_key, method, path, lease_until,
                                         traceparent)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?;
            let mut left = claim.as_ref().map_or(0, |c| c.limit);
            let paused: Vec<String> = if left > 0 {
                let mut stmt = conn.prepare_cached("SELECT name FROM paused_destinations")?;
                collect(&mut stmt, [], |row| Ok(row.get(0)?))?
            } else {
                Vec::new()
            };
            let lease = claim.as_ref().map_or(0, |c| lease_end(c.lease));
            let now = now_ms();
            let mut claimed = Vec::new();
            for FinishedEvent { id, outcome, run } in &finished {
                let (status, error, lease_until, deliveries) = outcome.parts();
                let changed = update.execute(params![
                    id,
                    status.as_str(),
                    error,
                    run.elapsed_us.min(i64::MAX as u64) as i64,
                    run.fuel.min(i64::MAX as u64) as i64,
                    run.dropped,
                    lease_until,
                ])?;
                if changed == 0 {
                    continue;
                }
                for d in deliveries {
                    let mine = left > 0 && claim.as_ref().is_some_and(|c| c.takes(d, &paused));
                    insert.execute(params![
                        d.id,
                        d.event_id,
                        d.destination,
                        d.body,
                        headers_to_json(&d.headers),
                        d.content_type,
                        now,
                        d.ordering_key,
                        d.method,
                        d.path,
                        if mine { lease } else { 0 },
                        d.traceparent,
                    ])?;
                    if mine {
                        left -= 1;
                        let seq = conn.last_insert_rowid();
                        claimed.push(Delivery::created(d.clone(), seq, now, lease));
                    }
                }
            }
            Ok(claimed)
        })
        .await
    }

    async fn claim_deliveries(
        &self,
        lease: Duration,
        limit: usize,
        skip: &[String],
    ) -> Result<Vec<Delivery>, StoreError> {
        let skip = skip_list(skip);
        self.write(move |conn| {
            let now = now_ms();
            // An ordered delivery waits while an earlier one with its key is unfinished;
            // dead ones no longer block.
            let mut stmt = conn.prepare_cached(&format!(
                "UPDATE deliveries SET lease_until = ?1 WHERE seq IN (
                    SELECT d.seq FROM deliveries d
                    WHERE d.status IN ('pending', 'retrying') AND d.next_attempt_at <= ?2 AND d.lease_until <= ?2
                      AND instr(?4, char(10) || json_quote(d.destination) || char(10)) = 0
                      AND d.destination NOT IN (SELECT name FROM paused_destinations)
                      AND (d.ordering_key IS NULL OR NOT EXISTS (
                          SELECT 1 FROM deliveries e
                          WHERE e.destination = d.destination AND e.ordering_key = d.ordering_key
                            AND e.status IN ('pending', 'retrying') AND e.seq < d.seq))
                    ORDER BY d.next_attempt_at, d.seq LIMIT ?3)
                 RETURNING {DELIVERY_COLUMNS}"
            ))?;
            let mut claimed = collect(
                &mut stmt,
                params![lease_end(lease), now, limit as i64, skip],
                delivery_from_row,
            )?;
            claimed.sort_by_key(|d| (d.next_attempt_at, d.seq));
            Ok(claimed)
        })
        .await
    }

    async fn record_attempts(
        &self,
        attempts: Vec<(Attempt, AttemptOutcome)>,
    ) -> Result<(), StoreError> {
        if attempts.is_empty() {
            return Ok(());
        }
        self.write(move |conn| {
            let mut insert = conn.prepare_cached(
                "INSERT INTO attempts (delivery_id, number, started_at, status_code, latency_ms, error, response)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            let mut update = conn.prepare_cached(
                "UPDATE deliveries SET status = ?2, attempts = attempts + 1, next_attempt_at = ?3,
                        last_error = ?4, lease_until = 0
                 WHERE id = ?1 AND lease_until = ?5",
            )?;
            for (attempt, outcome) in &attempts {
                let (status, next, error) = outcome.clone().next_state(attempt.error.as_deref());
                let held = update.execute(params![
                    attempt.delivery_id,
                    status.as_str(),
                    next,
                    error,
                    attempt.lease
                ])?;
                if held == 0 {
                    continue;
                }
                insert.execute(params![
                    attempt.delivery_id,
                    attempt.number,
                    attempt.started_at,
                    attempt.status_code,
                    attempt.latency_ms as i64,
                    attempt.error,
                    attempt.response_body,
                ])?;
            }
            Ok(())
        })
        .await
    }

    async fn backlog(&self) -> Result<Backlog, StoreError> {
        self.read(|conn| {
            let now = now_ms();
            let mut stmt = conn.prepare_cached(
                "SELECT route, COUNT(*), MIN(received_at) FROM events
                 WHERE status = 'received' GROUP BY route ORDER BY route",
            )?;
            let events = collect(&mut stmt, [], |row| {
                let count = row.get::<_, i64>(1)? as u64;
                Ok(Waiting {
                    name: row.get(0)?,
                    count,
                    ready: count,
                    oldest: row.get(2)?,
                })
            })?;
            let mut stmt = conn.prepare_cached(
                "SELECT destination, COUNT(*),
                        SUM(CASE WHEN next_attempt_at <= ?1 AND destination NOT IN
                                 (SELECT name FROM paused_destinations) THEN 1 ELSE 0 END),
                        MIN(created_at)
                 FROM deliveries WHERE status IN ('pending', 'retrying')
                 GROUP BY destination ORDER BY destination",
            )?;
            let deliveries = collect(&mut stmt, [now], |row| {
                Ok(Waiting {
                    name: row.get(0)?,
                    count: row.get::<_, i64>(1)? as u64,
                    ready: row.get::<_, i64>(2)? as u64,
                    oldest: row.get(3)?,
                })
            })?;
            Ok(Backlog { events, deliveries })
        })
        .await
    }

    async fn commits(&self) -> Result<Option<u64>, StoreError> {
        Ok(Some(self.commits.load(Ordering::Relaxed)))
    }

    async fn next_delivery_due(&self, skip: &[String]) -> Result<Option<Millis>, StoreError> {
        let skip = skip_list(skip);
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT MIN(MAX(next_attempt_at, lease_until)) FROM deliveries
                     WHERE status IN ('pending', 'retrying')
                       AND instr(?1, char(10) || json_quote(destination) || char(10)) = 0
                       AND destination NOT IN (SELECT name FROM paused_destinations)",
                )?
                .query_row([skip], |r| r.get::<_, Option<Millis>>(0))?)
        })
        .await
    }

    async fn event(&self, id: &str) -> Result<Option<StoredEvent>, StoreError> {
        let id = id.to_string();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!("{SELECT_EVENT} WHERE e.id = ?1"))?;
            Ok(collect(&mut stmt, [id], event_from_row)?.pop())
        })
        .await
    }

    async fn deliveries(&self, filter: DeliveryFilter) -> Result<Vec<Delivery>, StoreError> {
        self.read(move |conn| {
            let order = if filter.limit.is_some() { "DESC" } else { "ASC" };
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE {DELIVERY_WHERE} ORDER BY seq {order} LIMIT ?9"
            ))?;
            collect(&mut stmt, delivery_params(&filter), delivery_from_row)
        })
        .await
    }

    async fn delivery(&self, id: &str) -> Result<Option<Delivery>, StoreError> {
        let id = id.to_string();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = ?1"
            ))?;
            Ok(collect(&mut stmt, [id], delivery_from_row)?.pop())
        })
        .await
    }

    async fn attempts(&self, delivery_id: &str) -> Result<Vec<Attempt>, StoreError> {
        let id = delivery_id.to_string();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT delivery_id, number, started_at, status_code, latency_ms, error, response
                 FROM attempts WHERE delivery_id = ?1 ORDER BY seq",
            )?;
            collect(&mut stmt, [id], |row| {
                Ok(Attempt {
                    delivery_id: row.get(0)?,
                    number: row.get(1)?,
                    started_at: row.get(2)?,
                    status_code: row.get(3)?,
                    latency_ms: row.get::<_, i64>(4)? as u64,
                    error: row.get(5)?,
                    response_body: row.get(6)?,
                    lease: 0,
                })
            })
        })
        .await
    }

    async fn events(&self, filter: EventFilter) -> Result<Vec<EventSummary>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT seq, id, route, received_at, event_type, status, error,
                        (SELECT length(body) FROM event_payloads p WHERE p.seq = events.seq),
                        duplicates, run_us, run_fuel, dropped
                 FROM events WHERE {EVENT_WHERE} ORDER BY seq DESC LIMIT ?6"
            ))?;
            collect(
                &mut stmt,
                event_params(&filter, filter.limit as i64),
                |row| {
                    let status: String = row.get(5)?;
                    Ok(EventSummary {
                        seq: row.get(0)?,
                        id: row.get(1)?,
                        route: row.get(2)?,
                        received_at: row.get(3)?,
                        event_type: row.get(4)?,
                        status: EventStatus::parse(&status)?,
                        error: row.get(6)?,
                        body_size: row.get::<_, i64>(7)? as u64,
                        duplicates: row.get(8)?,
                        run: RunRecord {
                            elapsed_us: row.get::<_, i64>(9)? as u64,
                            fuel: row.get::<_, i64>(10)? as u64,
                            dropped: row.get(11)?,
                        },
                    })
                },
            )
        })
        .await
    }

    async fn requeue_deliveries(&self, filter: DeliveryFilter) -> Result<usize, StoreError> {
        self.write(move |conn| {
            let now = now_ms();
            let mut stmt = conn.prepare_cached(&format!(
                "UPDATE deliveries SET status = 'pending', next_attempt_at = ?10, round_start = attempts,
                        lease_until = 0
                 WHERE seq IN (SELECT seq FROM deliveries WHERE {DELIVERY_WHERE}
                               AND status != 'delivered' AND lease_until <= ?10
                               ORDER BY seq LIMIT ?9)"
            ))?;
            let p = delivery_params(&filter);
            Ok(stmt.execute(params![p.0, p.1, p.2, p.3, p.4, p.5, p.6, p.7, p.8, now])?)
        })
        .await
    }

    async fn replay_events(
        &self,
        filter: EventFilter,
        ids: Option<Vec<String>>,
    ) -> Result<usize, StoreError> {
        let ids = ids.map(|ids| serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into()));
        self.write(move |conn| {
            let limit = if filter.limit == 0 {
                -1
            } else {
                filter.limit as i64
            };
            let mut stmt = conn.prepare_cached(&format!(
                "UPDATE events SET status = 'received', error = NULL, lease_until = 0
                 WHERE seq IN (SELECT seq FROM events WHERE {EVENT_WHERE}
                               AND (?10 IS NULL OR id IN (SELECT value FROM json_each(?10)))
                               ORDER BY seq LIMIT ?6)"
            ))?;
            let p = event_params(&filter, limit);
            Ok(stmt.execute(params![p.0, p.1, p.2, p.3, p.4, p.5, p.6, p.7, p.8, ids])?)
        })
        .await
    }

    async fn set_destination_paused(
        &self,
        name: &str,
        reason: Option<String>,
    ) -> Result<(), StoreError> {
        let name = name.to_string();
        self.write(move |conn| {
            match &reason {
                Some(reason) => conn
                    .prepare_cached(
                        "INSERT INTO paused_destinations (name, reason, paused_at) VALUES (?1, ?2, ?3)
                         ON CONFLICT (name) DO UPDATE SET reason = excluded.reason, paused_at = excluded.paused_at",
                    )?
                    .execute(params![name, reason, now_ms()])?,
                None => conn
                    .prepare_cached("DELETE FROM paused_destinations WHERE name = ?1")?
                    .execute([&name])?,
            };
            Ok(())
        })
        .await
    }

    async fn kv_get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let (plugin, key) = (plugin.to_string(), key.to_string());
        read_on(self.kv_reader.clone(), move |conn| {
            Ok(conn
                .prepare_cached(KV_LIVE_VALUE)?
                .query_row(params![plugin, key, now_ms()], |r| r.get(0))
                .optional()?)
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|conn| Ok(conn.query_row("SELECT 1", [], |_| Ok(()))?))
            .await
    }

    async fn kv_count(&self, plugin: &str) -> Result<u64, StoreError> {
        let plugin = plugin.to_string();
        read_on(self.kv_reader.clone(), move |conn| {
            let n: i64 = conn
                .prepare_cached(
                    "SELECT COUNT(*) FROM kv WHERE plugin = ?1 AND (expires_at IS NULL OR expires_at > ?2)",
                )?
                .query_row(params![plugin, now_ms()], |r| r.get(0))?;
            Ok(n.max(0) as u64)
        })
        .await
    }

    async fn kv_set(
        &self,
        plugin: &str,
        key: &str,
        value: Vec<u8>,
        expires_at: Option<Millis>,
    ) -> Result<(), StoreError> {
        let (plugin, key) = (plugin.to_string(), key.to_string());
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO kv (plugin, key, value, expires_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (plugin, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
            )?
            .execute(params![plugin, key, value, expires_at])?;
            // Expired entries are swept as writes come in, a few at a time.
            conn.prepare_cached(
                "DELETE FROM kv WHERE rowid IN (SELECT rowid FROM kv WHERE expires_at <= ?1 LIMIT 16)",
            )?
            .execute([now_ms()])?;
            Ok(())
        })
        .await
    }

    async fn kv_delete(&self, plugin: &str, key: &str) -> Result<(), StoreError> {
        let (plugin, key) = (plugin.to_string(), key.to_string());
        self.write(move |conn| {
            conn.prepare_cached("DELETE FROM kv WHERE plugin = ?1 AND key = ?2")?
                .execute(params![plugin, key])?;
            Ok(())
        })
        .await
    }

    async fn kv_increment(
        &self,
        plugin: &str,
        key: &str,
        delta: i64,
        expires_at: Option<Millis>,
    ) -> Result<Option<i64>, StoreError> {
        let (plugin, key) = (plugin.to_string(), key.to_string());
        // The one writer thread runs this whole closure before any other write: the read and
        // the write cannot interleave with another event's.
        self.write(move |conn| {
            let now = now_ms();
            let live: Option<Vec<u8>> = conn
                .prepare_cached(
                    KV_LIVE_VALUE,
                )?
                .query_row(params![plugin, key, now], |r| r.get(0))
                .optional()?;
            let Some(old) = live else {
                conn.prepare_cached(
                    "INSERT INTO kv (plugin, key, value, expires_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (plugin, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
                )?
                .execute(params![plugin, key, delta.to_string().into_bytes(), expires_at])?;
                return Ok(Some(delta));
            };
            let sum = super::kv_sum(&old, delta);
            if let Some(sum) = sum {
                conn.prepare_cached("UPDATE kv SET value = ?3 WHERE plugin = ?1 AND key = ?2")?
                    .execute(params![plugin, key, sum.to_string().into_bytes()])?;
            }
            Ok(sum)
        })
        .await
    }

    async fn kv_set_if_absent(
        &self,
        plugin: &str,
        key: &str,
        value: Vec<u8>,
        expires_at: Option<Millis>,
    ) -> Result<bool, StoreError> {
        let (plugin, key) = (plugin.to_string(), key.to_string());
        self.write(move |conn| {
            // Replaces an expired entry; leaves a live one alone.
            let stored = conn
                .prepare_cached(
                    "INSERT INTO kv (plugin, key, value, expires_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (plugin, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
                     WHERE kv.expires_at IS NOT NULL AND kv.expires_at <= ?5",
                )?
                .execute(params![plugin, key, value, expires_at, now_ms()])?;
            Ok(stored == 1)
        })
        .await
    }

    async fn delivery_counts(&self) -> Result<Vec<(DeliveryStatus, u64)>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT status, COUNT(*) FROM deliveries GROUP BY status ORDER BY status",
            )?;
            collect(&mut stmt, [], |row| {
                let status: String = row.get(0)?;
                Ok((
                    DeliveryStatus::parse(&status)?,
                    row.get::<_, i64>(1)? as u64,
                ))
            })
        })
        .await
    }

    async fn prune(&self, before: Millis, limit: usize) -> Result<usize, StoreError> {
        self.write(move |conn| {
            let mut stmt = conn.prepare_cached(&format!("SELECT id FROM events e WHERE {PRUNABLE} LIMIT ?2"))?;
            let ids: Vec<String> = collect(&mut stmt, params![before, limit as i64], |row| {
                Ok(row.get(0)?)
            })?;
            let mut attempts = conn.prepare_cached(
                "DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE event_id = ?1)",
            )?;
            let mut deliveries = conn.prepare_cached("DELETE FROM deliveries WHERE event_id = ?1")?;
            let mut payloads = conn.prepare_cached(
                "DELETE FROM event_payloads WHERE seq = (SELECT seq FROM events WHERE id = ?1)",
            )?;
            let mut events = conn.prepare_cached("DELETE FROM events WHERE id = ?1")?;
            for id in &ids {
                attempts.execute([id])?;
                deliveries.execute([id])?;
                payloads.execute([id])?;
                events.execute([id])?;
            }
            Ok(ids.len())
        })
        .await
    }

    async fn paused_destinations(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.read(|conn| {
            let mut stmt =
                conn.prepare_cached("SELECT name, reason FROM paused_destinations ORDER BY name")?;
            collect(&mut stmt, [], |row| Ok((row.get(0)?, row.get(1)?)))
        })
        .await
    }
}

/// Destination names for `instr(list, char(10) || json_quote(destination) || char(10))`:
/// each JSON-quoted (so no name can contain the separator) between newlines. `json_each` on
/// a bound list would do, but SQLite re-plans such a statement at every run, and the claim
/// runs hundreds of times a second.
fn skip_list(names: &[String]) -> String {
    let mut list = String::from("\n");
    for name in names {
        list.push_str(&serde_json::Value::from(name.as_str()).to_string());
        list.push('\n');
    }
    list
}

/// An event with its payload, to which a `WHERE` on `events` is appended.
const SELECT_EVENT: &str = "SELECT e.id, e.route, e.received_at, p.headers, p.body, e.event_type, e.dedup_key, e.status, e.error, e.seq, e.duplicates, e.run_us, e.run_fuel, e.dropped, e.traceparent FROM events e JOIN event_payloads p ON p.seq = e.seq";

/// The WHERE clause shared by delivery listings and requeues; parameters ?1-?8, limit ?9.
const DELIVERY_WHERE: &str = "(?1 IS NULL OR status = ?1) AND (?2 IS NULL OR event_id = ?2)
    AND (?3 IS NULL OR destination = ?3)
    AND (?4 IS NULL OR event_id IN (SELECT id FROM events WHERE route = ?4))
    AND (?5 IS NULL OR created_at >= ?5) AND (?6 IS NULL OR created_at < ?6)
    AND (?7 IS NULL OR seq < ?7) AND (?8 IS NULL OR id = ?8)";

type DeliveryParams = (
    Option<&'static str>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<Millis>,
    Option<Millis>,
    Option<i64>,
    Option<String>,
    i64,
);

fn delivery_params(f: &DeliveryFilter) -> DeliveryParams {
    (
        f.status.map(DeliveryStatus::as_str),
        f.event_id.clone(),
        f.destination.clone(),
        f.route.clone(),
        f.since,
        f.until,
        f.before,
        f.id.clone(),
        f.limit.map_or(-1, |l| l as i64),
    )
}

/// The WHERE clause shared by event listings and replays; parameters ?1-?5.
const EVENT_WHERE: &str = "(?1 IS NULL OR status = ?1) AND (?2 IS NULL OR route = ?2)
    AND (?3 IS NULL OR received_at >= ?3) AND (?4 IS NULL OR received_at < ?4)
    AND (?5 IS NULL OR seq < ?5) AND (?7 IS NULL OR event_type = ?7)
    AND (?8 IS NULL OR EXISTS (SELECT 1 FROM deliveries d
                               WHERE d.event_id = events.id AND d.destination = ?8))
    AND (?9 IS NULL OR EXISTS (SELECT 1 FROM event_payloads p WHERE p.seq = events.seq
                               AND (instr(p.headers, ?9) > 0 OR instr(CAST(p.body AS TEXT), ?9) > 0)))";

/// Values for [`EVENT_WHERE`] plus the limit (?6).
type EventParams = (
    Option<&'static str>,
    Option<String>,
    Option<Millis>,
    Option<Millis>,
    Option<i64>,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn event_params(f: &EventFilter, limit: i64) -> EventParams {
    (
        f.status.map(EventStatus::as_str),
        f.route.clone(),
        f.since,
        f.until,
        f.before,
        limit,
        f.event_type.clone(),
        f.destination.clone(),
        f.search.clone(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job inserting `n` into `t`, which has a unique column: inserting 2 twice fails.
    fn insert(n: i64) -> (Box<dyn Job>, oneshot::Receiver<Result<i64, StoreError>>) {
        let (tx, rx) = oneshot::channel();
        let f = move |conn: &Connection| {
            conn.execute("INSERT INTO t (n) VALUES (?1)", [n])?;
            Ok(n)
        };
        let job = Box::new(WriteJob {
            f,
            result: None,
            tx,
        });
        (job, rx)
    }

    #[test]
    fn a_failing_job_fails_alone_and_the_rest_of_its_batch_commits() {
        let conn = Connection::open_in_memory().expect("open");
        conn.execute_batch("CREATE TABLE t (n INTEGER UNIQUE); INSERT INTO t VALUES (2);")
            .expect("schema");
        let commits = AtomicU64::new(0);
        let (jobs, mut answers): (Vec<_>, Vec<_>) = [1, 2, 3].map(insert).into_iter().unzip();
        let mut batch = jobs;
        commit_batch(&conn, &mut batch, &commits);
        assert!(batch.is_empty());
        let answers: Vec<_> = answers
            .iter_mut()
            .map(|rx| rx.try_recv().expect("answered"))
            .collect();
        assert_eq!(answers[0].as_ref().ok(), Some(&1));
        let failed = answers[1].as_ref().expect_err("the duplicate fails");
        assert!(failed.to_string().contains("UNIQUE"), "{failed}");
        assert_eq!(answers[2].as_ref().ok(), Some(&3));
        let kept: Vec<i64> = conn
            .prepare("SELECT n FROM t ORDER BY n")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .expect("read");
        assert_eq!(kept, [1, 2, 3], "the batch's good jobs committed once each");
        // The batch rolled back; the two good jobs then committed alone.
        assert_eq!(commits.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_batch_without_failures_commits_once() {
        let conn = Connection::open_in_memory().expect("open");
        conn.execute_batch("CREATE TABLE t (n INTEGER UNIQUE);")
            .expect("schema");
        let commits = AtomicU64::new(0);
        let (mut batch, answers): (Vec<_>, Vec<_>) = [1, 2, 3].map(insert).into_iter().unzip();
        commit_batch(&conn, &mut batch, &commits);
        for mut rx in answers {
            assert!(rx.try_recv().expect("answered").is_ok());
        }
        assert_eq!(commits.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn sqlite_passes_the_store_conformance_suite() {
        conformance::run_all(|| async {
            let dir = tempfile::tempdir().expect("tempdir");
            let store = SqliteStore::open(&dir.path().join("hookyard.db")).expect("open");
            (store, dir)
        })
        .await;
    }

    #[test]
    fn a_foreign_or_newer_database_is_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let foreign = dir.path().join("foreign.db");
        Connection::open(&foreign)
            .unwrap()
            .execute_batch("CREATE TABLE t (x)")
            .unwrap();
        let err = SqliteStore::open(&foreign)
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains("not created by this hookyard"), "{err}");
        let newer = dir.path().join("newer.db");
        drop(SqliteStore::open(&newer).unwrap());
        Connection::open(&newer)
            .unwrap()
            .execute_batch("PRAGMA user_version = 99")
            .unwrap();
        let err = SqliteStore::open(&newer)
            .err()
            .expect("refused")
            .to_string();
        assert!(
            err.contains("schema version 99, newer than this hookyard's 3"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_version_1_file_keeps_its_events_when_bodies_move_to_their_own_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hookyard.db");
        let mut sample = conformance::sample_event("old", None);
        sample.body = vec![7u8; 9000];
        {
            let store = SqliteStore::open(&path).unwrap();
            store
                .append_event(sample.clone(), Duration::ZERO, Duration::from_secs(60))
                .await
                .unwrap();
        }
        // Put the file back in the version 1 shape: headers and body in the events row.
        Connection::open(&path)
            .unwrap()
            .execute_batch(
                "ALTER TABLE events ADD COLUMN headers TEXT NOT NULL DEFAULT '';
                 ALTER TABLE events ADD COLUMN body BLOB NOT NULL DEFAULT x'';
                 UPDATE events SET headers = p.headers, body = p.body
                     FROM event_payloads p WHERE p.seq = events.seq;
                 DROP TABLE event_payloads;
                 ALTER TABLE events DROP COLUMN traceparent;
                 ALTER TABLE deliveries DROP COLUMN traceparent;
                 PRAGMA user_version = 1;",
            )
            .unwrap();
        let store = SqliteStore::open(&path).unwrap();
        let event = store.event("old").await.unwrap().expect("kept");
        assert_eq!(event.event.body, sample.body);
        assert_eq!(event.event.traceparent, None, "older events have no trace");
        assert_eq!(event.event.headers, sample.headers);
        let listed = store
            .events(EventFilter {
                limit: 10,
                ..EventFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(listed[0].body_size, 9000);
        let columns: Vec<String> = {
            let conn = Connection::open(&path).unwrap();
            let mut stmt = conn
                .prepare("SELECT name FROM pragma_table_info('events')")
                .unwrap();
            stmt.query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        assert!(
            !columns.iter().any(|c| c == "body" || c == "headers"),
            "{columns:?}"
        );
        assert!(columns.iter().any(|c| c == "traceparent"), "{columns:?}");
    }

    #[tokio::test]
    async fn reopening_releases_leases_of_the_dead_process() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hookyard.db");
        {
            let store = SqliteStore::open(&path).unwrap();
            let ev = conformance::sample_event("a", None);
            store
                .append_event(ev, Duration::from_secs(3600), Duration::from_secs(60))
                .await
                .unwrap();
            assert!(
                store
                    .claim_events(Duration::from_secs(60), 10)
                    .await
                    .unwrap()
                    .is_empty()
            );
        }
        let store = SqliteStore::open(&path).unwrap();
        let claimed = store
            .claim_events(Duration::from_secs(60), 10)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
    }
}
