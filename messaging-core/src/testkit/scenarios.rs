//! Service-level scenarios over a real store, run with
//! [`service_scenarios!`](crate::service_scenarios): access policies (first-degree
//! connections through a host [`SocialGraph`](crate::SocialGraph), blocks on top), fan-out
//! to every session of both members, typing that never echoes, lag reported to a slow
//! subscriber, an idempotent retry that pushes one event, and presence across several
//! sessions of one user.
//!
//! "Nothing else was pushed" is checked with a barrier: a later durable event the session
//! must receive; everything published before it is already queued ahead of it.

use std::sync::Arc;

use tokio::task::JoinSet;

use crate::UserId;
use crate::fanout::{Push, RecvError};
use crate::limits::Limits;
use crate::model::{Event, PresenceStatus, Signal, TypingState};
use crate::policy::{AccessPolicyExt, AllowAll, FirstDegree};
use crate::testkit::support::{
    Must, assert_code, carried, log_of, next_event, next_push, next_signal, open,
    pushes_until_message, send, sync_all, two_users,
};
use crate::testkit::{Connections, Fixture, PUSH_TIMEOUT};
use crate::{HistoryQuery, SendMessage};

/// With [`FirstDegree`], connected users open and send; strangers are refused
/// (`forbidden`, in both directions, nothing created) until the host connects them; a
/// disconnection refuses new sends in an existing conversation but not retries or reads.
pub async fn first_degree_refuses_strangers_and_allows_connections(fx: Fixture) {
    let graph = Arc::new(Connections::default());
    let m = fx.messenger_with(|b| b.policy(AllowAll.and(FirstDegree::new(graph.clone())))).await;
    let (alice, bob) = two_users();
    let carol = UserId::new();
    graph.connect(alice, bob);

    let c = m.open(alice, bob, None).await.must("connected users open").conversation;
    let original = m
        .send(bob, SendMessage::to_conversation(c.id, "hi").client_msg_id("k"))
        .await
        .must("connected users send")
        .message;
    for (from, to) in [(alice, carol), (carol, alice)] {
        assert_code(m.open(from, to, None).await, "forbidden", "strangers open");
        assert_code(
            m.send(from, SendMessage::to_peer(to, Some("x"), "hello")).await,
            "forbidden",
            "strangers send by peer",
        );
    }
    assert!(
        fx.store.find_direct(alice, carol, None).await.must("find").is_none(),
        "nothing created"
    );
    assert!(log_of(fx.store.as_ref(), carol).await.is_empty());

    graph.connect(carol, alice);
    let opened = m.open(carol, alice, None).await.must("connected now");
    assert!(opened.created);

    graph.disconnect(alice, bob);
    assert_code(
        m.send(bob, SendMessage::to_conversation(c.id, "still there?")).await,
        "forbidden",
        "a disconnected member sends",
    );
    assert_code(m.open(alice, bob, None).await, "forbidden", "reopening after disconnecting");
    let retry = m
        .send(bob, SendMessage::to_conversation(c.id, "hi again").client_msg_id("k"))
        .await
        .must("a retry is recognised before the policy")
        .message;
    assert_eq!(retry, original);
    let history = m.history(alice, c.id, HistoryQuery::default()).await.must("history");
    assert_eq!(history.messages, vec![original]);
    m.mark_read(alice, c.id, 1).await.must("receipts are not policed");
}

