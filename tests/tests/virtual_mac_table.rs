//! The virtual MAC (RFC 9568 7.3) in the data plane, through BPF_PROG_TEST_RUN against the
//! production object: the gate gives frames to an owned virtual MAC the interface MAC as
//! destination and drops those to a backup's; the guard makes frames that speak for an
//! owned virtual-MAC VIP, and the master's adverts, leave with the virtual MAC, ARP sender
//! and neighbour discovery option included (the ICMPv6 checksum stays right). Untagged,
//! 802.1Q and QinQ, so every header offset is exercised.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use tr7_common::{FAMILY_IPV4, FAMILY_IPV6, Reason, vmac};
use tr7_tests::{
    bpf::{TEST_SLOT, TestDataplane, tagged, tagged_place},
    packet::{CLIENT_MAC, Frame, NODE_MAC, icmpv6_checksum},
};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const TC_ACT_OK: u32 = 0;
const TC_ACT_SHOT: u32 = 2;

const VRID: u8 = 51;
const OTHER_VRID: u8 = 52;
const UNUSED_VRID: u8 = 53;
/// What the agent writes as the interface MAC in the test's rows.
const IFACE_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x99];

const PEER4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const NODE4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// Owned, speaks with VRID's virtual MAC.
const VIP4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
/// Owned, interface MAC.
const PLAIN4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 12);
/// Not owned, OTHER_VRID's virtual MAC.
const BACKUP4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);
const PEER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);
const PLAIN6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x12);
const LINK_LOCAL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const VRRP6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);

/// Offset of the first byte after the tags.
fn l3(tags: u8) -> usize {
    14 + 4 * usize::from(tags)
}

fn setup(t: &mut TestDataplane) {
    for tags in 0..3u8 {
        let p = tagged_place(tags);
        for (addr, owned, vrid) in [
            (IpAddr::V4(VIP4), true, Some(VRID)),
            (IpAddr::V4(PLAIN4), true, None),
            (IpAddr::V4(BACKUP4), false, Some(OTHER_VRID)),
            (IpAddr::V6(VIP6), true, Some(VRID)),
            (IpAddr::V6(PLAIN6), true, None),
        ] {
            t.maps.set_vip(p, addr, owned).unwrap();
            t.maps.set_vip_virtual_mac(p, addr, vrid).unwrap();
        }
    }
    for family in [FAMILY_IPV4, FAMILY_IPV6] {
        t.maps
            .set_vmac(TEST_SLOT, family, VRID, IFACE_MAC, Some(true))
            .unwrap();
        t.maps
            .set_vmac(TEST_SLOT, family, OTHER_VRID, IFACE_MAC, Some(false))
            .unwrap();
    }
}

/// `f`'s bytes sent to `mac`.
fn to_mac(f: Frame, mac: [u8; 6]) -> Vec<u8> {
    let mut b = f.bytes().to_vec();
    b[..6].copy_from_slice(&mac);
    b
}

