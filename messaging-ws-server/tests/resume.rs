//! Resuming after a disconnect: `sync` from the last cursor a client kept fills the gap with
//! every durable event (messages, edits, deletes, receipts) exactly once, in their current
//! state, up to the new session's `hello.cursor`; later events arrive pushed, not twice.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

mod support;

use std::collections::HashSet;
use std::time::Duration;

use messaging_core::UserId;
use messaging_ws_server::Transport;
use serde_json::{Value, json};
use support::{Backend, Client, Server};

/// Every event of `sync` from `cursor`, page by page (`limit` per page), and the last
/// cursor it returned.
async fn sync_all(client: &mut Client, mut cursor: String, limit: u64) -> (Vec<Value>, String) {
    let mut events = Vec::new();
    loop {
        let page = client.ok(json!({"op":"sync","cursor":cursor,"limit":limit})).await;
        let batch = page["events"].as_array().unwrap().clone();
        assert!(batch.len() as u64 <= limit);
        events.extend(batch);
        cursor = page["cursor"].as_str().unwrap().to_owned();
        if page["has_more"] == false {
            return (events, cursor);
        }
    }
}

async fn sync_after_a_disconnect_misses_nothing_and_repeats_nothing(backend: Backend) {
    let Some(server) = Server::start(backend, Transport::default()).await else { return };
    let (alice, bob) = (UserId::new(), UserId::new());
    let mut a = server.connect(alice).await;
    let mut phone = server.connect(bob).await;

    let first =
        a.ok(json!({"op":"send","peer":bob.to_string(),"body":"first"})).await["message"].clone();
    let cid = first["conversation_id"].as_str().unwrap().to_owned();
    phone.expect_event("conversation.created").await;
    let kept = phone.expect_event("message.created").await;
    let kept_cursor = kept["cursor"].as_str().unwrap().to_owned();
    drop(phone);

    // While Bob is away: two messages, an edit, a delete, Alice's read receipt.
    let second =
        a.ok(json!({"op":"send","conversation_id":cid,"body":"second"})).await["message"].clone();
    let third =
        a.ok(json!({"op":"send","conversation_id":cid,"body":"third"})).await["message"].clone();
    a.ok(json!({"op":"edit","message_id":second["id"],"body":"second, edited"})).await;
    a.ok(json!({"op":"delete","message_id":third["id"]})).await;
    a.ok(json!({"op":"read","conversation_id":cid,"up_to_seq":3})).await;

    let mut phone = server.connect(bob).await;
    let hello = phone.cursor();
    let (events, end) = sync_all(&mut phone, kept_cursor.clone(), 2).await;
    assert_eq!(end, hello, "sync ends at the session's hello cursor");
    let names: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["message.created", "message.created", "message.edited", "message.deleted", "receipt.read"],
        "the gap, in order: {events:#?}"
    );
    let cursors: HashSet<&str> = events.iter().map(|e| e["cursor"].as_str().unwrap()).collect();
    assert_eq!(cursors.len(), events.len(), "no event twice");
    assert!(!cursors.contains(kept_cursor.as_str()), "nothing at or before the kept cursor");
    // Current state: the edit shows in the created event, the tombstone in both of its.
    assert_eq!(events[0]["data"]["message"]["body"], "second, edited");
    assert_eq!(events[1]["data"]["message"]["deleted"], true);
    assert_eq!(events[1]["data"]["message"]["body"], "");
    assert_eq!(events[3]["data"]["message"]["id"], third["id"]);
    for event in &events {
        assert_eq!(event["type"], "event", "sync returns events in the push's shape: {event}");
    }

    // A receipt that moves nothing is no event; it answers when the marker last moved,
    // the time `sync` serves as of the event.
    let again = a.ok(json!({"op":"read","conversation_id":cid,"up_to_seq":3})).await;
    assert_eq!(
        events[4]["data"],
        json!({"conversation_id":cid,"user_id":alice.to_string(),"read_seq":3,"at":again["at"]})
    );
    let from_end = phone.ok(json!({"op":"sync","cursor":end})).await;
    assert_eq!(from_end["events"], json!([]));

    // After the gap, live pushes only, once.
    let fourth = a.ok(json!({"op":"send","conversation_id":cid,"body":"fourth"})).await;
    let pushed = phone.expect_event("message.created").await;
    assert_eq!(pushed["data"]["message"], fourth["message"]);
    let again = phone.ok(json!({"op":"sync","cursor":hello})).await;
    assert_eq!(again["events"], json!([]), "pushed events are not synced again");
    phone.expect_nothing(Duration::from_millis(200)).await;
}

async fn the_cursor_of_every_pushed_event_resumes(backend: Backend) {
    let Some(server) = Server::start(backend, Transport::default()).await else { return };
    let (alice, bob) = (UserId::new(), UserId::new());
    let mut a = server.connect(alice).await;
    let mut b = server.connect(bob).await;
    for i in 0..5 {
        a.ok(json!({"op":"send","peer":bob.to_string(),"body":format!("m{i}")})).await;
    }
    let mut pushed = Vec::new();
    b.expect_event("conversation.created").await;
    for _ in 0..5 {
        pushed.push(b.expect_event("message.created").await);
    }
    drop(b);
    let mut b = server.connect(bob).await;
    // From the cursor of each pushed event, sync returns exactly the events after it.
    for (i, event) in pushed.iter().enumerate() {
        let cursor = event["cursor"].as_str().unwrap().to_owned();
        let (events, _) = sync_all(&mut b, cursor, 500).await;
        let bodies: Vec<Value> =
            events.iter().map(|e| e["data"]["message"]["body"].clone()).collect();
        let expected: Vec<Value> = (i + 1..5).map(|j| json!(format!("m{j}"))).collect();
        assert_eq!(bodies, expected);
    }
}

on_every_store!(
    sync_after_a_disconnect_misses_nothing_and_repeats_nothing,
    the_cursor_of_every_pushed_event_resumes
);
