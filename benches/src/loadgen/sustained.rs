//! Sustained load: P pairs of users, each pair in a conversation, every user sending at a
//! fixed rate whether or not replies have come (open loop), or keeping a window of sends in
//! flight (closed loop), for a warm-up and then a measured window.
//!
//! Users send over their WebSocket or over HTTP (`POST /v1/conversations/{id}/messages`
//! on keep-alive connections), and receive over their WebSocket or their event stream
//! (`GET /v1/events`), so the same figures compare the transports: a browser or an app
//! that posts and listens is served by other code than one that holds a WebSocket.
//!
//! Reported: messages stored per second (acknowledgements arriving in the window: replies
//! or HTTP answers), messages delivered per second (`message.created` events of the peer's
//! messages arriving in the window), send→ack and send→deliver latency from the scheduled
//! send time carried in each message's `client_msg_id` (scheduled, not actual, so a
//! stalled server cannot hide its stall: no coordinated omission), and which transports
//! ran.
//!
//! Checked, whatever the speed: every send acknowledged without error (an HTTP answer
//! other than 2xx, 429 included, is an error), and every user seeing each message of its
//! conversation exactly once (`message.created` seqs 1, 2, 3, … with no gap or repeat, up
//! to the number of acknowledged sends).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use uuid::Uuid;

use super::client::{Socket, Target, call};
use super::driver::{Driver, Endpoints, PairState, Schedule, Stats};
use super::report::{Report, check, figure, parameters};
use super::server_info::describe;
use super::{Error, Run, fleet, http_client, micros_to_ms, sse};

/// How users send.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SendOver {
    /// `send` frames on the user's WebSocket, answered by replies.
    #[default]
    Ws,
    /// `POST /v1/conversations/{id}/messages` on the user's keep-alive HTTP connections.
    Http,
}

/// How users receive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ReceiveOver {
    /// Pushes on the user's WebSocket.
    #[default]
    Ws,
    /// The user's event stream, `GET /v1/events`.
    Sse,
}

impl SendOver {
    /// Its name in reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Ws => "ws",
            Self::Http => "http",
        }
    }
}

impl ReceiveOver {
    /// Its name in reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Ws => "ws",
            Self::Sse => "sse",
        }
    }
}

/// Parameters of a sustained-load run.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    /// Pairs of users.
    pub pairs: usize,
    /// Messages per second each user sends.
    pub rate_per_user: f64,
    /// Time sending before the measured window.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    /// Bytes of each message body.
    pub body_bytes: usize,
    /// Handshakes (and event streams) in flight while connecting.
    pub concurrency: usize,
    /// Longest wait, after the last send, for replies and pushes still in flight.
    pub drain: Duration,
    /// Closed loop instead: each user keeps this many sends in flight (0: open loop at
    /// `rate_per_user`), so the server's capacity is what is measured.
    pub window: usize,
    /// How users send.
    pub send: SendOver,
    /// How users receive.
    pub receive: ReceiveOver,
}

impl Load {
    fn uses_websocket(&self) -> bool {
        self.send == SendOver::Ws || self.receive == ReceiveOver::Ws
    }

    fn uses_http(&self) -> bool {
        self.send == SendOver::Http || self.receive == ReceiveOver::Sse
    }

    /// The sessions one user holds: its WebSocket, its event stream.
    fn sessions_per_user(&self) -> usize {
        usize::from(self.uses_websocket()) + usize::from(self.receive == ReceiveOver::Sse)
    }

    /// The connections one user holds: its sessions, and as many HTTP connections as it
    /// has sends in flight (one in the open loop at a modest rate).
    fn connections_per_user(&self) -> usize {
        self.sessions_per_user() + if self.send == SendOver::Http { self.window.max(1) } else { 0 }
    }

