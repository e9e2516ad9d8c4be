//! SQLite store for `messaging-core`: the embedded default.
//!
//! One file, WAL journal, one writer thread with group commit (see "Durability" below, and
//! the `writer` module of the source), a small pool of read connections, FTS5 search in a
//! file beside the database (indexed from the event log on its own thread), and migrations
//! on a `user_version` ladder. Close the store with [`SqliteStore::close`] when you can
//! await (see [Closing](SqliteStore#closing)).
//!
//! ```no_run
//! # async fn demo() -> messaging_core::Result<()> {
//! use std::sync::Arc;
//! use messaging_core::Messenger;
//! use messaging_store_sqlite::SqliteStore;
//!
//! let store = Arc::new(SqliteStore::open("messaging.db").await?);
//! let messenger = Messenger::new(store.clone()).await?;
//! // … serve, then at shutdown:
//! store.close().await?;
//! # Ok(()) }
//! ```
//!
//! One process writes a database file at a time: log positions are assigned by the
//! writer thread in memory. The same holds for what is asked on every send or request:
//! the blocks are held in memory, and the revocations asked about are kept there, both
//! updated by the writer thread as their writes commit, so a change made through the
//! store is seen by the next call; one written into the file by other means is seen only
//! after reopening.
//!
//! ## Durability
//!
//! [`Synchronous::Full`] (the default) fsyncs the WAL at every commit: a reply means the
//! message survives a power cut. [`Synchronous::Normal`] skips that fsync; a power cut
//! (not a process crash) may lose the last commits. Group commit makes `Full` cheap under
//! concurrent load, since one fsync covers a whole batch.
//!
//! ## Files
//!
//! Beside the database `<file>`, SQLite keeps `<file>-wal` and `<file>-shm`, and this store
//! keeps its full-text index in `<file>-search` (with its own `-wal` and `-shm`). The index
//! is derived from the database's event log and rebuilt when it is missing or belongs to
//! another database, so a backup needs only the database (taken with SQLite's backup API
//! or `VACUUM INTO`, as for any WAL database).
//!
//! The store creates the database and the search file readable by their owner only (0600),
//! and SQLite gives their `-wal` and `-shm` files the same mode; files that already exist
//! keep theirs (a warning is logged when others may read them).
//!
//! ## Building SQLite
//!
//! `rusqlite` compiles SQLite from source (`bundled`); `libsqlite3-sys` takes extra
//! compile-time options from the `LIBSQLITE3_FLAGS` environment variable. This repository
//! sets, in `.cargo/config.toml`, and recommends for applications that embed the store:
//!
//! ```toml
//! [env]
//! LIBSQLITE3_FLAGS = "-DHAVE_FDATASYNC=1 -DSQLITE_DEFAULT_MEMSTATUS=0"
//! ```
//!
//! `HAVE_FDATASYNC`: SQLite otherwise calls `fsync`, which also writes the file's inode
//! (its modification time) at every commit, a second disk write per durable commit on
//! Linux. `SQLITE_DEFAULT_MEMSTATUS=0`: no global mutex around SQLite's allocations. Both
//! are among SQLite's recommended options; without them the store is correct, only slower.

// The modules import one way only: each uses only modules listed below it here (their
// `//!` docs say what each is for). Keep it so when moving items: shared vocabulary goes
// down to `vocab`, `codec` or `error`, never sideways.
//
//   writer        the writer thread, its group commit and its close
//   write         the SQL of every mutation (a module per concern), and the `WriteCtx` a
//                 mutation is given
//   read          the read pool and the SQL of every read (a module per concern)
//   search_index  the full-text index file and its indexer thread
//   checkpointer  WAL checkpoints on their own thread
//   blocks        the blocks, held in memory
//   revocations   the revocations asked about, kept in memory
//   schema        the migration ladder
//   files         who may read the store's files
//   codec         rows to and from the core model
//   vocab         what stored values mean (event kinds, activity buckets)
//   error         the internal error and its one conversion to the core error
mod blocks;
mod checkpointer;
mod codec;
mod error;
mod files;
mod read;
mod revocations;
mod schema;
mod search_index;
mod vocab;
mod write;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use messaging_core::id::{ConversationId, MessageId, UserId};
use messaging_core::model::{
    Conversation, ConversationSummary, LogEntry, LoggedEvent, Message, UnreadTotals,
};
use messaging_core::store::{
    Appended, ConsumerLog, ContextPage, ConversationPage, ConversationStore, DeleteMessage,
    Deleted, EditMessage, EventLog, FeedSink, HistoryWindow, MarkUpdate, Marked, MemberUpdate,
    MemberUpdated, MessageStore, MetadataUpdate, MetadataUpdated, NewConversation, NewMessage,
    Opened, Reacted, ReactionUpdate, SearchQuery, SocialStore, StoreHealth,
};
use messaging_core::time::Timestamp;
use messaging_core::transfer::{After, Records, Section, StoreExport};
use messaging_core::{Error, Result};
use rusqlite::Connection;
use uuid::Uuid;

