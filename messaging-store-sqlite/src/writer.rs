//! The single writer thread and its group commit.
//!
//! SQLite allows one writer at a time, and at `synchronous=FULL` each commit costs an
//! fsync. One thread owns the write connection: it takes everything queued (up to
//! `max_batch` jobs), runs each job under its own SAVEPOINT (so one failing job fails
//! alone), commits the lot as one transaction (one fsync for the batch), then hands the
//! committed events to the feed and replies to every caller. A reply therefore always
//! means the change is durable, and the feed sees commits in position order. Under
//! concurrent load, throughput grows with the batch instead of being capped by fsync
//! latency.
//!
//! Savepoints are not free (every page a job touches is copied to the statement journal),
//! so a batch first runs without them; only if a job fails is the batch rolled back and
//! run again with one savepoint per job, where the failing job is undone alone. Jobs
//! report expected failures (not found, conflict) before writing, so the fast path is the
//! common one.
//!
//! WAL checkpoints run on their own thread (the `checkpointer` module); the writer keeps a
//! large automatic checkpoint as a backstop should the checkpointer fall behind.
//!
//! The per-user index of the log (`event_audience`, which `sync` reads) is kept behind the
//! log and written in sorted bulk: a user's index page is written once per bulk instead of
//! once per event. Measured 2026-11-21 (2 cores, 256 concurrent senders, FULL): writing it
//! per event cost about a third of the writer's throughput, because every event dirtied two
//! scattered index pages that each commit wrote to the WAL again. The log rows carry their
//! audience, so the index is rebuilt from the log after a crash, and a read that needs it
//! up to some position first asks the writer to bring it there (`Writer::ensure_indexed`).
//!
//! Log positions are assigned here, in memory, from the head read at start: the writer
//! is the only one who appends, so positions are dense and in commit order. A job that
//! fails, or a batch whose commit fails, gives its positions back.
//!
//! A job whose caller stopped waiting (its reply receiver is closed, e.g. the server's
//! answer bound fired) before the writer starts it is dropped unrun: it is never committed
//! after its caller was told it failed.
//!
//! State kept in memory beside the file (the blocks, the revocations) follows the commits
//! through a hook a job may carry (`Writer::write_then`): it runs with the job's answer on
//! this thread after the commit and before the reply, so it follows even a commit whose
//! caller stopped waiting after the writer took the job.
//!
//! Nothing stops the thread but the store closing (`Writer::stop_taking`, or dropping the
//! `Writer`), and the jobs queued before that are committed and answered first. A batch
//! that cannot commit (a full or failing disk, a lock held elsewhere) answers every job
//! with its one error (shared, not copied as text), the connection is rolled back to a
//! clean state (retried before the next batch if the ROLLBACK fails too), and the next
//! batch runs as usual. After a full disk it also checkpoints and truncates the WAL, giving
//! its space back. A panic (a bug, in a job or a feed sink) is caught: its batch is
//! answered, and the store is marked broken, failing every later write at once, since the
//! connection's and the log head's state is unknown. Every commit's time is kept for health
//! checks (`Health`).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use messaging_core::model::CommittedEvent;
use messaging_core::store::FeedSink;
use messaging_core::{Error, Result};
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::checkpointer::{self, Checkpointer, Doorbell};
use crate::error::{self, StoreError, StoreResult, is_disk_failure};
use crate::search_index;
use crate::write::{WriteCtx, index_audience};

/// How far the audience index may trail the log before a batch brings it up to date.
const AUDIENCE_INDEX_LAG: u64 = 8192;

/// How far the audience index may trail the log while the writer has nothing queued: it
/// then catches up in steps of its own, so that the batch that reaches
/// [`AUDIENCE_INDEX_LAG`] (16,000 rows over every recipient's pages at once: a stall of
/// the sends queued behind it) only comes when the writer is never idle.
const IDLE_INDEX_LAG: u64 = 1024;

/// Most events one idle catch-up step indexes: what a send arriving meanwhile waits for.
const IDLE_INDEX_STEP: u64 = 1024;

