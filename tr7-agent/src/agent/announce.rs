//! The announcement burst: gratuitous ARP for IPv4 VIPs and unsolicited neighbour
//! advertisements for IPv6 VIPs, so that clients and switches move to this node at once.
//!
//! The frames are built when the agent starts, from the interface's MAC, so a takeover
//! only sends bytes that already exist. They leave by one of two paths, chosen per round
//! and logged (`path`):
//! - `xdp_live`: from the data plane, BPF_PROG_TEST_RUN with live frames on the
//!   `tr7_announce` XDP program (see `dataplane::live_frames`), when the kernel and the
//!   device allow it. The frames go straight to the driver: no qdisc, no TC egress guard.
//! - `af_packet`: otherwise, an AF_PACKET socket made in the interface's namespace; the
//!   kernel parses the Ethernet header itself (`sll_protocol` 0), and the frames cross the
//!   TC egress hook, so the guard checks them like any other frame (which is why ownership
//!   is written before the announcement). A live-frames round that fails at run time is
//!   sent this way too.
//!
//! An announcer is usable as soon as it is built, by AF_PACKET. Whether the interface takes
//! live frames is decided in two steps: the cheap device query (`device_transmits`, one
//! generic-netlink request) at construction, and, only when the device transmits XDP
//! frames, the program load and probe on a background thread, once per interface
//! (namespace, ifindex) for all its announcers. The load takes hundreds of milliseconds in
//! a debug build, and announcers are built when routers start, including when a restarted
//! agent resumes them: on that path a wait would let the peer take over. Until the
//! background result is in, the interface is `pending` and rounds go by AF_PACKET; the
//! first round after it reads the result and takes the live path if it passed. The result
//! is published once through a `OnceLock`, so a round's check is one atomic load.
//!
//! `TR7_ANNOUNCE_PATH=af_packet` in the environment forces the socket path (tests, and a
//! way out should a driver misbehave).
//!
//! The destination `sockaddr_ll` is the one `getifaddrs` reports for the interface (it
//! carries the ifindex), so neither socket2 nor nix needs a hand-built one.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak, mpsc};
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

/// What [`Announcer::live_frames_unavailable`] says while the live-frames program loads
/// and is probed in the background; rounds go by AF_PACKET meanwhile.
pub const LIVE_PENDING: &str = "pending: the live-frames program is loading in the background";

/// Loads the live-frames program for the background upgrade: [`LiveFrames::shared`] in the
/// agent; a test passes one that waits, to hold the upgrade back.
pub type LiveLoader = Box<dyn FnOnce() -> Result<&'static LiveFrames, Unavailable> + Send>;

/// The live-frames decision for one interface: empty while pending; then the program, or
/// why not (as text, logged and reported by `live_frames_unavailable`).
type LiveCell = OnceLock<Result<&'static LiveFrames, String>>;

/// The decisions of the interfaces (namespace, ifindex) that have a pending or live
/// upgrade, for as long as one of their announcers lives: one background load and one
/// upgrade log per interface, whatever the number of slots and families on it.
static LIVE_CELLS: Mutex<Vec<(LiveKey, Weak<LiveCell>)>> = Mutex::new(Vec::new());

/// An interface: its namespace (`ip netns` name, `None`: the agent's) and ifindex.
type LiveKey = (Option<String>, u32);

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
/// interface's live-frames decision, read at each round.
#[derive(Clone)]
struct Sender {
    socket: Arc<Socket>,
    to: LinkAddr,
    live: Arc<LiveCell>,
    /// The namespace the live-frames test run must be issued in (the ifindex is looked up
    /// in the caller's namespace); `None`: the caller's.
    netns: Option<String>,
}

