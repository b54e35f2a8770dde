//! The validated cluster model: what every other part of TR7 reads.
//!
//! A [`Cluster`] only exists after every rule of the file has passed, so its users never
//! re-check references, ranges or subnets. Defaults are filled in and VRIDs are resolved.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Serialize, Serializer};

use super::addr::{Cidr, Mac};

/// Declares a keyword enum of the file: the Rust variants, their spelling in YAML, parsing,
/// display, serialization and schema from one list, so the four cannot drift apart.
macro_rules! keywords {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $var:ident = $s:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $var,)+
        }

        impl $name {
            /// Every value, in documentation order.
            pub const ALL: &'static [Self] = &[$(Self::$var),+];
            /// The YAML spelling of every value, in documentation order.
            pub const NAMES: &'static [&'static str] = &[$($s),+];

            /// The YAML spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$var => $s,)+
                }
            }

            /// The value spelled `s` in YAML, if any.
            pub fn from_name(s: &str) -> Option<Self> {
                match s {
                    $($s => Some(Self::$var),)+
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({ "type": "string", "enum": Self::NAMES })
            }
        }
    };
}

keywords! {
    /// The `type` of an interface entry.
    pub enum InterfaceType {
        /// A physical port.
        Ethernet = "ethernet",
        /// An 802.1Q or 802.1ad VLAN on a parent.
        Vlan = "vlan",
        /// An active-backup bond.
        Bond = "bond",
        /// An 802.3ad (LACP) bond.
        Lacp = "lacp",
        /// The host end of a veth pair.
        Veth = "veth",
        /// The other end of a veth pair, in a network namespace.
        VethPeer = "veth-peer",
        /// A Linux bridge.
        Bridge = "bridge",
    }
}

keywords! {
    /// The tag protocol of a VLAN.
    pub enum VlanProtocol {
        /// C-tag, TPID 0x8100.
        Dot1Q = "802.1Q",
        /// S-tag (QinQ outer tag), TPID 0x88a8.
        Dot1Ad = "802.1ad",
    }
}

keywords! {
    /// How often the LACP partner is asked to send LACPDUs.
    pub enum LacpRate {
        /// Every 30 s (link loss noticed after 90 s).
        Slow = "slow",
        /// Every second (link loss noticed after 3 s).
        Fast = "fast",
    }
}

keywords! {
    /// The kernel's `xmit_hash_policy` of an LACP bond.
    pub enum HashPolicy {
        /// MAC addresses.
        Layer2 = "layer2",
        /// MAC and IP addresses.
        Layer23 = "layer2+3",
        /// IP addresses and ports.
        Layer34 = "layer3+4",
        /// Inner headers of tunnels, MAC and IP.
        Encap23 = "encap2+3",
        /// Inner headers of tunnels, IP and ports.
        Encap34 = "encap3+4",
        /// VLAN id and source MAC.
        VlanSrcMac = "vlan+srcmac",
    }
}

keywords! {
    /// Which bytes the VRRPv3 IPv4 checksum covers.
    pub enum Checksum {
        /// Checksum over the IPv4 pseudo-header and the message, as keepalived and FRR do.
        PseudoHeader = "pseudo-header",
        /// Checksum over the VRRP message only (RFC 9568 5.2.8 for IPv4).
        MessageOnly = "message-only",
    }
}

keywords! {
    /// How a node's adverts reach the other nodes.
    pub enum Transport {
        /// To each other node's `unicast` source address (keepalived's `unicast_peer`).
        Unicast = "unicast",
        /// To 224.0.0.18 / ff02::12 (RFC 9568 5.1.1.2, 5.1.2.2), from the node's `unicast`
        /// IPv4 source and its link-local IPv6 address.
        Multicast = "multicast",
    }
}

keywords! {
    /// What makes a VIP's slot give up mastership.
    pub enum FailoverMethod {
        /// Only the VRRP protocol: the VIP moves when the peer stops hearing this node.
        Vrrp = "vrrp",
        /// VRRP, and also the carrier of the interface and everything under it.
        Link = "link",
        /// VRRP, and also reachability of the gateway of the VIP's family.
        Gateway = "gateway",
        /// VRRP, carrier and gateway reachability.
        LinkAndGateway = "link-and-gateway",
    }
}

impl FailoverMethod {
    /// Whether this method watches a gateway.
    pub fn needs_gateway(self) -> bool {
        matches!(self, Self::Gateway | Self::LinkAndGateway)
    }

    /// Whether this method watches carrier.
    pub fn watches_link(self) -> bool {
        matches!(self, Self::Link | Self::LinkAndGateway)
    }
}

