//! Moving a store into PostgreSQL (`messaging_core::transfer`), PostgreSQL to PostgreSQL:
//! a source holding every kind of data, written through a `Messenger`, is moved into a
//! fresh database, and the target then answers every read as the source does (the move's
//! own verification, plus the reads it does not compare: search, history, listing by
//! context, idempotency keys, blocks, revocations, last-seen times) and goes on from the
//! source's seqs and log position. A move stopped halfway resumes and ends the same; a
//! target with data, or with another move's pages, is refused.
//!
//! Each case runs on fresh databases cloned from the migrated template (see `support`).

#![allow(clippy::expect_used, clippy::panic, reason = "tests: failing loudly is the point")]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use messaging_core::id::{ConversationId, MessageId, UserId};
use messaging_core::model::{Attachment, Event, ReactionState};
use messaging_core::store::{
    ConsumerLog, ContextPage, ConversationStore, EventLog, HistoryWindow, MessageStore,
    SearchQuery, SocialStore,
};
use messaging_core::time::Timestamp;
use messaging_core::transfer::{
    After, Checkpoint, ImportState, MoveOptions, MoveReport, Progress, Records, Section,
    StoreExport, StoreImport, VerifyReport, move_store, source_digest, verify_move,
};
use messaging_core::{ConsumerOptions, ConsumerStart, Error, Messenger, SendMessage};
use messaging_store_pg::{PgOptions, PgStore};
use serde_json::json;

/// Conversations of alice with users of their own, beyond the three named ones: enough
/// rows for many pages of every section at the small page sizes below.
const EXTRA: usize = 5;

/// A source store with every kind of data, and what the checks need to know of it.
struct Source {
    store: Arc<PgStore>,
    alice: UserId,
    bob: UserId,
    carol: UserId,
    dave: UserId,
    /// alice and bob, no context: edits, deletes, replies, reactions, marks, a mute.
    direct: ConversationId,
    /// alice and carol about `order:7`, with metadata: a system message, an archive, a
    /// metadata update.
    order: ConversationId,
    /// alice's first message in `direct` (client_msg_id `k-1`).
    first: MessageId,
    /// The records each section holds.
    sections: BTreeMap<Section, u64>,
}

async fn store(url: &str) -> Arc<PgStore> {
    Arc::new(PgStore::connect(url, PgOptions::default().migrate(false)).await.expect("connect"))
}

fn voice() -> Attachment {
    Attachment::new("https://files.example/v/2.ogg", "audio/ogg")
}

