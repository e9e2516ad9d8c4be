//! Richer messages (PROTOCOL.md v1.1, migration 0005) in PostgreSQL: attachments and
//! replies stored and served by every read, replies checked in the append (also against
//! appends of the same batch), tombstones erasing attachments and reactions, and system
//! messages (no sender) stored with the nil UUID.
//!
//! Each case runs on a fresh database cloned from the migrated template (see `support`).

#![allow(clippy::expect_used, clippy::panic, reason = "tests: failing loudly is the point")]

mod support;

use std::sync::Arc;
use std::time::Duration;

use messaging_core::id::{ConversationId, MessageId, UserId};
use messaging_core::model::{Attachment, Event, Message, MessageKind, Reaction, ReactionState};
use messaging_core::store::{
    ConversationStore, EventLog, HistoryWindow, MessageStore, NewMessage, SearchQuery,
};
use messaging_core::testkit::CommitHold;
use messaging_core::time::Timestamp;
use messaging_core::{ConversationsQuery, Error, HistoryQuery, Messenger, SendMessage};
use messaging_store_pg::{PgOptions, PgStore};

struct Case {
    store: Arc<PgStore>,
    messenger: Messenger,
    alice: UserId,
    bob: UserId,
    conversation: ConversationId,
}

async fn case(options: PgOptions) -> Option<Case> {
    let url = support::fresh_database().await?;
    let store = Arc::new(PgStore::connect(&url, options.migrate(false)).await.expect("connect"));
    let messenger = Messenger::new(store.clone()).await.expect("messenger");
    let (alice, bob) = (UserId::new(), UserId::new());
    let conversation = messenger.open(alice, bob, None).await.expect("open").conversation.id;
    Some(Case { store, messenger, alice, bob, conversation })
}

fn voice() -> Attachment {
    Attachment {
        url: "https://files.example/v/2.ogg".to_owned(),
        mime: "audio/ogg".to_owned(),
        name: None,
        size: None,
        width: None,
        height: None,
        duration_ms: Some(3_500),
    }
}

fn is_not_found<T: std::fmt::Debug>(result: &Result<T, Error>) -> bool {
    matches!(result, Err(Error::NotFound(_)))
}

/// A message with attachments and a reply, sent through the messenger, reads back equal
/// through every read: `message`, history, the list's last message, search, the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_and_replies_round_trip() {
    let Some(Case { store, messenger, alice, bob, conversation, .. }) =
        case(PgOptions::default()).await
    else {
        return;
    };
    let first = messenger
        .send(alice, SendMessage::to_conversation(conversation, "where were you?"))
        .await
        .expect("send")
        .message;
    assert_eq!((first.attachments.len(), first.reply_to_seq), (0, None));
    assert_eq!(first.kind, MessageKind::User);
    let sent = messenger
        .send(
            bob,
            SendMessage::to_conversation(conversation, "at the beach, attached")
                .attachment(support::photo())
                .attachment(voice())
                .reply_to(first.seq),
        )
        .await
        .expect("send with attachments and a reply")
        .message;
    assert_eq!(sent.attachments, vec![support::photo(), voice()], "in the sender's order");
    assert_eq!(sent.reply_to_seq, Some(1));
    assert_eq!((sent.seq, sent.kind, sent.sender_id), (2, MessageKind::User, Some(bob)));
    assert!(sent.reactions.is_empty());

    // Without text: attachments only.
    let bare = messenger
        .send(alice, SendMessage::to_conversation(conversation, "").attachment(voice()))
        .await
        .expect("an attachment without text")
        .message;
    assert_eq!((bare.body.as_str(), bare.attachments.len()), ("", 1));

    assert_eq!(store.message(sent.id).await.expect("message"), Some(sent.clone()));
    let history = messenger
        .history(alice, conversation, HistoryQuery::default())
        .await
        .expect("history")
        .messages;
    assert_eq!(history, vec![first.clone(), sent.clone(), bare.clone()]);
    let list = messenger.conversations(bob, ConversationsQuery::default()).await.expect("list");
    assert_eq!(list.conversations[0].last_message.as_ref(), Some(&bare), "the last message");
    let found = store
        .search(SearchQuery {
            user: alice,
            terms: vec!["beach".to_owned()],
            conversation_id: None,
            limit: 10,
        })
        .await
        .expect("search");
    assert_eq!(found, vec![sent.clone()], "search");
    let head = store.head().await.expect("head");
    let logged: Vec<Message> = store
        .read_events(alice, 0, head, 100)
        .await
        .expect("events")
        .into_iter()
        .filter_map(|e| match e.event {
            Event::MessageCreated(m) => Some(m),
            _ => None,
        })
        .collect();
    assert_eq!(logged, vec![first, sent, bare], "the log's messages");
}

