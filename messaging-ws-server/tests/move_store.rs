//! Moving a SQLite deployment onto PostgreSQL (`messaging-ws-server move`, and
//! `messaging_ws_server::relocate::move_database`): a database built through the library
//! with every kind of data, moved; every user's view read back before and after through
//! the messenger; a move killed halfway and resumed, compared with one never stopped; the
//! refusals. Needs PostgreSQL (`./scripts/test.sh` starts one); skipped without it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;

use messaging_core::model::{Attachment, ReactionState};
use messaging_core::time::Timestamp;
use messaging_core::transfer::{MoveOptions, Section, verify_move};
use messaging_core::{
    ConsumerOptions, ConsumerStart, ConversationId, ConversationsQuery, Cursor, HistoryQuery,
    Limits, Messenger, SendMessage, UserId,
};
use messaging_store_pg::{PgOptions, PgStore};
use messaging_store_sqlite::SqliteStore;
use messaging_ws_server::backend::{self, Database, StoreSettings};
use messaging_ws_server::relocate::{MoveRequest, check_database, move_database};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use support::pg_database;
use support::process::binary;

const WORDS: &[&str] =
    &["thou", "art", "sweet", "verona", "balcony", "moon", "lark", "rose", "night", "swear"];

/// What the builder made, to read back later.
struct Built {
    users: Vec<UserId>,
    conversations: Vec<ConversationId>,
    /// A cursor taken halfway: `sync` from it must serve the same after the move.
    saved: Cursor,
}

/// A SQLite database at `path` with every kind of data, through the library: `messages`
/// sends over a few dozen users.
async fn build(path: &Path, messages: usize) -> Built {
    let store = SqliteStore::open(path).await.unwrap();
    let messenger = Messenger::new(Arc::new(store.clone())).await.unwrap();
    let service = messenger.service();
    let mut rng = StdRng::seed_from_u64(20);
    let users: Vec<UserId> = (0..24).map(|_| UserId::new()).collect();
    let mut conversations = Vec::new();
    for (i, pair) in users.chunks(2).enumerate() {
        let (a, b) = (pair[0], pair[1]);
        // A conversation by send, one by open with a context, one by the host with metadata.
        let first = messenger.send(a, SendMessage::to_peer(b, None, "hello")).await.unwrap();
        conversations.push(first.message.conversation_id);
        let listing = format!("listing-{}", i % 3);
        conversations.push(messenger.open(b, a, Some(&listing)).await.unwrap().conversation.id);
        let peer = users[(i * 2 + 3) % users.len()];
        let hosted = service
            .open(a, peer, Some("order-1"), Some(serde_json::json!({"order": i, "b": [1, 2]})))
            .await
            .unwrap();
        conversations.push(hosted.conversation.id);
    }
    let mut saved = Cursor::at(0);
    let mut sent = Vec::new();
    for n in 0..messages {
        if n == messages / 2 {
            saved = messenger.cursor_now();
        }
        let conversation = conversations[rng.gen_range(0..conversations.len())];
        let summary = service.conversation(conversation).await.unwrap();
        let sender = summary.members[rng.gen_range(0..2)];
        let words: Vec<&str> =
            (0..rng.gen_range(1..8)).map(|_| WORDS[rng.gen_range(0..10)]).collect();
        let mut message = SendMessage::to_conversation(conversation, words.join(" "));
        if n % 10 == 0 {
            let mut attachment =
                Attachment::new(format!("https://files.example/{n}.png"), "image/png");
            attachment.size = Some(1000 + n as u64);
            attachment.width = Some(640);
            message = message.attachment(attachment);
        }
        if n % 15 == 7 && summary.last_seq > 0 {
            message = message.reply_to(rng.gen_range(1..=summary.last_seq));
        }
        if n % 4 == 0 {
            message = message.client_msg_id(format!("c-{n}"));
        }
        if n % 40 == 9 {
            message = message.metadata(serde_json::json!({"z": 1, "a": {"y": true, "x": null}}));
        }
        let sent_message = if n % 50 == 25 {
            service.post(message).await.unwrap().message
        } else {
            messenger.send(sender, message).await.unwrap().message
        };
        sent.push((sender, sent_message));
        if n % 25 == 3 {
            let (who, m) = &sent[rng.gen_range(0..sent.len())];
            if m.sender_id == Some(*who) && !m.deleted {
                let _ = messenger.edit(*who, m.id, "edited: thou art verona").await;
            }
        }
        if n % 30 == 11 {
            let (who, m) = &sent[rng.gen_range(0..sent.len())];
            if m.sender_id == Some(*who) {
                let _ = messenger.delete(*who, m.id).await;
            }
        }
        if n % 6 == 1 {
            let (_, m) = &sent[rng.gen_range(0..sent.len())];
            let c = service.conversation(m.conversation_id).await.unwrap();
            let reactor = c.members[rng.gen_range(0..2)];
            let emoji = ["👍", "❤️", "😂"][rng.gen_range(0..3)];
            let _ = messenger.react(reactor, m.id, emoji, ReactionState::Added).await;
            if n % 12 == 1 {
                let _ = messenger.react(reactor, m.id, emoji, ReactionState::Removed).await;
            }
        }
        if n % 9 == 4 {
            let c = service.conversation(conversation).await.unwrap();
            let reader = c.members[rng.gen_range(0..2)];
            let _ = messenger.mark_delivered(reader, conversation, c.last_seq).await;
            let _ = messenger.mark_read(reader, conversation, rng.gen_range(0..=c.last_seq)).await;
        }
    }
    // Settings, metadata, blocks, presence, a revocation, a consumer.
    let far = Timestamp::from_millis(Timestamp::now().as_millis() + 86_400_000 * 30);
    for (i, c) in conversations.iter().enumerate().step_by(5) {
        let member = service.conversation(*c).await.unwrap().members[i % 2];
        messenger.mute(member, *c, Some(far)).await.unwrap();
    }
    for (i, c) in conversations.iter().enumerate().skip(2).step_by(4) {
        let member = service.conversation(*c).await.unwrap().members[i % 2];
        messenger.archive(member, *c, true).await.unwrap();
    }
    service
        .set_metadata(conversations[1], Some(serde_json::json!({"status": "sold"})))
        .await
        .unwrap();
    messenger.block(users[0], users[5]).await.unwrap();
    messenger.block(users[7], users[2]).await.unwrap();
    service.block(users[9], users[10]).await.unwrap();
    for user in users.iter().take(6) {
        messenger.connect(*user).await.unwrap().close().await.unwrap();
    }
    service.revoke(users[3]).await.unwrap();
    let mut consumer = messenger
        .consumer("audit", ConsumerOptions::default().start(ConsumerStart::Beginning))
        .unwrap();
    let batch = consumer.next_batch().await.unwrap();
    if let Some(last) = batch.get(batch.len() / 2) {
        consumer.commit(last.position()).await.unwrap();
    }
    consumer.release().await.unwrap();
    store.close().await.unwrap();
    Built { users, conversations, saved }
}

