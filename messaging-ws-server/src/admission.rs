//! Admission of TCP connections before any HTTP is read: the file descriptor budget, a
//! reserve descriptor for when it runs out, the per-address cap on connections that have
//! not sent their request headers yet, and who a request comes from behind a proxy.
//!
//! - **Descriptors.** Every connection is one descriptor. [`raise_fd_limit`] lifts the soft
//!   limit to the hard one at start (distributions default to a soft limit of 1,024), and
//!   [`clamp_connections`] keeps `max_connections` below it with [`FD_HEADROOM`] left for the
//!   store's files and sockets, the listener and the runtime.
//! - **Out of descriptors anyway** (handshakes on top of sessions, another part of the
//!   process): `accept` fails and the connection stays in the kernel's backlog, where its
//!   client would wait for an answer that never comes. The classic remedy, kept here as
//!   [`Reserve`]: hold one spare descriptor; when `accept` fails for lack of descriptors,
//!   free it, accept the waiting connection, close it at once (the client sees the
//!   connection closed and can retry elsewhere or later), and take the spare back.
//! - **Silent sockets.** hyper's `header_read_timeout` starts when the connection is first
//!   polled, so a socket that sends nothing at all is closed at the deadline like one that
//!   sends half a request (checked in `tests/resources.rs`).
//! - **Pending per address** (`max_pending_per_ip`, off by default): connections that have
//!   not sent complete request headers, counted per peer address. Such a connection has
//!   sent no `X-Forwarded-For` yet, so the peer address is all there is; connections from a
//!   trusted proxy are not counted (every client behind it shares its address, and the
//!   proxy has its own header deadline).
//! - **Client address of a request** ([`client_ip`]): the peer's address, unless the peer
//!   is a trusted proxy (`--trusted-proxy`): then the right-most `X-Forwarded-For` entry
//!   that is not itself a trusted proxy (entries further left are written by the client and
//!   prove nothing). The server uses it to name clients in its logs.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures::FutureExt;
use http::HeaderMap;
use tokio::net::TcpListener;

/// Descriptors kept out of `max_connections`: the store's files and sockets (SQLite's
/// database, WAL and shared-memory files per connection; PostgreSQL's pool), the listener,
/// the reserve, the runtime's epoll and wake-up descriptors, stdio.
pub(crate) const FD_HEADROOM: u64 = 64;

/// Raises the soft limit on open files to the hard limit; returns the limit in force
/// afterwards and the one before (`None` where the platform has no such limit or it cannot
/// be read).
pub(crate) fn raise_fd_limit() -> Option<(u64, u64)> {
    let (before, _) = rlimit::getrlimit(rlimit::Resource::NOFILE).ok()?;
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(now) => Some((now, before)),
        Err(error) => {
            tracing::warn!(%error, "cannot raise the open file limit; keeping {before}");
            Some((before, before))
        }
    }
}

/// `max_connections`, lowered if the descriptor limit `fd_limit` cannot hold that many
/// connections besides [`FD_HEADROOM`] (at least one).
#[must_use]
pub(crate) fn clamp_connections(max_connections: usize, fd_limit: u64) -> usize {
    let room = usize::try_from(fd_limit.saturating_sub(FD_HEADROOM)).unwrap_or(usize::MAX);
    max_connections.min(room).max(1)
}

/// One spare descriptor, spent to accept-and-close a connection when descriptors ran out.
pub(crate) struct Reserve {
    file: Option<std::fs::File>,
}

impl Reserve {
    /// Takes the spare descriptor.
    pub(crate) fn new() -> Self {
        Self { file: spare() }
    }

    /// Whether an `accept` error means the process (or system) is out of descriptors.
    pub(crate) fn is_exhaustion(error: &std::io::Error) -> bool {
        matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
    }

    /// Frees the spare, accepts one waiting connection and closes it, and takes the spare
    /// back. Whether a connection was closed this way (else the caller should wait a little
    /// before accepting again).
    pub(crate) fn shed(&mut self, listener: &TcpListener) -> bool {
        if self.file.is_none() {
            self.file = spare();
        }
        if self.file.take().is_none() {
            return false;
        }
        let shed = match listener.accept().now_or_never() {
            Some(Ok((stream, peer))) => {
                tracing::debug!(%peer, "out of file descriptors: a connection closed at once");
                drop(stream);
                true
            }
            _ => false,
        };
        self.file = spare();
        shed
    }
}

fn spare() -> Option<std::fs::File> {
    std::fs::File::open("/dev/null").ok()
}

/// Connections per address that have not sent complete request headers.
#[derive(Debug)]
pub(crate) struct Pending {
    limit: Option<usize>,
    trusted: Vec<IpAddr>,
    by_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// A connection's place in [`Pending`]: given back once its headers are in
/// ([`PendingSlot::release`]) or when it ends.
#[derive(Debug)]
pub(crate) struct PendingSlot {
    pending: Arc<Pending>,
    ip: Option<IpAddr>,
    released: AtomicBool,
}

impl Pending {
    /// At most `limit` pending connections per address (`None`: no cap), not counting
    /// `trusted` proxies.
    pub(crate) fn new(limit: Option<usize>, trusted: Vec<IpAddr>) -> Arc<Self> {
        let trusted = trusted.into_iter().map(canonical).collect();
        Arc::new(Self { limit, trusted, by_ip: Mutex::new(HashMap::new()) })
    }

