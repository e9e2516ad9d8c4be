//! Shared parts of the benchmarks: the stores under test and cached fixtures.
//!
//! Large fixtures (a conversation 1M messages deep) take a while to build, so they are
//! built once through the store's own API, then kept under `target/bench-fixtures/`, keyed
//! by the store's schema version: a schema change builds them anew. A fixture is written to
//! a temporary name and renamed when complete, so an interrupted build is never reused.
//!
//! SQLite fixtures are the database files themselves. PostgreSQL fixtures are `pg_dump -Fc`
//! files of the library's schema, restored with `pg_restore` into a fresh database of the
//! server named by `MESSAGING_PG_URL` (see [`PgServer`]), since that server is usually a
//! throwaway cluster (`scripts/pg.sh`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};

use messaging_core::store::NewMessage;
use messaging_core::{ConversationId, MessageId, Messenger, Result, Store, Timestamp, UserId};
use messaging_store_pg::{PgOptions, PgStore};
use messaging_store_sqlite::{SCHEMA_VERSION, SqliteOptions, SqliteStore, Synchronous};
use sqlx::{Connection, Executor};

pub mod loadgen;

/// Bumped when what a fixture contains changes.
const FIXTURE_VERSION: u32 = 3;

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
        fill_deep_history(&store, depth).await
    })
    .await
}

