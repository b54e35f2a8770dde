//! What the kernel has: links, addresses and neighbours per namespace, dumped through
//! rtnetlink, and the IPv4 ARP and reverse-path sysctls read from /proc/sys inside each
//! namespace.
//!
//! The result is plain data, so `plan()` and `diagnose()` stay pure and tests build it by
//! hand. Kind-specific attributes (VLAN id and protocol, bond mode and options, bond port
//! LACP state, bridge STP, veth peer) are parsed wherever the kernel reports them, also for
//! kinds this machine cannot create.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use futures_util::TryStreamExt as _;
use rtnetlink::packet_route::{
    AddressFamily,
    address::{AddressAttribute, AddressFlags as KernelAddressFlags, AddressMessage},
    link::{
        BondLacpRate, BondMode, BondPortState, BondXmitHashPolicy, BridgeStpState, InfoBond,
        InfoBondPort, InfoBridge, InfoData, InfoKind, InfoPortData, InfoVlan, LacpState,
        LinkAttribute, LinkExtentMask, LinkFlags, LinkInfo, LinkMessage, MiiStatus,
        VlanProtocol as KernelVlanProtocol,
    },
    neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState},
};
use serde::Serialize;

use super::{Target, conn};
use crate::config::{Cidr, HashPolicy, LacpRate, Mac, VlanProtocol};
use crate::netns;

/// Why observation failed.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error(transparent)]
    Connect(#[from] conn::ConnError),
    #[error(
        "namespace `{ns}` (standing in for the host) does not exist; create it with `ip netns add {ns}`"
    )]
    RootMissing { ns: String },
    #[error("dumping {what} in namespace `{ns}`: {source}")]
    Dump {
        ns: String,
        what: &'static str,
        source: rtnetlink::Error,
    },
    #[error("reading IPv4 sysctls in namespace `{ns}`: {source}")]
    Sysctl {
        ns: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The observed state of every namespace asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Observed {
    /// One entry per namespace, in the order asked.
    pub namespaces: Vec<ObservedNamespace>,
}

/// One namespace as the kernel has it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ObservedNamespace {
    /// The file's name for it (`None`: the node's root namespace).
    pub name: Option<String>,
    /// Whether it exists (a named namespace the file names may not yet).
    pub exists: bool,
    /// Links by ifindex order.
    pub links: Vec<ObservedLink>,
    /// Addresses of every link.
    pub addresses: Vec<ObservedAddress>,
    /// Neighbour (ARP and NDP) entries of every link, both families.
    pub neighbours: Vec<ObservedNeighbour>,
    /// IPv4 ARP and reverse-path sysctls by /proc/sys/net/ipv4/conf entry: `all`, `default`
    /// and one per link name.
    pub sysctls: BTreeMap<String, Ipv4Conf>,
}

/// One neighbour cache entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ObservedNeighbour {
    /// The link it is on.
    pub ifindex: u32,
    /// The neighbour's address.
    pub address: IpAddr,
    /// Its NUD state.
    pub state: NudState,
}

/// Neighbour unreachability detection states (`ip neigh` words).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NudState {
    /// Resolution running, no answer yet.
    Incomplete,
    /// Confirmed reachable.
    Reachable,
    /// Known but unconfirmed lately.
    Stale,
    /// Waiting before probing.
    Delay,
    /// Being probed again.
    Probe,
    /// Resolution failed: traffic to it is dropped.
    Failed,
    /// No resolution needed.
    Noarp,
    /// Set by hand.
    Permanent,
    /// No state.
    None,
}

impl fmt::Display for NudState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&super::serde_label(self).to_uppercase())
    }
}

/// The IPv4 sysctls of one /proc/sys/net/ipv4/conf entry that decide whether the node
/// answers ARP for, and accepts packets to, an address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Ipv4Conf {
    /// `arp_ignore`.
    pub arp_ignore: u32,
    /// `arp_announce`.
    pub arp_announce: u32,
    /// `rp_filter`.
    pub rp_filter: u32,
}

/// The kind of an observed link (`IFLA_INFO_KIND`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LinkKind {
    /// No kind: a physical port (or loopback).
    Ethernet,
    /// veth.
    Veth,
    /// bridge.
    Bridge,
    /// vlan.
    Vlan,
    /// bond.
    Bond,
    /// Any other kind, by its kernel name.
    Other(String),
}

impl LinkKind {
    /// The kernel's kind name (`None` for a link without one).
    pub fn kernel_kind(&self) -> Option<&str> {
        match self {
            Self::Ethernet => None,
            Self::Veth => Some("veth"),
            Self::Bridge => Some("bridge"),
            Self::Vlan => Some("vlan"),
            Self::Bond => Some("bond"),
            Self::Other(s) => Some(s),
        }
    }
}

