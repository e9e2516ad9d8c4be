//! The feed of committed events: one log tailer per store object.
//!
//! The tailer reads the log after the last position it dispatched and hands each batch,
//! in position order, to every attached sink. It wakes on a NOTIFY from any process that
//! committed (payload: the new head), on this process's own commits, and at least once a
//! second, so a lost notification delays delivery but never loses it. The listener uses
//! `PgListener::try_recv`: when its connection drops, `try_recv` returns `None` (plain
//! `recv` would reconnect silently and swallow the gap); the listener then listens again on
//! a new connection and the tailer catches up from its last position. Notifications of
//! heads this process has dispatched already (its own commits) do not wake the tailer.
//!
//! This process's own commits do not wait for the round trip: the writer hands each
//! commit's events (as committed, with their payloads) to `Feed::local`, which
//! dispatches them at once when they are next in line, or keeps them for the tailer to use
//! in place of the rows it reads. Events of other processes are read from the log and
//! carry the current state of the objects they name.
//!
//! Because `log_head` orders commits, the committed log is always the dense prefix
//! `1..=head`: reading `position > last` never skips a transaction that committed late.
//!
//! A listener connection can also die silently (a peer or NAT that drops the connection
//! without a reset): `try_recv` then waits forever, signals stop crossing and the caches
//! (blocks, revocations; see `kept.rs`) trust notifications that never come. sqlx 0.9 has
//! no TCP keepalive setting for its connections (the socket is not exposed; libpq's
//! `keepalives` options are not supported), so the listener probes itself instead: every
//! `PgOptions::listener_probe` it sends a NOTIFY with its own nonce on the probe channel
//! through the pool, and when that does not come back within the same time it drops the
//! connection and listens again on a new one, with backoff while that fails. Each listener
//! connection comes from a pool of its own (one connection): dropping a listener runs
//! `UNLISTEN` on its connection in the background, which on a dead connection hangs until
//! the kernel gives up, and must not hold a slot of the store's pool meanwhile.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use messaging_core::model::CommittedEvent;
use messaging_core::store::FeedSink;
use sqlx::PgPool;
use sqlx::postgres::{PgListener, PgPoolOptions};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::channels::Channels;
use crate::error::Result;
use crate::kept::ListenedCaches;
use crate::read;
use crate::signals::SignalSinks;

/// Rows read per query while catching up.
const PAGE: usize = 1000;
/// The poll that bounds the delay of a lost notification.
const POLL: Duration = Duration::from_secs(1);
/// The first wait before listening again after a failure; it doubles while failures
/// follow one another, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

#[derive(Default)]
struct State {
    started: bool,
    last: u64,
    sinks: Vec<Weak<dyn FeedSink>>,
    /// This process's committed events that are not next in line yet.
    local: BTreeMap<u64, CommittedEvent>,
    /// Positions read from the log whose events are of a kind this version does not know:
    /// passed over, not dispatched.
    skipped: BTreeSet<u64>,
}

/// The tailer's shared state.
pub(crate) struct Feed {
    pool: PgPool,
    channels: Channels,
    signals: SignalSinks,
    /// The caches kept right by the listener's notifications (blocks, revocations).
    caches: ListenedCaches,
    /// The last position dispatched (mirrors `State::last` for the listener).
    dispatched: Arc<AtomicU64>,
    state: Mutex<State>,
    wake: Arc<Notify>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// How often the listener probes its connection.
    probe: Duration,
}

