//! Cases for stores whose writers can commit out of position order (several writers on one
//! database, e.g. PostgreSQL), run with [`interleaving_tests!`](crate::interleaving_tests).
//! They need [`Fixture::with_commit_hold`]: a write takes its log position and is held
//! before committing while a later write is given the chance to commit first.
//!
//! A store that serialises commits by position (a row lock on the log head) keeps the
//! later write waiting: that is correct, and the cases then check the same guarantees in
//! the serial order. A store that lets the later write commit first must still never let
//! the feed, a hello cursor or a pushed cursor pass the held position before it commits.
//!
//! "Given the chance" is a bounded wait ([`OVERTAKE_WINDOW`]) for the later write to
//! finish: there is no signal for "this write is blocked on a lock", so the window is the
//! only way to tell a serialising store from a slow one; either outcome is checked.

use std::sync::Arc;
use std::time::Duration;

use crate::fanout::Push;
use crate::model::{Cursor, LoggedEvent};
use crate::testkit::HeldCommit;
use crate::testkit::support::{
    Must, assert_ascending, carried, events_until, history_seqs, log_of, open, positions, sync_all,
    two_users,
};
use crate::testkit::{FeedRecorder, Fixture, PUSH_TIMEOUT};
use crate::{Conversation, Message, UserId};
use crate::{Messenger, SendMessage};

/// How long a later write is given to commit while an earlier one is held.
pub const OVERTAKE_WINDOW: Duration = Duration::from_millis(300);

struct Race {
    held_position: u64,
    first: tokio::task::JoinHandle<Message>,
    /// The later write: finished within the window, or still running.
    second: Result<Message, tokio::task::JoinHandle<Message>>,
    held: HeldCommit,
    overtook: bool,
}

/// Starts a held write (alice in `c1`) and, once it has its position, a later write (bob
/// in `c2`), which gets [`OVERTAKE_WINDOW`] to commit first.
async fn race(
    fx: &Fixture,
    m: &Messenger,
    alice: UserId,
    bob: UserId,
    c1: &Conversation,
    c2: &Conversation,
) -> Race {
    let mut held = fx.commit_hold().hold_next_write().await.must("hold_next_write");
    let first = tokio::spawn({
        let m = m.clone();
        let to = SendMessage::to_conversation(c1.id, "held back");
        async move { m.send(alice, to).await.must("the held send").message }
    });
    let held_position = tokio::time::timeout(PUSH_TIMEOUT, held.positioned())
        .await
        .expect("the held write takes its position")
        .must("positioned");
    let mut second = tokio::spawn({
        let m = m.clone();
        let to = SendMessage::to_conversation(c2.id, "overtaking");
        async move { m.send(bob, to).await.must("the overtaking send").message }
    });
    let second = match tokio::time::timeout(OVERTAKE_WINDOW, &mut second).await {
        Ok(joined) => Ok(joined.expect("the overtaking task")),
        Err(_) => Err(second),
    };
    let overtook = second.is_ok();
    if overtook {
        assert!(!first.is_finished(), "the held write does not finish while held");
    }
    Race { held_position, first, second, held, overtook }
}

impl Race {
    async fn finish(self) -> (Message, Message) {
        self.held.release();
        let first = tokio::time::timeout(PUSH_TIMEOUT, self.first)
            .await
            .expect("the held write ends")
            .expect("task");
        let second = match self.second {
            Ok(done) => done,
            Err(running) => tokio::time::timeout(PUSH_TIMEOUT, running)
                .await
                .expect("the later write ends")
                .expect("task"),
        };
        (first, second)
    }
}

/// While a write holds an earlier position, a later commit must not become visible
/// through the feed or a hello cursor; after the release, `sync` from the cursor before
/// both returns both, in position order, and a session opened during the hold sees each
/// event once through its `sync` and its pushes; the feed stays dense and ordered.
pub async fn sync_skips_nothing_when_commits_land_out_of_order(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let mut watcher = m.connect(bob).await.must("connect");
    let c1 = open(&m, alice, bob, Some("one")).await;
    let c2 = open(&m, alice, bob, Some("two")).await;
    let recorder = Arc::new(FeedRecorder::default());
    fx.store.attach_feed(recorder.clone()).await.must("attach_feed");
    let before = Cursor::at(fx.store.head().await.must("head"));
    events_until(&mut watcher, before.position(), "settle").await;

    let race = race(&fx, &m, alice, bob, &c1, &c2).await;
    let p = race.held_position;
    assert_eq!(p, before.position() + 1, "the held write takes the next position");
    let during = m.connect(bob).await.must("connect during the hold");
    assert!(
        during.cursor().position() < p,
        "a hello cursor never passes an uncommitted position (hello at {}, held {p}, later write {})",
        during.cursor().position(),
        if race.overtook { "committed" } else { "waiting" }
    );
    let (early, _) = sync_all(&during, before, 1).await;
    assert!(early.iter().all(|e| e.position < p), "sync never returns past a held position");
    assert!(
        recorder.events().iter().all(|e| e.logged.position < p),
        "the feed never passes an uncommitted position"
    );

    let (held, later) = race.finish().await;
    let head = fx.store.head().await.must("head");
    let log = log_of(fx.store.as_ref(), bob).await;
    let after_before: Vec<&LoggedEvent> =
        log.iter().filter(|e| e.position > before.position()).collect();
    let ids: Vec<_> = after_before.iter().map(|e| carried(&e.event).id).collect();
    assert_eq!(ids.len(), 2, "both writes are logged");
    assert!(ids.contains(&held.id) && ids.contains(&later.id));

    let mut during = during;
    let (mut seen, end) = sync_all(&during, before, 1).await;
    assert_eq!(end, during.cursor());
    if during.cursor().position() < head {
        seen.extend(events_until(&mut during, head, "pushes after the release").await);
    }
    assert_eq!(
        seen.iter().collect::<Vec<_>>(),
        after_before,
        "the session during the hold: each once"
    );

    let after = m.connect(bob).await.must("connect after");
    let (synced, _) = sync_all(&after, before, 1).await;
    let mut synced = synced;
    let mut after = after;
    if after.cursor().position() < head {
        synced.extend(events_until(&mut after, head, "pushes").await);
    }
    assert_eq!(
        synced.iter().collect::<Vec<_>>(),
        after_before,
        "sync from before both returns both"
    );

    assert!(recorder.wait_for(head, PUSH_TIMEOUT).await, "the feed reaches the head");
    let fed: Vec<u64> = recorder.events().iter().map(|e| e.logged.position).collect();
    assert_eq!(
        fed,
        (before.position() + 1..=head).collect::<Vec<_>>(),
        "the feed is dense and ordered"
    );
}

