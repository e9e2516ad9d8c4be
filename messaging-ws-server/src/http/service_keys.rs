//! The service API's keys (docs/protocol.md "Service API"): from a file (one key per line,
//! trimmed; blank lines and `#` comments skipped; keys shorter than 32 bytes refused) and
//! from `MESSAGING_SERVICE_KEY`, all valid at once. The file is re-read on demand (the
//! binary does it on SIGHUP), so keys rotate without a restart; a file that fails to read
//! or holds a short key keeps the keys in force. Presented keys are compared in constant
//! time.

use std::path::{Path, PathBuf};
use std::sync::RwLock;

use subtle::ConstantTimeEq;

/// The shortest key accepted.
pub const MIN_KEY_BYTES: usize = 32;

/// The keys in force.
#[derive(Debug, Default)]
pub struct ServiceKeys {
    file: Option<PathBuf>,
    from_env: Option<Vec<u8>>,
    keys: RwLock<Vec<Vec<u8>>>,
}

impl ServiceKeys {
    /// Keys from `file` (if any) and `env_key` (if any); fails on an unreadable file or a
    /// short key, naming it by line, never by value.
    pub fn load(file: Option<&Path>, env_key: Option<&str>) -> Result<Self, String> {
        let from_env = match env_key.map(str::trim).filter(|k| !k.is_empty()) {
            Some(key) if key.len() < MIN_KEY_BYTES => {
                return Err(format!("MESSAGING_SERVICE_KEY is shorter than {MIN_KEY_BYTES} bytes"));
            }
            Some(key) => Some(key.as_bytes().to_vec()),
            None => None,
        };
        let keys = Self { file: file.map(Path::to_path_buf), from_env, keys: RwLock::default() };
        keys.reload()?;
        Ok(keys)
    }

    /// Re-reads the file; on failure the keys in force stay and the error says why.
    pub fn reload(&self) -> Result<usize, String> {
        let mut keys: Vec<Vec<u8>> = self.from_env.iter().cloned().collect();
        if let Some(file) = &self.file {
            let text = std::fs::read_to_string(file)
                .map_err(|e| format!("service key file {}: {e}", file.display()))?;
            for (n, line) in text.lines().enumerate() {
                let key = line.trim();
                if key.is_empty() || key.starts_with('#') {
                    continue;
                }
                if key.len() < MIN_KEY_BYTES {
                    return Err(format!(
                        "service key file {} line {}: a key shorter than {MIN_KEY_BYTES} bytes",
                        file.display(),
                        n + 1
                    ));
                }
                keys.push(key.as_bytes().to_vec());
            }
        }
        let count = keys.len();
        *self.keys.write().unwrap_or_else(std::sync::PoisonError::into_inner) = keys;
        Ok(count)
    }

    /// Whether any key is configured (without one, the service routes do not exist).
    pub fn any(&self) -> bool {
        !self.keys.read().unwrap_or_else(std::sync::PoisonError::into_inner).is_empty()
    }

    /// Whether `presented` is one of the keys, compared in constant time with each.
    pub fn accepts(&self, presented: &[u8]) -> bool {
        let keys = self.keys.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        keys.iter().fold(false, |found, key| found | bool::from(key.as_slice().ct_eq(presented)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const A: &str = "a-service-key-of-at-least-32-bytes-1";
    const B: &str = "a-service-key-of-at-least-32-bytes-2";

    #[test]
    fn file_and_environment_keys_rotate_on_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        std::fs::write(&path, format!("# rotated monthly\n\n  {A}  \n")).unwrap();
        let keys = ServiceKeys::load(Some(&path), Some(B)).unwrap();
        assert!(keys.accepts(A.as_bytes()) && keys.accepts(B.as_bytes()));
        assert!(!keys.accepts(b"a-service-key-of-at-least-32-bytes-3"));
        assert!(!keys.accepts(b""));
        std::fs::File::create(&path).unwrap().write_all(b"short\n").unwrap();
        assert!(keys.reload().is_err(), "a short key is refused");
        assert!(keys.accepts(A.as_bytes()), "and the keys in force stay");
        std::fs::write(&path, format!("{B}x\n")).unwrap();
        assert_eq!(keys.reload().unwrap(), 2);
        assert!(!keys.accepts(A.as_bytes()), "rotated out");
        assert!(ServiceKeys::load(None, Some("short")).is_err());
        assert!(!ServiceKeys::load(None, None).unwrap().any());
    }
}
