//! The pure diff: (desired, observed) → ordered actions with reasons, and conflicts.
//!
//! No I/O here, so every ordering rule and every refusal is a unit test. The order is fixed
//! by phases: namespaces, link creation (parents first), moves into namespaces, MTU raised
//! (lower devices first), MACs, links taken down for enslaving, controllers, MTU lowered
//! (upper devices first), links set up (lower devices first), addresses removed, addresses
//! added. TR7 only plans actions on links the file declares; what it finds in their way is a
//! [`Conflict`], acted on only for foreign addresses and only with `remove_foreign`.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

use serde::Serialize;

use super::desired::{BondSpec, Desired, DesiredAddress, DesiredKind, DesiredLink};
use super::observe::{LinkKind, Observed, ObservedAddress, ObservedLink, ObservedNamespace};
use crate::config::{Cidr, HashPolicy, IfaceRef, LacpRate, Mac};

/// The MTU the kernel gives a new bridge, bond or veth.
pub const KERNEL_DEFAULT_MTU: u32 = 1500;

/// Choices of the operator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Remove foreign addresses from declared links (and addresses from bridge/bond ports).
    pub remove_foreign: bool,
}

/// What to do, in order, and what was found in the way.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Actions in execution order.
    pub actions: Vec<Action>,
    /// Conflicts, not acted on unless an action above says so.
    pub conflicts: Vec<Conflict>,
}

/// One step and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Action {
    /// What to do.
    #[serde(flatten)]
    pub step: Step,
    /// Why: which declaration and which observation ask for it.
    pub reason: String,
}

/// The other end of a veth created with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PeerSpec {
    /// Where the peer is created (file namespace) and its name.
    pub id: IfaceRef,
    /// Its MTU.
    pub mtu: u32,
    /// Its MAC, if the file sets one.
    pub mac: Option<Mac>,
}

/// One change to the kernel. Links are named by the file's namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Step {
    /// Create a named namespace (visible to `ip netns`).
    CreateNamespace {
        /// Its name.
        namespace: String,
    },
    /// Create a link; a veth is created together with its peer, in the peer's namespace.
    CreateLink {
        /// The link.
        link: IfaceRef,
        /// Kind and attributes.
        kind: DesiredKind,
        /// MTU given at creation (veths; other kinds get theirs in the MTU phase).
        mtu: Option<u32>,
        /// MAC given at creation.
        mac: Option<Mac>,
        /// The veth's other end.
        peer: Option<PeerSpec>,
    },
    /// Move a link (a veth-peer found in the root namespace) into its namespace.
    MoveLink {
        /// Where it is now.
        link: IfaceRef,
        /// The namespace it belongs in.
        to: String,
    },
    /// Change the MTU.
    SetMtu {
        /// The link.
        link: IfaceRef,
        /// Observed MTU.
        from: u32,
        /// Declared MTU.
        to: u32,
    },
    /// Change the MAC.
    SetMac {
        /// The link.
        link: IfaceRef,
        /// Observed MAC.
        from: Option<Mac>,
        /// Declared MAC.
        to: Mac,
    },
    /// Turn bridge spanning tree on or off.
    SetStp {
        /// The bridge.
        link: IfaceRef,
        /// Declared state.
        stp: bool,
    },
    /// Make a link a port of a bridge or bond, or of none.
    SetController {
        /// The link.
        link: IfaceRef,
        /// Observed controller.
        from: Option<String>,
        /// Declared controller (`None`: no controller).
        to: Option<String>,
    },
    /// Change bond options in place (only those that differ; `lacp_rate` only while the bond
    /// is down, so the plan sets the bond down before and up after).
    SetBond {
        /// The bond.
        link: IfaceRef,
        /// The changes.
        #[serde(flatten)]
        change: BondChange,
    },
    /// Set a link administratively down (before enslaving it, or to change a bond option
    /// the kernel changes only while the bond is down).
    SetDown {
        /// The link.
        link: IfaceRef,
    },
    /// Set a link administratively up.
    SetUp {
        /// The link.
        link: IfaceRef,
    },
    /// Remove an address (only foreign ones, only with `--remove-foreign`).
    RemoveAddress {
        /// The link.
        link: IfaceRef,
        /// The address.
        address: Cidr,
    },
    /// Add an address.
    AddAddress {
        /// The link.
        link: IfaceRef,
        /// The address.
        address: Cidr,
        /// Without duplicate address detection (VIPs).
        nodad: bool,
    },
}

/// Bond options to change: `None` leaves an option as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BondChange {
    /// MII monitoring interval, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub miimon_ms: Option<u32>,
    /// Primary member (`Some(None)`: no primary).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary: Option<Option<String>>,
    /// LACP rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lacp_rate: Option<LacpRate>,
    /// Transmit hash policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transmit_hash_policy: Option<HashPolicy>,
    /// Minimum links.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_links: Option<u32>,
}

impl BondChange {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl fmt::Display for BondChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(m) = self.miimon_ms {
            parts.push(format!("miimon {m} ms"));
        }
        if let Some(p) = &self.primary {
            parts.push(format!("primary {}", p.as_deref().unwrap_or("none")));
        }
        if let Some(r) = self.lacp_rate {
            parts.push(format!("lacp_rate {r}"));
        }
        if let Some(h) = self.transmit_hash_policy {
            parts.push(format!("transmit_hash_policy {h}"));
        }
        if let Some(m) = self.min_links {
            parts.push(format!("min_links {m}"));
        }
        f.write_str(&parts.join(", "))
    }
}

/// Something in the way of the file, reported and left alone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Conflict {
    /// What kind of conflict.
    pub kind: ConflictKind,
    /// The declared link it concerns.
    pub link: IfaceRef,
    /// What was found.
    pub message: String,
    /// What the operator can do.
    pub hint: String,
}

/// Kinds of conflicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConflictKind {
    /// A link of the declared name exists with another kind.
    WrongKind,
    /// A declared ethernet port does not exist (TR7 never creates ports).
    MissingPort,
    /// A veth's other end is not the declared veth-peer.
    VethPeer,
    /// A link of a veth-peer's name already exists in its namespace.
    NameTaken,
    /// An attribute that cannot be changed in place differs (VLAN id, bond mode...).
    AttributeDiffers,
    /// The link depends on a link that is in conflict.
    Blocked,
    /// An address the file does not declare on a declared link.
    ForeignAddress,
    /// An address on a bridge or bond port.
    MemberAddress,
    /// A declared address is also on another link of the namespace.
    AddressElsewhere,
}

