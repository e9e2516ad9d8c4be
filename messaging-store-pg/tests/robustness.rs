//! Hardening of the PostgreSQL store (issue #12): statements bounded by
//! `statement_timeout`, writes whose caller left never committed late, blocks bounded per
//! user, log events of unknown kinds skipped, answers about blocks and revocations that
//! expire, revocations read again after the listener reconnects, and a listener that
//! notices a dead connection and listens again.
//!
//! Each case runs on a fresh database cloned from the migrated template (see `support`).

#![allow(clippy::expect_used, clippy::panic, reason = "tests: failing loudly is the point")]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use messaging_core::fanout::Push;
use messaging_core::id::{ConversationId, UserId};
use messaging_core::model::{Event, Signal, TypingState};
use messaging_core::store::{EventLog, MessageStore, SocialStore, StoreHealth};
use messaging_core::time::Timestamp;
use messaging_core::{Limits, Messenger, SendMessage, Session};
use messaging_store_pg::{PgOptions, PgStore};
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn options() -> PgOptions {
    PgOptions::default().max_connections(6).migrate(false)
}

async fn admin(url: &str) -> PgPool {
    PgPool::connect(url).await.expect("admin pool")
}

/// Backends of this database waiting for a lock (heavyweight or advisory).
async fn lock_waiters(admin: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
    .fetch_one(admin)
    .await
    .expect("pg_stat_activity")
}

/// Listening backends of this database.
async fn listeners(admin: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .fetch_one(admin)
    .await
    .expect("pg_stat_activity")
}

async fn open(store: &PgStore, a: UserId, b: UserId) -> ConversationId {
    support::open_pair(store, a, b).await
}

// ------------------------------------------------------------------- statement timeout

/// A statement past `statement_timeout` is cancelled by the server: a slow query on the
/// store's pool fails with 57014, a read or a write stuck behind a lock is answered
/// `unavailable` (a backend error, no backend text in its public message), and the pool
/// serves the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_past_the_timeout_are_cancelled_and_the_pool_goes_on() {
    let Some(url) = support::fresh_database().await else { return };
    let store = PgStore::connect(&url, options().statement_timeout(Duration::from_millis(300)))
        .await
        .expect("connect");
    let slow = tokio::time::timeout(
        Duration::from_secs(60),
        sqlx::query("SELECT pg_sleep(30)").execute(store.pool()),
    )
    .await
    .expect("the slow statement ends")
    .expect_err("cancelled by statement_timeout");
    assert_eq!(slow.as_database_error().and_then(|e| e.code()).as_deref(), Some("57014"));
    store.head().await.expect("the pool still serves");

    let admin = admin(&url).await;
    let mut lock = admin.begin().await.expect("begin");
    sqlx::query("LOCK TABLE messaging.log_head, messaging.probe IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .expect("lock");
    let read = tokio::time::timeout(Duration::from_secs(60), store.head())
        .await
        .expect("the read is answered while the lock is held")
        .expect_err("the read cannot finish behind the lock");
    assert_eq!(read.code(), "unavailable", "{read}");
    assert!(read.is_backend(), "{read}");
    assert!(!read.public_message().contains("statement"), "{}", read.public_message());
    let write = tokio::time::timeout(Duration::from_secs(60), store.probe_commit())
        .await
        .expect("the write is answered while the lock is held")
        .expect_err("the write cannot finish behind the lock");
    assert_eq!(write.code(), "unavailable", "{write}");
    lock.rollback().await.expect("rollback");
    store.head().await.expect("reads go on");
    store.probe_commit().await.expect("writes go on");
}

// ------------------------------------------------------------------- abandoned writes

/// A write whose caller stopped waiting before the writer took it is dropped, never
/// committed once the writer gets to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_caller_left_is_never_committed() {
    let Some(url) = support::fresh_database().await else { return };
    let store = Arc::new(
        PgStore::connect(&url, options().writers(1).statement_timeout(Duration::from_secs(60)))
            .await
            .expect("connect"),
    );
    let alice = UserId::new();
    let conversation = open(&store, alice, UserId::new()).await;
    let admin = admin(&url).await;
    let mut lock = admin.begin().await.expect("begin");
    sqlx::query("LOCK TABLE messaging.log_head IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .expect("lock");
    // The one writer is busy with this append until the lock goes.
    let first = tokio::spawn({
        let store = store.clone();
        async move { store.append(support::new_message(conversation, alice, "first")).await }
    });
    let waiting =
        support::eventually(Duration::from_secs(20), || async { lock_waiters(&admin).await >= 1 })
            .await;
    assert!(waiting, "the writer waits for the lock");
    let abandoned = support::new_message(conversation, alice, "abandoned");
    let id = abandoned.id;
    let answered =
        tokio::time::timeout(Duration::from_millis(200), store.append(abandoned)).await.is_ok();
    assert!(!answered, "the writer is busy: the caller gives up first");
    lock.commit().await.expect("release");
    first.await.expect("task").expect("the first append commits");
    // After the abandoned job in the queue: once it commits, that job was taken.
    store.probe_commit().await.expect("probe");
    store.append(support::new_message(conversation, alice, "later")).await.expect("append");
    assert_eq!(store.message(id).await.expect("read"), None, "never committed late");
}

