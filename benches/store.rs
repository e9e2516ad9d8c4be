//! The store workload, run over every store: append throughput (one sender vs many
//! concurrent senders, which shows group commit), a history page 1M messages deep, a page
//! of a conversation list out of 1,000, and the unread total.
//!
//! `cargo bench --bench store`; figures and targets are in docs/benchmarks.md. The
//! PostgreSQL benches (`…/pg`, `…/pg-1M`) run when `MESSAGING_PG_URL` names a server
//! (`scripts/pg.sh run --durable -- cargo bench --bench store`); each creates its own fresh
//! database there, set up only when the bench is selected, and drops it afterwards.

#![allow(clippy::unwrap_used, reason = "a bench that cannot set up must stop")]

use std::cell::OnceCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main,
};
use messaging_benches::{
    PgDatabase, PgServer, ids, open_sqlite, sqlite_deep_history, sqlite_many_conversations,
};
use messaging_core::{
    ConversationId, ConversationsQuery, HistoryQuery, MessageId, Messenger, ReactionState,
    SendMessage, UserId,
};
use messaging_store_pg::PgOptions;
use messaging_store_sqlite::Synchronous;
use tokio::runtime::Runtime;

const DEPTH: u64 = 1_000_000;
const CONVERSATIONS: u64 = 1_000;
const SENDER_COUNTS: [usize; 3] = [64, 256, 1024];
/// Concurrent reactors, beside the same number of concurrent senders.
const REACTOR_COUNT: usize = 64;

/// A sender and its conversation.
type Pair = (UserId, ConversationId);

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// The settings of the PostgreSQL stores under test: the defaults (a pool of 16).
fn pg_options() -> PgOptions {
    PgOptions::default()
}

/// A SQLite store under test, by name.
struct Backend {
    name: &'static str,
    synchronous: Synchronous,
}

const BACKENDS: &[Backend] = &[
    Backend { name: "sqlite-full", synchronous: Synchronous::Full },
    Backend { name: "sqlite-normal", synchronous: Synchronous::Normal },
];

async fn fresh_messenger(backend: &Backend, dir: &tempfile::TempDir) -> Messenger {
    let store = open_sqlite(&dir.path().join("bench.db"), backend.synchronous).await.unwrap();
    Messenger::new(Arc::new(store)).await.unwrap()
}

/// A messenger on a PostgreSQL database made for one bench.
struct PgBench<T> {
    database: PgDatabase,
    messenger: Messenger,
    data: T,
}

impl<T> PgBench<T> {
    /// A store on `database` and `prepare`'s data, set up before timing starts.
    async fn new<F, Fut>(database: PgDatabase, prepare: F) -> Self
    where
        F: FnOnce(Messenger) -> Fut,
        Fut: Future<Output = T>,
    {
        let store = database.connect(pg_options()).await.unwrap();
        let messenger = Messenger::new(Arc::new(store)).await.unwrap();
        let data = prepare(messenger.clone()).await;
        Self { database, messenger, data }
    }

    /// Drops the database once the store is gone.
    fn finish(cell: OnceCell<Self>, rt: &Runtime) {
        if let Some(bench) = cell.into_inner() {
            drop(bench.messenger);
            rt.block_on(bench.database.drop_database()).unwrap();
        }
    }
}

/// `senders` pairs of users, one conversation each, opened before timing starts.
async fn pairs(messenger: &Messenger, senders: usize) -> Vec<Pair> {
    let mut out = Vec::with_capacity(senders);
    for _ in 0..senders {
        let (a, b) = (UserId::new(), UserId::new());
        let opened = messenger.open(a, b, None).await.unwrap();
        out.push((a, opened.conversation.id));
    }
    out
}

fn append(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("append");
    group.sample_size(10).measurement_time(Duration::from_secs(8));
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let messenger = rt.block_on(fresh_messenger(backend, &dir));
        let all_senders = rt.block_on(pairs(&messenger, SENDER_COUNTS[SENDER_COUNTS.len() - 1]));

        one_sender(&mut group, &rt, backend.name, &|| (messenger.clone(), all_senders[0]));
        one_reactor(&mut group, &rt, backend.name, &|| (messenger.clone(), all_senders[0]));
        for count in SENDER_COUNTS {
            concurrent_senders(&mut group, &rt, backend.name, count, &|| {
                (messenger.clone(), all_senders[..count].to_vec())
            });
        }
        concurrent_reactors(&mut group, &rt, backend.name, REACTOR_COUNT, &|| {
            (messenger.clone(), all_senders[..REACTOR_COUNT].to_vec())
        });
    }
    if let Some(server) = PgServer::from_env() {
        pg_append(&mut group, &rt, &server);
    }
    group.finish();
}

