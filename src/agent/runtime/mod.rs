//! `hactl agent`: the daemon that binds the protocol core to the real world (DESIGN.md §3, §4).
//!
//! One task owns all state — the protocol core, the config in force, what is observed of every member — and
//! reads one channel; IO tasks (UDP receive, netlink events, the manifest watcher, signals, effects in flight)
//! only send into it. After every input the task drains the core (persisting before sending), then plans every
//! group again from scratch (level-triggered) and starts the effects that are not already running.
// The agent is the OS layer's user: it reads the lease clock and the wall clock on purpose.
#![allow(clippy::disallowed_methods)]

mod api;
mod effects;
mod events;
mod keys;
mod leftovers;
mod retire;
mod sockets;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use thiserror::Error;
use tokio::net::UdpSocket;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use super::config::{ConfigChange, ConfigTracker};
use super::plan::{Disposition, Observed};
use crate::manifest::values::Name;
use crate::manifest::{self, DesiredState};
use crate::proto::{self, Boot, Input, Node};
use crate::sys::clock::LeaseClock;
use crate::sys::keyfile;
use crate::sys::net::{NetError, Netlink};
use crate::sys::net::{NetEvent, NetEvents};
use crate::sys::sdnotify::Notifier;
use crate::sys::service::supervise::ProcessExit;
use crate::sys::service::{DriverContext, FailCounts};
use crate::sys::state::{self, StateDir, StateError};
use crate::sys::watch::{LookAgain, ManifestWatcher};

/// How often the cheap checks run: the key file's metadata, expired failures, and the manifests when the
/// directory cannot be watched.
const RESYNC: Duration = Duration::from_secs(5);
/// How often the manifests are rescanned and the kernel's addresses re-read although no event said so: inotify
/// and netlink events report every change, so this only repairs a missed one (an overflowed queue is itself
/// reported and causes a full resync at once).
const BACKSTOP: Duration = Duration::from_secs(60);
/// Pause before an effect that failed is tried again, so a broken interface does not spin the loop.
const RETRY: Duration = Duration::from_secs(1);

/// What `hactl agent` is told on its command line.
#[derive(Debug, Clone)]
pub struct Options {
    /// The watched manifest directory.
    pub manifests: PathBuf,
    /// This node's name (the hostname by default).
    pub node: String,
    /// Where the UUID, incarnation and protocol records live.
    pub state_dir: PathBuf,
    /// The local API's Unix socket.
    pub api_socket: PathBuf,
}