impl fmt::Display for ConflictKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&super::serde_label(self))
    }
}

/// What a declared link is, or will be once the earlier phases ran.
#[derive(Clone, Debug)]
struct Current {
    mtu: u32,
    mac: Option<Mac>,
    up: bool,
    controller: Option<String>,
    stp: Option<bool>,
    /// Bond options as the kernel has them (or will, once created), primary by name.
    bond: Option<BondNow>,
    /// Addresses (empty for links created or moved by this plan: the kernel flushes them).
    addresses: Vec<ObservedAddress>,
}

/// A bond's changeable options.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct BondNow {
    miimon_ms: Option<u32>,
    primary: Option<String>,
    lacp_rate: Option<LacpRate>,
    transmit_hash_policy: Option<HashPolicy>,
    min_links: Option<u32>,
}

impl BondNow {
    /// What `apply` gives a bond it creates (the primary is set once members are ports).
    fn created(spec: &BondSpec) -> Self {
        match spec {
            BondSpec::ActiveBackup { miimon, .. } => Self {
                miimon_ms: Some(millis(*miimon)),
                ..Self::default()
            },
            BondSpec::Lacp {
                lacp_rate,
                transmit_hash_policy,
                min_links,
            } => Self {
                miimon_ms: Some(LACP_MIIMON_MS),
                primary: None,
                lacp_rate: Some(*lacp_rate),
                transmit_hash_policy: Some(*transmit_hash_policy),
                min_links: Some(u32::from(*min_links)),
            },
        }
    }

    /// The options of `spec` that differ from these.
    fn change_to(&self, spec: &BondSpec) -> BondChange {
        match spec {
            BondSpec::ActiveBackup { primary, miimon } => BondChange {
                miimon_ms: Some(millis(*miimon)).filter(|m| self.miimon_ms != Some(*m)),
                primary: (self.primary != *primary).then(|| primary.clone()),
                ..BondChange::default()
            },
            BondSpec::Lacp {
                lacp_rate,
                transmit_hash_policy,
                min_links,
            } => BondChange {
                lacp_rate: Some(*lacp_rate).filter(|r| self.lacp_rate != Some(*r)),
                transmit_hash_policy: Some(*transmit_hash_policy)
                    .filter(|h| self.transmit_hash_policy != Some(*h)),
                min_links: Some(u32::from(*min_links)).filter(|m| self.min_links != Some(*m)),
                ..BondChange::default()
            },
        }
    }
}

/// The MII monitoring interval `apply` gives an 802.3ad bond (the file has none for LACP):
/// a member losing carrier leaves the aggregator within 100 ms.
pub const LACP_MIIMON_MS: u32 = 100;

/// A duration in whole ms, as the kernel takes bond intervals.
pub fn millis(d: std::time::Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

#[derive(Default)]
struct Phases {
    namespaces: Vec<Action>,
    creates: Vec<(usize, Action)>,
    moves: Vec<Action>,
    mtu_up: Vec<(usize, Action)>,
    attrs: Vec<Action>,
    downs: Vec<Action>,
    controllers: Vec<Action>,
    bonds: Vec<Action>,
    mtu_down: Vec<(usize, Action)>,
    ups: Vec<(usize, Action)>,
    removes: Vec<Action>,
    adds: Vec<Action>,
}

fn act(step: Step, reason: impl Into<String>) -> Action {
    Action {
        step,
        reason: reason.into(),
    }
}

/// One observed namespace with its links and addresses indexed: `plan()` looks every
/// declared link and address up, and linear scans made a 1,000-link plan quadratic.
struct NsIndex<'a> {
    by_name: HashMap<&'a str, &'a ObservedLink>,
    by_index: HashMap<u32, &'a ObservedLink>,
    addresses: HashMap<u32, Vec<&'a ObservedAddress>>,
    by_addr: HashMap<IpAddr, Vec<&'a ObservedAddress>>,
}

impl<'a> NsIndex<'a> {
    fn new(ns: &'a ObservedNamespace) -> Self {
        let mut ix = Self {
            by_name: HashMap::with_capacity(ns.links.len()),
            by_index: HashMap::with_capacity(ns.links.len()),
            addresses: HashMap::new(),
            by_addr: HashMap::with_capacity(ns.addresses.len()),
        };
        for l in &ns.links {
            ix.by_name.insert(l.name.as_str(), l);
            ix.by_index.insert(l.ifindex, l);
        }
        for a in &ns.addresses {
            ix.addresses.entry(a.ifindex).or_default().push(a);
            ix.by_addr.entry(a.cidr.addr).or_default().push(a);
        }
        ix
    }

    fn link(&self, name: &str) -> Option<&'a ObservedLink> {
        self.by_name.get(name).copied()
    }

    fn link_by_index(&self, ifindex: u32) -> Option<&'a ObservedLink> {
        self.by_index.get(&ifindex).copied()
    }

    fn addresses_of(&self, ifindex: u32) -> impl Iterator<Item = &'a ObservedAddress> + '_ {
        self.addresses.get(&ifindex).into_iter().flatten().copied()
    }

    fn with_addr(&self, addr: IpAddr) -> impl Iterator<Item = &'a ObservedAddress> + '_ {
        self.by_addr.get(&addr).into_iter().flatten().copied()
    }
}

/// The indexes of every existing observed namespace, by the file's name for it; a
/// namespace that does not exist (or was not observed) looks empty.
struct Index<'a> {
    /// A few namespaces: a list.
    namespaces: Vec<(Option<&'a str>, NsIndex<'a>)>,
    empty: NsIndex<'a>,
}

impl<'a> Index<'a> {
    fn new(observed: &'a Observed) -> Self {
        static EMPTY: std::sync::OnceLock<ObservedNamespace> = std::sync::OnceLock::new();
        Self {
            namespaces: observed
                .namespaces
                .iter()
                .filter(|n| n.exists)
                .map(|n| (n.name.as_deref(), NsIndex::new(n)))
                .collect(),
            empty: NsIndex::new(EMPTY.get_or_init(ObservedNamespace::default)),
        }
    }

    fn ns(&self, ns: Option<&str>) -> &NsIndex<'a> {
        self.namespaces
            .iter()
            .find(|(n, _)| *n == ns)
            .map_or(&self.empty, |(_, ix)| ix)
    }

    fn exists(&self, ns: Option<&str>) -> bool {
        self.namespaces.iter().any(|(n, _)| *n == ns)
    }
}