/// One observed link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ObservedLink {
    /// Interface index (per namespace).
    pub ifindex: u32,
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: LinkKind,
    /// MTU.
    pub mtu: u32,
    /// MAC, for links that have a 6-byte one.
    pub mac: Option<Mac>,
    /// Administratively up (IFF_UP).
    pub up: bool,
    /// Carrier (IFF_LOWER_UP).
    pub carrier: bool,
    /// Operational state (RFC 2863 words, lower case).
    pub oper: String,
    /// ifindex of the bridge or bond this link is a port of.
    pub controller: Option<u32>,
    /// The other end of a veth, or a VLAN's parent (IFLA_LINK): an ifindex, in the peer
    /// namespace when `link_netnsid` is set.
    pub link: Option<u32>,
    /// The namespace id (as this namespace numbers it) where `link` lives, if not here.
    pub link_netnsid: Option<i32>,
    /// VLAN attributes.
    pub vlan: Option<VlanInfo>,
    /// Bond attributes.
    pub bond: Option<BondInfo>,
    /// Bridge spanning tree on.
    pub stp: Option<bool>,
    /// Bond port attributes, for a link enslaved to a bond.
    pub bond_port: Option<BondPortInfo>,
}

/// What a bond reports about one of its ports (`IFLA_INFO_PORT_DATA`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BondPortInfo {
    /// MII status up.
    pub mii_up: bool,
    /// The bond uses this port (active-backup: the active one; 802.3ad: in the aggregator).
    pub active: bool,
    /// 802.3ad: the actor's operational state says collecting.
    pub collecting: bool,
    /// 802.3ad: the actor's operational state says distributing.
    pub distributing: bool,
    /// 802.3ad: the aggregator the port is in.
    pub aggregator_id: Option<u16>,
}

/// VLAN attributes as the kernel reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct VlanInfo {
    /// VLAN id.
    pub id: u16,
    /// Tag protocol.
    pub protocol: VlanProtocol,
}

/// Bond attributes as the kernel reports them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BondInfo {
    /// Mode (`active-backup`, `802.3ad`, ...).
    pub mode: String,
    /// The active member's ifindex.
    pub active_port: Option<u32>,
    /// MII monitoring interval in ms.
    pub miimon_ms: Option<u32>,
    /// Minimum links.
    pub min_links: Option<u32>,
    /// LACP rate.
    pub lacp_rate: Option<LacpRate>,
    /// Transmit hash policy.
    pub transmit_hash_policy: Option<HashPolicy>,
    /// Primary member's ifindex.
    pub primary: Option<u32>,
}

/// One observed address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ObservedAddress {
    /// The link it is on.
    pub ifindex: u32,
    /// Address and prefix.
    pub cidr: Cidr,
    /// DAD flags.
    pub flags: AddressFlags,
}

impl ObservedAddress {
    /// IPv6 link-local addresses belong to the kernel (made for every link), not the file.
    pub fn is_kernel_link_local(&self) -> bool {
        match self.cidr.addr {
            IpAddr::V6(a) => a.segments()[0] & 0xffc0 == 0xfe80,
            IpAddr::V4(_) => false,
        }
    }
}

/// The address flags diagnosis and planning care about.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AddressFlags {
    /// Duplicate address detection still running.
    pub tentative: bool,
    /// Duplicate address detection found another owner.
    pub dadfailed: bool,
    /// Added without duplicate address detection.
    pub nodad: bool,
}

impl ObservedNamespace {
    /// The link called `name`.
    pub fn link(&self, name: &str) -> Option<&ObservedLink> {
        self.links.iter().find(|l| l.name == name)
    }

    /// The link with index `ifindex`.
    pub fn link_by_index(&self, ifindex: u32) -> Option<&ObservedLink> {
        self.links.iter().find(|l| l.ifindex == ifindex)
    }

    /// The addresses of link `ifindex`.
    pub fn addresses_of(&self, ifindex: u32) -> impl Iterator<Item = &ObservedAddress> {
        self.addresses.iter().filter(move |a| a.ifindex == ifindex)
    }

    /// The ports of bridge or bond `ifindex`.
    pub fn ports_of(&self, ifindex: u32) -> impl Iterator<Item = &ObservedLink> {
        self.links
            .iter()
            .filter(move |l| l.controller == Some(ifindex))
    }
}

