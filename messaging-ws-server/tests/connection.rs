//! The connection's contract: authentication before the upgrade, the HTTP routes, bad
//! frames, the rate limit, heartbeats (real time, 1 s interval), slow readers closed with
//! 4000 while others go on, and graceful shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

mod support;

use std::time::{Duration, Instant};

use base64::Engine;
use futures::{SinkExt, StreamExt};
use messaging_core::{Limits, UserId};
use messaging_ws_server::Transport;
use serde_json::json;
use support::{Backend, Client, SECRET, Server, WAIT, handshake_status, token};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

fn request_with(url: &str, authorization: Option<String>) -> http::Request<()> {
    let mut request = url.into_client_request().unwrap();
    if let Some(value) = authorization {
        request.headers_mut().insert("authorization", value.parse().unwrap());
    }
    request
}

fn signed(claims: &serde_json::Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap()
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

async fn only_valid_tokens_upgrade(backend: Backend) {
    let Some(server) = Server::start(backend, Transport::default()).await else { return };
    let url = server.url();
    let user = UserId::new().to_string();
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let refused = [
        ("no token", None),
        ("not a JWT", Some("Bearer not.a.jwt".to_owned())),
        (
            "expired",
            Some(format!("Bearer {}", signed(&json!({"sub":user,"exp":now() - 5}), SECRET))),
        ),
        (
            "wrong secret",
            Some(format!("Bearer {}", signed(&json!({"sub":user,"exp":now() + 60}), b"other"))),
        ),
        ("no exp", Some(format!("Bearer {}", signed(&json!({"sub":user}), SECRET)))),
        ("no sub", Some(format!("Bearer {}", signed(&json!({"exp":now() + 60}), SECRET)))),
        (
            "sub not a UUID",
            Some(format!("Bearer {}", signed(&json!({"sub":"alice","exp":now() + 60}), SECRET))),
        ),
        (
            "sub the nil UUID (no user: it marks system messages)",
            Some(format!(
                "Bearer {}",
                signed(&json!({"sub":uuid::Uuid::nil().to_string(),"exp":now() + 60}), SECRET)
            )),
        ),
        (
            "alg none",
            Some(format!(
                "Bearer {}.{}.",
                b64(json!({"alg":"none","typ":"JWT"})),
                b64(json!({"sub":user,"exp":now() + 60}))
            )),
        ),
        ("another scheme", Some(format!("Basic {}", token(UserId::new())))),
    ];
    for (why, authorization) in refused {
        assert_eq!(handshake_status(request_with(&url, authorization)).await, Err(401), "{why}");
    }
    // The header and the query parameter both work.
    let good = token(UserId::new());
    assert_eq!(handshake_status(request_with(&url, Some(format!("Bearer {good}")))).await, Ok(()));
    let query = format!("{url}?access_token={good}");
    assert_eq!(handshake_status(request_with(&query, None)).await, Ok(()));
    let bad_query = format!("{url}?access_token=nope");
    assert_eq!(handshake_status(request_with(&bad_query, None)).await, Err(401));
}

/// A token signed with one of `tests/keys` (`algorithm`), with extra claims.
fn signed_with_key(
    algorithm: jsonwebtoken::Algorithm,
    private_pem: &[u8],
    claims: &serde_json::Value,
) -> String {
    let key = match algorithm {
        jsonwebtoken::Algorithm::RS256 => jsonwebtoken::EncodingKey::from_rsa_pem(private_pem),
        _ => jsonwebtoken::EncodingKey::from_ec_pem(private_pem),
    }
    .unwrap();
    jsonwebtoken::encode(&jsonwebtoken::Header::new(algorithm), claims, &key).unwrap()
}

async fn public_keys_of_the_hosts_auth_service(backend: Backend) {
    use jsonwebtoken::Algorithm::{ES256, RS256};
    let keys = [
        (RS256, &include_bytes!("keys/rsa.pem")[..], &include_bytes!("keys/rsa.pub.pem")[..]),
        (ES256, &include_bytes!("keys/ec.pem")[..], &include_bytes!("keys/ec.pub.pem")[..]),
    ];
    for (algorithm, private, public) in keys {
        let auth = messaging_ws_server::AuthSettings {
            public_key_pem: Some(public.to_vec()),
            issuer: Some("https://auth.example".into()),
            audience: Some("chat".into()),
            ..Default::default()
        };
        let Some(server) =
            Server::start_with_auth(backend, Transport::default(), Limits::default(), auth).await
        else {
            return;
        };
        let url = server.url();
        let user = UserId::new().to_string();
        let bearer = |t: String| Some(format!("Bearer {t}"));
        let full = json!({"sub":user,"exp":now() + 60,"iss":"https://auth.example","aud":"chat"});
        let good = signed_with_key(algorithm, private, &full);
        assert_eq!(
            handshake_status(request_with(&url, bearer(good))).await,
            Ok(()),
            "{algorithm:?}"
        );
        let refused = [
            ("no aud", json!({"sub":user,"exp":now() + 60,"iss":"https://auth.example"})),
            ("no iss", json!({"sub":user,"exp":now() + 60,"aud":"chat"})),
            (
                "other aud",
                json!({"sub":user,"exp":now() + 60,"iss":"https://auth.example","aud":"x"}),
            ),
            (
                "expired",
                json!({"sub":user,"exp":now() - 5,"iss":"https://auth.example","aud":"chat"}),
            ),
        ];
        for (why, claims) in refused {
            let token = signed_with_key(algorithm, private, &claims);
            assert_eq!(
                handshake_status(request_with(&url, bearer(token))).await,
                Err(401),
                "{why}"
            );
        }
        // HS256 is off when only a public key is configured.
        let hs = signed(&full, SECRET);
        assert_eq!(handshake_status(request_with(&url, bearer(hs))).await, Err(401), "HS256 off");
    }
}

async fn http_routes(backend: Backend) {
    let Some(server) = Server::start(backend, Transport::default()).await else { return };
    assert_eq!(server.get("/healthz").await, (200, r#"{"status":"ok"}"#.to_owned()));
    assert_eq!(server.get("/nowhere").await.0, 404);
    // A valid token but no upgrade: 400.
    let (status, _) = server.get(&format!("/v1/ws?access_token={}", token(UserId::new()))).await;
    assert_eq!(status, 400);
    let (alice, bob) = (UserId::new(), UserId::new());
    let mut a = server.connect(alice).await;
    a.ok(json!({"op":"send","peer":bob.to_string(),"body":"counted"})).await;
    a.fails(json!({"op":"fly"}), "bad_request").await;
    let (status, metrics) = server.get("/metrics").await;
    assert_eq!(status, 200);
    for line in [
        "messaging_connections_open 1",
        "messaging_ops_total{op=\"send\",outcome=\"ok\"} 1",
        "messaging_ops_total{op=\"unknown\",outcome=\"bad_request\"} 1",
        "messaging_op_seconds_bucket{",
        "messaging_frames_in_total",
        "messaging_frames_out_total",
        "messaging_events_delivered_total",
        "messaging_lagged_closes_total 0",
    ] {
        assert!(metrics.contains(line), "{line} missing from /metrics:\n{metrics}");
    }
}

async fn bad_frames_are_answered_and_some_close(backend: Backend) {
    let transport = Transport::default().max_frame_bytes(1024);
    let Some(server) = Server::start(backend, transport).await else { return };
    let mut a = server.connect(UserId::new()).await;
    for (text, id) in [
        ("not json".to_owned(), json!(null)),
        ("[1,2,3]".to_owned(), json!(null)),
        (r#"{"op":"ping"}"#.to_owned(), json!(null)),
        (r#"{"id":{"x":1},"op":"ping"}"#.to_owned(), json!(null)),
        (r#"{"id":"x"}"#.to_owned(), json!("x")),
        (r#"{"id":5,"op":"nope"}"#.to_owned(), json!(5)),
    ] {
        a.send_text(text.clone()).await;
        let reply = a.frame().await;
        assert_eq!(reply["type"], "reply", "{text}");
        assert_eq!(reply["id"], id, "{text}: {reply}");
        assert_eq!(reply["error"]["code"], "bad_request", "{text}: {reply}");
    }
    a.ok(json!({"op":"ping"})).await; // still open

    // A binary frame: 1003.
    a.ws.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    assert_eq!(a.closed().await, Some(CloseCode::Unsupported));

    // A frame over max_frame_bytes: 1009.
    let mut b = server.connect(UserId::new()).await;
    b.send_text(json!({"id":1,"op":"ping","pad":"x".repeat(2000)}).to_string()).await;
    assert_eq!(b.closed().await, Some(CloseCode::Size));
}

async fn requests_beyond_the_rate_limit_are_refused(backend: Backend) {
    let transport = Transport::default().rate_limit(1, 3);
    let Some(server) = Server::start(backend, transport).await else { return };
    let mut a = server.connect(UserId::new()).await;
    assert_eq!(a.hello["limits"]["ops_per_s"], 1);
    assert_eq!(a.hello["limits"]["ops_burst"], 3);
    for id in 1..=5 {
        a.send_text(json!({"id":id,"op":"ping"}).to_string()).await;
    }
    let mut outcomes = Vec::new();
    for _ in 1..=5 {
        let reply = a.frame().await;
        outcomes.push((reply["id"].clone(), reply["ok"].clone(), reply["error"]["code"].clone()));
    }
    outcomes.sort_by_key(|(id, ..)| id.as_i64());
    let ok: Vec<bool> = outcomes.iter().map(|(_, ok, _)| ok == true).collect();
    assert_eq!(ok, [true, true, true, false, false], "the burst, then refusals: {outcomes:?}");
    assert_eq!(outcomes[3].2, "rate_limited");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    a.ok(json!({"op":"ping"})).await; // refilled
}

async fn heartbeats_keep_readers_and_drop_silent_peers(backend: Backend) {
    let transport = Transport::default().heartbeat(Duration::from_secs(1));
    let Some(server) = Server::start(backend, transport).await else { return };
    let mut reader = server.connect(UserId::new()).await;
    assert_eq!(reader.hello["heartbeat_s"], 1);
    // A reading client gets pings (and answers them) and stays.
    let deadline = Instant::now() + Duration::from_millis(3500);
    let mut pings = 0;
    while let Ok(frame) = tokio::time::timeout_at(deadline.into(), reader.ws.next()).await {
        match frame {
            Some(Ok(Message::Ping(_))) => pings += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(pings >= 2, "pings every second: {pings} in 3.5 s");
    reader.ok(json!({"op":"ping"})).await;

    // A client that never reads never answers: dropped after two intervals.
    let silent = server.connect(UserId::new()).await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let mut silent = silent;
    let ended = tokio::time::timeout(WAIT, async {
        loop {
            match silent.ws.next().await {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(other)) => panic!("unexpected {other:?}"),
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the silent connection was dropped");
}

async fn a_slow_reader_is_closed_with_4000_and_others_keep_flowing(backend: Backend) {
    let limits = Limits::default().with_max_queue_frames(8).with_max_body_bytes(60_000);
    let transport = Transport::default().rate_limit(100_000, 100_000);
    let Some(server) = Server::start_with(backend, transport, limits).await else { return };
    let (alice, bob, carol) = (UserId::new(), UserId::new(), UserId::new());
    let mut a = server.connect(alice).await;
    let mut c = server.connect(carol).await;

    // Bob's client: a tiny receive buffer, and it stops reading after its hello.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(server.addr).await.unwrap();
    let mut request = server.url().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {}", token(bob)).parse().unwrap());
    let stream = tokio_tungstenite::MaybeTlsStream::Plain(stream);
    let (ws, _) = tokio_tungstenite::client_async(request, stream).await.unwrap();
    let mut slow = Client::from_ws(ws).await;

    let to_bob =
        a.ok(json!({"op":"open","peer":bob.to_string()})).await["conversation"]["id"].clone();
    let to_carol =
        a.ok(json!({"op":"open","peer":carol.to_string()})).await["conversation"]["id"].clone();
    let body = "x".repeat(50_000);
    let mut lagged = false;
    for i in 0..400 {
        a.ok(json!({"op":"send","conversation_id":to_bob,"body":body})).await;
        // Carol's conversation keeps flowing meanwhile.
        if i % 50 == 0 {
            a.ok(json!({"op":"send","conversation_id":to_carol,"body":format!("still here {i}")}))
                .await;
        }
        let (_, metrics) = server.get("/metrics").await;
        if metrics.contains("messaging_lagged_closes_total 1") {
            lagged = true;
            break;
        }
    }
    assert!(lagged, "the slow reader was declared lagged");
    a.ok(json!({"op":"send","conversation_id":to_carol,"body":"after the lag"})).await;
    loop {
        let event = c.event().await;
        if event["event"] == "message.created"
            && event["data"]["message"]["body"] == "after the lag"
        {
            break;
        }
    }
    // Bob reads again: what was in flight, then the close frame 4000 `lagged`.
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            match slow.ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => {}
                other => panic!("expected the close frame, got {other:?}"),
            }
        }
    })
    .await
    .expect("the close frame arrives");
    let frame = closed.expect("a close frame with a code");
    assert_eq!((u16::from(frame.code), frame.reason.as_str()), (4000, "lagged"));
}

async fn shutdown_closes_sessions_with_1001(backend: Backend) {
    let Some(mut server) = Server::start(backend, Transport::default()).await else { return };
    let (alice, bob) = (UserId::new(), UserId::new());
    let mut a = server.connect(alice).await;
    let mut b = server.connect(bob).await;
    a.ok(json!({"op":"send","peer":bob.to_string(),"body":"before shutdown"})).await;
    b.expect_event("conversation.created").await;
    let addr = server.addr;
    let (closed_a, closed_b, ()) = tokio::join!(a.closed(), b.closed(), server.shutdown());
    assert_eq!(closed_a, Some(CloseCode::Away));
    assert_eq!(closed_b, Some(CloseCode::Away));
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "no longer accepting");
}

on_every_store!(
    only_valid_tokens_upgrade,
    public_keys_of_the_hosts_auth_service,
    http_routes,
    bad_frames_are_answered_and_some_close,
    requests_beyond_the_rate_limit_are_refused,
    heartbeats_keep_readers_and_drop_silent_peers,
    a_slow_reader_is_closed_with_4000_and_others_keep_flowing,
    shutdown_closes_sessions_with_1001,
);
