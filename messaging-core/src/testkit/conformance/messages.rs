//! Sending, idempotent retries (sequential, concurrent, at the store level, after a
//! deletion, an edit or a block), gap-free seqs under concurrency, edit and delete,
//! metadata as a JSON value, and timestamps that agree everywhere.

use std::collections::HashSet;

use serde_json::json;
use tokio::task::JoinSet;

use crate::model::Event;
use crate::store::NewMessage;
use crate::testkit::Fixture;
use crate::testkit::support::{
    Must, assert_code, carried, history_seqs, list_query, log_of, message_events, next_event, open,
    send, send_n, two_users,
};
use crate::{HistoryQuery, SendMessage};
use crate::{MessageId, Timestamp, UserId};

/// A sent message has the next seq and the documented shape; the conversation's
/// `last_seq` and `last_message_at` follow; one `message.created` event per message.
pub async fn send_assigns_seq_and_updates_conversation(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    let one = m
        .send(alice, SendMessage::to_conversation(c.id, "  hello  ").client_msg_id("c-1"))
        .await
        .must("send")
        .message;
    assert_eq!(one.seq, 1);
    assert_eq!(one.conversation_id, c.id);
    assert_eq!(one.sender_id, Some(alice));
    assert_eq!(one.body, "  hello  ", "the body is stored as given");
    assert_eq!(one.client_msg_id.as_deref(), Some("c-1"));
    assert_eq!(one.metadata, None);
    assert_eq!(one.edited_at, None);
    assert!(!one.deleted);
    let two = send(&m, bob, c.id, "hi").await;
    let three = send(&m, alice, c.id, "how are you").await;
    assert_eq!((two.seq, three.seq), (2, 3));
    assert_eq!(two.client_msg_id, None);

    let stored = fx.store.conversation(c.id).await.must("conversation").expect("exists");
    assert_eq!(stored.last_seq, 3);
    assert_eq!(stored.last_message_at, Some(three.created_at));
    assert_eq!(fx.store.message(one.id).await.must("message"), Some(one.clone()));

    let log = log_of(fx.store.as_ref(), bob).await;
    for sent in [&one, &two, &three] {
        let events = message_events(&log, "message.created", sent.id);
        assert_eq!(events.len(), 1, "one message.created per message");
        assert_eq!(&events[0].event, &Event::MessageCreated(sent.clone()));
    }
}

/// Concurrent sends in one conversation (both members) get seqs 1..=N with no gap and no
/// repeat; `last_seq` is N; within the conversation, log order follows seq order.
pub async fn concurrent_sends_get_gap_free_seqs(fx: Fixture) {
    const N: u64 = 48;
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    let mut tasks = JoinSet::new();
    for i in 0..N {
        let m = m.clone();
        let sender = if i % 2 == 0 { alice } else { bob };
        tasks.spawn(async move {
            m.send(sender, SendMessage::to_conversation(c.id, format!("message {i}"))).await
        });
    }
    let mut seqs = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        seqs.push(joined.expect("task").must("concurrent send").message.seq);
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=N).collect::<Vec<_>>(), "seqs are 1..=N, gap-free");
    let stored = fx.store.conversation(c.id).await.must("conversation").expect("exists");
    assert_eq!(stored.last_seq, N);
    assert_eq!(history_seqs(&m, alice, c.id).await, (1..=N).collect::<Vec<_>>());
    let log = log_of(fx.store.as_ref(), alice).await;
    let created: Vec<u64> = log
        .iter()
        .filter(|e| e.event.name() == "message.created")
        .map(|e| carried(&e.event).seq)
        .collect();
    assert_eq!(created, (1..=N).collect::<Vec<_>>(), "one event per message, in seq order");
}

