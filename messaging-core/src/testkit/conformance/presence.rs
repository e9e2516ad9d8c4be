//! The `presence` op: visibility through shared conversations (a store query) and the
//! last-seen time the store keeps when a user's last session closes.

use crate::UserId;
use crate::testkit::Fixture;
use crate::testkit::support::{Must, assert_code, open, two_users};

/// `presence` answers only for users who share a conversation with the caller (others are
/// left out); `last_seen` is null while online and set once the last session closed; the
/// number of ids must be 1–100.
pub async fn presence_visibility_and_last_seen(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let (stranger, never) = two_users();
    let carol = UserId::new();
    open(&m, alice, bob, None).await;
    open(&m, alice, carol, None).await;
    open(&m, stranger, carol, None).await;
    assert_code(m.presence(alice, &[]).await, "bad_request", "no ids");
    let many: Vec<UserId> = (0..101).map(|_| UserId::new()).collect();
    assert_code(m.presence(alice, &many).await, "bad_request", "101 ids");
    m.presence(alice, &many[..100]).await.must("100 ids");

    let answer = m.presence(alice, &[bob, stranger, never, carol, bob]).await.must("presence");
    let users: Vec<UserId> = answer.iter().map(|p| p.user_id).collect();
    assert_eq!(users, [bob, carol], "only users sharing a conversation, in the order asked, once");
    assert!(answer.iter().all(|p| !p.online && p.last_seen.is_none()), "never seen yet");

    let first = m.connect(bob).await.must("connect");
    let second = m.connect(bob).await.must("connect again");
    let answer = m.presence(alice, &[bob]).await.must("presence");
    assert!(answer[0].online && answer[0].last_seen.is_none(), "online, last_seen null");
    first.close().await.must("close one session");
    let answer = m.presence(alice, &[bob]).await.must("presence");
    assert!(answer[0].online && answer[0].last_seen.is_none(), "still online with one session");
    second.close().await.must("close the last session");
    let answer = m.presence(alice, &[bob]).await.must("presence");
    assert!(!answer[0].online, "offline after the last session");
    let seen = answer[0].last_seen.expect("last_seen is set after the last session closed");
    let stored = fx.store.last_seen(&[bob, carol]).await.must("last_seen");
    assert_eq!(stored, vec![(bob, seen)], "the store keeps the last-seen time");

    let again = m.connect(bob).await.must("reconnect");
    let answer = m.presence(alice, &[bob]).await.must("presence");
    assert!(answer[0].online && answer[0].last_seen.is_none(), "online again: null");
    again.close().await.must("close");
    let later = m.presence(alice, &[bob]).await.must("presence")[0].last_seen.expect("set");
    assert!(later >= seen, "last_seen is replaced by the later close");
    assert!(m.presence(stranger, &[bob]).await.must("presence").is_empty(), "stranger");
}
