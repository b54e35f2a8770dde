//! What `tr7 status` shows and `/metrics` exports: one serde value, [`StatusReport`], built
//! in two steps so the agent's main loop stays narrow.
//!
//! 1. The main loop owns the virtual routers. Asked for a snapshot, it turns each
//!    `(iface, slot, family, Driver)` into a [`RouterStatus`] with [`Catalog::router`]:
//!    protocol state, priorities, the master it hears, counters, and the VIPs with their
//!    zones. It reads no map and does no I/O, so answering costs microseconds.
//! 2. The task that asked ([`super::control`], [`super::metrics`]) adds what the data plane
//!    says ([`StatusReport::read_dataplane`]): whether each VIP is owned in the pinned map,
//!    its traffic counters, and the liveness fence.
//!
//! The report is meant to grow: fields are added, never renamed or removed without
//! bumping [`FORMAT_VERSION`]. The link and gateway trackers (docs/signals.md) fill
//! [`RouterStatus::signals`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tr7_common::VipCounters;

use super::heartbeat::monotonic_ns;
use crate::config::{NodeInterface, SlotName};
use crate::dataplane::{Maps, VipScope};
use crate::vrrp::packet::Family;
use crate::vrrp::{Driver, State, Status};

/// Bumped when a field changes meaning or goes away; adding fields does not bump it.
pub const FORMAT_VERSION: u32 = 1;

/// Everything `tr7 status` shows, as the agent sends it over the control socket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    pub format_version: u32,
    /// The cluster's name in the file.
    pub cluster: String,
    /// This node's name.
    pub node: String,
    pub pid: u32,
    pub started_unix_ms: u64,
    /// When the agent took this snapshot.
    pub generated_unix_ms: u64,
    pub dataplane: DataplaneStatus,
    /// One per (interface, slot, address family), in the file's order.
    pub routers: Vec<RouterStatus>,
}

/// The data plane as this node's pinned maps show it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DataplaneStatus {
    pub pin_dir: String,
    /// Why the maps could not be read; the VIPs' `owned` are then unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The liveness fence (0: disabled).
    pub fence_ms: f64,
    /// Age of the agent's last heartbeat.
    pub heartbeat_age_ms: Option<f64>,
    /// The heartbeat is older than the fence: the programs claim no VIP at all.
    pub fenced: bool,
}

/// One virtual router: one VRRP state machine on one interface for one slot and family.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RouterStatus {
    pub iface: String,
    /// The `ip netns` name of the interface's namespace; absent: the agent's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
    /// `master` or `backup`: which VIP list of the interface this router carries.
    pub slot: String,
    pub family: AddressFamily,
    pub vrid: u8,
    /// The data-plane scope of the interface's VIPs (`tr7 dataplane show`).
    pub scope: u32,
    pub state: RouterState,
    pub since_unix_ms: u64,
    /// The driver thread has ended (only seen while the agent stops).
    #[serde(default)]
    pub stopped: bool,
    /// The priority of the file (or as changed at run time).
    pub priority: u8,
    /// The priority advertised and compared with: lower while a tracked signal is down.
    pub effective_priority: u8,
    pub faulted: bool,
    /// Our advert interval.
    pub advert_interval_ms: u32,
    /// Master_Adver_Interval: ours in master, the master's in backup.
    pub master_advert_interval_ms: u32,
    /// The address our adverts come from.
    pub source: IpAddr,
    /// `unicast` to `destinations` (the peers), or `multicast` to the group.
    pub transport: Transport,
    pub destinations: Vec<IpAddr>,
    /// The RFC 9568 7.3 virtual MAC the VIPs speak with (`virtual_mac: true`); absent:
    /// the interface MAC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_mac: Option<String>,
    /// The master this router hears (a backup's current master); absent while master,
    /// stopped, or after a priority 0 until the next advert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<MasterSeen>,
    pub vips: Vec<VipStatus>,
    pub counters: RouterCounters,
    /// The link and gateway signals this router's VIPs fail over on, with their state
    /// (docs/signals.md); empty for the `vrrp` method.
    #[serde(default)]
    pub signals: Vec<SignalStatus>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AddressFamily {
    Ipv4,
    Ipv6,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouterState {
    Initialize,
    Backup,
    Master,
}

impl RouterState {
    pub const ALL: [RouterState; 3] = [
        RouterState::Initialize,
        RouterState::Backup,
        RouterState::Master,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RouterState::Initialize => "initialize",
            RouterState::Backup => "backup",
            RouterState::Master => "master",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Unicast,
    Multicast,
}

/// The master a backup follows, from its last advert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasterSeen {
    pub address: IpAddr,
    pub priority: u8,
}

/// One VIP of a router.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VipStatus {
    pub address: IpAddr,
    /// The file's zone label (`default` unless set).
    pub zone: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Whether this node's ownership map says it answers for the VIP; absent when the
    /// map could not be read or has no entry for it. The fence can still withdraw an
    /// owned VIP ([`DataplaneStatus::fenced`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owned: Option<bool>,
    pub owner: Owner,
    /// The data plane's counters of the VIP; absent when the map could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<VipTraffic>,
}

