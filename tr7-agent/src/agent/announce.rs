//! The announcement burst: gratuitous ARP for IPv4 VIPs and unsolicited neighbour
//! advertisements for IPv6 VIPs, so that clients and switches move to this node at once.
//!
//! The frames are built when the agent starts, from the interface's MAC, so a takeover
//! only sends bytes that already exist. They leave by one of two paths, chosen per
//! interface at start-up and logged (`path`):
//! - `xdp_live`: from the data plane, BPF_PROG_TEST_RUN with live frames on the
//!   `tr7_announce` XDP program (see `dataplane::live_frames`), when the kernel and the
//!   device allow it. The frames go straight to the driver: no qdisc, no TC egress guard.
//! - `af_packet`: otherwise, an AF_PACKET socket made in the interface's namespace; the
//!   kernel parses the Ethernet header itself (`sll_protocol` 0), and the frames cross the
//!   TC egress hook, so the guard checks them like any other frame (which is why ownership
//!   is written before the announcement). A live-frames round that fails at run time is
//!   sent this way too.
//!
//! `TR7_ANNOUNCE_PATH=af_packet` in the environment forces the socket path (tests, and a
//! way out should a driver misbehave).
//!
//! The destination `sockaddr_ll` is the one `getifaddrs` reports for the interface (it
//! carries the ifindex), so neither socket2 nor nix needs a hand-built one.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sys::socket::{LinkAddr, MsgFlags, SockaddrLike as _};
use socket2::{Domain, Protocol, Socket, Type};
use thiserror::Error;
use tracing::{debug, info, warn};

use crate::dataplane::live_frames::{LiveFrames, Unavailable};
use crate::netns;

/// The environment variable that forces the AF_PACKET path (value `af_packet`).
pub const PATH_ENV: &str = "TR7_ANNOUNCE_PATH";

/// How many times each frame is sent, and how far apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Burst {
    /// Frames per VIP (at least 1).
    pub count: u32,
    /// Pause between two rounds.
    pub pacing: Duration,
}

impl Default for Burst {
    /// Three frames 10 ms apart, close to keepalived's defaults (5 GARPs, but in one
    /// go): one lost frame does not leave a client behind, and the last frame leaves
    /// within 20 ms of the takeover.
    fn default() -> Self {
        Self {
            count: 3,
            pacing: Duration::from_millis(10),
        }
    }
}

#[derive(Debug, Error)]
pub enum AnnounceError {
    #[error("interface `{iface}`: {source}")]
    Netns {
        iface: String,
        source: netns::NetnsError,
    },
    #[error("interface `{iface}`: cannot {step}: {source}")]
    Setup {
        iface: String,
        step: &'static str,
        source: std::io::Error,
    },
    #[error(
        "interface `{iface}` has no link-layer (AF_PACKET) address; is it an Ethernet interface?"
    )]
    NoLinkAddress { iface: String },
}

/// Everything needed to announce the VIPs of one (interface, slot, family).
pub struct Announcer {
    iface: String,
    frames: Vec<(IpAddr, Vec<u8>)>,
    sender: Sender,
    /// Why the live-frames path is not used, when it is not.
    unavailable: Option<String>,
    burst: Burst,
    /// The rounds after the first run on this thread, so the VRRP driver's thread is not
    /// held up by the pacing. Each request carries the generation it belongs to.
    repeats: Option<mpsc::Sender<u64>>,
    /// Bumped by [`Announcer::cancel`]: the worker drops the rest of a burst whose
    /// generation is no longer current, so a node that has just lost mastership stops
    /// speaking for the VIPs (the TC guard would drop those frames anyway).
    generation: Arc<AtomicU64>,
    worker: Option<JoinHandle<()>>,
}

/// One AF_PACKET socket bound to nothing, and the interface's address to send to; and the
/// live-frames program when this interface takes live frames.
#[derive(Clone)]
struct Sender {
    socket: Arc<Socket>,
    to: LinkAddr,
    live: Option<&'static LiveFrames>,
    /// The namespace the live-frames test run must be issued in (the ifindex is looked up
    /// in the caller's namespace); `None`: the caller's.
    netns: Option<String>,
}

