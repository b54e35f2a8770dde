//! Real traffic through the gate and guard attached to a veth in a namespace lab, in native
//! and in generic XDP mode: ping and UDP to an owned VIP arrive, to a VIP owned elsewhere
//! they do not, ARP and NS for it get no answer, and flipping the ownership bit flips the
//! behaviour without re-attaching. Also: a second load adopts the pinned programs and maps
//! with their contents, and detach removes everything.

use std::{
    net::{IpAddr, SocketAddr, UdpSocket},
    time::Duration,
};

use tr7::dataplane::{AttachOutcome, Maps, VipScope, XdpAttachMode, attach, detach};
use tr7_common::Reason;
use tr7_tests::{bpf::PinDir, lab::Lab};

const OWNED4: &str = "192.0.2.10";
const NOT_OWNED4: &str = "192.0.2.11";
const OWNED6: &str = "2001:db8::10";
const NOT_OWNED6: &str = "2001:db8::11";

const SCOPE: u32 = 7;
const PLACE: VipScope = VipScope::untagged(SCOPE);

struct Setup {
    lab: Lab,
    client: String,
    node: String,
    pins: PinDir,
    netns: u32,
    ifindex: u32,
    slot: u32,
}

/// client (va: 192.0.2.1, 2001:db8::1) <-veth-> node (vb: 192.0.2.2, 2001:db8::2 and the
/// four VIPs); the data plane attached on vb; VIPs .10/::10 owned, .11/::11 not.
fn setup(tag: &str, mode: XdpAttachMode) -> Setup {
    let mut lab = Lab::new(tag);
    let client = lab.netns("client");
    let node = lab.netns("node");
    lab.veth(&client, "va", &node, "vb");
    lab.addr(&client, "va", "192.0.2.1/24");
    lab.addr(&client, "va", "2001:db8::1/64");
    lab.addr(&node, "vb", "192.0.2.2/24");
    lab.addr(&node, "vb", "2001:db8::2/64");
    for vip in [OWNED4, NOT_OWNED4] {
        lab.addr(&node, "vb", &format!("{vip}/32"));
    }
    for vip in [OWNED6, NOT_OWNED6] {
        lab.addr(&node, "vb", &format!("{vip}/128"));
    }
    lab.wait_ipv6_ready(&client, "va");
    lab.wait_ipv6_ready(&node, "vb");
    let pins = PinDir::new(tag);
    let att = attach(&pins.path, "vb", Some(&node), SCOPE, mode).unwrap();
    assert_eq!(
        (att.gate, att.guard),
        (AttachOutcome::Attached, AttachOutcome::Attached)
    );
    assert_eq!(att.netns, tr7::netns::inode(Some(&node)).unwrap());
    // VLAN offload off so tags stay in the frame: vb's receive stripping, and the transmit
    // insertion of its veth peer va, found in the client's namespace.
    let turned_off = |iface: &str, ns: &str| {
        att.vlan_offload
            .iter()
            .find(|c| c.iface == iface && c.netns.as_deref() == Some(ns))
            .map(|c| c.turned_off.clone())
            .unwrap_or_else(|| {
                panic!(
                    "attach did not touch {iface} in {ns}: {:?}",
                    att.vlan_offload
                )
            })
    };
    assert_eq!(
        turned_off("vb", &node),
        ["rx-vlan-hw-parse", "rx-vlan-stag-hw-parse"]
    );
    assert_eq!(
        turned_off("va", &client),
        ["tx-vlan-hw-insert", "tx-vlan-stag-hw-insert"]
    );
    let features = lab.exec(&client, &["ethtool", "-k", "va"]);
    let features = String::from_utf8_lossy(&features.stdout);
    assert!(
        features.contains("tx-vlan-offload: off"),
        "va after attach:\n{features}"
    );
    let mut maps = Maps::open(&pins.path).unwrap();
    for (vip, owned) in [
        (OWNED4, true),
        (NOT_OWNED4, false),
        (OWNED6, true),
        (NOT_OWNED6, false),
    ] {
        maps.set_vip(PLACE, vip.parse().unwrap(), owned).unwrap();
    }
    Setup {
        lab,
        client,
        node,
        pins,
        netns: att.netns,
        ifindex: att.ifindex,
        slot: att.slot,
    }
}

impl Setup {
    fn ping(&self, addr: &str) -> bool {
        self.lab
            .exec(&self.client, &["ping", "-c", "1", "-W", "1", addr])
            .status
            .success()
    }

    /// Whether an ARP request for `addr` gets an answer.
    fn arping(&self, addr: &str) -> bool {
        self.lab
            .exec(
                &self.client,
                &["arping", "-c", "1", "-w", "1", "-I", "va", addr],
            )
            .status
            .success()
    }