/// Blocks apply on top of an allowing policy, in both directions, and lifting them gives
/// the policy the word again.
pub async fn blocks_apply_on_top_of_the_policy(fx: Fixture) {
    let graph = Arc::new(Connections::default());
    let m = fx.messenger_with(|b| b.policy(FirstDegree::new(graph.clone()))).await;
    let (alice, bob) = two_users();
    graph.connect(alice, bob);
    let c = open(&m, alice, bob, None).await;
    m.block(alice, bob).await.must("block");
    for (from, to) in [(alice, bob), (bob, alice)] {
        assert_code(m.open(from, to, Some("y")).await, "forbidden", "blocked open");
        assert_code(
            m.send(from, SendMessage::to_conversation(c.id, "x")).await,
            "forbidden",
            "blocked send",
        );
        assert_code(
            m.typing(from, c.id, TypingState::Started).await,
            "forbidden",
            "blocked typing",
        );
    }
    m.unblock(alice, bob).await.must("unblock");
    send(&m, bob, c.id, "back").await;
    graph.disconnect(alice, bob);
    assert_code(
        m.send(bob, SendMessage::to_conversation(c.id, "x")).await,
        "forbidden",
        "policy again",
    );
}

/// Durable events reach every open session of both members, the session whose user
/// caused them included, in the same order; a third user's sessions get none of them.
pub async fn fanout_reaches_every_session_of_both_members(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let (carol, dave) = two_users();
    let mut sessions = Vec::new();
    for user in [alice, alice, bob, bob] {
        sessions.push(m.connect(user).await.must("connect"));
    }
    let mut carols = m.connect(carol).await.must("connect");
    let c = open(&m, alice, bob, None).await;
    let sent = send(&m, alice, c.id, "to everyone").await;
    m.mark_read(bob, c.id, 1).await.must("read");
    let edited = m.edit(alice, sent.id, "edited").await.must("edit");
    let log = log_of(fx.store.as_ref(), alice).await;
    assert_eq!(log.len(), 4);
    for (i, session) in sessions.iter_mut().enumerate() {
        let mut got = Vec::new();
        for _ in 0..4 {
            got.push(next_event(session, &format!("session {i}")).await);
        }
        let names: Vec<&str> = got.iter().map(|e| e.event.name()).collect();
        assert_eq!(
            names,
            ["conversation.created", "message.created", "receipt.read", "message.edited"],
            "session {i}"
        );
        assert_eq!(
            got.iter().map(|e| e.position).collect::<Vec<_>>(),
            log.iter().map(|e| e.position).collect::<Vec<_>>()
        );
        assert_eq!(got[1].event, Event::MessageCreated(sent.clone()), "pushed as committed");
        assert_eq!(got[3].event, Event::MessageEdited(edited.clone()));
        assert!(session.try_recv().expect("open").is_none(), "session {i}: nothing more");
    }
    let theirs = open(&m, carol, dave, None).await;
    let first = next_event(&mut carols, "carol's own event").await;
    assert_eq!(
        first.event,
        Event::ConversationCreated(theirs),
        "carol got nothing of alice and bob's"
    );
}

/// Typing reaches every session of the peer with its fields, is not stored, and never
/// echoes to the typing user's own sessions.
pub async fn typing_reaches_only_the_peer(fx: Fixture) {
    let m = fx.messenger_with(|b| b.limits(Limits::default().with_typing_expires_ms(4000))).await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    let mut alices =
        [m.connect(alice).await.must("connect"), m.connect(alice).await.must("connect")];
    let mut bobs = [m.connect(bob).await.must("connect"), m.connect(bob).await.must("connect")];
    let head = fx.store.head().await.must("head");
    m.typing(alice, c.id, TypingState::Started).await.must("typing started");
    m.typing(alice, c.id, TypingState::Stopped).await.must("typing stopped");
    assert_eq!(fx.store.head().await.must("head"), head, "typing is never stored");
    for session in &mut bobs {
        for state in [TypingState::Started, TypingState::Stopped] {
            let signal = next_signal(session, "typing at the peer").await;
            assert_eq!(
                signal,
                Signal::Typing {
                    conversation_id: c.id,
                    user_id: alice,
                    state,
                    expires_in_ms: 4000
                }
            );
        }
    }
    let barrier = send(&m, bob, c.id, "barrier").await;
    for session in &mut alices {
        let pushes = pushes_until_message(session, barrier.id, "alice's pushes").await;
        assert!(
            pushes.iter().all(|p| !matches!(p, Push::Signal(s) if s.get().name() == "typing")),
            "typing never echoes to the typing user's sessions"
        );
    }
}

