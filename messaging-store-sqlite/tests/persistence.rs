//! What only a file on disk can show: data survives reopening, and a schema newer than the
//! build refuses to open.

use std::sync::Arc;

use messaging_core::{Cursor, HistoryQuery, Messenger, SendMessage, UserId};
use messaging_store_sqlite::{SCHEMA_VERSION, SqliteOptions, SqliteStore, Synchronous};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_written_before_closing_is_read_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("persist.db");
    let (alice, bob) = (UserId::new(), UserId::new());

    let (conversation_id, sent) = {
        let store = SqliteStore::open(&path).await.unwrap();
        let messenger = Messenger::new(Arc::new(store)).await.unwrap();
        let first = messenger.send(alice, SendMessage::to_peer(bob, None, "one")).await.unwrap();
        let second = messenger
            .send(alice, SendMessage::to_conversation(first.conversation_id, "two"))
            .await
            .unwrap();
        messenger.mark_read(bob, first.conversation_id, 1).await.unwrap();
        (first.conversation_id, vec![first, second])
    };

    let store =
        SqliteStore::open_with(&path, SqliteOptions::default().synchronous(Synchronous::Normal))
            .await
            .unwrap();
    let messenger = Messenger::new(Arc::new(store)).await.unwrap();
    let page = messenger.history(bob, conversation_id, HistoryQuery::default()).await.unwrap();
    assert_eq!(page.messages, sent);
    assert_eq!(messenger.unread(bob).await.unwrap().total, 1);
    let third =
        messenger.send(bob, SendMessage::to_conversation(conversation_id, "three")).await.unwrap();
    assert_eq!(third.seq, 3, "seq continues after reopening");
    let session = messenger.connect(alice).await.unwrap();
    assert_eq!(session.cursor().position(), 5, "log positions continue after reopening");
    // The per-user index `sync` reads trails the log and was not brought up to date before
    // closing: it is rebuilt from the log, so every event is still served.
    let page = session.sync(Some(Cursor::at(0)), None).await.unwrap();
    let names: Vec<&str> = page.events.iter().map(|e| e.event.name()).collect();
    assert_eq!(
        names,
        [
            "conversation.created",
            "message.created",
            "message.created",
            "receipt.read",
            "message.created"
        ]
    );
}

#[tokio::test]
async fn a_newer_schema_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.db");
    drop(SqliteStore::open(&path).await.unwrap());
    {
        let conn = rusqlite_conn(&path);
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();
    }
    let err = SqliteStore::open(&path).await.unwrap_err();
    assert_eq!(err.code(), "unavailable");
    assert!(err.to_string().contains("newer"), "{err}");
}

#[allow(clippy::unwrap_used, reason = "test helper")]
fn rusqlite_conn(path: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}
