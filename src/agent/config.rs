//! The config in force: a bad manifest change never tears anything down (DESIGN.md §3). The agent keeps
//! running the last good config, reports the rejected change (once, not on every resync) and takes the change
//! as soon as it becomes valid.

use std::sync::Arc;

use crate::manifest::{DesiredState, Diagnostic, Loaded, SourceError};

/// What one rescan of the manifest directory means for the running agent.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigChange {
    /// Same meaning as the config in force (same digest), or the same rejection as last time.
    Unchanged,
    /// A new valid config: reconcile to it.
    Applied {
        /// Digest of the previous config, `None` at first load.
        previous: Option<String>,
        /// Digest of the new one.
        digest: String,
    },
    /// An invalid change: keep running the config in force, show these findings in logs and status.
    Rejected {
        /// Every finding (or the read error as one line).
        findings: Vec<String>,
    },
}

/// The config in force and the last rejected change.
#[derive(Debug, Default)]
pub struct ConfigTracker {
    current: Option<(Arc<DesiredState>, String)>,
    rejected: Option<Vec<String>>,
}

impl ConfigTracker {
    /// The config in force, if any valid one was ever seen.
    pub fn current(&self) -> Option<&Arc<DesiredState>> {
        self.current.as_ref().map(|(s, _)| s)
    }

    /// Digest of the config in force.
    pub fn digest(&self) -> Option<&str> {
        self.current.as_ref().map(|(_, d)| d.as_str())
    }

    /// The findings of the rejected change still on disk, for `status`.
    pub fn rejected(&self) -> Option<&[String]> {
        self.rejected.as_deref()
    }

    /// Takes the result of a rescan.
    pub fn observe(&mut self, scan: Result<Loaded, SourceError>) -> ConfigChange {
        let findings = match scan {
            Ok(Loaded { state: Some(state), .. }) => return self.accept(state),
            Ok(loaded) => render(&loaded.diagnostics),
            Err(err) => vec![err.to_string()],
        };
        if self.rejected.as_ref() == Some(&findings) {
            return ConfigChange::Unchanged;
        }
        self.rejected = Some(findings.clone());
        ConfigChange::Rejected { findings }
    }

    fn accept(&mut self, state: DesiredState) -> ConfigChange {
        self.rejected = None;
        let digest = state.digest();
        if self.digest() == Some(digest.as_str()) {
            return ConfigChange::Unchanged;
        }
        let previous = self.digest().map(str::to_string);
        self.current = Some((Arc::new(state), digest.clone()));
        ConfigChange::Applied { previous, digest }
    }
}

fn render(diags: &[Diagnostic]) -> Vec<String> {
    crate::manifest::diag::render(diags, crate::manifest::Format::Text, false).lines().map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::manifest::load_bytes;

    const VALID: &str = "apiVersion: hactl/v1\nkind: Cluster\nmetadata: {name: c}\nspec: {quorum: {policy: ignore}}\n---\n\
        apiVersion: hactl/v1\nkind: Node\nmetadata: {name: ha1}\nspec: {address: 192.0.2.11}\n---\n\
        apiVersion: hactl/v1\nkind: FloatingIP\nmetadata: {name: ip1}\nspec: {address: 192.0.2.100/24, interface: eth0}\n---\n\
        apiVersion: hactl/v1\nkind: Group\nmetadata: {name: g}\nspec: {members: [ip1]}\n";

    fn scan(text: &str) -> Result<Loaded, SourceError> {
        Ok(load_bytes(vec![(PathBuf::from("m.yaml"), text.as_bytes().to_vec())]))
    }

    #[test]
    fn a_bad_change_keeps_the_last_good_config_and_is_reported_once() {
        let mut tracker = ConfigTracker::default();
        assert!(matches!(tracker.observe(scan(VALID)), ConfigChange::Applied { previous: None, .. }));
        let good = tracker.digest().map(str::to_string);
        let broken = VALID.replace("members: [ip1]", "members: [ip9]");
        let ConfigChange::Rejected { findings } = tracker.observe(scan(&broken)) else { panic!("not rejected") };
        assert!(findings.iter().any(|f| f.contains("unknown member \"ip9\"")), "{findings:?}");
        assert_eq!(tracker.digest().map(str::to_string), good, "the config in force did not change");
        assert_eq!(tracker.observe(scan(&broken)), ConfigChange::Unchanged, "the same rejection is not repeated");
        assert!(tracker.rejected().is_some());
        assert_eq!(tracker.observe(scan(VALID)), ConfigChange::Unchanged, "back to the config in force");
        assert!(tracker.rejected().is_none());
    }

    #[test]
    fn a_valid_change_is_applied_with_both_digests() {
        let mut tracker = ConfigTracker::default();
        tracker.observe(scan(VALID));
        let first = tracker.digest().map(str::to_string);
        let change = tracker.observe(scan(&VALID.replace("192.0.2.100/24", "192.0.2.101/24")));
        let ConfigChange::Applied { previous, digest } = change else { panic!("not applied: {change:?}") };
        assert_eq!(previous, first);
        assert_eq!(Some(digest.as_str()), tracker.digest());
    }

    #[test]
    fn an_unreadable_directory_is_a_rejection_not_a_teardown() {
        let mut tracker = ConfigTracker::default();
        tracker.observe(scan(VALID));
        let gone = SourceError::Empty("/etc/hactl/manifests".into());
        assert!(matches!(tracker.observe(Err(gone)), ConfigChange::Rejected { .. }));
        assert!(tracker.current().is_some());
    }
}
