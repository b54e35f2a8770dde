//! The agent's virtual routers, one per (interface, slot, address family) that has VIPs.
//!
//! Three parts, so that a reload is a pure diff followed by a thin execution:
//! - [`specs`]: what the file asks of each router ([`RouterSpec`]), a pure function of the
//!   node view;
//! - [`diff`]: old specs and new specs to the [`Change`]s between them, pure (unit-tested);
//! - [`Routers`]: the running drivers keyed by [`RouterKey`], which start, stop, restart
//!   and update them, and give snapshots of their state to whoever reports it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::announce::{Announcer, Burst};
use super::ownership::SlotOwnership;
use super::run::AgentError;
use super::vmac::VirtualMac;
use crate::config::{Checksum, IfaceRef, NodeView, SlotName};
use crate::dataplane::{Maps, VipScope};
use crate::netlink::Target;
use crate::vrrp::packet::Family;
use crate::vrrp::{ChecksumMode, Config, Driver, DriverConfig, DriverError, State, Status};

/// Which virtual router: one per (interface, slot, address family).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouterKey {
    pub iface: IfaceRef,
    pub slot: SlotName,
    pub family: Family,
}

impl fmt::Display for RouterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.iface, self.slot.as_str(), self.family)
    }
}

/// Everything the file says about one virtual router: two equal specs run the same router.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouterSpec {
    /// The `ip netns` name of the interface's namespace (`None`: the agent's own).
    pub netns: Option<String>,
    /// The data-plane scope of the interface (its position in the file, plus one).
    pub place: VipScope,
    pub vrid: u8,
    pub priority: u8,
    /// The VIPs of the slot in this family, in file order.
    pub vips: Vec<IpAddr>,
    pub advert_interval_cs: u16,
    pub preempt: bool,
    pub preempt_delay: Duration,
    pub accept_mode: bool,
    pub checksum: Checksum,
    /// IPv4: the unicast source, else the interface's first IPv4 address (`None`: the
    /// file gives none, an error when the router starts). IPv6: `None`, the link-local
    /// address is read when the router starts.
    pub source: Option<IpAddr>,
    /// The unicast peers of this family (IPv6: only with a source, docs/vrrp.md).
    pub peers: Vec<IpAddr>,
    /// The file asks for the RFC 9568 7.3 virtual MAC; not implemented yet, so the
    /// router warns at start and uses the interface MAC (docs/agent.md).
    pub virtual_mac: bool,
}

/// One interface that carries VIPs: where it is and its data-plane scope.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct VipInterface {
    pub id: IfaceRef,
    pub netns: Option<String>,
    pub place: VipScope,
    /// A slot of the interface uses the virtual MAC.
    pub virtual_mac: bool,
}

/// The interfaces of `view` that carry VIPs. Scopes are the interface's position in the
/// file, plus one: stable across restarts of the same file, so a restarted agent finds
/// its VIP entries where it left them.
pub fn vip_interfaces(view: &NodeView, target: &Target) -> Vec<VipInterface> {
    view.interfaces
        .iter()
        .enumerate()
        .filter(|(_, i)| i.slots.iter().any(|s| !s.vips.is_empty()))
        .map(|(n, iface)| VipInterface {
            id: iface.id.clone(),
            netns: target
                .resolve(iface.id.namespace.as_deref())
                .map(str::to_owned),
            place: VipScope::untagged(u32::try_from(n + 1).unwrap_or(u32::MAX)),
            virtual_mac: iface.slots.iter().any(|s| s.virtual_mac),
        })
        .collect()
}

