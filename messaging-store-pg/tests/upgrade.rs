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
use messaging_core::model::{
    ActivityKey, Attachment, ConversationSummary, Event, Message, MessageKind, Receipt, ReceiptKind,
};
use messaging_core::store::{
    ConsumerLog, ContextPage, ConversationPage, ConversationStore, EventLog, HistoryWindow,
    MessageStore, SearchQuery, SocialStore,
};
use messaging_core::time::Timestamp;
use messaging_core::{ConsumerOptions, ConsumerStart, Messenger, SendMessage};
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

/// Version 5 also adds member settings, receipt times, conversation metadata and the
/// listing by context: the conversations of a version 4 database read back not muted, not
/// archived, without metadata; a receipt logged then, and the marker it moved, read back
/// with the send time of the message it marks (versions 5 and 9); conversations with a
/// context are listed by it; and the upgraded rows take the new settings like new ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_4_conversations_read_back_unmuted_unarchived_and_listed_by_context() {
    let Some(url) = support::empty_database().await else { return };
    let mut conn = migrated_to(&url, 4).await;

    // As version 4 wrote them: `x` (alice and bob, no context) with one message of alice's
    // that bob has read (logged: created, message, receipt); `y` (alice and carol) and `z`
    // (dave and carol) on `listing:1`, without messages.
    let (alice, bob, carol, dave) = (UserId::new(), UserId::new(), UserId::new(), UserId::new());
    let (x, y, z) = (ConversationId::new(), ConversationId::new(), ConversationId::new());
    let message = MessageId::new();
    // Every statement gets the same binds: $1-$4 alice, bob, carol, dave; $5-$7 x, y, z;
    // $8 the message.
    let statements = [
        "INSERT INTO conversations (id, user_lo, user_hi, context, created_at, last_seq, \
           last_message_at) VALUES \
         ($5, LEAST($1, $2), GREATEST($1, $2), '', 1000, 1, 2000), \
         ($6, LEAST($1, $3), GREATEST($1, $3), 'listing:1', 5000, 0, NULL), \
         ($7, LEAST($4, $3), GREATEST($4, $3), 'listing:1', 6000, 0, NULL)",
        "INSERT INTO members (user_id, conversation_id, peer_id, read_seq) VALUES \
         ($1, $5, $2, 0), ($2, $5, $1, 1), ($1, $6, $3, 0), ($3, $6, $1, 0), \
         ($4, $7, $3, 0), ($3, $7, $4, 0)",
        "INSERT INTO activity (user_id, conversation_id, at) VALUES \
         ($1, $5, 2000), ($2, $5, 2000), ($1, $6, 5000), ($3, $6, 5000), \
         ($4, $7, 6000), ($3, $7, 6000)",
        "INSERT INTO messages (id, conversation_id, seq, sender_id, body, created_at, words) \
         VALUES ($8, $5, 1, $1, 'hi', 2000, to_tsvector('simple', 'hi'))",
        "INSERT INTO events (position, kind, conversation_id, message_id, user_id, seq, audience) \
         VALUES (1, 1, $5, NULL, NULL, NULL, ARRAY[$1, $2]::uuid[]), \
                (2, 2, $5, $8, NULL, NULL, ARRAY[$1, $2]::uuid[]), \
                (3, 5, $5, NULL, $2, 1, ARRAY[$1, $2]::uuid[])",
        "INSERT INTO event_audience (user_id, position) \
         SELECT u, p FROM UNNEST(ARRAY[$1, $2]::uuid[]) u, generate_series(1, 3) p",
        "UPDATE log_head SET position = 3",
    ];
    seed(
        &mut conn,
        &statements,
        &[
            alice.as_uuid(),
            bob.as_uuid(),
            carol.as_uuid(),
            dave.as_uuid(),
            x.as_uuid(),
            y.as_uuid(),
            z.as_uuid(),
            message.as_uuid(),
        ],
        "version 4 rows",
    )
    .await;
    conn.close().await.expect("close");

    let store = Arc::new(PgStore::connect(&url, PgOptions::default()).await.expect("upgrade"));
    let summary = store.summary(alice, x).await.expect("summary").expect("alice is a member");
    assert_eq!(
        (summary.muted_until, summary.archived, summary.conversation.metadata.as_ref()),
        (None, false, None),
        "not muted, not archived, no metadata"
    );
    assert_eq!(summary.peer_read_seq, 1, "bob's marker is kept");
    assert_eq!(
        (summary.peer_read_at, summary.peer_delivered_at),
        (Some(Timestamp::from_millis(2000)), None),
        "the read marker has the time of the message it marks (version 9), as its receipt \
         event does; the delivered marker never moved"
    );
    let bobs = store.summary(bob, x).await.expect("summary").expect("bob is a member");
    assert_eq!(bobs.peer_read_at, None, "alice's marker never moved");
    let page = |user, archived, context: Option<&str>| ConversationPage {
        user,
        before: None,
        limit: 10,
        archived,
        context: context.map(str::to_owned),
    };
    let ids = |rows: Vec<ConversationSummary>| -> Vec<ConversationId> {
        rows.into_iter().map(|s| s.conversation.id).collect()
    };
    assert_eq!(ids(store.conversations(page(alice, false, None)).await.expect("list")), [y, x]);
    assert!(store.conversations(page(alice, true, None)).await.expect("archived").is_empty());
    let listing = Some("listing:1");
    assert_eq!(ids(store.conversations(page(alice, false, listing)).await.expect("ctx")), [y]);
    let by_context = ContextPage { context: "listing:1".to_owned(), before: None, limit: 10 };
    let listed = store.conversations_by_context(by_context).await.expect("by context");
    assert_eq!(listed.iter().map(|c| c.id).collect::<Vec<_>>(), [z, y], "newest first");
    let receipts: Vec<Event> = store
        .read_events(alice, 0, 3, 10)
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.event)
        .filter(|e| e.name() == "receipt.read")
        .collect();
    assert_eq!(
        receipts,
        [Event::Receipt(Receipt {
            conversation_id: x,
            user_id: bob,
            kind: ReceiptKind::Read,
            seq: 1,
            at: Timestamp::from_millis(2000),
        })],
        "an old receipt reads back at the send time of the message it marks"
    );

    // The upgraded rows take the new settings like new ones.
    let messenger = Messenger::new(store.clone()).await.expect("messenger");
    assert!(messenger.archive(alice, x, true).await.expect("archive").archived);
    assert_eq!(ids(store.conversations(page(alice, true, None)).await.expect("archived")), [x]);
    assert_eq!(ids(store.conversations(page(alice, false, None)).await.expect("list")), [y]);
    let later = Timestamp::from_millis(Timestamp::now().as_millis() + 60_000);
    assert_eq!(messenger.mute(bob, x, Some(later)).await.expect("mute").muted_until, Some(later));
    let read = messenger.mark_read(alice, x, 1).await.expect("read");
    let bobs = store.summary(bob, x).await.expect("summary").expect("bob is a member");
    assert_eq!((bobs.peer_read_seq, bobs.peer_read_at), (1, Some(read.at)));
    let metadata = Some(serde_json::json!({"order": 12}));
    let updated = messenger.service().set_metadata(y, metadata.clone()).await.expect("metadata");
    assert_eq!(updated.metadata, metadata);
}

