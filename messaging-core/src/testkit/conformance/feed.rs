//! The event log and the feed, at the store level: `head` counts exactly the events
//! written, `read_events` honours its bounds and audiences, positions are dense, and the
//! feed starts at the head and hands over committed events in order, after commit.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::task::JoinSet;

use crate::UserId;
use crate::model::Event;
use crate::store::HistoryWindow;
use crate::testkit::support::{
    Must, assert_ascending, carried, log_of, next_event, open, send, send_n, two_users,
};
use crate::testkit::{FeedRecorder, Fixture, PUSH_TIMEOUT};
use crate::{HistoryQuery, SendMessage};

/// `head` moves by exactly one per event written, and not for writes that write no event
/// (finding a conversation, a retry, a marker that did not move, a second delete).
pub async fn head_counts_events(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let mut head = fx.store.head().await.must("head");
    assert_eq!(head, 0, "a fresh store has an empty log");
    let mut step = async |events: u64, what: &str| {
        let now = fx.store.head().await.must("head");
        assert_eq!(now, head + events, "{what}: head moved by {}", now - head);
        head = now;
    };
    let c = open(&m, alice, bob, None).await;
    step(1, "open creates").await;
    open(&m, bob, alice, None).await;
    step(0, "open finds").await;
    let keyed = SendMessage::to_conversation(c.id, "hi").client_msg_id("k");
    let sent = m.send(alice, keyed.clone()).await.must("send").message;
    step(1, "send").await;
    m.send(alice, keyed).await.must("retry");
    step(0, "retry").await;
    m.mark_read(bob, c.id, 1).await.must("read");
    step(1, "read moves").await;
    m.mark_read(bob, c.id, 1).await.must("read again");
    step(0, "read does not move").await;
    m.mark_delivered(bob, c.id, 1).await.must("delivered");
    step(1, "delivered moves").await;
    m.edit(alice, sent.id, "edited").await.must("edit");
    step(1, "edit").await;
    m.delete(alice, sent.id).await.must("delete");
    step(1, "delete").await;
    m.delete(alice, sent.id).await.must("delete again");
    step(0, "second delete").await;
    m.block(alice, bob).await.must("block");
    m.unblock(alice, bob).await.must("unblock");
    step(0, "blocks are not events").await;
}

/// `read_events` returns, ascending, the events of the caller's audience with
/// `after < position <= up_to`, at most `limit`; positions over all users are dense from 1.
pub async fn read_events_bounds_and_audience(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let (carol, dave) = two_users();
    let ab = open(&m, alice, bob, None).await;
    let cd = open(&m, carol, dave, None).await;
    for i in 0..5 {
        send(&m, alice, ab.id, &format!("ab {i}")).await;
        send(&m, dave, cd.id, &format!("cd {i}")).await;
    }
    m.mark_read(bob, ab.id, 5).await.must("read");
    let head = fx.store.head().await.must("head");
    let alices = log_of(fx.store.as_ref(), alice).await;
    let carols = log_of(fx.store.as_ref(), carol).await;
    assert_eq!(alices, log_of(fx.store.as_ref(), bob).await, "both members see the same events");
    assert_eq!(carols, log_of(fx.store.as_ref(), dave).await);
    assert_eq!((alices.len(), carols.len()), (7, 6));
    assert!(alices.iter().all(|e| e.event.conversation_id() == ab.id), "only alice's");
    assert!(carols.iter().all(|e| e.event.conversation_id() == cd.id), "only carol's");
    assert_ascending(&alices, "alice's events");
    let all: BTreeSet<u64> = alices.iter().chain(&carols).map(|e| e.position).collect();
    assert_eq!(all, (1..=head).collect::<BTreeSet<_>>(), "positions are dense from 1");

    for after in 0..=head {
        for up_to in after..=head + 1 {
            let up_to = up_to.min(head);
            for limit in [1, 2, 500] {
                let got =
                    fx.store.read_events(alice, after, up_to, limit).await.must("read_events");
                let want: Vec<_> = alices
                    .iter()
                    .filter(|e| e.position > after && e.position <= up_to)
                    .take(limit)
                    .cloned()
                    .collect();
                assert_eq!(got, want, "read_events(after {after}, up_to {up_to}, limit {limit})");
            }
        }
    }
    let stranger = fx.store.read_events(UserId::new(), 0, head, 500).await.must("read_events");
    assert!(stranger.is_empty(), "a user outside every audience sees nothing");
}

