//! Reactions in PostgreSQL: the summary kept on the message row, never written from a read
//! another writer's change overtook.
//!
//! Beyond the conformance case (two store objects, two users): many users reacting through
//! three store objects (three processes' writers) at once lose nothing, and the stored
//! summary is exactly the log's reaction events replayed in position order, so the order
//! of the summary is the commit order. The reactions of one batch run in queue order, each
//! answered on its own (a no-op, a refusal past the bound, an unknown message, a tombstone),
//! and only the changes are logged. A reaction whose message another writer changes
//! between the batch's read and its write is run again on the new row.
//!
//! Each case runs on a fresh database cloned from the migrated template (see `support`).

#![allow(clippy::expect_used, clippy::panic, reason = "tests: failing loudly is the point")]

mod support;

use std::sync::Arc;
use std::time::Duration;

use messaging_core::id::{MessageId, UserId};
use messaging_core::model::{Event, Message, Reaction, ReactionState};
use messaging_core::store::{
    DeleteMessage, EventLog, MessageStore, Reacted, ReactionUpdate, apply_reaction,
};
use messaging_core::testkit::CommitHold;
use messaging_core::{Error, Result};
use messaging_store_pg::{PgOptions, PgStore};

use ReactionState::{Added, Removed};

/// A store on `url` that does not migrate (the template is migrated).
async fn connect(url: &str, options: PgOptions) -> Arc<PgStore> {
    Arc::new(PgStore::connect(url, options.migrate(false)).await.expect("connect"))
}

/// A conversation of `a` and `b` with one message of `a`'s; the message.
async fn message_of(store: &PgStore, a: UserId, b: UserId) -> Message {
    let conversation = support::open_pair(store, a, b).await;
    let new = support::new_message(conversation, a, "react to me");
    store.append(new).await.expect("append").message
}

fn update(message: MessageId, user: UserId, emoji: &str, state: ReactionState) -> ReactionUpdate {
    ReactionUpdate {
        message_id: message,
        user_id: user,
        emoji: emoji.to_owned(),
        state,
        max_per_user: 20,
        audience: vec![user],
    }
}

/// The reaction changes of `user`'s log, in position order: (user, emoji, state).
async fn logged_reactions(
    store: &PgStore,
    user: UserId,
) -> Vec<(UserId, String, ReactionState, Message)> {
    let head = store.head().await.expect("head");
    let mut changes = Vec::new();
    let mut after = 0;
    loop {
        let page = store.read_events(user, after, head, 500).await.expect("read_events");
        let Some(last) = page.last() else { return changes };
        after = last.position;
        changes.extend(page.into_iter().filter_map(|e| match e.event {
            Event::Reaction(r) => Some((r.user_id, r.emoji, r.state, r.message)),
            _ => None,
        }));
    }
}