/// Computes the actions that make `observed` match `desired`, in dependency order.
pub fn plan(desired: &Desired, observed: &Observed, options: Options) -> Plan {
    let mut ph = Phases::default();
    let mut conflicts = Vec::new();
    let index = Index::new(observed);
    let ns_of = |ns: Option<&str>| index.ns(ns);
    // Each link's depth once: `desired.depth()` scans the links for members.
    let depths: Vec<usize> = desired.links.iter().map(|l| desired.depth(l)).collect();
    let positions: HashMap<(Option<&str>, &str), usize> = desired
        .links
        .iter()
        .enumerate()
        .map(|(i, l)| ((l.id.namespace.as_deref(), l.id.name.as_str()), i))
        .collect();

    for ns in desired.namespaces().into_iter().flatten() {
        if !index.exists(Some(&ns)) {
            let users: Vec<String> = desired
                .links
                .iter()
                .filter(|l| l.id.namespace.as_deref() == Some(ns.as_str()))
                .map(|l| l.id.to_string())
                .collect();
            ph.namespaces.push(act(
                Step::CreateNamespace { namespace: ns },
                format!("namespace of {} does not exist", users.join(", ")),
            ));
        }
    }

    // Pass 1: the state of every declared link once creation and moves are done; `None` for
    // links in conflict, which nothing below touches.
    let mut current: Vec<Option<Current>> = vec![None; desired.links.len()];
    let index_of = |ns: Option<&str>, name: &str| positions.get(&(ns, name)).copied();
    // Lower devices first, so a VLAN sees what its parent will be whatever the file order.
    let mut order: Vec<usize> = (0..desired.links.len()).collect();
    order.sort_by_key(|&i| depths[i]);
    for &i in &order {
        let link = &desired.links[i];
        let ns_name = link.id.namespace.as_deref();
        let obs = ns_of(ns_name);
        let depth = depths[i];
        match &link.kind {
            DesiredKind::VethPeer { .. } => {} // decided with its veth
            DesiredKind::Ethernet => match obs.link(&link.id.name) {
                Some(o) => current[i] = Some(present(o, obs)),
                None => conflicts.push(Conflict {
                    kind: ConflictKind::MissingPort,
                    link: link.id.clone(),
                    message: format!("ethernet port {} does not exist", link.id),
                    hint: "TR7 never creates ports: check the name and the NIC".to_owned(),
                }),
            },
            DesiredKind::Veth { peer } => {
                let peer_i = index_of(peer.namespace.as_deref(), &peer.name);
                let peer_decl = peer_i.map(|p| &desired.links[p]);
                let peer_obs_ns = ns_of(peer.namespace.as_deref());
                match obs.link(&link.id.name) {
                    Some(o) if o.kind != LinkKind::Veth => {
                        conflicts.push(wrong_kind(link, o));
                        if let Some(p) = peer_decl {
                            conflicts.push(blocked(p, &link.id));
                        }
                    }
                    Some(o) => {
                        current[i] = Some(present(o, obs));
                        let (Some(p), Some(pd)) = (peer_i, peer_decl) else {
                            continue;
                        };
                        let in_place = peer_obs_ns.link(&peer.name).filter(|pl| {
                            pl.kind == LinkKind::Veth
                                && pl.link == Some(o.ifindex)
                                && o.link == Some(pl.ifindex)
                        });
                        // A peer still in the veth's own namespace (no netnsid on the veth).
                        let beside = obs.link(&peer.name).filter(|pl| {
                            peer.namespace != link.id.namespace
                                && pl.kind == LinkKind::Veth
                                && o.link_netnsid.is_none()
                                && pl.link == Some(o.ifindex)
                                && o.link == Some(pl.ifindex)
                        });
                        if let Some(pl) = in_place {
                            current[p] = Some(present(pl, peer_obs_ns));
                        } else if let (Some(pl), Some(to)) = (beside, &peer.namespace) {
                            ph.moves.push(act(
                                Step::MoveLink {
                                    link: IfaceRef {
                                        namespace: link.id.namespace.clone(),
                                        name: peer.name.clone(),
                                    },
                                    to: to.clone(),
                                },
                                format!(
                                    "veth-peer {} of {} is in the {} namespace",
                                    pd.id,
                                    link.id,
                                    super::ns_label(ns_name)
                                ),
                            ));
                            // Moving a link takes it down and flushes its addresses.
                            let mut c = present(pl, obs);
                            c.up = false;
                            c.controller = None;
                            c.addresses.clear();
                            current[p] = Some(c);
                        } else {
                            conflicts.push(Conflict {
                                kind: ConflictKind::VethPeer,
                                link: pd.id.clone(),
                                message: format!(
                                    "veth {} exists but its other end is not {}",
                                    link.id, pd.id
                                ),
                                hint: format!(
                                    "delete {} (`ip link del {}`) and apply again",
                                    link.id, link.id.name
                                ),
                            });
                        }
                    }
                    None => {
                        let Some(pd) = peer_decl else { continue };
                        if let Some(taken) = peer_obs_ns.link(&peer.name) {
                            conflicts.push(Conflict {
                                kind: ConflictKind::NameTaken,
                                link: pd.id.clone(),
                                message: format!(
                                    "{} is to be created with veth {}, but a {} link of that name exists there",
                                    pd.id,
                                    link.id,
                                    kind_label(&taken.kind)
                                ),
                                hint: "rename or delete the link in the way".to_owned(),
                            });
                            conflicts.push(blocked(link, &pd.id));
                            continue;
                        }
                        ph.creates.push((
                            depth,
                            act(
                                Step::CreateLink {
                                    link: link.id.clone(),
                                    kind: link.kind.clone(),
                                    mtu: Some(link.mtu),
                                    mac: link.mac,
                                    peer: Some(PeerSpec {
                                        id: pd.id.clone(),
                                        mtu: pd.mtu,
                                        mac: pd.mac,
                                    }),
                                },
                                format!("veth {} and its peer {} do not exist", link.id, pd.id),
                            ),
                        ));
                        current[i] = Some(created(link, link.mtu));
                        if let Some(p) = peer_i {
                            current[p] = Some(created(pd, pd.mtu));
                        }
                    }
                }
            }
            DesiredKind::Bridge { .. } | DesiredKind::Bond(_) | DesiredKind::Vlan { .. } => {
                match obs.link(&link.id.name) {
                    Some(o) => {
                        if Some(link.kind.kernel_kind().unwrap_or_default()) != o.kind.kernel_kind()
                        {
                            conflicts.push(wrong_kind(link, o));
                        } else if let Some(c) = attribute_conflict(link, o, obs) {
                            conflicts.push(c);
                        } else {
                            current[i] = Some(present(o, obs));
                        }
                    }
                    None => {
                        let (reason, inherit) = match &link.kind {
                            DesiredKind::Vlan { parent, .. } => {
                                let Some(pc) =
                                    index_of(ns_name, parent).and_then(|p| current[p].as_ref())
                                else {
                                    conflicts.push(blocked(
                                        link,
                                        &IfaceRef {
                                            namespace: link.id.namespace.clone(),
                                            name: parent.clone(),
                                        },
                                    ));
                                    continue;
                                };
                                // A new VLAN starts with its parent's MTU.
                                (format!("vlan {} does not exist", link.id), pc.mtu)
                            }
                            other => (
                                format!("{} {} does not exist", other.type_name(), link.id),
                                KERNEL_DEFAULT_MTU,
                            ),
                        };
                        ph.creates.push((
                            depth,
                            act(
                                Step::CreateLink {
                                    link: link.id.clone(),
                                    kind: link.kind.clone(),
                                    mtu: None,
                                    mac: link.mac,
                                    peer: None,
                                },
                                reason,
                            ),
                        ));
                        let mut c = created(link, inherit);
                        match &link.kind {
                            DesiredKind::Bridge { stp } => c.stp = Some(*stp),
                            DesiredKind::Bond(spec) => c.bond = Some(BondNow::created(spec)),
                            _ => {}
                        }
                        current[i] = Some(c);
                    }
                }
            }
        }
    }

    // Bonds this plan sets down to change lacp_rate, and the VLANs over them (the kernel
    // sets a VLAN down with its parent, and up again with it): setting a link down flushes
    // its IPv6 addresses, so they are added again after.
    let mut cycled = vec![false; desired.links.len()];
    for &i in &order {
        let link = &desired.links[i];
        cycled[i] = match (&link.kind, &current[i]) {
            (DesiredKind::Bond(spec), Some(c)) => {
                c.up && c
                    .bond
                    .as_ref()
                    .is_some_and(|b| b.change_to(spec).lacp_rate.is_some())
            }
            (DesiredKind::Vlan { parent, .. }, Some(_)) => {
                index_of(link.id.namespace.as_deref(), parent).is_some_and(|p| cycled[p])
            }
            _ => false,
        };
    }

    // Pass 2: attributes, membership, state and addresses of every link not in conflict.
    for (i, link) in desired.links.iter().enumerate() {
        let Some(mut cur) = current[i].clone() else {
            continue;
        };
        if cycled[i] {
            cur.addresses
                .retain(|a| a.cidr.addr.is_ipv4() || a.is_kernel_link_local());
        }
        let depth = depths[i];
        let id = &link.id;
        let mut up = cur.up;
        if cur.mtu != link.mtu {
            let a = act(
                Step::SetMtu {
                    link: id.clone(),
                    from: cur.mtu,
                    to: link.mtu,
                },
                if link.mtu > cur.mtu {
                    format!(
                        "MTU {} → {} (file); raised before upper devices",
                        cur.mtu, link.mtu
                    )
                } else {
                    format!(
                        "MTU {} → {} (file); lowered after upper devices",
                        cur.mtu, link.mtu
                    )
                },
            );
            if link.mtu > cur.mtu {
                ph.mtu_up.push((depth, a));
            } else {
                ph.mtu_down.push((depth, a));
            }
        }
        if let Some(mac) = link.mac
            && cur.mac != Some(mac)
        {
            ph.attrs.push(act(
                Step::SetMac {
                    link: id.clone(),
                    from: cur.mac,
                    to: mac,
                },
                format!("MAC of {id} differs from the file"),
            ));
        }
        if let DesiredKind::Bridge { stp } = link.kind
            && cur.stp.is_some_and(|s| s != stp)
        {
            ph.attrs.push(act(
                Step::SetStp {
                    link: id.clone(),
                    stp,
                },
                format!(
                    "spanning tree of {id} is {}",
                    if stp { "off" } else { "on" }
                ),
            ));
        }
        if cur.controller != link.controller {
            let target_ok = link.controller.as_ref().is_none_or(|c| {
                index_of(id.namespace.as_deref(), c).is_some_and(|ci| current[ci].is_some())
            });
            if !target_ok {
                let c = link.controller.clone().unwrap_or_default();
                conflicts.push(blocked(
                    link,
                    &IfaceRef {
                        namespace: id.namespace.clone(),
                        name: c,
                    },
                ));
            } else {
                if up && link.controller.is_some() {
                    ph.downs.push(act(
                        Step::SetDown { link: id.clone() },
                        format!("ports are enslaved while down; {id} is up"),
                    ));
                    up = false;
                }
                let reason = match (&cur.controller, &link.controller) {
                    (None, Some(c)) => format!("{id} is a port of {c} in the file"),
                    (Some(o), Some(c)) => format!("{id} is a port of {o}, the file says {c}"),
                    (Some(o), None) => format!("{id} is a port of {o}, the file says of none"),
                    (None, None) => String::new(),
                };
                ph.controllers.push(act(
                    Step::SetController {
                        link: id.clone(),
                        from: cur.controller.clone(),
                        to: link.controller.clone(),
                    },
                    reason,
                ));
            }
        }
        if let (DesiredKind::Bond(spec), Some(now)) = (&link.kind, &cur.bond) {
            let change = now.change_to(spec);
            if !change.is_empty() {
                if change.lacp_rate.is_some() && up {
                    ph.downs.push(act(
                        Step::SetDown { link: id.clone() },
                        format!("the kernel changes lacp_rate only while {id} is down"),
                    ));
                    up = false;
                }
                ph.bonds.push(act(
                    Step::SetBond {
                        link: id.clone(),
                        change: change.clone(),
                    },
                    format!("bond options of {id} differ from the file: {change}"),
                ));
            }
        }
        if !up {
            ph.ups.push((
                depth,
                act(Step::SetUp { link: id.clone() }, format!("{id} is down")),
            ));
        }
        plan_addresses(
            &positions,
            &index,
            link,
            &cur,
            options,
            &mut ph,
            &mut conflicts,
        );
    }

    // Stable sorts keep file order within one depth.
    ph.creates.sort_by_key(|(d, _)| *d);
    ph.mtu_up.sort_by_key(|(d, _)| *d);
    ph.mtu_down.sort_by_key(|(d, _)| std::cmp::Reverse(*d));
    ph.ups.sort_by_key(|(d, _)| *d);
    let mut actions = ph.namespaces;
    actions.extend(ph.creates.into_iter().map(|(_, a)| a));
    actions.extend(ph.moves);
    actions.extend(ph.mtu_up.into_iter().map(|(_, a)| a));
    actions.extend(ph.attrs);
    actions.extend(ph.downs);
    actions.extend(ph.controllers);
    actions.extend(ph.bonds);
    actions.extend(ph.mtu_down.into_iter().map(|(_, a)| a));
    actions.extend(ph.ups.into_iter().map(|(_, a)| a));
    actions.extend(ph.removes);
    actions.extend(ph.adds);
    Plan { actions, conflicts }
}

