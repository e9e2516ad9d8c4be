//! One WebSocket session: a single task that reads requests, runs them one at a time,
//! writes replies and pushes, sends heartbeats and enforces the limits of docs/protocol.md.
//!
//! Why one task and a `select!`: an idle connection is then one small future (no extra
//! task, channel or buffer per connection), and every branch is cancel-safe, so the loop
//! can wait on the socket, the subscription, the running operation, the heartbeat and
//! shutdown at once.
//!
//! Requests on one connection run in order, one at a time (a client's sends keep their
//! order; replies come in request order). While one runs, pushes and heartbeats go on:
//! control frames are still read (a pong is an answer), and the next request is held until
//! the running one is answered; frames after it wait in the socket.
//!
//! Backpressure: while the socket does not take what is written (the client is not
//! reading), nothing more is read from it either, so a client that sends without reading
//! cannot make the server queue replies or pongs without bound; its requests wait in its
//! own socket. Pushes keep queueing, up to `max_queue_frames` frames and `max_queue_bytes`
//! bytes. tungstenite's own write buffer is finite too (`max_write_buffer_size`); when a
//! frame would pass it, tungstenite hands the frame back (`WriteBufferFull`), and it goes
//! back to the head of the outbox: the socket is not taking writes, nothing is lost.
//!
//! Lag policy: frames waiting to be written (replies and pushes) queue in the
//! [`Outbox`], which counts their bytes and those handed to the socket but not yet flushed.
//! A reader too slow to keep it under `max_queue_frames` and `max_queue_bytes`, or whose
//! subscription overflowed in the fan-out, is closed with 4000 `lagged`: queued frames are
//! dropped, the close frame is written when the socket takes it (bounded by a grace
//! period), and the client resumes with `sync`. Nobody else waits for it: the fan-out never
//! blocks on a session.
//!
//! Searches are also limited per user across connections (`search_per_s`,
//! `search_burst`), besides the connection's own request rate.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{Sink, SinkExt, Stream, StreamExt};
use messaging_core::{RecvError, Session};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::CapacityError;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use crate::frames::{self, HelloLimits};
use crate::metrics::Metrics;
use crate::ops::{self, Caller};
use crate::outbox::Outbox;
use crate::rate::{TokenBucket, UserBuckets};
use crate::request::{self, Op};
use crate::revocation::{self, Revocations};

/// Longest a closing connection waits for its last frames to be written.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Longest a closing connection waits for the client's close reply.
const CLOSE_REPLY: Duration = Duration::from_millis(500);

/// The close code of a slow reader.
const LAGGED: u16 = 4000;

/// What a session needs from the server besides its socket.
pub(crate) struct SessionSettings {
    pub(crate) hello: HelloLimits,
    pub(crate) heartbeat: Duration,
    pub(crate) metrics: Arc<Metrics>,
    /// The answer bound of every request.
    pub(crate) answer_timeout: Duration,
    /// Every user's search bucket, shared by their connections.
    pub(crate) searches: UserBuckets,
}

