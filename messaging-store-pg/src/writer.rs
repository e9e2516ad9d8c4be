//! The batching writer: one queue per store object (per process).
//!
//! Callers queue jobs; a writer task takes everything queued (up to `max_batch`) and
//! commits it as one transaction: the single-row changes first, then the reactions' read
//! (see `reactions.rs`), then the appends, the reactions' summaries and the log in one
//! statement (see `log_batch.rs`). A batch of appends alone is that statement and nothing
//! else: one round trip. A batch of appends and reactions is the read, outside any
//! transaction, and that statement, which commits only if no summary it writes changed
//! since the read. Replies go out after the commit, so a reply means
//! durable. Two writer tasks (`PgOptions::writers`) share the queue, each on its own
//! connection, so one batch runs its statement while the other waits for its fsync; the
//! `log_head` row lock keeps positions in commit order across them (and across processes).
//!
//! Deadlocks, serialization failures and unique violations (another writer stored the same
//! key first) roll the batch back and run it again, then looking stored keys up first:
//! callers never see them. Appends to a conversation that does not exist fail the
//! statement; those appends are answered `not_found` and the rest run again.
//! An append whose `reply_to_seq` names no message of its conversation is answered
//! `not_found` before the statement (after a retry's stored key was looked up, so a retry
//! still answers the stored message; see `Appends::check_replies`).
//!
//! When the database cannot serve (the connection is lost or cannot be had, the server is
//! shutting down, a statement ran past `statement_timeout`: `PgError::is_unavailable`), every
//! job of the batch gets that one error at once: running them one by one could not succeed
//! and would make each caller wait for the pool's acquire timeout in turn (issue #12: with
//! PostgreSQL stopped for 15 s, all 8 test senders had a request unanswered for over 10 s;
//! `tests/faults.rs` saw no answer within 60 s without this rule). Any other database
//! error is about the data: each job of the batch then runs alone, so one bad job fails
//! alone.
//!
//! A job whose caller stopped waiting (the request's deadline passed and its future was
//! dropped, closing the reply channel) before the writer took it is dropped unrun: a write
//! is never committed after its caller was told it failed.
//!
//! Each change carries its caller's reply channel, typed by its kind (see `change.rs`);
//! the answers of a batch are kept in its changes until it commits.
//!
//! Closing ends the queue: what is already queued still commits and is answered, then the
//! writer tasks end (`Writer::close`, for `PgStore::close`).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use messaging_core::model::{CommittedEvent, LoggedEvent};
use messaging_core::store::{Appended, NewMessage, Reacted, ReactionUpdate};
#[cfg(feature = "testkit")]
use messaging_core::testkit::HoldPoint;
use messaging_core::{Error, Result};
use sqlx::pool::PoolConnection;
use sqlx::{Connection, PgConnection, PgPool, Postgres};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::change::{Change, Pending};
use crate::channels::Channels;
use crate::error::{PgError, closed};
use crate::feed::Feed;
use crate::log_batch::{self, Appends};
use crate::write::{self, PendingEvent};
use crate::{reactions, settings};

const RETRIES: usize = 8;

/// How long a writer keeps its connection's prepared statements before preparing them
/// again. PostgreSQL keeps a prepared statement's generic plan for the connection's life
/// (until an ANALYZE of its tables), and a plan made while a table was small scans it
/// whole: a new deployment's writers did that for as long as autovacuum had not analyzed
/// `conversations` yet (a minute or more), at 2 ms per batch with 5,000 conversations.
/// Preparing again costs a few milliseconds per interval and plans for the table's
/// current size.
const REPLAN_EVERY: Duration = Duration::from_secs(10);

/// A writer's connection runs its statements with generic plans only. Left to choose,
/// PostgreSQL planned the append statement afresh for every batch: its generic plan's
/// estimate (made for arrays of unknown length) exceeds a small batch's custom plan, so
/// the cache never settled, and planning took 0.26 ms per batch against 0.11 ms of
/// execution (`pg_stat_statements` with `track_planning`, Romeo & Juliet). Every writer
/// statement reads by key, which the generic plans do (tests in `log_batch.rs`), and
/// [`REPLAN_EVERY`] keeps them made for the tables' current size. The connection is
/// closed rather than returned to the pool when the writer drops it.
const GENERIC_PLANS: &str = "SET plan_cache_mode = force_generic_plan";