/// A reply must name a seq of its own conversation: a seq past the last, or one only
/// another conversation has, is `not_found` and stores nothing (0 is `bad_request`); a
/// tombstone may be replied to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_to_a_missing_seq_is_not_found() {
    let Some(Case { store, messenger, alice, bob, conversation, .. }) =
        case(PgOptions::default()).await
    else {
        return;
    };
    let other = messenger.open(alice, UserId::new(), None).await.expect("open").conversation.id;
    for body in ["one", "two", "three"] {
        messenger.send(alice, SendMessage::to_conversation(other, body)).await.expect("send");
    }
    let first = messenger
        .send(alice, SendMessage::to_conversation(conversation, "only one"))
        .await
        .expect("send")
        .message;

    for seq in [2, 3] {
        let refused = messenger
            .send(bob, SendMessage::to_conversation(conversation, "re").reply_to(seq))
            .await;
        assert!(is_not_found(&refused), "reply to seq {seq}: {refused:?}");
    }
    // Seq 0 is no seq: the messenger refuses it before the store sees it.
    let zero = messenger.send(bob, SendMessage::to_conversation(conversation, "re").reply_to(0));
    assert!(matches!(zero.await, Err(Error::Invalid(_))), "reply to seq 0");
    let c = store.conversation(conversation).await.expect("read").expect("exists");
    assert_eq!(c.last_seq, 1, "a refused reply stores nothing");

    messenger.delete(alice, first.id).await.expect("delete");
    let reply = messenger
        .send(bob, SendMessage::to_conversation(conversation, "re: deleted").reply_to(1))
        .await
        .expect("a tombstone may be replied to")
        .message;
    assert_eq!((reply.seq, reply.reply_to_seq), (2, Some(1)));
}

fn new_message(case: &Case, key: Option<&str>, reply_to_seq: Option<u64>) -> NewMessage {
    NewMessage {
        id: MessageId::new(),
        conversation_id: case.conversation,
        sender_id: Some(case.alice),
        body: "hi".to_owned(),
        attachments: Vec::new(),
        reply_to_seq,
        metadata: None,
        client_msg_id: key.map(str::to_owned),
        created_at: Timestamp::now(),
        audience: vec![case.alice, case.bob],
    }
}

/// A retry of a stored key answers the stored message before its reply is checked (as the
/// memory store does), even when the retry's reply names no message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_answers_before_its_reply_is_checked() {
    let Some(case) = case(PgOptions::default()).await else { return };
    let stored = case.store.append(new_message(&case, None, None)).await.expect("append");
    let keyed = case.store.append(new_message(&case, Some("k"), Some(stored.message.seq))).await;
    let keyed = keyed.expect("a keyed reply");
    assert!(keyed.created);
    let retry = case.store.append(new_message(&case, Some("k"), Some(99))).await;
    let retry = retry.expect("the retry answers the stored message");
    assert!(!retry.created);
    assert_eq!(retry.message, keyed.message);
    let fresh = case.store.append(new_message(&case, Some("k2"), Some(99))).await;
    assert!(is_not_found(&fresh), "a new key is checked: {fresh:?}");
}