/// Who answers for a VIP, as far as this node knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Owner {
    /// This node: its map says owned and the fence has not withdrawn it.
    ThisNode,
    /// The master this router hears.
    Peer { address: IpAddr },
    /// Nobody this node knows of (no master heard, or this node is fenced).
    Unknown,
}

/// A VIP's data-plane counters (summed over CPUs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VipTraffic {
    /// Ingress to the VIP passed (owned).
    pub passed_packets: u64,
    pub passed_bytes: u64,
    /// Ingress to the VIP dropped (not owned, or fenced).
    pub dropped_packets: u64,
    pub dropped_bytes: u64,
    /// Egress frames speaking for the VIP that the guard dropped.
    pub guarded_packets: u64,
    pub guarded_bytes: u64,
}

impl From<VipCounters> for VipTraffic {
    fn from(c: VipCounters) -> Self {
        Self {
            passed_packets: c.rx_passed_packets,
            passed_bytes: c.rx_passed_bytes,
            dropped_packets: c.rx_dropped_packets,
            dropped_bytes: c.rx_dropped_bytes,
            guarded_packets: c.tx_guarded_packets,
            guarded_bytes: c.tx_guarded_bytes,
        }
    }
}

/// A router's VRRP counters since its driver started.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterCounters {
    pub adverts_sent: u64,
    pub adverts_received: u64,
    pub priority_zero_sent: u64,
    pub priority_zero_received: u64,
    pub became_master: u64,
    pub became_backup: u64,
    pub became_initialize: u64,
    pub announces: u64,
    pub address_list_mismatch: u64,
    pub lower_priority_discarded: u64,
    /// Packets read from the socket, before any check.
    pub packets_received: u64,
    /// Adverts put on the wire, one per destination.
    pub packets_sent: u64,
    pub send_errors: u64,
    pub recv_errors: u64,
    /// Drops by stage (`ip`: IP header checks, `decode`: the advert itself, `vrrp`: the
    /// state machine's filters) and then by reason.
    pub dropped: BTreeMap<String, BTreeMap<String, u64>>,
}

impl RouterCounters {
    /// Transitions into any state.
    pub fn transitions(&self) -> u64 {
        self.became_master + self.became_backup + self.became_initialize
    }

