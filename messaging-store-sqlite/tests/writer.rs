//! The writer thread's contract beyond the conformance suite: a write whose caller left
//! before it started is never committed, the health of the commit path (last commit, the
//! probe), a batch that cannot commit fails without stopping the writer, a panic breaks the
//! store loudly instead of silently, and blocks are bounded per user.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test helpers")]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use messaging_core::id::{ConversationId, UserId};
use messaging_core::model::CommittedEvent;
use messaging_core::store::{
    EventLog, FeedSink, HistoryWindow, MessageStore, SocialStore, StoreHealth,
};
use messaging_core::{Messenger, SendMessage};
use messaging_store_sqlite::SqliteStore;

/// A store with one conversation between two users.
async fn with_conversation(path: &std::path::Path) -> (SqliteStore, ConversationId, UserId) {
    let store = SqliteStore::open(path).await.unwrap();
    let messenger = Messenger::new(Arc::new(store.clone())).await.unwrap();
    let (alice, bob) = (UserId::new(), UserId::new());
    let first =
        messenger.send(alice, SendMessage::to_peer(bob, None, "first")).await.unwrap().message;
    (store, first.conversation_id, alice)
}

/// Holds the database's write lock from a second connection until dropped or released.
struct WriteLock(rusqlite::Connection);

impl WriteLock {
    fn take(path: &std::path::Path) -> Self {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        Self(conn)
    }

    fn release(self) {
        self.0.execute_batch("COMMIT").unwrap();
    }
}

/// A send dropped by its caller while the writer was busy (here: waiting for a lock) is
/// dropped with it: when the writer gets to it, it is not run, so the message is never
/// stored, though the write queued before it commits. Likewise the index job of a dropped
/// sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_caller_left_is_never_committed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("abandoned.db");
    let (store, c, alice) = with_conversation(&path).await;
    let head = store.head().await.unwrap();

    let lock = WriteLock::take(&path);
    let held = support::new_message(c, alice, "held");
    let held_id = held.id;
    let writer = store.clone();
    let in_flight = tokio::spawn(async move { writer.append(held).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut dropped = Vec::new();
    for i in 0..5 {
        let message = support::new_message(c, alice, &format!("dropped {i}"));
        dropped.push(message.id);
        let outcome = tokio::time::timeout(Duration::from_millis(50), store.append(message)).await;
        assert!(outcome.is_err(), "the writer is held: the send cannot be answered yet");
    }
    // A sync reading past the audience index first asks the writer to extend it: that job
    // too is dropped with its caller.
    let sync =
        tokio::time::timeout(Duration::from_millis(50), store.read_events(alice, 0, head, 10));
    assert!(sync.await.is_err(), "the writer is held: the index cannot be extended yet");
    lock.release();

    let appended = in_flight.await.unwrap().unwrap();
    assert_eq!(appended.message.id, held_id);
    // A write after the dropped ones: once it is answered, the writer went past them.
    store.probe_commit().await.unwrap();
    for id in dropped {
        assert_eq!(store.message(id).await.unwrap(), None, "a dropped send was committed");
    }
    let history = store.history(c, HistoryWindow::Latest, 10).await.unwrap();
    let bodies: Vec<&str> = history.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["first", "held"]);
    assert_eq!(store.head().await.unwrap(), head + 1, "one more event: the held send's");
    let conn = rusqlite::Connection::open(&path).unwrap();
    let indexed: i64 = conn
        .query_row("SELECT value FROM meta WHERE key = 'audience_indexed_upto'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(indexed, 0, "the dropped sync's index job was run");
}

/// `last_commit` is `None` until the writer commits, then moves with each commit, the
/// probe's included; the probe logs no event; a batch that cannot commit (the write lock
/// held past the busy timeout) moves nothing, fails `unavailable` without SQLite's text,
/// and the writer serves the next batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_the_commits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("health.db");
    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(store.last_commit(), None, "no commit since opening");

    let before = Instant::now();
    store.probe_commit().await.unwrap();
    let first = store.last_commit().expect("the probe committed");
    assert!(first >= before);
    assert_eq!(store.head().await.unwrap(), 0, "a probe logs no event");

    let messenger = Messenger::new(Arc::new(store.clone())).await.unwrap();
    let (alice, bob) = (UserId::new(), UserId::new());
    messenger.send(alice, SendMessage::to_peer(bob, None, "hi")).await.unwrap();
    let second = store.last_commit().unwrap();
    assert!(second > first, "a send's commit moves it");
    let head = store.head().await.unwrap();

    let lock = WriteLock::take(&path);
    let error = store.probe_commit().await.expect_err("the write lock is held");
    assert_eq!(error.code(), "unavailable", "{error}");
    assert!(!error.public_message().contains("lock"), "{}", error.public_message());
    assert_eq!(store.last_commit(), Some(second), "a failed batch moves nothing");
    lock.release();

    store.probe_commit().await.unwrap();
    assert!(store.last_commit().unwrap() > second, "the writer carried on");
    assert_eq!(store.head().await.unwrap(), head);
}

