//! The agent's signal monitor: which signals this node tracks (from the file), the threads
//! that watch them, and the one thread that runs the [`Board`] and tells each virtual router
//! (through its [`FaultHandle`]) when its signals fail or recover.
//!
//! What a router tracks follows its VIPs' method (one per slot and family, validated):
//! `vrrp` nothing, `link` the link of its interface, `gateway` the gateway check of its
//! family on its interface, `link-and-gateway` both.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use thiserror::Error;
use tracing::{info, warn};

use super::hook::CarrierHook;
use super::link::{self, LinkError, LinkSnapshot, Mechanism};
use super::probe::{self, ProbeError, ProbeResult, ProbeSpec};
use super::tracker::{Board, Damping, Health, LinkNode, LinkTree, RouterId, SignalId};
use crate::config::{Family as CfgFamily, InterfaceKind, NodeView, SlotName};
use crate::vrrp::packet::Family;
use crate::vrrp::{Driver, FaultHandle};

/// One virtual router: interface, slot, address family.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RouterKey {
    /// The interface as the file names it (`name`, or `namespace/name`).
    pub iface: String,
    pub slot: SlotName,
    pub family: Family,
}

/// One signal for `tr7 status` and `/metrics`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SignalStatus {
    /// `link br0`, `gateway eth0 IPv4`.
    pub name: String,
    pub state: Health,
    /// How it is watched: `netlink-events+poll-10ms`, `arp every 20ms`, ...
    pub mechanism: String,
    /// Wall-clock time of the last change, milliseconds since the Unix epoch (`None`: never).
    pub last_change_unix_ms: Option<u64>,
    /// Why it is down, or `up`.
    pub detail: String,
    /// State changes since the agent started.
    pub transitions: u64,
}

#[derive(Debug, Error)]
pub enum SignalError {
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error("cannot spawn the signal monitor thread: {0}")]
    Thread(std::io::Error),
    #[error(
        "interface `{iface}`: cannot connect the virtual router to the signal monitor: {source}"
    )]
    Bind {
        iface: String,
        source: std::io::Error,
    },
}

struct LinkWatch {
    netns: Option<String>,
    root: String,
    tree: LinkTree,
    signal: SignalId,
}

/// What this node tracks, before anything runs.
pub struct Plan {
    board: Board,
    links: Vec<LinkWatch>,
    probes: Vec<(ProbeSpec, SignalId)>,
    routers: Vec<(RouterKey, RouterId)>,
    poll: Duration,
    mechanism: Mechanism,
}

impl Plan {
    /// Whether any router tracks anything (the monitor is started only then).
    pub fn is_empty(&self) -> bool {
        self.links.is_empty() && self.probes.is_empty()
    }

    /// Every router with the names of the signals it tracks, in file order.
    pub fn routers(&self) -> Vec<(RouterKey, Vec<String>)> {
        self.routers
            .iter()
            .map(|(k, r)| {
                let names = self
                    .board
                    .signals_of(*r)
                    .iter()
                    .map(|s| self.board.name(*s).to_owned())
                    .collect();
                (k.clone(), names)
            })
            .collect()
    }

    /// The probes: signal name and what it sends.
    pub fn probes(&self) -> Vec<(String, ProbeSpec)> {
        self.probes
            .iter()
            .map(|(spec, s)| (self.board.name(*s).to_owned(), spec.clone()))
            .collect()
    }
}

