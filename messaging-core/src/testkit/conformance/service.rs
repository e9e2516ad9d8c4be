//! The host's service handle (v1.1): opening between two users without the policy but
//! not past blocks, metadata set at creation and replaced later (`conversation.updated`),
//! reading and moderating any conversation, every conversation of one context.

use std::sync::Arc;

use serde_json::json;

use crate::model::Event;
use crate::policy::{AccessPolicyExt, AllowAll, FirstDegree};
use crate::testkit::Fixture;
use crate::testkit::support::{
    Connections, Must, after_millisecond, assert_code, events_named, log_of, open, send, two_users,
};
use crate::{ConversationId, HistoryQuery, MessageId, SendMessage, Timestamp, UserId};

/// The service opens between strangers a policy refuses (created once, then found
/// unchanged, with the metadata it was created with); a block either way is `forbidden`;
/// the same user twice is `bad_request`. `post_as` is exactly that member's send.
pub async fn service_opens_without_the_policy_but_not_past_blocks(fx: Fixture) {
    let graph = Arc::new(Connections::default());
    let m = fx.messenger_with(|b| b.policy(AllowAll.and(FirstDegree::new(graph)))).await;
    let service = m.service();
    let (buyer, seller) = two_users();
    assert_code(m.open(buyer, seller, Some("order:1")).await, "forbidden", "the policy refuses");
    let metadata = json!({"order": 1, "total": "12.50"});
    let opened = service
        .open(buyer, seller, Some("order:1"), Some(metadata.clone()))
        .await
        .must("service open");
    assert!(opened.created);
    assert_eq!(opened.conversation.metadata, Some(metadata.clone()));
    let again = service.open(seller, buyer, Some("order:1"), Some(json!({"x": 1}))).await;
    let again = again.must("open again");
    assert!(!again.created);
    assert_eq!(again.conversation, opened.conversation, "an existing one is returned unchanged");
    let log = log_of(fx.store.as_ref(), seller).await;
    assert_eq!(events_named(&log, "conversation.created").len(), 1);

    assert_code(
        service.post_as(buyer, SendMessage::to_conversation(opened.conversation.id, "hi")).await,
        "forbidden",
        "post_as is the member's send: the policy applies",
    );
    let outsider = UserId::new();
    assert_code(
        service.post_as(outsider, SendMessage::to_conversation(opened.conversation.id, "x")).await,
        "not_found",
        "not a member",
    );
    assert_code(service.open(buyer, buyer, None, None).await, "bad_request", "the same user");
    m.block(seller, buyer).await.must("block");
    assert_code(service.open(buyer, seller, Some("order:2"), None).await, "forbidden", "blocked");
    assert_code(service.open(seller, buyer, Some("order:2"), None).await, "forbidden", "both ways");
    service.unblock(seller, buyer).await.must("unblock on the user's behalf");
    service.open(buyer, seller, Some("order:2"), None).await.must("unblocked");
    service.block(buyer, seller).await.must("block on the user's behalf");
    assert_eq!(service.blocks(buyer, None, None).await.must("blocks").user_ids, [seller]);
    assert_code(
        service.open(buyer, seller, Some("order:3"), Some(json!([1]))).await,
        "bad_request",
        "metadata must be an object",
    );
}

/// The service reads any conversation's history and one conversation (no membership),
/// deletes any message (moderation: a member's or a system message) with one
/// `message.deleted` for both, and replaces metadata with one `conversation.updated` for
/// both (the same value: nothing; `None` clears; validated); `not_found` for unknown ids.
pub async fn service_reads_moderates_and_sets_metadata(fx: Fixture) {
    let m = fx.messenger().await;
    let service = m.service();
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    let hello = send(&m, alice, c.id, "hello").await;
    let system = service.post(SendMessage::to_conversation(c.id, "Welcome")).await.must("post");
    let page = service.history(c.id, HistoryQuery::default()).await.must("history");
    assert_eq!(page.messages.len(), 2);
    assert_eq!(service.conversation(c.id).await.must("conversation").last_seq, 2);
    assert_code(service.conversation(ConversationId::new()).await, "not_found", "unknown");
    assert_code(
        service.history(ConversationId::new(), HistoryQuery::default()).await,
        "not_found",
        "history of an unknown conversation",
    );

    let tombstone = service.delete_message(hello.id).await.must("moderate");
    assert!(tombstone.deleted && tombstone.body.is_empty());
    let again = service.delete_message(hello.id).await.must("twice");
    assert_eq!(again, tombstone);
    service.delete_message(system.message.id).await.must("a system message");
    assert_code(service.delete_message(MessageId::new()).await, "not_found", "unknown message");
    for user in [alice, bob] {
        let log = log_of(fx.store.as_ref(), user).await;
        assert_eq!(events_named(&log, "message.deleted").len(), 2, "one per message, both see");
    }

    let metadata = json!({"listing": {"title": "Bike", "price": 120}});
    let updated = service.set_metadata(c.id, Some(metadata.clone())).await.must("set");
    assert_eq!(updated.metadata, Some(metadata.clone()));
    let head = fx.store.head().await.must("head");
    service.set_metadata(c.id, Some(metadata.clone())).await.must("the same");
    assert_eq!(fx.store.head().await.must("head"), head, "the same value: no event");
    assert_eq!(
        m.conversation(bob, c.id).await.must("summary").conversation.metadata,
        Some(metadata)
    );
    let cleared = service.set_metadata(c.id, None).await.must("clear");
    assert_eq!(cleared.metadata, None);
    for user in [alice, bob] {
        let log = log_of(fx.store.as_ref(), user).await;
        let updates = events_named(&log, "conversation.updated");
        assert_eq!(updates.len(), 2);
        assert_eq!(updates[0].event, Event::ConversationUpdated(cleared.clone()), "current state");
    }
    assert_code(service.set_metadata(c.id, Some(json!("x"))).await, "bad_request", "not an object");
    let big = json!({"k": "x".repeat(m.limits().max_metadata_bytes)});
    assert_code(service.set_metadata(c.id, Some(big)).await, "too_large", "too large");
    assert_code(service.set_metadata(ConversationId::new(), None).await, "not_found", "unknown");
}