/// A fresh source database, filled through a messenger; `None` to skip.
async fn source() -> Option<Source> {
    let url = support::fresh_database().await?;
    let store = store(&url).await;
    let messenger = Messenger::new(store.clone()).await.expect("messenger");
    let service = messenger.service();
    let (alice, bob, carol, dave) = (UserId::new(), UserId::new(), UserId::new(), UserId::new());

    let direct = messenger.open(alice, bob, None).await.expect("open").conversation.id;
    let order_metadata = json!({"order": 7, "items": ["a", "b"]});
    let order = service
        .open(alice, carol, Some("order:7"), Some(order_metadata))
        .await
        .expect("service open")
        .conversation
        .id;
    messenger
        .send(bob, SendMessage::to_peer(carol, Some("listing:1"), "Is it still for sale?"))
        .await
        .expect("send to a peer");

    // `direct`: a keyed message with metadata, a reply with a photo, a voice note deleted,
    // an edited message, a retry, reactions added and removed, marks and a mute.
    let to_direct = |body: &str| SendMessage::to_conversation(direct, body);
    let keyed = to_direct("Hello, World! 42").client_msg_id("k-1").metadata(json!({"lang": "en"}));
    let first = messenger.send(alice, keyed.clone()).await.expect("send").message;
    let reply = to_direct("the beach").attachment(support::photo()).reply_to(1);
    let second = messenger.send(bob, reply).await.expect("reply").message;
    let note = messenger.send(bob, to_direct("").attachment(voice())).await.expect("voice");
    messenger.delete(bob, note.message.id).await.expect("delete");
    let typo = messenger.send(alice, to_direct("a typo hre")).await.expect("send").message;
    messenger.edit(alice, typo.id, "a typo here").await.expect("edit");
    assert!(!messenger.send(alice, keyed).await.expect("retry").created, "a retry");
    messenger.react(bob, first.id, "👍", ReactionState::Added).await.expect("react");
    messenger.react(alice, second.id, "🎉", ReactionState::Added).await.expect("react");
    messenger.react(alice, second.id, "🎉", ReactionState::Removed).await.expect("unreact");
    messenger.react(alice, second.id, "❤️", ReactionState::Added).await.expect("react");
    messenger.mark_read(bob, direct, 2).await.expect("read");
    messenger.mark_delivered(bob, direct, 4).await.expect("delivered");
    messenger.mark_read(alice, direct, 4).await.expect("read");
    let in_an_hour = Timestamp::from_millis(Timestamp::now().as_millis() + 3_600_000);
    messenger.mute(bob, direct, Some(in_an_hour)).await.expect("mute");

    // `order`: a system message (keyed), the customer's answer, an archive, new metadata.
    let system = SendMessage::to_conversation(order, "Order shipped").client_msg_id("sys-1");
    service.post(system).await.expect("system message");
    messenger.send(carol, SendMessage::to_conversation(order, "thanks")).await.expect("send");
    messenger.archive(alice, order, true).await.expect("archive");
    service.set_metadata(order, Some(json!({"order": 7, "status": "shipped"}))).await.expect("md");

    for i in 0..EXTRA {
        let user = UserId::new();
        let opened = messenger
            .send(alice, SendMessage::to_peer(user, None, format!("extra {i} hello")))
            .await
            .expect("send to a peer")
            .message;
        for n in 0..2 {
            let answer = SendMessage::to_conversation(opened.conversation_id, format!("ok {n}"));
            messenger.send(user, answer).await.expect("answer");
        }
    }

    messenger.block(dave, alice).await.expect("block");
    service.block(carol, dave).await.expect("block");
    messenger.connect(carol).await.expect("session").close().await.expect("close");
    service.revoke(dave).await.expect("revoke");
    let options = ConsumerOptions::default().start(ConsumerStart::Beginning).batch(3);
    let mut consumer = messenger.consumer("webhooks", options).expect("consumer");
    let batch = consumer.next_batch().await.expect("a batch");
    consumer.commit(batch.last().expect("events").logged.position).await.expect("commit");
    consumer.release().await.expect("release");

    let head = store.head().await.expect("head");
    let conversations = 3 + EXTRA as u64;
    let sections = BTreeMap::from([
        (Section::Conversations, conversations),
        (Section::Members, 2 * conversations),
        (Section::Messages, 1 + 4 + 2 + 3 * EXTRA as u64),
        (Section::Log, head),
        (Section::Blocks, 2),
        (Section::LastSeen, 1),
        (Section::Revocations, 1),
        (Section::Consumers, 1),
    ]);
    Some(Source { store, alice, bob, carol, dave, direct, order, first: first.id, sections })
}

/// A fresh target database's store (the template is migrated; nothing else in it).
async fn target() -> Arc<PgStore> {
    store(&support::fresh_database().await.expect("a second database")).await
}

async fn move_all(source: &Source, target: &PgStore, options: MoveOptions) -> MoveReport {
    move_store(&*source.store, target, options, &mut |_| {}).await.expect("the move")
}

/// Verifies the move, failing with the differences found.
async fn verify(source: &Source, target: &PgStore) -> VerifyReport {
    let report =
        verify_move(&*source.store, target, 3, Timestamp::now()).await.expect("verification");
    assert!(report.is_identical(), "{} differences: {:#?}", report.differences, report.mismatches);
    assert_eq!(report.sections, source.sections, "records compared");
    assert_eq!(report.users, 3 + EXTRA as u64, "every member's views compared");
    report
}

fn is_conflict<T: std::fmt::Debug>(result: &Result<T, Error>) -> bool {
    matches!(result, Err(Error::Conflict(_)))
}

