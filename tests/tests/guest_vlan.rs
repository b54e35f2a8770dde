//! Guest-only tests, run by `cargo xtask vm-test` in a Debian kernel under QEMU: this
//! machine's kernel has neither 802.1Q nor bonding. They prove what the BPF_PROG_TEST_RUN
//! tables cannot: the gate keys real tagged traffic by its VLAN tags (802.1Q and QinQ), the
//! guard reads the outer tag from skb metadata where the kernel keeps it on egress, and the
//! kernel's bond and LACP behave as issue 4 will configure them.
//!
//! On the host every test is ignored, with the reason, so the summary counts it as skipped;
//! the guest runs them with `--ignored` and `TR7_GUEST=1`, and there a missing feature is a
//! failure.

use std::time::Duration;

use tr7::dataplane::{
    Maps, VipScope, XdpAttachMode, attach,
    vlan_offload::{OffloadChange, Role},
};
use tr7_common::Reason;
use tr7_tests::{
    bpf::PinDir,
    lab::{Lab, ip, vlan_link},
};

const SCOPE: u32 = 3;
const VIP4: &str = "192.0.2.10";
const VIP6: &str = "2001:db8::10";
const NODE4: &str = "192.0.2.2";

/// The three L2 domains of one trunk, each reaching the same VIP address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Domain {
    Untagged,
    Vlan100,
    QinQ200_100,
}

const DOMAINS: [Domain; 3] = [Domain::Untagged, Domain::Vlan100, Domain::QinQ200_100];

impl Domain {
    fn place(self) -> VipScope {
        match self {
            Self::Untagged => VipScope::untagged(SCOPE),
            Self::Vlan100 => VipScope::vlan(SCOPE, 100),
            Self::QinQ200_100 => VipScope::qinq(SCOPE, 200, 100),
        }
    }

    /// The interface of this domain on the client (`va…`) or node (`vb…`) end.
    fn dev(self, end: &str) -> String {
        match self {
            Self::Untagged => end.to_owned(),
            Self::Vlan100 => format!("{end}.100"),
            Self::QinQ200_100 => format!("{end}.200.100"),
        }
    }
}

/// One trunk veth between `client` and `node`, the data plane attached to the node's end
/// `vb` (it sees every domain's frames, tags included). Each tagged domain's VLAN device is
/// moved into its own namespace on both sides, so the three domains can use the same
/// subnet and the same VIP address, as tenants of an ADC do:
///
/// ```text
///  client: va (192.0.2.1)   ── veth ──   node: vb (192.0.2.2, VIP)     untagged
///  c100:   va.100           ── 802.1Q 100 ──   n100: vb.100            VLAN 100
///  cqq:    va.200.100  (va.200: 802.1ad 200)   nqq:  vb.200.100        QinQ 200/100
/// ```
struct Trunk {
    lab: Lab,
    pins: PinDir,
    slot: u32,
    /// What the attach turned off to keep VLAN tags in the frame.
    offload: Vec<OffloadChange>,
    /// `(client namespace, node namespace)` per domain, in [`DOMAINS`] order.
    ns: Vec<(String, String)>,
}

