//! Protocol v1.1 messages in SQLite: attachments, replies, system messages (no sender)
//! and the reactions summary are stored and served by every read path, a reply must name
//! a seq of its conversation, and a tombstone keeps neither attachments nor reactions.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test helpers")]

mod support;

use std::sync::Arc;

use messaging_core::id::UserId;
use messaging_core::model::{
    Attachment, Cursor, Event, Message, MessageKind, Reaction, ReactionState,
};
use messaging_core::store::MessageStore;
use messaging_core::{ConversationsQuery, HistoryQuery, Messenger, SendMessage};
use messaging_store_sqlite::SqliteStore;

fn image(url: &str) -> Attachment {
    Attachment {
        url: url.to_owned(),
        mime: "image/jpeg".to_owned(),
        name: Some("photo.jpg".to_owned()),
        size: Some(123_456),
        width: Some(800),
        height: Some(600),
        duration_ms: None,
    }
}

fn voice() -> Attachment {
    Attachment {
        url: "http://files.example.com/v.ogg".to_owned(),
        mime: "audio/ogg".to_owned(),
        name: None,
        size: None,
        width: None,
        height: None,
        duration_ms: Some(4_200),
    }
}

/// The messages `sync` serves to `user` from the start, in log order.
async fn synced(messenger: &Messenger, user: UserId) -> Vec<Message> {
    let session = messenger.connect(user).await.unwrap();
    let page = session.sync(Some(Cursor::at(0)), None).await.unwrap();
    page.events
        .into_iter()
        .filter_map(|e| match e.event {
            Event::MessageCreated(m) | Event::MessageEdited(m) | Event::MessageDeleted(m) => {
                Some(m)
            }
            _ => None,
        })
        .collect()
}

struct Setup {
    /// Removed when dropped: bind it for the whole test.
    dir: tempfile::TempDir,
    path: std::path::PathBuf,
    store: Arc<SqliteStore>,
    messenger: Messenger,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rich.db");
    let store = Arc::new(SqliteStore::open(&path).await.unwrap());
    let messenger = Messenger::new(store.clone()).await.unwrap();
    Setup { dir, path, store, messenger }
}

/// A message with attachments that replies to an earlier one reads back the same through
/// the store and every read path of the messenger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_and_replies_round_trip() {
    let Setup { dir: _dir, store, messenger, .. } = setup().await;
    let (alice, bob) = (UserId::new(), UserId::new());
    let first =
        messenger.send(alice, SendMessage::to_peer(bob, None, "hello")).await.unwrap().message;
    let c = first.conversation_id;
    let files = vec![image("https://cdn.example.com/a/b.jpg?x=1&y=%20"), voice()];
    let reply = messenger
        .send(
            bob,
            SendMessage::to_conversation(c, "lighthouse pictures")
                .attachment(files[0].clone())
                .attachment(files[1].clone())
                .reply_to(1)
                .client_msg_id("r-1"),
        )
        .await
        .unwrap()
        .message;
    assert_eq!(reply.attachments, files, "in the sender's order");
    assert_eq!(reply.reply_to_seq, Some(1));
    assert_eq!((reply.kind, reply.sender_id), (MessageKind::User, Some(bob)));
    assert!(reply.reactions.is_empty());
    let bare = messenger
        .send(alice, SendMessage::to_conversation(c, "").attachment(voice()))
        .await
        .unwrap()
        .message;
    assert_eq!(bare.body, "", "an attachment may go without text");
    assert_eq!(bare.reply_to_seq, None);

    assert_eq!(store.message(reply.id).await.unwrap().as_ref(), Some(&reply));
    assert_eq!(
        store.find_by_client_msg_id(c, bob, "r-1").await.unwrap().as_ref(),
        Some(&reply),
        "the retry lookup"
    );
    let retried = messenger
        .send(bob, SendMessage::to_conversation(c, "again").reply_to(2).client_msg_id("r-1"))
        .await
        .unwrap()
        .message;
    assert_eq!(retried, reply, "a retry returns the original");
    let page = messenger.history(alice, c, HistoryQuery::default()).await.unwrap();
    assert_eq!(page.messages, [first.clone(), reply.clone(), bare.clone()]);
    assert_eq!(
        messenger.search(alice, "lighthouse", None, None).await.unwrap(),
        std::slice::from_ref(&reply)
    );
    let list = messenger.conversations(bob, ConversationsQuery::default()).await.unwrap();
    assert_eq!(list.conversations[0].last_message.as_ref(), Some(&bare));
    assert_eq!(synced(&messenger, alice).await, [first, reply, bare]);
}

