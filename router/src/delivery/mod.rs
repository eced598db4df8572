//! Delivery: claims due jobs from the store, attempts them, records every attempt, and
//! schedules the next one or declares a dead letter.
//!
//! - [`http`]: the HTTP destination (one request per attempt).
//! - [`retry`]: backoff with jitter.
//! - [`worker`]: the loop that claims due deliveries, passes them through their
//!   destination's gate, attempts them and records the attempts in batches.
//!
//! Each claim holds a lease; a router that dies mid-attempt leaves the job to be claimed
//! again once the lease runs out, so delivery is at least once. Receivers dedup on the
//! `hookyard-delivery-id` header, which is the same on every attempt.

pub mod auth;
pub mod destination;
pub mod email;
pub mod gate;
pub mod http;
pub mod retry;
pub mod worker;

pub use worker::{DeliveryWorker, LEASE};
