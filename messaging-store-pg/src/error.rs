//! The crate's own error, and its one conversion into the core error.
//!
//! Inside the crate every fallible step returns [`PgError`] and propagates with `?`: the
//! writer needs the driver's error as it is (its SQLSTATE decides between retrying the
//! batch, failing the whole batch at once and running its jobs one by one), so nothing is
//! classified early. The conversion into [`messaging_core::Error`] happens once, where a
//! public function or a trait method of the store returns, and decides what callers see:
//! [`PgError::is_unavailable`] errors become `unavailable` (retryable), other database
//! errors `internal`. The driver's error stays the source, behind an `Arc`, so a failed
//! batch hands one error to all its jobs without turning it into text, and its text never
//! reaches a client.

use messaging_core::Error;
use sqlx::migrate::MigrateError;

/// A failure inside the crate: the driver's, a migration's, or one already decided in
/// core terms (a caller's mistake, a rule).
#[derive(Debug, thiserror::Error)]
pub(crate) enum PgError {
    /// The database or the connection to it failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// Applying the embedded migrations failed.
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    /// An error already in the core's terms, passed on unchanged.
    #[error(transparent)]
    Core(#[from] Error),
}

/// Results of the crate's internal functions.
pub(crate) type Result<T, E = PgError> = std::result::Result<T, E>;

impl PgError {
    /// The SQLSTATE of a database error.
    pub(crate) fn sqlstate(&self) -> Option<std::borrow::Cow<'_, str>> {
        match self {
            Self::Database(error) => error.as_database_error().and_then(|e| e.code()),
            Self::Migrate(_) | Self::Core(_) => None,
        }
    }

    /// Failures the writer retries: serialization failure, deadlock, unique violation (a
    /// concurrent writer stored the same idempotency key or pair first).
    pub(crate) fn is_retryable(&self) -> bool {
        matches!(self.sqlstate().as_deref(), Some("40001" | "40P01" | "23505"))
    }

    /// The closing statement found a reaction summary changed since the batch read it
    /// (`log_batch::STALE_REACTIONS`): the writer runs the batch again with its rows
    /// locked.
    pub(crate) fn is_stale_reactions(&self) -> bool {
        self.sqlstate().as_deref() == Some("22P02")
            && matches!(self, Self::Database(error) if error.as_database_error()
                .is_some_and(|e| e.message().contains(crate::log_batch::STALE_REACTIONS)))
    }

    /// Whether the database cannot serve now rather than the request being wrong (see
    /// [`is_unavailable`]). The writer fails a whole batch at once on these.
    pub(crate) fn is_unavailable(&self) -> bool {
        match self {
            Self::Database(error) | Self::Migrate(MigrateError::Execute(error)) => {
                is_unavailable(error)
            }
            Self::Migrate(_) | Self::Core(_) => false,
        }
    }
}

/// The answer to every call on a store that was closed (`PgStore::close`): not worth
/// retrying on this store object.
pub(crate) fn closed() -> Error {
    Error::unavailable("the PostgreSQL store is closed")
}

/// Whether `error` means the database cannot serve now rather than that the request was
/// wrong: the connection is gone or could not be had (I/O, pool timed out or closed, TLS,
/// SQLSTATE class 08), the server is shutting down or ended the session (57P01-57P03), a
/// statement ran past `statement_timeout` or was cancelled (57014), or it lacks resources
/// (class 53: disk full, out of memory, too many connections). Callers get these as
/// `unavailable`: running them one by one, or again at once, could not succeed.
fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => true,
        sqlx::Error::Database(e) => e.code().is_some_and(|code| {
            code.starts_with("08")
                || code.starts_with("53")
                || matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "57014")
        }),
        _ => false,
    }
}

/// A driver error as the core error, the driver's error kept as the source (for logs)
/// and never put in a message a client reads: unavailable errors are
/// `backend_unavailable` (retryable), the rest `backend` (internal).
fn from_driver(error: sqlx::Error) -> Error {
    if is_unavailable(&error) { Error::backend_unavailable(error) } else { Error::backend(error) }
}

