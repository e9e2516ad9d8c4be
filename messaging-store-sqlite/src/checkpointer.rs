//! WAL checkpoints on their own thread, so copying pages back into the database file
//! (and its fsync at `synchronous=FULL`) does not take the writer's time.
//!
//! The writer rings after every commit; the checkpointer lets the commits of
//! [`COALESCE`] accumulate, then runs one `PASSIVE` checkpoint (never blocking the writer).
//! A ring while one is already pending costs the writer a lock and nothing else: waking
//! the checkpointer at every commit cost a context switch per commit on the writer's
//! path (seen in `perf sched` with one sender at a time, 2026-11-22).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use messaging_core::Error;
use rusqlite::Connection;

use crate::error::StoreResult;

/// How long commits accumulate before a checkpoint.
const COALESCE: Duration = Duration::from_millis(50);

/// The WAL's bound: 32 MiB. Past it (in frames of 2 KiB pages) the writer forces the WAL
/// to restart at its start, and a WAL file larger than it is cut back to it when the WAL
/// restarts (`journal_size_limit`). Under steady load the WAL passes 8 MiB several times
/// a second: a file cut back to 8 MiB grew again at once, and every commit that extends
/// the file makes its `fdatasync` write the file's metadata too (capacity -10 %,
/// 2026-12-05); so did truncating the file to nothing at 32 MiB (-12 %). Past 32 MiB it is
/// rare, and below it the file is rewritten in place.
pub(crate) const WAL_LIMIT_BYTES: i64 = 32 << 20;

/// [`WAL_LIMIT_BYTES`] in WAL frames (2 KiB pages, see the store's `page_size`).
pub(crate) const WAL_LIMIT_FRAMES: i64 = WAL_LIMIT_BYTES / 2048;

/// The checkpoint thread; dropping it stops the thread and closes its connection.
pub(crate) struct Checkpointer {
    bell: Arc<Doorbell>,
    wal_frames: Arc<AtomicI64>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread over `conn`, a read-write connection to the database.
    pub(crate) fn start(conn: Connection) -> StoreResult<Self> {
        let bell = Arc::new(Doorbell::default());
        let wal_frames = Arc::new(AtomicI64::new(0));
        let (thread_bell, thread_frames) = (bell.clone(), wal_frames.clone());
        let thread = std::thread::Builder::new()
            .name("sqlite-ckpt".into())
            .spawn(move || run(&conn, &thread_bell, &thread_frames))
            .map_err(Error::backend)?;
        Ok(Self { bell, wal_frames, thread: Some(thread) })
    }

    /// What the writer rings after each commit.
    pub(crate) fn bell(&self) -> Arc<Doorbell> {
        self.bell.clone()
    }

    /// The frames in the WAL at the last checkpoint, for the writer, which restarts a WAL
    /// grown past [`WAL_LIMIT_FRAMES`].
    pub(crate) fn wal_frames(&self) -> Arc<AtomicI64> {
        self.wal_frames.clone()
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.bell.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A pending-work flag that wakes its one sleeper only when it goes from clear to rung.
#[derive(Default)]
pub(crate) struct Doorbell {
    state: Mutex<Bell>,
    wake: Condvar,
}

#[derive(Default)]
struct Bell {
    rung: bool,
    closed: bool,
}

impl Doorbell {
    fn lock(&self) -> MutexGuard<'_, Bell> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks work pending; wakes the sleeper only if none was.
    pub(crate) fn ring(&self) {
        let mut bell = self.lock();
        if !bell.rung {
            bell.rung = true;
            drop(bell);
            self.wake.notify_one();
        }
    }

    fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
    }

    /// Waits until rung, then `COALESCE` more, and clears the bell; `false` once closed.
    fn wait_and_take(&self) -> bool {
        let mut bell = self.lock();
        while !bell.rung && !bell.closed {
            bell = self.wake.wait(bell).unwrap_or_else(PoisonError::into_inner);
        }
        let deadline = Instant::now() + COALESCE;
        while !bell.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            bell = self.wake.wait_timeout(bell, left).unwrap_or_else(PoisonError::into_inner).0;
        }
        bell.rung = false;
        !bell.closed
    }
}

/// One `PASSIVE` checkpoint per ring, publishing the WAL's length. A `PASSIVE` checkpoint
/// copies pages back but cannot make the WAL restart at its start while readers hold
/// older snapshots, as they do under steady load: the WAL then grows. Left to grow it took
/// a small disk whole: with no room left for a checkpoint to copy pages into the database,
/// no checkpoint could shrink it, and every write failed even after the space the user
/// freed (seen 2026-12-05 on a tmpfs under 16 senders: a 44 MB WAL beside a 22 MB
/// database). The writer therefore forces a restart of a WAL grown past
/// [`WAL_LIMIT_FRAMES`] between its batches (as the writer it does not compete with itself
/// for the write lock, which a `TRUNCATE` here did, losing to the writer's next batch again
/// and again), and `journal_size_limit` cuts the file back to [`WAL_LIMIT_BYTES`] when it
/// restarts.
fn run(conn: &Connection, bell: &Doorbell, wal_frames: &AtomicI64) {
    while bell.wait_and_take() {
        let checkpoint = catch_unwind(AssertUnwindSafe(|| wal_checkpoint(conn, "PASSIVE")));
        match checkpoint {
            Ok(Ok(done)) => wal_frames.store(done.frames, Ordering::Relaxed),
            Ok(Err(error)) => {
                tracing::warn!(%error, "WAL checkpoint failed; the writer's automatic one remains");
            }
            Err(_) => tracing::error!("a WAL checkpoint panicked; the next ring tries again"),
        }
    }
}

/// What a checkpoint reports.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Checkpointed {
    /// It finished: no reader or writer was in the way (SQLite answers "busy" as a value,
    /// not an error).
    pub(crate) finished: bool,
    /// The frames in the WAL when it ran.
    pub(crate) frames: i64,
}

/// Runs a checkpoint in `mode`.
pub(crate) fn wal_checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<Checkpointed> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
        Ok(Checkpointed { finished: row.get::<_, i64>(0)? == 0, frames: row.get(1)? })
    })
}