/// The append benches on PostgreSQL, each on a fresh database of its own.
fn pg_append(group: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime, server: &PgServer) {
    let fresh = |senders: usize| {
        rt.block_on(async {
            let database = server.create_database("append").await.unwrap();
            PgBench::new(database, |messenger| async move { pairs(&messenger, senders).await })
                .await
        })
    };

    let one = OnceCell::new();
    one_sender(group, rt, "pg", &|| {
        let bench = one.get_or_init(|| fresh(1));
        (bench.messenger.clone(), bench.data[0])
    });
    PgBench::finish(one, rt);

    let reacting = OnceCell::new();
    one_reactor(group, rt, "pg", &|| {
        let bench = reacting.get_or_init(|| fresh(1));
        (bench.messenger.clone(), bench.data[0])
    });
    PgBench::finish(reacting, rt);

    for count in SENDER_COUNTS {
        let many = OnceCell::new();
        concurrent_senders(group, rt, "pg", count, &|| {
            let bench = many.get_or_init(|| fresh(count));
            (bench.messenger.clone(), bench.data.clone())
        });
        PgBench::finish(many, rt);
    }

    let reactors = OnceCell::new();
    concurrent_reactors(group, rt, "pg", REACTOR_COUNT, &|| {
        let bench = reactors.get_or_init(|| fresh(REACTOR_COUNT));
        (bench.messenger.clone(), bench.data.clone())
    });
    PgBench::finish(reactors, rt);
}

/// One sender, each message awaiting its durable reply before the next.
fn one_sender(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    backend: &str,
    setup: &dyn Fn() -> (Messenger, Pair),
) {
    group.throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::new("one_sender", backend), |b| {
        let (messenger, (user, conversation)) = setup();
        b.to_async(rt).iter(|| {
            let messenger = messenger.clone();
            async move {
                messenger
                    .send(user, SendMessage::to_conversation(conversation, "hello there"))
                    .await
                    .unwrap()
            }
        });
    });
}

/// One user puts a reaction on a message and takes it off, one change at a time, each
/// awaiting its durable reply: what a reaction costs beside a send (`one_sender`).
fn one_reactor(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    backend: &str,
    setup: &dyn Fn() -> (Messenger, Pair),
) {
    group.throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::new("one_reactor", backend), |b| {
        let (messenger, (user, conversation)) = setup();
        let target = rt
            .block_on(messenger.send(user, SendMessage::to_conversation(conversation, "react")))
            .unwrap()
            .message
            .id;
        let mut added = false;
        b.to_async(rt).iter(|| {
            added = !added;
            let state = if added { ReactionState::Added } else { ReactionState::Removed };
            let messenger = messenger.clone();
            async move { messenger.react(user, target, "👍", state).await.unwrap() }
        });
    });
}

/// Every sender sends 50 messages in its own conversation, one after another; all senders
/// at once. Batches grow with the number of senders, which is what group commit exploits.
fn concurrent_senders(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    backend: &str,
    count: usize,
    setup: &dyn Fn() -> (Messenger, Vec<Pair>),
) {
    let per_sender = 50_u64;
    group.throughput(Throughput::Elements(per_sender * count as u64));
    group.bench_function(BenchmarkId::new(format!("{count}_senders"), backend), |b| {
        let (messenger, senders) = setup();
        assert_eq!(senders.len(), count);
        b.to_async(rt).iter_custom(|iters| {
            let messenger = messenger.clone();
            let senders = senders.clone();
            async move {
                let start = Instant::now();
                for _ in 0..iters {
                    let mut tasks = tokio::task::JoinSet::new();
                    for (user, conversation) in senders.iter().copied() {
                        let messenger = messenger.clone();
                        tasks.spawn(async move {
                            for _ in 0..per_sender {
                                messenger
                                    .send(
                                        user,
                                        SendMessage::to_conversation(conversation, "hello there"),
                                    )
                                    .await
                                    .unwrap();
                            }
                        });
                    }
                    while tasks.join_next().await.is_some() {}
                }
                start.elapsed()
            }
        });
    });
}

/// Every reactor puts a reaction on its own message and takes it off again, 50 changes one
/// after another; all reactors at once: what reactions cost beside sends when batches are
/// full (`{count}_senders`), where a commit's sync is shared by the whole batch.
fn concurrent_reactors(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    backend: &str,
    count: usize,
    setup: &dyn Fn() -> (Messenger, Vec<Pair>),
) {
    let per_reactor = 50_u64;
    group.throughput(Throughput::Elements(per_reactor * count as u64));
    group.bench_function(BenchmarkId::new(format!("{count}_reactors"), backend), |b| {
        let (messenger, pairs) = setup();
        assert_eq!(pairs.len(), count);
        let targets: Vec<(UserId, MessageId)> = rt.block_on(async {
            let mut targets = Vec::with_capacity(count);
            for (user, conversation) in pairs {
                let sent = messenger
                    .send(user, SendMessage::to_conversation(conversation, "react"))
                    .await
                    .unwrap();
                targets.push((user, sent.message.id));
            }
            targets
        });
        b.to_async(rt).iter_custom(|iters| {
            let messenger = messenger.clone();
            let targets = targets.clone();
            async move {
                let start = Instant::now();
                for _ in 0..iters {
                    let mut tasks = tokio::task::JoinSet::new();
                    for (user, message) in targets.iter().copied() {
                        let messenger = messenger.clone();
                        tasks.spawn(async move {
                            // An even number of changes: every iteration starts without it.
                            for change in 0..per_reactor {
                                let state = if change % 2 == 0 {
                                    ReactionState::Added
                                } else {
                                    ReactionState::Removed
                                };
                                messenger.react(user, message, "👍", state).await.unwrap();
                            }
                        });
                    }
                    while tasks.join_next().await.is_some() {}
                }
                start.elapsed()
            }
        });
    });
}

