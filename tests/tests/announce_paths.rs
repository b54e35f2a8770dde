//! The announcement burst on the wire, by both paths: XDP live frames from the data plane
//! when the interface can transmit XDP frames, AF_PACKET otherwise. A capture on the peer
//! end of the veth proves the gratuitous ARPs and unsolicited NAs arrive, as many as the
//! burst's count, byte for byte equal to the frames the agent built at start-up.
//!
//! The veth is the natural switch between the paths: a veth transmits XDP frames only when
//! its peer has an XDP program or GRO on (its `xdp_features` then include NDO_XMIT), so GRO
//! on the capturing end gives the live path and GRO off makes the probe refuse it.
//!
//! The live path comes after construction (the program loads on a background thread), so
//! the tests that want it wait for the upgrade, bounded; one test holds the load back to
//! prove that construction and the first bursts do not wait for it.

use std::net::IpAddr;
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::socket::{
    self as sock, AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, sockopt,
};
use nix::sys::time::TimeVal;
use tr7::agent::announce::LIVE_PENDING;
use tr7::agent::{Announcer, Burst};
use tr7::dataplane::live_frames::LiveFrames;
use tr7_tests::lab::Lab;

const COUNT: u32 = 3;

/// An AF_PACKET socket on `iface` in `ns` that sees every frame arriving there.
fn capture(ns: &str, iface: &str) -> OwnedFd {
    tr7::netns::within(Some(ns), || -> nix::Result<OwnedFd> {
        let fd = sock::socket(
            AddressFamily::Packet,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::EthAll,
        )?;
        let addr = nix::ifaddrs::getifaddrs()?
            .filter(|a| a.interface_name == iface)
            .find_map(|a| a.address.filter(|s| s.as_link_addr().is_some()))
            .ok_or(nix::Error::ENODEV)?;
        sock::bind(fd.as_raw_fd(), &addr)?;
        sock::setsockopt(&fd, sockopt::ReceiveTimeout, &TimeVal::new(0, 100_000))?;
        Ok(fd)
    })
    .expect("enter the peer namespace")
    .expect("AF_PACKET capture socket")
}

/// Frames from `mac` that are ARP or ICMPv6 neighbour advertisements, read until `want`
/// of them arrived or 3 s passed (a bound, not an assertion: the count is checked after).
fn announcements(fd: &OwnedFd, mac: [u8; 6], want: usize) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(3);
    while got.len() < want && Instant::now() < deadline {
        let Ok(n) = sock::recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()) else {
            continue;
        };
        let f = &buf[..n];
        let is_arp = f.get(12..14) == Some(&[0x08, 0x06][..]);
        let is_na = f.get(12..14) == Some(&[0x86, 0xdd][..]) && f.get(54) == Some(&136);
        if f.get(6..12) == Some(&mac[..]) && (is_arp || is_na) {
            got.push(f.to_vec());
        }
    }
    got
}

fn mac_of(lab: &Lab, ns: &str, dev: &str) -> [u8; 6] {
    let text = lab.mac(ns, dev);
    let bytes: Vec<u8> = text
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).expect("hex MAC"))
        .collect();
    bytes.try_into().expect("6-byte MAC")
}

const BURST: Burst = Burst {
    count: COUNT,
    pacing: Duration::from_millis(10),
};

/// A lab with the veth `a0` (namespace a, with 192.0.2.1/24 and 2001:db8::1/64) to `b0`
/// (namespace b) and GRO on `b0` as given; returns the lab, both namespaces and a0's MAC.
fn veth_lab(gro: &str) -> (Lab, String, String, [u8; 6]) {
    let mut lab = Lab::new("ann");
    let a = lab.netns("a");
    let b = lab.netns("b");
    lab.veth(&a, "a0", &b, "b0");
    let out = lab.exec(&b, &["ethtool", "-K", "b0", "gro", gro]);
    assert!(
        out.status.success(),
        "ethtool -K b0 gro {gro}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    lab.addr(&a, "a0", "192.0.2.1/24");
    lab.addr(&a, "a0", "2001:db8::1/64");
    lab.wait_ipv6_ready(&a, "a0");
    let mac = mac_of(&lab, &a, "a0");
    (lab, a, b, mac)
}

fn vips() -> (IpAddr, IpAddr) {
    (
        "192.0.2.10".parse().unwrap(),
        "2001:db8::10".parse().unwrap(),
    )
}

/// Waits, 10 s at most, until the background live-frames decision is in; returns the path.
fn settled_path(announcer: &Announcer) -> &'static str {
    let deadline = Instant::now() + Duration::from_secs(10);
    while announcer.live_frames_unavailable() == Some(LIVE_PENDING) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    announcer.path()
}