/// A session whose queue overflows (nobody reads it) is told it lagged; the others go on;
/// the lagging client resumes with `sync` from its last cursor and loses nothing.
pub async fn lagging_subscriber_is_told_so(fx: Fixture) {
    let m = fx.messenger_with(|b| b.limits(Limits::default().with_max_queue_frames(4))).await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    let mut slow = m.connect(bob).await.must("connect");
    let mut fast = m.connect(bob).await.must("connect");
    let kept = slow.cursor();
    let mut sent = Vec::new();
    for i in 0..8 {
        let message = send(&m, alice, c.id, &format!("flood {i}")).await;
        let pushed = next_event(&mut fast, "the reading session").await;
        assert_eq!(carried(&pushed.event).id, message.id, "the reading session keeps up");
        sent.push(message);
    }
    let lagged = tokio::time::timeout(PUSH_TIMEOUT, async {
        loop {
            match slow.recv().await {
                Ok(_) => {}
                Err(error) => return error,
            }
        }
    })
    .await
    .expect("the slow session ends");
    assert_eq!(lagged, RecvError::Lagged, "the slow session is told it lagged");
    assert_eq!(slow.try_recv().expect_err("lagged"), RecvError::Lagged, "and stays lagged");
    drop(slow);

    let resumed = m.connect(bob).await.must("reconnect");
    let (events, _) = sync_all(&resumed, kept, 3).await;
    let ids: Vec<_> = events.iter().filter_map(|e| e.event.message()).map(|m| m.id).collect();
    assert_eq!(ids, sent.iter().map(|m| m.id).collect::<Vec<_>>(), "nothing is lost");
}

/// Sequential and concurrent retries of one `client_msg_id` push exactly one
/// `message.created` to the peer and to the sender's own sessions.
pub async fn idempotent_retry_pushes_one_event(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    let mut sessions =
        [m.connect(bob).await.must("connect"), m.connect(alice).await.must("connect")];
    let keyed = SendMessage::to_conversation(c.id, "once").client_msg_id("retry-me");
    let original = m.send(alice, keyed.clone()).await.must("send").message;
    m.send(alice, keyed.clone()).await.must("sequential retry");
    let mut tasks = JoinSet::new();
    for _ in 0..8 {
        let (m, keyed) = (m.clone(), keyed.clone());
        tasks.spawn(async move { m.send(alice, keyed).await });
    }
    while let Some(joined) = tasks.join_next().await {
        assert_eq!(joined.expect("task").must("concurrent retry").message.id, original.id);
    }
    let barrier = send(&m, alice, c.id, "barrier").await;
    for session in &mut sessions {
        let pushes = pushes_until_message(session, barrier.id, "pushes").await;
        let created = pushes
            .iter()
            .filter(|p| matches!(p, Push::Event(e) if e.get().event.message().is_some_and(|m| m.id == original.id)))
            .count();
        assert_eq!(created, 1, "one message.created for the retried message");
    }
}

