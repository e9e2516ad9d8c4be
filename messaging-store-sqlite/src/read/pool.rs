//! The read connections.
//!
//! WAL lets readers run beside the writer without blocking it. A small pool of read-only
//! connections serves queries on tokio's blocking threads; each query starts a fresh read
//! transaction, so it sees everything committed before it started (in particular, every
//! write whose reply the caller has already received).
//!
//! A caller may stop waiting at any time (the server drops a request at its answer bound):
//! the query then still runs to its end on its blocking thread, and the connection goes
//! back to the pool from there, by a [`Lease`] the blocking closure owns. Before that, a
//! connection handed out to a future that was dropped never came back, while its permit
//! did: after as many cancellations as connections, every read failed.
//!
//! Each query is bounded in time by SQLite's progress handler (every
//! [`PROGRESS_PERIOD`] virtual-machine instructions): past the bound it is interrupted and
//! answered `Unavailable`, and the connection is ready for the next query.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use messaging_core::{Error, Result};
use rusqlite::{Connection, OpenFlags};
use tokio::sync::Semaphore;

use crate::error::{self, StoreResult};

/// Virtual-machine instructions between two calls of a read connection's progress handler:
/// the granularity of the time bound and of [`ReadPool::work`]. A call costs a clock read,
/// noise next to a thousand instructions.
pub(crate) const PROGRESS_PERIOD: i32 = 1_000;

/// A fixed set of read-only connections.
pub(crate) struct ReadPool {
    shared: Arc<PoolShared>,
    permits: Arc<Semaphore>,
    /// The number of connections (and of permits).
    size: u32,
    /// The longest a query may run before it is interrupted.
    bound: Duration,
    /// Progress-handler calls of every connection, for [`ReadPool::work`].
    work: Arc<AtomicU64>,
}

struct PoolShared {
    idle: Mutex<Vec<ReadConn>>,
}

impl PoolShared {
    fn lock(&self) -> MutexGuard<'_, Vec<ReadConn>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A read connection and the deadline its progress handler enforces.
struct ReadConn {
    conn: Connection,
    clock: Arc<QueryClock>,
}

/// The running query's deadline, shared with the connection's progress handler.
#[derive(Default)]
struct QueryClock {
    deadline: Mutex<Option<Instant>>,
    /// Set by the handler when it interrupted the query.
    fired: AtomicBool,
}

impl QueryClock {
    fn start(&self, bound: Duration) {
        self.fired.store(false, Ordering::Relaxed);
        *self.deadline.lock().unwrap_or_else(PoisonError::into_inner) =
            Instant::now().checked_add(bound);
    }

    fn stop(&self) {
        *self.deadline.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// The progress handler: `true` interrupts the statement.
    fn expired(&self) -> bool {
        let late = self
            .deadline
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|deadline| Instant::now() >= deadline);
        if late {
            self.fired.store(true, Ordering::Relaxed);
        }
        late
    }
}

/// A connection lent to one query, with the permit that counted it out. Dropping it (when
/// the query is done, on whichever thread, whether or not anyone still waits for the
/// answer) puts the connection back before the permit is released.
struct Lease {
    conn: Option<ReadConn>,
    pool: Arc<PoolShared>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            conn.clock.stop();
            self.pool.lock().push(conn);
        }
    }
}

/// Runs `query` on the leased connection within `bound`; the connection goes back to the
/// pool when this returns (the lease is dropped here, before the caller's permit).
fn run_read<T, F>(lease: Lease, bound: Duration, query: F) -> Result<T>
where
    F: FnOnce(&Connection) -> StoreResult<T>,
{
    let Some(read) = lease.conn.as_ref() else {
        return Err(Error::unavailable("no idle read connection"));
    };
    read.clock.start(bound);
    let result = match query(&read.conn).map_err(Error::from) {
        Err(error) if read.clock.fired.load(Ordering::Relaxed) => {
            tracing::warn!(%error, ?bound, "a read query was interrupted");
            Err(Error::unavailable("the query took too long"))
        }
        result => result,
    };
    drop(lease);
    result
}

