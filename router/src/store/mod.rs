//! The journal: events, their deliveries and every attempt, behind one [`Store`] trait.
//!
//! An event is durable before the provider gets its 2xx; everything after that is re-run
//! from the stored raw event. Work is *claimed* with a lease that expires, so a router that
//! dies mid-work leaves nothing stuck: the next claim after the lease picks it up.
//!
//! Backends: [`sqlite`] (embedded, group commit) and [`postgres`] (shared by several nodes,
//! claims with `FOR UPDATE SKIP LOCKED`). Every backend runs the shared
//! [`conformance`] suite.

pub mod conformance;
pub mod postgres;
pub mod sqlite;

use std::time::{Duration, SystemTime};

use async_trait::async_trait;

/// Milliseconds since the Unix epoch: the store's one time unit.
pub type Millis = i64;

/// `stored` (a kv counter: decimal text) plus `delta`; `None` if it is not a decimal integer
/// or the sum overflows.
pub fn kv_sum(stored: &[u8], delta: i64) -> Option<i64> {
    std::str::from_utf8(stored)
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .and_then(|n| n.checked_add(delta))
}

/// Headers as stored: a JSON array of `[name, value]` pairs.
fn headers_to_json(headers: &[(String, String)]) -> String {
    serde_json::to_string(headers).unwrap_or_else(|_| "[]".to_string())
}

fn headers_from_json(text: &str) -> Result<Vec<(String, String)>, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("headers: {e}")))
}

/// When a lease taken now for `lease` runs out.
fn lease_end(lease: Duration) -> Millis {
    now_ms() + lease.as_millis() as Millis
}

/// Events [`Store::prune`] may delete (`e` is the event, `?1` the cut-off time): finished,
/// and none of their deliveries still due.
const PRUNABLE: &str = "e.received_at < ?1 AND e.status IN ('processed', 'failed')
    AND NOT EXISTS (SELECT 1 FROM deliveries d
                    WHERE d.event_id = e.id AND d.status IN ('pending', 'retrying'))
    ORDER BY e.seq";

/// The columns every backend reads an event from, in this order.
const EVENT_COLUMNS: &str = "id, route, received_at, headers, body, event_type, dedup_key, status, error, seq, duplicates, run_us, run_fuel, dropped, traceparent";

/// The columns every backend reads a delivery from, in this order.
const DELIVERY_COLUMNS: &str = "id, event_id, destination, body, headers, content_type, status, attempts, next_attempt_at, last_error, ordering_key, seq, created_at, round_start, method, path, lease_until, traceparent";

/// The current time in [`Millis`].
pub fn now_ms() -> Millis {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}

/// A failure of the storage layer. Callers treat it as "not durable".
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database reported an error.
    #[error("database error: {0}")]
    Database(String),
    /// The store's writer is gone (shutting down or crashed).
    #[error("store is closed")]
    Closed,
    /// Stored data could not be decoded.
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

/// An event as ingress hands it to the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// Hookyard's id (`evt_...`).
    pub id: String,
    /// The route that received it.
    pub route: String,
    /// Receive time.
    pub received_at: Millis,
    /// Request headers, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Vec<u8>,
    /// The provider's event type, when known.
    pub event_type: Option<String>,
    /// `route:provider-delivery-id`; a second event with the same key is a duplicate.
    pub dedup_key: Option<String>,
    /// The W3C `traceparent` of the span that received it, when traces are on: the later
    /// stages' spans join its trace.
    pub traceparent: Option<String>,
}

/// The result of appending an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// Stored, and claimed by the caller for processing until the lease ends.
    Stored,
    /// An event with the same dedup key exists; nothing was stored.
    Duplicate {
        /// The id of the event stored first.
        original: String,
    },
}

/// Where an event is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventStatus {
    /// Journaled; plugins have not finished with it.
    Received,
    /// Plugins ran; its deliveries exist.
    Processed,
    /// A plugin failed or broke a limit; see the error.
    Failed,
}

impl EventStatus {
    /// The name used in the store and the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Received => "received",
            EventStatus::Processed => "processed",
            EventStatus::Failed => "failed",
        }
    }
    /// Parses the name used in the store and the admin API.
    pub fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "received" => EventStatus::Received,
            "processed" => EventStatus::Processed,
            "failed" => EventStatus::Failed,
            other => return Err(StoreError::Corrupt(format!("event status {other:?}"))),
        })
    }
}

