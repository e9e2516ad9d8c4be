//! Blocks: `open`, `send` and `typing` forbidden in both directions while either user
//! blocks the other; reading and receipts unaffected; unblocking restores; self-blocks
//! refused.

use crate::model::TypingState;
use crate::testkit::Fixture;
use crate::testkit::support::{Must, assert_code, list_query, open, send, two_users};
use crate::{HistoryQuery, SendMessage};

/// While either user blocks the other, `open`, `send` (by conversation or by peer) and
/// `typing` → `forbidden`, in both directions; nothing is stored.
pub async fn block_forbids_open_send_typing_both_ways(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    send(&m, alice, c.id, "before the block").await;
    for (blocker, blocked) in [(alice, bob), (bob, alice)] {
        m.block(blocker, blocked).await.must("block");
        assert!(fx.store.is_blocked_between(alice, bob).await.must("is_blocked_between"));
        assert!(fx.store.is_blocked_between(bob, alice).await.must("is_blocked_between"));
        for (actor, peer) in [(alice, bob), (bob, alice)] {
            let what = format!("{actor} → {peer} while {blocker} blocks {blocked}");
            assert_code(m.open(actor, peer, None).await, "forbidden", &what);
            assert_code(m.open(actor, peer, Some("new context")).await, "forbidden", &what);
            assert_code(
                m.send(actor, SendMessage::to_conversation(c.id, "hi")).await,
                "forbidden",
                &what,
            );
            assert_code(
                m.send(actor, SendMessage::to_peer(peer, None, "hi")).await,
                "forbidden",
                &what,
            );
            assert_code(
                m.send(actor, SendMessage::to_peer(peer, Some("fresh"), "hi")).await,
                "forbidden",
                &what,
            );
            assert_code(m.typing(actor, c.id, TypingState::Started).await, "forbidden", &what);
        }
        m.block(blocker, blocked).await.must("blocking twice is not an error");
        m.unblock(blocker, blocked).await.must("unblock");
        assert!(!fx.store.is_blocked_between(alice, bob).await.must("is_blocked_between"));
    }
    let stored = fx.store.conversation(c.id).await.must("conversation").expect("exists");
    assert_eq!(stored.last_seq, 1, "nothing was sent while blocked");
    assert!(fx.store.find_direct(alice, bob, Some("fresh")).await.must("find").is_none());
    assert!(fx.store.find_direct(alice, bob, Some("new context")).await.must("find").is_none());
}

/// A block leaves `history`, `read`, `delivered`, `conversations`, `search` and `unread`
/// as they were, for both users.
pub async fn block_leaves_reading_alone(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    send(&m, alice, c.id, "hello there").await;
    send(&m, bob, c.id, "general kenobi").await;
    m.block(bob, alice).await.must("block");
    for user in [alice, bob] {
        let history = m.history(user, c.id, HistoryQuery::default()).await.must("history");
        assert_eq!(history.messages.len(), 2);
        assert_eq!(m.mark_delivered(user, c.id, 2).await.must("delivered").seq, 2);
        assert_eq!(m.mark_read(user, c.id, 2).await.must("read").seq, 2);
        let list = m.conversations(user, list_query(None, None)).await.must("list").conversations;
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].conversation.id, c.id);
        assert_eq!(m.search(user, "hello", None, None).await.must("search").len(), 1);
        assert_eq!(m.unread(user).await.must("unread").total, 0);
    }
}

/// Unblocking restores `open`, `send` and `typing`; unblocking without a block is not an
/// error; blocking or unblocking oneself → `bad_request`.
pub async fn unblock_restores_and_self_block_is_refused(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    assert_code(m.block(alice, alice).await, "bad_request", "block self");
    assert_code(m.unblock(alice, alice).await, "bad_request", "unblock self");
    m.unblock(alice, bob).await.must("unblocking without a block");
    m.block(alice, bob).await.must("block");
    m.block(bob, alice).await.must("block back");
    assert_code(m.open(alice, bob, None).await, "forbidden", "both block");
    m.unblock(alice, bob).await.must("unblock");
    assert_code(m.open(alice, bob, None).await, "forbidden", "bob still blocks alice");
    m.unblock(bob, alice).await.must("unblock");
    let opened = m.open(bob, alice, None).await.must("open after unblocking");
    assert!(opened.created);
    let c = opened.conversation;
    send(&m, alice, c.id, "we're fine").await;
    m.typing(bob, c.id, TypingState::Started).await.must("typing after unblocking");
    assert_eq!(
        m.send(bob, SendMessage::to_peer(alice, None, "good"))
            .await
            .must("send by peer")
            .message
            .seq,
        2
    );
}

/// While either user blocks the other, the sender's `edit` → `forbidden` (the message
/// keeps its body, no event) in both directions; `delete` still works.
pub async fn block_forbids_edit_but_not_delete(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    let first = send(&m, alice, c.id, "first").await;
    let second = send(&m, alice, c.id, "second").await;
    for (blocker, blocked) in [(alice, bob), (bob, alice)] {
        m.block(blocker, blocked).await.must("block");
        let head = fx.store.head().await.must("head");
        assert_code(m.edit(alice, first.id, "changed").await, "forbidden", "edit while blocked");
        assert_eq!(fx.store.head().await.must("head"), head, "a refused edit logs nothing");
        let stored = fx.store.message(first.id).await.must("message").expect("stored");
        assert_eq!(stored.body, "first");
        m.unblock(blocker, blocked).await.must("unblock");
    }
    m.block(bob, alice).await.must("block");
    let tombstone = m.delete(alice, second.id).await.must("delete while blocked");
    assert!(tombstone.deleted);
    m.unblock(bob, alice).await.must("unblock");
    m.edit(alice, first.id, "changed").await.must("edit after the unblock");
}
