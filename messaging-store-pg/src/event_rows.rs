//! How events are kept in the log (`events`) and read back.
//!
//! A log row keeps what the event says as of the event (a receipt's seq and time, a
//! reaction's user, emoji and state, which member's settings changed) and names the
//! objects it is about by id; readers join those objects and so serve them in their
//! current state (a tombstone, the latest body and reactions, the current settings and
//! metadata), as [`EventLog::read_events`](messaging_core::store::EventLog) promises.
//!
//! A kind this version does not know (written by a newer version sharing the database)
//! decodes to `None` and is logged: every reader (`read_events`, the feed) skips it
//! instead of failing on it, so one such row never stops live delivery or `sync`.

use messaging_core::id::{ConversationId, UserId};
use messaging_core::model::{
    Event, MemberSettings, Message, ReactionChange, ReactionState, Receipt, ReceiptKind,
};
use messaging_core::time::Timestamp;
use sqlx::Row;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use crate::codec::{
    CONVERSATION_COLUMNS, CONVERSATION_WIDTH, MESSAGE_COLUMNS, MESSAGE_WIDTH, conversation, int,
    message, optional_time, uint,
};

/// Event kinds as stored in `events.kind` (numbers are forever: older and newer versions
/// share the log).
pub(crate) mod kind {
    pub(crate) const CONVERSATION_CREATED: i16 = 1;
    pub(crate) const MESSAGE_CREATED: i16 = 2;
    pub(crate) const MESSAGE_EDITED: i16 = 3;
    pub(crate) const MESSAGE_DELETED: i16 = 4;
    pub(crate) const RECEIPT_READ: i16 = 5;
    pub(crate) const RECEIPT_DELIVERED: i16 = 6;
    pub(crate) const REACTION_ADDED: i16 = 7;
    pub(crate) const REACTION_REMOVED: i16 = 8;
    pub(crate) const MEMBER_UPDATED: i16 = 9;
    pub(crate) const CONVERSATION_UPDATED: i16 = 10;
}

/// The log row of an event (what `events` keeps besides its position and audience).
#[derive(Debug)]
pub(crate) struct EventRow {
    pub(crate) kind: i16,
    pub(crate) conversation_id: Uuid,
    /// The message of a message or reaction event.
    pub(crate) message_id: Option<Uuid>,
    /// A receipt's or reaction's user, the member of `member.updated`.
    pub(crate) user_id: Option<Uuid>,
    /// A receipt's seq.
    pub(crate) seq: Option<i64>,
    /// A receipt's time (ms).
    pub(crate) at: Option<i64>,
    /// A reaction's emoji.
    pub(crate) emoji: Option<String>,
}

impl EventRow {
    /// A row of `kind` about `conversation_id`, naming nothing else yet.
    pub(crate) fn of(kind: i16, conversation_id: ConversationId) -> Self {
        Self {
            kind,
            conversation_id: *conversation_id.as_uuid(),
            message_id: None,
            user_id: None,
            seq: None,
            at: None,
            emoji: None,
        }
    }

    /// The row of a `message.*` event of `message`.
    pub(crate) fn message(kind: i16, message: &Message) -> Self {
        Self { message_id: Some(*message.id.as_uuid()), ..Self::of(kind, message.conversation_id) }
    }
}

/// The row [`event`] decodes back into `event` (with the named objects' current state).
/// `None` for a kind of event this store has no row for (`Event` is non-exhaustive: a
/// variant added to the core needs a kind number here first).
pub(crate) fn event_row(event: &Event) -> Option<EventRow> {
    Some(match event {
        Event::ConversationCreated(c) => EventRow::of(kind::CONVERSATION_CREATED, c.id),
        Event::ConversationUpdated(c) => EventRow::of(kind::CONVERSATION_UPDATED, c.id),
        Event::MessageCreated(m) => EventRow::message(kind::MESSAGE_CREATED, m),
        Event::MessageEdited(m) => EventRow::message(kind::MESSAGE_EDITED, m),
        Event::MessageDeleted(m) => EventRow::message(kind::MESSAGE_DELETED, m),
        Event::Receipt(r) => EventRow {
            user_id: Some(*r.user_id.as_uuid()),
            seq: Some(int(r.seq)),
            at: Some(r.at.as_millis()),
            ..EventRow::of(
                match r.kind {
                    ReceiptKind::Read => kind::RECEIPT_READ,
                    ReceiptKind::Delivered => kind::RECEIPT_DELIVERED,
                },
                r.conversation_id,
            )
        },
        Event::Reaction(r) => EventRow {
            user_id: Some(*r.user_id.as_uuid()),
            emoji: Some(r.emoji.clone()),
            ..EventRow::message(
                match r.state {
                    ReactionState::Added => kind::REACTION_ADDED,
                    ReactionState::Removed => kind::REACTION_REMOVED,
                },
                &r.message,
            )
        },
        Event::MemberUpdated(s) => EventRow {
            user_id: Some(*s.user_id.as_uuid()),
            ..EventRow::of(kind::MEMBER_UPDATED, s.conversation_id)
        },
        _ => return None,
    })
}