/// The routers `view` asks for.
pub fn specs(view: &NodeView, target: &Target) -> BTreeMap<RouterKey, RouterSpec> {
    let places: BTreeMap<IfaceRef, VipInterface> = vip_interfaces(view, target)
        .into_iter()
        .map(|v| (v.id.clone(), v))
        .collect();
    let mut out = BTreeMap::new();
    for iface in &view.interfaces {
        let Some(v) = places.get(&iface.id) else {
            continue;
        };
        for slot in &iface.slots {
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
                let (source, peers) = match family {
                    Family::V4 => (
                        slot.source.ipv4.or_else(|| {
                            iface.addresses.iter().map(|c| c.addr).find(IpAddr::is_ipv4)
                        }),
                        slot.peers.iter().copied().filter(IpAddr::is_ipv4).collect(),
                    ),
                    // With IPv6 peers: unicast from this node's source in the file
                    // (global or link-local), because the peers know us by it (keepalived
                    // binds its receive socket to its unicast_src_ip and checks our source
                    // against its unicast_peer list). Without: ff02::12 from the
                    // link-local address (RFC 9568 5.1.2.1), looked up at start.
                    // docs/vrrp.md, "IPv6 unicast".
                    Family::V6 => {
                        let peers: Vec<IpAddr> =
                            slot.peers.iter().copied().filter(IpAddr::is_ipv6).collect();
                        let source = slot.source.ipv6.filter(|_| !peers.is_empty());
                        (source, peers)
                    }
                };
                out.insert(
                    RouterKey {
                        iface: iface.id.clone(),
                        slot: slot.name,
                        family,
                    },
                    RouterSpec {
                        netns: v.netns.clone(),
                        place: v.place,
                        vrid: slot.vrid.value,
                        priority: slot.priority,
                        vips,
                        advert_interval_cs: interval_cs(slot.advert_interval),
                        preempt: slot.preempt,
                        preempt_delay: slot.preempt_delay,
                        accept_mode: slot.accept_mode,
                        checksum: slot.checksum,
                        source,
                        peers,
                        virtual_mac: slot.virtual_mac,
                    },
                );
            }
        }
    }
    out
}

/// The first router of `specs` that cannot start for want of an IPv4 source address.
pub fn missing_source(specs: &BTreeMap<RouterKey, RouterSpec>) -> Option<AgentError> {
    specs
        .iter()
        .find(|(k, s)| k.family == Family::V4 && s.source.is_none())
        .map(|(k, _)| AgentError::NoSource {
            iface: k.iface.name.clone(),
            slot: k.slot.as_str(),
            family: k.family,
        })
}

/// The advert interval in centiseconds. Validation keeps it a multiple of 10 ms within
/// 10 ms-40.95 s.
pub fn interval_cs(interval: Duration) -> u16 {
    u16::try_from(interval.as_millis() / 10)
        .unwrap_or(u16::MAX)
        .max(1)
}

/// What a reload does to one router.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// New in the file: started.
    Add(RouterKey),
    /// Gone from the file: stopped as on SIGTERM (priority 0 if master, VIPs released).
    Remove(RouterKey),
    /// Only the priority differs: changed in place, no restart (a master advertises the
    /// new priority at once).
    Priority { key: RouterKey, old: u8, new: u8 },
    /// Anything else differs: replaced by a new router, which resumes as master if the
    /// old one was master. `what` names the fields that changed.
    Restart {
        key: RouterKey,
        what: Vec<&'static str>,
    },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Add(k) => write!(f, "add {k}"),
            Change::Remove(k) => write!(f, "remove {k}"),
            Change::Priority { key, old, new } => write!(f, "priority {key}: {old} -> {new}"),
            Change::Restart { key, what } => write!(f, "restart {key} ({})", what.join(", ")),
        }
    }
}

/// The changes that turn the routers of `old` into those of `new`, in key order: removals,
/// then in-place and restarts, then additions. Routers whose spec is equal do not appear:
/// a reload leaves them alone.
pub fn diff(
    old: &BTreeMap<RouterKey, RouterSpec>,
    new: &BTreeMap<RouterKey, RouterSpec>,
) -> Vec<Change> {
    let removed = old
        .keys()
        .filter(|k| !new.contains_key(*k))
        .map(|k| Change::Remove(k.clone()));
    let changed = old.iter().filter_map(|(k, o)| {
        let n = new.get(k)?;
        let what = changed_fields(o, n);
        match what.as_slice() {
            [] => None,
            ["priority"] => Some(Change::Priority {
                key: k.clone(),
                old: o.priority,
                new: n.priority,
            }),
            _ => Some(Change::Restart {
                key: k.clone(),
                what,
            }),
        }
    });
    let added = new
        .keys()
        .filter(|k| !old.contains_key(*k))
        .map(|k| Change::Add(k.clone()));
    removed.chain(changed).chain(added).collect()
}