/// An attached feed first gets `start(head)`, then every later commit's events once, in
/// dense ascending positions, in non-empty batches, with the audience the mutation named;
/// a feed attached later starts at the later head.
pub async fn feed_starts_at_head_and_is_dense(fx: Fixture) {
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    send(&m, alice, c.id, "before attach").await;
    let start = fx.store.head().await.must("head");
    let recorder = Arc::new(FeedRecorder::default());
    fx.store.attach_feed(recorder.clone()).await.must("attach_feed");
    assert_eq!(recorder.start(), Some(start), "start is called with the head at attach time");

    let mut tasks = JoinSet::new();
    for t in 0..4 {
        let m = m.clone();
        tasks.spawn(async move {
            let (x, y) = two_users();
            let c = m.open(x, y, None).await.must("open").conversation;
            for i in 0..6 {
                let msg = m
                    .send(
                        if i % 2 == 0 { x } else { y },
                        SendMessage::to_conversation(c.id, format!("t{t} {i}")),
                    )
                    .await
                    .must("send")
                    .message;
                m.mark_delivered(y, c.id, msg.seq).await.must("delivered");
            }
        });
    }
    send_n(&m, bob, c.id, 5, "after attach").await;
    while let Some(joined) = tasks.join_next().await {
        joined.expect("writer task");
    }
    let head = fx.store.head().await.must("head");
    assert!(recorder.wait_for(head, PUSH_TIMEOUT).await, "the feed reaches the head");
    assert_eq!(recorder.starts(), 1);
    assert!(!recorder.committed_before_start(), "start comes before any commit");
    assert!(recorder.batches().iter().all(|b| !b.is_empty()), "batches are never empty");
    let events = recorder.events();
    let got: Vec<u64> = events.iter().map(|e| e.logged.position).collect();
    assert_eq!(got, (start + 1..=head).collect::<Vec<_>>(), "dense, ascending, no repeat");
    for committed in &events {
        let conversation_id = committed.logged.event.conversation_id();
        let conversation =
            fx.store.conversation(conversation_id).await.must("conversation").expect("exists");
        let mut audience = committed.audience.clone();
        audience.sort();
        assert_eq!(audience, conversation.members.to_vec(), "the audience is the two members");
        let logged = fx
            .store
            .read_events(
                conversation.members[0],
                committed.logged.position - 1,
                committed.logged.position,
                1,
            )
            .await
            .must("read_events");
        assert_eq!(logged.len(), 1, "the fed event is in the log at its position");
        assert_eq!(logged[0].event.name(), committed.logged.event.name());
        assert_eq!(
            logged[0].event.message().map(|m| m.id),
            committed.logged.event.message().map(|m| m.id)
        );
    }

    let late = Arc::new(FeedRecorder::default());
    fx.store.attach_feed(late.clone()).await.must("attach another feed");
    assert_eq!(late.start(), Some(head));
    drop(recorder);
    let last = send(&m, alice, c.id, "after a sink was dropped").await;
    let head = fx.store.head().await.must("head");
    assert!(late.wait_for(head, PUSH_TIMEOUT).await);
    let late_events = late.events();
    assert_eq!(late_events.len(), 1, "a later feed gets only later commits");
    assert_eq!(late_events[0].logged.event, Event::MessageCreated(last));
}

