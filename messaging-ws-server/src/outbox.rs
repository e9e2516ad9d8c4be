//! A connection's outbound queue, counted in frames and in bytes (docs/protocol.md "Limits
//! and robustness": a reader is lagging past `max_queue_frames` frames **or**
//! `max_queue_bytes` bytes).
//!
//! Why bytes too: a frame cap alone let a client that never reads hold up to 1,024 pushes
//! of ~50 KB each, and before replies were cut by the reply budget one `sync` reply of 496
//! long messages was 24.6 MB, and 30 such clients added 801 MB of server memory (issue
//! #12). The byte count covers the frames waiting here and the ones already handed to
//! the socket since its last completed flush (they sit in tungstenite's write buffer or the
//! kernel's), so what one connection holds is bounded by the cap whatever the client does.
//!
//! The sum over every connection is the `messaging_outbox_bytes` gauge.

use std::collections::VecDeque;

use prometheus_client::metrics::gauge::Gauge;
use tokio_tungstenite::tungstenite::Message;

/// Frames waiting to be written, and their bytes.
pub(crate) struct Outbox {
    frames: VecDeque<(Message, usize)>,
    /// Bytes of `frames`.
    queued: usize,
    /// Bytes handed to the socket since its last completed flush.
    in_flight: usize,
    /// Every connection's `queued + in_flight`, summed.
    gauge: Gauge,
}

impl Outbox {
    /// An empty outbox counted in `gauge`.
    pub(crate) fn new(gauge: Gauge) -> Self {
        Self { frames: VecDeque::new(), queued: 0, in_flight: 0, gauge }
    }

    /// Frames waiting.
    pub(crate) fn len(&self) -> usize {
        self.frames.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Bytes this connection holds for its reader: waiting here or not yet flushed.
    pub(crate) fn bytes(&self) -> usize {
        self.queued + self.in_flight
    }

    /// Queues a frame at the back.
    pub(crate) fn push(&mut self, message: Message) {
        let size = message.len();
        self.queued += size;
        self.gauge.inc_by(gauge_delta(size));
        self.frames.push_back((message, size));
    }

    /// Takes the first frame to hand it to the socket: its bytes count as in flight until
    /// [`Outbox::flushed`].
    pub(crate) fn take_front(&mut self) -> Option<(Message, usize)> {
        let (message, size) = self.frames.pop_front()?;
        self.queued -= size;
        self.in_flight += size;
        Some((message, size))
    }

    /// Puts back a frame the socket did not take (its write buffer was full).
    pub(crate) fn put_back(&mut self, message: Message, size: usize) {
        self.in_flight = self.in_flight.saturating_sub(size);
        self.queued += size;
        self.frames.push_front((message, size));
    }

    /// The socket flushed everything it was handed.
    pub(crate) fn flushed(&mut self) {
        self.gauge.dec_by(gauge_delta(self.in_flight));
        self.in_flight = 0;
        if self.frames.is_empty() {
            // An idle connection keeps no queue buffer.
            self.frames = VecDeque::new();
        }
    }

    /// Drops every frame (the connection is closing as lagged).
    pub(crate) fn clear(&mut self) {
        self.gauge.dec_by(gauge_delta(self.queued + self.in_flight));
        self.frames = VecDeque::new();
        self.queued = 0;
        self.in_flight = 0;
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        self.gauge.dec_by(gauge_delta(self.queued + self.in_flight));
    }
}

fn gauge_delta(bytes: usize) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_counted_until_flushed_and_released_on_drop() {
        let gauge = Gauge::default();
        let mut outbox = Outbox::new(gauge.clone());
        outbox.push(Message::text("x".repeat(100)));
        outbox.push(Message::text("y".repeat(50)));
        assert_eq!((outbox.len(), outbox.bytes(), gauge.get()), (2, 150, 150));
        let (first, size) = outbox.take_front().unwrap();
        assert_eq!((outbox.bytes(), gauge.get()), (150, 150), "in flight still counts");
        outbox.put_back(first, size);
        assert_eq!(outbox.len(), 2);
        let _ = outbox.take_front().unwrap();
        outbox.flushed();
        assert_eq!((outbox.bytes(), gauge.get()), (50, 50));
        let mut other = Outbox::new(gauge.clone());
        other.push(Message::text("z".repeat(10)));
        assert_eq!(gauge.get(), 60);
        other.clear();
        assert_eq!(gauge.get(), 50);
        drop(outbox);
        assert_eq!(gauge.get(), 0);
    }
}
