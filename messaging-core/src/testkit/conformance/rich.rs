//! Richer messages (v1.1): attachments (with an empty body, erased on delete), replies to
//! an existing seq, and the host's system messages (no sender, unread for both, nobody's
//! to edit or delete, their own `client_msg_id` space).

use crate::id::UserId;
use crate::model::{Attachment, MessageKind};
use crate::testkit::Fixture;
use crate::testkit::support::{
    Must, assert_code, events_named, log_of, message_events, open, send, settle, sync_all,
    two_users,
};
use crate::{Cursor, Event, HistoryQuery, SendMessage};

fn photo() -> Attachment {
    Attachment {
        name: Some("bike.jpg".into()),
        size: Some(123_456),
        width: Some(1024),
        height: Some(768),
        ..Attachment::new("https://cdn.example.com/u/1/bike.jpg", "image/jpeg")
    }
}

/// A message may carry attachments (in order, every field kept) and then an empty body;
/// they are served by every read; a deletion erases them (and the reactions) in every
/// read and in `sync`; a bad attachment or too many are `bad_request`.
pub async fn attachments_round_trip_and_are_erased_on_delete(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    let voice =
        Attachment { duration_ms: Some(4_200), ..Attachment::new("http://h/v.ogg", "audio/ogg") };
    let message =
        SendMessage::to_conversation(c.id, "").attachment(photo()).attachment(voice.clone());
    let sent = m.send(alice, message).await.must("attachments with an empty body").message;
    assert_eq!(sent.attachments, [photo(), voice.clone()]);
    assert_eq!(sent.body, "");
    let stored = fx.store.message(sent.id).await.must("message").expect("stored");
    assert_eq!(stored, sent, "read back as sent");
    let page = m.history(bob, c.id, HistoryQuery::default()).await.must("history");
    assert_eq!(page.messages, std::slice::from_ref(&sent));
    let list = m.conversation(bob, c.id).await.must("summary");
    assert_eq!(list.last_message.as_ref().map(|l| &l.attachments), Some(&sent.attachments));

    assert_code(
        m.send(alice, SendMessage::to_conversation(c.id, "  ")).await,
        "bad_request",
        "whitespace body without attachments",
    );
    let bad = Attachment::new("ftp://h/x", "image/png");
    assert_code(
        m.send(alice, SendMessage::to_conversation(c.id, "x").attachment(bad)).await,
        "bad_request",
        "a URL that is not http(s)",
    );
    let mut many = SendMessage::to_conversation(c.id, "x");
    for _ in 0..=m.limits().max_attachments {
        many = many.attachment(photo());
    }
    assert_code(m.send(alice, many).await, "bad_request", "too many attachments");

    m.react(bob, sent.id, "👍", crate::ReactionState::Added).await.must("react");
    let tombstone = m.delete(alice, sent.id).await.must("delete");
    assert!(
        tombstone.deleted && tombstone.attachments.is_empty() && tombstone.reactions.is_empty()
    );
    let stored = fx.store.message(sent.id).await.must("message").expect("stored");
    assert_eq!(stored, tombstone);
    settle(&m).await;
    let session = m.connect(bob).await.must("connect");
    let (synced, _) = sync_all(&session, Cursor::at(0), 100).await;
    assert!(synced.len() >= 3, "created, reaction, deleted");
    for event in synced.iter().filter_map(|e| e.event.message()) {
        assert!(event.attachments.is_empty(), "no event serves a deleted attachment");
    }
}

/// `reply_to_seq` names an earlier message of the same conversation: it must exist
/// (`not_found` otherwise, a tombstone allowed), 0 is `bad_request`, and it is kept.
pub async fn replies_must_name_an_existing_seq(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    let first = send(&m, alice, c.id, "first").await;
    let reply = m
        .send(bob, SendMessage::to_conversation(c.id, "re").reply_to(first.seq))
        .await
        .must("reply")
        .message;
    assert_eq!(reply.reply_to_seq, Some(1));
    assert_eq!(
        fx.store.message(reply.id).await.must("read").expect("stored").reply_to_seq,
        Some(1)
    );
    let head = fx.store.head().await.must("head");
    assert_code(
        m.send(bob, SendMessage::to_conversation(c.id, "re").reply_to(3)).await,
        "not_found",
        "a seq the conversation does not have",
    );
    assert_code(
        m.send(bob, SendMessage::to_conversation(c.id, "re").reply_to(0)).await,
        "bad_request",
        "seq 0",
    );
    let other = open(&m, alice, bob, Some("other")).await;
    assert_code(
        m.send(alice, SendMessage::to_conversation(other.id, "re").reply_to(2)).await,
        "not_found",
        "a seq of another conversation",
    );
    assert_eq!(fx.store.head().await.must("head"), head + 1, "refused replies wrote nothing");
    m.delete(alice, first.id).await.must("delete");
    let to_tombstone = m
        .send(bob, SendMessage::to_peer(alice, None, "still").reply_to(1))
        .await
        .must("a tombstone may be replied to");
    assert_eq!(to_tombstone.message.reply_to_seq, Some(1));
}

