//! The accept loop and HTTP routing: `GET /v1/ws` (authenticated upgrade), `/healthz`,
//! `/metrics`, on one port, with hyper 1 (no hand-parsed HTTP) and tokio-tungstenite on the
//! upgraded connection.
//!
//! Connections are bounded by a semaphore (`max_connections`): past it, upgrades get 503.
//! Shutdown: stop accepting, tell every session (they finish their running operation,
//! close with 1001), and return once every connection task has ended.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::{TokioIo, TokioTimer};
use messaging_core::Messenger;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::auth::{self, Verifier};
use crate::config::Transport;
use crate::connection::{self, SessionSettings};
use crate::frames::HelloLimits;
use crate::metrics::Metrics;
use crate::ops::Caller;

/// First read size of a connection: a request frame usually fits.
const READ_BUFFER_BYTES: usize = 1024;

/// Frames collected before a write system call (a flush writes the rest).
const WRITE_BUFFER_BYTES: usize = 4096;

/// Longest wait, at shutdown, for sessions and HTTP connections to end.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(30);

type Body = Full<Bytes>;

/// What `run` serves.
pub struct Config {
    /// The messaging service (its store, fan-out, presence and limits).
    pub messenger: Messenger,
    /// Verifies the tokens of connecting clients.
    pub verifier: Verifier,
    /// Transport settings (frame size, connections, rate limit, heartbeat).
    pub transport: Transport,
    /// How `/metrics` names the store in `messaging_build_info` (free text, e.g.
    /// `sqlite synchronous=FULL`), so a benchmark report can say what it measured.
    pub store_label: String,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("verifier", &self.verifier)
            .field("transport", &self.transport)
            .field("store_label", &self.store_label)
            .finish_non_exhaustive()
    }
}

/// Shared by every connection.
struct State {
    messenger: Messenger,
    verifier: Verifier,
    settings: Arc<SessionSettings>,
    ws_config: WebSocketConfig,
    /// Sessions (upgraded connections), bounded by `max_connections`.
    connections: Arc<Semaphore>,
    /// Connections not yet upgraded (or plain HTTP), bounded by `max_connections` too.
    handshakes: Arc<Semaphore>,
    handshake_timeout: Duration,
    shutdown: watch::Receiver<bool>,
    /// Held by every connection task; `run` waits until all are dropped.
    alive: mpsc::Sender<()>,
}

/// Serves PROTOCOL.md on `listener` until `shutdown` resolves, then closes every session
/// with 1001 after its running operation and returns once all have ended.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let (stop, stopped) = watch::channel(false);
    let (alive, mut all_ended) = mpsc::channel::<()>(1);
    let limits = config.messenger.limits();
    let transport = config.transport;
    let state = Arc::new(State {
        settings: Arc::new(SessionSettings {
            hello: HelloLimits {
                max_frame_bytes: transport.max_frame_bytes,
                max_body_bytes: limits.max_body_bytes,
                ops_per_s: transport.ops_per_s,
                ops_burst: transport.ops_burst,
                max_queue_frames: limits.max_queue_frames,
            },
            heartbeat: transport.heartbeat,
            metrics: Metrics::new(&config.store_label),
        }),
        ws_config: ws_config(transport.max_frame_bytes),
        connections: Arc::new(Semaphore::new(transport.max_connections)),
        handshakes: Arc::new(Semaphore::new(transport.max_connections)),
        handshake_timeout: transport.handshake_timeout,
        messenger: config.messenger,
        verifier: config.verifier,
        shutdown: stopped,
        alive,
    });
    tracing::info!(address = %listener.local_addr()?, "serving");

    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    // Frames are batched per flush already; Nagle's algorithm would only
                    // hold a reply back until the previous frame is acknowledged.
                    if let Err(error) = stream.set_nodelay(true) {
                        tracing::debug!(%error, "TCP_NODELAY not set");
                    }
                    let Ok(slot) = state.handshakes.clone().try_acquire_owned() else {
                        tracing::debug!("too many connections in handshake; one refused");
                        continue;
                    };
                    let state = state.clone();
                    tokio::spawn(async move { serve_http(stream, state, slot).await });
                }
                Err(error) => {
                    // Out of file descriptors, typically: wait for some to be released
                    // rather than spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            () = &mut shutdown => break,
        }
    }
    tracing::info!("shutting down: no new connections; closing sessions");
    drop(listener);
    let _ = stop.send(true);
    drop(state);
    if tokio::time::timeout(SHUTDOWN_DEADLINE, all_ended.recv()).await.is_err() {
        tracing::warn!("connections still open {SHUTDOWN_DEADLINE:?} after shutdown; leaving them");
        return Ok(());
    }
    tracing::info!("every session closed");
    Ok(())
}

