//! What only a file on disk can show: data survives reopening, a schema newer than the
//! build refuses to open, and the search file beside the database is rebuilt from it.

use std::sync::Arc;

use messaging_core::id::{MessageId, UserId};
use messaging_core::model::{
    Attachment, Cursor, Event, Message, MessageKind, ReactionState, Receipt,
};
use messaging_core::store::{ConsumerLog, SocialStore};
use messaging_core::{
    ConsumerOptions, ConsumerStart, ConversationsQuery, HistoryQuery, Messenger, SendMessage,
    Timestamp,
};
use messaging_store_sqlite::{SCHEMA_VERSION, SqliteOptions, SqliteStore, Synchronous};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_written_before_closing_is_read_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("persist.db");
    let (alice, bob) = (UserId::new(), UserId::new());

    let (conversation_id, sent) = {
        let store = SqliteStore::open(&path).await.unwrap();
        let messenger = Messenger::new(Arc::new(store)).await.unwrap();
        let first =
            messenger.send(alice, SendMessage::to_peer(bob, None, "one")).await.unwrap().message;
        let second = messenger
            .send(alice, SendMessage::to_conversation(first.conversation_id, "two"))
            .await
            .unwrap()
            .message;
        messenger.mark_read(bob, first.conversation_id, 1).await.unwrap();
        (first.conversation_id, vec![first, second])
    };
    // Dropping the store closed every connection, the last a read-write one: the WAL was
    // folded back into the file and removed.
    let mut wal = path.clone().into_os_string();
    wal.push("-wal");
    assert!(!std::path::Path::new(&wal).exists(), "the WAL outlived the store");

    let store =
        SqliteStore::open_with(&path, SqliteOptions::default().synchronous(Synchronous::Normal))
            .await
            .unwrap();
    let messenger = Messenger::new(Arc::new(store)).await.unwrap();
    let page = messenger.history(bob, conversation_id, HistoryQuery::default()).await.unwrap();
    assert_eq!(page.messages, sent);
    assert_eq!(messenger.unread(bob).await.unwrap().total, 1);
    let third = messenger
        .send(bob, SendMessage::to_conversation(conversation_id, "three"))
        .await
        .unwrap()
        .message;
    assert_eq!(third.seq, 3, "seq continues after reopening");
    let session = messenger.connect(alice).await.unwrap();
    assert_eq!(session.cursor().position(), 5, "log positions continue after reopening");
    // The per-user index `sync` reads trails the log and was not brought up to date before
    // closing: it is rebuilt from the log, so every event is still served.
    let page = session.sync(Some(Cursor::at(0)), None).await.unwrap();
    let names: Vec<&str> = page.events.iter().map(|e| e.event.name()).collect();
    assert_eq!(
        names,
        [
            "conversation.created",
            "message.created",
            "message.created",
            "receipt.read",
            "message.created"
        ]
    );
}

#[tokio::test]
async fn a_newer_schema_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.db");
    drop(SqliteStore::open(&path).await.unwrap());
    {
        let conn = rusqlite_conn(&path);
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();
    }
    let err = SqliteStore::open(&path).await.unwrap_err();
    assert_eq!(err.code(), "unavailable");
    assert!(err.to_string().contains("newer"), "{err}");
}

/// The ids `user` finds for `query`.
#[allow(clippy::unwrap_used, reason = "test helper")]
async fn found(messenger: &Messenger, user: UserId, query: &str) -> Vec<MessageId> {
    messenger.search(user, query, None, None).await.unwrap().iter().map(|m| m.id).collect()
}

fn search_file(db: &std::path::Path) -> std::path::PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-search");
    name.into()
}

