//! The messages the poller holds, from the moment a receive returns them until their batch
//! has deleted or delayed them. Whatever is held when half its visibility timeout has gone
//! is due to have it renewed, wherever it waits: in the channel to the gatherer, in a batch
//! waiting for a slot, or in a batch still writing. A lease covers the messages of one
//! receive or one batch and gives them up when it is dropped, panics and aborts included, so
//! nothing stays hidden after the worker stopped caring about it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use aws_sdk_sqs::types::Message;
use tokio::time::Instant;

/// Every message held, by receipt handle.
pub(super) struct Leases {
    visibility: Duration,
    /// Receipt handle -> when its visibility was last set (received or renewed).
    held: Mutex<HashMap<String, Instant>>,
}

impl Leases {
    pub(super) fn new(visibility: Duration) -> Arc<Self> {
        Arc::new(Self {
            visibility,
            held: Mutex::new(HashMap::new()),
        })
    }

    pub(super) fn visibility(&self) -> Duration {
        self.visibility
    }

    /// Holds `messages`, received at `at`, until the lease returned is dropped.
    pub(super) fn hold(self: &Arc<Self>, messages: &[Message], at: Instant) -> Lease {
        let receipts = receipts_of(messages);
        let mut held = self.lock();
        for receipt in &receipts {
            held.insert(receipt.clone(), at);
        }
        drop(held);
        Lease {
            leases: self.clone(),
            receipts,
        }
    }

    /// How often [`Leases::due`] should be asked. A lease is renewed up to this much before
    /// half its visibility has gone, never after.
    pub(super) fn check_every(&self) -> Duration {
        (self.visibility.max(Duration::from_secs(1)) / 8)
            .clamp(Duration::from_millis(100), Duration::from_secs(5))
    }

    /// The receipts whose visibility is due for renewal at `now`, marked renewed as of now.
    pub(super) fn due(&self, now: Instant) -> Vec<String> {
        let half = self.visibility.max(Duration::from_secs(1)) / 2;
        let renew_at_age = half.saturating_sub(self.check_every());
        self.lock()
            .iter_mut()
            .filter(|(_, set)| now.saturating_duration_since(**set) >= renew_at_age)
            .map(|(receipt, set)| {
                *set = now;
                receipt.clone()
            })
            .collect()
    }

    fn release(&self, receipts: &[String]) {
        if receipts.is_empty() {
            return;
        }
        let mut held = self.lock();
        for receipt in receipts {
            held.remove(receipt);
        }
    }

    // A panic while holding the map leaves it whole (inserts and removes of strings), so a
    // poisoned lock is still good to use.
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Instant>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Some of the messages held; they are given up when this is dropped.
pub(super) struct Lease {
    leases: Arc<Leases>,
    receipts: Vec<String>,
}

impl Lease {
    /// Moves `messages` (some of this lease's) into a lease of their own.
    pub(super) fn split_off(&mut self, messages: &[Message]) -> Lease {
        let moved = receipts_of(messages);
        self.receipts.retain(|r| !moved.contains(r));
        Lease {
            leases: self.leases.clone(),
            receipts: moved,
        }
    }

    pub(super) fn merge(&mut self, mut other: Lease) {
        self.receipts.append(&mut other.receipts);
    }

    /// Gives up these messages now, before the lease is dropped: a message about to have its
    /// visibility set for a retry must not have it renewed over that.
    pub(super) fn end(&mut self, receipts: &[&String]) {
        let (ended, kept): (Vec<String>, Vec<String>) = std::mem::take(&mut self.receipts)
            .into_iter()
            .partition(|r| receipts.contains(&r));
        self.receipts = kept;
        self.leases.release(&ended);
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.leases.release(&self.receipts);
    }
}

fn receipts_of(messages: &[Message]) -> Vec<String> {
    messages
        .iter()
        .filter_map(|m| m.receipt_handle.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(receipts: &[&str]) -> Vec<Message> {
        receipts
            .iter()
            .map(|r| Message::builder().receipt_handle(*r).build())
            .collect()
    }

    fn sorted(mut receipts: Vec<String>) -> Vec<String> {
        receipts.sort();
        receipts
    }

    #[test]
    fn a_message_is_due_shortly_before_half_its_visibility_and_not_before() {
        let leases = Leases::new(Duration::from_secs(30));
        let at = Instant::now();
        let _lease = leases.hold(&messages(&["a", "b"]), at);
        let check = leases.check_every();
        assert!(leases
            .due(at + Duration::from_secs(15) - check - Duration::from_millis(1))
            .is_empty());
        assert_eq!(
            sorted(leases.due(at + Duration::from_secs(15) - check)),
            ["a", "b"]
        );
    }

    #[test]
    fn a_renewed_message_is_due_again_half_a_visibility_after_its_renewal() {
        let leases = Leases::new(Duration::from_secs(2));
        let at = Instant::now();
        let _lease = leases.hold(&messages(&["a"]), at);
        let renewed = at + Duration::from_secs(1);
        assert_eq!(leases.due(renewed), ["a"]);
        assert!(leases.due(renewed + Duration::from_millis(500)).is_empty());
        assert_eq!(leases.due(renewed + Duration::from_secs(1)), ["a"]);
    }

    #[test]
    fn a_check_comes_often_enough_to_renew_before_half_the_visibility_has_gone() {
        for seconds in [0, 1, 2, 30, 300, 43_200] {
            let leases = Leases::new(Duration::from_secs(seconds));
            let half = Duration::from_secs(seconds).max(Duration::from_secs(1)) / 2;
            assert!(leases.check_every() < half, "{seconds} s");
        }
    }

    #[test]
    fn dropping_a_lease_gives_up_its_messages_and_only_those() {
        let leases = Leases::new(Duration::from_secs(2));
        let at = Instant::now();
        let first = leases.hold(&messages(&["a", "b"]), at);
        let _second = leases.hold(&messages(&["c"]), at);
        drop(first);
        assert_eq!(leases.due(at + Duration::from_secs(2)), ["c"]);
    }

    #[test]
    fn a_split_and_merged_lease_gives_up_each_message_with_the_lease_that_holds_it() {
        let leases = Leases::new(Duration::from_secs(2));
        let at = Instant::now();
        let received = messages(&["a", "b", "c"]);
        let mut batch = leases.hold(&received[..1], at);
        let mut rest = leases.hold(&received[1..], at);
        let carried = rest.split_off(&received[2..]);
        batch.merge(rest);
        drop(batch);
        assert_eq!(leases.due(at + Duration::from_secs(2)), ["c"]);
        drop(carried);
        assert!(leases.due(at + Duration::from_secs(4)).is_empty());
    }

    #[test]
    fn ending_part_of_a_lease_stops_renewing_that_part_at_once() {
        let leases = Leases::new(Duration::from_secs(2));
        let at = Instant::now();
        let mut lease = leases.hold(&messages(&["a", "b"]), at);
        lease.end(&[&"a".to_string()]);
        assert_eq!(leases.due(at + Duration::from_secs(1)), ["b"]);
        drop(lease);
        assert!(leases.due(at + Duration::from_secs(2)).is_empty());
    }
}
