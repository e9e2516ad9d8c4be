//! Upgrading a database that holds data: the migrations that move data keep it.
//!
//! Each case migrates an empty database to an older version with the library's own
//! migration files, writes rows as that version's store did, then connects `PgStore`
//! (which applies the rest) and reads them back through the store.
//!
//! Needs `MESSAGING_PG_URL`; skipped with one line without it, unless
//! `MESSAGING_PG_REQUIRED=1` (set by `scripts/test.sh` and CI), which makes it fail.

#![allow(clippy::expect_used, reason = "tests: failing loudly is the point")]

use std::sync::Arc;

use messaging_core::id::{ConversationId, UserId};
use messaging_core::model::ActivityKey;
use messaging_core::store::{ConversationPage, ConversationStore};
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
            .conversations(ConversationPage { user, before, limit: 1 })
            .await
            .expect("a page of the list");
        let Some(row) = page.first() else { return ids };
        ids.push(row.conversation.id);
        before = Some(ActivityKey::of(&row.conversation));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_3_keeps_each_members_activity() {
    let Some(url) = support::empty_database().await else { return };
    let mut migrator = Migrator { migrations: LIBRARY.migrations.clone(), ..Migrator::DEFAULT };
    migrator.dangerous_set_table_name("\"messaging\"._messaging_migrations");
    migrator.create_schema("\"messaging\"");
    let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
    conn.execute("CREATE SCHEMA messaging; SET search_path TO messaging").await.expect("schema");
    migrator.run_to(2, &mut conn).await.expect("migrate to version 2");

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