/// When a writer task last completed a commit (shared by the writer tasks and the store).
type LastCommit = Arc<Mutex<Option<Instant>>>;

/// A hold a test armed on the next batch that logs events (see `CommitHold`).
#[cfg(feature = "testkit")]
type HoldSlot = Arc<Mutex<Option<HoldPoint>>>;

/// The callers' handle on the writer tasks.
pub(crate) struct Writer {
    /// The queue's sending side; taken by [`Writer::close`], after which the queue ends
    /// once the writes already on their way are queued.
    queue: Mutex<Option<mpsc::Sender<Change>>>,
    #[cfg(feature = "testkit")]
    hold: HoldSlot,
    last_commit: LastCommit,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Writer {
    /// Starts `writers` writer tasks over `pool`, taking batches from one queue; each
    /// commit's events go to `feed`.
    pub(crate) fn start(
        pool: &PgPool,
        channels: &Channels,
        limits: WriterLimits,
        feed: &Arc<Feed>,
    ) -> Self {
        let max_batch = limits.max_batch.max(1);
        let (tx, rx) = mpsc::channel(max_batch * 4);
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        #[cfg(feature = "testkit")]
        let hold = HoldSlot::default();
        let last_commit = LastCommit::default();
        let tasks = (0..limits.writers.max(1))
            .map(|_| {
                tokio::spawn(
                    WriterLoop {
                        pool: pool.clone(),
                        channels: channels.clone(),
                        max_batch,
                        feed: feed.clone(),
                        #[cfg(feature = "testkit")]
                        hold: hold.clone(),
                        last_commit: last_commit.clone(),
                        conn: None,
                        planned: Instant::now(),
                    }
                    .run(rx.clone()),
                )
            })
            .collect();
        Self {
            queue: Mutex::new(Some(tx)),
            #[cfg(feature = "testkit")]
            hold,
            last_commit,
            tasks: Mutex::new(tasks),
        }
    }

    /// When a batch last committed (probes included).
    pub(crate) fn last_commit(&self) -> Option<Instant> {
        *self.last_commit.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes `request` in the next batch; resolves with its answer after that batch
    /// committed. `kind` is the variant of [`Change`] for the request, which fixes the type
    /// of the answer (`writer.submit(new, Change::Open)` answers an `Opened`).
    pub(crate) async fn submit<R, T>(
        &self,
        request: R,
        kind: fn(Pending<R, T>) -> Change,
    ) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        let queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner).clone();
        // This clone of the sender is dropped once the change is queued: `close` waits for
        // the queue to end, which it does when the last sender is gone.
        queue
            .ok_or_else(closed)?
            .send(kind(Pending::new(request, reply)))
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| Error::unavailable("the PostgreSQL writer stopped"))?
    }

    /// Stops taking changes, lets the writer tasks commit and answer everything queued,
    /// and waits for them to end.
    pub(crate) async fn close(&self) {
        drop(self.queue.lock().unwrap_or_else(PoisonError::into_inner).take());
        let tasks: Vec<JoinHandle<()>> =
            self.tasks.lock().unwrap_or_else(PoisonError::into_inner).drain(..).collect();
        for task in tasks {
            // A task that panicked has nothing left to finish.
            let _ = task.await;
        }
    }

    /// Arms a hold on the next batch that logs events (see `CommitHold`).
    #[cfg(feature = "testkit")]
    pub(crate) fn arm_hold(&self, point: HoldPoint) {
        *self.hold.lock().unwrap_or_else(PoisonError::into_inner) = Some(point);
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Not closed: nobody waits for the tasks, which would otherwise run on without a
        // store. Changes still queued are answered `unavailable` (their reply is dropped).
        for task in self.tasks.get_mut().unwrap_or_else(PoisonError::into_inner).iter() {
            task.abort();
        }
    }
}