/// Sends one burst from each announcer and checks that the peer received exactly the
/// pre-built frames, COUNT of each, and that the first rounds took `expected_path`.
fn bursts_arrive(
    fd: &OwnedFd,
    mac: [u8; 6],
    garp: &mut Announcer,
    na: &mut Announcer,
    expected_path: &str,
) {
    let paths = (garp.announce(), na.announce());
    assert_eq!(
        paths,
        (expected_path, expected_path),
        "the first rounds' paths"
    );
    let got = announcements(fd, mac, 2 * COUNT as usize);
    let built_arp = &garp.frames()[0].1;
    let built_na = &na.frames()[0].1;
    let arps = got.iter().filter(|f| f == &built_arp).count();
    let nas = got.iter().filter(|f| f == &built_na).count();
    assert_eq!(
        (arps, nas, got.len()),
        (COUNT as usize, COUNT as usize, 2 * COUNT as usize),
        "via {expected_path}: every captured announcement equals a pre-built frame, {COUNT} of each; captured {got:02x?}"
    );
}

/// Runs one burst of a GARP and an unsolicited NA on `a0` with GRO on the peer as given,
/// once the path is settled; checks the path, and that the peer received exactly the
/// pre-built frames, COUNT each.
fn burst_arrives(gro: &str, expected_path: &str) {
    let (_lab, a, b, mac) = veth_lab(gro);
    let (v4, v6) = vips();
    let mut garp = Announcer::new(Some(&a), "a0", &[v4], BURST, None).expect("IPv4 announcer");
    let mut na = Announcer::new(Some(&a), "a0", &[v6], BURST, None).expect("IPv6 announcer");
    for announcer in [&garp, &na] {
        if expected_path == "af_packet" {
            let why = announcer.live_frames_unavailable();
            assert!(
                why.is_some_and(|why| why.contains("NDO_XMIT")),
                "decided at construction by the device check, not pending: {why:?}"
            );
        }
        assert_eq!(
            settled_path(announcer),
            expected_path,
            "GRO {gro} on the peer; live frames unavailable because: {:?}",
            announcer.live_frames_unavailable()
        );
    }
    let fd = capture(&b, "b0");
    bursts_arrive(&fd, mac, &mut garp, &mut na, expected_path);
}

// Proves the live-frames path really transmits: with GRO on the peer the veth takes XDP
// frames, the probe picks `xdp_live`, and the peer receives the burst byte-equal.
#[test]
fn live_frames_arrive_byte_equal() {
    burst_arrives("on", "xdp_live");
}

// Proves the fallback: with GRO off the veth refuses XDP frames (no NDO_XMIT), the device
// check at construction picks `af_packet` at once (no pending load), and the same frames
// still arrive.
#[test]
fn af_packet_fallback_when_the_device_refuses() {
    burst_arrives("off", "af_packet");
}

// Proves that building announcers on an interface that transmits XDP frames does not wait
// for the live-frames program: the load is held back until the test releases it (or 60 s
// pass, so a construction that waited for it would find the upgrade done and fail the
// `pending` assertions rather than hang). Meanwhile both announcers of the interface are
// pending, share the one background load, and their bursts arrive by AF_PACKET; once
// released, the same announcers upgrade to `xdp_live` and the next bursts arrive from the
// data plane, byte-equal.
#[test]
fn construction_does_not_wait_for_the_program_load() {
    let (_lab, a, b, mac) = veth_lab("on");
    let (v4, v6) = vips();
    let (release, held) = mpsc::channel::<()>();
    let loader = Box::new(move || {
        let _ = held.recv_timeout(Duration::from_secs(60));
        LiveFrames::shared()
    });
    let mut garp = Announcer::with_live_loader(Some(&a), "a0", &[v4], BURST, None, loader)
        .expect("IPv4 announcer");
    // The same interface: this one joins the pending upgrade, its own loader is not run.
    let unused = Box::new(|| panic!("a second load for the same interface"));
    let mut na = Announcer::with_live_loader(Some(&a), "a0", &[v6], BURST, None, unused)
        .expect("IPv6 announcer");
    for announcer in [&garp, &na] {
        assert_eq!(
            (announcer.path(), announcer.live_frames_unavailable()),
            ("af_packet", Some(LIVE_PENDING)),
            "right after construction, with the program load held back"
        );
    }
    let fd = capture(&b, "b0");
    bursts_arrive(&fd, mac, &mut garp, &mut na, "af_packet");
    assert_eq!(
        garp.live_frames_unavailable(),
        Some(LIVE_PENDING),
        "still pending after the AF_PACKET bursts"
    );

    release.send(()).expect("the loader thread waits");
    for announcer in [&garp, &na] {
        assert_eq!(
            settled_path(announcer),
            "xdp_live",
            "after the load was released; live frames unavailable because: {:?}",
            announcer.live_frames_unavailable()
        );
    }
    bursts_arrive(&fd, mac, &mut garp, &mut na, "xdp_live");
}
