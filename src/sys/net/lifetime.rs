//! Kernel address lifetimes (`valid_lft`/`preferred_lft`), DESIGN.md §4.6: whole seconds, rounded up from the time
//! left on the lease, so the kernel deletes a floating address by itself when its holder stops renewing.

use std::time::Duration;

/// The kernel's "forever" (`INFINITY_LIFE_TIME`).
const INFINITY: u32 = u32::MAX;

/// The lifetime an address carries in the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Lifetime {
    /// Never expires (an address the agent does not lease, or one configured by hand).
    Forever,
    /// Expires after this many seconds (never 0: the kernel treats a zero valid lifetime as invalid).
    Seconds(u32),
}

impl Lifetime {
    /// `ceil(deadline − now)` in whole seconds, or `None` when the deadline has been reached: an expired lease
    /// must not put an address on the wire, not even for one second.
    pub fn until(deadline: Duration, now: Duration) -> Option<Lifetime> {
        let left = deadline.checked_sub(now).filter(|d| !d.is_zero())?;
        let whole = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        // A lease longer than 136 years is "forever" in practice; clamp below the kernel's infinity marker.
        Some(Lifetime::Seconds(u32::try_from(whole).unwrap_or(INFINITY - 1).min(INFINITY - 1)))
    }

    /// Whether this lifetime, set by a request the kernel took at some instant up to `acked_at`, may outlive
    /// `deadline` by more than the one second that rounding up allows: the kernel counts a lifetime from when it
    /// takes the request, so one that waited (a busy agent, a loaded host) between the clock read that computed
    /// it and the kernel stretches the address past the lease. The caller sets it again from a fresh clock read.
    pub fn overshoots(self, acked_at: Duration, deadline: Duration) -> bool {
        match self {
            Lifetime::Forever => true,
            Lifetime::Seconds(s) => acked_at + Duration::from_secs(u64::from(s)) > deadline + Duration::from_secs(1),
        }
    }

    /// The value for `ifa_valid`/`ifa_preferred` in `IFA_CACHEINFO`.
    pub(crate) fn as_kernel(self) -> u32 {
        match self {
            Lifetime::Forever => INFINITY,
            Lifetime::Seconds(s) => s,
        }
    }

    /// Reads a lifetime from `IFA_CACHEINFO` (as the kernel reports it: seconds left).
    pub(crate) fn from_kernel(value: u32) -> Lifetime {
        if value == INFINITY { Lifetime::Forever } else { Lifetime::Seconds(value) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn rounds_up_to_whole_seconds() {
        assert_eq!(Lifetime::until(ms(10_000), ms(9_999)), Some(Lifetime::Seconds(1)));
        assert_eq!(Lifetime::until(ms(10_000), ms(9_000)), Some(Lifetime::Seconds(1)));
        assert_eq!(Lifetime::until(ms(10_000), ms(8_999)), Some(Lifetime::Seconds(2)));
        assert_eq!(Lifetime::until(ms(10_000), ms(0)), Some(Lifetime::Seconds(10)));
    }

    #[test]
    fn expired_lease_has_no_lifetime() {
        assert_eq!(Lifetime::until(ms(10_000), ms(10_000)), None);
        assert_eq!(Lifetime::until(ms(10_000), ms(10_001)), None);
    }

    #[test]
    fn a_lifetime_that_landed_late_overshoots_the_rounding_bound() {
        let deadline = ms(10_000);
        // Computed at 8.95 s: ceil(1.05 s) = 2 s, within the bound only if the kernel took it by 9.0 s.
        let l = Lifetime::until(deadline, ms(8_950)).unwrap_or(Lifetime::Forever);
        assert_eq!(l, Lifetime::Seconds(2));
        assert!(!l.overshoots(ms(8_990), deadline));
        assert!(!l.overshoots(ms(9_000), deadline));
        assert!(l.overshoots(ms(9_001), deadline), "acknowledged 51 ms after the read: may end 1.05 s late");
        // Computed at 9.1 s: 1 s, slack 0.9 s.
        let l = Lifetime::until(deadline, ms(9_100)).unwrap_or(Lifetime::Forever);
        assert!(!l.overshoots(ms(9_900), deadline));
        assert!(l.overshoots(ms(10_001), deadline));
        assert!(Lifetime::Forever.overshoots(ms(0), deadline));
    }

    #[test]
    fn kernel_round_trip() {
        assert_eq!(Lifetime::from_kernel(Lifetime::Forever.as_kernel()), Lifetime::Forever);
        assert_eq!(Lifetime::from_kernel(Lifetime::Seconds(7).as_kernel()), Lifetime::Seconds(7));
        let huge = Lifetime::until(Duration::from_secs(u64::MAX / 2), Duration::ZERO);
        assert_eq!(huge, Some(Lifetime::Seconds(u32::MAX - 1)));
    }
}
