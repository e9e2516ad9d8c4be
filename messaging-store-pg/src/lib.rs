//! PostgreSQL store for `messaging-core`, on sqlx.
//!
//! Everything lives in the library's own schema (default `messaging`) with its own
//! migrations table, so it shares a database with a host application and its own sqlx
//! migrations without either noticing the other. Queries are checked at run time; no
//! database is needed to compile.
//!
//! Build the [`Messenger`] with [`PgStore::messenger`]: it comes wired with the store's
//! own fan-out and presence, so typing, presence and every event reach sessions on every
//! process that shares the database. Close the store with [`PgStore::close`] at shutdown.
//!
//! ```no_run
//! # async fn demo() -> messaging_core::Result<()> {
//! use messaging_core::Limits;
//! use messaging_store_pg::{PgOptions, PgStore};
//!
//! let store = PgStore::connect("postgres://app@db/app", PgOptions::default()).await?;
//! let messenger = store.messenger(Limits::default()).await?;
//! // … serve; then, at shutdown:
//! store.close().await?;
//! # Ok(()) }
//! ```
//!
//! Writes go through one batching writer per store object (`writer.rs`); the feed of
//! committed events comes from a log tailer woken by NOTIFY (`feed.rs`), so several
//! processes on one database deliver each other's events. [`PgFanout`] carries typing and
//! presence signals between them, and [`PgPresence`] makes presence right across all of
//! them; [`PgStore::fanout`] and [`PgStore::presence`] make them for a host that builds its
//! messenger itself (with an access policy, or its own presence timing).

mod blocks;
mod change;
mod channels;
mod codec;
mod consumers;
mod error;
mod event_rows;
mod feed;
mod instance;
mod kept;
mod lists;
mod log_batch;
mod options;
pub mod presence;
mod reactions;
mod read;
mod revocations;
mod schema;
mod settings;
pub mod signals;
#[cfg(test)]
mod test_database;
mod transfer;
mod write;
mod writer;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use messaging_core::fanout::Hub;
use messaging_core::id::{ConversationId, MessageId, UserId};
use messaging_core::model::{
    Conversation, ConversationSummary, LogEntry, LoggedEvent, Message, UnreadTotals,
};
use messaging_core::store::{
    Appended, ConsumerLog, ContextPage, ConversationPage, ConversationStore, DeleteMessage,
    Deleted, EditMessage, EventLog, FeedSink, HistoryWindow, MarkUpdate, Marked, MemberUpdate,
    MemberUpdated, MessageStore, MetadataUpdate, MetadataUpdated, NewConversation, NewMessage,
    Opened, Reacted, ReactionUpdate, SearchQuery, SocialStore, Store, StoreHealth,
};
#[cfg(feature = "testkit")]
use messaging_core::testkit::{CommitHold, HeldCommit};
use messaging_core::time::Timestamp;
use messaging_core::transfer::{
    After, Checkpoint, ImportState, Records, Section, StoreExport, StoreImport,
};
use messaging_core::{Error, Limits, Messenger, Result};
use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;
use uuid::Uuid;

use crate::change::Change;
use crate::channels::Channels;
use crate::instance::Instance;
pub use crate::options::PgOptions;
use crate::presence::{PgPresence, PresenceOptions};
use crate::signals::PgFanout;
use crate::write::Blocking;