/// How many batches may be in flight, and how large they may be.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WriterLimits {
    /// Writer tasks (each with its own connection), so one batch can run its statements
    /// while another waits for its commit; `log_head` keeps positions in commit order.
    pub(crate) writers: usize,
    /// Most changes in one batch.
    pub(crate) max_batch: usize,
}

struct WriterLoop {
    pool: PgPool,
    channels: Channels,
    max_batch: usize,
    feed: Arc<Feed>,
    #[cfg(feature = "testkit")]
    hold: HoldSlot,
    last_commit: LastCommit,
    /// The writer's own connection, kept between batches (its prepared statements too);
    /// dropped after an error and acquired again for the next batch.
    conn: Option<PoolConnection<Postgres>>,
    /// When the connection's statements were last prepared afresh (see [`REPLAN_EVERY`]).
    planned: Instant,
}

impl WriterLoop {
    async fn run(mut self, queue: Arc<tokio::sync::Mutex<mpsc::Receiver<Change>>>) {
        let mut batch: Vec<Change> = Vec::with_capacity(self.max_batch);
        // The queue is held only while taking a batch: the next writer takes the next one
        // while this one commits. It ends once closed and empty.
        while queue.lock().await.recv_many(&mut batch, self.max_batch).await > 0 {
            // Their callers are gone (the answer deadline passed): never committed late.
            batch.retain(|change| !change.abandoned());
            if batch.is_empty() {
                continue;
            }
            self.run_changes(&mut batch).await;
            for change in batch.drain(..) {
                change.answer();
            }
        }
    }

    /// Sets the answer of every change of `batch`: committed together; or all failed with
    /// one shared error when the database cannot serve; or, after any other failure, each
    /// change run alone (skipping those whose caller left meanwhile).
    async fn run_changes(&mut self, batch: &mut [Change]) {
        let error = match self.commit_with_retries(batch).await {
            Ok(()) => return,
            Err(error) => error,
        };
        if error.is_unavailable() {
            tracing::warn!(%error, jobs = batch.len(), "batch failed: the database cannot serve");
            let error = Error::from(error);
            for change in batch {
                change.fail(error.clone());
            }
            return;
        }
        tracing::warn!(%error, jobs = batch.len(), "batch failed; running its jobs alone");
        let mut unavailable: Option<Error> = None;
        for change in batch {
            if let Some(error) = &unavailable {
                change.fail(error.clone());
                continue;
            }
            if change.abandoned() {
                change.fail(Error::unavailable("the caller stopped waiting"));
                continue;
            }
            if let Err(error) = self.commit_with_retries(std::slice::from_mut(change)).await {
                let cannot_serve = error.is_unavailable();
                let error = Error::from(error);
                if cannot_serve {
                    unavailable = Some(error.clone());
                }
                change.fail(error);
            }
        }
    }

    /// Commits `changes`, retrying what callers must not see: deadlocks, serialization
    /// failures and unique violations (then looking stored idempotency keys up first), and
    /// appends to conversations that do not exist (answered `not_found`, the rest rerun).
    async fn commit_with_retries(&mut self, changes: &mut [Change]) -> Result<(), PgError> {
        let mut attempt = 0;
        let mut missing = HashSet::new();
        let mut lookup_keys = false;
        let mut lock_reactions = false;
        loop {
            match self.commit(changes, &missing, lookup_keys, lock_reactions).await {
                Err(error) if error.is_stale_reactions() && !lock_reactions => {
                    // Another writer changed a message this batch reacted to after it was
                    // read: again at once, with the rows locked, which cannot race.
                    tracing::debug!("reaction summaries changed under a batch; locking them");
                    lock_reactions = true;
                }
                Err(error) if is_missing_conversation(&error) && missing.is_empty() => {
                    missing = self.missing_conversations(changes).await?;
                    if missing.is_empty() {
                        return Err(error);
                    }
                }
                Err(error) if error.is_retryable() && attempt < RETRIES => {
                    attempt += 1;
                    lookup_keys = true;
                    tracing::debug!(%error, attempt, "retrying a batch");
                    if attempt > 1 {
                        tokio::time::sleep(Duration::from_millis(1 << attempt.min(6))).await;
                    }
                }
                other => return other,
            }
        }
    }