/// Presence is announced to the users sharing a conversation when a user's first session
/// opens (online, `last_seen` null) and when the last one closes (offline, `last_seen`
/// set); not for the sessions in between, not to the user's own sessions, not to others.
pub async fn presence_follows_first_and_last_session(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let (carol, dave) = two_users();
    let c = open(&m, alice, bob, None).await;
    let mut alices = m.connect(alice).await.must("connect");
    let mut carols = m.connect(carol).await.must("connect");

    let first = m.connect(bob).await.must("bob's first session");
    let online = next_signal(&mut alices, "bob comes online").await;
    assert_eq!(
        online,
        Signal::Presence(PresenceStatus { user_id: bob, online: true, last_seen: None })
    );
    let second = m.connect(bob).await.must("bob's second session");
    first.close().await.must("close the first");
    let barrier = send(&m, bob, c.id, "barrier").await;
    let pushes = pushes_until_message(&mut alices, barrier.id, "alice's pushes").await;
    assert!(
        pushes.iter().all(|p| matches!(p, Push::Event(_))),
        "no presence for a second session or a non-last close"
    );
    let mut third = m.connect(bob).await.must("bob's third session");
    second.close().await.must("close the second");
    let barrier = send(&m, alice, c.id, "barrier 2").await;
    let pushes = pushes_until_message(&mut third, barrier.id, "bob's own pushes").await;
    assert!(
        pushes.iter().all(|p| matches!(p, Push::Event(_))),
        "no presence to bob's own sessions"
    );
    third.close().await.must("close the last");
    let offline = next_signal(&mut alices, "bob goes offline").await;
    let Signal::Presence(status) = offline else {
        panic!("expected presence, got {}", offline.name())
    };
    assert_eq!((status.user_id, status.online), (bob, false));
    let seen = status.last_seen.expect("last_seen is set when the last session closes");
    let stored = fx.store.last_seen(&[bob]).await.must("last_seen");
    assert_eq!(stored, vec![(bob, seen)], "the announced last_seen is the stored one");

    let theirs = open(&m, carol, dave, None).await;
    let push = next_push(&mut carols, "carol's first push").await;
    let Push::Event(event) = push else {
        panic!("carol got a signal about someone she shares nothing with")
    };
    assert_eq!(event.get().event, Event::ConversationCreated(theirs));
}

/// The host's `may_send` also governs `edit` and `typing`: once it refuses, the member's
/// edits and typing signals are `forbidden`, like their sends; reads go on.
pub async fn policy_governs_edit_and_typing(fx: Fixture) {
    let graph = Arc::new(Connections::default());
    let m = fx.messenger_with(|b| b.policy(FirstDegree::new(graph.clone()))).await;
    let (alice, bob) = two_users();
    graph.connect(alice, bob);
    let c = open(&m, alice, bob, None).await;
    let sent = send(&m, alice, c.id, "hello").await;
    m.typing(alice, c.id, TypingState::Started).await.must("typing while connected");
    graph.disconnect(alice, bob);
    assert_code(m.send(alice, SendMessage::to_conversation(c.id, "x")).await, "forbidden", "send");
    assert_code(m.edit(alice, sent.id, "changed").await, "forbidden", "edit");
    assert_code(m.typing(alice, c.id, TypingState::Stopped).await, "forbidden", "typing");
    let page = m.history(bob, c.id, HistoryQuery::default()).await.must("history");
    assert_eq!(page.messages[0].body, "hello", "the refused edit changed nothing");
}

/// A `started` repeated within half of `expires_in_ms` of the last one relayed is
/// answered but not relayed; `stopped` always is, and the next `started` after it too.
pub async fn typing_repeats_are_thinned(fx: Fixture) {
    let m = fx.messenger_with(|b| b.limits(Limits::default().with_typing_expires_ms(60_000))).await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    let mut bobs = m.connect(bob).await.must("connect");
    for _ in 0..5 {
        m.typing(alice, c.id, TypingState::Started).await.must("typing started");
    }
    m.typing(alice, c.id, TypingState::Stopped).await.must("typing stopped");
    m.typing(alice, c.id, TypingState::Started).await.must("typing started again");
    let barrier = send(&m, alice, c.id, "barrier").await;
    let states: Vec<TypingState> = pushes_until_message(&mut bobs, barrier.id, "bob's pushes")
        .await
        .iter()
        .filter_map(|push| match push {
            Push::Signal(signal) => match signal.get() {
                Signal::Typing { state, .. } => Some(*state),
                _ => None,
            },
            Push::Event(_) => None,
        })
        .collect();
    assert_eq!(
        states,
        vec![TypingState::Started, TypingState::Stopped, TypingState::Started],
        "repeats within the window are thinned, changes of state are not"
    );
}
