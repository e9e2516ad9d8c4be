//! Every operation of docs/protocol.md: its success shape, and every error it lists.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

mod support;

use messaging_core::{Limits, UserId};
use messaging_ws_server::Transport;
use serde_json::{Value, json};
use support::{Backend, Server};

fn id(value: &Value) -> String {
    value.as_str().unwrap_or_else(|| panic!("not a string id: {value}")).to_owned()
}

/// RFC 3339 UTC with milliseconds: `2026-11-22T01:15:48.120Z`.
fn is_timestamp(value: &Value) -> bool {
    value.as_str().is_some_and(|s| {
        s.len() == 24 && s.ends_with('Z') && s.as_bytes()[10] == b'T' && s.as_bytes()[19] == b'.'
    })
}

async fn every_operation_succeeds(backend: Backend) {
    let Some(server) = Server::start(backend, Transport::default()).await else { return };
    let (alice, bob) = (UserId::new(), UserId::new());
    let mut a = server.connect(alice).await;
    let mut b = server.connect(bob).await;
    assert_eq!(a.user(), alice.to_string());
    assert_eq!(a.hello["heartbeat_s"], 25);
    assert_eq!(
        a.hello["limits"],
        json!({"max_frame_bytes":65536,"max_body_bytes":8192,"ops_per_s":100,"ops_burst":200,
               "max_queue_frames":1024,"answer_timeout_ms":5000,"reply_budget_bytes":1048576,
               "max_queue_bytes":4194304,"max_sessions_per_user":32,"search_per_s":5,
               "search_burst":20})
    );

    // open
    let opened = a.ok(json!({"op":"open","peer":bob.to_string(),"context":"listing:42"})).await;
    assert_eq!(opened["created"], true);
    let conversation = &opened["conversation"];
    let cid = id(&conversation["id"]);
    assert_eq!(conversation["kind"], "direct");
    assert_eq!(conversation["context"], "listing:42");
    let mut members = vec![alice.to_string(), bob.to_string()];
    members.sort();
    assert_eq!(conversation["members"], json!(members));
    assert!(is_timestamp(&conversation["created_at"]), "{conversation}");
    assert_eq!(conversation["last_message_at"], Value::Null);
    assert_eq!(conversation["last_seq"], 0);
    let again = b.ok(json!({"op":"open","peer":alice.to_string(),"context":"listing:42"})).await;
    assert_eq!(
        (again["created"].clone(), id(&again["conversation"]["id"])),
        (json!(false), cid.clone())
    );
    let other_context = a.ok(json!({"op":"open","peer":bob.to_string()})).await;
    assert_eq!(other_context["created"], true, "another context is another conversation");
    assert_eq!(other_context["conversation"]["context"], Value::Null);

    // send (with key and metadata), its retry, send by peer
    let first = a
        .ok(json!({"op":"send","conversation_id":cid,"body":"Is it available?",
                   "client_msg_id":"c-1","metadata":{"offer":{"price":10}}}))
        .await["message"]
        .clone();
    assert_eq!(first["seq"], 1);
    assert_eq!((first["kind"].clone(), first["attachments"].clone()), (json!("user"), json!([])));
    assert_eq!(
        (first["reply_to_seq"].clone(), first["reactions"].clone()),
        (Value::Null, json!([]))
    );
    assert_eq!(first["conversation_id"], cid.as_str());
    assert_eq!(first["sender_id"], alice.to_string());
    assert_eq!(first["body"], "Is it available?");
    assert_eq!(first["metadata"], json!({"offer":{"price":10}}));
    assert_eq!(first["client_msg_id"], "c-1");
    assert_eq!((first["edited_at"].clone(), first["deleted"].clone()), (Value::Null, json!(false)));
    assert!(is_timestamp(&first["created_at"]), "{first}");
    let retry = a
        .ok(json!({"op":"send","conversation_id":cid,"body":"another body","client_msg_id":"c-1"}))
        .await;
    assert_eq!(retry["message"], first, "a retry returns the original");
    assert_eq!(retry["created"], false, "and says it created nothing");
    let second = a
        .ok(json!({"op":"send","peer":bob.to_string(),"context":"listing:42","body":"Still there?"}))
        .await["message"]
        .clone();
    assert_eq!((second["seq"].clone(), id(&second["conversation_id"])), (json!(2), cid.clone()));
    let reply =
        b.ok(json!({"op":"send","conversation_id":cid,"body":"Yes!"})).await["message"].clone();
    assert_eq!(reply["seq"], 3);

    // history
    let all = b.ok(json!({"op":"history","conversation_id":cid})).await;
    let seqs: Vec<_> =
        all["messages"].as_array().unwrap().iter().map(|m| m["seq"].clone()).collect();
    assert_eq!((seqs, all["has_more"].clone()), (vec![json!(1), json!(2), json!(3)], json!(false)));
    let latest = b.ok(json!({"op":"history","conversation_id":cid,"limit":1})).await;
    assert_eq!(
        (latest["messages"][0]["seq"].clone(), latest["has_more"].clone()),
        (json!(3), json!(true))
    );
    let before = b.ok(json!({"op":"history","conversation_id":cid,"before_seq":3,"limit":1})).await;
    assert_eq!(
        (before["messages"][0]["seq"].clone(), before["has_more"].clone()),
        (json!(2), json!(true))
    );
    let after = b.ok(json!({"op":"history","conversation_id":cid,"after_seq":1,"limit":5})).await;
    assert_eq!(after["messages"].as_array().unwrap().len(), 2);
    assert_eq!(after["has_more"], false);

    // conversations
    let list = b.ok(json!({"op":"conversations"})).await;
    assert_eq!(list["next"], Value::Null);
    let summaries = list["conversations"].as_array().unwrap();
    assert_eq!(summaries.len(), 2);
    let top = &summaries[0];
    assert_eq!(id(&top["id"]), cid, "the conversation with the latest message comes first");
    assert_eq!(top["last_message"]["seq"], 3);
    assert_eq!(top["last_seq"], 3);
    assert_eq!(top["unread_count"], 2, "Alice's two messages; Bob's own do not count");
    assert_eq!((top["read_seq"].clone(), top["peer_read_seq"].clone()), (json!(0), json!(0)));
    assert_eq!(top["peer_delivered_seq"], 0);
    let paged = b.ok(json!({"op":"conversations","limit":1})).await;
    let next = paged["next"].as_str().expect("a next cursor").to_owned();
    let rest = b.ok(json!({"op":"conversations","limit":1,"before":next})).await;
    assert_eq!(rest["conversations"][0]["context"], Value::Null);
    assert_eq!(rest["next"], Value::Null);

    // read and delivered: forward only, clamped
    let mut read = b.ok(json!({"op":"read","conversation_id":cid,"up_to_seq":1})).await;
    assert!(is_timestamp(&read["at"]), "{read}");
    read.as_object_mut().unwrap().remove("at");
    assert_eq!(read, json!({"conversation_id":cid,"user_id":bob.to_string(),"read_seq":1}));
    let clamped = b.ok(json!({"op":"read","conversation_id":cid,"up_to_seq":99})).await;
    assert_eq!(clamped["read_seq"], 3);
    let lower = b.ok(json!({"op":"read","conversation_id":cid,"up_to_seq":2})).await;
    assert_eq!(lower["read_seq"], 3, "markers never move back");
    let mut delivered = a.ok(json!({"op":"delivered","conversation_id":cid,"up_to_seq":3})).await;
    assert!(is_timestamp(&delivered["at"]), "{delivered}");
    delivered.as_object_mut().unwrap().remove("at");
    assert_eq!(
        delivered,
        json!({"conversation_id":cid,"user_id":alice.to_string(),"delivered_seq":3})
    );

    // edit and delete
    let edited = a
        .ok(json!({"op":"edit","message_id":first["id"],"body":"Is it still available?"}))
        .await["message"]
        .clone();
    assert_eq!(edited["body"], "Is it still available?");
    assert!(is_timestamp(&edited["edited_at"]), "{edited}");
    let tombstone = a.ok(json!({"op":"delete","message_id":first["id"]})).await["message"].clone();
    assert_eq!(
        (tombstone["deleted"].clone(), tombstone["body"].clone(), tombstone["metadata"].clone()),
        (json!(true), json!(""), Value::Null)
    );
    let twice = a.ok(json!({"op":"delete","message_id":first["id"]})).await;
    assert_eq!(twice["message"], tombstone);
    let retried =
        a.ok(json!({"op":"send","conversation_id":cid,"body":"x","client_msg_id":"c-1"})).await;
    assert_eq!(retried["message"], tombstone, "a retry of a deleted message returns the tombstone");

    // typing, sync, search, unread, presence, block, unblock, ping
    assert_eq!(
        a.ok(json!({"op":"typing","conversation_id":cid,"state":"started"})).await,
        json!({})
    );
    assert_eq!(
        a.ok(json!({"op":"typing","conversation_id":cid,"state":"stopped"})).await,
        json!({})
    );
    let synced = a.ok(json!({"op":"sync"})).await;
    assert_eq!(synced, json!({"events":[],"cursor":a.cursor(),"has_more":false}));
    let from_hello = a.ok(json!({"op":"sync","cursor":a.cursor()})).await;
    assert_eq!(from_hello["events"], json!([]), "later events are pushed, not synced");
    let found = b.ok(json!({"op":"search","query":"STILL there"})).await;
    let found: Vec<_> =
        found["messages"].as_array().unwrap().iter().map(|m| m["seq"].clone()).collect();
    assert_eq!(found, vec![json!(2)], "words match case-insensitively; the tombstone never");
    let scoped = b.ok(json!({"op":"search","query":"yes","conversation_id":cid,"limit":5})).await;
    assert_eq!(scoped["messages"][0]["seq"], 3);
    assert_eq!(b.ok(json!({"op":"unread"})).await, json!({"total":0,"conversations":0}));
    assert_eq!(a.ok(json!({"op":"unread"})).await, json!({"total":1,"conversations":1}));
    let presence = a.ok(json!({"op":"presence","user_ids":[bob.to_string()]})).await;
    assert_eq!(
        presence,
        json!({"presence":[{"user_id":bob.to_string(),"online":true,"last_seen":null}]})
    );
    assert_eq!(a.ok(json!({"op":"block","user_id":bob.to_string()})).await, json!({}));
    assert_eq!(a.ok(json!({"op":"unblock","user_id":bob.to_string()})).await, json!({}));
    assert_eq!(a.ok(json!({"op":"ping"})).await, json!({}));
    assert_eq!(a.ok(json!({"id":"text id","op":"ping"})).await, json!({}));
}

