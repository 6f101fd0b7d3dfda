//! One row of the failover benchmark (run by `bench/failover.sh`, not a test): builds a lab with one node
//! daemon and setting, runs N trials of a disruption, and prints the client-observed outage min/median/max,
//! the samples with the address on two nodes, and the daemon's idle RSS and CPU.
//!
//! Output: one line `ROW<TAB>tool<TAB>setting<TAB>scenario<TAB>n<TAB>min<TAB>median<TAB>max<TAB>failed<TAB>doubles<TAB>
//! returns<TAB>rss<TAB>cpu`
//! (seconds, KiB, % of a core; `returns`: trials whose returning node cost the client an outage or took the
//! address back — for `move`, in which the client lost answers after the move or the group went back) for the
//! script to tabulate, and the trials on stderr.
#![allow(clippy::disallowed_methods)]

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use hactl::lab::{self, Disruption, Keepalived, Lab, LabGuard, LabSpec, TrialTiming};
use hactl::manifest::values::Dur;

/// Arguments of one benchmark row.
#[derive(Debug, Parser)]
struct Args {
    /// The node daemon: `keepalived` or `hactl`.
    #[arg(long, default_value = "keepalived")]
    daemon: String,
    /// hactl's timers: `default` or `tuned`.
    #[arg(long, default_value = "default")]
    timers: String,
    /// keepalived's advert_int.
    #[arg(long, value_parser = Dur::parse, default_value = "1s")]
    advert_int: Dur,
    /// The hactl binary the agents run (default: `hactl` next to this example's directory, as cargo builds it).
    #[arg(long)]
    hactl: Option<std::path::PathBuf>,
    /// Number of trials.
    #[arg(long, default_value_t = 10)]
    trials: usize,
    /// What each trial does: `power-off` the holder, or `move` the group away with `hactl move` (hactl only).
    #[arg(long, default_value = "power-off")]
    scenario: String,
    /// Lab tag.
    #[arg(long, default_value = "bench")]
    tag: String,
}

fn secs(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

/// The daemons this benchmark compares.
enum Daemon {
    Keepalived(Keepalived),
    Hactl(lab::HactlAgent),
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (daemon, setting, comm, timing) = match args.daemon.as_str() {
        "keepalived" => {
            let k = Keepalived { advert_int: args.advert_int.0, nopreempt: true };
            let settle = (k.advert_int * 4).max(Duration::from_secs(2));
            let timing = TrialTiming { limit: Duration::from_secs(20), settle, jitter: k.advert_int };
            (Daemon::Keepalived(k), format!("advert_int {}", secs(args.advert_int.0)), "keepalived", timing)
        }
        "hactl" => {
            let timers = if args.timers == "tuned" { lab::Timers::Tuned } else { lab::Timers::Default };
            let sibling = std::env::current_exe()?.parent().and_then(|d| d.parent()).map(|d| d.join("hactl"));
            let h = lab::HactlAgent { timers, binary: args.hactl.clone().or(sibling), ..lab::HactlAgent::default() };
            let timing = TrialTiming {
                limit: Duration::from_secs(20),
                settle: Duration::from_secs(3),
                jitter: Duration::from_millis(200),
            };
            (Daemon::Hactl(h), format!("timers {}", args.timers), "hactl", timing)
        }
        other => bail!("unknown daemon {other:?}: keepalived or hactl"),
    };
    let disruption = match (args.scenario.as_str(), comm) {
        ("power-off", _) => Disruption::PowerOff,
        // `--timeout`: a trial that does not move in time fails here rather than waiting the default minute.
        // `--for 2s`: the move expires during the settle pause (the group stays: stickiness), so no two moves are
        // ever in force. Permanent moves issued in turn by the two agents do not work today: operation stamps are
        // per-node counters, so a later move from the other node can lose to an earlier one (src/proto/ops.rs).
        ("move", "hactl") => Disruption::Hactl(
            ["move", "WebServices", "{other}", "--for", "2s", "--timeout", "20s"]
                .into_iter()
                .map(String::from)
                .collect(),
        ),
        (other, _) => bail!("scenario {other:?}: power-off, or move with --daemon hactl"),
    };
    let _ = lab::teardown(std::path::Path::new(lab::STATE_ROOT), &args.tag);
    let spec = LabSpec::new(&args.tag, &["ha1", "ha2"])?;
    let node_daemon: &dyn lab::NodeDaemon = match &daemon {
        Daemon::Keepalived(k) => k,
        Daemon::Hactl(h) => h,
    };
    let mut lab = LabGuard::new(Lab::up(spec, node_daemon)?);
    lab::sole_holder(&lab, Duration::from_secs(20))?.context("no holder elected")?;
    let (rss, cpu) = lab::idle_usage(&lab, comm, Duration::from_secs(10))?;
    let mut outages = Vec::new();
    let (mut failed, mut doubles, mut disturbed) = (0, 0, 0);
    for i in 0..args.trials {
        let t = lab::trial(&mut lab, &disruption, timing)?;
        eprintln!(
            "trial {i}: {} {} -> outage {:?}, double-holder samples {}, on its return: outage {:?}{}",
            args.scenario,
            t.from,
            t.outage,
            t.double_samples,
            t.return_outage,
            if t.moved_back { ", took the address back" } else { "" }
        );
        doubles += t.double_samples;
        disturbed += usize::from(t.return_outage != Some(Duration::ZERO) || t.moved_back);
        match t.outage {
            Some(o) => outages.push(o),
            None => failed += 1,
        }
    }
    // The daemons' logs outlive the lab, for explaining odd trials (bench/failover.sh says where).
    let logs = std::path::Path::new("target/bench-logs");
    std::fs::create_dir_all(logs)?;
    for node in &lab.spec().nodes {
        let log = if comm == "hactl" { "log/hactl.log".to_string() } else { format!("{comm}/{comm}.log") };
        let from = lab.spec().node_dir(&node.name).join(log);
        let name = format!("{}-{}-{}-{}.log", args.daemon, setting.replace(' ', "-"), args.scenario, node.name);
        let to = logs.join(name);
        std::fs::copy(&from, &to).with_context(|| format!("copy {}", from.display()))?;
    }
    lab.down()?;
    let (min, median, max) = lab::summarize(&outages).context("no trial recovered")?;
    println!(
        "ROW\t{}\t{setting}\t{}\t{}\t{}\t{}\t{}\t{failed}\t{doubles}\t{disturbed}\t{rss}\t{cpu:.3}",
        args.daemon,
        args.scenario,
        outages.len(),
        secs(min),
        secs(median),
        secs(max)
    );
    Ok(())
}
