//! Revoked tokens (v1.1 service API): the store keeps each user's revocation time, never
//! moving it backwards and across reopening; `token_accepted` refuses tokens issued at or
//! before the revocation's second, or without `iat`; the `revoked` signal reaches the
//! user's own sessions and nobody else's; another store object on the same database sees
//! the revocation.

use std::time::Duration;

use crate::fanout::Push;
use crate::model::Signal;
use crate::testkit::support::{Must, next_push, open, pushes_until_message, send, two_users};
use crate::testkit::{Fixture, PUSH_TIMEOUT};
use crate::{Session, Timestamp, UserId};

/// `revoke` keeps the later of the stored time and the new one (an earlier time changes
/// nothing and is no error), touches no other user, logs no event, and the time survives
/// reopening the store (when the store can be reopened).
pub async fn revocations_persist_and_never_move_backwards(fx: Fixture) {
    let (alice, bob) = two_users();
    let store = fx.store.clone();
    let head = store.head().await.must("head");
    assert_eq!(store.revoked_at(alice).await.must("revoked_at"), None, "never revoked");
    let (early, at, later) =
        (Timestamp::from_millis(1_000_000), Timestamp::from_millis(2_000_500), Timestamp::now());
    store.revoke(alice, at).await.must("revoke");
    assert_eq!(store.revoked_at(alice).await.must("revoked_at"), Some(at));
    store.revoke(alice, early).await.must("an earlier revocation is no error");
    assert_eq!(store.revoked_at(alice).await.must("revoked_at"), Some(at), "never backwards");
    store.revoke(alice, at).await.must("the same time again");
    assert_eq!(store.revoked_at(alice).await.must("revoked_at"), Some(at));
    assert_eq!(store.revoked_at(bob).await.must("revoked_at"), None, "others untouched");
    store.revoke(bob, early).await.must("revoke bob");
    assert_eq!(store.revoked_at(bob).await.must("revoked_at"), Some(early));
    assert_eq!(store.revoked_at(alice).await.must("revoked_at"), Some(at), "each their own");
    store.revoke(alice, later).await.must("a later revocation");
    assert_eq!(store.revoked_at(alice).await.must("revoked_at"), Some(later), "moves forward");
    assert_eq!(store.head().await.must("head"), head, "a revocation logs no event");

    let Some(reopened) = fx.reopen().await else { return };
    assert_eq!(reopened.revoked_at(alice).await.must("after reopening"), Some(later));
    assert_eq!(reopened.revoked_at(bob).await.must("after reopening"), Some(early));
    assert_eq!(reopened.revoked_at(UserId::new()).await.must("after reopening"), None);
    reopened.revoke(alice, at).await.must("an earlier revocation after reopening");
    assert_eq!(reopened.revoked_at(alice).await.must("revoked_at"), Some(later));
}

/// `token_accepted`: every token while the user has no revocation; after one, refused
/// without `iat` or with an `iat` at or before the revocation's second (floored), accepted
/// from the next second; other users unaffected. `ServiceHandle::revoke` stores now and
/// returns it.
pub async fn token_accepted_follows_the_revocations_second(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    for iat in [None, Some(0), Some(i64::MAX), Some(i64::MIN)] {
        assert!(m.token_accepted(alice, iat).await.must("token_accepted"), "no revocation");
    }
    let before = Timestamp::now();
    let at = m.service().revoke(alice).await.must("revoke");
    assert!(at >= before && at <= Timestamp::now(), "revoked now: {at:?}");
    assert_eq!(fx.store.revoked_at(alice).await.must("revoked_at"), Some(at), "as stored");
    let second = at.as_millis().div_euclid(1000);
    let accepted = |iat| {
        let m = m.clone();
        async move { m.token_accepted(alice, iat).await.must("token_accepted") }
    };
    assert!(!accepted(None).await, "no iat");
    assert!(!accepted(Some(second - 1)).await, "issued before");
    assert!(!accepted(Some(second)).await, "issued in the revocation's second");
    assert!(accepted(Some(second + 1)).await, "issued in a later second");
    assert!(m.token_accepted(bob, None).await.must("bob"), "other users unaffected");

    // Whole seconds, floored: a revocation at x.500 s refuses x, accepts x + 1.
    let carol = UserId::new();
    fx.store.revoke(carol, Timestamp::from_millis(1_700_000_000_500)).await.must("revoke");
    for (iat, expected) in [(1_699_999_999, false), (1_700_000_000, false), (1_700_000_001, true)] {
        let got = m.token_accepted(carol, Some(iat)).await.must("token_accepted");
        assert_eq!(got, expected, "iat {iat} against a revocation at 1700000000.500");
    }
}

/// The next `revoked` signal pushed to `session`, skipping other pushes (presence).
async fn next_revoked(session: &mut Session, what: &str) -> UserId {
    loop {
        if let Push::Signal(signal) = next_push(session, what).await
            && let Signal::Revoked { user_id } = signal.get()
        {
            return *user_id;
        }
    }
}

/// A revocation pushes `revoked` (naming the user) to every session of that user, and to
/// no session of anyone else.
pub async fn revocation_signal_reaches_the_users_sessions_only(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    assert_eq!(Signal::Revoked { user_id: alice }.name(), "revoked");
    let c = open(&m, alice, bob, None).await;
    let mut alice_one = m.connect(alice).await.must("connect");
    let mut alice_two = m.connect(alice).await.must("connect again");
    let mut bobs = m.connect(bob).await.must("connect bob");
    m.service().revoke(alice).await.must("revoke");
    for session in [&mut alice_one, &mut alice_two] {
        assert_eq!(next_revoked(session, "alice's sessions").await, alice);
    }
    // A barrier: the revocation's signal was queued before `revoke` returned, so anything
    // bob was sent by it is in his queue before this message.
    let barrier = send(&m, alice, c.id, "after the revocation").await;
    for push in pushes_until_message(&mut bobs, barrier.id, "bob's session").await {
        if let Push::Signal(signal) = push {
            assert!(
                !matches!(signal.get(), Signal::Revoked { .. }),
                "bob received alice's revocation"
            );
        }
    }
}

/// A revocation made through one store object is seen by another on the same database
/// (another instance, when the store has one), within the time of a notification, and
/// that instance's messenger then refuses the revoked tokens.
pub async fn revocations_are_seen_through_another_store_object(fx: Fixture) {
    let m = fx.messenger().await;
    // Building it starts the peer's listener (on stores that have one).
    let there = fx.peer_messenger().await;
    let peer = fx.peer_store.clone().unwrap_or_else(|| fx.store.clone());
    let (alice, bob) = two_users();
    // Asked before the revocation, so a store that keeps answers has one to forget.
    for _ in 0..3 {
        assert_eq!(peer.revoked_at(alice).await.must("revoked_at"), None);
        assert!(there.token_accepted(alice, None).await.must("token_accepted"));
    }
    let at = m.service().revoke(alice).await.must("revoke");
    let deadline = tokio::time::Instant::now() + PUSH_TIMEOUT;
    loop {
        match peer.revoked_at(alice).await.must("revoked_at") {
            Some(seen) => {
                assert_eq!(seen, at, "the time stored");
                break;
            }
            None if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            None => panic!("the other store object did not see the revocation in time"),
        }
    }
    let second = at.as_millis().div_euclid(1000);
    assert!(!there.token_accepted(alice, Some(second)).await.must("token_accepted"));
    assert!(there.token_accepted(alice, Some(second + 1)).await.must("token_accepted"));
    assert_eq!(peer.revoked_at(bob).await.must("revoked_at"), None, "bob untouched");
}
