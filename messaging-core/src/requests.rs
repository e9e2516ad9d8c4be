//! What callers hand the [`Messenger`](crate::Messenger): a message to send and where it
//! goes, which part of a history or of a conversation list to read. Plain data, validated
//! by the messenger.

use crate::id::{ConversationId, UserId};
use crate::model::Attachment;

/// Where a message goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendTarget {
    /// An existing conversation the sender is a member of.
    Conversation(ConversationId),
    /// The direct conversation with `peer` about `context`, opened if needed.
    Peer {
        /// The other user.
        peer: UserId,
        /// The conversation's context.
        context: Option<String>,
    },
}

/// A message to send.
#[derive(Clone, Debug)]
pub struct SendMessage {
    /// Where it goes.
    pub to: SendTarget,
    /// The text (may be empty when there are attachments).
    pub body: String,
    /// Files the message points to (metadata only; at most `Limits::max_attachments`).
    pub attachments: Vec<Attachment>,
    /// The seq of an earlier message of the same conversation this one replies to.
    pub reply_to_seq: Option<u64>,
    /// Idempotency key: a retry with the same key returns the original message.
    pub client_msg_id: Option<String>,
    /// A JSON object of the application's.
    pub metadata: Option<serde_json::Value>,
}

impl SendMessage {
    /// A message to an existing conversation.
    pub fn to_conversation(conversation_id: ConversationId, body: impl Into<String>) -> Self {
        Self {
            to: SendTarget::Conversation(conversation_id),
            body: body.into(),
            attachments: Vec::new(),
            reply_to_seq: None,
            client_msg_id: None,
            metadata: None,
        }
    }

    /// A message to a peer, opening the conversation about `context` if needed.
    pub fn to_peer(peer: UserId, context: Option<&str>, body: impl Into<String>) -> Self {
        Self {
            to: SendTarget::Peer { peer, context: context.map(str::to_owned) },
            body: body.into(),
            attachments: Vec::new(),
            reply_to_seq: None,
            client_msg_id: None,
            metadata: None,
        }
    }

    /// Sets the idempotency key.
    #[must_use]
    pub fn client_msg_id(mut self, id: impl Into<String>) -> Self {
        self.client_msg_id = Some(id.into());
        self
    }

    /// Adds an attachment.
    #[must_use]
    pub fn attachment(mut self, attachment: Attachment) -> Self {
        self.attachments.push(attachment);
        self
    }

    /// Makes it a reply to the message at `seq` of the same conversation.
    #[must_use]
    pub fn reply_to(mut self, seq: u64) -> Self {
        self.reply_to_seq = Some(seq);
        self
    }

    /// Sets the metadata object.
    #[must_use]
    pub fn metadata(mut self, metadata: serde_json::Value) -> Self {
        self.metadata = Some(metadata);
        self
    }
}

/// Which part of a history to read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HistoryQuery {
    /// The messages just before this seq.
    pub before_seq: Option<u64>,
    /// The messages just after this seq.
    pub after_seq: Option<u64>,
    /// Page size (default 50, 1–100).
    pub limit: Option<usize>,
}

/// Which page of a user's conversation list to read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConversationsQuery {
    /// Page size (default 20, 1–100).
    pub limit: Option<usize>,
    /// The `next` of the previous page.
    pub before: Option<String>,
    /// `false` (default): conversations the user has not archived; `true`: archived ones.
    pub archived: bool,
    /// Only conversations with exactly this context.
    pub context: Option<String>,
}
