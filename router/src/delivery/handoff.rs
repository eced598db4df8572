//! How the dispatcher gives this node's delivery worker the deliveries it has just created,
//! so they start at once instead of waiting for a claim from the store.
//!
//! The worker holds at most `max_deliveries_in_flight` deliveries at a time, in flight or
//! waiting for their destination's gate, each under one of its *slots*. Claims from the
//! store take free slots, and so does the dispatcher: before it records a batch of chain
//! outcomes it reserves slots, the store creates that many of the new deliveries already
//! claimed (see [`crate::store::Store::finish_events`]), and they come here with their
//! slots. The rest are created unclaimed and the worker claims them as usual. Leases still
//! only recover the work of a node that died.

use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::LEASE;
use crate::store::{ClaimNew, Delivery};

/// A delivery the worker holds, and the slot it holds it under.
pub struct Held {
    /// The claimed delivery.
    pub delivery: Delivery,
    /// Given back when the attempt ends (or the delivery is dropped).
    pub slot: OwnedSemaphorePermit,
}

/// The dispatcher's end: reserves slots and hands over what the store created claimed.
#[derive(Clone)]
pub struct DeliveryHandoff {
    slots: Arc<Semaphore>,
    queue: mpsc::UnboundedSender<Vec<Held>>,
    busy: Arc<Mutex<Vec<String>>>,
}

/// The worker's end of a [`DeliveryHandoff`].
pub struct DeliveryInbox {
    /// One per delivery held; claims take them too.
    pub slots: Arc<Semaphore>,
    /// Deliveries handed over, with their slots.
    pub incoming: mpsc::UnboundedReceiver<Vec<Held>>,
    /// Destinations that cannot take more now: the worker keeps it current.
    pub busy: Arc<Mutex<Vec<String>>>,
}

/// Slots reserved for the deliveries of one batch of outcomes.
pub struct Reserved {
    permit: OwnedSemaphorePermit,
    claim: ClaimNew,
}

impl DeliveryHandoff {
    /// A hand-off to a worker that holds at most `max_in_flight` deliveries at once.
    pub fn new(max_in_flight: usize) -> (DeliveryHandoff, DeliveryInbox) {
        let slots = Arc::new(Semaphore::new(max_in_flight.max(1)));
        let busy = Arc::new(Mutex::new(Vec::new()));
        let (queue, incoming) = mpsc::unbounded_channel();
        (
            DeliveryHandoff {
                slots: slots.clone(),
                queue,
                busy: busy.clone(),
            },
            DeliveryInbox {
                slots,
                incoming,
                busy,
            },
        )
    }

    /// Up to `wanted` free slots, and the claim the store may make with them (none for
    /// destinations that cannot take more now: their deliveries would only wait in memory).
    /// `None` when no slot is free or the worker has stopped.
    pub fn reserve(&self, wanted: usize) -> Option<Reserved> {
        let free = self.slots.available_permits().min(wanted);
        if free == 0 {
            return None;
        }
        let permit = self
            .slots
            .clone()
            .try_acquire_many_owned(u32::try_from(free).ok()?)
            .ok()?;
        let skip = self.busy.lock().map(|b| b.clone()).unwrap_or_default();
        Some(Reserved {
            permit,
            claim: ClaimNew {
                lease: LEASE,
                limit: free,
                skip,
            },
        })
    }

    /// Gives `deliveries` (claimed with `reserved`'s claim) to the worker, each with one of
    /// the reserved slots; the slots left over are freed.
    pub fn hand_over(&self, mut reserved: Reserved, deliveries: Vec<Delivery>) {
        let mut held = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            // The store claims no more than the limit, so a slot is always there.
            let Some(slot) = reserved.permit.split(1) else {
                tracing::error!(delivery = %delivery.new.id, "more deliveries claimed than slots reserved");
                continue;
            };
            held.push(Held { delivery, slot });
        }
        if !held.is_empty() && self.queue.send(held).is_err() {
            // The worker has stopped; the leases lapse and the deliveries are claimed again.
            tracing::warn!("delivery worker stopped; new deliveries wait for their leases");
        }
    }
}

impl Reserved {
    /// What the store may claim with these slots.
    pub fn claim(&self) -> ClaimNew {
        self.claim.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{NewDelivery, now_ms};

    fn delivery(id: &str) -> Delivery {
        Delivery::created(
            NewDelivery {
                id: id.into(),
                event_id: "evt_1".into(),
                destination: "chat".into(),
                body: b"{}".to_vec(),
                headers: Vec::new(),
                content_type: None,
                ordering_key: None,
                method: None,
                path: None,
                traceparent: None,
            },
            1,
            now_ms(),
            now_ms() + 1000,
        )
    }

    #[tokio::test]
    async fn handed_deliveries_hold_a_slot_each_until_dropped_and_leftovers_are_freed() {
        let (handoff, mut inbox) = DeliveryHandoff::new(4);
        inbox.busy.lock().unwrap().push("crm".into());
        let reserved = handoff.reserve(10).expect("slots are free");
        assert_eq!(reserved.claim().limit, 4, "no more than the worker holds");
        assert_eq!(
            reserved.claim().skip,
            ["crm"],
            "busy destinations are left out"
        );
        assert!(handoff.reserve(1).is_none(), "all reserved");
        handoff.hand_over(reserved, vec![delivery("d1"), delivery("d2")]);
        assert_eq!(inbox.slots.available_permits(), 2, "two unused slots freed");
        let held = inbox.incoming.recv().await.expect("handed over");
        assert_eq!(held.len(), 2);
        drop(held);
        assert_eq!(
            inbox.slots.available_permits(),
            4,
            "attempts done, slots back"
        );
    }

    #[tokio::test]
    async fn a_stopped_worker_takes_no_reservations() {
        let (handoff, inbox) = DeliveryHandoff::new(4);
        inbox.slots.close();
        assert!(handoff.reserve(1).is_none());
    }
}
