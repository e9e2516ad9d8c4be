//! Small helpers shared by the cases: checking results and error codes, building users
//! and conversations, reading the whole event log, waiting for pushes with a timeout, and
//! two pieces a host application would normally provide (a [`FeedRecorder`] sink and a
//! [`Connections`] social graph).

use std::collections::HashSet;
use std::fmt::Debug;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::error::Result;
use crate::fanout::Push;
use crate::id::{ConversationId, UserId};
use crate::model::{CommittedEvent, Conversation, Cursor, Event, LoggedEvent, Message, Signal};
use crate::policy::SocialGraph;
use crate::store::{FeedSink, Store};
use crate::time::Timestamp;
use crate::{ConversationsQuery, Messenger, SendMessage, Session};

/// How long a case waits for a push before it fails (a missing event fails, never hangs).
pub const PUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Unwraps results with a message naming the step that failed.
pub(crate) trait Must<T> {
    /// The value, or a panic naming `what` and the error's protocol code.
    fn must(self, what: &str) -> T;
}

impl<T> Must<T> for Result<T> {
    #[track_caller]
    fn must(self, what: &str) -> T {
        match self {
            Ok(value) => value,
            Err(error) => panic!("{what}: unexpected error `{}`: {error}", error.code()),
        }
    }
}

/// Asserts that `result` is an error with the protocol code `code`.
#[track_caller]
pub(crate) fn assert_code<T: Debug>(result: Result<T>, code: &str, what: &str) {
    match result {
        Ok(value) => panic!("{what}: expected `{code}`, got Ok({value:?})"),
        Err(error) => assert_eq!(error.code(), code, "{what}: wrong error code ({error})"),
    }
}

/// Two fresh users.
pub(crate) fn two_users() -> (UserId, UserId) {
    (UserId::new(), UserId::new())
}

/// Opens (or finds) the conversation of `a` and `b` about `context`, and waits until the
/// feed has dispatched it, so sessions connected afterwards start after its event.
pub(crate) async fn open(
    m: &Messenger,
    a: UserId,
    b: UserId,
    context: Option<&str>,
) -> Conversation {
    let conversation = m.open(a, b, context).await.must("open").conversation;
    settle(m).await;
    conversation
}

/// Waits until the messenger's feed has dispatched everything committed so far.
///
/// A store may feed asynchronously (PostgreSQL's log tailer): a reply means the change is
/// committed, not yet pushed. A subscription of a user nobody talks to reads the fan-out's
/// last dispatched position without side effects.
pub(crate) async fn settle(m: &Messenger) {
    let head = m.store().head().await.must("head");
    let waited = tokio::time::timeout(PUSH_TIMEOUT, async {
        loop {
            let (_, dispatched) = m.fanout().subscribe(UserId::new());
            if dispatched >= head {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "the feed did not reach the committed head {head}");
}

/// Sends `body` from `sender` into `conversation`.
pub(crate) async fn send(
    m: &Messenger,
    sender: UserId,
    conversation: ConversationId,
    body: &str,
) -> Message {
    m.send(sender, SendMessage::to_conversation(conversation, body)).await.must("send").message
}

/// Sends `n` messages from `sender`, one after the other, with bodies `"{prefix} {i}"`.
pub(crate) async fn send_n(
    m: &Messenger,
    sender: UserId,
    conversation: ConversationId,
    n: usize,
    prefix: &str,
) -> Vec<Message> {
    let mut sent = Vec::with_capacity(n);
    for i in 1..=n {
        sent.push(send(m, sender, conversation, &format!("{prefix} {i}")).await);
    }
    sent
}

/// The seqs of the latest 100 messages of a conversation, as `user`'s history shows them.
pub(crate) async fn history_seqs(
    m: &Messenger,
    user: UserId,
    conversation: ConversationId,
) -> Vec<u64> {
    let query = crate::HistoryQuery { limit: Some(100), ..Default::default() };
    let history = m.history(user, conversation, query).await.must("history");
    history.messages.iter().map(|message| message.seq).collect()
}

/// Every event of the log visible to `user`, read straight from the store.
pub(crate) async fn log_of(store: &dyn Store, user: UserId) -> Vec<LoggedEvent> {
    let head = store.head().await.must("head");
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let page = store.read_events(user, after, head, 500).await.must("read_events");
        let Some(last) = page.last() else { break };
        after = last.position;
        events.extend(page);
    }
    events
}

/// The events of `log` named `name` that concern message `id` (or conversation `id`).
pub(crate) fn events_named<'a>(log: &'a [LoggedEvent], name: &str) -> Vec<&'a LoggedEvent> {
    log.iter().filter(|e| e.event.name() == name).collect()
}