/// An event read back from the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Position in the store; also the listing cursor.
    pub seq: i64,
    /// What was appended.
    pub event: NewEvent,
    /// Where it is now.
    pub status: EventStatus,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// How many duplicates of it (same provider delivery id) were acknowledged and dropped.
    pub duplicates: u32,
    /// What its last run through the plugins cost.
    pub run: RunRecord,
}

/// What an event's run through its plugins cost, as recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunRecord {
    /// Wall time in plugins, microseconds.
    pub elapsed_us: u64,
    /// Fuel burned.
    pub fuel: u64,
    /// Why a plugin dropped it, if one said.
    pub dropped: Option<String>,
}

/// What running the plugin chain on an event produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventOutcome {
    /// These deliveries are to be made (possibly none: the event was filtered out).
    Processed(Vec<NewDelivery>),
    /// The chain failed; the message names plugin and reason.
    Failed(String),
    /// The chain could not finish for a reason outside the event and its plugins (the
    /// store was unavailable to a plugin): the event stays waiting and is claimed again at
    /// `at`, with `reason` shown meanwhile.
    RetryLater {
        /// Why, naming the plugin.
        reason: String,
        /// When it may be claimed again.
        at: Millis,
    },
}

impl EventOutcome {
    /// The event's new status, error and lease (when it may be claimed again; 0 for a
    /// finished event), and the deliveries to create (none on failure).
    pub fn into_parts(self) -> (EventStatus, Option<String>, Millis, Vec<NewDelivery>) {
        match self {
            EventOutcome::Processed(d) => (EventStatus::Processed, None, 0, d),
            EventOutcome::Failed(e) => (EventStatus::Failed, Some(e), 0, Vec::new()),
            EventOutcome::RetryLater { reason, at } => {
                (EventStatus::Received, Some(reason), at, Vec::new())
            }
        }
    }

    /// The same as [`EventOutcome::into_parts`], borrowed.
    pub fn parts(&self) -> (EventStatus, Option<&str>, Millis, &[NewDelivery]) {
        match self {
            EventOutcome::Processed(d) => (EventStatus::Processed, None, 0, d),
            EventOutcome::Failed(e) => (EventStatus::Failed, Some(e), 0, &[]),
            EventOutcome::RetryLater { reason, at } => {
                (EventStatus::Received, Some(reason), *at, &[])
            }
        }
    }

    /// Whether it creates at least one delivery.
    pub fn has_deliveries(&self) -> bool {
        matches!(self, EventOutcome::Processed(d) if !d.is_empty())
    }
}

/// One output bound for one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    /// Hookyard's id (`dlv_...`), sent to the destination so it can dedup.
    pub id: String,
    /// The event this came from.
    pub event_id: String,
    /// Destination name from `router.toml`.
    pub destination: String,
    /// Request body.
    pub body: Vec<u8>,
    /// Extra request headers from the plugin.
    pub headers: Vec<(String, String)>,
    /// Request content type.
    pub content_type: Option<String>,
    /// Deliveries to the same destination with the same key go one after another.
    pub ordering_key: Option<String>,
    /// HTTP method chosen by the plugin, instead of the destination's.
    pub method: Option<String>,
    /// Appended to the destination's URL.
    pub path: Option<String>,
    /// The W3C `traceparent` of the span that created it, when traces are on: each
    /// attempt's span joins that trace, and HTTP attempts send their own.
    pub traceparent: Option<String>,
}

/// Where a delivery is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Not yet attempted.
    Pending,
    /// Attempted, failed, due again at `next_attempt_at`.
    Retrying,
    /// A 2xx was received.
    Delivered,
    /// Failed for good; kept as a dead letter.
    Dead,
}

impl DeliveryStatus {
    /// The name used in the store and the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Retrying => "retrying",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Dead => "dead",
        }
    }
    /// Parses the name used in the store and the admin API.
    pub fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "pending" => DeliveryStatus::Pending,
            "retrying" => DeliveryStatus::Retrying,
            "delivered" => DeliveryStatus::Delivered,
            "dead" => DeliveryStatus::Dead,
            other => return Err(StoreError::Corrupt(format!("delivery status {other:?}"))),
        })
    }
}

