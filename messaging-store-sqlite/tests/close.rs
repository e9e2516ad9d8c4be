//! `SqliteStore::close`: what was written before it is in the file after reopening, every
//! connection is closed, every call after it fails with a clear error (never a panic), and
//! it waits for the writer without holding the runtime's thread.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test helpers")]

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use messaging_core::id::{ConversationId, MessageId, UserId};
use messaging_core::model::ReactionState;
use messaging_core::store::{
    ConsumerLog, ConversationStore, HistoryWindow, MemberChange, MemberUpdate, MessageStore,
    MetadataUpdate, ReactionUpdate, SearchQuery, SocialStore, StoreHealth,
};
use messaging_core::time::Timestamp;
use messaging_core::{HistoryQuery, Messenger, SendMessage};
use messaging_store_sqlite::SqliteStore;
use support::{Call, Ids, every_read};

/// A holder id for the consumer calls.
fn uuid() -> uuid::Uuid {
    *UserId::new().as_uuid()
}

fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// One call of every kind the store serves (writes, reads, the search index, the in-memory
/// blocks and revocations, the feed), and the messenger's, by name.
fn every_call<'a>(
    store: &'a SqliteStore,
    messenger: &'a Messenger,
    (alice, bob, c, m): (UserId, UserId, ConversationId, MessageId),
) -> Vec<(&'static str, Call<'a>)> {
    let reads = every_read(store, &Ids { alice, bob, conversation: c, message: m, head: 1 });
    let mut calls: Vec<(&'static str, Call<'a>)> = vec![
        (
            "append",
            Box::pin(async move {
                store.append(support::new_message(c, alice, "late")).await.map(drop)
            }),
        ),
        ("block", Box::pin(async move { store.block(alice, bob, 10).await })),
        ("probe_commit", Box::pin(async move { store.probe_commit().await })),
        (
            "claim_consumer",
            Box::pin(async move {
                let lease = Duration::from_secs(5);
                store.claim_consumer("c", uuid(), lease, 0).await.map(drop)
            }),
        ),
        (
            "commit_consumer",
            Box::pin(async move {
                let lease = Duration::from_secs(5);
                store.commit_consumer("c", uuid(), 1, lease).await.map(drop)
            }),
        ),
        ("release_consumer", Box::pin(async move { store.release_consumer("c", uuid()).await })),
        ("revoke", Box::pin(async move { store.revoke(alice, Timestamp::now()).await })),
        (
            "set_last_seen",
            Box::pin(async move { store.set_last_seen(alice, Timestamp::now()).await }),
        ),
        (
            "update_member",
            Box::pin(async move {
                let update = MemberUpdate {
                    conversation_id: c,
                    user_id: bob,
                    change: MemberChange::Archive(true),
                    now: Timestamp::now(),
                    audience: vec![bob],
                };
                store.update_member(update).await.map(drop)
            }),
        ),
        (
            "set_metadata",
            Box::pin(async move {
                let update =
                    MetadataUpdate { conversation_id: c, metadata: None, audience: vec![bob] };
                store.set_metadata(update).await.map(drop)
            }),
        ),
        (
            "react",
            Box::pin(async move {
                let update = ReactionUpdate {
                    message_id: m,
                    user_id: bob,
                    emoji: "👍".into(),
                    state: ReactionState::Added,
                    max_per_user: 20,
                    audience: vec![alice, bob],
                };
                store.react(update).await.map(drop)
            }),
        ),
        (
            "search without terms",
            Box::pin(async move {
                let query =
                    SearchQuery { user: bob, terms: vec![], conversation_id: None, limit: 10 };
                store.search(query).await.map(drop)
            }),
        ),
        ("wait_for_search_index", Box::pin(store.wait_for_search_index())),
        (
            "is_blocked_between",
            Box::pin(async move { store.is_blocked_between(alice, bob).await.map(drop) }),
        ),
        ("peers_among", Box::pin(async move { store.peers_among(alice, &[bob]).await.map(drop) })),
        (
            "a new messenger (attach_feed)",
            Box::pin(async move { Messenger::new(Arc::new(store.clone())).await.map(drop) }),
        ),
        (
            "messenger.send",
            Box::pin(async move {
                messenger.send(alice, SendMessage::to_conversation(c, "late")).await.map(drop)
            }),
        ),
        (
            "messenger.history",
            Box::pin(
                async move { messenger.history(bob, c, HistoryQuery::default()).await.map(drop) },
            ),
        ),
    ];
    calls.extend(reads);
    calls
}