keywords! {
    /// How a gateway's reachability is probed.
    pub enum ProbeMethod {
        /// ARP request (IPv4 only).
        Arp = "arp",
        /// Neighbour solicitation (IPv6 only).
        Ndp = "ndp",
        /// ICMP or ICMPv6 echo.
        Icmp = "icmp",
    }
}

keywords! {
    /// The two VRRP slots of an interface.
    pub enum SlotName {
        /// Carries the `vips.master` list; preferred by the first node by default.
        Master = "master",
        /// Carries the `vips.backup` list; preferred by the second node by default.
        Backup = "backup",
    }
}

/// An IP address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// IPv4.
    Ipv4,
    /// IPv6.
    Ipv6,
}

impl Family {
    /// The family of an address.
    pub fn of(addr: IpAddr) -> Self {
        if addr.is_ipv4() {
            Self::Ipv4
        } else {
            Self::Ipv6
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ipv4 => "IPv4",
            Self::Ipv6 => "IPv6",
        })
    }
}

/// The whole validated cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Cluster {
    /// The cluster's name.
    pub name: String,
    /// The node names, in file order.
    pub nodes: Vec<String>,
    /// Every interface, in file order.
    pub interfaces: Vec<Interface>,
}

/// Where an interface lives: its namespace (`None` for the host's) and its name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct IfaceRef {
    /// The network namespace; `None` is the host (initial) namespace.
    pub namespace: Option<String>,
    /// The kernel name of the interface.
    pub name: String,
}

impl fmt::Display for IfaceRef {
    /// `name` in the host namespace, `namespace/name` elsewhere (the form `peer` accepts).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{ns}/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// One validated interface.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Interface {
    /// Namespace and name.
    pub id: IfaceRef,
    /// The type and its options.
    pub kind: InterfaceKind,
    /// MTU in bytes (default 1500).
    pub mtu: u32,
    /// MAC per node, where the file sets one.
    pub mac: BTreeMap<String, Mac>,
    /// Addresses per node (IPv4 and IPv6 together, file order); nodes without any are absent.
    pub addresses: BTreeMap<String, Vec<Cidr>>,
    /// The L2 segment the interface sits on: interfaces with one segment share a broadcast
    /// domain, so their VRRP slots need distinct VRIDs.
    pub segment: String,
    /// VRRP and VIPs, for interfaces that carry VIPs or a `vrrp` section.
    pub vrrp: Option<Vrrp>,
    /// Gateway checks per family.
    pub gateway: GatewayChecks,
}

impl Interface {
    /// The addresses of `node` on this interface (empty when it has none).
    pub fn addresses_of(&self, node: &str) -> &[Cidr] {
        self.addresses.get(node).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// The type of an interface with the options of that type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum InterfaceKind {
    /// A physical port.
    Ethernet,
    /// A VLAN on `parent` (host namespace).
    Vlan {
        /// The parent interface name.
        parent: String,
        /// 1-4094.
        id: u16,
        /// Tag protocol (default 802.1Q).
        protocol: VlanProtocol,
    },
    /// An active-backup bond.
    Bond {
        /// Member ethernet interfaces.
        members: Vec<String>,
        /// The member used while it has carrier.
        primary: Option<String>,
        /// MII link monitoring interval (default 100 ms).
        mii_monitor_interval: Duration,
    },
    /// An 802.3ad bond.
    Lacp {
        /// Member ethernet interfaces.
        members: Vec<String>,
        /// LACPDU rate (default fast).
        lacp_rate: LacpRate,
        /// Transmit hash policy (default layer3+4).
        transmit_hash_policy: HashPolicy,
        /// Members that must be up for the bond to have carrier (default 1).
        min_links: u16,
    },
    /// The host end of a veth pair.
    Veth {
        /// The veth-peer at the other end.
        peer: IfaceRef,
    },
    /// The namespaced end of a veth pair (its namespace is in the interface's `id`).
    VethPeer {
        /// The veth at the other end (host namespace).
        peer: String,
    },
    /// A Linux bridge.
    Bridge {
        /// Ports of the bridge.
        members: Vec<String>,
        /// Spanning tree on or off (default off).
        stp: bool,
    },
}

impl InterfaceKind {
    /// The `type` keyword of this kind.
    pub fn type_name(&self) -> InterfaceType {
        match self {
            Self::Ethernet => InterfaceType::Ethernet,
            Self::Vlan { .. } => InterfaceType::Vlan,
            Self::Bond { .. } => InterfaceType::Bond,
            Self::Lacp { .. } => InterfaceType::Lacp,
            Self::Veth { .. } => InterfaceType::Veth,
            Self::VethPeer { .. } => InterfaceType::VethPeer,
            Self::Bridge { .. } => InterfaceType::Bridge,
        }
    }
}

/// VRRP of one interface: shared settings and the two slots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Vrrp {
    /// Each node's unicast source address per family; a node's peers are the other nodes'.
    pub unicast: BTreeMap<String, UnicastSources>,
    /// Unicast to the peers (default) or multicast to the group.
    pub transport: Transport,
    /// Advertisement interval, a multiple of 10 ms within 10 ms - 40.95 s (default 1 s).
    pub advert_interval: Duration,
    /// Whether a higher-priority node takes mastership back (default true).
    pub preempt: bool,
    /// How long a node waits after start before preempting (default 0 s).
    pub preempt_delay: Duration,
    /// Whether a master accepts packets to its VIPs that it does not own (default false).
    pub accept_mode: bool,
    /// IPv4 checksum form (default pseudo-header).
    pub checksum: Checksum,
    /// Whether the VIPs use the VRRP virtual MAC 00:00:5e:00:01:VRID (default false).
    pub virtual_mac: bool,
    /// The slot of the `vips.master` list.
    pub master: Slot,
    /// The slot of the `vips.backup` list.
    pub backup: Slot,
}