/// Twelve users each add eight emoji and take two of them back, through three store
/// objects at once (each user's reactions spread over all three). Nothing is lost or
/// doubled, and the stored summary is the log's reaction events applied in position order
/// with the one shared function: the summary's order is the commit order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reactions_through_three_store_objects_follow_the_log() {
    let Some(url) = support::fresh_database().await else { return };
    let options = PgOptions::default().max_connections(6);
    let stores = [
        connect(&url, options.clone()).await,
        connect(&url, options.clone()).await,
        connect(&url, options).await,
    ];
    let users: Vec<UserId> = (0..12).map(|_| UserId::new()).collect();
    let message = message_of(&stores[0], users[0], users[1]).await;
    let emoji: Vec<String> = (0..8).map(|i| format!("e{i}")).collect();

    let mut tasks = tokio::task::JoinSet::new();
    for (u, user) in users.iter().copied().enumerate() {
        for (e, emoji) in emoji.iter().cloned().enumerate() {
            let store = stores[(u + e) % 3].clone();
            let audience = users.clone();
            tasks.spawn(async move {
                let change = |state| ReactionUpdate {
                    audience: audience.clone(),
                    ..update(message.id, user, &emoji, state)
                };
                let added = store.react(change(Added)).await?;
                assert!(added.changed, "a first add changes the summary");
                if e % 4 == 1 {
                    let removed = store.react(change(Removed)).await?;
                    assert!(removed.changed, "removing one's own reaction changes it");
                }
                Ok::<(), Error>(())
            });
        }
    }
    while let Some(joined) = tasks.join_next().await {
        joined.expect("task").expect("a reaction");
    }

    let stored = stores[1].message(message.id).await.expect("read").expect("stored").reactions;
    let kept: Vec<&String> =
        emoji.iter().enumerate().filter(|(e, _)| e % 4 != 1).map(|(_, e)| e).collect();
    assert_eq!(stored.len(), kept.len(), "every kept emoji once: {stored:?}");
    for reaction in &stored {
        assert!(kept.contains(&&reaction.emoji), "{} is kept", reaction.emoji);
        let mut reacted = reaction.user_ids.clone();
        reacted.sort_unstable();
        let mut all = users.clone();
        all.sort_unstable();
        assert_eq!(reacted, all, "{}: every user once", reaction.emoji);
    }

    let log = logged_reactions(&stores[2], users[5]).await;
    assert_eq!(log.len(), users.len() * (emoji.len() + 2), "one event per change");
    let mut replayed: Vec<Reaction> = Vec::new();
    for (user, emoji, state, current) in &log {
        assert!(
            apply_reaction(&mut replayed, *user, emoji, *state, 20).expect("within the bound"),
            "every logged reaction changed the summary"
        );
        assert_eq!(current.reactions, stored, "each event carries the message as it is now");
    }
    assert_eq!(replayed, stored, "the summary is the log replayed in position order");
}

