//! One user of the soak: sends on schedule over its WebSocket, reads pushes and replies,
//! and does its chores (reconnect and resume, `sync`, `search`), checking that its
//! conversation's seqs run on without a gap or a repeat.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use super::shared::{Dice, Shared};
use crate::loadgen::Error;
use crate::loadgen::client::{Socket, next_json};

/// What a user does besides sending.
#[derive(Clone, Copy)]
pub(super) enum Chore {
    Reconnect,
    Sync,
    Search,
}

/// One user's seen messages of its conversation: the seqs must run 1, 2, 3, … once each.
#[derive(Default)]
pub(super) struct Seen {
    pub(super) last_seq: u64,
    pub(super) cursor: Option<String>,
}

impl Seen {
    /// Takes a `message.created` of seq `seq`; during a resume an already-seen seq is the
    /// overlap of `sync` and live pushes, not a repeat. `Err` on a gap or a repeat.
    pub(super) fn take(&mut self, seq: u64, resuming: bool) -> Result<bool, String> {
        if seq <= self.last_seq {
            return if resuming { Ok(false) } else { Err(format!("seq {seq} repeated")) };
        }
        if seq != self.last_seq + 1 {
            let gap = format!("seqs {} to {} missing", self.last_seq + 1, seq - 1);
            self.last_seq = seq;
            return Err(gap);
        }
        self.last_seq = seq;
        Ok(true)
    }
}

/// One user of the soak.
pub(super) struct User {
    pub(super) me: Uuid,
    pub(super) n: usize,
    pub(super) conversation: String,
    pub(super) pair: usize,
    pub(super) shared: Arc<Shared>,
    pub(super) interval: Duration,
    pub(super) chore_every: Duration,
    pub(super) dice: Dice,
}

impl User {
    /// Sends on schedule, reads pushes and replies, and does its chores until the end;
    /// then the count of messages it saw.
    pub(super) async fn drive(mut self, mut socket: Socket) -> (Seen, Option<Socket>) {
        let shared = self.shared.clone();
        let mut seen = Seen::default();
        // Users' sends spread over one interval (golden-ratio steps: even for any count).
        let mut next_send = shared.base + self.interval.mul_f64((self.n as f64 * 0.618_034) % 1.0);
        let mut next_chore = Instant::now() + self.dice.wait(self.chore_every);
        let mut sent = 0_u64;
        // Requests in flight: id → (what, when sent).
        let mut waiting: VecDeque<(String, Instant)> = VecDeque::new();
        while Instant::now() < shared.stop {
            tokio::select! {
                () = tokio::time::sleep_until(next_send.into()) => {
                    sent += 1;
                    let id = format!("m{sent}");
                    let scheduled = shared.micros_since_base(next_send);
                    let body = &shared.bodies[usize::try_from(sent).unwrap_or(0) % shared.bodies.len()];
                    let frame = json!({
                        "id": id, "op": "send", "conversation_id": self.conversation,
                        "body": body, "client_msg_id": format!("{}-{scheduled}", self.n),
                    });
                    if socket.send(Message::text(frame.to_string())).await.is_err() {
                        shared.counters.error("a send could not be written");
                        break;
                    }
                    waiting.push_back((id, Instant::now()));
                    next_send += self.interval;
                }
                () = tokio::time::sleep_until(next_chore.into()) => {
                    next_chore = Instant::now() + self.dice.wait(self.chore_every);
                    let chore = self.pick();
                    match chore {
                        Chore::Reconnect => {
                            match self.reconnect(Some(socket), &mut seen, &mut waiting).await {
                                Ok(fresh) => socket = fresh,
                                Err(error) => {
                                    shared.counters.error(format!("reconnect: {error}"));
                                    return (seen, None);
                                }
                            }
                        }
                        Chore::Sync => {
                            // From where this user is: a client checking it missed nothing.
                            if let Some(cursor) = seen.cursor.clone() {
                                let frame = json!({"id": "sync", "op": "sync", "cursor": cursor, "limit": 100});
                                if socket.send(Message::text(frame.to_string())).await.is_ok() {
                                    waiting.push_back(("sync".into(), Instant::now()));
                                }
                            }
                        }
                        Chore::Search => {
                            let word = &shared.words[usize::try_from(self.dice.next() % shared.words.len() as u64).unwrap_or(0)];
                            let frame = json!({"id": "search", "op": "search", "query": word, "limit": 10});
                            if socket.send(Message::text(frame.to_string())).await.is_ok() {
                                waiting.push_back(("search".into(), Instant::now()));
                            }
                        }
                    }
                }
                frame = next_json(&mut socket) => {
                    match frame {
                        Ok(frame) => self.take(&frame, &mut seen, &mut waiting, false),
                        Err(_) => {
                            // The server ended the session (a reader too slow for its
                            // queue, as the protocol allows): a client reconnects and
                            // resumes, and so does this one.
                            shared.counters.ended_by_server.fetch_add(1, Ordering::Relaxed);
                            match self.reconnect(None, &mut seen, &mut waiting).await {
                                Ok(fresh) => socket = fresh,
                                Err(error) => {
                                    shared.counters.error(format!("reconnect after the server ended the session: {error}"));
                                    return (seen, None);
                                }
                            }
                        }
                    }
                }
            }
        }
        // The drain: answers still in flight (the peer's last messages come with the
        // final sync, once every user has stopped).
        let drain_until = Instant::now() + Duration::from_secs(30);
        while !waiting.is_empty() && Instant::now() < drain_until {
            match tokio::time::timeout_at(drain_until.into(), next_json(&mut socket)).await {
                Ok(Ok(frame)) => self.take(&frame, &mut seen, &mut waiting, false),
                _ => break,
            }
        }
        if !waiting.is_empty() {
            shared.counters.error(format!("user {}: {} answers never came", self.n, waiting.len()));
        }
        (seen, Some(socket))
    }