impl Observed {
    /// The observation of the file's namespace `ns`, if it was asked for.
    pub fn namespace(&self, ns: Option<&str>) -> Option<&ObservedNamespace> {
        self.namespaces.iter().find(|n| n.name.as_deref() == ns)
    }
}

/// Dumps links and addresses of each of the file's namespaces `names`, mapped to kernel
/// namespaces by `target`. A named namespace that does not exist is reported as absent; the
/// namespace standing in for the host must exist.
pub async fn observe(target: &Target, names: &[Option<String>]) -> Result<Observed, ObserveError> {
    observe_facts(target, names, false).await
}

/// [`observe`], plus the neighbour tables and the IPv4 ARP and reverse-path sysctls that
/// diagnosis needs. Planning does without them: reading three sysctl files per link costs
/// more than the link dump itself at 1,000 links.
pub async fn observe_for_diag(
    target: &Target,
    names: &[Option<String>],
) -> Result<Observed, ObserveError> {
    observe_facts(target, names, true).await
}

async fn observe_facts(
    target: &Target,
    names: &[Option<String>],
    diag_facts: bool,
) -> Result<Observed, ObserveError> {
    if let Some(root) = &target.root
        && !netns::exists(root)
    {
        return Err(ObserveError::RootMissing { ns: root.clone() });
    }
    let mut namespaces = Vec::with_capacity(names.len());
    for name in names {
        let kernel_ns = target.resolve(name.as_deref());
        if let Some(k) = kernel_ns
            && !netns::exists(k)
        {
            namespaces.push(ObservedNamespace {
                name: name.clone(),
                exists: false,
                ..Default::default()
            });
            continue;
        }
        let handle = conn::connect(kernel_ns)?;
        let label = super::ns_label(kernel_ns);
        let (links, addresses) = dump(&handle, label).await?;
        let (neighbours, sysctls) = if diag_facts {
            let names: Vec<&str> = links.iter().map(|l| l.name.as_str()).collect();
            let sysctls = netns::within(kernel_ns, || read_ipv4_conf(&names))
                .map_err(|e| ObserveError::Sysctl {
                    ns: label.to_owned(),
                    source: Box::new(e),
                })?
                .map_err(|e| ObserveError::Sysctl {
                    ns: label.to_owned(),
                    source: Box::new(e),
                })?;
            (dump_neighbours(&handle, label).await?, sysctls)
        } else {
            Default::default()
        };
        namespaces.push(ObservedNamespace {
            name: name.clone(),
            exists: true,
            links,
            addresses,
            neighbours,
            sysctls,
        });
    }
    Ok(Observed { namespaces })
}

/// Links and addresses of the namespace `handle` is bound to.
pub async fn dump(
    handle: &rtnetlink::Handle,
    ns: &str,
) -> Result<(Vec<ObservedLink>, Vec<ObservedAddress>), ObserveError> {
    let err = |what| {
        move |source| ObserveError::Dump {
            ns: ns.to_owned(),
            what,
            source,
        }
    };
    // Without statistics (IFLA_STATS64, the IPv6 and ICMPv6 counters of IFLA_AF_SPEC):
    // nothing here reads them, and they are most of each link's bytes to copy and parse.
    let link_msgs: Vec<LinkMessage> = handle
        .link()
        .get()
        .set_filter_mask(AddressFamily::Unspec, vec![LinkExtentMask::SkipStats])
        .execute()
        .try_collect()
        .await
        .map_err(err("links"))?;
    let addr_msgs: Vec<AddressMessage> = handle
        .address()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(err("addresses"))?;
    let mut links: Vec<ObservedLink> = link_msgs.iter().map(parse_link).collect();
    links.sort_by_key(|l| l.ifindex);
    let addresses = addr_msgs.iter().filter_map(parse_address).collect();
    Ok((links, addresses))
}

/// Neighbour entries (both families) of the namespace `handle` is bound to.
pub async fn dump_neighbours(
    handle: &rtnetlink::Handle,
    ns: &str,
) -> Result<Vec<ObservedNeighbour>, ObserveError> {
    let msgs: Vec<NeighbourMessage> = handle
        .neighbours()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(|source| ObserveError::Dump {
            ns: ns.to_owned(),
            what: "neighbours",
            source,
        })?;
    Ok(msgs.iter().filter_map(parse_neighbour).collect())
}