/// The signals of `view`; `resolve` maps the file's namespace to the `ip netns` name.
pub fn plan(
    view: &NodeView,
    resolve: impl Fn(Option<&str>) -> Option<String>,
    poll: Duration,
) -> Plan {
    let mechanism = link::probe_mechanism(poll);
    let mut board = Board::new();
    let mut links: Vec<LinkWatch> = Vec::new();
    let mut probes: Vec<(ProbeSpec, SignalId)> = Vec::new();
    let mut routers = Vec::new();
    for iface in &view.interfaces {
        for slot in &iface.slots {
            for (cfg_family, family) in
                [(CfgFamily::Ipv4, Family::V4), (CfgFamily::Ipv6, Family::V6)]
            {
                let Some(method) = slot
                    .vips
                    .iter()
                    .find(|v| CfgFamily::of(v.address) == cfg_family)
                    .map(|v| v.method)
                else {
                    continue;
                };
                let mut signals = Vec::new();
                if method.watches_link() {
                    let name = format!("link {}", iface.id);
                    let existing = links
                        .iter()
                        .find(|l| board.name(l.signal) == name)
                        .map(|l| l.signal);
                    let id = existing.unwrap_or_else(|| {
                        let id = board.add_level(&name, &mechanism.name, Damping::default());
                        links.push(LinkWatch {
                            netns: resolve(iface.id.namespace.as_deref()),
                            root: iface.id.name.clone(),
                            tree: tree_of(view, iface.id.namespace.as_deref()),
                            signal: id,
                        });
                        id
                    });
                    signals.push(id);
                }
                if method.needs_gateway()
                    && let Some(check) = iface.gateway.get(cfg_family)
                {
                    let name = format!("gateway {} {cfg_family}", iface.id);
                    let existing = probes
                        .iter()
                        .find(|(_, s)| board.name(*s) == name)
                        .map(|(_, s)| *s);
                    let id = existing.unwrap_or_else(|| {
                        let mech = format!(
                            "{} to {} every {:?}, timeout {:?}, rise {}, fall {}",
                            check.method,
                            check.target,
                            check.interval,
                            check.timeout,
                            check.rise,
                            check.fall
                        );
                        let id = board.add_probe(
                            &name,
                            mech,
                            check.rise,
                            check.fall,
                            Damping::default(),
                        );
                        let source_v4 = iface.addresses.iter().find_map(|c| match c.addr {
                            IpAddr::V4(a) if c.contains(check.target) => Some(a),
                            _ => None,
                        });
                        probes.push((
                            ProbeSpec {
                                netns: resolve(iface.id.namespace.as_deref()),
                                iface: iface.id.name.clone(),
                                target: check.target,
                                method: check.method,
                                interval: check.interval,
                                timeout: check.timeout,
                                source_v4: source_v4.or_else(|| {
                                    iface.addresses.iter().find_map(|c| match c.addr {
                                        IpAddr::V4(a) => Some(a),
                                        IpAddr::V6(_) => None,
                                    })
                                }),
                            },
                            id,
                        ));
                        id
                    });
                    signals.push(id);
                }
                let key = RouterKey {
                    iface: iface.id.to_string(),
                    slot: slot.name,
                    family,
                };
                routers.push((key, board.add_router(signals)));
            }
        }
    }
    Plan {
        board,
        links,
        probes,
        routers,
        poll,
        mechanism,
    }
}

/// How the interfaces of one namespace combine (see [`LinkNode`]).
fn tree_of(view: &NodeView, ns: Option<&str>) -> LinkTree {
    let nodes = view
        .interfaces
        .iter()
        .filter(|i| i.id.namespace.as_deref() == ns)
        .map(|i| {
            let node = match &i.kind {
                InterfaceKind::Vlan { parent, .. } => LinkNode::Vlan {
                    parent: parent.clone(),
                },
                InterfaceKind::Bond { members, .. } => LinkNode::Bond {
                    members: members.clone(),
                },
                InterfaceKind::Lacp {
                    members, min_links, ..
                } => LinkNode::Lacp {
                    members: members.clone(),
                    min_links: *min_links,
                },
                InterfaceKind::Bridge { members, .. } => LinkNode::Bridge {
                    ports: members.clone(),
                },
                InterfaceKind::Ethernet
                | InterfaceKind::Veth { .. }
                | InterfaceKind::VethPeer { .. } => LinkNode::Plain,
            };
            (i.id.name.clone(), node)
        })
        .collect();
    LinkTree { nodes }
}

enum Event {
    Link(LinkSnapshot),
    Probe(usize, ProbeResult),
}

struct Shared {
    handles: Vec<Option<(RouterKey, FaultHandle)>>,
    faulted: Vec<bool>,
    status: Vec<SignalStatus>,
}

