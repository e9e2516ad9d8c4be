//! The domain model: what a conversation, a message, a receipt and an event are.
//!
//! These types are what stores return and what the service hands to transports. They
//! serialize with serde to the field names of the wire protocol, so an application that
//! exposes them in its own API gets the same shapes clients of the server see.

use std::fmt;
use std::sync::OnceLock;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::id::{ConversationId, MessageId, UserId};
use crate::time::Timestamp;

/// The kind of a conversation. Only direct (two-member) conversations exist today; the enum
/// keeps the wire field honest and leaves room for more.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ConversationKind {
    /// Between exactly two users, unique per (unordered pair, context).
    Direct,
}

/// A conversation between two users.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    /// Its id.
    pub id: ConversationId,
    /// Always [`ConversationKind::Direct`] today.
    pub kind: ConversationKind,
    /// The application's key (a listing, a match, an order); `None` when missing or empty.
    pub context: Option<String>,
    /// The two members, lower id first.
    pub members: [UserId; 2],
    /// When it was created.
    pub created_at: Timestamp,
    /// When the newest message was sent; `None` without messages.
    pub last_message_at: Option<Timestamp>,
    /// The seq of the newest message; 0 without messages.
    pub last_seq: u64,
    /// A JSON object of the host's (set through the service handle), or `None`.
    pub metadata: Option<serde_json::Value>,
}

impl Conversation {
    /// Whether `user` is one of the two members.
    #[must_use]
    pub fn has_member(&self, user: UserId) -> bool {
        self.members.contains(&user)
    }

    /// The other member, if `user` is a member.
    #[must_use]
    pub fn peer_of(&self, user: UserId) -> Option<UserId> {
        match self.members {
            [a, b] if a == user => Some(b),
            [a, b] if b == user => Some(a),
            _ => None,
        }
    }

    /// Last activity: the newest message, else creation. Edits and deletes are not activity.
    #[must_use]
    pub fn activity_at(&self) -> Timestamp {
        self.last_message_at.unwrap_or(self.created_at)
    }
}

/// One message. A deleted message is a tombstone: `deleted`, empty body, no metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Its id.
    pub id: MessageId,
    /// The conversation it belongs to.
    pub conversation_id: ConversationId,
    /// Position in the conversation: from 1, no gaps.
    pub seq: u64,
    /// Who sent it; `None` for a system message (posted by the host).
    pub sender_id: Option<UserId>,
    /// A member's message or the host's; `System` exactly when `sender_id` is `None`.
    pub kind: MessageKind,
    /// The text; empty for a tombstone, and may be empty when it has attachments.
    pub body: String,
    /// The files it points to, in the sender's order; empty for a tombstone.
    pub attachments: Vec<Attachment>,
    /// The seq of the earlier message of the conversation it replies to.
    pub reply_to_seq: Option<u64>,
    /// Its reactions, one entry per emoji in order of first reaction; empty for a tombstone.
    pub reactions: Vec<Reaction>,
    /// A JSON object of the application's, compared as a JSON value.
    pub metadata: Option<serde_json::Value>,
    /// The sender's idempotency key, if one was given.
    pub client_msg_id: Option<String>,
    /// When it was sent.
    pub created_at: Timestamp,
    /// When it was last edited.
    pub edited_at: Option<Timestamp>,
    /// Whether it is a tombstone.
    pub deleted: bool,
}

/// Who wrote a message: a member, or the host application itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    /// Sent by a member (its `sender_id`).
    #[default]
    User,
    /// Posted by the host ("Match created", "Your order shipped"): no sender, unread for
    /// both members, editable or deletable by no user.
    System,
}

/// A file a message points to: metadata only; the file lives in the host's storage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// Where the file is: an `https://` or `http://` URL with a host.
    pub url: String,
    /// Its MIME type, `type/subtype`.
    pub mime: String,
    /// A file name to show.
    pub name: Option<String>,
    /// Its size in bytes.
    pub size: Option<u64>,
    /// Width in pixels (images, video).
    pub width: Option<u64>,
    /// Height in pixels (images, video).
    pub height: Option<u64>,
    /// Length in milliseconds (audio, video).
    pub duration_ms: Option<u64>,
}

