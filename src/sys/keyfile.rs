//! The cluster key file: what `hactl keygen` writes and the agent reads before it sends anything.
//!
//! Format: text, one key per line as 64 hex digits (32 random bytes), `#` comments and blank lines ignored.
//! The first key signs; any further key is also accepted, so a key can be rotated node by node (DESIGN.md
//! §4.8): add the new key second everywhere, then move it first everywhere, then drop the old one.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use thiserror::Error;

/// Bytes of one key: HMAC-SHA256's block-size-friendly 256 bits.
pub const KEY_BYTES: usize = 32;
/// Keys one file may hold: the current one and one being rotated in or out.
pub const MAX_KEYS: usize = 2;

/// One cluster key.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(pub [u8; KEY_BYTES]);

impl std::fmt::Debug for Key {
    /// Never prints the secret, only its fingerprint.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({})", self.fingerprint())
    }
}

impl Key {
    /// A short public name of the key (first 8 bytes of its SHA-256, hex): logged and shown in status so two
    /// nodes with different keys are told apart without revealing either; also part of a witness's state key.
    pub fn fingerprint(&self) -> String {
        Sha256::digest(self.0).iter().take(8).map(|b| format!("{b:02x}")).collect()
    }
}

/// The keys of a key file, the signing key first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterKeys {
    /// Signs everything this node sends.
    pub current: Key,
    /// Also accepted on receipt (rotation).
    pub accepted: Vec<Key>,
}

/// The keys in force, shared by the tasks that sign and verify (the peer API, the local API's relay) and
/// replaced in place when the key file changes, so a rotation needs no restart (DESIGN.md §4.8).
#[derive(Debug, Clone)]
pub struct SharedKeys(std::sync::Arc<std::sync::RwLock<ClusterKeys>>);

impl SharedKeys {
    /// Shares `keys`.
    pub fn new(keys: ClusterKeys) -> SharedKeys {
        SharedKeys(std::sync::Arc::new(std::sync::RwLock::new(keys)))
    }

    /// The keys in force now.
    pub fn get(&self) -> ClusterKeys {
        // A panic while holding the lock cannot leave a half-written value (one assignment).
        self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Puts `keys` in force for every holder of this handle.
    pub fn set(&self, keys: ClusterKeys) {
        *self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner) = keys;
    }
}

/// Why a key file cannot be used; the agent refuses to start on any of these.
#[derive(Debug, Error)]
pub enum KeyFileError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Group or others may read the key: a leaked key lets anyone on the network steer the cluster.
    #[error("{path}: mode {mode:o} lets group or others read the cluster key; run `chmod 600 {path}`")]
    Readable {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A line is not 64 hex digits.
    #[error("{path}:{line}: not a key; valid: 64 hex digits (hactl keygen writes one)")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
    },
    /// No key, or more than two.
    #[error("{path}: holds {count} keys; valid: 1, or 2 during a rotation")]
    Count {
        /// The file.
        path: PathBuf,
        /// Keys found.
        count: usize,
    },
    /// `keygen` would overwrite a key in use.
    #[error("{0}: already exists; a new key would lock this node out of its cluster (remove it first to replace it)")]
    Exists(PathBuf),
    /// The OS random source failed.
    #[error("no random bytes from the OS: {0}")]
    Random(String),
}

/// Reads and checks a key file.
pub fn load(path: &Path) -> Result<ClusterKeys, KeyFileError> {
    let io = |source| KeyFileError::Io { path: path.to_path_buf(), source };
    let mode = fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Readable { path: path.to_path_buf(), mode });
    }
    let text = fs::read_to_string(path).map_err(io)?;
    let mut keys = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let malformed = || KeyFileError::Malformed { path: path.to_path_buf(), line: index + 1 };
        keys.push(parse_hex(line).ok_or_else(malformed)?);
    }
    if keys.is_empty() || keys.len() > MAX_KEYS {
        return Err(KeyFileError::Count { path: path.to_path_buf(), count: keys.len() });
    }
    let current = keys.remove(0);
    Ok(ClusterKeys { current, accepted: keys })
}

fn parse_hex(text: &str) -> Option<Key> {
    if text.len() != KEY_BYTES * 2 || !text.is_ascii() {
        return None;
    }
    let mut key = [0u8; KEY_BYTES];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(Key(key))
}

/// Writes a new random key to `path` with mode 0600, refusing to overwrite an existing file.
pub fn generate(path: &Path) -> Result<Key, KeyFileError> {
    let mut bytes = [0u8; KEY_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| KeyFileError::Random(e.to_string()))?;
    let key = Key(bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let io = |source| KeyFileError::Io { path: path.to_path_buf(), source };
    let mut file = match OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(KeyFileError::Exists(path.to_path_buf()));
        }
        Err(e) => return Err(io(e)),
    };
    let text =
        format!("# hactl cluster key (fingerprint {}); copy to every node, mode 0600\n{hex}\n", key.fingerprint());
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_loads_back_and_is_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("authkey");
        let key = generate(&path).expect("generate");
        assert_eq!(fs::metadata(&path).expect("stat").permissions().mode() & 0o777, 0o600);
        let keys = load(&path).expect("load");
        assert_eq!(keys.current, key);
        assert!(keys.accepted.is_empty());
        assert!(matches!(generate(&path), Err(KeyFileError::Exists(_))));
    }

    #[test]
    fn readable_key_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("authkey");
        generate(&path).expect("generate");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).expect("chmod");
        let err = load(&path).expect_err("group-readable key must be refused");
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn rotation_file_holds_two_keys_and_bad_lines_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("authkey");
        let write = |text: &str| {
            fs::write(&path, text).expect("write");
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        };
        write(&format!("# new first\n{}\n{}\n", "ab".repeat(32), "cd".repeat(32)));
        let keys = load(&path).expect("two keys");
        assert_eq!(keys.current.0[0], 0xab);
        assert_eq!(keys.accepted[0].0[0], 0xcd);
        write("# comment\nnot-a-key\n");
        assert!(matches!(load(&path), Err(KeyFileError::Malformed { line: 2, .. })));
        write(&format!("{}\n{}\n{}\n", "ab".repeat(32), "cd".repeat(32), "ef".repeat(32)));
        assert!(matches!(load(&path), Err(KeyFileError::Count { count: 3, .. })));
    }
}
