//! The failover benchmark's trials (issue 6 §3): the same lab, the same client probe and sampler for every
//! daemon, so rows for keepalived and hactl are measured alike. Each trial disrupts the current holder, waits
//! until another node serves, and records the client-observed outage and any sample with two holders.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::outage::{double_holders, first_answer_from, outage_after};
use super::probe::Prober;
use super::procs::usage_of;
use super::sampler::Sampler;
use super::{Lab, LabError};

/// What a trial does to the holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disruption {
    /// Power the holder off (veth deleted, processes SIGKILLed), then on again after the trial.
    PowerOff,
    /// Run a command in the holder's namespace; `{other}` in an argument is replaced by the node that should
    /// take over.
    Command(Vec<String>),
    /// Run the hactl CLI on the holder against its own agent ([`Lab::hactl`]), e.g. `move WebServices {other}`;
    /// `{other}` as in [`Disruption::Command`]. A failed command fails the trial.
    Hactl(Vec<String>),
}

/// One trial's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trial {
    /// The node that held the address before.
    pub from: String,
    /// Client-observed outage (last answer before to first answer after); `None`: nobody served in time.
    pub outage: Option<Duration>,
    /// Samples with the address on two nodes during the trial, the old holder's return included.
    pub double_samples: usize,
    /// Longest client outage after the old holder returned (a returning node should disturb nobody); `None`
    /// if the client was not served again within the limit.
    pub return_outage: Option<Duration>,
    /// The old holder took the address back on its return (stickiness not kept).
    pub moved_back: bool,
}

/// Timing of the trials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrialTiming {
    /// How long a takeover may take before the trial counts as failed.
    pub limit: Duration,
    /// Pause after the returning node is back, so it settles as a backup before the next trial.
    pub settle: Duration,
    /// The disruption comes at a random point within this span (e.g. one advert interval), so trials do not
    /// all hit the same phase of the daemon's timers.
    pub jitter: Duration,
}

/// The single node holding the address, waiting up to `limit` for there to be one.
pub fn sole_holder(lab: &Lab, limit: Duration) -> Result<Option<String>, LabError> {
    let tries = limit.as_millis() / 50 + 1;
    for _ in 0..tries {
        if let [one] = lab.holders()?.as_slice() {
            return Ok(Some(one.clone()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(None)
}

/// Runs one trial: probe and sample, disrupt the holder, wait until another node serves the page, power the
/// old holder on again and let it settle (still probing and sampling).
pub fn trial(lab: &mut Lab, disruption: &Disruption, timing: TrialTiming) -> Result<Trial, LabError> {
    let from = sole_holder(lab, timing.limit)?.ok_or(LabError::NoHolder(timing.limit))?;
    let origin = Instant::now();
    let period = Duration::from_millis(10);
    let total = timing.limit * 2 + timing.jitter + timing.settle + Duration::from_secs(3);
    let target = SocketAddr::from((lab.spec().floating, 80));
    let prober = Prober::start(&lab.spec().client_ns(), target, period, Duration::from_millis(100), total, origin)?;
    let sampler = Sampler::start(&lab.node_namespaces(), lab.spec().floating, period, total, origin)?;
    let jitter_ns = u64::try_from(timing.jitter.as_nanos()).unwrap_or(u64::MAX).max(1);
    // A failed random read only loses the spread, not the trial.
    let jitter = Duration::from_nanos(getrandom::u64().unwrap_or(0) % jitter_ns);
    std::thread::sleep(Duration::from_millis(300) + jitter);
    let event = origin.elapsed();
    disrupt(lab, disruption, &from)?;
    wait_served(lab, |n| n != from, timing.limit)?;
    std::thread::sleep(Duration::from_millis(300));
    let back = origin.elapsed();
    if *disruption == Disruption::PowerOff {
        lab.power_on(&from)?;
    }
    std::thread::sleep(timing.settle);
    // A return that left the client stuck on a stale MAC shows here in full, not in the next trial.
    wait_served(lab, |_| true, timing.limit)?;
    let records = prober.finish()?;
    let samples = sampler.finish()?;
    let (failover, returned) = records.split_at(records.partition_point(|r| r.at < back));
    let served =
        lab.spec().nodes.iter().any(|n| n.name != from && first_answer_from(failover, event, &n.name).is_some());
    let outage = outage_after(failover, event).map_or(Some(Duration::ZERO), |o| o.duration()).filter(|_| served);
    let return_outage = returned
        .first()
        .map_or(Some(Duration::ZERO), |r| outage_after(returned, r.at).map_or(Some(Duration::ZERO), |o| o.duration()));
    let moved_back = samples.last().is_some_and(|s| s.holders.contains(&from));
    Ok(Trial { from, outage, double_samples: double_holders(&samples).len(), return_outage, moved_back })
}

fn disrupt(lab: &mut Lab, disruption: &Disruption, from: &str) -> Result<(), LabError> {
    let other = lab.spec().nodes.iter().map(|n| n.name.clone()).find(|n| *n != from).unwrap_or_default();
    let fill = |argv: &[String]| argv.iter().map(|a| a.replace("{other}", &other)).collect::<Vec<String>>();
    match disruption {
        Disruption::PowerOff => lab.power_off(from),
        Disruption::Command(argv) => {
            let argv = fill(argv);
            let args: Vec<&str> = argv.iter().skip(1).map(String::as_str).collect();
            super::shell::exec_in(&lab.spec().node_ns(from), argv.first().map_or("true", String::as_str), &args)
                .map(drop)
        }
        Disruption::Hactl(argv) => {
            let argv = fill(argv);
            let args: Vec<&str> = argv.iter().map(String::as_str).collect();
            let out = lab.hactl(from, &args)?;
            if out.status.success() {
                Ok(())
            } else {
                let detail = format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
                Err(LabError::Command { command: format!("hactl {}", argv.join(" ")), detail })
            }
        }
    }
}

/// Waits (bounded by `limit`) until the client gets a page from a node that `accept`s.
fn wait_served(lab: &Lab, accept: impl Fn(&str) -> bool, limit: Duration) -> Result<(), LabError> {
    for _ in 0..limit.as_millis() / 50 + 1 {
        if matches!(lab.request(Duration::from_millis(100))?, super::Answer::Node(n) if accept(&n)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Idle cost of the daemon whose processes are called `comm`, per node: (RSS KiB summed over the node's
/// processes, CPU % of one core) averaged over the powered nodes, measured over `window`.
pub fn idle_usage(lab: &Lab, comm: &str, window: Duration) -> Result<(u64, f64), LabError> {
    let nodes: Vec<String> = lab.spec().nodes.iter().map(|n| n.name.clone()).filter(|n| lab.powered(n)).collect();
    let pids = nodes.iter().map(|n| lab.pids(n)).collect::<Result<Vec<_>, _>>()?;
    let before: Vec<_> = pids.iter().map(|p| usage_of(p, comm)).collect();
    std::thread::sleep(window);
    let after: Vec<_> = pids.iter().map(|p| usage_of(p, comm)).collect();
    let n = u32::try_from(nodes.len().max(1)).unwrap_or(1);
    let rss = after.iter().map(|u| u.rss_kib).sum::<u64>() / u64::from(n);
    let busy: Duration = after.iter().zip(&before).map(|(a, b)| a.cpu.saturating_sub(b.cpu)).sum();
    let cpu = busy.as_secs_f64() / window.as_secs_f64() / f64::from(n) * 100.0;
    Ok((rss, cpu))
}
