//! docs/protocol.md "Limits and robustness" on real sockets: the settings `hello`
//! announces, the byte cap of the outbound queue, the session limit per user, the search
//! limit per user, the answer bound, `/healthz` needing a store that commits, and admission
//! (silent sockets, the pending cap per address).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

mod support;

use std::time::{Duration, Instant};

use messaging_core::{Limits, UserId};
use messaging_ws_server::Transport;
use serde_json::{Value, json};
use support::{Backend, Server, WAIT, handshake_status, lock_the_store, token};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const LAGGED: &str = "messaging_lagged_closes_total";
const OUTBOX: &str = "messaging_outbox_bytes";

async fn hello_announces_every_setting(backend: Backend) {
    let limits = Limits::default().with_reply_budget_bytes(100_000);
    let transport = Transport::default()
        .answer_timeout(Duration::from_millis(2_500))
        .max_queue_bytes(300_000)
        .max_sessions_per_user(3)
        .search_rate(2, 7);
    let Some(server) = Server::start_with(backend, transport, limits).await else { return };
    let a = server.connect(UserId::new()).await;
    assert_eq!(
        a.hello["limits"],
        json!({"max_frame_bytes":65536,"max_body_bytes":8192,"ops_per_s":100,"ops_burst":200,
               "max_queue_frames":1024,"answer_timeout_ms":2500,"reply_budget_bytes":100000,
               "max_queue_bytes":300000,"max_sessions_per_user":3,"search_per_s":2,
               "search_burst":7})
    );
}

async fn a_reader_past_the_byte_cap_is_closed_with_4000(backend: Backend) {
    // Far under the frame cap (1,024), far over the byte cap: 50 KB pushes to a reader that
    // reads nothing, after asking for large pages it does not read either.
    let limits = Limits::default().with_max_body_bytes(60_000).with_reply_budget_bytes(64 * 1024);
    let transport = Transport::default().rate_limit(100_000, 100_000).max_queue_bytes(128 * 1024);
    let Some(server) = Server::start_with(backend, transport, limits).await else { return };
    let (alice, bob) = (UserId::new(), UserId::new());
    let mut a = server.connect(alice).await;
    let conversation =
        a.ok(json!({"op":"open","peer":bob.to_string()})).await["conversation"]["id"].clone();
    let body = "x".repeat(50_000);
    for _ in 0..10 {
        a.ok(json!({"op":"send","conversation_id":conversation,"body":body})).await;
    }
    let mut b = server.connect_slow_reader(bob).await;
    for id in 1..=3 {
        let history = json!({"id":id,"op":"history","conversation_id":conversation,"limit":100});
        b.send_text(history.to_string()).await;
    }
    let mut sent = 0;
    while server.metric(LAGGED).await == 0.0 {
        assert!(sent < 400, "400 pushes of 50 KB and the reader was not closed");
        a.ok(json!({"op":"send","conversation_id":conversation,"body":body})).await;
        sent += 1;
    }
    assert!(sent < 1024, "closed on bytes, long before the frame cap ({sent} pushes)");
    // Its queue is given back; what stays queued server-wide is bounded meanwhile.
    server.await_metric(OUTBOX, 0.0).await;
    // Reading again: what was in flight, then the close frame 4000 `lagged`.
    let frame = tokio::time::timeout(WAIT, async {
        loop {
            match futures::StreamExt::next(&mut b.ws).await {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Close(frame))) => return frame,
                Some(Ok(_)) => {}
                other => panic!("expected the close frame, got {other:?}"),
            }
        }
    })
    .await
    .expect("the close frame arrives")
    .expect("a close frame with a code");
    assert_eq!((u16::from(frame.code), frame.reason.as_str()), (4000, "lagged"));
    // The writer was not held up.
    a.ok(json!({"op":"send","conversation_id":conversation,"body":"after"})).await;
}

fn upgrade_request(server: &Server, user: UserId) -> http::Request<()> {
    let mut request = server.url().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {}", token(user)).parse().unwrap());
    request
}

async fn sessions_over_the_user_limit_get_503(backend: Backend) {
    let transport = Transport::default().max_sessions_per_user(2);
    let Some(server) = Server::start(backend, transport).await else { return };
    let user = UserId::new();
    let mut first = server.connect(user).await;
    let _second = server.connect(user).await;
    assert_eq!(handshake_status(upgrade_request(&server, user)).await, Err(503));
    assert_eq!(handshake_status(upgrade_request(&server, UserId::new())).await, Ok(()));
    let refused = r#"messaging_connections_refused_total{reason="sessions_per_user"}"#;
    assert_eq!(server.metric(refused).await, 1.0);

    // Once one closes, one more is allowed (the count drops when the session has ended).
    first.ws.close(None).await.unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        match handshake_status(upgrade_request(&server, user)).await {
            Ok(()) => break,
            Err(503) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("after a session closed: {other:?}"),
        }
    }
}