impl Sender {
    /// Sends one round. Must run in `self.netns` (see [`Sender::round`]) for the live path.
    fn send(&self, iface: &str, vip: IpAddr, frame: &[u8]) {
        if let Some(live) = self.live {
            match live.transmit(self.to.ifindex() as u32, frame, 1) {
                Ok(()) => return,
                Err(error) => {
                    warn!(%iface, %vip, %error, path = "af_packet",
                        "live-frames transmission failed; this frame goes by AF_PACKET");
                }
            }
        }
        let result =
            nix::sys::socket::sendto(self.socket.as_raw_fd(), frame, &self.to, MsgFlags::empty());
        if let Err(error) = result {
            warn!(%iface, %vip, %error, "announcement frame not sent");
        }
    }

    /// Sends every frame once, in the interface's namespace when the live path needs it.
    fn round(&self, iface: &str, frames: &[(IpAddr, Vec<u8>)]) {
        let send_all = || {
            for (vip, frame) in frames {
                self.send(iface, *vip, frame);
            }
        };
        match (&self.live, &self.netns) {
            (Some(_), Some(ns)) => {
                if let Err(error) = netns::within(Some(ns), send_all) {
                    warn!(%iface, %error, "announcement round not sent");
                }
            }
            _ => send_all(),
        }
    }

    fn path(&self) -> &'static str {
        if self.live.is_some() {
            "xdp_live"
        } else {
            "af_packet"
        }
    }
}

/// Chooses the path for `ifindex`; runs in the interface's namespace.
fn choose_live(ifindex: u32) -> Result<&'static LiveFrames, Unavailable> {
    if std::env::var(PATH_ENV).is_ok_and(|v| v == "af_packet") {
        return Err(Unavailable::Forced);
    }
    // The device first: a cheap query that refuses most interfaces (plain veths, bridge
    // ports) before the program is loaded.
    crate::dataplane::live_frames::device_transmits(ifindex)?;
    let live = LiveFrames::shared()?;
    live.probe(ifindex)?;
    Ok(live)
}

