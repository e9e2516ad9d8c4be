//! Read connections and the SQL of every read.
//!
//! WAL lets readers run beside the writer without blocking it. A small pool of read-only
//! connections serves queries on tokio's blocking threads; each query starts a fresh read
//! transaction, so it sees everything committed before it started (in particular, every
//! write whose reply the caller has already received). The writer uses the same lookups
//! (by pair, by idempotency key) on its own connection, inside its transaction.
//!
//! A caller may stop waiting at any time (the server drops a request at its answer bound):
//! the query then still runs to its end on its blocking thread, and the connection goes
//! back to the pool from there, by a [`Lease`] the blocking closure owns. Before that, a
//! connection handed out to a future that was dropped never came back, while its permit
//! did: after as many cancellations as connections, every read failed.
//!
//! Each query is bounded in time by SQLite's progress handler (every
//! [`PROGRESS_PERIOD`] virtual-machine instructions): past the bound it is interrupted and
//! answered `Unavailable`, and the connection is ready for the next query.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use messaging_core::id::{ConversationId, MessageId, UserId};
use messaging_core::model::{
    Conversation, ConversationSummary, Event, LoggedEvent, Message, Receipt, ReceiptKind,
    UnreadTotals,
};
use messaging_core::store::{ConversationPage, HistoryWindow, SearchQuery};
use messaging_core::time::Timestamp;
use messaging_core::{Error, Result};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::codec::{
    self, CONVERSATION_COLUMNS, CONVERSATION_WIDTH, MESSAGE_COLUMNS, MESSAGE_WIDTH, int, uint,
};
use crate::error::{self, StoreResult};
use crate::search_index;
use crate::vocab::{activity_bucket, kind};

/// Virtual-machine instructions between two calls of a read connection's progress handler:
/// the granularity of the time bound and of [`ReadPool::work`]. A call costs a clock read,
/// noise next to a thousand instructions.
pub(crate) const PROGRESS_PERIOD: i32 = 1_000;

/// A fixed set of read-only connections.
pub(crate) struct ReadPool {
    shared: Arc<PoolShared>,
    permits: Arc<Semaphore>,
    /// The number of connections (and of permits).
    size: u32,
    /// The longest a query may run before it is interrupted.
    bound: Duration,
    /// Progress-handler calls of every connection, for [`ReadPool::work`].
    work: Arc<AtomicU64>,
}

struct PoolShared {
    idle: Mutex<Vec<ReadConn>>,
}

impl PoolShared {
    fn lock(&self) -> MutexGuard<'_, Vec<ReadConn>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A read connection and the deadline its progress handler enforces.
struct ReadConn {
    conn: Connection,
    clock: Arc<QueryClock>,
}

/// The running query's deadline, shared with the connection's progress handler.
#[derive(Default)]
struct QueryClock {
    deadline: Mutex<Option<Instant>>,
    /// Set by the handler when it interrupted the query.
    fired: AtomicBool,
}

impl QueryClock {
    fn start(&self, bound: Duration) {
        self.fired.store(false, Ordering::Relaxed);
        *self.deadline.lock().unwrap_or_else(PoisonError::into_inner) =
            Instant::now().checked_add(bound);
    }

    fn stop(&self) {
        *self.deadline.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// The progress handler: `true` interrupts the statement.
    fn expired(&self) -> bool {
        let late = self
            .deadline
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|deadline| Instant::now() >= deadline);
        if late {
            self.fired.store(true, Ordering::Relaxed);
        }
        late
    }
}

/// A connection lent to one query, with the permit that counted it out. Dropping it (when
/// the query is done, on whichever thread, whether or not anyone still waits for the
/// answer) puts the connection back before the permit is released.
struct Lease {
    conn: Option<ReadConn>,
    pool: Arc<PoolShared>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            conn.clock.stop();
            self.pool.lock().push(conn);
        }
    }
}

/// A read-only connection to the database at `path`, waiting up to 5 s on locks.
pub(crate) fn open_read_only(path: &Path) -> StoreResult<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

