//! The full-text index, kept in its own file and written by its own thread.
//!
//! Why apart: FTS5 writes a new index segment at every commit and merges segments as they
//! pile up, so on the writer's thread every small commit paid for a segment, and the
//! merges grew with the index. Measured 2026-11-22 (2 cores, the server end to end on
//! SQLite FULL): with the index on the writer, 3,287 sequential sends after a load run took
//! 2.3–2.7 s; without it 1.3–1.5 s, and the capacity run gained 14–20 %. SQLite has one
//! writer per database file, so the index lives in a second file (`<database>-search`),
//! whose writer runs beside the main one instead of in its serial section.
//!
//! The index is derived data. It follows the event log: every message event after the
//! index's mark names a message whose current state (body, deleted) is re-read and indexed
//! again, so catching up is idempotent and a crash of either file loses nothing: the mark
//! and the index commit together, and whatever the mark has not reached is read again
//! from the log. A search first waits until the index has reached the log's committed
//! head, so it sees every message acknowledged before it, as when the index was written
//! in the same transaction.
//!
//! Work is coalesced: after a commit the indexer waits up to [`COALESCE`] for more, so
//! under load one index transaction covers many batches; a waiting search cuts the wait.
//! A search file that does not belong to the database beside it (another database's
//! `instance`, a mark past the log's head, another schema version) is emptied and rebuilt.
//!
//! A message's row in the index is [`rowid_sql`]`(num, seq)`: its conversation's number (see
//! migration 4) in the high bits, its seq in the low ones, so every conversation is one
//! rowid range of each word's posting list (layout version 4). A search seeks into the
//! range of each of the caller's conversations (FTS5 skips through a posting list by rowid
//! with its doclist index), so its work follows the caller's data: before (version 1), a
//! common word matched every message of the database that has it, and only then were the
//! caller's kept, so a user with no conversation paid for everyone's messages.
//!
//! Two other layouts were measured and left (2026-12-05, SQLite FULL through the server,
//! 1,000 senders): one term per conversation and word (version 2, 3) bounded the search
//! too, but the indexer sorted and merged a term per token and took 34 % of a core
//! instead of 11 %, and capacity fell from 20,500 to 15,400 messages/s.
//!
//! Words are the core's (`messaging_core::search::words`: runs of alphanumeric characters,
//! lowercased), one FTS5 token each: the `ascii` tokenizer splits only at ASCII
//! non-alphanumerics, which no word holds (`unicode61` could split a word at a character
//! it does not count as a letter). `detail = none`: the index keeps which rows hold a word,
//! not where, which is all a search of whole words asks.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use messaging_core::search::index_text;
use messaging_core::{Error, Result};
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use crate::codec::{int, uint};
use crate::error::{self, StoreResult};
use crate::files;
use crate::vocab::kind;

/// How long the indexer lets commits accumulate before indexing them, unless a search
/// is waiting.
const COALESCE: Duration = Duration::from_millis(250);

/// How long the indexer waits before trying again after a failure.
const RETRY: Duration = Duration::from_secs(1);

/// Events read per index transaction, so catching up a large log holds bounded memory.
const CHUNK: u64 = 8192;

/// The search file's layout; a file at another version is rebuilt, not migrated.
const SEARCH_SCHEMA: i64 = 4;

/// The SQL of a message's index rowid from its conversation's `num` and its `seq` (the
/// seq keeps 32 bits: four billion messages per conversation).
pub(crate) fn rowid_sql(num: &str, seq: &str) -> String {
    format!("(({num} << 32) | ({seq} & 4294967295))")
}

/// The first and last index rowid of the conversation numbered `num`.
pub(crate) fn rowid_range(num: i64) -> (i64, i64) {
    (num << 32, (num << 32) | 0xFFFF_FFFF)
}

/// The seq of the message at index rowid `rowid`.
pub(crate) fn seq_of_rowid(rowid: i64) -> i64 {
    rowid & 0xFFFF_FFFF
}

const CREATE: &str = "
CREATE VIRTUAL TABLE messages_fts USING fts5 (
    words,
    content = '',
    contentless_delete = 1,
    tokenize = 'ascii',
    detail = none
);
CREATE TABLE search_meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
";

