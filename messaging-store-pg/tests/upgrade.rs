//! Upgrading a database that holds data: the migrations that move data keep it.
//!
//! Each case migrates an empty database to an older version with the library's own
//! migration files, writes rows as that version's store did, then connects `PgStore`
//! (which applies the rest) and reads them back through the store.
//!
//! Needs `MESSAGING_PG_URL`; skipped with one line without it, unless
//! `MESSAGING_PG_REQUIRED=1` (set by `scripts/test.sh` and CI), which makes it fail.

#![allow(clippy::expect_used, clippy::panic, reason = "tests: failing loudly is the point")]

use std::sync::Arc;

use messaging_core::id::{ConversationId, MessageId, UserId};
use messaging_core::model::{ActivityKey, Event, Message, MessageKind};
use messaging_core::store::{
    ConversationPage, ConversationStore, EventLog, HistoryWindow, MessageStore, SearchQuery,
};
use messaging_core::time::Timestamp;
use messaging_core::{Messenger, SendMessage};
use messaging_store_pg::{PgOptions, PgStore};
use sqlx::migrate::Migrator;
use sqlx::{Connection, Executor};

mod support;

/// The library's migrations, as `PgStore` applies them.
static LIBRARY: Migrator = sqlx::migrate!("./migrations");

/// `user`'s conversation list, one row per page, following each page's key.
async fn list_page_by_page(store: &PgStore, user: UserId) -> Vec<ConversationId> {
    let mut ids = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .conversations(ConversationPage {
                user,
                before,
                limit: 1,
                archived: false,
                context: None,
            })
            .await
            .expect("a page of the list");
        let Some(row) = page.first() else { return ids };
        ids.push(row.conversation.id);
        before = Some(ActivityKey::of(&row.conversation));
    }
}

