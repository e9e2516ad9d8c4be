//! Every file the store creates is readable by its owner only, whatever the umask lets
//! through (checked under umask 022, where SQLite alone creates them 0644); an existing
//! file keeps the mode its owner gave it.
//!
//! The umask is the process's, so the check runs in a child process of this test binary,
//! started under `umask 022` by `sh`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test helpers")]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use messaging_core::id::UserId;
use messaging_core::{Messenger, SendMessage};
use messaging_store_sqlite::SqliteStore;

const CHILD: &str = "MESSAGING_FILE_MODES_CHILD";

/// Each file in `dir` with its permission bits.
fn modes(dir: &Path) -> BTreeMap<String, u32> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
            (entry.file_name().to_string_lossy().into_owned(), mode)
        })
        .collect()
}

fn umask() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("Umask:"))
        .map(|mask| mask.trim().to_owned())
        .expect("/proc/self/status tells the umask")
}

/// The check itself, in the child under umask 022.
fn check_in_child() {
    assert_eq!(umask(), "0022", "the child runs under umask 022");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("private.db");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = SqliteStore::open(&path).await.unwrap();
        let messenger = Messenger::new(Arc::new(store.clone())).await.unwrap();
        let (alice, bob) = (UserId::new(), UserId::new());
        messenger.send(alice, SendMessage::to_peer(bob, None, "private words")).await.unwrap();
        assert_eq!(messenger.search(bob, "private", None, None).await.unwrap().len(), 1);
        // Open: the WAL and shared-memory files of both databases exist now.
        let open = modes(dir.path());
        for name in [
            "private.db",
            "private.db-wal",
            "private.db-shm",
            "private.db-search",
            "private.db-search-wal",
            "private.db-search-shm",
        ] {
            assert_eq!(open.get(name), Some(&0o600), "{name}: {open:?}");
        }
        assert!(open.values().all(|mode| *mode == 0o600), "{open:?}");
    });

    // A database its owner made readable to others keeps that mode.
    let shared = dir.path().join("shared.db");
    std::fs::write(&shared, b"").unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o644)).unwrap();
    runtime.block_on(async {
        let store = SqliteStore::open(&shared).await.unwrap();
        store.wait_for_search_index().await.unwrap();
    });
    assert_eq!(modes(dir.path()).get("shared.db"), Some(&0o644));
}

#[test]
fn created_files_are_private_under_umask_022() {
    if std::env::var_os(CHILD).is_some() {
        check_in_child();
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let output = Command::new("sh")
        .arg("-c")
        .arg("umask 022 && exec \"$0\" \"$@\"")
        .arg(exe)
        .args(["--exact", "created_files_are_private_under_umask_022", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the check under umask 022 failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("1 passed"), "the child ran the check: {stdout}");
}
