//! The agent's wiring: startup in a safe order, then one loop over the signals.
//!
//! Startup order, and why:
//! 1. signal handlers first (SIGTERM, SIGINT, SIGQUIT, SIGHUP), so a signal during startup
//!    is handled, not a death;
//! 2. the file, validated, and this node's view of it;
//! 3. the pinned maps and what the previous agent left in them: if its heartbeat is still
//!    within the fence, the VIPs it owned are still answered for, and the routers that own
//!    them resume as master (a restart moves no VIP); the heartbeat starts at once so the
//!    fence does not run out during startup; every other VIP is written NOT owned;
//! 4. the data plane attached to each VIP interface that already exists, BEFORE the
//!    topology adds the VIP addresses, so a backup never answers for a VIP even for the
//!    milliseconds of startup; interfaces that the topology creates are attached right
//!    after it (their VIPs are new too);
//! 5. the topology (`tr7::netlink` plan and apply), every change logged;
//! 6. one VRRP driver per (interface, slot, family) ([`Routers`]), each with its
//!    announcer whose frames are built now, not on the failover path.
//!
//! The main loop is one `select!` over the signals: SIGHUP reloads (`reload.rs`), SIGTERM
//! and SIGINT hand over and exit, SIGQUIT exits keeping the VIPs (for a restart).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use thiserror::Error;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tracing::{info, warn};

use super::announce::{AnnounceError, Burst};
use super::control::{self, ControlError, ControlSocket};
use super::heartbeat::{self, Heartbeat, monotonic_ns};
use super::metrics::{self, MetricsError, MetricsListen};
use super::routers::{self, RouterKey, Routers, VipInterface};
use super::status::{Catalog, Reporter, RouterStatus, SnapshotReply};
use crate::config::NodeView;
use crate::dataplane::{self, DataplaneError, Maps, VipScope, XdpAttachMode};
use crate::netlink::{self, Options, Target, observe::ObserveError};
use crate::signals::Monitor;
use crate::vrrp::DriverError;
use crate::vrrp::packet::Family;

/// `tr7 agent --config FILE [--node NAME] [--netns NS] [--pin-dir DIR]`.
#[derive(Clone, Debug, clap::Args)]
pub struct AgentArgs {
    /// The cluster file.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// This node's name in the file (default: the host name).
    #[arg(long)]
    pub node: Option<String>,
    /// Treat this named namespace (`ip netns`) as the node's host namespace (labs, tests).
    #[arg(long, value_name = "NS")]
    pub netns: Option<String>,
    /// bpffs directory of the pinned maps and links.
    #[arg(long, value_name = "DIR", default_value = dataplane::DEFAULT_PIN_DIR)]
    pub pin_dir: PathBuf,
    /// Announcement frames sent per VIP on each takeover.
    #[arg(long, default_value_t = Burst::default().count, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub announce_count: u32,
    /// Milliseconds between two announcement rounds.
    #[arg(long, default_value_t = 10)]
    pub announce_pacing_ms: u64,
    /// XDP mode of the gate.
    #[arg(long, value_enum, default_value_t)]
    pub xdp_mode: XdpAttachMode,
    /// The root-only control socket `tr7 status` asks (directory 0700, socket 0600).
    /// Default: /run/tr7/tr7.sock, or /run/tr7/tr7-NS.sock with --netns NS.
    #[arg(long, value_name = "PATH")]
    pub control_socket: Option<PathBuf>,
    /// Where GET /metrics (Prometheus text format) is served, in the node's host namespace
    /// (`--netns`); `off` serves none.
    #[arg(long, value_name = "ADDR:PORT|off", default_value = metrics::DEFAULT_LISTEN)]
    pub metrics: MetricsListen,
    /// Milliseconds between two carrier polls of the tracked interfaces (docs/signals.md).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub carrier_poll_ms: u64,
}

