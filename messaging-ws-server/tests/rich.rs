//! The v1.1 operations and events end to end (docs/protocol.md "v1.1"): attachments and
//! replies on `send` (with `created`), `react` and its events, `mute` / `archive` and
//! `member.updated` to that member only, `conversation`, `conversations` by `archived` and
//! `context`, receipt times, `blocks`, and `sync` serving the new events.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

mod support;

use std::time::Duration;

use messaging_core::{Timestamp, UserId};
use messaging_ws_server::Transport;
use serde_json::{Value, json};
use support::{Backend, Server};

const QUIET: Duration = Duration::from_millis(150);

fn id(value: &Value) -> String {
    value.as_str().unwrap_or_else(|| panic!("not a string id: {value}")).to_owned()
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array().unwrap().iter().map(|s| id(&s["id"])).collect()
}

async fn rich_messages_and_reactions(backend: Backend) {
    let Some(server) = Server::start(backend, Transport::default()).await else { return };
    let (alice, bob) = (UserId::new(), UserId::new());
    let mut a = server.connect(alice).await;
    let mut b = server.connect(bob).await;
    let cid = id(&a.ok(json!({"op":"open","peer":bob.to_string()})).await["conversation"]["id"]);
    a.expect_event("conversation.created").await;
    b.expect_event("conversation.created").await;

    let photo = json!({"url":"https://cdn.example.com/p/1.jpg","mime":"image/jpeg",
                       "name":"bike.jpg","size":1234,"width":800,"height":600,"duration_ms":null});
    let sent = a
        .ok(json!({"op":"send","conversation_id":cid,"body":"","attachments":[photo],
                   "client_msg_id":"p-1"}))
        .await;
    assert_eq!(sent["created"], true);
    let message = sent["message"].clone();
    assert_eq!(message["attachments"], json!([photo]));
    assert_eq!((message["body"].clone(), message["kind"].clone()), (json!(""), json!("user")));
    for client in [&mut a, &mut b] {
        let pushed = client.expect_event("message.created").await;
        assert_eq!(pushed["data"]["message"], message);
    }
    let retry = a
        .ok(json!({"op":"send","conversation_id":cid,"body":"","attachments":[photo],
                   "client_msg_id":"p-1"}))
        .await;
    assert_eq!(
        (retry["created"].clone(), retry["message"].clone()),
        (json!(false), message.clone())
    );
    let minimal = json!({"url":"http://h.example/f.pdf","mime":"application/pdf"});
    let reply = b
        .ok(json!({"op":"send","conversation_id":cid,"body":"nice","reply_to_seq":1,
                   "attachments":[minimal]}))
        .await["message"]
        .clone();
    assert_eq!(reply["reply_to_seq"], 1);
    assert_eq!(
        reply["attachments"][0],
        json!({"url":"http://h.example/f.pdf","mime":"application/pdf","name":null,"size":null,
               "width":null,"height":null,"duration_ms":null}),
        "absent optional fields are null"
    );
    a.expect_event("message.created").await;
    b.expect_event("message.created").await;
    a.fails(json!({"op":"send","conversation_id":cid,"body":"x","reply_to_seq":9}), "not_found")
        .await;
    for bad in [
        json!({"op":"send","conversation_id":cid,"body":" "}),
        json!({"op":"send","conversation_id":cid,"body":"x","attachments":[{"url":"ftp://x/y","mime":"a/b"}]}),
        json!({"op":"send","conversation_id":cid,"body":"x","attachments":[{"url":"https://x/y"}]}),
        json!({"op":"send","conversation_id":cid,"body":"x","attachments":{"url":"https://x/y"}}),
        json!({"op":"send","conversation_id":cid,"body":"x","attachments":[{"url":"https://x/y","mime":"a/b","size":-1}]}),
        json!({"op":"send","conversation_id":cid,"body":"x","reply_to_seq":0}),
        json!({"op":"send","conversation_id":cid,"body":"x","reply_to_seq":"1"}),
    ] {
        a.fails(bad, "bad_request").await;
    }

    // react: both members get reaction.added / reaction.removed; a no-op emits nothing.
    let mid = message["id"].clone();
    let reacted = b.ok(json!({"op":"react","message_id":mid,"emoji":"👍","state":"added"})).await;
    assert_eq!(
        reacted["message"]["reactions"],
        json!([{"emoji":"👍","user_ids":[bob.to_string()]}])
    );
    for client in [&mut a, &mut b] {
        let event = client.expect_event("reaction.added").await;
        assert_eq!(event["data"]["user_id"], bob.to_string());
        assert_eq!(event["data"]["emoji"], "👍");
        assert_eq!(event["data"]["message"], reacted["message"]);
    }
    let again = b.ok(json!({"op":"react","message_id":mid,"emoji":"👍","state":"added"})).await;
    assert_eq!(again, reacted, "adding twice changes nothing");
    a.expect_nothing(QUIET).await;
    b.ok(json!({"op":"react","message_id":mid,"emoji":"👍","state":"removed"})).await;
    for client in [&mut a, &mut b] {
        let event = client.expect_event("reaction.removed").await;
        assert_eq!(event["data"]["message"]["reactions"], json!([]));
    }
    for bad in [
        json!({"op":"react","message_id":mid,"emoji":"👍","state":"maybe"}),
        json!({"op":"react","message_id":mid,"emoji":"","state":"added"}),
        json!({"op":"react","message_id":mid,"emoji":"a b","state":"added"}),
        json!({"op":"react","message_id":mid,"state":"added"}),
    ] {
        b.fails(bad, "bad_request").await;
    }
    let stranger = server.connect(UserId::new()).await;
    let mut stranger = stranger;
    stranger
        .fails(json!({"op":"react","message_id":mid,"emoji":"x","state":"added"}), "not_found")
        .await;
    a.ok(json!({"op":"delete","message_id":mid})).await;
    b.fails(json!({"op":"react","message_id":mid,"emoji":"x","state":"added"}), "conflict").await;

    // sync from the start serves every event, the message as it is now (a tombstone).
    let mut late = server.connect(bob).await;
    let synced = late.ok(json!({"op":"sync","cursor":"v10"})).await;
    let names: Vec<&str> =
        synced["events"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "conversation.created",
            "message.created",
            "message.created",
            "reaction.added",
            "reaction.removed",
            "message.deleted"
        ]
    );
    let added = &synced["events"][3]["data"];
    assert_eq!(
        (added["user_id"].clone(), added["emoji"].clone()),
        (json!(bob.to_string()), json!("👍"))
    );
    assert_eq!(added["message"]["deleted"], true, "the message as it is now");
    assert_eq!(added["message"]["attachments"], json!([]), "deleted attachments are never served");
}

