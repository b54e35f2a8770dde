//! The gateway mechanism: one thread per (interface, family) check that sends a probe every
//! interval and waits up to the timeout for the answer. No process is forked; the sockets
//! are made in the interface's namespace and bound to the interface.
//!
//! - `arp`: a broadcast ARP request from this node's address, on an AF_PACKET socket bound
//!   to the interface; the answer is an ARP reply whose sender is the gateway.
//! - `ndp`: a neighbour solicitation to the gateway's solicited-node group (hop limit 255,
//!   our link-layer address option) on a raw ICMPv6 socket; the answer is a neighbour
//!   advertisement for the gateway.
//! - `icmp`: an echo request (ICMP or ICMPv6) with our identifier and a sequence number;
//!   the answer is the matching echo reply from the gateway.
//!
//! The kernel's own neighbour cache is not consulted: it answers from memory for tens of
//! seconds after a gateway died.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{LinkAddr, MsgFlags, SockaddrStorage};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use thiserror::Error;

use crate::config::ProbeMethod;
use crate::netns;
use crate::vrrp::ChecksumMode;

const ETH_P_ARP: u16 = 0x0806;

/// One gateway check as the agent runs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeSpec {
    /// `ip netns` name; `None`: the agent's namespace.
    pub netns: Option<String>,
    pub iface: String,
    pub target: IpAddr,
    pub method: ProbeMethod,
    pub interval: Duration,
    pub timeout: Duration,
    /// This node's IPv4 address on the interface: the ARP sender address.
    pub source_v4: Option<Ipv4Addr>,
}

/// One probe's outcome.
#[derive(Clone, Debug)]
pub struct ProbeResult {
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Error)]
pub enum ProbeError {
    #[error("gateway check on `{iface}`: {source}")]
    Netns {
        iface: String,
        source: netns::NetnsError,
    },
    #[error("gateway check on `{iface}`: cannot {step}: {source}")]
    Socket {
        iface: String,
        step: &'static str,
        source: std::io::Error,
    },
    #[error(
        "gateway check on `{iface}`: an ARP probe needs an IPv4 address of this node on the interface"
    )]
    NoSource { iface: String },
    #[error("gateway check on `{iface}`: the interface has no link-layer address")]
    NoLinkAddress { iface: String },
}

enum Prober {
    Arp {
        socket: Socket,
        to: LinkAddr,
        frame: Vec<u8>,
    },
    Ndp {
        socket: Socket,
        to: SockAddr,
        message: Vec<u8>,
    },
    Echo {
        socket: Socket,
        to: SockAddr,
        id: u16,
    },
}

/// Starts the probe thread of `spec`; each result goes to `tx(key, result)`, and the thread
/// ends when `stop` is set or `tx` returns false.
pub fn spawn(
    spec: ProbeSpec,
    key: usize,
    tx: impl Fn(usize, ProbeResult) -> bool + Send + 'static,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<()>, ProbeError> {
    let prober =
        netns::within(spec.netns.as_deref(), || open(&spec, key)).map_err(|source| {
            ProbeError::Netns {
                iface: spec.iface.clone(),
                source,
            }
        })??;
    let name = format!("gw-{}", spec.iface);
    let iface = spec.iface.clone();
    std::thread::Builder::new()
        .name(name)
        .spawn(move || run(spec, prober, key, tx, stop))
        .map_err(|source| ProbeError::Socket {
            iface: iface.clone(),
            step: "spawn the probe thread",
            source,
        })
}