    fn from_status(s: &Status) -> Self {
        let v = &s.vrrp;
        let d = &v.dropped;
        let stage = |pairs: &[(&str, u64)]| -> BTreeMap<String, u64> {
            pairs
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(r, n)| ((*r).to_owned(), *n))
                .collect()
        };
        let owned = |m: &BTreeMap<&'static str, u64>| -> BTreeMap<String, u64> {
            m.iter().map(|(r, n)| ((*r).to_owned(), *n)).collect()
        };
        let mut dropped = BTreeMap::new();
        dropped.insert("ip".to_owned(), owned(&s.io.ip_check_dropped));
        dropped.insert("decode".to_owned(), owned(&s.io.decode_dropped));
        dropped.insert(
            "vrrp".to_owned(),
            stage(&[
                ("not_running", d.not_running),
                ("vrid_mismatch", d.vrid_mismatch),
                ("family_mismatch", d.family_mismatch),
                ("own_advert", d.own_advert),
                ("not_unicast_peer", d.not_unicast_peer),
            ]),
        );
        dropped.retain(|_, reasons| !reasons.is_empty());
        Self {
            adverts_sent: v.adverts_sent,
            adverts_received: v.adverts_received,
            priority_zero_sent: v.priority_zero_sent,
            priority_zero_received: v.priority_zero_received,
            became_master: v.became_master,
            became_backup: v.became_backup,
            became_initialize: v.became_initialize,
            announces: v.announces,
            address_list_mismatch: v.address_list_mismatch,
            lower_priority_discarded: v.lower_priority_discarded,
            packets_received: s.io.packets_received,
            packets_sent: s.io.packets_sent,
            send_errors: s.io.send_errors,
            recv_errors: s.io.recv_errors,
            dropped,
        }
    }
}

/// One failover signal of a router (link carrier, gateway reachability).
///
/// The link and gateway trackers fill [`RouterStatus::signals`] with these.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalStatus {
    /// What is watched, e.g. `link eth0` or `gateway 192.0.2.1`.
    pub name: String,
    pub state: SignalState,
    /// How it is watched, e.g. `netlink`, `arp`, `ndp`.
    pub mechanism: String,
    /// When `state` last changed (0: never since the agent started).
    pub since_unix_ms: u64,
    /// Why it is down, or `up`.
    #[serde(default)]
    pub detail: String,
    /// State changes since the agent started.
    #[serde(default)]
    pub transitions: u64,
}

