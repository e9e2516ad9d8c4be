//! Blocks asked about on every send, answered from memory while that is safe.
//!
//! Every send and typing signal asks whether two users block each other; as a query that
//! was a round trip per send and, measured 2026-11-21 (2 cores, 64 concurrent senders),
//! about a third of a core across the pool's backends. Blocks change rarely, so answers are
//! kept per pair of users and forgotten when a block or unblock of that pair commits: the
//! writer sends a NOTIFY on the blocks channel in the same transaction, and every instance's
//! listener (this one's included) forgets the pair when it arrives. This instance also
//! forgets the pair as soon as its own write commits, so its own callers see their blocks
//! at once; another instance sees them once the notification arrives (the time of a NOTIFY
//! round trip).
//!
//! Answers are only kept while the listener is connected: when it is not, a notification
//! could be missed, so nothing is kept and every question is a query, until it listens
//! again and starts from an empty cache. An epoch counter stops a query that began before
//! a change from storing its stale answer after it.
//!
//! A notification can also be lost without the listener noticing (a connection that died
//! silently until the listener's probe caught it, a block written by hand in SQL), so every
//! answer also expires after a time to live (`PgOptions::block_cache_ttl`, default 30 s):
//! a block is enforced on every instance within that time at worst.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use messaging_core::id::UserId;
use uuid::Uuid;

/// Pairs kept at most; the cache starts over when full (blocks are checked per send, so
/// the active pairs come back at once).
const MAX_PAIRS: usize = 100_000;

#[derive(Default)]
struct State {
    listening: bool,
    epoch: u64,
    /// The answer for each pair, and when it was queried.
    pairs: HashMap<(UserId, UserId), (bool, Instant)>,
}

/// The kept answers of "does either user block the other".
pub(crate) struct BlockCache {
    state: Mutex<State>,
    /// How long an answer is kept at most.
    ttl: Duration,
}

/// Permission to store the answer of a query started at a given epoch.
#[derive(Clone, Copy)]
pub(crate) struct Ticket(Option<u64>);

impl BlockCache {
    /// An empty cache whose answers live at most `ttl`.
    pub(crate) fn new(ttl: Duration) -> Self {
        Self { state: Mutex::new(State::default()), ttl }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The kept answer for `a` and `b`, or a ticket to [`BlockCache::keep`] the queried one.
    pub(crate) fn get(&self, a: UserId, b: UserId) -> Result<bool, Ticket> {
        let mut state = self.state();
        let key = pair(a, b);
        match state.pairs.get(&key) {
            Some((blocked, at)) if at.elapsed() < self.ttl => Ok(*blocked),
            Some(_) => {
                state.pairs.remove(&key);
                Err(Ticket(state.listening.then_some(state.epoch)))
            }
            None => Err(Ticket(state.listening.then_some(state.epoch))),
        }
    }

    /// Keeps a queried answer, unless something changed since the ticket was taken.
    pub(crate) fn keep(&self, ticket: Ticket, a: UserId, b: UserId, blocked: bool) {
        let mut state = self.state();
        if ticket.0 != Some(state.epoch) || !state.listening {
            return;
        }
        if state.pairs.len() >= MAX_PAIRS {
            state.pairs.clear();
        }
        state.pairs.insert(pair(a, b), (blocked, Instant::now()));
    }

    /// Forgets the answer for `a` and `b` (a block or unblock of the pair committed).
    pub(crate) fn forget(&self, a: UserId, b: UserId) {
        let mut state = self.state();
        state.epoch += 1;
        state.pairs.remove(&pair(a, b));
    }

    /// Forgets the pair a blocks notification names; a payload that names none (which this
    /// crate never sends) forgets everything.
    pub(crate) fn forget_notified(&self, payload: &str) {
        match parse(payload) {
            Some((a, b)) => self.forget(a, b),
            None => {
                tracing::warn!(payload, "malformed blocks notification; forgetting all blocks");
                let listening = self.state().listening;
                self.set_listening(listening);
            }
        }
    }

    /// The listener started (`true`) or stopped listening: either way nothing kept so far
    /// can be trusted, and answers are kept only while it listens.
    pub(crate) fn set_listening(&self, listening: bool) {
        let mut state = self.state();
        state.epoch += 1;
        state.pairs.clear();
        state.listening = listening;
    }
}

/// The notification payload naming a pair.
pub(crate) fn payload(a: UserId, b: UserId) -> String {
    let (lo, hi) = pair(a, b);
    format!("{},{}", lo.as_uuid(), hi.as_uuid())
}

fn parse(payload: &str) -> Option<(UserId, UserId)> {
    let (a, b) = payload.split_once(',')?;
    Some((UserId::from_uuid(Uuid::parse_str(a).ok()?), UserId::from_uuid(Uuid::parse_str(b).ok()?)))
}

/// The pair in a fixed order: blocks are asked about in both directions at once.
fn pair(a: UserId, b: UserId) -> (UserId, UserId) {
    if a <= b { (a, b) } else { (b, a) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_kept_only_while_listening() {
        let cache = BlockCache::new(Duration::from_secs(60));
        let (a, b) = (UserId::new(), UserId::new());
        let Err(ticket) = cache.get(a, b) else { panic!("nothing kept yet") };
        cache.keep(ticket, a, b, false);
        assert!(cache.get(a, b).is_err(), "kept while not listening");
        cache.set_listening(true);
        let Err(ticket) = cache.get(a, b) else { panic!("cleared on listening") };
        cache.keep(ticket, a, b, true);
        assert!(matches!(cache.get(b, a), Ok(true)), "either order");
        cache.set_listening(false);
        assert!(cache.get(a, b).is_err(), "cleared when the listener stops");
    }

    #[test]
    fn an_answer_older_than_a_change_is_not_kept() {
        let cache = BlockCache::new(Duration::from_secs(60));
        cache.set_listening(true);
        let (a, b) = (UserId::new(), UserId::new());
        let Err(ticket) = cache.get(a, b) else { panic!("nothing kept yet") };
        cache.forget_notified(&payload(b, a));
        cache.keep(ticket, a, b, false);
        assert!(cache.get(a, b).is_err(), "a stale answer was kept");
    }

    #[test]
    fn notifications_name_the_pair() {
        let cache = BlockCache::new(Duration::from_secs(60));
        cache.set_listening(true);
        let (a, b, c) = (UserId::new(), UserId::new(), UserId::new());
        for (x, y) in [(a, b), (a, c)] {
            let Err(ticket) = cache.get(x, y) else { panic!("nothing kept yet") };
            cache.keep(ticket, x, y, false);
        }
        cache.forget_notified(&payload(b, a));
        assert!(cache.get(a, b).is_err(), "the named pair is forgotten");
        assert!(cache.get(a, c).is_ok(), "other pairs stay");
        cache.forget_notified("garbage");
        assert!(cache.get(a, c).is_err(), "a malformed payload forgets everything");
    }

    #[test]
    fn answers_expire() {
        let cache = BlockCache::new(Duration::from_millis(50));
        cache.set_listening(true);
        let (a, b) = (UserId::new(), UserId::new());
        let Err(ticket) = cache.get(a, b) else { panic!("nothing kept yet") };
        cache.keep(ticket, a, b, false);
        assert!(matches!(cache.get(a, b), Ok(false)), "kept");
        std::thread::sleep(Duration::from_millis(120));
        assert!(cache.get(a, b).is_err(), "expired after its time to live");
    }
}