    /// Pins the client's neighbour entry for `addr` to the node's MAC, so IP frames reach
    /// the wire (and the gate) even when ARP/NS for `addr` is suppressed.
    fn static_neighbour(&self, addr: &str) {
        let mac = self.lab.mac(&self.node, "vb");
        tr7_tests::lab::ip(&[
            "-n",
            &self.client,
            "neigh",
            "replace",
            addr,
            "lladdr",
            &mac,
            "dev",
            "va",
            "nud",
            "permanent",
        ]);
    }

    /// Sends one UDP datagram from the client to `addr` and reports whether the node's
    /// socket, bound to all addresses, received it within 500 ms.
    fn udp_arrives(&self, addr: &str) -> bool {
        let ip: IpAddr = addr.parse().unwrap();
        let any: IpAddr = if ip.is_ipv4() { "0.0.0.0" } else { "::" }.parse().unwrap();
        let server = tr7::netns::within(Some(&self.node), || UdpSocket::bind((any, 0)))
            .unwrap()
            .unwrap();
        server
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let port = server.local_addr().unwrap().port();
        tr7::netns::within(Some(&self.client), || {
            let client = UdpSocket::bind((any, 0)).unwrap();
            client.send_to(b"tr7", SocketAddr::new(ip, port)).unwrap();
        })
        .unwrap();
        let mut buf = [0u8; 16];
        server.recv_from(&mut buf).is_ok()
    }

    fn maps(&self) -> Maps {
        Maps::open(&self.pins.path).unwrap()
    }
}

fn traffic_follows_ownership(mode: XdpAttachMode, tag: &str) {
    let s = setup(tag, mode);
    // Owned VIPs answer, both families.
    assert!(s.ping(OWNED4), "ping to owned {OWNED4}");
    assert!(s.ping(OWNED6), "ping to owned {OWNED6}");
    assert!(s.arping(OWNED4), "ARP for owned {OWNED4}");
    assert!(s.udp_arrives(OWNED4), "UDP to owned {OWNED4}");
    // VIPs owned elsewhere: no ARP/NS answer, so no ping.
    assert!(
        !s.arping(NOT_OWNED4),
        "ARP for not-owned {NOT_OWNED4} was answered"
    );
    assert!(
        !s.ping(NOT_OWNED4),
        "ping to not-owned {NOT_OWNED4} was answered"
    );
    assert!(
        !s.ping(NOT_OWNED6),
        "ping to not-owned {NOT_OWNED6} was answered"
    );
    // Even with the neighbour pinned, IP to them is dropped by the gate.
    s.static_neighbour(NOT_OWNED4);
    s.static_neighbour(NOT_OWNED6);
    assert!(
        !s.udp_arrives(NOT_OWNED4),
        "UDP to not-owned {NOT_OWNED4} arrived"
    );
    assert!(
        !s.udp_arrives(NOT_OWNED6),
        "UDP to not-owned {NOT_OWNED6} arrived"
    );
    let iface = s.maps().slot_counters(s.slot).unwrap();
    assert!(iface.get(Reason::ArpSuppressed) >= 1, "{iface:?}");
    assert!(iface.get(Reason::NdSuppressed) >= 1, "{iface:?}");
    assert!(iface.get(Reason::DroppedNotOwned) >= 2, "{iface:?}");
    assert!(iface.get(Reason::PassedOwned) >= 4, "{iface:?}");

    // Flip: .11/::11 become owned, .10 not; no re-attach.
    let mut maps = s.maps();
    maps.set_vip(PLACE, NOT_OWNED4.parse().unwrap(), true)
        .unwrap();
    maps.set_vip(PLACE, NOT_OWNED6.parse().unwrap(), true)
        .unwrap();
    maps.set_vip(PLACE, OWNED4.parse().unwrap(), false).unwrap();
    assert!(
        s.udp_arrives(NOT_OWNED4),
        "UDP to {NOT_OWNED4} after taking it over"
    );
    assert!(
        s.ping(NOT_OWNED6),
        "ping to {NOT_OWNED6} after taking it over"
    );
    assert!(
        s.arping(NOT_OWNED4),
        "ARP for {NOT_OWNED4} after taking it over"
    );
    assert!(
        !s.arping(OWNED4),
        "ARP for {OWNED4} answered after giving it up"
    );
    assert!(
        !s.udp_arrives(OWNED4),
        "UDP to {OWNED4} arrived after giving it up"
    );
}

#[test]
fn traffic_follows_ownership_native_xdp() {
    traffic_follows_ownership(XdpAttachMode::Native, "nat");
}

#[test]
fn traffic_follows_ownership_generic_xdp() {
    traffic_follows_ownership(XdpAttachMode::Generic, "gen");
}