type OpFuture = Pin<Box<dyn Future<Output = (Bytes, &'static str)> + Send>>;

/// The operation running on a connection.
struct Running {
    future: OpFuture,
    name: &'static str,
    started: Instant,
}

/// Why the loop is ending.
enum Ending {
    /// Write `frame` (when the socket takes it), then stop.
    Close(CloseFrame),
    /// Stop now, without a close frame (the peer is gone or silent).
    Drop,
}

/// Runs a session on an upgraded socket until it ends (at once when the upgrade failed),
/// then closes the `Session`. `keep` is held until then.
///
/// A function returning the future rather than an `async fn`: an `async fn` keeps its
/// arguments beside the locals made from them, and this future is most of what an idle
/// connection costs.
pub(crate) fn serve<S, K>(
    socket: Result<WebSocketStream<S>, hyper::Error>,
    session: Session,
    caller: Caller,
    settings: Arc<SessionSettings>,
    shutdown: watch::Receiver<bool>,
    keep: K,
) -> impl Future<Output = ()> + Send
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    K: Send,
{
    let mut connection = match socket {
        Ok(socket) => Some(Connection::new(socket, caller, settings)),
        Err(error) => {
            tracing::debug!(%error, "upgrade failed");
            None
        }
    };
    let (mut session, mut shutdown) = (session, shutdown);
    async move {
        if let Some(connection) = &mut connection {
            let metrics = connection.settings.metrics.clone();
            metrics.connections_open.inc();
            connection.run(&mut session, &mut shutdown).await;
            metrics.connections_open.dec();
        }
        drop(connection);
        // Boxed: closing takes a large future, needed only once, at the end.
        if let Err(error) = Box::pin(session.close()).await {
            tracing::warn!(%error, "closing a session failed");
        }
        drop(keep);
    }
}

struct Connection<S> {
    socket: WebSocketStream<S>,
    outbox: Outbox,
    unflushed: bool,
    caller: Caller,
    settings: Arc<SessionSettings>,
    bucket: TokenBucket,
    running: Option<Running>,
    /// A request read while another ran; it runs next.
    held: Option<Utf8Bytes>,
    /// The socket did not take the last write (the client is not reading).
    blocked: bool,
    last_heard: Instant,
    revocations: Revocations,
    /// The heartbeat's revocation check, while it runs.
    checking: Option<revocation::Check>,
}

impl<S> Connection<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    fn new(socket: WebSocketStream<S>, caller: Caller, settings: Arc<SessionSettings>) -> Self {
        let bucket = TokenBucket::new(settings.hello.ops_per_s, settings.hello.ops_burst);
        let revocations =
            Revocations::new(caller.messenger.clone(), caller.user, settings.answer_timeout);
        Self {
            socket,
            outbox: Outbox::new(settings.metrics.outbox_bytes.clone()),
            unflushed: false,
            caller,
            settings,
            bucket,
            running: None,
            held: None,
            blocked: false,
            last_heard: Instant::now(),
            revocations,
            checking: None,
        }
    }

    /// Sends the hello, then serves requests, pushes and heartbeats until the session ends.
    async fn run(&mut self, session: &mut Session, shutdown: &mut watch::Receiver<bool>) {
        let hello = frames::hello(
            session.user(),
            &session.id().to_string(),
            session.cursor(),
            self.settings.heartbeat.as_secs(),
            &self.settings.hello,
        );
        // The outbox is empty: the hello is never refused.
        if self.queue(hello).is_err() {
            return;
        }
        let heartbeat = self.settings.heartbeat;
        let mut ticks =
            tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stopping = *shutdown.borrow();
        let ending = loop {
            if stopping && self.running.is_none() {
                break Ending::Close(close(CloseCode::Away, "server shutting down"));
            }
            let writing = !self.outbox.is_empty() || self.unflushed;
            let reading = self.held.is_none() && !stopping;
            let Self { socket, outbox, unflushed, blocked, running, settings, checking, .. } = self;
            let mut io =
                Io { socket, outbox, unflushed, blocked, metrics: &settings.metrics, reading };
            let step = tokio::select! {
                step = std::future::poll_fn(|cx| io.poll(cx)), if writing || reading => step,
                reply = async {
                    match running.as_mut() {
                        Some(running) => (&mut running.future).await,
                        None => std::future::pending().await,
                    }
                }, if running.is_some() => {
                    Step::Replied(reply)
                }
                push = session.recv() => Step::Push(push),
                accepted = async {
                    match checking.as_mut() {
                        Some(check) => check.await,
                        None => std::future::pending().await,
                    }
                }, if checking.is_some() => Step::Checked(accepted),
                _ = ticks.tick() => Step::Tick,
                _ = shutdown.changed(), if !stopping => Step::Stop,
            };
            match step {
                Step::Written => {}
                Step::WriteFailed(error) => {
                    tracing::debug!(%error, "write failed");
                    break Ending::Drop;
                }
                Step::Replied((reply, outcome)) => {
                    if let Some(done) = self.running.take() {
                        self.settings.metrics.op(done.name, outcome, done.started.elapsed());
                    }
                    if let Err(ending) = self.queue(reply) {
                        break ending;
                    }
                    if let Some(next) = self.held.take() {
                        // Not read while it was held: the client's pongs wait in the socket.
                        self.last_heard = Instant::now();
                        if let Err(ending) = self.request(&next) {
                            break ending;
                        }
                    }
                }
                Step::Frame(frame) => {
                    if let Err(ending) = self.received(frame) {
                        break ending;
                    }
                }
                Step::Push(Ok(push)) if revocation::is_revocation(&push) => break revoked(),
                Step::Push(Ok(push)) => {
                    let Some(frame) = frames::push(&push) else { continue };
                    self.settings.metrics.events_delivered.inc();
                    if let Err(ending) = self.queue(frame) {
                        break ending;
                    }
                }
                Step::Push(Err(RecvError::Lagged)) => break self.lagged(),
                Step::Push(Err(RecvError::Closed)) => {
                    break Ending::Close(close(CloseCode::Away, "server shutting down"));
                }
                Step::Tick => {
                    // While a request is held, the socket is not read: silence proves nothing.
                    if self.held.is_none() && self.last_heard.elapsed() > heartbeat * 2 {
                        if self.blocked {
                            // Not reading what it is sent, so not what it was pinged with.
                            tracing::debug!("peer not reading for two heartbeats; lagged");
                            break self.lagged();
                        }
                        tracing::debug!("peer silent for two heartbeats; dropping it");
                        break Ending::Drop;
                    }
                    self.outbox.push(Message::Ping(Bytes::new()));
                    if self.checking.is_none() {
                        self.checking = Some(self.revocations.check());
                    }
                }
                Step::Checked(accepted) => {
                    self.checking = None;
                    if !accepted {
                        break revoked();
                    }
                }
                Step::Stop => stopping = true,
            }
        };
        if let Ending::Close(frame) = ending {
            // Boxed: only a closing connection needs this future's room.
            Box::pin(self.close_with(frame)).await;
        }
    }

    /// Queues a frame for writing; past `max_queue_frames` frames or `max_queue_bytes`
    /// bytes waiting, the reader is lagging.
    fn queue(&mut self, frame: Bytes) -> Result<(), Ending> {
        let limits = &self.settings.hello;
        if self.outbox.len() >= limits.max_queue_frames
            || self.outbox.bytes().saturating_add(frame.len()) > limits.max_queue_bytes
        {
            return Err(self.lagged());
        }
        match Utf8Bytes::try_from(frame) {
            Ok(text) => self.outbox.push(Message::Text(text)),
            Err(error) => tracing::error!(%error, "an encoded frame is not UTF-8; not sent"),
        }
        Ok(())
    }

    fn lagged(&mut self) -> Ending {
        self.settings.metrics.lagged_closes.inc();
        self.outbox.clear();
        Ending::Close(close(CloseCode::Library(LAGGED), "lagged"))
    }

    /// Handles one frame from the client.
    fn received(&mut self, frame: Option<Result<Message, WsError>>) -> Result<(), Ending> {
        let frame = match frame {
            None => return Err(Ending::Drop),
            Some(Ok(frame)) => frame,
            Some(Err(WsError::Capacity(
                CapacityError::MessageTooLong { .. } | CapacityError::TooManyHeaders,
            ))) => {
                return Err(Ending::Close(close(CloseCode::Size, "frame too large")));
            }
            // RFC 6455 fails the connection on these; the close code says why.
            Some(Err(WsError::Utf8(_))) => {
                return Err(Ending::Close(close(CloseCode::Invalid, "text frame is not UTF-8")));
            }
            Some(Err(WsError::Protocol(error))) => {
                tracing::debug!(%error, "WebSocket protocol error");
                return Err(Ending::Close(close(CloseCode::Protocol, "WebSocket protocol error")));
            }
            Some(Err(error)) => {
                tracing::debug!(%error, "read failed");
                return Err(Ending::Drop);
            }
        };
        self.last_heard = Instant::now();
        self.settings.metrics.frames_in.inc();
        match frame {
            Message::Text(text) if self.running.is_some() => {
                self.held = Some(text);
                Ok(())
            }
            Message::Text(text) => self.request(&text),
            Message::Binary(_) => {
                Err(Ending::Close(close(CloseCode::Unsupported, "binary frames are not accepted")))
            }
            // tungstenite queued the pong (or the close reply); it goes out with the next flush.
            Message::Ping(_) | Message::Close(_) => {
                self.unflushed = true;
                Ok(())
            }
            Message::Pong(_) | Message::Frame(_) => Ok(()),
        }
    }

    fn request(&mut self, text: &str) -> Result<(), Ending> {
        if !self.bucket.try_take() {
            let id = request::parse(text).map_or_else(|r| r.id, |r| r.id);
            self.settings.metrics.op("unknown", "rate_limited", Duration::ZERO);
            return self.queue(frames::error(&id, &messaging_core::Error::RateLimited));
        }
        match request::parse(text) {
            Ok(request) => {
                let name = request.op.name();
                if matches!(request.op, Op::Search { .. })
                    && !self.settings.searches.try_take(self.caller.user)
                {
                    self.settings.metrics.op(name, "rate_limited", Duration::ZERO);
                    return self
                        .queue(frames::error(&request.id, &messaging_core::Error::RateLimited));
                }
                let settings = &self.settings;
                let future = Box::pin(ops::run(
                    self.caller.clone(),
                    request.id,
                    request.op,
                    settings.answer_timeout,
                    settings.metrics.clone(),
                ));
                self.running = Some(Running { future, name, started: Instant::now() });
                Ok(())
            }
            Err(rejected) => {
                self.settings.metrics.op("unknown", "bad_request", Duration::ZERO);
                self.queue(frames::error(&rejected.id, &rejected.error))
            }
        }
    }

    /// Writes what is queued and then `frame` (within [`CLOSE_GRACE`]: a lagging reader
    /// gets it once it reads again), then waits briefly for the client's close reply.
    async fn close_with(&mut self, frame: CloseFrame) {
        let writing = async {
            let mut sent = 0_u64;
            while let Some((message, _)) = self.outbox.take_front() {
                self.socket.feed(message).await?;
                sent += 1;
            }
            self.settings.metrics.frames_out.inc_by(sent);
            self.socket.send(Message::Close(Some(frame))).await
        };
        match tokio::time::timeout(CLOSE_GRACE, writing).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::debug!(%error, "writing the close frame failed");
                return;
            }
            Err(_) => {
                tracing::debug!("the close frame could not be written in time");
                return;
            }
        }
        // The client answers with its own close frame, then the stream ends; a client that
        // does not is not waited for long.
        let _ = tokio::time::timeout(CLOSE_REPLY, async {
            while let Some(Ok(_)) = self.socket.next().await {}
        })
        .await;
    }
}

