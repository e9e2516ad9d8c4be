//! `sync`: exactly once from any cursor, bounded by the session's hello cursor, current
//! state of every object, only the caller's events, cursors never issued refused, and the
//! hello-cursor race (sync + pushes of a session opened while writes go on).

use std::collections::HashMap;

use crate::UserId;
use crate::id::MessageId;
use crate::model::{Cursor, Event, LoggedEvent, ReactionState};
use crate::testkit::Fixture;
use crate::testkit::support::{
    Must, assert_ascending, assert_code, carried, events_until, log_of, open, positions, send,
    send_n, sync_all, two_users,
};
use crate::{Messenger, SendMessage};

/// Writes a varied history: two conversations of bob's (messages from both sides, edits,
/// deletes, receipts) interleaved with a conversation of two other users. Returns bob and
/// alice; the last event of the log is one bob sees.
async fn varied_history(m: &Messenger) -> (UserId, UserId) {
    let (alice, bob) = two_users();
    let (carol, dave) = two_users();
    let ab = open(m, alice, bob, None).await;
    let cd = open(m, carol, dave, None).await;
    let bc = open(m, bob, carol, Some("order:1")).await;
    for round in 0..4 {
        let a = send(m, alice, ab.id, &format!("alice {round}")).await;
        send(m, dave, cd.id, &format!("dave {round}")).await;
        let b = send(m, bob, ab.id, &format!("bob {round}")).await;
        send(m, carol, bc.id, &format!("carol {round}")).await;
        m.mark_read(bob, ab.id, a.seq).await.must("read");
        m.mark_delivered(carol, bc.id, 100).await.must("delivered");
        if round % 2 == 0 {
            m.edit(alice, a.id, &format!("alice {round}, edited")).await.must("edit");
            m.delete(bob, b.id).await.must("delete");
        }
        send(m, carol, cd.id, "noise").await;
    }
    send(m, alice, ab.id, "last").await;
    (bob, alice)
}

/// A session of `user` whose hello cursor is the log's head (the fan-out has dispatched
/// everything): a watcher session waits for `user`'s newest event first.
async fn settled_session(
    fx: &Fixture,
    m: &Messenger,
    user: UserId,
    watcher: &mut crate::Session,
) -> crate::Session {
    let log = log_of(fx.store.as_ref(), user).await;
    if let Some(last) = log.last()
        && watcher.cursor().position() < last.position
    {
        events_until(watcher, last.position, "the watcher's last event").await;
    }
    let session = m.connect(user).await.must("connect");
    let head = fx.store.head().await.must("head");
    assert_eq!(
        session.cursor().position(),
        head,
        "once the feed dispatched everything, the hello cursor is the head"
    );
    session
}

/// Without a cursor: no events and the hello cursor. With the hello cursor: nothing.
pub async fn sync_without_cursor_returns_hello_cursor(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let mut watcher = m.connect(bob).await.must("connect");
    let c = open(&m, alice, bob, None).await;
    send_n(&m, alice, c.id, 3, "m").await;
    let session = settled_session(&fx, &m, bob, &mut watcher).await;
    let page = session.sync(None, None).await.must("sync without cursor");
    assert!(page.events.is_empty(), "no cursor: no events");
    assert_eq!(page.cursor, session.cursor(), "no cursor: the hello cursor");
    assert!(!page.has_more);
    let page = session.sync(Some(session.cursor()), None).await.must("sync from hello");
    assert!(page.events.is_empty() && !page.has_more);
    assert_eq!(page.cursor, session.cursor());
    let fresh = m.connect(UserId::new()).await.must("connect a new user");
    let page = fresh.sync(Some(Cursor::at(0)), None).await.must("sync from the start");
    assert!(page.events.is_empty(), "a user without conversations has no events");
    assert_eq!(page.cursor, fresh.cursor());
}

