//! The feed of committed events: the attached sinks, and handing them every commit's
//! events after the commit, in position order, with no gap and no repeat.
//!
//! Writers commit under the store's state lock and queue their events there, in position
//! order. Delivery happens after that lock is released (so a sink, or anything it wakes,
//! can read the new state at once) and under this module's own lock, which is held while
//! the queue is taken and while the sinks are called. That makes delivery one at a time
//! and in queue order: when two writers race, whoever delivers first takes both commits'
//! events, and the other finds the queue empty once it gets the lock, which is after those
//! events were handed over. So a write returns only once its events have reached the sinks.
//!
//! Lock order: this lock, then the state lock, never the reverse. No state lock is held
//! while a sink runs, so a sink that reads the store does not deadlock (sinks must still
//! not block: see [`FeedSink`]).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use crate::model::CommittedEvent;
use crate::store::FeedSink;

/// The attached sinks, held weakly: dropping a sink detaches it.
#[derive(Default)]
pub(super) struct Feed {
    sinks: Mutex<Vec<Weak<dyn FeedSink>>>,
}

impl Feed {
    fn lock(&self) -> MutexGuard<'_, Vec<Weak<dyn FeedSink>>> {
        self.sinks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands the events `take` returns (the committed ones not yet fed, taken from the
    /// state under its lock) to every live sink.
    pub(super) fn deliver(&self, take: impl FnOnce() -> Vec<CommittedEvent>) {
        let mut sinks = self.lock();
        let events = take();
        send(&mut sinks, &events);
    }

    /// Attaches `sink`: `take` returns the head and the committed events not yet fed,
    /// read together under the state lock. Those events (all at or below the head) go to
    /// the sinks attached before; the new sink starts at the head and gets every later
    /// commit, since later events are queued after this one's lock is taken.
    pub(super) fn attach(
        &self,
        sink: &Arc<dyn FeedSink>,
        take: impl FnOnce() -> (u64, Vec<CommittedEvent>),
    ) {
        let mut sinks = self.lock();
        let (head, events) = take();
        send(&mut sinks, &events);
        sink.start(head);
        sinks.push(Arc::downgrade(sink));
    }
}

/// Calls every live sink with `events` (never with an empty batch) and forgets the
/// dropped ones.
fn send(sinks: &mut Vec<Weak<dyn FeedSink>>, events: &[CommittedEvent]) {
    sinks.retain(|sink| sink.strong_count() > 0);
    if events.is_empty() {
        return;
    }
    for sink in sinks.iter().filter_map(Weak::upgrade) {
        sink.committed(events);
    }
}
