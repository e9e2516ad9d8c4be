//! `GET /v1/ws`: authenticates, checks the handshake, opens the session, answers 101 and
//! hands the upgraded connection (hyper's, through `hyper::upgrade::on`; axum's `ws`
//! feature would pin another tokio-tungstenite) to the session task in `connection`.
//!
//! Sessions are bounded by `max_connections` (a permit shared with event streams) and per
//! user by `max_sessions_per_user`: past either, 503.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use futures::FutureExt;
use http::{StatusCode, header};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::admission;
use crate::auth::AuthError;
use crate::connection;
use crate::http::HttpState;
use crate::ops::{self, Caller};

/// First read size of a connection: a request frame usually fits.
const READ_BUFFER_BYTES: usize = 1024;

/// Frames collected before a write system call (a flush writes the rest).
const WRITE_BUFFER_BYTES: usize = 4096;

/// The largest WebSocket frame header (what a frame adds to its payload).
const FRAME_HEADER_BYTES: usize = 14;

/// Answers `GET /v1/ws`.
pub(crate) async fn handle(State(state): State<Arc<HttpState>>, request: Request) -> Response {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|info| info.0);
    let client =
        peer.map(|peer| admission::client_ip(peer, request.headers(), &state.trusted_proxies));
    // A GET upgrade's body is empty: nothing to read.
    let (mut parts, _) = request.into_parts();
    let user = match state.auth.authenticate(&parts).await {
        Ok(user) => user,
        Err(AuthError::Unavailable) => {
            return plain(StatusCode::SERVICE_UNAVAILABLE, "the store is unavailable");
        }
        Err(error) => {
            tracing::debug!(?client, %error, "token refused");
            return plain(StatusCode::UNAUTHORIZED, &error.to_string());
        }
    };
    if let Err(refused) = crate::http::origin::check(&state, &parts) {
        return refused.into_response();
    }
    let Some(accept) = websocket_key(&parts).map(derive_accept_key) else {
        return plain(StatusCode::BAD_REQUEST, "not a WebSocket upgrade (version 13)");
    };
    let Some(on_upgrade) = parts.extensions.remove::<OnUpgrade>() else {
        // HTTP/2, or a host server that does not hand connections over.
        return plain(StatusCode::BAD_REQUEST, "this connection cannot be upgraded");
    };
    let settings = &state.settings;
    let Ok(permit) = state.connections.clone().try_acquire_owned() else {
        settings.metrics.refused("connections");
        return plain(StatusCode::SERVICE_UNAVAILABLE, "too many connections");
    };
    let Some(user_slot) = state.sessions.try_open(user) else {
        tracing::debug!(?client, %user, "too many sessions of this user; refused");
        settings.metrics.refused("sessions_per_user");
        return plain(StatusCode::SERVICE_UNAVAILABLE, "too many sessions of this user");
    };
    if *state.shutdown.borrow() {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    // Under the answer bound like every request; `connect` is cancel-safe (a session
    // dropped while it registers leaves no presence behind).
    let opened = tokio::time::timeout(settings.answer_timeout, state.messenger.connect(user)).await;
    let session = match opened {
        Ok(Ok(session)) => session,
        Ok(Err(error)) => {
            if error.is_backend() {
                ops::report(&settings.metrics, "connect", &error);
            } else {
                tracing::warn!(%error, "opening a session failed");
            }
            return plain(StatusCode::SERVICE_UNAVAILABLE, "the store is unavailable");
        }
        Err(_) => {
            tracing::warn!("opening a session took longer than the answer bound; refused");
            settings.metrics.store_error("timeout");
            return plain(StatusCode::SERVICE_UNAVAILABLE, "the store is unavailable");
        }
    };
    tracing::debug!(?client, %user, "session opened");
    let caller = Caller { messenger: state.messenger.clone(), user, hello: session.cursor() };
    let (settings, shutdown) = (settings.clone(), state.shutdown.clone());
    let keep = (permit, user_slot, state.sessions_alive.token());
    tokio::spawn(
        websocket(on_upgrade, state.ws_config).then(move |socket| {
            connection::serve(socket, session, caller, settings, shutdown, keep)
        }),
    );
    let mut response = Response::new(Body::default());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, http::HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, http::HeaderValue::from_static("websocket"));
    if let Ok(accept) = http::HeaderValue::from_str(&accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

/// The WebSocket settings: frames and messages bounded by `max_frame_bytes`, and small
/// buffers, since an idle connection keeps them (the defaults cost ~131 KiB per
/// connection). Reads start at [`READ_BUFFER_BYTES`] and grow to a frame's announced
/// length; writes collect up to [`WRITE_BUFFER_BYTES`] of frames per system call.
///
/// The write buffer is finite (tungstenite's default is unbounded): at most one
/// outbound frame past the collected bytes. An outbound frame is at most `max_queue_bytes`
/// (the outbox refuses larger ones), so every frame fits an empty buffer; a frame that does
/// not fit a fuller one is handed back (see `connection`).
pub(crate) fn ws_config(max_frame_bytes: usize, max_queue_bytes: usize) -> WebSocketConfig {
    let max_write =
        WRITE_BUFFER_BYTES.saturating_add(max_queue_bytes).saturating_add(FRAME_HEADER_BYTES);
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(max_write)
        .max_frame_size(Some(max_frame_bytes))
        .max_message_size(Some(max_frame_bytes))
}

/// The upgraded connection as a WebSocket.
async fn websocket(
    on_upgrade: OnUpgrade,
    config: WebSocketConfig,
) -> Result<WebSocketStream<TokioIo<Upgraded>>, hyper::Error> {
    let upgraded = on_upgrade.await?;
    Ok(WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await)
}

/// The client's `Sec-WebSocket-Key` when the request is a WebSocket version 13 upgrade.
fn websocket_key(parts: &http::request::Parts) -> Option<&[u8]> {
    let headers = &parts.headers;
    let has_token = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|part| part.trim().eq_ignore_ascii_case(token)))
    };
    let upgrade =
        has_token(header::CONNECTION, "upgrade") && has_token(header::UPGRADE, "websocket");
    let version = headers.get(header::SEC_WEBSOCKET_VERSION).is_some_and(|v| v == "13");
    if upgrade && version && parts.version >= http::Version::HTTP_11 {
        headers.get(header::SEC_WEBSOCKET_KEY).map(http::HeaderValue::as_bytes)
    } else {
        None
    }
}

/// A plain-text answer (the handshake's refusals are read by people, not clients).
fn plain(status: StatusCode, text: &str) -> Response {
    let mut response = Response::new(Body::from(format!("{text}\n")));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}
