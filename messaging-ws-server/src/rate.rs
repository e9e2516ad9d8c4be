//! Rate limits: a token bucket per connection for its requests (docs/protocol.md "Frames":
//! refills at `ops_per_s`, holds at most `ops_burst`, full when the connection opens), and
//! one bucket per user, shared by all of that user's connections on the instance, for
//! searches (docs/protocol.md "Limits and robustness": `search_per_s`, `search_burst`), the costliest
//! read.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use messaging_core::UserId;

/// A token bucket, one per connection (no locking: only its connection task uses it).
#[derive(Debug)]
pub(crate) struct TokenBucket {
    per_second: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn new(per_second: u32, burst: u32) -> Self {
        Self::full_at(per_second, burst, Instant::now())
    }

    fn full_at(per_second: u32, burst: u32, now: Instant) -> Self {
        let capacity = f64::from(burst.max(1));
        Self { per_second: f64::from(per_second), capacity, tokens: capacity, last: now }
    }

    /// Takes one token if there is one (refilled for the time since the last call).
    pub(crate) fn try_take(&mut self) -> bool {
        self.take_at(Instant::now())
    }

    fn take_at(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
    }

    /// Whether the bucket has refilled completely by `now` (a new one would be the same).
    fn is_full_at(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * self.per_second >= self.capacity
    }
}

/// Below this many buckets, the map is not swept.
const SWEEP_FLOOR: usize = 1024;

/// One token bucket per user, shared by the user's connections. A bucket that has refilled
/// completely is the same as no bucket, so such buckets are forgotten: the map is swept
/// whenever it has doubled since the last sweep (amortized constant work per call), which
/// keeps it within twice the users who searched recently (at least [`SWEEP_FLOOR`]).
#[derive(Debug)]
pub(crate) struct UserBuckets {
    per_second: u32,
    burst: u32,
    state: Mutex<Buckets>,
}

#[derive(Debug)]
struct Buckets {
    by_user: HashMap<UserId, TokenBucket>,
    sweep_at: usize,
}

impl UserBuckets {
    /// Every user starts with a full bucket of `burst`, refilled at `per_second`.
    pub(crate) fn new(per_second: u32, burst: u32) -> Self {
        let state = Buckets { by_user: HashMap::new(), sweep_at: SWEEP_FLOOR };
        Self { per_second, burst, state: Mutex::new(state) }
    }

    /// Takes one of `user`'s tokens if there is one.
    pub(crate) fn try_take(&self, user: UserId) -> bool {
        self.take_at(user, Instant::now())
    }

    fn take_at(&self, user: UserId, now: Instant) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.by_user.len() >= state.sweep_at {
            state.by_user.retain(|_, bucket| !bucket.is_full_at(now));
            state.sweep_at = state.by_user.len().saturating_mul(2).max(SWEEP_FLOOR);
        }
        let (per_second, burst) = (self.per_second, self.burst);
        let bucket = state
            .by_user
            .entry(user)
            .or_insert_with(|| TokenBucket::full_at(per_second, burst, now));
        bucket.take_at(now)
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).by_user.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_full_burst_then_the_refill_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket { last: start, ..TokenBucket::new(10, 3) };
        assert!((0..3).all(|_| bucket.take_at(start)), "the burst is available at once");
        assert!(!bucket.take_at(start), "then empty");
        assert!(!bucket.take_at(start + Duration::from_millis(50)), "half a token is not one");
        assert!(bucket.take_at(start + Duration::from_millis(100)), "refilled at 10/s");
        let later = start + Duration::from_secs(60);
        assert_eq!((0..10).filter(|_| bucket.take_at(later)).count(), 3, "never above the burst");
    }

    #[test]
    fn one_bucket_per_user() {
        let buckets = UserBuckets::new(1, 2);
        let (alice, bob, now) = (UserId::new(), UserId::new(), Instant::now());
        assert!(buckets.take_at(alice, now) && buckets.take_at(alice, now));
        assert!(!buckets.take_at(alice, now), "alice's burst is spent");
        assert!(buckets.take_at(bob, now), "bob has his own");
        assert!(buckets.take_at(alice, now + Duration::from_secs(1)), "refilled");
    }

    #[test]
    fn buckets_full_again_are_forgotten() {
        let buckets = UserBuckets::new(10, 5);
        let start = Instant::now();
        for _ in 0..SWEEP_FLOOR {
            assert!(buckets.take_at(UserId::new(), start));
        }
        assert_eq!(buckets.tracked(), SWEEP_FLOOR);
        // A second later all have refilled: the next call sweeps them.
        let busy = UserId::new();
        assert!(buckets.take_at(busy, start + Duration::from_secs(1)));
        assert_eq!(buckets.tracked(), 1, "only the user still below a full bucket is kept");
        // A user who spent their burst is not forgotten early.
        let spender = UserId::new();
        let now = start + Duration::from_secs(2);
        while buckets.take_at(spender, now) {}
        for _ in 0..SWEEP_FLOOR {
            buckets.take_at(UserId::new(), now);
        }
        assert!(!buckets.take_at(spender, now), "still empty after a sweep");
    }
}
