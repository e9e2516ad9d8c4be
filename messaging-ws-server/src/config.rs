//! Transport settings of the server (the ones `hello` announces besides the `Messenger`'s
//! limits), with PROTOCOL.md's defaults.

use std::time::Duration;

/// How the server treats connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Transport {
    /// Largest frame a client may send (default 65,536 bytes); larger: close 1009.
    pub max_frame_bytes: usize,
    /// Most connections at once (default 20,000); past it, upgrades get 503.
    pub max_connections: usize,
    /// Rate limit refill per connection (default 100 requests/s).
    pub ops_per_s: u32,
    /// Rate limit capacity per connection (default 200).
    pub ops_burst: u32,
    /// Ping interval (default 25 s, whole seconds, at least 1); a peer silent for two
    /// intervals is dropped.
    pub heartbeat: Duration,
    /// Longest time a client may take to send its HTTP request headers (default 10 s);
    /// slower connections are closed.
    pub handshake_timeout: Duration,
}

impl Default for Transport {
    fn default() -> Self {
        Self {
            max_frame_bytes: 65_536,
            max_connections: 20_000,
            ops_per_s: 100,
            ops_burst: 200,
            heartbeat: Duration::from_secs(25),
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

impl Transport {
    /// Sets the largest client frame.
    #[must_use]
    pub fn max_frame_bytes(mut self, bytes: usize) -> Self {
        self.max_frame_bytes = bytes;
        self
    }

    /// Sets the connection limit.
    #[must_use]
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.max_connections = connections;
        self
    }

    /// Sets the per-connection rate limit.
    #[must_use]
    pub fn rate_limit(mut self, per_second: u32, burst: u32) -> Self {
        self.ops_per_s = per_second;
        self.ops_burst = burst;
        self
    }

    /// Sets the heartbeat interval, rounded to whole seconds (at least one), since `hello`
    /// announces it in seconds.
    #[must_use]
    pub fn heartbeat(mut self, interval: Duration) -> Self {
        let seconds = (interval.as_secs_f64().round() as u64).max(1);
        self.heartbeat = Duration::from_secs(seconds);
        self
    }

    /// Sets the time a client has to send its request headers.
    #[must_use]
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_heartbeat_is_whole_seconds_and_never_zero() {
        let heartbeat = |ms| Transport::default().heartbeat(Duration::from_millis(ms)).heartbeat;
        assert_eq!(heartbeat(0), Duration::from_secs(1));
        assert_eq!(heartbeat(400), Duration::from_secs(1));
        assert_eq!(heartbeat(2_600), Duration::from_secs(3));
    }
}