// ------------------------------------------------------------------------------ blocks

/// `block` past `max_blocks` is a conflict; the count and the insert are one step for
/// every writer on the database: of two blocks racing at limit - 1 (from two store
/// objects, or from one), exactly one passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_blocks_cannot_pass_the_bound_together() {
    let Some(url) = support::fresh_database().await else { return };
    // Statements wait for the test's lock below for up to 3 s: no statement timeout then.
    let patient = options().statement_timeout(Duration::from_secs(60));
    let a = Arc::new(PgStore::connect(&url, patient.clone()).await.expect("connect"));
    let b = Arc::new(PgStore::connect(&url, patient).await.expect("connect"));
    let admin = admin(&url).await;
    let me = UserId::new();
    let max = 3;
    for _ in 0..max - 1 {
        a.block(me, UserId::new(), max).await.expect("within the limit");
    }
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM messaging.blocks WHERE blocker = $1")
            .bind(me.as_uuid())
            .fetch_one(&admin)
            .await
            .expect("count")
    };

    for (first, second) in [(a.clone(), b.clone()), (a.clone(), a.clone())] {
        // Both start while inserts into `blocks` wait for this lock: without one step for
        // count and insert, both would count limit - 1 and both insert.
        let mut lock = admin.begin().await.expect("begin");
        sqlx::query("LOCK TABLE messaging.blocks IN SHARE MODE")
            .execute(&mut *lock)
            .await
            .expect("lock");
        let (x, y) = (UserId::new(), UserId::new());
        let one = tokio::spawn(async move { first.block(me, x, max).await });
        let two = tokio::spawn(async move { second.block(me, y, max).await });
        // Two writers (a and b) wait on locks; one store's writer may have both in a batch.
        let _ = support::eventually(Duration::from_secs(3), || async {
            lock_waiters(&admin).await >= 2
        })
        .await;
        lock.commit().await.expect("release");
        let outcomes = [one.await.expect("task"), two.await.expect("task")];
        let passed = outcomes.iter().filter(|o| o.is_ok()).count();
        assert_eq!(passed, 1, "exactly one block passes: {outcomes:?}");
        let refused = outcomes.iter().find_map(|o| o.as_ref().err()).expect("one refused");
        assert_eq!(refused.code(), "conflict", "{refused}");
        assert_eq!(count().await, i64::from(u8::try_from(max).expect("small")), "at the limit");
        // Back to limit - 1 for the next round.
        let last: uuid::Uuid =
            sqlx::query_scalar("SELECT blocked FROM messaging.blocks WHERE blocker = $1 LIMIT 1")
                .bind(me.as_uuid())
                .fetch_one(&admin)
                .await
                .expect("a block");
        a.unblock(me, UserId::from_uuid(last)).await.expect("unblock");
    }
    // Re-blocking an existing block at the limit is fine.
    let existing = UserId::new();
    a.block(me, existing, max).await.expect("the last free place");
    a.block(me, existing, max).await.expect("re-blocking at the limit");
    assert_eq!(
        a.block(me, UserId::new(), max).await.expect_err("past the limit").code(),
        "conflict"
    );
}

// ------------------------------------------------------------------ unknown event kinds

async fn expect_message(session: &mut Session, body: &str) {
    match support::next_event(session).await.event {
        Event::MessageCreated(m) => assert_eq!(m.body, body),
        other => panic!("expected message {body:?}, got {}", other.name()),
    }
}

