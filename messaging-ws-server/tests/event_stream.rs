//! `GET /v1/events` (docs/protocol.md "Server-sent events") read by a real HTTP client
//! over loopback, its framing parsed by an SSE parser: hello first, live events with
//! their cursors, resume by `Last-Event-ID` or `?cursor=` with every event exactly once
//! across reconnects and concurrent sends, `access_token` in the query, a cursor never
//! issued refused before the stream, the session limit.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

mod support;

use std::time::Duration;

use eventsource_stream::{Event, Eventsource};
use futures::{Stream, StreamExt};
use messaging_core::UserId;
use messaging_ws_server::Transport;
use serde_json::{Value, json};
use support::{Backend, Server, token};

type Events = std::pin::Pin<Box<dyn Stream<Item = Event> + Send>>;

/// Opens the stream of `user` (with `Last-Event-ID: last` when given; `query` appended).
async fn open(server: &Server, user: UserId, last: Option<&str>, query: &str) -> Events {
    let url = format!("http://{}/v1/events{query}", server.addr);
    let mut request = reqwest::Client::new().get(url).bearer_auth(token(user));
    if let Some(last) = last {
        request = request.header("last-event-id", last);
    }
    let response = request.send().await.expect("request");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    Box::pin(response.bytes_stream().eventsource().map(|e| e.expect("an SSE event")))
}

async fn next(events: &mut Events) -> Event {
    tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("an event within 10 s")
        .expect("the stream is open")
}

/// The next durable event (ephemeral ones skipped).
async fn durable(events: &mut Events) -> Event {
    loop {
        let event = next(events).await;
        if !event.id.is_empty() {
            return event;
        }
    }
}

fn data(event: &Event) -> Value {
    serde_json::from_str(&event.data).expect("JSON data")
}