/// The WebSocket settings: frames and messages bounded by `max_frame_bytes`, and small
/// buffers, since an idle connection keeps them (the defaults cost ~131 KiB per
/// connection). Reads start at [`READ_BUFFER_BYTES`] and grow to a frame's announced
/// length; writes collect up to [`WRITE_BUFFER_BYTES`] of frames per system call.
fn ws_config(max_frame_bytes: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_frame_size(Some(max_frame_bytes))
        .max_message_size(Some(max_frame_bytes))
}

async fn serve_http(stream: TcpStream, state: Arc<State>, _slot: OwnedSemaphorePermit) {
    let _alive = state.alive.clone();
    let handshake_timeout = state.handshake_timeout;
    let mut shutdown = state.shutdown.clone();
    let service = service_fn(move |request| route(request, state.clone()));
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(handshake_timeout)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(connection);
    tokio::select! {
        result = &mut connection => {
            if let Err(error) = result {
                tracing::debug!(%error, "HTTP connection ended with an error");
            }
        }
        () = async { let _ = shutdown.wait_for(|stop| *stop).await; } => {
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(handshake_timeout, connection).await;
        }
    }
}

async fn route(
    request: Request<Incoming>,
    state: Arc<State>,
) -> Result<Response<Body>, Infallible> {
    Ok(match (request.method(), request.uri().path()) {
        (&Method::GET, "/v1/ws") => upgrade(request, &state).await,
        (&Method::GET, "/healthz") => health(&state).await,
        (&Method::GET, "/metrics") => Response::builder()
            .header(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )
            .body(Body::from(state.settings.metrics.render()))
            .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error")),
        _ => plain(StatusCode::NOT_FOUND, "not found"),
    })
}

async fn health(state: &State) -> Response<Body> {
    let answer = tokio::time::timeout(Duration::from_secs(2), state.messenger.store().head()).await;
    let (status, body) = match answer {
        Ok(Ok(_)) => (StatusCode::OK, r#"{"status":"ok"}"#),
        _ => (StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"unavailable"}"#),
    };
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error"))
}

/// Authenticates, checks the handshake, opens the session, answers 101 and hands the
/// upgraded socket to the session task.
async fn upgrade(mut request: Request<Incoming>, state: &Arc<State>) -> Response<Body> {
    let user = match auth::token_of(&request).ok_or(auth::AuthError::Missing) {
        Ok(token) => match state.verifier.verify(&token) {
            Ok(user) => user,
            Err(error) => return plain(StatusCode::UNAUTHORIZED, &error.to_string()),
        },
        Err(error) => return plain(StatusCode::UNAUTHORIZED, &error.to_string()),
    };
    let Some(accept) = websocket_key(&request).map(derive_accept_key) else {
        return plain(StatusCode::BAD_REQUEST, "not a WebSocket upgrade (version 13)");
    };
    let Ok(permit) = state.connections.clone().try_acquire_owned() else {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "too many connections");
    };
    let stopping = *state.shutdown.borrow();
    if stopping {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    let session = match state.messenger.connect(user).await {
        Ok(session) => session,
        Err(error) => {
            tracing::warn!(%error, "opening a session failed");
            return plain(StatusCode::SERVICE_UNAVAILABLE, "the store is unavailable");
        }
    };
    let caller = Caller { messenger: state.messenger.clone(), user, hello: session.cursor() };
    let on_upgrade = hyper::upgrade::on(&mut request);
    let (settings, shutdown) = (state.settings.clone(), state.shutdown.clone());
    let keep = (permit, state.alive.clone());
    tokio::spawn(
        websocket(on_upgrade, state.ws_config).then(move |socket| {
            connection::serve(socket, session, caller, settings, shutdown, keep)
        }),
    );
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .body(Body::default())
        .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error"))
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
fn websocket_key<B>(request: &Request<B>) -> Option<&[u8]> {
    let headers = request.headers();
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
    if upgrade && version && request.version() >= http::Version::HTTP_11 {
        headers.get(header::SEC_WEBSOCKET_KEY).map(http::HeaderValue::as_bytes)
    } else {
        None
    }
}

fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut response = Response::new(Body::from(format!("{text}\n")));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}