/// Everything moves: the verification finds no difference; the reads it does not compare
/// (search, history, by context, idempotency keys, blocks, revocations, last-seen) answer
/// alike; and the target goes on from the source's seqs and log position.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_copies_everything_and_the_target_goes_on_from_it() {
    let Some(source) = source().await else { return };
    let target = target().await;
    assert_eq!(target.import_state().await.expect("state"), ImportState::Empty);

    let mut pages = 0;
    let options = MoveOptions { resume: false, page: 4 };
    let report = move_store(&*source.store, &*target, options, &mut |_: &Progress| pages += 1)
        .await
        .expect("the move");
    let head = source.store.head().await.expect("head");
    assert_eq!(report.head, head);
    assert_eq!(report.sections, source.sections, "{report:?}");
    let records: u64 = source.sections.values().sum();
    assert_eq!(report.copied, records, "every record copied once");
    assert!(pages >= records / 4, "page by page: {pages}");
    assert_eq!(report.resumed_from, None);
    verify(&source, &target).await;
    assert_eq!(target.head().await.expect("head"), head);
    assert_eq!(target.import_state().await.expect("state"), ImportState::Holds);

    // The reads the verification does not compare.
    let (from, to) = (&source.store, &target);
    for (user, words) in [
        (source.alice, "hello"),
        (source.alice, "here"),
        (source.bob, "world 42"),
        (source.carol, "order shipped"),
        (source.alice, "hre"),
    ] {
        let query = SearchQuery {
            user,
            terms: messaging_core::search::query_terms(words),
            conversation_id: None,
            limit: 20,
        };
        let found = from.search(query.clone()).await.expect("search");
        assert_eq!(to.search(query).await.expect("search"), found, "search for {words:?}");
        assert_eq!(found.is_empty(), words == "hre", "search for {words:?}: {found:?}");
    }
    for conversation in [source.direct, source.order] {
        let window = HistoryWindow::Latest;
        let history = from.history(conversation, window, 50).await.expect("history");
        assert_eq!(to.history(conversation, window, 50).await.expect("history"), history);
    }
    for context in ["order:7", "listing:1"] {
        let page = ContextPage { context: context.to_owned(), before: None, limit: 10 };
        let listed = from.conversations_by_context(page.clone()).await.expect("by context");
        assert_eq!(listed.len(), 1, "{context}");
        assert_eq!(to.conversations_by_context(page).await.expect("by context"), listed);
    }
    let key = (source.direct, source.alice, "k-1");
    let keyed = from.find_by_client_msg_id(key.0, key.1, key.2).await.expect("by key");
    assert_eq!(to.find_by_client_msg_id(key.0, key.1, key.2).await.expect("by key"), keyed);
    let pair = to.find_direct(source.bob, source.alice, None).await.expect("find_direct");
    assert_eq!(pair.map(|c| c.id), Some(source.direct));
    assert!(to.is_blocked_between(source.alice, source.dave).await.expect("blocked"));
    assert_eq!(to.blocks(source.carol, None, 10).await.expect("blocks"), [source.dave]);
    assert_eq!(
        to.revoked_at(source.dave).await.expect("revoked"),
        from.revoked_at(source.dave).await.expect("revoked")
    );
    let users = [source.alice, source.carol];
    assert_eq!(
        to.last_seen(&users).await.expect("seen"),
        from.last_seen(&users).await.expect("seen")
    );
    assert_eq!(to.peers(source.carol).await.expect("peers").len(), 2, "alice and bob");

    // The target goes on: the next seq, the next position; retries find the originals.
    let messenger = Messenger::new(target.clone()).await.expect("messenger on the target");
    let next = SendMessage::to_conversation(source.direct, "after the move");
    let sent = messenger.send(source.bob, next).await.expect("send");
    assert_eq!(sent.message.seq, 5, "the next seq of the conversation");
    assert_eq!(target.head().await.expect("head"), head + 1, "the next log position");
    let logged = target.read_log(head, head + 1, 10).await.expect("read_log");
    assert_eq!(logged.len(), 1);
    assert!(
        matches!(&logged[0].logged.event, Event::MessageCreated(m) if m.id == sent.message.id),
        "{logged:?}"
    );
    let retry =
        SendMessage::to_conversation(source.direct, "Hello, World! 42").client_msg_id("k-1");
    let retried = messenger.send(source.alice, retry).await.expect("retry");
    assert_eq!((retried.created, retried.message.id), (false, source.first));
    let system = SendMessage::to_conversation(source.order, "Order shipped").client_msg_id("sys-1");
    assert!(!messenger.service().post(system).await.expect("system retry").created);
    let reopened = messenger.open(source.alice, source.bob, None).await.expect("open");
    assert_eq!((reopened.created, reopened.conversation.id), (false, source.direct));
    let unread = messenger.unread(source.bob).await.expect("unread");
    assert_eq!(unread.total, 0, "bob muted the conversation");
    let options = ConsumerOptions::default().start(ConsumerStart::Beginning).batch(1);
    let mut consumer = messenger.consumer("webhooks", options).expect("consumer");
    let batch = consumer.next_batch().await.expect("a batch");
    assert_eq!(batch[0].logged.position, 4, "the consumer goes on after its position (3)");
    consumer.release().await.expect("release");

    // A finished target takes no second move.
    let again = move_store(&*source.store, &*target, MoveOptions::default(), &mut |_| {}).await;
    assert!(is_conflict(&again), "{again:?}");
    let resumed = MoveOptions { resume: true, page: 4 };
    let again = move_store(&*source.store, &*target, resumed, &mut |_| {}).await;
    assert!(is_conflict(&again), "{again:?}");
}

