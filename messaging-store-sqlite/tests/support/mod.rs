//! Helpers shared by the SQLite store's test files.

#![allow(dead_code, reason = "each test file uses some of them")]

use std::future::Future;
use std::pin::Pin;

use messaging_core::id::{ConversationId, MessageId, UserId};
use messaging_core::store::{
    ConsumerLog, ContextPage, ConversationPage, ConversationStore, EventLog, HistoryWindow,
    MessageStore, NewMessage, SearchQuery, SocialStore,
};
use messaging_core::time::Timestamp;
use messaging_store_sqlite::SqliteStore;

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

/// One store call, by name, as the tests drive them.
pub(crate) type Call<'a> = Pin<Box<dyn Future<Output = messaging_core::Result<()>> + Send + 'a>>;

/// The ids (and the log head) the store calls below are made with.
pub(crate) struct Ids {
    pub(crate) alice: UserId,
    pub(crate) bob: UserId,
    pub(crate) conversation: ConversationId,
    pub(crate) message: MessageId,
    pub(crate) head: u64,
}

/// One call of every read path of the store (each `SqliteStore::read` caller), by name.
pub(crate) fn every_read<'a>(store: &'a SqliteStore, s: &Ids) -> Vec<(&'static str, Call<'a>)> {
    let (alice, bob, c, m, head) = (s.alice, s.bob, s.conversation, s.message, s.head);
    vec![
        ("conversation", Box::pin(async move { store.conversation(c).await.map(drop) })),
        (
            "find_direct",
            Box::pin(async move { store.find_direct(alice, bob, None).await.map(drop) }),
        ),
        (
            "conversations",
            Box::pin(async move {
                let page = ConversationPage {
                    user: alice,
                    before: None,
                    limit: 10,
                    archived: false,
                    context: None,
                };
                store.conversations(page).await.map(drop)
            }),
        ),
        ("summary", Box::pin(async move { store.summary(alice, c).await.map(drop) })),
        (
            "conversations_by_context",
            Box::pin(async move {
                let page = ContextPage { context: "listing".into(), before: None, limit: 10 };
                store.conversations_by_context(page).await.map(drop)
            }),
        ),
        ("peers", Box::pin(async move { store.peers(alice).await.map(drop) })),
        ("message", Box::pin(async move { store.message(m).await.map(drop) })),
        (
            "find_by_client_msg_id",
            Box::pin(async move { store.find_by_client_msg_id(c, alice, "key").await.map(drop) }),
        ),
        (
            "history",
            Box::pin(async move { store.history(c, HistoryWindow::Latest, 10).await.map(drop) }),
        ),
        (
            "search",
            Box::pin(async move {
                let query = SearchQuery {
                    user: bob,
                    terms: vec!["hello".into()],
                    conversation_id: None,
                    limit: 10,
                };
                store.search(query).await.map(drop)
            }),
        ),
        ("unread", Box::pin(async move { store.unread(bob, Timestamp::now()).await.map(drop) })),
        ("head", Box::pin(async move { store.head().await.map(drop) })),
        (
            "read_events",
            Box::pin(async move { store.read_events(bob, 0, head, 10).await.map(drop) }),
        ),
        ("read_log", Box::pin(async move { store.read_log(0, head, 10).await.map(drop) })),
        ("last_seen", Box::pin(async move { store.last_seen(&[alice, bob]).await.map(drop) })),
        ("blocks", Box::pin(async move { store.blocks(alice, None, 10).await.map(drop) })),
        // Not `revoked_at`: answered from memory while the file has few revocations (all
        // of them are loaded at open; see `revocations.rs`), so it takes no connection.
    ]
}