/// The search index is derived from the database: a missing search file is rebuilt, and
/// one that belongs to another database is emptied and rebuilt, never served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_search_file_is_rebuilt_from_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let (one, other) = (dir.path().join("one.db"), dir.path().join("other.db"));
    let (alice, bob) = (UserId::new(), UserId::new());
    let (kept, edited) = {
        let messenger =
            Messenger::new(Arc::new(SqliteStore::open(&one).await.unwrap())).await.unwrap();
        let kept = messenger
            .send(alice, SendMessage::to_peer(bob, None, "harbour lights"))
            .await
            .unwrap()
            .message;
        let c = kept.conversation_id;
        let edited = messenger
            .send(alice, SendMessage::to_conversation(c, "first draft"))
            .await
            .unwrap()
            .message;
        let gone = messenger
            .send(alice, SendMessage::to_conversation(c, "harbour secret"))
            .await
            .unwrap()
            .message;
        // Indexed, then changed: the index follows the edit and the delete.
        assert_eq!(found(&messenger, bob, "harbour").await, [gone.id, kept.id]);
        messenger.edit(alice, edited.id, "final harbour text").await.unwrap();
        messenger.delete(alice, gone.id).await.unwrap();
        (kept.id, edited.id)
    };
    let expected = [edited, kept];

    // Deleted while closed (with its WAL): rebuilt from the log at the next open.
    for suffix in ["", "-wal", "-shm"] {
        let mut name = search_file(&one).into_os_string();
        name.push(suffix);
        let _ = std::fs::remove_file(name);
    }
    {
        let messenger =
            Messenger::new(Arc::new(SqliteStore::open(&one).await.unwrap())).await.unwrap();
        assert_eq!(found(&messenger, bob, "harbour").await, expected);
        assert!(found(&messenger, bob, "draft").await.is_empty(), "not by the old body");
        assert!(found(&messenger, bob, "secret").await.is_empty(), "never a deleted message");
    }

    // Another database's search file put beside this one: not served, rebuilt.
    {
        let messenger =
            Messenger::new(Arc::new(SqliteStore::open(&other).await.unwrap())).await.unwrap();
        let (carol, dave) = (UserId::new(), UserId::new());
        messenger.send(carol, SendMessage::to_peer(dave, None, "harbour elsewhere")).await.unwrap();
        assert_eq!(found(&messenger, dave, "harbour").await.len(), 1);
    }
    std::fs::copy(search_file(&other), search_file(&one)).unwrap();
    let messenger = Messenger::new(Arc::new(SqliteStore::open(&one).await.unwrap())).await.unwrap();
    assert_eq!(found(&messenger, bob, "harbour").await, expected);
    assert!(found(&messenger, bob, "elsewhere").await.is_empty());
}

