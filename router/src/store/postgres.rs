//! The shared store: PostgreSQL, for several router nodes working from one journal.
//!
//! Every method is one transaction on a pooled connection; `synchronous_commit` (on by
//! default) makes a commit durable before `Ok` is returned. Appends from concurrent requests
//! are gathered and written many per statement (one commit for all of them), and chain
//! outcomes and attempts come in batches from their workers, so commits per event stay well
//! below one under load. Nodes share the work through
//! leases: a claim takes rows with `FOR UPDATE SKIP LOCKED` (two nodes never claim the same
//! row, and neither waits on the other) and stamps a lease end on them; a node that dies
//! leaves leases that simply run out, and another node takes the work. Unlike the embedded
//! store, opening does not release leases: they may belong to a node that is still running.
//!
//! Check-then-write operations that must not race across nodes are single statements
//! (`INSERT ... ON CONFLICT` for dedup on append and `set-if-absent`) or take a
//! transaction-scoped advisory lock on their key (kv increments).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::config::SslMode;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::*;

/// The PostgreSQL-backed [`Store`].
pub struct PostgresStore {
    pool: Pool,
    /// Appends waiting to be written together (see [`append_batches`]).
    appends: mpsc::Sender<AppendJob>,
    /// How to open the `LISTEN` connection, which is not pooled.
    connect: (tokio_postgres::Config, Option<MakeRustlsConnect>),
    /// Whether to `LISTEN` at all (`store.listen`).
    listen: bool,
    /// Whether the hot statements are prepared once per connection and kept
    /// (`store.statement_cache`; see [`rows`]).
    cached: bool,
}

/// How [`PostgresStore::open_with_options`] connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgOptions {
    /// Most connections this node opens.
    pub max_connections: usize,
    /// Whether to hear other nodes' work by `LISTEN` (`store.listen`).
    pub listen: bool,
    /// Whether to keep prepared statements per connection (`store.statement_cache`).
    pub statement_cache: bool,
}

impl Default for PgOptions {
    fn default() -> PgOptions {
        PgOptions {
            max_connections: DEFAULT_CONNECTIONS,
            listen: true,
            statement_cache: true,
        }
    }
}

/// Runs `sql` on `conn` and returns its rows. With `cached`, as a statement prepared once per
/// connection and kept: the server parses and plans it once, and each run is one round trip
/// and one transaction, where a statement sent as text is prepared and then run, two
/// transactions in the server's count. Without (`store.statement_cache = false`, for
/// PgBouncer in transaction mode before 1.21, which cannot keep prepared statements), as text.
async fn rows(
    conn: &deadpool_postgres::Client,
    cached: bool,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, StoreError> {
    if cached {
        let statement = conn.prepare_cached(sql).await?;
        Ok(conn.query(&statement, params).await?)
    } else {
        Ok(conn.query(sql, params).await?)
    }
}

/// [`rows`] for a statement that finds table rows by the keys in its array parameters, run
/// with sequential scans switched off for its transaction: the plan the server keeps for it
/// then looks rows up by index, whatever the tables' sizes were when it was made.
///
/// A statement kept prepared is planned afresh for its first five runs; after that the
/// server keeps a generic plan if it looks no dearer. For these statements the one it kept
/// on a new database, made while the tables were nearly empty, read the whole table (a
/// sequential scan and a hash join): recording outcomes and attempts then read every row
/// ever stored at each batch, 2,300-4,500 pages a batch a few seconds into a load, until
/// autovacuum's next `ANALYZE` of that table happened to replace the plan. Planning them at
/// every run instead (`plan_cache_mode = force_custom_plan`) cost 300-600 us a batch,
/// 12-23 us per delivered event on one node and 29-53 on two; the plan kept with
/// sequential scans off reads the same pages per event as a fresh one and is made once
/// (docs/benchmarks.md). Everything else keeps the planner's full choice: the console's and
/// the backlog's queries read many rows on purpose. As text (no statement cache) every run
/// is planned for the tables as they are anyway.
async fn rows_by_index(
    conn: &mut deadpool_postgres::Client,
    cached: bool,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, StoreError> {
    if !cached {
        return rows(conn, cached, sql, params).await;
    }
    let tx = conn.transaction().await?;
    tx.batch_execute("SET LOCAL enable_seqscan = off").await?;
    let statement = tx.prepare_cached(sql).await?;
    let found = tx.query(&statement, params).await?;
    tx.commit().await?;
    Ok(found)
}

/// Most appends written in one statement.
const APPEND_BATCH: usize = 512;
/// Append statements in flight at once; more appends wait and go in the next statement.
/// One, as the embedded store's writer does: under load each statement then carries every
/// append that arrived while the last one committed (group commit). Measured on this
/// machine with the e2e bench: 1 in flight delivered 2,963 events/s at 0.30 commits per
/// event, 2 in flight 2,551 at 0.40, 4 in flight 2,159 at 0.71.
const APPEND_PIPELINE: usize = 1;
/// Appends queued for the batcher before callers wait for room.
const APPEND_QUEUE: usize = 8 * APPEND_BATCH;

/// One event to append, and how.
struct PendingAppend {
    event: NewEvent,
    lease_until: Millis,
    /// Events with the same dedup key received after this are duplicates.
    since: Millis,
    /// Journaled unclaimed: tell every node.
    announce: bool,
}

/// An append waiting for the batcher, and where its result goes.
struct AppendJob {
    append: PendingAppend,
    reply: oneshot::Sender<Result<Appended, StoreError>>,
}

/// Writes appends as they come, many per statement (and so per commit): while
/// [`APPEND_PIPELINE`] statements are in flight, new appends gather for the next one, as the
/// embedded store's writer gathers its jobs. Ends when the store is dropped.
async fn append_batches(pool: Pool, cached: bool, mut queued: mpsc::Receiver<AppendJob>) {
    let permits = Arc::new(tokio::sync::Semaphore::new(APPEND_PIPELINE));
    let mut batch = Vec::with_capacity(APPEND_BATCH);
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        if queued.recv_many(&mut batch, APPEND_BATCH).await == 0 {
            return;
        }
        let jobs = std::mem::take(&mut batch);
        let pool = pool.clone();
        tokio::spawn(async move {
            let (appends, replies): (Vec<_>, Vec<_>) =
                jobs.into_iter().map(|job| (job.append, job.reply)).unzip();
            match append_batch(&pool, cached, appends).await {
                Ok(results) => {
                    for (reply, result) in replies.into_iter().zip(results) {
                        let _ = reply.send(Ok(result));
                    }
                }
                Err(e) => {
                    let message = e.to_string();
                    for reply in replies {
                        let _ = reply.send(Err(StoreError::Database(message.clone())));
                    }
                }
            }
            drop(permit);
        });
    }
}

/// Appends `appends` in one statement: each dedup key is claimed (new, or its window has passed) and an event is
/// stored only if it has no key or claimed it. `ON CONFLICT` waits for a concurrent claim of
/// the same key and re-checks, so across nodes exactly one event per key is stored; within
/// the batch the first event with a key claims it. Duplicates are then counted on their
/// originals.
async fn append_batch(
    pool: &Pool,
    cached: bool,
    appends: Vec<PendingAppend>,
) -> Result<Vec<Appended>, StoreError> {
    let n = appends.len();
    let mut ids = Vec::with_capacity(n);
    let (mut routes, mut received, mut headers, mut bodies) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut types, mut keys, mut leases, mut since, mut announce) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let mut traces: Vec<Option<String>> = Vec::with_capacity(n);
    for PendingAppend {
        event,
        lease_until,
        since: cut_off,
        announce: tell,
    } in appends
    {
        headers.push(headers_to_json(&event.headers));
        ids.push(event.id);
        routes.push(event.route);
        received.push(event.received_at);
        bodies.push(event.body);
        types.push(event.event_type);
        keys.push(event.dedup_key);
        leases.push(lease_until);
        since.push(cut_off);
        announce.push(tell);
        traces.push(event.traceparent);
    }
    let conn = pool.get().await?;
    let stored: HashSet<String> = rows(
        &conn,
        cached,
        "WITH input AS (
                SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bytea[],
                                     $6::text[], $7::text[], $8::bigint[], $9::bigint[], $10::boolean[],
                                     $11::text[])
                    WITH ORDINALITY
                    AS i(id, route, received_at, headers, body, event_type, dedup_key, lease_until,
                         since, announce, traceparent, n)
             ), claimed AS (
                INSERT INTO dedup (key, event_id, received_at)
                SELECT DISTINCT ON (dedup_key) dedup_key, id, received_at FROM input
                WHERE dedup_key IS NOT NULL ORDER BY dedup_key, n
                ON CONFLICT (key) DO UPDATE SET event_id = excluded.event_id, received_at = excluded.received_at
                    WHERE dedup.received_at < (SELECT since FROM input WHERE input.id = excluded.event_id)
                RETURNING event_id
             ), stored AS (
                INSERT INTO events (id, route, received_at, headers, body, event_type, dedup_key, status, lease_until,
                                    traceparent)
                SELECT id, route, received_at, headers, body, event_type, dedup_key, 'received', lease_until,
                       traceparent
                FROM input WHERE dedup_key IS NULL OR id IN (SELECT event_id FROM claimed)
                ORDER BY n
                RETURNING id
             )
             SELECT id, (SELECT pg_notify('hookyard_events', '') WHERE EXISTS (
                            SELECT 1 FROM stored JOIN input USING (id) WHERE input.announce))
             FROM stored",
        &[
            &ids, &routes, &received, &headers, &bodies, &types, &keys, &leases, &since,
            &announce, &traces,
        ],
    )
    .await?
    .iter()
    .map(|row| row.get::<_, String>(0))
    .collect();
    let mut results = Vec::with_capacity(n);
    for (id, key) in ids.iter().zip(&keys) {
        if stored.contains(id) {
            results.push(Appended::Stored);
            continue;
        }
        let Some(key) = key else {
            return Err(StoreError::Corrupt(format!(
                "event {id} without a dedup key was not stored"
            )));
        };
        let original = conn
            .query_opt(
                "UPDATE events SET duplicates = duplicates + 1
                 WHERE id = (SELECT event_id FROM dedup WHERE key = $1) RETURNING id",
                &[key],
            )
            .await?
            .map(|r| r.get::<_, String>(0))
            .ok_or_else(|| StoreError::Corrupt(format!("dedup key {key:?} names no event")))?;
        results.push(Appended::Duplicate { original });
    }
    Ok(results)
}

