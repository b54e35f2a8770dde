//! The announcement burst on the wire, by both paths: XDP live frames from the data plane
//! when the interface can transmit XDP frames, AF_PACKET otherwise. A capture on the peer
//! end of the veth proves the gratuitous ARPs and unsolicited NAs arrive, as many as the
//! burst's count, byte for byte equal to the frames the agent built at start-up.
//!
//! The veth is the natural switch between the paths: a veth transmits XDP frames only when
//! its peer has an XDP program or GRO on (its `xdp_features` then include NDO_XMIT), so GRO
//! on the capturing end gives the live path and GRO off makes the probe refuse it.

use std::net::IpAddr;
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::time::{Duration, Instant};

use nix::sys::socket::{
    self as sock, AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, sockopt,
};
use nix::sys::time::TimeVal;
use tr7::agent::{Announcer, Burst};
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

/// Runs one burst of a GARP and an unsolicited NA on `a0` with GRO on the peer as given,
/// checks the path, and that the peer received exactly the pre-built frames, COUNT each.
fn burst_arrives(gro: &str, expected_path: &str) {
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
    let burst = Burst {
        count: COUNT,
        pacing: Duration::from_millis(10),
    };
    let v4: IpAddr = "192.0.2.10".parse().unwrap();
    let v6: IpAddr = "2001:db8::10".parse().unwrap();
    let mut garp = Announcer::new(Some(&a), "a0", &[v4], burst, None).expect("IPv4 announcer");
    let mut na = Announcer::new(Some(&a), "a0", &[v6], burst, None).expect("IPv6 announcer");
    for announcer in [&garp, &na] {
        assert_eq!(
            announcer.path(),
            expected_path,
            "GRO {gro} on the peer; live frames unavailable because: {:?}",
            announcer.live_frames_unavailable()
        );
    }
    let fd = capture(&b, "b0");
    garp.announce();
    na.announce();
    let got = announcements(&fd, mac, 2 * COUNT as usize);
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

// Proves the live-frames path really transmits: with GRO on the peer the veth takes XDP
// frames, the probe picks `xdp_live`, and the peer receives the burst byte-equal.
#[test]
fn live_frames_arrive_byte_equal() {
    burst_arrives("on", "xdp_live");
}

// Proves the fallback: with GRO off the veth refuses XDP frames (no NDO_XMIT), the probe
// picks `af_packet`, and the same frames still arrive.
#[test]
fn af_packet_fallback_when_the_device_refuses() {
    burst_arrives("off", "af_packet");
}
