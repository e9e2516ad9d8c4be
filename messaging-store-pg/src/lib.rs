//! PostgreSQL store for `messaging-core`, on sqlx.
//!
//! Everything lives in the library's own schema (default `messaging`) with its own
//! migrations table, so it shares a database with a host application and its own sqlx
//! migrations without either noticing the other. Queries are checked at run time; no
//! database is needed to compile.
//!
//! ```no_run
//! # async fn demo() -> messaging_core::Result<()> {
//! use std::sync::Arc;
//! use messaging_core::Messenger;
//! use messaging_store_pg::{PgOptions, PgStore};
//!
//! let store = PgStore::connect("postgres://app@db/app", PgOptions::default()).await?;
//! let messenger = Messenger::new(Arc::new(store)).await?;
//! # Ok(()) }
//! ```
//!
//! Writes go through one batching writer per store object (see [`writer`]); the feed of
//! committed events comes from a log tailer woken by NOTIFY (see [`feed`]), so several
//! processes on one database deliver each other's events. [`PgStore::fanout`] carries
//! typing and presence signals between them, and [`PgStore::presence`] makes presence
//! right across all of them.

mod blocks;
mod codec;
pub mod feed;
mod log_batch;
pub mod presence;
mod read;
mod schema;
pub mod signals;
mod write;
pub mod writer;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use messaging_core::{
    Appended, CommitHold, Conversation, ConversationId, ConversationPage, ConversationStore,
    ConversationSummary, DeleteMessage, Deleted, EditMessage, Error, EventLog, FeedSink,
    HeldCommit, HistoryWindow, Hub, LoggedEvent, MarkUpdate, Marked, Message, MessageId,
    MessageStore, NewConversation, NewMessage, Opened, Result, SearchQuery, SocialStore,
    StoreHealth, Timestamp, UnreadTotals, UserId,
};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Executor, PgPool};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::blocks::BlockCache;
use crate::codec::db_err;
use crate::feed::Feed;
use crate::presence::{PgPresence, PresenceOptions};
use crate::signals::{PgFanout, SignalSinks};
use crate::writer::{Change, Done, Writer, WriterLimits};

/// Settings of a [`PgStore`].
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

    /// Sets how often the listener checks its connection (at least 10 ms).
    #[must_use]
    pub fn listener_probe(mut self, every: Duration) -> Self {
        self.listener_probe = every.max(Duration::from_millis(10));
        self
    }
}

struct Inner {
    writer: Writer,
    feed: Arc<Feed>,
    pool: PgPool,
    schema: String,
    signals: SignalSinks,
    blocks: Arc<BlockCache>,
    instance: Uuid,
}

/// The NOTIFY channels of a schema.
#[derive(Clone, Debug)]
pub(crate) struct Channels {
    /// The log's new head after each commit.
    pub(crate) log: String,
    /// Typing and presence signals (see `signals.rs`).
    pub(crate) signal: String,
    /// The pair of users of each committed block or unblock (see `blocks.rs`).
    pub(crate) blocks: String,
    /// The listener's probes of its own connection (see `feed.rs`).
    pub(crate) probe: String,
}

impl Channels {
    fn of(schema: &str) -> Self {
        Self {
            log: format!("{schema}_log"),
            signal: format!("{schema}_signal"),
            blocks: format!("{schema}_blocks"),
            probe: format!("{schema}_probe"),
        }
    }
}

