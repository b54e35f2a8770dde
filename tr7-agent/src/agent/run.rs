//! The agent's wiring: startup in a safe order, the virtual routers, and the signals.
//!
//! Startup order, and why:
//! 1. signal handlers first, so a SIGTERM during startup is a clean stop, not a death;
//! 2. the file, validated, and this node's view of it;
//! 3. the pinned maps, the heartbeat (fence = the shortest Master_Down_Interval of this
//!    node's slots), and every VIP written NOT owned: a restarted agent starts from "this
//!    node claims nothing" and VRRP decides again;
//! 4. the data plane attached to each VIP interface that already exists, BEFORE the
//!    topology adds the VIP addresses, so a backup never answers for a VIP even for the
//!    milliseconds of startup; interfaces that the topology creates are attached right
//!    after it (their VIPs are new too);
//! 5. the topology (`tr7::netlink` plan and apply), every change logged;
//! 6. one VRRP driver per (interface, slot, family), each with its announcer whose frames
//!    are built now, not on the failover path.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{info, warn};

use super::announce::{AnnounceError, Announcer, Burst};
use super::heartbeat::Heartbeat;
use super::ownership::SlotOwnership;
use crate::config::{Checksum, NodeInterface, NodeSlot};
use crate::dataplane::{self, DataplaneError, Maps, VipScope, XdpAttachMode};
use crate::netlink::{self, Options, Target, observe::ObserveError};
use crate::vrrp::packet::Family;
use crate::vrrp::{ChecksumMode, Config, Driver, DriverConfig, DriverError, timers};

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
}

/// One interface that carries VIPs: where it is and its data-plane scope.
struct VipInterface<'a> {
    iface: &'a NodeInterface,
    /// The `ip netns` name of its namespace (`None`: the agent's own).
    netns: Option<String>,
    place: VipScope,
}