/// How long the write connection waits on locks (set when the store opens).
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a forced WAL restart waits for readers of older snapshots (writes wait too).
const RESTART_WAIT: Duration = Duration::from_millis(100);

/// After a restart a reader outlasted, how long before the next attempt: a long reader
/// (a backup) then costs the writer at most a tenth of its time.
const RESTART_BACKOFF: Duration = Duration::from_secs(1);

/// What the writer tells callers about itself: its last commit and whether it broke.
#[derive(Default)]
pub(crate) struct Health {
    last_commit: Mutex<Option<Instant>>,
    /// Set when a batch panicked: the connection's and the log head's state is unknown, so
    /// every later write fails at once (until the store is reopened) instead of risking a
    /// wrong position or waiting on a writer that cannot serve.
    broken: AtomicBool,
}

impl Health {
    /// When the writer last committed a batch.
    pub(crate) fn last_commit(&self) -> Option<Instant> {
        *self.last_commit.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn committed(&self) {
        *self.last_commit.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
    }

    fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Acquire)
    }

    fn set_broken(&self) {
        self.broken.store(true, Ordering::Release);
    }
}

/// The answer to every write once the writer is broken (see [`Health`]).
fn broken() -> Error {
    Error::unavailable("the SQLite store failed internally and must be reopened")
}

