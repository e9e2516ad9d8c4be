//! Read connections and the SQL of every read.
//!
//! WAL lets readers run beside the writer without blocking it. A small pool of read-only
//! connections serves queries on tokio's blocking threads; each query starts a fresh read
//! transaction, so it sees everything committed before it started (in particular, every
//! write whose reply the caller has already received). The writer uses the same lookups
//! (by pair, by idempotency key) on its own connection, inside its transaction.

use std::path::Path;
use std::sync::Mutex;

use messaging_core::{
    Conversation, ConversationId, ConversationPage, ConversationSummary, Error, Event,
    HistoryWindow, LoggedEvent, Message, MessageId, Receipt, ReceiptKind, Result, SearchQuery,
    Timestamp, UnreadTotals, UserId,
};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use tokio::sync::Semaphore;

use crate::codec::{
    self, CONVERSATION_COLUMNS, CONVERSATION_WIDTH, MESSAGE_COLUMNS, MESSAGE_WIDTH, db_err, int,
    uint,
};
use crate::write::{activity_bucket, kind};

/// A fixed set of read-only connections.
pub(crate) struct ReadPool {
    idle: Mutex<Vec<Connection>>,
    permits: Semaphore,
}

/// A read-only connection to the database at `path`, waiting up to 5 s on locks.
pub(crate) fn open_read_only(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )
    .map_err(db_err)?;
    conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(db_err)?;
    Ok(conn)
}

impl ReadPool {
    /// Opens `size` connections to the database at `path`, each with the search file at
    /// `search` attached as `search`.
    pub(crate) fn open(path: &Path, search: &Path, size: usize) -> Result<Self> {
        let mut idle = Vec::with_capacity(size);
        for _ in 0..size.max(1) {
            let conn = open_read_only(path)?;
            let search = search.to_str().ok_or_else(|| {
                Error::unavailable("the search file's path is not UTF-8, which ATTACH needs")
            })?;
            conn.execute("ATTACH DATABASE ?1 AS search", [search]).map_err(db_err)?;
            conn.set_prepared_statement_cache_capacity(64);
            idle.push(conn);
        }
        let permits = Semaphore::new(idle.len());
        Ok(Self { idle: Mutex::new(idle), permits })
    }

    /// Runs `query` on an idle connection on a blocking thread.
    pub(crate) async fn read<T, F>(&self, query: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let _permit =
            self.permits.acquire().await.map_err(|_| Error::unavailable("read pool closed"))?;
        let conn =
            self.lock().pop().ok_or_else(|| Error::unavailable("no idle read connection"))?;
        let (conn, result) = tokio::task::spawn_blocking(move || {
            let result = query(&conn);
            (conn, result)
        })
        .await
        .map_err(Error::backend)?;
        self.lock().push(conn);
        result
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

pub(crate) fn conversation(conn: &Connection, id: ConversationId) -> Result<Option<Conversation>> {
    conn.prepare_cached(&format!(
        "SELECT {CONVERSATION_COLUMNS} FROM conversations c WHERE c.id = ?1"
    ))
    .and_then(|mut stmt| {
        stmt.query_row(params![id.as_bytes()], |row| codec::conversation(row, 0)).optional()
    })
    .map_err(db_err)
}

pub(crate) fn find_direct(
    conn: &Connection,
    a: UserId,
    b: UserId,
    context: &str,
) -> Result<Option<Conversation>> {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    conn.prepare_cached(&format!(
        "SELECT {CONVERSATION_COLUMNS} FROM conversations c \
         WHERE c.user_lo = ?1 AND c.user_hi = ?2 AND c.context = ?3"
    ))
    .and_then(|mut stmt| {
        stmt.query_row(params![lo.as_bytes(), hi.as_bytes(), context], |row| {
            codec::conversation(row, 0)
        })
        .optional()
    })
    .map_err(db_err)
}

/// One statement per page: the page's conversations are chosen first from the members'
/// index (at and below the keyset's second, sorted by the exact activity within a second),
/// then each gets both members' markers, the unread count and the last message from
/// correlated lookups on indexes, not from a query per row.
pub(crate) fn conversations(
    conn: &Connection,
    page: ConversationPage,
) -> Result<Vec<ConversationSummary>> {
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
    let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
    let rows = stmt
        .query_map(
            params![
                page.user.as_bytes(),
                int(page.limit as u64),
                before_at,
                before_id,
                before_bucket
            ],
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
        )
        .map_err(db_err)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_err)
}

pub(crate) fn peers(conn: &Connection, user: UserId) -> Result<Vec<UserId>> {
    let mut stmt = conn
        .prepare_cached("SELECT DISTINCT peer_id FROM members WHERE user_id = ?1")
        .map_err(db_err)?;
    let rows =
        stmt.query_map(params![user.as_bytes()], |row| codec::user(row, 0)).map_err(db_err)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_err)
}

