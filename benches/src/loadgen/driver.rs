//! One user of the sustained load (see `sustained`): sends on schedule over WebSocket or
//! HTTP, and reads its conversation's `message.created` events from its WebSocket or its
//! event stream, counting acknowledgements, deliveries and their latencies.
//!
//! One task per user drives every endpoint of that user in one `select!`, so a user's
//! counts need no locks and its in-flight bound (the window) holds across transports: a
//! WebSocket's replies come in request order (one request runs at a time per connection),
//! HTTP answers in any order, each carrying its scheduled send time.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::stream::FuturesUnordered;
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::Deserialize;
use tokio_tungstenite::tungstenite::{self, Message};
use uuid::Uuid;

use super::client::Socket;
use super::{Error, http_client, sse};

/// The run's schedule, shared by every user.
pub(super) struct Schedule {
    /// The time sends are stamped relative to (in each `client_msg_id`).
    pub(super) base: Instant,
    /// The start of the measured window.
    pub(super) measure_from: Instant,
    /// The end of the measured window, and of sending.
    pub(super) stop: Instant,
    /// The end of the wait for answers and events still in flight.
    pub(super) drain_until: Instant,
}

impl Schedule {
    fn micros(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_micros()).unwrap_or(u64::MAX)
    }

    fn in_window(&self, at: Instant) -> bool {
        at >= self.measure_from && at < self.stop
    }
}

/// What the two sides of a conversation know of each other.
#[derive(Default)]
pub(super) struct PairState {
    acked: [AtomicU64; 2],
    settled: [AtomicBool; 2],
}

/// One user's counts.
pub(super) struct Stats {
    pub(super) sent: u64,
    pub(super) acked: u64,
    pub(super) acked_in_window: u64,
    pub(super) errors: u64,
    pub(super) first_error: Option<String>,
    pub(super) delivered: u64,
    pub(super) delivered_in_window: u64,
    pub(super) repeated: u64,
    pub(super) missing: u64,
    last_seq: u64,
    conversation_total: u64,
    pub(super) ended_early: Option<String>,
    pub(super) in_flight_at_end: u64,
    pub(super) deliver_us: Timings,
    pub(super) ack_us: Timings,
}

/// Latencies in µs: a user's as raw samples, the fleet's as a histogram.
///
/// Why not a histogram per user: one covering 1 µs to 10 minutes at three significant
/// digits holds 172 KB, so two per user took 3.4 GB for 10,000 users (`tail`), on the
/// cores and caches the server under test uses. A sample is 4 bytes, and a user records
/// a few hundred at most in a run.
pub(super) enum Timings {
    Raw(Vec<u32>),
    Merged(Box<Histogram<u64>>),
}

impl Timings {
    fn record(&mut self, us: u64) {
        match self {
            Self::Raw(samples) => samples.push(u32::try_from(us).unwrap_or(u32::MAX)),
            Self::Merged(histogram) => histogram.saturating_record(us),
        }
    }

    /// Adds `other`'s samples (a user's added to the fleet's histogram).
    fn add(&mut self, other: &Self) {
        if let Self::Raw(samples) = self {
            // The bounds are constants: building the histogram cannot fail.
            let Ok(histogram) = histogram_of(samples) else { return };
            *self = Self::Merged(Box::new(histogram));
        }
        let Self::Merged(histogram) = self else { return };
        match other {
            Self::Raw(samples) => {
                for &us in samples {
                    histogram.saturating_record(u64::from(us));
                }
            }
            // Histograms of one shape: adding cannot fail.
            Self::Merged(more) => {
                let _ = histogram.add(&**more);
            }
        }
    }

    /// The samples as a histogram (empty when none).
    ///
    /// # Errors
    /// Never in practice: the histogram's bounds are constants.
    pub(super) fn histogram(&self) -> Result<std::borrow::Cow<'_, Histogram<u64>>, Error> {
        Ok(match self {
            Self::Merged(histogram) => std::borrow::Cow::Borrowed(&**histogram),
            Self::Raw(samples) => std::borrow::Cow::Owned(histogram_of(samples)?),
        })
    }
}

