//! Delivery: claims due jobs from the store, lets each through its destination's gate,
//! attempts it (see [`crate::destinations`] for how each kind of destination is reached),
//! records every attempt, and schedules the next one or declares a dead letter.
//!
//! - [`handoff`]: new deliveries created claimed by the dispatcher go to the worker in
//!   memory, each under one of the worker's slots.
//! - [`worker`]: the loop that takes handed-over deliveries and claims the other due ones in
//!   batches, attempts them and records the attempts in batches.
//! - [`gate`]: per-destination concurrency, rate limit and circuit breaker.
//!
//! Each claim holds a lease; a router that dies mid-attempt leaves the job to be claimed
//! again once the lease runs out, so delivery is at least once. Receivers dedup on the
//! `hookyard-delivery-id` header, which is the same on every attempt.

pub mod gate;
pub mod handoff;
pub mod worker;

pub use handoff::{DeliveryHandoff, DeliveryInbox};
pub use worker::{DeliveryWorker, LEASE};