enum Step {
    Written,
    WriteFailed(WsError),
    Replied((Bytes, &'static str)),
    Frame(Option<Result<Message, WsError>>),
    Push(Result<messaging_core::Push, RecvError>),
    Tick,
    /// The heartbeat's revocation check answered: whether the session may go on.
    Checked(bool),
    Stop,
}

fn close(code: CloseCode, reason: &'static str) -> CloseFrame {
    CloseFrame { code, reason: Utf8Bytes::from_static(reason) }
}

/// The user's tokens were revoked: 4001.
fn revoked() -> Ending {
    tracing::debug!("the user's tokens were revoked; closing the session");
    Ending::Close(close(CloseCode::Library(revocation::CLOSE_CODE), "revoked"))
}

/// The socket's two directions as one future: writing what is queued and, when `reading`,
/// the next frame. One future rather than two because both need the socket mutably (a
/// split would put it behind a lock in a shared allocation on every connection).
struct Io<'a, S> {
    socket: &'a mut WebSocketStream<S>,
    outbox: &'a mut Outbox,
    unflushed: &'a mut bool,
    blocked: &'a mut bool,
    metrics: &'a Metrics,
    reading: bool,
}

impl<S> Io<'_, S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// Cancel-safe: a frame leaves `outbox` only once the socket took it, and a read frame
    /// is returned at once. Reads only while writes go through (see the module's
    /// backpressure).
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Step> {
        let written = if !self.outbox.is_empty() || *self.unflushed {
            match self.poll_write(cx) {
                Poll::Ready(Ok(())) => true,
                Poll::Ready(Err(error)) => return Poll::Ready(Step::WriteFailed(error)),
                Poll::Pending => false,
            }
        } else {
            false
        };
        *self.blocked = !self.outbox.is_empty() || *self.unflushed;
        if self.reading
            && !*self.blocked
            && let Poll::Ready(frame) = Pin::new(&mut *self.socket).poll_next(cx)
        {
            return Poll::Ready(Step::Frame(frame));
        }
        if written { Poll::Ready(Step::Written) } else { Poll::Pending }
    }