/// Why the agent did not start.
#[derive(Debug, Error)]
pub enum AgentError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Node(#[from] crate::config::UnknownNode),
    #[error("no --node given and the host name cannot be read")]
    NoNode,
    #[error("cannot start the runtime or the signal handlers: {0}")]
    Runtime(std::io::Error),
    #[error("cannot observe the kernel's links and addresses")]
    Observe(#[from] ObserveError),
    // Boxed: the apply report and the data-plane errors are large, and these errors
    // travel through every `?` of the startup.
    #[error("cannot apply the topology")]
    Apply(#[source] Box<netlink::ApplyError>),
    #[error("data plane on `{iface}`")]
    Dataplane {
        iface: String,
        #[source]
        source: Box<DataplaneError>,
    },
    #[error("interface `{iface}` slot {slot}: no {family} address to send VRRP adverts from")]
    NoSource {
        iface: String,
        slot: &'static str,
        family: Family,
    },
    #[error(transparent)]
    Driver(#[from] DriverError),
    #[error(transparent)]
    Announce(#[from] AnnounceError),
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error(transparent)]
    Signals(#[from] crate::signals::SignalError),
    #[error("interface `{iface}`: virtual MAC: cannot {step}")]
    VirtualMac {
        iface: String,
        step: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// What the main loop waits for.
enum Event {
    /// SIGTERM or SIGINT: hand over and exit.
    Stop(&'static str),
    /// SIGQUIT: exit for a restart, keeping the VIPs.
    Quit,
    /// SIGHUP: re-read the file.
    Reload,
}

/// The signals the agent handles, registered before anything else.
struct Signals {
    term: Signal,
    int: Signal,
    quit: Signal,
    hup: Signal,
}

impl Signals {
    fn register() -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            quit: signal(SignalKind::quit())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    async fn next(&mut self) -> Event {
        tokio::select! {
            _ = self.term.recv() => Event::Stop("SIGTERM"),
            _ = self.int.recv() => Event::Stop("SIGINT"),
            _ = self.quit.recv() => Event::Quit,
            _ = self.hup.recv() => Event::Reload,
        }
    }
}

/// The running agent: what startup built and what a reload changes.
pub(super) struct Agent {
    pub(super) args: AgentArgs,
    pub(super) node: String,
    /// The cluster's name, for `tr7 status`.
    pub(super) cluster: String,
    pub(super) target: Target,
    pub(super) maps: Maps,
    pub(super) heartbeat: Option<Heartbeat>,
    pub(super) fence: Duration,
    pub(super) routers: Routers,
    /// Zone and service of each VIP for `tr7 status` and /metrics; rebuilt on reload.
    pub(super) catalog: Catalog,
    /// The interfaces the data plane is attached to, with their scope.
    pub(super) attached: BTreeSet<VipInterface>,
    /// The link and gateway signals (docs/signals.md); `None` once stopped.
    pub(super) signals: Option<Monitor>,
    /// What the monitor tracks, to tell on reload whether the file changed it.
    pub(super) signal_plan: String,
}

/// How often the virtual-MAC routers check their interface's MAC
/// ([`Routers::follow_interface_macs`]): after a change (a bond's `fail_over_mac`
/// failover), frames to the virtual MAC reach the stack again within this period.
const FOLLOW_MAC_PERIOD: Duration = Duration::from_millis(250);

/// Runs the agent until SIGTERM, SIGINT or SIGQUIT; `Ok` is a clean stop.
pub fn run(args: &AgentArgs) -> Result<(), AgentError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(AgentError::Runtime)?;
    let mut signals = runtime
        .block_on(async { Signals::register() })
        .map_err(AgentError::Runtime)?;
    let started_wall = SystemTime::now();
    // Before any kernel change: the control socket is also the guard against a second
    // agent of this node, and a bad --metrics address must change nothing.
    let socket_path = args
        .control_socket
        .clone()
        .unwrap_or_else(|| control::default_socket(args.netns.as_deref()));
    let mut control = ControlSocket::bind(&socket_path)?;
    let metrics_listener = args
        .metrics
        .0
        .map(|addr| metrics::bind(addr, args.netns.as_deref()))
        .transpose()?;
    let mut agent = Agent::start(args, &runtime)?;

    // `tr7 status` and /metrics ask the loop below for its routers (status::Reporter).
    let (snapshot_tx, mut snapshots) = tokio::sync::mpsc::channel::<SnapshotReply>(16);
    let reporter = Reporter {
        cluster: agent.cluster.clone(),
        node: agent.node.clone(),
        started: started_wall,
        pin_dir: args.pin_dir.clone(),
        requests: snapshot_tx,
    };
    runtime.spawn(control.serve(reporter.clone()));
    if let Some(listener) = metrics_listener {
        runtime.spawn(metrics::serve(listener, reporter));
    }
    let mut follow_macs = runtime.block_on(async {
        let mut tick = tokio::time::interval(FOLLOW_MAC_PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick
    });
    loop {
        let event = runtime.block_on(async {
            loop {
                tokio::select! {
                    event = signals.next() => break event,
                    Some(reply) = snapshots.recv() => {
                        let _ = reply.send(agent.router_statuses());
                    }
                    _ = follow_macs.tick() => agent.routers.follow_interface_macs(&mut agent.maps),
                }
            }
        });
        match event {
            Event::Reload => agent.reload(&runtime),
            Event::Stop(which) => {
                // From here `tr7 status` says the agent is not running.
                drop(control);
                agent.stop(which);
                return Ok(());
            }
            Event::Quit => {
                drop(control);
                agent.exit_for_restart();
                return Ok(());
            }
        }
    }
}

/// The catalog of `tr7 status`: each VIP interface of the view with its namespace and
/// data-plane place.
pub(super) fn catalog(view: &NodeView, target: &Target) -> Catalog {
    let ifaces = routers::vip_interfaces(view, target);
    Catalog::new(ifaces.into_iter().filter_map(|v| {
        view.interfaces
            .iter()
            .find(|i| i.id == v.id)
            .map(|i| (i, v.netns, v.place))
    }))
}

pub(super) fn dp_err(iface: &str) -> impl FnOnce(DataplaneError) -> AgentError + use<> {
    let iface = iface.to_owned();
    move |source| AgentError::Dataplane {
        iface,
        source: Box::new(source),
    }
}

impl Agent {
    fn start(args: &AgentArgs, runtime: &tokio::runtime::Runtime) -> Result<Self, AgentError> {
        let started = Instant::now();
        let cluster = crate::config::load(&args.config)?;
        let node = match &args.node {
            Some(n) => n.clone(),
            None => std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .ok_or(AgentError::NoNode)?,
        };
        let view = cluster.node_view(&node)?;
        let target = Target {
            root: args.netns.clone(),
        };
        info!(cluster = %cluster.name, %node, file = %args.config.display(),
            netns = ?args.netns, pin_dir = %args.pin_dir.display(), "agent starting");
        let specs = routers::specs(&view, &target);
        if let Some(e) = routers::missing_source(&specs) {
            return Err(e);
        }

        // 3. What the previous agent left, the heartbeat, the resumed routers, the maps.
        // A restart must beat the fence and the peer's Master_Down_Timer, so when the pins
        // exist the routers that still own their VIPs resume before the slow steps (loading
        // the object to create missing maps, attaching, the topology): the data plane the
        // previous agent attached is still in place and answering for them.
        let fence = heartbeat::fence(&cluster, &node);
        let burst = Burst {
            count: args.announce_count,
            pacing: Duration::from_millis(args.announce_pacing_ms),
        };
        let mut routers = Routers::new(args.pin_dir.clone(), burst);
        let (held, heartbeat) = match Maps::open(&args.pin_dir) {
            Ok(maps) => {
                let held = held_vips(&maps);
                let heartbeat = Heartbeat::start(maps, fence).map_err(dp_err("(heartbeat)"))?;
                (held, Some(heartbeat))
            }
            Err(_) => (BTreeSet::new(), None),
        };
        let resume: BTreeSet<RouterKey> = specs
            .iter()
            .filter(|(_, s)| s.vips.iter().any(|&a| held.contains(&(s.place, a))))
            .map(|(k, _)| k.clone())
            .collect();
        if !resume.is_empty() {
            info!(routers = ?resume.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "the previous agent's ownership is still fenced in: these routers resume as master");
        }
        if !resume.is_empty() {
            // A VIP the file added since: its entry is made here, not owned, so that the
            // resumed router only flips existing entries (one writer allocates indexes).
            let mut maps = Maps::open(&args.pin_dir).map_err(dp_err("(maps)"))?;
            let present: BTreeSet<(VipScope, IpAddr)> = maps
                .vips()
                .map_err(dp_err("(maps)"))?
                .into_iter()
                .map(|e| (e.place, e.addr))
                .collect();
            for key in &resume {
                let spec = &specs[key];
                for &vip in &spec.vips {
                    if !present.contains(&(spec.place, vip)) {
                        maps.set_vip(spec.place, vip, false)
                            .map_err(dp_err(&key.iface.name))?;
                    }
                }
                routers.start(key.clone(), spec.clone(), true)?;
            }
        }
        let mut maps = dataplane::create_maps(&args.pin_dir).map_err(dp_err("(maps)"))?;
        let heartbeat = match heartbeat {
            Some(h) => h,
            None => Heartbeat::start(Maps::open(&args.pin_dir).map_err(dp_err("(maps)"))?, fence)
                .map_err(dp_err("(heartbeat)"))?,
        };
        // Every VIP of the other routers: not owned, until VRRP decides.
        for (key, spec) in specs.iter().filter(|(k, _)| !resume.contains(*k)) {
            for &vip in &spec.vips {
                maps.set_vip(spec.place, vip, false)
                    .map_err(dp_err(&key.iface.name))?;
            }
        }
        release_stale(&mut maps, &routers::map_entries(&specs));

        let catalog = catalog(&view, &target);
        let mut agent = Agent {
            args: args.clone(),
            cluster: cluster.name.clone(),
            node,
            target,
            maps,
            heartbeat: Some(heartbeat),
            fence,
            routers,
            catalog,
            attached: BTreeSet::new(),
            signals: None,
            signal_plan: String::new(),
        };
        // 4. and 5. Attach where the interface exists, apply, attach the rest.
        let vip_ifaces = routers::vip_interfaces(&view, &agent.target);
        agent.attach(&vip_ifaces, false)?;
        apply_topology(runtime, &view, &agent.target)?;
        agent.attach(&vip_ifaces, true)?;

        // 6. The tracked signals, after the topology (the namespaces and links exist),
        // then the other virtual routers, each bound to its signals as it starts. A
        // resumed master is bound once its signals have been observed: a router is
        // faulted until then, and a resumed master must not give up for that.
        let plan = signal_plan(&view, &agent.target, args.carrier_poll_ms);
        agent.signal_plan = plan_fingerprint(&plan);
        let monitor = Monitor::start(plan)?;
        let resumed: Vec<_> = resume.iter().map(signal_key).collect();
        wait_observed(&monitor, &resumed);
        for key in &resume {
            if let Some(driver) = agent.routers.driver(key) {
                monitor.bind(&signal_key(key), driver)?;
            }
        }
        agent.signals = Some(monitor);
        for (key, spec) in specs {
            if !resume.contains(&key) {
                agent.routers.start(key.clone(), spec, false)?;
                agent.bind_signals(&key)?;
            }
        }
        info!(
            routers = agent.routers.len(),
            resumed = resume.len(),
            startup_ms = started.elapsed().as_millis() as u64,
            fence_ms = fence.as_secs_f64() * 1000.0,
            "agent running"
        );
        Ok(agent)
    }

    /// Attaches the data plane to each interface of `vip_ifaces` not attached yet with
    /// its scope. Before the topology (`must` false) an interface that does not exist yet
    /// is skipped; after it (`must` true) it is an error.
    pub(super) fn attach(
        &mut self,
        vip_ifaces: &[VipInterface],
        must: bool,
    ) -> Result<(), AgentError> {
        for v in vip_ifaces {
            if self.attached.contains(v) {
                continue;
            }
            let mode = self.xdp_mode(v);
            match dataplane::attach(
                &self.args.pin_dir,
                &v.id.name,
                v.netns.as_deref(),
                v.place.scope,
                mode,
            ) {
                Ok(att) => {
                    info!(iface = %att.iface, ifindex = att.ifindex, scope = att.scope,
                        gate = ?att.gate, guard = ?att.guard,
                        when = if must { "after the topology" } else { "before the topology" },
                        "data plane attached");
                    self.attached.retain(|a| a.id != v.id);
                    self.attached.insert(v.clone());
                }
                Err(DataplaneError::NoInterface { .. }) if !must => {}
                Err(source) => return Err(dp_err(&v.id.name)(source)),
            }
        }
        Ok(())
    }

    /// The XDP mode for `v`: `--xdp-mode`, except that `auto` on a veth that carries a
    /// virtual-MAC router means generic. On a veth the kernel sorts a frame into "for
    /// this host" or "for another host" before a native XDP program runs and does not look
    /// again, so the gate's rewrite of a virtual MAC to the interface MAC would come too
    /// late; generic XDP (and a NIC's driver, which builds the frame's skb after XDP)
    /// sorts the frame after the program.
    fn xdp_mode(&self, v: &VipInterface) -> XdpAttachMode {
        if self.args.xdp_mode != XdpAttachMode::Auto || !v.virtual_mac {
            return self.args.xdp_mode;
        }
        let veth = crate::netns::within(v.netns.as_deref(), || {
            nix::net::if_::if_nametoindex(v.id.name.as_str())
        })
        .ok()
        .and_then(Result::ok)
        .and_then(|ifindex| dataplane::vlan_offload::is_veth(ifindex, v.netns.as_deref()).ok())
        .unwrap_or(false);
        if veth {
            info!(iface = %v.id.name, mode = "generic",
                "a virtual-MAC router on a veth: the gate runs in generic mode, where the \
                 kernel takes a rewritten destination MAC into account");
            XdpAttachMode::Generic
        } else {
            XdpAttachMode::Auto
        }
    }

    /// Each running router's status for `tr7 status` and /metrics (no I/O: the reporter
    /// reads the data plane itself), with its tracked signals.
    fn router_statuses(&self) -> Vec<RouterStatus> {
        self.routers
            .drivers()
            .map(|(key, driver)| {
                let mut status = self.catalog.router(&key.iface.name, key.slot, driver);
                if let Some(spec) = self.routers.spec(key).filter(|s| s.virtual_mac) {
                    let family = match key.family {
                        Family::V4 => tr7_common::FAMILY_IPV4,
                        Family::V6 => tr7_common::FAMILY_IPV6,
                    };
                    status.virtual_mac =
                        Some(super::vmac::fmt_mac(&tr7_common::vmac(family, spec.vrid)));
                }
                if let Some(monitor) = &self.signals {
                    status.signals = monitor
                        .router_status(&signal_key(key))
                        .into_iter()
                        .map(Into::into)
                        .collect();
                }
                status
            })
            .collect()
    }

    /// Connects a running router to its tracked signals (nothing for the `vrrp` method).
    pub(super) fn bind_signals(&self, key: &RouterKey) -> Result<(), AgentError> {
        if let (Some(monitor), Some(driver)) = (&self.signals, self.routers.driver(key)) {
            monitor.bind(&signal_key(key), driver)?;
        }
        Ok(())
    }

    /// SIGTERM, SIGINT: hand over (priority 0), release every VIP, stop the heartbeat.
    fn stop(mut self, which: &'static str) {
        info!(
            signal = which,
            "stopping: priority 0 adverts, VIPs released"
        );
        let entries = routers::map_entries(&self.routers.specs());
        self.routers.shutdown_all();
        // After the routers, so that stopping the probes does not delay the priority-0 adverts.
        if let Some(monitor) = self.signals.take() {
            monitor.stop();
        }
        // Each driver released its own VIPs; this covers a driver that had already ended.
        for (place, vip) in entries {
            if let Err(e) = self.maps.set_vip(place, vip, false) {
                warn!(%vip, error = %super::chain(&e), "cannot release VIP");
            }
        }
        drop(self.heartbeat.take());
        info!("agent stopped");
    }

    /// SIGQUIT: exit for a restart. No priority 0 and no release: the pinned map keeps
    /// the VIPs owned and the data plane keeps answering for them until the fence runs
    /// out; a new agent started within the fence adopts them (docs/agent.md).
    fn exit_for_restart(mut self) {
        info!(
            fence_ms = self.fence.as_secs_f64() * 1000.0,
            "SIGQUIT: exiting for a restart; VIPs kept until the fence runs out"
        );
        self.routers.abandon_all();
        if let Some(monitor) = self.signals.take() {
            monitor.stop();
        }
        drop(self.heartbeat.take());
        info!("agent exited for restart");
    }
}

/// The signals of the file's view to track (docs/signals.md).
pub(super) fn signal_plan(view: &NodeView, target: &Target, poll_ms: u64) -> crate::signals::Plan {
    crate::signals::plan(
        view,
        |ns| target.resolve(ns).map(str::to_owned),
        Duration::from_millis(poll_ms),
    )
}

/// What a plan tracks, comparable between two files.
pub(super) fn plan_fingerprint(plan: &crate::signals::Plan) -> String {
    format!("{:?} {:?}", plan.routers(), plan.probes())
}

/// The signal monitor's name of a router.
pub(super) fn signal_key(key: &RouterKey) -> crate::signals::RouterKey {
    crate::signals::RouterKey {
        iface: key.iface.to_string(),
        slot: key.slot,
        family: key.family,
    }
}

/// Waits (at most 2 s) until every signal of `keys` has been observed once.
fn wait_observed(monitor: &Monitor, keys: &[crate::signals::RouterKey]) {
    let deadline = Instant::now() + Duration::from_secs(2);
    let unobserved = || {
        keys.iter()
            .flat_map(|k| monitor.router_status(k))
            .filter(|s| s.state == crate::signals::Health::Unknown)
            .count()
    };
    while unobserved() > 0 {
        if Instant::now() >= deadline {
            warn!(
                unobserved = unobserved(),
                "signals of resumed routers not observed within 2 s; they count as failed"
            );
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The VIPs the pinned map says this node owns, if the previous agent's heartbeat is still
/// within its fence (so the data plane is still answering for them); else none.
fn held_vips(maps: &Maps) -> BTreeSet<(VipScope, IpAddr)> {
    let now = monotonic_ns();
    let fresh = match maps.fence() {
        Ok(f) if f.interval_ns > 0 => {
            let left_ms =
                (f.heartbeat_ns.saturating_add(f.interval_ns)).saturating_sub(now) as f64 / 1e6;
            info!(
                heartbeat_age_ms = now.saturating_sub(f.heartbeat_ns) as f64 / 1e6,
                fence_ms = f.interval_ns as f64 / 1e6,
                left_ms,
                "previous liveness heartbeat"
            );
            f.heartbeat_ns.saturating_add(f.interval_ns) > now
        }
        _ => false,
    };
    if !fresh {
        return BTreeSet::new();
    }
    maps.vips()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.owned)
        .map(|e| (e.place, e.addr))
        .collect()
}

/// Writes not owned every VIP of the map that the file no longer has (a file changed
/// between two runs): this node must not keep claiming it. The entry stays, so the data
/// plane keeps treating the address as a VIP while it is still configured.
fn release_stale(maps: &mut Maps, desired: &BTreeSet<(VipScope, IpAddr)>) {
    let stale: Vec<_> = maps
        .vips()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.owned && !desired.contains(&(e.place, e.addr)))
        .collect();
    for e in stale {
        match maps.set_vip(e.place, e.addr, false) {
            Ok(_) => info!(vip = %e.addr, scope = e.place.scope, "VIP not in the file released"),
            Err(err) => warn!(vip = %e.addr, error = %super::chain(&err), "cannot release VIP"),
        }
    }
}

pub(super) fn apply_topology(
    runtime: &tokio::runtime::Runtime,
    view: &crate::config::NodeView,
    target: &Target,
) -> Result<(), AgentError> {
    let want = netlink::desired(view);
    let seen = runtime.block_on(netlink::observe(target, &want.namespaces()))?;
    let plan = netlink::plan(
        &want,
        &seen,
        Options {
            remove_foreign: false,
        },
    );
    for conflict in &plan.conflicts {
        warn!(%conflict, "topology conflict left alone");
    }
    if plan.actions.is_empty() {
        info!("topology: nothing to change");
        return Ok(());
    }
    let report = runtime
        .block_on(netlink::apply(&plan, target))
        .map_err(|e| AgentError::Apply(Box::new(e)))?;
    for action in &report.applied {
        info!(%action, "topology changed");
    }
    Ok(())
}
