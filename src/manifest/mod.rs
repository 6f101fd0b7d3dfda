//! Manifests: the declarative API (DESIGN.md §1). Loading turns a directory of YAML into a typed
//! [`DesiredState`] or into a complete list of [`Diagnostic`]s, each at its file, line and column.

pub mod check;
pub mod decode;
pub mod diag;
pub mod model;
pub mod raw;
pub mod schema;
pub mod source;
pub mod values;
pub mod yaml;

use std::path::{Path, PathBuf};

pub use diag::{Diagnostic, Format, Severity};
pub use model::{DesiredState, Resource};
pub use source::SourceError;

use yaml::Pos;

/// The result of loading a manifest set: the state when it is valid, and every finding either way.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The desired state; `None` when any error was found.
    pub state: Option<DesiredState>,
    /// Every error and warning, sorted by file, line and column.
    pub diagnostics: Vec<Diagnostic>,
    /// The files read, in order.
    pub files: Vec<PathBuf>,
}

impl Loaded {
    /// Number of errors.
    pub fn errors(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.severity == Severity::Error).count()
    }

    /// Number of warnings.
    pub fn warnings(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.severity == Severity::Warning).count()
    }
}

/// Loads the manifest files found under `paths` (directories recursively).
pub fn load_paths(paths: &[PathBuf]) -> Result<Loaded, SourceError> {
    let files = source::discover(paths)?;
    let mut contents = Vec::with_capacity(files.len());
    for file in files {
        let content = source::read(&file)?;
        contents.push((file, content));
    }
    Ok(load_contents(contents))
}

/// Loads manifests already in memory (the peer API receives them over the network): `(name, bytes)` pairs.
pub fn load_bytes(files: Vec<(PathBuf, Vec<u8>)>) -> Loaded {
    load_contents(files.into_iter().map(|(path, bytes)| (path, source::decode(bytes))).collect())
}

fn load_contents(contents: Vec<(PathBuf, source::Content)>) -> Loaded {
    let mut diagnostics = Vec::new();
    let mut docs = Vec::new();
    let mut complete = true;
    let mut files = Vec::with_capacity(contents.len());
    for (file, content) in contents {
        complete &= load_file(&file, content, &mut docs, &mut diagnostics);
        files.push(file);
    }
    let state = check::build(&docs, complete, &mut diagnostics);
    if !complete {
        diagnostics.push(Diagnostic::warning(
            Path::new(""),
            Pos::default(),
            "incomplete",
            "",
            "checks across files (references, exactly one Cluster) were skipped because some files could not be parsed",
        ));
    }
    diag::sort(&mut diagnostics);
    let state = state.filter(|_| !diagnostics.iter().any(|d| d.severity == Severity::Error));
    Loaded { state, diagnostics, files }
}

/// Decodes one file's documents into `docs`; false when the file could not be parsed as a whole.
fn load_file(
    file: &Path,
    content: source::Content,
    docs: &mut Vec<check::RawDoc>,
    diags: &mut Vec<Diagnostic>,
) -> bool {
    let text = match content {
        source::Content::Text(text) => text,
        source::Content::TooLarge(size) => {
            let message = format!(
                "file is {size} bytes; valid: at most {} bytes (split it into several files)",
                source::MAX_FILE_BYTES
            );
            diags.push(Diagnostic::error(file, Pos { line: 1, column: 1 }, "file-too-large", "", message));
            return false;
        }
        source::Content::Unprintable(line, column, c) => {
            let message = format!("control character U+{:04X} is not allowed in YAML; remove it", u32::from(c));
            diags.push(Diagnostic::error(file, Pos { line, column }, "encoding", "", message));
            return false;
        }
        source::Content::NotUtf8(line, column) => {
            let message = "not UTF-8 text; manifests must be UTF-8 YAML";
            diags.push(Diagnostic::error(file, Pos { line, column }, "encoding", "", message));
            return false;
        }
    };
    let (documents, problems) = yaml::parse(&text);
    let mut complete = true;
    for p in problems {
        complete &= !p.fatal;
        diags.push(Diagnostic::error(file, p.pos, p.code, "", p.message));
    }
    for doc in documents {
        let Some(root) = doc.root else { continue };
        if decode::is_null(&root) {
            continue;
        }
        if let Some(raw) = check::decode_document(&root, file, diags) {
            docs.push(raw);
        }
    }
    complete
}
