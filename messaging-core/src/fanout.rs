//! Routing of committed events and ephemeral signals to the sessions of users.
//!
//! The feed of committed events (see [`EventLog::attach_feed`](crate::store::EventLog::attach_feed)) and
//! the ephemeral signals (typing, presence) both end in per-session [`Subscription`]s.
//! [`Hub`] is the in-process router; a multi-instance deployment wraps it to also carry
//! signals between processes.
//!
//! ## The hello cursor
//!
//! [`Fanout::subscribe`] returns the subscription together with the position of the last
//! event the feed has dispatched, taken under the same lock dispatch holds. Every event
//! after that position reaches the new subscription and none at or before it does, so a
//! client that syncs up to that position and then reads pushes sees each event once,
//! without a database query and without a race.
//!
//! ## Lag policy
//!
//! Each subscription has a bounded queue (the session's outbound queue). Dispatch never
//! waits: when a queue is full, that subscription is marked lagged and dropped from the
//! routing table, and its next [`Subscription::recv`] reports [`RecvError::Lagged`]. The
//! feed and every other session go on at full speed; the lagging client reconnects and
//! fills its gap with `sync`, so nothing is lost.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use async_trait::async_trait;

use crate::error::Result;
use crate::id::UserId;
use crate::model::{CommittedEvent, LoggedEvent, Shared, Signal};
use crate::push_queue::{Ended, PushQueue};
use crate::store::FeedSink;

/// One item pushed to a session, shared by every recipient.
#[derive(Clone, Debug)]
pub enum Push {
    /// A durable event (carries its cursor).
    Event(Arc<Shared<LoggedEvent>>),
    /// An ephemeral signal.
    Signal(Arc<Shared<Signal>>),
}

/// Why a subscription yields nothing more.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecvError {
    /// The queue overflowed; pushes after it were dropped. Resume with `sync`.
    #[error("subscription lagged behind and was dropped")]
    Lagged,
    /// The fan-out was shut down.
    #[error("fan-out closed")]
    Closed,
}

/// Routes the committed feed and ephemeral signals to per-user subscriptions.
///
/// ```
/// use std::sync::Arc;
/// use messaging_core::fanout::{Fanout, Hub};
/// use messaging_core::UserId;
///
/// let hub: Arc<dyn Fanout> = Arc::new(Hub::new(64));
/// let (subscription, position) = hub.subscribe(UserId::new());
/// assert_eq!(position, 0);
/// # drop(subscription);
/// ```
#[async_trait]
pub trait Fanout: FeedSink {
    /// A new subscription for one session of `user`, and the position of the last event
    /// dispatched before it, taken atomically with respect to dispatch.
    fn subscribe(&self, user: UserId) -> (Subscription, u64);

    /// Delivers an ephemeral signal to every session of every user in `audience`.
    async fn signal(&self, signal: Signal, audience: &[UserId]) -> Result<()>;
}

/// A subscription as the routing table holds it.
struct Slot {
    id: u64,
    queue: Arc<PushQueue<Push>>,
}

impl Drop for Slot {
    /// Leaving the table (unsubscribed, lagged, or the hub dropped) ends the receiver's
    /// queue once it is drained.
    fn drop(&mut self) {
        self.queue.close();
    }
}

struct HubState {
    last_position: u64,
    next_id: u64,
    users: HashMap<UserId, Vec<Slot>>,
}

struct HubInner {
    state: Mutex<HubState>,
    queue_capacity: usize,
}

impl HubInner {
    fn lock(&self) -> MutexGuard<'_, HubState> {
        // A panic while holding the lock cannot leave the routing table half-updated in a
        // way that matters (each slot is independent), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The in-process [`Fanout`].
#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.inner.lock();
        f.debug_struct("Hub")
            .field("last_position", &state.last_position)
            .field("users", &state.users.len())
            .finish()
    }
}

impl Hub {
    /// A hub whose subscriptions queue at most `queue_capacity` pushes.
    #[must_use]
    pub fn new(queue_capacity: usize) -> Self {
        Self {
            inner: Arc::new(HubInner {
                state: Mutex::new(HubState { last_position: 0, next_id: 0, users: HashMap::new() }),
                queue_capacity: queue_capacity.max(1),
            }),
        }
    }

    /// The position of the last dispatched event.
    #[must_use]
    pub fn last_position(&self) -> u64 {
        self.inner.lock().last_position
    }

    /// Number of open subscriptions.
    #[must_use]
    pub fn subscriptions(&self) -> usize {
        self.inner.lock().users.values().map(Vec::len).sum()
    }

    /// Delivers a signal to the sessions of `audience` (never waits).
    pub fn deliver_signal(&self, signal: Signal, audience: &[UserId]) {
        let push = Push::Signal(Arc::new(Shared::new(signal)));
        let mut state = self.inner.lock();
        for user in audience {
            route(&mut state, *user, &push);
        }
    }
}

fn route(state: &mut HubState, user: UserId, push: &Push) {
    let Some(slots) = state.users.get_mut(&user) else {
        return;
    };
    slots.retain(|slot| slot.queue.offer(push.clone()));
    if slots.is_empty() {
        state.users.remove(&user);
    }
}

