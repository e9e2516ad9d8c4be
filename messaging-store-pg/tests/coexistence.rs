//! The store shares a database with a host application that runs its own sqlx migrations.
//!
//! Each case creates a plain empty database (no template: both migration sets are applied
//! from scratch), applies the host's migrations (`tests/host_migrations`) with
//! `sqlx::migrate!` on a pool with the default `search_path` into the default
//! `_sqlx_migrations`, then connects `PgStore`s and checks that neither side sees the
//! other's migrations or tables, that re-running either side changes nothing, and that a
//! failed library migration does not leave the migration lock (shared with the host) held.
//!
//! Needs `MESSAGING_PG_URL` (an admin connection). Without it the database cases are
//! skipped with one line on stderr, unless `MESSAGING_PG_REQUIRED=1` (set by
//! `scripts/test.sh` and CI), which makes them fail. The schema-name case needs no server.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use messaging_core::id::UserId;
use messaging_core::model::Message;
use messaging_core::store::{EventLog, MessageStore};
use messaging_core::{HistoryQuery, Messenger, SendMessage};
use messaging_store_pg::{PgOptions, PgStore};
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;

mod support;

/// The fictional host application's migrations (path relative to the crate root).
static HOST: Migrator = sqlx::migrate!("tests/host_migrations");

/// The host's tables, in `public`.
const HOST_TABLES: [&str; 2] = ["listings", "users"];

/// Some of the library's tables, in its schema only.
const LIBRARY_TABLES: [&str; 4] = ["conversations", "events", "log_head", "messages"];

/// A pool as a host application would open it: no `search_path` of ours.
#[allow(clippy::expect_used, reason = "test setup: failing loudly is the point")]
async fn host_pool(url: &str) -> PgPool {
    PgPoolOptions::new().max_connections(2).connect(url).await.expect("host pool")
}

/// The library's versions: one per up-migration file in `messaging-store-pg/migrations`.
#[allow(clippy::expect_used, reason = "test setup: failing loudly is the point")]
fn library_versions() -> Vec<i64> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
    let mut versions: Vec<i64> = std::fs::read_dir(dir)
        .expect("read the migrations directory")
        .map(|entry| entry.expect("a directory entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".sql") && !name.ends_with(".down.sql"))
        .map(|name| {
            let (number, _) = name.split_once('_').expect("a migration named <version>_<name>");
            number.parse().expect("a numeric migration version")
        })
        .collect();
    versions.sort_unstable();
    assert!(!versions.is_empty(), "no migrations found in {dir}");
    versions
}

/// Every row of a migrations table (version, checksum, installed_on, success), by version.
#[allow(clippy::panic, reason = "test helper: failing loudly is the point")]
async fn migration_rows(pool: &PgPool, table: &str) -> Vec<(i64, Vec<u8>, String, bool)> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT version, checksum, installed_on::text, success FROM {table} ORDER BY version"
    )))
    .fetch_all(pool)
    .await
    .unwrap_or_else(|e| panic!("reading {table}: {e}"))
}

/// The versions recorded in a migrations table.
async fn versions(pool: &PgPool, table: &str) -> Vec<i64> {
    migration_rows(pool, table).await.into_iter().map(|(version, ..)| version).collect()
}

/// The names of the ordinary tables in `schema`.
#[allow(clippy::expect_used, reason = "test helper: failing loudly is the point")]
async fn tables(pool: &PgPool, schema: &str) -> BTreeSet<String> {
    sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = $1")
        .bind(schema)
        .fetch_all(pool)
        .await
        .expect("list tables")
        .into_iter()
        .collect()
}

