//! PostgreSQL going away under a running server (docs/protocol.md "Limits and robustness"):
//! `/healthz` turns 503 within the answer bound and 200 again after a restart, and requests
//! are answered within the bound while the cluster is down, with a retried send stored once.
//!
//! The cluster is `scripts/pg.sh`'s, stopped (immediately, like a crash) and started
//! through `$MESSAGING_PG_CONTROL`. Only this test binary does that; cargo runs test
//! binaries one after another, and within this one every test holds [`CLUSTER`]. Without
//! the variable the tests are skipped, unless `MESSAGING_PG_REQUIRED=1`, which fails them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use messaging_core::UserId;
use messaging_ws_server::Transport;
use serde_json::{Value, json};
use support::{Backend, Client, Server, WAIT};

/// Held by every test of this binary: one of them stopping the cluster must not fail
/// another.
static CLUSTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The answer bound of these servers.
const BOUND: Duration = Duration::from_secs(1);

/// How long the cluster and its clients may take to come back after a start.
const RECOVERY: Duration = Duration::from_secs(60);

/// The control script of the cluster, or `None` (skip) when not run under `scripts/pg.sh`.
fn control() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("MESSAGING_PG_CONTROL") {
        return Some(PathBuf::from(path));
    }
    if std::env::var("MESSAGING_PG_REQUIRED").is_ok_and(|v| v == "1") {
        panic!("MESSAGING_PG_REQUIRED=1 but MESSAGING_PG_CONTROL is unset (run scripts/pg.sh)");
    }
    eprintln!("fault tests skipped: no MESSAGING_PG_CONTROL (run under scripts/pg.sh)");
    None
}

/// The cluster while stopped; started again when dropped (also when the test fails).
struct Stopped {
    control: Option<PathBuf>,
}

fn run_control(control: &PathBuf, action: &str) {
    let status = std::process::Command::new(control).arg(action).status().unwrap();
    assert!(status.success(), "{} {action}: {status}", control.display());
}

impl Stopped {
    async fn stop(control: PathBuf) -> Self {
        let script = control.clone();
        tokio::task::spawn_blocking(move || run_control(&script, "stop")).await.unwrap();
        Self { control: Some(control) }
    }

    async fn start(mut self) {
        if let Some(control) = self.control.take() {
            tokio::task::spawn_blocking(move || run_control(&control, "start")).await.unwrap();
        }
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if let Some(control) = self.control.take() {
            let _ = std::process::Command::new(control).arg("start").status();
        }
    }
}

/// Makes what the server committed so far survive the crash-like stop: the test cluster
/// runs with `fsync`, `synchronous_commit` and `full_page_writes` off, and an immediate
/// stop was seen to lose commits made just before it even after a synchronous commit;
/// a checkpoint writes everything to the data files first.
async fn settle() {
    use sqlx::Connection;
    let admin = std::env::var("MESSAGING_PG_URL").unwrap();
    let mut connection = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::query("CHECKPOINT").execute(&mut connection).await.unwrap();
    connection.close().await.unwrap();
}