fn changed_fields(o: &RouterSpec, n: &RouterSpec) -> Vec<&'static str> {
    let same_vips = o.vips.len() == n.vips.len() && o.vips.iter().all(|v| n.vips.contains(v));
    [
        ("namespace", o.netns == n.netns),
        ("scope", o.place == n.place),
        ("vrid", o.vrid == n.vrid),
        ("priority", o.priority == n.priority),
        ("vips", same_vips),
        (
            "advert_interval",
            o.advert_interval_cs == n.advert_interval_cs,
        ),
        ("preempt", o.preempt == n.preempt),
        ("preempt_delay", o.preempt_delay == n.preempt_delay),
        ("accept_mode", o.accept_mode == n.accept_mode),
        ("checksum", o.checksum == n.checksum),
        ("source", o.source == n.source),
        ("peers", o.peers == n.peers),
        ("virtual_mac", o.virtual_mac == n.virtual_mac),
    ]
    .into_iter()
    .filter(|(_, same)| !same)
    .map(|(name, _)| name)
    .collect()
}

/// Every (scope, VIP) of `specs`: the entries of the ownership map.
pub fn map_entries(specs: &BTreeMap<RouterKey, RouterSpec>) -> BTreeSet<(VipScope, IpAddr)> {
    specs
        .values()
        .flat_map(|s| s.vips.iter().map(|&a| (s.place, a)))
        .collect()
}

/// Every (interface, VIP) of `specs`: the VIP addresses TR7 configures.
pub fn vip_addresses(specs: &BTreeMap<RouterKey, RouterSpec>) -> BTreeSet<(IfaceRef, IpAddr)> {
    specs
        .iter()
        .flat_map(|(k, s)| s.vips.iter().map(|&a| (k.iface.clone(), a)))
        .collect()
}

/// A snapshot of one running router, for status and metrics.
#[derive(Clone, Debug)]
pub struct RouterSnapshot {
    pub key: RouterKey,
    pub spec: RouterSpec,
    pub status: Status,
}

struct Running {
    spec: RouterSpec,
    driver: Driver,
    /// Set up at start, removed when the router stops (not when it is abandoned).
    vmac: Option<VirtualMac>,
    /// The last failure to follow the interface's MAC, logged once.
    mac_error: Option<String>,
}

/// Removes a stopped router's virtual MAC.
fn remove_vmac(pin_dir: &std::path::Path, vmac: Option<VirtualMac>) {
    let Some(vmac) = vmac else { return };
    match Maps::open(pin_dir) {
        Ok(mut maps) => vmac.remove(&mut maps),
        Err(e) => warn!(iface = %vmac.iface, error = %super::chain(&e),
            "cannot open the maps to remove the virtual MAC"),
    }
}

/// The running virtual routers.
pub struct Routers {
    pin_dir: PathBuf,
    burst: Burst,
    running: BTreeMap<RouterKey, Running>,
}

impl Routers {
    pub fn new(pin_dir: PathBuf, burst: Burst) -> Self {
        Self {
            pin_dir,
            burst,
            running: BTreeMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.running.len()
    }

    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }

    /// The specs of the running routers: the "old" side of a reload's diff.
    pub fn specs(&self) -> BTreeMap<RouterKey, RouterSpec> {
        self.running
            .iter()
            .map(|(k, r)| (k.clone(), r.spec.clone()))
            .collect()
    }

    pub fn snapshots(&self) -> Vec<RouterSnapshot> {
        self.running
            .iter()
            .map(|(k, r)| RouterSnapshot {
                key: k.clone(),
                spec: r.spec.clone(),
                status: r.driver.status(),
            })
            .collect()
    }

    /// The spec of a running router.
    pub fn spec(&self, key: &RouterKey) -> Option<&RouterSpec> {
        self.running.get(key).map(|r| &r.spec)
    }

    /// The driver of a running router.
    pub fn driver(&self, key: &RouterKey) -> Option<&Driver> {
        self.running.get(key).map(|r| &r.driver)
    }