/// Runs the agent until SIGTERM or SIGINT; `Ok` is a clean stop.
pub fn run(args: &AgentArgs) -> Result<(), AgentError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(AgentError::Runtime)?;
    let (mut term, mut int) = runtime
        .block_on(async {
            Ok::<_, std::io::Error>((
                signal(SignalKind::terminate())?,
                signal(SignalKind::interrupt())?,
            ))
        })
        .map_err(AgentError::Runtime)?;

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

    // Scopes are the interface's position in the file, plus one: stable across restarts
    // of the same file, so a restarted agent finds its VIP entries where it left them.
    let vip_ifaces: Vec<VipInterface<'_>> = view
        .interfaces
        .iter()
        .enumerate()
        .filter(|(_, i)| i.slots.iter().any(|s| !s.vips.is_empty()))
        .map(|(n, iface)| VipInterface {
            iface,
            netns: target
                .resolve(iface.id.namespace.as_deref())
                .map(str::to_owned),
            place: VipScope::untagged(u32::try_from(n + 1).unwrap_or(u32::MAX)),
        })
        .collect();

    // 3. Maps, heartbeat, every VIP not owned.
    let dp_err = |iface: &str| {
        let iface = iface.to_owned();
        move |source| AgentError::Dataplane {
            iface,
            source: Box::new(source),
        }
    };
    let mut maps = dataplane::create_maps(&args.pin_dir).map_err(dp_err("(maps)"))?;
    let fence = vip_ifaces
        .iter()
        .flat_map(|v| &v.iface.slots)
        .filter(|s| !s.vips.is_empty())
        .map(|s| timers::master_down_interval(s.priority.max(1), interval_cs(s)))
        .min()
        .unwrap_or(Duration::from_secs(3));
    let heartbeat = Heartbeat::start(Maps::open(&args.pin_dir).map_err(dp_err("(maps)"))?, fence)
        .map_err(dp_err("(heartbeat)"))?;
    for v in &vip_ifaces {
        for vip in v.iface.slots.iter().flat_map(|s| &s.vips) {
            maps.set_vip(v.place, vip.address, false)
                .map_err(dp_err(&v.iface.id.name))?;
        }
    }

    // 4. and 5. Attach where the interface exists, apply, attach the rest.
    let mut attached = vec![false; vip_ifaces.len()];
    for (v, done) in vip_ifaces.iter().zip(&mut attached) {
        match dataplane::attach(
            &args.pin_dir,
            &v.iface.id.name,
            v.netns.as_deref(),
            v.place.scope,
            args.xdp_mode,
        ) {
            Ok(att) => {
                *done = true;
                info!(iface = %att.iface, ifindex = att.ifindex, scope = att.scope,
                    gate = ?att.gate, guard = ?att.guard, "data plane attached before the topology");
            }
            Err(DataplaneError::NoInterface { .. }) => {}
            Err(source) => return Err(dp_err(&v.iface.id.name)(source)),
        }
    }
    apply_topology(&runtime, &view, &target)?;
    for (v, done) in vip_ifaces.iter().zip(&attached) {
        if !done {
            let att = dataplane::attach(
                &args.pin_dir,
                &v.iface.id.name,
                v.netns.as_deref(),
                v.place.scope,
                args.xdp_mode,
            )
            .map_err(dp_err(&v.iface.id.name))?;
            info!(iface = %att.iface, ifindex = att.ifindex, scope = att.scope,
                gate = ?att.gate, guard = ?att.guard, "data plane attached after the topology created the interface");
        }
    }

    // 6. The virtual routers.
    let burst = Burst {
        count: args.announce_count,
        pacing: Duration::from_millis(args.announce_pacing_ms),
    };
    let mut drivers = Vec::new();
    for v in &vip_ifaces {
        for slot in &v.iface.slots {
            for family in [Family::V4, Family::V6] {
                let vips: Vec<IpAddr> = slot
                    .vips
                    .iter()
                    .map(|x| x.address)
                    .filter(|a| Family::of(*a) == family)
                    .collect();
                if vips.is_empty() {
                    continue;
                }
                let driver = start_driver(args, v, slot, family, vips, burst)?;
                drivers.push((v.iface.id.name.clone(), slot.name, family, driver));
            }
        }
    }
    info!(
        routers = drivers.len(),
        startup_ms = started.elapsed().as_millis() as u64,
        fence_ms = fence.as_secs_f64() * 1000.0,
        "agent running"
    );

    let which = runtime.block_on(async {
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    });
    info!(
        signal = which,
        "stopping: priority 0 adverts, VIPs released"
    );
    // In parallel: each stop ends with closing sockets, which waits for an RCU grace
    // period (about 10 ms for an AF_PACKET socket); one after the other, the last
    // master's priority-0 advert would wait for all the others.
    std::thread::scope(|scope| {
        for (iface, slot, family, driver) in drivers {
            scope.spawn(move || {
                let status = driver.shutdown();
                info!(%iface, slot = slot.as_str(), %family, state = %status.state,
                    adverts_sent = status.vrrp.adverts_sent, "virtual router stopped");
            });
        }
    });
    // Each driver released its own VIPs; this covers a driver that had already ended.
    for v in &vip_ifaces {
        for vip in v.iface.slots.iter().flat_map(|s| &s.vips) {
            if let Err(e) = maps.set_vip(v.place, vip.address, false) {
                warn!(iface = %v.iface.id.name, vip = %vip.address, error = %super::chain(&e),
                    "cannot release VIP");
            }
        }
    }
    drop(heartbeat);
    info!("agent stopped");
    Ok(())
}

fn interval_cs(slot: &NodeSlot) -> u16 {
    // Validation keeps the interval a multiple of 10 ms within 10 ms-40.95 s.
    u16::try_from(slot.advert_interval.as_millis() / 10)
        .unwrap_or(u16::MAX)
        .max(1)
}

