//! What the [`Messenger`](crate::Messenger) answers with when a reply is more than one
//! object: a sent message and whether it is new; a page of history, of a conversation
//! list, of `sync`, of blocks, each saying how to continue.

use crate::id::UserId;
use crate::model::{Conversation, ConversationSummary, Cursor, LoggedEvent, Message};

/// The answer to a send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    /// The message: new, or for a recognised retry the original in its current state.
    pub message: Message,
    /// `false` for a recognised retry (nothing was stored or emitted).
    pub created: bool,
}

/// A page of history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryPage {
    /// Ascending seq.
    pub messages: Vec<Message>,
    /// Whether more exist beyond the page in its direction.
    pub has_more: bool,
}

/// A page of a conversation list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConversationsPage {
    /// Newest activity first.
    pub conversations: Vec<ConversationSummary>,
    /// Pass as `before` for the next page; `None` exactly when nothing follows.
    pub next: Option<String>,
}

/// A page of `sync`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncPage {
    /// Durable events after the cursor, in log order, in their objects' current state.
    pub events: Vec<LoggedEvent>,
    /// Where to continue from.
    pub cursor: Cursor,
    /// Whether more events exist before the bound.
    pub has_more: bool,
}

/// A page of every conversation with one context (the host's view).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContextConversationsPage {
    /// Newest activity first.
    pub conversations: Vec<Conversation>,
    /// Pass as `before` for the next page; `None` exactly when nothing follows.
    pub next: Option<String>,
}

/// A page of the users a user blocks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlocksPage {
    /// Ascending.
    pub user_ids: Vec<UserId>,
    /// Whether more follow (pass the last id as `after`).
    pub has_more: bool,
}
