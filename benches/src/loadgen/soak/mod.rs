//! The soak run: a long open-loop load with the rest of a day's traffic mixed in
//! (reconnects that resume with `sync`, `sync` and `search` requests, event streams that
//! drop and resume with `Last-Event-ID`), sampled at a fixed interval, to show that
//! nothing grows or drifts: the server's resident memory, its open files, the SQLite WAL,
//! and the send→deliver tail.
//!
//! Each user holds a WebSocket in a conversation with its pair and sends at a fixed rate;
//! a fleet-wide rate of reconnects, syncs and searches is spread over the users at random
//! (seeded, so runs are alike). The first `sse_users` users also hold an event stream,
//! which a separate rate of drops resumes. Every `sample_every` the sampler prints one
//! line (and appends it to the series file): memory, open files, WAL bytes, messages
//! stored and delivered in the interval, the interval's send→deliver p99/p99.9 of live
//! pushes (messages a user gets through `sync` after a reconnect are counted apart: their
//! wait is the reconnect's), search p99, and what was mixed in.
//!
//! Checked, whatever the speed: every send acknowledged without error; every user's
//! conversation seen whole, each message once (seqs without gap, over pushes and the
//! `sync` after each reconnect); every event stream exact across its resumes (no message
//! missed or repeated); every reconnect and resume succeeded.

mod sampler;
mod shared;
mod stream;
mod user;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;

pub use sampler::Sample;
use sampler::{flatness, sampler};
use shared::{Counters, Dice, Latencies, Shared};
use stream::stream;
use user::{Seen, User, resume};

use super::client::{Socket, Target, call};
use super::report::{Report, check, figure, parameters};
use super::server_info::describe;
use super::{Error, Run, fleet, http_client};

/// Parameters of a soak run.
#[derive(Clone, Debug)]
pub struct Soak {
    /// Pairs of users (two users each, one conversation per pair).
    pub pairs: usize,
    /// Messages per second each user sends.
    pub rate_per_user: f64,
    /// How long the load runs.
    pub duration: Duration,
    /// The sampling interval.
    pub sample_every: Duration,
    /// Reconnects per second over the whole fleet (each resumes with `sync`).
    pub reconnects_per_s: f64,
    /// `search` requests per second over the whole fleet.
    pub searches_per_s: f64,
    /// `sync` requests (from the user's cursor) per second over the whole fleet.
    pub syncs_per_s: f64,
    /// Users that also hold an event stream.
    pub sse_users: usize,
    /// Event-stream drops per second over those users (each resumes with `Last-Event-ID`).
    pub sse_resumes_per_s: f64,
    /// Bytes of each message body.
    pub body_bytes: usize,
    /// Handshakes in flight while connecting.
    pub concurrency: usize,
    /// The server's SQLite file, to sample its WAL (`<file>-wal`).
    pub database: Option<PathBuf>,
    /// Where each sample is appended as a JSON line.
    pub series: Option<PathBuf>,
}

