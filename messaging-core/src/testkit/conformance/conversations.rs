//! Opening direct conversations: uniqueness per (pair, context), race-freedom at the
//! service and at the store level, the `conversation.created` event, membership.

use std::collections::HashSet;

use tokio::task::JoinSet;

use crate::model::{ConversationKind, Event, TypingState};
use crate::store::NewConversation;
use crate::testkit::Fixture;
use crate::testkit::support::{
    Must, assert_code, events_named, list_query, log_of, open, send, two_users,
};
use crate::{ConversationId, Timestamp, UserId};
use crate::{HistoryQuery, SendMessage};

/// `open` creates once, then finds the same conversation from either side, with the
/// documented shape; exactly one `conversation.created` event, visible to both members.
pub async fn open_creates_once_then_finds(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let first = m.open(alice, bob, Some("listing:42")).await.must("first open");
    assert!(first.created, "the first open creates");
    let c = &first.conversation;
    assert_eq!(c.kind, ConversationKind::Direct);
    assert_eq!(c.context.as_deref(), Some("listing:42"));
    let mut expected = [alice, bob];
    expected.sort();
    assert_eq!(c.members, expected, "members are stored lower id first");
    assert_eq!(c.last_seq, 0);
    assert_eq!(c.last_message_at, None);

    let again = m.open(alice, bob, Some("listing:42")).await.must("second open");
    assert!(!again.created, "a second open finds");
    assert_eq!(again.conversation, first.conversation);
    let reverse = m.open(bob, alice, Some("listing:42")).await.must("open from the peer");
    assert!(!reverse.created);
    assert_eq!(reverse.conversation.id, c.id);

    for user in [alice, bob] {
        let log = log_of(fx.store.as_ref(), user).await;
        let created = events_named(&log, "conversation.created");
        assert_eq!(created.len(), 1, "exactly one conversation.created for each member");
        assert_eq!(created[0].event, Event::ConversationCreated(c.clone()));
    }
    let stored = fx.store.conversation(c.id).await.must("conversation").expect("stored");
    assert_eq!(&stored, c);
}

/// `open` and `send` with `peer` equal to the caller → `bad_request`; nothing is created.
pub async fn open_with_self_is_bad_request(fx: Fixture) {
    let m = fx.messenger().await;
    let alice = UserId::new();
    assert_code(m.open(alice, alice, None).await, "bad_request", "open with self");
    assert_code(m.open(alice, alice, Some("x")).await, "bad_request", "open with self about x");
    assert_code(
        m.send(alice, SendMessage::to_peer(alice, None, "hi")).await,
        "bad_request",
        "send to self",
    );
    assert!(log_of(fx.store.as_ref(), alice).await.is_empty(), "nothing was written");
    assert!(
        m.conversations(alice, list_query(None, None)).await.must("list").conversations.is_empty()
    );
}

/// Many concurrent `open`s, from both sides, create one conversation: one id, exactly one
/// `created: true`, one `conversation.created` event.
pub async fn open_concurrently_from_both_sides_creates_one(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let mut tasks = JoinSet::new();
    for i in 0..24 {
        let m = m.clone();
        let (from, to) = if i % 2 == 0 { (alice, bob) } else { (bob, alice) };
        tasks.spawn(async move { m.open(from, to, Some("race")).await });
    }
    let mut ids = HashSet::new();
    let mut created = 0;
    while let Some(joined) = tasks.join_next().await {
        let opened = joined.expect("task").must("concurrent open");
        ids.insert(opened.conversation.id);
        created += usize::from(opened.created);
    }
    assert_eq!(ids.len(), 1, "every open returns the same conversation");
    assert_eq!(created, 1, "exactly one open says it created");
    let log = log_of(fx.store.as_ref(), alice).await;
    assert_eq!(events_named(&log, "conversation.created").len(), 1);
    assert_eq!(
        m.conversations(bob, list_query(None, None)).await.must("list").conversations.len(),
        1
    );
}

/// At the store level, concurrent `open_direct` calls with different candidate ids for one
/// (pair, context) create exactly one row, and all callers get its id.
pub async fn store_open_direct_race_creates_one(fx: Fixture) {
    let (alice, bob) = two_users();
    let members = if alice <= bob { [alice, bob] } else { [bob, alice] };
    let mut tasks = JoinSet::new();
    let mut candidates = HashSet::new();
    for _ in 0..24 {
        let store = fx.store.clone();
        let id = ConversationId::new();
        candidates.insert(id);
        let new = NewConversation {
            id,
            members,
            context: None,
            created_at: Timestamp::now(),
            metadata: None,
            audience: members.to_vec(),
            actor: Some(members[0]),
        };
        tasks.spawn(async move { store.open_direct(new).await });
    }
    let mut ids = HashSet::new();
    let mut created = 0;
    while let Some(joined) = tasks.join_next().await {
        let opened = joined.expect("task").must("open_direct");
        ids.insert(opened.conversation.id);
        created += usize::from(opened.created);
        assert_eq!(opened.conversation.members, members);
    }
    assert_eq!(ids.len(), 1, "one conversation for the pair");
    assert_eq!(created, 1, "exactly one call created it");
    let id = ids.into_iter().next().expect("an id");
    assert!(candidates.contains(&id), "the id is one of the candidates");
    let found = fx.store.find_direct(bob, alice, None).await.must("find_direct").expect("found");
    assert_eq!(found.id, id, "find_direct works in either member order");
    let log = log_of(fx.store.as_ref(), bob).await;
    assert_eq!(events_named(&log, "conversation.created").len(), 1);
}