impl ReadPool {
    /// Opens `size` connections to the database at `path`, each with the search file at
    /// `search` attached as `search`, and each query bounded to `bound`.
    pub(crate) fn open(
        path: &Path,
        search: &Path,
        size: usize,
        bound: Duration,
    ) -> StoreResult<Self> {
        let work = Arc::new(AtomicU64::new(0));
        let mut idle = Vec::with_capacity(size);
        for _ in 0..size.max(1) {
            let conn = open_read_only(path)?;
            let search = search.to_str().ok_or_else(|| {
                Error::unavailable("the search file's path is not UTF-8, which ATTACH needs")
            })?;
            conn.execute("ATTACH DATABASE ?1 AS search", [search])?;
            conn.set_prepared_statement_cache_capacity(64);
            let clock = Arc::new(QueryClock::default());
            let (handler_clock, handler_work) = (clock.clone(), work.clone());
            conn.progress_handler(
                PROGRESS_PERIOD,
                Some(move || {
                    handler_work.fetch_add(1, Ordering::Relaxed);
                    handler_clock.expired()
                }),
            )?;
            idle.push(ReadConn { conn, clock });
        }
        let permits = Arc::new(Semaphore::new(idle.len()));
        let size = u32::try_from(idle.len()).unwrap_or(u32::MAX);
        let shared = Arc::new(PoolShared { idle: Mutex::new(idle) });
        Ok(Self { shared, permits, size, bound, work })
    }

    /// Progress-handler calls of every read connection so far: the read work done, in
    /// units of [`PROGRESS_PERIOD`] instructions.
    pub(crate) fn work(&self) -> u64 {
        self.work.load(Ordering::Relaxed)
    }

    /// Runs `query` on an idle connection on a blocking thread. The connection returns to
    /// the pool when the query ends, even if this future was dropped before. This is where
    /// a read's error leaves the crate, converted to the core error.
    pub(crate) async fn read<T, F>(&self, query: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        // The semaphore is closed only by `close`.
        let permit = self.permits.clone().acquire_owned().await.map_err(|_| error::closed())?;
        let conn = self
            .shared
            .lock()
            .pop()
            .ok_or_else(|| Error::unavailable("no idle read connection"))?;
        let lease = Lease { conn: Some(conn), pool: self.shared.clone(), _permit: permit };
        let bound = self.bound;
        tokio::task::spawn_blocking(move || {
            let lease = lease;
            let Some(read) = lease.conn.as_ref() else {
                return Err(Error::unavailable("no idle read connection"));
            };
            read.clock.start(bound);
            let result = query(&read.conn).map_err(Error::from);
            match result {
                Err(error) if read.clock.fired.load(Ordering::Relaxed) => {
                    tracing::warn!(%error, ?bound, "a read query was interrupted");
                    Err(Error::unavailable("the query took too long"))
                }
                result => result,
            }
        })
        .await
        .map_err(Error::backend)?
    }

    /// Closes every connection once the reads running now are done (each within the
    /// bound), and fails every later read with "the SQLite store is closed". Closing twice
    /// is harmless.
    pub(crate) async fn close(&self) -> Result<()> {
        // Granted once every read queued before it has given its connection back (the
        // semaphore is fair); fails if the pool is closed already.
        let Ok(all) = self.permits.acquire_many(self.size).await else {
            return Ok(());
        };
        self.permits.close();
        drop(all);
        let idle = std::mem::take(&mut *self.shared.lock());
        // Closing a connection may touch the file: not on the runtime's threads.
        tokio::task::spawn_blocking(move || drop(idle)).await.map_err(Error::backend)
    }
}

pub(crate) fn conversation(
    conn: &Connection,
    id: ConversationId,
) -> StoreResult<Option<Conversation>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {CONVERSATION_COLUMNS} FROM conversations c WHERE c.id = ?1"
    ))?;
    Ok(stmt.query_row(params![id.as_bytes()], |row| codec::conversation(row, 0)).optional()?)
}

