//! The store workload, run over every store: append throughput (one sender vs many
//! concurrent senders, which shows group commit), a history page 1M messages deep, a page
//! of a conversation list out of 1,000, and the unread total.
//!
//! `cargo bench --bench store`; figures and targets are in docs/benchmarks.md.

#![allow(clippy::unwrap_used, reason = "a bench that cannot set up must stop")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use messaging_benches::{ids, open_sqlite, sqlite_deep_history, sqlite_many_conversations};
use messaging_core::{HistoryQuery, Messenger, SendMessage, UserId};
use messaging_store_sqlite::Synchronous;
use tokio::runtime::Runtime;

const DEPTH: u64 = 1_000_000;
const CONVERSATIONS: u64 = 1_000;
const SENDER_COUNTS: [usize; 2] = [64, 256];

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// A store under test, by name.
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

/// `senders` pairs of users, one conversation each, opened before timing starts.
async fn pairs(
    messenger: &Messenger,
    senders: usize,
) -> Vec<(UserId, messaging_core::ConversationId)> {
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
        let all_senders = rt.block_on(pairs(&messenger, SENDER_COUNTS[1]));

        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("one_sender", backend.name), |b| {
            let (user, conversation) = all_senders[0];
            b.to_async(&rt).iter(|| {
                let messenger = messenger.clone();
                async move {
                    messenger
                        .send(user, SendMessage::to_conversation(conversation, "hello there"))
                        .await
                        .unwrap()
                }
            });
        });

        for count in SENDER_COUNTS {
            let senders = &all_senders[..count];
            concurrent_senders(&mut group, &rt, &messenger, backend.name, senders);
        }
    }
    group.finish();
}

/// Every sender sends 50 messages in its own conversation, one after another; all senders
/// at once. Batches grow with the number of senders, which is what group commit exploits.
fn concurrent_senders(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &Runtime,
    messenger: &Messenger,
    backend: &str,
    senders: &[(UserId, messaging_core::ConversationId)],
) {
    let per_sender = 50_u64;
    group.throughput(Throughput::Elements(per_sender * senders.len() as u64));
    group.bench_function(BenchmarkId::new(format!("{}_senders", senders.len()), backend), |b| {
        b.to_async(rt).iter_custom(|iters| {
            let messenger = messenger.clone();
            let senders = senders.to_vec();
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

fn history(c: &mut Criterion) {
    let rt = runtime();
    let path = rt.block_on(sqlite_deep_history(DEPTH)).unwrap();
    let store = rt.block_on(open_sqlite(&path, Synchronous::Full)).unwrap();
    let messenger = rt.block_on(Messenger::new(Arc::new(store))).unwrap();
    let (reader, _) = ids::deep_pair();
    let conversation = ids::deep_conversation();
    let mut group = c.benchmark_group("history");
    for (label, query) in [
        ("latest_50", HistoryQuery::default()),
        (
            "before_middle_50",
            HistoryQuery { before_seq: Some(DEPTH / 2), ..HistoryQuery::default() },
        ),
        ("after_start_50", HistoryQuery { after_seq: Some(10), ..HistoryQuery::default() }),
    ] {
        group.bench_function(BenchmarkId::new(label, "sqlite-1M"), |b| {
            b.to_async(&rt).iter(|| {
                let messenger = messenger.clone();
                async move {
                    let page = messenger.history(reader, conversation, query).await.unwrap();
                    assert_eq!(page.messages.len(), 50);
                    page
                }
            });
        });
    }
    group.finish();
}

fn conversations(c: &mut Criterion) {
    let rt = runtime();
    let path = rt.block_on(sqlite_many_conversations(CONVERSATIONS, 4)).unwrap();
    let store = rt.block_on(open_sqlite(&path, Synchronous::Full)).unwrap();
    let messenger = rt.block_on(Messenger::new(Arc::new(store))).unwrap();
    let user = ids::busy_user();
    let middle = rt.block_on(async {
        let mut before = None;
        for _ in 0..25 {
            before = messenger.conversations(user, Some(20), before.as_deref()).await.unwrap().next;
        }
        before
    });
    let mut group = c.benchmark_group("conversations");
    for (label, before) in [("first_page_20_of_1000", None), ("middle_page_20_of_1000", middle)] {
        group.bench_function(BenchmarkId::new(label, "sqlite"), |b| {
            b.to_async(&rt).iter(|| {
                let messenger = messenger.clone();
                let before = before.clone();
                async move {
                    let page =
                        messenger.conversations(user, Some(20), before.as_deref()).await.unwrap();
                    assert_eq!(page.conversations.len(), 20);
                    page
                }
            });
        });
    }
    group.bench_function(BenchmarkId::new("unread_total_1000", "sqlite"), |b| {
        b.to_async(&rt).iter(|| {
            let messenger = messenger.clone();
            async move {
                let unread = messenger.unread(user).await.unwrap();
                assert_eq!(unread.conversations, CONVERSATIONS);
                unread
            }
        });
    });
    group.finish();
}

criterion_group!(benches, append, history, conversations);
criterion_main!(benches);