/// Connects the fleet, runs the soak, reports.
///
/// # Errors
/// When the run cannot start (connections, event streams or conversations that fail).
pub async fn run(target: &Target, run: &Run, params: Soak) -> Result<Report, Error> {
    run.quiesce().await;
    let pairs = params.pairs.max(1);
    let users = fleet::users(pairs * 2);
    let opened = fleet::open(target, &users, params.concurrency, 0).await?;
    if opened.failed > 0 {
        return Err(format!(
            "{} of {} connections failed: {}",
            opened.failed,
            users.len(),
            opened.first_error.unwrap_or_default()
        )
        .into());
    }
    let limits = opened.hello.map(|h| h.limits).unwrap_or_default();
    let mut sockets: Vec<Socket> = opened.members.into_iter().map(|m| m.socket).collect();
    let mut conversations = Vec::with_capacity(pairs);
    for (pair, chunk) in sockets.chunks_mut(2).enumerate() {
        let peer = users.get(pair * 2 + 1).ok_or("an odd fleet")?;
        let first = chunk.first_mut().ok_or("an empty pair")?;
        let data = call(first, json!({"id": "open", "op": "open", "peer": peer})).await?;
        conversations.push(data["conversation"]["id"].as_str().unwrap_or_default().to_owned());
    }
    let lines = super::romeo::lines(512);
    let words: Vec<String> = lines
        .iter()
        .flat_map(|line| line.split_whitespace())
        .map(|word| word.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase())
        .filter(|word| word.len() >= 5)
        .take(200)
        .collect();
    let base = Instant::now() + Duration::from_millis(500);
    let shared = Arc::new(Shared {
        target: target.clone(),
        base,
        stop: base + params.duration,
        counters: Counters::default(),
        latencies: Mutex::new(Latencies::new()?),
        stored: (0..pairs).map(|_| AtomicU64::new(0)).collect(),
        bodies: super::sustained::bodies(params.body_bytes),
        words: if words.is_empty() { vec!["love".to_owned()] } else { words },
        chore_rates: [params.reconnects_per_s, params.syncs_per_s, params.searches_per_s],
    });
    let user_count = users.len();
    let rate = params.rate_per_user.max(0.001);
    let chores_per_s =
        (params.reconnects_per_s + params.searches_per_s + params.syncs_per_s).max(1e-6);
    let chore_every = Duration::from_secs_f64(user_count as f64 / chores_per_s);
    let cpu = run.cpu();

    // Event streams for the first users, their own HTTP clients.
    let mut streams = Vec::new();
    let sse_users = params.sse_users.min(user_count);
    if sse_users > 0 {
        let resume_every =
            Duration::from_secs_f64(sse_users as f64 / params.sse_resumes_per_s.max(1e-6));
        for (n, user) in users.iter().take(sse_users).enumerate() {
            let client = http_client::client(target, *user, n)?;
            streams.push((
                n / 2,
                tokio::spawn(stream(
                    client,
                    http_client::base(target),
                    shared.clone(),
                    resume_every,
                    Dice::new(n as u64 + 1_000_003),
                )),
            ));
        }
    }
    let mut tasks = Vec::with_capacity(user_count);
    for (n, (user, socket)) in users.iter().zip(sockets).enumerate() {
        let driver = User {
            me: *user,
            n,
            conversation: conversations.get(n / 2).cloned().unwrap_or_default(),
            pair: n / 2,
            shared: shared.clone(),
            interval: Duration::from_secs_f64(1.0 / rate),
            chore_every,
            dice: Dice::new(n as u64 + 1),
        };
        tasks.push((n / 2, tokio::spawn(driver.drive(socket))));
    }
    let sampling = tokio::spawn(sampler(shared.clone(), *run, params.clone()));

    let mut ended = Vec::with_capacity(user_count);
    for (pair, task) in tasks {
        let (seen, socket) = task.await?;
        ended.push((pair, seen, socket));
    }
    // Every user has stopped and every send is settled: each user's final sync must bring
    // its conversation up to everything stored.
    let finals: Vec<(usize, Seen)> = futures::stream::iter(ended)
        .map(|(pair, mut seen, socket)| {
            let shared = shared.clone();
            async move {
                if let Some(mut socket) = socket {
                    match resume(&mut socket, &mut seen).await {
                        Ok(pushed) => {
                            for frame in pushed.iter().filter(|f| f["event"] == "message.created") {
                                let seq = frame["data"]["message"]["seq"].as_u64().unwrap_or(0);
                                if let Err(error) = seen.take(seq, true) {
                                    shared.counters.error(format!("the final sync: {error}"));
                                }
                            }
                        }
                        Err(error) => shared.counters.error(format!("the final sync: {error}")),
                    }
                    let _ = socket.close(None).await;
                }
                (pair, seen)
            }
        })
        .buffer_unordered(params.concurrency.max(1))
        .collect()
        .await;
    let mut missing = 0_u64;
    let mut users_short = 0_usize;
    for (pair, seen) in finals {
        let stored = shared.stored.get(pair).map_or(0, |s| s.load(Ordering::Relaxed));
        if seen.last_seq < stored {
            missing += stored - seen.last_seq;
            users_short += 1;
        }
    }
    let mut streams_short = 0_usize;
    for (pair, task) in streams {
        let last = task.await?;
        let stored = shared.stored.get(pair).map_or(0, |s| s.load(Ordering::Relaxed));
        // A stream stops with the load; it may miss only what was in flight at the stop.
        if last + 64 < stored {
            streams_short += 1;
        }
    }
    let samples = sampling.await?;
    let cpu = cpu.stop();
    let errors = shared.counters.errors.load(Ordering::Relaxed);
    let first_error =
        shared.counters.first_error.lock().ok().and_then(|first| first.clone()).unwrap_or_default();
    let stored_total: u64 = shared.stored.iter().map(|s| s.load(Ordering::Relaxed)).sum();

    let mut figures = vec![
        figure("messages stored", stored_total as f64, ""),
        figure(
            "messages stored per second",
            (stored_total as f64 / params.duration.as_secs_f64()).round(),
            "/s",
        ),
        figure("samples", samples.len() as f64, ""),
        figure(
            "sessions the server ended (slow readers; each reconnected)",
            shared.counters.ended_by_server.load(Ordering::Relaxed) as f64,
            "",
        ),
        figure(
            "sends unanswered when their connection was dropped",
            shared.counters.unanswered.load(Ordering::Relaxed) as f64,
            "",
        ),
        figure(
            "connection attempts retried",
            shared.counters.reconnect_retries.load(Ordering::Relaxed) as f64,
            "",
        ),
    ];
    figures.extend(flatness(&samples));
    Ok(Report {
        mode: "soak",
        server: describe(target.addr, limits).await,
        parameters: parameters(json!({
            "pairs": pairs,
            "rate_per_user": rate,
            "offered_messages_per_s": user_count as f64 * rate,
            "duration_s": params.duration.as_secs_f64(),
            "sample_s": params.sample_every.as_secs_f64(),
            "reconnects_per_s": params.reconnects_per_s,
            "syncs_per_s": params.syncs_per_s,
            "searches_per_s": params.searches_per_s,
            "sse_users": sse_users,
            "sse_resumes_per_s": params.sse_resumes_per_s,
            "body_bytes": params.body_bytes,
        })),
        figures,
        checks: vec![
            check(
                "every send, sync, search and reconnect without error; no gap or repeat",
                errors == 0,
                if errors == 0 {
                    "none".to_owned()
                } else {
                    format!("{errors} errors (first: {first_error})")
                },
            ),
            check(
                "every user saw its whole conversation (pushes and resumes)",
                missing == 0,
                format!("{missing} messages missing at {users_short} users"),
            ),
            check(
                "every event stream whole across its resumes",
                streams_short == 0,
                format!("{streams_short} of {sse_users} streams behind"),
            ),
        ],
        bounded_by: format!(
            "the offered load ({:.0} messages/s) with reconnects, syncs, searches and stream resumes mixed in",
            user_count as f64 * rate
        ),
        cpu,
    })
}
