//! The agent's persistent state directory (`--state-dir`, default /var/lib/hactl): the node's UUID, its
//! incarnation, and whatever records the protocol asks to persist (ballots, adoption records).
//!
//! Every durable write is atomic — temp file, fsync, rename, fsync of the directory — because a ballot or
//! incarnation that is lost in a crash could be reused, which DESIGN.md §4.2 forbids: if a write cannot be made
//! durable, the caller must not send the datagram that depends on it (the agent refuses to start). State that
//! only the boot that wrote it uses is a [`VolatileRecord`] instead: rewritten in place, checksummed, no fsync.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use thiserror::Error;
use uuid::Uuid;

const UUID_FILE: &str = "node-uuid";
const INCARNATION_FILE: &str = "incarnation";

/// Why the state directory cannot be used; nothing was sent that depends on the failed write.
#[derive(Debug, Error)]
pub enum StateError {
    /// An I/O operation failed.
    #[error("state directory {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file holds something we did not write.
    #[error("state file {path} is corrupt ({what}); move it away only if you know this node holds no lease")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What was expected.
        what: &'static str,
    },
}

/// An opened state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    path: PathBuf,
}

impl StateDir {
    /// Opens (creating, mode 0700) the directory.
    pub fn open(path: &Path) -> Result<StateDir, StateError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(|source| StateError::Io { path: path.to_path_buf(), source })?;
        Ok(StateDir { path: path.to_path_buf() })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads a record, `None` if it was never written.
    pub fn read(&self, name: &str) -> Result<Option<Vec<u8>>, StateError> {
        let path = self.path.join(name);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StateError::Io { path, source }),
        }
    }

    /// Opens (creating, mode 0600) a record that is rewritten in place and not durably: see [`VolatileRecord`].
    pub fn volatile(&self, name: &str) -> Result<VolatileRecord, StateError> {
        let path = self.path.join(name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|source| StateError::Io { path: path.clone(), source })?;
        let len = file.metadata().map_err(|source| StateError::Io { path: path.clone(), source })?.len();
        Ok(VolatileRecord { path, file, len })
    }

    /// Reads a record written by [`VolatileRecord::replace`]: `None` if it was never written, `Corrupt` if its
    /// frame does not check out (a torn write, or a file this version did not write).
    pub fn read_volatile(&self, name: &str) -> Result<Option<Vec<u8>>, StateError> {
        let Some(bytes) = self.read(name)? else { return Ok(None) };
        if bytes.is_empty() {
            return Ok(None);
        }
        unframe(&bytes).map(|b| Some(b.to_vec())).ok_or_else(|| StateError::Corrupt {
            path: self.path.join(name),
            what: "a torn or foreign volatile record",
        })
    }

    /// Replaces a record durably: after `Ok`, a crash or power loss leaves the new content.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<(), StateError> {
        let path = self.path.join(name);
        let tmp = self.path.join(format!(".{name}.tmp"));
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |source| StateError::Io { path: p, source }
        };
        let mut file =
            OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(io(&tmp))?;
        file.write_all(bytes).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        fs::rename(&tmp, &path).map_err(io(&path))?;
        // The rename is durable only once the directory entry is.
        File::open(&self.path).and_then(|d| d.sync_all()).map_err(io(&self.path))
    }

    /// Removes a record durably (a missing one is fine): after `Ok`, a crash does not bring it back.
    pub fn remove(&self, name: &str) -> Result<(), StateError> {
        let path = self.path.join(name);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(StateError::Io { path, source }),
        }
        File::open(&self.path)
            .and_then(|d| d.sync_all())
            .map_err(|source| StateError::Io { path: self.path.clone(), source })
    }

    /// The records in the directory, sorted (temporary files of interrupted writes are not records).
    pub fn names(&self) -> Result<Vec<String>, StateError> {
        let io = |source| StateError::Io { path: self.path.clone(), source };
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.path).map_err(io)? {
            let entry = entry.map_err(io)?;
            if let Some(name) = entry.file_name().to_str()
                && !name.starts_with('.')
            {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    /// The node's UUID, created at first start. Names are for people; the UUID is what ballots carry, so a
    /// node re-installed under the same name is a new voter, not the old one with a lost memory.
    pub fn node_uuid(&self) -> Result<Uuid, StateError> {
        if let Some(bytes) = self.read(UUID_FILE)? {
            let text = String::from_utf8_lossy(&bytes);
            return Uuid::parse_str(text.trim())
                .map_err(|_| StateError::Corrupt { path: self.path.join(UUID_FILE), what: "expected a UUID" });
        }
        let uuid = Uuid::new_v4();
        self.write(UUID_FILE, format!("{uuid}\n").as_bytes())?;
        Ok(uuid)
    }

    /// Starts a new incarnation: max(persisted + 1, wall-clock seconds), persisted before it is returned, so
    /// no two runs of this node ever share one even if the disk was restored from a backup (the wall clock
    /// moves on) or the clock was set back (the persisted value moves on).
    pub fn next_incarnation(&self, wall_clock_secs: u64) -> Result<u64, StateError> {
        let previous = match self.read(INCARNATION_FILE)? {
            None => 0,
            Some(bytes) => String::from_utf8_lossy(&bytes).trim().parse::<u64>().map_err(|_| StateError::Corrupt {
                path: self.path.join(INCARNATION_FILE),
                what: "expected an integer",
            })?,
        };
        let next = previous.saturating_add(1).max(wall_clock_secs);
        self.write(INCARNATION_FILE, format!("{next}\n").as_bytes())?;
        Ok(next)
    }
}

/// The kernel's boot id: an adoption record is valid only within the boot that wrote it (DESIGN.md §4.7),
/// since the lease clock restarts with the kernel.
pub fn boot_id() -> Result<String, StateError> {
    let path = Path::new("/proc/sys/kernel/random/boot_id");
    fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|source| StateError::Io { path: path.to_path_buf(), source })
}