/// A retry with the same `client_msg_id` returns the original message (whatever body the
/// retry carries) and writes nothing; the key is per sender and per conversation.
pub async fn idempotent_retry_returns_original(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    let send_key = |who: UserId, body: &str, key: &str| {
        let m = m.clone();
        let msg = SendMessage::to_conversation(c.id, body).client_msg_id(key);
        async move { m.send(who, msg).await }
    };
    let first = send_key(alice, "first", "k-1").await.must("send");
    assert!(first.created, "a new message is created");
    let original = first.message;
    let head = fx.store.head().await.must("head");
    let retry = send_key(alice, "a different body", "k-1").await.must("retry");
    assert!(!retry.created, "a recognised retry says created: false");
    assert_eq!(retry.message, original, "the retry returns the original");
    let retry_by_peer = m
        .send(alice, SendMessage::to_peer(bob, None, "again").client_msg_id("k-1"))
        .await
        .must("retry addressed by peer")
        .message;
    assert_eq!(retry_by_peer, original, "a retry addressed by peer is recognised too");
    assert_eq!(fx.store.head().await.must("head"), head, "retries write no event");

    let other_key = send_key(alice, "second", "k-2").await.must("send").message;
    assert_eq!(other_key.seq, 2);
    let bobs = send_key(bob, "bob's", "k-1").await.must("same key, other sender").message;
    assert_ne!(bobs.id, original.id, "the key is per sender");
    assert_eq!(bobs.seq, 3);
    let other = open(&m, alice, bob, Some("elsewhere")).await;
    let elsewhere = m
        .send(alice, SendMessage::to_conversation(other.id, "x").client_msg_id("k-1"))
        .await
        .must("same key, other conversation")
        .message;
    assert_ne!(elsewhere.id, original.id, "the key is per conversation");
    assert_eq!(elsewhere.seq, 1);

    let log = log_of(fx.store.as_ref(), alice).await;
    assert_eq!(message_events(&log, "message.created", original.id).len(), 1);
    let stored = fx.store.conversation(c.id).await.must("conversation").expect("exists");
    assert_eq!(stored.last_seq, 3);
}

/// Many concurrent sends with one `client_msg_id` store one message: every caller gets it,
/// one seq is used, and exactly one `message.created` event is in the log.
pub async fn concurrent_retries_store_one_message(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    let mut tasks = JoinSet::new();
    for i in 0..24 {
        let m = m.clone();
        let msg = SendMessage::to_conversation(c.id, format!("attempt {i}")).client_msg_id("once");
        tasks.spawn(async move { m.send(alice, msg).await });
    }
    let mut ids = HashSet::new();
    let mut seqs = HashSet::new();
    while let Some(joined) = tasks.join_next().await {
        let message = joined.expect("task").must("concurrent retry").message;
        ids.insert(message.id);
        seqs.insert(message.seq);
    }
    assert_eq!(ids.len(), 1, "one message");
    assert_eq!(seqs.into_iter().collect::<Vec<_>>(), [1], "one seq");
    let stored = fx.store.conversation(c.id).await.must("conversation").expect("exists");
    assert_eq!(stored.last_seq, 1);
    let log = log_of(fx.store.as_ref(), bob).await;
    let created: Vec<_> = log.iter().filter(|e| e.event.name() == "message.created").collect();
    assert_eq!(created.len(), 1, "exactly one message.created event");
}

