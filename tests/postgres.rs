//! The PostgreSQL store against a real server started for each test: the shared store
//! conformance suite, schema checks, and two router processes sharing one database.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use hookyard::store::postgres::{PgOptions, PostgresStore};
use hookyard::store::{Store, conformance};

use crate::support::postgres::PgCluster;
use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn postgres_passes_the_store_conformance_suite() {
    let cluster = Arc::new(PgCluster::start().expect("PostgreSQL starts"));
    conformance::run_all(|| {
        let cluster = cluster.clone();
        async move {
            let url = cluster.new_database().await;
            let store = PostgresStore::open(&url).await.expect("open");
            (store, ())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_without_kept_statements_or_listen_passes_the_store_conformance_suite() {
    // The settings for PgBouncer in transaction mode: every statement sent as text.
    let cluster = Arc::new(PgCluster::start().expect("PostgreSQL starts"));
    conformance::run_all(|| {
        let cluster = cluster.clone();
        async move {
            let url = cluster.new_database().await;
            let options = PgOptions {
                listen: false,
                statement_cache: false,
                ..PgOptions::default()
            };
            let store = PostgresStore::open_with_options(&url, options)
                .await
                .expect("open");
            (store, ())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_foreign_or_newer_postgres_database_is_refused_with_a_reason() {
    let cluster = PgCluster::start().expect("PostgreSQL starts");
    let foreign = cluster.new_database().await;
    cluster.query(&foreign, "CREATE TABLE events (x int)").await;
    let err = PostgresStore::open(&foreign)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("not created by this hookyard"), "{err}");

    let newer = cluster.new_database().await;
    drop(PostgresStore::open(&newer).await.expect("created"));
    cluster
        .query(&newer, "UPDATE hookyard_schema SET version = 99")
        .await;
    let err = PostgresStore::open(&newer)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("schema version 99, newer than this hookyard's 3"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn older_postgres_schemas_are_upgraded_and_current_ones_reopened_with_their_data() {
    let cluster = PgCluster::start().expect("PostgreSQL starts");
    // A version 1 database (before traces were kept) is brought up to date, data kept.
    let old = cluster.new_database().await;
    {
        let store = PostgresStore::open(&old).await.expect("created");
        store
            .append_event(
                conformance::sample_event("evt_old", None),
                Duration::ZERO,
                Duration::from_secs(60),
            )
            .await
            .expect("append");
    }
    cluster
        .query(
            &old,
            "ALTER TABLE events DROP COLUMN traceparent;
             ALTER TABLE deliveries DROP COLUMN traceparent;
             CREATE INDEX events_dedup ON events(dedup_key, received_at) WHERE dedup_key IS NOT NULL;
             UPDATE hookyard_schema SET version = 1",
        )
        .await;
    let store = PostgresStore::open(&old).await.expect("migrated");
    let kept = store.event("evt_old").await.expect("read").expect("kept");
    assert_eq!(kept.event.traceparent, None);
    let current = (
        vec!["3".to_string()],
        vec![
            "events_id_key".to_string(),
            "events_pkey".to_string(),
            "events_waiting".to_string(),
        ],
    );
    assert_eq!(schema(&cluster, &old).await, current);
    // A version 2 database loses the index no statement read (`events_dedup`), data kept.
    let two = cluster.new_database().await;
    {
        let store = PostgresStore::open(&two).await.expect("created");
        store
            .append_event(
                conformance::sample_event("evt_two", Some("key-two")),
                Duration::from_secs(60),
                Duration::from_secs(60),
            )
            .await
            .expect("append");
    }
    cluster
        .query(
            &two,
            "CREATE INDEX events_dedup ON events(dedup_key, received_at) WHERE dedup_key IS NOT NULL;
             UPDATE hookyard_schema SET version = 2",
        )
        .await;
    let store = PostgresStore::open(&two).await.expect("migrated");
    assert!(store.event("evt_two").await.expect("read").is_some());
    assert_eq!(schema(&cluster, &two).await, current);
    // Opening again (a second node, a restart) finds the schema and keeps the data.
    let url = cluster.new_database().await;
    let store = PostgresStore::open(&url).await.expect("created");
    store
        .append_event(
            conformance::sample_event("evt_kept", None),
            Duration::from_secs(60),
            Duration::from_secs(60),
        )
        .await
        .expect("append");
    let again = PostgresStore::open(&url).await.expect("reopened");
    assert!(again.event("evt_kept").await.expect("read").is_some());
    // Bodies are compressed with lz4 (Debian's server has it), not the slower pglz.
    let compression = cluster
        .query(
            &url,
            "SELECT attrelid::regclass::text || '.' || attcompression::text FROM pg_attribute
             WHERE attname = 'body' AND attrelid IN ('events'::regclass, 'deliveries'::regclass)
             ORDER BY 1",
        )
        .await;
    assert_eq!(compression, ["deliveries.l", "events.l"]);
}

/// A database's schema version and the indexes on its events table.
async fn schema(cluster: &PgCluster, url: &str) -> (Vec<String>, Vec<String>) {
    let version = cluster
        .query(url, "SELECT version FROM hookyard_schema")
        .await;
    let indexes = cluster
        .query(
            url,
            "SELECT indexname FROM pg_indexes WHERE tablename = 'events' ORDER BY 1",
        )
        .await;
    (version, indexes)
}

/// The test `[server]` and `[store]` tables with the store at `url`, four connections a node.
fn server_on(url: &str) -> String {
    SERVER.replace(
        "url = \"sqlite://data/hookyard.db\"",
        &format!("url = \"{url}\"\nmax_connections = 4"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn two_routers_sharing_postgres_deliver_every_event_exactly_once() {
    let cluster = PgCluster::start().expect("PostgreSQL starts");
    let url = cluster.new_database().await;
    let receiver = Receiver::start().await;
    let config = format!(
        r#"{}
[plugins.only]
path = "{}"
config = {{ conditions = [{{ pointer = "/keep", equals = true }}] }}

[destinations.sink]
url = "{}"

[[routes]]
name = "in"
verify = {{ scheme = "none" }}
steps = ["only"]
to = ["sink"]
"#,
        server_on(&url),
        plugin("filter").display(),
        receiver.url("/")
    );
    let a = Router::start(&config).expect("router a starts");
    let b = Router::start(&config).expect("router b starts");
    let mut sent = HashSet::new();
    for i in 0..60 {
        let router = if i % 2 == 0 { &a } else { &b };
        let keep = i % 3 != 0;
        let body = format!(r#"{{"n":{i},"keep":{keep}}}"#);
        assert_eq!(post(router, "in", &[], body.as_bytes()).await.0, 202);
        if keep {
            sent.insert(i);
        }
    }
    receiver.wait_for(sent.len(), Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got: Vec<u64> = receiver
        .received()
        .iter()
        .map(|r| r.json()["n"].as_u64().unwrap())
        .collect();
    let unique: HashSet<u64> = got.iter().copied().collect();
    assert_eq!(
        got.len(),
        unique.len(),
        "no event was delivered twice: {got:?}"
    );
    assert_eq!(unique, sent, "every kept event was delivered");
    // Both nodes see the whole journal through their admin APIs.
    for router in [&a, &b] {
        let (status, events) = admin(router, "GET", "/admin/events?limit=100", None).await;
        assert_eq!(status, 200);
        assert_eq!(
            events["items"].as_array().map(Vec::len),
            Some(60),
            "{events}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_beyond_the_memory_queue_is_processed_at_once_by_the_nodes_not_after_a_lease() {
    let cluster = PgCluster::start().expect("PostgreSQL starts");
    let url = cluster.new_database().await;
    let receiver = Receiver::start().await;
    // One slot in memory, one worker, a 60 s lease: most of the burst is journaled unclaimed,
    // announced by NOTIFY, and claimed from the database by whichever node is free.
    let config = format!(
        r#"{}
[runtime]
concurrency = 1
memory_queue = 1
memory_queue_wait = "0s"
event_lease = "60s"

[destinations.sink]
url = "{}"

[[routes]]
name = "in"
verify = {{ scheme = "none" }}
to = ["sink"]
"#,
        server_on(&url),
        receiver.url("/")
    );
    let a = Router::start(&config).expect("router a starts");
    let b = Router::start(&config).expect("router b starts");
    let started = std::time::Instant::now();
    let posts = (0..40).map(|n| {
        let body = format!("{{\"n\":{n}}}");
        let a = &a;
        async move { post(a, "in", &[], body.as_bytes()).await.0 }
    });
    let statuses = futures::future::join_all(posts).await;
    assert!(statuses.iter().all(|s| *s == 202), "{statuses:?}");
    receiver.wait_for(40, Duration::from_secs(20)).await;
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}: a lease, not a prompt claim",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got: Vec<u64> = receiver
        .received()
        .iter()
        .map(|r| r.json()["n"].as_u64().unwrap())
        .collect();
    let unique: HashSet<u64> = got.iter().copied().collect();
    assert_eq!(got.len(), 40, "each event delivered once: {got:?}");
    assert_eq!(unique.len(), 40);
    let mut processed = 0;
    for router in [&a, &b] {
        let (_, metrics) = admin(router, "GET", "/admin/metrics", None).await;
        processed += metrics
            .as_str()
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("hookyard_events_total{route=\"in\",result=\"processed\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .unwrap_or(0);
    }
    assert_eq!(
        processed, 40,
        "each event run once, by one node or the other"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sslmode_require_connects_over_tls_and_verifies_the_server_certificate() {
    let cluster = PgCluster::start_with_tls().expect("PostgreSQL starts with TLS");
    let url = cluster.new_database().await;
    let database = url.rsplit('/').next().unwrap().to_string();
    let ca = cluster.ca_file();

    let tls_url = format!("{url}?sslmode=require&sslrootcert={}", ca.display());
    let store = PostgresStore::open(&tls_url).await.expect("opens over TLS");
    store
        .append_event(
            conformance::sample_event("evt_tls", None),
            Duration::from_secs(60),
            Duration::from_secs(60),
        )
        .await
        .expect("append");
    assert!(store.event("evt_tls").await.expect("read").is_some());
    let encrypted = cluster
        .query(
            &cluster.url("postgres"),
            &format!(
                "SELECT COUNT(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
                 WHERE s.ssl AND a.datname = '{database}'"
            ),
        )
        .await;
    assert_ne!(encrypted, ["0"], "the store's connections use TLS");

    // A certificate from an unknown CA is refused, not silently accepted.
    let err = PostgresStore::open(&format!("{url}?sslmode=require"))
        .await
        .err()
        .expect("an unverifiable server is refused")
        .to_string();
    assert!(
        err.contains("invalid peer certificate: UnknownIssuer"),
        "{err}"
    );

    // A CA file without sslmode=require is a mistake worth naming.
    let err = PostgresStore::open(&format!("{url}?sslrootcert={}", ca.display()))
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("sslrootcert needs sslmode=require"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_claimed_by_a_node_that_dies_is_taken_over_by_another() {
    let cluster = PgCluster::start().expect("PostgreSQL starts");
    let url = cluster.new_database().await;
    let receiver = Receiver::start().await;
    let config = format!(
        r#"{}
[runtime]
event_lease = "1s"

[plugins.slow]
path = "{}"
timeout = "10s"

[destinations.sink]
url = "{}"

[[routes]]
name = "in"
verify = {{ scheme = "none" }}
steps = ["slow"]
to = ["sink"]
"#,
        SERVER.replace("sqlite://data/hookyard.db", &url),
        plugin("misbehave-sync").display(),
        receiver.url("/")
    );
    let mut a = Router::start(&config).expect("router a starts");
    let b = Router::start(&config).expect("router b starts");
    let (status, text) = post(&a, "in", &[], br#"{"mode":"slow","ms":3000,"n":1}"#).await;
    assert_eq!(status, 202, "{text}");
    let id = serde_json::from_str::<serde_json::Value>(&text).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Node a is in the middle of the plugin (3 s) when it dies.
    tokio::time::sleep(Duration::from_millis(500)).await;
    a.kill();
    // Node b claims the event once a's lease has run out, and delivers it.
    let got = receiver.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(got[0].json()["n"], 1);
    let (status, event) = admin(&b, "GET", &format!("/admin/events/{id}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(event["status"], "processed", "{event}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received().len(), 1, "delivered once");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_that_stops_answering_gets_fast_503s_and_readyz_says_so() {
    let cluster = PgCluster::start().expect("PostgreSQL starts");
    let url = cluster.new_database().await;
    let receiver = Receiver::start().await;
    let config = format!(
        "{}\n[destinations.sink]\nurl = \"{}\"\n\n[[routes]]\nname = \"in\"\nverify = {{ scheme = \"none\" }}\nto = [\"sink\"]\n",
        server_on(&url),
        receiver.url("/")
    );
    let router = Router::start(&config).expect("router starts");
    assert_eq!(post(&router, "in", &[], br#"{"n":1}"#).await.0, 202);
    receiver.wait_for(1, Duration::from_secs(20)).await;
    let ready = format!("{}/readyz", router.base());
    assert_eq!(raw_http::get_status(&ready).unwrap(), 200);

    cluster.freeze();
    let started = std::time::Instant::now();
    let (status, text) = post(&router, "in", &[], br#"{"n":2}"#).await;
    let waited = started.elapsed();
    cluster.thaw();
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("event store unavailable"), "{text}");
    assert!(
        waited < Duration::from_secs(15),
        "answered after {waited:?}"
    );
    // Readiness followed the store down (checked after the thaw, so the probe that saw it
    // may be the last failing one), then back up.
    cluster.freeze();
    eventually("/readyz says 503", Duration::from_secs(10), || {
        raw_http::get_status(&ready).ok() == Some(503)
    })
    .await;
    cluster.thaw();
    eventually("/readyz says 200 again", Duration::from_secs(20), || {
        raw_http::get_status(&ready).ok() == Some(200)
    })
    .await;
    assert_eq!(post(&router, "in", &[], br#"{"n":3}"#).await.0, 202);
    receiver.wait_for(2, Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn finishing_events_finds_them_by_id_not_through_the_index_of_waiting_events() {
    // Under load `events_waiting` holds an entry for every event received since the last
    // vacuum; a plan that scans it reads more heap pages with every batch.
    let cluster = PgCluster::start().expect("PostgreSQL starts");
    let url = cluster.new_database().await;
    let _store = PostgresStore::open(&url).await.expect("open");
    cluster
        .query(
            &url,
            "INSERT INTO events (id, route, received_at, headers, body, status)
             SELECT 'evt_' || g, 'r', g, '[]', '', CASE WHEN g > 4990 THEN 'received' ELSE 'processed' END
             FROM generate_series(1, 5000) AS g;
             ANALYZE events;",
        )
        .await;
    let nulls = vec!["NULL"; 20].join(", ");
    for mode in ["force_generic_plan", "force_custom_plan"] {
        let plan = cluster
            .query(
                &url,
                &format!(
                    "PREPARE finish AS {};
                     SET plan_cache_mode = {mode};
                     EXPLAIN EXECUTE finish('{{evt_4995,evt_4996}}', {nulls});",
                    hookyard::store::postgres::FINISH_EVENTS
                ),
            )
            .await
            .join("\n");
        assert!(plan.contains("events_id_key"), "{mode}:\n{plan}");
        assert!(!plan.contains("events_waiting"), "{mode}:\n{plan}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn outcomes_and_attempts_on_a_grown_database_do_not_read_whole_tables() {
    // Statements stay prepared on a connection. Planned once for the tables as they were in
    // its first runs (new, nearly empty), recording outcomes and attempts read every row
    // ever stored at every batch, until an `ANALYZE` happened to replace the plan.
    let cluster = PgCluster::start().expect("PostgreSQL starts");
    let url = cluster.new_database().await;
    let options = PgOptions {
        max_connections: 1,
        listen: false,
        ..PgOptions::default()
    };
    let store = PostgresStore::open_with_options(&url, options)
        .await
        .expect("open");
    // No autovacuum: its `ANALYZE` could replace a bad plan before the check sees it.
    cluster
        .query(
            &url,
            "ALTER TABLE events SET (autovacuum_enabled = off);
             ALTER TABLE deliveries SET (autovacuum_enabled = off);
             ALTER TABLE attempts SET (autovacuum_enabled = off);",
        )
        .await;
    for round in 0..8 {
        conformance::deliver_batch(&store, &format!("evt_warm{round}"), 2).await;
    }
    cluster
        .query(
            &url,
            "INSERT INTO events (id, route, received_at, headers, body, status)
             SELECT 'evt_old' || g, 'r', g, '[]', '', 'processed' FROM generate_series(1, 20000) AS g;
             INSERT INTO deliveries (id, event_id, destination, body, headers, status,
                                     next_attempt_at, created_at)
             SELECT 'dlv_old' || g, 'evt_old' || g, 'chat', '', '[]', 'delivered', g, g
             FROM generate_series(1, 20000) AS g;",
        )
        .await;
    conformance::deliver_batch(&store, "evt_new", 5).await;
    // A server process reports its table counters when it exits.
    drop(store);
    let mut others = Vec::new();
    for _ in 0..100 {
        others = cluster
            .query(
                &url,
                "SELECT pid FROM pg_stat_activity
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
            .await;
        if others.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(others.is_empty(), "the store's connection closed");
    // The batches' own rows are a few dozen in all. One read of either table grown to 20,000
    // rows, by a sequential scan or whole through an index, reads them all.
    let read = cluster
        .query(
            &url,
            "SELECT relname || ' ' || (coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0))
             FROM pg_stat_user_tables
             WHERE relname IN ('events', 'deliveries') ORDER BY relname",
        )
        .await;
    assert_eq!(read.len(), 2, "{read:?}");
    for table in &read {
        let rows: u64 = table
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("a count");
        assert!(
            rows < 1_000,
            "rows read by scans and index fetches: {read:?}"
        );
    }
}
