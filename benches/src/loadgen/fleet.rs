//! Opening many connections at once: a bounded number of handshakes in flight, each
//! connection from the next loopback source address, each timed up to its `hello`.

use std::time::{Duration, Instant};

use futures::StreamExt;
use hdrhistogram::Histogram;
use uuid::Uuid;

use super::Error;
use super::client::{Hello, Socket, Target};

/// A connected user.
#[derive(Debug)]
pub struct Member {
    /// The user.
    pub user: Uuid,
    /// Its connection.
    pub socket: Socket,
}

/// The outcome of opening a fleet.
#[derive(Debug)]
pub struct Fleet {
    /// The connections that opened, in the order of `users`.
    pub members: Vec<Member>,
    /// Handshake time (connect to `hello`), microseconds.
    pub handshake_us: Histogram<u64>,
    /// Wall time of the whole opening.
    pub took: Duration,
    /// Connections that failed, and the first failure.
    pub failed: usize,
    /// The first failure's message.
    pub first_error: Option<String>,
    /// A `hello` (the server's limits), when any connection opened.
    pub hello: Option<Hello>,
}

/// Opens one connection per user, `concurrency` handshakes at a time. `offset` numbers
/// the connections for their source address (so several fleets spread alike).
///
/// # Errors
/// Only when the histogram cannot be built; failed connections are counted, not fatal.
pub async fn open(
    target: &Target,
    users: &[Uuid],
    concurrency: usize,
    offset: usize,
) -> Result<Fleet, Error> {
    let mut handshake_us = super::micros_histogram()?;
    let began = Instant::now();
    let mut opened: Vec<(usize, Member)> = Vec::with_capacity(users.len());
    let mut failed = 0;
    let mut first_error = None;
    let mut hello = None;
    let mut attempts = futures::stream::iter(users.iter().copied().enumerate())
        .map(|(n, user)| async move {
            let started = Instant::now();
            let result = target.connect(user, offset + n).await;
            (n, user, started.elapsed(), result)
        })
        .buffer_unordered(concurrency.max(1));
    while let Some((n, user, took, result)) = attempts.next().await {
        match result {
            Ok((socket, greeting)) => {
                handshake_us.saturating_record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
                hello.get_or_insert(greeting);
                opened.push((n, Member { user, socket }));
            }
            Err(error) => {
                failed += 1;
                first_error.get_or_insert_with(|| error.to_string());
            }
        }
    }
    opened.sort_unstable_by_key(|(n, _)| *n);
    let members = opened.into_iter().map(|(_, member)| member).collect();
    Ok(Fleet { members, handshake_us, took: began.elapsed(), failed, first_error, hello })
}

/// `n` new user ids.
#[must_use]
pub fn users(n: usize) -> Vec<Uuid> {
    (0..n).map(|_| Uuid::now_v7()).collect()
}
