//! The store while PostgreSQL is down: the cluster of `scripts/pg.sh` is stopped (like a
//! crash, `$MESSAGING_PG_CONTROL stop`) and started again on the same port.
//!
//! Stopping the cluster affects every database on it, so this test binary is the only one
//! allowed to do it, and its tests hold [`CLUSTER`] so that they never overlap (cargo runs
//! test binaries one after another). A [`Stopped`] guard starts the cluster again even when
//! a test fails halfway. Without `MESSAGING_PG_CONTROL` the tests are skipped, unless
//! `MESSAGING_PG_REQUIRED=1`, which makes them fail.

#![allow(clippy::expect_used, clippy::panic, reason = "tests: failing loudly is the point")]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use messaging_core::id::{SessionId, UserId};
use messaging_core::presence::Presence;
use messaging_core::store::{HistoryWindow, MessageStore, StoreHealth};
use messaging_core::{Limits, Messenger};
use messaging_store_pg::presence::PresenceOptions;
use messaging_store_pg::{PgOptions, PgStore};

/// Held by every test of this binary while it runs.
static CLUSTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The cluster, stopped; started again when dropped (also on a failed assertion).
struct Stopped {
    script: String,
    running: bool,
}

impl Stopped {
    /// Stops the cluster. A checkpoint first: the test cluster commits asynchronously
    /// (`synchronous_commit = off`), and a crash would lose the last commits of the setup.
    async fn stop(script: &str, url: &str) -> Self {
        let admin = sqlx::PgPool::connect(url).await.expect("admin pool");
        sqlx::query("CHECKPOINT").execute(&admin).await.expect("checkpoint");
        admin.close().await;
        support::run_control(script, "stop");
        Self { script: script.to_owned(), running: false }
    }

    fn start(&mut self) {
        support::run_control(&self.script, "start");
        self.running = true;
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if !self.running {
            let _ = std::process::Command::new(&self.script).arg("start").status();
        }
    }
}

/// A fresh database and the control script, or `None` to skip.
async fn setup() -> Option<(String, String)> {
    let script = support::control()?;
    let url = support::fresh_database().await?;
    Some((url, script))
}

/// With PostgreSQL down, every write is answered (`unavailable`) well within the 5 s
/// answer bound, all at once rather than one after another; the probe fails; a write whose
/// caller gave up is never stored; and once PostgreSQL is back the same store object
/// commits again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_answered_while_the_database_is_down_and_resume_after() {
    let _cluster = CLUSTER.lock().await;
    let Some((url, script)) = setup().await else { return };
    let store = Arc::new(
        PgStore::connect(&url, PgOptions::default().max_connections(8).migrate(false))
            .await
            .expect("connect"),
    );
    let (alice, bob) = (UserId::new(), UserId::new());
    let conversation = support::open_pair(&store, alice, bob).await;
    store.append(support::new_message(conversation, alice, "before")).await.expect("append");

    let mut stopped = Stopped::stop(&script, &url).await;
    let senders: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let answer = tokio::time::timeout(
                    Duration::from_secs(60),
                    store.append(support::new_message(conversation, alice, &format!("down {i}"))),
                )
                .await
                .expect("an answer at all");
                (answer, started.elapsed())
            })
        })
        .collect();
    // Queued behind the senders; its caller gives up before the writer gets to it.
    let abandoned = support::new_message(conversation, alice, "abandoned");
    let abandoned_id = abandoned.id;
    if let Ok(answer) =
        tokio::time::timeout(Duration::from_millis(200), store.append(abandoned)).await
    {
        assert!(answer.is_err(), "nothing can commit while the database is down");
    }
    for sender in senders {
        let (answer, took) = sender.await.expect("sender task");
        let error = answer.expect_err("nothing can commit while the database is down");
        assert_eq!(error.code(), "unavailable", "{error}");
        assert!(error.is_backend(), "the driver's error is kept as the source: {error}");
        assert!(took < Duration::from_secs(6), "answered within the answer bound: {took:?}");
    }
    let probe = tokio::time::timeout(Duration::from_secs(60), store.probe_commit())
        .await
        .expect("the probe is answered");
    assert_eq!(probe.expect_err("the probe cannot commit").code(), "unavailable");

    stopped.start();
    let before = store.last_commit();
    let resumed = support::eventually(Duration::from_secs(20), || async {
        store.append(support::new_message(conversation, alice, "after")).await.is_ok()
    })
    .await;
    assert!(resumed, "the same store object commits again once PostgreSQL is back");
    assert!(store.last_commit() > before, "the commit is recorded");
    store.probe_commit().await.expect("the probe commits again");
    // Everything queued before has been taken by now (the queue is first in, first out).
    assert_eq!(store.message(abandoned_id).await.expect("read"), None, "never stored late");
    let stored = store.history(conversation, HistoryWindow::Latest, 100).await.expect("history");
    assert!(stored.iter().all(|m| !m.body.starts_with("down")), "failed writes left nothing");
}