impl Feed {
    pub(crate) fn new(
        pool: PgPool,
        channels: Channels,
        signals: SignalSinks,
        caches: ListenedCaches,
        wake: Arc<Notify>,
        probe: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            pool,
            channels,
            signals,
            caches,
            dispatched: Arc::new(AtomicU64::new(0)),
            state: Mutex::new(State::default()),
            wake,
            tasks: Mutex::new(Vec::new()),
            probe,
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Attaches a sink: the log is first read up to the committed head, then the sink
    /// starts there and gets every later batch.
    pub(crate) async fn attach(self: &Arc<Self>, sink: Arc<dyn FeedSink>) -> Result<()> {
        let head = read::head(&self.pool).await?;
        {
            let mut state = self.state();
            if !state.started {
                state.started = true;
                state.last = head;
                let mut tasks =
                    self.tasks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                tasks.push(tokio::spawn(tail(Arc::downgrade(self))));
                self.dispatched.store(head, Ordering::Release);
                tasks.push(tokio::spawn(listen(Listening {
                    pool: self.pool.clone(),
                    channels: self.channels.clone(),
                    signals: self.signals.clone(),
                    caches: self.caches.clone(),
                    dispatched: self.dispatched.clone(),
                    wake: Arc::downgrade(&self.wake),
                    probe: self.probe,
                    nonce: uuid::Uuid::now_v7().to_string(),
                })));
            }
        }
        while self.state().last < head {
            self.catch_up().await?;
        }
        let mut state = self.state();
        sink.start(state.last);
        state.sinks.push(Arc::downgrade(&sink));
        Ok(())
    }

    /// This process's commit: dispatched now if it is next in line, else kept for the
    /// tailer (which is woken to fill the gap from the log).
    pub(crate) fn local(&self, events: Vec<CommittedEvent>) {
        let mut state = self.state();
        if !state.started {
            return;
        }
        match events.first() {
            Some(first) if first.logged.position == state.last + 1 => {
                self.deliver(&mut state, &events);
            }
            Some(_) => {
                for event in events {
                    if event.logged.position > state.last {
                        state.local.insert(event.logged.position, event);
                    }
                }
                drop(state);
                self.wake.notify_one();
            }
            None => {}
        }
    }

    /// Reads and dispatches everything committed after the last position, using this
    /// process's own payloads where it has them.
    async fn catch_up(&self) -> Result<()> {
        loop {
            let last = self.state().last;
            let rows = read::feed(&self.pool, last, PAGE).await?;
            let full = rows.len() == PAGE;
            let mut state = self.state();
            let after = state.last;
            let mut batch = Vec::with_capacity(rows.len());
            for (position, event) in rows {
                if position <= after {
                    continue;
                }
                match state.local.remove(&position).or(event) {
                    Some(event) => batch.push(event),
                    None => {
                        state.skipped.insert(position);
                    }
                }
            }
            self.deliver(&mut state, &batch);
            if !full {
                return Ok(());
            }
        }
    }

    /// Hands the events that follow the last position without a gap to every live sink:
    /// from `batch` (ascending), from kept local events, passing over skipped positions.
    fn deliver(&self, state: &mut State, batch: &[CommittedEvent]) {
        let mut next = state.last + 1;
        let first = next;
        let mut fresh = batch.iter().filter(|e| e.logged.position >= first).peekable();
        let mut run: Vec<CommittedEvent> = Vec::new();
        loop {
            if let Some(event) = fresh.next_if(|e| e.logged.position == next) {
                run.push(event.clone());
            } else if let Some(event) = state.local.remove(&next) {
                run.push(event);
            } else if !state.skipped.remove(&next) {
                break;
            }
            next += 1;
        }
        let last = next - 1;
        if last == state.last {
            return;
        }
        state.local.retain(|position, _| *position > last);
        state.skipped.retain(|position| *position > last);
        if !run.is_empty() {
            state.sinks.retain(|sink| match sink.upgrade() {
                Some(live) => {
                    live.committed(&run);
                    true
                }
                None => false,
            });
        }
        state.last = last;
        self.dispatched.store(last, Ordering::Release);
    }
}

impl Feed {
    /// Stops the tailer and the listener and waits for their tasks to end. Neither keeps
    /// anything worth finishing: what they have not read stays in the log.
    pub(crate) async fn stop(&self) {
        let tasks: Vec<JoinHandle<()>> = self
            .tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .drain(..)
            .collect();
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            // Cancelled (or already ended): either way it runs no more.
            let _ = task.await;
        }
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        for task in self.tasks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).drain(..) {
            task.abort();
        }
    }
}

async fn tail(feed: Weak<Feed>) {
    loop {
        let Some(wake) = feed.upgrade().map(|f| f.wake.clone()) else { return };
        let _ = tokio::time::timeout(POLL, wake.notified()).await;
        drop(wake);
        let Some(feed) = feed.upgrade() else { return };
        if let Err(error) = feed.catch_up().await {
            tracing::warn!(%error, "reading the log failed; retrying at the next wake-up");
        }
    }
}

/// What the listener task needs.
struct Listening {
    pool: PgPool,
    channels: Channels,
    signals: SignalSinks,
    caches: ListenedCaches,
    dispatched: Arc<AtomicU64>,
    wake: Weak<Notify>,
    /// How often the connection is probed, and how long a probe may take to come back.
    probe: Duration,
    /// This listener's probe payload (other instances' probes share the channel).
    nonce: String,
}

