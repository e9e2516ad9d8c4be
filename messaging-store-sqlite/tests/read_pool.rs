//! The read pool under callers that give up: a read whose future is dropped mid-flight
//! gives its connection back, and a query that runs too long is interrupted, leaving its
//! connection usable. Also what a search costs: the caller's data, not the database's.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test helpers")]

mod support;

use std::path::Path;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use messaging_core::id::{ConversationId, MessageId, UserId};
use messaging_core::store::{ConversationStore, EventLog, MessageStore, SearchQuery, SocialStore};
use messaging_core::time::Timestamp;
use messaging_core::{Messenger, SendMessage};
use messaging_store_sqlite::{SqliteOptions, SqliteStore};
use support::{Ids, every_read};

async fn scene(store: &SqliteStore) -> Ids {
    let messenger = Messenger::new(Arc::new(store.clone())).await.unwrap();
    let (alice, bob) = (UserId::new(), UserId::new());
    let sent = messenger
        .send(alice, SendMessage::to_peer(bob, None, "hello there"))
        .await
        .unwrap()
        .message;
    store.set_last_seen(alice, sent.created_at).await.unwrap();
    let head = store.head().await.unwrap();
    // Brings the audience index and the search index up to the head, so the calls below
    // go straight to their query (no writer job first, no wait for the indexer).
    store.read_events(bob, 0, head, 10).await.unwrap();
    store.wait_for_search_index().await.unwrap();
    Ids { alice, bob, conversation: sent.conversation_id, message: sent.id, head }
}

/// Every read path, dropped mid-flight many more times than there are connections, then
/// each still answers: no connection was lost with a dropped future.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_dropped_mid_flight_give_their_connection_back() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions::default().readers(2);
    let store = SqliteStore::open_with(dir.path().join("cancel.db"), options).await.unwrap();
    let scene = scene(&store).await;

    let mut cancelled = std::collections::BTreeMap::new();
    for _ in 0..40 {
        for (name, mut read) in every_read(&store, &scene) {
            // Polled once (it takes a connection and starts its query on a blocking
            // thread), then dropped, as a request future is at its answer bound.
            let first = std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await;
            if first.is_pending() {
                *cancelled.entry(name).or_insert(0) += 1;
            }
            drop(read);
        }
    }
    for (name, _) in every_read(&store, &scene) {
        assert!(
            cancelled.get(name).copied().unwrap_or(0) > 2,
            "{name} was dropped mid-flight too rarely to lose both connections: {cancelled:?}"
        );
    }
    for round in 0..3 {
        for (name, read) in every_read(&store, &scene) {
            tokio::time::timeout(Duration::from_secs(30), read)
                .await
                .unwrap_or_else(|_| panic!("{name} hung (round {round})"))
                .unwrap_or_else(|e| panic!("{name} failed after cancellations: {e}"));
        }
    }
}

/// Messages written straight into the file: `count` messages of `others`' conversations
/// (each between two fresh users), every one with the word "common".
fn fill(path: &Path, count: i64) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let tx = conn.unchecked_transaction().unwrap();
    {
        let mut conversation = tx
            .prepare(
                "INSERT INTO conversations \
                 (id, user_lo, user_hi, context, created_at, last_seq, num) \
                 VALUES (?1, ?2, ?3, '', 0, ?4, \
                         (SELECT coalesce(max(num), 0) + 1 FROM conversations))",
            )
            .unwrap();
        let mut member = tx
            .prepare(
                "INSERT INTO members (user_id, conversation_id, peer_id, activity_bucket) \
                 VALUES (?1, ?2, ?3, 0)",
            )
            .unwrap();
        let mut message = tx
            .prepare(
                "INSERT INTO messages (id, conversation_id, seq, sender_id, body, created_at) \
                 VALUES (?1, ?2, ?3, ?4, 'a common word', 0)",
            )
            .unwrap();
        let per_conversation: i64 = 50;
        for chunk in 0..(count + per_conversation - 1) / per_conversation {
            let (a, b) = (UserId::new(), UserId::new());
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            let c = ConversationId::new();
            let n = per_conversation.min(count - chunk * per_conversation);
            conversation
                .execute(rusqlite::params![c.as_bytes(), lo.as_bytes(), hi.as_bytes(), n])
                .unwrap();
            member.execute(rusqlite::params![lo.as_bytes(), c.as_bytes(), hi.as_bytes()]).unwrap();
            member.execute(rusqlite::params![hi.as_bytes(), c.as_bytes(), lo.as_bytes()]).unwrap();
            for seq in 1..=n {
                message
                    .execute(rusqlite::params![
                        MessageId::new().as_bytes(),
                        c.as_bytes(),
                        seq,
                        a.as_bytes()
                    ])
                    .unwrap();
            }
        }
    }
    tx.commit().unwrap();
}