/// Everything each user sees, through the messenger: conversation lists (unarchived and
/// archived), every conversation's history, unread totals, a search, `sync` from the
/// saved cursor.
async fn views(messenger: &Messenger, built: &Built) -> Vec<String> {
    let mut seen = Vec::new();
    let up_to = messenger.cursor_now();
    for user in &built.users {
        for archived in [false, true] {
            let mut before = None;
            loop {
                let query = ConversationsQuery {
                    before: before.clone(),
                    limit: Some(7),
                    archived,
                    ..Default::default()
                };
                let page = messenger.conversations(*user, query).await.unwrap();
                seen.push(format!("{user} conversations {archived:?} {page:?}"));
                match page.next {
                    Some(next) => before = Some(next),
                    None => break,
                }
            }
        }
        seen.push(format!("{user} unread {:?}", messenger.unread(*user).await.unwrap()));
        let found = messenger.search(*user, "verona", None, None).await.unwrap();
        seen.push(format!("{user} search {found:?}"));
        let mut after = Some(built.saved);
        loop {
            let page = messenger.sync(*user, after, up_to, Some(50)).await.unwrap();
            seen.push(format!("{user} sync {page:?}"));
            if !page.has_more {
                break;
            }
            after = Some(page.cursor);
        }
    }
    for conversation in &built.conversations {
        let summary = messenger.service().conversation(*conversation).await.unwrap();
        let member = summary.members[0];
        let mut before = None;
        loop {
            let query = HistoryQuery { before_seq: before, limit: Some(40), ..Default::default() };
            let page = messenger.history(member, *conversation, query).await.unwrap();
            seen.push(format!("{conversation} history {page:?}"));
            match page.messages.first() {
                Some(first) if page.has_more => before = Some(first.seq),
                _ => break,
            }
        }
    }
    seen
}