/// Reactions queued behind a held batch commit as one batch and run in queue order: each
/// sees the summary the ones before it left, a no-op and a refusal (past the per-user
/// bound, an unknown message, a message deleted earlier in the batch) write nothing, and
/// the log holds one event per change, in queue order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reactions_of_one_batch_run_in_queue_order() {
    let Some(url) = support::fresh_database().await else { return };
    let store = connect(&url, PgOptions::default().writers(1)).await;
    let (alice, bob) = (UserId::new(), UserId::new());
    let message = message_of(&store, alice, bob).await;
    let doomed = message_of(&store, alice, bob).await;
    let head = store.head().await.expect("head");

    let mut held = store.hold_next_write().await.expect("hold");
    let first = tokio::spawn({
        let store = store.clone();
        async move { store.react(update(message.id, bob, "a", Added)).await }
    });
    held.positioned().await.expect("the first reaction takes its position");
    let bounded =
        |emoji: &str| ReactionUpdate { max_per_user: 2, ..update(message.id, bob, emoji, Added) };
    let batch = tokio::spawn({
        let store = store.clone();
        let queue = [
            bounded("a"),                          // a no-op: bob has it
            bounded("b"),                          // bob's second
            bounded("c"),                          // a third: past the bound
            update(message.id, alice, "c", Added), // alice's own bound
            update(message.id, bob, "a", Removed), // room again
            bounded("c"),                          // now within the bound
            update(MessageId::new(), bob, "a", Added),
            update(doomed.id, bob, "a", Added),
        ];
        async move {
            let [q0, q1, q2, q3, q4, q5, q6, q7] = queue;
            let delete =
                DeleteMessage { id: doomed.id, audience: vec![alice, bob], actor: Some(alice) };
            // `join!` polls in order: the changes queue in this order, the delete before
            // the last reaction (single-row changes run before the batch's reactions).
            let (d, r0, r1, r2, r3, r4, r5, r6, r7) = tokio::join!(
                store.delete(delete),
                store.react(q0),
                store.react(q1),
                store.react(q2),
                store.react(q3),
                store.react(q4),
                store.react(q5),
                store.react(q6),
                store.react(q7),
            );
            d.expect("delete");
            [r0, r1, r2, r3, r4, r5, r6, r7]
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    held.release();
    assert!(first.await.expect("join").expect("the first reaction").changed);
    let answers = batch.await.expect("join");

    let summary = |r: &Result<Reacted>| -> Option<(bool, Vec<(String, usize)>)> {
        r.as_ref().ok().map(|r| {
            let entries = r.message.reactions.iter().map(|x| (x.emoji.clone(), x.user_ids.len()));
            (r.changed, entries.collect())
        })
    };
    let s = |pairs: &[(&str, usize)]| pairs.iter().map(|(e, n)| ((*e).to_owned(), *n)).collect();
    assert_eq!(summary(&answers[0]), Some((false, s(&[("a", 1)]))), "a no-op");
    assert_eq!(summary(&answers[1]), Some((true, s(&[("a", 1), ("b", 1)]))));
    assert!(matches!(answers[2], Err(Error::Conflict(_))), "past the bound: {:?}", answers[2]);
    assert_eq!(summary(&answers[3]), Some((true, s(&[("a", 1), ("b", 1), ("c", 1)]))));
    assert_eq!(summary(&answers[4]), Some((true, s(&[("b", 1), ("c", 1)]))), "a goes");
    assert_eq!(summary(&answers[5]), Some((true, s(&[("b", 1), ("c", 2)]))), "bob after alice");
    assert!(matches!(answers[6], Err(Error::NotFound(_))), "unknown: {:?}", answers[6]);
    assert!(matches!(answers[7], Err(Error::Conflict(_))), "a tombstone: {:?}", answers[7]);

    let log: Vec<(UserId, String, ReactionState)> = logged_reactions(&store, bob)
        .await
        .into_iter()
        .map(|(user, emoji, state, _)| (user, emoji, state))
        .collect();
    let expected = [(bob, "a", Added), (bob, "b", Added), (bob, "a", Removed), (bob, "c", Added)];
    let expected: Vec<_> = expected.iter().map(|(u, e, s)| (*u, (*e).to_owned(), *s)).collect();
    assert_eq!(log, expected, "one event per change of bob's, in queue order");
    let events = store.read_events(alice, head, store.head().await.expect("head"), 100).await;
    let names: Vec<&str> =
        events.as_ref().expect("events").iter().map(|e| e.event.name()).collect();
    assert_eq!(
        names,
        ["message.deleted", "reaction.added"],
        "alice sees the delete and her own reaction: the batch's single-row change first"
    );
}

/// Another writer changes the message after a reaction's batch read it and before its
/// statement writes the summary (an update holding the row uncommitted until the statement
/// waits for it): the statement finds the row at another version and writes nothing, and
/// the batch runs again with the row locked. The answer carries the message as the other writer left it, with
/// the reaction, and so does the stored row: nothing of either writer is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reaction_overtaken_by_another_writer_runs_again_on_the_new_row() {
    use sqlx::Connection;
    let Some(url) = support::fresh_database().await else { return };
    let store = connect(&url, PgOptions::default()).await;
    let (alice, bob) = (UserId::new(), UserId::new());
    let message = message_of(&store, alice, bob).await;

    let mut other = sqlx::PgConnection::connect(&url).await.expect("connect");
    let mut tx = other.begin().await.expect("begin");
    sqlx::query("UPDATE messaging.messages SET body = 'changed elsewhere' WHERE id = $1")
        .bind(message.id.as_uuid())
        .execute(&mut *tx)
        .await
        .expect("the other writer's update");
    let reacting = tokio::spawn({
        let store = store.clone();
        async move { store.react(update(message.id, bob, "a", Added)).await }
    });
    // The batch's read does not wait for the other writer (it reads the row as it was);
    // its statement then waits for the row's lock. Only once it does, the other writer
    // commits: the statement finds a newer row than the one the batch read.
    let mut watcher = sqlx::PgConnection::connect(&url).await.expect("connect");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut watcher)
        .await
        .expect("pg_stat_activity");
        if waiting > 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the reaction never waited for the row");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(!reacting.is_finished(), "the write waits for the other writer's row lock");
    tx.commit().await.expect("the other writer commits");
    let reacted = reacting.await.expect("join").expect("the reaction");

    let expected = vec![Reaction { emoji: "a".into(), user_ids: vec![bob] }];
    assert!(reacted.changed);
    assert_eq!(reacted.message.body, "changed elsewhere", "the answer is the row as it is now");
    assert_eq!(reacted.message.reactions, expected);
    let stored = store.message(message.id).await.expect("read").expect("the message");
    assert_eq!((stored.body.as_str(), stored.reactions), ("changed elsewhere", expected));
    let logged = logged_reactions(&store, bob).await;
    assert_eq!(logged.len(), 1, "one event, logged once");
}