/// A database written by schema version 2 (the exact activity in `members`) opens under
/// the current one with its conversation list in the same order, paged across seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_2_conversation_list_keeps_its_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v2.db");
    let (alice, bob) = (UserId::from_bytes([1; 16]), UserId::from_bytes([2; 16]));
    // Created at (ms): c1 in second 1,000; c2 and c3 both in second 2,000, c2 later.
    let conversations =
        [([11_u8; 16], 1_000_250_i64), ([12; 16], 2_000_500), ([13; 16], 2_000_100)];
    {
        let conn = rusqlite_conn(&path);
        conn.execute_batch(include_str!("../migrations/0001_init.sql")).unwrap();
        conn.execute_batch(include_str!("../migrations/0002_search_apart.sql")).unwrap();
        conn.pragma_update(None, "user_version", 2).unwrap();
        for (id, at) in conversations {
            conn.execute(
                "INSERT INTO conversations (id, user_lo, user_hi, context, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                // One direct conversation per pair and context.
                rusqlite::params![id, alice.as_bytes(), bob.as_bytes(), format!("c{}", id[0]), at],
            )
            .unwrap();
            for (user, peer) in [(alice, bob), (bob, alice)] {
                conn.execute(
                    "INSERT INTO members (user_id, conversation_id, peer_id, activity_at) \
                     VALUES (?1, ?2, ?3, ?4)",
                    rusqlite::params![user.as_bytes(), id, peer.as_bytes(), at],
                )
                .unwrap();
            }
        }
    }
    let messenger =
        Messenger::new(Arc::new(SqliteStore::open(&path).await.unwrap())).await.unwrap();
    let mut order = Vec::new();
    let mut before = None;
    loop {
        let page = messenger.conversations(alice, page_of(Some(1), before.clone())).await.unwrap();
        order.extend(page.conversations.iter().map(|s| *s.conversation.id.as_bytes()));
        match page.next {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    assert_eq!(order, [[12; 16], [13; 16], [11; 16]], "newest activity first, one per page");
    let whole = messenger.conversations(bob, ConversationsQuery::default()).await.unwrap();
    let ids: Vec<_> = whole.conversations.iter().map(|s| *s.conversation.id.as_bytes()).collect();
    assert_eq!(ids, [[12; 16], [13; 16], [11; 16]]);
    // Each member's bucket is the second of its activity, as the store computes it for the
    // messages to come (a wrong one would misplace a conversation once it is written to).
    let conn = rusqlite_conn(&path);
    for (id, at) in conversations {
        let buckets: Vec<i64> = conn
            .prepare("SELECT activity_bucket FROM members WHERE conversation_id = ?1")
            .unwrap()
            .query_map([id], |row| row.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(buckets, [at / 1000, at / 1000]);
    }
}

/// A database of schema version 3 (conversations without numbers) written through the
/// store, then set back to version 3 as an older build leaves it: it opens under the
/// current schema with every conversation numbered once, the search index rebuilt in its
/// new layout finds each conversation's messages and only them, and new conversations get
/// the next numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_3_database_gets_conversation_numbers_and_searches() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v3.db");
    let (alice, bob, carol) = (UserId::new(), UserId::new(), UserId::new());
    {
        let messenger =
            Messenger::new(Arc::new(SqliteStore::open(&path).await.unwrap())).await.unwrap();
        for (peer, body) in [(bob, "harbour for bob"), (carol, "harbour for carol")] {
            messenger.send(alice, SendMessage::to_peer(peer, None, body)).await.unwrap();
        }
    }
    {
        // What version 3 had: no `num` column, no search file of the new layout.
        let conn = rusqlite_conn(&path);
        back_to_version_4(&conn);
        conn.execute_batch(
            "DROP INDEX conversations_num; ALTER TABLE conversations DROP COLUMN num; \
             PRAGMA user_version = 3;",
        )
        .unwrap();
        drop(conn);
        std::fs::remove_file(search_file(&path)).unwrap();
    }
    let messenger =
        Messenger::new(Arc::new(SqliteStore::open(&path).await.unwrap())).await.unwrap();
    let conn = rusqlite_conn(&path);
    let nums: Vec<i64> = conn
        .prepare("SELECT num FROM conversations ORDER BY num")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(nums, [1, 2], "every conversation numbered once");
    let bodies = |hits: Vec<Message>| hits.into_iter().map(|m| m.body).collect::<Vec<_>>();
    assert_eq!(
        bodies(messenger.search(bob, "harbour", None, None).await.unwrap()),
        ["harbour for bob"]
    );
    assert_eq!(
        bodies(messenger.search(carol, "harbour", None, None).await.unwrap()),
        ["harbour for carol"]
    );
    let dave = UserId::new();
    messenger.send(dave, SendMessage::to_peer(bob, None, "harbour for dave")).await.unwrap();
    let next: i64 =
        conn.query_row("SELECT max(num) FROM conversations", [], |row| row.get(0)).unwrap();
    assert_eq!(next, 3, "new conversations take the next number");
    assert_eq!(messenger.search(bob, "harbour", None, None).await.unwrap().len(), 2);
}

/// Undoes version 5 on a database the current build wrote, as a version 4 build leaves
/// it: the columns it added to messages, members and events are dropped (SQLite rewrites
/// the rows without them), the metadata table goes, and the members' list index is the
/// one of version 3 again. The data must be what a version 4 build could write (messages,
/// edits, deletes, receipts; no reactions, settings or metadata).
#[allow(clippy::unwrap_used, reason = "test helper")]
fn back_to_version_4(conn: &rusqlite::Connection) {
    back_to_version_5(conn);
    conn.execute_batch(
        "ALTER TABLE messages DROP COLUMN attachments; \
         ALTER TABLE messages DROP COLUMN reply_to_seq; \
         ALTER TABLE messages DROP COLUMN reactions; \
         DROP TABLE conversation_metadata; \
         DROP INDEX members_context; \
         DROP INDEX members_activity; \
         CREATE INDEX members_activity \
             ON members (user_id, activity_bucket DESC, conversation_id DESC); \
         ALTER TABLE members DROP COLUMN read_at; \
         ALTER TABLE members DROP COLUMN delivered_at; \
         ALTER TABLE members DROP COLUMN muted_until; \
         ALTER TABLE members DROP COLUMN archived; \
         ALTER TABLE members DROP COLUMN context; \
         ALTER TABLE events DROP COLUMN at; \
         ALTER TABLE events DROP COLUMN emoji; \
         PRAGMA user_version = 4;",
    )
    .unwrap();
}

/// Undoes version 6 on a database the current build wrote, as a version 5 build leaves
/// it: no revocations table. The data must be what a version 5 build could write (no
/// revocations).
#[allow(clippy::unwrap_used, reason = "test helper")]
fn back_to_version_5(conn: &rusqlite::Connection) {
    back_to_version_6(conn);
    conn.execute_batch("DROP TABLE revocations; PRAGMA user_version = 5;").unwrap();
}

/// Undoes version 8 on a database the current build wrote, as a version 7 build leaves
/// it: version 8 only filled in receipt times of markers that moved before version 5, so
/// the schema is the same and only the version goes back.
#[allow(clippy::unwrap_used, reason = "test helper")]
fn back_to_version_7(conn: &rusqlite::Connection) {
    conn.execute_batch("PRAGMA user_version = 7;").unwrap();
}

/// Undoes version 7 on a database the current build wrote, as a version 6 build leaves
/// it: the log rows without actors or removed attachments, no consumers table. The data
/// must be what a version 6 build could write (no consumers).
#[allow(clippy::unwrap_used, reason = "test helper")]
fn back_to_version_6(conn: &rusqlite::Connection) {
    back_to_version_7(conn);
    conn.execute_batch(
        "DROP TABLE consumers; \
         ALTER TABLE events DROP COLUMN actor; \
         ALTER TABLE events DROP COLUMN removed_attachments; \
         PRAGMA user_version = 6;",
    )
    .unwrap();
}

/// A database of schema version 6 (a log without actors or removed attachments, no
/// consumers) opens under the current schema: every event logged before reads in
/// `read_log` as `read_events` served it, with its recipients and their mutes but no
/// actor and no removed attachments (a version 6 build never kept them); the events
/// logged after the upgrade carry both; a consumer reads the whole log on the upgraded
/// file and its position survives reopening it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_6_log_reads_without_actors_and_takes_consumers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v6.db");
    let (alice, bob) = (UserId::new(), UserId::new());
    let file = Attachment::new("https://cdn.example.com/a.png", "image/png");
    let until = Timestamp::from_millis(Timestamp::now().as_millis() + 3_600_000);
    let (c, before) = {
        let store = Arc::new(SqliteStore::open(&path).await.unwrap());
        let messenger = Messenger::new(store.clone()).await.unwrap();
        let first = messenger
            .send(alice, SendMessage::to_peer(bob, None, "one").attachment(file.clone()))
            .await
            .unwrap()
            .message;
        let c = first.conversation_id;
        messenger.delete(alice, first.id).await.unwrap();
        messenger.mute(bob, c, Some(until)).await.unwrap();
        let session = messenger.connect(bob).await.unwrap();
        let before = session.sync(Some(Cursor::at(0)), None).await.unwrap().events;
        drop(session);
        store.close().await.unwrap();
        (c, before)
    };
    back_to_version_6(&rusqlite_conn(&path));

    let store = Arc::new(SqliteStore::open(&path).await.unwrap());
    let log = store.read_log(0, 4, 10).await.unwrap();
    let logged: Vec<_> = log.iter().map(|e| e.logged.clone()).collect();
    assert_eq!(logged, before, "the same events, in their current state");
    let names: Vec<&str> = logged.iter().map(|e| e.event.name()).collect();
    assert_eq!(
        names,
        ["conversation.created", "message.created", "message.deleted", "member.updated"]
    );
    for entry in &log {
        assert_eq!(entry.actor, None, "no actor was logged before version 7");
        assert!(entry.removed_attachments.is_empty(), "nor removed attachments");
        let muted: Vec<_> = entry.recipients.iter().map(|r| (r.user_id, r.muted_until)).collect();
        if entry.logged.event.name() == "member.updated" {
            assert_eq!(muted, [(bob, Some(until))]);
        } else {
            let mut members = [(alice, None), (bob, Some(until))];
            members.sort_by_key(|(user, _)| *user);
            assert_eq!(muted, members, "the audience with the mutes of today");
        }
    }

    let messenger = Messenger::new(store.clone()).await.unwrap();
    let second = messenger
        .send(bob, SendMessage::to_conversation(c, "two").attachment(file.clone()))
        .await
        .unwrap()
        .message;
    messenger.service().delete_message(second.id).await.unwrap();
    let after = store.read_log(4, 6, 10).await.unwrap();
    assert_eq!(after.iter().map(|e| e.actor).collect::<Vec<_>>(), [Some(bob), None]);
    assert_eq!(after[1].removed_attachments, [file], "kept from version 7 on");

    let options = ConsumerOptions::default().start(ConsumerStart::Beginning).batch(4);
    let mut consumer = messenger.consumer("upgraded", options.clone()).unwrap();
    let batch = consumer.next_batch().await.unwrap();
    assert_eq!(batch.iter().map(|e| e.logged.position).collect::<Vec<_>>(), [1, 2, 3, 4]);
    consumer.commit(4).await.unwrap();
    consumer.release().await.unwrap();
    drop(messenger);
    store.close().await.unwrap();

    let store = Arc::new(SqliteStore::open(&path).await.unwrap());
    let messenger = Messenger::new(store.clone()).await.unwrap();
    let mut consumer = messenger.consumer("upgraded", options).unwrap();
    let batch = consumer.next_batch().await.unwrap();
    assert_eq!(batch.iter().map(|e| e.logged.position).collect::<Vec<_>>(), [5, 6]);
    drop((consumer, messenger));
    store.close().await.unwrap();
}

