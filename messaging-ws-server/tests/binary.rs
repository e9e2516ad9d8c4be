//! The binary as users run it: zero-config start on SQLite with `token` minting a usable
//! token, exit 0 on SIGTERM; and two server processes on one PostgreSQL database with a user
//! on each.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use messaging_core::UserId;
use serde_json::json;
use support::Client;

const BINARY: &str = env!("CARGO_BIN_EXE_messaging-ws-server");

/// A server process; killed if the test ends without stopping it.
struct Process {
    child: Child,
    addr: SocketAddr,
}

impl Process {
    /// Starts `messaging-ws-server` in `dir` with `args` (plus `--listen 127.0.0.1:0`) and
    /// waits for its "serving" log line.
    fn start(dir: &Path, args: &[&str]) -> Self {
        let mut child = Command::new(BINARY)
            .current_dir(dir)
            .args(args)
            .args(["--listen", "127.0.0.1:0", "--log-level", "info"])
            .env_remove("MESSAGING_DATABASE_URL")
            .env_remove("MESSAGING_JWT_SECRET")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the server binary");
        let stderr = child.stderr.take().expect("stderr");
        let (found, addr) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stderr).lines();
            let mut sent = false;
            for line in lines.by_ref().map_while(Result::ok) {
                if !sent && let Some(at) = line.split("address=").nth(1) {
                    let _ = found.send(at.trim().to_owned());
                    sent = true;
                }
            }
        });
        let addr = addr
            .recv_timeout(Duration::from_secs(60))
            .expect("the server logs its address")
            .parse()
            .expect("a socket address");
        Self { child, addr }
    }

    fn url(&self) -> String {
        format!("ws://{}/v1/ws", self.addr)
    }

    /// SIGTERM, then the exit status.
    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
        assert!(status.success());
        for _ in 0..200 {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the server did not exit within 10 s of SIGTERM");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn token_from_binary(dir: &Path, args: &[&str], user: UserId) -> String {
    let output = Command::new(BINARY)
        .current_dir(dir)
        .arg("token")
        .args(["--user", &user.to_string()])
        .args(args)
        .env_remove("MESSAGING_DATABASE_URL")
        .env_remove("MESSAGING_JWT_SECRET")
        .output()
        .expect("run token");
    assert!(output.status.success(), "token failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("UTF-8").trim().to_owned()
}

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
    assert!(stderr.contains("--jwt-secret or --jwt-public-key"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_postgres_database() {
    let Some(url) = support::pg_database().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let args = ["--database-url", url.as_str(), "--jwt-secret", "shared secret of both"];
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