fn open(spec: &ProbeSpec, key: usize) -> Result<Prober, ProbeError> {
    let iface = &spec.iface;
    let err = |step| {
        let iface = iface.clone();
        move |source| ProbeError::Socket {
            iface,
            step,
            source,
        }
    };
    let link = nix::ifaddrs::getifaddrs()
        .map_err(|e| err("list addresses (getifaddrs)")(e.into()))?
        .filter(|a| &a.interface_name == iface)
        .find_map(|a| a.address.as_ref()?.as_link_addr().copied())
        .ok_or_else(|| ProbeError::NoLinkAddress {
            iface: iface.clone(),
        })?;
    let mac = link.addr().ok_or_else(|| ProbeError::NoLinkAddress {
        iface: iface.clone(),
    })?;
    let ifindex = u32::try_from(link.ifindex()).unwrap_or(0);
    match (spec.method, spec.target) {
        (ProbeMethod::Arp, IpAddr::V4(target)) => {
            let source = spec.source_v4.ok_or_else(|| ProbeError::NoSource {
                iface: iface.clone(),
            })?;
            let socket = Socket::new(
                Domain::PACKET,
                Type::RAW,
                Some(Protocol::from(i32::from(ETH_P_ARP.to_be()))),
            )
            .map_err(err("open an AF_PACKET socket"))?;
            // Protocol 0 in the address keeps the socket's ETH_P_ARP (packet_bind).
            nix::sys::socket::bind(socket.as_raw_fd(), &link)
                .map_err(|e| err("bind the AF_PACKET socket to the interface")(e.into()))?;
            socket
                .set_nonblocking(true)
                .map_err(err("set the socket non-blocking"))?;
            Ok(Prober::Arp {
                socket,
                to: link,
                frame: arp_request(mac, source, target),
            })
        }
        (ProbeMethod::Ndp, IpAddr::V6(target)) => {
            let socket = icmpv6_socket(iface, ifindex).map_err(err("open a raw ICMPv6 socket"))?;
            let group = solicited_node(target);
            Ok(Prober::Ndp {
                socket,
                to: SockAddr::from(SocketAddrV6::new(group, 0, 0, ifindex)),
                message: neighbour_solicitation(mac, target),
            })
        }
        (_, target) => {
            let socket = match target {
                IpAddr::V4(_) => {
                    let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))
                        .map_err(err("open a raw ICMP socket"))?;
                    s.bind_device(Some(iface.as_bytes()))
                        .map_err(err("bind the ICMP socket to the interface"))?;
                    s.set_nonblocking(true)
                        .map_err(err("set the socket non-blocking"))?;
                    s
                }
                IpAddr::V6(_) => {
                    icmpv6_socket(iface, ifindex).map_err(err("open a raw ICMPv6 socket"))?
                }
            };
            let to = match target {
                IpAddr::V4(a) => SockAddr::from(SocketAddrV4::new(a, 0)),
                IpAddr::V6(a) => SockAddr::from(SocketAddrV6::new(a, 0, 0, ifindex)),
            };
            let id = (std::process::id() as u16) ^ (key as u16).rotate_left(11);
            Ok(Prober::Echo { socket, to, id })
        }
    }
}

fn icmpv6_socket(iface: &str, ifindex: u32) -> std::io::Result<Socket> {
    let s = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
    s.bind_device(Some(iface.as_bytes()))?;
    // RFC 4861 7.1.1: neighbour discovery messages carry hop limit 255.
    s.set_multicast_hops_v6(255)?;
    s.set_unicast_hops_v6(255)?;
    s.set_multicast_if_v6(ifindex)?;
    s.set_nonblocking(true)?;
    Ok(s)
}

fn run(
    spec: ProbeSpec,
    prober: Prober,
    key: usize,
    tx: impl Fn(usize, ProbeResult) -> bool,
    stop: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 2048];
    let mut seq: u16 = 0;
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        seq = seq.wrapping_add(1);
        let sent = Instant::now();
        let result = match prober.send(seq) {
            Err(e) => ProbeResult {
                ok: false,
                detail: format!("probe not sent: {e}"),
            },
            Ok(()) => match prober.wait(&spec, seq, sent + spec.timeout, &mut buf) {
                Some(rtt) => ProbeResult {
                    ok: true,
                    detail: format!("{} answered {} in {rtt:?}", spec.target, spec.method),
                },
                None => ProbeResult {
                    ok: false,
                    detail: format!(
                        "{} did not answer {} within {:?}",
                        spec.target, spec.method, spec.timeout
                    ),
                },
            },
        };
        if !tx(key, result) {
            return;
        }
        next += spec.interval;
        let now = Instant::now();
        if next < now {
            next = now;
        }
        // Sleep in slices so a stop is seen within 50 ms at long intervals.
        while !stop.load(Ordering::Relaxed) {
            let left = next.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }
}