pub use schema::SCHEMA_VERSION;

use crate::blocks::BlockSet;
use crate::error::StoreResult;
use crate::read::ReadPool;
use crate::revocations::Revocations;
use crate::search_index::SearchIndex;
use crate::writer::Writer;

/// When SQLite fsyncs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Synchronous {
    /// fsync at every commit (default): durable against power loss.
    #[default]
    Full,
    /// fsync only at checkpoints: durable against process crashes, not power loss.
    Normal,
}

impl Synchronous {
    /// The `PRAGMA synchronous` value (`FULL` or `NORMAL`).
    #[must_use]
    pub fn pragma(self) -> &'static str {
        match self {
            Self::Full => "FULL",
            Self::Normal => "NORMAL",
        }
    }
}

/// Settings of a [`SqliteStore`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqliteOptions {
    /// fsync policy (default [`Synchronous::Full`]).
    pub synchronous: Synchronous,
    /// Read connections (default 4).
    pub readers: usize,
    /// Most jobs the writer commits in one transaction (default 512).
    pub max_batch: usize,
    /// The longest a read query may run before it is interrupted and answered
    /// `Unavailable` ("the query took too long"); default 2 s, well within the server's
    /// answer bound, so a query that would pass it frees its connection instead of holding
    /// it after the caller has gone.
    pub read_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            synchronous: Synchronous::Full,
            readers: 4,
            max_batch: 512,
            read_timeout: Duration::from_secs(2),
        }
    }
}

impl SqliteOptions {
    /// Sets the fsync policy.
    #[must_use]
    pub fn synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// Sets the number of read connections.
    #[must_use]
    pub fn readers(mut self, readers: usize) -> Self {
        self.readers = readers.max(1);
        self
    }

    /// Sets the longest a read query may run (see [`SqliteOptions::read_timeout`]).
    #[must_use]
    pub fn read_timeout(mut self, bound: Duration) -> Self {
        self.read_timeout = bound;
        self
    }
}

/// Field order matters: the read connections close first, so the writer's connection is
/// the last one and checkpoints the WAL into the file (a read-only connection cannot).
/// [`SqliteStore::close`] closes them in the same order.
struct Inner {
    /// Shared with the writer thread, which updates them as blocks and revocations commit.
    blocks: Arc<BlockSet>,
    revocations: Arc<Revocations>,
    readers: ReadPool,
    // Whatever the indexer has not reached when it stops is indexed at the next open.
    search: SearchIndex,
    writer: Writer,
    path: PathBuf,
    /// Held by [`SqliteStore::close`], so that a second call returns once the first is done.
    closing: tokio::sync::Mutex<()>,
}

/// A [`Store`](messaging_core::store::Store) in one SQLite file. Cheap to clone; dropping the
/// last clone finishes queued writes and closes the file.
///
/// ## Closing
///
/// Prefer [`SqliteStore::close`] wherever you can await, e.g. at the end of a server's
/// shutdown: it commits the writes already queued and closes the file, and it waits for
/// the store's threads on a blocking thread, so the runtime's threads stay free. Any clone
/// can call it (the store shared as `Arc<SqliteStore>` too); every call after it, on any
/// clone, fails with `Unavailable` ("the SQLite store is closed").
///
/// Dropping the last clone is the fallback: it does the same work, but blocks the thread it
/// runs on (in async code, a runtime worker) until the queued writes are committed and the
/// threads have ended. After `close`, dropping has nothing left to wait for.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.inner.path).finish()
    }
}