/// A database of schema version 5 with data of every kind a version 5 build wrote
/// (messages with attachments, replies and reactions, receipts, settings, metadata,
/// blocks, last-seen times) opens under the current schema with all of it intact, nobody
/// revoked; revocations then work on the upgraded file and survive reopening it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_5_database_keeps_its_data_and_takes_revocations() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v5.db");
    let (alice, bob, carol) = (UserId::new(), UserId::new(), UserId::new());
    let file = Attachment::new("https://cdn.example.com/a.png", "image/png");
    let (c, history, summary, seen, log) = {
        let store = Arc::new(SqliteStore::open(&path).await.unwrap());
        let messenger = Messenger::new(store.clone()).await.unwrap();
        let first = messenger
            .send(alice, SendMessage::to_peer(bob, Some("listing:1"), "harbour one"))
            .await
            .unwrap()
            .message;
        let c = first.conversation_id;
        messenger
            .send(bob, SendMessage::to_conversation(c, "").attachment(file).reply_to(1))
            .await
            .unwrap();
        messenger.react(bob, first.id, "👍", ReactionState::Added).await.unwrap();
        messenger.mark_read(bob, c, 1).await.unwrap();
        messenger.archive(alice, c, true).await.unwrap();
        messenger.service().set_metadata(c, Some(serde_json::json!({"n": 1}))).await.unwrap();
        messenger.block(alice, carol).await.unwrap();
        messenger.connect(carol).await.unwrap().close().await.unwrap();
        let history = messenger.history(bob, c, HistoryQuery::default()).await.unwrap().messages;
        let summary = messenger.conversation(alice, c).await.unwrap();
        let seen = store.last_seen(&[carol]).await.unwrap();
        assert_eq!(seen.len(), 1, "carol's last-seen time was written");
        let session = messenger.connect(bob).await.unwrap();
        let log = session.sync(Some(Cursor::at(0)), None).await.unwrap().events;
        drop(session);
        store.close().await.unwrap();
        (c, history, summary, seen, log)
    };
    {
        let conn = rusqlite_conn(&path);
        back_to_version_5(&conn);
    }
    let store = Arc::new(SqliteStore::open(&path).await.unwrap());
    let messenger = Messenger::new(store.clone()).await.unwrap();
    let version: i64 =
        rusqlite_conn(&path).query_row("PRAGMA user_version", [], |row| row.get(0)).unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    assert_eq!(messenger.history(bob, c, HistoryQuery::default()).await.unwrap().messages, history);
    assert_eq!(messenger.conversation(alice, c).await.unwrap(), summary);
    assert_eq!(store.last_seen(&[carol]).await.unwrap(), seen);
    assert_eq!(store.blocks(alice, None, 10).await.unwrap(), [carol]);
    assert!(store.is_blocked_between(carol, alice).await.unwrap());
    let session = messenger.connect(bob).await.unwrap();
    assert_eq!(session.sync(Some(Cursor::at(0)), None).await.unwrap().events, log);
    for user in [alice, bob, carol] {
        assert_eq!(store.revoked_at(user).await.unwrap(), None, "nobody revoked");
        assert!(messenger.token_accepted(user, None).await.unwrap());
    }

    let at = messenger.service().revoke(bob).await.unwrap();
    assert_eq!(store.revoked_at(bob).await.unwrap(), Some(at));
    assert!(!messenger.token_accepted(bob, None).await.unwrap());
    drop((session, messenger));
    store.close().await.unwrap();
    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(store.revoked_at(bob).await.unwrap(), Some(at), "kept across reopening");
    assert_eq!(store.revoked_at(alice).await.unwrap(), None);
    store.close().await.unwrap();
}