/// The store's own `append` is idempotent on (conversation, sender, `client_msg_id`),
/// sequentially and concurrently: `created: false` and the original, no event.
pub async fn store_append_is_idempotent(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    let new = |body: &str, key: &str| NewMessage {
        id: MessageId::new(),
        conversation_id: c.id,
        sender_id: Some(alice),
        attachments: Vec::new(),
        reply_to_seq: None,
        body: body.to_owned(),
        metadata: Some(json!({"n": 1})),
        client_msg_id: Some(key.to_owned()),
        created_at: Timestamp::now(),
        audience: c.members.to_vec(),
    };
    let first = fx.store.append(new("one", "s-1")).await.must("append");
    assert!(first.created);
    assert_eq!(first.message.seq, 1);
    let head = fx.store.head().await.must("head");
    let again = fx.store.append(new("other body", "s-1")).await.must("append again");
    assert!(!again.created, "a duplicate key is not created");
    assert_eq!(again.message, first.message, "the duplicate returns the original");
    assert_eq!(fx.store.head().await.must("head"), head, "a duplicate writes no event");
    let found = fx.store.find_by_client_msg_id(c.id, alice, "s-1").await.must("find");
    assert_eq!(found, Some(first.message.clone()));
    assert_eq!(fx.store.find_by_client_msg_id(c.id, bob, "s-1").await.must("find"), None);

    let mut tasks = JoinSet::new();
    for i in 0..16 {
        let store = fx.store.clone();
        let new = new(&format!("race {i}"), "s-2");
        tasks.spawn(async move { store.append(new).await });
    }
    let mut created = 0;
    let mut ids = HashSet::new();
    while let Some(joined) = tasks.join_next().await {
        let appended = joined.expect("task").must("concurrent append");
        created += usize::from(appended.created);
        ids.insert(appended.message.id);
    }
    assert_eq!((created, ids.len()), (1, 1), "one append of the key creates, all get it");
    assert_eq!(fx.store.head().await.must("head"), head + 1, "one event for the key");
    let stored = fx.store.conversation(c.id).await.must("conversation").expect("exists");
    assert_eq!(stored.last_seq, 2);
}

/// A retry after the message was deleted returns the tombstone; after an edit, the latest
/// body; neither writes an event.
pub async fn retry_returns_current_state(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    let msg = |key: &str| SendMessage::to_conversation(c.id, "original").client_msg_id(key);
    let edited = m.send(alice, msg("e")).await.must("send").message;
    let edited = m.edit(alice, edited.id, "edited body").await.must("edit");
    let deleted = m.send(alice, msg("d").metadata(json!({"a": 1}))).await.must("send").message;
    let tombstone = m.delete(alice, deleted.id).await.must("delete");
    let head = fx.store.head().await.must("head");

    let retry = m.send(alice, msg("e")).await.must("retry of edited").message;
    assert_eq!(retry, edited, "the retry returns the edited message");
    assert_eq!(retry.body, "edited body");
    let retry = m.send(alice, msg("d")).await.must("retry of deleted").message;
    assert_eq!(retry, tombstone, "the retry returns the tombstone");
    assert!(retry.deleted);
    assert_eq!(retry.body, "");
    assert_eq!(retry.metadata, None);
    assert_eq!(fx.store.head().await.must("head"), head, "retries write nothing");
}

/// A retry while either user blocks the other still returns the original (the retry is
/// recognised before the block check); a new message is `forbidden`.
pub async fn retry_while_blocked_returns_original(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    let original = m
        .send(alice, SendMessage::to_conversation(c.id, "hi").client_msg_id("b-1"))
        .await
        .must("send")
        .message;
    for (blocker, blocked) in [(bob, alice), (alice, bob)] {
        m.block(blocker, blocked).await.must("block");
        let retry = m
            .send(alice, SendMessage::to_conversation(c.id, "retry").client_msg_id("b-1"))
            .await
            .must("retry while blocked")
            .message;
        assert_eq!(retry, original);
        let by_peer = m
            .send(alice, SendMessage::to_peer(bob, None, "retry").client_msg_id("b-1"))
            .await
            .must("retry by peer while blocked")
            .message;
        assert_eq!(by_peer, original);
        assert_code(
            m.send(alice, SendMessage::to_conversation(c.id, "new").client_msg_id("b-2")).await,
            "forbidden",
            "a new key while blocked",
        );
        m.unblock(blocker, blocked).await.must("unblock");
    }
    let stored = fx.store.conversation(c.id).await.must("conversation").expect("exists");
    assert_eq!(stored.last_seq, 1, "nothing new was stored");
}