async fn pg_views(url: &str, built: &Built) -> Vec<String> {
    let store = PgStore::connect(url, PgOptions::default()).await.unwrap();
    let messenger = Messenger::new(Arc::new(store.clone())).await.unwrap();
    let seen = views(&messenger, built).await;
    store.close().await.unwrap();
    seen
}

async fn sqlite_views(path: &Path, built: &Built) -> Vec<String> {
    let store = SqliteStore::open(path).await.unwrap();
    let messenger = Messenger::new(Arc::new(store.clone())).await.unwrap();
    let seen = views(&messenger, built).await;
    store.close().await.unwrap();
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_user_sees_the_same_before_and_after_the_move() {
    let Some(url) = pg_database().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.db");
    let built = build(&path, 3_000).await;
    let before = sqlite_views(&path, &built).await;

    let request =
        MoveRequest { from: path.clone(), to: url.clone(), options: MoveOptions::default() };
    let mut pages = 0;
    let report = move_database(&request, &mut |_| pages += 1).await.unwrap();
    let checked = check_database(&path, &url, 500).await.unwrap();
    assert!(checked.verified.is_identical(), "{:#?}", checked.verified.mismatches);
    assert!(pages > 3, "progress after every page");
    let sections = &report.sections;
    assert_eq!(sections[&Section::Messages], 3_000 + 12, "every message, the first ones too");
    assert_eq!(sections[&Section::Log], report.head);
    assert!(sections[&Section::Blocks] == 3 && sections[&Section::Revocations] == 1);
    assert_eq!(sections[&Section::LastSeen], 6);
    assert_eq!(sections[&Section::Consumers], 1);
    assert_eq!(checked.verified.users, built.users.len() as u64);
    assert_eq!(checked.verified.contexts, 4, "three listings and the orders");
    assert_eq!(checked.verified.searches, 36, "a search in every conversation");

    let after = pg_views(&url, &built).await;
    assert_eq!(before.len(), after.len());
    for (a, b) in before.iter().zip(&after) {
        assert_eq!(a, b);
    }

    // The moved store goes on where the source stopped: the next seq, the next position.
    let store = PgStore::connect(&url, PgOptions::default()).await.unwrap();
    let messenger = Messenger::new(Arc::new(store.clone())).await.unwrap();
    let conversation = built.conversations[0];
    let last = messenger.service().conversation(conversation).await.unwrap();
    let member = last.members[0];
    let cursor = messenger.cursor_now();
    let sent =
        messenger.send(member, SendMessage::to_conversation(conversation, "after")).await.unwrap();
    assert_eq!(sent.message.seq, last.last_seq + 1);
    let page = messenger.sync(member, Some(cursor), messenger.cursor_now(), None).await;
    let page = page.unwrap();
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.events[0].position, report.head + 1);
    store.close().await.unwrap();

    // A second move into it is refused, resumed or not.
    for resume in [false, true] {
        let again = MoveRequest { options: MoveOptions { resume, page: 100 }, ..request.clone() };
        let error = move_database(&again, &mut |_| {}).await.unwrap_err();
        assert!(error.to_string().contains("already holds"), "{error}");
    }
}

