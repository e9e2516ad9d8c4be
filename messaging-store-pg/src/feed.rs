//! The feed of committed events: one log tailer per store object.
//!
//! The tailer reads the log after the last position it dispatched and hands each batch,
//! in position order, to every attached sink. It wakes on a NOTIFY from any process that
//! committed (payload: the new head), on this process's own commits, and at least once a
//! second, so a lost notification delays delivery but never loses it. The listener uses
//! `PgListener::try_recv`: when its connection drops, `try_recv` returns `None` (plain
//! `recv` would reconnect silently and swallow the gap), and the tailer catches up from its
//! last position.
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
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use messaging_core::{CommittedEvent, FeedSink, Result};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

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
    channel: String,
    signal_channel: String,
    signals: SignalSinks,
    state: Mutex<State>,
    wake: Arc<Notify>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Feed {
    pub(crate) fn new(
        pool: PgPool,
        channel: String,
        signal_channel: String,
        signals: SignalSinks,
        wake: Arc<Notify>,
    ) -> Arc<Self> {
        Arc::new(Self {
            pool,
            channel,
            signal_channel,
            signals,
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
                tasks.push(tokio::spawn(listen(Listening {
                    pool: self.pool.clone(),
                    log: self.channel.clone(),
                    signal: self.signal_channel.clone(),
                    signals: self.signals.clone(),
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
                Self::deliver(&mut state, &events);
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
            Self::deliver(&mut state, &batch);
            if !full {
                return Ok(());
            }
        }
    }

    /// Hands `batch` (ascending, starting after `last`) to every live sink, then whatever
    /// kept local events follow it without a gap.
    fn deliver(state: &mut State, batch: &[CommittedEvent]) {
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
    log: String,
    signal: String,
    signals: SignalSinks,
    wake: Weak<Notify>,
}

async fn listen(to: Listening) {
    let mut listener = loop {
        match PgListener::connect_with(&to.pool).await {
            Ok(mut listener) => {
                match listener.listen_all([to.log.as_str(), to.signal.as_str()]).await {
                    Ok(()) => break listener,
                    Err(error) => tracing::warn!(%error, "LISTEN failed; polling until it works"),
                }
            }
            Err(error) => tracing::warn!(%error, "no listener connection; polling meanwhile"),
        }
        tokio::time::sleep(POLL).await;
        if to.wake.strong_count() == 0 {
            return;
        }
    };
    loop {
        let outcome = listener.try_recv().await;
        let Some(wake) = to.wake.upgrade() else { return };
        match outcome {
            Ok(Some(notification)) if notification.channel() == to.signal => {
                let sinks = to.signals.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                for sink in sinks.iter().filter_map(Weak::upgrade) {
                    sink.receive(notification.payload());
                }
            }
            Ok(Some(_)) => wake.notify_one(),
            Ok(None) => {
                tracing::info!("listener connection lost; catching up from the last position");
                wake.notify_one();
            }
            Err(error) => {
                tracing::warn!(%error, "listener failed; catching up and retrying");
                wake.notify_one();
                drop(wake);
                tokio::time::sleep(POLL).await;
            }
        }
    }
}