/// A missing context and an empty one are the same conversation (context `None`);
/// different contexts are different conversations; `send` with `peer` uses the same rule.
pub async fn contexts_separate_conversations(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let none = m.open(alice, bob, None).await.must("open without context");
    assert!(none.created);
    assert_eq!(none.conversation.context, None);
    let empty = m.open(bob, alice, Some("")).await.must("open with empty context");
    assert!(!empty.created, "an empty context is the missing one");
    assert_eq!(empty.conversation.id, none.conversation.id);
    assert_eq!(empty.conversation.context, None, "an empty context reads back as null");

    let a = open(&m, alice, bob, Some("order:1")).await;
    let b = open(&m, alice, bob, Some("order:2")).await;
    let ids: HashSet<_> = [none.conversation.id, a.id, b.id].into_iter().collect();
    assert_eq!(ids.len(), 3, "each context is its own conversation");

    let sent = m.send(alice, SendMessage::to_peer(bob, Some(""), "hi")).await.must("send").message;
    assert_eq!(sent.conversation_id, none.conversation.id, "send with an empty context");
    let sent =
        m.send(bob, SendMessage::to_peer(alice, Some("order:2"), "hi")).await.must("send").message;
    assert_eq!(sent.conversation_id, b.id, "send with a context");
    assert_eq!(
        m.conversations(alice, list_query(None, None)).await.must("list").conversations.len(),
        3
    );
}

/// `send` with `peer` opens the conversation exactly as `open` would: one
/// `conversation.created` event (before the `message.created`), then finds it next time.
pub async fn send_to_peer_opens_like_open(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let first = m
        .send(alice, SendMessage::to_peer(bob, Some("match:7"), "hello"))
        .await
        .must("send")
        .message;
    assert_eq!(first.seq, 1);
    let second =
        m.send(bob, SendMessage::to_peer(alice, Some("match:7"), "hey")).await.must("send").message;
    assert_eq!(second.conversation_id, first.conversation_id);
    assert_eq!(second.seq, 2);
    let opened = m.open(alice, bob, Some("match:7")).await.must("open");
    assert!(!opened.created, "send already created it");
    assert_eq!(opened.conversation.id, first.conversation_id);
    assert_eq!(opened.conversation.context.as_deref(), Some("match:7"));
    assert_eq!(opened.conversation.last_seq, 2);

    let log = log_of(fx.store.as_ref(), bob).await;
    let names: Vec<&str> = log.iter().map(|e| e.event.name()).collect();
    assert_eq!(names, ["conversation.created", "message.created", "message.created"]);
}

/// Every op naming a conversation the caller is not a member of, or one that does not
/// exist, → `not_found`.
pub async fn non_members_get_not_found(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let carol = UserId::new();
    let c = open(&m, alice, bob, None).await;
    let msg = send(&m, alice, c.id, "private").await;
    let unknown = ConversationId::new();
    for (id, what) in [(c.id, "non-member"), (unknown, "unknown conversation")] {
        assert_code(m.history(carol, id, HistoryQuery::default()).await, "not_found", what);
        assert_code(m.mark_read(carol, id, 1).await, "not_found", what);
        assert_code(m.mark_delivered(carol, id, 1).await, "not_found", what);
        assert_code(m.typing(carol, id, TypingState::Started).await, "not_found", what);
        assert_code(m.send(carol, SendMessage::to_conversation(id, "x")).await, "not_found", what);
        assert_code(
            m.send(carol, SendMessage::to_conversation(id, "x").client_msg_id("k")).await,
            "not_found",
            what,
        );
        assert_code(m.search(carol, "private", Some(id), None).await, "not_found", what);
    }
    assert_code(m.edit(carol, msg.id, "x").await, "not_found", "outsider edits");
    assert_code(m.delete(carol, msg.id).await, "not_found", "outsider deletes");
    assert!(log_of(fx.store.as_ref(), carol).await.is_empty(), "the outsider sees no event");
    assert_eq!(
        fx.store.conversation(c.id).await.must("conversation").expect("exists").last_seq,
        1,
        "nothing was sent"
    );
}
