//! Log rows of a kind this build does not know (written by a newer one) are skipped by
//! every reader of the log: `sync` serves the known events around them, pages stay whole,
//! and the search indexer goes past them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test helpers")]

use std::sync::Arc;

use messaging_core::id::UserId;
use messaging_core::model::Cursor;
use messaging_core::store::EventLog;
use messaging_core::{Messenger, SendMessage};
use messaging_store_sqlite::SqliteStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_event_kinds_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kinds.db");
    let (alice, bob) = (UserId::new(), UserId::new());
    let first = {
        let messenger =
            Messenger::new(Arc::new(SqliteStore::open(&path).await.unwrap())).await.unwrap();
        messenger.send(alice, SendMessage::to_peer(bob, None, "before")).await.unwrap().message
    };
    // Positions 1 (conversation.created) and 2 (message.created) are known; 3 and 4 are of
    // kinds no build knows yet, one pointing at the message, one at nothing.
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        let pk: i64 = conn
            .query_row("SELECT pk FROM messages WHERE id = ?1", [first.id.as_bytes()], |r| r.get(0))
            .unwrap();
        let audience: Vec<u8> = [&bob.as_bytes()[..], &alice.as_bytes()[..]].concat();
        for (position, kind, message_pk) in [(3_i64, 99_i64, Some(pk)), (4, 1000, None)] {
            conn.execute(
                "INSERT INTO events (position, kind, conversation_id, message_pk, audience) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                rusqlite::params![
                    position,
                    kind,
                    first.conversation_id.as_bytes(),
                    message_pk,
                    audience
                ],
            )
            .unwrap();
            for user in [bob, alice] {
                conn.execute(
                    "INSERT INTO event_audience (user_id, position) VALUES (?1, ?2)",
                    rusqlite::params![user.as_bytes(), position],
                )
                .unwrap();
            }
        }
    }

    let store = SqliteStore::open(&path).await.unwrap();
    let messenger = Messenger::new(Arc::new(store.clone())).await.unwrap();
    let after = messenger
        .send(alice, SendMessage::to_conversation(first.conversation_id, "after words"))
        .await
        .unwrap()
        .message;
    let head = store.head().await.unwrap();
    assert_eq!(head, 5);

    let all = store.read_events(bob, 0, head, 100).await.unwrap();
    let positions: Vec<u64> = all.iter().map(|e| e.position).collect();
    assert_eq!(positions, [1, 2, 5], "the known events around the unknown ones");
    // A page of two after position 1 is still two events: the unknown rows do not count.
    let page = store.read_events(bob, 1, head, 2).await.unwrap();
    assert_eq!(page.iter().map(|e| e.position).collect::<Vec<_>>(), [2, 5]);

    // Through the service, one event a page: every known event once, in order.
    let session = messenger.connect(bob).await.unwrap();
    let mut cursor = Cursor::at(0);
    let mut names = Vec::new();
    loop {
        let page = session.sync(Some(cursor), Some(1)).await.unwrap();
        names.extend(page.events.iter().map(|e| e.event.name()));
        cursor = page.cursor;
        if !page.has_more {
            break;
        }
    }
    assert_eq!(names, ["conversation.created", "message.created", "message.created"]);

    // The indexer read past positions 3 and 4 to index the message at 5.
    store.wait_for_search_index().await.unwrap();
    let found = messenger.search(bob, "after", None, None).await.unwrap();
    assert_eq!(found.iter().map(|m| m.id).collect::<Vec<_>>(), [after.id]);
    let found = messenger.search(bob, "before", None, None).await.unwrap();
    assert_eq!(found.iter().map(|m| m.id).collect::<Vec<_>>(), [first.id]);
}
