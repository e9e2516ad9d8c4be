//! [`Consumer`]: a durable, named reader of the whole event log.
//!
//! Sessions see the events of their user, live, and lose nothing only while connected (a
//! client resumes with `sync`). A host also needs every event, for everyone, once it
//! happened and even when it was down meanwhile: webhooks to its backend, mobile push,
//! its own search index. A consumer is that reader: it reads the log in order from a
//! position stored under its name, in batches, and moves the position forward only when
//! its caller says a batch was handled ([`Consumer::commit`]). Delivery is therefore at
//! least once: after a crash (or a lost lease) the batch that was not committed is read
//! again; nothing is ever skipped, since the committed log is dense and read in order.
//!
//! One holder at a time: a lease, stored beside the position
//! ([`ConsumerLog`](crate::store::ConsumerLog)), names the consumer object that may move it. On a database shared by
//! several processes, each may run the consumer; one holds it, the others claim it again
//! every quarter of the lease and take over once the holder's lease has expired (it died,
//! or hung). Lease times are the store's clock, so instances whose clocks disagree never
//! both hold it. The holder renews its lease while it waits for events, at every commit,
//! and through [`Consumer::renew`] when it spends long on one batch.
//!
//! Waiting is cheap: the consumer is woken by the store's feed of committed events
//! ([`EventLog::attach_feed`](crate::store::EventLog::attach_feed)) and looks at the log's
//! head at least once a second anyway, so a feed that lags delays it, never stalls it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::model::{CommittedEvent, LogEntry};
use crate::store::{FeedSink, Store};

/// The longest a consumer waits without looking at the log's head.
const POLL: Duration = Duration::from_secs(1);

/// The most entries a batch may be asked for.
const MAX_BATCH: usize = 1000;

/// The shortest lease.
const MIN_LEASE: Duration = Duration::from_secs(1);

/// The longest lease: a consumer whose holder died stays stuck for its lease, and
/// every store's time arithmetic stays far within range.
const MAX_LEASE: Duration = Duration::from_secs(24 * 60 * 60);

/// Where a consumer starts the first time it is claimed (when no position is stored under
/// its name yet). Once a position is stored, it goes on from there whatever this says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConsumerStart {
    /// The log's head when the consumer is first claimed: turning a consumer on does not
    /// replay history, and it delivers every event committed after that.
    #[default]
    Head,
    /// The log's beginning: every event ever logged.
    Beginning,
}

/// How a [`Consumer`] reads and holds its lease; built from the defaults with the
/// setters:
///
/// ```
/// use std::time::Duration;
/// use messaging_core::{ConsumerOptions, ConsumerStart};
///
/// let options = ConsumerOptions::default()
///     .batch(500)
///     .lease(Duration::from_secs(30))
///     .start(ConsumerStart::Beginning);
/// assert_eq!((options.batch, options.start), (500, ConsumerStart::Beginning));
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ConsumerOptions {
    /// The most entries [`Consumer::next_batch`] returns: 1 to 1,000 (default 100).
    pub batch: usize,
    /// How long a claim or a renewal holds the consumer: at least 1 s, at most 24 h
    /// (default 20 s). Another instance takes over within about this long after the
    /// holder died; the holder renews every quarter of it while it waits, and a caller
    /// that spends longer than this on one batch calls [`Consumer::renew`].
    pub lease: Duration,
    /// Where it starts when no position is stored under its name yet (default
    /// [`ConsumerStart::Head`]).
    pub start: ConsumerStart,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        Self { batch: 100, lease: Duration::from_secs(20), start: ConsumerStart::Head }
    }
}

impl ConsumerOptions {
    /// Sets the most entries per batch (1 to 1,000).
    #[must_use]
    pub fn batch(mut self, batch: usize) -> Self {
        self.batch = batch;
        self
    }

    /// Sets the lease (1 s to 24 h).
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Sets where a consumer without a stored position starts.
    #[must_use]
    pub fn start(mut self, start: ConsumerStart) -> Self {
        self.start = start;
        self
    }

