//! Watching the manifest directory. Events only say "look again" (level-triggered, STYLE.md): the agent
//! rescans and compares digests, so an editor's swap file or a `git checkout` that rewrites identical content
//! changes nothing, and the periodic resync covers whatever inotify missed.
//!
//! Git and deploy tools replace files by rename and sometimes swap the whole directory through a symlink
//! (`manifests -> releases/v42`). inotify watches the directory a symlink pointed at when the watch was made,
//! so the parent is watched too and [`ManifestWatcher::refresh`] re-aims the watch when the link's target
//! changed; the agent calls it on every event and on every resync.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify_debouncer_full::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use thiserror::Error;
use tokio::sync::mpsc;

/// Why the directory cannot be watched (the agent then relies on its periodic resync and says so).
#[derive(Debug, Error)]
pub enum WatchError {
    /// inotify refused (limits, missing directory).
    #[error("cannot watch {path}: {source}")]
    Notify {
        /// The path.
        path: PathBuf,
        /// The watcher's error.
        source: notify_debouncer_full::notify::Error,
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

/// Keeps the watch alive; dropping it stops watching.
pub struct ManifestWatcher {
    debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
    dir: PathBuf,
    target: PathBuf,
}

impl ManifestWatcher {
    /// Watches `dir` recursively (and its parent, for symlink swaps), sending [`LookAgain`] on `tx` after
    /// `window` of quiet. A full channel drops the signal: one pending rescan covers any number of changes.
    pub fn start(dir: &Path, window: Duration, tx: mpsc::Sender<LookAgain>) -> Result<ManifestWatcher, WatchError> {
        let handler = move |result: DebounceEventResult| {
            let relevant = match &result {
                Ok(events) => !events.is_empty(),
                Err(_) => true, // an overflowed queue: the only safe answer is a rescan
            };
            if relevant {
                let _ = tx.try_send(LookAgain);
            }
        };
        fn notify(path: &Path) -> impl FnOnce(notify_debouncer_full::notify::Error) -> WatchError + '_ {
            move |source| WatchError::Notify { path: path.to_path_buf(), source }
        }
        let mut debouncer = new_debouncer(window, None, handler).map_err(notify(dir))?;
        let target = resolve(dir)?;
        debouncer.watch(&target, RecursiveMode::Recursive).map_err(notify(&target))?;
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            debouncer.watch(parent, RecursiveMode::NonRecursive).map_err(notify(parent))?;
        }
        Ok(ManifestWatcher { debouncer, dir: dir.to_path_buf(), target })
    }

    /// Re-aims the recursive watch when `dir` now resolves elsewhere (a symlink swap); true if it moved.
    pub fn refresh(&mut self) -> Result<bool, WatchError> {
        let target = resolve(&self.dir)?;
        if target == self.target {
            return Ok(false);
        }
        // The old target may be gone already; failing to unwatch it is harmless.
        let _ = self.debouncer.unwatch(&self.target);
        self.debouncer
            .watch(&target, RecursiveMode::Recursive)
            .map_err(|source| WatchError::Notify { path: target.clone(), source })?;
        self.target = target;
        Ok(true)
    }

    /// The directory the watch currently follows.
    pub fn target(&self) -> &Path {
        &self.target
    }
}

fn resolve(dir: &Path) -> Result<PathBuf, WatchError> {
    std::fs::canonicalize(dir).map_err(|source| WatchError::Resolve { path: dir.to_path_buf(), source })
}