impl SqliteStore {
    /// Opens (creating and migrating if needed) the database at `path` with the defaults.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, SqliteOptions::default()).await
    }

    /// Opens the database at `path` with `options`. A database whose schema is newer than
    /// this build refuses to open with `Unavailable`.
    pub async fn open_with(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let inner = tokio::task::spawn_blocking(move || open_inner(path, &options))
            .await
            .map_err(Error::backend)??;
        Ok(Self { inner: Arc::new(inner) })
    }

    /// Closes the store: the writes queued before the call are committed and answered,
    /// then every connection closes (the WAL is folded back into the database file and
    /// removed) and the store's threads end. It waits on a blocking thread, never on the
    /// runtime's. Every call after it, on this or any clone, fails with `Unavailable` ("the
    /// SQLite store is closed"); calling it again is harmless. Reads running when it is
    /// called finish first (each within [`SqliteOptions::read_timeout`]).
    ///
    /// Prefer it to dropping the store, which does the same but blocks the dropping thread
    /// (see [Closing](SqliteStore#closing)).
    pub async fn close(&self) -> Result<()> {
        let _one_at_a_time = self.inner.closing.lock().await;
        // Refuse new writes first, so nothing starts after this call began; the writer
        // thread then drains its queue while the readers close.
        self.inner.writer.stop_taking().await;
        // The read-only connections close before the read-write ones, whose last one folds
        // the WAL back into the file (see `Inner`).
        self.inner.readers.close().await?;
        self.inner.search.close().await?;
        self.inner.writer.join().await
    }

    /// The database file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Resolves once the search index (kept in `<file>-search` by its own thread, a
    /// fraction of a second behind the writer) covers every message committed before the
    /// call. Searches wait for this themselves; it is for callers that want the index
    /// complete before they go on, e.g. after a bulk import.
    pub async fn wait_for_search_index(&self) -> Result<()> {
        self.inner.search.caught_up().await
    }

    /// The work read queries have done since the store opened, in thousands of SQLite
    /// virtual-machine instructions (counted by the progress handler that bounds each
    /// query's time). A diagnostic: comparing it before and after a query shows how much the
    /// query did, independently of the machine's speed.
    #[must_use]
    pub fn read_work(&self) -> u64 {
        self.inner.readers.work()
    }

    async fn read<T, F>(&self, query: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.inner.readers.read(query).await
    }
}

/// Opens the write connection (migrating), the search index, the readers, the checkpoint
/// connection and the writer, in that order; blocking.
fn open_inner(path: PathBuf, options: &SqliteOptions) -> StoreResult<Inner> {
    files::create_private(&path)?;
    let mut conn = Connection::open(&path)?;
    conn.busy_timeout(writer::BUSY_TIMEOUT)?;
    // Small pages: a commit writes every page it dirtied to the WAL, and the writes of
    // many conversations land on scattered index pages.
    conn.pragma_update(None, "page_size", 2048)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", options.synchronous.pragma())?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // 64 MiB of page cache for the writer: index pages stay hot between batches.
    conn.pragma_update(None, "cache_size", -65_536)?;
    // A backstop only: the checkpointer thread normally keeps the WAL short.
    conn.pragma_update(None, "wal_autocheckpoint", 16_384)?;
    // A WAL file keeps its largest size when the WAL restarts: cut it back to the bound
    // then (see the checkpointer for why the bound is not lower).
    conn.pragma_update(None, "journal_size_limit", checkpointer::WAL_LIMIT_BYTES)?;
    conn.set_prepared_statement_cache_capacity(64);
    schema::migrate(&mut conn)?;
    let head = read::head(&conn)?;
    let indexed_upto = read::audience_indexed_upto(&conn)?;
    let blocks = Arc::new(BlockSet::load(&conn)?);
    let revocations =
        Arc::new(Revocations::new(read::all_revocations(&conn, revocations::MAX_USERS)?));
    let search_path = search_index::path_beside(&path);
    let (search_conn, search_upto) =
        search_index::open(&search_path, read::instance(&conn)?, head)?;
    let search = SearchIndex::start(read::open_read_only(&path)?, search_conn, search_upto, head)?;
    let readers = ReadPool::open(&path, &search_path, options.readers, options.read_timeout)?;
    let checkpoint_conn = Connection::open(&path)?;
    checkpoint_conn.busy_timeout(Duration::from_secs(5))?;
    checkpoint_conn.pragma_update(None, "synchronous", options.synchronous.pragma())?;
    let writer = Writer::start(
        conn,
        checkpoint_conn,
        head,
        indexed_upto,
        options.max_batch,
        search.shared(),
    )?;
    Ok(Inner {
        blocks,
        revocations,
        readers,
        search,
        writer,
        path,
        closing: tokio::sync::Mutex::new(()),
    })
}

#[async_trait]
impl ConversationStore for SqliteStore {
    async fn open_direct(&self, new: NewConversation) -> Result<Opened> {
        self.inner.writer.write(move |ctx| write::open_direct(ctx, &new)).await
    }

    async fn conversation(&self, id: ConversationId) -> Result<Option<Conversation>> {
        self.read(move |conn| read::conversation(conn, id)).await
    }