/// A delivery read back from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// What was created.
    pub new: NewDelivery,
    /// Where it is now.
    pub status: DeliveryStatus,
    /// Position in the store; also the listing cursor.
    pub seq: i64,
    /// When it was created.
    pub created_at: Millis,
    /// Attempts made so far, all of them.
    pub attempts: u32,
    /// Attempts made since it was last re-queued by hand: what the retry policy counts.
    pub attempts_in_round: u32,
    /// When it is due (meaningful while pending or retrying).
    pub next_attempt_at: Millis,
    /// The last attempt's failure, or why it is dead.
    pub last_error: Option<String>,
    /// The lease it is held under (`lease_until`; 0 when nobody holds it). A claim sets a
    /// new one, different from every lease before it, so it also names the claim: see
    /// [`Attempt::lease`].
    pub lease: Millis,
}

impl Delivery {
    /// A delivery as it is created at `created_at` (pending, never attempted, due at once),
    /// stored at `seq` and held under `lease`.
    pub fn created(new: NewDelivery, seq: i64, created_at: Millis, lease: Millis) -> Delivery {
        Delivery {
            new,
            status: DeliveryStatus::Pending,
            seq,
            created_at,
            attempts: 0,
            attempts_in_round: 0,
            next_attempt_at: created_at,
            last_error: None,
            lease,
        }
    }
}

/// One attempt to deliver, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The delivery attempted.
    pub delivery_id: String,
    /// 1 for the first attempt.
    pub number: u32,
    /// When it started.
    pub started_at: Millis,
    /// The response status, if a response came.
    pub status_code: Option<u16>,
    /// How long it took.
    pub latency_ms: u64,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// The first bytes of the response body (at most 16 KiB).
    pub response_body: Option<Vec<u8>>,
    /// The lease of the claim the attempt ran under ([`Delivery::lease`]). Recording it
    /// moves the delivery on only while that claim still holds it: an attempt that outlived
    /// its lease, or whose delivery was claimed again meanwhile, is not recorded, so a late
    /// failure cannot turn a delivered delivery back into a retrying one. 0 in attempts read
    /// back from the store.
    pub lease: Millis,
}

/// Whom [`Store::relay_wake_ups`] wakes.
#[derive(Clone)]
pub struct Wakers {
    /// The dispatcher: events are waiting unclaimed.
    pub events: std::sync::Arc<tokio::sync::Notify>,
    /// The delivery worker: deliveries were created.
    pub deliveries: std::sync::Arc<tokio::sync::Notify>,
}

/// One event's run through its chain, as [`Store::finish_events`] records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedEvent {
    /// The event.
    pub id: String,
    /// What the chain produced.
    pub outcome: EventOutcome,
    /// What the run cost.
    pub run: RunRecord,
}

/// How many of the deliveries [`Store::finish_events`] creates it claims for the caller,
/// and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimNew {
    /// How long the claim holds (as [`Store::claim_deliveries`]'s `lease`).
    pub lease: Duration,
    /// Most deliveries claimed.
    pub limit: usize,
    /// Destinations whose deliveries are not claimed (as [`Store::claim_deliveries`]'s).
    pub skip: Vec<String>,
}

impl ClaimNew {
    /// Whether `delivery` may be created claimed, besides the limit; `paused` lists the
    /// paused destinations where the store has read them.
    fn takes(&self, delivery: &NewDelivery, paused: &[String]) -> bool {
        delivery.ordering_key.is_none()
            && !self.skip.contains(&delivery.destination)
            && !paused.contains(&delivery.destination)
    }
}

/// Work waiting in one queue (a route's events, or a destination's deliveries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// The route or destination.
    pub name: String,
    /// How many are waiting (deliveries: pending or retrying).
    pub count: u64,
    /// How many of them could be worked on now (deliveries: due, destination not paused).
    pub ready: u64,
    /// When the oldest of them was received or created.
    pub oldest: Option<Millis>,
}

/// What is waiting to be processed, as [`Store::backlog`] reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Events not yet through their plugins, by route (sorted by name).
    pub events: Vec<Waiting>,
    /// Deliveries pending or retrying, by destination (sorted by name).
    pub deliveries: Vec<Waiting>,
}

