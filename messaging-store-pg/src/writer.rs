//! The batching writer: one queue per store object (per process).
//!
//! Callers queue jobs; a writer task takes everything queued (up to `max_batch`) and
//! commits it as one transaction: the single-row changes first, then the appends and the
//! log in one statement (see `log_batch.rs`). A batch of appends alone is that statement
//! and nothing else: one round trip. Replies go out after the commit, so a reply means
//! durable. Two writer tasks (`PgOptions::writers`) share the queue, each on its own
//! connection, so one batch runs its statement while the other waits for its fsync; the
//! `log_head` row lock keeps positions in commit order across them (and across processes).
//!
//! Deadlocks, serialization failures and unique violations (another writer stored the same
//! key first) roll the batch back and run it again, then looking stored keys up first:
//! callers never see them. Appends to a conversation that does not exist fail the
//! statement; those appends are answered `not_found` and the rest run again.
//!
//! When the database cannot serve (the connection is lost or cannot be had, the server is
//! shutting down, a statement ran past `statement_timeout`: `codec::is_unavailable`), every
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

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use messaging_core::{
    Appended, CommittedEvent, DeleteMessage, Deleted, EditMessage, Error, HoldPoint, LoggedEvent,
    MarkUpdate, Marked, Message, NewConversation, NewMessage, Opened, Result, Timestamp, UserId,
};
use std::collections::HashSet;

use sqlx::pool::PoolConnection;
use sqlx::{Connection, PgConnection, PgPool, Postgres};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::Channels;
use crate::codec::{db_err, is_retryable, is_unavailable};
use crate::feed::Feed;
use crate::log_batch::{self, Appends};
use crate::write::{self, PendingEvent};

const RETRIES: usize = 8;

/// A change to make.
#[derive(Debug)]
pub(crate) enum Change {
    Open(NewConversation),
    Append(NewMessage),
    Edit(EditMessage),
    Delete(DeleteMessage),
    Mark(MarkUpdate),
    /// Blocks `blocked` (unless `blocker` blocks `max` others already) when `on`, else
    /// unblocks.
    Block {
        blocker: UserId,
        blocked: UserId,
        on: bool,
        max: usize,
    },
    LastSeen {
        user: UserId,
        at: Timestamp,
    },
    /// Rewrites the probe row: a durable commit that nobody sees (see `StoreHealth`).
    Probe,
}

/// What a change produced.
#[derive(Debug, Clone)]
pub(crate) enum Done {
    Opened(Opened),
    Appended(Appended),
    Message(Message),
    Deleted(Deleted),
    Marked(Marked),
    Nothing,
}

struct Job {
    change: Change,
    reply: oneshot::Sender<Result<Done>>,
}

/// When a writer task last completed a commit (shared by the writer tasks and the store).
pub(crate) type LastCommit = Arc<Mutex<Option<Instant>>>;