/// A cursor the server never issued → `bad_request`: a position beyond the log's head, or
/// text that is not a cursor. `limit` outside 1–500 → `bad_request`.
pub async fn sync_rejects_cursors_never_issued(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    send(&m, alice, c.id, "hi").await;
    let session = m.connect(bob).await.must("connect");
    let head = fx.store.head().await.must("head");
    for position in [head + 1, head + 1000, u64::MAX] {
        assert_code(
            session.sync(Some(Cursor::at(position)), None).await,
            "bad_request",
            &format!("a cursor at {position}, beyond the head {head}"),
        );
    }
    for text in
        ["", "garbage", "v1", "v2a", "V1A", "v1G", "v100000000000000000", "v1 1", "1", "v1-1"]
    {
        assert_code(Cursor::parse(text), "bad_request", &format!("cursor text {text:?}"));
    }
    let issued = Cursor::parse(&session.cursor().to_string()).must("an issued cursor parses");
    session.sync(Some(issued), None).await.must("sync from an issued cursor");
    assert_code(session.sync(None, Some(0)).await, "bad_request", "limit 0");
    assert_code(session.sync(Some(Cursor::at(0)), Some(501)).await, "bad_request", "limit 501");
    session.sync(Some(Cursor::at(0)), Some(500)).await.must("limit 500");
}

/// Paging `sync` from every cursor (every position of the log, every cursor a page or an
/// event returned) with several page sizes yields exactly the caller's events after that
/// cursor, in order: no gap, no repeat; the last page has `has_more: false` and the hello
/// cursor.
pub async fn sync_is_exactly_once_from_any_cursor(fx: Fixture) {
    let m = fx.messenger().await;
    let (bob, _) = varied_history(&m).await;
    let mut watcher = m.connect(bob).await.must("connect");
    let session = settled_session(&fx, &m, bob, &mut watcher).await;
    let hello = session.cursor();
    let expected = log_of(fx.store.as_ref(), bob).await;
    assert!(expected.len() >= 25, "the history is varied enough");
    assert_ascending(&expected, "the log");

    let (all, end) = sync_all(&session, Cursor::at(0), 500).await;
    assert_eq!(all, expected, "sync from the start returns every event of the caller's");
    assert_eq!(end, hello, "and ends at the hello cursor");

    let mut cursors: Vec<Cursor> = (0..=hello.position()).map(Cursor::at).collect();
    for limit in [1, 3, 7] {
        let mut cursor = Cursor::at(0);
        loop {
            let page = session.sync(Some(cursor), Some(limit)).await.must("sync");
            cursors.push(page.cursor);
            cursors.extend(page.events.iter().map(LoggedEvent::cursor));
            cursor = page.cursor;
            if !page.has_more {
                break;
            }
        }
    }
    cursors.sort();
    cursors.dedup();
    for (i, cursor) in cursors.iter().enumerate() {
        let limit = [2, 5, 500][i % 3];
        let (events, end) = sync_all(&session, *cursor, limit).await;
        let want: Vec<&LoggedEvent> =
            expected.iter().filter(|e| e.position > cursor.position()).collect();
        let got: Vec<&LoggedEvent> = events.iter().collect();
        assert_eq!(got, want, "sync from {cursor} (limit {limit}): every later event once");
        assert_eq!(end, hello, "sync from {cursor} ends at the hello cursor");
    }
}

/// A session's `sync` stops at its hello cursor (`has_more: false`, cursor = hello) even
/// when more events were written since; those arrive pushed, each once.
pub async fn sync_is_bounded_by_hello_cursor(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    let mut watcher = m.connect(bob).await.must("connect");
    send_n(&m, alice, c.id, 4, "before").await;
    let mut session = settled_session(&fx, &m, bob, &mut watcher).await;
    let hello = session.cursor();
    let later = send_n(&m, bob, c.id, 5, "after").await;
    m.mark_read(bob, c.id, 9).await.must("read");
    let log = log_of(fx.store.as_ref(), bob).await;
    let last = log.last().expect("events").position;
    assert!(last > hello.position());

    let (synced, end) = sync_all(&session, Cursor::at(0), 2).await;
    assert_eq!(end, hello, "sync ends at the hello cursor");
    assert!(synced.iter().all(|e| e.position <= hello.position()), "nothing after hello");
    let want: Vec<LoggedEvent> =
        log.iter().filter(|e| e.position <= hello.position()).cloned().collect();
    assert_eq!(synced, want);
    let page = session.sync(Some(hello), Some(500)).await.must("sync from hello");
    assert!(page.events.is_empty() && !page.has_more && page.cursor == hello);

    let pushed = events_until(&mut session, last, "pushes after hello").await;
    let want_pushed: Vec<u64> =
        log.iter().map(|e| e.position).filter(|p| *p > hello.position()).collect();
    assert_eq!(positions(&pushed), want_pushed, "every later event pushed once, in order");
    assert_eq!(carried(&pushed[0].event).id, later[0].id);

    // A cursor past this session's hello (e.g. kept from a pushed event) that the log
    // has reached: nothing to return, the same cursor back.
    let ahead = pushed[1].cursor();
    let page = session.sync(Some(ahead), None).await.must("sync from a cursor past hello");
    assert!(page.events.is_empty() && !page.has_more);
    assert_eq!(page.cursor, ahead);
}