impl Attachment {
    /// An attachment of `url` with MIME type `mime`, without the optional fields.
    pub fn new(url: impl Into<String>, mime: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            mime: mime.into(),
            name: None,
            size: None,
            width: None,
            height: None,
            duration_ms: None,
        }
    }
}

/// One emoji on a message and who reacted with it, in order of reaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaction {
    /// The emoji, compared byte for byte.
    pub emoji: String,
    /// The users who reacted with it, first reaction first.
    pub user_ids: Vec<UserId>,
}

/// A conversation as one of its members sees it in their list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationSummary {
    /// The conversation.
    #[serde(flatten)]
    pub conversation: Conversation,
    /// The newest message, a tombstone included.
    pub last_message: Option<Message>,
    /// Messages from the peer after `read_seq` that are not deleted.
    pub unread_count: u64,
    /// The viewer's read marker.
    pub read_seq: u64,
    /// The peer's read marker.
    pub peer_read_seq: u64,
    /// The peer's delivered marker.
    pub peer_delivered_seq: u64,
    /// Until when the viewer muted it (left out of their unread totals); `None` when not
    /// muted or the time has passed.
    pub muted_until: Option<Timestamp>,
    /// Whether the viewer archived it (listed only when archived ones are asked for).
    pub archived: bool,
    /// When the peer's read marker last moved.
    pub peer_read_at: Option<Timestamp>,
    /// When the peer's delivered marker last moved.
    pub peer_delivered_at: Option<Timestamp>,
}

impl ConversationSummary {
    /// The summary as read at `now`: a mute whose time has passed reads as none.
    #[must_use]
    pub fn settled(mut self, now: Timestamp) -> Self {
        self.muted_until = self.muted_until.filter(|until| *until > now);
        self
    }
}

/// One member's own settings of a conversation; the peer never sees them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberSettings {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// The member.
    pub user_id: UserId,
    /// Muted until this time (left out of unread totals until then).
    pub muted_until: Option<Timestamp>,
    /// Archived: listed only when archived conversations are asked for.
    pub archived: bool,
}

impl MemberSettings {
    /// The settings as read at `now`: a mute whose time has passed reads as none.
    #[must_use]
    pub fn settled(mut self, now: Timestamp) -> Self {
        self.muted_until = self.muted_until.filter(|until| *until > now);
        self
    }
}

/// Whether a reaction is being put on or taken off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReactionState {
    /// The user reacts with the emoji.
    Added,
    /// The user takes the reaction back.
    Removed,
}

/// A reaction put on or taken off a message: the data of `reaction.added` and
/// `reaction.removed`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReactionChange {
    /// The message, in its current state.
    pub message: Message,
    /// Who reacted (as of the event).
    pub user_id: UserId,
    /// The emoji (as of the event).
    pub emoji: String,
    /// Put on or taken off.
    pub state: ReactionState,
}

/// Which marker a receipt moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptKind {
    /// The member has read up to a seq.
    Read,
    /// The member's device has received up to a seq.
    Delivered,
}

/// A marker position of one member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Receipt {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// The member whose marker this is.
    pub user_id: UserId,
    /// Which marker.
    pub kind: ReceiptKind,
    /// The marker's value.
    pub seq: u64,
    /// When the marker moved to this value.
    pub at: Timestamp,
}

/// Unread totals of a user over all their conversations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnreadTotals {
    /// Unread messages in all conversations.
    pub total: u64,
    /// Conversations with at least one unread message.
    pub conversations: u64,
}

/// Whether a user is online, as another user may see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceStatus {
    /// The user.
    pub user_id: UserId,
    /// Whether they hold at least one session.
    pub online: bool,
    /// When their last session closed; `None` while online or if never seen.
    pub last_seen: Option<Timestamp>,
}