/// Why the agent stopped or refused to start.
#[derive(Debug, Error)]
pub enum AgentError {
    /// The state directory cannot be used: nothing may be sent without durable ballots.
    #[error(transparent)]
    State(#[from] StateError),
    /// The key file is missing, malformed or readable by others.
    #[error(transparent)]
    Key(#[from] keyfile::KeyFileError),
    /// Netlink cannot be opened.
    #[error(transparent)]
    Net(#[from] NetError),
    /// This node is not in the manifests, or the config cannot drive the core.
    #[error("config: {0}")]
    Config(String),
    /// The peer socket cannot be bound.
    #[error("cannot bind the peer socket {addr}: {source}")]
    Bind {
        /// Address and port.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The local API socket cannot be prepared.
    #[error(transparent)]
    Api(#[from] crate::api::local::ServeError),
    /// Another OS failure at start-up.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl Msg {
    /// A message that changes no state the planner reads: a kernel lifetime renewal that succeeded (one per
    /// address and renewal, the commonest message of an idle holder).
    fn changes_nothing(&self) -> bool {
        matches!(self, Msg::Done(effects::Done::Renewed(_, Ok(crate::sys::net::Renewal::Renewed(_)))))
    }
}

/// Everything that reaches the state-owning task.
#[derive(Debug)]
pub(crate) enum Msg {
    /// A datagram on the peer port.
    Datagram(IpAddr, Vec<u8>),
    /// The manifest directory changed.
    LookAgain,
    /// An address or link changed.
    Net(NetEvent),
    /// An effect finished.
    Done(effects::Done),
    /// A supervised `run` process exited by itself.
    Exit(ProcessExit),
    /// SIGTERM/SIGINT: leave the cluster.
    Terminate,
    /// SIGUSR2: re-execute in place.
    Reexec,
    /// A local API request, answered from this task.
    Api(crate::api::local::Call),
}

/// The state-owning task's state.
pub(crate) struct Agent {
    me: Name,
    node: Node,
    port: u16,
    tracker: ConfigTracker,
    state: Arc<DesiredState>,
    manifests: PathBuf,
    dir: StateDir,
    /// What of the protocol state is on disk: fsync only for what must survive a power loss.
    store: super::persist::Store,
    socket: Arc<UdpSocket>,
    tx: mpsc::Sender<Msg>,
    netlink: Arc<Netlink>,
    renewals: Arc<Netlink>,
    drivers: Arc<DriverContext>,
    notifier: Notifier,
    /// Per group: what the protocol says.
    dispositions: BTreeMap<Name, Disposition>,
    /// Per group: the lease deadline on the lease clock, while held.
    deadlines: effects::Deadlines,
    /// The addresses each held group's lease covers (from the core's events): the only ones it may configure.
    covers: BTreeMap<Name, BTreeSet<IpAddr>>,
    /// Per group being adopted after a restart: when adoption must give way to fencing.
    adopt_until: BTreeMap<Name, Duration>,
    /// Per member: what is observed.
    observed: BTreeMap<Name, Observed>,
    /// Per member: no new effect before this instant (after a failure).
    cooldown: BTreeMap<Name, Instant>,
    /// Per service: next monitor.
    next_monitor: BTreeMap<Name, Instant>,
    /// Per address: its announcement task.
    announcers: BTreeMap<Name, tokio::task::JoinHandle<()>>,
    fails: FailCounts,
    /// Members reported stuck, so the report is made once per change.
    stuck: BTreeSet<Name>,
    /// The next full resync (manifests, key file, kernel addresses): the backstop, or sooner when asked for.
    next_resync: Instant,
    /// The next run of the cheap periodic checks ([`RESYNC`]).
    next_tick: Instant,
    /// Whether the manifest directory is watched; without a watch the manifests are rescanned every tick.
    watching: bool,
    /// The key file's metadata when it was last read: the tick re-reads it only when this changes.
    key_stamp: Option<keys::Stamp>,
    /// SIGTERM received: the core hands groups over (§4.7); `left` once it says every hand-over is done.
    leaving: bool,
    left: bool,
    /// When a graceful leave gives up and fences whatever is still held.
    leave_by: Option<Instant>,
    /// Per group held here: the round of its lease, for `status`.
    rounds: BTreeMap<Name, u64>,
    /// Recent errors, for `status`.
    errors: VecDeque<String>,
    /// Members that left the config in force, by name, with their old definition: torn down, then forgotten.
    retired: BTreeMap<Name, retire::Retired>,
    /// What this node started, on disk: a restarted agent stops what its new config no longer defines.
    started: crate::agent::started::StartedRecords,
    /// Left-overs of an earlier run found at start-up whose first stop has not returned: nothing is added or
    /// started before they are down (DESIGN.md §4.1).
    sweep: BTreeSet<Name>,
    /// The cluster keys in force, shared with the API servers; replaced when the key file changes.
    keys: keyfile::SharedKeys,
    /// Why the key file cannot be used now (the keys in force stay), for `status`.
    key_error: Option<String>,
    /// Per address: the generation of its latest removal, here and (under the lock, around the delete) in
    /// `removals`; a renewal spawned before a removal is skipped, so it can never re-create a deleted address.
    removal_generation: BTreeMap<IpAddr, u64>,
    removals: effects::Removals,
    /// Groups taken over by a hand-over: their addresses are added without an ARP probe (§4.11).
    no_probe: BTreeSet<Name>,
    /// Tear-downs in flight.
    retiring: BTreeSet<Name>,
    /// Tear-downs that failed: not again before this instant.
    retire_after: BTreeMap<Name, Instant>,
    /// The manifest files of the config in force (read when it was applied), for `diff`.
    running: Option<crate::agent::deliver::ManifestSet>,
}

fn wall_clock_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The kernel boot id as the core's number: the first 8 bytes of the boot UUID.
fn boot_number(boot_id: &str) -> u64 {
    let hex: String = boot_id.chars().filter(char::is_ascii_hexdigit).take(16).collect();
    u64::from_str_radix(&hex, 16).unwrap_or(0)
}

/// Waits for a valid manifest set: a node without a valid config has nothing to run and must not guess.
async fn first_config(opts: &Options, tracker: &mut ConfigTracker) -> Arc<DesiredState> {
    loop {
        match tracker.observe(manifest::load_paths(std::slice::from_ref(&opts.manifests))) {
            ConfigChange::Rejected { findings } => {
                for f in &findings {
                    error!(target: "config", "rejected: {f}");
                }
                warn!(target: "config", "waiting for a valid manifest set in {}", opts.manifests.display());
            }
            ConfigChange::Applied { digest, .. } => info!(target: "config", digest = &digest[..12], "loaded"),
            ConfigChange::Unchanged => {}
        }
        if let Some(state) = tracker.current() {
            return state.clone();
        }
        tokio::time::sleep(RESYNC).await;
    }
}

/// Runs the agent until SIGTERM.
pub async fn run(opts: Options) -> Result<(), AgentError> {
    let me = Name(opts.node.clone());
    let mut tracker = ConfigTracker::default();
    let state = first_config(&opts, &mut tracker).await;
    let cfg = proto::Config::from_desired(&state, &me).map_err(|e| AgentError::Config(e.to_string()))?;
    let keys = keyfile::load(&state.cluster.auth_key_file)?;
    let dir = StateDir::open(&opts.state_dir)?;
    let uuid = dir.node_uuid()?;
    let incarnation = dir.next_incarnation(wall_clock_secs())?;
    let (mut persisted, store) = super::persist::load(&dir)?;
    let netlink = Arc::new(Netlink::connect()?);
    keep_records_with_addresses(&netlink, &state, &mut persisted).await;
    let boot_id = boot_number(&state::boot_id()?);
    let now = LeaseClock::read();
    let adopt_until = adoption_window(&cfg, &persisted, boot_id, now);
    let boot = Boot {
        id: proto::wire::NodeId(*uuid.as_bytes()),
        incarnation,
        boot_id,
        keys: keys::wire_keys(&keys),
        persisted,
        bug: None,
        trace: false,
        textbook_acceptor: false,
    };
    let address = cfg.nodes.get(&me).map(|p| p.address).ok_or_else(|| AgentError::Config(format!("no node {me}")))?;
    let bind = SocketAddr::new(address, state.cluster.port);
    let (socket, peer_api) = sockets::bind_peer_port(bind).await?;
    let socket = Arc::new(socket);
    let node = Node::new(now, cfg, boot);
    info!(node = %me, uuid = %uuid, incarnation, keys = keys::fingerprints(&keys), "agent starting");
    let keys = keyfile::SharedKeys::new(keys);
    let (tx, rx) = mpsc::channel(1024);
    let (exits_tx, mut exits_rx) = mpsc::unbounded_channel();
    let mut drivers = DriverContext::new(Some(exits_tx));
    // `run` processes are recorded so that a restarted or re-executed agent adopts them instead of starting a
    // second copy (DESIGN.md §4.7).
    drivers.supervisor = drivers.supervisor.clone().with_records(opts.state_dir.join("run"));
    let mut agent = Agent {
        me,
        node,
        port: state.cluster.port,
        tracker,
        state,
        manifests: opts.manifests.clone(),
        dir,
        store,
        socket: socket.clone(),
        tx: tx.clone(),
        netlink,
        renewals: Arc::new(Netlink::connect()?),
        drivers: Arc::new(drivers),
        notifier: Notifier::from_env(),
        dispositions: BTreeMap::new(),
        deadlines: effects::Deadlines::default(),
        covers: BTreeMap::new(),
        adopt_until,
        observed: BTreeMap::new(),
        cooldown: BTreeMap::new(),
        next_monitor: BTreeMap::new(),
        announcers: BTreeMap::new(),
        fails: FailCounts::new(),
        stuck: BTreeSet::new(),
        next_resync: Instant::now() + BACKSTOP,
        next_tick: Instant::now() + RESYNC,
        watching: false,
        key_stamp: None,
        leaving: false,
        left: false,
        leave_by: None,
        rounds: BTreeMap::new(),
        errors: VecDeque::new(),
        running: crate::agent::deliver::read_set(&opts.manifests).ok(),
        retired: BTreeMap::new(),
        started: crate::agent::started::StartedRecords::open(&opts.state_dir)?,
        sweep: BTreeSet::new(),
        keys: keys.clone(),
        key_error: None,
        retiring: BTreeSet::new(),
        no_probe: BTreeSet::new(),
        removal_generation: BTreeMap::new(),
        removals: effects::Removals::default(),
        retire_after: BTreeMap::new(),
    };
    spawn_receiver(socket, tx.clone());
    let _watcher = spawn_watcher(&opts, tx.clone());
    agent.watching = _watcher.is_some();
    spawn_net_events(tx.clone())?;
    spawn_signals(tx.clone())?;
    spawn_api(&opts, tx.clone(), peer_api, &keys)?;
    let exit_tx = tx.clone();
    tokio::spawn(async move {
        while let Some(exit) = exits_rx.recv().await {
            if exit_tx.send(Msg::Exit(exit)).await.is_err() {
                break;
            }
        }
    });
    agent.startup().await;
    agent.run_loop(rx).await
}

/// §4.7, tightened: a lease is adopted only if its address is still configured here. A record is written before
/// Prepare, so it may name a round that never established; adopting that would add the address at once, without
/// the `strict` wait a fresh acquisition makes (simulation seed 4468). An address that is present means the lease
/// was held (the kernel lifetime ends with it), so nothing is lost for a real adoption.
async fn keep_records_with_addresses(netlink: &Netlink, state: &DesiredState, persisted: &mut proto::Persisted) {
    let mut present = BTreeSet::new();
    for ip in state.groups.values().flat_map(|g| g.floating_ips()) {
        if let Ok(list) = netlink.addresses(&ip.interface.0).await
            && list.iter().any(|a| a.address.addr() == ip.address.addr())
        {
            present.insert(ip.address.addr());
        }
    }
    let keyless: BTreeSet<IpAddr> = state
        .groups
        .values()
        .filter(|g| g.floating_ips().next().is_none())
        .map(|g| proto::config::keyless_group_key(&g.name))
        .collect();
    persisted.records.retain(|key, _| present.contains(key) || keyless.contains(key));
}

/// Groups whose persisted lease is still live in this boot: they are adopted, not torn down (§4.7).
fn adoption_window(
    cfg: &proto::Config,
    persisted: &proto::Persisted,
    boot_id: u64,
    now: Duration,
) -> BTreeMap<Name, Duration> {
    cfg.groups
        .iter()
        .filter_map(|(group, g)| {
            // Like the core: one and the same record for every address of the group (records are per address).
            let first = persisted.records.get(g.keys.first()?)?;
            let record = g.keys.iter().all(|k| persisted.records.get(k) == Some(first)).then_some(first)?;
            let until = record.deadline.checked_sub(cfg.margin)?;
            (record.boot_id == boot_id && !record.released && until > now).then(|| (group.clone(), until))
        })
        .collect()
}

fn spawn_receiver(socket: Arc<UdpSocket>, tx: mpsc::Sender<Msg>) {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        loop {
            match socket.recv_from(&mut buf).await {
                Ok((len, from)) => {
                    if tx.send(Msg::Datagram(from.ip(), buf[..len].to_vec())).await.is_err() {
                        break;
                    }
                }
                Err(e) => warn!("peer socket receive: {e}"),
            }
        }
    });
}

fn spawn_watcher(opts: &Options, tx: mpsc::Sender<Msg>) -> Option<ManifestWatcher> {
    let (look_tx, mut look_rx) = mpsc::channel::<LookAgain>(1);
    let watcher = match ManifestWatcher::start(&opts.manifests, Duration::from_millis(300), look_tx) {
        Ok(w) => Some(w),
        Err(e) => {
            warn!(target: "config", "{e}; rescanning every {}s instead", RESYNC.as_secs());
            None
        }
    };
    tokio::spawn(async move {
        while look_rx.recv().await.is_some() {
            if tx.send(Msg::LookAgain).await.is_err() {
                break;
            }
        }
    });
    watcher
}

fn spawn_net_events(tx: mpsc::Sender<Msg>) -> Result<(), AgentError> {
    let mut events = NetEvents::subscribe()?;
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            if tx.send(Msg::Net(event)).await.is_err() {
                break;
            }
        }
    });
    Ok(())
}