/// Where each part of [`event_columns`] starts.
const MESSAGE_AT: usize = 8;
const CONVERSATION_AT: usize = MESSAGE_AT + MESSAGE_WIDTH;
const SETTINGS_AT: usize = CONVERSATION_AT + CONVERSATION_WIDTH;
/// Where the columns a query adds after [`event_columns`] start.
pub(crate) const LOG_AT: usize = SETTINGS_AT + 2;

/// The columns [`event`] decodes: the log row, then the message, the conversation and the
/// member settings it names, in their current state, for `events e` joined by
/// [`EVENT_JOINS`].
pub(crate) fn event_columns() -> String {
    format!(
        "e.position, e.kind, e.conversation_id, e.user_id, e.seq, e.audience, e.at, e.emoji, \
         {MESSAGE_COLUMNS}, {CONVERSATION_COLUMNS}, s.muted_until, s.archived"
    )
}

/// The joins [`event_columns`] needs after `FROM events e`. Each is a lookup by primary key
/// for the kinds that name that object; the member's settings are a lateral lookup (two
/// tables) made only for `member.updated`.
pub(crate) const EVENT_JOINS: &str = "LEFT JOIN messages m ON m.id = e.message_id \
     LEFT JOIN conversations c ON e.kind IN (1, 10) AND c.id = e.conversation_id \
     LEFT JOIN LATERAL ( \
       SELECT mb.muted_until, a.archived FROM members mb \
       JOIN activity a ON a.user_id = mb.user_id AND a.conversation_id = mb.conversation_id \
       WHERE e.kind = 9 AND mb.user_id = e.user_id AND mb.conversation_id = e.conversation_id \
     ) s ON true";

/// A decoded log row: its position, and the event with its audience unless the row is of
/// a kind this version does not know.
pub(crate) type EventRowOf = (u64, Option<(Event, Vec<UserId>)>);

/// Decodes [`event_columns`]: the position, then the event and its audience. A kind this
/// version does not know is logged and decodes to `None` (see the module docs).
pub(crate) fn event(row: &PgRow) -> Result<EventRowOf, sqlx::Error> {
    let position = uint(row.try_get(0)?);
    let kind: i16 = row.try_get(1)?;
    let conversation_id = || -> Result<ConversationId, sqlx::Error> {
        Ok(ConversationId::from_uuid(row.try_get(2)?))
    };
    let user_id = || -> Result<UserId, sqlx::Error> { Ok(UserId::from_uuid(row.try_get(3)?)) };
    let receipt = |kind| -> Result<Event, sqlx::Error> {
        Ok(Event::Receipt(Receipt {
            conversation_id: conversation_id()?,
            user_id: user_id()?,
            kind,
            seq: uint(row.try_get(4)?),
            at: Timestamp::from_millis(row.try_get(6)?),
        }))
    };
    let reaction = |state| -> Result<Event, sqlx::Error> {
        Ok(Event::Reaction(ReactionChange {
            message: message(row, MESSAGE_AT)?,
            user_id: user_id()?,
            emoji: row.try_get(7)?,
            state,
        }))
    };
    let event = match kind {
        kind::CONVERSATION_CREATED => {
            Event::ConversationCreated(conversation(row, CONVERSATION_AT)?)
        }
        kind::CONVERSATION_UPDATED => {
            Event::ConversationUpdated(conversation(row, CONVERSATION_AT)?)
        }
        kind::MESSAGE_CREATED => Event::MessageCreated(message(row, MESSAGE_AT)?),
        kind::MESSAGE_EDITED => Event::MessageEdited(message(row, MESSAGE_AT)?),
        kind::MESSAGE_DELETED => Event::MessageDeleted(message(row, MESSAGE_AT)?),
        kind::RECEIPT_READ => receipt(ReceiptKind::Read)?,
        kind::RECEIPT_DELIVERED => receipt(ReceiptKind::Delivered)?,
        kind::REACTION_ADDED => reaction(ReactionState::Added)?,
        kind::REACTION_REMOVED => reaction(ReactionState::Removed)?,
        kind::MEMBER_UPDATED => Event::MemberUpdated(MemberSettings {
            conversation_id: conversation_id()?,
            user_id: user_id()?,
            muted_until: optional_time(row, SETTINGS_AT)?,
            archived: row.try_get(SETTINGS_AT + 1)?,
        }),
        other => {
            tracing::warn!(position, kind = other, "skipping a log event of an unknown kind");
            return Ok((position, None));
        }
    };
    let audience: Vec<Uuid> = row.try_get(5)?;
    Ok((position, Some((event, audience.into_iter().map(UserId::from_uuid).collect()))))
}
