//! Idle memory: the server's resident memory before and after N connections that each
//! sent one message and then stay idle, in KiB per connection; then every connection is
//! checked to be still held (a `ping` each).
//!
//! Connections are opened in two halves so the report also gives the marginal cost (the
//! second half alone), free of whatever the server allocates once.

use std::time::Duration;

use futures::StreamExt;
use serde_json::json;

use super::client::{Socket, Target, call};
use super::procfs::Process;
use super::report::{Report, check, figure, parameters};
use super::server_info::describe;
use super::{Error, Run, fleet};

/// Parameters of an idle-memory run.
#[derive(Clone, Copy, Debug)]
pub struct Idle {
    /// Connections to hold (an even number: they message in pairs).
    pub connections: usize,
    /// Handshakes in flight at once.
    pub concurrency: usize,
    /// Seconds to wait before each memory reading (lets freed memory settle).
    pub settle: Duration,
}

/// Opens the connections, has each send one message, reads the server's RSS, checks that
/// every connection is still held.
///
/// # Errors
/// Without the server's pid, or when the run cannot start.
pub async fn run(target: &Target, run: &Run, params: Idle) -> Result<Report, Error> {
    let server =
        Process(Some(run.server_pid.ok_or("idle needs --server-pid to read the server's memory")?));
    run.quiesce().await;
    let bounded = run.bound_connections(params.connections);
    let total = bounded.count / 4 * 4;
    let half = total / 2;
    let cpu = run.cpu();
    let before = server.rss_kib()?;
    let users = fleet::users(total);
    let mut held = Vec::with_capacity(total);
    let mut failed = 0;
    let mut first_error = None;
    let mut limits = serde_json::Value::Null;
    let mut readings = Vec::new();
    for (part, chunk) in users.chunks(half.max(1)).enumerate() {
        let opened = fleet::open(target, chunk, params.concurrency, part * half).await?;
        failed += opened.failed;
        first_error = first_error.or(opened.first_error);
        if let Some(hello) = opened.hello {
            limits = hello.limits;
        }
        let mut sockets: Vec<(uuid::Uuid, Socket)> =
            opened.members.into_iter().map(|m| (m.user, m.socket)).collect();
        // Each connection messages its neighbour (pairs 0-1, 2-3, …): a conversation each.
        let peers: Vec<uuid::Uuid> = sockets.iter().map(|(user, _)| *user).collect();
        let sent = futures::stream::iter(sockets.iter_mut().enumerate())
            .map(|(n, (_, socket))| {
                // With an odd count (a connection failed), the last one messages the first.
                let peer = peers.get(n ^ 1).or(peers.first()).copied();
                async move {
                    call(socket, json!({"id": 1, "op": "send", "peer": peer, "body": "hello"}))
                        .await
                }
            })
            .buffer_unordered(params.concurrency.max(1))
            .collect::<Vec<_>>()
            .await;
        for result in sent {
            if let Err(error) = result {
                failed += 1;
                first_error.get_or_insert_with(|| error.to_string());
            }
        }
        held.extend(sockets);
        tokio::time::sleep(params.settle).await;
        readings.push((held.len(), server.rss_kib()?));
    }
    let pinged = futures::stream::iter(held.iter_mut())
        .map(
            |(_, socket)| async move { call(socket, json!({"id": 2, "op": "ping"})).await.is_ok() },
        )
        .buffer_unordered(params.concurrency.max(1))
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await;
    let cpu = cpu.stop();
    let (first_count, first_rss) = readings.first().copied().unwrap_or((0, before));
    let (last_count, last_rss) = readings.last().copied().unwrap_or((0, before));
    let per_connection = kib_per(last_rss.saturating_sub(before), last_count);
    let marginal =
        kib_per(last_rss.saturating_sub(first_rss), last_count.saturating_sub(first_count));
    Ok(Report {
        mode: "idle",
        server: describe(target.addr, limits).await,
        parameters: parameters(json!({
            "connections": total,
            "concurrency": params.concurrency,
            "settle_s": params.settle.as_secs_f64(),
            "each connection": "sent one message to its pair, then idle",
        })),
        figures: vec![
            figure("connections held", pinged as f64, ""),
            figure("server RSS before", before as f64, "KiB"),
            figure("server RSS after", last_rss as f64, "KiB"),
            figure("server RSS per connection", per_connection, "KiB"),
            figure("server RSS per connection, second half", marginal, "KiB"),
        ],
        checks: vec![
            check(
                "every connection opened and sent its message",
                failed == 0,
                format!(
                    "{} opened, {failed} failed{}",
                    held.len(),
                    first_error.map(|e| format!(" (first: {e})")).unwrap_or_default()
                ),
            ),
            check(
                "every connection still held",
                pinged == total,
                format!("{pinged} of {total} answered a ping"),
            ),
        ],
        bounded_by: bounded.bounded_by,
        cpu,
    })
}

fn kib_per(kib: u64, connections: usize) -> f64 {
    if connections == 0 { 0.0 } else { (kib as f64 / connections as f64 * 100.0).round() / 100.0 }
}