/// The running monitor. Dropping it stops every thread.
pub struct Monitor {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    shared: Arc<Mutex<Shared>>,
    routers: Vec<(RouterKey, RouterId)>,
    /// By router id: whether it tracks any signal.
    tracked: Vec<bool>,
    /// By router id: the signals it tracks (indexes into the status list).
    signals_of: Vec<Vec<SignalId>>,
    /// The carrier mechanism chosen at start (`None`: no link tracked, nothing probed).
    carrier: Option<Mechanism>,
    /// The eBPF carrier hook, when it runs; detached when the monitor is dropped.
    hook: Option<CarrierHook>,
}

impl Monitor {
    /// Starts the watchers, the probes and the board thread. Routers start faulted until
    /// their signals are seen up; bind each router's driver with [`Monitor::bind`].
    pub fn start(plan: Plan) -> Result<Self, SignalError> {
        let Plan {
            mut board,
            links,
            probes,
            routers,
            poll,
            mechanism,
        } = plan;
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let mut threads = Vec::new();
        // The kernel is probed (the hook loaded) only when a link is tracked.
        let _ = mechanism;
        let (carrier, hook) = if links.is_empty() {
            (None, None)
        } else {
            let (mechanism, hook) = link::choose(poll);
            info!(mechanism = %mechanism.name, why = %mechanism.why, "carrier mechanism chosen");
            for l in &links {
                board.set_mechanism(l.signal, &mechanism.name);
            }
            (Some(mechanism), hook)
        };
        // One watcher per namespace, for the interfaces its links depend on.
        let mut namespaces: BTreeMap<Option<String>, Vec<String>> = BTreeMap::new();
        for l in &links {
            let names = namespaces.entry(l.netns.clone()).or_default();
            names.extend(l.tree.closure(&l.root));
            names.sort();
            names.dedup();
        }
        for (ns, names) in namespaces {
            let t = tx.clone();
            let wake = match hook.as_ref().map(CarrierHook::subscribe) {
                Some(Err(error)) => {
                    warn!(netns = ?ns, %error, "cannot subscribe to the carrier hook: this namespace relies on netlink events and the poll");
                    None
                }
                Some(Ok(w)) => Some(w),
                None => None,
            };
            threads.push(link::spawn_with(
                ns,
                names,
                poll,
                wake,
                move |s| t.send(Event::Link(s)).is_ok(),
                stop.clone(),
            )?);
        }
        for (key, (spec, id)) in probes.iter().enumerate() {
            let t = tx.clone();
            info!(signal = board.name(*id), iface = %spec.iface, target = %spec.target,
                method = %spec.method, interval = ?spec.interval, timeout = ?spec.timeout,
                "gateway probe started");
            threads.push(probe::spawn(
                spec.clone(),
                key,
                move |k, r| t.send(Event::Probe(k, r)).is_ok(),
                stop.clone(),
            )?);
        }
        drop(tx);
        let n_signals = board.snapshot(Instant::now()).len();
        let shared = Arc::new(Mutex::new(Shared {
            handles: (0..routers.len()).map(|_| None).collect(),
            faulted: routers.iter().map(|(_, r)| board.faulted(*r)).collect(),
            status: Vec::with_capacity(n_signals),
        }));
        let probe_ids: Vec<SignalId> = probes.iter().map(|(_, s)| *s).collect();
        let tracked = (0..routers.len())
            .map(|r| board.tracks(RouterId(r)))
            .collect();
        let signals_of = (0..routers.len())
            .map(|r| board.signals_of(RouterId(r)).to_vec())
            .collect();
        let runner = Runner {
            board,
            links,
            probe_ids,
            rx,
            stop: stop.clone(),
            shared: shared.clone(),
            routers: routers.clone(),
        };
        threads.push(
            std::thread::Builder::new()
                .name("signals".into())
                .spawn(move || runner.run())
                .map_err(SignalError::Thread)?,
        );
        Ok(Self {
            stop,
            threads,
            shared,
            routers,
            tracked,
            signals_of,
            carrier,
            hook,
        })
    }