    /// The most HTTP connections one user opens to send, for the report.
    fn http_connections_per_user(&self) -> Value {
        match (self.send, self.window) {
            (SendOver::Ws, _) => json!(0),
            (SendOver::Http, 0) => json!(format!("up to {}", http_client::OPEN_LOOP_CONNECTIONS)),
            (SendOver::Http, window) => json!(format!("up to {window}")),
        }
    }

    /// The transports, for the report.
    fn transports(&self) -> String {
        let send = match self.send {
            SendOver::Ws => "sends over WebSocket",
            SendOver::Http => "sends over HTTP (keep-alive)",
        };
        let receive = match self.receive {
            ReceiveOver::Ws => "delivery over WebSocket",
            ReceiveOver::Sse => "delivery over SSE",
        };
        format!("{send}, {receive}")
    }
}

/// Every user's endpoints, in the users' order, and the server's limits from a hello.
struct Connected {
    ends: Vec<Endpoints>,
    clients: Vec<Option<reqwest::Client>>,
    limits: Value,
}

/// Opens every user's WebSocket, HTTP client and event stream, as `params` asks.
async fn connect(target: &Target, users: &[Uuid], params: &Load) -> Result<Connected, Error> {
    let mut limits = Value::Null;
    let mut sockets: Vec<Option<Socket>> = Vec::with_capacity(users.len());
    if params.uses_websocket() {
        let fleet = fleet::open(target, users, params.concurrency, 0).await?;
        if fleet.failed > 0 {
            return Err(format!(
                "{} of {} connections failed: {}",
                fleet.failed,
                users.len(),
                fleet.first_error.unwrap_or_default()
            )
            .into());
        }
        limits = fleet.hello.map(|h| h.limits).unwrap_or_default();
        sockets.extend(fleet.members.into_iter().map(|member| Some(member.socket)));
    } else {
        sockets.resize_with(users.len(), || None);
    }
    let clients: Vec<Option<reqwest::Client>> = if params.uses_http() {
        users
            .iter()
            .enumerate()
            .map(|(n, user)| http_client::client(target, *user, n).map(Some))
            .collect::<Result<_, _>>()?
    } else {
        vec![None; users.len()]
    };
    let mut streams: Vec<Option<sse::Events>> = Vec::with_capacity(users.len());
    if params.receive == ReceiveOver::Sse {
        let clients: Vec<reqwest::Client> = clients.iter().flatten().cloned().collect();
        let opened =
            sse::open_all(&clients, &http_client::base(target), params.concurrency).await?;
        for (events, hello) in opened {
            if limits.is_null() {
                limits = hello.limits;
            }
            streams.push(Some(events));
        }
    } else {
        streams.resize_with(users.len(), || None);
    }
    let ends = sockets
        .into_iter()
        .zip(streams)
        .map(|(socket, events)| Endpoints { socket, events, http: None })
        .collect();
    Ok(Connected { ends, clients, limits })
}

/// Opens each pair's conversation (its first user opens it, over the sending transport)
/// and gives HTTP senders their sender; the conversations' ids in the pairs' order.
async fn open_conversations(
    target: &Target,
    users: &[Uuid],
    connected: &mut Connected,
    params: &Load,
) -> Result<Vec<String>, Error> {
    let base = http_client::base(target);
    let concurrency = params.concurrency.max(1);
    let conversations: Vec<String> = match params.send {
        SendOver::Ws => futures::stream::iter(connected.ends.chunks_mut(2).zip(users.chunks(2)))
            .map(|(ends, pair)| async move {
                let ([first, _], [_, peer]) = (ends, pair) else {
                    return Err::<String, Error>("an odd member".into());
                };
                let socket = first.socket.as_mut().ok_or("a WebSocket sender without one")?;
                let data = call(socket, json!({"id": "open", "op": "open", "peer": peer})).await?;
                data["conversation"]["id"]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| "open without an id".into())
            })
            .buffered(concurrency)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?,
        SendOver::Http => {
            let base = &base;
            futures::stream::iter(connected.clients.chunks(2).zip(users.chunks(2)))
                .map(|(clients, pair)| async move {
                    let ([Some(first), _], [_, peer]) = (clients, pair) else {
                        return Err::<String, Error>("a pair without its HTTP clients".into());
                    };
                    http_client::open(first, base, *peer).await
                })
                .buffered(concurrency)
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<Result<_, _>>()?
        }
    };
    if params.send == SendOver::Http {
        for (n, (ends, client)) in connected.ends.iter_mut().zip(&connected.clients).enumerate() {
            let (Some(client), Some(conversation)) = (client, conversations.get(n / 2)) else {
                return Err("a user without its HTTP client or conversation".into());
            };
            ends.http = Some(http_client::Sender::new(client.clone(), &base, conversation)?);
        }
    }
    Ok(conversations)
}