/// The first line of a volatile record: a tag, the payload's length and its SHA-256 (hex).
const FRAME_TAG: &str = "hactl-record";

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = format!("{FRAME_TAG} {} {}\n", payload.len(), hex(&Sha256::digest(payload))).into_bytes();
    out.extend_from_slice(payload);
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The payload of a framed record, if the frame is whole; bytes after it (a longer earlier version) are ignored.
fn unframe(bytes: &[u8]) -> Option<&[u8]> {
    let nl = bytes.iter().position(|b| *b == b'\n')?;
    let header = std::str::from_utf8(&bytes[..nl]).ok()?;
    let mut fields = header.split(' ');
    let (tag, len, sum) = (fields.next()?, fields.next()?, fields.next()?);
    let len: usize = len.parse().ok()?;
    let payload = bytes.get(nl + 1..nl + 1 + len)?;
    (tag == FRAME_TAG && fields.next().is_none() && hex(&Sha256::digest(payload)) == sum).then_some(payload)
}

/// A state record rewritten in place with one `pwrite`, never fsynced, for state that only the boot that wrote
/// it uses (the adoption records). No temp file and no rename: on ext4 a rename over an existing file starts the
/// new file's writeback, which made this write the costliest thing an idle holder did. A crash of the process
/// leaves the last write whole (the page cache outlives the process); a torn write (a power loss, a kill in the
/// middle of the call) fails the frame's checksum and reads as corrupt, so a reader can never take a mix of two
/// versions for one.
#[derive(Debug)]
pub struct VolatileRecord {
    path: PathBuf,
    file: File,
    /// The file's length as last written, to cut off a longer earlier version's tail (kept tidy, not needed).
    len: u64,
}