impl From<PgError> for Error {
    fn from(error: PgError) -> Self {
        match error {
            // A statement failed, a migration's included: the driver's error decides.
            PgError::Database(error) | PgError::Migrate(MigrateError::Execute(error)) => {
                from_driver(error)
            }
            // A missing or modified migration, a newer database: nothing to retry.
            PgError::Migrate(other) => Error::backend(other),
            PgError::Core(error) => error,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::panic, reason = "tests: failing loudly is the point")]

    use std::borrow::Cow;
    use std::error::Error as StdError;

    use sqlx::error::{DatabaseError, ErrorKind};

    use super::*;

    /// A server error with a given SQLSTATE, as the driver reports one.
    #[derive(Debug)]
    struct ServerError(&'static str);

    impl std::fmt::Display for ServerError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "server error {}", self.0)
        }
    }

    impl StdError for ServerError {}

    impl DatabaseError for ServerError {
        fn message(&self) -> &str {
            "server error"
        }

        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Borrowed(self.0))
        }

        fn as_error(&self) -> &(dyn StdError + Send + Sync + 'static) {
            self
        }

        fn as_error_mut(&mut self) -> &mut (dyn StdError + Send + Sync + 'static) {
            self
        }

        fn into_error(self: Box<Self>) -> Box<dyn StdError + Send + Sync + 'static> {
            self
        }

        fn kind(&self) -> ErrorKind {
            ErrorKind::Other
        }
    }

    fn server(code: &'static str) -> PgError {
        PgError::Database(sqlx::Error::Database(Box::new(ServerError(code))))
    }

    #[test]
    fn connection_and_server_trouble_is_unavailable() {
        let io = || sqlx::Error::Io(std::io::Error::other("connection reset"));
        for error in [
            PgError::Database(io()),
            PgError::Database(sqlx::Error::PoolTimedOut),
            PgError::Database(sqlx::Error::PoolClosed),
            PgError::Database(sqlx::Error::WorkerCrashed),
            PgError::Database(sqlx::Error::BeginFailed),
            PgError::Migrate(MigrateError::Execute(io())),
            server("08006"),
            server("53100"),
            server("57P01"),
            server("57P02"),
            server("57P03"),
            server("57014"),
        ] {
            let text = error.to_string();
            assert!(error.is_unavailable(), "{text}");
            let error = Error::from(error);
            assert_eq!(error.code(), "unavailable", "{text}");
            assert!(error.is_backend(), "the driver's error is the source: {text}");
            assert!(!error.public_message().contains("server error"), "{text}");
        }
    }

    #[test]
    fn other_database_errors_are_internal() {
        for error in [
            server("23505"),
            server("40001"),
            server("42P01"),
            PgError::Database(sqlx::Error::Protocol("unexpected".into())),
            PgError::Database(sqlx::Error::RowNotFound),
            PgError::Migrate(MigrateError::VersionMissing(3)),
        ] {
            let text = error.to_string();
            assert!(!error.is_unavailable(), "{text}");
            let error = Error::from(error);
            assert_eq!(error.code(), "internal", "{text}");
            assert_eq!(error.public_message(), "internal error", "{text}");
        }
    }

    #[test]
    fn the_writer_retries_conflicts_between_writers_only() {
        for code in ["40001", "40P01", "23505"] {
            assert!(server(code).is_retryable(), "{code}");
        }
        for code in ["23502", "57014", "42P01"] {
            assert!(!server(code).is_retryable(), "{code}");
        }
        assert!(!PgError::Database(sqlx::Error::PoolTimedOut).is_retryable());
        assert_eq!(server("23502").sqlstate().as_deref(), Some("23502"));
    }

    #[test]
    fn core_errors_pass_through_unchanged() {
        let error = Error::from(PgError::from(Error::not_found("no such message")));
        assert_eq!(error.code(), "not_found");
        assert_eq!(error.to_string(), "not found: no such message");
    }

    #[test]
    fn a_shared_error_keeps_one_source() {
        let error = Error::from(PgError::Database(sqlx::Error::PoolTimedOut));
        let copies = [error.clone(), error.clone()];
        for copy in &copies {
            assert_eq!(copy.code(), "unavailable");
            assert!(StdError::source(copy).is_some(), "the source is kept");
        }
        match (&error, &copies[0]) {
            (Error::Backend { source: a, .. }, Error::Backend { source: b, .. }) => {
                assert!(std::sync::Arc::ptr_eq(a, b), "one source, shared");
            }
            _ => panic!("backend errors"),
        }
    }
}