/// A name, a frame, the verdict, the destination MAC it must leave the gate with (`None`:
/// unchanged) and the reason counted.
type Case = (&'static str, Vec<u8>, u32, Option<[u8; 6]>, Reason);

#[test]
fn gate_takes_frames_to_an_owned_virtual_mac_and_drops_a_backups() {
    let mut t = TestDataplane::load("vmac-gate");
    setup(&mut t);
    for tags in 0..3u8 {
        let cases: [Case; 6] = [
            (
                "IPv4 to the owned virtual MAC",
                to_mac(
                    tagged(tags).ipv4(PEER4, VIP4, 17).udp(4000, 80, b"x"),
                    vmac(FAMILY_IPV4, VRID),
                ),
                XDP_PASS,
                Some(IFACE_MAC),
                Reason::PassedOwned,
            ),
            (
                "IPv6 to the owned virtual MAC",
                to_mac(
                    tagged(tags).ipv6(PEER6, VIP6, 17).udp(4000, 80, b"x"),
                    vmac(FAMILY_IPV6, VRID),
                ),
                XDP_PASS,
                Some(IFACE_MAC),
                Reason::PassedOwned,
            ),
            (
                "routed IPv4 (not to a VIP) through the owned virtual MAC",
                to_mac(
                    tagged(tags)
                        .ipv4(PEER4, Ipv4Addr::new(203, 0, 113, 7), 17)
                        .udp(4000, 80, b"x"),
                    vmac(FAMILY_IPV4, VRID),
                ),
                XDP_PASS,
                Some(IFACE_MAC),
                Reason::PassedNotVip,
            ),
            (
                "IPv4 to a backup's virtual MAC",
                to_mac(
                    tagged(tags).ipv4(PEER4, BACKUP4, 17).udp(4000, 80, b"x"),
                    vmac(FAMILY_IPV4, OTHER_VRID),
                ),
                XDP_DROP,
                None,
                Reason::DroppedNotOwned,
            ),
            (
                "IPv4 to a virtual MAC no router here uses",
                to_mac(
                    tagged(tags).ipv4(PEER4, PLAIN4, 17).udp(4000, 80, b"x"),
                    vmac(FAMILY_IPV4, UNUSED_VRID),
                ),
                XDP_PASS,
                None,
                Reason::PassedOwned,
            ),
            (
                "IPv4 to the interface MAC",
                tagged(tags)
                    .ipv4(PEER4, PLAIN4, 17)
                    .udp(4000, 80, b"x")
                    .bytes()
                    .to_vec(),
                XDP_PASS,
                None,
                Reason::PassedOwned,
            ),
        ];
        for (name, frame, verdict, new_dst, reason) in cases {
            let what = format!("{name} (tags: {tags})");
            let before = t.counters();
            let (got, out) = t.run_gate_out(&frame);
            assert_eq!(got, verdict, "{what}: verdict");
            let after = t.counters();
            assert_eq!(
                after.get(reason) - before.get(reason),
                1,
                "{what}: counter {}",
                reason.label()
            );
            if verdict == XDP_PASS {
                let want_dst = new_dst.unwrap_or(frame[..6].try_into().unwrap());
                assert_eq!(out[..6], want_dst, "{what}: destination MAC");
                assert_eq!(out[6..], frame[6..], "{what}: the rest is untouched");
            }
        }
    }
}

#[test]
fn gate_drops_frames_to_an_owned_virtual_mac_when_fenced() {
    let mut t = TestDataplane::load("vmac-fence");
    setup(&mut t);
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).unwrap();
    let now = now.tv_sec() as u64 * 1_000_000_000 + now.tv_nsec() as u64;
    // A heartbeat one second old against a 1 ms fence.
    t.maps.heartbeat(now - 1_000_000_000, 1_000_000).unwrap();
    let frame = to_mac(
        Frame::eth().ipv4(PEER4, VIP4, 17).udp(4000, 80, b"x"),
        vmac(FAMILY_IPV4, VRID),
    );
    let before = t.counters();
    let (got, _) = t.run_gate_out(&frame);
    assert_eq!(got, XDP_DROP);
    assert_eq!(
        t.counters().get(Reason::Fenced) - before.get(Reason::Fenced),
        1
    );
}

