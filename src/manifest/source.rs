//! Finding and reading manifest files: recursive, hidden files and editor temporaries skipped, sizes capped.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Largest manifest file read; a generated set of 10,000 documents is about 2 MB, so 16 MiB only stops
/// accidents (a log or a dump in the directory) and abuse.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;
/// Deepest directory nesting followed, so a symlink loop ends.
const MAX_DIR_DEPTH: usize = 32;

/// Why a manifest set could not be read at all (the CLI's exit code 2); nothing was validated.
#[derive(Debug, Error)]
pub enum SourceError {
    /// A path could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The paths held no manifest file.
    #[error("no manifest files (*.yaml, *.yml) in {0}")]
    Empty(String),
}

/// True for the files a directory scan takes: `*.yaml`/`*.yml`, not hidden (which also skips editors'
/// `.#x.yaml` locks and `.x.yaml.swp` swap files, and `.git`).
pub fn is_manifest_name(name: &str) -> bool {
    !name.starts_with('.') && (name.ends_with(".yaml") || name.ends_with(".yml"))
}

/// The manifest files under `paths`, sorted, each once. Files named explicitly are taken whatever their name.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, SourceError> {
    let mut found = BTreeSet::new();
    for path in paths {
        let meta = fs::metadata(path).map_err(|source| SourceError::Io { path: path.clone(), source })?;
        if meta.is_dir() {
            walk(path, 0, &mut found)?;
        } else {
            found.insert(path.clone());
        }
    }
    if found.is_empty() {
        let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(SourceError::Empty(names.join(", ")));
    }
    Ok(found.into_iter().collect())
}

fn walk(dir: &Path, depth: usize, found: &mut BTreeSet<PathBuf>) -> Result<(), SourceError> {
    if depth > MAX_DIR_DEPTH {
        return Ok(());
    }
    let io_err = |source| SourceError::Io { path: dir.to_path_buf(), source };
    for entry in fs::read_dir(dir).map_err(io_err)? {
        let entry = entry.map_err(io_err)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        // metadata() follows symlinks: a directory swapped in by symlink is read like any other.
        let Ok(meta) = fs::metadata(&path) else { continue };
        if meta.is_dir() {
            walk(&path, depth + 1, found)?;
        } else if meta.is_file() && is_manifest_name(name) {
            found.insert(path);
        }
    }
    Ok(())
}

/// What reading one file gave: its text, or a finding about why it cannot be parsed.
pub enum Content {
    /// UTF-8 text.
    Text(String),
    /// Larger than [`MAX_FILE_BYTES`].
    TooLarge(u64),
    /// Not UTF-8: the 1-based line and column of the first bad byte.
    NotUtf8(u32, u32),
    /// A character YAML does not allow (C0/C1 controls other than tab and line breaks): line, column, character.
    Unprintable(u32, u32, char),
}

/// YAML 1.2 §5.1: a stream holds only printable characters (tab, LF, CR, 0x20–0x7E, NEL, 0xA0 and above
/// except surrogates and U+FFFE/U+FFFF, which Rust strings cannot hold or which we reject here).
fn first_unprintable(text: &str) -> Option<(u32, u32, char)> {
    let printable = |c: char| {
        matches!(c, '\t' | '\n' | '\r' | ' '..='~' | '\u{85}') || (c >= '\u{a0}' && c != '\u{fffe}' && c != '\u{ffff}')
    };
    let (mut line, mut column) = (1u32, 1u32);
    for c in text.chars() {
        if !printable(c) {
            return Some((line, column, c));
        }
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    None
}

/// Reads one file within the size cap.
pub fn read(path: &Path) -> Result<Content, SourceError> {
    let io_err = |source| SourceError::Io { path: path.to_path_buf(), source };
    let size = fs::metadata(path).map_err(io_err)?.len();
    if size > MAX_FILE_BYTES {
        return Ok(Content::TooLarge(size));
    }
    let bytes = fs::read(path).map_err(io_err)?;
    Ok(decode(bytes))
}

/// Decodes bytes as UTF-8 (a leading BOM is dropped), or says where they stop being UTF-8.
pub fn decode(bytes: Vec<u8>) -> Content {
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Content::TooLarge(bytes.len() as u64);
    }
    match String::from_utf8(bytes) {
        Ok(text) => {
            let text = text.strip_prefix('\u{feff}').map(str::to_string).unwrap_or(text);
            match first_unprintable(&text) {
                Some((line, column, c)) => Content::Unprintable(line, column, c),
                None => Content::Text(text),
            }
        }
        Err(e) => {
            let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let line = good.iter().filter(|b| **b == b'\n').count() + 1;
            let last_line = good.rsplit(|b| *b == b'\n').next().unwrap_or(good);
            let column = String::from_utf8_lossy(last_line).chars().count() + 1;
            Content::NotUtf8(u32::try_from(line).unwrap_or(u32::MAX), u32::try_from(column).unwrap_or(u32::MAX))
        }
    }
}