/// A [`Store`] in a PostgreSQL database. Cheap to clone: clones share one writer, one
/// feed and one pool.
///
/// # Stopping
///
/// Call [`PgStore::close`] when you can await: it finishes the writes already queued,
/// says goodbye for the presences made over the store, stops its tasks and waits for
/// them. Dropping the last clone without closing is the fallback: the tasks are aborted,
/// writes still queued are answered `unavailable`, and this instance's users stay online
/// for the other instances until the presence timeout.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Instance>,
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
        Ok(Self { inner: Arc::new(Instance::start(connect, options).await?) })
    }

    /// The way to build a [`Messenger`] on PostgreSQL: over this store, with its fan-out
    /// ([`PgStore::fanout`]) and its presence ([`PgStore::presence`], default timing), so
    /// that typing and presence reach the sessions of every instance on the database, as
    /// the events do. `limits` bound the messenger (and each session's queue).
    ///
    /// [`Messenger::new`] over a `PgStore` would keep typing and presence inside this
    /// process. [`PgStore::close`] says this presence's goodbye.
    ///
    /// ```no_run
    /// # async fn demo(store: messaging_store_pg::PgStore) -> messaging_core::Result<()> {
    /// use messaging_core::Limits;
    ///
    /// let messenger = store.messenger(Limits::default()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn messenger(&self, limits: Limits) -> Result<Messenger> {
        let fanout = self.fanout(limits.max_queue_frames);
        let presence = self.presence(fanout.clone(), PresenceOptions::default()).await?;
        let built = Messenger::builder(Arc::new(self.clone()))
            .fanout(fanout)
            .presence(presence.clone())
            .limits(limits)
            .build()
            .await;
        if built.is_err()
            && let Err(error) = presence.close().await
        {
            tracing::warn!(%error, "presence goodbye failed; its rows expire instead");
        }
        built
    }

    /// A fan-out for a [`Messenger`] over this store that also carries typing and
    /// presence signals to (and from) the other instances on this database, for a host
    /// that builds its messenger itself ([`PgStore::messenger`] does this for you).
    /// `queue_capacity` bounds each session's queue (see
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
            self.inner.id,
        ));
        self.inner
            .signals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Arc::downgrade(&fanout));
        fanout
    }

    /// A presence for a [`Messenger`] over this store, shared with every instance on the
    /// database (see [`PgPresence`]), for a host that builds its messenger itself
    /// ([`PgStore::messenger`] does this for you): it registers this instance, starts its
    /// heartbeat, and announces the users of dead instances offline through `fanout`.
    /// [`PgStore::close`] says its goodbye.
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
        let inner = self.inner.live()?;
        let store: Arc<dyn Store> = Arc::new(self.clone());
        let presence = Arc::new(
            PgPresence::start(inner.pool.clone(), &inner.schema, store, fanout, options).await?,
        );
        inner.keep_presence(&presence);
        Ok(presence)
    }

    /// Closes the store, waiting for each part: the writes already queued commit and are
    /// answered, the presences made over it say goodbye (their users go offline on every
    /// instance at once), the log tailer, the listener and the writer tasks end, and the
    /// pool closes (after connections taken with [`PgStore::pool`] are returned).
    ///
    /// Use it when you can await; dropping the store is the fallback (see [`PgStore`]).
    /// Afterwards every call on the store, on any clone, fails with `unavailable` ("the
    /// PostgreSQL store is closed"). Closing again does nothing. Everything is stopped
    /// even when a presence's goodbye fails; that error is returned.
    pub async fn close(&self) -> Result<()> {
        self.inner.close().await
    }

    /// Applies the library's migrations (idempotent; serialized across processes).
    pub async fn migrate(&self) -> Result<()> {
        let inner = self.inner.live()?;
        Ok(schema::migrate(&inner.pool, &inner.schema).await?)
    }

    /// The connection pool (its connections have the library's schema on `search_path`).
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }
}

#[async_trait]
impl ConversationStore for PgStore {
    async fn open_direct(&self, new: NewConversation) -> Result<Opened> {
        self.inner.live()?.writer.submit(new, Change::Open).await
    }

    async fn conversation(&self, id: ConversationId) -> Result<Option<Conversation>> {
        Ok(read::conversation(&self.inner.live()?.pool, id).await?)
    }

    async fn find_direct(
        &self,
        a: UserId,
        b: UserId,
        context: Option<&str>,
    ) -> Result<Option<Conversation>> {
        Ok(read::find_direct(&self.inner.live()?.pool, a, b, context.unwrap_or("")).await?)
    }

    async fn conversations(&self, page: ConversationPage) -> Result<Vec<ConversationSummary>> {
        Ok(lists::conversations(&self.inner.live()?.pool, page).await?)
    }

    async fn summary(
        &self,
        user: UserId,
        id: ConversationId,
    ) -> Result<Option<ConversationSummary>> {
        Ok(lists::summary_of(&self.inner.live()?.pool, user, id).await?)
    }

    async fn conversations_by_context(&self, page: ContextPage) -> Result<Vec<Conversation>> {
        Ok(lists::by_context(&self.inner.live()?.pool, page).await?)
    }

    async fn mark(&self, update: MarkUpdate) -> Result<Marked> {
        self.inner.live()?.writer.submit(update, Change::Mark).await
    }

    async fn update_member(&self, update: MemberUpdate) -> Result<MemberUpdated> {
        self.inner.live()?.writer.submit(update, Change::UpdateMember).await
    }

