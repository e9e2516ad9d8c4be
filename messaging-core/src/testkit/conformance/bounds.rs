//! Bounds one user cannot push past: reply pages cut by their encoded bytes (docs/protocol.md
//! v1.1 "Reply budget"), blocks per user, and the store's health probe.

use crate::limits::Limits;
use crate::testkit::Fixture;
use crate::testkit::support::{Must, assert_code, list_query, open, sync_all, two_users};
use crate::{Cursor, UserId};
use crate::{HistoryQuery, SendMessage};

/// A body of `n` × U+0001: `n` bytes stored, `6 n` bytes once JSON-escaped.
fn escaped_body(word: &str, n: usize) -> String {
    format!("{word} {}", "\u{1}".repeat(n))
}

/// Pages whose encoded items would pass `reply_budget_bytes` hold fewer items (at least
/// one), keep the items nearest their anchor and say there is more: `history` (newest
/// without an anchor and with `before_seq`, oldest with `after_seq`), `sync`,
/// `conversations` (`next` set) and `search` (the best); paging on reaches every item once.
pub async fn pages_are_cut_by_the_reply_budget(fx: Fixture) {
    let budget = 4096;
    let m =
        fx.messenger_with(|b| b.limits(Limits::default().with_reply_budget_bytes(budget))).await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    let mut sent = Vec::new();
    for i in 0..4 {
        // ~6 KiB each once escaped: more than the budget alone.
        let message = m
            .send(
                alice,
                SendMessage::to_conversation(c.id, escaped_body(&format!("needle{i}"), 1000)),
            )
            .await
            .must("send")
            .message;
        sent.push(message.seq);
    }
    // Connected after the sends: its `sync` reaches them (sync stops at the hello cursor).
    crate::testkit::support::settle(&m).await;
    let bobs = m.connect(bob).await.must("connect");

    let latest = m.history(bob, c.id, HistoryQuery::default()).await.must("history");
    assert_eq!(latest.messages.iter().map(|x| x.seq).collect::<Vec<_>>(), vec![4], "the newest");
    assert!(latest.has_more, "a cut page says there is more");
    let before = m
        .history(bob, c.id, HistoryQuery { before_seq: Some(4), ..Default::default() })
        .await
        .must("history before");
    assert_eq!(before.messages.iter().map(|x| x.seq).collect::<Vec<_>>(), vec![3]);
    assert!(before.has_more);
    let after = m
        .history(bob, c.id, HistoryQuery { after_seq: Some(0), ..Default::default() })
        .await
        .must("history after");
    assert_eq!(after.messages.iter().map(|x| x.seq).collect::<Vec<_>>(), vec![1], "the oldest");
    assert!(after.has_more);
    let mut seen = Vec::new();
    let mut anchor = 0;
    loop {
        let page = m
            .history(bob, c.id, HistoryQuery { after_seq: Some(anchor), ..Default::default() })
            .await
            .must("history paging");
        seen.extend(page.messages.iter().map(|x| x.seq));
        anchor = *seen.last().expect("a page holds at least one message");
        if !page.has_more {
            break;
        }
    }
    assert_eq!(seen, sent, "paging on the budget reaches every message once");

    let (events, _) = sync_all(&bobs, Cursor::at(0), 200).await;
    assert_eq!(events.len(), 5, "conversation.created and four messages, each once");
    let first = bobs.sync(Some(Cursor::at(0)), None).await.must("sync");
    assert!(first.has_more && first.events.len() < 5, "a cut sync page says there is more");

    let found = m.search(bob, "needle2", None, None).await.must("search");
    assert_eq!(found.len(), 1);
    for other in 0..3 {
        let carol = UserId::new();
        let c2 = open(&m, carol, bob, Some(&format!("other {other}"))).await;
        m.send(carol, SendMessage::to_conversation(c2.id, escaped_body("pad", 1000)))
            .await
            .must("send");
    }
    let mut listed = Vec::new();
    let mut before = None;
    loop {
        let page =
            m.conversations(bob, list_query(None, before.as_deref())).await.must("conversations");
        assert!(!page.conversations.is_empty(), "a page holds at least one conversation");
        assert!(page.conversations.len() < 4, "cut by the budget");
        listed.extend(page.conversations.iter().map(|s| s.conversation.id));
        match page.next {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    assert_eq!(listed.len(), 4, "every conversation once");

    let roomy = fx.messenger().await;
    let whole = roomy.history(bob, c.id, HistoryQuery::default()).await.must("history");
    assert_eq!(whole.messages.len(), 4, "the default budget holds them all");
    assert!(!whole.has_more);
}

/// A user may block at most `max_blocks_per_user` users: one more is `conflict` and
/// stores nothing; blocking someone already blocked at the limit is fine; an unblock makes
/// room again.
pub async fn blocks_per_user_are_bounded(fx: Fixture) {
    let m = fx.messenger_with(|b| b.limits(Limits::default().with_max_blocks_per_user(3))).await;
    let me = UserId::new();
    let others: Vec<UserId> = (0..5).map(|_| UserId::new()).collect();
    for other in &others[..3] {
        m.block(me, *other).await.must("block within the limit");
    }
    assert_code(m.block(me, others[3]).await, "conflict", "a block past the limit");
    assert!(!fx.store.is_blocked_between(me, others[3]).await.must("blocked?"), "not stored");
    m.block(me, others[0]).await.must("blocking again at the limit");
    m.block(others[4], me).await.must("others' blocks do not count against mine");
    m.unblock(me, others[0]).await.must("unblock");
    m.block(me, others[3]).await.must("room again after an unblock");
    assert!(fx.store.is_blocked_between(me, others[3]).await.must("blocked?"));
}

/// A probe commit goes through the store's write path and logs nothing; afterwards the
/// store reports a recent commit and the messenger reports it healthy.
pub async fn probe_commit_logs_nothing(fx: Fixture) {
    let m = fx.messenger().await;
    let head = fx.store.head().await.must("head");
    fx.store.probe_commit().await.must("probe commit");
    fx.store.probe_commit().await.must("a second probe commit");
    assert_eq!(fx.store.head().await.must("head"), head, "a probe logs no event");
    let at = fx.store.last_commit().expect("a commit was recorded");
    assert!(at.elapsed() < std::time::Duration::from_secs(60), "recorded on the monotonic clock");
    m.health(std::time::Duration::from_secs(5)).await.must("health");
    let (alice, bob) = two_users();
    open(&m, alice, bob, None).await;
    let after = fx.store.last_commit().expect("a commit was recorded");
    assert!(after >= at, "every commit moves last_commit");
}
