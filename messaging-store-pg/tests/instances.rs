#![allow(clippy::expect_used, clippy::panic, reason = "tests")]

//! Several processes on one database: each `PgStore` object is one instance with its own
//! writer, log tailer and listener. A session on instance A receives, in order, what
//! instance B writes, also after A's listener connection was killed and re-established,
//! every kind of event included (reactions, member settings, metadata, receipt times);
//! signals, blocks and revocations cross too.

mod support;

use std::sync::Arc;
use std::time::Duration;

use messaging_core::fanout::Push;
use messaging_core::id::UserId;
use messaging_core::model::{
    Event, MemberSettings, Reaction, ReactionChange, ReactionState, Receipt, ReceiptKind, Signal,
};
use messaging_core::time::Timestamp;
use messaging_core::{Limits, Messenger, SendMessage, Session};
use messaging_store_pg::presence::{PgPresence, PresenceOptions};
use messaging_store_pg::{PgOptions, PgStore};

async fn instance(url: &str) -> Messenger {
    let store = PgStore::connect(url, PgOptions::default().max_connections(6).migrate(false))
        .await
        .expect("connect");
    Messenger::new(Arc::new(store)).await.expect("messenger")
}

/// Receives `n` message events and checks they are the next seqs, in log order.
async fn expect_messages(session: &mut Session, from_seq: u64, n: u64, last_position: &mut u64) {
    for seq in from_seq..from_seq + n {
        let event = support::next_event(session).await;
        assert!(event.position > *last_position, "pushed in log order");
        *last_position = event.position;
        match &event.event {
            Event::MessageCreated(m) => assert_eq!(m.seq, seq, "messages arrive in order"),
            other => panic!("expected message {seq}, got {}", other.name()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_of_one_instance_reach_sessions_on_another_in_order() {
    let Some(url) = support::fresh_database().await else { return };
    let (a, b) = (instance(&url).await, instance(&url).await);
    let (alice, bob) = (UserId::new(), UserId::new());
    let mut alice_on_a = a.connect(alice).await.expect("connect");
    let mut bob_on_b = b.connect(bob).await.expect("connect");

    let first =
        b.send(bob, SendMessage::to_peer(alice, None, "hello from B")).await.expect("send").message;
    let created = support::next_event(&mut alice_on_a).await;
    assert!(matches!(created.event, Event::ConversationCreated(_)), "the conversation first");
    let mut last = created.position;
    expect_messages(&mut alice_on_a, 1, 1, &mut last).await;
    for i in 2..=20 {
        b.send(bob, SendMessage::to_conversation(first.conversation_id, format!("m{i}")))
            .await
            .expect("send");
    }
    expect_messages(&mut alice_on_a, 2, 19, &mut last).await;

    // And back: A writes, B's session receives.
    let reply = a
        .send(alice, SendMessage::to_conversation(first.conversation_id, "hi from A"))
        .await
        .expect("send")
        .message;
    let mut seen = None;
    for _ in 0..22 {
        let event = support::next_event(&mut bob_on_b).await;
        if let Event::MessageCreated(m) = &event.event
            && m.id == reply.id
        {
            seen = Some(m.clone());
            break;
        }
    }
    assert_eq!(seen, Some(reply), "B's session gets A's message as committed");
}

/// The feed of another instance carries the events of issue 14 as its own log reads them:
/// a reaction (the message with its reactions, the user, the emoji), a receipt with its
/// time, `member.updated` to that member's sessions only, and `conversation.updated` with
/// the metadata.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_new_events_reach_sessions_on_another_instance() {
    let Some(url) = support::fresh_database().await else { return };
    let (a, b) = (instance(&url).await, instance(&url).await);
    let (alice, bob) = (UserId::new(), UserId::new());
    let mut alice_on_b = b.connect(alice).await.expect("connect");
    let mut bob_on_b = b.connect(bob).await.expect("connect");
    let sent = a.send(alice, SendMessage::to_peer(bob, None, "hello")).await.expect("send");
    let conversation = sent.message.conversation_id;
    for session in [&mut alice_on_b, &mut bob_on_b] {
        let created = support::next_event(session).await.event;
        assert!(matches!(created, Event::ConversationCreated(_)), "{}", created.name());
        let message = support::next_event(session).await.event;
        assert_eq!(message, Event::MessageCreated(sent.message.clone()));
    }

    let reacted = a.react(bob, sent.message.id, "👍", ReactionState::Added).await.expect("react");
    assert_eq!(reacted.reactions, [Reaction { emoji: "👍".to_owned(), user_ids: vec![bob] }]);
    let read = a.mark_read(bob, conversation, 1).await.expect("read");
    let until = Timestamp::from_millis(Timestamp::now().as_millis() + 3_600_000);
    a.mute(bob, conversation, Some(until)).await.expect("mute");
    let metadata = serde_json::json!({"listing": 7});
    let updated =
        a.service().set_metadata(conversation, Some(metadata.clone())).await.expect("metadata");
    assert_eq!(updated.metadata, Some(metadata));

    let reaction = Event::Reaction(ReactionChange {
        message: reacted,
        user_id: bob,
        emoji: "👍".to_owned(),
        state: ReactionState::Added,
    });
    let receipt = Event::Receipt(Receipt {
        conversation_id: conversation,
        user_id: bob,
        kind: ReceiptKind::Read,
        seq: 1,
        at: read.at,
    });
    let settings = Event::MemberUpdated(MemberSettings {
        conversation_id: conversation,
        user_id: bob,
        muted_until: Some(until),
        archived: false,
    });
    let metadata = Event::ConversationUpdated(updated);
    for (session, expected) in [
        (&mut alice_on_b, vec![&reaction, &receipt, &metadata]),
        (&mut bob_on_b, vec![&reaction, &receipt, &settings, &metadata]),
    ] {
        for event in expected {
            assert_eq!(&support::next_event(session).await.event, event, "{}", event.name());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_listener_reconnects_and_nothing_is_lost() {
    let Some(url) = support::fresh_database().await else { return };
    let (a, b) = (instance(&url).await, instance(&url).await);
    let (alice, bob) = (UserId::new(), UserId::new());
    let mut alice_on_a = a.connect(alice).await.expect("connect");
    let first =
        b.send(bob, SendMessage::to_peer(alice, None, "before")).await.expect("send").message;
    let created = support::next_event(&mut alice_on_a).await;
    let mut last = created.position;
    expect_messages(&mut alice_on_a, 1, 1, &mut last).await;

    let admin = sqlx::PgPool::connect(&url).await.expect("admin pool");
    let listeners = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND query LIKE 'LISTEN%'",
        )
        .fetch_one(&admin)
        .await
        .expect("pg_stat_activity")
    };
    assert_eq!(listeners().await, 2, "one listener per instance");
    let killed = support::terminate_listeners(&admin).await;
    assert_eq!(killed, [true, true]);

    // Written while the listeners are down or reconnecting: caught up from the last
    // position, in order, nothing lost.
    for i in 2..=30 {
        b.send(bob, SendMessage::to_conversation(first.conversation_id, format!("m{i}")))
            .await
            .expect("send");
    }
    expect_messages(&mut alice_on_a, 2, 29, &mut last).await;

    let reconnected = tokio::time::timeout(Duration::from_secs(10), async {
        while listeners().await < 2 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(reconnected.is_ok(), "both listeners are re-established");
    b.send(bob, SendMessage::to_conversation(first.conversation_id, "after")).await.expect("send");
    expect_messages(&mut alice_on_a, 31, 1, &mut last).await;
}

async fn instance_with_signals(url: &str) -> Messenger {
    let store = PgStore::connect(url, PgOptions::default().max_connections(6).migrate(false))
        .await
        .expect("connect");
    let fanout = store.fanout(Limits::default().max_queue_frames);
    Messenger::builder(Arc::new(store)).fanout(fanout).build().await.expect("messenger")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_and_presence_cross_instances() {
    use messaging_core::model::TypingState;

    let Some(url) = support::fresh_database().await else { return };
    let (a, b) = (instance_with_signals(&url).await, instance_with_signals(&url).await);
    let (alice, bob) = (UserId::new(), UserId::new());
    let conversation = a.open(alice, bob, None).await.expect("open").conversation;
    let mut alice_on_a = a.connect(alice).await.expect("connect");

    let bob_on_b = b.connect(bob).await.expect("connect");
    match support::next_signal(&mut alice_on_a).await {
        Signal::Presence(p) => assert!(p.user_id == bob && p.online, "bob came online on B"),
        other => panic!("expected presence, got {}", other.name()),
    }
    b.typing(bob, conversation.id, TypingState::Started).await.expect("typing");
    match support::next_signal(&mut alice_on_a).await {
        Signal::Typing { user_id, state, conversation_id, .. } => {
            assert_eq!(
                (user_id, state, conversation_id),
                (bob, TypingState::Started, conversation.id)
            );
        }
        other => panic!("expected typing, got {}", other.name()),
    }
    bob_on_b.close().await.expect("close");
    match support::next_signal(&mut alice_on_a).await {
        Signal::Presence(p) => {
            assert!(p.user_id == bob && !p.online && p.last_seen.is_some(), "bob went offline");
        }
        other => panic!("expected presence, got {}", other.name()),
    }
}

/// An instance with the PostgreSQL presence (a fast heartbeat, so the test is short).
async fn instance_with_presence(url: &str) -> (Messenger, Arc<PgPresence>) {
    let store = PgStore::connect(url, PgOptions::default().max_connections(6).migrate(false))
        .await
        .expect("connect");
    let fanout = store.fanout(Limits::default().max_queue_frames);
    let options =
        PresenceOptions::default().timing(Duration::from_millis(200), Duration::from_secs(1));
    let presence = store.presence(fanout.clone(), options).await.expect("presence");
    let messenger = Messenger::builder(Arc::new(store))
        .fanout(fanout)
        .presence(presence.clone())
        .build()
        .await
        .expect("messenger");
    (messenger, presence)
}

async fn is_online(m: &Messenger, asker: UserId, user: UserId) -> bool {
    let status = m.presence(asker, &[user]).await.expect("presence");
    status.first().expect("one status").online
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_is_shared_and_dead_instances_go_offline() {
    let Some(url) = support::fresh_database().await else { return };
    // Instance A runs its tasks on a runtime of its own, so that it can die like a process.
    let a_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime for instance A");
    let (a, presence_a) = std::thread::scope(|scope| {
        scope.spawn(|| a_runtime.block_on(instance_with_presence(&url))).join()
    })
    .expect("instance A");
    let (b, _presence_b) = instance_with_presence(&url).await;
    let (alice, bob, carol) = (UserId::new(), UserId::new(), UserId::new());
    a.open(alice, bob, None).await.expect("open");
    b.open(carol, bob, None).await.expect("open");

    // A user with sessions on both instances is online until the last one closes.
    let carol_on_a = a.connect(carol).await.expect("connect");
    let carol_on_b = b.connect(carol).await.expect("connect");
    carol_on_a.close().await.expect("close");
    assert!(is_online(&b, bob, carol).await, "carol still has a session on B");
    carol_on_b.close().await.expect("close");
    assert!(!is_online(&a, bob, carol).await, "carol's last session closed");

    // Alice's session on A is seen by B.
    let mut bob_on_b = b.connect(bob).await.expect("connect");
    let alice_on_a = a.connect(alice).await.expect("connect");
    assert!(is_online(&b, bob, alice).await, "B reports alice, connected to A, online");
    match support::next_signal(&mut bob_on_b).await {
        Signal::Presence(p) => assert!(p.user_id == alice && p.online, "alice came online"),
        other => panic!("expected presence, got {}", other.name()),
    }

    // A dies without a goodbye: its tasks stop (heartbeat, writer, listener), no session
    // is closed, nothing is cleaned up.
    a_runtime.shutdown_background();
    std::mem::forget(alice_on_a);
    std::mem::forget(a);
    std::mem::forget(presence_a);
    let died = std::time::Instant::now();
    let offline = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Push::Signal(signal) = bob_on_b.recv().await.expect("subscription open")
                && let Signal::Presence(p) = signal.get()
                && p.user_id == alice
            {
                return *p;
            }
        }
    })
    .await
    .expect("alice is announced offline within timeout + heartbeat (1.2 s here)");
    assert!(!offline.online && offline.last_seen.is_some(), "offline, with last_seen");
    assert!(!is_online(&b, bob, alice).await, "B reports alice offline");
    assert!(died.elapsed() < Duration::from_secs(3), "bounded: {:?}", died.elapsed());
    let seen = b.presence(bob, &[alice]).await.expect("presence");
    assert!(seen[0].last_seen.is_some(), "last_seen recorded by the sweeper");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_on_one_instance_holds_on_another() {
    let Some(url) = support::fresh_database().await else { return };
    let (a, b) = (instance(&url).await, instance(&url).await);
    let (alice, bob) = (UserId::new(), UserId::new());
    let c = a.open(alice, bob, None).await.expect("open").conversation;
    // B's listener must be up for B to keep answers about blocks; sessions start it.
    let _bob_on_b = b.connect(bob).await.expect("connect");
    b.send(bob, SendMessage::to_conversation(c.id, "before")).await.expect("allowed");
    a.block(alice, bob).await.expect("block");
    let refused = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match b.send(bob, SendMessage::to_conversation(c.id, "after")).await {
                Err(e) if e.code() == "forbidden" => return,
                Err(e) => panic!("unexpected error {e}"),
                Ok(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    })
    .await;
    assert!(refused.is_ok(), "B refuses bob's sends once alice's block on A is known");
    a.unblock(alice, bob).await.expect("unblock");
    let allowed = tokio::time::timeout(Duration::from_secs(5), async {
        while b.send(bob, SendMessage::to_conversation(c.id, "again")).await.is_err() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(allowed.is_ok(), "and allows them again after the unblock");
}

/// A revocation made on instance A reaches the user's sessions on instance B (the
/// `revoked` signal, through NOTIFY) and no other user's; and B, which kept its answer
/// about the user, refuses their tokens by the time the signal arrives (the revocations
/// notification is committed, and so delivered, before the signal's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_on_one_instance_ends_sessions_and_tokens_on_another() {
    let Some(url) = support::fresh_database().await else { return };
    let (a, b) = (instance_with_signals(&url).await, instance_with_signals(&url).await);
    let admin = sqlx::PgPool::connect(&url).await.expect("admin pool");
    let (alice, bob) = (UserId::new(), UserId::new());
    let mut alice_on_b = b.connect(alice).await.expect("connect");
    let mut bob_on_b = b.connect(bob).await.expect("connect");
    support::wait_for_listeners(&admin, 2).await;
    for _ in 0..3 {
        // Kept by B (its listener is up): only the notification can make it forget.
        assert!(b.token_accepted(alice, None).await.expect("token_accepted"));
    }

    let at = a.service().revoke(alice).await.expect("revoke");
    match support::next_signal(&mut alice_on_b).await {
        Signal::Revoked { user_id } => assert_eq!(user_id, alice),
        other => panic!("expected revoked, got {}", other.name()),
    }
    let second = at.as_millis().div_euclid(1000);
    assert!(!b.token_accepted(alice, None).await.expect("token_accepted"), "no iat");
    assert!(!b.token_accepted(alice, Some(second)).await.expect("token_accepted"), "B refuses");
    assert!(b.token_accepted(alice, Some(second + 1)).await.expect("token_accepted"));
    assert!(b.token_accepted(bob, None).await.expect("token_accepted"), "bob unaffected");

    // A barrier: bob's own revocation is the first signal his session gets.
    a.service().revoke(bob).await.expect("revoke bob");
    match support::next_signal(&mut bob_on_b).await {
        Signal::Revoked { user_id } => assert_eq!(user_id, bob, "alice's did not reach bob"),
        other => panic!("expected revoked, got {}", other.name()),
    }
}