async fn settings_lists_and_receipts(backend: Backend) {
    let Some(server) = Server::start(backend, Transport::default()).await else { return };
    let (alice, bob, carol) = (UserId::new(), UserId::new(), UserId::new());
    let mut a = server.connect(alice).await;
    let mut b = server.connect(bob).await;
    let first = b.ok(json!({"op":"open","peer":alice.to_string(),"context":"listing:1"})).await;
    let c1 = id(&first["conversation"]["id"]);
    let mut c = server.connect(carol).await;
    let c2 = id(
        &c.ok(json!({"op":"open","peer":bob.to_string(),"context":"listing:2"})).await["conversation"]
            ["id"],
    );
    a.ok(json!({"op":"send","conversation_id":c1,"body":"one"})).await;
    c.ok(json!({"op":"send","conversation_id":c2,"body":"two"})).await;
    assert_eq!(b.ok(json!({"op":"unread"})).await, json!({"total":2,"conversations":2}));
    for (client, events) in [
        (&mut a, &["conversation.created", "message.created"][..]),
        (
            &mut b,
            &["conversation.created", "conversation.created", "message.created", "message.created"],
        ),
        (&mut c, &["conversation.created", "message.created"]),
    ] {
        for name in events {
            client.expect_event(name).await;
        }
    }

    // mute: the reply is the summary; member.updated to bob's sessions only.
    let until = Timestamp::from_millis(Timestamp::now().as_millis() + 3_600_000).to_rfc3339();
    let muted = b.ok(json!({"op":"mute","conversation_id":c1,"until":until})).await;
    assert_eq!(muted["conversation"]["id"], c1);
    assert_eq!(muted["conversation"]["muted_until"], until);
    assert_eq!(muted["conversation"]["unread_count"], 1, "its own count is unchanged");
    let update = b.expect_event("member.updated").await;
    assert_eq!(
        update["data"],
        json!({"conversation_id":c1,"user_id":bob.to_string(),"muted_until":until,"archived":false})
    );
    a.expect_nothing(QUIET).await;
    assert_eq!(b.ok(json!({"op":"unread"})).await, json!({"total":1,"conversations":1}));
    b.ok(json!({"op":"mute","conversation_id":c1,"until":until})).await;
    b.expect_nothing(QUIET).await;
    for bad in [
        json!({"op":"mute","conversation_id":c1}),
        json!({"op":"mute","conversation_id":c1,"until":"2001-01-01T00:00:00.000Z"}),
        json!({"op":"mute","conversation_id":c1,"until":"tomorrow"}),
        json!({"op":"mute","conversation_id":c1,"until":5}),
    ] {
        b.fails(bad, "bad_request").await;
    }
    let unmuted = b.ok(json!({"op":"mute","conversation_id":c1,"until":null})).await;
    assert_eq!(unmuted["conversation"]["muted_until"], Value::Null);
    b.expect_event("member.updated").await;

    // archive: its own list; sticky; the conversation op.
    let archived = b.ok(json!({"op":"archive","conversation_id":c1,"archived":true})).await;
    assert_eq!(archived["conversation"]["archived"], true);
    assert_eq!(b.expect_event("member.updated").await["data"]["archived"], true);
    assert_eq!(
        ids(&b.ok(json!({"op":"conversations"})).await["conversations"]),
        std::slice::from_ref(&c2)
    );
    let only_archived = b.ok(json!({"op":"conversations","archived":true})).await;
    assert_eq!(ids(&only_archived["conversations"]), std::slice::from_ref(&c1));
    a.ok(json!({"op":"send","conversation_id":c1,"body":"still there?"})).await;
    let one = b.ok(json!({"op":"conversation","conversation_id":c1})).await;
    assert_eq!(
        (one["conversation"]["archived"].clone(), one["conversation"]["unread_count"].clone()),
        (json!(true), json!(2))
    );
    b.fails(json!({"op":"archive","conversation_id":c1}), "bad_request").await;
    b.fails(json!({"op":"archive","conversation_id":c1,"archived":"yes"}), "bad_request").await;
    c.fails(json!({"op":"conversation","conversation_id":c1}), "not_found").await;

    // conversations by context.
    let by_context = b.ok(json!({"op":"conversations","context":"listing:2"})).await;
    assert_eq!(ids(&by_context["conversations"]), std::slice::from_ref(&c2));
    let none = b.ok(json!({"op":"conversations","context":"listing:1"})).await;
    assert_eq!(
        ids(&none["conversations"]),
        Vec::<String>::new(),
        "archived ones need archived:true"
    );
    b.fails(json!({"op":"conversations","context":""}), "bad_request").await;
    b.fails(json!({"op":"conversations","archived":1}), "bad_request").await;

    // receipts carry `at`; the peer's summary shows when.
    let read = b.ok(json!({"op":"read","conversation_id":c2,"up_to_seq":1})).await;
    let at = read["at"].as_str().unwrap().to_owned();
    let pushed = c.expect_event("receipt.read").await;
    assert_eq!(pushed["data"]["at"], at.as_str());
    let seen_by_carol = c.ok(json!({"op":"conversation","conversation_id":c2})).await;
    assert_eq!(seen_by_carol["conversation"]["peer_read_at"], at.as_str());
    assert_eq!(seen_by_carol["conversation"]["peer_delivered_at"], Value::Null);
    assert_eq!(seen_by_carol["conversation"]["metadata"], Value::Null);

    // sync: member.updated with the member's settings as they are now, to that member
    // only; a receipt with its time as of the event.
    let mut late = server.connect(bob).await;
    let synced = late.ok(json!({"op":"sync","cursor":"v10"})).await;
    let events = synced["events"].as_array().unwrap();
    let updates: Vec<&Value> = events.iter().filter(|e| e["event"] == "member.updated").collect();
    assert_eq!(updates.len(), 3, "mute, unmute, archive");
    for update in updates {
        assert_eq!(
            update["data"],
            json!({"conversation_id":c1,"user_id":bob.to_string(),"muted_until":null,
                   "archived":true}),
            "the settings as they are now"
        );
    }
    let receipt = events.iter().find(|e| e["event"] == "receipt.read").unwrap();
    assert_eq!(receipt["data"]["at"], at.as_str());
    let carols = c.ok(json!({"op":"sync","cursor":"v10"})).await;
    assert!(
        !carols["events"].as_array().unwrap().iter().any(|e| e["event"] == "member.updated"),
        "bob's settings are his own"
    );

    // blocks.
    b.ok(json!({"op":"block","user_id":carol.to_string()})).await;
    b.ok(json!({"op":"block","user_id":alice.to_string()})).await;
    let blocks = b.ok(json!({"op":"blocks"})).await;
    let mut expected = vec![alice.to_string(), carol.to_string()];
    expected.sort();
    assert_eq!(blocks, json!({"user_ids":expected,"has_more":false}));
    let first_page = b.ok(json!({"op":"blocks","limit":1})).await;
    assert_eq!(first_page, json!({"user_ids":[expected[0]],"has_more":true}));
    let second = b.ok(json!({"op":"blocks","limit":1,"after":expected[0]})).await;
    assert_eq!(second, json!({"user_ids":[expected[1]],"has_more":false}));
    b.fails(json!({"op":"blocks","limit":0}), "bad_request").await;
    b.fails(json!({"op":"blocks","after":"nope"}), "bad_request").await;
    b.fails(
        json!({"op":"react","message_id":UserId::new().to_string(),"emoji":"x","state":"added"}),
        "not_found",
    )
    .await;
}