    /// Each running router's key and driver (for `tr7 status`).
    pub fn drivers(&self) -> impl Iterator<Item = (&RouterKey, &Driver)> {
        self.running.iter().map(|(k, r)| (k, &r.driver))
    }

    /// The state of a running router.
    pub fn state(&self, key: &RouterKey) -> Option<State> {
        self.running.get(key).map(|r| r.driver.state())
    }

    /// Starts a router: from Startup (RFC 9568 6.4.1), or resuming as master when
    /// `resume` (this node still owns its VIPs).
    pub fn start(
        &mut self,
        key: RouterKey,
        spec: RouterSpec,
        resume: bool,
    ) -> Result<(), AgentError> {
        let (driver, vmac) = start_driver(&self.pin_dir, &key, &spec, self.burst, resume)?;
        self.running.insert(
            key,
            Running {
                spec,
                driver,
                vmac,
                mac_error: None,
            },
        );
        Ok(())
    }

    /// Keeps each virtual-MAC router's rows on its interface's current MAC
    /// ([`VirtualMac::follow_interface_mac`]): the interface's MAC is read once per
    /// interface. A failure is logged when it first happens and when it clears, not on
    /// every call.
    pub fn follow_interface_macs(&mut self, maps: &mut Maps) {
        let mut links: BTreeMap<(Option<String>, String), Result<[u8; 6], String>> =
            BTreeMap::new();
        for (key, r) in &mut self.running {
            let Some(vmac) = r.vmac.as_mut() else {
                continue;
            };
            let link = links
                .entry((vmac.netns.clone(), vmac.iface.clone()))
                .or_insert_with(|| vmac.interface_mac().map_err(|e| super::chain(&e)))
                .clone();
            let result = link.and_then(|mac| {
                vmac.follow_interface_mac(maps, mac)
                    .map_err(|e| super::chain(&e))
            });
            match (result, &r.mac_error) {
                (Ok(()), None) => {}
                (Ok(()), Some(_)) => {
                    info!(router = %key, iface = %vmac.iface, "following the interface's MAC works again");
                    r.mac_error = None;
                }
                (Err(e), last) if last.as_ref() != Some(&e) => {
                    warn!(router = %key, iface = %vmac.iface, error = %e,
                        "cannot follow the interface's MAC for the virtual MAC");
                    r.mac_error = Some(e);
                }
                (Err(_), _) => {}
            }
        }
    }

    /// Changes a running router's priority in place.
    pub fn set_priority(&mut self, key: &RouterKey, priority: u8) {
        if let Some(r) = self.running.get_mut(key) {
            r.driver.set_priority(priority);
            r.spec.priority = priority;
        }
    }

    /// RFC 9568 Shutdown of one router: priority 0 if master, VIPs released.
    pub fn stop(&mut self, key: &RouterKey) -> Option<Status> {
        let r = self.running.remove(key)?;
        let status = r.driver.shutdown();
        info!(router = %key, state = %status.state, adverts_sent = status.vrrp.adverts_sent,
            "virtual router stopped");
        remove_vmac(&self.pin_dir, r.vmac);
        Some(status)
    }

    /// Ends one router's thread without Shutdown (no priority 0, VIPs left as they are),
    /// for a restart that carries on; returns its spec, its last state and its virtual
    /// MAC, left in place for the replacement to adopt or the caller to remove.
    pub fn abandon(&mut self, key: &RouterKey) -> Option<(RouterSpec, State, Option<VirtualMac>)> {
        let r = self.running.remove(key)?;
        let status = r.driver.abandon();
        Some((r.spec, status.state, r.vmac))
    }

    /// RFC 9568 Shutdown of every router, in parallel: each stop ends with closing
    /// sockets, which waits for an RCU grace period (about 10 ms for an AF_PACKET
    /// socket); one after the other, the last master's priority-0 advert would wait for
    /// all the others.
    pub fn shutdown_all(&mut self) {
        let running = std::mem::take(&mut self.running);
        let pin_dir = &self.pin_dir;
        std::thread::scope(|scope| {
            for (key, r) in running {
                scope.spawn(move || {
                    let status = r.driver.shutdown();
                    info!(router = %key, state = %status.state,
                        adverts_sent = status.vrrp.adverts_sent, "virtual router stopped");
                    remove_vmac(pin_dir, r.vmac);
                });
            }
        });
    }