/// A connection to `url` with the library's schema migrated to `version` by its own files.
async fn migrated_to(url: &str, version: i64) -> sqlx::PgConnection {
    let mut migrator = Migrator { migrations: LIBRARY.migrations.clone(), ..Migrator::DEFAULT };
    migrator.dangerous_set_table_name("\"messaging\"._messaging_migrations");
    migrator.create_schema("\"messaging\"");
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    conn.execute("CREATE SCHEMA messaging; SET search_path TO messaging").await.expect("schema");
    migrator.run_to(version, &mut conn).await.expect("migrate to the old version");
    conn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_3_keeps_each_members_activity() {
    let Some(url) = support::empty_database().await else { return };
    let mut conn = migrated_to(&url, 2).await;

    // Version 2 kept each member's activity in `members.activity_at`: the last message,
    // else the creation. Three conversations of `me`, one with a message.
    let me = UserId::new();
    let peers = [UserId::new(), UserId::new(), UserId::new()];
    let ids = [ConversationId::new(), ConversationId::new(), ConversationId::new()];
    let created = [1_000_i64, 2_000, 3_000];
    let last_message = [None, Some(90_000_000_i64), None];
    for i in 0..3 {
        let mut pair = [*me.as_uuid(), *peers[i].as_uuid()];
        pair.sort();
        sqlx::query(
            "INSERT INTO conversations (id, user_lo, user_hi, context, created_at, last_seq, \
               last_message_at) VALUES ($1, $2, $3, '', $4, $5, $6)",
        )
        .bind(ids[i].as_uuid())
        .bind(pair[0])
        .bind(pair[1])
        .bind(created[i])
        .bind(i64::from(last_message[i].is_some()))
        .bind(last_message[i])
        .execute(&mut conn)
        .await
        .expect("a version 2 conversation");
        sqlx::query(
            "INSERT INTO members (user_id, conversation_id, peer_id, activity_at) \
             VALUES ($1, $3, $2, $4), ($2, $3, $1, $4)",
        )
        .bind(me.as_uuid())
        .bind(peers[i].as_uuid())
        .bind(ids[i].as_uuid())
        .bind(last_message[i].unwrap_or(created[i]))
        .execute(&mut conn)
        .await
        .expect("version 2 members");
    }
    conn.close().await.expect("close");

    let store = Arc::new(PgStore::connect(&url, PgOptions::default()).await.expect("upgrade"));
    assert_eq!(
        list_page_by_page(&store, me).await,
        vec![ids[1], ids[2], ids[0]],
        "the list keeps the order of the activity recorded before the upgrade"
    );
    assert_eq!(list_page_by_page(&store, peers[0]).await, vec![ids[0]], "and the peers' lists");

    // The upgraded rows move with new messages like new ones.
    let messenger = Messenger::new(store.clone()).await.expect("messenger");
    messenger
        .send(peers[0], SendMessage::to_conversation(ids[0], "after the upgrade"))
        .await
        .expect("send");
    assert_eq!(list_page_by_page(&store, me).await, vec![ids[0], ids[1], ids[2]]);
}

/// Version 5 adds attachments, replies and reactions to messages: the messages of a version
/// 4 database read back, through every read, as plain user messages (`attachments: []`,
/// `reply_to_seq: None`, `reactions: []`, `kind: User`), and new messages may reply to them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_4_messages_read_back_without_attachments_replies_or_reactions() {
    let Some(url) = support::empty_database().await else { return };
    let mut conn = migrated_to(&url, 4).await;

    // One conversation as version 4 wrote it: two messages (the second with an idempotency
    // key and metadata), both logged as `message.created`.
    let (alice, bob) = (UserId::new(), UserId::new());
    let mut pair = [alice, bob];
    pair.sort();
    let conversation = ConversationId::new();
    let (first, second) = (MessageId::new(), MessageId::new());
    let (created, at) = (1_000_i64, [2_000_i64, 3_000]);
    sqlx::query(
        "INSERT INTO conversations (id, user_lo, user_hi, context, created_at, last_seq, \
           last_message_at) VALUES ($1, $2, $3, '', $4, 2, $5)",
    )
    .bind(conversation.as_uuid())
    .bind(pair[0].as_uuid())
    .bind(pair[1].as_uuid())
    .bind(created)
    .bind(at[1])
    .execute(&mut conn)
    .await
    .expect("a version 4 conversation");
    // Every statement gets the same binds: $1 alice, $2 bob, $3 the conversation, $4 and $5
    // the messages, $6 and $7 their times.
    let statements = [
        "INSERT INTO members (user_id, conversation_id, peer_id) VALUES ($1, $3, $2), ($2, $3, $1)",
        "INSERT INTO activity (user_id, conversation_id, at) VALUES ($1, $3, $7), ($2, $3, $7)",
        "INSERT INTO messages (id, conversation_id, seq, sender_id, body, metadata, \
           client_msg_id, created_at, words) VALUES \
         ($4, $3, 1, $1, 'hello from before', NULL, NULL, $6, \
           to_tsvector('simple', 'hello from before')), \
         ($5, $3, 2, $2, 'an old answer', '{\"n\": 1}', 'old-key', $7, \
           to_tsvector('simple', 'an old answer'))",
        "INSERT INTO events (position, kind, conversation_id, message_id, audience) VALUES \
         (1, 2, $3, $4, ARRAY[$1, $2]::uuid[]), (2, 2, $3, $5, ARRAY[$1, $2]::uuid[])",
        "INSERT INTO event_audience (user_id, position) VALUES ($1, 1), ($2, 1), ($1, 2), ($2, 2)",
        "UPDATE log_head SET position = 2",
    ];
    for statement in statements {
        sqlx::query(statement)
            .bind(alice.as_uuid())
            .bind(bob.as_uuid())
            .bind(conversation.as_uuid())
            .bind(first.as_uuid())
            .bind(second.as_uuid())
            .bind(at[0])
            .bind(at[1])
            .execute(&mut conn)
            .await
            .expect("version 4 rows");
    }
    conn.close().await.expect("close");

    let store = Arc::new(PgStore::connect(&url, PgOptions::default()).await.expect("upgrade"));
    let plain = |id, seq, sender, body: &str, metadata, key: Option<&str>, at| Message {
        id,
        conversation_id: conversation,
        seq,
        sender_id: Some(sender),
        kind: MessageKind::User,
        body: body.to_owned(),
        attachments: Vec::new(),
        reply_to_seq: None,
        reactions: Vec::new(),
        metadata,
        client_msg_id: key.map(str::to_owned),
        created_at: Timestamp::from_millis(at),
        edited_at: None,
        deleted: false,
    };
    let expected = vec![
        plain(first, 1, alice, "hello from before", None, None, at[0]),
        plain(
            second,
            2,
            bob,
            "an old answer",
            Some(serde_json::json!({"n": 1})),
            Some("old-key"),
            at[1],
        ),
    ];

    let history = store.history(conversation, HistoryWindow::Latest, 10).await.expect("history");
    assert_eq!(history, expected, "history");
    assert_eq!(store.message(first).await.expect("message"), Some(expected[0].clone()));
    assert_eq!(
        store.find_by_client_msg_id(conversation, bob, "old-key").await.expect("by key"),
        Some(expected[1].clone())
    );
    let list = store
        .conversations(ConversationPage {
            user: alice,
            before: None,
            limit: 10,
            archived: false,
            context: None,
        })
        .await
        .expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].last_message.as_ref(), Some(&expected[1]), "the summary's last message");
    assert_eq!(list[0].unread_count, 1, "bob's old message is unread for alice");
    let found = store
        .search(SearchQuery {
            user: alice,
            terms: vec!["hello".to_owned()],
            conversation_id: None,
            limit: 10,
        })
        .await
        .expect("search");
    assert_eq!(found, vec![expected[0].clone()], "search");
    let events = store.read_events(alice, 0, 2, 10).await.expect("events");
    let logged: Vec<Message> = events
        .into_iter()
        .map(|e| match e.event {
            Event::MessageCreated(m) => m,
            other => panic!("a message.created event, not {other:?}"),
        })
        .collect();
    assert_eq!(logged, expected, "the log's messages");

    // New messages reply to the old ones, and the old ones are deleted like new ones.
    let messenger = Messenger::new(store.clone()).await.expect("messenger");
    let reply = messenger
        .send(alice, SendMessage::to_conversation(conversation, "a new reply").reply_to(2))
        .await
        .expect("a reply to an old message")
        .message;
    assert_eq!((reply.seq, reply.reply_to_seq), (3, Some(2)));
    let tombstone = messenger.delete(bob, second).await.expect("delete an old message");
    assert!(
        tombstone.deleted && tombstone.attachments.is_empty() && tombstone.reactions.is_empty()
    );
    assert_eq!(store.message(second).await.expect("read the tombstone"), Some(tombstone));
}
