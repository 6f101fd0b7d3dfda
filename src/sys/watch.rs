//! Watching the manifest directory. Events only say "look again" (level-triggered, STYLE.md): the agent
//! rescans and compares digests, so an editor's swap file or a `git checkout` that rewrites identical content
//! changes nothing, and the agent's slow backstop rescan covers whatever inotify missed.
//!
//! Git and deploy tools replace files by rename and sometimes swap the whole directory through a symlink
//! (`manifests -> releases/v42`). inotify watches the directory a symlink pointed at when the watch was made,
//! so the parent is watched too, and every signal re-aims the watch first when the link's target changed.
//!
//! Only changes count: inotify also reports every open and read-only close, and the rescan that a signal
//! causes opens every manifest, so counting those would make each rescan cause the next one (a loop that kept
//! an idle agent reparsing its manifests several times a second). Debouncing is a timer that exists only
//! while changes arrive: an idle watcher has no thread that wakes up.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use thiserror::Error;
use tokio::sync::mpsc;
use tracing::warn;

/// A burst of changes longer than this many windows is signalled anyway, so a busy directory is still read.
const LONGEST_BURST: u32 = 10;

/// Why the directory cannot be watched (the agent then relies on its periodic rescan and says so).
#[derive(Debug, Error)]
pub enum WatchError {
    /// inotify refused (limits, missing directory).
    #[error("cannot watch {path}: {source}")]
    Notify {
        /// The path.
        path: PathBuf,
        /// The watcher's error.
        source: notify::Error,
    },
    /// The directory's real path cannot be resolved.
    #[error("cannot resolve {path}: {source}")]
    Resolve {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A "look again" signal from the file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LookAgain;

/// The watch itself, shared between its owner and the debouncing task (which holds it weakly).
struct Inner {
    watcher: RecommendedWatcher,
    dir: PathBuf,
    target: PathBuf,
    /// The watched directory's (device, inode): a directory swapped in under the same path (`hactl apply`
    /// exchanges it with `renameat2`) is a new inode, and inotify's watch stayed with the old one.
    inode: (u64, u64),
}

impl Inner {
    fn refresh(&mut self) -> Result<bool, WatchError> {
        let target = resolve(&self.dir)?;
        let inode = inode_of(&target)?;
        if target == self.target && inode == self.inode {
            return Ok(false);
        }
        // The old target may be gone already; failing to unwatch it is harmless.
        let _ = self.watcher.unwatch(&self.target);
        self.watcher
            .watch(&target, RecursiveMode::Recursive)
            .map_err(|source| WatchError::Notify { path: target.clone(), source })?;
        self.target = target;
        self.inode = inode;
        Ok(true)
    }
}

fn inode_of(path: &Path) -> Result<(u64, u64), WatchError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(|source| WatchError::Resolve { path: path.to_path_buf(), source })?;
    Ok((meta.dev(), meta.ino()))
}

/// Keeps the watch alive; dropping it stops watching.
pub struct ManifestWatcher {
    inner: Arc<Mutex<Inner>>,
}

/// True for an event that may mean different content: everything but opens, reads and read-only closes.
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

impl ManifestWatcher {
    /// Watches `dir` recursively (and its parent, for symlink swaps), sending [`LookAgain`] on `tx` once
    /// `window` has passed without a further change. A full channel drops the signal: one pending rescan covers
    /// any number of changes. Must be called within a Tokio runtime (the debouncing runs as a task).
    pub fn start(dir: &Path, window: Duration, tx: mpsc::Sender<LookAgain>) -> Result<ManifestWatcher, WatchError> {
        let (raw_tx, mut raw_rx) = mpsc::channel::<()>(1);
        let handler = move |result: notify::Result<notify::Event>| {
            // An error (an overflowed queue) can hide any change: the only safe answer is a rescan.
            if result.as_ref().map_or(true, |event| is_change(&event.kind)) {
                let _ = raw_tx.try_send(());
            }
        };
        fn notify_error(path: &Path) -> impl FnOnce(notify::Error) -> WatchError + '_ {
            move |source| WatchError::Notify { path: path.to_path_buf(), source }
        }
        let mut watcher = notify::recommended_watcher(handler).map_err(notify_error(dir))?;
        let target = resolve(dir)?;
        watcher.watch(&target, RecursiveMode::Recursive).map_err(notify_error(&target))?;
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            watcher.watch(parent, RecursiveMode::NonRecursive).map_err(notify_error(parent))?;
        }
        let inode = inode_of(&target)?;
        let inner = Arc::new(Mutex::new(Inner { watcher, dir: dir.to_path_buf(), target, inode }));
        let weak: Weak<Mutex<Inner>> = Arc::downgrade(&inner);
        tokio::spawn(async move {
            // Ends when the watcher is dropped: its handler, the only sender, goes with it.
            while raw_rx.recv().await.is_some() {
                for _ in 0..LONGEST_BURST {
                    match tokio::time::timeout(window, raw_rx.recv()).await {
                        Ok(Some(())) => continue,
                        Ok(None) => return,
                        Err(_) => break,
                    }
                }
                let Some(inner) = weak.upgrade() else { return };
                if let Ok(mut inner) = inner.lock()
                    && let Err(e) = inner.refresh()
                {
                    warn!(target: "config", "{e}; the manifests are still rescanned, but changes may be noticed late");
                }
                let _ = tx.try_send(LookAgain);
            }
        });
        Ok(ManifestWatcher { inner })
    }

    /// Re-aims the recursive watch when the directory now resolves elsewhere (a symlink swap) or is another
    /// directory under the same path (an exchange); true if it moved.
    /// Every signal does this first; calling it again changes nothing unless the link moved since.
    pub fn refresh(&self) -> Result<bool, WatchError> {
        match self.inner.lock() {
            Ok(mut inner) => inner.refresh(),
            Err(poisoned) => poisoned.into_inner().refresh(),
        }
    }

    /// The directory the watch currently follows.
    pub fn target(&self) -> PathBuf {
        match self.inner.lock() {
            Ok(inner) => inner.target.clone(),
            Err(poisoned) => poisoned.into_inner().target.clone(),
        }
    }
}

fn resolve(dir: &Path) -> Result<PathBuf, WatchError> {
    std::fs::canonicalize(dir).map_err(|source| WatchError::Resolve { path: dir.to_path_buf(), source })
}
