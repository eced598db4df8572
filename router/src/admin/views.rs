//! The JSON shapes of the admin API: what scripts and `hookyard events|deliveries` rely on.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::store::{Attempt, Delivery, EventSummary, Millis, StoredEvent};

/// One page of a listing; pass `next_before` as `before` to get the next page.
#[derive(Debug, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items, newest first.
    pub items: Vec<T>,
    /// The cursor of the next page, when there may be one.
    pub next_before: Option<i64>,
}

impl<T> Page<T> {
    /// A page of `items`; a full page gets a cursor.
    pub fn new(items: Vec<T>, limit: usize, seq: impl Fn(&T) -> i64) -> Page<T> {
        let next_before = (items.len() >= limit)
            .then(|| items.last().map(&seq))
            .flatten();
        Page { items, next_before }
    }
}

/// An event in a listing.
#[derive(Debug, Serialize, Deserialize)]
pub struct EventView {
    /// Listing cursor.
    pub seq: i64,
    /// `evt_...`.
    pub id: String,
    /// Route name.
    pub route: String,
    /// Receive time, ms since the epoch.
    pub received_at: Millis,
    /// Provider event type.
    pub event_type: Option<String>,
    /// `received`, `processed` or `failed`.
    pub status: String,
    /// Why it failed.
    pub error: Option<String>,
    /// Body size in bytes.
    pub body_size: u64,
    /// Duplicates (same provider delivery id) acknowledged and dropped.
    pub duplicates: u32,
    /// Microseconds spent in plugins on its last run.
    pub run_us: u64,
    /// Fuel burned in plugins on its last run.
    pub fuel: u64,
    /// Why a plugin dropped it, if one said.
    pub dropped: Option<String>,
}

impl From<EventSummary> for EventView {
    fn from(e: EventSummary) -> Self {
        EventView {
            seq: e.seq,
            id: e.id,
            route: e.route,
            received_at: e.received_at,
            event_type: e.event_type,
            status: e.status.as_str().to_string(),
            error: e.error,
            body_size: e.body_size,
            duplicates: e.duplicates,
            run_us: e.run.elapsed_us,
            fuel: e.run.fuel,
            dropped: e.run.dropped,
        }
    }
}

/// One event in full.
#[derive(Debug, Serialize, Deserialize)]
pub struct EventDetail {
    /// What a listing shows.
    #[serde(flatten)]
    pub summary: EventView,
    /// Request headers as journaled (credentials are never journaled).
    pub headers: Vec<(String, String)>,
    /// The body as text when it is UTF-8.
    pub body: Option<String>,
    /// The body in base64 when it is not UTF-8.
    pub body_base64: Option<String>,
    /// The OpenTelemetry trace it is recorded in, when traces are on.
    pub trace_id: Option<String>,
    /// Its deliveries, with their attempts.
    pub deliveries: Vec<DeliveryView>,
}

impl EventDetail {
    /// The detail view of a stored event.
    pub fn new(seq: i64, e: StoredEvent, deliveries: Vec<DeliveryView>) -> EventDetail {
        let body_size = e.event.body.len() as u64;
        let trace_id = trace_id_of(e.event.traceparent.as_deref());
        let (body, body_base64) = text_or_base64(e.event.body);
        EventDetail {
            summary: EventView {
                seq,
                id: e.event.id,
                route: e.event.route,
                received_at: e.event.received_at,
                event_type: e.event.event_type,
                status: e.status.as_str().to_string(),
                error: e.error,
                body_size,
                duplicates: e.duplicates,
                run_us: e.run.elapsed_us,
                fuel: e.run.fuel,
                dropped: e.run.dropped,
            },
            headers: e.event.headers,
            body,
            body_base64,
            trace_id,
            deliveries,
        }
    }
}

/// The trace id a kept `traceparent` names.
fn trace_id_of(traceparent: Option<&str>) -> Option<String> {
    traceparent
        .and_then(crate::trace::trace_id)
        .map(str::to_string)
}

fn text_or_base64(bytes: Vec<u8>) -> (Option<String>, Option<String>) {
    match String::from_utf8(bytes) {
        Ok(text) => (Some(text), None),
        Err(e) => (
            None,
            Some(base64::engine::general_purpose::STANDARD.encode(e.as_bytes())),
        ),
    }
}

/// A delivery.
#[derive(Debug, Serialize, Deserialize)]
pub struct DeliveryView {
    /// Listing cursor.
    pub seq: i64,
    /// `dlv_...`, sent as `hookyard-delivery-id`.
    pub id: String,
    /// The event it came from.
    pub event_id: String,
    /// Destination name.
    pub destination: String,
    /// `pending`, `retrying`, `delivered` or `dead`.
    pub status: String,
    /// Attempts made.
    pub attempts: u32,
    /// When it is due next (pending or retrying).
    pub next_attempt_at: Option<Millis>,
    /// Creation time.
    pub created_at: Millis,
    /// The last failure, or why it is dead.
    pub last_error: Option<String>,
    /// Its ordering key, if its destination orders deliveries.
    pub ordering_key: Option<String>,
    /// Request content type.
    pub content_type: Option<String>,
    /// The OpenTelemetry trace its attempts are recorded in, when traces are on.
    pub trace_id: Option<String>,
    /// Request body as text, in detail views.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub body: Option<String>,
    /// Attempts, in detail views.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub attempt_log: Option<Vec<AttemptView>>,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        let due = matches!(
            d.status,
            crate::store::DeliveryStatus::Pending | crate::store::DeliveryStatus::Retrying
        );
        let trace_id = trace_id_of(d.new.traceparent.as_deref());
        DeliveryView {
            trace_id,
            seq: d.seq,
            id: d.new.id,
            event_id: d.new.event_id,
            destination: d.new.destination,
            status: d.status.as_str().to_string(),
            attempts: d.attempts,
            next_attempt_at: due.then_some(d.next_attempt_at),
            created_at: d.created_at,
            last_error: d.last_error,
            ordering_key: d.new.ordering_key,
            content_type: d.new.content_type,
            body: None,
            attempt_log: None,
        }
    }
}

impl DeliveryView {
    /// The detail view: the body and every attempt.
    pub fn with_attempts(d: Delivery, attempts: Vec<Attempt>) -> DeliveryView {
        let body = String::from_utf8_lossy(&d.new.body).into_owned();
        let mut view = DeliveryView::from(d);
        view.body = Some(body);
        view.attempt_log = Some(
            attempts
                .into_iter()
                .map(|a| AttemptView {
                    trace_id: view.trace_id.clone(),
                    ..AttemptView::from(a)
                })
                .collect(),
        );
        view
    }
}

/// One attempt.
#[derive(Debug, Serialize, Deserialize)]
pub struct AttemptView {
    /// 1 for the first.
    pub number: u32,
    /// Start time.
    pub started_at: Millis,
    /// Response status.
    pub status_code: Option<u16>,
    /// Duration.
    pub latency_ms: u64,
    /// Failure, if any.
    pub error: Option<String>,
    /// The first 16 KiB of the response body, as text.
    pub response_body: Option<String>,
    /// The OpenTelemetry trace its span is in (its delivery's), when traces are on.
    #[serde(default)]
    pub trace_id: Option<String>,
}

impl From<Attempt> for AttemptView {
    fn from(a: Attempt) -> Self {
        AttemptView {
            number: a.number,
            started_at: a.started_at,
            status_code: a.status_code,
            latency_ms: a.latency_ms,
            error: a.error,
            response_body: a
                .response_body
                .map(|b| String::from_utf8_lossy(&b).into_owned()),
            trace_id: None,
        }
    }
}