fn plan_addresses(
    positions: &HashMap<(Option<&str>, &str), usize>,
    index: &Index<'_>,
    link: &DesiredLink,
    cur: &Current,
    options: Options,
    ph: &mut Phases,
    conflicts: &mut Vec<Conflict>,
) {
    let id = &link.id;
    let ns = index
        .exists(id.namespace.as_deref())
        .then(|| index.ns(id.namespace.as_deref()));
    let own_index = ns.and_then(|n| n.link(&id.name)).map(|l| l.ifindex);
    let is_port = link.controller.is_some();
    let mut removed: Vec<Cidr> = Vec::new();
    for a in &cur.addresses {
        if a.is_kernel_link_local() || link.addresses.iter().any(|d| d.cidr == a.cidr) {
            continue;
        }
        let (kind, message) = if is_port {
            (
                ConflictKind::MemberAddress,
                format!(
                    "{} is on {id}, a port of {}: a port's addresses are not used",
                    a.cidr,
                    link.controller.as_deref().unwrap_or_default()
                ),
            )
        } else {
            (
                ConflictKind::ForeignAddress,
                format!("{} is on {id} but not in the file", a.cidr),
            )
        };
        conflicts.push(Conflict {
            kind,
            link: id.clone(),
            message,
            hint: if options.remove_foreign {
                "removed (--remove-foreign)".to_owned()
            } else {
                "left alone; add it to the file, remove it by hand, or apply with --remove-foreign"
                    .to_owned()
            },
        });
        if options.remove_foreign {
            removed.push(a.cidr);
            ph.removes.push(act(
                Step::RemoveAddress {
                    link: id.clone(),
                    address: a.cidr,
                },
                format!("foreign address {} on {id} (--remove-foreign)", a.cidr),
            ));
        }
    }
    for d in &link.addresses {
        if cur.addresses.iter().any(|a| a.cidr == d.cidr) {
            continue;
        }
        // The same address with another prefix: the kernel would refuse (IPv6) or keep both.
        if let Some(other) = cur
            .addresses
            .iter()
            .find(|a| a.cidr.addr == d.cidr.addr && !removed.contains(&a.cidr))
        {
            conflicts.push(Conflict {
                kind: ConflictKind::ForeignAddress,
                link: id.clone(),
                message: format!(
                    "{id} has {} where the file says {}; not added",
                    other.cidr, d.cidr
                ),
                hint: "apply with --remove-foreign to replace it".to_owned(),
            });
            continue;
        }
        if let Some(ns) = ns {
            for elsewhere in ns
                .with_addr(d.cidr.addr)
                .filter(|a| Some(a.ifindex) != own_index)
            {
                let on = ns.link_by_index(elsewhere.ifindex).map_or_else(
                    || format!("ifindex {}", elsewhere.ifindex),
                    |l| l.name.clone(),
                );
                if !positions.contains_key(&(id.namespace.as_deref(), on.as_str())) {
                    conflicts.push(Conflict {
                        kind: ConflictKind::AddressElsewhere,
                        link: id.clone(),
                        message: format!(
                            "{} is also on {on}, which the file does not declare",
                            elsewhere.cidr
                        ),
                        hint: format!("TR7 never touches {on}; remove the address there by hand"),
                    });
                }
            }
        }
        ph.adds.push(act(
            Step::AddAddress {
                link: id.clone(),
                address: d.cidr,
                nodad: d.nodad,
            },
            describe_missing(d, id),
        ));
    }
}