    async fn find_direct(
        &self,
        a: UserId,
        b: UserId,
        context: Option<&str>,
    ) -> Result<Option<Conversation>> {
        let context = context.unwrap_or("").to_owned();
        self.read(move |conn| read::find_direct(conn, a, b, &context)).await
    }

    async fn conversations(&self, page: ConversationPage) -> Result<Vec<ConversationSummary>> {
        self.read(move |conn| read::conversations(conn, &page)).await
    }

    async fn summary(
        &self,
        user: UserId,
        id: ConversationId,
    ) -> Result<Option<ConversationSummary>> {
        self.read(move |conn| read::summary(conn, user, id)).await
    }

    async fn conversations_by_context(&self, page: ContextPage) -> Result<Vec<Conversation>> {
        self.read(move |conn| read::conversations_by_context(conn, &page)).await
    }

    async fn mark(&self, update: MarkUpdate) -> Result<Marked> {
        self.inner.writer.write(move |ctx| write::mark(ctx, &update)).await
    }

    async fn update_member(&self, update: MemberUpdate) -> Result<MemberUpdated> {
        self.inner.writer.write(move |ctx| write::update_member(ctx, &update)).await
    }

    async fn set_metadata(&self, update: MetadataUpdate) -> Result<MetadataUpdated> {
        self.inner.writer.write(move |ctx| write::set_metadata(ctx, &update)).await
    }

    async fn peers(&self, user: UserId) -> Result<Vec<UserId>> {
        self.read(move |conn| read::peers(conn, user)).await
    }

    async fn peers_among(&self, user: UserId, candidates: &[UserId]) -> Result<Vec<UserId>> {
        let peers = self.peers(user).await?;
        let mut among: Vec<UserId> = Vec::new();
        for candidate in candidates {
            if peers.contains(candidate) && !among.contains(candidate) {
                among.push(*candidate);
            }
        }
        Ok(among)
    }
}

#[async_trait]
impl MessageStore for SqliteStore {
    async fn append(&self, new: NewMessage) -> Result<Appended> {
        self.inner.writer.write(move |ctx| write::append(ctx, &new)).await
    }

    async fn message(&self, id: MessageId) -> Result<Option<Message>> {
        self.read(move |conn| read::message(conn, id)).await
    }

    async fn find_by_client_msg_id(
        &self,
        conversation_id: ConversationId,
        sender_id: UserId,
        client_msg_id: &str,
    ) -> Result<Option<Message>> {
        let key = client_msg_id.to_owned();
        self.read(move |conn| {
            read::find_by_client_msg_id(conn, conversation_id, Some(sender_id), &key)
        })
        .await
    }

    async fn history(
        &self,
        conversation_id: ConversationId,
        window: HistoryWindow,
        limit: usize,
    ) -> Result<Vec<Message>> {
        self.read(move |conn| read::history(conn, conversation_id, window, limit)).await
    }

    async fn edit(&self, edit: EditMessage) -> Result<Message> {
        self.inner.writer.write(move |ctx| write::edit(ctx, &edit)).await
    }

    async fn delete(&self, delete: DeleteMessage) -> Result<Deleted> {
        self.inner.writer.write(move |ctx| write::delete(ctx, &delete)).await
    }

    async fn react(&self, update: ReactionUpdate) -> Result<Reacted> {
        self.inner.writer.write(move |ctx| write::react(ctx, &update)).await
    }

    async fn search(&self, query: SearchQuery) -> Result<Vec<Message>> {
        self.inner.writer.ensure_open()?;
        if query.terms.is_empty() {
            return Ok(Vec::new());
        }
        self.inner.search.caught_up().await?;
        self.read(move |conn| read::search(conn, &query)).await
    }

    async fn unread(&self, user: UserId, now: Timestamp) -> Result<UnreadTotals> {
        self.read(move |conn| read::unread(conn, user, now)).await
    }
}

#[async_trait]
impl EventLog for SqliteStore {
    async fn head(&self) -> Result<u64> {
        self.read(read::head).await
    }

    async fn read_events(
        &self,
        user: UserId,
        after: u64,
        up_to: u64,
        limit: usize,
    ) -> Result<Vec<LoggedEvent>> {
        self.inner.writer.ensure_indexed(up_to).await?;
        self.read(move |conn| read::read_events(conn, user, after, up_to, limit)).await
    }

    async fn attach_feed(&self, sink: Arc<dyn FeedSink>) -> Result<()> {
        self.inner.writer.attach(&sink).await
    }
}

