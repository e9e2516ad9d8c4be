//! History: keyset windows (latest, before, after), `has_more` in both directions,
//! parameter rules, windows deep in a long conversation, tombstones included.

use tokio::task::JoinSet;

use crate::UserId;
use crate::id::ConversationId;
use crate::testkit::Fixture;
use crate::testkit::support::{Must, assert_code, open, send_n, two_users};
use crate::{HistoryPage, HistoryQuery, Messenger, SendMessage};

async fn window(
    m: &Messenger,
    user: UserId,
    c: ConversationId,
    before_seq: Option<u64>,
    after_seq: Option<u64>,
    limit: usize,
) -> HistoryPage {
    m.history(user, c, HistoryQuery { before_seq, after_seq, limit: Some(limit) })
        .await
        .must("history")
}

/// An empty window.
const NONE: [u64; 0] = [];

#[track_caller]
fn assert_window(
    page: &HistoryPage,
    seqs: impl IntoIterator<Item = u64>,
    has_more: bool,
    what: &str,
) {
    let got: Vec<u64> = page.messages.iter().map(|m| m.seq).collect();
    let want: Vec<u64> = seqs.into_iter().collect();
    assert_eq!(got, want, "{what}: seqs");
    assert_eq!(page.has_more, has_more, "{what}: has_more");
}

/// Latest, `before_seq` and `after_seq` windows return the `limit` messages closest to the
/// anchor in ascending seq, and `has_more` says whether more exist beyond the window.
pub async fn history_windows(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    let empty = window(&m, alice, c.id, None, None, 10).await;
    assert_window(&empty, NONE, false, "empty conversation");
    let sent = send_n(&m, alice, c.id, 10, "m").await;
    let w = |b, a, l| window(&m, bob, c.id, b, a, l);
    assert_window(&w(None, None, 3).await, 8..=10, true, "latest 3");
    assert_window(&w(None, None, 10).await, 1..=10, false, "latest 10 of 10");
    assert_window(&w(None, None, 11).await, 1..=10, false, "latest 11 of 10");
    assert_window(&w(Some(5), None, 3).await, 2..=4, true, "before 5");
    assert_window(&w(Some(4), None, 3).await, 1..=3, false, "before 4 reaches the start");
    assert_window(&w(Some(1), None, 3).await, NONE, false, "before 1");
    assert_window(&w(Some(1000), None, 2).await, 9..=10, true, "before beyond the end");
    assert_window(&w(None, Some(6), 3).await, 7..=9, true, "after 6");
    assert_window(&w(None, Some(7), 3).await, 8..=10, false, "after 7 reaches the end");
    assert_window(&w(None, Some(10), 3).await, NONE, false, "after the last");
    assert_window(&w(None, Some(0), 4).await, 1..=4, true, "after 0");
    let page = m.history(alice, c.id, HistoryQuery::default()).await.must("default limit");
    assert_window(&page, 1..=10, false, "default limit (50)");
    assert_eq!(page.messages, sent, "history returns the messages as sent");
}

/// Both `before_seq` and `after_seq` → `bad_request`; `limit` outside 1–100 →
/// `bad_request` (never clamped); 1 and 100 are accepted.
pub async fn history_parameter_rules(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    send_n(&m, alice, c.id, 3, "m").await;
    let q = |before_seq, after_seq, limit| HistoryQuery { before_seq, after_seq, limit };
    assert_code(m.history(alice, c.id, q(Some(3), Some(1), None)).await, "bad_request", "both");
    assert_code(m.history(alice, c.id, q(None, None, Some(0))).await, "bad_request", "limit 0");
    assert_code(m.history(alice, c.id, q(None, None, Some(101))).await, "bad_request", "limit 101");
    let one = m.history(alice, c.id, q(None, None, Some(1))).await.must("limit 1");
    assert_window(&one, 3..=3, true, "limit 1");
    let hundred = m.history(alice, c.id, q(None, None, Some(100))).await.must("limit 100");
    assert_window(&hundred, 1..=3, false, "limit 100");
}

/// In a conversation of 2,000 messages, paging backwards from the latest visits every seq
/// once, and windows near the start and the end are exact, with `has_more` right at the
/// boundaries.
pub async fn history_at_depth(fx: Fixture) {
    const N: u64 = 2000;
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    let mut tasks = JoinSet::new();
    for t in 0..20 {
        let m = m.clone();
        tasks.spawn(async move {
            for i in 0..N / 20 {
                let sender = if i % 2 == 0 { alice } else { bob };
                m.send(sender, SendMessage::to_conversation(c.id, format!("t{t} m{i}")))
                    .await
                    .must("send");
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.expect("sender task");
    }
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = window(&m, alice, c.id, before, None, 100).await;
        let first = page.messages.first().map(|m| m.seq);
        let mut seqs: Vec<u64> = page.messages.iter().map(|m| m.seq).collect();
        seqs.extend(seen);
        seen = seqs;
        if !page.has_more {
            break;
        }
        before = first;
    }
    assert_eq!(seen, (1..=N).collect::<Vec<_>>(), "paging back visits every seq once");
    let w = |b, a, l| window(&m, bob, c.id, b, a, l);
    assert_window(&w(None, Some(0), 100).await, 1..=100, true, "first page");
    assert_window(&w(None, Some(5), 10).await, 6..=15, true, "near the start");
    assert_window(&w(Some(101), None, 100).await, 1..=100, false, "before 101");
    assert_window(&w(Some(102), None, 100).await, 2..=101, true, "before 102");
    assert_window(&w(Some(50), None, 10).await, 40..=49, true, "before 50");
    assert_window(&w(None, Some(1900), 100).await, 1901..=2000, false, "after 1900");
    assert_window(&w(None, Some(1899), 100).await, 1900..=1999, true, "after 1899");
    assert_window(&w(Some(2001), None, 100).await, 1901..=2000, true, "before 2001");
    assert_window(&w(None, None, 7).await, 1994..=2000, true, "latest");
    assert_window(&w(None, Some(1000), 3).await, 1001..=1003, true, "middle");
    assert_window(&w(Some(1000), None, 3).await, 997..=999, true, "middle");
}

/// Tombstones are part of history, in place, in every window.
pub async fn history_includes_tombstones(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    let sent = send_n(&m, alice, c.id, 5, "m").await;
    let tombstone = m.delete(alice, sent[2].id).await.must("delete");
    let last = m.delete(alice, sent[4].id).await.must("delete the last");
    for page in [
        window(&m, bob, c.id, None, None, 5).await,
        window(&m, bob, c.id, Some(6), None, 5).await,
        window(&m, bob, c.id, None, Some(0), 5).await,
    ] {
        assert_window(&page, 1..=5, false, "all five");
        assert_eq!(page.messages[2], tombstone);
        assert_eq!(page.messages[4], last);
        assert!(page.messages[2].deleted && page.messages[2].body.is_empty());
        assert_eq!(page.messages[3], sent[3]);
    }
    assert_window(
        &window(&m, bob, c.id, Some(4), None, 1).await,
        3..=3,
        true,
        "just the tombstone",
    );
}
