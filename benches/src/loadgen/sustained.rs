//! Sustained load: P pairs of users, each pair in a conversation, every user sending at a
//! fixed rate whether or not replies have come (open loop), for a warm-up and then a
//! measured window.
//!
//! Reported: messages stored per second (acknowledged replies arriving in the window),
//! messages delivered per second (pushes of the peer's messages arriving in the window),
//! and send→deliver latency from the scheduled send time carried in each message's
//! `client_msg_id` to the push's arrival (scheduled, not actual, so a stalled server cannot hide its stall:
//! no coordinated omission).
//!
//! Checked, whatever the speed: every send acknowledged without error, and every
//! connection seeing each message of its conversation exactly once (`message.created`
//! seqs 1, 2, 3, … with no gap or repeat, up to the number of acknowledged sends).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::Deserialize;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use super::client::{Socket, Target, call};
use super::report::{Report, check, figure, parameters};
use super::server_info::describe;
use super::{Error, Run, fleet, micros_to_ms};

/// Parameters of a sustained-load run.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    /// Pairs of users (2 connections each).
    pub pairs: usize,
    /// Messages per second each user sends.
    pub rate_per_user: f64,
    /// Time sending before the measured window.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    /// Bytes of each message body.
    pub body_bytes: usize,
    /// Handshakes in flight while connecting.
    pub concurrency: usize,
    /// Longest wait, after the last send, for replies and pushes still in flight.
    pub drain: Duration,
    /// Closed loop instead: each user keeps this many sends in flight (0: open loop at
    /// `rate_per_user`), so the server's capacity is what is measured.
    pub window: usize,
}

/// The run's schedule, shared by every connection.
struct Schedule {
    base: Instant,
    measure_from: Instant,
    stop: Instant,
    drain_until: Instant,
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
struct PairState {
    acked: [AtomicU64; 2],
    settled: [AtomicBool; 2],
}

/// One connection's counts.
struct Stats {
    sent: u64,
    acked: u64,
    acked_in_window: u64,
    errors: u64,
    first_error: Option<String>,
    delivered: u64,
    delivered_in_window: u64,
    repeated: u64,
    missing: u64,
    last_seq: u64,
    conversation_total: u64,
    ended_early: Option<String>,
    in_flight_at_end: u64,
    deliver_us: Histogram<u64>,
    ack_us: Histogram<u64>,
}

impl Stats {
    fn new() -> Result<Self, Error> {
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
            deliver_us: super::micros_histogram()?,
            ack_us: super::micros_histogram()?,
        })
    }

    fn merge(&mut self, other: &Self) {
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
        // A connection that saw fewer messages than were stored in its conversation.
        self.missing += other.conversation_total.saturating_sub(other.last_seq);
        if self.ended_early.is_none() {
            self.ended_early.clone_from(&other.ended_early);
        }
        self.in_flight_at_end += other.in_flight_at_end;
        // Histograms of one shape: adding cannot fail.
        let _ = self.deliver_us.add(&other.deliver_us);
        let _ = self.ack_us.add(&other.ack_us);
    }
}

/// A server frame, as much of it as the load needs.
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

/// One connection of the load.
struct Driver {
    me: Uuid,
    side: usize,
    conversation: String,
    pair: Arc<PairState>,
    schedule: Arc<Schedule>,
    interval: Duration,
    window: usize,
    bodies: Arc<[String]>,
}