impl Backlog {
    /// Events waiting for plugins plus deliveries ready now: what `server.max_backlog`
    /// bounds. Deliveries waiting out a retry delay or a paused destination do not count, so
    /// a destination that is down does not stop intake.
    pub fn ready(&self) -> u64 {
        self.events.iter().map(|w| w.ready).sum::<u64>()
            + self.deliveries.iter().map(|w| w.ready).sum::<u64>()
    }
}

/// What the delivery worker decided after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The destination accepted it.
    Delivered,
    /// Try again at this time.
    RetryAt(Millis),
    /// Give up; the delivery becomes a dead letter with this reason.
    Dead(String),
}

impl AttemptOutcome {
    /// The delivery's status, when it is next due (0 when never) and its last error, after
    /// an attempt that failed with `attempt_error` (if it failed) ended this way.
    pub fn next_state(
        self,
        attempt_error: Option<&str>,
    ) -> (DeliveryStatus, Millis, Option<String>) {
        match self {
            AttemptOutcome::Delivered => (DeliveryStatus::Delivered, 0, None),
            AttemptOutcome::RetryAt(at) => (
                DeliveryStatus::Retrying,
                at,
                attempt_error.map(str::to_string),
            ),
            AttemptOutcome::Dead(reason) => (DeliveryStatus::Dead, 0, Some(reason)),
        }
    }
}

/// Filters for listing deliveries. Every field narrows; none set means all.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    /// Only the delivery with this id.
    pub id: Option<String>,
    /// Only this status.
    pub status: Option<DeliveryStatus>,
    /// Only deliveries of this event.
    pub event_id: Option<String>,
    /// Only to this destination.
    pub destination: Option<String>,
    /// Only of events received on this route.
    pub route: Option<String>,
    /// Only created at or after this time.
    pub since: Option<Millis>,
    /// Only created before this time.
    pub until: Option<Millis>,
    /// Only with a `seq` below this (the cursor of the previous page).
    pub before: Option<i64>,
    /// At most this many (newest first when set; all, oldest first, when not).
    pub limit: Option<usize>,
}

/// Filters for listing events.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only this status.
    pub status: Option<EventStatus>,
    /// Only received on this route.
    pub route: Option<String>,
    /// Only received at or after this time.
    pub since: Option<Millis>,
    /// Only received before this time.
    pub until: Option<Millis>,
    /// Only with a `seq` below this (the cursor of the previous page).
    pub before: Option<i64>,
    /// At most this many, newest first.
    pub limit: usize,
    /// Only of this provider event type.
    pub event_type: Option<String>,
    /// Only events with a delivery to this destination.
    pub destination: Option<String>,
    /// Only events whose headers or body contain this text (case-sensitive).
    pub search: Option<String>,
}

/// An event in a listing: everything but the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSummary {
    /// Position in the store; also the listing cursor.
    pub seq: i64,
    /// Hookyard's id.
    pub id: String,
    /// The route that received it.
    pub route: String,
    /// Receive time.
    pub received_at: Millis,
    /// The provider's event type.
    pub event_type: Option<String>,
    /// Where it is now.
    pub status: EventStatus,
    /// Why it failed.
    pub error: Option<String>,
    /// Body size in bytes.
    pub body_size: u64,
    /// Duplicates acknowledged and dropped.
    pub duplicates: u32,
    /// What its last run through the plugins cost.
    pub run: RunRecord,
}