    /// `Invalid` unless the batch and the lease are in range.
    pub(crate) fn validate(&self) -> Result<()> {
        if !(1..=MAX_BATCH).contains(&self.batch) {
            return Err(Error::invalid(format!("batch must be 1 to {MAX_BATCH}")));
        }
        if !(MIN_LEASE..=MAX_LEASE).contains(&self.lease) {
            return Err(Error::invalid("lease must be at least 1 s and at most 24 h"));
        }
        Ok(())
    }
}

/// Checks a consumer name: 1 to 64 bytes of ASCII letters, digits, `_`, `.` and `-`.
pub(crate) fn validate_name(name: &str) -> Result<()> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-');
    if name.is_empty() || name.len() > 64 || !name.bytes().all(allowed) {
        return Err(Error::invalid(
            "a consumer name is 1 to 64 bytes of letters, digits, '_', '.' and '-'",
        ));
    }
    Ok(())
}

/// The feed sink of a consumer: remembers the newest position committed and wakes the
/// consumer's wait.
#[derive(Default)]
struct Wake {
    head: AtomicU64,
    notify: Notify,
}

impl FeedSink for Wake {
    fn start(&self, head: u64) {
        self.head.fetch_max(head, Ordering::AcqRel);
        self.notify.notify_one();
    }

    fn committed(&self, events: &[CommittedEvent]) {
        if let Some(last) = events.last() {
            self.head.fetch_max(last.logged.position, Ordering::AcqRel);
        }
        // One stored permit: a commit between two waits still ends the next one.
        self.notify.notify_one();
    }
}

/// A durable consumer of the whole event log; from
/// [`Messenger::consumer`](crate::Messenger::consumer).
///
/// It reads every durable event, for everyone, in log order from the position stored
/// under its name, and moves that position only when its caller commits: at least once,
/// after a restart or a crash too, and never skipping an event. A lease stored beside the
/// position (on the store's clock) lets one consumer object hold the name at a time: on a
/// database shared by several processes, the others claim it again every quarter of the
/// lease and take over once the holder's lease expired or was released.
///
/// The loop of a caller, at least once:
///
/// ```no_run
/// # async fn demo(messenger: messaging_core::Messenger) -> messaging_core::Result<()> {
/// use messaging_core::{ConsumerOptions, Error};
///
/// let mut consumer = messenger.consumer("push", ConsumerOptions::default())?;
/// loop {
///     let batch = consumer.next_batch().await?;
///     // … hand `batch` to the push service …
///     let Some(last) = batch.last() else { continue };
///     match consumer.commit(last.logged.position).await {
///         Ok(()) => {}
///         // Another instance took over: what was not committed is its to deliver.
///         Err(Error::Conflict(_)) => continue,
///         Err(error) => return Err(error),
///     }
/// }
/// # }
/// ```
///
/// Dropping it without [`Consumer::release`] (a crash) leaves the lease to expire: another
/// holder takes over once it has, from the last committed position.
pub struct Consumer {
    store: Arc<dyn Store>,
    name: String,
    /// This object's own holder id: two consumer objects of one name are two holders.
    holder: Uuid,
    options: ConsumerOptions,
    /// When this object last claimed, renewed or committed successfully; `None` while it
    /// does not hold the consumer (before the first claim, after a lost lease).
    held_since_renewal: Option<Instant>,
    position: u64,
    /// Handled up to here ([`Consumer::advance`]), stored at the next renewal; at least
    /// `position`.
    advanced: u64,
    /// The head as last read from the store.
    head: u64,
    wake: Arc<Wake>,
    attached: bool,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("name", &self.name)
            .field("holder", &self.holder)
            .field("held", &self.held_since_renewal.is_some())
            .field("position", &self.position)
            .field("head", &self.head())
            .finish_non_exhaustive()
    }
}

impl Consumer {
    /// A consumer named `name` (checked) over `store`, with `options` (checked).
    pub(crate) fn new(store: Arc<dyn Store>, name: &str, options: ConsumerOptions) -> Self {
        Self {
            store,
            name: name.to_owned(),
            holder: Uuid::now_v7(),
            options,
            held_since_renewal: None,
            position: 0,
            advanced: 0,
            head: 0,
            wake: Arc::new(Wake::default()),
            attached: false,
        }
    }

