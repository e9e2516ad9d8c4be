//! What a client cannot get around: backpressure on a client that does not read (its
//! requests and its pings alike wait in its own socket), the deadline for request
//! headers (and a shutdown that does not wait for a stalled handshake), heartbeats still
//! read while a request runs, protocol errors closed with their RFC 6455 codes, and the
//! small input rules (U+0000 in an id, canonical UUIDs, a proxy's `Authorization`, `nbf`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

mod support;

use std::time::{Duration, Instant};

use futures::SinkExt;
use messaging_core::{Limits, UserId};
use messaging_ws_server::Transport;
use serde_json::json;
use support::{Backend, SECRET, Server, WAIT, handshake_status, lock_the_store, token};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};

const HISTORY_OK: &str = r#"messaging_ops_total{op="history",outcome="ok"}"#;

async fn a_client_that_does_not_read_is_not_read_either(backend: Backend) {
    let limits = Limits::default().with_max_body_bytes(60_000);
    let transport = Transport::default().rate_limit(100_000, 100_000);
    let Some(server) = Server::start_with(backend, transport, limits).await else { return };
    let (alice, bob) = (UserId::new(), UserId::new());
    let mut a = server.connect(alice).await;
    let conversation =
        a.ok(json!({"op":"open","peer":bob.to_string()})).await["conversation"]["id"].clone();
    for _ in 0..20 {
        a.ok(json!({"op":"send","conversation_id":conversation,"body":"x".repeat(50_000)})).await;
    }

    // Bob asks for 40 pages of ~1 MB and reads none of them: once the socket stops taking
    // replies, the server stops reading requests.
    let mut b = server.connect_slow_reader(bob).await;
    for id in 1..=40 {
        let request = json!({"id":id,"op":"history","conversation_id":conversation,"limit":20});
        b.send_text(request.to_string()).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ran = server.metric(HISTORY_OK).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(server.metric(HISTORY_OK).await, ran, "no request is run while replies wait");
    assert!(ran < 40.0, "{ran} of 40 requests ran while the client read nothing");

    // Reading again, every request is answered, in order.
    for id in 1..=40 {
        let reply = tokio::time::timeout(WAIT, b.frame()).await.expect("the replies flow again");
        assert_eq!((reply["id"].as_i64(), reply["ok"].as_bool()), (Some(id), Some(true)));
        assert_eq!(reply["data"]["messages"].as_array().map(Vec::len), Some(20));
    }

    // A ping flood from a client that does not read: the pongs stop being produced too.
    let mut c = server.connect_slow_reader(UserId::new()).await;
    let flood_until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < flood_until {
        let ping = c.ws.send(Message::Ping(vec![7; 125].into()));
        if tokio::time::timeout(Duration::from_millis(200), ping).await.is_err() {
            break; // the server stopped reading: the client's own socket is full
        }
    }
    let read = server.metric("messaging_frames_in_total").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(server.metric("messaging_frames_in_total").await, read, "reading paused");
}

async fn request_headers_have_a_deadline(backend: Backend) {
    let transport = Transport::default().handshake_timeout(Duration::from_secs(1));
    let Some(mut server) = Server::start(backend, transport).await else { return };
    let mut stalled = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stalled.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let began = Instant::now();
    let mut buffer = [0_u8; 512];
    let ended = tokio::time::timeout(WAIT, stalled.read(&mut buffer)).await;
    assert!(ended.is_ok(), "a stalled request is closed");
    assert!(began.elapsed() >= Duration::from_millis(900), "not before its deadline");

    // A stalled handshake does not hold up shutdown either.
    let mut another = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    another.write_all(b"GET /v1/ws HTTP/1.1\r\n").await.unwrap();
    tokio::time::timeout(WAIT, server.shutdown()).await.expect("shutdown is not held up");
}

async fn heartbeats_are_read_while_a_request_runs(backend: Backend) {
    let transport = Transport::default().heartbeat(Duration::from_secs(1));
    let Some(server) = Server::start(backend, transport).await else { return };
    let (alice, bob) = (UserId::new(), UserId::new());
    let mut a = server.connect(alice).await;
    let conversation =
        a.ok(json!({"op":"open","peer":bob.to_string()})).await["conversation"]["id"].clone();

    // A send waits 2.5 s for the store: longer than two heartbeat intervals (and shorter
    // than the PostgreSQL store's 3 s statement timeout and the 5 s answer bound). The
    // client keeps answering pings (it reads), so it is not dropped; then the same with a
    // second request sent behind the send, which waits its turn.
    for pipelined in [false, true] {
        lock_the_store(&server.database, Duration::from_millis(2500)).await;
        let began = Instant::now();
        let send = json!({"id":1,"op":"send","conversation_id":conversation,"body":"slow"});
        a.send_text(send.to_string()).await;
        if pipelined {
            a.send_text(json!({"id":2,"op":"ping"}).to_string()).await;
        }
        let first =
            tokio::time::timeout(WAIT, a.reply_to(&json!(1))).await.expect("the send is answered");
        assert_eq!(first["ok"], true, "{first}");
        assert!(began.elapsed() >= Duration::from_secs(2), "the store was locked");
        if pipelined {
            let second =
                tokio::time::timeout(WAIT, a.reply_to(&json!(2))).await.expect("then the ping");
            assert_eq!(second["ok"], true, "{second}");
        }
    }
}

async fn protocol_errors_close_with_their_codes(backend: Backend) {
    let Some(server) = Server::start(backend, Transport::default()).await else { return };
    let mut a = server.connect(UserId::new()).await;
    let not_utf8 = Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true);
    a.ws.send(Message::Frame(not_utf8)).await.unwrap();
    assert_eq!(a.closed().await, Some(CloseCode::Invalid));
}

async fn small_input_rules(backend: Backend) {
    let Some(server) = Server::start(backend, Transport::default()).await else { return };
    let mut a = server.connect(UserId::new()).await;
    a.send_text(r#"{"id":"a\u0000b","op":"ping"}"#).await;
    let reply = a.frame().await;
    assert_eq!((&reply["id"], &reply["error"]["code"]), (&json!(null), &json!("bad_request")));

    // Ids in their hyphenated form only (either case).
    let peer = uuid::Uuid::now_v7();
    for spelling in [peer.simple().to_string(), peer.braced().to_string(), peer.urn().to_string()] {
        a.fails(json!({"op":"open","peer":spelling}), "bad_request").await;
    }
    let opened = a.ok(json!({"op":"open","peer":peer.to_string().to_uppercase()})).await;
    let members = opened["conversation"]["members"].as_array().unwrap();
    assert!(members.contains(&json!(peer.to_string())), "{opened}");

    // A proxy's Basic credentials do not hide the token of the query string.
    let url = format!("{}?access_token={}", server.url(), token(UserId::new()));
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert("authorization", "Basic dXNlcjpwYXNz".parse().unwrap());
    assert_eq!(handshake_status(request).await, Ok(()));

    // A token not valid yet is refused.
    let now = jsonwebtoken::get_current_timestamp();
    let early = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": UserId::new().to_string(), "exp": now + 3600, "nbf": now + 600}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    let request = format!("{}?access_token={early}", server.url()).into_client_request().unwrap();
    assert_eq!(handshake_status(request).await, Err(401));
}

on_every_store!(
    a_client_that_does_not_read_is_not_read_either,
    request_headers_have_a_deadline,
    heartbeats_are_read_while_a_request_runs,
    protocol_errors_close_with_their_codes,
    small_input_rules,
);