/// Written, closed (through one clone), every call refused on every clone, closed again
/// harmlessly, reopened: the data is there. Closing closed every connection: the last one,
/// read-write, folded the WAL back into the file and removed it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_store_refuses_every_call_and_reopens_with_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("close.db");
    let store = Arc::new(SqliteStore::open(&path).await.unwrap());
    let messenger = Messenger::new(store.clone()).await.unwrap();
    let (alice, bob) = (UserId::new(), UserId::new());
    let first =
        messenger.send(alice, SendMessage::to_peer(bob, None, "hello")).await.unwrap().message;
    let c = first.conversation_id;
    let second = messenger
        .send(alice, SendMessage::to_conversation(c, "searchable words"))
        .await
        .unwrap()
        .message;
    messenger.mark_read(bob, c, 1).await.unwrap();
    // Kept in memory from now on: refused after close all the same.
    assert_eq!(store.revoked_at(alice).await.unwrap(), None);

    let other_clone = SqliteStore::clone(&store);
    other_clone.close().await.unwrap();
    assert!(!beside(&path, "-wal").exists(), "the WAL outlived close");
    assert!(!beside(&path, "-search-wal").exists(), "the search file's WAL outlived close");

    for (name, call) in every_call(&store, &messenger, (alice, bob, c, first.id)) {
        let outcome = tokio::time::timeout(Duration::from_secs(10), call)
            .await
            .unwrap_or_else(|_| panic!("{name} hung after close"));
        let error = outcome.expect_err(name);
        assert_eq!(error.code(), "unavailable", "{name}: {error}");
        assert_eq!(error.public_message(), "unavailable: the SQLite store is closed", "{name}");
    }
    store.close().await.unwrap();
    other_clone.close().await.unwrap();
    drop((messenger, store, other_clone));

    let store = SqliteStore::open(&path).await.unwrap();
    let messenger = Messenger::new(Arc::new(store.clone())).await.unwrap();
    let page = messenger.history(bob, c, HistoryQuery::default()).await.unwrap();
    assert_eq!(page.messages, [first, second.clone()]);
    assert_eq!(messenger.unread(bob).await.unwrap().total, 1, "the receipt was kept");
    let found = messenger.search(bob, "words", None, None).await.unwrap();
    assert_eq!(found.iter().map(|m| m.id).collect::<Vec<_>>(), [second.id]);
    store.close().await.unwrap();
}

/// On a single-threaded runtime, `close` waits for a write the writer is stuck on (a second
/// connection holds the write lock) without holding the thread: the test's own task still
/// runs, releases the lock, and the write queued before `close` is committed and answered.
/// Had `close` blocked the thread, the lock would have outlasted the writer's busy timeout
/// and the write would have failed.
#[tokio::test(flavor = "current_thread")]
async fn close_waits_for_queued_writes_without_blocking_the_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queued.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let messenger = Messenger::new(Arc::new(store.clone())).await.unwrap();
    let (alice, bob) = (UserId::new(), UserId::new());
    let first =
        messenger.send(alice, SendMessage::to_peer(bob, None, "first")).await.unwrap().message;
    let c = first.conversation_id;
    drop(messenger);

    let lock = rusqlite::Connection::open(&path).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    let queued = support::new_message(c, alice, "queued before close");
    let queued_id = queued.id;
    let writer = store.clone();
    let write = tokio::spawn(async move { writer.append(queued).await });
    // The writer takes the job and waits for the lock.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let closer = store.clone();
    let close = tokio::spawn(async move { closer.close().await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !close.is_finished(),
        "close returned while the queued write could not commit: it did not wait for it, \
         or it held the runtime's thread past the writer's busy timeout"
    );
    assert!(!write.is_finished(), "the writer is held: the write cannot be answered yet");
    lock.execute_batch("COMMIT").unwrap();
    drop(lock);

    let appended = write.await.unwrap().expect("a write queued before close is committed");
    assert_eq!(appended.message.id, queued_id);
    close.await.unwrap().unwrap();
    let error = store.append(support::new_message(c, alice, "after close")).await.unwrap_err();
    assert_eq!(error.public_message(), "unavailable: the SQLite store is closed");
    drop(store);

    let store = SqliteStore::open(&path).await.unwrap();
    let history = store.history(c, HistoryWindow::Latest, 10).await.unwrap();
    let bodies: Vec<&str> = history.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["first", "queued before close"]);
    store.close().await.unwrap();
}
