//! The semantic rules of the cluster file, and the construction of the validated [`Cluster`].
//!
//! Each rule reports at the position of the value to change, with the model path, and every
//! rule runs even after others failed, so one run lists all problems. The rules aim at the
//! failures that leave "VIP up but no traffic": addresses outside subnets, missing families,
//! members that swallow traffic, VRID collisions on a shared segment.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

use super::addr::Cidr;
use super::error::{Pos, Rule, Sink};
use super::file::{ClusterFile, InterfaceEntry, NodeLists, SlotEntry, Sp, VipEntry};
use super::model::{
    Checksum, Cluster, FailoverMethod, Family, GatewayCheck, GatewayChecks, HashPolicy, IfaceRef,
    Interface, InterfaceKind, InterfaceType, LacpRate, ProbeMethod, Slot, SlotName, Transport,
    UnicastSources, Vip, VlanProtocol, Vrid, Vrrp,
};
use super::vrid;

/// Default MTU of every interface that does not set one.
pub const DEFAULT_MTU: u32 = 1500;
/// Default priority of a slot's preferred node.
pub const DEFAULT_PREFERRED_PRIORITY: u8 = 200;
/// Default priority of the other nodes.
pub const DEFAULT_OTHER_PRIORITY: u8 = 100;
/// Default VRRP advertisement interval.
pub const DEFAULT_ADVERT_INTERVAL: Duration = Duration::from_secs(1);
/// Default bond MII monitoring interval.
pub const DEFAULT_MII_MONITOR: Duration = Duration::from_millis(100);
/// Default gateway probe interval.
pub const DEFAULT_GATEWAY_INTERVAL: Duration = Duration::from_secs(1);
/// Default gateway probe timeout.
pub const DEFAULT_GATEWAY_TIMEOUT: Duration = Duration::from_millis(500);
/// Default gateway rise count.
pub const DEFAULT_RISE: u8 = 2;
/// Default gateway fall count.
pub const DEFAULT_FALL: u8 = 3;
/// Default VIP zone.
pub const DEFAULT_ZONE: &str = "default";
/// Longest preempt delay accepted.
pub const MAX_PREEMPT_DELAY: Duration = Duration::from_secs(3600);

