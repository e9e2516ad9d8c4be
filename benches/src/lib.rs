//! Shared parts of the benchmarks: the stores under test and cached fixtures.
//!
//! Large fixtures (a conversation 1M messages deep) take a while to build, so they are
//! built once through the store's own API, then kept under `target/bench-fixtures/`, keyed
//! by the store's schema version: a schema change builds them anew. A fixture is written to
//! a temporary name and renamed when complete, so an interrupted build is never reused.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use messaging_core::{
    ConversationId, MessageId, Messenger, NewMessage, Result, Store, Timestamp, UserId,
};
use messaging_store_sqlite::{SCHEMA_VERSION, SqliteOptions, SqliteStore, Synchronous};

/// Bumped when what a fixture contains changes.
const FIXTURE_VERSION: u32 = 2;

/// The directory that keeps fixtures between runs.
#[must_use]
pub fn fixture_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"), PathBuf::from);
    target.join("bench-fixtures")
}

/// Users and conversations of the fixtures, derived from fixed seeds so a cached file
/// and a fresh process agree on them.
pub mod ids {
    use super::{ConversationId, UserId};

    fn id(n: u128) -> uuid::Uuid {
        uuid::Uuid::from_u128(n)
    }

    /// The two users of the deep conversation.
    #[must_use]
    pub fn deep_pair() -> (UserId, UserId) {
        (UserId::from_uuid(id(0x1000)), UserId::from_uuid(id(0x1001)))
    }

    /// The user with many conversations.
    #[must_use]
    pub fn busy_user() -> UserId {
        UserId::from_uuid(id(0x2000))
    }

    /// The deep conversation.
    #[must_use]
    pub fn deep_conversation() -> ConversationId {
        ConversationId::from_uuid(id(0x3000))
    }
}

/// Opens a SQLite store with the given durability.
pub async fn open_sqlite(path: &Path, synchronous: Synchronous) -> Result<SqliteStore> {
    SqliteStore::open_with(path, SqliteOptions::default().synchronous(synchronous)).await
}

/// A SQLite file holding one conversation `depth` messages deep (see [`ids`]), built once.
pub async fn sqlite_deep_history(depth: u64) -> Result<PathBuf> {
    let name = format!("sqlite-s{SCHEMA_VERSION}-f{FIXTURE_VERSION}-deep-{depth}.db");
    cached(&name, |path| async move {
        let store: Arc<dyn Store> = Arc::new(open_sqlite(&path, Synchronous::Normal).await?);
        let (a, b) = ids::deep_pair();
        let conversation = store
            .open_direct(messaging_core::NewConversation {
                id: ids::deep_conversation(),
                members: [a, b],
                context: None,
                created_at: Timestamp::now(),
                audience: vec![a, b],
            })
            .await?
            .conversation
            .id;
        append_many(&store, conversation, [a, b], depth, 256).await
    })
    .await
}

/// A SQLite file where [`ids::busy_user`] has `count` conversations with `per` messages
/// each from the peer (half of them read), built once.
pub async fn sqlite_many_conversations(count: u64, per: u64) -> Result<PathBuf> {
    let name = format!("sqlite-s{SCHEMA_VERSION}-f{FIXTURE_VERSION}-list-{count}x{per}.db");
    cached(&name, |path| async move {
        let store = Arc::new(open_sqlite(&path, Synchronous::Normal).await?);
        let messenger = Messenger::new(store).await?;
        fill_conversations(&messenger, ids::busy_user(), count, per).await
    })
    .await
}

/// Gives `user` `count` conversations, each with `per` messages from the peer, the first
/// half of each read.
pub async fn fill_conversations(
    messenger: &Messenger,
    user: UserId,
    count: u64,
    per: u64,
) -> Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..count {
        let messenger = messenger.clone();
        tasks.spawn(async move {
            let peer = UserId::from_uuid(uuid::Uuid::from_u128(0x10_0000 + u128::from(i)));
            let opened = messenger.open(peer, user, None).await?;
            let id = opened.conversation.id;
            for n in 0..per {
                messenger
                    .send(
                        peer,
                        messaging_core::SendMessage::to_conversation(
                            id,
                            format!("message {n} of {i}"),
                        ),
                    )
                    .await?;
            }
            messenger.mark_read(user, id, per / 2).await?;
            Ok::<(), messaging_core::Error>(())
        });
        if tasks.len() >= 64
            && let Some(done) = tasks.join_next().await
        {
            done.map_err(messaging_core::Error::backend)??;
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(messaging_core::Error::backend)??;
    }
    Ok(())
}

/// Appends `count` messages to one conversation from `concurrency` tasks, alternating
/// senders. Goes through the store so seqs are assigned as in production.
pub async fn append_many(
    store: &Arc<dyn Store>,
    conversation_id: ConversationId,
    members: [UserId; 2],
    count: u64,
    concurrency: u64,
) -> Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let store = store.clone();
        tasks.spawn(async move {
            let mut n = worker;
            while n < count {
                let sender = members[usize::from(n % 2 == 1)];
                store
                    .append(NewMessage {
                        id: MessageId::new(),
                        conversation_id,
                        sender_id: sender,
                        body: format!("message number {n} of the deep history fixture"),
                        metadata: None,
                        client_msg_id: None,
                        created_at: Timestamp::now(),
                        audience: members.to_vec(),
                    })
                    .await?;
                n += concurrency;
            }
            Ok::<(), messaging_core::Error>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(messaging_core::Error::backend)??;
    }
    Ok(())
}

async fn cached<F, Fut>(name: &str, build: F) -> Result<PathBuf>
where
    F: FnOnce(PathBuf) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let dir = fixture_dir();
    let path = dir.join(name);
    if path.exists() {
        return Ok(path);
    }
    std::fs::create_dir_all(&dir).map_err(messaging_core::Error::backend)?;
    let partial = dir.join(format!("{name}.partial"));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", partial.display()));
    }
    tracing_free_note(&format!("building fixture {name} (cached for later runs)"));
    build(partial.clone()).await?;
    // The store was dropped inside `build`: the WAL is checkpointed and the file complete.
    if Path::new(&format!("{}-wal", partial.display())).exists() {
        return Err(messaging_core::Error::unavailable(format!(
            "fixture {name} was not closed cleanly (its WAL is still there)"
        )));
    }
    std::fs::rename(&partial, &path).map_err(messaging_core::Error::backend)?;
    Ok(path)
}

#[allow(clippy::print_stderr)]
fn tracing_free_note(line: &str) {
    eprintln!("{line}");
}