/// A feed sink that panics on the first commit it is given.
#[derive(Default)]
struct Panicky {
    fired: AtomicBool,
}

impl FeedSink for Panicky {
    fn start(&self, _head: u64) {}

    fn committed(&self, _events: &[CommittedEvent]) {
        if !self.fired.swap(true, Ordering::SeqCst) {
            panic!("a feed sink bug");
        }
    }
}

/// A panic on the writer's thread (here in a feed sink, after the commit) neither loses the
/// committed write's answer nor leaves callers waiting: the store reports itself broken and
/// fails every later write and probe at once with `unavailable`; reads still answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_on_the_writer_breaks_the_store_loudly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("panic.db");
    let (store, c, alice) = with_conversation(&path).await;
    let sink: Arc<dyn FeedSink> = Arc::new(Panicky::default());
    store.attach_feed(sink.clone()).await.unwrap();

    let committed = support::new_message(c, alice, "committed");
    let id = committed.id;
    let appended = store.append(committed).await.expect("committed before the sink panicked");
    assert_eq!(appended.message.id, id);
    assert_eq!(store.message(id).await.unwrap().map(|m| m.body), Some("committed".into()));

    for _ in 0..3 {
        let refused = support::new_message(c, alice, "refused");
        let refused_id = refused.id;
        let error = tokio::time::timeout(Duration::from_secs(10), store.append(refused))
            .await
            .expect("answered at once, not left waiting")
            .expect_err("a broken store takes no write");
        assert_eq!(error.code(), "unavailable", "{error}");
        assert_eq!(store.message(refused_id).await.unwrap(), None);
    }
    let error = store.probe_commit().await.expect_err("the probe fails on a broken store");
    assert_eq!(error.code(), "unavailable");
    assert!(store.head().await.is_ok(), "reads still answer");
}

/// `block` is bounded per blocker: past `max_blocks` a new block is a conflict and nothing
/// is written, re-blocking is never refused, unblocking makes room, and concurrent blocks
/// cannot pass the bound together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_are_bounded_per_user() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blocks.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let me = UserId::new();
    let blocked: Vec<UserId> = (0..3).map(|_| UserId::new()).collect();
    for user in &blocked {
        store.block(me, *user, 3).await.unwrap();
    }
    let extra = UserId::new();
    let error = store.block(me, extra, 3).await.expect_err("a fourth block past 3");
    assert_eq!(error.code(), "conflict", "{error}");
    assert!(!store.is_blocked_between(me, extra).await.unwrap());
    store.block(me, blocked[1], 3).await.expect("re-blocking at the limit is no error");
    let other = UserId::new();
    store.block(other, extra, 3).await.expect("the bound is per blocker");

    store.unblock(me, blocked[0]).await.unwrap();
    store.block(me, extra, 3).await.unwrap();
    assert!(store.is_blocked_between(extra, me).await.unwrap());

    // Twenty at once with room for two more: exactly two pass.
    let crowd: Vec<UserId> = (0..20).map(|_| UserId::new()).collect();
    let tasks: Vec<_> = crowd
        .iter()
        .map(|user| {
            let (store, user) = (store.clone(), *user);
            tokio::spawn(async move { store.block(me, user, 5).await })
        })
        .collect();
    let mut passed = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => passed += 1,
            Err(error) => assert_eq!(error.code(), "conflict", "{error}"),
        }
    }
    assert_eq!(passed, 2);
    let mut now_blocked = 0;
    for user in &crowd {
        if store.is_blocked_between(me, *user).await.unwrap() {
            now_blocked += 1;
        }
    }
    assert_eq!(now_blocked, 2, "the in-memory set holds only what was written");
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let stored: i64 = conn
        .query_row("SELECT count(*) FROM blocks WHERE blocker = ?1", [me.as_bytes()], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, 5);
}