/// Listens for the log's heads, signals and the caches' changes (blocks, revocations);
/// after a lost connection it listens again on a new one (the tailer catches up meanwhile,
/// the caches are off, so their questions go to the database), waiting longer after each
/// failure in a row.
async fn listen(to: Listening) {
    let mut backoff = FIRST_BACKOFF;
    let set_listening = |listening| {
        for (_, cache) in &to.caches {
            cache.set_listening(listening);
        }
    };
    loop {
        if let Some(listener) = connect_listener(&to).await {
            set_listening(true);
            if let Some(wake) = to.wake.upgrade() {
                // Anything committed before this LISTEN took effect is read now.
                wake.notify_one();
            }
            let ended = receive(&to, listener).await;
            set_listening(false);
            match ended {
                Ended::FeedGone => return,
                // It worked for a while: the next attempt starts from the first wait.
                Ended::Lost { proven: true } => backoff = FIRST_BACKOFF,
                Ended::Lost { proven: false } => {}
            }
        }
        if to.wake.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// A listening connection, from a pool of its own (see the module docs).
async fn connect_listener(to: &Listening) -> Option<PgListener> {
    let fixed = [to.channels.log.as_str(), &to.channels.signal, &to.channels.probe];
    let channels: Vec<&str> =
        fixed.into_iter().chain(to.caches.iter().map(|(channel, _)| channel.as_str())).collect();
    let own = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(to.pool.options().get_acquire_timeout())
        .connect_lazy_with((*to.pool.connect_options()).clone());
    match PgListener::connect_with(&own).await {
        Ok(mut listener) => {
            // A lost connection ends this listener; `listen` makes the next one.
            listener.eager_reconnect(false);
            match listener.listen_all(channels).await {
                Ok(()) => Some(listener),
                Err(error) => {
                    tracing::warn!(%error, "LISTEN failed; polling until it works");
                    None
                }
            }
        }
        Err(error) => {
            tracing::warn!(%error, "no listener connection; polling meanwhile");
            None
        }
    }
}

/// How a listening connection ended.
enum Ended {
    /// The feed was dropped: stop listening.
    FeedGone,
    /// The connection was lost or failed its probe; `proven` when a probe came back on it
    /// first.
    Lost { proven: bool },
}

/// Handles notifications until the connection is lost or fails its probe, or the feed is
/// gone.
async fn receive(to: &Listening, mut listener: PgListener) -> Ended {
    let mut proven = false;
    // When the next probe goes out, or (when one is out) when it must have come back.
    let mut deadline = Instant::now() + to.probe;
    let mut probing = false;
    loop {
        // `try_recv` reads whole messages only, so dropping it for the timer loses nothing.
        let outcome = tokio::select! {
            outcome = listener.try_recv() => outcome,
            () = tokio::time::sleep_until(deadline) => {
                if probing {
                    tracing::warn!(
                        after = ?to.probe,
                        "the listener's probe did not come back; listening on a new connection"
                    );
                    if let Some(wake) = to.wake.upgrade() {
                        wake.notify_one();
                    }
                    return Ended::Lost { proven };
                }
                send_probe(to).await;
                probing = true;
                deadline = Instant::now() + to.probe;
                continue;
            }
        };
        let Some(wake) = to.wake.upgrade() else { return Ended::FeedGone };
        match outcome {
            Ok(Some(notification)) => {
                let channel = notification.channel();
                if channel == to.channels.signal {
                    let sinks =
                        to.signals.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    for sink in sinks.iter().filter_map(Weak::upgrade) {
                        sink.receive(notification.payload());
                    }
                } else if let Some((_, cache)) = to.caches.iter().find(|(c, _)| c == channel) {
                    cache.forget_notified(notification.payload());
                } else if channel == to.channels.probe {
                    if probing && notification.payload() == to.nonce {
                        probing = false;
                        proven = true;
                        deadline = Instant::now() + to.probe;
                    }
                } else {
                    // This process's own commits are usually dispatched already.
                    let head = notification.payload().parse::<u64>().unwrap_or(u64::MAX);
                    if head > to.dispatched.load(Ordering::Acquire) {
                        wake.notify_one();
                    }
                }
            }
            Ok(None) => {
                tracing::info!("listener connection lost; catching up from the last position");
                wake.notify_one();
                return Ended::Lost { proven };
            }
            Err(error) => {
                tracing::warn!(%error, "listener failed; catching up and listening again");
                wake.notify_one();
                return Ended::Lost { proven };
            }
        }
    }
}

/// Sends this listener's probe through the store's pool (a failure to send counts as a
/// probe that does not come back).
async fn send_probe(to: &Listening) {
    let sent = tokio::time::timeout(
        to.probe,
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(&to.channels.probe)
            .bind(&to.nonce)
            .execute(&to.pool),
    )
    .await;
    match sent {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => tracing::warn!(%error, "sending the listener's probe failed"),
        Err(_) => tracing::warn!("sending the listener's probe timed out"),
    }
}
