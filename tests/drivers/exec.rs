//! `exec: {start, stop, status}`: shell commands, exit codes, time limits.

use std::time::{Duration, Instant};

use hactl::sys::service::{Action, DriverContext, DriverError, Outcome, run};

use super::support::{Reaper, alive, alive_sh, eventually, exec, read_pid, service};

#[tokio::test]
async fn start_status_monitor_stop_a_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("daemon.pid");
    let mut reaper = Reaper::default();
    reaper.pid_file(&pid_file);
    let pid = pid_file.display();
    let alive_check = alive_sh(&pid_file);
    let start = format!("sleep 300 </dev/null >/dev/null 2>&1 & echo $! > {pid}");
    let stop = format!("kill $(cat {pid}); while {alive_check}; do sleep 0.01; done");
    let svc = service("daemon", exec(&start, &stop, &alive_check));
    let ctx = DriverContext::default();

    assert_eq!(run(Action::Status, &svc, &ctx).await, Outcome::Stopped);
    assert_eq!(run(Action::Start, &svc, &ctx).await, Outcome::Running);
    let daemon = read_pid(&pid_file).unwrap();
    assert!(alive(daemon));
    assert_eq!(run(Action::Status, &svc, &ctx).await, Outcome::Running);
    assert_eq!(run(Action::Monitor, &svc, &ctx).await, Outcome::Running);
    assert_eq!(run(Action::Stop, &svc, &ctx).await, Outcome::Stopped);
    assert!(!alive(daemon), "stop reported Stopped but pid {daemon} still runs");
    assert_eq!(run(Action::Status, &svc, &ctx).await, Outcome::Stopped);
}

#[tokio::test]
async fn a_failing_command_is_a_failure_with_its_output() {
    let svc = service("broken", exec("echo 'port 80 in use' >&2; exit 3", "exit 1", "exit 3"));
    let ctx = DriverContext::default();
    match run(Action::Start, &svc, &ctx).await {
        Outcome::Failed(DriverError::Exit { code: 3, output, command, .. }) => {
            assert_eq!(output, "port 80 in use");
            assert!(command.starts_with("/bin/sh -c"), "{command}");
        }
        other => panic!("expected a failed start with exit code 3, got {other:?}"),
    }
    let stop = run(Action::Stop, &svc, &ctx).await;
    assert!(matches!(stop, Outcome::Failed(DriverError::Exit { code: 1, .. })), "{stop:?}");
    assert!(!stop.is_stopped(), "a failed stop must not count as stopped");
}

#[tokio::test]
async fn a_command_over_its_limit_is_killed_with_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let (shell_pid, child_pid) = (dir.path().join("shell.pid"), dir.path().join("child.pid"));
    let mut reaper = Reaper::default();
    reaper.pid_file(&shell_pid);
    reaper.pid_file(&child_pid);
    let start = format!("echo $$ > {}; sleep 30 & echo $! > {}; wait", shell_pid.display(), child_pid.display());
    let mut svc = service("slow", exec(&start, "true", "false"));
    svc.timeouts.start = Duration::from_millis(300);
    let began = Instant::now();
    let outcome = run(Action::Start, &svc, &DriverContext::default()).await;
    assert_eq!(outcome, Outcome::TimedOut { limit: Duration::from_millis(300) });
    assert!(began.elapsed() < Duration::from_secs(2), "took {:?}", began.elapsed());
    let (shell, child) = (read_pid(&shell_pid).unwrap(), read_pid(&child_pid).unwrap());
    let gone = eventually(Duration::from_secs(2), || !alive(shell) && !alive(child)).await;
    assert!(gone, "the timed-out command's process group was not killed");
}

#[tokio::test]
async fn a_stop_over_its_limit_is_not_stopped() {
    let mut svc = service("stuck", exec("true", "sleep 30", "true"));
    svc.timeouts.stop = Duration::from_millis(200);
    let outcome = run(Action::Stop, &svc, &DriverContext::default()).await;
    assert_eq!(outcome, Outcome::TimedOut { limit: Duration::from_millis(200) });
    assert!(!outcome.is_stopped());
}

#[tokio::test]
async fn a_monitor_over_its_limit_times_out() {
    let mut svc = service("hung", exec("true", "true", "sleep 30"));
    svc.monitor.timeout = Duration::from_millis(200);
    let outcome = run(Action::Monitor, &svc, &DriverContext::default()).await;
    assert_eq!(outcome, Outcome::TimedOut { limit: Duration::from_millis(200) });
}

#[tokio::test]
async fn a_missing_program_is_a_spawn_failure() {
    let svc = service("gone", hactl::manifest::model::Driver::Lsb { script: "/nonexistent/init.d/gone".into() });
    match run(Action::Status, &svc, &DriverContext::default()).await {
        Outcome::Failed(DriverError::Spawn { program, .. }) => assert_eq!(program, "/nonexistent/init.d/gone"),
        other => panic!("expected a spawn failure, got {other:?}"),
    }
}

#[tokio::test]
async fn dropping_an_action_kills_its_command_group() {
    let dir = tempfile::tempdir().unwrap();
    let (shell_pid, child_pid) = (dir.path().join("shell.pid"), dir.path().join("child.pid"));
    let mut reaper = Reaper::default();
    reaper.pid_file(&shell_pid);
    reaper.pid_file(&child_pid);
    let start = format!("echo $$ > {}; sleep 30 & echo $! > {}; wait", shell_pid.display(), child_pid.display());
    let svc = service("abandoned", exec(&start, "true", "false"));
    let ctx = DriverContext::default();
    let action = run(Action::Start, &svc, &ctx);
    let wrote_pids = || read_pid(&shell_pid).is_some() && read_pid(&child_pid).is_some();
    // The agent gives up on the action (its future is dropped) while the command still runs.
    let abandoned = tokio::time::timeout(Duration::from_millis(500), action).await;
    assert!(abandoned.is_err(), "the action finished on its own: {abandoned:?}");
    assert!(wrote_pids(), "the command did not get to write its pids in 500 ms");
    let (shell, child) = (read_pid(&shell_pid).unwrap(), read_pid(&child_pid).unwrap());
    let gone = eventually(Duration::from_secs(2), || !alive(shell) && !alive(child)).await;
    assert!(gone, "dropping the action left its command running");
}
