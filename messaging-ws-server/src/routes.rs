//! The server's routes as `axum::Router`s: `GET /v1/ws`, the HTTP API, the event stream and
//! the service API in one, `/healthz` and `/metrics` in another. The standalone binary
//! serves both on each connection its accept loop admits (`server`); a host application
//! mounts the first under its own router with its own [`Authenticate`], and the second
//! wherever its operators look.
//!
//! The router's sessions (WebSocket connections and event streams) outlive the request
//! that opened them, so [`Routes`] is also the handle that ends them: [`Routes::shutdown`]
//! tells each to finish (WebSocket close 1001 after its running operation, end of stream),
//! [`Routes::closed`] waits until all have.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};
use messaging_core::Messenger;
use tokio::sync::{Semaphore, watch};
use tokio_util::task::TaskTracker;

use crate::auth::Verifier;
use crate::config::Transport;
use crate::connection::SessionSettings;
use crate::frames::HelloLimits;
use crate::http::service_keys::ServiceKeys;
use crate::http::{Authenticate, Cors, HttpState};
use crate::metrics::Metrics;
use crate::rate::UserBuckets;
use crate::sessions::UserSessions;
use crate::webhooks::WebhookSettings;

/// Why [`RoutesBuilder::build`] refused its settings.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RoutesError {
    /// The transport's settings do not fit the messenger's limits, or are invalid (see
    /// [`Transport::check`]).
    #[error("invalid transport settings: {0}")]
    Settings(String),
}

/// The server's routes and the sessions they open.
///
/// ```no_run
/// # async fn demo(messenger: messaging_core::Messenger, verifier: messaging_ws_server::Verifier)
/// # -> Result<(), Box<dyn std::error::Error>> {
/// use messaging_ws_server::{JwtAuth, Routes};
///
/// let chat = Routes::builder(messenger.clone(), JwtAuth::new(verifier, messenger)).build()?;
/// let app = axum::Router::new()
///     .route("/", axum::routing::get(|| async { "the host's own page" }))
///     .nest("/chat", chat.router());
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// let stop = chat.clone();
/// axum::serve(listener, app)
///     .with_graceful_shutdown(async move {
///         let _ = tokio::signal::ctrl_c().await;
///         // Sessions end too, or open WebSockets and event streams hold the server up.
///         stop.shutdown();
///     })
///     .await?;
/// chat.closed().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Routes {
    state: Arc<HttpState>,
    stop: Arc<watch::Sender<bool>>,
}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routes").field("sessions", &self.state.sessions_alive.len()).finish()
    }
}

/// Settings of [`Routes`]; see [`Routes::builder`].
#[must_use]
pub struct RoutesBuilder {
    messenger: Messenger,
    auth: Arc<dyn Authenticate>,
    transport: Transport,
    service_keys: Arc<ServiceKeys>,
    minter: Option<Verifier>,
    store_label: String,
    webhooks: Option<WebhookSettings>,
}

impl std::fmt::Debug for RoutesBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoutesBuilder")
            .field("transport", &self.transport)
            .field("store_label", &self.store_label)
            .finish_non_exhaustive()
    }
}

impl Routes {
    /// Routes serving `messenger`'s users as `auth` identifies them, with the default
    /// transport settings, no service API and no token minting.
    pub fn builder(messenger: Messenger, auth: impl Authenticate) -> RoutesBuilder {
        RoutesBuilder {
            messenger,
            auth: Arc::new(auth),
            transport: Transport::default(),
            service_keys: Arc::default(),
            minter: None,
            store_label: String::new(),
            webhooks: None,
        }
    }

    /// The routes clients and the host's backend call (`/v1/ws`, the HTTP API, the event
    /// stream, the service API), to serve or to mount (`axum::Router::nest`); each call is
    /// another handle on the same sessions and limits.
    pub fn router(&self) -> Router {
        crate::http::routes(self.state.clone())
    }

    /// The operator's routes, apart so a host can keep them off its public router:
    /// `/healthz` (200 while reads answer and the store can commit, 503 otherwise) and
    /// `/metrics` (OpenMetrics text). The standalone server serves them beside
    /// [`router`](Self::router).
    pub fn operations_router(&self) -> Router {
        Router::new()
            .route("/healthz", axum::routing::get(health))
            .route("/metrics", axum::routing::get(metrics))
            .with_state(self.state.clone())
    }

