//! Server frames (docs/protocol.md "Frames", "Events"): replies, pushes and `hello`, encoded to
//! JSON text.
//!
//! Pushes are encoded once per event, whatever the number of recipients: the bytes are
//! cached in the event's [`Shared`] slot and every session sends the same buffer.

use bytes::Bytes;
use messaging_core::model::Shared;
use messaging_core::{
    Conversation, ConversationId, Cursor, Error, Event, LoggedEvent, MemberSettings, Message,
    PresenceStatus, Push, Receipt, ReceiptKind, Signal, Timestamp, UserId,
};
use serde::Serialize;
use serde_json::Value;

/// `{"type":"reply","id":…,"ok":true,"data":…}` around a `data` object already encoded
/// by [`encode_data`] (the transports share one encoding of each answer).
pub(crate) fn ok_encoded(id: &Value, data: &[u8]) -> Bytes {
    let mut frame = Vec::with_capacity(data.len() + 48);
    frame.extend_from_slice(br#"{"type":"reply","id":"#);
    if serde_json::to_writer(&mut frame, id).is_err() {
        frame.extend_from_slice(b"null");
    }
    frame.extend_from_slice(br#","ok":true,"data":"#);
    frame.extend_from_slice(data);
    frame.push(b'}');
    Bytes::from(frame)
}

/// An answer's `data` object, encoded once for whichever transport carries it.
pub(crate) fn encode_data<T: Serialize>(data: &T) -> Bytes {
    encode(data)
}

/// `{"type":"reply","id":…,"ok":false,"error":{"code":…,"message":…}}`.
pub(crate) fn error(id: &Value, error: &Error) -> Bytes {
    #[derive(Serialize)]
    struct Failure {
        code: &'static str,
        message: String,
    }
    #[derive(Serialize)]
    struct Reply<'a> {
        r#type: &'static str,
        id: &'a Value,
        ok: bool,
        error: Failure,
    }
    let error = Failure { code: error.code(), message: error.public_message() };
    encode(&Reply { r#type: "reply", id, ok: false, error })
}

/// The settings `hello` announces (docs/protocol.md "Connecting", "Limits and robustness").
#[derive(Clone, Copy, Debug, Serialize)]
pub(crate) struct HelloLimits {
    pub(crate) max_frame_bytes: usize,
    pub(crate) max_body_bytes: usize,
    pub(crate) ops_per_s: u32,
    pub(crate) ops_burst: u32,
    pub(crate) max_queue_frames: usize,
    pub(crate) answer_timeout_ms: u64,
    pub(crate) reply_budget_bytes: usize,
    pub(crate) max_queue_bytes: usize,
    pub(crate) max_sessions_per_user: usize,
    pub(crate) search_per_s: u32,
    pub(crate) search_burst: u32,
}

/// The first frame of a session.
pub(crate) fn hello(
    user_id: UserId,
    session_id: &str,
    cursor: Cursor,
    heartbeat_s: u64,
    limits: &HelloLimits,
) -> Bytes {
    encode(&Hello { r#type: Some("hello"), user_id, session_id, cursor, heartbeat_s, limits })
}

/// The hello object without `type`: the data of an event stream's `hello` event.
pub(crate) fn hello_data(
    user_id: UserId,
    session_id: &str,
    cursor: Cursor,
    heartbeat_s: u64,
    limits: &HelloLimits,
) -> Bytes {
    encode(&Hello { r#type: None, user_id, session_id, cursor, heartbeat_s, limits })
}

#[derive(Serialize)]
struct Hello<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    r#type: Option<&'static str>,
    user_id: UserId,
    session_id: &'a str,
    #[serde(serialize_with = "as_text")]
    cursor: Cursor,
    heartbeat_s: u64,
    limits: &'a HelloLimits,
}

fn as_text<S: serde::Serializer>(cursor: &Cursor, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(cursor)
}

/// The `data` of a durable event (an event stream's `data:` line).
pub(crate) fn event_data(event: &Event) -> Bytes {
    encode(&EventData::of(event))
}

/// The `data` of an ephemeral event; `None` for a signal that is no frame (`revoked`).
pub(crate) fn signal_data(signal: &Signal) -> Option<Bytes> {
    SignalData::of(signal).map(|data| encode(&data))
}

/// A push, encoded once per event and shared by every session that receives it; `None`
/// for a signal that is no frame (`revoked`).
pub(crate) fn push(push: &Push) -> Option<Bytes> {
    match push {
        Push::Event(event) => Some(durable(event)),
        Push::Signal(signal) => ephemeral(signal),
    }
}

fn durable(event: &Shared<LoggedEvent>) -> Bytes {
    event.encoded(|logged| encode(&SyncedEvent::of(logged)))
}

fn ephemeral(signal: &Shared<Signal>) -> Option<Bytes> {
    let data = SignalData::of(signal.get())?;
    Some(signal.encoded(|signal| {
        #[derive(Serialize)]
        struct Push<'a> {
            r#type: &'static str,
            event: &'static str,
            data: SignalData<'a>,
        }
        encode(&Push { r#type: "event", event: signal.name(), data })
    }))
}

/// The `data` of a durable event; also the elements of `sync`'s `events`.
#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum EventData<'a> {
    Conversation {
        conversation: &'a Conversation,
    },
    Reaction {
        message: &'a Message,
        user_id: UserId,
        emoji: &'a str,
    },
    Message {
        message: &'a Message,
    },
    Read {
        conversation_id: ConversationId,
        user_id: UserId,
        read_seq: u64,
        at: Timestamp,
    },
    Delivered {
        conversation_id: ConversationId,
        user_id: UserId,
        delivered_seq: u64,
        at: Timestamp,
    },
    Member(&'a MemberSettings),
    /// An event kind this server version does not know how to show.
    Unknown {},
}

impl<'a> EventData<'a> {
    pub(crate) fn of(event: &'a Event) -> Self {
        match event {
            Event::ConversationCreated(conversation) | Event::ConversationUpdated(conversation) => {
                Self::Conversation { conversation }
            }
            Event::MessageCreated(message)
            | Event::MessageEdited(message)
            | Event::MessageDeleted(message) => Self::Message { message },
            Event::Receipt(receipt) => Self::receipt(receipt),
            Event::Reaction(change) => Self::Reaction {
                message: &change.message,
                user_id: change.user_id,
                emoji: &change.emoji,
            },
            Event::MemberUpdated(settings) => Self::Member(settings),
            _ => Self::Unknown {},
        }
    }

    /// A receipt's data; also the reply of `read` and `delivered`.
    pub(crate) fn receipt(r: &Receipt) -> Self {
        match r.kind {
            ReceiptKind::Read => Self::Read {
                conversation_id: r.conversation_id,
                user_id: r.user_id,
                read_seq: r.seq,
                at: r.at,
            },
            ReceiptKind::Delivered => Self::Delivered {
                conversation_id: r.conversation_id,
                user_id: r.user_id,
                delivered_seq: r.seq,
                at: r.at,
            },
        }
    }
}

/// A durable event's frame: the push, and each element of `sync`'s `events` (one shape,
/// built in one place).
#[derive(Serialize)]
pub(crate) struct SyncedEvent<'a> {
    r#type: &'static str,
    event: &'static str,
    cursor: String,
    data: EventData<'a>,
}

impl<'a> SyncedEvent<'a> {
    pub(crate) fn of(logged: &'a LoggedEvent) -> Self {
        Self {
            r#type: "event",
            event: logged.event.name(),
            cursor: logged.cursor().to_string(),
            data: EventData::of(&logged.event),
        }
    }
}

#[derive(Serialize)]
#[serde(untagged)]
enum SignalData<'a> {
    Typing {
        conversation_id: ConversationId,
        user_id: UserId,
        state: messaging_core::TypingState,
        expires_in_ms: u64,
    },
    Presence(&'a PresenceStatus),
    Unknown {},
}

impl<'a> SignalData<'a> {
    /// `None` for `revoked`: it tells the server to end the user's sessions and is never
    /// sent to a client.
    fn of(signal: &'a Signal) -> Option<Self> {
        Some(match signal {
            Signal::Typing { conversation_id, user_id, state, expires_in_ms } => Self::Typing {
                conversation_id: *conversation_id,
                user_id: *user_id,
                state: *state,
                expires_in_ms: *expires_in_ms,
            },
            Signal::Presence(status) => Self::Presence(status),
            Signal::Revoked { .. } => return None,
            _ => Self::Unknown {},
        })
    }
}

/// Serializes a frame. Our frame types hold only strings, numbers and JSON values, which
/// cannot fail to serialize; should one ever fail, the client gets an `internal` error
/// frame rather than a dropped reply.
fn encode<T: Serialize>(frame: &T) -> Bytes {
    match serde_json::to_vec(frame) {
        Ok(bytes) => Bytes::from(bytes),
        Err(e) => {
            tracing::error!(error = %e, "a frame failed to serialize");
            Bytes::from_static(
                br#"{"type":"reply","id":null,"ok":false,"error":{"code":"internal","message":"internal error"}}"#,
            )
        }
    }
}
