//! A store's life: the messenger `PgStore::messenger` wires (the store's own fan-out and
//! presence, so typing and presence cross instances) and `PgStore::close` (queued writes
//! finish, the presence says goodbye, every task and connection ends, later calls fail
//! cleanly, the data stays for the next store).
//!
//! Each case runs on a fresh database cloned from the migrated template (see `support`).

#![allow(clippy::expect_used, clippy::panic, reason = "tests: failing loudly is the point")]

mod support;

use std::time::Duration;

use messaging_core::id::{ConversationId, UserId};
use messaging_core::model::{Signal, TypingState};
use messaging_core::store::{
    ConsumerLog, ConversationStore, EventLog, HistoryWindow, MessageStore, NewConversation,
    StoreHealth,
};
use messaging_core::time::Timestamp;
use messaging_core::{Error, Limits, Messenger, SendMessage};
use messaging_store_pg::{PgOptions, PgStore};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

fn options() -> PgOptions {
    PgOptions::default().max_connections(6).migrate(false)
}

async fn connect(url: &str) -> PgStore {
    PgStore::connect(url, options()).await.expect("connect")
}

async fn is_online(m: &Messenger, asker: UserId, user: UserId) -> bool {
    let status = m.presence(asker, &[user]).await.expect("presence");
    status.first().expect("one status").online
}

/// Backends connected to this database, the asking one aside (`admin` has one connection).
async fn backends(admin: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_one(admin)
    .await
    .expect("pg_stat_activity")
}

/// The error every call on a closed store answers.
fn assert_closed<T: std::fmt::Debug>(what: &str, outcome: Result<T, Error>) {
    let error = outcome.expect_err(what);
    assert_eq!(error.code(), "unavailable", "{what}: {error}");
    assert!(error.to_string().contains("closed"), "{what} says why: {error}");
}

/// Two messengers made with `PgStore::messenger`, as two processes: presence and typing
/// cross from one to the other (a `Messenger::new` over the store keeps both in one
/// process), and closing one store says its users' goodbye at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stores_messenger_carries_typing_and_presence_across_instances() {
    let Some(url) = support::fresh_database().await else { return };
    let (store_a, store_b) = (connect(&url).await, connect(&url).await);
    let a = store_a.messenger(Limits::default()).await.expect("messenger A");
    let b = store_b.messenger(Limits::default()).await.expect("messenger B");

    let (alice, bob) = (UserId::new(), UserId::new());
    let conversation = a.open(alice, bob, None).await.expect("open").conversation;
    let mut alice_on_a = a.connect(alice).await.expect("connect");
    let _bob_on_b = b.connect(bob).await.expect("connect");
    match support::next_signal(&mut alice_on_a).await {
        Signal::Presence(p) => assert!(p.user_id == bob && p.online, "bob came online on B"),
        other => panic!("expected presence, got {}", other.name()),
    }
    assert!(is_online(&a, alice, bob).await, "A reads bob, connected to B, online");
    b.typing(bob, conversation.id, TypingState::Started).await.expect("typing");
    match support::next_signal(&mut alice_on_a).await {
        Signal::Typing { user_id, state, .. } => {
            assert_eq!((user_id, state), (bob, TypingState::Started));
        }
        other => panic!("expected typing, got {}", other.name()),
    }

    // B shuts down with its session still open: its goodbye takes bob offline at once,
    // not after the presence timeout (15 s by default).
    store_b.close().await.expect("close B");
    assert!(!is_online(&a, alice, bob).await, "bob is offline once B said goodbye");
    store_a.close().await.expect("close A");
}