impl VolatileRecord {
    /// Replaces the record's content.
    pub fn replace(&mut self, payload: &[u8]) -> Result<(), StateError> {
        let bytes = frame(payload);
        let io = |source| StateError::Io { path: self.path.clone(), source };
        self.file.write_all_at(&bytes, 0).map_err(io)?;
        let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        if len < self.len {
            self.file.set_len(len).map_err(io)?;
        }
        self.len = len;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_volatile_record_is_replaced_in_place_and_a_torn_one_reads_as_corrupt() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::open(dir.path()).expect("open");
        assert!(state.read_volatile("r").expect("read").is_none(), "never written");
        let mut record = state.volatile("r").expect("open record");
        record.replace(b"a longer first version").expect("write");
        record.replace(b"short").expect("write");
        assert_eq!(state.read_volatile("r").expect("read").as_deref(), Some(&b"short"[..]));
        let ino = std::fs::metadata(dir.path().join("r")).map(|m| std::os::unix::fs::MetadataExt::ino(&m));
        record.replace(b"third").expect("write");
        let same = std::fs::metadata(dir.path().join("r")).map(|m| std::os::unix::fs::MetadataExt::ino(&m));
        assert_eq!(ino.ok(), same.ok(), "rewritten in place, not renamed over");
        // A write cut short, or one that mixes two versions, fails the frame's checksum.
        let whole = std::fs::read(dir.path().join("r")).expect("bytes");
        std::fs::write(dir.path().join("r"), &whole[..whole.len() - 2]).expect("tear");
        assert!(matches!(state.read_volatile("r"), Err(StateError::Corrupt { .. })));
        let mut mixed = whole.clone();
        let at = mixed.len() - 1;
        mixed[at] = b'X';
        std::fs::write(dir.path().join("r"), &mixed).expect("mix");
        assert!(matches!(state.read_volatile("r"), Err(StateError::Corrupt { .. })));
        std::fs::write(dir.path().join("r"), b"{\"records\": []}").expect("foreign");
        assert!(matches!(state.read_volatile("r"), Err(StateError::Corrupt { .. })));
    }

    #[test]
    fn uuid_is_created_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::open(&dir.path().join("s")).expect("open");
        let first = state.node_uuid().expect("uuid");
        assert_eq!(StateDir::open(state.path()).expect("reopen").node_uuid().expect("uuid"), first);
    }

    #[test]
    fn incarnation_never_repeats_even_when_the_clock_goes_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::open(dir.path()).expect("open");
        assert_eq!(state.next_incarnation(1_000).expect("inc"), 1_000);
        assert_eq!(state.next_incarnation(1_000).expect("inc"), 1_001);
        assert_eq!(state.next_incarnation(5).expect("clock set back"), 1_002);
        assert_eq!(state.next_incarnation(2_000).expect("inc"), 2_000);
    }

    #[test]
    fn corrupt_files_are_refused_not_reset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::open(dir.path()).expect("open");
        state.write(INCARNATION_FILE, b"garbage").expect("write");
        assert!(matches!(state.next_incarnation(1), Err(StateError::Corrupt { .. })));
        state.write(UUID_FILE, b"not-a-uuid").expect("write");
        assert!(matches!(state.node_uuid(), Err(StateError::Corrupt { .. })));
    }

    #[test]
    fn unwritable_directory_is_an_error() {
        let err = StateDir::open(Path::new("/proc/hactl-cannot-exist")).expect_err("cannot create under /proc");
        assert!(err.to_string().contains("/proc/hactl-cannot-exist"), "{err}");
    }

    #[test]
    fn removed_records_are_gone_and_listing_skips_temporaries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::open(dir.path()).expect("open");
        state.write("b", b"2").expect("write");
        state.write("a", b"1").expect("write");
        std::fs::write(dir.path().join(".c.tmp"), b"half").expect("tmp");
        assert_eq!(state.names().expect("names"), ["a", "b"]);
        state.remove("a").expect("remove");
        state.remove("a").expect("a missing record is fine");
        assert_eq!(state.read("a").expect("read"), None);
        assert_eq!(state.names().expect("names"), ["b"]);
    }

    #[test]
    fn boot_id_is_readable() {
        assert_eq!(boot_id().expect("boot id").len(), 36);
    }
}