/// Opens the deep conversation of [`ids::deep_pair`] and appends `depth` messages to it
/// from 256 concurrent tasks.
pub async fn fill_deep_history(store: &Arc<dyn Store>, depth: u64) -> Result<()> {
    let (a, b) = ids::deep_pair();
    let conversation = store
        .open_direct(messaging_core::store::NewConversation {
            id: ids::deep_conversation(),
            members: [a, b],
            context: None,
            created_at: Timestamp::now(),
            metadata: None,
            audience: vec![a, b],
            actor: Some(a),
        })
        .await?
        .conversation
        .id;
    append_many(store, conversation, [a, b], depth, 256).await
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
                        sender_id: Some(sender),
                        body: format!("message number {n} of the deep history fixture"),
                        attachments: Vec::new(),
                        reply_to_seq: None,
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

/// Connections in the pool of a store building a PostgreSQL fixture: one per concurrent
/// task of [`fill_conversations`] (their reads), plus the writer and the feed.
const PG_FIXTURE_CONNECTIONS: u32 = 80;

/// The schema the PostgreSQL stores use (the default), the one a fixture dump holds.
const PG_SCHEMA: &str = "messaging";

static PG_SKIP_NOTE: Once = Once::new();

/// A PostgreSQL server to run the benches on: `MESSAGING_PG_URL`, an admin connection
/// (`scripts/pg.sh run --durable -- cargo bench --bench store` sets it). Every bench gets
/// its own fresh database on it.
#[derive(Clone, Debug)]
pub struct PgServer {
    admin: String,
}

impl PgServer {
    /// The server of `MESSAGING_PG_URL`, or `None` when unset (noted once on stderr: the
    /// PostgreSQL benches are skipped).
    #[must_use]
    pub fn from_env() -> Option<Self> {
        match std::env::var("MESSAGING_PG_URL") {
            Ok(admin) if !admin.is_empty() => Some(Self { admin }),
            _ => {
                PG_SKIP_NOTE.call_once(|| {
                    tracing_free_note(
                        "PostgreSQL benches skipped: MESSAGING_PG_URL is unset \
                         (scripts/pg.sh run --durable -- cargo bench --bench store)",
                    );
                });
                None
            }
        }
    }

    /// Creates an empty database `bench_<label>_<unique>`.
    pub async fn create_database(&self, label: &str) -> Result<PgDatabase> {
        let name = format!("bench_{label}_{}", uuid::Uuid::now_v7().simple());
        let url = database_url(&self.admin, &name)?;
        self.admin_execute(&format!("CREATE DATABASE {name}")).await?;
        Ok(PgDatabase { server: self.clone(), name, url })
    }

    /// A fresh database holding one conversation `depth` messages deep (see [`ids`]):
    /// restored from the cached dump, or built through the store and then dumped.
    pub async fn deep_history(&self, depth: u64) -> Result<PgDatabase> {
        self.cached(&format!("deep-{depth}"), |url| async move {
            let store: Arc<dyn Store> = Arc::new(pg_fixture_store(&url).await?);
            fill_deep_history(&store, depth).await
        })
        .await
    }

    /// A fresh database where [`ids::busy_user`] has `count` conversations with `per`
    /// messages each from the peer (half of them read): restored from the cached dump, or
    /// built through the store and then dumped.
    pub async fn many_conversations(&self, count: u64, per: u64) -> Result<PgDatabase> {
        self.cached(&format!("list-{count}x{per}"), |url| async move {
            let messenger = Messenger::new(Arc::new(pg_fixture_store(&url).await?)).await?;
            fill_conversations(&messenger, ids::busy_user(), count, per).await
        })
        .await
    }

    async fn admin_execute(&self, sql: &str) -> Result<()> {
        let mut conn = sqlx::PgConnection::connect(&self.admin)
            .await
            .map_err(messaging_core::Error::backend)?;
        let done = conn
            .execute(sqlx::AssertSqlSafe(sql.to_owned()))
            .await
            .map(drop)
            .map_err(messaging_core::Error::backend);
        let _ = conn.close().await;
        done
    }

    /// A fresh database with the fixture `key`: `pg_restore` of the cached dump when there
    /// is one (and the tools are installed), else built by `build` (given the database's
    /// URL; the store it opens must be dropped when it returns) and dumped for later runs.
    async fn cached<F, Fut>(&self, key: &str, build: F) -> Result<PgDatabase>
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = Result<()>>,
    {
        let dir = fixture_dir();
        let name = format!("pg-s{}-f{FIXTURE_VERSION}-{key}.dump", pg_schema_version()?);
        let path = dir.join(&name);
        if path.exists() {
            match pg_tool("pg_restore") {
                Some(pg_restore) => {
                    let db = self.create_database("fixture").await?;
                    match db.restore(&pg_restore, &path).await {
                        Ok(()) => {
                            db.settle().await?;
                            return Ok(db);
                        }
                        Err(e) => {
                            tracing_free_note(&format!(
                                "restoring fixture {name} failed ({e}); building it anew"
                            ));
                            db.drop_database().await?;
                        }
                    }
                }
                None => tracing_free_note(&format!(
                    "pg_restore not found in /usr/lib/postgresql/*/bin or on PATH: \
                     building fixture {name} anew"
                )),
            }
        }

        let db = self.create_database("fixture").await?;
        tracing_free_note(&format!("building PostgreSQL fixture {name} (cached for later runs)"));
        // Durability does not matter while building (like SQLite's fixtures at NORMAL);
        // the setting applies to new sessions only, so the bench's own store, connected
        // after the reset, commits durably.
        let database = &db.name;
        self.admin_execute(&format!("ALTER DATABASE {database} SET synchronous_commit = off"))
            .await?;
        if let Err(e) = build(db.url.clone()).await {
            let _ = db.drop_database().await;
            return Err(e);
        }
        self.admin_execute(&format!("ALTER DATABASE {database} RESET synchronous_commit")).await?;
        db.settle().await?;

        match pg_tool("pg_dump") {
            Some(pg_dump) => {
                std::fs::create_dir_all(&dir).map_err(messaging_core::Error::backend)?;
                let partial = dir.join(format!("{name}.partial"));
                let _ = std::fs::remove_file(&partial);
                match db.dump(&pg_dump, &partial).await {
                    Ok(()) => {
                        std::fs::rename(&partial, &path).map_err(messaging_core::Error::backend)?;
                    }
                    Err(e) => {
                        let _ = std::fs::remove_file(&partial);
                        tracing_free_note(&format!("not caching fixture {name}: {e}"));
                    }
                }
            }
            None => tracing_free_note(&format!(
                "pg_dump not found in /usr/lib/postgresql/*/bin or on PATH: fixture {name} \
                 is not cached"
            )),
        }
        Ok(db)
    }
}

/// One database of a [`PgServer`], made for one bench. Drop it with
/// [`PgDatabase::drop_database`] once its stores are gone.
#[derive(Debug)]
pub struct PgDatabase {
    server: PgServer,
    name: String,
    url: String,
}

impl PgDatabase {
    /// Its name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its URL.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A store on it (migrating it if needed).
    pub async fn connect(&self, options: PgOptions) -> Result<PgStore> {
        PgStore::connect(&self.url, options.schema(PG_SCHEMA)).await
    }

    /// Drops the database, ending any connection still open to it.
    pub async fn drop_database(self) -> Result<()> {
        self.server.admin_execute(&format!("DROP DATABASE {} WITH (FORCE)", self.name)).await
    }

    /// `VACUUM (ANALYZE)`: what autovacuum would have done to tables that had settled,
    /// so a freshly built and a freshly restored fixture are planned and read alike.
    async fn settle(&self) -> Result<()> {
        let mut conn =
            sqlx::PgConnection::connect(&self.url).await.map_err(messaging_core::Error::backend)?;
        let done = conn
            .execute("VACUUM (ANALYZE)")
            .await
            .map(drop)
            .map_err(messaging_core::Error::backend);
        let _ = conn.close().await;
        done
    }

    async fn dump(&self, pg_dump: &Path, file: &Path) -> Result<()> {
        run_tool(
            tokio::process::Command::new(pg_dump)
                .args(["--format=custom", "--no-owner", "--no-privileges"])
                .arg(format!("--schema={PG_SCHEMA}"))
                .arg("--file")
                .arg(file)
                .arg("--dbname")
                .arg(&self.url),
        )
        .await
    }

    async fn restore(&self, pg_restore: &Path, file: &Path) -> Result<()> {
        run_tool(
            tokio::process::Command::new(pg_restore)
                .args(["--no-owner", "--no-privileges", "--exit-on-error", "--jobs=2"])
                .arg("--dbname")
                .arg(&self.url)
                .arg(file),
        )
        .await
    }
}

/// A store for building fixtures: a pool large enough for the concurrent builders' reads.
async fn pg_fixture_store(url: &str) -> Result<PgStore> {
    PgStore::connect(
        url,
        PgOptions::default().schema(PG_SCHEMA).max_connections(PG_FIXTURE_CONNECTIONS),
    )
    .await
}

/// `admin` with its database replaced by `name` (query parameters kept).
fn database_url(admin: &str, name: &str) -> Result<String> {
    let (base, query) = admin.split_once('?').map_or((admin, None), |(b, q)| (b, Some(q)));
    let authority = base.find("://").map(|i| i + 3).ok_or_else(|| {
        messaging_core::Error::invalid("MESSAGING_PG_URL is not a postgres:// URL")
    })?;
    let path = base[authority..].find('/').map_or(base.len(), |i| authority + i);
    let mut url = format!("{}/{name}", &base[..path]);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    Ok(url)
}

/// The PostgreSQL store's schema version: the number of its migration files.
fn pg_schema_version() -> Result<usize> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../messaging-store-pg/migrations");
    let entries = std::fs::read_dir(&dir).map_err(messaging_core::Error::backend)?;
    let mut count = 0;
    for entry in entries {
        let entry = entry.map_err(messaging_core::Error::backend)?;
        if entry.path().extension().is_some_and(|e| e == "sql") {
            count += 1;
        }
    }
    Ok(count)
}