/// `close` commits and answers what is queued, ends every task and connection, and from
/// then on every call (on any clone, through the messenger too) fails with `unavailable`
/// saying the store is closed, without panicking. A new store on the database has every
/// write that was acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_finishes_queued_writes_then_refuses_every_call() {
    let Some(url) = support::fresh_database().await else { return };
    // One connection, so that "every other backend" is the store's.
    let admin = PgPoolOptions::new().max_connections(1).connect(&url).await.expect("admin pool");
    let store = connect(&url).await;
    let messenger = store.messenger(Limits::default()).await.expect("messenger");
    let (alice, bob) = (UserId::new(), UserId::new());
    let _bob_online = messenger.connect(bob).await.expect("connect");
    let sent = messenger
        .send(alice, SendMessage::to_peer(bob, None, "before close"))
        .await
        .expect("send")
        .message;
    let conversation = sent.conversation_id;

    // Writes racing the close: each is either committed and acknowledged, or refused.
    let racing: Vec<_> = (0..32)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .append(support::new_message(conversation, alice, &format!("racing {i}")))
                    .await
            })
        })
        .collect();
    tokio::task::yield_now().await;
    store.close().await.expect("close");
    let mut acknowledged = vec![sent.id];
    for task in racing {
        match task.await.expect("no panic") {
            Ok(appended) => acknowledged.push(appended.message.id),
            Err(error) => assert_closed("a write after close", Err::<(), _>(error)),
        }
    }

    // Every call fails cleanly, on this handle and its clones.
    let clone = store.clone();
    assert_closed("append", store.append(support::new_message(conversation, alice, "late")).await);
    assert_closed("message", clone.message(sent.id).await);
    assert_closed("conversation", store.conversation(conversation).await);
    assert_closed("history", store.history(conversation, HistoryWindow::Latest, 10).await);
    assert_closed("head", store.head().await);
    assert_closed("probe", store.probe_commit().await);
    assert_closed(
        "open",
        store
            .open_direct(NewConversation {
                id: ConversationId::new(),
                members: [alice, bob],
                context: Some("late".into()),
                created_at: Timestamp::now(),
                metadata: None,
                audience: vec![alice, bob],
                actor: Some(alice),
            })
            .await,
    );
    assert_closed("migrate", store.migrate().await);
    let (holder, lease) = (*alice.as_uuid(), Duration::from_secs(5));
    assert_closed("read_log", store.read_log(0, 1, 10).await);
    assert_closed("claim_consumer", store.claim_consumer("c", holder, lease, 0).await);
    assert_closed("commit_consumer", store.commit_consumer("c", holder, 1, lease).await);
    assert_closed("release_consumer", store.release_consumer("c", holder).await);
    let fanout = store.fanout(16);
    assert_closed(
        "presence",
        store.presence(fanout, messaging_store_pg::presence::PresenceOptions::default()).await,
    );
    assert_closed("a messenger", store.messenger(Limits::default()).await);
    let refused = messenger.send(alice, SendMessage::to_conversation(conversation, "late")).await;
    assert_eq!(refused.expect_err("the messenger's store is closed").code(), "unavailable");
    assert!(messenger.connect(alice).await.is_err(), "no session on a closed store");
    store.close().await.expect("closing again does nothing");
    assert!(store.pool().is_closed(), "the pool is closed");

    // The presence said goodbye, and no connection of the store is left (the writers',
    // the listener's, the pool's).
    let instances: i64 = sqlx::query_scalar("SELECT count(*) FROM messaging.instances")
        .fetch_one(&admin)
        .await
        .expect("instances");
    assert_eq!(instances, 0, "the instance's row is gone");
    let gone =
        support::eventually(Duration::from_secs(5), || async { backends(&admin).await == 0 }).await;
    assert!(gone, "every connection of the store ended: {} left", backends(&admin).await);

    // A new store on the database sees every acknowledged write.
    let next = connect(&url).await;
    let stored = next.history(conversation, HistoryWindow::Latest, 100).await.expect("history");
    for id in &acknowledged {
        assert!(stored.iter().any(|m| m.id == *id), "acknowledged write {id} is stored");
    }
    assert_eq!(stored.len(), acknowledged.len(), "nothing refused was stored");
    next.close().await.expect("close the next store");
}
