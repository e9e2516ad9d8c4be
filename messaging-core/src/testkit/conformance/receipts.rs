//! Read and delivered markers (forward only, clamped, an event only when they move,
//! independent of each other, untouched by sending) and unread counts.

use crate::SendMessage;
use crate::model::{Event, Receipt, ReceiptKind};
use crate::testkit::Fixture;
use crate::testkit::support::{
    Must, after_millisecond, events_named, list_query, log_of, open, send, send_n, two_users,
};
use crate::{Timestamp, UnreadTotals, UserId};

/// Markers only move forward: a lower or equal value returns the current one and writes
/// no event; a value above `last_seq` is clamped; each move writes one `receipt.read`
/// event carrying the new value.
pub async fn receipts_only_move_forward(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    let head = fx.store.head().await.must("head");
    let r = m.mark_read(bob, c.id, 5).await.must("read on an empty conversation");
    assert_eq!(r.seq, 0, "clamped to last_seq 0");
    assert_eq!(fx.store.head().await.must("head"), head, "a marker that did not move: no event");

    send_n(&m, alice, c.id, 3, "m").await;
    let before = Timestamp::now();
    let read2 = m.mark_read(bob, c.id, 2).await.must("read 2");
    assert_eq!(
        (read2.conversation_id, read2.user_id, read2.kind, read2.seq),
        (c.id, bob, ReceiptKind::Read, 2)
    );
    assert!(read2.at >= before && read2.at <= Timestamp::now(), "at is when it moved");
    after_millisecond(read2.at).await;
    for (up_to, what) in [(1, "never backwards"), (2, "read 2 again"), (0, "read 0")] {
        let again = m.mark_read(bob, c.id, up_to).await.must(what);
        assert_eq!(again, read2, "{what}: the marker and when it last moved");
    }
    let read3 = m.mark_read(bob, c.id, 10).await.must("read 10");
    assert_eq!(read3.seq, 3, "clamped");
    assert!(read3.at > read2.at, "a move takes a new time");
    assert_eq!(m.mark_read(bob, c.id, u64::MAX).await.must("read max"), read3);

    for user in [alice, bob] {
        let log = log_of(fx.store.as_ref(), user).await;
        let reads: Vec<&Event> =
            events_named(&log, "receipt.read").iter().map(|e| &e.event).collect();
        assert_eq!(
            reads,
            [&Event::Receipt(read2), &Event::Receipt(read3)],
            "one event per move, seen by both members, each with its own time"
        );
        assert!(events_named(&log, "receipt.delivered").is_empty());
    }
    let list = m.conversations(bob, list_query(None, None)).await.must("list").conversations;
    assert_eq!(list[0].read_seq, 3);
    assert_eq!(list[0].peer_read_at, None, "alice never read");
    let list = m.conversations(alice, list_query(None, None)).await.must("list").conversations;
    assert_eq!((list[0].peer_read_seq, list[0].peer_read_at), (3, Some(read3.at)));
    assert_eq!(list[0].peer_delivered_at, None);
}

/// `read` and `delivered` are separate markers, each with its own event, each seen by the
/// peer in the conversation list.
pub async fn read_and_delivered_are_independent(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    send_n(&m, alice, c.id, 4, "m").await;
    let delivered = m.mark_delivered(bob, c.id, 4).await.must("delivered");
    assert_eq!((delivered.kind, delivered.seq), (ReceiptKind::Delivered, 4));
    let delivered_at = delivered.at;
    let read = m.mark_read(bob, c.id, 1).await.must("read");
    assert_eq!((read.kind, read.seq), (ReceiptKind::Read, 1), "read did not follow delivered");
    let delivered = m.mark_delivered(bob, c.id, 2).await.must("delivered lower");
    assert_eq!(delivered.seq, 4, "delivered did not follow read back");

    let list = m.conversations(alice, list_query(None, None)).await.must("list").conversations;
    assert_eq!((list[0].peer_read_seq, list[0].peer_delivered_seq), (1, 4));
    assert_eq!(
        (list[0].peer_read_at, list[0].peer_delivered_at),
        (Some(read.at), Some(delivered_at))
    );
    assert_eq!(list[0].read_seq, 0, "alice's own marker did not move");
    let list = m.conversations(bob, list_query(None, None)).await.must("list").conversations;
    assert_eq!((list[0].read_seq, list[0].unread_count), (1, 3));
    assert_eq!((list[0].peer_read_seq, list[0].peer_delivered_seq), (0, 0));

    let log = log_of(fx.store.as_ref(), alice).await;
    let names: Vec<&str> =
        log.iter().map(|e| e.event.name()).filter(|n| n.starts_with("receipt")).collect();
    assert_eq!(names, ["receipt.delivered", "receipt.read"]);
    let delivered = events_named(&log, "receipt.delivered");
    assert_eq!(
        delivered[0].event,
        Event::Receipt(Receipt {
            conversation_id: c.id,
            user_id: bob,
            kind: ReceiptKind::Delivered,
            seq: 4,
            at: delivered_at,
        })
    );
}

