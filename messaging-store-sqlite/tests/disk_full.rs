//! A full disk, for real: the store on a small tmpfs, filled until writes fail, then freed.
//! The same store object must serve again (no thread of it may end on the failure), every
//! acknowledged message must be stored and no failed one.
//!
//! Needs `mount` (root, as in CI). Without it the test fails, unless `MESSAGING_SKIP_TMPFS=1`
//! is set, which makes it skip loudly.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test helpers")]
#![allow(clippy::print_stderr, reason = "the skip must be seen")]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use messaging_core::id::{ConversationId, UserId};
use messaging_core::store::{HistoryWindow, MessageStore, StoreHealth};
use messaging_core::{HistoryQuery, Messenger, SendMessage};
use messaging_store_sqlite::SqliteStore;

/// A tmpfs mounted on a temporary directory, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it); `None` when not permitted.
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(dir.path())
            .status();
        match status {
            Ok(status) if status.success() => Some(Self { dir }),
            _ => None,
        }
    }

    /// [`Tmpfs::mount`], or: with `MESSAGING_SKIP_TMPFS=1`, `None` after a loud skip
    /// note; else a failure, since CI (root) must run the test.
    fn mount_or_skip(size: &str, test: &str) -> Option<Self> {
        if let Some(fs) = Self::mount(size) {
            return Some(fs);
        }
        if std::env::var("MESSAGING_SKIP_TMPFS").as_deref() == Ok("1") {
            eprintln!(
                "\n!!!!!!!! SKIPPED {test}: mounting a tmpfs is not permitted here \
                 (MESSAGING_SKIP_TMPFS=1) !!!!!!!!\n"
            );
            return None;
        }
        panic!(
            "{test}: this test mounts a tmpfs and needs root (CI runs as root); set \
             MESSAGING_SKIP_TMPFS=1 to skip it"
        );
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// Writes zeros to `path` until the file system is full.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0_u8; 64 * 1024];
    loop {
        if file.write_all(&chunk).is_err() {
            break;
        }
    }
    // The last bytes that fit: a partial chunk may have left room for a page or two.
    let byte = [0_u8; 512];
    while file.write_all(&byte).is_ok() {}
    let _ = file.sync_all();
}

struct Run {
    messenger: Messenger,
    store: SqliteStore,
    alice: UserId,
    conversation: ConversationId,
    acked: Vec<String>,
    failed: Vec<String>,
    next: usize,
}