fn history(c: &mut Criterion) {
    let rt = runtime();
    let path = rt.block_on(sqlite_deep_history(DEPTH)).unwrap();
    let store = rt.block_on(open_sqlite(&path, Synchronous::Full)).unwrap();
    let messenger = rt.block_on(Messenger::new(Arc::new(store))).unwrap();
    let mut group = c.benchmark_group("history");
    history_pages(&mut group, &rt, "sqlite-1M", &|| messenger.clone());
    if let Some(server) = PgServer::from_env() {
        let deep = OnceCell::new();
        history_pages(&mut group, &rt, "pg-1M", &|| {
            deep.get_or_init(|| {
                rt.block_on(async {
                    let database = server.deep_history(DEPTH).await.unwrap();
                    PgBench::new(database, |_| async {}).await
                })
            })
            .messenger
            .clone()
        });
        PgBench::finish(deep, &rt);
    }
    group.finish();
}

/// Pages of 50 at the end, in the middle and at the start of the deep conversation.
fn history_pages(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    backend: &str,
    setup: &dyn Fn() -> Messenger,
) {
    let (reader, _) = ids::deep_pair();
    let conversation = ids::deep_conversation();
    for (label, query) in [
        ("latest_50", HistoryQuery::default()),
        (
            "before_middle_50",
            HistoryQuery { before_seq: Some(DEPTH / 2), ..HistoryQuery::default() },
        ),
        ("after_start_50", HistoryQuery { after_seq: Some(10), ..HistoryQuery::default() }),
    ] {
        group.bench_function(BenchmarkId::new(label, backend), |b| {
            let messenger = setup();
            b.to_async(rt).iter(|| {
                let messenger = messenger.clone();
                async move {
                    let page = messenger.history(reader, conversation, query).await.unwrap();
                    assert_eq!(page.messages.len(), 50);
                    page
                }
            });
        });
    }
}

fn conversations(c: &mut Criterion) {
    let rt = runtime();
    let path = rt.block_on(sqlite_many_conversations(CONVERSATIONS, 4)).unwrap();
    let store = rt.block_on(open_sqlite(&path, Synchronous::Full)).unwrap();
    let messenger = rt.block_on(Messenger::new(Arc::new(store))).unwrap();
    let middle = rt.block_on(middle_page(&messenger));
    let mut group = c.benchmark_group("conversations");
    conversation_pages(&mut group, &rt, "sqlite", &|| (messenger.clone(), middle.clone()));
    if let Some(server) = PgServer::from_env() {
        let list = OnceCell::new();
        conversation_pages(&mut group, &rt, "pg", &|| {
            let bench = list.get_or_init(|| {
                rt.block_on(async {
                    let database = server.many_conversations(CONVERSATIONS, 4).await.unwrap();
                    PgBench::new(database, |messenger| async move { middle_page(&messenger).await })
                        .await
                })
            });
            (bench.messenger.clone(), bench.data.clone())
        });
        PgBench::finish(list, &rt);
    }
    group.finish();
}

/// The cursor of the 26th page of 20 of the busy user's conversations.
/// The unarchived list, 20 a page, after `before`.
fn page_of_20(before: Option<String>) -> ConversationsQuery {
    ConversationsQuery { limit: Some(20), before, ..ConversationsQuery::default() }
}

async fn middle_page(messenger: &Messenger) -> Option<String> {
    let user = ids::busy_user();
    let mut before = None;
    for _ in 0..25 {
        before = messenger.conversations(user, page_of_20(before)).await.unwrap().next;
    }
    before
}

/// The first and a middle page of 20 of the busy user's 1,000 conversations, and their
/// unread total.
fn conversation_pages(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    backend: &str,
    setup: &dyn Fn() -> (Messenger, Option<String>),
) {
    let user = ids::busy_user();
    for label in ["first_page_20_of_1000", "middle_page_20_of_1000"] {
        group.bench_function(BenchmarkId::new(label, backend), |b| {
            let (messenger, middle) = setup();
            let before = if label.starts_with("middle") { middle } else { None };
            b.to_async(rt).iter(|| {
                let messenger = messenger.clone();
                let before = before.clone();
                async move {
                    let page = messenger.conversations(user, page_of_20(before)).await.unwrap();
                    assert_eq!(page.conversations.len(), 20);
                    page
                }
            });
        });
    }
    group.bench_function(BenchmarkId::new("unread_total_1000", backend), |b| {
        let (messenger, _) = setup();
        b.to_async(rt).iter(|| {
            let messenger = messenger.clone();
            async move {
                let unread = messenger.unread(user).await.unwrap();
                assert_eq!(unread.conversations, CONVERSATIONS);
                unread
            }
        });
    });
}

criterion_group!(benches, append, history, conversations);
criterion_main!(benches);
