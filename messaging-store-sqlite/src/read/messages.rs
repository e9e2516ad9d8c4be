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

/// Driven by the caller's memberships: for each of the caller's conversations, FTS5 walks
/// that conversation's rowid range of each word's posting list (see [`search_index`])
/// backwards, newest first, and stops after `limit` live matches; the newest `limit` of
/// all those win. So a search costs about `limit` rows per conversation of the caller's,
/// however many messages match: ordering all the matches of a conversation before the
/// limit made a search of a common word grow with the conversation (a 30-minute soak's
/// search p99 went from 29 ms to 130 ms as its conversations grew), and before that
/// (layout version 1) with the whole database.
pub(crate) fn search(conn: &Connection, query: &SearchQuery) -> StoreResult<Vec<Message>> {
    let Some(expression) = match_expression(&query.terms) else {
        return Ok(Vec::new());
    };
    let limit = query.limit.max(1);
    let mut conversations = conn.prepare_cached(
        "SELECT me.conversation_id, c.num FROM members me \
         CROSS JOIN conversations c ON c.id = me.conversation_id \
         WHERE me.user_id = ?1 AND (?2 IS NULL OR me.conversation_id = ?2)",
    )?;
    let scopes = conversations
        .query_map(
            params![query.user.as_bytes(), query.conversation_id.map(|c| *c.as_bytes())],
            |row| Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, i64>(1)?)),
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut matches = conn.prepare_cached(
        "SELECT rowid FROM search.messages_fts \
         WHERE messages_fts MATCH ?1 AND rowid >= ?2 AND rowid <= ?3 \
         ORDER BY rowid DESC LIMIT ?4",
    )?;
    let mut by_seq = conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS}, m.pk FROM messages m \
         WHERE m.conversation_id = ?1 AND m.seq = ?2 AND m.deleted = 0"
    ))?;
    // (pk, message) of the newest matches so far, at most `limit` per conversation.
    let mut found: Vec<(i64, Message)> = Vec::new();
    for (conversation, num) in scopes {
        let (first, mut last) = search_index::rowid_range(num);
        let mut kept = 0;
        // The index holds live messages only (a deletion is indexed as a removal before a
        // search may run), so the first page nearly always suffices; a row that is gone
        // from `messages` is skipped and the walk goes on below it.
        'walk: loop {
            let rowids = matches
                .query_map(params![expression, first, last, int(limit as u64)], |row| {
                    row.get::<_, i64>(0)
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let exhausted = rowids.len() < limit;
            for rowid in rowids {
                last = rowid - 1;
                let seq = search_index::seq_of_rowid(rowid);
                let row = by_seq
                    .query_row(params![conversation, seq], |row| {
                        Ok((row.get::<_, i64>(codec::MESSAGE_WIDTH)?, codec::message(row, 0)?))
                    })
                    .optional()?;
                if let Some(hit) = row {
                    found.push(hit);
                    kept += 1;
                    if kept == limit {
                        break 'walk;
                    }
                }
            }
            if exhausted || last < first {
                break;
            }
        }
    }
    found.sort_unstable_by_key(|(pk, _)| std::cmp::Reverse(*pk));
    found.truncate(limit);
    Ok(found.into_iter().map(|(_, message)| message).collect())
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
