//! The app's errors, answered as the library's are (docs/protocol.md "HTTP API"):
//! `{"error":{"code":…,"message":…}}` with the status of the code, so a browser client
//! handles `/listings/…` and `/chat/…` failures with one function.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

/// An error answer: a status, a protocol code and a message safe to show.
#[derive(Debug)]
pub(crate) struct AppError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl AppError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }

    /// 400 `bad_request`.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 401 `unauthorized`.
    pub(crate) fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "log in first (POST /login)")
    }

    /// 403 `forbidden`.
    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404 `not_found`.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 405 with code `bad_request`, as the library answers another method of a route.
    pub(crate) fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "bad_request",
            "this route does not take this method (see Allow)",
        )
    }

    /// 409 `conflict`.
    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 413 `too_large`.
    pub(crate) fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
    }

    /// 503 `unavailable`: retrying later may succeed.
    pub(crate) fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 500 `internal`; `what` goes to the log, never to the client.
    pub(crate) fn internal(what: &str) -> Self {
        tracing::error!(what, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
    }
}

/// The library's errors keep their code; backend details stay in the log.
impl From<messaging_core::Error> for AppError {
    fn from(error: messaging_core::Error) -> Self {
        if error.is_backend() {
            tracing::error!(%error, "messaging store");
        }
        let code = error.code();
        // The library's own mapping, so `/listings/…` and `/chat/…` agree.
        Self::new(messaging_ws_server::http::status_of(code), code, error.public_message())
    }
}

impl From<rusqlite::Error> for AppError {
    fn from(error: rusqlite::Error) -> Self {
        tracing::error!(%error, "marketplace database");
        match error.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                Self::unavailable("the database is busy; retry later")
            }
            _ => Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error"),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct Failure<'a> {
            code: &'a str,
            message: &'a str,
        }
        #[derive(Serialize)]
        struct Answer<'a> {
            error: Failure<'a>,
        }
        json(self.status, &Answer { error: Failure { code: self.code, message: &self.message } })
    }
}

/// `value` as a JSON answer with `status`.
pub(crate) fn json(status: StatusCode, value: &impl Serialize) -> Response {
    let (status, body) = match serde_json::to_vec(value) {
        Ok(body) => (status, body),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            br#"{"error":{"code":"internal","message":"internal error"}}"#.to_vec(),
        ),
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