pub(crate) fn message(conn: &Connection, id: MessageId) -> Result<Option<Message>> {
    conn.prepare_cached(&format!("SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.id = ?1"))
        .and_then(|mut stmt| {
            stmt.query_row(params![id.as_bytes()], |row| codec::message(row, 0)).optional()
        })
        .map_err(db_err)
}

pub(crate) fn find_by_client_msg_id(
    conn: &Connection,
    conversation_id: ConversationId,
    sender_id: UserId,
    key: &str,
) -> Result<Option<Message>> {
    conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m \
         WHERE m.conversation_id = ?1 AND m.sender_id = ?2 AND m.client_msg_id = ?3"
    ))
    .and_then(|mut stmt| {
        stmt.query_row(params![conversation_id.as_bytes(), sender_id.as_bytes(), key], |row| {
            codec::message(row, 0)
        })
        .optional()
    })
    .map_err(db_err)
}

pub(crate) fn history(
    conn: &Connection,
    conversation_id: ConversationId,
    window: HistoryWindow,
    limit: usize,
) -> Result<Vec<Message>> {
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
    let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
    let rows = stmt
        .query_map(params![conversation_id.as_bytes(), int(limit as u64), anchor], |row| {
            codec::message(row, 0)
        })
        .map_err(db_err)?;
    let mut messages = rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_err)?;
    if order == "DESC" {
        messages.reverse();
    }
    Ok(messages)
}

/// Every term quoted, so no character of the user's reaches FTS5's query syntax.
fn match_expression(terms: &[String]) -> String {
    terms.iter().map(|t| format!("\"{}\"", t.replace('"', "\"\""))).collect::<Vec<_>>().join(" ")
}

pub(crate) fn search(conn: &Connection, query: &SearchQuery) -> Result<Vec<Message>> {
    let scope = if query.conversation_id.is_some() {
        "AND m.conversation_id = ?4"
    } else {
        "AND ?4 IS NULL"
    };
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM search.messages_fts f JOIN messages m ON m.pk = f.rowid \
         WHERE f.words MATCH ?1 AND m.deleted = 0 \
           AND m.conversation_id IN (SELECT conversation_id FROM members WHERE user_id = ?2) \
           {scope} \
         ORDER BY m.pk DESC LIMIT ?3"
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
    let rows = stmt
        .query_map(
            params![
                match_expression(&query.terms),
                query.user.as_bytes(),
                int(query.limit as u64),
                query.conversation_id.map(|c| *c.as_bytes()),
            ],
            |row| codec::message(row, 0),
        )
        .map_err(db_err)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_err)
}

pub(crate) fn unread(conn: &Connection, user: UserId) -> Result<UnreadTotals> {
    conn.prepare_cached(
        "SELECT count(*), count(DISTINCT me.conversation_id) FROM members me \
         JOIN messages u ON u.conversation_id = me.conversation_id AND u.seq > me.read_seq \
         WHERE me.user_id = ?1 AND u.sender_id <> ?1 AND u.deleted = 0",
    )
    .and_then(|mut stmt| {
        stmt.query_row(params![user.as_bytes()], |row| {
            Ok(UnreadTotals { total: uint(row.get(0)?), conversations: uint(row.get(1)?) })
        })
    })
    .map_err(db_err)
}