    /// Tells every session to end: WebSocket connections close with 1001 once their running
    /// operation is answered, event streams end, new ones are refused (503).
    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
        self.state.sessions_alive.close();
    }

    /// Resolves once [`shutdown`](Self::shutdown) was called and every session has ended.
    pub async fn closed(&self) {
        self.state.sessions_alive.wait().await;
    }

    /// Sessions open now (WebSocket connections and event streams).
    #[must_use]
    pub fn sessions(&self) -> usize {
        self.state.sessions_alive.len()
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.state.settings.metrics
    }

    pub(crate) fn stopping(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }
}

impl RoutesBuilder {
    /// Transport settings (frame size, connections, rate limits, heartbeat, CORS).
    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// The service API's keys (default: none, `/v1/service/…` answers 404).
    pub fn service_keys(mut self, keys: Arc<ServiceKeys>) -> Self {
        self.service_keys = keys;
        self
    }

    /// The verifier whose secret `POST /v1/service/tokens` mints user tokens with (default:
    /// none, the route answers `bad_request`).
    pub fn token_minter(mut self, verifier: Verifier) -> Self {
        self.minter = Some(verifier);
        self
    }

    /// How `/metrics` names the store in `messaging_build_info` (free text, e.g.
    /// `sqlite synchronous=FULL`).
    pub fn store_label(mut self, label: impl Into<String>) -> Self {
        self.store_label = label.into();
        self
    }

    /// Posts durable events to the host (docs/protocol.md "Webhooks"; default: off). The
    /// deliverer runs from [`build`](Self::build) (on its Tokio runtime) until
    /// [`Routes::shutdown`], and [`Routes::closed`] waits for it.
    pub fn webhooks(mut self, settings: WebhookSettings) -> Self {
        self.webhooks = Some(settings);
        self
    }

    /// The routes, once the transport's settings are checked against the messenger's
    /// limits (and the webhook deliverer started, which needs a Tokio runtime).
    pub fn build(self) -> Result<Routes, RoutesError> {
        let limits = self.messenger.limits();
        let transport = self.transport;
        transport.check(limits.reply_budget_bytes).map_err(RoutesError::Settings)?;
        let (stop, stopped) = watch::channel(false);
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
            metrics: Metrics::new(&self.store_label),
            answer_timeout: transport.answer_timeout,
            searches: UserBuckets::new(transport.search_per_s, transport.search_burst),
        });
        let state = Arc::new(HttpState {
            connections: Arc::new(Semaphore::new(transport.max_connections)),
            sessions: UserSessions::new(transport.max_sessions_per_user),
            sessions_alive: TaskTracker::new(),
            shutdown: stopped,
            service_keys: self.service_keys,
            minter: self.minter,
            messenger: self.messenger,
            auth: self.auth,
            max_body_bytes: transport.max_frame_bytes,
            ws_config: crate::upgrade::ws_config(
                transport.max_frame_bytes,
                transport.max_queue_bytes,
            ),
            requests: UserBuckets::new(transport.ops_per_s, transport.ops_burst),
            cors: Arc::new(Cors::new(&transport.cors_origins)),
            trusted_proxies: transport.trusted_proxies,
            settings,
        });
        if let Some(webhooks) = self.webhooks {
            crate::webhooks::start(
                state.messenger.clone(),
                webhooks,
                state.settings.metrics.clone(),
                state.shutdown.clone(),
                state.sessions_alive.token(),
            )
            .map_err(|e| RoutesError::Settings(format!("starting the webhook deliverer: {e}")))?;
        }
        Ok(Routes { state, stop: Arc::new(stop) })
    }
}

/// `/healthz`: `Messenger::health` within the answer bound: 200 while reads answer and the
/// store can commit, 503 otherwise.
async fn health(State(state): State<Arc<HttpState>>) -> Response {
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
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// `/metrics` in the OpenMetrics text format.
async fn metrics(State(state): State<Arc<HttpState>>) -> Response {
    let mut response = Response::new(Body::from(state.settings.metrics.render()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}
