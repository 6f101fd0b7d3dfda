//! `hactl lab …`: the one-machine lab (network namespaces, nginx per node, a node daemon, a client) for trying
//! failover by hand. Root only. Every command names the instance with `--tag` (default `lab`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Subcommand, ValueEnum};

use crate::lab::{Answer, HactlAgent, Keepalived, Lab, LabSpec, NoDaemon, NodeDaemon, STATE_ROOT, Timers, teardown};
use crate::manifest::values::Dur;

use super::EXIT_OK;

/// Arguments of `hactl lab`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  hactl lab up --daemon keepalived && hactl lab status\n  \
    hactl lab watch --for 20s & hactl lab power-off ha1\n  hactl lab down")]
pub struct Args {
    /// The lab instance: namespaces are hl-TAG-*, files under /run/hactl-lab/TAG/.
    #[arg(long, default_value = "lab", global = true)]
    pub tag: String,
    /// Directory of the labs' state (for tests; normally /run/hactl-lab).
    #[arg(long, default_value = STATE_ROOT, global = true, hide = true)]
    pub root: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: LabCommand,
}

/// Which node daemon moves the floating address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DaemonKind {
    /// `hactl agent` on the guide's manifests (manifests/lab/); it starts nginx on the holder only.
    Hactl,
    /// keepalived (VRRP) from the distribution; nginx runs on every node.
    Keepalived,
    /// None: web servers only, nobody holds the floating address (for checking the lab itself).
    None,
}

/// hactl's timer sets in the lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TimerSet {
    /// hactl's defaults.
    Default,
    /// Fast failover on a quiet network.
    Tuned,
}

/// The lab's subcommands.
#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Build the lab: bridge, nodes, client, nginx and the daemon on each node.
    Up {
        /// Node names, in order of preference (addresses 192.0.2.11, .12, …).
        #[arg(long, value_delimiter = ',', default_value = "ha1,ha2")]
        nodes: Vec<String>,
        /// The node daemon.
        #[arg(long, value_enum, default_value = "hactl")]
        daemon: DaemonKind,
        /// keepalived's advert_int (whole seconds use VRRPv2, less VRRPv3), e.g. 1s or 100ms.
        #[arg(long, value_parser = Dur::parse, default_value = "1s")]
        advert_int: Dur,
        /// Let a returning higher-priority node take the address back (keepalived without nopreempt).
        #[arg(long)]
        preempt: bool,
        /// hactl's timers: default (as manifests/lab/) or tuned (50 ms heartbeat, 250 ms lease).
        #[arg(long, value_enum, default_value = "default")]
        timers: TimerSet,
    },
    /// Tear the lab down: kill its processes by pid, delete its namespaces and files (idempotent).
    Down,
    /// Show nodes, links, holders, processes, and what the client gets.
    Status,
    /// Power a node off: delete its veth, SIGKILL its processes.
    PowerOff {
        /// The node.
        node: String,
    },
    /// Power a node on again: new veth, faults cleared, its web server and daemon started.
    PowerOn {
        /// The node.
        node: String,
    },
    /// Cut a node off from peers with nftables (both directions).
    Partition {
        /// The node to isolate.
        node: String,
        /// Peers to cut it from (default: every other node).
        #[arg(long, value_delimiter = ',')]
        from: Vec<String>,
    },
    /// Drop a share of the packets arriving at a node (or `client`).
    Loss {
        /// A node or `client`.
        target: String,
        /// Percentage of packets dropped (nftables numgen random).
        percent: u8,
    },
    /// Remove the partition and loss rules of a node (or `client`).
    Heal {
        /// A node or `client`.
        target: String,
    },
    /// Probe the floating address from the client every 10 ms and print each change of who answers.
    Watch {
        /// How long to watch.
        #[arg(long = "for", value_parser = Dur::parse, default_value = "30s")]
        duration: Dur,
    },
}

/// Runs a lab subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if !nix::unistd::geteuid().is_root() {
        bail!("hactl lab needs root (network namespaces)");
    }
    let attach = || Lab::attach(&args.root, &args.tag).context("no such lab (hactl lab up first?)");
    match args.command {
        LabCommand::Up { nodes, daemon, advert_int, preempt, timers } => {
            let names: Vec<&str> = nodes.iter().map(String::as_str).collect();
            let mut spec = LabSpec::new(&args.tag, &names)?;
            spec.root = args.root.clone();
            let timers = if timers == TimerSet::Tuned { Timers::Tuned } else { Timers::Default };
            let daemon: Box<dyn NodeDaemon> = match daemon {
                DaemonKind::Hactl => Box::new(HactlAgent { timers, ..HactlAgent::default() }),
                DaemonKind::Keepalived => Box::new(Keepalived { advert_int: advert_int.0, nopreempt: !preempt }),
                DaemonKind::None => Box::new(NoDaemon),
            };
            let lab = Lab::up(spec, daemon.as_ref())?;
            println!("lab {} is up; the daemon elects a holder within a few advert intervals", args.tag);
            print_next_steps(&lab);
        }
        LabCommand::Down => {
            let gone = teardown(&args.root, &args.tag)?;
            println!("lab {}: removed {} namespaces{}", args.tag, gone.len(), list(&gone));
        }
        LabCommand::Status => print!("{}", attach()?.status()?),
        LabCommand::PowerOff { node } => attach()?.power_off(&node)?,
        LabCommand::PowerOn { node } => attach()?.power_on(&node)?,
        LabCommand::Partition { node, from } => {
            let lab = attach()?;
            let peers: Vec<String> = if from.is_empty() {
                lab.spec().nodes.iter().map(|n| n.name.clone()).filter(|n| *n != node).collect()
            } else {
                from
            };
            lab.partition(&node, &peers.iter().map(String::as_str).collect::<Vec<_>>())?;
        }
        LabCommand::Loss { target, percent } => attach()?.loss(&target, percent)?,
        LabCommand::Heal { target } => attach()?.heal(&target)?,
        LabCommand::Watch { duration } => watch(&attach()?, duration.0)?,
    }
    Ok(ExitCode::from(EXIT_OK))
}

fn list(names: &[String]) -> String {
    if names.is_empty() { String::new() } else { format!(" ({})", names.join(", ")) }
}

fn print_next_steps(lab: &Lab) {
    let s = lab.spec();
    println!("  page:      ip netns exec {} curl -s http://{}/", s.client_ns(), s.floating);
    println!("  status:    hactl lab status --tag {}", s.tag);
    println!("  watch:     hactl lab watch --tag {} --for 30s   (in another terminal)", s.tag);
    println!("  failover:  hactl lab power-off --tag {} ha1   (then power-on ha1: the address stays)", s.tag);
    println!("  tear down: hactl lab down --tag {}", s.tag);
}

/// Prints each change of who answers (or why nobody does), with the time since the start.
fn watch(lab: &Lab, duration: Duration) -> anyhow::Result<()> {
    let records = lab.probe_for(duration)?;
    let mut last: Option<&Answer> = None;
    for r in &records {
        if last != Some(&r.answer) {
            match &r.answer {
                Answer::Node(n) => println!("{:>9.3}s  Test page served from {n}", r.at.as_secs_f64()),
                Answer::Failed(why) => println!("{:>9.3}s  no answer ({why})", r.at.as_secs_f64()),
            }
            last = Some(&r.answer);
        }
    }
    let failed = records.iter().filter(|r| r.node().is_none()).count();
    println!("{} requests, {failed} failed", records.len());
    Ok(())
}
