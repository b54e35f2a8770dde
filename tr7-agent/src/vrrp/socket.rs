//! The raw VRRP socket of one interface and address family: created inside the
//! interface's network namespace, bound to the interface, sending with TTL / hop limit
//! 255 from a chosen source, and receiving with what the RFC 9568 7.1 checks need (TTL
//! or hop limit, source, destination).
//!
//! Why no `bind()`: the kernel filters a bound raw socket's input by destination
//! (IPv4 `raw_v4_match` compares the bound address with the packet's destination), so
//! a socket bound to `unicast_src_ip` would never see adverts sent to 224.0.0.18, and
//! an IPv6 socket bound to the link-local address would miss adverts sent to a global
//! unicast address. The source is therefore given per packet with IP_PKTINFO /
//! IPV6_PKTINFO, which also names the outgoing interface.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use nix::libc;
use nix::sys::socket::{
    self as nsock, ControlMessage, ControlMessageOwned, MsgFlags, SockaddrIn, SockaddrIn6,
    SockaddrStorage,
};
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, Socket, Type};
use thiserror::Error;

use super::packet::{Family, MULTICAST_V4, MULTICAST_V6, PROTOCOL, TTL};
use crate::netns;

/// Large enough for any VRRP packet (at most 255 IPv6 addresses) with its IPv4 header.
pub const RECV_BUFFER: usize = 8 + 255 * 16 + 60;

/// Why the socket could not be set up, or a packet not sent or received.
#[derive(Debug, Error)]
pub enum SocketError {
    #[error("interface `{iface}`: {source}")]
    Netns {
        iface: String,
        source: netns::NetnsError,
    },
    #[error("interface `{iface}` does not exist in the namespace: {source}")]
    NoInterface { iface: String, source: nix::Error },
    #[error("interface `{iface}`: cannot {step}: {source}")]
    Setup {
        iface: String,
        step: &'static str,
        source: io::Error,
    },
    #[error("interface `{iface}` has no IPv6 link-local address to send VRRP from")]
    NoLinkLocal { iface: String },
    #[error(
        "interface `{iface}`: source {addr} is not usable yet (tentative while duplicate \
         address detection runs, or it failed, or the address is not on this node)"
    )]
    SourceNotUsable { iface: String, addr: Ipv6Addr },
    #[error("interface `{iface}`: cannot send from {src} to {dst}: {source}")]
    Send {
        iface: String,
        src: IpAddr,
        dst: IpAddr,
        source: io::Error,
    },
    #[error("interface `{iface}`: cannot send from {src} to {dst}: the families differ")]
    FamilyMismatch {
        iface: String,
        src: IpAddr,
        dst: IpAddr,
    },
    #[error("interface `{iface}`: receive failed: {source}")]
    Recv { iface: String, source: io::Error },
    #[error("interface `{iface}`: received {len} bytes, not a whole IPv4 header")]
    ShortIpHeader { iface: String, len: usize },
    #[error("interface `{iface}`: received an IPv6 packet without {missing} ancillary data")]
    MissingAncillary {
        iface: String,
        missing: &'static str,
    },
}

impl SocketError {
    /// A short stable label, for counters and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            SocketError::Netns { .. } => "netns",
            SocketError::NoInterface { .. } => "no_interface",
            SocketError::Setup { .. } => "setup",
            SocketError::NoLinkLocal { .. } => "no_link_local",
            SocketError::SourceNotUsable { .. } => "source_not_usable",
            SocketError::Send { .. } => "send",
            SocketError::FamilyMismatch { .. } => "family_mismatch",
            SocketError::Recv { .. } => "recv",
            SocketError::ShortIpHeader { .. } => "short_ip_header",
            SocketError::MissingAncillary { .. } => "missing_ancillary",
        }
    }
}

/// One received packet: the values [`check_ip_header`](super::check_ip_header) needs and
/// the VRRP message.
#[derive(Debug)]
pub struct Received<'a> {
    pub ttl: u8,
    pub protocol: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub payload: &'a [u8],
}

/// A raw IP protocol 112 socket on one interface, for one address family.
#[derive(Debug)]
pub struct VrrpSocket {
    socket: Socket,
    family: Family,
    iface: String,
    ifindex: u32,
}

