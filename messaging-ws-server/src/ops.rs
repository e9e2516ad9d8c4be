//! Runs one parsed operation for the connection's user and encodes its reply.
//!
//! Every rule (membership, blocks, policy, ranges, byte limits) is `Messenger`'s; this
//! module only maps docs/protocol.md's parameters onto its calls and its results onto the
//! documented `data` shapes. The acting user is always the connection's authenticated one.
//!
//! Answer bound (docs/protocol.md "Limits and robustness"): every operation is answered within
//! `answer_timeout`. When it passes, the answer is `unavailable` and the operation's future
//! is dropped: a store write not started by then is dropped by the store (its caller is
//! gone), never committed late; one already started may still commit, which a retry with
//! the same `client_msg_id` resolves to the one message.
//!
//! Store failures reach the client as their code and the library's own words only
//! (`Error::public_message`); the full error, with its source chain, goes to the log at
//! warn with the operation's name, and each one counts in `messaging_store_errors_total`.

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use messaging_core::{
    Conversation, ConversationSummary, ConversationsQuery, Cursor, Error, HistoryQuery, Message,
    Messenger, PresenceStatus, Result, SendMessage, UserId,
};
use serde::Serialize;
use serde_json::Value;

use crate::frames::{self, EventData, SyncedEvent};
use crate::metrics::Metrics;
use crate::request::Op;

/// Who is asking, on which session.
#[derive(Clone)]
pub(crate) struct Caller {
    pub(crate) messenger: Messenger,
    pub(crate) user: UserId,
    /// The session's `hello.cursor`: `sync` never goes past it (later events are pushed).
    pub(crate) hello: Cursor,
}

/// Runs `op` within `bound` and returns the reply frame (a success, the error it ended
/// with, or `unavailable` when the bound passed) and its outcome for the metrics.
pub(crate) async fn run(
    caller: Caller,
    id: Value,
    op: Op,
    bound: Duration,
    metrics: Arc<Metrics>,
) -> (Bytes, &'static str) {
    match answer_within(&caller, op, bound, &metrics).await {
        Ok(answer) => (frames::ok_encoded(&id, &answer.data), "ok"),
        Err(error) => (frames::error(&id, &error), error.code()),
    }
}

/// Runs `op` within `bound`: its answer, the error it ended with (a store failure logged
/// and counted), or `unavailable` when the bound passed (the operation dropped).
pub(crate) async fn answer_within(
    caller: &Caller,
    op: Op,
    bound: Duration,
    metrics: &Metrics,
) -> Result<Answer> {
    let name = op.name();
    match tokio::time::timeout(bound, answer(caller, op)).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(error)) => {
            if error.is_backend() {
                report(metrics, name, &error);
            }
            Err(error)
        }
        Err(_) => {
            tracing::warn!(
                op = name,
                bound_ms = u64::try_from(bound.as_millis()).unwrap_or(u64::MAX),
                "no answer within the answer bound: answered unavailable, operation dropped"
            );
            metrics.store_error("timeout");
            Err(Error::unavailable(
                "no answer within the answer bound; retry later (a send retried with its \
                 client_msg_id is stored once)",
            ))
        }
    }
}

/// Logs a store failure in full and counts it.
pub(crate) fn report(metrics: &Metrics, op: &'static str, error: &Error) {
    tracing::warn!(op, code = error.code(), error = %error, sources = %sources(error), "store failure");
    metrics.store_error(error.code());
}

/// The source chain of `error`, outermost first, `: `-separated (empty when it has none).
fn sources(error: &dyn StdError) -> String {
    let mut chain = String::new();
    let mut next = error.source();
    while let Some(source) = next {
        if !chain.is_empty() {
            chain.push_str(": ");
        }
        chain.push_str(&source.to_string());
        next = source.source();
    }
    chain
}

/// An operation's success: its `data` object, encoded, and whether it created something
/// (a conversation or a message: HTTP answers 201 then).
pub(crate) struct Answer {
    pub(crate) data: Bytes,
    pub(crate) created: bool,
}

impl Answer {
    fn of<T: Serialize>(data: &T) -> Self {
        Self { data: frames::encode_data(data), created: false }
    }

    fn created<T: Serialize>(data: &T, created: bool) -> Self {
        Self { data: frames::encode_data(data), created }
    }
}