/// The work (in progress-handler ticks) of `user`'s search for "common".
async fn search_work(store: &SqliteStore, user: UserId) -> (usize, u64) {
    let query =
        SearchQuery { user, terms: vec!["common".into()], conversation_id: None, limit: 20 };
    let before = store.read_work();
    let found = store.search(query).await.unwrap();
    (found.len(), store.read_work() - before)
}

/// A user with no conversation searching a word that thousands of other users' messages
/// hold finds nothing, and the search's work stays the same when the database grows
/// tenfold: it is driven by the caller's conversations, not by every match of the word.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_work_follows_the_callers_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("search.db");
    let loner = UserId::new();
    let (mut works, mut member_works) = (Vec::new(), Vec::new());
    for count in [2_000, 18_000] {
        drop(SqliteStore::open(&path).await.unwrap());
        fill(&path, count);
        // The search index follows the log: one `message.created` event per new message.
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            let (head, last_pk): (i64, i64) = conn
                .query_row(
                    "SELECT coalesce(max(position), 0), coalesce(max(message_pk), 0) FROM events",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            conn.execute(
                "INSERT INTO events (position, kind, conversation_id, message_pk, audience) \
                 SELECT ?1 + row_number() OVER (ORDER BY pk), 2, conversation_id, pk, x'' \
                 FROM messages WHERE pk > ?2",
                [head, last_pk],
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path).await.unwrap();
        store.wait_for_search_index().await.unwrap();
        // Someone with data does find the word: the index holds it.
        let conn = rusqlite::Connection::open(&path).unwrap();
        let someone: [u8; 16] =
            conn.query_row("SELECT user_id FROM members LIMIT 1", [], |r| r.get(0)).unwrap();
        let (found, member_work) = search_work(&store, UserId::from_bytes(someone)).await;
        assert_eq!(found, 20, "a member of a conversation finds its messages");
        let (found, work) = search_work(&store, loner).await;
        assert_eq!(found, 0, "nothing for a user with no conversation");
        works.push(work);
        member_works.push(member_work);
    }
    // The member's one conversation of 50 messages: its search seeks into that
    // conversation's range of the word's postings, so a database nine times larger costs
    // it about the same (reading the whole posting list would cost about nine times more).
    assert!(
        member_works[1] <= member_works[0] * 3 + 5,
        "a member's search grew with the database: {member_works:?} ticks"
    );
    // A tick is a thousand instructions. Matching the word in the whole index, then keeping
    // the caller's messages, took 22 ticks on the smaller database and 220 on the larger
    // (search file layout 1).
    assert!(works.iter().all(|w| *w <= 2), "the loner's search did work: {works:?} ticks");
}

/// A query past the read bound is interrupted and answered `unavailable` (no backend text),
/// every connection still serves afterwards, and a bound the query fits in lets it through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_read_is_interrupted_and_the_pool_still_serves() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("slow.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let messenger = Messenger::new(Arc::new(store.clone())).await.unwrap();
    let (alice, bob) = (UserId::new(), UserId::new());
    let first =
        messenger.send(alice, SendMessage::to_peer(bob, None, "first")).await.unwrap().message;
    drop(messenger);
    drop(store);
    // 300,000 messages from alice to bob, none read: counting bob's unread scans them all.
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 2 UNION ALL SELECT i + 1 FROM n WHERE i < 300000) \
             INSERT INTO messages (id, conversation_id, seq, sender_id, body, created_at) \
             SELECT randomblob(16), ?1, i, ?2, 'x', 0 FROM n",
            rusqlite::params![first.conversation_id.as_bytes(), alice.as_bytes()],
        )
        .unwrap();
    }
    let options = SqliteOptions::default().readers(2).read_timeout(Duration::from_millis(1));
    let store = SqliteStore::open_with(&path, options).await.unwrap();
    for _ in 0..6 {
        let error =
            tokio::time::timeout(Duration::from_secs(60), store.unread(bob, Timestamp::now()))
                .await
                .expect("an interrupted read answers")
                .expect_err("counting 300,000 rows takes more than a millisecond");
        assert_eq!(error.code(), "unavailable", "{error}");
        assert_eq!(error.public_message(), "unavailable: the query took too long");
    }
    // Both connections served the slow query and serve again.
    for _ in 0..4 {
        let found = store.message(first.id).await.unwrap().unwrap();
        assert_eq!(found.body, "first");
        assert_eq!(store.peers(alice).await.unwrap(), [bob]);
    }
    drop(store);
    let options = SqliteOptions::default().read_timeout(Duration::from_secs(600));
    let store = SqliteStore::open_with(&path, options).await.unwrap();
    assert_eq!(
        store.unread(bob, Timestamp::now()).await.unwrap().total,
        300_000,
        "a bound it fits in"
    );
}