async fn every_listed_error(backend: Backend) {
    let Some(server) = Server::start(backend, Transport::default()).await else { return };
    let (alice, bob, carol) = (UserId::new(), UserId::new(), UserId::new());
    let mut a = server.connect(alice).await;
    let mut b = server.connect(bob).await;
    let mut c = server.connect(carol).await;
    let cid = id(&a.ok(json!({"op":"open","peer":bob.to_string()})).await["conversation"]["id"]);
    let message =
        a.ok(json!({"op":"send","conversation_id":cid,"body":"hi"})).await["message"].clone();
    let nowhere = uuid::Uuid::now_v7().to_string();

    // open / send
    a.fails(json!({"op":"open","peer":alice.to_string()}), "bad_request").await;
    a.fails(json!({"op":"send","peer":alice.to_string(),"body":"me"}), "bad_request").await;
    a.fails(json!({"op":"open","peer":"not-a-uuid"}), "bad_request").await;
    a.fails(json!({"op":"open","peer":bob.to_string(),"context":"x".repeat(129)}), "too_large")
        .await;
    a.fails(json!({"op":"send","conversation_id":cid,"body":""}), "bad_request").await;
    a.fails(json!({"op":"send","conversation_id":cid,"body":" \n\t "}), "bad_request").await;
    a.fails(json!({"op":"send","conversation_id":cid,"body":"a\u{0}b"}), "bad_request").await;
    a.fails(json!({"op":"send","conversation_id":cid,"body":"x".repeat(8193)}), "too_large").await;
    a.ok(json!({"op":"send","conversation_id":cid,"body":"é".repeat(4096)})).await;
    a.fails(
        json!({"op":"send","conversation_id":cid,"body":"k","client_msg_id":"k".repeat(65)}),
        "too_large",
    )
    .await;
    a.fails(
        json!({"op":"send","conversation_id":cid,"body":"m","metadata":{"k":"v".repeat(4100)}}),
        "too_large",
    )
    .await;
    a.fails(json!({"op":"send","conversation_id":cid,"body":"m","metadata":"text"}), "bad_request")
        .await;
    a.fails(json!({"op":"send","body":"nowhere"}), "bad_request").await;
    a.fails(json!({"op":"send","conversation_id":nowhere,"body":"x"}), "not_found").await;
    c.fails(json!({"op":"send","conversation_id":cid,"body":"intruder"}), "not_found").await;

    // history
    c.fails(json!({"op":"history","conversation_id":cid}), "not_found").await;
    a.fails(json!({"op":"history","conversation_id":nowhere}), "not_found").await;
    a.fails(
        json!({"op":"history","conversation_id":cid,"before_seq":2,"after_seq":1}),
        "bad_request",
    )
    .await;
    for limit in [json!(0), json!(101), json!(-1), json!(1.5), json!("5")] {
        a.fails(json!({"op":"history","conversation_id":cid,"limit":limit}), "bad_request").await;
    }

    // conversations
    a.fails(json!({"op":"conversations","limit":101}), "bad_request").await;
    a.fails(json!({"op":"conversations","before":"garbage"}), "bad_request").await;

    // read / delivered
    c.fails(json!({"op":"read","conversation_id":cid,"up_to_seq":1}), "not_found").await;
    a.fails(json!({"op":"read","conversation_id":cid}), "bad_request").await;
    a.fails(json!({"op":"delivered","conversation_id":cid,"up_to_seq":-1}), "bad_request").await;

    // edit / delete
    b.fails(json!({"op":"edit","message_id":message["id"],"body":"not mine"}), "not_found").await;
    c.fails(json!({"op":"edit","message_id":message["id"],"body":"not mine"}), "not_found").await;
    b.fails(json!({"op":"delete","message_id":message["id"]}), "not_found").await;
    a.fails(json!({"op":"edit","message_id":nowhere,"body":"x"}), "not_found").await;
    a.ok(json!({"op":"delete","message_id":message["id"]})).await;
    a.fails(json!({"op":"edit","message_id":message["id"],"body":"again"}), "conflict").await;

    // typing
    a.fails(json!({"op":"typing","conversation_id":cid,"state":"maybe"}), "bad_request").await;
    c.fails(json!({"op":"typing","conversation_id":cid,"state":"started"}), "not_found").await;

    // blocks: open, send and typing forbidden both ways; reads unaffected
    b.ok(json!({"op":"block","user_id":alice.to_string()})).await;
    a.fails(json!({"op":"send","conversation_id":cid,"body":"hello?"}), "forbidden").await;
    b.fails(json!({"op":"send","conversation_id":cid,"body":"hello?"}), "forbidden").await;
    a.fails(json!({"op":"open","peer":bob.to_string(),"context":"new"}), "forbidden").await;
    a.fails(json!({"op":"typing","conversation_id":cid,"state":"started"}), "forbidden").await;
    a.ok(json!({"op":"history","conversation_id":cid})).await;
    a.ok(json!({"op":"read","conversation_id":cid,"up_to_seq":1})).await;
    a.ok(json!({"op":"conversations"})).await;
    b.ok(json!({"op":"unblock","user_id":alice.to_string()})).await;
    a.ok(json!({"op":"send","conversation_id":cid,"body":"unblocked"})).await;

    // sync
    a.fails(json!({"op":"sync","cursor":"v1ffffffff"}), "bad_request").await;
    a.fails(json!({"op":"sync","cursor":"not a cursor"}), "bad_request").await;
    a.fails(json!({"op":"sync","cursor":a.cursor(),"limit":501}), "bad_request").await;
    a.fails(json!({"op":"sync","cursor":a.cursor(),"limit":0}), "bad_request").await;

    // search
    a.fails(json!({"op":"search","query":""}), "bad_request").await;
    a.fails(json!({"op":"search","query":"x".repeat(257)}), "too_large").await;
    a.fails(json!({"op":"search","query":"hi","limit":51}), "bad_request").await;
    c.fails(json!({"op":"search","query":"hi","conversation_id":cid}), "not_found").await;
    let odd = a.ok(json!({"op":"search","query":"\"* -AND OR NEAR("})).await;
    assert!(odd["messages"].is_array(), "operators are plain words, never an error");

    // presence
    a.fails(json!({"op":"presence","user_ids":[]}), "bad_request").await;
    let many: Vec<String> = (0..101).map(|_| UserId::new().to_string()).collect();
    a.fails(json!({"op":"presence","user_ids":many}), "bad_request").await;
    a.fails(json!({"op":"presence","user_ids":["nope"]}), "bad_request").await;
    let strangers = a.ok(json!({"op":"presence","user_ids":[carol.to_string()]})).await;
    assert_eq!(strangers, json!({"presence":[]}), "only users sharing a conversation are answered");

    // block
    a.fails(json!({"op":"block","user_id":"nope"}), "bad_request").await;

    // unknown op, missing op, mistyped parameters
    a.fails(json!({"op":"fly"}), "bad_request").await;
    a.fails(json!({"op":42}), "bad_request").await;
    a.fails(json!({"op":"history","conversation_id":7}), "bad_request").await;
}

async fn limits_come_from_the_settings(backend: Backend) {
    let limits = Limits::default().with_max_body_bytes(16);
    let transport = Transport::default().max_frame_bytes(4096);
    let Some(server) = Server::start_with(backend, transport, limits).await else { return };
    let (alice, bob) = (UserId::new(), UserId::new());
    let mut a = server.connect(alice).await;
    assert_eq!(a.hello["limits"]["max_body_bytes"], 16);
    assert_eq!(a.hello["limits"]["max_frame_bytes"], 4096);
    a.ok(json!({"op":"send","peer":bob.to_string(),"body":"sixteen bytes!!!"})).await;
    a.fails(json!({"op":"send","peer":bob.to_string(),"body":"seventeen bytes!!"}), "too_large")
        .await;
}

on_every_store!(every_operation_succeeds, every_listed_error, limits_come_from_the_settings);