/// A read-only connection to the database at `path`, waiting up to 5 s on locks.
pub(crate) fn open_read_only(path: &Path) -> StoreResult<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

impl ReadPool {
    /// Opens `size` connections to the database at `path`, each with the search file at
    /// `search` attached as `search`, and each query bounded to `bound`.
    pub(crate) fn open(
        path: &Path,
        search: &Path,
        size: usize,
        bound: Duration,
    ) -> StoreResult<Self> {
        let work = Arc::new(AtomicU64::new(0));
        let mut idle = Vec::with_capacity(size);
        for _ in 0..size.max(1) {
            let conn = open_read_only(path)?;
            let search = search.to_str().ok_or_else(|| {
                Error::unavailable("the search file's path is not UTF-8, which ATTACH needs")
            })?;
            conn.execute("ATTACH DATABASE ?1 AS search", [search])?;
            conn.set_prepared_statement_cache_capacity(64);
            let clock = Arc::new(QueryClock::default());
            let (handler_clock, handler_work) = (clock.clone(), work.clone());
            conn.progress_handler(
                PROGRESS_PERIOD,
                Some(move || {
                    handler_work.fetch_add(1, Ordering::Relaxed);
                    handler_clock.expired()
                }),
            )?;
            idle.push(ReadConn { conn, clock });
        }
        let permits = Arc::new(Semaphore::new(idle.len()));
        let size = u32::try_from(idle.len()).unwrap_or(u32::MAX);
        let shared = Arc::new(PoolShared { idle: Mutex::new(idle) });
        Ok(Self { shared, permits, size, bound, work })
    }

    /// Progress-handler calls of every read connection so far: the read work done, in
    /// units of [`PROGRESS_PERIOD`] instructions.
    pub(crate) fn work(&self) -> u64 {
        self.work.load(Ordering::Relaxed)
    }

    /// Runs `query` on an idle connection on a blocking thread. The connection returns to
    /// the pool when the query ends, even if this future was dropped before. This is where
    /// a read's error leaves the crate, converted to the core error.
    pub(crate) async fn read<T, F>(&self, query: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        // The semaphore is closed only by `close`.
        let permit = self.permits.clone().acquire_owned().await.map_err(|_| error::closed())?;
        let conn = self
            .shared
            .lock()
            .pop()
            .ok_or_else(|| Error::unavailable("no idle read connection"))?;
        let lease = Lease { conn: Some(conn), pool: self.shared.clone() };
        let bound = self.bound;
        // The permit comes back with the result and is released here, once the blocking
        // thread has finished the task: released inside the task, it let the next read
        // call `spawn_blocking` while this thread was still busy, and the runtime started
        // a thread for it (twice the threads, and their memory, under a stream of reads;
        // measured 2026-12-05). When this future is dropped first, the permit is dropped
        // with the task's output, on the blocking thread, when the task ends.
        let (result, permit) = tokio::task::spawn_blocking(move || {
            let result = run_read(lease, bound, query);
            (result, permit)
        })
        .await
        .map_err(Error::backend)?;
        drop(permit);
        result
    }

    /// Closes every connection once the reads running now are done (each within the
    /// bound), and fails every later read with "the SQLite store is closed". Closing twice
    /// is harmless.
    pub(crate) async fn close(&self) -> Result<()> {
        // Granted once every read queued before it has given its connection back (the
        // semaphore is fair); fails if the pool is closed already.
        let Ok(all) = self.permits.acquire_many(self.size).await else {
            return Ok(());
        };
        self.permits.close();
        drop(all);
        let idle = std::mem::take(&mut *self.shared.lock());
        // Closing a connection may touch the file: not on the runtime's threads.
        tokio::task::spawn_blocking(move || drop(idle)).await.map_err(Error::backend)
    }
}