    /// A chore, in proportion to the fleet-wide rates.
    pub(super) fn pick(&mut self) -> Chore {
        let [reconnects, syncs, searches] = self.shared.chore_rates;
        let roll = self.dice.unit() * (reconnects + syncs + searches);
        if roll < reconnects {
            Chore::Reconnect
        } else if roll < reconnects + syncs {
            Chore::Sync
        } else {
            Chore::Search
        }
    }

    /// A frame from the server: a reply (an acknowledged send, a search, a sync) or a push.
    pub(super) fn take(
        &self,
        frame: &Value,
        seen: &mut Seen,
        waiting: &mut VecDeque<(String, Instant)>,
        resuming: bool,
    ) {
        let shared = &self.shared;
        if frame["type"] == "reply" {
            let Some(position) = waiting.iter().position(|(id, _)| frame["id"] == id.as_str())
            else {
                return;
            };
            let Some((id, at)) = waiting.remove(position) else { return };
            if frame["ok"] != true {
                shared.counters.error(format!("{id} failed: {}", frame["error"]));
                return;
            }
            let took = u64::try_from(at.elapsed().as_micros()).unwrap_or(u64::MAX);
            if id.starts_with('m') {
                shared.counters.acked.fetch_add(1, Ordering::Relaxed);
                if let Some(stored) = shared.stored.get(self.pair) {
                    stored.fetch_add(1, Ordering::Relaxed);
                }
            } else if id == "search" {
                shared.counters.searches.fetch_add(1, Ordering::Relaxed);
                shared.record(None, Some(took));
            } else {
                shared.counters.syncs.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        if frame["type"] != "event" {
            return;
        }
        if frame["event"] == "message.created" {
            let message = &frame["data"]["message"];
            let seq = message["seq"].as_u64().unwrap_or(0);
            match seen.take(seq, resuming) {
                Ok(true) if !resuming => {
                    shared.counters.delivered.fetch_add(1, Ordering::Relaxed);
                    let scheduled = message["client_msg_id"]
                        .as_str()
                        .and_then(|key| key.rsplit_once('-'))
                        .and_then(|(_, micros)| micros.parse::<u64>().ok());
                    if let Some(scheduled) = scheduled {
                        let now = shared.micros_since_base(Instant::now());
                        shared.record(Some(now.saturating_sub(scheduled)), None);
                    }
                }
                Ok(_) => {}
                Err(error) => shared.counters.error(format!("user {}: {error}", self.n)),
            }
        }
        if let Some(cursor) = frame["cursor"].as_str() {
            seen.cursor = Some(cursor.to_owned());
        }
    }

    /// Drops the connection (requests in flight with it: sends are settled by what the
    /// resume brings) and opens a new one that resumes with `sync`.
    pub(super) async fn reconnect(
        &mut self,
        socket: Option<Socket>,
        seen: &mut Seen,
        waiting: &mut VecDeque<(String, Instant)>,
    ) -> Result<Socket, Error> {
        let shared = self.shared.clone();
        if let Some(mut socket) = socket {
            // Replies still due are read first (for up to 10 s), so sends are settled
            // before the drop; what does not come in time is counted and let go.
            let until = Instant::now() + Duration::from_secs(10);
            while !waiting.is_empty() && Instant::now() < until {
                match tokio::time::timeout_at(until.into(), next_json(&mut socket)).await {
                    Ok(Ok(frame)) => self.take(&frame, seen, waiting, false),
                    _ => break,
                }
            }
            let _ = socket.close(None).await;
        }
        let unanswered = waiting.iter().filter(|(id, _)| id.starts_with('m')).count();
        shared.counters.unanswered.fetch_add(unanswered as u64, Ordering::Relaxed);
        waiting.clear();
        // Backoff from 0.5 s to 5 s, for as long as the run lasts and 30 s more.
        let give_up = shared.stop + Duration::from_secs(30);
        let mut backoff = Duration::from_millis(500);
        let mut fresh = loop {
            match shared.target.connect(self.me, self.n).await {
                Ok((fresh, _)) => break fresh,
                Err(error) if Instant::now() >= give_up => return Err(error),
                Err(_) => {
                    shared.counters.reconnect_retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(backoff.mul_f64(self.dice.unit() + 0.5)).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        };
        shared.counters.reconnects.fetch_add(1, Ordering::Relaxed);
        let pushed = resume(&mut fresh, seen).await?;
        for frame in &pushed {
            self.take(frame, seen, waiting, true);
        }
        Ok(fresh)
    }
}

/// `sync` from `seen`'s cursor to the end, each message taken as a resume (overlaps with
/// live pushes are not repeats; a gap is an error). The pushes that arrived meanwhile are
/// returned, for the caller to take after the sync, as a client holds them.
pub(super) async fn resume(socket: &mut Socket, seen: &mut Seen) -> Result<Vec<Value>, Error> {
    let mut pushed = Vec::new();
    let Some(mut cursor) = seen.cursor.clone() else { return Ok(pushed) };
    loop {
        let request = json!({"id": "resume", "op": "sync", "cursor": cursor, "limit": 500});
        socket.send(Message::text(request.to_string())).await?;
        let page = loop {
            let frame = next_json(socket).await?;
            if frame["type"] == "reply" && frame["id"] == "resume" {
                if frame["ok"] != true {
                    return Err(format!("sync failed: {}", frame["error"]).into());
                }
                break frame["data"].clone();
            }
            pushed.push(frame);
        };
        for event in page["events"].as_array().into_iter().flatten() {
            if event["event"] == "message.created" {
                let seq = event["data"]["message"]["seq"].as_u64().unwrap_or(0);
                seen.take(seq, true)?;
            }
        }
        cursor = page["cursor"].as_str().unwrap_or_default().to_owned();
        seen.cursor = Some(cursor.clone());
        if page["has_more"] != true {
            return Ok(pushed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Seen;

    #[test]
    fn seqs_must_run_on_once_each() {
        let mut seen = Seen::default();
        assert_eq!(seen.take(1, false), Ok(true));
        assert_eq!(seen.take(2, false), Ok(true));
        assert!(seen.take(2, false).is_err(), "a repeat outside a resume");
        assert_eq!(seen.take(2, true), Ok(false), "the overlap of a resume");
        assert!(seen.take(5, true).is_err(), "a gap, even in a resume");
        assert_eq!(seen.take(6, false), Ok(true), "on from the gap");
    }
}
