//! Answers kept in memory while the listener makes that safe: the one mechanism behind the
//! block cache (`blocks.rs`) and the revocation cache (`revocations.rs`).
//!
//! Both answer a question asked on every request (does either user block the other; when
//! were this user's tokens revoked) about data that changes rarely, and that any instance
//! on the database may change. So answers are kept per key and forgotten when a change of
//! that key commits: the writer sends a NOTIFY on the cache's channel in the same
//! transaction, and every instance's listener (this one's included) forgets the key when
//! it arrives. This instance also forgets the key as soon as its own write commits, so
//! its own callers see their change at once; another instance sees it once the
//! notification arrives (the time of a NOTIFY round trip).
//!
//! Answers are only kept while the listener is connected: when it is not, a notification
//! could be missed, so nothing is kept and every question is a query, until it listens
//! again and starts from an empty cache. An epoch counter stops a query that began before
//! a change from storing its stale answer after it.
//!
//! A notification can also be lost without the listener noticing (a connection that died
//! silently until the listener's probe caught it, a row written by hand in SQL), so every
//! answer also expires after a time to live (`PgOptions::block_cache_ttl`,
//! `PgOptions::revocation_cache_ttl`). The number of keys is bounded; the cache starts
//! over when full (the keys in use come back at once).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// The caches the listener keeps right, each with the channel of its notifications.
pub(crate) type ListenedCaches = Vec<(String, std::sync::Arc<dyn Listened>)>;

/// A cache the listener keeps right: told when it starts and stops listening, and handed
/// every notification on the cache's channel.
pub(crate) trait Listened: Send + Sync {
    /// The listener started (`true`) or stopped listening (see [`Kept::set_listening`]).
    fn set_listening(&self, listening: bool);

    /// A notification on the cache's channel: forget what it names.
    fn forget_notified(&self, payload: &str);
}

struct State<K, V> {
    listening: bool,
    epoch: u64,
    /// The answer for each key, and when it was queried.
    answers: HashMap<K, (V, Instant)>,
}

/// Answers of type `V` per key `K`, kept while the listener listens, each for at most a
/// time to live, at most a bounded number of them.
pub(crate) struct Kept<K, V> {
    state: Mutex<State<K, V>>,
    /// How long an answer is kept at most.
    ttl: Duration,
    /// Keys kept at most.
    max: usize,
}

/// Permission to keep the answer of a query started at a given epoch (`None`: the listener
/// was not listening, so the answer may not be kept).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ticket(Option<u64>);

impl<K: Eq + Hash, V: Clone> Kept<K, V> {
    /// An empty cache (not listening yet) whose answers live at most `ttl`, holding at
    /// most `max` of them.
    pub(crate) fn new(ttl: Duration, max: usize) -> Self {
        let state = State { listening: false, epoch: 0, answers: HashMap::new() };
        Self { state: Mutex::new(state), ttl, max: max.max(1) }
    }

    fn state(&self) -> MutexGuard<'_, State<K, V>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The kept answer for `key`, or a ticket to [`Kept::keep`] the one queried now.
    pub(crate) fn get(&self, key: &K) -> Result<V, Ticket> {
        let mut state = self.state();
        match state.answers.get(key) {
            Some((value, at)) if at.elapsed() < self.ttl => Ok(value.clone()),
            Some(_) => {
                state.answers.remove(key);
                Err(Ticket(state.listening.then_some(state.epoch)))
            }
            None => Err(Ticket(state.listening.then_some(state.epoch))),
        }
    }

    /// Keeps a queried answer, unless something changed since the ticket was taken (or
    /// the listener stopped).
    pub(crate) fn keep(&self, ticket: Ticket, key: K, value: V) {
        let mut state = self.state();
        if ticket.0 != Some(state.epoch) || !state.listening {
            return;
        }
        if state.answers.len() >= self.max {
            state.answers.clear();
        }
        state.answers.insert(key, (value, Instant::now()));
    }

    /// Forgets the answer for `key` (a change of it committed).
    pub(crate) fn forget(&self, key: &K) {
        let mut state = self.state();
        state.epoch += 1;
        state.answers.remove(key);
    }

    /// The listener started (`true`) or stopped listening: either way nothing kept so far
    /// can be trusted, and answers are kept only while it listens. Also what a
    /// notification that names nothing (which this crate never sends) does.
    pub(crate) fn set_listening(&self, listening: bool) {
        let mut state = self.state();
        state.epoch += 1;
        state.answers.clear();
        state.listening = listening;
    }

    /// Forgets everything, listening or not (a notification that named no key).
    pub(crate) fn forget_all(&self) {
        let listening = self.state().listening;
        self.set_listening(listening);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_kept_only_while_listening() {
        let kept: Kept<u32, bool> = Kept::new(Duration::from_secs(60), 10);
        let Err(ticket) = kept.get(&1) else { panic!("nothing kept yet") };
        kept.keep(ticket, 1, false);
        assert!(kept.get(&1).is_err(), "kept while not listening");
        kept.set_listening(true);
        let Err(ticket) = kept.get(&1) else { panic!("cleared on listening") };
        kept.keep(ticket, 1, true);
        assert!(matches!(kept.get(&1), Ok(true)));
        kept.set_listening(false);
        assert!(kept.get(&1).is_err(), "cleared when the listener stops");
    }

    #[test]
    fn an_answer_older_than_a_change_is_not_kept() {
        let kept: Kept<u32, bool> = Kept::new(Duration::from_secs(60), 10);
        kept.set_listening(true);
        let Err(ticket) = kept.get(&1) else { panic!("nothing kept yet") };
        kept.forget(&2);
        kept.keep(ticket, 1, false);
        assert!(kept.get(&1).is_err(), "a stale answer was kept");
    }

    #[test]
    fn a_ticket_from_before_listening_keeps_nothing() {
        let kept: Kept<u32, bool> = Kept::new(Duration::from_secs(60), 10);
        let Err(ticket) = kept.get(&1) else { panic!("nothing kept yet") };
        kept.set_listening(true);
        kept.keep(ticket, 1, false);
        assert!(kept.get(&1).is_err(), "queried while nobody listened");
    }

    #[test]
    fn answers_expire() {
        let kept: Kept<u32, bool> = Kept::new(Duration::from_millis(50), 10);
        kept.set_listening(true);
        let Err(ticket) = kept.get(&1) else { panic!("nothing kept yet") };
        kept.keep(ticket, 1, false);
        assert!(matches!(kept.get(&1), Ok(false)), "kept");
        std::thread::sleep(Duration::from_millis(120));
        assert!(kept.get(&1).is_err(), "expired after its time to live");
    }

    #[test]
    fn the_cache_starts_over_when_full() {
        let kept: Kept<u32, bool> = Kept::new(Duration::from_secs(60), 3);
        kept.set_listening(true);
        for key in 0..4 {
            let Err(ticket) = kept.get(&key) else { panic!("nothing kept yet") };
            kept.keep(ticket, key, true);
        }
        assert!(kept.get(&0).is_err(), "cleared at the bound");
        assert!(kept.get(&3).is_ok(), "the newest is kept");
    }

    #[test]
    fn forgetting_all_keeps_listening() {
        let kept: Kept<u32, bool> = Kept::new(Duration::from_secs(60), 10);
        kept.set_listening(true);
        let Err(ticket) = kept.get(&1) else { panic!("nothing kept yet") };
        kept.keep(ticket, 1, true);
        kept.forget_all();
        let Err(ticket) = kept.get(&1) else { panic!("forgotten") };
        kept.keep(ticket, 1, true);
        assert!(kept.get(&1).is_ok(), "still listening after forgetting all");
    }
}
