//! Input validation: empty and oversized bodies, U+0000 in every string, metadata shape and
//! size, context and `client_msg_id` sizes. Refused input stores nothing.

use serde_json::json;

use crate::SendMessage;
use crate::testkit::Fixture;
use crate::testkit::support::{Must, assert_code, list_query, log_of, open, two_users};

/// Empty or whitespace-only bodies → `bad_request`; a body of exactly 8192 bytes is
/// accepted, one byte more → `too_large`; nothing refused is stored.
pub async fn body_rules(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    let head = fx.store.head().await.must("head");
    for blank in ["", " ", "\n\t \r\n", "\u{3000}"] {
        assert_code(
            m.send(alice, SendMessage::to_conversation(c.id, blank)).await,
            "bad_request",
            &format!("blank body {blank:?}"),
        );
        assert_code(
            m.send(alice, SendMessage::to_peer(bob, None, blank)).await,
            "bad_request",
            "blank body to a peer",
        );
    }
    // 8192 bytes made of 2-, 3- and 4-byte characters: the limit counts UTF-8 bytes.
    let exact = format!("{}{}", "é".repeat(2048), "€𝄞".repeat(585)) + "a";
    assert_eq!(exact.len(), 8192);
    let over = format!("{exact}x");
    assert_code(
        m.send(alice, SendMessage::to_conversation(c.id, over.clone())).await,
        "too_large",
        "a body of 8193 bytes",
    );
    assert_eq!(fx.store.head().await.must("head"), head, "refused sends write nothing");
    let stored =
        m.send(alice, SendMessage::to_conversation(c.id, exact.clone())).await.must("8192").message;
    assert_eq!(stored.body, exact, "a body of exactly the limit is kept intact");
    assert_eq!(stored.seq, 1, "refused sends took no seq");
    assert_code(m.edit(alice, stored.id, "").await, "bad_request", "edit to empty");
    assert_code(m.edit(alice, stored.id, &over).await, "too_large", "edit over the limit");
    let back = fx.store.message(stored.id).await.must("message").expect("stored");
    assert_eq!(back.body, exact, "refused edits change nothing");
}

/// U+0000 is refused in a body, a context, a `client_msg_id`, a metadata key or nested
/// string, an edit and a search query → `bad_request`.
pub async fn nul_is_refused_everywhere(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    let sent = m.send(alice, SendMessage::to_conversation(c.id, "fine")).await.must("send").message;
    let to_c = |body: &str| SendMessage::to_conversation(c.id, body);
    let cases = [
        (to_c("a\0b"), "body"),
        (SendMessage::to_peer(bob, Some("ctx\0"), "x"), "context of send"),
        (to_c("x").client_msg_id("id\0"), "client_msg_id"),
        (to_c("x").metadata(json!({"k\u{0}": 1})), "metadata key"),
        (to_c("x").metadata(json!({"a": {"b": ["ok", "n\u{0}l"]}})), "nested metadata string"),
    ];
    for (message, what) in cases {
        assert_code(m.send(alice, message).await, "bad_request", what);
    }
    assert_code(m.open(alice, bob, Some("\0")).await, "bad_request", "context of open");
    assert_code(m.edit(alice, sent.id, "nul\0").await, "bad_request", "edit body");
    assert_code(m.search(alice, "fi\0ne", None, None).await, "bad_request", "search query");
    let stored = fx.store.conversation(c.id).await.must("conversation").expect("exists");
    assert_eq!(stored.last_seq, 1, "nothing refused was stored");
    assert_eq!(
        m.conversations(alice, list_query(None, None)).await.must("list").conversations.len(),
        1
    );
}

/// Metadata must be a JSON object (`bad_request` otherwise) of at most 4096 bytes
/// serialized (`too_large` above).
pub async fn metadata_rules(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    let with =
        |metadata: serde_json::Value| SendMessage::to_conversation(c.id, "body").metadata(metadata);
    for not_object in [json!([1, 2]), json!("text"), json!(3), json!(true), json!(null)] {
        assert_code(
            m.send(alice, with(not_object.clone())).await,
            "bad_request",
            &format!("{not_object}"),
        );
    }
    // {"k":"…"} is 8 bytes of syntax around the value.
    let exact = json!({"k": "v".repeat(4096 - 8)});
    assert_eq!(serde_json::to_vec(&exact).expect("json").len(), 4096);
    let over = json!({"k": "v".repeat(4096 - 7)});
    assert_code(m.send(alice, with(over)).await, "too_large", "metadata of 4097 bytes");
    let sent = m.send(alice, with(exact.clone())).await.must("metadata of 4096 bytes").message;
    assert_eq!(sent.metadata, Some(exact));
    assert_eq!(sent.seq, 1);
    let empty = m.send(alice, with(json!({}))).await.must("an empty object").message;
    assert_eq!(empty.metadata, Some(json!({})));
}

/// A context over 128 bytes and a `client_msg_id` over 64 bytes → `too_large`; exactly at
/// the limit they are accepted and read back intact.
pub async fn context_and_client_msg_id_limits(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let context = "ç".repeat(64);
    assert_eq!(context.len(), 128);
    let over = format!("{context}x");
    assert_code(m.open(alice, bob, Some(&over)).await, "too_large", "open, context 129 bytes");
    assert_code(
        m.send(alice, SendMessage::to_peer(bob, Some(&over), "x")).await,
        "too_large",
        "send, context 129 bytes",
    );
    assert!(log_of(fx.store.as_ref(), alice).await.is_empty(), "nothing was created");
    let c = m.open(alice, bob, Some(&context)).await.must("open, context 128 bytes").conversation;
    assert_eq!(c.context.as_deref(), Some(context.as_str()));

    let key = "k".repeat(64);
    assert_code(
        m.send(alice, SendMessage::to_conversation(c.id, "x").client_msg_id(format!("{key}k")))
            .await,
        "too_large",
        "client_msg_id of 65 bytes",
    );
    let sent = m
        .send(alice, SendMessage::to_conversation(c.id, "x").client_msg_id(key.clone()))
        .await
        .must("client_msg_id of 64 bytes")
        .message;
    assert_eq!(sent.client_msg_id.as_deref(), Some(key.as_str()));
    assert_eq!(sent.seq, 1);
}