impl From<crate::signals::SignalStatus> for SignalStatus {
    fn from(s: crate::signals::SignalStatus) -> Self {
        use crate::signals::Health;
        Self {
            name: s.name,
            state: match s.state {
                Health::Up => SignalState::Up,
                Health::Down => SignalState::Down,
                Health::Unknown => SignalState::Unknown,
            },
            mechanism: s.mechanism,
            since_unix_ms: s.last_change_unix_ms.unwrap_or(0),
            detail: s.detail,
            transitions: s.transitions,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignalState {
    Up,
    Down,
    Unknown,
}

/// What the main loop needs to describe its routers beyond what a [`Driver`] knows: the
/// data-plane scope and the VIPs' zones, per interface. Built once from the interfaces
/// that carry VIPs (rebuild it with them on reload).
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    /// By (`ip netns` name of the interface's namespace, interface name): a tenant
    /// namespace may have an `eth0` of its own.
    ifaces: BTreeMap<(Option<String>, String), CatalogIface>,
}

#[derive(Clone, Debug)]
struct CatalogIface {
    place: VipScope,
    /// VIP address → (zone, service).
    vips: BTreeMap<IpAddr, (String, Option<String>)>,
}

impl Catalog {
    /// From each VIP interface, the `ip netns` name its driver runs in (`None`: the
    /// agent's own), and its data-plane place.
    pub fn new<'a>(
        ifaces: impl IntoIterator<Item = (&'a NodeInterface, Option<String>, VipScope)>,
    ) -> Self {
        let ifaces = ifaces
            .into_iter()
            .map(|(iface, netns, place)| {
                let vips = iface
                    .slots
                    .iter()
                    .flat_map(|s| &s.vips)
                    .map(|v| (v.address, (v.zone.clone(), v.service.clone())))
                    .collect();
                ((netns, iface.id.name.clone()), CatalogIface { place, vips })
            })
            .collect();
        Self { ifaces }
    }

    /// The status of one router, without the data plane's view (see the module docs).
    pub fn router(&self, iface: &str, slot: SlotName, driver: &Driver) -> RouterStatus {
        let config = driver.config();
        let info = self.ifaces.get(&(config.netns.clone(), iface.to_owned()));
        let status = driver.status();
        let vips = config
            .vrrp
            .addresses
            .iter()
            .map(|&address| {
                let (zone, service) = info
                    .and_then(|i| i.vips.get(&address).cloned())
                    .unwrap_or_else(|| ("default".to_owned(), None));
                VipStatus {
                    address,
                    zone,
                    service,
                    owned: None,
                    owner: Owner::Unknown,
                    traffic: None,
                }
            })
            .collect();
        let family = config.vrrp.family();
        let (transport, destinations) = if config.vrrp.unicast_peers.is_empty() {
            (Transport::Multicast, vec![family.multicast_group()])
        } else {
            (Transport::Unicast, config.vrrp.unicast_peers.clone())
        };
        RouterStatus {
            // Filled by the agent, which knows the router's spec.
            virtual_mac: None,
            iface: iface.to_owned(),
            netns: config.netns.clone(),
            slot: slot.as_str().to_owned(),
            family: match family {
                Family::V4 => AddressFamily::Ipv4,
                Family::V6 => AddressFamily::Ipv6,
            },
            vrid: config.vrrp.vrid,
            scope: info.map_or(0, |i| i.place.scope),
            state: match status.state {
                State::Initialize => RouterState::Initialize,
                State::Backup => RouterState::Backup,
                State::Master => RouterState::Master,
            },
            since_unix_ms: unix_ms(status.state_since_wall),
            stopped: status.stopped,
            priority: status.priority,
            effective_priority: status.effective_priority,
            faulted: status.faulted,
            advert_interval_ms: u32::from(config.vrrp.advert_interval_cs) * 10,
            master_advert_interval_ms: u32::from(status.master_adver_interval_cs) * 10,
            source: config.vrrp.primary_address,
            transport,
            destinations,
            master: status
                .master
                .map(|(address, priority)| MasterSeen { address, priority }),
            vips,
            counters: RouterCounters::from_status(&status),
            signals: Vec::new(),
        }
    }
}

/// How the main loop is asked for its routers: it answers each request on this channel
/// with [`Catalog::router`] of every router it runs.
pub type SnapshotReply = oneshot::Sender<Vec<RouterStatus>>;

/// How long a status request waits for the main loop.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(2);

/// Builds reports for the control socket and `/metrics`: asks the main loop for its
/// routers, then reads the data plane itself (its own map handles, opened per request,
/// so the main loop never waits on a map read for a client).
#[derive(Clone, Debug)]
pub struct Reporter {
    pub cluster: String,
    pub node: String,
    pub started: SystemTime,
    pub pin_dir: PathBuf,
    pub requests: mpsc::Sender<SnapshotReply>,
}

impl Reporter {
    /// A fresh report, or why there is none (the agent is stopping or stuck).
    pub async fn report(&self) -> Result<StatusReport, String> {
        self.report_and_maps().await.map(|(r, _)| r)
    }

    /// A fresh report and the map handles it was read with (`None` when they could not
    /// be opened: the report says why).
    pub async fn report_and_maps(&self) -> Result<(StatusReport, Option<Maps>), String> {
        let (tx, rx) = oneshot::channel();
        let ask = async {
            self.requests
                .send(tx)
                .await
                .map_err(|_| "the agent is stopping".to_owned())?;
            rx.await.map_err(|_| "the agent is stopping".to_owned())
        };
        let routers = tokio::time::timeout(SNAPSHOT_TIMEOUT, ask)
            .await
            .map_err(|_| {
                format!("the agent's main loop did not answer within {SNAPSHOT_TIMEOUT:?}")
            })??;
        let mut report = StatusReport::new(
            &self.cluster,
            &self.node,
            self.started,
            &self.pin_dir,
            routers,
        );
        let maps = Maps::open(&self.pin_dir).map_err(|e| crate::agent::chain(&e));
        report.read_dataplane(maps.as_ref().map_err(Clone::clone), monotonic_ns());
        Ok((report, maps.ok()))
    }
}

/// Milliseconds since the Unix epoch (0 before it).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl StatusReport {
    /// A report of `routers` (from [`Catalog::router`]), without the data plane's view.
    pub fn new(
        cluster: &str,
        node: &str,
        started: SystemTime,
        pin_dir: &std::path::Path,
        routers: Vec<RouterStatus>,
    ) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            cluster: cluster.to_owned(),
            node: node.to_owned(),
            pid: std::process::id(),
            started_unix_ms: unix_ms(started),
            generated_unix_ms: unix_ms(SystemTime::now()),
            dataplane: DataplaneStatus {
                pin_dir: pin_dir.display().to_string(),
                ..DataplaneStatus::default()
            },
            routers,
        }
    }

    /// Adds the data plane's view: ownership and counters of each VIP from the map, the
    /// fence, and from those the owner of each VIP. `now_ns` is `CLOCK_MONOTONIC`, the
    /// heartbeat's clock. A map that cannot be read is reported, not fatal.
    pub fn read_dataplane(&mut self, maps: Result<&Maps, String>, now_ns: u64) {
        let read = maps.and_then(|m| {
            let fence = m.fence().map_err(|e| crate::agent::chain(&e))?;
            let vips = m.vips().map_err(|e| crate::agent::chain(&e))?;
            Ok((fence, vips))
        });
        let (fence, entries) = match read {
            Ok(r) => r,
            Err(error) => {
                self.dataplane.error = Some(error);
                self.fill_owners();
                return;
            }
        };
        self.dataplane.fence_ms = fence.interval_ns as f64 / 1e6;
        if fence.heartbeat_ns != 0 {
            let age = now_ns.saturating_sub(fence.heartbeat_ns);
            self.dataplane.heartbeat_age_ms = Some(age as f64 / 1e6);
            self.dataplane.fenced = fence.interval_ns != 0 && age > fence.interval_ns;
        }
        let by_key: BTreeMap<(u32, IpAddr), _> = entries
            .iter()
            .map(|e| ((e.place.scope, e.addr), e))
            .collect();
        for router in &mut self.routers {
            for vip in &mut router.vips {
                if let Some(e) = by_key.get(&(router.scope, vip.address)) {
                    vip.owned = Some(e.owned);
                    vip.traffic = Some(e.counters.into());
                }
            }
        }
        self.fill_owners();
    }

    fn fill_owners(&mut self) {
        let fenced = self.dataplane.fenced;
        for router in &mut self.routers {
            for vip in &mut router.vips {
                vip.owner = match (vip.owned, router.master) {
                    (Some(true), _) if !fenced => Owner::ThisNode,
                    (_, Some(m)) if router.state == RouterState::Backup => {
                        Owner::Peer { address: m.address }
                    }
                    _ => Owner::Unknown,
                };
            }
        }
    }

    /// The report for a person: one block per router.
    pub fn render_human(&self) -> String {
        let mut out = String::new();
        let now = self.generated_unix_ms;
        let _ = writeln!(
            out,
            "node {} (cluster {}), agent pid {}, up {}",
            self.node,
            self.cluster,
            self.pid,
            age(self.started_unix_ms, now)
        );
        let dp = &self.dataplane;
        match &dp.error {
            Some(e) => {
                let _ = writeln!(out, "data plane ({}): cannot read: {e}", dp.pin_dir);
            }
            None => {
                let heartbeat = dp
                    .heartbeat_age_ms
                    .map_or("never".to_owned(), |a| format!("{a:.0} ms ago"));
                let verdict = if dp.fenced {
                    "FENCED: the data plane claims no VIP"
                } else {
                    "claims the VIPs marked owned"
                };
                let _ = writeln!(
                    out,
                    "data plane ({}): heartbeat {heartbeat}, fence {:.1} ms, {verdict}",
                    dp.pin_dir, dp.fence_ms
                );
            }
        }
        if self.routers.is_empty() {
            let _ = writeln!(out, "\nno virtual routers (no VIPs for this node)");
        }
        for r in &self.routers {
            render_router(&mut out, r, now);
        }
        out
    }
}

