//! What the [`Messenger`](crate::Messenger) answers with when a reply is a page: a page of
//! history, of the conversation list, of `sync`, each saying how to continue.

use crate::model::{ConversationSummary, Cursor, LoggedEvent, Message};

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