async fn send(server: &Server, from: UserId, to: UserId, body: &str) -> Value {
    let url = format!("http://{}/v1/messages", server.addr);
    let response = reqwest::Client::new()
        .post(url)
        .bearer_auth(token(from))
        .json(&json!({"peer": to.to_string(), "body": body}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    response.json().await.unwrap()
}

async fn hello_then_live_events(backend: Backend) {
    let Some(server) = Server::start(backend, Transport::default()).await else { return };
    let (alice, bob) = (UserId::new(), UserId::new());
    let mut bobs = open(&server, bob, None, "").await;
    let hello = next(&mut bobs).await;
    assert_eq!(hello.event, "hello");
    let hello_data = data(&hello);
    assert_eq!(hello_data["cursor"], hello.id.as_str(), "the id is the cursor");
    assert_eq!(hello_data["user_id"], bob.to_string());
    assert!(hello_data.get("type").is_none());
    assert_eq!(hello_data["limits"]["max_sessions_per_user"], 32);
    let sent = send(&server, alice, bob, "hello bob").await;
    let created = durable(&mut bobs).await;
    assert_eq!(created.event, "conversation.created");
    let message = durable(&mut bobs).await;
    assert_eq!(message.event, "message.created");
    assert_eq!(data(&message)["message"], sent["message"]);
    assert!(message.id.starts_with("v1"));

    // EventSource cannot set headers: the token may come in the query.
    let url = format!("http://{}/v1/events?access_token={}", server.addr, token(alice));
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let refused = reqwest::get(format!("http://{}/v1/events", server.addr)).await.unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    let bad = reqwest::Client::new()
        .get(format!("http://{}/v1/events?cursor=v1fffffff", server.addr))
        .bearer_auth(token(bob))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400, "a cursor never issued");
}

/// Three forced disconnects while another user keeps sending: the union of what the
/// streams delivered is every message, once, in order.
async fn resume_is_exactly_once(backend: Backend) {
    let Some(server) = Server::start(backend, Transport::default()).await else { return };
    let (alice, bob) = (UserId::new(), UserId::new());
    let mut seen: Vec<String> = Vec::new();
    let mut last: Option<String> = None;
    let total = 40;
    let sender = {
        let server_addr = server.addr;
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            for i in 0..total {
                let response = client
                    .post(format!("http://{server_addr}/v1/messages"))
                    .bearer_auth(token(alice))
                    .json(&json!({"peer": bob.to_string(), "body": format!("m{i}")}))
                    .send()
                    .await
                    .unwrap();
                assert!(response.status().is_success());
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    for round in 0..4 {
        // Round 0 starts from the first event; the others resume from the last id seen,
        // alternately by header and by query.
        let mut events = match (&last, round % 2) {
            (None, _) => open(&server, bob, None, "?cursor=v10").await,
            (Some(id), 0) => open(&server, bob, Some(id), "").await,
            (Some(id), _) => open(&server, bob, None, &format!("?cursor={id}")).await,
        };
        assert_eq!(next(&mut events).await.event, "hello");
        let take = if round < 3 { 8 } else { usize::MAX };
        let mut taken = 0;
        while taken < take && seen.len() < total {
            let event = durable(&mut events).await;
            last = Some(event.id.clone());
            if event.event == "message.created" {
                seen.push(data(&event)["message"]["body"].as_str().unwrap().to_owned());
                taken += 1;
            }
        }
        // Dropping the stream disconnects it.
    }
    sender.await.unwrap();
    let expected: Vec<String> = (0..total).map(|i| format!("m{i}")).collect();
    assert_eq!(seen, expected, "every message exactly once, in order");
}

async fn the_session_limit_counts_streams(backend: Backend) {
    let transport = Transport::default().max_sessions_per_user(1);
    let Some(server) = Server::start(backend, transport).await else { return };
    let bob = UserId::new();
    let mut first = open(&server, bob, None, "").await;
    assert_eq!(next(&mut first).await.event, "hello");
    let second = reqwest::Client::new()
        .get(format!("http://{}/v1/events", server.addr))
        .bearer_auth(token(bob))
        .send()
        .await
        .unwrap();
    assert_eq!(second.status().as_u16(), 503);
    drop(first);
    // The slot comes back when the stream ends.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let again = reqwest::Client::new()
            .get(format!("http://{}/v1/events", server.addr))
            .bearer_auth(token(bob))
            .send()
            .await
            .unwrap();
        if again.status().as_u16() == 200 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the slot never came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A reader that stops reading while events keep coming has its stream ended once its
/// session's queue overflows; reconnecting with the last id it read loses nothing.
async fn a_slow_reader_is_ended_and_loses_nothing(backend: Backend) {
    let limits = messaging_core::Limits::default().with_max_queue_frames(8);
    let transport = Transport::default().rate_limit(100_000, 100_000);
    let Some(server) = Server::start_with(backend, transport, limits).await else {
        return;
    };
    let (alice, bob) = (UserId::new(), UserId::new());
    let mut events = open(&server, bob, None, "").await;
    assert_eq!(next(&mut events).await.event, "hello");
    // Bob stops reading; Alice sends far more than the queue and the loopback socket's
    // buffers (several MiB) hold.
    let body = "x".repeat(8000);
    let total = 2500;
    for i in 0..total {
        send(&server, alice, bob, &format!("{i} {body}")).await;
    }
    // Reading again: what was buffered arrives, then the stream ends.
    let mut received: Vec<String> = Vec::new();
    let mut last = String::new();
    while received.len() < total {
        match tokio::time::timeout(Duration::from_secs(10), events.next()).await {
            Ok(Some(event)) => {
                if event.event == "message.created" {
                    received.push(data(&event)["message"]["body"].as_str().unwrap().to_owned());
                }
                if !event.id.is_empty() {
                    last = event.id.clone();
                }
            }
            Ok(None) => break,
            Err(_) => panic!("the slow reader's stream was not ended"),
        }
    }
    assert!(received.len() < total, "the stream ended early ({} of {total})", received.len());
    let mut resumed = open(&server, bob, Some(&last), "").await;
    assert_eq!(next(&mut resumed).await.event, "hello");
    while received.len() < total {
        let event = durable(&mut resumed).await;
        if event.event == "message.created" {
            received.push(data(&event)["message"]["body"].as_str().unwrap().to_owned());
        }
    }
    let expected: Vec<String> = (0..total).map(|i| format!("{i} {body}")).collect();
    assert_eq!(received, expected, "every message once, in order, across the reconnect");
}

on_every_store!(
    hello_then_live_events,
    resume_is_exactly_once,
    the_session_limit_counts_streams,
    a_slow_reader_is_ended_and_loses_nothing
);