/// Sending moves no marker, neither the sender's nor the peer's, and writes no receipt
/// event; own messages are never unread.
pub async fn sending_moves_no_marker(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    send_n(&m, alice, c.id, 3, "m").await;
    send(&m, bob, c.id, "reply").await;
    for (user, unread) in [(alice, 1), (bob, 3)] {
        let list = m.conversations(user, list_query(None, None)).await.must("list").conversations;
        let s = &list[0];
        assert_eq!(
            (s.read_seq, s.peer_read_seq, s.peer_delivered_seq),
            (0, 0, 0),
            "no marker moved"
        );
        assert_eq!(s.unread_count, unread, "only the peer's messages are unread");
        let log = log_of(fx.store.as_ref(), user).await;
        assert!(log.iter().all(|e| !e.event.name().starts_with("receipt")), "no receipt event");
    }
}

/// Unread counts: per conversation in the list and in total; tombstones and own messages
/// excluded; `conversations` counts conversations with unread messages.
pub async fn unread_counts(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let carol = UserId::new();
    assert_eq!(m.unread(bob).await.must("unread"), UnreadTotals { total: 0, conversations: 0 });
    let with_alice = open(&m, alice, bob, None).await;
    let with_carol = open(&m, carol, bob, None).await;
    let quiet = open(&m, bob, UserId::new(), None).await;
    let from_alice = send_n(&m, alice, with_alice.id, 4, "a").await;
    send_n(&m, carol, with_carol.id, 2, "c").await;
    send_n(&m, bob, with_carol.id, 2, "own").await;
    send(&m, bob, quiet.id, "nobody answers").await;
    assert_eq!(m.unread(bob).await.must("unread"), UnreadTotals { total: 6, conversations: 2 });

    m.delete(alice, from_alice[3].id).await.must("delete");
    m.delete(alice, from_alice[0].id).await.must("delete");
    assert_eq!(
        m.unread(bob).await.must("unread"),
        UnreadTotals { total: 4, conversations: 2 },
        "tombstones are not unread"
    );
    m.mark_read(bob, with_carol.id, 100).await.must("read all of carol's");
    assert_eq!(m.unread(bob).await.must("unread"), UnreadTotals { total: 2, conversations: 1 });
    let list = m.conversations(bob, list_query(None, None)).await.must("list").conversations;
    let count = |id| list.iter().find(|s| s.conversation.id == id).map(|s| s.unread_count);
    assert_eq!(count(with_alice.id), Some(2));
    assert_eq!(count(with_carol.id), Some(0));
    assert_eq!(count(quiet.id), Some(0));
    let total: u64 = list.iter().map(|s| s.unread_count).sum();
    assert_eq!(total, 2, "the list agrees with the totals");

    m.mark_read(bob, with_alice.id, 2).await.must("read 2");
    assert_eq!(m.unread(bob).await.must("unread"), UnreadTotals { total: 1, conversations: 1 });
    m.send(alice, SendMessage::to_conversation(with_alice.id, "more")).await.must("send");
    assert_eq!(m.unread(bob).await.must("unread"), UnreadTotals { total: 2, conversations: 1 });
    assert_eq!(m.unread(alice).await.must("unread"), UnreadTotals::default(), "own messages");
    assert_eq!(m.unread(carol).await.must("unread"), UnreadTotals { total: 2, conversations: 1 });
}