/// A histogram of raw samples.
fn histogram_of(samples: &[u32]) -> Result<Histogram<u64>, Error> {
    let mut histogram = super::micros_histogram()?;
    for &us in samples {
        histogram.saturating_record(u64::from(us));
    }
    Ok(histogram)
}

impl Stats {
    pub(super) fn new() -> Result<Self, Error> {
        Ok(Self {
            sent: 0,
            acked: 0,
            acked_in_window: 0,
            errors: 0,
            first_error: None,
            delivered: 0,
            delivered_in_window: 0,
            repeated: 0,
            missing: 0,
            last_seq: 0,
            conversation_total: 0,
            ended_early: None,
            in_flight_at_end: 0,
            deliver_us: Timings::Raw(Vec::new()),
            ack_us: Timings::Raw(Vec::new()),
        })
    }

    pub(super) fn merge(&mut self, other: &Self) {
        self.sent += other.sent;
        self.acked += other.acked;
        self.acked_in_window += other.acked_in_window;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
        self.delivered += other.delivered;
        self.delivered_in_window += other.delivered_in_window;
        self.repeated += other.repeated;
        self.missing += other.missing;
        // A user who saw fewer messages than were stored in its conversation.
        self.missing += other.conversation_total.saturating_sub(other.last_seq);
        if self.ended_early.is_none() {
            self.ended_early.clone_from(&other.ended_early);
        }
        self.in_flight_at_end += other.in_flight_at_end;
        self.deliver_us.add(&other.deliver_us);
        self.ack_us.add(&other.ack_us);
    }
}

/// A WebSocket frame, as much of it as the load needs.
#[derive(Deserialize)]
struct Incoming<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(default)]
    ok: bool,
    #[serde(default)]
    event: Option<&'a str>,
    #[serde(default, borrow)]
    data: Option<Data<'a>>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

/// An event's data (a WebSocket push's `data`, an SSE event's `data:`).
#[derive(Deserialize)]
struct Data<'a> {
    #[serde(default, borrow)]
    message: Option<Delivered<'a>>,
}

#[derive(Deserialize)]
struct Delivered<'a> {
    seq: u64,
    sender_id: Uuid,
    #[serde(default, borrow)]
    client_msg_id: Option<&'a str>,
}

/// A user's connections to the server.
pub(super) struct Endpoints {
    /// Its WebSocket, when it sends or receives over one.
    pub(super) socket: Option<Socket>,
    /// Its event stream, when it receives over one (then its WebSocket's pushes are
    /// read and left aside).
    pub(super) events: Option<sse::Events>,
    /// Its HTTP sender, when it sends over HTTP.
    pub(super) http: Option<http_client::Sender>,
}

/// One user of the load.
pub(super) struct Driver {
    pub(super) me: Uuid,
    pub(super) side: usize,
    pub(super) conversation: String,
    pub(super) pair: Arc<PairState>,
    pub(super) schedule: Arc<Schedule>,
    pub(super) interval: Duration,
    pub(super) window: usize,
    pub(super) bodies: Arc<[String]>,
}

