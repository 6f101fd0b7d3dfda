//! The lease clock of DESIGN.md §4.5: `CLOCK_MONOTONIC_RAW` (never slewed by NTP, which may slew
//! `CLOCK_MONOTONIC`/`CLOCK_BOOTTIME` by up to 8.3 %) plus the time spent suspended
//! (`CLOCK_BOOTTIME − CLOCK_MONOTONIC`), so a lease keeps running while the machine sleeps.

use std::time::Duration;

use nix::time::{ClockId, clock_gettime};

/// A source of lease time, so that code which must read the clock at a precise point (the renewal path of
/// DESIGN.md §4.6) can be tested with a clock the test controls.
pub trait LeaseTime {
    /// The current lease time since an arbitrary epoch (fixed for the life of the boot).
    fn now(&self) -> Duration;
}

/// The real lease clock: raw monotonic time plus the suspend offset.
#[derive(Debug, Clone, Copy, Default)]
pub struct LeaseClock;

impl LeaseClock {
    /// Reads the lease clock. The three reads are not atomic; the suspend offset only changes across a suspend,
    /// so the error is that of a few nanoseconds between the reads.
    pub fn read() -> Duration {
        let raw = read_clock(ClockId::CLOCK_MONOTONIC_RAW);
        let boot = read_clock(ClockId::CLOCK_BOOTTIME);
        let mono = read_clock(ClockId::CLOCK_MONOTONIC);
        raw + boot.saturating_sub(mono)
    }
}

impl LeaseTime for LeaseClock {
    fn now(&self) -> Duration {
        LeaseClock::read()
    }
}

fn read_clock(id: ClockId) -> Duration {
    // clock_gettime(2) fails only with EINVAL for a clock the kernel lacks or EFAULT for a bad pointer. These three
    // clocks exist on every Linux since 2.6.39 and nix passes a valid pointer, so this cannot fail; a made-up value
    // (say zero) would be worse than stopping, as it could stretch a lease.
    #[allow(clippy::expect_used)]
    let ts = clock_gettime(id).expect("CLOCK_MONOTONIC_RAW/BOOTTIME/MONOTONIC exist on Linux >= 2.6.39");
    // Monotonic clocks are never negative and tv_nsec is always in 0..1e9.
    Duration::new(ts.tv_sec().max(0).unsigned_abs(), ts.tv_nsec().clamp(0, 999_999_999) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_clock_is_monotonic_and_advances() {
        let a = LeaseClock::read();
        std::thread::sleep(Duration::from_millis(20));
        let b = LeaseClock::read();
        assert!(b > a, "{b:?} !> {a:?}");
        let step = b - a;
        // Generous bounds: the sleep is at least 20 ms; a loaded CI machine may add a lot.
        assert!(step >= Duration::from_millis(19) && step < Duration::from_secs(5), "step {step:?}");
    }

    #[test]
    fn lease_clock_is_not_before_raw_monotonic() {
        let raw = read_clock(ClockId::CLOCK_MONOTONIC_RAW);
        let lease = LeaseClock::read();
        assert!(lease >= raw);
    }
}