/// The `message.*` events of `log` carrying message `id`.
pub(crate) fn message_events<'a>(
    log: &'a [LoggedEvent],
    name: &str,
    id: crate::id::MessageId,
) -> Vec<&'a LoggedEvent> {
    log.iter()
        .filter(|e| e.event.name() == name && e.event.message().is_some_and(|m| m.id == id))
        .collect()
}

/// The next push of `session`, failing after [`PUSH_TIMEOUT`].
pub(crate) async fn next_push(session: &mut Session, what: &str) -> Push {
    match tokio::time::timeout(PUSH_TIMEOUT, session.recv()).await {
        Ok(Ok(push)) => push,
        Ok(Err(error)) => panic!("{what}: the subscription ended: {error}"),
        Err(_) => panic!("{what}: no push within {PUSH_TIMEOUT:?}"),
    }
}

/// The next durable event pushed to `session`, skipping signals.
pub(crate) async fn next_event(session: &mut Session, what: &str) -> LoggedEvent {
    loop {
        if let Push::Event(event) = next_push(session, what).await {
            return event.get().clone();
        }
    }
}

/// The next signal pushed to `session`, skipping durable events.
pub(crate) async fn next_signal(session: &mut Session, what: &str) -> Signal {
    loop {
        if let Push::Signal(signal) = next_push(session, what).await {
            return signal.get().clone();
        }
    }
}

/// Every push of `session` up to and including the durable event carrying message `id`
/// (a barrier: anything published before it is already queued).
pub(crate) async fn pushes_until_message(
    session: &mut Session,
    id: crate::id::MessageId,
    what: &str,
) -> Vec<Push> {
    let mut pushes = Vec::new();
    loop {
        let push = next_push(session, what).await;
        let done =
            matches!(&push, Push::Event(e) if e.get().event.message().is_some_and(|m| m.id == id));
        pushes.push(push);
        if done {
            return pushes;
        }
    }
}

/// Pages `session.sync` from `from` with `limit` until `has_more` is false; checks that
/// every page continues where the previous one ended. Returns the events and the final
/// cursor.
pub(crate) async fn sync_all(
    session: &Session,
    from: Cursor,
    limit: usize,
) -> (Vec<LoggedEvent>, Cursor) {
    let mut events: Vec<LoggedEvent> = Vec::new();
    let mut cursor = from;
    for _ in 0..100_000 {
        let page = session.sync(Some(cursor), Some(limit)).await.must("sync");
        assert!(page.events.len() <= limit, "sync returned more than its limit");
        if page.has_more {
            // Full, or cut by the reply budget: never empty.
            assert!(!page.events.is_empty(), "a page with has_more must hold an event");
            let last = page.events.last().map(LoggedEvent::cursor);
            assert_eq!(Some(page.cursor), last, "has_more: the cursor is the last event's");
        }
        for event in &page.events {
            assert!(
                event.position > cursor.position(),
                "sync returned an event at or before its cursor"
            );
        }
        events.extend(page.events);
        cursor = page.cursor;
        if !page.has_more {
            return (events, cursor);
        }
    }
    panic!("sync never ended");
}

/// The positions of `events`.
pub(crate) fn positions(events: &[LoggedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.position).collect()
}

/// Asserts strictly ascending positions (no repeat).
#[track_caller]
pub(crate) fn assert_ascending(events: &[LoggedEvent], what: &str) {
    for pair in events.windows(2) {
        assert!(
            pair[0].position < pair[1].position,
            "{what}: positions not strictly ascending: {:?}",
            positions(events)
        );
    }
}