impl Driver {
    /// Sends from `first_send` on until the schedule's stop, then waits for what is in
    /// flight (at most until its drain ends); returns the user's counts.
    ///
    /// # Errors
    /// When the server sends what docs/protocol.md does not allow (a `message.created`
    /// without its message, a message without the send time the load put in it).
    pub(super) async fn drive(
        self,
        mut ends: Endpoints,
        first_send: Instant,
    ) -> Result<Stats, Error> {
        let mut stats = Stats::new()?;
        let schedule = &self.schedule;
        let over_sse = ends.events.is_some();
        let mut next = first_send;
        // WebSocket sends awaiting their reply, in order; HTTP sends awaiting their answer.
        let mut replies: VecDeque<Instant> = VecDeque::new();
        let mut answers = FuturesUnordered::new();
        let timer = tokio::time::sleep_until(next.into());
        tokio::pin!(timer);
        let mut recheck = tokio::time::interval(Duration::from_millis(20));
        let closed_loop = self.window > 0;
        let most_in_flight = match (closed_loop, ends.http.is_some()) {
            (true, _) => self.window,
            (false, true) => http_client::OPEN_LOOP_CONNECTIONS,
            (false, false) => usize::MAX,
        };
        if closed_loop {
            tokio::time::sleep_until(first_send.into()).await;
        }
        loop {
            let sending =
                if closed_loop { Instant::now() < schedule.stop } else { next < schedule.stop };
            let room = replies.len() + answers.len() < most_in_flight;
            tokio::select! {
                () = &mut timer, if sending && room => {
                    if closed_loop {
                        next = Instant::now();
                    }
                    // The bodies are words and punctuation only: nothing to escape.
                    let body = &self.bodies[(stats.sent as usize + self.side) % self.bodies.len()];
                    let key = format!("{}-{}", schedule.micros(next), stats.sent);
                    if let Some(http) = &ends.http {
                        let json = format!(r#"{{"client_msg_id":"{key}","body":"{body}"}}"#);
                        let answer = http.send(json);
                        let scheduled = next;
                        answers.push(async move { (scheduled, answer.await) });
                    } else if let Some(socket) = ends.socket.as_mut() {
                        let frame = format!(
                            r#"{{"id":{},"op":"send","conversation_id":"{}","client_msg_id":"{key}","body":"{body}"}}"#,
                            stats.sent, self.conversation,
                        );
                        if let Err(error) = socket.send(Message::text(frame)).await {
                            stats.ended_early = Some(format!("send failed: {error}"));
                            break;
                        }
                        replies.push_back(next);
                    } else {
                        return Err("a user with no way to send".into());
                    }
                    stats.sent += 1;
                    if !closed_loop {
                        next += self.interval;
                    }
                    timer.as_mut().reset(next.into());
                }
                frame = next_frame(&mut ends.socket) => match frame {
                    Some(Ok(Message::Text(text))) => {
                        self.on_frame(&text, !over_sse, &mut stats, &mut replies)?;
                    }
                    Some(Ok(Message::Close(frame))) => {
                        stats.ended_early = Some(format!("closed by the server: {frame:?}"));
                        break;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(error)) => {
                        stats.ended_early = Some(format!("read failed: {error}"));
                        break;
                    }
                    None => {
                        stats.ended_early = Some("the server closed the connection".into());
                        break;
                    }
                },
                event = next_event(&mut ends.events) => match event {
                    Some(Ok(event)) => {
                        if event.event == "message.created" {
                            let data: Data<'_> = serde_json::from_str(&event.data)?;
                            self.on_created(data, Instant::now(), &mut stats)?;
                        }
                    }
                    Some(Err(error)) => {
                        stats.ended_early = Some(format!("the event stream failed: {error}"));
                        break;
                    }
                    None => {
                        stats.ended_early = Some("the server ended the event stream".into());
                        break;
                    }
                },
                Some((scheduled, answer)) = answers.next(), if !answers.is_empty() => {
                    match answer {
                        Ok(()) => self.on_ack(scheduled, Instant::now(), &mut stats),
                        Err(error) => on_error(error, &mut stats),
                    }
                }
                _ = recheck.tick(), if !sending => {}
            }
            if !sending && replies.is_empty() && answers.is_empty() {
                self.pair.settled[self.side].store(true, Ordering::Release);
                let other = 1 - self.side;
                if self.pair.settled[other].load(Ordering::Acquire)
                    && stats.last_seq >= self.conversation_total()
                {
                    break;
                }
            }
            if Instant::now() >= schedule.drain_until {
                break;
            }
        }
        stats.in_flight_at_end = (replies.len() + answers.len()) as u64;
        stats.conversation_total = self.conversation_total();
        if let Some(mut socket) = ends.socket.take() {
            let _ = socket.close(None).await;
        }
        Ok(stats)
    }

    /// The messages both sides had acknowledged.
    fn conversation_total(&self) -> u64 {
        self.pair.acked[0].load(Ordering::Acquire) + self.pair.acked[1].load(Ordering::Acquire)
    }

    /// A WebSocket text frame: a reply to a send, or a push (counted only when this
    /// socket is where the user receives).
    fn on_frame(
        &self,
        text: &str,
        receiving: bool,
        stats: &mut Stats,
        replies: &mut VecDeque<Instant>,
    ) -> Result<(), Error> {
        let now = Instant::now();
        let frame: Incoming<'_> = serde_json::from_str(text)?;
        match (frame.kind, frame.event, frame.data) {
            ("reply", _, _) => {
                let Some(scheduled) = replies.pop_front() else {
                    return Ok(());
                };
                if frame.ok {
                    self.on_ack(scheduled, now, stats);
                } else {
                    on_error(format!("{:?}", frame.error), stats);
                }
            }
            ("event", Some("message.created"), data) if receiving => {
                let data = data.ok_or("message.created without data")?;
                self.on_created(data, now, stats)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// A send stored, answered at `now`.
    fn on_ack(&self, scheduled: Instant, now: Instant, stats: &mut Stats) {
        stats.acked += 1;
        self.pair.acked[self.side].fetch_add(1, Ordering::AcqRel);
        if self.schedule.in_window(now) {
            stats.acked_in_window += 1;
        }
        if self.schedule.in_window(scheduled) {
            stats.ack_us.record(micros(now.saturating_duration_since(scheduled)));
        }
    }

    /// A `message.created` event received at `now`: checked against the seqs seen, and,
    /// when the peer sent it, a delivery timed from its scheduled send.
    fn on_created(&self, data: Data<'_>, now: Instant, stats: &mut Stats) -> Result<(), Error> {
        let Some(message) = data.message else {
            return Err("message.created without a message".into());
        };
        let expected = stats.last_seq + 1;
        if message.seq < expected {
            stats.repeated += 1;
        } else {
            stats.missing += message.seq - expected;
            stats.last_seq = message.seq;
        }
        if message.sender_id != self.me {
            stats.delivered += 1;
            if self.schedule.in_window(now) {
                stats.delivered_in_window += 1;
            }
            let sent_us = message
                .client_msg_id
                .and_then(|key| key.split('-').next())
                .and_then(|t| t.parse::<u64>().ok())
                .ok_or("a message without its send time in client_msg_id")?;
            let sent_at = self.schedule.base + Duration::from_micros(sent_us);
            if self.schedule.in_window(sent_at) {
                stats.deliver_us.record(micros(now.saturating_duration_since(sent_at)));
            }
        }
        Ok(())
    }
}

/// A send refused or failed.
fn on_error(error: String, stats: &mut Stats) {
    stats.errors += 1;
    stats.first_error.get_or_insert(error);
}

/// The next frame of the user's WebSocket; never, when it has none.
async fn next_frame(socket: &mut Option<Socket>) -> Option<Result<Message, tungstenite::Error>> {
    match socket {
        Some(socket) => socket.next().await,
        None => std::future::pending().await,
    }
}

/// The next event of the user's event stream; never, when it has none.
async fn next_event(
    events: &mut Option<sse::Events>,
) -> Option<Result<eventsource_stream::Event, String>> {
    match events {
        Some(events) => events.next().await,
        None => std::future::pending().await,
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::Timings;

    /// Users' raw samples merged into the fleet's histogram read as if every sample had
    /// been recorded there, whatever the order of merging.
    #[test]
    fn raw_samples_merge_into_one_histogram() {
        let mut alone = super::super::micros_histogram().unwrap();
        let (mut first, mut second) = (Timings::Raw(Vec::new()), Timings::Raw(Vec::new()));
        for us in 1..=1_000_u64 {
            alone.record(us * 7).unwrap();
            if us % 3 == 0 { first.record(us * 7) } else { second.record(us * 7) }
        }
        // A sample past u32 (71 minutes) is kept as the largest one a user can hold.
        second.record(u64::MAX);
        alone.saturating_record(u64::from(u32::MAX));
        let mut fleet = Timings::Raw(Vec::new());
        fleet.add(&first);
        fleet.add(&second);
        let merged = fleet.histogram().unwrap();
        assert!(matches!(fleet, Timings::Merged(_)));
        assert_eq!(merged.len(), alone.len());
        for q in [0.5, 0.99, 0.999, 1.0] {
            assert_eq!(merged.value_at_quantile(q), alone.value_at_quantile(q), "q={q}");
        }
        assert_eq!(first.histogram().unwrap().len(), 333);
    }
}
