//! The simulated world: nodes (core + agent stand-in + kernel), the network, the fault schedule and the loop.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use crate::manifest::model::{NodeRole, QuorumPolicy};
use crate::manifest::values::Name;
use crate::proto::config::Config;
use crate::proto::wire::{Keys, LeaseKey, NodeId};
use crate::proto::{Node, Persisted};

use super::check::{Checker, Kernel, Violation};
use super::{Scenario, Stats, desired};

mod disk;
mod replay;
mod step;
mod truth;

/// The failover budget of (b) after heal (DESIGN.md §4.12, generously): restarted nodes' grace, two exclusions
/// (one of them a restarted acceptor's quarantine), the ranked waits, any strict wait, deadTime and a second.
fn failover_budget(t: super::Timers, drift: f64, nodes: usize, strict_wait: Option<Duration>) -> Duration {
    let d_a = (t.lease + t.margin).mul_f64((1.0 + drift) / (1.0 - drift));
    t.dead_time * 2
        + d_a * 2
        + t.interval * u32::try_from(nodes).unwrap_or(1)
        + strict_wait.unwrap_or_default()
        + t.dead_time
        + Duration::from_secs(1)
}

/// Seeded randomness with the few shapes the world needs.
pub(crate) struct Rng(ChaCha8Rng);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(ChaCha8Rng::seed_from_u64(seed))
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.0.next_u64() % n }
    }
    pub fn unit(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    pub fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        lo + (hi.saturating_sub(lo)).mul_f64(self.unit())
    }
}

/// Effects of the stand-in reconciler.
#[derive(Debug, Clone)]
enum Effect {
    /// Add the address (queued behind other slow work).
    Add(LeaseKey),
    /// Graceful stop: members in reverse order, the address last, then report `Stopped`.
    Stop(Name, LeaseKey),
}

/// A lifetime renewal between the agent's clock read and the kernel taking it (DESIGN.md §4.6).
#[derive(Debug, Clone)]
struct InFlight {
    /// Real time at which the kernel takes it.
    lands: Duration,
    key: LeaseKey,
    addresses: Vec<IpAddr>,
    /// The lifetime computed at the clock read: ⌈deadline − read⌉ whole seconds, counted by the kernel from
    /// `lands`.
    secs: u64,
    /// The lease deadline it was computed for (the node's lease clock).
    deadline: Duration,
    /// The removal generation read with the clock.
    generation: u64,
    /// Held up inside the agent (a loaded loop, the request queued behind others) rather than on its way into the
    /// kernel: it has not left the process, so it waits out a hang and dies with a crash of the agent.
    queued: bool,
}

pub(crate) struct SimNode {
    name: Name,
    rate: f64,
    id: NodeId,
    incarnation: u64,
    boot_id: u64,
    core: Option<Node>,
    persisted: Persisted,
    cfg: Config,
    hung_until: Option<Duration>,
    /// The core said `Event::Left` (graceful leave): the agent exits after this input.
    left: bool,
    down_until: Option<Duration>,
    inbox: Vec<(IpAddr, Vec<u8>)>,
    wake: Duration,
    pub kernel: Kernel,
    slow: VecDeque<Effect>,
    busy_until: Duration,
    /// Non-queued path: (real time, key, delete?) for refreshes and fences (DESIGN.md §4.6).
    quick: Vec<(Duration, LeaseKey, bool)>,
    /// Lifetime renewals whose netlink request is in flight.
    inflight: Vec<InFlight>,
    /// Removals executed per key: a renewal read before one of them must not re-create the address.
    removals: BTreeMap<LeaseKey, u64>,
    deadlines: BTreeMap<LeaseKey, Duration>,
    /// The addresses each held group's lease covers (by the group's primary key), as the core last said.
    covers: BTreeMap<LeaseKey, BTreeSet<std::net::IpAddr>>,
    awaiting_adoption: BTreeSet<LeaseKey>,
    restarted_at: Duration,
    /// Per peer, the restart instant its first "alive" report after was counted for (`Stats::*_sees_*`).
    seen_since: BTreeMap<usize, Duration>,
    /// World truth for (h): the real instant this incarnation's acceptor quarantine ends.
    quarantine_end: Duration,
}