/// The search file beside the database at `database`.
pub(crate) fn path_beside(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push("-search");
    PathBuf::from(name)
}

/// Opens (creating or rebuilding if needed) the search file for the database whose
/// `instance` and log `head` are given; returns the connection and the index's mark.
pub(crate) fn open(path: &Path, instance: i64, head: u64) -> StoreResult<(Connection, u64)> {
    files::create_private(path)?;
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // The index is rebuilt from the log after a power cut; NORMAL keeps the file intact.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.set_prepared_statement_cache_capacity(16);
    if let Some(mark) = existing_mark(&conn, instance)?
        && mark <= head
    {
        return Ok((conn, mark));
    }
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE;
         DROP TABLE IF EXISTS messages_fts;
         DROP TABLE IF EXISTS search_meta;
         {CREATE}
         INSERT INTO search_meta (key, value) VALUES ('instance', {instance}), ('indexed_upto', 0);
         PRAGMA user_version = {SEARCH_SCHEMA};
         COMMIT;"
    ))?;
    Ok((conn, 0))
}

/// The mark of an index built for `instance` at this schema, if the file holds one.
fn existing_mark(conn: &Connection, instance: i64) -> StoreResult<Option<u64>> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version != SEARCH_SCHEMA {
        return Ok(None);
    }
    let meta = |key: &str| {
        conn.query_row("SELECT value FROM search_meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
    };
    if meta("instance")? != Some(instance) {
        return Ok(None);
    }
    Ok(meta("indexed_upto")?.map(uint))
}

/// The indexer thread and what callers share with it.
pub(crate) struct SearchIndex {
    shared: Arc<Shared>,
    /// Taken by [`SearchIndex::close`], or else when the index is dropped.
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// What the writer, the searches and the indexer thread share.
pub(crate) struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    indexed: AtomicU64,
}

struct State {
    /// The log's committed head, as the writer last reported it.
    committed: u64,
    /// Searches waiting for the index to reach a position.
    waiters: Vec<(u64, oneshot::Sender<Result<()>>)>,
    closing: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Tells the indexer the log's committed head moved to `head`.
    pub(crate) fn committed(&self, head: u64) {
        let mut state = self.lock();
        if head <= state.committed {
            return;
        }
        // An indexer that is behind is already counting down to its next run (or running);
        // only one that had caught up sleeps without a deadline and needs waking. Waking it
        // at every commit cost a context switch per commit on the writer's path.
        let was_caught_up = self.indexed.load(Ordering::Acquire) >= state.committed;
        state.committed = head;
        drop(state);
        if was_caught_up {
            self.wake.notify_one();
        }
    }
}