fn describe_missing(d: &DesiredAddress, id: &IfaceRef) -> String {
    if d.vip {
        format!("VIP {} is not on {id} (added without DAD)", d.cidr.addr)
    } else {
        format!("address {} is not on {id}", d.cidr)
    }
}

fn present(o: &ObservedLink, ns: &NsIndex<'_>) -> Current {
    Current {
        mtu: o.mtu,
        mac: o.mac,
        up: o.up,
        controller: o
            .controller
            .and_then(|c| ns.link_by_index(c))
            .map(|c| c.name.clone()),
        stp: o.stp,
        bond: o.bond.as_ref().map(|b| BondNow {
            miimon_ms: b.miimon_ms,
            primary: b
                .primary
                .and_then(|p| ns.link_by_index(p))
                .map(|p| p.name.clone()),
            lacp_rate: b.lacp_rate,
            transmit_hash_policy: b.transmit_hash_policy,
            min_links: b.min_links,
        }),
        addresses: ns.addresses_of(o.ifindex).copied().collect(),
    }
}

fn created(link: &DesiredLink, mtu: u32) -> Current {
    Current {
        mtu,
        mac: link.mac,
        up: false,
        controller: None,
        stp: None,
        bond: None,
        addresses: Vec::new(),
    }
}

fn kind_label(kind: &LinkKind) -> &str {
    kind.kernel_kind().unwrap_or("ethernet")
}

fn wrong_kind(link: &DesiredLink, o: &ObservedLink) -> Conflict {
    Conflict {
        kind: ConflictKind::WrongKind,
        link: link.id.clone(),
        message: format!(
            "{} is declared as a {} but the kernel has a {} of that name",
            link.id,
            link.kind.type_name(),
            kind_label(&o.kind)
        ),
        hint: "TR7 does not delete links: rename or delete it by hand, then apply again".to_owned(),
    }
}

fn blocked(link: &DesiredLink, by: &IfaceRef) -> Conflict {
    Conflict {
        kind: ConflictKind::Blocked,
        link: link.id.clone(),
        message: format!(
            "{} is not planned: it depends on {by}, which is in conflict",
            link.id
        ),
        hint: format!("resolve the conflict of {by} first"),
    }
}