impl Sender {
    /// The program, once the background load and probe passed.
    fn live(&self) -> Option<&'static LiveFrames> {
        self.live.get()?.as_ref().ok().copied()
    }

    /// Sends one frame, by `live` when given (in `self.netns`, see [`Sender::round`]);
    /// returns whether it left by live frames.
    fn send(&self, live: Option<&LiveFrames>, iface: &str, vip: IpAddr, frame: &[u8]) -> bool {
        if let Some(live) = live {
            match live.transmit(self.to.ifindex() as u32, frame, 1) {
                Ok(()) => return true,
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
        false
    }

    /// Sends every frame once, in the interface's namespace when the live path needs it.
    /// The path is read once per round, so a round never mixes paths unless a live
    /// transmission fails; returns the path: `xdp_live` when every frame left by live
    /// frames, else `af_packet`.
    fn round(&self, iface: &str, frames: &[(IpAddr, Vec<u8>)]) -> &'static str {
        let send_all = |live: Option<&LiveFrames>| {
            let mut all_live = true;
            for (vip, frame) in frames {
                all_live &= self.send(live, iface, *vip, frame);
            }
            all_live
        };
        let live = self.live();
        let all_live = match (live, &self.netns) {
            (Some(live), Some(ns)) => netns::within(Some(ns), || send_all(Some(live)))
                .unwrap_or_else(|error| {
                    warn!(%iface, %error, path = "af_packet",
                        "cannot enter the namespace for live frames; this round goes by AF_PACKET");
                    send_all(None)
                }),
            (live, _) => send_all(live),
        };
        if live.is_some() && all_live {
            "xdp_live"
        } else {
            "af_packet"
        }
    }

    /// The path the next round takes.
    fn path(&self) -> &'static str {
        if self.live().is_some() {
            "xdp_live"
        } else {
            "af_packet"
        }
    }
}

/// The cheap half of the choice, at construction; runs in the interface's namespace.
/// `Ok`: the device transmits XDP frames, the program load and probe decide (later).
fn device_allows_live(ifindex: u32) -> Result<(), Unavailable> {
    if std::env::var(PATH_ENV).is_ok_and(|v| v == "af_packet") {
        return Err(Unavailable::Forced);
    }
    // The device first: a cheap query that refuses most interfaces (plain veths, bridge
    // ports) without a thread or a program load.
    crate::dataplane::live_frames::device_transmits(ifindex)
}

/// The live-frames decision of interface `key`: the one its other announcers share, or a
/// new pending one whose load and probe start on a background thread.
fn live_cell(key: LiveKey, iface: &str, loader: LiveLoader) -> Arc<LiveCell> {
    let mut cells = LIVE_CELLS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    cells.retain(|(_, cell)| cell.strong_count() > 0);
    if let Some(cell) = cells
        .iter()
        .find(|(k, _)| *k == key)
        .and_then(|(_, c)| c.upgrade())
    {
        return cell;
    }
    let cell = Arc::new(LiveCell::new());
    cells.push((key.clone(), Arc::downgrade(&cell)));
    drop(cells);
    upgrade_in_background(cell.clone(), key, iface, loader);
    cell
}

/// Loads the program and probes the interface on a thread of its own (in the interface's
/// namespace), publishes the result in `cell` and logs it: the one upgrade log of the
/// interface.
fn upgrade_in_background(cell: Arc<LiveCell>, key: LiveKey, iface: &str, loader: LiveLoader) {
    let (netns, ifindex) = key;
    let name = iface.to_owned();
    let published = cell.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("live-{iface}"))
        .spawn(move || {
            let iface = name;
            let result = netns::within(netns.as_deref(), || {
                let live = loader()?;
                live.probe(ifindex)?;
                Ok::<_, Unavailable>(live)
            })
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
            let _ = published.set(result);
            match published.get() {
                Some(Ok(_)) => info!(%iface, path = "xdp_live",
                    "live frames ready: the next announcement rounds go from the data plane"),
                Some(Err(why)) => info!(%iface, path = "af_packet", live_frames_unavailable = %why,
                    "live frames unavailable: announcements stay on AF_PACKET"),
                None => {}
            }
        });
    if let Err(error) = spawned {
        let why = format!("cannot start the live-frames thread: {error}");
        warn!(%iface, path = "af_packet", live_frames_unavailable = %why,
            "live frames unavailable: announcements stay on AF_PACKET");
        let _ = cell.set(Err(why));
    }
}

