//! The manifest watcher on a real file system: a real `git checkout`, and a directory swapped by symlink.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use hactl::manifest;
use hactl::sys::watch::{LookAgain, ManifestWatcher};
use tokio::sync::mpsc;

const WINDOW: Duration = Duration::from_millis(200);
/// Generous: inotify is fast, but CI machines are shared and noisy.
const PATIENCE: Duration = Duration::from_secs(10);

fn lab_files(into: &Path) {
    let lab = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/lab");
    std::fs::create_dir_all(into).unwrap();
    for entry in std::fs::read_dir(lab).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, into.join(path.file_name().unwrap())).unwrap();
    }
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args([
            "-c",
            "user.name=hactl-test",
            "-c",
            "user.email=test@example.invalid",
            "-c",
            "advice.detachedHead=false",
        ])
        .args(args)
        .current_dir(dir)
        .status()
        .expect("git is needed for this test");
    assert!(status.success(), "git {args:?} failed");
}

fn digest(dir: &Path) -> String {
    manifest::load_paths(&[dir.to_path_buf()]).unwrap().state.expect("valid manifests").digest()
}

async fn next_event(rx: &mut mpsc::Receiver<LookAgain>) {
    let got = tokio::time::timeout(PATIENCE, rx.recv()).await;
    assert!(matches!(got, Ok(Some(LookAgain))), "no change noticed within {PATIENCE:?}");
}

/// Waits out the debounce window and drops signals from the setup, so the next one belongs to the test step.
async fn settle(rx: &mut mpsc::Receiver<LookAgain>) {
    tokio::time::sleep(WINDOW * 3).await;
    while rx.try_recv().is_ok() {}
}

#[tokio::test]
async fn git_checkout_of_another_commit_is_noticed() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    lab_files(&repo);
    git(&repo, &["init", "-q"]);
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-qm", "v1"]);
    let v1 = digest(&repo);
    let path = repo.join("webservices.yaml");
    let text = std::fs::read_to_string(&path).unwrap().replace("192.0.2.100/24", "192.0.2.101/24");
    std::fs::write(&path, text).unwrap();
    git(&repo, &["commit", "-qam", "v2"]);
    let v2 = digest(&repo);
    assert_ne!(v1, v2);

    let (tx, mut rx) = mpsc::channel(1);
    let _watcher = ManifestWatcher::start(&repo, WINDOW, tx).unwrap();
    settle(&mut rx).await;
    git(&repo, &["checkout", "-q", "HEAD~1"]);
    next_event(&mut rx).await;
    assert_eq!(digest(&repo), v1, "after the event, a rescan sees the checked-out commit");
}

#[tokio::test]
async fn symlink_swap_of_the_whole_directory_is_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, link) = (tmp.path().join("release-a"), tmp.path().join("release-b"), tmp.path().join("current"));
    lab_files(&a);
    lab_files(&b);
    std::os::unix::fs::symlink(&a, &link).unwrap();
    let (tx, mut rx) = mpsc::channel(1);
    let watcher = ManifestWatcher::start(&link, WINDOW, tx).unwrap();
    settle(&mut rx).await;

    // Deploy tools swap atomically: a new link renamed over the old one.
    let staged = tmp.path().join("current.new");
    std::os::unix::fs::symlink(&b, &staged).unwrap();
    std::fs::rename(&staged, &link).unwrap();
    next_event(&mut rx).await;
    assert_eq!(watcher.target(), std::fs::canonicalize(&b).unwrap(), "the signal re-aimed the watch first");
    assert!(!watcher.refresh().unwrap(), "nothing left to re-aim");
    settle(&mut rx).await;

    // An edit inside the new target is now seen.
    let path = b.join("webservices.yaml");
    let text = std::fs::read_to_string(&path).unwrap().replace("count: 5", "count: 4");
    std::fs::write(&path, text).unwrap();
    next_event(&mut rx).await;
    assert!(!watcher.refresh().unwrap(), "no second move");
}

/// `hactl apply` exchanges a fresh directory with the watched one (`renameat2(RENAME_EXCHANGE)`): same path, new
/// inode. The watch must follow it, or an edit made in the directory afterwards goes unseen.
#[tokio::test]
async fn a_directory_exchanged_in_place_is_watched_afterwards() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, fresh) = (tmp.path().join("manifests"), tmp.path().join(".manifests.new"));
    lab_files(&dir);
    lab_files(&fresh);
    let (tx, mut rx) = mpsc::channel(1);
    let watcher = ManifestWatcher::start(&dir, WINDOW, tx).unwrap();
    settle(&mut rx).await;

    let cwd = nix::fcntl::AT_FDCWD;
    nix::fcntl::renameat2(cwd, &fresh, cwd, &dir, nix::fcntl::RenameFlags::RENAME_EXCHANGE).unwrap();
    std::fs::remove_dir_all(&fresh).unwrap();
    next_event(&mut rx).await;
    assert!(!watcher.refresh().unwrap(), "the signal re-aimed the watch at the new directory first");
    settle(&mut rx).await;

    let path = dir.join("webservices.yaml");
    let text = std::fs::read_to_string(&path).unwrap().replace("count: 5", "count: 4");
    std::fs::write(&path, text).unwrap();
    next_event(&mut rx).await;
}

#[tokio::test]
async fn reading_the_manifests_is_not_a_change() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("manifests");
    lab_files(&dir);
    let (tx, mut rx) = mpsc::channel(1);
    let _watcher = ManifestWatcher::start(&dir, WINDOW, tx).unwrap();
    settle(&mut rx).await;
    // A rescan opens and reads every file; if that counted, each rescan would cause the next one.
    for _ in 0..3 {
        digest(&dir);
        tokio::time::sleep(WINDOW).await;
    }
    tokio::time::sleep(WINDOW * 3).await;
    assert!(rx.try_recv().is_err(), "opening and reading the manifests was signalled as a change");
    // A real change still is.
    let path = dir.join("webservices.yaml");
    let text = std::fs::read_to_string(&path).unwrap().replace("count: 5", "count: 4");
    std::fs::write(&path, text).unwrap();
    next_event(&mut rx).await;
}
