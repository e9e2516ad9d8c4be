//! The accept loop and HTTP routing: `GET /v1/ws` (authenticated upgrade), `/healthz`,
//! `/metrics`, on one port, with hyper 1 (no hand-parsed HTTP) and tokio-tungstenite on the
//! upgraded connection.
//!
//! Connections are bounded by a semaphore (`max_connections`): past it, upgrades get 503;
//! so are each user's sessions (`max_sessions_per_user`, 503 too), and, optionally, the
//! connections of one address still sending their headers (see `admission`). When the
//! process runs out of file descriptors, waiting connections are accepted and closed at
//! once rather than left in the backlog.
//!
//! `/healthz` is `Messenger::health` within the answer bound: 200 while reads answer and
//! the store can commit, 503 otherwise.
//!
//! Shutdown: stop accepting, tell every session (they finish their running operation,
//! close with 1001), and return once every connection task has ended.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use http::{Method, Request, Response, StatusCode, header};
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

use crate::admission::{self, Pending, PendingSlot, Reserve};
use crate::auth::{self, Verifier};
use crate::config::Transport;
use crate::connection::{self, SessionSettings};
use crate::frames::HelloLimits;
use crate::http::HttpState;
use crate::metrics::Metrics;
use crate::ops::{self, Caller};
use crate::rate::UserBuckets;
use crate::sessions::UserSessions;

/// First read size of a connection: a request frame usually fits.
const READ_BUFFER_BYTES: usize = 1024;

/// Frames collected before a write system call (a flush writes the rest).
const WRITE_BUFFER_BYTES: usize = 4096;

/// The largest WebSocket frame header (what a frame adds to its payload).
const FRAME_HEADER_BYTES: usize = 14;

/// Longest wait, at shutdown, for sessions and HTTP connections to end.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(30);

type Body = axum::body::Body;

/// What `run` serves.
pub struct Config {
    /// The messaging service (its store, fan-out, presence and limits).
    pub messenger: Messenger,
    /// The service API's keys (none: `/v1/service/…` answers 404).
    pub service_keys: Arc<crate::http::service_keys::ServiceKeys>,
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
    /// The user routes (`/v1/…` besides `/v1/ws`).
    http: axum::Router,
    messenger: Messenger,
    verifier: Verifier,
    settings: Arc<SessionSettings>,
    ws_config: WebSocketConfig,
    /// Sessions (upgraded connections), bounded by `max_connections`.
    connections: Arc<Semaphore>,
    /// Connections not yet upgraded (or plain HTTP), bounded by `max_connections` too.
    handshakes: Arc<Semaphore>,
    handshake_timeout: Duration,
    /// Sessions per user.
    sessions: Arc<UserSessions>,
    /// Connections per address still sending their headers.
    pending: Arc<Pending>,
    shutdown: watch::Receiver<bool>,
    /// Held by every connection task; `run` waits until all are dropped.
    alive: mpsc::Sender<()>,
}

