//! Message reads: by id, by idempotency key, history windows, search, unread totals.

use messaging_core::id::{ConversationId, MessageId, UserId};
use messaging_core::model::{Message, UnreadTotals};
use messaging_core::store::{HistoryWindow, SearchQuery};
use messaging_core::time::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};

use crate::codec::{self, MESSAGE_COLUMNS, int, uint};
use crate::error::StoreResult;
use crate::search_index;

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

/// The peer's and the system's live messages above `user`'s read marker, in every
/// conversation `user` has not muted past `now` (a mute is kept after it passes, so the
/// comparison is made here, as of the read).
pub(crate) fn unread(conn: &Connection, user: UserId, now: Timestamp) -> StoreResult<UnreadTotals> {
    let mut stmt = conn.prepare_cached(
        "SELECT count(*), count(DISTINCT me.conversation_id) FROM members me \
         JOIN messages u ON u.conversation_id = me.conversation_id AND u.seq > me.read_seq \
         WHERE me.user_id = ?1 AND u.sender_id <> ?1 AND u.deleted = 0 \
           AND (me.muted_until IS NULL OR me.muted_until <= ?2)",
    )?;
    Ok(stmt.query_row(params![user.as_bytes(), now.as_millis()], |row| {
        Ok(UnreadTotals { total: uint(row.get(0)?), conversations: uint(row.get(1)?) })
    })?)
}
