//! The per-connection rate limit (PROTOCOL.md "Frames"): a token bucket that refills at
//! `ops_per_s`, holds at most `ops_burst`, and is full when the connection opens.

use std::time::Instant;

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
        let capacity = f64::from(burst.max(1));
        Self { per_second: f64::from(per_second), capacity, tokens: capacity, last: Instant::now() }
    }

    /// Takes one token if there is one (refilled for the time since the last call).
    pub(crate) fn try_take(&mut self) -> bool {
        self.take_at(Instant::now())
    }

    fn take_at(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
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
}