impl Vrrp {
    /// Both slots, master first.
    pub fn slots(&self) -> [&Slot; 2] {
        [&self.master, &self.backup]
    }
}

/// A node's unicast VRRP source addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct UnicastSources {
    /// IPv4 source, if the node speaks VRRP over IPv4 on this interface.
    pub ipv4: Option<IpAddr>,
    /// IPv6 source, if the node speaks VRRP over IPv6 on this interface.
    pub ipv6: Option<IpAddr>,
}

impl UnicastSources {
    /// The source of a family.
    pub fn get(&self, family: Family) -> Option<IpAddr> {
        match family {
            Family::Ipv4 => self.ipv4,
            Family::Ipv6 => self.ipv6,
        }
    }
}

/// One VRRP slot (one virtual router per address family, sharing one VRID).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Slot {
    /// Which slot.
    pub name: SlotName,
    /// The node that should be master while healthy.
    pub preferred: String,
    /// Priority per node (every node of the cluster is present).
    pub priorities: BTreeMap<String, u8>,
    /// The resolved VRID; `None` for a slot without VIPs and without a pinned VRID.
    pub vrid: Option<Vrid>,
    /// The VIPs riding this slot.
    pub vips: Vec<Vip>,
}

/// A resolved virtual router id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Vrid {
    /// 1-255.
    pub value: u8,
    /// Whether the file pins it (`vrid:`) or it was assigned automatically.
    pub pinned: bool,
}

/// One virtual IP.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Vip {
    /// The address (a host: /32 or /128).
    pub address: IpAddr,
    /// What makes it fail over.
    pub method: FailoverMethod,
    /// Label carried into status, events and metrics (default `default`).
    pub zone: String,
    /// Optional service name.
    pub service: Option<String>,
    /// Whether the file allows it outside every subnet of its interface.
    pub allow_off_subnet: bool,
}

/// Gateway checks of one interface.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GatewayChecks {
    /// The IPv4 gateway check.
    pub ipv4: Option<GatewayCheck>,
    /// The IPv6 gateway check.
    pub ipv6: Option<GatewayCheck>,
}

impl GatewayChecks {
    /// The check of a family.
    pub fn get(&self, family: Family) -> Option<&GatewayCheck> {
        match family {
            Family::Ipv4 => self.ipv4.as_ref(),
            Family::Ipv6 => self.ipv6.as_ref(),
        }
    }
}

/// One gateway reachability check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GatewayCheck {
    /// The gateway address.
    pub target: IpAddr,
    /// Probe kind (default arp for IPv4, ndp for IPv6).
    pub method: ProbeMethod,
    /// Time between probes (default 1 s).
    pub interval: Duration,
    /// How long a probe waits for its answer (default 500 ms).
    pub timeout: Duration,
    /// Successes in a row that make a down gateway up (default 2).
    pub rise: u8,
    /// Failures in a row that make an up gateway down (default 3).
    pub fall: u8,
}

/// Why a node view could not be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("node `{node}` is not in cluster `{cluster}` (its nodes: {known})")]
pub struct UnknownNode {
    /// The name asked for.
    pub node: String,
    /// The cluster's name.
    pub cluster: String,
    /// The cluster's nodes, comma-separated.
    pub known: String,
}

