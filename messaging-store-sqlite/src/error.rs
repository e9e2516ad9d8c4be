//! The crate's internal error, and its one conversion to the core error.
//!
//! Inside the crate, SQL runs with plain `?`: a failing SQLite call becomes
//! [`StoreError::Sqlite`] as it is, and a failure the crate decides itself (not found, a
//! conflict, a closed store) is a [`messaging_core::Error`] carried by
//! [`StoreError::Core`]. Only where an answer leaves the crate (the read pool, the writer's
//! jobs and batches, the indexer's waiters, `open`) is it converted, once, by
//! `From<StoreError> for messaging_core::Error`, which decides how a SQLite failure is
//! classified. The converted error keeps the SQLite error as its shared source, so a batch
//! that fails can hand the same error to every job without turning it into text.

use messaging_core::Error;
use rusqlite::ErrorCode;

/// What fails inside the crate.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// SQLite failed; classified when converted (see [`classify`]).
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// A failure already in the core's terms (a rule of the store, a closed store).
    #[error(transparent)]
    Core(#[from] Error),
}

/// Results of the crate's internal functions.
pub(crate) type StoreResult<T> = Result<T, StoreError>;

impl From<StoreError> for Error {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Sqlite(error) => classify(error),
            StoreError::Core(error) => error,
        }
    }
}

/// Maps a SQLite error to the core error without copying its text into a message a client
/// may read: transient conditions (contention, a full disk, an I/O failure, a statement
/// interrupted for taking too long) are `backend_unavailable` (retryable), the rest is
/// `backend` (internal). Either way the SQLite error stays the source, for logs only.
fn classify(error: rusqlite::Error) -> Error {
    match error.sqlite_error_code() {
        Some(
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::DiskFull
            | ErrorCode::SystemIoFailure
            | ErrorCode::OperationInterrupted,
        ) => Error::backend_unavailable(error),
        _ => Error::backend(error),
    }
}

/// The answer to every call after `SqliteStore::close`: the same words wherever the call
/// meets the closed store (the writer, the read pool, the search index).
pub(crate) fn closed() -> Error {
    Error::unavailable("the SQLite store is closed")
}

/// Whether `error` is SQLite reporting a full disk or a failing one: the writer then tries
/// to give the WAL's space back (see `writer`). It takes the converted error because a
/// failed batch holds that one (shared by its jobs), whichever job or statement raised it.
pub(crate) fn is_disk_failure(error: &Error) -> bool {
    match error {
        Error::Backend { source, .. } => source
            .downcast_ref::<rusqlite::Error>()
            .and_then(rusqlite::Error::sqlite_error_code)
            .is_some_and(|code| matches!(code, ErrorCode::DiskFull | ErrorCode::SystemIoFailure)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite(code: i32) -> StoreError {
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None))
    }

    #[test]
    fn transient_sqlite_failures_are_retryable() {
        for code in [
            rusqlite::ffi::SQLITE_BUSY,
            rusqlite::ffi::SQLITE_LOCKED,
            rusqlite::ffi::SQLITE_FULL,
            rusqlite::ffi::SQLITE_IOERR,
            rusqlite::ffi::SQLITE_INTERRUPT,
        ] {
            let error = Error::from(sqlite(code));
            assert!(matches!(error, Error::Backend { retryable: true, .. }), "{code}: {error}");
            assert_eq!(error.code(), "unavailable");
        }
    }

    #[test]
    fn other_sqlite_failures_are_internal() {
        for error in [
            sqlite(rusqlite::ffi::SQLITE_CONSTRAINT),
            sqlite(rusqlite::ffi::SQLITE_CORRUPT),
            StoreError::Sqlite(rusqlite::Error::QueryReturnedNoRows),
        ] {
            let error = Error::from(error);
            assert!(matches!(error, Error::Backend { retryable: false, .. }), "{error}");
            assert_eq!(error.code(), "internal");
        }
    }

    #[test]
    fn core_errors_pass_through_unchanged() {
        let error = Error::from(StoreError::from(Error::conflict("too many blocked users")));
        assert!(matches!(&error, Error::Conflict(why) if why == "too many blocked users"));
    }

    #[test]
    fn disk_failures_are_recognised_after_conversion_and_in_copies() {
        for code in [rusqlite::ffi::SQLITE_FULL, rusqlite::ffi::SQLITE_IOERR] {
            let error = Error::from(sqlite(code));
            assert!(is_disk_failure(&error));
            assert!(is_disk_failure(&error.clone()), "a copy shares the source");
        }
        assert!(!is_disk_failure(&Error::from(sqlite(rusqlite::ffi::SQLITE_BUSY))));
        assert!(!is_disk_failure(&Error::unavailable("disk full")));
        assert!(!is_disk_failure(&Error::backend(std::io::Error::other("disk full"))));
    }
}