/// Attributes that cannot change in place: a VLAN's id, protocol and parent, a bond's mode.
/// Bond options change in place ([`Step::SetBond`]).
fn attribute_conflict(link: &DesiredLink, o: &ObservedLink, ns: &NsIndex<'_>) -> Option<Conflict> {
    let differs = |what: String| Conflict {
        kind: ConflictKind::AttributeDiffers,
        link: link.id.clone(),
        message: format!("{}: {what}", link.id),
        hint: format!(
            "delete {} (`ip link del {}`) and apply again",
            link.id, link.id.name
        ),
    };
    match (&link.kind, &o.vlan, &o.bond) {
        (
            DesiredKind::Vlan {
                parent,
                id,
                protocol,
            },
            Some(v),
            _,
        ) => {
            if v.id != *id || v.protocol != *protocol {
                return Some(differs(format!(
                    "the kernel has VLAN {} {}, the file says {} {}",
                    v.protocol, v.id, protocol, id
                )));
            }
            let kernel_parent = o
                .link
                .filter(|_| o.link_netnsid.is_none())
                .and_then(|p| ns.link_by_index(p));
            if kernel_parent.is_some_and(|p| &p.name != parent) {
                return Some(differs(format!(
                    "the kernel's parent is {}, the file says {parent}",
                    kernel_parent.map(|p| p.name.as_str()).unwrap_or_default()
                )));
            }
            None
        }
        (DesiredKind::Bond(spec), _, Some(b)) => {
            let mode = match spec {
                BondSpec::ActiveBackup { .. } => "active-backup",
                BondSpec::Lacp { .. } => "802.3ad",
            };
            (b.mode != mode).then(|| {
                differs(format!(
                    "the kernel's bond mode is {}, the file says {mode}",
                    b.mode
                ))
            })
        }
        _ => None,
    }
}

impl Plan {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CreateNamespace { namespace } => write!(f, "create namespace {namespace}"),
            Self::CreateLink {
                link, kind, peer, ..
            } => {
                write!(f, "create {} {link}", kind.type_name())?;
                if let Some(p) = peer {
                    write!(f, " with peer {}", p.id)?;
                }
                if let Some(k) = match kind {
                    DesiredKind::Vlan {
                        parent,
                        id,
                        protocol,
                    } => Some(format!(" on {parent} ({protocol} {id})")),
                    _ => None,
                } {
                    f.write_str(&k)?;
                }
                Ok(())
            }
            Self::MoveLink { link, to } => write!(f, "move {link} into namespace {to}"),
            Self::SetMtu { link, from, to } => write!(f, "set MTU of {link} {from} → {to}"),
            Self::SetMac { link, to, .. } => write!(f, "set MAC of {link} to {to}"),
            Self::SetStp { link, stp } => {
                write!(f, "set STP of {link} {}", if *stp { "on" } else { "off" })
            }
            Self::SetController { link, to, .. } => match to {
                Some(c) => write!(f, "make {link} a port of {c}"),
                None => write!(f, "release {link} from its controller"),
            },
            Self::SetBond { link, change } => write!(f, "set bond options of {link}: {change}"),
            Self::SetDown { link } => write!(f, "set {link} down"),
            Self::SetUp { link } => write!(f, "set {link} up"),
            Self::RemoveAddress { link, address } => write!(f, "remove {address} from {link}"),
            Self::AddAddress {
                link,
                address,
                nodad,
            } => write!(
                f,
                "add {address} to {link}{}",
                if *nodad { " (nodad)" } else { "" }
            ),
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}  ({})", self.step, self.reason)
    }
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {} (hint: {})", self.kind, self.message, self.hint)
    }
}