/// A [`Store`](messaging_core::Store) in a PostgreSQL database. Cheap to clone.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("schema", &self.inner.schema).finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to the database at `url` (and migrates it unless told not to).
    pub async fn connect(url: &str, options: PgOptions) -> Result<Self> {
        let connect: PgConnectOptions =
            url.parse().map_err(|e| Error::invalid(format!("bad PostgreSQL URL: {e}")))?;
        Self::connect_with(connect, options).await
    }

    /// Connects with prepared connection options.
    pub async fn connect_with(connect: PgConnectOptions, options: PgOptions) -> Result<Self> {
        let schema = schema::validate(&options.schema)?;
        // Set after connecting rather than as startup options, which poolers such as
        // PgBouncer refuse.
        let setup = format!(
            "SET search_path TO \"{schema}\"; SET statement_timeout = {}",
            options.statement_timeout.as_millis().max(1)
        );
        let pool = PgPoolOptions::new()
            .max_connections(
                options.max_connections.max(3 + u32::try_from(options.writers).unwrap_or(u32::MAX)),
            )
            .acquire_timeout(options.acquire_timeout)
            .after_connect(move |conn, _| {
                let setup = setup.clone();
                Box::pin(async move {
                    conn.execute(sqlx::AssertSqlSafe(setup)).await?;
                    Ok(())
                })
            })
            .connect_with(connect)
            .await
            .map_err(db_err)?;
        if options.migrate {
            schema::migrate(&pool, &schema).await?;
        }
        let channels = Channels::of(&schema);
        let signals = SignalSinks::default();
        let blocks = Arc::new(BlockCache::new(options.block_cache_ttl));
        let feed = Feed::new(
            pool.clone(),
            channels.clone(),
            signals.clone(),
            blocks.clone(),
            Arc::new(Notify::new()),
            options.listener_probe,
        );
        let limits = WriterLimits { writers: options.writers, max_batch: options.max_batch };
        let writer = Writer::start(&pool, &channels, limits, &feed);
        Ok(Self {
            inner: Arc::new(Inner {
                writer,
                feed,
                pool,
                schema,
                signals,
                blocks,
                instance: Uuid::now_v7(),
            }),
        })
    }

    /// A fan-out for a [`Messenger`](messaging_core::Messenger) over this store that also
    /// carries typing and presence signals to (and from) the other instances on this
    /// database. `queue_capacity` bounds each session's queue (see
    /// [`Limits::max_queue_frames`](messaging_core::Limits)).
    ///
    /// ```no_run
    /// # async fn demo(store: messaging_store_pg::PgStore) -> messaging_core::Result<()> {
    /// use std::sync::Arc;
    /// use messaging_core::{Limits, Messenger};
    ///
    /// let limits = Limits::default();
    /// let messenger = Messenger::builder(Arc::new(store.clone()))
    ///     .fanout(store.fanout(limits.max_queue_frames))
    ///     .limits(limits)
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn fanout(&self, queue_capacity: usize) -> Arc<PgFanout> {
        let fanout = Arc::new(PgFanout::new(
            Hub::new(queue_capacity),
            self.inner.pool.clone(),
            Channels::of(&self.inner.schema).signal,
            self.inner.instance,
        ));
        self.inner
            .signals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Arc::downgrade(&fanout));
        fanout
    }

    /// A presence for a [`Messenger`](messaging_core::Messenger) over this store, shared
    /// with every instance on the database (see [`PgPresence`]): it registers this
    /// instance, starts its heartbeat, and announces the users of dead instances offline
    /// through `fanout`.
    ///
    /// ```no_run
    /// # async fn demo(store: messaging_store_pg::PgStore) -> messaging_core::Result<()> {
    /// use std::sync::Arc;
    /// use messaging_core::{Limits, Messenger};
    /// use messaging_store_pg::presence::PresenceOptions;
    ///
    /// let fanout = store.fanout(Limits::default().max_queue_frames);
    /// let presence = store.presence(fanout.clone(), PresenceOptions::default()).await?;
    /// let messenger = Messenger::builder(Arc::new(store.clone()))
    ///     .fanout(fanout)
    ///     .presence(presence)
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn presence(
        &self,
        fanout: Arc<PgFanout>,
        options: PresenceOptions,
    ) -> Result<Arc<PgPresence>> {
        let store: Arc<dyn messaging_core::Store> = Arc::new(self.clone());
        let presence =
            PgPresence::start(self.inner.pool.clone(), &self.inner.schema, store, fanout, options)
                .await?;
        Ok(Arc::new(presence))
    }

    /// Applies the library's migrations (idempotent; serialized across processes).
    pub async fn migrate(&self) -> Result<()> {
        schema::migrate(&self.inner.pool, &self.inner.schema).await
    }

    /// The connection pool (its connections have the library's schema on `search_path`).
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    async fn write(&self, change: Change) -> Result<Done> {
        self.inner.writer.write(change).await
    }
}

fn unexpected() -> Error {
    Error::unavailable("the writer answered with an unexpected outcome")
}

#[async_trait]
impl ConversationStore for PgStore {
    async fn open_direct(&self, new: NewConversation) -> Result<Opened> {
        match self.write(Change::Open(new)).await? {
            Done::Opened(opened) => Ok(opened),
            _ => Err(unexpected()),
        }
    }

    async fn conversation(&self, id: ConversationId) -> Result<Option<Conversation>> {
        read::conversation(&self.inner.pool, id).await
    }

    async fn find_direct(
        &self,
        a: UserId,
        b: UserId,
        context: Option<&str>,
    ) -> Result<Option<Conversation>> {
        read::find_direct(&self.inner.pool, a, b, context.unwrap_or("")).await
    }

    async fn conversations(&self, page: ConversationPage) -> Result<Vec<ConversationSummary>> {
        read::conversations(&self.inner.pool, page).await
    }