/// The journal. Every method is durable when it returns `Ok`.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Journals a new event, claimed by the caller for `lease`; or reports a duplicate: an
    /// event with the same dedup key received within `dedup_window` (its counter goes up).
    async fn append_event(
        &self,
        event: NewEvent,
        lease: Duration,
        dedup_window: Duration,
    ) -> Result<Appended, StoreError>;

    /// Claims up to `limit` events still waiting for plugins whose lease has run out.
    async fn claim_events(
        &self,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    /// Records each event's chain outcome and what it cost, and creates its deliveries, all
    /// in one transaction. An event that is no longer `Received` is left as it is (another
    /// worker finished it) and its deliveries are not created.
    ///
    /// With `claim`, up to `claim.limit` of the new deliveries are created already claimed
    /// by the caller (as [`Store::claim_deliveries`] would claim them) and returned, so its
    /// delivery worker can start them without a claim: those without an ordering key (an
    /// ordered one may have to wait for an earlier one) whose destination is not paused or
    /// in `claim.skip`.
    async fn finish_events(
        &self,
        finished: Vec<FinishedEvent>,
        claim: Option<ClaimNew>,
    ) -> Result<Vec<Delivery>, StoreError>;

    /// [`Store::finish_events`] for one event, claiming none of its deliveries.
    async fn finish_event(
        &self,
        id: &str,
        outcome: EventOutcome,
        run: RunRecord,
    ) -> Result<(), StoreError> {
        self.finish_events(
            vec![FinishedEvent {
                id: id.to_string(),
                outcome,
                run,
            }],
            None,
        )
        .await
        .map(drop)
    }

    /// Claims up to `limit` deliveries that are due, for `lease`, skipping destinations in
    /// `skip` (paused, saturated or with an open circuit) and any delivery that has an earlier
    /// unfinished delivery with the same destination and ordering key.
    async fn claim_deliveries(
        &self,
        lease: Duration,
        limit: usize,
        skip: &[String],
    ) -> Result<Vec<Delivery>, StoreError>;

    /// Records attempts and each delivery's next state, and releases their leases, in one
    /// transaction; an attempt whose [`Attempt::lease`] no longer holds its delivery is left
    /// out (see there).
    async fn record_attempts(
        &self,
        attempts: Vec<(Attempt, AttemptOutcome)>,
    ) -> Result<(), StoreError>;

    /// [`Store::record_attempts`] for one attempt.
    async fn record_attempt(
        &self,
        attempt: Attempt,
        outcome: AttemptOutcome,
    ) -> Result<(), StoreError> {
        self.record_attempts(vec![(attempt, outcome)]).await
    }

    /// The work waiting: events not yet through their plugins, by route, and deliveries not
    /// yet finished, by destination.
    async fn backlog(&self) -> Result<Backlog, StoreError>;

    /// Passes on other nodes' word that they left work in the store (events nobody has
    /// claimed, new deliveries) to `wakers`, until `shutdown`. A store used by one process
    /// has no other nodes and returns at once; workers also poll, so this only saves time.
    async fn relay_wake_ups(&self, wakers: Wakers, shutdown: crate::shutdown::Shutdown) {
        let _ = (wakers, shutdown);
    }

    /// Whether the store answers at all: one round trip, for `/readyz`.
    async fn ping(&self) -> Result<(), StoreError>;

    /// How many transactions the store has committed, where it can tell (for benchmarks
    /// and `/admin/metrics`).
    async fn commits(&self) -> Result<Option<u64>, StoreError> {
        Ok(None)
    }

    /// When the next pending or retrying delivery falls due, if any, ignoring destinations
    /// in `skip` and paused ones.
    async fn next_delivery_due(&self, skip: &[String]) -> Result<Option<Millis>, StoreError>;

    /// One event by id.
    async fn event(&self, id: &str) -> Result<Option<StoredEvent>, StoreError>;

    /// Deliveries matching a filter: oldest first without a limit, newest first with one.
    async fn deliveries(&self, filter: DeliveryFilter) -> Result<Vec<Delivery>, StoreError>;

    /// One delivery by id.
    async fn delivery(&self, id: &str) -> Result<Option<Delivery>, StoreError>;

    /// The attempts of one delivery, in order.
    async fn attempts(&self, delivery_id: &str) -> Result<Vec<Attempt>, StoreError>;

    /// Events matching a filter, newest first, without bodies.
    async fn events(&self, filter: EventFilter) -> Result<Vec<EventSummary>, StoreError>;

    /// Puts matching deliveries that are not delivered back in the queue, due now, with a
    /// fresh retry budget. Returns how many.
    /// Deliveries with an attempt in flight (held under a lease) are left alone: their
    /// attempt's result decides what happens next.
    async fn requeue_deliveries(&self, filter: DeliveryFilter) -> Result<usize, StoreError>;

    /// Marks matching events to run through their plugins again (with the plugins loaded
    /// now); their new outputs become new deliveries. Returns how many.
    async fn replay_events(
        &self,
        filter: EventFilter,
        ids: Option<Vec<String>>,
    ) -> Result<usize, StoreError>;

    /// Pauses a destination (`Some(reason)`) or resumes it (`None`).
    async fn set_destination_paused(
        &self,
        name: &str,
        reason: Option<String>,
    ) -> Result<(), StoreError>;

    /// Paused destinations and why.
    async fn paused_destinations(&self) -> Result<Vec<(String, String)>, StoreError>;

    /// How many deliveries are in each status.
    async fn delivery_counts(&self) -> Result<Vec<(DeliveryStatus, u64)>, StoreError>;

    /// A plugin's kv value, unless absent or expired.
    async fn kv_get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// How many live (unexpired) keys a plugin holds, for its `kv_max_keys` quota.
    async fn kv_count(&self, plugin: &str) -> Result<u64, StoreError>;

    /// Stores a plugin's kv value, expiring at `expires_at` if set.
    async fn kv_set(
        &self,
        plugin: &str,
        key: &str,
        value: Vec<u8>,
        expires_at: Option<Millis>,
    ) -> Result<(), StoreError>;

    /// Removes a plugin's kv key.
    async fn kv_delete(&self, plugin: &str, key: &str) -> Result<(), StoreError>;

    /// Adds `delta` to the decimal integer under a plugin's key, atomically, and returns the
    /// sum; an absent or expired key counts as 0 and gets `expires_at`. `None` when the
    /// stored value is not a decimal integer or the sum overflows (nothing is changed).
    async fn kv_increment(
        &self,
        plugin: &str,
        key: &str,
        delta: i64,
        expires_at: Option<Millis>,
    ) -> Result<Option<i64>, StoreError>;

    /// Deletes up to `limit` finished events received before `before` (processed or failed,
    /// with no delivery still pending or retrying), with their deliveries and attempts.
    /// Returns how many events it deleted.
    async fn prune(&self, before: Millis, limit: usize) -> Result<usize, StoreError>;

    /// Stores a plugin's kv value only if the key is absent or expired; whether it did.
    async fn kv_set_if_absent(
        &self,
        plugin: &str,
        key: &str,
        value: Vec<u8>,
        expires_at: Option<Millis>,
    ) -> Result<bool, StoreError>;
}