/// A move killed halfway (its progress callback panics after a page of messages committed)
/// leaves an unfinished import: a move without `resume` is refused, one with it goes on
/// from the checkpoint and ends identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_move_resumes_and_ends_identical() {
    let Some(source) = source().await else { return };
    let target = target().await;
    let (from, to) = (source.store.clone(), target.clone());
    let killed = tokio::spawn(async move {
        let mut kill = |progress: &Progress| {
            if progress.section == Section::Messages && progress.copied >= 6 {
                panic!("the move is killed");
            }
        };
        move_store(&*from, &*to, MoveOptions { resume: false, page: 3 }, &mut kill).await
    })
    .await;
    assert!(killed.is_err_and(|e| e.is_panic()), "the move stopped halfway");

    let ImportState::Unfinished(stopped) = target.import_state().await.expect("state") else {
        panic!("an unfinished import");
    };
    assert_eq!((stopped.section, stopped.copied), (Section::Messages, 6), "{stopped:?}");
    let sixth = source.store.export(Section::Messages, &After::Start, 6).await.expect("export");
    assert_eq!(Some(stopped.after.clone()), sixth.last_key());

    let fresh = move_store(&*source.store, &*target, MoveOptions::default(), &mut |_| {}).await;
    assert!(is_conflict(&fresh), "a move that does not resume: {fresh:?}");
    assert_eq!(
        target.import_state().await.expect("state"),
        ImportState::Unfinished(stopped.clone())
    );

    let report = move_all(&source, &target, MoveOptions { resume: true, page: 5 }).await;
    assert_eq!(report.resumed_from, Some(stopped));
    let before = source.sections[&Section::Conversations] + source.sections[&Section::Members] + 6;
    let records: u64 = source.sections.values().sum();
    assert_eq!(report.copied, records - before, "this run copied the rest, once");
    verify(&source, &target).await;
    assert_eq!(target.import_state().await.expect("state"), ImportState::Holds);
}

