//! Who may read the store's files.
//!
//! SQLite creates a database file with mode 0644 (less the umask), readable by every local
//! user, and gives the `-wal` and `-shm` files beside it the database file's mode. Messages
//! are private, so the store creates the database and its search file itself, 0600, before
//! SQLite opens them; SQLite then creates their `-wal` and `-shm` files 0600 too. A file
//! that already exists keeps its mode (changing a user's file behind their back would
//! surprise them more than it protects), with a warning when others may read it.

use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use messaging_core::Error;

use crate::error::StoreResult;

/// Creates `path` empty with mode 0600 unless it exists (SQLite takes an empty file for a
/// new database); warns when an existing one is readable by group or others.
pub(crate) fn create_private(path: &Path) -> StoreResult<()> {
    match OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == ErrorKind::AlreadyExists => {
            if let Ok(meta) = std::fs::metadata(path)
                && meta.permissions().mode() & 0o077 != 0
            {
                tracing::warn!(
                    path = %path.display(),
                    mode = format_args!("{:o}", meta.permissions().mode() & 0o777),
                    "a messaging database file is accessible to other users; consider chmod 600"
                );
            }
            Ok(())
        }
        Err(error) => Err(Error::backend_unavailable(error).into()),
    }
}