pub(crate) fn head(conn: &Connection) -> Result<u64> {
    conn.query_row("SELECT coalesce(max(position), 0) FROM events", [], |row| row.get::<_, i64>(0))
        .map(uint)
        .map_err(db_err)
}

/// The database's identity, which the search file beside it records.
pub(crate) fn instance(conn: &Connection) -> Result<i64> {
    conn.query_row("SELECT value FROM meta WHERE key = 'instance'", [], |row| row.get(0))
        .map_err(db_err)
}

pub(crate) fn audience_indexed_upto(conn: &Connection) -> Result<u64> {
    conn.query_row("SELECT value FROM meta WHERE key = 'audience_indexed_upto'", [], |row| {
        row.get::<_, i64>(0)
    })
    .map(uint)
    .map_err(db_err)
}

pub(crate) fn read_events(
    conn: &Connection,
    user: UserId,
    after: u64,
    up_to: u64,
    limit: usize,
) -> Result<Vec<LoggedEvent>> {
    let sql = format!(
        "SELECT e.position, e.kind, e.conversation_id, e.user_id, e.seq, \
                {MESSAGE_COLUMNS}, {CONVERSATION_COLUMNS} \
         FROM event_audience a \
         JOIN events e ON e.position = a.position \
         LEFT JOIN messages m ON m.pk = e.message_pk \
         LEFT JOIN conversations c ON e.kind = {created} AND c.id = e.conversation_id \
         WHERE a.user_id = ?1 AND a.position > ?2 AND a.position <= ?3 \
         ORDER BY a.position LIMIT ?4",
        created = kind::CONVERSATION_CREATED
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
    let rows = stmt
        .query_map(params![user.as_bytes(), int(after), int(up_to), int(limit as u64)], |row| {
            let position = uint(row.get(0)?);
            let kind: i64 = row.get(1)?;
            let receipt = |kind| -> rusqlite::Result<Event> {
                Ok(Event::Receipt(Receipt {
                    conversation_id: codec::conversation_id(row, 2)?,
                    user_id: codec::user(row, 3)?,
                    kind,
                    seq: uint(row.get(4)?),
                }))
            };
            let event = match kind {
                kind::CONVERSATION_CREATED => {
                    Event::ConversationCreated(codec::conversation(row, 5 + MESSAGE_WIDTH)?)
                }
                kind::MESSAGE_CREATED => Event::MessageCreated(codec::message(row, 5)?),
                kind::MESSAGE_EDITED => Event::MessageEdited(codec::message(row, 5)?),
                kind::MESSAGE_DELETED => Event::MessageDeleted(codec::message(row, 5)?),
                kind::RECEIPT_READ => receipt(ReceiptKind::Read)?,
                kind::RECEIPT_DELIVERED => receipt(ReceiptKind::Delivered)?,
                other => {
                    return Err(rusqlite::Error::IntegralValueOutOfRange(1, other));
                }
            };
            Ok(LoggedEvent { position, event })
        })
        .map_err(db_err)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_err)
}

pub(crate) fn last_seen(conn: &Connection, users: &[UserId]) -> Result<Vec<(UserId, Timestamp)>> {
    let mut stmt =
        conn.prepare_cached("SELECT at FROM last_seen WHERE user_id = ?1").map_err(db_err)?;
    let mut seen = Vec::new();
    for user in users {
        let at: Option<i64> = stmt
            .query_row(params![user.as_bytes()], |row| row.get(0))
            .optional()
            .map_err(db_err)?;
        if let Some(at) = at {
            seen.push((*user, Timestamp::from_millis(at)));
        }
    }
    Ok(seen)
}