pub(crate) fn find_direct(
    conn: &Connection,
    a: UserId,
    b: UserId,
    context: &str,
) -> StoreResult<Option<Conversation>> {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {CONVERSATION_COLUMNS} FROM conversations c \
         WHERE c.user_lo = ?1 AND c.user_hi = ?2 AND c.context = ?3"
    ))?;
    Ok(stmt
        .query_row(params![lo.as_bytes(), hi.as_bytes(), context], |row| {
            codec::conversation(row, 0)
        })
        .optional()?)
}

/// One statement per page: the page's conversations are chosen first from the members'
/// index (at and below the keyset's second, sorted by the exact activity within a second),
/// then each gets both members' markers, the unread count and the last message from
/// correlated lookups on indexes, not from a query per row.
pub(crate) fn conversations(
    conn: &Connection,
    page: ConversationPage,
) -> StoreResult<Vec<ConversationSummary>> {
    let keyset = if page.before.is_some() {
        "AND me.activity_bucket <= ?5 AND (me.activity_bucket < ?5 \
           OR COALESCE(c.last_message_at, c.created_at) < ?3 \
           OR (COALESCE(c.last_message_at, c.created_at) = ?3 AND me.conversation_id < ?4))"
    } else {
        "AND ?3 IS NULL AND ?4 IS NULL AND ?5 IS NULL"
    };
    let sql = format!(
        "WITH page AS ( \
           SELECT me.conversation_id AS id, COALESCE(c.last_message_at, c.created_at) AS at \
           FROM members me JOIN conversations c ON c.id = me.conversation_id \
           WHERE me.user_id = ?1 {keyset} \
           ORDER BY me.activity_bucket DESC, at DESC, me.conversation_id DESC LIMIT ?2) \
         SELECT {CONVERSATION_COLUMNS}, me.read_seq, peer.read_seq, peer.delivered_seq, \
           (SELECT count(*) FROM messages u WHERE u.conversation_id = me.conversation_id \
              AND u.seq > me.read_seq AND u.sender_id <> me.user_id AND u.deleted = 0), \
           {MESSAGE_COLUMNS} \
         FROM page \
         JOIN members me ON me.user_id = ?1 AND me.conversation_id = page.id \
         JOIN conversations c ON c.id = page.id \
         JOIN members peer ON peer.user_id = me.peer_id AND peer.conversation_id = page.id \
         LEFT JOIN messages m ON m.conversation_id = c.id AND m.seq = c.last_seq \
         ORDER BY page.at DESC, page.id DESC"
    );
    let before_at = page.before.map(|k| k.at.as_millis());
    let before_id = page.before.map(|k| *k.id.as_bytes());
    let before_bucket = before_at.map(activity_bucket);
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(
        params![page.user.as_bytes(), int(page.limit as u64), before_at, before_id, before_bucket],
        |row| {
            let conversation = codec::conversation(row, 0)?;
            let at = CONVERSATION_WIDTH;
            let last_message = if row.get_ref(at + 4)?.as_bytes_or_null()?.is_some() {
                Some(codec::message(row, at + 4)?)
            } else {
                None
            };
            Ok(ConversationSummary {
                conversation,
                read_seq: uint(row.get(at)?),
                peer_read_seq: uint(row.get(at + 1)?),
                peer_delivered_seq: uint(row.get(at + 2)?),
                unread_count: uint(row.get(at + 3)?),
                last_message,
            })
        },
    )?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub(crate) fn peers(conn: &Connection, user: UserId) -> StoreResult<Vec<UserId>> {
    let mut stmt =
        conn.prepare_cached("SELECT DISTINCT peer_id FROM members WHERE user_id = ?1")?;
    let rows = stmt.query_map(params![user.as_bytes()], |row| codec::user(row, 0))?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub(crate) fn message(conn: &Connection, id: MessageId) -> StoreResult<Option<Message>> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.id = ?1"))?;
    Ok(stmt.query_row(params![id.as_bytes()], |row| codec::message(row, 0)).optional()?)
}

pub(crate) fn find_by_client_msg_id(
    conn: &Connection,
    conversation_id: ConversationId,
    sender_id: Option<UserId>,
    key: &str,
) -> StoreResult<Option<Message>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m \
         WHERE m.conversation_id = ?1 AND m.sender_id = ?2 AND m.client_msg_id = ?3"
    ))?;
    Ok(stmt
        .query_row(
            params![conversation_id.as_bytes(), codec::sender_bytes(sender_id), key],
            |row| codec::message(row, 0),
        )
        .optional()?)
}