fn transport() -> Transport {
    Transport::default().answer_timeout(BOUND)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_the_cluster() {
    let _cluster = CLUSTER.lock().await;
    let Some(control) = control() else { return };
    let server = Server::start(Backend::Postgres, transport()).await.expect("PostgreSQL");
    assert_eq!(server.get("/healthz").await.0, 200);

    settle().await;
    let stopped = Stopped::stop(control).await;
    let began = Instant::now();
    let (status, body) = server.get("/healthz").await;
    let took = began.elapsed();
    assert_eq!((status, body.as_str()), (503, r#"{"status":"unavailable"}"#));
    assert!(took < BOUND + WAIT, "answered within the bound (plus slack): {took:?}");

    stopped.start().await;
    let deadline = Instant::now() + RECOVERY;
    while server.get("/healthz").await.0 != 200 {
        assert!(Instant::now() < deadline, "healthy again within {RECOVERY:?} of the restart");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The messages of `conversation` whose `client_msg_id` is `key`.
async fn stored(client: &mut Client, conversation: &Value, key: &str) -> usize {
    let history = client.ok(json!({"op":"history","conversation_id":conversation})).await;
    history["messages"].as_array().unwrap().iter().filter(|m| m["client_msg_id"] == key).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_answered_within_the_bound_while_the_cluster_is_down() {
    let _cluster = CLUSTER.lock().await;
    let Some(control) = control() else { return };
    let server = Server::start(Backend::Postgres, transport()).await.expect("PostgreSQL");
    let mut senders = Vec::new();
    for _ in 0..8 {
        let mut client = server.connect(UserId::new()).await;
        let peer = UserId::new().to_string();
        let opened = client.ok(json!({"op":"open","peer":peer})).await;
        senders.push((client, opened["conversation"]["id"].clone()));
    }

    // Eight concurrent sends with the cluster gone: each answered `unavailable` within the
    // bound (plus slack), none left waiting for the database to come back.
    settle().await;
    let stopped = Stopped::stop(control).await;
    let answers = futures::future::join_all(senders.iter_mut().enumerate().map(
        |(i, (client, conversation))| async move {
            let began = Instant::now();
            let send = json!({"op":"send","conversation_id":conversation,"body":"during the outage",
                              "client_msg_id":format!("outage-{i}")});
            let reply = tokio::time::timeout(BOUND + WAIT, client.request(send))
                .await
                .expect("answered within the bound plus slack");
            (reply, began.elapsed())
        },
    ))
    .await;
    for (reply, took) in &answers {
        assert_eq!(reply["error"]["code"], "unavailable", "{reply}");
        assert!(!reply["error"]["message"].as_str().unwrap().contains("connect"), "{reply}");
        assert!(*took < BOUND + WAIT, "{took:?}");
    }
    // Each failure counted once, as a store error (`unavailable`) or an expired bound.
    let mut counted = 0.0;
    for kind in ["timeout", "unavailable", "internal"] {
        counted +=
            server.metric(&format!(r#"messaging_store_errors_total{{kind="{kind}"}}"#)).await;
    }
    assert!(counted >= 8.0, "{counted} store errors counted for 8 failed sends");
    // The bound answered, not the store's own timeouts (PgOptions: 2 s to get a
    // connection, 3 s per statement, both longer than this bound).
    let timeouts = server.metric(r#"messaging_store_errors_total{kind="timeout"}"#).await;
    assert!(timeouts >= 1.0, "no send was answered by the answer bound");

    // After the restart, a retry with the same client_msg_id yields exactly one message.
    stopped.start().await;
    for (i, (client, conversation)) in senders.iter_mut().enumerate() {
        let key = format!("outage-{i}");
        let send = json!({"op":"send","conversation_id":conversation,"body":"retried",
                          "client_msg_id":key});
        let deadline = Instant::now() + RECOVERY;
        loop {
            let reply = client.request(send.clone()).await;
            if reply["ok"] == true {
                break;
            }
            assert_eq!(reply["error"]["code"], "unavailable", "{reply}");
            assert!(Instant::now() < deadline, "the store did not come back: {reply}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert_eq!(stored(client, conversation, &key).await, 1, "{key}");
    }
}

/// A SQLite database of `conversations × per` messages, through the library.
async fn sqlite_source(path: &std::path::Path, conversations: usize, per: usize) {
    use messaging_core::{Messenger, SendMessage};
    let store = messaging_store_sqlite::SqliteStore::open(path).await.unwrap();
    let messenger = Messenger::new(std::sync::Arc::new(store.clone())).await.unwrap();
    for _ in 0..conversations {
        let (a, b) = (UserId::new(), UserId::new());
        let id = messenger.open(a, b, Some("listing:1")).await.unwrap().conversation.id;
        for n in 0..per {
            let sender = if n % 2 == 0 { a } else { b };
            let body = format!("message {n}: still for sale?");
            messenger.send(sender, SendMessage::to_conversation(id, body)).await.unwrap();
        }
    }
    store.close().await.unwrap();
}

/// Runs `move` in a child process. With `stop_at`, the cluster is stopped once the move
/// reports a page of that section; the child's exit and log, and the stopped cluster.
async fn move_child(
    dir: &std::path::Path,
    from: &std::path::Path,
    to: &str,
    resume: bool,
    stop_at: Option<(&str, PathBuf)>,
) -> (bool, String, Option<Stopped>) {
    use std::io::{BufRead, BufReader};
    let mut command = support::process::binary(dir);
    command.args(["move", "--from", from.to_str().unwrap(), "--to", to, "--page", "25"]);
    if resume {
        command.arg("--resume");
    }
    let mut child = command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = String::new();
    let mut stopped = None;
    while let Some(Ok(line)) = tokio::task::block_in_place(|| lines.next()) {
        log.push_str(&line);
        log.push('\n');
        if let Some((section, control)) = &stop_at
            && stopped.is_none()
            && line.contains(&format!("section=\"{section}\""))
        {
            stopped = Some(Stopped::stop(control.clone()).await);
        }
    }
    let status = tokio::task::block_in_place(|| child.wait()).unwrap();
    (status.success(), log, stopped)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_cut_off_by_the_database_resumes_once_it_is_back() {
    let _cluster = CLUSTER.lock().await;
    let Some(control) = control() else { return };
    let url = support::pg_database().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("chat.db");
    sqlite_source(&source, 40, 60).await;

    // The cluster goes away under the move (as in a crash): the command fails, says how
    // to go on, and leaves no half-page behind.
    settle().await;
    let (finished, log, stopped) =
        move_child(dir.path(), &source, &url, false, Some(("messages", control))).await;
    assert!(!finished, "{log}");
    assert!(log.contains("--resume"), "the failure says how to go on: {log}");
    stopped.expect("the cluster was stopped").start().await;

    // Back up: the resumed move finishes and its check finds both stores alike.
    let deadline = Instant::now() + RECOVERY;
    loop {
        let (finished, log, _) = move_child(dir.path(), &source, &url, true, None).await;
        if finished {
            assert!(log.contains("verified"), "{log}");
            assert!(log.contains("messages 2400"), "{log}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the resumed move finishes once the cluster is back: {log}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