/// A client that keeps the cursor of the last event pushed to it, disconnects while an
/// earlier write is still held, and later syncs from that cursor misses nothing and sees
/// nothing twice.
pub async fn pushed_cursor_resume_skips_nothing_out_of_order(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let c1 = open(&m, alice, bob, Some("one")).await;
    let c2 = open(&m, alice, bob, Some("two")).await;
    let mut client = m.connect(bob).await.must("connect");
    let head = fx.store.head().await.must("head");
    if client.cursor().position() < head {
        events_until(&mut client, head, "settle").await;
    }
    let start = Cursor::at(head);
    let mut kept = start;
    let mut seen: Vec<LoggedEvent> = Vec::new();

    let race = race(&fx, &m, alice, bob, &c1, &c2).await;
    if race.overtook {
        // A store that wrongly publishes the later commit would push it by now.
        if let Ok(Ok(Push::Event(event))) =
            tokio::time::timeout(OVERTAKE_WINDOW, client.recv()).await
        {
            kept = event.get().cursor();
            seen.push(event.get().clone());
        }
    }
    while let Ok(Some(push)) = client.try_recv() {
        if let Push::Event(event) = push {
            kept = event.get().cursor();
            seen.push(event.get().clone());
        }
    }
    assert!(
        seen.iter().all(|e| e.position < race.held_position),
        "nothing past the held position is pushed before it commits: {:?}",
        positions(&seen)
    );
    drop(client);
    let (held, later) = race.finish().await;

    let mut resumed = m.connect(bob).await.must("reconnect");
    let (synced, end) = sync_all(&resumed, kept, 1).await;
    assert_eq!(end, resumed.cursor());
    seen.extend(synced);
    let head = fx.store.head().await.must("head");
    if resumed.cursor().position() < head {
        seen.extend(events_until(&mut resumed, head, "pushes after reconnecting").await);
    }
    assert_ascending(&seen, "pushed before, then synced, then pushed");
    let log = log_of(fx.store.as_ref(), bob).await;
    let want: Vec<LoggedEvent> =
        log.into_iter().filter(|e| e.position > start.position()).collect();
    assert_eq!(seen, want, "every event after the client's cursor exactly once");
    let ids: Vec<_> = seen.iter().map(|e| carried(&e.event).id).collect();
    assert!(ids.contains(&held.id) && ids.contains(&later.id), "both messages arrive");
}

/// Concurrent senders in one conversation through two writers on one database (the
/// fixture's store and its peer store, as two processes): every send succeeds (no deadlock
/// or serialization failure reaches a caller), seqs are 1..=N without gaps, retries with
/// the same key race across the writers yet store one message, and the log holds one
/// `message.created` per message in seq order.
pub async fn concurrent_senders_across_writers(fx: Fixture) {
    const N: u64 = 64;
    let here = fx.messenger().await;
    let there = fx.peer_messenger().await;
    let (alice, bob) = two_users();
    let c = open(&here, alice, bob, None).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..N {
        let m = if i % 2 == 0 { here.clone() } else { there.clone() };
        let sender = if i % 4 < 2 { alice } else { bob };
        tasks.spawn(async move {
            let to = SendMessage::to_conversation(c.id, format!("message {i}"));
            m.send(sender, to.client_msg_id(format!("key-{i}"))).await
        });
        // The same key sent again through the other writer: one message, both answers it.
        if i % 8 == 0 {
            let m = if i % 2 == 0 { there.clone() } else { here.clone() };
            tasks.spawn(async move {
                let to = SendMessage::to_conversation(c.id, format!("message {i}"));
                m.send(sender, to.client_msg_id(format!("key-{i}"))).await
            });
        }
    }
    let mut by_id = std::collections::BTreeMap::new();
    let outcomes = tokio::time::timeout(Duration::from_secs(60), async {
        let mut out = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            out.push(joined.expect("task"));
        }
        out
    })
    .await
    .expect("concurrent senders finish (no deadlock)");
    for outcome in outcomes {
        let message = outcome.must("a concurrent send across writers").message;
        by_id.insert(message.id, message.seq);
    }
    let mut seqs: Vec<u64> = by_id.values().copied().collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=N).collect::<Vec<_>>(), "one message per key, seqs 1..=N gap-free");
    assert_eq!(history_seqs(&there, bob, c.id).await, (1..=N).collect::<Vec<_>>());
    let log = log_of(fx.store.as_ref(), alice).await;
    assert_ascending(&log, "the log");
    let created: Vec<u64> = log
        .iter()
        .filter(|e| e.event.name() == "message.created")
        .map(|e| carried(&e.event).seq)
        .collect();
    assert_eq!(created, (1..=N).collect::<Vec<_>>(), "one event per message, in seq order");
}
