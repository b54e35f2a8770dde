//! The VIP gate (XDP ingress) run through BPF_PROG_TEST_RUN against the production object:
//! for IPv4, IPv6, ARP requests and neighbour solicitations, untagged, with one 802.1Q tag
//! and with an 802.1ad + 802.1Q pair, to an owned VIP, a VIP owned elsewhere, an address that
//! is no VIP, and under a tripped liveness fence: the verdict and the exact counter deltas.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use tr7::dataplane::VipScope;
use tr7_common::Reason;
use tr7_tests::{
    bpf::{TEST_SCOPE, TestDataplane},
    packet::{Frame, solicited_node},
};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

const CLIENT4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const OWNED4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const NOT_OWNED4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);
const NOT_VIP4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 99);
const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const OWNED6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);
const NOT_OWNED6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x11);
const NOT_VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x99);

#[derive(Clone, Copy, Debug)]
enum Tags {
    None,
    Dot1q,
    QinQ,
}

impl Tags {
    const ALL: [Tags; 3] = [Tags::None, Tags::Dot1q, Tags::QinQ];

    fn frame(self, broadcast: bool) -> Frame {
        let f = if broadcast {
            Frame::eth_broadcast()
        } else {
            Frame::eth()
        };
        match self {
            Tags::None => f,
            Tags::Dot1q => f.vlan(100),
            Tags::QinQ => f.svlan(200).vlan(100),
        }
    }

