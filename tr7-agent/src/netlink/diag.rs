//! "VIP is up but no traffic": the pure diagnosis (this node's part of the file + observed
//! kernel state → findings, each with a fix).
//!
//! No I/O here: `cli` observes and prints, tests build observations by hand; the VLAN, bond
//! and LACP findings are also provoked on a real kernel in the guest
//! (tests/tests/guest_reconcile.rs), as this machine's kernel has neither. The rules, and why
//! each one breaks a VIP, are listed in docs/reconcile.md; this file owns their codes.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use serde::Serialize;

use super::desired::{BondSpec, Desired, DesiredKind, DesiredLink, desired};
use super::ns_label;
use super::observe::{Ipv4Conf, NudState, Observed, ObservedLink, ObservedNamespace};
use crate::config::{Family, IfaceRef, NodeView};

/// Every cause `tr7 diag` names. The kebab-case spelling is the stable code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Code {
    /// A declared link does not exist.
    LinkMissing,
    /// A link of the declared name has another kind.
    WrongKind,
    /// A declared link is administratively down.
    LinkDown,
    /// A declared link is up but has no carrier.
    NoCarrier,
    /// A VLAN's id differs from the file.
    VlanIdDiffers,
    /// A VLAN's tag protocol differs from the file.
    VlanProtocolDiffers,
    /// A VLAN sits on another parent than the file's.
    WrongParent,
    /// An upper device's MTU is above the MTU of a device under it.
    MtuAboveParent,
    /// A link's MTU differs from the file.
    MtuDiffers,
    /// A declared bond or bridge member does not exist.
    MemberMissing,
    /// A bond member is down, has no carrier or its MII status is down.
    MemberDown,
    /// A declared member is not a port of its bond or bridge.
    MemberNotEnslaved,
    /// An LACP member is not collecting and distributing.
    LacpNotAggregating,
    /// Fewer LACP members aggregate than the bond's min_links.
    LacpBelowMinLinks,
    /// A VIP address is not on its interface.
    VipMissing,
    /// A VIP address is tentative (duplicate address detection still running).
    VipTentative,
    /// A VIP address failed duplicate address detection.
    VipDadfailed,
    /// The gateway's neighbour entry is FAILED.
    GatewayFailed,
    /// The gateway's neighbour entry is INCOMPLETE.
    GatewayIncomplete,
    /// arp_ignore makes the node drop ARP for a VIP, or answer it on another interface.
    ArpIgnore,
    /// arp_announce lets the node use a VIP as the sender of its ARP requests.
    ArpAnnounce,
    /// Strict reverse-path filtering on a VIP's interface of a multi-homed namespace.
    RpFilter,
    /// A veth-peer is not in its namespace.
    VethPeerOutsideNamespace,
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&super::serde_label(self))
    }
}

/// How bad a finding is: errors make `tr7 diag` exit 1, warnings are shown only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Breaks (or will break) traffic to a VIP.
    Error,
    /// Breaks traffic only in some deployments; see the message.
    Warning,
}

/// One cause, where it is, and what fixes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The cause.
    pub code: Code,
    /// Error or warning.
    pub severity: Severity,
    /// The declared link it concerns (file namespace and name).
    pub link: IfaceRef,
    /// What was found, with the observed and declared values.
    pub message: String,
    /// What the operator can do.
    pub fix: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{sev} {}: {}: {}\n    fix: {}",
            self.code, self.link, self.message, self.fix
        )
    }
}

/// Why a diagnosis could not be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DiagError {
    #[error("VIP {vip} is not a VIP of node `{node}` in the file (its VIPs: {known})")]
    UnknownVip {
        vip: IpAddr,
        node: String,
        known: String,
    },
}

/// Whether any finding is an error.
pub fn has_errors(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity == Severity::Error)
}

/// Compares `observed` with this node's part of the file and with itself. With `only`, the
/// report is limited to that VIP and the links on its path (its interface and every device
/// under it).
pub fn diagnose(
    view: &NodeView,
    observed: &Observed,
    only: Option<IpAddr>,
) -> Result<Vec<Finding>, DiagError> {
    let want = desired(view);
    let mut d = Diag {
        view,
        want: &want,
        observed,
        out: Vec::new(),
        seen: BTreeSet::new(),
    };
    let scope: Vec<&DesiredLink> = match only {
        None => want.links.iter().collect(),
        Some(vip) => {
            let Some(home) = want
                .links
                .iter()
                .find(|l| l.addresses.iter().any(|a| a.vip && a.cidr.addr == vip))
            else {
                let known: Vec<String> = want
                    .links
                    .iter()
                    .flat_map(|l| l.addresses.iter().filter(|a| a.vip))
                    .map(|a| a.cidr.addr.to_string())
                    .collect();
                return Err(DiagError::UnknownVip {
                    vip,
                    node: view.node.clone(),
                    known: if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    },
                });
            };
            path(&want, home)
        }
    };
    for link in &scope {
        d.link(link, only);
    }
    Ok(d.out)
}

/// `home` and every declared device under it (VLAN parent, bond and bridge members),
/// top-down, each once.
fn path<'a>(want: &'a Desired, home: &'a DesiredLink) -> Vec<&'a DesiredLink> {
    let mut out: Vec<&DesiredLink> = vec![home];
    let mut i = 0;
    // Each round adds only links not yet listed, so this ends after at most every link.
    while i < out.len() {
        for lower in lowers(want, out[i]) {
            if !out.iter().any(|l| l.id == lower.id) {
                out.push(lower);
            }
        }
        i += 1;
    }
    out
}

