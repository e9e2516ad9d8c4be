//! Reactions (v1.1): the summary kept with the message (order of first reaction, users in
//! order, re-adds last), idempotent changes that emit nothing, the per-user bound, the
//! rules (members only, tombstones, blocks), events as of the reaction with the message
//! current, not activity, and no reaction lost under concurrency.

use crate::limits::Limits;
use crate::model::{Event, Reaction, ReactionState};
use crate::testkit::Fixture;
use crate::testkit::support::{
    Must, after_millisecond, assert_code, events_named, log_of, open, send, two_users,
};
use crate::{MessageId, UserId};

use ReactionState::{Added, Removed};

fn summary(entries: &[(&str, &[UserId])]) -> Vec<Reaction> {
    entries
        .iter()
        .map(|(emoji, users)| Reaction { emoji: (*emoji).to_owned(), user_ids: users.to_vec() })
        .collect()
}

/// Emoji in order of first reaction, users in order of reaction; adding what is there or
/// removing what is not changes nothing and writes no event; an emoji whose last user
/// goes disappears and comes back last; each change writes one `reaction.added` or
/// `reaction.removed` (user, emoji, message) for both members; reactions are not activity
/// and change no unread count.
pub async fn reactions_keep_their_order_and_idempotence(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    let message = send(&m, alice, c.id, "new bike").await;
    after_millisecond(message.created_at).await;
    let before = m.conversation(bob, c.id).await.must("summary");

    let r = m.react(bob, message.id, "👍", Added).await.must("bob 👍");
    assert_eq!(r.reactions, summary(&[("👍", &[bob])]));
    m.react(alice, message.id, "❤️", Added).await.must("alice ❤️");
    let r = m.react(alice, message.id, "👍", Added).await.must("alice 👍");
    assert_eq!(r.reactions, summary(&[("👍", &[bob, alice]), ("❤️", &[alice])]));
    let head = fx.store.head().await.must("head");
    let same = m.react(alice, message.id, "👍", Added).await.must("again");
    assert_eq!(same, r, "adding an existing reaction returns the message unchanged");
    let same = m.react(bob, message.id, "❤️", Removed).await.must("remove a missing one");
    assert_eq!(same, r);
    assert_eq!(fx.store.head().await.must("head"), head, "no-ops write no event");
    assert_ne!(
        m.react(alice, message.id, "❤", Added).await.must("❤ without VS16").reactions,
        r.reactions,
        "emoji compare byte for byte"
    );
    m.react(alice, message.id, "❤", Removed).await.must("take it back");

    let r = m.react(bob, message.id, "👍", Removed).await.must("bob takes 👍 back");
    assert_eq!(r.reactions, summary(&[("👍", &[alice]), ("❤️", &[alice])]));
    let r = m.react(bob, message.id, "👍", Added).await.must("bob again");
    assert_eq!(
        r.reactions,
        summary(&[("👍", &[alice, bob]), ("❤️", &[alice])]),
        "re-add goes last"
    );
    let r = m.react(alice, message.id, "❤️", Removed).await.must("last user of ❤️");
    assert_eq!(r.reactions, summary(&[("👍", &[alice, bob])]), "the emoji is gone");
    let r = m.react(alice, message.id, "❤️", Added).await.must("❤️ again");
    assert_eq!(r.reactions, summary(&[("👍", &[alice, bob]), ("❤️", &[alice])]), "and goes last");
    let stored = fx.store.message(message.id).await.must("read").expect("stored");
    assert_eq!(stored.reactions, r.reactions, "the store keeps the summary");
    let page = m.history(alice, c.id, crate::HistoryQuery::default()).await.must("history");
    assert_eq!(page.messages[0].reactions, r.reactions);

    let after = m.conversation(bob, c.id).await.must("summary");
    assert_eq!(
        after.conversation.last_message_at, before.conversation.last_message_at,
        "not activity"
    );
    assert_eq!((after.unread_count, after.read_seq), (before.unread_count, before.read_seq));
    assert_eq!(m.unread(alice).await.must("unread").total, 0, "reactions are not unread");

    for user in [alice, bob] {
        let log = log_of(fx.store.as_ref(), user).await;
        let changes: Vec<(UserId, String, ReactionState)> = log
            .iter()
            .filter_map(|e| match &e.event {
                Event::Reaction(r) => Some((r.user_id, r.emoji.clone(), r.state)),
                _ => None,
            })
            .collect();
        let expected = [
            (bob, "👍", Added),
            (alice, "❤️", Added),
            (alice, "👍", Added),
            (alice, "❤", Added),
            (alice, "❤", Removed),
            (bob, "👍", Removed),
            (bob, "👍", Added),
            (alice, "❤️", Removed),
            (alice, "❤️", Added),
        ];
        let expected: Vec<_> = expected.iter().map(|(u, e, s)| (*u, (*e).to_owned(), *s)).collect();
        assert_eq!(changes, expected, "one event per change, as of the change, for both");
        assert_eq!(events_named(&log, "reaction.added").len(), 6);
        for event in events_named(&log, "reaction.removed") {
            let Event::Reaction(r) = &event.event else { panic!("a reaction event") };
            assert_eq!(r.message.reactions, stored.reactions, "the message as it is now");
        }
    }
}