/// A durable event: written to the log in the transaction of the change it describes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum Event {
    /// A conversation was created (only when it was new).
    ConversationCreated(Conversation),
    /// A message was sent.
    MessageCreated(Message),
    /// A message was edited.
    MessageEdited(Message),
    /// A message was deleted; carries the tombstone.
    MessageDeleted(Message),
    /// A member's read or delivered marker moved forward.
    Receipt(Receipt),
    /// A member reacted to a message or took a reaction back.
    Reaction(ReactionChange),
    /// A member changed their own settings (mute, archive); seen by that member only.
    MemberUpdated(MemberSettings),
    /// The host replaced the conversation's metadata.
    ConversationUpdated(Conversation),
}

impl Event {
    /// The protocol's name for this event.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::ConversationCreated(_) => "conversation.created",
            Self::MessageCreated(_) => "message.created",
            Self::MessageEdited(_) => "message.edited",
            Self::MessageDeleted(_) => "message.deleted",
            Self::Receipt(r) => match r.kind {
                ReceiptKind::Read => "receipt.read",
                ReceiptKind::Delivered => "receipt.delivered",
            },
            Self::Reaction(r) => match r.state {
                ReactionState::Added => "reaction.added",
                ReactionState::Removed => "reaction.removed",
            },
            Self::MemberUpdated(_) => "member.updated",
            Self::ConversationUpdated(_) => "conversation.updated",
        }
    }

    /// The conversation the event belongs to.
    #[must_use]
    pub fn conversation_id(&self) -> ConversationId {
        match self {
            Self::ConversationCreated(c) | Self::ConversationUpdated(c) => c.id,
            Self::MessageCreated(m) | Self::MessageEdited(m) | Self::MessageDeleted(m) => {
                m.conversation_id
            }
            Self::Receipt(r) => r.conversation_id,
            Self::Reaction(r) => r.message.conversation_id,
            Self::MemberUpdated(s) => s.conversation_id,
        }
    }

    /// The message the event carries, if any.
    #[must_use]
    pub fn message(&self) -> Option<&Message> {
        match self {
            Self::MessageCreated(m) | Self::MessageEdited(m) | Self::MessageDeleted(m) => Some(m),
            Self::Reaction(r) => Some(&r.message),
            _ => None,
        }
    }
}

/// A durable event at its position in the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LoggedEvent {
    /// Dense, in commit order, from 1.
    pub position: u64,
    /// What happened.
    pub event: Event,
}

impl LoggedEvent {
    /// The cursor just after this event.
    #[must_use]
    pub fn cursor(&self) -> Cursor {
        Cursor::at(self.position)
    }
}

/// A committed event with the users who may see it, as the feed hands it to fan-out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedEvent {
    /// The event at its position.
    pub logged: LoggedEvent,
    /// The users whose sessions receive it.
    pub audience: Vec<UserId>,
}

/// One event of the log as a durable consumer reads it ([`EventLog`](crate::store::EventLog)
/// serves sessions; [`ConsumerLog::read_log`](crate::store::ConsumerLog::read_log) serves
/// consumers such as the server's webhook deliverer): the event, who caused it, whom it is
/// for, and what a delete removed.
///
/// Events logged before a store kept actors and removed attachments (SQLite and
/// PostgreSQL schema version 7) read with `actor: None` and no removed attachments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct LogEntry {
    /// The event at its position, objects in their current state (as
    /// [`read_events`](crate::store::EventLog::read_events) gives them).
    pub logged: LoggedEvent,
    /// Who caused it: the sender, editor, deleter, reader, reactor, opener, the member
    /// whose settings changed; `None` for the host's service calls (system messages,
    /// service opens, moderation and account-deletion deletes, metadata updates).
    pub actor: Option<UserId>,
    /// The users the event is for (its audience, the actor included when the actor is in
    /// it), each with their mute setting of the event's conversation as stored when read.
    pub recipients: Vec<Recipient>,
    /// For `message.deleted`: the attachments the message had before it became a
    /// tombstone (so the host can delete the files); empty otherwise.
    pub removed_attachments: Vec<Attachment>,
}