/// The declared devices directly under `link`.
fn lowers<'a>(want: &'a Desired, link: &DesiredLink) -> Vec<&'a DesiredLink> {
    let ns = link.id.namespace.as_deref();
    match &link.kind {
        DesiredKind::Vlan { parent, .. } => want.link(ns, parent).into_iter().collect(),
        DesiredKind::Bond(_) | DesiredKind::Bridge { .. } => members(want, link),
        _ => Vec::new(),
    }
}

fn members<'a>(want: &'a Desired, link: &DesiredLink) -> Vec<&'a DesiredLink> {
    want.links
        .iter()
        .filter(|l| {
            l.id.namespace == link.id.namespace
                && l.controller.as_deref() == Some(link.id.name.as_str())
        })
        .collect()
}

/// The effective value of an IPv4 conf key: the kernel uses the larger of `all` and the
/// interface's own for arp_ignore, arp_announce and rp_filter.
fn effective(ns: &ObservedNamespace, name: &str, key: impl Fn(&Ipv4Conf) -> u32) -> Option<u32> {
    let own = ns.sysctls.get(name).map(&key)?;
    Some(ns.sysctls.get("all").map(&key).unwrap_or(0).max(own))
}

/// Up links of the namespace that do IPv4 on their own (an IPv4 address, no controller),
/// loopback aside: the namespace is multi-homed when there are two or more.
fn ipv4_links(ns: &ObservedNamespace) -> Vec<&ObservedLink> {
    ns.links
        .iter()
        .filter(|l| l.name != "lo" && l.up && l.controller.is_none())
        .filter(|l| ns.addresses_of(l.ifindex).any(|a| a.cidr.addr.is_ipv4()))
        .collect()
}

struct Diag<'a> {
    view: &'a NodeView,
    want: &'a Desired,
    observed: &'a Observed,
    out: Vec<Finding>,
    /// (code, link, message) already reported: a link reached from two VIPs' paths, or a
    /// namespace-wide rule met from two links, is reported once.
    seen: BTreeSet<(Code, IfaceRef, String)>,
}

impl<'a> Diag<'a> {
    fn push(&mut self, code: Code, link: &IfaceRef, message: String, fix: String) {
        let severity = match code {
            Code::ArpAnnounce => Severity::Warning,
            _ => Severity::Error,
        };
        if self.seen.insert((code, link.clone(), message.clone())) {
            self.out.push(Finding {
                code,
                severity,
                link: link.clone(),
                message,
                fix,
            });
        }
    }

