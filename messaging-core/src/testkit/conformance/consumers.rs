//! Durable consumers (the library side of webhooks): `read_log` serves every event with
//! its actor, its recipients and their mutes, and a delete's removed attachments; a named
//! consumer reads the log in order from its stored position, at least once, across
//! batches, restarts and reopening; commits never move backwards; one holder at a time,
//! another taking over once the lease expired or was released.

use std::time::Duration;

use uuid::Uuid;

use crate::consumer::ConsumerStart;
use crate::id::UserId;
use crate::model::{Attachment, LogEntry, ReactionState};
use crate::store::Store;
use crate::testkit::Fixture;
use crate::testkit::support::{Must, assert_code, open, send, send_n, two_users};
use crate::{Consumer, ConsumerOptions, Error, Messenger, SendMessage, Timestamp};

/// Long enough for a consumer's next batch to arrive (a commit's feed, or the second's
/// poll), short enough to fail a test that waits for nothing.
const BATCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The next batch of `consumer`, failing after [`BATCH_TIMEOUT`].
async fn next(consumer: &mut Consumer, what: &str) -> Vec<LogEntry> {
    match tokio::time::timeout(BATCH_TIMEOUT, consumer.next_batch()).await {
        Ok(batch) => {
            let batch = batch.must(what);
            assert!(!batch.is_empty(), "{what}: a batch is never empty");
            batch
        }
        Err(_) => panic!("{what}: no batch within {BATCH_TIMEOUT:?}"),
    }
}

/// Asserts that `consumer` gets no batch within `wait` (nothing to read, or it cannot
/// hold the consumer).
async fn no_batch(consumer: &mut Consumer, wait: Duration, what: &str) {
    if let Ok(batch) = tokio::time::timeout(wait, consumer.next_batch()).await {
        panic!("{what}: expected no batch, got {:?}", batch.map(|b| positions(&b)));
    }
}

fn positions(entries: &[LogEntry]) -> Vec<u64> {
    entries.iter().map(LogEntry::position).collect()
}

/// Reads batches from `consumer` and commits each, until it has committed `up_to`;
/// returns every position read, in order.
async fn consume_to(consumer: &mut Consumer, up_to: u64, what: &str) -> Vec<u64> {
    let mut read = Vec::new();
    while consumer.position() < up_to {
        let batch = next(consumer, what).await;
        read.extend(positions(&batch));
        let last = batch.last().map_or(0, LogEntry::position);
        consumer.commit(last).await.must(what);
    }
    read
}

fn file(name: &str) -> Attachment {
    Attachment {
        name: Some(name.to_owned()),
        ..Attachment::new(format!("https://f/{name}"), "a/b")
    }
}

fn beginning() -> ConsumerOptions {
    ConsumerOptions::default().start(ConsumerStart::Beginning)
}

/// Every event of the log, whatever its audience, with a batch size large enough for a
/// case's whole log.
async fn whole_log(store: &dyn Store) -> Vec<LogEntry> {
    let head = store.head().await.must("head");
    store.read_log(0, head, 1000).await.must("read_log")
}