/// How long a stage that records work in batches waits for more when it wrote a batch
/// moments ago (see [`gather`]).
pub const GATHER: Duration = Duration::from_millis(5);

/// Fills `batch` (which `recv_many` has just started) with what else arrives within
/// [`GATHER`], but only under load: when the previous batch was written less than
/// `2 × GATHER` ago. One store transaction then carries many outcomes or attempts instead of
/// a few, at the price of a few milliseconds; a quiet router writes at once.
pub async fn gather<T>(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<T>,
    batch: &mut Vec<T>,
    max: usize,
    last_write: Option<std::time::Instant>,
) {
    let busy = last_write.is_some_and(|at| at.elapsed() < GATHER * 2);
    if !busy || batch.len() >= max {
        return;
    }
    tokio::time::sleep(GATHER).await;
    while batch.len() < max {
        match rx.try_recv() {
            Ok(item) => batch.push(item),
            Err(_) => break,
        }
    }
}

/// The kv namespace holding secrets providers hand over in a handshake (Asana, Notion), one
/// per route, keyed by route name. Plugin names cannot contain `/`, so no plugin reaches it.
pub const LEARNED_SECRETS: &str = "hookyard/learned-secrets";

/// A new id with a type prefix, time-ordered (UUIDv7).
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_busy_stage_gathers_what_arrives_within_the_window_and_a_quiet_one_does_not_wait() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut batch = vec![0];
        let started = std::time::Instant::now();
        gather(&mut rx, &mut batch, 10, None).await;
        assert!(started.elapsed() < GATHER, "quiet: written at once");
        let late = tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            let _ = late.send(1);
            let _ = late.send(2);
        });
        gather(&mut rx, &mut batch, 10, Some(std::time::Instant::now())).await;
        assert_eq!(
            batch,
            [0, 1, 2],
            "busy: what came within the window joined the batch"
        );
        drop(tx);
    }
}