/// A PostgreSQL client tool: from the newest `/usr/lib/postgresql/<version>/bin` holding
/// it (Debian keeps them there), else from `PATH`.
fn pg_tool(name: &str) -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin").join(name)))
        })
        .filter(|(_, path)| path.is_file())
        .collect();
    versions.sort();
    if let Some((_, path)) = versions.pop() {
        return Some(path);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

async fn run_tool(command: &mut tokio::process::Command) -> Result<()> {
    let output = command
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(messaging_core::Error::backend)?;
    if output.status.success() {
        Ok(())
    } else {
        let program = command.as_std().get_program().to_string_lossy().into_owned();
        Err(messaging_core::Error::unavailable(format!(
            "{program} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
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
    for suffix in ["", "-wal", "-shm", "-search", "-search-wal", "-search-shm"] {
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
    // The search index trails the writer and was left behind when the store closed: bring
    // it up to date now, so the benches that open the fixture do not index it meanwhile.
    SqliteStore::open(&partial).await?.wait_for_search_index().await?;
    std::fs::rename(&partial, &path).map_err(messaging_core::Error::backend)?;
    let search = |db: &Path| format!("{}-search", db.display());
    std::fs::rename(search(&partial), search(&path)).map_err(messaging_core::Error::backend)?;
    Ok(path)
}

#[allow(clippy::print_stderr)]
fn tracing_free_note(line: &str) {
    eprintln!("{line}");
}