/// A session opened while the database is down fails and leaves nothing behind: once the
/// database is back (and even after this instance is swept and registers again with the
/// users it holds sessions for), the user is not shown online on any instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_session_open_leaves_no_phantom_presence() {
    let _cluster = CLUSTER.lock().await;
    let Some((url, script)) = setup().await else { return };
    let options = PgOptions::default().max_connections(6).migrate(false);
    let timing =
        PresenceOptions::default().timing(Duration::from_millis(200), Duration::from_secs(1));
    let mut instances = Vec::new();
    for _ in 0..2 {
        let store = PgStore::connect(&url, options.clone()).await.expect("connect");
        let fanout = store.fanout(Limits::default().max_queue_frames);
        let presence = store.presence(fanout.clone(), timing).await.expect("presence");
        let messenger = Messenger::builder(Arc::new(store))
            .fanout(fanout)
            .presence(presence.clone())
            .build()
            .await
            .expect("messenger");
        instances.push((messenger, presence));
    }
    let (alice, bob) = (UserId::new(), UserId::new());
    instances[0].0.open(alice, bob, None).await.expect("open");

    let mut stopped = Stopped::stop(&script, &url).await;
    let opened = tokio::time::timeout(Duration::from_secs(30), instances[0].0.connect(alice))
        .await
        .expect("connect is answered");
    assert!(opened.is_err(), "a session cannot open while the database is down");
    // And one whose caller gives up halfway (if it is still waiting after 100 ms).
    let _ = tokio::time::timeout(
        Duration::from_millis(100),
        instances[0].1.session_opened(alice, SessionId::new()),
    )
    .await;
    stopped.start();

    // As if the sweeper of another instance had declared both dead meanwhile: each
    // registers again with the users it holds sessions for.
    let admin = sqlx::PgPool::connect(&url).await.expect("admin pool");
    sqlx::query("DELETE FROM messaging.instances").execute(&admin).await.expect("sweep");
    let registered = support::eventually(Duration::from_secs(20), || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM messaging.instances")
            .fetch_one(&admin)
            .await
            .is_ok_and(|n| n == 2)
    })
    .await;
    assert!(registered, "both instances register again");
    // A few more heartbeats (each also reconciles the users whose write failed).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM messaging.presence WHERE user_id = $1")
            .bind(alice.as_uuid())
            .fetch_one(&admin)
            .await
            .expect("presence rows");
    assert_eq!(rows, 0, "no presence row for alice");
    for (messenger, _) in &instances {
        let status = messenger.presence(bob, &[alice]).await.expect("presence");
        assert!(!status[0].online, "alice is not shown online");
    }
    // Her sessions count normally afterwards.
    let session = instances[1].0.connect(alice).await.expect("connect");
    assert!(instances[0].0.presence(bob, &[alice]).await.expect("presence")[0].online);
    session.close().await.expect("close");
    assert!(!instances[0].0.presence(bob, &[alice]).await.expect("presence")[0].online);
}
