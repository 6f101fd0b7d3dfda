//! Key rotation without a restart (DESIGN.md §4.8: "during key rotation the key file may hold the old and the
//! new key"). The key file is read again at every rescan of the manifests, and every 5 s when its metadata
//! (inode, size, modification and change times, mode) differs from when it was last read, so a key file outside
//! the manifest directory is noticed within 5 s without being read while it stays the same; when the keys
//! differ from those in force, the protocol core signs with the new first key from its next datagram on and
//! accepts all of them, and so do the peer API and the local API's relay. A key file that has become
//! unreadable, empty, malformed or readable by group or others is an error in the log and `status`, and the keys
//! in force stay in use (last good, like the manifests).

use std::os::unix::fs::MetadataExt;

use tracing::{error, info};

use super::Agent;
use crate::proto;
use crate::sys::keyfile::{self, ClusterKeys};

/// The keys as the protocol core takes them: the signing key first.
pub(super) fn wire_keys(keys: &ClusterKeys) -> proto::wire::Keys {
    let mut all = vec![keys.current.0.to_vec()];
    all.extend(keys.accepted.iter().map(|k| k.0.to_vec()));
    proto::wire::Keys(all)
}

/// Fingerprints, signing key first: what the logs and `status` show of keys.
pub(super) fn fingerprints(keys: &ClusterKeys) -> String {
    let mut all = vec![keys.current.fingerprint()];
    all.extend(keys.accepted.iter().map(keyfile::Key::fingerprint));
    all.join(",")
}

/// What identifies one version of the key file without reading it.
pub(super) type Stamp = (u64, u64, i64, i64, i64, i64, u32);

fn stamp(path: &std::path::Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.ino(), m.len(), m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec(), m.mode()))
}

impl Agent {
    /// Reads the key file again only if it changed since it was last read (the periodic check).
    pub(super) fn check_key_file(&mut self) {
        if stamp(&self.state.cluster.auth_key_file) != self.key_stamp {
            self.reload_keys();
        }
    }

    /// Reads the key file of the config in force again and puts changed keys in force (see the module doc).
    pub(super) fn reload_keys(&mut self) {
        let path = self.state.cluster.auth_key_file.clone();
        // Taken before reading: a change in between is read again at the next check.
        self.key_stamp = stamp(&path);
        let in_force = self.keys.get();
        match keyfile::load(&path) {
            Ok(keys) => {
                if self.key_error.take().is_some() {
                    info!(file = %path.display(), "key file usable again");
                }
                if keys == in_force {
                    return;
                }
                info!(from = fingerprints(&in_force), to = fingerprints(&keys), "cluster keys changed: in force now");
                self.node.set_keys(wire_keys(&keys));
                self.keys.set(keys);
            }
            Err(e) => {
                let message = format!("key file: {e}; the keys in force ({}) stay in use", fingerprints(&in_force));
                if self.key_error.as_ref() != Some(&message) {
                    error!("{message}");
                    self.remember_error(message.clone());
                }
                self.key_error = Some(message);
            }
        }
    }

    /// The key file's error while it stands, for `status`.
    pub(super) fn key_error(&self) -> Option<&str> {
        self.key_error.as_deref()
    }
}
