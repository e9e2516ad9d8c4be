//! The server's Prometheus metrics (`GET /metrics`, text format).
//!
//! Counters are atomics shared by every connection task; the op families take a read lock
//! only to find their label's series.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpOutcome {
    op: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildInfo {
    version: &'static str,
    store: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpName {
    op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Kind {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

type LatencyFamily = Family<OpName, Histogram, fn() -> Histogram>;

/// Every metric the server exports.
pub(crate) struct Metrics {
    registry: Registry,
    pub(crate) connections_open: Gauge,
    pub(crate) frames_in: Counter,
    pub(crate) frames_out: Counter,
    pub(crate) events_delivered: Counter,
    pub(crate) lagged_closes: Counter,
    /// Bytes waiting in every connection's outbound queue (see `outbox`).
    pub(crate) outbox_bytes: Gauge,
    /// Events a webhook receiver acknowledged.
    pub(crate) webhook_delivered: Counter,
    /// Webhook attempts that failed (an error, a timeout, or not 2xx).
    pub(crate) webhook_failed: Counter,
    /// Events in the log past the webhook position.
    pub(crate) webhook_pending: Gauge,
    ops: Family<OpOutcome, Counter>,
    op_seconds: LatencyFamily,
    store_errors: Family<Kind, Counter>,
    refused: Family<Reason, Counter>,
}

impl Metrics {
    /// The metrics of a server over the store `store_label` describes.
    pub(crate) fn new(store_label: &str) -> Arc<Self> {
        let mut registry = Registry::with_prefix("messaging");
        let build_info = Family::<BuildInfo, Gauge>::default();
        build_info
            .get_or_create(&BuildInfo {
                version: env!("CARGO_PKG_VERSION"),
                store: store_label.to_owned(),
            })
            .set(1);
        registry.register("build_info", "The server's version and store (always 1)", build_info);
        let connections_open = Gauge::default();
        let frames_in = Counter::default();
        let frames_out = Counter::default();
        let events_delivered = Counter::default();
        let lagged_closes = Counter::default();
        let outbox_bytes = Gauge::default();
        let webhook_delivered = Counter::default();
        let webhook_failed = Counter::default();
        let webhook_pending = Gauge::default();
        let store_errors = Family::<Kind, Counter>::default();
        let refused = Family::<Reason, Counter>::default();
        let ops = Family::<OpOutcome, Counter>::default();
        let op_seconds: LatencyFamily = Family::new_with_constructor(|| {
            // 50 µs to ~1.6 s.
            Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
        });
        registry.register(
            "connections_open",
            "WebSocket connections open",
            connections_open.clone(),
        );
        registry.register("frames_in", "Frames received from clients", frames_in.clone());
        registry.register("frames_out", "Frames sent to clients", frames_out.clone());
        registry.register(
            "events_delivered",
            "Pushed events (durable and ephemeral) queued for sessions",
            events_delivered.clone(),
        );
        registry.register(
            "lagged_closes",
            "Connections closed with 4000 lagged (slow readers)",
            lagged_closes.clone(),
        );
        registry.register(
            "outbox_bytes",
            "Bytes waiting for slow readers in the outbound queues of all connections",
            outbox_bytes.clone(),
        );
        registry.register(
            "store_errors",
            "Store failures answered to clients, by protocol code (unavailable, internal), \
             and requests past the answer bound (timeout)",
            store_errors.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections refused before a session, by reason",
            refused.clone(),
        );
        registry.register(
            "webhook_events_delivered",
            "Durable events a webhook receiver acknowledged (2xx)",
            webhook_delivered.clone(),
        );
        registry.register(
            "webhook_attempts_failed",
            "Webhook attempts that failed (error, timeout or not 2xx; each is retried)",
            webhook_failed.clone(),
        );
        registry.register(
            "webhook_pending_events",
            "Durable events in the log past the webhook position",
            webhook_pending.clone(),
        );
        registry.register("ops", "Operations by name and outcome (error code or ok)", ops.clone());
        registry.register("op_seconds", "Operation latency by name", op_seconds.clone());
        Arc::new(Self {
            registry,
            connections_open,
            frames_in,
            frames_out,
            events_delivered,
            lagged_closes,
            outbox_bytes,
            webhook_delivered,
            webhook_failed,
            webhook_pending,
            ops,
            op_seconds,
            store_errors,
            refused,
        })
    }

    /// Counts one operation and its latency.
    pub(crate) fn op(&self, op: &'static str, outcome: &'static str, took: Duration) {
        self.ops.get_or_create(&OpOutcome { op, outcome }).inc();
        self.op_seconds.get_or_create(&OpName { op }).observe(took.as_secs_f64());
    }

    /// Counts a store failure (`kind`: the protocol code, or `timeout` for the answer
    /// bound).
    pub(crate) fn store_error(&self, kind: &'static str) {
        self.store_errors.get_or_create(&Kind { kind }).inc();
    }

    /// Counts a connection refused before it became a session (`reason`: `connections`,
    /// `sessions_per_user`, `pending_per_ip`, `handshakes`, `no_descriptors`).
    pub(crate) fn refused(&self, reason: &'static str) {
        self.refused.get_or_create(&Reason { reason }).inc();
    }

    /// The text exposition.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_every_metric() {
        let metrics = Metrics::new("sqlite synchronous=FULL");
        metrics.op("send", "ok", Duration::from_millis(2));
        metrics.connections_open.inc();
        metrics.store_error("timeout");
        metrics.refused("pending_per_ip");
        let text = metrics.render();
        for name in [
            "messaging_build_info{version=\"0.1.0\",store=\"sqlite synchronous=FULL\"} 1",
            "messaging_connections_open 1",
            "messaging_frames_in_total",
            "messaging_frames_out_total",
            "messaging_events_delivered_total",
            "messaging_lagged_closes_total",
            "messaging_ops_total{op=\"send\",outcome=\"ok\"} 1",
            "messaging_op_seconds_bucket{le=",
            "messaging_outbox_bytes 0",
            "messaging_store_errors_total{kind=\"timeout\"} 1",
            "messaging_connections_refused_total{reason=\"pending_per_ip\"} 1",
        ] {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
    }
}
