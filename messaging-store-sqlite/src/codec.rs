//! Conversions between rows and the core model.
//!
//! Column lists and their decoders live side by side so a query and its decoder cannot
//! drift apart: every query that returns a message selects [`MESSAGE_COLUMNS`] and decodes
//! with [`message`].

use messaging_core::id::{ConversationId, MessageId, UserId};
use messaging_core::model::{
    Attachment, Conversation, ConversationKind, ConversationSummary, MemberSettings, Message,
    MessageKind, Reaction,
};
use messaging_core::time::Timestamp;
use rusqlite::Row;

/// A `u64` as SQLite's signed integer; values above `i64::MAX` saturate (no stored seq or
/// position comes near it, so comparisons stay right).
pub(crate) fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A stored non-negative integer back as `u64`.
pub(crate) fn uint(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

pub(crate) fn user(row: &Row<'_>, index: usize) -> rusqlite::Result<UserId> {
    Ok(UserId::from_bytes(row.get(index)?))
}

pub(crate) fn conversation_id(row: &Row<'_>, index: usize) -> rusqlite::Result<ConversationId> {
    Ok(ConversationId::from_bytes(row.get(index)?))
}

fn timestamp(row: &Row<'_>, index: usize) -> rusqlite::Result<Timestamp> {
    Ok(Timestamp::from_millis(row.get(index)?))
}

pub(crate) fn optional_timestamp(
    row: &Row<'_>,
    index: usize,
) -> rusqlite::Result<Option<Timestamp>> {
    Ok(row.get::<_, Option<i64>>(index)?.map(Timestamp::from_millis))
}

/// The columns [`message`] decodes, for a `messages` table aliased `m`.
pub(crate) const MESSAGE_COLUMNS: &str = "m.id, m.conversation_id, m.seq, m.sender_id, m.body, \
     m.metadata, m.client_msg_id, m.created_at, m.edited_at, m.deleted, m.attachments, \
     m.reply_to_seq, m.reactions";

/// Number of columns in [`MESSAGE_COLUMNS`].
pub(crate) const MESSAGE_WIDTH: usize = 13;

/// The `sender_id` stored for a system message: the nil id, which no user has (ids are
/// random v4 or v7 UUIDs), so the column stays NOT NULL and `sender_id <> me` counts a
/// system message as unread for both members.
const SYSTEM_SENDER: [u8; 16] = [0; 16];

/// A message's sender as stored: the user's id, or the nil id for a system message.
pub(crate) fn sender_bytes(sender: Option<UserId>) -> [u8; 16] {
    sender.map_or(SYSTEM_SENDER, |user| *user.as_bytes())
}

/// A stored `sender_id` back: `None` for the nil id (a system message).
fn sender(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<UserId>> {
    let bytes: [u8; 16] = row.get(index)?;
    Ok((bytes != SYSTEM_SENDER).then(|| UserId::from_bytes(bytes)))
}

/// An event's actor as stored: `None` for NULL (the host's call, or an event logged
/// before schema 7) and for the nil id (which stands for no user, as in `sender_id`).
pub(crate) fn actor(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<UserId>> {
    let bytes: Option<[u8; 16]> = row.get(index)?;
    Ok(bytes.filter(|b| *b != SYSTEM_SENDER).map(UserId::from_bytes))
}

/// A nullable JSON array of attachments (an event's `removed_attachments`): empty for
/// NULL.
pub(crate) fn optional_attachments(
    row: &Row<'_>,
    index: usize,
) -> rusqlite::Result<Vec<Attachment>> {
    match row.get_ref(index)?.as_str_or_null()? {
        None | Some("[]") => Ok(Vec::new()),
        Some(text) => serde_json::from_str(text).map_err(|e| bad_json(index, e)),
    }
}

/// A JSON parse failure as a conversion failure of column `index`.
fn bad_json(index: usize, error: serde_json::Error) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, error.into())
}

/// A JSON array column (`attachments`, `reactions`) parsed by `parse`; `'[]'`, the common
/// case, without the parser.
fn json_list<T>(
    row: &Row<'_>,
    index: usize,
    parse: fn(&str) -> serde_json::Result<Vec<T>>,
) -> rusqlite::Result<Vec<T>> {
    match row.get_ref(index)?.as_str()? {
        "[]" => Ok(Vec::new()),
        text => parse(text).map_err(|e| bad_json(index, e)),
    }
}

/// A nullable JSON column (`metadata`), parsed.
fn json_value(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<serde_json::Value>> {
    match row.get_ref(index)?.as_str_or_null()? {
        None => Ok(None),
        Some(text) => Ok(Some(serde_json::from_str(text).map_err(|e| bad_json(index, e))?)),
    }
}

/// Decodes [`MESSAGE_COLUMNS`] starting at column `at`.
pub(crate) fn message(row: &Row<'_>, at: usize) -> rusqlite::Result<Message> {
    let metadata = json_value(row, at + 5)?;
    let sender_id = sender(row, at + 3)?;
    Ok(Message {
        id: MessageId::from_bytes(row.get(at)?),
        conversation_id: conversation_id(row, at + 1)?,
        seq: uint(row.get(at + 2)?),
        sender_id,
        kind: if sender_id.is_some() { MessageKind::User } else { MessageKind::System },
        body: row.get(at + 4)?,
        attachments: json_list(row, at + 10, |text| serde_json::from_str(text))?,
        reply_to_seq: row.get::<_, Option<i64>>(at + 11)?.map(uint),
        reactions: json_list(row, at + 12, |text| serde_json::from_str(text))?,
        metadata,
        client_msg_id: row.get(at + 6)?,
        created_at: timestamp(row, at + 7)?,
        edited_at: optional_timestamp(row, at + 8)?,
        deleted: row.get(at + 9)?,
    })
}

/// The columns [`conversation`] decodes, for a `conversations` table aliased `c` joined
/// with [`CONVERSATION_METADATA_JOIN`].
pub(crate) const CONVERSATION_COLUMNS: &str = "c.id, c.user_lo, c.user_hi, c.context, \
     c.created_at, c.last_message_at, c.last_seq, cm.metadata";

/// Number of columns in [`CONVERSATION_COLUMNS`].
pub(crate) const CONVERSATION_WIDTH: usize = 8;

/// The join every query selecting [`CONVERSATION_COLUMNS`] needs: the metadata lives in
/// its own table (see migration 5), keyed by the conversation's `num`.
pub(crate) const CONVERSATION_METADATA_JOIN: &str =
    "LEFT JOIN conversation_metadata cm ON cm.num = c.num";

/// Decodes [`CONVERSATION_COLUMNS`] starting at column `at`.
pub(crate) fn conversation(row: &Row<'_>, at: usize) -> rusqlite::Result<Conversation> {
    let context: String = row.get(at + 3)?;
    Ok(Conversation {
        id: conversation_id(row, at)?,
        kind: ConversationKind::Direct,
        context: (!context.is_empty()).then_some(context),
        members: [user(row, at + 1)?, user(row, at + 2)?],
        created_at: timestamp(row, at + 4)?,
        last_message_at: optional_timestamp(row, at + 5)?,
        last_seq: uint(row.get(at + 6)?),
        metadata: json_value(row, at + 7)?,
    })
}

/// The columns [`summary`] decodes after [`CONVERSATION_COLUMNS`], for the viewer's
/// `members` row aliased `me`, the peer's aliased `peer`, the last message aliased `m`.
pub(crate) const SUMMARY_COLUMNS: &str = "me.read_seq, peer.read_seq, peer.delivered_seq, \
     (SELECT count(*) FROM messages u WHERE u.conversation_id = me.conversation_id \
        AND u.seq > me.read_seq AND u.sender_id <> me.user_id AND u.deleted = 0), \
     me.muted_until, me.archived, peer.read_at, peer.delivered_at";

/// Number of columns in [`SUMMARY_COLUMNS`].
const SUMMARY_WIDTH: usize = 8;

/// The joins [`SUMMARY_COLUMNS`] (with [`CONVERSATION_COLUMNS`] and [`MESSAGE_COLUMNS`])
/// need after `members me`: each an index lookup, whatever the number of rows.
pub(crate) const SUMMARY_JOINS: &str = "JOIN conversations c ON c.id = me.conversation_id \
     JOIN members peer ON peer.user_id = me.peer_id AND peer.conversation_id = me.conversation_id \
     LEFT JOIN messages m ON m.conversation_id = c.id AND m.seq = c.last_seq \
     LEFT JOIN conversation_metadata cm ON cm.num = c.num";

/// The full column list of a summary row: decoded by [`summary`].
pub(crate) fn summary_select() -> String {
    format!("{CONVERSATION_COLUMNS}, {SUMMARY_COLUMNS}, {MESSAGE_COLUMNS}")
}

/// Decodes a row of [`summary_select`]: the conversation, the viewer's and the peer's
/// markers and times, the viewer's settings as stored (a passed mute included: the
/// service settles it as of the read), and the last message (tombstones included).
pub(crate) fn summary(row: &Row<'_>) -> rusqlite::Result<ConversationSummary> {
    let conversation = conversation(row, 0)?;
    let at = CONVERSATION_WIDTH;
    let last = at + SUMMARY_WIDTH;
    let last_message = if row.get_ref(last)?.as_bytes_or_null()?.is_some() {
        Some(message(row, last)?)
    } else {
        None
    };
    Ok(ConversationSummary {
        conversation,
        read_seq: uint(row.get(at)?),
        peer_read_seq: uint(row.get(at + 1)?),
        peer_delivered_seq: uint(row.get(at + 2)?),
        unread_count: uint(row.get(at + 3)?),
        muted_until: optional_timestamp(row, at + 4)?,
        archived: row.get(at + 5)?,
        peer_read_at: optional_timestamp(row, at + 6)?,
        peer_delivered_at: optional_timestamp(row, at + 7)?,
        last_message,
    })
}

/// A member's settings from `muted_until` at `at` and `archived` at `at + 1`.
pub(crate) fn member_settings(
    row: &Row<'_>,
    at: usize,
    conversation_id: ConversationId,
    user_id: UserId,
) -> rusqlite::Result<MemberSettings> {
    Ok(MemberSettings {
        conversation_id,
        user_id,
        muted_until: optional_timestamp(row, at)?,
        archived: row.get(at + 1)?,
    })
}

/// Metadata as stored: compact JSON text.
pub(crate) fn metadata_text(metadata: Option<&serde_json::Value>) -> Option<String> {
    metadata.map(serde_json::Value::to_string)
}

/// A reactions summary as stored: a compact JSON array, `'[]'` when there are none.
pub(crate) fn reactions_text(reactions: &[Reaction]) -> rusqlite::Result<String> {
    json_list_text(reactions.is_empty(), || serde_json::to_string(reactions))
}

/// Attachments as stored: a compact JSON array, `'[]'` when there are none.
pub(crate) fn attachments_text(attachments: &[Attachment]) -> rusqlite::Result<String> {
    json_list_text(attachments.is_empty(), || serde_json::to_string(attachments))
}

/// A list as a compact JSON array (by `serialize`), `'[]'` (what the column's default and
/// the readers' shortcut expect) when `empty`.
fn json_list_text(
    empty: bool,
    serialize: impl FnOnce() -> serde_json::Result<String>,
) -> rusqlite::Result<String> {
    if empty {
        return Ok("[]".to_owned());
    }
    // Plain strings and integers: serializing does not fail, but never store a wrong list.
    serialize().map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}