impl Announcer {
    /// Builds the frames for `vips` (all of one family) on `iface` in namespace `netns`
    /// (`ip netns` name; `None`: the caller's) and opens the socket. The frames speak with
    /// `virtual_mac` when given (a virtual-MAC router), else with the interface's MAC.
    /// Returns without waiting for the live-frames program: see the module documentation.
    pub fn new(
        netns: Option<&str>,
        iface: &str,
        vips: &[IpAddr],
        burst: Burst,
        virtual_mac: Option<[u8; 6]>,
    ) -> Result<Self, AnnounceError> {
        Self::with_live_loader(
            netns,
            iface,
            vips,
            burst,
            virtual_mac,
            Box::new(LiveFrames::shared),
        )
    }

    /// [`Announcer::new`] with the loader of the background upgrade given (used only when
    /// the interface has no pending or live upgrade yet).
    pub fn with_live_loader(
        netns: Option<&str>,
        iface: &str,
        vips: &[IpAddr],
        burst: Burst,
        virtual_mac: Option<[u8; 6]>,
        loader: LiveLoader,
    ) -> Result<Self, AnnounceError> {
        let setup = |step| {
            let iface = iface.to_owned();
            move |source| AnnounceError::Setup {
                iface,
                step,
                source,
            }
        };
        let (socket, link, link_local, device) = netns::within(netns, || {
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
            let device = link.map(|l| device_allows_live(l.ifindex() as u32));
            Ok((socket, link, link_local, device))
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
        // `device` is `Some` whenever `link` is.
        let live = match device {
            Some(Err(why)) => Arc::new(LiveCell::from(Err(why.to_string()))),
            _ => live_cell(
                (netns.map(str::to_owned), link.ifindex() as u32),
                iface,
                loader,
            ),
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
            live_frames_unavailable = live_unavailable(&sender.live).unwrap_or(""),
            "announcement frames built"
        );
        Ok(Self {
            iface: iface.to_owned(),
            frames,
            sender,
            burst,
            repeats: None,
            generation: Arc::new(AtomicU64::new(0)),
            worker: None,
        })
    }

    /// Sends the burst: the first round now, on the calling thread; the other rounds
    /// paced on a worker thread. Returns the first round's path (`xdp_live` or
    /// `af_packet`), for the caller's log.
    pub fn announce(&mut self) -> &'static str {
        let path = self.sender.round(&self.iface, &self.frames);
        debug!(iface = %self.iface, frames = self.frames.len(), round = 1, path,
            "announcement round sent");
        if self.burst.count > 1 {
            self.repeat();
        }
        path
    }

    /// The path the next round takes: `xdp_live` once the background load and probe
    /// passed, `af_packet` before (pending) or when they did not.
    pub fn path(&self) -> &'static str {
        self.sender.path()
    }

    /// Why the frames do not go by live frames: `None` on the `xdp_live` path,
    /// [`LIVE_PENDING`] while the background load and probe run, else the reason.
    pub fn live_frames_unavailable(&self) -> Option<&str> {
        live_unavailable(&self.sender.live)
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
                            sender.live = Arc::new(LiveCell::from(Err(format!(
                                "the announcement worker cannot enter the namespace: {error}"
                            ))));
                            None
                        }
                        None => None,
                    };
                    while let Ok(wanted) = rx.recv() {
                        for round in 2..=burst.count {
                            std::thread::sleep(burst.pacing);
                            if generation.load(Ordering::SeqCst) != wanted {
                                debug!(%iface, "announcement burst cancelled");
                                break;
                            }
                            let path = sender.round(&iface, &frames);
                            debug!(%iface, frames = frames.len(), round, path,
                                "announcement round sent");
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

/// What `live_frames_unavailable` reports for `cell`.
fn live_unavailable(cell: &LiveCell) -> Option<&str> {
    match cell.get() {
        None => Some(LIVE_PENDING),
        Some(Ok(_)) => None,
        Some(Err(why)) => Some(why),
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