impl SimNode {
    fn local(&self, real: Duration) -> Duration {
        real.mul_f64(self.rate)
    }
    fn real(&self, local: Duration) -> Duration {
        local.div_f64(self.rate) + Duration::from_nanos(1)
    }
    fn up(&self) -> bool {
        self.core.is_some() && self.hung_until.is_none()
    }
}

impl SimNode {
    fn new(rng: &mut Rng, i: usize, name: Name, cfg: Config, drift: f64) -> SimNode {
        let rate = 1.0 + drift * 0.99 * (2.0 * rng.unit() - 1.0);
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&rng.0.next_u64().to_be_bytes());
        id[15] = u8::try_from(i).unwrap_or(0);
        SimNode {
            name,
            rate,
            id: NodeId(id),
            incarnation: 0,
            boot_id: rng.0.next_u64(),
            core: None,
            persisted: Persisted::default(),
            cfg,
            hung_until: None,
            down_until: Some(rng.between(Duration::ZERO, Duration::from_millis(500))),
            inbox: Vec::new(),
            wake: Duration::MAX,
            kernel: Kernel::new(),
            slow: VecDeque::new(),
            busy_until: Duration::ZERO,
            left: false,
            quick: Vec::new(),
            inflight: Vec::new(),
            removals: BTreeMap::new(),
            deadlines: BTreeMap::new(),
            covers: BTreeMap::new(),
            awaiting_adoption: BTreeSet::new(),
            restarted_at: Duration::ZERO,
            seen_since: BTreeMap::new(),
            quarantine_end: Duration::ZERO,
        }
    }
}

struct Packet {
    at: Duration,
    seq: u64,
    from: usize,
    to: usize,
    bytes: Vec<u8>,
}