/// Version 6 adds the revocations table: the data of a version 5 database (a conversation
/// with a reacted reply, a receipt, a member's settings, metadata, a block, a last-seen
/// time), written by that version's migrations and read back after the upgrade, is intact;
/// nobody is revoked; and revocations work on the upgraded database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_5_data_is_intact_and_revocations_start_empty() {
    let Some(url) = support::empty_database().await else { return };
    let mut conn = migrated_to(&url, 5).await;

    // As version 5 wrote them. Every statement gets the same binds: $1 alice, $2 bob,
    // $3 the conversation, $4 and $5 the messages.
    let (alice, bob) = (UserId::new(), UserId::new());
    let conversation = ConversationId::new();
    let (first, second) = (MessageId::new(), MessageId::new());
    let statements = [
        "INSERT INTO conversations (id, user_lo, user_hi, context, created_at, last_seq, \
           last_message_at, metadata) \
         VALUES ($3, LEAST($1, $2), GREATEST($1, $2), 'order:1', 1000, 2, 3000, '{\"n\": 1}')",
        "INSERT INTO members (user_id, conversation_id, peer_id, read_seq, read_at, \
           muted_until) VALUES ($1, $3, $2, 2, 4000, NULL), ($2, $3, $1, 0, NULL, 99000000)",
        "INSERT INTO activity (user_id, conversation_id, at, archived, context) VALUES \
         ($1, $3, 3000, true, CASE WHEN $1 < $2 THEN 'order:1' END), \
         ($2, $3, 3000, false, CASE WHEN $2 < $1 THEN 'order:1' END)",
        "INSERT INTO messages (id, conversation_id, seq, sender_id, body, created_at, words, \
           attachments, reply_to_seq, reactions) VALUES \
         ($4, $3, 1, $1, 'hello', 2000, to_tsvector('simple', 'hello'), '[]', NULL, '[]'), \
         ($5, $3, 2, $2, 'a reply', 3000, to_tsvector('simple', 'a reply'), \
           '[{\"url\": \"https://cdn.example.com/a.png\", \"mime\": \"image/png\"}]', 1, \
           jsonb_build_array(jsonb_build_object('emoji', 'ok', 'user_ids', \
             jsonb_build_array($1::text))))",
        "INSERT INTO events (position, kind, conversation_id, message_id, user_id, seq, at, \
           audience) VALUES \
         (1, 1, $3, NULL, NULL, NULL, NULL, ARRAY[$1, $2]::uuid[]), \
         (2, 2, $3, $4, NULL, NULL, NULL, ARRAY[$1, $2]::uuid[]), \
         (3, 2, $3, $5, NULL, NULL, NULL, ARRAY[$1, $2]::uuid[]), \
         (4, 5, $3, NULL, $1, 2, 4000, ARRAY[$1, $2]::uuid[])",
        "INSERT INTO event_audience (user_id, position) \
         SELECT u, p FROM UNNEST(ARRAY[$1, $2]::uuid[]) u, generate_series(1, 4) p",
        "UPDATE log_head SET position = 4",
        "INSERT INTO blocks (blocker, blocked) VALUES ($2, $1)",
        "INSERT INTO last_seen (user_id, at) VALUES ($1, 5000)",
    ];
    seed(
        &mut conn,
        &statements,
        &[
            alice.as_uuid(),
            bob.as_uuid(),
            conversation.as_uuid(),
            first.as_uuid(),
            second.as_uuid(),
        ],
        "version 5 rows",
    )
    .await;
    conn.close().await.expect("close");

    let store = Arc::new(PgStore::connect(&url, PgOptions::default()).await.expect("upgrade"));
    let history = store.history(conversation, HistoryWindow::Latest, 10).await.expect("history");
    assert_eq!(history.len(), 2);
    assert_eq!((history[0].id, history[0].body.as_str()), (first, "hello"));
    let reply = &history[1];
    assert_eq!((reply.id, reply.reply_to_seq, reply.sender_id), (second, Some(1), Some(bob)));
    assert_eq!(reply.attachments.len(), 1, "{reply:?}");
    assert_eq!(reply.attachments[0].url, "https://cdn.example.com/a.png");
    assert_eq!(reply.reactions.len(), 1, "{reply:?}");
    assert_eq!(
        (reply.reactions[0].emoji.as_str(), &reply.reactions[0].user_ids[..]),
        ("ok", &[alice][..])
    );
    let mine = store.summary(alice, conversation).await.expect("summary").expect("a member");
    assert_eq!((mine.read_seq, mine.archived), (2, true));
    assert_eq!(mine.conversation.metadata, Some(serde_json::json!({"n": 1})));
    assert_eq!(mine.conversation.context.as_deref(), Some("order:1"));
    let bobs = store.summary(bob, conversation).await.expect("summary").expect("a member");
    assert_eq!(bobs.muted_until, Some(Timestamp::from_millis(99_000_000)));
    assert_eq!((bobs.peer_read_seq, bobs.peer_read_at), (2, Some(Timestamp::from_millis(4000))));
    assert!(store.is_blocked_between(alice, bob).await.expect("blocked"));
    assert_eq!(store.blocks(bob, None, 10).await.expect("blocks"), [alice]);
    assert_eq!(
        store.last_seen(&[alice, bob]).await.expect("last seen"),
        [(alice, Timestamp::from_millis(5000))]
    );
    let names: Vec<&str> = store
        .read_events(bob, 0, 4, 10)
        .await
        .expect("events")
        .iter()
        .map(|e| e.event.name())
        .collect();
    assert_eq!(
        names,
        ["conversation.created", "message.created", "message.created", "receipt.read"]
    );
    for user in [alice, bob] {
        assert_eq!(store.revoked_at(user).await.expect("revoked_at"), None, "nobody revoked");
    }

    // Revocations work on the upgraded database, and outlive the store object.
    let messenger = Messenger::new(store.clone()).await.expect("messenger");
    let at = messenger.service().revoke(bob).await.expect("revoke");
    assert_eq!(store.revoked_at(bob).await.expect("revoked_at"), Some(at));
    assert!(!messenger.token_accepted(bob, None).await.expect("token_accepted"));
    store.close().await.expect("close");
    let again = PgStore::connect(&url, PgOptions::default()).await.expect("reconnect");
    assert_eq!(again.revoked_at(bob).await.expect("revoked_at"), Some(at));
    assert_eq!(again.revoked_at(alice).await.expect("revoked_at"), None);
    again.close().await.expect("close");
}