/// A log event of a kind this version does not know (written by a newer version on the
/// same database) is skipped: live delivery goes on past it, from another instance and
/// from this one, and `read_events` returns the known events around it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_unknown_kinds_are_skipped() {
    let Some(url) = support::fresh_database().await else { return };
    let store_a = Arc::new(PgStore::connect(&url, options()).await.expect("connect"));
    let store_b = Arc::new(PgStore::connect(&url, options()).await.expect("connect"));
    let a = Messenger::new(store_a.clone()).await.expect("messenger");
    let b = Messenger::new(store_b.clone()).await.expect("messenger");
    let (alice, bob) = (UserId::new(), UserId::new());
    let mut alice_on_a = a.connect(alice).await.expect("connect");
    let first = b.send(bob, SendMessage::to_peer(alice, None, "one")).await.expect("send").message;
    assert!(matches!(
        support::next_event(&mut alice_on_a).await.event,
        Event::ConversationCreated(_)
    ));
    expect_message(&mut alice_on_a, "one").await;

    let admin = admin(&url).await;
    sqlx::query(
        "WITH h AS (UPDATE messaging.log_head SET position = position + 1 RETURNING position), \
         e AS (INSERT INTO messaging.events (position, kind, conversation_id, audience) \
               SELECT position, 99, $1, ARRAY[$2::uuid, $3::uuid] FROM h RETURNING position) \
         INSERT INTO messaging.event_audience (user_id, position) \
         SELECT u, position FROM e, UNNEST(ARRAY[$2::uuid, $3::uuid]) AS u",
    )
    .bind(first.conversation_id.as_uuid())
    .bind(alice.as_uuid())
    .bind(bob.as_uuid())
    .execute(&admin)
    .await
    .expect("an event of an unknown kind");

    b.send(bob, SendMessage::to_conversation(first.conversation_id, "two")).await.expect("send");
    expect_message(&mut alice_on_a, "two").await;
    a.send(alice, SendMessage::to_conversation(first.conversation_id, "three"))
        .await
        .expect("send");
    expect_message(&mut alice_on_a, "three").await;

    let head = store_a.head().await.expect("head");
    let events = store_a.read_events(alice, 0, head, 100).await.expect("read_events");
    let names: Vec<&str> = events.iter().map(|e| e.event.name()).collect();
    assert_eq!(
        names,
        ["conversation.created", "message.created", "message.created", "message.created"],
        "the known events, the unknown one skipped"
    );
    assert_eq!(events.len() + 1, usize::try_from(head).expect("small"), "one position skipped");
}

// ------------------------------------------------------------------------- block cache

/// An answer about blocks is kept at most `block_cache_ttl`: a block written without a
/// notification (here by hand in SQL) is enforced once the kept answer expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_answers_about_blocks_expire() {
    let Some(url) = support::fresh_database().await else { return };
    let store = PgStore::connect(&url, options().block_cache_ttl(Duration::from_secs(1)))
        .await
        .expect("connect");
    let m = Messenger::new(Arc::new(store)).await.expect("messenger");
    let admin = admin(&url).await;
    let (alice, bob) = (UserId::new(), UserId::new());
    let c = m.open(alice, bob, None).await.expect("open").conversation;
    let _bob = m.connect(bob).await.expect("connect");
    // Answers are kept only while the listener listens.
    let listening =
        support::eventually(Duration::from_secs(10), || async { listeners(&admin).await >= 1 })
            .await;
    assert!(listening, "the listener is up");
    for _ in 0..3 {
        m.send(bob, SendMessage::to_conversation(c.id, "allowed")).await.expect("allowed");
    }
    sqlx::query("INSERT INTO messaging.blocks (blocker, blocked) VALUES ($1, $2)")
        .bind(alice.as_uuid())
        .bind(bob.as_uuid())
        .execute(&admin)
        .await
        .expect("a block nobody was told about");
    let refused = support::eventually(Duration::from_secs(10), || async {
        match m.send(bob, SendMessage::to_conversation(c.id, "after")).await {
            Err(e) if e.code() == "forbidden" => true,
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => false,
        }
    })
    .await;
    assert!(refused, "the block is enforced once the kept answer expired");
}

// -------------------------------------------------------------------- revocation cache

/// Writes a revocation of `user` by hand, as nothing of this crate would: no notification.
async fn revoke_silently(admin: &PgPool, user: UserId) {
    sqlx::query("INSERT INTO messaging.revocations (user_id, at) VALUES ($1, $2)")
        .bind(user.as_uuid())
        .bind(Timestamp::now().as_millis())
        .execute(admin)
        .await
        .expect("a revocation nobody was told about");
}

/// Whether `user`'s tokens without `iat` are refused on `m` within `within`.
async fn refused_within(m: &Messenger, user: UserId, within: Duration) -> bool {
    support::eventually(within, || async {
        !m.token_accepted(user, None).await.expect("token_accepted")
    })
    .await
}