/// Runs `op` for the caller: the one place each operation meets the messenger, whatever
/// the transport (WebSocket frames, HTTP routes).
pub(crate) async fn answer(caller: &Caller, op: Op) -> Result<Answer> {
    let (m, user) = (&caller.messenger, caller.user);
    Ok(match op {
        Op::Open { peer, context } => {
            let opened = m.open(user, peer, context.as_deref()).await?;
            #[derive(Serialize)]
            struct Data<'a> {
                conversation: &'a Conversation,
                created: bool,
            }
            let data = Data { conversation: &opened.conversation, created: opened.created };
            Answer::created(&data, opened.created)
        }
        Op::Send { to, body, attachments, reply_to_seq, client_msg_id, metadata } => {
            let send = SendMessage { to, body, attachments, reply_to_seq, client_msg_id, metadata };
            let sent = m.send(user, send).await?;
            #[derive(Serialize)]
            struct Data<'a> {
                message: &'a Message,
                created: bool,
            }
            Answer::created(&Data { message: &sent.message, created: sent.created }, sent.created)
        }
        Op::History { conversation_id, before_seq, after_seq, limit } => {
            let query = HistoryQuery { before_seq, after_seq, limit };
            let page = m.history(user, conversation_id, query).await?;
            #[derive(Serialize)]
            struct Data<'a> {
                messages: &'a [Message],
                has_more: bool,
            }
            Answer::of(&Data { messages: &page.messages, has_more: page.has_more })
        }
        Op::Conversations { limit, before, archived, context } => {
            let query = ConversationsQuery { limit, before, archived, context };
            let page = m.conversations(user, query).await?;
            #[derive(Serialize)]
            struct Data<'a> {
                conversations: &'a [ConversationSummary],
                next: Option<&'a str>,
            }
            Answer::of(&Data { conversations: &page.conversations, next: page.next.as_deref() })
        }
        Op::Conversation { conversation_id } => {
            let summary = m.conversation(user, conversation_id).await?;
            Answer::of(&SummaryData { conversation: &summary })
        }
        Op::React { message_id, emoji, state } => {
            let message = m.react(user, message_id, &emoji, state).await?;
            Answer::of(&MessageData { message: &message })
        }
        Op::Mute { conversation_id, until } => {
            let summary = m.mute(user, conversation_id, until).await?;
            Answer::of(&SummaryData { conversation: &summary })
        }
        Op::Archive { conversation_id, archived } => {
            let summary = m.archive(user, conversation_id, archived).await?;
            Answer::of(&SummaryData { conversation: &summary })
        }
        Op::Blocks { limit, after } => {
            let page = m.blocks(user, limit, after).await?;
            #[derive(Serialize)]
            struct Data<'a> {
                user_ids: &'a [UserId],
                has_more: bool,
            }
            Answer::of(&Data { user_ids: &page.user_ids, has_more: page.has_more })
        }
        Op::Read { conversation_id, up_to_seq } => {
            let receipt = m.mark_read(user, conversation_id, up_to_seq).await?;
            Answer::of(&EventData::receipt(&receipt))
        }
        Op::Delivered { conversation_id, up_to_seq } => {
            let receipt = m.mark_delivered(user, conversation_id, up_to_seq).await?;
            Answer::of(&EventData::receipt(&receipt))
        }
        Op::Edit { message_id, body } => {
            let message = m.edit(user, message_id, &body).await?;
            Answer::of(&MessageData { message: &message })
        }
        Op::Delete { message_id } => {
            let message = m.delete(user, message_id).await?;
            Answer::of(&MessageData { message: &message })
        }
        Op::Typing { conversation_id, state } => {
            m.typing(user, conversation_id, state).await?;
            Answer::of(&Empty {})
        }
        Op::Sync { cursor, limit } => {
            let after = cursor.as_deref().map(Cursor::parse).transpose()?;
            let page = m.sync(user, after, caller.hello, limit).await?;
            #[derive(Serialize)]
            struct Data<'a> {
                events: Vec<SyncedEvent<'a>>,
                cursor: String,
                has_more: bool,
            }
            let events = page.events.iter().map(SyncedEvent::of).collect();
            Answer::of(&Data { events, cursor: page.cursor.to_string(), has_more: page.has_more })
        }
        Op::Search { query, conversation_id, limit } => {
            let messages = m.search(user, &query, conversation_id, limit).await?;
            #[derive(Serialize)]
            struct Data<'a> {
                messages: &'a [Message],
            }
            Answer::of(&Data { messages: &messages })
        }
        Op::Unread => {
            let totals = m.unread(user).await?;
            Answer::of(&totals)
        }
        Op::Presence { user_ids } => {
            let presence = m.presence(user, &user_ids).await?;
            #[derive(Serialize)]
            struct Data<'a> {
                presence: &'a [PresenceStatus],
            }
            Answer::of(&Data { presence: &presence })
        }
        Op::Block { user_id } => {
            m.block(user, user_id).await?;
            Answer::of(&Empty {})
        }
        Op::Unblock { user_id } => {
            m.unblock(user, user_id).await?;
            Answer::of(&Empty {})
        }
        Op::Ping => Answer::of(&Empty {}),
    })
}

#[derive(Serialize)]
struct Empty {}

/// `{"conversation": ConversationSummary}`: the reply of `conversation`, `mute`, `archive`.
#[derive(Serialize)]
struct SummaryData<'a> {
    conversation: &'a ConversationSummary,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("pool timed out")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn the_source_chain_is_spelled_out() {
        let error = Error::backend_unavailable(Outer(std::io::Error::other("connection refused")));
        assert_eq!(sources(&error), "pool timed out: connection refused");
        assert_eq!(sources(&Error::RateLimited), "");
        assert!(!error.public_message().contains("refused"), "clients never read the cause");
    }
}

#[derive(Serialize)]
struct MessageData<'a> {
    message: &'a Message,
}