/// Version 7 adds each event's actor and removed attachments, and the consumers table: the
/// log of a version 6 database (written by that version's migrations: a conversation, a
/// message, a delete, a member's mute) reads in `read_log` with no actor and no removed
/// attachments (version 6 never kept them), each event with its recipients and their
/// mutes; events logged after the upgrade carry both; a consumer reads the upgraded log
/// and its position outlives the store object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_6_events_read_without_actors_and_consumers_start_empty() {
    let Some(url) = support::empty_database().await else { return };
    let mut conn = migrated_to(&url, 6).await;

    // As version 6 wrote them. Every statement gets the same binds: $1 alice, $2 bob,
    // $3 the conversation, $4 and $5 the messages (the second deleted by alice).
    let (alice, bob) = (UserId::new(), UserId::new());
    let conversation = ConversationId::new();
    let (first, second) = (MessageId::new(), MessageId::new());
    let statements = [
        "INSERT INTO conversations (id, user_lo, user_hi, context, created_at, last_seq, \
           last_message_at) VALUES ($3, LEAST($1, $2), GREATEST($1, $2), '', 1000, 2, 3000)",
        "INSERT INTO members (user_id, conversation_id, peer_id, muted_until) \
         VALUES ($1, $3, $2, NULL), ($2, $3, $1, 99000000000000)",
        "INSERT INTO activity (user_id, conversation_id, at) VALUES ($1, $3, 3000), ($2, $3, 3000)",
        "INSERT INTO messages (id, conversation_id, seq, sender_id, body, created_at, words, \
           deleted) VALUES \
         ($4, $3, 1, $1, 'hello', 2000, to_tsvector('simple', 'hello'), false), \
         ($5, $3, 2, $1, '', 3000, ''::tsvector, true)",
        "INSERT INTO events (position, kind, conversation_id, message_id, user_id, audience) \
         VALUES (1, 1, $3, NULL, NULL, ARRAY[LEAST($1, $2), GREATEST($1, $2)]), \
         (2, 2, $3, $4, NULL, ARRAY[LEAST($1, $2), GREATEST($1, $2)]), \
         (3, 4, $3, $5, NULL, ARRAY[LEAST($1, $2), GREATEST($1, $2)]), \
         (4, 9, $3, NULL, $2, ARRAY[$2]::uuid[])",
        "INSERT INTO event_audience (user_id, position) \
         SELECT u, p FROM UNNEST(ARRAY[$1, $2]::uuid[]) u, generate_series(1, 3) p \
         UNION ALL SELECT $2, 4",
        "UPDATE log_head SET position = 4",
    ];
    seed(
        &mut conn,
        &statements,
        &[
            alice.as_uuid(),
            bob.as_uuid(),
            conversation.as_uuid(),
            first.as_uuid(),
            second.as_uuid(),
        ],
        "version 6 rows",
    )
    .await;
    conn.close().await.expect("close");

    let store = Arc::new(PgStore::connect(&url, PgOptions::default()).await.expect("upgrade"));
    let log = store.read_log(0, 4, 10).await.expect("read_log");
    let names: Vec<&str> = log.iter().map(|e| e.logged.event.name()).collect();
    assert_eq!(
        names,
        ["conversation.created", "message.created", "message.deleted", "member.updated"]
    );
    let until = Some(Timestamp::from_millis(99_000_000_000_000));
    let mut members = [(alice, None), (bob, until)];
    members.sort_by_key(|(user, _)| *user);
    for entry in &log {
        assert_eq!(entry.actor, None, "version 6 kept no actor");
        assert!(entry.removed_attachments.is_empty(), "nor removed attachments");
        let muted: Vec<_> = entry.recipients.iter().map(|r| (r.user_id, r.muted_until)).collect();
        if entry.logged.event.name() == "member.updated" {
            assert_eq!(muted, [(bob, until)], "bob's own event");
        } else {
            assert_eq!(muted, members, "both members, with the mutes stored");
        }
        let events = store.read_events(bob, entry.logged.position - 1, 4, 1).await;
        let logged = std::slice::from_ref(&entry.logged);
        assert_eq!(events.expect("read_events"), logged, "as sync serves it");
    }

    // Events logged after the upgrade carry their actor and removed attachments.
    let messenger = Messenger::new(store.clone()).await.expect("messenger");
    let file = Attachment::new("https://cdn.example.com/a.png", "image/png");
    let sent = messenger
        .send(bob, SendMessage::to_conversation(conversation, "").attachment(file.clone()))
        .await
        .expect("send")
        .message;
    messenger.service().delete_message(sent.id).await.expect("moderation");
    let after = store.read_log(4, 6, 10).await.expect("read_log");
    assert_eq!(after.iter().map(|e| e.actor).collect::<Vec<_>>(), [Some(bob), None]);
    assert_eq!(after[1].removed_attachments, [file]);

    // Consumers start empty and work on the upgraded database, across store objects.
    let options = ConsumerOptions::default().start(ConsumerStart::Beginning).batch(4);
    let mut consumer = messenger.consumer("upgraded", options.clone()).expect("consumer");
    let batch = consumer.next_batch().await.expect("a batch");
    assert_eq!(batch.iter().map(|e| e.logged.position).collect::<Vec<_>>(), [1, 2, 3, 4]);
    consumer.commit(4).await.expect("commit");
    consumer.release().await.expect("release");
    drop(messenger);
    store.close().await.expect("close");
    let again = Arc::new(PgStore::connect(&url, PgOptions::default()).await.expect("reconnect"));
    let messenger = Messenger::new(again.clone()).await.expect("messenger");
    let mut consumer = messenger.consumer("upgraded", options).expect("consumer");
    let batch = consumer.next_batch().await.expect("a batch");
    assert_eq!(batch.iter().map(|e| e.logged.position).collect::<Vec<_>>(), [5, 6]);
    drop((consumer, messenger));
    again.close().await.expect("close");
}