impl Run {
    /// Sends the next message (a 2 KB body, its own idempotency key); `Err` with the failure.
    async fn send(&mut self) -> Result<(), messaging_core::Error> {
        self.next += 1;
        let key = format!("k{}", self.next);
        let body = format!("round{} {}", self.next, "x".repeat(2000));
        let send = SendMessage::to_conversation(self.conversation, body).client_msg_id(&key);
        let outcome =
            tokio::time::timeout(Duration::from_secs(60), self.messenger.send(self.alice, send))
                .await
                .expect("a send on a full disk is answered");
        match outcome {
            Ok(_) => {
                self.acked.push(key);
                Ok(())
            }
            Err(error) => {
                self.failed.push(key);
                Err(error)
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_writes_until_space_returns() {
    let Some(fs) = Tmpfs::mount_or_skip("16m", "a_full_disk_fails_writes_until_space_returns")
    else {
        return;
    };
    let db: PathBuf = fs.path().join("full.db");
    let filler = fs.path().join("filler");
    let store = SqliteStore::open(&db).await.unwrap();
    let messenger = Messenger::new(Arc::new(store.clone())).await.unwrap();
    let (alice, bob) = (UserId::new(), UserId::new());
    let first =
        messenger.send(alice, SendMessage::to_peer(bob, None, "hello")).await.unwrap().message;
    let mut run = Run {
        messenger,
        store,
        alice,
        conversation: first.conversation_id,
        acked: Vec::new(),
        failed: Vec::new(),
        next: 0,
    };

    for round in 0..4 {
        for _ in 0..5 {
            run.send().await.unwrap();
        }
        fill(&filler);
        let mut failures = 0;
        for attempt in 0..5_000 {
            let before = run.store.last_commit();
            match run.send().await {
                Ok(()) => assert!(failures == 0, "round {round}: a send passed after a failure"),
                Err(error) => {
                    assert_eq!(error.code(), "unavailable", "round {round}: {error}");
                    let public = error.public_message();
                    assert!(!public.contains("disk"), "backend text reached a client: {public}");
                    assert!(!public.contains(fs.path().to_str().unwrap()), "a path: {public}");
                    assert_eq!(run.store.last_commit(), before, "a failed commit moved it");
                    failures += 1;
                    if failures == 5 {
                        break;
                    }
                }
            }
            assert!(attempt < 4_999, "round {round}: the disk never filled");
        }

        std::fs::remove_file(&filler).unwrap();
        // Space is back: the same store object writes and reads again at once.
        for _ in 0..5 {
            run.send().await.unwrap_or_else(|e| panic!("round {round}: after freeing: {e}"));
        }
        run.store.probe_commit().await.unwrap();
        let page = run
            .messenger
            .history(bob, run.conversation, HistoryQuery { limit: Some(3), ..Default::default() })
            .await
            .unwrap();
        assert_eq!(page.messages.len(), 3, "round {round}: reads serve");
    }

    for key in &run.acked {
        let stored = run.store.find_by_client_msg_id(run.conversation, alice, key).await.unwrap();
        assert!(stored.is_some(), "acknowledged {key} is missing");
    }
    for key in &run.failed {
        let stored = run.store.find_by_client_msg_id(run.conversation, alice, key).await.unwrap();
        assert!(stored.is_none(), "failed {key} was stored");
    }
    let count = run.acked.len() + 1;
    let stored = run.store.history(run.conversation, HistoryWindow::Latest, 10_000).await.unwrap();
    assert_eq!(stored.len(), count, "exactly the acknowledged messages");
    let seqs: Vec<u64> = stored.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=count as u64).collect::<Vec<_>>(), "gap-free seqs");

    // The search indexer, whose file was full too, caught up again.
    let last = format!("round{}", run.next);
    let mut found = Vec::new();
    for _ in 0..60 {
        if run.store.wait_for_search_index().await.is_ok() {
            found = run.messenger.search(bob, &last, None, None).await.unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(found.len(), 1, "the last message is searchable");
    drop(run);
    drop(fs);
}

/// The file sizes in `dir`, for failure messages.
fn sizes(dir: &Path) -> Vec<(String, u64)> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| {
            (e.file_name().to_string_lossy().into_owned(), e.metadata().map_or(0, |m| m.len()))
        })
        .collect()
}

/// The same under load: sixteen senders at once while the disk fills and is freed, so
/// batches of many jobs fail together (the fast path, then the savepoints) and commit again.
/// Under steady load, readers kept the WAL from restarting at its start, so it grew until it
/// took the disk whole (58 MB of 64 beside an 8 MB database): then no checkpoint had room to
/// copy it back and writes failed for good, however much space was freed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_under_load_fails_batches_and_recovers() {
    let Some(fs) = Tmpfs::mount_or_skip("64m", "a_full_disk_under_load_fails_batches_and_recovers")
    else {
        return;
    };
    let db: PathBuf = fs.path().join("load.db");
    let filler = fs.path().join("filler");
    let store = SqliteStore::open(&db).await.unwrap();
    let messenger = Messenger::new(Arc::new(store.clone())).await.unwrap();
    let (alice, bob) = (UserId::new(), UserId::new());
    let first =
        messenger.send(alice, SendMessage::to_peer(bob, None, "hello")).await.unwrap().message;
    let c = first.conversation_id;

    let acked = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let failed = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    for round in 0..3 {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut senders = Vec::new();
        for sender in 0..16 {
            let (messenger, acked, failed, stop) =
                (messenger.clone(), acked.clone(), failed.clone(), stop.clone());
            senders.push(tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    n += 1;
                    let key = format!("r{round}s{sender}n{n}");
                    // Small bodies: the store's own files must stay well under the tmpfs
                    // (its WAL may reach 32 MiB before the writer truncates it), or once the
                    // filler is gone the data itself would fill the disk (2 KB bodies made a
                    // 36 MB database beside a 31 MB WAL on 64 MB on a slow run).
                    let body = format!("{key} {}", "y".repeat(300));
                    let send = SendMessage::to_conversation(c, body).client_msg_id(&key);
                    match messenger.send(alice, send).await {
                        Ok(_) => acked.lock().unwrap().push(key),
                        Err(error) => {
                            assert_eq!(error.code(), "unavailable", "{error}");
                            assert!(!error.public_message().contains("disk"));
                            failed.lock().unwrap().push(key);
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let failed_before = failed.lock().unwrap().len();
        fill(&filler);
        let mut waited = 0;
        while failed.lock().unwrap().len() < failed_before + 50 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            waited += 1;
            assert!(waited < 3_000, "round {round}: no send failed on the full disk");
        }
        std::fs::remove_file(&filler).unwrap();
        let acked_before = acked.lock().unwrap().len();
        let mut waited = 0;
        while acked.lock().unwrap().len() < acked_before + 100 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            waited += 1;
            assert!(
                waited < 1_500,
                "round {round}: sends did not succeed again after freeing; files: {:?}",
                sizes(fs.path())
            );
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for sender in senders {
            sender.await.unwrap();
        }
    }
    if let Err(error) = store.probe_commit().await {
        panic!("a commit after the rounds failed: {error}; files: {:?}", sizes(fs.path()));
    }
    let acked = acked.lock().unwrap().clone();
    let failed = failed.lock().unwrap().clone();
    for key in &acked {
        assert!(store.find_by_client_msg_id(c, alice, key).await.unwrap().is_some(), "{key}");
    }
    for key in &failed {
        assert!(store.find_by_client_msg_id(c, alice, key).await.unwrap().is_none(), "{key}");
    }
    let stored = store.history(c, HistoryWindow::Latest, 1_000_000).await.unwrap();
    assert_eq!(stored.len(), acked.len() + 1, "exactly the acknowledged messages");
    drop(messenger);
    drop(store);
    drop(fs);
}
