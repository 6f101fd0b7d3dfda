//! `lsb` against a real init script the test writes, and `systemd` against a stand-in `systemctl` (the only
//! stand-in allowed: no systemd runs in CI, DESIGN.md §5).

use std::path::Path;
use std::time::Duration;

use hactl::manifest::model::Driver;
use hactl::sys::service::{Action, DriverContext, DriverError, Outcome, run};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::support::{Reaper, alive, alive_sh, eventually, read_pid, script, service};

/// An LSB init script in the usual shape: a daemon with a pid file; status 3 when stopped cleanly, 1 when the
/// daemon died and left its pid file.
fn init_script(path: &Path, pid_file: &Path) {
    let pid = pid_file.display();
    let alive_check = alive_sh(pid_file);
    script(
        path,
        &format!(
            r#"#!/bin/sh
case "$1" in
  start) {alive_check} && exit 0
         sleep 300 </dev/null >/dev/null 2>&1 &
         echo $! > {pid}; exit 0 ;;
  stop) if [ -f {pid} ]; then kill $(cat {pid}) 2>/dev/null; while {alive_check}; do sleep 0.01; done; rm -f {pid}; fi
        exit 0 ;;
  status) [ -f {pid} ] || exit 3
          {alive_check} && exit 0
          exit 1 ;;
  *) echo "Usage: $0 {{start|stop|status}}" >&2; exit 2 ;;
esac
"#
        ),
    );
}

#[tokio::test]
async fn lsb_script_start_status_stop_and_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let (path, pid_file) = (dir.path().join("init.d/testd"), dir.path().join("testd.pid"));
    init_script(&path, &pid_file);
    let mut reaper = Reaper::default();
    reaper.pid_file(&pid_file);
    let svc = service("testd", Driver::Lsb { script: path.clone() });
    let ctx = DriverContext::default();

    assert_eq!(run(Action::Status, &svc, &ctx).await, Outcome::Stopped);
    assert_eq!(run(Action::Start, &svc, &ctx).await, Outcome::Running);
    let daemon = read_pid(&pid_file).unwrap();
    assert_eq!(run(Action::Monitor, &svc, &ctx).await, Outcome::Running);
    assert_eq!(run(Action::Stop, &svc, &ctx).await, Outcome::Stopped);
    assert!(!alive(daemon));
    assert_eq!(run(Action::Status, &svc, &ctx).await, Outcome::Stopped);

    // A crash: the daemon dies, its pid file stays; LSB status 1 is an error, not "stopped".
    assert_eq!(run(Action::Start, &svc, &ctx).await, Outcome::Running);
    let daemon = read_pid(&pid_file).unwrap();
    kill(Pid::from_raw(daemon), Signal::SIGKILL).unwrap();
    assert!(eventually(Duration::from_secs(2), || !alive(daemon)).await);
    match run(Action::Monitor, &svc, &ctx).await {
        Outcome::Failed(DriverError::Exit { code: 1, meaning, .. }) => {
            assert!(meaning.contains("pid file"), "{meaning}")
        }
        other => panic!("expected LSB status 1 as a failure, got {other:?}"),
    }
    assert_eq!(run(Action::Stop, &svc, &ctx).await, Outcome::Stopped);
}

/// A stand-in for systemctl: remembers each unit's state in a file and logs every call.
fn fake_systemctl(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("bin/systemctl");
    let d = dir.display();
    script(
        &path,
        &format!(
            r#"#!/bin/sh
echo "$*" >> {d}/calls
if [ "$2" = missing.service ]; then echo "Unit $2 not found." >&2; exit 4; fi
case "$1" in
  start) echo active > {d}/state-$2 ;;
  stop) echo inactive > {d}/state-$2 ;;
  is-active) state=$(cat {d}/state-$2 2>/dev/null || echo inactive); echo $state
             [ $state = active ] && exit 0; exit 3 ;;
  *) exit 1 ;;
esac
"#
        ),
    );
    path
}

#[tokio::test]
async fn systemd_runs_systemctl_start_stop_is_active() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = DriverContext { systemctl: fake_systemctl(dir.path()), ..DriverContext::default() };
    let svc = service("web", Driver::Systemd { unit: "nginx.service".into() });

    assert_eq!(run(Action::Status, &svc, &ctx).await, Outcome::Stopped);
    assert_eq!(run(Action::Start, &svc, &ctx).await, Outcome::Running);
    assert_eq!(run(Action::Monitor, &svc, &ctx).await, Outcome::Running);
    assert_eq!(run(Action::Stop, &svc, &ctx).await, Outcome::Stopped);
    assert_eq!(run(Action::Status, &svc, &ctx).await, Outcome::Stopped);
    let calls = std::fs::read_to_string(dir.path().join("calls")).unwrap();
    let expected = "is-active nginx.service\nstart nginx.service\nis-active nginx.service\n\
                    stop nginx.service\nis-active nginx.service\n";
    assert_eq!(calls, expected);

    let missing = service("gone", Driver::Systemd { unit: "missing.service".into() });
    match run(Action::Start, &missing, &ctx).await {
        Outcome::Failed(DriverError::Exit { code: 4, output, .. }) => assert!(output.contains("not found"), "{output}"),
        other => panic!("expected systemctl's exit 4 as a failure, got {other:?}"),
    }
}