impl Prober {
    fn socket(&self) -> &Socket {
        match self {
            Self::Arp { socket, .. } | Self::Ndp { socket, .. } | Self::Echo { socket, .. } => {
                socket
            }
        }
    }

    fn send(&self, seq: u16) -> std::io::Result<()> {
        match self {
            Self::Arp { socket, to, frame } => {
                nix::sys::socket::sendto(socket.as_raw_fd(), frame, to, MsgFlags::empty())?;
            }
            Self::Ndp {
                socket,
                to,
                message,
            } => {
                socket.send_to(message, to)?;
            }
            Self::Echo { socket, to, id } => {
                let v4 = to.is_ipv4();
                socket.send_to(&echo_request(v4, *id, seq), to)?;
            }
        }
        Ok(())
    }

    /// Reads until the answer to probe `seq` arrives or `deadline` passes; the round trip.
    fn wait(
        &self,
        spec: &ProbeSpec,
        seq: u16,
        deadline: Instant,
        buf: &mut [u8],
    ) -> Option<Duration> {
        let start = Instant::now();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let timeout =
                PollTimeout::try_from(left.as_millis().max(1)).unwrap_or(PollTimeout::MAX);
            let mut fds = [PollFd::new(self.socket().as_fd(), PollFlags::POLLIN)];
            if !matches!(nix::poll::poll(&mut fds, timeout), Ok(n) if n > 0) {
                continue;
            }
            while let Ok((n, from)) =
                nix::sys::socket::recvfrom::<SockaddrStorage>(self.socket().as_raw_fd(), buf)
            {
                let from = from.and_then(|a| {
                    a.as_sockaddr_in()
                        .map(|s| IpAddr::V4(s.ip()))
                        .or_else(|| a.as_sockaddr_in6().map(|s| IpAddr::V6(s.ip())))
                });
                if self.matches(spec, seq, &buf[..n], from) {
                    return Some(start.elapsed());
                }
            }
        }
    }

    fn matches(&self, spec: &ProbeSpec, seq: u16, pkt: &[u8], from: Option<IpAddr>) -> bool {
        match (self, spec.target) {
            (Self::Arp { .. }, IpAddr::V4(target)) => is_arp_reply_from(pkt, target),
            (Self::Ndp { .. }, IpAddr::V6(target)) => is_advert_for(pkt, target),
            (Self::Echo { id, .. }, target) => {
                from == Some(target) && is_echo_reply(pkt, target.is_ipv4(), *id, seq)
            }
            _ => false,
        }
    }
}

/// A broadcast ARP request (RFC 826) for `target` from `mac`/`source`.
pub fn arp_request(mac: [u8; 6], source: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ETH_P_ARP.to_be_bytes());
    f.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&source.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target.octets());
    f
}

/// Whether `frame` is an ARP reply whose sender is `target`.
pub fn is_arp_reply_from(frame: &[u8], target: Ipv4Addr) -> bool {
    frame.len() >= 42
        && frame[12..14] == ETH_P_ARP.to_be_bytes()
        && frame[20..22] == [0, 2]
        && frame[28..32] == target.octets()
}