    /// Its name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits until this object holds the consumer (claiming it again every quarter of the
    /// lease while another holder's lease is live) and there are events past its position;
    /// returns the next batch: 1 to `batch` entries, in log order, the first just after
    /// [`Consumer::position`]. It renews the lease while it waits. It wakes on new commits
    /// through the store's feed, and looks at the log's head at least every second.
    ///
    /// Calling it again without a commit returns the same events again (at least once).
    /// Cancel-safe: dropping the future loses nothing (a claim it made is renewed by the
    /// next call, with the same holder id). Events of kinds this build does not know
    /// (written by a newer version) are skipped: a stretch of nothing else is committed
    /// past. Store failures are returned; calling again retries.
    pub async fn next_batch(&mut self) -> Result<Vec<LogEntry>> {
        self.attach().await?;
        loop {
            if self.held_since_renewal.is_none() {
                if !self.claim().await? {
                    tokio::time::sleep(self.options.lease / 4).await;
                    continue;
                }
            } else if self.renewal_due() {
                // The renewal stores what was advanced meanwhile.
                let kept = if self.advanced > self.position {
                    self.store_position(self.advanced).await?
                } else {
                    self.claim().await?
                };
                if !kept {
                    continue;
                }
            }
            let head = self.store.head().await?;
            self.head = self.head.max(head);
            let after = self.position();
            if head > after {
                let batch = self.store.read_log(after, head, self.options.batch).await?;
                if !batch.is_empty() {
                    return Ok(batch);
                }
                // Only kinds this build does not know lie up to the head: past them.
                if !self.store_position(head).await? {
                    continue;
                }
            }
            let renewal = self.renewal_at().saturating_duration_since(Instant::now());
            let _ = tokio::time::timeout(POLL.min(renewal), self.wake.notify.notified()).await;
        }
    }

    /// Records that every event up to `position` was handled, and renews the lease. The
    /// stored position never moves backwards: a lower `position` renews and stores
    /// nothing. A position beyond the head this consumer has seen: `Invalid` (it would
    /// skip events it never read).
    ///
    /// A lost lease (another holder took over, or this object never claimed it):
    /// `Conflict`, and nothing stored; the caller drops what it has not committed (the new
    /// holder delivers it) and calls [`Consumer::next_batch`] again, which waits to claim
    /// it back.
    pub async fn commit(&mut self, position: u64) -> Result<()> {
        if position > self.head() {
            return Err(Error::invalid("a consumer commits only positions it has read"));
        }
        self.held()?;
        if self.store_position(position).await? { Ok(()) } else { Err(lost()) }
    }

    /// Records that every event up to `position` was handled without a write now: the
    /// next batch starts after it, and it is stored with the lease's next renewal (within a
    /// quarter of the lease), by [`Consumer::commit`], [`Consumer::renew`] or
    /// [`Consumer::release`]. A crash before then hands those events out again (at least
    /// once). For a consumer that handles batches faster than its store commits (a
    /// webhook at the capacity load: each commit would wait behind every queued send).
    /// Same errors as [`Consumer::commit`], with no lease lost being noticed until the
    /// renewal.
    pub fn advance(&mut self, position: u64) -> Result<()> {
        if position > self.head() {
            return Err(Error::invalid("a consumer advances only to positions it has read"));
        }
        self.held()?;
        self.advanced = self.advanced.max(position);
        Ok(())
    }

    /// Renews the lease (storing what was advanced), for a caller that spends long on one
    /// batch (a webhook retried without end): call it well within the lease. A lost lease:
    /// `Conflict`, as for [`Consumer::commit`].
    pub async fn renew(&mut self) -> Result<()> {
        self.held()?;
        if self.store_position(self.position()).await? { Ok(()) } else { Err(lost()) }
    }

    /// The position handled so far: what [`Consumer::commit`] stored or
    /// [`Consumer::advance`] recorded last, or the position claimed (0 before the first
    /// claim).
    #[must_use]
    pub fn position(&self) -> u64 {
        self.position.max(self.advanced)
    }

