//! The binary as users run it: zero-config start on SQLite with `token` minting a usable
//! token, exit 0 on SIGTERM; two server processes on one PostgreSQL database with a user on
//! each; secrets only from files or the environment (never echoed by `--help`); settings
//! checked at start; a process out of file descriptors that still answers every
//! connection (closed at once rather than left waiting in the backlog); and
//! `--pg-pool-size` bounding what a process opens to PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use messaging_core::UserId;
use serde_json::json;
use support::process::{BINARY, Process, binary, token_from_binary};
use support::{Client, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_config_start_token_and_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let server = Process::start(dir.path(), &[]);
    assert!(dir.path().join("messaging.db").exists(), "a SQLite file in the working directory");
    assert!(dir.path().join("messaging.db.jwt-secret").exists(), "the generated secret beside it");

    let (alice, bob) = (UserId::new(), UserId::new());
    let mut a = Client::connect(&server.url(), &token_from_binary(dir.path(), &[], alice)).await;
    let mut b = Client::connect(&server.url(), &token_from_binary(dir.path(), &[], bob)).await;
    a.ok(json!({"op":"send","peer":bob.to_string(),"body":"hello from a token minted by the CLI"}))
        .await;
    b.expect_event("conversation.created").await;
    let event = b.expect_event("message.created").await;
    assert_eq!(event["data"]["message"]["sender_id"], alice.to_string());

    let status = tokio::task::spawn_blocking(move || server.terminate()).await.unwrap();
    assert!(status.success(), "exit 0 on SIGTERM: {status}");
    assert_eq!(a.closed().await.map(u16::from), Some(1001));

    // `migrate` on the same file succeeds (nothing to do).
    let migrate = Command::new(BINARY).current_dir(dir.path()).arg("migrate").output().unwrap();
    assert!(migrate.status.success(), "{}", String::from_utf8_lossy(&migrate.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_needs_a_shared_key() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(BINARY)
        .current_dir(dir.path())
        .args(["--database-url", "postgres://nobody@127.0.0.1:1/none", "--listen", "127.0.0.1:0"])
        .env_remove("MESSAGING_JWT_SECRET")
        .env_remove("MESSAGING_JWT_PUBLIC_KEY")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("MESSAGING_JWT_SECRET, --jwt-secret-file or --jwt-public-key"),
        "{stderr}"
    );
}

/// A secret file of mode `mode` in `dir`.
fn secret_file(dir: &Path, secret: &str, mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("jwt-secret");
    std::fs::write(&path, format!("{secret}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

#[test]
fn help_never_shows_the_database_password() {
    let dir = tempfile::tempdir().unwrap();
    let url = "postgres://chat:hunter2-pw@db.internal:5432/chat?password=hunter2-pw";
    for args in
        [&["serve", "--help"][..], &["--help"], &["token", "--help"], &["migrate", "--help"]]
    {
        let output = binary(dir.path())
            .args(args)
            .env("MESSAGING_DATABASE_URL", url)
            .env("MESSAGING_JWT_SECRET", "hunter2-jwt")
            .output()
            .unwrap();
        assert!(output.status.success(), "{args:?}");
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(help.contains("MESSAGING_DATABASE_URL"), "{args:?}: {help}");
        assert!(!help.contains("hunter2"), "{args:?} shows a secret:\n{help}");
        assert!(!help.contains("--jwt-secret <"), "no secret as a flag value: {help}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_come_from_a_file_or_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    // A secret as a flag value is refused (visible in `ps`).
    let output = binary(dir.path())
        .args(["token", "--user", &UserId::new().to_string(), "--jwt-secret", "x"])
        .output()
        .unwrap();
    assert!(!output.status.success());

    // The server reads a file (and warns that others may read it); `token` signs with the
    // same secret from the environment.
    let file = secret_file(dir.path(), "file and environment agree", 0o644);
    let file_arg = file.to_str().unwrap();
    let server = Process::start(dir.path(), &["--jwt-secret-file", file_arg]);
    assert!(server.logged("readable by group or others (mode 644)"), "{:?}", server.logs);
    assert!(!dir.path().join("messaging.db.jwt-secret").exists(), "nothing generated");
    let user = UserId::new();
    let output = binary(dir.path())
        .args(["token", "--user", &user.to_string()])
        .env("MESSAGING_JWT_SECRET", "file and environment agree")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let token = String::from_utf8(output.stdout).unwrap();
    let mut client = Client::connect(&server.url(), token.trim()).await;
    client.ok(json!({"op":"ping"})).await;

    // Both at once is ambiguous.
    let output = binary(dir.path())
        .args(["token", "--user", &user.to_string(), "--jwt-secret-file", file_arg])
        .env("MESSAGING_JWT_SECRET", "another")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("given twice"));

    // A file only its owner reads: no warning.
    let strict = Process::start(
        dir.path(),
        &["--jwt-secret-file", secret_file(dir.path(), "s", 0o600).to_str().unwrap()],
    );
    assert!(!strict.logged("readable by group or others"), "{:?}", strict.logs);
}

#[test]
fn a_queue_smaller_than_two_reply_pages_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let output = binary(dir.path())
        .args(["--listen", "127.0.0.1:0", "--max-queue-bytes", "2000000"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "--max-queue-bytes (2000000) must be at least twice --reply-budget-bytes (1048576)"
        ),
        "{stderr}"
    );
    assert!(!dir.path().join("messaging.db").exists(), "refused before opening the store");
}

/// Connects a client that sends a request and waits for its answer: `Some(status line)`,
/// or `None` when the server closed the connection without one.
async fn answer_of(addr: SocketAddr) -> Option<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut answer = Vec::new();
    match tokio::time::timeout(WAIT, stream.read_to_end(&mut answer)).await {
        Ok(_) => {}
        Err(_) => panic!("no answer and no close within {WAIT:?}: left waiting in the backlog"),
    }
    let answer = String::from_utf8_lossy(&answer).into_owned();
    answer.lines().next().filter(|line| !line.is_empty()).map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_descriptors_every_client_still_gets_an_answer() {
    let dir = tempfile::tempdir().unwrap();
    let server =
        Process::start_with_fd_limit(dir.path(), &["--handshake-timeout-s", "120"], 100, 128);
    assert!(server.logged("open file limit raised from 100 to 128"), "{:?}", server.logs);
    assert!(server.logged("--max-connections 20000 lowered to 64"), "{:?}", server.logs);

    // 64 sessions (the clamped maximum), then silent sockets until the process has no
    // descriptor left.
    let secret = std::fs::read_to_string(dir.path().join("messaging.db.jwt-secret")).unwrap();
    let mint = |user| {
        messaging_ws_server::auth::mint(
            secret.trim().as_bytes(),
            user,
            Duration::from_secs(600),
            &messaging_ws_server::AuthSettings::default(),
        )
        .unwrap()
    };
    let mut sessions = Vec::new();
    for _ in 0..64 {
        sessions.push(Client::connect(&server.url(), &mint(UserId::new())).await);
    }
    let mut silent = Vec::new();
    for _ in 0..100 {
        silent.push(tokio::net::TcpStream::connect(server.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Out of descriptors: a new client is closed at once, not left in the backlog.
    assert_eq!(answer_of(server.addr).await, None);

    // Descriptors back: served again, and the shed connections were counted.
    drop(silent);
    drop(sessions);
    let deadline = std::time::Instant::now() + WAIT;
    while answer_of(server.addr).await.as_deref() != Some("HTTP/1.1 200 OK") {
        assert!(std::time::Instant::now() < deadline, "served again once descriptors are back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, metrics) = support::http_get(server.addr, "/metrics").await;
    let shed = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(r#"messaging_connections_refused_total{reason="no_descriptors"} "#)
        })
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(shed >= 1.0, "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_postgres_database() {
    let Some(url) = support::pg_database().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let secret = secret_file(dir.path(), "shared secret of both", 0o600);
    let args = ["--database-url", url.as_str(), "--jwt-secret-file", secret.to_str().unwrap()];
    let first = Process::start(dir.path(), &args);
    let second = Process::start(dir.path(), &args);
    let (alice, bob) = (UserId::new(), UserId::new());
    let mut a = Client::connect(&first.url(), &token_from_binary(dir.path(), &args, alice)).await;
    let mut b = Client::connect(&second.url(), &token_from_binary(dir.path(), &args, bob)).await;

    // Alice on the first process writes; Bob on the second receives, and answers.
    let sent = a.ok(json!({"op":"send","peer":bob.to_string(),"body":"across processes"})).await;
    b.expect_event("conversation.created").await;
    let received = b.expect_event("message.created").await;
    assert_eq!(received["data"]["message"], sent["message"]);
    let cid = sent["message"]["conversation_id"].clone();
    b.ok(json!({"op":"send","conversation_id":cid,"body":"and back"})).await;
    a.expect_event("conversation.created").await;
    a.expect_event("message.created").await;
    let back = a.expect_event("message.created").await;
    assert_eq!(back["data"]["message"]["body"], "and back");

    // Typing crosses too, and presence is shared: Bob (on the second) is online for Alice.
    b.ok(json!({"op":"typing","conversation_id":cid,"state":"started"})).await;
    let typing = a.expect_event("typing").await;
    assert_eq!(typing["data"]["user_id"], bob.to_string());
    let presence = a.ok(json!({"op":"presence","user_ids":[bob.to_string()]})).await;
    assert_eq!(presence["presence"][0]["online"], true);

    // The second process stops: Bob goes offline for Alice on the first.
    let status = tokio::task::spawn_blocking(move || second.terminate()).await.unwrap();
    assert!(status.success(), "{status}");
    let offline = a.expect_event("presence").await;
    assert_eq!(
        (offline["data"]["user_id"].clone(), offline["data"]["online"].clone()),
        (json!(bob.to_string()), json!(false))
    );
    drop(first);
}

/// `--pg-pool-size` bounds the connections a process opens to PostgreSQL: 64 clients with
/// their requests in flight at once never take the database past the pool and the feed's
/// listener (the default pool of 16 lets the same burst open 17).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_size_bounds_the_connections_to_postgres() {
    use sqlx::Connection;
    let Some(url) = support::pg_database().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let secret = std::str::from_utf8(support::SECRET).unwrap();
    let secret = secret_file(dir.path(), secret, 0o600);
    let args = [
        "--database-url",
        url.as_str(),
        "--jwt-secret-file",
        secret.to_str().unwrap(),
        "--pg-pool-size",
        "5",
    ];
    let server = Process::start(dir.path(), &args);
    let mut clients = Vec::new();
    for _ in 0..64 {
        clients.push(Client::connect(&server.url(), &support::token(UserId::new())).await);
    }

    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = tokio::spawn({
        let (url, done) = (url.clone(), done.clone());
        async move {
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            let mut peak = 0_i64;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let open: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_stat_activity \
                     WHERE datname = current_database() AND pid <> pg_backend_pid()",
                )
                .fetch_one(&mut conn)
                .await
                .unwrap();
                peak = peak.max(open);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            peak
        }
    });
    let burst: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            tokio::spawn(async move {
                for round in 0..20 {
                    let words = format!("hello {round}");
                    client.ok(json!({"op":"search","query":words})).await;
                    client.ok(json!({"op":"conversations"})).await;
                }
            })
        })
        .collect();
    for task in burst {
        task.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.await.unwrap();
    assert!(peak <= 6, "{peak} connections: more than the pool of 5 and the listener");
    assert!(peak >= 3, "{peak} connections: the burst did not reach the database");
    drop(server);
}