/// `read_log` serves every event in order with its actor (the user who caused it, `None`
/// for the host's calls), its audience in order with each recipient's mute as stored, and
/// for a delete the attachments the message had; each event as `read_events` serves it to
/// its recipients; bounded by `after`, `up_to` and `limit`.
pub async fn read_log_names_actors_recipients_and_removed_files(fx: Fixture) {
    let m = fx.messenger().await;
    let service = m.service();
    let (alice, bob) = two_users();
    let (carol, dave) = two_users();
    let c = open(&m, alice, bob, None).await;
    let hi = send(&m, alice, c.id, "hi").await;
    service.post(SendMessage::to_conversation(c.id, "Order shipped")).await.must("post");
    m.edit(alice, hi.id, "hi there").await.must("edit");
    let files = vec![file("a.png"), file("b.pdf")];
    let mut with_files = SendMessage::to_conversation(c.id, "");
    for f in &files {
        with_files = with_files.attachment(f.clone());
    }
    let bobs = m.send(bob, with_files).await.must("send files").message;
    m.delete(bob, bobs.id).await.must("delete own");
    let reported = SendMessage::to_conversation(c.id, "spam").attachment(file("c.gif"));
    let reported = m.send(alice, reported).await.must("send").message;
    service.delete_message(reported.id).await.must("moderation delete");
    m.mark_read(bob, c.id, 4).await.must("read");
    m.mark_delivered(bob, c.id, 4).await.must("delivered");
    m.react(alice, hi.id, "👍", ReactionState::Added).await.must("react");
    let until = Timestamp::from_millis(Timestamp::now().as_millis() + 3_600_000);
    m.mute(bob, c.id, Some(until)).await.must("mute");
    service.set_metadata(c.id, Some(serde_json::json!({"order": 7}))).await.must("metadata");
    let d = service.open(carol, dave, Some("match"), None).await.must("service open");
    assert_eq!(service.delete_user_messages(alice).await.must("account deletion"), 1);

    let log = whole_log(fx.store.as_ref()).await;
    assert_eq!(positions(&log), (1..=15).collect::<Vec<u64>>(), "every event, in order");
    let expected: [(&str, Option<UserId>); 15] = [
        ("conversation.created", Some(alice)),
        ("message.created", Some(alice)),
        ("message.created", None),
        ("message.edited", Some(alice)),
        ("message.created", Some(bob)),
        ("message.deleted", Some(bob)),
        ("message.created", Some(alice)),
        ("message.deleted", None),
        ("receipt.read", Some(bob)),
        ("receipt.delivered", Some(bob)),
        ("reaction.added", Some(alice)),
        ("member.updated", Some(bob)),
        ("conversation.updated", None),
        ("conversation.created", None),
        ("message.deleted", None),
    ];
    for (entry, (name, actor)) in log.iter().zip(expected) {
        let at = entry.position();
        assert_eq!(entry.logged.event.name(), name, "the event at {at}");
        assert_eq!(entry.actor, actor, "the actor of {name} at {at}");
        let removed: &[Attachment] = match at {
            6 => &files,
            8 => &reported.attachments,
            _ => &[],
        };
        assert_eq!(entry.removed_attachments, removed, "removed attachments of {name} at {at}");
        let users: Vec<UserId> = entry.recipients.iter().map(|r| r.user_id).collect();
        match at {
            12 => assert_eq!(users, [bob], "member.updated is bob's only"),
            14 => assert_eq!(users, d.conversation.members, "carol and dave"),
            _ => assert_eq!(users, c.members, "both members of {name} at {at}"),
        }
        for recipient in &entry.recipients {
            let muted = (recipient.user_id == bob && at != 14).then_some(until);
            assert_eq!(recipient.muted_until, muted, "{name} at {at}: the mute as stored");
            assert_eq!(recipient.muted_at(Timestamp::now()), muted.is_some());
        }
        let first = entry.recipients[0].user_id;
        let served = fx.store.read_events(first, at - 1, at, 1).await.must("read_events");
        let logged = std::slice::from_ref(&entry.logged);
        assert_eq!(served, logged, "{name} at {at} as read_events serves it");
    }
    assert!(log[5].logged.event.message().is_some_and(|m| m.attachments.is_empty()));

    let store = &fx.store;
    assert_eq!(positions(&store.read_log(3, 7, 100).await.must("range")), [4, 5, 6, 7]);
    assert_eq!(positions(&store.read_log(0, 15, 4).await.must("limit")), [1, 2, 3, 4]);
    assert_eq!(positions(&store.read_log(12, 100, 10).await.must("past the head")), [13, 14, 15]);
    assert!(store.read_log(15, 15, 10).await.must("empty range").is_empty());
    assert!(store.read_log(0, 0, 10).await.must("nothing").is_empty());
}