/// Events returned by `sync` carry current state: a message deleted since is a tombstone
/// in every event carrying it (its `message.created` included, and a reaction's); an
/// edited one carries its latest body and reactions (a reaction logged before the edit
/// included); a conversation event carries the conversation as it is now (metadata set
/// after it was created included).
pub async fn sync_serves_current_state(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let mut watcher = m.connect(bob).await.must("connect");
    let c = open(&m, alice, bob, None).await;
    let kept = m
        .send(alice, SendMessage::to_conversation(c.id, "v1").metadata(serde_json::json!({"v": 1})))
        .await
        .must("send")
        .message;
    let gone = m
        .send(
            alice,
            SendMessage::to_conversation(c.id, "secret").metadata(serde_json::json!({"pin": 1234})),
        )
        .await
        .must("send")
        .message;
    let plain = send(&m, bob, c.id, "untouched").await;
    m.react(bob, kept.id, "👍", ReactionState::Added).await.must("react");
    m.react(bob, gone.id, "👀", ReactionState::Added).await.must("react");
    m.edit(alice, kept.id, "v2").await.must("edit");
    m.edit(alice, gone.id, "secret, edited").await.must("edit");
    let latest = m.edit(alice, kept.id, "v3").await.must("edit");
    let tombstone = m.delete(alice, gone.id).await.must("delete");
    send(&m, bob, c.id, "last").await;
    m.service().set_metadata(c.id, Some(serde_json::json!({"listing": 7}))).await.must("metadata");
    assert_eq!(latest.reactions.len(), 1, "the edit kept the reaction");
    let session = settled_session(&fx, &m, bob, &mut watcher).await;
    let current: HashMap<MessageId, _> =
        [(kept.id, latest.clone()), (gone.id, tombstone.clone()), (plain.id, plain.clone())].into();
    let conversation_now = fx.store.conversation(c.id).await.must("conversation").expect("exists");

    for limit in [1, 500] {
        let (events, _) = sync_all(&session, Cursor::at(0), limit).await;
        let mut carrying_gone = 0;
        let mut reactions = 0;
        for event in &events {
            match &event.event {
                Event::ConversationCreated(conversation)
                | Event::ConversationUpdated(conversation) => {
                    assert_eq!(conversation, &conversation_now, "the conversation as it is now");
                    assert!(conversation.metadata.is_some());
                }
                other => {
                    reactions += usize::from(matches!(other, Event::Reaction(_)));
                    if let Some(message) = other.message() {
                        if let Some(now) = current.get(&message.id) {
                            assert_eq!(message, now, "{} serves the current state", other.name());
                        }
                        if message.id == gone.id {
                            carrying_gone += 1;
                            assert!(
                                message.deleted
                                    && message.body.is_empty()
                                    && message.metadata.is_none()
                            );
                        }
                    }
                }
            }
        }
        assert_eq!(reactions, 2);
        assert_eq!(
            carrying_gone, 4,
            "created, reacted, edited and deleted events all carry the tombstone"
        );
        let log = log_of(fx.store.as_ref(), alice).await;
        assert!(
            log.iter().filter_map(|e| e.event.message()).all(|m| !m.body.contains("secret")),
            "deleted content is never served again"
        );
    }
}