/// Serves the local API and the peer API (src/api); both hand their requests to the state-owning task.
fn spawn_api(
    opts: &Options,
    tx: mpsc::Sender<Msg>,
    peer_api: tokio::net::TcpListener,
    keys: &keyfile::SharedKeys,
) -> Result<(), AgentError> {
    let listener = crate::api::local::bind(&opts.api_socket)?;
    let (calls_tx, mut calls_rx) = mpsc::channel(64);
    let peer_server = crate::api::peer::PeerServer::new(keys.clone(), opts.manifests.clone(), calls_tx.clone());
    tokio::spawn(crate::api::peer::serve(peer_api, Arc::new(peer_server)));
    tokio::spawn(crate::api::local::serve(listener, calls_tx, keys.clone()));
    tokio::spawn(async move {
        while let Some(call) = calls_rx.recv().await {
            if tx.send(Msg::Api(call)).await.is_err() {
                break;
            }
        }
    });
    Ok(())
}

fn spawn_signals(tx: mpsc::Sender<Msg>) -> Result<(), AgentError> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut usr2 = signal(SignalKind::user_defined2())?;
    tokio::spawn(async move {
        loop {
            let msg = tokio::select! {
                _ = term.recv() => Msg::Terminate,
                _ = int.recv() => Msg::Terminate,
                _ = usr2.recv() => Msg::Reexec,
            };
            if tx.send(msg).await.is_err() {
                break;
            }
        }
    });
    Ok(())
}

