//! The service API, `/v1/service/…` (docs/protocol.md "Service API"), over a real HTTP
//! client: service keys (missing, wrong, a user token), and every route calling the
//! library's service handle or the named user's operation.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

mod support;

use messaging_core::UserId;
use messaging_ws_server::Transport;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Backend, SERVICE_KEY, Server, token};

async fn call(
    server: &Server,
    key: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request =
        reqwest::Client::new().request(method, format!("http://{}{path}", server.addr));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")))
}

async fn service(server: &Server, method: Method, path: &str, body: Option<Value>) -> Value {
    let (status, value) = call(server, Some(SERVICE_KEY), method.clone(), path, body).await;
    assert!(status.is_success(), "{method} {path}: {status} {value}");
    value
}

async fn service_routes(backend: Backend) {
    let Some(server) = Server::start(backend, Transport::default()).await else { return };
    let (buyer, seller) = (UserId::new(), UserId::new());
    let open = json!({"members": [buyer.to_string(), seller.to_string()], "context": "order:9",
                      "metadata": {"total": "12.00"}});

    // Keys: missing, wrong, a user's token; a service key is no user token either.
    for key in [None, Some("not-the-key-not-the-key-not-the-key"), Some(&*token(buyer))] {
        let (status, value) =
            call(&server, key, Method::POST, "/v1/service/conversations", Some(open.clone())).await;
        assert_eq!((status.as_u16(), value["error"]["code"].clone()), (401, json!("unauthorized")));
    }
    let (status, _) = call(&server, Some(SERVICE_KEY), Method::GET, "/v1/unread", None).await;
    assert_eq!(status.as_u16(), 401, "a service key is not a user token");

    // Open: 201, then 200 with the conversation unchanged.
    let (status, opened) = call(
        &server,
        Some(SERVICE_KEY),
        Method::POST,
        "/v1/service/conversations",
        Some(open.clone()),
    )
    .await;
    assert_eq!((status.as_u16(), opened["created"].clone()), (201, json!(true)));
    let cid = opened["conversation"]["id"].as_str().unwrap().to_owned();
    assert_eq!(opened["conversation"]["metadata"], json!({"total": "12.00"}));
    let (status, again) =
        call(&server, Some(SERVICE_KEY), Method::POST, "/v1/service/conversations", Some(open))
            .await;
    assert_eq!(
        (status.as_u16(), again["conversation"].clone()),
        (200, opened["conversation"].clone())
    );

    // A system message (201), a member's message through the service, history.
    let (status, system) = call(
        &server,
        Some(SERVICE_KEY),
        Method::POST,
        &format!("/v1/service/conversations/{cid}/messages"),
        Some(json!({"body": "Your order shipped", "client_msg_id": "ship-9"})),
    )
    .await;
    assert_eq!(status.as_u16(), 201);
    assert_eq!(
        (system["message"]["sender_id"].clone(), system["message"]["kind"].clone()),
        (Value::Null, json!("system"))
    );
    let as_member = service(
        &server,
        Method::POST,
        &format!("/v1/service/conversations/{cid}/messages"),
        Some(json!({"body": "Thanks!", "sender_id": buyer.to_string()})),
    )
    .await;
    assert_eq!(as_member["message"]["sender_id"], buyer.to_string());
    let (status, stranger) = call(
        &server,
        Some(SERVICE_KEY),
        Method::POST,
        &format!("/v1/service/conversations/{cid}/messages"),
        Some(json!({"body": "x", "sender_id": UserId::new().to_string()})),
    )
    .await;
    assert_eq!((status.as_u16(), stranger["error"]["code"].clone()), (404, json!("not_found")));
    let history = service(
        &server,
        Method::GET,
        &format!("/v1/service/conversations/{cid}/messages?limit=10"),
        None,
    )
    .await;
    assert_eq!(history["messages"].as_array().unwrap().len(), 2);

    // The users' views: their list, unread.
    let list =
        service(&server, Method::GET, &format!("/v1/service/users/{seller}/conversations"), None)
            .await;
    assert_eq!(list["conversations"][0]["unread_count"], 2);
    let unread =
        service(&server, Method::GET, &format!("/v1/service/users/{buyer}/unread"), None).await;
    assert_eq!(unread, json!({"total": 1, "conversations": 1}), "the system message");

    // One conversation, metadata (required; null clears), every conversation of a context.
    let one =
        service(&server, Method::GET, &format!("/v1/service/conversations/{cid}"), None).await;
    assert_eq!(one["conversation"]["last_seq"], 2);
    let (status, _) = call(
        &server,
        Some(SERVICE_KEY),
        Method::PATCH,
        &format!("/v1/service/conversations/{cid}"),
        Some(json!({})),
    )
    .await;
    assert_eq!(status.as_u16(), 400, "metadata is required");
    let updated = service(
        &server,
        Method::PATCH,
        &format!("/v1/service/conversations/{cid}"),
        Some(json!({"metadata": {"total": "0"}})),
    )
    .await;
    assert_eq!(updated["conversation"]["metadata"], json!({"total": "0"}));
    let cleared = service(
        &server,
        Method::PATCH,
        &format!("/v1/service/conversations/{cid}"),
        Some(json!({"metadata": null})),
    )
    .await;
    assert_eq!(cleared["conversation"]["metadata"], Value::Null);
    let by_context =
        service(&server, Method::GET, "/v1/service/conversations?context=order:9", None).await;
    assert_eq!(
        (by_context["conversations"][0]["id"].clone(), by_context["next"].clone()),
        (json!(cid), Value::Null)
    );
    let (status, _) =
        call(&server, Some(SERVICE_KEY), Method::GET, "/v1/service/conversations", None).await;
    assert_eq!(status.as_u16(), 400, "context is required");

    // Moderation, blocks on a user's behalf.
    let mid = as_member["message"]["id"].as_str().unwrap();
    let deleted =
        service(&server, Method::DELETE, &format!("/v1/service/messages/{mid}"), None).await;
    assert_eq!(deleted["message"]["deleted"], true);
    assert_eq!(
        service(&server, Method::PUT, &format!("/v1/service/users/{seller}/blocks/{buyer}"), None)
            .await,
        json!({})
    );
    let (status, _) = call(
        &server,
        Some(SERVICE_KEY),
        Method::POST,
        "/v1/service/conversations",
        Some(json!({"members": [buyer.to_string(), seller.to_string()], "context": "order:10"})),
    )
    .await;
    assert_eq!(status.as_u16(), 403, "blocks refuse the service's open too");
    assert_eq!(
        service(
            &server,
            Method::DELETE,
            &format!("/v1/service/users/{seller}/blocks/{buyer}"),
            None
        )
        .await,
        json!({})
    );
    let (status, _) = call(
        &server,
        Some(SERVICE_KEY),
        Method::GET,
        &format!("/v1/service/conversations/{}", UserId::new()),
        None,
    )
    .await;
    assert_eq!(status.as_u16(), 404);

    // Account deletion: every message the user sent, one event each; then none left.
    for body in ["one", "two"] {
        service(
            &server,
            Method::POST,
            &format!("/v1/service/conversations/{cid}/messages"),
            Some(json!({"body": body, "sender_id": seller.to_string()})),
        )
        .await;
    }
    let path = format!("/v1/service/users/{seller}/messages");
    assert_eq!(service(&server, Method::DELETE, &path, None).await, json!({"deleted": 2}));
    assert_eq!(service(&server, Method::DELETE, &path, None).await, json!({"deleted": 0}));
}

