//! The conversation list: ordered by last activity (new messages only), keyset paging with
//! `next` null exactly at the end, the summary fields, parameter rules.

use crate::Messenger;
use crate::id::ConversationId;
use crate::testkit::Fixture;
use crate::testkit::support::{
    Must, after_millisecond, assert_code, list_query, open, send, two_users,
};
use crate::{Conversation, UserId};

async fn ids(m: &Messenger, user: UserId) -> Vec<ConversationId> {
    let page = m.conversations(user, list_query(Some(100), None)).await.must("conversations");
    page.conversations.iter().map(|s| s.conversation.id).collect()
}

/// Opens `n` conversations of `user` with fresh peers, each created in a later millisecond
/// than the previous one; returns them oldest first.
async fn open_many(m: &Messenger, user: UserId, n: usize) -> Vec<Conversation> {
    let mut opened: Vec<Conversation> = Vec::new();
    for _ in 0..n {
        if let Some(previous) = opened.last() {
            after_millisecond(previous.created_at).await;
        }
        opened.push(open(m, user, UserId::new(), None).await);
    }
    opened
}

/// Newest activity first: creation time without messages, else the latest message; a new
/// message moves a conversation to the top, edits and deletes do not.
pub async fn conversations_ordered_by_activity(fx: Fixture) {
    let m = fx.messenger().await;
    let alice = UserId::new();
    let cs = open_many(&m, alice, 3).await;
    let [c1, c2, c3] = [cs[0].id, cs[1].id, cs[2].id];
    assert_eq!(ids(&m, alice).await, [c3, c2, c1], "by creation");

    after_millisecond(cs[2].created_at).await;
    let in_c1 = send(&m, alice, c1, "bump").await;
    assert_eq!(ids(&m, alice).await, [c1, c3, c2], "a new message moves c1 to the top");

    after_millisecond(in_c1.created_at).await;
    let peer2 = cs[1].peer_of(alice).expect("peer");
    let in_c2 = send(&m, peer2, c2, "from the peer").await;
    assert_eq!(ids(&m, alice).await, [c2, c1, c3], "a message from the peer counts too");
    assert_eq!(ids(&m, peer2).await, [c2]);

    after_millisecond(in_c2.created_at).await;
    m.edit(alice, in_c1.id, "edited").await.must("edit");
    assert_eq!(ids(&m, alice).await, [c2, c1, c3], "an edit is not activity");
    m.delete(alice, in_c1.id).await.must("delete");
    assert_eq!(ids(&m, alice).await, [c2, c1, c3], "a delete is not activity");
    m.mark_read(alice, c2, 1).await.must("read");
    assert_eq!(ids(&m, alice).await, [c2, c1, c3], "a receipt is not activity");

    let list = m.conversations(alice, list_query(None, None)).await.must("list").conversations;
    assert_eq!(list[1].conversation.last_message_at, Some(in_c1.created_at));
}

/// Paging with `next` visits every conversation once in order; `next` is null exactly
/// when nothing follows (also when the last page is exactly full); other users'
/// conversations never appear.
pub async fn conversations_paging(fx: Fixture) {
    let m = fx.messenger().await;
    let alice = UserId::new();
    let (carol, dave) = two_users();
    open(&m, carol, dave, None).await;
    let opened = open_many(&m, alice, 7).await;
    let newest_first: Vec<ConversationId> = opened.iter().rev().map(|c| c.id).collect();

    for limit in [1, 2, 3, 6, 7, 8, 20] {
        let mut seen = Vec::new();
        let mut before: Option<String> = None;
        let mut pages = 0;
        loop {
            let page = m
                .conversations(alice, list_query(Some(limit), before.as_deref()))
                .await
                .must("page");
            pages += 1;
            assert!(page.conversations.len() <= limit);
            seen.extend(page.conversations.iter().map(|s| s.conversation.id));
            match page.next {
                Some(next) => {
                    assert_eq!(page.conversations.len(), limit, "a page with next is full");
                    assert!(seen.len() < 7, "limit {limit}: next after the last conversation");
                    before = Some(next);
                }
                None => break,
            }
            assert!(pages <= 8, "paging does not end");
        }
        assert_eq!(seen, newest_first, "limit {limit}: every conversation once, in order");
        assert_eq!(
            pages,
            7_usize.div_ceil(limit).max(1),
            "limit {limit}: next is null exactly at the end"
        );
    }
    let page = m.conversations(alice, list_query(None, None)).await.must("default limit");
    assert_eq!(page.conversations.len(), 7);
    assert_eq!(page.next, None);
    let empty =
        m.conversations(UserId::new(), list_query(None, None)).await.must("a user without any");
    assert!(empty.conversations.is_empty() && empty.next.is_none());
}