impl Agent {
    async fn run_loop(&mut self, mut rx: mpsc::Receiver<Msg>) -> Result<(), AgentError> {
        let _ = self.notifier.notify("READY=1");
        let mut watchdog = self.notifier.watchdog_interval().map(|w| (w, Instant::now() + w));
        loop {
            let now = LeaseClock::read();
            let wake = self.node.poll_timeout().saturating_sub(now).min(self.next_local_wake());
            let msg = tokio::select! {
                msg = rx.recv() => msg,
                _ = tokio::time::sleep(wake) => None,
            };
            // A timer woke the loop: something may be due.
            let mut changed = msg.is_none();
            if let Some(msg) = msg {
                let quiet = msg.changes_nothing();
                changed |= self.on_msg(msg)?;
                if quiet {
                    // Planning every group again would find what it found before; a timer that is due now
                    // fires at the top of the loop.
                    continue;
                }
            }
            let now = LeaseClock::read();
            // A message the core took was driven already; the others need the core only once its timer is due.
            if now >= self.node.poll_timeout() {
                self.node.handle(now, Input::Timeout);
            }
            changed |= self.drain()?;
            if Instant::now() >= self.next_resync {
                self.resync().await;
                changed = true;
            } else if Instant::now() >= self.next_tick {
                self.tick();
                changed = true;
            }
            // The plan reads only what events, effects, the kernel, the config and the clock change: a datagram
            // that made the core say nothing (a heartbeat, an answer within a round) leaves it as it was, and
            // planning a hundred groups for each of them was most of an idle holder's work.
            if changed {
                self.reconcile();
                self.monitor();
            }
            if let Some((every, next)) = &mut watchdog {
                if Instant::now() >= *next {
                    let _ = self.notifier.notify("WATCHDOG=1");
                    *next = Instant::now() + *every;
                }
            }
            if self.leave_by.is_some_and(|by| Instant::now() >= by) {
                warn!("the graceful hand-over did not finish in time: fencing what is still held");
                self.fence_all();
            }
            if self.left && self.all_down() {
                info!("every group is down here; exiting");
                let _ = self.notifier.notify("STOPPING=1");
                return Ok(());
            }
        }
    }