    fn ns(&self, ns: Option<&str>) -> Option<&'a ObservedNamespace> {
        self.observed.namespace(ns).filter(|n| n.exists)
    }

    fn link(&mut self, want: &DesiredLink, only: Option<IpAddr>) {
        let id = &want.id;
        let Some(ns) = self.ns(id.namespace.as_deref()) else {
            self.missing(want, "its namespace does not exist".into());
            return;
        };
        let Some(have) = ns.link(&id.name) else {
            self.missing(
                want,
                format!(
                    "no link of that name in namespace {}",
                    ns_label(id.namespace.as_deref())
                ),
            );
            return;
        };
        // A declared ethernet port is whatever link has its name (a veth plays one in
        // labs, a macvlan or a virtual NIC in guests), as `plan` accepts it.
        if !matches!(want.kind, DesiredKind::Ethernet)
            && have.kind.kernel_kind() != want.kind.kernel_kind()
        {
            self.push(
                Code::WrongKind,
                id,
                format!(
                    "declared as a {}, the kernel has a {} link",
                    want.kind.type_name(),
                    have.kind.kernel_kind().unwrap_or("ethernet")
                ),
                format!(
                    "delete the link by hand (`ip link del {}`) and run `tr7 apply`",
                    id.name
                ),
            );
            return;
        }
        self.state(want, ns, have);
        self.mtu(want, ns, have);
        self.kind_specific(want, ns, have);
        self.vips(want, ns, have, only);
        self.gateway(want, ns, have);
    }

    /// A declared link that is not where the file puts it.
    fn missing(&mut self, want: &DesiredLink, why: String) {
        let id = &want.id;
        if let DesiredKind::VethPeer { peer } = &want.kind {
            let whereabouts = self.peer_whereabouts(peer, id);
            self.push(
                Code::VethPeerOutsideNamespace,
                id,
                format!("not in namespace {} ({why}); {whereabouts}", ns_label(id.namespace.as_deref())),
                format!(
                    "move it back (`ip link set {} netns {}` from where it is) or delete the pair and run `tr7 apply`",
                    id.name,
                    ns_label(id.namespace.as_deref())
                ),
            );
            return;
        }
        if let Some(c) = &want.controller {
            self.push(
                Code::MemberMissing,
                id,
                format!("member of {c} does not exist ({why})"),
                match want.kind {
                    DesiredKind::Ethernet => {
                        "check the NIC and its driver, or fix the member list".into()
                    }
                    _ => "run `tr7 apply`".into(),
                },
            );
            return;
        }
        self.push(
            Code::LinkMissing,
            id,
            format!("does not exist ({why})"),
            match want.kind {
                DesiredKind::Ethernet => "check the NIC and its driver, or fix the file".into(),
                _ => "run `tr7 apply`".into(),
            },
        );
    }

    /// Where a veth-peer is, as far as its veth tells.
    fn peer_whereabouts(&self, veth: &str, peer: &IfaceRef) -> String {
        let Some(host) = self.ns(None) else {
            return "the host namespace is not observed".into();
        };
        let Some(v) = host.link(veth) else {
            return format!("its veth {veth} does not exist either");
        };
        match (v.link, v.link_netnsid) {
            (Some(i), None) => match host.link_by_index(i) {
                Some(l) => format!(
                    "veth {veth}'s other end is {} in the host namespace",
                    l.name
                ),
                None => format!("veth {veth}'s other end is ifindex {i} in the host namespace"),
            },
            (Some(i), Some(nsid)) => format!(
                "veth {veth}'s other end is ifindex {i} in another namespace (netnsid {nsid}), not {}",
                peer
            ),
            (None, _) => format!("veth {veth} has no other end"),
        }
    }

    fn controller_kind(&self, want: &DesiredLink) -> Option<&'a DesiredLink> {
        let c = want.controller.as_deref()?;
        self.want.link(want.id.namespace.as_deref(), c)
    }

    /// Admin state, carrier, membership.
    fn state(&mut self, want: &DesiredLink, ns: &ObservedNamespace, have: &ObservedLink) {
        let id = &want.id;
        let controller = self.controller_kind(want);
        if let Some(c) = controller {
            let enslaved = match (have.controller, ns.link(&c.id.name)) {
                (Some(idx), Some(cl)) => idx == cl.ifindex,
                _ => false,
            };
            if !enslaved {
                let now = have
                    .controller
                    .and_then(|i| ns.link_by_index(i))
                    .map_or("no controller".to_owned(), |l| {
                        format!("a port of {}", l.name)
                    });
                self.push(
                    Code::MemberNotEnslaved,
                    id,
                    format!("declared a port of {}, is {now}", c.id.name),
                    format!("`ip link set {} down; ip link set {} master {}; ip link set {} up`, or run `tr7 apply`", id.name, id.name, c.id.name, id.name),
                );
            }
            if matches!(c.kind, DesiredKind::Bond(_)) {
                let mii_down = have.bond_port.is_some_and(|p| !p.mii_up);
                if !have.up || !have.carrier || mii_down {
                    let what = if !have.up {
                        "administratively down"
                    } else if !have.carrier {
                        "up without carrier"
                    } else {
                        "up, but the bond's MII monitor sees it down"
                    };
                    self.push(
                        Code::MemberDown,
                        id,
                        format!("member of bond {} is {what}", c.id.name),
                        "check the cable and the switch port; `ip link set DEV up` if it is down"
                            .replace("DEV", &id.name),
                    );
                }
                if let DesiredKind::Bond(BondSpec::Lacp { .. }) = c.kind
                    && have.up
                    && have.carrier
                    && !have
                        .bond_port
                        .is_some_and(|p| p.collecting && p.distributing)
                {
                    let state = match have.bond_port {
                        Some(p) => format!(
                            "collecting {}, distributing {}",
                            if p.collecting { "yes" } else { "no" },
                            if p.distributing { "yes" } else { "no" }
                        ),
                        None => "no LACP port state reported".into(),
                    };
                    self.push(
                        Code::LacpNotAggregating,
                        id,
                        format!("LACP member of {} is not aggregating ({state})", c.id.name),
                        "the switch port must be in the same LACP group (port-channel) as the other members, with LACP active; check `cat /proc/net/bonding/BOND`".replace("BOND", &c.id.name),
                    );
                }
                return;
            }
        }
        if !have.up {
            self.push(
                Code::LinkDown,
                id,
                "administratively down".into(),
                format!("`ip link set {} up`, or run `tr7 apply`", id.name),
            );
        } else if !have.carrier {
            let hint = match &want.kind {
                DesiredKind::Veth { peer } => {
                    format!(
                        "bring its other end {peer} up (a veth has carrier only while both ends are up)"
                    )
                }
                DesiredKind::VethPeer { peer } => {
                    format!(
                        "bring its veth {peer} up (a veth has carrier only while both ends are up)"
                    )
                }
                DesiredKind::Bridge { .. } | DesiredKind::Bond(_) => {
                    "no port has carrier: fix the ports listed under it".into()
                }
                DesiredKind::Vlan { parent, .. } => format!("its parent {parent} has no carrier"),
                DesiredKind::Ethernet => {
                    "check the cable, the transceiver and the switch port".into()
                }
            };
            self.push(
                Code::NoCarrier,
                id,
                format!("up, but no carrier (operstate {})", have.oper),
                hint,
            );
        }
    }

    fn mtu(&mut self, want: &DesiredLink, ns: &ObservedNamespace, have: &ObservedLink) {
        let id = &want.id;
        if have.mtu != want.mtu {
            self.push(
                Code::MtuDiffers,
                id,
                format!("MTU {} on the kernel, {} in the file", have.mtu, want.mtu),
                format!(
                    "run `tr7 apply` (or `ip link set {} mtu {}`)",
                    id.name, want.mtu
                ),
            );
        }
        let unders: Vec<&ObservedLink> = match &want.kind {
            DesiredKind::Vlan { .. } => have
                .link
                .filter(|_| have.link_netnsid.is_none())
                .and_then(|i| ns.link_by_index(i))
                .into_iter()
                .collect(),
            DesiredKind::Bond(_) | DesiredKind::Bridge { .. } => {
                ns.ports_of(have.ifindex).collect()
            }
            _ => Vec::new(),
        };
        for under in unders {
            if have.mtu > under.mtu {
                self.push(
                    Code::MtuAboveParent,
                    id,
                    format!(
                        "MTU {} is above the MTU {} of {} under it: frames larger than {} are dropped there",
                        have.mtu, under.mtu, under.name, under.mtu
                    ),
                    format!(
                        "raise {} to {} (`ip link set {} mtu {}`), or lower {}; `tr7 apply` sets the file's MTUs in order",
                        under.name, have.mtu, under.name, have.mtu, id.name
                    ),
                );
            }
        }
    }

    fn kind_specific(&mut self, want: &DesiredLink, ns: &ObservedNamespace, have: &ObservedLink) {
        let id = &want.id;
        match &want.kind {
            DesiredKind::Vlan {
                parent,
                id: vid,
                protocol,
            } => {
                let recreate = format!(
                    "delete it (`ip link del {}`) and run `tr7 apply`: a VLAN's id, protocol and parent cannot change in place",
                    id.name
                );
                if let Some(v) = have.vlan {
                    if v.id != *vid {
                        self.push(
                            Code::VlanIdDiffers,
                            id,
                            format!("VLAN id {} on the kernel, {vid} in the file", v.id),
                            recreate.clone(),
                        );
                    }
                    if v.protocol != *protocol {
                        self.push(
                            Code::VlanProtocolDiffers,
                            id,
                            format!(
                                "protocol {} on the kernel, {protocol} in the file",
                                v.protocol
                            ),
                            recreate.clone(),
                        );
                    }
                }
                let actual = match (have.link, have.link_netnsid) {
                    (Some(i), None) => ns.link_by_index(i).map(|l| l.name.clone()),
                    _ => None,
                };
                if actual.as_deref() != Some(parent.as_str()) {
                    let on = match (actual, have.link, have.link_netnsid) {
                        (Some(n), ..) => n,
                        (None, Some(i), Some(nsid)) => format!("ifindex {i} in netnsid {nsid}"),
                        (None, Some(i), None) => format!("ifindex {i}"),
                        (None, None, _) => "no parent".into(),
                    };
                    self.push(
                        Code::WrongParent,
                        id,
                        format!("sits on {on}, the file's parent is {parent}"),
                        recreate,
                    );
                }
            }
            DesiredKind::Bond(BondSpec::Lacp { min_links, .. }) => {
                let aggregating = members(self.want, want)
                    .iter()
                    .filter_map(|m| ns.link(&m.id.name))
                    .filter(|l| l.controller == Some(have.ifindex) && l.up && l.carrier)
                    .filter(|l| l.bond_port.is_some_and(|p| p.collecting && p.distributing))
                    .count();
                if aggregating < usize::from(*min_links) {
                    self.push(
                        Code::LacpBelowMinLinks,
                        id,
                        format!(
                            "{aggregating} member(s) collecting and distributing, min_links is {min_links}: the bond has no carrier"
                        ),
                        "fix the members named in the other findings, or lower min_links in the file".into(),
                    );
                }
            }
            _ => {}
        }
    }

    fn vips(
        &mut self,
        want: &DesiredLink,
        ns: &ObservedNamespace,
        have: &ObservedLink,
        only: Option<IpAddr>,
    ) {
        let id = &want.id;
        let vips: Vec<_> = want
            .addresses
            .iter()
            .filter(|a| a.vip && only.is_none_or(|v| v == a.cidr.addr))
            .copied()
            .collect();
        for vip in &vips {
            let addr = vip.cidr.addr;
            match ns
                .addresses_of(have.ifindex)
                .find(|a| a.cidr.addr == addr)
            {
                None => {
                    let elsewhere = ns
                        .addresses
                        .iter()
                        .find(|a| a.cidr.addr == addr)
                        .and_then(|a| ns.link_by_index(a.ifindex))
                        .map_or(String::new(), |l| format!(" (it is on {})", l.name));
                    self.push(
                        Code::VipMissing,
                        id,
                        format!("VIP {addr} is not on the interface{elsewhere}"),
                        "run `tr7 apply` (it adds VIPs without duplicate address detection)".into(),
                    );
                }
                Some(a) if a.flags.dadfailed => self.push(
                    Code::VipDadfailed,
                    id,
                    format!("VIP {addr} failed duplicate address detection: another host on the segment has it"),
                    format!("find the other owner (`ip -6 neigh show {addr}`), then `ip addr del {} dev {}` and run `tr7 apply`, which adds it with nodad", vip.cidr, id.name),
                ),
                Some(a) if a.flags.tentative => self.push(
                    Code::VipTentative,
                    id,
                    format!("VIP {addr} is tentative: it is not used until duplicate address detection ends"),
                    format!("`ip addr del {} dev {}` and run `tr7 apply`, which adds VIPs with nodad", vip.cidr, id.name),
                ),
                Some(_) => {}
            }
        }
        if vips.iter().any(|v| v.cidr.addr.is_ipv4()) {
            let ipv4_vips: Vec<_> = vips.iter().filter(|v| v.cidr.addr.is_ipv4()).collect();
            self.arp_and_rp(
                want,
                ns,
                have,
                &ipv4_vips.iter().map(|v| v.cidr.addr).collect::<Vec<_>>(),
            );
        }
    }

    /// The IPv4 sysctl rules for a link carrying IPv4 VIPs (docs/reconcile.md, "Sysctl
    /// rules").
    fn arp_and_rp(
        &mut self,
        want: &DesiredLink,
        ns: &ObservedNamespace,
        have: &ObservedLink,
        vips: &[IpAddr],
    ) {
        let id = &want.id;
        let list = vips
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        if let Some(ignore) = effective(ns, &have.name, |c| c.arp_ignore) {
            // 8: never answer ARP. 2: answer only when the sender is in a subnet of the
            // interface that also holds the target, which fails for an off-subnet VIP.
            let off_subnet: Vec<&IpAddr> = vips
                .iter()
                .filter(|v| {
                    !ns.addresses_of(have.ifindex)
                        .any(|a| a.cidr.prefix < 32 && a.cidr.contains(**v))
                })
                .collect();
            if ignore == 8 || (ignore == 2 && !off_subnet.is_empty()) {
                self.push(
                    Code::ArpIgnore,
                    id,
                    format!(
                        "arp_ignore is {ignore} (the larger of `all` and {}): the node does not answer ARP for {list}",
                        have.name
                    ),
                    format!("`sysctl -w net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.{}.arp_ignore=1`", have.name),
                );
            }
        }
        for other in ipv4_links(ns) {
            if other.ifindex == have.ifindex {
                continue;
            }
            if effective(ns, &other.name, |c| c.arp_ignore) == Some(0) {
                self.push(
                    Code::ArpIgnore,
                    id,
                    format!(
                        "arp_ignore is 0 on {}: it answers ARP for {list} with its own MAC, so the VIP's traffic can arrive on the wrong interface",
                        other.name
                    ),
                    format!("`sysctl -w net.ipv4.conf.all.arp_ignore=1` (or net.ipv4.conf.{}.arp_ignore=1)", other.name),
                );
            }
        }
        if effective(ns, &have.name, |c| c.arp_announce) == Some(0) {
            self.push(
                Code::ArpAnnounce,
                id,
                format!(
                    "arp_announce is 0 on {}: ARP requests of packets sent from {list} carry the VIP as sender, which moves the VIP to this node in neighbours' caches even while it is backup",
                    have.name
                ),
                format!("`sysctl -w net.ipv4.conf.all.arp_announce=2 net.ipv4.conf.{}.arp_announce=2`", have.name),
            );
        }
        let homed = ipv4_links(ns);
        if effective(ns, &have.name, |c| c.rp_filter) == Some(1) && homed.len() >= 2 {
            let names = homed
                .iter()
                .map(|l| l.name.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            self.push(
                Code::RpFilter,
                id,
                format!(
                    "rp_filter is 1 (strict) on {} and the namespace has IPv4 on {names}: traffic to {list} from a client whose route points out another interface is dropped",
                    have.name
                ),
                format!("`sysctl -w net.ipv4.conf.all.rp_filter=2 net.ipv4.conf.{}.rp_filter=2` (loose)", have.name),
            );
        }
    }

    fn gateway(&mut self, want: &DesiredLink, ns: &ObservedNamespace, have: &ObservedLink) {
        let Some(iface) = self.view.interfaces.iter().find(|i| i.id == want.id) else {
            return;
        };
        for family in [Family::Ipv4, Family::Ipv6] {
            let Some(check) = iface.gateway.get(family) else {
                continue;
            };
            let entry = ns
                .neighbours
                .iter()
                .find(|n| n.ifindex == have.ifindex && n.address == check.target);
            let Some(entry) = entry else { continue };
            let code = match entry.state {
                NudState::Failed => Code::GatewayFailed,
                NudState::Incomplete => Code::GatewayIncomplete,
                _ => continue,
            };
            self.push(
                code,
                &want.id,
                format!(
                    "{family} gateway {} is {} in the neighbour table: it does not answer {}",
                    check.target,
                    entry.state,
                    if family == Family::Ipv4 { "ARP" } else { "neighbour solicitation" }
                ),
                format!(
                    "check that the gateway is up and on this segment (`ip neigh show {} dev {}`, `arping`/`ndisc6`), and the VLAN and cabling under {}",
                    check.target, want.id.name, want.id.name
                ),
            );
        }
    }
}