impl LogEntry {
    /// An entry of the log, as a store builds it for
    /// [`read_log`](crate::store::ConsumerLog::read_log).
    #[must_use]
    pub fn new(
        logged: LoggedEvent,
        actor: Option<UserId>,
        recipients: Vec<Recipient>,
        removed_attachments: Vec<Attachment>,
    ) -> Self {
        Self { logged, actor, recipients, removed_attachments }
    }

    /// The event's position in the log.
    #[must_use]
    pub fn position(&self) -> u64 {
        self.logged.position
    }
}

/// One user an event is for, as a [`LogEntry`] names them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Recipient {
    /// The user.
    pub user_id: UserId,
    /// Their mute of the event's conversation as stored when the entry was read: a time
    /// that has passed is kept as it is (compare it with the time that matters to you,
    /// as [`MemberSettings::settled`] does); `None` when not muted.
    pub muted_until: Option<Timestamp>,
}

impl Recipient {
    /// `user_id`, muted until `muted_until` (as stored).
    #[must_use]
    pub fn new(user_id: UserId, muted_until: Option<Timestamp>) -> Self {
        Self { user_id, muted_until }
    }

    /// Whether the mute is in force at `now`.
    #[must_use]
    pub fn muted_at(&self, now: Timestamp) -> bool {
        self.muted_until.is_some_and(|until| until > now)
    }
}

/// An ephemeral signal: never stored, never replayed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Signal {
    /// A member started or stopped typing.
    Typing {
        /// The conversation.
        conversation_id: ConversationId,
        /// Who is typing.
        user_id: UserId,
        /// Started or stopped.
        state: TypingState,
        /// When receivers should drop the indicator.
        expires_in_ms: u64,
    },
    /// A user's first session opened or last session closed.
    Presence(PresenceStatus),
    /// `user_id`'s tokens were revoked ([`ServiceHandle::revoke`](crate::ServiceHandle::revoke)):
    /// sent to that user's own sessions, on every instance, so that each transport ends
    /// them (the WebSocket server with close code 4001, an event stream by ending it). It
    /// is for the transport, never a frame to the client.
    ///
    /// Like every signal it can be lost: an instance whose listener missed the
    /// notification (its connection dropped meanwhile), or a session whose queue
    /// overflowed (that session ends as lagged anyway). A transport therefore also asks
    /// [`Messenger::token_accepted`](crate::Messenger::token_accepted) again on its
    /// heartbeat: the stores answer `revoked_at` from the database again after their
    /// listener reconnects (and within their cache's time to live at worst), so the session
    /// still ends, later.
    Revoked {
        /// Whose tokens were revoked.
        user_id: UserId,
    },
}

impl Signal {
    /// The protocol's name for this signal.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Typing { .. } => "typing",
            Self::Presence(_) => "presence",
            Self::Revoked { .. } => "revoked",
        }
    }
}

/// Typing state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TypingState {
    /// Started typing (repeat at most every half of `expires_in_ms`).
    Started,
    /// Stopped typing.
    Stopped,
}

/// A value shared by every recipient, with a slot for the transport's encoding of it, so a
/// frame is serialized once however many sessions receive it.
#[derive(Debug)]
pub struct Shared<T> {
    value: T,
    encoded: OnceLock<Bytes>,
}

impl<T> Shared<T> {
    /// Wraps a value.
    pub fn new(value: T) -> Self {
        Self { value, encoded: OnceLock::new() }
    }

    /// The value.
    pub fn get(&self) -> &T {
        &self.value
    }

    /// The transport's encoding, computed by the first caller and reused by the rest.
    pub fn encoded(&self, encode: impl FnOnce(&T) -> Bytes) -> Bytes {
        self.encoded.get_or_init(|| encode(&self.value)).clone()
    }
}

