//! Growing from one SQLite file to PostgreSQL: the `move` command, and the same as library
//! functions ([`move_database`], then [`check_database`]).
//!
//! The copy and its check are `messaging_core::transfer`'s (`move_store`, `verify_move`).
//! This module opens the two stores the way the server does:
//! - the SQLite file must exist. Opening it applies this version's migrations and, during
//!   the check, brings its audience index up to date, as starting this version's server
//!   would;
//! - PostgreSQL is migrated to the current schema first.
//!
//! It runs the copy or the check, then closes both stores. The copy and the check are two
//! steps, so that a check cut short (the check outlasts the copy) can run again on its own
//! once the copy has finished: a finished move cannot be resumed, only checked. The
//! cut-over around them (stop the server, move, start the servers on PostgreSQL) is in
//! docs/operations.md.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use messaging_core::time::Timestamp;
use messaging_core::transfer::{
    MoveOptions, MoveReport, Progress, VerifyReport, move_store, verify_move,
};
use messaging_core::{Error, Result};
use messaging_store_pg::{PgOptions, PgStore};
use messaging_store_sqlite::SqliteStore;

/// The longest one page's statement may run on the target.
const PAGE_STATEMENT_TIMEOUT: Duration = Duration::from_secs(300);

/// A move from a SQLite file into a PostgreSQL database.
#[derive(Clone, Debug)]
pub struct MoveRequest {
    /// The SQLite database (it must exist; no server may be writing to it).
    pub from: PathBuf,
    /// The PostgreSQL URL (an empty database, or one holding an unfinished move with
    /// `options.resume`).
    pub to: String,
    /// Resume, page size.
    pub options: MoveOptions,
}

/// What a check of a finished move found.
#[derive(Debug)]
#[non_exhaustive]
pub struct Checked {
    /// The comparison.
    pub verified: VerifyReport,
    /// How long it took.
    pub took: Duration,
}

/// Copies the SQLite database `request.from` into the PostgreSQL database `request.to`,
/// calling `progress` after every page. Check the result with [`check_database`].
///
/// # Errors
/// - The SQLite file does not exist or cannot be opened.
/// - PostgreSQL cannot be reached or migrated.
/// - The target is not empty (`Conflict`, see [`move_store`]).
/// - A read or write fails midway: the target keeps what it has, and a run with
///   `options.resume` goes on from there.
pub async fn move_database(
    request: &MoveRequest,
    progress: &mut (dyn FnMut(&Progress) + Send),
) -> Result<MoveReport> {
    let (source, target) = open(&request.from, &request.to).await?;
    let outcome = move_store(&source, &target, request.options, progress).await;
    close(source, target).await;
    outcome
}

/// Reads the SQLite database `from` and the PostgreSQL database `to` (a finished move of
/// it) back and compares them (see [`verify_move`]), `page` records at a time.
///
/// # Errors
/// When either store cannot be opened or a read fails. Differences are not errors: see
/// [`VerifyReport::is_identical`].
pub async fn check_database(from: &Path, to: &str, page: usize) -> Result<Checked> {
    let (source, target) = open(from, to).await?;
    let began = Instant::now();
    let outcome = verify_move(&source, &target, page, Timestamp::now()).await;
    close(source, target).await;
    Ok(Checked { verified: outcome?, took: began.elapsed() })
}

/// The two stores of a move. On the target, a page of the move or of the check is one
/// statement over thousands of rows, which the default bound of a request (3 s) is not
/// made for.
async fn open(from: &Path, to: &str) -> Result<(SqliteStore, PgStore)> {
    if !from.is_file() {
        // Opening a missing path would create an empty database, and move nothing.
        return Err(Error::invalid(format!(
            "no SQLite database at {} to move from",
            from.display()
        )));
    }
    let source = SqliteStore::open(from).await?;
    let options = PgOptions::default().statement_timeout(PAGE_STATEMENT_TIMEOUT);
    match PgStore::connect(to, options).await {
        Ok(target) => Ok((source, target)),
        Err(error) => {
            close_sqlite(&source).await;
            Err(error)
        }
    }
}

async fn close(source: SqliteStore, target: PgStore) {
    close_sqlite(&source).await;
    if let Err(error) = target.close().await {
        tracing::warn!(%error, "closing PostgreSQL after the move failed");
    }
}

async fn close_sqlite(store: &SqliteStore) {
    if let Err(error) = store.close().await {
        tracing::warn!(%error, "closing the SQLite database after the move failed");
    }
}