/// An answer about a revocation is kept (a revocation written without a notification is
/// not seen at once), at most `revocation_cache_ttl`: then the revocation is seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_answers_about_revocations_expire() {
    let Some(url) = support::fresh_database().await else { return };
    let store = PgStore::connect(&url, options().revocation_cache_ttl(Duration::from_secs(3)))
        .await
        .expect("connect");
    let m = Messenger::new(Arc::new(store)).await.expect("messenger");
    let admin = admin(&url).await;
    let alice = UserId::new();
    let _alice = m.connect(alice).await.expect("connect");
    // Answers are kept only while the listener listens.
    support::wait_for_listeners(&admin, 1).await;
    assert!(m.token_accepted(alice, None).await.expect("token_accepted"), "not revoked");
    revoke_silently(&admin, alice).await;
    assert!(
        m.token_accepted(alice, None).await.expect("token_accepted"),
        "the kept answer serves until it expires (or a notification says otherwise)"
    );
    assert!(
        refused_within(&m, alice, Duration::from_secs(15)).await,
        "the revocation is seen once the kept answer expired"
    );
}

/// A revocation whose notification this instance could not hear (written while its
/// listener was gone) is seen once the listener is back, long before the answers' time to
/// live: the cache is emptied when the listener stops and again when it listens, so the
/// heartbeat's check of a session goes to the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_are_read_again_after_the_listener_reconnects() {
    let Some(url) = support::fresh_database().await else { return };
    let long = Duration::from_secs(600);
    let store =
        PgStore::connect(&url, options().revocation_cache_ttl(long)).await.expect("connect");
    let m = Messenger::new(Arc::new(store)).await.expect("messenger");
    let admin = admin(&url).await;
    let alice = UserId::new();
    let _alice = m.connect(alice).await.expect("connect");
    support::wait_for_listeners(&admin, 1).await;
    assert!(m.token_accepted(alice, None).await.expect("token_accepted"), "kept: not revoked");

    assert_eq!(support::terminate_listeners(&admin).await, [true], "the listener");
    revoke_silently(&admin, alice).await;
    assert!(
        refused_within(&m, alice, Duration::from_secs(10)).await,
        "read from the database again once the listener was lost"
    );
    support::wait_for_listeners(&admin, 1).await;
    assert!(!m.token_accepted(alice, None).await.expect("token_accepted"), "and after");
}

// --------------------------------------------------------------------------- listener

async fn instance_with_signals(url: &str, options: PgOptions) -> Messenger {
    let store = PgStore::connect(url, options).await.expect("connect");
    let fanout = store.fanout(Limits::default().max_queue_frames);
    Messenger::builder(Arc::new(store)).fanout(fanout).build().await.expect("messenger")
}

/// Whether a typing signal from `from` (on `sender`) reaches `session` within 500 ms;
/// `state` alternates so that no signal is thinned as a repeat.
async fn typing_crosses(
    sender: &Messenger,
    from: UserId,
    conversation: ConversationId,
    session: &mut Session,
    state: TypingState,
) -> bool {
    sender.typing(from, conversation, state).await.expect("typing");
    let until = tokio::time::Instant::now() + Duration::from_millis(500);
    while let Ok(Ok(push)) = tokio::time::timeout_at(until, session.recv()).await {
        if let Push::Signal(signal) = push
            && let Signal::Typing { user_id, state: got, .. } = signal.get()
            && *user_id == from
            && *got == state
        {
            return true;
        }
    }
    false
}

/// Typing signals from `b` reach alice's session on `a` again within 20 s.
async fn signals_cross_again(
    a_session: &mut Session,
    b: &Messenger,
    bob: UserId,
    conversation: ConversationId,
) -> bool {
    let until = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut state = TypingState::Started;
    while tokio::time::Instant::now() < until {
        if typing_crosses(b, bob, conversation, a_session, state).await {
            return true;
        }
        state = match state {
            TypingState::Started => TypingState::Stopped,
            _ => TypingState::Started,
        };
    }
    false
}