/// Members only (`not_found`), never on a tombstone (`conflict`), not while either
/// member blocks the other (`forbidden`), a bad emoji is `bad_request`; beyond
/// `max_reactions_per_user` distinct emoji of one user: `conflict`, others unaffected.
pub async fn reaction_rules_and_bound(fx: Fixture) {
    let m = fx
        .messenger_with(|b| b.limits(Limits { max_reactions_per_user: 3, ..Limits::default() }))
        .await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    let message = send(&m, alice, c.id, "hello").await;
    for emoji in ["a", "b", "c"] {
        m.react(bob, message.id, emoji, Added).await.must("within the bound");
    }
    assert_code(m.react(bob, message.id, "d", Added).await, "conflict", "a fourth emoji");
    m.react(bob, message.id, "a", Added).await.must("an existing one is no new emoji");
    m.react(alice, message.id, "d", Added).await.must("another user has their own bound");
    m.react(bob, message.id, "a", Removed).await.must("remove one");
    m.react(bob, message.id, "d", Added).await.must("room again");

    for bad in ["", "a b", "\u{7}", "x\u{0}"] {
        assert_code(m.react(bob, message.id, bad, Added).await, "bad_request", "bad emoji");
    }
    let long = "x".repeat(33);
    assert_code(m.react(bob, message.id, &long, Added).await, "too_large", "over 32 bytes");
    let stranger = UserId::new();
    assert_code(m.react(stranger, message.id, "a", Added).await, "not_found", "not a member");
    assert_code(m.react(bob, MessageId::new(), "a", Added).await, "not_found", "no message");
    m.block(bob, alice).await.must("block");
    assert_code(m.react(alice, message.id, "z", Added).await, "forbidden", "blocked");
    assert_code(m.react(bob, message.id, "z", Added).await, "forbidden", "blocker too");
    m.unblock(bob, alice).await.must("unblock");
    m.delete(alice, message.id).await.must("delete");
    assert_code(m.react(bob, message.id, "a", Added).await, "conflict", "a tombstone");
    assert_code(m.react(bob, message.id, "a", Removed).await, "conflict", "a tombstone");
}

/// Reactions to one message from both members at once, through two store objects on one
/// database when the store has them, are all kept: none lost, none doubled.
pub async fn concurrent_reactions_are_never_lost(fx: Fixture) {
    let m = fx.messenger().await;
    let peer = fx.peer_messenger().await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    let message = send(&m, alice, c.id, "react to me").await;
    let emoji: Vec<String> = (0..12).map(|i| format!("e{i}")).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, e) in emoji.iter().enumerate() {
        for (user, messenger) in [(alice, &m), (bob, &peer)] {
            let (messenger, e) = (messenger.clone(), e.clone());
            let state = if i % 4 == 3 { Removed } else { Added };
            tasks.spawn(async move {
                messenger.react(user, message.id, &e, Added).await.map(|_| ())?;
                if state == Removed {
                    messenger.react(user, message.id, &e, Removed).await.map(|_| ())?;
                }
                Ok::<(), crate::Error>(())
            });
        }
    }
    while let Some(joined) = tasks.join_next().await {
        joined.expect("task").must("concurrent reaction");
    }
    let stored = fx.store.message(message.id).await.must("read").expect("stored");
    let kept: Vec<&str> = stored.reactions.iter().map(|r| r.emoji.as_str()).collect();
    let expected: Vec<&str> =
        emoji.iter().enumerate().filter(|(i, _)| i % 4 != 3).map(|(_, e)| e.as_str()).collect();
    let mut sorted = kept.clone();
    sorted.sort_unstable();
    let mut expected_sorted = expected.clone();
    expected_sorted.sort_unstable();
    assert_eq!(sorted, expected_sorted, "every kept emoji, once");
    for reaction in &stored.reactions {
        let mut users = reaction.user_ids.clone();
        users.sort_unstable();
        let mut both = vec![alice, bob];
        both.sort_unstable();
        assert_eq!(users, both, "{}: both users, once each", reaction.emoji);
    }
    let log = log_of(fx.store.as_ref(), alice).await;
    assert_eq!(events_named(&log, "reaction.added").len(), 24, "one event per add");
    assert_eq!(events_named(&log, "reaction.removed").len(), 6, "one event per removal");
}