    async fn set_metadata(&self, update: MetadataUpdate) -> Result<MetadataUpdated> {
        self.inner.live()?.writer.submit(update, Change::SetMetadata).await
    }

    async fn peers(&self, user: UserId) -> Result<Vec<UserId>> {
        Ok(read::peers(&self.inner.live()?.pool, user).await?)
    }

    async fn peers_among(&self, user: UserId, candidates: &[UserId]) -> Result<Vec<UserId>> {
        Ok(read::peers_among(&self.inner.live()?.pool, user, candidates).await?)
    }
}

#[async_trait]
impl MessageStore for PgStore {
    async fn append(&self, new: NewMessage) -> Result<Appended> {
        self.inner.live()?.writer.submit(new, Change::Append).await
    }

    async fn message(&self, id: MessageId) -> Result<Option<Message>> {
        Ok(read::message(&self.inner.live()?.pool, id).await?)
    }

    async fn find_by_client_msg_id(
        &self,
        conversation_id: ConversationId,
        sender_id: UserId,
        client_msg_id: &str,
    ) -> Result<Option<Message>> {
        let pool = &self.inner.live()?.pool;
        Ok(read::find_by_client_msg_id(pool, conversation_id, sender_id, client_msg_id).await?)
    }

    async fn history(
        &self,
        conversation_id: ConversationId,
        window: HistoryWindow,
        limit: usize,
    ) -> Result<Vec<Message>> {
        Ok(read::history(&self.inner.live()?.pool, conversation_id, window, limit).await?)
    }

    async fn edit(&self, edit: EditMessage) -> Result<Message> {
        self.inner.live()?.writer.submit(edit, Change::Edit).await
    }

    async fn delete(&self, delete: DeleteMessage) -> Result<Deleted> {
        self.inner.live()?.writer.submit(delete, Change::Delete).await
    }

    async fn react(&self, update: ReactionUpdate) -> Result<Reacted> {
        self.inner.live()?.writer.submit(update, Change::React).await
    }

    async fn search(&self, query: SearchQuery) -> Result<Vec<Message>> {
        let inner = self.inner.live()?;
        if query.terms.is_empty() {
            return Ok(Vec::new());
        }
        Ok(read::search(&inner.pool, &query).await?)
    }

    async fn unread(&self, user: UserId, now: Timestamp) -> Result<UnreadTotals> {
        Ok(read::unread(&self.inner.live()?.pool, user, now).await?)
    }
}

#[async_trait]
impl EventLog for PgStore {
    async fn head(&self) -> Result<u64> {
        Ok(read::head(&self.inner.live()?.pool).await?)
    }

    async fn read_events(
        &self,
        user: UserId,
        after: u64,
        up_to: u64,
        limit: usize,
    ) -> Result<Vec<LoggedEvent>> {
        Ok(read::read_events(&self.inner.live()?.pool, user, after, up_to, limit).await?)
    }

    async fn attach_feed(&self, sink: Arc<dyn FeedSink>) -> Result<()> {
        Ok(self.inner.live()?.feed.attach(sink).await?)
    }
}

#[async_trait]
impl SocialStore for PgStore {
    async fn block(&self, blocker: UserId, blocked: UserId, max_blocks: usize) -> Result<()> {
        let inner = self.inner.live()?;
        let blocking = Blocking { blocker, blocked };
        inner.writer.submit((blocking, max_blocks), Change::Block).await?;
        inner.blocks.forget(blocker, blocked);
        Ok(())
    }

    async fn unblock(&self, blocker: UserId, blocked: UserId) -> Result<()> {
        let inner = self.inner.live()?;
        inner.writer.submit(Blocking { blocker, blocked }, Change::Unblock).await?;
        inner.blocks.forget(blocker, blocked);
        Ok(())
    }

    async fn is_blocked_between(&self, a: UserId, b: UserId) -> Result<bool> {
        let inner = self.inner.live()?;
        match inner.blocks.get(a, b) {
            Ok(blocked) => Ok(blocked),
            Err(ticket) => {
                let blocked = read::is_blocked_between(&inner.pool, a, b).await?;
                inner.blocks.keep(ticket, a, b, blocked);
                Ok(blocked)
            }
        }
    }

    async fn blocks(
        &self,
        blocker: UserId,
        after: Option<UserId>,
        limit: usize,
    ) -> Result<Vec<UserId>> {
        Ok(read::blocks(&self.inner.live()?.pool, blocker, after, limit).await?)
    }

