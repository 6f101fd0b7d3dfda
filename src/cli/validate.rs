//! `hactl validate [PATH...]`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::manifest::{self, Format};

use super::{EXIT_INVALID, EXIT_OK, EXIT_USAGE};

/// Arguments of `hactl validate`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  hactl validate manifests/\n  hactl validate --strict --format github manifests/lab"
)]
pub struct Args {
    /// Manifest files or directories (searched recursively for *.yaml and *.yml). Default: the current directory.
    pub paths: Vec<PathBuf>,
    /// Output shape: text (FILE:LINE:COL: error[CODE]: ...), json, or github (workflow annotations).
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Treat warnings as errors.
    #[arg(long)]
    pub strict: bool,
    /// Print nothing for a valid set.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Validates and prints every finding.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let paths = if args.paths.is_empty() { vec![PathBuf::from(".")] } else { args.paths };
    let loaded = match manifest::load_paths(&paths) {
        Ok(loaded) => loaded,
        Err(err) => {
            eprintln!("hactl: error: {err}");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };
    let failed = loaded.errors() > 0 || (args.strict && loaded.warnings() > 0);
    let mut out = std::io::stdout().lock();
    out.write_all(manifest::diag::render(&loaded.diagnostics, args.format, args.strict).as_bytes())?;
    if args.format == Format::Text && (failed || !args.quiet) {
        let summary = match &loaded.state {
            Some(state) if !failed => format!(
                "valid: {} file(s), {} node(s), {} group(s), digest {}",
                loaded.files.len(),
                state.nodes.len(),
                state.groups.len(),
                &state.digest()[..12]
            ),
            _ => format!(
                "invalid: {} error(s), {} warning(s) in {} file(s)",
                loaded.errors(),
                loaded.warnings(),
                loaded.files.len()
            ),
        };
        writeln!(out, "{summary}")?;
    }
    Ok(ExitCode::from(if failed { EXIT_INVALID } else { EXIT_OK }))
}
