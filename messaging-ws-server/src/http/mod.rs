//! The HTTP routes for users (docs/protocol.md "HTTP API"): each route is the WebSocket
//! operation of the same name, parsed by the same code from the path, query and body
//! merged into one object (`fields`), run by the same `ops::answer`, and answered with
//! the operation's `data` as the whole body (201 when it created a conversation or a
//! message). Routing is axum's; errors are the protocol's error object (`error`), axum's
//! own rejections included.
//!
//! Check order: an unknown route is 404; a known route with another method is 405 with
//! `Allow`; then authentication (401), the body's size (413), its shape and the path and
//! query values (400), then the user's rate limit (429 with `Retry-After`): one bucket per
//! user for HTTP requests (`ops_per_s`, `ops_burst`), forgotten once full again, and the
//! search bucket shared with the WebSocket sessions.

mod authenticate;
mod cors;
mod error;
mod events;
mod fields;
pub(crate) mod origin;
mod service;
pub mod service_keys;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{RawPathParams, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, patch, post, put};
use http::{HeaderValue, StatusCode, header};
use messaging_core::{Cursor, Error, Messenger};
use serde_json::{Map, Value};

pub use self::authenticate::{Authenticate, JwtAuth};
pub(crate) use self::cors::{Cors, is_origin};
use self::error::HttpError;
pub use self::error::status_of;
use crate::connection::SessionSettings;
use crate::ops::{self, Caller};
use crate::rate::UserBuckets;
use crate::request::{self, Op};

/// What the routes share (built by `RoutesBuilder::build`).
pub(crate) struct HttpState {
    pub(crate) messenger: Messenger,
    pub(crate) auth: Arc<dyn Authenticate>,
    /// The largest request body (the WebSocket frame limit).
    pub(crate) max_body_bytes: usize,
    /// The answer bound, the metrics and the search buckets of the WebSocket sessions.
    pub(crate) settings: Arc<SessionSettings>,
    /// The WebSocket sessions' buffers and frame limits.
    pub(crate) ws_config: tokio_tungstenite::tungstenite::protocol::WebSocketConfig,
    /// Each user's HTTP requests.
    pub(crate) requests: UserBuckets,
    /// The origins whose browser pages may call.
    pub(crate) cors: Arc<Cors>,
    /// Sessions (WebSocket and event streams), bounded by `max_connections`.
    pub(crate) connections: Arc<tokio::sync::Semaphore>,
    /// Sessions per user.
    pub(crate) sessions: Arc<crate::sessions::UserSessions>,
    /// Every open session holds a token of it: `Routes::closed` waits for them.
    pub(crate) sessions_alive: tokio_util::task::TaskTracker,
    /// Becomes `true` at shutdown: sessions end.
    pub(crate) shutdown: tokio::sync::watch::Receiver<bool>,
    /// The service API's keys (none: the service routes do not exist).
    pub(crate) service_keys: Arc<service_keys::ServiceKeys>,
    /// Mints user tokens for the service API (when the server has an HS256 secret).
    pub(crate) minter: Option<crate::auth::Verifier>,
    /// Proxies whose `X-Forwarded-For` names the client (for logs).
    pub(crate) trusted_proxies: Vec<std::net::IpAddr>,
}

/// Where a route's parameters come from besides its path.
#[derive(Clone, Copy)]
enum Input {
    Query,
    Body,
    Nothing,
}

/// One route: the operation it runs, where its parameters are, and fields it fixes.
#[derive(Clone, Copy)]
struct Spec {
    op: &'static str,
    input: Input,
    fixed: &'static [(&'static str, &'static str)],
}

const fn spec(op: &'static str, input: Input) -> Spec {
    Spec { op, input, fixed: &[] }
}