/// A system message (posted through the service handle) has no sender and kind
/// `system`, is unread for both members, and neither can edit or delete it (`not_found`);
/// a retry with its `client_msg_id` returns it (`created: false`), and the same key from a
/// member is another message.
pub async fn system_messages_have_no_sender_and_are_unread_for_both(fx: Fixture) {
    let m = fx.messenger().await;
    let service = m.service();
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    let post = || SendMessage::to_conversation(c.id, "Match created").client_msg_id("match");
    let sent = service.post(post()).await.must("system message");
    assert!(sent.created);
    let system = sent.message;
    assert_eq!((system.sender_id, system.kind, system.seq), (None, MessageKind::System, 1));
    let retry = service.post(post()).await.must("retry");
    assert_eq!((retry.created, &retry.message), (false, &system));
    let users = m
        .send(alice, SendMessage::to_conversation(c.id, "hi").client_msg_id("match"))
        .await
        .must("a member's message with the same key");
    assert!(users.created && users.message.id != system.id, "system keys are their own space");

    assert_eq!(m.unread(alice).await.must("unread").total, 1, "the system message");
    assert_eq!(m.unread(bob).await.must("unread").total, 2, "the system message and alice's");
    for user in [alice, bob] {
        assert_code(m.edit(user, system.id, "hacked").await, "not_found", "edit a system message");
        assert_code(m.delete(user, system.id).await, "not_found", "delete a system message");
    }
    let stored = fx.store.message(system.id).await.must("read").expect("stored");
    assert_eq!(stored, system, "read back with no sender");
    for user in [alice, bob] {
        let log = log_of(fx.store.as_ref(), user).await;
        assert_eq!(message_events(&log, "message.created", system.id).len(), 1);
    }
    assert_code(
        service.post(SendMessage::to_peer(alice, None, "x")).await,
        "bad_request",
        "a system message goes to a conversation",
    );
    assert_code(
        service.post(SendMessage::to_conversation(crate::ConversationId::new(), "x")).await,
        "not_found",
        "an unknown conversation",
    );
    assert_code(
        service.post(SendMessage::to_conversation(c.id, " ")).await,
        "bad_request",
        "blank",
    );
    let read = m.mark_read(alice, c.id, 2).await.must("read");
    assert_eq!(read.seq, 2);
    assert_eq!(m.unread(alice).await.must("unread").total, 0);
    let log = log_of(fx.store.as_ref(), alice).await;
    assert!(!events_named(&log, "message.created").is_empty());
    assert!(matches!(log[0].event, Event::ConversationCreated(_)));
}

/// The nil UUID names no user (stores keep it as "no sender"): opening, sending to it,
/// blocking it, acting as it are `bad_request`.
pub async fn the_nil_user_id_is_refused(fx: Fixture) {
    let m = fx.messenger().await;
    let nil = UserId::from_uuid(uuid::Uuid::nil());
    let alice = UserId::new();
    assert_code(m.open(alice, nil, None).await, "bad_request", "open with nil");
    assert_code(m.open(nil, alice, None).await, "bad_request", "open as nil");
    assert_code(
        m.send(alice, SendMessage::to_peer(nil, None, "x")).await,
        "bad_request",
        "send to nil",
    );
    assert_code(m.block(alice, nil).await, "bad_request", "block nil");
    assert_code(m.connect(nil).await.map(|_| ()), "bad_request", "connect as nil");
    assert_code(m.service().open(nil, alice, None, None).await, "bad_request", "service open");
    assert_code(m.service().revoke(nil).await, "bad_request", "revoke nil");
    assert_code(m.token_accepted(nil, None).await, "bad_request", "a token of nil");
    assert_eq!(fx.store.revoked_at(nil).await.must("revoked_at"), None, "nil not revoked");
    assert_eq!(fx.store.head().await.must("head"), 0, "nothing written");
}
