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
//! commit's events (as committed, with their payloads) to [`Feed::local`], which
//! dispatches them at once when they are next in line, or keeps them for the tailer to use
//! in place of the rows it reads. Events of other processes are read from the log and
//! carry the current state of the objects they name.
//!
//! Because `log_head` orders commits, the committed log is always the dense prefix
//! `1..=head`: reading `position > last` never skips a transaction that committed late.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use messaging_core::{CommittedEvent, FeedSink, Result};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::Channels;
use crate::blocks::BlockCache;
use crate::read;
use crate::signals::SignalSinks;

/// Rows read per query while catching up.
const PAGE: usize = 1000;
/// The poll that bounds the delay of a lost notification.
const POLL: Duration = Duration::from_secs(1);

#[derive(Default)]
struct State {
    started: bool,
    last: u64,
    sinks: Vec<Weak<dyn FeedSink>>,
    /// This process's committed events that are not next in line yet.
    local: BTreeMap<u64, CommittedEvent>,
}

/// The tailer's shared state.
pub(crate) struct Feed {
    pool: PgPool,
    channels: Channels,
    signals: SignalSinks,
    blocks: Arc<BlockCache>,
    /// The last position dispatched (mirrors `State::last` for the listener).
    dispatched: Arc<AtomicU64>,
    state: Mutex<State>,
    wake: Arc<Notify>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Feed {
    pub(crate) fn new(
        pool: PgPool,
        channels: Channels,
        signals: SignalSinks,
        blocks: Arc<BlockCache>,
        wake: Arc<Notify>,
    ) -> Arc<Self> {
        Arc::new(Self {
            pool,
            channels,
            signals,
            blocks,
            dispatched: Arc::new(AtomicU64::new(0)),
            state: Mutex::new(State::default()),
            wake,
            tasks: Mutex::new(Vec::new()),
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
                    blocks: self.blocks.clone(),
                    dispatched: self.dispatched.clone(),
                    wake: Arc::downgrade(&self.wake),
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
            let batch = read::feed(&self.pool, last, PAGE).await?;
            let full = batch.len() == PAGE;
            let mut state = self.state();
            let after = state.last;
            let batch: Vec<CommittedEvent> = batch
                .into_iter()
                .filter(|e| e.logged.position > after)
                .map(|e| state.local.remove(&e.logged.position).unwrap_or(e))
                .collect();
            self.deliver(&mut state, &batch);
            if !full {
                return Ok(());
            }
        }
    }

    /// Hands `batch` (ascending, starting after `last`) to every live sink, then whatever
    /// kept local events follow it without a gap.
    fn deliver(&self, state: &mut State, batch: &[CommittedEvent]) {
        let fresh: Vec<&CommittedEvent> =
            batch.iter().filter(|e| e.logged.position > state.last).collect();
        let mut run: Vec<CommittedEvent> = Vec::new();
        for event in fresh {
            if event.logged.position != state.last + 1 + run.len() as u64 {
                break;
            }
            run.push(event.clone());
        }
        let mut next = state.last + 1 + run.len() as u64;
        while let Some(event) = state.local.remove(&next) {
            run.push(event);
            next += 1;
        }
        let Some(last) = run.last().map(|e| e.logged.position) else { return };
        state.local.retain(|position, _| *position > last);
        state.sinks.retain(|sink| match sink.upgrade() {
            Some(live) => {
                live.committed(&run);
                true
            }
            None => false,
        });
        state.last = last;
        self.dispatched.store(last, Ordering::Release);
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
    blocks: Arc<BlockCache>,
    dispatched: Arc<AtomicU64>,
    wake: Weak<Notify>,
}

/// Listens for the log's heads, signals and block changes; after a lost connection it
/// listens again on a new one (the tailer catches up meanwhile, the block cache is off).
async fn listen(to: Listening) {
    loop {
        match connect_listener(&to).await {
            Some(listener) => {
                to.blocks.set_listening(true);
                if let Some(wake) = to.wake.upgrade() {
                    // Anything committed before this LISTEN took effect is read now.
                    wake.notify_one();
                }
                let stopped = receive(&to, listener).await;
                to.blocks.set_listening(false);
                if stopped {
                    return;
                }
            }
            None => tokio::time::sleep(POLL).await,
        }
        if to.wake.strong_count() == 0 {
            return;
        }
    }
}

async fn connect_listener(to: &Listening) -> Option<PgListener> {
    let channels = [to.channels.log.as_str(), &to.channels.signal, &to.channels.blocks];
    match PgListener::connect_with(&to.pool).await {
        Ok(mut listener) => match listener.listen_all(channels).await {
            Ok(()) => Some(listener),
            Err(error) => {
                tracing::warn!(%error, "LISTEN failed; polling until it works");
                None
            }
        },
        Err(error) => {
            tracing::warn!(%error, "no listener connection; polling meanwhile");
            None
        }
    }
}

/// Handles notifications until the connection is lost (`false`) or the feed is gone
/// (`true`).
async fn receive(to: &Listening, mut listener: PgListener) -> bool {
    loop {
        let outcome = listener.try_recv().await;
        let Some(wake) = to.wake.upgrade() else { return true };
        match outcome {
            Ok(Some(notification)) => {
                let channel = notification.channel();
                if channel == to.channels.signal {
                    let sinks =
                        to.signals.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    for sink in sinks.iter().filter_map(Weak::upgrade) {
                        sink.receive(notification.payload());
                    }
                } else if channel == to.channels.blocks {
                    to.blocks.forget_notified(notification.payload());
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
                return false;
            }
            Err(error) => {
                tracing::warn!(%error, "listener failed; catching up and listening again");
                wake.notify_one();
                return false;
            }
        }
    }
}