    /// Moves queued frames into the socket and flushes: every frame queued at the time
    /// goes out in one flush.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        let mut socket = Pin::new(&mut *self.socket);
        // Set once a flush emptied tungstenite's buffer for a frame it refused.
        let mut drained_for_refused = false;
        while !self.outbox.is_empty() {
            ready!(socket.as_mut().poll_ready(cx))?;
            let Some((message, size)) = self.outbox.take_front() else { break };
            match socket.as_mut().start_send(message) {
                Ok(()) => {
                    self.metrics.frames_out.inc();
                    *self.unflushed = true;
                    drained_for_refused = false;
                }
                // tungstenite's write buffer is full: the frame comes back whole. The
                // socket is not taking writes; wait until it has taken the buffer.
                Err(WsError::WriteBufferFull(message)) if !drained_for_refused => {
                    self.outbox.put_back(*message, size);
                    *self.unflushed = true;
                    ready!(socket.as_mut().poll_flush(cx))?;
                    *self.unflushed = false;
                    self.outbox.flushed();
                    drained_for_refused = true;
                }
                // Refused by an empty buffer: larger than the buffer can ever hold. The
                // buffer is sized above the queue's byte cap, so `queue` never lets such
                // a frame in; should one come, the connection ends rather than spin.
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
        if *self.unflushed {
            ready!(socket.as_mut().poll_flush(cx))?;
            *self.unflushed = false;
        }
        self.outbox.flushed();
        Poll::Ready(Ok(()))
    }
}