    /// The log's head as last seen (read by [`Consumer::next_batch`], or fed since): with
    /// [`Consumer::position`], the events pending (`head - position`).
    #[must_use]
    pub fn head(&self) -> u64 {
        self.head.max(self.wake.head.load(Ordering::Acquire))
    }

    /// Gives the lease up, keeping the position (what was advanced is stored first):
    /// another holder may claim the consumer at once. Nothing to give up when it is not
    /// held.
    pub async fn release(mut self) -> Result<()> {
        if self.held_since_renewal.is_some() && self.advanced > self.position {
            self.store_position(self.advanced).await?;
        }
        self.store.release_consumer(&self.name, self.holder).await
    }

    /// Attaches the wake-up sink to the store's feed, once.
    async fn attach(&mut self) -> Result<()> {
        if !self.attached {
            self.store.attach_feed(self.wake.clone()).await?;
            self.attached = true;
        }
        Ok(())
    }

    /// Claims (or renews) the consumer; whether this object holds it now. A first claim
    /// stores the start: the head read now, or 0 (a renewal finds the row stored).
    async fn claim(&mut self) -> Result<bool> {
        let start = match self.options.start {
            _ if self.held_since_renewal.is_some() => self.position,
            ConsumerStart::Head => self.store.head().await?,
            ConsumerStart::Beginning => 0,
        };
        let claimed =
            self.store.claim_consumer(&self.name, self.holder, self.options.lease, start).await?;
        match claimed {
            Some(position) => {
                // A renewal keeps what was advanced; a claim after losing the lease starts
                // over from what the store has.
                if self.held_since_renewal.is_none() {
                    self.advanced = position;
                }
                self.position = position;
                self.head = self.head.max(start);
                self.held_since_renewal = Some(Instant::now());
                Ok(true)
            }
            None => {
                self.held_since_renewal = None;
                Ok(false)
            }
        }
    }

    /// Commits `position` and renews; whether this object still holds the consumer.
    async fn store_position(&mut self, position: u64) -> Result<bool> {
        let lease = self.options.lease;
        let kept = self.store.commit_consumer(&self.name, self.holder, position, lease).await?;
        if kept {
            self.position = self.position.max(position);
            self.held_since_renewal = Some(Instant::now());
        } else {
            self.held_since_renewal = None;
        }
        Ok(kept)
    }

    /// `Conflict` unless this object believes it holds the consumer.
    fn held(&self) -> Result<()> {
        match self.held_since_renewal {
            Some(_) => Ok(()),
            None => Err(lost()),
        }
    }

    /// When the lease is next renewed while waiting: a quarter of it after the last
    /// renewal.
    fn renewal_at(&self) -> Instant {
        let renewed = self.held_since_renewal.unwrap_or_else(Instant::now);
        renewed + self.options.lease / 4
    }

    fn renewal_due(&self) -> bool {
        Instant::now() >= self.renewal_at()
    }
}

/// The answer of a consumer that does not hold its lease.
fn lost() -> Error {
    Error::conflict("another holder took the consumer over")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ranges() {
        for good in ["a", "webhooks", "push.v2", "A-b_c.9", &"x".repeat(64)] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in ["", "with space", "slash/", "é", "nul\0", &"x".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        let options = ConsumerOptions::default();
        assert!(options.validate().is_ok());
        assert_eq!((options.batch, options.lease), (100, Duration::from_secs(20)));
        assert_eq!(options.start, ConsumerStart::Head);
        for batch in [0, 1001] {
            assert!(ConsumerOptions::default().batch(batch).validate().is_err(), "{batch}");
        }
        for batch in [1, 1000] {
            assert!(ConsumerOptions::default().batch(batch).validate().is_ok(), "{batch}");
        }
        for lease in [Duration::from_millis(999), MAX_LEASE + Duration::from_millis(1)] {
            assert!(ConsumerOptions::default().lease(lease).validate().is_err(), "{lease:?}");
        }
        for lease in [MIN_LEASE, MAX_LEASE] {
            assert!(ConsumerOptions::default().lease(lease).validate().is_ok(), "{lease:?}");
        }
    }
}
