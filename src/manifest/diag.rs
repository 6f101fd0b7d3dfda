//! Diagnostics: what is wrong, where, and what would be valid — in the three shapes CI systems read.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::yaml::Pos;

/// How bad a finding is; warnings become errors under `validate --strict`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The manifest set is refused.
    Error,
    /// Legal but likely not what the operator wants.
    Warning,
}

/// One finding, located to the character so an editor or a CI annotation can jump to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// The file; empty for findings about the set as a whole (e.g. no Cluster at all).
    pub file: PathBuf,
    /// 1-based line (0 when the finding has no place in a file).
    pub line: u32,
    /// 1-based column (0 when the finding has no place in a file).
    pub column: u32,
    /// Error or warning.
    pub severity: Severity,
    /// Stable short code, documented in the README, for scripts and suppression.
    pub code: &'static str,
    /// The field path within the document (`spec.members[1]`), empty for document-level findings.
    pub path: String,
    /// What is wrong and what would be valid.
    pub message: String,
}

impl Diagnostic {
    /// An error at a place.
    pub fn error(
        file: &Path,
        pos: Pos,
        code: &'static str,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::new(file, pos, Severity::Error, code, path, message)
    }

    /// A warning at a place.
    pub fn warning(
        file: &Path,
        pos: Pos,
        code: &'static str,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::new(file, pos, Severity::Warning, code, path, message)
    }

    fn new(
        file: &Path,
        pos: Pos,
        severity: Severity,
        code: &'static str,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            file: file.to_path_buf(),
            line: pos.line,
            column: pos.column,
            severity,
            code,
            path: path.into(),
            message: message.into(),
        }
    }

    fn location(&self) -> String {
        if self.file.as_os_str().is_empty() {
            "<manifests>".to_string()
        } else {
            format!("{}:{}:{}", self.file.display(), self.line, self.column)
        }
    }

    fn body(&self) -> String {
        if self.path.is_empty() { self.message.clone() } else { format!("{}: {}", self.path, self.message) }
    }
}

/// Orders findings by file, line and column, as compilers print them.
pub fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by(|a, b| {
        (&a.file, a.line, a.column, a.severity, a.code, &a.message)
            .cmp(&(&b.file, b.line, b.column, b.severity, b.code, &b.message))
    });
}

/// Output shapes of `hactl validate --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `FILE:LINE:COLUMN: error[CODE]: path: message`, one per line.
    Text,
    /// A JSON array of findings, for scripts.
    Json,
    /// GitHub Actions workflow commands, so findings show up as annotations on the pull request.
    Github,
}

/// Renders findings; `strict` prints warnings as errors, as they then fail the run.
pub fn render(diags: &[Diagnostic], format: Format, strict: bool) -> String {
    let severity = |d: &Diagnostic| if strict { Severity::Error } else { d.severity };
    let mut out = String::new();
    match format {
        Format::Text => {
            for d in diags {
                let word = match severity(d) {
                    Severity::Error => "error",
                    Severity::Warning => "warning",
                };
                let _ = writeln!(out, "{}: {word}[{}]: {}", d.location(), d.code, d.body());
            }
        }
        Format::Json => {
            let shown: Vec<Diagnostic> =
                diags.iter().map(|d| Diagnostic { severity: severity(d), ..d.clone() }).collect();
            // Serializing plain strings and numbers cannot fail.
            out = serde_json::to_string_pretty(&shown).unwrap_or_default();
            out.push('\n');
        }
        Format::Github => {
            for d in diags {
                let word = match severity(d) {
                    Severity::Error => "error",
                    Severity::Warning => "warning",
                };
                let message = escape_github_data(&d.body());
                if d.file.as_os_str().is_empty() {
                    let _ = writeln!(out, "::{word} title=hactl {}::{message}", d.code);
                } else {
                    let _ = writeln!(
                        out,
                        "::{word} file={},line={},col={},title=hactl {}::{message}",
                        escape_github_property(&d.file.display().to_string()),
                        d.line,
                        d.column,
                        d.code
                    );
                }
            }
        }
    }
    out
}

// GitHub's workflow-command escaping: `%`, CR and LF in data; also `:` and `,` in properties.
fn escape_github_data(s: &str) -> String {
    s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

fn escape_github_property(s: &str) -> String {
    escape_github_data(s).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Diagnostic {
        Diagnostic::error(
            Path::new("m/a.yaml"),
            Pos { line: 3, column: 7 },
            "unknown-member",
            "spec.members[1]",
            "unknown member \"x\"",
        )
    }

    #[test]
    fn text_shape() {
        assert_eq!(
            render(&[sample()], Format::Text, false),
            "m/a.yaml:3:7: error[unknown-member]: spec.members[1]: unknown member \"x\"\n"
        );
    }

    #[test]
    fn github_shape_escapes_properties() {
        let mut d = sample();
        d.file = PathBuf::from("a,b:c.yaml");
        assert_eq!(
            render(&[d], Format::Github, false),
            "::error file=a%2Cb%3Ac.yaml,line=3,col=7,title=hactl unknown-member::spec.members[1]: unknown member \"x\"\n"
        );
    }

    #[test]
    fn strict_turns_warnings_into_errors() {
        let mut d = sample();
        d.severity = Severity::Warning;
        assert!(render(std::slice::from_ref(&d), Format::Text, true).contains(": error["));
        assert!(render(&[d], Format::Text, false).contains(": warning["));
    }
}