    /// Ends every router without Shutdown, for an exit that keeps the VIPs (SIGQUIT).
    pub fn abandon_all(&mut self) {
        let running = std::mem::take(&mut self.running);
        std::thread::scope(|scope| {
            for (key, r) in running {
                scope.spawn(move || {
                    let status = r.driver.abandon();
                    info!(router = %key, state = %status.state,
                        "virtual router left running in the data plane");
                });
            }
        });
    }
}

fn start_driver(
    pin_dir: &std::path::Path,
    key: &RouterKey,
    spec: &RouterSpec,
    burst: Burst,
    resume: bool,
) -> Result<(Driver, Option<VirtualMac>), AgentError> {
    let iface = &key.iface.name;
    let netns = spec.netns.as_deref();
    let primary = match key.family {
        Family::V4 => spec.source.ok_or_else(|| AgentError::NoSource {
            iface: iface.clone(),
            slot: key.slot.as_str(),
            family: key.family,
        })?,
        Family::V6 => {
            let source = match spec.source {
                Some(IpAddr::V6(source)) => source,
                _ => link_local(netns, iface)?,
            };
            IpAddr::V6(wait_usable(netns, iface, source)?)
        }
    };
    announce_source(netns, iface, primary);
    let mut config = Config::new(spec.vrid, spec.priority, primary, spec.vips.clone());
    config.advert_interval_cs = spec.advert_interval_cs;
    config.preempt = spec.preempt;
    config.preempt_delay = spec.preempt_delay;
    config.accept_mode = spec.accept_mode;
    config.unicast_peers = spec.peers.clone();
    let mut maps = Maps::open(pin_dir).map_err(|source| AgentError::Dataplane {
        iface: iface.clone(),
        source: Box::new(source),
    })?;
    let vmac = if spec.virtual_mac {
        Some(VirtualMac::setup(
            &mut maps, netns, iface, key.family, spec.vrid, spec.place, &spec.vips,
        )?)
    } else {
        None
    };
    let announcer = Announcer::new(
        netns,
        iface,
        &spec.vips,
        burst,
        vmac.as_ref().map(|v| v.mac),
    )?;
    let ownership = SlotOwnership {
        iface: iface.clone(),
        slot: key.slot,
        family: key.family,
        vrid: spec.vrid,
        place: spec.place,
        vips: spec.vips.clone(),
        maps,
        announcer,
        vmac: vmac.clone(),
    };
    if let Some(v) = &vmac {
        info!(%iface, slot = key.slot.as_str(), family = %key.family, vrid = spec.vrid,
            mac = %super::vmac::fmt_mac(&v.mac), "the VIPs speak with the virtual MAC");
    }
    info!(%iface, slot = key.slot.as_str(), family = %key.family, vrid = spec.vrid,
        priority = spec.priority, %primary, peers = ?config.unicast_peers,
        mode = if config.unicast_peers.is_empty() { "multicast" } else { "unicast" },
        resume, "starting virtual router");
    let config = DriverConfig {
        netns: spec.netns.clone(),
        interface: iface.clone(),
        vrrp: config,
        checksum: match spec.checksum {
            Checksum::PseudoHeader => ChecksumMode::PseudoHeader,
            Checksum::MessageOnly => ChecksumMode::MessageOnly,
        },
    };
    let driver = if resume {
        Driver::resume(config, ownership)?
    } else {
        Driver::start(config, ownership)?
    };
    Ok((driver, vmac))
}