/// Sends `count` messages of ~1 KB from 32 senders at once (batches), one conversation each.
async fn send_many(messenger: &Messenger, senders: &[(UserId, ConversationId)], count: usize) {
    let mut tasks = Vec::new();
    for (i, (sender, conversation)) in senders.iter().copied().enumerate() {
        let messenger = messenger.clone();
        let share = count / senders.len() + usize::from(i < count % senders.len());
        tasks.push(tokio::spawn(async move {
            for n in 0..share {
                let body = format!("{n} {}", "w".repeat(1000));
                messenger
                    .send(sender, SendMessage::to_conversation(conversation, body))
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

fn wal_size(db: &std::path::Path) -> u64 {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(wal).map_or(0, |m| m.len())
}

/// A reader holding an old snapshot keeps the WAL from restarting, so under writes it grows
/// (here past 40 MiB); once the reader lets go, the WAL restarts and its file is cut back to
/// the 32 MiB bound. Before, a WAL file kept its largest size for good, and under steady
/// load took a small disk whole (see `disk_full.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wal_grown_behind_a_long_reader_is_truncated_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.db");
    let options = messaging_store_sqlite::SqliteOptions::default()
        .synchronous(messaging_store_sqlite::Synchronous::Normal);
    let store = SqliteStore::open_with(&path, options).await.unwrap();
    let messenger = Messenger::new(Arc::new(store.clone())).await.unwrap();
    let mut senders = Vec::new();
    for _ in 0..32 {
        let (a, b) = (UserId::new(), UserId::new());
        senders.push((a, messenger.open(a, b, None).await.unwrap().conversation.id));
    }
    let reader = rusqlite::Connection::open(&path).unwrap();
    reader.execute_batch("BEGIN").unwrap();
    let _: i64 = reader.query_row("SELECT count(*) FROM messages", [], |r| r.get(0)).unwrap();
    let mut sent = 0;
    while wal_size(&path) < 40 << 20 {
        send_many(&messenger, &senders, 2_000).await;
        sent += 2_000;
        assert!(sent <= 400_000, "the WAL did not grow behind the reader");
    }
    reader.execute_batch("COMMIT").unwrap();
    drop(reader);
    let deadline = Instant::now() + Duration::from_secs(30);
    while wal_size(&path) > 32 << 20 {
        assert!(
            Instant::now() < deadline,
            "the WAL kept {} bytes after the reader let go",
            wal_size(&path)
        );
        send_many(&messenger, &senders, 64).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let page = store.history(senders[0].1, HistoryWindow::Latest, 1).await.unwrap();
    assert_eq!(page.len(), 1, "the data is all there");
}

/// A writer with nothing queued brings the audience index up to date by itself, in steps
/// of its own, long before a batch would have to (at 8,192 events behind): sends that
/// come one at a time leave it at most 1,024 events behind, and a `sync` then finds the
/// index ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_writer_keeps_the_audience_index_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("idle-index.db");
    let (store, c, alice) = with_conversation(&path).await;
    for i in 0..1_500 {
        store.append(support::new_message(c, alice, &format!("m{i}"))).await.unwrap();
    }
    let head = store.head().await.unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let indexed: i64 = conn
        .query_row("SELECT value FROM meta WHERE key = 'audience_indexed_upto'", [], |r| r.get(0))
        .unwrap();
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM event_audience WHERE position <= ?1", [indexed], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(rows >= indexed, "{rows} audience rows up to {indexed}");
    let indexed = u64::try_from(indexed).unwrap();
    assert!(indexed <= head, "indexed {indexed} past the head {head}");
    assert!(head - indexed < 1_024, "the index trails by {} events", head - indexed);
}