/// Runs `move` in a child process; kills it (SIGKILL) once it reports a page of
/// `kill_in`, or lets it finish. Its exit and its log.
fn run_move(
    dir: &Path,
    from: &Path,
    to: &str,
    extra: &[&str],
    kill_in: Option<&str>,
) -> (bool, String) {
    let mut child = binary(dir)
        .args(["move", "--from", from.to_str().unwrap(), "--to", to, "--page", "40"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut log = String::new();
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        log.push_str(&line);
        log.push('\n');
        if let Some(section) = kill_in
            && line.contains("moving")
            && line.contains(&format!("section=\"{section}\""))
        {
            child.kill().unwrap();
            break;
        }
    }
    let status = child.wait().unwrap();
    (status.success(), log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_killed_halfway_and_resumed_ends_as_one_never_stopped() {
    let Some(interrupted) = pg_database().await else { return };
    let whole = pg_database().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.db");
    build(&path, 2_000).await;

    let (finished, log) = run_move(dir.path(), &path, &interrupted, &[], Some("messages"));
    assert!(!finished, "killed in the messages: {log}");
    // A half-moved database is not served.
    let settings = StoreSettings::new(Limits::default());
    let refused = backend::open(&Database::Postgres(interrupted.clone()), &settings).await;
    let error = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(error.contains("stopped halfway") && error.contains("--resume"), "{error}");
    // Without --resume the half-moved target is refused, and says how to go on.
    let (finished, log) = run_move(dir.path(), &path, &interrupted, &[], None);
    assert!(!finished && log.contains("resume"), "{log}");
    // Resumed, and killed again in the log; then resumed to the end.
    let (finished, log) = run_move(dir.path(), &path, &interrupted, &["--resume"], Some("log"));
    assert!(!finished, "killed in the log: {log}");
    let (finished, log) = run_move(dir.path(), &path, &interrupted, &["--resume"], None);
    assert!(finished, "{log}");
    assert!(log.contains("verified"), "{log}");
    assert!(log.contains("rate="), "progress shows a rate: {log}");
    // A finished move is checked again on its own, and not resumed.
    let (finished, log) = run_move(dir.path(), &path, &interrupted, &["--check"], None);
    assert!(finished && log.contains("verified") && !log.contains("moved:"), "{log}");
    let (finished, log) = run_move(dir.path(), &path, &interrupted, &["--resume"], None);
    assert!(!finished && log.contains("already holds"), "{log}");

    let request =
        MoveRequest { from: path.clone(), to: whole.clone(), options: MoveOptions::default() };
    move_database(&request, &mut |_| {}).await.unwrap();
    assert!(check_database(&path, &whole, 500).await.unwrap().verified.is_identical());

    let a = PgStore::connect(&interrupted, PgOptions::default()).await.unwrap();
    let b = PgStore::connect(&whole, PgOptions::default()).await.unwrap();
    let report = verify_move(&a, &b, 500, Timestamp::now()).await.unwrap();
    assert!(report.is_identical(), "{:#?}", report.mismatches);
    assert_eq!(report.sections[&Section::Messages], 2_000 + 12);
    a.close().await.unwrap();
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_source_or_a_sqlite_target_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing.db");
    let (finished, log) = run_move(dir.path(), &missing, "postgres://127.0.0.1:1/none", &[], None);
    assert!(!finished && log.contains("no SQLite database"), "{log}");
    assert!(!missing.exists(), "no empty database is created");
    let (finished, log) = run_move(dir.path(), &missing, "other.db", &[], None);
    assert!(!finished && log.contains("PostgreSQL"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_written_to_between_a_stop_and_the_resume_is_refused() {
    let Some(url) = pg_database().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.db");
    let built = build(&path, 600).await;
    let (finished, log) = run_move(dir.path(), &path, &url, &[], Some("messages"));
    assert!(!finished, "{log}");

    // The SQLite server ran meanwhile and took a block: a write that logs no event.
    let store = SqliteStore::open(&path).await.unwrap();
    let messenger = Messenger::new(Arc::new(store.clone())).await.unwrap();
    messenger.block(built.users[11], built.users[12]).await.unwrap();
    store.close().await.unwrap();

    let (finished, log) = run_move(dir.path(), &path, &url, &["--resume"], None);
    assert!(!finished && log.contains("the source changed"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_a_server_runs_on_is_refused() {
    let Some(url) = pg_database().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.db");
    build(&path, 50).await;

    // A server on the (empty) target: its presence keeps a heartbeat.
    let live = PgStore::connect(&url, PgOptions::default()).await.unwrap();
    let messenger = live.messenger(Limits::default()).await.unwrap();
    let request =
        MoveRequest { from: path.clone(), to: url.clone(), options: MoveOptions::default() };
    let error = move_database(&request, &mut |_| {}).await.unwrap_err();
    assert!(error.to_string().contains("a server is running"), "{error}");

    // Stopped, it says goodbye (nobody connected: it left no data): the move goes in.
    live.close().await.unwrap();
    drop(messenger);
    move_database(&request, &mut |_| {}).await.unwrap();
    assert!(check_database(&path, &url, 200).await.unwrap().verified.is_identical());
}