/// The names of `table`'s columns.
#[allow(clippy::unwrap_used, reason = "test helper")]
fn columns(conn: &rusqlite::Connection, table: &str) -> Vec<String> {
    conn.prepare("SELECT name FROM pragma_table_info(?1)")
        .unwrap()
        .query_map([table], |row| row.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

/// A database of schema version 4 (messages without attachments, replies or reactions;
/// members without settings or receipt times; no conversation metadata), with plain
/// messages, an edit, a tombstone, a receipt and a conversation with a context, opens
/// under the current schema: every message reads back as it was sent, with no
/// attachments, no reply, no reactions and kind `user`, in history, `sync`, search and the
/// conversation list; the unread count is unchanged; every member reads not muted, not
/// archived, every conversation without metadata, the old receipt event and the marker
/// it moved with the send time of the message it marks (the earliest it could have moved,
/// as on PostgreSQL), a marker that never moved with no time; the context conversation is
/// listed by its context (its index was filled by the migration); and the new features
/// work on the upgraded file: attachments and replies to the old messages, settings,
/// metadata, receipt times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_4_database_reads_its_messages_as_plain_user_messages() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v4.db");
    let (alice, bob, carol) = (UserId::new(), UserId::new(), UserId::new());
    let (conversation_id, listed, before) = {
        let messenger =
            Messenger::new(Arc::new(SqliteStore::open(&path).await.unwrap())).await.unwrap();
        let one = messenger
            .send(alice, SendMessage::to_peer(bob, None, "harbour one"))
            .await
            .unwrap()
            .message;
        let c = one.conversation_id;
        let two = messenger
            .send(
                bob,
                SendMessage::to_conversation(c, "two")
                    .client_msg_id("k-2")
                    .metadata(serde_json::json!({"n": 2})),
            )
            .await
            .unwrap()
            .message;
        let three =
            messenger.send(alice, SendMessage::to_conversation(c, "three")).await.unwrap().message;
        messenger.edit(bob, two.id, "two, edited").await.unwrap();
        messenger.delete(alice, three.id).await.unwrap();
        messenger.send(alice, SendMessage::to_conversation(c, "four")).await.unwrap();
        messenger.mark_read(bob, c, 1).await.unwrap();
        let listed = messenger
            .send(carol, SendMessage::to_peer(alice, Some("listing:1"), "still for sale?"))
            .await
            .unwrap()
            .message
            .conversation_id;
        let page = messenger.history(bob, c, HistoryQuery::default()).await.unwrap();
        (c, listed, page.messages)
    };
    {
        let conn = rusqlite_conn(&path);
        back_to_version_4(&conn);
        let messages = columns(&conn, "messages");
        assert!(!messages.iter().any(|c| c == "attachments" || c == "reactions"), "{messages:?}");
        let members = columns(&conn, "members");
        assert!(!members.iter().any(|c| c == "archived" || c == "read_at"), "{members:?}");
    }
    let messenger =
        Messenger::new(Arc::new(SqliteStore::open(&path).await.unwrap())).await.unwrap();
    let conn = rusqlite_conn(&path);
    let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0)).unwrap();
    assert_eq!(version, SCHEMA_VERSION);

    let after = messenger.history(bob, conversation_id, HistoryQuery::default()).await.unwrap();
    assert_eq!(after.messages, before, "every message reads back as it was");
    assert_eq!(after.messages.len(), 4);
    for message in &after.messages {
        assert_eq!(message.kind, MessageKind::User);
        assert!(message.sender_id.is_some());
        assert!(message.attachments.is_empty());
        assert_eq!(message.reply_to_seq, None);
        assert!(message.reactions.is_empty());
    }
    assert!(after.messages[2].deleted, "the tombstone stays one");
    assert_eq!(after.messages[1].metadata, Some(serde_json::json!({"n": 2})));

    // The other read paths decode the old rows the same way.
    let session = messenger.connect(bob).await.unwrap();
    let page = session.sync(Some(Cursor::at(0)), None).await.unwrap();
    let served: Vec<Message> = page
        .events
        .iter()
        .filter_map(|e| match &e.event {
            Event::MessageCreated(m) | Event::MessageEdited(m) | Event::MessageDeleted(m) => {
                Some(m.clone())
            }
            _ => None,
        })
        .collect();
    assert_eq!(served.len(), 6, "four created, one edited, one deleted");
    for message in &served {
        let now = before.iter().find(|m| m.id == message.id).unwrap();
        assert_eq!(message, now, "sync serves the current state");
    }
    let hits = messenger.search(bob, "harbour", None, None).await.unwrap();
    assert_eq!(hits, [before[0].clone()]);
    let list = messenger.conversations(bob, ConversationsQuery::default()).await.unwrap();
    assert_eq!(list.conversations[0].last_message.as_ref(), before.last());
    assert_eq!(
        messenger.unread(bob).await.unwrap().total,
        1,
        "alice's live messages above bob's marker"
    );

    // The new member columns read as defaults: not muted, not archived, no metadata; a
    // marker that moved before version 5 and its receipt event both read with the time of
    // the message it marks (version 8), a marker that never moved with none.
    let mine = messenger.conversation(bob, conversation_id).await.unwrap();
    assert_eq!((mine.read_seq, mine.muted_until, mine.archived), (1, None, false));
    assert_eq!(mine.conversation.metadata, None);
    let alices = messenger.conversation(alice, conversation_id).await.unwrap();
    let marked = before.iter().find(|m| m.seq == 1).unwrap();
    assert_eq!(
        (alices.peer_read_seq, alices.peer_read_at),
        (1, Some(marked.created_at)),
        "the time of the marked message, as the receipt event's"
    );
    assert_eq!(alices.peer_delivered_at, None, "bob's delivered marker never moved");
    let receipts: Vec<Receipt> = page
        .events
        .iter()
        .filter_map(|e| match &e.event {
            Event::Receipt(r) => Some(*r),
            _ => None,
        })
        .collect();
    assert_eq!(receipts.len(), 1);
    assert_eq!((receipts[0].seq, receipts[0].at), (1, marked.created_at));
    let (muted, archived, read_at): (Option<i64>, i64, Option<i64>) = conn
        .query_row("SELECT max(muted_until), max(archived), max(read_at) FROM members", [], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .unwrap();
    assert_eq!(
        (muted, archived, read_at),
        (None, 0, Some(marked.created_at.as_millis())),
        "the defaults on disk, and the one marker's time"
    );
    let metadata: i64 =
        conn.query_row("SELECT count(*) FROM conversation_metadata", [], |r| r.get(0)).unwrap();
    assert_eq!(metadata, 0);
    // The context index was filled from the conversations: one entry, on one member row.
    let contexts: Vec<Option<String>> = conn
        .prepare("SELECT context FROM members WHERE conversation_id = ?1 ORDER BY user_id")
        .unwrap()
        .query_map([listed.as_bytes()], |row| row.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    let lower = if alice < carol { 0 } else { 1 };
    assert_eq!(contexts[lower].as_deref(), Some("listing:1"), "{contexts:?}");
    assert_eq!(contexts[1 - lower], None, "{contexts:?}");
    let by_context =
        messenger.service().conversations_by_context("listing:1", None, None).await.unwrap();
    assert_eq!(by_context.conversations.iter().map(|c| c.id).collect::<Vec<_>>(), [listed]);
    let alices_list = messenger.conversations(alice, ConversationsQuery::default()).await.unwrap();
    assert_eq!(alices_list.conversations.len(), 2, "the rebuilt list index holds both");

    // Settings, metadata and receipt times work on the upgraded file.
    let archived = messenger.archive(alice, listed, true).await.unwrap();
    assert!(archived.archived);
    let list = messenger.conversations(alice, ConversationsQuery::default()).await.unwrap();
    assert_eq!(
        list.conversations.iter().map(|s| s.conversation.id).collect::<Vec<_>>(),
        [conversation_id]
    );
    let metadata = serde_json::json!({"listing": 1});
    let updated = messenger.service().set_metadata(listed, Some(metadata.clone())).await.unwrap();
    assert_eq!(updated.metadata, Some(metadata));
    let read = messenger.mark_read(bob, conversation_id, 4).await.unwrap();
    let alices = messenger.conversation(alice, conversation_id).await.unwrap();
    assert_eq!((alices.peer_read_seq, alices.peer_read_at), (4, Some(read.at)));

    // New messages on the upgraded database carry the new fields and may reply to old ones.
    let file = Attachment {
        url: "https://cdn.example.com/a.png".to_owned(),
        mime: "image/png".to_owned(),
        name: Some("a.png".to_owned()),
        size: Some(1234),
        width: Some(10),
        height: Some(20),
        duration_ms: None,
    };
    let reply = messenger
        .send(bob, SendMessage::to_conversation(conversation_id, "").attachment(file).reply_to(3))
        .await
        .unwrap()
        .message;
    assert_eq!((reply.seq, reply.reply_to_seq), (5, Some(3)), "a tombstone may be replied to");
    let last = messenger
        .history(bob, conversation_id, HistoryQuery::default())
        .await
        .unwrap()
        .messages
        .pop()
        .unwrap();
    assert_eq!(last, reply);
}

/// A query of the unarchived list, `limit` rows after `before`.
fn page_of(limit: Option<usize>, before: Option<String>) -> ConversationsQuery {
    ConversationsQuery { limit, before, ..ConversationsQuery::default() }
}

#[allow(clippy::unwrap_used, reason = "test helper")]
fn rusqlite_conn(path: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}