impl FeedSink for Hub {
    fn start(&self, head: u64) {
        let mut state = self.inner.lock();
        state.last_position = state.last_position.max(head);
    }

    fn committed(&self, events: &[CommittedEvent]) {
        let mut state = self.inner.lock();
        for committed in events {
            let position = committed.logged.position;
            // A feed that replays after a reconnect may repeat positions; each is routed once.
            if position <= state.last_position {
                continue;
            }
            if position != state.last_position + 1 {
                tracing::warn!(
                    expected = state.last_position + 1,
                    got = position,
                    "feed skipped log positions"
                );
            }
            let push = Push::Event(Arc::new(Shared::new(committed.logged.clone())));
            for user in &committed.audience {
                route(&mut state, *user, &push);
            }
            state.last_position = position;
        }
    }
}

#[async_trait]
impl Fanout for Hub {
    fn subscribe(&self, user: UserId) -> (Subscription, u64) {
        let queue = PushQueue::new(self.inner.queue_capacity);
        let mut state = self.inner.lock();
        let id = state.next_id;
        state.next_id += 1;
        state.users.entry(user).or_default().push(Slot { id, queue: queue.clone() });
        let position = state.last_position;
        drop(state);
        let subscription = Subscription { id, user, queue, hub: Arc::downgrade(&self.inner) };
        (subscription, position)
    }

    async fn signal(&self, signal: Signal, audience: &[UserId]) -> Result<()> {
        self.deliver_signal(signal, audience);
        Ok(())
    }
}

/// The receiving end of one session's pushes. Dropping it unsubscribes.
pub struct Subscription {
    id: u64,
    user: UserId,
    queue: Arc<PushQueue<Push>>,
    hub: Weak<HubInner>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").field("user", &self.user).field("id", &self.id).finish()
    }
}

impl Subscription {
    /// The subscribed user.
    #[must_use]
    pub fn user(&self) -> UserId {
        self.user
    }

    /// Whether the queue overflowed.
    #[must_use]
    pub fn is_lagged(&self) -> bool {
        self.queue.is_lagged()
    }

    /// The next push, in dispatch order. Cancel-safe.
    pub async fn recv(&mut self) -> Result<Push, RecvError> {
        std::future::poll_fn(|cx| self.queue.poll_recv(cx)).await.map_err(RecvError::from)
    }

    /// The next push if one is queued, without waiting (`Ok(None)` when none is).
    pub fn try_recv(&mut self) -> Result<Option<Push>, RecvError> {
        self.queue.try_recv().map_err(RecvError::from)
    }
}

impl From<Ended> for RecvError {
    fn from(ended: Ended) -> Self {
        match ended {
            Ended::Lagged => Self::Lagged,
            Ended::Closed => Self::Closed,
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let Some(hub) = self.hub.upgrade() else {
            return;
        };
        let mut state = hub.lock();
        if let Some(slots) = state.users.get_mut(&self.user) {
            slots.retain(|slot| slot.id != self.id);
            if slots.is_empty() {
                state.users.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConversationId;
    use crate::model::{Event, Receipt, ReceiptKind};

    fn receipt(position: u64, audience: Vec<UserId>) -> CommittedEvent {
        CommittedEvent {
            logged: LoggedEvent {
                position,
                event: Event::Receipt(Receipt {
                    conversation_id: ConversationId::new(),
                    user_id: UserId::new(),
                    kind: ReceiptKind::Read,
                    seq: position,
                    at: crate::Timestamp::now(),
                }),
            },
            audience,
        }
    }

    #[tokio::test]
    async fn subscribe_returns_last_dispatched_position() {
        let hub = Hub::new(8);
        hub.start(41);
        let user = UserId::new();
        let (_early, at) = hub.subscribe(user);
        assert_eq!(at, 41);
        hub.committed(&[receipt(42, vec![user])]);
        let (mut late, at) = hub.subscribe(user);
        assert_eq!(at, 42);
        hub.committed(&[receipt(43, vec![user])]);
        let Push::Event(e) = late.recv().await.unwrap() else { panic!("not an event") };
        assert_eq!(e.get().position, 43);
    }

    #[tokio::test]
    async fn overflow_marks_only_the_slow_subscription_lagged() {
        let hub = Hub::new(2);
        let user = UserId::new();
        let (mut slow, _) = hub.subscribe(user);
        let (mut fast, _) = hub.subscribe(user);
        for p in 1..=2 {
            hub.committed(&[receipt(p, vec![user])]);
            assert!(fast.recv().await.is_ok());
        }
        hub.committed(&[receipt(3, vec![user])]);
        assert!(fast.recv().await.is_ok());
        assert_eq!(slow.recv().await.unwrap_err(), RecvError::Lagged);
        assert_eq!(hub.subscriptions(), 1);
    }

    #[tokio::test]
    async fn repeated_positions_are_routed_once_and_drop_unsubscribes() {
        let hub = Hub::new(8);
        let user = UserId::new();
        let (mut sub, _) = hub.subscribe(user);
        hub.committed(&[receipt(1, vec![user]), receipt(1, vec![user])]);
        assert!(sub.recv().await.is_ok());
        assert!(sub.try_recv().unwrap().is_none());
        drop(sub);
        assert_eq!(hub.subscriptions(), 0);
    }
}
