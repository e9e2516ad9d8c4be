//! The standalone server's accept loop: it admits connections (a listen backlog it owns,
//! TCP_NODELAY, a deadline for the request headers, a cap on connections still in their
//! handshake and, optionally, per address) and serves [`Routes`] on each with hyper 1
//! (`axum::serve` would give all of that up).
//!
//! When the process runs out of file descriptors, waiting connections are accepted and
//! closed at once rather than left in the backlog.
//!
//! Shutdown: stop accepting, end every session (they finish their running operation,
//! close with 1001), and return once every connection and session has ended.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use messaging_core::Messenger;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tower::ServiceExt;

use crate::admission::{Pending, PendingSlot, Reserve};
use crate::auth::Verifier;
use crate::config::Transport;
use crate::http::JwtAuth;
use crate::routes::Routes;

/// Longest wait, at shutdown, for sessions and HTTP connections to end.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(30);

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
    /// Posts durable events to the host (`None`: off).
    pub webhooks: Option<crate::webhooks::WebhookSettings>,
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

/// Shared by every connection the accept loop admits.
struct State {
    /// What each connection serves.
    router: axum::Router,
    routes: Routes,
    /// Connections not yet upgraded (or plain HTTP), bounded by `max_connections`.
    handshakes: Arc<Semaphore>,
    handshake_timeout: Duration,
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
    let transport = config.transport;
    let routes = Routes::builder(
        config.messenger.clone(),
        JwtAuth::new(config.verifier.clone(), config.messenger),
    )
    .transport(transport.clone())
    .service_keys(config.service_keys)
    .token_minter(config.verifier)
    .store_label(config.store_label);
    let routes = match config.webhooks {
        Some(webhooks) => routes.webhooks(webhooks),
        None => routes,
    }
    .build()
    .map_err(|why| std::io::Error::new(std::io::ErrorKind::InvalidInput, why))?;
    let (alive, mut all_ended) = mpsc::channel::<()>(1);
    let state = Arc::new(State {
        router: routes.router().merge(routes.operations_router()),
        shutdown: routes.stopping(),
        routes: routes.clone(),
        handshakes: Arc::new(Semaphore::new(transport.max_connections)),
        handshake_timeout: transport.handshake_timeout,
        pending: Pending::new(transport.max_pending_per_ip, transport.trusted_proxies),
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
                        state.routes.metrics().refused("no_descriptors");
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
    routes.shutdown();
    drop(state);
    let ended = async {
        all_ended.recv().await;
        routes.closed().await;
    };
    if tokio::time::timeout(SHUTDOWN_DEADLINE, ended).await.is_err() {
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
        state.routes.metrics().refused("handshakes");
        return;
    };
    let Some(pending) = state.pending.try_enter(peer.ip()) else {
        tracing::debug!(%peer, "too many connections of this address sending headers; refused");
        state.routes.metrics().refused("pending_per_ip");
        return;
    };
    let state = state.clone();
    tokio::spawn(async move { serve_http(stream, peer, state, slot, pending).await });
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
    let router = state.router.clone();
    let service = service_fn(move |mut request: Request<Incoming>| {
        // The request's headers are in: the connection no longer counts as pending.
        pending.release();
        request.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(request)
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