    async fn set_last_seen(&self, user: UserId, at: Timestamp) -> Result<()> {
        self.inner.live()?.writer.submit((user, at), Change::LastSeen).await
    }

    async fn last_seen(&self, users: &[UserId]) -> Result<Vec<(UserId, Timestamp)>> {
        Ok(read::last_seen(&self.inner.live()?.pool, users).await?)
    }

    async fn revoke(&self, user: UserId, at: Timestamp) -> Result<()> {
        let inner = self.inner.live()?;
        inner.writer.submit((user, at), Change::Revoke).await?;
        inner.revocations.forget(user);
        Ok(())
    }

    /// Answered from memory while that is safe (see `revocations.rs`): a revocation made
    /// through this store object is seen at once; one made through another is seen once
    /// its notification arrives, and within `PgOptions::revocation_cache_ttl` at worst.
    async fn revoked_at(&self, user: UserId) -> Result<Option<Timestamp>> {
        let inner = self.inner.live()?;
        match inner.revocations.get(user) {
            Ok(at) => Ok(at),
            Err(ticket) => {
                let at = read::revoked_at(&inner.pool, user).await?;
                inner.revocations.keep(ticket, user, at);
                Ok(at)
            }
        }
    }
}

/// Reads and lease statements go straight to the pool, not through the writer (see
/// `consumers.rs`); lease times are the database server's clock.
#[async_trait]
impl ConsumerLog for PgStore {
    async fn read_log(&self, after: u64, up_to: u64, limit: usize) -> Result<Vec<LogEntry>> {
        Ok(read::read_log(&self.inner.live()?.pool, after, up_to, limit).await?)
    }

    async fn claim_consumer(
        &self,
        name: &str,
        holder: Uuid,
        lease: Duration,
        start: u64,
    ) -> Result<Option<u64>> {
        Ok(consumers::claim(&self.inner.live()?.pool, name, holder, lease, start).await?)
    }

    async fn commit_consumer(
        &self,
        name: &str,
        holder: Uuid,
        position: u64,
        lease: Duration,
    ) -> Result<bool> {
        Ok(consumers::commit(&self.inner.live()?.pool, name, holder, position, lease).await?)
    }

    async fn release_consumer(&self, name: &str, holder: Uuid) -> Result<()> {
        Ok(consumers::release(&self.inner.live()?.pool, name, holder).await?)
    }
}

/// The store read out for a move (see `transfer/export.rs`): each page one statement on
/// the pool, along a primary key.
#[async_trait]
impl StoreExport for PgStore {
    async fn export(&self, section: Section, after: &After, limit: usize) -> Result<Records> {
        Ok(transfer::export(&self.inner.live()?.pool, section, after, limit).await?)
    }

    async fn count(&self, section: Section) -> Result<u64> {
        Ok(transfer::count(&self.inner.live()?.pool, section).await?)
    }
}

/// Another store's contents taken in (see `transfer/import.rs`): on the pool, not through
/// the writer, each page with its checkpoint in one transaction. For a store nobody serves
/// from until the import has finished.
#[async_trait]
impl StoreImport for PgStore {
    async fn import_state(&self) -> Result<ImportState> {
        Ok(transfer::import_state(&self.inner.live()?.pool).await?)
    }

    async fn import(&self, records: &Records, checkpoint: &Checkpoint) -> Result<()> {
        Ok(transfer::import(&self.inner.live()?.pool, records, checkpoint).await?)
    }

    async fn finish_import(&self, head: u64) -> Result<()> {
        Ok(transfer::finish(&self.inner.live()?.pool, head).await?)
    }
}

#[async_trait]
impl StoreHealth for PgStore {
    fn last_commit(&self) -> Option<Instant> {
        self.inner.writer.last_commit()
    }

    async fn probe_commit(&self) -> Result<()> {
        self.inner.live()?.writer.submit((), Change::Probe).await
    }
}

/// The interleaving cases' seam (feature `testkit`): holds the next batch that logs
/// events after it has taken its positions.
#[cfg(feature = "testkit")]
#[async_trait]
impl CommitHold for PgStore {
    async fn hold_next_write(&self) -> Result<HeldCommit> {
        let (held, point) = HeldCommit::pair();
        self.inner.live()?.writer.arm_hold(point);
        Ok(held)
    }
}