/// A consumer from the beginning reads every event once, in order, across batches of at
/// most `batch`, then waits and is woken by the next commit; its position and head say
/// what is pending.
pub async fn a_consumer_from_the_beginning_reads_everything_once_in_order(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    send_n(&m, alice, c.id, 24, "message").await;
    let mut consumer = m.consumer("everything", beginning().batch(10)).must("consumer");
    assert_eq!((consumer.name(), consumer.position()), ("everything", 0));
    let mut read = Vec::new();
    let mut sizes = Vec::new();
    while consumer.position() < 25 {
        let batch = next(&mut consumer, "a batch").await;
        sizes.push(batch.len());
        read.extend(positions(&batch));
        consumer.commit(batch.last().map_or(0, LogEntry::position)).await.must("commit");
    }
    assert_eq!(read, (1..=25).collect::<Vec<u64>>(), "every event once, in order");
    assert!(sizes.iter().all(|n| (1..=10).contains(n)), "batches of 1 to 10: {sizes:?}");
    assert_eq!((consumer.position(), consumer.head()), (25, 25), "nothing pending");

    let later = {
        let m = m.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            send(&m, bob, c.id, "later").await
        })
    };
    let batch = next(&mut consumer, "woken by the next commit").await;
    let later = later.await.must_join();
    assert_eq!(positions(&batch), [26]);
    assert_eq!(batch[0].logged.event.message().map(|m| m.id), Some(later.id));
    assert_eq!(batch[0].actor, Some(bob));
    assert!(consumer.head() >= 26 && consumer.position() == 25, "one event pending");
    consumer.commit(26).await.must("commit");
    consumer.release().await.must("release");
}

/// Starting at the head stores the head of the first claim at once: the events before it
/// are never read, those after it are; a later consumer object of the same name (whatever
/// its start) goes on from the stored position.
pub async fn a_consumer_from_the_head_reads_only_later_events(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    send_n(&m, alice, c.id, 2, "before").await;
    let mut consumer = m.consumer("from-head", ConsumerOptions::default()).must("consumer");
    no_batch(&mut consumer, Duration::from_millis(500), "nothing after the head").await;
    assert_eq!(consumer.position(), 3, "the head was claimed as the position");
    let after = send(&m, bob, c.id, "after").await;
    let batch = next(&mut consumer, "the later event").await;
    assert_eq!(positions(&batch), [4]);
    assert_eq!(batch[0].logged.event.message().map(|m| m.id), Some(after.id));
    consumer.release().await.must("release without committing");

    let mut again = m.consumer("from-head", beginning()).must("the same name");
    let batch = next(&mut again, "from the stored position").await;
    assert_eq!(positions(&batch), [4], "the stored position, not the beginning");
    again.release().await.must("release");

    // The store's part: a start is stored only when there is no row.
    let (store, holder, lease) = (&fx.store, Uuid::now_v7(), Duration::from_secs(5));
    assert_eq!(store.claim_consumer("raw", holder, lease, 7).await.must("claim"), Some(7));
    assert_eq!(store.claim_consumer("raw", holder, lease, 9).await.must("renew"), Some(7));
}

/// A committed position survives reopening the store (when it can be reopened), and the
/// consumer goes on after it there.
pub async fn consumer_positions_survive_reopening(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    send_n(&m, alice, c.id, 5, "message").await;
    let mut consumer = m.consumer("durable", beginning().batch(3)).must("consumer");
    let batch = next(&mut consumer, "the first batch").await;
    assert_eq!(positions(&batch), [1, 2, 3]);
    consumer.commit(3).await.must("commit");
    consumer.release().await.must("release");

    let Some(reopened) = fx.reopen().await else {
        // No way to reopen: another consumer object over the same store stands in.
        let mut again = m.consumer("durable", beginning()).must("again");
        assert_eq!(positions(&next(&mut again, "after the commit").await), [4, 5, 6]);
        return;
    };
    let m = Messenger::new(reopened.clone()).await.must("messenger after reopening");
    let mut again = m.consumer("durable", beginning()).must("again");
    assert_eq!(positions(&next(&mut again, "after reopening").await), [4, 5, 6]);
    assert_eq!(again.position(), 3);
    again.commit(6).await.must("commit after reopening");
    again.release().await.must("release");
    let holder = Uuid::now_v7();
    let claimed = reopened.claim_consumer("durable", holder, Duration::from_secs(5), 0).await;
    assert_eq!(claimed.must("claim"), Some(6));
}