/// Connects the pairs, runs the schedule, reports.
///
/// # Errors
/// When the run cannot start (connections, event streams or conversations that fail to
/// open).
pub async fn run(target: &Target, run: &Run, params: Load) -> Result<Report, Error> {
    run.quiesce().await;
    let per_user = params.connections_per_user();
    let bounded = run.bound_connections(params.pairs * 2 * per_user);
    let pairs = bounded.count / (2 * per_user);
    let users = fleet::users(pairs * 2);
    let mut connected = connect(target, &users, &params).await?;
    let conversations = open_conversations(target, &users, &mut connected, &params).await?;
    let Connected { ends, limits, .. } = connected;

    let rate = params.rate_per_user.max(0.001);
    let interval = Duration::from_secs_f64(1.0 / rate);
    let user_count = users.len();
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
    let mut tasks = Vec::with_capacity(user_count);
    for (n, (user, ends)) in users.iter().zip(ends).enumerate() {
        let driver = Driver {
            me: *user,
            side: n % 2,
            conversation: conversations.get(n / 2).cloned().unwrap_or_default(),
            pair: states.get(n / 2).cloned().unwrap_or_default(),
            schedule: schedule.clone(),
            interval,
            window: params.window,
            bodies: bodies.clone(),
        };
        // Sends spread evenly over one interval across all users.
        let first_send = if params.window > 0 {
            base
        } else {
            base + interval.mul_f64(n as f64 / user_count as f64)
        };
        tasks.push(tokio::spawn(driver.drive(ends, first_send)));
    }
    let mut total = Stats::new()?;
    for task in tasks {
        total.merge(&task.await??);
    }
    let cpu = cpu.stop();

    let window = params.duration.as_secs_f64();
    let offered = if params.window > 0 { f64::INFINITY } else { user_count as f64 * rate };
    let stored = total.acked_in_window as f64 / window;
    let delivered = total.delivered_in_window as f64 / window;
    let d = total.deliver_us.histogram()?;
    let a = total.ack_us.histogram()?;
    let transports = params.transports();
    let bounded_by = if bounded.clamped {
        bounded.bounded_by
    } else if params.window > 0 {
        format!(
            "the server's throughput at saturation ({} sends in flight per user, {transports}; \
             server and load generator share 2 cores; see cpu)",
            params.window
        )
    } else if stored >= offered * 0.98 {
        format!("the offered load ({offered:.0} messages/s, {transports}): the server kept up")
    } else {
        format!(
            "the server's throughput: it stored {stored:.0} of {offered:.0} offered messages/s \
             ({transports}; server and load generator share 2 cores; see cpu)"
        )
    };
    Ok(Report {
        mode: "load",
        server: describe(target.addr, limits).await,
        parameters: parameters(json!({
            "send": params.send.name(),
            "receive": params.receive.name(),
            "pairs": pairs,
            "connections": user_count * params.sessions_per_user(),
            "http_connections_per_user": params.http_connections_per_user(),
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
pub(super) fn bodies(bytes: usize) -> Arc<[String]> {
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