impl fmt::Display for Plan {
    /// The human form `tr7 plan` prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.actions.is_empty() {
            writeln!(f, "nothing to do")?;
        } else {
            writeln!(f, "{} actions:", self.actions.len())?;
            for (n, a) in self.actions.iter().enumerate() {
                writeln!(f, "  {:>3}. {a}", n + 1)?;
            }
        }
        if !self.conflicts.is_empty() {
            writeln!(f, "{} conflicts:", self.conflicts.len())?;
            for c in &self.conflicts {
                writeln!(f, "  - {c}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::observe::AddressFlags;

    fn id(ns: Option<&str>, name: &str) -> IfaceRef {
        IfaceRef {
            namespace: ns.map(str::to_owned),
            name: name.to_owned(),
        }
    }

    fn cidr(s: &str) -> Cidr {
        Cidr::parse(s).expect("cidr")
    }

    fn want(name: &str, kind: DesiredKind, mtu: u32, controller: Option<&str>) -> DesiredLink {
        DesiredLink {
            id: id(None, name),
            kind,
            mtu,
            mac: None,
            controller: controller.map(str::to_owned),
            addresses: Vec::new(),
        }
    }

    fn have(ifindex: u32, name: &str, kind: LinkKind, mtu: u32) -> ObservedLink {
        ObservedLink {
            ifindex,
            name: name.to_owned(),
            kind,
            mtu,
            mac: None,
            up: true,
            carrier: true,
            oper: "up".to_owned(),
            controller: None,
            link: None,
            link_netnsid: None,
            vlan: None,
            bond: None,
            stp: None,
            bond_port: None,
        }
    }

    fn root(links: Vec<ObservedLink>, addresses: Vec<ObservedAddress>) -> Observed {
        Observed {
            namespaces: vec![ObservedNamespace {
                name: None,
                exists: true,
                links,
                addresses,
                ..Default::default()
            }],
        }
    }

    fn addr(ifindex: u32, s: &str) -> ObservedAddress {
        ObservedAddress {
            ifindex,
            cidr: cidr(s),
            flags: AddressFlags::default(),
        }
    }

    /// A bridge br0 over ethernet eth1, both 9000, with one address and one VIP.
    fn bridge_over_port() -> Desired {
        let mut br = want("br0", DesiredKind::Bridge { stp: false }, 9000, None);
        br.addresses = vec![
            DesiredAddress {
                cidr: cidr("192.0.2.2/24"),
                nodad: false,
                vip: false,
            },
            DesiredAddress {
                cidr: cidr("192.0.2.10/32"),
                nodad: true,
                vip: true,
            },
        ];
        Desired {
            links: vec![br, want("eth1", DesiredKind::Ethernet, 9000, Some("br0"))],
        }
    }

    fn converged() -> Observed {
        let mut eth1 = have(2, "eth1", LinkKind::Ethernet, 9000);
        eth1.controller = Some(3);
        let mut br = have(3, "br0", LinkKind::Bridge, 9000);
        br.stp = Some(false);
        root(
            vec![have(1, "lo", LinkKind::Ethernet, 65536), eth1, br],
            vec![
                addr(1, "127.0.0.1/8"),
                addr(3, "192.0.2.2/24"),
                addr(3, "192.0.2.10/32"),
                addr(3, "fe80::1/64"),
            ],
        )
    }

    fn steps(p: &Plan) -> Vec<String> {
        p.actions.iter().map(|a| a.step.to_string()).collect()
    }

    // Proves idempotence: when the kernel already matches the file, the plan is empty and
    // kernel link-local addresses and undeclared links (lo) are not conflicts.
    #[test]
    fn converged_state_gives_empty_plan() {
        let p = plan(&bridge_over_port(), &converged(), Options::default());
        assert!(p.is_empty(), "{p}");
        assert!(p.conflicts.is_empty(), "{p}");
        assert_eq!(p.to_string(), "nothing to do\n");
    }

    // Proves the order from nothing: create the bridge, raise MTUs lower device first, enslave
    // while down, set up lower devices first, then addresses.
    #[test]
    fn order_from_scratch() {
        let mut eth1 = have(2, "eth1", LinkKind::Ethernet, 1500);
        eth1.up = true;
        let p = plan(
            &bridge_over_port(),
            &root(vec![eth1], vec![]),
            Options::default(),
        );
        assert_eq!(
            steps(&p),
            [
                "create bridge br0",
                "set MTU of eth1 1500 → 9000",
                "set MTU of br0 1500 → 9000",
                "set eth1 down",
                "make eth1 a port of br0",
                "set eth1 up",
                "set br0 up",
                "add 192.0.2.2/24 to br0",
                "add 192.0.2.10/32 to br0 (nodad)",
            ]
        );
        assert!(p.conflicts.is_empty());
    }

    // Proves MTU is lowered upper device first (the reverse of raising).
    #[test]
    fn mtu_lowered_in_reverse() {
        let mut d = bridge_over_port();
        for l in &mut d.links {
            l.mtu = 1500;
        }
        let p = plan(&d, &converged(), Options::default());
        assert_eq!(
            steps(&p),
            ["set MTU of br0 9000 → 1500", "set MTU of eth1 9000 → 1500"]
        );
    }

    // Proves a VLAN is created after its parent and its MTU raised after the parent's.
    #[test]
    fn vlan_after_parent() {
        let d = Desired {
            links: vec![
                want(
                    "eth0.100",
                    DesiredKind::Vlan {
                        parent: "eth0".into(),
                        id: 100,
                        protocol: crate::config::VlanProtocol::Dot1Q,
                    },
                    9000,
                    None,
                ),
                want("eth0", DesiredKind::Ethernet, 9000, None),
            ],
        };
        let p = plan(
            &d,
            &root(vec![have(2, "eth0", LinkKind::Ethernet, 1500)], vec![]),
            Options::default(),
        );
        assert_eq!(
            steps(&p),
            [
                "create vlan eth0.100 on eth0 (802.1Q 100)",
                "set MTU of eth0 1500 → 9000",
                "set MTU of eth0.100 1500 → 9000",
                "set eth0.100 up",
            ]
        );
    }

    // Proves foreign addresses on declared links are conflicts left alone, removed only with
    // remove_foreign, and that addresses on undeclared links are never touched.
    #[test]
    fn foreign_addresses() {
        let mut o = converged();
        o.namespaces[0]
            .links
            .push(have(9, "other0", LinkKind::Ethernet, 1500));
        o.namespaces[0].addresses.extend([
            addr(3, "203.0.113.9/24"),
            addr(2, "198.51.100.7/24"),
            addr(9, "203.0.113.50/24"),
        ]);
        let p = plan(&bridge_over_port(), &o, Options::default());
        assert!(p.is_empty(), "{p}");
        let kinds: Vec<ConflictKind> = p.conflicts.iter().map(|c| c.kind).collect();
        assert_eq!(
            kinds,
            [ConflictKind::ForeignAddress, ConflictKind::MemberAddress]
        );
        let p = plan(
            &bridge_over_port(),
            &o,
            Options {
                remove_foreign: true,
            },
        );
        assert_eq!(
            steps(&p),
            [
                "remove 203.0.113.9/24 from br0",
                "remove 198.51.100.7/24 from eth1"
            ]
        );
    }

    // Proves a declared name held by a link of another kind is a conflict: nothing is done to
    // it, and its ports are not enslaved to it.
    #[test]
    fn wrong_kind_is_left_alone() {
        let o = root(
            vec![
                have(2, "eth1", LinkKind::Ethernet, 9000),
                have(3, "br0", LinkKind::Veth, 1500),
            ],
            vec![],
        );
        let p = plan(&bridge_over_port(), &o, Options::default());
        assert!(p.is_empty(), "{p}");
        assert_eq!(p.conflicts[0].kind, ConflictKind::WrongKind);
        assert_eq!(p.conflicts[1].kind, ConflictKind::Blocked);
    }

    // Proves a missing ethernet port is reported, never created.
    #[test]
    fn missing_port() {
        let p = plan(
            &bridge_over_port(),
            &root(vec![], vec![]),
            Options::default(),
        );
        assert!(
            p.conflicts
                .iter()
                .any(|c| c.kind == ConflictKind::MissingPort)
        );
        assert!(!steps(&p).iter().any(|s| s.contains("eth1")), "{p}");
    }

    fn veth_pair() -> Desired {
        let mut peer = want(
            "eth0",
            DesiredKind::VethPeer {
                peer: "v-red".into(),
            },
            1500,
            None,
        );
        peer.id = id(Some("red"), "eth0");
        Desired {
            links: vec![
                want(
                    "v-red",
                    DesiredKind::Veth {
                        peer: id(Some("red"), "eth0"),
                    },
                    1500,
                    None,
                ),
                peer,
            ],
        }
    }

    // Proves a missing namespace is created before the veth whose peer goes there.
    #[test]
    fn namespace_then_veth() {
        let p = plan(&veth_pair(), &root(vec![], vec![]), Options::default());
        assert_eq!(
            steps(&p),
            [
                "create namespace red",
                "create veth v-red with peer red/eth0",
                "set v-red up",
                "set red/eth0 up",
            ]
        );
    }

    // Proves a veth-peer found beside its veth is moved into its namespace, then set up.
    #[test]
    fn peer_moved_into_namespace() {
        let mut v = have(5, "v-red", LinkKind::Veth, 1500);
        v.link = Some(6);
        let mut e = have(6, "eth0", LinkKind::Veth, 1500);
        e.link = Some(5);
        let mut o = root(vec![v, e], vec![]);
        o.namespaces.push(ObservedNamespace {
            name: Some("red".into()),
            exists: true,
            ..Default::default()
        });
        let p = plan(&veth_pair(), &o, Options::default());
        assert_eq!(
            steps(&p),
            ["move eth0 into namespace red", "set red/eth0 up"]
        );
    }

    // Proves a veth-peer name already taken in its namespace blocks creation.
    #[test]
    fn peer_name_taken() {
        let mut o = root(vec![], vec![]);
        o.namespaces.push(ObservedNamespace {
            name: Some("red".into()),
            exists: true,
            links: vec![have(2, "eth0", LinkKind::Bridge, 1500)],
            ..Default::default()
        });
        let p = plan(&veth_pair(), &o, Options::default());
        assert!(p.is_empty(), "{p}");
        assert_eq!(p.conflicts[0].kind, ConflictKind::NameTaken);
    }

    fn lacp_bond_with_vlan(rate: LacpRate, min_links: u16) -> Desired {
        let bond = want(
            "bond0",
            DesiredKind::Bond(BondSpec::Lacp {
                lacp_rate: rate,
                transmit_hash_policy: HashPolicy::Layer34,
                min_links,
            }),
            1500,
            None,
        );
        let mut vlan = want(
            "bond0.100",
            DesiredKind::Vlan {
                parent: "bond0".into(),
                id: 100,
                protocol: crate::config::VlanProtocol::Dot1Q,
            },
            1500,
            None,
        );
        vlan.addresses = vec![
            DesiredAddress {
                cidr: cidr("198.51.100.2/24"),
                nodad: false,
                vip: false,
            },
            DesiredAddress {
                cidr: cidr("2001:db8:100::2/64"),
                nodad: false,
                vip: false,
            },
        ];
        Desired {
            links: vec![
                want("eth0", DesiredKind::Ethernet, 1500, Some("bond0")),
                bond,
                vlan,
            ],
        }
    }

    /// The kernel state of [`lacp_bond_with_vlan`] with fast rate and min_links 1, up.
    fn lacp_converged() -> Observed {
        let mut eth0 = have(2, "eth0", LinkKind::Ethernet, 1500);
        eth0.controller = Some(3);
        let mut bond = have(3, "bond0", LinkKind::Bond, 1500);
        bond.bond = Some(crate::netlink::BondInfo {
            mode: "802.3ad".into(),
            miimon_ms: Some(100),
            min_links: Some(1),
            lacp_rate: Some(LacpRate::Fast),
            transmit_hash_policy: Some(HashPolicy::Layer34),
            ..Default::default()
        });
        let mut vlan = have(4, "bond0.100", LinkKind::Vlan, 1500);
        vlan.link = Some(3);
        vlan.vlan = Some(crate::netlink::VlanInfo {
            id: 100,
            protocol: crate::config::VlanProtocol::Dot1Q,
        });
        root(
            vec![eth0, bond, vlan],
            vec![
                addr(4, "198.51.100.2/24"),
                addr(4, "2001:db8:100::2/64"),
                addr(4, "fe80::1/64"),
            ],
        )
    }

    // Proves a bond option that the kernel changes in place (min_links) is one action, with
    // nothing else, and that a converged bond plans nothing.
    #[test]
    fn bond_option_changed_in_place() {
        let same = plan(
            &lacp_bond_with_vlan(LacpRate::Fast, 1),
            &lacp_converged(),
            Options::default(),
        );
        assert!(same.is_empty() && same.conflicts.is_empty(), "{same}");
        let p = plan(
            &lacp_bond_with_vlan(LacpRate::Fast, 2),
            &lacp_converged(),
            Options::default(),
        );
        assert_eq!(steps(&p), ["set bond options of bond0: min_links 2"]);
        let v = serde_json::to_value(&p.actions[0]).expect("json");
        assert_eq!(v["op"], "set-bond");
        assert_eq!(v["min_links"], 2);
        assert!(v.get("lacp_rate").is_none(), "{v}");
        assert!(matches!(
            &p.actions[0].step,
            Step::SetBond { change, .. } if change.min_links == Some(2) && change.lacp_rate.is_none()
        ));
    }

    // Proves lacp_rate (which the kernel refuses while the bond is up) sets the bond down
    // before and up after, and re-adds the IPv6 addresses of the VLAN over it, which the
    // kernel flushes when it takes the VLAN down with its parent; IPv4 and link-local stay.
    #[test]
    fn lacp_rate_cycles_the_bond_and_readds_ipv6_above() {
        let p = plan(
            &lacp_bond_with_vlan(LacpRate::Slow, 1),
            &lacp_converged(),
            Options::default(),
        );
        assert_eq!(
            steps(&p),
            [
                "set bond0 down",
                "set bond options of bond0: lacp_rate slow",
                "set bond0 up",
                "add 2001:db8:100::2/64 to bond0.100",
            ]
        );
    }

    // Proves a new active-backup bond gets its primary once its members are ports.
    #[test]
    fn primary_set_after_enslaving() {
        let d = Desired {
            links: vec![
                want("eth0", DesiredKind::Ethernet, 1500, Some("bond0")),
                want(
                    "bond0",
                    DesiredKind::Bond(BondSpec::ActiveBackup {
                        primary: Some("eth0".into()),
                        miimon: std::time::Duration::from_millis(50),
                    }),
                    1500,
                    None,
                ),
            ],
        };
        let mut eth0 = have(2, "eth0", LinkKind::Ethernet, 1500);
        eth0.up = false;
        let p = plan(&d, &root(vec![eth0], vec![]), Options::default());
        assert_eq!(
            steps(&p),
            [
                "create bond bond0",
                "make eth0 a port of bond0",
                "set bond options of bond0: primary eth0",
                "set eth0 up",
                "set bond0 up",
            ]
        );
    }

    // Proves the JSON form names each step by `op` with its reason.
    #[test]
    fn json_shape() {
        let p = plan(&veth_pair(), &root(vec![], vec![]), Options::default());
        let v = serde_json::to_value(&p).expect("json");
        assert_eq!(v["actions"][0]["op"], "create-namespace");
        assert_eq!(v["actions"][0]["namespace"], "red");
        assert!(v["actions"][0]["reason"].is_string());
    }
}