/// `sync` returns only events of the caller's conversations.
pub async fn sync_only_returns_the_callers_events(fx: Fixture) {
    let m = fx.messenger().await;
    let (bob, alice) = varied_history(&m).await;
    let mut watcher = m.connect(bob).await.must("connect");
    let session = settled_session(&fx, &m, bob, &mut watcher).await;
    let (events, _) = sync_all(&session, Cursor::at(0), 50).await;
    assert!(!events.is_empty());
    for event in &events {
        let id = event.event.conversation_id();
        let conversation = fx.store.conversation(id).await.must("conversation").expect("exists");
        assert!(
            conversation.has_member(bob),
            "{} of a conversation bob is not in",
            event.event.name()
        );
    }
    let alices = m.connect(alice).await.must("connect");
    let (theirs, _) = sync_all(&alices, Cursor::at(0), 50).await;
    assert!(theirs.len() < events.len(), "alice sees only her conversation with bob");
    for event in &theirs {
        let id = event.event.conversation_id();
        let conversation = fx.store.conversation(id).await.must("conversation").expect("exists");
        assert!(conversation.has_member(alice));
    }
}

/// While a writer sends continuously, sessions opened at various moments each see, through
/// `sync` from the cursor the client kept (paged up to hello) followed by the pushes, every
/// event after that cursor exactly once and in order: no subscribe race.
pub async fn hello_cursor_race_loses_nothing(fx: Fixture) {
    const N: usize = 120;
    const SESSIONS: usize = 8;
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    let (progress, mut watch) = tokio::sync::watch::channel(0_usize);
    // The writer waits for each session before going past that session's share, so the
    // sessions open while it writes however fast the store is (the memory store could
    // finish all N before the first session opened).
    let (opened_tx, opened) = tokio::sync::watch::channel(0_usize);
    let writer = tokio::spawn({
        let m = m.clone();
        let mut opened = opened;
        async move {
            let mut last = None;
            for i in 0..N {
                if i > 0 && i % (N / SESSIONS) == 0 {
                    let k = i / (N / SESSIONS);
                    let _ = opened.wait_for(|n| *n >= k).await;
                }
                let message = m
                    .send(alice, SendMessage::to_conversation(c.id, format!("w{i}")))
                    .await
                    .must("writer")
                    .message;
                if i % 10 == 9 {
                    m.mark_delivered(bob, c.id, message.seq).await.must("delivered");
                }
                last = Some(message);
                progress.send_replace(i + 1);
            }
            last
        }
    });
    let mut sessions = Vec::new();
    let mut kept = Cursor::at(0);
    for k in 0..SESSIONS {
        let _ = watch.wait_for(|sent| *sent >= k * N / SESSIONS).await;
        let session = m.connect(bob).await.must("connect while writing");
        let hello = session.cursor();
        sessions.push((kept, session));
        kept = hello;
        opened_tx.send_replace(k + 1);
    }
    let last = writer.await.expect("writer").expect("a last message");
    let hellos: Vec<u64> = sessions.iter().map(|(_, s)| s.cursor().position()).collect();
    assert!(
        hellos.first() < hellos.last(),
        "the sessions opened while the writer was writing: hellos {hellos:?}"
    );
    let log = log_of(fx.store.as_ref(), bob).await;
    assert!(
        log.iter().any(|e| e.event.name() == "message.created" && carried(&e.event).id == last.id),
        "the writer's last message is logged"
    );
    let target = log.last().expect("events").position;
    for (i, (start, mut session)) in sessions.into_iter().enumerate() {
        let (mut seen, end) = sync_all(&session, start, 7).await;
        assert_eq!(end, session.cursor(), "session {i}: sync ends at hello");
        if session.cursor().position() < target {
            seen.extend(events_until(&mut session, target, "pushes").await);
        }
        let want: Vec<&LoggedEvent> =
            log.iter().filter(|e| e.position > start.position()).collect();
        let got: Vec<&LoggedEvent> = seen.iter().collect();
        assert_eq!(
            positions(&seen),
            want.iter().map(|e| e.position).collect::<Vec<_>>(),
            "session {i} (from {start}, hello {}): sync + pushes = every event once",
            session.cursor()
        );
        assert_eq!(got, want, "session {i}: the same events");
    }
}