impl Trunk {
    /// `offload`: whether the client's trunk inserts tags by offload (kept in skb metadata
    /// across the veth, as the kernel does by default) or writes them into the frame, as a
    /// switch port delivers them to a NIC without VLAN stripping.
    fn new(tag: &str, mode: XdpAttachMode, offload: bool) -> Self {
        let mut lab = Lab::new(tag);
        let client = lab.netns("client");
        let node = lab.netns("node");
        lab.veth(&client, "va", &node, "vb");
        let ns = vec![
            (client.clone(), node.clone()),
            (lab.netns("c100"), lab.netns("n100")),
            (lab.netns("cqq"), lab.netns("nqq")),
        ];
        for (end, side) in [("va", 0), ("vb", 1)] {
            let pick = |i: usize| if side == 0 { &ns[i].0 } else { &ns[i].1 };
            let trunk_ns = pick(0);
            ip(&[
                "-n",
                trunk_ns,
                "link",
                "add",
                "link",
                end,
                "name",
                &format!("{end}.100"),
                "type",
                "vlan",
                "proto",
                "802.1Q",
                "id",
                "100",
            ]);
            ip(&[
                "-n",
                trunk_ns,
                "link",
                "add",
                "link",
                end,
                "name",
                &format!("{end}.200"),
                "type",
                "vlan",
                "proto",
                "802.1ad",
                "id",
                "200",
            ]);
            ip(&["-n", trunk_ns, "link", "set", &format!("{end}.200"), "up"]);
            ip(&[
                "-n",
                trunk_ns,
                "link",
                "add",
                "link",
                &format!("{end}.200"),
                "name",
                &format!("{end}.200.100"),
                "type",
                "vlan",
                "proto",
                "802.1Q",
                "id",
                "100",
            ]);
            for domain in [Domain::Vlan100, Domain::QinQ200_100] {
                let target = pick(domain as usize);
                let dev = domain.dev(end);
                ip(&["-n", trunk_ns, "link", "set", &dev, "netns", target]);
                ip(&["-n", target, "link", "set", &dev, "up"]);
            }
        }
        for (i, domain) in DOMAINS.iter().enumerate() {
            let (c, n) = &ns[i];
            let (cdev, ndev) = (domain.dev("va"), domain.dev("vb"));
            lab.addr(c, &cdev, "192.0.2.1/24");
            lab.addr(c, &cdev, "2001:db8::1/64");
            lab.addr(n, &ndev, &format!("{NODE4}/24"));
            lab.addr(n, &ndev, "2001:db8::2/64");
            lab.addr(n, &ndev, &format!("{VIP4}/32"));
            lab.addr(n, &ndev, &format!("{VIP6}/128"));
        }
        for (i, domain) in DOMAINS.iter().enumerate() {
            lab.wait_ipv6_ready(&ns[i].0, &domain.dev("va"));
            lab.wait_ipv6_ready(&ns[i].1, &domain.dev("vb"));
        }
        if !offload {
            let out = lab.exec(
                &client,
                &[
                    "ethtool",
                    "-K",
                    "va",
                    "txvlan",
                    "off",
                    "tx-vlan-stag-hw-insert",
                    "off",
                ],
            );
            assert!(
                out.status.success(),
                "ethtool -K va txvlan off: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let pins = PinDir::new(tag);
        let att = attach(&pins.path, "vb", Some(&node), SCOPE, mode)
            .unwrap_or_else(|e| panic!("attach to the trunk vb: {e}"));
        Self {
            lab,
            pins,
            slot: att.slot,
            offload: att.vlan_offload,
            ns,
        }
    }

    fn client(&self, d: Domain) -> &str {
        &self.ns[d as usize].0
    }

    fn node(&self, d: Domain) -> &str {
        &self.ns[d as usize].1
    }

    fn maps(&self) -> Maps {
        Maps::open(&self.pins.path).unwrap()
    }

    fn own(&self, d: Domain, owned: bool) {
        let mut maps = self.maps();
        for vip in [VIP4, VIP6] {
            maps.set_vip(d.place(), vip.parse().unwrap(), owned)
                .unwrap();
        }
    }

    fn ping(&self, d: Domain, addr: &str) -> bool {
        self.lab
            .exec(self.client(d), &["ping", "-c", "1", "-W", "1", addr])
            .status
            .success()
    }

    fn arping(&self, d: Domain, addr: &str) -> bool {
        self.lab
            .exec(
                self.client(d),
                &["arping", "-c", "1", "-w", "1", "-I", &d.dev("va"), addr],
            )
            .status
            .success()
    }

    /// The client's neighbour entry for `addr` in domain `d`, if any.
    fn client_neighbour(&self, d: Domain, addr: &str) -> String {
        let out = self.lab.exec(
            self.client(d),
            &["ip", "neigh", "show", addr, "dev", &d.dev("va")],
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn vip_tx_guarded(&self, d: Domain, addr: &str) -> u64 {
        let addr: std::net::IpAddr = addr.parse().unwrap();
        self.maps()
            .vips()
            .unwrap()
            .iter()
            .find(|v| v.place == d.place() && v.addr == addr)
            .map_or(0, |v| v.counters.tx_guarded_packets)
    }
}

/// Asserts that domain `d` answers for the VIP exactly when `owned`.
fn assert_answers(t: &Trunk, d: Domain, owned: bool) {
    assert!(
        t.ping(d, NODE4),
        "{d:?}: the node's own address {NODE4} must always answer (the VLAN path works)"
    );
    assert_eq!(
        t.arping(d, VIP4),
        owned,
        "{d:?}: ARP for {VIP4}, owned={owned}"
    );
    assert_eq!(t.ping(d, VIP4), owned, "{d:?}: ping {VIP4}, owned={owned}");
    assert_eq!(t.ping(d, VIP6), owned, "{d:?}: ping {VIP6}, owned={owned}");
}

/// The same address untagged, in VLAN 100 and in QinQ 200/100, owned differently: each
/// domain answers for itself, and map writes alone flip them all.
fn gate_keys_by_domain(tag: &str, offload: bool) {
    for mode in [XdpAttachMode::Native, XdpAttachMode::Generic] {
        let t = Trunk::new(tag, mode, offload);
        for owned_vlan100 in [false, true] {
            t.own(Domain::Untagged, !owned_vlan100);
            t.own(Domain::Vlan100, owned_vlan100);
            t.own(Domain::QinQ200_100, !owned_vlan100);
            for d in DOMAINS {
                let owned = (d == Domain::Vlan100) == owned_vlan100;
                eprintln!("{mode:?}: {d:?} owned={owned}");
                assert_answers(&t, d, owned);
            }
        }
        let c = t.maps().slot_counters(t.slot).unwrap();
        assert!(c.get(Reason::ArpSuppressed) >= 3, "{mode:?}: {c:?}");
        // A neighbour learned while owned skips NS: its pings are dropped as IP.
        assert!(
            c.get(Reason::NdSuppressed) + c.get(Reason::DroppedNotOwned) >= 3,
            "{mode:?}: {c:?}"
        );
        assert!(c.get(Reason::PassedOwned) >= 9, "{mode:?}: {c:?}");
    }
}

/// Tags written into the frame by the client, as a switch port delivers them to a NIC
/// that does not strip VLANs: the gate reads both tags.
#[test]
#[ignore = tr7_tests::guest_only!()]
fn the_gate_keys_tagged_frames_by_vlan_and_qinq() {
    tr7_tests::require_guest();
    gate_keys_by_domain("gate", false);
}

/// With the kernel's default VLAN offload, a tag inserted by the client's VLAN device would
/// cross the veth in skb metadata, where XDP (native and generic) cannot read it: measured
/// in the guest (6.12), the gate then keyed a VLAN 100 frame as untagged and a QinQ 200/100
/// frame as VLAN 100. Attaching turns the veth peer's transmit VLAN offload off (and the
/// trunk's own receive offload, what strips tags on a NIC), so the tags stay in the frame.
/// Replies still obey the right domain because the guard reads the metadata on egress
/// (`the_guard_reads_vlan_tags_from_skb_metadata`).
#[test]
#[ignore = tr7_tests::guest_only!()]
fn the_gate_keys_offloaded_tags_by_vlan_and_qinq() {
    tr7_tests::require_guest();
    gate_keys_by_domain("gateoff", true);
}

/// What attaching to the trunk changed: the client end's transmit VLAN offload is off, as
/// `ethtool -k` reports, and a second attach changes nothing.
#[test]
#[ignore = tr7_tests::guest_only!()]
fn attaching_turns_the_peers_vlan_offload_off() {
    tr7_tests::require_guest();
    let t = Trunk::new("offl", XdpAttachMode::Native, true);
    let client = t.client(Domain::Untagged).to_owned();
    let peer = t
        .offload
        .iter()
        .find(|c| c.iface == "va")
        .unwrap_or_else(|| panic!("attach did not touch the veth peer va: {:?}", t.offload));
    assert_eq!(peer.netns.as_deref(), Some(client.as_str()), "{peer:?}");
    assert!(
        peer.turned_off.iter().any(|f| f == "tx-vlan-hw-insert")
            && peer
                .turned_off
                .iter()
                .any(|f| f == "tx-vlan-stag-hw-insert"),
        "{peer:?}"
    );
    let out = t.lab.exec(&client, &["ethtool", "-k", "va"]);
    let features = String::from_utf8_lossy(&out.stdout);
    for line in ["tx-vlan-offload: off", "tx-vlan-stag-hw-insert: off"] {
        assert!(
            features.contains(line),
            "va after attach, no `{line}`:\n{features}"
        );
    }
    let node = t.node(Domain::Untagged).to_owned();
    let again = attach(
        &t.pins.path,
        "vb",
        Some(&node),
        SCOPE,
        XdpAttachMode::Native,
    )
    .unwrap();
    assert!(
        again.vlan_offload.iter().all(|c| c.turned_off.is_empty()),
        "a second attach changed features again: {:?}",
        again.vlan_offload
    );
}

#[test]
#[ignore = tr7_tests::guest_only!()]
fn the_guard_reads_vlan_tags_from_skb_metadata() {
    tr7_tests::require_guest();
    let t = Trunk::new("guard", XdpAttachMode::Native, true);
    for d in [Domain::Vlan100, Domain::QinQ200_100] {
        // The client learns from gratuitous ARP, so what crosses the wire is visible in its
        // neighbour table.
        t.lab.proc_sys(
            t.client(d),
            &format!("net/ipv4/conf/{}/arp_accept", d.dev("va")),
            "1",
        );
        // The node's VLAN device announces a VIP it does not own in that domain: on the
        // trunk's egress the outer tag is in skb metadata, not in the frame.
        t.own(d, false);
        let before = t.vip_tx_guarded(d, VIP4);
        let garp = || {
            t.lab.exec(
                t.node(d),
                &["arping", "-U", "-c", "1", "-I", &d.dev("vb"), VIP4],
            )
        };
        garp();
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            t.client_neighbour(d, VIP4),
            "",
            "{d:?}: a gratuitous ARP for a not-owned VIP reached the client"
        );
        assert!(
            t.vip_tx_guarded(d, VIP4) > before,
            "{d:?}: the VIP's tx_guarded did not count the announcement"
        );
        // Owned: the same announcement arrives.
        t.own(d, true);
        garp();
        let mac = t.lab.mac(t.node(d), &d.dev("vb"));
        let mut seen = String::new();
        for _ in 0..20 {
            seen = t.client_neighbour(d, VIP4);
            if seen.contains(&mac) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            seen.contains(&mac),
            "{d:?}: the gratuitous ARP for an owned VIP did not reach the client (neighbour: {seen:?}, node MAC {mac})"
        );
    }
    let c = t.maps().slot_counters(t.slot).unwrap();
    assert!(c.get(Reason::EgressGuarded) >= 2, "{c:?}");
}

/// `/proc/net/bonding/<bond>` of namespace `ns`.
fn bonding(lab: &Lab, ns: &str, bond: &str) -> String {
    let out = lab.exec(ns, &["cat", &format!("/proc/net/bonding/{bond}")]);
    assert!(
        out.status.success(),
        "no /proc/net/bonding/{bond} in {ns}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Creates bond `bond0` in `ns` with `options` and the given members (each set down while
/// enslaved, then up).
fn bond(ns: &str, options: &[&str], members: &[&str]) {
    let mut args = vec!["-n", ns, "link", "add", "bond0", "type", "bond"];
    args.extend_from_slice(options);
    ip(&args);
    for m in members {
        ip(&["-n", ns, "link", "set", m, "down"]);
        ip(&["-n", ns, "link", "set", m, "master", "bond0"]);
        ip(&["-n", ns, "link", "set", m, "up"]);
    }
    ip(&["-n", ns, "link", "set", "bond0", "up"]);
}

/// Whether `ethtool -k` of `iface` in `ns` shows `feature` on.
fn feature_on(lab: &Lab, ns: &str, iface: &str, feature: &str) -> bool {
    let out = lab.exec(ns, &["ethtool", "-k", iface]);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{feature}:")))
        .unwrap_or_else(|| panic!("{iface} in {ns} has no {feature}:\n{text}"));
    line.contains(": on")
}

/// The gate on a bond whose members are veths: attach turns VLAN offload off on the
/// members (receive) and on their other ends (transmit), so tagged frames reach the gate
/// with their tags and a VIP in VLAN 100 over the bond is gated by that VLAN's ownership;
/// detach turns all of it back on.
#[test]
#[ignore = tr7_tests::guest_only!()]
fn attaching_to_a_bond_keeps_the_members_tags_and_detach_restores_them() {
    tr7_tests::require_guest();
    let (lab, a, b) = bond_lab("bondvl");
    vlan_link(&a, "bond0", 100);
    vlan_link(&b, "br0", 100);
    lab.addr(&a, "bond0.100", "192.0.2.2/24");
    lab.addr(&a, "bond0.100", &format!("{VIP4}/32"));
    lab.addr(&b, "br0.100", "192.0.2.1/24");
    for iface in ["a1", "a2"] {
        assert!(
            feature_on(&lab, &a, iface, "rx-vlan-offload"),
            "{iface} starts with rx offload on"
        );
    }
    for iface in ["b1", "b2"] {
        assert!(
            feature_on(&lab, &b, iface, "tx-vlan-offload"),
            "{iface} starts with tx offload on"
        );
    }

    let pins = PinDir::new("bondvl");
    let att = attach(&pins.path, "bond0", Some(&a), SCOPE, XdpAttachMode::Auto).unwrap();
    let turned: Vec<_> = att
        .vlan_offload
        .iter()
        .filter(|c| !c.turned_off.is_empty())
        .map(|c| (c.role, c.iface.as_str()))
        .collect();
    for want in [
        (Role::Member, "a1"),
        (Role::Member, "a2"),
        (Role::MemberPeer, "b1"),
        (Role::MemberPeer, "b2"),
    ] {
        assert!(
            turned.contains(&want),
            "{want:?} not turned off: {:?}",
            att.vlan_offload
        );
    }
    for iface in ["a1", "a2"] {
        assert!(
            !feature_on(&lab, &a, iface, "rx-vlan-offload"),
            "{iface} after attach"
        );
    }
    for iface in ["b1", "b2"] {
        assert!(
            !feature_on(&lab, &b, iface, "tx-vlan-offload"),
            "{iface} after attach"
        );
    }

    // Keyed by VLAN 100: not owned there, the gate drops the ARP request on ingress (the
    // guard would also stop the reply, so the VIP's ingress counter is what tells); owned,
    // the VIP answers. With the members' offload left on, the gate saw these frames
    // untagged, found no VIP, and only the guard kept the VIP silent: checked once by
    // taking the member step out.
    let mut maps = Maps::open(&pins.path).unwrap();
    let place = VipScope::vlan(SCOPE, 100);
    let vip: std::net::IpAddr = VIP4.parse().unwrap();
    let arping = || {
        lab.exec(&b, &["arping", "-c", "1", "-w", "1", "-I", "br0.100", VIP4])
            .status
            .success()
    };
    assert!(
        lab.ping_once(&b, "192.0.2.2"),
        "no traffic over VLAN 100 on the bond"
    );
    maps.set_vip(place, vip, false).unwrap();
    assert!(
        !arping(),
        "ARP for {VIP4} answered in VLAN 100, where it is not owned"
    );
    let entry = maps
        .vips()
        .unwrap()
        .into_iter()
        .find(|v| v.place == place && v.addr == vip)
        .unwrap();
    assert!(
        entry.counters.rx_dropped_packets >= 1,
        "the gate did not drop the ARP request for {VIP4} as VLAN 100's: {:?}",
        entry.counters
    );
    maps.set_vip(place, vip, true).unwrap();
    assert!(
        arping(),
        "ARP for {VIP4} unanswered in VLAN 100, where it is owned"
    );

    let done = tr7::dataplane::detach(&pins.path, "bond0", Some(&a)).unwrap();
    assert!(done.found);
    let restored: Vec<_> = done
        .vlan_offload
        .iter()
        .filter(|r| !r.turned_on.is_empty())
        .map(|r| r.iface.as_str())
        .collect();
    for iface in ["a1", "a2", "b1", "b2"] {
        assert!(
            restored.contains(&iface),
            "{iface} not restored: {:?}",
            done.vlan_offload
        );
    }
    for iface in ["a1", "a2"] {
        assert!(
            feature_on(&lab, &a, iface, "rx-vlan-offload"),
            "{iface} after detach"
        );
    }
    for iface in ["b1", "b2"] {
        assert!(
            feature_on(&lab, &b, iface, "tx-vlan-offload"),
            "{iface} after detach"
        );
    }
}

/// Node `a` with `bond0`, active-backup over `a1` (primary) and `a2`, cabled to a switch in
/// `b` (`b1`, `b2` in bridge `br0`). Returns the lab and the two namespaces.
fn bond_lab(tag: &str) -> (Lab, String, String) {
    let mut lab = Lab::new(tag);
    let a = lab.netns("a");
    let b = lab.netns("b");
    lab.veth(&a, "a1", &b, "b1");
    lab.veth(&a, "a2", &b, "b2");
    bond(
        &a,
        &["mode", "active-backup", "miimon", "50", "primary", "a1"],
        &["a1", "a2"],
    );
    switch(&b, &["b1", "b2"]);
    (lab, a, b)
}

/// A switch in `ns`: bridge `br0` (no STP) over `ports`, up.
fn switch(ns: &str, ports: &[&str]) {
    ip(&[
        "-n",
        ns,
        "link",
        "add",
        "br0",
        "type",
        "bridge",
        "stp_state",
        "0",
    ]);
    for p in ports {
        ip(&["-n", ns, "link", "set", p, "master", "br0"]);
    }
    ip(&["-n", ns, "link", "set", "br0", "up"]);
}

fn active_slave(text: &str) -> Option<&str> {
    text.lines()
        .find_map(|l| l.strip_prefix("Currently Active Slave:"))
        .map(str::trim)
}

#[test]
#[ignore = tr7_tests::guest_only!()]
fn bond_active_backup_fails_over_to_the_backup_member() {
    tr7_tests::require_guest();
    let (lab, a, b) = bond_lab("ab");
    lab.addr(&a, "bond0", "192.0.2.1/24");
    lab.addr(&b, "br0", "192.0.2.2/24");
    let ping = || {
        (0..3).any(|_| {
            lab.exec(&a, &["ping", "-c", "1", "-W", "1", "192.0.2.2"])
                .status
                .success()
        })
    };
    assert!(ping(), "no traffic over the bond");
    assert_eq!(active_slave(&bonding(&lab, &a, "bond0")), Some("a1"));

    // The active member loses its carrier when its peer goes down.
    ip(&["-n", &b, "link", "set", "b1", "down"]);
    let mut text = String::new();
    for _ in 0..50 {
        text = bonding(&lab, &a, "bond0");
        if active_slave(&text) == Some("a2") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        active_slave(&text),
        Some("a2"),
        "no failover in 5 s:\n{text}"
    );
    assert!(ping(), "no traffic after failing over to a2");
}

/// Per member of a bond: its name and the actor's LACP port state.
fn lacp_port_states(text: &str) -> Vec<(String, u8)> {
    let mut out = Vec::new();
    let mut member = None;
    let mut in_actor = false;
    for line in text.lines() {
        let line = line.trim();
        if let Some(m) = line.strip_prefix("Slave Interface:") {
            member = Some(m.trim().to_owned());
        } else if line.starts_with("details actor lacp pdu:") {
            in_actor = true;
        } else if line.starts_with("details partner lacp pdu:") {
            in_actor = false;
        } else if let Some(state) = line.strip_prefix("port state:")
            && in_actor
            && let Some(m) = member.take()
        {
            out.push((m, state.trim().parse().unwrap_or(0)));
        }
    }
    out
}

/// 802.3ad port state bits (IEEE 802.1AX 6.4.2.3): collecting and distributing.
const COLLECTING: u8 = 0x10;
const DISTRIBUTING: u8 = 0x20;

#[test]
#[ignore = tr7_tests::guest_only!()]
fn lacp_negotiates_and_carries_a_vlan_with_ipv4_and_ipv6() {
    tr7_tests::require_guest();
    let mut lab = Lab::new("lacp");
    let a = lab.netns("a");
    let b = lab.netns("b");
    lab.veth(&a, "a1", &b, "b1");
    lab.veth(&a, "a2", &b, "b2");
    let options = ["mode", "802.3ad", "lacp_rate", "fast", "miimon", "50"];
    bond(&a, &options, &["a1", "a2"]);
    bond(&b, &options, &["b1", "b2"]);

    // Bounded: fast LACPDUs go every second; negotiation takes a few.
    let ready = |ns: &str| {
        let states = lacp_port_states(&bonding(&lab, ns, "bond0"));
        states.len() == 2
            && states
                .iter()
                .all(|(_, s)| s & (COLLECTING | DISTRIBUTING) == COLLECTING | DISTRIBUTING)
    };
    let mut waited = Duration::ZERO;
    while !(ready(&a) && ready(&b)) {
        assert!(
            waited < Duration::from_secs(10),
            "LACP not collecting and distributing on all ports after 10 s:\n{}\n{}",
            bonding(&lab, &a, "bond0"),
            bonding(&lab, &b, "bond0")
        );
        std::thread::sleep(Duration::from_millis(200));
        waited += Duration::from_millis(200);
    }

    for (ns, addr4, addr6) in [
        (&a, "198.51.100.1/24", "2001:db8:100::1/64"),
        (&b, "198.51.100.2/24", "2001:db8:100::2/64"),
    ] {
        ip(&[
            "-n",
            ns,
            "link",
            "add",
            "link",
            "bond0",
            "name",
            "bond0.100",
            "type",
            "vlan",
            "id",
            "100",
        ]);
        ip(&["-n", ns, "link", "set", "bond0.100", "up"]);
        lab.addr(ns, "bond0.100", addr4);
        lab.addr(ns, "bond0.100", addr6);
    }
    lab.wait_ipv6_ready(&a, "bond0.100");
    lab.wait_ipv6_ready(&b, "bond0.100");
    for dst in ["198.51.100.2", "2001:db8:100::2"] {
        let out = lab.exec(&a, &["ping", "-c", "3", "-i", "0.2", "-W", "1", dst]);
        assert!(
            out.status.success(),
            "ping {dst} over VLAN 100 on the LACP bond: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