/// The typed view of one RTM_NEWNEIGH (`None` without an IPv4/IPv6 destination).
pub fn parse_neighbour(msg: &NeighbourMessage) -> Option<ObservedNeighbour> {
    let address = msg.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => Some(IpAddr::V4(*v4)),
        NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => Some(IpAddr::V6(*v6)),
        _ => None,
    })?;
    let state = match msg.header.state {
        NeighbourState::Incomplete => NudState::Incomplete,
        NeighbourState::Reachable => NudState::Reachable,
        NeighbourState::Stale => NudState::Stale,
        NeighbourState::Delay => NudState::Delay,
        NeighbourState::Probe => NudState::Probe,
        NeighbourState::Failed => NudState::Failed,
        NeighbourState::Noarp => NudState::Noarp,
        NeighbourState::Permanent => NudState::Permanent,
        _ => NudState::None,
    };
    Some(ObservedNeighbour {
        ifindex: msg.header.ifindex,
        address,
        state,
    })
}

/// Where the kernel shows the IPv4 per-interface settings of the reading thread's namespace.
const IPV4_CONF: &str = "/proc/sys/net/ipv4/conf";

/// Reads `arp_ignore`, `arp_announce` and `rp_filter` of `all`, `default` and each link in
/// `names`. Must run on a thread inside the namespace: /proc/sys/net shows the reading
/// thread's namespace. A link that vanished since the dump is skipped.
pub fn read_ipv4_conf(names: &[&str]) -> Result<BTreeMap<String, Ipv4Conf>, std::io::Error> {
    let read = |entry: &str, key: &str| -> Result<Option<u32>, std::io::Error> {
        let path = format!("{IPV4_CONF}/{entry}/{key}");
        match std::fs::read_to_string(&path) {
            Ok(text) => text.trim().parse().map(Some).map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{path}: {e}"))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(std::io::Error::new(e.kind(), format!("{path}: {e}"))),
        }
    };
    let mut out = BTreeMap::new();
    for entry in ["all", "default"].into_iter().chain(names.iter().copied()) {
        let (Some(arp_ignore), Some(arp_announce), Some(rp_filter)) = (
            read(entry, "arp_ignore")?,
            read(entry, "arp_announce")?,
            read(entry, "rp_filter")?,
        ) else {
            continue;
        };
        out.insert(
            entry.to_owned(),
            Ipv4Conf {
                arp_ignore,
                arp_announce,
                rp_filter,
            },
        );
    }
    Ok(out)
}

/// The typed view of one RTM_NEWLINK.
pub fn parse_link(msg: &LinkMessage) -> ObservedLink {
    let flags = msg.header.flags;
    let mut link = ObservedLink {
        ifindex: msg.header.index,
        name: String::new(),
        kind: LinkKind::Ethernet,
        mtu: 0,
        mac: None,
        up: flags.contains(LinkFlags::Up),
        carrier: flags.contains(LinkFlags::LowerUp),
        oper: "unknown".to_owned(),
        controller: None,
        link: None,
        link_netnsid: None,
        vlan: None,
        bond: None,
        stp: None,
        bond_port: None,
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => link.name = n.clone(),
            LinkAttribute::Mtu(m) => link.mtu = *m,
            LinkAttribute::Address(a) => {
                link.mac = <[u8; 6]>::try_from(a.as_slice()).ok().map(Mac);
            }
            LinkAttribute::OperState(s) => link.oper = format!("{s:?}").to_lowercase(),
            LinkAttribute::Controller(c) if *c != 0 => link.controller = Some(*c),
            LinkAttribute::Link(l) if *l != 0 => link.link = Some(*l),
            LinkAttribute::LinkNetNsId(id) => link.link_netnsid = Some(*id),
            LinkAttribute::LinkInfo(infos) => parse_info(infos, &mut link),
            _ => {}
        }
    }
    link
}

fn parse_info(infos: &[LinkInfo], link: &mut ObservedLink) {
    for info in infos {
        match info {
            LinkInfo::Kind(kind) => {
                link.kind = match kind {
                    InfoKind::Veth => LinkKind::Veth,
                    InfoKind::Bridge => LinkKind::Bridge,
                    InfoKind::Vlan => LinkKind::Vlan,
                    InfoKind::Bond => LinkKind::Bond,
                    other => LinkKind::Other(other.to_string()),
                }
            }
            LinkInfo::Data(InfoData::Vlan(attrs)) => {
                let mut vlan = VlanInfo {
                    id: 0,
                    protocol: VlanProtocol::Dot1Q,
                };
                for a in attrs {
                    match a {
                        InfoVlan::Id(id) => vlan.id = *id,
                        InfoVlan::Protocol(KernelVlanProtocol::Ieee8021Ad) => {
                            vlan.protocol = VlanProtocol::Dot1Ad;
                        }
                        _ => {}
                    }
                }
                link.vlan = Some(vlan);
            }
            LinkInfo::Data(InfoData::Bond(attrs)) => link.bond = Some(parse_bond(attrs)),
            LinkInfo::PortData(InfoPortData::BondPort(attrs)) => {
                link.bond_port = Some(parse_bond_port(attrs));
            }
            LinkInfo::Data(InfoData::Bridge(attrs)) => {
                for a in attrs {
                    if let InfoBridge::StpState(s) = a {
                        link.stp = Some(!matches!(s, BridgeStpState::Disabled));
                    }
                }
            }
            _ => {}
        }
    }
}