    /// Where the VIPs reached with these tags live.
    fn place(self) -> VipScope {
        match self {
            Tags::None => VipScope::untagged(TEST_SCOPE),
            Tags::Dot1q => VipScope::vlan(TEST_SCOPE, 100),
            Tags::QinQ => VipScope::qinq(TEST_SCOPE, 200, 100),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Ipv4,
    Ipv6,
    Arp,
    Ns,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Target {
    Owned,
    NotOwned,
    NotVip,
}

fn frame(kind: Kind, tags: Tags, target: Target) -> Vec<u8> {
    let (v4, v6) = match target {
        Target::Owned => (OWNED4, OWNED6),
        Target::NotOwned => (NOT_OWNED4, NOT_OWNED6),
        Target::NotVip => (NOT_VIP4, NOT_VIP6),
    };
    let f = match kind {
        Kind::Ipv4 => tags
            .frame(false)
            .ipv4(CLIENT4, v4, 17)
            .udp(4000, 53, b"ping"),
        Kind::Ipv6 => tags
            .frame(false)
            .ipv6(CLIENT6, v6, 17)
            .udp(4000, 53, b"ping"),
        Kind::Arp => tags.frame(true).arp(1, CLIENT4, v4),
        Kind::Ns => tags
            .frame(false)
            .ipv6(CLIENT6, solicited_node(v6), 58)
            .nd(135, v6),
    };
    f.bytes().to_vec()
}

/// The owned and the not-owned VIP of both families, untagged, in VLAN 100, and in
/// S-VLAN 200 / C-VLAN 100.
fn setup(t: &mut TestDataplane) {
    for tags in Tags::ALL {
        for (addr, owned) in [
            (IpAddr::V4(OWNED4), true),
            (IpAddr::V4(NOT_OWNED4), false),
            (IpAddr::V6(OWNED6), true),
            (IpAddr::V6(NOT_OWNED6), false),
        ] {
            t.maps.set_vip(tags.place(), addr, owned).unwrap();
        }
    }
}

fn fence_tripped(t: &mut TestDataplane) {
    // A heartbeat one second old against a 1 ms fence.
    let now = tr7::cli::dataplane::monotonic_ns().unwrap();
    t.maps.heartbeat(now - 1_000_000_000, 1_000_000).unwrap();
}

fn expected(kind: Kind, target: Target, fenced: bool) -> (u32, Reason) {
    match (target, fenced) {
        (Target::NotVip, _) => (XDP_PASS, Reason::PassedNotVip),
        (Target::Owned, false) => (XDP_PASS, Reason::PassedOwned),
        (Target::Owned, true) => (XDP_DROP, Reason::Fenced),
        (Target::NotOwned, _) => (
            XDP_DROP,
            match kind {
                Kind::Arp => Reason::ArpSuppressed,
                Kind::Ns => Reason::NdSuppressed,
                Kind::Ipv4 | Kind::Ipv6 => Reason::DroppedNotOwned,
            },
        ),
    }
}

fn vip_addr(kind: Kind, target: Target) -> Option<IpAddr> {
    let v4 = matches!(kind, Kind::Ipv4 | Kind::Arp);
    match (target, v4) {
        (Target::Owned, true) => Some(OWNED4.into()),
        (Target::Owned, false) => Some(OWNED6.into()),
        (Target::NotOwned, true) => Some(NOT_OWNED4.into()),
        (Target::NotOwned, false) => Some(NOT_OWNED6.into()),
        (Target::NotVip, _) => None,
    }
}

fn run_table(fenced: bool) {
    let mut t = TestDataplane::load("gate");
    setup(&mut t);
    if fenced {
        fence_tripped(&mut t);
    }
    let mut cases = 0;
    for kind in [Kind::Ipv4, Kind::Ipv6, Kind::Arp, Kind::Ns] {
        for tags in Tags::ALL {
            for target in [Target::Owned, Target::NotOwned, Target::NotVip] {
                let bytes = frame(kind, tags, target);
                let case = format!("{kind:?} {tags:?} {target:?} fenced={fenced}");
                let (want_verdict, want_reason) = expected(kind, target, fenced);
                let before = t.counters();
                let vip = vip_addr(kind, target).map(|addr| {
                    let entry = t
                        .maps
                        .vips()
                        .unwrap()
                        .into_iter()
                        .find(|v| v.place == tags.place() && v.addr == addr)
                        .unwrap();
                    (entry.index, entry.counters)
                });

                let verdict = t.run_gate(&bytes);

                assert_eq!(verdict, want_verdict, "{case}: verdict");
                let after = t.counters();
                for reason in Reason::ALL {
                    let delta = after.get(reason) - before.get(reason);
                    let want = u64::from(reason == want_reason);
                    assert_eq!(delta, want, "{case}: counter {}", reason.label());
                }
                if let Some((index, c0)) = vip {
                    let c1 = t.maps.vip_counters(index).unwrap();
                    let len = bytes.len() as u64;
                    if want_verdict == XDP_PASS {
                        assert_eq!(c1.rx_passed_packets - c0.rx_passed_packets, 1, "{case}");
                        assert_eq!(c1.rx_passed_bytes - c0.rx_passed_bytes, len, "{case}");
                        assert_eq!(c1.rx_dropped_packets, c0.rx_dropped_packets, "{case}");
                    } else {
                        assert_eq!(c1.rx_dropped_packets - c0.rx_dropped_packets, 1, "{case}");
                        assert_eq!(c1.rx_dropped_bytes - c0.rx_dropped_bytes, len, "{case}");
                        assert_eq!(c1.rx_passed_packets, c0.rx_passed_packets, "{case}");
                    }
                }
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 36);
}

#[test]
fn gate_verdicts_and_counters() {
    run_table(false);
}

#[test]
fn gate_verdicts_and_counters_when_fenced() {
    run_table(true);
}

#[test]
fn fence_of_zero_never_fires() {
    // An ancient heartbeat with a fence of 0: owned VIPs still pass.
    let mut t = TestDataplane::load("fence0");
    setup(&mut t);
    t.maps.heartbeat(1, 0).unwrap();
    let v = t.run_gate(&frame(Kind::Ipv4, Tags::None, Target::Owned));
    assert_eq!(v, XDP_PASS);
}

#[test]
fn fresh_heartbeat_keeps_vips_owned() {
    // A heartbeat refreshed now against a 10 s fence: owned VIPs pass; the fence only
    // fires once the agent stops refreshing.
    let mut t = TestDataplane::load("fresh");
    setup(&mut t);
    let now = tr7::cli::dataplane::monotonic_ns().unwrap();
    t.maps.heartbeat(now, 10_000_000_000).unwrap();
    assert_eq!(
        t.run_gate(&frame(Kind::Arp, Tags::Dot1q, Target::Owned)),
        XDP_PASS
    );
}

#[test]
fn same_address_in_two_vlans_is_owned_independently() {
    // 192.0.2.20 is a VIP both untagged and in VLAN 100: owned in the VLAN only.
    let mut t = TestDataplane::load("scope");
    setup(&mut t);
    let shared = Ipv4Addr::new(192, 0, 2, 20);
    t.maps
        .set_vip(Tags::None.place(), shared.into(), false)
        .unwrap();
    t.maps
        .set_vip(Tags::Dot1q.place(), shared.into(), true)
        .unwrap();
    let untagged = Frame::eth().ipv4(CLIENT4, shared, 17).udp(1, 2, b"x");
    let tagged = Frame::eth()
        .vlan(100)
        .ipv4(CLIENT4, shared, 17)
        .udp(1, 2, b"x");
    assert_eq!(t.run_gate(untagged.bytes()), XDP_DROP);
    assert_eq!(t.run_gate(tagged.bytes()), XDP_PASS);
    // A tag of the wrong protocol (802.1ad instead of 802.1Q) is another place: no VIP.
    let wrong_tpid = Frame::eth()
        .svlan(100)
        .ipv4(CLIENT4, shared, 17)
        .udp(1, 2, b"x");
    assert_eq!(t.run_gate(wrong_tpid.bytes()), XDP_PASS);
}

#[test]
fn ownership_flip_takes_effect_on_the_next_frame() {
    // The failover path is one map write: no reload, no re-attach.
    let mut t = TestDataplane::load("flip");
    setup(&mut t);
    let f = frame(Kind::Ipv4, Tags::None, Target::NotOwned);
    assert_eq!(t.run_gate(&f), XDP_DROP);
    t.maps
        .set_vip(Tags::None.place(), NOT_OWNED4.into(), true)
        .unwrap();
    assert_eq!(t.run_gate(&f), XDP_PASS);
    t.maps
        .set_vip(Tags::None.place(), NOT_OWNED4.into(), false)
        .unwrap();
    assert_eq!(t.run_gate(&f), XDP_DROP);
}

#[test]
fn a_heartbeat_counts_from_the_next_frame() {
    // The programs keep their fence verdict for a tick in each CPU's copy of the fence; an
    // agent write must clear it, or a verdict would outlive the heartbeat it was made from.
    // Each round writes, then runs a frame well within one tick (4 ms at HZ=250).
    let mut t = TestDataplane::load("fence-cache");
    setup(&mut t);
    let f = frame(Kind::Ipv4, Tags::None, Target::Owned);
    for round in 0..20 {
        let now = tr7::cli::dataplane::monotonic_ns().unwrap();
        t.maps.heartbeat(now, 10_000_000_000).unwrap();
        assert_eq!(t.run_gate(&f), XDP_PASS, "round {round}: fresh heartbeat");
        fence_tripped(&mut t);
        assert_eq!(t.run_gate(&f), XDP_DROP, "round {round}: stale heartbeat");
        t.maps.heartbeat(1, 0).unwrap();
        assert_eq!(t.run_gate(&f), XDP_PASS, "round {round}: fence off");
    }
}

#[test]
fn pins_of_replaced_maps_are_removed() {
    // Maps an earlier build pinned under names this build gave up (another layout): a load
    // removes their pins and creates its own, so no program of this build adopts them.
    use aya::maps::{Array, MapData};
    let pins = tr7_tests::bpf::PinDir::new("retired");
    std::fs::create_dir_all(&pins.path).unwrap();
    let old_fence = Array::<MapData, [u64; 2]>::create(1, 0).unwrap();
    old_fence.pin(pins.path.join("TR7_FENCE")).unwrap();
    let old_table = Array::<MapData, [u64; 5]>::create(16, 0).unwrap();
    old_table.pin(pins.path.join("TR7_VIP_TABLE")).unwrap();
    assert_eq!(tr7_common::map::RETIRED, ["TR7_VIP_TABLE", "TR7_FENCE"]);

    let mut maps = tr7::dataplane::create_maps(&pins.path).unwrap();
    for old in tr7_common::map::RETIRED {
        assert!(!pins.path.join(old).exists(), "{old} still pinned");
    }
    for new in [tr7_common::map::FENCE, tr7_common::map::VIP_TABLE] {
        assert!(pins.path.join(new).exists(), "{new} not pinned");
    }
    maps.heartbeat(5, 7).unwrap();
    let fence = maps.fence().unwrap();
    assert_eq!((fence.heartbeat_ns, fence.interval_ns), (5, 7));
}

#[test]
fn a_pin_of_another_layout_is_refused_and_nothing_changes() {
    // A map pinned under one of this build's names with other sizes (another build's): the
    // load refuses it by name and sizes, before creating, removing or loading anything.
    use aya::maps::{Array, MapData};
    let pins = tr7_tests::bpf::PinDir::new("layout");
    std::fs::create_dir_all(&pins.path).unwrap();
    let vmacs = Array::<MapData, [u64; 4]>::create(4, 0).unwrap();
    vmacs.pin(pins.path.join(tr7_common::map::VMACS)).unwrap();
    let retired = Array::<MapData, [u64; 2]>::create(1, 0).unwrap();
    retired.pin(pins.path.join("TR7_FENCE")).unwrap();

    let Err(err) = tr7::dataplane::create_maps(&pins.path) else {
        panic!("a TR7_VMACS pin with 32-byte values was adopted");
    };
    let text = err.to_string();
    for part in [
        tr7_common::map::VMACS,
        "value 32 B, 4 entries",
        "value 8 B",
        "rm ",
    ] {
        assert!(text.contains(part), "no `{part}` in: {text}");
    }
    let mut left: Vec<_> = std::fs::read_dir(&pins.path)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["TR7_FENCE", tr7_common::map::VMACS],
        "the refused load changed the pins"
    );
}

#[test]
fn ns_behind_extension_headers_is_found() {
    // A neighbour solicitation behind hop-by-hop and destination-options headers is still
    // suppressed for a VIP owned elsewhere.
    let mut t = TestDataplane::load("ext");
    setup(&mut t);
    let f = Frame::eth()
        .ipv6(CLIENT6, solicited_node(NOT_OWNED6), 0)
        .ext(60)
        .ext(58)
        .nd(135, NOT_OWNED6);
    assert_eq!(t.run_gate(f.bytes()), XDP_DROP);
    let f = Frame::eth()
        .ipv6(CLIENT6, solicited_node(OWNED6), 0)
        .ext(58)
        .nd(135, OWNED6);
    assert_eq!(t.run_gate(f.bytes()), XDP_PASS);
}

#[test]
fn truncated_frames_pass_and_count_as_malformed() {
    // Every frame of the table cut at every length from the Ethernet header (the shortest
    // frame BPF_PROG_TEST_RUN accepts) to the full frame: a frame too short for the headers
    // the gate needs passes to the kernel and counts as malformed, never dropped; once the
    // needed headers are complete the verdict is that of the whole frame.
    let mut t = TestDataplane::load("trunc");
    setup(&mut t);
    let mut checked = 0;
    for kind in [Kind::Ipv4, Kind::Ipv6, Kind::Arp, Kind::Ns] {
        for tags in Tags::ALL {
            let full = frame(kind, tags, Target::NotOwned);
            let full_verdict = t.run_gate(&full);
            assert_eq!(full_verdict, XDP_DROP);
            let tag_len = match tags {
                Tags::None => 0,
                Tags::Dot1q => 4,
                Tags::QinQ => 8,
            };
            // Bytes the gate must see: L2, then IPv4 20, IPv6 40, ARP 28, or IPv6 + ND 24.
            let needed = 14
                + tag_len
                + match kind {
                    Kind::Ipv4 => 20,
                    Kind::Ipv6 => 40,
                    Kind::Arp => 28,
                    Kind::Ns => 40 + 24,
                };
            for cut in 14..=full.len() {
                let before = t.counters();
                let v = t.run_gate(&full[..cut]);
                let after = t.counters();
                let malformed = after.get(Reason::Malformed) - before.get(Reason::Malformed);
                let case = format!("{kind:?} {tags:?} cut at {cut}/{}", full.len());
                if cut < needed {
                    assert_eq!(v, XDP_PASS, "{case}");
                    assert_eq!(malformed, 1, "{case}");
                } else {
                    assert_eq!(v, full_verdict, "{case}");
                    assert_eq!(malformed, 0, "{case}");
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 500, "only {checked} cuts checked");
}

#[test]
fn non_ip_and_vlans_without_vips_pass_untouched() {
    // An LLDP frame and traffic on a VLAN without VIPs pass, each counted for its reason.
    let mut t = TestDataplane::load("other");
    setup(&mut t);
    let mut lldp = Frame::eth().bytes().to_vec();
    lldp[12..14].copy_from_slice(&0x88ccu16.to_be_bytes());
    lldp.extend_from_slice(&[0; 32]);
    let before = t.counters();
    assert_eq!(t.run_gate(&lldp), XDP_PASS);
    let unknown_vlan = Frame::eth()
        .vlan(999)
        .ipv4(CLIENT4, NOT_OWNED4, 17)
        .udp(1, 2, b"x");
    assert_eq!(t.run_gate(unknown_vlan.bytes()), XDP_PASS);
    let after = t.counters();
    assert_eq!(
        after.get(Reason::PassedOtherProtocol) - before.get(Reason::PassedOtherProtocol),
        1
    );
    assert_eq!(
        after.get(Reason::PassedNotVip) - before.get(Reason::PassedNotVip),
        1
    );
}

#[test]
fn vip_table_survives_churn() {
    // Thousands of VIPs added, some removed (leaving tombstones in probe runs), some re-added
    // with flipped ownership: every one is still found by the gate with its current state,
    // and removed ones are no VIPs any more.
    let mut t = TestDataplane::load("churn");
    let place = VipScope::untagged(TEST_SCOPE);
    let addr = |i: u32| -> Ipv6Addr {
        Ipv6Addr::new(0x2001, 0xdb8, 0x77, 0, 0, 0, (i >> 16) as u16, i as u16)
    };
    let n = 6_000u32;
    for i in 0..n {
        t.maps.set_vip(place, addr(i).into(), i % 2 == 0).unwrap();
    }
    for i in (0..n).step_by(3) {
        t.maps.remove_vip(place, addr(i).into()).unwrap();
    }
    for i in (0..n).step_by(9) {
        t.maps.set_vip(place, addr(i).into(), i % 2 == 1).unwrap();
    }
    let mut checked = 0;
    for i in (0..n).step_by(7) {
        let f = Frame::eth().ipv6(CLIENT6, addr(i), 17).udp(1, 2, b"x");
        let before = t.counters();
        let verdict = t.run_gate(f.bytes());
        let after = t.counters();
        let (want_verdict, want_reason) = if i % 9 == 0 {
            // re-added with the opposite ownership
            if i % 2 == 1 {
                (XDP_PASS, Reason::PassedOwned)
            } else {
                (XDP_DROP, Reason::DroppedNotOwned)
            }
        } else if i % 3 == 0 {
            (XDP_PASS, Reason::PassedNotVip)
        } else if i % 2 == 0 {
            (XDP_PASS, Reason::PassedOwned)
        } else {
            (XDP_DROP, Reason::DroppedNotOwned)
        };
        assert_eq!(verdict, want_verdict, "VIP #{i} {}", addr(i));
        assert_eq!(
            after.get(want_reason) - before.get(want_reason),
            1,
            "VIP #{i}"
        );
        checked += 1;
    }
    assert!(checked > 800);
    assert_eq!(
        t.maps.vips().unwrap().len(),
        (n - n.div_ceil(3) + n.div_ceil(9)) as usize
    );
}