impl Announcer {
    /// Builds the frames for `vips` (all of one family) on `iface` in namespace `netns`
    /// (`ip netns` name; `None`: the caller's) and opens the socket. The frames speak with
    /// `virtual_mac` when given (a virtual-MAC router), else with the interface's MAC.
    pub fn new(
        netns: Option<&str>,
        iface: &str,
        vips: &[IpAddr],
        burst: Burst,
        virtual_mac: Option<[u8; 6]>,
    ) -> Result<Self, AnnounceError> {
        let setup = |step| {
            let iface = iface.to_owned();
            move |source| AnnounceError::Setup {
                iface,
                step,
                source,
            }
        };
        let (socket, link, link_local, live) = netns::within(netns, || {
            // Protocol 0: this socket only sends; it receives nothing.
            let socket = Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(0)))
                .map_err(setup("open an AF_PACKET socket"))?;
            let addrs: Vec<_> = nix::ifaddrs::getifaddrs()
                .map_err(|e| setup("list addresses (getifaddrs)")(e.into()))?
                .filter(|a| a.interface_name == iface)
                .collect();
            let link = addrs
                .iter()
                .find_map(|a| a.address.as_ref()?.as_link_addr().copied());
            let link_local = addrs
                .iter()
                .filter_map(|a| a.address.as_ref()?.as_sockaddr_in6().map(|s| s.ip()))
                .find(Ipv6Addr::is_unicast_link_local);
            let live = link.map(|l| choose_live(l.ifindex() as u32));
            Ok((socket, link, link_local, live))
        })
        .map_err(|source| AnnounceError::Netns {
            iface: iface.to_owned(),
            source,
        })??;
        let link = link.ok_or_else(|| AnnounceError::NoLinkAddress {
            iface: iface.to_owned(),
        })?;
        let mac = link
            .addr()
            .filter(|_| link.halen() == 6 && link.family().is_some())
            .ok_or_else(|| AnnounceError::NoLinkAddress {
                iface: iface.to_owned(),
            })?;
        let mac = virtual_mac.unwrap_or(mac);
        let frames = vips
            .iter()
            .map(|&vip| {
                let frame = match vip {
                    IpAddr::V4(v4) => gratuitous_arp(mac, v4),
                    // The NA's source is the link-local address (RFC 4861 7.2.6 asks for
                    // an address of the interface); the VIP itself serves when the link
                    // has none yet.
                    IpAddr::V6(v6) => unsolicited_na(mac, link_local.unwrap_or(v6), v6),
                };
                (vip, frame)
            })
            .collect();
        let (live, unavailable) = match live {
            Some(Ok(live)) => (Some(live), None),
            Some(Err(why)) => (None, Some(why.to_string())),
            None => (None, None),
        };
        let sender = Sender {
            socket: Arc::new(socket),
            to: link,
            live,
            netns: netns.map(str::to_owned),
        };
        let burst = Burst {
            count: burst.count.max(1),
            ..burst
        };
        info!(
            %iface,
            vips = ?vips,
            count = burst.count,
            pacing_ms = burst.pacing.as_millis() as u64,
            path = sender.path(),
            live_frames_unavailable = unavailable.as_deref().unwrap_or(""),
            "announcement frames built"
        );
        Ok(Self {
            iface: iface.to_owned(),
            frames,
            sender,
            unavailable,
            burst,
            repeats: None,
            generation: Arc::new(AtomicU64::new(0)),
            worker: None,
        })
    }

    /// Sends the burst: the first round now, on the calling thread; the other rounds
    /// paced on a worker thread.
    pub fn announce(&mut self) {
        self.sender.round(&self.iface, &self.frames);
        debug!(iface = %self.iface, frames = self.frames.len(), path = self.sender.path(),
            "announcement round sent");
        if self.burst.count > 1 {
            self.repeat();
        }
    }

    /// The path the frames take: `xdp_live` or `af_packet`.
    pub fn path(&self) -> &'static str {
        self.sender.path()
    }

    /// Why the frames do not go by live frames (`None` on the `xdp_live` path).
    pub fn live_frames_unavailable(&self) -> Option<&str> {
        self.unavailable.as_deref()
    }

    /// The pre-built frames, per VIP, exactly as they are sent.
    pub fn frames(&self) -> &[(IpAddr, Vec<u8>)] {
        &self.frames
    }

    /// Drops the rounds of the current burst that are not sent yet (on release).
    pub fn cancel(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    fn repeat(&mut self) {
        if self.repeats.is_none() {
            let (tx, rx) = mpsc::channel::<u64>();
            let sender = self.sender.clone();
            let frames = self.frames.clone();
            let iface = self.iface.clone();
            let burst = self.burst;
            let generation = self.generation.clone();
            let worker = std::thread::Builder::new()
                .name(format!("announce-{iface}"))
                .spawn(move || {
                    // This thread stays in the interface's namespace, so the live rounds
                    // need no namespace switch; AF_PACKET sends work from anywhere.
                    let mut sender = sender;
                    let _entered = match sender.netns.take().map(|ns| netns::enter(&ns)) {
                        Some(Ok(entered)) => Some(entered),
                        Some(Err(error)) => {
                            warn!(%iface, %error, path = "af_packet",
                                "announcement worker cannot enter the namespace");
                            sender.live = None;
                            None
                        }
                        None => None,
                    };
                    while let Ok(wanted) = rx.recv() {
                        for _ in 1..burst.count {
                            std::thread::sleep(burst.pacing);
                            if generation.load(Ordering::SeqCst) != wanted {
                                debug!(%iface, "announcement burst cancelled");
                                break;
                            }
                            sender.round(&iface, &frames);
                        }
                    }
                });
            match worker {
                Ok(w) => {
                    self.worker = Some(w);
                    self.repeats = Some(tx);
                }
                Err(error) => {
                    warn!(iface = %self.iface, %error, "no announcement worker; one round only");
                    return;
                }
            }
        }
        if let Some(tx) = &self.repeats {
            let _ = tx.send(self.generation.load(Ordering::SeqCst));
        }
    }
}

