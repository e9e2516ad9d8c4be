//! Blocks asked about on every send, answered from memory while that is safe.
//!
//! Every send and typing signal asks whether two users block each other; as a query that
//! was a round trip per send and, measured 2026-11-21 (2 cores, 64 concurrent senders),
//! about a third of a core across the pool's backends. Blocks change rarely, so answers are
//! kept per pair of users, as `kept.rs` describes: forgotten when a block or unblock of
//! that pair commits (the writer's NOTIFY on the blocks channel, and at once on this
//! instance), kept only while the listener is connected, each for at most
//! `PgOptions::block_cache_ttl` (default 30 s): a block is enforced on every instance within
//! that time at worst, even when its notification was lost.

use std::time::Duration;

use messaging_core::id::UserId;
use uuid::Uuid;

use crate::kept::{Kept, Listened, Ticket};

/// Pairs kept at most; the cache starts over when full (blocks are checked per send, so
/// the active pairs come back at once).
const MAX_PAIRS: usize = 100_000;

/// The kept answers of "does either user block the other".
pub(crate) struct BlockCache {
    pairs: Kept<(UserId, UserId), bool>,
}

impl BlockCache {
    /// An empty cache whose answers live at most `ttl`.
    pub(crate) fn new(ttl: Duration) -> Self {
        Self { pairs: Kept::new(ttl, MAX_PAIRS) }
    }

    /// The kept answer for `a` and `b`, or a ticket to [`BlockCache::keep`] the queried one.
    pub(crate) fn get(&self, a: UserId, b: UserId) -> Result<bool, Ticket> {
        self.pairs.get(&pair(a, b))
    }

    /// Keeps a queried answer, unless something changed since the ticket was taken.
    pub(crate) fn keep(&self, ticket: Ticket, a: UserId, b: UserId, blocked: bool) {
        self.pairs.keep(ticket, pair(a, b), blocked);
    }

    /// Forgets the answer for `a` and `b` (a block or unblock of the pair committed).
    pub(crate) fn forget(&self, a: UserId, b: UserId) {
        self.pairs.forget(&pair(a, b));
    }
}

impl Listened for BlockCache {
    fn set_listening(&self, listening: bool) {
        self.pairs.set_listening(listening);
    }

    /// Forgets the pair a blocks notification names; a payload that names none (which this
    /// crate never sends) forgets everything.
    fn forget_notified(&self, payload: &str) {
        match parse(payload) {
            Some((a, b)) => self.forget(a, b),
            None => {
                tracing::warn!(payload, "malformed blocks notification; forgetting all blocks");
                self.pairs.forget_all();
            }
        }
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
    fn either_order_is_one_pair() {
        let cache = BlockCache::new(Duration::from_secs(60));
        cache.set_listening(true);
        let (a, b) = (UserId::new(), UserId::new());
        let Err(ticket) = cache.get(a, b) else { panic!("nothing kept yet") };
        cache.keep(ticket, a, b, true);
        assert!(matches!(cache.get(b, a), Ok(true)), "either order");
        cache.forget(b, a);
        assert!(cache.get(a, b).is_err(), "forgotten in either order");
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
}