/// Validates the file; `None` when any rule is broken (the sink has the reasons).
pub(crate) fn validate(file: &ClusterFile, sink: &mut Sink) -> Option<Cluster> {
    let nodes = check_nodes(file, sink);
    let mut v = Validator {
        file,
        nodes,
        unreadable: file.unreadable.iter().map(String::as_str).collect(),
        ns: file.interfaces.iter().map(namespace_of).collect(),
        by_name: HashMap::new(),
        addrs: Vec::new(),
        kinds: vec![None; file.interfaces.len()],
        parent_of: vec![None; file.interfaces.len()],
        owner_of: vec![None; file.interfaces.len()],
        mtus: Vec::new(),
    };
    if file.name.value.trim().is_empty() {
        sink.push(
            file.name.pos,
            "name",
            Rule::InvalidName,
            "the cluster name is empty",
            "name the cluster, e.g. `name: adc-east`",
        );
    }
    v.index_names(sink);
    v.addrs = file
        .interfaces
        .iter()
        .map(|e| v.addresses(e, sink))
        .collect();
    v.check_address_uniqueness(sink);
    v.mtus = file.interfaces.iter().map(|e| mtu(e, sink)).collect();
    for i in 0..file.interfaces.len() {
        v.resolve_kind(i, sink);
    }
    v.check_members(sink);
    v.check_cycles(sink);
    v.check_vlan_ids(sink);
    v.check_mtus(sink);
    let segments: Vec<Option<String>> = (0..file.interfaces.len())
        .map(|i| v.segment(i, 0))
        .collect();
    let gateways: Vec<GatewayChecks> = (0..file.interfaces.len())
        .map(|i| v.gateways(i, sink))
        .collect();
    let vrrps: Vec<Option<Vrrp>> = (0..file.interfaces.len())
        .map(|i| v.vrrp(i, &gateways[i], sink))
        .collect();
    v.check_vip_uniqueness(sink);
    let vrrps = v.assign_vrids(vrrps, &segments, sink);
    if !sink.is_empty() {
        return None;
    }
    let interfaces = file
        .interfaces
        .iter()
        .enumerate()
        .map(|(i, e)| {
            Some(Interface {
                id: IfaceRef {
                    namespace: v.ns[i].clone(),
                    name: e.name.value.clone(),
                },
                kind: v.kinds[i].clone()?,
                mtu: v.mtus[i],
                mac: e
                    .mac
                    .as_ref()
                    .map(|m| {
                        m.0.iter()
                            .map(|(k, v)| (k.value.clone(), v.value))
                            .collect()
                    })
                    .unwrap_or_default(),
                addresses: v.addrs[i].clone(),
                segment: segments[i].clone()?,
                vrrp: vrrps[i].clone(),
                gateway: gateways[i].clone(),
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Cluster {
        name: file.name.value.clone(),
        nodes: v.nodes,
        interfaces,
    })
}

fn namespace_of(e: &InterfaceEntry) -> Option<String> {
    match e.kind.value {
        InterfaceType::VethPeer => e.namespace.as_ref().map(|n| n.value.clone()),
        _ => None,
    }
}

fn describe_ns(ns: &Option<String>) -> String {
    match ns {
        Some(ns) => format!("namespace `{ns}`"),
        None => "the host namespace".to_owned(),
    }
}

fn check_nodes(file: &ClusterFile, sink: &mut Sink) -> Vec<String> {
    let mut seen: HashMap<&str, Pos> = HashMap::new();
    let mut nodes = Vec::new();
    if file.nodes.is_empty() {
        sink.push(
            file.pos,
            "nodes",
            Rule::DuplicateNode,
            "the cluster has no node",
            "list the nodes, e.g. `nodes: [{name: node-a}, {name: node-b}]`",
        );
    }
    for (i, n) in file.nodes.iter().enumerate() {
        let name = n.name.value.as_str();
        let path = format!("nodes[{i}].name");
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            sink.push(
                n.name.pos,
                &path,
                Rule::InvalidName,
                format!("`{name}` is not a valid node name"),
                "use 1-64 letters, digits, `-`, `_` or `.` (usually the host name)",
            );
        }
        if let Some(first) = seen.get(name) {
            sink.push(
                n.name.pos,
                &path,
                Rule::DuplicateNode,
                format!(
                    "node `{name}` is listed twice (first on line {})",
                    first.line
                ),
                "list each node once",
            );
            continue;
        }
        seen.insert(name, n.name.pos);
        nodes.push(name.to_owned());
    }
    nodes
}

/// Checks the kernel's rules for an interface name (`dev_valid_name`, IFNAMSIZ 16).
fn check_ifname(name: &Sp<String>, path: &str, sink: &mut Sink) {
    let n = name.value.as_str();
    let problem = if n.is_empty() || n == "." || n == ".." {
        Some(format!("`{n}` is not a valid interface name"))
    } else if n.len() > 15 {
        Some(format!(
            "interface name `{n}` is {} bytes long, the kernel allows at most 15",
            n.len()
        ))
    } else {
        n.chars()
            .find(|c| *c == '/' || *c == ':' || c.is_whitespace() || c.is_control())
            .map(|c| format!("interface name `{n}` contains {c:?}, which the kernel refuses"))
    };
    if let Some(message) = problem {
        sink.push(
            name.pos,
            path,
            Rule::InvalidName,
            message,
            "use at most 15 bytes, without `/`, `:` or white space",
        );
    }
}

fn mtu(e: &InterfaceEntry, sink: &mut Sink) -> u32 {
    match &e.mtu {
        None => DEFAULT_MTU,
        Some(m) => match u32::try_from(m.value) {
            Ok(v) if (68..=65535).contains(&v) => v,
            _ => {
                sink.push(
                    m.pos,
                    format!("{}.mtu", e.path),
                    Rule::MtuRange,
                    format!("MTU {} is outside 68-65535", m.value),
                    "Ethernet uses 1500, jumbo frames 9000",
                );
                DEFAULT_MTU
            }
        },
    }
}

struct Validator<'f> {
    file: &'f ClusterFile,
    nodes: Vec<String>,
    /// Names of entries the reader dropped: references to them are not reported again.
    unreadable: HashSet<&'f str>,
    /// Namespace per interface.
    ns: Vec<Option<String>>,
    /// (namespace, name) -> first interface with that identity.
    by_name: HashMap<(Option<String>, String), usize>,
    /// Addresses per interface per node.
    addrs: Vec<BTreeMap<String, Vec<Cidr>>>,
    /// The resolved kind, `None` where the entry is broken.
    kinds: Vec<Option<InterfaceKind>>,
    /// The interface a vlan stands on.
    parent_of: Vec<Option<usize>>,
    /// The bond or bridge an interface is a member of, with the reference position.
    owner_of: Vec<Option<usize>>,
    /// Effective MTU per interface.
    mtus: Vec<u32>,
}

impl<'f> Validator<'f> {
    fn entry(&self, i: usize) -> &'f InterfaceEntry {
        &self.file.interfaces[i]
    }

    fn name(&self, i: usize) -> String {
        IfaceRef {
            namespace: self.ns[i].clone(),
            name: self.entry(i).name.value.clone(),
        }
        .to_string()
    }

    fn nodes_hint(&self) -> String {
        format!("the cluster's nodes: {}", self.nodes.join(", "))
    }

    /// Whether `node` is a node of the cluster; reports it otherwise.
    fn known_node(&self, node: &Sp<String>, path: &str, sink: &mut Sink) -> bool {
        if self.nodes.contains(&node.value) {
            return true;
        }
        sink.push(
            node.pos,
            path,
            Rule::UnknownNode,
            format!("`{}` is not a node of the cluster", node.value),
            self.nodes_hint(),
        );
        false
    }

    fn index_names(&mut self, sink: &mut Sink) {
        for (i, e) in self.file.interfaces.iter().enumerate() {
            check_ifname(&e.name, &format!("{}.name", e.path), sink);
            if let Some(ns) = &e.namespace
                && e.kind.value == InterfaceType::VethPeer
                && (ns.value.is_empty()
                    || ns.value == "."
                    || ns.value == ".."
                    || ns.value.contains('/')
                    || ns.value.chars().any(char::is_whitespace))
            {
                sink.push(
                    ns.pos,
                    format!("{}.namespace", e.path),
                    Rule::InvalidName,
                    format!("`{}` is not a valid namespace name", ns.value),
                    "use a name as `ip netns add` takes it, without `/` or white space",
                );
            }
            let key = (self.ns[i].clone(), e.name.value.clone());
            if let Some(&first) = self.by_name.get(&key) {
                sink.push(
                    e.name.pos,
                    format!("{}.name", e.path),
                    Rule::DuplicateName,
                    format!(
                        "interface `{}` is declared twice in {} (first on line {})",
                        e.name.value,
                        describe_ns(&self.ns[i]),
                        self.entry(first).name.pos.line
                    ),
                    "names are unique within one namespace; rename one of them",
                );
            } else {
                self.by_name.insert(key, i);
            }
        }
    }

    fn addresses(&self, e: &InterfaceEntry, sink: &mut Sink) -> BTreeMap<String, Vec<Cidr>> {
        let mut out = BTreeMap::new();
        if let Some(mac) = &e.mac {
            for (node, _) in &mac.0 {
                self.known_node(node, &format!("{}.mac.{}", e.path, node.value), sink);
            }
        }
        let Some(addrs) = &e.addresses else {
            return out;
        };
        for (node, list) in &addrs.0 {
            let path = format!("{}.addresses.{}", e.path, node.value);
            if !self.known_node(node, &path, sink) {
                continue;
            }
            for (j, a) in list.value.iter().enumerate() {
                if a.value.is_v4_network_or_broadcast() {
                    sink.push(
                        a.pos,
                        format!("{path}[{j}]"),
                        Rule::InvalidAddress,
                        format!(
                            "{} is the network or broadcast address of its subnet",
                            a.value
                        ),
                        "use a host address of the subnet",
                    );
                }
            }
            out.insert(
                node.value.clone(),
                list.value.iter().map(|a| a.value).collect(),
            );
        }
        out
    }

    fn check_address_uniqueness(&self, sink: &mut Sink) {
        // Key: namespace and address; link-local addresses are only unique per link.
        type Key = (Option<String>, Option<usize>, IpAddr);
        let mut seen: HashMap<Key, (String, Pos)> = HashMap::new();
        for (i, e) in self.file.interfaces.iter().enumerate() {
            let Some(addrs) = &e.addresses else { continue };
            for (node, list) in &addrs.0 {
                for (j, a) in list.value.iter().enumerate() {
                    let link = match a.value.addr {
                        IpAddr::V6(v6) if v6.is_unicast_link_local() => Some(i),
                        _ => None,
                    };
                    let key = (self.ns[i].clone(), link, a.value.addr);
                    let here = format!("`{}` on node {}", self.name(i), node.value);
                    if let Some((first, pos)) = seen.get(&key) {
                        sink.push(
                            a.pos,
                            format!("{}.addresses.{}[{j}]", e.path, node.value),
                            Rule::DuplicateAddress,
                            format!(
                                "address {} of {here} is already used by {first} (line {})",
                                a.value.addr, pos.line
                            ),
                            "every node needs its own address; VIPs go under `vips`",
                        );
                    } else {
                        seen.insert(key, (here, a.pos));
                    }
                }
            }
        }
    }

    /// Finds a host-namespace interface referenced by name.
    fn lookup_root(&self, name: &str) -> Option<usize> {
        self.by_name.get(&(None, name.to_owned())).copied()
    }

    /// Reports a reference to an interface that does not exist (unless the reader already
    /// reported the entry it would have been).
    fn dangling(&self, r: &Sp<String>, path: String, role: &str, sink: &mut Sink) {
        if self.unreadable.contains(r.value.as_str()) {
            return;
        }
        sink.push(
            r.pos,
            path,
            Rule::DanglingReference,
            format!("{role} `{}` is not declared", r.value),
            format!("declare an interface named `{}` or fix the name", r.value),
        );
    }

    fn missing(&self, i: usize, field: &str, what: &str, rule: Rule, sink: &mut Sink) {
        let e = self.entry(i);
        sink.push(
            e.pos,
            e.path.clone(),
            rule,
            format!("{} `{}` has no `{field}`", what, e.name.value),
            format!("a {what} needs `{field}:`"),
        );
    }

    fn resolve_kind(&mut self, i: usize, sink: &mut Sink) {
        let e = self.entry(i);
        let path = e.path.clone();
        let kind = match e.kind.value {
            InterfaceType::Ethernet => Some(InterfaceKind::Ethernet),
            InterfaceType::Vlan => self.resolve_vlan(i, sink),
            InterfaceType::Bond => {
                let members = self.members(i, sink);
                let primary = e.primary.as_ref().and_then(|p| {
                    if members.contains(&p.value) {
                        Some(p.value.clone())
                    } else {
                        sink.push(
                            p.pos,
                            format!("{path}.primary"),
                            Rule::BondOption,
                            format!(
                                "primary `{}` is not a member of `{}`",
                                p.value, e.name.value
                            ),
                            format!("choose one of the members: {}", members.join(", ")),
                        );
                        None
                    }
                });
                let mii = e
                    .mii_monitor_interval
                    .as_ref()
                    .map_or(DEFAULT_MII_MONITOR, |d| d.value.0);
                if let Some(d) = e
                    .mii_monitor_interval
                    .as_ref()
                    .filter(|d| d.value.0.is_zero())
                {
                    sink.push(
                        d.pos,
                        format!("{path}.mii_monitor_interval"),
                        Rule::BondOption,
                        "a bond without link monitoring never fails over",
                        "use 100ms (the default) or another interval above 0",
                    );
                }
                e.members.is_some().then_some(InterfaceKind::Bond {
                    members,
                    primary,
                    mii_monitor_interval: mii,
                })
            }
            InterfaceType::Lacp => {
                let members = self.members(i, sink);
                let min_links = match &e.min_links {
                    None => 1,
                    Some(m) => {
                        if m.value < 1 || m.value > members.len().max(1) as i64 {
                            sink.push(
                                m.pos,
                                format!("{path}.min_links"),
                                Rule::BondOption,
                                format!(
                                    "min_links {} is outside 1-{} (the number of members)",
                                    m.value,
                                    members.len()
                                ),
                                "the bond loses carrier when fewer members than min_links are up",
                            );
                        }
                        u16::try_from(m.value).unwrap_or(1)
                    }
                };
                e.members.is_some().then_some(InterfaceKind::Lacp {
                    members,
                    lacp_rate: e.lacp_rate.as_ref().map_or(LacpRate::Fast, |r| r.value),
                    transmit_hash_policy: e
                        .transmit_hash_policy
                        .as_ref()
                        .map_or(HashPolicy::Layer34, |r| r.value),
                    min_links,
                })
            }
            InterfaceType::Bridge => {
                let members = self.members(i, sink);
                Some(InterfaceKind::Bridge {
                    members,
                    stp: e.stp.as_ref().is_some_and(|s| s.value),
                })
            }
            InterfaceType::Veth => self.resolve_veth(i, sink),
            InterfaceType::VethPeer => self.resolve_veth_peer(i, sink),
        };
        self.kinds[i] = kind;
    }

    fn resolve_vlan(&mut self, i: usize, sink: &mut Sink) -> Option<InterfaceKind> {
        let e = self.entry(i);
        let path = e.path.clone();
        let (Some(parent), Some(id)) = (&e.parent, &e.id) else {
            if e.parent.is_none() {
                self.missing(i, "parent", "vlan", Rule::MissingField, sink);
            }
            if e.id.is_none() {
                self.missing(i, "id", "vlan", Rule::MissingField, sink);
            }
            return None;
        };
        let protocol = e.protocol.as_ref().map_or(VlanProtocol::Dot1Q, |p| p.value);
        let id_ok = (1..=4094).contains(&id.value);
        if !id_ok {
            sink.push(
                id.pos,
                format!("{path}.id"),
                Rule::VlanIdRange,
                format!("VLAN id {} is outside 1-4094", id.value),
                "0 and 4095 are reserved by 802.1Q",
            );
        }
        match self.lookup_root(&parent.value) {
            None => self.dangling(parent, format!("{path}.parent"), "parent", sink),
            Some(p) => {
                let pe = self.entry(p);
                let ok = match pe.kind.value {
                    InterfaceType::Ethernet | InterfaceType::Bond | InterfaceType::Lacp => true,
                    // QinQ: a C-tag VLAN on an S-tag VLAN.
                    InterfaceType::Vlan => pe
                        .protocol
                        .as_ref()
                        .is_some_and(|p| p.value == VlanProtocol::Dot1Ad),
                    _ => false,
                };
                if !ok && p != i {
                    sink.push(
                        parent.pos,
                        format!("{path}.parent"),
                        Rule::WrongReferenceType,
                        format!(
                            "parent `{}` is a {}; a vlan stands on an ethernet, bond, lacp \
                             or 802.1ad vlan",
                            parent.value, pe.kind.value
                        ),
                        "put the VLAN on the port or bond under it",
                    );
                }
                self.parent_of[i] = Some(p);
            }
        }
        let id = u16::try_from(id.value).ok().filter(|_| id_ok)?;
        Some(InterfaceKind::Vlan {
            parent: parent.value.clone(),
            id,
            protocol,
        })
    }

    /// Resolves `members` of a bond, lacp or bridge; records ownership.
    fn members(&mut self, i: usize, sink: &mut Sink) -> Vec<String> {
        let e = self.entry(i);
        let kind = e.kind.value;
        let Some(members) = &e.members else {
            if kind != InterfaceType::Bridge {
                self.missing(i, "members", kind.as_str(), Rule::MissingField, sink);
            }
            return Vec::new();
        };
        let mut out = Vec::new();
        for (j, m) in members.value.iter().enumerate() {
            let path = format!("{}.members[{j}]", e.path);
            let Some(mi) = self.lookup_root(&m.value) else {
                self.dangling(m, path, "member", sink);
                continue;
            };
            out.push(m.value.clone());
            let me = self.entry(mi);
            let is_bond = kind != InterfaceType::Bridge;
            let type_ok = if is_bond {
                me.kind.value == InterfaceType::Ethernet
            } else {
                matches!(
                    me.kind.value,
                    InterfaceType::Ethernet
                        | InterfaceType::Bond
                        | InterfaceType::Lacp
                        | InterfaceType::Vlan
                        | InterfaceType::Veth
                )
            };
            if !type_ok {
                let (rule, need) = if is_bond {
                    (
                        Rule::MemberNotEthernet,
                        "bond and lacp members must be ethernet",
                    )
                } else {
                    (
                        Rule::WrongReferenceType,
                        "bridge ports are ethernet, bond, lacp, vlan or veth interfaces",
                    )
                };
                sink.push(
                    m.pos,
                    path.clone(),
                    rule,
                    format!(
                        "member `{}` of {} `{}` is a {}",
                        m.value, kind, e.name.value, me.kind.value
                    ),
                    need,
                );
            }
            match self.owner_of[mi] {
                Some(owner) if owner != i => {
                    let oe = self.entry(owner);
                    sink.push(
                        m.pos,
                        path,
                        Rule::MemberOfTwo,
                        format!(
                            "`{}` is already a member of {} `{}`",
                            m.value, oe.kind.value, oe.name.value
                        ),
                        "an interface can belong to one bond or bridge only",
                    );
                }
                _ => self.owner_of[mi] = Some(i),
            }
        }
        out
    }

    fn resolve_veth(&mut self, i: usize, sink: &mut Sink) -> Option<InterfaceKind> {
        let e = self.entry(i);
        let Some(peer) = &e.peer else {
            self.missing(i, "peer", "veth", Rule::VethIncomplete, sink);
            return None;
        };
        let path = format!("{}.peer", e.path);
        // `namespace/name` names one veth-peer; a bare name must match exactly one.
        let (want_ns, want_name) = match peer.value.split_once('/') {
            Some((ns, name)) => (Some(ns), name),
            None => (None, peer.value.as_str()),
        };
        let found: Vec<usize> = (0..self.file.interfaces.len())
            .filter(|&j| {
                self.entry(j).name.value == want_name
                    && self.entry(j).kind.value == InterfaceType::VethPeer
                    && want_ns.is_none_or(|ns| self.ns[j].as_deref() == Some(ns))
            })
            .collect();
        let p = match found.as_slice() {
            [p] => *p,
            [] => {
                // A bare name of a host-namespace interface: the wrong type, not dangling.
                if let Some(r) = self.lookup_root(&peer.value) {
                    sink.push(
                        peer.pos,
                        path,
                        Rule::WrongReferenceType,
                        format!(
                            "peer `{}` is a {}, not a veth-peer",
                            peer.value,
                            self.entry(r).kind.value
                        ),
                        "a veth's peer is a veth-peer in a namespace",
                    );
                } else {
                    self.dangling(peer, path, "peer", sink);
                }
                return None;
            }
            _ => {
                sink.push(
                    peer.pos,
                    path,
                    Rule::DanglingReference,
                    format!(
                        "peer `{}` matches veth-peers in several namespaces",
                        peer.value
                    ),
                    format!("write `NAMESPACE/{}`", peer.value),
                );
                return None;
            }
        };
        let pe = self.entry(p);
        let back = pe.peer.as_ref().map(|b| b.value.as_str());
        if back != Some(e.name.value.as_str()) {
            sink.push(
                peer.pos,
                path,
                Rule::VethPeersMismatch,
                format!(
                    "`{}` names `{}` as its peer, but `{}` names {}",
                    e.name.value,
                    self.name(p),
                    self.name(p),
                    back.map_or("no peer".to_owned(), |b| format!("`{b}`"))
                ),
                "the two ends of a veth pair name each other",
            );
        }
        Some(InterfaceKind::Veth {
            peer: IfaceRef {
                namespace: self.ns[p].clone(),
                name: pe.name.value.clone(),
            },
        })
    }

    fn resolve_veth_peer(&mut self, i: usize, sink: &mut Sink) -> Option<InterfaceKind> {
        let e = self.entry(i);
        if e.namespace.is_none() {
            self.missing(i, "namespace", "veth-peer", Rule::VethIncomplete, sink);
        }
        let Some(peer) = &e.peer else {
            self.missing(i, "peer", "veth-peer", Rule::VethIncomplete, sink);
            return None;
        };
        let path = format!("{}.peer", e.path);
        match self.lookup_root(&peer.value) {
            None => self.dangling(peer, path, "peer", sink),
            Some(v) => {
                let ve = self.entry(v);
                if ve.kind.value != InterfaceType::Veth {
                    sink.push(
                        peer.pos,
                        path,
                        Rule::WrongReferenceType,
                        format!("peer `{}` is a {}, not a veth", peer.value, ve.kind.value),
                        "a veth-peer's peer is the veth in the host namespace",
                    );
                } else {
                    // Mismatches are reported once, at the veth (see resolve_veth), unless
                    // the veth names nothing that resolves here.
                    let names_me = ve.peer.as_ref().is_some_and(|b| {
                        let (ns, name) = match b.value.split_once('/') {
                            Some((ns, name)) => (Some(ns), name),
                            None => (None, b.value.as_str()),
                        };
                        name == e.name.value
                            && ns.is_none_or(|ns| self.ns[i].as_deref() == Some(ns))
                    });
                    if !names_me && ve.peer.is_some() {
                        let names = ve.peer.as_ref().map_or("", |b| b.value.as_str());
                        sink.push(
                            peer.pos,
                            path,
                            Rule::VethPeersMismatch,
                            format!(
                                "`{}` names `{}` as its peer, but `{}` names `{}`",
                                self.name(i),
                                peer.value,
                                peer.value,
                                names
                            ),
                            "the two ends of a veth pair name each other",
                        );
                    }
                }
            }
        }
        e.namespace.as_ref()?;
        Some(InterfaceKind::VethPeer {
            peer: peer.value.clone(),
        })
    }

    fn check_members(&self, sink: &mut Sink) {
        for (mi, owner) in self.owner_of.iter().enumerate() {
            let Some(owner) = *owner else { continue };
            let me = self.entry(mi);
            let oe = self.entry(owner);
            let carries = [
                (
                    "addresses",
                    me.addresses
                        .as_ref()
                        .filter(|a| a.0.iter().any(|(_, l)| !l.value.is_empty()))
                        .map(|a| a.pos),
                ),
                (
                    "vips",
                    me.vips
                        .as_ref()
                        .filter(|v| !v.master.is_empty() || !v.backup.is_empty())
                        .map(|v| v.pos),
                ),
                ("vrrp", me.vrrp.as_ref().map(|v| v.pos)),
            ];
            for (field, pos) in carries {
                let Some(pos) = pos else { continue };
                sink.push(
                    pos,
                    format!("{}.{field}", me.path),
                    Rule::MemberHasAddresses,
                    format!(
                        "`{}` is a member of {} `{}` and cannot carry {field}",
                        me.name.value, oe.kind.value, oe.name.value
                    ),
                    format!(
                        "traffic arrives on `{}`, not on its members; move {field} there",
                        oe.name.value
                    ),
                );
            }
        }
    }

    fn check_cycles(&self, sink: &mut Sink) {
        let mut reported: HashSet<usize> = HashSet::new();
        for start in 0..self.parent_of.len() {
            let mut chain = vec![start];
            let mut cur = start;
            while let Some(p) = self.parent_of[cur] {
                if let Some(at) = chain.iter().position(|&c| c == p) {
                    let cycle = &chain[at..];
                    if cycle.iter().all(|c| !reported.contains(c)) && cycle.contains(&start) {
                        reported.extend(cycle.iter().copied());
                        let names: Vec<String> =
                            cycle.iter().chain([&p]).map(|&c| self.name(c)).collect();
                        let e = self.entry(start);
                        let pos = e.parent.as_ref().map_or(e.pos, |p| p.pos);
                        sink.push(
                            pos,
                            format!("{}.parent", e.path),
                            Rule::Cycle,
                            format!("interfaces stand on each other: {}", names.join(" -> ")),
                            "a vlan's parent chain must end at an ethernet, bond or lacp",
                        );
                    }
                    break;
                }
                chain.push(p);
                cur = p;
            }
        }
    }

    fn check_vlan_ids(&self, sink: &mut Sink) {
        let mut seen: HashMap<(usize, u16, VlanProtocol), usize> = HashMap::new();
        for (i, k) in self.kinds.iter().enumerate() {
            let (Some(InterfaceKind::Vlan { id, protocol, .. }), Some(p)) = (k, self.parent_of[i])
            else {
                continue;
            };
            if let Some(&first) = seen.get(&(p, *id, *protocol)) {
                let e = self.entry(i);
                sink.push(
                    e.id.as_ref().map_or(e.pos, |x| x.pos),
                    format!("{}.id", e.path),
                    Rule::VlanIdReused,
                    format!(
                        "VLAN id {id} ({protocol}) is already used on `{}` by `{}`",
                        self.name(p),
                        self.name(first)
                    ),
                    "one VLAN id per parent and protocol",
                );
            } else {
                seen.insert((p, *id, *protocol), i);
            }
        }
    }

    /// Upper devices (vlan over parent, bond over members, bridge over ports) cannot send
    /// frames larger than the device under them carries.
    fn check_mtus(&self, sink: &mut Sink) {
        let mut pairs: Vec<(usize, usize)> = Vec::new();
        for (i, p) in self.parent_of.iter().enumerate() {
            if let Some(p) = p {
                pairs.push((i, *p));
            }
        }
        for (m, o) in self.owner_of.iter().enumerate() {
            if let Some(o) = o {
                pairs.push((*o, m));
            }
        }
        for (upper, lower) in pairs {
            if self.mtus[upper] <= self.mtus[lower] {
                continue;
            }
            let ue = self.entry(upper);
            let le = self.entry(lower);
            // Point at whichever MTU the file actually sets: that is the line to change.
            let (pos, path) = match (&ue.mtu, &le.mtu) {
                (Some(m), _) => (m.pos, format!("{}.mtu", ue.path)),
                (None, Some(m)) => (m.pos, format!("{}.mtu", le.path)),
                (None, None) => (ue.pos, ue.path.clone()),
            };
            sink.push(
                pos,
                path,
                Rule::MtuAboveParent,
                format!(
                    "`{}` asks MTU {}, above the MTU {} of `{}` under it",
                    self.name(upper),
                    self.mtus[upper],
                    self.mtus[lower],
                    self.name(lower)
                ),
                format!(
                    "raise the MTU of `{}` or lower that of `{}`",
                    self.name(lower),
                    self.name(upper)
                ),
            );
        }
    }

    /// The L2 segment of an interface: members share their bond's or bridge's segment, a
    /// veth-peer its veth's, and a vlan is its parent's segment plus its tag.
    fn segment(&self, i: usize, depth: usize) -> Option<String> {
        if depth > self.file.interfaces.len() {
            return None; // a cycle, reported by check_cycles
        }
        if let Some(o) = self.owner_of[i] {
            return self.segment(o, depth + 1);
        }
        match self.kinds[i].as_ref()? {
            InterfaceKind::Vlan { id, protocol, .. } => {
                let p = self.parent_of[i]?;
                Some(format!("{}/{protocol}:{id}", self.segment(p, depth + 1)?))
            }
            InterfaceKind::VethPeer { peer } => {
                let v = self.lookup_root(peer)?;
                self.segment(v, depth + 1)
            }
            _ => Some(self.name(i)),
        }
    }

    fn gateways(&self, i: usize, sink: &mut Sink) -> GatewayChecks {
        let e = self.entry(i);
        let mut out = GatewayChecks::default();
        let Some(g) = &e.gateway else { return out };
        for (family, entry) in [(Family::Ipv4, &g.ipv4), (Family::Ipv6, &g.ipv6)] {
            let Some(c) = entry else { continue };
            let key = if family == Family::Ipv4 {
                "ipv4"
            } else {
                "ipv6"
            };
            let path = format!("{}.gateway.{key}", e.path);
            let mut ok = true;
            if Family::of(c.target.value) != family {
                ok = false;
                sink.push(
                    c.target.pos,
                    format!("{path}.target"),
                    Rule::GatewayCheckInvalid,
                    format!("target {} is not an {family} address", c.target.value),
                    format!("the `{key}` check needs an {family} gateway"),
                );
            }
            let method = c.method.as_ref().map_or(
                if family == Family::Ipv4 {
                    ProbeMethod::Arp
                } else {
                    ProbeMethod::Ndp
                },
                |m| m.value,
            );
            let method_ok = !matches!(
                (family, method),
                (Family::Ipv4, ProbeMethod::Ndp) | (Family::Ipv6, ProbeMethod::Arp)
            );
            if let Some(m) = c.method.as_ref().filter(|_| !method_ok) {
                ok = false;
                sink.push(
                    m.pos,
                    format!("{path}.method"),
                    Rule::GatewayCheckInvalid,
                    format!("{method} cannot probe an {family} gateway"),
                    "use arp or icmp for IPv4, ndp or icmp for IPv6",
                );
            }
            let interval = c
                .interval
                .as_ref()
                .map_or(DEFAULT_GATEWAY_INTERVAL, |d| d.value.0);
            let timeout = c
                .timeout
                .as_ref()
                .map_or(DEFAULT_GATEWAY_TIMEOUT, |d| d.value.0);
            if interval.is_zero() || timeout.is_zero() || timeout > interval {
                ok = false;
                let pos = c
                    .timeout
                    .as_ref()
                    .or(c.interval.as_ref())
                    .map_or(c.pos, |d| d.pos);
                sink.push(
                    pos,
                    path.clone(),
                    Rule::GatewayCheckInvalid,
                    format!(
                        "timeout {}ms and interval {}ms: both must be above 0 and the timeout \
                         at most the interval",
                        timeout.as_millis(),
                        interval.as_millis()
                    ),
                    "e.g. interval: 1s, timeout: 500ms",
                );
            }
            let mut count = |v: &Option<Sp<i64>>, name: &str, default: u8| -> u8 {
                match v {
                    None => default,
                    Some(n) => match u8::try_from(n.value) {
                        Ok(x) if x >= 1 => x,
                        _ => {
                            ok = false;
                            sink.push(
                                n.pos,
                                format!("{path}.{name}"),
                                Rule::GatewayCheckInvalid,
                                format!("{name} {} is outside 1-255", n.value),
                                "count probes in a row, e.g. rise: 2, fall: 3",
                            );
                            default
                        }
                    },
                }
            };
            let rise = count(&c.rise, "rise", DEFAULT_RISE);
            let fall = count(&c.fall, "fall", DEFAULT_FALL);
            if Family::of(c.target.value) == family {
                for (node, addrs) in &self.addrs[i] {
                    let fam: Vec<&Cidr> = addrs
                        .iter()
                        .filter(|a| Family::of(a.addr) == family)
                        .collect();
                    let link_local =
                        matches!(c.target.value, IpAddr::V6(v6) if v6.is_unicast_link_local());
                    if !fam.is_empty()
                        && !link_local
                        && !fam.iter().any(|a| a.contains(c.target.value))
                    {
                        sink.push(
                            c.target.pos,
                            format!("{path}.target"),
                            Rule::GatewayOutsideSubnet,
                            format!(
                                "gateway {} is outside the {family} subnets of `{}` on node {node}",
                                c.target.value,
                                self.name(i)
                            ),
                            "a gateway is a neighbour: it must be in a subnet of the interface",
                        );
                    }
                }
            }
            if ok {
                let check = GatewayCheck {
                    target: c.target.value,
                    method,
                    interval,
                    timeout,
                    rise,
                    fall,
                };
                match family {
                    Family::Ipv4 => out.ipv4 = Some(check),
                    Family::Ipv6 => out.ipv6 = Some(check),
                }
            }
        }
        out
    }

    fn vrrp(&self, i: usize, gateways: &GatewayChecks, sink: &mut Sink) -> Option<Vrrp> {
        let e = self.entry(i);
        let has_vips = e
            .vips
            .as_ref()
            .is_some_and(|v| !v.master.is_empty() || !v.backup.is_empty());
        if e.vrrp.is_none() && !has_vips {
            return None;
        }
        let default_entry = Default::default();
        let r = e.vrrp.as_ref().unwrap_or(&default_entry);
        let path = format!("{}.vrrp", e.path);
        let advert_interval = r
            .advert_interval
            .as_ref()
            .map_or(DEFAULT_ADVERT_INTERVAL, |d| d.value.0);
        if let Some(d) = &r.advert_interval {
            let ms = d.value.as_millis();
            let message = if !(10..=40_950).contains(&ms) {
                Some(format!(
                    "advert_interval {} is outside 10ms-40.95s",
                    d.value
                ))
            } else if ms % 10 != 0 {
                Some(format!(
                    "advert_interval {} is not a multiple of 10ms",
                    d.value
                ))
            } else {
                None
            };
            if let Some(message) = message {
                sink.push(
                    d.pos,
                    format!("{path}.advert_interval"),
                    Rule::AdvertInterval,
                    message,
                    "VRRPv3 carries the interval in centiseconds (12 bits): 10ms to 40.95s",
                );
            }
        }
        let preempt_delay = r
            .preempt_delay
            .as_ref()
            .map_or(Duration::ZERO, |d| d.value.0);
        if let Some(d) = r
            .preempt_delay
            .as_ref()
            .filter(|d| d.value.0 > MAX_PREEMPT_DELAY)
        {
            sink.push(
                d.pos,
                format!("{path}.preempt_delay"),
                Rule::InvalidValue,
                format!("preempt_delay {} is above 1h", d.value),
                "a delay is meant to let the node settle, seconds to minutes",
            );
        }
        let unicast = self.unicast(i, r.unicast.as_ref(), &path, sink);
        let vips = e.vips.as_ref();
        let master_vips = self.vips(
            i,
            vips.map(|v| v.master.as_slice()).unwrap_or(&[]),
            gateways,
            sink,
        );
        let backup_vips = self.vips(
            i,
            vips.map(|v| v.backup.as_slice()).unwrap_or(&[]),
            gateways,
            sink,
        );
        let master = self.slot(
            i,
            SlotName::Master,
            r.master.as_ref(),
            master_vips,
            &path,
            sink,
        );
        let backup = self.slot(
            i,
            SlotName::Backup,
            r.backup.as_ref(),
            backup_vips,
            &path,
            sink,
        );
        Some(Vrrp {
            unicast,
            transport: r.transport.as_ref().map_or(Transport::Unicast, |t| t.value),
            advert_interval,
            preempt: r.preempt.as_ref().is_none_or(|p| p.value),
            preempt_delay,
            accept_mode: r.accept_mode.as_ref().is_some_and(|p| p.value),
            checksum: r
                .checksum
                .as_ref()
                .map_or(Checksum::PseudoHeader, |c| c.value),
            virtual_mac: r.virtual_mac.as_ref().is_some_and(|p| p.value),
            master,
            backup,
        })
    }

    fn unicast(
        &self,
        i: usize,
        given: Option<&NodeLists<IpAddr>>,
        vrrp_path: &str,
        sink: &mut Sink,
    ) -> BTreeMap<String, UnicastSources> {
        let name = self.name(i);
        let mut out: BTreeMap<String, UnicastSources> = BTreeMap::new();
        // Where each source came from, for peer diagnostics.
        let mut origin: HashMap<(String, Family), (Pos, String)> = HashMap::new();
        let addrs = &self.addrs[i];
        for node in &self.nodes {
            let mine = addrs.get(node).map(Vec::as_slice).unwrap_or(&[]);
            let mut src = UnicastSources::default();
            let explicit = given.and_then(|g| g.value.get(node));
            match explicit {
                Some(list) => {
                    for (j, a) in list.value.iter().enumerate() {
                        let path = format!("{vrrp_path}.unicast.{node}[{j}]");
                        let family = Family::of(a.value);
                        let slot = match family {
                            Family::Ipv4 => &mut src.ipv4,
                            Family::Ipv6 => &mut src.ipv6,
                        };
                        if slot.is_some() {
                            sink.push(
                                a.pos,
                                path,
                                Rule::UnicastPeer,
                                format!("node {node} has two {family} unicast sources on `{name}`"),
                                "give one source per family",
                            );
                            continue;
                        }
                        if !mine.iter().any(|c| c.addr == a.value) {
                            sink.push(
                                a.pos,
                                path.clone(),
                                Rule::UnicastPeer,
                                format!(
                                    "unicast source {} is not an address of `{name}` on node {node}",
                                    a.value
                                ),
                                "a node sends adverts from one of its own addresses on the interface",
                            );
                        }
                        *slot = Some(a.value);
                        origin.insert((node.clone(), family), (a.pos, path));
                    }
                }
                None => {
                    src.ipv4 = mine.iter().find(|c| c.addr.is_ipv4()).map(|c| c.addr);
                    src.ipv6 = mine.iter().find(|c| c.addr.is_ipv6()).map(|c| c.addr);
                }
            }
            out.insert(node.clone(), src);
        }
        if let Some(g) = given {
            for (node, _) in &g.value.0 {
                self.known_node(node, &format!("{vrrp_path}.unicast.{}", node.value), sink);
            }
        }
        // Each peer address must be on-link for every other node, or adverts go via a router.
        for (node, src) in &out {
            let mine = addrs.get(node).map(Vec::as_slice).unwrap_or(&[]);
            for (peer, psrc) in &out {
                if peer == node {
                    continue;
                }
                for family in [Family::Ipv4, Family::Ipv6] {
                    let Some(a) = psrc.get(family) else { continue };
                    let link_local = matches!(a, IpAddr::V6(v6) if v6.is_unicast_link_local());
                    let subnets: Vec<&Cidr> = mine
                        .iter()
                        .filter(|c| Family::of(c.addr) == family)
                        .collect();
                    if src.get(family).is_none() || link_local || subnets.is_empty() {
                        continue;
                    }
                    if !subnets.iter().any(|c| c.contains(a)) {
                        let (pos, path) = origin
                            .get(&(peer.clone(), family))
                            .cloned()
                            .or_else(|| self.address_pos(i, peer, a))
                            .unwrap_or((self.entry(i).pos, self.entry(i).path.clone()));
                        sink.push(
                            pos,
                            path,
                            Rule::UnicastPeer,
                            format!(
                                "unicast peer {a} (node {peer}) is outside the {family} subnets \
                                 of `{name}` on node {node}"
                            ),
                            "VRRP peers must share a subnet; use the peer's address in it",
                        );
                    }
                }
            }
        }
        out
    }

    /// Where the file lists `addr` as an address of `node` on interface `i`.
    fn address_pos(&self, i: usize, node: &str, addr: IpAddr) -> Option<(Pos, String)> {
        let e = self.entry(i);
        let list = e.addresses.as_ref()?.value.get(node)?;
        list.value
            .iter()
            .enumerate()
            .find(|(_, c)| c.value.addr == addr)
            .map(|(j, c)| (c.pos, format!("{}.addresses.{node}[{j}]", e.path)))
    }

    fn vips(
        &self,
        i: usize,
        list: &[VipEntry],
        gateways: &GatewayChecks,
        sink: &mut Sink,
    ) -> Vec<Vip> {
        let name = self.name(i);
        let mut out = Vec::new();
        for v in list {
            let addr = v.address.value.addr;
            let family = Family::of(addr);
            let apath = format!("{}.address", v.path);
            if !v.address.value.is_host() {
                sink.push(
                    v.address.pos,
                    &apath,
                    Rule::VipPrefix,
                    format!("VIP {} must be a single address", v.address.value),
                    format!("write {addr} (or /{})", Cidr::max_prefix(addr)),
                );
            }
            if let Some(ns) = &v.namespace
                && self.ns[i].as_deref() != Some(ns.value.as_str())
            {
                sink.push(
                    ns.pos,
                    format!("{}.namespace", v.path),
                    Rule::VipNamespace,
                    format!(
                        "VIP {addr} says namespace `{}`, but its interface `{name}` lives in {}",
                        ns.value,
                        describe_ns(&self.ns[i])
                    ),
                    "a VIP lives in its interface's namespace; remove `namespace` or move the VIP",
                );
            }
            let allow_off = v.allow_off_subnet.as_ref().is_some_and(|a| a.value);
            for node in &self.nodes {
                let fam: Vec<&Cidr> = self.addrs[i]
                    .get(node)
                    .map(|l| l.iter().filter(|c| Family::of(c.addr) == family).collect())
                    .unwrap_or_default();
                if fam.is_empty() {
                    sink.push(
                        v.address.pos,
                        &apath,
                        Rule::VipFamilyMissing,
                        format!("VIP {addr} is {family}, but `{name}` has no {family} address on node {node}"),
                        format!("add an {family} address of node {node} to `{name}`"),
                    );
                } else if !allow_off && !fam.iter().any(|c| c.contains(addr)) {
                    sink.push(
                        v.address.pos,
                        &apath,
                        Rule::VipOutsideSubnet,
                        format!("VIP {addr} is outside every subnet of `{name}` on node {node}"),
                        "add an address of that subnet on the node, or set `allow_off_subnet: true` \
                         if routing brings the traffic",
                    );
                }
            }
            let method = v.method.as_ref().map_or(FailoverMethod::Vrrp, |m| m.value);
            if method.needs_gateway() && gateways.get(family).is_none() {
                let pos = v.method.as_ref().map_or(v.address.pos, |m| m.pos);
                let key = if family == Family::Ipv4 {
                    "ipv4"
                } else {
                    "ipv6"
                };
                sink.push(
                    pos,
                    format!("{}.method", v.path),
                    Rule::GatewayCheckMissing,
                    format!("VIP {addr} fails over on {method}, but `{name}` has no {family} gateway check"),
                    format!("add `gateway: {{{key}: {{target: ...}}}}` to `{name}`, or use method vrrp or link"),
                );
            }
            // One slot is one virtual router per family, and a router gives up as a whole:
            // every VIP of a (slot, family) must fail over on the same signals.
            if let Some(first) = out.iter().find(|x: &&Vip| Family::of(x.address) == family)
                && first.method != method
            {
                let pos = v.method.as_ref().map_or(v.address.pos, |m| m.pos);
                sink.push(
                    pos,
                    format!("{}.method", v.path),
                    Rule::SlotMixedMethods,
                    format!(
                        "VIP {addr} fails over on {method}, but {} VIP {} of the same slot \
                         fails over on {}; one slot and family is one virtual router",
                        family, first.address, first.method
                    ),
                    "give both the same method, or move one to the other slot (`vips.master` / \
                     `vips.backup`) or to another interface",
                );
            }
            if let Some(z) = v.zone.as_ref().filter(|z| z.value.trim().is_empty()) {
                sink.push(
                    z.pos,
                    format!("{}.zone", v.path),
                    Rule::InvalidName,
                    "the zone is empty",
                    "remove `zone` for the default zone, or name it",
                );
            }
            out.push(Vip {
                address: addr,
                method,
                zone: v
                    .zone
                    .as_ref()
                    .map_or(DEFAULT_ZONE.to_owned(), |z| z.value.clone()),
                service: v.service.as_ref().map(|s| s.value.clone()),
                allow_off_subnet: allow_off,
            });
        }
        out
    }

    fn slot(
        &self,
        i: usize,
        name: SlotName,
        entry: Option<&SlotEntry>,
        vips: Vec<Vip>,
        vrrp_path: &str,
        sink: &mut Sink,
    ) -> Slot {
        let path = format!("{vrrp_path}.{name}");
        let default_preferred = match name {
            SlotName::Master => self.nodes.first(),
            SlotName::Backup => self.nodes.get(1).or(self.nodes.first()),
        }
        .cloned()
        .unwrap_or_default();
        let preferred = match entry.and_then(|e| e.preferred.as_ref()) {
            Some(p) if self.known_node(p, &format!("{path}.preferred"), sink) => p.value.clone(),
            _ => default_preferred,
        };
        let mut priorities: BTreeMap<String, u8> = self
            .nodes
            .iter()
            .map(|n| {
                let p = if *n == preferred {
                    DEFAULT_PREFERRED_PRIORITY
                } else {
                    DEFAULT_OTHER_PRIORITY
                };
                (n.clone(), p)
            })
            .collect();
        let mut prio_pos: HashMap<&str, Pos> = HashMap::new();
        if let Some(given) = entry.and_then(|e| e.priority.as_ref()) {
            for (node, p) in &given.value.0 {
                let ppath = format!("{path}.priority.{}", node.value);
                if !self.known_node(node, &ppath, sink) {
                    continue;
                }
                // 255 belongs to the address owner: the node whose own addresses are the VIPs.
                let owner = !vips.is_empty()
                    && vips.iter().all(|v| {
                        self.addrs[i]
                            .get(&node.value)
                            .is_some_and(|l| l.iter().any(|c| c.addr == v.address))
                    });
                match u8::try_from(p.value) {
                    Ok(v @ 1..=254) => {
                        priorities.insert(node.value.clone(), v);
                    }
                    Ok(255) if owner => {
                        priorities.insert(node.value.clone(), 255);
                    }
                    _ => sink.push(
                        p.pos,
                        ppath,
                        Rule::Priority,
                        format!(
                            "priority {} of node {} is outside 1-254",
                            p.value, node.value
                        ),
                        "0 means \"giving up\" and 255 \"address owner\" (only for a node whose \
                         own addresses are all the slot's VIPs)",
                    ),
                }
                prio_pos.insert(node.value.as_str(), p.pos);
            }
            let mine = priorities.get(&preferred).copied().unwrap_or(0);
            if let Some((other, p)) = priorities
                .iter()
                .filter(|(n, _)| **n != preferred)
                .max_by_key(|(_, p)| **p)
                && *p >= mine
            {
                let pos = prio_pos
                    .get(preferred.as_str())
                    .or(prio_pos.get(other.as_str()))
                    .copied()
                    .unwrap_or(given.pos);
                sink.push(
                    pos,
                    format!("{path}.priority"),
                    Rule::PreferredNotHighest,
                    format!(
                        "preferred node {preferred} has priority {mine}, but node {other} has {p}"
                    ),
                    "give the preferred node the highest priority, or change `preferred`",
                );
            }
        }
        // Slot VRIDs are resolved later for the whole file; keep the pin range-checked here.
        let pinned =
            entry
                .and_then(|e| e.vrid.as_ref())
                .and_then(|v| match u8::try_from(v.value) {
                    Ok(x) if x >= 1 => Some(Vrid {
                        value: x,
                        pinned: true,
                    }),
                    _ => {
                        sink.push(
                            v.pos,
                            format!("{path}.vrid"),
                            Rule::VridRange,
                            format!("VRID {} is outside 1-255", v.value),
                            "pin a VRID from 1 to 255, or remove `vrid` to have one assigned",
                        );
                        None
                    }
                });
        Slot {
            name,
            preferred,
            priorities,
            vrid: pinned,
            vips,
        }
    }

    fn check_vip_uniqueness(&self, sink: &mut Sink) {
        let mut seen: HashMap<(Option<String>, IpAddr), Pos> = HashMap::new();
        for (i, e) in self.file.interfaces.iter().enumerate() {
            let Some(vips) = &e.vips else { continue };
            for v in vips.master.iter().chain(&vips.backup) {
                let key = (self.ns[i].clone(), v.address.value.addr);
                if let Some(first) = seen.get(&key) {
                    sink.push(
                        v.address.pos,
                        format!("{}.address", v.path),
                        Rule::VipDuplicate,
                        format!(
                            "VIP {} is listed twice in {} (first on line {})",
                            key.1,
                            describe_ns(&key.0),
                            first.line
                        ),
                        "list each VIP once, in the master or the backup list",
                    );
                } else {
                    seen.insert(key, v.address.pos);
                }
            }
        }
    }

    fn assign_vrids(
        &self,
        mut vrrps: Vec<Option<Vrrp>>,
        segments: &[Option<String>],
        sink: &mut Sink,
    ) -> Vec<Option<Vrrp>> {
        let mut requests = Vec::new();
        let mut owners: Vec<(usize, SlotName)> = Vec::new();
        for (i, v) in vrrps.iter().enumerate() {
            let (Some(v), Some(seg)) = (v, &segments[i]) else {
                continue;
            };
            for slot in v.slots() {
                if slot.vips.is_empty() && slot.vrid.is_none() {
                    continue;
                }
                requests.push(vrid::Request {
                    segment: seg.clone(),
                    identity: format!("{seg}|{}|{}", self.name(i), slot.name),
                    pinned: slot.vrid.map(|v| v.value),
                });
                owners.push((i, slot.name));
            }
        }
        let (assigned, conflicts) = vrid::assign(&requests);
        for c in conflicts {
            match c {
                vrid::Conflict::Pinned { index, other, vrid } => {
                    let (i, s) = owners[index];
                    let (j, t) = owners[other];
                    let (pos, path) = self.vrid_pos(i, s);
                    sink.push(
                        pos,
                        path,
                        Rule::VridCollision,
                        format!(
                            "VRID {vrid} of `{}` slot {s} collides with `{}` slot {t} on L2 \
                             segment {}",
                            self.name(i),
                            self.name(j),
                            requests[index].segment
                        ),
                        "slots on one segment need distinct VRIDs; pin another or remove `vrid`",
                    );
                }
                vrid::Conflict::Exhausted { index } => {
                    let (i, s) = owners[index];
                    let e = self.entry(i);
                    sink.push(
                        e.pos,
                        format!("{}.vrrp.{s}", e.path),
                        Rule::VridExhausted,
                        format!(
                            "L2 segment {} has more than 255 VRRP slots; none is left for `{}` slot {s}",
                            requests[index].segment,
                            self.name(i)
                        ),
                        "split the segment into VLANs",
                    );
                }
            }
        }
        for ((i, s), v) in owners.into_iter().zip(assigned) {
            let Some(value) = v else { continue };
            if let Some(vrrp) = vrrps[i].as_mut() {
                let slot = match s {
                    SlotName::Master => &mut vrrp.master,
                    SlotName::Backup => &mut vrrp.backup,
                };
                let pinned = slot.vrid.is_some_and(|v| v.pinned);
                slot.vrid = Some(Vrid { value, pinned });
            }
        }
        vrrps
    }

    fn vrid_pos(&self, i: usize, s: SlotName) -> (Pos, String) {
        let e = self.entry(i);
        let slot = e.vrrp.as_ref().and_then(|v| match s {
            SlotName::Master => v.master.as_ref(),
            SlotName::Backup => v.backup.as_ref(),
        });
        match slot.and_then(|s| s.vrid.as_ref()) {
            Some(v) => (v.pos, format!("{}.vrrp.{s}.vrid", e.path)),
            None => (e.pos, e.path.clone()),
        }
    }
}