/// What the host does through the library's service handle reaches the users' sessions
/// with the v1.1 shapes: a system message (`sender_id` null, `kind` system), unread for
/// both; `conversation.updated` with the new metadata; a moderation delete; `sync` serving
/// the conversation's current metadata.
async fn the_hosts_service_handle_reaches_sessions(backend: Backend) {
    let Some(server) = Server::start(backend, Transport::default()).await else { return };
    let (ana, ben) = (UserId::new(), UserId::new());
    let mut a = server.connect(ana).await;
    let mut b = server.connect(ben).await;
    let service = server.messenger.service();
    let opened = service
        .open(ana, ben, Some("match:1"), Some(json!({"score": 0.9})))
        .await
        .expect("service open");
    let cid = opened.conversation.id.to_string();
    for client in [&mut a, &mut b] {
        let created = client.expect_event("conversation.created").await;
        assert_eq!(created["data"]["conversation"]["metadata"], json!({"score": 0.9}));
    }
    let post = messaging_core::SendMessage::to_conversation(opened.conversation.id, "You matched!");
    let system = service.post(post).await.expect("system message").message;
    for client in [&mut a, &mut b] {
        let pushed = client.expect_event("message.created").await;
        let message = &pushed["data"]["message"];
        assert_eq!(
            (message["sender_id"].clone(), message["kind"].clone()),
            (Value::Null, json!("system"))
        );
        assert_eq!(client.ok(json!({"op":"unread"})).await, json!({"total":1,"conversations":1}));
    }
    a.fails(json!({"op":"delete","message_id":system.id.to_string()}), "not_found").await;
    service
        .set_metadata(opened.conversation.id, Some(json!({"score": 1.0})))
        .await
        .expect("set metadata");
    for client in [&mut a, &mut b] {
        let updated = client.expect_event("conversation.updated").await;
        assert_eq!(updated["data"]["conversation"]["id"], cid.as_str());
        assert_eq!(updated["data"]["conversation"]["metadata"], json!({"score": 1.0}));
    }
    let hello =
        a.ok(json!({"op":"send","conversation_id":cid,"body":"hi"})).await["message"]["id"].clone();
    a.expect_event("message.created").await;
    b.expect_event("message.created").await;
    let message_id = hello.as_str().unwrap().parse().unwrap();
    service.delete_message(message_id).await.expect("moderation");
    for client in [&mut a, &mut b] {
        let deleted = client.expect_event("message.deleted").await;
        assert_eq!(deleted["data"]["message"]["deleted"], true);
    }
    // sync serves the conversation with its metadata as it is now, in both events.
    let mut late = server.connect(ana).await;
    let synced = late.ok(json!({"op":"sync","cursor":"v10"})).await;
    let conversations: Vec<&Value> = synced["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "conversation.created" || e["event"] == "conversation.updated")
        .collect();
    assert_eq!(conversations.len(), 2);
    for event in conversations {
        assert_eq!(event["data"]["conversation"]["metadata"], json!({"score": 1.0}));
    }
}

on_every_store!(
    rich_messages_and_reactions,
    settings_lists_and_receipts,
    the_hosts_service_handle_reaches_sessions
);