#[async_trait]
impl SocialStore for SqliteStore {
    async fn block(&self, blocker: UserId, blocked: UserId, max_blocks: usize) -> Result<()> {
        let blocks = self.inner.blocks.clone();
        self.inner
            .writer
            .write_then(
                move |ctx| write::block(ctx, blocker, blocked, max_blocks),
                move |()| blocks.set(blocker, blocked, true),
            )
            .await
    }

    async fn unblock(&self, blocker: UserId, blocked: UserId) -> Result<()> {
        let blocks = self.inner.blocks.clone();
        self.inner
            .writer
            .write_then(
                move |ctx| write::unblock(ctx, blocker, blocked),
                move |()| blocks.set(blocker, blocked, false),
            )
            .await
    }

    async fn is_blocked_between(&self, a: UserId, b: UserId) -> Result<bool> {
        // Answered from memory, so the closed store is noticed here, not by a connection.
        self.inner.writer.ensure_open()?;
        Ok(self.inner.blocks.between(a, b))
    }

    async fn blocks(
        &self,
        blocker: UserId,
        after: Option<UserId>,
        limit: usize,
    ) -> Result<Vec<UserId>> {
        self.read(move |conn| read::blocks(conn, blocker, after, limit)).await
    }

    async fn set_last_seen(&self, user: UserId, at: Timestamp) -> Result<()> {
        self.inner.writer.write(move |ctx| write::set_last_seen(ctx, user, at)).await
    }

    async fn last_seen(&self, users: &[UserId]) -> Result<Vec<(UserId, Timestamp)>> {
        let users = users.to_vec();
        self.read(move |conn| read::last_seen(conn, &users)).await
    }

    async fn revoke(&self, user: UserId, at: Timestamp) -> Result<()> {
        let revocations = self.inner.revocations.clone();
        self.inner
            .writer
            .write_then(
                move |ctx| write::revoke(ctx, user, at),
                move |stored| revocations.committed(user, *stored),
            )
            .await
            .map(drop)
    }

    async fn revoked_at(&self, user: UserId) -> Result<Option<Timestamp>> {
        // Often answered from memory, so the closed store is noticed here.
        self.inner.writer.ensure_open()?;
        match self.inner.revocations.get(user) {
            Ok(at) => Ok(at),
            Err(ticket) => {
                let at = self.read(move |conn| read::revoked_at(conn, user)).await?;
                self.inner.revocations.keep(ticket, user, at);
                Ok(at)
            }
        }
    }
}

/// Reads go to the pool; claims, commits and releases are writes like any other, through
/// the writer (their lease times are this process's clock: see `write/consumers.rs`).
#[async_trait]
impl ConsumerLog for SqliteStore {
    async fn read_log(&self, after: u64, up_to: u64, limit: usize) -> Result<Vec<LogEntry>> {
        self.read(move |conn| read::read_log(conn, after, up_to, limit)).await
    }

    async fn claim_consumer(
        &self,
        name: &str,
        holder: Uuid,
        lease: Duration,
        start: u64,
    ) -> Result<Option<u64>> {
        let name = name.to_owned();
        self.inner
            .writer
            .write(move |ctx| write::claim_consumer(ctx, &name, holder, lease, start))
            .await
    }

    async fn commit_consumer(
        &self,
        name: &str,
        holder: Uuid,
        position: u64,
        lease: Duration,
    ) -> Result<bool> {
        let name = name.to_owned();
        self.inner
            .writer
            .write(move |ctx| write::commit_consumer(ctx, &name, holder, position, lease))
            .await
    }

    async fn release_consumer(&self, name: &str, holder: Uuid) -> Result<()> {
        let name = name.to_owned();
        self.inner.writer.write(move |ctx| write::release_consumer(ctx, &name, holder)).await
    }
}

/// The store read out for a move (to PostgreSQL, with `messaging-ws-server move`). Each
/// page is one read, on the read pool, so a move of a stopped server's file runs at the
/// pool's pace; a server still serving the file would keep writing behind it, which the
/// move detects (its head moves) and refuses.
#[async_trait]
impl StoreExport for SqliteStore {
    async fn export(&self, section: Section, after: &After, limit: usize) -> Result<Records> {
        let after = after.clone();
        self.read(move |conn| read::export(conn, section, &after, limit)).await
    }

    async fn count(&self, section: Section) -> Result<u64> {
        self.read(move |conn| read::export_count(conn, section)).await
    }
}

#[async_trait]
impl StoreHealth for SqliteStore {
    fn last_commit(&self) -> Option<Instant> {
        self.inner.writer.health().last_commit()
    }

    async fn probe_commit(&self) -> Result<()> {
        self.inner.writer.write(|ctx| write::health_probe(ctx)).await
    }
}
