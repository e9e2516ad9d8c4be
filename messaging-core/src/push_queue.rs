//! The queue between the fan-out and one session: bounded, never blocks the sender (a
//! full queue marks the session lagged instead), one receiver.
//!
//! Why not `tokio::sync::mpsc`: a server keeps one queue per open connection, mostly
//! idle, and tokio's channel preallocates a 32-slot block and cache-padded state (about
//! 1 KiB per queue). This one is a mutex over a `VecDeque` that grows only while pushes
//! wait and gives back a burst's memory once drained (about 100 bytes idle). The fan-out
//! already serializes dispatch under its own lock, so a per-queue mutex costs nothing
//! in contention: it is only ever contended by one sender and the one receiver.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// Capacity kept after draining; a larger buffer (left by a burst) is released.
const KEPT_CAPACITY: usize = 8;

/// Why [`PushQueue::poll_recv`] yields no item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The queue overflowed; later items were dropped.
    Lagged,
    /// The sender side was dropped.
    Closed,
}

struct State<T> {
    items: VecDeque<T>,
    capacity: usize,
    lagged: bool,
    closed: bool,
    waker: Option<Waker>,
}

/// A bounded single-receiver queue shared by the sender and the receiver.
pub(crate) struct PushQueue<T> {
    state: Mutex<State<T>>,
}

impl<T> PushQueue<T> {
    /// A queue holding at most `capacity` items (at least one).
    pub(crate) fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                items: VecDeque::new(),
                capacity: capacity.max(1),
                lagged: false,
                closed: false,
                waker: None,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Every update leaves the state consistent before anything that could panic, so a
        // poisoned lock is still usable.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues `item`; `false` when the queue was full (it is then lagged and emptied) or
    /// already ended, so the sender should forget it.
    pub(crate) fn offer(&self, item: T) -> bool {
        let mut state = self.lock();
        if state.lagged || state.closed {
            return false;
        }
        let accepted = if state.items.len() < state.capacity {
            state.items.push_back(item);
            true
        } else {
            state.lagged = true;
            state.items = VecDeque::new();
            false
        };
        let waker = state.waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
        accepted
    }

    /// Ends the queue from the sender side: the receiver gets what is queued, then
    /// [`Ended::Closed`].
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        let waker = state.waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Whether the queue overflowed.
    pub(crate) fn is_lagged(&self) -> bool {
        self.lock().lagged
    }

    /// The next item, or why there is none (`None`: nothing queued yet).
    pub(crate) fn try_recv(&self) -> Result<Option<T>, Ended> {
        let mut state = self.lock();
        Self::take(&mut state)
    }

    /// The next item; registers `cx`'s waker when there is none yet.
    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Result<T, Ended>> {
        let mut state = self.lock();
        match Self::take(&mut state) {
            Ok(Some(item)) => Poll::Ready(Ok(item)),
            Err(ended) => Poll::Ready(Err(ended)),
            Ok(None) => {
                match &mut state.waker {
                    Some(waker) => waker.clone_from(cx.waker()),
                    None => state.waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }

    fn take(state: &mut State<T>) -> Result<Option<T>, Ended> {
        if state.lagged {
            return Err(Ended::Lagged);
        }
        match state.items.pop_front() {
            Some(item) => {
                if state.items.is_empty() && state.items.capacity() > KEPT_CAPACITY {
                    state.items = VecDeque::new();
                }
                Ok(Some(item))
            }
            None if state.closed => Err(Ended::Closed),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn items_arrive_in_order_and_wake_a_waiting_receiver() {
        let queue = PushQueue::new(4);
        let receiver = {
            let queue = queue.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                for _ in 0..3 {
                    got.push(std::future::poll_fn(|cx| queue.poll_recv(cx)).await.unwrap());
                }
                got
            })
        };
        tokio::task::yield_now().await;
        for item in 1..=3 {
            assert!(queue.offer(item));
        }
        assert_eq!(receiver.await.unwrap(), vec![1, 2, 3]);
    }

    #[test]
    fn overflow_lags_and_drops_what_was_queued() {
        let queue = PushQueue::new(2);
        assert!(queue.offer(1));
        assert!(queue.offer(2));
        assert!(!queue.offer(3));
        assert!(queue.is_lagged());
        assert_eq!(queue.try_recv(), Err(Ended::Lagged));
        assert!(!queue.offer(4), "a lagged queue takes nothing more");
    }

    #[test]
    fn close_delivers_what_is_queued_then_ends() {
        let queue = PushQueue::new(2);
        assert!(queue.offer(1));
        queue.close();
        assert!(!queue.offer(2));
        assert_eq!(queue.try_recv(), Ok(Some(1)));
        assert_eq!(queue.try_recv(), Err(Ended::Closed));
    }

    #[test]
    fn a_drained_burst_gives_its_memory_back() {
        let queue = PushQueue::new(1_000);
        for item in 0..500 {
            assert!(queue.offer(item));
        }
        while let Ok(Some(_)) = queue.try_recv() {}
        assert!(queue.lock().items.capacity() <= KEPT_CAPACITY);
    }
}