/// `limit` outside 1–100 → `bad_request`; a `before` that was never issued →
/// `bad_request`.
pub async fn conversations_parameter_rules(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    open(&m, alice, bob, None).await;
    assert_code(m.conversations(alice, list_query(Some(0), None)).await, "bad_request", "limit 0");
    assert_code(
        m.conversations(alice, list_query(Some(101), None)).await,
        "bad_request",
        "limit 101",
    );
    assert_eq!(
        m.conversations(alice, list_query(Some(100), None))
            .await
            .must("limit 100")
            .conversations
            .len(),
        1
    );
    for bad in ["", "garbage", "p1", "v1a", "p1zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"] {
        assert_code(
            m.conversations(alice, list_query(None, Some(bad))).await,
            "bad_request",
            &format!("before {bad:?}"),
        );
    }
}

/// Each summary carries the conversation, its last message (a tombstone included), the
/// viewer's unread count and read marker, and the peer's read and delivered markers.
pub async fn conversation_summary_fields(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, Some("order:9")).await;
    let list = m.conversations(alice, list_query(None, None)).await.must("list").conversations;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].conversation, c, "the conversation as opened");
    assert_eq!(list[0].last_message, None);
    assert_eq!(
        (list[0].unread_count, list[0].read_seq, list[0].peer_read_seq, list[0].peer_delivered_seq),
        (0, 0, 0, 0)
    );

    send(&m, alice, c.id, "one").await;
    send(&m, bob, c.id, "two").await;
    let three = send(&m, alice, c.id, "three").await;
    m.mark_delivered(bob, c.id, 3).await.must("delivered");
    m.mark_read(bob, c.id, 1).await.must("read");
    m.mark_read(alice, c.id, 2).await.must("read");

    let bobs = &m.conversations(bob, list_query(None, None)).await.must("list").conversations[0];
    assert_eq!(bobs.last_message.as_ref(), Some(&three));
    assert_eq!(bobs.conversation.last_seq, 3);
    assert_eq!(bobs.conversation.last_message_at, Some(three.created_at));
    assert_eq!(bobs.conversation.context.as_deref(), Some("order:9"));
    assert_eq!((bobs.unread_count, bobs.read_seq), (1, 1), "bob has read 1 of alice's 2");
    assert_eq!((bobs.peer_read_seq, bobs.peer_delivered_seq), (2, 0), "alice's markers");
    let alices =
        &m.conversations(alice, list_query(None, None)).await.must("list").conversations[0];
    assert_eq!((alices.unread_count, alices.read_seq), (0, 2));
    assert_eq!((alices.peer_read_seq, alices.peer_delivered_seq), (1, 3), "bob's markers");

    let tombstone = m.delete(alice, three.id).await.must("delete");
    let bobs = &m.conversations(bob, list_query(None, None)).await.must("list").conversations[0];
    assert_eq!(bobs.last_message.as_ref(), Some(&tombstone), "the last message may be a tombstone");
    assert_eq!(bobs.unread_count, 0, "the deleted message is no longer unread");
}