/// Minted tokens work on the user routes and carry the settings' checks; `ttl_s` is
/// bounded.
async fn minted_tokens(backend: Backend) {
    let Some(server) = Server::start(backend, Transport::default()).await else { return };
    let user = UserId::new();
    let minted = service(
        &server,
        Method::POST,
        "/v1/service/tokens",
        Some(json!({"user_id": user.to_string(), "ttl_s": 120})),
    )
    .await;
    let token = minted["token"].as_str().unwrap();
    assert!(minted["expires_at"].is_string());
    let (status, unread) = call(&server, Some(token), Method::GET, "/v1/unread", None).await;
    assert_eq!((status.as_u16(), unread), (200, json!({"total": 0, "conversations": 0})));
    for ttl in [json!(59), json!(2_592_001), json!("60")] {
        let (status, _) = call(
            &server,
            Some(SERVICE_KEY),
            Method::POST,
            "/v1/service/tokens",
            Some(json!({"user_id": user.to_string(), "ttl_s": ttl})),
        )
        .await;
        assert_eq!(status.as_u16(), 400, "ttl {ttl}");
    }
    let (status, _) = call(
        &server,
        Some(SERVICE_KEY),
        Method::POST,
        "/v1/service/tokens",
        Some(json!({"user_id": uuid::Uuid::nil().to_string()})),
    )
    .await;
    assert_eq!(status.as_u16(), 400, "the nil UUID");
}

/// Without any key configured every service route answers 404, with or without a key.
async fn no_keys_no_service_api(backend: Backend) {
    let Some(server) = Server::start_without_service_keys(backend).await else { return };
    for (method, path) in [
        (Method::POST, "/v1/service/conversations"),
        (Method::POST, "/v1/service/tokens"),
        (Method::GET, "/v1/service/conversations?context=x"),
    ] {
        let (status, value) =
            call(&server, Some(SERVICE_KEY), method.clone(), path, Some(json!({}))).await;
        assert_eq!((status.as_u16(), value["error"]["code"].clone()), (404, json!("not_found")));
    }
}

/// A WebSocket handshake's status with `token` (101 when it opened).
async fn handshake(server: &Server, token: &str) -> u16 {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = server.url().into_client_request().unwrap();
    request.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    match support::handshake_status(request).await {
        Ok(()) => 101,
        Err(status) => status,
    }
}