/// ff02::1:ffXX:XXXX of `target` (RFC 4291 2.7.1).
pub fn solicited_node(target: Ipv6Addr) -> Ipv6Addr {
    let o = target.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

/// A neighbour solicitation (RFC 4861 4.3) for `target` with our link-layer address; the
/// kernel fills the ICMPv6 checksum of raw ICMPv6 sockets.
pub fn neighbour_solicitation(mac: [u8; 6], target: Ipv6Addr) -> Vec<u8> {
    let mut m = vec![135, 0, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(&target.octets());
    m.extend_from_slice(&[1, 1]);
    m.extend_from_slice(&mac);
    m
}

/// Whether `msg` (an ICMPv6 message) is a neighbour advertisement for `target`.
pub fn is_advert_for(msg: &[u8], target: Ipv6Addr) -> bool {
    msg.len() >= 24 && msg[0] == 136 && msg[8..24] == target.octets()
}

/// An echo request: ICMP (checksum computed here) or ICMPv6 (kernel's checksum).
pub fn echo_request(v4: bool, id: u16, seq: u16) -> Vec<u8> {
    let mut m = vec![if v4 { 8 } else { 128 }, 0, 0, 0];
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(b"tr7-gateway-probe");
    if v4 {
        let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        // The ICMP checksum is RFC 1071 over the message alone, like VRRP's message-only form.
        let sum =
            crate::vrrp::checksum::compute(&m, any, any, ChecksumMode::MessageOnly).unwrap_or(0);
        m[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    m
}

/// Whether `pkt` is our echo reply: raw IPv4 sockets deliver the IP header, raw ICMPv6
/// sockets only the message.
pub fn is_echo_reply(pkt: &[u8], v4: bool, id: u16, seq: u16) -> bool {
    let msg = if v4 {
        let Some(&b0) = pkt.first() else { return false };
        let ihl = usize::from(b0 & 0x0f) * 4;
        match pkt.get(ihl..) {
            Some(m) => m,
            None => return false,
        }
    } else {
        pkt
    };
    msg.len() >= 8
        && msg[0] == if v4 { 0 } else { 129 }
        && msg[4..6] == id.to_be_bytes()
        && msg[6..8] == seq.to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves the probe frames' layout (RFC 826 ARP, RFC 4861 NS with the SLLA option, RFC
    // 4291 solicited-node group) and that the reply matchers accept only the gateway's answer.
    #[test]
    fn probe_frames_and_matchers() {
        let mac = [2, 0, 0, 0, 0xa, 1];
        let gw4 = Ipv4Addr::new(192, 0, 2, 1);
        let f = arp_request(mac, Ipv4Addr::new(192, 0, 2, 2), gw4);
        assert_eq!(f.len(), 42);
        assert_eq!(&f[12..22], &[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
        assert_eq!(&f[38..42], &gw4.octets());
        assert!(
            !is_arp_reply_from(&f, gw4),
            "our own request is not an answer"
        );
        let mut reply = f.clone();
        reply[20..22].copy_from_slice(&[0, 2]);
        reply[28..32].copy_from_slice(&gw4.octets());
        assert!(is_arp_reply_from(&reply, gw4));
        assert!(!is_arp_reply_from(&reply, Ipv4Addr::new(192, 0, 2, 9)));

        let gw6: Ipv6Addr = "2001:db8::1:2:3".parse().unwrap();
        assert_eq!(
            solicited_node(gw6),
            "ff02::1:ff02:3".parse::<Ipv6Addr>().unwrap()
        );
        let ns = neighbour_solicitation(mac, gw6);
        assert_eq!((ns[0], ns.len(), ns[24], ns[25]), (135, 32, 1, 1));
        let mut na = ns.clone();
        na[0] = 136;
        assert!(is_advert_for(&na, gw6) && !is_advert_for(&ns, gw6));

        let e = echo_request(true, 7, 9);
        // A message with its checksum in place sums to zero.
        let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        assert!(crate::vrrp::checksum::verify(
            &e,
            any,
            any,
            ChecksumMode::MessageOnly
        ));
        let mut ip_reply = vec![0x45; 20];
        let mut r = e.clone();
        r[0] = 0;
        ip_reply.extend_from_slice(&r);
        assert!(is_echo_reply(&ip_reply, true, 7, 9));
        assert!(!is_echo_reply(&ip_reply, true, 7, 10));
        let mut r6 = echo_request(false, 7, 9);
        r6[0] = 129;
        assert!(is_echo_reply(&r6, false, 7, 9));
    }
}
