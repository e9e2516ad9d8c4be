//! Webhooks (docs/protocol.md "Webhooks") into a real HTTP receiver on 127.0.0.1 that
//! checks every signature and can fail, answer slowly or not at all: every durable event
//! delivered at least once, in log order, none skipped, with its actor, recipients (online,
//! muted) and removed attachments; the server killed with SIGKILL mid-delivery and
//! restarted; two server processes on one PostgreSQL database delivering from one only,
//! the other taking over when it dies.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

mod support;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use messaging_core::UserId;
use messaging_ws_server::webhooks::WebhookSettings;
use serde_json::{Value, json};
use sha2::Sha256;
use support::process::{Process, token_from_binary};
use support::{Backend, Client, Server, token};

const SECRET: &str = "webhook secret for the tests";

/// What the receiver does with the next requests, in order; then it answers 200.
#[derive(Clone, Copy, Debug)]
enum Answer {
    Fail,
    Slow(Duration),
    /// No answer before the server's 10 s attempt timeout.
    Hang,
}

#[derive(Default)]
struct Received {
    /// Every 2xx-answered request's events, in arrival order.
    batches: Vec<Vec<Value>>,
    /// Requests answered with an error (planned failures and hangs).
    refused: usize,
    /// Requests whose signature did not verify.
    bad_signatures: usize,
    plan: VecDeque<Answer>,
}

/// A webhook receiver on 127.0.0.1.
#[derive(Clone)]
struct Receiver {
    url: String,
    received: Arc<Mutex<Received>>,
}

impl Receiver {
    async fn start(plan: &[Answer]) -> Self {
        let received = Arc::new(Mutex::new(Received {
            plan: plan.iter().copied().collect(),
            ..Received::default()
        }));
        let state = received.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: http::HeaderMap, body: axum::body::Bytes| {
                let state = state.clone();
                async move { receive(&state, &headers, &body).await }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url: format!("http://{addr}/hook"), received }
    }

    fn settings(&self) -> WebhookSettings {
        WebhookSettings::new(&self.url, SECRET.as_bytes()).unwrap()
    }

    /// Every delivered event, in arrival order.
    fn events(&self) -> Vec<Value> {
        self.received.lock().unwrap().batches.iter().flatten().cloned().collect()
    }