/// A unit of work for the writer.
pub(crate) trait Job: Send {
    /// Runs inside the batch transaction, under a savepoint; on failure, a copy of the
    /// error (the original goes to the caller).
    fn run(&mut self, ctx: &mut WriteCtx<'_>) -> Result<()>;
    /// Delivers the outcome once the batch committed (`Ok`) or failed to commit (`Err`).
    fn finish(self: Box<Self>, commit: Result<()>);
    /// Whether nobody waits for the outcome any more (the caller's future was dropped, e.g.
    /// at its answer bound): such a job is dropped unrun, never committed late.
    fn abandoned(&self) -> bool;
}

/// What runs on the writer thread with a job's answer once its batch committed.
type OnCommit<T> = Box<dyn FnOnce(&T) + Send>;

struct FnJob<T, F> {
    work: F,
    outcome: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
    committed: Option<OnCommit<T>>,
}

impl<T, F> Job for FnJob<T, F>
where
    T: Send,
    F: FnMut(&mut WriteCtx<'_>) -> StoreResult<T> + Send,
{
    fn run(&mut self, ctx: &mut WriteCtx<'_>) -> Result<()> {
        // Where a write's error leaves the crate: converted once, then shared (a clone
        // shares the SQLite source) between the caller and the batch.
        let outcome = (self.work)(ctx).map_err(Error::from);
        let ok = outcome.as_ref().map(|_| ()).map_err(Error::clone);
        self.outcome = Some(outcome);
        ok
    }

    fn finish(self: Box<Self>, commit: Result<()>) {
        let outcome = match (commit, self.outcome) {
            (Err(e), _) => Err(e),
            (Ok(()), Some(outcome)) => outcome,
            (Ok(()), None) => Err(Error::unavailable("the write was not run")),
        };
        if let (Ok(value), Some(committed)) = (&outcome, self.committed) {
            committed(value);
        }
        let _ = self.reply.send(outcome);
    }

    fn abandoned(&self) -> bool {
        self.reply.is_closed()
    }
}

enum Command {
    Job(Box<dyn Job>),
    Attach(Weak<dyn FeedSink>, oneshot::Sender<()>),
    /// Refuse every later command; serve those queued before, then end.
    Close,
}

/// The caller's handle on the writer thread.
pub(crate) struct Writer {
    indexed: Arc<AtomicU64>,
    health: Arc<Health>,
    tx: Option<mpsc::Sender<Command>>,
    /// Set by [`Writer::stop_taking`]: every later call fails with "the SQLite store is
    /// closed".
    closed: AtomicBool,
    /// Taken and stopped by [`Writer::join`], or else when the writer is dropped.
    threads: Mutex<Option<Threads>>,
}

/// The writer's thread and the checkpointer, stopped together and in this order.
struct Threads {
    writer: JoinHandle<()>,
    checkpointer: Checkpointer,
}

impl Threads {
    /// Waits for the writer thread to end (the channel must be closed or dropped first),
    /// then stops the checkpointer; blocking.
    fn stop(self) {
        let _ = self.writer.join();
        // The checkpointer's connection is the last to close, and (being read-write) folds
        // the WAL back into the file.
        drop(self.checkpointer);
    }
}

impl Writer {
    /// Starts the thread over `conn` (migrated, pragmas set) with the log's current head,
    /// and the checkpointer over `checkpoint_conn` (a second read-write connection).
    pub(crate) fn start(
        conn: Connection,
        checkpoint_conn: Connection,
        head: u64,
        indexed_upto: u64,
        max_batch: usize,
        search: Arc<search_index::Shared>,
    ) -> StoreResult<Self> {
        let indexed = Arc::new(AtomicU64::new(indexed_upto));
        let health = Arc::new(Health::default());
        let max_batch = max_batch.max(1);
        let (tx, rx) = mpsc::channel(max_batch * 4);
        let checkpointer = Checkpointer::start(checkpoint_conn)?;
        let writer = WriterLoop {
            conn,
            head,
            indexed_upto,
            indexed: indexed.clone(),
            health: health.clone(),
            max_batch,
            sinks: vec![],
            checkpoint: checkpointer.bell(),
            wal_frames: checkpointer.wal_frames(),
            restart_after: Instant::now(),
            search,
        };
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(Error::backend)?;
        Ok(Self {
            indexed,
            health,
            tx: Some(tx),
            closed: AtomicBool::new(false),
            threads: Mutex::new(Some(Threads { writer: thread, checkpointer })),
        })
    }

    /// The writer's health, shared with its thread.
    pub(crate) fn health(&self) -> &Health {
        &self.health
    }

    /// Runs `work` in the next batch; resolves after the batch committed. Dropping the
    /// future before the writer takes the job drops the job: it is never run.
    pub(crate) async fn write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnMut(&mut WriteCtx<'_>) -> StoreResult<T> + Send + 'static,
    {
        self.submit(work, None).await
    }

    /// As [`Writer::write`], and once the batch committed `committed` runs with the job's
    /// answer, on the writer thread, before the reply: for state kept in memory beside the
    /// file (blocks, revocations), which then follows every commit, even one whose caller
    /// stopped waiting after the writer took its job.
    pub(crate) async fn write_then<T, F>(
        &self,
        work: F,
        committed: impl FnOnce(&T) + Send + 'static,
    ) -> Result<T>
    where
        T: Send + 'static,
        F: FnMut(&mut WriteCtx<'_>) -> StoreResult<T> + Send + 'static,
    {
        self.submit(work, Some(Box::new(committed))).await
    }

    async fn submit<T, F>(&self, work: F, committed: Option<OnCommit<T>>) -> Result<T>
    where
        T: Send + 'static,
        F: FnMut(&mut WriteCtx<'_>) -> StoreResult<T> + Send + 'static,
    {
        self.ensure_open()?;
        if self.health.is_broken() {
            return Err(broken());
        }
        let (reply, rx) = oneshot::channel();
        let job = Box::new(FnJob { work, outcome: None, reply, committed });
        self.send(Command::Job(job)).await?;
        rx.await.map_err(|_| self.stopped())?
    }

    /// Makes sure the audience index covers every event up to `position`.
    pub(crate) async fn ensure_indexed(&self, position: u64) -> Result<()> {
        if self.indexed.load(Ordering::Acquire) >= position {
            return Ok(());
        }
        self.write(|ctx| {
            ctx.request_audience_index();
            Ok(())
        })
        .await
    }

    /// Attaches a feed sink; resolves once it has been started.
    pub(crate) async fn attach(&self, sink: &Arc<dyn FeedSink>) -> Result<()> {
        self.ensure_open()?;
        if self.health.is_broken() {
            return Err(broken());
        }
        let (reply, rx) = oneshot::channel();
        self.send(Command::Attach(Arc::downgrade(sink), reply)).await?;
        rx.await.map_err(|_| self.stopped())
    }

    /// The first half of closing: every later call fails with "the SQLite store is closed";
    /// the jobs queued before are still committed and answered, then the thread ends, and
    /// its connection closes (the checkpointer's stays open until [`Writer::join`]).
    pub(crate) async fn stop_taking(&self) {
        self.closed.store(true, Ordering::Release);
        if let Some(tx) = &self.tx {
            // Fails only if the thread is gone already; joining it is then all that is left.
            let _ = tx.send(Command::Close).await;
        }
    }

    /// The second half of closing, after [`Writer::stop_taking`]: waits for the writer
    /// thread to end, then stops the checkpointer, whose connection is then the last one
    /// to close; it waits on a blocking thread, not the caller's. Joining twice is harmless.
    pub(crate) async fn join(&self) -> Result<()> {
        let threads = self.threads.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(threads) = threads {
            tokio::task::spawn_blocking(move || threads.stop()).await.map_err(Error::backend)?;
        }
        Ok(())
    }

    /// Fails with "the SQLite store is closed" once [`Writer::stop_taking`] was called.
    pub(crate) fn ensure_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) { Err(error::closed()) } else { Ok(()) }
    }

    /// The answer to a command the thread refused or dropped: it was closed, or it stopped.
    fn stopped(&self) -> Error {
        self.ensure_open().err().unwrap_or_else(|| Error::unavailable("the SQLite writer stopped"))
    }

    async fn send(&self, command: Command) -> Result<()> {
        let tx = self.tx.as_ref().ok_or_else(error::closed)?;
        tx.send(command).await.map_err(|_| self.stopped())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the channel lets the thread finish what is queued and exit; joining makes
        // "the store was dropped" mean "the file is closed". After `close`, nothing is left
        // to join.
        self.tx.take();
        if let Some(threads) = self.threads.get_mut().unwrap_or_else(PoisonError::into_inner).take()
        {
            threads.stop();
        }
    }
}

struct WriterLoop {
    conn: Connection,
    head: u64,
    indexed_upto: u64,
    indexed: Arc<AtomicU64>,
    health: Arc<Health>,
    max_batch: usize,
    sinks: Vec<Weak<dyn FeedSink>>,
    checkpoint: Arc<Doorbell>,
    /// The WAL's length as the checkpointer last found it.
    wal_frames: Arc<AtomicI64>,
    /// No forced WAL restart before this (see [`RESTART_BACKOFF`]).
    restart_after: Instant,
    search: Arc<search_index::Shared>,
}

/// Why a batch did not commit.
enum BatchError {
    /// A job failed: run the batch again with savepoints.
    JobFailed,
    /// SQLite failed outside any job (begin, commit, the index changes), or a job's failure
    /// ended the whole transaction (SQLite rolls back on a full disk or an I/O error).
    Database(Error),
}

impl From<StoreError> for BatchError {
    fn from(error: StoreError) -> Self {
        Self::Database(error.into())
    }
}

impl WriterLoop {
    /// Serves until every sender is gone. Nothing ends it early: a batch that fails answers
    /// its jobs with the failure and the next batch starts on a clean connection; a panic
    /// (a bug, in a job or in a feed sink) is caught, answered, and breaks the store (see
    /// [`Health`]), after which every job is answered at once with that.
    fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(self.max_batch);
        let mut events = Vec::new();
        while let Some(command) = rx.blocking_recv() {
            let served = catch_unwind(AssertUnwindSafe(|| {
                self.take(command, &mut batch, &mut rx);
                while batch.len() < self.max_batch {
                    match rx.try_recv() {
                        Ok(command) => self.take(command, &mut batch, &mut rx),
                        Err(_) => break,
                    }
                }
                // A caller that stopped waiting before its job started gets nothing done.
                batch.retain(|job| !job.abandoned());
                if batch.is_empty() {
                    return;
                }
                if self.health.is_broken() {
                    for job in batch.drain(..) {
                        job.finish(Err(broken()));
                    }
                    return;
                }
                self.commit_batch(&mut batch, &mut events);
                while rx.is_empty() && self.index_step() {}
            }));
            if served.is_err() {
                self.health.set_broken();
                tracing::error!(
                    "the SQLite writer panicked; the store fails every write until reopened"
                );
                let _ = catch_unwind(AssertUnwindSafe(|| {
                    self.rollback();
                    for job in batch.drain(..) {
                        job.finish(Err(broken()));
                    }
                }));
                batch.clear();
                events.clear();
            }
        }
    }

    fn take(
        &mut self,
        command: Command,
        batch: &mut Vec<Box<dyn Job>>,
        rx: &mut mpsc::Receiver<Command>,
    ) {
        match command {
            Command::Job(job) => batch.push(job),
            // What is queued is still received (and served); then `run`'s receive returns
            // `None` and the thread ends.
            Command::Close => rx.close(),
            Command::Attach(sink, reply) => {
                // Events of jobs already in `batch` are not committed yet: they will reach
                // this sink too, so it starts at the committed head.
                if let Some(live) = sink.upgrade() {
                    live.start(self.head);
                    self.sinks.push(sink);
                }
                let _ = reply.send(());
            }
        }
    }

    fn commit_batch(&mut self, batch: &mut Vec<Box<dyn Job>>, events: &mut Vec<CommittedEvent>) {
        let start_head = self.head;
        let mut result: Result<Option<u64>, BatchError> = Err(BatchError::JobFailed);
        for with_savepoints in [false, true] {
            self.head = start_head;
            events.clear();
            result = self.run_batch(batch, events, with_savepoints);
            match result {
                Err(BatchError::JobFailed) => self.rollback(),
                _ => break,
            }
        }
        let commit = match result {
            Ok(indexed) => {
                self.health.committed();
                if let Some(upto) = indexed {
                    self.mark_indexed(upto);
                }
                self.dispatch(events);
                self.search.committed(self.head);
                self.checkpoint.ring();
                if self.wal_frames.load(Ordering::Relaxed) > checkpointer::WAL_LIMIT_FRAMES
                    && Instant::now() >= self.restart_after
                {
                    self.restart_wal();
                }
                Ok(())
            }
            Err(BatchError::Database(error)) => {
                tracing::error!(%error, "SQLite batch failed to commit");
                self.rollback();
                self.head = start_head;
                if is_disk_failure(&error) {
                    self.give_wal_space_back();
                }
                Err(error)
            }
            Err(BatchError::JobFailed) => {
                self.head = start_head;
                Err(Error::unavailable("a batch failed even with savepoints"))
            }
        };
        for job in batch.drain(..) {
            job.finish(commit.clone());
        }
    }

    /// Records that the audience index covers the log up to `upto` (committed), for this
    /// thread and for the readers that check it before a `sync`.
    fn mark_indexed(&mut self, upto: u64) {
        self.indexed_upto = upto;
        self.indexed.store(upto, Ordering::Release);
    }

    /// One idle catch-up step of the audience index (see [`IDLE_INDEX_LAG`]), in a
    /// transaction of its own; whether it indexed anything. A step that fails is rolled
    /// back and left to the batches, which index in their own transaction.
    fn index_step(&mut self) -> bool {
        let behind = self.head.saturating_sub(self.indexed_upto);
        if behind < IDLE_INDEX_LAG || self.health.is_broken() {
            return false;
        }
        let up_to = self.indexed_upto + behind.min(IDLE_INDEX_STEP);
        let step = self
            .exec("BEGIN IMMEDIATE")
            .and_then(|()| index_audience(&self.conn, self.indexed_upto, up_to))
            .and_then(|()| self.exec("COMMIT"));
        match step {
            Ok(()) => {
                self.mark_indexed(up_to);
                self.checkpoint.ring();
                true
            }
            Err(error) => {
                tracing::debug!(%error, "idle audience index step failed; left to the batches");
                self.rollback();
                false
            }
        }
    }

    /// Checkpoints the whole WAL and makes the next batch write it from its start (the
    /// file is then cut back to the bound), between batches (see the checkpointer's `run`
    /// for why the writer does it). It waits for readers of older snapshots at most
    /// [`RESTART_WAIT`] (writes wait meanwhile); when they outlast it, a batch after
    /// [`RESTART_BACKOFF`] tries again.
    fn restart_wal(&mut self) {
        let _ = self.conn.busy_timeout(RESTART_WAIT);
        match checkpointer::wal_checkpoint(&self.conn, "RESTART") {
            Ok(done) if done.finished => self.wal_frames.store(0, Ordering::Relaxed),
            outcome => {
                if let Err(error) = outcome {
                    tracing::debug!(%error, "WAL restart failed");
                }
                // A reader of an older snapshot outlasted the wait.
                self.restart_after = Instant::now() + RESTART_BACKOFF;
            }
        }
        let _ = self.conn.busy_timeout(BUSY_TIMEOUT);
    }

    /// After a full disk: checkpoints the whole WAL into the database and truncates it, so
    /// the space it held is free for the next batch (a WAL only grows while writes fail, and
    /// otherwise returns its space only when it restarts at its start). On a disk still
    /// full this fails at once and the next failing batch tries again.
    fn give_wal_space_back(&self) {
        match checkpointer::wal_checkpoint(&self.conn, "TRUNCATE") {
            Ok(_) => tracing::info!("WAL checkpointed and truncated after a disk failure"),
            Err(error) => tracing::warn!(%error, "WAL truncation after a disk failure failed"),
        }
    }

    /// Ends whatever transaction is open. A ROLLBACK that fails (the disk is still failing)
    /// leaves it open: the next batch tries again before it begins.
    fn rollback(&self) {
        if !self.conn.is_autocommit()
            && let Err(error) = self.conn.execute_batch("ROLLBACK")
        {
            tracing::warn!(%error, "SQLite ROLLBACK failed; retried before the next batch");
        }
    }

    fn run_batch(
        &mut self,
        batch: &mut [Box<dyn Job>],
        events: &mut Vec<CommittedEvent>,
        with_savepoints: bool,
    ) -> Result<Option<u64>, BatchError> {
        if !self.conn.is_autocommit() {
            self.exec("ROLLBACK")?;
        }
        self.exec("BEGIN IMMEDIATE")?;
        let mut index_requested = false;
        for job in batch.iter_mut() {
            if job.abandoned() {
                continue;
            }
            if with_savepoints {
                self.exec("SAVEPOINT job")?;
            }
            let (head_before, events_before) = (self.head, events.len());
            let mut ctx = WriteCtx::new(&self.conn, &mut self.head, events, &mut index_requested);
            let outcome = job.run(&mut ctx);
            match (outcome, with_savepoints) {
                (Ok(()), false) => {}
                (Ok(()), true) => self.exec("RELEASE job")?,
                (Err(_), false) => return Err(BatchError::JobFailed),
                (Err(error), true) => {
                    // SQLite ends the whole transaction on some failures (a full disk, an
                    // I/O error): then the batch fails, with the job's own error.
                    if self.conn.is_autocommit() {
                        return Err(BatchError::Database(error));
                    }
                    self.exec("ROLLBACK TO job")?;
                    self.exec("RELEASE job")?;
                    self.head = head_before;
                    events.truncate(events_before);
                }
            }
        }
        let behind = self.head.saturating_sub(self.indexed_upto);
        let indexed = if index_requested || behind >= AUDIENCE_INDEX_LAG {
            index_audience(&self.conn, self.indexed_upto, self.head)?;
            Some(self.head)
        } else {
            None
        };
        self.exec("COMMIT")?;
        Ok(indexed)
    }

    fn exec(&self, sql: &str) -> StoreResult<()> {
        self.conn.prepare_cached(sql)?.execute([])?;
        Ok(())
    }

    /// Hands committed events to the sinks. A sink that panics breaks the store (its feed
    /// missed events); the batch is committed all the same, and its callers hear so.
    fn dispatch(&mut self, events: &[CommittedEvent]) {
        if events.is_empty() {
            return;
        }
        let sinks = &mut self.sinks;
        let dispatched = catch_unwind(AssertUnwindSafe(|| {
            sinks.retain(|sink| match sink.upgrade() {
                Some(live) => {
                    live.committed(events);
                    true
                }
                None => false,
            });
        }));
        if dispatched.is_err() {
            self.health.set_broken();
            tracing::error!(
                "a feed sink panicked on committed events; the store fails every write until \
                 reopened"
            );
        }
    }
}
