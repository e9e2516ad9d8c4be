//! The settings of a [`PgStore`](crate::PgStore).
//!
//! Kept apart from the store so that its defaults, and why each is what it is, read in one
//! place.

use std::time::Duration;

/// Settings of a [`PgStore`](crate::PgStore).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PgOptions {
    /// The schema holding the library's tables (default `messaging`): lowercase letters,
    /// digits and `_`, starting with a letter or `_`.
    pub schema: String,
    /// Connections in the pool (default 16).
    pub max_connections: u32,
    /// Most changes the writer commits in one transaction (default 512).
    pub max_batch: usize,
    /// Batches in flight at once, each on its own connection (default 2): one runs its
    /// statements while another waits for its commit to be durable.
    pub writers: usize,
    /// Apply migrations when connecting (default true).
    pub migrate: bool,
    /// The longest a statement of the pool's connections may run before the server
    /// cancels it (default 3 s, under the 5 s answer bound): the caller gets `unavailable`
    /// and the connection serves the next request. Migrations run without it.
    pub statement_timeout: Duration,
    /// The longest a request waits for a connection of the pool, connecting included
    /// (default 2 s): when the database is down, callers hear `unavailable` well within
    /// the answer bound.
    pub acquire_timeout: Duration,
    /// How long an answer about blocks is kept (default 30 s): the bound on how late a
    /// block made elsewhere is enforced here when its notification was lost.
    pub block_cache_ttl: Duration,
    /// How long an answer about a user's revocation is kept (default 30 s): the bound on
    /// how late a revocation made elsewhere is seen here when its notification was lost
    /// unnoticed (see `SocialStore::revoked_at`).
    pub revocation_cache_ttl: Duration,
    /// How often the listener checks its connection (default 5 s): it notifies itself and
    /// reconnects (catching up from its last position) when that does not come back within
    /// the same time.
    pub listener_probe: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            schema: "messaging".into(),
            max_connections: 16,
            max_batch: 512,
            writers: 2,
            migrate: true,
            statement_timeout: Duration::from_secs(3),
            acquire_timeout: Duration::from_secs(2),
            block_cache_ttl: Duration::from_secs(30),
            revocation_cache_ttl: Duration::from_secs(30),
            listener_probe: Duration::from_secs(5),
        }
    }
}

impl PgOptions {
    /// Sets the schema.
    #[must_use]
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// Sets the pool size (at least 3; the pool also grows to the writers, the listener
    /// and two readers).
    #[must_use]
    pub fn max_connections(mut self, max: u32) -> Self {
        self.max_connections = max.max(3);
        self
    }

    /// Sets how many batches may be in flight at once (at least 1).
    #[must_use]
    pub fn writers(mut self, writers: usize) -> Self {
        self.writers = writers.max(1);
        self
    }

    /// Whether to apply migrations when connecting.
    #[must_use]
    pub fn migrate(mut self, migrate: bool) -> Self {
        self.migrate = migrate;
        self
    }

    /// Sets the statement timeout (at least 1 ms; PostgreSQL reads 0 as "none").
    #[must_use]
    pub fn statement_timeout(mut self, timeout: Duration) -> Self {
        self.statement_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Sets how long a request waits for a connection.
    #[must_use]
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// Sets how long answers about blocks are kept.
    #[must_use]
    pub fn block_cache_ttl(mut self, ttl: Duration) -> Self {
        self.block_cache_ttl = ttl;
        self
    }

    /// Sets how long answers about revocations are kept.
    #[must_use]
    pub fn revocation_cache_ttl(mut self, ttl: Duration) -> Self {
        self.revocation_cache_ttl = ttl;
        self
    }

    /// Sets how often the listener checks its connection (at least 10 ms).
    #[must_use]
    pub fn listener_probe(mut self, every: Duration) -> Self {
        self.listener_probe = every.max(Duration::from_millis(10));
        self
    }
}
