//! Databases for the PostgreSQL tests: a fresh one per test, cloned from the migrated
//! template that `scripts/pg.sh` creates (or empty, for the migration tests).
//!
//! Needs `MESSAGING_PG_URL` (an admin connection) and `MESSAGING_PG_TEMPLATE`. Without them
//! a test is skipped with one line on stderr, unless `MESSAGING_PG_REQUIRED=1` (set by
//! `scripts/test.sh` and CI), which makes it fail.

#![allow(clippy::expect_used, clippy::panic, dead_code, reason = "test support")]

use std::sync::Once;

use sqlx::{Connection, Executor};

static SKIP_NOTE: Once = Once::new();

/// The URL of a fresh database cloned from the template, or `None` to skip.
pub(crate) async fn fresh_database() -> Option<String> {
    let template = server_variable("MESSAGING_PG_TEMPLATE")?;
    create_database(&format!(" TEMPLATE {template}")).await
}

/// The URL of a fresh, empty database (no schema of ours), or `None` to skip: for tests of
/// the migrations themselves.
pub(crate) async fn empty_database() -> Option<String> {
    create_database("").await
}

/// `CREATE DATABASE case_<uuid><options>` on the admin connection; its URL.
async fn create_database(options: &str) -> Option<String> {
    let admin = server_variable("MESSAGING_PG_URL")?;
    let name = format!("case_{}", uuid::Uuid::now_v7().simple());
    let mut conn = sqlx::PgConnection::connect(&admin).await.expect("admin connection");
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}{options}")))
        .await
        .expect("create the database");
    conn.close().await.expect("close the admin connection");
    match admin.rsplit_once('/') {
        Some((base, _)) => Some(format!("{base}/{name}")),
        None => panic!("MESSAGING_PG_URL has no database part"),
    }
}

/// A variable `scripts/pg.sh` exports; `None` (one skip line) when unset, a failure when
/// `MESSAGING_PG_REQUIRED=1`.
fn server_variable(name: &str) -> Option<String> {
    if let Ok(value) = std::env::var(name) {
        return Some(value);
    }
    if std::env::var("MESSAGING_PG_REQUIRED").is_ok_and(|v| v == "1") {
        panic!("MESSAGING_PG_REQUIRED=1 but {name} is unset");
    }
    SKIP_NOTE.call_once(|| {
        eprintln!("PostgreSQL tests skipped: no {name} (run ./scripts/test.sh)");
    });
    None
}

/// The cluster's stop/start script (`MESSAGING_PG_CONTROL`), or `None` to skip; a failure
/// when `MESSAGING_PG_REQUIRED=1`. Only `tests/faults.rs` may use it (see there).
pub(crate) fn control() -> Option<String> {
    server_variable("MESSAGING_PG_CONTROL")
}

/// Runs the control script with `stop` or `start`, failing the test if it fails.
pub(crate) fn run_control(script: &str, action: &str) {
    let status =
        std::process::Command::new(script).arg(action).status().expect("run the control script");
    assert!(status.success(), "{script} {action} failed: {status}");
}

/// Waits (up to `within`) until `check` holds, polling every 50 ms; whether it did.
pub(crate) async fn eventually<F, Fut>(within: std::time::Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let until = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Opens the direct conversation of `a` and `b` (no context) straight on the store; its id.
pub(crate) async fn open_pair(
    store: &messaging_store_pg::PgStore,
    a: messaging_core::id::UserId,
    b: messaging_core::id::UserId,
) -> messaging_core::id::ConversationId {
    use messaging_core::store::ConversationStore;
    let mut members = [a, b];
    members.sort();
    store
        .open_direct(messaging_core::store::NewConversation {
            id: messaging_core::id::ConversationId::new(),
            members,
            context: None,
            created_at: messaging_core::time::Timestamp::now(),
            metadata: None,
            audience: vec![a, b],
            actor: Some(a),
        })
        .await
        .expect("open")
        .conversation
        .id
}

/// A message of `sender` for `MessageStore::append`, seen by the sender alone.
pub(crate) fn new_message(
    conversation_id: messaging_core::id::ConversationId,
    sender_id: messaging_core::id::UserId,
    body: &str,
) -> messaging_core::store::NewMessage {
    messaging_core::store::NewMessage {
        id: messaging_core::id::MessageId::new(),
        conversation_id,
        sender_id: Some(sender_id),
        body: body.to_owned(),
        attachments: Vec::new(),
        reply_to_seq: None,
        metadata: None,
        client_msg_id: None,
        created_at: messaging_core::time::Timestamp::now(),
        audience: vec![sender_id],
    }
}

/// The first push to `session` that `pick` keeps, failing after `within`.
async fn next_push<T>(
    session: &mut messaging_core::Session,
    within: std::time::Duration,
    what: &str,
    pick: impl Fn(messaging_core::Push) -> Option<T>,
) -> T {
    loop {
        let push = tokio::time::timeout(within, session.recv())
            .await
            .unwrap_or_else(|_| panic!("{what} within {within:?}"))
            .expect("subscription open");
        if let Some(found) = pick(push) {
            return found;
        }
    }
}

/// The next durable event pushed to `session`, failing after 10 s.
pub(crate) async fn next_event(
    session: &mut messaging_core::Session,
) -> messaging_core::model::LoggedEvent {
    next_push(session, std::time::Duration::from_secs(10), "an event", |push| match push {
        messaging_core::Push::Event(event) => Some(event.get().clone()),
        messaging_core::Push::Signal(_) => None,
    })
    .await
}

/// The next ephemeral signal pushed to `session`, failing after 5 s.
pub(crate) async fn next_signal(
    session: &mut messaging_core::Session,
) -> messaging_core::model::Signal {
    next_push(session, std::time::Duration::from_secs(5), "a signal", |push| match push {
        messaging_core::Push::Signal(signal) => Some(signal.get().clone()),
        messaging_core::Push::Event(_) => None,
    })
    .await
}

/// The listening backends of the current database (one per store instance whose listener
/// is up).
pub(crate) async fn listeners(admin: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .fetch_one(admin)
    .await
    .expect("pg_stat_activity")
}

/// Waits (up to 10 s) until `count` listeners are up on the current database, and a
/// moment more for their instances to trust them (see `kept.rs`); fails otherwise.
pub(crate) async fn wait_for_listeners(admin: &sqlx::PgPool, count: i64) {
    let up = eventually(std::time::Duration::from_secs(10), || async {
        listeners(admin).await >= count
    })
    .await;
    assert!(up, "{count} listener(s) up");
    // The LISTEN shows before the instance marks its caches as listening, right after it.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
}

/// Terminates every LISTEN connection on the current database (one per store instance), as
/// a dropped NAT mapping or an administrator would; one `true` per connection terminated.
pub(crate) async fn terminate_listeners(admin: &sqlx::PgPool) -> Vec<bool> {
    sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .fetch_all(admin)
    .await
    .expect("terminate the listeners")
}

/// A photo attachment with every optional field set (the richer-messages and move tests).
pub(crate) fn photo() -> messaging_core::model::Attachment {
    let mut photo =
        messaging_core::model::Attachment::new("https://files.example/p/1.jpg", "image/jpeg");
    photo.name = Some("beach.jpg".to_owned());
    photo.size = Some(48_213);
    photo.width = Some(1024);
    photo.height = Some(768);
    photo
}