    /// The carrier mechanism chosen at start and why (`None` when no link is tracked).
    pub fn carrier_mechanism(&self) -> Option<&Mechanism> {
        self.carrier.as_ref()
    }

    /// The eBPF carrier hook, when it was chosen (diagnostics and tests).
    pub fn carrier_hook(&self) -> Option<&CarrierHook> {
        self.hook.as_ref()
    }

    /// Connects the router `key` to its driver and tells it the current verdict. A key
    /// without tracked signals (`vrrp` method) is left alone.
    pub fn bind(&self, key: &RouterKey, driver: &Driver) -> Result<(), SignalError> {
        let Some(i) = self
            .routers
            .iter()
            .position(|(k, r)| k == key && self.tracked[r.0])
        else {
            return Ok(());
        };
        let handle = driver.fault_handle().map_err(|source| SignalError::Bind {
            iface: key.iface.clone(),
            source,
        })?;
        let mut shared = lock(&self.shared);
        if shared.faulted[i] {
            handle.set_fault(true, "signals not yet observed");
        }
        shared.handles[i] = Some((key.clone(), handle));
        Ok(())
    }

    /// Every signal's state, mechanism and last change.
    pub fn status(&self) -> Vec<SignalStatus> {
        lock(&self.shared).status.clone()
    }

    /// The signals of one virtual router (empty for the `vrrp` method): what `tr7 status`
    /// shows per router.
    pub fn router_status(&self, key: &RouterKey) -> Vec<SignalStatus> {
        let Some(i) = self.routers.iter().position(|(k, _)| k == key) else {
            return Vec::new();
        };
        let shared = lock(&self.shared);
        self.signals_of[i]
            .iter()
            .filter_map(|s| shared.status.get(s.0).cloned())
            .collect()
    }

    /// Stops every thread (within one poll or probe interval, at most 50 ms for long ones).
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            if t.join().is_err() {
                warn!("a signal thread panicked");
            }
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.halt();
    }
}

