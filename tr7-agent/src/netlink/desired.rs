//! The kernel state this node's part of the file asks for: every declared link with its
//! kind-specific attributes, MTU, MAC, controller and addresses, per namespace.
//!
//! Pure: a function of the [`NodeView`] only. VIPs become host addresses (/32, /128) added
//! without duplicate address detection, because the data plane decides which node answers
//! for them and a VIP must be usable the moment this node becomes master.

use std::time::Duration;

use serde::Serialize;

use crate::config::{
    Cidr, HashPolicy, IfaceRef, InterfaceKind, LacpRate, Mac, NodeView, VlanProtocol,
};

/// Every declared link of the node, in file order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Desired {
    /// The links.
    pub links: Vec<DesiredLink>,
}

/// One link as the file asks for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DesiredLink {
    /// Namespace (`None`: the node's root) and name.
    pub id: IfaceRef,
    /// Type and type-specific attributes.
    pub kind: DesiredKind,
    /// MTU.
    pub mtu: u32,
    /// MAC, where the file sets one for this node.
    pub mac: Option<Mac>,
    /// The bridge or bond this link is a port of (same namespace).
    pub controller: Option<String>,
    /// Addresses: the node's interface addresses, then its VIPs.
    pub addresses: Vec<DesiredAddress>,
}

/// One address as the file asks for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct DesiredAddress {
    /// Address and prefix.
    pub cidr: Cidr,
    /// Added with IFA_F_NODAD (VIPs).
    pub nodad: bool,
    /// Whether this is a VIP rather than an interface address.
    pub vip: bool,
}

/// The kind of a declared link and what the kernel must know to create it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum DesiredKind {
    /// A physical port: must exist, is never created.
    Ethernet,
    /// An 802.1Q/802.1ad VLAN.
    Vlan {
        /// Parent link (same namespace).
        parent: String,
        /// VLAN id.
        id: u16,
        /// Tag protocol.
        protocol: VlanProtocol,
    },
    /// A bond; the mode and its options.
    Bond(BondSpec),
    /// The host end of a veth pair; the pair is created from here.
    Veth {
        /// The other end.
        peer: IfaceRef,
    },
    /// The namespaced end of a veth pair: created with its veth, never alone.
    VethPeer {
        /// The veth (host namespace).
        peer: String,
    },
    /// A Linux bridge.
    Bridge {
        /// Spanning tree.
        stp: bool,
    },
}

/// Bond mode and options.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "mode", rename_all = "kebab-case")]
pub enum BondSpec {
    /// active-backup.
    ActiveBackup {
        /// Preferred member.
        primary: Option<String>,
        /// MII monitoring interval.
        #[serde(with = "millis")]
        miimon: Duration,
    },
    /// 802.3ad.
    Lacp {
        /// LACPDU rate.
        lacp_rate: LacpRate,
        /// Transmit hash policy.
        transmit_hash_policy: HashPolicy,
        /// Minimum links for carrier.
        min_links: u16,
    },
}

mod millis {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u128(d.as_millis())
    }
}

impl DesiredKind {
    /// The kernel's `IFLA_INFO_KIND` for links TR7 creates (`None` for ethernet).
    pub fn kernel_kind(&self) -> Option<&'static str> {
        match self {
            Self::Ethernet => None,
            Self::Vlan { .. } => Some("vlan"),
            Self::Bond(_) => Some("bond"),
            Self::Veth { .. } | Self::VethPeer { .. } => Some("veth"),
            Self::Bridge { .. } => Some("bridge"),
        }
    }

    /// The file's type keyword.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Ethernet => "ethernet",
            Self::Vlan { .. } => "vlan",
            Self::Bond(BondSpec::ActiveBackup { .. }) => "bond",
            Self::Bond(BondSpec::Lacp { .. }) => "lacp",
            Self::Veth { .. } => "veth",
            Self::VethPeer { .. } => "veth-peer",
            Self::Bridge { .. } => "bridge",
        }
    }
}

impl Desired {
    /// The declared link `name` in namespace `ns`.
    pub fn link(&self, ns: Option<&str>, name: &str) -> Option<&DesiredLink> {
        self.links
            .iter()
            .find(|l| l.id.namespace.as_deref() == ns && l.id.name == name)
    }

    /// Every namespace the file names: the root first, then the veth-peers' in file order.
    pub fn namespaces(&self) -> Vec<Option<String>> {
        let mut out = vec![None];
        for l in &self.links {
            if !out.contains(&l.id.namespace) {
                out.push(l.id.namespace.clone());
            }
        }
        out
    }

    /// How far a link stands above the bottom of the device tree: ports and veths are 0, a
    /// bridge or bond one above its deepest member, a VLAN one above its parent. MTU is
    /// raised in increasing and lowered in decreasing depth, so an upper device never asks
    /// more than the device under it carries.
    pub fn depth(&self, link: &DesiredLink) -> usize {
        // The file's tree is acyclic (validated); the bound only guards hand-built states.
        self.depth_bounded(link, self.links.len())
    }

