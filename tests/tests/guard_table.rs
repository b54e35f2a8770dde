//! The VIP guard (TC egress) run through BPF_PROG_TEST_RUN against the production object:
//! frames that would speak for a VIP (ARP from it, IP from it, an NA for it) leave only when
//! this node owns the VIP, untagged and with in-frame VLAN tags; everything else leaves
//! untouched. Verdicts and counter deltas.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use tr7_common::Reason;
use tr7_tests::{
    bpf::{TestDataplane, tagged, tagged_place},
    packet::Frame,
};

const TC_ACT_OK: u32 = 0;
const TC_ACT_SHOT: u32 = 2;

const PEER4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const OWNED4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const NOT_OWNED4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);
const NODE4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const PEER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const OWNED6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);
const NOT_OWNED6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x11);
const NODE6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
const LINK_LOCAL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

fn setup(t: &mut TestDataplane) {
    for tags in 0..3u8 {
        for (addr, owned) in [
            (IpAddr::V4(OWNED4), true),
            (IpAddr::V4(NOT_OWNED4), false),
            (IpAddr::V6(OWNED6), true),
            (IpAddr::V6(NOT_OWNED6), false),
        ] {
            t.maps.set_vip(tagged_place(tags), addr, owned).unwrap();
        }
    }
}

struct Case {
    name: &'static str,
    frame: fn(u8) -> Frame,
    verdict: u32,
    reason: Reason,
    /// The VIP whose tx_guarded counter must grow.
    guarded: Option<IpAddr>,
    /// Bytes after the VLAN tags the guard must read: ARP 28, IPv4 20, IPv6 40, NA 64.
    needs: usize,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "gratuitous ARP for a VIP owned elsewhere",
            frame: |t| tagged(t).arp(1, NOT_OWNED4, NOT_OWNED4),
            verdict: TC_ACT_SHOT,
            reason: Reason::EgressGuarded,
            guarded: Some(NOT_OWNED4.into()),
            needs: 28,
        },
        Case {
            name: "ARP reply from a VIP owned elsewhere",
            frame: |t| tagged(t).arp(2, NOT_OWNED4, PEER4),
            verdict: TC_ACT_SHOT,
            reason: Reason::EgressGuarded,
            guarded: Some(NOT_OWNED4.into()),
            needs: 28,
        },
        Case {
            name: "ARP reply from an owned VIP",
            frame: |t| tagged(t).arp(2, OWNED4, PEER4),
            verdict: TC_ACT_OK,
            reason: Reason::EgressPassed,
            guarded: None,
            needs: 28,
        },
        Case {
            name: "ARP request from the node's own address",
            frame: |t| tagged(t).arp(1, NODE4, PEER4),
            verdict: TC_ACT_OK,
            reason: Reason::EgressPassed,
            guarded: None,
            needs: 28,
        },
        Case {
            name: "IPv4 from a VIP owned elsewhere",
            frame: |t| tagged(t).ipv4(NOT_OWNED4, PEER4, 17).udp(53, 4000, b"x"),
            verdict: TC_ACT_SHOT,
            reason: Reason::EgressGuarded,
            guarded: Some(NOT_OWNED4.into()),
            needs: 20,
        },
        Case {
            name: "IPv4 from an owned VIP",
            frame: |t| tagged(t).ipv4(OWNED4, PEER4, 17).udp(53, 4000, b"x"),
            verdict: TC_ACT_OK,
            reason: Reason::EgressPassed,
            guarded: None,
            needs: 20,
        },
        Case {
            name: "IPv4 to a VIP owned elsewhere (from the node's address)",
            frame: |t| tagged(t).ipv4(NODE4, NOT_OWNED4, 17).udp(53, 4000, b"x"),
            verdict: TC_ACT_OK,
            reason: Reason::EgressPassed,
            guarded: None,
            needs: 20,
        },
        Case {
            name: "IPv6 from a VIP owned elsewhere",
            frame: |t| tagged(t).ipv6(NOT_OWNED6, PEER6, 17).udp(53, 4000, b"x"),
            verdict: TC_ACT_SHOT,
            reason: Reason::EgressGuarded,
            guarded: Some(NOT_OWNED6.into()),
            needs: 40,
        },
        Case {
            name: "IPv6 from an owned VIP",
            frame: |t| tagged(t).ipv6(OWNED6, PEER6, 17).udp(53, 4000, b"x"),
            verdict: TC_ACT_OK,
            reason: Reason::EgressPassed,
            guarded: None,
            needs: 40,
        },
        Case {
            name: "unsolicited NA from a link-local source for a VIP owned elsewhere",
            frame: |t| {
                tagged(t)
                    .ipv6(LINK_LOCAL, ALL_NODES, 58)
                    .nd(136, NOT_OWNED6)
            },
            verdict: TC_ACT_SHOT,
            reason: Reason::EgressGuarded,
            guarded: Some(NOT_OWNED6.into()),
            needs: 64,
        },
        Case {
            name: "unsolicited NA for an owned VIP",
            frame: |t| tagged(t).ipv6(LINK_LOCAL, ALL_NODES, 58).nd(136, OWNED6),
            verdict: TC_ACT_OK,
            reason: Reason::EgressPassed,
            guarded: None,
            needs: 64,
        },
        Case {
            name: "NA for the node's own address",
            frame: |t| tagged(t).ipv6(NODE6, PEER6, 58).nd(136, NODE6),
            verdict: TC_ACT_OK,
            reason: Reason::EgressPassed,
            guarded: None,
            needs: 64,
        },
    ]
}