fn parse_bond(attrs: &[InfoBond]) -> BondInfo {
    let mut bond = BondInfo::default();
    for a in attrs {
        match a {
            InfoBond::Mode(m) => {
                bond.mode = match m {
                    BondMode::ActiveBackup => "active-backup".to_owned(),
                    BondMode::Ieee8023Ad => "802.3ad".to_owned(),
                    other => other.to_string(),
                }
            }
            InfoBond::ActivePort(p) => bond.active_port = Some(*p),
            InfoBond::MiiMon(m) => bond.miimon_ms = Some(*m),
            InfoBond::MinLinks(m) => bond.min_links = Some(*m),
            InfoBond::Primary(p) => bond.primary = Some(*p),
            InfoBond::AdLacpRate(r) => {
                bond.lacp_rate = match r {
                    BondLacpRate::Slow => Some(LacpRate::Slow),
                    BondLacpRate::Fast => Some(LacpRate::Fast),
                    _ => None,
                }
            }
            InfoBond::XmitHashPolicy(p) => {
                bond.transmit_hash_policy = match p {
                    BondXmitHashPolicy::Layer2 => Some(HashPolicy::Layer2),
                    BondXmitHashPolicy::Layer23 => Some(HashPolicy::Layer23),
                    BondXmitHashPolicy::Layer34 => Some(HashPolicy::Layer34),
                    BondXmitHashPolicy::Encap23 => Some(HashPolicy::Encap23),
                    BondXmitHashPolicy::Encap34 => Some(HashPolicy::Encap34),
                    BondXmitHashPolicy::VlanSrcMac => Some(HashPolicy::VlanSrcMac),
                    _ => None,
                }
            }
            _ => {}
        }
    }
    bond
}

fn parse_bond_port(attrs: &[InfoBondPort]) -> BondPortInfo {
    let mut port = BondPortInfo::default();
    for a in attrs {
        match a {
            InfoBondPort::MiiStatus(s) => port.mii_up = matches!(s, MiiStatus::Up),
            InfoBondPort::BondPortState(s) => port.active = matches!(s, BondPortState::Active),
            InfoBondPort::AdAggregatorId(id) => port.aggregator_id = Some(*id),
            InfoBondPort::AdActorOperPortState(s) => {
                port.collecting = s.contains(LacpState::COLLECTING);
                port.distributing = s.contains(LacpState::DISTRIBUTING);
            }
            _ => {}
        }
    }
    port
}

/// The typed view of one RTM_NEWADDR (`None` for families other than IPv4/IPv6).
pub fn parse_address(msg: &AddressMessage) -> Option<ObservedAddress> {
    let mut local = None;
    let mut address = None;
    // The 32-bit IFA_FLAGS attribute supersedes the 8-bit header field when present.
    let mut flags = KernelAddressFlags::from_bits_retain(u32::from(msg.header.flags.bits()));
    for attr in &msg.attributes {
        match attr {
            AddressAttribute::Local(a) => local = Some(*a),
            AddressAttribute::Address(a) => address = Some(*a),
            AddressAttribute::Flags(f) => flags = *f,
            _ => {}
        }
    }
    // On point-to-point links IFA_ADDRESS is the peer; IFA_LOCAL is always this end.
    let addr = local.or(address)?;
    Some(ObservedAddress {
        ifindex: msg.header.index,
        cidr: Cidr {
            addr,
            prefix: msg.header.prefix_len,
        },
        flags: AddressFlags {
            tentative: flags.contains(KernelAddressFlags::Tentative),
            dadfailed: flags.contains(KernelAddressFlags::Dadfailed),
            nodad: flags.contains(KernelAddressFlags::Nodad),
        },
    })
}

/// Links grouped by controller: what `bridge link` shows, for people reading an observation.
pub fn ports(ns: &ObservedNamespace) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in &ns.links {
        if let Some(c) = l.controller.and_then(|c| ns.link_by_index(c)) {
            out.entry(c.name.clone()).or_default().push(l.name.clone());
        }
    }
    out
}