    /// A slot for a new connection from `peer`, or `None` when that address has `limit`
    /// connections still sending their headers.
    pub(crate) fn try_enter(self: &Arc<Self>, peer: IpAddr) -> Option<PendingSlot> {
        let ip = canonical(peer);
        let counted = self.limit.is_some() && !self.trusted.contains(&ip);
        if counted {
            let mut by_ip = self.by_ip.lock().unwrap_or_else(PoisonError::into_inner);
            let count = by_ip.entry(ip).or_insert(0);
            if self.limit.is_some_and(|limit| *count >= limit) {
                return None;
            }
            *count += 1;
        }
        Some(PendingSlot {
            pending: self.clone(),
            ip: counted.then_some(ip),
            released: AtomicBool::new(false),
        })
    }
}

impl PendingSlot {
    /// The connection's headers are in: it no longer counts (idempotent).
    pub(crate) fn release(&self) {
        if self.released.swap(true, Ordering::AcqRel) {
            return;
        }
        let Some(ip) = self.ip else { return };
        let mut by_ip = self.pending.by_ip.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = by_ip.get_mut(&ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                by_ip.remove(&ip);
            }
        }
    }
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        self.release();
    }
}

/// An IPv4 address mapped into IPv6 (a dual-stack listener) is the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The address a request comes from: `peer`, or, when `peer` is a trusted proxy, the
/// right-most `X-Forwarded-For` entry that is not a trusted proxy (all entries trusted, or
/// none readable: `peer`).
pub(crate) fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    let peer = canonical(peer.ip());
    if !trusted.contains(&peer) {
        return peer;
    }
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .collect();
    for entry in entries.iter().rev() {
        let Ok(ip) = entry.trim().parse::<IpAddr>().map(canonical) else {
            // A malformed hop: nothing left of it can be trusted.
            return peer;
        };
        if !trusted.contains(&ip) {
            return ip;
        }
    }
    peer
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn connections_are_clamped_to_the_descriptor_limit() {
        assert_eq!(clamp_connections(20_000, 1_024), 960);
        assert_eq!(clamp_connections(500, 1_024), 500);
        assert_eq!(clamp_connections(20_000, 10), 1);
        assert_eq!(clamp_connections(20_000, u64::MAX), 20_000);
    }

    #[test]
    fn pending_connections_are_capped_per_address() {
        let pending = Pending::new(Some(2), vec![ip("10.0.0.1")]);
        let first = pending.try_enter(ip("127.0.0.1")).unwrap();
        let _second = pending.try_enter(ip("::ffff:127.0.0.1")).unwrap();
        assert!(pending.try_enter(ip("127.0.0.1")).is_none(), "a third is refused");
        assert!(pending.try_enter(ip("127.0.0.2")).is_some(), "another address is not");
        let proxied: Vec<_> = (0..5).map(|_| pending.try_enter(ip("10.0.0.1"))).collect();
        assert!(proxied.iter().all(Option::is_some), "a trusted proxy is not counted");
        first.release();
        first.release();
        let _third = pending.try_enter(ip("127.0.0.1")).unwrap();
        assert!(pending.try_enter(ip("127.0.0.1")).is_none(), "released once, counted once");
        drop(_third);
        assert!(pending.try_enter(ip("127.0.0.1")).is_some(), "dropping releases");
        let uncapped = Pending::new(None, Vec::new());
        let all: Vec<_> = (0..100).map(|_| uncapped.try_enter(ip("127.0.0.1"))).collect();
        assert!(all.iter().all(Option::is_some));
        assert!(uncapped.by_ip.lock().unwrap().is_empty(), "no cap, no bookkeeping");
    }

    #[test]
    fn forwarded_for_counts_only_from_trusted_proxies() {
        let trusted = [ip("10.0.0.1"), ip("10.0.0.2")];
        let mut headers = HeaderMap::new();
        headers.append("x-forwarded-for", "6.6.6.6, 203.0.113.7".parse().unwrap());
        headers.append("x-forwarded-for", "10.0.0.2".parse().unwrap());
        let from =
            |peer: &str| client_ip(format!("{peer}:1234").parse().unwrap(), &headers, &trusted);
        assert_eq!(from("10.0.0.1"), ip("203.0.113.7"), "the right-most untrusted hop");
        assert_eq!(from("192.0.2.9"), ip("192.0.2.9"), "an untrusted peer's header is ignored");
        let mut bad = HeaderMap::new();
        bad.append("x-forwarded-for", "203.0.113.7, nonsense".parse().unwrap());
        let peer = "10.0.0.1:1".parse().unwrap();
        assert_eq!(client_ip(peer, &bad, &trusted), ip("10.0.0.1"), "a malformed hop stops");
        assert_eq!(client_ip(peer, &HeaderMap::new(), &trusted), ip("10.0.0.1"));
    }
}
