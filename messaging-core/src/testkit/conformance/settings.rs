//! A member's own settings (v1.1): mute (left out of unread totals until it passes, read
//! back as none afterwards), archive (a list of its own, sticky), `member.updated` to that
//! member only and only on a change; the `conversation` op and the `context` filter; the
//! list of blocked users.

use std::time::Duration;

use crate::model::{Event, MemberSettings};
use crate::testkit::Fixture;
use crate::testkit::support::{
    Must, after_millisecond, assert_code, events_named, list_query, log_of, open, send, settle,
    sync_all, two_users,
};
use crate::{ConversationId, ConversationsQuery, Cursor, Timestamp, UserId};

fn millis_from_now(ms: i64) -> Timestamp {
    Timestamp::from_millis(Timestamp::now().as_millis() + ms)
}

/// While muted, a conversation is left out of the member's unread totals (its own
/// `unread_count` unchanged) and reads `muted_until`; once the time passes it counts
/// again and reads none, with nothing emitted. A time not in the future is `bad_request`;
/// unmuting works; the peer sees nothing of it.
pub async fn mute_leaves_unread_totals_until_it_passes(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let carol = UserId::new();
    let c = open(&m, alice, bob, None).await;
    let d = open(&m, carol, bob, None).await;
    send(&m, alice, c.id, "one").await;
    send(&m, alice, c.id, "two").await;
    send(&m, carol, d.id, "hey").await;
    assert_eq!(m.unread(bob).await.must("unread").total, 3);

    let until = millis_from_now(60_000);
    let s = m.mute(bob, c.id, Some(until)).await.must("mute");
    assert_eq!((s.muted_until, s.unread_count), (Some(until), 2), "muted; its own count stays");
    let totals = m.unread(bob).await.must("unread");
    assert_eq!((totals.total, totals.conversations), (1, 1), "the muted one is left out");
    assert_eq!(m.conversation(alice, c.id).await.must("peer's view").muted_until, None);
    assert_eq!(m.unread(alice).await.must("unread").total, 0);
    let head = fx.store.head().await.must("head");
    m.mute(bob, c.id, Some(until)).await.must("the same mute");
    assert_eq!(fx.store.head().await.must("head"), head, "no change, no event");

    for past in [Timestamp::now(), millis_from_now(-1000)] {
        assert_code(m.mute(bob, c.id, Some(past)).await, "bad_request", "a time not ahead");
    }
    let s = m.mute(bob, c.id, None).await.must("unmute");
    assert_eq!(s.muted_until, None);
    assert_eq!(m.unread(bob).await.must("unread").total, 3);
    m.mute(bob, c.id, None).await.must("unmute again");
    assert_eq!(fx.store.head().await.must("head"), head + 1, "one event for the unmute only");

    let s = m.mute(bob, c.id, Some(millis_from_now(300))).await.must("a short mute");
    assert!(s.muted_until.is_some());
    assert_eq!(m.unread(bob).await.must("unread").total, 1);
    let head = fx.store.head().await.must("head");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(m.unread(bob).await.must("unread").total, 3, "counts again once passed");
    assert_eq!(m.conversation(bob, c.id).await.must("summary").muted_until, None);
    let list = m.conversations(bob, list_query(None, None)).await.must("list");
    assert!(list.conversations.iter().all(|s| s.muted_until.is_none()));
    assert_eq!(fx.store.head().await.must("head"), head, "nothing emitted at expiry");
    m.mute(bob, c.id, None).await.must("unmuting a passed mute");
    assert_eq!(fx.store.head().await.must("head"), head, "changes nothing");

    let stranger = UserId::new();
    assert_code(m.mute(stranger, c.id, None).await, "not_found", "not a member");
    assert_code(m.mute(bob, ConversationId::new(), None).await, "not_found", "unknown");
}

/// Archived conversations are listed only with `archived: true`, stay archived when
/// messages arrive, still count as unread, and come back when unarchived; the peer's list
/// is unaffected.
pub async fn archive_has_its_own_list_and_is_sticky(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let carol = UserId::new();
    let c = open(&m, alice, bob, None).await;
    let d = open(&m, carol, bob, None).await;
    let ids = |page: crate::ConversationsPage| -> Vec<ConversationId> {
        page.conversations.iter().map(|s| s.conversation.id).collect()
    };
    let archived_query = ConversationsQuery { archived: true, ..ConversationsQuery::default() };

    let s = m.archive(bob, c.id, true).await.must("archive");
    assert!(s.archived);
    assert_eq!(ids(m.conversations(bob, list_query(None, None)).await.must("list")), [d.id]);
    let archived = m.conversations(bob, archived_query.clone()).await.must("archived list");
    assert_eq!(ids(archived.clone()), [c.id]);
    assert!(archived.conversations[0].archived);
    assert_eq!(ids(m.conversations(alice, list_query(None, None)).await.must("peer")), [c.id]);

    after_millisecond(Timestamp::now()).await;
    send(&m, alice, c.id, "still there?").await;
    assert_eq!(ids(m.conversations(bob, archived_query.clone()).await.must("archived")), [c.id]);
    assert_eq!(m.unread(bob).await.must("unread").total, 1, "archived still counts");
    assert!(m.conversation(bob, c.id).await.must("summary").archived);

    let head = fx.store.head().await.must("head");
    m.archive(bob, c.id, true).await.must("archive again");
    assert_eq!(fx.store.head().await.must("head"), head, "no change, no event");
    m.archive(bob, c.id, false).await.must("unarchive");
    let list = ids(m.conversations(bob, list_query(None, None)).await.must("list"));
    assert_eq!(list, [c.id, d.id], "back, newest activity first");
    assert!(ids(m.conversations(bob, archived_query).await.must("archived")).is_empty());
}