/// The channel a node notifies when it leaves events unclaimed.
const EVENTS_CHANNEL: &str = "hookyard_events";
/// The channel a node notifies when it creates deliveries.
const DELIVERIES_CHANNEL: &str = "hookyard_deliveries";
/// How long to wait before opening a `LISTEN` connection again after it failed.
const RELISTEN_AFTER: Duration = Duration::from_secs(1);

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError::Database(crate::describe_error(&e))
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StoreError::Database(format!(
            "cannot get a database connection: {}",
            crate::describe_error(&e)
        ))
    }
}

const SCHEMA: &str = r#"
CREATE TABLE events (
    seq          BIGSERIAL PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    route        TEXT NOT NULL,
    received_at  BIGINT NOT NULL,
    headers      TEXT NOT NULL,
    body         BYTEA NOT NULL,
    event_type   TEXT,
    dedup_key    TEXT,
    status       TEXT NOT NULL,
    error        TEXT,
    lease_until  BIGINT NOT NULL DEFAULT 0,
    duplicates   INTEGER NOT NULL DEFAULT 0,
    run_us       BIGINT NOT NULL DEFAULT 0,
    run_fuel     BIGINT NOT NULL DEFAULT 0,
    dropped      TEXT,
    traceparent  TEXT
);
CREATE INDEX events_waiting ON events(lease_until) WHERE status = 'received';
CREATE TABLE deliveries (
    seq             BIGSERIAL PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    event_id        TEXT NOT NULL,
    destination     TEXT NOT NULL,
    body            BYTEA NOT NULL,
    headers         TEXT NOT NULL,
    content_type    TEXT,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_until     BIGINT NOT NULL DEFAULT 0,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    round_start     INTEGER NOT NULL DEFAULT 0,
    ordering_key    TEXT,
    method          TEXT,
    path            TEXT,
    traceparent     TEXT
);
CREATE INDEX deliveries_ordering ON deliveries(destination, ordering_key, seq)
    WHERE ordering_key IS NOT NULL AND status IN ('pending', 'retrying');
CREATE INDEX deliveries_due ON deliveries(next_attempt_at)
    WHERE status IN ('pending', 'retrying');
CREATE INDEX deliveries_event ON deliveries(event_id);
CREATE TABLE dedup (
    key          TEXT PRIMARY KEY,
    event_id     TEXT NOT NULL,
    received_at  BIGINT NOT NULL
);
CREATE TABLE kv (
    plugin      TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       BYTEA NOT NULL,
    expires_at  BIGINT,
    PRIMARY KEY (plugin, key)
);
CREATE TABLE paused_destinations (
    name       TEXT PRIMARY KEY,
    reason     TEXT NOT NULL,
    paused_at  BIGINT NOT NULL
);
CREATE TABLE attempts (
    seq          BIGSERIAL PRIMARY KEY,
    delivery_id  TEXT NOT NULL,
    number       INTEGER NOT NULL,
    started_at   BIGINT NOT NULL,
    status_code  INTEGER,
    latency_ms   BIGINT NOT NULL,
    error        TEXT,
    response     BYTEA
);
CREATE INDEX attempts_delivery ON attempts(delivery_id);
"#;

