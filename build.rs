//! Stamps the binary with the git commit it was built from, for `hactl --version`: a bug report then names the
//! exact source. Outside a git checkout (a source tarball, a vendored build) the commit is `unknown`; a work tree
//! with uncommitted changes adds `-dirty`, since the commit alone would not describe what was built.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let commit = match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(commit) if !commit.is_empty() => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
            if dirty { format!("{commit}-dirty") } else { commit }
        }
        _ => "unknown".to_string(),
    };
    println!("cargo:rustc-env=HACTL_COMMIT={commit}");
    // Rebuilt when HEAD moves (a commit, a checkout) or the index changes (dirty state); paths from git itself,
    // so a linked work tree (where .git is a file) works too.
    for path in ["HEAD", "index"] {
        if let Some(file) = git(&["rev-parse", "--git-path", path]) {
            println!("cargo:rerun-if-changed={file}");
        }
    }
    if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"])
        && let Some(file) = git(&["rev-parse", "--git-path", &reference])
    {
        println!("cargo:rerun-if-changed={file}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