    fn depth_bounded(&self, link: &DesiredLink, budget: usize) -> usize {
        if budget == 0 {
            return 0;
        }
        let ns = link.id.namespace.as_deref();
        let lowers: Vec<&DesiredLink> = match &link.kind {
            DesiredKind::Vlan { parent, .. } => self.link(ns, parent).into_iter().collect(),
            DesiredKind::Bond(_) | DesiredKind::Bridge { .. } => self
                .links
                .iter()
                .filter(|l| {
                    l.id.namespace.as_deref() == ns
                        && l.controller.as_deref() == Some(link.id.name.as_str())
                })
                .collect(),
            _ => Vec::new(),
        };
        lowers
            .into_iter()
            .map(|l| 1 + self.depth_bounded(l, budget - 1))
            .max()
            .unwrap_or(0)
    }
}

/// The desired kernel state of this node.
pub fn desired(view: &NodeView) -> Desired {
    let mut links = Vec::with_capacity(view.interfaces.len());
    for iface in &view.interfaces {
        let ns = &iface.id.namespace;
        let controller = view.interfaces.iter().find_map(|upper| {
            let members = match &upper.kind {
                InterfaceKind::Bond { members, .. }
                | InterfaceKind::Lacp { members, .. }
                | InterfaceKind::Bridge { members, .. } => members,
                _ => return None,
            };
            (upper.id.namespace == *ns && members.contains(&iface.id.name))
                .then(|| upper.id.name.clone())
        });
        let kind = match &iface.kind {
            InterfaceKind::Ethernet => DesiredKind::Ethernet,
            InterfaceKind::Vlan {
                parent,
                id,
                protocol,
            } => DesiredKind::Vlan {
                parent: parent.clone(),
                id: *id,
                protocol: *protocol,
            },
            InterfaceKind::Bond {
                primary,
                mii_monitor_interval,
                ..
            } => DesiredKind::Bond(BondSpec::ActiveBackup {
                primary: primary.clone(),
                miimon: *mii_monitor_interval,
            }),
            InterfaceKind::Lacp {
                lacp_rate,
                transmit_hash_policy,
                min_links,
                ..
            } => DesiredKind::Bond(BondSpec::Lacp {
                lacp_rate: *lacp_rate,
                transmit_hash_policy: *transmit_hash_policy,
                min_links: *min_links,
            }),
            InterfaceKind::Veth { peer } => DesiredKind::Veth { peer: peer.clone() },
            InterfaceKind::VethPeer { peer } => DesiredKind::VethPeer { peer: peer.clone() },
            InterfaceKind::Bridge { stp, .. } => DesiredKind::Bridge { stp: *stp },
        };
        let mut addresses: Vec<DesiredAddress> = iface
            .addresses
            .iter()
            .map(|&cidr| DesiredAddress {
                cidr,
                nodad: false,
                vip: false,
            })
            .collect();
        for slot in &iface.slots {
            for vip in &slot.vips {
                let cidr = Cidr {
                    addr: vip.address,
                    prefix: Cidr::max_prefix(vip.address),
                };
                if !addresses.iter().any(|a| a.cidr.addr == cidr.addr) {
                    addresses.push(DesiredAddress {
                        cidr,
                        nodad: true,
                        vip: true,
                    });
                }
            }
        }
        links.push(DesiredLink {
            id: iface.id.clone(),
            kind,
            mtu: iface.mtu,
            mac: iface.mac,
            controller,
            addresses,
        });
    }
    Desired { links }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
name: t
nodes: [{name: a}, {name: b}]
interfaces:
  - {name: eth1, type: ethernet, mtu: 9000}
  - {name: br0, type: bridge, members: [eth1, veth-red], mtu: 9000,
     addresses: {a: [192.0.2.2/24], b: [192.0.2.3/24]},
     vips: {master: [{address: 192.0.2.10}]}}
  - {name: veth-red, type: veth, peer: red/eth0, mtu: 9000}
  - {name: eth0, type: veth-peer, namespace: red, peer: veth-red,
     addresses: {a: [2001:db8::2/64]}}
";

    // Proves the node's part becomes links with controllers, depths and VIPs without DAD.
    #[test]
    fn node_view_to_desired() {
        let cluster = crate::config::parse(FILE, "t.yaml").expect("valid file");
        let d = desired(&cluster.node_view("a").expect("node a"));
        let eth1 = d.link(None, "eth1").expect("eth1");
        assert_eq!(eth1.controller.as_deref(), Some("br0"));
        let br = d.link(None, "br0").expect("br0");
        assert_eq!(br.kind, DesiredKind::Bridge { stp: false });
        assert_eq!(br.addresses.len(), 2);
        assert!(!br.addresses[0].nodad);
        assert!(br.addresses[1].nodad && br.addresses[1].vip);
        assert_eq!(br.addresses[1].cidr.prefix, 32);
        assert_eq!(d.depth(br), 1);
        assert_eq!(d.depth(eth1), 0);
        let peer = d.link(Some("red"), "eth0").expect("red/eth0");
        assert_eq!(peer.addresses.len(), 1);
        assert_eq!(d.namespaces(), vec![None, Some("red".to_owned())]);
    }
}