/// Records a batch of event outcomes and creates their deliveries, in one statement: the
/// events' updates, then the deliveries of exactly those events the update changed (one still
/// `received`), some of them claimed by this node, and a wake-up for the others.
///
/// The events are found by id. `status = (SELECT 'received')` hides the literal from the
/// planner on purpose: given `status = 'received'` it scanned the partial index
/// `events_waiting` instead, which under load holds an entry for every event received since
/// the last vacuum (tens of thousands, finished or not), so each batch read thousands of heap
/// pages and got slower the longer the load ran.
pub const FINISH_EVENTS: &str = "WITH finished AS (
    UPDATE events e SET status = f.status, error = f.error, lease_until = f.lease_until,
           run_us = f.run_us, run_fuel = f.run_fuel, dropped = f.dropped
    FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::text[],
                $17::bigint[])
         AS f(id, status, error, run_us, run_fuel, dropped, lease_until)
    WHERE e.id = f.id AND e.status = (SELECT 'received'::text)
    RETURNING e.id
 ), created AS (
    INSERT INTO deliveries (id, event_id, destination, body, headers, content_type, status,
                            next_attempt_at, created_at, ordering_key, method, path,
                            lease_until, traceparent)
    SELECT c.id, c.event_id, c.destination, c.body, c.headers, c.content_type, 'pending',
           $7::bigint, $7::bigint, c.ordering_key, c.method, c.path,
           CASE WHEN c.claim AND c.claimed <= $20 THEN $19::bigint ELSE 0 END,
           c.traceparent
    FROM (
        SELECT d.*, sum(d.claim::int) OVER (ORDER BY d.ord) AS claimed
        FROM (
            SELECT u.id, u.event_id, u.destination, u.body, u.headers, u.content_type,
                   u.ordering_key, u.method, u.path, u.traceparent, u.ord,
                   u.claim AND u.destination NOT IN (SELECT name FROM paused_destinations)
                       AS claim
            FROM unnest($8::text[], $9::text[], $10::text[], $11::bytea[], $12::text[],
                        $13::text[], $14::text[], $15::text[], $16::text[], $18::bool[],
                        $21::text[])
                 WITH ORDINALITY
                 AS u(id, event_id, destination, body, headers, content_type,
                      ordering_key, method, path, claim, traceparent, ord)
            WHERE u.event_id IN (SELECT id FROM finished)
        ) AS d
    ) AS c
    ORDER BY c.ord
    RETURNING id, seq, lease_until
 ), woken AS (
    SELECT pg_notify('hookyard_deliveries', '')
    FROM (SELECT 1 FROM created WHERE lease_until = 0 LIMIT 1) AS unclaimed
 )
 SELECT id, seq FROM created WHERE lease_until <> 0
 UNION ALL
 SELECT NULL::text, NULL::bigint FROM woken";

/// A plugin's kv value ($1 plugin, $2 key), unless it expired before $3.
const KV_LIVE_VALUE: &str = "SELECT value FROM kv WHERE plugin = $1 AND key = $2 AND (expires_at IS NULL OR expires_at > $3)";

/// Connections per node unless `store.max_connections` says otherwise.
pub const DEFAULT_CONNECTIONS: usize = 16;

/// The schema version this build writes (in `hookyard_schema`).
const SCHEMA_VERSION: i32 = 3;

/// Version 2 keeps the trace each event and delivery belongs to.
const V1_TO_V2: &str = "
ALTER TABLE events ADD COLUMN IF NOT EXISTS traceparent TEXT;
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS traceparent TEXT;
UPDATE hookyard_schema SET version = 2;
";