/// One node's part of the cluster: what the agent on that node configures and runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeView {
    /// The node's name.
    pub node: String,
    /// The other nodes.
    pub peers: Vec<String>,
    /// Every interface as this node sees it, in file order.
    pub interfaces: Vec<NodeInterface>,
}

/// One interface as one node sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeInterface {
    /// Namespace and name.
    pub id: IfaceRef,
    /// Type and options.
    pub kind: InterfaceKind,
    /// MTU.
    pub mtu: u32,
    /// This node's MAC, if set.
    pub mac: Option<Mac>,
    /// This node's addresses.
    pub addresses: Vec<Cidr>,
    /// The VRRP slots this node runs on the interface (slots with a VRID).
    pub slots: Vec<NodeSlot>,
    /// Gateway checks.
    pub gateway: GatewayChecks,
}

/// One VRRP slot as one node runs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeSlot {
    /// Which slot.
    pub name: SlotName,
    /// Its VRID.
    pub vrid: Vrid,
    /// This node's priority.
    pub priority: u8,
    /// Whether this node is the slot's preferred master.
    pub preferred: bool,
    /// This node's unicast sources.
    pub source: UnicastSources,
    /// The peers' unicast addresses per family (IPv4 first), in node order.
    pub peers: Vec<IpAddr>,
    /// The VIPs of the slot.
    pub vips: Vec<Vip>,
    /// Advertisement interval.
    pub advert_interval: Duration,
    /// Preemption.
    pub preempt: bool,
    /// Preempt delay.
    pub preempt_delay: Duration,
    /// Accept mode.
    pub accept_mode: bool,
    /// IPv4 checksum form.
    pub checksum: Checksum,
    /// Virtual MAC.
    pub virtual_mac: bool,
}

impl Cluster {
    /// The part of the cluster that `node` runs.
    pub fn node_view(&self, node: &str) -> Result<NodeView, UnknownNode> {
        if !self.nodes.iter().any(|n| n == node) {
            return Err(UnknownNode {
                node: node.to_owned(),
                cluster: self.name.clone(),
                known: self.nodes.join(", "),
            });
        }
        let interfaces = self
            .interfaces
            .iter()
            .map(|iface| NodeInterface {
                id: iface.id.clone(),
                kind: iface.kind.clone(),
                mtu: iface.mtu,
                mac: iface.mac.get(node).copied(),
                addresses: iface.addresses_of(node).to_vec(),
                slots: iface
                    .vrrp
                    .as_ref()
                    .map(|v| node_slots(v, node))
                    .unwrap_or_default(),
                gateway: iface.gateway.clone(),
            })
            .collect();
        Ok(NodeView {
            node: node.to_owned(),
            peers: self.nodes.iter().filter(|n| *n != node).cloned().collect(),
            interfaces,
        })
    }

    /// Every resolved VRID: (interface, slot, vrid), in file order.
    pub fn vrids(&self) -> Vec<(&IfaceRef, SlotName, Vrid)> {
        let mut out = Vec::new();
        for iface in &self.interfaces {
            if let Some(vrrp) = &iface.vrrp {
                for slot in vrrp.slots() {
                    if let Some(vrid) = slot.vrid {
                        out.push((&iface.id, slot.name, vrid));
                    }
                }
            }
        }
        out
    }
}

fn node_slots(vrrp: &Vrrp, node: &str) -> Vec<NodeSlot> {
    let source = vrrp.unicast.get(node).cloned().unwrap_or_default();
    let mut peers = Vec::new();
    let unicast = vrrp.transport == Transport::Unicast;
    for family in [Family::Ipv4, Family::Ipv6].into_iter().filter(|_| unicast) {
        for (other, sources) in &vrrp.unicast {
            if other != node
                && let Some(a) = sources.get(family)
            {
                peers.push(a);
            }
        }
    }
    vrrp.slots()
        .into_iter()
        .filter_map(|slot| {
            Some(NodeSlot {
                name: slot.name,
                vrid: slot.vrid?,
                priority: slot.priorities.get(node).copied().unwrap_or(0),
                preferred: slot.preferred == node,
                source: source.clone(),
                peers: peers.clone(),
                vips: slot.vips.clone(),
                advert_interval: vrrp.advert_interval,
                preempt: vrrp.preempt,
                preempt_delay: vrrp.preempt_delay,
                accept_mode: vrrp.accept_mode,
                checksum: vrrp.checksum,
                virtual_mac: vrrp.virtual_mac,
            })
        })
        .collect()
}
