//! Secret files. The zero-config HS256 secret: with SQLite and no secret given, one is
//! generated once and kept in a file beside the database (`<database>.jwt-secret`, created
//! with mode 0600), so `serve` and `token` agree without any setting. PostgreSQL
//! deployments run several instances, which must share a key: there a secret or public key
//! has to be given, in a file (`--jwt-secret-file`) or the environment, never as a flag
//! value (visible to every user in `ps`).
//!
//! A secret file that group or others may read is still used, but [`loose_permissions`]
//! lets the server warn about it at start.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Where the generated secret of a SQLite database is kept.
#[must_use]
pub fn path_beside(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".jwt-secret");
    PathBuf::from(name)
}

/// The secret in `path`, created (32 random bytes, hex) if there is none yet. The `bool`
/// says whether it was created now.
pub fn load_or_create(path: &Path) -> std::io::Result<(Vec<u8>, bool)> {
    match read(path) {
        Ok(secret) => Ok((secret, false)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(path).map(|s| (s, true)),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{e}; delete it to generate a new secret"),
        )),
        Err(e) => Err(e),
    }
}

/// The secret a file holds: its content without surrounding whitespace (a trailing newline
/// is not part of the secret). An empty file is an error.
pub fn read(path: &Path) -> std::io::Result<Vec<u8>> {
    let bytes = std::fs::read(path)?;
    let secret = bytes.trim_ascii().to_vec();
    if secret.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} is empty", path.display()),
        ));
    }
    Ok(secret)
}

/// The file's permission bits when group or others may read it (`None` when only its
/// owner can, or on platforms without such bits).
pub fn loose_permissions(path: &Path) -> std::io::Result<Option<u32>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
        Ok((mode & 0o044 != 0).then_some(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = std::fs::metadata(path)?;
        Ok(None)
    }
}

fn create(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = [0_u8; 32];
    getrandom::fill(&mut bytes).map_err(std::io::Error::other)?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(hex.as_bytes())?;
            file.sync_all()?;
            Ok(hex.into_bytes())
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            load_or_create(path).map(|(secret, _)| secret)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_beside(&dir.path().join("messaging.db"));
        assert!(path.ends_with("messaging.db.jwt-secret"));
        let (first, created) = load_or_create(&path).unwrap();
        assert!(created);
        assert_eq!(first.len(), 64);
        let (again, created) = load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(first, again);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            assert_eq!(loose_permissions(&path).unwrap(), None);
        }
    }

    #[test]
    fn secret_files_are_trimmed_and_loose_modes_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "  shared secret\n").unwrap();
        assert_eq!(read(&path).unwrap(), b"shared secret");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for (mode, loose) in [(0o600, None), (0o640, Some(0o640)), (0o604, Some(0o604))] {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
                assert_eq!(loose_permissions(&path).unwrap(), loose, "{mode:o}");
            }
        }
        std::fs::write(&path, "\n").unwrap();
        assert_eq!(read(&path).unwrap_err().kind(), std::io::ErrorKind::InvalidData);
    }
}
