//! Handshakes per second: N connections opened as fast as the server takes them (a
//! bounded number in flight), each counted when its `hello` arrives.

use serde_json::json;

use super::client::Target;
use super::report::{Report, check, figure, parameters};
use super::server_info::describe;
use super::{Error, Run, fleet, micros_to_ms};

/// Parameters of a handshake run.
#[derive(Clone, Copy, Debug)]
pub struct Handshakes {
    /// Connections to open.
    pub connections: usize,
    /// Handshakes in flight at once.
    pub concurrency: usize,
}

/// Opens the connections, reports the rate, closes them.
///
/// # Errors
/// When the run cannot start (not when connections fail: those are a failed check).
pub async fn run(target: &Target, run: &Run, params: Handshakes) -> Result<Report, Error> {
    run.quiesce().await;
    let connections = run.bound_connections(params.connections);
    let users = fleet::users(connections.count);
    let cpu = run.cpu();
    let fleet = fleet::open(target, &users, params.concurrency, 0).await?;
    let cpu = cpu.stop();
    let opened = fleet.members.len();
    let rate = opened as f64 / fleet.took.as_secs_f64();
    let limits = fleet.hello.as_ref().map(|h| h.limits.clone()).unwrap_or_default();
    drop(fleet.members);
    let h = &fleet.handshake_us;
    Ok(Report {
        mode: "handshakes",
        server: describe(target.addr, limits).await,
        parameters: parameters(json!({
            "connections": connections.count,
            "concurrency": params.concurrency,
            "source_addresses": target.sources,
        })),
        figures: vec![
            figure("handshakes per second", rate.round(), "/s"),
            figure("connections opened", opened as f64, ""),
            figure("handshake p50", micros_to_ms(h.value_at_quantile(0.5)), "ms"),
            figure("handshake p99", micros_to_ms(h.value_at_quantile(0.99)), "ms"),
            figure("handshake max", micros_to_ms(h.max()), "ms"),
        ],
        checks: vec![check(
            "every connection opened and said hello",
            fleet.failed == 0,
            format!(
                "{opened} opened, {} failed{}",
                fleet.failed,
                fleet.first_error.map(|e| format!(" (first: {e})")).unwrap_or_default()
            ),
        )],
        bounded_by: connections.bounded_by,
        cpu,
    })
}