/// Only the sender edits: the body changes, `edited_at` is set, one `message.edited`
/// event; the peer, an outsider or an unknown id → `not_found`; an empty body →
/// `bad_request`.
pub async fn edit_by_sender_only(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let carol = UserId::new();
    let c = open(&m, alice, bob, None).await;
    let sent = m
        .send(alice, SendMessage::to_conversation(c.id, "typo").metadata(json!({"k": "v"})))
        .await
        .must("send")
        .message;
    assert_code(m.edit(bob, sent.id, "peer edit").await, "not_found", "the peer edits");
    assert_code(m.edit(carol, sent.id, "outsider").await, "not_found", "an outsider edits");
    assert_code(m.edit(alice, MessageId::new(), "x").await, "not_found", "unknown message");
    assert_code(m.edit(alice, sent.id, "  ").await, "bad_request", "blank body");

    let edited = m.edit(alice, sent.id, "fixed").await.must("edit");
    assert_eq!(edited.body, "fixed");
    assert_eq!((edited.id, edited.seq, edited.created_at), (sent.id, sent.seq, sent.created_at));
    assert_eq!(edited.metadata, sent.metadata, "an edit keeps the metadata");
    let at = edited.edited_at.expect("edited_at is set");
    assert!(at >= sent.created_at);
    let history = m.history(bob, c.id, HistoryQuery::default()).await.must("history");
    assert_eq!(history.messages, vec![edited.clone()]);
    let stored = fx.store.conversation(c.id).await.must("conversation").expect("exists");
    assert_eq!(stored.last_seq, 1, "an edit is not a new message");
    assert_eq!(stored.last_message_at, Some(sent.created_at), "an edit is not activity");
    let log = log_of(fx.store.as_ref(), bob).await;
    let events = message_events(&log, "message.edited", sent.id);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event, Event::MessageEdited(edited));
}

/// Delete turns the message into a tombstone (body "", metadata null, deleted), keeps its
/// seq, is reported once (`message.deleted`), and a second delete returns the same
/// tombstone without an event; only the sender may delete; editing a tombstone →
/// `conflict`.
pub async fn delete_makes_one_tombstone(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let carol = UserId::new();
    let c = open(&m, alice, bob, None).await;
    let sent = m
        .send(alice, SendMessage::to_conversation(c.id, "oops").metadata(json!({"x": [1, 2]})))
        .await
        .must("send")
        .message;
    send(&m, bob, c.id, "reply").await;
    assert_code(m.delete(bob, sent.id).await, "not_found", "the peer deletes");
    assert_code(m.delete(carol, sent.id).await, "not_found", "an outsider deletes");
    assert_code(m.delete(alice, MessageId::new()).await, "not_found", "unknown message");

    let tombstone = m.delete(alice, sent.id).await.must("delete");
    assert!(tombstone.deleted);
    assert_eq!(tombstone.body, "");
    assert_eq!(tombstone.metadata, None);
    assert_eq!((tombstone.id, tombstone.seq, tombstone.sender_id), (sent.id, 1, Some(alice)));
    assert_eq!(tombstone.created_at, sent.created_at);
    let head = fx.store.head().await.must("head");
    let again = m.delete(alice, sent.id).await.must("delete twice");
    assert_eq!(again, tombstone, "deleting twice returns the tombstone again");
    assert_eq!(fx.store.head().await.must("head"), head, "and writes no event");
    assert_code(m.edit(alice, sent.id, "revive").await, "conflict", "editing a tombstone");

    let history = m.history(bob, c.id, HistoryQuery::default()).await.must("history");
    assert_eq!(history.messages.len(), 2);
    assert_eq!(history.messages[0], tombstone, "history shows the tombstone");
    let stored = fx.store.conversation(c.id).await.must("conversation").expect("exists");
    assert_eq!(stored.last_seq, 2, "a delete does not change last_seq");
    let log = log_of(fx.store.as_ref(), bob).await;
    let deleted = message_events(&log, "message.deleted", sent.id);
    assert_eq!(deleted.len(), 1, "exactly one message.deleted event");
    assert_eq!(deleted[0].event, Event::MessageDeleted(tombstone));
}

