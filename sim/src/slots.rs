//! A lane's decode slots, handed out by service tier (PROTOCOL.md §5.7):
//! when every slot is busy, a freed slot goes to the longest-waiting
//! Priority request, else to the longest-waiting Standard (or Reserved, or
//! untiered) request, and to a Flex request only when neither waits. So
//! under load Flex queues longest; [`Slots::flex_waiting`] lets admission
//! refuse Flex first (503) once its queue is full.
//!
//! A waiter that gives up (its client went away) leaves a closed sender in
//! its queue; the release skips it, and a slot sent to a waiter that drops
//! the permit unread comes back through the permit's `Drop`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use quarry_bedrock::ServiceTierType;
use tokio::sync::oneshot;

/// The queue a request waits in; lower is served first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Class {
    /// Priority requests.
    Priority = 0,
    /// Standard (`default`), Reserved and requests that name no tier.
    Standard = 1,
    /// Flex requests.
    Flex = 2,
}

impl Class {
    /// The class a request of `tier` waits in.
    pub(crate) fn of(tier: Option<ServiceTierType>) -> Class {
        match tier {
            Some(ServiceTierType::Priority) => Class::Priority,
            Some(ServiceTierType::Flex) => Class::Flex,
            Some(ServiceTierType::Default | ServiceTierType::Reserved) | None => Class::Standard,
        }
    }
}

#[derive(Debug)]
struct State {
    free: u32,
    waiting: [VecDeque<oneshot::Sender<SlotPermit>>; 3],
}

/// The decode slots of one lane.
#[derive(Debug)]
pub(crate) struct Slots {
    state: Mutex<State>,
}

/// A held decode slot; dropping it frees the slot (to the next waiter by
/// class, or back to the pool).
#[derive(Debug)]
pub(crate) struct SlotPermit {
    slots: Option<Arc<Slots>>,
}

impl Drop for SlotPermit {
    fn drop(&mut self) {
        if let Some(slots) = self.slots.take() {
            slots.release();
        }
    }
}

impl Slots {
    /// `capacity` slots, all free.
    pub(crate) fn new(capacity: u32) -> Arc<Self> {
        Arc::new(Slots {
            state: Mutex::new(State {
                free: capacity,
                waiting: Default::default(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A free slot now, if one is free and nobody waits for it.
    pub(crate) fn try_acquire(self: &Arc<Self>) -> Option<SlotPermit> {
        let mut state = self.lock();
        let queued = state
            .waiting
            .iter()
            .any(|q| q.iter().any(|w| !w.is_closed()));
        if state.free > 0 && !queued {
            state.free -= 1;
            return Some(SlotPermit {
                slots: Some(Arc::clone(self)),
            });
        }
        None
    }

    /// Waits for a slot in `class`'s queue.
    pub(crate) async fn acquire(self: &Arc<Self>, class: Class) -> SlotPermit {
        let rx = {
            let mut state = self.lock();
            let queued = state
                .waiting
                .iter()
                .any(|q| q.iter().any(|w| !w.is_closed()));
            if state.free > 0 && !queued {
                state.free -= 1;
                return SlotPermit {
                    slots: Some(Arc::clone(self)),
                };
            }
            let (tx, rx) = oneshot::channel();
            state.waiting[class as usize].push_back(tx);
            rx
        };
        match rx.await {
            Ok(permit) => permit,
            // unwrap-free: senders are only dropped after a send or when a
            // closed receiver is skipped, so this receiver always gets one;
            // should it not, the request runs without a slot.
            Err(_) => SlotPermit { slots: None },
        }
    }

    /// True when no slot is free.
    pub(crate) fn exhausted(&self) -> bool {
        self.lock().free == 0
    }

    /// Flex requests waiting for a slot.
    pub(crate) fn flex_waiting(&self) -> usize {
        self.lock().waiting[Class::Flex as usize]
            .iter()
            .filter(|w| !w.is_closed())
            .count()
    }

    fn release(self: &Arc<Self>) {
        let mut state = self.lock();
        for class in 0..state.waiting.len() {
            while let Some(tx) = state.waiting[class].pop_front() {
                let permit = SlotPermit {
                    slots: Some(Arc::clone(self)),
                };
                match tx.send(permit) {
                    Ok(()) => return,
                    // The waiter left: disarm the permit (dropping it must
                    // not release again while the lock is held) and go on.
                    Err(mut unsent) => unsent.slots = None,
                }
            }
        }
        state.free += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_freed_slot_goes_to_priority_then_standard_then_flex() {
        let slots = Slots::new(1);
        let held = slots.try_acquire().unwrap();
        assert!(slots.try_acquire().is_none());
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (name, tier) in [
            ("flex", Some(ServiceTierType::Flex)),
            ("standard", None),
            ("priority", Some(ServiceTierType::Priority)),
            ("reserved", Some(ServiceTierType::Reserved)),
        ] {
            let slots = Arc::clone(&slots);
            let order = Arc::clone(&order);
            tasks.push(tokio::spawn(async move {
                let permit = slots.acquire(Class::of(tier)).await;
                order.lock().unwrap().push(name);
                drop(permit);
            }));
            // Let each waiter queue before the next, so arrival order is
            // flex, standard, priority, reserved.
            tokio::task::yield_now().await;
        }
        assert_eq!(slots.flex_waiting(), 1);
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(
            *order.lock().unwrap(),
            ["priority", "standard", "reserved", "flex"]
        );
        // Every slot came back.
        assert!(!slots.exhausted());
        assert!(slots.try_acquire().is_some());
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_does_not_lose_the_slot() {
        let slots = Slots::new(1);
        let held = slots.try_acquire().unwrap();
        let gone = {
            let slots = Arc::clone(&slots);
            tokio::spawn(async move {
                let _p = slots.acquire(Class::Flex).await;
            })
        };
        tokio::task::yield_now().await;
        assert_eq!(slots.flex_waiting(), 1);
        gone.abort();
        let _ = gone.await;
        assert_eq!(slots.flex_waiting(), 0);
        drop(held);
        assert!(slots.try_acquire().is_some());
    }
}
