//! The one error type of the library.
//!
//! Every store and every rule reports through [`Error`], and each variant maps to exactly
//! one protocol error code ([`Error::code`]), so a transport never has to guess how to
//! answer. Backend failures keep their source for logs but are never shown to clients:
//! [`Error::public_message`] is what a client may read.
//!
//! `Error` is `Clone` (backend sources are shared behind an `Arc`), so a store can hand one
//! failure to every job of a failed batch without turning it into text.

use std::error::Error as StdError;
use std::sync::Arc;

/// Everything that can go wrong in a messaging operation.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The thing does not exist, or the caller may not know it exists.
    #[error("not found: {0}")]
    NotFound(String),
    /// The caller is known but not allowed (blocks, access policy).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The request is malformed or out of range.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The request conflicts with the current state (e.g. editing a deleted message).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A value exceeds a byte limit.
    #[error("too large: {0}")]
    TooLarge(String),
    /// The caller is sending faster than allowed.
    #[error("rate limited")]
    RateLimited,
    /// The service cannot serve now; retrying later may succeed. The text is the library's
    /// own words (it is shown to clients): never a backend's message.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A failure inside a backend (database, disk, network). Its source goes to logs only.
    #[error("backend error: {source}")]
    Backend {
        /// The backend's own error.
        source: Arc<dyn StdError + Send + Sync + 'static>,
        /// Whether it is transient (a lost connection, a full disk, a busy database):
        /// answered `unavailable` rather than `internal`.
        retryable: bool,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// [`Error::NotFound`] with a message.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound(what.into())
    }

    /// [`Error::Forbidden`] with a message.
    pub fn forbidden(why: impl Into<String>) -> Self {
        Self::Forbidden(why.into())
    }

    /// [`Error::Invalid`] with a message.
    pub fn invalid(why: impl Into<String>) -> Self {
        Self::Invalid(why.into())
    }

    /// [`Error::Conflict`] with a message.
    pub fn conflict(why: impl Into<String>) -> Self {
        Self::Conflict(why.into())
    }

    /// [`Error::TooLarge`] with a message.
    pub fn too_large(why: impl Into<String>) -> Self {
        Self::TooLarge(why.into())
    }

    /// [`Error::Unavailable`] with a message.
    pub fn unavailable(why: impl Into<String>) -> Self {
        Self::Unavailable(why.into())
    }

    /// Wraps a backend's own error: an unexpected failure (`internal`).
    pub fn backend(source: impl StdError + Send + Sync + 'static) -> Self {
        Self::Backend { source: Arc::new(source), retryable: false }
    }

    /// Wraps a backend's own error that is transient (`unavailable`): the connection was
    /// lost, the disk is full, the database is busy.
    pub fn backend_unavailable(source: impl StdError + Send + Sync + 'static) -> Self {
        Self::Backend { source: Arc::new(source), retryable: true }
    }

    /// Whether this failure came from a backend (and so belongs in logs and the store
    /// error metric, with its source).
    #[must_use]
    pub fn is_backend(&self) -> bool {
        matches!(self, Self::Backend { .. })
    }

    /// The protocol error code of this error (docs/protocol.md "Frames").
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "not_found",
            Self::Forbidden(_) => "forbidden",
            Self::Invalid(_) => "bad_request",
            Self::Conflict(_) => "conflict",
            Self::TooLarge(_) => "too_large",
            Self::RateLimited => "rate_limited",
            Self::Unavailable(_) | Self::Backend { retryable: true, .. } => "unavailable",
            Self::Backend { retryable: false, .. } => "internal",
        }
    }

    /// A message safe to show a client: backend details stay in the logs.
    #[must_use]
    pub fn public_message(&self) -> String {
        match self {
            Self::Backend { retryable: false, .. } => "internal error".to_owned(),
            Self::Backend { retryable: true, .. } => {
                "unavailable: the store cannot serve now; retry later".to_owned()
            }
            other => other.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_a_protocol_code() {
        let io = std::io::Error::other("disk");
        let cases = [
            (Error::not_found("x"), "not_found"),
            (Error::forbidden("x"), "forbidden"),
            (Error::invalid("x"), "bad_request"),
            (Error::conflict("x"), "conflict"),
            (Error::too_large("x"), "too_large"),
            (Error::RateLimited, "rate_limited"),
            (Error::unavailable("x"), "unavailable"),
            (Error::backend(io), "internal"),
            (Error::backend_unavailable(std::io::Error::other("full")), "unavailable"),
        ];
        for (err, code) in cases {
            assert_eq!(err.code(), code);
        }
    }

    #[test]
    fn backend_details_are_not_public() {
        let err = Error::backend(std::io::Error::other("password=hunter2"));
        assert_eq!(err.public_message(), "internal error");
        let err = Error::backend_unavailable(std::io::Error::other("/var/db: disk is full"));
        assert!(!err.public_message().contains("disk"), "{}", err.public_message());
        assert!(err.to_string().contains("disk is full"), "logs keep the cause");
    }

    #[test]
    fn a_clone_shares_the_source() {
        let err = Error::backend_unavailable(std::io::Error::other("gone"));
        let copy = err.clone();
        assert_eq!(copy.code(), "unavailable");
        assert!(StdError::source(&copy).is_some_and(|s| s.to_string() == "gone"));
    }
}