/// Appends of one batch may reply to the ones stored before them in that batch, and a
/// refused reply moves the later appends' seqs down. One writer, its first batch held, so
/// the next five appends queue up and commit as one batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_within_one_batch() {
    let Some(case) = case(PgOptions::default().writers(1)).await else { return };
    let mut held = case.store.hold_next_write().await.expect("hold");
    let first = tokio::spawn({
        let (store, new) = (case.store.clone(), new_message(&case, None, None));
        async move { store.append(new).await }
    });
    held.positioned().await.expect("the first append takes its position");
    let batch = tokio::spawn({
        let store = case.store.clone();
        let news: Vec<NewMessage> =
            [1, 2, 4, 3, 5].into_iter().map(|r| new_message(&case, None, Some(r))).collect();
        async move {
            let [a, b, c, d, e] = <[NewMessage; 5]>::try_from(news).expect("five");
            // `join!` polls in order: the appends queue in this order.
            let (a, b, c, d, e) = tokio::join!(
                store.append(a),
                store.append(b),
                store.append(c),
                store.append(d),
                store.append(e)
            );
            [a, b, c, d, e]
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    held.release();
    assert_eq!(first.await.expect("join").expect("the first append").message.seq, 1);
    let [a, b, c, d, e] = batch.await.expect("join");
    let seq = |r: &Result<messaging_core::store::Appended, Error>| {
        r.as_ref().map(|a| (a.message.seq, a.message.reply_to_seq)).ok()
    };
    assert_eq!(seq(&a), Some((2, Some(1))));
    assert_eq!(seq(&b), Some((3, Some(2))), "a reply to an append of the same batch");
    assert!(is_not_found(&c), "seq 4 is its own: {c:?}");
    assert_eq!(seq(&d), Some((4, Some(3))), "the refusal moved its seq down");
    assert!(is_not_found(&e), "seq 5 is its own: {e:?}");
    let c = case.store.conversation(case.conversation).await.expect("read").expect("exists");
    assert_eq!(c.last_seq, 4);
}

/// A delete erases the attachments and the reactions with the body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tombstone_has_no_attachments_or_reactions() {
    let Some(Case { store, messenger, alice, bob, conversation, .. }) =
        case(PgOptions::default()).await
    else {
        return;
    };
    let sent = messenger
        .send(
            alice,
            SendMessage::to_conversation(conversation, "look").attachment(support::photo()),
        )
        .await
        .expect("send")
        .message;
    messenger.react(bob, sent.id, "👍", ReactionState::Added).await.expect("bob reacts");
    messenger.react(alice, sent.id, "👍", ReactionState::Added).await.expect("alice reacts");
    let reactions = vec![Reaction { emoji: "👍".to_owned(), user_ids: vec![bob, alice] }];
    let read = store.message(sent.id).await.expect("read").expect("stored");
    assert_eq!(read.reactions, reactions, "reactions are served");

    let tombstone = messenger.delete(alice, sent.id).await.expect("delete");
    assert!(tombstone.deleted);
    assert_eq!(tombstone.body, "");
    assert!(tombstone.attachments.is_empty(), "{:?}", tombstone.attachments);
    assert!(tombstone.reactions.is_empty(), "{:?}", tombstone.reactions);
    assert_eq!(store.message(sent.id).await.expect("read"), Some(tombstone.clone()));
    let history = store.history(conversation, HistoryWindow::Latest, 10).await.expect("history");
    assert_eq!(history, vec![tombstone]);
}

/// A system message (no sender) is stored with the nil UUID and read back as `None`,
/// `kind: System`; it is unread for both members, and its keys are its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_messages_have_no_sender() {
    let Some(case) = case(PgOptions::default()).await else { return };
    let system = |key: &str| NewMessage {
        sender_id: None,
        body: "Match created".to_owned(),
        ..new_message(&case, Some(key), None)
    };
    let posted = case.store.append(system("k")).await.expect("a system message");
    assert!(posted.created);
    assert_eq!((posted.message.sender_id, posted.message.kind), (None, MessageKind::System));
    let read = case.store.message(posted.message.id).await.expect("read").expect("stored");
    assert_eq!(read, posted.message);
    let again = case.store.append(system("k")).await.expect("a retry");
    assert_eq!((again.created, again.message.id), (false, posted.message.id));
    let alices = case.store.append(new_message(&case, Some("k"), Some(1))).await.expect("alice");
    assert!(alices.created, "alice's key k is not the host's");
    assert_eq!(alices.message.reply_to_seq, Some(1), "a reply to a system message");
    for (user, unread) in [(case.alice, 1), (case.bob, 2)] {
        let totals = case.store.unread(user, Timestamp::now()).await.expect("unread");
        assert_eq!(totals.total, unread, "the system message is unread for both");
    }
}
