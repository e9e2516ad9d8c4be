//! Transport settings of the server (the ones `hello` announces besides the `Messenger`'s
//! limits, and how connections are admitted), with docs/protocol.md's defaults.

use std::net::IpAddr;
use std::time::Duration;

/// How the server treats connections.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// Longest time a client may take to send its HTTP request headers (default 10 s),
    /// counted from the accept, so a socket that sends nothing is closed too.
    pub handshake_timeout: Duration,
    /// The most a request waits for its answer (default 5 s): past it the answer is
    /// `unavailable` and the operation is dropped (docs/protocol.md "Limits and robustness").
    pub answer_timeout: Duration,
    /// Outbound bytes waiting for a connection's reader before it is closed with 4000
    /// `lagged` (default 4 MiB; at least twice the messenger's reply budget).
    pub max_queue_bytes: usize,
    /// WebSocket sessions one user may hold on this instance (default 32); past it, the
    /// upgrade gets 503.
    pub max_sessions_per_user: usize,
    /// A user's searches per second, across all of their connections (default 5).
    pub search_per_s: u32,
    /// A user's search burst (default 20).
    pub search_burst: u32,
    /// Connections from one address that may be waiting to send their request headers at
    /// once (default: no cap). Past it, a new connection from that address is closed at
    /// once. Connections from a trusted proxy are not counted (every client behind it
    /// shares its address).
    pub max_pending_per_ip: Option<usize>,
    /// Proxies whose `X-Forwarded-For` names the client (default: none, the header is
    /// ignored).
    pub trusted_proxies: Vec<IpAddr>,
    /// Origins whose browser pages may call the HTTP routes (`scheme://host[:port]`;
    /// default: none, no CORS headers).
    pub cors_origins: Vec<String>,
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
            answer_timeout: Duration::from_millis(5_000),
            max_queue_bytes: 4_194_304,
            max_sessions_per_user: 32,
            search_per_s: 5,
            search_burst: 20,
            max_pending_per_ip: None,
            trusted_proxies: Vec::new(),
            cors_origins: Vec::new(),
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

    /// Sets the answer bound, in whole milliseconds (at least one), since `hello`
    /// announces it in milliseconds.
    #[must_use]
    pub fn answer_timeout(mut self, timeout: Duration) -> Self {
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX).max(1);
        self.answer_timeout = Duration::from_millis(ms);
        self
    }

    /// Sets the byte cap of each connection's outbound queue.
    #[must_use]
    pub fn max_queue_bytes(mut self, bytes: usize) -> Self {
        self.max_queue_bytes = bytes;
        self
    }

    /// Sets the most sessions of one user (at least one).
    #[must_use]
    pub fn max_sessions_per_user(mut self, sessions: usize) -> Self {
        self.max_sessions_per_user = sessions.max(1);
        self
    }

    /// Sets a user's search rate limit.
    #[must_use]
    pub fn search_rate(mut self, per_second: u32, burst: u32) -> Self {
        self.search_per_s = per_second;
        self.search_burst = burst;
        self
    }

    /// Sets the cap on connections per address still sending their headers (`None`: no
    /// cap).
    #[must_use]
    pub fn max_pending_per_ip(mut self, pending: Option<usize>) -> Self {
        self.max_pending_per_ip = pending;
        self
    }

    /// Sets the proxies trusted for `X-Forwarded-For`.
    #[must_use]
    pub fn trusted_proxies(mut self, proxies: Vec<IpAddr>) -> Self {
        self.trusted_proxies = proxies;
        self
    }

    /// Sets the origins whose browser pages may call (CORS).
    #[must_use]
    pub fn cors_origins(mut self, origins: Vec<String>) -> Self {
        self.cors_origins = origins;
        self
    }

    /// The answer bound in milliseconds, as `hello` announces it.
    #[must_use]
    pub fn answer_timeout_ms(&self) -> u64 {
        u64::try_from(self.answer_timeout.as_millis()).unwrap_or(u64::MAX)
    }

    /// Checks the settings against the messenger's reply budget: the outbound queue must
    /// hold at least two full reply pages (a reply page is cut at the budget but holds at
    /// least one item, and pushes queue behind it), or a client reading at full speed
    /// could be closed as lagged by one large page.
    pub fn check(&self, reply_budget_bytes: usize) -> Result<(), String> {
        if self.max_queue_bytes < reply_budget_bytes.saturating_mul(2) {
            return Err(format!(
                "--max-queue-bytes ({}) must be at least twice --reply-budget-bytes ({})",
                self.max_queue_bytes, reply_budget_bytes
            ));
        }
        if self.max_pending_per_ip == Some(0) {
            return Err("--max-pending-per-ip must be at least 1".into());
        }
        if let Some(bad) = self.cors_origins.iter().find(|o| !crate::http::is_origin(o)) {
            return Err(format!(
                "--cors-origin {bad:?} is not an origin as browsers send it \
                 (scheme://host[:port], no path)"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cors_origins_are_checked_at_start() {
        let with = |origin: &str| Transport::default().cors_origins(vec![origin.to_owned()]);
        assert!(with("https://app.example").check(1024).is_ok());
        assert!(with("https://app.example/").check(1024).is_err());
        assert!(with("*").check(1024).is_err());
    }

    #[test]
    fn the_heartbeat_is_whole_seconds_and_never_zero() {
        let heartbeat = |ms| Transport::default().heartbeat(Duration::from_millis(ms)).heartbeat;
        assert_eq!(heartbeat(0), Duration::from_secs(1));
        assert_eq!(heartbeat(400), Duration::from_secs(1));
        assert_eq!(heartbeat(2_600), Duration::from_secs(3));
    }

    #[test]
    fn the_queue_holds_two_reply_pages() {
        let transport = Transport::default();
        assert_eq!(transport.check(1_048_576), Ok(()));
        assert_eq!(transport.check(2_097_152), Ok(()));
        let error = transport.check(2_097_153).unwrap_err();
        assert!(error.contains("--max-queue-bytes (4194304)"), "{error}");
        assert!(Transport::default().max_pending_per_ip(Some(0)).check(1).is_err());
        assert_eq!(Transport::default().answer_timeout(Duration::ZERO).answer_timeout_ms(), 1);
    }
}
