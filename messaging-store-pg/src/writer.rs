//! The batching writer: one per store object (per process).
//!
//! Callers queue jobs; the writer takes everything queued (up to `max_batch`) and commits
//! it as one transaction: the caller-level checks and single-row changes first, then all
//! appends in a bounded number of statements, and last the log (`log_head`, the event rows,
//! one NOTIFY). Replies go out after the commit, so a reply means durable.
//!
//! Deadlocks, serialization failures and unique violations (another process stored the same
//! key first) roll the batch back and run it again, up to a few times: callers never see
//! them. Any other database error runs each job of the batch alone, so one bad job fails
//! alone.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use messaging_core::{
    Appended, CommittedEvent, DeleteMessage, Deleted, EditMessage, Error, HoldPoint, LoggedEvent,
    MarkUpdate, Marked, Message, NewConversation, NewMessage, Opened, Result, Timestamp, UserId,
};
use sqlx::{Connection, PgPool};
use tokio::sync::{mpsc, oneshot};

use crate::codec::{db_err, is_retryable};
use crate::feed::Feed;
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
    Block { blocker: UserId, blocked: UserId, on: bool },
    LastSeen { user: UserId, at: Timestamp },
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

/// The callers' handle on the writer task.
pub(crate) struct Writer {
    tx: mpsc::Sender<Job>,
    hold: Arc<Mutex<Option<HoldPoint>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    /// Starts the writer task over `pool`; each commit's events go to `feed`.
    pub(crate) fn start(pool: PgPool, channel: String, max_batch: usize, feed: Arc<Feed>) -> Self {
        let (tx, rx) = mpsc::channel(max_batch.max(1) * 4);
        let hold = Arc::new(Mutex::new(None));
        let task = tokio::spawn(
            WriterLoop { pool, channel, max_batch: max_batch.max(1), feed, hold: hold.clone() }
                .run(rx),
        );
        Self { tx, hold, task }
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
        self.task.abort();
    }
}

struct WriterLoop {
    pool: PgPool,
    channel: String,
    max_batch: usize,
    feed: Arc<Feed>,
    hold: Arc<Mutex<Option<HoldPoint>>>,
}

impl WriterLoop {
    async fn run(self, mut rx: mpsc::Receiver<Job>) {
        let mut batch = Vec::with_capacity(self.max_batch);
        while rx.recv_many(&mut batch, self.max_batch).await > 0 {
            let changes: Vec<&Change> = batch.iter().map(|j| &j.change).collect();
            let outcomes = match self.commit_with_retries(&changes).await {
                Ok(outcomes) => outcomes,
                Err(error) => {
                    tracing::warn!(%error, jobs = changes.len(), "batch failed; running its jobs alone");
                    let mut alone = Vec::with_capacity(changes.len());
                    for change in &changes {
                        alone.push(match self.commit_with_retries(&[change]).await {
                            Ok(mut one) => {
                                one.pop().unwrap_or_else(|| Err(Error::unavailable("no outcome")))
                            }
                            Err(error) => Err(db_err(error)),
                        });
                    }
                    alone
                }
            };
            for (job, outcome) in batch.drain(..).zip(outcomes) {
                let _ = job.reply.send(outcome);
            }
        }
    }

    async fn commit_with_retries(
        &self,
        changes: &[&Change],
    ) -> std::result::Result<Vec<Result<Done>>, sqlx::Error> {
        let mut attempt = 0;
        loop {
            match self.commit(changes).await {
                Err(error) if is_retryable(&error) && attempt < RETRIES => {
                    attempt += 1;
                    tracing::debug!(%error, attempt, "retrying a batch");
                    tokio::time::sleep(Duration::from_millis(2 << attempt.min(6))).await;
                }
                other => return other,
            }
        }
    }

    async fn commit(
        &self,
        changes: &[&Change],
    ) -> std::result::Result<Vec<Result<Done>>, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin().await?;
        let mut events: Vec<PendingEvent> = Vec::new();
        let mut outcomes: Vec<Option<Result<Done>>> = (0..changes.len()).map(|_| None).collect();
        let mut appends: Vec<(usize, &NewMessage)> = Vec::new();
        for (i, change) in changes.iter().enumerate() {
            let conn = &mut *tx;
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
                Change::Block { blocker, blocked, on } => {
                    write::set_block(conn, *blocker, *blocked, *on).await?.map(|()| Done::Nothing)
                }
                Change::LastSeen { user, at } => {
                    write::set_last_seen(conn, *user, *at).await?.map(|()| Done::Nothing)
                }
            });
        }
        if !appends.is_empty() {
            let news: Vec<&NewMessage> = appends.iter().map(|(_, n)| *n).collect();
            let appended = write::append_all(&mut tx, &news, &mut events).await?;
            for ((i, _), outcome) in appends.iter().zip(appended) {
                outcomes[*i] = Some(outcome.map(Done::Appended));
            }
        }
        let hold = if events.is_empty() {
            None
        } else {
            self.hold.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
        };
        let first = write::log_events(&mut tx, &events, &self.channel, hold).await?;
        tx.commit().await?;
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
        Ok(outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Err(Error::unavailable("change was not run"))))
            .collect())
    }
}
