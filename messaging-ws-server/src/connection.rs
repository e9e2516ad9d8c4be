//! One WebSocket session: a single task that reads requests, runs them one at a time,
//! writes replies and pushes, sends heartbeats and enforces the limits of PROTOCOL.md.
//!
//! Why one task and a `select!`: an idle connection is then one small future (no extra
//! task, channel or buffer per connection), and every branch is cancel-safe, so the loop
//! can wait on the socket, the subscription, the running operation, the heartbeat and
//! shutdown at once.
//!
//! Requests on one connection run in order, one at a time (a client's sends keep their
//! order; replies come in request order). While one runs, pushes and heartbeats go on, and
//! the next frames wait in the socket (TCP backpressure).
//!
//! Lag policy: frames waiting to be written (replies and pushes) queue in `outbox`. A
//! reader too slow to keep it under `max_queue_frames`, or whose subscription overflowed in
//! the fan-out, is closed with 4000 `lagged`: queued frames are dropped, the close frame is
//! written when the socket takes it (bounded by a grace period), and the client resumes
//! with `sync`. Nobody else waits for it: the fan-out never blocks on a session.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::{SplitSink, SplitStream};
use futures::{Sink, SinkExt, StreamExt};
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
use crate::rate::TokenBucket;
use crate::request;

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

/// Runs a session on an upgraded socket until it ends; closes the `Session` afterwards.
pub(crate) async fn serve<S>(
    socket: WebSocketStream<S>,
    session: Session,
    caller: Caller,
    settings: &SessionSettings,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut conn = Connection::new(socket, caller, settings);
    let hello = frames::hello(
        session.user(),
        &session.id().to_string(),
        session.cursor(),
        settings.heartbeat.as_secs(),
        &settings.hello,
    );
    let mut session = session;
    // The outbox is empty: the hello is never refused.
    if conn.queue(hello).is_ok() {
        conn.run(&mut session, &mut shutdown).await;
    }
    if let Err(error) = session.close().await {
        tracing::warn!(%error, "closing a session failed");
    }
}

struct Connection<'a, S> {
    sink: SplitSink<WebSocketStream<S>, Message>,
    stream: SplitStream<WebSocketStream<S>>,
    outbox: VecDeque<Message>,
    unflushed: bool,
    caller: Caller,
    settings: &'a SessionSettings,
    bucket: TokenBucket,
    running: Option<Running>,
    last_heard: Instant,
}

impl<'a, S> Connection<'a, S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    fn new(socket: WebSocketStream<S>, caller: Caller, settings: &'a SessionSettings) -> Self {
        let (sink, stream) = socket.split();
        Self {
            sink,
            stream,
            outbox: VecDeque::new(),
            unflushed: false,
            caller,
            settings,
            bucket: TokenBucket::new(settings.hello.ops_per_s, settings.hello.ops_burst),
            running: None,
            last_heard: Instant::now(),
        }
    }

    async fn run(&mut self, session: &mut Session, shutdown: &mut watch::Receiver<bool>) {
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
            let Self { sink, stream, outbox, unflushed, running, settings, .. } = self;
            let step = tokio::select! {
                written = std::future::poll_fn(|cx| poll_write(cx, sink, outbox, unflushed, &settings.metrics)), if writing => {
                    Step::Written(written)
                }
                reply = async {
                    match running.as_mut() {
                        Some(running) => (&mut running.future).await,
                        None => std::future::pending().await,
                    }
                }, if running.is_some() => {
                    Step::Replied(reply)
                }
                frame = stream.next(), if running.is_none() && !stopping => Step::Frame(frame),
                push = session.recv() => Step::Push(push),
                _ = ticks.tick() => Step::Tick,
                _ = shutdown.changed(), if !stopping => Step::Stop,
            };
            match step {
                Step::Written(Ok(())) => {}
                Step::Written(Err(error)) => {
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
                }
                Step::Frame(frame) => {
                    if let Err(ending) = self.received(frame) {
                        break ending;
                    }
                }
                Step::Push(Ok(push)) => {
                    self.settings.metrics.events_delivered.inc();
                    if let Err(ending) = self.queue(frames::push(&push)) {
                        break ending;
                    }
                }
                Step::Push(Err(RecvError::Lagged)) => break self.lagged(),
                Step::Push(Err(RecvError::Closed)) => {
                    break Ending::Close(close(CloseCode::Away, "server shutting down"));
                }
                Step::Tick => {
                    if self.last_heard.elapsed() > heartbeat * 2 {
                        tracing::debug!("peer silent for two heartbeats; dropping it");
                        break Ending::Drop;
                    }
                    self.outbox.push_back(Message::Ping(Bytes::new()));
                }
                Step::Stop => stopping = true,
            }
        };
        if let Ending::Close(frame) = ending {
            self.close_with(frame).await;
        }
    }

    /// Queues a frame for writing; past `max_queue_frames` waiting, the reader is lagging.
    fn queue(&mut self, frame: Bytes) -> Result<(), Ending> {
        if self.outbox.len() >= self.settings.hello.max_queue_frames {
            return Err(self.lagged());
        }
        match Utf8Bytes::try_from(frame) {
            Ok(text) => self.outbox.push_back(Message::Text(text)),
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
            Some(Err(error)) => {
                tracing::debug!(%error, "read failed");
                return Err(Ending::Drop);
            }
        };
        self.last_heard = Instant::now();
        self.settings.metrics.frames_in.inc();
        match frame {
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
                let future = Box::pin(ops::run(self.caller.clone(), request.id, request.op));
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
            while let Some(message) = self.outbox.pop_front() {
                self.sink.feed(message).await?;
                sent += 1;
            }
            self.settings.metrics.frames_out.inc_by(sent);
            self.sink.send(Message::Close(Some(frame))).await
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
            while let Some(Ok(_)) = self.stream.next().await {}
        })
        .await;
    }
}

enum Step {
    Written(Result<(), WsError>),
    Replied((Bytes, &'static str)),
    Frame(Option<Result<Message, WsError>>),
    Push(Result<messaging_core::Push, RecvError>),
    Tick,
    Stop,
}

fn close(code: CloseCode, reason: &'static str) -> CloseFrame {
    CloseFrame { code, reason: Utf8Bytes::from_static(reason) }
}

/// Moves queued frames into the socket and flushes: every frame queued at the time goes
/// out in one flush. Cancel-safe: a frame leaves `outbox` only once the sink took it.
fn poll_write<S>(
    cx: &mut Context<'_>,
    sink: &mut SplitSink<WebSocketStream<S>, Message>,
    outbox: &mut VecDeque<Message>,
    unflushed: &mut bool,
    metrics: &Metrics,
) -> Poll<Result<(), WsError>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    while !outbox.is_empty() {
        ready!(Pin::new(&mut *sink).poll_ready(cx))?;
        if let Some(message) = outbox.pop_front() {
            Pin::new(&mut *sink).start_send(message)?;
            metrics.frames_out.inc();
            *unflushed = true;
        }
    }
    if *unflushed {
        ready!(Pin::new(&mut *sink).poll_flush(cx))?;
        *unflushed = false;
    }
    Poll::Ready(Ok(()))
}