/// A reply must name a seq its conversation has (a tombstone counts): a seq past the last
/// one, or one only another conversation has, are `not_found` and write nothing (seq 0 is
/// `bad_request` in the messenger and `not_found` in the store); a retry of a stored
/// message is recognised before the check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_to_a_missing_seq_is_not_found() {
    let Setup { dir: _dir, store, messenger, .. } = setup().await;
    let (alice, bob, carol) = (UserId::new(), UserId::new(), UserId::new());
    let one = messenger.send(alice, SendMessage::to_peer(bob, None, "one")).await.unwrap().message;
    let c = one.conversation_id;
    let elsewhere =
        messenger.send(alice, SendMessage::to_peer(carol, None, "x")).await.unwrap().message;
    for _ in 0..3 {
        messenger
            .send(alice, SendMessage::to_conversation(elsewhere.conversation_id, "y"))
            .await
            .unwrap();
    }
    let kept = messenger
        .send(alice, SendMessage::to_conversation(c, "two").client_msg_id("k"))
        .await
        .unwrap()
        .message;
    for seq in [3, 4] {
        let err = messenger
            .send(bob, SendMessage::to_conversation(c, "reply").reply_to(seq))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "not_found", "seq {seq}");
    }
    let err = messenger
        .send(bob, SendMessage::to_conversation(c, "reply").reply_to(0))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "bad_request", "the messenger refuses seq 0 first");
    let mut zero = support::new_message(c, bob, "reply");
    zero.reply_to_seq = Some(0);
    assert_eq!(store.append(zero).await.unwrap_err().code(), "not_found", "so does the store");
    let retried = messenger
        .send(alice, SendMessage::to_conversation(c, "two").client_msg_id("k").reply_to(9))
        .await
        .unwrap()
        .message;
    assert_eq!(retried, kept, "the retry is recognised first");
    let err = messenger
        .send(alice, SendMessage::to_conversation(c, "new").client_msg_id("k2").reply_to(9))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "not_found");
    assert_eq!(store.find_by_client_msg_id(c, alice, "k2").await.unwrap(), None);
    let page = messenger.history(bob, c, HistoryQuery::default()).await.unwrap();
    assert_eq!(page.messages, [one.clone(), kept.clone()], "nothing was written");
    messenger.delete(alice, one.id).await.unwrap();
    let reply = messenger
        .send(bob, SendMessage::to_conversation(c, "to a tombstone").reply_to(1))
        .await
        .unwrap()
        .message;
    assert_eq!((reply.seq, reply.reply_to_seq), (3, Some(1)));
}

/// Deleting a message erases its attachments and reactions with its body, in the answer,
/// in history, in `sync` and on disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tombstone_has_no_attachments_or_reactions() {
    let Setup { dir: _dir, path, messenger, .. } = setup().await;
    let (alice, bob) = (UserId::new(), UserId::new());
    let sent = messenger
        .send(
            alice,
            SendMessage::to_peer(bob, None, "see this")
                .attachment(image("https://cdn.example.com/p.jpg")),
        )
        .await
        .unwrap()
        .message;
    let c = sent.conversation_id;
    messenger.react(bob, sent.id, "👍", ReactionState::Added).await.unwrap();
    let page = messenger.history(alice, c, HistoryQuery::default()).await.unwrap();
    assert_eq!(page.messages[0].reactions, [Reaction { emoji: "👍".into(), user_ids: vec![bob] }]);
    assert_eq!(page.messages[0].attachments.len(), 1);

    let tombstone = messenger.delete(alice, sent.id).await.unwrap();
    assert!(tombstone.deleted);
    assert!(tombstone.attachments.is_empty(), "{tombstone:?}");
    assert!(tombstone.reactions.is_empty(), "{tombstone:?}");
    let page = messenger.history(bob, c, HistoryQuery::default()).await.unwrap();
    assert_eq!(page.messages, std::slice::from_ref(&tombstone));
    let served = synced(&messenger, bob).await;
    assert_eq!(served, [tombstone.clone(), tombstone], "events serve the current state");
    let conn = rusqlite::Connection::open(&path).unwrap();
    let (attachments, reactions): (String, String) = conn
        .query_row(
            "SELECT attachments, reactions FROM messages WHERE id = ?1",
            [sent.id.as_bytes()],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!((attachments.as_str(), reactions.as_str()), ("[]", "[]"), "gone from the file");
}

/// A system message (no sender) is stored with the nil id and read back as `None`, kind
/// `system`; it is unread for both members and has its own `client_msg_id` space.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_messages_have_no_sender() {
    let Setup { dir: _dir, path, store, messenger } = setup().await;
    let (alice, bob) = (UserId::new(), UserId::new());
    let first = messenger
        .send(alice, SendMessage::to_peer(bob, None, "hi").client_msg_id("same"))
        .await
        .unwrap()
        .message;
    let c = first.conversation_id;
    let mut new = support::new_message(c, alice, "Order shipped");
    new.sender_id = None;
    new.client_msg_id = Some("same".to_owned());
    new.audience = vec![alice, bob];
    let appended = store.append(new.clone()).await.unwrap();
    assert!(appended.created, "the system key space is its own");
    let system = appended.message;
    assert_eq!((system.seq, system.sender_id, system.kind), (2, None, MessageKind::System));
    let mut again = new.clone();
    again.id = messaging_core::id::MessageId::new();
    let retry = store.append(again).await.unwrap();
    assert!(!retry.created);
    assert_eq!(retry.message, system);
    assert_eq!(store.find_by_client_msg_id(c, alice, "same").await.unwrap(), Some(first));

    assert_eq!(store.message(system.id).await.unwrap().as_ref(), Some(&system));
    let page = messenger.history(bob, c, HistoryQuery::default()).await.unwrap();
    assert_eq!(page.messages[1], system);
    assert_eq!(synced(&messenger, alice).await[1], system);
    assert_eq!(messenger.unread(alice).await.unwrap().total, 1, "unread for the sender too");
    assert_eq!(messenger.unread(bob).await.unwrap().total, 2);
    let list = messenger.conversations(alice, ConversationsQuery::default()).await.unwrap();
    assert_eq!(list.conversations[0].unread_count, 1);
    assert_eq!(list.conversations[0].last_message.as_ref(), Some(&system));
    assert_eq!(
        messenger.delete(alice, system.id).await.unwrap_err().code(),
        "not_found",
        "no user deletes a system message"
    );
    let conn = rusqlite::Connection::open(&path).unwrap();
    let sender: Vec<u8> = conn
        .query_row("SELECT sender_id FROM messages WHERE id = ?1", [system.id.as_bytes()], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(sender, [0; 16], "stored as the nil id");
}