fn apply_topology(
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

fn start_driver(
    args: &AgentArgs,
    v: &VipInterface<'_>,
    slot: &NodeSlot,
    family: Family,
    vips: Vec<IpAddr>,
    burst: Burst,
) -> Result<Driver, AgentError> {
    let iface = &v.iface.id.name;
    let netns = v.netns.as_deref();
    let no_source = || AgentError::NoSource {
        iface: iface.clone(),
        slot: slot.name.as_str(),
        family,
    };
    let (primary, peers) = match family {
        Family::V4 => {
            let primary = slot
                .source
                .ipv4
                .or_else(|| {
                    v.iface
                        .addresses
                        .iter()
                        .map(|c| c.addr)
                        .find(IpAddr::is_ipv4)
                })
                .ok_or_else(no_source)?;
            let peers = slot.peers.iter().copied().filter(IpAddr::is_ipv4).collect();
            (primary, peers)
        }
        // With IPv6 peers: unicast from this node's source in the file (global or
        // link-local), because the peers know us by it (keepalived binds its receive
        // socket to its unicast_src_ip and checks our source against its unicast_peer
        // list). Without: ff02::12 from the link-local address (RFC 9568 5.1.2.1).
        // docs/vrrp.md, "IPv6 unicast".
        Family::V6 => {
            let peers: Vec<IpAddr> = slot.peers.iter().copied().filter(IpAddr::is_ipv6).collect();
            let source = match slot.source.ipv6 {
                Some(IpAddr::V6(source)) if !peers.is_empty() => source,
                _ => link_local(netns, iface)?,
            };
            (IpAddr::V6(wait_usable(netns, iface, source)?), peers)
        }
    };
    let mut config = Config::new(slot.vrid.value, slot.priority, primary, vips.clone());
    config.advert_interval_cs = interval_cs(slot);
    config.preempt = slot.preempt;
    config.preempt_delay = slot.preempt_delay;
    config.accept_mode = slot.accept_mode;
    config.unicast_peers = peers;
    let announcer = Announcer::new(netns, iface, &vips, burst)?;
    let ownership = SlotOwnership {
        iface: iface.clone(),
        slot: slot.name,
        family,
        vrid: slot.vrid.value,
        place: v.place,
        vips,
        maps: Maps::open(&args.pin_dir).map_err(|source| AgentError::Dataplane {
            iface: iface.clone(),
            source: Box::new(source),
        })?,
        announcer,
    };
    info!(%iface, slot = slot.name.as_str(), %family, vrid = slot.vrid.value,
        priority = slot.priority, %primary, peers = ?config.unicast_peers,
        mode = if config.unicast_peers.is_empty() { "multicast" } else { "unicast" },
        "starting virtual router");
    let driver = Driver::start(
        DriverConfig {
            netns: v.netns.clone(),
            interface: iface.clone(),
            vrrp: config,
            checksum: match slot.checksum {
                Checksum::PseudoHeader => ChecksumMode::PseudoHeader,
                Checksum::MessageOnly => ChecksumMode::MessageOnly,
            },
        },
        ownership,
    )?;
    Ok(driver)
}

/// `source` once the kernel accepts it as a source: an address the topology just added
/// is tentative until duplicate address detection ends (a second or two).
fn wait_usable(
    netns: Option<&str>,
    iface: &str,
    source: std::net::Ipv6Addr,
) -> Result<std::net::Ipv6Addr, AgentError> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match crate::vrrp::ipv6_source_usable(netns, iface, source) {
            Ok(true) => return Ok(source),
            Ok(false) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(false) => {
                return Err(AgentError::Driver(DriverError::Socket(
                    crate::vrrp::SocketError::SourceNotUsable {
                        iface: iface.to_owned(),
                        addr: source,
                    },
                )));
            }
            Err(e) => return Err(AgentError::Driver(DriverError::Socket(e))),
        }
    }
}

/// The interface's link-local address. A link that the topology just set up gets one
/// within milliseconds, so wait a little rather than fail.
fn link_local(netns: Option<&str>, iface: &str) -> Result<std::net::Ipv6Addr, AgentError> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match crate::vrrp::link_local_v6(netns, iface) {
            Ok(a) => return Ok(a),
            Err(crate::vrrp::SocketError::NoLinkLocal { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(AgentError::Driver(DriverError::Socket(e))),
        }
    }
}