impl PartialEq for Packet {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Packet {}
impl PartialOrd for Packet {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Packet {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

pub(crate) struct World {
    rng: Rng,
    s: Scenario,
    now: Duration,
    nodes: Vec<SimNode>,
    net: BinaryHeap<Reverse<Packet>>,
    seq: u64,
    blocked: Vec<Vec<bool>>,
    /// Extra delay per directed link (`Scenario::lagging_links`): a congested queue or a paused VM holding
    /// datagrams for up to 1.5 × T.
    lag: Vec<Vec<Duration>>,
    loss: f64,
    dup: f64,
    delay: (Duration, Duration),
    next_fault: Duration,
    heal_at: Duration,
    end: Duration,
    healed: bool,
    checker: Checker,
    stats: Stats,
    keys: Keys,
    /// The config every node ends with (the rollout's target).
    final_cfgs: Vec<Config>,
    /// Pending failover measurements: key → crash time.
    crashed_holder: BTreeMap<LeaseKey, (Duration, usize)>,
    /// When each key first had a holder after heal.
    first_held: BTreeMap<LeaseKey, Duration>,
    sticky: bool,
    budget: Duration,
    /// `HACTL_SIM_TRACE=1`: print every event (replaying one seed).
    verbose: bool,
    /// Recently sent datagrams, for replay attacks: (from, to, bytes).
    recorded: Vec<replay::Recorded>,
    /// (d) The operator operation issued after heal: when, by which node, what.
    op: Option<(Duration, usize, crate::proto::Operation)>,
    /// Whether `op` was issued.
    op_done: bool,
    /// (h) The run's config versions in rollout order, the one each node runs, and when each was last left.
    versions: Vec<truth::Version>,
    running: Vec<usize>,
    left: Vec<Option<Duration>>,
    /// (h) How long an older voter set stays required after the last node left it: `D_A`.
    joint_window: Duration,
    /// (g) Ballots the core prepared during the current input, checked once its datagrams went out.
    prepared: Vec<crate::proto::wire::Ballot>,
    /// (g) Probability that one write of the protocol state fails (fault phase only; zero in most seeds).
    disk_fail: f64,
    /// (i) The address → key map each config digest yields (every node must derive the same).
    key_maps: std::collections::HashMap<[u8; 8], BTreeMap<IpAddr, LeaseKey>>,
}

impl World {
    pub fn new(seed: u64, s: Scenario) -> World {
        let mut rng = Rng::new(seed);
        let drawn = rng.chance(0.3);
        let strict = s.strict.unwrap_or(drawn);
        let drift = [1e-3, 1e-2, 5e-2][usize::try_from(rng.below(3)).unwrap_or(0)];
        let extra = if s.rollout { 2 } else { 0 };
        let total = s.members + usize::from(s.witness) + extra;
        let names: Vec<(Name, NodeRole)> = (0..total)
            .map(|i| {
                let witness = s.witness && i == s.members;
                (Name(format!("n{i}")), if witness { NodeRole::Witness } else { NodeRole::Member })
            })
            .collect();
        let prefer: Vec<BTreeMap<Name, i64>> = (0..s.groups)
            .map(|_| names.iter().map(|(n, _)| (n.clone(), i64::try_from(rng.below(100)).unwrap_or(0))).collect())
            .collect();
        let sticky = rng.chance(0.5);
        let stickiness = vec![if sticky { 1000 } else { 0 }; s.groups];
        // The rollout's target config also lengthens T by 20 % and renames g1 (its lease follows its address).
        let target = if s.rollout {
            let mut r = s.clone();
            r.timers.lease += s.timers.lease / 5;
            r
        } else {
            s.clone()
        };
        let mut all = desired(&target, &names, &prefer, &stickiness, strict, drift);
        if s.rollout
            && let Some(mut g) = all.groups.remove(&Name("g1".into()))
        {
            g.name = Name("g1-renamed".into());
            all.groups.insert(g.name.clone(), g);
        }
        let mut old = desired(&s, &names[..total - extra], &prefer, &stickiness, strict, drift);
        if s.rollout && s.move_address {
            // An address moves from g0 to the renamed g1 (it is not either group's lowest, so neither key changes).
            super::add_address(&mut old, "g0", super::MOVED_ADDRESS);
            super::add_address(&mut all, "g1-renamed", super::MOVED_ADDRESS);
        }
        let cfg_for = |state: &crate::manifest::DesiredState, n: &Name| Config::from_desired(state, n).ok();
        let mut nodes = Vec::new();
        let mut final_cfgs = Vec::new();
        for (i, (name, _)) in names.iter().enumerate() {
            let start_state = if i < total - extra { &old } else { &all };
            let (Some(cfg), Some(fin)) = (cfg_for(start_state, name), cfg_for(&all, name)) else { continue };
            final_cfgs.push(fin);
            nodes.push(SimNode::new(&mut rng, i, name.clone(), cfg, drift));
        }
        if s.shared_uuid && nodes.len() > 1 {
            // A VM cloned from n0 with its state directory, in a cluster that ran before: every node has run its
            // config once (otherwise no node would ever propose, docs/protocol.md deviation 2, since no node hears
            // every voter's digest when one clone is ignored).
            nodes[1].id = nodes[0].id;
            for node in &mut nodes {
                node.persisted.voters = node.cfg.voters();
            }
        }
        let n = nodes.len();
        let t = s.timers;
        let strict_wait = final_cfgs.first().map(Config::strict_wait).unwrap_or_default();
        let budget = failover_budget(t, drift, n, strict.then_some(strict_wait));
        let heal_at = s.fault_phase;
        // No operation with a clone: a move to the claimant its peers ignore cannot be obeyed (invariant (d)).
        let op = (!s.crash_only && !s.measure_cpu && !s.shared_uuid && s.groups > 0 && rng.chance(0.5)).then(|| {
            let target = Name(format!("n{}", rng.below(s.members as u64)));
            let issuer = usize::try_from(rng.below(n as u64)).unwrap_or(0);
            let op = if rng.chance(0.5) {
                crate::proto::Operation::Standby { node: target }
            } else {
                crate::proto::Operation::Move { group: Name("g0".into()), node: target, duration: None }
            };
            (heal_at + t.dead_time * 2, issuer, op)
        });
        let versions = truth::Version::of_run(&[&old, &all], names.first().map(|(n, _)| n));
        let tm = final_cfgs.iter().map(Config::tm).max().unwrap_or_default().max(t.lease + t.margin);
        let joint_window = tm.mul_f64((1.0 + drift) / (1.0 - drift));
        let running = nodes.iter().map(|x| truth::Version::index(&versions, x.cfg.digest)).collect();
        let left = vec![None; versions.len()];
        let faulty_disk = !s.crash_only && !s.measure_cpu && rng.chance(0.3);
        let disk_fail = if faulty_disk || s.ignore_failed_writes { 0.002 + 0.05 * rng.unit() } else { 0.0 };
        let mut checker = Checker::default();
        checker.strict = strict;
        checker.majority = s.policy == QuorumPolicy::Majority;
        checker.refill_gap = t.lease;
        World {
            rng,
            now: Duration::ZERO,
            nodes,
            net: BinaryHeap::new(),
            seq: 0,
            blocked: vec![vec![false; n]; n],
            lag: vec![vec![Duration::ZERO; n]; n],
            loss: 0.0,
            dup: 0.0,
            delay: (Duration::from_micros(200), Duration::from_millis(5)),
            next_fault: t.dead_time * 3,
            heal_at,
            end: heal_at + budget + t.dead_time * 3,
            healed: false,
            checker,
            stats: Stats::default(),
            keys: Keys(vec![b"sim cluster key".to_vec()]),
            final_cfgs,
            crashed_holder: BTreeMap::new(),
            first_held: BTreeMap::new(),
            sticky,
            budget,
            verbose: std::env::var_os("HACTL_SIM_TRACE").is_some(),
            recorded: Vec::new(),
            op,
            op_done: false,
            versions,
            running,
            left,
            joint_window,
            prepared: Vec::new(),
            disk_fail,
            key_maps: Default::default(),
            s,
        }
    }