    /// The conversations `changes` append to that do not exist.
    async fn missing_conversations(&self, changes: &[Change]) -> Result<HashSet<Uuid>, PgError> {
        let wanted: Vec<Uuid> = changes
            .iter()
            .filter_map(|change| match change {
                Change::Append(append) => Some(*append.request.conversation_id.as_uuid()),
                _ => None,
            })
            .collect();
        let found: HashSet<Uuid> =
            sqlx::query_scalar("SELECT id FROM conversations WHERE id = ANY($1)")
                .bind(&wanted)
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .collect();
        Ok(wanted.into_iter().filter(|id| !found.contains(id)).collect())
    }

    /// One attempt: sets the answer of every change when it commits (and of none when it
    /// fails). A batch of appends and reactions alone runs without an explicit transaction:
    /// the reactions' read, then one statement in its own implicit transaction (just that
    /// statement when there are no reactions). Other changes, reactions to be locked
    /// (`lock_reactions`, after a race) or an armed hold make it an explicit transaction
    /// with that statement last.
    async fn commit(
        &mut self,
        changes: &mut [Change],
        missing: &HashSet<Uuid>,
        lookup_keys: bool,
        lock_reactions: bool,
    ) -> Result<(), PgError> {
        let mut conn = match self.conn.take() {
            Some(mut conn) if self.planned.elapsed() >= REPLAN_EVERY => {
                conn.clear_cached_statements().await?;
                self.planned = Instant::now();
                conn
            }
            Some(conn) => conn,
            None => {
                let mut conn = self.pool.acquire().await?;
                // Its session setting must not reach the pool's other users.
                conn.close_on_drop();
                sqlx::query(GENERIC_PLANS).execute(&mut *conn).await?;
                self.planned = Instant::now();
                conn
            }
        };
        #[cfg(feature = "testkit")]
        let mut hold = self.hold.lock().unwrap_or_else(PoisonError::into_inner).take();
        #[cfg(feature = "testkit")]
        let held = hold.is_some();
        #[cfg(not(feature = "testkit"))]
        let held = false;
        let alone = !held
            && !lock_reactions
            && changes.iter().all(|c| matches!(c, Change::Append(_) | Change::React(_)));
        let done = if alone {
            self.run_batch(&mut conn, changes, missing, lookup_keys, false).await
        } else {
            match conn.begin().await {
                Ok(mut tx) => {
                    match self.run_batch(&mut tx, changes, missing, lookup_keys, true).await {
                        Ok(done) => {
                            #[cfg(feature = "testkit")]
                            if let (Some(first), Some(point)) = (done.1, hold.take()) {
                                point.hold(first).await;
                            }
                            tx.commit().await.map(|()| done).map_err(PgError::from)
                        }
                        Err(error) => Err(error),
                    }
                }
                Err(error) => Err(error.into()),
            }
        };
        #[cfg(feature = "testkit")]
        if let Some(point) = hold {
            // Nothing was logged: the hold waits for the next batch that logs events.
            *self.hold.lock().unwrap_or_else(PoisonError::into_inner) = Some(point);
        }
        let (events, first) = match done {
            Ok(done) => done,
            Err(error) => {
                // Answers only ever come from an attempt that committed.
                for change in changes {
                    change.forget_outcome();
                }
                if error.is_stale_reactions() {
                    // Its implicit transaction ended with the statement: the connection is
                    // clean, and the rerun needs no new one (nor a wait for a pool slot).
                    self.conn = Some(conn);
                }
                return Err(error);
            }
        };
        self.conn = Some(conn);
        if !alone || first.is_some() {
            // A transaction committed (an implicit one only when its statement ran).
            *self.last_commit.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        }
        if let Some(first) = first {
            self.feed.local(
                events
                    .into_iter()
                    .zip(first..)
                    .map(|(pending, position)| CommittedEvent {
                        logged: LoggedEvent { position, event: pending.event },
                        audience: pending.audience,
                    })
                    .collect(),
            );
        }
        Ok(())
    }

