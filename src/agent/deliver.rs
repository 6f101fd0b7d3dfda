//! Installing a manifest set delivered by `hactl apply`: validated first, written into a fresh directory
//! next to the watched one, then swapped in with one atomic `renameat2(RENAME_EXCHANGE)`, so the watcher
//! never sees a half-written set. A watched directory inside a git work tree is refused: there, git deploys.

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::manifest;

/// The body of `POST /v1/manifests`: every file of the set, by path relative to the manifest directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestSet {
    /// Relative path and content of each file.
    pub files: Vec<(String, String)>,
}

/// Why a set was not installed.
#[derive(Debug, Error)]
pub enum DeliverError {
    /// The directory is managed by git.
    #[error("{0} is in a git work tree: deploy with git there (git pull on each node), not with hactl apply")]
    GitTree(PathBuf),
    /// A file name escapes the directory or is not a manifest.
    #[error("bad file name in the set: {0:?}")]
    BadName(String),
    /// The set does not validate.
    #[error("the manifest set is invalid:\n{0}")]
    Invalid(String),
    /// Writing failed.
    #[error("writing the manifest set next to {path}: {source}")]
    Io {
        /// Where.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Whether `dir` or one of its ancestors holds a `.git`.
pub fn in_git_tree(dir: &Path) -> bool {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    dir.ancestors().any(|a| a.join(".git").exists())
}

fn check_name(name: &str) -> Result<PathBuf, DeliverError> {
    let path = PathBuf::from(name);
    let plain = path.components().all(|c| matches!(c, Component::Normal(_)));
    let manifest_file = path.file_name().and_then(|f| f.to_str()).is_some_and(manifest::source::is_manifest_name);
    if name.is_empty() || !plain || !manifest_file {
        return Err(DeliverError::BadName(name.to_string()));
    }
    Ok(path)
}

/// Validates `set` and swaps it in for the content of `dir` atomically.
pub fn install(dir: &Path, set: &ManifestSet) -> Result<(), DeliverError> {
    if in_git_tree(dir) {
        return Err(DeliverError::GitTree(dir.to_path_buf()));
    }
    let io = |source| DeliverError::Io { path: dir.to_path_buf(), source };
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let base = dir.file_name().and_then(|n| n.to_str()).unwrap_or("manifests");
    let fresh = parent.join(format!(".{base}.apply-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&fresh);
    std::fs::create_dir_all(&fresh).map_err(io)?;
    let result = write_and_swap(dir, &fresh, set);
    // After the swap `fresh` holds the old set; after a failure, the partial new one.
    let _ = std::fs::remove_dir_all(&fresh);
    result
}

fn write_and_swap(dir: &Path, fresh: &Path, set: &ManifestSet) -> Result<(), DeliverError> {
    let io = |source| DeliverError::Io { path: dir.to_path_buf(), source };
    for (name, content) in &set.files {
        let path = fresh.join(check_name(name)?);
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p).map_err(io)?;
        }
        std::fs::write(&path, content).map_err(io)?;
        std::fs::File::open(&path).and_then(|f| f.sync_all()).map_err(io)?;
    }
    let loaded = manifest::load_paths(&[fresh.to_path_buf()]).map_err(|e| DeliverError::Invalid(e.to_string()))?;
    if loaded.state.is_none() {
        let text = manifest::diag::render(&loaded.diagnostics, manifest::Format::Text, false);
        return Err(DeliverError::Invalid(text));
    }
    if !dir.exists() {
        return std::fs::rename(fresh, dir).map_err(io);
    }
    let cwd = nix::fcntl::AT_FDCWD;
    nix::fcntl::renameat2(cwd, fresh, cwd, dir, nix::fcntl::RenameFlags::RENAME_EXCHANGE)
        .map_err(|e| io(std::io::Error::from(e)))
}

/// Reads the manifest files under `dir` as a set to deliver.
pub fn read_set(dir: &Path) -> Result<ManifestSet, manifest::source::SourceError> {
    let files = manifest::source::discover(&[dir.to_path_buf()])?;
    let mut out = Vec::new();
    for file in files {
        let content = std::fs::read_to_string(&file)
            .map_err(|source| manifest::source::SourceError::Io { path: file.clone(), source })?;
        let name = file.strip_prefix(dir).unwrap_or(&file).to_string_lossy().into_owned();
        out.push((name, content));
    }
    Ok(ManifestSet { files: out })
}
