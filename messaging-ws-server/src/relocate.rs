//! Growing from one SQLite file to PostgreSQL: the `move` command, and the same as a
//! library function ([`move_database`]).
//!
//! The copy and its check are `messaging_core::transfer`'s (`move_store`, `verify_move`);
//! this module opens the two stores the way the server would (the SQLite file must exist,
//! PostgreSQL is migrated to the current schema first), runs them, and closes both. The
//! cut-over around it (stop the server, move, start the servers on PostgreSQL) is
//! docs/operations.md's.

use std::path::{Path, PathBuf};
use std::time::Duration;

use messaging_core::time::Timestamp;
use messaging_core::transfer::{
    MoveOptions, MoveReport, Progress, VerifyReport, move_store, verify_move,
};
use messaging_core::{Error, Result};
use messaging_store_pg::{PgOptions, PgStore};
use messaging_store_sqlite::SqliteStore;

/// What a move did and what its check found.
#[derive(Debug)]
#[non_exhaustive]
pub struct Moved {
    /// The copy.
    pub report: MoveReport,
    /// The check after it.
    pub verified: VerifyReport,
    /// How long the check took.
    pub verify_took: Duration,
}

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

/// Copies the SQLite database `request.from` into the PostgreSQL database `request.to`,
/// calling `progress` after every page, then reads both back and compares them.
///
/// # Errors
/// The SQLite file does not exist or cannot be opened; PostgreSQL cannot be reached or
/// migrated; the target is not empty (`Conflict`, see
/// [`move_store`]); a read or write fails midway
/// (the target keeps what it has, and a run with `resume` goes on from there). A check
/// that finds differences is not an error: see [`VerifyReport::is_identical`].
pub async fn move_database(
    request: &MoveRequest,
    progress: &mut (dyn FnMut(&Progress) + Send),
) -> Result<Moved> {
    let source = open_source(&request.from).await?;
    let target = match PgStore::connect(&request.to, target_options()).await {
        Ok(target) => target,
        Err(error) => {
            close_sqlite(&source).await;
            return Err(error);
        }
    };
    let outcome = run(&source, &target, request.options, progress).await;
    close_sqlite(&source).await;
    if let Err(error) = target.close().await {
        tracing::warn!(%error, "closing PostgreSQL after the move failed");
    }
    outcome
}

async fn run(
    source: &SqliteStore,
    target: &PgStore,
    options: MoveOptions,
    progress: &mut (dyn FnMut(&Progress) + Send),
) -> Result<Moved> {
    let report = move_store(source, target, options, progress).await?;
    let began = std::time::Instant::now();
    let verified = verify_move(source, target, options.page, Timestamp::now()).await?;
    Ok(Moved { report, verified, verify_took: began.elapsed() })
}

/// The target's settings: a page of the move, or of the check, is one statement over
/// thousands of rows, which the default bound for a request (3 s) is not made for.
fn target_options() -> PgOptions {
    PgOptions::default().statement_timeout(PAGE_STATEMENT_TIMEOUT)
}

/// The longest one page's statement may run on the target.
const PAGE_STATEMENT_TIMEOUT: Duration = Duration::from_secs(300);

/// The SQLite store of an existing file (opening a missing path would create an empty
/// database, and move nothing).
async fn open_source(path: &Path) -> Result<SqliteStore> {
    if !path.is_file() {
        return Err(Error::invalid(format!(
            "no SQLite database at {} to move from",
            path.display()
        )));
    }
    SqliteStore::open(path).await
}

async fn close_sqlite(store: &SqliteStore) {
    if let Err(error) = store.close().await {
        tracing::warn!(%error, "closing the SQLite database after the move failed");
    }
}
