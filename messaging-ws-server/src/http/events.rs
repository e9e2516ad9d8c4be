//! `GET /v1/events`: the event stream for clients that only listen (browsers'
//! `EventSource`), docs/protocol.md "Server-sent events".
//!
//! A stream is a session: it takes a connection permit and one of the user's session
//! slots, is a presence while open, and ends at shutdown. It starts with `hello` (its `id`
//! the cursor the stream starts after), then, when resuming (`Last-Event-ID`, else
//! `?cursor=`), every durable event after that cursor up to the session's hello cursor
//! (read with `sync`, in pages), then the live pushes: each event exactly once, none
//! skipped, none repeated, live ones at or before the resume cursor left out (a cursor
//! another instance issued may be ahead of this one's feed). A reader slower than the
//! session's queue has its stream ended: it reconnects with its last id and loses nothing.
//! Its bytes need no count of their own (unlike a WebSocket's outbox, which encodes ahead):
//! queued events are shared with their other recipients, and an event is encoded only when
//! hyper polls the body, which it does only while its write buffer (~400 KiB) has room.
//! The SSE framing is axum's.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use messaging_core::{Cursor, Error, LoggedEvent, Push, Session};
use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio_util::task::task_tracker::TaskTrackerToken;

use super::HttpState;
use super::error::HttpError;
use crate::frames;
use crate::revocation::{self, Revocations};
use crate::sessions::SessionSlot;

/// A stream's session, closed when the stream is dropped (its reader gone, or the server
/// shutting down): in a task `Routes::closed` waits for, so the session's presence and
/// last-seen time are written before the host closes its store.
struct OpenSession {
    session: Option<Session>,
    alive: TaskTrackerToken,
}

impl std::ops::Deref for OpenSession {
    type Target = Session;

    fn deref(&self) -> &Session {
        // Only `drop` takes it.
        self.session.as_ref().unwrap_or_else(|| unreachable!("the session is taken on drop"))
    }
}

impl std::ops::DerefMut for OpenSession {
    fn deref_mut(&mut self) -> &mut Session {
        self.session.as_mut().unwrap_or_else(|| unreachable!("the session is taken on drop"))
    }
}

impl Drop for OpenSession {
    fn drop(&mut self) {
        let (Some(session), alive) = (self.session.take(), self.alive.clone()) else { return };
        // Without a runtime (the process ending) the session's own drop closes it.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = Box::pin(session.close()).await {
                    tracing::warn!(%error, "closing an event stream's session failed");
                }
                drop(alive);
            });
        }
    }
}

/// What an open stream holds until it ends: the session and its permits.
struct Stream {
    session: OpenSession,
    /// Durable events read by `sync`, not yet sent.
    backlog: VecDeque<LoggedEvent>,
    /// Where `sync` continues, while the backlog is not read to the hello cursor.
    resume: Option<Cursor>,
    /// Live events at or before this position were sent already (or never will be).
    after: u64,
    hello: Option<SseEvent>,
    shutdown: watch::Receiver<bool>,
    /// Heartbeats, on which the stream asks whether its user's tokens were revoked (in
    /// case the signal was lost).
    ticks: tokio::time::Interval,
    revocations: Revocations,
    _keep: (OwnedSemaphorePermit, SessionSlot),
}