/// Metadata round-trips as a JSON value (compared as values: key order is irrelevant)
/// through the reply, history, the store, the log and a push.
pub async fn metadata_round_trips_as_json(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    let mut bobs = m.connect(bob).await.must("connect");
    let metadata = json!({
        "zeta": 1, "alpha": {"nested": [1, 2.5, -3, true, null, "ü€𝄞"]},
        "big": 9_007_199_254_740_993_u64, "empty": {}, "list": [], "s": "quote \" and \\"
    });
    let sent = m
        .send(alice, SendMessage::to_conversation(c.id, "with data").metadata(metadata.clone()))
        .await
        .must("send")
        .message;
    assert_eq!(sent.metadata.as_ref(), Some(&metadata), "the reply");
    let stored = fx.store.message(sent.id).await.must("message").expect("stored");
    assert_eq!(stored.metadata.as_ref(), Some(&metadata), "the store");
    let history = m.history(bob, c.id, HistoryQuery::default()).await.must("history");
    assert_eq!(history.messages[0].metadata.as_ref(), Some(&metadata), "history");
    let pushed = next_event(&mut bobs, "the pushed message").await;
    assert_eq!(carried(&pushed.event).metadata.as_ref(), Some(&metadata), "the push");
    let log = log_of(fx.store.as_ref(), bob).await;
    let logged = message_events(&log, "message.created", sent.id);
    assert_eq!(carried(&logged[0].event).metadata.as_ref(), Some(&metadata), "the log");
    let reordered: serde_json::Value = serde_json::from_str(
        r#"{"s":"quote \" and \\","list":[],"empty":{},"big":9007199254740993,
            "alpha":{"nested":[1,2.5,-3,true,null,"ü€𝄞"]},"zeta":1}"#,
    )
    .expect("json");
    assert_eq!(stored.metadata, Some(reordered), "compared as a JSON value");
}

/// `created_at` (millisecond precision) is the same in the send reply, history, the push,
/// the log, `sync` and the conversation list; so are a conversation's `created_at` and a
/// message's `edited_at`.
pub async fn timestamps_agree_everywhere(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let mut bobs = m.connect(bob).await.must("connect");
    let opened = m.open(alice, bob, None).await.must("open").conversation;
    let pushed_conversation = next_event(&mut bobs, "conversation.created").await;
    let Event::ConversationCreated(pushed_c) = &pushed_conversation.event else {
        panic!("expected conversation.created, got {}", pushed_conversation.event.name())
    };
    assert_eq!(pushed_c.created_at, opened.created_at);

    let sent = send_n(&m, alice, opened.id, 1, "timed").await.remove(0);
    let edited = m.edit(alice, sent.id, "timed, edited").await.must("edit");
    let pushed_created = next_event(&mut bobs, "message.created").await;
    let pushed_edited = next_event(&mut bobs, "message.edited").await;
    assert_eq!(carried(&pushed_created.event).created_at, sent.created_at, "push vs reply");
    assert_eq!(carried(&pushed_edited.event).edited_at, edited.edited_at, "edited_at");
    assert_eq!(carried(&pushed_edited.event).created_at, sent.created_at);

    let history = m.history(bob, opened.id, HistoryQuery::default()).await.must("history");
    assert_eq!(history.messages[0].created_at, sent.created_at, "history vs reply");
    assert_eq!(history.messages[0].edited_at, edited.edited_at);
    let list = m.conversations(bob, list_query(None, None)).await.must("list").conversations;
    assert_eq!(list[0].conversation.created_at, opened.created_at);
    assert_eq!(list[0].conversation.last_message_at, Some(sent.created_at));
    let last = list[0].last_message.as_ref().expect("last message");
    assert_eq!((last.created_at, last.edited_at), (sent.created_at, edited.edited_at));

    let later = m.connect(bob).await.must("connect");
    let page = later.sync(Some(bobs.cursor()), None).await.must("sync");
    let synced: Vec<_> = page.events.iter().filter_map(|e| e.event.message()).collect();
    assert!(!synced.is_empty());
    for message in synced {
        assert_eq!((message.created_at, message.edited_at), (sent.created_at, edited.edited_at));
    }
    let now = Timestamp::now();
    assert!(sent.created_at <= now && now.as_millis() - sent.created_at.as_millis() < 60_000);
}