/// Serves docs/protocol.md on `listener` until `shutdown` resolves, then closes every session
/// with 1001 after its running operation and returns once all have ended.
///
/// Fails at once (`InvalidInput`) when the transport's settings do not fit the messenger's
/// limits (see [`Transport::check`]).
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let limits = config.messenger.limits();
    let transport = config.transport;
    transport
        .check(limits.reply_budget_bytes)
        .map_err(|why| std::io::Error::new(std::io::ErrorKind::InvalidInput, why))?;
    let (stop, stopped) = watch::channel(false);
    let (alive, mut all_ended) = mpsc::channel::<()>(1);
    let metrics = Metrics::new(&config.store_label);
    let settings = Arc::new(SessionSettings {
        hello: HelloLimits {
            max_frame_bytes: transport.max_frame_bytes,
            max_body_bytes: limits.max_body_bytes,
            ops_per_s: transport.ops_per_s,
            ops_burst: transport.ops_burst,
            max_queue_frames: limits.max_queue_frames,
            answer_timeout_ms: transport.answer_timeout_ms(),
            reply_budget_bytes: limits.reply_budget_bytes,
            max_queue_bytes: transport.max_queue_bytes,
            max_sessions_per_user: transport.max_sessions_per_user,
            search_per_s: transport.search_per_s,
            search_burst: transport.search_burst,
        },
        heartbeat: transport.heartbeat,
        metrics,
        answer_timeout: transport.answer_timeout,
        searches: UserBuckets::new(transport.search_per_s, transport.search_burst),
    });
    let connections = Arc::new(Semaphore::new(transport.max_connections));
    let sessions = UserSessions::new(transport.max_sessions_per_user);
    let http = crate::http::user_routes(Arc::new(HttpState {
        connections: connections.clone(),
        sessions: sessions.clone(),
        shutdown: stopped.clone(),
        service_keys: config.service_keys.clone(),
        verifier: config.verifier.clone(),
        messenger: config.messenger.clone(),
        auth: Arc::new(config.verifier.clone()),
        max_body_bytes: transport.max_frame_bytes,
        settings: settings.clone(),
        requests: UserBuckets::new(transport.ops_per_s, transport.ops_burst),
        cors: Arc::new(crate::http::Cors::new(&transport.cors_origins)),
    }));
    let state = Arc::new(State {
        http,
        settings,
        ws_config: ws_config(transport.max_frame_bytes, transport.max_queue_bytes),
        connections,
        handshakes: Arc::new(Semaphore::new(transport.max_connections)),
        handshake_timeout: transport.handshake_timeout,
        sessions,
        pending: Pending::new(transport.max_pending_per_ip, transport.trusted_proxies),
        messenger: config.messenger,
        verifier: config.verifier,
        shutdown: stopped,
        alive,
    });
    tracing::info!(address = %listener.local_addr()?, "serving");

    let mut reserve = Reserve::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => admit(stream, peer, &state),
                Err(error) if Reserve::is_exhaustion(&error) => {
                    // The connection stays in the backlog, its client waiting for an
                    // answer: accept it on the reserve descriptor and close it.
                    if reserve.shed(&listener) {
                        state.settings.metrics.refused("no_descriptors");
                    } else {
                        tracing::warn!(%error, "accept failed; no reserve descriptor");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
                Err(error) => {
                    // Out of memory or buffers: wait for some to be released rather than
                    // spinning.
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

/// Starts serving an accepted connection, unless the handshakes or its address's pending
/// connections are at their cap (then it is closed at once).
fn admit(stream: TcpStream, peer: SocketAddr, state: &Arc<State>) {
    // Frames are batched per flush already; Nagle's algorithm would only hold a reply back
    // until the previous frame is acknowledged.
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "TCP_NODELAY not set");
    }
    let Ok(slot) = state.handshakes.clone().try_acquire_owned() else {
        tracing::debug!(%peer, "too many connections in handshake; one refused");
        state.settings.metrics.refused("handshakes");
        return;
    };
    let Some(pending) = state.pending.try_enter(peer.ip()) else {
        tracing::debug!(%peer, "too many connections of this address sending headers; refused");
        state.settings.metrics.refused("pending_per_ip");
        return;
    };
    let state = state.clone();
    tokio::spawn(async move { serve_http(stream, peer, state, slot, pending).await });
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
fn ws_config(max_frame_bytes: usize, max_queue_bytes: usize) -> WebSocketConfig {
    let max_write =
        WRITE_BUFFER_BYTES.saturating_add(max_queue_bytes).saturating_add(FRAME_HEADER_BYTES);
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(max_write)
        .max_frame_size(Some(max_frame_bytes))
        .max_message_size(Some(max_frame_bytes))
}

async fn serve_http(
    stream: TcpStream,
    peer: SocketAddr,
    state: Arc<State>,
    _slot: OwnedSemaphorePermit,
    pending: PendingSlot,
) {
    let _alive = state.alive.clone();
    let handshake_timeout = state.handshake_timeout;
    let mut shutdown = state.shutdown.clone();
    let pending = Arc::new(pending);
    let service = service_fn(move |request| {
        // The request's headers are in: the connection no longer counts as pending.
        pending.release();
        route(request, peer, state.clone())
    });
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
    peer: SocketAddr,
    state: Arc<State>,
) -> Result<Response<Body>, Infallible> {
    Ok(match (request.method(), request.uri().path()) {
        (&Method::GET, "/v1/ws") => upgrade(request, peer, &state).await,
        (&Method::GET, "/healthz") => health(&state).await,
        (&Method::GET, "/metrics") => Response::builder()
            .header(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )
            .body(Body::from(state.settings.metrics.render()))
            .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error")),
        _ => rest(request, &state).await,
    })
}

/// A user route (the event stream included): served by the axum router.
async fn rest(request: Request<Incoming>, state: &State) -> Response<Body> {
    use tower::ServiceExt;
    let request = request.map(axum::body::Body::new);
    let Ok(response) = state.http.clone().oneshot(request).await;
    response
}

async fn health(state: &State) -> Response<Body> {
    let bound = state.settings.answer_timeout;
    let (status, body) = match state.messenger.health(bound).await {
        Ok(()) => (StatusCode::OK, r#"{"status":"ok"}"#),
        Err(error) => {
            tracing::warn!(error = %error, "health check failed");
            if error.is_backend() {
                state.settings.metrics.store_error(error.code());
            }
            (StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"unavailable"}"#)
        }
    };
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error"))
}

/// Authenticates, checks the handshake, opens the session, answers 101 and hands the
/// upgraded socket to the session task.
async fn upgrade(
    mut request: Request<Incoming>,
    peer: SocketAddr,
    state: &Arc<State>,
) -> Response<Body> {
    let client = admission::client_ip(peer, request.headers(), state.pending.trusted());
    let user = match auth::token_of(&request).ok_or(auth::AuthError::Missing) {
        Ok(token) => match state.verifier.verify(&token) {
            Ok(user) => user,
            Err(error) => {
                tracing::debug!(%client, %error, "token refused");
                return plain(StatusCode::UNAUTHORIZED, &error.to_string());
            }
        },
        Err(error) => return plain(StatusCode::UNAUTHORIZED, &error.to_string()),
    };
    let Some(accept) = websocket_key(&request).map(derive_accept_key) else {
        return plain(StatusCode::BAD_REQUEST, "not a WebSocket upgrade (version 13)");
    };
    let Ok(permit) = state.connections.clone().try_acquire_owned() else {
        state.settings.metrics.refused("connections");
        return plain(StatusCode::SERVICE_UNAVAILABLE, "too many connections");
    };
    let Some(user_slot) = state.sessions.try_open(user) else {
        tracing::debug!(%client, %user, "too many sessions of this user; refused");
        state.settings.metrics.refused("sessions_per_user");
        return plain(StatusCode::SERVICE_UNAVAILABLE, "too many sessions of this user");
    };
    let stopping = *state.shutdown.borrow();
    if stopping {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    // Under the answer bound like every request; `connect` is cancel-safe (a session
    // dropped while it registers leaves no presence behind).
    let opened =
        tokio::time::timeout(state.settings.answer_timeout, state.messenger.connect(user)).await;
    let session = match opened {
        Ok(Ok(session)) => session,
        Ok(Err(error)) => {
            if error.is_backend() {
                ops::report(&state.settings.metrics, "connect", &error);
            } else {
                tracing::warn!(%error, "opening a session failed");
            }
            return plain(StatusCode::SERVICE_UNAVAILABLE, "the store is unavailable");
        }
        Err(_) => {
            tracing::warn!("opening a session took longer than the answer bound; refused");
            state.settings.metrics.store_error("timeout");
            return plain(StatusCode::SERVICE_UNAVAILABLE, "the store is unavailable");
        }
    };
    tracing::debug!(%client, %user, "session opened");
    let caller = Caller { messenger: state.messenger.clone(), user, hello: session.cursor() };
    let on_upgrade = hyper::upgrade::on(&mut request);
    let (settings, shutdown) = (state.settings.clone(), state.shutdown.clone());
    let keep = (permit, user_slot, state.alive.clone());
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