async fn searches_are_limited_per_user_across_connections(backend: Backend) {
    // No refill: the burst is all there is, so the test does not depend on timing.
    let transport = Transport::default().search_rate(0, 3);
    let Some(server) = Server::start(backend, transport).await else { return };
    let (alice, bob) = (UserId::new(), UserId::new());
    let mut a1 = server.connect(alice).await;
    let mut a2 = server.connect(alice).await;
    let mut b = server.connect(bob).await;
    let search = json!({"op":"search","query":"hello"});
    a1.ok(search.clone()).await;
    a1.ok(search.clone()).await;
    a2.ok(search.clone()).await;
    a2.fails(search.clone(), "rate_limited").await;
    a1.fails(search.clone(), "rate_limited").await;
    a1.ok(json!({"op":"ping"})).await;
    b.ok(search.clone()).await;
    assert_eq!(
        server.metric(r#"messaging_ops_total{op="search",outcome="rate_limited"}"#).await,
        2.0
    );
}

async fn every_request_is_answered_within_the_bound(backend: Backend) {
    let transport = Transport::default().answer_timeout(Duration::from_secs(1));
    let Some(server) = Server::start(backend, transport).await else { return };
    let (alice, bob) = (UserId::new(), UserId::new());
    let mut a = server.connect(alice).await;
    let conversation =
        a.ok(json!({"op":"open","peer":bob.to_string()})).await["conversation"]["id"].clone();
    let send = json!({"op":"send","conversation_id":conversation,"body":"bounded",
                      "client_msg_id":"bounded-1"});

    lock_the_store(&server.database, Duration::from_secs(4)).await;
    let reply = tokio::time::timeout(WAIT, a.request(send.clone())).await.expect("answered");
    assert_eq!(reply["error"]["code"], "unavailable", "{reply}");
    assert_eq!(server.metric(r#"messaging_store_errors_total{kind="timeout"}"#).await, 1.0);
    a.ok(json!({"op":"ping"})).await;

    // Once the store commits again, the retry yields exactly one message.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply = a.request(send.clone()).await;
        if reply["ok"] == true {
            break;
        }
        assert_eq!(reply["error"]["code"], "unavailable", "{reply}");
        assert!(Instant::now() < deadline, "the store did not come back: {reply}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let history = a.ok(json!({"op":"history","conversation_id":conversation})).await;
    let keyed: Vec<&Value> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["client_msg_id"] == "bounded-1")
        .collect();
    assert_eq!(keyed.len(), 1, "{history}");
}

async fn a_silent_socket_is_closed_at_the_deadline(backend: Backend) {
    let transport = Transport::default().handshake_timeout(Duration::from_secs(1));
    let Some(server) = Server::start(backend, transport).await else { return };
    let began = Instant::now();
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let mut buffer = [0_u8; 64];
    let ended = tokio::time::timeout(WAIT, silent.read(&mut buffer)).await;
    assert!(matches!(ended, Ok(Ok(0) | Err(_))), "closed without an answer: {ended:?}");
    assert!(began.elapsed() >= Duration::from_millis(900), "not before its deadline");
}

/// A GET of `path` from the loopback address `source`: the body when the answer is 200.
async fn get_from(server: &Server, source: [u8; 4], path: &str) -> Option<String> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind((std::net::Ipv4Addr::from(source), 0).into()).unwrap();
    let mut stream = socket.connect(server.addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
}

async fn healthz_from(server: &Server, source: [u8; 4]) -> bool {
    get_from(server, source, "/healthz").await.is_some()
}

async fn pending_connections_are_capped_per_address(backend: Backend) {
    let transport =
        Transport::default().max_pending_per_ip(Some(2)).handshake_timeout(Duration::from_secs(60));
    let Some(server) = Server::start(backend, transport).await else { return };
    let mut first = TcpStream::connect(server.addr).await.unwrap();
    let _second = TcpStream::connect(server.addr).await.unwrap();
    let mut third = TcpStream::connect(server.addr).await.unwrap();
    let mut buffer = [0_u8; 64];
    let refused = tokio::time::timeout(WAIT, third.read(&mut buffer)).await;
    assert!(matches!(refused, Ok(Ok(0) | Err(_))), "the third is closed at once: {refused:?}");
    let metrics = get_from(&server, [127, 0, 0, 2], "/metrics").await.unwrap();
    let series = r#"messaging_connections_refused_total{reason="pending_per_ip"} 1"#;
    assert!(metrics.contains(series), "{metrics}");
    // Another address is served meanwhile.
    assert!(healthz_from(&server, [127, 0, 0, 2]).await);
    assert!(!healthz_from(&server, [127, 0, 0, 1]).await, "still two pending from 127.0.0.1");
    // Once one of the two has sent its headers, it no longer counts.
    first.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let read = tokio::time::timeout(WAIT, first.read(&mut buffer)).await.unwrap().unwrap();
    assert!(buffer[..read].starts_with(b"HTTP/1.1 200"));
    assert!(healthz_from(&server, [127, 0, 0, 1]).await);
}

/// `/healthz` answers 200 only while the store can commit: an idle store is probed (no
/// commit in the last 2 s), and a store whose write lock is held elsewhere fails the probe
/// within the answer bound (reads still answer: SQLite's WAL readers do not wait).
async fn health_needs_a_store_that_commits() {
    let transport = Transport::default().answer_timeout(Duration::from_secs(1));
    let server = Server::start(Backend::Sqlite, transport).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    assert_eq!(server.get("/healthz").await, (200, r#"{"status":"ok"}"#.to_owned()), "probed");

    lock_the_store(&server.database, Duration::from_secs(6)).await;
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let began = Instant::now();
    assert_eq!(server.get("/healthz").await.0, 503, "the probe cannot commit");
    assert!(began.elapsed() < WAIT, "within the bound");
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.get("/healthz").await.0 != 200 {
        assert!(Instant::now() < deadline, "healthy again once the lock is gone");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_needs_a_store_that_commits_sqlite() {
    health_needs_a_store_that_commits().await;
}

on_every_store!(
    hello_announces_every_setting,
    a_reader_past_the_byte_cap_is_closed_with_4000,
    sessions_over_the_user_limit_get_503,
    searches_are_limited_per_user_across_connections,
    every_request_is_answered_within_the_bound,
    a_silent_socket_is_closed_at_the_deadline,
    pending_connections_are_capped_per_address,
);