fn lock(m: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Runner {
    board: Board,
    links: Vec<LinkWatch>,
    probe_ids: Vec<SignalId>,
    rx: mpsc::Receiver<Event>,
    stop: Arc<AtomicBool>,
    shared: Arc<Mutex<Shared>>,
    routers: Vec<(RouterKey, RouterId)>,
}

impl Runner {
    fn run(mut self) {
        let mut health: Vec<Health> = self
            .board
            .snapshot(Instant::now())
            .iter()
            .map(|s| s.state)
            .collect();
        let mut source: BTreeMap<usize, &'static str> = BTreeMap::new();
        while !self.stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            let wait = self
                .board
                .poll_timeout()
                .map_or(Duration::from_millis(100), |t| {
                    t.saturating_duration_since(now)
                })
                .min(Duration::from_millis(100));
            match self.rx.recv_timeout(wait) {
                Ok(Event::Link(snap)) => {
                    for l in &self.links {
                        if l.netns == snap.netns {
                            let level = l
                                .tree
                                .evaluate(&l.root, &snap.links)
                                .map_err(|f| f.to_string());
                            source.insert(l.signal.0, snap.source);
                            self.board.set(snap.at, l.signal, level);
                        }
                    }
                }
                Ok(Event::Probe(k, r)) => {
                    if let Some(id) = self.probe_ids.get(k) {
                        source.insert(id.0, "probe");
                        self.board.probe(Instant::now(), *id, r.ok, r.detail);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            self.board.handle_timeout(Instant::now());
            self.publish(&mut health, &source);
        }
    }

    fn publish(&mut self, health: &mut [Health], source: &BTreeMap<usize, &'static str>) {
        let now = Instant::now();
        let snap = self.board.snapshot(now);
        for (i, s) in snap.iter().enumerate() {
            if health[i] != s.state {
                info!(signal = %s.name, from = %health[i], to = %s.state,
                    seen_by = source.get(&i).copied().unwrap_or("timer"),
                    mechanism = %s.mechanism, detail = %s.detail, "signal changed");
                health[i] = s.state;
            }
        }
        let wall = SystemTime::now();
        let mut shared = lock(&self.shared);
        while let Some(c) = self.board.poll_change() {
            let Some(i) = self.routers.iter().position(|(_, r)| *r == c.router) else {
                continue;
            };
            let key = &self.routers[i].0;
            shared.faulted[i] = c.faulted;
            if c.faulted {
                info!(iface = %key.iface, slot = key.slot.as_str(), family = %key.family,
                    signal = %c.signal, detail = %c.detail,
                    "tracked signal failed: the virtual router gives up and does not preempt");
            } else {
                info!(iface = %key.iface, slot = key.slot.as_str(), family = %key.family,
                    signal = %c.signal,
                    "tracked signals recovered: normal preemption applies");
            }
            if let Some((_, h)) = &shared.handles[i] {
                h.set_fault(c.faulted, &c.signal);
            }
        }
        shared.status = snap
            .into_iter()
            .map(|s| SignalStatus {
                last_change_unix_ms: s.since_change.and_then(|d| {
                    let at = wall.checked_sub(d)?;
                    Some(at.duration_since(UNIX_EPOCH).ok()?.as_millis() as u64)
                }),
                name: s.name,
                state: s.state,
                mechanism: s.mechanism,
                detail: s.detail,
                transitions: s.transitions,
            })
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
name: t
nodes: [{name: a}, {name: b}]
interfaces:
  - {name: eth0, type: ethernet}
  - {name: eth1, type: ethernet}
  - name: bond0
    type: bond
    members: [eth0, eth1]
  - name: bond0.7
    type: vlan
    parent: bond0
    id: 7
    addresses: {a: [192.0.2.2/24, 2001:db8::2/64], b: [192.0.2.3/24, 2001:db8::3/64]}
    gateway:
      ipv4: {target: 192.0.2.1}
      ipv6: {target: 2001:db8::1, method: icmp, interval: 10ms, timeout: 5ms}
    vips:
      master: [{address: 192.0.2.10, method: link-and-gateway}, {address: 2001:db8::10, method: gateway}]
      backup: [{address: 192.0.2.20}, {address: 2001:db8::20, method: link}]
";

    // Proves what each method tracks: link-and-gateway both the link and its family's
    // gateway, gateway only the gateway of the VIP's family, link only the link, vrrp
    // nothing; one signal per link and per gateway check however many routers share it;
    // the link is evaluated through the VLAN's parent bond and its members; the ARP probe
    // sends from this node's address in the gateway's subnet.
    #[test]
    fn plan_follows_the_methods() {
        let cluster = crate::config::parse(FILE, "t.yaml").expect("valid file");
        let view = cluster.node_view("a").unwrap();
        let plan = plan(&view, |_| Some("ns-a".into()), Duration::from_millis(10));
        let key = |slot, family| RouterKey {
            iface: "bond0.7".into(),
            slot,
            family,
        };
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            plan.routers(),
            vec![
                (
                    key(SlotName::Master, Family::V4),
                    s(&["link bond0.7", "gateway bond0.7 IPv4"])
                ),
                (
                    key(SlotName::Master, Family::V6),
                    s(&["gateway bond0.7 IPv6"])
                ),
                (key(SlotName::Backup, Family::V4), s(&[])),
                (key(SlotName::Backup, Family::V6), s(&["link bond0.7"])),
            ]
        );
        assert_eq!(plan.links.len(), 1);
        let l = &plan.links[0];
        assert_eq!(
            (l.netns.as_deref(), l.root.as_str()),
            (Some("ns-a"), "bond0.7")
        );
        assert_eq!(
            l.tree.closure("bond0.7"),
            s(&["bond0.7", "bond0", "eth0", "eth1"])
        );
        let probes = plan.probes();
        assert_eq!(probes.len(), 2);
        assert_eq!(probes[0].1.method, crate::config::ProbeMethod::Arp);
        assert_eq!(probes[0].1.source_v4, Some("192.0.2.2".parse().unwrap()));
        assert_eq!(probes[1].1.method, crate::config::ProbeMethod::Icmp);
        assert_eq!(probes[1].1.interval, Duration::from_millis(10));
        assert!(!plan.is_empty());
    }
}