/// The user routes, to serve beside `/v1/ws` (the path captures are named as the
/// operations' parameters).
pub(crate) fn routes(state: Arc<HttpState>) -> Router {
    use Input::{Body as B, Nothing as N, Query as Q};
    let route = |s: Spec| {
        move |State(state): State<Arc<HttpState>>,
              params: Result<RawPathParams, axum::extract::rejection::RawPathParamsRejection>,
              request: Request| async move { call(s, &state, params, request).await }
    };
    let on = |method: fn(_) -> MethodRouter<Arc<HttpState>>, s: Spec| method(route(s));
    Router::new()
        .route(
            "/v1/conversations",
            on(get, spec("conversations", Q)).merge(on(post, spec("open", B))),
        )
        .route("/v1/conversations/{conversation_id}", on(get, spec("conversation", N)))
        .route(
            "/v1/conversations/{conversation_id}/messages",
            on(get, spec("history", Q)).merge(on(post, spec("send", B))),
        )
        .route("/v1/conversations/{conversation_id}/read", on(post, spec("read", B)))
        .route("/v1/conversations/{conversation_id}/delivered", on(post, spec("delivered", B)))
        .route("/v1/conversations/{conversation_id}/typing", on(post, spec("typing", B)))
        .route("/v1/conversations/{conversation_id}/mute", on(post, spec("mute", B)))
        .route("/v1/conversations/{conversation_id}/archive", on(post, spec("archive", B)))
        .route("/v1/messages", on(post, spec("send", B)))
        .route(
            "/v1/messages/{message_id}",
            on(patch, spec("edit", B)).merge(on(delete, spec("delete", N))),
        )
        .route(
            "/v1/messages/{message_id}/reactions",
            on(post, Spec { op: "react", input: B, fixed: &[("state", "added")] }),
        )
        .route(
            "/v1/messages/{message_id}/reactions/{emoji}",
            on(delete, Spec { op: "react", input: N, fixed: &[("state", "removed")] }),
        )
        .route("/v1/search", on(get, spec("search", Q)))
        .route("/v1/sync", on(get, spec("sync", Q)))
        .route("/v1/events", get(events::handle))
        .merge(service::routes())
        .route("/v1/ws", get(crate::upgrade::handle))
        .route("/v1/unread", on(get, spec("unread", N)))
        .route("/v1/presence", on(get, spec("presence", Q)))
        .route("/v1/blocks", on(get, spec("blocks", Q)))
        .route(
            "/v1/blocks/{user_id}",
            on(put, spec("block", N)).merge(on(delete, spec("unblock", N))),
        )
        .fallback(|| async { HttpError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .layer(axum::middleware::map_response(method_not_allowed))
        .layer(axum::middleware::from_fn_with_state(state.cors.clone(), cors::layer))
        .with_state(state)
}

/// axum answers a known route's other methods with an empty 405 and `Allow`: the body
/// becomes the protocol's error object (code `bad_request`), `Allow` stays.
async fn method_not_allowed(response: Response) -> Response {
    if response.status() != StatusCode::METHOD_NOT_ALLOWED {
        return response;
    }
    let allow = response.headers().get(header::ALLOW).cloned();
    let mut answer = HttpError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "bad_request",
        "this route does not take this method (see Allow)",
    )
    .into_response();
    if let Some(allow) = allow {
        answer.headers_mut().insert(header::ALLOW, allow);
    }
    answer
}

/// The user a request authenticates (401 otherwise).
pub(crate) async fn user_of(
    state: &HttpState,
    parts: &http::request::Parts,
) -> Result<messaging_core::UserId, HttpError> {
    state.auth.authenticate(parts).await.map_err(|error| match error {
        crate::auth::AuthError::Unavailable => {
            HttpError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", error.to_string())
        }
        _ => HttpError::unauthorized(error.to_string()),
    })
}

/// A request's body, at most `max_frame_bytes` (413 beyond).
async fn read_body(state: &HttpState, body: Body) -> Result<bytes::Bytes, HttpError> {
    axum::body::to_bytes(body, state.max_body_bytes).await.map_err(|_| {
        HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the body is larger than {} bytes", state.max_body_bytes),
        )
    })
}

/// The path's captures as fields (named as the operations' parameters).
fn path_fields(
    params: Result<RawPathParams, axum::extract::rejection::RawPathParamsRejection>,
) -> Result<Map<String, Value>, HttpError> {
    let params = params.map_err(|_| {
        HttpError::new(StatusCode::BAD_REQUEST, "bad_request", "a path segment is not valid UTF-8")
    })?;
    Ok(params
        .iter()
        .map(|(name, value)| (name.to_owned(), Value::String(value.to_owned())))
        .collect())
}

async fn call(
    spec: Spec,
    state: &HttpState,
    params: Result<RawPathParams, axum::extract::rejection::RawPathParamsRejection>,
    request: Request,
) -> Response {
    match run(spec, state, params, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn run(
    spec: Spec,
    state: &HttpState,
    params: Result<RawPathParams, axum::extract::rejection::RawPathParamsRejection>,
    request: Request,
) -> Result<Response, HttpError> {
    let (parts, body) = request.into_parts();
    let user = user_of(state, &parts).await?;
    if origin::changes_state(&parts.method) {
        origin::check(state, &parts)?;
    }
    let body = read_body(state, body).await?;
    let mut fields = match spec.input {
        Input::Body => fields::from_body(&body)?,
        Input::Query => fields::from_query(parts.uri.query())?,
        Input::Nothing => Map::new(),
    };
    // The path wins over a body field of the same name.
    fields.extend(path_fields(params)?);
    for (name, value) in spec.fixed {
        fields.insert((*name).to_owned(), Value::String((*value).to_owned()));
    }
    let op = request::op_from_fields(spec.op, &fields)?;
    let settings = &state.settings;
    let searching = matches!(op, Op::Search { .. });
    if !state.requests.try_take(user) || (searching && !settings.searches.try_take(user)) {
        settings.metrics.op(op.name(), "rate_limited", std::time::Duration::ZERO);
        let mut refused = HttpError::from(Error::RateLimited).into_response();
        // One token comes back within a second at any configured rate (at least 1/s).
        refused.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return Ok(refused);
    }
    // Outside a session, `sync` goes up to what has been dispatched now.
    let hello =
        if matches!(op, Op::Sync { .. }) { state.messenger.cursor_now() } else { Cursor::at(0) };
    let caller = Caller { messenger: state.messenger.clone(), user, hello };
    let (name, started) = (op.name(), std::time::Instant::now());
    let answered =
        ops::answer_within(&caller, op, settings.answer_timeout, &settings.metrics).await;
    let outcome = answered.as_ref().map_or_else(Error::code, |_| "ok");
    settings.metrics.op(name, outcome, started.elapsed());
    let answer = answered?;
    let status = if answer.created { StatusCode::CREATED } else { StatusCode::OK };
    let mut response = Response::new(Body::from(answer.data));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}
