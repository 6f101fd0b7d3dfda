//! `hactl schema [--out DIR]`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::manifest::schema;

use super::EXIT_OK;

/// Arguments of `hactl schema`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  hactl schema --out schema/\n  hactl schema > manifest.schema.json")]
pub struct Args {
    /// Directory to write one file per kind and manifest.schema.json into; without it, print the any-kind schema.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Writes or prints the schemas.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let schemas = schema::schemas();
    match args.out {
        None => {
            let any = schemas.iter().find(|(name, _)| name == schema::ANY_FILE).map(|(_, s)| s);
            print!("{}", any.map(schema::render).unwrap_or_default());
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for (name, value) in &schemas {
                let path = dir.join(name);
                std::fs::write(&path, schema::render(value)).with_context(|| format!("writing {}", path.display()))?;
            }
        }
    }
    Ok(ExitCode::from(EXIT_OK))
}