/// A commit never moves the position backwards (a lower one renews and stores nothing);
/// a position the consumer has not seen is `bad_request`; a holder that does not hold the
/// consumer stores nothing.
pub async fn consumer_commits_never_move_backwards(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    send_n(&m, alice, c.id, 4, "message").await;
    let mut consumer = m.consumer("forward", beginning()).must("consumer");
    assert!(matches!(consumer.commit(0).await, Err(Error::Conflict(_))), "never claimed");
    assert_eq!(positions(&next(&mut consumer, "everything").await), [1, 2, 3, 4, 5]);
    consumer.commit(4).await.must("commit");
    consumer.commit(2).await.must("a lower commit is no error");
    assert_eq!(consumer.position(), 4, "and moves nothing");
    assert_code(consumer.commit(6).await, "bad_request", "a position beyond the head seen");
    consumer.renew().await.must("renew");
    assert_eq!(positions(&next(&mut consumer, "the rest").await), [5]);
    consumer.release().await.must("release");

    let (store, lease) = (&fx.store, Duration::from_secs(5));
    let (holder, stranger) = (Uuid::now_v7(), Uuid::now_v7());
    assert_eq!(store.claim_consumer("raw", holder, lease, 0).await.must("claim"), Some(0));
    assert!(store.commit_consumer("raw", holder, 5, lease).await.must("commit"));
    assert!(store.commit_consumer("raw", holder, 3, lease).await.must("commit lower"));
    assert_eq!(store.claim_consumer("raw", holder, lease, 0).await.must("renew"), Some(5));
    assert!(!store.commit_consumer("raw", stranger, 9, lease).await.must("not the holder"));
    assert!(!store.commit_consumer("nobody", holder, 9, lease).await.must("no such consumer"));
    store.release_consumer("raw", stranger).await.must("a release by a stranger does nothing");
    assert_eq!(store.claim_consumer("raw", stranger, lease, 0).await.must("claim"), None);
    assert_eq!(store.claim_consumer("raw", holder, lease, 0).await.must("renew"), Some(5));
}

/// While one holder's lease is live another cannot claim the consumer; once it expired
/// (the holder stopped renewing) the other takes over from the last committed position,
/// and the first gets `conflict` on commit and renew, and waits to claim it back.
pub async fn a_live_lease_excludes_another_holder_until_it_expires(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    send_n(&m, alice, c.id, 3, "message").await;
    let lease = Duration::from_secs(2);
    let options = beginning().lease(lease).batch(2);
    let mut first = m.consumer("leased", options.clone()).must("first");
    let mut second = m.consumer("leased", options).must("second");
    assert_eq!(positions(&next(&mut first, "the first holder").await), [1, 2]);
    first.commit(1).await.must("commit");
    let claimed = tokio::time::Instant::now();
    no_batch(&mut second, lease / 4, "excluded while the lease is live").await;
    let raw = fx.store.claim_consumer("leased", Uuid::now_v7(), lease, 0).await;
    assert_eq!(raw.must("claim"), None, "a live lease excludes any other holder");

    // The first stops renewing: the second takes over once the lease has expired.
    let batch = next(&mut second, "taking over").await;
    assert!(claimed.elapsed() >= lease / 2, "not before the lease ran out");
    assert_eq!(positions(&batch), [2, 3], "from the last commit: at least once");
    assert!(matches!(first.commit(2).await, Err(Error::Conflict(_))), "lost: commit");
    assert!(matches!(first.renew().await, Err(Error::Conflict(_))), "lost: renew");
    second.commit(3).await.must("the new holder commits");
    no_batch(&mut first, lease / 4, "the first waits while the second holds it").await;
    second.release().await.must("release");
    let rest = next(&mut first, "claimed back after the release").await;
    assert_eq!(positions(&rest), [4]);
    assert_eq!(first.position(), 3, "the second's commit");
}

/// Releasing lets another holder claim the consumer at once (not after the lease), at the
/// released position.
pub async fn release_lets_another_holder_claim_at_once(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    send_n(&m, alice, c.id, 3, "message").await;
    let options = beginning().lease(Duration::from_secs(600)).batch(2);
    let mut first = m.consumer("handover", options.clone()).must("first");
    assert_eq!(consume_to(&mut first, 2, "the first holder").await, [1, 2]);
    first.release().await.must("release");
    let mut second = m.consumer("handover", options).must("second");
    let started = tokio::time::Instant::now();
    let batch = next(&mut second, "claimed at once").await;
    assert!(started.elapsed() < Duration::from_secs(60), "not after the lease");
    assert_eq!(positions(&batch), [3, 4], "from the released position");
    second.release().await.must("release");
}