impl VrrpSocket {
    /// Opens the socket for `iface` inside namespace `netns` (`None`: the caller's).
    /// The socket stays in that namespace whatever thread uses it later. `join_group`
    /// joins 224.0.0.18 / ff02::12 on the interface (multicast mode); unicast mode
    /// does not need it. The socket is non-blocking: [`VrrpSocket::recv`] returns
    /// `None` when nothing is queued.
    pub fn open(
        netns: Option<&str>,
        iface: &str,
        family: Family,
        join_group: bool,
    ) -> Result<Self, SocketError> {
        netns::within(netns, || Self::open_here(iface, family, join_group)).map_err(|source| {
            SocketError::Netns {
                iface: iface.to_owned(),
                source,
            }
        })?
    }

    fn open_here(iface: &str, family: Family, join_group: bool) -> Result<Self, SocketError> {
        let ifindex = interface_index(iface)?;
        let setup = |step: &'static str| {
            let iface = iface.to_owned();
            move |source: io::Error| SocketError::Setup {
                iface,
                step,
                source,
            }
        };
        let domain = match family {
            Family::V4 => Domain::IPV4,
            Family::V6 => Domain::IPV6,
        };
        let socket = Socket::new(domain, Type::RAW, Some(Protocol::from(i32::from(PROTOCOL))))
            .map_err(setup("create a raw IP protocol 112 socket"))?;
        // Only this interface's packets, and ours leave only through it.
        socket
            .bind_device(Some(iface.as_bytes()))
            .map_err(setup("bind to the device (SO_BINDTODEVICE)"))?;
        let hops = u32::from(TTL);
        match family {
            Family::V4 => {
                // RFC 9568 5.1.1.3: TTL 255, for multicast and unicast alike.
                socket.set_ttl_v4(hops).map_err(setup("set IP_TTL"))?;
                socket
                    .set_multicast_ttl_v4(hops)
                    .map_err(setup("set IP_MULTICAST_TTL"))?;
                // Our own adverts would only be dropped again by the state machine.
                socket
                    .set_multicast_loop_v4(false)
                    .map_err(setup("clear IP_MULTICAST_LOOP"))?;
                // Only the groups this socket joined, not every group of the namespace.
                socket
                    .set_multicast_all_v4(false)
                    .map_err(setup("clear IP_MULTICAST_ALL"))?;
                if join_group {
                    socket
                        .join_multicast_v4_n(
                            &MULTICAST_V4,
                            &InterfaceIndexOrAddress::Index(ifindex),
                        )
                        .map_err(setup("join 224.0.0.18"))?;
                }
            }
            Family::V6 => {
                // RFC 9568 5.1.2.2: hop limit 255.
                socket
                    .set_unicast_hops_v6(hops)
                    .map_err(setup("set IPV6_UNICAST_HOPS"))?;
                socket
                    .set_multicast_hops_v6(hops)
                    .map_err(setup("set IPV6_MULTICAST_HOPS"))?;
                socket
                    .set_multicast_loop_v6(false)
                    .map_err(setup("clear IPV6_MULTICAST_LOOP"))?;
                socket
                    .set_multicast_all_v6(false)
                    .map_err(setup("clear IPV6_MULTICAST_ALL"))?;
                socket
                    .set_multicast_if_v6(ifindex)
                    .map_err(setup("set IPV6_MULTICAST_IF"))?;
                // The IPv6 header is not delivered on a raw socket: ask for the hop
                // limit and the destination as ancillary data.
                socket
                    .set_recv_hoplimit_v6(true)
                    .map_err(setup("set IPV6_RECVHOPLIMIT"))?;
                nsock::setsockopt(&socket, nsock::sockopt::Ipv6RecvPacketInfo, &true)
                    .map_err(|e| setup("set IPV6_RECVPKTINFO")(e.into()))?;
                if join_group {
                    socket
                        .join_multicast_v6(&MULTICAST_V6, ifindex)
                        .map_err(setup("join ff02::12"))?;
                }
            }
        }
        socket
            .set_nonblocking(true)
            .map_err(setup("set O_NONBLOCK"))?;
        Ok(Self {
            socket,
            family,
            iface: iface.to_owned(),
            ifindex,
        })
    }

    pub fn family(&self) -> Family {
        self.family
    }

    pub fn interface(&self) -> &str {
        &self.iface
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Sends one VRRP message from `src` to `dst` (the group or a unicast peer) out of
    /// the interface. `src` must be an address of this node on the interface (for IPv6,
    /// its link-local address, RFC 9568 5.1.2.1).
    pub fn send(&self, payload: &[u8], src: IpAddr, dst: IpAddr) -> Result<(), SocketError> {
        let iov = [io::IoSlice::new(payload)];
        let fd = self.socket.as_raw_fd();
        let sent = match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                // ipi_spec_dst is the source address of the packet (ip(7)).
                let info = libc::in_pktinfo {
                    ipi_ifindex: self.ifindex_c(),
                    ipi_spec_dst: libc::in_addr {
                        s_addr: u32::from(s).to_be(),
                    },
                    ipi_addr: libc::in_addr { s_addr: 0 },
                };
                let to = SockaddrIn::from(SocketAddrV4::new(d, 0));
                nsock::sendmsg(
                    fd,
                    &iov,
                    &[ControlMessage::Ipv4PacketInfo(&info)],
                    MsgFlags::empty(),
                    Some(&to),
                )
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let info = libc::in6_pktinfo {
                    ipi6_addr: libc::in6_addr {
                        s6_addr: s.octets(),
                    },
                    ipi6_ifindex: self.ifindex,
                };
                // Link-local and link-scope multicast destinations need the zone.
                let scope = if needs_scope(d) { self.ifindex } else { 0 };
                let to = SockaddrIn6::from(SocketAddrV6::new(d, 0, 0, scope));
                nsock::sendmsg(
                    fd,
                    &iov,
                    &[ControlMessage::Ipv6PacketInfo(&info)],
                    MsgFlags::empty(),
                    Some(&to),
                )
            }
            _ => {
                return Err(SocketError::FamilyMismatch {
                    iface: self.iface.clone(),
                    src,
                    dst,
                });
            }
        };
        match sent {
            Ok(n) if n == payload.len() => Ok(()),
            Ok(n) => Err(SocketError::Send {
                iface: self.iface.clone(),
                src,
                dst,
                source: io::Error::other(format!("sent {n} of {} bytes", payload.len())),
            }),
            Err(e) => Err(SocketError::Send {
                iface: self.iface.clone(),
                src,
                dst,
                source: e.into(),
            }),
        }
    }

    /// Receives one queued packet into `buf` (at least [`RECV_BUFFER`] bytes), or
    /// `None` when nothing is queued.
    pub fn recv<'b>(&self, buf: &'b mut [u8]) -> Result<Option<Received<'b>>, SocketError> {
        match self.family {
            Family::V4 => self.recv_v4(buf),
            Family::V6 => self.recv_v6(buf),
        }
    }

    fn recv_v4<'b>(&self, buf: &'b mut [u8]) -> Result<Option<Received<'b>>, SocketError> {
        // An IPv4 raw socket delivers the IP header with the payload: TTL, protocol and
        // both addresses come from there.
        let len = match io::Read::read(&mut &self.socket, buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(None),
            Err(source) => {
                return Err(SocketError::Recv {
                    iface: self.iface.clone(),
                    source,
                });
            }
        };
        let packet = &buf[..len];
        let short = || SocketError::ShortIpHeader {
            iface: self.iface.clone(),
            len,
        };
        let first = *packet.first().ok_or_else(short)?;
        let header_len = usize::from(first & 0x0f) * 4;
        if header_len < 20 || len < header_len {
            return Err(short());
        }
        let addr =
            |at: usize| Ipv4Addr::new(packet[at], packet[at + 1], packet[at + 2], packet[at + 3]);
        Ok(Some(Received {
            ttl: packet[8],
            protocol: packet[9],
            src: IpAddr::V4(addr(12)),
            dst: IpAddr::V4(addr(16)),
            payload: &packet[header_len..],
        }))
    }

    fn recv_v6<'b>(&self, buf: &'b mut [u8]) -> Result<Option<Received<'b>>, SocketError> {
        let mut cmsg = nix::cmsg_space!(libc::in6_pktinfo, libc::c_int);
        let (len, src, hop_limit, dst) = {
            let mut iov = [io::IoSliceMut::new(buf)];
            let msg = match nsock::recvmsg::<SockaddrStorage>(
                self.socket.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::empty(),
            ) {
                Ok(msg) => msg,
                Err(nix::Error::EAGAIN | nix::Error::EINTR) => return Ok(None),
                Err(e) => {
                    return Err(SocketError::Recv {
                        iface: self.iface.clone(),
                        source: e.into(),
                    });
                }
            };
            let src = msg
                .address
                .as_ref()
                .and_then(|a| a.as_sockaddr_in6())
                .map(|a| a.ip());
            let mut hop_limit = None;
            let mut dst = None;
            if let Ok(cmsgs) = msg.cmsgs() {
                for c in cmsgs {
                    match c {
                        ControlMessageOwned::Ipv6HopLimit(h) => hop_limit = Some(h),
                        ControlMessageOwned::Ipv6PacketInfo(info) => {
                            dst = Some(Ipv6Addr::from(info.ipi6_addr.s6_addr));
                        }
                        _ => {}
                    }
                }
            }
            (msg.bytes, src, hop_limit, dst)
        };
        let missing = |missing| SocketError::MissingAncillary {
            iface: self.iface.clone(),
            missing,
        };
        let src = src.ok_or_else(|| missing("source address"))?;
        let dst = dst.ok_or_else(|| missing("IPV6_PKTINFO"))?;
        let hop_limit = hop_limit.ok_or_else(|| missing("IPV6_HOPLIMIT"))?;
        Ok(Some(Received {
            // A hop limit outside 0-255 cannot come from the kernel; 0 fails the check.
            ttl: u8::try_from(hop_limit).unwrap_or(0),
            protocol: PROTOCOL,
            src: IpAddr::V6(src),
            dst: IpAddr::V6(dst),
            payload: &buf[..len],
        }))
    }

    fn ifindex_c(&self) -> libc::c_int {
        libc::c_int::try_from(self.ifindex).unwrap_or(0)
    }
}