/// Every conversation of one context, whoever its members, newest activity first, paged
/// by `next` (null exactly at the end); the context is matched exactly and validated.
pub async fn service_lists_every_conversation_of_a_context(fx: Fixture) {
    let m = fx.messenger().await;
    let service = m.service();
    let seller = UserId::new();
    let mut expected = Vec::new();
    for i in 0..5 {
        let buyer = UserId::new();
        let c = open(&m, buyer, seller, Some("listing:7")).await;
        after_millisecond(Timestamp::now()).await;
        send(&m, buyer, c.id, &format!("inquiry {i}")).await;
        expected.push(c.id);
        open(&m, buyer, seller, Some("listing:8")).await;
    }
    open(&m, UserId::new(), UserId::new(), Some("listing:7x")).await;
    // The oldest inquiry gets a new message: it is the newest activity now.
    let first = service.conversation(expected[0]).await.must("conversation");
    let member = first.members[0];
    after_millisecond(Timestamp::now()).await;
    send(&m, member, first.id, "still for sale?").await;
    expected.rotate_left(1);
    expected.reverse();

    let mut seen = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let page = service
            .conversations_by_context("listing:7", Some(2), before.as_deref())
            .await
            .must("page");
        assert!(page.conversations.len() <= 2);
        seen.extend(page.conversations.iter().map(|c| c.id));
        match page.next {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, expected, "every inquiry, newest activity first");
    assert!(
        service
            .conversations_by_context("nope", None, None)
            .await
            .must("none")
            .conversations
            .is_empty()
    );
    assert_code(service.conversations_by_context("", None, None).await, "bad_request", "empty");
    assert_code(
        service.conversations_by_context("listing:7", Some(0), None).await,
        "bad_request",
        "page size",
    );
}

/// Account deletion: every message the user sent, in every conversation (archived ones
/// too, across pages), becomes a tombstone with one `message.deleted` each; the peers'
/// messages and system messages stay; a second call deletes nothing more.
pub async fn service_deletes_every_message_of_a_user(fx: Fixture) {
    let m = fx.messenger().await;
    let service = m.service();
    let leaving = UserId::new();
    let mut peers_messages = Vec::new();
    let mut theirs = 0;
    for i in 0..3 {
        let peer = UserId::new();
        let c = open(&m, leaving, peer, None).await;
        for n in 0..(if i == 0 { 130 } else { 3 }) {
            send(&m, leaving, c.id, &format!("mine {n}")).await;
            theirs += 1;
        }
        peers_messages.push(send(&m, peer, c.id, "the peer's").await);
        service.post(SendMessage::to_conversation(c.id, "system")).await.must("post");
        if i == 2 {
            m.archive(leaving, c.id, true).await.must("archive");
        }
    }
    let head = fx.store.head().await.must("head");
    let deleted = service.delete_user_messages(leaving).await.must("delete all");
    assert_eq!(deleted, theirs);
    let log = log_of(fx.store.as_ref(), leaving).await;
    assert_eq!(events_named(&log, "message.deleted").len() as u64, theirs, "one event each");
    assert_eq!(fx.store.head().await.must("head"), head + theirs);
    for message in &peers_messages {
        let stored = fx.store.message(message.id).await.must("read").expect("stored");
        assert!(!stored.deleted, "the peers' messages stay");
    }
    assert_eq!(service.delete_user_messages(leaving).await.must("again"), 0);
    let hits = m.search(leaving, "mine", None, Some(50)).await.must("search");
    assert!(hits.is_empty(), "nothing of theirs is searchable");
}