/// `member.updated` carries that member's settings and goes to them only (the peer's log
/// has none); `sync` serves the member's current settings.
pub async fn member_updated_goes_to_that_member_only(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    let until = millis_from_now(3_600_000);
    m.mute(bob, c.id, Some(until)).await.must("mute");
    m.archive(bob, c.id, true).await.must("archive");
    let bobs = log_of(fx.store.as_ref(), bob).await;
    let updates = events_named(&bobs, "member.updated");
    assert_eq!(updates.len(), 2);
    let current = MemberSettings {
        conversation_id: c.id,
        user_id: bob,
        muted_until: Some(until),
        archived: true,
    };
    for update in &updates {
        assert_eq!(update.event, Event::MemberUpdated(current), "current settings");
    }
    let alices = log_of(fx.store.as_ref(), alice).await;
    assert!(events_named(&alices, "member.updated").is_empty(), "the peer never sees them");
    settle(&m).await;
    let session = m.connect(bob).await.must("connect");
    let (synced, _) = sync_all(&session, Cursor::at(0), 100).await;
    let synced: Vec<&Event> =
        synced.iter().filter(|e| e.event.name() == "member.updated").map(|e| &e.event).collect();
    assert_eq!(synced, [&Event::MemberUpdated(current), &Event::MemberUpdated(current)]);
}

/// `conversation` answers one summary as the list shows it (members only, `not_found`
/// otherwise); `conversations` with `context` lists exactly that context's (1 to
/// `max_context_bytes` bytes, else `bad_request` / `too_large`).
pub async fn conversation_op_and_context_filter(fx: Fixture) {
    let m = fx.messenger().await;
    let (buyer, seller) = two_users();
    let other_buyer = UserId::new();
    let a = open(&m, buyer, seller, Some("listing:1")).await;
    let b = open(&m, other_buyer, seller, Some("listing:1")).await;
    open(&m, buyer, seller, Some("listing:2")).await;
    open(&m, buyer, seller, None).await;
    after_millisecond(Timestamp::now()).await;
    send(&m, buyer, a.id, "is it available?").await;

    let one = m.conversation(seller, a.id).await.must("conversation");
    let list = m.conversations(seller, list_query(None, None)).await.must("list");
    assert_eq!(Some(&one), list.conversations.iter().find(|s| s.conversation.id == a.id));
    assert_eq!(one.unread_count, 1);
    assert_code(m.conversation(other_buyer, a.id).await, "not_found", "not a member");
    assert_code(m.conversation(seller, ConversationId::new()).await, "not_found", "unknown");

    let by_context = |user: UserId, context: &str| {
        let m = m.clone();
        let query = ConversationsQuery { context: Some(context.to_owned()), ..Default::default() };
        async move { m.conversations(user, query).await }
    };
    let page = by_context(seller, "listing:1").await.must("seller's listing:1");
    let ids: Vec<ConversationId> = page.conversations.iter().map(|s| s.conversation.id).collect();
    assert_eq!(ids, [a.id, b.id], "exactly that context, newest activity first");
    assert_eq!(by_context(buyer, "listing:1").await.must("buyer's").conversations.len(), 1);
    assert!(by_context(buyer, "listing:9").await.must("none").conversations.is_empty());
    assert_code(by_context(buyer, "").await, "bad_request", "an empty context");
    assert_code(by_context(buyer, &"x".repeat(129)).await, "too_large", "a long context");
}

/// `blocks` lists whom the caller blocks, ascending, paged by `after` with `has_more`;
/// page sizes outside 1–100 are `bad_request`.
pub async fn blocks_are_listed_in_order(fx: Fixture) {
    let m = fx.messenger().await;
    let me = UserId::new();
    let mut blocked: Vec<UserId> = (0..5).map(|_| UserId::new()).collect();
    for user in &blocked {
        m.block(me, *user).await.must("block");
    }
    m.block(blocked[0], me).await.must("someone blocks me: not in my list");
    blocked.sort_unstable();
    let first = m.blocks(me, Some(3), None).await.must("first page");
    assert_eq!((first.user_ids.as_slice(), first.has_more), (&blocked[..3], true));
    let rest = m.blocks(me, Some(3), first.user_ids.last().copied()).await.must("next page");
    assert_eq!((rest.user_ids.as_slice(), rest.has_more), (&blocked[3..], false));
    let all = m.blocks(me, None, None).await.must("default page");
    assert_eq!(all.user_ids, blocked);
    m.unblock(me, blocked[1]).await.must("unblock");
    assert_eq!(m.blocks(me, None, None).await.must("after unblock").user_ids.len(), 4);
    for limit in [0, 101] {
        assert_code(m.blocks(me, Some(limit), None).await, "bad_request", "page size");
    }
    assert!(m.blocks(UserId::new(), None, None).await.must("none").user_ids.is_empty());
}