/// Opens a conversation between `alice` and `bob`, sends `body` and reads it back as
/// `bob`: the message sent.
#[allow(clippy::expect_used, reason = "test helper: failing loudly is the point")]
async fn round_trip(messenger: &Messenger, alice: UserId, bob: UserId, body: &str) -> Message {
    let opened = messenger.open(alice, bob, None).await.expect("open");
    let sent = messenger
        .send(alice, SendMessage::to_conversation(opened.conversation.id, body))
        .await
        .expect("send")
        .message;
    assert_eq!(sent.body, body);
    let page = messenger
        .history(bob, opened.conversation.id, HistoryQuery::default())
        .await
        .expect("history");
    assert_eq!(page.messages.last(), Some(&sent), "the message sent is the latest in history");
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_and_library_migrations_coexist() {
    let Some(url) = support::empty_database().await else { return };
    let host = host_pool(&url).await;

    // The host migrates first, into an empty database.
    HOST.run(&host).await.expect("host migrations");
    let host_rows = migration_rows(&host, "public._sqlx_migrations").await;

    // Then the library, and a real round trip through the service.
    let store = PgStore::connect(&url, PgOptions::default().max_connections(4))
        .await
        .expect("connect and migrate the store");
    let messenger = Messenger::new(Arc::new(store.clone())).await.expect("messenger");
    let (alice, bob) = (UserId::new(), UserId::new());
    let sent = round_trip(&messenger, alice, bob, "hello from the library").await;
    let library_rows = migration_rows(&host, "messaging._messaging_migrations").await;

    // Re-applying both changes nothing: no error, no migration run again.
    HOST.run(&host).await.expect("host migrations, again");
    store.migrate().await.expect("library migrations, again");
    let second = PgStore::connect(&url, PgOptions::default().max_connections(4))
        .await
        .expect("a second store on the same database (migrates again)");
    assert_eq!(migration_rows(&host, "public._sqlx_migrations").await, host_rows);
    assert_eq!(migration_rows(&host, "messaging._messaging_migrations").await, library_rows);
    let seeded: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&host)
        .await
        .expect("count the host's users");
    assert_eq!(seeded, 1, "the host's seed migration ran exactly once");

    // The second store works, on the same data as the first.
    let found = second.message(sent.id).await.expect("read through the second store");
    assert_eq!(found.as_ref(), Some(&sent));
    let other = Messenger::new(Arc::new(second.clone())).await.expect("second messenger");
    round_trip(&other, bob, alice, "hello back").await;

    // Each side recorded exactly its own migrations, in its own table.
    let host_versions: Vec<i64> = HOST.iter().map(|m| m.version).collect();
    assert_eq!(host_versions, [1, 2]);
    assert_eq!(versions(&host, "public._sqlx_migrations").await, host_versions);
    assert_eq!(versions(&host, "messaging._messaging_migrations").await, library_versions());

    // The host's tables are in `public`, the library's in `messaging` and only there.
    let public = tables(&host, "public").await;
    let messaging = tables(&host, "messaging").await;
    for table in HOST_TABLES.iter().chain(["_sqlx_migrations"].iter()) {
        assert!(public.contains(*table), "public.{table} missing: {public:?}");
        assert!(!messaging.contains(*table), "messaging.{table} exists: {messaging:?}");
    }
    for table in LIBRARY_TABLES.iter().chain(["_messaging_migrations"].iter()) {
        assert!(messaging.contains(*table), "messaging.{table} missing: {messaging:?}");
        assert!(!public.contains(*table), "public.{table} exists: {public:?}");
    }
    assert_eq!(
        public,
        ["_sqlx_migrations", "listings", "users"].map(String::from).into(),
        "public holds the host's tables and nothing else"
    );

    // No `pool().close()` for the stores: it waits for every connection, and the feed's
    // listener keeps one while a messenger is attached. Dropping them stops their tasks.
    host.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_schemas_in_one_database_are_independent() {
    let Some(url) = support::empty_database().await else { return };
    let host = host_pool(&url).await;
    HOST.run(&host).await.expect("host migrations");

    let default = PgStore::connect(&url, PgOptions::default().max_connections(4))
        .await
        .expect("the store in the default schema");
    let chat = PgStore::connect(&url, PgOptions::default().schema("chat_lib").max_connections(4))
        .await
        .expect("the store in chat_lib");
    let via_default = Messenger::new(Arc::new(default.clone())).await.expect("messenger");
    let via_chat = Messenger::new(Arc::new(chat.clone())).await.expect("messenger");

    // The same two users talk through both, one message in one and two in the other.
    let (alice, bob) = (UserId::new(), UserId::new());
    let in_default = round_trip(&via_default, alice, bob, "in messaging").await;
    let in_chat = round_trip(&via_chat, alice, bob, "in chat_lib").await;
    let in_chat_2 = round_trip(&via_chat, bob, alice, "in chat_lib, again").await;
    assert_ne!(in_default.conversation_id, in_chat.conversation_id);
    assert_eq!(in_chat_2.conversation_id, in_chat.conversation_id);
    assert_eq!((in_default.seq, in_chat.seq, in_chat_2.seq), (1, 1, 2));

    // Neither sees the other's messages, conversations or log.
    assert_eq!(chat.message(in_default.id).await.expect("read"), None);
    assert_eq!(default.message(in_chat.id).await.expect("read"), None);
    assert_eq!(default.message(in_chat_2.id).await.expect("read"), None);
    let err = via_chat
        .history(alice, in_default.conversation_id, HistoryQuery::default())
        .await
        .expect_err("the default schema's conversation through chat_lib");
    assert_eq!(err.code(), "not_found");
    let err = via_default
        .history(alice, in_chat.conversation_id, HistoryQuery::default())
        .await
        .expect_err("chat_lib's conversation through the default schema");
    assert_eq!(err.code(), "not_found");
    let history = via_default
        .history(bob, in_default.conversation_id, HistoryQuery::default())
        .await
        .expect("history");
    assert_eq!(history.messages, [in_default]);
    let history = via_chat
        .history(bob, in_chat.conversation_id, HistoryQuery::default())
        .await
        .expect("history");
    assert_eq!(history.messages, [in_chat, in_chat_2]);
    // One conversation.created and one message.created per message in each log.
    assert_eq!(default.head().await.expect("head"), 2);
    assert_eq!(chat.head().await.expect("head"), 3);

    // Each has its own migrations table with the library's versions; the host's is apart.
    let library = library_versions();
    assert_eq!(versions(&host, "messaging._messaging_migrations").await, library);
    assert_eq!(versions(&host, "chat_lib._messaging_migrations").await, library);
    assert_eq!(versions(&host, "public._sqlx_migrations").await, [1, 2]);
    for schema in ["messaging", "chat_lib"] {
        let found = tables(&host, schema).await;
        for table in LIBRARY_TABLES.iter().chain(["_messaging_migrations"].iter()) {
            assert!(found.contains(*table), "{schema}.{table} missing: {found:?}");
        }
        assert!(!found.contains("_sqlx_migrations"), "{schema} has _sqlx_migrations");
    }
    assert_eq!(tables(&host, "messaging").await, tables(&host, "chat_lib").await);

    host.close().await;
}

#[tokio::test]
async fn a_bad_schema_name_is_refused_before_connecting() {
    // Nothing listens on port 1: any connection attempt would end in `unavailable` (and
    // the pool retries until its acquire timeout), never in `bad_request`.
    let bogus = "postgres://127.0.0.1:1/x";
    for schema in ["Robert'); DROP", "", "Messaging", "1st", "a-b", "a.b", "\"x\"", &"a".repeat(49)]
    {
        let attempt = PgStore::connect(bogus, PgOptions::default().schema(schema));
        let result = tokio::time::timeout(Duration::from_secs(5), attempt)
            .await
            .expect("refused at once, without a connection attempt");
        let err = result.expect_err("a bad schema name is refused");
        assert_eq!(err.code(), "bad_request", "schema {schema:?}: {err}");
    }
}

/// sqlx's migrators lock the database with a session-level advisory lock whose key comes
/// from the database name only: the library's and the host's are the same lock. A failed
/// library migration must not leave it held on a pooled connection of a live store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_library_migration_does_not_block_the_host() {
    let Some(url) = support::empty_database().await else { return };
    let host = host_pool(&url).await;
    // A table in the way makes the library's first migration fail.
    sqlx::raw_sql("CREATE SCHEMA messaging; CREATE TABLE messaging.conversations (x int)")
        .execute(&host)
        .await
        .expect("put a table in the way");

    let store = PgStore::connect(&url, PgOptions::default().max_connections(4).migrate(false))
        .await
        .expect("connect without migrating");
    store.migrate().await.expect_err("the library's migration fails on the table in its way");
    let again = PgStore::connect(&url, PgOptions::default().max_connections(4));
    tokio::time::timeout(Duration::from_secs(10), again)
        .await
        .expect("the library's next migration is not blocked by a lock left behind")
        .expect_err("connecting (and migrating) fails the same way");

    // The store is still alive, its pool open: the host migrates all the same.
    tokio::time::timeout(Duration::from_secs(10), HOST.run(&host))
        .await
        .expect("the host's migrator is not blocked by a lock left behind")
        .expect("host migrations");
    assert_eq!(versions(&host, "public._sqlx_migrations").await, [1, 2]);
    assert_eq!(versions(&host, "messaging._messaging_migrations").await, Vec::<i64>::new());
    drop(store);
    host.close().await;
}
