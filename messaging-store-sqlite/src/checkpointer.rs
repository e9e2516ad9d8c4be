//! WAL checkpoints on their own thread, so copying pages back into the database file
//! (and its fsync at `synchronous=FULL`) does not take the writer's time.
//!
//! The writer rings after every commit; the checkpointer lets the commits of
//! [`COALESCE`] accumulate, then runs one `PASSIVE` checkpoint (never blocking the writer).
//! A ring while one is already pending costs the writer a lock and nothing else: waking
//! the checkpointer at every commit cost a context switch per commit on the writer's
//! path (seen in `perf sched` with one sender at a time, 2026-11-22).

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use messaging_core::{Error, Result};
use rusqlite::Connection;

/// How long commits accumulate before a checkpoint.
const COALESCE: Duration = Duration::from_millis(50);

/// The checkpoint thread; dropping it stops the thread and closes its connection.
pub(crate) struct Checkpointer {
    bell: Arc<Doorbell>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread over `conn`, a read-write connection to the database.
    pub(crate) fn start(conn: Connection) -> Result<Self> {
        let bell = Arc::new(Doorbell::default());
        let thread_bell = bell.clone();
        let thread = std::thread::Builder::new()
            .name("messaging-sqlite-checkpoint".into())
            .spawn(move || run(&conn, &thread_bell))
            .map_err(Error::backend)?;
        Ok(Self { bell, thread: Some(thread) })
    }

    /// What the writer rings after each commit.
    pub(crate) fn bell(&self) -> Arc<Doorbell> {
        self.bell.clone()
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

fn run(conn: &Connection, bell: &Doorbell) {
    while bell.wait_and_take() {
        if let Err(error) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(%error, "WAL checkpoint failed; the writer's automatic one remains");
        }
    }
}