/// Sends one gratuitous ARP (IPv4) or unsolicited NA (IPv6) for the router's own source
/// address before it starts, so the peers' kernels resolve it at once.
///
/// A peer that started first has been sending its adverts to this address since before
/// the topology added it: its kernel's neighbour entry is unresolved, its ARP or neighbour
/// solicitation is retried only once a second, and the adverts wait in the entry's queue.
/// The router, hearing nothing for Master_Down_Interval (well under a second), would become
/// master beside the peer and announce the VIPs until its own first advert got the peer's
/// through (seen against keepalived in `agent_lab`, 4 runs in 5). An unsolicited
/// announcement updates an existing entry, unresolved ones included, and the queued
/// adverts go out. A failure is logged: the router still starts.
fn announce_source(netns: Option<&str>, iface: &str, source: IpAddr) {
    let once = Burst {
        count: 1,
        pacing: Duration::ZERO,
    };
    match Announcer::new(netns, iface, &[source], once, None) {
        Ok(mut a) => {
            a.announce();
            debug!(%iface, %source, "own source address announced");
        }
        Err(e) => warn!(%iface, %source, error = %super::chain(&e),
            "cannot announce the router's own source address"),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn key(iface: &str, slot: SlotName, family: Family) -> RouterKey {
        RouterKey {
            iface: IfaceRef {
                namespace: None,
                name: iface.into(),
            },
            slot,
            family,
        }
    }

    fn spec(vips: &[&str]) -> RouterSpec {
        RouterSpec {
            netns: None,
            place: VipScope::untagged(1),
            vrid: 1,
            priority: 200,
            vips: vips.iter().map(|v| v.parse().unwrap()).collect(),
            advert_interval_cs: 10,
            preempt: true,
            preempt_delay: Duration::ZERO,
            accept_mode: false,
            checksum: Checksum::PseudoHeader,
            source: Some("192.0.2.2".parse().unwrap()),
            peers: vec!["192.0.2.3".parse().unwrap()],
            virtual_mac: false,
        }
    }

    // Proves `transport: multicast` gives every router no unicast peers (the driver then
    // sends to 224.0.0.18 / ff02::12) and an IPv6 router no file source (it sends from
    // the link-local address), while the default is unicast to the other node.
    #[test]
    fn multicast_transport_has_no_peers() {
        let file = |transport: &str| {
            format!(
                "name: t\nnodes: [{{name: a}}, {{name: b}}]\ninterfaces:\n  - name: eth0\n    \
                 type: ethernet\n    addresses:\n      a: [192.0.2.2/24, 2001:db8::2/64]\n      \
                 b: [192.0.2.3/24, 2001:db8::3/64]\n    vrrp: {{{transport}}}\n    vips:\n      \
                 master: [{{address: 192.0.2.10}}, {{address: 2001:db8::10}}]\n"
            )
        };
        let specs_of = |text: &str| {
            let cluster = crate::config::parse(text, "t.yaml").expect("valid file");
            let view = cluster.node_view("a").expect("node a");
            specs(&view, &Target::default())
        };
        let multicast = specs_of(&file("transport: multicast"));
        assert_eq!(multicast.len(), 2);
        for (key, spec) in &multicast {
            assert!(spec.peers.is_empty(), "{key}: peers {:?}", spec.peers);
            if key.family == Family::V6 {
                assert_eq!(
                    spec.source, None,
                    "{key}: IPv6 multicast sends from link-local"
                );
            } else {
                assert_eq!(spec.source, Some("192.0.2.2".parse().unwrap()));
            }
        }
        let unicast = specs_of(&file(""));
        for (key, spec) in &unicast {
            assert_eq!(
                spec.peers.len(),
                1,
                "{key}: the default is unicast to node b"
            );
        }
        let bad = crate::config::parse(&file("transport: broadcast"), "t.yaml")
            .expect_err("an unknown transport is refused");
        assert!(bad.to_string().contains("transport"), "{bad}");
    }

    // Proves a reload of an identical file changes nothing: no router appears in the diff.
    #[test]
    fn equal_views_have_no_changes() {
        let old = BTreeMap::from([
            (
                key("eth0", SlotName::Master, Family::V4),
                spec(&["192.0.2.10"]),
            ),
            (
                key("eth0", SlotName::Backup, Family::V4),
                spec(&["192.0.2.20"]),
            ),
        ]);
        assert!(diff(&old, &old.clone()).is_empty());
    }

    // Proves the classification: a router gone is removed, a new one added, a priority
    // alone changes in place, a VIP list change restarts only that router, reordered VIPs
    // are no change, and unchanged routers are absent from the diff.
    #[test]
    fn diff_classifies_each_router() {
        let m4 = key("eth0", SlotName::Master, Family::V4);
        let m6 = key("eth0", SlotName::Master, Family::V6);
        let b4 = key("eth0", SlotName::Backup, Family::V4);
        let b6 = key("eth0", SlotName::Backup, Family::V6);
        let e1 = key("eth1", SlotName::Master, Family::V4);
        let old = BTreeMap::from([
            (m4.clone(), spec(&["192.0.2.10", "192.0.2.11"])),
            (m6.clone(), spec(&["2001:db8::10"])),
            (b4.clone(), spec(&["192.0.2.20"])),
            (b6.clone(), spec(&["2001:db8::20"])),
        ]);
        let mut new = old.clone();
        new.remove(&b6);
        new.get_mut(&m4).unwrap().vips = ["192.0.2.11", "192.0.2.10"]
            .iter()
            .map(|v| v.parse().unwrap())
            .collect();
        new.get_mut(&b4)
            .unwrap()
            .vips
            .push("192.0.2.21".parse().unwrap());
        new.get_mut(&m6).unwrap().priority = 50;
        new.insert(e1.clone(), spec(&["198.51.100.10"]));
        assert_eq!(
            diff(&old, &new),
            vec![
                Change::Remove(b6),
                Change::Priority {
                    key: m6,
                    old: 200,
                    new: 50
                },
                Change::Restart {
                    key: b4,
                    what: vec!["vips"]
                },
                Change::Add(e1),
            ]
        );
    }

    // Proves that anything beyond the priority restarts the router, and that the
    // restart names every field that changed (the reload's log line).
    #[test]
    fn restart_names_the_changed_fields() {
        let k = key("eth0", SlotName::Master, Family::V4);
        let old = BTreeMap::from([(k.clone(), spec(&["192.0.2.10"]))]);
        let mut n = spec(&["192.0.2.10"]);
        n.priority = 100;
        n.advert_interval_cs = 100;
        n.place = VipScope::untagged(2);
        let new = BTreeMap::from([(k.clone(), n)]);
        assert_eq!(
            diff(&old, &new),
            vec![Change::Restart {
                key: k,
                what: vec!["scope", "priority", "advert_interval"]
            }]
        );
    }

    // Proves specs() reads the file as the agent runs it: one router per slot and family
    // with VIPs, the interface's position as scope, IPv4 unicast peers and source, IPv6
    // without peers, and no router for a slot without VIPs of a family.
    #[test]
    fn specs_from_a_file() {
        let cluster = crate::config::parse(
            "\
name: lab
nodes: [{name: node-a}, {name: node-b}]
interfaces:
  - name: eth9
    type: ethernet
    addresses:
      node-a: [198.51.100.2/24]
      node-b: [198.51.100.3/24]
  - name: eth0
    type: ethernet
    addresses:
      node-a: [192.0.2.2/24, 2001:db8::2/64]
      node-b: [192.0.2.3/24, 2001:db8::3/64]
    vrrp:
      unicast:
        node-a: [192.0.2.2]
        node-b: [192.0.2.3]
      advert_interval: 100ms
    vips:
      master: [{address: 192.0.2.10}, {address: 2001:db8::10}]
      backup: [{address: 192.0.2.20}]
",
            "lab.yaml",
        )
        .expect("valid file");
        let view = cluster.node_view("node-a").unwrap();
        let specs = specs(&view, &Target::default());
        let keys: Vec<String> = specs.keys().map(ToString::to_string).collect();
        assert_eq!(
            keys,
            ["eth0 master IPv4", "eth0 master IPv6", "eth0 backup IPv4"]
        );
        let m4 = &specs[&key("eth0", SlotName::Master, Family::V4)];
        assert_eq!(m4.place, VipScope::untagged(2));
        assert_eq!(m4.source, Some("192.0.2.2".parse().unwrap()));
        assert_eq!(m4.peers, vec!["192.0.2.3".parse::<IpAddr>().unwrap()]);
        assert_eq!(m4.advert_interval_cs, 10);
        let m6 = &specs[&key("eth0", SlotName::Master, Family::V6)];
        assert_eq!((m6.source, m6.peers.len()), (None, 0));
        assert!(missing_source(&specs).is_none());
    }
}