fn render_router(out: &mut String, r: &RouterStatus, now: u64) {
    let family = match r.family {
        AddressFamily::Ipv4 => "IPv4",
        AddressFamily::Ipv6 => "IPv6",
    };
    let netns = r
        .netns
        .as_deref()
        .map_or(String::new(), |n| format!(" (netns {n})"));
    let _ = writeln!(
        out,
        "\n{}{netns} slot {} {family} VRID {}: {} since {} ({} ago){}",
        r.iface,
        r.slot,
        r.vrid,
        r.state.as_str().to_uppercase(),
        utc(r.since_unix_ms),
        age(r.since_unix_ms, now),
        if r.stopped { ", stopped" } else { "" }
    );
    let fault = if r.faulted { ", FAULTED" } else { "" };
    let _ = writeln!(
        out,
        "  priority {} (effective {}{fault}), advert interval {} ms (master's {} ms)",
        r.priority, r.effective_priority, r.advert_interval_ms, r.master_advert_interval_ms
    );
    let dests: Vec<String> = r.destinations.iter().map(ToString::to_string).collect();
    let transport = match r.transport {
        Transport::Unicast => "unicast to",
        Transport::Multicast => "multicast to",
    };
    let _ = writeln!(
        out,
        "  adverts from {} {transport} {}",
        r.source,
        dests.join(", ")
    );
    if let Some(mac) = &r.virtual_mac {
        let _ = writeln!(out, "  VIPs speak with the virtual MAC {mac}");
    }
    let master = match (r.state, r.master) {
        (RouterState::Master, _) => "this node".to_owned(),
        (_, Some(m)) => format!("{} priority {}", m.address, m.priority),
        (_, None) => "none heard".to_owned(),
    };
    let _ = writeln!(out, "  master: {master}");
    let _ = writeln!(out, "  VIPs:");
    for v in &r.vips {
        let owned = match v.owned {
            Some(true) => "owned",
            Some(false) => "not owned",
            None => "ownership unknown",
        };
        let owner = match v.owner {
            Owner::ThisNode => "this node".to_owned(),
            Owner::Peer { address } => address.to_string(),
            Owner::Unknown => "unknown".to_owned(),
        };
        let traffic = v.traffic.map_or(String::new(), |t| {
            format!(
                ", passed {} pkts, dropped {}, guarded {}",
                t.passed_packets, t.dropped_packets, t.guarded_packets
            )
        });
        let service = v
            .service
            .as_deref()
            .map_or(String::new(), |s| format!(" service {s}"));
        let _ = writeln!(
            out,
            "    {:<28} zone {}{service}: {owned}, owner {owner}{traffic}",
            v.address, v.zone
        );
    }
    let c = &r.counters;
    let _ = writeln!(
        out,
        "  counters: adverts sent {} received {}, priority 0 sent {} received {}, transitions {} (master {}, backup {}, initialize {}), announces {}",
        c.adverts_sent,
        c.adverts_received,
        c.priority_zero_sent,
        c.priority_zero_received,
        c.transitions(),
        c.became_master,
        c.became_backup,
        c.became_initialize,
        c.announces
    );
    let drops: Vec<String> = c
        .dropped
        .iter()
        .flat_map(|(stage, reasons)| {
            reasons
                .iter()
                .map(move |(reason, n)| format!("{stage}/{reason} {n}"))
        })
        .collect();
    if !drops.is_empty() || c.send_errors + c.recv_errors > 0 {
        let _ = writeln!(
            out,
            "  dropped: {}; send errors {}, receive errors {}",
            if drops.is_empty() {
                "none".to_owned()
            } else {
                drops.join(", ")
            },
            c.send_errors,
            c.recv_errors
        );
    }
    // Issue 6 fills the signals; a router without any prints nothing here.
    for s in &r.signals {
        let state = match s.state {
            SignalState::Up => "up",
            SignalState::Down => "DOWN",
            SignalState::Unknown => "unknown",
        };
        let _ = writeln!(
            out,
            "  signal {}: {state} ({}) since {}{}",
            s.name,
            s.mechanism,
            if s.since_unix_ms == 0 {
                "start".to_owned()
            } else {
                utc(s.since_unix_ms)
            },
            if s.state == SignalState::Up {
                String::new()
            } else {
                format!(": {}", s.detail)
            }
        );
    }
}