/// Version 3 drops `events_dedup`: duplicates are found through the `dedup` table, and no
/// statement read that index, yet every event paid for it twice (its insert, and the new row
/// version its outcome writes).
const V2_TO_V3: &str = "
DROP INDEX IF EXISTS events_dedup;
UPDATE hookyard_schema SET version = 3;
";

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`), creating the
    /// schema in an empty database or checking the version of an existing one.
    ///
    /// `sslmode=require` connects over TLS and verifies the server's certificate against
    /// the Mozilla roots, plus the PEM certificates in `sslrootcert=<file>` if given (for a
    /// private CA). Without it the connection is plain, as on a trusted network or a Unix
    /// socket.
    pub async fn open(url: &str) -> Result<PostgresStore, StoreError> {
        PostgresStore::open_with(url, DEFAULT_CONNECTIONS).await
    }

    /// [`PostgresStore::open`] with at most `max_connections` connections.
    pub async fn open_with(url: &str, max_connections: usize) -> Result<PostgresStore, StoreError> {
        PostgresStore::open_with_options(
            url,
            PgOptions {
                max_connections,
                ..PgOptions::default()
            },
        )
        .await
    }

    /// [`PostgresStore::open`] with `options`.
    pub async fn open_with_options(
        url: &str,
        options: PgOptions,
    ) -> Result<PostgresStore, StoreError> {
        let PgOptions {
            max_connections,
            listen,
            statement_cache: cached,
        } = options;
        let (config, tls) = connect_config(url)?;
        let connect = (config.clone(), tls.clone());
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match tls {
            Some(tls) => Manager::from_config(config, tls, manager_config),
            None => Manager::from_config(config, NoTls, manager_config),
        };
        let pool = Pool::builder(manager)
            .max_size(max_connections.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(POOL_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(POOL_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Database(format!("cannot build the connection pool: {e}")))?;
        let (appends, queued) = mpsc::channel(APPEND_QUEUE);
        tokio::spawn(append_batches(pool.clone(), cached, queued));
        let store = PostgresStore {
            pool,
            appends,
            connect,
            listen,
            cached,
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.pool.get().await?;
        let mut tx = conn.transaction().await?;
        // One node creates the schema; the others wait here and then find it.
        tx.execute("SELECT pg_advisory_xact_lock(7310662)", &[])
            .await?;
        tx.execute(
            "CREATE TABLE IF NOT EXISTS hookyard_schema (version INTEGER NOT NULL)",
            &[],
        )
        .await?;
        let version: Option<i32> = tx
            .query_opt("SELECT version FROM hookyard_schema", &[])
            .await?
            .map(|r| r.get(0));
        match version {
            None => {
                let foreign: i64 = tx
                    .query_one(
                        "SELECT COUNT(*) FROM information_schema.tables
                         WHERE table_schema = current_schema() AND table_name IN ('events', 'deliveries')",
                        &[],
                    )
                    .await?
                    .get(0);
                if foreign > 0 {
                    return Err(StoreError::Database(
                        "the database holds tables but no hookyard schema version: it was not created by this hookyard".into(),
                    ));
                }
                tx.batch_execute(SCHEMA).await?;
                tx.execute(
                    "INSERT INTO hookyard_schema (version) VALUES ($1)",
                    &[&SCHEMA_VERSION],
                )
                .await?;
            }
            Some(SCHEMA_VERSION) => {}
            Some(v @ (1 | 2)) => {
                if v == 1 {
                    tracing::info!("store: keeping trace contexts (schema 1 -> 2)");
                    tx.batch_execute(V1_TO_V2).await?;
                }
                tracing::info!("store: dropping an index no statement reads (schema 2 -> 3)");
                tx.batch_execute(V2_TO_V3).await?;
            }
            Some(v) if v > SCHEMA_VERSION => {
                return Err(StoreError::Database(format!(
                    "the database has schema version {v}, newer than this hookyard's {SCHEMA_VERSION}: upgrade hookyard"
                )));
            }
            Some(v) => {
                return Err(StoreError::Database(format!(
                    "the database has schema version {v}, which this hookyard cannot migrate"
                )));
            }
        }
        // Bodies of a few KB are compressed on the way into TOAST. The default, pglz, was a
        // tenth of all CPU time under load; lz4 is several times faster. Servers built
        // without lz4 (or before PostgreSQL 14) keep pglz. Only new rows are affected.
        let lz4 = tx.transaction().await?;
        let switched = lz4
            .batch_execute(
                "DO $$ BEGIN
                   IF (SELECT attcompression FROM pg_attribute
                       WHERE attrelid = 'events'::regclass AND attname = 'body') <> 'l' THEN
                     ALTER TABLE events ALTER COLUMN body SET COMPRESSION lz4;
                     ALTER TABLE deliveries ALTER COLUMN body SET COMPRESSION lz4;
                   END IF;
                 END $$",
            )
            .await;
        match switched {
            Ok(()) => lz4.commit().await?,
            Err(e) => {
                tracing::info!(reason = %crate::describe_error(&e), "bodies stay pglz-compressed");
                lz4.rollback().await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

/// A count kept as INTEGER, read back as the unsigned value it is.
fn count(row: &Row, idx: usize) -> u32 {
    row.get::<_, i32>(idx).max(0) as u32
}

/// New deliveries as one array per column, for a multi-row insert from `unnest`.
#[derive(Default)]
struct DeliveryColumns {
    id: Vec<String>,
    event_id: Vec<String>,
    destination: Vec<String>,
    body: Vec<Vec<u8>>,
    headers: Vec<String>,
    content_type: Vec<Option<String>>,
    ordering_key: Vec<Option<String>>,
    method: Vec<Option<String>>,
    path: Vec<Option<String>>,
    traceparent: Vec<Option<String>>,
}

impl DeliveryColumns {
    fn push(&mut self, d: NewDelivery) {
        self.headers.push(headers_to_json(&d.headers));
        self.id.push(d.id);
        self.event_id.push(d.event_id);
        self.destination.push(d.destination);
        self.body.push(d.body);
        self.content_type.push(d.content_type);
        self.ordering_key.push(d.ordering_key);
        self.method.push(d.method);
        self.path.push(d.path);
        self.traceparent.push(d.traceparent);
    }
}

fn big(n: u64) -> i64 {
    n.min(i64::MAX as u64) as i64
}

fn event_from_row(row: &Row) -> Result<StoredEvent, StoreError> {
    let headers: String = row.get(3);
    let status: String = row.get(7);
    Ok(StoredEvent {
        event: NewEvent {
            id: row.get(0),
            route: row.get(1),
            received_at: row.get(2),
            headers: headers_from_json(&headers)?,
            body: row.get(4),
            event_type: row.get(5),
            traceparent: row.get(14),
            dedup_key: row.get(6),
        },
        status: EventStatus::parse(&status)?,
        error: row.get(8),
        seq: row.get(9),
        duplicates: count(row, 10),
        run: RunRecord {
            elapsed_us: row.get::<_, i64>(11) as u64,
            fuel: row.get::<_, i64>(12) as u64,
            dropped: row.get(13),
        },
    })
}

fn delivery_from_row(row: &Row) -> Result<Delivery, StoreError> {
    let headers: String = row.get(4);
    let status: String = row.get(6);
    Ok(Delivery {
        new: NewDelivery {
            id: row.get(0),
            event_id: row.get(1),
            destination: row.get(2),
            body: row.get(3),
            headers: headers_from_json(&headers)?,
            content_type: row.get(5),
            ordering_key: row.get(10),
            method: row.get(14),
            path: row.get(15),
            traceparent: row.get(17),
        },
        status: DeliveryStatus::parse(&status)?,
        attempts: count(row, 7),
        attempts_in_round: count(row, 7).saturating_sub(count(row, 13)),
        next_attempt_at: row.get(8),
        last_error: row.get(9),
        seq: row.get(11),
        created_at: row.get(12),
        lease: row.get(16),
    })
}

/// The connection settings in `url`, and a TLS connector when it asks for TLS.
/// The longest a new connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a caller waits for a connection from the pool.
const POOL_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest one statement may run on the server (`statement_timeout`).
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

fn connect_config(
    url: &str,
) -> Result<(tokio_postgres::Config, Option<MakeRustlsConnect>), StoreError> {
    let invalid = |e: String| StoreError::Database(format!("invalid store.url: {e}"));
    // `sslrootcert` is libpq's name for a CA file; tokio-postgres does not know it, so it is
    // taken out of the URL (only then is the URL rewritten).
    let mut root_file = None;
    let mut url = url.to_string();
    if url.contains("sslrootcert=") {
        let mut parsed = reqwest::Url::parse(&url).map_err(|e| invalid(e.to_string()))?;
        let kept: Vec<(String, String)> = parsed
            .query_pairs()
            .filter(|(k, v)| {
                if k == "sslrootcert" {
                    root_file = Some(v.to_string());
                    false
                } else {
                    true
                }
            })
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        if kept.is_empty() {
            parsed.set_query(None);
        } else {
            parsed.query_pairs_mut().clear().extend_pairs(kept);
        }
        url = parsed.to_string();
    }
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e: tokio_postgres::Error| invalid(e.to_string()))?;
    // Bounds on every wait, unless the URL sets its own: a server that stops answering (a
    // partition) must turn into errors the router answers 503 with, not requests that hang.
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    config.keepalives(true);
    config.keepalives_idle(Duration::from_secs(30));
    let options = config.get_options().unwrap_or_default().to_string();
    if !options.contains("statement_timeout") {
        let bounded = format!(
            "{options} -c statement_timeout={}",
            STATEMENT_TIMEOUT.as_millis()
        );
        config.options(bounded.trim());
    }
    if config.get_ssl_mode() != SslMode::Require {
        if root_file.is_some() {
            return Err(invalid("sslrootcert needs sslmode=require".into()));
        }
        return Ok((config, None));
    }
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(file) = root_file {
        let certs = CertificateDer::pem_file_iter(&file)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| invalid(format!("sslrootcert {file}: {e}")))?;
        if certs.is_empty() {
            return Err(invalid(format!("sslrootcert {file} holds no certificate")));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| invalid(format!("sslrootcert {file}: {e}")))?;
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| invalid(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok((config, Some(MakeRustlsConnect::new(tls))))
}

/// Listens on one connection and wakes `wakers` per notification, until `shutdown` (`Ok`)
/// or the connection fails.
async fn listen<T>(
    config: &tokio_postgres::Config,
    tls: T,
    wakers: &Wakers,
    shutdown: &mut crate::shutdown::Shutdown,
) -> Result<(), String>
where
    T: tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>,
    T::Stream: Unpin,
{
    let fail = |e: tokio_postgres::Error| crate::describe_error(&e);
    let (client, mut connection) = config.connect(tls).await.map_err(fail)?;
    let statement = format!("LISTEN {EVENTS_CHANNEL}; LISTEN {DELIVERIES_CHANNEL}");
    let subscribe = client.batch_execute(&statement);
    tokio::pin!(subscribe);
    let mut subscribed = false;
    loop {
        tokio::select! {
            done = &mut subscribe, if !subscribed => {
                done.map_err(fail)?;
                subscribed = true;
            }
            message = std::future::poll_fn(|cx| connection.poll_message(cx)) => match message {
                Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) => {
                    if n.channel() == EVENTS_CHANNEL {
                        wakers.events.notify_one();
                    } else {
                        wakers.deliveries.notify_one();
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(fail(e)),
                None => return Err("the server closed the connection".to_string()),
            },
            _ = shutdown.wait() => return Ok(()),
        }
    }
}

fn all<T>(rows: Vec<Row>, f: fn(&Row) -> Result<T, StoreError>) -> Result<Vec<T>, StoreError> {
    rows.iter().map(f).collect()
}

/// The WHERE clause shared by delivery listings and requeues; parameters $1-$8.
const DELIVERY_WHERE: &str =
    "($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR event_id = $2)
    AND ($3::text IS NULL OR destination = $3)
    AND ($4::text IS NULL OR event_id IN (SELECT id FROM events WHERE route = $4))
    AND ($5::bigint IS NULL OR created_at >= $5) AND ($6::bigint IS NULL OR created_at < $6)
    AND ($7::bigint IS NULL OR seq < $7) AND ($8::text IS NULL OR id = $8)";

/// Values for [`DELIVERY_WHERE`] and the limit ($9, NULL for none).
struct DeliveryParams {
    status: Option<&'static str>,
    event_id: Option<String>,
    destination: Option<String>,
    route: Option<String>,
    since: Option<Millis>,
    until: Option<Millis>,
    before: Option<i64>,
    id: Option<String>,
    limit: Option<i64>,
}

impl DeliveryParams {
    fn new(f: &DeliveryFilter) -> Self {
        DeliveryParams {
            status: f.status.map(DeliveryStatus::as_str),
            event_id: f.event_id.clone(),
            destination: f.destination.clone(),
            route: f.route.clone(),
            since: f.since,
            until: f.until,
            before: f.before,
            id: f.id.clone(),
            limit: f.limit.map(|l| l as i64),
        }
    }

    fn values(&self) -> [&(dyn ToSql + Sync); 9] {
        [
            &self.status,
            &self.event_id,
            &self.destination,
            &self.route,
            &self.since,
            &self.until,
            &self.before,
            &self.id,
            &self.limit,
        ]
    }
}

/// The WHERE clause shared by event listings and replays; parameters $1-$5.
const EVENT_WHERE: &str = "($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR route = $2)
    AND ($3::bigint IS NULL OR received_at >= $3) AND ($4::bigint IS NULL OR received_at < $4)
    AND ($5::bigint IS NULL OR seq < $5) AND ($7::text IS NULL OR event_type = $7)
    AND ($8::text IS NULL OR EXISTS (SELECT 1 FROM deliveries d
                                     WHERE d.event_id = events.id AND d.destination = $8))
    AND ($9::text IS NULL OR strpos(headers, $9) > 0
         OR position(convert_to($9, 'UTF8') in body) > 0)";

/// Values for [`EVENT_WHERE`] and the limit ($6, NULL for none).
struct EventParams {
    status: Option<&'static str>,
    route: Option<String>,
    since: Option<Millis>,
    until: Option<Millis>,
    before: Option<i64>,
    limit: Option<i64>,
    event_type: Option<String>,
    destination: Option<String>,
    search: Option<String>,
}

impl EventParams {
    fn new(f: &EventFilter, limit: Option<i64>) -> Self {
        EventParams {
            status: f.status.map(EventStatus::as_str),
            route: f.route.clone(),
            since: f.since,
            until: f.until,
            before: f.before,
            limit,
            event_type: f.event_type.clone(),
            destination: f.destination.clone(),
            search: f.search.clone(),
        }
    }

    fn values(&self) -> [&(dyn ToSql + Sync); 9] {
        [
            &self.status,
            &self.route,
            &self.since,
            &self.until,
            &self.before,
            &self.limit,
            &self.event_type,
            &self.destination,
            &self.search,
        ]
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn append_event(
        &self,
        event: NewEvent,
        lease: Duration,
        dedup_window: Duration,
    ) -> Result<Appended, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job = AppendJob {
            append: PendingAppend {
                since: event.received_at - dedup_window.as_millis() as Millis,
                lease_until: lease_end(lease),
                announce: lease.is_zero(),
                event,
            },
            reply,
        };
        self.appends
            .send(job)
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn claim_events(
        &self,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let conn = self.pool.get().await?;
        let mut events = all(
            rows(
                &conn,
                self.cached,
                &format!(
                    "UPDATE events SET lease_until = $1 WHERE seq IN (
                        SELECT seq FROM events WHERE status = 'received' AND lease_until <= $2
                        ORDER BY lease_until, seq LIMIT $3 FOR UPDATE SKIP LOCKED)
                     RETURNING {EVENT_COLUMNS}"
                ),
                &[&lease_end(lease), &now_ms(), &(limit as i64)],
            )
            .await?,
            event_from_row,
        )?;
        events.sort_by_key(|e| e.seq);
        Ok(events)
    }

    async fn finish_events(
        &self,
        finished: Vec<FinishedEvent>,
        claim: Option<ClaimNew>,
    ) -> Result<Vec<Delivery>, StoreError> {
        if finished.is_empty() {
            return Ok(Vec::new());
        }
        // One statement and one commit for the whole batch (see [`FINISH_EVENTS`]).
        let n = finished.len();
        let (mut ids, mut statuses, mut errors) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut run_us, mut fuel, mut dropped) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let mut leases: Vec<Millis> = Vec::with_capacity(n);
        let mut d = DeliveryColumns::default();
        // Which deliveries may be created claimed, and a copy of each to hand back; the
        // server leaves out paused destinations and events finished elsewhere, then claims
        // the first `limit` left.
        let mut claiming: Vec<bool> = Vec::new();
        let mut candidates: HashMap<String, NewDelivery> = HashMap::new();
        let limit = claim.as_ref().map_or(0, |c| c.limit as i64);
        for FinishedEvent { id, outcome, run } in finished {
            let (status, error, lease_until, deliveries) = outcome.into_parts();
            leases.push(lease_until);
            for delivery in deliveries {
                let mine = claim.as_ref().is_some_and(|c| c.takes(&delivery, &[]));
                if mine {
                    candidates.insert(delivery.id.clone(), delivery.clone());
                }
                claiming.push(mine);
                d.push(delivery);
            }
            ids.push(id);
            statuses.push(status.as_str());
            errors.push(error);
            run_us.push(big(run.elapsed_us));
            fuel.push(big(run.fuel));
            dropped.push(run.dropped);
        }
        let now = now_ms();
        let lease = claim.as_ref().map_or(0, |c| lease_end(c.lease));
        let mut conn = self.pool.get().await?;
        // Other nodes' workers (and this one's) hear of deliveries nobody holds; the claimed
        // ones come back as rows, and one row of nulls says the notice went out.
        let rows = rows_by_index(
            &mut conn,
            self.cached,
            FINISH_EVENTS,
            &[
                &ids,
                &statuses,
                &errors,
                &run_us,
                &fuel,
                &dropped,
                &now,
                &d.id,
                &d.event_id,
                &d.destination,
                &d.body,
                &d.headers,
                &d.content_type,
                &d.ordering_key,
                &d.method,
                &d.path,
                &leases,
                &claiming,
                &lease,
                &limit,
                &d.traceparent,
            ],
        )
        .await?;
        let mut claimed = Vec::new();
        for row in rows {
            let (Some(id), Some(seq)) = (row.get::<_, Option<String>>(0), row.get(1)) else {
                continue;
            };
            if let Some(new) = candidates.remove(&id) {
                claimed.push(Delivery::created(new, seq, now, lease));
            }
        }
        claimed.sort_by_key(|d| d.seq);
        Ok(claimed)
    }

    async fn claim_deliveries(
        &self,
        lease: Duration,
        limit: usize,
        skip: &[String],
    ) -> Result<Vec<Delivery>, StoreError> {
        let conn = self.pool.get().await?;
        // An ordered delivery waits while an earlier one with its key is unfinished (leased
        // by another node or not); dead ones no longer block.
        let mut claimed = all(
            rows(
                &conn,
                self.cached,
                &format!(
                    "UPDATE deliveries SET lease_until = $1 WHERE seq IN (
                        SELECT d.seq FROM deliveries d
                        WHERE d.status IN ('pending', 'retrying') AND d.next_attempt_at <= $2 AND d.lease_until <= $2
                          AND NOT (d.destination = ANY($4))
                          AND d.destination NOT IN (SELECT name FROM paused_destinations)
                          AND (d.ordering_key IS NULL OR NOT EXISTS (
                              SELECT 1 FROM deliveries e
                              WHERE e.destination = d.destination AND e.ordering_key = d.ordering_key
                                AND e.status IN ('pending', 'retrying') AND e.seq < d.seq))
                        ORDER BY d.next_attempt_at, d.seq LIMIT $3 FOR UPDATE SKIP LOCKED)
                     RETURNING {DELIVERY_COLUMNS}"
                ),
                &[&lease_end(lease), &now_ms(), &(limit as i64), &skip],
            )
            .await?,
            delivery_from_row,
        )?;
        claimed.sort_by_key(|d| (d.next_attempt_at, d.seq));
        Ok(claimed)
    }

    async fn record_attempts(
        &self,
        attempts: Vec<(Attempt, AttemptOutcome)>,
    ) -> Result<(), StoreError> {
        if attempts.is_empty() {
            return Ok(());
        }
        let n = attempts.len();
        let mut ids = Vec::with_capacity(n);
        let (mut numbers, mut started, mut codes, mut latency, mut errors, mut responses) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut statuses, mut next, mut last_errors) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let mut leases: Vec<Millis> = Vec::with_capacity(n);
        for (attempt, outcome) in attempts {
            leases.push(attempt.lease);
            let (status, at, error) = outcome.next_state(attempt.error.as_deref());
            statuses.push(status.as_str());
            next.push(at);
            last_errors.push(error);
            numbers.push(attempt.number.min(i32::MAX as u32) as i32);
            started.push(attempt.started_at);
            codes.push(attempt.status_code.map(i32::from));
            latency.push(big(attempt.latency_ms));
            errors.push(attempt.error);
            responses.push(attempt.response_body);
            ids.push(attempt.delivery_id);
        }
        let mut conn = self.pool.get().await?;
        rows_by_index(
            &mut conn,
            self.cached,
            "WITH moved AS (
                UPDATE deliveries d SET status = u.status, attempts = d.attempts + 1,
                       next_attempt_at = u.next, last_error = u.error, lease_until = 0
                FROM unnest($1::text[], $8::text[], $9::bigint[], $10::text[], $11::bigint[])
                     AS u(id, status, next, error, lease)
                WHERE d.id = u.id AND d.lease_until = u.lease
                RETURNING d.id
             )
             INSERT INTO attempts (delivery_id, number, started_at, status_code, latency_ms, error, response)
             SELECT a.* FROM unnest($1::text[], $2::int[], $3::bigint[], $4::int[], $5::bigint[],
                                    $6::text[], $7::bytea[])
                  AS a(delivery_id, number, started_at, status_code, latency_ms, error, response)
             WHERE a.delivery_id IN (SELECT id FROM moved)",
            &[
                &ids,
                &numbers,
                &started,
                &codes,
                &latency,
                &errors,
                &responses,
                &statuses,
                &next,
                &last_errors,
                &leases,
            ],
        )
        .await?;
        Ok(())
    }

    async fn backlog(&self) -> Result<Backlog, StoreError> {
        let conn = self.pool.get().await?;
        let events = conn
            .query(
                "SELECT route, COUNT(*), MIN(received_at) FROM events
                 WHERE status = 'received' GROUP BY route ORDER BY route",
                &[],
            )
            .await?
            .iter()
            .map(|row| {
                let count = row.get::<_, i64>(1).max(0) as u64;
                Waiting {
                    name: row.get(0),
                    count,
                    ready: count,
                    oldest: row.get(2),
                }
            })
            .collect();
        let deliveries = conn
            .query(
                "SELECT destination, COUNT(*),
                        COUNT(*) FILTER (WHERE next_attempt_at <= $1 AND destination NOT IN
                                         (SELECT name FROM paused_destinations)),
                        MIN(created_at)
                 FROM deliveries WHERE status IN ('pending', 'retrying')
                 GROUP BY destination ORDER BY destination",
                &[&now_ms()],
            )
            .await?
            .iter()
            .map(|row| Waiting {
                name: row.get(0),
                count: row.get::<_, i64>(1).max(0) as u64,
                ready: row.get::<_, i64>(2).max(0) as u64,
                oldest: row.get(3),
            })
            .collect();
        Ok(Backlog { events, deliveries })
    }

    async fn relay_wake_ups(&self, wakers: Wakers, mut shutdown: crate::shutdown::Shutdown) {
        if !self.listen {
            return;
        }
        loop {
            let (config, tls) = &self.connect;
            let ended = match tls {
                Some(tls) => listen(config, tls.clone(), &wakers, &mut shutdown).await,
                None => listen(config, NoTls, &wakers, &mut shutdown).await,
            };
            match ended {
                Ok(()) => return,
                Err(error) => tracing::warn!(
                    %error,
                    "LISTEN connection lost; polling until it is back"
                ),
            }
            // Work may have been announced while nobody listened.
            wakers.events.notify_one();
            wakers.deliveries.notify_one();
            tokio::select! {
                _ = tokio::time::sleep(RELISTEN_AFTER) => {}
                _ = shutdown.wait() => return,
            }
        }
    }

    async fn commits(&self) -> Result<Option<u64>, StoreError> {
        let conn = self.pool.get().await?;
        let commits: i64 = conn
            .query_one(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
                &[],
            )
            .await?
            .get(0);
        Ok(Some(commits.max(0) as u64))
    }

    async fn next_delivery_due(&self, skip: &[String]) -> Result<Option<Millis>, StoreError> {
        let conn = self.pool.get().await?;
        let due = rows(
            &conn,
            self.cached,
            "SELECT MIN(GREATEST(next_attempt_at, lease_until)) FROM deliveries
             WHERE status IN ('pending', 'retrying')
               AND NOT (destination = ANY($1))
               AND destination NOT IN (SELECT name FROM paused_destinations)",
            &[&skip],
        )
        .await?;
        Ok(due.first().and_then(|row| row.get(0)))
    }

    async fn event(&self, id: &str) -> Result<Option<StoredEvent>, StoreError> {
        let conn = self.pool.get().await?;
        conn.query_opt(
            &format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = $1"),
            &[&id],
        )
        .await?
        .as_ref()
        .map(event_from_row)
        .transpose()
    }

    async fn deliveries(&self, filter: DeliveryFilter) -> Result<Vec<Delivery>, StoreError> {
        let conn = self.pool.get().await?;
        let order = if filter.limit.is_some() {
            "DESC"
        } else {
            "ASC"
        };
        let p = DeliveryParams::new(&filter);
        all(
            conn.query(
                &format!(
                    "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE {DELIVERY_WHERE}
                     ORDER BY seq {order} LIMIT $9"
                ),
                &p.values(),
            )
            .await?,
            delivery_from_row,
        )
    }

    async fn delivery(&self, id: &str) -> Result<Option<Delivery>, StoreError> {
        let conn = self.pool.get().await?;
        conn.query_opt(
            &format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = $1"),
            &[&id],
        )
        .await?
        .as_ref()
        .map(delivery_from_row)
        .transpose()
    }

    async fn attempts(&self, delivery_id: &str) -> Result<Vec<Attempt>, StoreError> {
        let conn = self.pool.get().await?;
        all(
            conn.query(
                "SELECT delivery_id, number, started_at, status_code, latency_ms, error, response
                 FROM attempts WHERE delivery_id = $1 ORDER BY seq",
                &[&delivery_id],
            )
            .await?,
            |row| {
                Ok(Attempt {
                    delivery_id: row.get(0),
                    number: count(row, 1),
                    started_at: row.get(2),
                    status_code: row
                        .get::<_, Option<i32>>(3)
                        .and_then(|c| u16::try_from(c).ok()),
                    latency_ms: row.get::<_, i64>(4) as u64,
                    error: row.get(5),
                    response_body: row.get(6),
                    lease: 0,
                })
            },
        )
    }

    async fn events(&self, filter: EventFilter) -> Result<Vec<EventSummary>, StoreError> {
        let conn = self.pool.get().await?;
        let p = EventParams::new(&filter, Some(filter.limit as i64));
        all(
            conn.query(
                &format!(
                    "SELECT seq, id, route, received_at, event_type, status, error, octet_length(body)::bigint,
                            duplicates, run_us, run_fuel, dropped
                     FROM events WHERE {EVENT_WHERE} ORDER BY seq DESC LIMIT $6"
                ),
                &p.values(),
            )
            .await?,
            |row| {
                let status: String = row.get(5);
                Ok(EventSummary {
                    seq: row.get(0),
                    id: row.get(1),
                    route: row.get(2),
                    received_at: row.get(3),
                    event_type: row.get(4),
                    status: EventStatus::parse(&status)?,
                    error: row.get(6),
                    body_size: row.get::<_, i64>(7) as u64,
                    duplicates: count(row, 8),
                    run: RunRecord {
                        elapsed_us: row.get::<_, i64>(9) as u64,
                        fuel: row.get::<_, i64>(10) as u64,
                        dropped: row.get(11),
                    },
                })
            },
        )
    }

    async fn requeue_deliveries(&self, filter: DeliveryFilter) -> Result<usize, StoreError> {
        let conn = self.pool.get().await?;
        let p = DeliveryParams::new(&filter);
        let now = now_ms();
        let mut values: Vec<&(dyn ToSql + Sync)> = p.values().to_vec();
        values.push(&now);
        let n = conn
            .execute(
                &format!(
                    "UPDATE deliveries SET status = 'pending', next_attempt_at = $10, round_start = attempts,
                            lease_until = 0
                     WHERE seq IN (SELECT seq FROM deliveries WHERE {DELIVERY_WHERE}
                                   AND status != 'delivered' AND lease_until <= $10
                                   ORDER BY seq LIMIT $9)"
                ),
                &values,
            )
            .await?;
        Ok(n as usize)
    }

    async fn replay_events(
        &self,
        filter: EventFilter,
        ids: Option<Vec<String>>,
    ) -> Result<usize, StoreError> {
        let conn = self.pool.get().await?;
        let limit = (filter.limit > 0).then_some(filter.limit as i64);
        let p = EventParams::new(&filter, limit);
        let mut values: Vec<&(dyn ToSql + Sync)> = p.values().to_vec();
        values.push(&ids);
        let n = conn
            .execute(
                &format!(
                    "UPDATE events SET status = 'received', error = NULL, lease_until = 0
                     WHERE seq IN (SELECT seq FROM events WHERE {EVENT_WHERE}
                                   AND ($10::text[] IS NULL OR id = ANY($10))
                                   ORDER BY seq LIMIT $6)"
                ),
                &values,
            )
            .await?;
        Ok(n as usize)
    }

    async fn set_destination_paused(
        &self,
        name: &str,
        reason: Option<String>,
    ) -> Result<(), StoreError> {
        let conn = self.pool.get().await?;
        match reason {
            Some(reason) => conn
                .execute(
                    "INSERT INTO paused_destinations (name, reason, paused_at) VALUES ($1, $2, $3)
                     ON CONFLICT (name) DO UPDATE SET reason = excluded.reason, paused_at = excluded.paused_at",
                    &[&name, &reason, &now_ms()],
                )
                .await?,
            None => {
                conn.execute("DELETE FROM paused_destinations WHERE name = $1", &[&name])
                    .await?
            }
        };
        Ok(())
    }

    async fn prune(&self, before: Millis, limit: usize) -> Result<usize, StoreError> {
        let mut conn = self.pool.get().await?;
        let tx = conn.transaction().await?;
        let ids: Vec<String> = tx
            .query(
                &format!(
                    "SELECT id FROM events e WHERE {}
                     LIMIT $2 FOR UPDATE SKIP LOCKED",
                    PRUNABLE.replace("?1", "$1")
                ),
                &[&before, &(limit as i64)],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        tx.execute(
            "DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE event_id = ANY($1))",
            &[&ids],
        )
        .await?;
        tx.execute("DELETE FROM deliveries WHERE event_id = ANY($1)", &[&ids])
            .await?;
        tx.execute("DELETE FROM events WHERE id = ANY($1)", &[&ids])
            .await?;
        // Dedup claims older than the cut name events that may be gone.
        tx.execute("DELETE FROM dedup WHERE received_at < $1", &[&before])
            .await?;
        tx.commit().await?;
        Ok(ids.len())
    }

    async fn paused_destinations(&self) -> Result<Vec<(String, String)>, StoreError> {
        let conn = self.pool.get().await?;
        Ok(conn
            .query(
                "SELECT name, reason FROM paused_destinations ORDER BY name",
                &[],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    async fn delivery_counts(&self) -> Result<Vec<(DeliveryStatus, u64)>, StoreError> {
        let conn = self.pool.get().await?;
        conn.query(
            "SELECT status, COUNT(*) FROM deliveries GROUP BY status ORDER BY status",
            &[],
        )
        .await?
        .iter()
        .map(|row| {
            let status: String = row.get(0);
            Ok((DeliveryStatus::parse(&status)?, row.get::<_, i64>(1) as u64))
        })
        .collect()
    }

    async fn kv_get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let conn = self.pool.get().await?;
        let found = rows(
            &conn,
            self.cached,
            KV_LIVE_VALUE,
            &[&plugin, &key, &now_ms()],
        )
        .await?;
        Ok(found.first().map(|r| r.get(0)))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let conn = self.pool.get().await?;
        conn.execute("SELECT 1", &[]).await?;
        Ok(())
    }

    async fn kv_count(&self, plugin: &str) -> Result<u64, StoreError> {
        let conn = self.pool.get().await?;
        let n: i64 = conn
            .query_one(
                "SELECT COUNT(*) FROM kv WHERE plugin = $1 AND (expires_at IS NULL OR expires_at > $2)",
                &[&plugin, &now_ms()],
            )
            .await?
            .get(0);
        Ok(n.max(0) as u64)
    }

    async fn kv_set(
        &self,
        plugin: &str,
        key: &str,
        value: Vec<u8>,
        expires_at: Option<Millis>,
    ) -> Result<(), StoreError> {
        let conn = self.pool.get().await?;
        conn.execute(
            "INSERT INTO kv (plugin, key, value, expires_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (plugin, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
            &[&plugin, &key, &value, &expires_at],
        )
        .await?;
        // Expired entries are swept as writes come in, a few at a time.
        conn.execute(
            "DELETE FROM kv WHERE ctid IN (SELECT ctid FROM kv WHERE expires_at <= $1 LIMIT 16)",
            &[&now_ms()],
        )
        .await?;
        Ok(())
    }

    async fn kv_delete(&self, plugin: &str, key: &str) -> Result<(), StoreError> {
        let conn = self.pool.get().await?;
        conn.execute(
            "DELETE FROM kv WHERE plugin = $1 AND key = $2",
            &[&plugin, &key],
        )
        .await?;
        Ok(())
    }

    async fn kv_increment(
        &self,
        plugin: &str,
        key: &str,
        delta: i64,
        expires_at: Option<Millis>,
    ) -> Result<Option<i64>, StoreError> {
        let mut conn = self.pool.get().await?;
        let tx = conn.transaction().await?;
        // Serializes increments of one key across nodes (the row may not exist yet, so a
        // row lock alone would not do).
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))",
            &[&plugin, &key],
        )
        .await?;
        let live: Option<Vec<u8>> = tx
            .query_opt(KV_LIVE_VALUE, &[&plugin, &key, &now_ms()])
            .await?
            .map(|r| r.get(0));
        let sum = match live {
            None => {
                tx.execute(
                    "INSERT INTO kv (plugin, key, value, expires_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (plugin, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
                    &[&plugin, &key, &delta.to_string().into_bytes(), &expires_at],
                )
                .await?;
                Some(delta)
            }
            Some(old) => {
                let sum = kv_sum(&old, delta);
                if let Some(sum) = sum {
                    tx.execute(
                        "UPDATE kv SET value = $3 WHERE plugin = $1 AND key = $2",
                        &[&plugin, &key, &sum.to_string().into_bytes()],
                    )
                    .await?;
                }
                sum
            }
        };
        tx.commit().await?;
        Ok(sum)
    }

    async fn kv_set_if_absent(
        &self,
        plugin: &str,
        key: &str,
        value: Vec<u8>,
        expires_at: Option<Millis>,
    ) -> Result<bool, StoreError> {
        let conn = self.pool.get().await?;
        // Replaces an expired entry; leaves a live one alone. ON CONFLICT makes it atomic.
        let stored = conn
            .execute(
                "INSERT INTO kv (plugin, key, value, expires_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (plugin, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
                 WHERE kv.expires_at IS NOT NULL AND kv.expires_at <= $5",
                &[&plugin, &key, &value, &expires_at, &now_ms()],
            )
            .await?;
        Ok(stored == 1)
    }
}
