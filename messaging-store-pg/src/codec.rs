//! Conversions between rows and the core model.
//!
//! Column lists and their decoders sit side by side (as in the SQLite store): every query
//! returning a message selects [`MESSAGE_COLUMNS`] and decodes with [`message`]. Decoders
//! fail with the driver's error; the caller's `?` makes it a [`PgError`](crate::error::PgError).
//! The log's rows and their decoding are in `event_rows`.

use messaging_core::id::{ConversationId, MessageId, UserId};
use messaging_core::model::{
    Attachment, Conversation, ConversationKind, Message, MessageKind, Reaction,
};
use messaging_core::time::Timestamp;
use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use uuid::Uuid;

/// Marks SQL assembled from this crate's own constants (column lists, clause variants) as
/// safe. Never pass text that came from a caller: values always go through binds.
pub(crate) fn trusted(sql: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(sql)
}

/// A `u64` as PostgreSQL's `bigint`; values above `i64::MAX` saturate.
pub(crate) fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A stored non-negative `bigint` back as `u64`.
pub(crate) fn uint(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// The columns [`message`] decodes, for `messages` aliased `m`.
pub(crate) const MESSAGE_COLUMNS: &str = "m.id, m.conversation_id, m.seq, m.sender_id, m.body, \
     m.metadata, m.client_msg_id, m.created_at, m.edited_at, m.deleted, m.attachments, \
     m.reply_to_seq, m.reactions";

/// Number of columns in [`MESSAGE_COLUMNS`].
pub(crate) const MESSAGE_WIDTH: usize = 13;

/// The stored `sender_id` of a message: the sender, or the nil UUID (which no user has) for
/// a system message. The column stays NOT NULL so that unread counting (`sender_id <> me`)
/// and the idempotency index need no NULL cases (migration 0005).
pub(crate) fn sender(sender_id: Option<UserId>) -> Uuid {
    sender_id.map_or(Uuid::nil(), |user| *user.as_uuid())
}

/// A stored `sender_id` back: the nil UUID is a system message's (no sender).
pub(crate) fn sender_of(stored: Uuid) -> Option<UserId> {
    (!stored.is_nil()).then(|| UserId::from_uuid(stored))
}

/// Decodes [`MESSAGE_COLUMNS`] starting at column `at`.
pub(crate) fn message(row: &PgRow, at: usize) -> Result<Message, sqlx::Error> {
    let sender_id = sender_of(row.try_get(at + 3)?);
    Ok(Message {
        id: MessageId::from_uuid(row.try_get(at)?),
        conversation_id: ConversationId::from_uuid(row.try_get(at + 1)?),
        seq: uint(row.try_get(at + 2)?),
        sender_id,
        kind: if sender_id.is_some() { MessageKind::User } else { MessageKind::System },
        body: row.try_get(at + 4)?,
        attachments: row.try_get::<Json<Vec<Attachment>>, _>(at + 10)?.0,
        reply_to_seq: row.try_get::<Option<i64>, _>(at + 11)?.map(uint),
        reactions: row.try_get::<Json<Vec<Reaction>>, _>(at + 12)?.0,
        metadata: row.try_get(at + 5)?,
        client_msg_id: row.try_get(at + 6)?,
        created_at: Timestamp::from_millis(row.try_get(at + 7)?),
        edited_at: optional_time(row, at + 8)?,
        deleted: row.try_get(at + 9)?,
    })
}

/// Decodes [`MESSAGE_COLUMNS`] at `at` when the row has a message there (outer joins).
pub(crate) fn optional_message(row: &PgRow, at: usize) -> Result<Option<Message>, sqlx::Error> {
    if row.try_get::<Option<Uuid>, _>(at)?.is_some() {
        message(row, at).map(Some)
    } else {
        Ok(None)
    }
}

/// The columns [`conversation`] decodes, for `conversations` aliased `c`.
pub(crate) const CONVERSATION_COLUMNS: &str = "c.id, c.user_lo, c.user_hi, c.context, \
     c.created_at, c.last_message_at, c.last_seq, c.metadata";

/// Number of columns in [`CONVERSATION_COLUMNS`].
pub(crate) const CONVERSATION_WIDTH: usize = 8;

/// Decodes [`CONVERSATION_COLUMNS`] starting at column `at`.
pub(crate) fn conversation(row: &PgRow, at: usize) -> Result<Conversation, sqlx::Error> {
    let context: String = row.try_get(at + 3)?;
    Ok(Conversation {
        id: ConversationId::from_uuid(row.try_get(at)?),
        kind: ConversationKind::Direct,
        context: (!context.is_empty()).then_some(context),
        members: [UserId::from_uuid(row.try_get(at + 1)?), UserId::from_uuid(row.try_get(at + 2)?)],
        created_at: Timestamp::from_millis(row.try_get(at + 4)?),
        last_message_at: optional_time(row, at + 5)?,
        last_seq: uint(row.try_get(at + 6)?),
        metadata: row.try_get(at + 7)?,
    })
}

/// A nullable time column (ms) at `at`.
pub(crate) fn optional_time(row: &PgRow, at: usize) -> Result<Option<Timestamp>, sqlx::Error> {
    Ok(row.try_get::<Option<i64>, _>(at)?.map(Timestamp::from_millis))
}
