#![allow(clippy::expect_used, clippy::panic, reason = "tests")]

//! Durable consumers across instances: several `PgStore` objects on one database (each one
//! instance) run the same named consumer; one holds it at a time, and when it dies another
//! takes over from the last committed position, within the lease, losing nothing. Leases
//! are kept on the database server's clock.
//!
//! Needs `MESSAGING_PG_URL`; skipped with one line without it, unless
//! `MESSAGING_PG_REQUIRED=1` (set by `scripts/test.sh` and CI), which makes it fail.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use messaging_core::id::UserId;
use messaging_core::store::ConsumerLog;
use messaging_core::{ConsumerOptions, ConsumerStart, Error, Messenger, SendMessage};
use messaging_store_pg::{PgOptions, PgStore};
use sqlx::Row;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;

async fn store(url: &str) -> Arc<PgStore> {
    let options = PgOptions::default().max_connections(6).migrate(false);
    Arc::new(PgStore::connect(url, options).await.expect("connect"))
}

/// What an instance delivered: its name and the positions of one batch.
type Delivered = (&'static str, Vec<u64>);

/// One instance's delivery loop: every batch it gets goes to `out`, then is committed; a
/// lost lease (`conflict`) sends it back to waiting. Runs until aborted (a crash: the
/// consumer is dropped without committing or releasing).
fn deliver(
    instance: &'static str,
    messenger: &Messenger,
    out: mpsc::UnboundedSender<Delivered>,
) -> JoinHandle<()> {
    let options = ConsumerOptions::default().start(ConsumerStart::Beginning).lease(LEASE).batch(5);
    let mut consumer = messenger.consumer("webhooks", options).expect("consumer");
    tokio::spawn(async move {
        loop {
            let batch = consumer.next_batch().await.expect("next_batch");
            let positions: Vec<u64> = batch.iter().map(|e| e.logged.position).collect();
            let last = positions.last().copied().unwrap_or_default();
            let _ = out.send((instance, positions));
            match consumer.commit(last).await {
                Ok(()) | Err(Error::Conflict(_)) => {}
                Err(error) => panic!("{instance}: commit failed: {error}"),
            }
        }
    })
}

const LEASE: Duration = Duration::from_secs(2);

/// Reads deliveries until every position up to `head` was delivered at least once.
async fn until_delivered(
    rx: &mut mpsc::UnboundedReceiver<Delivered>,
    seen: &mut BTreeSet<u64>,
    head: u64,
    log: &mut Vec<Delivered>,
) {
    let wait = async {
        while !(1..=head).all(|p| seen.contains(&p)) {
            let delivered = rx.recv().await.expect("a delivery loop ended");
            seen.extend(delivered.1.iter().copied());
            log.push(delivered);
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .unwrap_or_else(|_| panic!("not every position up to {head} was delivered: {log:?}"));
}

/// Two instances run the consumer: one delivers everything, in order, once, while the
/// other waits (the holder renews its lease while idle); when the holder dies (its task
/// aborted, its store closed) the other takes over within the lease and goes on from the
/// last commit, so every event is delivered, the events after the death included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_delivers_and_another_takes_over_when_it_dies() {
    let Some(url) = support::fresh_database().await else { return };
    let (store_a, store_b) = (store(&url).await, store(&url).await);
    let a = Messenger::new(store_a.clone()).await.expect("messenger a");
    let b = Messenger::new(store_b.clone()).await.expect("messenger b");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut loops = [(deliver("a", &a, tx.clone()), "a"), (deliver("b", &b, tx), "b")];

    let (alice, bob) = (UserId::new(), UserId::new());
    let first = a.send(alice, SendMessage::to_peer(bob, None, "m0")).await.expect("send");
    let c = first.message.conversation_id;
    for i in 1..20 {
        let sender = if i % 2 == 0 { &a } else { &b };
        sender.send(alice, SendMessage::to_conversation(c, format!("m{i}"))).await.expect("send");
    }
    // Idle for longer than the lease: the holder keeps it by renewing while it waits.
    tokio::time::sleep(LEASE * 2).await;
    b.send(bob, SendMessage::to_conversation(c, "after a pause")).await.expect("send");
    let (mut seen, mut log) = (BTreeSet::new(), Vec::new());
    until_delivered(&mut rx, &mut seen, 22, &mut log).await;
    let holder = log[0].0;
    assert!(log.iter().all(|(instance, _)| *instance == holder), "one holder: {log:?}");
    let positions: Vec<u64> = log.iter().flat_map(|(_, p)| p.iter().copied()).collect();
    assert_eq!(positions, (1..=22).collect::<Vec<u64>>(), "in order, once: {log:?}");

    // Its last commit landed (the loop commits after handing a batch over).
    let committed = support::eventually(Duration::from_secs(10), || async {
        let row = sqlx::query("SELECT position FROM messaging.consumers WHERE name = 'webhooks'")
            .fetch_one(store_a.pool())
            .await
            .expect("the consumer's row");
        row.get::<i64, _>(0) == 22
    })
    .await;
    assert!(committed, "the holder committed what it delivered");

    // The holder dies without releasing; the other instance takes over within the lease.
    let (dead, survivor, survivor_store) = if holder == "a" {
        (&mut loops[0], b.clone(), store_b.clone())
    } else {
        (&mut loops[1], a.clone(), store_a.clone())
    };
    dead.0.abort();
    let _ = (&mut dead.0).await;
    let died = tokio::time::Instant::now();
    if holder == "a" {
        store_a.close().await.expect("close a");
    } else {
        store_b.close().await.expect("close b");
    }
    for i in 0..5 {
        survivor
            .send(bob, SendMessage::to_conversation(c, format!("after the death {i}")))
            .await
            .expect("send on the survivor");
    }
    let before = log.len();
    until_delivered(&mut rx, &mut seen, 27, &mut log).await;
    assert!(died.elapsed() < LEASE * 5, "taken over within the lease: {:?}", died.elapsed());
    let after = &log[before..];
    assert!(after.iter().all(|(instance, _)| *instance != holder), "{log:?}");
    assert_eq!(after.first().and_then(|(_, p)| p.first()).copied(), Some(23), "{log:?}");
    assert_eq!(
        survivor_store.claim_consumer("webhooks", Uuid::now_v7(), LEASE, 0).await.expect("claim"),
        None,
        "the survivor holds it now"
    );
    for (task, _) in &loops {
        task.abort();
    }
    drop((a, b));
    survivor_store.close().await.expect("close");
}

/// Claims racing from two instances for a free consumer: exactly one holder gets it, and
/// the others' commits store nothing; the lease ends on the database server's clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_claims_on_two_instances_make_one_holder() {
    let Some(url) = support::fresh_database().await else { return };
    let (a, b) = (store(&url).await, store(&url).await);
    let lease = Duration::from_secs(30);
    let holders: Vec<Uuid> = (0..16).map(|_| Uuid::now_v7()).collect();
    let mut claims = tokio::task::JoinSet::new();
    for (i, holder) in holders.iter().copied().enumerate() {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        claims.spawn(async move {
            (holder, store.claim_consumer("race", holder, lease, 7).await.expect("claim"))
        });
    }
    let mut won = Vec::new();
    while let Some(claimed) = claims.join_next().await {
        let (holder, position) = claimed.expect("a claim task");
        if let Some(position) = position {
            assert_eq!(position, 7, "the start, stored once");
            won.push(holder);
        }
    }
    assert_eq!(won.len(), 1, "exactly one holder: {won:?}");
    let winner = won[0];
    for holder in holders.iter().filter(|h| **h != winner) {
        assert!(!a.commit_consumer("race", *holder, 9, lease).await.expect("commit"));
    }
    assert!(b.commit_consumer("race", winner, 8, lease).await.expect("the holder commits"));
    assert_eq!(a.claim_consumer("race", winner, lease, 0).await.expect("renew"), Some(8));

    let row = sqlx::query(
        "SELECT holder, EXTRACT(EPOCH FROM lease_until - clock_timestamp())::float8 \
         FROM messaging.consumers WHERE name = 'race'",
    )
    .fetch_one(a.pool())
    .await
    .expect("the row");
    let (holder, left): (Uuid, f64) = (row.get(0), row.get(1));
    assert_eq!(holder, winner);
    assert!(left > 25.0 && left <= 30.0, "the lease ends 30 s after the claim: {left}");
    a.release_consumer("race", winner).await.expect("release");
    let next = holders.iter().copied().find(|h| *h != winner).expect("another holder");
    assert_eq!(b.claim_consumer("race", next, lease, 0).await.expect("claim"), Some(8));
    a.close().await.expect("close");
    b.close().await.expect("close");
}