    pub fn run(mut self) -> Result<Stats, Violation> {
        let mut steps = 0u64;
        loop {
            let next = self.next_time();
            if next > self.end {
                break;
            }
            self.now = next;
            self.step()?;
            steps += 1;
            if !self.s.measure_cpu || steps % 1000 == 0 {
                self.checker.holders(self.now, self.nodes.iter_mut().map(|n| &mut n.kernel))?;
            }
            self.note_failovers();
        }
        self.final_checks()?;
        self.stats.simulated = self.now;
        self.stats.holder_changes = self.checker.changes.len() as u64;
        self.stats.stale_overlaps = self.checker.stale_overlaps;
        Ok(self.stats)
    }

    fn next_time(&mut self) -> Duration {
        let mut t = self.end + Duration::from_nanos(1);
        if !self.healed {
            t = t.min(self.next_fault).min(self.heal_at);
        }
        if let Some((at, _, _)) = self.op.as_ref().filter(|_| !self.op_done) {
            t = t.min(*at);
        }
        if let Some(Reverse(p)) = self.net.peek() {
            t = t.min(p.at);
        }
        for n in &self.nodes {
            for x in [n.down_until, n.hung_until].into_iter().flatten() {
                t = t.min(x);
            }
            for f in &n.inflight {
                t = t.min(f.lands);
            }
            if n.up() {
                t = t.min(n.wake);
                if !n.slow.is_empty() {
                    t = t.min(n.busy_until);
                }
                for (at, _, _) in &n.quick {
                    t = t.min(*at);
                }
            }
        }
        t.max(self.now)
    }
}