impl Driver {
    async fn drive(self, mut socket: Socket, first_send: Instant) -> Result<Stats, Error> {
        let mut stats = Stats::new()?;
        let schedule = &self.schedule;
        let mut next = first_send;
        let mut pending: VecDeque<Instant> = VecDeque::new();
        let timer = tokio::time::sleep_until(next.into());
        tokio::pin!(timer);
        let mut recheck = tokio::time::interval(Duration::from_millis(20));
        let closed_loop = self.window > 0;
        if closed_loop {
            tokio::time::sleep_until(first_send.into()).await;
        }
        loop {
            let sending =
                if closed_loop { Instant::now() < schedule.stop } else { next < schedule.stop };
            let room = !closed_loop || pending.len() < self.window;
            tokio::select! {
                () = &mut timer, if sending && room => {
                    if closed_loop {
                        next = Instant::now();
                    }
                    // The bodies are words and punctuation only: nothing to escape.
                    let body = &self.bodies[(stats.sent as usize + self.side) % self.bodies.len()];
                    let frame = format!(
                        r#"{{"id":{},"op":"send","conversation_id":"{}","client_msg_id":"{}-{}","body":"{}"}}"#,
                        stats.sent,
                        self.conversation,
                        schedule.micros(next),
                        stats.sent,
                        body,
                    );
                    if let Err(error) = socket.send(Message::text(frame)).await {
                        stats.ended_early = Some(format!("send failed: {error}"));
                        break;
                    }
                    pending.push_back(next);
                    stats.sent += 1;
                    if !closed_loop {
                        next += self.interval;
                    }
                    timer.as_mut().reset(next.into());
                }
                frame = socket.next() => match frame {
                    Some(Ok(Message::Text(text))) => self.received(&text, &mut stats, &mut pending)?,
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
                _ = recheck.tick(), if !sending => {}
            }
            if !sending && pending.is_empty() {
                self.pair.settled[self.side].store(true, Ordering::Release);
                let other = 1 - self.side;
                let total = self.pair.acked[0].load(Ordering::Acquire)
                    + self.pair.acked[1].load(Ordering::Acquire);
                if self.pair.settled[other].load(Ordering::Acquire) && stats.last_seq >= total {
                    break;
                }
            }
            if Instant::now() >= schedule.drain_until {
                break;
            }
        }
        stats.in_flight_at_end = pending.len() as u64;
        stats.conversation_total =
            self.pair.acked[0].load(Ordering::Acquire) + self.pair.acked[1].load(Ordering::Acquire);
        let _ = socket.close(None).await;
        Ok(stats)
    }

    fn received(
        &self,
        text: &str,
        stats: &mut Stats,
        pending: &mut VecDeque<Instant>,
    ) -> Result<(), Error> {
        let now = Instant::now();
        let frame: Incoming<'_> = serde_json::from_str(text)?;
        match (frame.kind, frame.event) {
            ("reply", _) => {
                // Replies come in request order (one request runs at a time per connection).
                let Some(scheduled) = pending.pop_front() else {
                    return Ok(());
                };
                if frame.ok {
                    stats.acked += 1;
                    self.pair.acked[self.side].fetch_add(1, Ordering::AcqRel);
                    if self.schedule.in_window(now) {
                        stats.acked_in_window += 1;
                    }
                    if self.schedule.in_window(scheduled) {
                        stats.ack_us.saturating_record(micros(now - scheduled));
                    }
                } else {
                    stats.errors += 1;
                    stats.first_error.get_or_insert_with(|| format!("{:?}", frame.error));
                }
            }
            ("event", Some("message.created")) => {
                let Some(message) = frame.data.and_then(|data| data.message) else {
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
                        stats
                            .deliver_us
                            .saturating_record(micros(now.saturating_duration_since(sent_at)));
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// Connects the pairs, runs the schedule, reports.
///
/// # Errors
/// When the run cannot start (connections or conversations that fail to open).
pub async fn run(target: &Target, run: &Run, params: Load) -> Result<Report, Error> {
    run.quiesce().await;
    let bounded = run.bound_connections(params.pairs * 2);
    let pairs = bounded.count / 2;
    let users = fleet::users(pairs * 2);
    let fleet = fleet::open(target, &users, params.concurrency, 0).await?;
    if fleet.failed > 0 {
        return Err(format!(
            "{} of {} connections failed: {}",
            fleet.failed,
            users.len(),
            fleet.first_error.unwrap_or_default()
        )
        .into());
    }
    let limits = fleet.hello.as_ref().map(|h| h.limits.clone()).unwrap_or_default();
    let mut members = fleet.members;
    // Each pair's first user opens the conversation.
    let conversations: Vec<String> = futures::stream::iter(members.chunks_mut(2))
        .map(|pair| async move {
            let [first, second] = pair else { return Err::<String, Error>("an odd member".into()) };
            let data =
                call(&mut first.socket, json!({"id": "open", "op": "open", "peer": second.user}))
                    .await?;
            data["conversation"]["id"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| "open without an id".into())
        })
        .buffered(params.concurrency.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;

    let rate = params.rate_per_user.max(0.001);
    let interval = Duration::from_secs_f64(1.0 / rate);
    let connections = members.len();
    let base = Instant::now() + Duration::from_millis(500);
    let schedule = Arc::new(Schedule {
        base,
        measure_from: base + params.warmup,
        stop: base + params.warmup + params.duration,
        drain_until: base + params.warmup + params.duration + params.drain,
    });
    let bodies = bodies(params.body_bytes);
    let cpu = run.cpu();
    let states: Vec<Arc<PairState>> = (0..pairs).map(|_| Arc::default()).collect();
    let mut tasks = Vec::with_capacity(connections);
    for (n, member) in members.drain(..).enumerate() {
        let driver = Driver {
            me: member.user,
            side: n % 2,
            conversation: conversations.get(n / 2).cloned().unwrap_or_default(),
            pair: states.get(n / 2).cloned().unwrap_or_default(),
            schedule: schedule.clone(),
            interval,
            window: params.window,
            bodies: bodies.clone(),
        };
        // Sends spread evenly over one interval across all connections.
        let first_send = if params.window > 0 {
            base
        } else {
            base + interval.mul_f64(n as f64 / connections as f64)
        };
        tasks.push(tokio::spawn(driver.drive(member.socket, first_send)));
    }
    let mut total = Stats::new()?;
    for task in tasks {
        total.merge(&task.await??);
    }
    let cpu = cpu.stop();

    let window = params.duration.as_secs_f64();
    let offered = if params.window > 0 { f64::INFINITY } else { connections as f64 * rate };
    let stored = total.acked_in_window as f64 / window;
    let delivered = total.delivered_in_window as f64 / window;
    let d = &total.deliver_us;
    let a = &total.ack_us;
    let bounded_by = if bounded.clamped {
        bounded.bounded_by
    } else if params.window > 0 {
        format!(
            "the server's throughput at saturation ({} sends in flight per user; server and \
             load generator share 2 cores; see cpu)",
            params.window
        )
    } else if stored >= offered * 0.98 {
        format!("the offered load ({offered:.0} messages/s): the server kept up")
    } else {
        format!(
            "the server's throughput: it stored {stored:.0} of {offered:.0} offered messages/s \
             (server and load generator share 2 cores; see cpu)"
        )
    };
    Ok(Report {
        mode: "load",
        server: describe(target.addr, limits).await,
        parameters: parameters(json!({
            "pairs": pairs,
            "connections": connections,
            "rate_per_user": if params.window > 0 { json!(null) } else { json!(rate) },
            "offered_messages_per_s": if params.window > 0 { json!("saturation") } else { json!(offered) },
            "window_per_user": params.window,
            "warmup_s": params.warmup.as_secs_f64(),
            "window_s": window,
            "body_bytes": params.body_bytes,
        })),
        figures: vec![
            figure("messages stored per second", stored.round(), "/s"),
            figure("messages delivered per second", delivered.round(), "/s"),
            figure("send→deliver p50", micros_to_ms(d.value_at_quantile(0.5)), "ms"),
            figure("send→deliver p99", micros_to_ms(d.value_at_quantile(0.99)), "ms"),
            figure("send→deliver p99.9", micros_to_ms(d.value_at_quantile(0.999)), "ms"),
            figure("send→deliver max", micros_to_ms(d.max()), "ms"),
            figure("send→ack p50", micros_to_ms(a.value_at_quantile(0.5)), "ms"),
            figure("send→ack p99", micros_to_ms(a.value_at_quantile(0.99)), "ms"),
            figure("messages sent", total.sent as f64, ""),
        ],
        checks: vec![
            check(
                "every send acknowledged without error",
                total.errors == 0 && total.acked == total.sent,
                format!(
                    "{} sent, {} acknowledged, {} errors, {} still in flight when the drain ended{}",
                    total.sent,
                    total.acked,
                    total.errors,
                    total.in_flight_at_end,
                    total.first_error.map(|e| format!(" (first: {e})")).unwrap_or_default()
                ),
            ),
            check(
                "every message delivered exactly once to both members",
                total.repeated == 0 && total.missing == 0,
                format!("{} repeated, {} missing", total.repeated, total.missing),
            ),
            check(
                "no connection ended early",
                total.ended_early.is_none(),
                total.ended_early.unwrap_or_else(|| "none".into()),
            ),
        ],
        bounded_by,
        cpu,
    })
}

/// Message bodies of about `bytes` each, made of dialogue lines, so the search index sees
/// a realistic vocabulary rather than one new word per message.
fn bodies(bytes: usize) -> Arc<[String]> {
    let lines = super::romeo::lines(512);
    let mut lines = lines.iter().cycle();
    (0..64)
        .map(|_| {
            let mut body = String::new();
            while body.len() < bytes.max(1) {
                if !body.is_empty() {
                    body.push(' ');
                }
                body.push_str(lines.next().map_or("", String::as_str));
            }
            body
        })
        .collect()
}