impl AsFd for VrrpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

/// Link-local unicast and link-scope multicast need a zone (the interface) to be sent.
fn needs_scope(addr: Ipv6Addr) -> bool {
    addr.is_unicast_link_local() || (addr.is_multicast() && (addr.segments()[0] & 0x000f) <= 2)
}

/// The index of `iface` in the calling thread's namespace.
fn interface_index(iface: &str) -> Result<u32, SocketError> {
    nix::net::if_::if_nametoindex(iface).map_err(|source| SocketError::NoInterface {
        iface: iface.to_owned(),
        source,
    })
}

/// The IPv6 link-local address of `iface` in namespace `netns`: the source of its IPv6
/// adverts (RFC 9568 5.1.2.1) and the primary address of its IPv6 virtual routers.
pub fn link_local_v6(netns: Option<&str>, iface: &str) -> Result<Ipv6Addr, SocketError> {
    let found = netns::within(netns, || {
        nix::ifaddrs::getifaddrs().map(|addrs| {
            addrs
                .filter(|a| a.interface_name == iface)
                .filter_map(|a| a.address?.as_sockaddr_in6().map(|s| s.ip()))
                .find(Ipv6Addr::is_unicast_link_local)
        })
    })
    .map_err(|source| SocketError::Netns {
        iface: iface.to_owned(),
        source,
    })?
    .map_err(|e| SocketError::Setup {
        iface: iface.to_owned(),
        step: "list addresses (getifaddrs)",
        source: e.into(),
    })?;
    found.ok_or_else(|| SocketError::NoLinkLocal {
        iface: iface.to_owned(),
    })
}

/// Whether IPv6 address `addr` can be a source on `iface` in namespace `netns` now. A
/// freshly added address is tentative for a second or two (duplicate address detection,
/// unless added with `nodad`); the kernel refuses it as a packet's source (`sendmsg` with
/// IPV6_PKTINFO fails with EINVAL), and a router that cannot send would be a second
/// master. The probe is a UDP bind, which the kernel refuses the same way.
pub fn ipv6_source_usable(
    netns: Option<&str>,
    iface: &str,
    addr: Ipv6Addr,
) -> Result<bool, SocketError> {
    netns::within(netns, || {
        let scope = if addr.is_unicast_link_local() {
            interface_index(iface)?
        } else {
            0
        };
        Ok(std::net::UdpSocket::bind(SocketAddrV6::new(addr, 0, 0, scope)).is_ok())
    })
    .map_err(|source| SocketError::Netns {
        iface: iface.to_owned(),
        source,
    })?
}