#[test]
fn guard_speaks_for_owned_virtual_mac_vips_with_the_virtual_mac() {
    let mut t = TestDataplane::load("vmac-guard");
    setup(&mut t);
    let v4 = vmac(FAMILY_IPV4, VRID);
    let v6 = vmac(FAMILY_IPV6, VRID);
    for tags in 0..3u8 {
        let arp_sha = l3(tags) + 8;
        // ICMPv6 at l3 + 40; the option's MAC at + 24 + 2.
        let nd_mac = l3(tags) + 40 + 26;

        // ARP reply from the VIP: Ethernet source and sender hardware address.
        let (verdict, out) = t.run_guard_out(tagged(tags).arp(2, VIP4, PEER4).bytes());
        assert_eq!(verdict, TC_ACT_OK, "ARP (tags {tags})");
        assert_eq!(out[6..12], v4, "ARP Ethernet source (tags {tags})");
        assert_eq!(
            out[arp_sha..arp_sha + 6],
            v4,
            "ARP sender hardware address (tags {tags})"
        );

        // IPv4 from the VIP.
        let (verdict, out) = t.run_guard_out(
            tagged(tags)
                .ipv4(VIP4, PEER4, 17)
                .udp(80, 4000, b"x")
                .bytes(),
        );
        assert_eq!(verdict, TC_ACT_OK);
        assert_eq!(out[6..12], v4, "IPv4 Ethernet source (tags {tags})");

        // An owned VIP without a virtual MAC, and the node's own address: untouched.
        for frame in [
            tagged(tags).arp(2, PLAIN4, PEER4),
            tagged(tags).ipv4(NODE4, PEER4, 17).udp(80, 4000, b"x"),
            tagged(tags).ipv6(PLAIN6, PEER6, 17).udp(80, 4000, b"x"),
        ] {
            let (verdict, out) = t.run_guard_out(frame.bytes());
            assert_eq!(verdict, TC_ACT_OK);
            assert_eq!(out, frame.bytes(), "untouched (tags {tags})");
        }

        // A VIP owned elsewhere: dropped, as without a virtual MAC.
        assert_eq!(
            t.run_guard(tagged(tags).arp(2, BACKUP4, PEER4).bytes()),
            TC_ACT_SHOT
        );

        // Neighbour discovery from the VIP: Ethernet source and link-layer option rewritten,
        // the ICMPv6 checksum right (and changed) after the rewrite.
        let icmp = l3(tags) + 40;
        for (what, frame) in [
            (
                "NA for the VIP, target option",
                tagged(tags)
                    .ipv6(VIP6, PEER6, 58)
                    .nd_checked(136, VIP6, 2, NODE_MAC),
            ),
            (
                "unsolicited NA from link-local for the VIP",
                tagged(tags)
                    .ipv6(LINK_LOCAL, ALL_NODES, 58)
                    .nd_checked(136, VIP6, 2, NODE_MAC),
            ),
            (
                "NS from the VIP, source option",
                tagged(tags)
                    .ipv6(VIP6, PEER6, 58)
                    .nd_checked(135, PEER6, 1, NODE_MAC),
            ),
        ] {
            let (verdict, out) = t.run_guard_out(frame.bytes());
            assert_eq!(verdict, TC_ACT_OK, "{what} (tags {tags})");
            assert_eq!(out[6..12], v6, "{what}: Ethernet source (tags {tags})");
            assert_eq!(
                out[nd_mac..nd_mac + 6],
                v6,
                "{what}: link-layer option (tags {tags})"
            );
            assert_eq!(
                u16::from_be_bytes([out[icmp + 2], out[icmp + 3]]),
                icmpv6_checksum(&out, l3(tags), icmp),
                "{what}: checksum after the rewrite (tags {tags})"
            );
            assert_ne!(
                out[icmp + 2..icmp + 4],
                frame.bytes()[icmp + 2..icmp + 4],
                "{what}: checksum changed (tags {tags})"
            );
        }

        // An NA for an address that is not a VIP, from the VIP: Ethernet source only, the
        // option (someone else's MAC) is left alone.
        let (_, out) = t.run_guard_out(
            tagged(tags)
                .ipv6(VIP6, PEER6, 58)
                .nd_checked(136, PEER6, 2, CLIENT_MAC)
                .bytes(),
        );
        assert_eq!(out[6..12], v6);
        assert_eq!(
            out[nd_mac..nd_mac + 6],
            CLIENT_MAC,
            "NA option of another target kept"
        );
    }
}

#[test]
fn guard_gives_the_masters_adverts_the_virtual_mac() {
    let mut t = TestDataplane::load("vmac-advert");
    setup(&mut t);
    let advert = |vrid: u8| [0x31, vrid, 100, 1, 0, 100, 0, 0, 192, 0, 2, 10];
    for tags in 0..3u8 {
        // Master here: the advert leaves from the virtual MAC.
        let (_, out) = t.run_guard_out(
            tagged(tags)
                .ipv4(NODE4, PEER4, 112)
                .payload(&advert(VRID))
                .bytes(),
        );
        assert_eq!(
            out[6..12],
            vmac(FAMILY_IPV4, VRID),
            "IPv4 advert (tags {tags})"
        );
        let (_, out) = t.run_guard_out(
            tagged(tags)
                .ipv6(LINK_LOCAL, VRRP6, 112)
                .payload(&advert(VRID))
                .bytes(),
        );
        assert_eq!(
            out[6..12],
            vmac(FAMILY_IPV6, VRID),
            "IPv6 advert (tags {tags})"
        );
        // Backup here, or no virtual MAC: the interface MAC.
        for vrid in [OTHER_VRID, UNUSED_VRID] {
            let frame = tagged(tags).ipv4(NODE4, PEER4, 112).payload(&advert(vrid));
            let (verdict, out) = t.run_guard_out(frame.bytes());
            assert_eq!(verdict, TC_ACT_OK);
            assert_eq!(
                out,
                frame.bytes(),
                "advert of VRID {vrid} untouched (tags {tags})"
            );
        }
    }
    // The master gives its virtual MAC up: its adverts leave from the interface MAC.
    t.maps
        .own_vmac(TEST_SLOT, FAMILY_IPV4, VRID, false)
        .unwrap();
    let frame = Frame::eth().ipv4(NODE4, PEER4, 112).payload(&advert(VRID));
    let (_, out) = t.run_guard_out(frame.bytes());
    assert_eq!(out, frame.bytes());
}