    /// The earliest local deadline (monitors, cooldowns, resync), as a delay from now.
    fn next_local_wake(&self) -> Duration {
        let now = Instant::now();
        let mut next = self.next_resync.min(self.next_tick);
        next = self.next_monitor.values().chain(self.cooldown.values()).fold(next, |a, b| a.min(*b));
        if let Some(by) = self.leave_by {
            next = next.min(by);
        }
        next.saturating_duration_since(now).max(Duration::from_millis(1))
    }

    /// Handles one message; false when it changed nothing the plan reads.
    fn on_msg(&mut self, msg: Msg) -> Result<bool, AgentError> {
        let now = LeaseClock::read();
        match msg {
            // What a datagram changes comes out of the core as events (`drain` reports them).
            Msg::Datagram(from, bytes) => {
                self.node.handle(now, Input::Datagram { from, bytes: &bytes });
                return Ok(false);
            }
            Msg::LookAgain => self.rescan(),
            Msg::Net(event) => {
                if !self.on_net(event) {
                    return Ok(false);
                }
            }
            Msg::Done(done) => self.on_done(done),
            Msg::Exit(exit) => self.on_exit(exit),
            Msg::Terminate if self.leaving => {
                warn!("second SIGTERM: fencing every group now (addresses first) and exiting");
                self.fence_all();
            }
            Msg::Terminate => {
                // §4.7: a node taken out hands its groups over (stop in reverse order, Release naming the target,
                // which acquires at once) and exits when the core says every hand-over was taken up.
                info!("SIGTERM: handing every group over before exiting (a second SIGTERM fences at once)");
                self.leaving = true;
                self.leave_by = Some(Instant::now() + self.leave_budget());
                self.node.handle(now, Input::Leave);
            }
            Msg::Api(call) => {
                let answer = self.on_api(call.request);
                let _ = call.reply.send(answer);
            }
            Msg::Reexec => {
                info!("SIGUSR2: re-executing in place; groups are kept through adoption");
                let _ = self.notifier.notify("RELOADING=1");
                let err = reexec();
                error!("re-exec failed: {err}; carrying on");
            }
        }
        Ok(true)
    }