/// A holder that crashes (dropped without committing or releasing) leaves the lease to
/// expire; the next holder reads again from the last committed position: nothing is lost,
/// the uncommitted batch is delivered again (at least once).
pub async fn a_crash_replays_from_the_last_commit(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    send_n(&m, alice, c.id, 5, "message").await;
    let options = beginning().lease(Duration::from_secs(1)).batch(3);
    let mut crashing = m.consumer("crash", options.clone()).must("consumer");
    assert_eq!(positions(&next(&mut crashing, "the first batch").await), [1, 2, 3]);
    crashing.commit(3).await.must("commit");
    assert_eq!(positions(&next(&mut crashing, "the second batch").await), [4, 5, 6]);
    drop(crashing);
    let mut next_holder = m.consumer("crash", options).must("after the crash");
    let replayed = next(&mut next_holder, "replayed").await;
    assert_eq!(positions(&replayed), [4, 5, 6], "from the last commit");
    next_holder.release().await.must("release");
}

/// `advance` moves the next batch on without a write; the position is stored with the
/// lease's renewal or at `release`: a crash before either replays (at least once), a
/// release hands the next holder exactly what follows.
pub async fn advanced_positions_are_stored_at_renewal_or_release(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    send_n(&m, alice, c.id, 5, "message").await;
    let options = beginning().lease(Duration::from_secs(1)).batch(2);
    let mut first = m.consumer("advance", options.clone()).must("consumer");
    assert_eq!(positions(&next(&mut first, "the first batch").await), [1, 2]);
    first.advance(2).must("advance");
    assert_eq!(first.position(), 2);
    assert_eq!(positions(&next(&mut first, "after the advance").await), [3, 4]);
    assert_code(first.advance(99), "bad_request", "past what was read");
    drop(first);
    // Crashed: its lease expires; what it advanced was stored only if a renewal came.
    let mut second = m.consumer("advance", options.clone()).must("after the crash");
    let replayed = positions(&next(&mut second, "replayed").await);
    assert!(replayed == [1, 2] || replayed == [3, 4], "from a stored position: {replayed:?}");
    let last = replayed.last().copied().unwrap_or_default();
    second.advance(last).must("advance");
    second.release().await.must("release stores the advance");
    let mut third = m.consumer("advance", options).must("after the release");
    let after = positions(&next(&mut third, "after the release").await);
    assert_eq!(after.first(), Some(&(last + 1)), "exactly what follows: {after:?}");
    third.release().await.must("release");
}

/// Consumer names are 1 to 64 bytes of letters, digits, `_`, `.` and `-`; batches 1 to
/// 1,000; leases at least 1 s (and at most a day): otherwise `bad_request`.
pub async fn consumer_names_and_options_are_checked(fx: Fixture) {
    let m = fx.messenger().await;
    let long = "n".repeat(65);
    for name in ["", "with space", "a/b", "ünï", "nul\0", long.as_str()] {
        let result = m.consumer(name, ConsumerOptions::default()).map(|_| ());
        assert_code(result, "bad_request", &format!("name {name:?}"));
    }
    for name in ["w", "webhooks", "Push_2.v-1", &"n".repeat(64)] {
        m.consumer(name, ConsumerOptions::default()).must(name);
    }
    let bad = [
        ConsumerOptions::default().batch(0),
        ConsumerOptions::default().batch(1001),
        ConsumerOptions::default().lease(Duration::from_millis(999)),
        ConsumerOptions::default().lease(Duration::from_secs(86_401)),
    ];
    for options in bad {
        let what = format!("{options:?}");
        assert_code(m.consumer("ok", options).map(|_| ()), "bad_request", &what);
    }
    let edges = [
        ConsumerOptions::default().batch(1).lease(Duration::from_secs(1)),
        ConsumerOptions::default().batch(1000).lease(Duration::from_secs(86_400)),
    ];
    for options in edges {
        let what = format!("{options:?}");
        m.consumer("ok", options).must(&what);
    }
}

/// Joining a spawned task in a case.
trait MustJoin<T> {
    fn must_join(self) -> T;
}

impl<T> MustJoin<T> for Result<T, tokio::task::JoinError> {
    #[track_caller]
    fn must_join(self) -> T {
        match self {
            Ok(value) => value,
            Err(error) => panic!("a task of the case failed: {error}"),
        }
    }
}