    /// Waits until an event at `position` or later was delivered.
    async fn wait_for_position(&self, position: u64, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while self.events().last().and_then(|e| e["position"].as_u64()).unwrap_or(0) < position {
            assert!(
                tokio::time::Instant::now() < deadline,
                "position {position} not delivered within {within:?}: {:?}",
                self.events().last()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Asserts every position from `first` to `last` was delivered, each batch in order,
    /// and no batch went back past what was acknowledged before except to replay.
    fn assert_whole(&self, first: u64, last: u64) {
        let received = self.received.lock().unwrap();
        assert_eq!(received.bad_signatures, 0, "every signature verifies");
        let mut seen = std::collections::BTreeSet::new();
        for batch in &received.batches {
            let positions: Vec<u64> =
                batch.iter().map(|e| e["position"].as_u64().unwrap()).collect();
            assert!(
                positions.windows(2).all(|w| w[0] < w[1]),
                "a batch in log order: {positions:?}"
            );
            seen.extend(positions);
        }
        let missing: Vec<u64> = (first..=last).filter(|p| !seen.contains(p)).collect();
        assert!(missing.is_empty(), "positions never delivered: {missing:?}");
    }
}

async fn receive(
    state: &Mutex<Received>,
    headers: &http::HeaderMap,
    body: &[u8],
) -> http::StatusCode {
    let signed = headers.get("x-messaging-signature").and_then(|v| v.to_str().ok()).unwrap_or("");
    let verified = verify(signed, body);
    let answer = {
        let mut received = state.lock().unwrap();
        if !verified {
            received.bad_signatures += 1;
            return http::StatusCode::UNAUTHORIZED;
        }
        received.plan.pop_front()
    };
    match answer {
        Some(Answer::Fail) => {
            state.lock().unwrap().refused += 1;
            return http::StatusCode::INTERNAL_SERVER_ERROR;
        }
        Some(Answer::Hang) => {
            state.lock().unwrap().refused += 1;
            tokio::time::sleep(Duration::from_secs(12)).await;
            return http::StatusCode::OK; // Too late: the server gave up on this attempt.
        }
        Some(Answer::Slow(time)) => tokio::time::sleep(time).await,
        None => {}
    }
    let batch: Value = serde_json::from_slice(body).unwrap();
    state.lock().unwrap().batches.push(batch["events"].as_array().unwrap().clone());
    http::StatusCode::OK
}

/// What a receiver does: `t=…,v1=…`, the MAC of `"<t>.<body>"` compared in constant time.
fn verify(signed: &str, body: &[u8]) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in signed.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = Some(value),
            Some(("v1", value)) => v1 = Some(value),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else { return false };
    let Ok(t_secs) = t.parse::<u64>() else { return false };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    if now.abs_diff(t_secs) > 300 {
        return false;
    }
    let expected: Option<Vec<u8>> = (0..v1.len())
        .step_by(2)
        .map(|i| v1.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect();
    let Some(expected) = expected else { return false };
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

async fn every_event_with_who_and_why_despite_failures(backend: Backend) {
    let receiver = Receiver::start(&[]).await;
    let Some(server) = Server::start_with_webhooks(backend, receiver.settings()).await else {
        return;
    };
    let (alice, bob) = (UserId::new(), UserId::new());
    let mut a = Client::connect(&server.url(), &token(alice)).await;
    let head_before = server.messenger.cursor_now().position();

    // Bob is offline; Alice sends with a photo, then Bob comes online and reads and reacts.
    let photo =
        json!({"url":"https://cdn.example/p.jpg","mime":"image/jpeg","name":"p.jpg","size":10});
    let sent =
        a.ok(json!({"op":"send","peer":bob.to_string(),"body":"look","attachments":[photo]})).await;
    let cid = sent["message"]["conversation_id"].as_str().unwrap().to_owned();
    let mid = sent["message"]["id"].as_str().unwrap().to_owned();
    // Delivered while Bob is offline; from here on, a failure, then no answer within the
    // server's 10 s, then a slow answer.
    receiver.wait_for_position(head_before + 2, Duration::from_secs(20)).await;
    receiver.received.lock().unwrap().plan.extend([
        Answer::Fail,
        Answer::Hang,
        Answer::Slow(Duration::from_millis(1_500)),
    ]);
    let mut b = Client::connect(&server.url(), &token(bob)).await;
    b.ok(json!({"op":"read","conversation_id":cid,"up_to_seq":1})).await;
    b.ok(json!({"op":"react","message_id":mid,"emoji":"👍","state":"added"})).await;
    b.ok(json!({"op":"mute","conversation_id":cid,"until":"2100-01-01T00:00:00Z"})).await;
    a.ok(json!({"op":"send","conversation_id":cid,"body":"muted for bob"})).await;
    a.ok(json!({"op":"delete","message_id":mid})).await;
    let system = messaging_core::SendMessage::to_conversation(
        cid.parse::<uuid::Uuid>().unwrap().into(),
        "Order shipped",
    );
    server.messenger.service().post(system).await.unwrap();
    let head = server.messenger.cursor_now().position();
    receiver.wait_for_position(head, Duration::from_secs(60)).await;
    receiver.assert_whole(head_before + 1, head);
    assert!(receiver.received.lock().unwrap().refused >= 2, "the planned failures happened");
    assert!(server.metric("messaging_webhook_attempts_failed_total").await >= 2.0);

    let events = receiver.events();
    let find = |name: &str| -> Value {
        events.iter().find(|e| e["event"] == name).cloned().unwrap_or_else(|| panic!("no {name}"))
    };
    let created = find("message.created");
    assert_eq!(created["actor"], alice.to_string());
    assert_eq!(created["data"]["message"]["id"], mid.as_str());
    assert_eq!(
        created["recipients"],
        json!([{"user_id": bob.to_string(), "online": false, "muted": false}]),
        "the actor left out; Bob offline when the first batch went"
    );
    assert!(created["cursor"].is_string());
    assert_eq!(find("receipt.read")["actor"], bob.to_string());
    assert_eq!(find("reaction.added")["actor"], bob.to_string());
    let muted = events
        .iter()
        .find(|e| {
            e["event"] == "message.created" && e["data"]["message"]["body"] == "muted for bob"
        })
        .unwrap();
    assert_eq!(muted["recipients"][0]["muted"], true);
    let deleted = find("message.deleted");
    assert_eq!(deleted["actor"], alice.to_string());
    assert_eq!(deleted["removed_attachments"][0]["url"], "https://cdn.example/p.jpg");
    let system = events.iter().rev().find(|e| e["event"] == "message.created").unwrap();
    assert_eq!(system["actor"], Value::Null, "a system message has no actor");
    assert_eq!(system["recipients"].as_array().unwrap().len(), 2, "both members");
}

async fn only_the_events_asked_for(backend: Backend) {
    let receiver = Receiver::start(&[]).await;
    let settings = receiver.settings().events(["message.created"]).unwrap();
    let Some(server) = Server::start_with_webhooks(backend, settings).await else { return };
    let (alice, bob) = (UserId::new(), UserId::new());
    let mut a = Client::connect(&server.url(), &token(alice)).await;
    let sent = a.ok(json!({"op":"send","peer":bob.to_string(),"body":"one"})).await;
    let cid = sent["message"]["conversation_id"].clone();
    a.ok(json!({"op":"edit","message_id":sent["message"]["id"],"body":"one!"})).await;
    a.ok(json!({"op":"send","conversation_id":cid,"body":"two"})).await;
    let head = server.messenger.cursor_now().position();
    // The last event is a message.created: once it is in, everything before was read.
    receiver.wait_for_position(head, Duration::from_secs(20)).await;
    let names: Vec<Value> = receiver.events().iter().map(|e| e["event"].clone()).collect();
    assert_eq!(names, vec![json!("message.created"), json!("message.created")]);
}

/// A slow receiver, the server killed with SIGKILL while delivering, and restarted on the
/// same SQLite file: every event delivered at least once, in order, none skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_resumes_delivery_where_it_stopped() {
    let plan = vec![Answer::Slow(Duration::from_millis(300)); 40];
    let receiver = Receiver::start(&plan).await;
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("messaging.db");
    let store = ["--database-url", database.to_str().unwrap()];
    let args = [store[0], store[1], "--webhook-url", receiver.url.as_str(), "--webhook-batch", "5"];
    let start = || {
        let mut command = support::process::binary(dir.path());
        command.env("MESSAGING_WEBHOOK_SECRET", SECRET);
        Process::spawn(command, &args)
    };
    let first = start();
    let (alice, bob) = (UserId::new(), UserId::new());
    let mut a = Client::connect(&first.url(), &token_from_binary(dir.path(), &store, alice)).await;
    let sent = a.ok(json!({"op":"send","peer":bob.to_string(),"body":"0"})).await;
    let cid = sent["message"]["conversation_id"].clone();
    for n in 1..60 {
        a.ok(json!({"op":"send","conversation_id":cid,"body":n.to_string()})).await;
    }
    // Killed once some batches are in, with more to go.
    receiver.wait_for_position(12, Duration::from_secs(20)).await;
    tokio::task::spawn_blocking(move || first.kill()).await.unwrap();
    let delivered_before = receiver.events().len();
    assert!(delivered_before < 61, "the kill came mid-delivery");

    let second = start();
    let mut a = Client::connect(&second.url(), &token_from_binary(dir.path(), &store, alice)).await;
    a.ok(json!({"op":"send","conversation_id":cid,"body":"after the restart"})).await;
    // 1 conversation.created + 61 message.created, from the log's start (the webhook was on
    // from the first start, whose head was 0).
    receiver.wait_for_position(62, Duration::from_secs(60)).await;
    receiver.assert_whole(1, 62);
    drop(second);
}

/// Two processes on one PostgreSQL database: one delivers; when it dies, the other takes
/// over within 30 s, from the stored position.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_deliverer_across_instances_and_a_takeover() {
    let Some(url) = support::pg_database().await else { return };
    let receiver = Receiver::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let secret_path = dir.path().join("jwt-secret");
    std::fs::write(&secret_path, "shared secret of both instances").unwrap();
    let store =
        ["--database-url", url.as_str(), "--jwt-secret-file", secret_path.to_str().unwrap()];
    let args = [store[0], store[1], store[2], store[3], "--webhook-url", receiver.url.as_str()];
    let start = || {
        let mut command = support::process::binary(dir.path());
        command.env("MESSAGING_WEBHOOK_SECRET", SECRET);
        Process::spawn(command, &args)
    };
    let (first, second) = (start(), start());
    let (alice, bob) = (UserId::new(), UserId::new());
    let mut a = Client::connect(&first.url(), &token_from_binary(dir.path(), &store, alice)).await;
    let sent = a.ok(json!({"op":"send","peer":bob.to_string(),"body":"0"})).await;
    let cid = sent["message"]["conversation_id"].clone();
    for n in 1..10 {
        a.ok(json!({"op":"send","conversation_id":cid,"body":n.to_string()})).await;
    }
    receiver.wait_for_position(11, Duration::from_secs(30)).await;
    let delivered = |process: &Process| {
        let addr = process.addr;
        async move {
            let (_, text) = support::http_get(addr, "/metrics").await;
            text.lines()
                .find_map(|l| l.strip_prefix("messaging_webhook_events_delivered_total "))
                .map_or(0.0, |v| v.trim().parse::<f64>().unwrap())
        }
    };
    let (one, two) = (delivered(&first).await, delivered(&second).await);
    assert!((one > 0.0) != (two > 0.0), "exactly one instance delivers: {one} and {two}");
    let (deliverer, other) = if one > 0.0 { (first, second) } else { (second, first) };
    tokio::task::spawn_blocking(move || deliverer.kill()).await.unwrap();
    let mut a = Client::connect(&other.url(), &token_from_binary(dir.path(), &store, alice)).await;
    a.ok(json!({"op":"send","conversation_id":cid,"body":"after the kill"})).await;
    receiver.wait_for_position(12, Duration::from_secs(30)).await;
    receiver.assert_whole(1, 12);
    assert!(delivered(&other).await > 0.0, "the other instance took over");
}

on_every_store!(every_event_with_who_and_why_despite_failures, only_the_events_asked_for);