/// An opaque, versioned position in the event log, as clients keep it.
///
/// The text form is `v1` followed by the position in lowercase hex; clients must treat it
/// as opaque. A later version can change the encoding and still read `v1` cursors.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cursor(u64);

impl Cursor {
    const PREFIX: &'static str = "v1";

    /// The cursor just after the event at `position` (0: before every event).
    #[must_use]
    pub const fn at(position: u64) -> Self {
        Self(position)
    }

    /// The log position this cursor stands after.
    #[must_use]
    pub const fn position(self) -> u64 {
        self.0
    }

    /// Parses the text form; anything this library did not produce is `Invalid`.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let bad = || Error::invalid("cursor was not issued by this server");
        let hex = s.strip_prefix(Self::PREFIX).ok_or_else(bad)?;
        if hex.is_empty() || hex.len() > 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        if hex.bytes().any(|b| b.is_ascii_uppercase()) || (hex.len() > 1 && hex.starts_with('0')) {
            return Err(bad());
        }
        u64::from_str_radix(hex, 16).map(Self).map_err(|_| bad())
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{:x}", Self::PREFIX, self.0)
    }
}

impl fmt::Debug for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cursor({})", self.0)
    }
}

/// Where a page of a user's conversation list starts: strictly older than this activity,
/// ties broken by conversation id (descending).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActivityKey {
    /// Last activity of the conversation the previous page ended with.
    pub at: Timestamp,
    /// Its id.
    pub id: ConversationId,
}

impl ActivityKey {
    const PREFIX: &'static str = "p1";

    /// The key of a conversation.
    #[must_use]
    pub fn of(conversation: &Conversation) -> Self {
        Self { at: conversation.activity_at(), id: conversation.id }
    }

    /// The opaque text form handed to clients as `next`.
    #[must_use]
    pub fn encode(&self) -> String {
        format!("{}{:016x}{}", Self::PREFIX, self.at.as_millis(), self.id.as_uuid().simple())
    }

    /// Parses the text form of [`ActivityKey::encode`].
    pub fn decode(s: &str) -> Result<Self, Error> {
        let bad = || Error::invalid("page cursor was not issued by this server");
        let rest = s.strip_prefix(Self::PREFIX).ok_or_else(bad)?;
        if rest.len() != 48 || !rest.is_ascii() {
            return Err(bad());
        }
        let (millis, id) = rest.split_at(16);
        let millis = u64::from_str_radix(millis, 16).map_err(|_| bad())?;
        let id = uuid::Uuid::try_parse(id).map_err(|_| bad())?;
        Ok(Self {
            at: Timestamp::from_millis(millis.cast_signed()),
            id: ConversationId::from_uuid(id),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_refuses_foreign_text() {
        for p in [0, 1, 255, u64::MAX] {
            let c = Cursor::at(p);
            assert_eq!(Cursor::parse(&c.to_string()).unwrap(), c);
        }
        for bad in ["", "v1", "v2a", "v1xyz", "v10a", "v1A", "12", "v1 1", "v1ffffffffffffffffff"] {
            assert!(Cursor::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn activity_key_round_trips() {
        let key = ActivityKey { at: Timestamp::now(), id: ConversationId::new() };
        assert_eq!(ActivityKey::decode(&key.encode()).unwrap(), key);
        assert!(ActivityKey::decode("p1zz").is_err());
        assert!(ActivityKey::decode(&key.encode().replace("p1", "p2")).is_err());
    }

    #[test]
    fn shared_encodes_once() {
        let shared = Shared::new(5_u32);
        let mut calls = 0;
        let a = shared.encoded(|v| {
            calls += 1;
            Bytes::from(v.to_string())
        });
        let b = shared.encoded(|_| unreachable!());
        assert_eq!((a, b, calls), (Bytes::from("5"), Bytes::from("5"), 1));
    }
}