    /// The batch's statements on `conn`: the single-row changes one by one, then the
    /// reactions' read (`FOR UPDATE` when `in_transaction`), then the appends, the
    /// reactions' summaries and the log in one statement. Sets each change's answer;
    /// returns the events logged and the first position (`None` when nothing was logged).
    async fn run_batch(
        &self,
        conn: &mut PgConnection,
        changes: &mut [Change],
        missing: &HashSet<Uuid>,
        lookup_keys: bool,
        in_transaction: bool,
    ) -> Result<(Vec<PendingEvent>, Option<u64>), PgError> {
        let mut events: Vec<PendingEvent> = Vec::new();
        let mut appends: Vec<&mut Pending<NewMessage, Appended>> = Vec::new();
        let mut reacting: Vec<&mut Pending<ReactionUpdate, Reacted>> = Vec::new();
        let blocks = &self.channels.blocks;
        for change in changes {
            let conn = &mut *conn;
            match change {
                Change::Append(append) => appends.push(append),
                Change::React(react) => reacting.push(react),
                Change::Open(open) => {
                    let outcome = write::open_direct(conn, &open.request, &mut events).await?;
                    open.set(outcome);
                }
                Change::Edit(edit) => {
                    let outcome = write::edit(conn, &edit.request, &mut events).await?;
                    edit.set(outcome);
                }
                Change::Delete(delete) => {
                    let outcome = write::delete(conn, &delete.request, &mut events).await?;
                    delete.set(outcome);
                }
                Change::Mark(mark) => {
                    let outcome = write::mark(conn, &mark.request, &mut events).await?;
                    mark.set(outcome);
                }
                Change::UpdateMember(update) => {
                    let outcome =
                        settings::update_member(conn, &update.request, &mut events).await?;
                    update.set(outcome);
                }
                Change::SetMetadata(update) => {
                    let outcome =
                        settings::set_metadata(conn, &update.request, &mut events).await?;
                    update.set(outcome);
                }
                Change::Block(block) => {
                    let (blocking, max) = block.request;
                    block.set(write::block(conn, blocking, max, blocks).await?);
                }
                Change::Unblock(unblock) => {
                    let blocking = unblock.request;
                    unblock.set(write::unblock(conn, blocking, blocks).await?);
                }
                Change::LastSeen(last_seen) => {
                    let (user, at) = last_seen.request;
                    last_seen.set(write::set_last_seen(conn, user, at).await?);
                }
                Change::Revoke(revoke) => {
                    let (user, at) = revoke.request;
                    revoke.set(write::revoke(conn, user, at, &self.channels.revocations).await?);
                }
                Change::Probe(probe) => probe.set(write::probe(conn).await?),
            }
        }
        let reacted =
            reactions::react_all(&mut *conn, &mut reacting, &mut events, in_transaction).await?;
        let news: Vec<&NewMessage> = appends.iter().map(|append| &append.request).collect();
        let mut plan = Appends::new(&news, missing);
        if lookup_keys || plan.keyed_replies() {
            plan.resolve_stored(&mut *conn).await?;
        }
        plan.check_replies(&mut *conn).await?;
        let (appended, logged, first) =
            log_batch::append_and_log(conn, plan, &reacted, events, &self.channels.log).await?;
        for (append, outcome) in appends.iter_mut().zip(appended) {
            append.set(outcome);
        }
        Ok((logged, first))
    }
}

/// A NOT NULL violation of the append statement: some appended conversation is missing.
fn is_missing_conversation(error: &PgError) -> bool {
    error.sqlstate().as_deref() == Some(log_batch::MISSING_CONVERSATION)
}