/// Version 8 adds the import checkpoint (moves from another store): an upgraded version 7
/// database without data may take a move; one holding data (here only a consumer's
/// position, the newest table's) may not, and a move into it is refused before writing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_7_databases_take_a_move_only_when_empty() {
    use messaging_core::transfer::{ImportState, MoveOptions, StoreImport, move_store};

    let Some(empty) = support::empty_database().await else { return };
    migrated_to(&empty, 7).await.close().await.expect("close");
    let Some(holding) = support::empty_database().await else { return };
    let mut conn = migrated_to(&holding, 7).await;
    conn.execute("INSERT INTO consumers (name, position) VALUES ('webhooks', 0)")
        .await
        .expect("a version 7 consumer");
    conn.close().await.expect("close");

    let empty = PgStore::connect(&empty, PgOptions::default()).await.expect("upgrade");
    let holding = PgStore::connect(&holding, PgOptions::default()).await.expect("upgrade");
    assert_eq!(empty.import_state().await.expect("state"), ImportState::Empty);
    assert_eq!(holding.import_state().await.expect("state"), ImportState::Holds);
    let moved = move_store(&empty, &holding, MoveOptions::default(), &mut |_| {}).await;
    assert!(matches!(moved, Err(messaging_core::Error::Conflict(_))), "{moved:?}");
    let moved = move_store(&holding, &empty, MoveOptions::default(), &mut |_| {}).await;
    assert_eq!(moved.expect("a move into the upgraded empty database").sections.len(), 8);
    assert_eq!(empty.import_state().await.expect("state"), ImportState::Holds);
    empty.close().await.expect("close");
    holding.close().await.expect("close");
}

/// Runs `statements` of an older schema's rows, each bound to `ids` in order ($1, $2, …).
async fn seed(
    conn: &mut sqlx::PgConnection,
    statements: &[&'static str],
    ids: &[&uuid::Uuid],
    what: &str,
) {
    for statement in statements {
        let mut query = sqlx::query(*statement);
        for id in ids {
            query = query.bind(**id);
        }
        query.execute(&mut *conn).await.expect(what);
    }
}