/// A short summary line: `clean` or the number of errors and warnings.
pub fn summary(findings: &[Finding]) -> String {
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    let warnings = findings.len() - errors;
    match (errors, warnings) {
        (0, 0) => "clean".into(),
        (e, w) => format!("{e} error(s), {w} warning(s)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Cidr, VlanProtocol};
    use crate::netlink::observe::{
        AddressFlags, BondPortInfo, LinkKind, ObservedAddress, ObservedNeighbour, VlanInfo,
    };

    const FILE: &str = "\
name: t
nodes: [{name: a}, {name: b}]
interfaces:
  - {name: eth0, type: ethernet, mtu: 9000}
  - {name: eth1, type: ethernet, mtu: 9000}
  - {name: bond0, type: lacp, members: [eth0, eth1], min_links: 2, mtu: 9000}
  - name: bond0.100
    type: vlan
    parent: bond0
    id: 100
    mtu: 9000
    addresses: {a: [192.0.2.2/24, 2001:db8::2/64], b: [192.0.2.3/24, 2001:db8::3/64]}
    vips: {master: [{address: 192.0.2.10}, {address: 2001:db8::10}]}
    gateway: {ipv4: {target: 192.0.2.1}, ipv6: {target: 2001:db8::1}}
  - {name: mgmt, type: ethernet, addresses: {a: [198.51.100.2/24], b: [198.51.100.3/24]}}
  - {name: veth-red, type: veth, peer: red/eth0}
  - name: eth0
    type: veth-peer
    namespace: red
    peer: veth-red
    addresses: {a: [203.0.113.2/24], b: [203.0.113.3/24]}
    vips: {master: [{address: 203.0.113.10}]}
";

    const GOOD: Ipv4Conf = Ipv4Conf {
        arp_ignore: 1,
        arp_announce: 2,
        rp_filter: 2,
    };

    fn view() -> NodeView {
        crate::config::parse(FILE, "t.yaml")
            .expect("valid file")
            .node_view("a")
            .expect("node a")
    }

    /// The kernel exactly as the file asks, with sound sysctls and reachable gateways:
    /// what every test starts from and breaks one thing of.
    fn healthy() -> Observed {
        let want = desired(&view());
        let mut namespaces = Vec::new();
        for ns in want.namespaces() {
            let mine: Vec<&DesiredLink> =
                want.links.iter().filter(|l| l.id.namespace == ns).collect();
            let index = |name: &str| {
                mine.iter()
                    .position(|l| l.id.name == name)
                    .map(|p| p as u32 + 2)
            };
            let mut o = ObservedNamespace {
                name: ns.clone(),
                exists: true,
                ..Default::default()
            };
            o.sysctls.insert("all".into(), GOOD);
            for (i, l) in mine.iter().enumerate() {
                let ifindex = i as u32 + 2;
                let controller = l.controller.as_deref().and_then(index);
                let kind = match &l.kind {
                    DesiredKind::Ethernet => LinkKind::Ethernet,
                    DesiredKind::Vlan { .. } => LinkKind::Vlan,
                    DesiredKind::Bond(_) => LinkKind::Bond,
                    DesiredKind::Veth { .. } | DesiredKind::VethPeer { .. } => LinkKind::Veth,
                    DesiredKind::Bridge { .. } => LinkKind::Bridge,
                };
                let (link, link_netnsid, vlan) = match &l.kind {
                    DesiredKind::Vlan {
                        parent,
                        id,
                        protocol,
                    } => (
                        index(parent),
                        None,
                        Some(VlanInfo {
                            id: *id,
                            protocol: *protocol,
                        }),
                    ),
                    DesiredKind::Veth { .. } | DesiredKind::VethPeer { .. } => {
                        (Some(2), Some(0), None)
                    }
                    _ => (None, None, None),
                };
                o.links.push(ObservedLink {
                    ifindex,
                    name: l.id.name.clone(),
                    kind,
                    mtu: l.mtu,
                    mac: None,
                    up: true,
                    carrier: true,
                    oper: "up".into(),
                    controller,
                    link,
                    link_netnsid,
                    vlan,
                    bond: None,
                    stp: None,
                    bond_port: controller.map(|_| BondPortInfo {
                        mii_up: true,
                        active: true,
                        collecting: true,
                        distributing: true,
                        aggregator_id: Some(1),
                    }),
                });
                o.sysctls.insert(l.id.name.clone(), GOOD);
                for a in &l.addresses {
                    o.addresses.push(ObservedAddress {
                        ifindex,
                        cidr: a.cidr,
                        flags: AddressFlags {
                            nodad: a.nodad,
                            ..Default::default()
                        },
                    });
                }
            }
            namespaces.push(o);
        }
        let vlan = namespaces[0].link("bond0.100").expect("vlan").ifindex;
        for gw in ["192.0.2.1", "2001:db8::1"] {
            namespaces[0].neighbours.push(ObservedNeighbour {
                ifindex: vlan,
                address: gw.parse().expect("address"),
                state: NudState::Reachable,
            });
        }
        Observed { namespaces }
    }

    fn root(o: &mut Observed) -> &mut ObservedNamespace {
        &mut o.namespaces[0]
    }

    fn link<'a>(o: &'a mut Observed, name: &str) -> &'a mut ObservedLink {
        root(o)
            .links
            .iter_mut()
            .find(|l| l.name == name)
            .expect("link")
    }

    fn codes(o: &Observed) -> Vec<Code> {
        diagnose(&view(), o, None)
            .expect("diagnosis")
            .iter()
            .map(|f| f.code)
            .collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    // Proves the healthy state is clean: every rule below fires only on what it names.
    #[test]
    fn healthy_is_clean() {
        let f = diagnose(&view(), &healthy(), None).expect("diagnosis");
        assert!(f.is_empty(), "{f:#?}");
        assert_eq!(summary(&f), "clean");
    }

    // Proves a missing non-member link is `link-missing` and nothing else is made of it.
    #[test]
    fn link_missing() {
        let mut o = healthy();
        root(&mut o).links.retain(|l| l.name != "mgmt");
        assert_eq!(codes(&o), [Code::LinkMissing]);
    }

    // Proves a link of the declared name but another kind is `wrong-kind`, while any link
    // passes as a declared ethernet port (a veth plays one in labs).
    #[test]
    fn wrong_kind() {
        let mut o = healthy();
        link(&mut o, "mgmt").kind = LinkKind::Veth;
        assert_eq!(codes(&o), []);
        link(&mut o, "veth-red").kind = LinkKind::Bridge;
        assert_eq!(codes(&o), [Code::WrongKind]);
    }

    // Proves an administratively down link is `link-down` (not also `no-carrier`).
    #[test]
    fn link_down() {
        let mut o = healthy();
        let l = link(&mut o, "mgmt");
        l.up = false;
        l.carrier = false;
        assert_eq!(codes(&o), [Code::LinkDown]);
    }

    // Proves an up link without carrier on a VIP's path is `no-carrier`, with the veth hint.
    #[test]
    fn no_carrier() {
        let mut o = healthy();
        link(&mut o, "veth-red").carrier = false;
        let f = diagnose(&view(), &o, None).expect("diagnosis");
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].code, Code::NoCarrier);
        assert!(f[0].fix.contains("red/eth0"), "{}", f[0]);
    }

    // Proves VLAN id and protocol differences are named separately.
    #[test]
    fn vlan_id_and_protocol() {
        let mut o = healthy();
        link(&mut o, "bond0.100").vlan = Some(VlanInfo {
            id: 200,
            protocol: VlanProtocol::Dot1Ad,
        });
        assert_eq!(codes(&o), [Code::VlanIdDiffers, Code::VlanProtocolDiffers]);
    }

    // Proves a VLAN on another parent is `wrong-parent`, naming the parent it has.
    #[test]
    fn wrong_parent() {
        let mut o = healthy();
        let mgmt = link(&mut o, "mgmt").ifindex;
        link(&mut o, "bond0.100").link = Some(mgmt);
        let f = diagnose(&view(), &o, None).expect("diagnosis");
        // mgmt's MTU 1500 is now under the VLAN's 9000: also a cause, and named.
        assert_eq!(
            f.iter().map(|f| f.code).collect::<Vec<_>>(),
            [Code::MtuAboveParent, Code::WrongParent]
        );
        assert!(f[1].message.contains("sits on mgmt"), "{}", f[1]);
    }

    // Proves a parent lowered under its VLAN gives `mtu-differs` on the parent and
    // `mtu-above-parent` on the VLAN.
    #[test]
    fn mtu_above_parent() {
        let mut o = healthy();
        link(&mut o, "bond0").mtu = 1500;
        assert_eq!(codes(&o), [Code::MtuDiffers, Code::MtuAboveParent]);
    }

    // Proves a bond member gone is `member-missing`, and LACP then counts too few links.
    #[test]
    fn member_missing() {
        let mut o = healthy();
        root(&mut o).links.retain(|l| l.name != "eth1");
        assert_eq!(codes(&o), [Code::MemberMissing, Code::LacpBelowMinLinks]);
    }

    // Proves a bond member without carrier is `member-down` (and below min links).
    #[test]
    fn member_down() {
        let mut o = healthy();
        let l = link(&mut o, "eth0");
        l.carrier = false;
        l.bond_port = l.bond_port.map(|p| BondPortInfo {
            mii_up: false,
            collecting: false,
            distributing: false,
            ..p
        });
        assert_eq!(codes(&o), [Code::MemberDown, Code::LacpBelowMinLinks]);
    }

    // Proves a declared member without its controller is `member-not-enslaved`.
    #[test]
    fn member_not_enslaved() {
        let mut o = healthy();
        let l = link(&mut o, "eth1");
        l.controller = None;
        l.bond_port = None;
        assert_eq!(
            codes(&o),
            [
                Code::MemberNotEnslaved,
                Code::LacpNotAggregating,
                Code::LacpBelowMinLinks
            ]
        );
    }

    // Proves an up LACP member that is not collecting+distributing is named, and that the
    // bond then has fewer aggregating links than min_links.
    #[test]
    fn lacp_not_aggregating() {
        let mut o = healthy();
        let l = link(&mut o, "eth1");
        l.bond_port = l.bond_port.map(|p| BondPortInfo {
            distributing: false,
            ..p
        });
        let f = diagnose(&view(), &o, None).expect("diagnosis");
        assert_eq!(
            f.iter().map(|f| f.code).collect::<Vec<_>>(),
            [Code::LacpNotAggregating, Code::LacpBelowMinLinks]
        );
        assert!(f[0].message.contains("distributing no"), "{}", f[0]);
    }

    // Proves a VIP absent, tentative or dadfailed is named with its own code.
    #[test]
    fn vip_missing_tentative_dadfailed() {
        let mut o = healthy();
        root(&mut o)
            .addresses
            .retain(|a| a.cidr.addr != ip("192.0.2.10"));
        assert_eq!(codes(&o), [Code::VipMissing]);

        let mut o = healthy();
        for a in &mut root(&mut o).addresses {
            if a.cidr.addr == ip("2001:db8::10") {
                a.flags = AddressFlags {
                    tentative: true,
                    ..Default::default()
                };
            }
        }
        assert_eq!(codes(&o), [Code::VipTentative]);

        let mut o = healthy();
        for a in &mut root(&mut o).addresses {
            if a.cidr.addr == ip("2001:db8::10") {
                a.flags = AddressFlags {
                    tentative: true,
                    dadfailed: true,
                    nodad: false,
                };
            }
        }
        assert_eq!(codes(&o), [Code::VipDadfailed]);
    }

    // Proves a VIP found on another link is reported missing with where it is.
    #[test]
    fn vip_on_other_link() {
        let mut o = healthy();
        let mgmt = link(&mut o, "mgmt").ifindex;
        for a in &mut root(&mut o).addresses {
            if a.cidr.addr == ip("192.0.2.10") {
                a.ifindex = mgmt;
            }
        }
        let f = diagnose(&view(), &o, None).expect("diagnosis");
        assert_eq!(f[0].code, Code::VipMissing);
        assert!(f[0].message.contains("(it is on mgmt)"), "{}", f[0]);
    }

    // Proves gateway neighbours FAILED (IPv4) and INCOMPLETE (IPv6) are named per family.
    #[test]
    fn gateway_failed_and_incomplete() {
        let mut o = healthy();
        root(&mut o).neighbours[0].state = NudState::Failed;
        root(&mut o).neighbours[1].state = NudState::Incomplete;
        let f = diagnose(&view(), &o, None).expect("diagnosis");
        assert_eq!(
            f.iter().map(|f| f.code).collect::<Vec<_>>(),
            [Code::GatewayFailed, Code::GatewayIncomplete]
        );
        assert!(
            f[0].message.contains("IPv4 gateway 192.0.2.1 is FAILED"),
            "{}",
            f[0]
        );
        assert!(f[1].message.contains("IPv6"), "{}", f[1]);
    }

    // Proves arp_ignore=8 on a VIP's interface (through `all`, the larger value wins) drops
    // ARP for its VIPs.
    #[test]
    fn arp_ignore_drops() {
        let mut o = healthy();
        root(&mut o).sysctls.insert(
            "all".into(),
            Ipv4Conf {
                arp_ignore: 8,
                ..GOOD
            },
        );
        // Every namespace's VIP interface is affected only where `all` is 8: the root's.
        assert_eq!(codes(&o), [Code::ArpIgnore]);
    }

    // Proves arp_ignore=2 drops ARP only for a VIP outside every subnet of its interface.
    #[test]
    fn arp_ignore_two_off_subnet() {
        let mut o = healthy();
        let vlan = link(&mut o, "bond0.100").ifindex;
        root(&mut o).sysctls.insert(
            "bond0.100".into(),
            Ipv4Conf {
                arp_ignore: 2,
                ..GOOD
            },
        );
        assert_eq!(codes(&o), []);
        root(&mut o).addresses.retain(|a| {
            !(a.ifindex == vlan && a.cidr == Cidr::parse("192.0.2.2/24").expect("cidr"))
        });
        let c = codes(&o);
        assert!(c.contains(&Code::ArpIgnore), "{c:?}");
    }

    // Proves arp_ignore=0 on another IPv4 interface of the namespace (ARP flux) is named.
    #[test]
    fn arp_ignore_flux() {
        let mut o = healthy();
        root(&mut o).sysctls.insert(
            "all".into(),
            Ipv4Conf {
                arp_ignore: 0,
                ..GOOD
            },
        );
        root(&mut o).sysctls.insert(
            "mgmt".into(),
            Ipv4Conf {
                arp_ignore: 0,
                ..GOOD
            },
        );
        let f = diagnose(&view(), &o, None).expect("diagnosis");
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].code, Code::ArpIgnore);
        assert!(f[0].message.contains("arp_ignore is 0 on mgmt"), "{}", f[0]);
    }

    // Proves arp_announce=0 on a VIP's interface is a warning, which does not count as an
    // error.
    #[test]
    fn arp_announce_warns() {
        let mut o = healthy();
        root(&mut o).sysctls.insert(
            "bond0.100".into(),
            Ipv4Conf {
                arp_announce: 0,
                ..GOOD
            },
        );
        root(&mut o).sysctls.insert(
            "all".into(),
            Ipv4Conf {
                arp_announce: 0,
                ..GOOD
            },
        );
        let f = diagnose(&view(), &o, None).expect("diagnosis");
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(
            (f[0].code, f[0].severity),
            (Code::ArpAnnounce, Severity::Warning)
        );
        assert!(!has_errors(&f));
    }

    // Proves strict rp_filter on a VIP's interface is named in a multi-homed namespace only.
    #[test]
    fn rp_filter_strict_multihomed() {
        let mut o = healthy();
        let strict = Ipv4Conf {
            rp_filter: 1,
            ..GOOD
        };
        root(&mut o).sysctls.insert("bond0.100".into(), strict);
        // `all` = 2 (loose) wins over the interface's 1: the larger value applies.
        assert_eq!(codes(&o), []);
        root(&mut o).sysctls.insert(
            "all".into(),
            Ipv4Conf {
                rp_filter: 0,
                ..GOOD
            },
        );
        assert_eq!(codes(&o), [Code::RpFilter]);
        // With mgmt down, bond0.100 is the only IPv4 interface: strict is harmless.
        let l = link(&mut o, "mgmt");
        l.up = false;
        l.carrier = false;
        assert_eq!(codes(&o), [Code::LinkDown]);
    }

    // Proves a veth-peer found beside its veth is `veth-peer-outside-namespace`, saying where.
    #[test]
    fn veth_peer_outside_namespace() {
        let mut o = healthy();
        o.namespaces[1].links.clear();
        o.namespaces[1].addresses.clear();
        let v = link(&mut o, "veth-red");
        v.link = Some(99);
        v.link_netnsid = None;
        root(&mut o).links.push(ObservedLink {
            ifindex: 99,
            name: "eth0-moved".into(),
            ..healthy().namespaces[1].links[0].clone()
        });
        let f = diagnose(&view(), &o, None).expect("diagnosis");
        assert_eq!(
            f.iter().map(|f| f.code).collect::<Vec<_>>(),
            [Code::VethPeerOutsideNamespace]
        );
        assert!(
            f[0].message.contains("eth0-moved in the host namespace"),
            "{}",
            f[0]
        );
    }

    // Proves the VIP argument limits the report to its path: a broken link off the path is
    // not reported, one under the VIP's interface is.
    #[test]
    fn vip_limits_to_its_path() {
        let mut o = healthy();
        link(&mut o, "veth-red").up = false;
        link(&mut o, "eth0").carrier = false;
        let only = |v: &str| -> Vec<Code> {
            diagnose(&view(), &o, Some(ip(v)))
                .expect("diagnosis")
                .iter()
                .map(|f| f.code)
                .collect()
        };
        assert_eq!(
            only("192.0.2.10"),
            [Code::LacpBelowMinLinks, Code::MemberDown]
        );
        assert_eq!(only("203.0.113.10"), []);
        assert!(matches!(
            diagnose(&view(), &o, Some(ip("192.0.2.99"))),
            Err(DiagError::UnknownVip { .. })
        ));
    }

    // Proves findings serialize with kebab-case codes and lowercase severities.
    #[test]
    fn json_codes() {
        let mut o = healthy();
        root(&mut o).links.retain(|l| l.name != "mgmt");
        let f = diagnose(&view(), &o, None).expect("diagnosis");
        let v = serde_json::to_value(&f).expect("json");
        assert_eq!(v[0]["code"], "link-missing");
        assert_eq!(v[0]["severity"], "error");
    }
}
