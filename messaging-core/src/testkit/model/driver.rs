//! Runs a resolved step through the real [`Messenger`] (and its service handle) and hands
//! back the store's answer untouched: the driver decides nothing.

use crate::Messenger;
use crate::error::Result;
use crate::id::{ConversationId, MessageId};
use crate::model::{ConversationSummary, Message, ReactionState, Receipt, ReceiptKind};
use crate::pages::Sent;
use crate::requests::SendMessage;
use crate::store::Opened;

use super::reference::{Call, Dest, Model};

/// What a step answered.
#[derive(Debug)]
pub(crate) enum Actual {
    Opened(Opened),
    Sent(Sent),
    Message(Message),
    Receipt(Receipt),
    Unit,
    Summary(Box<ConversationSummary>),
}

/// Ids no store has seen, for the ops that name an unknown object.
pub(crate) struct Unknown {
    pub(crate) conversation: ConversationId,
    pub(crate) message: MessageId,
}

/// Runs `call` as its user (or as the host) through `m`.
pub(crate) async fn run(
    m: &Messenger,
    model: &Model,
    unknown: &Unknown,
    call: &Call,
) -> Result<Actual> {
    let user = |i: usize| model.users[i];
    let conv = |c: Option<usize>| model.conv_id(c).unwrap_or(unknown.conversation);
    let msg = |name| model.msg_id(name).unwrap_or(unknown.message);
    let keyed = |message: SendMessage, key: &Option<String>| match key {
        Some(key) => message.client_msg_id(key.clone()),
        None => message,
    };
    Ok(match call {
        Call::Open { actor, peer, context, service: false } => {
            Actual::Opened(m.open(user(*actor), user(*peer), *context).await?)
        }
        Call::Open { actor, peer, context, service: true } => {
            Actual::Opened(m.service().open(user(*actor), user(*peer), *context, None).await?)
        }
        Call::Send { actor, to, body, key, reply_to } => {
            let message = match to {
                Dest::Conv(c) => SendMessage::to_conversation(conv(*c), body.clone()),
                Dest::Peer { peer, context } => {
                    SendMessage::to_peer(user(*peer), *context, body.clone())
                }
            };
            let mut message = keyed(message, key);
            message.reply_to_seq = *reply_to;
            Actual::Sent(m.send(user(*actor), message).await?)
        }
        Call::Post { conv: c, body, key } => {
            let message = keyed(SendMessage::to_conversation(conv(*c), body.clone()), key);
            Actual::Sent(m.service().post(message).await?)
        }
        Call::Edit { actor, msg: name, body } => {
            Actual::Message(m.edit(user(*actor), msg(*name), body).await?)
        }
        Call::Delete { actor, msg: name } => {
            Actual::Message(m.delete(user(*actor), msg(*name)).await?)
        }
        Call::Moderate { msg: name } => {
            Actual::Message(m.service().delete_message(msg(*name)).await?)
        }
        Call::Mark { actor, conv: c, kind: ReceiptKind::Read, up_to } => {
            Actual::Receipt(m.mark_read(user(*actor), conv(*c), *up_to).await?)
        }
        Call::Mark { actor, conv: c, kind: ReceiptKind::Delivered, up_to } => {
            Actual::Receipt(m.mark_delivered(user(*actor), conv(*c), *up_to).await?)
        }
        Call::Block { actor, user: other, on: true } => {
            m.block(user(*actor), user(*other)).await?;
            Actual::Unit
        }
        Call::Block { actor, user: other, on: false } => {
            m.unblock(user(*actor), user(*other)).await?;
            Actual::Unit
        }
        Call::React { actor, msg: name, emoji, add } => {
            let state = if *add { ReactionState::Added } else { ReactionState::Removed };
            Actual::Message(m.react(user(*actor), msg(*name), emoji, state).await?)
        }
        Call::Mute { actor, conv: c, until } => {
            Actual::Summary(Box::new(m.mute(user(*actor), conv(*c), *until).await?))
        }
        Call::Archive { actor, conv: c, archived } => {
            Actual::Summary(Box::new(m.archive(user(*actor), conv(*c), *archived).await?))
        }
    })
}