    async fn mark(&self, update: MarkUpdate) -> Result<Marked> {
        match self.write(Change::Mark(update)).await? {
            Done::Marked(marked) => Ok(marked),
            _ => Err(unexpected()),
        }
    }

    async fn peers(&self, user: UserId) -> Result<Vec<UserId>> {
        read::peers(&self.inner.pool, user).await
    }

    async fn peers_among(&self, user: UserId, candidates: &[UserId]) -> Result<Vec<UserId>> {
        read::peers_among(&self.inner.pool, user, candidates).await
    }
}

#[async_trait]
impl MessageStore for PgStore {
    async fn append(&self, new: NewMessage) -> Result<Appended> {
        match self.write(Change::Append(new)).await? {
            Done::Appended(appended) => Ok(appended),
            _ => Err(unexpected()),
        }
    }

    async fn message(&self, id: MessageId) -> Result<Option<Message>> {
        read::message(&self.inner.pool, id).await
    }

    async fn find_by_client_msg_id(
        &self,
        conversation_id: ConversationId,
        sender_id: UserId,
        client_msg_id: &str,
    ) -> Result<Option<Message>> {
        read::find_by_client_msg_id(&self.inner.pool, conversation_id, sender_id, client_msg_id)
            .await
    }

    async fn history(
        &self,
        conversation_id: ConversationId,
        window: HistoryWindow,
        limit: usize,
    ) -> Result<Vec<Message>> {
        read::history(&self.inner.pool, conversation_id, window, limit).await
    }

    async fn edit(&self, edit: EditMessage) -> Result<Message> {
        match self.write(Change::Edit(edit)).await? {
            Done::Message(message) => Ok(message),
            _ => Err(unexpected()),
        }
    }

    async fn delete(&self, delete: DeleteMessage) -> Result<Deleted> {
        match self.write(Change::Delete(delete)).await? {
            Done::Deleted(deleted) => Ok(deleted),
            _ => Err(unexpected()),
        }
    }

    async fn search(&self, query: SearchQuery) -> Result<Vec<Message>> {
        if query.terms.is_empty() {
            return Ok(Vec::new());
        }
        read::search(&self.inner.pool, &query).await
    }

    async fn unread(&self, user: UserId) -> Result<UnreadTotals> {
        read::unread(&self.inner.pool, user).await
    }
}

#[async_trait]
impl EventLog for PgStore {
    async fn head(&self) -> Result<u64> {
        read::head(&self.inner.pool).await
    }

    async fn read_events(
        &self,
        user: UserId,
        after: u64,
        up_to: u64,
        limit: usize,
    ) -> Result<Vec<LoggedEvent>> {
        read::read_events(&self.inner.pool, user, after, up_to, limit).await
    }

    async fn attach_feed(&self, sink: Arc<dyn FeedSink>) -> Result<()> {
        self.inner.feed.attach(sink).await
    }
}

#[async_trait]
impl SocialStore for PgStore {
    async fn block(&self, blocker: UserId, blocked: UserId, max_blocks: usize) -> Result<()> {
        self.write(Change::Block { blocker, blocked, on: true, max: max_blocks }).await?;
        self.inner.blocks.forget(blocker, blocked);
        Ok(())
    }

    async fn unblock(&self, blocker: UserId, blocked: UserId) -> Result<()> {
        self.write(Change::Block { blocker, blocked, on: false, max: usize::MAX }).await?;
        self.inner.blocks.forget(blocker, blocked);
        Ok(())
    }

    async fn is_blocked_between(&self, a: UserId, b: UserId) -> Result<bool> {
        match self.inner.blocks.get(a, b) {
            Ok(blocked) => Ok(blocked),
            Err(ticket) => {
                let blocked = read::is_blocked_between(&self.inner.pool, a, b).await?;
                self.inner.blocks.keep(ticket, a, b, blocked);
                Ok(blocked)
            }
        }
    }

    async fn set_last_seen(&self, user: UserId, at: Timestamp) -> Result<()> {
        self.write(Change::LastSeen { user, at }).await.map(drop)
    }

    async fn last_seen(&self, users: &[UserId]) -> Result<Vec<(UserId, Timestamp)>> {
        read::last_seen(&self.inner.pool, users).await
    }
}

#[async_trait]
impl StoreHealth for PgStore {
    fn last_commit(&self) -> Option<Instant> {
        self.inner.writer.last_commit()
    }

    async fn probe_commit(&self) -> Result<()> {
        self.write(Change::Probe).await.map(drop)
    }
}

#[async_trait]
impl CommitHold for PgStore {
    async fn hold_next_write(&self) -> Result<HeldCommit> {
        let (held, point) = HeldCommit::pair();
        self.inner.writer.arm_hold(point);
        Ok(held)
    }
}
