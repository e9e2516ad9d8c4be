//! The zero-config HS256 secret: with SQLite and no secret given, one is generated once and
//! kept in a file beside the database (`<database>.jwt-secret`, mode 0600), so `serve` and
//! `token` agree without any setting. PostgreSQL deployments run several instances, which
//! must share a key: there a secret or public key has to be given.

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
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let secret = text.trim().as_bytes().to_vec();
            if secret.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} is empty; delete it to generate a new secret", path.display()),
                ));
            }
            Ok((secret, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(path).map(|s| (s, true)),
        Err(e) => Err(e),
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
        }
    }
}