pub(crate) fn history(
    conn: &Connection,
    conversation_id: ConversationId,
    window: HistoryWindow,
    limit: usize,
) -> StoreResult<Vec<Message>> {
    let (condition, order, anchor) = match window {
        HistoryWindow::Latest => ("", "DESC", None),
        HistoryWindow::Before(seq) => ("AND m.seq < ?3", "DESC", Some(int(seq))),
        HistoryWindow::After(seq) => ("AND m.seq > ?3", "ASC", Some(int(seq))),
    };
    let anchor_unused = if anchor.is_none() { "AND ?3 IS NULL" } else { "" };
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.conversation_id = ?1 \
         {condition}{anchor_unused} ORDER BY m.seq {order} LIMIT ?2"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt
        .query_map(params![conversation_id.as_bytes(), int(limit as u64), anchor], |row| {
            codec::message(row, 0)
        })?;
    let mut messages = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    if order == "DESC" {
        messages.reverse();
    }
    Ok(messages)
}

/// The MATCH expression of a search: every term a quoted phrase of its words (a term of
/// several words, which the core's query terms never are, must match them in sequence), so
/// no character of the user's reaches FTS5's query syntax. `None` when a term has no word:
/// nothing matches.
fn match_expression(terms: &[String]) -> Option<String> {
    let mut phrases = Vec::with_capacity(terms.len());
    for term in terms {
        let words: Vec<String> = messaging_core::search::words(term).collect();
        if words.is_empty() {
            return None;
        }
        phrases.push(format!("\"{}\"", words.join(" ")));
    }
    Some(phrases.join(" "))
}