/// Mints a token for `user` through the service API.
async fn minted(server: &Server, user: UserId) -> String {
    let answer = service(
        server,
        Method::POST,
        "/v1/service/tokens",
        Some(json!({"user_id": user.to_string()})),
    )
    .await;
    answer["token"].as_str().unwrap().to_owned()
}

async fn revoking_a_user_ends_their_sessions_and_refuses_older_tokens(backend: Backend) {
    use futures::StreamExt;
    let Some(server) = Server::start(backend, Transport::default()).await else { return };
    let (user, other) = (UserId::new(), UserId::new());
    let old = token(user);
    let mut socket = support::Client::connect(&server.url(), &old).await;
    let mut others = support::Client::connect(&server.url(), &token(other)).await;
    let events = reqwest::Client::new()
        .get(format!("http://{}/v1/events", server.addr))
        .bearer_auth(&old)
        .send()
        .await
        .unwrap();
    let mut events = eventsource_stream::EventStream::new(events.bytes_stream());
    assert_eq!(events.next().await.unwrap().unwrap().event, "hello");
    // On PostgreSQL, a second instance on the same database holds a session too.
    let mut second = match backend {
        Backend::Postgres => {
            let twin =
                Server::start_on(
                    server.database.clone(),
                    None,
                    Transport::default(),
                    messaging_core::Limits::default(),
                    &support::auth_settings(),
                    std::sync::Arc::new(
                        messaging_ws_server::http::service_keys::ServiceKeys::default(),
                    ),
                )
                .await;
            let client = support::Client::connect(&twin.url(), &old).await;
            Some((twin, client))
        }
        Backend::Sqlite => None,
    };

    let path = format!("/v1/service/users/{user}/revoke");
    assert_eq!(service(&server, Method::POST, &path, None).await, json!({}));

    // Every session of the user ends: 4001 on WebSockets (on every instance), the event
    // stream's end; another user's session goes on.
    let revoked = tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Library(4001);
    assert_eq!(socket.closed().await, Some(revoked));
    if let Some((_, client)) = &mut second {
        assert_eq!(client.closed().await, Some(revoked), "the session on the other instance");
    }
    let ended = tokio::time::timeout(support::WAIT, async {
        while let Some(event) = events.next().await {
            if event.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the event stream ends");
    others.ok(json!({"op": "unread"})).await;

    // The old token is refused everywhere, with a message saying why.
    let (status, value) = call(&server, Some(&old), Method::GET, "/v1/unread", None).await;
    assert_eq!(status.as_u16(), 401);
    assert!(value["error"]["message"].as_str().unwrap().contains("revoked"), "{value}");
    assert_eq!(handshake(&server, &old).await, 401);
    if let Some((twin, _)) = &second {
        assert_eq!(handshake(twin, &old).await, 401, "refused by the other instance too");
    }
    // A token issued in a later second is accepted.
    let revoked_second =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    while std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
        <= revoked_second
    {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let fresh = minted(&server, user).await;
    let (status, _) = call(&server, Some(&fresh), Method::GET, "/v1/unread", None).await;
    assert_eq!(status.as_u16(), 200);
    assert_eq!(handshake(&server, &fresh).await, 101);

    // Not a user: 400.
    for bad in ["00000000-0000-0000-0000-000000000000", "not-a-uuid"] {
        let path = format!("/v1/service/users/{bad}/revoke");
        let (status, value) = call(&server, Some(SERVICE_KEY), Method::POST, &path, None).await;
        assert_eq!((status.as_u16(), value["error"]["code"].clone()), (400, json!("bad_request")));
    }
    if let Some((mut twin, _)) = second {
        twin.shutdown().await;
    }
}

/// A revocation whose signal never came (written straight into the store, as if the
/// instance's listener had missed it) still ends the session, on its next heartbeat.
async fn a_lost_revocation_signal_ends_the_session_on_a_heartbeat(backend: Backend) {
    use messaging_core::store::SocialStore;
    if backend != Backend::Postgres {
        return; // One SQLite process owns its file: its signals cannot be lost.
    }
    let transport = Transport::default().heartbeat(std::time::Duration::from_secs(1));
    let Some(server) = Server::start(backend, transport).await else { return };
    let user = UserId::new();
    let mut socket = support::Client::connect(&server.url(), &token(user)).await;
    let messaging_ws_server::backend::Database::Postgres(url) = &server.database else {
        unreachable!()
    };
    let store = messaging_store_pg::PgStore::connect(url, messaging_store_pg::PgOptions::default())
        .await
        .unwrap();
    store.revoke(user, messaging_core::Timestamp::now()).await.unwrap();
    let revoked = tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Library(4001);
    assert_eq!(socket.closed().await, Some(revoked));
    store.close().await.unwrap();
}

on_every_store!(
    service_routes,
    minted_tokens,
    no_keys_no_service_api,
    revoking_a_user_ends_their_sessions_and_refuses_older_tokens,
    a_lost_revocation_signal_ends_the_session_on_a_heartbeat,
);