impl Drop for Announcer {
    fn drop(&mut self) {
        // Closing the channel ends the worker after its current burst.
        self.repeats = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

const BROADCAST: [u8; 6] = [0xff; 6];

/// A gratuitous ARP request (RFC 5227 3: ARP Announcement): sender and target address
/// are the VIP, sender MAC ours, broadcast. Requests rather than replies, because every
/// Linux and most other stacks update an existing entry from either, and requests are
/// what switches and older stacks expect.
pub fn gratuitous_arp(mac: [u8; 6], vip: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(&BROADCAST);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&0x0806u16.to_be_bytes());
    f.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]); // Ethernet, IPv4, request
    f.extend_from_slice(&mac);
    f.extend_from_slice(&vip.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&vip.octets());
    // Minimum Ethernet payload: the kernel pads nothing for packet sockets.
    f.resize(60, 0);
    f
}

/// An unsolicited neighbour advertisement (RFC 4861 4.4, 7.2.6) for `target` to all
/// nodes (ff02::1), with the override flag so that existing cache entries move to our
/// MAC, the target link-layer address option, and hop limit 255.
pub fn unsolicited_na(mac: [u8; 6], src: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    let mut icmp = Vec::with_capacity(32);
    icmp.extend_from_slice(&[136, 0, 0, 0]); // type NA, code, checksum (below)
    icmp.extend_from_slice(&[0x20, 0, 0, 0]); // flags: O (override); not R, not S
    icmp.extend_from_slice(&target.octets());
    icmp.extend_from_slice(&[2, 1]); // option: target link-layer address, 8 bytes
    icmp.extend_from_slice(&mac);
    let sum = icmpv6_checksum(src, all_nodes, &icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());

    let mut f = Vec::with_capacity(14 + 40 + icmp.len());
    f.extend_from_slice(&[0x33, 0x33, 0, 0, 0, 1]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&0x86ddu16.to_be_bytes());
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&u16::try_from(icmp.len()).unwrap_or(0).to_be_bytes());
    f.extend_from_slice(&[58, 255]); // next header ICMPv6, hop limit 255
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&all_nodes.octets());
    f.extend_from_slice(&icmp);
    f
}

/// RFC 4443 2.3: the one's complement sum over the RFC 8200 pseudo-header and the message.
fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, message: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        for chunk in bytes.chunks(2) {
            let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
            sum += u32::from(word);
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&u32::try_from(message.len()).unwrap_or(0).to_be_bytes());
    add(&[0, 0, 0, 58]);
    add(message);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x02, 0, 0, 0, 0x0a, 0x01];

    // Proves the gratuitous ARP is an RFC 5227 announcement: broadcast, request, sender
    // and target address both the VIP, padded to the Ethernet minimum.
    #[test]
    fn gratuitous_arp_layout() {
        let f = gratuitous_arp(MAC, Ipv4Addr::new(192, 0, 2, 10));
        assert_eq!(f.len(), 60);
        assert_eq!(&f[0..6], &BROADCAST);
        assert_eq!(&f[6..12], &MAC);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[20..22], &[0, 1], "request");
        assert_eq!(&f[22..28], &MAC);
        assert_eq!(&f[28..32], &[192, 0, 2, 10]);
        assert_eq!(&f[38..42], &[192, 0, 2, 10]);
    }

    // Proves the unsolicited NA carries the override flag, hop limit 255, goes to ff02::1
    // at 33:33:00:00:00:01, and has a checksum that verifies (the sum over the
    // pseudo-header and the message, checksum included, is 0xffff).
    #[test]
    fn unsolicited_na_layout_and_checksum() {
        let src: Ipv6Addr = "fe80::1".parse().unwrap();
        let target: Ipv6Addr = "2001:db8::10".parse().unwrap();
        let f = unsolicited_na(MAC, src, target);
        assert_eq!(&f[0..6], &[0x33, 0x33, 0, 0, 0, 1]);
        assert_eq!(&f[12..14], &[0x86, 0xdd]);
        assert_eq!(f[14 + 7], 255, "hop limit");
        let icmp = &f[54..];
        assert_eq!(icmp[0], 136);
        assert_eq!(icmp[4] & 0xe0, 0x20, "override only");
        assert_eq!(&icmp[8..24], &target.octets());
        assert_eq!(&icmp[26..32], &MAC);
        let dst = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
        assert_eq!(icmpv6_checksum(src, dst, icmp), 0, "checksum verifies");
    }
}
