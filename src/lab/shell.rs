//! Running the lab's tools (`ip`, `nft`): one place that turns a failed command into a [`LabError`] with its
//! output, so every step of `up` reports what the kernel said.

use std::process::{Command, Output, Stdio};

use super::LabError;

/// Runs `program args…` to completion; an error carries the exit status and stderr.
pub(crate) fn run(program: &str, args: &[&str]) -> Result<Output, LabError> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| LabError::Command { command: line(program, args), detail: e.to_string() })?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(LabError::Command {
            command: line(program, args),
            detail: format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim()),
        })
    }
}

/// `ip -n NS args…`.
pub(crate) fn ip_in(ns: &str, args: &[&str]) -> Result<Output, LabError> {
    let mut all = vec!["-n", ns];
    all.extend_from_slice(args);
    run("ip", &all)
}

/// `ip netns exec NS program args…`, for tools without a namespace flag (nft).
pub(crate) fn exec_in(ns: &str, program: &str, args: &[&str]) -> Result<Output, LabError> {
    let mut all = vec!["netns", "exec", ns, program];
    all.extend_from_slice(args);
    run("ip", &all)
}

/// The network namespaces that exist (`ip netns list`), names only.
pub(crate) fn namespaces() -> Result<Vec<String>, LabError> {
    let out = run("ip", &["netns", "list"])?;
    // Lines are `NAME` or `NAME (id: N)`.
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect())
}

fn line(program: &str, args: &[&str]) -> String {
    std::iter::once(program).chain(args.iter().copied()).collect::<Vec<_>>().join(" ")
}