/// A pushed event is committed: a client that receives it and reads at once finds the
/// message in the store, in history and in the log.
pub async fn pushes_arrive_after_commit(fx: Fixture) {
    const N: u64 = 30;
    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    let mut session = m.connect(bob).await.must("connect");
    let writer = tokio::spawn({
        let m = m.clone();
        async move {
            let mut tasks = JoinSet::new();
            for i in 0..N {
                let m = m.clone();
                tasks.spawn(async move {
                    m.send(alice, SendMessage::to_conversation(c.id, format!("p{i}")))
                        .await
                        .must("send")
                        .message
                });
            }
            while let Some(joined) = tasks.join_next().await {
                joined.expect("send task");
            }
        }
    });
    let mut previous = session.cursor().position();
    for _ in 0..N {
        let pushed = next_event(&mut session, "a pushed message").await;
        assert!(pushed.position > previous, "pushes come in ascending positions");
        previous = pushed.position;
        let message = carried(&pushed.event).clone();
        let stored = fx.store.message(message.id).await.must("message");
        assert_eq!(stored.as_ref(), Some(&message), "the pushed message is committed");
        let around =
            fx.store.history(c.id, HistoryWindow::After(message.seq - 1), 1).await.must("history");
        assert_eq!(around.first().map(|m| m.id), Some(message.id), "history has it");
        let head = fx.store.head().await.must("head");
        assert!(head >= pushed.position, "the head includes a pushed position");
        let logged = fx
            .store
            .read_events(bob, pushed.position - 1, pushed.position, 1)
            .await
            .must("read_events");
        assert_eq!(logged.len(), 1, "the log has it");
    }
    writer.await.expect("writer");
    let history = m
        .history(bob, c.id, HistoryQuery { limit: Some(100), ..HistoryQuery::default() })
        .await
        .must("history");
    assert_eq!(history.messages.len(), usize::try_from(N).expect("small"));
}

/// A feed sink that, for every event it is handed, checks from another connection that the
/// change is already visible in the store: the message or conversation exists and `head`
/// has reached the position. When the feed runs on a thread of its own it blocks that
/// thread while it looks (which a real sink must not do), turning "published before
/// commit" from a rare race into a certain failure; a feed running as a task is checked
/// right after, without blocking it (so there it catches the fault only by chance).
struct CommitProbe {
    store: Arc<dyn crate::Store>,
    runtime: tokio::runtime::Handle,
    seen: Arc<std::sync::Mutex<(usize, Vec<String>)>>,
}

impl crate::store::FeedSink for CommitProbe {
    fn start(&self, _head: u64) {}

    fn committed(&self, events: &[crate::model::CommittedEvent]) {
        let (store, events, seen) = (self.store.clone(), events.to_vec(), self.seen.clone());
        let check = async move {
            let mut misses = Vec::new();
            for committed in &events {
                let position = committed.logged.position;
                let visible = match &committed.logged.event {
                    Event::ConversationCreated(c) => {
                        store.conversation(c.id).await.ok().flatten().is_some()
                    }
                    other => match other.message() {
                        Some(m) => store
                            .message(m.id)
                            .await
                            .ok()
                            .flatten()
                            .is_some_and(|stored| stored.seq == m.seq),
                        None => true,
                    },
                };
                let head = store.head().await.unwrap_or(0);
                if !visible || head < position {
                    misses.push(format!(
                        "{} at {position} not committed (head {head})",
                        committed.logged.event.name()
                    ));
                }
            }
            let mut seen = seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            seen.0 += events.len();
            seen.1.extend(misses);
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            // A feed running as a task must not block: it may hold a lock other tasks of the
            // store wait on (PostgreSQL's feed does), and blocking it stalls the runtime.
            // Check right after, from a task.
            tokio::spawn(check);
        } else {
            // A feed on a thread of its own (a writer thread): block it while another
            // thread looks, so "published before commit" is caught every time.
            let runtime = self.runtime.clone();
            let _ = std::thread::spawn(move || runtime.block_on(check)).join();
        }
    }
}

