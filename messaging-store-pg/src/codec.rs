//! Conversions between rows and the core model.
//!
//! Column lists and their decoders sit side by side (as in the SQLite store): every query
//! returning a message selects [`MESSAGE_COLUMNS`] and decodes with [`message`]. Decoders
//! fail with the driver's error; the caller's `?` makes it a [`PgError`](crate::error::PgError).

use messaging_core::id::{ConversationId, MessageId, UserId};
use messaging_core::model::{
    Attachment, Conversation, ConversationKind, Event, Message, MessageKind, Reaction, Receipt,
    ReceiptKind,
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
        edited_at: row.try_get::<Option<i64>, _>(at + 8)?.map(Timestamp::from_millis),
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
pub(crate) const CONVERSATION_COLUMNS: &str =
    "c.id, c.user_lo, c.user_hi, c.context, c.created_at, c.last_message_at, c.last_seq";

/// Number of columns in [`CONVERSATION_COLUMNS`].
pub(crate) const CONVERSATION_WIDTH: usize = 7;

/// Decodes [`CONVERSATION_COLUMNS`] starting at column `at`.
pub(crate) fn conversation(row: &PgRow, at: usize) -> Result<Conversation, sqlx::Error> {
    let context: String = row.try_get(at + 3)?;
    Ok(Conversation {
        id: ConversationId::from_uuid(row.try_get(at)?),
        kind: ConversationKind::Direct,
        context: (!context.is_empty()).then_some(context),
        members: [UserId::from_uuid(row.try_get(at + 1)?), UserId::from_uuid(row.try_get(at + 2)?)],
        created_at: Timestamp::from_millis(row.try_get(at + 4)?),
        last_message_at: row.try_get::<Option<i64>, _>(at + 5)?.map(Timestamp::from_millis),
        last_seq: uint(row.try_get(at + 6)?),
    })
}

/// Event kinds as stored in `events.kind`.
pub(crate) mod kind {
    pub(crate) const CONVERSATION_CREATED: i16 = 1;
    pub(crate) const MESSAGE_CREATED: i16 = 2;
    pub(crate) const MESSAGE_EDITED: i16 = 3;
    pub(crate) const MESSAGE_DELETED: i16 = 4;
    pub(crate) const RECEIPT_READ: i16 = 5;
    pub(crate) const RECEIPT_DELIVERED: i16 = 6;
}

/// The log row of an event (what `events` keeps besides its position and audience).
pub(crate) struct EventRow {
    pub(crate) kind: i16,
    pub(crate) conversation_id: Uuid,
    pub(crate) message_id: Option<Uuid>,
    pub(crate) user_id: Option<Uuid>,
    pub(crate) seq: Option<i64>,
}

/// The row [`event`] decodes back into `event` (with the named objects' current state).
pub(crate) fn event_row(event: &Event) -> EventRow {
    let message_row = |kind, m: &Message| EventRow {
        kind,
        conversation_id: *m.conversation_id.as_uuid(),
        message_id: Some(*m.id.as_uuid()),
        user_id: None,
        seq: None,
    };
    match event {
        Event::ConversationCreated(c) => EventRow {
            kind: kind::CONVERSATION_CREATED,
            conversation_id: *c.id.as_uuid(),
            message_id: None,
            user_id: None,
            seq: None,
        },
        Event::MessageCreated(m) => message_row(kind::MESSAGE_CREATED, m),
        Event::MessageEdited(m) => message_row(kind::MESSAGE_EDITED, m),
        Event::MessageDeleted(m) => message_row(kind::MESSAGE_DELETED, m),
        Event::Receipt(r) => EventRow {
            kind: match r.kind {
                ReceiptKind::Read => kind::RECEIPT_READ,
                ReceiptKind::Delivered => kind::RECEIPT_DELIVERED,
            },
            conversation_id: *r.conversation_id.as_uuid(),
            message_id: None,
            user_id: Some(*r.user_id.as_uuid()),
            seq: Some(int(r.seq)),
        },
        // `Event` is non-exhaustive; a new kind needs a row format and a migration.
        other => EventRow {
            kind: 0,
            conversation_id: *other.conversation_id().as_uuid(),
            message_id: None,
            user_id: None,
            seq: None,
        },
    }
}

/// The columns [`event`] decodes: the log row, then the message and conversation it names
/// in their current state, for `events e` outer-joined to `messages m` and
/// `conversations c`.
pub(crate) fn event_columns() -> String {
    format!(
        "e.position, e.kind, e.conversation_id, e.user_id, e.seq, e.audience, \
         {MESSAGE_COLUMNS}, {CONVERSATION_COLUMNS}"
    )
}

/// The joins [`event_columns`] needs after `FROM events e`.
pub(crate) const EVENT_JOINS: &str = "LEFT JOIN messages m ON m.id = e.message_id \
     LEFT JOIN conversations c ON e.kind = 1 AND c.id = e.conversation_id";

/// A decoded log row: its position, and the event with its audience unless the row is of
/// a kind this version does not know.
pub(crate) type EventRowOf = (u64, Option<(Event, Vec<UserId>)>);

/// Decodes [`event_columns`]: the position, then the event and its audience. A kind this
/// version does not know (written by a newer version sharing the database) is logged and
/// decodes to `None`, so readers skip it instead of failing on it: one such row must not
/// stop live delivery or `sync`.
pub(crate) fn event(row: &PgRow) -> Result<EventRowOf, sqlx::Error> {
    let position = uint(row.try_get(0)?);
    let kind: i16 = row.try_get(1)?;
    let receipt = |kind| -> Result<Event, sqlx::Error> {
        Ok(Event::Receipt(Receipt {
            conversation_id: ConversationId::from_uuid(row.try_get(2)?),
            user_id: UserId::from_uuid(row.try_get(3)?),
            kind,
            seq: uint(row.try_get(4)?),
        }))
    };
    let event = match kind {
        kind::CONVERSATION_CREATED => {
            Event::ConversationCreated(conversation(row, 6 + MESSAGE_WIDTH)?)
        }
        kind::MESSAGE_CREATED => Event::MessageCreated(message(row, 6)?),
        kind::MESSAGE_EDITED => Event::MessageEdited(message(row, 6)?),
        kind::MESSAGE_DELETED => Event::MessageDeleted(message(row, 6)?),
        kind::RECEIPT_READ => receipt(ReceiptKind::Read)?,
        kind::RECEIPT_DELIVERED => receipt(ReceiptKind::Delivered)?,
        other => {
            tracing::warn!(position, kind = other, "skipping a log event of an unknown kind");
            return Ok((position, None));
        }
    };
    let audience: Vec<Uuid> = row.try_get(5)?;
    Ok((position, Some((event, audience.into_iter().map(UserId::from_uuid).collect()))))
}
