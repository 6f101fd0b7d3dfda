//! Failure accounting for the reconciler: how often each service failed recently, and whether its group has
//! reached `migrationThreshold` within `failureTimeout` (DESIGN.md §3) so that the node gives the group up.
//!
//! Pure: it reads no clock; every call takes `now`. It lives beside the drivers whose failures it counts but
//! belongs to the core.
//!
//! Unlike Pacemaker, which forgets a resource's whole fail count once `failure-timeout` has passed since its
//! last failure, each failure here expires on its own `failureTimeout` after it happened: "N failures within
//! failureTimeout" is a sliding window, as DESIGN.md words it.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::manifest::model::{Group, Resource};
use crate::manifest::values::Name;

/// Recent failures of every service on this node, by service name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FailCounts {
    failures: BTreeMap<Name, VecDeque<Instant>>,
}

impl FailCounts {
    /// No failures yet.
    pub fn new() -> FailCounts {
        FailCounts::default()
    }

    /// Records one failure of `service` (a failed monitor, start or stop) at `now`.
    pub fn record(&mut self, service: &Name, now: Instant) {
        let times = self.failures.entry(service.clone()).or_default();
        // Kept in order even if a caller hands in an older `now`, so expiry can pop from the front.
        let at = times.partition_point(|t| *t <= now);
        times.insert(at, now);
    }

    /// Failures of `service` that still count at `now` (`failure_timeout` `None`: they count forever).
    pub fn count(&self, service: &Name, now: Instant, failure_timeout: Option<Duration>) -> u32 {
        let Some(times) = self.failures.get(service) else { return 0 };
        let live = times.iter().filter(|t| counts(**t, now, failure_timeout)).count();
        u32::try_from(live).unwrap_or(u32::MAX)
    }

    /// The first service of `group` whose failures reached the group's `migration_threshold` at `now`: the node
    /// must give the group up. A threshold of 0 never triggers (Pacemaker: 0 disables migration).
    pub fn over_threshold<'g>(&self, group: &'g Group, now: Instant) -> Option<&'g Name> {
        if group.migration_threshold == 0 {
            return None;
        }
        group
            .members
            .iter()
            .filter_map(service_name)
            .find(|name| self.count(name, now, group.failure_timeout) >= group.migration_threshold)
    }

    /// Forgets the failures of `service` (`hactl cleanup`).
    pub fn clear(&mut self, service: &Name) {
        self.failures.remove(service);
    }

    /// Forgets every failure of the members of `group` (`hactl cleanup GROUP`).
    pub fn clear_group(&mut self, group: &Group) {
        for name in group.members.iter().filter_map(service_name) {
            self.clear(name);
        }
    }

    /// Drops failures that no longer count at `now`, so the table does not grow without bound.
    pub fn expire(&mut self, now: Instant, failure_timeout: impl Fn(&Name) -> Option<Duration>) {
        self.failures.retain(|name, times| {
            let timeout = failure_timeout(name);
            while times.front().is_some_and(|t| !counts(*t, now, timeout)) {
                times.pop_front();
            }
            !times.is_empty()
        });
    }

    /// When the next failure stops counting: the deadline the reconciler arms to re-plan (a group over its
    /// threshold may become eligible again then). Timers are data (STYLE.md).
    pub fn next_expiry(&self, failure_timeout: impl Fn(&Name) -> Option<Duration>) -> Option<Instant> {
        self.failures.iter().filter_map(|(name, times)| Some(*times.front()? + failure_timeout(name)?)).min()
    }
}

fn counts(at: Instant, now: Instant, failure_timeout: Option<Duration>) -> bool {
    failure_timeout.is_none_or(|timeout| now.saturating_duration_since(at) < timeout)
}

fn service_name(member: &Resource) -> Option<&Name> {
    match member {
        Resource::Service(s) => Some(&s.name),
        Resource::FloatingIp(_) => None,
    }
}

#[cfg(test)]
// The tests need one base instant to add offsets to; the code under test reads no clock.
#[allow(clippy::unwrap_used, clippy::disallowed_methods)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::manifest::model::{Driver, Monitor, Service, Timeouts};

    fn name(text: &str) -> Name {
        Name::parse(text).unwrap()
    }

    fn group(threshold: u32, failure_timeout: Option<Duration>) -> Group {
        let secs = Duration::from_secs;
        let service = |n: &str| {
            Resource::Service(Service {
                name: name(n),
                driver: Driver::Run { command: "true".into() },
                timeouts: Timeouts { start: secs(20), stop: secs(20), monitor: secs(20) },
                monitor: Monitor { interval: secs(10), timeout: secs(20), http: None, tcp: None },
            })
        };
        Group {
            name: name("web"),
            members: vec![service("db"), service("httpd")],
            prefer: BTreeMap::new(),
            stickiness: 100,
            migration_threshold: threshold,
            failure_timeout,
        }
    }

    #[test]
    fn threshold_is_reached_within_the_window_only() {
        let t0 = Instant::now();
        let minute = Duration::from_secs(60);
        let g = group(3, Some(10 * minute));
        let mut fails = FailCounts::new();
        fails.record(&name("httpd"), t0);
        fails.record(&name("httpd"), t0 + minute);
        assert_eq!(fails.over_threshold(&g, t0 + minute), None);
        fails.record(&name("httpd"), t0 + 2 * minute);
        assert_eq!(fails.over_threshold(&g, t0 + 2 * minute), Some(&name("httpd")));
        // The first failure expires at t0 + 10 min: two remain, below the threshold.
        assert_eq!(fails.next_expiry(|_| g.failure_timeout), Some(t0 + 10 * minute));
        assert_eq!(fails.count(&name("httpd"), t0 + 10 * minute, g.failure_timeout), 2);
        assert_eq!(fails.over_threshold(&g, t0 + 10 * minute), None);
    }

    #[test]
    fn failures_count_per_service_and_forever_without_a_timeout() {
        let t0 = Instant::now();
        let g = group(2, None);
        let mut fails = FailCounts::new();
        fails.record(&name("db"), t0);
        fails.record(&name("httpd"), t0);
        assert_eq!(fails.over_threshold(&g, t0 + Duration::from_secs(86_400)), None);
        fails.record(&name("db"), t0 + Duration::from_secs(1));
        assert_eq!(fails.over_threshold(&g, t0 + Duration::from_secs(86_400)), Some(&name("db")));
        assert_eq!(fails.next_expiry(|_| None), None);
        fails.clear_group(&g);
        assert_eq!(fails, FailCounts::new());
    }

    #[test]
    fn expire_drops_old_failures_and_empty_entries() {
        let t0 = Instant::now();
        let timeout = Some(Duration::from_secs(5));
        let mut fails = FailCounts::new();
        fails.record(&name("db"), t0 + Duration::from_secs(3));
        fails.record(&name("db"), t0);
        fails.expire(t0 + Duration::from_secs(6), |_| timeout);
        assert_eq!(fails.count(&name("db"), t0 + Duration::from_secs(6), timeout), 1);
        fails.expire(t0 + Duration::from_secs(8), |_| timeout);
        assert_eq!(fails, FailCounts::new());
    }

    #[test]
    fn a_zero_threshold_never_moves_the_group() {
        let t0 = Instant::now();
        let g = group(0, None);
        let mut fails = FailCounts::new();
        fails.record(&name("db"), t0);
        assert_eq!(fails.over_threshold(&g, t0), None);
    }
}