#[test]
fn second_attach_adopts_pins_and_detach_removes_them() {
    let s = setup("adopt", XdpAttachMode::Native);
    assert!(s.ping(OWNED4));
    let counted = s.maps().vips().unwrap();
    // The attaching call has returned and dropped its handles: the pinned links alone keep
    // the programs attached.
    assert!(
        s.ping(OWNED4),
        "the gate must keep running without its loader"
    );
    assert!(
        !s.arping(NOT_OWNED4),
        "the gate must keep suppressing without its loader"
    );

    let again = attach(
        &s.pins.path,
        "vb",
        Some(&s.node),
        SCOPE,
        XdpAttachMode::Native,
    )
    .unwrap();
    assert_eq!(
        (again.gate, again.guard),
        (AttachOutcome::Adopted, AttachOutcome::Adopted)
    );
    assert_eq!(again.slot, s.slot, "the counter slot is kept");
    assert!(
        again.vlan_offload.iter().all(|c| c.turned_off.is_empty()),
        "a second attach changed VLAN offload again: {:?}",
        again.vlan_offload
    );
    // The maps were reused with their contents: same VIPs, same ownership, counters kept.
    let after = s.maps().vips().unwrap();
    assert_eq!(after.len(), counted.len());
    for (a, b) in counted.iter().zip(&after) {
        assert_eq!((a.addr, a.owned, a.index), (b.addr, b.owned, b.index));
        assert!(b.counters.rx_passed_packets >= a.counters.rx_passed_packets);
    }
    let owned = after.iter().find(|v| v.addr.to_string() == OWNED4).unwrap();
    assert!(owned.counters.rx_passed_packets > 0);

    // Another scope for the same interface: the running programs are swapped atomically.
    let moved = attach(
        &s.pins.path,
        "vb",
        Some(&s.node),
        SCOPE + 1,
        XdpAttachMode::Native,
    )
    .unwrap();
    assert_eq!(
        (moved.gate, moved.guard),
        (AttachOutcome::Replaced, AttachOutcome::Replaced)
    );
    // The VIPs are keyed with the old scope: in the new one they are no VIPs, so even the
    // not-owned one answers now; back to the old scope restores the gate.
    assert!(s.arping(NOT_OWNED4), "scope {} has no VIPs", SCOPE + 1);
    let back = attach(
        &s.pins.path,
        "vb",
        Some(&s.node),
        SCOPE,
        XdpAttachMode::Native,
    )
    .unwrap();
    assert_eq!(back.gate, AttachOutcome::Replaced);
    assert!(!s.arping(NOT_OWNED4), "scope {SCOPE} restored");

    let done = detach(&s.pins.path, "vb", Some(&s.node)).unwrap();
    assert!(done.found);
    // What the attach turned off (see `setup`) is on again, on both ends of the veth.
    let restored: Vec<_> = done
        .vlan_offload
        .iter()
        .map(|r| (r.iface.as_str(), r.turned_on.clone()))
        .collect();
    assert_eq!(
        restored,
        [
            (
                "vb",
                vec![
                    "rx-vlan-hw-parse".to_owned(),
                    "rx-vlan-stag-hw-parse".to_owned()
                ]
            ),
            (
                "va",
                vec![
                    "tx-vlan-hw-insert".to_owned(),
                    "tx-vlan-stag-hw-insert".to_owned()
                ]
            ),
        ]
    );
    let features = |ns: &str, iface: &str| {
        let out = s.lab.exec(ns, &["ethtool", "-k", iface]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let vb = features(&s.node, "vb");
    assert!(vb.contains("rx-vlan-offload: on"), "vb after detach:\n{vb}");
    let va = features(&s.client, "va");
    assert!(va.contains("tx-vlan-offload: on"), "va after detach:\n{va}");
    let layout = tr7::dataplane::PinLayout::new(&s.pins.path);
    assert!(!layout.iface_dir(s.netns, s.ifindex).exists());
    assert!(
        s.maps().ifaces().unwrap().is_empty(),
        "the counter slot is freed"
    );
    let link = s.lab.exec(&s.node, &["ip", "-d", "link", "show", "vb"]);
    let link = String::from_utf8_lossy(&link.stdout);
    assert!(
        !link.contains("prog/xdp"),
        "XDP still attached after detach: {link}"
    );
    // Without the gate, the not-owned VIP (configured on the node) answers ARP again.
    assert!(s.arping(NOT_OWNED4), "ARP unanswered after detach");
    let again = detach(&s.pins.path, "vb", Some(&s.node)).unwrap();
    assert!(!again.found, "second detach finds nothing");
    assert!(again.vlan_offload.is_empty(), "{:?}", again.vlan_offload);
}
