//! Every event reaches exactly the sessions docs/protocol.md names: durable events every session
//! of both members (the causing one included), ephemeral ones the other user only, and
//! nobody else. Two users with two sessions each, and an outsider.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

mod support;

use std::time::Duration;

use messaging_core::UserId;
use messaging_ws_server::Transport;
use serde_json::{Value, json};
use support::{Backend, Client, Server};

const QUIET: Duration = Duration::from_millis(300);

/// Each client receives `name` next; returns the first one's event (all must be equal).
async fn all_receive(clients: &mut [&mut Client], name: &str) -> Value {
    let mut first: Option<Value> = None;
    for client in clients.iter_mut() {
        let event = client.expect_event(name).await;
        match &first {
            None => first = Some(event),
            Some(first) => assert_eq!(&event, first, "every session gets the same frame"),
        }
    }
    first.unwrap_or(Value::Null)
}

fn cursor_of(event: &Value) -> String {
    event["cursor"].as_str().unwrap_or_else(|| panic!("no cursor on {event}")).to_owned()
}

async fn events_reach_exactly_their_sessions(backend: Backend) {
    let Some(server) = Server::start(backend, Transport::default()).await else { return };
    let (alice, bob, carol) = (UserId::new(), UserId::new(), UserId::new());
    let mut a1 = server.connect(alice).await;
    let mut a2 = server.connect(alice).await;
    let mut b1 = server.connect(bob).await;
    let mut b2 = server.connect(bob).await;
    let mut outsider = server.connect(carol).await;

    // conversation.created + message.created: all four sessions, the sender's included.
    let sent =
        a1.ok(json!({"op":"send","peer":bob.to_string(),"body":"hello","client_msg_id":"k"})).await;
    let created =
        all_receive(&mut [&mut a1, &mut a2, &mut b1, &mut b2], "conversation.created").await;
    let cid = created["data"]["conversation"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created["data"]["conversation"]["last_seq"], 0);
    let message = all_receive(&mut [&mut a1, &mut a2, &mut b1, &mut b2], "message.created").await;
    assert_eq!(message["data"]["message"], sent["message"]);

    // An idempotent retry emits nothing.
    a2.ok(json!({"op":"send","conversation_id":cid,"body":"hello","client_msg_id":"k"})).await;

    // Edits and deletes: all four.
    let mid = sent["message"]["id"].clone();
    a1.ok(json!({"op":"edit","message_id":mid,"body":"hello!"})).await;
    let edited = all_receive(&mut [&mut a1, &mut a2, &mut b1, &mut b2], "message.edited").await;
    assert_eq!(edited["data"]["message"]["body"], "hello!");
    a1.ok(json!({"op":"delete","message_id":mid})).await;
    let deleted = all_receive(&mut [&mut a1, &mut a2, &mut b1, &mut b2], "message.deleted").await;
    assert_eq!(deleted["data"]["message"]["deleted"], true);
    assert_eq!(deleted["data"]["message"]["body"], "");
    a1.ok(json!({"op":"delete","message_id":mid})).await; // twice: no second event

    // Receipts: all four, only when the marker moves.
    let reply = b1.ok(json!({"op":"delivered","conversation_id":cid,"up_to_seq":1})).await;
    let delivered =
        all_receive(&mut [&mut a1, &mut a2, &mut b1, &mut b2], "receipt.delivered").await;
    assert_eq!(
        delivered["data"],
        json!({"conversation_id":cid,"user_id":bob.to_string(),"delivered_seq":1,
               "at":reply["at"]})
    );
    let reply = b2.ok(json!({"op":"read","conversation_id":cid,"up_to_seq":1})).await;
    let read = all_receive(&mut [&mut a1, &mut a2, &mut b1, &mut b2], "receipt.read").await;
    assert_eq!(
        read["data"],
        json!({"conversation_id":cid,"user_id":bob.to_string(),"read_seq":1,"at":reply["at"]})
    );
    assert!(reply["at"].is_string(), "{reply}");
    b1.ok(json!({"op":"read","conversation_id":cid,"up_to_seq":0})).await; // does not move

    // Typing: the peer's sessions only, never the typist's own; no cursor.
    a1.ok(json!({"op":"typing","conversation_id":cid,"state":"started"})).await;
    let typing = all_receive(&mut [&mut b1, &mut b2], "typing").await;
    assert_eq!(
        typing,
        json!({"type":"event","event":"typing","data":{"conversation_id":cid,
               "user_id":alice.to_string(),"state":"started","expires_in_ms":6000}})
    );

    // Every durable event has its own cursor.
    let cursors: std::collections::HashSet<String> =
        [&created, &message, &edited, &deleted, &delivered, &read]
            .iter()
            .map(|e| cursor_of(e))
            .collect();
    assert_eq!(cursors.len(), 6);

    for client in [&mut a1, &mut a2, &mut b1, &mut b2, &mut outsider] {
        client.expect_nothing(QUIET).await;
    }
}

async fn presence_reaches_the_users_who_share_a_conversation(backend: Backend) {
    let Some(server) = Server::start(backend, Transport::default()).await else { return };
    let (alice, dave, carol) = (UserId::new(), UserId::new(), UserId::new());
    let mut a = server.connect(alice).await;
    let mut outsider = server.connect(carol).await;
    a.ok(json!({"op":"open","peer":dave.to_string()})).await;
    a.expect_event("conversation.created").await;

    // Dave's first session: online to Alice; his second: nothing.
    let d1 = server.connect(dave).await;
    let online = a.expect_event("presence").await;
    assert_eq!(
        online,
        json!({"type":"event","event":"presence",
               "data":{"user_id":dave.to_string(),"online":true,"last_seen":null}})
    );
    let mut d2 = server.connect(dave).await;
    a.expect_nothing(QUIET).await;

    // Closing one of two sessions: nothing; the last: offline with last_seen.
    drop(d1);
    a.expect_nothing(QUIET).await;
    d2.ws.close(None).await.expect("close");
    let offline = a.expect_event("presence").await;
    assert_eq!(offline["data"]["user_id"], dave.to_string());
    assert_eq!(offline["data"]["online"], false);
    assert!(offline["data"]["last_seen"].is_string(), "{offline}");
    assert!(offline.get("cursor").is_none(), "ephemeral events carry no cursor");
    let asked = a.ok(json!({"op":"presence","user_ids":[dave.to_string()]})).await;
    assert_eq!(asked["presence"][0]["online"], false);
    assert_eq!(asked["presence"][0]["last_seen"], offline["data"]["last_seen"]);

    outsider.expect_nothing(QUIET).await;
}

on_every_store!(
    events_reach_exactly_their_sessions,
    presence_reaches_the_users_who_share_a_conversation
);