/// The callers' handle on the writer task.
pub(crate) struct Writer {
    tx: mpsc::Sender<Job>,
    hold: Arc<Mutex<Option<HoldPoint>>>,
    last_commit: LastCommit,
    tasks: Vec<tokio::task::JoinHandle<()>>,
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
        let hold = Arc::new(Mutex::new(None));
        let last_commit: LastCommit = Arc::new(Mutex::new(None));
        let tasks = (0..limits.writers.max(1))
            .map(|_| {
                tokio::spawn(
                    WriterLoop {
                        pool: pool.clone(),
                        channels: channels.clone(),
                        max_batch,
                        feed: feed.clone(),
                        hold: hold.clone(),
                        last_commit: last_commit.clone(),
                        conn: None,
                    }
                    .run(rx.clone()),
                )
            })
            .collect();
        Self { tx, hold, last_commit, tasks }
    }

    /// When a batch last committed (probes included).
    pub(crate) fn last_commit(&self) -> Option<Instant> {
        *self.last_commit.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Makes `change` in the next batch; resolves after it committed.
    pub(crate) async fn write(&self, change: Change) -> Result<Done> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job { change, reply })
            .await
            .map_err(|_| Error::unavailable("the PostgreSQL writer stopped"))?;
        rx.await.map_err(|_| Error::unavailable("the PostgreSQL writer stopped"))?
    }

    /// Arms a hold on the next batch that logs events (see `CommitHold`).
    pub(crate) fn arm_hold(&self, point: HoldPoint) {
        *self.hold.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(point);
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        for task in &self.tasks {
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
    hold: Arc<Mutex<Option<HoldPoint>>>,
    last_commit: LastCommit,
    /// The writer's own connection, kept between batches (its prepared statements too);
    /// dropped after an error and acquired again for the next batch.
    conn: Option<PoolConnection<Postgres>>,
}

impl WriterLoop {
    async fn run(mut self, queue: Arc<tokio::sync::Mutex<mpsc::Receiver<Job>>>) {
        let mut batch: Vec<Job> = Vec::with_capacity(self.max_batch);
        // The queue is held only while taking a batch: the next writer takes the next one
        // while this one commits.
        while queue.lock().await.recv_many(&mut batch, self.max_batch).await > 0 {
            // Their callers are gone (the answer deadline passed): never committed late.
            batch.retain(|job| !job.reply.is_closed());
            if batch.is_empty() {
                continue;
            }
            let outcomes = self.run_jobs(&batch).await;
            for (job, outcome) in batch.drain(..).zip(outcomes) {
                let _ = job.reply.send(outcome);
            }
        }
    }

    /// The outcome of every job of `batch`: committed together; or all failed with one
    /// shared error when the database cannot serve; or, after any other failure, each job
    /// run alone (skipping those whose caller left meanwhile).
    async fn run_jobs(&mut self, batch: &[Job]) -> Vec<Result<Done>> {
        let changes: Vec<&Change> = batch.iter().map(|j| &j.change).collect();
        let error = match self.commit_with_retries(&changes).await {
            Ok(outcomes) => return outcomes,
            Err(error) => error,
        };
        if is_unavailable(&error) {
            tracing::warn!(%error, jobs = batch.len(), "batch failed: the database cannot serve");
            return vec![Err(db_err(error)); batch.len()];
        }
        tracing::warn!(%error, jobs = batch.len(), "batch failed; running its jobs alone");
        let mut alone = Vec::with_capacity(batch.len());
        let mut unavailable: Option<Error> = None;
        for job in batch {
            if let Some(error) = &unavailable {
                alone.push(Err(error.clone()));
                continue;
            }
            if job.reply.is_closed() {
                alone.push(Err(Error::unavailable("the caller stopped waiting")));
                continue;
            }
            alone.push(match self.commit_with_retries(&[&job.change]).await {
                Ok(mut one) => one.pop().unwrap_or_else(|| Err(Error::unavailable("no outcome"))),
                Err(error) if is_unavailable(&error) => {
                    let error = db_err(error);
                    unavailable = Some(error.clone());
                    Err(error)
                }
                Err(error) => Err(db_err(error)),
            });
        }
        alone
    }

    /// Commits `changes`, retrying what callers must not see: deadlocks, serialization
    /// failures and unique violations (then looking stored idempotency keys up first), and
    /// appends to conversations that do not exist (answered `not_found`, the rest rerun).
    async fn commit_with_retries(
        &mut self,
        changes: &[&Change],
    ) -> std::result::Result<Vec<Result<Done>>, sqlx::Error> {
        let mut attempt = 0;
        let mut missing = HashSet::new();
        let mut lookup_keys = false;
        loop {
            match self.commit(changes, &missing, lookup_keys).await {
                Err(error) if is_missing_conversation(&error) && missing.is_empty() => {
                    missing = self.missing_conversations(changes).await?;
                    if missing.is_empty() {
                        return Err(error);
                    }
                }
                Err(error) if is_retryable(&error) && attempt < RETRIES => {
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
    async fn missing_conversations(
        &mut self,
        changes: &[&Change],
    ) -> std::result::Result<HashSet<Uuid>, sqlx::Error> {
        let wanted: Vec<Uuid> = changes
            .iter()
            .filter_map(|c| match c {
                Change::Append(new) => Some(*new.conversation_id.as_uuid()),
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

    /// One attempt. A batch of appends alone is one statement in its own implicit
    /// transaction; other changes (or an armed hold) make it an explicit transaction with
    /// that statement last.
    async fn commit(
        &mut self,
        changes: &[&Change],
        missing: &HashSet<Uuid>,
        lookup_keys: bool,
    ) -> std::result::Result<Vec<Result<Done>>, sqlx::Error> {
        let mut conn = match self.conn.take() {
            Some(conn) => conn,
            None => self.pool.acquire().await?,
        };
        let mut hold = self.hold.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        let alone = hold.is_none() && changes.iter().all(|c| matches!(c, Change::Append(_)));
        let done = if alone {
            self.run_batch(&mut conn, changes, missing, lookup_keys).await
        } else {
            match conn.begin().await {
                Ok(mut tx) => match self.run_batch(&mut tx, changes, missing, lookup_keys).await {
                    Ok((outcomes, events, first)) => {
                        if let (Some(first), Some(point)) = (first, hold.take()) {
                            point.hold(first).await;
                        }
                        tx.commit().await.map(|()| (outcomes, events, first))
                    }
                    Err(error) => Err(error),
                },
                Err(error) => Err(error),
            }
        };
        if let Some(point) = hold {
            // Nothing was logged: the hold waits for the next batch that logs events.
            *self.hold.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(point);
        }
        let (outcomes, events, first) = done?;
        self.conn = Some(conn);
        if !alone || first.is_some() {
            // A transaction committed (an implicit one only when its statement ran).
            *self.last_commit.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                Some(Instant::now());
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
        Ok(outcomes)
    }

    /// The batch's statements on `conn`: the other changes one by one, then the appends
    /// and the log in one statement.
    async fn run_batch(
        &self,
        conn: &mut PgConnection,
        changes: &[&Change],
        missing: &HashSet<Uuid>,
        lookup_keys: bool,
    ) -> std::result::Result<(Vec<Result<Done>>, Vec<PendingEvent>, Option<u64>), sqlx::Error> {
        let mut events: Vec<PendingEvent> = Vec::new();
        let mut outcomes: Vec<Option<Result<Done>>> = (0..changes.len()).map(|_| None).collect();
        let mut appends: Vec<(usize, &NewMessage)> = Vec::new();
        for (i, change) in changes.iter().enumerate() {
            let conn = &mut *conn;
            outcomes[i] = Some(match change {
                Change::Append(new) => {
                    appends.push((i, new));
                    continue;
                }
                Change::Open(new) => {
                    write::open_direct(conn, new, &mut events).await?.map(Done::Opened)
                }
                Change::Edit(edit) => {
                    write::edit(conn, edit, &mut events).await?.map(Done::Message)
                }
                Change::Delete(del) => {
                    write::delete(conn, del, &mut events).await?.map(Done::Deleted)
                }
                Change::Mark(update) => {
                    write::mark(conn, update, &mut events).await?.map(Done::Marked)
                }
                Change::Block { blocker, blocked, on, max } => {
                    let blocking = write::Blocking { blocker: *blocker, blocked: *blocked };
                    let channel = &self.channels.blocks;
                    if *on {
                        write::block(conn, blocking, *max, channel).await?
                    } else {
                        write::unblock(conn, blocking, channel).await?
                    }
                    .map(|()| Done::Nothing)
                }
                Change::LastSeen { user, at } => {
                    write::set_last_seen(conn, *user, *at).await?.map(|()| Done::Nothing)
                }
                Change::Probe => write::probe(conn).await?.map(|()| Done::Nothing),
            });
        }
        let news: Vec<&NewMessage> = appends.iter().map(|(_, n)| *n).collect();
        let mut plan = Appends::new(&news, missing);
        if lookup_keys {
            plan.resolve_stored(&mut *conn).await?;
        }
        let (appended, logged, first) =
            log_batch::append_and_log(conn, plan, events, &self.channels.log).await?;
        for ((i, _), outcome) in appends.iter().zip(appended) {
            outcomes[*i] = Some(outcome.map(Done::Appended));
        }
        let outcomes = outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Err(Error::unavailable("change was not run"))))
            .collect();
        Ok((outcomes, logged, first))
    }
}

/// A NOT NULL violation of the append statement: some appended conversation is missing.
fn is_missing_conversation(error: &sqlx::Error) -> bool {
    error.as_database_error().and_then(|e| e.code()).as_deref()
        == Some(log_batch::MISSING_CONVERSATION)
}