/// Waits until the clock has moved past `t` (activity order needs distinct milliseconds).
pub(crate) async fn after_millisecond(t: Timestamp) {
    while Timestamp::now() <= t {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The message carried by a message event (panics on other events).
#[track_caller]
pub(crate) fn carried(event: &Event) -> &Message {
    event.message().unwrap_or_else(|| panic!("{} carries no message", event.name()))
}

/// A [`FeedSink`] that records what the store hands it, for checking the feed contract.
///
/// ```no_run
/// # async fn demo(store: std::sync::Arc<dyn messaging_core::Store>) -> messaging_core::Result<()> {
/// use std::sync::Arc;
/// use messaging_core::testkit::FeedRecorder;
///
/// let recorder = Arc::new(FeedRecorder::default());
/// store.attach_feed(recorder.clone()).await?;
/// assert_eq!(recorder.start(), Some(store.head().await?));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct FeedRecorder {
    log: Mutex<Recorded>,
    last: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct Recorded {
    start: Option<u64>,
    starts: usize,
    batches: Vec<Vec<CommittedEvent>>,
    committed_before_start: bool,
}

impl Default for FeedRecorder {
    fn default() -> Self {
        Self { log: Mutex::new(Recorded::default()), last: watch::Sender::new(0) }
    }
}

impl FeedRecorder {
    fn lock(&self) -> std::sync::MutexGuard<'_, Recorded> {
        self.log.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The head passed to [`FeedSink::start`], if it was called.
    #[must_use]
    pub fn start(&self) -> Option<u64> {
        self.lock().start
    }

    /// How many times [`FeedSink::start`] was called.
    #[must_use]
    pub fn starts(&self) -> usize {
        self.lock().starts
    }

    /// Whether [`FeedSink::committed`] was called before [`FeedSink::start`].
    #[must_use]
    pub fn committed_before_start(&self) -> bool {
        self.lock().committed_before_start
    }

    /// Every batch received, in order.
    #[must_use]
    pub fn batches(&self) -> Vec<Vec<CommittedEvent>> {
        self.lock().batches.clone()
    }

    /// Every event received, in order.
    #[must_use]
    pub fn events(&self) -> Vec<CommittedEvent> {
        self.lock().batches.iter().flatten().cloned().collect()
    }

    /// Waits until an event at `position` or later was received; false after `timeout`.
    pub async fn wait_for(&self, position: u64, timeout: Duration) -> bool {
        let mut rx = self.last.subscribe();
        matches!(tokio::time::timeout(timeout, rx.wait_for(|p| *p >= position)).await, Ok(Ok(_)))
    }
}

impl FeedSink for FeedRecorder {
    fn start(&self, head: u64) {
        let mut log = self.lock();
        log.start = Some(head);
        log.starts += 1;
        drop(log);
        self.last.send_modify(|p| *p = (*p).max(head));
    }

    fn committed(&self, events: &[CommittedEvent]) {
        let mut log = self.lock();
        if log.start.is_none() {
            log.committed_before_start = true;
        }
        log.batches.push(events.to_vec());
        drop(log);
        if let Some(last) = events.last() {
            let position = last.logged.position;
            self.last.send_modify(|p| *p = (*p).max(position));
        }
    }
}

/// A host application's social graph for the tests of [`FirstDegree`](crate::FirstDegree):
/// a set of connected pairs that the test can change while it runs.
#[derive(Debug, Default)]
pub struct Connections {
    pairs: Mutex<HashSet<(UserId, UserId)>>,
}

impl Connections {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<(UserId, UserId)>> {
        self.pairs.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Connects `a` and `b` (both directions).
    pub fn connect(&self, a: UserId, b: UserId) {
        self.lock().insert(if a <= b { (a, b) } else { (b, a) });
    }

    /// Disconnects `a` and `b`.
    pub fn disconnect(&self, a: UserId, b: UserId) {
        self.lock().remove(&if a <= b { (a, b) } else { (b, a) });
    }
}

#[async_trait]
impl SocialGraph for Connections {
    async fn connected(&self, a: UserId, b: UserId) -> Result<bool> {
        Ok(self.lock().contains(&if a <= b { (a, b) } else { (b, a) }))
    }
}

/// Reads the pushes of `session` until a durable event at `position` or later arrived;
/// returns the durable events read. A barrier: the session's fan-out has then dispatched
/// everything up to `position` (the session's user must see the event at `position`).
pub(crate) async fn events_until(
    session: &mut Session,
    position: u64,
    what: &str,
) -> Vec<LoggedEvent> {
    let mut events = Vec::new();
    loop {
        let event = next_event(session, what).await;
        let reached = event.position >= position;
        events.push(event);
        if reached {
            return events;
        }
    }
}

/// A conversation list query of the unarchived conversations: page size and `next`.
pub(crate) fn list_query(limit: Option<usize>, before: Option<&str>) -> ConversationsQuery {
    ConversationsQuery { limit, before: before.map(str::to_owned), ..ConversationsQuery::default() }
}