/// The feed only ever hands over committed changes: every event, checked from another
/// connection at the moment the feed delivers it, is already visible in the store.
pub async fn feed_sees_only_committed_state(fx: Fixture) {
    const N: usize = 40;
    let m = fx.messenger().await;
    let probe = Arc::new(CommitProbe {
        store: fx.store.clone(),
        runtime: tokio::runtime::Handle::current(),
        seen: Arc::new(std::sync::Mutex::new((0, Vec::new()))),
    });
    fx.store.attach_feed(probe.clone()).await.must("attach the probe");
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    let mut tasks = JoinSet::new();
    for i in 0..N {
        let m = m.clone();
        tasks.spawn(async move {
            let sent = m
                .send(alice, SendMessage::to_conversation(c.id, format!("c{i}")))
                .await
                .must("send")
                .message;
            if i % 3 == 0 {
                m.edit(alice, sent.id, "edited").await.must("edit");
            }
            if i % 5 == 0 {
                m.delete(alice, sent.id).await.must("delete");
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.expect("task");
    }
    let head = fx.store.head().await.must("head");
    let written = usize::try_from(head).expect("small");
    let _ = tokio::time::timeout(PUSH_TIMEOUT, async {
        while probe.seen.lock().expect("probe").0 < written {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await;
    let seen = probe.seen.lock().expect("probe").clone();
    assert!(seen.1.is_empty(), "the feed ran before commit: {:?}", seen.1);
    assert_eq!(seen.0, written, "the probe saw every event once");
}

/// A write that fails (unknown conversation, editing a tombstone, marking a conversation
/// that does not exist) leaves no trace, even when it is committed together with others:
/// it takes no position and feeds no event, and the writes around it all succeed.
pub async fn failed_writes_leave_no_trace(fx: Fixture) {
    use crate::store::{EditMessage, MarkUpdate, NewMessage};
    use crate::{ConversationId, MessageId, ReceiptKind, Timestamp};

    let m = fx.messenger().await;
    let (alice, bob) = two_users();
    let c = open(&m, alice, bob, None).await;
    let gone = send(&m, alice, c.id, "to be deleted").await;
    m.delete(alice, gone.id).await.must("delete");
    let recorder = Arc::new(FeedRecorder::default());
    fx.store.attach_feed(recorder.clone()).await.must("attach");
    let start = fx.store.head().await.must("head");

    let message = move |conversation_id, body| NewMessage {
        id: MessageId::new(),
        conversation_id,
        sender_id: Some(alice),
        attachments: Vec::new(),
        reply_to_seq: None,
        body,
        metadata: None,
        client_msg_id: None,
        created_at: Timestamp::now(),
        audience: vec![alice, bob],
    };
    let mut tasks = JoinSet::new();
    for i in 0..60_u32 {
        let store = fx.store.clone();
        tasks.spawn(async move {
            let outcome = match i % 4 {
                0 => {
                    store.append(message(ConversationId::new(), "nowhere".into())).await.map(|_| ())
                }
                1 => store
                    .edit(EditMessage {
                        id: gone.id,
                        body: "too late".into(),
                        edited_at: Timestamp::now(),
                        audience: vec![alice, bob],
                        actor: Some(alice),
                    })
                    .await
                    .map(|_| ()),
                2 => store
                    .mark(MarkUpdate {
                        conversation_id: ConversationId::new(),
                        user_id: bob,
                        kind: ReceiptKind::Read,
                        up_to_seq: 1,
                        at: Timestamp::now(),
                        audience: vec![alice, bob],
                    })
                    .await
                    .map(|_| ()),
                _ => store.append(message(c.id, format!("good {i}"))).await.map(|_| ()),
            };
            (i % 4, outcome.map_err(|e| e.code()))
        });
    }
    let mut good = 0_u64;
    while let Some(joined) = tasks.join_next().await {
        match joined.expect("task") {
            (3, Ok(())) => good += 1,
            (0 | 2, Err(code)) => assert_eq!(code, "not_found"),
            (1, Err(code)) => assert_eq!(code, "conflict"),
            (kind, outcome) => panic!("write of kind {kind} ended {outcome:?}"),
        }
    }
    assert_eq!(good, 15, "every good write succeeded");
    let head = fx.store.head().await.must("head");
    assert_eq!(head, start + good, "failed writes took no position");
    assert!(recorder.wait_for(head, PUSH_TIMEOUT).await, "the feed reached the head");
    let fed: Vec<u64> = recorder.events().iter().map(|e| e.logged.position).collect();
    assert_eq!(fed, (start + 1..=head).collect::<Vec<_>>(), "dense, and nothing for failures");
    let seqs: Vec<u64> = fx
        .store
        .history(c.id, HistoryWindow::Latest, 100)
        .await
        .must("history")
        .iter()
        .map(|m| m.seq)
        .collect();
    assert_eq!(seqs, (1..=16).collect::<Vec<_>>(), "seqs stay gap-free around failures");
}