/// The pages a store takes: only into a store without data of its own, only continuing
/// the import it holds; a page that breaks a rule leaves nothing behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_are_refused_where_they_would_mix_data() {
    let Some(source) = source().await else { return };
    let head = source.store.head().await.expect("head");
    let digest = source_digest(&*source.store).await.expect("digest");
    let start = || Checkpoint::start(head).with_digest(&digest);

    // A store with data of its own.
    let busy = target().await;
    let messenger = Messenger::new(busy.clone()).await.expect("messenger");
    messenger.open(UserId::new(), UserId::new(), None).await.expect("open");
    assert_eq!(busy.import_state().await.expect("state"), ImportState::Holds);
    let empty = Records::empty(Section::Conversations);
    let refused = busy.import(&empty, &start()).await;
    assert!(is_conflict(&refused), "a first page into a store with data: {refused:?}");
    let moved = move_store(&*source.store, &*busy, MoveOptions::default(), &mut |_| {}).await;
    assert!(is_conflict(&moved), "{moved:?}");
    assert!(is_conflict(&busy.finish_import(head).await), "no import to finish");

    // An unfinished import takes the pages that continue it, and nothing else.
    let target = target().await;
    assert!(is_conflict(&target.finish_import(head).await), "no import to finish");
    target.import(&Records::empty(Section::Conversations), &start()).await.expect("start");
    let page = source.store.export(Section::Conversations, &After::Start, 2).await.expect("export");
    let last = page.last_key().expect("a page");
    let at = |copied| {
        Checkpoint::at(head, Section::Conversations, last.clone(), copied).with_digest(&digest)
    };
    assert!(is_conflict(&target.import(&page, &at(3)).await), "a count that skips");
    target.import(&page, &at(2)).await.expect("the first page");
    assert!(is_conflict(&target.import(&page, &at(4)).await), "the same page again");
    let other =
        Checkpoint::at(head + 1, Section::Conversations, last.clone(), 4).with_digest(&digest);
    assert!(is_conflict(&target.import(&page, &other).await), "another source");
    assert!(is_conflict(&target.import(&Records::empty(Section::Conversations), &start()).await));
    let changed = Checkpoint::at(head, Section::Conversations, last.clone(), 4).with_digest("x");
    assert!(is_conflict(&target.import(&page, &changed).await), "a source changed since");

    // Members of conversations the store does not hold: invalid, and nothing stays.
    let members = source.store.export(Section::Members, &After::Start, 100).await.expect("export");
    let last_member = members.last_key().expect("members");
    let checkpoint = Checkpoint::at(head, Section::Members, last_member, members.len() as u64)
        .with_digest(&digest);
    let orphans = target.import(&members, &checkpoint).await;
    assert!(matches!(orphans, Err(Error::Invalid(_))), "{orphans:?}");
    assert_eq!(target.import_state().await.expect("state"), ImportState::Unfinished(at(2)));
    assert_eq!(target.count(Section::Members).await.expect("count"), 0);

    // The rest of the move resumes from the first page and ends identical.
    let report = move_all(&source, &target, MoveOptions { resume: true, page: 7 }).await;
    assert_eq!(report.resumed_from, Some(at(2)));
    verify(&source, &target).await;
}

/// A key of another section's shape is `Invalid`, for every section; an empty source
/// moves to a target that stays empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_keys_are_invalid_and_an_empty_store_moves() {
    let Some(url) = support::fresh_database().await else { return };
    let (source, target) = (store(&url).await, target().await);
    let nil = uuid::Uuid::nil();
    for (section, wrong) in [
        (Section::Conversations, After::Position(1)),
        (Section::Members, After::Id(nil)),
        (Section::Messages, After::Pair(nil, nil)),
        (Section::Log, After::Name("x".to_owned())),
        (Section::Blocks, After::Position(1)),
        (Section::LastSeen, After::Pair(nil, nil)),
        (Section::Revocations, After::Name("x".to_owned())),
        (Section::Consumers, After::Id(nil)),
    ] {
        let page = source.export(section, &wrong, 10).await;
        assert!(matches!(page, Err(Error::Invalid(_))), "{section:?} after {wrong:?}: {page:?}");
        let page = source.export(section, &After::Start, 10).await.expect("an empty page");
        assert!(page.is_empty() && page.section() == section);
    }
    let report = move_store(&*source, &*target, MoveOptions::default(), &mut |_| {}).await;
    let report = report.expect("an empty move");
    assert_eq!((report.head, report.copied), (0, 0));
    assert_eq!(target.import_state().await.expect("state"), ImportState::Empty);
}

/// Two moves into one target at once: one finishes, the other is refused (`Conflict`) at
/// its first page that does not continue the other's, and the target ends identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_moves_into_one_target_never_mix() {
    let Some(source) = source().await else { return };
    let target = target().await;
    let run = |page| {
        let (from, to) = (source.store.clone(), target.clone());
        tokio::spawn(async move {
            move_store(&*from, &*to, MoveOptions { resume: false, page }, &mut |_| {}).await
        })
    };
    let (a, b) = (run(2), run(3));
    let outcomes = [a.await.expect("move a"), b.await.expect("move b")];
    let finished = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
    assert_eq!(finished, 1, "{outcomes:?}");
    assert!(outcomes.iter().any(is_conflict), "{outcomes:?}");
    verify(&source, &target).await;
}
