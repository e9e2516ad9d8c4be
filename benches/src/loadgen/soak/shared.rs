//! What the soak's tasks share: counters, the interval's latencies, the run's schedule
//! and vocabulary, and the seeded dice that pick chores.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::loadgen::Error;
use crate::loadgen::client::Target;

/// Counters every task adds to; the sampler reads and resets the interval ones.
#[derive(Default)]
pub(super) struct Counters {
    pub(super) acked: AtomicU64,
    pub(super) delivered: AtomicU64,
    pub(super) reconnects: AtomicU64,
    pub(super) syncs: AtomicU64,
    pub(super) searches: AtomicU64,
    pub(super) sse_resumes: AtomicU64,
    /// Sessions the server ended (slow readers), each followed by a reconnect.
    pub(super) ended_by_server: AtomicU64,
    /// Sends whose answer had not come when their connection was dropped.
    pub(super) unanswered: AtomicU64,
    /// Connection attempts that failed and were retried.
    pub(super) reconnect_retries: AtomicU64,
    pub(super) errors: AtomicU64,
    pub(super) first_error: Mutex<Option<String>>,
}

impl Counters {
    pub(super) fn error(&self, what: impl Into<String>) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut first) = self.first_error.lock() {
            first.get_or_insert_with(|| what.into());
        }
    }
}

/// The interval's latencies, swapped out by the sampler.
pub(super) struct Latencies {
    pub(super) deliver_us: Histogram<u64>,
    pub(super) search_us: Histogram<u64>,
}

impl Latencies {
    pub(super) fn new() -> Result<Self, Error> {
        Ok(Self {
            deliver_us: crate::loadgen::micros_histogram()?,
            search_us: crate::loadgen::micros_histogram()?,
        })
    }
}

/// What the users' tasks share.
pub(super) struct Shared {
    pub(super) target: Target,
    pub(super) base: Instant,
    pub(super) stop: Instant,
    pub(super) counters: Counters,
    pub(super) latencies: Mutex<Latencies>,
    /// Messages acknowledged per conversation: what each member must have seen.
    pub(super) stored: Vec<AtomicU64>,
    pub(super) bodies: Arc<[String]>,
    pub(super) words: Vec<String>,
    /// Reconnects, syncs and searches per second, fleet-wide.
    pub(super) chore_rates: [f64; 3],
}

impl Shared {
    pub(super) fn micros_since_base(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_micros()).unwrap_or(u64::MAX)
    }

    pub(super) fn record(&self, deliver_us: Option<u64>, search_us: Option<u64>) {
        if let Ok(mut latencies) = self.latencies.lock() {
            if let Some(us) = deliver_us {
                latencies.deliver_us.saturating_record(us.max(1));
            }
            if let Some(us) = search_us {
                latencies.search_us.saturating_record(us.max(1));
            }
        }
    }
}

/// A tiny seeded generator (xorshift64*): which chore comes next, and when.
pub(super) struct Dice(u64);

impl Dice {
    pub(super) fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    pub(super) fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1_u64 << 53) as f64
    }

    /// An exponential wait with mean `mean` (a Poisson process's gaps).
    pub(super) fn wait(&mut self, mean: Duration) -> Duration {
        mean.mul_f64(-(1.0 - self.unit()).ln())
    }
}