/// Answers `GET /v1/events`.
pub(super) async fn handle(State(state): State<Arc<HttpState>>, request: Request) -> Response {
    match open(&state, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn open(state: &HttpState, request: Request) -> Result<Response, HttpError> {
    let (parts, _) = request.into_parts();
    let user = super::user_of(state, &parts).await?;
    let start = start_cursor(&parts)?;
    let unavailable =
        |why: &str| HttpError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", why);
    let settings = &state.settings;
    let Ok(permit) = state.connections.clone().try_acquire_owned() else {
        settings.metrics.refused("connections");
        return Err(unavailable("too many connections"));
    };
    let Some(slot) = state.sessions.try_open(user) else {
        settings.metrics.refused("sessions_per_user");
        return Err(unavailable("too many sessions of this user"));
    };
    if *state.shutdown.borrow() {
        return Err(unavailable("shutting down"));
    }
    let session = tokio::time::timeout(settings.answer_timeout, state.messenger.connect(user))
        .await
        .map_err(|_| unavailable("the store is unavailable"))??;
    let hello_cursor = session.cursor();
    // A cursor the server never issued is refused before the stream starts.
    if let Some(start) = start
        && start > hello_cursor
    {
        state.messenger.sync(user, Some(start), hello_cursor, Some(1)).await?;
    }
    let after = start.unwrap_or(hello_cursor);
    let hello =
        SseEvent::default().event("hello").id(after.to_string()).data(text(&frames::hello_data(
            user,
            &session.id().to_string(),
            after,
            settings.heartbeat.as_secs(),
            &settings.hello,
        )));
    let heartbeat = settings.heartbeat;
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stream = Stream {
        session: OpenSession { session: Some(session), alive: state.sessions_alive.token() },
        backlog: VecDeque::new(),
        resume: start.filter(|start| *start < hello_cursor),
        after: after.position().max(hello_cursor.position()),
        hello: Some(hello),
        shutdown: state.shutdown.clone(),
        ticks,
        revocations: Revocations::new(state.messenger.clone(), user, settings.answer_timeout),
        _keep: (permit, slot),
    };
    let events = futures::stream::unfold(stream, next);
    let keep_alive = KeepAlive::new().interval(settings.heartbeat).text("ping");
    Ok(Sse::new(events).keep_alive(keep_alive).into_response())
}

/// `Last-Event-ID`, else `?cursor=`; none when neither is given.
fn start_cursor(parts: &http::request::Parts) -> Result<Option<Cursor>, HttpError> {
    let header = parts.headers.get("last-event-id").map(|value| {
        value.to_str().map(str::to_owned).map_err(|_| Error::invalid("Last-Event-ID is not text"))
    });
    let text = match header {
        Some(value) => Some(value?),
        None => super::fields::from_query(parts.uri.query())?
            .get("cursor")
            .and_then(|v| v.as_str().map(str::to_owned)),
    };
    Ok(text.filter(|t| !t.is_empty()).map(|t| Cursor::parse(&t)).transpose()?)
}

/// The next event of the stream, or its end.
async fn next(mut stream: Stream) -> Option<(Result<SseEvent, Infallible>, Stream)> {
    if let Some(hello) = stream.hello.take() {
        return Some((Ok(hello), stream));
    }
    loop {
        if let Some(logged) = stream.backlog.pop_front() {
            return Some((Ok(durable(&logged)), stream));
        }
        if let Some(from) = stream.resume {
            let page = match stream.session.sync(Some(from), None).await {
                Ok(page) => page,
                Err(error) => {
                    tracing::debug!(%error, "an event stream's sync failed; the stream ends");
                    return None;
                }
            };
            stream.resume = page.has_more.then_some(page.cursor);
            stream.backlog.extend(page.events);
            continue;
        }
        let push = tokio::select! {
            push = stream.session.recv() => Some(push),
            _ = stream.shutdown.wait_for(|stop| *stop) => return None,
            _ = stream.ticks.tick() => None,
        };
        let Some(push) = push else {
            if stream.revocations.check().await {
                continue;
            }
            tracing::debug!("the user's tokens were revoked; the event stream ends");
            return None;
        };
        match push {
            Ok(push) if revocation::is_revocation(&push) => {
                tracing::debug!("the user's tokens were revoked; the event stream ends");
                return None;
            }
            Ok(Push::Event(event)) => {
                let logged = event.get();
                if logged.position <= stream.after {
                    continue;
                }
                stream.after = logged.position;
                return Some((Ok(durable(logged)), stream));
            }
            Ok(Push::Signal(signal)) => {
                let signal = signal.get();
                let Some(data) = frames::signal_data(signal) else { continue };
                let event = SseEvent::default().event(signal.name()).data(text(&data));
                return Some((Ok(event), stream));
            }
            // Lagged (slower than the queue) or closed: the reader reconnects with its
            // last id and loses nothing.
            Err(_) => return None,
        }
    }
}

fn durable(logged: &LoggedEvent) -> SseEvent {
    SseEvent::default()
        .id(logged.cursor().to_string())
        .event(logged.event.name())
        .data(text(&frames::event_data(&logged.event)))
}

/// JSON bytes as text (serde_json writes UTF-8).
fn text(json: &[u8]) -> String {
    String::from_utf8_lossy(json).into_owned()
}