#[test]
fn guard_verdicts_and_counters() {
    let mut t = TestDataplane::load("guard");
    setup(&mut t);
    let mut n = 0;
    for case in cases() {
        for tags in 0..3u8 {
            let bytes = (case.frame)(tags).bytes().to_vec();
            let what = format!("{} (tags: {tags})", case.name);
            let before = t.counters();
            let vips_before = t.maps.vips().unwrap();

            let verdict = t.run_guard(&bytes);

            assert_eq!(verdict, case.verdict, "{what}: verdict");
            let after = t.counters();
            for reason in Reason::ALL {
                let want = u64::from(reason == case.reason);
                assert_eq!(
                    after.get(reason) - before.get(reason),
                    want,
                    "{what}: counter {}",
                    reason.label()
                );
            }
            for (v0, v1) in vips_before.iter().zip(t.maps.vips().unwrap()) {
                let grew = v1.counters.tx_guarded_packets - v0.counters.tx_guarded_packets;
                let want =
                    u64::from(v1.place == tagged_place(tags) && Some(v1.addr) == case.guarded);
                assert_eq!(
                    grew, want,
                    "{what}: tx_guarded of {} in {}",
                    v1.addr, v1.place
                );
            }
            n += 1;
        }
    }
    assert_eq!(n, 36);
}

#[test]
fn guard_fenced_silences_owned_vips_too() {
    // With the fence tripped, even an owned VIP may not speak: the agent is presumed dead
    // and the peer is taking over.
    let mut t = TestDataplane::load("guardfence");
    setup(&mut t);
    let now = tr7::cli::dataplane::monotonic_ns().unwrap();
    t.maps.heartbeat(now - 1_000_000_000, 1_000_000).unwrap();
    let garp = Frame::eth().arp(1, OWNED4, OWNED4);
    assert_eq!(t.run_guard(garp.bytes()), TC_ACT_SHOT);
    let na = Frame::eth().ipv6(LINK_LOCAL, ALL_NODES, 58).nd(136, OWNED6);
    assert_eq!(t.run_guard(na.bytes()), TC_ACT_SHOT);
}

#[test]
fn guard_truncated_frames_pass_as_malformed() {
    // Every case with two tags, cut at every length from the Ethernet header on: a frame
    // too short for the headers the guard reads passes and counts as malformed; once they
    // are complete, the verdict is that of the whole frame.
    let mut t = TestDataplane::load("guardtrunc");
    setup(&mut t);
    for case in cases() {
        let full = (case.frame)(2);
        let full = full.bytes();
        let needed = 14 + 8 + case.needs;
        for cut in 14..=full.len() {
            let before = t.counters();
            let v = t.run_guard(&full[..cut]);
            let after = t.counters();
            let malformed = after.get(Reason::Malformed) - before.get(Reason::Malformed);
            let what = format!("{} cut at {cut}/{}", case.name, full.len());
            if cut < needed {
                assert_eq!((v, malformed), (TC_ACT_OK, 1), "{what}");
            } else {
                assert_eq!((v, malformed), (case.verdict, 0), "{what}");
            }
        }
    }
}
