//! Helpers shared by the SQLite store's test files.

#![allow(dead_code, reason = "each test file uses some of them")]

use messaging_core::id::{ConversationId, MessageId, UserId};
use messaging_core::store::NewMessage;
use messaging_core::time::Timestamp;

/// A message of `sender` in `conversation_id`, seen by `sender` alone.
pub(crate) fn new_message(
    conversation_id: ConversationId,
    sender: UserId,
    body: &str,
) -> NewMessage {
    NewMessage {
        id: MessageId::new(),
        conversation_id,
        sender_id: Some(sender),
        body: body.to_owned(),
        attachments: Vec::new(),
        reply_to_seq: None,
        metadata: None,
        client_msg_id: None,
        created_at: Timestamp::now(),
        audience: vec![sender],
    }
}