impl SearchIndex {
    /// Starts the indexer over `source` (a read-only connection to the database, as the
    /// read pool opens them) and `index` (the search file, at mark `indexed_upto`), the
    /// log's head being `head`.
    pub(crate) fn start(
        source: Connection,
        index: Connection,
        indexed_upto: u64,
        head: u64,
    ) -> StoreResult<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State { committed: head, waiters: Vec::new(), closing: false }),
            wake: Condvar::new(),
            indexed: AtomicU64::new(indexed_upto),
        });
        let indexer = Indexer { shared: shared.clone(), source, index };
        let thread = std::thread::Builder::new()
            .name("sqlite-search".into())
            .spawn(move || indexer.run())
            .map_err(Error::backend)?;
        Ok(Self { shared, thread: Mutex::new(Some(thread)) })
    }

    /// What the writer reports its commits to.
    pub(crate) fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Resolves once the index covers every event committed before this call.
    pub(crate) async fn caught_up(&self) -> Result<()> {
        let rx = {
            let mut state = self.shared.lock();
            if state.closing {
                return Err(error::closed());
            }
            let target = state.committed;
            if self.shared.indexed.load(Ordering::Acquire) >= target {
                return Ok(());
            }
            let (tx, rx) = oneshot::channel();
            state.waiters.push((target, tx));
            rx
        };
        self.shared.wake.notify_one();
        rx.await.map_err(|_| Error::unavailable("the SQLite search indexer stopped"))?
    }

    /// Stops the indexer and closes its connections, waiting on a blocking thread, not the
    /// caller's; every later call fails with "the SQLite store is closed".
    pub(crate) async fn close(&self) -> Result<()> {
        if let Some(thread) = self.stop() {
            tokio::task::spawn_blocking(move || {
                let _ = thread.join();
            })
            .await
            .map_err(Error::backend)?;
        }
        Ok(())
    }

    /// Tells the indexer to stop; the thread to join, unless taken before. What is not
    /// indexed yet is indexed from the log at the next open.
    fn stop(&self) -> Option<JoinHandle<()>> {
        self.shared.lock().closing = true;
        self.shared.wake.notify_one();
        self.thread.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

impl Drop for SearchIndex {
    fn drop(&mut self) {
        if let Some(thread) = self.stop() {
            let _ = thread.join();
        }
    }
}

struct Indexer {
    shared: Arc<Shared>,
    source: Connection,
    index: Connection,
}

impl Indexer {
    fn run(self) {
        // Whatever the log holds beyond the mark at start is indexed at once.
        let mut due = Some(Instant::now());
        let mut state = self.shared.lock();
        loop {
            if state.closing {
                for (_, waiter) in state.waiters.drain(..) {
                    let _ = waiter.send(Err(error::closed()));
                }
                return;
            }
            let indexed = self.shared.indexed.load(Ordering::Acquire);
            let behind = state.committed > indexed;
            let now = Instant::now();
            let ready = behind && (!state.waiters.is_empty() || due.is_some_and(|due| due <= now));
            if !ready {
                if !behind {
                    due = None;
                } else if due.is_none() {
                    due = Some(now + COALESCE);
                }
                state = match due {
                    Some(due) => {
                        let timeout = due.saturating_duration_since(now);
                        self.shared
                            .wake
                            .wait_timeout(state, timeout)
                            .unwrap_or_else(PoisonError::into_inner)
                            .0
                    }
                    None => self.shared.wake.wait(state).unwrap_or_else(PoisonError::into_inner),
                };
                continue;
            }
            let target = state.committed;
            drop(state);
            // A panic (a bug) fails this attempt like an error would; the thread goes on.
            // The outcome is converted here, once, since every waiter gets a copy of it.
            let outcome = match catch_unwind(AssertUnwindSafe(|| self.catch_up(indexed, target))) {
                Ok(outcome) => outcome.map_err(Error::from),
                Err(_) => Err(Error::unavailable("the search indexer failed")),
            };
            state = self.shared.lock();
            due = None;
            let indexed = self.shared.indexed.load(Ordering::Acquire);
            match outcome {
                Ok(()) => {
                    let (done, waiting) =
                        state.waiters.drain(..).partition::<Vec<_>, _>(|(t, _)| *t <= indexed);
                    state.waiters = waiting;
                    for (_, waiter) in done {
                        let _ = waiter.send(Ok(()));
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "search indexing failed; retrying");
                    for (_, waiter) in state.waiters.drain(..) {
                        let _ = waiter.send(Err(error.clone()));
                    }
                    due = Some(Instant::now() + RETRY);
                }
            }
        }
    }

    /// Indexes the messages named by the events in `(from, to]`, a chunk per transaction.
    fn catch_up(&self, mut from: u64, to: u64) -> StoreResult<()> {
        while from < to {
            let upto = to.min(from.saturating_add(CHUNK));
            let changes = self.read_changes(from, upto)?;
            self.write_changes(&changes, upto)?;
            self.shared.indexed.store(upto, Ordering::Release);
            from = upto;
        }
        Ok(())
    }

    /// The current state of every message whose words an event in `(from, to]` may have
    /// changed, read in one snapshot: (created within the range, the words to index or
    /// `None` if deleted). Only message events (created, edited, deleted) name such a
    /// message: the other kinds (receipts, reactions, member and conversation updates)
    /// leave every word as it was and cost no FTS delete and insert; the message is not
    /// even read for them. Events of a kind this build does not know are skipped with a
    /// warning.
    fn read_changes(&self, from: u64, to: u64) -> StoreResult<BTreeMap<i64, Change>> {
        clean(&self.source)?;
        let tx = self.source.unchecked_transaction()?;
        let mut changes: BTreeMap<i64, Change> = BTreeMap::new();
        let mut unknown: Vec<i64> = Vec::new();
        {
            let mut stmt = tx.prepare_cached(&changes_sql())?;
            let mut rows = stmt.query(params![int(from), int(to)])?;
            while let Some(row) = rows.next()? {
                let event_kind = row.get::<_, i64>(0)?;
                if !kind::changes_words(event_kind) {
                    if !kind::is_known(event_kind) && !unknown.contains(&event_kind) {
                        unknown.push(event_kind);
                        let position: i64 = row.get(4)?;
                        tracing::warn!(
                            kind = event_kind,
                            position,
                            "search index: skipping log events of an unknown kind"
                        );
                    }
                    continue;
                }
                // A message event without its message (no such row is ever removed) has
                // nothing to index.
                let Some(rowid) = row.get::<_, Option<i64>>(1)? else {
                    continue;
                };
                let created = event_kind == kind::MESSAGE_CREATED;
                match changes.entry(rowid) {
                    Entry::Occupied(mut entry) => entry.get_mut().new |= created,
                    Entry::Vacant(entry) => {
                        let deleted: bool = row.get(3)?;
                        let body = row.get_ref(2).and_then(|v| Ok(v.as_str()?))?;
                        entry.insert(Change {
                            new: created,
                            words: (!deleted).then(|| index_text(body)),
                        });
                    }
                }
            }
        }
        drop(tx);
        Ok(changes)
    }

    fn write_changes(&self, changes: &BTreeMap<i64, Change>, upto: u64) -> StoreResult<()> {
        clean(&self.index)?;
        let tx = self.index.unchecked_transaction()?;
        {
            let mut remove = tx.prepare_cached("DELETE FROM messages_fts WHERE rowid = ?1")?;
            let mut insert =
                tx.prepare_cached("INSERT INTO messages_fts (rowid, words) VALUES (?1, ?2)")?;
            for (rowid, change) in changes {
                // A message created in this range is not in the index yet; one created
                // before it is, under its old words.
                if !change.new {
                    remove.execute([rowid])?;
                }
                if let Some(words) = &change.words {
                    insert.execute(params![rowid, words])?;
                }
            }
            tx.prepare_cached("UPDATE search_meta SET value = ?1 WHERE key = 'indexed_upto'")?
                .execute([int(upto)])?;
        }
        tx.commit()?;
        Ok(())
    }
}

/// The SQL of the events in `(?1, ?2]` with, for the message events only, the message's
/// index rowid, body and deleted flag (NULL for every other kind, whose message, if any,
/// is not read). One range of the log's primary key.
fn changes_sql() -> String {
    format!(
        "SELECT e.kind, {rowid}, m.body, m.deleted, e.position FROM events e \
         LEFT JOIN messages m \
           ON e.kind IN ({created}, {edited}, {deleted}) AND m.pk = e.message_pk \
         LEFT JOIN conversations c ON c.id = m.conversation_id \
         WHERE e.position > ?1 AND e.position <= ?2",
        rowid = rowid_sql("c.num", "m.seq"),
        created = kind::MESSAGE_CREATED,
        edited = kind::MESSAGE_EDITED,
        deleted = kind::MESSAGE_DELETED,
    )
}

/// Ends a transaction a failure left open (a failed COMMIT on a full disk may keep it), so
/// the next attempt starts clean instead of failing at BEGIN until a restart.
fn clean(conn: &Connection) -> StoreResult<()> {
    if !conn.is_autocommit() {
        conn.execute_batch("ROLLBACK")?;
    }
    Ok(())
}

/// What indexing does for one message.
struct Change {
    /// Created within the range being indexed (so not in the index yet).
    new: bool,
    /// Its current words; `None` when it is deleted.
    words: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::changes_sql;
    use crate::schema::query_plan;

    /// The indexer reads one range of the log by its primary key; only message events
    /// look their message up, by its key.
    #[test]
    fn the_indexer_reads_a_range_of_the_log() {
        let plan = query_plan(&changes_sql());
        assert_eq!(
            plan[0], "SEARCH e USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)",
            "{plan:#?}"
        );
        assert!(!plan.iter().any(|l| l.starts_with("SCAN")), "{plan:#?}");
    }
}