/// Driven by the caller's memberships: for each of the caller's conversations, FTS5 seeks
/// into that conversation's rowid range of each word's posting list (see
/// [`search_index`]), so the work grows with the caller's data, never with the other
/// users' (the whole database matched the word before). `CROSS JOIN` keeps `members` as
/// the outer loop.
pub(crate) fn search(conn: &Connection, query: &SearchQuery) -> StoreResult<Vec<Message>> {
    let Some(expression) = match_expression(&query.terms) else {
        return Ok(Vec::new());
    };
    let scope = if query.conversation_id.is_some() {
        "AND me.conversation_id = ?4"
    } else {
        "AND ?4 IS NULL"
    };
    let (first, last) = search_index::rowid_range_sql("c.num");
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM members me \
         CROSS JOIN conversations c ON c.id = me.conversation_id \
         CROSS JOIN search.messages_fts f \
         CROSS JOIN messages m \
           ON m.conversation_id = me.conversation_id AND m.seq = (f.rowid & 4294967295) \
         WHERE me.user_id = ?2 {scope} \
           AND f.messages_fts MATCH ?1 AND f.rowid >= {first} AND f.rowid <= {last} \
           AND m.deleted = 0 \
         ORDER BY m.pk DESC LIMIT ?3",
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(
        params![
            expression,
            query.user.as_bytes(),
            int(query.limit as u64),
            query.conversation_id.map(|c| *c.as_bytes()),
        ],
        |row| codec::message(row, 0),
    )?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub(crate) fn unread(conn: &Connection, user: UserId) -> StoreResult<UnreadTotals> {
    let mut stmt = conn.prepare_cached(
        "SELECT count(*), count(DISTINCT me.conversation_id) FROM members me \
         JOIN messages u ON u.conversation_id = me.conversation_id AND u.seq > me.read_seq \
         WHERE me.user_id = ?1 AND u.sender_id <> ?1 AND u.deleted = 0",
    )?;
    Ok(stmt.query_row(params![user.as_bytes()], |row| {
        Ok(UnreadTotals { total: uint(row.get(0)?), conversations: uint(row.get(1)?) })
    })?)
}

pub(crate) fn head(conn: &Connection) -> StoreResult<u64> {
    let head: i64 =
        conn.query_row("SELECT coalesce(max(position), 0) FROM events", [], |row| row.get(0))?;
    Ok(uint(head))
}

/// The database's identity, which the search file beside it records.
pub(crate) fn instance(conn: &Connection) -> StoreResult<i64> {
    Ok(conn.query_row("SELECT value FROM meta WHERE key = 'instance'", [], |row| row.get(0))?)
}

pub(crate) fn audience_indexed_upto(conn: &Connection) -> StoreResult<u64> {
    let upto: i64 =
        conn.query_row("SELECT value FROM meta WHERE key = 'audience_indexed_upto'", [], |row| {
            row.get(0)
        })?;
    Ok(uint(upto))
}

/// Reads `limit` events of kinds this build knows; a row of another kind (written by a
/// newer build) is skipped with a warning, and reading goes on past it, so a page is never
/// cut short by it (the service takes a short page for the end of the log).
pub(crate) fn read_events(
    conn: &Connection,
    user: UserId,
    after: u64,
    up_to: u64,
    limit: usize,
) -> StoreResult<Vec<LoggedEvent>> {
    let sql = format!(
        "SELECT e.position, e.kind, e.conversation_id, e.user_id, e.seq, \
                {MESSAGE_COLUMNS}, {CONVERSATION_COLUMNS} \
         FROM event_audience a \
         JOIN events e ON e.position = a.position \
         LEFT JOIN messages m ON m.pk = e.message_pk \
         LEFT JOIN conversations c ON e.kind = {created} AND c.id = e.conversation_id \
         WHERE a.user_id = ?1 AND a.position > ?2 AND a.position <= ?3 \
         ORDER BY a.position",
        created = kind::CONVERSATION_CREATED
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params![user.as_bytes(), int(after), int(up_to)])?;
    let mut events = Vec::new();
    let mut unknown: Vec<i64> = Vec::new();
    while events.len() < limit {
        let Some(row) = rows.next()? else {
            break;
        };
        let position = uint(row.get(0)?);
        let kind: i64 = row.get(1)?;
        match decode_event(row, kind)? {
            Some(event) => events.push(LoggedEvent { position, event }),
            None => {
                if !unknown.contains(&kind) {
                    unknown.push(kind);
                    tracing::warn!(kind, position, "skipping log events of an unknown kind");
                }
            }
        }
    }
    Ok(events)
}

/// The event of a `read_events` row; `None` for a kind this build does not know.
fn decode_event(row: &rusqlite::Row<'_>, kind: i64) -> rusqlite::Result<Option<Event>> {
    let receipt = |kind| -> rusqlite::Result<Event> {
        Ok(Event::Receipt(Receipt {
            conversation_id: codec::conversation_id(row, 2)?,
            user_id: codec::user(row, 3)?,
            kind,
            seq: uint(row.get(4)?),
        }))
    };
    Ok(Some(match kind {
        kind::CONVERSATION_CREATED => {
            Event::ConversationCreated(codec::conversation(row, 5 + MESSAGE_WIDTH)?)
        }
        kind::MESSAGE_CREATED => Event::MessageCreated(codec::message(row, 5)?),
        kind::MESSAGE_EDITED => Event::MessageEdited(codec::message(row, 5)?),
        kind::MESSAGE_DELETED => Event::MessageDeleted(codec::message(row, 5)?),
        kind::RECEIPT_READ => receipt(ReceiptKind::Read)?,
        kind::RECEIPT_DELIVERED => receipt(ReceiptKind::Delivered)?,
        _ => return Ok(None),
    }))
}

pub(crate) fn last_seen(
    conn: &Connection,
    users: &[UserId],
) -> StoreResult<Vec<(UserId, Timestamp)>> {
    let mut stmt = conn.prepare_cached("SELECT at FROM last_seen WHERE user_id = ?1")?;
    let mut seen = Vec::new();
    for user in users {
        let at: Option<i64> =
            stmt.query_row(params![user.as_bytes()], |row| row.get(0)).optional()?;
        if let Some(at) = at {
            seen.push((*user, Timestamp::from_millis(at)));
        }
    }
    Ok(seen)
}