/// `from` to `now` (Unix ms) for a person: `850 ms`, `12.3 s`, `5 min 3 s`, `2 h 5 min`,
/// `3 d 4 h`.
fn age(from: u64, now: u64) -> String {
    let ms = now.saturating_sub(from);
    let s = ms / 1000;
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{} min {} s", s / 60, s % 60),
        3_600_000..86_400_000 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

/// Unix ms as `YYYY-MM-DD HH:MM:SS.mmm UTC`, without a date crate: the civil date of a day
/// count is the proleptic Gregorian calendar in 400-year eras of 146097 days.
fn utc(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX);
    let tod = secs % 86_400;
    // Shift the epoch to 0000-03-01 so leap days fall at the end of a year.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{:03} UTC",
        tod / 3600,
        tod % 3600 / 60,
        tod % 60,
        unix_ms % 1000
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A report as two routers of node-a would give it: master of the master slot, backup
    /// of the backup slot following node-b.
    pub(crate) fn sample() -> StatusReport {
        let counters = RouterCounters {
            adverts_sent: 42,
            adverts_received: 7,
            became_master: 1,
            became_backup: 1,
            dropped: BTreeMap::from([(
                "decode".to_owned(),
                BTreeMap::from([("bad_checksum".to_owned(), 2)]),
            )]),
            ..RouterCounters::default()
        };
        let router = |slot: &str, state, vip: &str, owned, master| RouterStatus {
            iface: "eth0".into(),
            netns: Some("node-a".into()),
            slot: slot.into(),
            family: AddressFamily::Ipv4,
            vrid: if slot == "master" { 1 } else { 2 },
            scope: 1,
            state,
            since_unix_ms: 1_764_093_600_000,
            stopped: false,
            priority: 200,
            effective_priority: 200,
            faulted: false,
            advert_interval_ms: 100,
            master_advert_interval_ms: 100,
            source: "192.0.2.2".parse().unwrap(),
            transport: Transport::Unicast,
            destinations: vec!["192.0.2.3".parse().unwrap()],
            virtual_mac: None,
            master,
            vips: vec![VipStatus {
                address: vip.parse().unwrap(),
                zone: "dmz".into(),
                service: None,
                owned: Some(owned),
                owner: Owner::Unknown,
                traffic: Some(VipTraffic {
                    passed_packets: 5,
                    passed_bytes: 420,
                    ..VipTraffic::default()
                }),
            }],
            counters: counters.clone(),
            signals: Vec::new(),
        };
        let mut report = StatusReport {
            format_version: FORMAT_VERSION,
            cluster: "lab".into(),
            node: "node-a".into(),
            pid: 4242,
            started_unix_ms: 1_764_093_590_000,
            generated_unix_ms: 1_764_093_612_300,
            dataplane: DataplaneStatus {
                pin_dir: "/sys/fs/bpf/tr7".into(),
                error: None,
                fence_ms: 321.9,
                heartbeat_age_ms: Some(40.0),
                fenced: false,
            },
            routers: vec![
                router("master", RouterState::Master, "192.0.2.10", true, None),
                router(
                    "backup",
                    RouterState::Backup,
                    "192.0.2.20",
                    false,
                    Some(MasterSeen {
                        address: "192.0.2.3".parse().unwrap(),
                        priority: 200,
                    }),
                ),
            ],
        };
        report.fill_owners();
        report
    }

    // Proves the owner of a VIP follows the map and the master heard: owned → this node,
    // not owned on a backup → the master's address, fenced → not this node.
    #[test]
    fn owners_follow_map_master_and_fence() {
        let mut r = sample();
        assert_eq!(r.routers[0].vips[0].owner, Owner::ThisNode);
        assert_eq!(
            r.routers[1].vips[0].owner,
            Owner::Peer {
                address: "192.0.2.3".parse().unwrap()
            }
        );
        r.dataplane.fenced = true;
        r.fill_owners();
        assert_eq!(r.routers[0].vips[0].owner, Owner::Unknown);
    }

    // Proves the JSON form round-trips, names states and families in lower case, carries
    // the signals list (empty here), and that a report without the optional fields
    // (an older or newer agent) still parses.
    #[test]
    fn json_round_trip_and_shape() {
        let r = sample();
        let text = serde_json::to_string_pretty(&r).unwrap();
        let back: StatusReport = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["routers"][0]["state"], "master");
        assert_eq!(v["routers"][0]["family"], "ipv4");
        assert_eq!(v["routers"][0]["signals"], serde_json::json!([]));
        assert_eq!(v["routers"][0]["vips"][0]["owner"]["kind"], "this_node");
        assert_eq!(v["routers"][1]["vips"][0]["owner"]["address"], "192.0.2.3");
        assert_eq!(v["routers"][1]["master"]["priority"], 200);
        let mut lean = v.clone();
        let router = lean["routers"][0].as_object_mut().unwrap();
        router.remove("signals");
        router.remove("stopped");
        router.remove("netns");
        serde_json::from_value::<StatusReport>(lean).expect("optional fields may be absent");
    }

    // Proves the human form names what an operator looks for: state and age, priorities,
    // the master heard, each VIP's ownership and owner, counters and drops.
    #[test]
    fn human_rendering() {
        let text = sample().render_human();
        eprintln!("{text}");
        for want in [
            "node node-a (cluster lab), agent pid 4242, up 22.3 s",
            "heartbeat 40 ms ago, fence 321.9 ms, claims the VIPs marked owned",
            "eth0 (netns node-a) slot master IPv4 VRID 1: MASTER since 2025-11-25 18:00:00.000 UTC (12.3 s ago)",
            "priority 200 (effective 200), advert interval 100 ms",
            "adverts from 192.0.2.2 unicast to 192.0.2.3",
            "  master: this node",
            "192.0.2.10                   zone dmz: owned, owner this node, passed 5 pkts",
            "slot backup IPv4 VRID 2: BACKUP",
            "  master: 192.0.2.3 priority 200",
            "192.0.2.20                   zone dmz: not owned, owner 192.0.2.3",
            "adverts sent 42 received 7",
            "transitions 2 (master 1, backup 1, initialize 0)",
            "dropped: decode/bad_checksum 2",
        ] {
            assert!(text.contains(want), "missing {want:?} in:\n{text}");
        }
        assert!(
            !text.contains("signal "),
            "a router without signals shows none"
        );
        let mut fenced = sample();
        fenced.dataplane.fenced = true;
        assert!(fenced.render_human().contains("FENCED"));
    }

    // Proves the civil-date conversion at known instants, leap days included.
    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00.000 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00.000 UTC");
        assert_eq!(utc(1_709_251_199_999), "2024-02-29 23:59:59.999 UTC");
        assert_eq!(utc(4_107_542_400_000), "2100-03-01 00:00:00.000 UTC");
    }

    #[test]
    fn ages() {
        assert_eq!(age(1000, 1850), "850 ms");
        assert_eq!(age(0, 12_345), "12.3 s");
        assert_eq!(age(0, 303_000), "5 min 3 s");
        assert_eq!(age(0, 7_500_000), "2 h 5 min");
        assert_eq!(age(0, 3 * 86_400_000 + 4 * 3_600_000), "3 d 4 h");
        assert_eq!(age(5, 1), "0 ms");
    }
}