/// After its backend is terminated, the listener listens again: signals cross between
/// instances again, presence too, and durable events keep arriving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_cross_again_after_the_listener_is_terminated() {
    let Some(url) = support::fresh_database().await else { return };
    let a = instance_with_signals(&url, options()).await;
    let b = instance_with_signals(&url, options()).await;
    let admin = admin(&url).await;
    let (alice, bob) = (UserId::new(), UserId::new());
    let c = a.open(alice, bob, None).await.expect("open").conversation;
    let mut alice_on_a = a.connect(alice).await.expect("connect");
    let _bob_on_b = b.connect(bob).await.expect("connect");
    assert!(signals_cross_again(&mut alice_on_a, &b, bob, c.id).await, "signals cross");

    let killed = support::terminate_listeners(&admin).await;
    assert_eq!(killed, [true, true], "one listener per instance");
    assert!(signals_cross_again(&mut alice_on_a, &b, bob, c.id).await, "signals cross again");
    let carol = UserId::new();
    b.open(carol, alice, None).await.expect("open");
    let _carol_on_b = b.connect(carol).await.expect("connect");
    let online = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Push::Signal(signal) = alice_on_a.recv().await.expect("open")
                && let Signal::Presence(p) = signal.get()
                && p.user_id == carol
            {
                return p.online;
            }
        }
    })
    .await
    .expect("carol's presence crosses");
    assert!(online);
    b.send(bob, SendMessage::to_conversation(c.id, "durable")).await.expect("send");
    loop {
        if let Event::MessageCreated(m) = support::next_event(&mut alice_on_a).await.event {
            assert_eq!(m.body, "durable");
            break;
        }
    }
}

/// A TCP proxy to the database that can silently freeze the listening connections it
/// carries (those that sent `LISTEN`): their bytes stop flowing both ways while both
/// sockets stay open, as with a peer or NAT that drops a connection without a reset.
struct Proxy {
    port: u16,
    connections: Arc<std::sync::Mutex<Vec<Arc<Pipe>>>>,
}

#[derive(Default)]
struct Pipe {
    listening: AtomicBool,
    frozen: AtomicBool,
}

impl Proxy {
    async fn start(upstream: u16) -> Self {
        let server = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = server.local_addr().expect("address").port();
        let connections: Arc<std::sync::Mutex<Vec<Arc<Pipe>>>> = Arc::default();
        let list = connections.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = server.accept().await {
                let Ok(db) = TcpStream::connect(("127.0.0.1", upstream)).await else { continue };
                let pipe = Arc::new(Pipe::default());
                list.lock().expect("lock").push(pipe.clone());
                let (client_read, client_write) = client.into_split();
                let (db_read, db_write) = db.into_split();
                tokio::spawn(pump(client_read, db_write, pipe.clone(), true));
                tokio::spawn(pump(db_read, client_write, pipe, false));
            }
        });
        Self { port, connections }
    }

    /// Freezes every listening connection open now.
    fn freeze_listeners(&self) -> usize {
        let list = self.connections.lock().expect("lock");
        let mut frozen = 0;
        for pipe in list.iter().filter(|p| p.listening.load(Ordering::SeqCst)) {
            pipe.frozen.store(true, Ordering::SeqCst);
            frozen += 1;
        }
        frozen
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    pipe: Arc<Pipe>,
    client_side: bool,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if client_side && buf[..n].windows(6).any(|w| w == b"LISTEN") {
            pipe.listening.store(true, Ordering::SeqCst);
        }
        if pipe.frozen.load(Ordering::SeqCst) {
            // Silently dead: keep both sockets open, pass nothing on.
            std::future::pending::<()>().await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// When the listener's connection dies silently (no reset, nothing ever arrives), its probe
/// does not come back: it listens again on a new connection and signals cross again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silently_dead_listener_is_noticed_and_replaced() {
    let Some(url) = support::fresh_database().await else { return };
    // postgres://user@127.0.0.1:<port>/<database>
    let (head, database) = url.rsplit_once('/').expect("a database in the URL");
    let (user, address) = head.rsplit_once('@').expect("a user in the URL");
    let (_, port) = address.rsplit_once(':').expect("a port in the URL");
    let proxy = Proxy::start(port.parse().expect("a port")).await;
    let proxied = format!("{user}@127.0.0.1:{}/{database}", proxy.port);

    let a = instance_with_signals(&url, options()).await;
    let b =
        instance_with_signals(&proxied, options().listener_probe(Duration::from_millis(300))).await;
    let (alice, bob) = (UserId::new(), UserId::new());
    let c = a.open(alice, bob, None).await.expect("open").conversation;
    let mut bob_on_b = b.connect(bob).await.expect("connect");
    let _alice_on_a = a.connect(alice).await.expect("connect");
    assert!(signals_cross_again(&mut bob_on_b, &a, alice, c.id).await, "signals reach B");

    assert_eq!(proxy.freeze_listeners(), 1, "B's listener is frozen");
    assert!(
        signals_cross_again(&mut bob_on_b, &a, alice, c.id).await,
        "B notices its dead listener and signals reach it again"
    );
}