    /// Reads the manifests and the key file again; takes a valid change.
    fn rescan(&mut self) {
        self.rescan_manifests();
        self.reload_keys();
    }

    fn rescan_manifests(&mut self) {
        let scan = manifest::load_paths(std::slice::from_ref(&self.manifests));
        match self.tracker.observe(scan) {
            ConfigChange::Unchanged => {}
            ConfigChange::Rejected { findings } => {
                for f in &findings {
                    error!(target: "config", "change rejected, the config in force keeps running: {f}");
                }
                self.remember_error(format!("manifest change rejected ({} findings)", findings.len()));
            }
            ConfigChange::Applied { previous, digest } => {
                let Some(state) = self.tracker.current().cloned() else { return };
                match proto::Config::from_desired(&state, &self.me) {
                    Ok(cfg) => {
                        info!(target: "config", from = previous.as_deref().map(|p| &p[..12]), to = &digest[..12], "applied");
                        let fresh = self.retire_changed(&state);
                        self.state = state;
                        for service in fresh {
                            self.spawn_status(service);
                        }
                        self.running = crate::agent::deliver::read_set(&self.manifests).ok();
                        self.node.handle(LeaseClock::read(), Input::Config(Box::new(cfg)));
                    }
                    Err(e) => error!(target: "config", "change not applied: {e}"),
                }
            }
        }
    }

    /// How long a graceful leave may take before it fences: every member's stop timeout in turn, plus time for
    /// the target to confirm and acquire (twice deadTime and the lease).
    fn leave_budget(&self) -> Duration {
        let stops: Duration = self
            .state
            .groups
            .values()
            .flat_map(|g| g.members.iter())
            .filter_map(|m| match m {
                crate::manifest::model::Resource::Service(s) => Some(s.timeouts.stop),
                _ => None,
            })
            .sum();
        let cfg = self.node.config();
        stops + 2 * cfg.dead_time + cfg.lease
    }

    /// The way out when a hand-over cannot finish: addresses first, then members (§4.6); exit once all is down.
    fn fence_all(&mut self) {
        self.leave_by = None;
        self.left = true;
        for d in self.dispositions.values_mut() {
            *d = Disposition::Fence;
        }
    }

    fn all_down(&self) -> bool {
        self.retired.is_empty() && self.observed.values().all(|o| *o == Observed::Down)
    }
}

/// Replaces this process with the binary at the same path and the same arguments (a new version if it was
/// upgraded on disk). Returns only on failure.
fn reexec() -> std::io::Error {
    use std::os::unix::process::CommandExt;
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return e,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::Command::new(exe).args(args).exec()
}
